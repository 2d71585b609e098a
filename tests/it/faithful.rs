//! What real GitLab does that regwarden must expect, each case against the fake GitLab that
//! now behaves as GitLab's own source says (`docs/reference/gitlab.md` §9): projects shared
//! into a group, projects without a registry, bot users that may not create access tokens, group
//! deploy-token expiry payloads, project ids that are not group ids, user namespaces, revoking a
//! revoked access token, self-rotate status codes, a stable walk of a group, and the lifetime
//! limit in the instance's time zone.

use std::time::Duration;

use chrono::{Timelike, Utc};

use crate::support::faults::Fault;
use crate::support::gitlab::RegistryAccess;
use crate::support::serving::signed;
use crate::support::world::{PROJECT, Settings, World};

const AUTO_BIND: &str =
    "\n[[auto_bind]]\ngroup = \"acme\"\nqovery_registry = \"gitlab-{project_path_slug}\"\n";

#[tokio::test]
async fn auto_bind_binds_only_its_groups_own_projects_with_a_registry() {
    let w = World::with(Settings {
        extra: format!(
            "{AUTO_BIND}credential = \"service_account\"\nservice_account = \"regwarden-pull\"\ncreate_service_account = true\n"
        ),
        ..Settings::default()
    })
    .await;
    w.gitlab.add_project("acme/web");
    // Another namespace's project, shared into acme: GitLab lists it under acme's projects
    // unless with_shared=false.
    w.gitlab.add_project("partner/tool");
    w.gitlab.share_project("partner/tool", "acme");
    // A project of acme whose registry is disabled: GitLab still shows an image prefix.
    w.gitlab.add_project("acme/docs");
    w.gitlab
        .set_registry_access("acme/docs", RegistryAccess::Disabled);

    let (code, outcomes) = w.outcomes(&[]).await;

    assert_eq!(code, 0, "{outcomes:?}");
    assert_eq!(
        outcomes,
        [("acme-web", "rotated"), ("api", "rotated")]
            .map(|(b, o)| (b.to_string(), o.to_string()))
            .into(),
        "neither the shared project nor the one without a registry is bound"
    );
    let names: Vec<String> = w.qovery.registries().into_iter().map(|r| r.name).collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("tool") || n.contains("docs")),
        "{names:?}"
    );
    let foreign = w.gitlab.project_owner("partner/tool");
    let docs = w.gitlab.project_owner("acme/docs");
    assert!(
        w.gitlab
            .members()
            .iter()
            .all(|m| m.source != foreign && m.source != docs),
        "no membership in either: {:?}",
        w.gitlab.members()
    );
    assert!(
        w.gitlab
            .deploy_tokens()
            .iter()
            .all(|t| t.owner != foreign && t.owner != docs),
        "no token on either"
    );
    assert!(
        w.gitlab
            .account_tokens()
            .iter()
            .all(|t| !t.name.contains("tool") && !t.name.contains("docs")),
        "no service-account token for either"
    );
}

#[tokio::test]
async fn a_bound_project_without_a_registry_gets_no_token_and_the_setting_is_named() {
    let w = World::start().await;
    w.gitlab
        .set_registry_access(PROJECT, RegistryAccess::Disabled);

    let run = w.reconcile(&["--output", "json"]).await;

    assert_eq!(run.code, 1, "{run:?}");
    let error = run.json()["bindings"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("has its container registry disabled")
            && error.contains("Container registry"),
        "{error}"
    );
    assert!(w.gitlab.deploy_tokens().is_empty(), "no token was made");
    assert!(w.qovery_registry().is_none());
}

#[tokio::test]
async fn a_project_access_token_as_api_token_cannot_mint_access_tokens_and_config_check_says_so() {
    let w = World::with(Settings {
        extra: "credential = \"access_token\"\n".into(),
        ..Settings::default()
    })
    .await;
    let bot = w
        .gitlab
        .add_access_token(w.gitlab.project_owner(PROJECT), "ci-bot", &["api"])
        .token;
    let env = [("GITLAB_TOKEN", bot.as_str())];

    let check = w
        .regwarden_env(&["config", "check", "--online", "--output", "json"], &env)
        .await;
    let pass = w
        .regwarden_env(&["reconcile", "--output", "json"], &env)
        .await;

    assert_eq!(check.code, 1, "{check:?}");
    let gitlab = check.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["subject"] == "gitlab")
        .cloned()
        .unwrap();
    assert_eq!(gitlab["status"], "fail", "{gitlab}");
    let message = gitlab["message"].as_str().unwrap();
    assert!(
        message.contains("project or group access token")
            && message.contains("personal access token")
            && message.contains("binding[0]"),
        "{message}"
    );
    // The pass says the same when GitLab refuses, and no token exists anywhere.
    assert_eq!(pass.code, 1, "{pass:?}");
    let error = pass.json()["bindings"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("User does not have permission to create project access token")
            && error.contains("personal access token"),
        "{error}"
    );
    assert!(w.qovery_registry().is_none());
}

