//! The one door for hooks: those registered at compile time by
//! `#[lichtara::cleanup]` (collected through `inventory` before `main`
//! runs) and those added while the program runs (a server's drain, a
//! child's stop, the builder's) to a lifecycle. [`take`] hands a sequence
//! its hooks in `(order, name)` order: the only place that sorts.

use std::borrow::Cow;
use std::io::{self, Write};
use std::ops::{Range, RangeInclusive};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use crate::error::BoxError;
use crate::hook::{DetailSlot, Hook, HookFuture, HookKind, HookMeta, HookRunner};
use crate::lifecycle::{self, Lifecycle};
use crate::report::HookReport;
use crate::resource::ResourceRun;

/// One hook declared with `#[lichtara::cleanup]`. Not public API. Built by
/// generated code.
pub struct Registration {
    pub(crate) name: &'static str,
    pub(crate) order: i32,
    pub(crate) timeout: Option<Duration>,
    pub(crate) file: &'static str,
    pub(crate) line: u32,
    pub(crate) kind: RegisteredKind,
}

/// How a registered hook runs. Not public API.
#[derive(Clone, Copy)]
pub enum RegisteredKind {
    /// An `async fn` hook.
    Async(fn() -> HookFuture),
    /// A synchronous `fn` hook.
    Blocking(fn() -> Result<(), BoxError>),
    /// A resource type: cleans the instances managed in the lifecycle
    /// that runs it.
    Resource(fn(ResourceRun) -> HookFuture),
}

impl Registration {
    /// Describes a hook.
    #[must_use]
    pub const fn new(
        name: &'static str,
        order: i32,
        timeout: Option<Duration>,
        file: &'static str,
        line: u32,
        kind: RegisteredKind,
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

    fn meta(&self) -> HookMeta {
        let kind = match self.kind {
            RegisteredKind::Async(_) => HookKind::Async,
            RegisteredKind::Blocking(_) => HookKind::Blocking,
            RegisteredKind::Resource(_) => HookKind::Resource,
        };
        HookMeta::declared(
            self.name,
            self.order,
            self.timeout,
            kind,
            (self.file, self.line),
        )
    }

    /// The hook as `lifecycle` runs it: a resource type's cleans the
    /// instances managed in that lifecycle, and says how many.
    fn hook(&self, lifecycle: &Arc<Lifecycle>) -> Hook {
        let mut meta = self.meta();
        let detail = matches!(self.kind, RegisteredKind::Resource(_)).then(DetailSlot::default);
        meta.detail.clone_from(&detail);
        Hook {
            meta,
            runner: self.runner(lifecycle, detail),
        }
    }

    /// How to run the hook in `lifecycle`; a resource type's says how many
    /// instances it cleaned in `detail`.
    fn runner(&self, lifecycle: &Lifecycle, detail: Option<DetailSlot>) -> HookRunner {
        match self.kind {
            RegisteredKind::Async(run) => HookRunner::Async(run),
            RegisteredKind::Blocking(run) => HookRunner::Blocking(run),
            RegisteredKind::Resource(run) => {
                let resource = ResourceRun {
                    lifecycle: lifecycle.id(),
                    detail: detail.unwrap_or_default(),
                    forget: false,
                };
                HookRunner::Boxed(Box::new(move || run(resource)))
            }
        }
    }
}

inventory::collect!(Registration);

/// The registered hooks in the order the sequencer runs them. Built once,
/// off the shutdown path: the supervisor thread builds it at startup.
struct Plan {
    hooks: Vec<&'static Registration>,
    /// Each phase's order and hooks.
    phases: Vec<(i32, Range<usize>)>,
    /// The resource types, which say how many instances they cleaned.
    resources: Vec<usize>,
    /// Every hook's report, `not run`, made at startup ([`prepare`]) for
    /// the first sequence to take: 10,000 hooks' reports are half a
    /// megabyte, whose page faults would otherwise fall in the shutdown.
    spare: Mutex<Option<Vec<HookReport>>>,
}

/// The phases of hooks in `(order, name)` order: each order and the range
/// of its hooks.
fn phases_of(orders: impl Iterator<Item = i32>) -> Vec<(i32, Range<usize>)> {
    let mut phases: Vec<(i32, Range<usize>)> = Vec::new();
    for (index, order) in orders.enumerate() {
        match phases.last_mut() {
            Some((last, range)) if *last == order => range.end = index + 1,
            _ => phases.push((order, index..index + 1)),
        }
    }
    phases
}

static PLAN: OnceLock<Plan> = OnceLock::new();

fn plan() -> &'static Plan {
    PLAN.get_or_init(|| {
        let mut hooks: Vec<&'static Registration> =
            inventory::iter::<Registration>.into_iter().collect();
        hooks.sort_unstable_by(|a, b| (a.order, a.name).cmp(&(b.order, b.name)));
        let plan = Plan {
            phases: phases_of(hooks.iter().map(|hook| hook.order)),
            resources: (0..hooks.len())
                .filter(|at| matches!(hooks[*at].kind, RegisteredKind::Resource(_)))
                .collect(),
            hooks,
            spare: Mutex::new(None),
        };
        // Once, with the plan: before any sequence can run, off `main`'s
        // path (the signal thread builds it at startup).
        warn_of_duplicates(&plan);
        plan
    })
}

