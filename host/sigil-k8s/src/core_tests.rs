//! The core against spire-controller-manager's rules, rendering with the real
//! `k8s_template` plugin.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointSubset, Endpoints, Namespace, Node, NodeSpec as K8sNodeSpec,
    ObjectReference, Pod, PodSpec as K8sPodSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta, Time,
};

use super::*;
use crate::crd::{ClusterSPIFFEIDSpec, ClusterStaticEntrySpec};
use crate::render::PluginTemplates;

const ISTIO: &str =
    "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}";

fn templates() -> &'static PluginTemplates {
    static T: OnceLock<PluginTemplates> = OnceLock::new();
    T.get_or_init(|| PluginTemplates::new().expect("plugin host"))
}

fn config(extra: &str) -> ControllerConfig {
    ControllerConfig::parse(&format!(
        "trustDomain: example.org\nclusterName: demo\n{extra}"
    ))
    .expect("config")
}

fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

fn namespace(name: &str, l: &[(&str, &str)]) -> Arc<Namespace> {
    Arc::new(Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: labels(l),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    })
}

fn node(name: &str, uid: &str) -> Arc<Node> {
    Arc::new(Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            uid: Some(uid.into()),
            ..ObjectMeta::default()
        },
        spec: Some(K8sNodeSpec {
            provider_id: Some(format!("aws:///{name}")),
            ..K8sNodeSpec::default()
        }),
        ..Node::default()
    })
}

fn pod(ns: &str, name: &str, uid: &str, node: &str, sa: &str, l: &[(&str, &str)]) -> Arc<Pod> {
    Arc::new(Pod {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            uid: Some(uid.into()),
            labels: labels(l),
            ..ObjectMeta::default()
        },
        spec: Some(K8sPodSpec {
            node_name: Some(node.into()),
            service_account_name: Some(sa.into()),
            ..K8sPodSpec::default()
        }),
        ..Pod::default()
    })
}

fn csid(name: &str, spec: ClusterSPIFFEIDSpec) -> Arc<ClusterSPIFFEID> {
    Arc::new(ClusterSPIFFEID {
        metadata: ObjectMeta {
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    })
}

fn selected(label: &str) -> Option<LabelSelector> {
    Some(LabelSelector {
        match_labels: labels(&[(label, "true")]),
        ..LabelSelector::default()
    })
}

fn istio(label: &str) -> ClusterSPIFFEIDSpec {
    ClusterSPIFFEIDSpec {
        spiffe_id_template: ISTIO.into(),
        pod_selector: selected(label),
        ..ClusterSPIFFEIDSpec::default()
    }
}

/// Two namespaces (prod, kube-system), one node, pods in both.
fn cluster() -> Snapshot {
    Snapshot {
        namespaces: vec![
            namespace("prod", &[("env", "prod")]),
            namespace("kube-system", &[]),
        ],
        nodes: vec![node("n1", "node-uid-1")],
        pods: vec![
            pod(
                "prod",
                "web",
                "pod-web",
                "n1",
                "web-sa",
                &[("mesh", "true")],
            ),
            pod("prod", "batch", "pod-batch", "n1", "batch-sa", &[]),
            pod(
                "kube-system",
                "dns",
                "pod-dns",
                "n1",
                "coredns",
                &[("mesh", "true")],
            ),
        ],
        ..Snapshot::default()
    }
}

fn entries(declaration: &Declaration) -> Vec<&Entry> {
    declaration.entries.iter().map(|d| &d.entry).collect()
}

#[test]
fn istio_cluster_spiffe_id_gives_the_selected_pod_its_entry_under_its_node() {
    let mut snapshot = cluster();
    snapshot.cluster_spiffe_ids = vec![csid("istio", istio("mesh"))];
    let declaration = declare(&config(""), &snapshot, templates());
    assert_eq!(declaration.problems, Vec::<String>::new());
    let got = entries(&declaration);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].spiffe_id, "spiffe://example.org/ns/prod/sa/web-sa");
    assert_eq!(
        got[0].parent_id,
        "spiffe://example.org/spire/agent/k8s_psat/demo/node-uid-1"
    );
    assert_eq!(
        got[0].selectors,
        [("k8s".to_owned(), "pod-uid:pod-web".to_owned())]
    );
    let stats = declaration.spiffe_id_status["istio"].stats;
    // kube-system is selected by the (absent) namespace selector, then ignored by default.
    assert_eq!(stats.namespaces_selected, 2);
    assert_eq!(stats.namespaces_ignored, 1);
    assert_eq!(stats.pods_selected, 1);
    assert_eq!(stats.pod_entry_render_failures, 0);
}

