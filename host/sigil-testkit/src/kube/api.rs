//! The API server stand-in: TokenReview, ConfigMap apply, and get, list and watch of pods,
//! nodes, namespaces, endpoints and spire-controller-manager's three cluster-scoped
//! resources (with the `/status` subresource). Objects are kept as JSON.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewStatus, UserInfo};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusDetails};
use serde_json::Value;

use crate::https::{Request, Response, TestServer, TestTls};

/// The audience the API server gives tokens reviewed without one (a real API server uses
/// its `--api-audiences`, by default its issuer).
const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// A projected service-account token the stand-in will vouch for: the identity a
/// TokenReview reports for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountToken {
    /// The service account's namespace.
    pub namespace: String,
    /// The service account's name.
    pub service_account: String,
    /// The pod the token is bound to (the `authentication.kubernetes.io/pod-name` extra).
    pub pod_name: String,
    /// That pod's UID (the `authentication.kubernetes.io/pod-uid` extra).
    pub pod_uid: String,
    /// The token's audiences (`aud`).
    pub audiences: Vec<String>,
}

/// The API server stand-in, over HTTPS on loopback. Clients authenticate with
/// [`client_token`](Self::client_token); anything else is 401.
#[derive(Debug, Clone)]
pub struct ApiServer {
    server: TestServer,
    tls: TestTls,
    client_token: String,
    state: Arc<Mutex<State>>,
}

/// A kind the stand-in lists and watches: its plural, API prefix, scope and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kind {
    plural: &'static str,
    /// `api/v1` or `apis/<group>/<version>`.
    prefix: &'static str,
    api_version: &'static str,
    kind: &'static str,
    namespaced: bool,
}

const KINDS: &[Kind] = &[
    Kind {
        plural: "pods",
        prefix: "api/v1",
        api_version: "v1",
        kind: "Pod",
        namespaced: true,
    },
    Kind {
        plural: "nodes",
        prefix: "api/v1",
        api_version: "v1",
        kind: "Node",
        namespaced: false,
    },
    Kind {
        plural: "namespaces",
        prefix: "api/v1",
        api_version: "v1",
        kind: "Namespace",
        namespaced: false,
    },
    Kind {
        plural: "endpoints",
        prefix: "api/v1",
        api_version: "v1",
        kind: "Endpoints",
        namespaced: true,
    },
    Kind {
        plural: "clusterspiffeids",
        prefix: "apis/spire.spiffe.io/v1alpha1",
        api_version: "spire.spiffe.io/v1alpha1",
        kind: "ClusterSPIFFEID",
        namespaced: false,
    },
    Kind {
        plural: "clusterstaticentries",
        prefix: "apis/spire.spiffe.io/v1alpha1",
        api_version: "spire.spiffe.io/v1alpha1",
        kind: "ClusterStaticEntry",
        namespaced: false,
    },
    Kind {
        plural: "clusterfederatedtrustdomains",
        prefix: "apis/spire.spiffe.io/v1alpha1",
        api_version: "spire.spiffe.io/v1alpha1",
        kind: "ClusterFederatedTrustDomain",
        namespaced: false,
    },
];

fn kind_of(plural: &str) -> Option<Kind> {
    KINDS.iter().copied().find(|k| k.plural == plural)
}

/// Watch events kept for watches resuming at an older resourceVersion; older ones are
/// dropped, and a watch from before them gets 410 Gone, as from a real API server.
const MAX_EVENTS: usize = 4096;

/// Longest a watch stays open (kube-rs asks for 290 s).
const MAX_WATCH: Duration = Duration::from_secs(300);

/// One change, as a watch sends it.
#[derive(Debug)]
struct Event {
    version: u64,
    plural: &'static str,
    namespace: String,
    /// The JSON line sent: `{"type":…,"object":…}` and a newline.
    line: Vec<u8>,
}

/// An open watch.
#[derive(Debug)]
struct Watch {
    plural: &'static str,
    namespace: Option<String>,
    sender: Sender<Vec<u8>>,
}

