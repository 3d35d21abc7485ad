//! S7 with lichtara: a realistic service's shutdown, 10 hooks in 3 phases
//! of 0-5 ms each (see `lichtara_bench::S7_PHASES`): waits on I/O as async
//! hooks, one fsync-like blocking wait as a sync hook. The ideal is the sum
//! of each phase's longest hook.

use lichtara_bench::s7_work;

// Phase 1: stop taking work.
#[lichtara::cleanup(order = 1, timeout = "1s")]
async fn close_listener() {
    s7_work(0, 0).await;
}
#[lichtara::cleanup(order = 1, timeout = "1s")]
async fn stop_consumer() {
    s7_work(0, 1).await;
}
#[lichtara::cleanup(order = 1, timeout = "1s")]
async fn cancel_scheduler() {
    s7_work(0, 2).await;
}
#[lichtara::cleanup(order = 1, timeout = "1s")]
async fn drain_requests() {
    s7_work(0, 3).await;
}

// Phase 2: flush what was taken.
#[lichtara::cleanup(order = 2, timeout = "1s")]
async fn flush_metrics() {
    s7_work(1, 0).await;
}
#[lichtara::cleanup(order = 2, timeout = "1s")]
async fn flush_queue() {
    s7_work(1, 1).await;
}
#[lichtara::cleanup(order = 2, timeout = "1s")]
async fn commit_offsets() {
    s7_work(1, 2).await;
}
#[lichtara::cleanup(order = 2, timeout = "1s")]
fn sync_journal() {
    lichtara_bench::s7_blocking(1, 3);
}

// Phase 3: close the connections.
#[lichtara::cleanup(order = 3, timeout = "1s")]
async fn close_db_pool() {
    s7_work(2, 0).await;
}
#[lichtara::cleanup(order = 3, timeout = "1s")]
async fn close_cache() {
    s7_work(2, 1).await;
}

#[lichtara::main]
async fn main() {
    println!("READY");
    lichtara::signalled().await;
}
