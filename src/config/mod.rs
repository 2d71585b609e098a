//! The configuration file: one TOML document, read and validated at start-up. This file is
//! its schema and its loading; `validate.rs` the checks serde cannot make, `secrets.rs` the
//! reading of the secrets it names, `units.rs` durations and sizes, `spans.rs` keys to lines.
//!
//! Secrets never live in the file: it names the environment variables (or files) that hold
//! them. Every problem is reported with the key that holds it and its line, all at once, so a
//! user fixes a file in one go.

mod secrets;
mod spans;
mod units;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

pub use reqwest::Url;
pub use secrets::{SecretError, SecretSource};
pub use spans::KeyPath;
use spans::SpanIndex;
pub use units::{ByteSize, HumanDuration};
pub use validate::{SharedAccount, check_binding_name, check_instance};

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub gitlab: GitlabConfig,
    pub qovery: QoveryConfig,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub reconcile: ReconcileConfig,
    #[serde(default)]
    pub defaults: Policy,
    #[serde(default, rename = "binding")]
    pub bindings: Vec<BindingConfig>,
    #[serde(default, rename = "auto_bind")]
    pub auto_binds: Vec<AutoBindConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitlabConfig {
    /// Base URL of the GitLab instance, e.g. `https://gitlab.com`.
    pub url: HttpUrl,
    /// API token (Maintainer, `api` scope): where to read it.
    #[serde(default = "default_gitlab_token_env")]
    pub token_env: String,
    pub token_file: Option<PathBuf>,
    /// The container registry; by default the one GitLab reports for the bound projects
    /// (`https://registry.gitlab.com` for gitlab.com).
    pub registry_url: Option<HttpUrl>,
    /// A PEM bundle of extra trusted CAs, for self-managed GitLab behind a private CA.
    pub ca_file: Option<PathBuf>,
    /// Allow `http://` for `url` and `registry_url` on a host other than loopback: the API
    /// token and every new credential would cross the network in clear.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Rotate the API token itself when it nears expiry, writing the new one to `token_file`.
    #[serde(default)]
    pub rotate_own_token: bool,
    /// Which self-rotate endpoint fits the API token.
    #[serde(default)]
    pub own_token_kind: OwnTokenKind,
    /// With `own_token_kind` `project` or `group`: the token's project or group (full path).
    pub own_token_namespace: Option<String>,
    /// Lifetime of each new API token.
    #[serde(default = "default_own_token_lifetime")]
    pub own_token_lifetime: HumanDuration,
    /// Rotate the API token when it expires within this (also: warn about one that cannot be
    /// rotated).
    #[serde(default = "default_own_token_rotate_before")]
    pub own_token_rotate_before: HumanDuration,
}

/// The kind of regwarden's own API token, which decides its self-rotate endpoint.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnTokenKind {
    /// A personal access token, a service account's included.
    #[default]
    Personal,
    /// A project access token.
    Project,
    /// A group access token.
    Group,
}

fn default_own_token_lifetime() -> HumanDuration {
    HumanDuration::from_secs(30 * 86_400)
}

