//! `regwarden config check [--online]`: every problem of the configuration file with its key
//! and line; online, probes of GitLab (the API token), Qovery (the organization) and the
//! registry.

use std::path::Path;

use anyhow::Context;
use clap::{Args, Subcommand};
use secrecy::SecretString;
use serde::Serialize;

use super::{Failure, OutputFormat, load_config, print_json};
use crate::checklist::{self, Checklist};
use crate::config::{AccountHome, Config, CredentialKind, HumanDuration};
use crate::gitlab::{GitlabClient, Home, Namespace};
use crate::outbound::ApiError;
use crate::qovery::QoveryClient;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration file: every problem is listed with its key and line
    /// (exit 2). With --online, also probe GitLab, Qovery and the registry (exit 1 if one fails).
    Check(ConfigCheckArgs),
}

#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    /// Also probe GitLab (the API token), Qovery (the organization) and the registry.
    #[arg(long, env = "REGWARDEN_ONLINE")]
    pub online: bool,

    /// How to print the result.
    #[arg(long, env = "REGWARDEN_OUTPUT", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// Time allowed for each HTTP request of --online.
    #[arg(
        long,
        env = "REGWARDEN_TIMEOUT",
        default_value = "10s",
        value_name = "DURATION"
    )]
    pub timeout: HumanDuration,
}

/// One line of `config check`: a thing probed, and what came of it.
#[derive(Debug, Serialize)]
struct Finding {
    subject: String,
    status: Status,
    message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
}

impl Finding {
    fn new(subject: &str, result: anyhow::Result<String>) -> Self {
        let (status, message) = match result {
            Ok(m) => (Status::Ok, m),
            Err(e) => (Status::Fail, crate::outbound::error_chain(e.as_ref())),
        };
        Self {
            subject: subject.to_string(),
            status,
            message,
        }
    }

    fn warn(subject: &str, message: String) -> Self {
        Self {
            subject: subject.to_string(),
            status: Status::Warn,
            message,
        }
    }
}

pub async fn run(path: Option<&Path>, args: ConfigCheckArgs) -> Result<(), Failure> {
    let config = load_config(path)?;
    let path = path.expect("load_config checked it");
    let mut findings = vec![Finding::new(
        "config",
        Ok(format!(
            "{}: {} binding(s), {} auto-bind rule(s), store {}",
            path.display(),
            config.bindings.len(),
            config.auto_binds.len(),
            store_label(&config.store)
        )),
    )];
    match config.store.resolve() {
        Ok(url) => {
            use secrecy::ExposeSecret;
            if let Some(w) = crate::config::StoreConfig::warning(url.expose_secret()) {
                findings.push(Finding::warn("store.url", w));
            }
        }
        Err(e) => findings.push(Finding::new("store.url", Err(e.into()))),
    }
    let instance = &config.reconcile.instance;
    findings.push(Finding::new(
        "reconcile.instance",
        Ok(format!(
            "{}: its tokens are named {} and only those are ever revoked",
            crate::reconcile::plan::instance_label(instance),
            crate::reconcile::plan::token_name("<binding>", instance, chrono::DateTime::UNIX_EPOCH)
                .replace("19700101T000000Z", "<UTC time>")
        )),
    ));
    for (key, warning) in config.warnings() {
        findings.push(Finding::warn(&key, warning));
    }
    let gitlab_token = config.gitlab_token_source().read();
    let qovery_token = config.qovery_token_source().read();
    if args.online {
        findings.extend(probe_online(&config, gitlab_token, qovery_token, args.timeout).await);
    } else {
        for (subject, secret) in [
            ("gitlab.token", &gitlab_token),
            ("qovery.token", &qovery_token),
        ] {
            // Offline, a missing secret is worth knowing but does not make the file invalid.
            findings.push(match secret {
                Ok(_) => Finding::new(subject, Ok("present".into())),
                Err(e) => Finding::warn(subject, e.to_string()),
            });
        }
    }
    let all_ok = findings.iter().all(|f| f.status != Status::Fail);
    match args.output {
        OutputFormat::Json => {
            #[derive(Serialize)]
            struct Report<'a> {
                ok: bool,
                findings: &'a [Finding],
            }
            print_json(&Report {
                ok: all_ok,
                findings: &findings,
            });
        }
        OutputFormat::Text => {
            for f in &findings {
                let label = match f.status {
                    Status::Ok => "ok  ",
                    Status::Warn => "warn",
                    Status::Fail => "FAIL",
                };
                println!("{label} {}: {}", f.subject, f.message);
            }
        }
    }
    if all_ok {
        Ok(())
    } else {
        Err(Failure::Reported)
    }
}

