//! `regwarden serve`: the webhook bot (`crate::server`), built from the configuration.

use std::path::Path;

use anyhow::Context;
use clap::Args;

use super::{Failure, engine, load_config};
use crate::config::HumanDuration;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; default: server.listen from the configuration.
    #[arg(long, env = "REGWARDEN_LISTEN", value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,

    /// Address `/metrics` is served on (and nothing else); default: server.metrics_listen
    /// (loopback).
    #[arg(long, env = "REGWARDEN_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,

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

pub async fn run(path: Option<&Path>, args: ServeArgs) -> Result<(), Failure> {
    let config = load_config(path)?;
    // No webhook secret at all: the timer alone keeps tokens valid, and the webhook route
    // says it is off. A secret named but unreadable, or malformed, stays an error.
    let verifier = match crate::server::verify::Verifier::from_config(&config.server) {
        Ok(verifier) => Some(verifier),
        Err(e) if e.is_no_secret() => {
            tracing::warn!(
                "webhooks are off: no webhook secret is configured, so POST /webhooks/gitlab answers 404 and only the timer runs passes (every {}); to receive GitLab's webhooks, put the hook's secret token in ${} (any long random string, e.g. `openssl rand -hex 32`) or its signing token (whsec_...) in ${}",
                config.server.reconcile_interval,
                config.server.secret_tokens_env,
                config.server.signing_tokens_env,
            );
            None
        }
        Err(e) => return Err(Failure::usage(e)),
    };
    // The secrets regwarden's hooks get, read once, as those deliveries are checked against.
    let hook_secrets = match config.server.public_url {
        None => None,
        Some(_) => match crate::hooks::Secrets::from_config(&config) {
            Ok(secrets) => Some(std::sync::Arc::new(secrets)),
            Err(e) => {
                tracing::warn!("webhooks are not kept: {e}");
                None
            }
        },
    };
    let engine = engine(&config, false).await?;
    let store = engine.store.clone().expect("a store outside dry runs");
    let server = crate::server::Server {
        listen: args.listen.unwrap_or(config.server.listen),
        metrics_listen: args.metrics_listen.unwrap_or(config.server.metrics_listen),
        config: std::sync::Arc::new(config),
        engine: std::sync::Arc::new(engine),
        store,
        verifier,
        hook_secrets,
        workers: args.workers,
        shutdown_grace: args.shutdown_grace.0,
        job_lock: args.job_lock.0,
        job_attempts: args.job_attempts,
    };
    server
        .run()
        .await
        .context("the server stopped")
        .map_err(Failure::failed)
}
