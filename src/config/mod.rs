//! The configuration file: one TOML document, read and validated at start-up.
//!
//! Secrets never live in the file: it names the environment variables (or files) that hold
//! them. Every problem is reported with the key that holds it and its line, all at once, so a
//! user fixes a file in one go.

mod spans;
mod units;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

pub use reqwest::Url;
pub use spans::KeyPath;
use spans::SpanIndex;
pub use units::{ByteSize, HumanDuration};

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
    /// The container registry; defaults to `https://registry.gitlab.com` for gitlab.com.
    pub registry_url: Option<HttpUrl>,
    /// A PEM bundle of extra trusted CAs, for self-managed GitLab behind a private CA.
    pub ca_file: Option<PathBuf>,
    /// Allow `http://` for `url` and `registry_url` on a host other than loopback: the API
    /// token and every new credential would cross the network in clear.
    #[serde(default)]
    pub allow_insecure_http: bool,
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
    /// Time a client has to send a request's headers; a keep-alive connection idle this long
    /// is closed too.
    pub header_read_timeout: HumanDuration,
    /// Time a request may take in all, its body included.
    pub request_timeout: HumanDuration,
    /// Connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            secret_tokens_env: "REGWARDEN_WEBHOOK_SECRET".into(),
            secret_tokens_file: None,
            signing_tokens_env: "REGWARDEN_WEBHOOK_SIGNING_TOKEN".into(),
            signing_tokens_file: None,
            require_signature: false,
            timestamp_tolerance: HumanDuration::from_secs(300),
            max_body: ByteSize(1 << 20),
            reconcile_interval: HumanDuration::from_secs(3600),
            ci_audience: None,
            header_read_timeout: HumanDuration::from_secs(10),
            request_timeout: HumanDuration::from_secs(30),
            max_connections: 512,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://path/to/file.db` (embedded default) or `postgres://...`.
    pub url: StoreUrl,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: StoreUrl("sqlite://regwarden.db".into()),
        }
    }
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
}

impl fmt::Display for CredentialKind {
    /// What a person calls it: "deploy token", "access token".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialKind::DeployToken => "deploy token",
            CredentialKind::AccessToken => "access token",
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

/// The rotation policy: `[defaults]`, overridable per binding.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub credential: CredentialKind,
    pub scopes: Vec<Scope>,
    pub lifetime: HumanDuration,
    pub rotate_before: HumanDuration,
    pub grace_period: HumanDuration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            credential: CredentialKind::DeployToken,
            scopes: vec![Scope::ReadRegistry],
            lifetime: HumanDuration::from_secs(30 * 86_400),
            rotate_before: HumanDuration::from_secs(7 * 86_400),
            grace_period: HumanDuration::from_secs(3_600),
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
}

impl PolicyOverrides {
    /// Whether anything is overridden (else `[defaults]` applies, and was checked there).
    pub fn overrides_any(&self) -> bool {
        self.credential.is_some()
            || self.scopes.is_some()
            || self.lifetime.is_some()
            || self.rotate_before.is_some()
            || self.grace_period.is_some()
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
        }
    }
}

/// `[[binding]]`: keep one Qovery registry supplied with a working credential for one GitLab
/// project or group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingConfig {
    pub name: String,
    pub project: Option<String>,
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

/// An absolute `http` or `https` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl(pub Url);