/// Where the store is, for a person: the URL without its password, or where it is read from.
fn store_label(store: &crate::config::StoreConfig) -> String {
    match (&store.url, &store.url_env, &store.url_file) {
        (Some(u), _, _) => crate::config::redact_url_password(&u.0),
        (None, Some(env), _) => format!("from ${env}"),
        (None, None, Some(file)) => format!("from {}", file.display()),
        (None, None, None) => crate::config::DEFAULT_STORE_URL.into(),
    }
}

async fn probe_online(
    config: &Config,
    gitlab_token: Result<SecretString, crate::config::SecretError>,
    qovery_token: Result<SecretString, crate::config::SecretError>,
    timeout: HumanDuration,
) -> Vec<Finding> {
    let http = match crate::outbound::client(config.gitlab.ca_file.as_deref(), timeout.0) {
        Ok(c) => c,
        Err(e) => return vec![Finding::new("gitlab.ca_file", Err(e.into()))],
    };
    let accounts_token = gitlab_token.as_ref().ok().cloned();
    let checklist_token = accounts_token.clone();
    let hooks_token = accounts_token.clone();
    let checklist_qovery = qovery_token.as_ref().ok().cloned();
    let gitlab = async {
        let token = gitlab_token?;
        let client = GitlabClient::new(http.clone(), &config.gitlab.url.0, token);
        let info = client.current_token().await?;
        let mut message = format!(
            "{}: token {:?} with scopes [{}], expires {}",
            config.gitlab.url,
            info.name,
            info.scopes.join(", "),
            info.expires_at.as_deref().unwrap_or("never")
        );
        if !info.active {
            anyhow::bail!("{message}, but it is not active");
        }
        if !info.scopes.iter().any(|s| s == "api") {
            message.push_str(
                "; warning: without the `api` scope regwarden cannot create or revoke tokens",
            );
        }
        // A project or group access token's bot user may not create access tokens
        // (`ProjectPolicy`: `project_bot_access` prevents `create_resource_access_tokens`).
        let user = client.current_user().await?;
        let minting = config.uses_credential(CredentialKind::AccessToken);
        if user.is_access_token_bot() && !minting.is_empty() {
            let keys: Vec<String> = minting.iter().map(ToString::to_string).collect();
            anyhow::bail!(
                "{message}; it is a project or group access token (user {}), and GitLab lets no such token create access tokens, which {} ask for (credential = \"access_token\"): make the API token a personal access token (a person's, or a service account's) with the Maintainer role and the api scope, or use credential = \"deploy_token\" there",
                user.username,
                keys.join(", ")
            );
        }
        Ok(message)
    };
    let qovery = async {
        let token = qovery_token?;
        let client = QoveryClient::new(http.clone(), &config.qovery.url.0, token);
        let org = client
            .organization(&config.qovery.organization_id.0)
            .await
            .with_context(|| format!("organization {}", config.qovery.organization_id))?;
        Ok(format!(
            "{}: organization {:?} ({})",
            config.qovery.url, org.name, org.id
        ))
    };
    let accounts = async {
        match accounts_token {
            Some(token) => {
                let client = GitlabClient::new(http.clone(), &config.gitlab.url.0, token);
                probe_service_accounts(config, &client).await
            }
            // The gitlab finding already names the missing token.
            None => Vec::new(),
        }
    };
    let checklist = async {
        let Some(token) = checklist_token else {
            return Vec::new();
        };
        let gitlab = GitlabClient::new(http.clone(), &config.gitlab.url.0, token);
        // Without Qovery's token (named by the qovery finding), the Qovery items are left out.
        let qovery =
            checklist_qovery.map(|t| QoveryClient::new(http.clone(), &config.qovery.url.0, t));
        run_checklist(config, &http, &gitlab, qovery.as_ref(), timeout.0).await
    };
    let hooks = async {
        match hooks_token {
            Some(token) => {
                let client = GitlabClient::new(http.clone(), &config.gitlab.url.0, token);
                probe_hooks(config, &client).await
            }
            None => Vec::new(),
        }
    };
    let (gitlab, qovery, accounts, checklist, hooks) =
        tokio::join!(gitlab, qovery, accounts, checklist, hooks);
    let mut findings = vec![
        Finding::new("gitlab", gitlab),
        Finding::new("qovery", qovery),
    ];
    findings.extend(accounts);
    findings.extend(checklist);
    findings.extend(hooks);
    findings
}

