//! The command line: the arguments of each command and what it does, a file per command; one
//! failure type whose exit code is the same for every command (`exit.rs`); one way to print
//! JSON.

mod check;
pub mod component;
mod config_check;
mod exit;
mod history;
mod hooks;
mod init;
mod reconcile;
mod serve;
mod tokens;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::config::Config;
use crate::gitlab::GitlabClient;
use crate::qovery::QoveryClient;
use crate::reconcile::{Engine, EngineSettings};
pub use exit::Failure;

/// The exit codes, as `--help` shows them.
const EXIT_CODES: &str = "Exit codes, the same for every command: 0 success; 1 the command ran and \
something it checked or did failed (a binding, a probe, the store, a peer; `reconcile` counts a \
binding another live process is rotating, `busy`, as success); 2 bad usage or configuration; \
3, 4, 5 a credential check's outcome (`check`, `ci register`): rejected, no access, unreachable.";

/// Keeps Qovery's GitLab container-registry credentials valid: creates, checks and rotates
/// GitLab tokens, and registers them in Qovery only once the registry accepts them.
#[derive(Debug, Parser)]
#[command(
    name = "regwarden",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = EXIT_CODES
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
    Serve(serve::ServeArgs),
    /// Check that a credential can pull (or push) a repository, through the registry's own
    /// token authentication, down to the `access` claim of the JWT its realm grants.
    ///
    /// Exit codes: 0 the credential works; 3 rejected (wrong, revoked or expired);
    /// 4 valid but without access to the repository or the actions; 5 the registry or its
    /// realm cannot be reached or answers nonsense; 2 bad usage.
    Check(check::CheckArgs),
    /// Write a first configuration from what GitLab and Qovery hold: one binding per Qovery
    /// registry that deploys images from this GitLab's registry (the project that holds them,
    /// or the smallest group that holds them all), each with the reason in a comment. Reads
    /// GITLAB_TOKEN and QOVERY_API_TOKEN; never overwrites a file (exit 2).
    Init(init::InitArgs),
    /// Work with the configuration file.
    #[command(subcommand)]
    Config(config_check::ConfigCommand),
    /// One pass over the bindings: observe GitLab and Qovery, plan, and rotate or revoke
    /// what needs it. A binding is rotated by one worker, process or replica at a time; one
    /// that another live holder is rotating is reported "busy" and left to it.
    ///
    /// Exit codes: 0 every binding is healthy, rotated, or busy (its holder finishes the
    /// job); 1 a binding failed or is blocked, or an [[auto_bind]] rule could not be expanded
    /// (every other binding still proceeds); 2 bad usage or configuration.
    Reconcile(reconcile::ReconcileArgs),
    /// Show the journal: every step of every rotation, newest first.
    History(history::HistoryArgs),
    /// List the tokens the bindings depend on: kind, scopes, expiry, whether regwarden made
    /// it, and which one each Qovery registry holds. With --within, exit 1 when a token Qovery
    /// holds and regwarden does not manage expires within that time.
    Tokens(tokens::TokensArgs),
    /// The webhooks regwarden keeps in GitLab's bound projects and groups.
    #[command(subcommand)]
    Hooks(hooks::HooksCommand),
    /// The jobs of the GitLab CI/CD component (templates/), run inside GitLab CI.
    #[command(subcommand)]
    Ci(component::CiCommand),
}

/// `--binding`, as the commands that work on bindings take it.
#[derive(Debug, clap::Args)]
pub struct BindingSelection {
    /// Only this binding (repeat, or separate with commas, for several); default: all of them.
    #[arg(
        long = "binding",
        env = "REGWARDEN_BINDING",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub bindings: Vec<String>,
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
            return ExitCode::from(1);
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(()) => 0,
        Err(failure) => failure.exit_code(),
    };
    // A dropped runtime waits for blocking tasks; the process is done with them.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    ExitCode::from(code)
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    // Colours only for a person at a terminal who has not asked for none (no-color.org): in
    // a file, a journal or a CI log, escape sequences are noise.
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let config = cli.config.as_deref();
    let (result, prefix) = match cli.command {
        Command::Check(args) => (check::run(args).await, "error: "),
        Command::Init(args) => (init::run(args).await, "error: "),
        Command::Config(config_check::ConfigCommand::Check(args)) => {
            (config_check::run(config, args).await, "error: ")
        }
        Command::Serve(args) => (serve::run(config, args).await, "error: "),
        Command::Reconcile(args) => (reconcile::run(config, args).await, "error: "),
        Command::History(args) => (history::run(config, args).await, "error: "),
        Command::Tokens(args) => (tokens::run(config, args).await, "error: "),
        Command::Hooks(command) => (hooks::run(config, command).await, "error: "),
        // A job's log is read in GitLab among other jobs' lines: say whose they are.
        Command::Ci(command) => (component::run(command).await, "regwarden: "),
    };
    if let Err(failure) = &result {
        failure.print(prefix);
    }
    result
}

/// Writes `value` as pretty JSON on standard output.
fn print_json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot write JSON: {e}"),
    }
}

/// Loads and validates the configuration, or says why not.
fn load_config(path: Option<&Path>) -> Result<Config, Failure> {
    let path = path.ok_or_else(|| {
        Failure::usage("no configuration file: pass --config PATH or set REGWARDEN_CONFIG")
    })?;
    Ok(Config::load(path)?)
}

/// Opens the store the configuration names.
async fn open_store(config: &Config) -> Result<crate::store::Store, Failure> {
    use secrecy::ExposeSecret;
    let url = config.store.resolve().map_err(Failure::usage)?;
    if let Some(warning) = crate::config::StoreConfig::warning(url.expose_secret()) {
        tracing::warn!("{warning}");
    }
    crate::store::Store::open(url.expose_secret())
        .await
        .context("the store")
        .map_err(Failure::failed)
}

/// The engine the configuration describes, with the store (none in a dry run). A secret that
/// cannot be read is a configuration problem; a store that does not answer is a failure.
async fn engine(config: &Config, dry_run: bool) -> Result<Engine, Failure> {
    let http = crate::outbound::client(
        config.gitlab.ca_file.as_deref(),
        config.reconcile.http_timeout.0,
    )
    .map_err(Failure::usage)?;
    let gitlab_token = config
        .gitlab_token_source()
        .read()
        .map_err(Failure::usage)?;
    let qovery_token = config
        .qovery_token_source()
        .read()
        .map_err(Failure::usage)?;
    let store = if dry_run {
        None
    } else {
        Some(open_store(config).await?)
    };
    Ok(Engine {
        gitlab: GitlabClient::new(http.clone(), &config.gitlab.url.0, gitlab_token),
        qovery: QoveryClient::new(http.clone(), &config.qovery.url.0, qovery_token),
        http,
        organization: config.qovery.organization_id.0.clone(),
        registry: crate::reconcile::engine::RegistryAddress::new(
            config.configured_registry_url(),
            config.qovery.registry_kind,
        ),
        store,
        settings: EngineSettings::from(&config.reconcile),
        checklist: Some(crate::checklist::Settings::from_config(config)),
    })
}
