//! The reconcile core, pure: the entries spire-controller-manager would declare for a
//! snapshot of the cluster, and the creates, updates and deletes that bring the server's
//! entries there. No I/O; the loop (`controller`) feeds it and applies its plan.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sigil_plugins::{NodeSpec, ObjectMeta as RenderMeta, PodSpec, RenderInput};
use sigil_types::{SpiffeId, TrustDomain};

use crate::config::ControllerConfig;
use crate::crd::{
    ClusterSPIFFEID, ClusterSPIFFEIDStats, ClusterSPIFFEIDStatus, ClusterStaticEntry,
    ClusterStaticEntryStatus,
};
use crate::selector::Selector;

/// spire-controller-manager's parent ID when `parentIDTemplate` is unset: the agent ID the
/// k8s_psat node attestor gives the pod's node.
pub const DEFAULT_PARENT_ID_TEMPLATE: &str =
    "spiffe://{{ .TrustDomain }}/spire/agent/k8s_psat/{{ .ClusterName }}/{{ .NodeMeta.UID }}";

/// Parent IDs of join-token agents: entries under them are never deleted (as upstream).
const JOIN_TOKEN_PREFIX: &str = "/spire/agent/join_token/";

/// A registration entry as the entry API carries it (TTLs in seconds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// The entry ID (empty: the server picks one).
    pub id: String,
    /// The SPIFFE ID.
    pub spiffe_id: String,
    /// The parent ID.
    pub parent_id: String,
    /// Selectors, `(type, value)`.
    pub selectors: Vec<(String, String)>,
    /// X509-SVID TTL in seconds (0: the server's default).
    pub x509_svid_ttl: i32,
    /// JWT-SVID TTL in seconds.
    pub jwt_svid_ttl: i32,
    /// Federated trust domain names.
    pub federates_with: Vec<String>,
    /// Admin flag.
    pub admin: bool,
    /// Downstream flag.
    pub downstream: bool,
    /// DNS names.
    pub dns_names: Vec<String>,
    /// Hint.
    pub hint: String,
    /// Store-SVID flag.
    pub store_svid: bool,
}

impl Entry {
    /// What identifies an entry across reconciles: SPIFFE ID, parent ID and the set of
    /// selectors (upstream hashes the same three).
    fn key(&self) -> (String, String, Vec<(String, String)>) {
        let mut selectors = self.selectors.clone();
        selectors.sort();
        (self.spiffe_id.clone(), self.parent_id.clone(), selectors)
    }

    /// The fields an update would change (SPIFFE ID, parent and selectors are the key and
    /// never differ here).
    pub fn outdated_fields(&self, current: &Entry) -> Vec<&'static str> {
        let mut fields = Vec::new();
        if self.x509_svid_ttl != current.x509_svid_ttl {
            fields.push("x509_svid_ttl");
        }
        if self.jwt_svid_ttl != current.jwt_svid_ttl {
            fields.push("jwt_svid_ttl");
        }
        if sorted(&self.federates_with) != sorted(&current.federates_with) {
            fields.push("federates_with");
        }
        if self.admin != current.admin {
            fields.push("admin");
        }
        if self.downstream != current.downstream {
            fields.push("downstream");
        }
        if sorted(&self.dns_names) != sorted(&current.dns_names) {
            fields.push("dns_names");
        }
        if self.hint != current.hint {
            fields.push("hint");
        }
        if self.store_svid != current.store_svid {
            fields.push("store_svid");
        }
        fields
    }

    fn is_join_token_entry(&self) -> bool {
        self.parent_id
            .parse::<SpiffeId>()
            .is_ok_and(|p| p.path().starts_with(JOIN_TOKEN_PREFIX))
            && self.selectors.iter().any(|(t, _)| t == "spiffe_id")
    }
}

fn sorted(values: &[String]) -> Vec<&String> {
    let mut out: Vec<&String> = values.iter().collect();
    out.sort();
    out
}

/// Everything a template can refer to.
#[derive(Debug, Clone)]
pub struct TemplateData {
    /// `.TrustDomain`.
    pub trust_domain: TrustDomain,
    /// The rest (`.ClusterName`, `.PodMeta`, `.NodeMeta`, …).
    pub input: RenderInput,
}

