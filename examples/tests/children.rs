//! Children spawned through `lichtara::process` do not outlive the service.

#![cfg(target_os = "linux")]

use lichtara_tests::harness::{Proc, wait_exited, wait_until};
use nix::sys::signal::Signal;

const CHILDREN: &str = env!("CARGO_BIN_EXE_children");

// lichtara's own /proc reader, as its manager includes it.
#[path = "../../lichtara-cleanup/src/proc_stat.rs"]
mod proc_stat;

use proc_stat::{all_stats, stat};

fn live(pid: i32) -> bool {
    stat(pid).is_ok_and(|stat| !stat.is_zombie())
}

fn children_of(parent: i32) -> Vec<i32> {
    all_stats()
        .unwrap()
        .into_iter()
        .filter(|stat| stat.ppid == parent && stat.state != 'Z')
        .map(|stat| stat.pid)
        .collect()
}

/// Starts the service; returns it, its workers and their own children.
fn start() -> (Proc, Vec<i32>, Vec<i32>) {
    start_with(&[])
}

fn start_with(extra: &[&str]) -> (Proc, Vec<i32>, Vec<i32>) {
    let mut args = vec!["--workers", "2"];
    args.extend_from_slice(extra);
    let mut service = Proc::start_with_args(CHILDREN, &args, &[]);
    service.wait_for_prefix("READY");
    let workers: Vec<i32> = service
        .stdout_so_far()
        .iter()
        .filter_map(|line| line.strip_prefix("worker ")?.parse().ok())
        .collect();
    assert_eq!(workers.len(), 2);
    // Each worker forks its `sleep` soon after it starts.
    let mut grandchildren = Vec::new();
    wait_until("the workers' children appeared", || {
        grandchildren = workers.iter().flat_map(|w| children_of(*w)).collect();
        grandchildren.len() == 2
    });
    (service, workers, grandchildren)
}

#[test]
fn workers_and_their_children_are_gone_after_a_graceful_shutdown() {
    let (mut service, workers, grandchildren) = start();
    service.signal(Signal::SIGTERM);
    let ended = service.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(ended.stderr.contains("child stopped"), "{ended}");
    // The report names how each worker exited: killed by the SIGTERM.
    assert_eq!(
        ended
            .stderr
            .matches("detail=\"exited: signal: 15 (SIGTERM)\"")
            .count(),
        2,
        "{ended}"
    );
    let all: Vec<i32> = workers.iter().chain(&grandchildren).copied().collect();
    assert!(
        wait_exited(&all),
        "left behind: {:?}",
        all.iter().filter(|p| live(**p)).collect::<Vec<_>>()
    );
}

#[test]
fn workers_die_with_a_sigkilled_service() {
    let (mut service, workers, grandchildren) = start();
    service.signal(Signal::SIGKILL);
    let gone = wait_exited(&workers);
    // PDEATHSIG reaches the workers only: their own children, started by
    // this test through the service, are ended here, by PID (they hold the
    // service's output pipes open, too).
    for pid in &grandchildren {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), Signal::SIGKILL);
    }
    let ended = service.wait();
    assert_eq!(ended.signal(), Some(Signal::SIGKILL as i32));
    assert!(
        gone,
        "workers survived the service: {:?}",
        workers.iter().filter(|p| live(**p)).collect::<Vec<_>>()
    );
}

#[test]
fn as_a_subreaper_the_service_adopts_and_reaps_its_workers_orphans() {
    let (mut service, workers, grandchildren) = start_with(&["--subreaper"]);
    let service_pid = service.pid() as i32;
    // A worker dies; its child is re-parented to the service, not to PID 1.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(workers[0]), Signal::SIGKILL).unwrap();
    let mut orphan = None;
    wait_until("a grandchild re-parented to the service", || {
        orphan = grandchildren
            .iter()
            .copied()
            .find(|g| stat(*g).is_ok_and(|stat| stat.ppid == service_pid));
        orphan.is_some()
    });
    let orphan = orphan.expect("found above");
    // It exits: the service reaps it (no zombie left under the service).
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(orphan), Signal::SIGKILL).unwrap();
    wait_until("the orphan reaped by the service", || {
        !stat(orphan).is_ok_and(|stat| stat.ppid == service_pid)
    });
    service.signal(Signal::SIGTERM);
    let ended = service.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    let all: Vec<i32> = workers.iter().chain(&grandchildren).copied().collect();
    assert!(wait_exited(&all));
}
