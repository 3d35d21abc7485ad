//! Listening sockets handed over by socket activation (feature `listen`,
//! which `http` turns on; Unix).
//!
//! A supervisor that holds a service's sockets — systemd with a `.socket`
//! unit, or `lichtara start` with declared `listen` addresses — passes them
//! by systemd's protocol: descriptors from 3 on, `LISTEN_FDS` (how many),
//! `LISTEN_PID` (the process they are meant for) and `LISTEN_FDNAMES`
//! (their names, `:`-separated). Because the supervisor keeps them open,
//! the port stays bound while the service restarts or is replaced: clients
//! wait in the backlog instead of being refused.
//!
//! Before `main` runs, this module takes them: only when `LISTEN_PID` is
//! this process, each made close-on-exec, and the three variables removed
//! from the environment, so that a child does not believe they are its
//! own. Then [`tcp`] (and [`http::Server::bind`](crate::http::Server::bind))
//! uses an inherited listener bound to the address asked for, else binds
//! one; [`take_tcp`] and [`take_unix`] take one by name.
//!
//! Closing an inherited listener (dropping it) closes only this process's
//! descriptor: the socket stays open in the supervisor and in the next
//! generation of the service, which goes on accepting. Never call
//! `shutdown(2)` on one: that ends the socket for every process holding
//! it (`lichtara` then binds it anew for the next generation).
//!
//! The descriptors are taken for this module: another socket-activation
//! library in the same program finds the variables gone; ask
//! [`take_fd`] for what it would have taken.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! // The inherited listener for this address if there is one, else a new one.
//! let listener = lichtara::listen::tcp("127.0.0.1:8000").await?;
//! # let _ = listener; Ok(()) }
//! ```

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::sync::Mutex;

use nix::sys::socket::{self, AddressFamily, SockaddrLike, SockaddrStorage, sockopt};

/// The first descriptor of the protocol.
const FIRST_FD: i32 = 3;

/// No supervisor passes more; a larger count is an error in the variable.
const MOST_FDS: usize = 4096;

/// The protocol's variables.
const VARS: [&str; 3] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];

/// One inherited listener.
#[derive(Debug)]
struct Slot {
    name: String,
    address: Address,
    /// `None` once taken.
    fd: Option<OwnedFd>,
}

/// Where an inherited listener is bound.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    Tcp(SocketAddr),
    Unix(String),
    /// Not a listening stream socket (a datagram socket, a FIFO…): left
    /// for [`take_fd`].
    Other(String),
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Unix(path) => write!(f, "unix:{path}"),
            Self::Other(what) => f.write_str(what),
        }
    }
}

/// What this process inherited, taken before `main`.
struct Taken {
    slots: Vec<Slot>,
    /// Why the variables were set but nothing was taken.
    problem: Option<String>,
}

static TAKEN: Mutex<Option<Taken>> = Mutex::new(None);

/// Before `main`, while the process has one thread: the descriptors are
/// claimed and the variables removed (removing a variable is only sound
/// while no other thread reads the environment).
#[ctor::ctor(unsafe)]
fn take_at_load() {
    let taken = take_from_environment();
    *TAKEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(taken);
}

fn take_from_environment() -> Taken {
    let read = |name| std::env::var(name).ok();
    let (pid, fds, names) = (read(VARS[0]), read(VARS[1]), read(VARS[2]));
    if pid.is_none() && fds.is_none() {
        return Taken {
            slots: Vec::new(),
            problem: None,
        };
    }
    for var in VARS {
        // SAFETY: this runs in a constructor, before `main`, while the
        // process has a single thread: nothing reads the environment
        // concurrently.
        unsafe { std::env::remove_var(var) };
    }
    let me = std::process::id();
    let problem = |text: String| Taken {
        slots: Vec::new(),
        problem: Some(text),
    };
    match pid.as_deref().map(str::trim).map(str::parse::<u32>) {
        Some(Ok(pid)) if pid == me => {}
        Some(Ok(pid)) => {
            return problem(format!(
                "LISTEN_PID is {pid}, not this process ({me}): the inherited sockets were meant for another process, none was taken"
            ));
        }
        _ => {
            return problem(format!(
                "LISTEN_PID {pid:?} is not a process id: no inherited socket was taken"
            ));
        }
    }
    let count = match fds.as_deref().map(str::trim).map(str::parse::<usize>) {
        Some(Ok(count)) if count <= MOST_FDS => count,
        _ => {
            return problem(format!(
                "LISTEN_FDS {fds:?} is not a count of descriptors: no inherited socket was taken"
            ));
        }
    };
    // systemd's rule: names that do not match the count are all "unknown".
    let names: Vec<String> = match names {
        Some(names) if names.split(':').count() == count => {
            names.split(':').map(str::to_owned).collect()
        }
        _ => vec!["unknown".to_owned(); count],
    };
    let mut slots = Vec::with_capacity(count);
    for (index, name) in names.into_iter().enumerate() {
        let raw = FIRST_FD + index as i32;
        // A descriptor the protocol names but that is not open is skipped.
        // SAFETY (below): fcntl on a number that may not be open is safe.
        let open = nix::fcntl::fcntl(
            unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) },
            nix::fcntl::FcntlArg::F_GETFD,
        );
        if open.is_err() {
            continue;
        }
        // SAFETY: the protocol hands descriptors 3..3+LISTEN_FDS to this
        // process (LISTEN_PID says so), and nothing in it has used them
        // yet: this runs before `main`.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let _ = nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
        let address = describe(&fd);
        slots.push(Slot {
            name,
            address,
            fd: Some(fd),
        });
    }
    Taken {
        slots,
        problem: None,
    }
}

