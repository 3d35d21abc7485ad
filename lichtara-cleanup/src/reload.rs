//! Reload hooks: what `#[lichtara::reload]` registers, and the reloader
//! that runs them. With any registered, SIGHUP means "reload": the
//! supervisor asks ([`request`]), and the reloader — a task of the
//! application's runtime, started by the entry point — runs the hooks phase
//! by phase through the shutdown's own sequencer (timeouts, concurrency
//! within a phase, panics contained), tells systemd (`RELOADING=1` with
//! `MONOTONIC_USEC`, then `READY=1`: the `Type=notify-reload` protocol),
//! logs the outcome and hands the report to [`reloaded`]. A failed reload
//! leaves the service running. A reload that is running when shutdown
//! begins is abandoned: its hooks are dropped and the shutdown runs.
//! Without reload hooks, SIGHUP begins the shutdown, as it always did.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, mpsc};
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::BoxError;
use crate::hook::{DetailSlot, Hook, HookFuture, HookKind, HookMeta, HookRunner};
use crate::lifecycle::{self, Lifecycle};
use crate::registry::Hooks;
use crate::report::HookReport;
use crate::resource::Resource;
use crate::sequence::{self, Progress};

/// Reload for a managed resource type, run for every live managed instance
/// at each reload; the instances stay managed (and are cleaned at
/// shutdown).
///
/// Put `#[lichtara::reload]` on the struct beside `#[lichtara::cleanup]`
/// (`lichtara::manage` owns its instances) and implement this trait with
/// an `async fn`.
///
/// # Examples
///
/// ```
/// use std::sync::Mutex;
///
/// #[lichtara::cleanup]
/// #[lichtara::reload(order = 1, timeout = "2s")]
/// struct Settings {
///     path: String,
///     text: Mutex<String>,
/// }
///
/// impl lichtara::Cleanup for Settings {
///     async fn cleanup(&self) -> Result<(), lichtara::BoxError> {
///         Ok(())
///     }
/// }
///
/// impl lichtara::Reload for Settings {
///     async fn reload(&self) -> Result<(), lichtara::BoxError> {
///         let text = std::fs::read_to_string(&self.path)?;
///         *self.text.lock().unwrap() = text;
///         Ok(())
///     }
/// }
///
/// let settings = lichtara::manage(Settings {
///     path: "/etc/hostname".into(),
///     text: Mutex::new(String::new()),
/// });
/// assert!(settings.text.lock().unwrap().is_empty());
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is marked `#[lichtara::reload]` but does not implement `lichtara::Reload`",
    label = "this resource type has no reload",
    note = "implement it: `impl lichtara::Reload for {Self} {{ async fn reload(&self) -> Result<(), lichtara::BoxError> {{ ... }} }}`"
)]
pub trait Reload: Send + Sync + 'static {
    /// Reloads the resource (re-reads its configuration, reopens its
    /// files, swaps its certificates). Runs within the type's `timeout`;
    /// all live instances of one type are reloaded concurrently.
    fn reload(&self) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// A managed resource type with a reload. Not public API: implemented by
/// `#[lichtara::reload]` on a struct; a compile error names its two
/// requirements.
pub trait ReloadResource: Resource + Reload {}

/// One hook declared with `#[lichtara::reload]`. Not public API. Built by
/// generated code.
pub struct ReloadRegistration {
    name: &'static str,
    order: i32,
    timeout: Option<Duration>,
    file: &'static str,
    line: u32,
    kind: ReloadKind,
}

/// How a reload hook runs. Not public API.
#[derive(Clone, Copy)]
pub enum ReloadKind {
    /// An `async fn` hook.
    Async(fn() -> HookFuture),
    /// A synchronous `fn` hook.
    Blocking(fn() -> Result<(), BoxError>),
    /// A resource type: reloads the instances managed in a lifecycle (by
    /// id), and says how many in the slot.
    Resource(fn(u64, DetailSlot) -> HookFuture),
}

