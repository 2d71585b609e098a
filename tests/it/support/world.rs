//! Everything a reconcile pass talks to, wired together: the fake GitLab, the real registry
//! over TLS (a private CA) whose realm is that GitLab, the fake Qovery (which checks
//! credentials against the same registry), a store, and a configuration file.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use tempfile::TempDir;

use super::cli::{Run, regwarden};
use super::gitlab::FakeGitlab;
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

/// `host:port` of a URL, as GitLab's `registry.host_port` gives it.
pub fn host_port(url: &str) -> String {
    let url = reqwest::Url::parse(url).unwrap();
    match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap()),
        None => url.host_str().unwrap().to_string(),
    }
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
    /// Lines added to `[gitlab]`.
    pub gitlab: String,
    /// The registry lets anyone in (no token auth): a misconfigured registry.
    pub anonymous_registry: bool,
    /// Lines added to `[qovery]`.
    pub qovery: &'static str,
    /// The registry serves plain http, without TLS.
    pub plain_http_registry: bool,
    /// The host the registry's token realm names instead of the fake GitLab's (`127.0.0.1`).
    pub realm_host: Option<&'static str>,
    /// How many days the registry's certificate is valid for.
    pub certificate_days: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            store_url: None,
            grace_period: "1h",
            extra: String::new(),
            gitlab_url: None,
            reconcile: "",
            gitlab: String::new(),
            anonymous_registry: false,
            qovery: "",
            plain_http_registry: false,
            realm_host: None,
            certificate_days: 90,
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
        let ca = PrivateCa::generate_for_days(dir.path(), settings.certificate_days);
        let realm = match settings.realm_host {
            Some(host) => gitlab.realm().replacen("127.0.0.1", host, 1),
            None => gitlab.realm(),
        };
        let registry = Registry::start(
            dir.path(),
            if settings.anonymous_registry {
                Auth::Anonymous
            } else {
                Auth::Token {
                    realm: &realm,
                    signer_cert: gitlab.signer_cert(),
                }
            },
            (!settings.plain_http_registry).then_some(Tls {
                cert: &ca.server_cert,
                key: &ca.server_key,
                ca: &ca.ca_path,
            }),
        )
        .await;
        gitlab.set_registry_host_port(Some(&host_port(&registry.url)));
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
{gitlab_extra}

[qovery]
url = "{qovery}"
organization_id = "{ORG}"
{qovery_extra}

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
                gitlab_extra = settings.gitlab,
                extra = settings.extra,
                qovery_extra = settings.qovery,
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
            .env("QOVERY_API_TOKEN", &self.qovery_token)
            // The world's CA stands for a public one in `config check --online`'s view of TLS
            // as Qovery sees it (a test-only root: see src/checklist/tls.rs).
            .env("REGWARDEN_TEST_PUBLIC_ROOTS", self.ca.to_str().unwrap());
        for (k, v) in env {
            cmd = cmd.env(k, v);
        }
        cmd
    }

    /// Starts `regwarden <args>` and hands the process over (to be killed).
    pub fn spawn(&self, args: &[&str]) -> tokio::process::Child {
        self.command(args, &[]).spawn()
    }

    /// Runs `regwarden <args> --config <file>` from the working directory `dir`.
    pub async fn regwarden_in(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        let run = self.command(args, env).current_dir(dir).run().await;
        self.assert_no_secret_in(&run);
        run
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

    /// A pass with `--output json`: its exit code and each binding's outcome, by binding.
    pub async fn outcomes(
        &self,
        extra: &[&str],
    ) -> (i32, std::collections::BTreeMap<String, String>) {
        let mut args = vec!["reconcile", "--output", "json"];
        args.extend_from_slice(extra);
        let run = self.regwarden(&args).await;
        let json: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("reconcile --output json printed no JSON ({e}): {run:?}"));
        let outcomes = json["bindings"]
            .as_array()
            .unwrap_or_else(|| panic!("no bindings in {json}"))
            .iter()
            .map(|b| {
                let field = |k: &str| b[k].as_str().unwrap_or_default().to_string();
                (field("binding"), field("outcome"))
            })
            .collect();
        (run.code, outcomes)
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
                    && t.owner == self.gitlab.project_owner(PROJECT)
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

impl World {
    /// The fake Qovery's base URL.
    pub fn qovery_url_str(&self) -> &str {
        &self.qovery_url
    }
}

impl World {
    /// Polls until `cond` holds, for up to 20 s; the panic carries the server's log.
    pub async fn eventually(&self, what: &str, cond: impl Fn() -> bool) {
        for _ in 0..200 {
            if cond() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("{what} did not happen; server log:\n{}", self.server_log());
    }

    /// Asserts the healthy end state: Qovery holds one of regwarden's active tokens, it pulls
    /// from the registry, and the marker and username name it. Returns that token.
    pub async fn assert_converged(&self) -> super::gitlab::DeployToken {
        let held = self
            .held_token()
            .expect("Qovery holds one of the GitLab tokens");
        assert!(held.active(), "the token Qovery holds is active: {held:?}");
        assert!(
            self.qovery_can_pull().await,
            "the credential Qovery holds pulls from the registry"
        );
        let registry = self.qovery_registry().unwrap();
        let marker = regwarden::marker::Marker::find(&registry.description).expect("a marker");
        assert_eq!(marker.token_id, held.id);
        assert_eq!(registry.username.as_deref(), Some(held.username.as_str()));
        held
    }

    /// Asserts that every active regwarden token other than the one Qovery holds was held by
    /// Qovery before (a previous token within its grace period): none is an orphan.
    pub fn assert_no_orphans(&self) {
        let held = self.held_token().map(|t| t.id);
        let ever_held: std::collections::HashSet<String> =
            self.qovery.received_passwords().into_iter().collect();
        for t in self.active_tokens() {
            assert!(
                Some(t.id) == held || ever_held.contains(&t.token),
                "token {} ({}) is active but Qovery never held it: an orphan",
                t.id,
                t.name
            );
        }
    }
}

impl World {
    /// `regwarden ci rotate` as the component's job runs it in this project's pipeline, for
    /// Qovery registry `registry_name`, grace 0s.
    pub async fn ci_rotate(&self, registry_name: &str, extra: &[&str]) -> Run {
        let mut args = vec!["ci", "rotate"];
        args.extend_from_slice(extra);
        let gitlab = self.gitlab.url();
        let ca = self.ca.display().to_string();
        let dotenv = self.path().join("ci.env");
        self.regwarden_env(
            &args,
            &[
                ("CI_PROJECT_PATH", PROJECT),
                ("CI_SERVER_URL", &gitlab),
                ("CI_REGISTRY", &self.registry_url),
                ("REGWARDEN_QOVERY_ORGANIZATION_ID", ORG),
                ("REGWARDEN_QOVERY_URL", self.qovery_url_str()),
                ("REGWARDEN_REGISTRY_NAME", registry_name),
                ("REGWARDEN_CA_FILE", &ca),
                ("REGWARDEN_GRACE_PERIOD", "0s"),
                ("REGWARDEN_DOTENV", dotenv.to_str().unwrap()),
            ],
        )
        .await
    }
}
