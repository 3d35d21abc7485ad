//! `lichtara::process` children and the thread they are forked from.

#![cfg(target_os = "linux")]

use lichtara_tests::harness::Proc;

#[test]
fn a_child_spawned_from_a_blocking_thread_outlives_that_thread() {
    let ended = Proc::start(env!("CARGO_BIN_EXE_late_child"), &[]).wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(ended.has("spawning thread exited"), "{ended}");
    assert!(ended.has("child alive"), "{ended}");
}

/// This process's children whose environment holds `marker`.
fn children_marked(marker: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("tasks") {
        let children = task.expect("task").path().join("children");
        let Ok(list) = std::fs::read_to_string(children) else {
            continue;
        };
        for pid in list
            .split_whitespace()
            .filter_map(|pid| pid.parse::<i32>().ok())
        {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            if environ
                .split(|byte| *byte == 0)
                .any(|entry| entry == marker.as_bytes())
            {
                found.push(pid);
            }
        }
    }
    found
}

/// A `spawn` future dropped before it returns leaves no child running:
/// the child started for it is killed with its group and reaped.
#[tokio::test(flavor = "current_thread")]
async fn a_dropped_spawn_future_leaves_no_child_behind() {
    use std::future::Future;
    use std::task::Poll;

    let marker = format!("LICHTARA_DROPPED_SPAWN=run-{}", std::process::id());
    let (key, value) = marker.split_once('=').expect("a variable");
    // The drop must come while the future waits for the spawner thread; when
    // the thread answers within the first poll, the child is ours and
    // tracked: stop it and try again (bounded).
    let mut dropped_while_pending = false;
    for _ in 0..20 {
        let mut command = tokio::process::Command::new("sleep");
        command.arg("30").env(key, value);
        let mut spawn = Box::pin(lichtara::process::spawn(command));
        let first = std::future::poll_fn(|cx| Poll::Ready(spawn.as_mut().poll(cx))).await;
        match first {
            Poll::Pending => {
                drop(spawn);
                dropped_while_pending = true;
                break;
            }
            Poll::Ready(child) => {
                let child = child.expect("spawned");
                let pid = nix::unistd::Pid::from_raw(child.id() as i32);
                nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL)
                    .expect("kill the group this test made");
                child.wait().await;
            }
        }
    }
    assert!(
        dropped_while_pending,
        "the spawn never stayed pending for one poll"
    );
    // The spawner thread takes jobs in order: once a second spawn has
    // returned, the dropped one has been started and dealt with.
    let after = lichtara::process::spawn(tokio::process::Command::new("true"))
        .await
        .expect("a second spawn");
    after.wait().await;
    // Killed at once; reaped by a task of this runtime, so yield to it
    // (bounded) until no marked child is left, not even a zombie.
    let mut left = children_marked(&marker);
    for _ in 0..500 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        left = children_marked(&marker);
    }
    for pid in &left {
        // Reaped pass or fail: this test started it.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(
        left.is_empty(),
        "children of a dropped spawn() left running: {left:?}"
    );
}
