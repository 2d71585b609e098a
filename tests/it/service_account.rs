//! `credential = "service_account"`: regwarden mints personal access tokens of a GitLab
//! service account (creating the account and its membership when told to), checks them
//! against the real registry (whose realm grants a service account's token what its role
//! allows), switches Qovery, and deletes the previous token after the grace period, never
//! with GitLab's rotate. And the same invariants as for deploy tokens: crash-safe at every
//! step.

use std::time::Duration;

use crate::support::gitlab::AccessToken;
use crate::support::gitlab::accounts::{AccountHome, Member};
use crate::support::world::{PROJECT, Settings, World};

const ACCOUNT: &str = "regwarden-pull";

fn settings(extra: &str, grace: &'static str) -> Settings {
    Settings {
        grace_period: grace,
        extra: format!(
            "credential = \"service_account\"\nservice_account = \"{ACCOUNT}\"\n{extra}"
        ),
        ..Settings::default()
    }
}

/// The service account's id.
fn account(w: &World) -> u64 {
    w.gitlab
        .service_accounts()
        .into_iter()
        .find(|a| a.username == ACCOUNT)
        .expect("the service account exists")
        .id
}

/// The account's active personal access tokens that regwarden made for binding `api`.
fn active_pats(w: &World) -> Vec<AccessToken> {
    w.gitlab
        .account_tokens()
        .into_iter()
        .filter(|t| t.active() && t.name.starts_with("regwarden-api-"))
        .collect()
}

/// The token Qovery holds, found by the password it was given.
fn held_pat(w: &World) -> Option<AccessToken> {
    let password = w.qovery_registry()?.password?;
    w.gitlab
        .account_tokens()
        .into_iter()
        .find(|t| t.token == password)
}

/// Qovery holds an active token of the account under the account's username, the marker
/// names it, and it pulls from the real registry.
async fn assert_converged(w: &World) -> AccessToken {
    let held = held_pat(w).expect("Qovery holds one of the account's tokens");
    assert!(held.active(), "{held:?}");
    let registry = w.qovery_registry().unwrap();
    assert_eq!(registry.username.as_deref(), Some(ACCOUNT));
    let marker = regwarden::marker::Marker::find(&registry.description).expect("a marker");
    assert_eq!(marker.token_id, held.id);
    assert!(
        w.qovery_can_pull().await,
        "the credential Qovery holds pulls"
    );
    held
}

#[tokio::test]
async fn a_service_account_is_created_made_a_reporter_and_its_tokens_rotated_with_a_grace_period() {
    let w = World::with(settings("create_service_account = true\n", "2s")).await;

    let first = w.reconcile(&[]).await;
    assert_eq!(first.code, 0, "{first:?}");
    let user = account(&w);
    let created = w.gitlab.service_accounts();
    assert_eq!(
        created[0].home,
        w.gitlab.group_home("acme"),
        "a group service account of the project's top-level group"
    );
    assert_eq!(
        w.gitlab.members(),
        [Member {
            user_id: user,
            source: w.gitlab.project_owner(PROJECT),
            access_level: 20,
        }],
        "the least role that pulls"
    );
    let one = assert_converged(&w).await;
    assert_eq!(one.scopes, ["read_registry"]);
    first.assert_never_shows(&one.token);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(w.reconcile(&["--force"]).await.code, 0);
    let two = assert_converged(&w).await;
    assert_ne!(two.id, one.id);
    assert_eq!(
        active_pats(&w).len(),
        2,
        "the previous token lives out its grace"
    );

    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let active = active_pats(&w);
    assert_eq!(
        active.iter().map(|t| t.id).collect::<Vec<_>>(),
        [two.id],
        "the previous token deleted once its grace was over"
    );
    assert!(
        w.gitlab
            .account_tokens()
            .iter()
            .all(|t| t.rotated_to.is_none()),
        "create-new + delete-old, never GitLab's rotate"
    );
    assert!(w.gitlab.deploy_tokens().is_empty());
    assert_eq!(
        w.gitlab.service_accounts().len(),
        1,
        "one account, made once"
    );
}

