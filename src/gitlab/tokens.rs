//! Registry tokens in regwarden's own terms: "the active tokens of this kind on this
//! namespace", "make one", "revoke one". Which endpoint serves a kind, how it names its scopes
//! and expiry, which role an access token needs, and what username the registry then takes all
//! stay here, so that a new kind of credential touches this file and the configuration, not the
//! engine.

use chrono::{DateTime, Utc};

use super::{GitlabClient, Namespace, NewAccessToken, NewDeployToken};
use crate::config::{CredentialKind, Scope};
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

impl GitlabClient {
    /// The active tokens of `kind` on `ns`.
    pub async fn tokens(
        &self,
        kind: CredentialKind,
        ns: &Namespace,
    ) -> Result<Vec<Token>, ApiError> {
        Ok(match kind {
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
                    // Access tokens expire at the start of their day, UTC.
                    expires_at: t
                        .expires_at
                        .map(|d| d.and_time(Default::default()).and_utc()),
                })
                .collect(),
        })
    }

    /// Makes a token of `kind` on `ns`, and returns it with the credential the registry takes
    /// for it (GitLab shows the secret only now).
    pub async fn create_token(
        &self,
        kind: CredentialKind,
        ns: &Namespace,
        spec: TokenSpec<'_>,
    ) -> Result<(Token, Credential), ApiError> {
        let scopes = scope_names(spec.scopes);
        match kind {
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
                            expires_at: spec.expires_at.date_naive(),
                            access_level: access_level(spec.scopes),
                        },
                    )
                    .await?;
                // The registry takes any username with an access token: its name says whose.
                let credential = Credential::new(created.token.name.clone(), created.secret);
                let token = Token {
                    id: created.token.id,
                    name: created.token.name,
                    expires_at: created
                        .token
                        .expires_at
                        .map(|d| d.and_time(Default::default()).and_utc()),
                };
                Ok((token, credential))
            }
        }
    }

    /// Revokes token `id` of `kind` on `ns`; one already gone counts as revoked.
    pub async fn revoke_token(
        &self,
        kind: CredentialKind,
        ns: &Namespace,
        id: u64,
    ) -> Result<(), ApiError> {
        match kind {
            CredentialKind::DeployToken => self.revoke_deploy_token(ns, id).await,
            CredentialKind::AccessToken => self.revoke_access_token(ns, id).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
