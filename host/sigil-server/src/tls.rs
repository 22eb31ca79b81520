//! TLS of the agent-facing API: the server's own X509-SVID (minted from its CA and renewed
//! at half-life), client certificates checked against the current trust bundle (optional,
//! because `AttestAgent` comes before an agent has an SVID), and the caller's SPIFFE ID.

use std::sync::{Arc, RwLock};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sigil_ca::{CaManager, X509SvidParams};
use sigil_tls::{BundleClientVerifier, TrustRoots};
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

/// The CA's current X.509 authorities: the roots agents' client certificates must chain to,
/// read at every handshake because the CA rotates.
#[derive(Debug)]
struct CaRoots(Arc<CaManager>);

impl TrustRoots for CaRoots {
    fn roots(&self) -> Vec<Vec<u8>> {
        self.0.bundle().map_or_else(Vec::new, |bundle| {
            bundle
                .x509_authorities
                .iter()
                .map(|authority| authority.der.clone())
                .collect()
        })
    }
}

/// The agent API's client-certificate check: optional (`AttestAgent` comes before an agent has
/// an SVID), and against the bundle as it is at the handshake.
pub(crate) fn client_verifier(ca: Arc<CaManager>) -> BundleClientVerifier {
    BundleClientVerifier::new(provider(), Arc::new(CaRoots(ca)))
}