#[derive(Debug, Default)]
struct State {
    tokens: HashMap<String, ServiceAccountToken>,
    /// Objects by plural, then `(namespace, name)` (namespace empty when cluster-scoped).
    objects: BTreeMap<&'static str, BTreeMap<(String, String), Value>>,
    events: VecDeque<Event>,
    /// The newest resourceVersion dropped from `events`.
    events_dropped_through: u64,
    watches: Vec<Watch>,
    config_maps: BTreeMap<(String, String), ConfigMap>,
    /// When set, TokenReview answers this status code with a `Status` body.
    review_failure: Option<u16>,
    /// When set, ConfigMap writes answer this status code.
    config_map_failure: Option<u16>,
    /// The last resourceVersion handed out.
    resource_version: u64,
}

impl ApiServer {
    /// Start a stand-in with no objects.
    pub fn start() -> Self {
        let tls = TestTls::new();
        let client_token = random_token();
        let state = Arc::new(Mutex::new(State::default()));
        let handler_state = state.clone();
        let expected = format!("Bearer {client_token}");
        let server = TestServer::tls(
            &tls,
            Arc::new(move |request: &Request| {
                if request.header("authorization") != Some(expected.as_str()) {
                    return status(401, "Unauthorized", "Unauthorized", None);
                }
                let mut state = handler_state.lock().unwrap_or_else(PoisonError::into_inner);
                route(&mut state, request)
            }),
        );
        ApiServer {
            server,
            tls,
            client_token,
            state,
        }
    }

