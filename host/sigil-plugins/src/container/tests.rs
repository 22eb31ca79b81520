//! Real cgroup and mountinfo lines of each runtime, cgroup v1 and v2, written here in the
//! formats the kernel, systemd and the runtimes produce; and lines that must not match.

use super::{Placement, in_path, locate};

const CID: &str = "09bc3d7ade839efec32b6bec4ec79d099027a668ddba043083ec21d3c3b8f1e6";
const CID2: &str = "9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961";
const POD: &str = "a2830d0d-b0f0-4ff0-81b5-0ee4e299cf80";
const POD_UNDERSCORE: &str = "a2830d0d_b0f0_4ff0_81b5_0ee4e299cf80";
const KIND_NODE: &str = "93529524695bb00d91c1f6dba692ea8d3550c3b94fb2463af7bc9ec82f992d26";

fn found(container: &str, pod: Option<&str>) -> Result<Placement, String> {
    Ok(Placement {
        container_id: Some(container.to_owned()),
        pod_uid: pod.map(str::to_owned),
    })
}

/// A cgroup v1 file: one line per hierarchy, all with `path`, plus the systemd line.
fn v1(path: &str) -> String {
    [
        "12:hugetlb",
        "11:pids",
        "10:net_cls,net_prio",
        "9:cpuset",
        "8:devices",
        "7:memory",
        "6:cpu,cpuacct",
        "5:freezer",
        "4:blkio",
        "3:perf_event",
        "2:rdma",
        "1:name=systemd",
    ]
    .iter()
    .map(|h| format!("{h}:{path}\n"))
    .collect()
}

/// A cgroup v2 file (the unified hierarchy: one line).
fn v2(path: &str) -> String {
    format!("0::{path}\n")
}

#[test]
fn containerd_cgroupfs_driver_v1_and_v2() {
    let path = format!("/kubepods/besteffort/pod{POD}/{CID}");
    assert_eq!(locate(&v1(&path), None), found(CID, Some(POD)));
    assert_eq!(locate(&v2(&path), None), found(CID, Some(POD)));
    let burstable = format!("/kubepods/burstable/pod{POD}/{CID}");
    assert_eq!(locate(&v1(&burstable), None), found(CID, Some(POD)));
    // Guaranteed QoS pods sit directly under kubepods.
    let guaranteed = format!("/kubepods/pod{POD}/{CID}");
    assert_eq!(locate(&v2(&guaranteed), None), found(CID, Some(POD)));
}

#[test]
fn containerd_systemd_driver_v1_and_v2() {
    let path = format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD_UNDERSCORE}.slice/cri-containerd-{CID}.scope"
    );
    assert_eq!(locate(&v1(&path), None), found(CID, Some(POD)));
    assert_eq!(locate(&v2(&path), None), found(CID, Some(POD)));
    let guaranteed =
        format!("/kubepods.slice/kubepods-pod{POD_UNDERSCORE}.slice/cri-containerd-{CID}.scope");
    assert_eq!(locate(&v2(&guaranteed), None), found(CID, Some(POD)));
}

#[test]
fn cri_o_systemd_driver_and_its_monitor() {
    let path = format!(
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_UNDERSCORE}.slice/crio-{CID}.scope"
    );
    assert_eq!(locate(&v1(&path), None), found(CID, Some(POD)));
    assert_eq!(locate(&v2(&path), None), found(CID, Some(POD)));
    // conmon, CRI-O's per-container monitor, runs in a cgroup of its own beside the
    // container's: it is not the workload.
    let conmon = format!(
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_UNDERSCORE}.slice/crio-conmon-{CID}.scope"
    );
    assert_eq!(in_path(&conmon), None);
    assert_eq!(locate(&v2(&conmon), None), Ok(Placement::default()));
    // In the container's cgroup namespace, v2 shows the path relative to its root.
    assert_eq!(
        locate(&v2(&format!("/../crio-{CID}.scope")), None),
        found(CID, None)
    );
}

#[test]
fn docker_forms() {
    // Docker's cgroupfs driver (v1) and systemd driver (v2), outside Kubernetes.
    assert_eq!(
        locate(&v1(&format!("/docker/{CID}")), None),
        found(CID, None)
    );
    assert_eq!(
        locate(&v2(&format!("/system.slice/docker-{CID}.scope")), None),
        found(CID, None)
    );
    // dockershim pods with the systemd driver (SPIRE's testdata shape).
    let path = format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2c48913c_b29f_11e7_9350_020968147796.slice/docker-{CID2}.scope"
    );
    assert_eq!(
        locate(&v1(&path), None),
        found(CID2, Some("2c48913c-b29f-11e7-9350-020968147796"))
    );
}

