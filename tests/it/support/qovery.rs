//! A stateful fake of Qovery's API, faithful to `docs/reference/qovery.md`: `Authorization:
//! Token ...`, organizations, container registries (never returning a password), associated
//! services, error bodies `{"status":..,"detail":..}`, and 403 for what the token cannot see.
//! It keeps the passwords it is given, so tests can assert what Qovery holds.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router, middleware};
use chrono::Utc;
use secrecy::SecretString;
use serde_json::{Value, json};

use super::faults::{Fault, Faults, SharedFaults, inject};
use super::server::Served;

/// The kinds of `ContainerRegistryKindEnum` (reference §2.2).
const KINDS: &[&str] = &[
    "ECR",
    "SCALEWAY_CR",
    "DOCKER_HUB",
    "GITHUB_CR",
    "GITHUB_ENTERPRISE_CR",
    "GITLAB_CR",
    "PUBLIC_ECR",
    "DOCR",
    "GENERIC_CR",
    "GCP_ARTIFACT_REGISTRY",
    "AZURE_CR",
];

#[derive(Clone, Debug)]
pub struct Registry {
    pub id: String,
    pub organization: String,
    pub name: String,
    pub kind: String,
    pub description: String,
    pub url: String,
    pub cluster: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub associated_services: usize,
    pub created_at: String,
    pub updated_at: String,
}

impl Registry {
    fn json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "url": self.url,
            "associated_services_count": self.associated_services,
            "config": {},
        });
        if let Some(u) = &self.username {
            v["config"]["username"] = json!(u);
        }
        if let Some(c) = &self.cluster {
            v["cluster"] = json!({"id": c, "name": "qovery-cluster"});
        }
        v
    }
}

/// Where the fake checks credentials on create and edit, as Qovery's docs say it does.
#[derive(Clone, Debug)]
pub struct CredentialCheck {
    pub registry_url: String,
    pub repository: String,
    pub ca: Option<std::path::PathBuf>,
}

#[derive(Default)]
pub struct QoveryState {
    next_id: u64,
    /// organization id -> name
    pub organizations: Vec<(String, String)>,
    /// API token -> the organization it belongs to
    pub tokens: Vec<(String, String)>,
    pub registries: Vec<Registry>,
    /// Answer 403 rather than 404 for a registry that does not exist (reference §1).
    pub missing_as_forbidden: bool,
    pub credential_check: Option<CredentialCheck>,
    /// Every password a registry was ever given, in order.
    pub received_passwords: Vec<String>,
}

impl QoveryState {
    fn uuid(&mut self) -> String {
        self.next_id += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.next_id)
    }
}

#[derive(Clone)]
pub struct FakeQovery {
    pub state: Arc<Mutex<QoveryState>>,
    pub faults: SharedFaults,
    served: Served,
}

fn error(status: StatusCode, detail: &str) -> Response {
    (
        status,
        Json(json!({"status": status.as_u16(), "detail": detail})),
    )
        .into_response()
}

type Shared = Arc<Mutex<QoveryState>>;

fn lock(state: &Shared) -> MutexGuard<'_, QoveryState> {
    state.lock().unwrap()
}

impl FakeQovery {
    pub async fn start() -> Self {
        let state: Shared = Arc::new(Mutex::new(QoveryState {
            missing_as_forbidden: true,
            ..QoveryState::default()
        }));
        let faults: SharedFaults = Arc::new(Mutex::new(Faults::default()));
        let app = Router::new()
            .route("/organization/{organizationId}", get(organization))
            .route(
                "/organization/{organizationId}/containerRegistry",
                get(list_registries).post(create_registry),
            )
            .route(
                "/organization/{organizationId}/containerRegistry/{containerRegistryId}",
                get(get_registry).put(edit_registry).delete(delete_registry),
            )
            .route(
                "/organization/{organizationId}/containerRegistry/{containerRegistryId}/associatedServices",
                get(associated_services),
            )
            .route_layer(middleware::from_fn_with_state(faults.clone(), inject))
            .with_state(state.clone());
        Self {
            state,
            faults,
            served: Served::start(app).await,
        }
    }

    pub fn url(&self) -> String {
        self.served.url()
    }

    pub fn calls(&self, route: &str) -> usize {
        self.faults.lock().unwrap().calls(route)
    }

    pub fn fail(&self, route: &str, fault: Fault, times: usize) {
        self.faults.lock().unwrap().push(route, fault, times);
    }

    /// Qovery behaves again: faults not applied yet are dropped.
    pub fn clear_faults(&self) {
        self.faults.lock().unwrap().clear();
    }

    /// Adds an organization and returns an API token for it.
    pub fn add_organization(&self, id: &str, name: &str) -> String {
        let mut s = lock(&self.state);
        s.organizations.push((id.into(), name.into()));
        let token = format!("qov-token-{}-{}", name, s.tokens.len());
        s.tokens.push((token.clone(), id.into()));
        token
    }

