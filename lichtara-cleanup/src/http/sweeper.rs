//! The time of every connection of one server, kept by one thread: it looks
//! at each connection's state, tells the connection's task to close it
//! when a head is too slow or when it has idled too long, and at the drain
//! when to shut it down. The connections' tasks poll no timer, and the
//! runtime holds none for them: a tokio runtime with a timer pending reads
//! the clock at every park, which costs a busy server more than the timers
//! themselves (measured in BENCHMARKS.md, S9).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use super::connection::{
    CLOSE, CLOSE_IF_IDLE, CLOSE_SLOW_HEAD, Conn, SHORTEST_WAIT, SHUT_DOWN, Shared, State, Timer,
    deadline, nanos, now,
};

/// Wakes the sweeper before its deadline: the drain began, the drain
/// timeout cut, or the server accepts no more connections.
#[derive(Debug, Default)]
pub(super) struct Wakeup {
    woken: Mutex<bool>,
    changed: Condvar,
}

impl Wakeup {
    pub(super) fn wake(&self) {
        *self.woken.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.changed.notify_one();
    }

    fn wait(&self, timeout: Duration) {
        let woken = self.woken.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut woken, _) = self
            .changed
            .wait_timeout_while(woken, timeout, |woken| !*woken)
            .unwrap_or_else(PoisonError::into_inner);
        *woken = false;
    }
}

/// Starts the sweeper of `shared`'s connections, and the task that tells
/// it when the drain timeout cuts them.
pub(super) fn start(shared: &Arc<Shared>) {
    let sweeping = Arc::clone(shared);
    let started = std::thread::Builder::new()
        .name("lichtara-http-timers".into())
        .spawn(move || sweep(&sweeping));
    if let Err(err) = started {
        tracing::warn!(
            error = %err,
            "cannot start the thread that keeps the connections' timeouts: the header-read and keep-alive timeouts are off, and the drain closes idle connections only at its timeout"
        );
        return;
    }
    let watching = Arc::clone(shared);
    tokio::spawn(async move {
        tokio::select! {
            () = watching.drains.cut.cancelled() => watching.sweeper.wake(),
            () = watching.swept.cancelled() => {}
        }
    });
}

/// Keeps the time of `shared`'s connections until the server accepts no
/// more and the last one has ended, or until the drain timeout cuts them.
fn sweep(shared: &Shared) {
    let mut draining = false;
    loop {
        if shared.drains.cut.is_cancelled() {
            for conn in shared.live() {
                conn.command(CLOSE);
            }
            break;
        }
        if !draining && shared.is_draining() {
            draining = true;
            log_idle(shared);
        }
        let limits = shared.limits;
        // A connection's state changes without the sweeper knowing: it
        // looks again by the earliest deadline any state a connection may
        // reach meanwhile could have (a request that begins and ends, then
        // idles or reads the next head; a connection accepted meanwhile).
        let soonest_next = if draining {
            limits.drain_grace.min(limits.drain_head_grace)
        } else if limits.keep_alive_timeout.is_zero() {
            // No keep-alive: a connection closes after its answer.
            limits.header_read_timeout
        } else {
            limits.keep_alive_timeout.min(limits.header_read_timeout)
        };
        let now = now();
        let mut next = now.saturating_add(nanos(soonest_next.max(SHORTEST_WAIT)));
        let live = shared.live();
        if live.is_empty() && shared.is_accepting_done() {
            break;
        }
        for conn in &live {
            if let Some(at) = visit(conn, shared, now, draining) {
                next = next.min(at.max(now.saturating_add(nanos(SHORTEST_WAIT))));
            }
        }
        drop(live);
        shared
            .sweeper
            .wait(Duration::from_nanos(next.saturating_sub(now)));
    }
    shared.swept.cancel();
}

fn log_idle(shared: &Shared) {
    let now = now();
    for conn in shared.live() {
        if let State::Idle { since, first } = conn.state() {
            let until = since.saturating_add(nanos(shared.limits.drain_grace));
            tracing::debug!(
                wait_ms = until.saturating_sub(now) / 1_000_000,
                "draining a connection that {}",
                if first {
                    "has not begun a request"
                } else {
                    "is idle between requests"
                }
            );
        }
    }
}

/// Acts on one connection whose deadline has passed; returns its next
/// deadline otherwise.
fn visit(conn: &Conn, shared: &Shared, now: u64, draining: bool) -> Option<u64> {
    let limits = shared.limits;
    let stats = &shared.stats;
    let after = |since: u64, timeout: Duration| since.saturating_add(nanos(timeout));
    let h2 = conn.is_h2();
    let state = conn.state();
    match conn.shut() {
        // An HTTP/2 peer told GOAWAY that sends nothing for a moment once
        // its streams are done (no ping answer, no window update for an
        // answer still being sent) is dropped; an HTTP/1 connection closes
        // by itself.
        Some(_) if state == State::Serving => return None,
        Some(at) if h2 => {
            let until = after(at.max(conn.last_read()), limits.drain_head_grace);
            if until <= now {
                tracing::debug!(
                    "dropping an HTTP/2 connection whose peer did not answer the GOAWAY"
                );
                conn.command(CLOSE);
                return None;
            }
            return Some(until);
        }
        Some(_) => return None,
        None if draining && h2 => {
            // HTTP/2: GOAWAY; the streams it has received finish.
            if state != State::Serving {
                stats.closed_idle.fetch_add(1, Ordering::Relaxed);
            }
            conn.set_shut();
            conn.command(SHUT_DOWN);
            return Some(after(now, limits.drain_head_grace));
        }
        None => {}
    }
    // HTTP/1 in flight has no deadline: an answer given while draining
    // says `Connection: close`, and hyper closes the connection after it;
    // one begun before (a long body) idles after it, and then closes as
    // idle connections do. (Told to shut down from here, the connection
    // could be idle by the time its task hears it, its client's next
    // request on the way.)
    let (at, timer) = deadline(state, &limits, draining)?;
    if at > now {
        return Some(at);
    }
    match timer {
        Timer::Head if h2 => {
            // An HTTP/2 connection that opened no stream in time.
            stats.header_timeouts.fetch_add(1, Ordering::Relaxed);
            conn.set_shut();
            conn.command(SHUT_DOWN);
            return Some(after(now, limits.drain_head_grace));
        }
        // The connection's task judges again on the state it finds, and
        // closes: unless the head's bytes wait in its socket, or a request
        // waits in it (it owns the socket, so it looks).
        Timer::Head => conn.command(CLOSE_SLOW_HEAD),
        Timer::Idle => conn.command(CLOSE_IF_IDLE),
    }
    None
}
