//! GitLab: the REST API client and webhook events. Wire types stay in this module; the rest of
//! regwarden sees its own (`Token`, `events::Event`).

mod client;
pub mod events;
mod service_accounts;
mod tokens;

pub use service_accounts::{Account, Home, PersonalAccessToken};
pub use tokens::{Token, TokenSpec, start_of};

pub use client::{
    AccessToken, ApiTokenInfo, Created, DeployToken, GitlabClient, Namespace, NewAccessToken,
    NewDeployToken, Project, ProjectNamespace,
};