#[test]
fn kind_nested_forms_give_the_innermost_container() {
    let v1_path = format!("/docker/{KIND_NODE}/kubepods/besteffort/pod{POD}/{CID}");
    assert_eq!(locate(&v1(&v1_path), None), found(CID, Some(POD)));
    let v2_path = format!(
        "/system.slice/docker-{KIND_NODE}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{POD_UNDERSCORE}.slice/cri-containerd-{CID}.scope"
    );
    assert_eq!(locate(&v2(&v2_path), None), found(CID, Some(POD)));
}

#[test]
fn lines_that_name_no_container() {
    for cgroup in [
        v2("/"),
        v2("/user.slice/user-1000.slice/session-2.scope"),
        v2("/system.slice/containerd.service"),
        v1("/user.slice/user-1000.slice"),
        // A pod slice without a container (the pause process's parent, a pod UID alone).
        v2(&format!(
            "/kubepods.slice/kubepods-pod{POD_UNDERSCORE}.slice"
        )),
        // 63 and 65 hex digits, and 64 glued to a word character, are not container IDs.
        v2(&format!("/docker/{}", &CID[..63])),
        v2(&format!("/docker/{CID}a")),
        v2(&format!("/docker/x{CID}")),
        v2(&format!("/docker/_{CID}")),
        String::new(),
        "garbage\n".to_owned(),
    ] {
        assert_eq!(locate(&cgroup, None), Ok(Placement::default()), "{cgroup}");
    }
}

#[test]
fn a_pod_uid_must_be_a_whole_word() {
    // `xpod<uid>` is not a pod segment; an ID without a pod is still a container.
    let path = format!("/kubepods/xpod{POD}/{CID}");
    assert_eq!(locate(&v2(&path), None), found(CID, None));
    let path = format!("/kubepods/pod{POD}x/{CID}");
    assert_eq!(locate(&v2(&path), None), found(CID, None));
}

#[test]
fn conflicts_between_lines_are_errors() {
    let one = format!("/kubepods/besteffort/pod{POD}/{CID}");
    let other_container = format!("/kubepods/besteffort/pod{POD}/{CID2}");
    let error = locate(&format!("4:pids:{one}\n3:memory:{other_container}\n"), None)
        .expect_err("two containers");
    assert!(error.contains("multiple container IDs"), "{error}");
    let other_pod = format!("/kubepods/besteffort/pod2c48913c-b29f-11e7-9350-020968147796/{CID}");
    let error =
        locate(&format!("4:pids:{one}\n3:memory:{other_pod}\n"), None).expect_err("two pods");
    assert!(error.contains("multiple pod UIDs"), "{error}");
}

#[test]
fn a_line_with_a_pod_outranks_lines_without() {
    // SPIRE's pod-uid-override case: a line naming only a container, before or after the
    // line naming the pod, does not replace or contradict it.
    let pod_line = format!("4:pids:/kubepods/besteffort/pod{POD}/{CID}\n");
    let bare = format!("3:memory:/docker/{CID2}\n");
    assert_eq!(
        locate(&format!("{bare}{pod_line}"), None),
        found(CID, Some(POD))
    );
    assert_eq!(
        locate(&format!("{pod_line}{bare}"), None),
        found(CID, Some(POD))
    );
}

fn mountinfo(root: &str, fstype: &str) -> String {
    format!(
        "1542 1 0:31 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w\n\
         1543 1542 0:32 {root} /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - {fstype} cgroup rw,nsdelegate\n\
         1544 1542 0:5 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755\n"
    )
}

#[test]
fn mountinfo_is_the_fallback_when_the_cgroup_file_names_no_container() {
    let root = format!(
        "/../../kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{POD_UNDERSCORE}.slice/cri-containerd-{CID}.scope"
    );
    let info = mountinfo(&root, "cgroup2");
    assert_eq!(locate(&v2("/"), Some(&info)), found(CID, Some(POD)));
    // cgroup v1 mounts too.
    let info = mountinfo(&format!("/kubepods/besteffort/pod{POD}/{CID}"), "cgroup");
    assert_eq!(locate(&v1("/"), Some(&info)), found(CID, Some(POD)));
    // Root mounts and other file systems say nothing.
    assert_eq!(
        locate(&v2("/"), Some(&mountinfo("/", "cgroup2"))),
        Ok(Placement::default())
    );
    let overlay = mountinfo(&root, "overlay");
    assert_eq!(locate(&v2("/"), Some(&overlay)), Ok(Placement::default()));
    assert_eq!(
        locate(&v2("/"), Some("not a mountinfo line\n")),
        Ok(Placement::default())
    );
}

#[test]
fn the_cgroup_file_wins_over_a_forged_mountinfo() {
    // A workload that bind-mounts another pod's cgroup shows it in its mountinfo; its
    // cgroup file still names its own container.
    let forged = mountinfo(&format!("/kubepods/besteffort/pod{POD}/{CID2}"), "cgroup2");
    assert_eq!(
        locate(&v2(&format!("/../{CID}")), Some(&forged)),
        found(CID, None)
    );
}
