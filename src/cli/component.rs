//! `regwarden ci register|rotate|notify`: the jobs of the GitLab CI/CD component
//! (`templates/`). They read
//! GitLab's predefined CI variables, name any that is missing with how to provide it, never
//! echo a secret, fold details into collapsible log sections, and leave a dotenv report
//! (`REGWARDEN_QOVERY_REGISTRY_ID`, ...) for later jobs.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use reqwest::Url;
use secrecy::SecretString;

use super::Failure;
use crate::config::{
    AccountHome, CredentialKind, HumanDuration, Policy, ReconcileConfig, RegistryKindSetting, Scope,
};
use crate::credential::Credential;
use crate::gitlab::{GitlabClient, Namespace};
use crate::qovery::{QoveryClient, RegistryKind, RegistryWrite};
use crate::reconcile::bindings::slug;
use crate::reconcile::engine::RegistryAddress;
use crate::reconcile::{
    Binding, BindingOutcome, Engine, EngineSettings, Force, Marker, PassOptions,
};
use crate::registry::{self, Access};

#[derive(Debug, Subcommand)]
pub enum CiCommand {
    /// Check a credential the pipeline already has (default: the gitlab-deploy-token's
    /// CI_DEPLOY_USER / CI_DEPLOY_PASSWORD) against CI_REGISTRY for CI_PROJECT_PATH, then create
    /// or update the Qovery registry. Skips the write when Qovery already holds it.
    Register(RegisterArgs),
    /// The whole rotation protocol for this project, from a scheduled pipeline: create a
    /// token, check it, switch Qovery, revoke previous tokens after the grace period.
    Rotate(RotateArgs),
    /// Ask a running `regwarden serve` to reconcile this project, with the job's ID token.
    Notify(NotifyArgs),
}

/// Where Qovery is and which registry to write.
#[derive(Debug, Args)]
pub struct QoveryArgs {
    /// Qovery organization id (UUID).
    #[arg(long, env = "REGWARDEN_QOVERY_ORGANIZATION_ID", value_name = "UUID")]
    pub organization_id: String,

    /// Name of the Qovery container registry; default: gitlab-<project path slug>.
    #[arg(long, env = "REGWARDEN_REGISTRY_NAME", value_name = "NAME")]
    pub registry_name: Option<String>,