/// With `server.public_url`: regwarden's hook in each bound project and group, read only
/// (`hooks sync --dry-run`). A missing or outdated hook is a warning (`hooks sync` makes
/// it); one GitLab disabled, or one that cannot be read, fails.
async fn probe_hooks(config: &Config, client: &GitlabClient) -> Vec<Finding> {
    let Ok(url) = crate::hooks::hook_url(config) else {
        return Vec::new();
    };
    let secrets = match crate::hooks::Secrets::from_config(config) {
        Ok(s) => s,
        Err(e) => return vec![Finding::warn("hooks", format!("not checked: {e}"))],
    };
    let targets = crate::hooks::targets(config);
    let options = crate::hooks::Options {
        dry_run: true,
        resend_secrets: false,
    };
    let outcomes = crate::hooks::sync(client, &url, &secrets, &targets, options).await;
    outcomes
        .into_iter()
        .map(|o| {
            let subject = format!("hook {} {}", o.kind.as_str(), o.path);
            if let Some(problem) = &o.problem {
                return Finding::new(&subject, Err(anyhow::anyhow!("{problem}")));
            }
            match o.action {
                "would_create" => Finding::warn(
                    &subject,
                    format!("no hook at {url}: run `regwarden hooks sync` (or let serve's timer make it)"),
                ),
                "would_update" => Finding::warn(
                    &subject,
                    format!(
                        "hook {} differs ({}): run `regwarden hooks sync`",
                        o.hook_id.unwrap_or_default(),
                        o.changed.join(", ")
                    ),
                ),
                _ if !o.duplicates.is_empty() => Finding::warn(
                    &subject,
                    format!(
                        "hook {} at {url}, and duplicates {:?}: run `regwarden hooks sync`",
                        o.hook_id.unwrap_or_default(),
                        o.duplicates
                    ),
                ),
                _ => Finding::new(
                    &subject,
                    Ok(format!("hook {} at {url}", o.hook_id.unwrap_or_default())),
                ),
            }
        })
        .collect()
}

/// The self-managed GitLab checklist ([`crate::checklist`]) over every binding, the projects
/// of `[[auto_bind]]` rules included; a rule whose group cannot be listed is a failure.
async fn run_checklist(
    config: &Config,
    http: &reqwest::Client,
    gitlab: &GitlabClient,
    qovery: Option<&QoveryClient>,
    timeout: std::time::Duration,
) -> Vec<Finding> {
    let resolved = crate::reconcile::bindings::resolve(config, gitlab).await;
    let mut findings: Vec<Finding> = resolved
        .failed_rules
        .iter()
        .map(|f| Finding {
            subject: format!("auto_bind {}", f.group),
            status: Status::Fail,
            message: f.error.clone(),
        })
        .collect();
    let configured = config.configured_registry_url();
    let checklist = Checklist {
        http,
        gitlab,
        gitlab_url: &config.gitlab.url.0,
        qovery: qovery.map(|q| (q, config.qovery.organization_id.0.as_str())),
        configured: configured.as_ref(),
        ca_file: config.gitlab.ca_file.as_deref(),
        timeout,
        private_network: config.qovery.private_network,
    };
    let outcome = checklist.run(&resolved.bindings).await;
    findings.extend(outcome.findings.into_iter().map(|f| Finding {
        subject: format!("{} {}", f.check.as_str(), f.subject),
        status: match f.status {
            checklist::Status::Ok => Status::Ok,
            checklist::Status::Warn => Status::Warn,
            checklist::Status::Fail => Status::Fail,
        },
        message: f.message,
    }));
    findings
}

