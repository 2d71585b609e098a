//! A stateful fake of the parts of GitLab regwarden talks to, faithful to
//! `shared/reference/gitlab.md`: the registry token realm `/jwt/auth` (§5) and the REST API
//! token endpoints (§4, §8). Tokens live in one state, so a token revoked here is refused by
//! the real registry on the next check.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::pki::SigningKey;
use super::server::Served;

/// The JWT issuer and service the fake realm and the real registry agree on.
pub const ISSUER: &str = "regwarden-test-issuer";
pub const SERVICE: &str = "container_registry";

/// Who owns a token: a project or a group, by full path.
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
pub struct DeployToken {
    pub id: u64,
    pub name: String,
    pub username: String,
    pub token: String,
    pub scopes: Vec<String>,
    pub owner: Owner,
    pub expires_at: Option<SystemTime>,
    pub revoked: bool,
}

#[derive(Clone, Debug)]
pub struct AccessToken {
    pub id: u64,
    pub name: String,
    pub token: String,
    pub scopes: Vec<String>,
    pub owner: Owner,
    pub expires_at: Option<SystemTime>,
    pub revoked: bool,
}

fn active(revoked: bool, expires_at: Option<SystemTime>) -> bool {
    !revoked && expires_at.is_none_or(|e| e > SystemTime::now())
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
    pub deploy_tokens: Vec<DeployToken>,
    pub access_tokens: Vec<AccessToken>,
    /// Calls per route, e.g. `"GET /jwt/auth"`.
    pub calls: HashMap<String, usize>,
    /// Sign registry JWTs with a key the registry does not trust (a misconfigured GitLab).
    pub sign_with_untrusted_key: bool,
}

impl GitlabState {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

fn random_suffix(seed: u64) -> String {
    let a = RandomState::new().hash_one(seed);
    let b = RandomState::new().hash_one(a);
    format!("{a:016x}{b:08x}")
}

struct Keys {
    trusted: SigningKey,
    untrusted: SigningKey,
}

#[derive(Clone)]
pub struct FakeGitlab {
    pub state: Arc<Mutex<GitlabState>>,
    keys: Arc<Keys>,
    served: Served,
}

#[derive(Clone)]
struct AppState {
    state: Arc<Mutex<GitlabState>>,
    keys: Arc<Keys>,
}

impl FakeGitlab {
    /// Starts the fake on a free loopback port; its keys are written to `dir`.
    pub async fn start(dir: &Path) -> Self {
        let keys = Arc::new(Keys {
            trusted: SigningKey::generate(dir, "gitlab-registry-signer"),
            untrusted: SigningKey::generate(dir, "some-other-signer"),
        });
        let state = Arc::new(Mutex::new(GitlabState::default()));
        let app = Router::new()
            .route("/jwt/auth", get(jwt_auth))
            .route("/api/v4/personal_access_tokens/self", get(token_self))
            .with_state(AppState {
                state: state.clone(),
                keys: keys.clone(),
            });
        let served = Served::start(app).await;
        Self {
            state,
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
    pub fn signer_cert(&self) -> &Path {
        &self.keys.trusted.cert_path
    }

    pub fn calls(&self, route: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .calls
            .get(route)
            .copied()
            .unwrap_or(0)
    }

    pub fn add_deploy_token(&self, owner: Owner, scopes: &[&str]) -> Issued {
        let mut s = self.state.lock().unwrap();
        let id = s.id();
        let token = DeployToken {
            id,
            name: format!("deploy-{id}"),
            username: format!("gitlab+deploy-token-{id}"),
            token: format!("gldt-{}", random_suffix(id)),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            owner,
            expires_at: None,
            revoked: false,
        };
        let issued = Issued {
            id,
            username: token.username.clone(),
            token: token.token.clone(),
        };
        s.deploy_tokens.push(token);
        issued
    }

    pub fn add_access_token(&self, owner: Owner, name: &str, scopes: &[&str]) -> Issued {
        let mut s = self.state.lock().unwrap();
        let id = s.id();
        let token = AccessToken {
            id,
            name: name.to_string(),
            token: format!("glpat-{}", random_suffix(id)),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            owner,
            expires_at: None,
            revoked: false,
        };
        let issued = Issued {
            id,
            username: format!("token-user-{id}"),
            token: token.token.clone(),
        };
        s.access_tokens.push(token);
        issued
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
        let past = SystemTime::now() - std::time::Duration::from_secs(60);
        s.deploy_tokens
            .iter_mut()
            .filter(|t| t.id == id)
            .for_each(|t| t.expires_at = Some(past));
    }

    pub fn set_sign_with_untrusted_key(&self, on: bool) {
        self.state.lock().unwrap().sign_with_untrusted_key = on;
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
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
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
/// `reference/gitlab.md` §5 describes its outcomes.
async fn jwt_auth(
    State(app): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let mut s = app.state.lock().unwrap();
    *s.calls.entry("GET /jwt/auth".into()).or_default() += 1;

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
                .find(|t| t.username == user && t.token == pass && active(t.revoked, t.expires_at));
            let access = s
                .access_tokens
                .iter()
                .find(|t| t.token == pass && active(t.revoked, t.expires_at));
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

/// `GET /api/v4/personal_access_tokens/self` (reference §4, §8): the calling token's record.
async fn token_self(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let mut s = app.state.lock().unwrap();
    *s.calls
        .entry("GET /api/v4/personal_access_tokens/self".into())
        .or_default() += 1;
    let presented = headers
        .get("private-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match s
        .access_tokens
        .iter()
        .find(|t| t.token == presented && active(t.revoked, t.expires_at))
    {
        Some(t) => Json(json!({
            "id": t.id,
            "name": t.name,
            "revoked": t.revoked,
            "created_at": "2026-01-01T00:00:00.000Z",
            "scopes": t.scopes,
            "user_id": 1,
            "last_used_at": null,
            "active": true,
            "expires_at": null,
        }))
        .into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "401 Unauthorized"})),
        )
            .into_response(),
    }
}