    /// Qovery API base URL.
    #[arg(
        long,
        env = "REGWARDEN_QOVERY_URL",
        default_value = "https://api.qovery.com",
        value_name = "URL"
    )]
    pub qovery_url: String,

    /// Registry URL; default: https://$CI_REGISTRY.
    #[arg(long, env = "REGWARDEN_REGISTRY_URL", value_name = "URL")]
    pub registry_url: Option<String>,

    /// Kind of the Qovery registry: auto is GITLAB_CR for registry.gitlab.com, else
    /// GENERIC_CR.
    #[arg(
        long,
        env = "REGWARDEN_REGISTRY_KIND",
        value_enum,
        default_value_t = RegistryKindSetting::Auto,
        value_name = "KIND"
    )]
    pub registry_kind: RegistryKindSetting,

    /// PEM file of extra CA certificates (self-managed GitLab behind a private CA).
    #[arg(long, env = "REGWARDEN_CA_FILE", value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// Allow http:// URLs to hosts other than loopback (credentials cross the network in
    /// clear).
    #[arg(long, env = "REGWARDEN_ALLOW_INSECURE_HTTP")]
    pub allow_insecure_http: bool,

    /// Where to write the dotenv report for later jobs.
    #[arg(
        long,
        env = "REGWARDEN_DOTENV",
        default_value = "regwarden.env",
        value_name = "PATH"
    )]
    pub dotenv: PathBuf,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    pub qovery: QoveryArgs,

    /// Variable holding the registry username.
    #[arg(
        long,
        env = "REGWARDEN_USERNAME_VARIABLE",
        default_value = "CI_DEPLOY_USER",
        value_name = "NAME"
    )]
    pub username_variable: String,

    /// Variable holding the registry password (token).
    #[arg(
        long,
        env = "REGWARDEN_PASSWORD_VARIABLE",
        default_value = "CI_DEPLOY_PASSWORD",
        value_name = "NAME"
    )]
    pub password_variable: String,

    /// What the credential must allow.
    #[arg(long, env = "REGWARDEN_ACCESS", value_enum, default_value_t = Access::Pull)]
    pub access: Access,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub qovery: QoveryArgs,

    /// GitLab base URL; default: $CI_SERVER_URL.
    #[arg(long, env = "REGWARDEN_GITLAB_URL", value_name = "URL")]
    pub gitlab_url: Option<String>,

    /// Kind of token to keep alive.
    #[arg(long, env = "REGWARDEN_CREDENTIAL", value_enum, default_value_t = CredentialKind::DeployToken)]
    pub credential: CredentialKind,

    /// With `--credential service_account`: the username of the service account whose
    /// personal access tokens regwarden mints.
    #[arg(long, env = "REGWARDEN_SERVICE_ACCOUNT", value_name = "USERNAME")]
    pub service_account: Option<String>,

    /// Where that account lives: the project's top-level group, the project, or the instance.
    #[arg(long, env = "REGWARDEN_SERVICE_ACCOUNT_HOME", value_enum, default_value_t = AccountHome::Group)]
    pub service_account_home: AccountHome,

    /// Create the service account when it does not exist.
    #[arg(long, env = "REGWARDEN_CREATE_SERVICE_ACCOUNT")]
    pub create_service_account: bool,

    /// Also let the token push (write_registry).
    #[arg(long, env = "REGWARDEN_WRITE_REGISTRY")]
    pub write_registry: bool,

    /// Lifetime of each new token.
    #[arg(long, env = "REGWARDEN_LIFETIME", default_value = "30d")]
    pub lifetime: HumanDuration,

    /// Rotate when the token Qovery holds expires within this.
    #[arg(long, env = "REGWARDEN_ROTATE_BEFORE", default_value = "7d")]
    pub rotate_before: HumanDuration,

    /// How long the previous token stays valid after the switch.
    #[arg(long, env = "REGWARDEN_GRACE_PERIOD", default_value = "1h")]
    pub grace_period: HumanDuration,

    /// Rotate even when the token is not due.
    #[arg(long, env = "REGWARDEN_FORCE")]
    pub force: bool,

    /// Print the plan and change nothing.
    #[arg(long, env = "REGWARDEN_DRY_RUN")]
    pub dry_run: bool,

    /// Names this deployment in its token names and the Qovery marker, so that it never
    /// takes the tokens of a `regwarden serve` binding the same project for its own (the
    /// server's default instance is unnamed).
    #[arg(
        long,
        env = "REGWARDEN_INSTANCE",
        default_value = "ci",
        value_name = "NAME",
        value_parser = parse_instance
    )]
    pub instance: String,
}

fn parse_instance(raw: &str) -> Result<String, crate::config::Invalid> {
    crate::config::check_instance(raw).map(|()| raw.to_string())
}

#[derive(Debug, Args)]
pub struct NotifyArgs {
    /// URL of the running regwarden server (the `aud` of the job's ID token).
    #[arg(long, env = "REGWARDEN_SERVER", value_name = "URL")]
    pub server: String,

    /// Variable holding the job's ID token (`id_tokens:` in the job).
    #[arg(
        long,
        env = "REGWARDEN_ID_TOKEN_VARIABLE",
        default_value = "REGWARDEN_ID_TOKEN",
        value_name = "NAME"
    )]
    pub id_token_variable: String,

    /// PEM file of extra CA certificates (a server behind a private CA).
    #[arg(long, env = "REGWARDEN_CA_FILE", value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// Allow an http:// server on a host other than loopback (the ID token crosses the
    /// network in clear).
    #[arg(long, env = "REGWARDEN_ALLOW_INSECURE_HTTP")]
    pub allow_insecure_http: bool,
}

/// A job's failure with exit code 1 (the job ran and something failed).
fn failed(message: impl Into<String>) -> Failure {
    Failure::failed(anyhow::anyhow!(message.into()))
}

/// How to provide each variable the jobs read.
fn how_to_provide(name: &str) -> &'static str {
    match name {
        "CI_DEPLOY_USER" | "CI_DEPLOY_PASSWORD" => {
            "create a deploy token named gitlab-deploy-token with read_registry (Settings > Repository > Deploy tokens); GitLab then gives it to every job"
        }
        "QOVERY_API_TOKEN" => {
            "add a masked CI/CD variable QOVERY_API_TOKEN with an organization API token (Qovery: Organization settings > API token)"
        }
        "GITLAB_TOKEN" => {
            "add a masked CI/CD variable GITLAB_TOKEN with a project access token (Maintainer, api scope)"
        }
        "CI_REGISTRY" => "enable the container registry of the project, or pass --registry-url",
        "CI_SERVER_URL" | "CI_PROJECT_PATH" => "run the command inside a GitLab CI job",
        _ => "set it in the job or as a CI/CD variable",
    }
}

