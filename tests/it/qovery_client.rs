//! The Qovery client against the stateful fake: registries end to end, Qovery's quirks
//! (403 for missing things, passwords never returned), retries, and what is never touched.

use std::time::Duration;

use crate::support::faults::Fault;
use crate::support::qovery::FakeQovery;
use regwarden::credential::Credential;
use regwarden::marker::Marker;
use regwarden::outbound::{ApiError, RetryPolicy};
use regwarden::qovery::{QoveryClient, RegistryKind, RegistryWrite};
use secrecy::SecretString;

const ORG: &str = "3c90c3cc-0d44-4b50-8888-8dd25736052a";
const LIST: &str = "GET /organization/{organizationId}/containerRegistry";
const CREATE: &str = "POST /organization/{organizationId}/containerRegistry";
const EDIT: &str = "PUT /organization/{organizationId}/containerRegistry/{containerRegistryId}";

struct World {
    qovery: FakeQovery,
    token: String,
}

async fn world() -> World {
    let qovery = FakeQovery::start().await;
    let token = qovery.add_organization(ORG, "acme");
    World { qovery, token }
}

impl World {
    fn client_with(&self, token: &str, timeout: Duration) -> QoveryClient {
        let http = regwarden::outbound::client(None, timeout).unwrap();
        let base = reqwest::Url::parse(&self.qovery.url()).unwrap();
        QoveryClient::new(http, &base, SecretString::from(token.to_string())).with_retry_policy(
            RetryPolicy {
                attempts: 3,
                min_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(50),
                max_rate_limit_wait: Duration::from_secs(5),
            },
        )
    }

    fn client(&self) -> QoveryClient {
        self.client_with(&self.token, Duration::from_secs(5))
    }
}

/// What a test writes into a registry: one deploy token and the marker naming it.
struct Spec {
    name: String,
    kind: RegistryKind,
    url: reqwest::Url,
    credential: Credential,
    marker: Marker,
}

impl Spec {
    fn write(&self) -> RegistryWrite<'_> {
        RegistryWrite {
            name: &self.name,
            kind: &self.kind,
            url: &self.url,
            credential: &self.credential,
            marker: &self.marker,
        }
    }
}

fn request(name: &str, password: &str) -> Spec {
    Spec {
        name: name.into(),
        kind: RegistryKind::GitlabCr,
        url: reqwest::Url::parse("https://registry.gitlab.com").unwrap(),
        credential: Credential::new(
            "gitlab+deploy-token-7",
            SecretString::from(password.to_string()),
        ),
        marker: Marker::find(
            "regwarden: binding=api token_id=7 fingerprint=sha256:0123456789ab expires=2027-01-01",
        )
        .unwrap(),
    }
}

#[tokio::test]
async fn a_registry_is_created_found_edited_and_deleted() {
    let w = world().await;
    let client = w.client();

    let created = client
        .write_registry(ORG, None, request("gitlab-acme-api", "gldt-one").write())
        .await
        .unwrap();
    assert_eq!(created.kind, RegistryKind::GitlabCr);
    assert_eq!(created.username.as_deref(), Some("gitlab+deploy-token-7"));
    assert_eq!(created.marker.as_ref().map(|m| m.token_id), Some(7));
    assert_eq!(created.url.as_deref(), Some("https://registry.gitlab.com"));
    assert_eq!(
        w.qovery
            .registry_named("gitlab-acme-api")
            .unwrap()
            .password
            .as_deref(),
        Some("gldt-one")
    );

    let found = client
        .registry_by_name(ORG, "gitlab-acme-api")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, created);
    assert_eq!(
        client.registry(ORG, &created.id).await.unwrap(),
        Some(created.clone())
    );

    // Somebody explains the registry above regwarden's line: a write keeps it.
    w.qovery.state.lock().unwrap().registries[0].description =
        format!("Pulls for the api team.\n{}", found.description);
    let found = client.registry(ORG, &created.id).await.unwrap().unwrap();
    let mut second = request("gitlab-acme-api", "gldt-two");
    second.marker.token_id = 8;
    let edited = client
        .write_registry(ORG, Some(&found), second.write())
        .await
        .unwrap();
    assert_eq!(edited.id, created.id);
    assert_eq!(edited.marker.as_ref().map(|m| m.token_id), Some(8));
    assert!(
        edited
            .description
            .starts_with("Pulls for the api team.\nregwarden: binding=api token_id=8 "),
        "{:?}",
        edited.description
    );
    assert_eq!(
        w.qovery
            .registry_named("gitlab-acme-api")
            .unwrap()
            .password
            .as_deref(),
        Some("gldt-two")
    );

    client.delete_registry(ORG, &edited).await.unwrap();
    assert!(
        client
            .registry_by_name(ORG, "gitlab-acme-api")
            .await
            .unwrap()
            .is_none()
    );
    // Gone already: deleting again is not an error.
    client.delete_registry(ORG, &edited).await.unwrap();
}

#[tokio::test]
async fn a_missing_registry_reads_as_none_even_when_qovery_says_403() {
    let w = world().await;
    let unknown = "00000000-0000-4000-8000-00000000dead";

    assert!(w.client().registry(ORG, unknown).await.unwrap().is_none());

    w.qovery.state.lock().unwrap().missing_as_forbidden = false;
    assert!(w.client().registry(ORG, unknown).await.unwrap().is_none());
}