fn default_own_token_rotate_before() -> HumanDuration {
    HumanDuration::from_secs(7 * 86_400)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QoveryConfig {
    #[serde(default = "default_qovery_url")]
    pub url: HttpUrl,
    #[serde(default = "default_qovery_token_env")]
    pub token_env: String,
    pub token_file: Option<PathBuf>,
    pub organization_id: Uuid,
    /// The kind of the Qovery registries regwarden writes.
    #[serde(default)]
    pub registry_kind: RegistryKindSetting,
    /// Allow an `http://` `url` on a host other than loopback.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Qovery's clusters run inside the network the registry is on (a cluster in the user's
    /// own cloud account, peered): a registry host with only private addresses is reachable.
    #[serde(default)]
    pub private_network: bool,
}

/// `qovery.registry_kind`: `auto` picks `GITLAB_CR` for gitlab.com's registry and
/// `GENERIC_CR` (with the registry URL) for a self-managed one, as Qovery's spec only allows
/// `https://registry.gitlab.com` for `GITLAB_CR`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
pub enum RegistryKindSetting {
    #[default]
    #[serde(rename = "auto")]
    #[value(name = "auto")]
    Auto,
    #[serde(rename = "GITLAB_CR")]
    #[value(name = "GITLAB_CR")]
    GitlabCr,
    #[serde(rename = "GENERIC_CR")]
    #[value(name = "GENERIC_CR")]
    GenericCr,
}

impl RegistryKindSetting {
    /// The kind of the Qovery registries written for the registry at `registry_url`.
    pub fn resolve(self, registry_url: &Url) -> crate::qovery::RegistryKind {
        use crate::qovery::RegistryKind;
        match self {
            RegistryKindSetting::Auto => RegistryKind::for_registry(registry_url),
            RegistryKindSetting::GitlabCr => RegistryKind::GitlabCr,
            RegistryKindSetting::GenericCr => RegistryKind::GenericCr,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Where `/metrics` is served, on its own listener: it names bindings, projects and
    /// token expiries, so never on the public webhook listener. Loopback by default.
    pub metrics_listen: SocketAddr,
    /// Legacy `X-Gitlab-Token` secrets, comma-separated in the variable.
    pub secret_tokens_env: String,
    pub secret_tokens_file: Option<PathBuf>,
    /// Standard Webhooks signing tokens (`whsec_...`), comma-separated in the variable.
    pub signing_tokens_env: String,
    pub signing_tokens_file: Option<PathBuf>,
    pub require_signature: bool,
    pub timestamp_tolerance: HumanDuration,
    pub max_body: ByteSize,
    pub reconcile_interval: HumanDuration,
    pub ci_audience: Option<String>,
    /// The URL GitLab reaches this server at: with it, `hooks sync` (and the timer) keep a
    /// hook at `<public_url>/webhooks/gitlab` in every bound project and group.
    pub public_url: Option<HttpUrl>,
    /// Time a client has to send a request's headers; a keep-alive connection idle this long
    /// is closed too.
    pub header_read_timeout: HumanDuration,
    /// Time a request may take in all, its body included.
    pub request_timeout: HumanDuration,
    /// Connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Connections open at once from one address: a single client cannot hold every slot.
    pub max_connections_per_peer: usize,
    /// The longest a connection stays open: then it is closed once its request in flight is
    /// answered, so that a keep-alive client sending a cheap request now and then cannot keep
    /// a slot for ever.
    pub max_connection_age: HumanDuration,
    /// Bytes of request bodies read at once, over every connection, before they are
    /// authenticated (a signature is checked over the whole body): beyond it a delivery is
    /// answered 503 at once. Bounds the memory unauthenticated clients can hold.
    pub max_inflight_body: ByteSize,
    /// Webhook keys that speak only for some namespaces (`[[server.webhook_key]]`): a
    /// delivery they sign about another namespace is refused.
    #[serde(rename = "webhook_key")]
    pub webhook_keys: Vec<WebhookKeyConfig>,
}

/// `[[server.webhook_key]]`: a signing token or a secret token (from a variable or a file),
/// valid only for events about projects and groups under `namespaces`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookKeyConfig {
    /// A variable holding `whsec_...` signing tokens (comma-separated).
    pub signing_token_env: Option<String>,
    pub signing_token_file: Option<PathBuf>,
    /// A variable holding legacy `X-Gitlab-Token` secrets (comma-separated).
    pub secret_token_env: Option<String>,
    pub secret_token_file: Option<PathBuf>,
    /// The full paths of the groups (or projects) this key speaks for.
    pub namespaces: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            secret_tokens_env: "REGWARDEN_WEBHOOK_SECRET".into(),
            secret_tokens_file: None,
            signing_tokens_env: "REGWARDEN_WEBHOOK_SIGNING_TOKEN".into(),
            signing_tokens_file: None,
            require_signature: false,
            timestamp_tolerance: HumanDuration::from_secs(300),
            max_body: ByteSize(1 << 20),
            reconcile_interval: HumanDuration::from_secs(3600),
            ci_audience: None,
            public_url: None,
            header_read_timeout: HumanDuration::from_secs(10),
            request_timeout: HumanDuration::from_secs(30),
            max_connections: 512,
            max_connections_per_peer: 64,
            max_connection_age: HumanDuration::from_secs(120),
            max_inflight_body: ByteSize(32 << 20),
            webhook_keys: Vec::new(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://path/to/file.db` (embedded default) or `postgres://...`.
    pub url: Option<StoreUrl>,
    /// Or a variable holding the URL (a PostgreSQL URL carries a password: a secret).
    pub url_env: Option<String>,
    /// Or a file holding it.
    pub url_file: Option<PathBuf>,
    /// Where a relative SQLite path is read: `$STATE_DIRECTORY` when set (systemd's
    /// `StateDirectory=`, the image), else the configuration file's directory; never the
    /// working directory, so that a process started elsewhere (a cron job starts in `$HOME`)
    /// still finds the same store and the same locks.
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
}

/// The store when the configuration names none: SQLite, in `$STATE_DIRECTORY` or beside the
/// configuration file.
pub const DEFAULT_STORE_URL: &str = "sqlite://regwarden.db";

/// `$STATE_DIRECTORY`, which systemd sets for a unit with `StateDirectory=` (the first of
/// its paths) and the image sets to `/var/lib/regwarden`: where a relative SQLite path is
/// read, before the configuration file's directory.
fn state_directory() -> Option<PathBuf> {
    let value = std::env::var_os("STATE_DIRECTORY")?;
    let first = std::env::split_paths(&value).next()?;
    first.is_absolute().then_some(first)
}

/// The file of a SQLite URL and its query (`sqlite://path?mode=rwc`), or `None` for another
/// kind of store or an in-memory database.
pub fn sqlite_file(url: &str) -> Option<(&str, Option<&str>)> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    let in_memory =
        path == ":memory:" || query.is_some_and(|q| q.split('&').any(|p| p == "mode=memory"));
    (!path.is_empty() && !in_memory).then_some((path, query))
}

/// `url` with a relative SQLite path read against `base` (an in-memory database, an absolute
/// path and a PostgreSQL URL are left as they are).
pub fn anchor_sqlite(url: &str, base: &Path) -> Option<String> {
    let (path, query) = sqlite_file(url)?;
    if path.starts_with('/') {
        return None;
    }
    let path = base.join(path);
    let path = path.to_str()?;
    Some(match query {
        Some(q) => format!("sqlite://{path}?{q}"),
        None => format!("sqlite://{path}"),
    })
}

impl StoreConfig {
    /// Where the store is, in the text `store.url` holds or in the variable or file it names
    /// (checked as `store.url` is), a relative SQLite path read against `base_dir`.
    pub fn resolve(&self) -> Result<secrecy::SecretString, StoreUrlError> {
        use secrecy::ExposeSecret;
        let url = match (&self.url, &self.url_env, &self.url_file) {
            (Some(u), _, _) => u.0.clone().into(),
            (None, None, None) => DEFAULT_STORE_URL.to_string().into(),
            (None, env, file) => {
                let url = SecretSource {
                    key: "store.url_env",
                    env: env.as_deref().unwrap_or(""),
                    file: file.as_deref(),
                }
                .read()?;
                check_store_url(url.expose_secret()).map_err(StoreUrlError::Unsupported)?;
                url
            }
        };
        Ok(match &self.base_dir {
            Some(base) => anchor_sqlite(url.expose_secret(), base).map_or(url, Into::into),
            None => url,
        })
    }

    /// A warning about a store URL: a PostgreSQL server elsewhere than this host, reached
    /// without `sslmode=verify-full` (or `require`), would see the password and every record in
    /// clear on the network.
    pub fn warning(url: &str) -> Option<String> {
        let parsed = Url::parse(url).ok()?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return None;
        }
        let host = parsed.host_str().unwrap_or("");
        let local = host.is_empty()
            || host == "localhost"
            || host
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let sslmode = parsed
            .query_pairs()
            .find(|(k, _)| k == "sslmode")
            .map(|(_, v)| v.to_string());
        if local
            || matches!(
                sslmode.as_deref(),
                Some("verify-full" | "require" | "verify-ca")
            )
        {
            return None;
        }
        Some(format!(
            "the store is a PostgreSQL server on {host} reached without sslmode=verify-full: its password and every record cross the network in clear, or to whoever answers; add ?sslmode=verify-full (or require) to the URL"
        ))
    }
}

/// Why the store's URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreUrlError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("store.url_env / store.url_file: {0}")]
    Unsupported(String),
}