fn var(name: &str) -> Result<String, Failure> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(Failure::usage(format!(
            "{name} is not set: {}",
            how_to_provide(name)
        ))),
    }
}

fn secret_var(name: &str) -> Result<SecretString, Failure> {
    var(name).map(SecretString::from)
}

/// GitLab's collapsible log sections.
struct Section(&'static str);

impl Section {
    fn start(name: &'static str, header: &str) -> Self {
        println!(
            "\x1b[0Ksection_start:{}:{name}[collapsed=true]\r\x1b[0K{header}",
            chrono::Utc::now().timestamp()
        );
        Section(name)
    }
}

impl Drop for Section {
    fn drop(&mut self) {
        println!(
            "\x1b[0Ksection_end:{}:{}\r\x1b[0K",
            chrono::Utc::now().timestamp(),
            self.0
        );
    }
}

fn write_dotenv(path: &PathBuf, pairs: &[(&str, String)]) -> Result<(), Failure> {
    let text: String = pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(path, text).map_err(|e| {
        failed(format!(
            "cannot write the dotenv report {}: {e}",
            path.display()
        ))
    })
}

/// A URL from a flag or a CI variable (`https://` assumed without a scheme). Plain http to a
/// host other than loopback is refused unless `allow_insecure_http`.
fn parse_url(what: &str, raw: &str, allow_insecure_http: bool) -> Result<Url, Failure> {
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("https://{raw}")
    };
    let url = Url::parse(&with_scheme)
        .map_err(|e| Failure::usage(format!("{what} {raw:?} is not a URL: {e}")))?;
    if !allow_insecure_http && let Err(why) = crate::outbound::refuse_cleartext(&url) {
        return Err(Failure::usage(format!(
            "{what} {why}: use https://, or set REGWARDEN_ALLOW_INSECURE_HTTP=true (--allow-insecure-http)"
        )));
    }
    Ok(url)
}

/// What the Qovery side of a job needs.
struct Target {
    org: String,
    name: String,
    project_path: String,
    registry_url: Url,
    kind: RegistryKind,
    http: reqwest::Client,
    qovery: QoveryClient,
}

fn target(args: &QoveryArgs, timeout: std::time::Duration) -> Result<Target, Failure> {
    let project_path = var("CI_PROJECT_PATH")?;
    let registry_url = match args
        .registry_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    {
        Some(u) => parse_url("--registry-url", u, args.allow_insecure_http)?,
        None => parse_url(
            "CI_REGISTRY",
            &var("CI_REGISTRY")?,
            args.allow_insecure_http,
        )?,
    };
    let kind = args.registry_kind.resolve(&registry_url);
    let http = crate::outbound::client(args.ca_file.as_deref(), timeout)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let qovery = QoveryClient::new(
        http.clone(),
        &parse_url("--qovery-url", &args.qovery_url, args.allow_insecure_http)?,
        secret_var("QOVERY_API_TOKEN")?,
    );
    Ok(Target {
        org: args.organization_id.clone(),
        name: args
            .registry_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("gitlab-{}", slug(&project_path))),
        project_path,
        registry_url,
        kind,
        http,
        qovery,
    })
}

/// Runs a `regwarden ci` command.
pub async fn run(command: CiCommand) -> Result<(), Failure> {
    let timeout = std::time::Duration::from_secs(20);
    match command {
        CiCommand::Register(args) => register(args, timeout).await,
        CiCommand::Rotate(args) => rotate(args, timeout).await,
        CiCommand::Notify(args) => notify(args, timeout).await,
    }
}

