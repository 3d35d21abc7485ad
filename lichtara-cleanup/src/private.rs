//! Not public API. Used by generated code: what `#[lichtara::cleanup]`
//! and `#[lichtara::main]` expand to goes through here or through
//! [`crate::hook`] (the traits and functions a compile error can name, so
//! that no message shows a `__private` path), so the generated code never
//! names an internal path.

pub use ::inventory;
pub use ::tokio;

pub use crate::BoxError;
pub use crate::entry::{MainConfig, run_main};
pub use crate::load::main_entry;
pub use crate::registry::{RegisteredKind, Registration};
pub use crate::reload::{ReloadKind, ReloadRegistration, reload_resource_hook};
pub use crate::resource::{Instances, ResourceRun, resource_hook};
