//! The right project: a binding is pinned to a GitLab id, follows its project across renames
//! and transfers, never hands a registry a credential of a newcomer at an old path, never lets
//! two projects share one name or registry, reports a registry nobody renews any more, and
//! believes neither a marker the username contradicts nor a registry that lets anyone in.

use crate::support::faults::Fault;
use crate::support::world::{ORG, PROJECT, QOVERY_REGISTRY, Settings, World};

const EDIT_REGISTRY: &str =
    "PUT /organization/{organizationId}/containerRegistry/{containerRegistryId}";

const AUTO_BIND: &str =
    "\n[[auto_bind]]\ngroup = \"acme\"\nqovery_registry = \"gitlab-{project_path_slug}\"\n";

/// The marker line of a Qovery registry.
fn marker(w: &World, registry: &str) -> regwarden::marker::Marker {
    let r = w.qovery.registry_named(registry).expect("the registry");
    regwarden::marker::Marker::find(&r.description).expect("a marker")
}

async fn pause_a_second() {
    // Token names have a one-second grain.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
}

#[tokio::test]
async fn the_marker_pins_the_project_id_and_the_path_it_was_checked_at() {
    let w = World::start().await;

    assert_eq!(w.reconcile(&[]).await.code, 0);

    let m = marker(&w, QOVERY_REGISTRY);
    assert_eq!(
        m.pin,
        Some(regwarden::marker::Pin::Project(
            w.gitlab.project_id(PROJECT)
        ))
    );
    assert_eq!(m.path.as_deref(), Some(PROJECT));
}

#[tokio::test]
async fn a_newcomer_at_a_renamed_projects_old_path_blocks_the_binding_and_gets_nothing() {
    let w = World::start().await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let held = w.held_token().unwrap();
    let original = w.gitlab.project_id(PROJECT);
    // acme/api is renamed, and someone else creates a new acme/api.
    w.gitlab.move_project(PROJECT, "acme/api-legacy");
    let newcomer = w.gitlab.add_project(PROJECT);
    let tokens_before = w.gitlab.deploy_tokens().len();
    pause_a_second().await;

    let run = w.reconcile(&["--output", "json"]).await;

    assert_eq!(run.code, 1, "{run:?}");
    let report = &run.json()["bindings"][0];
    assert_eq!(report["outcome"], "blocked", "{report}");
    let why = report["error"].as_str().unwrap();
    for part in [
        format!("project {newcomer}"),
        format!("project {original}"),
        "acme/api-legacy".to_string(),
        PROJECT.to_string(),
    ] {
        assert!(why.contains(&part), "{part:?} is not in: {why}");
    }
    assert_eq!(
        w.gitlab.deploy_tokens().len(),
        tokens_before,
        "nothing created, nothing revoked"
    );
    assert!(
        w.gitlab
            .deploy_tokens()
            .iter()
            .all(|t| t.owner != w.gitlab.project_owner(PROJECT)),
        "no token of the newcomer"
    );
    assert_eq!(w.held_token().unwrap().id, held.id, "Qovery kept its token");
    assert!(w.held_token().unwrap().active());
}

