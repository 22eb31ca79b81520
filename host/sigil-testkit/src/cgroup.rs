//! A pod's container cgroup on the test machine, so a real process looks to the agent's `k8s`
//! workload attestor exactly as a container of that pod does: its `/proc/<pid>/cgroup`
//! carries `/kubepods/besteffort/pod<pod UID>/<container ID>` (the cgroupfs layout of
//! containerd and CRI-O on cgroup v1, or the same path on the unified hierarchy).
//!
//! Creating cgroups needs root, which the test machines and CI give; without it the set-up
//! fails the test with the reason (a test that needs this must not pass without it).

use std::path::{Path, PathBuf};

/// The hierarchies tried, in order: cgroup v1's `pids` controller (always mounted where
/// v1 is), then a unified (v2) mount.
const HIERARCHIES: &[&str] = &[
    "/sys/fs/cgroup/pids",
    "/sys/fs/cgroup/unified",
    "/sys/fs/cgroup",
];

/// A container's cgroup; removed (after moving its processes out) on drop.
#[derive(Debug)]
pub struct PodCgroup {
    root: PathBuf,
    dir: PathBuf,
}

impl PodCgroup {
    /// Create the cgroup of container `container_id` (64 hex digits) in pod `pod_uid`.
    pub fn create(pod_uid: &str, container_id: &str) -> PodCgroup {
        let root = HIERARCHIES
            .iter()
            .map(PathBuf::from)
            .find(|h| h.join("cgroup.procs").exists())
            .unwrap_or_else(|| panic!("no writable cgroup hierarchy among {HIERARCHIES:?}"));
        let dir = root
            .join("kubepods/besteffort")
            .join(format!("pod{pod_uid}"))
            .join(container_id);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| {
            panic!(
                "cannot create the cgroup {} (creating cgroups needs root): {e}",
                dir.display()
            )
        });
        PodCgroup { root, dir }
    }

    /// The cgroup's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Move the process `pid` (all its threads) into the cgroup.
    pub fn enter(&self, pid: u32) {
        move_process(&self.dir, pid);
    }

    /// Move the process `pid` back to the hierarchy's root cgroup.
    pub fn leave(&self, pid: u32) {
        move_process(&self.root, pid);
    }
}

impl Drop for PodCgroup {
    fn drop(&mut self) {
        // A cgroup with processes cannot be removed: move any left to the root first.
        if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for pid in procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
                let _ = std::fs::write(self.root.join("cgroup.procs"), pid.to_string());
            }
        }
        // Remove the container's directory and the now empty parents up to the root.
        let mut dir = Some(self.dir.as_path());
        while let Some(current) = dir {
            if current == self.root || std::fs::remove_dir(current).is_err() {
                break;
            }
            dir = current.parent();
        }
    }
}

fn move_process(cgroup: &Path, pid: u32) {
    std::fs::write(cgroup.join("cgroup.procs"), pid.to_string())
        .unwrap_or_else(|e| panic!("cannot move process {pid} into {}: {e}", cgroup.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_moved_in_shows_the_pod_path_and_the_cgroup_goes_away() {
        let id = "c".repeat(64);
        let cgroup = PodCgroup::create("0f3c-pod-uid", &id);
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        cgroup.enter(child.id());
        let lines =
            std::fs::read_to_string(format!("/proc/{}/cgroup", child.id())).expect("cgroup");
        assert!(
            lines.contains(&format!("/kubepods/besteffort/pod0f3c-pod-uid/{id}")),
            "{lines}"
        );
        let path = cgroup.path().to_owned();
        drop(cgroup);
        assert!(
            !path.exists(),
            "the cgroup is removed even with a process left in it"
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}
