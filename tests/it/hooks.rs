//! `regwarden hooks sync` against the fake GitLab's hooks API (tests/it/support/gitlab/hooks.rs,
//! fields and defaults as GitLab's source has them): hooks made with the URL, events and
//! secrets regwarden verifies, left alone once right, put back when someone changed them,
//! and reported when GitLab disabled them.

use crate::support::gitlab::Owner;
use crate::support::gitlab::hooks::Hook;
use crate::support::serving::{LEGACY_SECRET, SIGNING_TOKEN};
use crate::support::world::{PROJECT, Settings, World};

const PUBLIC_URL: &str = "https://regwarden.example.com";
const HOOK_URL: &str = "https://regwarden.example.com/webhooks/gitlab";

const SECRETS: &[(&str, &str)] = &[
    ("REGWARDEN_WEBHOOK_SIGNING_TOKEN", SIGNING_TOKEN),
    ("REGWARDEN_WEBHOOK_SECRET", LEGACY_SECRET),
];

/// The world's binding of acme/api, and an `[[auto_bind]]` rule on group acme/services.
async fn world() -> World {
    let w = World::with(Settings {
        extra: format!(
            "\n[[auto_bind]]\ngroup = \"acme/services\"\nqovery_registry = \"gitlab-acme-services\"\n\n[server]\npublic_url = \"{PUBLIC_URL}\"\n"
        ),
        ..Settings::default()
    })
    .await;
    w.gitlab.add_group("acme/services");
    w
}

fn ours(w: &World) -> Vec<Hook> {
    w.gitlab
        .hooks()
        .into_iter()
        .filter(|h| h.url == HOOK_URL)
        .collect()
}

/// regwarden's hook of the project (`true`) or of the group.
fn our_hook(w: &World, project: bool) -> Hook {
    ours(w)
        .into_iter()
        .find(|h| matches!(h.owner, Owner::Project(_)) == project)
        .expect("regwarden's hook")
}

fn writes(w: &World) -> usize {
    [
        "POST /api/v4/projects/{id}/hooks",
        "PUT /api/v4/projects/{id}/hooks/{hook_id}",
        "DELETE /api/v4/projects/{id}/hooks/{hook_id}",
        "POST /api/v4/groups/{id}/hooks",
        "PUT /api/v4/groups/{id}/hooks/{hook_id}",
        "DELETE /api/v4/groups/{id}/hooks/{hook_id}",
    ]
    .iter()
    .map(|r| w.gitlab.calls(r))
    .sum()
}

