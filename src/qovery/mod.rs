//! Qovery: the REST API client. Wire types stay in this module.

mod client;

pub use client::{
    AssociatedService, ClusterRef, ContainerRegistry, Organization, QoveryClient, RegistryConfig,
    RegistryKind, RegistryRequest,
};
