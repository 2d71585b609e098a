//! Webhooks kept by regwarden (`regwarden hooks sync`, and the server's timer): with
//! `server.public_url` set, each bound project has a project hook, and each group binding and
//! `[[auto_bind]]` group a group hook, pointing at `<public_url>/webhooks/gitlab` with the
//! events regwarden acts on and a secret it verifies. Idempotent: a hook that is right is
//! left as it is, and hooks at other URLs are never touched. A hook GitLab disabled after
//! failures is reported, never silently fixed: something made its deliveries fail.
//!
//! Facts (docs/reference/gitlab.md §10): only `push_events` defaults to true on create, so it
//! is sent as false; `resource_deploy_token_events` exists on project hooks only (GitLab
//! 18.10+); `project_events` on group hooks only; a group hook also receives the access-token
//! expiry events of the projects below it. Secrets are write-only: a hook's are known right
//! by `token_present` / `signing_token_present` (GitLab 19.0+), and an older GitLab silently
//! drops `signing_token`.

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::config::{Config, SecretError};
use crate::gitlab::{GitlabClient, Hook, Namespace, same_url};

/// The path GitLab's deliveries are posted to, under `server.public_url`.
pub const WEBHOOK_PATH: &str = "webhooks/gitlab";

/// The name regwarden's hooks carry in GitLab's settings.
pub const HOOK_NAME: &str = "regwarden";

const HOOK_DESCRIPTION: &str =
    "Kept by regwarden (hooks sync): token expiry and project events for credential rotation";

/// The event flags of a project hook regwarden needs, and their values.
const PROJECT_FLAGS: &[(&str, bool)] = &[
    ("push_events", false),
    ("resource_access_token_events", true),
    ("resource_deploy_token_events", true),
    ("enable_ssl_verification", true),
];

/// The same for a group hook: project events (a project created under an `[[auto_bind]]`
/// group) instead of deploy-token events, which group hooks cannot take.
const GROUP_FLAGS: &[(&str, bool)] = &[
    ("push_events", false),
    ("resource_access_token_events", true),
    ("project_events", true),
    ("enable_ssl_verification", true),
];

/// The secrets a hook is given: the first signing token and the first secret token of the
/// lists the server verifies against (`server.signing_tokens_env`, `server.secret_tokens_env`,
/// or their files). The first is the current one; the others are still accepted while a
/// rotation spreads.
pub struct Secrets {
    pub signing: Option<SecretString>,
    /// Not given to hooks under `server.require_signature`: the server would refuse what
    /// it authenticates.
    pub token: Option<SecretString>,
}

/// Why the hooks cannot be kept.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "server.public_url is not set: give the URL GitLab reaches this server at (e.g. \"https://regwarden.example.com\"); hooks point at <public_url>/webhooks/gitlab"
    )]
    NoPublicUrl,
    #[error(
        "no webhook secret to give the hooks: set the variable named by server.signing_tokens_env (whsec_..., GitLab 19.0+) or server.secret_tokens_env (any long random string, e.g. `openssl rand -hex 32`)"
    )]
    NoSecret,
    #[error("server.signing_tokens_env: the first signing token is not usable: {0}")]
    BadSigningToken(crate::server::verify::SetupError),
    #[error(
        "server.signing_tokens_env: the first signing token encodes {0} bytes; GitLab takes a whsec_ value of 32 (as GitLab generates them: `echo \"whsec_$(openssl rand -base64 32)\"`)"
    )]
    SigningTokenLength(usize),
    #[error(
        "server.require_signature is set but no signing token is configured: hooks must be signed (server.signing_tokens_env, whsec_..., GitLab 19.0+)"
    )]
    SignatureRequired,
    #[error("{0}")]
    Secret(#[from] SecretError),
}