#[tokio::test]
async fn each_bound_project_and_group_gets_one_hook_and_a_second_run_changes_nothing() {
    let w = world().await;
    let someone_elses = w
        .gitlab
        .add_hook(PROJECT, "https://ci.example.com/gitlab-events");

    let run = w
        .regwarden_env(&["hooks", "sync", "--output", "json"], SECRETS)
        .await;

    assert_eq!(run.code, 0, "{run:?}");
    run.assert_never_shows(SIGNING_TOKEN);
    run.assert_never_shows(LEGACY_SECRET);
    let report = run.json();
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["url"], HOOK_URL);
    let actions: Vec<(String, String, String)> = report["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["kind"].as_str().unwrap().to_string(),
                h["path"].as_str().unwrap().to_string(),
                h["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("project".into(), PROJECT.into(), "created".into()),
            ("group".into(), "acme/services".into(), "created".into()),
        ]
    );

    let hooks = ours(&w);
    assert_eq!(hooks.len(), 2, "{hooks:#?}");
    let project = &our_hook(&w, true);
    let group = &our_hook(&w, false);
    // Pushes off (GitLab's default is on), token expiries on, deploy-token expiries where a
    // hook can have them (project hooks), project events where they exist (group hooks).
    for (flag, want) in [
        ("push_events", false),
        ("resource_access_token_events", true),
        ("resource_deploy_token_events", true),
    ] {
        assert_eq!(project.flag(flag), want, "project hook {flag}");
    }
    for (flag, want) in [
        ("push_events", false),
        ("resource_access_token_events", true),
        ("project_events", true),
    ] {
        assert_eq!(group.flag(flag), want, "group hook {flag}");
    }
    for h in [project, group] {
        assert_eq!(h.signing_token.as_deref(), Some(SIGNING_TOKEN));
        assert_eq!(h.token.as_deref(), Some(LEGACY_SECRET));
        assert!(h.enable_ssl_verification);
        assert_eq!(h.name.as_deref(), Some("regwarden"));
    }
    // The other hook of the project is left as it was.
    let other = w
        .gitlab
        .hooks()
        .into_iter()
        .find(|h| h.id == someone_elses)
        .unwrap();
    assert!(other.flag("push_events"));
    assert_eq!(other.token.as_deref(), Some("someone-elses-secret"));

    // Again: nothing to do, nothing written.
    let before = writes(&w);
    let again = w.regwarden_env(&["hooks", "sync"], SECRETS).await;
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(
        again.stdout,
        format!(
            "project {PROJECT} (binding api): hook {} unchanged\ngroup acme/services (auto_bind acme/services): hook {} unchanged\n",
            project.id, group.id
        )
    );
    assert_eq!(writes(&w), before, "a second run writes nothing");
    assert_eq!(ours(&w).len(), 2);
}

#[tokio::test]
async fn a_hook_someone_changed_is_put_back_and_duplicates_are_removed() {
    let w = world().await;
    assert_eq!(w.regwarden_env(&["hooks", "sync"], SECRETS).await.code, 0);
    let project_hook = our_hook(&w, true);
    // A person turned pushes on and cleared the secrets; another sync's create (whose answer
    // was lost) left a second hook at regwarden's URL.
    w.gitlab.edit_hook(project_hook.id, |h| {
        h.events.insert("push_events".into(), true);
        h.token = None;
        h.signing_token = None;
    });
    let duplicate = w.gitlab.add_hook(PROJECT, HOOK_URL);

    let run = w.regwarden_env(&["hooks", "sync"], SECRETS).await;

    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains(&format!(
            "project {PROJECT} (binding api): hook {} updated (push_events, token, signing_token); duplicate hooks {duplicate} removed",
            project_hook.id
        )),
        "{}",
        run.stdout
    );
    run.assert_never_shows(SIGNING_TOKEN);
    let hook = w
        .gitlab
        .hooks()
        .into_iter()
        .find(|h| h.id == project_hook.id)
        .unwrap();
    assert!(!hook.flag("push_events"));
    assert_eq!(hook.signing_token.as_deref(), Some(SIGNING_TOKEN));
    assert_eq!(hook.token.as_deref(), Some(LEGACY_SECRET));
    assert!(!w.gitlab.hooks().iter().any(|h| h.id == duplicate));
}