async fn register(args: RegisterArgs, timeout: std::time::Duration) -> Result<(), Failure> {
    let t = target(&args.qovery, timeout)?;
    let credential = Credential::new(
        var(&args.username_variable)?,
        secret_var(&args.password_variable)?,
    );
    let fingerprint = credential.fingerprint();

    let check = {
        let _s = Section::start(
            "regwarden_check",
            "Checking the credential against the registry",
        );
        let check = registry::check(
            &t.http,
            &t.registry_url,
            &t.project_path,
            args.access,
            &credential,
        )
        .await;
        println!("{}: {}", check.outcome, check.explanation);
        if let Some(d) = &check.detail {
            println!("  said: {d}");
        }
        check
    };
    if !check.is_ok() {
        return Err(Failure::Check {
            outcome: check.outcome,
            message: format!(
                "the credential {} ({fingerprint}) cannot {} {} at {}: {}. Qovery was not changed.",
                credential.username,
                args.access.actions().join(","),
                t.project_path,
                t.registry_url,
                check.explanation
            ),
        });
    }

    let existing = t
        .qovery
        .registry_by_name(&t.org, &t.name)
        .await
        .map_err(|e| failed(format!("cannot read Qovery registries: {e}")))?;
    let marker = Marker::new(&t.name, "", 0, &fingerprint, None);
    let (action, registry) = match existing {
        Some(r) if r.is_cluster_owned() => {
            return Err(failed(format!(
                "Qovery registry {:?} belongs to a Qovery cluster; pick another registry-name",
                t.name
            )));
        }
        Some(r)
            if r.username.as_deref() == Some(credential.username.as_str())
                && r.marker
                    .as_ref()
                    .is_some_and(|m| m.fingerprint == fingerprint.as_str()) =>
        {
            ("unchanged", r)
        }
        existing => {
            let _s = Section::start("regwarden_qovery", "Writing the Qovery registry");
            let write = RegistryWrite {
                name: &t.name,
                kind: &t.kind,
                url: &t.registry_url,
                credential: &credential,
                marker: &marker,
            };
            let action = if existing.is_some() {
                "updated"
            } else {
                "created"
            };
            let written = t
                .qovery
                .write_registry(&t.org, existing.as_ref(), write)
                .await
                .map_err(|e| failed(format!("Qovery refused the registry: {e}")))?;
            (action, written)
        }
    };
    write_dotenv(
        &args.qovery.dotenv,
        &[
            ("REGWARDEN_QOVERY_REGISTRY_ID", registry.id.clone()),
            ("REGWARDEN_QOVERY_REGISTRY_NAME", registry.name.clone()),
            ("REGWARDEN_CREDENTIAL_FINGERPRINT", fingerprint.to_string()),
            ("REGWARDEN_ACTION", action.to_string()),
        ],
    )?;
    println!(
        "regwarden: Qovery registry {:?} {action}: {} ({fingerprint}) can {} {}",
        registry.name,
        credential.username,
        args.access.actions().join(","),
        t.project_path
    );
    Ok(())
}

