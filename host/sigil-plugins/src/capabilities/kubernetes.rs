//! `kubernetes` (the clusters' API servers, server side), over HTTPS with bearer tokens
//! read from files at each call, so a rotated projected token is picked up, or with a
//! kubeconfig's token or client certificate. The kubelet (`pod-lookup`) is in `kubelet.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use kube::config::{AuthInfo, Kubeconfig};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use ureq::Agent;
use ureq::tls::{Certificate, ClientCert, PrivateKey, TlsConfig, TlsProvider};
use zeroize::Zeroizing;

use super::CapabilityError;
use super::http::{Request, agent, agent_with, aws_lc_provider, pem_roots, send_request};

/// Where the in-cluster service account's files are.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Largest API response read.
const MAX_RESPONSE: usize = 16 << 20;

/// Access to one cluster's API server.
#[derive(Clone)]
pub struct KubernetesAccess {
    api_server: String,
    token: Option<BearerToken>,
    agent: Agent,
    timeout: Duration,
}

/// Where a bearer token comes from.
#[derive(Clone)]
pub(crate) enum BearerToken {
    /// A file read at every call (a projected token rotates).
    File(PathBuf),
    /// A token given inline (a kubeconfig's `token`).
    Inline(std::sync::Arc<Zeroizing<String>>),
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BearerToken::File(path) => f.debug_tuple("File").field(path).finish(),
            BearerToken::Inline(_) => f.write_str("Inline(..)"),
        }
    }
}