impl HttpUrl {
    pub fn parse(s: &str) -> Result<Self, String> {
        let url = Url::parse(s).map_err(|e| format!("invalid URL {s:?}: {e}"))?;
        match url.scheme() {
            "http" | "https" if url.host().is_some() => Ok(Self(url)),
            _ => Err(format!(
                "invalid URL {s:?}: expected an http:// or https:// URL with a host"
            )),
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

impl<'de> Deserialize<'de> for StoreUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        if ["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|p| s.starts_with(p))
        {
            Ok(Self(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "unsupported store URL {:?}: use sqlite://path/to/regwarden.db or postgres://user@host/db",
                redact_url_password(&s)
            )))
        }
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
        Self::parse(&text, &file)
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

    fn validate(&self, spans: &SpanIndex) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut problem = |key: KeyPath, message: String| {
            problems.push(Problem {
                line: spans.line_of(&key),
                key: key.to_string(),
                message,
            });
        };

        if self.gitlab.registry_url.is_none() && !is_gitlab_com(&self.gitlab.url) {
            problem(
                KeyPath::new("gitlab").field("registry_url"),
                format!(
                    "required for a self-managed GitLab ({}): give the registry's URL, e.g. \"https://registry.example.com\" \
                     (it is the host part of a project's container_registry_image_prefix)",
                    self.gitlab.url
                ),
            );
        }
        if let Some(aud) = &self.server.ci_audience
            && HttpUrl::parse(aud).is_err()
        {
            problem(
                KeyPath::new("server").field("ci_audience"),
                format!(
                    "{aud:?} is not a URL: use the URL GitLab jobs reach this server at, e.g. \"https://regwarden.example.com\""
                ),
            );
        }
        for (key, value) in [
            ("timestamp_tolerance", self.server.timestamp_tolerance),
            ("reconcile_interval", self.server.reconcile_interval),
        ] {
            if value.0.is_zero() {
                problem(
                    KeyPath::new("server").field(key),
                    "must be longer than zero".into(),
                );
            }
        }
        for (key, value) in [
            ("header_read_timeout", self.server.header_read_timeout),
            ("request_timeout", self.server.request_timeout),
        ] {
            if value.0 < std::time::Duration::from_secs(1) {
                problem(
                    KeyPath::new("server").field(key),
                    "must be at least 1s".into(),
                );
            }
        }
        if self.server.header_read_timeout.0 > std::time::Duration::from_secs(30) {
            problem(
                KeyPath::new("server").field("header_read_timeout"),
                format!(
                    "{} is too long: a client that stalls holds a connection that long; use at most 30s",
                    self.server.header_read_timeout
                ),
            );
        }
        if !(1..=65_536).contains(&self.server.max_connections) {
            problem(
                KeyPath::new("server").field("max_connections"),
                format!(
                    "{} is out of range: use 1 to 65536",
                    self.server.max_connections
                ),
            );
        }
        for (key, url, allowed) in [
            (
                KeyPath::new("gitlab").field("url"),
                Some(&self.gitlab.url),
                self.gitlab.allow_insecure_http,
            ),
            (
                KeyPath::new("gitlab").field("registry_url"),
                self.gitlab.registry_url.as_ref(),
                self.gitlab.allow_insecure_http,
            ),
            (
                KeyPath::new("qovery").field("url"),
                Some(&self.qovery.url),
                self.qovery.allow_insecure_http,
            ),
        ] {
            if let Some(url) = url
                && !allowed
                && let Err(why) = crate::outbound::refuse_cleartext(&url.0)
            {
                let table = key.to_string();
                let table = table.split('.').next().unwrap_or_default().to_string();
                problem(
                    key,
                    format!("{why}: use https://, or set {table}.allow_insecure_http = true"),
                );
            }
        }
        if let Err(why) = check_instance(&self.reconcile.instance) {
            problem(KeyPath::new("reconcile").field("instance"), why);
        }
        if self.server.max_body.0 < 1024 {
            problem(
                KeyPath::new("server").field("max_body"),
                format!(
                    "{} is too small for any GitLab webhook: use at least 1KiB (default 1MiB)",
                    self.server.max_body
                ),
            );
        }

        if !(1..=64).contains(&self.reconcile.concurrency) {
            problem(
                KeyPath::new("reconcile").field("concurrency"),
                format!(
                    "{} is out of range: use 1 to 64",
                    self.reconcile.concurrency
                ),
            );
        }
        if self.reconcile.check_attempts == 0 {
            problem(
                KeyPath::new("reconcile").field("check_attempts"),
                "must be at least 1".into(),
            );
        }
        if self.reconcile.lease_ttl.0 < std::time::Duration::from_secs(1) {
            problem(
                KeyPath::new("reconcile").field("lease_ttl"),
                "must be at least 1s".into(),
            );
        }

        check_policy(&self.defaults, KeyPath::new("defaults"), &mut problem);

        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut registries: HashMap<&str, usize> = HashMap::new();
        for (i, b) in self.bindings.iter().enumerate() {
            let at = KeyPath::new("binding").index(i);
            if let Err(why) = check_binding_name(&b.name) {
                problem(at.field("name"), why);
            }
            if let Some(first) = names.insert(&b.name, i) {
                problem(
                    at.field("name"),
                    format!(
                        "duplicate binding name {:?}: binding[{first}] has it already; names must be unique",
                        b.name
                    ),
                );
            }
            if let Some(first) = registries.insert(&b.qovery_registry, i) {
                problem(
                    at.field("qovery_registry"),
                    format!(
                        "binding[{first}] already keeps Qovery registry {:?}: two bindings would overwrite each other's credential",
                        b.qovery_registry
                    ),
                );
            }
            match (&b.project, &b.group) {
                (Some(_), Some(_)) => problem(
                    at.clone(),
                    "has both `project` and `group`: a binding covers one project or one group; keep one".into(),
                ),
                (None, None) => problem(
                    at.clone(),
                    "has neither `project` nor `group`: add project = \"group/project\" or group = \"group\"".into(),
                ),
                (Some(p), None) => {
                    if let Err(why) = check_gitlab_path(p) {
                        problem(at.field("project"), why);
                    }
                }
                (None, Some(g)) => {
                    if let Err(why) = check_gitlab_path(g) {
                        problem(at.field("group"), why);
                    }
                    if b.repository.is_none() {
                        problem(
                            at.clone(),
                            "a group binding needs `repository`: the image path the check pulls, e.g. \"acme/platform/api\"".into(),
                        );
                    }
                }
            }
            if let Some(r) = &b.repository
                && let Err(why) = check_gitlab_path(r)
            {
                problem(at.field("repository"), why);
            }
            if b.qovery_registry.trim().is_empty() {
                problem(
                    at.field("qovery_registry"),
                    "must name a Qovery container registry".into(),
                );
            }
            if b.policy.overrides_any() {
                check_policy(&b.policy.apply_to(&self.defaults), at, &mut problem);
            }
        }

        let mut groups: HashMap<&str, usize> = HashMap::new();
        for (i, a) in self.auto_binds.iter().enumerate() {
            let at = KeyPath::new("auto_bind").index(i);
            if let Err(why) = check_gitlab_path(&a.group) {
                problem(at.field("group"), why);
            }
            if let Some(first) = groups.insert(&a.group, i) {
                problem(
                    at.field("group"),
                    format!("auto_bind[{first}] already covers group {:?}", a.group),
                );
            }
            for (key, template) in [("name", &a.name), ("qovery_registry", &a.qovery_registry)] {
                if let Err(why) = check_template(template) {
                    problem(at.field(key), why);
                }
            }
            if a.policy.overrides_any() {
                check_policy(&a.policy.apply_to(&self.defaults), at, &mut problem);
            }
        }
        problems
    }

    /// The kind of the Qovery registries regwarden writes.
    pub fn qovery_registry_kind(&self) -> crate::qovery::RegistryKind {
        self.qovery.registry_kind.resolve(&self.registry_url())
    }

    /// The registry regwarden checks credentials against.
    pub fn registry_url(&self) -> Url {
        match &self.gitlab.registry_url {
            Some(url) => url.0.clone(),
            None => Url::parse("https://registry.gitlab.com").expect("a valid URL"),
        }
    }
}

fn is_gitlab_com(url: &HttpUrl) -> bool {
    url.0.host_str() == Some("gitlab.com")
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

fn check_policy(policy: &Policy, at: KeyPath, problem: &mut impl FnMut(KeyPath, String)) {
    if policy.scopes.is_empty() || !policy.scopes.contains(&Scope::ReadRegistry) {
        problem(
            at.field("scopes"),
            "must include \"read_registry\": Qovery pulls images with this credential".into(),
        );
    }
    if policy.lifetime.0.as_secs() < 86_400 {
        problem(
            at.field("lifetime"),
            format!(
                "{} is too short: GitLab token expiry is at least a day",
                policy.lifetime
            ),
        );
    }
    if policy.credential == CredentialKind::AccessToken
        && policy.lifetime.0.as_secs() > 365 * 86_400
    {
        problem(
            at.field("lifetime"),
            format!(
                "{} is too long: GitLab access tokens expire within 365 days",
                policy.lifetime
            ),
        );
    }
    if policy.rotate_before >= policy.lifetime {
        problem(
            at.field("rotate_before"),
            format!(
                "{} is not shorter than the lifetime ({}): every token would be due for rotation as soon as it is made",
                policy.rotate_before, policy.lifetime
            ),
        );
    }
    if policy.grace_period >= policy.rotate_before {
        problem(
            at.field("grace_period"),
            format!(
                "{} is not shorter than rotate_before ({}): the previous token would expire before its grace period ends",
                policy.grace_period, policy.rotate_before
            ),
        );
    }
}

/// Binding names go into GitLab token names (`regwarden-<binding>-<timestamp>`), metrics and
/// logs, so they stay short and plain.
pub fn check_binding_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid binding name {name:?}: use 1 to 64 lowercase letters, digits, '-' or '_', starting and ending with a letter or digit"
        ))
    }
}

