//! Declared listeners: the sockets a supervisor binds for its service
//! (`listen = { http = "127.0.0.1:8000" }`, `--listen http=127.0.0.1:8000`)
//! and holds for the service's whole life, so that a restart or a reload
//! never refuses a connection: what arrives meanwhile waits in the backlog.
//!
//! Binding first finds a port conflict before anything starts, and this
//! module says who holds the address (`preflight`): PID, user, command,
//! and whether it is a process of this project (an orphan `cleanup` ends,
//! or a service that is running). A holder that is not the project's is
//! never touched.
//!
//! The sockets reach the service by systemd's socket-activation protocol
//! (`handoff`): descriptors from 3 on, `LISTEN_FDS`, `LISTEN_FDNAMES`, and
//! `LISTEN_PID` written between fork and exec, when the PID is known.

use std::ffi::{CString, OsStr};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use crate::Failure;
use crate::procfs;
use crate::project::{MARKER_VAR, Project};

/// How many connections the kernel queues on a held listener while no
/// process accepts (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: i32 = 4096;

/// One declared listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Declared {
    /// Its name in `LISTEN_FDNAMES`.
    pub(crate) name: String,
    pub(crate) address: Address,
}

/// Where a declared listener listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Address {
    Tcp(SocketAddr),
    /// Relative paths are the project directory's.
    Unix(PathBuf),
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl Declared {
    /// Parses `NAME=ADDR` (the command line's form).
    pub(crate) fn parse_pair(text: &str) -> Result<Self, String> {
        let (name, address) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}`: write NAME=ADDR, like http=127.0.0.1:8000"))?;
        Self::parse(name, address)
    }

    /// Parses one listener: a name systemd accepts in `LISTEN_FDNAMES`,
    /// and `IP:PORT`, `[IPv6]:PORT` or `unix:PATH`.
    pub(crate) fn parse(name: &str, address: &str) -> Result<Self, String> {
        let valid_name = !name.is_empty()
            && name.len() <= 255
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid_name {
            return Err(format!(
                "listener name {name:?}: use letters, digits, '-', '_' or '.'"
            ));
        }
        let address = address.trim();
        let address = if let Some(path) = address.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(format!("listener `{name}`: `unix:` needs a path"));
            }
            Address::Unix(PathBuf::from(path))
        } else {
            let addr: SocketAddr = address.parse().map_err(|_| {
                format!(
                    "listener `{name}`: {address:?} is not IP:PORT (127.0.0.1:8000, [::1]:8000) or unix:PATH"
                )
            })?;
            if addr.port() == 0 {
                return Err(format!(
                    "listener `{name}`: port 0 would be another port at each start; give the port"
                ));
            }
            Address::Tcp(addr)
        };
        Ok(Self {
            name: name.to_owned(),
            address,
        })
    }

    /// Parses the `--listen` arguments given to the supervisor.
    pub(crate) fn parse_all(pairs: &[String]) -> Result<Vec<Self>, Failure> {
        let mut declared: Vec<Self> = Vec::new();
        for pair in pairs {
            let listener = Self::parse_pair(pair).map_err(Failure::new)?;
            if declared.iter().any(|other| other.name == listener.name) {
                return Err(Failure::new(format!(
                    "listener `{}` is declared twice",
                    listener.name
                )));
            }
            if let Some(other) = declared
                .iter()
                .find(|other| other.address == listener.address)
            {
                return Err(Failure::new(format!(
                    "listeners `{}` and `{}` both declare {}",
                    other.name, listener.name, listener.address
                )));
            }
            declared.push(listener);
        }
        Ok(declared)
    }

    /// `NAME=ADDR`, as passed to the supervisor.
    pub(crate) fn pair(&self) -> String {
        format!("{}={}", self.name, self.address)
    }
}

/// A bound listener the supervisor holds.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) declared: Declared,
    pub(crate) fd: OwnedFd,
    /// The socket file of a Unix listener, removed when the supervisor
    /// ends (only if it is still the one bound here).
    unix_path: Option<(PathBuf, u64)>,
}

impl Held {
    /// Binds every declared listener; the first that cannot be bound
    /// makes it fail, saying who holds the address.
    pub(crate) fn bind_all(project: &Project, declared: &[Declared]) -> Result<Vec<Held>, Failure> {
        let mut held: Vec<Held> = Vec::with_capacity(declared.len());
        for listener in declared {
            match bind(project, listener) {
                Ok(bound) => held.push(bound),
                Err(failure) => {
                    // Nothing of a failed start is left: the socket files
                    // bound so far go too.
                    for bound in &held {
                        bound.remove_socket_file();
                    }
                    return Err(failure);
                }
            }
        }
        Ok(held)
    }

    /// Whether the socket still listens (`SO_ACCEPTCONN`).
    pub(crate) fn listening(&self) -> bool {
        rustix::net::sockopt::socket_acceptconn(&self.fd).unwrap_or(false)
    }

    /// Binds this listener again if the socket no longer listens (a
    /// service called shutdown(2) on it: every generation after would get
    /// a dead socket). Returns whether it did.
    pub(crate) fn revive(&mut self, project: &Project) -> Result<bool, Failure> {
        if self.listening() {
            return Ok(false);
        }
        let fresh = bind(project, &self.declared)?;
        *self = fresh;
        Ok(true)
    }

    /// Removes a Unix listener's socket file if it is still this one's.
    pub(crate) fn remove_socket_file(&self) {
        use std::os::unix::fs::MetadataExt;
        if let Some((path, inode)) = &self.unix_path
            && std::fs::symlink_metadata(path).is_ok_and(|meta| meta.ino() == *inode)
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn bind(project: &Project, listener: &Declared) -> Result<Held, Failure> {
    let cannot = |why: String| {
        Failure::new(format!(
            "cannot listen on {} (`{}`): {why}",
            listener.address, listener.name
        ))
    };
    match &listener.address {
        Address::Tcp(addr) => {
            // std sets SO_REUSEADDR (a port in TIME_WAIT is free to bind)
            // and close-on-exec.
            let socket = TcpListener::bind(addr).map_err(|err| {
                if err.kind() == std::io::ErrorKind::AddrInUse {
                    cannot(format!(
                        "the address is in use; {}",
                        holders_of(project, *addr)
                    ))
                } else {
                    cannot(err.to_string())
                }
            })?;
            rustix::net::listen(&socket, BACKLOG).map_err(|err| cannot(err.to_string()))?;
            Ok(Held {
                declared: listener.clone(),
                fd: OwnedFd::from(socket),
                unix_path: None,
            })
        }
        Address::Unix(path) => {
            use std::os::unix::fs::{FileTypeExt, MetadataExt};
            let path = project.dir.join(path);
            if let Ok(meta) = std::fs::symlink_metadata(&path) {
                if !meta.file_type().is_socket() {
                    return Err(cannot(format!(
                        "{} exists and is not a socket; nothing was removed",
                        path.display()
                    )));
                }
                // A socket file: in use if something listens on it (a full
                // backlog too: the connect is not waited for), else left
                // over from a process that ended, and replaced.
                if unix_in_use(&path) {
                    return Err(cannot(format!(
                        "something already listens on {}; it is left alone",
                        path.display()
                    )));
                }
                let _ = std::fs::remove_file(&path);
            }
            let socket = UnixListener::bind(&path).map_err(|err| cannot(err.to_string()))?;
            rustix::net::listen(&socket, BACKLOG).map_err(|err| cannot(err.to_string()))?;
            let inode = std::fs::symlink_metadata(&path).map_or(0, |meta| meta.ino());
            Ok(Held {
                declared: listener.clone(),
                fd: OwnedFd::from(socket),
                unix_path: Some((path, inode)),
            })
        }
    }
}

/// Whether a process listens on the Unix socket at `path`: a nonblocking
/// connect that is refused (or finds nothing) says no; anything else —
/// accepted, or a full backlog (`EAGAIN`) — says yes.
fn unix_in_use(path: &std::path::Path) -> bool {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let Ok(addr) = SocketAddrUnix::new(path) else {
        return false;
    };
    let Ok(socket) = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    ) else {
        return true;
    };
    !matches!(
        rustix::net::connect(&socket, &addr),
        Err(rustix::io::Errno::CONNREFUSED | rustix::io::Errno::NOENT)
    )
}

/// Who listens on `addr` (or on the same port at a wildcard address), in
/// words for the user. Only processes this user may look into are named;
/// for the others the kernel's socket table still gives the user.
pub(crate) fn holders_of(project: &Project, addr: SocketAddr) -> String {
    let sockets = listening_sockets(addr);
    if sockets.is_empty() {
        return "no listening socket of it is visible here (another network namespace, or it just closed)".into();
    }
    let inodes: Vec<u64> = sockets.iter().map(|(inode, _)| *inode).collect();
    let mut named = Vec::new();
    for stat in procfs::all_stats().unwrap_or_default() {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{}/fd", stat.pid)) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .ok()
                .and_then(|target| socket_inode(target.as_os_str()))
                .is_some_and(|inode| inodes.contains(&inode))
        });
        if holds {
            named.push(describe_holder(project, stat.pid));
        }
    }
    if named.is_empty() {
        let users: Vec<String> = sockets
            .iter()
            .map(|(_, uid)| crate::ownership::user_name(*uid))
            .collect();
        return format!(
            "it is held by a process of user {} that this user cannot look into; it is left alone",
            users.join(", ")
        );
    }
    format!("held by {}", named.join("; "))
}

/// One holder: `pid 1234 (user alice): python3 -m http.server 8000 — …`.
fn describe_holder(project: &Project, pid: i32) -> String {
    let user = procfs::uid(pid).map_or_else(|_| "?".to_owned(), crate::ownership::user_name);
    let mut command = procfs::cmdline(pid);
    if command.is_empty() {
        command = "?".into();
    }
    let marker = procfs::environ_var(pid, MARKER_VAR).ok().flatten();
    let supervises = crate::protocol::supervises(pid);
    if pid == std::process::id() as i32 {
        return format!(
            "pid {pid}: this supervisor, for another of the listeners declared (a wildcard address and a specific one on the same port?)"
        );
    }
    let whose = match (marker, supervises) {
        (_, Some(marker)) if marker.starts_with(&project.marker_prefix()) => format!(
            "the supervisor of this project's `{}`: stop it first (`lichtara stop -N {0}`)",
            marker.split('/').nth(1).unwrap_or("?")
        ),
        (Some(marker), _) if marker.starts_with(&project.marker_prefix()) => {
            let name = marker.split('/').nth(1).unwrap_or("?");
            format!(
                "a process of this project's `{name}` (if `{name}` is not running, it is an orphan: `lichtara cleanup` ends it)"
            )
        }
        _ => "not this project's; it is left alone".to_owned(),
    };
    format!("pid {pid} (user {user}): {command} — {whose}")
}

/// The inode of a `socket:[N]` link target.
fn socket_inode(target: &OsStr) -> Option<u64> {
    std::str::from_utf8(target.as_bytes())
        .ok()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The kernel's listening TCP sockets that take `addr`'s connections:
/// `(inode, uid)`, from `/proc/net/tcp` and `/proc/net/tcp6`.
fn listening_sockets(addr: SocketAddr) -> Vec<(u64, u32)> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address 1, st 3 (0A = LISTEN), uid 7, inode 9.
            let (Some(local), Some(state), Some(uid), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(7), fields.get(9))
            else {
                continue;
            };
            let Some(local) = parse_proc_address(local) else {
                continue;
            };
            if *state != "0A" || local.port() != addr.port() {
                continue;
            }
            let overlaps = local.ip() == addr.ip()
                || local.ip().is_unspecified()
                || addr.ip().is_unspecified()
                || matches!((local.ip(), addr.ip()), (IpAddr::V6(v6), IpAddr::V4(v4)) if v6.to_ipv4_mapped() == Some(v4));
            if let (true, Ok(uid), Ok(inode)) = (overlaps, uid.parse(), inode.parse()) {
                found.push((inode, uid));
            }
        }
    }
    found
}

/// `0100007F:1F40` (IPv4, host byte order words) or 32 hex digits of IPv6.
fn parse_proc_address(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        8 => IpAddr::from(u32::from_str_radix(ip, 16).ok()?.swap_bytes().to_be_bytes()),
        32 => {
            let mut bytes = [0u8; 16];
            for word in 0..4 {
                let value = u32::from_str_radix(&ip[word * 8..word * 8 + 8], 16).ok()?;
                bytes[word * 4..word * 4 + 4].copy_from_slice(&value.swap_bytes().to_be_bytes());
            }
            IpAddr::from(bytes)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Variables of the protocols a supervisor speaks, never passed on from
/// the supervisor's own environment (it may run under systemd itself).
pub(crate) const PROTOCOL_VARS: [&str; 6] = [
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
];

/// The whole environment of a service that execs itself
/// ([`Handoff::apply`]): this process's, without the supervisor's marker
/// and the protocols' variables, with the project's `env`, the run's
/// `marker` and the service's `NOTIFY_SOCKET`.
pub(crate) fn service_environment(
    env: &std::collections::BTreeMap<String, String>,
    marker: &str,
    notify: Option<&str>,
) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    let supervisor_var = crate::protocol::SUPERVISOR_VAR;
    std::env::vars_os()
        .filter(|(key, _)| key != supervisor_var && !PROTOCOL_VARS.iter().any(|var| key == var))
        .filter(|(key, _)| key != MARKER_VAR && !env.keys().any(|own| key == own.as_str()))
        .chain(env.iter().map(|(key, value)| (key.into(), value.into())))
        .chain(std::iter::once((MARKER_VAR.into(), marker.into())))
        .chain(notify.map(|notify| ("NOTIFY_SOCKET".into(), notify.into())))
        .collect()
}

/// The environment and descriptors a service is started with to receive
/// `held` by socket activation. Built before the fork, so that between
/// fork and exec nothing allocates: [`Handoff::apply`] only moves
/// descriptors, writes the PID into a buffer made for it, and execs.
pub(crate) struct Handoff {
    /// The held sockets' descriptors in this process, in order.
    sources: Vec<i32>,
    program: CString,
    /// Null-terminated pointer arrays into `strings`.
    argv: Vec<*const std::ffi::c_char>,
    envp: Vec<*const std::ffi::c_char>,
    /// `/bin/sh PROGRAM ARGS…`, for a script without a `#!` line (the
    /// exec fails with ENOEXEC; execvp would run it so).
    sh_argv: Vec<*const std::ffi::c_char>,
    sh: CString,
    /// Owns what the pointers point at; `LISTEN_PID=` is last, its digits
    /// a placeholder filled in by the child.
    _strings: Vec<CString>,
    pid_slot: *mut u8,
    /// A descriptor that must survive the moves (the name's lock), or -1;
    /// moved above the listeners' range.
    keep: i32,
}