/// Renders spiffeIDTemplate's Go-template subset.
pub trait Templates {
    /// Render `template` into a SPIFFE ID in the data's trust domain.
    fn spiffe_id(&self, template: &str, data: &TemplateData) -> Result<SpiffeId, String>;
    /// Render `template` into text (DNS names, selectors).
    fn text(&self, template: &str, data: &TemplateData) -> Result<String, String>;
}

/// The cluster as the watchers last saw it.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// ClusterSPIFFEIDs.
    pub cluster_spiffe_ids: Vec<Arc<ClusterSPIFFEID>>,
    /// ClusterStaticEntries.
    pub cluster_static_entries: Vec<Arc<ClusterStaticEntry>>,
    /// Namespaces.
    pub namespaces: Vec<Arc<Namespace>>,
    /// Pods.
    pub pods: Vec<Arc<Pod>>,
    /// Nodes.
    pub nodes: Vec<Arc<Node>>,
    /// Endpoints (for `autoPopulateDNSNames`).
    pub endpoints: Vec<Arc<Endpoints>>,
}

/// Which object declared an entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    /// A ClusterSPIFFEID, by name.
    ClusterSPIFFEID(String),
    /// A ClusterStaticEntry, by name.
    ClusterStaticEntry(String),
}

/// One declared entry and who declared it.
#[derive(Debug, Clone)]
pub struct Declared {
    /// The entry.
    pub entry: Entry,
    /// Its object.
    pub owner: Owner,
    order: OwnerOrder,
}

/// Upstream's preference between objects declaring the same entry: the older wins, then
/// one not being deleted, then (both deleted) the one deleted later, then the smaller UID.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OwnerOrder {
    created: Option<k8s_openapi::jiff::Timestamp>,
    deleted: Option<k8s_openapi::jiff::Timestamp>,
    uid: String,
}

impl OwnerOrder {
    fn of(meta: &ObjectMeta) -> Self {
        OwnerOrder {
            created: meta.creation_timestamp.as_ref().map(|t| t.0),
            deleted: meta.deletion_timestamp.as_ref().map(|t| t.0),
            uid: meta.uid.clone().unwrap_or_default(),
        }
    }

    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        // Go's zero time sorts first.
        self.created
            .cmp(&other.created)
            .then_with(|| match (self.deleted, other.deleted) {
                (None, None) => Ordering::Equal,
                (Some(_), None) => Ordering::Greater,
                (None, Some(_)) => Ordering::Less,
                (Some(a), Some(b)) => b.cmp(&a),
            })
            .then_with(|| self.uid.cmp(&other.uid))
    }
}

/// What a reconcile declares, before looking at the server.
#[derive(Debug, Default)]
pub struct Declaration {
    /// The entries.
    pub entries: Vec<Declared>,
    /// Next status of each ClusterSPIFFEID handled, by name.
    pub spiffe_id_status: BTreeMap<String, ClusterSPIFFEIDStatus>,
    /// Next status of each ClusterStaticEntry handled, by name.
    pub static_status: BTreeMap<String, ClusterStaticEntryStatus>,
    /// Why objects or pods produced no entry, for the log.
    pub problems: Vec<String>,
}

/// The entries `snapshot` declares under `config`, with spire-controller-manager's rules.
pub fn declare(
    config: &ControllerConfig,
    snapshot: &Snapshot,
    templates: &dyn Templates,
) -> Declaration {
    let mut out = Declaration::default();
    let trust_domain = match TrustDomain::new(&config.trust_domain) {
        Ok(td) => td,
        Err(e) => {
            out.problems
                .push(format!("trust domain {:?}: {e}", config.trust_domain));
            return out;
        }
    };
    if config.reconcile.cluster_static_entries {
        for object in &snapshot.cluster_static_entries {
            if !config.handles_class(&object.spec.class_name) {
                continue;
            }
            let name = object.metadata.name.clone().unwrap_or_default();
            let status = out.static_status.entry(name.clone()).or_default();
            match static_entry(object) {
                Ok(entry) => {
                    status.rendered = true;
                    out.entries.push(Declared {
                        entry,
                        owner: Owner::ClusterStaticEntry(name),
                        order: OwnerOrder::of(&object.metadata),
                    });
                }
                Err(e) => out
                    .problems
                    .push(format!("ClusterStaticEntry {name:?}: {e}")),
            }
        }
    }
    if config.reconcile.cluster_spiffe_ids {
        declare_pod_entries(config, snapshot, templates, &trust_domain, &mut out);
    }
    out
}

