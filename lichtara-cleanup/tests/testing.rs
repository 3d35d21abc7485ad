#![cfg(feature = "test-util")]

//! `lichtara::testing`: many runs in one test binary, concurrent ones
//! included, each with its own trigger and its own managed instances, on
//! virtual time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lichtara::testing::{self, Run};
use lichtara::{Outcome, Trigger};

static FIRST_RUNS: AtomicUsize = AtomicUsize::new(0);

#[lichtara::cleanup(order = 1, name = "first")]
async fn first() {
    FIRST_RUNS.fetch_add(1, Ordering::SeqCst);
}

/// Sleeps past its timeout: slow only in the runs that manage one.
#[lichtara::cleanup(order = 2, timeout = "1s", name = "slow")]
struct Sleeper;

impl lichtara::Cleanup for Sleeper {
    async fn cleanup(&self) -> Result<(), lichtara::BoxError> {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(())
    }
}

/// Records its cleanup in the journal of the run that managed it.
#[lichtara::cleanup(order = 3, name = "recorder")]
struct Recorder {
    journal: Arc<Mutex<Vec<u32>>>,
    id: u32,
}

impl lichtara::Cleanup for Recorder {
    async fn cleanup(&self) -> Result<(), lichtara::BoxError> {
        // Yield first: the concurrent run goes on meanwhile.
        tokio::task::yield_now().await;
        self.journal.lock().unwrap().push(self.id);
        Ok(())
    }
}

/// One run: manages `count` recorders, waits to be told to shut down by
/// `trigger` (or ends), and returns its report and what its recorders saw.
async fn one_run(count: u32) -> (lichtara::ShutdownReport, Vec<u32>) {
    let journal = Arc::new(Mutex::new(Vec::new()));
    let mine = journal.clone();
    let report = Run::new()
        .start_paused(true)
        .run(async move {
            for id in 0..count {
                // Handles dropped at once: the run owns the instances.
                let _ = lichtara::manage(Recorder {
                    journal: mine.clone(),
                    id,
                });
            }
            // A task spawned by the application sees the run too.
            let waiter = tokio::spawn(lichtara::signalled());
            tokio::task::yield_now().await;
            lichtara::shutdown();
            waiter
                .await
                .expect("the spawned waiter saw the run's shutdown");
        })
        .await;
    let mut seen = journal.lock().unwrap().clone();
    seen.sort_unstable();
    (report, seen)
}

#[tokio::test]
async fn two_concurrent_runs_each_clean_only_their_own_instances() {
    let ((a, seen_a), (b, seen_b)) = tokio::join!(one_run(3), one_run(5));
    for (report, seen, count) in [(&a, &seen_a, 3), (&b, &seen_b, 5)] {
        assert_eq!(report.exit_code(), 0, "{report}");
        assert_eq!(report.trigger(), Trigger::Requested, "{report}");
        assert_eq!(seen, &(0..count).collect::<Vec<_>>(), "{report}");
        let recorder = report
            .hooks()
            .iter()
            .find(|hook| hook.name() == "recorder")
            .expect("the resource hook ran");
        assert_eq!(
            recorder.detail(),
            Some(format!("{count} instances").as_str())
        );
        testing::assert_ran_in_order(report, &["first", "slow", "recorder"]);
        testing::assert_nothing_not_run(report);
    }
    // Neither run touched the process-wide lifecycle.
    assert!(!lichtara::is_shutting_down());
}

