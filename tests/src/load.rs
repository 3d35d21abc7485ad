//! A small HTTP/1.1 load generator for the shutdown suites: worker threads
//! send requests at a steady rate to a server on 127.0.0.1 and record, for
//! each request, when its connection was established and how it ended, so
//! that a test can judge every request against the instant it signalled
//! the server.
//!
//! Half the workers open a connection per request (`Connection: close`), the
//! other half keep one alive (or all of them: [`Config::all_keep_alive`]).
//! A request on a *reused* keep-alive connection that the server closes
//! before any byte of the answer is the race every HTTP/1.1 client has with
//! an idle-connection close; like real clients (RFC 9112 §9.3.1) the worker
//! retries it once on a new connection and the retry is recorded as a
//! request of its own — unless [`Config::retry`] is off, as in most load
//! generators: then it is a failure.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the load looks like.
#[derive(Clone, Debug)]
pub struct Config {
    /// `host:port` on 127.0.0.1.
    pub addr: String,
    /// Worker threads; even-numbered ones keep connections alive.
    pub workers: usize,
    /// Pause between two requests of one worker.
    pub interval: Duration,
    /// The paths the workers cycle through; `{ms}` in one is replaced by a
    /// pseudo-random number from 20 to 199 each time, so that slow requests
    /// of the workers do not fall into step.
    pub paths: Vec<String>,
    /// No worker runs longer than this, whatever happens.
    pub limit: Duration,
    /// Seeds the `{ms}` numbers: another seed, another pattern.
    pub seed: u64,
    /// Every worker keeps its connection alive (not only the even ones).
    pub all_keep_alive: bool,
    /// Retry a request that a reused connection closed before any byte of
    /// the answer (as browsers do); off, it counts as failed.
    pub retry: bool,
}

impl Config {
    /// The mixed load of the shutdown suites: half the workers keep
    /// connections alive, retries on.
    pub fn mixed(addr: String, workers: usize, interval: Duration, paths: Vec<String>) -> Config {
        Config {
            addr,
            workers,
            interval,
            paths,
            limit: Duration::from_secs(60),
            seed: 1,
            all_keep_alive: false,
            retry: true,
        }
    }
}

/// How one request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A complete `200` answer.
    Ok,
    /// The connection could not be established (the listener is closed).
    Refused,
    /// The connection ended before any byte of the answer.
    ClosedBeforeAnswer,
    /// Anything else: a partial answer, another status, a timeout.
    Failed(String),
}

/// One request.
#[derive(Clone, Debug)]
pub struct Record {
    /// When its connection was established (`None` if it was not).
    pub connected: Option<Instant>,
    /// Whether it went out on a connection that had already served one.
    pub reused: bool,
    /// Whether the worker retried it (on a new connection).
    pub retried: bool,
    /// When it was sent and when its answer (or failure) came.
    pub span: (Instant, Instant),
    /// How it ended.
    pub outcome: Outcome,
}

/// Every request of a run, judged against the instant of the signal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Answered `200`.
    pub ok: usize,
    /// On a connection established before the signal, and not answered:
    /// must be 0.
    pub failed: usize,
    /// Reused keep-alive connections closed before any byte of the answer
    /// (retried on a new connection, which is counted on its own).
    pub retried: usize,
    /// Refused (or reset before an answer) on connections made after the
    /// signal: the listener had closed; expected.
    pub refused_after: usize,
    /// Answered, and in flight when the signal came (sent before it,
    /// answered after it).
    pub in_flight: usize,
    /// The first few failures, for the assertion message.
    pub failures: Vec<String>,
}

impl Tally {
    /// Judges `records` against `signalled`.
    pub fn of(records: &[Record], signalled: Instant) -> Tally {
        let mut tally = Tally::default();
        for record in records {
            let before = record.connected.is_some_and(|at| at < signalled);
            match (&record.outcome, before) {
                (Outcome::Ok, _) => {
                    tally.ok += 1;
                    if record.span.0 < signalled && signalled < record.span.1 {
                        tally.in_flight += 1;
                    }
                }
                (Outcome::ClosedBeforeAnswer, true) if record.retried => tally.retried += 1,
                (Outcome::Refused | Outcome::ClosedBeforeAnswer, false) => tally.refused_after += 1,
                (outcome, _) => {
                    tally.failed += 1;
                    if tally.failures.len() < 5 {
                        let when = record.connected.map(|at| {
                            if at < signalled {
                                format!("{:?} before", signalled - at)
                            } else {
                                format!("{:?} after", at - signalled)
                            }
                        });
                        tally.failures.push(format!(
                            "{outcome:?} (connected {when:?} the signal, reused: {})",
                            record.reused
                        ));
                    }
                }
            }
        }
        tally
    }
}

/// Running load; [`Load::finish`] stops it and returns every request.
pub struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<(Mutex<usize>, Condvar)>,
    /// Workers still running (changed under `answered`'s lock).
    running: Arc<AtomicUsize>,
    workers: Vec<JoinHandle<Vec<Record>>>,
}