/// A TokenReview's status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct TokenReview {
    pub(crate) authenticated: bool,
    pub(crate) error: String,
    pub(crate) username: String,
    pub(crate) uid: String,
    pub(crate) groups: Vec<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) extra: Vec<(String, Vec<String>)>,
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
            token: Some(BearerToken::File(token_file.into())),
            agent: agent(pem_roots(ca_pem)?, timeout),
            timeout,
        })
    }

    /// The cluster of the current context of the kubeconfig at `path` (SPIRE's
    /// `kube_config_file`): its server and CA, and its user's token, token file or client
    /// certificate. Exec and auth-provider plugins are refused: they would run programs
    /// from the server process.
    pub fn from_kubeconfig(path: &Path, timeout: Duration) -> Result<Self, String> {
        let shown = path.display();
        let config = Kubeconfig::read_from(path).map_err(|e| format!("kubeconfig {shown}: {e}"))?;
        let context_name = config
            .current_context
            .clone()
            .ok_or_else(|| format!("kubeconfig {shown}: no current-context"))?;
        let context = config
            .contexts
            .iter()
            .find(|c| c.name == context_name)
            .and_then(|c| c.context.clone())
            .ok_or_else(|| format!("kubeconfig {shown}: no context {context_name:?}"))?;
        let cluster = config
            .clusters
            .iter()
            .find(|c| c.name == context.cluster)
            .and_then(|c| c.cluster.clone())
            .ok_or_else(|| format!("kubeconfig {shown}: no cluster {:?}", context.cluster))?;
        let server = cluster.server.clone().ok_or_else(|| {
            format!(
                "kubeconfig {shown}: cluster {:?} has no server",
                context.cluster
            )
        })?;
        if !server.starts_with("https://") {
            return Err(format!(
                "kubeconfig {shown}: the server {server:?} is not an https URL"
            ));
        }
        if cluster.insecure_skip_tls_verify == Some(true) {
            return Err(format!(
                "kubeconfig {shown}: insecure-skip-tls-verify is refused: give the cluster's \
                 certificate-authority"
            ));
        }
        let ca_pem = match (
            &cluster.certificate_authority_data,
            &cluster.certificate_authority,
        ) {
            (Some(data), _) => base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|e| format!("kubeconfig {shown}: certificate-authority-data: {e}"))?,
            (None, Some(file)) => std::fs::read(file)
                .map_err(|e| format!("kubeconfig {shown}: certificate-authority {file}: {e}"))?,
            (None, None) => {
                return Err(format!(
                    "kubeconfig {shown}: cluster {:?} has no certificate-authority",
                    context.cluster
                ));
            }
        };
        let user = match &context.user {
            Some(name) => config
                .auth_infos
                .iter()
                .find(|u| &u.name == name)
                .and_then(|u| u.auth_info.clone())
                .ok_or_else(|| format!("kubeconfig {shown}: no user {name:?}"))?,
            None => AuthInfo::default(),
        };
        let (token, client_cert) =
            credentials(&user).map_err(|e| format!("kubeconfig {shown}: {e}"))?;
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(pem_roots(&ca_pem)?)
            .client_cert(client_cert)
            .unversioned_rustls_crypto_provider(aws_lc_provider())
            .build();
        Ok(KubernetesAccess {
            api_server: server.trim_end_matches('/').to_owned(),
            token,
            agent: agent_with(tls, timeout),
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
        let extra = status["user"]["extra"]
            .as_object()
            .map(|extra| {
                extra
                    .iter()
                    .map(|(key, values)| (key.clone(), strings(values)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(TokenReview {
            authenticated: status["authenticated"].as_bool().unwrap_or(false),
            error: text(&status["error"]),
            username: text(&status["user"]["username"]),
            uid: text(&status["user"]["uid"]),
            groups: strings(&status["user"]["groups"]),
            audiences: strings(&status["audiences"]),
            extra,
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

    /// Set `key` of the ConfigMap `namespace`/`name` to `value` by server-side apply
    /// (field manager `sigil-server`, forced, as SPIRE's k8s_configmap applies): the
    /// ConfigMap is created when missing and its other keys are left alone.
    pub(crate) fn apply_config_map(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), CapabilityError> {
        check_name("namespace", namespace)?;
        check_name("ConfigMap name", name)?;
        let valid_key = !key.is_empty()
            && key.len() <= 253
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid_key {
            return Err(CapabilityError::Invalid(format!(
                "{key:?} is not a ConfigMap key"
            )));
        }
        let body = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": name, "namespace": namespace },
            "data": { key: value },
        });
        let url = format!(
            "{}/api/v1/namespaces/{namespace}/configmaps/{name}?fieldManager=sigil-server&force=true",
            self.api_server
        );
        let mut headers = vec![(
            "Content-Type".to_owned(),
            "application/apply-patch+yaml".to_owned(),
        )];
        call_json_with(
            &self.agent,
            self.timeout,
            "PATCH",
            &url,
            self.token.as_ref(),
            body.to_string().into_bytes(),
            &mut headers,
        )
        .map(|_| ())
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
            self.token.as_ref(),
            body,
        )
    }
}

/// A kubeconfig user's bearer token and client certificate.
fn credentials(user: &AuthInfo) -> Result<(Option<BearerToken>, Option<ClientCert>), String> {
    if user.exec.is_some() || user.auth_provider.is_some() {
        return Err(
            "exec and auth-provider credentials are not supported: give the user a \
                    token, tokenFile or client certificate"
                .into(),
        );
    }
    if user.username.is_some() || user.password.is_some() {
        return Err("basic authentication is not supported".into());
    }
    let token = match (&user.token, &user.token_file) {
        (Some(token), _) => Some(BearerToken::Inline(std::sync::Arc::new(Zeroizing::new(
            token.expose_secret().trim().to_owned(),
        )))),
        (None, Some(file)) => Some(BearerToken::File(PathBuf::from(file))),
        (None, None) => None,
    };
    let cert_pem = match (&user.client_certificate_data, &user.client_certificate) {
        (Some(data), _) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|e| format!("client-certificate-data: {e}"))?,
        ),
        (None, Some(file)) => {
            Some(std::fs::read(file).map_err(|e| format!("client-certificate {file}: {e}"))?)
        }
        (None, None) => None,
    };
    let key_pem = match (&user.client_key_data, &user.client_key) {
        (Some(data), _) => Some(Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(data.expose_secret().trim())
                .map_err(|e| format!("client-key-data: {e}"))?,
        )),
        (None, Some(file)) => Some(Zeroizing::new(
            std::fs::read(file).map_err(|e| format!("client-key {file}: {e}"))?,
        )),
        (None, None) => None,
    };
    let client_cert = match (cert_pem, key_pem) {
        (Some(cert), Some(key)) => {
            let chain = ureq::tls::parse_pem(&cert)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect::<Vec<Certificate<'static>>>();
            if chain.is_empty() {
                return Err("the client certificate holds no PEM certificate".into());
            }
            let key = PrivateKey::from_pem(&key)
                .map_err(|e| format!("the client key is not a PEM private key: {e}"))?;
            Some(ClientCert::new_with_certs(&chain, key))
        }
        (None, None) => None,
        _ => return Err("a client certificate needs both a certificate and a key".into()),
    };
    if token.is_none() && client_cert.is_none() {
        return Err("the user has no token, tokenFile or client certificate".into());
    }
    Ok((token, client_cert))
}

impl std::fmt::Debug for KubernetesAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesAccess")
            .field("api_server", &self.api_server)
            .field("token", &self.token)
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
    token: Option<&BearerToken>,
    body: Vec<u8>,
) -> Result<Value, CapabilityError> {
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    call_json_with(agent, timeout, method, url, token, body, &mut headers)
}

/// [`call_json`] with the request's `headers` (its content type) given.
fn call_json_with(
    agent: &Agent,
    timeout: Duration,
    method: &str,
    url: &str,
    token: Option<&BearerToken>,
    body: Vec<u8>,
    headers: &mut Vec<(String, String)>,
) -> Result<Value, CapabilityError> {
    headers.push(("Accept".to_owned(), "application/json".to_owned()));
    match token {
        Some(BearerToken::File(path)) => {
            let token = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                CapabilityError::Unavailable(format!(
                    "cannot read the token file {}: {e}",
                    path.display()
                ))
            })?);
            headers.push((
                "Authorization".to_owned(),
                format!("Bearer {}", token.trim()),
            ));
        }
        Some(BearerToken::Inline(token)) => {
            headers.push((
                "Authorization".to_owned(),
                format!("Bearer {}", token.as_str()),
            ));
        }
        None => {}
    }
    let request = Request {
        method: method.to_owned(),
        url: url.to_owned(),
        headers: std::mem::take(headers),
        body,
    };
    let response = send_request(agent, request, MAX_RESPONSE, timeout)?;
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
