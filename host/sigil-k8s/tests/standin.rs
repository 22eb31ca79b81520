//! The API server stand-in (sigil-testkit; test code, not a cluster) against kube-rs's own
//! list, watch and status calls: what the controller relies on, checked directly.

#![expect(
    clippy::expect_used,
    reason = "test helpers outside #[test] functions: a failed setup step must fail the test"
)]

use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use sigil_k8s::crd::{ClusterSPIFFEID, ClusterSPIFFEIDStats, ClusterSPIFFEIDStatus};
use sigil_testkit::kube::{ApiServer, pod};

async fn client(api: &ApiServer, dir: &std::path::Path) -> kube::Client {
    let path = api.write_kubeconfig(dir);
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    sigil_k8s::kubeclient::client(config).expect("client")
}

#[tokio::test]
async fn list_then_watch_sees_changes_in_order_and_by_namespace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = ApiServer::start();
    api.put_pod(pod("a", "one", "u1", "n", "10.0.0.1", &[]));
    api.put_pod(pod("b", "two", "u2", "n", "10.0.0.1", &[]));
    let client = client(&api, dir.path()).await;
    let in_a: Api<Pod> = Api::namespaced(client.clone(), "a");
    let all: Api<Pod> = Api::all(client);
    let listed = all.list(&ListParams::default()).await.expect("list");
    assert_eq!(listed.items.len(), 2);
    let version = listed
        .metadata
        .resource_version
        .expect("list resourceVersion");
    assert_eq!(
        in_a.list(&ListParams::default())
            .await
            .expect("list a")
            .items
            .len(),
        1
    );

    let events = in_a
        .watch(&WatchParams::default().timeout(5), &version)
        .await
        .expect("watch");
    futures::pin_mut!(events);
    // Changes after the list: one in another namespace (not seen), three in `a`.
    api.put_pod(pod("b", "three", "u3", "n", "10.0.0.1", &[]));
    api.put_pod(pod("a", "four", "u4", "n", "10.0.0.1", &[]));
    api.put_pod(pod("a", "one", "u1", "n", "10.0.0.2", &[]));
    api.delete_pod("a", "four");
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(5), events.try_next())
            .await
            .expect("an event in time")
            .expect("a good event")
            .expect("the stream open");
        seen.push(match event {
            WatchEvent::Added(p) => format!("added {}", p.metadata.name.expect("name")),
            WatchEvent::Modified(p) => format!("modified {}", p.metadata.name.expect("name")),
            WatchEvent::Deleted(p) => format!("deleted {}", p.metadata.name.expect("name")),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(seen, ["added four", "modified one", "deleted four"]);
}

#[tokio::test]
async fn a_watch_from_a_dropped_version_is_told_410_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = ApiServer::start();
    for i in 0..4200 {
        api.put_pod(pod("a", &format!("p{}", i % 3), "u", "n", "10.0.0.1", &[]));
    }
    let pods: Api<Pod> = Api::all(client(&api, dir.path()).await);
    let mut events = pods
        .watch(&WatchParams::default().timeout(5), "1")
        .await
        .expect("watch")
        .boxed();
    match events.next().await {
        Some(Ok(WatchEvent::Error(e))) => assert_eq!(e.code, 410, "{e:?}"),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}

#[tokio::test]
async fn status_writes_change_the_status_only_and_check_the_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = ApiServer::start();
    api.put(
        "clusterspiffeids",
        json!({"metadata": {"name": "x"}, "spec": {"spiffeIDTemplate": "spiffe://td/a"}}),
    );
    let objects: Api<ClusterSPIFFEID> = Api::all(client(&api, dir.path()).await);
    let mut object = objects.get("x").await.expect("get");
    let status = ClusterSPIFFEIDStatus {
        stats: ClusterSPIFFEIDStats {
            pods_selected: 3,
            ..ClusterSPIFFEIDStats::default()
        },
    };
    object.status = Some(status.clone());
    object.spec.spiffe_id_template = "spiffe://td/changed".into();
    let replaced = objects
        .replace_status("x", &PostParams::default(), &object)
        .await
        .expect("replace status");
    assert_eq!(replaced.status, Some(status));
    assert_eq!(
        replaced.spec.spiffe_id_template, "spiffe://td/a",
        "only the status changes"
    );
    // The same object again carries a stale resourceVersion now.
    let err = objects
        .replace_status("x", &PostParams::default(), &object)
        .await
        .expect_err("stale version");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409),
        "{err:?}"
    );
    let err = objects.get("missing").await.expect_err("missing object");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 404),
        "{err:?}"
    );
}
