//! `pod-lookup` (agent side): the pod that runs the process under attestation, from the
//! node's kubelet (`GET /pods`), matched as SPIRE's `k8s` workload attestor matches it.
//!
//! One pod list serves every attestation running at the same time: at most one `/pods`
//! request is in flight per [`KubeletAccess`] (clones share it), a completed list is reused
//! by callers that arrive within the poll interval of its request, and a new request starts
//! no sooner than one poll interval after the previous one (SPIRE's pod-list fetcher;
//! kubelet load: spiffe/spire#7085). Only the last list is kept, and a response is read up
//! to [`MAX_RESPONSE`] bytes, so the cache is bounded.
//!
//! While no pod matches (the pod or its container is still starting), a caller polls: it
//! asks for a list newer than the one it searched, up to the configured number of
//! attempts. The waiting happens in the host call, outside the plugin's CPU budget.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use ureq::Agent;
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig, TlsProvider};

use super::CapabilityError;
use super::http::{Request, agent_with, aws_lc_provider, pem_roots, send};

/// Largest `/pods` response read: a node's pod list with generous headroom.
const MAX_RESPONSE: usize = 16 << 20;

/// SPIRE's defaults: 60 attempts, 500 ms apart.
const DEFAULT_ATTEMPTS: u32 = 60;
const DEFAULT_INTERVAL: Duration = Duration::from_millis(500);

/// How the kubelet's certificate is checked.
#[derive(Debug, Clone, Copy)]
pub enum KubeletTrust<'a> {
    /// Verify it against the PEM CA certificates (`kubelet_ca_path`).
    Roots(&'a [u8]),
    /// Do not verify it (`skip_kubelet_verification`): kubelets often serve self-signed
    /// certificates.
    Unverified,
}

/// Access to the node's kubelet, for `pod-lookup`. Clones share the pod-list cache.
#[derive(Clone)]
pub struct KubeletAccess {
    inner: Arc<Kubelet>,
}

struct Kubelet {
    url: String,
    token_file: Option<PathBuf>,
    agent: Agent,
    timeout: Duration,
    attempts: u32,
    interval: Duration,
    pods: Mutex<PodCache>,
    /// Signalled when a fetch completes.
    fetched: Condvar,
}

/// The shared pod list: the last completed fetch and whether one is running.
#[derive(Default)]
struct PodCache {
    last: Option<Fetched>,
    in_flight: bool,
    last_start: Option<Instant>,
    /// Fetches started so far: each completed one carries its number.
    started: u64,
}

struct Fetched {
    number: u64,
    started: Instant,
    outcome: Result<Arc<Vec<Value>>, CapabilityError>,
}

/// A pod found for a process: its JSON and, when matched by container, the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PodMatch {
    pub(crate) pod: String,
    pub(crate) container_status: Option<String>,
}

impl KubeletAccess {
    /// The kubelet at `url` (`https://127.0.0.1:10250`), trusted through the PEM CA
    /// certificates `ca_pem`, called with the bearer token in `token_file` when given.
    pub fn new(
        url: &str,
        ca_pem: &[u8],
        token_file: Option<PathBuf>,
        timeout: Duration,
    ) -> Result<Self, String> {
        Self::with_tls(url, KubeletTrust::Roots(ca_pem), None, token_file, timeout)
    }

    /// The kubelet at `url` without checking its certificate (SPIRE's
    /// `skip_kubelet_verification`).
    pub fn danger_unverified(url: &str, token_file: Option<PathBuf>, timeout: Duration) -> Self {
        Self::build(url, tls(None, None), token_file, timeout)
    }

