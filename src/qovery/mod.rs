//! Qovery: the REST API client. Qovery's JSON stays in `wire`; the client speaks in
//! [`Registry`] and [`RegistryWrite`].

mod client;
mod registry;
mod wire;

pub use client::{DeployedImage, QoveryClient};
pub use registry::{Registry, RegistryKind, RegistryWrite};
pub use wire::{AssociatedService, Organization};
