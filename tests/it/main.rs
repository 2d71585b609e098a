//! regwarden's integration tests, one binary: the real `regwarden` binary, real servers where
//! one runs here (the container registry, PostgreSQL, Prism, gitlab-ci-local, the built image),
//! and stateful fakes of GitLab's and Qovery's APIs (`support/`). A module per area.

mod support;

mod check;
mod checklist;
mod ci_component;
mod ci_endpoint;
mod config_cli;
mod deployed_images;
mod exit_codes;
mod faithful;
mod getting_started;
mod gitlab_client;
mod gitlab_contract;
mod hooks;
mod identity;
mod image;
mod init;
mod invariants;
mod own_token;
mod qovery_client;
mod qovery_contract;
mod qovery_view;
mod reconcile;
mod serve;
mod service_account;
mod store;
mod tokens;
mod webhook_events;
