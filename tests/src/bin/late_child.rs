//! A child spawned from a tokio blocking thread that then exits (idle
//! keep-alive of 20 ms): PDEATHSIG follows the thread that forked, so a
//! naive spawn would kill the child here. lichtara forks from a thread of
//! its own; the child must live on until shutdown stops it.

use std::sync::mpsc;
use std::time::Duration;

use lichtara_tests::event;

fn main() {
    let (stopped, thread_stopped) = mpsc::channel::<()>();
    let stopped = std::sync::Mutex::new(stopped);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_keep_alive(Duration::from_millis(20))
        .on_thread_stop(move || {
            let _ = stopped.lock().map(|tx| tx.send(()));
        })
        .enable_all()
        .build()
        .expect("runtime");
    let report = runtime.block_on(lichtara::Shutdown::new().run(async move {
        let handle = tokio::runtime::Handle::current();
        let child = tokio::task::spawn_blocking(move || {
            let mut command = tokio::process::Command::new("sleep");
            command.arg("300");
            handle.block_on(lichtara::process::spawn(command))
        })
        .await
        .expect("the blocking task")
        .expect("spawn");
        event(&format!("child {}", child.id()));
        // The blocking thread that called spawn goes idle and exits.
        thread_stopped
            .recv_timeout(Duration::from_secs(30))
            .expect("the blocking thread exits after its keep-alive");
        event("spawning thread exited");
        // Had the child been forked on that thread, PDEATHSIG would end it
        // now; give the kernel and the reaper time to show that.
        match tokio::time::timeout(Duration::from_millis(500), child.wait()).await {
            Ok(status) => event(&format!("child died: {status}")),
            Err(_) => event("child alive"),
        }
    }));
    std::process::exit(report.exit_code());
}