async fn rotate(args: RotateArgs, timeout: std::time::Duration) -> Result<(), Failure> {
    let t = target(&args.qovery, timeout)?;
    let gitlab_url = match args.gitlab_url.as_deref().filter(|u| !u.trim().is_empty()) {
        Some(u) => parse_url("--gitlab-url", u, args.qovery.allow_insecure_http)?,
        None => parse_url(
            "CI_SERVER_URL",
            &var("CI_SERVER_URL")?,
            args.qovery.allow_insecure_http,
        )?,
    };
    let gitlab = GitlabClient::new(t.http.clone(), &gitlab_url, secret_var("GITLAB_TOKEN")?);
    let mut name: String = slug(&t.project_path).chars().take(64).collect();
    while name.ends_with(['-', '_']) {
        name.pop();
    }
    let policy = Policy {
        credential: args.credential,
        scopes: if args.write_registry {
            vec![Scope::ReadRegistry, Scope::WriteRegistry]
        } else {
            vec![Scope::ReadRegistry]
        },
        lifetime: args.lifetime,
        rotate_before: args.rotate_before,
        grace_period: args.grace_period,
        // The component passes an empty input as an empty variable.
        service_account: args
            .service_account
            .clone()
            .filter(|s| !s.trim().is_empty()),
        service_account_home: args.service_account_home,
        create_service_account: args.create_service_account,
        // Sharing is judged from a configuration file; a pipeline has none.
        allow_shared_write: false,
    }
    .for_binding(&name, &t.project_path);
    if policy.credential == CredentialKind::ServiceAccount && policy.service_account.is_none() {
        return Err(Failure::Usage(
            "--credential service_account needs --service-account USERNAME (or REGWARDEN_SERVICE_ACCOUNT): the GitLab service account whose tokens regwarden mints".into(),
        ));
    }
    let binding = Binding {
        name: name.clone(),
        instance: args.instance.clone(),
        namespace: Namespace::Project(t.project_path.clone()),
        repository: None,
        qovery_registry: t.name.clone(),
        policy,
        pinned: None,
        from_rule: false,
        blocked: None,
    };
    // No store to run: the job's resource_group keeps two pipelines of the project apart, and
    // the binding's lock lives in memory for the job's own pass.
    let store = if args.dry_run {
        None
    } else {
        Some(
            crate::store::Store::open("sqlite::memory:")
                .await
                .map_err(|e| failed(e.to_string()))?,
        )
    };
    let engine = Arc::new(Engine {
        gitlab,
        qovery: t.qovery.clone(),
        http: t.http.clone(),
        organization: t.org.clone(),
        registry: RegistryAddress::known(t.registry_url.clone(), t.kind.clone()),
        store,
        // The defaults of `[reconcile]`, as a configuration file without one gets them.
        settings: EngineSettings::from(&ReconcileConfig::default()),
        // The job checks the pipeline's own credential; the checklist is `config check`'s.
        checklist: None,
    });
    let reports = {
        let _s = Section::start("regwarden_rotate", "Running the rotation protocol");
        let reports = engine
            .run(
                std::slice::from_ref(&binding),
                PassOptions {
                    dry_run: args.dry_run,
                    force: if args.force { Force::Always } else { Force::No },
                    complete: false,
                    checklist: false,
                },
            )
            .await;
        for action in &reports[0].actions {
            println!("{action}");
        }
        reports
    };
    let report = &reports[0];
    let outcome = serde_json::to_value(report.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let registry_id = t
        .qovery
        .registry_by_name(&t.org, &t.name)
        .await
        .ok()
        .flatten()
        .map(|r| r.id)
        .unwrap_or_default();
    let held = report.held.as_ref();
    write_dotenv(
        &args.qovery.dotenv,
        &[
            ("REGWARDEN_QOVERY_REGISTRY_ID", registry_id),
            ("REGWARDEN_QOVERY_REGISTRY_NAME", t.name.clone()),
            (
                "REGWARDEN_TOKEN_ID",
                held.map(|h| h.token_id.to_string()).unwrap_or_default(),
            ),
            (
                "REGWARDEN_CREDENTIAL_FINGERPRINT",
                held.map(|h| h.fingerprint.clone()).unwrap_or_default(),
            ),
            ("REGWARDEN_ACTION", outcome.clone()),
        ],
    )?;
    if report.outcome.is_failure() {
        return Err(failed(format!(
            "rotation of {} failed: {}",
            t.project_path,
            report.error.as_deref().unwrap_or("see above")
        )));
    }
    let held_line = held
        .map(|h| format!("; Qovery holds token {} ({})", h.token_id, h.fingerprint))
        .unwrap_or_default();
    println!("regwarden: {} {outcome}{held_line}", t.name);
    if report.outcome == BindingOutcome::Busy {
        println!("regwarden: another rotation of this binding is running");
    }
    Ok(())
}

async fn notify(args: NotifyArgs, timeout: std::time::Duration) -> Result<(), Failure> {
    let token = var(&args.id_token_variable).map_err(|_| {
        Failure::usage(format!(
            "{} is not set: give the job `id_tokens: {{ {}: {{ aud: {} }} }}`",
            args.id_token_variable, args.id_token_variable, args.server
        ))
    })?;
    let server = parse_url("--server", &args.server, args.allow_insecure_http)?;
    let url = crate::outbound::directory_url(&server, "api/v1/ci")
        .join("reconcile")
        .map_err(|e| Failure::usage(e.to_string()))?;
    let http = crate::outbound::client(args.ca_file.as_deref(), timeout)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let response = http
        .post(url)
        .bearer_auth(token.trim())
        .send()
        .await
        .map_err(|e| {
            failed(format!(
                "cannot reach {server}: {}",
                crate::outbound::error_chain(&e)
            ))
        })?;
    let status = response.status();
    let body: serde_json::Value = crate::outbound::read_body(response, 64 << 10)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if status == reqwest::StatusCode::ACCEPTED {
        println!(
            "regwarden: {server} will reconcile {}",
            body["bindings"]
                .as_array()
                .map(|b| b
                    .iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        );
        Ok(())
    } else {
        Err(failed(format!(
            "{server} answered {status}: {}",
            body["error"].as_str().unwrap_or("no reason given")
        )))
    }
}
