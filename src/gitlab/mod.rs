//! GitLab: the REST API client and webhook events. Wire types stay in this module; the rest of
//! regwarden sees its own (`Token`, `events::Event`).

mod client;
pub mod events;
mod hooks;
mod service_accounts;
mod tokens;

pub use hooks::{Hook, same_url};
pub use service_accounts::{Account, Home, OwnRotation, PersonalAccessToken};
pub use tokens::{MAX_ACCESS_TOKEN_DAYS, Token, TokenSpec, access_token_expiry, start_of};

pub use client::{
    AccessToken, ApiTokenInfo, ApiUser, Created, DeployToken, GitlabClient, GroupInfo, Namespace,
    NewAccessToken, NewDeployToken, Project, ProjectNamespace,
};
