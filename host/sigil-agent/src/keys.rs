//! Key and CSR generation. Keys are made here and never leave the agent: only CSRs (which
//! carry the public key) go to the server.

use sigil_config::KeyType;
use sigil_types::PrivateKeyDer;

use crate::error::AgentError;

/// A fresh key pair of `key_type`.
pub(crate) fn generate(key_type: KeyType) -> Result<rcgen::KeyPair, AgentError> {
    let failed = |e: rcgen::Error| AgentError::Key(e.to_string());
    match key_type {
        KeyType::EcP384 => {
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(failed)
        }
        KeyType::Rsa2048 => {
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .map_err(failed)
        }
        KeyType::Rsa4096 => {
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_4096)
                .map_err(failed)
        }
        _ => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(failed),
    }
}

/// A DER CSR for `key` (no names: the server takes only the public key).
pub(crate) fn csr(key: &rcgen::KeyPair) -> Result<Vec<u8>, AgentError> {
    let failed = |e: rcgen::Error| AgentError::Key(e.to_string());
    let request = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(failed)?
        .serialize_request(key)
        .map_err(failed)?;
    Ok(request.der().to_vec())
}

/// The key's PKCS#8 DER, in a zeroizing holder.
pub(crate) fn private_der(key: &rcgen::KeyPair) -> PrivateKeyDer {
    PrivateKeyDer::new(key.serialize_der())
}