impl Secrets {
    pub fn from_config(config: &Config) -> Result<Self, SetupError> {
        let server = &config.server;
        let first = |key, env: &str, file: Option<&std::path::Path>| {
            crate::server::verify::configured_secrets(key, env, file)
                .map(|list| list.into_iter().next().map(SecretString::from))
        };
        let signing = first(
            "server.signing_tokens_env",
            &server.signing_tokens_env,
            server.signing_tokens_file.as_deref(),
        )?;
        if let Some(s) = &signing {
            let key = crate::server::verify::signing_key(s.expose_secret())
                .map_err(SetupError::BadSigningToken)?;
            if key.len() != 32 {
                return Err(SetupError::SigningTokenLength(key.len()));
            }
        }
        let token = first(
            "server.secret_tokens_env",
            &server.secret_tokens_env,
            server.secret_tokens_file.as_deref(),
        )?;
        if server.require_signature {
            if signing.is_none() {
                return Err(SetupError::SignatureRequired);
            }
            return Ok(Self {
                signing,
                token: None,
            });
        }
        if signing.is_none() && token.is_none() {
            return Err(SetupError::NoSecret);
        }
        Ok(Self { signing, token })
    }
}

/// The URL regwarden's hooks point at.
pub fn hook_url(config: &Config) -> Result<String, SetupError> {
    let base = config
        .server
        .public_url
        .as_ref()
        .ok_or(SetupError::NoPublicUrl)?;
    Ok(format!("{base}/{WEBHOOK_PATH}"))
}

/// Whether a hook is a project's or a group's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Project,
    Group,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Project => "project",
            Kind::Group => "group",
        }
    }
}

/// A project or group that must have a hook, and why.
#[derive(Clone, Debug)]
pub struct Target {
    pub kind: Kind,
    /// As the configuration gives it: a full path or an id.
    pub id_or_path: String,
    /// The bindings and rules that need it (`binding api`, `auto_bind acme/services`).
    pub needed_by: Vec<String>,
}

/// Every project and group the configuration needs a hook on, each once (as the
/// configuration names it; two names of one project are merged once GitLab resolves them).
pub fn targets(config: &Config) -> Vec<Target> {
    let mut targets: Vec<Target> = Vec::new();
    let mut add = |kind: Kind, id_or_path: &str, why: String| match targets
        .iter_mut()
        .find(|t| t.kind == kind && t.id_or_path == id_or_path)
    {
        Some(t) => t.needed_by.push(why),
        None => targets.push(Target {
            kind,
            id_or_path: id_or_path.to_string(),
            needed_by: vec![why],
        }),
    };
    for b in &config.bindings {
        if let Some(p) = &b.project {
            add(Kind::Project, p, format!("binding {}", b.name));
        } else if let Some(g) = &b.group {
            add(Kind::Group, g, format!("binding {}", b.name));
        }
    }
    for rule in &config.auto_binds {
        add(
            Kind::Group,
            &rule.group,
            format!("auto_bind {}", rule.group),
        );
    }
    targets
}

/// What happened to one target's hook.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub kind: Kind,
    /// GitLab's full path for it (as configured when GitLab could not be asked).
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    pub needed_by: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_id: Option<u64>,
    /// `created`, `updated`, `unchanged`, `missing` / `would_create` / `would_update` (dry
    /// run), or `failed`.
    pub action: &'static str,
    /// The fields an update set (never a secret's value: `token`, `signing_token` by name).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    /// Duplicates of regwarden's hook (a create whose answer was lost, two syncs at once):
    /// deleted, or to delete in a dry run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub duplicates: Vec<u64>,
    /// GitLab's `alert_status` when it stopped sending the hook anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<Disabled>,
    /// What is wrong, and what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Disabled {
    pub alert_status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_until: Option<String>,
}

impl Outcome {
    /// Whether this target needs a person: a failure, a disabled hook, or a hook whose
    /// deliveries regwarden could not authenticate.
    pub fn failed(&self) -> bool {
        self.action == "failed" || self.disabled.is_some() || self.problem.is_some()
    }

    fn new(target: &Target) -> Self {
        Self {
            kind: target.kind,
            path: target.id_or_path.clone(),
            id: None,
            needed_by: target.needed_by.clone(),
            hook_id: None,
            action: "failed",
            changed: Vec::new(),
            duplicates: Vec::new(),
            disabled: None,
            problem: None,
        }
    }
}

/// How a sync goes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Only say what would change.
    pub dry_run: bool,
    /// Give every hook the current secrets even where GitLab shows some present: the step
    /// of a secret rotation (GitLab never shows which secret a hook holds).
    pub resend_secrets: bool,
}

