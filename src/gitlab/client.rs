//! GitLab's REST API (`<url>/api/v4`): projects, deploy tokens, project and group access
//! tokens. Authenticated with `PRIVATE-TOKEN`. Facts: `docs/reference/gitlab.md` §3, §4, §8.

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, NaiveDate, Utc};
use reqwest::header::HeaderName;
use reqwest::{Method, Url};
use secrecy::SecretString;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::outbound::{Api, ApiError, Reply, RetryPolicy, directory_url};

pub(super) const SERVICE: &str = "GitLab";
/// GitLab's largest page (`docs/reference/gitlab.md` §8).
const PER_PAGE: u32 = 100;
/// A bound on pages followed, against a server that never says "last page".
const MAX_PAGES: u32 = 10_000;

/// A project or a group, by numeric id or full path (`acme/api`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Namespace {
    Project(String),
    Group(String),
}

impl Namespace {
    /// `projects/acme%2Fapi`: a path travels URL-encoded as one segment.
    pub fn api_path(&self) -> String {
        let (kind, id) = match self {
            Namespace::Project(id) => ("projects", id),
            Namespace::Group(id) => ("groups", id),
        };
        format!("{kind}/{}", encode_segment(id))
    }
}

pub(super) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A project as GitLab describes it (`lib/api/entities/project.rb`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Project {
    pub id: u64,
    pub name: String,
    pub path_with_namespace: String,
    /// `registry.example.com/group/project`: present for every project whenever the instance
    /// has a registry, whether or not this project's is enabled.
    #[serde(default)]
    pub container_registry_image_prefix: Option<String>,
    /// `enabled`, `private` or `disabled`: whether the project has a registry.
    #[serde(default)]
    pub container_registry_access_level: Option<String>,
    #[serde(default)]
    pub container_registry_enabled: Option<bool>,
    #[serde(default)]
    pub namespace: Option<ProjectNamespace>,
}

impl Project {
    /// Whether the project has a container registry: the instance has one (the image prefix
    /// is exposed) and the project's is not disabled. An older GitLab that sends neither
    /// setting counts as enabled.
    pub fn has_registry(&self) -> bool {
        self.container_registry_image_prefix.is_some()
            && self.container_registry_access_level.as_deref() != Some("disabled")
            && self.container_registry_enabled != Some(false)
    }

    /// The host (and port) GitLab serves its registry at: what precedes the project's path in
    /// `container_registry_image_prefix` (GitLab's `registry.host_port`).
    pub fn registry_address(&self) -> Option<&str> {
        let prefix = self.container_registry_image_prefix.as_deref()?;
        let host = prefix.split('/').next()?.trim();
        (!host.is_empty()).then_some(host)
    }

    /// Whether the project lives in a user's personal namespace (`namespace.kind` = `user`).
    pub fn in_user_namespace(&self) -> bool {
        self.namespace
            .as_ref()
            .is_some_and(|n| n.kind.as_deref() == Some("user"))
    }

    /// The full path of the project's namespace.
    pub fn namespace_path(&self) -> &str {
        match &self.namespace {
            Some(n) => &n.full_path,
            None => self
                .path_with_namespace
                .rsplit_once('/')
                .map(|(ns, _)| ns)
                .unwrap_or(""),
        }
    }
}

/// `NamespaceBasic` (`lib/api/entities/namespace_basic.rb`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ProjectNamespace {
    pub id: u64,
    pub full_path: String,
    /// `group` or `user` (`app/models/namespace.rb#kind`).
    #[serde(default)]
    pub kind: Option<String>,
}

/// A group as GitLab describes it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct GroupInfo {
    pub id: u64,
    pub full_path: String,
}

/// The user behind the API token (`GET /user`, `Entities::UserPublic`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ApiUser {
    pub id: u64,
    pub username: String,
    /// Project and group access tokens' users are bots, and so are service accounts.
    #[serde(default)]
    pub bot: bool,
    #[serde(default)]
    pub is_admin: bool,
}