fn declare_pod_entries(
    config: &ControllerConfig,
    snapshot: &Snapshot,
    templates: &dyn Templates,
    trust_domain: &TrustDomain,
    out: &mut Declaration,
) {
    let nodes: BTreeMap<&str, &Node> = snapshot
        .nodes
        .iter()
        .filter_map(|n| Some((n.metadata.name.as_deref()?, &**n)))
        .collect();
    let mut objects: Vec<&ClusterSPIFFEID> = snapshot
        .cluster_spiffe_ids
        .iter()
        .map(|o| &**o)
        .filter(|o| config.handles_class(&o.spec.class_name))
        .collect();
    // Fallback objects last, so they see which pods others already took.
    objects.sort_by_key(|o| o.spec.fallback);
    let mut taken: HashSet<&str> = HashSet::new();
    for object in objects {
        let name = object.metadata.name.clone().unwrap_or_default();
        // Upstream writes a zeroed status for an object whose spec does not parse.
        let stats = &mut out.spiffe_id_status.entry(name.clone()).or_default().stats;
        *stats = ClusterSPIFFEIDStats::default();
        let spec = match ParsedSpec::parse(object) {
            Ok(spec) => spec,
            Err(e) => {
                out.problems.push(format!("ClusterSPIFFEID {name:?}: {e}"));
                continue;
            }
        };
        for namespace in snapshot.namespaces.iter() {
            let labels = namespace.metadata.labels.as_ref();
            if !spec
                .namespace_selector
                .as_ref()
                .is_none_or(|s| s.matches(labels))
            {
                continue;
            }
            stats.namespaces_selected += 1;
            let ns = namespace.metadata.name.as_deref().unwrap_or_default();
            if config.ignore_namespaces.iter().any(|r| r.is_match(ns)) {
                stats.namespaces_ignored += 1;
                continue;
            }
            for pod in snapshot.pods.iter() {
                if pod.metadata.namespace.as_deref() != Some(ns)
                    || !spec
                        .pod_selector
                        .as_ref()
                        .is_none_or(|s| s.matches(pod.metadata.labels.as_ref()))
                {
                    continue;
                }
                stats.pods_selected += 1;
                let uid = pod.metadata.uid.as_deref().unwrap_or_default();
                if object.spec.fallback && taken.contains(uid) {
                    continue;
                }
                match pod_entry(
                    config,
                    &spec,
                    pod,
                    &nodes,
                    &snapshot.endpoints,
                    trust_domain,
                    templates,
                ) {
                    Ok(entry) => {
                        out.entries.push(Declared {
                            entry,
                            owner: Owner::ClusterSPIFFEID(name.clone()),
                            order: OwnerOrder::of(&object.metadata),
                        });
                        if !object.spec.fallback {
                            taken.insert(uid);
                        }
                    }
                    Err(e) => {
                        stats.pod_entry_render_failures += 1;
                        out.problems.push(format!(
                            "ClusterSPIFFEID {name:?}, pod {ns}/{}: {e}",
                            pod.metadata.name.as_deref().unwrap_or_default()
                        ));
                    }
                }
            }
        }
    }
}

/// A ClusterSPIFFEID's spec, checked as upstream's `ParseClusterSPIFFEIDSpec`.
struct ParsedSpec<'a> {
    spec: &'a crate::crd::ClusterSPIFFEIDSpec,
    namespace_selector: Option<Selector>,
    pod_selector: Option<Selector>,
    x509_svid_ttl: i32,
    jwt_svid_ttl: i32,
    federates_with: Vec<String>,
}