#[tokio::test]
async fn own_token_kind_project_with_access_token_bindings_is_a_configuration_error() {
    let w = World::with(Settings {
        gitlab: "own_token_kind = \"project\"\nown_token_namespace = \"acme/api\"\n".into(),
        extra: "credential = \"access_token\"\n".into(),
        ..Settings::default()
    })
    .await;

    let run = w.regwarden(&["config", "check"]).await;

    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("gitlab.own_token_kind")
            && run.stderr.contains("personal access token"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_group_deploy_token_expiry_webhook_rotates_its_group_binding() {
    let (w, s) = World::served(
        Settings {
            extra: "\n[[binding]]\nname = \"platform\"\ngroup = \"acme\"\nrepository = \"acme/api\"\nqovery_registry = \"gitlab-acme\"\n".into(),
            ..Settings::default()
        },
        "reconcile_interval = \"1h\"",
        &["--job-lock", "2s"],
    )
    .await;
    let held = |name: &str| {
        let password = w.qovery.registry_named(name)?.password?;
        w.gitlab
            .deploy_tokens()
            .into_iter()
            .find(|t| t.token == password)
    };
    let group_token = held("gitlab-acme").expect("the group binding holds a token");
    let project_token = held("gitlab-acme-api").unwrap();
    let group_id = w.gitlab.add_group("acme");
    // GitLab's payload for a group deploy token: `group`, no `project`
    // (tests/fixtures/gitlab-webhooks/resource_deploy_token_group.json).
    let body = serde_json::json!({
        "object_kind": "deploy_token",
        "group": {"group_name": "acme", "group_path": "acme", "group_id": group_id, "full_path": "acme"},
        "object_attributes": {
            "id": group_token.id, "name": group_token.name, "username": group_token.username,
            "expires_at": "2026-12-10 00:00:00 UTC", "created_at": "2026-11-01 00:00:00 UTC",
            "revoked": false, "deploy_token_type": "group_type"
        },
        "event_name": "expiring_deploy_token",
        "interval": "7d"
    })
    .to_string();

    let (code, answer) = s
        .post_webhook(signed("grp-1", &body, "Resource Deploy Token Hook"), &body)
        .await;

    assert_eq!((code, answer.as_str()), (202, r#"{"status":"accepted"}"#));
    w.eventually("the group binding's rotation", || {
        held("gitlab-acme").is_some_and(|t| t.id != group_token.id)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        w.gitlab.calls("POST /api/v4/groups/{id}/deploy_tokens"),
        2,
        "one rotation of the group binding after the first pass"
    );
    assert_eq!(
        held("gitlab-acme-api").unwrap().id,
        project_token.id,
        "the project binding was left alone"
    );
    s.terminate().await;
}

#[tokio::test]
async fn a_binding_by_project_id_finds_its_service_account_in_the_projects_top_level_group() {
    let w = World::with(Settings {
        extra: "credential = \"service_account\"\nservice_account = \"regwarden-pull\"\ncreate_service_account = true\n".into(),
        ..Settings::default()
    })
    .await;
    // Project ids and group ids are separate sequences: group 2 is zeta, project 2 acme/web.
    let zeta = w.gitlab.add_group("zeta");
    let id = w.gitlab.add_project("acme/web");
    assert_eq!(zeta, id, "a group and a project with one id");
    let config = std::fs::read_to_string(&w.config).unwrap().replace(
        &format!("project = \"{PROJECT}\""),
        &format!("project = \"{id}\"\nrepository = \"acme/web\""),
    );
    std::fs::write(&w.config, config).unwrap();

    let run = w.reconcile(&["--output", "json"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    let accounts = w.gitlab.service_accounts();
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!(
        accounts[0].home,
        w.gitlab.group_home("acme"),
        "the account lives in acme, not in the group whose id is the project's"
    );
}

#[tokio::test]
async fn a_project_in_a_user_namespace_has_no_group_service_account_and_says_so() {
    let w = World::with(Settings {
        extra: "credential = \"service_account\"\nservice_account = \"regwarden-pull\"\ncreate_service_account = true\n".into(),
        ..Settings::default()
    })
    .await;
    w.gitlab.add_user_project("alice/tool");
    let config = std::fs::read_to_string(&w.config).unwrap().replace(
        &format!("project = \"{PROJECT}\""),
        "project = \"alice/tool\"",
    );
    std::fs::write(&w.config, config).unwrap();

    let run = w.reconcile(&["--output", "json"]).await;

    assert_eq!(run.code, 1, "{run:?}");
    let error = run.json()["bindings"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("personal namespace") && error.contains("service_account_home"),
        "{error}"
    );
    assert!(w.gitlab.service_accounts().is_empty());
}

#[tokio::test]
async fn revoking_an_access_token_whose_bot_user_is_being_deleted_counts_as_revoked() {
    let w = World::with(Settings {
        grace_period: "0s",
        extra: "credential = \"access_token\"\n".into(),
        ..Settings::default()
    })
    .await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let first = w.qovery_registry().unwrap().password.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The revoke of the previous token is carried out but its answer is lost: the retry finds
    // the token revoked and its bot user being deleted (400 "Failed to find bot user").
    w.gitlab.fail(
        "DELETE /api/v4/projects/{id}/access_tokens/{token_id}",
        Fault::ApplyThenDrop,
        1,
    );

    let run = w.reconcile(&["--force", "--output", "json"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    let report = &run.json()["bindings"][0];
    assert_eq!(report["outcome"], "rotated", "{report}");
    let actions = report["actions"].to_string();
    assert!(!actions.contains("cannot revoke"), "{actions}");
    assert_eq!(
        w.gitlab
            .calls("DELETE /api/v4/projects/{id}/access_tokens/{token_id}"),
        2,
        "the lost answer was retried once"
    );
    assert!(!w.gitlab.token_by_secret(&first).unwrap().active());
    w.gitlab.finish_bot_deletions();
    assert!(
        w.gitlab.token_by_secret(&first).is_none(),
        "then it is gone"
    );
    assert_eq!(w.reconcile(&[]).await.code, 0);
}

#[tokio::test]
async fn a_401_from_the_project_self_rotate_names_own_token_namespace() {
    let secrets = tempfile::tempdir().unwrap().keep();
    let file = secrets.join("gitlab-token");
    let w = World::with(Settings {
        gitlab: format!(
            "token_file = \"{}\"\nrotate_own_token = true\nown_token_kind = \"project\"\nown_token_namespace = \"acme/web\"\n",
            file.display()
        ),
        ..Settings::default()
    })
    .await;
    w.gitlab.add_project("acme/web");
    // The API token is acme/api's access token, but the configuration says acme/web's.
    let token = w
        .gitlab
        .add_access_token(w.gitlab.project_owner(PROJECT), "regwarden-bot", &["api"])
        .token;
    std::fs::write(&file, format!("{token}\n")).unwrap();
    w.gitlab
        .set_token_expiry(&token, Utc::now().date_naive() + chrono::Days::new(3));

    let run = w.reconcile(&[]).await;

    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        w.gitlab
            .calls("POST /api/v4/projects/{id}/access_tokens/self/rotate"),
        1
    );
    assert!(
        run.stderr.contains("not an access token of that project")
            && run.stderr.contains("own_token_namespace")
            && !run.stderr.contains("put a new API token in the file"),
        "{}",
        run.stderr
    );
    assert!(
        w.gitlab.token_by_secret(&token).unwrap().active(),
        "the token still works"
    );
}

#[tokio::test]
async fn a_project_created_while_auto_bind_walks_its_group_is_bound_in_that_pass() {
    let w = World::with(Settings {
        extra: AUTO_BIND.into(),
        ..Settings::default()
    })
    .await;
    for i in 0..120 {
        w.gitlab.add_project(&format!("acme/svc-{i:03}"));
    }
    // Between the first page and the second, someone creates a project.
    w.gitlab.after_first_page_of_group_projects(|gitlab| {
        gitlab.add_project("acme/late");
    });

    let run = w.reconcile(&["--dry-run", "--output", "json"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    let bindings: Vec<String> = run.json()["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["binding"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(bindings.len(), 122, "api, 120 services and the late one");
    assert!(bindings.contains(&"acme-late".to_string()), "{bindings:?}");
}

#[tokio::test]
async fn a_full_years_lifetime_is_kept_inside_the_limit_of_an_instance_west_of_utc() {
    let w = World::with(Settings {
        extra: "credential = \"access_token\"\nlifetime = \"365d\"\nrotate_before = \"30d\"\n"
            .into(),
        ..Settings::default()
    })
    .await;
    // The instance's day is still yesterday (UTC): `Date.current` + 365 is UTC's today + 364.
    w.gitlab
        .set_utc_offset_hours(-(Utc::now().hour() as i64 + 1));

    let run = w.reconcile(&["--output", "json"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    let held = w.qovery_registry().unwrap().password.unwrap();
    let token = w.gitlab.token_by_secret(&held).unwrap();
    assert_eq!(
        token.expires_at,
        Some(Utc::now().date_naive() + chrono::Days::new(364))
    );
}

#[tokio::test]
async fn a_lifetime_above_the_instances_maximum_names_the_setting_to_lower() {
    let w = World::with(Settings {
        extra: "credential = \"access_token\"\nlifetime = \"90d\"\n".into(),
        ..Settings::default()
    })
    .await;
    // An administrator set a 30-day maximum.
    w.gitlab.set_max_token_lifetime(30);

    let run = w.reconcile(&["--output", "json"]).await;

    assert_eq!(run.code, 1, "{run:?}");
    let error = run.json()["bindings"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("Expires at must be before") && error.contains("lower `lifetime`"),
        "{error}"
    );
}
