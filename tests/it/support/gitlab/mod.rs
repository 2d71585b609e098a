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
//! - `accounts`: service accounts, their personal access tokens, and memberships;
//! - `hooks`: project and group webhooks.
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
pub mod hooks;
mod realm;
mod tokens;

pub use realm::{ISSUER, SERVICE};

/// Who owns a token, by id: a project or a group (its access tokens' bot user, or its deploy
/// tokens), an administrator, or a service account. Ids, because paths move (renames,
/// transfers), as in GitLab, where a token belongs to a project id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    Project(u64),
    Group(u64),
    /// An administrator's personal access token: Owner of every project and group, and the
    /// only caller of the instance-wide endpoints (`lib/api/users.rb`,
    /// `lib/api/service_accounts.rb`: `authenticated_as_admin!`).
    User,
    /// A personal access token of service account `user_id`: reaches what the account is a
    /// member of (`accounts.rs`).
    Account(u64),
}

/// What a project's `container_registry_access_level` says
/// (`lib/api/entities/project.rb`, `project_feature_string_access_level(project,
/// :container_registry)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryAccess {
    Enabled,
    Private,
    Disabled,
}

impl RegistryAccess {
    fn as_str(self) -> &'static str {
        match self {
            RegistryAccess::Enabled => "enabled",
            RegistryAccess::Private => "private",
            RegistryAccess::Disabled => "disabled",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Project {
    pub id: u64,
    pub path: String,
    pub name: String,
    /// The group's id, or the user namespace's.
    pub namespace_id: u64,
    /// In a user's personal namespace (`namespace.kind` = `user`, `app/models/namespace.rb`).
    pub in_user_namespace: bool,
    pub registry: RegistryAccess,
}

impl Project {
    /// The full path of the project's namespace.
    pub fn namespace_path(&self) -> &str {
        self.path.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
    }
}

#[derive(Clone, Debug)]
pub struct Group {
    pub id: u64,
    pub path: String,
}

/// An old full path of a renamed or transferred project: GitLab's `RedirectRoute`. Project
/// look-ups by path follow it (`find_by_full_path(id, follow_redirects: true)`,
/// `lib/api/helpers.rb#find_project`) until another project takes that path; group paths do not
/// redirect.
#[derive(Clone, Debug)]
pub struct Redirect {
    pub path: String,
    pub project_id: u64,
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
    /// A project or group access token revoked while its bot user is still being deleted
    /// (asynchronously): found, but revoking it again answers 400 "Failed to find bot user";
    /// once the deletion ran ([`FakeGitlab::finish_bot_deletions`]) it is gone (404).
    pub bot_deletion_pending: bool,
}

impl AccessToken {
    pub fn active(&self) -> bool {
        !self.revoked && self.expires_at.is_none_or(|d| d > Utc::now().date_naive())
    }

    /// A project or group access token: its user is a bot (`User#project_bot?`).
    pub fn is_bot(&self) -> bool {
        matches!(self.owner, Owner::Project(_) | Owner::Group(_))
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

/// GitLab's id sequences: each table has its own (`projects`, `namespaces`, `deploy_tokens`,
/// `personal_access_tokens`, `users`), so project 7 and group 7 are unrelated.
#[derive(Default)]
struct Sequences {
    project: u64,
    group: u64,
    deploy_token: u64,
    personal_access_token: u64,
    user: u64,
    hook: u64,
}

fn next(counter: &mut u64) -> u64 {
    *counter += 1;
    *counter
}

/// Something that happens to GitLab's state at a given moment of a test.
pub type StateChange = Box<dyn FnOnce(&mut GitlabState) + Send>;

pub struct GitlabState {
    ids: Sequences,
    pub projects: Vec<Project>,
    pub groups: Vec<Group>,
    pub redirects: Vec<Redirect>,
    /// Projects shared into groups (`project_group_links`): `(project id, group id)`.
    pub shares: Vec<(u64, u64)>,
    pub deploy_tokens: Vec<DeployToken>,
    pub access_tokens: Vec<AccessToken>,
    pub service_accounts: Vec<accounts::ServiceAccount>,
    pub members: Vec<accounts::Member>,
    pub hooks: Vec<hooks::Hook>,
    /// The hooks API as before GitLab 19.0: no signing tokens.
    pub hooks_before_19: bool,
    /// Sign registry JWTs with a key the registry does not trust (a misconfigured GitLab).
    pub sign_with_untrusted_key: bool,
    /// The longest lifetime of a personal, project or group access token, in days
    /// (`PersonalAccessToken::MAX_PERSONAL_ACCESS_TOKEN_LIFETIME_IN_DAYS`, 365; an
    /// administrator may set less).
    pub max_lifetime_days: i64,
    /// The instance's time zone, in hours east of UTC: `Date.current` is that day, not UTC's.
    pub utc_offset_hours: i64,
    /// Rotate answers give `expires_at` as a date and time (`2027-01-31T00:00:00.000Z`), as
    /// some GitLab versions' entities do, instead of a date.
    pub rotate_answers_datetime: bool,
    /// Runs once, after the first page of a group's project listing is served (something that
    /// happens in GitLab while a client walks the pages).
    pub after_first_page: Option<StateChange>,
    /// The instance registry's `host[:port]` (`Gitlab.config.registry.host_port`), which
    /// starts every project's `container_registry_image_prefix`; `None`: the instance has no
    /// registry (`Gitlab.config.registry.enabled` false), and the prefix is not exposed.
    pub registry_host_port: Option<String>,
}

impl Default for GitlabState {
    fn default() -> Self {
        Self {
            ids: Sequences::default(),
            projects: Vec::new(),
            groups: Vec::new(),
            redirects: Vec::new(),
            shares: Vec::new(),
            deploy_tokens: Vec::new(),
            access_tokens: Vec::new(),
            service_accounts: Vec::new(),
            members: Vec::new(),
            hooks: Vec::new(),
            hooks_before_19: false,
            sign_with_untrusted_key: false,
            registry_host_port: Some("registry.gitlab.invalid".into()),
            max_lifetime_days: 365,
            utc_offset_hours: 0,
            after_first_page: None,
            rotate_answers_datetime: false,
        }
    }
}

impl GitlabState {
    /// Adds a project in a group namespace (and its groups, if new), its registry enabled.
    pub fn add_project(&mut self, path: &str) -> u64 {
        let (namespace, _) = path
            .rsplit_once('/')
            .expect("a project path has a namespace");
        let namespace_id = ensure_group(self, namespace);
        new_project(self, path, namespace_id, false)
    }

    /// A project by id, or by full path following redirects (`lib/api/helpers.rb#find_project`:
    /// an integer is an id; a path is found with `follow_redirects: true`). A path matches
    /// exactly first, else whatever its case (`app/models/concerns/routable.rb`:
    /// `where_full_path_in`, `LOWER(routes.path)`; redirects by `LOWER(redirect_routes.path)`).
    fn project(&self, id_or_path: &str) -> Option<&Project> {
        if let Ok(id) = id_or_path.parse::<u64>() {
            return self.projects.iter().find(|p| p.id == id);
        }
        self.projects
            .iter()
            .find(|p| p.path == id_or_path)
            .or_else(|| {
                self.projects
                    .iter()
                    .find(|p| p.path.eq_ignore_ascii_case(id_or_path))
            })
            .or_else(|| {
                let id = self
                    .redirects
                    .iter()
                    .rev()
                    .find(|r| r.path.eq_ignore_ascii_case(id_or_path))?
                    .project_id;
                self.projects.iter().find(|p| p.id == id)
            })
    }

    /// A group by id or full path (whatever its case); group paths do not redirect.
    fn group(&self, id_or_path: &str) -> Option<&Group> {
        if let Ok(id) = id_or_path.parse::<u64>() {
            return self.groups.iter().find(|g| g.id == id);
        }
        self.groups
            .iter()
            .find(|g| g.path.eq_ignore_ascii_case(id_or_path))
    }

    fn new_hook_id(&mut self) -> u64 {
        next(&mut self.ids.hook)
    }

    fn project_by_id(&self, id: u64) -> Option<&Project> {
        self.projects.iter().find(|p| p.id == id)
    }

    fn group_by_id(&self, id: u64) -> Option<&Group> {
        self.groups.iter().find(|g| g.id == id)
    }

    /// The full path of what `owner` names now (empty for a user or an account).
    pub(super) fn owner_path(&self, owner: &Owner) -> String {
        match owner {
            Owner::Project(id) => self.project_by_id(*id).map(|p| p.path.clone()),
            Owner::Group(id) => self.group_by_id(*id).map(|g| g.path.clone()),
            _ => None,
        }
        .unwrap_or_default()
    }

    /// The project that holds repository `repo` (its path or an image under it).
    pub(super) fn project_of_repository(&self, repo: &str) -> Option<&Project> {
        // Registry paths are the project's full path, lowercase.
        let path_of = |p: &Project| p.path.to_ascii_lowercase();
        self.projects
            .iter()
            .filter(|p| repo == path_of(p) || repo.starts_with(&format!("{}/", path_of(p))))
            .max_by_key(|p| p.path.len())
    }

    /// Whether a project or group `owner` holds the project at `path` (itself, or a project
    /// of the group or its subgroups).
    pub(super) fn holds(&self, owner: &Owner, path: &str) -> bool {
        let own = self.owner_path(owner);
        match owner {
            Owner::Project(_) => !own.is_empty() && path == own,
            Owner::Group(_) => !own.is_empty() && path.starts_with(&format!("{own}/")),
            _ => false,
        }
    }

    fn new_deploy_secret(&mut self) -> (u64, String) {
        let id = next(&mut self.ids.deploy_token);
        (id, format!("gldt-{}", random_suffix(id)))
    }

    /// A new row of `personal_access_tokens` (personal, project and group access tokens).
    fn new_pat_secret(&mut self) -> (u64, String) {
        let id = next(&mut self.ids.personal_access_token);
        (id, format!("glpat-{}", random_suffix(id)))
    }

    fn new_user_id(&mut self) -> u64 {
        next(&mut self.ids.user)
    }

    /// `Date.current` of the instance: today in its time zone.
    pub(super) fn today(&self) -> NaiveDate {
        (Utc::now() + Days::hours(self.utc_offset_hours)).date_naive()
    }

    /// `PersonalAccessToken#expires_at_before_instance_max_expiry_date`: a personal, project
    /// or group access token may not expire later than today (the instance's) plus the maximum
    /// lifetime; GitLab answers 400 "Expires at must be before <date>". Deploy tokens have no
    /// such limit (`app/models/deploy_token.rb`).
    pub(super) fn check_lifetime(&self, expires_at: NaiveDate) -> Result<(), Response> {
        let max = self.today() + Days::days(self.max_lifetime_days);
        if expires_at > max {
            return Err(bad_request_message(&format!(
                "Expires at must be before {}",
                max.format("%Y-%m-%d")
            )));
        }
        Ok(())
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

/// A parameter GitLab's Grape validation refuses (`{"error": "... is missing"}`).
fn bad_request(error: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": error}))).into_response()
}

/// A service's refusal through `bad_request!(message)` (`lib/api/helpers.rb`):
/// `{"message": "400 Bad request - <message>"}`.
fn bad_request_message(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"message": format!("400 Bad request - {message}")})),
    )
        .into_response()
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
            .merge(hooks::routes())
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

    /// Every hook of every project and group.
    pub fn hooks(&self) -> Vec<hooks::Hook> {
        self.state.lock().unwrap().hooks.clone()
    }

    /// A hook someone else made on project or group `path`, pointing at `url`.
    pub fn add_hook(&self, path: &str, url: &str) -> u64 {
        let mut s = self.state.lock().unwrap();
        let owner = match s.project(path) {
            Some(p) => Owner::Project(p.id),
            None => Owner::Group(s.group(path).expect("a project or group").id),
        };
        let id = s.new_hook_id();
        s.hooks.push(hooks::Hook {
            id,
            owner,
            url: url.into(),
            name: None,
            description: None,
            token: Some("someone-elses-secret".into()),
            signing_token: None,
            events: [("push_events".to_string(), true)].into(),
            enable_ssl_verification: true,
            alert_status: "executable".into(),
            disabled_until: None,
        });
        id
    }

    /// GitLab stops sending hook `id` anything after failed deliveries (`alert_status`
    /// `temporarily_disabled` with a `disabled_until`, or `disabled`).
    pub fn disable_hook(&self, id: u64, permanently: bool) {
        let mut s = self.state.lock().unwrap();
        let hook = s.hooks.iter_mut().find(|h| h.id == id).expect("a hook");
        if permanently {
            // Past 40 failures; `disabled_until` keeps the last backoff's end.
            hook.alert_status = "disabled".into();
            hook.disabled_until = Some(
                (Utc::now() - Days::hours(2))
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string(),
            );
        } else {
            hook.alert_status = "temporarily_disabled".into();
            hook.disabled_until = Some(
                (Utc::now() + Days::hours(1))
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string(),
            );
        }
    }

    /// From now on the hooks API is that of a GitLab before 19.0: no signing tokens.
    pub fn hooks_as_before_gitlab_19(&self) {
        self.state.lock().unwrap().hooks_before_19 = true;
    }

    /// Changes what hook `id` holds, as a person would in GitLab's settings.
    pub fn edit_hook(&self, id: u64, edit: impl FnOnce(&mut hooks::Hook)) {
        let mut s = self.state.lock().unwrap();
        edit(s.hooks.iter_mut().find(|h| h.id == id).expect("a hook"));
    }

    /// Adds a group (and the groups above it, if new); its id if it exists already.
    pub fn add_group(&self, path: &str) -> u64 {
        let mut s = self.state.lock().unwrap();
        ensure_group(&mut s, path)
    }

    /// Adds a project in a group namespace (and its groups, if new), its registry enabled.
    pub fn add_project(&self, path: &str) -> u64 {
        self.state.lock().unwrap().add_project(path)
    }

    /// `action` runs on GitLab's state right after the first page of a group's projects is
    /// served.
    pub fn after_first_page_of_group_projects(
        &self,
        action: impl FnOnce(&mut GitlabState) + Send + 'static,
    ) {
        self.state.lock().unwrap().after_first_page = Some(Box::new(action));
    }

    /// Adds a project in user `alice`'s personal namespace (`alice/tool`).
    pub fn add_user_project(&self, path: &str) -> u64 {
        let mut s = self.state.lock().unwrap();
        let namespace_id = s.new_user_id();
        new_project(&mut s, path, namespace_id, true)
    }

    /// The owner that project `path` is now.
    pub fn project_owner(&self, path: &str) -> Owner {
        let s = self.state.lock().unwrap();
        Owner::Project(s.project(path).expect("a project of the fake").id)
    }

    /// The owner that group `path` is.
    pub fn group_owner(&self, path: &str) -> Owner {
        let s = self.state.lock().unwrap();
        Owner::Group(s.group(path).expect("a group of the fake").id)
    }

    pub fn project_id(&self, path: &str) -> u64 {
        self.state
            .lock()
            .unwrap()
            .project(path)
            .expect("a project of the fake")
            .id
    }

    /// Shares project `project` into group `group` (Settings > Members > Invite a group): the
    /// group's project listing shows it unless `with_shared=false`.
    pub fn share_project(&self, project: &str, group: &str) {
        let mut s = self.state.lock().unwrap();
        let p = s.project(project).expect("a project of the fake").id;
        let g = s.group(group).expect("a group of the fake").id;
        s.shares.push((p, g));
    }

    /// Where GitLab says its registry is (`registry.host_port`), or `None` for an instance
    /// without one.
    pub fn set_registry_host_port(&self, host_port: Option<&str>) {
        self.state.lock().unwrap().registry_host_port = host_port.map(str::to_string);
    }

    /// Sets a project's `container_registry_access_level`.
    pub fn set_registry_access(&self, project: &str, access: RegistryAccess) {
        let mut s = self.state.lock().unwrap();
        let id = s.project(project).expect("a project of the fake").id;
        for p in s.projects.iter_mut().filter(|p| p.id == id) {
            p.registry = access;
        }
    }

    /// Renames or transfers project `from` to full path `to` (its groups made if new); the old
    /// path redirects to it until another project takes it.
    pub fn move_project(&self, from: &str, to: &str) {
        let mut s = self.state.lock().unwrap();
        let id = s.project(from).expect("a project of the fake").id;
        let (namespace, name) = to.rsplit_once('/').expect("a project path has a namespace");
        let namespace_id = ensure_group(&mut s, namespace);
        let old = s.project_by_id(id).unwrap().path.clone();
        s.redirects.push(Redirect {
            path: old,
            project_id: id,
        });
        for p in s.projects.iter_mut().filter(|p| p.id == id) {
            p.path = to.into();
            p.name = name.into();
            p.namespace_id = namespace_id;
            p.in_user_namespace = false;
        }
    }

    /// Deletes project `path` (its tokens go with it).
    pub fn destroy_project(&self, path: &str) {
        let mut s = self.state.lock().unwrap();
        let id = s.project(path).expect("a project of the fake").id;
        s.projects.retain(|p| p.id != id);
        s.redirects.retain(|r| r.project_id != id);
        s.deploy_tokens.retain(|t| t.owner != Owner::Project(id));
        s.access_tokens.retain(|t| t.owner != Owner::Project(id));
    }

    /// The instance's maximum lifetime of access tokens, in days.
    pub fn set_max_token_lifetime(&self, days: i64) {
        self.state.lock().unwrap().max_lifetime_days = days;
    }

    /// The instance's time zone, in hours east of UTC.
    pub fn set_utc_offset_hours(&self, hours: i64) {
        self.state.lock().unwrap().utc_offset_hours = hours;
    }

    /// The bot users of revoked access tokens are deleted: their tokens are gone.
    pub fn finish_bot_deletions(&self) {
        let mut s = self.state.lock().unwrap();
        s.access_tokens.retain(|t| !t.bot_deletion_pending);
    }

    pub fn add_deploy_token(&self, owner: Owner, scopes: &[&str]) -> Issued {
        let mut s = self.state.lock().unwrap();
        let (id, token) = s.new_deploy_secret();
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
        let (id, token) = s.new_pat_secret();
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
            bot_deletion_pending: false,
        };
        let issued = Issued {
            id,
            username: format!("project_bot_{id}"),
            token: t.token.clone(),
        };
        s.access_tokens.push(t);
        issued
    }

    /// An API token that may do everything: an administrator's personal access token with
    /// `api`.
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

/// The id of group `path`, made (with the groups above it) if it does not exist.
fn ensure_group(s: &mut GitlabState, path: &str) -> u64 {
    if let Some(g) = s.group(path) {
        return g.id;
    }
    if let Some((parent, _)) = path.rsplit_once('/') {
        ensure_group(s, parent);
    }
    let id = next(&mut s.ids.group);
    s.groups.push(Group {
        id,
        path: path.into(),
    });
    id
}

/// A new project at `path`; a redirect at that path ends (another project took it).
fn new_project(s: &mut GitlabState, path: &str, namespace_id: u64, user: bool) -> u64 {
    let id = next(&mut s.ids.project);
    s.redirects.retain(|r| r.path != path);
    s.projects.push(Project {
        id,
        path: path.into(),
        name: path.rsplit('/').next().unwrap_or(path).into(),
        namespace_id,
        in_user_namespace: user,
        registry: RegistryAccess::Enabled,
    });
    id
}
