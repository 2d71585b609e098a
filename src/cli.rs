//! The command line: argument parsing, logging set-up, and one function per command.
//!
//! Exit codes: 0 success; 1 a command ran and something it checked failed; 2 bad usage or
//! configuration; 3, 4, 5 the outcomes of `regwarden check` (rejected, no access, unreachable).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;
use serde::Serialize;

use crate::config::{Config, HumanDuration, Url};
use crate::credential::Credential;
use crate::gitlab::GitlabClient;
use crate::qovery::QoveryClient;
use crate::registry::{self, Access, CredentialCheck};

/// Keeps Qovery's GitLab container-registry credentials valid: creates, checks and rotates
/// GitLab tokens, and registers them in Qovery only once the registry accepts them.
#[derive(Debug, Parser)]
#[command(
    name = "regwarden",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Configuration file (TOML); see regwarden.example.toml.
    #[arg(long, global = true, env = "REGWARDEN_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Format of the log lines written to standard error (filter them with RUST_LOG).
    #[arg(long, global = true, env = "REGWARDEN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the bot: receive GitLab webhooks, act on them from a worker pool, and reconcile
    /// every `server.reconcile_interval`. Stops gracefully on SIGTERM or SIGINT.
    Serve(ServeArgs),
    /// Check that a credential can pull (or push) a repository, through the registry's own
    /// token authentication, down to the `access` claim of the JWT its realm grants.
    ///
    /// Exit codes: 0 the credential works; 3 rejected (wrong, revoked or expired);
    /// 4 valid but without access to the repository or the actions; 5 the registry or its
    /// realm cannot be reached or answers nonsense; 2 bad usage.
    Check(CheckArgs),
    /// Work with the configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// One pass over the bindings: observe GitLab and Qovery, plan, and rotate or revoke
    /// what needs it. A binding is rotated by one worker, process or replica at a time; one
    /// that another live holder is rotating is reported "busy" and left to it.
    ///
    /// Exit codes: 0 every binding is healthy, rotated, or busy (its holder finishes the
    /// job); 1 a binding failed or is blocked, or an [[auto_bind]] rule could not be expanded
    /// (every other binding still proceeds); 2 bad usage or configuration.
    Reconcile(ReconcileArgs),
    /// Show the journal: every step of every rotation, newest first.
    History(HistoryArgs),
    /// The jobs of the GitLab CI/CD component (templates/), run inside GitLab CI.
    #[command(subcommand)]
    Ci(crate::ci::CiCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; default: server.listen from the configuration.
    #[arg(long, env = "REGWARDEN_LISTEN", value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,

    /// Jobs run at once.
    #[arg(long, env = "REGWARDEN_WORKERS", default_value_t = 2)]
    pub workers: usize,

    /// How long running jobs may take to finish after a stop signal.
    #[arg(
        long,
        env = "REGWARDEN_SHUTDOWN_GRACE",
        default_value = "30s",
        value_name = "DURATION"
    )]
    pub shutdown_grace: HumanDuration,

    /// How long a worker holds a job; a job whose worker died runs again after this.
    #[arg(
        long,
        env = "REGWARDEN_JOB_LOCK",
        default_value = "10m",
        value_name = "DURATION"
    )]
    pub job_lock: HumanDuration,

    /// Tries of a failing job (2 s, 4 s, 8 s... apart) before it is marked dead.
    #[arg(long, env = "REGWARDEN_JOB_ATTEMPTS", default_value_t = 5)]
    pub job_attempts: u32,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Only this binding (repeat for several); default: all of them.
    #[arg(
        long = "binding",
        env = "REGWARDEN_BINDINGS",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub bindings: Vec<String>,

    /// Print the plan and write nothing anywhere (GitLab, Qovery, the store).
    #[arg(long, env = "REGWARDEN_DRY_RUN")]
    pub dry_run: bool,

    /// Rotate even bindings whose token is not due.
    #[arg(long, env = "REGWARDEN_FORCE")]
    pub force: bool,

    /// How to print the result.
    #[arg(long, env = "REGWARDEN_OUTPUT", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this binding.
    #[arg(long, env = "REGWARDEN_BINDING", value_name = "NAME")]
    pub binding: Option<String>,

    /// How many entries, newest first.
    #[arg(long, env = "REGWARDEN_LIMIT", default_value_t = 50)]
    pub limit: u32,

    /// How to print the result.
    #[arg(long, env = "REGWARDEN_OUTPUT", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration file: every problem is listed with its key and line
    /// (exit 2). With --online, also probe GitLab, Qovery and the registry (exit 1 if one fails).
    Check(ConfigCheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Registry URL, e.g. https://registry.gitlab.com (https:// is assumed without a scheme).
    #[arg(long, env = "REGWARDEN_REGISTRY", value_name = "URL")]
    pub registry: String,

    /// Repository path inside the registry, e.g. acme/api.
    #[arg(long, env = "REGWARDEN_REPOSITORY", value_name = "PATH")]
    pub repository: String,

    /// Username of the credential, e.g. gitlab+deploy-token-42.
    #[arg(long, env = "REGWARDEN_USERNAME", value_name = "USER")]
    pub username: String,

    /// Read the password (token) from standard input. Without this flag it comes from the
    /// REGWARDEN_PASSWORD environment variable; it is never taken as a flag value.
    #[arg(long, env = "REGWARDEN_PASSWORD_STDIN")]
    pub password_stdin: bool,

    /// What the credential must allow.
    #[arg(long, env = "REGWARDEN_ACCESS", value_enum, default_value_t = Access::Pull)]
    pub access: Access,

    /// PEM file of extra CA certificates to trust (a registry behind a private CA).
    #[arg(long, env = "REGWARDEN_CA_FILE", value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// Allow an http:// registry on a host other than loopback (the token crosses the
    /// network in clear).
    #[arg(long, env = "REGWARDEN_ALLOW_INSECURE_HTTP")]
    pub allow_insecure_http: bool,

    /// How to print the result.
    #[arg(long, env = "REGWARDEN_OUTPUT", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// Time allowed for each HTTP request.
    #[arg(
        long,
        env = "REGWARDEN_TIMEOUT",
        default_value = "10s",
        value_name = "DURATION"
    )]
    pub timeout: HumanDuration,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Exit code for bad usage or configuration, as clap uses for its own errors.