    /// Adds a registry directly (as if made in the console); returns its id.
    pub fn add_registry(&self, org: &str, name: &str, cluster: bool, services: usize) -> String {
        let mut s = lock(&self.state);
        let id = s.uuid();
        let now = Utc::now().to_rfc3339();
        s.registries.push(Registry {
            id: id.clone(),
            organization: org.into(),
            name: name.into(),
            kind: if cluster { "ECR" } else { "GITLAB_CR" }.into(),
            description: String::new(),
            url: "https://registry.gitlab.com".into(),
            cluster: cluster.then(|| "00000000-0000-4000-8000-00000000c1c1".to_string()),
            username: Some("someone".into()),
            password: Some("set-in-the-console".into()),
            associated_services: services,
            created_at: now.clone(),
            updated_at: now,
        });
        id
    }

    /// A registry a person set up by hand, as Qovery's guide for GitLab says: a credential
    /// regwarden did not make, no marker, the URL of the GitLab registry `url` (`GITLAB_CR`
    /// for gitlab.com's, `GENERIC_CR` for a self-managed one).
    pub fn add_hand_made_registry(
        &self,
        org: &str,
        name: &str,
        url: &str,
        username: &str,
        password: &str,
    ) -> String {
        let id = self.add_registry(org, name, false, 1);
        let mut s = lock(&self.state);
        let r = s.registries.iter_mut().find(|r| r.id == id).unwrap();
        r.description = "Set up by hand for the api team.".into();
        r.url = url.into();
        if !url.contains("registry.gitlab.com") {
            r.kind = "GENERIC_CR".into();
        }
        r.username = Some(username.into());
        r.password = Some(password.into());
        id
    }

    pub fn received_passwords(&self) -> Vec<String> {
        lock(&self.state).received_passwords.clone()
    }

    pub fn registries(&self) -> Vec<Registry> {
        lock(&self.state).registries.clone()
    }

    pub fn registry_named(&self, name: &str) -> Option<Registry> {
        self.registries().into_iter().find(|r| r.name == name)
    }

    pub fn check_credentials_against(
        &self,
        registry_url: &str,
        repository: &str,
        ca: Option<&std::path::Path>,
    ) {
        lock(&self.state).credential_check = Some(CredentialCheck {
            registry_url: registry_url.into(),
            repository: repository.into(),
            ca: ca.map(|p| p.to_path_buf()),
        });
    }
}

/// The organization a token belongs to, checked against the one in the path: 401 for an
/// unknown token, 403 for another organization's.
fn authorize(s: &QoveryState, headers: &HeaderMap, org: &str) -> Result<(), Response> {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Token "))
        .unwrap_or("");
    match s.tokens.iter().find(|(t, _)| t == presented) {
        None => Err(error(
            StatusCode::UNAUTHORIZED,
            "Access token is missing or invalid",
        )),
        Some((_, own)) if own != org => Err(error(StatusCode::FORBIDDEN, "Access forbidden")),
        Some(_) => Ok(()),
    }
}

async fn organization(
    State(state): State<Shared>,
    Path(org): Path<String>,
    headers: HeaderMap,
) -> Response {
    let s = lock(&state);
    if let Err(r) = authorize(&s, &headers, &org) {
        return r;
    }
    let name = s
        .organizations
        .iter()
        .find(|(id, _)| *id == org)
        .map(|(_, n)| n.clone())
        .unwrap_or_default();
    Json(json!({
        "id": org,
        "created_at": "2026-01-01T00:00:00Z",
        "name": name,
        "plan": "TEAM",
    }))
    .into_response()
}

async fn list_registries(
    State(state): State<Shared>,
    Path(org): Path<String>,
    headers: HeaderMap,
) -> Response {
    let s = lock(&state);
    if let Err(r) = authorize(&s, &headers, &org) {
        return r;
    }
    let results: Vec<Value> = s
        .registries
        .iter()
        .filter(|r| r.organization == org)
        .map(Registry::json)
        .collect();
    Json(json!({ "results": results })).into_response()
}

/// `ContainerRegistryRequest` as the spec defines it: name, kind and config required.
struct Request {
    name: String,
    kind: String,
    description: String,
    url: String,
    username: Option<String>,
    password: Option<String>,
}