/// For each service account the bindings use: whether the API token can mint and delete its
/// tokens, and, when it cannot, what is missing.
async fn probe_service_accounts(config: &Config, client: &GitlabClient) -> Vec<Finding> {
    let mut seen = Vec::new();
    let explicit = config.bindings.iter().enumerate().map(|(i, b)| {
        let ns = match (&b.project, &b.group) {
            (Some(p), _) => Namespace::Project(p.clone()),
            (None, Some(g)) => Namespace::Group(g.clone()),
            (None, None) => Namespace::Group(String::new()),
        };
        (
            format!("binding[{i}]"),
            b.policy.apply_to(&config.defaults),
            ns,
        )
    });
    let rules = config.auto_binds.iter().enumerate().map(|(i, a)| {
        (
            format!("auto_bind[{i}]"),
            a.policy.apply_to(&config.defaults),
            Namespace::Group(a.group.clone()),
        )
    });
    let mut findings = Vec::new();
    for (at, policy, ns) in explicit.chain(rules) {
        if policy.credential != CredentialKind::ServiceAccount {
            continue;
        }
        let username = policy.service_account.clone().unwrap_or_default();
        // An auto_bind rule's projects each get a project account of their own when they
        // first rotate: nothing to probe yet.
        if policy.service_account_home == AccountHome::Project && matches!(ns, Namespace::Group(_))
        {
            continue;
        }
        let subject = format!("{at}.service_account");
        let home = match client.account_home(policy.service_account_home, &ns).await {
            Ok(home) => home,
            Err(e) => {
                findings.push(Finding::new(&subject, Err(e.into())));
                continue;
            }
        };
        if seen.contains(&(home.clone(), username.clone())) {
            continue;
        }
        seen.push((home.clone(), username.clone()));
        let result = async {
            let account = match client.service_account(&home, &username).await {
                Ok(account) => account,
                Err(e) => {
                    return Err(match client.explain_missing_home(e, &ns).await {
                        e @ ApiError::Setup { .. } => anyhow::Error::new(e),
                        e => missing_for_accounts(e, &home),
                    });
                }
            };
            match account {
                Some(a) => {
                    let tokens = client
                        .account_tokens(&home, a.id, "")
                        .await
                        .map_err(|e| missing_for_accounts(e, &home))?;
                    Ok(format!(
                        "{username:?} (id {}) in {home}: the API token can list the account and its tokens ({} active), which takes the role minting and deleting them take",
                        a.id,
                        tokens.len()
                    ))
                }
                None if policy.create_service_account => Ok(format!(
                    "{username:?} does not exist in {home} yet: regwarden creates it at the first rotation"
                )),
                None => Err(anyhow::anyhow!(
                    "no service account {username:?} in {home}: create it in GitLab, or set create_service_account = true"
                )),
            }
        }
        .await;
        findings.push(Finding::new(&subject, result));
    }
    findings
}

/// What a refusal of the service-account API means for the person who runs regwarden.
fn missing_for_accounts(e: ApiError, home: &Home) -> anyhow::Error {
    let what = match (&e, home) {
        (ApiError::Forbidden { .. } | ApiError::Unauthorized { .. }, Home::Instance) => {
            "instance service accounts need an administrator's API token (self-managed GitLab)"
                .to_string()
        }
        (ApiError::Forbidden { .. } | ApiError::Unauthorized { .. }, _) => format!(
            "the API token cannot manage the service accounts of {home}: it needs the Owner role there (Maintainer for a project's), with the api scope"
        ),
        // GitLab answers 404 for a group or project the caller has no role in, as for one that
        // does not exist.
        (ApiError::NotFound { message, .. }, Home::Group(_) | Home::Project(_))
            if message.contains("Group Not Found") || message.contains("Project Not Found") =>
        {
            format!(
                "the API token cannot see {home} or manage its service accounts: it needs the Owner role there (Maintainer for a project's), with the api scope; or {home} does not exist"
            )
        }
        (ApiError::NotFound { .. }, _) => format!(
            "GitLab answered 404 for the service accounts of {home}: check that path; otherwise this GitLab has no such API there (regwarden needs GitLab 17.11, with service accounts on Premium, or 18.11 on Free; project service accounts 18.11; instance accounts exist on self-managed GitLab only)"
        ),
        _ => String::new(),
    };
    let e = anyhow::Error::new(e);
    if what.is_empty() { e } else { e.context(what) }
}
