//! What a cleanup hook is, wherever it came from: the attribute, a managed
//! resource type or the [`Shutdown`](crate::Shutdown) builder.
//!
//! Not public API, but public: generated code calls the traits and
//! functions here, and a compile error that names one shows this path,
//! `lichtara::hook::…`, rather than a `__private` one.

pub use crate::reload::ReloadResource;
pub use crate::resource::Resource;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::BoxError;

/// The future a hook runs, whatever future the hook made: boxed, with the
/// two functions that poll and drop it. Not public API.
///
/// Not a `Pin<Box<dyn Future>>`: each hook's future type would bring a
/// vtable of its own, two pointers in data that the loader relocates at
/// startup (with 10,000 hooks, 20,000 relocations and their dirtied
/// pages). The functions here are taken in code, which needs none.
pub struct HookFuture {
    future: NonNull<()>,
    poll: PollBoxed,
    drop: unsafe fn(NonNull<()>),
}

/// Polls the boxed future behind the pointer, whose type it knows.
type PollBoxed = unsafe fn(NonNull<()>, &mut Context<'_>) -> Poll<Result<(), BoxError>>;

// SAFETY: `HookFuture::new` takes only `Send` futures, and the future is
// reached only through the `HookFuture` that owns it.
unsafe impl Send for HookFuture {}

impl HookFuture {
    /// Boxes `future`.
    pub fn new<F>(future: F) -> Self
    where
        F: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        Self::erase(future)
    }

    /// Boxes `future`, whose output is `()` or `Result<(), E>`.
    fn erase<F>(future: F) -> Self
    where
        F: Future + Send + 'static,
        F::Output: IntoHookResult,
    {
        /// # Safety
        /// `future` is the pointer `new` made from a `Box<F>`, polled by
        /// the `HookFuture` that owns it (so never moved, never aliased).
        unsafe fn poll_boxed<F>(
            future: NonNull<()>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), BoxError>>
        where
            F: Future,
            F::Output: IntoHookResult,
        {
            // SAFETY: see above; the box is never moved out of, so the
            // future stays pinned where it is.
            let future = unsafe { Pin::new_unchecked(future.cast::<F>().as_mut()) };
            future.poll(cx).map(IntoHookResult::into_hook_result)
        }
        /// # Safety
        /// `future` is the pointer `new` made from a `Box<F>`, dropped once,
        /// by the `HookFuture` that owns it.
        unsafe fn drop_boxed<F>(future: NonNull<()>) {
            // SAFETY: see above.
            drop(unsafe { Box::from_raw(future.cast::<F>().as_ptr()) });
        }
        let future = NonNull::from(Box::leak(Box::new(future))).cast::<()>();
        Self {
            future,
            poll: poll_boxed::<F>,
            drop: drop_boxed::<F>,
        }
    }
}

impl Future for HookFuture {
    type Output = Result<(), BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: the pointer and the function were made together, for the
        // future's own type, by `new`; `&mut self` makes this poll the only
        // access.
        unsafe { (self.poll)(self.future, cx) }
    }
}

impl Drop for HookFuture {
    fn drop(&mut self) {
        // SAFETY: as in `poll`; `drop` runs once.
        unsafe { (self.drop)(self.future) }
    }
}

impl fmt::Debug for HookFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HookFuture")
    }
}

/// How to start a hook.
pub(crate) enum HookRunner {
    /// An `async fn` hook, or a resource type's cleanup of its instances.
    Async(fn() -> HookFuture),
    /// A synchronous hook: run on the blocking pool.
    Blocking(fn() -> Result<(), BoxError>),
    /// A closure given to the builder.
    Boxed(Box<dyn FnOnce() -> HookFuture + Send + 'static>),
}

impl HookRunner {
    /// Starts the hook. A blocking hook's panic is re-raised inside the
    /// returned future, so that every kind of hook panics the same way.
    pub(crate) fn start(self) -> HookFuture {
        match self {
            HookRunner::Async(run) => run(),
            HookRunner::Boxed(run) => run(),
            HookRunner::Blocking(run) => on_blocking_pool(run),
        }
    }
}

/// Runs a synchronous hook on the blocking pool; its panic is re-raised
/// inside the returned future.
pub(crate) fn on_blocking_pool<F>(run: F) -> HookFuture
where
    F: FnOnce() -> Result<(), BoxError> + Send + 'static,
{
    HookFuture::new(async move {
        match tokio::task::spawn_blocking(run).await {
            Ok(result) => result,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(err) => Err(err.into()),
        }
    })
}

/// What kind of item a hook was declared on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HookKind {
    Async,
    Blocking,
    Resource,
    Builder,
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HookKind::Async => "async fn",
            HookKind::Blocking => "fn",
            HookKind::Resource => "resource",
            HookKind::Builder => "builder",
        })
    }
}

