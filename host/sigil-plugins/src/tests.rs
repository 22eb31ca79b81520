//! Unit tests of the host's parsers and rules that need no plugin.

use std::time::Duration;

use crate::container::in_path;
use crate::grants::{ID_RENDERER, WORKLOAD_ATTESTOR, is_granted};
use crate::limits::Limits;
use crate::process::{DeadlinePassed, ProcRoots, ProcessFacts, name_for};
use crate::state::{parse_run_delay, truncate};

const STATUS: &str = "Name:\tbash\nUmask:\t0022\nState:\tS (sleeping)\n\
Uid:\t1000\t1001\t1000\t1000\nGid:\t100\t101\t100\t100\nGroups:\t4 24 27 \n";

#[test]
fn names_come_from_passwd_and_group_lines() {
    let passwd =
        "# comment:x:5\nroot:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n";
    assert_eq!(name_for(passwd, 0).as_deref(), Some("root"));
    assert_eq!(name_for(passwd, 1000).as_deref(), Some("alice"));
    assert_eq!(name_for(passwd, 5), None, "comments are skipped");
    assert_eq!(name_for(passwd, 42), None);
    assert_eq!(name_for("broken line\n", 0), None);
}

#[test]
fn container_ids_from_the_common_cgroup_forms() {
    let id = "a".repeat(64);
    for line in [
        format!("0::/system.slice/docker-{id}.scope"),
        format!("12:pids:/docker/{id}"),
        format!("0::/kubepods.slice/kubepods-besteffort.slice/cri-containerd-{id}.scope"),
        format!("0::/kubepods/burstable/pod1234/crio-{id}.scope"),
    ] {
        let path = line.splitn(3, ':').nth(2).expect("a cgroup line");
        assert_eq!(in_path(path).map(|(_, c)| c), Some(id.clone()), "{line}");
    }
    assert_eq!(in_path("/user.slice/user-1000.slice/session-2.scope"), None);
    assert_eq!(in_path("garbage"), None);
}

#[test]
fn facts_resolve_from_a_proc_tree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let proc_dir = dir.path().join("proc/77");
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(&proc_dir).expect("proc");
    std::fs::create_dir_all(&etc).expect("etc");
    let stat = "77 (app) S 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5555 0 0";
    std::fs::write(proc_dir.join("stat"), stat).expect("stat");
    std::fs::write(proc_dir.join("status"), STATUS).expect("status");
    let id = "b".repeat(64);
    std::fs::write(proc_dir.join("cgroup"), format!("0::/docker/{id}\n")).expect("cgroup");
    std::fs::write(etc.join("passwd"), "bob:x:1001:101::/:/bin/sh\n").expect("passwd");
    std::fs::write(etc.join("group"), "staff:x:101:\ncdrom:x:24:bob\n").expect("group");
    let roots = ProcRoots {
        proc: dir.path().join("proc"),
        etc,
    };

    let facts = ProcessFacts::resolve_in(&roots, 77).expect("facts");
    assert_eq!((facts.pid(), facts.uid(), facts.gid()), (77, 1001, 101));
    assert_eq!(facts.supplementary_gids(), &[4, 24, 27]);
    assert_eq!(facts.user_name(), Some("bob"));
    assert_eq!(facts.group_name(101), Some("staff"));
    assert_eq!(facts.group_name(24), Some("cdrom"));
    assert_eq!(facts.group_name(4), None, "not in the group file");
    assert_eq!(facts.group_name(0), None, "not a group of the process");
    assert_eq!(facts.container_id(), Some(id));
    assert!(facts.exe_path().is_err(), "no exe link in the fake tree");

    // The PID now names another process: lazily read facts are refused.
    std::fs::write(proc_dir.join("stat"), stat.replace("5555", "6666")).expect("stat");
    assert!(
        facts
            .exe_sha256()
            .is_err_and(|e| e.contains("exited") || e.contains("cannot read"))
    );
    assert!(ProcessFacts::resolve_in(&roots, 78).is_err(), "no such PID");
}

