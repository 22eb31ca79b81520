//! The facts of the one process under workload attestation, read by the host from procfs.
//!
//! PID reuse: the process's start time (field 22 of `/proc/<pid>/stat`) is read before and
//! after the facts, and again after every lazily read fact (`exe-path`, `exe-sha256`); if
//! it changed, the PID now names another process and the read fails. User and group names
//! come from the node's `/etc/passwd` and `/etc/group`, which the sandbox cannot read.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use aws_lc_rs::digest;

use sigil_proc::{Ids, start_time_of};

use crate::container::{self, Placement};
use crate::error::PluginError;

/// Where the host reads process facts and user databases from (`/proc` and `/etc` on a
/// node; tests point them elsewhere).
#[derive(Debug, Clone)]
pub struct ProcRoots {
    /// The procfs mount.
    pub proc: PathBuf,
    /// The directory holding `passwd` and `group`.
    pub etc: PathBuf,
}

impl Default for ProcRoots {
    fn default() -> Self {
        ProcRoots {
            proc: PathBuf::from("/proc"),
            etc: PathBuf::from("/etc"),
        }
    }
}

/// A host call ran past the call's CPU budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeadlinePassed;

/// A snapshot of one process, as the `workload-process` resource shows it to a plugin.
#[derive(Debug, Clone)]
pub struct ProcessFacts {
    pid: u32,
    start_time: u64,
    dir: PathBuf,
    uid: u32,
    gid: u32,
    supplementary_gids: Vec<u32>,
    user_name: Option<String>,
    group_names: BTreeMap<u32, String>,
    cgroups: Vec<String>,
    /// The container and pod from the cgroups (mountinfo as a fallback), or why the
    /// paths contradict each other.
    placement: Result<Placement, String>,
}

impl ProcessFacts {
    /// Read the facts of `pid`.
    pub fn resolve(pid: u32) -> Result<Self, PluginError> {
        Self::resolve_in(&ProcRoots::default(), pid)
    }

    /// Read the facts of `pid` under `roots`.
    pub fn resolve_in(roots: &ProcRoots, pid: u32) -> Result<Self, PluginError> {
        let dir = roots.proc.join(pid.to_string());
        let fail = |reason: String| PluginError::Process { pid, reason };
        let start_time = start_time_of(&dir).map_err(fail)?;
        let Ids {
            uid,
            gid,
            supplementary_gids,
        } = sigil_proc::ids_of(&dir).map_err(fail)?;
        let cgroup_text = fs::read_to_string(dir.join("cgroup")).unwrap_or_default();
        let cgroups = cgroup_text
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        // mountinfo is read only when the cgroup file names no container (SPIRE's order).
        let mut placement = container::locate(&cgroup_text, None);
        if placement
            .as_ref()
            .is_ok_and(|found| found.container_id.is_none())
            && let Ok(mountinfo) = fs::read_to_string(dir.join("mountinfo"))
        {
            placement = container::locate(&cgroup_text, Some(&mountinfo));
        }
        if start_time_of(&dir).as_ref() != Ok(&start_time) {
            return Err(fail("the process exited or its PID was reused".into()));
        }
        let passwd = fs::read_to_string(roots.etc.join("passwd")).unwrap_or_default();
        let group = fs::read_to_string(roots.etc.join("group")).unwrap_or_default();
        let user_name = name_for(&passwd, uid);
        let group_names = std::iter::once(gid)
            .chain(supplementary_gids.iter().copied())
            .filter_map(|g| name_for(&group, g).map(|name| (g, name)))
            .collect();
        Ok(ProcessFacts {
            pid,
            start_time,
            dir,
            uid,
            gid,
            supplementary_gids,
            user_name,
            group_names,
            cgroups,
            placement,
        })
    }

    /// The PID.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Effective user ID.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// Effective group ID.
    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// Supplementary group IDs.
    pub fn supplementary_gids(&self) -> &[u32] {
        &self.supplementary_gids
    }

