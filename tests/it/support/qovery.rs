//! A stateful fake of Qovery's API, faithful to `docs/reference/qovery.md`: `Authorization:
//! Token ...`, organizations, container registries (never returning a password), associated
//! services, error bodies `{"status":..,"detail":..}`, and 403 for what the token cannot see.
//! It keeps the passwords it is given, so tests can assert what Qovery holds.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
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
    pub created_at: String,
    pub updated_at: String,
}

/// A Qovery service that deploys an image from one of the organization's registries: a
/// container, or a lifecycle or cron job (`ContainerRegistryAssociatedServiceType`).
#[derive(Clone, Debug)]
pub struct Service {
    pub id: String,
    pub name: String,
    /// `CONTAINER`, `LIFECYCLE` or `CRON`.
    pub service_type: String,
    pub environment_id: String,
    pub environment_name: String,
    pub project_id: String,
    pub project_name: String,
    pub registry_id: String,
    /// The image's path in the registry (for GitLab: `group/project[/image]`).
    pub image_name: String,
    pub tag: String,
}

impl Service {
    /// `ContainerRegistryAssociatedServicesResponse`: its seven fields, all required.
    fn associated_json(&self) -> Value {
        json!({
            "project_id": self.project_id,
            "project_name": self.project_name,
            "environment_id": self.environment_id,
            "environment_name": self.environment_name,
            "service_id": self.id,
            "service_name": self.name,
            "service_type": self.service_type,
        })
    }

    /// `ContainerSource`, for the registry `r`.
    fn source_json(&self, r: &Registry) -> Value {
        json!({
            "image_name": self.image_name,
            "tag": self.tag,
            "registry_id": r.id,
            "registry": {"id": r.id, "name": r.name, "url": r.url, "kind": r.kind},
        })
    }

    /// What `ContainerResponse` and `BaseJobResponse` require besides the source.
    fn base_json(&self, service_type: &str) -> Value {
        json!({
            "id": self.id,
            "created_at": "2026-01-01T00:00:00Z",
            "environment": {"id": self.environment_id},
            "maximum_cpu": 16000,
            "maximum_memory": 16384,
            "maximum_gpu": 0,
            "name": self.name,
            "cpu": 500,
            "memory": 512,
            "gpu": 0,
            "healthchecks": {},
            "auto_preview": false,
            "icon_uri": "app://qovery-console/container",
            "service_type": service_type,
        })
    }
}

