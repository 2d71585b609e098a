//! Registry tokens in regwarden's own terms: "the active tokens of this kind on this
//! namespace", "make one", "revoke one". Which endpoint serves a kind, how it names its scopes
//! and expiry, which role an access token needs, and what username the registry then takes all
//! stay here, so that a new kind of credential touches this file and the configuration, not the
//! engine.

use chrono::{DateTime, Utc};

use super::{GitlabClient, Home, Namespace, NewAccessToken, NewDeployToken};
use crate::config::{CredentialKind, Policy, Scope};
use crate::credential::Credential;
use crate::outbound::ApiError;

/// A token as regwarden reasons about it, whatever its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub id: u64,
    pub name: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A token to make.
#[derive(Clone, Copy, Debug)]
pub struct TokenSpec<'a> {
    pub name: &'a str,
    pub scopes: &'a [Scope],
    pub expires_at: DateTime<Utc>,
}

fn scope_names(scopes: &[Scope]) -> Vec<&'static str> {
    scopes
        .iter()
        .map(|s| match s {
            Scope::ReadRegistry => "read_registry",
            Scope::WriteRegistry => "write_registry",
        })
        .collect()
}

/// The least role an access token needs: Reporter pulls, Developer pushes.
fn access_level(scopes: &[Scope]) -> u8 {
    if scopes.contains(&Scope::WriteRegistry) {
        30
    } else {
        20
    }
}

/// Midnight UTC of `day`: when personal and access tokens expire.
pub fn start_of(day: chrono::NaiveDate) -> DateTime<Utc> {
    day.and_time(Default::default()).and_utc()
}

impl GitlabClient {
    /// The active tokens `policy`'s kind of credential keeps on `ns`. Where GitLab can filter
    /// by name (a service account's tokens, which many bindings share), only those whose name
    /// contains `named`; elsewhere all of them, and the caller picks its own.
    pub async fn tokens(
        &self,
        policy: &Policy,
        ns: &Namespace,
        named: &str,
    ) -> Result<Vec<Token>, ApiError> {
        Ok(match policy.credential {
            CredentialKind::DeployToken => self
                .deploy_tokens(ns, true)
                .await?
                .into_iter()
                .map(|t| Token {
                    id: t.id,
                    name: t.name,
                    expires_at: t.expires_at,
                })
                .collect(),
            CredentialKind::AccessToken => self
                .access_tokens(ns, true)
                .await?
                .into_iter()
                .map(|t| Token {
                    id: t.id,
                    name: t.name,
                    expires_at: t.expires_at.map(start_of),
                })
                .collect(),
            CredentialKind::ServiceAccount => {
                let (home, username) = self.account_of(policy, ns).await?;
                // No account yet: no tokens yet (a rotation creates it, or says it is missing).
                let found = match self.service_account(&home, username).await {
                    Ok(found) => found,
                    Err(e) => return Err(self.explain_missing_home(e, ns).await),
                };
                let Some(account) = found else {
                    return Ok(Vec::new());
                };
                let listed = match self.account_tokens(&home, account.id, named).await {
                    Err(e) if e.is_not_found() => {
                        self.forget_account(&home, username);
                        return Ok(Vec::new());
                    }
                    other => other?,
                };
                listed
                    .into_iter()
                    .map(|t| Token {
                        id: t.id,
                        name: t.name,
                        expires_at: t.expires_at.map(start_of),
                    })
                    .collect()
            }
        })
    }

