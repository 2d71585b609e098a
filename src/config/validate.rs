//! Checks of a parsed configuration that serde cannot make: every problem is collected with
//! its key (and, through `spans`, its line), so a user fixes a file in one go.

use std::collections::HashMap;

use super::spans::{KeyPath, SpanIndex};
use super::{
    ACCOUNT_PLACEHOLDERS, AccountHome, Config, CredentialKind, HttpUrl, Invalid, OwnTokenKind,
    Policy, Problem, Scope, TEMPLATE_PLACEHOLDERS,
};

impl Config {
    pub(super) fn validate(&self, spans: &SpanIndex) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut problem = |key: KeyPath, message: String| {
            problems.push(Problem {
                line: spans.line_of(&key),
                key: key.to_string(),
                message,
            });
        };

        let gitlab = KeyPath::new("gitlab");
        if self.gitlab.rotate_own_token && self.gitlab.token_file.is_none() {
            problem(
                gitlab.field("rotate_own_token"),
                "needs gitlab.token_file: regwarden writes the rotated token there (a token from an environment variable is never rotated; its expiry is only watched)".into(),
            );
        }
        match (self.gitlab.own_token_kind, &self.gitlab.own_token_namespace) {
            (OwnTokenKind::Project | OwnTokenKind::Group, None) if self.gitlab.rotate_own_token => {
                problem(
                    gitlab.field("own_token_namespace"),
                    format!(
                        "is required with own_token_kind = \"{}\": the full path of the token's {}",
                        serde_plain_kind(self.gitlab.own_token_kind),
                        serde_plain_kind(self.gitlab.own_token_kind)
                    ),
                );
            }
            (_, Some(ns)) => {
                if let Err(why) = check_gitlab_path(ns) {
                    problem(gitlab.field("own_token_namespace"), why.to_string());
                }
            }
            _ => {}
        }
        let own = (
            &self.gitlab.own_token_lifetime,
            &self.gitlab.own_token_rotate_before,
        );
        if own.0.0.as_secs() < 86_400 || own.0.0.as_secs() > 365 * 86_400 {
            problem(
                gitlab.field("own_token_lifetime"),
                format!(
                    "{} is out of range: GitLab tokens live from a day to 365 days",
                    own.0
                ),
            );
        }
        if own.1.0.as_secs() < 86_400 {
            problem(
                gitlab.field("own_token_rotate_before"),
                format!(
                    "{} is under a day: GitLab tokens expire at the start of a day, so a token would be rotated only once it is dead; use \"1d\" or more",
                    own.1
                ),
            );
        } else if own.1 >= own.0 {
            problem(
                gitlab.field("own_token_rotate_before"),
                format!(
                    "{} is not shorter than own_token_lifetime ({})",
                    own.1, own.0
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
        let store = &self.store;
        if [
            store.url.is_some(),
            store.url_env.is_some(),
            store.url_file.is_some(),
        ]
        .iter()
        .filter(|set| **set)
        .count()
            > 1
        {
            problem(
                KeyPath::new("store").field("url"),
                "give the store's URL once: store.url, store.url_env or store.url_file".into(),
            );
        }
        for (i, k) in self.server.webhook_keys.iter().enumerate() {
            let at = KeyPath::new("server").field("webhook_key").index(i);
            let signing = k.signing_token_env.is_some() || k.signing_token_file.is_some();
            let secret = k.secret_token_env.is_some() || k.secret_token_file.is_some();
            if signing == secret {
                problem(
                    at.clone(),
                    "names one signing token (signing_token_env or signing_token_file) or one secret token (secret_token_env or secret_token_file)".into(),
                );
            }
            if k.namespaces.is_empty() {
                problem(
                    at.field("namespaces"),
                    "must list the groups or projects this key speaks for, e.g. namespaces = [\"acme\"] (a key for every namespace goes in server.signing_tokens_env)".into(),
                );
            }
            for (j, ns) in k.namespaces.iter().enumerate() {
                if let Err(why) = check_gitlab_path(ns) {
                    problem(at.field("namespaces").index(j), why.to_string());
                }
            }
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
        if self.server.max_connections_per_peer == 0 {
            problem(
                KeyPath::new("server").field("max_connections_per_peer"),
                "must be at least 1".into(),
            );
        }
        if self.server.max_connection_age.0 < std::time::Duration::from_secs(1) {
            problem(
                KeyPath::new("server").field("max_connection_age"),
                "must be a second or more".into(),
            );
        }
        if self.server.max_inflight_body.0 < self.server.max_body.0 {
            problem(
                KeyPath::new("server").field("max_inflight_body"),
                format!(
                    "{} is less than server.max_body ({}): no delivery of that size could ever be read",
                    self.server.max_inflight_body, self.server.max_body
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
            problem(KeyPath::new("reconcile").field("instance"), why.to_string());
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
                problem(at.field("name"), why.to_string());
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
                        problem(at.field("project"), why.to_string());
                    }
                }
                (None, Some(g)) => {
                    if let Err(why) = check_gitlab_path(g) {
                        problem(at.field("group"), why.to_string());
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
                problem(at.field("repository"), why.to_string());
            }
            if b.qovery_registry.trim().is_empty() {
                problem(
                    at.field("qovery_registry"),
                    "must name a Qovery container registry".into(),
                );
            }
            let policy = b.policy.apply_to(&self.defaults);
            if policy.credential == CredentialKind::ServiceAccount
                && policy.service_account_home == AccountHome::Project
                && b.project.is_none()
            {
                problem(
                    at.field("service_account_home"),
                    "\"project\" needs a project binding: a group binding's account lives in its group (service_account_home = \"group\")".into(),
                );
            }
            if b.policy.overrides_any() {
                check_policy(&policy, at, &mut problem);
            }
        }

        self.check_account_homes(&mut problem);
        self.check_api_token_can_mint(&mut problem);
        for shared in self.shared_accounts() {
            for (at, writes, allowed) in &shared.users {
                if *writes && !*allowed {
                    problem(
                        at.field("scopes"),
                        format!(
                            "write_registry through service account {:?}, which {} share, lets each of their credentials push wherever any of them may: give each binding an account of its own (service_account = \"regwarden-{{binding}}\"), or set allow_shared_write = true",
                            shared.username,
                            shared.who.join(", ")
                        ),
                    );
                }
            }
        }

        let mut groups: HashMap<&str, usize> = HashMap::new();
        for (i, a) in self.auto_binds.iter().enumerate() {
            let at = KeyPath::new("auto_bind").index(i);
            if let Err(why) = check_gitlab_path(&a.group) {
                problem(at.field("group"), why.to_string());
            }
            if let Some(first) = groups.insert(&a.group, i) {
                problem(
                    at.field("group"),
                    format!("auto_bind[{first}] already covers group {:?}", a.group),
                );
            }
            for (key, template) in [("name", &a.name), ("qovery_registry", &a.qovery_registry)] {
                if let Err(why) = check_template(template) {
                    problem(at.field(key), why.to_string());
                }
            }
            if a.policy.overrides_any() {
                check_policy(&a.policy.apply_to(&self.defaults), at, &mut problem);
            }
        }
        problems
    }
}

/// A service account several bindings (or the projects of one rule) use.
pub struct SharedAccount {
    pub username: String,
    /// The bindings and rules that share it, as a person reads them.
    pub who: Vec<String>,
    /// Each user: its key, whether it asks for `write_registry`, whether it allows sharing that.
    pub users: Vec<(KeyPath, bool, bool)>,
}

impl Config {
    /// The service accounts that serve more than one project: bindings of different projects
    /// under one username, or an `[[auto_bind]]` rule whose username is no template (every
    /// project of the group then shares it). Their credentials are interchangeable: each pulls
    /// (and, with `write_registry`, pushes) every project the account is a member of.
    pub fn shared_accounts(&self) -> Vec<SharedAccount> {
        struct User {
            at: KeyPath,
            who: String,
            path: String,
            writes: bool,
            allowed: bool,
            rule: bool,
        }
        let mut by_name: Vec<(String, Vec<User>)> = Vec::new();
        let explicit = self.bindings.iter().enumerate().map(|(i, b)| {
            let path = b
                .project
                .clone()
                .or_else(|| b.group.clone())
                .unwrap_or_default();
            let policy = b
                .policy
                .apply_to(&self.defaults)
                .for_binding(&b.name, &path);
            (
                KeyPath::new("binding").index(i),
                format!("binding {:?} ({path})", b.name),
                path,
                policy,
                false,
            )
        });
        let rules = self.auto_binds.iter().enumerate().map(|(i, a)| {
            (
                KeyPath::new("auto_bind").index(i),
                format!("every project of [[auto_bind]] group {}", a.group),
                a.group.clone(),
                a.policy.apply_to(&self.defaults),
                true,
            )
        });
        for (at, who, path, policy, rule) in explicit.chain(rules) {
            let (CredentialKind::ServiceAccount, Some(username)) =
                (policy.credential, &policy.service_account)
            else {
                continue;
            };
            if rule && policy.account_is_templated() {
                continue;
            }
            let user = User {
                at,
                who,
                path,
                writes: policy.scopes.contains(&Scope::WriteRegistry),
                allowed: policy.allow_shared_write,
                rule,
            };
            let key = username.to_lowercase();
            match by_name.iter_mut().find(|(n, _)| *n == key) {
                Some((_, users)) => users.push(user),
                None => by_name.push((key, vec![user])),
            }
        }
        by_name
            .into_iter()
            .filter(|(_, users)| {
                users.iter().any(|u| u.rule)
                    || users.iter().any(|u| users.iter().any(|v| v.path != u.path))
            })
            .map(|(username, users)| SharedAccount {
                username,
                who: users.iter().map(|u| u.who.clone()).collect(),
                users: users
                    .into_iter()
                    .map(|u| (u.at, u.writes, u.allowed))
                    .collect(),
            })
            .collect()
    }

    /// What `config check` warns about, by key: nothing invalid, but worth knowing.
    pub fn warnings(&self) -> Vec<(String, String)> {
        self.shared_accounts()
            .into_iter()
            .map(|shared| {
                let at = shared.users[0].0.field("service_account").to_string();
                (
                    at,
                    format!(
                        "service account {:?} serves {}: their credentials are interchangeable (each pulls every project the account is a member of); give each binding an account of its own with service_account = \"regwarden-{{binding}}\"",
                        shared.username,
                        shared.who.join(", ")
                    ),
                )
            })
            .collect()
    }

    /// Where the bindings (explicit first, then the rules) ask for `credential`: their keys.
    pub fn uses_credential(&self, credential: CredentialKind) -> Vec<KeyPath> {
        let explicit = self.bindings.iter().enumerate().map(|(i, b)| {
            (
                KeyPath::new("binding").index(i),
                b.policy.apply_to(&self.defaults),
            )
        });
        let rules = self.auto_binds.iter().enumerate().map(|(i, a)| {
            (
                KeyPath::new("auto_bind").index(i),
                a.policy.apply_to(&self.defaults),
            )
        });
        explicit
            .chain(rules)
            .filter(|(_, policy)| policy.credential == credential)
            .map(|(at, _)| at)
            .collect()
    }

    /// A project or group access token (`own_token_kind` says the API token is one) cannot
    /// create access tokens: GitLab refuses every bot user (`ProjectPolicy`, `GroupPolicy`:
    /// `project_bot_access` prevents `create_resource_access_tokens`).
    fn check_api_token_can_mint(&self, problem: &mut impl FnMut(KeyPath, String)) {
        if self.gitlab.own_token_kind == OwnTokenKind::Personal {
            return;
        }
        let users = self.uses_credential(CredentialKind::AccessToken);
        if let Some(first) = users.first() {
            let names: Vec<String> = users.iter().map(ToString::to_string).collect();
            problem(
                KeyPath::new("gitlab").field("own_token_kind"),
                format!(
                    "\"{}\" says the API token is a {} access token, and GitLab lets no such token create access tokens, which {} ask for (credential = \"access_token\"): make the API token a personal access token (a person's, or a service account's; own_token_kind = \"personal\"), or use credential = \"deploy_token\" there",
                    serde_plain_kind(self.gitlab.own_token_kind),
                    serde_plain_kind(self.gitlab.own_token_kind),
                    if names.len() == 1 {
                        first.to_string()
                    } else {
                        names.join(", ")
                    },
                ),
            );
        }
    }

    /// A GitLab username is unique on the instance: one service account cannot live in two
    /// homes, and an `[[auto_bind]]` rule cannot give each of its projects an account of its
    /// own under one username.
    fn check_account_homes(&self, problem: &mut impl FnMut(KeyPath, String)) {
        let top = |path: &str| path.split('/').next().unwrap_or(path).to_string();
        let mut homes: HashMap<String, (String, String)> = HashMap::new();
        let explicit = self.bindings.iter().enumerate().map(|(i, b)| {
            let path = b
                .project
                .clone()
                .or_else(|| b.group.clone())
                .unwrap_or_default();
            (
                KeyPath::new("binding").index(i),
                b.policy
                    .apply_to(&self.defaults)
                    .for_binding(&b.name, &path),
                path,
                b.project.is_some(),
            )
        });
        let rules = self.auto_binds.iter().enumerate().map(|(i, a)| {
            (
                KeyPath::new("auto_bind").index(i),
                a.policy.apply_to(&self.defaults),
                a.group.clone(),
                false,
            )
        });
        for (at, policy, path, is_project) in explicit.chain(rules) {
            let (CredentialKind::ServiceAccount, Some(username)) =
                (policy.credential, &policy.service_account)
            else {
                continue;
            };
            // A rule's template gives each of its projects an account of its own.
            if policy.account_is_templated() {
                continue;
            }
            let home = match policy.service_account_home {
                AccountHome::Group => format!("group {}", top(&path)),
                AccountHome::Project if is_project => format!("project {path}"),
                AccountHome::Project => {
                    if at.to_string().starts_with("auto_bind") {
                        problem(
                            at.field("service_account_home"),
                            format!(
                                "\"project\" would make one account per project of the group, all named {username:?}, but a GitLab username is unique: use \"group\" or \"instance\""
                            ),
                        );
                    }
                    continue;
                }
                AccountHome::Instance => "the instance".to_string(),
            };
            // GitLab usernames are unique whatever their case.
            let username = &username.to_lowercase();
            match homes.get(username) {
                Some((first, other)) if *other != home => problem(
                    at.field("service_account"),
                    format!(
                        "service account {username:?} lives in {other} for {first}: a GitLab username is unique on the instance, so one account cannot also live in {home}; use another username, or one home for both"
                    ),
                ),
                Some(_) => {}
                None => {
                    homes.insert(username.clone(), (at.to_string(), home));
                }
            }
        }
    }
}

fn serde_plain_kind(kind: OwnTokenKind) -> &'static str {
    match kind {
        OwnTokenKind::Personal => "personal",
        OwnTokenKind::Project => "project",
        OwnTokenKind::Group => "group",
    }
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
    if policy.credential == CredentialKind::ServiceAccount {
        match &policy.service_account {
            None => problem(
                at.field("service_account"),
                "is required with credential = \"service_account\": the username of the GitLab service account whose tokens regwarden mints, e.g. service_account = \"regwarden-pull\"".into(),
            ),
            Some(name) => {
                if let Err(why) = check_account_template(name) {
                    problem(at.field("service_account"), why.to_string());
                }
            }
        }
    } else if policy.service_account.is_some() || policy.create_service_account {
        problem(
            at.field("service_account"),
            format!(
                "is only used with credential = \"service_account\" (this policy's credential is {})",
                policy.credential
            ),
        );
    }
    if policy.credential != CredentialKind::DeployToken
        && policy.lifetime.0.as_secs() > 365 * 86_400
    {
        problem(
            at.field("lifetime"),
            format!(
                "{} is too long: GitLab access tokens and personal access tokens expire within 365 days",
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

/// A service account's username, or a template of one over [`ACCOUNT_PLACEHOLDERS`]: what it
/// gives must be a GitLab username.
fn check_account_template(template: &str) -> Result<(), Invalid> {
    let mut sample = template.to_string();
    for p in ACCOUNT_PLACEHOLDERS {
        sample = sample.replace(&format!("{{{p}}}"), "x");
    }
    if sample.contains('{') || sample.contains('}') {
        return Err(Invalid(format!(
            "{template:?} has a placeholder a service account cannot use: use {}",
            ACCOUNT_PLACEHOLDERS
                .iter()
                .map(|p| format!("{{{p}}}"))
                .collect::<Vec<_>>()
                .join(" or ")
        )));
    }
    check_gitlab_username(&sample)
}

/// A GitLab username: letters, digits, `_`, `-` and `.`, starting with a letter, digit or
/// `_`, up to 255 characters.
fn check_gitlab_username(name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        && (name.as_bytes()[0].is_ascii_alphanumeric() || name.as_bytes()[0] == b'_');
    if ok {
        Ok(())
    } else {
        Err(Invalid(format!(
            "{name:?} is not a GitLab username (letters, digits, '_', '-', '.'; up to 255)"
        )))
    }
}

/// Binding names go into GitLab token names (`regwarden-<binding>-<timestamp>`), metrics and
/// logs, so they stay short and plain.
pub fn check_binding_name(name: &str) -> Result<(), Invalid> {
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
        Err(Invalid(format!(
            "invalid binding name {name:?}: use 1 to 64 lowercase letters, digits, '-' or '_', starting and ending with a letter or digit"
        )))
    }
}

/// `reconcile.instance` ends every token name of the deployment: short and plain.
pub fn check_instance(instance: &str) -> Result<(), Invalid> {
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
        Err(Invalid(format!(
            "invalid instance {instance:?}: use 1 to 32 lowercase letters, digits or '-', starting and ending with a letter or digit (or leave it empty for the default deployment)"
        )))
    }
}

fn check_gitlab_path(path: &str) -> Result<(), Invalid> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && !path.ends_with('/')
        && !path.contains("//")
        && !path.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(Invalid(format!(
            "invalid GitLab path {path:?}: write it as in the project URL, e.g. \"acme/api\""
        )))
    }
}

fn check_template(template: &str) -> Result<(), Invalid> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err(Invalid(format!("unclosed '{{' in template {template:?}")));
        };
        let name = &rest[open + 1..open + close];
        if !TEMPLATE_PLACEHOLDERS.contains(&name) {
            return Err(Invalid(format!(
                "unknown placeholder {{{name}}} in template {template:?}: use one of {}",
                TEMPLATE_PLACEHOLDERS
                    .iter()
                    .map(|p| format!("{{{p}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        rest = &rest[open + close + 1..];
    }
    if template.trim().is_empty() {
        return Err(Invalid("must not be empty".into()));
    }
    Ok(())
}
