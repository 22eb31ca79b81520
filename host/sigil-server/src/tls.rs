//! TLS of the agent-facing API: the server's own X509-SVID (minted from its CA and renewed
//! at half-life), client certificates checked against the current trust bundle (optional,
//! because `AttestAgent` comes before an agent has an SVID), and the caller's SPIFFE ID.

use std::sync::{Arc, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use sigil_ca::{CaManager, X509SvidParams};
use sigil_types::SpiffeId;

use crate::tokens::now;

/// The server's SPIFFE ID, `spiffe://<td>/spire/server`.
pub(crate) fn server_id(ca: &CaManager) -> Result<SpiffeId, String> {
    SpiffeId::new(&ca.config().trust_domain, "/spire/server").map_err(|e| e.to_string())
}

/// The server's current X509-SVID and key, handed to every TLS handshake.
pub(crate) struct ServerSvid {
    current: RwLock<(Arc<CertifiedKey>, i64)>,
}

impl ServerSvid {
    /// Mint the first SVID.
    pub(crate) fn new(ca: &CaManager) -> Result<Self, String> {
        Ok(ServerSvid {
            current: RwLock::new(mint(ca)?),
        })
    }

    /// Mint a new SVID when the current one is past half its life.
    pub(crate) fn renew_if_due(&self, ca: &CaManager) -> Result<(), String> {
        let expires_at = self.current.read().map_or(0, |c| c.1);
        let ttl = i64::try_from(ca.config().x509_svid_ttl.as_secs()).unwrap_or(i64::MAX);
        if expires_at.saturating_sub(now()) > ttl / 2 {
            return Ok(());
        }
        let fresh = mint(ca)?;
        if let Ok(mut current) = self.current.write() {
            *current = fresh;
        }
        Ok(())
    }
}

impl std::fmt::Debug for ServerSvid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSvid").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for ServerSvid {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.0.clone())
    }
}

/// A fresh key and its SVID for `spiffe://<td>/spire/server`; the key never leaves memory.
fn mint(ca: &CaManager) -> Result<(Arc<CertifiedKey>, i64), String> {
    let key = rcgen::KeyPair::generate().map_err(|e| format!("server key: {e}"))?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|params| params.serialize_request(&key))
        .map_err(|e| format!("server CSR: {e}"))?;
    let issued = ca
        .mint_x509_svid(csr.der(), &X509SvidParams::new(server_id(ca)?), now())
        .map_err(|e| format!("server SVID: {e}"))?;
    let chain = issued
        .cert_chain
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let provider = provider();
    let signing_key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            key.serialize_der(),
        )))
        .map_err(|e| format!("server key: {e}"))?;
    Ok((
        Arc::new(CertifiedKey::new(chain, signing_key)),
        issued.expires_at,
    ))
}

pub(crate) use sigil_tls::{peer_spiffe_id, provider};

/// Client certificates must chain to the trust bundle as it is at the handshake (the CA
/// rotates); a client without one is let in, and every API call then decides whether it
/// needs an SVID.
pub(crate) struct BundleClientVerifier {
    pub(crate) ca: Arc<CaManager>,
    provider: Arc<CryptoProvider>,
}

impl BundleClientVerifier {
    pub(crate) fn new(ca: Arc<CaManager>) -> Self {
        BundleClientVerifier {
            ca,
            provider: provider(),
        }
    }

    fn current(&self) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
        let mut roots = RootCertStore::empty();
        if let Some(bundle) = self.ca.bundle() {
            for authority in &bundle.x509_authorities {
                roots
                    .add(CertificateDer::from(authority.der.clone()))
                    .map_err(|e| rustls::Error::General(format!("bundle authority: {e}")))?;
            }
        }
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .allow_unauthenticated()
            .build()
            .map_err(|e| rustls::Error::General(format!("client verifier: {e}")))
    }
}

impl std::fmt::Debug for BundleClientVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleClientVerifier")
            .finish_non_exhaustive()
    }
}

impl ClientCertVerifier for BundleClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current()?
            .verify_client_cert(end_entity, intermediates, now)
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
