//! The check covers what Qovery deploys: before a rotation switches a registry, the new
//! credential must pull every image that the Qovery services using that registry deploy from
//! it (`associatedServices`, then each container's or job's image and tag), from the real
//! registry. And Qovery's rate limit ends a pass cleanly.

use crate::support::registry::push_image;
use crate::support::world::{PROJECT, Settings, World};

const ASSOCIATED: &str =
    "GET /organization/{organizationId}/containerRegistry/{containerRegistryId}/associatedServices";

/// Pushes `repository:tag` into the world's registry (the project must exist in GitLab).
async fn push(w: &World, repository: &str, tag: &str) {
    let jwt = w.gitlab.mint_registry_jwt(repository, &["pull", "push"]);
    push_image(&w.registry_url, Some(&w.ca), repository, tag, &jwt).await;
}

/// A world whose Qovery registry (made by a first pass) serves the api container and a
/// migration job whose image lives in another project, acme/tools.
async fn world_serving_two_projects(settings: Settings) -> World {
    let w = World::with(settings).await;
    w.gitlab.add_project("acme/tools");
    push(&w, "acme/tools", "v3").await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let registry = w.qovery_registry().unwrap().id;
    w.qovery.add_service(
        &registry,
        "CONTAINER",
        "api",
        "production",
        &format!("{PROJECT}:v1"),
    );
    w.qovery.add_service(
        &registry,
        "LIFECYCLE",
        "migrate",
        "production",
        "acme/tools:v3",
    );
    // Token names have a one-second grain.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    w
}

#[tokio::test]
async fn a_project_token_for_a_registry_that_serves_another_projects_image_never_reaches_qovery() {
    let w = world_serving_two_projects(Settings::default()).await;
    let held = w.held_token().unwrap();
    let passwords_before = w.qovery.received_passwords().len();

    let run = w.reconcile(&["--force", "--output", "json"]).await;

    assert_eq!(run.code, 1, "{run:?}");
    let error = run.json()["bindings"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("lifecycle job \"migrate\"")
            && error.contains("\"production\"")
            && error.contains("acme/tools:v3"),
        "the failure names the service, its environment and its image: {error}"
    );
    assert_eq!(
        w.qovery.received_passwords().len(),
        passwords_before,
        "Qovery never saw the new token"
    );
    assert_eq!(
        w.held_token().unwrap().id,
        held.id,
        "Qovery keeps the old one"
    );
    assert_eq!(w.active_tokens().len(), 1, "the new token was revoked");
}

#[tokio::test]
async fn a_group_token_that_pulls_every_deployed_image_is_switched() {
    let w = world_serving_two_projects(Settings {
        extra: "\n[[binding]]\nname = \"platform\"\ngroup = \"acme\"\nrepository = \"acme/api\"\nqovery_registry = \"gitlab-acme\"\n".into(),
        ..Settings::default()
    })
    .await;
    let registry = w.qovery.registry_named("gitlab-acme").unwrap().id;
    w.qovery.add_service(
        &registry,
        "CONTAINER",
        "api",
        "production",
        &format!("{PROJECT}:v1"),
    );
    w.qovery
        .add_service(&registry, "CRON", "report", "staging", "acme/tools:v3");

    let run = w
        .reconcile(&["--binding", "platform", "--force", "--output", "json"])
        .await;

    assert_eq!(run.code, 0, "{run:?}");
    let report = &run.json()["bindings"][0];
    assert_eq!(report["outcome"], "rotated", "{report}");
    let checked = report["actions"].to_string();
    assert!(
        checked.contains("acme/api:v1") && checked.contains("acme/tools:v3"),
        "{checked}"
    );
    assert_eq!(w.qovery.calls(ASSOCIATED), 1, "the services were read once");
}

#[tokio::test]
async fn a_dry_run_lists_the_images_a_rotation_would_check() {
    let w = world_serving_two_projects(Settings::default()).await;

    let run = w
        .reconcile(&["--dry-run", "--force", "--output", "json"])
        .await;

    assert_eq!(run.code, 0, "{run:?}");
    let actions = run.json()["bindings"][0]["actions"].to_string();
    assert!(
        actions.contains("would check the new credential against the images")
            && actions.contains("acme/api:v1 (container \\\"api\\\"")
            && actions.contains("acme/tools:v3 (lifecycle job \\\"migrate\\\""),
        "{actions}"
    );
}

#[tokio::test]
async fn a_steady_pass_reads_no_service() {
    let w = world_serving_two_projects(Settings::default()).await;

    assert_eq!(w.reconcile(&[]).await.code, 0);

    assert_eq!(w.qovery.calls(ASSOCIATED), 0);
}

#[tokio::test]
async fn a_deployed_tag_the_registry_lacks_is_noted_and_does_not_block_the_rotation() {
    let w = World::start().await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let registry = w.qovery_registry().unwrap().id;
    w.qovery.add_service(
        &registry,
        "CONTAINER",
        "api",
        "production",
        &format!("{PROJECT}:gone"),
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let run = w.reconcile(&["--force", "--output", "json"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    let actions = run.json()["bindings"][0]["actions"].to_string();
    assert!(
        actions.contains("acme/api:gone, which the registry does not hold"),
        "{actions}"
    );
    w.assert_converged().await;
}

#[tokio::test]
async fn a_pass_that_meets_qoverys_rate_limit_stops_cleanly_and_the_next_goes_on() {
    let bindings: String = (1..=4)
        .map(|i| {
            format!(
                "\n[[binding]]\nname = \"svc{i}\"\nproject = \"acme/svc{i}\"\nqovery_registry = \"gitlab-acme-svc{i}\"\n"
            )
        })
        .collect();
    let w = World::with(Settings {
        extra: bindings,
        reconcile: "concurrency = 1",
        ..Settings::default()
    })
    .await;
    for i in 1..=4 {
        w.gitlab.add_project(&format!("acme/svc{i}"));
    }
    // The quota runs out after the list and two registries' worth of calls.
    w.qovery.limit_requests(Some(5));

    let first = w.reconcile(&["--output", "json"]).await;

    assert_eq!(first.code, 1, "{first:?}");
    let outcomes: Vec<(String, String, String)> = first.json()["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["binding"].as_str().unwrap().to_string(),
                b["outcome"].as_str().unwrap().to_string(),
                b["error"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let rotated = outcomes.iter().filter(|o| o.1 == "rotated").count();
    assert!((1..5).contains(&rotated), "{outcomes:?}");
    for (_, outcome, error) in outcomes.iter().filter(|o| o.1 != "rotated") {
        assert_eq!(outcome, "failed");
        assert!(error.contains("rate limiting regwarden (429)"), "{error}");
    }
    let calls_after_limit = w.qovery.faults.lock().unwrap().total_calls();
    assert!(
        calls_after_limit <= 5 + 1,
        "once Qovery said 429 for an hour, no further request was sent: {calls_after_limit}"
    );
    // No token is left that Qovery never held.
    w.gitlab
        .deploy_tokens()
        .iter()
        .filter(|t| t.active())
        .for_each(|t| {
            assert!(
                w.qovery.received_passwords().contains(&t.token),
                "token {} is an orphan",
                t.id
            )
        });

    // An hour later (the quota is back), the next pass does the rest.
    w.qovery.limit_requests(None);
    let next = w.reconcile(&["--output", "json"]).await;
    assert_eq!(next.code, 0, "{next:?}");
    assert_eq!(w.qovery.registries().len(), 5);
}
