//! Qovery's own view after a switch: regwarden asks Qovery to list an image's tags through the
//! registry it just wrote (`getContainerVersions`) and reports the answer, in the output and
//! the journal. A report, not a gate. The fake Qovery really lists the tags through the real
//! registry with the credential it holds.

use std::time::Duration;

use secrecy::SecretString;

use crate::support::faults::Fault;
use crate::support::registry::push_image;
use crate::support::world::{ORG, PROJECT, QOVERY_REGISTRY, Settings, World};

const IMAGES: &str =
    "GET /organization/{organizationId}/containerRegistry/{containerRegistryId}/images";

fn steps(history: &crate::support::cli::Run) -> Vec<String> {
    history.json()["entries"]
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
        .collect()
}

fn qovery_client(w: &World) -> regwarden::qovery::QoveryClient {
    regwarden::qovery::QoveryClient::new(
        regwarden::outbound::client(None, Duration::from_secs(10)).unwrap(),
        &reqwest::Url::parse(&w.qovery_url).unwrap(),
        SecretString::from(w.qovery_token.clone()),
    )
}

#[tokio::test]
async fn after_a_switch_qovery_lists_the_image_through_the_registry() {
    let w = World::start().await;

    let run = w.reconcile(&["--output", "json"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    let report = &run.json()["bindings"][0];
    assert_eq!(report["outcome"], "rotated");
    let view = &report["qovery_view"];
    assert_eq!(view["ok"], true, "{report}");
    assert_eq!(view["image"], PROJECT);
    assert_eq!(view["tags"], 1, "the world's registry holds acme/api:v1");
    assert!(
        report["actions"]
            .to_string()
            .contains("qovery view: ok (acme/api: 1 tag(s) listed by Qovery)"),
        "{report}"
    );
    let history = w.regwarden(&["history", "--output", "json"]).await;
    assert_eq!(
        steps(&history),
        [
            "finish ok",
            "qovery_view ok",
            "switch ok",
            "test ok",
            "create ok"
        ]
    );
    // A steady pass asks nothing of the kind.
    let calls = w.qovery.calls(IMAGES);
    assert_eq!(w.reconcile(&[]).await.code, 0);
    assert_eq!(w.qovery.calls(IMAGES), calls);
}

#[tokio::test]
async fn the_view_asks_about_an_image_the_registrys_services_deploy() {
    let w = World::with(Settings {
        extra: "\n[[binding]]\nname = \"platform\"\ngroup = \"acme\"\nrepository = \"acme/api\"\nqovery_registry = \"gitlab-acme\"\n".into(),
        ..Settings::default()
    })
    .await;
    w.gitlab.add_project("acme/tools");
    let jwt = w.gitlab.mint_registry_jwt("acme/tools", &["pull", "push"]);
    push_image(&w.registry_url, Some(&w.ca), "acme/tools", "v3", &jwt).await;
    push_image(&w.registry_url, Some(&w.ca), "acme/tools", "v4", &jwt).await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let registry = w.qovery.registry_named("gitlab-acme").unwrap().id;
    w.qovery
        .add_service(&registry, "CRON", "report", "staging", "acme/tools:v3");
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let run = w
        .reconcile(&["--binding", "platform", "--force", "--output", "json"])
        .await;

    assert_eq!(run.code, 0, "{run:?}");
    let view = &run.json()["bindings"][0]["qovery_view"];
    assert_eq!(view["ok"], true, "{view}");
    assert_eq!(view["image"], "acme/tools");
    assert_eq!(view["tags"], 2);
}

#[tokio::test]
async fn a_view_qovery_cannot_give_is_reported_and_does_not_undo_the_switch() {
    let w = World::start().await;
    w.qovery.fail(IMAGES, Fault::Status(500, None), 10);

    let run = w.reconcile(&["--output", "json"]).await;

    assert_eq!(run.code, 0, "a report, not a gate: {run:?}");
    let report = &run.json()["bindings"][0];
    assert_eq!(report["outcome"], "rotated");
    let view = &report["qovery_view"];
    assert_eq!(view["ok"], false, "{report}");
    assert!(view["error"].as_str().unwrap().contains("500"), "{view}");
    assert!(w.qovery_can_pull().await, "Qovery holds the new credential");
    let history = w.regwarden(&["history", "--output", "json"]).await;
    assert!(
        steps(&history).contains(&"qovery_view failed".to_string()),
        "{history:?}"
    );
}

#[tokio::test]
async fn qovery_lists_tags_only_with_a_credential_the_registry_accepts() {
    let w = World::start().await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let id = w.qovery_registry().unwrap().id;
    let client = qovery_client(&w);

    let tags = client
        .image_versions(ORG, &id, PROJECT, None)
        .await
        .unwrap();
    assert_eq!(tags, ["v1"]);

    // Qovery now holds a password the registry's realm refuses.
    {
        let mut s = w.qovery.state.lock().unwrap();
        let r = s
            .registries
            .iter_mut()
            .find(|r| r.name == QOVERY_REGISTRY)
            .unwrap();
        r.password = Some("glpat-revoked-long-ago".into());
    }
    let refused = client
        .image_versions(ORG, &id, PROJECT, None)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("400"), "{refused}");

    // And config check --online reports it, as a warning.
    let run = w
        .regwarden(&["config", "check", "--online", "--output", "json"])
        .await;
    let json = run.json();
    let view = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["subject"].as_str().unwrap().starts_with("qovery_view "))
        .cloned()
        .unwrap_or_else(|| panic!("no qovery_view finding in {json}"));
    assert_eq!(view["status"], "warn", "{view}");
    assert!(
        view["message"]
            .as_str()
            .unwrap()
            .contains("Qovery could not list acme/api"),
        "{view}"
    );
}

#[tokio::test]
async fn config_check_reports_qoverys_view_of_each_bound_registry() {
    let w = World::start().await;
    assert_eq!(w.reconcile(&[]).await.code, 0);

    let run = w.regwarden(&["config", "check", "--online"]).await;

    assert!(
        run.stdout.contains(&format!(
            "ok   qovery_view qovery registry \"{QOVERY_REGISTRY}\": Qovery lists 1 tag(s) of acme/api through it"
        )),
        "{}",
        run.stdout
    );
}