impl Registry {
    fn json(&self, services: usize) -> Value {
        let mut v = json!({
            "id": self.id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "url": self.url,
            "associated_services_count": services,
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
    pub services: Vec<Service>,
    /// Refuse every registry write with a 400 whose `detail` quotes the request's credential
    /// after this many characters (as a server that echoes its input would), in clear and as
    /// HTTP Basic carries it.
    pub echo_credential_after: Option<usize>,
    /// Requests the organization's API token may still make before Qovery answers 429 (its
    /// documented limit is 1,000 an hour): `None`, no limit.
    pub requests_left: Option<usize>,
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

    /// How many services deploy from registry `id`.
    fn services_of(&self, id: &str) -> usize {
        self.services.iter().filter(|s| s.registry_id == id).count()
    }

    fn registry_json(&self, r: &Registry) -> Value {
        r.json(self.services_of(&r.id))
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
            .route("/organization", get(organizations))
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
            .route(
                "/organization/{organizationId}/containerRegistry/{containerRegistryId}/images",
                get(image_versions),
            )
            .route("/container/{containerId}", get(get_container))
            .route("/job/{jobId}", get(get_job))
            .route_layer(middleware::from_fn_with_state(state.clone(), rate_limit))
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

    /// Adds a registry directly (as if made in the console), with one container service per
    /// image (`path:tag`) deployed from it; returns its id.
    pub fn add_registry(&self, org: &str, name: &str, cluster: bool, images: &[&str]) -> String {
        let id = {
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
                created_at: now.clone(),
                updated_at: now,
            });
            id
        };
        for (i, image) in images.iter().enumerate() {
            self.add_service(
                &id,
                "CONTAINER",
                &format!("{name}-{i}"),
                "production",
                image,
            );
        }
        id
    }

    /// A service of environment `environment` deploying `image` (`path:tag`) from registry
    /// `registry_id`: `service_type` `CONTAINER`, `LIFECYCLE` or `CRON`. Returns its id.
    pub fn add_service(
        &self,
        registry_id: &str,
        service_type: &str,
        name: &str,
        environment: &str,
        image: &str,
    ) -> String {
        let (image_name, tag) = image.rsplit_once(':').expect("an image as path:tag");
        let mut s = lock(&self.state);
        let id = s.uuid();
        let environment_id = s.uuid();
        s.services.push(Service {
            id: id.clone(),
            name: name.into(),
            service_type: service_type.into(),
            environment_id,
            environment_name: environment.into(),
            project_id: "00000000-0000-4000-8000-0000000000a1".into(),
            project_name: "acme".into(),
            registry_id: registry_id.into(),
            image_name: image_name.into(),
            tag: tag.into(),
        });
        id
    }

    /// The services of registry `registry_id` are deleted (or moved to another registry).
    pub fn remove_services(&self, registry_id: &str) {
        lock(&self.state)
            .services
            .retain(|s| s.registry_id != registry_id);
    }

    /// From now on, Qovery answers 429 once the organization's token has made `n` more
    /// requests (`None`: no limit).
    pub fn limit_requests(&self, n: Option<usize>) {
        lock(&self.state).requests_left = n;
    }

    /// A registry a person set up by hand, as Qovery's guide for GitLab says: a credential
    /// regwarden did not make, no marker, the URL of the GitLab registry `url` (`GITLAB_CR`
    /// for gitlab.com's, `GENERIC_CR` for a self-managed one), and a container service per
    /// image it serves (`path:tag`).
    pub fn add_hand_made_registry(
        &self,
        org: &str,
        name: &str,
        url: &str,
        images: &[&str],
        username: &str,
        password: &str,
    ) -> String {
        let id = self.add_registry(org, name, false, images);
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

    /// Sets a registry's kind (`GITLAB_CR`, `GENERIC_CR`, ...), as a person may in the console.
    pub fn set_registry_kind(&self, id: &str, kind: &str) {
        let mut s = lock(&self.state);
        let r = s.registries.iter_mut().find(|r| r.id == id).unwrap();
        r.kind = kind.into();
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

/// `GET /organization` (listOrganization, docs/reference/qovery.md §4): `{"results":
/// [Organization]}`. An organization's API token sees its own organization (what Qovery
/// returns for one is not documented; its own is the least it can be).
async fn organizations(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let s = lock(&state);
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Token "))
        .unwrap_or("");
    let Some((_, own)) = s.tokens.iter().find(|(t, _)| t == presented) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "Access token is missing or invalid",
        );
    };
    let results: Vec<Value> = s
        .organizations
        .iter()
        .filter(|(id, _)| id == own)
        .map(|(id, name)| {
            json!({
                "id": id,
                "created_at": "2026-01-01T00:00:00Z",
                "name": name,
                "plan": "TEAM",
            })
        })
        .collect();
    Json(json!({ "results": results })).into_response()
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
        .map(|r| s.registry_json(r))
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
/// The refusal of a server that quotes what it was sent (`echo_credential_after`).
fn echo(state: &Shared, request: &Request) -> Option<Response> {
    use base64::Engine;
    let after = lock(state).echo_credential_after?;
    let (user, password) = (request.username.clone()?, request.password.clone()?);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    Some(error(
        StatusCode::BAD_REQUEST,
        &format!(
            "{} invalid config password={password} authorization=Basic {basic}",
            "x".repeat(after)
        ),
    ))
}

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
    if let Some(r) = echo(&state, &request) {
        return r;
    }
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
        created_at: now.clone(),
        updated_at: now,
    };
    let json = s.registry_json(&registry);
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
        Some(r) => Json(s.registry_json(r)).into_response(),
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
    if let Some(r) = echo(&state, &request) {
        return r;
    }
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
    let registry = registry.clone();
    Json(s.registry_json(&registry)).into_response()
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
    if s.services_of(&id) > 0 {
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
    let results: Vec<Value> = s
        .services
        .iter()
        .filter(|x| x.registry_id == registry.id)
        .map(Service::associated_json)
        .collect();
    Json(json!({ "results": results })).into_response()
}

/// `getContainerVersions`: Qovery lists an image's tags through the saved registry, with the
/// credential it holds (docs/reference/qovery.md §10, "Qovery's own view of a saved
/// registry"): the Docker Registry v2 `tags/list`, behind the registry's token realm. Qovery
/// documents neither what it does nor how it fails; the fake really asks the registry, and a
/// registry that refuses the credential is answered as create's own check is (400, "Cannot
/// connect to the container registry").
async fn image_versions(
    State(state): State<Shared>,
    Path((org, id)): Path<(String, String)>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (registry, ca) = {
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
        let ca = s.credential_check.as_ref().and_then(|c| c.ca.clone());
        (registry.clone(), ca)
    };
    let Some(image) = query.get("imageName") else {
        return Json(json!({ "results": [] })).into_response();
    };
    match list_tags(&registry, image, ca.as_deref()).await {
        Ok(tags) => {
            Json(json!({ "results": [{"image_name": image, "versions": tags}] })).into_response()
        }
        Err(why) => error(
            StatusCode::BAD_REQUEST,
            &format!("Cannot connect to the container registry: {why}"),
        ),
    }
}

/// `GET /v2/<image>/tags/list`, with a bearer token from the realm the registry names, asked
/// with the registry's username and password (HTTP Basic), as a Docker client does.
async fn list_tags(
    registry: &Registry,
    image: &str,
    ca: Option<&std::path::Path>,
) -> Result<Vec<String>, String> {
    let http = regwarden::outbound::client(ca, std::time::Duration::from_secs(5)).unwrap();
    let url = format!(
        "{}/v2/{image}/tags/list",
        registry.url.trim_end_matches('/')
    );
    let first = http.get(&url).send().await.map_err(|e| e.to_string())?;
    let answer = if first.status() == StatusCode::UNAUTHORIZED {
        let header = first
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let challenges = regwarden::registry::challenge::parse(&header);
        let bearer = challenges
            .iter()
            .find(|c| c.is("bearer"))
            .ok_or("no bearer challenge")?;
        let realm = bearer.param("realm").ok_or("no realm")?;
        let mut token_request = http.get(realm).query(&[
            ("service", bearer.param("service").unwrap_or_default()),
            ("scope", &format!("repository:{image}:pull")),
        ]);
        if let (Some(user), Some(password)) = (&registry.username, &registry.password) {
            token_request = token_request.basic_auth(user, Some(password));
        }
        let token = token_request.send().await.map_err(|e| e.to_string())?;
        if !token.status().is_success() {
            return Err(format!("the realm answered {}", token.status()));
        }
        let token: Value = token.json().await.map_err(|e| e.to_string())?;
        let token = token["token"].as_str().ok_or("no token")?.to_string();
        http.get(&url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| e.to_string())?
    } else {
        first
    };
    if !answer.status().is_success() {
        return Err(format!("the registry answered {}", answer.status()));
    }
    let list: Value = answer.json().await.map_err(|e| e.to_string())?;
    Ok(list["tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// A service and its registry, once the token may read them (its organization's).
fn service_of<'a>(
    s: &'a QoveryState,
    headers: &HeaderMap,
    id: &str,
    types: &[&str],
) -> Result<(&'a Service, &'a Registry), Response> {
    let service = s
        .services
        .iter()
        .find(|x| x.id == id && types.contains(&x.service_type.as_str()))
        .ok_or_else(|| missing(s))?;
    let registry = s
        .registries
        .iter()
        .find(|r| r.id == service.registry_id)
        .ok_or_else(|| missing(s))?;
    authorize(s, headers, &registry.organization)?;
    Ok((service, registry))
}

/// `getContainer` (`GET /container/{containerId}`): `ContainerResponse`, whose
/// `ContainerSource` fields (`image_name`, `tag`, `registry_id`, `registry`) are at its top
/// level.
async fn get_container(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let s = lock(&state);
    match service_of(&s, &headers, &id, &["CONTAINER"]) {
        Ok((service, registry)) => {
            let mut body = service.base_json("CONTAINER");
            for (k, v) in service.source_json(registry).as_object().unwrap() {
                body[k] = v.clone();
            }
            body["min_running_instances"] = json!(1);
            body["max_running_instances"] = json!(1);
            Json(body).into_response()
        }
        Err(r) => r,
    }
}

/// `getJob` (`GET /job/{jobId}`): a `LifecycleJobResponse` or `CronJobResponse` (by
/// `job_type`), whose image is `source.image`.
async fn get_job(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let s = lock(&state);
    match service_of(&s, &headers, &id, &["LIFECYCLE", "CRON"]) {
        Ok((service, registry)) => {
            let mut body = service.base_json("JOB");
            body["source"] = json!({ "image": service.source_json(registry) });
            body["job_type"] = json!(service.service_type);
            body["schedule"] = if service.service_type == "CRON" {
                json!({"cronjob": {"timezone": "Etc/UTC", "scheduled_at": "0 3 * * *"}})
            } else {
                json!({"on_start": {}})
            };
            Json(body).into_response()
        }
        Err(r) => r,
    }
}

/// Qovery's rate limit ("1000 requests per hour per API token", reference §1): once the
/// budget a test set is spent, 429 with `Retry-After` and `X-RateLimit-*`, without acting.
async fn rate_limit(
    State(state): State<Shared>,
    request: axum::http::Request<Body>,
    next: Next,
) -> Response {
    {
        let mut s = lock(&state);
        if let Some(left) = &mut s.requests_left {
            if *left == 0 {
                let mut r = error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
                let reset = Utc::now().timestamp() + 3600;
                for (name, value) in [
                    ("retry-after", "3600".to_string()),
                    ("x-ratelimit-limit", "1000".to_string()),
                    ("x-ratelimit-remaining", "0".to_string()),
                    ("x-ratelimit-reset", reset.to_string()),
                ] {
                    r.headers_mut()
                        .insert(name, axum::http::HeaderValue::from_str(&value).unwrap());
                }
                return r;
            }
            *left -= 1;
        }
    }
    next.run(request).await
}