const EXIT_USAGE: u8 = 2;
const EXIT_FAILED: u8 = 1;

/// Parses the command line, runs the command, and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    // The server uses every core; a one-shot command starts faster on one thread.
    let mut builder = if matches!(cli.command, Command::Serve(_)) {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let code = runtime.block_on(run(cli));
    // A dropped runtime waits for blocking tasks; the process is done with them.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    ExitCode::from(code)
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Check(args) => check(args).await,
        Command::Config(ConfigCommand::Check(args)) => {
            config_check(cli.config.as_deref(), args).await
        }
        Command::Serve(args) => serve(cli.config.as_deref(), args).await,
        Command::Reconcile(args) => reconcile(cli.config.as_deref(), args).await,
        Command::History(args) => history(cli.config.as_deref(), args).await,
        Command::Ci(command) => crate::ci::run(command).await,
    }
}

/// Prints a usage error and returns the usage exit code.
fn usage_error(message: impl std::fmt::Display) -> u8 {
    eprintln!("error: {message}");
    EXIT_USAGE
}

fn parse_registry_url(raw: &str, allow_insecure_http: bool) -> Result<Url, String> {
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("https://{raw}")
    };
    let url =
        Url::parse(&with_scheme).map_err(|e| format!("--registry {raw:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "--registry {raw:?}: expected an http:// or https:// URL with a host"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("--registry must not carry credentials: give the user with --username and the token on standard input".into());
    }
    if !allow_insecure_http && let Err(why) = crate::http::refuse_cleartext(&url) {
        return Err(format!(
            "--registry {why}: use https://, or pass --allow-insecure-http"
        ));
    }
    Ok(url)
}

