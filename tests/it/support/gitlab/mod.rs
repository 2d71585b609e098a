//! A stateful fake of the parts of GitLab regwarden talks to, faithful to
//! `docs/reference/gitlab.md`: the registry token realm `/jwt/auth` (§5), projects, deploy
//! tokens (§3) and access tokens (§4) with offset pagination (§8), and CI ID tokens (§7).
//! Tokens live in one state, so a token revoked through the API is refused by the real
//! registry on the next check.
//!
//! This module holds that state and [`FakeGitlab`], the handle tests drive it with. Each
//! concern serves its own endpoints from its own module, whose `routes()` is merged in
//! [`FakeGitlab::start`]:
//!
//! - `api`: the API token's authorization, pagination, project and group look-ups;
//! - `tokens`: deploy tokens and project and group access tokens;
//! - `realm`: the registry's token realm and the JWTs it signs;
//! - `ci`: the JWKS and CI ID tokens;
//! - `accounts`: service accounts, their personal access tokens, and memberships.
//!
//! A new concern (service accounts, say) gets a module of its own with its `routes()`,
//! merged there, and keeps its records in [`GitlabState`].

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, middleware};
use chrono::{DateTime, Duration as Days, NaiveDate, Utc};
use serde_json::{Value, json};

use super::faults::{Fault, Faults, SharedFaults, inject};
use super::pki::SigningKey;
use super::server::Served;

pub mod accounts;
mod api;
mod ci;
mod realm;
mod tokens;

pub use realm::{ISSUER, SERVICE};

/// Who owns a token: a project or a group, by full path, or a user (personal token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    Project(String),
    Group(String),
    /// A personal access token: reaches every project of the fake.
    User,
    /// A personal access token of service account `user_id`: reaches what the account is a
    /// member of (`accounts.rs`).
    Account(u64),
}

impl Owner {
    /// Whether the owner reaches the repository `path` (a project path or an image under it).
    fn reaches(&self, path: &str) -> bool {
        match self {
            Owner::Project(p) => path == p || path.starts_with(&format!("{p}/")),
            Owner::Group(g) => path.starts_with(&format!("{g}/")),
            Owner::User => true,
            // Through memberships, which the state knows: see `GitlabState::member_level`.
            Owner::Account(_) => false,
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
    pub service_accounts: Vec<accounts::ServiceAccount>,
    pub members: Vec<accounts::Member>,
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

    fn new_secret(&mut self, prefix: &str) -> (u64, String) {
        let id = self.id();
        (id, format!("{prefix}{}", random_suffix(id)))
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
        // Each concern brings its routes; faults and call counts cover them all.
        let router = Router::new()
            .merge(api::routes())
            .merge(accounts::routes())
            .merge(tokens::routes())
            .merge(realm::routes())
            .merge(ci::routes())
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
}