#[tokio::test]
async fn runs_on_parallel_test_threads_are_independent_too() {
    let (report, seen) = one_run(2).await;
    assert_eq!(seen, vec![0, 1], "{report}");
    assert!(FIRST_RUNS.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn a_run_with_no_instance_says_so() {
    let report = Run::new()
        .start_paused(true)
        .hook("recorder")
        .run(async {})
        .await;
    assert_eq!(report.hooks().len(), 1, "{report}");
    assert_eq!(report.hooks()[0].detail(), Some("no instance to clean"));
    assert_eq!(report.trigger(), Trigger::MainReturned);
}

#[tokio::test]
async fn a_selection_runs_only_those_hooks_and_timeouts_pass_on_virtual_time() {
    let report = Run::new()
        .start_paused(true)
        .orders(2..3)
        .deadline(Duration::from_secs(20))
        .trigger(Trigger::Signal {
            name: "SIGTERM",
            number: 15,
        })
        .run(async {
            let _ = lichtara::manage(Sleeper);
            lichtara::signalled().await;
        })
        .await;
    let names: Vec<&str> = report.hooks().iter().map(|hook| hook.name()).collect();
    assert_eq!(names, ["slow"], "{report}");
    testing::assert_timed_out(&report, "slow");
    assert_eq!(report.exit_code(), 1, "{report}");
    assert_eq!(report.deadline(), Duration::from_secs(20));
    // Ended by its own 1 s timeout (on the paused clock: the 30 s sleep
    // cost nothing), not by the 20 s global deadline.
    assert_eq!(report.hooks()[0].timeout(), Some(Duration::from_secs(1)));
    assert!(!report.deadline_passed(), "{report}");
    assert_eq!(report.hooks()[0].detail(), Some("1 instance"), "{report}");
}

#[tokio::test]
async fn the_global_deadline_leaves_later_phases_not_run() {
    let report = Run::new()
        .start_paused(true)
        .deadline(Duration::from_millis(500))
        .run(async {
            let _ = lichtara::manage(Sleeper);
        })
        .await;
    assert!(report.deadline_passed(), "{report}");
    assert_eq!(report.exit_code(), 124, "{report}");
    // Cut by the deadline, not by its own 1 s timeout: the report says so.
    testing::assert_timed_out(&report, "slow");
    let slow = report
        .hooks()
        .iter()
        .find(|hook| hook.name() == "slow")
        .expect("listed");
    assert_eq!(
        slow.detail(),
        Some("cut by the global deadline"),
        "{report}"
    );
    let recorder = report
        .hooks()
        .iter()
        .find(|hook| hook.name() == "recorder")
        .expect("listed");
    assert_eq!(*recorder.outcome(), Outcome::NotRun, "{report}");
    let caught = std::panic::catch_unwind(|| testing::assert_nothing_not_run(&report));
    assert!(caught.is_err(), "the helper must fail on a hook not run");
}

#[tokio::test]
async fn the_helpers_fail_with_the_report_when_the_order_is_wrong() {
    let report = testing::run(async {}).await;
    let caught = std::panic::catch_unwind(|| {
        testing::assert_ran_in_order(&report, &["recorder", "first"]);
    });
    let message = *caught
        .expect_err("recorder ran after first")
        .downcast::<String>()
        .expect("a message");
    assert!(
        message.contains("hook \"first\" ran before \"recorder\""),
        "{message}"
    );
    assert!(
        message.contains("shutdown after main returned"),
        "{message}"
    );
}

/// With the `serde` feature the report serializes in the shape
/// `LICHTARA_REPORT` writes.
#[cfg(feature = "serde")]
#[tokio::test]
async fn the_report_serializes_with_serde() {
    let report = Run::new().hook("first").run(async {}).await;
    let value = serde_json::to_value(&report).expect("serializes");
    assert_eq!(value["schema_version"], 2);
    assert_eq!(value["trigger"]["kind"], "main_returned");
    assert_eq!(value["hooks"][0]["name"], "first");
    assert_eq!(value["hooks"][0]["outcome"], "ok");
    assert_eq!(
        serde_json::to_value(report.hooks()[0].outcome()).expect("serializes"),
        "ok"
    );
}

/// Counts its drops: whether a run left an instance behind.
#[lichtara::cleanup(order = 9, name = "counted")]
struct Counted;

static COUNTED_DROPS: AtomicUsize = AtomicUsize::new(0);

impl Drop for Counted {
    fn drop(&mut self) {
        COUNTED_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

impl lichtara::Cleanup for Counted {
    async fn cleanup(&self) -> Result<(), lichtara::BoxError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_task_of_one_run_never_triggers_or_feeds_another_run_on_the_same_thread() {
    // A sleeps; B's spawned task manages an instance and shuts B down.
    let a = Run::new().start_paused(true).run(async {
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let b = Run::new().start_paused(true).run(async {
        tokio::spawn(async {
            let _ = lichtara::manage(Recorder {
                journal: Arc::default(),
                id: 0,
            });
            lichtara::shutdown();
        });
        lichtara::signalled().await;
    });
    let (a, b) = tokio::join!(a, b);
    let recorder = |report: &lichtara::ShutdownReport| {
        report
            .hooks()
            .iter()
            .find(|hook| hook.name() == "recorder")
            .and_then(|hook| hook.detail().map(str::to_owned))
    };
    assert_eq!(a.trigger(), Trigger::MainReturned, "{a}");
    assert_eq!(recorder(&a).as_deref(), Some("no instance to clean"), "{a}");
    assert_eq!(b.trigger(), Trigger::Requested, "{b}");
    assert_eq!(recorder(&b).as_deref(), Some("1 instance"), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_on_a_multi_thread_runtime_leave_its_workers_alone() {
    let runs: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(Run::new().start_paused(true).run(async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                lichtara::shutdown();
            }))
        })
        .collect();
    for run in runs {
        assert_eq!(run.await.expect("run").trigger(), Trigger::Requested);
    }
    // Tasks outside any run see the process-wide lifecycle, never begun.
    let outside: Vec<_> = (0..20)
        .map(|_| tokio::spawn(async { lichtara::is_shutting_down() }))
        .collect();
    for task in outside {
        assert!(!task.await.expect("task"));
    }
}

#[tokio::test]
async fn a_signalled_built_before_the_run_waits_for_the_run() {
    // As `with_graceful_shutdown(lichtara::signalled())` built first.
    let signalled = lichtara::signalled();
    let report = Run::new()
        .trigger(Trigger::Requested)
        .run(async move {
            signalled.await;
            Ok::<(), String>(())
        })
        .await;
    assert_eq!(*report.main(), lichtara::MainOutcome::Success, "{report}");
    assert!(!lichtara::is_shutting_down());
}

#[tokio::test]
async fn a_run_drops_the_instances_it_did_not_clean() {
    let before = COUNTED_DROPS.load(Ordering::SeqCst);
    // Its type not selected: not cleaned, and not kept either.
    let report = Run::new()
        .hook("first")
        .run(async {
            for _ in 0..3 {
                let _ = lichtara::manage(Counted);
            }
        })
        .await;
    assert_eq!(report.hooks().len(), 1, "{report}");
    assert!(COUNTED_DROPS.load(Ordering::SeqCst) >= before + 3);
}

#[tokio::test]
async fn the_blocking_threads_of_a_run_belong_to_it() {
    let report = Run::new()
        .run(async {
            // A sync piece of the application ends the run from the
            // blocking pool.
            tokio::task::spawn_blocking(lichtara::shutdown)
                .await
                .expect("blocking task");
            lichtara::signalled().await;
        })
        .await;
    assert_eq!(report.trigger(), Trigger::Requested, "{report}");
    assert!(!lichtara::is_shutting_down());
}

/// Says, through a channel, that it was cleaned.
#[lichtara::cleanup(order = 8, name = "announcer")]
struct Announcer(std::sync::mpsc::SyncSender<()>);

impl lichtara::Cleanup for Announcer {
    async fn cleanup(&self) -> Result<(), lichtara::BoxError> {
        let _ = self.0.try_send(());
        Ok(())
    }
}

#[tokio::test]
async fn a_run_whose_future_is_dropped_winds_down_and_cleans() {
    let (cleaned, announced) = std::sync::mpsc::sync_channel(1);
    let run = Run::new().run(async move {
        let _ = lichtara::manage(Announcer(cleaned));
        lichtara::signalled().await;
    });
    // Polled once (the run starts on its thread), then dropped.
    let mut run = Box::pin(run);
    let first = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(std::future::Future::poll(run.as_mut(), cx))
    })
    .await;
    assert!(first.is_pending());
    drop(run);
    announced
        .recv_timeout(Duration::from_secs(30))
        .expect("the dropped run was shut down and cleaned its instance");
}

#[cfg(all(target_os = "linux", feature = "process"))]
#[tokio::test]
async fn a_child_of_a_run_is_stopped_even_when_the_selection_leaves_out_every_registered_hook() {
    let report = Run::new()
        .orders(1000..=1000)
        .run(async {
            let mut sleep = tokio::process::Command::new("sleep");
            sleep.arg("30");
            let child = lichtara::process::spawn(sleep).await.expect("spawned");
            assert!(child.try_status().is_none());
        })
        .await;
    let stop = report
        .hooks()
        .iter()
        .find(|hook| hook.name().starts_with("lichtara::process::child"))
        .expect("the child's stop ran");
    assert_eq!(*stop.outcome(), Outcome::Ok, "{report}");
    assert_eq!(report.hooks().len(), 1, "{report}");
}

/// Each tracked task's name and outcome, in spawn order.
fn task_outcomes(report: &lichtara::ShutdownReport) -> Vec<(&str, Outcome)> {
    report
        .tasks()
        .iter()
        .map(|task| (task.name(), task.outcome().clone()))
        .collect()
}

/// A tracked task belongs to the run that spawned it: awaited and
/// reported there, and its failure begins that run's shutdown.
#[tokio::test]
async fn a_tracked_task_that_fails_begins_its_runs_shutdown() {
    let report = Run::new()
        .start_paused(true)
        .run(async {
            lichtara::spawn("worker", async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Err::<(), _>(std::io::Error::other("the queue is gone"))
            })
            .expect("spawned");
            lichtara::spawn("bystander", async { lichtara::signalled().await }).expect("spawned");
            lichtara::signalled().await;
            // Refused once the shutdown has begun.
            assert!(matches!(
                lichtara::spawn("late", async {}),
                Err(lichtara::SpawnError::ShuttingDown { .. })
            ));
        })
        .await;
    assert_eq!(report.trigger(), Trigger::TaskFailed { name: "worker" });
    let tasks = task_outcomes(&report);
    assert_eq!(
        tasks,
        [
            ("worker", Outcome::Error("the queue is gone".into())),
            ("bystander", Outcome::Ok)
        ]
    );
    assert_eq!(report.exit_code(), 1);
}

/// Tasks are awaited side by side: one that ended behind a stuck one keeps
/// its outcome, and only the stuck one is timed out.
#[tokio::test]
async fn a_stuck_task_does_not_hide_how_the_others_ended() {
    let report = Run::new()
        .start_paused(true)
        .run(async {
            lichtara::spawn("stuck", std::future::pending::<()>()).expect("spawned");
            lichtara::spawn("quick", async { lichtara::signalled().await }).expect("spawned");
            lichtara::spawn("failing", async {
                lichtara::signalled().await;
                Err::<(), _>(std::io::Error::other("flush failed"))
            })
            .expect("spawned");
            lichtara::shutdown();
            lichtara::signalled().await;
        })
        .await;
    let tasks = task_outcomes(&report);
    assert_eq!(
        tasks,
        [
            ("stuck", Outcome::TimedOut),
            ("quick", Outcome::Ok),
            ("failing", Outcome::Error("flush failed".into()))
        ]
    );
}

/// A task that waits for the shutdown reacts for itself: `main`, which
/// never asked, is dropped at once rather than waited for.
#[tokio::test]
async fn a_task_asking_for_the_signal_does_not_make_main_wait() {
    let report = Run::new()
        .start_paused(true)
        .run(async {
            lichtara::spawn("listener", async {
                let token = lichtara::token();
                lichtara::signalled().await;
                token.cancelled().await;
            })
            .expect("spawned");
            lichtara::shutdown();
            std::future::pending::<()>().await;
        })
        .await;
    assert_eq!(report.main(), &lichtara::MainOutcome::Dropped);
    assert_eq!(report.tasks()[0].outcome(), &Outcome::Ok);
    assert_eq!(report.exit_code(), 0);
}
