//! An upstream CA read from PEM files, as SPIRE's `disk` UpstreamAuthority does: the sigil CA
//! becomes an intermediate signed by it, the upstream roots go into the trust bundle and the
//! upstream intermediates are served after every SVID.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, PublicKeyData};
use sigil_types::UnixTime;
use x509_parser::pem::Pem;
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::{Zeroize, Zeroizing};

use crate::CaError;

/// Where the upstream CA's files are (SPIRE's `UpstreamAuthority "disk"` settings).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpstreamDiskConfig {
    /// PEM certificates: the upstream signing CA first, then any intermediates above it.
    pub cert_file_path: PathBuf,
    /// The upstream signing CA's private key, PEM (PKCS#8, SEC1 or PKCS#1).
    pub key_file_path: PathBuf,
    /// PEM root certificates the upstream chain ends at. Without it, the last certificate of
    /// `cert_file_path` must be self-signed and is the root.
    pub bundle_file_path: Option<PathBuf>,
}

/// A loaded upstream CA, checked to be usable at the time it was loaded.
pub struct UpstreamCa {
    /// Certificates served after the sigil CA: the upstream signing certificate and the
    /// intermediates above it, root excluded.
    chain: Vec<Vec<u8>>,
    /// Trust anchors for the bundle.
    roots: Vec<Vec<u8>>,
    not_after: UnixTime,
    subject_raw: Vec<u8>,
    issuer: rcgen::Issuer<'static, UpstreamKey>,
}

impl std::fmt::Debug for UpstreamCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamCa")
            .field("chain_len", &self.chain.len())
            .field("roots_len", &self.roots.len())
            .field("not_after", &self.not_after)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl UpstreamCa {
    /// Reads and checks the upstream files at `now`: the certificate must be a CA allowed to
    /// sign CA certificates, valid now, matched by the key, and chain to the roots.
    pub fn load_disk(config: &UpstreamDiskConfig, now: UnixTime) -> Result<Self, CaError> {
        let cert_path = &config.cert_file_path;
        let certs = read_pem_certs(cert_path)?;
        let signing_der = certs.first().ok_or_else(|| CaError::UpstreamFile {
            path: cert_path.clone(),
            reason: "no CERTIFICATE block".to_owned(),
        })?;
        let signing = parse_cert(cert_path, signing_der)?;
        check_signing_cert(cert_path, &signing, now)?;
        check_name_reproducible(&signing)?;

        let key = read_key(&config.key_file_path)?;
        let spki = signing.public_key();
        if key.0.der_bytes() != spki.subject_public_key.data.as_ref()
            || !key_algorithms_agree(&key.0, &signing)
        {
            return Err(CaError::UpstreamKeyMismatch {
                cert_path: cert_path.clone(),
                key_path: config.key_file_path.clone(),
            });
        }

        let (chain, roots) = match &config.bundle_file_path {
            Some(bundle_path) => chain_to_bundle(cert_path, &certs, read_pem_certs(bundle_path)?)?,
            None => chain_to_self_signed(cert_path, &certs)?,
        };

        let not_after = signing.validity().not_after.timestamp();
        let subject_raw = signing.subject().as_raw().to_vec();
        let issuer =
            rcgen::Issuer::from_ca_cert_der(&signing_der.as_slice().into(), key).map_err(|e| {
                CaError::UpstreamFile {
                    path: cert_path.clone(),
                    reason: format!("unusable as an issuer: {e}"),
                }
            })?;
        Ok(Self {
            chain,
            roots,
            not_after,
            subject_raw,
            issuer,
        })
    }

    /// The upstream roots: the bundle's X.509 authorities.
    pub fn roots(&self) -> &[Vec<u8>] {
        &self.roots
    }

    /// The certificates served after the sigil CA: the upstream signing certificate and the
    /// intermediates above it, root excluded (empty when the signing certificate is the root).
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// The upstream signing certificate's notAfter; intermediates never outlive it.
    pub fn not_after(&self) -> UnixTime {
        self.not_after
    }

    /// Signs a CA certificate for `public_key` and checks that its issuer name is exactly the
    /// upstream's subject.
    pub(crate) fn sign(
        &self,
        params: &CertificateParams,
        public_key: &impl PublicKeyData,
    ) -> Result<Vec<u8>, CaError> {
        let cert = params
            .signed_by(public_key, &self.issuer)
            .map_err(|e| CaError::SigningFailed(e.to_string()))?;
        let der = cert.der().to_vec();
        let (_, parsed) =
            X509Certificate::from_der(&der).map_err(|e| CaError::SigningFailed(e.to_string()))?;
        if parsed.issuer().as_raw() != self.subject_raw.as_slice() {
            return Err(CaError::UpstreamSubjectUnsupported(
                "the issuer name cannot be reproduced byte for byte".to_owned(),
            ));
        }
        Ok(der)
    }
}

