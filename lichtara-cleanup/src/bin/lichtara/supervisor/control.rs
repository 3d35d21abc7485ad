//! The supervisor's control socket, `.lichtara/<name>.sock`: the CLI's
//! `status` and `stop` arrive here, each connection on a thread of its own
//! so that a slow stop never blocks a `status`. Only the supervisor's own
//! user and root are answered (the peer's credentials, from the kernel).
//! A stop is carried out by the supervisor's main thread, woken through an
//! eventfd; every client that asked for it gets the same answer once
//! nothing of the service is left.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rustix::event::{EventfdFlags, eventfd};

use super::log::RotatingLog;
use crate::Failure;
use crate::protocol::{ReloadReply, Reply, Request, StatusReply, StopReply, socket_name};
use crate::state::StateDir;

/// Where the service is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Starting,
    Running,
    Reloading,
    /// Its main process ended by itself and the restart policy starts it
    /// again: the rest of the ended one is ended, the backoff waited, the
    /// next one made ready.
    Restarting,
    Stopping,
}

impl Phase {
    fn word(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Reloading => "reloading",
            Phase::Restarting => "restarting",
            Phase::Stopping => "stopping",
        }
    }
}

/// At most this many connections are served at once; more are told so
/// and closed.
const MAX_CLIENTS: usize = 128;

/// How long a client may take to send its request (ours sends it at
/// once), or to take the reply.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The socket and what its clients may see and ask.
pub(crate) struct Control {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Mutex<Shared>,
    changed: Condvar,
    /// Readable once a stop has been asked for.
    wake: OwnedFd,
    log: Arc<Mutex<RotatingLog>>,
    containment: String,
    clients: AtomicUsize,
}

struct Shared {
    phase: Phase,
    pid: i32,
    /// The stop asked for, with its timeout.
    stop: Option<Duration>,
    /// The answer to every stop, once the service has ended.
    outcome: Option<StopReply>,
    /// Clients given the outcome that have not yet sent it.
    replying: usize,
    /// Reloads and restarts asked for, not yet taken by the main loop,
    /// each with where its answer goes.
    asks: Vec<(Ask, std::sync::mpsc::Sender<Result<ReloadReply, String>>)>,
    /// The generation serving, the listeners, the readiness.
    generation: u32,
    listeners: Vec<String>,
    ready: String,
    timeouts: (Duration, Duration),
    /// `restart`: `no`, `on-failure` or `always`.
    restart: &'static str,
    /// Restarts made by the policy, and how the last ended generation
    /// ended.
    restarts: u32,
    last_exit: Option<String>,
}

/// A change of generation asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ask {
    /// With the command the new generation runs, if it changes.
    Reload(Option<Vec<String>>),
    Restart(Duration, Option<Vec<String>>),
}

/// Where the answer to an [`Ask`] goes.
pub(crate) type Answer = std::sync::mpsc::Sender<Result<ReloadReply, String>>;