#[test]
fn grants_follow_the_world() {
    for kind in [WORKLOAD_ATTESTOR, ID_RENDERER] {
        assert!(is_granted(kind, "wasi:cli/environment@0.2.6"));
        assert!(is_granted(kind, "wasi:io/streams@0.2.0"));
        assert!(is_granted(kind, "sigil:plugin/log@1.0.0"));
        assert!(!is_granted(kind, "wasi:sockets/tcp@0.2.6"));
        assert!(!is_granted(kind, "wasi:http/outgoing-handler@0.2.6"));
        assert!(!is_granted(kind, "sigil:plugin/secrets@1.0.0"));
    }
    assert!(is_granted(
        WORKLOAD_ATTESTOR,
        "sigil:plugin/workload-facts@1.0.0"
    ));
    assert!(!is_granted(
        ID_RENDERER,
        "sigil:plugin/workload-facts@1.0.0"
    ));
}

#[test]
fn cpu_budget_rounds_up_to_whole_ticks() {
    let ticks = |ms| {
        Limits {
            cpu: Duration::from_millis(ms),
            ..Limits::default()
        }
        .epoch_ticks()
    };
    assert_eq!(ticks(100), 11, "ten whole ticks after a partial first one");
    assert_eq!(ticks(101), 12);
    assert_eq!(ticks(1), 2);
    assert_eq!(ticks(0), 1, "a zero budget ends at the first tick");
}

#[test]
fn truncate_cuts_at_character_boundaries() {
    assert_eq!(truncate("héllo", 2), "h");
    assert_eq!(truncate("héllo", 3), "hé");
    assert_eq!(truncate("short", 100), "short");
}

#[test]
fn hashing_the_executable_gives_up_at_the_deadline() {
    let facts = ProcessFacts::resolve(std::process::id()).expect("own facts");
    let past = std::time::Instant::now();
    assert_eq!(facts.exe_sha256_until(Some(past)), Err(DeadlinePassed));
    let full = facts.exe_sha256_until(None).expect("no deadline");
    assert_eq!(full.map(|hex| hex.len()), Ok(64));
}

#[test]
fn the_run_queue_wait_is_the_second_schedstat_field() {
    assert_eq!(
        parse_run_delay("196764587 272200164 92\n"),
        Some(Duration::from_nanos(272_200_164))
    );
    assert_eq!(parse_run_delay("1"), None);
    assert_eq!(parse_run_delay("1 x 2"), None);
    assert_eq!(parse_run_delay(""), None);
}

#[test]
fn facts_locate_the_container_in_mountinfo_only_when_the_cgroup_file_has_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let proc_dir = dir.path().join("proc/88");
    std::fs::create_dir_all(&proc_dir).expect("proc");
    let stat = "88 (app) S 1 88 88 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 7777 0 0";
    std::fs::write(proc_dir.join("stat"), stat).expect("stat");
    std::fs::write(proc_dir.join("status"), STATUS).expect("status");
    let cid = "c".repeat(64);
    std::fs::write(
        proc_dir.join("mountinfo"),
        format!(
            "1543 1542 0:32 /../../kubepods-besteffort-pod00000000_1111_2222_3333_444444444444.slice/cri-containerd-{cid}.scope /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw\n"
        ),
    )
    .expect("mountinfo");
    let roots = ProcRoots {
        proc: dir.path().join("proc"),
        etc: dir.path().join("etc"),
    };

    std::fs::write(proc_dir.join("cgroup"), "0::/\n").expect("cgroup");
    let facts = ProcessFacts::resolve_in(&roots, 88).expect("facts");
    assert_eq!(facts.container_id(), Some(cid.clone()));
    assert_eq!(
        facts.pod_uid().as_deref(),
        Some("00000000-1111-2222-3333-444444444444")
    );

    // The cgroup file names a container: mountinfo is not consulted.
    let own = "d".repeat(64);
    std::fs::write(proc_dir.join("cgroup"), format!("0::/../{own}\n")).expect("cgroup");
    let facts = ProcessFacts::resolve_in(&roots, 88).expect("facts");
    assert_eq!(facts.container_id(), Some(own));
    assert_eq!(facts.pod_uid(), None);

    // Two containers in the cgroup file: no container ID, and the reason is kept.
    std::fs::write(
        proc_dir.join("cgroup"),
        format!(
            "1:pids:/docker/{cid}\n2:memory:/docker/{}\n",
            "e".repeat(64)
        ),
    )
    .expect("cgroup");
    let facts = ProcessFacts::resolve_in(&roots, 88).expect("facts");
    assert_eq!(facts.container_id(), None);
    assert!(
        facts
            .placement()
            .is_err_and(|reason| reason.contains("multiple container IDs"))
    );
}
