//! The container registry's token realm, GitLab's `/jwt/auth` (`docs/reference/gitlab.md`
//! §5): the basic credentials a client presents, what their scopes allow, and the registry
//! JWT it signs, with the key the real registry trusts or, to play a misconfigured GitLab,
//! another one.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::{App, FakeGitlab, Owner, RegistryAccess, SigningKey, random_suffix};

/// The JWT issuer and service the fake realm and the real registry agree on.
pub const ISSUER: &str = "regwarden-test-issuer";
pub const SERVICE: &str = "container_registry";

pub(super) fn routes() -> Router<App> {
    Router::new().route("/jwt/auth", get(jwt_auth))
}

impl FakeGitlab {
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
    /// A project or group access token's role (its bot user's); none for a deploy token.
    role: Option<u8>,
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
                (Some(t), _) => Some((t.scopes.clone(), t.owner.clone(), String::new(), None)),
                (None, Some(t)) => Some((
                    t.scopes.clone(),
                    t.owner.clone(),
                    user,
                    t.is_bot().then_some(t.access_level),
                )),
                _ => None,
            };
            let Some((scopes, owner, subject, role)) = found else {
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
                role,
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
        // The project that holds the repository, and whether it has a registry at all: a
        // project whose `container_registry_access_level` is `disabled` grants nothing
        // (`ContainerRegistryAuthenticationService#can_access?` asks for
        // `read_container_image`, which a disabled feature denies).
        let Some(project) = s
            .project_of_repository(name)
            .filter(|p| p.registry != RegistryAccess::Disabled)
        else {
            continue;
        };
        // A service account reaches a registry through its role: Reporter pulls, Developer
        // pushes; a project or group access token's bot through its token's role in what owns
        // it; a deploy token through what owns it.
        let (may_pull, may_push) = match (&id.owner, id.role) {
            (Owner::User, _) => (true, true),
            (Owner::Account(user), _) => {
                let level = s.member_level(*user, name);
                (level >= 20, level >= 30)
            }
            (owner, Some(level)) => {
                let held = s.holds(owner, &project.path);
                (held && level >= 20, held && level >= 30)
            }
            (owner, None) => {
                let held = s.holds(owner, &project.path);
                (held, held)
            }
        };
        let granted: Vec<&str> = actions
            .split(',')
            .filter(|a| match *a {
                "pull" => id.read && may_pull,
                "push" => id.write && may_push,
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