#[test]
fn namespace_selector_expressions_and_ignore_regexes_apply() {
    let mut snapshot = cluster();
    snapshot
        .namespaces
        .push(namespace("staging", &[("env", "staging")]));
    snapshot.pods.push(pod(
        "staging",
        "web",
        "pod-stg",
        "n1",
        "web-sa",
        &[("mesh", "true")],
    ));
    let mut spec = istio("mesh");
    spec.namespace_selector = Some(LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "env".into(),
            operator: "In".into(),
            values: Some(vec!["prod".into(), "staging".into()]),
        }]),
        ..LabelSelector::default()
    });
    snapshot.cluster_spiffe_ids = vec![csid("istio", spec)];
    let declaration = declare(
        &config("ignoreNamespaces: [\"^stag\"]\n"),
        &snapshot,
        templates(),
    );
    let got = entries(&declaration);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].selectors[0].1, "pod-uid:pod-web");
    let stats = declaration.spiffe_id_status["istio"].stats;
    assert_eq!(
        (stats.namespaces_selected, stats.namespaces_ignored),
        (2, 1)
    );
}

#[test]
fn a_fallback_applies_only_to_pods_no_other_object_took() {
    let mut snapshot = cluster();
    snapshot.ignore_nothing();
    let mut fallback = ClusterSPIFFEIDSpec {
        spiffe_id_template: "spiffe://{{ .TrustDomain }}/fallback/{{ .PodMeta.Name }}".into(),
        fallback: true,
        ..ClusterSPIFFEIDSpec::default()
    };
    fallback.namespace_selector = Some(LabelSelector {
        match_labels: labels(&[("env", "prod")]),
        ..LabelSelector::default()
    });
    // The fallback is listed first: the order must not matter.
    snapshot.cluster_spiffe_ids = vec![csid("fallback", fallback), csid("istio", istio("mesh"))];
    let declaration = declare(&config(""), &snapshot, templates());
    let mut ids: Vec<&str> = entries(&declaration)
        .iter()
        .map(|e| e.spiffe_id.as_str())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "spiffe://example.org/fallback/batch",
            "spiffe://example.org/ns/prod/sa/web-sa"
        ]
    );
    // The fallback selected both prod pods, and skipped the one taken.
    assert_eq!(
        declaration.spiffe_id_status["fallback"].stats.pods_selected,
        2
    );
}

impl Snapshot {
    fn ignore_nothing(&mut self) {
        self.namespaces
            .retain(|n| n.metadata.name.as_deref() != Some("kube-system"));
    }
}

#[test]
fn class_name_and_watch_classless_choose_the_objects() {
    let mut snapshot = cluster();
    let mut theirs = istio("mesh");
    theirs.class_name = "theirs".into();
    let mut mine = istio("mesh");
    mine.class_name = "mine".into();
    mine.spiffe_id_template = "spiffe://{{ .TrustDomain }}/mine/{{ .PodMeta.Name }}".into();
    snapshot.cluster_spiffe_ids = vec![
        csid("theirs", theirs),
        csid("mine", mine),
        csid("none", istio("mesh")),
    ];
    let declaration = declare(&config("className: mine\n"), &snapshot, templates());
    let ids: Vec<&str> = entries(&declaration)
        .iter()
        .map(|e| e.spiffe_id.as_str())
        .collect();
    assert_eq!(ids, ["spiffe://example.org/mine/web"]);
    assert!(!declaration.spiffe_id_status.contains_key("theirs"));
    let declaration = declare(
        &config("className: mine\nwatchClassless: true\n"),
        &snapshot,
        templates(),
    );
    assert_eq!(declaration.entries.len(), 2);
}

#[test]
fn parent_id_template_renders_against_the_node() {
    let mut snapshot = cluster();
    snapshot.cluster_spiffe_ids = vec![csid("istio", istio("mesh"))];
    let declaration = declare(
        &config(
            "parentIDTemplate: \"spiffe://{{ .TrustDomain }}/k8s-node/{{ .NodeMeta.Name }}\"\n",
        ),
        &snapshot,
        templates(),
    );
    assert_eq!(
        entries(&declaration)[0].parent_id,
        "spiffe://example.org/k8s-node/n1"
    );
}

