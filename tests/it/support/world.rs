//! Everything a reconcile pass talks to, wired together: the fake GitLab, the real registry
//! over TLS (a private CA) whose realm is that GitLab, the fake Qovery (which checks
//! credentials against the same registry), a store, and a configuration file.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use tempfile::TempDir;

use super::cli::{Run, regwarden};
use super::gitlab::{FakeGitlab, Owner};
use super::pki::PrivateCa;
use super::qovery::{FakeQovery, Registry as QoveryRegistry};
use super::registry::{Auth, Registry, Tls, push_image};

pub const ORG: &str = "3c90c3cc-0d44-4b50-8888-8dd25736052a";
pub const PROJECT: &str = "acme/api";
pub const QOVERY_REGISTRY: &str = "gitlab-acme-api";

pub struct World {
    pub dir: TempDir,
    pub gitlab: FakeGitlab,
    pub qovery: FakeQovery,
    pub registry: Option<Registry>,
    pub registry_url: String,
    pub ca: PathBuf,
    pub config: PathBuf,
    pub gitlab_token: String,
    pub qovery_token: String,
    pub store_url: String,
    pub qovery_url: String,
}

/// Settings a test may change in the configuration file.
pub struct Settings {
    pub store_url: Option<String>,
    pub grace_period: &'static str,
    pub extra: String,
    /// What `gitlab.url` points at, when not the fake GitLab itself (a proxy in front of it).
    pub gitlab_url: Option<String>,
    /// Lines added to `[reconcile]`.
    pub reconcile: &'static str,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            store_url: None,
            grace_period: "1h",
            extra: String::new(),
            gitlab_url: None,
            reconcile: "",
        }
    }
}

impl World {
    pub async fn start() -> World {
        Self::with(Settings::default()).await
    }

