//! `regwarden reconcile` end to end: the fake GitLab, the real registry (TLS, private CA),
//! the fake Qovery, a store. Each invariant of docs/architecture.md is asserted on the end state.

use std::time::Duration;

use crate::support::faults::Fault;
use crate::support::world::{Settings, World};

const CREATE_TOKEN: &str = "POST /api/v4/projects/{id}/deploy_tokens";
const CREATE_REGISTRY: &str = "POST /organization/{organizationId}/containerRegistry";
const EDIT_REGISTRY: &str =
    "PUT /organization/{organizationId}/containerRegistry/{containerRegistryId}";

#[tokio::test]
async fn a_first_pass_creates_checks_and_registers_a_token() {
    let w = World::start().await;

    let run = w.reconcile(&[]).await;

    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("api: rotated"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("the Qovery registry does not exist yet"),
        "{}",
        run.stdout
    );
    let held = w.assert_converged().await;
    assert_eq!(w.active_tokens().len(), 1);
    assert!(held.name.starts_with("regwarden-api-2"));
    assert_eq!(w.qovery_registry().unwrap().kind, "GENERIC_CR");

    let history = w.regwarden(&["history", "--output", "json"]).await;
    let steps: Vec<String> = history.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["step"].as_str().unwrap(),
                e["outcome"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            "finish ok",
            "qovery_view ok",
            "switch ok",
            "test ok",
            "create ok"
        ]
    );
}

#[tokio::test]
async fn a_healthy_binding_is_left_alone_with_one_token_list() {
    let w = World::start().await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let held = w.held_token().unwrap();
    let calls_before = w.gitlab.total_calls();
    let project_reads = w.gitlab.calls("GET /api/v4/projects/{id}");

    let run = w.reconcile(&[]).await;

    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.starts_with("api: healthy (Qovery holds token"),
        "{}",
        run.stdout
    );
    assert_eq!(w.held_token().unwrap().id, held.id);
    assert_eq!(w.gitlab.calls(CREATE_TOKEN), 1);
    assert_eq!(
        w.gitlab.total_calls() - calls_before,
        3,
        "one token list for the binding, one look at the API token and one project read for the registry checklist per pass"
    );
    assert_eq!(
        w.gitlab.calls("GET /api/v4/projects/{id}") - project_reads,
        1,
        "the checklist reads one project per pass"
    );
    assert_eq!(w.gitlab.calls("GET /api/v4/personal_access_tokens/self"), 2);
}

#[tokio::test]
async fn a_dry_run_prints_the_plan_and_writes_nothing_anywhere() {
    let w = World::start().await;

    let run = w.reconcile(&["--dry-run", "--output", "json"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    let json = run.json();
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["bindings"][0]["outcome"], "planned");
    assert_eq!(
        json["bindings"][0]["plan"]["rotate"]["why"],
        "registry_missing"
    );
    assert!(
        json["bindings"][0]["actions"][0]
            .as_str()
            .unwrap()
            .starts_with("would rotate")
    );
    assert!(w.gitlab.deploy_tokens().is_empty());
    assert!(w.qovery.registries().is_empty());
    assert!(!w.store_file().exists(), "not even the store is created");
}

#[tokio::test]
async fn i1_a_token_that_fails_the_check_never_reaches_qovery() {
    let w = World::start().await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let old = w.held_token().unwrap();
    // GitLab starts signing registry tokens with a key the registry does not trust: every
    // new token fails the check.
    w.gitlab.set_sign_with_untrusted_key(true);

    let run = w.reconcile(&["--force"]).await;

    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains("the new token failed the registry check"),
        "{}",
        run.stdout
    );
    assert_eq!(
        w.held_token().unwrap().id,
        old.id,
        "Qovery still holds the old token"
    );
    assert_eq!(
        w.active_tokens(),
        vec![old],
        "the new token was revoked, the old kept"
    );
    assert_eq!(
        w.qovery.calls(EDIT_REGISTRY),
        0,
        "Qovery never saw the new token"
    );
}