/// How a reconcile pass runs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconcileConfig {
    /// Bindings worked on at once (each makes its own API calls).
    pub concurrency: usize,
    /// Tries of the registry check of a new token (a new token can take a moment).
    pub check_attempts: u32,
    /// Wait between those tries.
    pub check_interval: HumanDuration,
    /// The longest a rotation may hold its binding's lock before the switch; past it, the
    /// rotation stops short of writing Qovery (a fence). The lock itself dies with its holder.
    pub lease_ttl: HumanDuration,
    /// Time allowed for each HTTP request to GitLab, Qovery and the registry.
    pub http_timeout: HumanDuration,
    /// Names this deployment of regwarden in its token names and Qovery markers, so that two
    /// deployments binding the same project (a server and the CI `rotate` component) never
    /// take each other's tokens for their own. Empty: the default deployment.
    pub instance: String,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self {
            concurrency: 8,
            check_attempts: 5,
            check_interval: HumanDuration::from_secs(2),
            lease_ttl: HumanDuration::from_secs(300),
            http_timeout: HumanDuration::from_secs(15),
            instance: String::new(),
        }
    }
}

/// What kind of GitLab token a binding keeps alive.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum CredentialKind {
    DeployToken,
    AccessToken,
    /// Personal access tokens of a GitLab service account (`service_account`), minted and
    /// deleted by regwarden.
    ServiceAccount,
}