fn read_password(from_stdin: bool) -> Result<SecretString, String> {
    if from_stdin {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        let password = input.trim_end_matches(['\n', '\r']);
        if password.is_empty() {
            return Err("--password-stdin: standard input held no password".into());
        }
        return Ok(SecretString::from(password.to_string()));
    }
    match std::env::var("REGWARDEN_PASSWORD") {
        Ok(p) if !p.is_empty() => Ok(SecretString::from(p)),
        _ => Err("no password: pipe it to --password-stdin or set REGWARDEN_PASSWORD (it is never taken as a flag value)".into()),
    }
}

async fn check(args: CheckArgs) -> u8 {
    let registry = match parse_registry_url(&args.registry, args.allow_insecure_http) {
        Ok(url) => url,
        Err(e) => return usage_error(e),
    };
    let repository = args.repository.trim_matches('/');
    if repository.is_empty() || repository.contains(char::is_whitespace) {
        return usage_error(format!(
            "--repository {:?}: give the image path, e.g. acme/api",
            args.repository
        ));
    }
    let password = match read_password(args.password_stdin) {
        Ok(p) => p,
        Err(e) => return usage_error(e),
    };
    let http = match crate::http::client(args.ca_file.as_deref(), args.timeout.0) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let credential = Credential::new(args.username, password);
    let report = registry::check(&http, &registry, repository, args.access, &credential).await;
    print_check(&report, args.output);
    report.outcome.exit_code() as u8
}

fn print_check(report: &CredentialCheck, format: OutputFormat) {
    match format {
        OutputFormat::Json => {
            #[derive(Serialize)]
            struct WithCode<'a> {
                #[serde(flatten)]
                report: &'a CredentialCheck,
                exit_code: i32,
            }
            print_json(&WithCode {
                report,
                exit_code: report.outcome.exit_code(),
            });
        }
        OutputFormat::Text => {
            println!("{}: {}", report.outcome, report.explanation);
            if let Some(detail) = &report.detail {
                println!("  said: {detail}");
            }
            println!(
                "  registry {} repository {} user {} token {}",
                report.registry, report.repository, report.username, report.fingerprint
            );
        }
    }
}

