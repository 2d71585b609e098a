//! `regwarden serve`: the HTTP edge (webhooks, health, metrics), the job workers, and the
//! reconcile timer, all stopped gracefully on SIGTERM or SIGINT.

pub mod ci_endpoint;
pub mod edge;
pub mod jobs;
pub mod listener;
pub mod metrics;
pub mod verify;
mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{Notify, watch};

use crate::config::Config;
use crate::reconcile::Engine;
use crate::store::Store;
use jobs::{JobPayload, Worker};
use metrics::Metrics;
use verify::Verifier;

pub use webhook::dedupe_key;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// `None` when no webhook secret is configured: webhooks are off.
    pub verifier: Option<Arc<Verifier>>,
    pub store: Store,
    /// Records webhook deliveries, many to a commit.
    pub deliveries: crate::store::DeliveryWriter,
    pub metrics: Arc<Metrics>,
    /// Wakes an idle worker when a job is queued.
    pub wake: Arc<Notify>,
    pub config: Arc<Config>,
    pub engine: Arc<Engine>,
    /// `None` when `server.ci_audience` is not set.
    pub ci: Option<Arc<ci_endpoint::CiAuth>>,
    /// Spaces the CI passes of each project.
    pub ci_pace: Arc<ci_endpoint::ProjectPace>,
    /// Bytes (in KiB) of webhook bodies that may be read at once, before they are
    /// authenticated (`server.max_inflight_body`).
    pub body_budget: Arc<tokio::sync::Semaphore>,
    /// `server.max_body`.
    pub max_body: usize,
}

/// Everything `serve` runs with, built by the caller from the configuration.
pub struct Server {
    pub config: Arc<Config>,
    pub engine: Arc<Engine>,
    pub store: Store,
    /// `None`: no webhook secret is configured, and the timer alone runs passes.
    pub verifier: Option<Verifier>,
    /// With `server.public_url`, the secrets the timer gives regwarden's hooks.
    pub hook_secrets: Option<Arc<crate::hooks::Secrets>>,
    pub listen: SocketAddr,
    /// Where `/metrics` is served (and nothing else).
    pub metrics_listen: SocketAddr,
    pub workers: usize,
    /// How long running jobs may take to finish after a stop signal.
    pub shutdown_grace: Duration,
    /// How long a worker holds a job before another may take it over.
    pub job_lock: Duration,
    /// Tries of a job before it is dead.
    pub job_attempts: u32,
}

pub fn router(state: AppState, max_body: usize, request_timeout: Duration) -> Router {
    Router::new()
        .route("/webhooks/gitlab", post(webhook::receive))
        .route("/api/v1/ci/reconcile", post(ci_endpoint::reconcile))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| async move {
                // A client that trickles its body holds a connection no longer than this.
                match tokio::time::timeout(request_timeout, next.run(request)).await {
                    Ok(response) => response,
                    Err(_) => (StatusCode::REQUEST_TIMEOUT, "request timed out").into_response(),
                }
            },
        ))
        .with_state(state)
}

/// The metrics listener's one route. It names bindings, projects and token expiries: it is
/// served apart from the webhook listener, on loopback unless told otherwise.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

/// Who this process is in the job queue's locks: host, pid and start time.
pub fn process_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!("{host}-{}-{}", std::process::id(), crate::store::now_ms())
}

async fn readyz(State(app): State<AppState>) -> Response {
    let ping = tokio::time::timeout(Duration::from_secs(2), app.store.ping())
        .await
        .unwrap_or_else(|_| Err(crate::store::StoreError::Timeout(Duration::from_secs(2))));
    match ping {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the store does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "the store does not answer").into_response()
        }
    }
}

