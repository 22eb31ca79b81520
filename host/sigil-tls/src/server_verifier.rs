//! The agent's check of the server: the chain to the current roots, then exactly the expected
//! SPIFFE ID.

use std::sync::{Arc, PoisonError, RwLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, RootCertStore};
use sigil_types::SpiffeId;

use crate::signatures::{Signatures, handshake_signature_methods};

/// Accepts a server certificate that chains to the current roots and names exactly the
/// expected SPIFFE ID. The roots can be replaced at any time (a rotated bundle); with none
/// set (insecure bootstrap) the chain is not checked, the SPIFFE ID and the handshake
/// signature still are.
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    signatures: Signatures,
    expected: SpiffeId,
    roots: RwLock<Option<Arc<WebPkiServerVerifier>>>,
}

impl SpiffeServerVerifier {
    /// A verifier for `expected`, with no roots yet.
    pub fn new(provider: Arc<CryptoProvider>, expected: SpiffeId) -> Self {
        SpiffeServerVerifier {
            signatures: Signatures(provider),
            expected,
            roots: RwLock::new(None),
        }
    }

    /// The SPIFFE ID the server must present.
    pub fn expected(&self) -> &SpiffeId {
        &self.expected
    }

    /// Trusts these DER roots from the next handshake on.
    ///
    /// # Errors
    ///
    /// A root that is not a usable certificate, or no root at all.
    pub fn set_roots<'a>(&self, roots: impl IntoIterator<Item = &'a [u8]>) -> Result<(), String> {
        let mut store = RootCertStore::empty();
        for der in roots {
            store
                .add(CertificateDer::from(der.to_vec()))
                .map_err(|e| format!("bad trust root: {e}"))?;
        }
        if store.is_empty() {
            return Err("no trust roots".into());
        }
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(store), self.signatures.0.clone())
                .build()
                .map_err(|e| e.to_string())?;
        *self.roots.write().unwrap_or_else(PoisonError::into_inner) = Some(verifier);
        Ok(())
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let roots = self
            .roots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(roots) = roots {
            match roots.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
                Ok(_) => {}
                // The chain verified; only the DNS name is missing, as for every SVID.
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => {}
                Err(error) => return Err(error),
            }
        }
        let ids = sigil_types::x509::uri_sans(end_entity.as_ref())
            .map_err(|e| rustls::Error::General(format!("server certificate: {e}")))?;
        if ids.len() == 1 && ids[0] == self.expected.as_str() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server presented {ids:?}, expected {}",
                self.expected
            )))
        }
    }

    handshake_signature_methods!();
}