#[tokio::test]
async fn an_existing_account_gets_the_role_it_lacks_and_keeps_a_higher_one() {
    let w = World::with(settings(
        "scopes = [\"read_registry\", \"write_registry\"]\n",
        "1h",
    ))
    .await;
    let user = w
        .gitlab
        .add_service_account(w.gitlab.group_home("acme"), ACCOUNT);
    // A Reporter can pull but not push: write_registry needs Developer.
    w.gitlab
        .add_member(user, w.gitlab.project_owner(PROJECT), 20);

    assert_eq!(w.reconcile(&[]).await.code, 0);
    assert_converged(&w).await;
    assert_eq!(
        w.gitlab.members()[0].access_level,
        30,
        "raised to Developer, the least role that pushes"
    );

    // An account that is Maintainer through the group is left as it is.
    let w = World::with(settings("", "1h")).await;
    let user = w
        .gitlab
        .add_service_account(w.gitlab.group_home("acme"), ACCOUNT);
    w.gitlab.add_member(user, w.gitlab.group_owner("acme"), 40);
    assert_eq!(w.reconcile(&[]).await.code, 0);
    assert_converged(&w).await;
    assert_eq!(w.gitlab.members().len(), 1, "no membership added");
}

#[tokio::test]
async fn a_role_that_cannot_be_granted_stops_the_rotation_before_any_token_is_minted() {
    // The realm grants a service account's token what its role allows, nothing more
    // (`check::a_service_account_token_reaches_a_registry_through_its_role_only`): without
    // the role, no token is worth minting.
    let w = World::with(settings("", "1h")).await;
    w.gitlab
        .add_service_account(w.gitlab.group_home("acme"), ACCOUNT);
    w.gitlab.fail(
        "POST /api/v4/projects/{id}/members",
        crate::support::faults::Fault::Status(403, None),
        10,
    );

    let run = w.reconcile(&[]).await;

    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("(403)"), "{}", run.stdout);
    assert!(w.qovery_registry().is_none(), "Qovery never saw a token");
    assert!(
        active_pats(&w).is_empty(),
        "no token was minted without a role"
    );
}

#[tokio::test]
async fn a_missing_service_account_is_named_with_what_to_do() {
    let w = World::with(settings("", "1h")).await;

    let run = w.reconcile(&["--output", "json"]).await;

    assert_eq!(run.code, 1, "{run:?}");
    let error = run.json()["bindings"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains(
            "no service account \"regwarden-pull\" in group acme: create it in GitLab, or set create_service_account = true"
        ),
        "{error}"
    );
    assert!(w.qovery_registry().is_none());
    assert!(
        w.gitlab.service_accounts().is_empty(),
        "not created unasked"
    );
}

#[tokio::test]
async fn a_project_service_account_lives_in_the_project() {
    let w = World::with(settings(
        "service_account_home = \"project\"\ncreate_service_account = true\n",
        "1h",
    ))
    .await;

    assert_eq!(w.reconcile(&[]).await.code, 0);

    assert_eq!(
        w.gitlab.service_accounts()[0].home,
        w.gitlab.project_home(PROJECT)
    );
    assert_converged(&w).await;
}

#[tokio::test]
async fn an_instance_service_account_gets_admin_minted_tokens() {
    let w = World::with(settings(
        "service_account_home = \"instance\"\ncreate_service_account = true\n",
        "0s",
    ))
    .await;

    assert_eq!(w.reconcile(&[]).await.code, 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(w.reconcile(&["--force"]).await.code, 0);

    assert_eq!(w.gitlab.service_accounts()[0].home, AccountHome::Instance);
    let held = assert_converged(&w).await;
    assert_eq!(
        active_pats(&w).iter().map(|t| t.id).collect::<Vec<_>>(),
        [held.id],
        "grace 0s: the previous token deleted in the same pass"
    );
    assert!(
        w.gitlab
            .calls("POST /api/v4/users/{user_id}/personal_access_tokens")
            >= 2
    );
}

/// A pass that dies at `point` of a forced rotation, then at once an ordinary pass: Qovery
/// holds a working token of the account, and every other live one was held before (within
/// its grace period).
#[cfg(feature = "fault-injection")]
async fn crash_then_converge(point: &str) -> World {
    let w = World::with(settings("create_service_account = true\n", "1h")).await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let crashed = w
        .regwarden_env(&["reconcile", "--force"], &[("REGWARDEN_CRASH_AT", point)])
        .await;
    assert_ne!(crashed.code, 0, "the pass died at {point}: {crashed:?}");

    let (code, outcomes) = w.outcomes(&[]).await;
    assert_eq!(code, 0, "{outcomes:?}");
    assert_converged(&w).await;
    let ever_held: std::collections::HashSet<String> =
        w.qovery.received_passwords().into_iter().collect();
    for t in active_pats(&w) {
        assert!(
            ever_held.contains(&t.token),
            "token {} is live but Qovery never held it: an orphan",
            t.id
        );
    }
    w
}

#[cfg(feature = "fault-injection")]
#[tokio::test]
async fn a_crash_at_any_step_of_a_service_account_rotation_converges_on_the_next_pass() {
    for (point, live) in [
        ("after_create", 1),
        ("after_test", 1),
        ("after_switch", 2),
        ("after_finish", 2),
    ] {
        let w = crash_then_converge(point).await;
        assert_eq!(active_pats(&w).len(), live, "after a crash {point}");
    }
}

/// `config check --online`'s finding about the binding's service account.
async fn account_finding(w: &World, env: &[(&str, &str)]) -> (i32, serde_json::Value) {
    let run = w
        .regwarden_env(&["config", "check", "--online", "--output", "json"], env)
        .await;
    let finding = run.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["subject"] == "binding[0].service_account")
        .cloned()
        .unwrap_or_else(|| panic!("no service-account finding: {run:?}"));
    (run.code, finding)
}

