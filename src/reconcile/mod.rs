//! The reconciler: from bindings to the rotation protocol. `plan` decides (a pure function of
//! what GitLab and Qovery hold), `engine` runs a pass and carries the decision out under the
//! binding's lock, `rotation` is the protocol's four steps, `journal` writes what they did.

pub mod bindings;
pub(crate) mod crash;
pub mod engine;
mod journal;
pub mod plan;
mod progress;
pub mod rotation;

pub use crate::marker::Marker;
pub use engine::{BindingOutcome, BindingReport, Engine, EngineSettings, PassOptions};
pub use plan::{Binding, Force, Plan};
