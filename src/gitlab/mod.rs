//! GitLab: the REST API client. Wire types stay in this module.

mod client;

pub use client::{ApiTokenInfo, GitlabClient};
