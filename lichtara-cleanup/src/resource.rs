//! Resource types: structs marked `#[lichtara::cleanup]` whose live
//! instances, handed over with [`manage`], are cleaned at shutdown.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use crate::error::BoxError;
use crate::hook::{DetailSlot, HookFuture};
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
    label = "`lichtara::manage` and `#[lichtara::reload]` on a struct need a type marked `#[lichtara::cleanup]`",
    note = "add `#[lichtara::cleanup]` to the definition of `{Self}` and implement `lichtara::Cleanup` for it"
)]
pub trait Resource: Cleanup + Sized {
    /// The instances handed to [`manage`].
    fn instances() -> &'static Instances<Self>;
}

/// The managed instances of one resource type, each tagged with the
/// lifecycle it was managed in. Not public API.
pub struct Instances<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    /// Owned until their lifecycle's shutdown cleans them, or released.
    owned: Vec<Entry<T>>,
    /// The number the next instance gets.
    next: u64,
    /// The lifecycles whose sequence has taken this type's instances.
    taken: Vec<u64>,
}

struct Entry<T> {
    lifecycle: u64,
    id: u64,
    instance: Arc<T>,
}

impl<T> Instances<T> {
    /// An empty set, for a `static`.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            state: Mutex::new(State {
                owned: Vec::new(),
                next: 0,
                taken: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Owns `instance` for `lifecycle`; returns its number. Whether the
    /// lifecycle's sequence has already cleaned this type.
    fn insert(&self, lifecycle: u64, instance: &Arc<T>) -> (u64, bool) {
        let mut state = self.lock();
        let id = state.next;
        state.next += 1;
        let late = state.taken.contains(&lifecycle);
        state.owned.push(Entry {
            lifecycle,
            id,
            instance: Arc::clone(instance),
        });
        (id, late)
    }

    /// Gives up the instance numbered `id`.
    fn remove(&self, lifecycle: u64, id: u64) -> bool {
        let mut state = self.lock();
        match state
            .owned
            .iter()
            .position(|entry| entry.lifecycle == lifecycle && entry.id == id)
        {
            Some(index) => {
                // Dropped outside the lock: a `Drop` may manage another.
                let entry = state.owned.swap_remove(index);
                drop(state);
                drop(entry);
                true
            }
            None => false,
        }
    }

    /// Drops what `lifecycle` still owns, uncleaned, and forgets it ran:
    /// the end of a testing run.
    fn forget(&self, lifecycle: u64) {
        let mut state = self.lock();
        state.taken.retain(|taken| *taken != lifecycle);
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut state.owned)
            .into_iter()
            .partition(|entry| entry.lifecycle == lifecycle);
        state.owned = kept;
        // Dropped outside the lock: a `Drop` may manage another.
        drop(state);
        drop(gone);
    }

    /// The instances `lifecycle` owns now, still owned: to reload.
    pub(crate) fn live(&self, lifecycle: u64) -> Vec<Arc<T>> {
        self.lock()
            .owned
            .iter()
            .filter(|entry| entry.lifecycle == lifecycle)
            .map(|entry| Arc::clone(&entry.instance))
            .collect()
    }

    /// The instances `lifecycle` owns, to clean; each is handed out once.
    fn take(&self, lifecycle: u64) -> Vec<Arc<T>> {
        let mut state = self.lock();
        state.taken.push(lifecycle);
        if state.owned.iter().all(|entry| entry.lifecycle == lifecycle) {
            return std::mem::take(&mut state.owned)
                .into_iter()
                .map(|entry| entry.instance)
                .collect();
        }
        let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut state.owned)
            .into_iter()
            .partition(|entry| entry.lifecycle == lifecycle);
        state.owned = others;
        mine.into_iter().map(|entry| entry.instance).collect()
    }
}

impl<T> Default for Instances<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Hands an instance of a `#[lichtara::cleanup]` struct to the runtime,
/// which owns it from now on: it is cleaned at shutdown, in its type's
/// phase, however the process ends — also when every [`Managed`] handle
/// to it is gone by then (`main` returned or failed, or the handle was
/// never kept). [`Managed::release`] gives it up, for an instance that
/// ends before the program does.
///
/// Inside a [`lichtara::testing`](crate::testing) run, the instance
/// belongs to that run.
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
/// drop(shared); // still cleaned at shutdown: the runtime owns it
///
/// let short_lived = lichtara::manage(Cache);
/// short_lived.release(); // this one is not
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
    let lifecycle = crate::lifecycle::current_id();
    let (id, late) = T::instances().insert(lifecycle, &inner);
    if late {
        crate::logging::warn_now(&format!(
            "an instance of {} was managed after its type's hook ran: it will not be cleaned",
            std::any::type_name::<T>()
        ));
    }
    Managed {
        inner,
        lifecycle,
        id,
    }
}

