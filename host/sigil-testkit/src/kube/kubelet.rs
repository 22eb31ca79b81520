//! The kubelet stand-in: `GET /pods` over HTTPS with a bearer token, as the node's kubelet
//! answers the SPIFFE agent's `k8s` workload attestor.
//!
//! Test code, not a kubelet: it serves the pods a test put, as a `PodList` of k8s-openapi
//! `Pod` objects, and lets the test make a pod appear only after some requests, withhold a
//! pod's container statuses (a container still starting) and slow every answer down. It
//! counts the `/pods` requests, which is what the agent's pod-list sharing is about.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStatus, Pod, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, OwnerReference};
use serde_json::json;

use crate::https::{Request, Response, TestServer, TestTls};

/// The kubelet stand-in, over HTTPS on loopback with a certificate from a fresh test CA.
/// Clients authenticate with [`token`](Self::token); anything else is 401.
#[derive(Debug, Clone)]
pub struct Kubelet {
    server: TestServer,
    tls: TestTls,
    token: String,
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// Pods in the order they were put, by UID.
    pods: Vec<(String, Pod)>,
    /// Pods left out of the next so many `/pods` answers, by UID.
    hidden: HashMap<String, u32>,
    /// Pods whose container statuses are left out of the next so many answers, by UID.
    starting: HashMap<String, u32>,
    /// `GET /pods` requests, authorised or not.
    pod_lists: u64,
    /// How long each `/pods` answer takes.
    delay: Duration,
}

impl Kubelet {
    /// Start a stand-in with no pods.
    pub fn start() -> Self {
        let tls = TestTls::new();
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let state = Arc::new(Mutex::new(State::default()));
        let handler_state = state.clone();
        let expected = token.clone();
        let server = TestServer::tls(
            &tls,
            Arc::new(move |request: &Request| answer(&handler_state, &expected, request)),
        );
        Kubelet {
            server,
            tls,
            token,
            state,
        }
    }

    /// The kubelet's URL, `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.server.url("")
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The CA certificate that signed the kubelet's certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.tls.ca_pem
    }

    /// The bearer token clients must present.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.server.requests()
    }

    /// How many `GET /pods` requests were made so far.
    pub fn pod_list_requests(&self) -> u64 {
        self.lock().pod_lists
    }

    /// Put `pod` (replacing the pod with the same UID).
    pub fn put_pod(&self, pod: Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut state = self.lock();
        state.pods.retain(|(u, _)| *u != uid);
        state.pods.push((uid, pod));
    }

    /// Put `pod`, but leave it out of the next `requests` `/pods` answers: a pod the
    /// kubelet learns about only later.
    pub fn put_pod_after(&self, pod: Pod, requests: u32) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.put_pod(pod);
        self.lock().hidden.insert(uid, requests);
    }

    /// Remove the pod with `uid`.
    pub fn remove_pod(&self, uid: &str) {
        let mut state = self.lock();
        state.pods.retain(|(u, _)| u != uid);
        state.hidden.remove(uid);
        state.starting.remove(uid);
    }

    /// Leave the container statuses of pod `uid` out of the next `requests` answers: its
    /// containers are still being created.
    pub fn delay_container_statuses(&self, uid: &str, requests: u32) {
        self.lock().starting.insert(uid.to_owned(), requests);
    }

    /// Make every `/pods` answer take `delay` (a busy kubelet).
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn answer(state: &Mutex<State>, token: &str, request: &Request) -> Response {
    let is_pod_list = request.method == "GET" && request.path() == "/pods";
    let delay = {
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        if is_pod_list {
            state.pod_lists += 1;
        }
        state.delay
    };
    if request.bearer() != Some(token) {
        return Response::json(401, "Unauthorized");
    }
    if !is_pod_list {
        return Response::json(404, "404 page not found");
    }
    // Sleep outside the lock: concurrent requests are slow together, as on a busy kubelet.
    std::thread::sleep(delay);
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    let State {
        pods,
        hidden,
        starting,
        ..
    } = &mut *state;
    let mut items = Vec::new();
    for (uid, pod) in pods.iter() {
        if let Some(left) = hidden.get_mut(uid)
            && *left > 0
        {
            *left -= 1;
            continue;
        }
        let mut pod = pod.clone();
        if let Some(left) = starting.get_mut(uid)
            && *left > 0
        {
            *left -= 1;
            if let Some(status) = pod.status.as_mut() {
                status.container_statuses = None;
            }
        }
        items.push(pod);
    }
    let list = json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": ListMeta::default(),
        "items": items,
    });
    Response::json(200, list.to_string())
}

/// A running container's status as the kubelet reports it: `containerID` is
/// `<runtime>://<id>`, `imageID` the pulled digest.
pub fn container_status(
    name: &str,
    image: &str,
    image_id: &str,
    container_id: &str,
) -> ContainerStatus {
    ContainerStatus {
        name: name.to_owned(),
        image: image.to_owned(),
        image_id: image_id.to_owned(),
        container_id: Some(container_id.to_owned()),
        ready: true,
        started: Some(true),
        restart_count: 0,
        state: Some(ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..ContainerState::default()
        }),
        ..ContainerStatus::default()
    }
}

/// An owner reference (`ReplicaSet`, `StatefulSet`, …) of a pod.
pub fn owner(kind: &str, name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
        uid: uid.to_owned(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// `pod` with these container and init-container statuses.
pub fn with_statuses(
    mut pod: Pod,
    containers: Vec<ContainerStatus>,
    init_containers: Vec<ContainerStatus>,
) -> Pod {
    let status = pod.status.get_or_insert_with(PodStatus::default);
    status.container_statuses = Some(containers);
    status.init_container_statuses = Some(init_containers);
    pod
}