impl Load {
    /// Starts the workers.
    pub fn start(config: &Config) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new((Mutex::new(0), Condvar::new()));
        let running = Arc::new(AtomicUsize::new(config.workers));
        let workers = (0..config.workers)
            .map(|index| {
                let worker = Worker {
                    config: config.clone(),
                    keep_alive: config.all_keep_alive || index % 2 == 0,
                    index,
                    stop: stop.clone(),
                    answered: answered.clone(),
                    running: running.clone(),
                    records: Vec::new(),
                    connection: None,
                };
                std::thread::spawn(move || worker.run())
            })
            .collect();
        Load {
            stop,
            answered,
            running,
            workers,
        }
    }

    /// Waits until `count` requests have been answered, or every worker
    /// has ended (at [`Config::limit`], the load's own bound); whether
    /// `count` was reached. No clock of the caller's: a loaded machine
    /// only makes it wait longer.
    pub fn answered(&self, count: usize) -> bool {
        let (lock, changed) = &*self.answered;
        let guard = lock.lock().unwrap();
        let guard = changed
            .wait_while(guard, |answered| {
                *answered < count && self.running.load(Ordering::Acquire) > 0
            })
            .unwrap();
        *guard >= count
    }

    /// Waits until `count` requests have been answered; false if that did
    /// not happen within `limit`.
    pub fn wait_answered(&self, count: usize, limit: Duration) -> bool {
        let (lock, changed) = &*self.answered;
        let guard = lock.lock().unwrap();
        let (guard, _) = changed
            .wait_timeout_while(guard, limit, |answered| *answered < count)
            .unwrap();
        *guard >= count
    }

    /// Stops the workers and returns every request they made.
    pub fn finish(self) -> Vec<Record> {
        self.stop.store(true, Ordering::Relaxed);
        self.workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("a load worker panicked"))
            .collect()
    }
}

struct Worker {
    config: Config,
    keep_alive: bool,
    index: usize,
    stop: Arc<AtomicBool>,
    answered: Arc<(Mutex<usize>, Condvar)>,
    running: Arc<AtomicUsize>,
    records: Vec<Record>,
    connection: Option<(BufReader<TcpStream>, Instant)>,
}

impl Worker {
    fn run(mut self) -> Vec<Record> {
        let began = Instant::now();
        let mut next = began;
        let mut turn = self.index;
        let mut seed =
            (self.config.seed | 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (self.index as u64 + 1);
        while !self.stop.load(Ordering::Relaxed) && began.elapsed() < self.config.limit {
            // xorshift: cheap, deterministic per worker, different per worker.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let path = self.config.paths[turn % self.config.paths.len()]
                .replace("{ms}", &(20 + seed % 180).to_string());
            turn += 1;
            let mut record = self.request(&path);
            let retry =
                self.config.retry && record.reused && record.outcome == Outcome::ClosedBeforeAnswer;
            record.retried = retry;
            let refused = record.outcome == Outcome::Refused;
            self.note(record);
            if retry {
                let record = self.request(&path);
                self.note(record);
            }
            if refused && self.config.interval.is_zero() {
                // The listener is closed: no busy loop of refused connects.
                std::thread::sleep(Duration::from_millis(1));
            }
            // Pacing for a steady rate, not synchronisation.
            next += self.config.interval;
            if let Some(pause) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(pause);
            } else {
                next = Instant::now();
            }
        }
        // Under the lock, so that a waiter cannot miss it.
        let (lock, changed) = &*self.answered;
        let guard = lock.lock().unwrap();
        self.running.fetch_sub(1, Ordering::Release);
        changed.notify_all();
        drop(guard);
        self.records
    }

    fn note(&mut self, record: Record) {
        if record.outcome == Outcome::Ok {
            let (lock, changed) = &*self.answered;
            *lock.lock().unwrap() += 1;
            changed.notify_all();
        }
        self.records.push(record);
    }

    fn request(&mut self, path: &str) -> Record {
        let sent = Instant::now();
        let (mut reader, connected, reused) = match self.connection.take() {
            Some((reader, connected)) => (reader, connected, true),
            None => match TcpStream::connect(&self.config.addr) {
                Ok(stream) => {
                    let connected = Instant::now();
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
                    let _ = stream.set_nodelay(true);
                    (BufReader::new(stream), connected, false)
                }
                Err(_) => {
                    return Record {
                        connected: None,
                        reused: false,
                        retried: false,
                        span: (sent, Instant::now()),
                        outcome: Outcome::Refused,
                    };
                }
            },
        };
        let close = if self.keep_alive {
            ""
        } else {
            "Connection: close\r\n"
        };
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{close}\r\n");
        let outcome = match reader.get_mut().write_all(request.as_bytes()) {
            Err(_) => Outcome::ClosedBeforeAnswer,
            Ok(()) => match read_answer(&mut reader) {
                Ok(keep) => {
                    if self.keep_alive && keep {
                        self.connection = Some((reader, connected));
                    }
                    Outcome::Ok
                }
                Err(outcome) => outcome,
            },
        };
        Record {
            connected: Some(connected),
            reused,
            retried: false,
            span: (sent, Instant::now()),
            outcome,
        }
    }
}

/// Reads one answer; `Ok(keep_alive)` for a complete `200`.
fn read_answer(reader: &mut BufReader<TcpStream>) -> Result<bool, Outcome> {
    let mut status = String::new();
    match reader.read_line(&mut status) {
        Ok(0) => return Err(Outcome::ClosedBeforeAnswer),
        Err(err) if is_closed(&err) => return Err(Outcome::ClosedBeforeAnswer),
        Err(err) => return Err(Outcome::Failed(format!("reading the status: {err}"))),
        Ok(_) => {}
    }
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    let mut length = 0;
    let mut keep = true;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => return Err(Outcome::Failed("closed in the headers".into())),
            Err(err) => return Err(Outcome::Failed(format!("reading headers: {err}"))),
            Ok(_) => {}
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close")
            {
                keep = false;
            }
        }
    }
    let mut body = vec![0; length];
    reader
        .read_exact(&mut body)
        .map_err(|err| Outcome::Failed(format!("reading the body: {err}")))?;
    if code == "200" {
        Ok(keep)
    } else {
        Err(Outcome::Failed(format!("status {}", status.trim_end())))
    }
}

fn is_closed(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}
