//! Resource types: structs marked `#[lichtara::cleanup]` whose live
//! instances, handed over with [`manage`], are cleaned at shutdown.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use crate::BoxError;
use crate::hook::HookFuture;
use crate::unwind::{CatchUnwind, poll_once};

/// Cleanup for a resource type, run once for every live managed instance at
/// shutdown.
///
/// Put `#[lichtara::cleanup]` on the struct (it sets the phase and timeout)
/// and implement this trait with an `async fn`.
///
/// # Examples
///
/// ```
/// #[lichtara::cleanup(order = 2, timeout = "3s")]
/// struct Database {
///     url: String,
/// }
///
/// impl lichtara::Cleanup for Database {
///     async fn cleanup(&self) -> Result<(), lichtara::BoxError> {
///         println!("closing {}", self.url);
///         Ok(())
///     }
/// }
///
/// let db = lichtara::manage(Database { url: "postgres://localhost".into() });
/// assert_eq!(db.url, "postgres://localhost");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is marked `#[lichtara::cleanup]` but does not implement `lichtara::Cleanup`",
    label = "this resource type has no cleanup",
    note = "implement it: `impl lichtara::Cleanup for {Self} {{ async fn cleanup(&self) -> Result<(), lichtara::BoxError> {{ ... }} }}`"
)]
pub trait Cleanup: Send + Sync + 'static {
    /// Releases the resource. Runs within the type's `timeout`; all live
    /// instances of one type are cleaned concurrently.
    fn cleanup(&self) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// A resource type's registration. Not public API: implemented by
/// `#[lichtara::cleanup]` on a struct.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a lichtara resource: it has no `#[lichtara::cleanup]` attribute",
    label = "`lichtara::manage` needs a type marked `#[lichtara::cleanup]`",
    note = "add `#[lichtara::cleanup]` to the definition of `{Self}` and implement `lichtara::Cleanup` for it"
)]
pub trait Resource: Cleanup + Sized {
    /// The instances handed to [`manage`].
    fn instances() -> &'static Instances<Self>;
}

/// The live instances of one resource type. Not public API.
pub struct Instances<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    /// Instances handed over before shutdown: forgotten when every handle
    /// is dropped.
    live: Vec<Weak<T>>,
    /// Once shutdown began: the instances it will clean, kept alive.
    pinned: Option<Vec<Arc<T>>>,
}

impl<T> Instances<T> {
    /// An empty set, for a `static`.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            state: Mutex::new(State {
                live: Vec::new(),
                pinned: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert(&self, instance: &Arc<T>) {
        let mut state = self.lock();
        if let Some(pinned) = &mut state.pinned {
            pinned.push(Arc::clone(instance));
            return;
        }
        if state.live.len() == state.live.capacity() {
            // Forget dropped instances before growing: the set stays as
            // large as the live instances, not as all there ever were.
            state.live.retain(|weak| weak.strong_count() > 0);
        }
        state.live.push(Arc::downgrade(instance));
    }

    /// Keeps every instance alive now until it is cleaned.
    fn pin(&self) {
        let mut state = self.lock();
        if state.pinned.is_none() {
            let live = std::mem::take(&mut state.live);
            state.pinned = Some(live.iter().filter_map(Weak::upgrade).collect());
        }
    }

    /// The instances to clean; each is handed out once.
    fn take(&self) -> Vec<Arc<T>> {
        self.pin();
        self.lock()
            .pinned
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }
}

impl<T> Default for Instances<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Hands a live instance of a `#[lichtara::cleanup]` struct to the runtime:
/// it is cleaned at shutdown, in its type's phase, unless every
/// [`Managed`] handle to it was dropped before shutdown began.
///
/// # Examples
///
/// ```
/// #[lichtara::cleanup(order = 1)]
/// struct Cache;
///
/// impl lichtara::Cleanup for Cache {
///     async fn cleanup(&self) -> Result<(), lichtara::BoxError> {
///         Ok(())
///     }
/// }
///
/// let cache = lichtara::manage(Cache);
/// let shared = cache.clone(); // both handles point at one instance
/// drop(cache);
/// drop(shared); // every handle gone: this instance will not be cleaned
/// ```
///
/// A type without the attribute is refused at compile time:
///
/// ```compile_fail
/// struct Plain;
/// let _ = lichtara::manage(Plain);
/// ```
pub fn manage<T: Resource>(value: T) -> Managed<T> {
    let inner = Arc::new(value);
    T::instances().insert(&inner);
    Managed { inner }
}

/// A handle to a managed instance: derefs to `T`, clones cheaply.
///
/// # Examples
///
/// ```
/// #[lichtara::cleanup]
/// struct Pool { size: usize }
///
/// impl lichtara::Cleanup for Pool {
///     async fn cleanup(&self) -> Result<(), lichtara::BoxError> { Ok(()) }
/// }
///
/// let pool = lichtara::manage(Pool { size: 8 });
/// assert_eq!(pool.clone().size, 8);
/// ```
#[must_use = "the instance is cleaned at shutdown only while a handle to it lives: keep it (`let pool = lichtara::manage(…);`)"]
pub struct Managed<T> {
    inner: Arc<T>,
}

impl<T> Clone for Managed<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> Deref for Managed<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T> AsRef<T> for Managed<T> {
    fn as_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: fmt::Debug> fmt::Debug for Managed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Managed").field(&self.inner).finish()
    }
}

