//! GitLab service accounts, their personal access tokens, and the memberships that let an
//! account reach a project's registry (`docs/reference/gitlab.md`, "Personal access tokens,
//! service accounts and rotation", §1 and §3).
//!
//! regwarden never rotates these tokens with GitLab's rotate endpoints: those revoke the old
//! token at once (no grace period), and rotating one already revoked revokes the whole token
//! family. It mints a new token, and deletes the previous one after the grace period.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::Namespace;
use super::client::{Created, GitlabClient, SERVICE, encode_segment, split_secret};
use crate::config::{AccountHome, OwnTokenKind};
use crate::outbound::ApiError;

/// Where one binding's service account lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Home {
    /// A group service account of this top-level group.
    Group(String),
    /// A project service account of this project.
    Project(String),
    /// An instance service account (self-managed).
    Instance,
}

impl Home {
    fn accounts_path(&self) -> String {
        match self {
            Home::Group(g) => format!("groups/{}/service_accounts", encode_segment(g)),
            Home::Project(p) => format!("projects/{}/service_accounts", encode_segment(p)),
            Home::Instance => "service_accounts".into(),
        }
    }

    /// Where the account's tokens are listed, and (with `Instance`, filtered by `user_id`)
    /// where one is revoked.
    fn tokens_path(&self, user: u64) -> String {
        match self {
            Home::Group(_) | Home::Project(_) => {
                format!("{}/{user}/personal_access_tokens", self.accounts_path())
            }
            Home::Instance => "personal_access_tokens".into(),
        }
    }

    fn create_token_path(&self, user: u64) -> String {
        match self {
            Home::Group(_) | Home::Project(_) => self.tokens_path(user),
            // An administrator mints a user's token (self-managed only).
            Home::Instance => format!("users/{user}/personal_access_tokens"),
        }
    }
}

impl std::fmt::Display for Home {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Home::Group(g) => write!(f, "group {g}"),
            Home::Project(p) => write!(f, "project {p}"),
            Home::Instance => f.write_str("the instance"),
        }
    }
}

/// A service account.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Account {
    pub id: u64,
    pub username: String,
}

/// A personal access token, as GitLab lists it (never its secret).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct PersonalAccessToken {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub user_id: Option<u64>,
    /// Midnight UTC starts this day.
    pub expires_at: Option<NaiveDate>,
    #[serde(default)]
    pub revoked: bool,
    #[serde(default)]
    pub active: bool,
}

/// The top-level group above each bound namespace, once GitLab said it: a namespace's
/// top-level group does not change unless it is transferred.
#[derive(Clone, Default)]
pub(super) struct HomeCache(Arc<Mutex<HashMap<Namespace, String>>>);

/// The first segment of a full path: its top-level group (or user).
fn top_level(path: &str) -> String {
    path.split('/').next().unwrap_or(path).to_string()
}

/// What a self-rotate of the API token gave: the new token, and its expiry when readable.
pub struct OwnRotation {
    pub secret: secrecy::SecretString,
    pub expires_on: Option<NaiveDate>,
}

impl OwnRotation {
    /// The secret first; `expires_at` as a date (`2027-01-31`) or a date and time, `None`
    /// when it is neither. `None` only when there is no token at all.
    fn read(body: &str) -> Option<OwnRotation> {
        let mut value: serde_json::Value = serde_json::from_str(body).ok()?;
        let secret = match value.get_mut("token")?.take() {
            serde_json::Value::String(t) if !t.is_empty() => secrecy::SecretString::from(t),
            _ => return None,
        };
        let expires_on = value
            .get("expires_at")
            .and_then(serde_json::Value::as_str)
            .and_then(|d| NaiveDate::parse_from_str(d.get(..10)?, "%Y-%m-%d").ok());
        Some(OwnRotation { secret, expires_on })
    }
}

