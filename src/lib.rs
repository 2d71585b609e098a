//! regwarden keeps the GitLab container-registry credentials that Qovery uses valid: it
//! creates GitLab tokens, checks them against the registry itself, and only then hands them to
//! Qovery. The binary is a thin shell around this library; see `cli` for the commands.

pub mod checklist;
pub mod cli;
pub mod config;
pub mod credential;
pub mod gitlab;
pub mod hooks;
pub mod inventory;
pub mod marker;
pub mod outbound;
pub mod own_token;
pub mod qovery;
pub mod reconcile;
pub mod registry;
pub mod server;
pub mod store;