/// Everything about a hook except how to run it.
#[derive(Clone, Debug)]
pub(crate) struct HookMeta {
    pub(crate) name: Cow<'static, str>,
    pub(crate) order: i32,
    pub(crate) timeout: Option<Duration>,
    pub(crate) kind: HookKind,
    /// `file:line` of the declaration, when it came from the attribute.
    pub(crate) source: Option<(&'static str, u32)>,
    /// Where a library hook (a child's stop) leaves a word for its report:
    /// how the child exited.
    pub(crate) detail: Option<DetailSlot>,
}

/// A hook's detail, set once by the hook and read by the sequencer.
pub(crate) type DetailSlot = std::sync::Arc<std::sync::OnceLock<String>>;

impl HookMeta {
    /// A hook declared by an attribute, at `file:line`.
    pub(crate) fn declared(
        name: &'static str,
        order: i32,
        timeout: Option<Duration>,
        kind: HookKind,
        source: (&'static str, u32),
    ) -> Self {
        HookMeta {
            name: Cow::Borrowed(name),
            order,
            timeout,
            kind,
            source: Some(source),
            detail: None,
        }
    }

    /// Hooks run by ascending `order`; the name makes the order of a phase's
    /// hooks (and of the report) stable, whatever order inventory gave.
    pub(crate) fn sort_key(&self) -> (i32, &str) {
        (self.order, &self.name)
    }
}

/// A hook ready to run.
pub(crate) struct Hook {
    pub(crate) meta: HookMeta,
    pub(crate) runner: HookRunner,
}

/// What a hook function may return: `()` or `Result<(), E>` with
/// `E: Into<BoxError>`.
///
/// Not public API. Used by generated code and by
/// [`Shutdown::hook`](crate::Shutdown::hook).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a valid return type for a lichtara hook or task",
    label = "a hook or task must return `()` or `Result<(), E>`",
    note = "return `()`, or `Result<(), E>` where `E: Into<lichtara::BoxError>` (`std::io::Result<()>` and `anyhow::Result<()>` both work)"
)]
pub trait IntoHookResult {
    /// Converts the hook's return value.
    fn into_hook_result(self) -> Result<(), BoxError>;
}

impl IntoHookResult for () {
    fn into_hook_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<E: Into<BoxError>> IntoHookResult for Result<(), E> {
    fn into_hook_result(self) -> Result<(), BoxError> {
        self.map_err(Into::into)
    }
}

/// Boxes an async hook's future. Not public API. Used by generated code.
pub fn box_hook<F>(future: F) -> HookFuture
where
    F: Future + Send + 'static,
    F::Output: IntoHookResult,
{
    HookFuture::erase(future)
}

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

/// A reload hook function, as written at module level. Not public API:
/// generated code calls every reload hook through [`free_reload_hook`].
#[diagnostic::on_unimplemented(
    message = "`#[lichtara::reload]` must be on a free function at module level or on a managed resource struct",
    label = "not an item of its module: this function is inside an `impl` or another function's body",
    note = "reload hooks are registered for the whole program: move the function out to module level, or put the attributes on a struct: `#[lichtara::cleanup] #[lichtara::reload] struct Tls;` with `impl lichtara::Reload for Tls {{ async fn reload(&self) -> Result<(), lichtara::BoxError> {{ ... }} }}`"
)]
pub trait FreeReloadHook {
    /// What the hook returns.
    type Output;
    /// Calls the hook.
    fn call(self) -> Self::Output;
}

impl<F: FnOnce() -> R, R> FreeReloadHook for F {
    type Output = R;

    fn call(self) -> R {
        self()
    }
}

/// Calls a reload hook function, refusing anything that is not one. Not
/// public API.
pub fn free_reload_hook<F: FreeReloadHook>(hook: F) -> F::Output {
    hook.call()
}
