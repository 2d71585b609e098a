//! The contract with Qovery: every kind of request the Qovery client sends for container
//! registries (and for the images their services deploy) goes through Prism serving Qovery's own OpenAPI
//! (`tests/fixtures/qovery-openapi-container-registry.yaml`) as a validating proxy in front of
//! the fake. A request that breaks the spec, or an answer of the fake that does, fails the test.

use std::time::Duration;

use crate::support::fixtures::qovery_openapi;
use crate::support::pki::PrivateCa;
use crate::support::prism::Prism;
use crate::support::qovery::FakeQovery;
use crate::support::registry::{Auth, Registry, Tls, push_image};
use regwarden::credential::Credential;
use regwarden::marker::Marker;
use regwarden::qovery::{QoveryClient, RegistryKind, RegistryWrite};
use secrecy::SecretString;

const ORG: &str = "3c90c3cc-0d44-4b50-8888-8dd25736052a";

#[tokio::test]
async fn every_registry_request_follows_qoverys_openapi() {
    let Some(bin) = crate::support::tools::prism() else {
        return;
    };
    let qovery = FakeQovery::start().await;
    let token = qovery.add_organization(ORG, "acme");
    let cluster_registry = qovery.add_registry(
        ORG,
        "registry-cluster",
        true,
        &["acme/a:v1", "acme/b:v1", "acme/c:v1"],
    );
    let prism = Prism::proxy(&bin, &qovery_openapi(), &qovery.url());
    let http = regwarden::outbound::client(None, Duration::from_secs(20)).unwrap();
    let client = QoveryClient::new(
        http,
        &reqwest::Url::parse(&prism.url).unwrap(),
        SecretString::from(token),
    );
    let credential = Credential::new("gitlab+deploy-token-7", SecretString::from("gldt-contract"));
    let marker = Marker::find(
        "regwarden: binding=api token_id=7 fingerprint=sha256:0123456789ab expires=2027-01-01",
    )
    .unwrap();
    let gitlab_com = reqwest::Url::parse("https://registry.gitlab.com").unwrap();
    let self_managed = reqwest::Url::parse("https://registry.example.com:5050").unwrap();
    let mut write = RegistryWrite {
        name: "gitlab-acme-api",
        kind: &RegistryKind::GitlabCr,
        url: &gitlab_com,
        credential: &credential,
        marker: &marker,
    };

    let created = client.write_registry(ORG, None, write).await.unwrap();
    let listed = client.registries(ORG).await.unwrap();
    let fetched = client.registry(ORG, &created.id).await.unwrap().unwrap();
    write.kind = &RegistryKind::GenericCr;
    write.url = &self_managed;
    let edited = client
        .write_registry(ORG, Some(&fetched), write)
        .await
        .unwrap();
    let services = client
        .associated_services(ORG, &cluster_registry)
        .await
        .unwrap();
    // What each service deploys: containers (getContainer) and jobs of both kinds (getJob).
    qovery.add_service(
        &cluster_registry,
        "LIFECYCLE",
        "migrate",
        "production",
        "acme/tools:v3",
    );
    qovery.add_service(
        &cluster_registry,
        "CRON",
        "report",
        "staging",
        "acme/report:v1",
    );
    let images = client
        .deployed_images(ORG, &cluster_registry)
        .await
        .unwrap();
    // Qovery's own view (getContainerVersions), of a registry the fake can list through: a
    // real one on loopback, open to anyone, over TLS (Qovery takes https:// only).
    let dir = tempfile::tempdir().unwrap();
    let ca = PrivateCa::generate(dir.path());
    let open_registry = Registry::start(
        dir.path(),
        Auth::Anonymous,
        Some(Tls {
            cert: &ca.server_cert,
            key: &ca.server_key,
            ca: &ca.ca_path,
        }),
    )
    .await;
    push_image(
        &open_registry.url,
        Some(&ca.ca_path),
        "acme/api",
        "v1",
        "unused",
    )
    .await;
    qovery.check_credentials_against(&open_registry.url, "acme/api", Some(&ca.ca_path));
    let open_url = reqwest::Url::parse(&open_registry.url).unwrap();
    write.name = "open";
    write.url = &open_url;
    let open = client.write_registry(ORG, None, write).await.unwrap();
    let versions = client
        .image_versions(ORG, &open.id, "acme/api", None)
        .await
        .unwrap();
    client.delete_registry(ORG, &edited).await.unwrap();

    assert_eq!(listed.len(), 2);
    assert_eq!(edited.kind, RegistryKind::GenericCr);
    assert_eq!(services.len(), 3);
    let deployed: Vec<String> = images
        .iter()
        .map(|(s, i)| format!("{} {}:{}", s.service_type, i.image_name, i.tag))
        .collect();
    assert_eq!(
        deployed,
        [
            "CONTAINER acme/a:v1",
            "CONTAINER acme/b:v1",
            "CONTAINER acme/c:v1",
            "LIFECYCLE acme/tools:v3",
            "CRON acme/report:v1"
        ]
    );
    assert_eq!(versions, ["v1"]);
    assert!(qovery.registry_named("gitlab-acme-api").is_none());
}

#[tokio::test]
async fn prism_refuses_a_request_that_breaks_the_spec() {
    // The control: the proxy does validate, so the test above can fail.
    let Some(bin) = crate::support::tools::prism() else {
        return;
    };
    let qovery = FakeQovery::start().await;
    let token = qovery.add_organization(ORG, "acme");
    let prism = Prism::proxy(&bin, &qovery_openapi(), &qovery.url());

    let response = regwarden::outbound::client(None, Duration::from_secs(20))
        .unwrap()
        .post(format!(
            "{}/organization/{ORG}/containerRegistry",
            prism.url
        ))
        .header("authorization", format!("Token {token}"))
        .json(&serde_json::json!({"name": "no-kind-no-config"}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 422);
    let body = response.text().await.unwrap();
    assert!(
        body.contains("must have required property 'kind'"),
        "{body}"
    );
    assert!(qovery.registries().is_empty(), "the fake never saw it");
}