    /// Makes a token of `policy`'s kind on `ns`, and returns it with the credential the
    /// registry takes for it (GitLab shows the secret only now).
    pub async fn create_token(
        &self,
        policy: &Policy,
        ns: &Namespace,
        spec: TokenSpec<'_>,
    ) -> Result<(Token, Credential), ApiError> {
        let scopes = scope_names(spec.scopes);
        match policy.credential {
            CredentialKind::DeployToken => {
                let created = self
                    .create_deploy_token(
                        ns,
                        &NewDeployToken {
                            name: spec.name,
                            scopes: &scopes,
                            expires_at: spec.expires_at,
                        },
                    )
                    .await?;
                let credential = Credential::new(created.token.username, created.secret);
                let token = Token {
                    id: created.token.id,
                    name: created.token.name,
                    expires_at: created.token.expires_at,
                };
                Ok((token, credential))
            }
            CredentialKind::AccessToken => {
                let created = self
                    .create_access_token(
                        ns,
                        &NewAccessToken {
                            name: spec.name,
                            scopes: &scopes,
                            expires_at: access_token_expiry(
                                spec.expires_at,
                                Utc::now().date_naive(),
                            ),
                            access_level: access_level(spec.scopes),
                        },
                    )
                    .await
                    .map_err(|e| explain_refusal(e, policy.credential))?;
                // The registry takes any username with an access token: its name says whose.
                let credential = Credential::new(created.token.name.clone(), created.secret);
                let token = Token {
                    id: created.token.id,
                    name: created.token.name,
                    expires_at: created.token.expires_at.map(start_of),
                };
                Ok((token, credential))
            }
            CredentialKind::ServiceAccount => {
                let (home, username) = self.account_of(policy, ns).await?;
                let found = match self.service_account(&home, username).await {
                    Ok(found) => found,
                    Err(e) => return Err(self.explain_missing_home(e, ns).await),
                };
                let account = match found {
                    Some(a) => a,
                    None if policy.create_service_account => {
                        self.create_service_account(&home, username).await?
                    }
                    None => {
                        return Err(ApiError::NotFound {
                            service: super::client::SERVICE,
                            message: format!(
                                "no service account {username:?} in {home}: create it in GitLab, or set create_service_account = true"
                            ),
                        });
                    }
                };
                // A service account reaches a registry through its membership: the least
                // role that pulls (or pushes, with write_registry).
                self.ensure_member(ns, account.id, access_level(spec.scopes))
                    .await?;
                let created = self
                    .create_account_token(
                        &home,
                        account.id,
                        spec.name,
                        &scopes,
                        access_token_expiry(spec.expires_at, Utc::now().date_naive()),
                    )
                    .await
                    .map_err(|e| explain_refusal(e, policy.credential))?;
                // The registry takes the account's username with its token.
                let credential = Credential::new(account.username, created.secret);
                let token = Token {
                    id: created.token.id,
                    name: created.token.name,
                    expires_at: created.token.expires_at.map(start_of),
                };
                Ok((token, credential))
            }
        }
    }

    /// Revokes token `id` of `policy`'s kind on `ns`; one already gone counts as revoked.
    pub async fn revoke_token(
        &self,
        policy: &Policy,
        ns: &Namespace,
        id: u64,
    ) -> Result<(), ApiError> {
        match policy.credential {
            CredentialKind::DeployToken => self.revoke_deploy_token(ns, id).await,
            CredentialKind::AccessToken => self.revoke_access_token(ns, id).await,
            CredentialKind::ServiceAccount => {
                let (home, username) = self.account_of(policy, ns).await?;
                match self.service_account(&home, username).await? {
                    Some(account) => self.revoke_account_token(&home, account.id, id).await,
                    // The account is gone, and its tokens with it.
                    None => Ok(()),
                }
            }
        }
    }
}

impl GitlabClient {
    /// Where a `service_account` policy's account lives for `ns`, and its username (the
    /// configuration requires one with this credential).
    async fn account_of<'p>(
        &self,
        policy: &'p Policy,
        ns: &Namespace,
    ) -> Result<(Home, &'p str), ApiError> {
        let home = self.account_home(policy.service_account_home, ns).await?;
        Ok((home, policy.service_account.as_deref().unwrap_or_default()))
    }
}