#[tokio::test]
async fn config_check_online_says_whether_the_api_token_can_mint_for_the_account() {
    let missing = World::with(settings("", "1h")).await;
    let (code, f) = account_finding(&missing, &[]).await;
    assert_eq!((code, f["status"].as_str()), (1, Some("fail")), "{f}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("create it in GitLab, or set create_service_account = true"),
        "{f}"
    );

    let to_create = World::with(settings("create_service_account = true\n", "1h")).await;
    let (code, f) = account_finding(&to_create, &[]).await;
    assert_eq!((code, f["status"].as_str()), (0, Some("ok")), "{f}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("regwarden creates it at the first rotation"),
        "{f}"
    );

    let existing = World::with(settings("", "1h")).await;
    let user = existing
        .gitlab
        .add_service_account(existing.gitlab.group_home("acme"), ACCOUNT);
    let (code, f) = account_finding(&existing, &[]).await;
    assert_eq!((code, f["status"].as_str()), (0, Some("ok")), "{f}");
    assert!(
        f["message"].as_str().unwrap().contains(&format!(
            "\"regwarden-pull\" (id {user}) in group acme: the API token can list the account and its tokens"
        )),
        "{f}"
    );

    // A project's own access token cannot manage its group's service accounts: it has no role
    // in the group, which GitLab then does not even show it (404).
    let project_token = existing
        .gitlab
        .add_access_token(
            existing.gitlab.project_owner(PROJECT),
            "project-bot",
            &["api"],
        )
        .token;
    let (code, f) = account_finding(&existing, &[("GITLAB_TOKEN", project_token.as_str())]).await;
    assert_eq!((code, f["status"].as_str()), (1, Some("fail")), "{f}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("the API token cannot see group acme or manage its service accounts: it needs the Owner role there"),
        "{f}"
    );
}

#[tokio::test]
async fn the_ci_rotate_job_keeps_a_service_account_token_alive() {
    let w = World::start().await;
    let registry = "gitlab-acme-api-ci";

    let nameless = w
        .ci_rotate(registry, &["--credential", "service_account"])
        .await;
    let job = w
        .ci_rotate(
            registry,
            &[
                "--credential",
                "service_account",
                "--service-account",
                ACCOUNT,
                "--create-service-account",
            ],
        )
        .await;

    assert_eq!(nameless.code, 2, "{nameless:?}");
    assert!(
        nameless.stderr.contains("needs --service-account USERNAME"),
        "{}",
        nameless.stderr
    );
    assert_eq!(job.code, 0, "{job:?}");
    let r = w.qovery.registry_named(registry).unwrap();
    assert_eq!(r.username.as_deref(), Some(ACCOUNT));
    let held = w
        .gitlab
        .account_tokens()
        .into_iter()
        .find(|t| Some(&t.token) == r.password.as_ref())
        .expect("Qovery holds a token of the account");
    assert!(held.active() && held.name.ends_with("-ci"), "{held:?}");
    assert!(w.can_pull(registry).await);
    job.assert_never_shows(&held.token);
}

