//! A process on this node, as procfs shows it. Both places that identify a local process read
//! it here: the listener that pins a Unix-socket peer at accept (sigil-listen) and the facts a
//! workload attestor sees (sigil-plugins).
//!
//! - The start time (`/proc/<pid>/stat`, field 22, clock ticks after boot) tells a process
//!   from a later one that reuses its PID: read it before and after reading anything else.
//! - The credentials (`/proc/<pid>/status`): effective uid and gid, supplementary groups.

use std::fs;
use std::path::Path;

/// A process's effective IDs, from `/proc/<pid>/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// Effective user ID.
    pub uid: u32,
    /// Effective group ID.
    pub gid: u32,
    /// Supplementary group IDs, in the kernel's order.
    pub supplementary_gids: Vec<u32>,
}

/// The start time of the process whose procfs directory is `dir` (`/proc/<pid>`).
///
/// # Errors
///
/// `stat` cannot be read (the process has exited) or has no start time.
pub fn start_time_of(dir: &Path) -> Result<u64, String> {
    let stat =
        fs::read_to_string(dir.join("stat")).map_err(|e| format!("cannot read stat: {e}"))?;
    parse_start_time(&stat)
}

/// Field 22 of a `stat` line. The command name (field 2) is in parentheses and may contain
/// anything, spaces and parentheses included: the fields after it start after the last ')'.
///
/// # Errors
///
/// The line has no command name or no 22nd field that is a number.
pub fn parse_start_time(stat: &str) -> Result<u64, String> {
    let after_comm = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("stat has no command name")?;
    // After the command name come fields 3, 4, …; the start time is field 22.
    after_comm
        .split_whitespace()
        .nth(22 - 3)
        .and_then(|field| field.parse().ok())
        .ok_or_else(|| "stat has no start time".to_owned())
}

/// The effective IDs of the process whose procfs directory is `dir`.
///
/// # Errors
///
/// `status` cannot be read or lacks the IDs.
pub fn ids_of(dir: &Path) -> Result<Ids, String> {
    let status =
        fs::read_to_string(dir.join("status")).map_err(|e| format!("cannot read status: {e}"))?;
    parse_status(&status)
}

/// The effective IDs in a `status` text. `Uid:` and `Gid:` list the real, effective, saved and
/// filesystem IDs, in that order; `Groups:` the supplementary groups.
///
/// # Errors
///
/// `Uid:` or `Gid:` is missing or has no number in its second column, or a group is not a
/// number.
pub fn parse_status(status: &str) -> Result<Ids, String> {
    let field = |name: &str| {
        status.lines().find_map(|line| {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(':'))
        })
    };
    let effective = |name: &str| -> Result<u32, String> {
        field(name)
            .and_then(|ids| ids.split_whitespace().nth(1))
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| format!("status has no effective {name}"))
    };
    let uid = effective("Uid")?;
    let gid = effective("Gid")?;
    let supplementary_gids = field("Groups")
        .unwrap_or_default()
        .split_whitespace()
        .map(|g| {
            g.parse()
                .map_err(|_| format!("status has a bad group {g:?}"))
        })
        .collect::<Result<Vec<u32>, String>>()?;
    Ok(Ids {
        uid,
        gid,
        supplementary_gids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tbash\nUmask:\t0022\nState:\tS (sleeping)\n\
Uid:\t1000\t1001\t1000\t1000\nGid:\t100\t101\t100\t100\nGroups:\t4 24 27 \n";

    fn ids(uid: u32, gid: u32, supplementary_gids: Vec<u32>) -> Ids {
        Ids {
            uid,
            gid,
            supplementary_gids,
        }
    }

    #[test]
    fn status_gives_effective_ids_and_groups() {
        assert_eq!(parse_status(STATUS), Ok(ids(1001, 101, vec![4, 24, 27])));
        let setuid = "Name:\tpasswd\nUid:\t65534\t0\t0\t0\nGid:\t65534\t65534\t65534\t65534\n";
        assert_eq!(parse_status(setuid), Ok(ids(0, 65534, vec![])));
    }

    #[test]
    fn status_without_groups_has_none() {
        let status = "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\n";
        assert_eq!(parse_status(status), Ok(ids(0, 0, vec![])));
    }

    #[test]
    fn status_without_ids_is_an_error() {
        assert!(parse_status("Name:\tx\n").is_err_and(|e| e.contains("Uid")));
        assert!(parse_status("Uid:\t1\t2\t3\t4\nGid:\tx\ty\n").is_err_and(|e| e.contains("Gid")));
        assert!(
            parse_status("Uid:\t1\t2\nGid:\t1\t2\nGroups:\t4 x\n").is_err_and(|e| e.contains("x"))
        );
    }

    #[test]
    fn start_time_is_field_22_even_with_spaces_in_the_command() {
        let stat = "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000000 200 18446744073709551615";
        assert_eq!(parse_start_time(stat), Ok(987_654));
        assert!(parse_start_time("1234 no-parens").is_err());
        assert!(parse_start_time("1 (x) S 1").is_err());
    }

    #[test]
    fn this_process_reads_stably() {
        let dir = Path::new("/proc/self");
        let first = start_time_of(dir);
        assert!(first.is_ok(), "{first:?}");
        assert_eq!(first, start_time_of(dir));
        assert!(ids_of(dir).is_ok());
        assert!(start_time_of(Path::new("/proc/no-such-process")).is_err());
    }
}
