//! The built-in `k8s` workload attestor against the stand-in kubelet over HTTPS: SPIRE's
//! selector set for a fake process in a pod, polling for a pod that appears late, no
//! selectors for a container no pod runs, the pod list shared by concurrent attestations,
//! and the kubelet's credentials and certificate.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sigil_plugins::{Grants, KubeletAccess, KubeletTrust, ProcRoots};
use sigil_testkit::https::TestTls;
use sigil_testkit::kube::{self, Kubelet, container_status, owner, with_statuses};

use super::*;

const POD_UID: &str = "a2830d0d-b0f0-4ff0-81b5-0ee4e299cf80";
const CID: &str = "09bc3d7ade839efec32b6bec4ec79d099027a668ddba043083ec21d3c3b8f1e6";
const SIDECAR: &str = "e9d7dd6a9e6c9bfe1b23d1e1e0f2d7cdc8b0f8c3d7f8a9b6c5d4e3f2a1b0c9d8";
const INIT: &str = "34a2062fd26c805aa8cf814cdfe479322b791f80afb9ea4db02d50375df14b41";
const WEB_DIGEST: &str =
    "registry.example/web@sha256:0cfdaced91cb46dd7af48309799a3c351e4ca2d5e1ee9737ca0cbd932cb79898";
const PROXY_DIGEST: &str = "registry.example/proxy@sha256:b2fc20676c92a433b9a91f3f4535faddec0c2c3613849ac12f02c1d5cfcd4c3a";
const INIT_DIGEST: &str = "registry.example/setup@sha256:1111111111111111111111111111111111111111111111111111111111111111";

/// The pod `web-0` on `node-1`: two containers and an init container, owned by a
/// ReplicaSet, as a kubelet lists it.
fn web_pod(uid: &str, container_id: &str) -> k8s_openapi::api::core::v1::Pod {
    let mut pod = kube::pod(
        "prod",
        "web-0",
        uid,
        "node-1",
        "10.0.0.5",
        &[("app", "web"), ("tier", "front")],
    );
    pod.metadata.owner_references = Some(vec![owner(
        "ReplicaSet",
        "web-5d8f",
        "6c3b0f0e-1111-2222-3333-444455556666",
    )]);
    if let Some(spec) = pod.spec.as_mut() {
        spec.service_account_name = Some("web-sa".to_owned());
    }
    with_statuses(
        pod,
        vec![
            container_status(
                "web",
                "registry.example/web:1.2",
                WEB_DIGEST,
                &format!("containerd://{container_id}"),
            ),
            container_status(
                "proxy",
                "registry.example/proxy:0.9",
                PROXY_DIGEST,
                &format!("containerd://{SIDECAR}"),
            ),
        ],
        vec![container_status(
            "setup",
            "registry.example/setup:1",
            INIT_DIGEST,
            &format!("containerd://{INIT}"),
        )],
    )
}

/// The selectors SPIRE's plugin gives the `web` container of [`web_pod`].
fn web_selectors(uid: &str) -> BTreeSet<String> {
    [
        "sa:web-sa".to_owned(),
        "ns:prod".to_owned(),
        "node-name:node-1".to_owned(),
        format!("pod-uid:{uid}"),
        "pod-name:web-0".to_owned(),
        "pod-label:app:web".to_owned(),
        "pod-label:tier:front".to_owned(),
        "pod-owner:ReplicaSet:web-5d8f".to_owned(),
        "pod-owner-uid:ReplicaSet:6c3b0f0e-1111-2222-3333-444455556666".to_owned(),
        "pod-image-count:2".to_owned(),
        "pod-init-image-count:1".to_owned(),
        "pod-image:registry.example/web:1.2".to_owned(),
        format!("pod-image:{WEB_DIGEST}"),
        "pod-image:registry.example/proxy:0.9".to_owned(),
        format!("pod-image:{PROXY_DIGEST}"),
        "pod-init-image:registry.example/setup:1".to_owned(),
        format!("pod-init-image:{INIT_DIGEST}"),
        "container-name:web".to_owned(),
        "container-image:registry.example/web:1.2".to_owned(),
        format!("container-image:{WEB_DIGEST}"),
    ]
    .into_iter()
    .map(|v| format!("k8s:{v}"))
    .collect()
}

