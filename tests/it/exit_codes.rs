//! The exit codes `regwarden --help` documents, the same for every command: 0 success; 1 the
//! command ran and something it checked or did failed; 2 bad usage or configuration; 3, 4, 5 a
//! credential check's outcome. Each command is run into each case it can meet.

use crate::support::cli::regwarden;

/// A configuration whose store is a PostgreSQL nobody listens on: at `port`, which the caller
/// keeps closed (see `closed_port`).
fn config_with_unreachable_store(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let path = dir.join("regwarden.toml");
    std::fs::write(
        &path,
        format!(
            r#"[gitlab]
url = "http://127.0.0.1:9"
registry_url = "http://127.0.0.1:9"

[qovery]
url = "http://127.0.0.1:9"
organization_id = "3c90c3cc-0d44-4b50-8888-8dd25736052a"

[store]
url = "postgres://regwarden:hunter2@127.0.0.1:{port}/regwarden?connect_timeout=2"

[[binding]]
name = "api"
project = "acme/api"
qovery_registry = "gitlab-acme-api"
"#
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn help_lists_the_exit_codes() {
    let run = regwarden(["--help"]).run().await;
    assert_eq!(run.code, 0);
    let help = run.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for code in [
        "0 success",
        "1 the command ran and something it checked or did failed",
        "2 bad usage or configuration",
        "3, 4, 5 a credential check's outcome",
        "busy",
    ] {
        assert!(help.contains(code), "{code:?} is not in:\n{}", run.stdout);
    }
}

#[tokio::test]
async fn without_a_configuration_every_command_that_needs_one_exits_2() {
    for args in [
        vec!["reconcile"],
        vec!["history"],
        vec!["tokens"],
        vec!["serve"],
        vec!["config", "check"],
    ] {
        let run = regwarden(args.clone()).run().await;
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stderr.contains("--config"), "{args:?}: {}", run.stderr);
    }
    // The component's jobs name the variable that is missing.
    let run = regwarden(["ci", "register"]).run().await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("REGWARDEN_QOVERY_ORGANIZATION_ID")
            || run.stderr.contains("organization-id"),
        "{}",
        run.stderr
    );
    let run = regwarden(["check", "--registry", "registry.example.com"])
        .run()
        .await;
    assert_eq!(run.code, 2, "{run:?}");
}

#[tokio::test]
async fn a_store_that_does_not_answer_exits_1_from_every_command_that_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let closed = crate::support::server::closed_port();
    let config = config_with_unreachable_store(dir.path(), closed.port());
    let config = config.to_str().unwrap();
    for args in [
        vec!["reconcile", "--config", config],
        vec!["history", "--config", config],
        vec![
            "serve",
            "--config",
            config,
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    ] {
        let run = regwarden(args.clone())
            .env("GITLAB_TOKEN", "glpat-unused")
            .env("QOVERY_API_TOKEN", "qov-unused")
            .env("REGWARDEN_WEBHOOK_SECRET", "unused")
            .run()
            .await;
        assert_eq!(run.code, 1, "{args:?}: {run:?}");
        assert!(run.stderr.contains("the store"), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("hunter2"), "{args:?}: {}", run.stderr);
    }
}

#[tokio::test]
async fn an_unreadable_secret_is_a_configuration_problem_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let closed = crate::support::server::closed_port();
    let config = config_with_unreachable_store(dir.path(), closed.port());
    let run = regwarden(["reconcile", "--config", config.to_str().unwrap()])
        .run()
        .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("GITLAB_TOKEN"), "{}", run.stderr);
}