#[tokio::test]
async fn i2_the_old_token_lives_until_qovery_holds_the_new_one_and_the_grace_ends() {
    let w = World::with(Settings {
        grace_period: "2s",
        ..Settings::default()
    })
    .await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let old = w.held_token().unwrap();
    // Clocks have a one-second grain in token names.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    assert_eq!(w.reconcile(&["--force"]).await.code, 0);
    let new = w.assert_converged().await;
    assert_ne!(new.id, old.id);
    assert_eq!(
        w.active_tokens().len(),
        2,
        "the old token is within its grace period"
    );

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let run = w.reconcile(&[]).await;

    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains(&format!(
            "revoked token {}: its grace period is over",
            old.id
        )),
        "{}",
        run.stdout
    );
    assert_eq!(w.active_tokens(), vec![new]);
}

#[tokio::test]
async fn a_qovery_refusal_on_switch_keeps_the_old_token_and_revokes_the_new() {
    let w = World::start().await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let old = w.held_token().unwrap();
    w.qovery.fail(EDIT_REGISTRY, Fault::Status(400, None), 1);

    let run = w.reconcile(&["--force"]).await;

    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("Qovery refused the new credential"),
        "{}",
        run.stdout
    );
    assert_eq!(w.held_token().unwrap().id, old.id);
    assert_eq!(w.active_tokens(), vec![old]);
}

#[tokio::test]
async fn a_qovery_server_error_is_retried_and_the_rotation_completes() {
    let w = World::start().await;
    w.qovery.fail(CREATE_REGISTRY, Fault::Status(503, None), 1);

    let run = w.reconcile(&[]).await;

    assert_eq!(run.code, 0, "{run:?}");
    w.assert_converged().await;
    assert_eq!(w.qovery.registries().len(), 1);
}

#[tokio::test]
async fn a_qovery_answer_lost_after_the_switch_still_counts_as_switched() {
    let w = World::start().await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    // Qovery applies the PUT, then every answer is lost: the marker read back tells.
    w.qovery.fail(EDIT_REGISTRY, Fault::ApplyThenFail, 10);

    let run = w.reconcile(&["--force"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    let held = w.assert_converged().await;
    assert!(run.stdout.contains(&format!(
        "switched Qovery registry \"gitlab-acme-api\" to token {}",
        held.id
    )));
}

#[tokio::test]
async fn a_gitlab_rate_limit_during_create_is_waited_out() {
    let w = World::start().await;
    w.gitlab.fail(CREATE_TOKEN, Fault::Status(429, Some(1)), 1);

    let run = w.reconcile(&[]).await;

    assert_eq!(run.code, 0, "{run:?}");
    w.assert_converged().await;
    assert_eq!(w.active_tokens().len(), 1);
}

#[tokio::test]
async fn a_registry_down_during_the_test_leaves_no_token_and_no_qovery_registry() {
    let mut w = World::start().await;
    w.stop_registry();

    let run = w.reconcile(&[]).await;

    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("cannot reach the registry"),
        "{}",
        run.stdout
    );
    assert!(w.active_tokens().is_empty(), "the new token was revoked");
    assert!(w.qovery.registries().is_empty());
}

#[tokio::test]
async fn a_token_about_to_expire_is_rotated() {
    let w = World::start().await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let old = w.held_token().unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Six days left: within the default rotate_before of seven.
    w.gitlab
        .state
        .lock()
        .unwrap()
        .deploy_tokens
        .iter_mut()
        .filter(|t| t.id == old.id)
        .for_each(|t| t.expires_at = Some(chrono::Utc::now() + chrono::Duration::days(6)));

    let run = w.reconcile(&[]).await;

    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("rotate: the token Qovery holds expires at"),
        "{}",
        run.stdout
    );
    assert_ne!(w.assert_converged().await.id, old.id);
}