#[test]
fn a_pod_on_an_unknown_node_is_a_render_failure() {
    let mut snapshot = cluster();
    snapshot.nodes.clear();
    snapshot.cluster_spiffe_ids = vec![csid("istio", istio("mesh"))];
    let declaration = declare(&config(""), &snapshot, templates());
    assert!(declaration.entries.is_empty());
    assert_eq!(
        declaration.spiffe_id_status["istio"]
            .stats
            .pod_entry_render_failures,
        1
    );
    assert!(
        declaration.problems[0].contains("node \"n1\" not found"),
        "{:?}",
        declaration.problems
    );
}

#[test]
fn spec_fields_are_carried_and_bad_specs_zero_the_status() {
    let mut snapshot = cluster();
    let mut spec = istio("mesh");
    spec.ttl = Some("1h".parse().expect("duration"));
    spec.jwt_ttl = Some("5m".parse().expect("duration"));
    spec.federates_with = vec!["other.org".into()];
    spec.admin = true;
    spec.downstream = true;
    spec.hint = "web".into();
    spec.dns_name_templates = vec!["web.example".into(), "web.example".into()];
    spec.workload_selector_templates = vec!["k8s:ns:prod".into()];
    spec.auto_populate_dns_names = true;
    let mut bad = istio("mesh");
    bad.federates_with = vec!["not a td".into()];
    snapshot.cluster_spiffe_ids = vec![csid("istio", spec), csid("bad", bad)];
    snapshot.endpoints = vec![Arc::new(Endpoints {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("prod".into()),
            ..ObjectMeta::default()
        },
        subsets: Some(vec![EndpointSubset {
            not_ready_addresses: Some(vec![EndpointAddress {
                ip: "10.0.0.1".into(),
                target_ref: Some(ObjectReference {
                    kind: Some("Pod".into()),
                    uid: Some("pod-web".into()),
                    ..ObjectReference::default()
                }),
                ..EndpointAddress::default()
            }]),
            ..EndpointSubset::default()
        }]),
    })];
    let declaration = declare(
        &config("clusterDomain: cluster.local\n"),
        &snapshot,
        templates(),
    );
    let got = entries(&declaration);
    assert_eq!(got.len(), 1, "{:?}", declaration.problems);
    let entry = got[0];
    assert_eq!((entry.x509_svid_ttl, entry.jwt_svid_ttl), (3600, 300));
    assert_eq!(entry.federates_with, ["other.org"]);
    assert!(entry.admin && entry.downstream);
    assert_eq!(entry.hint, "web");
    assert_eq!(
        entry.dns_names,
        [
            "web.example",
            "web",
            "web.prod",
            "web.prod.svc",
            "web.prod.svc.cluster.local"
        ]
    );
    assert_eq!(entry.selectors[1], ("k8s".to_owned(), "ns:prod".to_owned()));
    assert_eq!(
        declaration.spiffe_id_status["bad"],
        ClusterSPIFFEIDStatus::default()
    );
    assert!(
        declaration
            .problems
            .iter()
            .any(|p| p.contains("federatesWith"))
    );
}

#[test]
fn dns_name_and_selector_templates_render_their_actions() {
    let mut snapshot = cluster();
    let mut spec = istio("mesh");
    spec.dns_name_templates = vec![
        "{{ .PodMeta.Name }}.{{ .PodMeta.Namespace }}.svc".into(),
        "{{ .PodSpec.NodeName }}-{{ .ClusterName }}".into(),
    ];
    spec.workload_selector_templates = vec![
        "k8s:ns:{{ .PodMeta.Namespace }}".into(),
        "k8s:sa:{{ .PodSpec.ServiceAccountName }}".into(),
    ];
    snapshot.cluster_spiffe_ids = vec![csid("istio", spec)];
    let declaration = declare(&config(""), &snapshot, templates());
    let got = entries(&declaration);
    assert_eq!(got.len(), 1, "{:?}", declaration.problems);
    assert_eq!(got[0].dns_names, ["web.prod.svc", "n1-demo"]);
    assert_eq!(
        got[0].selectors[1..],
        [
            ("k8s".to_owned(), "ns:prod".to_owned()),
            ("k8s".to_owned(), "sa:web-sa".to_owned())
        ]
    );
}

