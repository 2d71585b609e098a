//! A stateful fake of the parts of GitLab regwarden talks to, faithful to
//! `docs/reference/gitlab.md`: the registry token realm `/jwt/auth` (§5), projects, deploy
//! tokens (§3) and access tokens (§4) with offset pagination (§8). Tokens live in one state,
//! so a token revoked through the API is refused by the real registry on the next check.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router, middleware};
use base64::Engine;
use chrono::{DateTime, Duration as Days, NaiveDate, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::faults::{Fault, Faults, SharedFaults, inject};
use super::pki::SigningKey;
use super::server::Served;

/// The JWT issuer and service the fake realm and the real registry agree on.
pub const ISSUER: &str = "regwarden-test-issuer";
pub const SERVICE: &str = "container_registry";

/// Who owns a token: a project or a group, by full path, or a user (personal token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    Project(String),
    Group(String),
    /// A personal access token: reaches every project of the fake.
    User,
}

impl Owner {
    /// Whether the owner reaches the repository `path` (a project path or an image under it).
    fn reaches(&self, path: &str) -> bool {
        match self {
            Owner::Project(p) => path == p || path.starts_with(&format!("{p}/")),
            Owner::Group(g) => path.starts_with(&format!("{g}/")),
            Owner::User => true,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Project {
    pub id: u64,
    pub path: String,
    pub name: String,
    pub namespace_id: u64,
}

#[derive(Clone, Debug)]
pub struct Group {
    pub id: u64,
    pub path: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployToken {
    pub id: u64,
    pub name: String,
    pub username: String,
    pub token: String,
    pub scopes: Vec<String>,
    pub owner: Owner,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked: bool,
}

impl DeployToken {
    pub fn active(&self) -> bool {
        !self.revoked && self.expires_at.is_none_or(|e| e > Utc::now())
    }

    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "username": self.username,
            "expires_at": self.expires_at.map(|e| e.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
            "revoked": self.revoked,
            "expired": self.expires_at.is_some_and(|e| e <= Utc::now()),
            "scopes": self.scopes,
        })
    }
}

#[derive(Clone, Debug)]
pub struct AccessToken {
    pub id: u64,
    pub name: String,
    pub token: String,
    pub scopes: Vec<String>,
    pub owner: Owner,
    /// Access tokens expire at the start of this day, UTC.
    pub expires_at: Option<NaiveDate>,
    pub revoked: bool,
    pub access_level: u8,
    /// The token this one was rotated into (its family).
    pub rotated_to: Option<u64>,
}

impl AccessToken {
    pub fn active(&self) -> bool {
        !self.revoked && self.expires_at.is_none_or(|d| d > Utc::now().date_naive())
    }

    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "revoked": self.revoked,
            "created_at": "2026-01-01T00:00:00.000Z",
            "scopes": self.scopes,
            "user_id": 1000 + self.id,
            "last_used_at": null,
            "active": self.active(),
            "expires_at": self.expires_at.map(|d| d.format("%Y-%m-%d").to_string()),
            "access_level": self.access_level,
        })
    }
}

/// A token as handed to a test: what a user would copy from GitLab.
#[derive(Clone, Debug)]
pub struct Issued {
    pub id: u64,
    pub username: String,
    pub token: String,
}

#[derive(Default)]
pub struct GitlabState {
    next_id: u64,
    pub projects: Vec<Project>,
    pub groups: Vec<Group>,
    pub deploy_tokens: Vec<DeployToken>,
    pub access_tokens: Vec<AccessToken>,
    /// Sign registry JWTs with a key the registry does not trust (a misconfigured GitLab).
    pub sign_with_untrusted_key: bool,
}

impl GitlabState {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn project(&self, id_or_path: &str) -> Option<&Project> {
        self.projects
            .iter()
            .find(|p| p.path == id_or_path || p.id.to_string() == id_or_path)
    }

    fn group(&self, id_or_path: &str) -> Option<&Group> {
        self.groups
            .iter()
            .find(|g| g.path == id_or_path || g.id.to_string() == id_or_path)
    }

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
    fn authorized_owner(
        &self,
        kind: Kind,
        id: &str,
        headers: &HeaderMap,
    ) -> Result<Owner, Response> {
        let owner = self.owner(kind, id)?;
        authorize(self, headers, Some(&owner))?;
        Ok(owner)
    }