#[tokio::test]
async fn bindings_that_share_an_account_create_it_once_whoever_comes_first() {
    // Three bindings of one top-level group work at once (reconcile.concurrency), each finds
    // no account and sets out to create it: GitLab takes the first, refuses the others
    // (the username is taken), and those use the account the first made.
    let mut extra = String::from("create_service_account = true\n");
    for p in ["web", "worker"] {
        extra.push_str(&format!(
            "\n[[binding]]\nname = \"{p}\"\nproject = \"acme/{p}\"\nqovery_registry = \"gitlab-acme-{p}\"\ncredential = \"service_account\"\nservice_account = \"{ACCOUNT}\"\ncreate_service_account = true\n"
        ));
    }
    let w = World::with(settings(&extra, "1h")).await;
    w.gitlab.add_project("acme/web");
    w.gitlab.add_project("acme/worker");
    // The first creation is answered late: the others find no account meanwhile, and
    // create it themselves.
    w.gitlab.fail(
        "POST /api/v4/groups/{id}/service_accounts",
        crate::support::faults::Fault::Delay(Duration::from_millis(1500)),
        1,
    );

    let (code, outcomes) = w.outcomes(&[]).await;

    assert_eq!(code, 0, "{outcomes:?}");
    assert!(outcomes.values().all(|o| o == "rotated"), "{outcomes:?}");
    assert_eq!(w.gitlab.service_accounts().len(), 1);
    assert_eq!(w.gitlab.members().len(), 3, "a Reporter of each project");
    assert!(
        w.gitlab.calls("POST /api/v4/groups/{id}/service_accounts") >= 2,
        "more than one binding tried; the late ones were told the username is taken"
    );
}

#[tokio::test]
async fn the_inventory_shows_the_accounts_tokens_and_which_one_qovery_holds() {
    let w = World::with(settings("create_service_account = true\n", "1h")).await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let held = held_pat(&w).unwrap();
    let by_hand = w.gitlab.add_account_token(account(&w), &["read_api"]);

    let run = w.regwarden(&["tokens", "--output", "json"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    let json = run.json();
    let account_tokens: Vec<(u64, bool, Option<&str>)> = json["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "service_account_token")
        .map(|t| {
            assert_eq!(t["username"], ACCOUNT);
            (
                t["id"].as_u64().unwrap(),
                t["managed"].as_bool().unwrap(),
                t["held_by"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        account_tokens,
        [
            (held.id, true, Some("gitlab-acme-api")),
            (by_hand.id, false, None)
        ]
    );
    run.assert_never_shows(&held.token);
    run.assert_never_shows(&by_hand.token);
}

#[tokio::test]
async fn a_token_whose_creation_answer_was_lost_is_deleted_before_the_next_try() {
    const CREATE: &str =
        "POST /api/v4/groups/{id}/service_accounts/{user_id}/personal_access_tokens";
    let w = World::with(settings("create_service_account = true\n", "1h")).await;
    // GitLab makes the token, and the answer never arrives.
    w.gitlab
        .fail(CREATE, crate::support::faults::Fault::ApplyThenFail, 1);

    let run = w.reconcile(&[]).await;

    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(w.gitlab.calls(CREATE), 2, "one lost answer, one retry");
    let held = assert_converged(&w).await;
    assert_eq!(
        active_pats(&w).iter().map(|t| t.id).collect::<Vec<_>>(),
        [held.id],
        "the token whose answer was lost was deleted, not left live"
    );
}

#[tokio::test]
async fn a_templated_account_gives_each_binding_an_account_that_reaches_its_project_only() {
    let w = World::with(Settings {
        extra: "credential = \"service_account\"\nservice_account = \"regwarden-{binding}\"\ncreate_service_account = true\n\n[[binding]]\nname = \"web\"\nproject = \"acme/web\"\nqovery_registry = \"gitlab-acme-web\"\ncredential = \"service_account\"\nservice_account = \"regwarden-{binding}\"\ncreate_service_account = true\n".into(),
        ..Settings::default()
    })
    .await;
    w.gitlab.add_project("acme/web");

    let run = w.reconcile(&[]).await;

    assert_eq!(run.code, 0, "{run:?}");
    let mut names: Vec<String> = w
        .gitlab
        .service_accounts()
        .into_iter()
        .map(|a| a.username)
        .collect();
    names.sort();
    assert_eq!(names, ["regwarden-api", "regwarden-web"]);
    // Each account is a member of its own project only: the credential Qovery holds for
    // acme/web cannot pull acme/api.
    let web = w.qovery.registry_named("gitlab-acme-web").unwrap();
    assert_eq!(web.username.as_deref(), Some("regwarden-web"));
    let http = regwarden::outbound::client(Some(&w.ca), Duration::from_secs(5)).unwrap();
    let credential = regwarden::credential::Credential::new(
        web.username.unwrap(),
        secrecy::SecretString::from(web.password.unwrap()),
    );
    let check = regwarden::registry::check(
        &http,
        &reqwest::Url::parse(&w.registry_url).unwrap(),
        PROJECT,
        regwarden::registry::Access::Pull,
        &credential,
    )
    .await;
    assert_eq!(
        check.outcome,
        regwarden::registry::Outcome::NoAccess,
        "{check:?}"
    );
    assert!(w.can_pull("gitlab-acme-api").await);
}
