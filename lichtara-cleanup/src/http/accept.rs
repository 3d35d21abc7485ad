//! Accepting without spinning: an accept that fails for want of file
//! descriptors or memory is retried after a growing pause, and said once
//! per episode; one that concerns a single connection is retried at once.

use std::io;
use std::time::Duration;

use tokio::time::Instant;

/// The first pause after an accept failed for want of resources.
const FIRST_PAUSE: Duration = Duration::from_millis(5);
/// The longest pause: a freed descriptor is used within this.
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// What an accept error means for the accept loop.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// It concerns one connection only (aborted before its accept, refused
    /// by a firewall rule…): accept the next one at once.
    OneConnection,
    /// The process or the system is out of something (file descriptors,
    /// buffers, memory), or the error is unknown: accepting again at once
    /// would fail again.
    Resources,
}

/// Sorts an accept error (accept(2), "Error handling": the network errors
/// are those of the pending connection).
pub(super) fn classify(err: &io::Error) -> Failure {
    use io::ErrorKind::*;
    if matches!(
        err.kind(),
        ConnectionAborted
            | ConnectionReset
            | ConnectionRefused
            | Interrupted
            | WouldBlock
            | TimedOut
            | PermissionDenied
            | HostUnreachable
            | NetworkUnreachable
            | NetworkDown
    ) {
        return Failure::OneConnection;
    }
    #[cfg(unix)]
    {
        use nix::errno::Errno;
        let per_connection = [
            Errno::EPROTO,
            Errno::ENOPROTOOPT,
            Errno::EOPNOTSUPP,
            Errno::EHOSTDOWN,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Errno::ENONET,
        ];
        if let Some(code) = err.raw_os_error() {
            if per_connection.contains(&Errno::from_raw(code)) {
                return Failure::OneConnection;
            }
        }
    }
    Failure::Resources
}

/// How long accepts must work before an episode of failures is over: a
/// process that hovers at its descriptor limit, failing and succeeding in
/// turn, is one episode, not a warning per flap.
const QUIET: Duration = Duration::from_secs(1);

/// The state of an accept loop between two accepts.
#[derive(Debug, Default)]
pub(super) struct Backoff {
    /// The current episode of failures for want of resources.
    episode: Option<Episode>,
}

#[derive(Debug)]
struct Episode {
    began: Instant,
    failed: u64,
    pause: Duration,
    /// Since when accepts work again (`None`: they are failing).
    recovered: Option<Instant>,
    /// Whether the recovery was said (once per episode).
    said: bool,
}

impl Backoff {
    /// How long to wait before the next accept (`None`: at once).
    pub(super) fn pause(&self) -> Option<Duration> {
        self.episode
            .as_ref()
            .filter(|episode| episode.recovered.is_none())
            .map(|episode| episode.pause)
    }

    /// Notes a failed accept; returns how long to wait before the next one
    /// (`None`: at once).
    pub(super) fn failed(&mut self, err: &io::Error) -> Option<Duration> {
        if classify(err) == Failure::OneConnection {
            tracing::debug!(error = %err, "accept failed for one connection");
            return self.pause();
        }
        match &mut self.episode {
            Some(episode) if episode.recovered.is_none_or(|at| at.elapsed() < QUIET) => {
                episode.failed += 1;
                episode.pause = match episode.recovered.take() {
                    Some(_) => FIRST_PAUSE,
                    None => (episode.pause * 2).min(LONGEST_PAUSE),
                };
            }
            _ => {
                tracing::warn!(
                    error = %err,
                    "accept failing: out of file descriptors or memory; new connections wait in the backlog, retrying with a growing pause (up to {} ms)",
                    LONGEST_PAUSE.as_millis()
                );
                self.episode = Some(Episode {
                    began: Instant::now(),
                    failed: 1,
                    pause: FIRST_PAUSE,
                    recovered: None,
                    said: false,
                });
            }
        }
        self.pause()
    }

    /// Notes an accept that worked: the episode going on, if any, is over
    /// once accepts have worked for a while; the first success says so.
    pub(super) fn accepted(&mut self) {
        let Some(episode) = &mut self.episode else {
            return;
        };
        if let Some(at) = episode.recovered {
            if at.elapsed() >= QUIET {
                self.episode = None;
            }
            return;
        }
        episode.recovered = Some(Instant::now());
        if !episode.said {
            // Said once per episode: a flap within it is counted, not said.
            episode.said = true;
            tracing::info!(
                failed_accepts = episode.failed,
                lasted_ms = episode.began.elapsed().as_millis() as u64,
                "accepting again after {} failed accept{}",
                episode.failed,
                if episode.failed == 1 { "" } else { "s" }
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[cfg(unix)]
    #[test]
    fn descriptor_and_memory_exhaustion_back_off_and_one_connections_errors_do_not() {
        use nix::errno::Errno;
        for errno in [Errno::EMFILE, Errno::ENFILE, Errno::ENOBUFS, Errno::ENOMEM] {
            assert_eq!(classify(&os(errno as i32)), Failure::Resources, "{errno}");
        }
        for errno in [
            Errno::ECONNABORTED,
            Errno::EPROTO,
            Errno::EPERM,
            Errno::EINTR,
            Errno::ETIMEDOUT,
        ] {
            assert_eq!(
                classify(&os(errno as i32)),
                Failure::OneConnection,
                "{errno}"
            );
        }
    }

    #[cfg(unix)]
    #[tokio::test(start_paused = true)]
    async fn the_pause_grows_to_its_cap_and_quiet_accepts_end_the_episode() {
        let emfile = os(nix::errno::Errno::EMFILE as i32);
        let aborted = os(nix::errno::Errno::ECONNABORTED as i32);
        let mut backoff = Backoff::default();
        assert_eq!(backoff.failed(&aborted), None, "one connection: at once");
        let mut pauses = Vec::new();
        for _ in 0..12 {
            pauses.push(backoff.failed(&emfile).unwrap());
        }
        assert_eq!(pauses[0], FIRST_PAUSE);
        assert!(
            pauses.windows(2).all(|pair| pair[0] <= pair[1]),
            "{pauses:?}"
        );
        assert_eq!(*pauses.last().unwrap(), LONGEST_PAUSE);
        assert_eq!(
            backoff.failed(&aborted),
            Some(LONGEST_PAUSE),
            "a connection's own error does not end the episode"
        );
        backoff.accepted();
        assert_eq!(backoff.pause(), None, "accepting again: at once");
        // A flap soon after: the same episode, from the first pause.
        assert_eq!(backoff.failed(&emfile), Some(FIRST_PAUSE));
        let episode = backoff.episode.as_ref().unwrap();
        assert_eq!((episode.failed, episode.said), (13, true));
        backoff.accepted();
        tokio::time::advance(QUIET).await;
        backoff.accepted();
        assert!(backoff.episode.is_none(), "over after a quiet second");
        assert_eq!(backoff.failed(&emfile), Some(FIRST_PAUSE), "a new episode");
        assert_eq!(backoff.episode.as_ref().unwrap().failed, 1);
    }
}