#[tokio::test]
async fn a_hook_gitlab_disabled_is_named_with_what_to_do_and_exits_1() {
    let w = world().await;
    assert_eq!(w.regwarden_env(&["hooks", "sync"], SECRETS).await.code, 0);
    let project_hook = our_hook(&w, true);
    let group_hook = our_hook(&w, false);
    w.gitlab.disable_hook(project_hook.id, false);
    w.gitlab.disable_hook(group_hook.id, true);

    let run = w.regwarden_env(&["hooks", "sync"], SECRETS).await;

    assert_eq!(run.code, 1, "{run:?}");
    let until = w
        .gitlab
        .hooks()
        .into_iter()
        .find(|h| h.id == project_hook.id)
        .unwrap()
        .disabled_until
        .unwrap();
    assert!(
        run.stdout.contains(&format!(
            "project {PROJECT} (binding api): hook {} unchanged; temporarily disabled until {until}",
            project_hook.id
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "group acme/services (auto_bind acme/services): hook {} unchanged; disabled",
            group_hook.id
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("/hooks/{}/test/push_events", project_hook.id))
            && run.stdout.contains(HOOK_URL),
        "{}",
        run.stdout
    );
    let json = w
        .regwarden_env(&["hooks", "sync", "--output", "json"], SECRETS)
        .await
        .json();
    assert_eq!(json["ok"], false);
    assert_eq!(
        json["hooks"][0]["disabled"]["alert_status"],
        "temporarily_disabled"
    );
    assert_eq!(json["hooks"][1]["disabled"]["alert_status"], "disabled");
}

#[tokio::test]
async fn a_dry_run_says_what_it_would_do_and_writes_nothing() {
    let w = world().await;

    let run = w
        .regwarden_env(&["hooks", "sync", "--dry-run"], SECRETS)
        .await;

    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        format!(
            "project {PROJECT} (binding api): hook would be created\ngroup acme/services (auto_bind acme/services): hook would be created\n"
        )
    );
    assert_eq!(writes(&w), 0);
    assert!(w.gitlab.hooks().is_empty());
}