/// `reconcile.instance` ends every token name of the deployment: short and plain.
pub fn check_instance(instance: &str) -> Result<(), String> {
    let ok = instance.is_empty()
        || (instance.len() <= 32
            && instance
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && instance.as_bytes()[0].is_ascii_alphanumeric()
            && instance.as_bytes()[instance.len() - 1].is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid instance {instance:?}: use 1 to 32 lowercase letters, digits or '-', starting and ending with a letter or digit (or leave it empty for the default deployment)"
        ))
    }
}

fn check_gitlab_path(path: &str) -> Result<(), String> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && !path.ends_with('/')
        && !path.contains("//")
        && !path.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid GitLab path {path:?}: write it as in the project URL, e.g. \"acme/api\""
        ))
    }
}

fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("unclosed '{{' in template {template:?}"));
        };
        let name = &rest[open + 1..open + close];
        if !TEMPLATE_PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{name}}} in template {template:?}: use one of {}",
                TEMPLATE_PLACEHOLDERS
                    .iter()
                    .map(|p| format!("{{{p}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        rest = &rest[open + close + 1..];
    }
    if template.trim().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(())
}

/// Where a secret comes from: an environment variable, or a file (which wins when given).
#[derive(Debug, Clone)]
pub struct SecretSource<'a> {
    /// The config key that names the source, for messages (e.g. `gitlab.token_env`).
    pub key: &'a str,
    pub env: &'a str,
    pub file: Option<&'a Path>,
}