#[tokio::test]
async fn a_held_token_revoked_by_hand_is_replaced() {
    let w = World::start().await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let old = w.held_token().unwrap();
    w.gitlab.revoke_deploy_token(old.id);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let run = w.reconcile(&[]).await;

    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("is revoked, expired or gone"),
        "{}",
        run.stdout
    );
    assert_ne!(w.assert_converged().await.id, old.id);
}

#[tokio::test]
async fn tokens_regwarden_did_not_make_are_never_touched() {
    let w = World::start().await;
    let theirs = w.gitlab.add_deploy_token(
        w.gitlab.project_owner(crate::support::world::PROJECT),
        &["read_registry"],
    );

    assert_eq!(w.reconcile(&[]).await.code, 0);
    assert_eq!(w.reconcile(&["--force"]).await.code, 0);

    let still = w
        .gitlab
        .deploy_tokens()
        .into_iter()
        .find(|t| t.id == theirs.id)
        .unwrap();
    assert!(still.active());
}

#[tokio::test]
async fn an_unknown_binding_name_is_a_usage_error() {
    let w = World::start().await;

    let run = w.reconcile(&["--binding", "nope"]).await;

    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("no binding named \"nope\": the configuration has api"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn i5_no_secret_reaches_the_store() {
    let w = World::start().await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(w.reconcile(&["--force"]).await.code, 0);

    let mut bytes = std::fs::read(w.store_file()).unwrap();
    for extra in ["regwarden.db-wal", "regwarden.db-shm"] {
        if let Ok(more) = std::fs::read(w.path().join(extra)) {
            bytes.extend(more);
        }
    }
    let store = String::from_utf8_lossy(&bytes);
    let secrets = w.token_secrets();
    assert_eq!(secrets.len(), 2);
    for secret in secrets.iter().chain([&w.gitlab_token, &w.qovery_token]) {
        assert!(!store.contains(secret.as_str()), "a secret is in the store");
    }
    assert!(
        store.contains("sha256:"),
        "fingerprints are what the store keeps"
    );
}

#[tokio::test]
async fn i5_no_secret_reaches_the_logs_even_at_trace_level() {
    let w = World::start().await;

    // regwarden_env fails the test if any token appears on stdout or stderr.
    let first = w
        .regwarden_env(
            &["reconcile", "--log-format", "json"],
            &[("RUST_LOG", "trace")],
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let forced = w
        .regwarden_env(&["reconcile", "--force"], &[("RUST_LOG", "trace")])
        .await;

    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(forced.code, 0, "{forced:?}");
    assert!(
        first.stderr.contains("\"level\":\"TRACE\""),
        "trace logs were written"
    );
    assert!(forced.stderr.contains("rotation step"), "{}", forced.stderr);
    assert_eq!(w.token_secrets().len(), 2);
}

#[tokio::test]
async fn auto_bind_covers_every_project_of_the_group_with_a_registry() {
    let w = World::with(Settings {
        extra:
            "\n[[auto_bind]]\ngroup = \"acme\"\nqovery_registry = \"gitlab-{project_path_slug}\"\n"
                .into(),
        ..Settings::default()
    })
    .await;
    w.gitlab.add_project("acme/web");

    let (code, outcomes) = w.outcomes(&[]).await;

    assert_eq!(code, 0, "{outcomes:?}");
    // acme/api is already bound by name; acme/web gets a binding from the rule.
    assert_eq!(
        outcomes,
        [("acme-web", "rotated"), ("api", "rotated")]
            .map(|(b, o)| (b.to_string(), o.to_string()))
            .into()
    );
    let mut names: Vec<String> = w.qovery.registries().into_iter().map(|r| r.name).collect();
    names.sort();
    assert_eq!(names, ["gitlab-acme-api", "gitlab-acme-web"]);
}

#[tokio::test]
async fn an_access_token_binding_rotates_with_create_new_and_revoke_old() {
    let w = World::with(Settings {
        grace_period: "2s",
        extra: "credential = \"access_token\"\n".into(),
        ..Settings::default()
    })
    .await;

    assert_eq!(w.reconcile(&[]).await.code, 0);
    let first = w.qovery_registry().unwrap().password.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(w.reconcile(&["--force"]).await.code, 0);
    let second = w.qovery_registry().unwrap().password.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(w.reconcile(&[]).await.code, 0);

    assert!(second.starts_with("glpat-") && first != second);
    assert!(w.qovery_can_pull().await);
    let tokens = w.gitlab.access_tokens();
    let active: Vec<_> = tokens
        .iter()
        .filter(|t| t.active() && t.name.starts_with("regwarden-api-"))
        .collect();
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0].token, second);
    assert!(
        tokens.iter().all(|t| t.rotated_to.is_none()),
        "create-new + revoke-old, never rotate"
    );
    assert!(w.gitlab.deploy_tokens().is_empty());
}

#[tokio::test]
async fn a_terminal_shows_progress_for_many_bindings_and_a_pipe_does_not() {
    let w = World::with(Settings {
        extra:
            "\n[[auto_bind]]\ngroup = \"bulk\"\nqovery_registry = \"gitlab-{project_path_slug}\"\n"
                .into(),
        ..Settings::default()
    })
    .await;
    for i in 0..20 {
        w.gitlab.add_project(&format!("bulk/p{i:02}"));
    }

    // `script` gives the command a pseudo-terminal, as a person's shell would.
    let line = format!(
        "{} reconcile --dry-run --config {}",
        env!("CARGO_BIN_EXE_regwarden"),
        w.config.display()
    );
    let tty = tokio::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("GITLAB_TOKEN", &w.gitlab_token)
        .env("QOVERY_API_TOKEN", &w.qovery_token)
        .output()
        .await
        .expect("script (util-linux)");
    let piped = w.reconcile(&["--dry-run"]).await;

    let on_terminal = String::from_utf8_lossy(&tty.stdout);
    assert!(on_terminal.contains("21/21 bindings"), "{on_terminal}");
    assert_eq!(piped.code, 0, "{piped:?}");
    assert!(!piped.stderr.contains("bindings"), "{}", piped.stderr);
    assert!(
        piped.stdout.contains("bulk-p19: planned"),
        "{}",
        piped.stdout
    );
}

const LIST_REGISTRIES: &str = "GET /organization/{organizationId}/containerRegistry";
const GROUP_PROJECTS: &str = "GET /api/v4/groups/{id}/projects";

/// A world whose configuration also has an `[[auto_bind]]` rule for a group that does not
/// exist (renamed or deleted since) and a binding of a project that is gone.
async fn world_with_a_broken_rule_and_binding() -> World {
    World::with(Settings {
        extra: r#"
[[binding]]
name = "ghost"
project = "acme/ghost"
qovery_registry = "gitlab-acme-ghost"

[[auto_bind]]
group = "acme/gone"
qovery_registry = "gitlab-{project_path_slug}"
"#
        .into(),
        ..Settings::default()
    })
    .await
}

#[tokio::test]
async fn a_broken_rule_or_binding_is_reported_on_its_own_and_the_others_proceed() {
    let w = world_with_a_broken_rule_and_binding().await;

    let run = w.reconcile(&[]).await;

    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("api: rotated"), "{}", run.stdout);
    w.assert_converged().await;
    let ghost = run
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("ghost: failed"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        ghost.contains("project acme/ghost") && ghost.contains("404"),
        "{}",
        run.stdout
    );
    let rule = run
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("auto_bind acme/gone: failed"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        rule.contains("group acme/gone") && rule.contains("404"),
        "{}",
        run.stdout
    );

    // The JSON report says the same, rule by rule.
    let json = w.reconcile(&["--dry-run", "--output", "json"]).await;
    assert_eq!(json.code, 1, "{json:?}");
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["failed_rules"][0]["group"], "acme/gone");
    assert_eq!(report["bindings"][0]["binding"], "api");
    assert_eq!(report["bindings"][0]["outcome"], "healthy");
}