impl<'a> ParsedSpec<'a> {
    fn parse(object: &'a ClusterSPIFFEID) -> Result<Self, String> {
        let spec = &object.spec;
        if spec.spiffe_id_template.is_empty() {
            return Err("empty SPIFFEID template".into());
        }
        let federates_with = spec
            .federates_with
            .iter()
            .map(|td| {
                TrustDomain::new(td)
                    .map(|td| td.name().to_owned())
                    .map_err(|e| format!("invalid federatesWith value {td:?}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(ParsedSpec {
            spec,
            namespace_selector: spec
                .namespace_selector
                .as_ref()
                .map(Selector::parse)
                .transpose()
                .map_err(|e| format!("namespaceSelector: {e}"))?,
            pod_selector: spec
                .pod_selector
                .as_ref()
                .map(Selector::parse)
                .transpose()
                .map_err(|e| format!("podSelector: {e}"))?,
            x509_svid_ttl: seconds(spec.ttl.as_ref(), "ttl")?,
            jwt_svid_ttl: seconds(spec.jwt_ttl.as_ref(), "jwtTtl")?,
            federates_with,
        })
    }
}

fn seconds(duration: Option<&kube::core::Duration>, field: &str) -> Result<i32, String> {
    let Some(duration) = duration else {
        return Ok(0);
    };
    if duration.is_negative() {
        return Err(format!("{field} {duration} is negative"));
    }
    i32::try_from(std::time::Duration::from(*duration).as_secs())
        .map_err(|_| format!("{field} {duration} is too long"))
}

/// Upstream's `renderPodEntry`: the pod's UID selector under its node's agent.
fn pod_entry(
    config: &ControllerConfig,
    spec: &ParsedSpec<'_>,
    pod: &Pod,
    nodes: &BTreeMap<&str, &Node>,
    endpoints: &[Arc<Endpoints>],
    trust_domain: &TrustDomain,
    templates: &dyn Templates,
) -> Result<Entry, String> {
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default();
    let node = nodes
        .get(node_name)
        .ok_or_else(|| format!("node {node_name:?} not found in cache"))?;
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let mut data = TemplateData {
        trust_domain: trust_domain.clone(),
        input: RenderInput {
            cluster_name: config.cluster_name.clone(),
            cluster_domain: config.cluster_domain.clone(),
            pod_meta: render_meta(&ObjectMeta::default()),
            pod_spec: PodSpec {
                service_account_name: String::new(),
                node_name: String::new(),
                hostname: String::new(),
                subdomain: String::new(),
            },
            node_meta: render_meta(&node.metadata),
            node_spec: NodeSpec {
                pod_cidr: node
                    .spec
                    .as_ref()
                    .and_then(|s| s.pod_cidr.clone())
                    .unwrap_or_default(),
                provider_id: node
                    .spec
                    .as_ref()
                    .and_then(|s| s.provider_id.clone())
                    .unwrap_or_default(),
            },
        },
    };
    // As upstream, the parent ID sees the node only.
    let parent_template = config
        .parent_id_template
        .as_deref()
        .unwrap_or(DEFAULT_PARENT_ID_TEMPLATE);
    let parent_id = templates
        .spiffe_id(parent_template, &data)
        .map_err(|e| format!("failed to render parent ID: {e}"))?;
    data.input.pod_meta = render_meta(&pod.metadata);
    let pod_spec = pod.spec.as_ref();
    let field = |f: fn(&k8s_openapi::api::core::v1::PodSpec) -> Option<&String>| {
        pod_spec.and_then(f).cloned().unwrap_or_default()
    };
    data.input.pod_spec = PodSpec {
        service_account_name: field(|s| s.service_account_name.as_ref()),
        node_name: field(|s| s.node_name.as_ref()),
        hostname: field(|s| s.hostname.as_ref()),
        subdomain: field(|s| s.subdomain.as_ref()),
    };
    let spiffe_id = templates
        .spiffe_id(&spec.spec.spiffe_id_template, &data)
        .map_err(|e| format!("failed to render SPIFFE ID: {e}"))?;
    let mut dns_names: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    for template in &spec.spec.dns_name_templates {
        let name = templates
            .text(template, &data)
            .map_err(|e| format!("failed to render DNS name: {e}"))?;
        if seen.insert(name.clone()) {
            dns_names.push(name);
        }
    }
    if spec.spec.auto_populate_dns_names {
        for name in endpoint_dns_names(endpoints, uid, &config.cluster_domain) {
            if seen.insert(name.clone()) {
                dns_names.push(name);
            }
        }
    }
    let mut selectors = vec![("k8s".to_owned(), format!("pod-uid:{uid}"))];
    for template in &spec.spec.workload_selector_templates {
        let rendered = templates
            .text(template, &data)
            .map_err(|e| format!("failed to render workload selector: {e}"))?;
        selectors.push(
            parse_selector(&rendered)
                .map_err(|e| format!("invalid workload selector {rendered:?}: {e}"))?,
        );
    }
    Ok(Entry {
        id: String::new(),
        spiffe_id: spiffe_id.to_string(),
        parent_id: parent_id.to_string(),
        selectors,
        x509_svid_ttl: spec.x509_svid_ttl,
        jwt_svid_ttl: spec.jwt_svid_ttl,
        federates_with: spec.federates_with.clone(),
        admin: spec.spec.admin,
        downstream: spec.spec.downstream,
        dns_names,
        hint: spec.spec.hint.clone(),
        store_svid: false,
    })
}

/// The service names of the Endpoints whose addresses (ready or not) point at the pod
/// `uid`: `name`, `name.ns`, `name.ns.svc` and, with a cluster domain, the full name; sorted.
fn endpoint_dns_names(
    endpoints: &[Arc<Endpoints>],
    uid: &str,
    cluster_domain: &str,
) -> Vec<String> {
    let mut names = Vec::new();
    for endpoint in endpoints {
        let targets_pod = endpoint.subsets.iter().flatten().any(|subset| {
            subset
                .addresses
                .iter()
                .flatten()
                .chain(subset.not_ready_addresses.iter().flatten())
                .any(|a| {
                    a.target_ref.as_ref().is_some_and(|r| {
                        r.kind.as_deref() == Some("Pod") && r.uid.as_deref() == Some(uid)
                    })
                })
        });
        if !targets_pod {
            continue;
        }
        let name = endpoint.metadata.name.as_deref().unwrap_or_default();
        let ns = endpoint.metadata.namespace.as_deref().unwrap_or_default();
        names.push(name.to_owned());
        names.push(format!("{name}.{ns}"));
        names.push(format!("{name}.{ns}.svc"));
        if !cluster_domain.is_empty() {
            names.push(format!("{name}.{ns}.svc.{cluster_domain}"));
        }
    }
    names.sort();
    names
}

fn render_meta(meta: &ObjectMeta) -> RenderMeta {
    let pairs = |m: Option<&BTreeMap<String, String>>| {
        m.into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    RenderMeta {
        name: meta.name.clone().unwrap_or_default(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        labels: pairs(meta.labels.as_ref()),
        annotations: pairs(meta.annotations.as_ref()),
    }
}

/// `type:value`, split at the first colon; both parts non-empty.
pub fn parse_selector(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        None => Err("expected at least one colon separate the type from the value".into()),
        Some(("", _)) => Err("type cannot be empty".into()),
        Some((_, "")) => Err("value cannot be empty".into()),
        Some((t, v)) => Ok((t.to_owned(), v.to_owned())),
    }
}

/// Upstream's `renderStaticEntry`.
fn static_entry(object: &ClusterStaticEntry) -> Result<Entry, String> {
    let spec = &object.spec;
    let spiffe_id: SpiffeId = spec
        .spiffe_id
        .parse()
        .map_err(|e| format!("failed to parse SPIFFEID {:?}: {e}", spec.spiffe_id))?;
    let parent_id: SpiffeId = spec
        .parent_id
        .parse()
        .map_err(|e| format!("failed to parse ParentID {:?}: {e}", spec.parent_id))?;
    let selectors = spec
        .selectors
        .iter()
        .map(|s| parse_selector(s).map_err(|e| format!("failed to parse selector {s:?}: {e}")))
        .collect::<Result<_, _>>()?;
    let federates_with = spec
        .federates_with
        .iter()
        .map(|td| {
            TrustDomain::new(td)
                .map(|td| td.name().to_owned())
                .map_err(|e| format!("invalid federatesWith value {td:?}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    Ok(Entry {
        id: String::new(),
        spiffe_id: spiffe_id.to_string(),
        parent_id: parent_id.to_string(),
        selectors,
        x509_svid_ttl: seconds(spec.x509_svid_ttl.as_ref(), "x509SVIDTTL")?,
        jwt_svid_ttl: seconds(spec.jwt_svid_ttl.as_ref(), "jwtSVIDTTL")?,
        federates_with,
        admin: spec.admin,
        downstream: spec.downstream,
        dns_names: spec.dns_names.clone(),
        hint: spec.hint.clone(),
        store_svid: spec.store_svid,
    })
}

/// What to do on the server.
#[derive(Debug, Default)]
pub struct Plan {
    /// Entries to create, with who declared them.
    pub create: Vec<(Entry, Owner)>,
    /// Entries to update (their ID set), with who declared them.
    pub update: Vec<(Entry, Owner)>,
    /// Entries to delete.
    pub delete: Vec<Entry>,
}

/// Whether the controller processes an existing entry, and whether it only deletes it
/// (upstream's `shouldProcessOrDeleteEntryID`). Without a prefix every entry is the
/// controller's, as upstream.
pub fn ownership(config: &ControllerConfig, id: &str) -> (bool, bool) {
    let prefix = &config.entry_id_prefix;
    if prefix.is_empty() || id.starts_with(prefix.as_str()) {
        return (true, false);
    }
    match config.entry_id_prefix_cleanup.as_deref() {
        Some("") => (false, !id.contains('.')),
        Some(cleanup) => (false, id.starts_with(cleanup)),
        None => (false, false),
    }
}

/// Diff `declaration` against the server's `current` entries. Stats of `declaration`
/// (entries to set, masked) are filled in. `new_id` makes IDs of created entries when
/// `entryIDPrefix` is set (the prefix is added here).
pub fn plan(
    config: &ControllerConfig,
    current: Vec<Entry>,
    declaration: &mut Declaration,
    mut new_id: impl FnMut() -> String,
) -> Plan {
    type Key = (String, String, Vec<(String, String)>);
    let mut state: BTreeMap<Key, (Vec<Entry>, Vec<Declared>)> = BTreeMap::new();
    let mut out = Plan::default();
    for entry in current {
        match ownership(config, &entry.id) {
            (true, _) => state.entry(entry.key()).or_default().0.push(entry),
            (false, true) => out.delete.push(entry),
            (false, false) => {}
        }
    }
    for declared in declaration.entries.drain(..) {
        state
            .entry(declared.entry.key())
            .or_default()
            .1
            .push(declared);
    }
    for (_, (mut current, mut declared)) in state {
        declared.sort_by(|a, b| a.order.cmp(&b.order));
        let mut declared = declared.into_iter();
        if let Some(mut preferred) = declared.next() {
            count(&mut declaration.spiffe_id_status, &preferred.owner, |s| {
                s.entries_to_set += 1
            });
            for other in declared {
                count(&mut declaration.spiffe_id_status, &other.owner, |s| {
                    s.entries_masked += 1
                });
                if let Owner::ClusterStaticEntry(name) = &other.owner {
                    declaration
                        .static_status
                        .entry(name.clone())
                        .or_default()
                        .masked = true;
                }
            }
            if current.is_empty() {
                if !config.entry_id_prefix.is_empty() {
                    preferred.entry.id = format!("{}{}", config.entry_id_prefix, new_id());
                }
                out.create.push((preferred.entry, preferred.owner));
            } else {
                let existing = current.remove(0);
                preferred.entry.id = existing.id.clone();
                if !preferred.entry.outdated_fields(&existing).is_empty() {
                    out.update.push((preferred.entry, preferred.owner));
                }
            }
        }
        out.delete
            .extend(current.into_iter().filter(|e| !e.is_join_token_entry()));
    }
    out
}

fn count(
    status: &mut BTreeMap<String, ClusterSPIFFEIDStatus>,
    owner: &Owner,
    f: impl FnOnce(&mut ClusterSPIFFEIDStats),
) {
    if let Owner::ClusterSPIFFEID(name) = owner {
        f(&mut status.entry(name.clone()).or_default().stats);
    }
}

/// Record a failed create or update of `owner`'s entry in the next statuses.
pub fn record_failure(declaration: &mut Declaration, owner: &Owner) {
    count(&mut declaration.spiffe_id_status, owner, |s| {
        s.entry_failures += 1
    });
}

/// Record a successful create of `owner`'s entry (a static entry is then `set`, as
/// upstream).
pub fn record_created(declaration: &mut Declaration, owner: &Owner) {
    if let Owner::ClusterStaticEntry(name) = owner {
        declaration
            .static_status
            .entry(name.clone())
            .or_default()
            .set = true;
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
