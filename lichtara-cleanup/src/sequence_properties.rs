//! Properties of the sequencer on virtual time: random hooks (orders,
//! timeouts, durations, failures) under a random global deadline.
//!
//! Durations end in 5 ms, timeouts in 0 ms and deadlines in 3 ms, so that
//! no two timers of a case can fire at the same virtual instant and every
//! outcome is decided.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::{Progress, run};
use crate::hook::{Hook, HookKind, HookMeta, HookRunner};
use crate::report::Outcome;

#[derive(Clone, Copy, Debug)]
enum Ending {
    Ok,
    Err,
    Panic,
    Never,
}

#[derive(Clone, Debug)]
struct Spec {
    order: i32,
    timeout_ms: Option<u64>,
    duration_ms: u64,
    ending: Ending,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        -2i32..3,
        proptest::option::of((1u64..200).prop_map(|t| t * 10)),
        (0u64..150).prop_map(|d| d * 10 + 5),
        prop_oneof![4 => Just(Ending::Ok), 1 => Just(Ending::Err), 1 => Just(Ending::Panic), 1 => Just(Ending::Never)],
    )
        .prop_map(|(order, timeout_ms, duration_ms, ending)| Spec {
            order,
            timeout_ms,
            duration_ms,
            ending,
        })
}

/// (hook index, start, end) in virtual milliseconds since the sequence began.
type Journal = Arc<Mutex<Vec<(usize, &'static str, u64)>>>;

fn hook(index: usize, spec: &Spec, journal: &Journal, origin: Instant) -> Hook {
    let journal = Arc::clone(journal);
    let spec_for_run = spec.clone();
    Hook {
        meta: HookMeta {
            name: Cow::Owned(format!("hook{index:02}")),
            order: spec.order,
            timeout: spec.timeout_ms.map(Duration::from_millis),
            kind: HookKind::Builder,
            source: None,
            detail: None,
        },
        runner: HookRunner::Boxed(Box::new(move || {
            crate::hook::HookFuture::new(async move {
                let now = || origin.elapsed().as_millis() as u64;
                journal.lock().unwrap().push((index, "start", now()));
                if let Ending::Never = spec_for_run.ending {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(Duration::from_millis(spec_for_run.duration_ms)).await;
                journal.lock().unwrap().push((index, "end", now()));
                match spec_for_run.ending {
                    Ending::Ok | Ending::Never => Ok(()),
                    Ending::Err => Err("failed on purpose".into()),
                    Ending::Panic => panic!("panicked on purpose"),
                }
            })
        })),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn the_sequence_keeps_its_promises(
        specs in proptest::collection::vec(spec(), 0..10),
        deadline_ms in (5u64..400).prop_map(|d| d * 10 + 3),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let journal: Journal = Arc::default();
        let (outcome, total) = runtime.block_on(async {
            let origin = Instant::now();
            let hooks = specs.iter().enumerate().map(|(i, s)| hook(i, s, &journal, origin)).collect();
            let outcome = run(crate::registry::sort(hooks), origin + Duration::from_millis(deadline_ms), &Progress::default()).await;
            (outcome, origin.elapsed().as_millis() as u64)
        });
        let journal = journal.lock().unwrap().clone();
        let starts: HashMap<usize, u64> = journal.iter().filter(|e| e.1 == "start").map(|e| (e.0, e.2)).collect();

        // Every hook is reported exactly once.
        prop_assert_eq!(outcome.hooks.len(), specs.len());
        let index_of = |name: &str| name[4..].parse::<usize>().unwrap();
        let mut reported: Vec<usize> = outcome.hooks.iter().map(|h| index_of(&h.name)).collect();
        reported.sort_unstable();
        prop_assert_eq!(reported, (0..specs.len()).collect::<Vec<_>>());
        // No hook runs twice.
        prop_assert_eq!(journal.iter().filter(|e| e.1 == "start").count(), starts.len());
        // Nothing starts or ends at or after the deadline; the sequence
        // never outlives it.
        prop_assert!(journal.iter().all(|e| e.2 < deadline_ms), "{:?}", journal);
        prop_assert!(total <= deadline_ms);
        // Reports follow ascending order.
        let orders: Vec<i32> = outcome.hooks.iter().map(|h| h.order).collect();
        prop_assert!(orders.windows(2).all(|w| w[0] <= w[1]));

        for report in &outcome.hooks {
            let i = index_of(&report.name);
            let spec = &specs[i];
            match starts.get(&i) {
                None => prop_assert_eq!(report.outcome(), &Outcome::NotRun),
                Some(start) => {
                    prop_assert_ne!(report.outcome(), &Outcome::NotRun);
                    // Phases never overlap: a hook of a lower order ended
                    // (or was abandoned) before this one started.
                    for other in &outcome.hooks {
                        let j = index_of(&other.name);
                        if let (true, Some(other_start)) = (other.order < report.order, starts.get(&j)) {
                            let other_end = other_start + other.elapsed().as_millis() as u64;
                            prop_assert!(other_end <= *start, "{} ended at {} after {} started at {}", j, other_end, i, start);
                        }
                    }
                    // The outcome follows from the spec.
                    let limit = spec.timeout_ms.map_or(u64::MAX, |t| start + t).min(deadline_ms);
                    let would_end = match spec.ending {
                        Ending::Never => u64::MAX,
                        _ => start + spec.duration_ms,
                    };
                    let expected = if would_end >= limit {
                        Outcome::TimedOut
                    } else {
                        match spec.ending {
                            Ending::Ok | Ending::Never => Outcome::Ok,
                            Ending::Err => Outcome::Error("failed on purpose".into()),
                            Ending::Panic => Outcome::Panicked("panicked on purpose".into()),
                        }
                    };
                    prop_assert_eq!(report.outcome(), &expected, "hook {} {:?} started at {}", i, spec, start);
                }
            }
        }
        // The deadline is reported exactly when it cut something.
        let cut = outcome.hooks.iter().any(|h| *h.outcome() == Outcome::NotRun)
            || outcome.hooks.iter().any(|h| {
                *h.outcome() == Outcome::TimedOut
                    && starts.get(&index_of(&h.name)).is_some_and(|s| {
                        let spec = &specs[index_of(&h.name)];
                        spec.timeout_ms.is_none_or(|t| s + t > deadline_ms)
                    })
            });
        prop_assert_eq!(outcome.deadline_passed, cut);
    }
}
