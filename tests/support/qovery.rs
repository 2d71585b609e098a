//! A stateful fake of Qovery's API, faithful to `shared/reference/qovery.md`: `Authorization:
//! Token ...`, error bodies `{"status":..,"detail":..}`, 403 for an organization the token
//! cannot see.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::server::Served;

#[derive(Default)]
pub struct QoveryState {
    /// organization id -> name
    pub organizations: HashMap<String, String>,
    /// API token -> the organization it belongs to
    pub tokens: HashMap<String, String>,
    pub calls: HashMap<String, usize>,
}

#[derive(Clone)]
pub struct FakeQovery {
    pub state: Arc<Mutex<QoveryState>>,
    served: Served,
}

fn error(status: StatusCode, detail: &str) -> Response {
    (
        status,
        Json(json!({"status": status.as_u16(), "detail": detail})),
    )
        .into_response()
}

impl FakeQovery {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(QoveryState::default()));
        let app = Router::new()
            .route("/organization/{id}", get(organization))
            .with_state(state.clone());
        Self {
            state,
            served: Served::start(app).await,
        }
    }

    pub fn url(&self) -> String {
        self.served.url()
    }

    /// Adds an organization and returns an API token for it.
    pub fn add_organization(&self, id: &str, name: &str) -> String {
        let mut s = self.state.lock().unwrap();
        s.organizations.insert(id.into(), name.into());
        let token = format!("qov-token-{}-{}", name, s.tokens.len());
        s.tokens.insert(token.clone(), id.into());
        token
    }
}

/// The organization an `Authorization: Token ...` header belongs to, or the 401 to answer.
fn authenticate(state: &QoveryState, headers: &HeaderMap) -> Result<String, Box<Response>> {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Token "))
        .unwrap_or("");
    let unauthorized = || {
        Box::new(error(
            StatusCode::UNAUTHORIZED,
            "Access token is missing or invalid",
        ))
    };
    state
        .tokens
        .get(presented)
        .cloned()
        .ok_or_else(unauthorized)
}

async fn organization(
    State(state): State<Arc<Mutex<QoveryState>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut s = state.lock().unwrap();
    *s.calls.entry("GET /organization/{id}".into()).or_default() += 1;
    let own = match authenticate(&s, &headers) {
        Ok(org) => org,
        Err(r) => return *r,
    };
    // Qovery answers 403 (not 404) for an organization the token cannot see.
    if own != id {
        return error(StatusCode::FORBIDDEN, "Access forbidden");
    }
    let name = s.organizations[&id].clone();
    Json(json!({
        "id": id,
        "created_at": "2026-01-01T00:00:00Z",
        "name": name,
        "plan": "TEAM",
    }))
    .into_response()
}
