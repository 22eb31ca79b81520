//! Who connected to a Unix socket, pinned when the connection was accepted.
//!
//! `SO_PEERCRED` gives the PID, effective UID and effective GID of the process that called
//! `connect`, as they were then. A connection outlives that moment: the connector may exec a
//! setuid program (same PID, same start time, new credentials), hand the connection to a child
//! and exit, or exit so that its PID is reused. Attesting "the process with that PID" at call
//! time would then describe somebody else. [`PeerProcess`] keeps what is needed to tell:
//! a pidfd (which stays bound to the original process, however PIDs are reused) and the
//! process's start time, and [`PeerProcess::verify`] refuses once the process is gone or its
//! credentials are no longer the ones the kernel recorded at connect.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use sigil_proc::{Ids, ids_of, start_time_of};

/// The kernel's record of a Unix-socket peer at connect (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCredentials {
    /// Process ID of the connector; `None` when the kernel reported none (0).
    pub pid: Option<i32>,
    /// Effective user ID at connect.
    pub uid: u32,
    /// Effective group ID at connect.
    pub gid: u32,
}

/// Why a connection's peer can no longer be attested.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The kernel gave no PID for the peer.
    #[error("the caller's PID is unknown")]
    NoPid,
    /// The process that connected has exited; its PID may belong to another process now.
    #[error("the process that opened this connection (PID {pid}) has exited")]
    Exited {
        /// The connector's PID.
        pid: i32,
    },
    /// The process's credentials are not those it connected with (it exec'd a setuid or
    /// setgid program, or changed its IDs).
    #[error(
        "the process that opened this connection (PID {pid}) now runs as uid {uid}/gid {gid}, \
         not the uid {peer_uid}/gid {peer_gid} it connected with; reconnect"
    )]
    CredentialsChanged {
        /// The connector's PID.
        pid: i32,
        /// Effective UID now.
        uid: u32,
        /// Effective GID now.
        gid: u32,
        /// Effective UID at connect.
        peer_uid: u32,
        /// Effective GID at connect.
        peer_gid: u32,
    },
    /// The process's `/proc` entry could not be read as expected.
    #[error("cannot read /proc/{pid}: {reason}")]
    Proc {
        /// The connector's PID.
        pid: i32,
        /// What went wrong.
        reason: String,
    },
}

/// The connector of one Unix-socket connection, pinned at accept.
#[derive(Debug)]
pub struct PeerProcess {
    credentials: PeerCredentials,
    /// A pidfd of the connector: readable once it has exited. `None` where the kernel has no
    /// `pidfd_open` (before Linux 5.3); the start time then stands in.
    pidfd: Option<OwnedFd>,
    /// The process's start time (clock ticks after boot, `/proc/<pid>/stat` field 22).
    start_time: Option<u64>,
    proc_dir: Option<PathBuf>,
}

impl PeerProcess {
    /// Pins the connector described by `credentials`. Called right after accept: the pidfd
    /// and start time are taken then, and are checked on every [`verify`](Self::verify).
    pub fn pin(credentials: PeerCredentials) -> Self {
        let pid = credentials.pid.filter(|&pid| pid > 0);
        let pidfd = pid.and_then(|pid| {
            let pid = rustix::process::Pid::from_raw(pid)?;
            rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
        });
        let proc_dir = pid.map(|pid| PathBuf::from(format!("/proc/{pid}")));
        let start_time = proc_dir.as_ref().and_then(|dir| start_time_of(dir).ok());
        PeerProcess {
            credentials,
            pidfd,
            start_time,
            proc_dir,
        }
    }

    /// The credentials the kernel recorded at connect.
    pub fn credentials(&self) -> PeerCredentials {
        self.credentials
    }

    /// Checks that the process that connected is still alive, is still the process at its
    /// PID, and still runs with the credentials it connected with. Call it before and after
    /// reading anything about the process by its PID.
    pub fn verify(&self) -> Result<(), PeerError> {
        let Some(pid) = self.credentials.pid.filter(|&pid| pid > 0) else {
            return Err(PeerError::NoPid);
        };
        let Some(dir) = &self.proc_dir else {
            return Err(PeerError::NoPid);
        };
        if let Some(pidfd) = &self.pidfd
            && has_exited(pidfd)
        {
            return Err(PeerError::Exited { pid });
        }
        let fail = |reason: String| PeerError::Proc { pid, reason };
        // Without a pidfd, and as a second check with one: the start time read at accept.
        match (self.start_time, start_time_of(dir)) {
            (Some(pinned), Ok(now)) if pinned == now => {}
            (None, _) if self.pidfd.is_some() => {}
            _ => return Err(PeerError::Exited { pid }),
        }
        let Ids { uid, gid, .. } = ids_of(dir).map_err(fail)?;
        if uid != self.credentials.uid || gid != self.credentials.gid {
            return Err(PeerError::CredentialsChanged {
                pid,
                uid,
                gid,
                peer_uid: self.credentials.uid,
                peer_gid: self.credentials.gid,
            });
        }
        // The status read above could belong to a process that took the PID after the
        // pidfd check: look once more.
        if let Some(pidfd) = &self.pidfd
            && has_exited(pidfd)
        {
            return Err(PeerError::Exited { pid });
        }
        Ok(())
    }
}

/// Whether the process behind `pidfd` has exited (a pidfd polls readable then).
fn has_exited(pidfd: &OwnedFd) -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
    match poll(&mut fds, Some(&rustix::time::Timespec::default())) {
        Ok(0) => false,
        // Readable, or an error on a descriptor we own: either way, not provably alive.
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_verifies_and_a_changed_uid_does_not() {
        let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        let Ids { uid, gid, .. } = ids_of(std::path::Path::new("/proc/self")).expect("ids");
        let me = PeerProcess::pin(PeerCredentials {
            pid: Some(pid),
            uid,
            gid,
        });
        assert_eq!(me.verify(), Ok(()));
        let other = PeerProcess::pin(PeerCredentials {
            pid: Some(pid),
            uid: uid.wrapping_add(1),
            gid,
        });
        assert!(matches!(
            other.verify(),
            Err(PeerError::CredentialsChanged { .. })
        ));
    }

    #[test]
    fn an_exited_process_is_refused() {
        let Ok(mut child) = std::process::Command::new("true").spawn() else {
            panic!("cannot run `true`");
        };
        let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
        let pinned = PeerProcess::pin(PeerCredentials {
            pid: Some(pid),
            uid: 0,
            gid: 0,
        });
        let _ = child.wait();
        assert_eq!(pinned.verify(), Err(PeerError::Exited { pid }));
    }

    #[test]
    fn no_pid_is_refused() {
        let pinned = PeerProcess::pin(PeerCredentials {
            pid: None,
            uid: 0,
            gid: 0,
        });
        assert_eq!(pinned.verify(), Err(PeerError::NoPid));
    }
}
