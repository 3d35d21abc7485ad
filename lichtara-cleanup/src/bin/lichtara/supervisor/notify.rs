//! The service's `NOTIFY_SOCKET`: the sd_notify protocol, so that a
//! service in any language says when it is ready (`READY=1`), as it would
//! to systemd. The socket is an abstract one of this supervisor's
//! (`@lichtara/<project id>/<name>/<supervisor pid>`); as abstract sockets
//! have no permissions, every datagram is judged by the kernel's word on
//! its sender (`SO_PASSCRED`): only a process of this user that belongs to
//! a generation of the service (its main process, or a member of its
//! cgroup) is listened to.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};

use crate::Failure;

/// The socket, bound.
pub(super) struct Notify {
    socket: UnixDatagram,
    /// `NOTIFY_SOCKET`'s value: `@` and the abstract name.
    pub(super) address: String,
}

/// One datagram, and who sent it.
pub(super) struct Message {
    pub(super) pid: i32,
    pub(super) uid: u32,
    pub(super) text: String,
}

impl Message {
    /// Whether it says `WATCHDOG=1`.
    pub(super) fn watchdog(&self) -> bool {
        self.text.lines().any(|line| line.trim() == "WATCHDOG=1")
    }

    /// Whether it says `READY=1` (one of its newline-separated lines).
    pub(super) fn ready(&self) -> bool {
        self.text.lines().any(|line| line.trim() == "READY=1")
    }
}

/// The most a datagram may hold (systemd's limit is about as large).
const DATAGRAM_MAX: usize = 4096;

impl Notify {
    pub(super) fn bind(project_id: &str, name: &str) -> Result<Self, Failure> {
        let abstract_name = format!("lichtara/{project_id}/{name}/{}", std::process::id());
        let cannot = |err: std::io::Error| {
            Failure::new(format!("cannot make the service's NOTIFY_SOCKET: {err}"))
        };
        let addr = SocketAddr::from_abstract_name(abstract_name.as_bytes()).map_err(cannot)?;
        let socket = UnixDatagram::bind_addr(&addr).map_err(cannot)?;
        socket.set_nonblocking(true).map_err(cannot)?;
        setsockopt(&socket, sockopt::PassCred, &true)
            .map_err(|err| cannot(std::io::Error::from(err)))?;
        Ok(Self {
            socket,
            address: format!("@{abstract_name}"),
        })
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Every datagram waiting now (a few, each at most `DATAGRAM_MAX`).
    pub(super) fn receive(&self) -> Vec<Message> {
        let mut messages = Vec::new();
        // Bounded: a flood is read a batch at a time between other work.
        for _ in 0..64 {
            let mut buffer = [0u8; DATAGRAM_MAX];
            let mut space = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
            let mut iov = [IoSliceMut::new(&mut buffer)];
            let received = recvmsg::<()>(
                self.socket.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
            );
            let Ok(received) = received else { break };
            let length = received.bytes;
            let mut sender = None;
            if let Ok(cmsgs) = received.cmsgs() {
                for cmsg in cmsgs {
                    // Descriptors sent along (FDSTORE=1) are closed: not kept.
                    match cmsg {
                        ControlMessageOwned::ScmCredentials(creds) => {
                            sender = Some((creds.pid(), creds.uid()));
                        }
                        ControlMessageOwned::ScmRights(fds) => {
                            for fd in fds {
                                // SAFETY: received just now, owned by nobody else.
                                drop(unsafe {
                                    <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(
                                        fd,
                                    )
                                });
                            }
                        }
                        _ => {}
                    }
                }
            }
            if let Some((pid, uid)) = sender {
                messages.push(Message {
                    pid,
                    uid,
                    text: String::from_utf8_lossy(&buffer[..length]).into_owned(),
                });
            }
        }
        messages
    }
}