    /// The server's URL, `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.server.url("")
    }

    /// The CA certificate that signed the server's certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.tls.ca_pem
    }

    /// The bearer token clients must present.
    pub fn client_token(&self) -> &str {
        &self.client_token
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.server.requests()
    }

    /// Issue a token the TokenReview API will vouch for as `identity`.
    pub fn issue_token(&self, identity: ServiceAccountToken) -> String {
        let token = random_token();
        self.lock().tokens.insert(token.clone(), identity);
        token
    }

    /// Store (or replace) a pod; watches see it added or modified.
    pub fn put_pod(&self, pod: Pod) {
        self.put("pods", serde_json::to_value(pod).expect("serialize a pod"));
    }

    /// Remove a pod; watches see it deleted.
    pub fn delete_pod(&self, namespace: &str, name: &str) {
        self.delete("pods", namespace, name);
    }

    /// Store (or replace) a node.
    pub fn put_node(&self, node: Node) {
        self.put(
            "nodes",
            serde_json::to_value(node).expect("serialize a node"),
        );
    }

    /// Remove a node.
    pub fn delete_node(&self, name: &str) {
        self.delete("nodes", "", name);
    }

    /// Store (or replace) a namespace.
    pub fn put_namespace(&self, namespace: Namespace) {
        self.put(
            "namespaces",
            serde_json::to_value(namespace).expect("serialize a namespace"),
        );
    }

    /// Store (or replace) an object of the kind `plural` (`pods`, `nodes`, `namespaces`,
    /// `endpoints`, `clusterspiffeids`, `clusterstaticentries`,
    /// `clusterfederatedtrustdomains`), as JSON. Its `apiVersion`, `kind`, `uid`,
    /// `creationTimestamp` (when missing) and `resourceVersion` are set as the API
    /// server sets them. Panics on an unknown kind or an object without a name: test input.
    pub fn put(&self, plural: &str, mut object: Value) {
        let kind = kind_of(plural).unwrap_or_else(|| panic!("the stand-in has no kind {plural}"));
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("a {plural} object without metadata.name"))
            .to_owned();
        let namespace = if kind.namespaced {
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_else(|| panic!("a {plural} object without metadata.namespace"))
                .to_owned()
        } else {
            String::new()
        };
        let mut state = self.lock();
        let key = (namespace.clone(), name);
        let previous = state
            .objects
            .get(kind.plural)
            .and_then(|objects| objects.get(&key))
            .cloned();
        object["apiVersion"] = kind.api_version.into();
        object["kind"] = kind.kind.into();
        let meta = &mut object["metadata"];
        if meta.get("uid").and_then(Value::as_str).is_none() {
            meta["uid"] = previous.as_ref().map_or_else(
                || uuid::Uuid::new_v4().to_string().into(),
                |p| p["metadata"]["uid"].clone(),
            );
        }
        if meta
            .get("creationTimestamp")
            .and_then(Value::as_str)
            .is_none()
        {
            meta["creationTimestamp"] = previous.as_ref().map_or_else(
                || rfc3339_now().into(),
                |p| p["metadata"]["creationTimestamp"].clone(),
            );
        }
        let change = if previous.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        state.record(kind.plural, &namespace, change, object);
    }

    /// Remove the object `namespace`/`name` of kind `plural` (namespace empty for a
    /// cluster-scoped kind); watches see it deleted.
    pub fn delete(&self, plural: &str, namespace: &str, name: &str) {
        let kind = kind_of(plural).unwrap_or_else(|| panic!("the stand-in has no kind {plural}"));
        let mut state = self.lock();
        let removed = state
            .objects
            .get_mut(kind.plural)
            .and_then(|objects| objects.remove(&(namespace.to_owned(), name.to_owned())));
        if let Some(object) = removed {
            state.record(kind.plural, namespace, "DELETED", object);
        }
    }

    /// The object `namespace`/`name` of kind `plural`, as stored.
    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(plural)
            .and_then(|objects| objects.get(&(namespace.to_owned(), name.to_owned())))
            .cloned()
    }

    /// The ConfigMap `namespace`/`name`, if one was applied.
    pub fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        self.lock()
            .config_maps
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Make ConfigMap writes fail with `code` (`None`: work again).
    pub fn fail_config_map_writes(&self, code: Option<u16>) {
        self.lock().config_map_failure = code;
    }

    /// Make TokenReview fail with `code` (`None`: work again).
    pub fn fail_token_reviews(&self, code: Option<u16>) {
        self.lock().review_failure = code;
    }

    /// Write a kubeconfig for this server into `dir` (the CA inline, the client token as
    /// `token`), as `kubectl config view --raw` shows one; its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let ca = base64::engine::general_purpose::STANDARD.encode(self.tls.ca_pem.as_bytes());
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    \
             server: {url}\n    certificate-authority-data: {ca}\ncontexts:\n- name: standin\n  \
             context:\n    cluster: standin\n    user: sigil\ncurrent-context: standin\nusers:\n\
             - name: sigil\n  user:\n    token: {token}\n",
            url = self.url(),
            token = self.client_token,
        );
        let path = dir.join("kubeconfig");
        std::fs::write(&path, text).expect("write the kubeconfig");
        path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn route(state: &mut State, request: &Request) -> Response {
    let path = request.path();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("POST", ["apis", "authentication.k8s.io", "v1", "tokenreviews"]) => {
            token_review(state, &request.body)
        }
        ("PATCH", ["api", "v1", "namespaces", namespace, "configmaps", name]) => {
            apply_config_map(state, request, namespace, name)
        }
        ("GET", ["api", "v1", "namespaces", namespace, "configmaps", name]) => {
            match state
                .config_maps
                .get(&((*namespace).to_owned(), (*name).to_owned()))
            {
                Some(map) => json(200, map),
                None => not_found("configmaps", name),
            }
        }
        _ => match resource_path(&segments) {
            Some(target) => objects(state, request, target),
            None => status(
                404,
                "NotFound",
                &format!("the server could not find the requested resource ({path})"),
                None,
            ),
        },
    }
}

/// What a path names among the listed kinds.
#[derive(Debug)]
struct Target<'a> {
    kind: Kind,
    /// The namespace of the path (`/namespaces/<ns>/…`), if any.
    namespace: Option<&'a str>,
    name: Option<&'a str>,
    status: bool,
}