impl ReloadRegistration {
    /// Describes a reload hook.
    #[must_use]
    pub const fn new(
        name: &'static str,
        order: i32,
        timeout: Option<Duration>,
        file: &'static str,
        line: u32,
        kind: ReloadKind,
    ) -> Self {
        Self {
            name,
            order,
            timeout,
            file,
            line,
            kind,
        }
    }

    pub(crate) fn meta(&self) -> HookMeta {
        let kind = match self.kind {
            ReloadKind::Async(_) => HookKind::Async,
            ReloadKind::Blocking(_) => HookKind::Blocking,
            ReloadKind::Resource(_) => HookKind::Resource,
        };
        HookMeta::declared(
            self.name,
            self.order,
            self.timeout,
            kind,
            (self.file, self.line),
        )
    }

    /// The hook as a reload in `lifecycle` runs it; its future holds
    /// `alive` until it is dropped.
    fn hook(&self, lifecycle: u64, alive: mpsc::Sender<()>) -> Hook {
        let mut meta = self.meta();
        let runner = match self.kind {
            ReloadKind::Async(run) => HookRunner::Async(run),
            // On the blocking pool, the thread holds `alive`: a hook cut at
            // its timeout or abandoned goes on there until it returns, and
            // the next reload and the shutdown wait for it.
            ReloadKind::Blocking(run) => {
                let alive = alive.clone();
                HookRunner::Boxed(Box::new(move || {
                    crate::hook::on_blocking_pool(move || {
                        let _alive = alive;
                        run()
                    })
                }))
            }
            ReloadKind::Resource(run) => {
                let detail = DetailSlot::default();
                meta.detail = Some(detail.clone());
                HookRunner::Boxed(Box::new(move || run(lifecycle, detail)))
            }
        };
        let runner = HookRunner::Boxed(Box::new(move || {
            let future = runner.start();
            HookFuture::new(async move {
                let _alive = alive;
                future.await
            })
        }));
        Hook { meta, runner }
    }
}

inventory::collect!(ReloadRegistration);

/// The registered reload hooks, in no particular order.
pub(crate) fn registrations() -> impl Iterator<Item = &'static ReloadRegistration> {
    inventory::iter::<ReloadRegistration>.into_iter()
}

/// Whether any reload hook is registered: then SIGHUP reloads.
pub(crate) fn registered() -> bool {
    registrations().next().is_some()
}

/// The reload of a resource type: reloads every instance managed in
/// `lifecycle` concurrently (as its cleanup cleans them), keeping them
/// managed. Not public API. Used by generated code.
pub fn reload_resource_hook<T: ReloadResource>(lifecycle: u64, detail: DetailSlot) -> HookFuture {
    HookFuture::new(async move {
        let instances = T::instances().live(lifecycle);
        let _ = detail.set(match instances.len() {
            0 => "no instance to reload".to_owned(),
            1 => "1 instance".to_owned(),
            n => format!("{n} instances"),
        });
        crate::resource::each(instances, |instance| async move { instance.reload().await }).await
    })
}

/// What one reload did.
///
/// # Examples
///
/// ```no_run
/// #[lichtara::reload]
/// async fn reread_config() {}
///
/// #[lichtara::main]
/// async fn main() {
///     let mut reloads = lichtara::reloaded();
///     // `kill -HUP <pid>`: the hooks run, and their report comes here.
///     while let Some(report) = reloads.next().await {
///         println!("reload {}: ok = {}", report.number(), report.is_success());
///     }
/// }
/// ```
#[derive(Clone, Debug)]
pub struct ReloadReport {
    number: u64,
    hooks: Vec<HookReport>,
    elapsed: Duration,
    abandoned: bool,
}

impl ReloadReport {
    /// Which reload of the process this was: 1 for the first.
    #[must_use]
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Each reload hook, in the order they ran. Empty for an abandoned
    /// reload: its hooks were dropped where they stood.
    #[must_use]
    pub fn hooks(&self) -> &[HookReport] {
        &self.hooks
    }