// SAFETY: the raw pointers point into `strings`, owned by the same value
// and never reallocated after `new`; the child of a fork writes only its
// own copy.
unsafe impl Send for Handoff {}
unsafe impl Sync for Handoff {}

/// Digits reserved for the PID (`pid_max` is at most 2^22 on Linux).
const PID_DIGITS: usize = 20;

impl Handoff {
    /// `env` is the service's whole environment, without the protocol's
    /// variables (added here).
    pub(crate) fn new(
        dir: &Path,
        program: &str,
        args: &[String],
        env: &[(std::ffi::OsString, std::ffi::OsString)],
        held: &[Held],
        keep: i32,
    ) -> Result<Self, Failure> {
        if held.len() > MOST {
            return Err(Failure::new(format!(
                "{} listeners declared; at most {MOST} can be passed",
                held.len()
            )));
        }
        let bad = |what: &str| Failure::new(format!("{what} holds a NUL byte"));
        // Looked up on the service's PATH, now: between fork and exec
        // nothing may search (execvpe would search the supervisor's).
        let path = env
            .iter()
            .find(|(key, _)| key == "PATH")
            .map(|(_, value)| value.clone());
        let program = resolve(program, path.as_deref(), dir)?;
        let program = CString::new(std::os::unix::ffi::OsStringExt::into_vec(
            program.into_os_string(),
        ))
        .map_err(|_| bad("the command"))?;
        let mut strings = Vec::new();
        for arg in args {
            strings.push(CString::new(arg.as_bytes()).map_err(|_| bad("an argument"))?);
        }
        let argc = strings.len();
        for (key, value) in env {
            let mut pair = key.as_bytes().to_vec();
            pair.push(b'=');
            pair.extend_from_slice(value.as_bytes());
            strings.push(CString::new(pair).map_err(|_| bad("the environment"))?);
        }
        let names: Vec<&str> = held.iter().map(|h| h.declared.name.as_str()).collect();
        strings.push(CString::new(format!("LISTEN_FDS={}", held.len())).expect("no NUL"));
        strings.push(
            CString::new(format!("LISTEN_FDNAMES={}", names.join(":"))).expect("names are checked"),
        );
        strings
            .push(CString::new(format!("LISTEN_PID={}", "0".repeat(PID_DIGITS))).expect("no NUL"));
        let argv: Vec<*const std::ffi::c_char> = strings[..argc]
            .iter()
            .map(|s| s.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let envp: Vec<*const std::ffi::c_char> = strings[argc..]
            .iter()
            .map(|s| s.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let sh = CString::new("/bin/sh").expect("no NUL");
        let sh_argv: Vec<*const std::ffi::c_char> = [sh.as_ptr(), program.as_ptr()]
            .into_iter()
            .chain(strings[1..argc].iter().map(|s| s.as_ptr()))
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let last = strings.last().expect("LISTEN_PID was pushed");
        // The digits' place: after `LISTEN_PID=`.
        let pid_slot = last
            .as_ptr()
            .cast_mut()
            .cast::<u8>()
            .wrapping_add("LISTEN_PID=".len());
        Ok(Self {
            sources: held.iter().map(|h| h.fd.as_raw_fd()).collect(),
            program,
            argv,
            envp,
            sh_argv,
            sh,
            _strings: strings,
            pid_slot,
            keep,
        })
    }

    /// Fills descriptors 3 … 2+n of this process (with /dev/null) while
    /// it forks, so that the pipe on which the standard library hears of a
    /// failed exec is above them (the moves into 3 … 2+n would close it);
    /// drop the result once the child is spawned.
    pub(crate) fn reserve(&self) -> Vec<std::fs::File> {
        let mut fillers = Vec::new();
        while let Ok(filler) = std::fs::File::open("/dev/null") {
            if filler.as_raw_fd() >= 3 + self.sources.len() as i32 {
                break;
            }
            fillers.push(filler);
        }
        fillers
    }

    /// In the child, between fork and exec: moves `keep` above the range,
    /// the sockets to 3, 4, …, writes `LISTEN_PID` and execs. Returns only
    /// on failure. Async-signal-safe: fcntl(2), dup2(2), getpid(2),
    /// execve(2) and writes to memory prepared before the fork.
    ///
    /// # Safety
    ///
    /// Only between fork and exec, in the child.
    pub(crate) unsafe fn apply(&self) -> std::io::Error {
        use nix::libc;
        let top = 3 + self.sources.len() as i32;
        unsafe {
            if self.keep >= 0 && self.keep < top {
                // Not close-on-exec: the service holds the lock.
                if libc::fcntl(self.keep, libc::F_DUPFD, top) < 0 {
                    return std::io::Error::last_os_error();
                }
            } else if self.keep >= 0 {
                libc::fcntl(self.keep, libc::F_SETFD, 0);
            }
            // First every source above the range (close-on-exec copies),
            // so that no move below overwrites a source not yet moved.
            let mut moved = [0i32; MOST];
            for (index, source) in self.sources.iter().enumerate() {
                let copy = libc::fcntl(*source, libc::F_DUPFD_CLOEXEC, top);
                if copy < 0 {
                    return std::io::Error::last_os_error();
                }
                moved[index] = copy;
            }
            for (index, copy) in moved[..self.sources.len()].iter().enumerate() {
                // dup2 clears close-on-exec on the new descriptor.
                if libc::dup2(*copy, 3 + index as i32) < 0 {
                    return std::io::Error::last_os_error();
                }
            }
            let mut pid = libc::getpid() as u64;
            let mut digits = [0u8; PID_DIGITS];
            let mut length = 0;
            loop {
                digits[length] = b'0' + (pid % 10) as u8;
                length += 1;
                pid /= 10;
                if pid == 0 {
                    break;
                }
            }
            for index in 0..length {
                *self.pid_slot.add(index) = digits[length - 1 - index];
            }
            // The C string ends after the digits.
            *self.pid_slot.add(length) = 0;
            libc::execve(
                self.program.as_ptr(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
            );
            if *libc::__errno_location() == libc::ENOEXEC {
                libc::execve(self.sh.as_ptr(), self.sh_argv.as_ptr(), self.envp.as_ptr());
            }
            std::io::Error::last_os_error()
        }
    }
}

/// The program `name` names: itself if it has a `/`, else the first
/// executable file of that name in `path`'s directories (`PATH`, the
/// service's; `/usr/local/bin:/usr/bin:/bin` without one).
///
/// Relative names and `PATH` entries are the project directory's (`dir`),
/// where the service runs.
fn resolve(name: &str, path: Option<&OsStr>, dir: &Path) -> Result<PathBuf, Failure> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |candidate: &Path| {
        std::fs::metadata(dir.join(candidate))
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let program = dir.join(name);
        return if executable(&program) {
            Ok(program)
        } else {
            Err(Failure::new(format!(
                "cannot start `{name}`: no executable file at {}",
                program.display()
            )))
        };
    }
    let path = path.unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    std::env::split_paths(path)
        .map(|entry| dir.join(entry).join(name))
        .find(|candidate| executable(candidate))
        .ok_or_else(|| {
            Failure::new(format!(
                "cannot start `{name}`: not found on the service's PATH"
            ))
        })
}

/// Whether `command` can be started as `project`'s service (its program
/// found, as the exec will find it): checked before a restart ends the
/// running generation.
pub(crate) fn check_program(
    project: &Project,
    env: &std::collections::BTreeMap<String, String>,
    command: &[String],
) -> Result<(), Failure> {
    let path = env
        .get("PATH")
        .map(std::ffi::OsString::from)
        .or_else(|| std::env::var_os("PATH"));
    resolve(&command[0], path.as_deref(), &project.dir).map(|_| ())
}

/// At most this many listeners are passed (a fixed array between fork and
/// exec).
pub(crate) const MOST: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_parse_and_bad_ones_are_explained() {
        let http = Declared::parse_pair("http=127.0.0.1:8000").unwrap();
        assert_eq!(
            http.address,
            Address::Tcp("127.0.0.1:8000".parse().unwrap())
        );
        assert_eq!(http.pair(), "http=127.0.0.1:8000");
        let admin = Declared::parse("admin", "unix:.lichtara/admin.sock").unwrap();
        assert_eq!(admin.address, Address::Unix(".lichtara/admin.sock".into()));
        assert!(Declared::parse("v6", "[::1]:9000").is_ok());
        assert!(
            Declared::parse_pair("http")
                .unwrap_err()
                .contains("NAME=ADDR")
        );
        assert!(
            Declared::parse("http", "localhost:80")
                .unwrap_err()
                .contains("IP:PORT")
        );
        assert!(
            Declared::parse("http", "127.0.0.1:0")
                .unwrap_err()
                .contains("port 0")
        );
        assert!(
            Declared::parse("a:b", "127.0.0.1:1")
                .unwrap_err()
                .contains("name")
        );
        let twice = Declared::parse_all(&["a=127.0.0.1:1".into(), "a=127.0.0.1:2".into()]);
        assert!(twice.unwrap_err().message().contains("twice"));
    }

    #[test]
    fn proc_net_addresses_parse() {
        assert_eq!(
            parse_proc_address("0100007F:1F40"),
            Some("127.0.0.1:8000".parse().unwrap())
        );
        assert_eq!(
            parse_proc_address("00000000000000000000000001000000:0050"),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(parse_proc_address("zz:1"), None);
    }

    #[test]
    fn a_listening_socket_of_this_process_is_found_with_its_user() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let found = listening_sockets(addr);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].1, rustix::process::getuid().as_raw());
    }
}
