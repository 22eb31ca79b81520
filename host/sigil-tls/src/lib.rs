//! SPIFFE over rustls, shared by the server, the agent and their tests: one crypto provider
//! (aws-lc-rs), the check an agent makes of the server's certificate (chain to the current
//! roots, then exactly the expected SPIFFE ID in the URI SAN: SVIDs carry no DNS name), and
//! reading URI SANs and validity out of DER certificates.

use std::sync::{Arc, PoisonError, RwLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sigil_types::SpiffeId;

/// rustls' aws-lc-rs provider: the one crypto stack.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Accepts a server certificate that chains to the current roots and names exactly the
/// expected SPIFFE ID. The roots can be replaced at any time (a rotated bundle); with none
/// set (insecure bootstrap) the chain is not checked, the SPIFFE ID and the handshake
/// signature still are.
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    provider: Arc<CryptoProvider>,
    expected: SpiffeId,
    roots: RwLock<Option<Arc<WebPkiServerVerifier>>>,
}

impl SpiffeServerVerifier {
    /// A verifier for `expected`, with no roots yet.
    pub fn new(provider: Arc<CryptoProvider>, expected: SpiffeId) -> Self {
        SpiffeServerVerifier {
            provider,
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
            WebPkiServerVerifier::builder_with_provider(Arc::new(store), self.provider.clone())
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
        let ids = uri_sans(end_entity.as_ref())
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

/// The URI SANs of a DER certificate.
///
/// # Errors
///
/// The bytes are not a certificate.
pub fn uri_sans(der: &[u8]) -> Result<Vec<String>, String> {
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

/// The SPIFFE ID of a (verified) peer's leaf certificate: its first URI SAN, if that is one.
pub fn peer_spiffe_id(certs: Option<&[CertificateDer<'static>]>) -> Option<SpiffeId> {
    let leaf = certs?.first()?;
    uri_sans(leaf.as_ref()).ok()?.first()?.parse().ok()
}

/// `notBefore` and `notAfter` of a DER certificate, Unix seconds.
///
/// # Errors
///
/// The bytes are not a certificate.
pub fn validity(der: &[u8]) -> Result<(i64, i64), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let validity = cert.validity();
    Ok((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svid(uri: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().expect("uri"))];
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn uri_sans_and_the_peer_id_come_from_the_leaf() {
        let der = svid("spiffe://example.org/spire/server");
        assert_eq!(
            uri_sans(&der).expect("parsed"),
            ["spiffe://example.org/spire/server"]
        );
        let certs = [CertificateDer::from(der)];
        assert_eq!(
            peer_spiffe_id(Some(&certs)).map(|id| id.to_string()),
            Some("spiffe://example.org/spire/server".to_owned())
        );
        assert!(peer_spiffe_id(None).is_none());
        assert!(uri_sans(b"not a certificate").is_err());
    }

    #[test]
    fn only_the_expected_id_is_accepted_without_roots() {
        let verifier = SpiffeServerVerifier::new(
            provider(),
            "spiffe://example.org/spire/server".parse().expect("id"),
        );
        let name = ServerName::try_from("sigil-server").expect("name");
        let good = CertificateDer::from(svid("spiffe://example.org/spire/server"));
        assert!(
            verifier
                .verify_server_cert(&good, &[], &name, &[], UnixTime::now())
                .is_ok()
        );
        let other = CertificateDer::from(svid("spiffe://example.org/spire/agent/x"));
        let refused = verifier
            .verify_server_cert(&other, &[], &name, &[], UnixTime::now())
            .expect_err("another ID");
        assert!(
            refused
                .to_string()
                .contains("expected spiffe://example.org/spire/server")
        );
    }

    #[test]
    fn with_roots_a_chain_to_another_ca_is_refused() {
        let verifier = SpiffeServerVerifier::new(
            provider(),
            "spiffe://example.org/spire/server".parse().expect("id"),
        );
        assert!(verifier.set_roots(std::iter::empty()).is_err());
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let root = params.self_signed(&key).expect("root");
        verifier.set_roots([root.der().as_ref()]).expect("roots");
        let name = ServerName::try_from("sigil-server").expect("name");
        let stranger = CertificateDer::from(svid("spiffe://example.org/spire/server"));
        assert!(
            verifier
                .verify_server_cert(&stranger, &[], &name, &[], UnixTime::now())
                .is_err()
        );
    }
}
