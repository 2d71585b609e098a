//! Qovery's JSON, as its OpenAPI description (`tests/fixtures/qovery-openapi-container-registry.yaml`)
//! spells it. These types stay in this module: the client turns them into [`super::Registry`].

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::RegistryKind;
use super::registry::Registry;
use crate::marker::Marker;

#[derive(Clone, Debug, Deserialize)]
pub struct Organization {
    pub id: String,
    pub name: String,
}

/// The cluster that owns a registry Qovery created for itself.
#[derive(Clone, Debug, Deserialize)]
pub(super) struct ClusterRef {
    #[serde(default)]
    pub name: String,
}

/// A container registry as Qovery returns it: never with its password.
#[derive(Clone, Debug, Deserialize)]
pub(super) struct ContainerRegistry {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default = "unknown_kind")]
    pub kind: RegistryKind,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub cluster: Option<ClusterRef>,
    #[serde(default)]
    pub associated_services_count: Option<u64>,
    #[serde(default)]
    pub config: RegistryConfig,
}

fn unknown_kind() -> RegistryKind {
    RegistryKind::Other(String::new())
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(super) struct RegistryConfig {
    #[serde(default)]
    pub username: Option<String>,
}

impl From<ContainerRegistry> for Registry {
    fn from(r: ContainerRegistry) -> Self {
        let description = r.description.unwrap_or_default();
        Registry {
            marker: Marker::find(&description),
            id: r.id,
            name: r.name,
            kind: r.kind,
            url: r.url,
            username: r.config.username,
            description,
            cluster: r.cluster.map(|c| c.name),
            services: r.associated_services_count,
        }
    }
}

/// What a registry should hold: the full object, password always included (a PUT replaces
/// the whole registry, and Qovery cannot return the password it has).
pub(super) struct RegistryRequest<'a> {
    pub name: &'a str,
    pub kind: &'a RegistryKind,
    pub description: String,
    pub url: &'a str,
    pub username: &'a str,
    pub password: &'a SecretString,
}

impl RegistryRequest<'_> {
    pub fn body(&self) -> serde_json::Value {
        json!({
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "url": self.url,
            "config": {
                "username": self.username,
                "password": self.password.expose_secret(),
            },
        })
    }
}

/// A service deploying images from a registry (`associatedServices`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct AssociatedService {
    pub project_id: String,
    pub project_name: String,
    pub environment_id: String,
    pub environment_name: String,
    pub service_id: String,
    pub service_name: String,
    pub service_type: String,
}

/// `ContainerSource` (`ContainerResponse` has its fields at the top level; a job's
/// `source.image` is one): the image a service deploys, and from which registry.
#[derive(Deserialize)]
pub(super) struct ContainerSource {
    pub image_name: String,
    pub tag: String,
    #[serde(default)]
    pub registry_id: Option<String>,
    #[serde(default)]
    pub registry: Option<RegistryRef>,
}

#[derive(Deserialize)]
pub(super) struct RegistryRef {
    pub id: String,
}

/// `JobResponse` (a lifecycle or cron job): its `source` is an image, or a Dockerfile Qovery
/// builds (`docker`), which pulls nothing from a registry of the user's.
#[derive(Deserialize)]
pub(super) struct Job {
    pub source: JobSource,
}

#[derive(Deserialize)]
pub(super) struct JobSource {
    #[serde(default)]
    pub image: Option<ContainerSource>,
}

/// `ContainerVersionResponse` (`getContainerVersions`): an image's tags as Qovery lists them
/// through a saved registry.
#[derive(Debug, Deserialize)]
pub(super) struct ContainerVersions {
    #[serde(default)]
    pub image_name: Option<String>,
    #[serde(default)]
    pub versions: Vec<String>,
}

#[derive(Deserialize)]
pub(super) struct Results<T> {
    pub results: Vec<T>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kinds_are_kept_as_sent() {
        let r: ContainerRegistry = serde_json::from_str(
            r#"{"id":"x","created_at":"2026-01-01T00:00:00Z","name":"n","kind":"QUANTUM_CR"}"#,
        )
        .unwrap();
        assert_eq!(r.kind, RegistryKind::Other("QUANTUM_CR".into()));
        assert_eq!(serde_json::to_value(&r.kind).unwrap(), "QUANTUM_CR");
    }

    #[test]
    fn a_registry_reads_its_marker_and_keeps_its_description() {
        let r: ContainerRegistry = serde_json::from_str(
            r#"{"id":"x","name":"n","kind":"GITLAB_CR","description":"Pulls for api.\nregwarden: binding=api token_id=42 fingerprint=sha256:0123456789ab","config":{"username":"gitlab+deploy-token-42"},"cluster":null}"#,
        )
        .unwrap();
        let r = Registry::from(r);
        assert_eq!(r.marker.as_ref().map(|m| m.token_id), Some(42));
        assert!(r.description.starts_with("Pulls for api.\n"));
        assert_eq!(r.username.as_deref(), Some("gitlab+deploy-token-42"));
        assert!(!r.is_cluster_owned());
    }

    #[test]
    fn a_request_sends_the_password() {
        let password = SecretString::from("gldt-s3cret");
        let request = RegistryRequest {
            name: "gitlab-acme",
            kind: &RegistryKind::GitlabCr,
            description: "d".into(),
            url: "https://registry.gitlab.com",
            username: "gitlab+deploy-token-1",
            password: &password,
        };
        assert_eq!(request.body()["config"]["password"], "gldt-s3cret");
    }
}
