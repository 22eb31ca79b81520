//! SPIRE's pod matching over a pod list.

use serde_json::{Value, json};

use super::{CapabilityError, find};

const CID: &str = "09bc3d7ade839efec32b6bec4ec79d099027a668ddba043083ec21d3c3b8f1e6";
const OTHER: &str = "9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961";

fn pod(uid: &str, statuses: Value, init: Value) -> Value {
    json!({
        "metadata": {"name": format!("pod-{uid}"), "namespace": "default", "uid": uid},
        "status": {"containerStatuses": statuses, "initContainerStatuses": init},
    })
}

fn status(name: &str, id: &str) -> Value {
    json!({"name": name, "image": "img:1", "imageID": "img@sha256:00", "containerID": id})
}

#[test]
fn the_container_id_must_be_the_whole_host_of_the_status_url() {
    let pods = vec![
        pod(
            "u1",
            json!([status("a", &format!("containerd://{OTHER}"))]),
            json!([]),
        ),
        pod(
            "u2",
            json!([status("b", &format!("cri-o://{CID}"))]),
            json!([]),
        ),
    ];
    let found = find(&pods, None, CID, true)
        .expect("no conflict")
        .expect("found");
    assert!(found.pod.contains("\"uid\":\"u2\""), "{}", found.pod);
    assert!(
        found
            .container_status
            .as_deref()
            .is_some_and(|s| s.contains("\"name\":\"b\""))
    );
    // A longer ID that merely starts with ours, or an ID without a scheme, does not match.
    let pods = vec![pod(
        "u1",
        json!([status("a", &format!("docker://{CID}0")), status("b", CID)]),
        json!([]),
    )];
    assert_eq!(find(&pods, None, CID, true), Ok(None));
}

#[test]
fn init_containers_match_and_the_pod_uid_narrows_the_search() {
    let pods = vec![pod(
        "u1",
        json!([{"name": "main", "containerID": ""}]),
        json!([status("setup", &format!("containerd://{CID}"))]),
    )];
    let found = find(&pods, Some("u1"), CID, true)
        .expect("ok")
        .expect("found");
    assert!(
        found
            .container_status
            .as_deref()
            .is_some_and(|s| s.contains("setup"))
    );
    // Known pod UID that is another pod's: no match even though the container is there.
    assert_eq!(find(&pods, Some("u9"), CID, true), Ok(None));
}

#[test]
fn without_container_required_the_pod_uid_suffices() {
    // The container has no status yet (a postStart hook still running, say).
    let pods = vec![pod("u1", json!([{"name": "main"}]), json!([]))];
    assert_eq!(find(&pods, Some("u1"), CID, true), Ok(None));
    let found = find(&pods, Some("u1"), CID, false)
        .expect("ok")
        .expect("found by UID");
    assert_eq!(found.container_status, None);
    // Without a pod UID from the cgroups there is nothing to go by.
    assert_eq!(find(&pods, None, CID, false), Ok(None));
}

#[test]
fn two_pods_with_the_container_are_refused() {
    let pods = vec![
        pod(
            "u1",
            json!([status("a", &format!("containerd://{CID}"))]),
            json!([]),
        ),
        pod(
            "u2",
            json!([status("b", &format!("containerd://{CID}"))]),
            json!([]),
        ),
    ];
    let error = find(&pods, None, CID, true).expect_err("ambiguous");
    assert!(
        matches!(&error, CapabilityError::Denied(m) if m.contains("two pods")),
        "{error:?}"
    );
}

#[test]
fn malformed_pods_are_skipped_not_fatal() {
    let pods = vec![
        json!("not a pod"),
        json!({"status": {"containerStatuses": "nope"}}),
        pod(
            "u2",
            json!([status("b", &format!("containerd://{CID}"))]),
            json!(null),
        ),
    ];
    assert!(find(&pods, None, CID, true).expect("ok").is_some());
}