    /// The kubelet at `url`: `http://` (SPIRE's read-only port: no TLS, no token) or
    /// `https://` checked as `trust` says, with the client certificate and key
    /// `client` (PEM: certificate chain, private key) and the bearer token in
    /// `token_file` when given. Each request is bounded by `timeout`.
    pub fn with_tls(
        url: &str,
        trust: KubeletTrust<'_>,
        client: Option<(&[u8], &[u8])>,
        token_file: Option<PathBuf>,
        timeout: Duration,
    ) -> Result<Self, String> {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!("the kubelet URL {url:?} is not http or https"));
        }
        let roots = match trust {
            KubeletTrust::Roots(ca_pem) => {
                Some(pem_roots(ca_pem).map_err(|e| format!("the kubelet CA: {e}"))?)
            }
            KubeletTrust::Unverified => None,
        };
        let client = client
            .map(|(cert_pem, key_pem)| client_cert(cert_pem, key_pem))
            .transpose()?;
        Ok(Self::build(url, tls(roots, client), token_file, timeout))
    }

    /// Poll at most `attempts` times (at least once), `interval` apart (SPIRE's
    /// `max_poll_attempts` and `poll_retry_interval`; 60 and 500 ms by default). The
    /// interval is also how long one pod list is reused.
    #[must_use]
    pub fn with_polling(self, attempts: u32, interval: Duration) -> Self {
        let old = &*self.inner;
        KubeletAccess {
            inner: Arc::new(Kubelet {
                attempts: attempts.max(1),
                interval,
                ..Kubelet::new(
                    old.url.clone(),
                    old.token_file.clone(),
                    old.agent.clone(),
                    old.timeout,
                )
            }),
        }
    }

    /// The longest one `pod-of` call may wait: every attempt's request and the intervals
    /// between them. The agent's attestation deadline must allow it.
    pub fn max_wait(&self) -> Duration {
        let inner = &*self.inner;
        inner
            .timeout
            .saturating_add(inner.interval)
            .saturating_mul(inner.attempts)
    }

    fn build(url: &str, tls: TlsConfig, token_file: Option<PathBuf>, timeout: Duration) -> Self {
        KubeletAccess {
            inner: Arc::new(Kubelet::new(
                url.trim_end_matches('/').to_owned(),
                token_file,
                agent_with(tls, timeout),
                timeout,
            )),
        }
    }

    /// The pod that runs `container_id` (in the pod `pod_uid` when the cgroups named one),
    /// polling while none matches; with `container_required` false a pod with `pod_uid`
    /// matches before its container shows up.
    pub(crate) fn pod_of(
        &self,
        pod_uid: Option<&str>,
        container_id: &str,
        container_required: bool,
    ) -> Result<Option<PodMatch>, CapabilityError> {
        let inner = &*self.inner;
        let mut seen = 0;
        for attempt in 1..=inner.attempts {
            let (number, outcome) = inner.pods_after(seen);
            seen = number;
            match outcome {
                Ok(pods) => {
                    if let Some(found) = find(&pods, pod_uid, container_id, container_required)? {
                        return Ok(Some(found));
                    }
                    tracing::debug!(
                        container_id,
                        pod_uid,
                        attempt,
                        "no pod on the kubelet runs the container yet"
                    );
                }
                // Refused credentials do not get better by asking again.
                Err(error @ CapabilityError::Denied(_)) => return Err(error),
                Err(error) if attempt == inner.attempts => return Err(error),
                Err(error) => {
                    tracing::debug!(
                        attempt,
                        ?error,
                        "cannot read the kubelet's pods; will retry"
                    );
                }
            }
        }
        tracing::warn!(
            container_id,
            pod_uid,
            attempts = inner.attempts,
            "no pod on the kubelet runs the container; giving up"
        );
        Ok(None)
    }
}

