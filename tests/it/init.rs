//! `regwarden init` against the fake GitLab and Qovery: registries set up by hand, with the
//! services that deploy from them, become bindings that `config check` accepts and whose
//! first pass takes the registries over.

use crate::support::cli::{Run, regwarden};
use crate::support::gitlab::Owner;
use crate::support::world::{ORG, World};

async fn init(w: &World, output: &std::path::Path) -> Run {
    regwarden([
        "init",
        "--gitlab-url",
        &w.gitlab.url(),
        "--qovery-url",
        &w.qovery_url,
        "--ca-file",
        w.ca.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ])
    .env("GITLAB_TOKEN", &w.gitlab_token)
    .env("QOVERY_API_TOKEN", &w.qovery_token)
    .run()
    .await
}

#[tokio::test]
async fn init_binds_each_registry_to_the_project_or_group_of_its_images() {
    let w = World::start().await;
    let web = w.gitlab.add_project("acme/platform/web");
    w.gitlab.add_project("acme/platform/worker");
    let platform = w.gitlab.add_group("acme/platform");
    let project = w.gitlab.project_owner(crate::support::world::PROJECT);
    let pat = w
        .gitlab
        .add_access_token(Owner::User, "alice-laptop", &["read_registry"]);
    // As Qovery's guide has people do it: registries typed into the console.
    w.qovery.add_hand_made_registry(
        ORG,
        "GitLab acme/api",
        &w.registry_url,
        &["acme/api:v1"],
        "alice",
        &pat.token,
    );
    w.qovery.add_hand_made_registry(
        ORG,
        "platform",
        &w.registry_url,
        &["acme/platform/web:v3", "acme/platform/worker/jobs:v1"],
        "alice",
        &pat.token,
    );
    w.qovery.add_hand_made_registry(
        ORG,
        "docker hub",
        "https://index.docker.io",
        &["library/nginx:1"],
        "bob",
        "hub-password",
    );
    w.qovery
        .add_hand_made_registry(ORG, "unused", &w.registry_url, &[], "alice", &pat.token);
    let file = w.path().join("new.toml");

    let run = init(&w, &file).await;

    assert_eq!(run.code, 0, "{run:?}");
    run.assert_never_shows(&w.gitlab_token);
    run.assert_never_shows(&w.qovery_token);
    run.assert_never_shows(&pat.token);
    assert_eq!(
        run.stdout,
        format!(
            "bound Qovery registry \"GitLab acme/api\" to project acme/api: its services (GitLab acme/api-0) deploy acme/api from project acme/api\n\
             bound Qovery registry \"platform\" to group acme/platform: its services (platform-0, platform-1) deploy acme/platform/web, acme/platform/worker/jobs from projects acme/platform/web, acme/platform/worker, all in group acme/platform\n\
             skipped Qovery registry \"docker hub\": image library/nginx is in no project of this GitLab that the API token can see\n\
             skipped Qovery registry \"unused\": no service deploys an image from it: bind it by hand if it should be kept\n\
             wrote {f}; next:\n  regwarden config check --online --config {f}\n  regwarden reconcile --dry-run --config {f}\n  regwarden reconcile --config {f}\n",
            f = file.display()
        )
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!(
            "[[binding]]\nname = \"gitlab-acme-api\"\nproject = {}  # acme/api (an id: paths move)\nqovery_registry = \"GitLab acme/api\"\n",
            match project {
                Owner::Project(id) => id,
                _ => unreachable!(),
            }
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "[[binding]]\nname = \"platform\"\ngroup = {platform}  # acme/platform (an id: paths move)\nrepository = \"acme/platform/web\"  # the image the check pulls\n"
        )),
        "{text}"
    );
    assert!(web > 0);
    let config = file.to_str().unwrap();

    // What it wrote is a configuration regwarden takes.
    let check = regwarden(["config", "check", "--config", config])
        .run()
        .await;
    assert_eq!(check.code, 0, "{check:?}\n{text}");

    // The first pass would take both registries over.
    let dry = regwarden([
        "reconcile",
        "--dry-run",
        "--output",
        "json",
        "--config",
        config,
    ])
    .env("GITLAB_TOKEN", &w.gitlab_token)
    .env("QOVERY_API_TOKEN", &w.qovery_token)
    .run()
    .await;
    let plans: Vec<(String, String)> = dry.json()["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["binding"].as_str().unwrap().to_string(),
                b["plan"]["rotate"]["why"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        plans,
        [
            ("gitlab-acme-api".to_string(), "take_over".to_string()),
            ("platform".to_string(), "take_over".to_string()),
        ],
        "{dry:?}"
    );

    // A second init never overwrites the file.
    let again = init(&w, &file).await;
    assert_eq!(again.code, 2, "{again:?}");
    assert!(
        again
            .stderr
            .contains("exists: init never overwrites a file"),
        "{}",
        again.stderr
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}

#[tokio::test]
async fn without_its_tokens_init_says_which_variable_to_export() {
    let w = World::start().await;
    let file = w.path().join("new.toml");
    let run = regwarden([
        "init",
        "--gitlab-url",
        &w.gitlab.url(),
        "--output",
        file.to_str().unwrap(),
    ])
    .run()
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("$GITLAB_TOKEN"), "{}", run.stderr);
    assert!(!file.exists());
}

#[tokio::test]
async fn a_project_with_capitals_is_found_from_its_lowercase_image_path() {
    let w = World::start().await;
    // GitLab keeps a path's case; the registry's image paths are lowercase.
    w.gitlab.add_project("acme/Tools");
    let pat = w
        .gitlab
        .add_access_token(Owner::User, "alice-laptop", &["read_registry"]);
    w.qovery.add_hand_made_registry(
        ORG,
        "tools",
        &w.registry_url,
        &["acme/tools:v1"],
        "alice",
        &pat.token,
    );
    let file = w.path().join("new.toml");

    let run = init(&w, &file).await;

    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("bound Qovery registry \"tools\" to project acme/Tools"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn with_the_registry_url_given_another_registry_is_told_apart_and_it_is_written() {
    let w = World::start().await;
    let pat = w
        .gitlab
        .add_access_token(Owner::User, "alice-laptop", &["read_registry"]);
    w.qovery.add_hand_made_registry(
        ORG,
        "api",
        &w.registry_url,
        &["acme/api:v1"],
        "alice",
        &pat.token,
    );
    w.qovery.add_hand_made_registry(
        ORG,
        "docker hub",
        "https://index.docker.io",
        &["library/nginx:1"],
        "bob",
        "hub-password",
    );
    let file = w.path().join("new.toml");

    let run = regwarden([
        "init",
        "--gitlab-url",
        &w.gitlab.url(),
        "--qovery-url",
        &w.qovery_url,
        "--registry-url",
        &w.registry_url,
        "--output",
        file.to_str().unwrap(),
    ])
    .env("GITLAB_TOKEN", &w.gitlab_token)
    .env("QOVERY_API_TOKEN", &w.qovery_token)
    .run()
    .await;

    assert_eq!(run.code, 0, "{run:?}");
    let host = crate::support::world::host_port(&w.registry_url);
    assert!(
        run.stdout.contains(&format!(
            "skipped Qovery registry \"docker hub\": its URL https://index.docker.io is not this GitLab's registry ({host})"
        )),
        "{}",
        run.stdout
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!(
            "registry_url = \"{}\"",
            w.registry_url.trim_end_matches('/')
        )),
        "{text}"
    );
    assert_eq!(
        regwarden(["config", "check", "--config", file.to_str().unwrap()])
            .run()
            .await
            .code,
        0
    );
}