async fn metrics_text(State(app): State<AppState>) -> Response {
    if let Ok(counts) = app.store.job_counts().await {
        app.metrics.set_jobs(counts);
    }
    (
        // prometheus-client writes OpenMetrics text (`# EOF` and all): say so.
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

/// Resolves on SIGTERM or SIGINT.
async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// How long a delivery id is remembered (a redelivery within it has no second effect).
const DEDUPE_WINDOW: Duration = Duration::from_secs(7 * 86_400);

/// Queues one reconcile pass per `interval` slot. Replicas sharing a store compute the same
/// slot, and the delivery table lets only the first of them queue it.
async fn timer(
    store: Store,
    interval: Duration,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let interval_ms = interval.as_millis().max(1) as i64;
    loop {
        let slot = crate::store::now_ms() / interval_ms;
        let payload = serde_json::to_string(&JobPayload::Reconcile {
            bindings: None,
            reason: "timer".into(),
        })
        .expect("a payload serializes");
        match store
            .record_delivery(
                &format!("timer:{interval_ms}:{slot}"),
                "timer",
                Some(&payload),
            )
            .await
        {
            Ok(true) => {
                wake.notify_one();
                // The replica that queued this slot's pass also tidies the store.
                match store.prune(DEDUPE_WINDOW.max(interval * 2)).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "pruned old deliveries and finished jobs"),
                    Err(e) => tracing::warn!(error = %e, "cannot prune the store"),
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot queue the timer's reconcile pass"),
        }
        // Sleep to the next slot, plus up to a tenth of the interval so replicas spread out.
        let next_slot_ms = (slot + 1) * interval_ms - crate::store::now_ms();
        let jitter = (crate::store::now_ms() % (interval_ms / 10).max(1)).max(0);
        let wait = Duration::from_millis((next_slot_ms + jitter).max(0) as u64);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

impl Server {
    /// Serves until a stop signal, then lets running jobs finish (up to `shutdown_grace`).
    pub async fn run(self) -> std::io::Result<()> {
        let metrics = Arc::new(Metrics::default());
        let wake = Arc::new(Notify::new());
        let ci = self.config.server.ci_audience.as_ref().map(|aud| {
            Arc::new(ci_endpoint::CiAuth::new(
                self.engine.http.clone(),
                &self.config.gitlab.url.0,
                aud,
            ))
        });
        let state = AppState {
            verifier: self.verifier.map(Arc::new),
            store: self.store.clone(),
            deliveries: self.store.delivery_writer(),
            metrics: metrics.clone(),
            wake: wake.clone(),
            config: self.config.clone(),
            engine: self.engine.clone(),
            ci,
            ci_pace: Arc::default(),
            body_budget: Arc::new(tokio::sync::Semaphore::new(
                usize::try_from(self.config.server.max_inflight_body.0 / 1024)
                    .unwrap_or(usize::MAX)
                    .min(tokio::sync::Semaphore::MAX_PERMITS),
            )),
            max_body: usize::try_from(self.config.server.max_body.0).unwrap_or(usize::MAX),
        };
        let max_body = usize::try_from(self.config.server.max_body.0).unwrap_or(usize::MAX);
        let metrics_app = metrics_router(state.clone());
        let app = router(state, max_body, self.config.server.request_timeout.0);
        let listener = tokio::net::TcpListener::bind(self.listen).await?;
        let bound = listener.local_addr()?;
        let metrics_listener = tokio::net::TcpListener::bind(self.metrics_listen).await?;
        let metrics_bound = metrics_listener.local_addr()?;
        tracing::info!(listen = %bound, metrics = %metrics_bound, "serving");
        if !metrics_bound.ip().is_loopback() {
            tracing::warn!(metrics = %metrics_bound, "/metrics is served beyond loopback: it names bindings, projects and token expiries; keep that address off the public network");
        }
        // On standard output whatever the log filter: with `--listen 127.0.0.1:0`, the port
        // the system chose is known only here.
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "regwarden: listening on http://{bound}");
            let _ = writeln!(out, "regwarden: metrics on http://{metrics_bound}/metrics");
            let _ = out.flush();
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut metrics_stop = stop_rx.clone();
        let metrics_server = tokio::spawn(async move {
            let stopped = async move {
                let _ = metrics_stop.changed().await;
            };
            if let Err(e) = axum::serve(metrics_listener, metrics_app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });

        let process = process_id();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..self.workers.max(1) {
            let worker = Worker {
                config: self.config.clone(),
                engine: self.engine.clone(),
                store: self.store.clone(),
                metrics: metrics.clone(),
                wake: wake.clone(),
                name: format!("{process}-w{i}"),
                job_lock: self.job_lock,
                max_attempts: i64::from(self.job_attempts.max(1)),
                hook_secrets: self.hook_secrets.clone(),
            };
            tasks.spawn(worker.run(stop_rx.clone()));
        }
        tasks.spawn(timer(
            self.store.clone(),
            self.config.server.reconcile_interval.0,
            wake.clone(),
            stop_rx.clone(),
        ));

        let limits = listener::Limits {
            header_read_timeout: self.config.server.header_read_timeout.0,
            max_connections: self.config.server.max_connections,
            max_connections_per_peer: self.config.server.max_connections_per_peer,
            max_connection_age: self.config.server.max_connection_age.0,
            drain: self.config.server.request_timeout.0,
        };
        listener::serve(listener, app, limits, metrics.clone(), async move {
            stop_signal().await;
            tracing::info!("stopping: no new requests; running jobs finish");
            let _ = stop_tx.send(true);
        })
        .await;
        metrics_server.abort();
        let deadline = tokio::time::sleep(self.shutdown_grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = tasks.join_next() => if next.is_none() { break },
                _ = &mut deadline => {
                    tracing::warn!("jobs still running at the deadline; their locks expire and another process resumes them");
                    break;
                }
            }
        }
        tracing::info!("stopped");
        Ok(())
    }
}