    fn new_secret(&mut self, prefix: &str) -> (u64, String) {
        let id = self.id();
        (id, format!("{prefix}{}", random_suffix(id)))
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Project,
    Group,
}

fn random_suffix(seed: u64) -> String {
    let a = RandomState::new().hash_one(seed);
    let b = RandomState::new().hash_one(a);
    format!("{a:016x}{b:08x}")
}

struct Keys {
    trusted: SigningKey,
    untrusted: SigningKey,
    /// Signs CI ID tokens; published at /oauth/discovery/keys.
    ci: SigningKey,
}

/// The `kid` of the CI ID-token key in the fake's JWKS.
pub const CI_KID: &str = "regwarden-test-ci-key";

#[derive(Clone)]
pub struct FakeGitlab {
    pub state: Arc<Mutex<GitlabState>>,
    pub faults: SharedFaults,
    keys: Arc<Keys>,
    served: Served,
}

#[derive(Clone)]
struct App {
    state: Arc<Mutex<GitlabState>>,
    keys: Arc<Keys>,
}

impl App {
    fn lock(&self) -> MutexGuard<'_, GitlabState> {
        self.state.lock().unwrap()
    }
}

fn not_found(message: &str) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"message": message}))).into_response()
}

fn bad_request(error: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": error}))).into_response()
}

impl FakeGitlab {
    /// Starts the fake on a free loopback port; its keys are written to `dir`.
    pub async fn start(dir: &FsPath) -> Self {
        let keys = Arc::new(Keys {
            trusted: SigningKey::generate(dir, "gitlab-registry-signer"),
            untrusted: SigningKey::generate(dir, "some-other-signer"),
            ci: SigningKey::generate(dir, "gitlab-ci-id-token-signer"),
        });
        let state = Arc::new(Mutex::new(GitlabState::default()));
        let faults: SharedFaults = Arc::new(Mutex::new(Faults::default()));
        let app = App {
            state: state.clone(),
            keys: keys.clone(),
        };
        let mut router = Router::new()
            .route("/jwt/auth", get(jwt_auth))
            .route("/api/v4/personal_access_tokens/self", get(token_self))
            .route("/oauth/discovery/keys", get(jwks))
            .route("/api/v4/projects/{id}", get(get_project))
            .route("/api/v4/groups/{id}/projects", get(group_projects));
        for (prefix, kind) in [("projects", Kind::Project), ("groups", Kind::Group)] {
            let tokens = format!("/api/v4/{prefix}/{{id}}/deploy_tokens");
            let access = format!("/api/v4/{prefix}/{{id}}/access_tokens");
            router = router
                .route(
                    &tokens,
                    get(move |a, p, q, h| list_deploy_tokens(kind, a, p, q, h))
                        .post(move |a, p, h, b| create_deploy_token(kind, a, p, h, b)),
                )
                .route(
                    &format!("{tokens}/{{token_id}}"),
                    get(move |a, p, h| get_deploy_token(kind, a, p, h))
                        .delete(move |a, p, h| delete_deploy_token(kind, a, p, h)),
                )
                .route(
                    &access,
                    get(move |a, p, q, h| list_access_tokens(kind, a, p, q, h))
                        .post(move |a, p, h, b| create_access_token(kind, a, p, h, b)),
                )
                .route(
                    &format!("{access}/{{token_id}}"),
                    delete(move |a, p, h| revoke_access_token(kind, a, p, h)),
                )
                .route(
                    &format!("{access}/{{token_id}}/rotate"),
                    post(move |a, p, h, b| rotate_access_token(kind, a, p, h, b)),
                );
        }
        let router = router
            .route_layer(middleware::from_fn_with_state(faults.clone(), inject))
            .with_state(app);
        let served = Served::start(router).await;
        Self {
            state,
            faults,
            keys,
            served,
        }
    }

    pub fn url(&self) -> String {
        self.served.url()
    }

    pub fn realm(&self) -> String {
        format!("{}/jwt/auth", self.url())
    }

    /// The certificate the registry must trust (`auth.token.rootcertbundle`).
    pub fn signer_cert(&self) -> &FsPath {
        &self.keys.trusted.cert_path
    }

