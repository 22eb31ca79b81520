//! The server's check of client certificates: they must chain to the trust bundle as it is at
//! the handshake (the CA rotates). A client without a certificate is let in, because
//! `AttestAgent` comes before an agent has an SVID; every API call then decides whether it
//! needs one.

use std::fmt;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DistinguishedName, RootCertStore};

use crate::signatures::{Signatures, handshake_signature_methods};

/// Where the verifier reads the DER trust roots, at every handshake.
pub trait TrustRoots: Send + Sync + fmt::Debug {
    /// The roots as they are now.
    fn roots(&self) -> Vec<Vec<u8>>;
}

/// Accepts client certificates that chain to [`TrustRoots`] as they are at the handshake, and
/// clients without one.
#[derive(Debug)]
pub struct BundleClientVerifier {
    roots: Arc<dyn TrustRoots>,
    signatures: Signatures,
}

impl BundleClientVerifier {
    /// A verifier reading its roots from `roots`.
    pub fn new(provider: Arc<CryptoProvider>, roots: Arc<dyn TrustRoots>) -> Self {
        BundleClientVerifier {
            roots,
            signatures: Signatures(provider),
        }
    }

    fn current(&self) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
        let mut store = RootCertStore::empty();
        for der in self.roots.roots() {
            store
                .add(CertificateDer::from(der))
                .map_err(|e| rustls::Error::General(format!("bundle authority: {e}")))?;
        }
        WebPkiClientVerifier::builder_with_provider(Arc::new(store), self.signatures.0.clone())
            .allow_unauthenticated()
            .build()
            .map_err(|e| rustls::Error::General(format!("client verifier: {e}")))
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

    handshake_signature_methods!();
}
