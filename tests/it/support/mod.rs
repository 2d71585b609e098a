//! The test harness: the real regwarden binary, real servers where one runs here (the
//! container registry, PostgreSQL, Prism), and stateful fakes of GitLab's and Qovery's APIs.
// Handlers of the fakes return the response to send as their error: it is not an error type.
#![allow(dead_code, clippy::result_large_err)]

// These run the binary under test: only integration tests (built with cfg(test)) have it.
#[cfg(test)]
pub mod cli;
#[cfg(test)]
pub mod serving;
#[cfg(test)]
pub mod snapshot;
#[cfg(test)]
pub mod tools;
#[cfg(test)]
pub mod world;

pub mod faults;
pub mod fixtures;
pub mod gitlab;
pub mod pki;
pub mod postgres;
pub mod prism;
pub mod qovery;
pub mod registry;
pub mod rng;
pub mod server;
