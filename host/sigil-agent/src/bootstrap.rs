//! The bootstrap bundle: the trust the agent has in the server before its first sync, from
//! `trust_bundle_path` or downloaded from `trust_bundle_url`, in `trust_bundle_format`
//! (`pem` or `spiffe`); `None` with `insecure_bootstrap`.
//!
//! The URL is fetched over HTTPS checked against public roots, as SPIRE's agent checks it
//! against the system's: `SSL_CERT_FILE` (a PEM file, the variable Go's and OpenSSL's
//! clients read) when set, else Mozilla's roots. No redirects, a 10 s limit, 1 MiB at most.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sigil_config::{AgentConfig, TrustBundleFormat, TrustBundleSource};
use sigil_types::{Bundle, TrustDomain};
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

use crate::error::AgentError;

/// Longest wait for the bundle download.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest bundle document accepted.
const MAX_BUNDLE: u64 = 1 << 20;

/// The bootstrap bundle; `None` with `insecure_bootstrap`.
pub(crate) async fn bootstrap_bundle(config: &AgentConfig) -> Result<Option<Bundle>, AgentError> {
    let (bytes, source) = match &config.trust_bundle {
        TrustBundleSource::Path(path) => (
            std::fs::read(path).map_err(|e| AgentError::file(path, e))?,
            path.display().to_string(),
        ),
        TrustBundleSource::Url(url) => {
            let fetched = {
                let url = url.clone();
                tokio::task::spawn_blocking(move || download(&url)).await
            };
            let body = fetched
                .map_err(|e| e.to_string())
                .and_then(|downloaded| downloaded)
                .map_err(|reason| AgentError::file(url.as_str(), reason))?;
            (body, url.clone())
        }
        _ => return Ok(None),
    };
    parse(&bytes, config.trust_bundle_format, &config.trust_domain)
        .map(Some)
        .map_err(|reason| AgentError::file(source, reason))
}

/// The bundle in `bytes`, which must hold at least one X.509 authority.
fn parse(bytes: &[u8], format: TrustBundleFormat, td: &TrustDomain) -> Result<Bundle, String> {
    let bundle = match format {
        TrustBundleFormat::Spiffe => {
            let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
            Bundle::from_jwks(td.clone(), text)
        }
        _ => Bundle::from_x509_pem(td.clone(), bytes),
    }
    .map_err(|e| e.to_string())?;
    if bundle.x509_authorities.is_empty() {
        return Err("no X.509 authorities".into());
    }
    Ok(bundle)
}

/// GET `url`: the body of a 200 answer.
fn download(url: &str) -> Result<Vec<u8>, String> {
    let roots = match std::env::var_os("SSL_CERT_FILE") {
        Some(file) => pem_roots(Path::new(&file))?,
        None => RootCerts::WebPki,
    };
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(roots)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .max_redirects(0)
        .http_status_as_error(false)
        .https_only(true)
        .timeout_global(Some(FETCH_TIMEOUT))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    let status = response.status();
    if status != 200 {
        return Err(format!("the server answered HTTP {}", status.as_u16()));
    }
    let mut body = Vec::new();
    response
        .body_mut()
        .as_reader()
        .take(MAX_BUNDLE + 1)
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    if body.len() as u64 > MAX_BUNDLE {
        return Err(format!("the bundle is larger than {MAX_BUNDLE} bytes"));
    }
    Ok(body)
}

/// Roots from the PEM file `SSL_CERT_FILE` names.
fn pem_roots(file: &Path) -> Result<RootCerts, String> {
    let text = std::fs::read(file).map_err(|e| format!("SSL_CERT_FILE {}: {e}", file.display()))?;
    let certificates: Vec<Certificate<'static>> = pem::parse_many(&text)
        .map_err(|e| format!("SSL_CERT_FILE {}: {e}", file.display()))?
        .into_iter()
        .filter(|block| block.tag() == "CERTIFICATE")
        .map(|block| Certificate::from_der(block.contents()).to_owned())
        .collect();
    if certificates.is_empty() {
        return Err(format!("SSL_CERT_FILE {}: no certificate", file.display()));
    }
    Ok(RootCerts::Specific(Arc::new(certificates)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_without_authorities_is_refused() {
        let td: TrustDomain = "example.org".parse().expect("td");
        let error = parse(b"{\"keys\":[]}", TrustBundleFormat::Spiffe, &td).expect_err("empty");
        assert!(error.contains("no X.509 authorities"), "{error}");
        assert!(parse(b"not pem", TrustBundleFormat::Pem, &td).is_err());
    }

    #[test]
    fn plain_http_is_refused() {
        let error = download("http://127.0.0.1:9/bundle").expect_err("http");
        assert!(!error.is_empty());
    }
}