fn print_json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot write JSON: {e}"),
    }
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
    fn new(subject: &str, result: Result<String, String>) -> Self {
        let (status, message) = match result {
            Ok(m) => (Status::Ok, m),
            Err(m) => (Status::Fail, m),
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

async fn config_check(path: Option<&Path>, args: ConfigCheckArgs) -> u8 {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let path = path.expect("load_config checked it");
    let mut findings = vec![Finding::new(
        "config",
        Ok(format!(
            "{}: {} binding(s), {} auto-bind rule(s), store {}",
            path.display(),
            config.bindings.len(),
            config.auto_binds.len(),
            crate::config::redact_url_password(&config.store.url.0)
        )),
    )];
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
    if all_ok { 0 } else { EXIT_FAILED }
}

async fn probe_online(
    config: &Config,
    gitlab_token: Result<SecretString, crate::config::SecretError>,
    qovery_token: Result<SecretString, crate::config::SecretError>,
    timeout: HumanDuration,
) -> Vec<Finding> {
    let http = match crate::http::client(config.gitlab.ca_file.as_deref(), timeout.0) {
        Ok(c) => c,
        Err(e) => return vec![Finding::new("gitlab.ca_file", Err(e.to_string()))],
    };
    let gitlab = async {
        let token = gitlab_token.map_err(|e| e.to_string())?;
        let client = GitlabClient::new(http.clone(), &config.gitlab.url.0, token);
        let info = client.current_token().await.map_err(|e| e.to_string())?;
        let mut message = format!(
            "{}: token {:?} with scopes [{}], expires {}",
            config.gitlab.url,
            info.name,
            info.scopes.join(", "),
            info.expires_at.as_deref().unwrap_or("never")
        );
        if !info.active {
            return Err(format!("{message}, but it is not active"));
        }
        if !info.scopes.iter().any(|s| s == "api") {
            message.push_str(
                "; warning: without the `api` scope regwarden cannot create or revoke tokens",
            );
        }
        Ok(message)
    };
    let qovery = async {
        let token = qovery_token.map_err(|e| e.to_string())?;
        let client = QoveryClient::new(http.clone(), &config.qovery.url.0, token);
        let org = client
            .organization(&config.qovery.organization_id.0)
            .await
            .map_err(|e| format!("organization {}: {e}", config.qovery.organization_id))?;
        Ok(format!(
            "{}: organization {:?} ({})",
            config.qovery.url, org.name, org.id
        ))
    };
    let registry_url = config.registry_url();
    let registry = registry::probe(&http, &registry_url);
    let (gitlab, qovery, registry) = tokio::join!(gitlab, qovery, registry);
    vec![
        Finding::new("gitlab", gitlab),
        Finding::new("qovery", qovery),
        Finding::new("registry", registry),
    ]
}

/// Loads and validates the configuration, or says why not (exit code 2).
fn load_config(path: Option<&Path>) -> Result<Config, u8> {
    let Some(path) = path else {
        return Err(usage_error(
            "no configuration file: pass --config PATH or set REGWARDEN_CONFIG",
        ));
    };
    Config::load(path).map_err(|e| {
        eprintln!("{e}");
        EXIT_USAGE
    })
}

/// Builds the engine from the configuration: clients, store (none in a dry run).
async fn engine(config: &Config, dry_run: bool) -> Result<crate::reconcile::Engine, String> {
    let http = crate::http::client(
        config.gitlab.ca_file.as_deref(),
        config.reconcile.http_timeout.0,
    )
    .map_err(|e| e.to_string())?;
    let gitlab_token = config
        .gitlab_token_source()
        .read()
        .map_err(|e| e.to_string())?;
    let qovery_token = config
        .qovery_token_source()
        .read()
        .map_err(|e| e.to_string())?;
    let store = if dry_run {
        None
    } else {
        Some(
            crate::store::Store::open(&config.store.url.0)
                .await
                .map_err(|e| e.to_string())?,
        )
    };
    Ok(crate::reconcile::Engine {
        gitlab: GitlabClient::new(http.clone(), &config.gitlab.url.0, gitlab_token),
        qovery: QoveryClient::new(http.clone(), &config.qovery.url.0, qovery_token),
        http,
        organization: config.qovery.organization_id.0.clone(),
        registry_url: config.registry_url(),
        registry_kind: config.qovery_registry_kind(),
        store,
        settings: crate::reconcile::EngineSettings {
            concurrency: config.reconcile.concurrency,
            check_attempts: config.reconcile.check_attempts,
            check_interval: config.reconcile.check_interval.0,
            lease_ttl: config.reconcile.lease_ttl.0,
        },
    })
}

async fn reconcile(path: Option<&Path>, args: ReconcileArgs) -> u8 {
    use crate::reconcile::{Force, PassOptions, bindings};
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let engine = match engine(&config, args.dry_run).await {
        Ok(e) => e,
        Err(e) => return usage_error(e),
    };
    let resolved = if args.bindings.is_empty() {
        bindings::resolve(&config, &engine.gitlab).await
    } else {
        let resolved = bindings::resolve_named(&config, &engine.gitlab, &args.bindings).await;
        let unknown: Vec<&String> = args
            .bindings
            .iter()
            .filter(|n| !resolved.bindings.iter().any(|b| &&b.name == n))
            .collect();
        if !unknown.is_empty() {
            let names = unknown
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            if !resolved.failed_rules.is_empty() {
                // The name may belong to a rule that could not be expanded: not a usage error.
                for rule in &resolved.failed_rules {
                    eprintln!("error: [[auto_bind]] group {}: {}", rule.group, rule.error);
                }
                eprintln!(
                    "error: no binding named {names} was found, and the [[auto_bind]] rules above could not be expanded"
                );
                return EXIT_FAILED;
            }
            let all = bindings::resolve(&config, &engine.gitlab).await;
            let known: Vec<&str> = all.bindings.iter().map(|b| b.name.as_str()).collect();
            return usage_error(format!(
                "no binding named {names}: the configuration has {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
        resolved
    };
    let options = PassOptions {
        dry_run: args.dry_run,
        force: if args.force { Force::Always } else { Force::No },
    };
    let reports = engine.run(&resolved.bindings, options).await;
    let failed =
        reports.iter().filter(|r| r.outcome.is_failure()).count() + resolved.failed_rules.len();
    match args.output {
        OutputFormat::Json => {
            #[derive(Serialize)]
            struct Pass<'a> {
                dry_run: bool,
                ok: bool,
                bindings: &'a [crate::reconcile::BindingReport],
                /// `[[auto_bind]]` rules that could not be expanded.
                failed_rules: &'a [bindings::RuleFailure],
            }
            print_json(&Pass {
                dry_run: args.dry_run,
                ok: failed == 0,
                bindings: &reports,
                failed_rules: &resolved.failed_rules,
            });
        }
        OutputFormat::Text => {
            for r in &reports {
                let outcome = serde_json::to_value(r.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let held = r
                    .held
                    .as_ref()
                    .map(|h| {
                        let expires = h
                            .expires
                            .map(|d| format!(", expires {d}"))
                            .unwrap_or_default();
                        format!(
                            " (Qovery holds token {} {}{expires})",
                            h.token_id, h.fingerprint
                        )
                    })
                    .unwrap_or_default();
                println!("{}: {outcome}{held}", r.binding);
                for action in &r.actions {
                    println!("  {action}");
                }
                if let Some(e) = &r.error {
                    println!("  error: {e}");
                }
            }
            for rule in &resolved.failed_rules {
                println!("auto_bind {}: failed", rule.group);
                println!("  error: {}", rule.error);
            }
            if reports.is_empty() && resolved.failed_rules.is_empty() {
                println!("no bindings to reconcile");
            }
        }
    }
    if failed == 0 { 0 } else { EXIT_FAILED }
}

async fn history(path: Option<&Path>, args: HistoryArgs) -> u8 {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let store = match crate::store::Store::open(&config.store.url.0).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
    };
    let entries = match store
        .history(args.binding.as_deref(), i64::from(args.limit))
        .await
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
    };
    match args.output {
        OutputFormat::Json => print_json(&entries),
        OutputFormat::Text => {
            for e in &entries {
                let at = chrono::DateTime::from_timestamp_millis(e.at_ms)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default();
                let token = e
                    .token_id
                    .map(|t| format!(" token {t}"))
                    .unwrap_or_default();
                let fp = e
                    .fingerprint
                    .as_deref()
                    .map(|f| format!(" {f}"))
                    .unwrap_or_default();
                println!(
                    "{at} {} {} {}{token}{fp} {}",
                    e.binding, e.step, e.outcome, e.reason
                );
            }
        }
    }
    0
}

async fn serve(path: Option<&Path>, args: ServeArgs) -> u8 {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let verifier = match crate::server::verify::Verifier::from_config(&config.server) {
        Ok(v) => v,
        Err(e) => return usage_error(e),
    };
    let engine = match engine(&config, false).await {
        Ok(e) => e,
        Err(e) => return usage_error(e),
    };
    let store = engine.store.clone().expect("a store outside dry runs");
    let server = crate::server::Server {
        listen: args.listen.unwrap_or(config.server.listen),
        config: std::sync::Arc::new(config),
        engine: std::sync::Arc::new(engine),
        store,
        verifier,
        workers: args.workers,
        shutdown_grace: args.shutdown_grace.0,
        job_lock: args.job_lock.0,
        job_attempts: args.job_attempts,
    };
    match server.run().await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: the server stopped: {e}");
            EXIT_FAILED
        }
    }
}