fn parse_request(body: &Value) -> Result<Request, Response> {
    let bad = |detail: &str| Err(error(StatusCode::BAD_REQUEST, detail));
    let Some(name) = body.get("name").and_then(Value::as_str) else {
        return bad("name is required");
    };
    let Some(kind) = body.get("kind").and_then(Value::as_str) else {
        return bad("kind is required");
    };
    if !KINDS.contains(&kind) {
        return bad("kind is not a ContainerRegistryKindEnum value");
    }
    let Some(config) = body.get("config").and_then(Value::as_object) else {
        return bad("config is required");
    };
    let url = match (kind, body.get("url").and_then(Value::as_str)) {
        ("GITLAB_CR", None) => "https://registry.gitlab.com".to_string(),
        (_, Some(u)) if u.starts_with("https://") => u.to_string(),
        _ => return bad("url is required and must start with https://"),
    };
    Ok(Request {
        name: name.into(),
        kind: kind.into(),
        description: body
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .into(),
        url,
        username: config
            .get("username")
            .and_then(Value::as_str)
            .map(str::to_string),
        password: config
            .get("password")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// Qovery "will verify the credentials and save the configuration": a credential the
/// registry rejects is refused with 400.
async fn verify(check: Option<CredentialCheck>, request: &Request) -> Result<(), Response> {
    let (Some(check), Some(username), Some(password)) =
        (check, request.username.clone(), request.password.clone())
    else {
        return Ok(());
    };
    let http = regwarden::outbound::client(check.ca.as_deref(), std::time::Duration::from_secs(5))
        .unwrap();
    let credential = regwarden::credential::Credential::new(username, SecretString::from(password));
    let url = reqwest::Url::parse(&check.registry_url).unwrap();
    let report = regwarden::registry::check(
        &http,
        &url,
        &check.repository,
        regwarden::registry::Access::Pull,
        &credential,
    )
    .await;
    if report.outcome == regwarden::registry::Outcome::Rejected {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "Cannot connect to the container registry: invalid credentials",
        ));
    }
    Ok(())
}

async fn create_registry(
    State(state): State<Shared>,
    Path(org): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let check = {
        let s = lock(&state);
        if let Err(r) = authorize(&s, &headers, &org) {
            return r;
        }
        s.credential_check.clone()
    };
    let request = match parse_request(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if let Err(r) = verify(check, &request).await {
        return r;
    }
    let mut s = lock(&state);
    s.received_passwords.extend(request.password.clone());
    let id = s.uuid();
    let now = Utc::now().to_rfc3339();
    let registry = Registry {
        id,
        organization: org,
        name: request.name,
        kind: request.kind,
        description: request.description,
        url: request.url,
        cluster: None,
        username: request.username,
        password: request.password,
        associated_services: 0,
        created_at: now.clone(),
        updated_at: now,
    };
    let json = registry.json();
    s.registries.push(registry);
    (StatusCode::CREATED, Json(json)).into_response()
}

fn missing(s: &QoveryState) -> Response {
    if s.missing_as_forbidden {
        error(StatusCode::FORBIDDEN, "Access forbidden")
    } else {
        error(StatusCode::NOT_FOUND, "Resource not found")
    }
}

async fn get_registry(
    State(state): State<Shared>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let s = lock(&state);
    if let Err(r) = authorize(&s, &headers, &org) {
        return r;
    }
    match s
        .registries
        .iter()
        .find(|r| r.id == id && r.organization == org)
    {
        Some(r) => Json(r.json()).into_response(),
        None => missing(&s),
    }
}

async fn edit_registry(
    State(state): State<Shared>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let check = {
        let s = lock(&state);
        if let Err(r) = authorize(&s, &headers, &org) {
            return r;
        }
        if !s
            .registries
            .iter()
            .any(|r| r.id == id && r.organization == org)
        {
            return missing(&s);
        }
        s.credential_check.clone()
    };
    let request = match parse_request(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if let Err(r) = verify(check, &request).await {
        return r;
    }
    let mut s = lock(&state);
    s.received_passwords.extend(request.password.clone());
    let Some(registry) = s
        .registries
        .iter_mut()
        .find(|r| r.id == id && r.organization == org)
    else {
        return error(StatusCode::NOT_FOUND, "Resource not found");
    };
    registry.name = request.name;
    registry.kind = request.kind;
    registry.description = request.description;
    registry.url = request.url;
    registry.username = request.username;
    // What a PUT without a password does is unconfirmed (reference §9): the fake forgets it,
    // the harsher reading.
    registry.password = request.password;
    registry.updated_at = Utc::now().to_rfc3339();
    Json(registry.json()).into_response()
}

async fn delete_registry(
    State(state): State<Shared>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut s = lock(&state);
    if let Err(r) = authorize(&s, &headers, &org) {
        return r;
    }
    let Some(pos) = s
        .registries
        .iter()
        .position(|r| r.id == id && r.organization == org)
    else {
        return missing(&s);
    };
    if s.registries[pos].associated_services > 0 {
        return error(
            StatusCode::BAD_REQUEST,
            "This container registry is used by services",
        );
    }
    s.registries.remove(pos);
    StatusCode::NO_CONTENT.into_response()
}

async fn associated_services(
    State(state): State<Shared>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let s = lock(&state);
    if let Err(r) = authorize(&s, &headers, &org) {
        return r;
    }
    let Some(registry) = s
        .registries
        .iter()
        .find(|r| r.id == id && r.organization == org)
    else {
        return missing(&s);
    };
    let results: Vec<Value> = (0..registry.associated_services)
        .map(|i| {
            json!({
                "project_id": "00000000-0000-4000-8000-0000000000a1",
                "project_name": "acme",
                "environment_id": "00000000-0000-4000-8000-0000000000e1",
                "environment_name": "production",
                "service_id": format!("00000000-0000-4000-8000-{:012x}", 0x5e0 + i),
                "service_name": format!("api-{i}"),
                "service_type": "CONTAINER",
            })
        })
        .collect();
    Json(json!({ "results": results })).into_response()
}