fn resource_path<'a>(segments: &[&'a str]) -> Option<Target<'a>> {
    let (prefix, rest) = match segments {
        ["api", "v1", rest @ ..] => ("api/v1", rest),
        ["apis", "spire.spiffe.io", "v1alpha1", rest @ ..] => {
            ("apis/spire.spiffe.io/v1alpha1", rest)
        }
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, rest @ ..] => (Some(*ns), {
            let mut v = vec![*plural];
            v.extend_from_slice(rest);
            v
        }),
        other => (None, other.to_vec()),
    };
    let kind = kind_of(rest.first()?).filter(|k| k.prefix == prefix)?;
    if namespace.is_some() && !kind.namespaced {
        return None;
    }
    match rest.as_slice() {
        [_] => Some(Target {
            kind,
            namespace,
            name: None,
            status: false,
        }),
        [_, name] => Some(Target {
            kind,
            namespace,
            name: Some(*name),
            status: false,
        }),
        [_, name, "status"] => Some(Target {
            kind,
            namespace,
            name: Some(*name),
            status: true,
        }),
        _ => None,
    }
}

/// GET (one, list or watch), and PUT or PATCH of the status subresource.
fn objects(state: &mut State, request: &Request, target: Target<'_>) -> Response {
    let kind = target.kind;
    let key = |name: &str| {
        (
            target.namespace.unwrap_or_default().to_owned(),
            name.to_owned(),
        )
    };
    match (request.method.as_str(), target.name, target.status) {
        ("GET", None, _) if matches!(request.query("watch"), Some("true" | "1")) => {
            watch(state, request, kind, target.namespace)
        }
        ("GET", None, _) => {
            let items: Vec<Value> = state
                .objects
                .get(kind.plural)
                .into_iter()
                .flat_map(|objects| objects.iter())
                .filter(|((ns, _), _)| target.namespace.is_none_or(|want| want == ns))
                .map(|(_, object)| object.clone())
                .collect();
            json(
                200,
                &serde_json::json!({
                    "apiVersion": kind.api_version,
                    "kind": format!("{}List", kind.kind),
                    "metadata": {"resourceVersion": state.resource_version.to_string()},
                    "items": items,
                }),
            )
        }
        ("GET", Some(name), false) => match state
            .objects
            .get(kind.plural)
            .and_then(|o| o.get(&key(name)))
        {
            Some(object) => json(200, object),
            None => not_found(kind.plural, name),
        },
        ("PUT" | "PATCH", Some(name), true) => write_status(state, request, kind, key(name)),
        _ => status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            None,
        ),
    }
}

