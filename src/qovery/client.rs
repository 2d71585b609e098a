//! Qovery's REST API: organizations and container registries. Authenticated with an
//! organization API token (`Authorization: Token ...`). Facts: `docs/reference/qovery.md`.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::header::AUTHORIZATION;
use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretString};

use super::registry::{Registry, RegistryWrite};
use super::wire::{
    AssociatedService, ContainerRegistry, ContainerSource, ContainerVersions, Job, Organization,
    RegistryRequest, Results,
};
use crate::outbound::{Api, ApiError, RetryPolicy};

const SERVICE: &str = "Qovery";

/// An image a Qovery service deploys: its path in the registry and its tag.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeployedImage {
    #[serde(skip)]
    pub registry_id: Option<String>,
    pub image_name: String,
    pub tag: String,
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

fn refuse_cluster_owned(registry: &Registry) -> Result<(), ApiError> {
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

    /// This client, scrubbing `credential` out of everything Qovery answers (only this copy).
    pub fn scrubbing(&self, credential: &crate::credential::Credential) -> QoveryClient {
        QoveryClient {
            api: self.api.scrubbing(credential),
        }
    }

    /// `GET /organization` (listOrganization, "List user organizations"): the organizations
    /// the token sees (an organization's API token, its own).
    pub async fn organizations(&self) -> Result<Vec<Organization>, ApiError> {
        let reply = self
            .api
            .idempotent(Method::GET, "organization", &[], None)
            .await?;
        Ok(reply.json::<Results<Organization>>(SERVICE)?.results)
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
    pub async fn registries(&self, org: &str) -> Result<Vec<Registry>, ApiError> {
        let reply = self
            .api
            .idempotent(Method::GET, &registries_path(org), &[], None)
            .await?;
        let list = reply.json::<Results<ContainerRegistry>>(SERVICE)?.results;
        Ok(list.into_iter().map(Registry::from).collect())
    }

    /// One registry, or `None` when it does not exist. Qovery may answer 403 rather than 404
    /// for a missing resource: a 403 is confirmed against the list before it counts as one.
    pub async fn registry(&self, org: &str, id: &str) -> Result<Option<Registry>, ApiError> {
        let path = format!("{}/{id}", registries_path(org));
        match self.api.idempotent(Method::GET, &path, &[], None).await {
            Ok(reply) => Ok(Some(reply.json::<ContainerRegistry>(SERVICE)?.into())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => self.absent_or(org, id, e).await.map(|()| None),
        }
    }

    pub async fn registry_by_name(
        &self,
        org: &str,
        name: &str,
    ) -> Result<Option<Registry>, ApiError> {
        Ok(self
            .registries(org)
            .await?
            .into_iter()
            .find(|r| r.name == name))
    }

    /// Writes registry `write.name`: its credential, and its marker in the description (the
    /// rest of `existing`'s description is kept). `existing` is the registry as last read, or
    /// `None` to create it. Refuses a registry that belongs to a Qovery cluster. A create whose
    /// answer was lost (5xx, timeout) is looked up by name before anything is re-sent, so that
    /// a retry never makes a second registry.
    pub async fn write_registry(
        &self,
        org: &str,
        existing: Option<&Registry>,
        write: RegistryWrite<'_>,
    ) -> Result<Registry, ApiError> {
        // Qovery's error text may quote the request, password included: every message of
        // these calls is scrubbed of it before it is shortened or kept.
        self.scrubbing(write.credential)
            .write(org, existing, write)
            .await
    }

    async fn write(
        &self,
        org: &str,
        existing: Option<&Registry>,
        write: RegistryWrite<'_>,
    ) -> Result<Registry, ApiError> {
        let url = write.url.as_str().trim_end_matches('/');
        let request = |description: &str| RegistryRequest {
            name: write.name,
            kind: write.kind,
            description: write.marker.write_into(description),
            url,
            username: &write.credential.username,
            password: &write.credential.password,
        };
        if let Some(existing) = existing {
            return self
                .edit_registry(org, existing, &request(&existing.description))
                .await;
        }
        let path = registries_path(org);
        let body = request("").body();
        let maybe_applied = AtomicBool::new(false);
        self.api
            .retry
            .run("Qovery POST containerRegistry", || async {
                if maybe_applied.load(Ordering::Relaxed)
                    && let Some(found) = self.registry_by_name(org, write.name).await?
                {
                    return self
                        .edit_registry(org, &found, &request(&found.description))
                        .await;
                }
                let result = self.api.once(Method::POST, &path, &[], Some(&body)).await;
                match result {
                    Ok(reply) => Ok(reply.json::<ContainerRegistry>(SERVICE)?.into()),
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

    /// Replaces a registry's whole content (PUT), password included.
    async fn edit_registry(
        &self,
        org: &str,
        existing: &Registry,
        request: &RegistryRequest<'_>,
    ) -> Result<Registry, ApiError> {
        refuse_cluster_owned(existing)?;
        let path = format!("{}/{}", registries_path(org), existing.id);
        Ok(self
            .api
            .idempotent(Method::PUT, &path, &[], Some(&request.body()))
            .await?
            .json::<ContainerRegistry>(SERVICE)?
            .into())
    }

    /// Deletes a registry. Deleting one already gone succeeds (a 403 counts as gone when the
    /// list confirms it). Refuses a cluster's registry.
    pub async fn delete_registry(&self, org: &str, existing: &Registry) -> Result<(), ApiError> {
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

    /// The image a service deploys (`getContainer`, `getJob`): `None` for a job Qovery builds
    /// from a Dockerfile, or a kind of service that deploys no image.
    pub async fn service_image(
        &self,
        service: &AssociatedService,
    ) -> Result<Option<DeployedImage>, ApiError> {
        let id = &service.service_id;
        let source = match service.service_type.as_str() {
            "CONTAINER" => Some(
                self.api
                    .idempotent(Method::GET, &format!("container/{id}"), &[], None)
                    .await?
                    .json::<ContainerSource>(SERVICE)?,
            ),
            "LIFECYCLE" | "CRON" | "JOB" => {
                self.api
                    .idempotent(Method::GET, &format!("job/{id}"), &[], None)
                    .await?
                    .json::<Job>(SERVICE)?
                    .source
                    .image
            }
            _ => None,
        };
        Ok(source.map(|s| DeployedImage {
            registry_id: s.registry_id.or(s.registry.map(|r| r.id)),
            image_name: s.image_name,
            tag: s.tag,
        }))
    }

    /// Every image the services of registry `id` deploy from it, with the service that does:
    /// one `associatedServices` read, then one read per service (Qovery's API has no list of
    /// images). Images a service pulls from another registry are left out.
    pub async fn deployed_images(
        &self,
        org: &str,
        id: &str,
    ) -> Result<Vec<(AssociatedService, DeployedImage)>, ApiError> {
        let mut images = Vec::new();
        for service in self.associated_services(org, id).await? {
            if let Some(image) = self.service_image(&service).await?
                && image.registry_id.as_deref().is_none_or(|r| r == id)
            {
                images.push((service, image));
            }
        }
        Ok(images)
    }

    /// Qovery's own view of a saved registry (`getContainerVersions`): the tags of `image` as
    /// Qovery lists them through registry `id`, with the credential it holds. Qovery does not
    /// document what this proves; regwarden reports it, it does not act on it. Errors are
    /// scrubbed of `credential` (what the registry was just given).
    pub async fn image_versions(
        &self,
        org: &str,
        id: &str,
        image: &str,
        credential: Option<&crate::credential::Credential>,
    ) -> Result<Vec<String>, ApiError> {
        let client = match credential {
            Some(c) => &self.scrubbing(c),
            None => self,
        };
        let path = format!("{}/{id}/images", registries_path(org));
        let reply = client
            .api
            .idempotent(
                Method::GET,
                &path,
                &[("imageName", image.to_string())],
                None,
            )
            .await?;
        let listed = reply.json::<Results<ContainerVersions>>(SERVICE)?.results;
        Ok(listed
            .into_iter()
            .filter(|v| v.image_name.as_deref().is_none_or(|n| n == image))
            .flat_map(|v| v.versions)
            .collect())
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
