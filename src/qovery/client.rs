//! Qovery's REST API: organizations and container registries. Authenticated with an
//! organization API token (`Authorization: Token ...`). Facts: `docs/reference/qovery.md`.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use reqwest::header::AUTHORIZATION;
use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::json;

use crate::outbound::{Api, ApiError, RetryPolicy};

const SERVICE: &str = "Qovery";

/// `ContainerRegistryKindEnum`. Qovery adds kinds over time: an unknown one is kept as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryKind {
    GitlabCr,
    GenericCr,
    Other(String),
}

impl RegistryKind {
    /// `GITLAB_CR` only for gitlab.com's registry (Qovery's spec says its URL "must be
    /// https://registry.gitlab.com"); `GENERIC_CR` with the URL for a self-managed one.
    pub fn for_registry(url: &Url) -> Self {
        if url.host_str() == Some("registry.gitlab.com") {
            RegistryKind::GitlabCr
        } else {
            RegistryKind::GenericCr
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            RegistryKind::GitlabCr => "GITLAB_CR",
            RegistryKind::GenericCr => "GENERIC_CR",
            RegistryKind::Other(s) => s,
        }
    }
}

impl fmt::Display for RegistryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RegistryKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RegistryKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "GITLAB_CR" => RegistryKind::GitlabCr,
            "GENERIC_CR" => RegistryKind::GenericCr,
            _ => RegistryKind::Other(s),
        })
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Organization {
    pub id: String,
    pub name: String,
}

/// The cluster that owns a registry Qovery created for itself; such registries are never
/// touched.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ClusterRef {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// A container registry as Qovery returns it: never with its password.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ContainerRegistry {
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
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

fn unknown_kind() -> RegistryKind {
    RegistryKind::Other(String::new())
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct RegistryConfig {
    #[serde(default)]
    pub username: Option<String>,
}

impl ContainerRegistry {
    pub fn is_cluster_owned(&self) -> bool {
        self.cluster.is_some()
    }
}

/// What a registry should hold: the full object, password always included (a PUT replaces
/// the whole registry, and Qovery cannot return the password it has).
#[derive(Clone)]
pub struct RegistryRequest {
    pub name: String,
    pub kind: RegistryKind,
    pub description: String,
    pub url: String,
    pub username: String,
    pub password: SecretString,
}

impl fmt::Debug for RegistryRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryRequest")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl RegistryRequest {
    fn body(&self) -> serde_json::Value {
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

#[derive(Deserialize)]
struct Results<T> {
    results: Vec<T>,
}

/// A client of Qovery's REST API.
#[derive(Clone)]
pub struct QoveryClient {
    api: Api,
}

impl fmt::Debug for QoveryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QoveryClient")
            .field("base", &self.api.base().as_str())
            .finish_non_exhaustive()
    }
}

fn registries_path(org: &str) -> String {
    format!("organization/{org}/containerRegistry")
}

fn refuse_cluster_owned(registry: &ContainerRegistry) -> Result<(), ApiError> {
    if registry.is_cluster_owned() {
        return Err(ApiError::Permanent {
            service: SERVICE,
            status: 0,
            message: format!(
                "registry {:?} belongs to a Qovery cluster; regwarden never changes those",
                registry.name
            ),
        });
    }
    Ok(())
}