/// A handle to a managed instance: derefs to `T`, clones cheaply. Dropping
/// it does not give the instance up; [`release`](Self::release) does.
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
#[must_use = "a managed instance is owned by the runtime and cleaned at shutdown; keep the handle to use it (`let pool = lichtara::manage(…);`)"]
pub struct Managed<T> {
    inner: Arc<T>,
    lifecycle: u64,
    id: u64,
}

impl<T: Resource> Managed<T> {
    /// Gives the instance up: it will not be cleaned at shutdown. Returns
    /// it when this was the last handle, `None` while other handles
    /// remain (or when it was released already through a clone).
    ///
    /// # Examples
    ///
    /// ```
    /// #[lichtara::cleanup]
    /// struct Upload { id: u32 }
    ///
    /// impl lichtara::Cleanup for Upload {
    ///     async fn cleanup(&self) -> Result<(), lichtara::BoxError> { Ok(()) }
    /// }
    ///
    /// let upload = lichtara::manage(Upload { id: 7 });
    /// // ... it finished on its own: no need to clean it at shutdown
    /// let upload = upload.release().expect("the only handle");
    /// assert_eq!(upload.id, 7);
    /// ```
    pub fn release(self) -> Option<T> {
        T::instances().remove(self.lifecycle, self.id);
        Arc::try_unwrap(self.inner).ok()
    }
}

impl<T> Clone for Managed<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            lifecycle: self.lifecycle,
            id: self.id,
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

/// What a resource type's hook needs: which lifecycle's instances to
/// clean, and where to say how many it cleaned. Not public API.
pub struct ResourceRun {
    pub(crate) lifecycle: u64,
    pub(crate) detail: DetailSlot,
    /// Not a run: drop the lifecycle's instances uncleaned (it ended).
    pub(crate) forget: bool,
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
pub fn resource_hook<T: Resource>(run: ResourceRun) -> HookFuture {
    if run.forget {
        T::instances().forget(run.lifecycle);
        return HookFuture::new(std::future::ready(Ok(())));
    }
    HookFuture::new(async move {
        let instances = T::instances().take(run.lifecycle);
        let _ = run.detail.set(match instances.len() {
            0 => "no instance to clean".to_owned(),
            1 => "1 instance".to_owned(),
            n => format!("{n} instances"),
        });
        each(
            instances,
            |instance| async move { instance.cleanup().await },
        )
        .await
    })
}

/// Runs `work` for every instance concurrently; the failures, named with
/// how many there were. Each instance's future is polled once in place;
/// those still pending are polled together, in place, as they wake.
pub(crate) async fn each<T, W, F>(instances: Vec<Arc<T>>, work: W) -> Result<(), BoxError>
where
    W: Fn(Arc<T>) -> F,
    F: Future<Output = Result<(), BoxError>>,
{
    let total = instances.len();
    let mut failures = Vec::new();
    let mut pending = FuturesUnordered::new();
    for instance in instances {
        match poll_once(Box::pin(work(instance))) {
            Ok(finished) => note_failure(&mut failures, finished),
            Err(running) => pending.push(CatchUnwind::new(running)),
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
}

fn note_failure(
    failures: &mut Vec<String>,
    finished: Result<Result<(), BoxError>, Box<dyn std::any::Any + Send>>,
) {
    // Classified as a hook's outcome is: an error by its chain, a panic as
    // "panicked: …".
    match crate::report::outcome_of(finished) {
        crate::Outcome::Error(chain) => failures.push(chain),
        panicked @ crate::Outcome::Panicked(_) => failures.push(panicked.to_string()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn run() -> ResourceRun {
        ResourceRun {
            lifecycle: 0,
            detail: DetailSlot::default(),
            forget: false,
        }
    }

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
        let result = resource_hook::<Probe>(run()).await;
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
        assert!(resource_hook::<Probe>(run()).await.is_ok());
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
        let hook = resource_hook::<Stuck>(run());
        let timed_out = tokio::time::timeout(Duration::from_secs(1), hook).await;
        assert!(timed_out.is_err(), "the cleanups never end");
        // Dropped with the hook, not later by a runtime: nothing of theirs
        // runs on beside the next phase.
        assert_eq!(CUT_SHORT.load(Ordering::SeqCst), 3);
        drop(kept);
    }
}