impl fmt::Display for CredentialKind {
    /// What a person calls it: "deploy token", "access token".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialKind::DeployToken => "deploy token",
            CredentialKind::AccessToken => "access token",
            CredentialKind::ServiceAccount => "service account token",
        })
    }
}

/// The registry scopes a regwarden token may carry.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    ReadRegistry,
    WriteRegistry,
}

/// Where a binding's service account lives.
#[derive(
    Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum AccountHome {
    /// A group service account of the binding's top-level group (GitLab.com and
    /// self-managed; the API token needs the group's Owner role).
    #[default]
    Group,
    /// A project service account of the bound project (GitLab 18.11; Maintainer).
    Project,
    /// An instance service account (self-managed only; an administrator's API token).
    Instance,
}

impl fmt::Display for AccountHome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AccountHome::Group => "group",
            AccountHome::Project => "project",
            AccountHome::Instance => "instance",
        })
    }
}

/// The rotation policy: `[defaults]`, overridable per binding.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub credential: CredentialKind,
    pub scopes: Vec<Scope>,
    pub lifetime: HumanDuration,
    pub rotate_before: HumanDuration,
    pub grace_period: HumanDuration,
    /// `credential = "service_account"`: the account's username.
    pub service_account: Option<String>,
    /// Where that account lives (`group`, `project` or `instance`).
    pub service_account_home: AccountHome,
    /// Create the account when it does not exist.
    pub create_service_account: bool,
    /// Allow `write_registry` through a service account another binding uses too (whose
    /// credentials then push wherever any of those bindings may).
    pub allow_shared_write: bool,
}

/// The placeholders a `service_account` username may use, so that each binding (or each
/// project of an `[[auto_bind]]` rule) gets an account of its own.
pub const ACCOUNT_PLACEHOLDERS: &[&str] = &["binding", "project_path_slug"];

impl Policy {
    /// Whether `service_account` is a template that differs per binding.
    pub fn account_is_templated(&self) -> bool {
        self.service_account.as_deref().is_some_and(|a| {
            ACCOUNT_PLACEHOLDERS
                .iter()
                .any(|p| a.contains(&format!("{{{p}}}")))
        })
    }

    /// The policy of binding `binding` on the project or group at `path`: its `service_account`
    /// template filled (`{binding}`, `{project_path_slug}`).
    pub fn for_binding(mut self, binding: &str, path: &str) -> Self {
        if let Some(a) = &self.service_account {
            self.service_account = Some(
                a.replace("{binding}", binding)
                    .replace("{project_path_slug}", &slug(path)),
            );
        }
        self
    }
}