    pub fn calls(&self, route: &str) -> usize {
        self.faults.lock().unwrap().calls(route)
    }

    pub fn total_calls(&self) -> usize {
        self.faults.lock().unwrap().total_calls()
    }

    /// The next `times` calls of `route` (e.g. `"POST /api/v4/projects/{id}/deploy_tokens"`) fail so.
    pub fn fail(&self, route: &str, fault: Fault, times: usize) {
        self.faults.lock().unwrap().push(route, fault, times);
    }

    pub fn add_group(&self, path: &str) -> u64 {
        let mut s = self.state.lock().unwrap();
        let id = s.id();
        s.groups.push(Group {
            id,
            path: path.into(),
        });
        id
    }

    /// Adds a project (and its group, if new).
    pub fn add_project(&self, path: &str) -> u64 {
        let group_path = path.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let namespace_id = match self.state.lock().unwrap().group(group_path) {
            Some(g) => g.id,
            None => 0,
        };
        let namespace_id = if namespace_id == 0 {
            self.add_group(group_path)
        } else {
            namespace_id
        };
        let mut s = self.state.lock().unwrap();
        let id = s.id();
        s.projects.push(Project {
            id,
            path: path.into(),
            name: path.rsplit('/').next().unwrap_or(path).into(),
            namespace_id,
        });
        id
    }

    pub fn add_deploy_token(&self, owner: Owner, scopes: &[&str]) -> Issued {
        let mut s = self.state.lock().unwrap();
        let (id, token) = s.new_secret("gldt-");
        let t = DeployToken {
            id,
            name: format!("deploy-{id}"),
            username: format!("gitlab+deploy-token-{id}"),
            token,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            owner,
            expires_at: None,
            revoked: false,
        };
        let issued = Issued {
            id,
            username: t.username.clone(),
            token: t.token.clone(),
        };
        s.deploy_tokens.push(t);
        issued
    }

    pub fn add_access_token(&self, owner: Owner, name: &str, scopes: &[&str]) -> Issued {
        let mut s = self.state.lock().unwrap();
        let (id, token) = s.new_secret("glpat-");
        let t = AccessToken {
            id,
            name: name.to_string(),
            token,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            owner,
            expires_at: None,
            revoked: false,
            access_level: 40,
            rotated_to: None,
        };
        let issued = Issued {
            id,
            username: format!("project_bot_{id}"),
            token: t.token.clone(),
        };
        s.access_tokens.push(t);
        issued
    }

    /// An API token that may do everything (Maintainer or Owner with `api`).
    pub fn admin_token(&self) -> String {
        self.add_access_token(Owner::User, "regwarden-admin", &["api"])
            .token
    }

    pub fn deploy_tokens(&self) -> Vec<DeployToken> {
        self.state.lock().unwrap().deploy_tokens.clone()
    }

    pub fn access_tokens(&self) -> Vec<AccessToken> {
        self.state.lock().unwrap().access_tokens.clone()
    }

    pub fn revoke_deploy_token(&self, id: u64) {
        let mut s = self.state.lock().unwrap();
        s.deploy_tokens
            .iter_mut()
            .filter(|t| t.id == id)
            .for_each(|t| t.revoked = true);
    }

    pub fn expire_deploy_token(&self, id: u64) {
        let mut s = self.state.lock().unwrap();
        let past = Utc::now() - Days::minutes(1);
        s.deploy_tokens
            .iter_mut()
            .filter(|t| t.id == id)
            .for_each(|t| t.expires_at = Some(past));
    }

    pub fn set_sign_with_untrusted_key(&self, on: bool) {
        self.state.lock().unwrap().sign_with_untrusted_key = on;
    }

