//! `granted-files`: reading a granted file, and signing with a granted private key without
//! handing the key to the plugin.

use std::io::Read;
use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, RsaKeyPair};
use zeroize::Zeroizing;

/// The contents of `path`, refused when longer than `max_bytes`.
pub(crate) fn read(path: &Path, max_bytes: usize) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open the file: {e}"))?;
    let limit = u64::try_from(max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut contents = Vec::new();
    file.take(limit)
        .read_to_end(&mut contents)
        .map_err(|e| format!("cannot read the file: {e}"))?;
    if contents.len() > max_bytes {
        return Err(format!("the file is larger than {max_bytes} bytes"));
    }
    Ok(contents)
}

/// Sign `message` with the PEM private key at `path`: ECDSA P-256/SHA-256 or
/// P-384/SHA-384 (ASN.1), RSASSA-PSS/SHA-256 for RSA.
pub(crate) fn sign(path: &Path, message: &[u8], max_bytes: usize) -> Result<Vec<u8>, String> {
    let text = Zeroizing::new(read(path, max_bytes)?);
    let block = pem::parse(&*text).map_err(|_| "the key file is not PEM".to_owned())?;
    let der = Zeroizing::new(block.into_contents());
    let key = SigningKey::from_der(&der)
        .ok_or_else(|| "the key file holds no ECDSA P-256/P-384 or RSA private key".to_owned())?;
    key.sign(message)
}

/// A private key, in whichever encoding the file used.
enum SigningKey {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

impl SigningKey {
    /// PKCS#8, then SEC1 EC, then PKCS#1 RSA.
    fn from_der(der: &[u8]) -> Option<Self> {
        let curves = [
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        ];
        for curve in curves {
            if let Ok(key) = EcdsaKeyPair::from_pkcs8(curve, der) {
                return Some(SigningKey::Ecdsa(key));
            }
            if let Ok(key) = EcdsaKeyPair::from_private_key_der(curve, der) {
                return Some(SigningKey::Ecdsa(key));
            }
        }
        RsaKeyPair::from_pkcs8(der)
            .or_else(|_| RsaKeyPair::from_der(der))
            .ok()
            .map(SigningKey::Rsa)
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let random = SystemRandom::new();
        match self {
            SigningKey::Ecdsa(key) => key
                .sign(&random, message)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| "signing failed".to_owned()),
            SigningKey::Rsa(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(&signature::RSA_PSS_SHA256, &random, message, &mut signature)
                    .map_err(|_| "signing failed".to_owned())?;
                Ok(signature)
            }
        }
    }
}
