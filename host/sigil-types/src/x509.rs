//! Facts read out of DER X.509 certificates: their URI SANs (where SPIFFE IDs live) and their
//! validity. Parsing only; checking a chain is the caller's (rustls, the CA).

use x509_parser::extensions::GeneralName;

use crate::UnixTime;

/// The URI SANs of a DER certificate, in order.
///
/// # Errors
///
/// The bytes are not a certificate.
pub fn uri_sans(der: &[u8]) -> Result<Vec<String>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let mut uris = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::URI(uri) = name {
                uris.push((*uri).to_owned());
            }
        }
    }
    Ok(uris)
}

/// `notBefore` and `notAfter` of a DER certificate, in Unix seconds.
///
/// # Errors
///
/// The bytes are not a certificate.
pub fn validity(der: &[u8]) -> Result<(UnixTime, UnixTime), String> {
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

    #[test]
    fn reads_uri_sans_and_validity() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![
            rcgen::SanType::DnsName("example.org".try_into().unwrap()),
            rcgen::SanType::URI("spiffe://example.org/a".try_into().unwrap()),
        ];
        params.not_before = rcgen::date_time_ymd(2030, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 1, 2);
        let der = params.self_signed(&key).unwrap().der().to_vec();
        assert_eq!(uri_sans(&der).unwrap(), ["spiffe://example.org/a"]);
        assert_eq!(validity(&der).unwrap(), (1_893_456_000, 1_893_542_400));
        assert!(uri_sans(b"not a certificate").is_err());
        assert!(validity(b"").is_err());
    }
}