/// The hook of a resource type: cleans every live instance concurrently.
/// Not public API. Used by generated code.
///
/// Each instance's cleanup is polled once in place; those still pending
/// are polled together, in place, as they wake: many instances with quick
/// cleanups cost one small allocation each, not a task each, and when the
/// hook is abandoned at its timeout, dropping it drops every cleanup still
/// running, at once — none goes on beside the next phase, and whatever a
/// cleanup does when it is cut short happens before the report.
pub fn resource_hook<T: Resource>() -> HookFuture {
    Box::pin(async {
        let instances = T::instances().take();
        let total = instances.len();
        tracing::debug!(
            resource = std::any::type_name::<T>(),
            instances = total,
            "cleaning managed instances"
        );
        let mut failures = Vec::new();
        let mut pending = FuturesUnordered::new();
        for instance in instances {
            match poll_once(Box::pin(async move { instance.cleanup().await })) {
                Ok(finished) => note_failure(&mut failures, finished),
                Err(cleanup) => pending.push(CatchUnwind::new(cleanup)),
            }
        }
        while let Some(finished) = pending.next().await {
            note_failure(&mut failures, finished);
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} of {total} instances failed: {}",
                failures.len(),
                failures.join("; ")
            )
            .into())
        }
    })
}

fn note_failure(
    failures: &mut Vec<String>,
    finished: Result<Result<(), BoxError>, Box<dyn std::any::Any + Send>>,
) {
    // Classified as a hook's outcome is: an error by its chain, a panic as
    // "panicked: …".
    match crate::sequence::outcome_of(finished) {
        crate::Outcome::Error(chain) => failures.push(chain),
        panicked @ crate::Outcome::Panicked(_) => failures.push(panicked.to_string()),
        _ => {}
    }
}

/// Keeps the live instances of `T` until they are cleaned. Not public API.
/// Used by generated code.
pub fn resource_pin<T: Resource>() {
    T::instances().pin();
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// How one instance's cleanup behaves.
    enum Behaviour {
        Quick,
        Sleeps,
        FailsAtOnce,
        PanicsLater,
    }

    struct Probe {
        behaviour: Behaviour,
    }

    static CLEANED: AtomicUsize = AtomicUsize::new(0);

    impl Cleanup for Probe {
        async fn cleanup(&self) -> Result<(), BoxError> {
            match self.behaviour {
                Behaviour::Quick => {}
                Behaviour::Sleeps => tokio::time::sleep(Duration::from_millis(30)).await,
                Behaviour::FailsAtOnce => return Err("refused at once".into()),
                Behaviour::PanicsLater => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    panic!("gave up later");
                }
            }
            CLEANED.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    impl Resource for Probe {
        fn instances() -> &'static Instances<Self> {
            static INSTANCES: Instances<Probe> = Instances::new();
            &INSTANCES
        }
    }

    #[tokio::test(start_paused = true)]
    async fn instances_that_finish_at_once_and_later_are_all_cleaned_and_failures_named() {
        let kept: Vec<_> = [
            Behaviour::Quick,
            Behaviour::Sleeps,
            Behaviour::FailsAtOnce,
            Behaviour::Quick,
            Behaviour::PanicsLater,
            Behaviour::Sleeps,
        ]
        .into_iter()
        .map(|behaviour| manage(Probe { behaviour }))
        .collect();
        let result = resource_hook::<Probe>().await;
        let message = result.expect_err("two instances failed").to_string();
        assert!(
            message.starts_with("2 of 6 instances failed: "),
            "{message}"
        );
        assert!(message.contains("refused at once"), "{message}");
        assert!(message.contains("panicked: gave up later"), "{message}");
        // Both quick ones at once, both sleepers later.
        assert_eq!(CLEANED.load(Ordering::SeqCst), 4);
        // Each instance is handed out once: a second run cleans nothing.
        assert!(resource_hook::<Probe>().await.is_ok());
        assert_eq!(CLEANED.load(Ordering::SeqCst), 4);
        drop(kept);
    }

    struct Stuck;

    static CUT_SHORT: AtomicUsize = AtomicUsize::new(0);

    /// Counts a cleanup dropped before it finished.
    struct OnCut;

    impl Drop for OnCut {
        fn drop(&mut self) {
            CUT_SHORT.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Cleanup for Stuck {
        async fn cleanup(&self) -> Result<(), BoxError> {
            let _cut = OnCut;
            std::future::pending::<()>().await;
            Ok(())
        }
    }

    impl Resource for Stuck {
        fn instances() -> &'static Instances<Self> {
            static INSTANCES: Instances<Stuck> = Instances::new();
            &INSTANCES
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_hook_drops_every_pending_cleanup_at_once() {
        let kept: Vec<_> = (0..3).map(|_| manage(Stuck)).collect();
        let hook = resource_hook::<Stuck>();
        let timed_out = tokio::time::timeout(Duration::from_secs(1), hook).await;
        assert!(timed_out.is_err(), "the cleanups never end");
        // Dropped with the hook, not later by a runtime: nothing of theirs
        // runs on beside the next phase.
        assert_eq!(CUT_SHORT.load(Ordering::SeqCst), 3);
        drop(kept);
    }
}