/// Sorts the registered hooks now, while nothing waits for them: the
/// signal thread calls it at startup.
pub(crate) fn prepare() {
    let plan = plan();
    let reports = not_run(&plan.hooks);
    *plan.spare.lock().unwrap_or_else(PoisonError::into_inner) = Some(reports);
}

/// The reports of `hooks`, `not run`.
fn not_run(hooks: &[&'static Registration]) -> Vec<HookReport> {
    hooks
        .iter()
        .map(|hook| HookReport::registered(hook.name, hook.order, hook.timeout))
        .collect()
}

/// How many hooks `#[lichtara::cleanup]` registered. Counted afresh, not
/// from the plan: it is asked before `main`, when the plan must not be
/// fixed yet.
pub(crate) fn registered() -> usize {
    match PLAN.get() {
        Some(plan) => plan.hooks.len(),
        None => inventory::iter::<Registration>.into_iter().count(),
    }
}

/// Adds a hook to the coming sequence of the lifecycle running now.
#[cfg_attr(not(feature = "process"), allow(dead_code))]
pub(crate) fn add(hook: Hook) {
    lifecycle::current().add(hook);
}

/// Drops, uncleaned, every instance `lifecycle` still owns (of the types
/// its sequence did not run), once it has ended: a testing run leaves
/// nothing behind.
pub(crate) fn forget_instances(lifecycle: &Lifecycle) {
    for registration in &plan().hooks {
        if let RegisteredKind::Resource(run) = registration.kind {
            drop(run(ResourceRun {
                lifecycle: lifecycle.id(),
                detail: crate::hook::DetailSlot::default(),
                forget: true,
            }));
        }
    }
}

/// Which hooks a sequence runs: all of them, or (for a testing run) those
/// named or of the orders given.
#[derive(Clone, Debug, Default)]
pub(crate) struct Selection {
    pub(crate) names: Vec<String>,
    pub(crate) orders: Option<RangeInclusive<i32>>,
}

impl Selection {
    fn is_all(&self) -> bool {
        self.names.is_empty() && self.orders.is_none()
    }

    fn admits_registered(&self, registration: &Registration) -> bool {
        let named =
            self.names.is_empty() || self.names.iter().any(|name| name == registration.name);
        let ordered = self
            .orders
            .as_ref()
            .is_none_or(|orders| orders.contains(&registration.order));
        named && ordered
    }
}

/// The hooks `lifecycle`'s sequence runs, in `(order, name)` order: the
/// registered ones and those added to it.
pub(crate) fn take(lifecycle: &Arc<Lifecycle>, selection: &Selection) -> Hooks {
    let added = lifecycle.take_added();
    if added.is_empty() && selection.is_all() {
        // Sorted at startup: read straight from the plan, nothing copied.
        let plan = plan();
        return Hooks {
            source: Source::Registered(&plan.hooks, Arc::clone(lifecycle)),
            details: (plan.resources.iter())
                .map(|at| (*at, DetailSlot::default()))
                .collect(),
            phases: plan.phases.clone(),
        };
    }
    // A selection picks among the registered hooks; those added while the
    // program ran (a child's stop, a server's drain) are the run's own
    // resources, and always run: a child must not outlive its run.
    let hooks: Vec<Hook> = plan()
        .hooks
        .iter()
        .filter(|registration| selection.admits_registered(registration))
        .map(|registration| registration.hook(lifecycle))
        .chain(added)
        .collect();
    Hooks::from(hooks)
}

/// Puts hooks in the order a sequence runs them. Stable: hooks added with
/// one key keep the order they were added in.
pub(crate) fn sort(mut hooks: Vec<Hook>) -> Vec<Hook> {
    if !hooks.is_sorted_by(|a, b| a.meta.sort_key() <= b.meta.sort_key()) {
        hooks.sort_by(|a, b| a.meta.sort_key().cmp(&b.meta.sort_key()));
    }
    hooks
}

/// The hooks of a sequence in the order they run, by index: what the
/// sequencer reports on and what its starters start, from any thread.
/// Registered hooks are read straight from the plan, so a shutdown with
/// 10,000 of them copies nothing per hook but its report.
pub(crate) struct Hooks {
    source: Source,
    /// The hooks that leave a detail (a resource type's instance count, a
    /// child's exit), by index, in ascending order.
    details: Vec<(usize, DetailSlot)>,
    /// Each phase's order and hooks.
    phases: Vec<(i32, Range<usize>)>,
}

enum Source {
    Registered(&'static [&'static Registration], Arc<Lifecycle>),
    Built {
        /// Made with the hooks: they are few.
        reports: Mutex<Vec<HookReport>>,
        timeouts: Vec<Option<Duration>>,
        /// Each taken once, by the starter that starts it.
        runners: Mutex<Vec<Option<HookRunner>>>,
    },
}