impl ApiUser {
    /// Whether this is the bot user of a project or group access token: GitLab names them
    /// `project_<id>_bot...` and `group_<id>_bot...` (`ResourceAccessTokens::CreateService`). Such
    /// a user may not create access tokens (`ProjectPolicy`: `project_bot_access` prevents
    /// `create_resource_access_tokens`).
    pub fn is_access_token_bot(&self) -> bool {
        if !self.bot {
            return false;
        }
        let Some((kind, rest)) = self.username.split_once('_') else {
            return false;
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        matches!(kind, "project" | "group") && digits > 0 && rest[digits..].starts_with("_bot")
    }
}

/// A deploy token as GitLab lists it (never with its secret).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct DeployToken {
    pub id: u64,
    pub name: String,
    pub username: String,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub revoked: bool,
    #[serde(default)]
    pub expired: bool,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A project or group access token as GitLab lists it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct AccessToken {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// A date: access tokens expire at the start of that day, UTC.
    #[serde(default)]
    pub expires_at: Option<NaiveDate>,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub revoked: bool,
    #[serde(default)]
    pub user_id: Option<u64>,
    #[serde(default)]
    pub access_level: Option<u8>,
}

/// A token just created (or rotated): the only moment GitLab shows its secret.
#[derive(Clone, Debug)]
pub struct Created<T> {
    pub token: T,
    pub secret: SecretString,
}

#[derive(Deserialize)]
struct WithSecret<T> {
    #[serde(flatten)]
    token: T,
    token_secret: SecretString,
}

/// GitLab names the secret `token`; it is renamed on the way in so that no struct of ours
/// holds a secret in a plain `String`.
pub(super) fn split_secret<T: DeserializeOwned>(reply: &Reply) -> Result<Created<T>, ApiError> {
    let mut value: serde_json::Value = reply.json(SERVICE)?;
    if let Some(obj) = value.as_object_mut()
        && let Some(secret) = obj.remove("token")
    {
        obj.insert("token_secret".into(), secret);
    }
    let parsed: WithSecret<T> = serde_json::from_value(value).map_err(|e| ApiError::Transient {
        service: SERVICE,
        status: "unreadable answer".into(),
        message: format!("a created token without the expected fields: {e}"),
    })?;
    Ok(Created {
        token: parsed.token,
        secret: parsed.token_secret,
    })
}

/// What a new deploy token should be.
#[derive(Clone, Debug)]
pub struct NewDeployToken<'a> {
    pub name: &'a str,
    pub scopes: &'a [&'a str],
    pub expires_at: DateTime<Utc>,
}

/// What a new access token should be.
#[derive(Clone, Debug)]
pub struct NewAccessToken<'a> {
    pub name: &'a str,
    pub scopes: &'a [&'a str],
    pub expires_at: NaiveDate,
    /// 10 guest .. 50 owner; 20 (reporter) is enough to pull.
    pub access_level: u8,
}

/// A client of one GitLab instance's REST API.
#[derive(Clone)]
pub struct GitlabClient {
    pub(super) api: Api,
    pub(super) accounts: super::service_accounts::AccountCache,
    pub(super) homes: super::service_accounts::HomeCache,
}

/// What GitLab says about the API token regwarden uses.
#[derive(Clone, Debug, Deserialize)]
pub struct ApiTokenInfo {
    pub name: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub expires_at: Option<String>,
    #[serde(default)]
    pub active: bool,
}

impl ApiTokenInfo {
    /// The day the token expires (GitLab sends a date, at times with a time after it).
    pub fn expires_on(&self) -> Option<NaiveDate> {
        let d = self.expires_at.as_deref()?;
        NaiveDate::parse_from_str(d.get(..10).unwrap_or(d), "%Y-%m-%d").ok()
    }
}