impl Kubelet {
    fn new(url: String, token_file: Option<PathBuf>, agent: Agent, timeout: Duration) -> Self {
        Kubelet {
            url,
            token_file,
            agent,
            timeout,
            attempts: DEFAULT_ATTEMPTS,
            interval: DEFAULT_INTERVAL,
            pods: Mutex::new(PodCache::default()),
            fetched: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PodCache> {
        // The cache holds no invariant a panicking holder could break halfway.
        self.pods.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A pod list newer than fetch number `seen` (0: any), and its number: the cached one
    /// while it is fresh, else the one in flight, else a new fetch once the interval since
    /// the last one has passed.
    fn pods_after(&self, seen: u64) -> (u64, Result<Arc<Vec<Value>>, CapabilityError>) {
        let mut cache = self.lock();
        loop {
            if let Some(last) = &cache.last
                && last.number > seen
                && last.outcome.is_ok()
                && last.started.elapsed() < self.interval
            {
                return (last.number, last.outcome.clone());
            }
            if cache.in_flight {
                // Join the fetch in flight: it started after the one `seen` names.
                let waiting_for = cache.started;
                while cache.in_flight && cache.started == waiting_for {
                    cache = self
                        .fetched
                        .wait(cache)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if let Some(last) = &cache.last
                    && last.number == waiting_for
                {
                    return (last.number, last.outcome.clone());
                }
                continue;
            }
            let next = cache
                .last_start
                .map(|at| at + self.interval)
                .filter(|at| *at > Instant::now());
            if let Some(at) = next {
                let wait = at.saturating_duration_since(Instant::now());
                cache = self
                    .fetched
                    .wait_timeout(cache, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
            cache.in_flight = true;
            cache.started += 1;
            let number = cache.started;
            let started = Instant::now();
            cache.last_start = Some(started);
            drop(cache);
            let done = Done {
                kubelet: self,
                number,
                started,
                outcome: None,
            };
            return done.finish(self.fetch());
        }
    }

    /// One `GET /pods`: its `items`.
    fn fetch(&self) -> Result<Arc<Vec<Value>>, CapabilityError> {
        let url = format!("{}/pods", self.url);
        let mut headers = vec![("Accept".to_owned(), "application/json".to_owned())];
        if let Some(path) = &self.token_file {
            let token = std::fs::read_to_string(path).map_err(|e| {
                CapabilityError::Unavailable(format!(
                    "cannot read the kubelet token file {}: {e}",
                    path.display()
                ))
            })?;
            headers.push((
                "Authorization".to_owned(),
                format!("Bearer {}", token.trim()),
            ));
        }
        let request = Request {
            method: "GET".to_owned(),
            url: url.clone(),
            headers,
            body: Vec::new(),
        };
        let response = send(&self.agent, request, MAX_RESPONSE + 1, self.timeout).map_err(
            |error| match error {
                CapabilityError::Unavailable(m) => {
                    CapabilityError::Unavailable(format!("the kubelet cannot be reached: {m}"))
                }
                other => other,
            },
        )?;
        match response.status {
            200 => {}
            401 | 403 => {
                return Err(CapabilityError::Denied(format!(
                    "{url}: the kubelet refused our credentials (status {}): check token_path or the client certificate",
                    response.status
                )));
            }
            status => {
                let text = String::from_utf8_lossy(&response.body);
                let text: String = text.chars().take(200).collect();
                return Err(CapabilityError::Unavailable(format!(
                    "{url}: status {status}: {text}"
                )));
            }
        }
        if response.body.len() > MAX_RESPONSE {
            return Err(CapabilityError::Unavailable(format!(
                "{url}: the pod list is larger than {MAX_RESPONSE} bytes"
            )));
        }
        let mut list: Value = serde_json::from_slice(&response.body).map_err(|e| {
            CapabilityError::Unavailable(format!("{url}: the pod list is not JSON: {e}"))
        })?;
        match list.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => Ok(Arc::new(items)),
            Some(Value::Null) | None => Ok(Arc::new(Vec::new())),
            Some(_) => Err(CapabilityError::Unavailable(format!(
                "{url}: the pod list's items are not a list"
            ))),
        }
    }
}

/// Completes a fetch: stores its outcome and wakes the waiters, also when the fetching
/// thread unwinds (the outcome is then an error), so no waiter waits forever.
struct Done<'a> {
    kubelet: &'a Kubelet,
    number: u64,
    started: Instant,
    outcome: Option<Result<Arc<Vec<Value>>, CapabilityError>>,
}

impl Done<'_> {
    fn finish(
        mut self,
        outcome: Result<Arc<Vec<Value>>, CapabilityError>,
    ) -> (u64, Result<Arc<Vec<Value>>, CapabilityError>) {
        self.outcome = Some(outcome.clone());
        (self.number, outcome)
    }
}

impl Drop for Done<'_> {
    fn drop(&mut self) {
        let outcome = self.outcome.take().unwrap_or_else(|| {
            Err(CapabilityError::Unavailable(
                "reading the kubelet's pods failed".into(),
            ))
        });
        let mut cache = self.kubelet.lock();
        cache.in_flight = false;
        cache.last = Some(Fetched {
            number: self.number,
            started: self.started,
            outcome,
        });
        drop(cache);
        self.kubelet.fetched.notify_all();
    }
}

/// SPIRE's match over one pod list: only pods with `pod_uid` when it is known; a pod
/// matches when a status of `containerStatuses` or `initContainerStatuses` has the
/// container ID (`<runtime>://<id>`), or, without `container_required`, by its UID alone.
/// Two matching pods are an error.
pub(crate) fn find(
    pods: &[Value],
    pod_uid: Option<&str>,
    container_id: &str,
    container_required: bool,
) -> Result<Option<PodMatch>, CapabilityError> {
    let mut found: Option<PodMatch> = None;
    for pod in pods {
        if let Some(uid) = pod_uid
            && pod["metadata"]["uid"].as_str() != Some(uid)
        {
            continue;
        }
        let status = container_status(pod, container_id);
        if status.is_none() && (pod_uid.is_none() || container_required) {
            continue;
        }
        if found.is_some() {
            return Err(CapabilityError::Denied(format!(
                "two pods on this node have container {container_id}"
            )));
        }
        found = Some(PodMatch {
            pod: pod.to_string(),
            container_status: status.map(Value::to_string),
        });
    }
    Ok(found)
}

/// The status of `container_id` in `pod`: regular containers, then init containers
/// (SPIRE's order; ephemeral debug containers are not workloads it attests).
fn container_status<'a>(pod: &'a Value, container_id: &str) -> Option<&'a Value> {
    ["containerStatuses", "initContainerStatuses"]
        .iter()
        .filter_map(|key| pod["status"][key].as_array())
        .flatten()
        .find(|status| {
            status["containerID"]
                .as_str()
                .and_then(|id| id.split_once("://"))
                .is_some_and(|(_, rest)| rest.split(['/', '?', '#']).next() == Some(container_id))
        })
}