/// Makes sure each target has regwarden's hook.
pub async fn sync(
    gitlab: &GitlabClient,
    url: &str,
    secrets: &Secrets,
    targets: &[Target],
    options: Options,
) -> Vec<Outcome> {
    let held: Vec<&SecretString> = [&secrets.signing, &secrets.token]
        .into_iter()
        .flatten()
        .collect();
    let gitlab = &gitlab.scrubbing(&held);
    let mut outcomes: Vec<Outcome> = Vec::new();
    for target in targets {
        let mut outcome = Outcome::new(target);
        let ns = match resolve(gitlab, target).await {
            Ok((id, path)) => {
                outcome.id = Some(id);
                outcome.path = path;
                match target.kind {
                    Kind::Project => Namespace::Project(id.to_string()),
                    Kind::Group => Namespace::Group(id.to_string()),
                }
            }
            Err(e) => {
                outcome.problem = Some(format!(
                    "cannot read this {} in GitLab: {}",
                    target.kind.as_str(),
                    crate::outbound::error_chain(&e)
                ));
                outcomes.push(outcome);
                continue;
            }
        };
        // Two names of one project (a path and an id) share a hook.
        if let Some(same) = outcomes
            .iter_mut()
            .find(|o| o.kind == target.kind && o.id == outcome.id && o.id.is_some())
        {
            same.needed_by.extend(target.needed_by.iter().cloned());
            continue;
        }
        if let Err(e) = sync_one(
            gitlab,
            &ns,
            target.kind,
            url,
            secrets,
            options,
            &mut outcome,
        )
        .await
        {
            outcome.action = "failed";
            outcome.problem = Some(what_to_do(target.kind, &e));
        }
        outcomes.push(outcome);
    }
    outcomes
}

async fn resolve(
    gitlab: &GitlabClient,
    target: &Target,
) -> Result<(u64, String), crate::outbound::ApiError> {
    match target.kind {
        Kind::Project => gitlab
            .project(&target.id_or_path)
            .await
            .map(|p| (p.id, p.path_with_namespace)),
        Kind::Group => gitlab
            .group(&target.id_or_path)
            .await
            .map(|g| (g.id, g.full_path)),
    }
}

/// A failure of the hooks API, with the role it takes.
fn what_to_do(kind: Kind, e: &crate::outbound::ApiError) -> String {
    let error = crate::outbound::error_chain(e);
    match (e, kind) {
        (crate::outbound::ApiError::Forbidden { .. }, Kind::Project) => format!(
            "{error}: the API token's user must be a Maintainer of the project to manage its hooks"
        ),
        (crate::outbound::ApiError::Forbidden { .. }, Kind::Group) => format!(
            "{error}: the API token's user must be an Owner of the group to manage its hooks"
        ),
        (crate::outbound::ApiError::NotFound { .. }, Kind::Group) => format!(
            "{error}: group hooks need GitLab Premium or Ultimate; on GitLab Free, bind the group's projects one by one (each gets a project hook)"
        ),
        _ => error,
    }
}