    /// Name of the effective user.
    pub fn user_name(&self) -> Option<&str> {
        self.user_name.as_deref()
    }

    /// Name of one of the process's groups; `None` for other gids.
    pub fn group_name(&self, gid: u32) -> Option<&str> {
        self.group_names.get(&gid).map(String::as_str)
    }

    /// The cgroup lines.
    pub fn cgroups(&self) -> &[String] {
        &self.cgroups
    }

    /// The container ID found in the cgroup paths (or the cgroup mounts), if any; `None`
    /// also when the paths name two containers (see [`placement`](Self::placement)).
    pub fn container_id(&self) -> Option<String> {
        self.placement.as_ref().ok()?.container_id.clone()
    }

    /// The Kubernetes pod UID found with the container ID, if any.
    pub fn pod_uid(&self) -> Option<String> {
        self.placement.as_ref().ok()?.pod_uid.clone()
    }

    /// The container ID and pod UID, or why the cgroup paths contradict each other (two
    /// containers, two pods).
    pub fn placement(&self) -> Result<&Placement, &str> {
        self.placement.as_ref().map_err(String::as_str)
    }

    /// The executable's path, read now and checked against PID reuse.
    pub fn exe_path(&self) -> Result<String, String> {
        let path = fs::read_link(self.dir.join("exe")).map_err(|e| {
            format!(
                "cannot read the executable path of process {}: {e}",
                self.pid
            )
        })?;
        self.still_same()?;
        Ok(path.to_string_lossy().into_owned())
    }

    /// SHA-256 of the executable in lowercase hex, read now and checked against PID reuse.
    pub fn exe_sha256(&self) -> Result<String, String> {
        match self.exe_sha256_until(None) {
            Ok(digest) => digest,
            Err(DeadlinePassed) => Err("deadline passed".into()),
        }
    }

    /// [`exe_sha256`](Self::exe_sha256), giving up with [`DeadlinePassed`] once `deadline`
    /// passes: the host's timeout around this one slow host call.
    pub(crate) fn exe_sha256_until(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Result<String, String>, DeadlinePassed> {
        let unreadable =
            |e: std::io::Error| format!("cannot read the executable of process {}: {e}", self.pid);
        let mut file = match fs::File::open(self.dir.join("exe")) {
            Ok(file) => file,
            Err(e) => return Ok(Err(unreadable(e))),
        };
        let mut context = digest::Context::new(&digest::SHA256);
        let mut buffer = vec![0u8; 256 << 10];
        loop {
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Err(DeadlinePassed);
            }
            let read = match file.read(&mut buffer) {
                Ok(read) => read,
                Err(e) => return Ok(Err(unreadable(e))),
            };
            match buffer.get(..read) {
                Some([]) | None => break,
                Some(chunk) => context.update(chunk),
            }
        }
        Ok(self
            .still_same()
            .map(|()| hex::encode(context.finish().as_ref())))
    }

    /// Checks that the PID still names the process these facts were read from: call it after
    /// acting on them, since the process may have exited and its PID been reused meanwhile.
    ///
    /// # Errors
    ///
    /// [`PluginError::Process`]: the process exited or its PID was reused.
    pub fn ensure_same_process(&self) -> Result<(), PluginError> {
        self.still_same().map_err(|reason| PluginError::Process {
            pid: self.pid,
            reason,
        })
    }

    fn still_same(&self) -> Result<(), String> {
        match start_time_of(&self.dir) {
            Ok(now) if now == self.start_time => Ok(()),
            _ => Err(format!("process {} exited or its PID was reused", self.pid)),
        }
    }
}

/// The name of `id` in a `passwd` or `group` file (`name:x:id:…`).
pub(crate) fn name_for(database: &str, id: u32) -> Option<String> {
    database.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let wanted = fields.nth(1)?.parse::<u32>().ok()? == id;
        (wanted && !name.is_empty() && !line.starts_with('#')).then(|| name.to_owned())
    })
}