/// The names and timeouts of a phase's hooks, for the watchdog to name
/// those still running.
#[derive(Default)]
pub(crate) enum Names {
    #[default]
    None,
    Registered(&'static [&'static Registration]),
    Owned(Vec<(Cow<'static, str>, Option<Duration>)>),
}

impl Names {
    /// The name and timeout of the phase's hook `index`.
    pub(crate) fn get(&self, index: usize) -> Option<(Cow<'static, str>, Option<Duration>)> {
        match self {
            Names::None => None,
            Names::Registered(hooks) => hooks
                .get(index)
                .map(|hook| (Cow::Borrowed(hook.name), hook.timeout)),
            Names::Owned(names) => names.get(index).cloned(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Names::None => 0,
            Names::Registered(hooks) => hooks.len(),
            Names::Owned(names) => names.len(),
        }
    }
}

impl Hooks {
    /// Hook `index`'s own timeout.
    pub(crate) fn timeout(&self, index: usize) -> Option<Duration> {
        match &self.source {
            Source::Registered(hooks, _) => hooks.get(index).and_then(|hook| hook.timeout),
            Source::Built { timeouts, .. } => timeouts.get(index).copied().flatten(),
        }
    }

    /// Each phase's order and the range of its hooks.
    pub(crate) fn phases(&self) -> &[(i32, Range<usize>)] {
        &self.phases
    }

    /// Whether the reports are made as [`Hooks::reports`] is called (so
    /// that the sequencer can start the first hooks before it makes
    /// them), rather than with the hooks.
    pub(crate) fn reports_to_make(&self) -> bool {
        matches!(self.source, Source::Registered(..))
    }

    /// Every hook's report, `not run`, in order. Called once.
    pub(crate) fn reports(&self) -> Vec<HookReport> {
        match &self.source {
            Source::Registered(hooks, _) => {
                // The whole plan's, made at startup, if no sequence took
                // them yet.
                let spare = plan()
                    .spare
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take()
                    .filter(|spare| spare.len() == hooks.len());
                spare.unwrap_or_else(|| not_run(hooks))
            }
            Source::Built { reports, .. } => {
                std::mem::take(&mut *reports.lock().unwrap_or_else(PoisonError::into_inner))
            }
        }
    }

    /// What hook `index` left besides its outcome, if it leaves one.
    pub(crate) fn detail(&self, index: usize) -> Option<String> {
        let at = self
            .details
            .binary_search_by_key(&index, |(at, _)| *at)
            .ok()?;
        self.details[at].1.get().cloned()
    }

    /// How to run hook `index`; `None` once taken (each index is started
    /// once).
    pub(crate) fn runner(&self, index: usize) -> Option<HookRunner> {
        match &self.source {
            Source::Registered(hooks, lifecycle) => {
                let hook = hooks.get(index)?;
                let detail = matches!(hook.kind, RegisteredKind::Resource(_))
                    .then(|| {
                        let at = self.details.binary_search_by_key(&index, |(at, _)| *at);
                        at.ok().map(|at| self.details[at].1.clone())
                    })
                    .flatten();
                Some(hook.runner(lifecycle, detail))
            }
            Source::Built { runners, .. } => runners
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_mut(index)?
                .take(),
        }
    }

    /// The names and timeouts of the hooks in `range`, whose reports are
    /// `reports`.
    pub(crate) fn names(&self, range: Range<usize>, reports: &[HookReport]) -> Names {
        match &self.source {
            Source::Registered(hooks, _) => Names::Registered(&hooks[range]),
            Source::Built { .. } => Names::Owned(
                reports
                    .iter()
                    .map(|report| (report.name.clone(), report.timeout()))
                    .collect(),
            ),
        }
    }
}

impl From<Vec<Hook>> for Hooks {
    /// Sorts `hooks` as a sequence runs them.
    fn from(hooks: Vec<Hook>) -> Self {
        let hooks = sort(hooks);
        let mut reports = Vec::with_capacity(hooks.len());
        let mut timeouts = Vec::with_capacity(hooks.len());
        let mut runners = Vec::with_capacity(hooks.len());
        let mut details = Vec::new();
        for (index, mut hook) in hooks.into_iter().enumerate() {
            if let Some(slot) = hook.meta.detail.take() {
                details.push((index, slot));
            }
            timeouts.push(hook.meta.timeout);
            reports.push(HookReport::not_run(hook.meta));
            runners.push(Some(hook.runner));
        }
        Hooks {
            phases: phases_of(reports.iter().map(|report| report.order)),
            source: Source::Built {
                reports: Mutex::new(reports),
                timeouts,
                runners: Mutex::new(runners),
            },
            details,
        }
    }
}

/// Names given to more than one registered hook: each is a mistake (two
/// items with one `name = "…"`), and a report or selection by name could
/// not tell them apart.
fn duplicate_names(plan: &Plan) -> Vec<&'static str> {
    // One pass with a set: at startup, beside `main`, with 10,000 hooks a
    // sort of their names cost the service a millisecond to READY.
    let mut seen = std::collections::HashSet::with_capacity(plan.hooks.len());
    let mut duplicates: Vec<&'static str> = plan
        .hooks
        .iter()
        .map(|registration| registration.name)
        .filter(|name| !seen.insert(*name))
        .collect();
    duplicates.sort_unstable();
    duplicates.dedup();
    duplicates
}

/// Warns, once per name, of hooks registered under one name.
fn warn_of_duplicates(plan: &Plan) {
    for name in duplicate_names(plan) {
        crate::logging::warn_now(&format!(
            "more than one cleanup hook is named {name:?}: give each its own `name = \"…\"`"
        ));
    }
}

/// Writes the `LICHTARA_HOOKS=list` table.
pub(crate) fn write_listing(out: &mut dyn Write) -> io::Result<()> {
    let metas: Vec<HookMeta> = plan()
        .hooks
        .iter()
        .map(|registration| registration.meta())
        .collect();
    writeln!(out, "{} cleanup hooks registered", metas.len())?;
    for name in duplicate_names(plan()) {
        writeln!(
            out,
            "warning: more than one hook is named {name:?}: give each its own `name = \"…\"`"
        )?;
    }
    if metas.is_empty() {
        writeln!(
            out,
            "(a hook in a library crate is linked only when the binary names that crate: add `use that_crate as _;`)"
        )?;
    } else {
        write_table(out, &metas)?;
    }
    let mut reloads: Vec<HookMeta> = crate::reload::registrations()
        .map(crate::reload::ReloadRegistration::meta)
        .collect();
    if !reloads.is_empty() {
        reloads.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        writeln!(
            out,
            "{} reload hooks registered (SIGHUP reloads instead of shutting down)",
            reloads.len()
        )?;
        write_table(out, &reloads)?;
    }
    Ok(())
}

/// The hooks' table: order, timeout, kind, name, source.
fn write_table(out: &mut dyn Write, metas: &[HookMeta]) -> io::Result<()> {
    writeln!(
        out,
        "{:>6}  {:<9}  {:<9}  {:<40}  SOURCE",
        "ORDER", "TIMEOUT", "KIND", "NAME"
    )?;
    for meta in metas {
        let timeout = meta.timeout.map_or_else(
            || "-".to_owned(),
            |t| humantime::format_duration(t).to_string(),
        );
        let source = meta
            .source
            .map_or_else(String::new, |(file, line)| format!("{file}:{line}"));
        writeln!(
            out,
            "{:>6}  {:<9}  {:<9}  {:<40}  {source}",
            meta.order,
            timeout,
            meta.kind.to_string(),
            meta.name
        )?;
    }
    Ok(())
}