/// The upstream private key; zeroized on drop.
struct UpstreamKey(rcgen::KeyPair);

impl Drop for UpstreamKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl PublicKeyData for UpstreamKey {
    fn der_bytes(&self) -> &[u8] {
        self.0.der_bytes()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.0.algorithm()
    }
}

impl rcgen::SigningKey for UpstreamKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign(msg)
    }
}

fn read_pem_certs(path: &Path) -> Result<Vec<Vec<u8>>, CaError> {
    let file_error = |reason: String| CaError::UpstreamFile {
        path: path.to_owned(),
        reason,
    };
    let bytes = fs::read(path).map_err(|e| file_error(e.to_string()))?;
    let mut certs = Vec::new();
    for (index, block) in Pem::iter_from_buffer(&bytes).enumerate() {
        let block = block.map_err(|e| file_error(format!("PEM block {index}: {e}")))?;
        if block.label == "CERTIFICATE" {
            certs.push(block.contents);
        }
    }
    if certs.is_empty() {
        return Err(file_error("no CERTIFICATE block".to_owned()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<UpstreamKey, CaError> {
    let file_error = |reason: String| CaError::UpstreamFile {
        path: path.to_owned(),
        reason,
    };
    let bytes = Zeroizing::new(fs::read(path).map_err(|e| file_error(e.to_string()))?);
    for block in Pem::iter_from_buffer(&bytes) {
        let mut block = block.map_err(|e| file_error(format!("PEM: {e}")))?;
        let contents = Zeroizing::new(std::mem::take(&mut block.contents));
        if matches!(
            block.label.as_str(),
            "PRIVATE KEY" | "EC PRIVATE KEY" | "RSA PRIVATE KEY"
        ) {
            return rcgen::KeyPair::try_from(contents.as_slice())
                .map(UpstreamKey)
                .map_err(|e| file_error(format!("unusable private key: {e}")));
        }
    }
    Err(file_error("no PRIVATE KEY block".to_owned()))
}

fn parse_cert<'a>(path: &Path, der: &'a [u8]) -> Result<X509Certificate<'a>, CaError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(CaError::UpstreamFile {
            path: path.to_owned(),
            reason: "trailing bytes after a certificate".to_owned(),
        }),
        Err(e) => Err(CaError::UpstreamFile {
            path: path.to_owned(),
            reason: format!("certificate does not parse: {e}"),
        }),
    }
}

fn check_signing_cert(
    path: &Path,
    cert: &X509Certificate<'_>,
    now: UnixTime,
) -> Result<(), CaError> {
    let not_ca = |reason| CaError::UpstreamNotCa {
        path: path.to_owned(),
        reason,
    };
    let constraints = cert
        .basic_constraints()
        .map_err(|_| not_ca("basicConstraints is malformed or repeated"))?
        .ok_or_else(|| not_ca("basicConstraints is missing"))?;
    if !constraints.value.ca {
        return Err(not_ca("basicConstraints CA is false"));
    }
    if constraints.value.path_len_constraint == Some(0) {
        return Err(not_ca(
            "pathLenConstraint 0 forbids issuing an intermediate CA",
        ));
    }
    if let Some(usage) = cert
        .key_usage()
        .map_err(|_| not_ca("keyUsage is malformed or repeated"))?
        && !usage.value.key_cert_sign()
    {
        return Err(not_ca("keyUsage lacks keyCertSign"));
    }
    let validity = cert.validity();
    let (not_before, not_after) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    if now > not_after {
        return Err(CaError::UpstreamExpired {
            path: path.to_owned(),
            not_after,
            now,
        });
    }
    if now < not_before {
        return Err(CaError::UpstreamNotYetValid {
            path: path.to_owned(),
            not_before,
            now,
        });
    }
    Ok(())
}