#[tokio::test]
async fn a_foreign_organization_is_forbidden_and_a_bad_token_unauthorized() {
    let w = world().await;
    let other = "11111111-2222-3333-4444-555555555555";
    w.qovery.add_organization(other, "other");

    let forbidden = w.client().registries(other).await.unwrap_err();
    assert!(
        matches!(forbidden, ApiError::Forbidden { .. }),
        "{forbidden}"
    );

    let unauthorized = w
        .client_with("qov-wrong-token", Duration::from_secs(5))
        .organization(ORG)
        .await
        .unwrap_err();
    assert!(
        matches!(unauthorized, ApiError::Unauthorized { .. }),
        "{unauthorized}"
    );
    assert!(
        unauthorized
            .to_string()
            .contains("Access token is missing or invalid")
    );
    assert!(!format!("{unauthorized} {unauthorized:?}").contains("qov-wrong-token"));
}

#[tokio::test]
async fn cluster_registries_and_their_services_are_never_touched() {
    let w = world().await;
    let id = w.qovery.add_registry(ORG, "registry-cluster", true, &[]);
    let cluster_registry = w.client().registry(ORG, &id).await.unwrap().unwrap();
    assert!(cluster_registry.is_cluster_owned());

    let edit = w
        .client()
        .write_registry(
            ORG,
            Some(&cluster_registry),
            request("registry-cluster", "x").write(),
        )
        .await
        .unwrap_err();
    let delete = w
        .client()
        .delete_registry(ORG, &cluster_registry)
        .await
        .unwrap_err();

    assert!(
        edit.to_string().contains("belongs to a Qovery cluster"),
        "{edit}"
    );
    assert!(
        delete.to_string().contains("belongs to a Qovery cluster"),
        "{delete}"
    );
    assert_eq!(w.qovery.calls(EDIT), 0, "refused before any request");
    assert_eq!(w.qovery.registries().len(), 1);
}

#[tokio::test]
async fn associated_services_are_listed() {
    let w = world().await;
    let id = w.qovery.add_registry(
        ORG,
        "gitlab-acme-api",
        false,
        &["acme/api:v1", "acme/web:v2"],
    );

    let services = w.client().associated_services(ORG, &id).await.unwrap();
    let registry = w.client().registry(ORG, &id).await.unwrap().unwrap();

    assert_eq!(services.len(), 2);
    assert_eq!(services[0].service_type, "CONTAINER");
    assert_eq!(registry.services, Some(2));
}

#[tokio::test]
async fn a_refusal_carries_qoverys_detail_and_is_not_retried() {
    let w = world().await;
    let mut bad = request("gitlab-acme-api", "gldt-one");
    bad.kind = RegistryKind::Other("NOT_A_KIND".into());

    let err = w
        .client()
        .write_registry(ORG, None, bad.write())
        .await
        .unwrap_err();

    assert!(
        matches!(err, ApiError::Permanent { status: 400, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("kind is not a ContainerRegistryKindEnum value"),
        "{err}"
    );
    assert_eq!(w.qovery.calls(CREATE), 1);
    assert!(!format!("{err} {err:?}").contains("gldt-one"));
}

#[tokio::test]
async fn a_credential_qovery_quotes_is_scrubbed_before_its_message_is_shortened() {
    use base64::Engine;
    let w = world().await;
    let password = "glpat-0123456789abcdefghij";
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("gitlab+deploy-token-7:{password}"));
    // Long enough that a message cut at 300 characters would end inside the password.
    for after in [260, 275, 285] {
        w.qovery.state.lock().unwrap().echo_credential_after = Some(after);

        let err = w
            .client()
            .write_registry(ORG, None, request("gitlab-acme-api", password).write())
            .await
            .unwrap_err();

        let text = format!("{err} {err:?}");
        assert!(text.contains("invalid config"), "{text}");
        for window in password
            .as_bytes()
            .windows(8)
            .chain(basic.as_bytes().windows(8))
        {
            let piece = std::str::from_utf8(window).unwrap();
            assert!(
                !text.contains(piece),
                "{piece:?} of the credential is in: {text}"
            );
        }
    }
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    let w = world().await;
    w.qovery.fail(LIST, Fault::Status(429, Some(0)), 1);
    w.qovery.fail(LIST, Fault::Status(503, None), 1);

    assert!(w.client().registries(ORG).await.unwrap().is_empty());
    assert_eq!(w.qovery.calls(LIST), 3);
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_does_not_make_a_second_registry() {
    let w = world().await;
    w.qovery.fail(CREATE, Fault::ApplyThenFail, 1);

    let created = w
        .client()
        .write_registry(ORG, None, request("gitlab-acme-api", "gldt-one").write())
        .await
        .unwrap();

    let all = w.qovery.registries();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].id, created.id);
    assert_eq!(all[0].password.as_deref(), Some("gldt-one"));
    assert_eq!(w.qovery.calls(CREATE), 1, "the second try became a PUT");
    assert_eq!(w.qovery.calls(EDIT), 1);
}

#[tokio::test]
async fn a_timeout_is_transient_and_names_itself() {
    let w = world().await;
    w.qovery.fail(LIST, Fault::Delay(Duration::from_secs(3)), 3);

    let err = w
        .client_with(&w.token, Duration::from_millis(200))
        .registries(ORG)
        .await
        .unwrap_err();

    assert!(err.is_transient());
    assert!(err.to_string().contains("(timeout)"), "{err}");
}