async fn sync_one(
    gitlab: &GitlabClient,
    ns: &Namespace,
    kind: Kind,
    url: &str,
    secrets: &Secrets,
    options: Options,
    outcome: &mut Outcome,
) -> Result<(), crate::outbound::ApiError> {
    let dry_run = options.dry_run;
    let flags = match kind {
        Kind::Project => PROJECT_FLAGS,
        Kind::Group => GROUP_FLAGS,
    };
    let mut ours: Vec<Hook> = gitlab
        .hooks(ns)
        .await?
        .into_iter()
        .filter(|h| same_url(&h.url, url))
        .collect();
    // The one kept among duplicates: one GitLab sends deliveries to, then the oldest (a
    // person who made a fresh hook beside a disabled one keeps the fresh one).
    ours.sort_by_key(|h| (h.disabled(), h.id));
    let Some(hook) = ours.first().cloned() else {
        if dry_run {
            outcome.action = "would_create";
            return Ok(());
        }
        let mut body = Map::new();
        body.insert("url".into(), json!(url));
        body.insert("name".into(), json!(HOOK_NAME));
        body.insert("description".into(), json!(HOOK_DESCRIPTION));
        for (field, value) in flags {
            body.insert((*field).into(), json!(value));
        }
        add_secrets(&mut body, secrets);
        let created = gitlab.create_hook(ns, url, &Value::Object(body)).await?;
        outcome.hook_id = Some(created.id);
        outcome.action = "created";
        check_secrets_taken(&created, secrets, outcome);
        return Ok(());
    };
    outcome.hook_id = Some(hook.id);
    for extra in &ours[1..] {
        if !dry_run {
            gitlab.delete_hook(ns, extra.id).await?;
        }
        outcome.duplicates.push(extra.id);
    }
    // What differs, among the flags this GitLab has.
    let mut body = Map::new();
    let mut changed = Vec::new();
    for (field, value) in flags {
        if hook.flag(field).is_some_and(|v| v != *value) {
            body.insert((*field).into(), json!(value));
            changed.push((*field).to_string());
        }
    }
    let token_missing = secrets.token.is_some() && hook.token_present == Some(false);
    let signing_missing = secrets.signing.is_some() && hook.signing_token_present == Some(false);
    if token_missing || signing_missing || options.resend_secrets || !changed.is_empty() {
        // Secrets go with every update: an update is also how a lost one comes back.
        add_secrets(&mut body, secrets);
        if secrets.token.is_some() {
            changed.push("token".into());
        }
        if secrets.signing.is_some() {
            changed.push("signing_token".into());
        }
    }
    if changed.is_empty() {
        outcome.action = "unchanged";
        check_secrets_taken(&hook, secrets, outcome);
    } else if dry_run {
        outcome.action = "would_update";
        outcome.changed = changed;
    } else {
        let updated = gitlab
            .update_hook(ns, hook.id, &Value::Object(body))
            .await?;
        outcome.action = "updated";
        outcome.changed = changed;
        check_secrets_taken(&updated, secrets, outcome);
        // A flag GitLab shows but does not take would be sent again at every pass: say so.
        let refused: Vec<&str> = flags
            .iter()
            .filter(|(field, value)| updated.flag(field).is_some_and(|v| v != *value))
            .map(|(field, _)| *field)
            .collect();
        if !refused.is_empty() {
            outcome.problem = Some(format!(
                "GitLab kept {} as they were after the update: set them by hand in the hook's settings",
                refused.join(", ")
            ));
        }
    }
    if hook.disabled() {
        outcome.disabled = Some(Disabled {
            alert_status: hook.alert_status.clone().unwrap_or_default(),
            disabled_until: hook.disabled_until.clone(),
        });
        outcome.problem = Some(format!(
            "GitLab has {} this hook after failed deliveries and sends it nothing: make {url} reachable from GitLab with the hook's secret known to regwarden, then re-enable it with the hook's Test > Push events in GitLab (POST /api/v4/{}/hooks/{}/test/push_events)",
            if hook.alert_status.as_deref() == Some("disabled") {
                "disabled"
            } else {
                "temporarily disabled"
            },
            ns.api_path(),
            hook.id
        ));
    }
    Ok(())
}

fn add_secrets(body: &mut Map<String, Value>, secrets: &Secrets) {
    if let Some(s) = &secrets.signing {
        body.insert("signing_token".into(), json!(s.expose_secret()));
    }
    if let Some(t) = &secrets.token {
        body.insert("token".into(), json!(t.expose_secret()));
    }
}

/// A hook whose deliveries regwarden cannot authenticate is a problem: GitLab dropped the
/// signing token (before 19.0) and there is no secret token to fall back on.
fn check_secrets_taken(hook: &Hook, secrets: &Secrets, outcome: &mut Outcome) {
    // `signing_token_present` came with signing tokens (19.0): without it, GitLab has none.
    let signed = secrets.signing.is_some() && hook.signing_token_present == Some(true);
    // `token` has always been there; before 19.0 its presence is not shown.
    let tokened = secrets.token.is_some() && hook.token_present != Some(false);
    if !signed && !tokened {
        outcome.problem = Some(
            "GitLab did not keep a secret regwarden verifies on this hook (signing tokens need GitLab 19.0+): set server.secret_tokens_env as well, and run hooks sync again"
                .into(),
        );
    }
}