/// rcgen rebuilds the issuer name from parsed attributes, keyed by type: that is exact only
/// when every RDN has one attribute and no attribute type repeats.
fn check_name_reproducible(cert: &X509Certificate<'_>) -> Result<(), CaError> {
    let mut seen = Vec::new();
    for rdn in cert.subject().iter_rdn() {
        let mut attributes = rdn.iter();
        let (Some(attribute), None) = (attributes.next(), attributes.next()) else {
            return Err(CaError::UpstreamSubjectUnsupported(
                "a relative distinguished name is empty or multi-valued".to_owned(),
            ));
        };
        let oid = attribute.attr_type().to_id_string();
        if seen.contains(&oid) {
            return Err(CaError::UpstreamSubjectUnsupported(format!(
                "attribute {oid} appears more than once"
            )));
        }
        seen.push(oid);
    }
    Ok(())
}

/// Whether the key and the certificate use the same public key algorithm.
fn key_algorithms_agree(key: &rcgen::KeyPair, cert: &X509Certificate<'_>) -> bool {
    let key_spki = key.subject_public_key_info();
    match x509_parser::x509::SubjectPublicKeyInfo::from_der(&key_spki) {
        Ok((_, spki)) => spki.algorithm.algorithm == cert.public_key().algorithm.algorithm,
        Err(_) => false,
    }
}

/// Upstream intermediates to serve, and the roots for the bundle.
type ChainAndRoots = (Vec<Vec<u8>>, Vec<Vec<u8>>);

fn is_self_signed(cert: &X509Certificate<'_>) -> bool {
    cert.subject().as_raw() == cert.issuer().as_raw() && cert.verify_signature(None).is_ok()
}

fn verify_link(child: &X509Certificate<'_>, parent: &X509Certificate<'_>) -> bool {
    child.issuer().as_raw() == parent.subject().as_raw()
        && child.verify_signature(Some(parent.public_key())).is_ok()
}

/// With a bundle: every certificate of the file is signed by the next, the last by a root.
/// All are served, up to the first that is itself a bundle root.
fn chain_to_bundle(
    cert_path: &Path,
    certs: &[Vec<u8>],
    roots: Vec<Vec<u8>>,
) -> Result<ChainAndRoots, CaError> {
    let end = certs
        .iter()
        .position(|c| roots.contains(c))
        .unwrap_or(certs.len());
    if end == 0 {
        return Err(CaError::UpstreamChainInvalid(
            "the upstream signing certificate is itself a bundle root".to_owned(),
        ));
    }
    let parsed = certs[..end]
        .iter()
        .map(|der| parse_cert(cert_path, der))
        .collect::<Result<Vec<_>, _>>()?;
    for (index, pair) in parsed.windows(2).enumerate() {
        if !verify_link(&pair[0], &pair[1]) {
            return Err(CaError::UpstreamChainInvalid(format!(
                "certificate {index} of the certificate file is not signed by certificate {}",
                index + 1
            )));
        }
    }
    let last = parsed
        .last()
        .ok_or_else(|| CaError::UpstreamChainInvalid("the certificate file is empty".to_owned()))?;
    let signed_by_root = roots
        .iter()
        .any(|root_der| match X509Certificate::from_der(root_der) {
            Ok((_, root)) => verify_link(last, &root),
            Err(_) => false,
        });
    if !signed_by_root {
        return Err(CaError::UpstreamChainInvalid(
            "the upstream chain is not signed by any certificate of the bundle file".to_owned(),
        ));
    }
    Ok((certs[..end].to_vec(), roots))
}

/// Without a bundle: the file's last certificate must be self-signed and is the root; the
/// others are served.
fn chain_to_self_signed(cert_path: &Path, certs: &[Vec<u8>]) -> Result<ChainAndRoots, CaError> {
    let parsed = certs
        .iter()
        .map(|der| parse_cert(cert_path, der))
        .collect::<Result<Vec<_>, _>>()?;
    for (index, pair) in parsed.windows(2).enumerate() {
        if !verify_link(&pair[0], &pair[1]) {
            return Err(CaError::UpstreamChainInvalid(format!(
                "certificate {index} of the certificate file is not signed by certificate {}",
                index + 1
            )));
        }
    }
    match (parsed.last(), certs.split_last()) {
        (Some(root), Some((root_der, rest))) if is_self_signed(root) => {
            Ok((rest.to_vec(), vec![root_der.clone()]))
        }
        _ => Err(CaError::UpstreamChainInvalid(
            "the last certificate of the certificate file is not self-signed and no \
             bundle_file_path is set"
                .to_owned(),
        )),
    }
}
