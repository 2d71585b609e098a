//! `regwarden serve` started for a test world, and what a test sends it: signed webhooks
//! as GitLab signs them, plain requests, and polls of its job queue.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::cli::regwarden;
use super::world::{PROJECT, Settings, World};

/// The signing token and the legacy secret a served world accepts.
pub const SIGNING_TOKEN: &str = "whsec_cmVnd2FyZGVuLXRlc3Qtc2lnbmluZy1rZXktMzJiISE=";
pub const LEGACY_SECRET: &str = "legacy-webhook-secret";

/// A running `regwarden serve`.
pub struct Serving {
    pub url: String,
    /// Where its `/metrics` is (a listener of its own).
    pub metrics_url: String,
    pub child: tokio::process::Child,
}

impl Serving {
    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running") as i32;
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        tokio::time::timeout(std::time::Duration::from_secs(30), self.child.wait())
            .await
            .expect("stopped within 30 s")
            .unwrap()
    }

    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

impl World {
    /// Starts `regwarden serve` on a port the system picks (`--listen 127.0.0.1:0`), learns it
    /// from the line the server prints, and waits until it answers /healthz.
    pub async fn serve(&self, extra_args: &[&str]) -> Serving {
        self.start_serving(extra_args, true).await
    }

    /// Starts `regwarden serve` as [`Self::serve`] does, without any webhook secret in its
    /// environment (a timer-only server).
    pub async fn serve_without_webhook_secrets(&self, extra_args: &[&str]) -> Serving {
        self.start_serving(extra_args, false).await
    }

    async fn start_serving(&self, extra_args: &[&str], secrets: bool) -> Serving {
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log = self.dir.path().join(format!("serve-{n}.log"));
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra_args);
        args.extend(["--config", self.config.to_str().unwrap()]);
        let mut command = regwarden(args)
            .env("GITLAB_TOKEN", &self.gitlab_token)
            .env("QOVERY_API_TOKEN", &self.qovery_token)
            // As for every command of the world: its CA stands for a public one.
            .env("REGWARDEN_TEST_PUBLIC_ROOTS", self.ca.to_str().unwrap());
        if secrets {
            command = command
                .env("REGWARDEN_WEBHOOK_SIGNING_TOKEN", SIGNING_TOKEN)
                .env("REGWARDEN_WEBHOOK_SECRET", LEGACY_SECRET);
        }
        let child = command.spawn_logging(&log);
        let http = regwarden::outbound::client(None, std::time::Duration::from_secs(2)).unwrap();
        for _ in 0..400 {
            let printed = std::fs::read_to_string(&log).unwrap_or_default();
            let line = |prefix: &str| {
                printed
                    .lines()
                    .find_map(|l| l.strip_prefix(prefix))
                    .map(str::to_string)
            };
            if let (Some(url), Some(metrics_url)) = (
                line("regwarden: listening on "),
                line("regwarden: metrics on "),
            ) && let Ok(r) = http.get(format!("{url}/healthz")).send().await
                && r.status() == 200
            {
                return Serving {
                    url,
                    metrics_url,
                    child,
                };
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "regwarden serve did not answer /healthz:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// What the server logged (its stderr), for assertions and failure messages.
    pub fn server_log(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with("serve-") && name.ends_with(".log") {
                all.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        all
    }
}

/// A body signed as GitLab signs it (Standard Webhooks, with [`SIGNING_TOKEN`]).
pub fn signed(id: &str, body: &str, event: &str) -> reqwest::header::HeaderMap {
    signed_with(SIGNING_TOKEN, id, body, event)
}

/// A body signed with the signing token `secret` (`whsec_...`).
pub fn signed_with(secret: &str, id: &str, body: &str, event: &str) -> reqwest::header::HeaderMap {
    let ts = chrono::Utc::now().timestamp().to_string();
    let key = regwarden::server::verify::signing_key(secret).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("webhook-id", id.parse().unwrap());
    h.insert("webhook-timestamp", ts.parse().unwrap());
    h.insert("webhook-signature", format!("v1,{sig}").parse().unwrap());
    h.insert("idempotency-key", id.parse().unwrap());
    h.insert("x-gitlab-event", event.parse().unwrap());
    h.insert("content-type", "application/json".parse().unwrap());
    h
}

pub fn http() -> reqwest::Client {
    regwarden::outbound::client(None, Duration::from_secs(10)).unwrap()
}

impl Serving {
    /// POSTs a delivery to `/webhooks/gitlab`: (status, body).
    pub async fn post_webhook(
        &self,
        headers: reqwest::header::HeaderMap,
        body: &str,
    ) -> (u16, String) {
        self.post_webhook_via(&http(), headers, body).await
    }

    /// The same through a given client (one that keeps its connections, say).
    pub async fn post_webhook_via(
        &self,
        http: &reqwest::Client,
        headers: reqwest::header::HeaderMap,
        body: &str,
    ) -> (u16, String) {
        let r = http
            .post(format!("{}/webhooks/gitlab", self.url))
            .headers(headers)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// GETs `path`: (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = http()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// GETs `/metrics` from the metrics listener: (status, body).
    pub async fn metrics(&self) -> (u16, String) {
        let r = http().get(&self.metrics_url).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// The job counts `/metrics` reports: (queued, running).
    pub async fn job_counts(&self) -> (i64, i64) {
        let (_, metrics) = self.metrics().await;
        let count = |status: &str| {
            metrics
                .lines()
                .find(|l| l.starts_with(&format!("regwarden_jobs{{status=\"{status}\"}}")))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        (count("queued"), count("running"))
    }

    /// Polls until no job is queued or running, for up to 30 s.
    pub async fn until_idle(&self, w: &World) {
        for _ in 0..300 {
            if self.job_counts().await == (0, 0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("jobs still pending; server log:\n{}", w.server_log());
    }
}

impl World {
    /// A world whose binding Qovery already holds a token for (one pass ran), then served
    /// with `[server]` settings `server` (a long timer unless they say otherwise), so that
    /// only what a test sends acts.
    pub async fn served(settings: Settings, server: &str, serve_args: &[&str]) -> (World, Serving) {
        let w = World::with(Settings {
            extra: format!("{}\n[server]\n{server}\n", settings.extra),
            ..settings
        })
        .await;
        assert_eq!(w.reconcile(&[]).await.code, 0);
        // Token names have a one-second grain.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let s = w.serve(serve_args).await;
        // The server's start-up pass (the timer's first) is over once its registry checklist
        // is on /metrics: from then on, only what a test sends acts.
        for _ in 0..300 {
            if s.metrics()
                .await
                .1
                .contains("regwarden_registry_checklist{")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        s.until_idle(&w).await;
        (w, s)
    }

    /// The expiry webhook GitLab sends for a deploy token of the project.
    pub fn expiry_payload(&self, token_id: u64, token_name: &str) -> String {
        let project_id = self.gitlab.state.lock().unwrap().projects[0].id;
        json!({
            "object_kind": "deploy_token",
            "project": {"id": project_id, "name": "api", "path_with_namespace": PROJECT},
            "object_attributes": {
                "id": token_id, "name": token_name,
                "expires_at": "2026-12-01 07:57:25 UTC", "created_at": "2026-11-01 07:57:25 UTC",
                "revoked": false, "deploy_token_type": "project_type"
            },
            "event_name": "expiring_deploy_token"
        })
        .to_string()
    }
}