#[test]
fn a_template_value_that_cannot_be_carried_is_refused_by_name() {
    let mut snapshot = cluster();
    let mut annotated = (*snapshot.pods[0]).clone();
    annotated.metadata.annotations = labels(&[("team", "a:b c")]);
    snapshot.pods[0] = Arc::new(annotated);
    let mut spec = istio("mesh");
    spec.workload_selector_templates =
        vec!["k8s:pod-annotation:{{ index .PodMeta.Annotations \"team\" }}".into()];
    snapshot.cluster_spiffe_ids = vec![csid("istio", spec)];
    let declaration = declare(&config(""), &snapshot, templates());
    assert!(declaration.entries.is_empty());
    assert_eq!(
        declaration.spiffe_id_status["istio"]
            .stats
            .pod_entry_render_failures,
        1
    );
    assert!(
        declaration.problems[0].contains("workload selector")
            && declaration.problems[0].contains("valid in a SPIFFE ID path"),
        "{:?}",
        declaration.problems
    );
    let mut spec = istio("mesh");
    spec.dns_name_templates = vec!["{{ .PodMeta.Name".into()];
    snapshot.cluster_spiffe_ids = vec![csid("istio", spec)];
    let declaration = declare(&config(""), &snapshot, templates());
    assert!(
        declaration.problems[0].contains("not closed"),
        "{:?}",
        declaration.problems
    );
}

#[test]
fn a_spiffe_id_outside_the_trust_domain_is_a_render_failure() {
    let mut snapshot = cluster();
    let mut spec = istio("mesh");
    spec.spiffe_id_template = "spiffe://elsewhere.org/ns/{{ .PodMeta.Namespace }}".into();
    snapshot.cluster_spiffe_ids = vec![csid("istio", spec)];
    let declaration = declare(&config(""), &snapshot, templates());
    assert!(declaration.entries.is_empty());
    assert_eq!(
        declaration.spiffe_id_status["istio"]
            .stats
            .pod_entry_render_failures,
        1
    );
}

fn static_entry_object(name: &str, spec: ClusterStaticEntrySpec) -> Arc<ClusterStaticEntry> {
    Arc::new(ClusterStaticEntry {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    })
}

#[test]
fn static_entries_are_declared_as_written() {
    let snapshot = Snapshot {
        cluster_static_entries: vec![
            static_entry_object(
                "node",
                ClusterStaticEntrySpec {
                    spiffe_id: "spiffe://example.org/db".into(),
                    parent_id: "spiffe://example.org/agent".into(),
                    selectors: vec!["unix:uid:0".into()],
                    x509_svid_ttl: Some("10m".parse().expect("duration")),
                    store_svid: true,
                    ..ClusterStaticEntrySpec::default()
                },
            ),
            static_entry_object(
                "broken",
                ClusterStaticEntrySpec {
                    spiffe_id: "spiffe://example.org/x".into(),
                    parent_id: "spiffe://example.org/agent".into(),
                    selectors: vec!["no-colon".into()],
                    ..ClusterStaticEntrySpec::default()
                },
            ),
        ],
        ..Snapshot::default()
    };
    let declaration = declare(&config(""), &snapshot, templates());
    let got = entries(&declaration);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].selectors, [("unix".to_owned(), "uid:0".to_owned())]);
    assert_eq!(got[0].x509_svid_ttl, 600);
    assert!(got[0].store_svid);
    assert!(declaration.static_status["node"].rendered);
    assert!(!declaration.static_status["broken"].rendered);
    assert!(
        declaration.problems[0].contains("no-colon"),
        "{:?}",
        declaration.problems
    );
}

fn declared(entry: Entry, owner: &str, created_secs: i64) -> Declared {
    let meta = ObjectMeta {
        creation_timestamp: Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(created_secs).expect("time"),
        )),
        uid: Some(format!("uid-{owner}")),
        ..ObjectMeta::default()
    };
    Declared {
        entry,
        owner: Owner::ClusterSPIFFEID(owner.into()),
        order: OwnerOrder::of(&meta),
    }
}

fn entry(id: &str, spiffe: &str) -> Entry {
    Entry {
        id: id.into(),
        spiffe_id: format!("spiffe://example.org/{spiffe}"),
        parent_id: "spiffe://example.org/spire/agent/k8s_psat/demo/n".into(),
        selectors: vec![("k8s".into(), format!("pod-uid:{spiffe}"))],
        ..Entry::default()
    }
}

fn declaration_of(entries: Vec<Declared>) -> Declaration {
    Declaration {
        entries,
        ..Declaration::default()
    }
}