/// Why a secret could not be read. Names the variable or file, never shows a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "{key} names the environment variable {env}, which is not set or is empty: export it, or set {file_key} to a file holding the secret"
    )]
    MissingEnv {
        key: String,
        env: String,
        file_key: String,
    },
    #[error("cannot read the secret file {path} ({key}): {source}")]
    File {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the secret file {path} ({key}) is empty")]
    EmptyFile { key: String, path: PathBuf },
}

impl SecretSource<'_> {
    /// Reads the secret, trimming surrounding white space (files usually end in a newline).
    pub fn read(&self) -> Result<SecretString, SecretError> {
        if let Some(path) = self.file {
            let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
                key: self.file_key(),
                path: path.to_path_buf(),
                source,
            })?;
            let value = text.trim();
            if value.is_empty() {
                return Err(SecretError::EmptyFile {
                    key: self.file_key(),
                    path: path.to_path_buf(),
                });
            }
            return Ok(SecretString::from(value.to_string()));
        }
        match std::env::var(self.env) {
            Ok(v) if !v.trim().is_empty() => Ok(SecretString::from(v.trim().to_string())),
            _ => Err(SecretError::MissingEnv {
                key: self.key.to_string(),
                env: self.env.to_string(),
                file_key: self.file_key(),
            }),
        }
    }

    fn file_key(&self) -> String {
        match self.key.strip_suffix("_env") {
            Some(stem) => format!("{stem}_file"),
            None => format!("{}_file", self.key),
        }
    }
}

impl Config {
    pub fn gitlab_token_source(&self) -> SecretSource<'_> {
        SecretSource {
            key: "gitlab.token_env",
            env: &self.gitlab.token_env,
            file: self.gitlab.token_file.as_deref(),
        }
    }

    pub fn qovery_token_source(&self) -> SecretSource<'_> {
        SecretSource {
            key: "qovery.token_env",
            env: &self.qovery.token_env,
            file: self.qovery.token_file.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests;
