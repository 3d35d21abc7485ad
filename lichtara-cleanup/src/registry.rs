//! Hooks registered at compile time by `#[lichtara::cleanup]`, collected
//! through `inventory` before `main` runs.
//!
//! inventory promises no order: [`collect`] returns the hooks unsorted and
//! the sequencer sorts them by `(order, name)`.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::OnceLock;
use std::time::Duration;

use crate::BoxError;
use crate::hook::{Hook, HookFuture, HookKind, HookMeta, HookRunner};

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
    /// A resource type: cleans its instances; `pin` keeps them alive once
    /// shutdown begins.
    Resource {
        /// Cleans every live instance.
        run: fn() -> HookFuture,
        /// Keeps the live instances until they are cleaned.
        pin: fn(),
    },
}

impl Registration {
    /// Describes a hook. `timeout_nanos` is `u64::MAX` when the hook has
    /// no timeout of its own.
    #[must_use]
    pub const fn new(
        name: &'static str,
        order: i32,
        timeout_nanos: u64,
        file: &'static str,
        line: u32,
        kind: RegisteredKind,
    ) -> Self {
        let timeout = if timeout_nanos == u64::MAX {
            None
        } else {
            Some(Duration::from_nanos(timeout_nanos))
        };
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
        HookMeta {
            name: Cow::Borrowed(self.name),
            order: self.order,
            timeout: self.timeout,
            kind: match self.kind {
                RegisteredKind::Async(_) => HookKind::Async,
                RegisteredKind::Blocking(_) => HookKind::Blocking,
                RegisteredKind::Resource { .. } => HookKind::Resource,
            },
            source: Some((self.file, self.line)),
            detail: None,
        }
    }

    fn hook(&self) -> Hook {
        let runner = match self.kind {
            RegisteredKind::Async(run) | RegisteredKind::Resource { run, .. } => {
                HookRunner::Async(run)
            }
            RegisteredKind::Blocking(run) => HookRunner::Blocking(run),
        };
        Hook {
            meta: self.meta(),
            runner,
        }
    }
}

inventory::collect!(Registration);

/// The registered hooks in the order the sequencer runs them, and the
/// resource types whose instances are pinned when shutdown begins. Built
/// once, off the shutdown path: the supervisor thread builds it at startup.
pub(crate) struct Plan {
    hooks: Vec<&'static Registration>,
    pins: Vec<fn()>,
}

static PLAN: OnceLock<Plan> = OnceLock::new();

pub(crate) fn plan() -> &'static Plan {
    PLAN.get_or_init(|| {
        let mut hooks: Vec<&'static Registration> =
            inventory::iter::<Registration>.into_iter().collect();
        hooks.sort_unstable_by(|a, b| (a.order, a.name).cmp(&(b.order, b.name)));
        let pins = hooks
            .iter()
            .filter_map(|registration| match registration.kind {
                RegisteredKind::Resource { pin, .. } => Some(pin),
                _ => None,
            })
            .collect();
        Plan { hooks, pins }
    })
}

impl Plan {
    /// Every registered hook, sorted, ready to run.
    pub(crate) fn hooks(&self) -> impl ExactSizeIterator<Item = Hook> + '_ {
        self.hooks.iter().map(|registration| registration.hook())
    }

    /// Keeps the live instances of every resource type until cleaned.
    pub(crate) fn pin_resources(&self) {
        for pin in &self.pins {
            pin();
        }
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
    if metas.is_empty() {
        writeln!(
            out,
            "(a hook in a library crate is linked only when the binary names that crate: add `use that_crate as _;`)"
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "{:>6}  {:<9}  {:<9}  {:<40}  SOURCE",
        "ORDER", "TIMEOUT", "KIND", "NAME"
    )?;
    for meta in &metas {
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