    /// A CI job's ID token (reference §7), signed with the key the JWKS publishes. The ids are
    /// strings, as in GitLab's example. `kid` and `exp_in` let tests spoil it.
    pub fn mint_id_token(&self, project_path: &str, aud: &str, kid: &str, exp_in: i64) -> String {
        let s = self.state.lock().unwrap();
        let project = s
            .project(project_path)
            .cloned()
            .expect("a project of the fake");
        drop(s);
        let now = Utc::now().timestamp();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_string());
        header.typ = Some("JWT".into());
        let claims = json!({
            "iss": self.url(),
            "sub": format!("project_path:{project_path}:ref_type:branch:ref:main"),
            "aud": aud,
            "iat": now,
            "nbf": now - 1,
            "exp": now + exp_in,
            "jti": random_suffix(now as u64),
            "project_id": project.id.to_string(),
            "project_path": project_path,
            "namespace_id": project.namespace_id.to_string(),
            "namespace_path": project_path.rsplit_once('/').map(|(g, _)| g).unwrap_or(""),
            "job_id": "1212",
            "ref": "main",
            "ref_type": "branch",
            "ref_protected": "true",
        });
        let key = EncodingKey::from_rsa_pem(&self.keys.ci.key_pem).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }

    /// A registry JWT granting `actions` on `repository`, as GitLab would for its own jobs:
    /// lets a test push an image without going through a credential.
    pub fn mint_registry_jwt(&self, repository: &str, actions: &[&str]) -> String {
        sign(
            &self.keys.trusted,
            "regwarden-test-admin",
            json!([{"type": "repository", "name": repository, "actions": actions}]),
        )
    }
}

fn sign(key: &SigningKey, subject: &str, access: Value) -> String {
    let now = Utc::now().timestamp() as u64;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    header.typ = Some("JWT".into());
    let claims = json!({
        "iss": ISSUER,
        "aud": SERVICE,
        "sub": subject,
        "iat": now,
        "nbf": now - 5,
        "exp": now + 300,
        "jti": random_suffix(now),
        "access": access,
    });
    let encoding = EncodingKey::from_rsa_pem(&key.key_pem).expect("an RSA key in PEM");
    jsonwebtoken::encode(&header, &claims, &encoding).expect("signing works")
}

