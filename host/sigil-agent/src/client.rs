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
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sigil_types::{PrivateKeyDer as SvidKey, SpiffeId};
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
    address: String,
    state: Arc<TlsState>,
    connector: TlsConnector,
    channel: Mutex<Channel>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerClient")
            .field("address", &self.address)
            .field("server_id", &self.state.server_id)
            .finish_non_exhaustive()
    }
}

impl ServerClient {
    /// A client of `address` (`host:port`) expecting the server ID `server_id`; no roots and
    /// no identity yet.
    pub(crate) fn new(address: String, server_id: SpiffeId) -> Result<Self, AgentError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let state = Arc::new(TlsState {
            provider: provider.clone(),
            server_id,
            roots: RwLock::new(None),
            identity: RwLock::new(None),
        });
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| AgentError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier(state.clone())))
            .with_client_cert_resolver(Arc::new(Identity(state.clone())));
        config.alpn_protocols = vec![b"h2".to_vec()];
        // A resumed session carries the identity of the session it resumes (none, for the
        // attestation connection): every handshake is a full one, with the current SVID.
        config.resumption = rustls::client::Resumption::disabled();
        let connector = TlsConnector::from(Arc::new(config));
        let channel = lazy_channel(&address, &connector);
        Ok(ServerClient {
            inner: Arc::new(Inner {
                address,
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
        let channel = lazy_channel(&self.inner.address, &self.inner.connector);
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
        let mut store = RootCertStore::empty();
        for der in roots {
            store
                .add(CertificateDer::from(der.to_vec()))
                .map_err(|e| AgentError::Tls(format!("bad trust root: {e}")))?;
        }
        if store.is_empty() {
            return Err(AgentError::Tls("no trust roots".into()));
        }
        let verifier = WebPkiServerVerifier::builder_with_provider(
            Arc::new(store),
            self.inner.state.provider.clone(),
        )
        .build()
        .map_err(|e| AgentError::Tls(e.to_string()))?;
        *self
            .inner
            .state
            .roots
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(verifier);
        Ok(())
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

/// A channel that connects on first use (and again after a failure).
fn lazy_channel(address: &str, connector: &TlsConnector) -> Channel {
    let address = address.to_owned();
    let connector = connector.clone();
    Endpoint::from_static("http://sigil-server")
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            let address = address.clone();
            async move {
                let addresses: Vec<SocketAddr> =
                    tokio::net::lookup_host(address.as_str()).await?.collect();
                let mut last = std::io::Error::other("the server address resolved to nothing");
                for addr in addresses {
                    match TcpStream::connect(addr).await {
                        Ok(tcp) => {
                            tcp.set_nodelay(true)?;
                            // The name is not checked (SPIFFE certificates carry none); the
                            // verifier checks the SPIFFE ID instead.
                            let name = ServerName::try_from("sigil-server")
                                .map_err(std::io::Error::other)?;
                            let tls = connector.connect(name, tcp).await?;
                            return Ok::<_, std::io::Error>(TokioIo::new(tls));
                        }
                        Err(error) => last = error,
                    }
                }
                Err(last)
            }
        }))
}

// === impl TlsState ===

#[derive(Debug)]
struct TlsState {
    provider: Arc<CryptoProvider>,
    server_id: SpiffeId,
    /// `None`: insecure bootstrap (no chain verification).
    roots: RwLock<Option<Arc<WebPkiServerVerifier>>>,
    identity: RwLock<Option<Arc<CertifiedKey>>>,
}

#[derive(Debug)]
struct Verifier(Arc<TlsState>);

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let roots = self
            .0
            .roots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(roots) = roots {
            match roots.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
                Ok(_) => {}
                // The chain verified; only the DNS name is missing, as for every SVID.
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. },
                )) => {}
                Err(error) => return Err(error),
            }
        }
        let ids = uri_sans(end_entity.as_ref())
            .map_err(|e| rustls::Error::General(format!("server certificate: {e}")))?;
        if ids.len() == 1 && ids[0] == self.0.server_id.as_str() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server presented {ids:?}, expected {}",
                self.0.server_id
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0
            .provider
            .signature_verification_algorithms
            .supported_schemes()
    }
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

/// The URI SANs of a DER certificate.
pub(crate) fn uri_sans(der: &[u8]) -> Result<Vec<String>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let mut uris = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::URI(uri) = name {
                uris.push((*uri).to_owned());
            }
        }
    }
    Ok(uris)
}

/// `notBefore` and `notAfter` of a DER certificate, Unix seconds.
pub(crate) fn validity(der: &[u8]) -> Result<(i64, i64), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let validity = cert.validity();
    Ok((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}
