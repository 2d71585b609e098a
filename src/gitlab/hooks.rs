//! Project and group webhooks through the REST API (`lib/api/project_hooks.rb`,
//! `ee/lib/api/group_hooks.rb`, entities `API::Entities::{Hook,ProjectHook,GroupHook}`;
//! docs/reference/gitlab.md §10). The secrets a hook is given (`token`, `signing_token`) are
//! write-only: GitLab never returns them, only `token_present` and `signing_token_present`
//! (GitLab 19.0+).

use reqwest::Method;
use serde::Deserialize;

use super::client::{GitlabClient, Namespace, SERVICE};
use crate::outbound::ApiError;

/// A hook as GitLab lists it. Every event flag is optional: an older GitLab does not have
/// them all (`resource_deploy_token_events` arrived in 18.10, on project hooks only), and
/// one it does not send is not one regwarden can set.
#[derive(Clone, Debug, Deserialize)]
pub struct Hook {
    pub id: u64,
    pub url: String,
    #[serde(default)]
    pub name: Option<String>,
    /// `executable`, `temporarily_disabled` or `disabled` (`WebHooks::AutoDisabling`).
    #[serde(default)]
    pub alert_status: Option<String>,
    /// When a temporary disable ends; it may be in the past while the hook is executable.
    #[serde(default)]
    pub disabled_until: Option<String>,
    #[serde(default)]
    pub push_events: Option<bool>,
    #[serde(default)]
    pub resource_access_token_events: Option<bool>,
    #[serde(default)]
    pub resource_deploy_token_events: Option<bool>,
    #[serde(default)]
    pub project_events: Option<bool>,
    #[serde(default)]
    pub enable_ssl_verification: Option<bool>,
    #[serde(default)]
    pub token_present: Option<bool>,
    #[serde(default)]
    pub signing_token_present: Option<bool>,
}

impl Hook {
    /// The flag named `field`, as GitLab sent it (`None`: this GitLab has no such flag).
    pub fn flag(&self, field: &str) -> Option<bool> {
        match field {
            "push_events" => self.push_events,
            "resource_access_token_events" => self.resource_access_token_events,
            "resource_deploy_token_events" => self.resource_deploy_token_events,
            "project_events" => self.project_events,
            "enable_ssl_verification" => self.enable_ssl_verification,
            _ => None,
        }
    }

    /// Whether GitLab has stopped sending it anything after failures.
    pub fn disabled(&self) -> bool {
        matches!(
            self.alert_status.as_deref(),
            Some("temporarily_disabled" | "disabled")
        )
    }
}

impl GitlabClient {
    /// This client, scrubbing `secrets` out of everything GitLab answers (only this copy): a
    /// hook's secrets are sent in its requests, and an error may echo them.
    pub fn scrubbing(&self, secrets: &[&secrecy::SecretString]) -> GitlabClient {
        let mut client = self.clone();
        for secret in secrets {
            client.api = client
                .api
                .scrubbing(&crate::credential::Credential::new("", (*secret).clone()));
        }
        client
    }

    /// The hooks of a project or group (Maintainer for a project, Owner for a group).
    pub async fn hooks(&self, ns: &Namespace) -> Result<Vec<Hook>, ApiError> {
        self.get_all(&format!("{}/hooks", ns.api_path()), &[]).await
    }

    /// Creates a hook. `body` carries its secrets: it is never logged. A create whose answer
    /// was lost is not sent again blindly: the hooks at `url` are deleted first (only
    /// regwarden's own hooks have that URL).
    pub async fn create_hook(
        &self,
        ns: &Namespace,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<Hook, ApiError> {
        let path = format!("{}/hooks", ns.api_path());
        let cleanup = || async {
            for hook in self.hooks(ns).await? {
                if same_url(&hook.url, url) {
                    self.delete_hook(ns, hook.id).await?;
                }
            }
            Ok(())
        };
        self.create_once_only(&path, body, cleanup)
            .await?
            .json(SERVICE)
    }

    /// Updates a hook with the fields of `body` (a PUT merges; fields left out are kept,
    /// except that a new URL without `token` erases the secret token).
    pub async fn update_hook(
        &self,
        ns: &Namespace,
        id: u64,
        body: &serde_json::Value,
    ) -> Result<Hook, ApiError> {
        let path = format!("{}/hooks/{id}", ns.api_path());
        self.api
            .idempotent(Method::PUT, &path, &[], Some(body))
            .await?
            .json(SERVICE)
    }

    /// Deletes a hook; one already gone is fine.
    pub async fn delete_hook(&self, ns: &Namespace, id: u64) -> Result<(), ApiError> {
        let path = format!("{}/hooks/{id}", ns.api_path());
        match self.api.idempotent(Method::DELETE, &path, &[], None).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Whether two hook URLs are the same endpoint (a trailing slash aside).
pub fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}