/// A fake procfs holding process `pid` with the cgroup file `cgroup`.
fn fake_process(dir: &Path, pid: u32, cgroup: &str) -> ProcessFacts {
    let proc_dir = dir.join(format!("proc/{pid}"));
    std::fs::create_dir_all(&proc_dir).expect("proc dir");
    std::fs::create_dir_all(dir.join("etc")).expect("etc");
    std::fs::write(
        proc_dir.join("stat"),
        format!(
            "{pid} (app) S 1 {pid} {pid} 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 555 1000 200 0"
        ),
    )
    .expect("stat");
    std::fs::write(
        proc_dir.join("status"),
        "Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nGroups:\t\n",
    )
    .expect("status");
    std::fs::write(proc_dir.join("cgroup"), cgroup).expect("cgroup");
    let roots = ProcRoots {
        proc: dir.join("proc"),
        etc: dir.join("etc"),
    };
    ProcessFacts::resolve_in(&roots, pid).expect("facts")
}

/// The cgroup v2 file of a containerd container in a burstable pod, systemd driver.
fn pod_cgroup(pod_uid: &str, container_id: &str) -> String {
    format!(
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{container_id}.scope\n",
        pod_uid.replace('-', "_")
    )
}

fn token_file(dir: &Path, token: &str) -> PathBuf {
    let path = dir.join("kubelet-token");
    std::fs::write(&path, format!("{token}\n")).expect("token file");
    path
}

/// Access to `kubelet`, trusting its CA, with its token.
fn access(kubelet: &Kubelet, dir: &Path, attempts: u32, interval: Duration) -> KubeletAccess {
    KubeletAccess::new(
        &kubelet.url(),
        kubelet.ca_pem().as_bytes(),
        Some(token_file(dir, kubelet.token())),
        Duration::from_secs(5),
    )
    .expect("kubelet access")
    .with_polling(attempts, interval)
}

fn k8s(host: &PluginHost, data: &str, access: KubeletAccess) -> WorkloadAttestor {
    host.load_workload_attestor(
        &td(),
        &PluginSpec::builtin("k8s", data).with_grants(Grants::default().with_kubelet(access)),
    )
    .expect("the built-in k8s attestor loads")
}

fn strings(selectors: &[Selector]) -> BTreeSet<String> {
    selectors.iter().map(ToString::to_string).collect()
}

