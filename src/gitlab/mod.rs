//! GitLab: the REST API client. Wire types stay in this module.

mod client;
pub mod events;

pub use client::{
    AccessToken, ApiTokenInfo, Created, DeployToken, GitlabClient, Namespace, NewAccessToken,
    NewDeployToken, Project, ProjectNamespace,
};
