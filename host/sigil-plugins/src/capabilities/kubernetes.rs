//! `kubernetes` (the cluster's API server, server side), over HTTPS with bearer tokens
//! read from files at each call, so a rotated projected token is picked up. The kubelet
//! (`pod-lookup`) is in `kubelet.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use ureq::Agent;

use super::CapabilityError;
use super::http::{Request, agent, pem_roots, send};

/// Where the in-cluster service account's files are.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Largest API response read.
const MAX_RESPONSE: usize = 16 << 20;

/// Access to one cluster's API server.
#[derive(Clone)]
pub struct KubernetesAccess {
    api_server: String,
    token_file: PathBuf,
    agent: Agent,
    timeout: Duration,
}

/// A TokenReview's status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct TokenReview {
    pub(crate) authenticated: bool,
    pub(crate) username: String,
    pub(crate) uid: String,
    pub(crate) groups: Vec<String>,
    pub(crate) audiences: Vec<String>,
}

impl KubernetesAccess {
    /// The API server at `api_server` (an `https://` URL), trusted through the PEM CA
    /// certificates `ca_pem`, called with the bearer token in `token_file`.
    pub fn new(
        api_server: &str,
        ca_pem: &[u8],
        token_file: impl Into<PathBuf>,
        timeout: Duration,
    ) -> Result<Self, String> {
        if !api_server.starts_with("https://") {
            return Err(format!("the API server {api_server:?} is not an https URL"));
        }
        Ok(KubernetesAccess {
            api_server: api_server.trim_end_matches('/').to_owned(),
            token_file: token_file.into(),
            agent: agent(pem_roots(ca_pem)?, timeout),
            timeout,
        })
    }

    /// The cluster this process runs in: `KUBERNETES_SERVICE_HOST`/`_PORT` and the
    /// service account's CA certificate and token.
    pub fn in_cluster(timeout: Duration) -> Result<Self, String> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST")
            .map_err(|_| "KUBERNETES_SERVICE_HOST is not set: not running in a pod".to_owned())?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let dir = Path::new(SERVICE_ACCOUNT_DIR);
        let ca = std::fs::read(dir.join("ca.crt"))
            .map_err(|e| format!("cannot read {}/ca.crt: {e}", dir.display()))?;
        Self::new(
            &format!("https://{host}:{port}"),
            &ca,
            dir.join("token"),
            timeout,
        )
    }

    /// Ask the API server whether `token` is valid for `audiences`.
    pub(crate) fn review_token(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<TokenReview, CapabilityError> {
        let body = json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": { "token": token, "audiences": audiences },
        });
        let url = format!(
            "{}/apis/authentication.k8s.io/v1/tokenreviews",
            self.api_server
        );
        let review = self.call("POST", &url, body.to_string().into_bytes())?;
        let status = &review["status"];
        let strings = |value: &Value| -> Vec<String> {
            value
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
        Ok(TokenReview {
            authenticated: status["authenticated"].as_bool().unwrap_or(false),
            username: text(&status["user"]["username"]),
            uid: text(&status["user"]["uid"]),
            groups: strings(&status["user"]["groups"]),
            audiences: strings(&status["audiences"]),
        })
    }

    /// The pod `namespace`/`name`, as JSON.
    pub(crate) fn pod(&self, namespace: &str, name: &str) -> Result<String, CapabilityError> {
        check_name("namespace", namespace)?;
        check_name("pod name", name)?;
        let url = format!(
            "{}/api/v1/namespaces/{namespace}/pods/{name}",
            self.api_server
        );
        Ok(self.call("GET", &url, Vec::new())?.to_string())
    }

    /// The node `name`, as JSON.
    pub(crate) fn node(&self, name: &str) -> Result<String, CapabilityError> {
        check_name("node name", name)?;
        let url = format!("{}/api/v1/nodes/{name}", self.api_server);
        Ok(self.call("GET", &url, Vec::new())?.to_string())
    }

    fn call(&self, method: &str, url: &str, body: Vec<u8>) -> Result<Value, CapabilityError> {
        call_json(
            &self.agent,
            self.timeout,
            method,
            url,
            Some(&self.token_file),
            body,
        )
    }
}

impl std::fmt::Debug for KubernetesAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesAccess")
            .field("api_server", &self.api_server)
            .field("token_file", &self.token_file)
            .finish_non_exhaustive()
    }
}

/// Send a JSON request with the bearer token from `token_file`; 404 is `not-found`, any
/// other non-2xx status `unavailable` (401/403: `permission-denied`).
fn call_json(
    agent: &Agent,
    timeout: Duration,
    method: &str,
    url: &str,
    token_file: Option<&Path>,
    body: Vec<u8>,
) -> Result<Value, CapabilityError> {
    let mut headers = vec![
        ("Accept".to_owned(), "application/json".to_owned()),
        ("Content-Type".to_owned(), "application/json".to_owned()),
    ];
    if let Some(path) = token_file {
        let token = std::fs::read_to_string(path).map_err(|e| {
            CapabilityError::Unavailable(format!(
                "cannot read the token file {}: {e}",
                path.display()
            ))
        })?;
        headers.push((
            "Authorization".to_owned(),
            format!("Bearer {}", token.trim()),
        ));
    }
    let request = Request {
        method: method.to_owned(),
        url: url.to_owned(),
        headers,
        body,
    };
    let response = send(agent, request, MAX_RESPONSE, timeout)?;
    match response.status {
        200..=299 => serde_json::from_slice(&response.body).map_err(|e| {
            CapabilityError::Unavailable(format!("{url}: the answer is not JSON: {e}"))
        }),
        404 => Err(CapabilityError::NotFound(format!("{url}: not found"))),
        401 | 403 => Err(CapabilityError::Denied(format!(
            "{url}: the server refused our credentials (status {})",
            response.status
        ))),
        status => Err(CapabilityError::Unavailable(format!(
            "{url}: status {status}"
        ))),
    }
}

/// Refuse names that could change the request path (Kubernetes names are DNS labels or
/// subdomains).
fn check_name(what: &str, name: &str) -> Result<(), CapabilityError> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if valid {
        Ok(())
    } else {
        Err(CapabilityError::Invalid(format!(
            "{what} {name:?} is not a Kubernetes name"
        )))
    }
}