impl Control {
    /// Binds the socket (a stale one of an earlier supervisor, which
    /// cannot be alive while this one holds the name's lock, is replaced)
    /// and starts answering on a thread of its own.
    pub(crate) fn listen(
        state: &StateDir,
        name: &str,
        log: Arc<Mutex<RotatingLog>>,
        containment: String,
    ) -> Result<Self, Failure> {
        let socket = socket_name(name);
        let shown = state.file(&socket).path().display().to_string();
        if state.is_socket(&socket) {
            let _ = state.file(&socket).unlink();
        }
        let listener = UnixListener::bind(state.fd_path(&socket))
            .map_err(|err| Failure::new(format!("cannot listen on {shown}: {err}")))?;
        let wake = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|err| Failure::new(format!("cannot make an eventfd: {err}")))?;
        let inner = Arc::new(Inner {
            shared: Mutex::new(Shared {
                phase: Phase::Starting,
                pid: 0,
                stop: None,
                outcome: None,
                replying: 0,
                asks: Vec::new(),
                generation: 1,
                listeners: Vec::new(),
                ready: String::new(),
                timeouts: (Duration::ZERO, Duration::ZERO),
                restart: "no",
                restarts: 0,
                last_exit: None,
            }),
            changed: Condvar::new(),
            wake,
            log,
            containment,
            clients: AtomicUsize::new(0),
        });
        let accepting = inner.clone();
        std::thread::Builder::new()
            .name("control".into())
            .spawn(move || accept(&listener, &accepting))
            .map_err(|err| Failure::new(format!("cannot start the control thread: {err}")))?;
        Ok(Self { inner })
    }

    /// Readable when a stop has been asked for.
    pub(crate) fn wake_fd(&self) -> BorrowedFd<'_> {
        self.inner.wake.as_fd()
    }

    /// The stop asked for, if any.
    pub(crate) fn stop_asked(&self) -> Option<Duration> {
        let mut buffer = [0u8; 8];
        let _ = rustix::io::read(&self.inner.wake, &mut buffer);
        self.lock().stop
    }

    pub(crate) fn set(&self, phase: Phase, pid: i32) {
        let mut shared = self.lock();
        shared.phase = phase;
        shared.pid = pid;
    }

    /// What `status` shows of the generations and listeners.
    pub(crate) fn describe(&self, generation: u32, listeners: Vec<String>, ready: String) {
        let mut shared = self.lock();
        shared.generation = generation;
        shared.listeners = listeners;
        shared.ready = ready;
    }

    /// The ready and stop timeouts, for a client's patience.
    pub(crate) fn timeouts(&self, ready: Duration, stop: Duration) {
        self.lock().timeouts = (ready, stop);
    }

    /// The restart policy `status` shows.
    pub(crate) fn restart_policy(&self, word: &'static str) {
        self.lock().restart = word;
    }

    /// A restart by the policy: how many so far, and how the generation
    /// before it ended.
    pub(crate) fn restarted(&self, restarts: u32, last_exit: Option<String>) {
        let mut shared = self.lock();
        shared.restarts = restarts;
        shared.last_exit = last_exit;
    }

    /// The reloads and restarts asked for since the last call.
    pub(crate) fn asked(&self) -> Vec<(Ask, Answer)> {
        std::mem::take(&mut self.lock().asks)
    }

    /// Gives `outcome` to every client that asked for a stop, and waits
    /// (a little) until they have been sent it.
    pub(crate) fn finish(&self, outcome: StopReply) {
        let mut shared = self.lock();
        shared.outcome = Some(outcome);
        self.inner.changed.notify_all();
        let (_shared, _) = self
            .inner
            .changed
            .wait_timeout_while(shared, CLIENT_TIMEOUT, |shared| shared.replying > 0)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.inner.lock()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        // A panicking client thread must not take the supervisor with it.
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn accept(listener: &UnixListener, inner: &Arc<Inner>) {
    let me = rustix::process::getuid().as_raw();
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let peer = rustix::net::sockopt::socket_peercred(&stream);
        match peer {
            Ok(peer) if peer.uid.as_raw() == me || peer.uid.is_root() => {}
            Ok(peer) => {
                let _ = send(
                    &mut stream,
                    &Reply::Error(format!(
                        "refused: uid {} is neither the supervisor's user nor root",
                        peer.uid.as_raw()
                    )),
                );
                continue;
            }
            Err(_) => continue,
        }
        if inner.clients.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
            inner.clients.fetch_sub(1, Ordering::SeqCst);
            let _ = send(&mut stream, &Reply::Error("busy: too many clients".into()));
            continue;
        }
        let serving = inner.clone();
        let spawned = std::thread::Builder::new()
            .name("client".into())
            .spawn(move || {
                serve(stream, &serving);
                serving.clients.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            inner.clients.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn serve(mut stream: UnixStream, inner: &Inner) {
    let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
    let mut line = String::new();
    let read = stream
        .try_clone()
        .map(|reader| BufReader::new(reader.take(4096)).read_line(&mut line));
    if !matches!(read, Ok(Ok(n)) if n > 0) {
        return;
    }
    let request: Request = match serde_json::from_str(&line) {
        Ok(request) => request,
        Err(err) => {
            let _ = send(&mut stream, &Reply::Error(format!("bad request: {err}")));
            return;
        }
    };
    match request {
        Request::Status => {
            let (phase, pid, shared_status, restarts) = {
                let shared = inner.lock();
                (
                    shared.phase,
                    shared.pid,
                    (
                        shared.generation,
                        shared.listeners.clone(),
                        shared.ready.clone(),
                        shared.timeouts,
                    ),
                    (
                        shared.restart.to_owned(),
                        shared.restarts,
                        shared.last_exit.clone(),
                    ),
                )
            };
            let (logged_bytes, log_rotations, log_error) = {
                let log = super::lock_log(&inner.log);
                (log.written, log.rotations, log.error.clone())
            };
            let reply = StatusReply {
                supervisor: std::process::id() as i32,
                pid,
                phase: phase.word().to_owned(),
                containment: inner.containment.clone(),
                logged_bytes,
                log_rotations,
                log_error,
                generation: shared_status.0,
                listeners: shared_status.1,
                ready: shared_status.2,
                ready_timeout_ms: shared_status.3.0.as_millis() as u64,
                stop_timeout_ms: shared_status.3.1.as_millis() as u64,
                restart: restarts.0,
                restarts: restarts.1,
                last_exit: restarts.2,
            };
            let _ = send(&mut stream, &Reply::Status(reply));
        }
        Request::Stop { timeout_ms } => {
            let mut shared = inner.lock();
            if shared.stop.is_none() && shared.outcome.is_none() {
                shared.stop = Some(Duration::from_millis(timeout_ms).min(crate::cli::MAX_DURATION));
                let _ = rustix::io::write(&inner.wake, &1u64.to_ne_bytes());
            }
            shared.replying += 1;
            let mut shared = inner
                .changed
                .wait_while(shared, |shared| shared.outcome.is_none())
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let outcome = shared.outcome.clone();
            drop(shared);
            if let Some(outcome) = outcome {
                let _ = send(&mut stream, &Reply::Stopped(outcome));
            }
            shared = inner.lock();
            shared.replying -= 1;
            inner.changed.notify_all();
        }
        Request::Reload { command } => ask(stream, inner, Ask::Reload(command)),
        Request::Restart {
            timeout_ms,
            command,
        } => ask(
            stream,
            inner,
            Ask::Restart(
                Duration::from_millis(timeout_ms).min(crate::cli::MAX_DURATION),
                command,
            ),
        ),
    }
}

/// Hands a reload or restart to the main loop and sends its answer.
fn ask(mut stream: UnixStream, inner: &Inner, ask: Ask) {
    let (answer, answered) = std::sync::mpsc::channel();
    {
        let mut shared = inner.lock();
        let refused = if shared.stop.is_some() || shared.outcome.is_some() {
            Some("the service is stopping")
        } else if shared.phase == Phase::Reloading || !shared.asks.is_empty() {
            Some("refused: a reload or restart is already under way")
        } else if shared.phase == Phase::Starting {
            Some("refused: it is still starting")
        } else {
            None
        };
        if let Some(why) = refused {
            drop(shared);
            let _ = send(&mut stream, &Reply::Error(why.into()));
            return;
        }
        shared.asks.push((ask, answer));
    }
    let _ = rustix::io::write(&inner.wake, &1u64.to_ne_bytes());
    // The main loop answers every ask, or drops it as it exits.
    let reply = match answered.recv() {
        Ok(Ok(reloaded)) => Reply::Reloaded(reloaded),
        Ok(Err(why)) => Reply::Error(why),
        Err(_) => Reply::Error("the supervisor ended before it could answer".into()),
    };
    let _ = send(&mut stream, &reply);
}

fn send(stream: &mut UnixStream, reply: &Reply) -> std::io::Result<()> {
    let mut text = serde_json::to_string(reply).map_err(std::io::Error::other)?;
    text.push('\n');
    stream.write_all(text.as_bytes())
}
