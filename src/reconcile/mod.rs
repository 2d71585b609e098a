//! The reconciler: from bindings to the rotation protocol. `plan` decides (a pure function of
//! what GitLab and Qovery hold), `engine` carries the decision out.

pub mod bindings;
mod crash;
pub mod engine;
pub mod marker;
pub mod plan;
mod progress;

pub use engine::{BindingOutcome, BindingReport, Engine, EngineSettings, PassOptions};
pub use marker::Marker;
pub use plan::{Binding, Force, Plan};
