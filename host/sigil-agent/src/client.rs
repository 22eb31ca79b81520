//! The agent's TLS connection to the server's agent API.
//!
//! The server presents an X509-SVID for `spiffe://<td>/spire/server`, which carries no DNS
//! name: the chain is verified against the trusted roots (the bootstrap bundle, later the
//! trust domain's bundle as synced), then the URI SAN must be exactly the server's SPIFFE ID.
//! With `insecure_bootstrap` and no roots yet, the chain is not verified (first connection
//! only); the SPIFFE ID and the handshake signature still are.
//!
//! The client certificate is the agent SVID when the agent has one. Roots and identity are
//! read at each handshake, so a renewed SVID or a rotated bundle takes effect on the next
//! connection; [`ServerClient::reconnect`] forces one.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use hyper_util::rt::TokioIo;
use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::sign::CertifiedKey;
use sigil_tls::SpiffeServerVerifier;
use sigil_types::{PrivateKeyDer as SvidKey, SpiffeId};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::error::AgentError;

/// A gRPC channel to the server whose TLS trust and client identity can change.
#[derive(Debug, Clone)]
pub(crate) struct ServerClient {
    inner: Arc<Inner>,
}

struct Inner {
    dial: Dial,
    state: Arc<TlsState>,
    connector: TlsConnector,
    channel: Mutex<Channel>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerClient")
            .field("dial", &self.dial)
            .field("server_id", self.state.verifier.expected())
            .finish_non_exhaustive()
    }
}

impl ServerClient {
    /// A client of `address` (`host:port`) expecting the server ID `server_id`; no roots and
    /// no identity yet.
    pub(crate) fn new(address: String, server_id: SpiffeId) -> Result<Self, AgentError> {
        Self::dialing(Dial::Tcp(address), server_id)
    }

    /// A client whose connections are in-memory streams handed to `server` (paused-clock
    /// tests: a loopback socket would let tokio's paused clock jump ahead of the I/O).
    #[cfg(test)]
    pub(crate) fn in_memory(
        server: tokio::sync::mpsc::UnboundedSender<tokio::io::DuplexStream>,
        server_id: SpiffeId,
    ) -> Result<Self, AgentError> {
        Self::dialing(Dial::Memory(server), server_id)
    }

    fn dialing(dial: Dial, server_id: SpiffeId) -> Result<Self, AgentError> {
        let provider = sigil_tls::provider();
        let state = Arc::new(TlsState {
            provider: provider.clone(),
            verifier: Arc::new(SpiffeServerVerifier::new(provider.clone(), server_id)),
            identity: RwLock::new(None),
        });
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| AgentError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(state.verifier.clone())
            .with_client_cert_resolver(Arc::new(Identity(state.clone())));
        config.alpn_protocols = vec![b"h2".to_vec()];
        // A resumed session carries the identity of the session it resumes (none, for the
        // attestation connection): every handshake is a full one, with the current SVID.
        config.resumption = rustls::client::Resumption::disabled();
        let connector = TlsConnector::from(Arc::new(config));
        let channel = lazy_channel(&dial, &connector);
        Ok(ServerClient {
            inner: Arc::new(Inner {
                dial,
                state,
                connector,
                channel: Mutex::new(channel),
            }),
        })
    }

    /// The current channel.
    pub(crate) fn channel(&self) -> Channel {
        self.inner
            .channel
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Drop the current connection; the next call opens a new one (new handshake).
    pub(crate) fn reconnect(&self) {
        let channel = lazy_channel(&self.inner.dial, &self.inner.connector);
        *self
            .inner
            .channel
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = channel;
    }

    /// Trust these DER roots from the next handshake on. An empty set is refused.
    pub(crate) fn set_roots<'a>(
        &self,
        roots: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), AgentError> {
        self.inner
            .state
            .verifier
            .set_roots(roots)
            .map_err(AgentError::Tls)
    }

    /// Present this certificate chain and key from the next handshake on.
    pub(crate) fn set_identity(&self, chain: &[Vec<u8>], key: &SvidKey) -> Result<(), AgentError> {
        let signing = self
            .inner
            .state
            .provider
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                key.secret_pkcs8_der().to_vec(),
            )))
            .map_err(|e| AgentError::Tls(format!("agent key: {e}")))?;
        let certified = CertifiedKey::new(
            chain.iter().cloned().map(CertificateDer::from).collect(),
            signing,
        );
        *self
            .inner
            .state
            .identity
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(certified));
        Ok(())
    }
}

/// How the client reaches the server.
#[derive(Debug, Clone)]
enum Dial {
    /// TCP to `host:port`.
    Tcp(String),
    /// An in-memory stream per connection, the other end sent to the test's server.
    #[cfg(test)]
    Memory(tokio::sync::mpsc::UnboundedSender<tokio::io::DuplexStream>),
}

/// A byte stream a TLS connection runs over.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A channel that connects on first use (and again after a failure).
fn lazy_channel(dial: &Dial, connector: &TlsConnector) -> Channel {
    let dial = dial.clone();
    let connector = connector.clone();
    Endpoint::from_static("http://sigil-server")
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            let dial = dial.clone();
            async move {
                // The name is not checked (SPIFFE certificates carry none); the verifier
                // checks the SPIFFE ID instead.
                let name = ServerName::try_from("sigil-server").map_err(std::io::Error::other)?;
                let tls: Box<dyn Io> = match dial {
                    Dial::Tcp(address) => {
                        let tcp = tcp_connect(&address).await?;
                        Box::new(connector.connect(name, tcp).await?)
                    }
                    #[cfg(test)]
                    Dial::Memory(server) => {
                        let (client, server_end) = tokio::io::duplex(64 * 1024);
                        server
                            .send(server_end)
                            .map_err(|_| std::io::Error::other("the test server is gone"))?;
                        Box::new(connector.connect(name, client).await?)
                    }
                };
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
}

/// A TCP connection to the first address of `address` that answers.
async fn tcp_connect(address: &str) -> std::io::Result<TcpStream> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host(address).await?.collect();
    let mut last = std::io::Error::other("the server address resolved to nothing");
    for addr in addresses {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                tcp.set_nodelay(true)?;
                return Ok(tcp);
            }
            Err(error) => last = error,
        }
    }
    Err(last)
}

// === impl TlsState ===

#[derive(Debug)]
struct TlsState {
    provider: Arc<CryptoProvider>,
    verifier: Arc<SpiffeServerVerifier>,
    identity: RwLock<Option<Arc<CertifiedKey>>>,
}

#[derive(Debug)]
struct Identity(Arc<TlsState>);

impl ResolvesClientCert for Identity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0
            .identity
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn has_certs(&self) -> bool {
        self.0
            .identity
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }
}