/// The TLS settings: verified against `roots`, or not at all when `None`; with an
/// optional client certificate.
fn tls(roots: Option<RootCerts>, client: Option<ClientCert>) -> TlsConfig {
    let builder = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(aws_lc_provider())
        .client_cert(client);
    match roots {
        Some(roots) => builder.root_certs(roots),
        None => builder.disable_verification(true),
    }
    .build()
}

/// A client certificate chain and key from PEM.
fn client_cert(cert_pem: &[u8], key_pem: &[u8]) -> Result<ClientCert, String> {
    let chain: Vec<Certificate<'static>> = pem::parse_many(cert_pem)
        .map_err(|_| "the client certificate file is not PEM".to_owned())?
        .into_iter()
        .filter(|block| block.tag() == "CERTIFICATE")
        .map(|block| Certificate::from_der(block.contents()).to_owned())
        .collect();
    if chain.is_empty() {
        return Err("the client certificate file holds no certificate".into());
    }
    let key =
        PrivateKey::from_pem(key_pem).map_err(|e| format!("the client private key file: {e}"))?;
    Ok(ClientCert::new_with_certs(&chain, key))
}

impl std::fmt::Debug for KubeletAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletAccess")
            .field("url", &self.inner.url)
            .field("token_file", &self.inner.token_file)
            .field("attempts", &self.inner.attempts)
            .field("interval", &self.inner.interval)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