/// The status subresource: PUT of the whole object (its `resourceVersion`, when given,
/// must be current) or a merge patch; only `status` changes either way.
fn write_status(
    state: &mut State,
    request: &Request,
    kind: Kind,
    key: (String, String),
) -> Response {
    let Some(mut object) = state
        .objects
        .get(kind.plural)
        .and_then(|o| o.get(&key))
        .cloned()
    else {
        return not_found(kind.plural, &key.1);
    };
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
        return status(400, "BadRequest", "the body is not JSON", None);
    };
    if request.method == "PUT" {
        let sent = body["metadata"]["resourceVersion"].as_str();
        if sent.is_some_and(|v| Some(v) != object["metadata"]["resourceVersion"].as_str()) {
            return status(
                409,
                "Conflict",
                "the object has been modified; please apply your changes to the latest version and try again",
                None,
            );
        }
        object["status"] = body["status"].clone();
    } else {
        if request.header("content-type") != Some("application/merge-patch+json") {
            return status(
                415,
                "UnsupportedMediaType",
                "the stand-in takes merge patches only",
                None,
            );
        }
        merge_patch(&mut object["status"], &body["status"]);
    }
    let namespace = key.0.clone();
    state.record(kind.plural, &namespace, "MODIFIED", object.clone());
    let stored = state
        .objects
        .get(kind.plural)
        .and_then(|o| o.get(&key))
        .cloned();
    json(200, &stored.unwrap_or(object))
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(existing) = target {
        for (name, value) in fields {
            if value.is_null() {
                existing.remove(name);
            } else {
                merge_patch(existing.entry(name.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// `?watch=true`: the events after `resourceVersion` (or, without one, every object as
/// added), then each change as it happens, one JSON object a line.
fn watch(state: &mut State, request: &Request, kind: Kind, namespace: Option<&str>) -> Response {
    let (sender, receiver) = channel();
    let from = request
        .query("resourceVersion")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| *v > 0);
    let applies =
        |plural: &str, ns: &str| plural == kind.plural && namespace.is_none_or(|want| want == ns);
    match from {
        Some(version) if version < state.events_dropped_through => {
            let gone = serde_json::json!({
                "type": "ERROR",
                "object": {
                    "kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": format!("too old resource version: {version} ({})", state.events_dropped_through),
                    "reason": "Expired", "code": 410,
                },
            });
            let _ = sender.send(line(&gone));
            // The sender drops here: the stream ends after the error, as the API server's.
            return Response::streaming(200, receiver, MAX_WATCH);
        }
        Some(version) => {
            for event in state
                .events
                .iter()
                .filter(|e| e.version > version && applies(e.plural, &e.namespace))
            {
                let _ = sender.send(event.line.clone());
            }
        }
        None => {
            for ((ns, _), object) in state.objects.get(kind.plural).into_iter().flatten() {
                if applies(kind.plural, ns) {
                    let _ = sender.send(line(
                        &serde_json::json!({"type": "ADDED", "object": object}),
                    ));
                }
            }
        }
    }
    let limit = request
        .query("timeoutSeconds")
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(MAX_WATCH, |s| Duration::from_secs(s).min(MAX_WATCH));
    state.watches.push(Watch {
        plural: kind.plural,
        namespace: namespace.map(str::to_owned),
        sender,
    });
    Response::streaming(200, receiver, limit)
}

fn line(value: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec(value).expect("serialize an event");
    out.push(b'\n');
    out
}

fn rfc3339_now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl State {
    /// Store `object` under a new resourceVersion (or drop it, for `DELETED`), keep the
    /// event, and send it to the open watches it applies to.
    fn record(&mut self, plural: &'static str, namespace: &str, change: &str, mut object: Value) {
        self.resource_version += 1;
        let version = self.resource_version;
        object["metadata"]["resourceVersion"] = version.to_string().into();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let objects = self.objects.entry(plural).or_default();
        if change == "DELETED" {
            objects.remove(&(namespace.to_owned(), name));
        } else {
            objects.insert((namespace.to_owned(), name), object.clone());
        }
        let event = Event {
            version,
            plural,
            namespace: namespace.to_owned(),
            line: line(&serde_json::json!({"type": change, "object": object})),
        };
        self.watches.retain(|w| {
            w.plural != plural
                || w.namespace.as_deref().is_some_and(|want| want != namespace)
                || w.sender.send(event.line.clone()).is_ok()
        });
        self.events.push_back(event);
        if self.events.len() > MAX_EVENTS
            && let Some(dropped) = self.events.pop_front()
        {
            self.events_dropped_through = dropped.version;
        }
    }
}

/// Server-side apply of a ConfigMap (`PATCH` with `application/apply-patch+yaml` and a
/// `fieldManager`): created when missing, the applied `data` keys set, others kept. (A
/// real API server tracks field ownership; one manager is all the tests use.)
fn apply_config_map(state: &mut State, request: &Request, namespace: &str, name: &str) -> Response {
    if let Some(code) = state.config_map_failure {
        return status(code, "InternalError", "the ConfigMap write failed", None);
    }
    if request.header("content-type") != Some("application/apply-patch+yaml") {
        return status(
            415,
            "UnsupportedMediaType",
            "the body of a PATCH must be one of the patch types",
            None,
        );
    }
    if request.query("fieldManager").is_none_or(str::is_empty) {
        return status(
            422,
            "Invalid",
            "fieldManager is required for apply requests",
            None,
        );
    }
    // JSON is YAML: every client here sends JSON.
    let Ok(applied) = serde_json::from_slice::<ConfigMap>(&request.body) else {
        return status(400, "BadRequest", "the body is not a ConfigMap", None);
    };
    if applied.metadata.name.as_deref() != Some(name)
        || applied
            .metadata
            .namespace
            .as_deref()
            .is_some_and(|n| n != namespace)
    {
        return status(
            400,
            "BadRequest",
            "the name or namespace does not match the path",
            None,
        );
    }
    state.resource_version += 1;
    let version = state.resource_version.to_string();
    let stored = state
        .config_maps
        .entry((namespace.to_owned(), name.to_owned()))
        .or_insert_with(|| ConfigMap {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                uid: Some(uuid::Uuid::new_v4().to_string()),
                ..Default::default()
            },
            ..ConfigMap::default()
        });
    stored
        .data
        .get_or_insert_with(BTreeMap::new)
        .extend(applied.data.unwrap_or_default());
    stored.metadata.resource_version = Some(version);
    json(200, &*stored)
}

/// `authentication.k8s.io/v1` TokenReview with the API server's semantics: an unknown
/// token, or one whose audiences do not meet the requested ones, is not authenticated
/// (answered 201 with an error in the status); the status lists the audiences matched.
fn token_review(state: &State, body: &[u8]) -> Response {
    if let Some(code) = state.review_failure {
        return status(
            code,
            "InternalError",
            "the token review backend failed",
            None,
        );
    }
    let Ok(mut review) = serde_json::from_slice::<TokenReview>(body) else {
        return status(400, "BadRequest", "the body is not a TokenReview", None);
    };
    let token = review.spec.token.clone();
    let wanted = review
        .spec
        .audiences
        .clone()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| vec![API_AUDIENCE.to_owned()]);
    review.status = Some(match state.tokens.get(&token) {
        None => refused("[invalid bearer token, service account token is not valid]"),
        Some(identity) => {
            let matched: Vec<String> = wanted
                .iter()
                .filter(|a| identity.audiences.contains(a))
                .cloned()
                .collect();
            if matched.is_empty() {
                refused(&format!(
                    "[invalid bearer token, token audiences {:?} is invalid for the target audiences {:?}]",
                    identity.audiences, wanted
                ))
            } else {
                authenticated(identity, matched)
            }
        }
    });
    json(201, &review)
}

fn refused(error: &str) -> TokenReviewStatus {
    TokenReviewStatus {
        authenticated: Some(false),
        error: Some(error.to_owned()),
        ..TokenReviewStatus::default()
    }
}

fn authenticated(identity: &ServiceAccountToken, audiences: Vec<String>) -> TokenReviewStatus {
    let extra = BTreeMap::from([
        (
            "authentication.kubernetes.io/pod-name".to_owned(),
            vec![identity.pod_name.clone()],
        ),
        (
            "authentication.kubernetes.io/pod-uid".to_owned(),
            vec![identity.pod_uid.clone()],
        ),
    ]);
    TokenReviewStatus {
        authenticated: Some(true),
        audiences: Some(audiences),
        error: None,
        user: Some(UserInfo {
            username: Some(format!(
                "system:serviceaccount:{}:{}",
                identity.namespace, identity.service_account
            )),
            uid: Some(uuid::Uuid::new_v4().to_string()),
            groups: Some(vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{}", identity.namespace),
                "system:authenticated".to_owned(),
            ]),
            extra: Some(extra),
        }),
    }
}

fn json<T: serde::Serialize>(code: u16, value: &T) -> Response {
    Response::json(code, serde_json::to_vec(value).expect("serialize"))
}

fn not_found(kind: &str, name: &str) -> Response {
    status(
        404,
        "NotFound",
        &format!("{kind} \"{name}\" not found"),
        Some(StatusDetails {
            kind: Some(kind.to_owned()),
            name: Some(name.to_owned()),
            ..StatusDetails::default()
        }),
    )
}

/// A `meta/v1` `Status` failure body, as the API server sends with every error.
fn status(code: u16, reason: &str, message: &str, details: Option<StatusDetails>) -> Response {
    json(
        code,
        &Status {
            code: Some(i32::from(code)),
            details,
            message: Some(message.to_owned()),
            reason: Some(reason.to_owned()),
            status: Some("Failure".to_owned()),
            ..Status::default()
        },
    )
}

fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}
