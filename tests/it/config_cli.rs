//! `regwarden config check`: offline validation of the file, and `--online` probes of
//! GitLab, Qovery and the real registry.

use std::path::{Path, PathBuf};

use crate::support::cli::regwarden;
use crate::support::gitlab::{FakeGitlab, Owner};
use crate::support::pki::PrivateCa;
use crate::support::qovery::FakeQovery;
use crate::support::registry::{Auth, Registry, Tls};
use crate::support::world::host_port;

const ORG: &str = "3c90c3cc-0d44-4b50-8888-8dd25736052a";

fn example_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("regwarden.example.toml")
}

#[tokio::test]
async fn the_example_file_passes_the_offline_check() {
    let run = regwarden([
        "config",
        "check",
        "--config",
        example_file().to_str().unwrap(),
    ])
    .run()
    .await;

    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("3 binding(s), 1 auto-bind rule(s)"),
        "{}",
        run.stdout
    );
    // Offline, unset secrets are warnings that name the variable.
    assert!(
        run.stdout.contains(
            "warn gitlab.token: gitlab.token_env names the environment variable GITLAB_TOKEN"
        ),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn every_problem_of_a_broken_file_is_named_with_key_and_line_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"[gitlab]
url = "https://gitlab.com"

[qovery]
organization_id = "3c90c3cc-0d44-4b50-8888-8dd25736052a"

[[binding]]
name = "api"
project = "acme/api"
qovery_registry = "r1"

[[binding]]
name = "api"
group = "acme"
project = "acme/web"
qovery_registry = "r2"
"#,
    )
    .unwrap();

    let run = regwarden(["config", "check", "--config", path.to_str().unwrap()])
        .run()
        .await;

    assert_eq!(run.code, 2, "{run:?}");
    let shown = path.display().to_string();
    assert!(
        run.stderr.contains(&format!(
            "{shown}:13: binding[1].name: duplicate binding name \"api\""
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "{shown}:12: binding[1]: has both `project` and `group`"
        )),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn an_unknown_key_is_refused_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.toml");
    std::fs::write(
        &path,
        "[gitlab]\nurl = \"https://gitlab.com\"\ntoken_evn = \"X\"\n",
    )
    .unwrap();

    let run = regwarden(["config", "check"])
        .env("REGWARDEN_CONFIG", path.to_str().unwrap())
        .run()
        .await;

    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains(":3: gitlab"), "{}", run.stderr);
    assert!(
        run.stderr.contains("unknown field `token_evn`"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn without_a_config_file_the_command_says_how_to_give_one() {
    let run = regwarden(["config", "check"]).run().await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--config"), "{}", run.stderr);
    assert!(run.stderr.contains("REGWARDEN_CONFIG"), "{}", run.stderr);
}

struct Online {
    dir: tempfile::TempDir,
    gitlab: FakeGitlab,
    qovery: FakeQovery,
    _registry: Registry,
    /// Stands for a public CA (`REGWARDEN_TEST_PUBLIC_ROOTS`).
    ca: PathBuf,
    config: PathBuf,
    gitlab_token: String,
    qovery_token: String,
}

async fn online_world() -> Online {
    let dir = tempfile::tempdir().unwrap();
    let gitlab = FakeGitlab::start(dir.path()).await;
    let qovery = FakeQovery::start().await;
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
    gitlab.set_registry_host_port(Some(&host_port(&registry.url)));
    let gitlab_token = gitlab
        .add_access_token(Owner::User, "regwarden", &["api"])
        .token;
    let qovery_token = qovery.add_organization(ORG, "acme");
    let config = dir.path().join("regwarden.toml");
    std::fs::write(
        &config,
        format!(
            "[gitlab]\nurl = \"{}\"\nregistry_url = \"{}\"\nca_file = \"{}\"\n\n[qovery]\nurl = \"{}\"\norganization_id = \"{ORG}\"\n",
            gitlab.url(),
            registry.url,
            ca.ca_path.display(),
            qovery.url()
        ),
    )
    .unwrap();
    Online {
        dir,
        gitlab,
        qovery,
        _registry: registry,
        ca: ca.ca_path.clone(),
        config,
        gitlab_token,
        qovery_token,
    }
}

#[tokio::test]
async fn online_probes_report_gitlab_qovery_and_the_registry() {
    let w = online_world().await;

    let run = regwarden([
        "config",
        "check",
        "--online",
        "--config",
        w.config.to_str().unwrap(),
    ])
    .env("GITLAB_TOKEN", &w.gitlab_token)
    .env("QOVERY_API_TOKEN", &w.qovery_token)
    .env("REGWARDEN_TEST_PUBLIC_ROOTS", w.ca.to_str().unwrap())
    .run()
    .await;

    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("ok   gitlab: "), "{}", run.stdout);
    assert!(run.stdout.contains("scopes [api]"), "{}", run.stdout);
    assert!(
        run.stdout.contains("ok   qovery: ") && run.stdout.contains("organization \"acme\""),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("ok   realm 127.0.0.1:")
            && run
                .stdout
                .contains(&format!("token realm {}: this GitLab's", w.gitlab.realm())),
        "{}",
        run.stdout
    );
    assert_eq!(w.gitlab.calls("GET /api/v4/personal_access_tokens/self"), 1);
    run.assert_never_shows(&w.gitlab_token);
    run.assert_never_shows(&w.qovery_token);
}

#[tokio::test]
async fn online_failures_name_the_service_and_exit_1() {
    let w = online_world().await;
    let foreign_org = w
        .qovery
        .add_organization("11111111-2222-3333-4444-555555555555", "other");

    let run = regwarden([
        "config",
        "check",
        "--online",
        "--output",
        "json",
        "--config",
        w.config.to_str().unwrap(),
    ])
    .env("GITLAB_TOKEN", "glpat-not-a-real-token")
    .env("QOVERY_API_TOKEN", &foreign_org)
    .env("REGWARDEN_TEST_PUBLIC_ROOTS", w.ca.to_str().unwrap())
    .run()
    .await;

    assert_eq!(run.code, 1, "{run:?}");
    let json = run.json();
    assert_eq!(json["ok"], false);
    let finding = |subject: &str| {
        json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["subject"] == subject)
            .cloned()
            .unwrap()
    };
    assert_eq!(finding("gitlab")["status"], "fail");
    assert!(
        finding("gitlab")["message"]
            .as_str()
            .unwrap()
            .contains("401"),
        "{json}"
    );
    assert_eq!(finding("qovery")["status"], "fail");
    assert!(
        finding("qovery")["message"]
            .as_str()
            .unwrap()
            .contains("403"),
        "{json}"
    );
    // The registry's own items do not depend on the API tokens.
    let realm = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["subject"].as_str().unwrap().starts_with("realm "))
        .cloned()
        .unwrap();
    assert_eq!(realm["status"], "ok", "{json}");
    run.assert_never_shows("glpat-not-a-real-token");
    run.assert_never_shows(&foreign_org);
}

#[tokio::test]
async fn an_unset_token_variable_is_named_when_probing() {
    let w = online_world().await;

    let run = regwarden([
        "config",
        "check",
        "--online",
        "--config",
        w.config.to_str().unwrap(),
    ])
    .env("QOVERY_API_TOKEN", &w.qovery_token)
    .run()
    .await;

    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains("FAIL gitlab: gitlab.token_env names the environment variable GITLAB_TOKEN"),
        "{}",
        run.stdout
    );
    drop(w.dir);
}

#[tokio::test]
async fn what_a_person_reads_of_config_check() {
    let run = regwarden([
        "config",
        "check",
        "--config",
        example_file().to_str().unwrap(),
    ])
    .run()
    .await;

    let stdout = run
        .stdout
        .replace(env!("CARGO_MANIFEST_DIR"), "[repository]");
    crate::support::snapshot::stable().bind(|| {
        insta::assert_snapshot!("offline", stdout);
    });
}
