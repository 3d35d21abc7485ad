//! Not public API. Used by generated code: everything
//! `#[lichtara::cleanup]` and `#[lichtara::main]` expand to goes through
//! here, so the generated code never names an internal path.

pub use ::inventory;
pub use ::tokio;

pub use crate::BoxError;
pub use crate::entry::{MainConfig, run_main};
pub use crate::hook::{HookFuture, IntoHookResult, box_hook};
pub use crate::registry::{RegisteredKind, Registration};
pub use crate::resource::{Instances, Resource, resource_hook, resource_pin};

/// Converts a sync hook's return value. Spanned on the user's return type
/// by generated code, so a wrong type is reported there.
pub fn hook_result<T: IntoHookResult>(value: T) -> Result<(), BoxError> {
    value.into_hook_result()
}
