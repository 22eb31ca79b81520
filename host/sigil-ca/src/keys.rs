//! Private keys and the key managers that generate and keep them.
//!
//! Architecture invariant: key material never reaches `Debug` output or a log line. A [`Key`]
//! holds its PKCS#8 bytes inside rcgen's key pair, which is zeroized when the last clone of the
//! key is dropped; the crypto library's own copies are cleansed by aws-lc on free.

mod disk;
mod memory;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, RsaKeyPair,
};
use rcgen::PublicKeyData;
use sigil_types::PrivateKeyDer;
use zeroize::Zeroize;

pub use disk::DiskKeyManager;
pub use memory::MemoryKeyManager;

use crate::KeyType;

/// The longest key ID a key manager accepts. Key IDs become file names.
const MAX_KEY_ID_LEN: usize = 128;

/// Why a key could not be generated, stored or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key ID is empty, too long, or has characters other than `[A-Za-z0-9._-]`.
    #[error("invalid key ID {id:?}: {reason}")]
    InvalidKeyId {
        /// The refused ID.
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The crypto library failed to generate a key.
    #[error("failed to generate a {key_type} key")]
    GenerationFailed {
        /// The requested key type.
        key_type: KeyType,
    },
    /// PKCS#8 bytes that are not a key of a supported type.
    #[error("key {id:?} is not a supported PKCS#8 private key: {reason}")]
    UnsupportedKey {
        /// The key's ID.
        id: String,
        /// What was found instead.
        reason: String,
    },
    /// A key file does not hold a usable PKCS#8 key.
    #[error("key file {path} is corrupt: {reason}")]
    KeyFileCorrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A key file is readable or writable by someone other than its owner.
    #[error("key file {path} has mode {mode:o}: it must be 0600 (owner read/write only)")]
    KeyFilePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key directory can be written by users other than its owner.
    #[error("key directory {path} has mode {mode:o}: group and others must not write to it")]
    KeyDirPermissions {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A file system operation on the key directory failed.
    #[error("key store I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// Generates, keeps and hands out private keys by ID. SPIRE's `KeyManager` plugin in spirit:
/// the CA asks for `x509-CA-A`, `JWT-Signer-B` and so on, and finds them again after a restart.
pub trait KeyManager: Send + Sync + fmt::Debug {
    /// Generates a fresh key of `key_type` under `id`, replacing any key already stored there.
    fn generate_key(&self, id: &str, key_type: KeyType) -> Result<Key, KeyError>;

    /// The key stored under `id`, if any.
    fn key(&self, id: &str) -> Result<Option<Key>, KeyError>;

    /// Every stored key, sorted by ID.
    fn keys(&self) -> Result<Vec<Key>, KeyError>;
}

/// A private key with its ID and type. Cheap to clone; the secret is shared, never copied.
#[derive(Clone)]
pub struct Key(Arc<KeyInner>);

struct KeyInner {
    id: String,
    key_type: KeyType,
    pair: rcgen::KeyPair,
    spki_der: Vec<u8>,
}

impl Drop for KeyInner {
    fn drop(&mut self) {
        self.pair.zeroize();
    }
}

impl Key {
    /// Generates a new key. The ID is validated as a key manager would.
    pub fn generate(id: &str, key_type: KeyType) -> Result<Self, KeyError> {
        validate_key_id(id)?;
        let failed = |_| KeyError::GenerationFailed { key_type };
        let pair = match key_type {
            KeyType::EcP256 | KeyType::EcP384 => {
                rcgen::KeyPair::generate_for(rcgen_algorithm(key_type)).map_err(failed)?
            }
            KeyType::Rsa2048 => {
                rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                    .map_err(failed)?
            }
            KeyType::Rsa4096 => {
                rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_4096)
                    .map_err(failed)?
            }
        };
        Ok(Self::from_parts(id, key_type, pair))
    }

    /// Loads a PKCS#8 DER private key, working out its type. Only the four [`KeyType`]s are
    /// accepted.
    pub fn from_pkcs8_der(id: &str, pkcs8_der: &[u8]) -> Result<Self, KeyError> {
        validate_key_id(id)?;
        let unsupported = |reason: &str| KeyError::UnsupportedKey {
            id: id.to_owned(),
            reason: reason.to_owned(),
        };
        let key_type =
            if EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8_der).is_ok() {
                KeyType::EcP256
            } else if EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, pkcs8_der).is_ok() {
                KeyType::EcP384
            } else if let Ok(rsa) = RsaKeyPair::from_pkcs8(pkcs8_der) {
                match rsa.public_modulus_len() * 8 {
                    2048 => KeyType::Rsa2048,
                    4096 => KeyType::Rsa4096,
                    _ => {
                        return Err(unsupported(
                            "RSA key of a size other than 2048 or 4096 bits",
                        ));
                    }
                }
            } else {
                return Err(unsupported(
                    "not a PKCS#8 EC P-256, EC P-384 or RSA private key",
                ));
            };
        let pair = rcgen::KeyPair::try_from(pkcs8_der)
            .map_err(|e| unsupported(&format!("unusable for signing: {e}")))?;
        if pair.algorithm() != rcgen_algorithm(key_type) {
            return Err(unsupported("key algorithm does not match its encoding"));
        }
        Ok(Self::from_parts(id, key_type, pair))
    }

    fn from_parts(id: &str, key_type: KeyType, pair: rcgen::KeyPair) -> Self {
        let spki_der = pair.subject_public_key_info();
        Self(Arc::new(KeyInner {
            id: id.to_owned(),
            key_type,
            pair,
            spki_der,
        }))
    }

    /// The key's ID.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        self.0.key_type
    }

    /// The public key as SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> &[u8] {
        &self.0.spki_der
    }

    /// A copy of the private key for handing to its owner (an SVID's key). Never log it.
    pub fn to_private_key_der(&self) -> PrivateKeyDer {
        PrivateKeyDer::new(self.secret_pkcs8_der().to_vec())
    }

    /// The PKCS#8 DER secret.
    pub(crate) fn secret_pkcs8_der(&self) -> &[u8] {
        self.0.pair.serialized_der()
    }

    /// The rcgen view of the key, for signing certificates.
    pub(crate) fn key_pair(&self) -> &rcgen::KeyPair {
        &self.0.pair
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.0.id)
            .field("key_type", &self.0.key_type)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Key IDs become file names: 1 to 128 characters of `[A-Za-z0-9._-]`, not starting with `.`.
pub(crate) fn validate_key_id(id: &str) -> Result<(), KeyError> {
    let invalid = |reason| {
        Err(KeyError::InvalidKeyId {
            id: id.to_owned(),
            reason,
        })
    };
    if id.is_empty() {
        return invalid("key ID is empty");
    }
    if id.len() > MAX_KEY_ID_LEN {
        return invalid("key ID is longer than 128 characters");
    }
    if id.starts_with('.') {
        return invalid("key ID starts with '.'");
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return invalid("key ID has characters other than letters, digits, '.', '-' and '_'");
    }
    Ok(())
}

/// The X.509 signature algorithm that certificates signed by a key of this type carry.
pub(crate) fn rcgen_algorithm(key_type: KeyType) -> &'static rcgen::SignatureAlgorithm {
    match key_type {
        KeyType::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyType::Rsa2048 | KeyType::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
    }
}

#[cfg(test)]
mod tests;