#[tokio::test]
async fn without_a_public_url_or_a_secret_the_command_says_what_to_set() {
    let w = World::start().await;
    let run = w.regwarden_env(&["hooks", "sync"], SECRETS).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("server.public_url is not set"),
        "{}",
        run.stderr
    );

    let w = world().await;
    let run = w.regwarden(&["hooks", "sync"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("no webhook secret to give the hooks")
            && run.stderr.contains("server.secret_tokens_env"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_project_that_does_not_exist_is_named_and_the_others_are_kept() {
    let w = World::with(Settings {
        extra: format!(
            "\n[[binding]]\nname = \"gone\"\nproject = \"acme/gone\"\nqovery_registry = \"gitlab-acme-gone\"\n\n[server]\npublic_url = \"{PUBLIC_URL}\"\n"
        ),
        ..Settings::default()
    })
    .await;

    let run = w.regwarden_env(&["hooks", "sync"], SECRETS).await;

    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains("project acme/gone (binding gone): failed\n  cannot read this project in GitLab: GitLab has no such resource (404)"),
        "{}",
        run.stdout
    );
    assert_eq!(ours(&w).len(), 1, "acme/api has its hook");
}

#[tokio::test]
async fn the_server_keeps_the_hooks_on_its_timer_and_shows_a_disabled_one_on_metrics() {
    let w = World::with(Settings {
        extra: format!("\n[server]\npublic_url = \"{PUBLIC_URL}\"\nreconcile_interval = \"2s\"\n"),
        ..Settings::default()
    })
    .await;
    // `serve` has the world's secrets in its environment.
    let s = w.serve(&[]).await;
    let line = format!("regwarden_gitlab_hook_ok{{kind=\"project\",path=\"{PROJECT}\"}}");

    w.eventually("the start-up pass's hook", || ours(&w).len() == 1)
        .await;
    let hook = ours(&w).remove(0);
    assert_eq!(hook.signing_token.as_deref(), Some(SIGNING_TOKEN));
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = s.metrics().await.1;
        if metrics.contains(&format!("{line} 1")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(metrics.contains(&format!("{line} 1")), "{metrics}");

    w.gitlab.disable_hook(hook.id, false);
    for _ in 0..100 {
        metrics = s.metrics().await.1;
        if metrics.contains(&format!("{line} 0")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(metrics.contains(&format!("{line} 0")), "{metrics}");
    assert!(
        w.server_log().contains("the GitLab hook needs a person"),
        "{}",
        w.server_log()
    );
    assert!(!metrics.contains(SIGNING_TOKEN) && !w.server_log().contains(SIGNING_TOKEN));
    assert_eq!(ours(&w).len(), 1, "one hook, kept, however many passes ran");
    s.kill().await;
}

#[tokio::test]
async fn config_check_online_says_which_hooks_are_missing_or_disabled() {
    let w = world().await;
    let before = check_online(&w).await;
    assert!(
        before.stdout.contains(&format!(
            "warn hook project {PROJECT}: no hook at {HOOK_URL}: run `regwarden hooks sync`"
        )),
        "{}",
        before.stdout
    );
    assert_eq!(writes(&w), 0, "config check changes nothing");

    assert_eq!(w.regwarden_env(&["hooks", "sync"], SECRETS).await.code, 0);
    let hook = our_hook(&w, true);
    w.gitlab.disable_hook(hook.id, true);

    let after = check_online(&w).await;
    assert_eq!(after.code, 1, "{after:?}");
    assert!(
        after.stdout.contains(&format!(
            "FAIL hook project {PROJECT}: GitLab has disabled this hook"
        )),
        "{}",
        after.stdout
    );
    after.assert_never_shows(SIGNING_TOKEN);
}

async fn check_online(w: &World) -> crate::support::cli::Run {
    w.regwarden_env(&["config", "check", "--online"], SECRETS)
        .await
}

#[tokio::test]
async fn before_gitlab_19_the_secret_token_carries_the_hook_and_a_signing_token_alone_is_named() {
    let w = world().await;
    w.gitlab.hooks_as_before_gitlab_19();

    // Both secrets: GitLab drops the signing token without a word; the secret token holds.
    let run = w.regwarden_env(&["hooks", "sync"], SECRETS).await;
    assert_eq!(run.code, 0, "{run:?}");
    let hook = our_hook(&w, true);
    assert_eq!(hook.signing_token, None);
    assert_eq!(hook.token.as_deref(), Some(LEGACY_SECRET));
    let again = w.regwarden_env(&["hooks", "sync"], SECRETS).await;
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("unchanged"), "{}", again.stdout);

    // A signing token alone: a hook whose deliveries the server would refuse, said so.
    let w = world().await;
    w.gitlab.hooks_as_before_gitlab_19();
    let run = w
        .regwarden_env(
            &["hooks", "sync"],
            &[("REGWARDEN_WEBHOOK_SIGNING_TOKEN", SIGNING_TOKEN)],
        )
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains("GitLab did not keep a secret regwarden verifies on this hook"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn under_require_signature_hooks_get_no_secret_token() {
    let w = World::with(Settings {
        extra: format!("\n[server]\npublic_url = \"{PUBLIC_URL}\"\nrequire_signature = true\n"),
        ..Settings::default()
    })
    .await;

    let run = w.regwarden_env(&["hooks", "sync"], SECRETS).await;

    assert_eq!(run.code, 0, "{run:?}");
    let hook = our_hook(&w, true);
    assert_eq!(hook.signing_token.as_deref(), Some(SIGNING_TOKEN));
    assert_eq!(hook.token, None, "the server would refuse what it carries");

    // On a GitLab without signing tokens that is a hook nothing can authenticate.
    let w = World::with(Settings {
        extra: format!("\n[server]\npublic_url = \"{PUBLIC_URL}\"\nrequire_signature = true\n"),
        ..Settings::default()
    })
    .await;
    w.gitlab.hooks_as_before_gitlab_19();
    let run = w.regwarden_env(&["hooks", "sync"], SECRETS).await;
    assert_eq!(run.code, 1, "{run:?}");
}

#[tokio::test]
async fn a_rotated_secret_reaches_every_hook_with_resend_secrets() {
    let w = world().await;
    assert_eq!(w.regwarden_env(&["hooks", "sync"], SECRETS).await.code, 0);
    // The new signing token first, the old one still accepted while the hooks change.
    let new = "whsec_bmV3LXJlZ3dhcmRlbi1zaWduaW5nLWtleS0zMmIhISE=";
    let both = format!("{new},{SIGNING_TOKEN}");
    let env = [
        ("REGWARDEN_WEBHOOK_SIGNING_TOKEN", both.as_str()),
        ("REGWARDEN_WEBHOOK_SECRET", LEGACY_SECRET),
    ];

    // GitLab shows a secret present, not which: a plain sync cannot tell.
    let plain = w.regwarden_env(&["hooks", "sync"], &env).await;
    assert_eq!(plain.code, 0, "{plain:?}");
    assert_eq!(
        our_hook(&w, true).signing_token.as_deref(),
        Some(SIGNING_TOKEN)
    );

    let resend = w
        .regwarden_env(&["hooks", "sync", "--resend-secrets"], &env)
        .await;

    assert_eq!(resend.code, 0, "{resend:?}");
    resend.assert_never_shows(new);
    for hook in [our_hook(&w, true), our_hook(&w, false)] {
        assert_eq!(hook.signing_token.as_deref(), Some(new));
    }
}

#[tokio::test]
async fn a_secret_gitlab_echoes_in_an_error_never_reaches_the_output() {
    let w = world().await;
    let route = "POST /api/v4/projects/{id}/hooks";
    // A 500 first (retried, and logged), then a long refusal with the secret across the
    // point where a message is cut.
    w.gitlab.fail(
        route,
        crate::support::faults::Fault::Says(500, format!("boom {SIGNING_TOKEN} {LEGACY_SECRET}")),
        1,
    );
    w.gitlab.fail(
        route,
        crate::support::faults::Fault::Says(422, format!("{} {SIGNING_TOKEN}", "x".repeat(280))),
        1,
    );

    let run = w
        .regwarden_env(
            &["hooks", "sync"],
            &[SECRETS[0], SECRETS[1], ("RUST_LOG", "debug")],
        )
        .await;

    assert_eq!(run.code, 1, "{run:?}");
    for secret in [SIGNING_TOKEN, LEGACY_SECRET] {
        let prefix = &secret[..12];
        assert!(
            !run.stdout.contains(prefix) && !run.stderr.contains(prefix),
            "{run:?}"
        );
    }
    assert!(run.stdout.contains("[REDACTED]"), "{}", run.stdout);
}

#[tokio::test]
async fn of_duplicates_the_hook_gitlab_still_sends_to_is_kept() {
    let w = world().await;
    assert_eq!(w.regwarden_env(&["hooks", "sync"], SECRETS).await.code, 0);
    let disabled = our_hook(&w, true);
    w.gitlab.disable_hook(disabled.id, true);
    // A person made a fresh hook beside the disabled one.
    let fresh = w.gitlab.add_hook(PROJECT, HOOK_URL);

    let dry = w
        .regwarden_env(&["hooks", "sync", "--dry-run"], SECRETS)
        .await;
    assert!(
        dry.stdout
            .contains(&format!("duplicate hooks {} would be removed", disabled.id)),
        "{}",
        dry.stdout
    );
    assert!(w.gitlab.hooks().iter().any(|h| h.id == disabled.id));

    let run = w.regwarden_env(&["hooks", "sync"], SECRETS).await;

    assert_eq!(run.code, 0, "{run:?}");
    assert!(w.gitlab.hooks().iter().any(|h| h.id == fresh));
    assert!(!w.gitlab.hooks().iter().any(|h| h.id == disabled.id));
}

#[tokio::test]
async fn a_signing_token_gitlab_would_refuse_is_named_before_any_request() {
    let w = world().await;
    // 16 bytes: enough for the server, not what GitLab takes for a hook (32).
    let short = "whsec_cmVnd2FyZGVuLTE2Ynl0ZQ==";
    let run = w
        .regwarden_env(
            &["hooks", "sync"],
            &[("REGWARDEN_WEBHOOK_SIGNING_TOKEN", short)],
        )
        .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("encodes 16 bytes"), "{}", run.stderr);
    assert_eq!(writes(&w), 0);
    run.assert_never_shows(short);
}