    /// How long it took.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Whether shutdown began while it ran (and it was given up for it).
    #[must_use]
    pub fn abandoned(&self) -> bool {
        self.abandoned
    }

    /// Whether every hook ended ok (and the reload was not abandoned).
    #[must_use]
    pub fn is_success(&self) -> bool {
        !self.abandoned && self.hooks.iter().all(|hook| hook.outcome().is_success())
    }
}

/// The reports of the reloads, as they end: from the moment this is
/// called until shutdown begins.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let reloads = lichtara::reloaded();
/// drop(reloads); // nothing is kept for a receiver that is gone
/// # });
/// ```
#[must_use = "a receiver sees the reloads that end while it is kept"]
pub fn reloaded() -> Reloads {
    Reloads {
        reports: REPORTS.subscribe(),
    }
}

/// The receiver [`reloaded`] returns.
#[derive(Debug)]
pub struct Reloads {
    reports: broadcast::Receiver<ReloadReport>,
}

impl Reloads {
    /// The next reload's report; `None` once shutdown has begun (no reload
    /// comes after it). A receiver that fell behind by more than 16
    /// reports skips the oldest.
    pub async fn next(&mut self) -> Option<ReloadReport> {
        let shutting_down = lifecycle::process().begun();
        tokio::pin!(shutting_down);
        loop {
            tokio::select! {
                biased;
                report = self.reports.recv() => match report {
                    Ok(report) => return Some(report),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                () = &mut shutting_down => return None,
            }
        }
    }
}

static REPORTS: LazyLock<broadcast::Sender<ReloadReport>> =
    LazyLock::new(|| broadcast::channel(16).0);

/// Set by [`request`], taken by the reloader: requests that come while a
/// reload runs make one more reload after it, not one each.
static WANTED: LazyLock<Notify> = LazyLock::new(Notify::new);

/// How many reloads began.
static RELOADS: AtomicU64 = AtomicU64::new(0);

/// How long an abandoned reload's hooks may take to be dropped: one that
/// blocks its thread cannot be, and the shutdown goes on without it.
const ABANDON_WAIT: Duration = Duration::from_secs(1);

/// The reloader's task: it ends once shutdown has begun and what its
/// reloads left running is gone (or waited for long enough).
static RELOADER: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>> =
    std::sync::Mutex::new(None);

/// Resolves once no reload runs (an abandoned one included) and no hook of
/// one goes on. Called by the shutdown, after the trigger: no reload
/// begins from then on.
pub(crate) async fn settled() {
    let reloader = RELOADER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(reloader) = reloader {
        let _ = reloader.await;
    }
}

/// How long the shutdown waits for a reload's hooks to be gone: at most
/// [`ABANDON_WAIT`], and a tenth of the global deadline.
fn abandon_wait(lifecycle: &Lifecycle) -> Duration {
    ABANDON_WAIT.min(lifecycle.budget() / 10)
}

/// Waits (at most [`abandon_wait`]) until every hook future of a reload
/// holding `alive`'s senders is gone; logs one that is not.
async fn wait_gone(lifecycle: &Lifecycle, mut gone: mpsc::Receiver<()>, number: u64) {
    if tokio::time::timeout(abandon_wait(lifecycle), gone.recv())
        .await
        .is_err()
    {
        tracing::warn!(
            reload = number,
            "a hook of reload {number} is still running (it blocks its thread): the shutdown goes on beside it"
        );
    }
}

/// Asks for a reload (the supervisor, at SIGHUP). Taken by the reloader
/// once it runs: one asked for before `main` began runs then.
pub(crate) fn request() {
    WANTED.notify_one();
}

/// Starts the reloader on the application's runtime, if any reload hook is
/// registered: until shutdown begins, it runs a reload for each request.
pub(crate) fn spawn_reloader(lifecycle: &Arc<Lifecycle>) {
    if !registered() {
        return;
    }
    let lifecycle = Arc::clone(lifecycle);
    let reloader = tokio::spawn(async move {
        // The last reload's hooks, while one of them (a sync hook past its
        // timeout) may still run on its thread.
        let mut previous: Option<(mpsc::Receiver<()>, u64)> = None;
        loop {
            tokio::select! {
                biased;
                () = lifecycle.begun() => break,
                () = WANTED.notified() => {}
            }
            // One reload at a time, hooks and threads included.
            if let Some((gone, number)) = previous.as_mut() {
                // Nothing is sent: `None` once every sender is dropped.
                tokio::select! {
                    biased;
                    () = lifecycle.begun() => break,
                    _ = gone.recv() => {}
                }
                tracing::debug!(reload = *number, "the last reload's hooks are gone");
                previous = None;
            }
            if lifecycle.has_begun() {
                break;
            }
            let (report, gone) = reload(&lifecycle).await;
            previous = Some((gone, report.number));
            // No receiver is not a failure.
            let _ = REPORTS.send(report);
        }
        if let Some((gone, number)) = previous {
            wait_gone(&lifecycle, gone, number).await;
        }
    });
    *RELOADER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reloader);
}