#[test]
fn the_plan_creates_updates_and_deletes_what_differs() {
    let config = config("entryIDPrefix: sigil\n");
    let mut newer_ttl = entry("", "b");
    newer_ttl.x509_svid_ttl = 60;
    let mut declaration = declaration_of(vec![
        declared(entry("", "a"), "o", 1),
        declared(newer_ttl, "o", 1),
        declared(entry("", "c"), "o", 1),
    ]);
    let current = vec![
        entry("sigil.b", "b"),
        entry("sigil.c", "c"),
        entry("sigil.stale", "stale"),
        // Not ours: no prefix.
        entry("hand-made", "hand"),
    ];
    let mut ids = 0;
    let plan = plan(&config, current, &mut declaration, || {
        ids += 1;
        format!("n{ids}")
    });
    assert_eq!(plan.create.len(), 1);
    assert_eq!(plan.create[0].0.id, "sigil.n1");
    assert_eq!(plan.create[0].0.spiffe_id, "spiffe://example.org/a");
    assert_eq!(plan.update.len(), 1);
    assert_eq!(
        (plan.update[0].0.id.as_str(), plan.update[0].0.x509_svid_ttl),
        ("sigil.b", 60)
    );
    let deleted: Vec<&str> = plan.delete.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(deleted, ["sigil.stale"]);
    assert_eq!(declaration.spiffe_id_status["o"].stats.entries_to_set, 3);
}

#[test]
fn without_a_prefix_every_entry_is_owned_except_join_token_ones() {
    let config = config("");
    let mut join = entry("j", "node");
    join.parent_id = "spiffe://example.org/spire/agent/join_token/abc".into();
    join.selectors = vec![(
        "spiffe_id".into(),
        "spiffe://example.org/spire/agent/join_token/abc".into(),
    )];
    let mut declaration = declaration_of(vec![declared(entry("", "a"), "o", 1)]);
    let plan = plan(
        &config,
        vec![entry("x", "a"), entry("y", "a"), entry("z", "other"), join],
        &mut declaration,
        || "unused".into(),
    );
    assert!(plan.create.is_empty() && plan.update.is_empty());
    let mut deleted: Vec<&str> = plan.delete.iter().map(|e| e.id.as_str()).collect();
    deleted.sort_unstable();
    // The duplicate of "a" and the undeclared "z"; "x" is kept as "a"; the join-token one stays.
    assert_eq!(deleted, ["y", "z"]);
}

#[test]
fn the_cleanup_prefix_deletes_old_entries_only() {
    let config = config("entryIDPrefix: new\nentryIDPrefixCleanup: old\n");
    let mut declaration = declaration_of(vec![]);
    let plan = plan(
        &config,
        vec![
            entry("old.1", "a"),
            entry("other.2", "b"),
            entry("new.3", "c"),
        ],
        &mut declaration,
        || "unused".into(),
    );
    let mut deleted: Vec<&str> = plan.delete.iter().map(|e| e.id.as_str()).collect();
    deleted.sort_unstable();
    assert_eq!(deleted, ["new.3", "old.1"]);
    let config = super::ControllerConfig::parse(
        "trustDomain: example.org\nentryIDPrefix: new\nentryIDPrefixCleanup: \"\"\n",
    )
    .expect("config");
    assert_eq!(ownership(&config, "unprefixed-uuid"), (false, true));
    assert_eq!(ownership(&config, "other.x"), (false, false));
    assert_eq!(ownership(&config, "new.x"), (true, false));
}

#[test]
fn equal_entries_of_two_objects_mask_the_newer() {
    let config = config("");
    let mut declaration = declaration_of(vec![
        declared(entry("", "a"), "newer", 20),
        declared(entry("", "a"), "older", 10),
    ]);
    let plan = plan(&config, vec![], &mut declaration, String::new);
    assert_eq!(plan.create.len(), 1);
    assert_eq!(plan.create[0].1, Owner::ClusterSPIFFEID("older".into()));
    assert_eq!(
        declaration.spiffe_id_status["older"].stats.entries_to_set,
        1
    );
    assert_eq!(
        declaration.spiffe_id_status["newer"].stats.entries_masked,
        1
    );
}

#[test]
fn selector_order_does_not_make_a_different_entry() {
    let config = config("");
    let mut declared_entry = entry("", "a");
    declared_entry
        .selectors
        .push(("k8s".into(), "ns:prod".into()));
    let mut current = declared_entry.clone();
    current.id = "kept".into();
    current.selectors.reverse();
    let mut declaration = declaration_of(vec![declared(declared_entry, "o", 1)]);
    let plan = plan(&config, vec![current], &mut declaration, String::new);
    assert!(plan.create.is_empty() && plan.update.is_empty() && plan.delete.is_empty());
}

#[test]
fn failures_and_creates_are_recorded_in_the_statuses() {
    let mut declaration = Declaration::default();
    record_failure(&mut declaration, &Owner::ClusterSPIFFEID("o".into()));
    record_created(&mut declaration, &Owner::ClusterStaticEntry("s".into()));
    assert_eq!(declaration.spiffe_id_status["o"].stats.entry_failures, 1);
    assert!(declaration.static_status["s"].set);
}
