//! Why the X.509 CA refused or failed to issue a certificate.

use std::path::PathBuf;

use sigil_types::{SpiffeId, TrustDomain, UnixTime};

use crate::KeyError;

/// Why a CA could not be built, or a certificate not issued. Each refusal of a CSR names the
/// rule it broke, so the server can answer the agent with a message it can act on.
///
/// Two kinds: the request's faults ([`CaError::is_peer_fault`]: the CSR, or what is asked
/// for), which the requester may read and can fix; and the CA's own failures (its
/// certificate, keys, upstream CA, the signing itself), which belong in the server's log and
/// never in an answer to a peer (they may name key IDs and file paths).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// The CSR is not a DER PKCS#10 request, has trailing bytes, or a malformed extension.
    #[error("CSR is malformed: {0}")]
    CsrMalformed(String),
    /// The CSR's self-signature does not verify with the key it carries.
    #[error("CSR signature is invalid")]
    CsrSignatureInvalid,
    /// The CSR is signed with an algorithm sigil does not accept (SHA-1, unknown OIDs).
    #[error("CSR signature algorithm {0} is not supported")]
    CsrSignatureAlgorithmNotSupported(String),
    /// The CSR's public key is of a type the key policy does not allow.
    #[error("CSR key type {key_type} is not allowed (allowed: {allowed})")]
    KeyTypeNotAllowed {
        /// What the CSR carries, such as `RSA-1024` or `EC P-521`.
        key_type: String,
        /// What the policy allows.
        allowed: String,
    },
    /// A subject alternative name in the CSR is not one the entry grants.
    #[error("CSR subject alternative name {san} is not allowed: {reason}")]
    SanNotAllowed {
        /// The offending SAN, as `URI:…`, `DNS:…`, `IP:…`, `email:…`.
        san: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// The SPIFFE ID to issue for is not in the CA's trust domain.
    #[error("SPIFFE ID {spiffe_id} is not in trust domain {trust_domain}")]
    SpiffeIdNotInTrustDomain {
        /// The requested ID.
        spiffe_id: SpiffeId,
        /// The CA's trust domain.
        trust_domain: TrustDomain,
    },
    /// A DNS name to put in a certificate is empty or not ASCII.
    #[error("invalid DNS name {name:?}: {reason}")]
    InvalidDnsName {
        /// The refused name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A subject attribute cannot be encoded (a country that is not two printable letters).
    #[error("invalid certificate subject: {0}")]
    InvalidSubject(String),
    /// A TTL of zero, or one that overflows a timestamp.
    #[error("invalid TTL: {0}")]
    InvalidTtl(&'static str),
    /// The CA certificate has expired; nothing more can be issued with it.
    #[error("CA certificate expired at {not_after} (now {now})")]
    CaExpired {
        /// The CA's notAfter.
        not_after: UnixTime,
        /// The time of the request.
        now: UnixTime,
    },
    /// A certificate that should be a CA certificate does not parse or is not a CA.
    #[error("CA certificate is unusable: {0}")]
    InvalidCaCertificate(String),
    /// A CA certificate and the key meant to sign with it do not belong together.
    #[error("key {key_id:?} does not match the CA certificate's public key")]
    KeyMismatch {
        /// The key's ID.
        key_id: String,
    },
    /// An upstream CA file cannot be read or parsed.
    #[error("upstream CA file {path}: {reason}")]
    UpstreamFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The upstream key file's key is not the upstream certificate's key.
    #[error("upstream key {key_path} does not match certificate {cert_path}")]
    UpstreamKeyMismatch {
        /// The certificate file.
        cert_path: PathBuf,
        /// The key file.
        key_path: PathBuf,
    },
    /// The upstream certificate is not allowed to sign CA certificates.
    #[error("upstream certificate {path} is not a CA: {reason}")]
    UpstreamNotCa {
        /// The certificate file.
        path: PathBuf,
        /// Which constraint fails.
        reason: &'static str,
    },
    /// The upstream certificate has expired.
    #[error("upstream certificate {path} expired at {not_after} (now {now})")]
    UpstreamExpired {
        /// The certificate file.
        path: PathBuf,
        /// Its notAfter.
        not_after: UnixTime,
        /// The time of the check.
        now: UnixTime,
    },
    /// The upstream certificate is not valid yet.
    #[error("upstream certificate {path} is not valid before {not_before} (now {now})")]
    UpstreamNotYetValid {
        /// The certificate file.
        path: PathBuf,
        /// Its notBefore.
        not_before: UnixTime,
        /// The time of the check.
        now: UnixTime,
    },
    /// The upstream certificates do not chain to the upstream bundle (or, without a bundle,
    /// to a self-signed certificate at the end of the certificate file).
    #[error("upstream chain is invalid: {0}")]
    UpstreamChainInvalid(String),
    /// The upstream certificate's subject cannot be reproduced exactly as an issuer name
    /// (multi-valued RDNs or repeated attribute types).
    #[error("upstream certificate subject is not supported: {0}")]
    UpstreamSubjectUnsupported(String),
    /// Building or signing a certificate failed inside the X.509 library.
    #[error("certificate signing failed: {0}")]
    SigningFailed(String),
    /// A key could not be generated or loaded.
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl CaError {
    /// Whether the request is at fault (a malformed or badly signed CSR, a key type, SAN,
    /// SPIFFE ID, DNS name or TTL the CA may not issue) rather than the CA itself. The server
    /// answers these InvalidArgument with this text; everything else is the CA's failure,
    /// logged and answered Internal without it.
    pub fn is_peer_fault(&self) -> bool {
        // Exhaustive on purpose: a new variant must be classified here.
        match self {
            Self::CsrMalformed(_)
            | Self::CsrSignatureInvalid
            | Self::CsrSignatureAlgorithmNotSupported(_)
            | Self::KeyTypeNotAllowed { .. }
            | Self::SanNotAllowed { .. }
            | Self::SpiffeIdNotInTrustDomain { .. }
            | Self::InvalidDnsName { .. }
            | Self::InvalidTtl(_) => true,
            Self::InvalidSubject(_)
            | Self::CaExpired { .. }
            | Self::InvalidCaCertificate(_)
            | Self::KeyMismatch { .. }
            | Self::UpstreamFile { .. }
            | Self::UpstreamKeyMismatch { .. }
            | Self::UpstreamNotCa { .. }
            | Self::UpstreamExpired { .. }
            | Self::UpstreamNotYetValid { .. }
            | Self::UpstreamChainInvalid(_)
            | Self::UpstreamSubjectUnsupported(_)
            | Self::SigningFailed(_)
            | Self::Key(_) => false,
        }
    }
}