/// Runs one reload in `lifecycle`, bounded by its global deadline's length;
/// given up if shutdown begins meanwhile.
async fn reload(lifecycle: &Arc<Lifecycle>) -> (ReloadReport, mpsc::Receiver<()>) {
    lifecycle.install_default_logging_if_asked();
    let number = RELOADS.fetch_add(1, Ordering::Relaxed) + 1;
    let started = Instant::now();
    // Each hook's future holds a sender: once all are dropped, nothing of
    // this reload runs any more.
    let (alive, gone) = mpsc::channel::<()>(1);
    let hooks: Vec<Hook> = registrations()
        .map(|registration| registration.hook(lifecycle.id(), alive.clone()))
        .collect();
    drop(alive);
    let count = hooks.len();
    #[cfg(unix)]
    let told = crate::systemd::reloading();
    tracing::info!(reload = number, hooks = count, "reload begun");
    let progress = Progress::default();
    let sequence = sequence::run(Hooks::from(hooks), started + lifecycle.budget(), &progress)
        .instrument(tracing::info_span!("reload", reload = number));
    let outcome = tokio::select! {
        biased;
        () = lifecycle.begun() => None,
        sequence = sequence => Some(sequence),
    };
    // It holds the last phase's hooks.
    drop(progress);
    let Some(sequence) = outcome else {
        // Dropped: its hooks' tasks are aborted, and dropped on their
        // workers shortly; the shutdown waits for that ([`settled`]).
        tracing::warn!(
            reload = number,
            elapsed_ms = crate::report::millis(started.elapsed()),
            "reload abandoned: shutdown began"
        );
        let report = ReloadReport {
            number,
            hooks: Vec::new(),
            elapsed: started.elapsed(),
            abandoned: true,
        };
        return (report, gone);
    };
    let report = ReloadReport {
        number,
        hooks: sequence.hooks,
        elapsed: started.elapsed(),
        abandoned: false,
    };
    let failed: Vec<&str> = report
        .hooks
        .iter()
        .filter(|hook| !hook.outcome().is_success())
        .map(HookReport::name)
        .collect();
    let elapsed_ms = crate::report::millis(report.elapsed);
    if failed.is_empty() {
        tracing::info!(
            reload = number,
            hooks = count,
            elapsed_ms,
            "reload complete"
        );
    } else {
        tracing::warn!(
            reload = number,
            hooks = count,
            failed = ?failed,
            elapsed_ms,
            "reload failed; the service goes on"
        );
    }
    #[cfg(unix)]
    if told {
        crate::systemd::reloaded(&failed);
    }
    (report, gone)
}