// ---------------------------------------------------------------------------------------
// REST API
// ---------------------------------------------------------------------------------------

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
fn paginate(items: Vec<Value>, query: &HashMap<String, String>, url_path: &str) -> Response {
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

async fn list_deploy_tokens(
    kind: Kind,
    State(app): State<App>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let s = app.lock();
    let owner = match s.authorized_owner(kind, &id, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let active_only = query.get("active").is_some_and(|v| v == "true");
    let items = s
        .deploy_tokens
        .iter()
        .filter(|t| t.owner == owner && (!active_only || t.active()))
        .map(DeployToken::json)
        .collect();
    paginate(items, &query, "/deploy_tokens")
}

fn scopes_of(body: &Value) -> Option<Vec<String>> {
    match body.get("scopes")? {
        Value::Array(a) => a.iter().map(|v| v.as_str().map(str::to_string)).collect(),
        // "A comma-separated string is also accepted" (reference §3).
        Value::String(s) => Some(s.split(',').map(|x| x.trim().to_string()).collect()),
        _ => None,
    }
}

const DEPLOY_SCOPES: &[&str] = &[
    "read_repository",
    "read_registry",
    "write_registry",
    "read_package_registry",
    "write_package_registry",
    "read_virtual_registry",
    "write_virtual_registry",
];

async fn create_deploy_token(
    kind: Kind,
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut s = app.lock();
    let owner = match s.authorized_owner(kind, &id, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Some(name) = body.get("name").and_then(Value::as_str).map(str::to_string) else {
        return bad_request("name is missing");
    };
    let Some(scopes) = scopes_of(&body).filter(|s| !s.is_empty()) else {
        return bad_request("scopes is missing");
    };
    if scopes.iter().any(|s| !DEPLOY_SCOPES.contains(&s.as_str())) {
        return bad_request("scopes does not have a valid value");
    }
    let expires_at = match body.get("expires_at").and_then(Value::as_str) {
        None => None,
        Some(text) => match DateTime::parse_from_rfc3339(text) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => return bad_request("expires_at is invalid"),
        },
    };
    let (token_id, secret) = s.new_secret("gldt-");
    let token = DeployToken {
        id: token_id,
        name,
        username: body
            .get("username")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("gitlab+deploy-token-{token_id}")),
        token: secret.clone(),
        scopes,
        owner,
        expires_at,
        revoked: false,
    };
    let mut json = token.json();
    json["token"] = Value::String(secret);
    s.deploy_tokens.push(token);
    (StatusCode::CREATED, Json(json)).into_response()
}

async fn get_deploy_token(
    kind: Kind,
    State(app): State<App>,
    Path((id, token_id)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Response {
    let s = app.lock();
    let owner = match s.authorized_owner(kind, &id, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    match s
        .deploy_tokens
        .iter()
        .find(|t| t.id == token_id && t.owner == owner)
    {
        Some(t) => Json(t.json()).into_response(),
        None => not_found("404 Not found"),
    }
}

async fn delete_deploy_token(
    kind: Kind,
    State(app): State<App>,
    Path((id, token_id)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Response {
    let mut s = app.lock();
    let owner = match s.authorized_owner(kind, &id, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    // GitLab deletes the record; the token is refused everywhere afterwards.
    let before = s.deploy_tokens.len();
    s.deploy_tokens
        .retain(|t| !(t.id == token_id && t.owner == owner));
    if s.deploy_tokens.len() == before {
        return not_found("404 Not found");
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn list_access_tokens(
    kind: Kind,
    State(app): State<App>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let s = app.lock();
    let owner = match s.authorized_owner(kind, &id, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let state = query.get("state").map(String::as_str);
    let items = s
        .access_tokens
        .iter()
        .filter(|t| t.owner == owner)
        .filter(|t| match state {
            Some("active") => t.active(),
            Some("inactive") => !t.active(),
            _ => true,
        })
        .map(AccessToken::json)
        .collect();
    paginate(items, &query, "/access_tokens")
}

fn parse_date(body: &Value) -> Result<Option<NaiveDate>, Response> {
    match body.get("expires_at").and_then(Value::as_str) {
        None => Ok(None),
        Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| bad_request("expires_at is invalid")),
    }
}

async fn create_access_token(
    kind: Kind,
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut s = app.lock();
    let owner = match s.authorized_owner(kind, &id, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Some(name) = body.get("name").and_then(Value::as_str).map(str::to_string) else {
        return bad_request("name is missing");
    };
    let Some(scopes) = scopes_of(&body).filter(|s| !s.is_empty()) else {
        return bad_request("scopes is missing");
    };
    // Since 16.0 project and group tokens need an expiry (reference §4).
    let expires_at = match parse_date(&body) {
        Ok(Some(d)) => d,
        Ok(None) => return bad_request("expires_at is missing"),
        Err(r) => return r,
    };
    let access_level = body
        .get("access_level")
        .and_then(Value::as_u64)
        .unwrap_or(40) as u8;
    let (token_id, secret) = s.new_secret("glpat-");
    let token = AccessToken {
        id: token_id,
        name,
        token: secret.clone(),
        scopes,
        owner,
        expires_at: Some(expires_at),
        revoked: false,
        access_level,
        rotated_to: None,
    };
    let mut json = token.json();
    json["token"] = Value::String(secret);
    s.access_tokens.push(token);
    (StatusCode::CREATED, Json(json)).into_response()
}

async fn revoke_access_token(
    kind: Kind,
    State(app): State<App>,
    Path((id, token_id)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Response {
    let mut s = app.lock();
    let owner = match s.authorized_owner(kind, &id, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    match s
        .access_tokens
        .iter_mut()
        .find(|t| t.id == token_id && t.owner == owner && !t.revoked)
    {
        Some(t) => {
            t.revoked = true;
            StatusCode::NO_CONTENT.into_response()
        }
        None => not_found("404 Not found"),
    }
}

/// Rotate revokes the old token at once and returns its successor. Rotating a token that
/// was already rotated is reuse: GitLab revokes the active token of the family too.
async fn rotate_access_token(
    kind: Kind,
    State(app): State<App>,
    Path((id, token_id)): Path<(String, u64)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let mut s = app.lock();
    let owner = match s.authorized_owner(kind, &id, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
    let expires_at = match parse_date(&body) {
        Ok(d) => d.unwrap_or_else(|| Utc::now().date_naive() + Days::days(7)),
        Err(r) => return r,
    };
    let Some(old) = s
        .access_tokens
        .iter()
        .find(|t| t.id == token_id && t.owner == owner)
        .cloned()
    else {
        return not_found("404 Not found");
    };
    if old.revoked {
        let mut next = old.rotated_to;
        while let Some(successor) = next {
            let t = s
                .access_tokens
                .iter_mut()
                .find(|t| t.id == successor)
                .unwrap();
            t.revoked = true;
            next = t.rotated_to;
        }
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "401 Unauthorized"})),
        )
            .into_response();
    }
    let (new_id, secret) = s.new_secret("glpat-");
    let successor = AccessToken {
        id: new_id,
        token: secret.clone(),
        expires_at: Some(expires_at),
        revoked: false,
        rotated_to: None,
        ..old.clone()
    };
    let t = s
        .access_tokens
        .iter_mut()
        .find(|t| t.id == token_id)
        .unwrap();
    t.revoked = true;
    t.rotated_to = Some(new_id);
    let mut json = successor.json();
    json["token"] = Value::String(secret);
    s.access_tokens.push(successor);
    Json(json).into_response()
}

/// `GET /oauth/discovery/keys`: the keys CI ID tokens are signed with (reference §7).
async fn jwks(State(app): State<App>) -> Response {
    Json(json!({"keys": [{
        "kty": "RSA",
        "kid": CI_KID,
        "e": "AQAB",
        "n": app.keys.ci.modulus_b64url,
        "use": "sig",
        "alg": "RS256",
    }]}))
    .into_response()
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

// ---------------------------------------------------------------------------------------
// The registry's token realm
// ---------------------------------------------------------------------------------------

fn registry_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"errors": [{"code": code, "message": message}]})),
    )
        .into_response()
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// What a credential may do in the registry, and where.
struct Identity {
    subject: String,
    read: bool,
    write: bool,
    owner: Owner,
}

fn abilities(scopes: &[String]) -> (bool, bool) {
    let has = |s: &str| scopes.iter().any(|x| x == s);
    // read_api includes read_container_image; api is everything (reference §5).
    let read = has("read_registry") || has("api") || has("read_api");
    let write = has("write_registry") || has("api");
    (read, write)
}

/// GitLab's `/jwt/auth` (JwtController + ContainerRegistryAuthenticationService), as
/// `docs/reference/gitlab.md` §5 describes its outcomes.
async fn jwt_auth(
    State(app): State<App>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let s = app.lock();
    if params
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.as_str())
        != Some(SERVICE)
    {
        return StatusCode::NOT_FOUND.into_response();
    }
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect();

    let identity = match basic_credentials(&headers) {
        None => None,
        Some((user, pass)) => {
            let deploy = s
                .deploy_tokens
                .iter()
                .find(|t| t.username == user && t.token == pass && t.active());
            let access = s
                .access_tokens
                .iter()
                .find(|t| t.token == pass && t.active());
            let found = match (deploy, access) {
                (Some(t), _) => Some((t.scopes.clone(), t.owner.clone(), String::new())),
                (None, Some(t)) => Some((t.scopes.clone(), t.owner.clone(), user)),
                _ => None,
            };
            let Some((scopes, owner, subject)) = found else {
                return registry_error(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "HTTP Basic: Access denied. If a password was provided for Git authentication, the password was incorrect or you're required to use a token instead of a password.",
                );
            };
            let (read, write) = abilities(&scopes);
            if !read && !write {
                return registry_error(StatusCode::FORBIDDEN, "DENIED", "access forbidden");
            }
            Some(Identity {
                subject,
                read,
                write,
                owner,
            })
        }
    };
    if identity.is_none() && scopes.is_empty() {
        return registry_error(StatusCode::FORBIDDEN, "DENIED", "access forbidden");
    }

    let mut access = Vec::new();
    for scope in &scopes {
        let mut parts = scope.splitn(3, ':');
        let (Some(kind), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if kind != "repository" {
            continue;
        }
        // Anonymous callers only reach public projects; the fake has none.
        let Some(id) = &identity else { continue };
        if !id.owner.reaches(name) {
            continue;
        }
        let granted: Vec<&str> = actions
            .split(',')
            .filter(|a| match *a {
                "pull" => id.read,
                "push" => id.write,
                _ => false,
            })
            .collect();
        if !granted.is_empty() {
            access.push(json!({"type": "repository", "name": name, "actions": granted}));
        }
    }
    let key = if s.sign_with_untrusted_key {
        &app.keys.untrusted
    } else {
        &app.keys.trusted
    };
    let subject = identity.map(|i| i.subject).unwrap_or_default();
    let token = sign(key, &subject, Value::Array(access));
    Json(json!({ "token": token })).into_response()
}