/// `acme/Platform_API` -> `acme-platform-api`: what `{project_path_slug}` gives.
pub fn slug(path: &str) -> String {
    let mut out = String::new();
    for c in path.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            credential: CredentialKind::DeployToken,
            scopes: vec![Scope::ReadRegistry],
            lifetime: HumanDuration::from_secs(30 * 86_400),
            rotate_before: HumanDuration::from_secs(7 * 86_400),
            grace_period: HumanDuration::from_secs(3_600),
            service_account: None,
            service_account_home: AccountHome::Group,
            create_service_account: false,
            allow_shared_write: false,
        }
    }
}

/// Per-binding overrides of [`Policy`]; anything left out comes from `[defaults]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyOverrides {
    pub credential: Option<CredentialKind>,
    pub scopes: Option<Vec<Scope>>,
    pub lifetime: Option<HumanDuration>,
    pub rotate_before: Option<HumanDuration>,
    pub grace_period: Option<HumanDuration>,
    pub service_account: Option<String>,
    pub service_account_home: Option<AccountHome>,
    pub create_service_account: Option<bool>,
    pub allow_shared_write: Option<bool>,
}

impl PolicyOverrides {
    /// Whether anything is overridden (else `[defaults]` applies, and was checked there).
    pub fn overrides_any(&self) -> bool {
        self.credential.is_some()
            || self.scopes.is_some()
            || self.lifetime.is_some()
            || self.rotate_before.is_some()
            || self.grace_period.is_some()
            || self.service_account.is_some()
            || self.service_account_home.is_some()
            || self.create_service_account.is_some()
            || self.allow_shared_write.is_some()
    }

    pub fn apply_to(&self, defaults: &Policy) -> Policy {
        Policy {
            credential: self.credential.unwrap_or(defaults.credential),
            scopes: self
                .scopes
                .clone()
                .unwrap_or_else(|| defaults.scopes.clone()),
            lifetime: self.lifetime.unwrap_or(defaults.lifetime),
            rotate_before: self.rotate_before.unwrap_or(defaults.rotate_before),
            grace_period: self.grace_period.unwrap_or(defaults.grace_period),
            service_account: self
                .service_account
                .clone()
                .or_else(|| defaults.service_account.clone()),
            service_account_home: self
                .service_account_home
                .unwrap_or(defaults.service_account_home),
            create_service_account: self
                .create_service_account
                .unwrap_or(defaults.create_service_account),
            allow_shared_write: self
                .allow_shared_write
                .unwrap_or(defaults.allow_shared_write),
        }
    }
}

/// `[[binding]]`: keep one Qovery registry supplied with a working credential for one GitLab
/// project or group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingConfig {
    pub name: String,
    /// The project, by full path or numeric id (`project = 42` or `project = "acme/api"`).
    #[serde(default, deserialize_with = "path_or_id")]
    pub project: Option<String>,
    #[serde(default, deserialize_with = "path_or_id")]
    pub group: Option<String>,
    /// The repository the check pulls; defaults to the project path.
    pub repository: Option<String>,
    pub qovery_registry: String,
    #[serde(flatten)]
    pub policy: PolicyOverrides,
}

/// `[[auto_bind]]`: every project created under `group` gets a binding named from templates.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoBindConfig {
    pub group: String,
    pub qovery_registry: String,
    #[serde(default = "default_auto_bind_name")]
    pub name: String,
    #[serde(flatten)]
    pub policy: PolicyOverrides,
}

/// The placeholders an `[[auto_bind]]` template may use.
pub const TEMPLATE_PLACEHOLDERS: &[&str] = &[
    "project_path_slug",
    "project_path",
    "project_name",
    "project_id",
    "group_path",
];

/// A GitLab project or group, by full path (a string) or id (an integer or a string of digits).
fn path_or_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct PathOrId;
    impl serde::de::Visitor<'_> for PathOrId {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a full path like \"acme/api\" or a numeric id like 42")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map(|id| Some(id.to_string()))
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
        }
    }
    d.deserialize_any(PathOrId)
}

fn default_gitlab_token_env() -> String {
    "GITLAB_TOKEN".into()
}
fn default_qovery_token_env() -> String {
    "QOVERY_API_TOKEN".into()
}
fn default_qovery_url() -> HttpUrl {
    HttpUrl(Url::parse("https://api.qovery.com").expect("a valid URL"))
}
fn default_auto_bind_name() -> String {
    "{project_path_slug}".into()
}