/// What kind of socket `fd` is, and where it listens.
fn describe(fd: &OwnedFd) -> Address {
    let listening = socket::getsockopt(fd, sockopt::AcceptConn).unwrap_or(false);
    let stream = socket::getsockopt(fd, sockopt::SockType)
        .is_ok_and(|kind| kind == socket::SockType::Stream);
    let Ok(local) = socket::getsockname::<SockaddrStorage>(std::os::fd::AsRawFd::as_raw_fd(fd))
    else {
        return Address::Other("not a socket".into());
    };
    if !listening || !stream {
        return Address::Other(format!("a socket that is not a listening stream ({local})"));
    }
    // The standard library reads the address, from a duplicate of `fd`.
    let local_of = |fd: &OwnedFd| fd.try_clone().ok();
    match local.family() {
        Some(AddressFamily::Inet | AddressFamily::Inet6) => local_of(fd)
            .and_then(|dup| std::net::TcpListener::from(dup).local_addr().ok())
            .map_or_else(|| Address::Other(local.to_string()), Address::Tcp),
        Some(AddressFamily::Unix) => {
            let path = local_of(fd)
                .and_then(|dup| UnixListener::from(dup).local_addr().ok())
                .map_or_else(String::new, |addr| match addr.as_pathname() {
                    Some(path) => path.display().to_string(),
                    None => local.to_string(),
                });
            Address::Unix(path)
        }
        _ => Address::Other(local.to_string()),
    }
}

fn with_taken<T>(f: impl FnOnce(&mut Taken) -> T) -> T {
    let mut guard = TAKEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let taken = guard.get_or_insert_with(|| Taken {
        slots: Vec::new(),
        problem: None,
    });
    f(taken)
}

/// One listener this process inherited, as [`inherited`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Inherited {
    /// Its name in `LISTEN_FDNAMES` (`unknown` when none was given).
    pub name: String,
    /// Where it is bound: `127.0.0.1:8000`, `unix:/run/app.sock`, or what
    /// else it is.
    pub address: String,
    /// Whether it has been taken already.
    pub taken: bool,
}

/// The listeners this process inherited, in the order they were passed.
///
/// ```
/// // A program started without socket activation inherited none.
/// assert!(lichtara::listen::inherited().is_empty());
/// ```
pub fn inherited() -> Vec<Inherited> {
    with_taken(|taken| {
        taken
            .slots
            .iter()
            .map(|slot| Inherited {
                name: slot.name.clone(),
                address: slot.address.to_string(),
                taken: slot.fd.is_none(),
            })
            .collect()
    })
}

/// Why `LISTEN_FDS` was set but no socket was taken (`LISTEN_PID` names
/// another process, say), if so; logged by [`http::Server`](crate::http::Server)
/// too.
///
/// ```
/// assert_eq!(lichtara::listen::problem(), None);
/// ```
pub fn problem() -> Option<String> {
    with_taken(|taken| taken.problem.clone())
}

/// Takes the inherited TCP listener bound to exactly `addr`, if there is
/// one not yet taken. It is nonblocking, ready for tokio.
///
/// ```
/// let addr = "127.0.0.1:8000".parse().unwrap();
/// assert!(lichtara::listen::take_tcp_at(addr).is_none());
/// ```
pub fn take_tcp_at(addr: SocketAddr) -> Option<std::net::TcpListener> {
    let fd = with_taken(|taken| {
        taken
            .slots
            .iter_mut()
            .find(|slot| slot.fd.is_some() && slot.address == Address::Tcp(addr))
            .and_then(|slot| slot.fd.take())
    })?;
    let listener = std::net::TcpListener::from(fd);
    listener.set_nonblocking(true).ok()?;
    Some(listener)
}

/// Takes the inherited listener named `name` (in `LISTEN_FDNAMES`) as a
/// TCP listener, nonblocking.
///
/// # Errors
///
/// When the listener of that name is not a listening TCP socket (it is
/// then left in place).
///
/// ```
/// assert!(lichtara::listen::take_tcp("http").unwrap().is_none());
/// ```
pub fn take_tcp(name: &str) -> io::Result<Option<std::net::TcpListener>> {
    let Some(fd) = take_named(name, |address| matches!(address, Address::Tcp(_)))? else {
        return Ok(None);
    };
    let listener = std::net::TcpListener::from(fd);
    listener.set_nonblocking(true)?;
    Ok(Some(listener))
}