#[tokio::test]
async fn a_renamed_project_keeps_its_registry_renewed_with_tokens_of_the_same_id() {
    let w = World::start().await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let id = w.gitlab.project_id(PROJECT);
    w.gitlab.move_project(PROJECT, "acme/api-v2");
    pause_a_second().await;

    // The path redirects to the renamed project: the binding follows it.
    let run = w.reconcile(&["--force", "--output", "json"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["bindings"][0]["outcome"], "rotated");
    let m = marker(&w, QOVERY_REGISTRY);
    assert_eq!(m.pin, Some(regwarden::marker::Pin::Project(id)));
    assert_eq!(
        m.path.as_deref(),
        Some("acme/api-v2"),
        "checked at its path now"
    );
    let password = w.qovery_registry().unwrap().password.unwrap();
    let token = w
        .gitlab
        .deploy_tokens()
        .into_iter()
        .find(|t| t.token == password)
        .unwrap();
    assert_eq!(token.owner, w.gitlab.project_owner("acme/api-v2"));
}

#[tokio::test]
async fn an_auto_bound_project_renamed_keeps_its_registry_and_no_second_one_appears() {
    let w = World::with(Settings {
        extra: AUTO_BIND.into(),
        ..Settings::default()
    })
    .await;
    w.gitlab.add_project("acme/web");
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let id = w.gitlab.project_id("acme/web");
    w.gitlab.move_project("acme/web", "acme/storefront");
    pause_a_second().await;

    let (code, outcomes) = w.outcomes(&["--force"]).await;

    assert_eq!(code, 0, "{outcomes:?}");
    assert_eq!(
        outcomes.get("acme-web").map(String::as_str),
        Some("rotated"),
        "the binding keeps its first name: {outcomes:?}"
    );
    let mut names: Vec<String> = w.qovery.registries().into_iter().map(|r| r.name).collect();
    names.sort();
    assert_eq!(
        names,
        ["gitlab-acme-api", "gitlab-acme-web"],
        "no second registry"
    );
    let m = marker(&w, "gitlab-acme-web");
    assert_eq!(m.pin, Some(regwarden::marker::Pin::Project(id)));
    assert_eq!(m.path.as_deref(), Some("acme/storefront"));
}

#[tokio::test]
async fn a_registry_whose_binding_is_gone_is_reported_with_its_tokens_expiry() {
    let w = World::with(Settings {
        extra: AUTO_BIND.into(),
        ..Settings::default()
    })
    .await;
    w.gitlab.add_project("acme/web");
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let expires = marker(&w, "gitlab-acme-web").expires.unwrap();
    // The project goes: no rule makes its binding any more, and its registry stays in Qovery.
    w.gitlab.destroy_project("acme/web");

    let run = w.reconcile(&["--output", "json"]).await;
    let tokens = w.regwarden(&["tokens", "--output", "json"]).await;

    assert_eq!(run.code, 1, "{run:?}");
    let stranded = run.json()["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["outcome"] == "stranded")
        .cloned()
        .expect("a stranded registry");
    assert_eq!(stranded["binding"], "acme-web");
    let why = stranded["error"].as_str().unwrap();
    assert!(
        why.contains("gitlab-acme-web") && why.contains(&expires.to_string()),
        "{why}"
    );
    assert_eq!(tokens.code, 1, "{tokens:?}");
    assert_eq!(tokens.json()["stranded"][0]["registry"], "gitlab-acme-web");
    // Naming one binding is not a survey of them all: nothing is called stranded then.
    let one = w.reconcile(&["--binding", "api", "--output", "json"]).await;
    assert_eq!(one.code, 0, "{one:?}");
}

#[tokio::test]
async fn two_projects_that_slug_alike_are_both_blocked_and_neither_touches_the_registry() {
    let w = World::with(Settings {
        extra: AUTO_BIND.into(),
        ..Settings::default()
    })
    .await;
    w.gitlab.add_project("acme/web-app");
    w.gitlab.add_project("acme/web_app");

    let run = w.reconcile(&["--output", "json"]).await;

    assert_eq!(run.code, 1, "{run:?}");
    let blocked: Vec<serde_json::Value> = run.json()["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["binding"] == "acme-web-app")
        .cloned()
        .collect();
    assert_eq!(blocked.len(), 2, "{blocked:?}");
    for b in &blocked {
        assert_eq!(b["outcome"], "blocked");
        let why = b["error"].as_str().unwrap();
        assert!(
            why.contains("acme/web-app")
                && why.contains("acme/web_app")
                && why.contains("{project_id}"),
            "{why}"
        );
    }
    assert!(w.qovery.registry_named("gitlab-acme-web-app").is_none());
    assert!(
        w.gitlab
            .deploy_tokens()
            .iter()
            .all(|t| t.owner != w.gitlab.project_owner("acme/web-app")
                && t.owner != w.gitlab.project_owner("acme/web_app")),
        "no token for either"
    );
}

#[tokio::test]
async fn a_newcomer_whose_name_collides_with_a_bound_project_takes_nothing_over() {
    // A registry kept for acme/services/web-app, then a Developer creates web_app.
    let w = World::with(Settings {
        extra: AUTO_BIND.into(),
        ..Settings::default()
    })
    .await;
    w.gitlab.add_project("acme/web-app");
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let before = w.qovery.registry_named("gitlab-acme-web-app").unwrap();
    w.gitlab.add_project("acme/web_app");

    let run = w.reconcile(&["--force", "--output", "json"]).await;

    assert_eq!(run.code, 1, "{run:?}");
    let after = w.qovery.registry_named("gitlab-acme-web-app").unwrap();
    assert_eq!(
        after.password, before.password,
        "the registry was not rewritten"
    );
}

#[tokio::test]
async fn a_registry_that_is_not_this_gitlabs_is_never_taken_over() {
    let w = World::start().await;
    w.qovery.add_hand_made_registry(
        ORG,
        QOVERY_REGISTRY,
        "https://quay.io",
        &["robot/app:v1"],
        "robot",
        "quay-robot-password",
    );

    let run = w.reconcile(&["--output", "json"]).await;

    assert_eq!(run.code, 1, "{run:?}");
    let report = &run.json()["bindings"][0];
    assert_eq!(report["outcome"], "blocked");
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("https://quay.io")
    );
    let r = w.qovery_registry().unwrap();
    assert_eq!(r.password.as_deref(), Some("quay-robot-password"));
    assert!(w.gitlab.deploy_tokens().is_empty(), "no token was made");
}

#[tokio::test]
async fn a_marker_edited_to_name_another_token_revokes_nothing_qovery_holds() {
    let w = World::start().await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let first = w.held_token().unwrap();
    pause_a_second().await;
    assert_eq!(w.reconcile(&["--force"]).await.code, 0);
    let held = w.held_token().unwrap();
    assert_ne!(held.id, first.id);
    // Someone with Qovery access edits the marker to name the previous token.
    {
        let mut s = w.qovery.state.lock().unwrap();
        let r = &mut s.registries[0];
        r.description = r.description.replace(
            &format!("token_id={}", held.id),
            &format!("token_id={}", first.id),
        );
    }
    pause_a_second().await;

    let run = w.reconcile(&["--output", "json"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    let report = &run.json()["bindings"][0];
    assert_eq!(report["outcome"], "rotated", "{report}");
    assert_eq!(report["plan"]["rotate"]["why"], "take_over");
    assert!(
        report["actions"].to_string().contains("names token"),
        "the report says why the marker was set aside: {report}"
    );
    let active: Vec<u64> = w.active_tokens().iter().map(|t| t.id).collect();
    assert!(
        active.contains(&held.id),
        "the token Qovery really held keeps its grace period: {active:?}"
    );
    assert_ne!(w.held_token().unwrap().id, held.id);
    w.assert_converged().await;
}

#[tokio::test]
async fn i1_a_registry_that_lets_anyone_in_makes_the_check_inconclusive() {
    let w = World::with(Settings {
        anonymous_registry: true,
        ..Settings::default()
    })
    .await;

    let run = w.reconcile(&["--output", "json"]).await;

    assert_eq!(run.code, 1, "{run:?}");
    let error = run.json()["bindings"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("inconclusive") && error.contains("without asking for credentials"),
        "{error}"
    );
    assert!(w.qovery_registry().is_none(), "Qovery never saw the token");
    assert!(w.active_tokens().is_empty(), "the new token was revoked");
}

#[tokio::test]
async fn a_lost_switch_whose_read_back_shows_the_old_marker_revokes_nothing() {
    let w = World::with(Settings {
        grace_period: "0s",
        ..Settings::default()
    })
    .await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let old = w.held_token().unwrap();
    pause_a_second().await;
    // Every try of the write fails with a 500 that may or may not have been applied; the
    // read-back still shows the previous marker.
    w.qovery.fail(EDIT_REGISTRY, Fault::Status(500, None), 10);

    let run = w.reconcile(&["--force", "--output", "json"]).await;

    assert_eq!(run.code, 1, "{run:?}");
    let report = &run.json()["bindings"][0];
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("may have reached Qovery or not"),
        "{report}"
    );
    let active: Vec<u64> = w.active_tokens().iter().map(|t| t.id).collect();
    assert_eq!(active.len(), 2, "neither token was revoked: {active:?}");
    assert!(active.contains(&old.id));
    assert_eq!(w.held_token().unwrap().id, old.id);

    // The next pass reads the marker again: Qovery never took the new token, which goes.
    w.qovery.faults.lock().unwrap().clear();
    let next = w.reconcile(&[]).await;
    assert_eq!(next.code, 0, "{next:?}");
    w.assert_converged().await;
    w.assert_no_orphans();
}

#[tokio::test]
async fn a_binding_may_name_its_project_by_id() {
    let w = World::start().await;
    let id = w.gitlab.project_id(PROJECT);
    let config = std::fs::read_to_string(&w.config).unwrap().replace(
        &format!("project = \"{PROJECT}\""),
        &format!("project = {id}"),
    );
    std::fs::write(&w.config, config).unwrap();

    let check = w.regwarden(&["config", "check"]).await;
    let run = w.reconcile(&["--output", "json"]).await;

    assert_eq!(check.code, 0, "{check:?}");
    assert_eq!(run.code, 0, "{run:?}");
    let m = marker(&w, QOVERY_REGISTRY);
    assert_eq!(m.pin, Some(regwarden::marker::Pin::Project(id)));
    assert_eq!(
        m.path.as_deref(),
        Some(PROJECT),
        "checked against the project's path"
    );
    w.assert_converged().await;
}

fn system_hook(event: &str, project_id: u64, path: &str) -> String {
    serde_json::json!({
        "created_at": "2026-11-24T07:30:58Z", "updated_at": "2026-11-24T07:38:22Z",
        "event_name": event, "name": path.rsplit('/').next().unwrap(),
        "path": path.rsplit('/').next().unwrap(), "path_with_namespace": path,
        "project_id": project_id, "project_namespace_id": 1, "owner_name": "A",
        "owner_email": "a@example.com", "owners": [], "project_visibility": "private"
    })
    .to_string()
}

#[tokio::test]
async fn a_destroy_event_for_a_project_gitlab_still_has_deletes_nothing() {
    let (w, s) = World::served(Settings::default(), "reconcile_interval = \"1h\"", &[]).await;
    let body = system_hook("project_destroy", w.gitlab.project_id(PROJECT), PROJECT);

    let (code, _) = s
        .post_webhook(
            crate::support::serving::signed("forged", &body, "System Hook"),
            &body,
        )
        .await;

    assert_eq!(code, 202);
    s.until_idle(&w).await;
    assert!(w.qovery_registry().is_some(), "the registry is still there");
    assert!(
        w.server_log()
            .contains("a destroy event for a project GitLab still has"),
        "{}",
        w.server_log()
    );
    s.kill().await;
}

#[tokio::test]
async fn a_destroyed_auto_bound_project_loses_its_unused_registry() {
    let (w, s) = World::served(
        Settings {
            extra: AUTO_BIND.into(),
            ..Settings::default()
        },
        "reconcile_interval = \"1h\"",
        &[],
    )
    .await;
    // The auto-bound project acme/web, rotated by a pass, then destroyed in GitLab.
    w.gitlab.add_project("acme/web");
    // The server's own timer pass may hold the binding's lock: a CLI pass then leaves it.
    for _ in 0..10 {
        assert_eq!(w.reconcile(&[]).await.code, 0);
        if w.qovery.registry_named("gitlab-acme-web").is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(w.qovery.registry_named("gitlab-acme-web").is_some());
    let id = w.gitlab.project_id("acme/web");
    w.gitlab.destroy_project("acme/web");
    let body = system_hook("project_destroy", id, "acme/web");

    let (code, _) = s
        .post_webhook(
            crate::support::serving::signed("destroy-web", &body, "System Hook"),
            &body,
        )
        .await;

    assert_eq!(code, 202);
    w.eventually("the registry's deletion", || {
        w.qovery.registry_named("gitlab-acme-web").is_none()
    })
    .await;
    assert!(w.qovery_registry().is_some(), "the other registry stays");
    s.kill().await;
}

#[tokio::test]
async fn project_events_about_namespaces_nothing_binds_are_dropped_before_any_job() {
    let (w, s) = World::served(Settings::default(), "reconcile_interval = \"1h\"", &[]).await;
    w.gitlab.add_project("elsewhere/tool");
    let reads = || {
        w.gitlab.calls("GET /api/v4/projects/{id}")
            + w.gitlab.calls("GET /api/v4/groups/{id}/projects")
    };
    let before = reads();

    for (n, event) in ["project_create", "project_destroy", "project_rename"]
        .iter()
        .enumerate()
    {
        let mut body: serde_json::Value = serde_json::from_str(&system_hook(
            event,
            w.gitlab.project_id("elsewhere/tool"),
            "elsewhere/tool",
        ))
        .unwrap();
        body["old_path_with_namespace"] = serde_json::json!("elsewhere/old-tool");
        let body = body.to_string();
        let (code, answer) = s
            .post_webhook(
                crate::support::serving::signed(&format!("far-{n}"), &body, "System Hook"),
                &body,
            )
            .await;
        assert_eq!((code, answer.as_str()), (200, r#"{"status":"ignored"}"#));
    }
    // "ignored" is the answer of a delivery recorded without a job.
    assert_eq!(reads(), before, "GitLab was not asked about the project");
    s.kill().await;
}

/// Signing tokens of two scoped keys: one for acme, one for another group.
const ACME_KEY: &str = "whsec_YWNtZS1vbmx5LXNpZ25pbmcta2V5LTMyLWJ5dGVzISE=";
const OTHER_KEY: &str = "whsec_b3RoZXItb25seS1zaWduaW5nLWtleS0zMi1ieXRlcyE=";

#[tokio::test]
async fn a_scoped_webhook_key_is_refused_for_events_about_other_namespaces() {
    let secrets = tempfile::tempdir().unwrap().keep();
    let mut server = String::from("reconcile_interval = \"1h\"\n");
    for (name, key, ns) in [("acme", ACME_KEY, "acme"), ("other", OTHER_KEY, "other")] {
        let file = secrets.join(name);
        std::fs::write(&file, key).unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        server.push_str(&format!(
            "\n[[server.webhook_key]]\nsigning_token_file = \"{}\"\nnamespaces = [\"{ns}\"]\n",
            file.display()
        ));
    }
    let (w, s) = World::served(Settings::default(), &server, &[]).await;
    let held = w.held_token().unwrap();
    let body = w.expiry_payload(held.id, &held.name);
    let signed = crate::support::serving::signed_with;

    let (refused, answer) = s
        .post_webhook(
            signed(OTHER_KEY, "k-1", &body, "Resource Deploy Token Hook"),
            &body,
        )
        .await;
    let (accepted, _) = s
        .post_webhook(
            signed(ACME_KEY, "k-2", &body, "Resource Deploy Token Hook"),
            &body,
        )
        .await;

    assert_eq!(refused, 403, "{answer}");
    assert!(
        answer.contains("does not speak for the namespace"),
        "{answer}"
    );
    assert_eq!(accepted, 202);
    w.eventually("the rotation the acme key asked for", || {
        w.held_token().is_some_and(|t| t.id != held.id)
    })
    .await;
    let (_, metrics) = s.metrics().await;
    assert!(
        metrics
            .contains(r#"regwarden_webhook_verification_failures_total{reason="out_of_scope"} 1"#),
        "{metrics}"
    );
    s.kill().await;
}
