//! The X.509 CA: a self-signed root or an intermediate under an upstream CA, and the X509-SVIDs
//! it mints, exactly per the SPIFFE X509-SVID specification.

mod csr;
mod template;
mod upstream;

use std::time::Duration;

use rcgen::{CertificateParams, PublicKeyData};
use sigil_types::{SpiffeId, TrustDomain, UnixTime, X509Svid};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

pub use csr::CsrKeyPolicy;
pub use template::{BACKDATE_SECONDS, Subject};
pub use upstream::{UpstreamCa, UpstreamDiskConfig};

use crate::{CaError, Key, KeyType};
use csr::SanRules;

/// SPIRE's default X509-SVID TTL: one hour.
pub const DEFAULT_X509_SVID_TTL: Duration = Duration::from_secs(3600);

/// What to put in an X509-SVID. Nothing in it comes from the CSR.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct X509SvidParams {
    /// The SPIFFE ID: the certificate's only URI SAN.
    pub spiffe_id: SpiffeId,
    /// Requested lifetime; the CA's default when `None`. Always capped at the CA's notAfter.
    pub ttl: Option<Duration>,
    /// The entry's DNS names: DNS SANs, the first also the subject CN.
    pub dns_names: Vec<String>,
    /// The subject; SPIRE's O=SPIRE, C=US when `None`.
    pub subject: Option<Subject>,
}

impl X509SvidParams {
    /// Parameters for `spiffe_id` with the defaults: CA default TTL, no DNS names.
    pub fn new(spiffe_id: SpiffeId) -> Self {
        Self {
            spiffe_id,
            ttl: None,
            dns_names: Vec::new(),
            subject: None,
        }
    }
}

/// A certificate chain the CA issued: the new certificate first, then the intermediates up to
/// but excluding the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedChain {
    /// DER certificates, leaf first.
    pub cert_chain: Vec<Vec<u8>>,
    /// The new certificate's notAfter.
    pub expires_at: UnixTime,
}

/// An X.509 CA able to mint SVIDs. Built once per CA certificate: the certificate is parsed and
/// the issuer prepared here, not per SVID.
pub struct X509Ca {
    trust_domain: TrustDomain,
    cert_der: Vec<u8>,
    upstream_chain: Vec<Vec<u8>>,
    trust_anchors: Vec<Vec<u8>>,
    served_chain: Vec<Vec<u8>>,
    issuer: rcgen::Issuer<'static, KeySigner>,
    key: Key,
    not_before: UnixTime,
    not_after: UnixTime,
    default_svid_ttl: Duration,
    svid_subject: Subject,
    csr_key_policy: CsrKeyPolicy,
}

impl std::fmt::Debug for X509Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X509Ca")
            .field("trust_domain", &self.trust_domain)
            .field("key", &self.key)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("self_signed", &self.served_chain.is_empty())
            .finish_non_exhaustive()
    }
}

impl X509Ca {
    /// Creates a self-signed root CA for `trust_domain`, valid from `now` (backdated) for `ttl`.
    pub fn self_signed(
        trust_domain: &TrustDomain,
        key: Key,
        subject: &Subject,
        ttl: Duration,
        now: UnixTime,
    ) -> Result<Self, CaError> {
        let not_after = now.saturating_add(template::ttl_seconds(ttl)?);
        let params = template::ca_params(
            trust_domain,
            subject,
            now.saturating_sub(BACKDATE_SECONDS),
            not_after,
        )?;
        let cert = params
            .self_signed(&KeySigner(key.clone()))
            .map_err(|e| CaError::SigningFailed(e.to_string()))?;
        Self::from_certificate(
            trust_domain,
            cert.der().to_vec(),
            Vec::new(),
            Vec::new(),
            key,
        )
    }

    /// Creates an intermediate CA for `trust_domain` signed by `upstream`; its lifetime is
    /// capped at the upstream certificate's notAfter.
    pub fn signed_by_upstream(
        trust_domain: &TrustDomain,
        key: Key,
        subject: &Subject,
        ttl: Duration,
        upstream: &UpstreamCa,
        now: UnixTime,
    ) -> Result<Self, CaError> {
        let not_after = now
            .saturating_add(template::ttl_seconds(ttl)?)
            .min(upstream.not_after());
        let mut params = template::ca_params(
            trust_domain,
            subject,
            now.saturating_sub(BACKDATE_SECONDS),
            not_after,
        )?;
        params.use_authority_key_identifier_extension = true;
        let der = upstream.sign(&params, &KeySigner(key.clone()))?;
        Self::from_certificate(
            trust_domain,
            der,
            upstream.chain().to_vec(),
            upstream.roots().to_vec(),
            key,
        )
    }