/// Takes the inherited listener named `name` as a Unix-domain listener,
/// nonblocking.
///
/// # Errors
///
/// When the listener of that name is not a listening Unix stream socket.
///
/// ```
/// assert!(lichtara::listen::take_unix("admin").unwrap().is_none());
/// ```
pub fn take_unix(name: &str) -> io::Result<Option<UnixListener>> {
    let Some(fd) = take_named(name, |address| matches!(address, Address::Unix(_)))? else {
        return Ok(None);
    };
    let listener = UnixListener::from(fd);
    listener.set_nonblocking(true)?;
    Ok(Some(listener))
}

/// Takes the inherited descriptor named `name` whatever it is (a datagram
/// socket, a FIFO), as it was passed.
///
/// ```
/// assert!(lichtara::listen::take_fd("metrics").is_none());
/// ```
pub fn take_fd(name: &str) -> Option<OwnedFd> {
    with_taken(|taken| {
        taken
            .slots
            .iter_mut()
            .find(|slot| slot.fd.is_some() && slot.name == name)
            .and_then(|slot| slot.fd.take())
    })
}

fn take_named(name: &str, fits: impl Fn(&Address) -> bool) -> io::Result<Option<OwnedFd>> {
    with_taken(|taken| {
        let Some(slot) = taken
            .slots
            .iter_mut()
            .find(|slot| slot.fd.is_some() && slot.name == name)
        else {
            return Ok(None);
        };
        if !fits(&slot.address) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the inherited listener `{name}` is {}, not the kind asked for",
                    slot.address
                ),
            ));
        }
        Ok(slot.fd.take())
    })
}

/// A TCP listener for `addr`: the inherited one bound to that address if
/// there is one (socket activation), else a new one bound here.
///
/// # Errors
///
/// When no inherited listener fits and binding fails (the message then
/// names the inherited listeners, if any: a service started with
/// `--addr 0.0.0.0:8000` does not match a listener on `127.0.0.1:8000`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let listener = lichtara::listen::tcp("127.0.0.1:0").await?;
/// assert!(listener.local_addr()?.port() > 0);
/// # Ok(()) }
/// ```
pub async fn tcp(addr: impl tokio::net::ToSocketAddrs) -> io::Result<tokio::net::TcpListener> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr).await?.collect();
    for addr in &addrs {
        if let Some(listener) = take_tcp_at(*addr) {
            tracing::info!(%addr, "using the inherited listener (socket activation)");
            return tokio::net::TcpListener::from_std(listener);
        }
    }
    if let Some(problem) = problem() {
        tracing::warn!("{problem}");
    }
    tokio::net::TcpListener::bind(addrs.as_slice())
        .await
        .map_err(|err| {
            let held: Vec<String> = inherited()
                .into_iter()
                .filter(|listener| !listener.taken)
                .map(|listener| format!("{} ({})", listener.address, listener.name))
                .collect();
            if held.is_empty() {
                err
            } else {
                io::Error::new(
                    err.kind(),
                    format!(
                        "cannot bind {addrs:?}: {err}; inherited listeners not taken: {}",
                        held.join(", ")
                    ),
                )
            }
        })
}

/// For tests of this module: descriptors as if inherited.
#[cfg(test)]
fn adopt_for_test(name: &str, fd: OwnedFd) {
    let address = describe(&fd);
    with_taken(|taken| {
        taken.slots.push(Slot {
            name: name.to_owned(),
            address,
            fd: Some(fd),
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_inherited_listener_is_used_for_its_address_and_taken_once() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        adopt_for_test("web", OwnedFd::from(held.try_clone().unwrap()));
        let listed = inherited();
        assert!(
            listed
                .iter()
                .any(|l| l.name == "web" && l.address == addr.to_string() && !l.taken),
            "{listed:?}"
        );
        let listener = tcp(addr).await.expect("the inherited listener");
        assert_eq!(listener.local_addr().unwrap(), addr);
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert_eq!(accepted.peer_addr().unwrap(), client.local_addr().unwrap());
        assert!(inherited().iter().any(|l| l.name == "web" && l.taken));
        // Taken: a second ask binds anew, which the held socket refuses.
        let again = tcp(addr).await.unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AddrInUse, "{again}");
        drop(held);
    }

    #[test]
    fn a_listener_of_another_kind_is_refused_by_name_and_left() {
        let dir = std::env::temp_dir().join(format!("lichtara-listen-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let unix = UnixListener::bind(&dir).unwrap();
        adopt_for_test("admin", OwnedFd::from(unix));
        let err = take_tcp("admin").unwrap_err();
        assert!(err.to_string().contains("unix:"), "{err}");
        let taken = take_unix("admin").unwrap().expect("still there");
        assert_eq!(
            taken.local_addr().unwrap().as_pathname(),
            Some(dir.as_path())
        );
        let _ = std::fs::remove_file(&dir);
        let datagram = std::os::unix::net::UnixDatagram::unbound().unwrap();
        adopt_for_test("dgram", OwnedFd::from(datagram));
        assert!(take_unix("dgram").is_err());
        assert!(take_fd("dgram").is_some());
        drop(taken);
    }
}