#[test]
fn a_process_in_a_pod_gets_spires_full_selector_set() {
    let kubelet = Kubelet::start();
    kubelet.put_pod(web_pod(POD_UID, CID));
    // Another pod on the node, with a container of a different ID.
    kubelet.put_pod(web_pod(
        "11111111-2222-3333-4444-555555555555",
        &"c".repeat(64),
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin = k8s(
        &host(),
        "",
        access(&kubelet, dir.path(), 3, Duration::from_millis(50)),
    );

    let selectors = plugin
        .attest_process(fake_process(dir.path(), 4242, &pod_cgroup(POD_UID, CID)))
        .expect("attested");
    assert_eq!(strings(&selectors), web_selectors(POD_UID));
    assert_eq!(
        selectors.len(),
        web_selectors(POD_UID).len(),
        "no duplicates"
    );
    assert_eq!(kubelet.pod_list_requests(), 1);

    // The init container is found too, with its own container selectors.
    let init = plugin
        .attest_process(fake_process(dir.path(), 4243, &pod_cgroup(POD_UID, INIT)))
        .expect("attested");
    let init = strings(&init);
    assert!(init.contains("k8s:container-name:setup"), "{init:#?}");
    assert!(init.contains(&format!("k8s:container-image:{INIT_DIGEST}")));
    assert!(!init.contains("k8s:container-name:web"));
}

#[test]
fn disable_container_selectors_attests_a_pod_whose_container_is_not_listed_yet() {
    let kubelet = Kubelet::start();
    kubelet.put_pod(web_pod(POD_UID, CID));
    kubelet.delay_container_statuses(POD_UID, 100);
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin = k8s(
        &host(),
        "disable_container_selectors = true",
        access(&kubelet, dir.path(), 3, Duration::from_millis(20)),
    );
    let selectors = strings(
        &plugin
            .attest_process(fake_process(dir.path(), 4242, &pod_cgroup(POD_UID, CID)))
            .expect("attested"),
    );
    assert!(selectors.contains("k8s:pod-name:web-0"), "{selectors:#?}");
    assert!(
        selectors.contains("k8s:pod-image-count:0"),
        "statuses withheld"
    );
    assert!(!selectors.iter().any(|s| s.starts_with("k8s:container-")));
    assert_eq!(
        kubelet.pod_list_requests(),
        1,
        "the pod UID sufficed at once"
    );
}

#[test]
fn a_pod_that_appears_after_three_polls_is_found() {
    let kubelet = Kubelet::start();
    kubelet.put_pod_after(web_pod(POD_UID, CID), 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let interval = Duration::from_millis(50);
    let plugin = k8s(&host(), "", access(&kubelet, dir.path(), 10, interval));
    let started = Instant::now();
    let selectors = plugin
        .attest_process(fake_process(dir.path(), 4242, &pod_cgroup(POD_UID, CID)))
        .expect("attested");
    assert_eq!(strings(&selectors), web_selectors(POD_UID));
    assert_eq!(
        kubelet.pod_list_requests(),
        4,
        "three empty lists, then the pod"
    );
    // The polls were spaced by the interval (the host waited, outside the CPU budget).
    assert!(started.elapsed() >= interval * 3, "{:?}", started.elapsed());

    // A container still starting: the pod is listed without the container's status for
    // two answers; container selectors need the status, so the attestor waits for it.
    let kubelet = Kubelet::start();
    kubelet.put_pod(web_pod(POD_UID, CID));
    kubelet.delay_container_statuses(POD_UID, 2);
    let plugin = k8s(&host(), "", access(&kubelet, dir.path(), 10, interval));
    let selectors = plugin
        .attest_process(fake_process(dir.path(), 4242, &pod_cgroup(POD_UID, CID)))
        .expect("attested");
    assert_eq!(strings(&selectors), web_selectors(POD_UID));
    assert_eq!(kubelet.pod_list_requests(), 3);
}

#[test]
fn a_container_no_pod_runs_gets_no_selectors_and_no_error() {
    let kubelet = Kubelet::start();
    kubelet.put_pod(web_pod(POD_UID, CID));
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin = k8s(
        &host(),
        "",
        access(&kubelet, dir.path(), 3, Duration::from_millis(20)),
    );

    // A Docker container on the node, outside Kubernetes: SPIRE polls, then gives up.
    let docker = fake_process(
        dir.path(),
        4242,
        &format!("0::/system.slice/docker-{}.scope\n", "d".repeat(64)),
    );
    assert_eq!(plugin.attest_process(docker).expect("no error"), vec![]);
    assert_eq!(kubelet.pod_list_requests(), 3, "max_poll_attempts lists");

    // A pod UID the kubelet does not know, with our container ID: not that pod's.
    let other_pod = fake_process(
        dir.path(),
        4243,
        &pod_cgroup("99999999-8888-7777-6666-555555555555", CID),
    );
    assert_eq!(plugin.attest_process(other_pod).expect("no error"), vec![]);

    // A process outside any container: no kubelet request at all.
    let before = kubelet.pod_list_requests();
    let host_process = fake_process(
        dir.path(),
        4244,
        "0::/user.slice/user-1000.slice/session-2.scope\n",
    );
    assert_eq!(
        plugin.attest_process(host_process).expect("no error"),
        vec![]
    );
    assert_eq!(kubelet.pod_list_requests(), before);

    // Removing the pod ends its attestation, once the last list (reused for one poll
    // interval) has aged out.
    kubelet.remove_pod(POD_UID);
    thread::sleep(Duration::from_millis(50));
    let gone = fake_process(dir.path(), 4245, &pod_cgroup(POD_UID, CID));
    assert_eq!(plugin.attest_process(gone).expect("no error"), vec![]);
}

#[test]
fn concurrent_attestations_share_the_pod_list() {
    const CALLS: usize = 100;
    let kubelet = Kubelet::start();
    // A slow kubelet, so that calls overlap with the request in flight.
    kubelet.set_delay(Duration::from_millis(100));
    let mut pods = Vec::new();
    for n in 0..CALLS {
        let uid = format!("{n:08x}-0000-4000-8000-000000000000");
        let cid = format!("{n:064x}");
        kubelet.put_pod(web_pod(&uid, &cid));
        pods.push((uid, cid));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let interval = Duration::from_millis(500);
    let host = PluginHost::new(HostConfig::default().with_queue(1024, Duration::from_secs(60)))
        .expect("plugin host");
    let plugin = k8s(&host, "", access(&kubelet, dir.path(), 60, interval));
    let processes: Vec<ProcessFacts> = pods
        .iter()
        .enumerate()
        .map(|(n, (uid, cid))| {
            let pid = 5000 + u32::try_from(n).expect("small");
            fake_process(dir.path(), pid, &pod_cgroup(uid, cid))
        })
        .collect();

    let barrier = Arc::new(Barrier::new(CALLS));
    let started = Instant::now();
    let threads: Vec<_> = processes
        .into_iter()
        .zip(pods.clone())
        .map(|(process, (uid, _))| {
            let (plugin, barrier) = (plugin.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let selectors = plugin.attest_process(process).expect("attested");
                assert!(
                    strings(&selectors).contains(&format!("k8s:pod-uid:{uid}")),
                    "{selectors:?}"
                );
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("attestation thread");
    }
    let elapsed = started.elapsed();
    let requests = kubelet.pod_list_requests();
    println!("{CALLS} concurrent attestations: {requests} /pods requests in {elapsed:?}");
    // One list per reuse window (the poll interval) at most, and one in flight at a time:
    // with every pod present, the calls that miss one window's list take the next.
    let windows = u64::try_from(elapsed.as_millis() / interval.as_millis()).expect("small");
    assert!(
        requests <= windows + 1 && requests < 10,
        "{requests} /pods requests for {CALLS} attestations in {elapsed:?}"
    );
}

#[test]
fn a_wrong_token_is_a_clear_error_without_polling() {
    let kubelet = Kubelet::start();
    kubelet.put_pod(web_pod(POD_UID, CID));
    let dir = tempfile::tempdir().expect("tempdir");
    let access = KubeletAccess::new(
        &kubelet.url(),
        kubelet.ca_pem().as_bytes(),
        Some(token_file(dir.path(), "not-the-token")),
        Duration::from_secs(5),
    )
    .expect("access")
    .with_polling(60, Duration::from_millis(500));
    let plugin = k8s(&host(), "", access);
    let started = Instant::now();
    let error = plugin
        .attest_process(fake_process(dir.path(), 4242, &pod_cgroup(POD_UID, CID)))
        .expect_err("refused");
    let text = error.to_string();
    assert!(text.contains("refused our credentials"), "{text}");
    assert!(text.contains("401"), "{text}");
    assert_eq!(kubelet.pod_list_requests(), 1, "no retries: {text}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn an_untrusted_kubelet_certificate_is_a_clear_error_unless_verification_is_skipped() {
    let kubelet = Kubelet::start();
    kubelet.put_pod(web_pod(POD_UID, CID));
    let dir = tempfile::tempdir().expect("tempdir");
    let token = Some(token_file(dir.path(), kubelet.token()));
    let other_ca = TestTls::new().ca_pem;
    let untrusted = KubeletAccess::with_tls(
        &kubelet.url(),
        KubeletTrust::Roots(other_ca.as_bytes()),
        None,
        token.clone(),
        Duration::from_secs(5),
    )
    .expect("access")
    .with_polling(2, Duration::from_millis(20));
    let plugin = k8s(&host(), "", untrusted);
    let error = plugin
        .attest_process(fake_process(dir.path(), 4242, &pod_cgroup(POD_UID, CID)))
        .expect_err("untrusted");
    let text = error.to_string();
    assert!(text.contains("kubelet cannot be reached"), "{text}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    assert_eq!(
        kubelet.pod_list_requests(),
        0,
        "no request got past the handshake"
    );

    let skipped = KubeletAccess::with_tls(
        &kubelet.url(),
        KubeletTrust::Unverified,
        None,
        token,
        Duration::from_secs(5),
    )
    .expect("access");
    let plugin = k8s(&host(), "skip_kubelet_verification = true", skipped);
    let selectors = plugin
        .attest_process(fake_process(dir.path(), 4243, &pod_cgroup(POD_UID, CID)))
        .expect("attested without verification");
    assert_eq!(strings(&selectors), web_selectors(POD_UID));
}

#[test]
fn cgroups_naming_two_containers_are_an_error_not_a_process_outside_containers() {
    let kubelet = Kubelet::start();
    kubelet.put_pod(web_pod(POD_UID, CID));
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin = k8s(
        &host(),
        "",
        access(&kubelet, dir.path(), 3, Duration::from_millis(20)),
    );
    let ambiguous = fake_process(
        dir.path(),
        4242,
        &format!("4:pids:/docker/{CID}\n3:memory:/docker/{SIDECAR}\n"),
    );
    let error = plugin.attest_process(ambiguous).expect_err("ambiguous");
    assert!(
        error.to_string().contains("multiple container IDs"),
        "{error}"
    );
    assert_eq!(kubelet.pod_list_requests(), 0);
}

#[test]
fn the_k8s_attestor_needs_the_kubelet_granted() {
    let error = host()
        .load_workload_attestor(&td(), &PluginSpec::builtin("k8s", ""))
        .expect_err("pod-lookup not granted");
    assert!(error.to_string().contains("pod-lookup"), "{error}");
}