    /// Rebuilds a CA from its certificate and key (after a restart). `upstream_chain` and
    /// `upstream_roots` are empty for a self-signed root. Checks that the certificate is a CA
    /// for `trust_domain` and that `key` is its key.
    pub fn from_certificate(
        trust_domain: &TrustDomain,
        cert_der: Vec<u8>,
        upstream_chain: Vec<Vec<u8>>,
        upstream_roots: Vec<Vec<u8>>,
        key: Key,
    ) -> Result<Self, CaError> {
        let invalid = |reason: String| CaError::InvalidCaCertificate(reason);
        let (not_before, not_after, self_signed) = {
            let cert = match X509Certificate::from_der(&cert_der) {
                Ok(([], cert)) => cert,
                Ok(_) => return Err(invalid("trailing bytes after the certificate".into())),
                Err(e) => return Err(invalid(e.to_string())),
            };
            if !cert.is_ca() {
                return Err(invalid("basicConstraints CA is not set".into()));
            }
            if cert.public_key().raw != key.public_key_der() {
                return Err(CaError::KeyMismatch {
                    key_id: key.id().to_owned(),
                });
            }
            let td_id = trust_domain.id();
            let for_trust_domain =
                cert.subject_alternative_name()
                    .ok()
                    .flatten()
                    .is_some_and(|san| {
                        san.value
                            .general_names
                            .iter()
                            .any(|n| matches!(n, GeneralName::URI(u) if *u == td_id.as_str()))
                    });
            if !for_trust_domain {
                return Err(invalid(format!("no URI SAN {td_id}")));
            }
            let self_signed = upstream_roots.is_empty();
            if self_signed && cert.subject().as_raw() != cert.issuer().as_raw() {
                return Err(invalid(
                    "not self-signed, and no upstream roots were given".into(),
                ));
            }
            let validity = cert.validity();
            (
                validity.not_before.timestamp(),
                validity.not_after.timestamp(),
                self_signed,
            )
        };
        let signer = KeySigner(key.clone());
        let issuer = rcgen::Issuer::from_ca_cert_der(&cert_der.as_slice().into(), signer)
            .map_err(|e| invalid(format!("unusable as an issuer: {e}")))?;
        let (served_chain, trust_anchors) = if self_signed {
            (Vec::new(), vec![cert_der.clone()])
        } else {
            let mut served = Vec::with_capacity(1 + upstream_chain.len());
            served.push(cert_der.clone());
            served.extend(upstream_chain.iter().cloned());
            (served, upstream_roots)
        };
        Ok(Self {
            trust_domain: trust_domain.clone(),
            cert_der,
            upstream_chain,
            trust_anchors,
            served_chain,
            issuer,
            key,
            not_before,
            not_after,
            default_svid_ttl: DEFAULT_X509_SVID_TTL,
            svid_subject: Subject::spire_svid_default(),
            csr_key_policy: CsrKeyPolicy::default(),
        })
    }

    /// Sets the TTL used when [`X509SvidParams::ttl`] is `None`.
    pub fn with_default_svid_ttl(mut self, ttl: Duration) -> Self {
        self.default_svid_ttl = ttl;
        self
    }

    /// Sets which CSR keys are accepted.
    pub fn with_csr_key_policy(mut self, policy: CsrKeyPolicy) -> Self {
        self.csr_key_policy = policy;
        self
    }

    /// The trust domain this CA issues for.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The upstream certificates served above this CA: the upstream signing certificate and
    /// its intermediates, root excluded (empty for a self-signed root).
    pub fn upstream_chain(&self) -> &[Vec<u8>] {
        &self.upstream_chain
    }

    /// The certificates the bundle must hold for SVIDs of this CA to verify: the CA itself
    /// when self-signed, the upstream roots otherwise.
    pub fn trust_anchors(&self) -> &[Vec<u8>] {
        &self.trust_anchors
    }

    /// Whether this CA is a self-signed root.
    pub fn is_self_signed(&self) -> bool {
        self.served_chain.is_empty()
    }

    /// The signing key's ID.
    pub fn key_id(&self) -> &str {
        self.key.id()
    }

    /// The CA certificate's notBefore.
    pub fn not_before(&self) -> UnixTime {
        self.not_before
    }

    /// The CA certificate's notAfter.
    pub fn not_after(&self) -> UnixTime {
        self.not_after
    }

