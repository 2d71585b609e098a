//! The REST API's common ground (`docs/reference/gitlab.md` §8): which API token may act
//! where, offset pagination, the project and group a route's `:id` designates, the project
//! and group look-ups, and the calling token's own record (§4).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{App, GitlabState, Owner, Project, not_found};

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/api/v4/personal_access_tokens/self", get(token_self))
        .route("/api/v4/projects/{id}", get(get_project))
        .route("/api/v4/groups/{id}/projects", get(group_projects))
}

/// Whether a route's `:id` is a project's or a group's.
#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
    Project,
    Group,
}

impl GitlabState {
    /// The owner a URL's `:id` designates, or the 404 GitLab answers.
    fn owner(&self, kind: Kind, id: &str) -> Result<Owner, Response> {
        match kind {
            Kind::Project => self
                .project(id)
                .map(|p| Owner::Project(p.path.clone()))
                .ok_or_else(|| not_found("404 Project Not Found")),
            Kind::Group => self
                .group(id)
                .map(|g| Owner::Group(g.path.clone()))
                .ok_or_else(|| not_found("404 Group Not Found")),
        }
    }

    /// The owner a route's `:id` designates, once the API token may act on it: 404 for an
    /// unknown project or group, then 401 or 403 from [`authorize`].
    pub(super) fn authorized_owner(
        &self,
        kind: Kind,
        id: &str,
        headers: &HeaderMap,
    ) -> Result<Owner, Response> {
        let owner = self.owner(kind, id)?;
        authorize(self, headers, Some(&owner))?;
        Ok(owner)
    }
}

impl GitlabState {
    /// Instance-wide endpoints (instance service accounts, any user's tokens) take an
    /// administrator's token: in the fake, a personal one with `api`.
    pub(super) fn authorize_admin(&self, headers: &HeaderMap) -> Result<(), Response> {
        authorize(self, headers, None)?;
        let presented = headers
            .get("private-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let admin = self
            .access_tokens
            .iter()
            .any(|t| t.token == presented && t.owner == Owner::User);
        if admin {
            Ok(())
        } else {
            Err((
                StatusCode::FORBIDDEN,
                Json(json!({"message": "403 Forbidden"})),
            )
                .into_response())
        }
    }
}

/// The API token must be an active access token with `api`; a project or group token only
/// reaches its own namespace.
fn authorize(s: &GitlabState, headers: &HeaderMap, target: Option<&Owner>) -> Result<(), Response> {
    let presented = headers
        .get("private-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(token) = s
        .access_tokens
        .iter()
        .find(|t| t.token == presented && t.active())
    else {
        return Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "401 Unauthorized"})),
        )
            .into_response());
    };
    let allowed = token.scopes.iter().any(|s| s == "api")
        && match (&token.owner, target) {
            (Owner::User, _) | (_, None) => true,
            (own, Some(target)) => own == target,
        };
    if allowed {
        Ok(())
    } else {
        Err((
            StatusCode::FORBIDDEN,
            Json(json!({"message": "403 Forbidden"})),
        )
            .into_response())
    }
}

/// GitLab's offset pagination: `page`, `per_page` (default 20, max 100) and the `x-*` and
/// `Link` headers (reference §8).
pub(super) fn paginate(
    items: Vec<Value>,
    query: &HashMap<String, String>,
    url_path: &str,
) -> Response {
    let per_page = query
        .get("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let page = query
        .get("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let total = items.len();
    let pages = total.div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let mut response = Json(slice).into_response();
    let h = response.headers_mut();
    let next = if page < pages {
        (page + 1).to_string()
    } else {
        String::new()
    };
    let prev = if page > 1 {
        (page - 1).to_string()
    } else {
        String::new()
    };
    let link = |p: usize, rel: &str| {
        format!("<http://gitlab.invalid{url_path}?page={p}&per_page={per_page}>; rel=\"{rel}\"")
    };
    let mut links = vec![link(1, "first"), link(pages, "last")];
    if page < pages {
        links.insert(0, link(page + 1, "next"));
    }
    if page > 1 {
        links.insert(0, link(page - 1, "prev"));
    }
    for (name, value) in [
        ("x-page", page.to_string()),
        ("x-per-page", per_page.to_string()),
        ("x-total", total.to_string()),
        ("x-total-pages", pages.to_string()),
        ("x-next-page", next),
        ("x-prev-page", prev),
        ("link", links.join(", ")),
    ] {
        h.insert(name, HeaderValue::from_str(&value).unwrap());
    }
    response
}

fn project_json(p: &Project, group_path: &str) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "path": p.name,
        "path_with_namespace": p.path,
        "container_registry_image_prefix": format!("registry.gitlab.invalid/{}", p.path),
        "namespace": {"id": p.namespace_id, "full_path": group_path, "kind": "group"},
    })
}

async fn get_project(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let s = app.lock();
    if let Err(r) = authorize(&s, &headers, None) {
        return r;
    }
    match s.project(&id) {
        Some(p) => {
            let group = s
                .groups
                .iter()
                .find(|g| g.id == p.namespace_id)
                .map(|g| g.path.clone())
                .unwrap_or_default();
            Json(project_json(p, &group)).into_response()
        }
        None => not_found("404 Project Not Found"),
    }
}

async fn group_projects(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let s = app.lock();
    if let Err(r) = authorize(&s, &headers, None) {
        return r;
    }
    let Some(group) = s.group(&id) else {
        return not_found("404 Group Not Found");
    };
    let prefix = format!("{}/", group.path);
    let items = s
        .projects
        .iter()
        .filter(|p| p.path.starts_with(&prefix))
        .map(|p| project_json(p, p.path.rsplit_once('/').map(|(g, _)| g).unwrap_or("")))
        .collect();
    paginate(items, &query, &format!("/api/v4/groups/{id}/projects"))
}

/// `GET /api/v4/personal_access_tokens/self` (reference §4, §8): the calling token's record.
async fn token_self(State(app): State<App>, headers: HeaderMap) -> Response {
    let s = app.lock();
    let presented = headers
        .get("private-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match s
        .access_tokens
        .iter()
        .find(|t| t.token == presented && t.active())
    {
        Some(t) => Json(t.json()).into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "401 Unauthorized"})),
        )
            .into_response(),
    }
}
