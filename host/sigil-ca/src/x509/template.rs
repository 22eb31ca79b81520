//! Certificate templates: what goes into a CA certificate and an X509-SVID, per the SPIFFE
//! X509-SVID specification and SPIRE's choices (10 s backdating, O=SPIRE/C=US leaf subjects,
//! C=US/O=SPIFFE CA subjects, 128-bit random serials).

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyUsagePurpose, SanType, SerialNumber,
};
use sigil_types::{SpiffeId, TrustDomain, UnixTime};
use time::OffsetDateTime;

use crate::CaError;

/// How far notBefore is set in the past, to absorb clock skew between peers (SPIRE: 10 s).
pub const BACKDATE_SECONDS: i64 = 10;

/// A certificate subject: at most one value per attribute, in the order C, O, CN.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Subject {
    /// Country (`C`), two letters.
    pub country: Option<String>,
    /// Organization (`O`).
    pub organization: Option<String>,
    /// Common name (`CN`).
    pub common_name: Option<String>,
}

impl Subject {
    /// SPIRE's default CA subject: C=US, O=SPIFFE.
    pub fn spire_ca_default() -> Self {
        Self {
            country: Some("US".to_owned()),
            organization: Some("SPIFFE".to_owned()),
            common_name: None,
        }
    }

    /// SPIRE's default X509-SVID subject: C=US, O=SPIRE.
    pub fn spire_svid_default() -> Self {
        Self {
            country: Some("US".to_owned()),
            organization: Some("SPIRE".to_owned()),
            common_name: None,
        }
    }

    pub(crate) fn to_distinguished_name(&self) -> Result<DistinguishedName, CaError> {
        let mut dn = DistinguishedName::new();
        if let Some(country) = &self.country {
            let printable = rcgen::string::PrintableString::try_from(country.as_str())
                .ok()
                .filter(|_| country.len() == 2)
                .ok_or_else(|| {
                    CaError::InvalidSubject(format!("country {country:?} is not two letters"))
                })?;
            dn.push(DnType::CountryName, DnValue::PrintableString(printable));
        }
        if let Some(organization) = &self.organization {
            dn.push(DnType::OrganizationName, organization.as_str());
        }
        if let Some(common_name) = &self.common_name {
            dn.push(DnType::CommonName, common_name.as_str());
        }
        Ok(dn)
    }
}

/// A Unix time as the X.509 library's date type.
pub(crate) fn offset_time(t: UnixTime) -> Result<OffsetDateTime, CaError> {
    OffsetDateTime::from_unix_timestamp(t)
        .map_err(|_| CaError::InvalidTtl("time is outside the range X.509 can encode"))
}

/// A TTL in whole seconds; zero is refused.
pub(crate) fn ttl_seconds(ttl: Duration) -> Result<i64, CaError> {
    let secs = i64::try_from(ttl.as_secs()).map_err(|_| CaError::InvalidTtl("TTL is too large"))?;
    if secs == 0 {
        return Err(CaError::InvalidTtl("TTL must be at least one second"));
    }
    Ok(secs)
}

/// A positive serial number made of 128 random bits, redrawn in the (2^-64) case where it
/// would be shorter than 64 bits.
pub(crate) fn random_serial() -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    loop {
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| CaError::SigningFailed("system random generator failed".to_owned()))?;
        if bytes[..8].iter().any(|&b| b != 0) {
            // rcgen encodes the bytes as an unsigned magnitude, so the INTEGER is positive.
            return Ok(SerialNumber::from_slice(&bytes));
        }
    }
}

/// The template of a CA certificate for `trust_domain`: basicConstraints CA (critical),
/// keyCertSign + cRLSign, URI SAN `spiffe://<td>`, SKI.
pub(crate) fn ca_params(
    trust_domain: &TrustDomain,
    subject: &Subject,
    not_before: UnixTime,
    not_after: UnixTime,
) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject.to_distinguished_name()?;
    params.not_before = offset_time(not_before)?;
    params.not_after = offset_time(not_after)?;
    params.serial_number = Some(random_serial()?);
    params.subject_alt_names = vec![uri_san(&trust_domain.id())?];
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = KeyIdMethod::Sha256;
    Ok(params)
}

/// The template of an X509-SVID: exactly one URI SAN, basicConstraints CA=false (critical),
/// digitalSignature (+ keyEncipherment for RSA), serverAuth + clientAuth, AKI, SKI. The subject
/// is `subject` plus CN = the first DNS name, if any.
pub(crate) fn leaf_params(
    spiffe_id: &SpiffeId,
    dns_names: &[String],
    subject: &Subject,
    rsa_key: bool,
    not_before: UnixTime,
    not_after: UnixTime,
) -> Result<CertificateParams, CaError> {
    let mut subject = subject.clone();
    if let Some(first) = dns_names.first() {
        subject.common_name = Some(first.clone());
    }
    let mut sans = Vec::with_capacity(1 + dns_names.len());
    sans.push(uri_san(spiffe_id)?);
    for name in dns_names {
        sans.push(dns_san(name)?);
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = subject.to_distinguished_name()?;
    params.not_before = offset_time(not_before)?;
    params.not_after = offset_time(not_after)?;
    params.serial_number = Some(random_serial()?);
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = if rsa_key {
        vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ]
    } else {
        vec![KeyUsagePurpose::DigitalSignature]
    };
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.key_identifier_method = KeyIdMethod::Sha256;
    Ok(params)
}

fn uri_san(id: &SpiffeId) -> Result<SanType, CaError> {
    // A SpiffeId is ASCII by construction; the error path is unreachable in practice.
    rcgen::string::Ia5String::try_from(id.as_str())
        .map(SanType::URI)
        .map_err(|e| CaError::SigningFailed(e.to_string()))
}

fn dns_san(name: &str) -> Result<SanType, CaError> {
    let invalid = |reason| CaError::InvalidDnsName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.len() > 253 {
        return Err(invalid("longer than 253 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'*'))
    {
        return Err(invalid(
            "characters other than letters, digits, '.', '-', '_' and '*'",
        ));
    }
    rcgen::string::Ia5String::try_from(name)
        .map(SanType::DnsName)
        .map_err(|_| invalid("not ASCII"))
}