impl GitlabClient {
    pub fn new(http: reqwest::Client, base: &Url, token: SecretString) -> Self {
        let api = Api::new(
            SERVICE,
            http,
            &directory_url(base, "api/v4"),
            HeaderName::from_static("private-token"),
            token,
            &["message", "error"],
        );
        Self {
            api,
            accounts: Default::default(),
            homes: Default::default(),
        }
    }

    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.api.retry = policy;
        self
    }

    pub(super) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.api
            .idempotent(Method::GET, path, &[], None)
            .await?
            .json(SERVICE)
    }

    /// Every item of a list, following GitLab's offset pagination (`x-next-page`).
    pub(super) async fn get_all<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<T>, ApiError> {
        let mut items = Vec::new();
        let mut page = 1;
        loop {
            let mut q = query.to_vec();
            q.push(("per_page", PER_PAGE.to_string()));
            q.push(("page", page.to_string()));
            let reply = self.api.idempotent(Method::GET, path, &q, None).await?;
            let batch: Vec<T> = reply.json(SERVICE)?;
            let empty = batch.is_empty();
            items.extend(batch);
            // `x-next-page` is empty on the last page; it stays even beyond 10,000 records,
            // where `x-total` and `rel="last"` are left out.
            let next = reply
                .header("x-next-page")
                .and_then(|v| v.trim().parse::<u32>().ok());
            match next {
                Some(n) if n > page && !empty && n <= MAX_PAGES => page = n,
                _ => break,
            }
        }
        Ok(items)
    }

    /// The API token's own record: proves the token works and shows its scopes and expiry.
    pub async fn current_token(&self) -> Result<ApiTokenInfo, ApiError> {
        self.get("personal_access_tokens/self").await
    }

    /// The user the API token acts as.
    pub async fn current_user(&self) -> Result<ApiUser, ApiError> {
        self.get("user").await
    }

    /// A project by numeric id or full path. GitLab follows an old path of a renamed or
    /// transferred project to it, until another project takes that path.
    pub async fn project(&self, id_or_path: &str) -> Result<Project, ApiError> {
        self.get(&Namespace::Project(id_or_path.into()).api_path())
            .await
    }

    /// A group by numeric id or full path (group paths do not redirect).
    pub async fn group(&self, id_or_path: &str) -> Result<GroupInfo, ApiError> {
        self.get(&Namespace::Group(id_or_path.into()).api_path())
            .await
    }

    /// The projects of a group and its subgroups, their own only: GitLab also lists the
    /// projects of other namespaces shared into the group unless `with_shared=false`. In id
    /// order, oldest first, so that a project created during the walk lands on the last page
    /// instead of shifting the others across a page boundary (the default order is
    /// `created_at desc`).
    pub async fn group_projects(&self, group: &str) -> Result<Vec<Project>, ApiError> {
        let path = format!("{}/projects", Namespace::Group(group.into()).api_path());
        self.get_all(
            &path,
            &[
                ("include_subgroups", "true".into()),
                ("archived", "false".into()),
                ("with_shared", "false".into()),
                ("order_by", "id".into()),
                ("sort", "asc".into()),
            ],
        )
        .await
    }

    /// One project of a group or its subgroups, its own (the first by id), or none: enough to
    /// read what GitLab reports for every project, such as its registry's address.
    pub async fn a_group_project(&self, group: &str) -> Result<Option<Project>, ApiError> {
        let path = format!("{}/projects", Namespace::Group(group.into()).api_path());
        let query = [
            ("include_subgroups", "true".to_string()),
            ("archived", "false".into()),
            ("with_shared", "false".into()),
            ("order_by", "id".into()),
            ("sort", "asc".into()),
            ("per_page", "1".into()),
        ];
        let reply = self
            .api
            .idempotent(Method::GET, &path, &query, None)
            .await?;
        let mut projects: Vec<Project> = reply.json(SERVICE)?;
        projects.truncate(1);
        Ok(projects.pop())
    }

    /// Every deploy token of a project or group; `active_only` leaves out revoked and
    /// expired ones.
    pub async fn deploy_tokens(
        &self,
        ns: &Namespace,
        active_only: bool,
    ) -> Result<Vec<DeployToken>, ApiError> {
        let mut query = Vec::new();
        if active_only {
            query.push(("active", "true".to_string()));
        }
        self.get_all(&format!("{}/deploy_tokens", ns.api_path()), &query)
            .await
    }

    pub async fn deploy_token(&self, ns: &Namespace, id: u64) -> Result<DeployToken, ApiError> {
        self.get(&format!("{}/deploy_tokens/{id}", ns.api_path()))
            .await
    }

    /// Creates a deploy token. A failure that may have created it anyway (5xx, timeout) is not
    /// blindly re-sent: the tokens are looked up by the new token's unique name first, and one
    /// found is revoked (its secret was in the lost answer, so nobody can use it) before the
    /// next try. A retry never leaves a second token behind.
    pub async fn create_deploy_token(
        &self,
        ns: &Namespace,
        new: &NewDeployToken<'_>,
    ) -> Result<Created<DeployToken>, ApiError> {
        let path = format!("{}/deploy_tokens", ns.api_path());
        let body = json!({
            "name": new.name,
            "scopes": new.scopes,
            "expires_at": new.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        let cleanup = || async {
            for t in self.deploy_tokens(ns, false).await? {
                if t.name == new.name && !t.revoked {
                    tracing::warn!(
                        token_id = t.id,
                        name = new.name,
                        "revoking a deploy token whose creation answer was lost"
                    );
                    self.revoke_deploy_token(ns, t.id).await?;
                }
            }
            Ok(())
        };
        let reply = self.create_once_only(&path, &body, cleanup).await?;
        split_secret(&reply)
    }

    /// Revokes a deploy token. Revoking one already gone succeeds.
    pub async fn revoke_deploy_token(&self, ns: &Namespace, id: u64) -> Result<(), ApiError> {
        let path = format!("{}/deploy_tokens/{id}", ns.api_path());
        match self.api.idempotent(Method::DELETE, &path, &[], None).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The access tokens of a project or group (`state=active` when `active_only`).
    pub async fn access_tokens(
        &self,
        ns: &Namespace,
        active_only: bool,
    ) -> Result<Vec<AccessToken>, ApiError> {
        let mut query = Vec::new();
        if active_only {
            query.push(("state", "active".to_string()));
        }
        self.get_all(&format!("{}/access_tokens", ns.api_path()), &query)
            .await
    }

    /// Creates an access token, with the same care as [`Self::create_deploy_token`].
    pub async fn create_access_token(
        &self,
        ns: &Namespace,
        new: &NewAccessToken<'_>,
    ) -> Result<Created<AccessToken>, ApiError> {
        let path = format!("{}/access_tokens", ns.api_path());
        let body = json!({
            "name": new.name,
            "scopes": new.scopes,
            "expires_at": new.expires_at.format("%Y-%m-%d").to_string(),
            "access_level": new.access_level,
        });
        let cleanup = || async {
            for t in self.access_tokens(ns, true).await? {
                if t.name == new.name {
                    tracing::warn!(
                        token_id = t.id,
                        name = new.name,
                        "revoking an access token whose creation answer was lost"
                    );
                    self.revoke_access_token(ns, t.id).await?;
                }
            }
            Ok(())
        };
        let reply = self.create_once_only(&path, &body, cleanup).await?;
        split_secret(&reply)
    }

    /// Revokes an access token. Revoking one already gone succeeds, and so does one already
    /// revoked: while GitLab deletes its bot user (asynchronously) it answers 400 "Failed to
    /// find bot user", then 404 (`ResourceAccessTokens::RevokeService`).
    pub async fn revoke_access_token(&self, ns: &Namespace, id: u64) -> Result<(), ApiError> {
        let path = format!("{}/access_tokens/{id}", ns.api_path());
        match self.api.idempotent(Method::DELETE, &path, &[], None).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() || bot_user_gone(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Rotates an access token: GitLab revokes it at once and returns its successor.
    ///
    /// Sent exactly once, whatever happens: GitLab revokes the whole token family when a
    /// rotated token is rotated again, so a retry could destroy the successor. After a lost
    /// answer the caller must look at the tokens to learn what happened.
    pub async fn rotate_access_token(
        &self,
        ns: &Namespace,
        id: u64,
        expires_at: NaiveDate,
    ) -> Result<Created<AccessToken>, ApiError> {
        let path = format!("{}/access_tokens/{id}/rotate", ns.api_path());
        let body = json!({ "expires_at": expires_at.format("%Y-%m-%d").to_string() });
        let reply = self.api.once(Method::POST, &path, &[], Some(&body)).await?;
        split_secret(&reply)
    }

    /// POSTs a create. A refusal is final; a 429 is retried (GitLab refused before acting);
    /// a failure that may have been applied runs `cleanup` before the next try, and once
    /// more after the last one.
    pub(super) async fn create_once_only<C, Fut>(
        &self,
        path: &str,
        body: &serde_json::Value,
        cleanup: C,
    ) -> Result<Reply, ApiError>
    where
        C: Fn() -> Fut,
        Fut: Future<Output = Result<(), ApiError>>,
    {
        let maybe_applied = AtomicBool::new(false);
        let what = format!("{SERVICE} POST {path}");
        let result = self
            .api
            .retry
            .run(&what, || async {
                if maybe_applied.load(Ordering::Relaxed) {
                    cleanup().await?;
                    maybe_applied.store(false, Ordering::Relaxed);
                }
                let result = self.api.once(Method::POST, path, &[], Some(body)).await;
                if let Err(e) = &result
                    && !e.certainly_not_applied()
                {
                    maybe_applied.store(true, Ordering::Relaxed);
                }
                result
            })
            .await;
        if result.is_err() && maybe_applied.load(Ordering::Relaxed) {
            // Best effort: the caller reports the original error either way.
            if let Err(e) = cleanup().await {
                tracing::warn!(error = %e, call = %what, "cannot clean up after a failed create");
            }
        }
        result
    }
}

/// GitLab's answer to revoking an access token whose bot user is being deleted: the token is
/// revoked already.
fn bot_user_gone(e: &ApiError) -> bool {
    e.status() == Some(400) && e.message().contains("Failed to find bot user")
}

impl std::fmt::Debug for GitlabClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitlabClient")
            .field("base", &self.api.base().as_str())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn paths_travel_url_encoded_as_one_segment() {
        assert_eq!(
            Namespace::Project("acme/api".into()).api_path(),
            "projects/acme%2Fapi"
        );
        assert_eq!(Namespace::Group("42".into()).api_path(), "groups/42");
        assert_eq!(
            Namespace::Group("a b/ü".into()).api_path(),
            "groups/a%20b%2F%C3%BC"
        );
    }

    #[test]
    fn a_created_token_keeps_its_secret_out_of_the_plain_fields() {
        let reply = Reply {
            headers: Default::default(),
            body: r#"{"id":7,"name":"regwarden-api-1","username":"gitlab+deploy-token-7","expires_at":"2027-01-01T00:00:00.000Z","revoked":false,"expired":false,"scopes":["read_registry"],"token":"gldt-s3cret"}"#.into(),
        };
        let created: Created<DeployToken> = split_secret(&reply).unwrap();
        assert_eq!(created.token.username, "gitlab+deploy-token-7");
        assert_eq!(created.secret.expose_secret(), "gldt-s3cret");
        assert!(!format!("{created:?}").contains("s3cret"));
    }
}
