//! kube-rs's client over sigil's TLS: rustls on aws-lc-rs, trusting only the cluster's CA
//! from the kubeconfig or the pod's service account. (kube-rs's own `rustls-tls` feature
//! would bring platform verifiers that deny.toml bans.)

use std::sync::Arc;

use base64::Engine as _;
use hyper_rustls::FixedServerNameResolver;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use secrecy::ExposeSecret as _;
use tower::{BoxError, ServiceBuilder};

/// Credentials from the pod (in cluster) or `KUBECONFIG`, as kube-rs infers them.
pub async fn infer() -> Result<kube::Client, String> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| format!("Kubernetes configuration: {e}"))?;
    client(config)
}

/// A client for `config`. Refused, by name: no CA certificate (the system's roots are not
/// used), `insecure-skip-tls-verify`.
pub fn client(config: kube::Config) -> Result<kube::Client, String> {
    if config.accept_invalid_certs {
        return Err("insecure-skip-tls-verify is not supported".into());
    }
    let mut roots = rustls::RootCertStore::empty();
    for der in config.root_cert.iter().flatten() {
        roots
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| format!("the cluster's CA certificate: {e}"))?;
    }
    let https = config.cluster_url.scheme_str() == Some("https");
    if https && roots.is_empty() {
        return Err("no CA certificate for the API server in the configuration".into());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots);
    let tls = match client_identity(&config)? {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("the client certificate: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let mut connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = ServerName::try_from(name.clone())
            .map_err(|e| format!("tls-server-name {name:?}: {e}"))?;
        connector = connector.with_server_name_resolver(FixedServerNameResolver::new(name));
    }
    let connector = connector.enable_http1().wrap_connector(http);
    let auth = config
        .auth_layer()
        .map_err(|e| format!("Kubernetes credentials: {e}"))?;
    let headers = config
        .extra_headers_layer()
        .map_err(|e| format!("Kubernetes headers: {e}"))?;
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(auth)
        .layer(headers)
        .map_err(BoxError::from)
        .service(HttpClient::builder(TokioExecutor::new()).build(connector));
    Ok(kube::Client::new(service, config.default_namespace))
}

/// The kubeconfig's client certificate and key (inline data or files), if any.
fn client_identity(
    config: &kube::Config,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, String> {
    let auth = &config.auth_info;
    let certificate = match (&auth.client_certificate_data, &auth.client_certificate) {
        (Some(data), _) => Some(decode(data, "client-certificate-data")?),
        (None, Some(path)) => {
            Some(std::fs::read(path).map_err(|e| format!("client-certificate {path:?}: {e}"))?)
        }
        (None, None) => None,
    };
    let key = match (&auth.client_key_data, &auth.client_key) {
        (Some(data), _) => Some(decode(data.expose_secret(), "client-key-data")?),
        (None, Some(path)) => {
            Some(std::fs::read(path).map_err(|e| format!("client-key {path:?}: {e}"))?)
        }
        (None, None) => None,
    };
    match (certificate, key) {
        (None, None) => Ok(None),
        (Some(certificate), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(&certificate)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("the client certificate: {e}"))?;
            let key =
                PrivateKeyDer::from_pem_slice(&key).map_err(|e| format!("the client key: {e}"))?;
            Ok(Some((chain, key)))
        }
        _ => Err("a client certificate needs its key, and a key its certificate".into()),
    }
}

fn decode(data: &str, field: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| format!("{field}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(config: kube::Config) -> String {
        match client(config) {
            Ok(_) => panic!("the configuration was accepted"),
            Err(e) => e,
        }
    }

    fn config() -> kube::Config {
        kube::Config::new("https://127.0.0.1:6443".parse().expect("uri"))
    }

    #[tokio::test]
    async fn refusals_are_named() {
        let err = refusal(config());
        assert!(err.contains("no CA certificate"), "{err}");
        let mut insecure = config();
        insecure.accept_invalid_certs = true;
        let err = refusal(insecure);
        assert!(err.contains("insecure-skip-tls-verify"), "{err}");
        let ca = sigil_testkit::https::TestTls::new().ca_pem;
        let ca = CertificateDer::from_pem_slice(ca.as_bytes()).expect("CA");
        let mut half = config();
        half.root_cert = Some(vec![ca.to_vec()]);
        half.auth_info.client_certificate_data = Some("LS0tLS0=".into());
        let err = refusal(half.clone());
        assert!(err.contains("needs its key"), "{err}");
        let mut garbled = half.clone();
        garbled.auth_info.client_certificate_data = Some("%%%".into());
        garbled.auth_info.client_key_data = Some("%%%".to_owned().into());
        let err = refusal(garbled);
        assert!(err.contains("client-certificate-data"), "{err}");
    }

    #[tokio::test]
    async fn plain_http_needs_no_ca() {
        let config = kube::Config::new("http://127.0.0.1:8080".parse().expect("uri"));
        assert!(client(config).is_ok());
    }
}