#[tokio::test]
async fn one_binding_by_name_never_depends_on_an_unrelated_rule() {
    let w = world_with_a_broken_rule_and_binding().await;

    let run = w.reconcile(&["--binding", "api"]).await;
    let dry = w.reconcile(&["--binding", "api", "--dry-run"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(dry.code, 0, "{dry:?}");
    w.assert_converged().await;
    assert_eq!(
        w.gitlab.calls(GROUP_PROJECTS),
        0,
        "the [[auto_bind]] rule was not expanded"
    );
}

#[tokio::test]
async fn a_switch_whose_outcome_is_unknown_revokes_neither_token_and_the_next_pass_settles_it() {
    for applied in [true, false] {
        let w = World::with(Settings {
            grace_period: "0s",
            ..Settings::default()
        })
        .await;
        assert_eq!(w.reconcile(&[]).await.code, 0);
        let old = w.held_token().unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        // Every answer to the PUT is lost, whether Qovery applied it or not, and reading the
        // registry back fails too.
        let lost = if applied {
            Fault::ApplyThenDrop
        } else {
            Fault::Drop
        };
        w.qovery.fail(EDIT_REGISTRY, lost, 10);
        // The pass's own listing goes through; reading back after the switch fails.
        w.qovery
            .fail(LIST_REGISTRIES, Fault::Delay(Duration::ZERO), 1);
        w.qovery.fail(LIST_REGISTRIES, Fault::Status(503, None), 10);

        let run = w.reconcile(&["--force"]).await;

        assert_eq!(run.code, 1, "{run:?}");
        assert!(
            run.stdout.contains("may have reached Qovery or not"),
            "{}",
            run.stdout
        );
        let active: Vec<u64> = w.active_tokens().iter().map(|t| t.id).collect();
        assert_eq!(active.len(), 2, "neither token was revoked: {}", run.stdout);
        assert!(active.contains(&old.id));
        let history = w.regwarden(&["history", "--binding", "api"]).await;
        assert!(
            history.stdout.contains("switch unknown"),
            "{}",
            history.stdout
        );
        // Whichever Qovery holds works.
        assert!(w.qovery_can_pull().await, "applied: {applied}");

        w.qovery.clear_faults();
        let next = w.reconcile(&[]).await;

        assert_eq!(next.code, 0, "{next:?}");
        let held = w.assert_converged().await;
        assert_eq!(held.id == old.id, !applied, "{}", next.stdout);
        assert_eq!(
            w.active_tokens().iter().map(|t| t.id).collect::<Vec<_>>(),
            vec![held.id],
            "the token Qovery does not hold is revoked: {}",
            next.stdout
        );
    }
}

#[tokio::test]
async fn two_deployments_binding_one_project_never_revoke_each_others_tokens() {
    // A server-side deployment (the configuration's binding "api", default instance) and the
    // CI component's `rotate` job (instance "ci") keep one project's credential in two Qovery
    // registries, with no grace period: each revokes its own previous token at once.
    let w = World::with(Settings {
        grace_period: "0s",
        ..Settings::default()
    })
    .await;
    let ci_registry = "gitlab-acme-api-ci";
    for round in 0..3 {
        let server = w.reconcile(&["--force"]).await;
        assert_eq!(server.code, 0, "round {round}: {server:?}");
        assert!(
            w.qovery_can_pull().await,
            "round {round}: the server's credential"
        );
        assert!(
            round == 0 || w.can_pull(ci_registry).await,
            "round {round}: the server's pass broke the CI deployment's credential"
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;

        let ci = w.ci_rotate(ci_registry, &["--force"]).await;
        assert_eq!(ci.code, 0, "round {round}: {ci:?}");
        assert!(
            w.can_pull(ci_registry).await,
            "round {round}: the CI credential"
        );
        assert!(
            w.qovery_can_pull().await,
            "round {round}: the CI job broke the server's credential"
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let ci_tokens: Vec<String> = w
        .gitlab
        .deploy_tokens()
        .into_iter()
        .filter(|t| t.active())
        .map(|t| t.name)
        .filter(|n| n.ends_with("-ci"))
        .collect();
    assert_eq!(ci_tokens.len(), 1, "{ci_tokens:?}");
    assert!(
        ci_tokens[0].starts_with("regwarden-acme-api-"),
        "{ci_tokens:?}"
    );
    assert_eq!(w.active_tokens().len(), 1, "the server's own, alone");

    // Pointed at the registry the server keeps (as an upgraded CI job finds the registry an
    // earlier, unnamed `ci rotate` kept), the CI job takes it over with a token of its own and
    // leaves the server's token alone; the server then leaves the registry to it, and says so.
    let servers_token = w.held_token().unwrap();
    let takeover = w
        .ci_rotate(crate::support::world::QOVERY_REGISTRY, &[])
        .await;
    assert_eq!(takeover.code, 0, "{takeover:?}");
    assert!(
        takeover.stdout.contains("this instance takes it over"),
        "{}",
        takeover.stdout
    );
    assert!(w.held_token().unwrap().name.ends_with("-ci"));
    assert!(w.qovery_can_pull().await);
    let creates = w.gitlab.calls(CREATE_TOKEN);
    let server = w.reconcile(&["--force"]).await;
    assert_eq!(server.code, 1, "{server:?}");
    assert!(
        server.stdout.starts_with("api: blocked"),
        "{}",
        server.stdout
    );
    assert!(
        server
            .stdout
            .contains("is kept by regwarden instance \"ci\""),
        "{}",
        server.stdout
    );
    assert_eq!(
        w.gitlab.calls(CREATE_TOKEN),
        creates,
        "the server made no token"
    );
    assert!(
        w.active_tokens().iter().any(|t| t.id == servers_token.id),
        "nobody revoked the server's token"
    );
    assert!(w.qovery_can_pull().await);

    // `config check` shows which deployment this configuration is.
    let check = w.regwarden(&["config", "check"]).await;
    assert!(check.stdout.contains("instance"), "{}", check.stdout);
}

#[tokio::test]
async fn a_rotation_that_held_its_lock_past_lease_ttl_stops_short_of_the_switch() {
    let w = World::with(Settings {
        reconcile: "lease_ttl = \"1s\"",
        ..Settings::default()
    })
    .await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let old = w.held_token().unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The registry's realm takes its time: the check ends after lease_ttl.
    w.gitlab.fail(
        "GET /jwt/auth",
        Fault::Delay(Duration::from_millis(1500)),
        1,
    );

    let run = w.reconcile(&["--force"]).await;

    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("longer than lease_ttl"),
        "{}",
        run.stdout
    );
    assert_eq!(
        w.held_token().unwrap().id,
        old.id,
        "Qovery was left as it was"
    );
    assert_eq!(w.active_tokens(), vec![old], "the new token was revoked");
}

#[tokio::test]
async fn what_a_person_reads_of_a_pass_a_dry_run_and_the_history() {
    let w = World::with(Settings {
        grace_period: "0s",
        ..Settings::default()
    })
    .await;

    let first = w.reconcile(&[]).await;
    let steady = w.reconcile(&[]).await;
    let dry = w.reconcile(&["--dry-run", "--force"]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let forced = w.reconcile(&["--force"]).await;
    let history = w.regwarden(&["history"]).await;

    crate::support::snapshot::stable().bind(|| {
        insta::assert_snapshot!("first_pass", first.stdout);
        insta::assert_snapshot!("steady_pass", steady.stdout);
        insta::assert_snapshot!("dry_run", dry.stdout);
        insta::assert_snapshot!("forced_pass", forced.stdout);
        insta::assert_snapshot!("history", history.stdout);
    });
}

#[tokio::test]
async fn what_a_person_reads_of_the_rotate_job() {
    let w = World::start().await;

    let job = w.ci_rotate("gitlab-acme-api-ci", &[]).await;

    assert_eq!(job.code, 0, "{job:?}");
    crate::support::snapshot::stable().bind(|| {
        insta::assert_snapshot!("rotate_job", job.stdout);
    });
}

#[tokio::test]
async fn a_registry_set_up_by_hand_is_taken_over_and_its_credential_left_alone() {
    let w = World::start().await;
    // What Qovery's guide has a person do: a personal access token with read_registry, typed
    // into a registry in Qovery's console.
    let pat = w.gitlab.add_access_token(
        crate::support::gitlab::Owner::User,
        "alice-laptop",
        &["read_registry"],
    );
    w.qovery.add_hand_made_registry(
        crate::support::world::ORG,
        crate::support::world::QOVERY_REGISTRY,
        &w.registry_url,
        &["acme/api:v1"],
        "alice",
        &pat.token,
    );

    let dry = w.reconcile(&["--dry-run", "--output", "json"]).await;
    assert_eq!(dry.code, 0, "{dry:?}");
    let planned = &dry.json()["bindings"][0];
    assert_eq!(planned["outcome"], "planned");
    assert_eq!(planned["plan"]["rotate"]["why"], "take_over");
    assert_eq!(planned["plan"]["rotate"]["username"], "alice");
    let would = planned["actions"][0].as_str().unwrap();
    assert!(
        would.starts_with(
            "would take Qovery registry \"gitlab-acme-api\" over from a credential regwarden did not create (username alice)"
        ),
        "{would}"
    );
    let untouched = w.qovery_registry().unwrap();
    assert_eq!(untouched.password.as_deref(), Some(pat.token.as_str()));
    assert!(w.active_tokens().is_empty(), "a dry run makes no token");

    let run = w.reconcile(&["--output", "json"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let report = &run.json()["bindings"][0];
    assert_eq!(report["outcome"], "rotated");
    let said = report["actions"].to_string();
    assert!(
        said.contains("took Qovery registry \\\"gitlab-acme-api\\\" over from a credential regwarden did not create (username alice)"),
        "{said}"
    );
    w.assert_converged().await;
    let registry = w.qovery_registry().unwrap();
    assert!(
        registry
            .description
            .starts_with("Set up by hand for the api team.\n"),
        "what the person wrote stays: {:?}",
        registry.description
    );
    let pat_now = w
        .gitlab
        .access_tokens()
        .into_iter()
        .find(|t| t.id == pat.id)
        .unwrap();
    assert!(pat_now.active(), "the person's token is never revoked");

    let history = w.regwarden(&["history", "--output", "json"]).await;
    let took = history.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["step"] == "take_over")
        .cloned()
        .expect("the journal says the registry was taken over");
    assert!(
        took["reason"]
            .as_str()
            .unwrap()
            .contains("(username alice)"),
        "{took}"
    );
    // The next pass finds its own marker: nothing more to take over.
    let (code, outcomes) = w.outcomes(&[]).await;
    assert_eq!((code, outcomes["api"].as_str()), (0, "healthy"));
}

#[tokio::test]
async fn a_marker_removed_by_hand_never_costs_the_held_token_its_grace_period() {
    let w = World::start().await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let before = w.held_token().unwrap();
    // Somebody edits the registry's description in Qovery's console and drops the marker.
    w.qovery.state.lock().unwrap().registries[0].description = "api pulls".into();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let (code, outcomes) = w.outcomes(&[]).await;

    assert_eq!((code, outcomes["api"].as_str()), (0, "rotated"));
    let after = w.assert_converged().await;
    assert_ne!(after.id, before.id);
    let still = w
        .active_tokens()
        .into_iter()
        .find(|t| t.id == before.id)
        .expect("the token Qovery held keeps its grace period (1h)");
    assert!(still.active());
}

#[tokio::test]
async fn a_binding_busy_for_longer_than_lease_ttl_is_a_failure_not_success_for_ever() {
    let w = World::with(Settings {
        reconcile: "lease_ttl = \"2s\"",
        ..Settings::default()
    })
    .await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    // Another holder takes the binding's lock and never lets go (a frozen process).
    let store = regwarden::store::Store::open(&w.store_url).await.unwrap();
    let held = store.try_lock_binding("api").await.unwrap().expect("free");

    let (early, outcomes) = w.outcomes(&["--force"]).await;
    assert_eq!(
        (early, outcomes["api"].as_str()),
        (0, "busy"),
        "a holder at work is busy"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let late = w.reconcile(&["--force", "--output", "json"]).await;

    assert_eq!(late.code, 1, "{late:?}");
    let report = &late.json()["bindings"][0];
    assert_eq!(report["outcome"], "failed", "{report}");
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("longer than reconcile.lease_ttl") && error.contains("stuck"),
        "{error}"
    );
    held.release().await;
    assert_eq!(
        w.reconcile(&[]).await.code,
        0,
        "once the holder ends, all is well"
    );
}

#[tokio::test]
async fn a_peers_words_cannot_forge_a_line_or_drive_the_terminal() {
    let w = World::start().await;
    w.qovery.fail(
        CREATE_REGISTRY,
        Fault::Says(
            400,
            "bad config\u{1b}[2J\u{1b}[31m\nerror: nothing failed, all is well\u{202e}".into(),
        ),
        1,
    );

    let run = w.reconcile(&[]).await;

    assert_eq!(run.code, 1, "{run:?}");
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("bad config"), "{all}");
    assert!(
        !all.contains('\u{1b}') && !all.contains('\u{202e}'),
        "{all:?}"
    );
    assert!(
        !all.lines().any(|l| l.starts_with("error: nothing failed")),
        "a forged line: {all}"
    );
}

#[tokio::test]
async fn a_relative_store_path_is_beside_the_configuration_file_wherever_regwarden_starts() {
    // `store.url` as the README's examples give it: relative. A cron job starts in `$HOME`,
    // a person runs `history` from wherever they are: both must find the server's store
    // (and its locks), not make one of their own.
    let w = World::with(Settings {
        store_url: Some("sqlite://regwarden.db".into()),
        ..Settings::default()
    })
    .await;
    let cron_home = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();

    let run = w.regwarden_in(cron_home.path(), &["reconcile"], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(w.store_file().exists(), "the store is beside the file");
    assert!(!cron_home.path().join("regwarden.db").exists());
    assert!(!cron_home.path().join("regwarden.db.locks").exists());

    let history = w
        .regwarden_in(elsewhere.path(), &["history", "--output", "json"], &[])
        .await;
    assert_eq!(history.code, 0, "{history:?}");
    let entries = history.json()["entries"].as_array().unwrap().clone();
    assert!(entries.iter().any(|e| e["step"] == "switch"), "{entries:?}");
    assert!(!elsewhere.path().join("regwarden.db").exists());

    // A configuration file named by a relative path, too.
    let parent = w.path().parent().unwrap();
    let relative = w.path().file_name().unwrap().to_str().unwrap();
    let again = crate::support::cli::regwarden([
        "history",
        "--output",
        "json",
        "--config",
        &format!("{relative}/regwarden.toml"),
    ])
    .current_dir(parent)
    .run()
    .await;
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(
        again.json()["entries"].as_array().unwrap().len(),
        entries.len()
    );

    // Under systemd's `StateDirectory=` (and in the image), `$STATE_DIRECTORY` is the place.
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let fresh = w
        .regwarden_in(
            elsewhere.path(),
            &["history", "--output", "json"],
            &[("STATE_DIRECTORY", state_dir)],
        )
        .await;
    assert_eq!(fresh.code, 0, "{fresh:?}");
    assert_eq!(fresh.json()["entries"].as_array().unwrap().len(), 0);
    assert!(state.path().join("regwarden.db").exists());
    assert!(!elsewhere.path().join("regwarden.db").exists());
}