impl QoveryClient {
    pub fn new(http: reqwest::Client, base: &Url, token: SecretString) -> Self {
        let value = SecretString::from(format!("Token {}", token.expose_secret()));
        let api = Api::new(
            SERVICE,
            http,
            base,
            AUTHORIZATION,
            value,
            &["detail", "message"],
        );
        Self { api }
    }

    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.api.retry = policy;
        self
    }

    /// `GET /organization/{id}`: checks the token and the organization id together.
    pub async fn organization(&self, organization_id: &str) -> Result<Organization, ApiError> {
        self.api
            .idempotent(
                Method::GET,
                &format!("organization/{organization_id}"),
                &[],
                None,
            )
            .await?
            .json(SERVICE)
    }

    /// Every container registry of the organization (the list is not paginated).
    pub async fn registries(&self, org: &str) -> Result<Vec<ContainerRegistry>, ApiError> {
        let reply = self
            .api
            .idempotent(Method::GET, &registries_path(org), &[], None)
            .await?;
        Ok(reply.json::<Results<ContainerRegistry>>(SERVICE)?.results)
    }

    /// One registry, or `None` when it does not exist. Qovery may answer 403 rather than 404
    /// for a missing resource: a 403 is confirmed against the list before it counts as one.
    pub async fn registry(
        &self,
        org: &str,
        id: &str,
    ) -> Result<Option<ContainerRegistry>, ApiError> {
        let path = format!("{}/{id}", registries_path(org));
        match self.api.idempotent(Method::GET, &path, &[], None).await {
            Ok(reply) => reply.json(SERVICE).map(Some),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => self.absent_or(org, id, e).await.map(|()| None),
        }
    }

    pub async fn registry_by_name(
        &self,
        org: &str,
        name: &str,
    ) -> Result<Option<ContainerRegistry>, ApiError> {
        Ok(self
            .registries(org)
            .await?
            .into_iter()
            .find(|r| r.name == name))
    }

    /// Creates a registry. After a failure that may have created it anyway (5xx, timeout),
    /// the registry is looked up by name before anything is re-sent: one found is brought to
    /// the requested state with a PUT instead of a second POST.
    pub async fn create_registry(
        &self,
        org: &str,
        request: &RegistryRequest,
    ) -> Result<ContainerRegistry, ApiError> {
        let path = registries_path(org);
        let body = request.body();
        let maybe_applied = AtomicBool::new(false);
        self.api
            .retry
            .run("Qovery POST containerRegistry", || async {
                if maybe_applied.load(Ordering::Relaxed)
                    && let Some(existing) = self.registry_by_name(org, &request.name).await?
                {
                    return self.edit_registry(org, &existing, request).await;
                }
                let result = self.api.once(Method::POST, &path, &[], Some(&body)).await;
                match result {
                    Ok(reply) => reply.json(SERVICE),
                    Err(e) => {
                        if !e.certainly_not_applied() {
                            maybe_applied.store(true, Ordering::Relaxed);
                        }
                        Err(e)
                    }
                }
            })
            .await
    }

    /// Replaces a registry's whole content (PUT), password included. Refuses a registry that
    /// belongs to a Qovery cluster.
    pub async fn edit_registry(
        &self,
        org: &str,
        existing: &ContainerRegistry,
        request: &RegistryRequest,
    ) -> Result<ContainerRegistry, ApiError> {
        refuse_cluster_owned(existing)?;
        let path = format!("{}/{}", registries_path(org), existing.id);
        self.api
            .idempotent(Method::PUT, &path, &[], Some(&request.body()))
            .await?
            .json(SERVICE)
    }

    /// Deletes a registry. Deleting one already gone succeeds (a 403 counts as gone when the
    /// list confirms it). Refuses a cluster's registry.
    pub async fn delete_registry(
        &self,
        org: &str,
        existing: &ContainerRegistry,
    ) -> Result<(), ApiError> {
        refuse_cluster_owned(existing)?;
        let path = format!("{}/{}", registries_path(org), existing.id);
        match self.api.idempotent(Method::DELETE, &path, &[], None).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => self.absent_or(org, &existing.id, e).await,
        }
    }

    /// `Ok` when registry `id` is not in the organization's list (Qovery answered 403 for a
    /// missing resource), else the original error.
    async fn absent_or(&self, org: &str, id: &str, err: ApiError) -> Result<(), ApiError> {
        if !matches!(err, ApiError::Forbidden { .. }) {
            return Err(err);
        }
        if self.registries(org).await?.iter().any(|r| r.id == id) {
            Err(err)
        } else {
            Ok(())
        }
    }

    /// The services that deploy images from a registry.
    pub async fn associated_services(
        &self,
        org: &str,
        id: &str,
    ) -> Result<Vec<AssociatedService>, ApiError> {
        let path = format!("{}/{id}/associatedServices", registries_path(org));
        let reply = self.api.idempotent(Method::GET, &path, &[], None).await?;
        Ok(reply.json::<Results<AssociatedService>>(SERVICE)?.results)
    }
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
    fn gitlab_com_gets_gitlab_cr_and_self_managed_gets_generic_cr() {
        let com = Url::parse("https://registry.gitlab.com").unwrap();
        let own = Url::parse("https://registry.example.com:5050").unwrap();
        assert_eq!(RegistryKind::for_registry(&com), RegistryKind::GitlabCr);
        assert_eq!(RegistryKind::for_registry(&own), RegistryKind::GenericCr);
    }

    #[test]
    fn a_request_sends_the_password_but_never_shows_it() {
        let request = RegistryRequest {
            name: "gitlab-acme".into(),
            kind: RegistryKind::GitlabCr,
            description: "d".into(),
            url: "https://registry.gitlab.com".into(),
            username: "gitlab+deploy-token-1".into(),
            password: SecretString::from("gldt-s3cret"),
        };
        assert_eq!(request.body()["config"]["password"], "gldt-s3cret");
        assert!(!format!("{request:?}").contains("s3cret"));
    }
}