    pub async fn with(settings: Settings) -> World {
        let dir = tempfile::tempdir().unwrap();
        let gitlab = FakeGitlab::start(dir.path()).await;
        gitlab.add_project(PROJECT);
        let gitlab_token = gitlab.admin_token();
        let ca = PrivateCa::generate(dir.path());
        let registry = Registry::start(
            dir.path(),
            Auth::Token {
                realm: &gitlab.realm(),
                signer_cert: gitlab.signer_cert(),
            },
            Some(Tls {
                cert: &ca.server_cert,
                key: &ca.server_key,
                ca: &ca.ca_path,
            }),
        )
        .await;
        let push = gitlab.mint_registry_jwt(PROJECT, &["pull", "push"]);
        push_image(&registry.url, Some(&ca.ca_path), PROJECT, "v1", &push).await;
        let qovery = FakeQovery::start().await;
        let qovery_token = qovery.add_organization(ORG, "acme");
        qovery.check_credentials_against(&registry.url, PROJECT, Some(&ca.ca_path));
        let store_url = settings
            .store_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("regwarden.db").display()));
        let config = dir.path().join("regwarden.toml");
        std::fs::write(
            &config,
            format!(
                r#"[gitlab]
url = "{gitlab}"
registry_url = "{registry}"
ca_file = "{ca}"

[qovery]
url = "{qovery}"
organization_id = "{ORG}"

[store]
url = "{store_url}"

[reconcile]
check_attempts = 2
check_interval = "100ms"
http_timeout = "5s"
{reconcile}

[defaults]
grace_period = "{grace}"

[[binding]]
name = "api"
project = "{PROJECT}"
qovery_registry = "{QOVERY_REGISTRY}"
{extra}"#,
                gitlab = settings.gitlab_url.clone().unwrap_or_else(|| gitlab.url()),
                registry = registry.url,
                ca = ca.ca_path.display(),
                qovery = qovery.url(),
                grace = settings.grace_period,
                reconcile = settings.reconcile,
                extra = settings.extra,
            ),
        )
        .unwrap();
        World {
            qovery_url: qovery.url(),
            registry_url: registry.url.clone(),
            registry: Some(registry),
            ca: ca.ca_path.clone(),
            dir,
            gitlab,
            qovery,
            config,
            gitlab_token,
            qovery_token,
            store_url,
        }
    }

    /// Runs `regwarden <args> --config <file>` with the API tokens in the environment.
    pub async fn regwarden(&self, args: &[&str]) -> Run {
        self.regwarden_env(args, &[]).await
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> super::cli::Regwarden {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--config", self.config.to_str().unwrap()]);
        let mut cmd = regwarden(all)
            .env("GITLAB_TOKEN", &self.gitlab_token)
            .env("QOVERY_API_TOKEN", &self.qovery_token);
        for (k, v) in env {
            cmd = cmd.env(k, v);
        }
        cmd
    }

    /// Starts `regwarden <args>` and hands the process over (to be killed).
    pub fn spawn(&self, args: &[&str]) -> tokio::process::Child {
        self.command(args, &[]).spawn()
    }

    pub async fn regwarden_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let run = self.command(args, env).run().await;
        self.assert_no_secret_in(&run);
        run
    }

    /// Fails the test if a run printed an API token or any token GitLab issued here.
    pub fn assert_no_secret_in(&self, run: &Run) {
        run.assert_never_shows(&self.gitlab_token);
        run.assert_never_shows(&self.qovery_token);
        for secret in self.token_secrets() {
            run.assert_never_shows(&secret);
        }
    }

    pub async fn reconcile(&self, extra: &[&str]) -> Run {
        let mut args = vec!["reconcile"];
        args.extend_from_slice(extra);
        self.regwarden(&args).await
    }

    /// Every deploy-token secret GitLab ever issued in this world.
    pub fn token_secrets(&self) -> Vec<String> {
        self.gitlab
            .deploy_tokens()
            .into_iter()
            .map(|t| t.token)
            .collect()
    }

    /// regwarden's active deploy tokens of the project.
    pub fn active_tokens(&self) -> Vec<super::gitlab::DeployToken> {
        self.gitlab
            .deploy_tokens()
            .into_iter()
            .filter(|t| {
                t.active()
                    && t.name.starts_with("regwarden-api-")
                    && t.owner == Owner::Project(PROJECT.into())
            })
            .collect()
    }

    pub fn qovery_registry(&self) -> Option<QoveryRegistry> {
        self.qovery.registry_named(QOVERY_REGISTRY)
    }

    /// The deploy token Qovery holds now, found by the password Qovery was given.
    pub fn held_token(&self) -> Option<super::gitlab::DeployToken> {
        let password = self.qovery_registry()?.password?;
        self.gitlab
            .deploy_tokens()
            .into_iter()
            .find(|t| t.token == password)
    }

    /// Whether the credential Qovery holds works against the real registry right now.
    pub async fn qovery_can_pull(&self) -> bool {
        self.can_pull(QOVERY_REGISTRY).await
    }

    /// Whether the credential of the Qovery registry named `name` works against the real
    /// registry right now.
    pub async fn can_pull(&self, name: &str) -> bool {
        let Some(r) = self.qovery.registry_named(name) else {
            return false;
        };
        let (Some(user), Some(password)) = (r.username, r.password) else {
            return false;
        };
        let http =
            regwarden::outbound::client(Some(&self.ca), std::time::Duration::from_secs(5)).unwrap();
        let credential = regwarden::credential::Credential::new(user, SecretString::from(password));
        let report = regwarden::registry::check(
            &http,
            &reqwest::Url::parse(&self.registry_url).unwrap(),
            PROJECT,
            regwarden::registry::Access::Pull,
            &credential,
        )
        .await;
        report.is_ok()
    }

    /// Stops the registry (it is down until the test ends).
    pub fn stop_registry(&mut self) {
        self.registry = None;
    }

    pub fn store_file(&self) -> PathBuf {
        self.dir.path().join("regwarden.db")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The signing token and the legacy secret a served world accepts.
pub const SIGNING_TOKEN: &str = "whsec_cmVnd2FyZGVuLXRlc3Qtc2lnbmluZy1rZXktMzJiISE=";
pub const LEGACY_SECRET: &str = "legacy-webhook-secret";

/// A running `regwarden serve`.
pub struct Serving {
    pub url: String,
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
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log = self.dir.path().join(format!("serve-{n}.log"));
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra_args);
        args.extend(["--config", self.config.to_str().unwrap()]);
        let child = regwarden(args)
            .env("GITLAB_TOKEN", &self.gitlab_token)
            .env("QOVERY_API_TOKEN", &self.qovery_token)
            .env("REGWARDEN_WEBHOOK_SIGNING_TOKEN", SIGNING_TOKEN)
            .env("REGWARDEN_WEBHOOK_SECRET", LEGACY_SECRET)
            .spawn_logging(&log);
        let http = regwarden::outbound::client(None, std::time::Duration::from_secs(2)).unwrap();
        for _ in 0..400 {
            let printed = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(url) = printed
                .lines()
                .find_map(|l| l.strip_prefix("regwarden: listening on "))
                .map(str::to_string)
                && let Ok(r) = http.get(format!("{url}/healthz")).send().await
                && r.status() == 200
            {
                return Serving { url, child };
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

impl World {
    /// The fake Qovery's base URL.
    pub fn qovery_url_str(&self) -> &str {
        &self.qovery_url
    }
}
