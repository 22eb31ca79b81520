//! Selector derivation from pods shaped like SPIRE's test pods (a replication-controller
//! pod with two containers, an init container, an unpulled image), written here.

use std::collections::BTreeSet;

use super::{Config, K8s};

const BLOG_DIGEST: &str = "docker-pullable://localhost/spiffe/blog@sha256:0cfdaced91cb46dd7af48309799a3c351e4ca2d5e1ee9737ca0cbd932cb79898";
const TUNNEL_DIGEST: &str = "docker-pullable://localhost/spiffe/ghostunnel@sha256:b2fc20676c92a433b9a91f3f4535faddec0c2c3613849ac12f02c1d5cfcd4c3a";

fn blog_status() -> String {
    format!(
        r#"{{"name":"blog","state":{{"running":{{"startedAt":"2017-10-16T18:08:20Z"}}}},"ready":true,"restartCount":0,
            "image":"localhost/spiffe/blog:latest","imageID":"{BLOG_DIGEST}",
            "containerID":"docker://9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961"}}"#
    )
}

fn blog_pod(init: &str) -> String {
    format!(
        r#"{{"kind":"Pod","apiVersion":"v1",
        "metadata":{{"name":"blog-24ck7","generateName":"blog-","namespace":"default",
          "uid":"2c48913c-b29f-11e7-9350-020968147796",
          "labels":{{"k8s-app":"blog","version":"v0"}},
          "ownerReferences":[{{"apiVersion":"v1","kind":"ReplicationController","name":"blog",
            "uid":"2c401175-b29f-11e7-9350-020968147796","controller":true,"blockOwnerDeletion":true}}]}},
        "spec":{{"containers":[{{"name":"blog","image":"localhost/spiffe/blog:latest"}},
                              {{"name":"ghostunnel","image":"localhost/spiffe/ghostunnel:latest"}}],
          "serviceAccountName":"default","serviceAccount":"default","nodeName":"k8s-node-1"}},
        "status":{{"phase":"Running","podIP":"10.244.1.3",
          "initContainerStatuses":[{init}],
          "containerStatuses":[{blog},
            {{"name":"ghostunnel","ready":true,"image":"localhost/spiffe/ghostunnel:latest",
              "imageID":"{TUNNEL_DIGEST}",
              "containerID":"docker://e9d7dd6a9e6c9bfe1b23d1e1e0f2d7cdc8b0f8c3d7f8a9b6c5d4e3f2a1b0c9d8"}}]}}}}"#,
        blog = blog_status(),
    )
}

fn set(values: &[&str]) -> BTreeSet<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

fn pod_values() -> Vec<String> {
    [
        "node-name:k8s-node-1",
        "ns:default",
        "pod-image-count:2",
        "pod-init-image-count:0",
        "pod-label:k8s-app:blog",
        "pod-label:version:v0",
        "pod-name:blog-24ck7",
        "pod-owner-uid:ReplicationController:2c401175-b29f-11e7-9350-020968147796",
        "pod-owner:ReplicationController:blog",
        "pod-uid:2c48913c-b29f-11e7-9350-020968147796",
        "sa:default",
        "pod-image:localhost/spiffe/blog:latest",
        "pod-image:localhost/spiffe/ghostunnel:latest",
    ]
    .iter()
    .map(|v| (*v).to_owned())
    .chain([
        format!("pod-image:{BLOG_DIGEST}"),
        format!("pod-image:{TUNNEL_DIGEST}"),
    ])
    .collect()
}

#[test]
fn pod_and_container_selectors_are_spires() {
    let plugin = K8s {
        config: Config::default(),
    };
    let values = plugin
        .selectors(&blog_pod(""), Some(&blog_status()))
        .expect("selectors");
    let mut want: BTreeSet<String> = pod_values().into_iter().collect();
    want.extend(set(&[
        "container-name:blog",
        "container-image:localhost/spiffe/blog:latest",
    ]));
    want.insert(format!("container-image:{BLOG_DIGEST}"));
    assert_eq!(values.iter().cloned().collect::<BTreeSet<_>>(), want);
    // Every value once: the image and its ID are two values, not four.
    assert_eq!(values.len(), want.len(), "{values:#?}");
}

#[test]
fn disabled_container_selectors_give_the_pod_alone() {
    let plugin = K8s {
        config: Config {
            disable_container_selectors: true,
        },
    };
    let values = plugin.selectors(&blog_pod(""), None).expect("selectors");
    assert_eq!(
        values.into_iter().collect::<BTreeSet<_>>(),
        pod_values().into_iter().collect::<BTreeSet<_>>()
    );
}

#[test]
fn init_containers_and_an_unpulled_image() {
    // An init container still waiting for its image: no image ID yet, which SPIRE keeps
    // as an empty value beside the image.
    let init = r#"{"name":"install-cni","state":{"waiting":{"reason":"PodInitializing"}},
        "image":"quay.io/coreos/flannel:v0.9.0-amd64","imageID":""}"#;
    let plugin = K8s {
        config: Config::default(),
    };
    let values = plugin
        .selectors(&blog_pod(init), Some(&blog_status()))
        .expect("selectors");
    for want in [
        "pod-init-image-count:1",
        "pod-init-image:quay.io/coreos/flannel:v0.9.0-amd64",
        "pod-init-image:",
    ] {
        assert!(values.iter().any(|v| v == want), "{want} in {values:#?}");
    }
    assert!(!values.iter().any(|v| v == "pod-init-image-count:0"));
}

#[test]
fn missing_fields_give_empty_values_like_spire() {
    // A pod with no labels, owners or statuses still has its identity selectors; Go's
    // zero values print as empty strings and zero counts.
    let plugin = K8s {
        config: Config {
            disable_container_selectors: true,
        },
    };
    let values = plugin
        .selectors(
            r#"{"metadata":{"name":"bare","namespace":"ns1","uid":"u1"},"spec":{}}"#,
            None,
        )
        .expect("selectors");
    assert_eq!(
        values.into_iter().collect::<BTreeSet<_>>(),
        set(&[
            "sa:",
            "ns:ns1",
            "node-name:",
            "pod-uid:u1",
            "pod-name:bare",
            "pod-image-count:0",
            "pod-init-image-count:0",
        ])
    );
}

#[test]
fn a_required_container_status_that_is_missing_or_malformed_is_an_error() {
    let plugin = K8s {
        config: Config::default(),
    };
    let error = plugin
        .selectors(&blog_pod(""), None)
        .expect_err("no status");
    assert!(error.contains("container status"), "{error}");
    let error = plugin
        .selectors(&blog_pod(""), Some("[1,2]"))
        .expect_err("malformed status");
    assert!(error.contains("container status JSON"), "{error}");
    let error = plugin.selectors("{", None).expect_err("malformed pod");
    assert!(error.contains("pod JSON"), "{error}");
}
