//! Where a process runs: the container ID and the Kubernetes pod UID in its cgroup paths,
//! found as SPIRE's container locator finds them (`pkg/common/containerinfo`).
//!
//! In one path, the container ID is the first run of exactly 64 hex digits, standing
//! alone as a word (`docker-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope`,
//! `/docker/<id>`, `/kubepods/besteffort/pod<uid>/<id>`), in the last segment that has one:
//! kind's nested form (`/docker/<node>/kubepods/…/<id>`) gives the innermost container.
//! The pod UID is the nearest `pod<uuid>` at or above that segment, with systemd's
//! underscores (`kubepods-burstable-pod<uid_with_underscores>.slice`) turned into dashes.
//! A CRI-O `crio-conmon-<id>.scope` cgroup holds the runtime's monitor, not the
//! container, and names no container.
//!
//! Across the lines of `/proc/<pid>/cgroup`, a line with a pod UID outranks lines without
//! one; two different pod UIDs or two different container IDs are an error. Only when no
//! cgroup line names a container are the roots of the cgroup mounts in
//! `/proc/<pid>/mountinfo` searched the same way: a workload can bind-mount another
//! workload's cgroup into its mount namespace, but it cannot change its own cgroup file.

/// The container and pod of one process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// The container ID (64 hex digits).
    pub container_id: Option<String>,
    /// The Kubernetes pod UID, with dashes.
    pub pod_uid: Option<String>,
}

/// The placement from the lines of a cgroup file (`hierarchy-id:controllers:path`), else
/// from the cgroup mounts of a mountinfo file.
pub(crate) fn locate(cgroup: &str, mountinfo: Option<&str>) -> Result<Placement, String> {
    let paths = cgroup.lines().filter_map(|line| line.splitn(3, ':').nth(2));
    let found = combine(paths)?;
    if found.container_id.is_some() {
        return Ok(found);
    }
    match mountinfo {
        Some(text) => combine(cgroup_mount_roots(text)),
        None => Ok(found),
    }
}

/// SPIRE's rule for many paths: see the module's comment.
fn combine<'a>(paths: impl Iterator<Item = &'a str>) -> Result<Placement, String> {
    let mut found = Placement::default();
    for path in paths {
        let Some((pod_uid, container_id)) = in_path(path) else {
            continue;
        };
        match (&found.pod_uid, &pod_uid) {
            (Some(_), None) => continue,
            (Some(known), Some(new)) if known != new => {
                return Err(format!("multiple pod UIDs found ({known:?}, {new:?})"));
            }
            (None, Some(_)) => found.container_id = None,
            _ => {}
        }
        if let Some(known) = &found.container_id
            && *known != container_id
        {
            return Err(format!(
                "multiple container IDs found ({known:?}, {container_id:?})"
            ));
        }
        found = Placement {
            container_id: Some(container_id),
            pod_uid,
        };
    }
    Ok(found)
}

/// The pod UID (if any) and the container ID in one cgroup path or mount root.
pub(crate) fn in_path(path: &str) -> Option<(Option<String>, String)> {
    let segments: Vec<&str> = path.split('/').collect();
    let (at, container_id, before) = segments.iter().enumerate().rev().find_map(|(i, s)| {
        let start = container_id_at(s)?;
        Some((i, s.get(start..start + 64)?, s.get(..start)?))
    })?;
    if before.ends_with("crio-conmon-") {
        return None;
    }
    // The pod UID: in what precedes the ID in its own segment, then in the segments above.
    let pod_uid = std::iter::once(before)
        .chain(segments.get(..at)?.iter().rev().copied())
        .find_map(pod_uid_in);
    Some((pod_uid, container_id.to_owned()))
}

/// Whether `b` is a word character in the sense of a regular expression's `\b`.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether a word boundary lies before byte `at` of `text` (and after what precedes it).
fn boundary_before(text: &[u8], at: usize) -> bool {
    at == 0 || text.get(at - 1).is_none_or(|b| !is_word(*b))
}

/// Whether a word boundary lies after byte `end` (exclusive) of `text`.
fn boundary_after(text: &[u8], end: usize) -> bool {
    text.get(end).is_none_or(|b| !is_word(*b))
}

/// Where the first word of exactly 64 hex digits starts in `segment`.
fn container_id_at(segment: &str) -> Option<usize> {
    let bytes = segment.as_bytes();
    (0..bytes.len().saturating_sub(63)).find(|&start| {
        bytes
            .get(start..start + 64)
            .is_some_and(|run| run.iter().all(u8::is_ascii_hexdigit))
            && boundary_before(bytes, start)
            && boundary_after(bytes, start + 64)
    })
}

/// The first `pod<uuid>` word in `segment` (8-4-4-4-12 hex digits separated by `-` or
/// `_`), with dashes.
fn pod_uid_in(segment: &str) -> Option<String> {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let bytes = segment.as_bytes();
    segment.match_indices("pod").find_map(|(start, _)| {
        if !boundary_before(bytes, start) {
            return None;
        }
        let mut at = start + 3;
        let mut uid = String::with_capacity(36);
        for (n, len) in GROUPS.iter().enumerate() {
            if n > 0 {
                match bytes.get(at) {
                    Some(b'-' | b'_') => uid.push('-'),
                    _ => return None,
                }
                at += 1;
            }
            let group = segment.get(at..at + len)?;
            if !group.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            uid.push_str(group);
            at += len;
        }
        boundary_after(bytes, at).then_some(uid)
    })
}

/// The roots of the `cgroup` and `cgroup2` mounts of a mountinfo file, except `/` (a
/// namespace root says nothing about the container).
fn cgroup_mount_roots(mountinfo: &str) -> impl Iterator<Item = &str> {
    mountinfo.lines().filter_map(|line| {
        // `id parent major:minor root mount-point options [optional…] - fstype source super`
        let (fields, rest) = line.split_once(" - ")?;
        let fstype = rest.split_ascii_whitespace().next()?;
        let root = fields.split_ascii_whitespace().nth(3)?;
        (matches!(fstype, "cgroup" | "cgroup2") && root != "/").then_some(root)
    })
}

#[cfg(test)]
mod tests;