/// The longest lifetime regwarden asks of a personal, project or group access token, in days.
/// GitLab refuses an expiry later than `Date.current` + 365 days, and `Date.current` is the
/// day in the instance's time zone, which can be a day behind UTC's: 364 days from today (UTC)
/// is inside the limit wherever the instance is. An administrator may set a lower maximum;
/// GitLab's refusal then names the setting ([`explain_refusal`]).
pub const MAX_ACCESS_TOKEN_DAYS: i64 = 364;

/// The day a personal, project or group access token asked to expire at `at` may expire:
/// that day, or the last day inside GitLab's lifetime limit.
pub fn access_token_expiry(at: DateTime<Utc>, today: chrono::NaiveDate) -> chrono::NaiveDate {
    at.date_naive()
        .min(today + chrono::Duration::days(MAX_ACCESS_TOKEN_DAYS))
}

/// GitLab's refusals of a new token that mean a setting must change, with that setting named;
/// GitLab's own message stays in the error.
fn explain_refusal(e: ApiError, kind: CredentialKind) -> ApiError {
    let message = e.message();
    let hint = if e.status() == Some(400) && message.contains("does not have permission to create")
    {
        Some(format!(
            "GitLab refused to create the {kind} ({message}): the API token is a project or group access token, and GitLab lets no bot user create access tokens. Make the API token a personal access token (a person's or a service account's) with the Maintainer role and the api scope, or use credential = \"deploy_token\""
        ))
    } else if e.status() == Some(400) && message.contains("Expires at must be before") {
        Some(format!(
            "GitLab refused the new {kind}'s expiry ({message}): lower `lifetime` ([defaults], the binding or the [[auto_bind]] rule) below the instance's maximum lifetime of access tokens (Admin area > Settings > General > Account and limit)"
        ))
    } else {
        None
    };
    match hint {
        Some(message) => ApiError::Setup {
            service: super::client::SERVICE,
            message,
        },
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_token_never_asks_for_more_than_gitlab_allows_anywhere() {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        let at = |d: chrono::NaiveDate| start_of(d) + chrono::Duration::hours(23);
        let in_30 = today + chrono::Duration::days(30);
        assert_eq!(access_token_expiry(at(in_30), today), in_30);
        let in_365 = today + chrono::Duration::days(365);
        assert_eq!(
            access_token_expiry(at(in_365), today),
            today + chrono::Duration::days(364),
            "an instance a day behind UTC allows today (its) + 365 = today (UTC) + 364"
        );
    }

    #[test]
    fn refusals_that_need_a_setting_name_it() {
        let bot = ApiError::Permanent {
            service: "GitLab",
            status: 400,
            message:
                "400 Bad request - User does not have permission to create project access token"
                    .into(),
        };
        let e = explain_refusal(bot, CredentialKind::AccessToken).to_string();
        assert!(e.contains("personal access token"), "{e}");
        assert!(e.contains("User does not have permission"), "{e}");
        let long = ApiError::Permanent {
            service: "GitLab",
            status: 400,
            message: "400 Bad request - Expires at must be before 2027-06-01".into(),
        };
        let e = explain_refusal(long, CredentialKind::ServiceAccount).to_string();
        assert!(
            e.contains("lower `lifetime`") && e.contains("2027-06-01"),
            "{e}"
        );
        let other = ApiError::Permanent {
            service: "GitLab",
            status: 400,
            message: "name is missing".into(),
        };
        assert!(matches!(
            explain_refusal(other, CredentialKind::AccessToken),
            ApiError::Permanent { .. }
        ));
    }

    #[test]
    fn an_access_token_gets_the_least_role_for_its_scopes() {
        assert_eq!(access_level(&[Scope::ReadRegistry]), 20);
        assert_eq!(
            access_level(&[Scope::ReadRegistry, Scope::WriteRegistry]),
            30
        );
        assert_eq!(
            scope_names(&[Scope::ReadRegistry, Scope::WriteRegistry]),
            ["read_registry", "write_registry"]
        );
    }
}
