//! The API server stand-in: TokenReview, pods and nodes.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewStatus, UserInfo};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusDetails};

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

#[derive(Debug, Default)]
struct State {
    tokens: HashMap<String, ServiceAccountToken>,
    pods: BTreeMap<(String, String), Pod>,
    nodes: BTreeMap<String, Node>,
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

    /// Store (or replace) a pod.
    pub fn put_pod(&self, pod: Pod) {
        let key = (
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        self.lock().pods.insert(key, pod);
    }

    /// Remove a pod.
    pub fn delete_pod(&self, namespace: &str, name: &str) {
        self.lock()
            .pods
            .remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// Store (or replace) a node.
    pub fn put_node(&self, node: Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        self.lock().nodes.insert(name, node);
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
        ("GET", ["api", "v1", "namespaces", namespace, "pods", name]) => {
            match state
                .pods
                .get(&((*namespace).to_owned(), (*name).to_owned()))
            {
                Some(pod) => json(200, pod),
                None => not_found("pods", name),
            }
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
        ("GET", ["api", "v1", "nodes", name]) => match state.nodes.get(*name) {
            Some(node) => json(200, node),
            None => not_found("nodes", name),
        },
        _ => status(
            404,
            "NotFound",
            &format!("the server could not find the requested resource ({path})"),
            None,
        ),
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