/// Why a value of the configuration (or of a flag that takes one) is not valid: the message
/// names the value and says what would be.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// An absolute `http` or `https` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl(pub Url);

impl HttpUrl {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let url = Url::parse(s).map_err(|e| Invalid(format!("invalid URL {s:?}: {e}")))?;
        match url.scheme() {
            "http" | "https" if url.host().is_some() => Ok(Self(url)),
            _ => Err(Invalid(format!(
                "invalid URL {s:?}: expected an http:// or https:// URL with a host"
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str().trim_end_matches('/'))
    }
}

/// A UUID in its canonical textual form (Qovery identifies organizations this way).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uuid(pub String);

impl<'de> Deserialize<'de> for Uuid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        let groups: Vec<&str> = s.split('-').collect();
        let shape_ok = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
            && groups
                .iter()
                .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()));
        if shape_ok {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(serde::de::Error::custom(format!(
                "invalid id {s:?}: expected a UUID such as \"3c90c3cc-0d44-4b50-8888-8dd25736052a\" \
                 (Qovery console: Organization settings, General)"
            )))
        }
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the store lives: `sqlite://...` or `postgres://...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreUrl(pub String);

/// A store URL regwarden can open, or why not (its password never shown).
fn check_store_url(s: &str) -> Result<(), String> {
    if ["sqlite:", "postgres://", "postgresql://"]
        .iter()
        .any(|p| s.starts_with(p))
    {
        Ok(())
    } else {
        Err(format!(
            "unsupported store URL {:?}: use sqlite://path/to/regwarden.db or postgres://user@host/db",
            redact_url_password(s)
        ))
    }
}

impl<'de> Deserialize<'de> for StoreUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        check_store_url(&s).map_err(serde::de::Error::custom)?;
        Ok(Self(s))
    }
}

/// A store URL may carry a password (`postgres://user:pw@host/db`); never print it.
pub fn redact_url_password(s: &str) -> String {
    match Url::parse(s) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => s.to_string(),
    }
}

/// One problem in a configuration file, located by key and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

/// Everything wrong with a configuration file (or why it could not be read).
#[derive(Debug)]
pub struct ConfigError {
    pub file: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.file)?;
            if let Some(line) = p.line {
                write!(f, ":{line}")?;
            }
            if p.key.is_empty() {
                write!(f, ": {}", p.message)?;
            } else {
                write!(f, ": {}: {}", p.key, p.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            problems: vec![Problem {
                key: String::new(),
                line: None,
                message: format!("cannot read the configuration file: {e}"),
            }],
        })?;
        let mut config = Self::parse(&text, &file)?;
        config.store.base_dir = state_directory().or_else(|| {
            std::path::absolute(path)
                .ok()?
                .parent()
                .map(Path::to_path_buf)
        });
        Ok(config)
    }

    /// Parses and validates a TOML document; `file` names it in messages.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let fail = |problems| ConfigError {
            file: file.to_string(),
            problems,
        };
        let root = toml::de::DeTable::parse(text).map_err(|e| {
            fail(vec![Problem {
                key: String::new(),
                line: e.span().map(|s| line_of(text, s.start)),
                message: format!("not valid TOML: {}", e.message().trim_end()),
            }])
        })?;
        let spans = SpanIndex::new(text, root.get_ref());
        let de = toml::de::Deserializer::from(root.clone());
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." { String::new() } else { key };
            let inner = e.into_inner();
            let line = inner
                .span()
                .map(|s| line_of(text, s.start))
                .or_else(|| spans.line_of_str(&key));
            fail(vec![Problem {
                key,
                line,
                message: inner.message().trim_end().to_string(),
            }])
        })?;
        let problems = config.validate(&spans);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(fail(problems))
        }
    }

    /// The registry regwarden checks credentials against, when the configuration says:
    /// `gitlab.registry_url`, or gitlab.com's registry for gitlab.com. Otherwise regwarden
    /// uses the address GitLab reports for the bound projects.
    pub fn configured_registry_url(&self) -> Option<Url> {
        match &self.gitlab.registry_url {
            Some(url) => Some(url.0.clone()),
            None if self.gitlab.url.0.host_str() == Some("gitlab.com") => {
                Some(Url::parse("https://registry.gitlab.com").expect("a valid URL"))
            }
            None => None,
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests;
