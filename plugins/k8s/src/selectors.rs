//! SPIRE's `k8s` selector values from the kubelet's JSON of a pod and of the workload's
//! container status (`pkg/agent/plugin/workloadattestor/k8s/k8s.go`).

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;

/// The parts of a pod the selectors use.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Pod {
    metadata: ObjectMeta,
    spec: PodSpec,
    status: PodStatus,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ObjectMeta {
    name: String,
    namespace: String,
    uid: String,
    labels: BTreeMap<String, String>,
    #[serde(rename = "ownerReferences")]
    owner_references: Vec<OwnerReference>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OwnerReference {
    kind: String,
    name: String,
    uid: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PodSpec {
    #[serde(rename = "serviceAccountName")]
    service_account_name: String,
    #[serde(rename = "nodeName")]
    node_name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PodStatus {
    #[serde(rename = "containerStatuses")]
    container_statuses: Vec<ContainerStatus>,
    #[serde(rename = "initContainerStatuses")]
    init_container_statuses: Vec<ContainerStatus>,
}

/// The parts of a container status the selectors use.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ContainerStatus {
    name: String,
    image: String,
    #[serde(rename = "imageID")]
    image_id: String,
}

impl Pod {
    /// Parse the kubelet's JSON of one pod.
    pub fn from_json(json: &str) -> Result<Pod, String> {
        serde_json::from_str(json).map_err(|e| format!("the kubelet's pod JSON is malformed: {e}"))
    }
}

impl ContainerStatus {
    /// Parse the kubelet's JSON of one container status.
    pub fn from_json(json: &str) -> Result<ContainerStatus, String> {
        serde_json::from_str(json)
            .map_err(|e| format!("the kubelet's container status JSON is malformed: {e}"))
    }
}

/// The pod's selectors (SPIRE's `getSelectorValuesFromPodInfo`): `sa`, `ns`, `node-name`,
/// `pod-uid`, `pod-name`, `pod-image-count`, `pod-init-image-count`, `pod-image` and
/// `pod-init-image` (each status's image and image ID, duplicates once), `pod-label:<k>:<v>`,
/// `pod-owner:<Kind>:<name>` and `pod-owner-uid:<Kind>:<uid>`.
pub fn pod_selectors(pod: &Pod) -> Vec<String> {
    let meta = &pod.metadata;
    let status = &pod.status;
    let mut values = vec![
        format!("sa:{}", pod.spec.service_account_name),
        format!("ns:{}", meta.namespace),
        format!("node-name:{}", pod.spec.node_name),
        format!("pod-uid:{}", meta.uid),
        format!("pod-name:{}", meta.name),
        format!("pod-image-count:{}", status.container_statuses.len()),
        format!(
            "pod-init-image-count:{}",
            status.init_container_statuses.len()
        ),
    ];
    for image in images(&status.container_statuses) {
        values.push(format!("pod-image:{image}"));
    }
    for image in images(&status.init_container_statuses) {
        values.push(format!("pod-init-image:{image}"));
    }
    for (key, value) in &meta.labels {
        values.push(format!("pod-label:{key}:{value}"));
    }
    for owner in &meta.owner_references {
        values.push(format!("pod-owner:{}:{}", owner.kind, owner.name));
        values.push(format!("pod-owner-uid:{}:{}", owner.kind, owner.uid));
    }
    values
}

/// The workload container's selectors (SPIRE's
/// `getSelectorValuesFromWorkloadContainerStatus`): `container-name` and `container-image`
/// for its image and its image ID.
pub fn container_selectors(status: &ContainerStatus) -> Vec<String> {
    let mut values = vec![format!("container-name:{}", status.name)];
    for image in images(std::slice::from_ref(status)) {
        values.push(format!("container-image:{image}"));
    }
    values
}

/// The image and the image ID of every status, each once. Both, as SPIRE does: the image ID
/// pins a digest, the image (`repo:tag`) is known before the pull, so registrations can
/// use either. SPIRE keeps an empty image ID (a container not pulled yet) as a value too.
fn images(statuses: &[ContainerStatus]) -> BTreeSet<&str> {
    statuses
        .iter()
        .flat_map(|s| [s.image_id.as_str(), s.image.as_str()])
        .collect()
}