/// Accounts found by username, per home: an account's id never changes, so one look-up per
/// process serves every later pass (a steady pass then costs one call per binding).
#[derive(Clone, Default)]
pub(super) struct AccountCache(Arc<Mutex<HashMap<(Home, String), Account>>>);

impl AccountCache {
    fn get(&self, home: &Home, username: &str) -> Option<Account> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(home.clone(), username.to_string())).cloned()
    }

    fn put(&self, home: &Home, account: &Account) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.insert((home.clone(), account.username.clone()), account.clone());
    }

    fn forget(&self, home: &Home, username: &str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&(home.clone(), username.to_string()));
    }
}

#[derive(Deserialize)]
struct Member {
    access_level: u8,
}

impl GitlabClient {
    /// Where the service account of a binding on `ns` lives, as `home` says: a group account
    /// in the top-level group above the bound project or group (GitLab creates group service
    /// accounts there only), a project account in the bound project, or the instance. The
    /// top-level group is read from GitLab: a project given by id, or in a user's personal
    /// namespace (which has no group, hence no group service accounts: said so), cannot be told
    /// from its path.
    pub async fn account_home(&self, home: AccountHome, ns: &Namespace) -> Result<Home, ApiError> {
        let ns = match (home, ns) {
            (AccountHome::Instance, _) => return Ok(Home::Instance),
            (AccountHome::Project, Namespace::Project(p)) => return Ok(Home::Project(p.clone())),
            // The configuration refuses a project home for a group binding; a group's top-level
            // group is the nearest home there is.
            (_, ns) => ns,
        };
        if let Some(top) = self
            .homes
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(ns)
        {
            return Ok(Home::Group(top.clone()));
        }
        let top = match ns {
            // A path says its top-level group: no call (a steady pass stays at one call per
            // binding). A user namespace shows up as a 404 for the group, explained then
            // (`explain_missing_home`).
            Namespace::Group(g) | Namespace::Project(g) if g.parse::<u64>().is_err() => {
                top_level(g)
            }
            Namespace::Group(g) => top_level(&self.group(g).await?.full_path),
            Namespace::Project(p) => {
                let project = self.project(p).await?;
                if project.in_user_namespace() {
                    return Err(ApiError::Setup {
                        service: SERVICE,
                        message: format!(
                            "project {} is in the personal namespace of a user, which has no group and so no group service accounts: set service_account_home = \"project\" (or \"instance\" on self-managed GitLab)",
                            project.path_with_namespace
                        ),
                    });
                }
                top_level(project.namespace_path())
            }
        };
        self.homes
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ns.clone(), top.clone());
        Ok(Home::Group(top))
    }

    /// `e`, or, when it is GitLab's 404 for the group home of a project that lives in a user's
    /// personal namespace, what that means.
    pub async fn explain_missing_home(&self, e: ApiError, ns: &Namespace) -> ApiError {
        let Namespace::Project(p) = ns else { return e };
        if !(e.is_not_found() && e.message().contains("Group Not Found")) {
            return e;
        }
        match self.project(p).await {
            Ok(project) if project.in_user_namespace() => ApiError::Setup {
                service: SERVICE,
                message: format!(
                    "project {} is in the personal namespace of a user, which has no group and so no group service accounts: set service_account_home = \"project\" (or \"instance\" on self-managed GitLab)",
                    project.path_with_namespace
                ),
            },
            _ => e,
        }
    }

    /// The service account `username` of `home`, if it exists.
    pub async fn service_account(
        &self,
        home: &Home,
        username: &str,
    ) -> Result<Option<Account>, ApiError> {
        if let Some(account) = self.accounts.get(home, username) {
            return Ok(Some(account));
        }
        let found = self
            .get_all::<Account>(&home.accounts_path(), &[])
            .await?
            .into_iter()
            .find(|a| a.username == username);
        if let Some(a) = &found {
            self.accounts.put(home, a);
        }
        Ok(found)
    }

    /// Creates service account `username` in `home`. After a refusal or an answer that was
    /// lost, the account is looked up again: another binding or process may just have created
    /// it (GitLab then answers that the username is taken), or this request did.
    pub async fn create_service_account(
        &self,
        home: &Home,
        username: &str,
    ) -> Result<Account, ApiError> {
        let body = json!({ "name": username, "username": username });
        match self
            .api
            .once(Method::POST, &home.accounts_path(), &[], Some(&body))
            .await
        {
            Ok(reply) => {
                let account: Account = reply.json(SERVICE)?;
                self.accounts.put(home, &account);
                Ok(account)
            }
            Err(e) => {
                self.accounts.forget(home, username);
                match self.service_account(home, username).await {
                    Ok(Some(account)) => Ok(account),
                    // The creation's own error says more than the look-up's.
                    _ => Err(e),
                }
            }
        }
    }

    /// The active personal access tokens of account `user` of `home` whose name contains
    /// `named` (all of them when empty). One account serves many bindings: the filter keeps a
    /// binding's look-up to one page.
    pub async fn account_tokens(
        &self,
        home: &Home,
        user: u64,
        named: &str,
    ) -> Result<Vec<PersonalAccessToken>, ApiError> {
        let mut query = vec![("state", "active".to_string())];
        if !named.is_empty() {
            query.push(("search", named.to_string()));
        }
        if *home == Home::Instance {
            query.push(("user_id", user.to_string()));
        }
        let listed = self
            .get_all::<PersonalAccessToken>(&home.tokens_path(user), &query)
            .await;
        match listed {
            // The account went away (deleted by hand): look it up again next time.
            Err(e) if e.is_not_found() => {
                self.accounts
                    .0
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain(|(h, _), a| !(h == home && a.id == user));
                Err(e)
            }
            other => other,
        }
    }

    /// Mints a personal access token of account `user`. A lost answer is cleaned up like a
    /// deploy token's: every active token of that name is deleted before the next try.
    pub async fn create_account_token(
        &self,
        home: &Home,
        user: u64,
        name: &str,
        scopes: &[&str],
        expires_at: NaiveDate,
    ) -> Result<Created<PersonalAccessToken>, ApiError> {
        let body = json!({
            "name": name,
            "scopes": scopes,
            "expires_at": expires_at.format("%Y-%m-%d").to_string(),
        });
        let cleanup = || async {
            for t in self.account_tokens(home, user, name).await? {
                if t.name == name {
                    tracing::warn!(
                        token_id = t.id,
                        name,
                        "deleting a personal access token whose creation answer was lost"
                    );
                    self.revoke_account_token(home, user, t.id).await?;
                }
            }
            Ok(())
        };
        let reply = self
            .create_once_only(&home.create_token_path(user), &body, cleanup)
            .await?;
        split_secret(&reply)
    }

    /// Deletes personal access token `id` of account `user`; one already gone counts as
    /// deleted.
    pub async fn revoke_account_token(
        &self,
        home: &Home,
        user: u64,
        id: u64,
    ) -> Result<(), ApiError> {
        let path = format!("{}/{id}", home.tokens_path(user));
        match self.api.idempotent(Method::DELETE, &path, &[], None).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Makes account `user` a member of `ns` with at least `level` (20 Reporter pulls, 30
    /// Developer pushes), directly or through a parent group; a higher role is left as it is.
    pub async fn ensure_member(
        &self,
        ns: &Namespace,
        user: u64,
        level: u8,
    ) -> Result<(), ApiError> {
        let all = format!("{}/members/all/{user}", ns.api_path());
        match self.get::<Member>(&all).await {
            Ok(m) if m.access_level >= level => return Ok(()),
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let members = format!("{}/members", ns.api_path());
        let body = json!({ "user_id": user, "access_level": level });
        match self
            .api
            .idempotent(Method::POST, &members, &[], Some(&body))
            .await
        {
            Ok(_) => Ok(()),
            // Already a direct member, with a lower role.
            Err(ApiError::Permanent { status: 409, .. }) => {
                let one = format!("{members}/{user}");
                let body = json!({ "access_level": level });
                self.api
                    .idempotent(Method::PUT, &one, &[], Some(&body))
                    .await
                    .map(|_| ())
            }
            Err(e) => Err(e),
        }
    }

    /// Rotates the API token regwarden itself uses, with the self-rotate endpoint of its kind
    /// (`personal_access_tokens/self/rotate`, or `<project or group>/access_tokens/self/rotate`):
    /// GitLab revokes it at once and answers its successor. Sent exactly once, whatever
    /// happens: rotating a token already revoked revokes its whole family, so a retry after a
    /// lost answer would destroy the successor.
    ///
    /// The answer's `token` is taken out first, whatever the rest holds: GitLab has revoked the
    /// old token by then, so the new one must reach its file even when another field is not
    /// what regwarden expects (`expires_at`, read leniently, as a date or a date and time).
    pub async fn rotate_own_token(
        &self,
        token: &secrecy::SecretString,
        kind: OwnTokenKind,
        namespace: Option<&str>,
        expires_at: NaiveDate,
    ) -> Result<OwnRotation, ApiError> {
        let path = match (kind, namespace) {
            (OwnTokenKind::Project, Some(p)) => format!(
                "{}/access_tokens/self/rotate",
                Namespace::Project(p.into()).api_path()
            ),
            (OwnTokenKind::Group, Some(g)) => format!(
                "{}/access_tokens/self/rotate",
                Namespace::Group(g.into()).api_path()
            ),
            _ => "personal_access_tokens/self/rotate".into(),
        };
        let body = json!({ "expires_at": expires_at.format("%Y-%m-%d").to_string() });
        let reply = self
            .api
            .with_auth_value(token.clone())
            .once(Method::POST, &path, &[], Some(&body))
            .await?;
        OwnRotation::read(&reply.body).ok_or_else(|| ApiError::Transient {
            service: SERVICE,
            status: "unreadable answer".into(),
            message: "the self-rotate answer holds no token".into(),
        })
    }

    /// From now on, every clone of this client sends `token` (after a rotation of its own).
    pub fn set_token(&self, token: secrecy::SecretString) {
        self.api.set_auth_value(token);
    }

    /// Drops a cached account, after GitLab said it is gone.
    pub(super) fn forget_account(&self, home: &Home, username: &str) {
        self.accounts.forget(home, username);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotated_token_is_read_first_and_its_expiry_leniently() {
        use secrecy::ExposeSecret;
        let r = OwnRotation::read(
            r#"{"token":"glpat-new","expires_at":"2027-01-31T00:00:00.000Z","id":"not-a-number"}"#,
        )
        .unwrap();
        assert_eq!(r.secret.expose_secret(), "glpat-new");
        assert_eq!(r.expires_on, NaiveDate::from_ymd_opt(2027, 1, 31));
        let r = OwnRotation::read(r#"{"token":"glpat-new","expires_at":"soon"}"#).unwrap();
        assert_eq!(r.expires_on, None);
        assert!(OwnRotation::read(r#"{"id":1}"#).is_none());
        assert!(OwnRotation::read("<html>").is_none());
    }

    #[test]
    fn an_account_home_has_its_endpoints() {
        assert_eq!(
            Home::Group("acme".into()).create_token_path(7),
            "groups/acme/service_accounts/7/personal_access_tokens"
        );
        assert_eq!(
            Home::Project("acme/api".into()).tokens_path(7),
            "projects/acme%2Fapi/service_accounts/7/personal_access_tokens"
        );
        assert_eq!(
            Home::Instance.create_token_path(7),
            "users/7/personal_access_tokens"
        );
        assert_eq!(Home::Instance.tokens_path(7), "personal_access_tokens");
        assert_eq!(top_level("acme/platform/api"), "acme");
    }
}