    /// Mints an X509-SVID for the public key of `csr_der`, after checking the CSR (signature,
    /// key type, SANs) against `params`.
    pub fn mint_x509_svid(
        &self,
        csr_der: &[u8],
        params: &X509SvidParams,
        now: UnixTime,
    ) -> Result<IssuedChain, CaError> {
        self.check_member(&params.spiffe_id)?;
        let rules = SanRules {
            uri: params.spiffe_id.as_str(),
            dns_names: &params.dns_names,
        };
        let public_key = csr::check_csr(csr_der, &self.csr_key_policy, &rules)?;
        self.issue_leaf(&public_key, public_key.is_rsa(), params, now)
    }

    /// Mints an X509-SVID for a key of `key_type` generated here (the server's own SVID).
    pub fn mint_x509_svid_with_new_key(
        &self,
        key_type: KeyType,
        params: &X509SvidParams,
        now: UnixTime,
    ) -> Result<X509Svid, CaError> {
        self.check_member(&params.spiffe_id)?;
        let key = Key::generate("x509-svid", key_type)?;
        let issued = self.issue_leaf(&KeySigner(key.clone()), key_type.is_rsa(), params, now)?;
        Ok(X509Svid {
            spiffe_id: params.spiffe_id.clone(),
            cert_chain: issued.cert_chain,
            private_key: key.to_private_key_der(),
            expires_at: issued.expires_at,
            hint: String::new(),
        })
    }

    /// Mints a downstream (intermediate) CA certificate for the public key of `csr_der`, for a
    /// nested server. The CSR may carry no URI SAN or exactly `spiffe://<trust domain>`.
    pub fn mint_downstream_ca(
        &self,
        csr_der: &[u8],
        subject: &Subject,
        ttl: Duration,
        now: UnixTime,
    ) -> Result<IssuedChain, CaError> {
        let td_id = self.trust_domain.id();
        let rules = SanRules {
            uri: td_id.as_str(),
            dns_names: &[],
        };
        let public_key = csr::check_csr(csr_der, &self.csr_key_policy, &rules)?;
        let (not_before, not_after) = self.validity(Some(ttl), now)?;
        let mut params = template::ca_params(&self.trust_domain, subject, not_before, not_after)?;
        params.use_authority_key_identifier_extension = true;
        self.sign(&params, &public_key, not_after)
    }

    fn check_member(&self, spiffe_id: &SpiffeId) -> Result<(), CaError> {
        if spiffe_id.is_member_of(&self.trust_domain) {
            Ok(())
        } else {
            Err(CaError::SpiffeIdNotInTrustDomain {
                spiffe_id: spiffe_id.clone(),
                trust_domain: self.trust_domain.clone(),
            })
        }
    }

    /// notBefore (backdated) and notAfter (capped at the CA's) for a certificate issued now.
    fn validity(&self, ttl: Option<Duration>, now: UnixTime) -> Result<(i64, i64), CaError> {
        if now >= self.not_after {
            return Err(CaError::CaExpired {
                not_after: self.not_after,
                now,
            });
        }
        let ttl = template::ttl_seconds(ttl.unwrap_or(self.default_svid_ttl))?;
        Ok((
            now.saturating_sub(BACKDATE_SECONDS),
            now.saturating_add(ttl).min(self.not_after),
        ))
    }

    fn issue_leaf(
        &self,
        public_key: &impl PublicKeyData,
        rsa_key: bool,
        params: &X509SvidParams,
        now: UnixTime,
    ) -> Result<IssuedChain, CaError> {
        let (not_before, not_after) = self.validity(params.ttl, now)?;
        let template = template::leaf_params(
            &params.spiffe_id,
            &params.dns_names,
            params.subject.as_ref().unwrap_or(&self.svid_subject),
            rsa_key,
            not_before,
            not_after,
        )?;
        self.sign(&template, public_key, not_after)
    }

    fn sign(
        &self,
        template: &CertificateParams,
        public_key: &impl PublicKeyData,
        not_after: UnixTime,
    ) -> Result<IssuedChain, CaError> {
        let cert = template
            .signed_by(public_key, &self.issuer)
            .map_err(|e| CaError::SigningFailed(e.to_string()))?;
        let mut cert_chain = Vec::with_capacity(1 + self.served_chain.len());
        cert_chain.push(cert.der().to_vec());
        cert_chain.extend(self.served_chain.iter().cloned());
        Ok(IssuedChain {
            cert_chain,
            expires_at: not_after,
        })
    }
}

/// A managed key as rcgen's signer.
pub(crate) struct KeySigner(pub(crate) Key);

impl PublicKeyData for KeySigner {
    fn der_bytes(&self) -> &[u8] {
        self.0.key_pair().der_bytes()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.0.key_pair().algorithm()
    }
}

impl rcgen::SigningKey for KeySigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.key_pair().sign(msg)
    }
}

#[cfg(test)]
mod tests;
