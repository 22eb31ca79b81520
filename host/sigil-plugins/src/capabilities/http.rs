//! `http-client`: requests to allow-listed URLs, and the blocking HTTP agents every
//! HTTP-based capability shares (TLS by rustls on aws-lc-rs).

use std::io::Read;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ureq::Agent;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

use super::CapabilityError as FetchError;

/// A request as the plugin sent it.
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) url: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// A response as the plugin gets it.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// The agent for allow-listed requests to the public web (Mozilla's roots), built on
/// first use and shared by every call of every plugin.
#[derive(Clone, Default)]
pub(crate) struct HttpClients {
    public: Arc<OnceLock<Agent>>,
}

impl HttpClients {
    fn public(&self, timeout: Duration) -> &Agent {
        self.public
            .get_or_init(|| agent(RootCerts::WebPki, timeout))
    }

    /// Send `request` if its URL starts with one of `allow`.
    pub(crate) fn fetch(
        &self,
        allow: &[String],
        request: Request,
        timeout: Duration,
        max_body: usize,
    ) -> Result<Response, FetchError> {
        check_url(allow, &request.url)?;
        send(self.public(timeout), request, max_body, timeout)
    }
}

/// A blocking agent trusting `roots`.
pub(crate) fn agent(roots: RootCerts, timeout: Duration) -> Agent {
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(roots)
        .unversioned_rustls_crypto_provider(aws_lc_provider())
        .build();
    agent_with(tls, timeout)
}

/// rustls' aws-lc-rs provider: the one crypto stack (ureq would default to ring).
pub(crate) fn aws_lc_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A blocking agent with `tls`: no redirects, every status is a response, one overall
/// timeout per request.
pub(crate) fn agent_with(tls: TlsConfig, timeout: Duration) -> Agent {
    Agent::config_builder()
        .tls_config(tls)
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// Roots from PEM `CERTIFICATE` blocks.
pub(crate) fn pem_roots(pem_text: &[u8]) -> Result<RootCerts, String> {
    let certificates: Vec<Certificate<'static>> = pem::parse_many(pem_text)
        .map_err(|_| "the CA file is not PEM".to_owned())?
        .into_iter()
        .filter(|block| block.tag() == "CERTIFICATE")
        .map(|block| Certificate::from_der(block.contents()).to_owned())
        .collect();
    if certificates.is_empty() {
        return Err("the CA file holds no certificate".into());
    }
    Ok(RootCerts::Specific(Arc::new(certificates)))
}

/// Send a plugin's `request` with `agent`, giving up after `timeout`; the body is cut at
/// `max_body` bytes. Plugins may use `GET`, `POST`, `PUT` and `DELETE`.
pub(crate) fn send(
    agent: &Agent,
    request: Request,
    max_body: usize,
    timeout: Duration,
) -> Result<Response, FetchError> {
    match request.method.as_str() {
        "GET" | "POST" | "PUT" | "DELETE" => send_request(agent, request, max_body, timeout),
        other => Err(FetchError::Denied(format!(
            "method {other:?} is not allowed"
        ))),
    }
}

/// [`send`] for requests the host makes itself (the Kubernetes API's `PATCH`), any method.
pub(crate) fn send_request(
    agent: &Agent,
    request: Request,
    max_body: usize,
    timeout: Duration,
) -> Result<Response, FetchError> {
    let mut builder = ureq::http::Request::builder()
        .method(request.method.as_str())
        .uri(&request.url);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let built = builder
        .body(request.body)
        .map_err(|e| FetchError::Denied(format!("bad request: {e}")))?;
    let built = agent
        .configure_request(built)
        .timeout_global(Some(timeout))
        .build();
    let mut response = agent
        .run(built)
        .map_err(|e| FetchError::Unavailable(format!("{}: {e}", request.url)))?;
    let headers = response
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .collect();
    let limit = u64::try_from(max_body).unwrap_or(u64::MAX);
    let mut body = Vec::new();
    response
        .body_mut()
        .as_reader()
        .take(limit)
        .read_to_end(&mut body)
        .map_err(|e| FetchError::Unavailable(format!("{}: reading the body: {e}", request.url)))?;
    Ok(Response {
        status: response.status().as_u16(),
        headers,
        body,
    })
}

/// Refuse `url` unless it starts with an allowed prefix at a path boundary, has no
/// user-info, and no dot segments that could climb out of the prefix.
pub(crate) fn check_url(allow: &[String], url: &str) -> Result<(), FetchError> {
    let deny = |why: &str| Err(FetchError::Denied(format!("{url}: {why}")));
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return deny("only http and https URLs are allowed");
    }
    let after_scheme = url.split_once("://").map_or("", |(_, rest)| rest);
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return deny("URLs with user-info are not allowed");
    }
    let path = after_scheme[authority.len()..]
        .split(['?', '#'])
        .next()
        .unwrap_or("");
    let lowered = path.to_ascii_lowercase();
    if lowered.contains("%2e") || path.split('/').any(|s| s == "." || s == "..") {
        return deny("dot segments are not allowed");
    }
    let allowed = allow.iter().any(|prefix| {
        url.strip_prefix(prefix.as_str()).is_some_and(|rest| {
            prefix.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?'])
        })
    });
    if allowed {
        Ok(())
    } else {
        deny("not in the plugin's http_allow list")
    }
}
