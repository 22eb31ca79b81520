//! Envoy's Secret Discovery Service v3 (`envoy.service.secret.v3.SecretDiscoveryService`),
//! state-of-the-world streams as SPIRE's agent serves them.
//!
//! A stream attests its caller once, then answers the first request, every change of the
//! requested names, and every change of the caller's identities (with the whole requested
//! set). Each response has a new `version_info` and a new nonce. A request whose
//! `response_nonce` is not the last nonce sent is stale and ignored; a request that repeats
//! the current names (an ACK, or a NACK carrying `error_detail`) gets no response. The node
//! arrives only in the first request and is kept for the whole stream.

mod secrets;

use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::SecretDiscoveryService;
use prost::Name;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::error::ApiError;
use crate::serve::{attest, closed, subscribe};
use crate::{WorkloadConfig, WorkloadIdentities, WorkloadUpdate};
use secrets::ValidationStyle;

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The SDS service over a [`WorkloadIdentities`].
pub(crate) struct SdsService<I> {
    identities: Arc<I>,
    config: Arc<WorkloadConfig>,
    closing: watch::Receiver<bool>,
}

impl<I> SdsService<I> {
    pub(crate) fn new(
        identities: Arc<I>,
        config: Arc<WorkloadConfig>,
        closing: watch::Receiver<bool>,
    ) -> Self {
        Self {
            identities,
            config,
            closing,
        }
    }
}

// === impl SdsService ===

#[async_trait::async_trait]
impl<I: WorkloadIdentities> SecretDiscoveryService for SdsService<I> {
    type DeltaSecretsStream = ResponseStream<DeltaDiscoveryResponse>;
    type StreamSecretsStream = ResponseStream<DiscoveryResponse>;

    async fn delta_secrets(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaSecretsStream>, Status> {
        Err(ApiError::Unimplemented.into())
    }

    #[tracing::instrument(skip_all)]
    async fn stream_secrets(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamSecretsStream>, Status> {
        let workload = attest(&*self.identities, &request).await?;
        let updates = subscribe(&*self.identities, &workload).await?;
        let (tx, rx) = mpsc::channel(1);
        let stream = SecretStream {
            config: self.config.clone(),
            requests: request.into_inner(),
            updates,
            closing: self.closing.clone(),
            tx,
            node: None,
            names: None,
            type_url: String::new(),
            last_nonce: None,
            version: 0,
        };
        tokio::spawn(stream.run());
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    #[tracing::instrument(skip_all)]
    async fn fetch_secrets(
        &self,
        request: Request<DiscoveryRequest>,
    ) -> Result<Response<DiscoveryResponse>, Status> {
        let workload = attest(&*self.identities, &request).await?;
        let update = subscribe(&*self.identities, &workload)
            .await?
            .borrow()
            .clone();
        let request = request.into_inner();
        let style = ValidationStyle::for_node(request.node.as_ref(), &self.config);
        let resources = secrets::resources(&request.resource_names, &update, style, &self.config)?;
        // As SPIRE: a one-off fetch carries neither version nor nonce.
        Ok(Response::new(DiscoveryResponse {
            type_url: type_url_or_secret(request.type_url),
            resources,
            ..Default::default()
        }))
    }
}

/// One open `StreamSecrets` call.
struct SecretStream {
    config: Arc<WorkloadConfig>,
    requests: Streaming<DiscoveryRequest>,
    updates: watch::Receiver<Arc<WorkloadUpdate>>,
    closing: watch::Receiver<bool>,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    /// The node of the first request that had one.
    node: Option<Node>,
    /// The names of the last request acted on; `None` before the first request.
    names: Option<Vec<String>>,
    type_url: String,
    last_nonce: Option<String>,
    version: u64,
}

impl SecretStream {
    async fn run(mut self) {
        loop {
            let respond = tokio::select! {
                request = self.requests.message() => match request {
                    Ok(Some(request)) => self.accept(request),
                    // The caller closed its side or the connection broke.
                    Ok(None) | Err(_) => return,
                },
                changed = self.updates.changed() => {
                    if changed.is_err() {
                        let _ = self.tx.send(Err(ApiError::IdentitiesGone.into())).await;
                        return;
                    }
                    // Nothing to push before the first request names what it wants.
                    self.names.is_some()
                }
                () = closed(&mut self.closing) => {
                    let _ = self.tx.send(Err(ApiError::ShuttingDown.into())).await;
                    return;
                }
                () = self.tx.closed() => return,
            };
            if respond && !self.respond().await {
                return;
            }
        }
    }

    /// Takes in a request; `true` when it must be answered.
    fn accept(&mut self, request: DiscoveryRequest) -> bool {
        if self.node.is_none() {
            self.node = request.node;
        }
        if let Some(error) = &request.error_detail {
            tracing::warn!(
                names = ?request.resource_names,
                code = error.code,
                message = %error.message,
                "Envoy reported errors applying secrets"
            );
        }
        if let Some(last_nonce) = &self.last_nonce
            && request.response_nonce != *last_nonce
        {
            tracing::debug!(nonce = %request.response_nonce, "stale nonce; request ignored");
            return false;
        }
        let changed = self
            .names
            .as_ref()
            .is_none_or(|old| names_changed(old, &request.resource_names));
        self.names = Some(request.resource_names);
        self.type_url = request.type_url;
        changed
    }

    /// Sends the requested set as it is now; `false` when the stream is over.
    async fn respond(&mut self) -> bool {
        let update = self.updates.borrow_and_update().clone();
        let names = self.names.as_deref().unwrap_or_default();
        let style = ValidationStyle::for_node(self.node.as_ref(), &self.config);
        let resources = match secrets::resources(names, &update, style, &self.config) {
            Ok(resources) => resources,
            Err(error) => {
                let _ = self.tx.send(Err(error.into())).await;
                return false;
            }
        };
        let Some(nonce) = new_nonce() else {
            tracing::error!("system random generator failed");
            let _ = self.tx.send(Err(ApiError::Internal.into())).await;
            return false;
        };
        self.version += 1;
        let response = DiscoveryResponse {
            version_info: self.version.to_string(),
            resources,
            type_url: type_url_or_secret(self.type_url.clone()),
            nonce: nonce.clone(),
            ..Default::default()
        };
        if self.tx.send(Ok(response)).await.is_err() {
            return false;
        }
        self.last_nonce = Some(nonce);
        true
    }
}

/// SPIRE's comparison: a different count, or a name that was not asked for before.
fn names_changed(old: &[String], new: &[String]) -> bool {
    old.len() != new.len() || new.iter().any(|n| !old.contains(n))
}

fn type_url_or_secret(type_url: String) -> String {
    if type_url.is_empty() {
        Secret::type_url()
    } else {
        type_url
    }
}

/// 8 random bytes, hex.
fn new_nonce() -> Option<String> {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn names_change_as_spire_compares_them() {
        assert!(!names_changed(&names(&["a", "b"]), &names(&["b", "a"])));
        assert!(names_changed(&names(&["a"]), &names(&["a", "b"])));
        assert!(names_changed(&names(&["a", "b"]), &names(&["a"])));
        assert!(names_changed(&names(&["a", "b"]), &names(&["a", "c"])));
        assert!(!names_changed(&[], &[]));
    }

    #[test]
    fn nonces_differ() {
        let a = new_nonce().unwrap();
        let b = new_nonce().unwrap();
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
    }
}
