//! Not public API. Used by generated code: everything
//! `#[lichtara::cleanup]` and `#[lichtara::main]` expand to goes through
//! here, so the generated code never names an internal path.

pub use ::inventory;
pub use ::tokio;

pub use crate::BoxError;
pub use crate::entry::{MainConfig, run_main};
pub use crate::hook::{HookFuture, IntoHookResult, box_hook};
pub use crate::registry::{RegisteredKind, Registration};
pub use crate::resource::{Instances, Resource, ResourceRun, resource_hook};

/// Converts a sync hook's return value. Spanned on the user's return type
/// by generated code, so a wrong type is reported there.
pub fn hook_result<T: IntoHookResult>(value: T) -> Result<(), BoxError> {
    value.into_hook_result()
}

/// A hook function, as written at module level. Not public API: generated
/// code calls every hook through [`free_hook`].
#[diagnostic::on_unimplemented(
    message = "`#[lichtara::cleanup]` must be on a free function at module level or on a resource struct",
    label = "not an item of its module: this function is inside an `impl` or another function's body",
    note = "hooks are registered for the whole program: move the function out to module level, or put the attribute on a struct: `#[lichtara::cleanup] struct Db;` with `impl lichtara::Cleanup for Db {{ async fn cleanup(&self) -> Result<(), lichtara::BoxError> {{ ... }} }}`"
)]
pub trait FreeHook {
    /// What the hook returns.
    type Output;
    /// Calls the hook.
    fn call(self) -> Self::Output;
}

impl<F: FnOnce() -> R, R> FreeHook for F {
    type Output = R;

    fn call(self) -> R {
        self()
    }
}

/// Calls a hook function, refusing anything that is not one (what
/// generated code finds under the hook's name when the attribute was put
/// inside an `impl`). Not public API.
pub fn free_hook<F: FreeHook>(hook: F) -> F::Output {
    hook.call()
}
