//! The kubelet access of the built-in `k8s` workload attestor, from SPIRE's keys in its
//! `plugin_data` (`doc/plugin_agent_workloadattestor_k8s.md`), and the `pod-lookup` grant
//! built from it. The plugin itself reads only `disable_container_selectors`.

use std::path::PathBuf;
use std::time::Duration;

use sigil_config::{DataValue, PluginData, parse_go_duration};
use sigil_plugins::{KubeletAccess, KubeletTrust};

/// Where the service account's files are in a pod.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const DEFAULT_SECURE_PORT: u16 = 10250;
const DEFAULT_NODE_NAME_ENV: &str = "MY_NODE_NAME";
const DEFAULT_MAX_POLL_ATTEMPTS: u32 = 60;
const DEFAULT_POLL_RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// Bound of one `/pods` request (SPIRE's kubelet request timeout).
pub(crate) const KUBELET_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// SPIRE keys sigil reads but that change nothing here: the agent logs one line each.
const NO_EFFECT: &[(&str, &str)] = &[
    (
        "reload_interval",
        "the token is read at every request and the TLS files at start",
    ),
    (
        "use_new_container_locator",
        "sigil always locates containers as SPIRE's new locator does",
    ),
    (
        "verbose_container_locator_logs",
        "the container locator logs at debug level",
    ),
    ("sigstore", "sigstore image verification is not implemented"),
    (
        "experimental",
        "the API server cache and the SPIFFE broker are not implemented",
    ),
];

/// How to reach the kubelet, as read from `plugin_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KubeletSettings {
    /// `http://127.0.0.1:<read-only port>` or `https://<node name or 127.0.0.1>:<port>`.
    pub(crate) url: String,
    /// The CA file; `None` with `skip_kubelet_verification` (or over plain HTTP).
    pub(crate) ca_path: Option<PathBuf>,
    /// The bearer token file; `None` with anonymous or certificate authentication.
    pub(crate) token_path: Option<PathBuf>,
    /// Client certificate and key files.
    pub(crate) client: Option<(PathBuf, PathBuf)>,
    pub(crate) max_poll_attempts: u32,
    pub(crate) poll_retry_interval: Duration,
    /// Keys accepted without effect, with why: for the log.
    pub(crate) no_effect: Vec<(String, &'static str)>,
}

/// Read the settings; `env` looks up environment variables (the node name). The error
/// names the key.
pub(crate) fn kubelet_settings(
    data: &PluginData,
    env: impl Fn(&str) -> Option<String>,
) -> Result<KubeletSettings, String> {
    let mut no_effect = Vec::new();
    for entry in &data.entries {
        let key = entry.key.as_str();
        if let Some((_, why)) = NO_EFFECT.iter().find(|(k, _)| *k == key) {
            no_effect.push((key.to_owned(), *why));
            continue;
        }
        let known = [
            "kubelet_read_only_port",
            "kubelet_secure_port",
            "kubelet_ca_path",
            "skip_kubelet_verification",
            "token_path",
            "certificate_path",
            "private_key_path",
            "use_anonymous_authentication",
            "node_name_env",
            "node_name",
            "max_poll_attempts",
            "poll_retry_interval",
            "disable_container_selectors",
            "disable_kubelet_client",
            "enable_namespace_labels",
        ];
        if !known.contains(&key) {
            return Err(format!("{key}: not a setting of the k8s workload attestor"));
        }
    }
    // Checked for its type here; the plugin reads it.
    flag(data, "disable_container_selectors")?;
    if flag(data, "disable_kubelet_client")? {
        return Err("disable_kubelet_client: sigil's k8s attestor finds pods through the kubelet only (reference attestation is not implemented)".into());
    }
    if flag(data, "enable_namespace_labels")? {
        return Err("enable_namespace_labels: ns-label selectors are not implemented".into());
    }
    for (key, _) in &no_effect {
        if matches!(key.as_str(), "reload_interval")
            && let Some(value) = text(data, key)?
        {
            parse_go_duration(&value).map_err(|e| format!("{key}: {e}"))?;
        }
        if matches!(
            key.as_str(),
            "use_new_container_locator" | "verbose_container_locator_logs"
        ) {
            flag(data, key)?;
        }
    }

    let read_only = port(data, "kubelet_read_only_port")?;
    let secure = port(data, "kubelet_secure_port")?;
    if read_only.is_some() && secure.is_some() {
        return Err(
            "kubelet_read_only_port and kubelet_secure_port: cannot use both the read-only and secure port"
                .into(),
        );
    }
    let max_poll_attempts = match integer(data, "max_poll_attempts")? {
        Some(n) if n > 0 => {
            u32::try_from(n).map_err(|_| format!("max_poll_attempts: {n} is too large"))?
        }
        _ => DEFAULT_MAX_POLL_ATTEMPTS,
    };
    let poll_retry_interval = match text(data, "poll_retry_interval")? {
        Some(value) => {
            parse_go_duration(&value).map_err(|e| format!("poll_retry_interval: {e}"))?
        }
        None => Duration::ZERO,
    };
    let poll_retry_interval = if poll_retry_interval.is_zero() {
        DEFAULT_POLL_RETRY_INTERVAL
    } else {
        poll_retry_interval
    };

    let base = KubeletSettings {
        url: String::new(),
        ca_path: None,
        token_path: None,
        client: None,
        max_poll_attempts,
        poll_retry_interval,
        no_effect,
    };
    if let Some(port) = read_only {
        return Ok(KubeletSettings {
            url: format!("http://127.0.0.1:{port}"),
            ..base
        });
    }
    let node_name = match text(data, "node_name")? {
        Some(name) => Some(name),
        None => {
            let var = text(data, "node_name_env")?.unwrap_or_else(|| DEFAULT_NODE_NAME_ENV.into());
            env(&var).filter(|v| !v.is_empty())
        }
    };
    let host = match node_name {
        Some(name) => {
            check_host(&name)?;
            name
        }
        None => "127.0.0.1".to_owned(),
    };
    let ca_path = if flag(data, "skip_kubelet_verification")? {
        None
    } else {
        Some(
            path(data, "kubelet_ca_path")?
                .unwrap_or_else(|| PathBuf::from(SERVICE_ACCOUNT_DIR).join("ca.crt")),
        )
    };
    let certificate = path(data, "certificate_path")?;
    let key = path(data, "private_key_path")?;
    let token = path(data, "token_path")?;
    let (token_path, client) = if flag(data, "use_anonymous_authentication")? {
        if token.is_some() || certificate.is_some() || key.is_some() {
            return Err("use_anonymous_authentication: cannot be used with token_path, certificate_path or private_key_path".into());
        }
        (None, None)
    } else {
        match (certificate, key) {
            (Some(cert), Some(key)) => (None, Some((cert, key))),
            (Some(_), None) => {
                return Err(
                    "private_key_path: the private key path is required with the certificate path"
                        .into(),
                );
            }
            (None, Some(_)) => {
                return Err(
                    "certificate_path: the certificate path is required with the private key path"
                        .into(),
                );
            }
            (None, None) => (
                Some(token.unwrap_or_else(|| PathBuf::from(SERVICE_ACCOUNT_DIR).join("token"))),
                None,
            ),
        }
    };
    let port = secure.unwrap_or(DEFAULT_SECURE_PORT);
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    Ok(KubeletSettings {
        url: format!("https://{host}:{port}"),
        ca_path,
        token_path,
        client,
        ..base
    })
}

/// The `pod-lookup` grant for `settings`: the CA and client files are read now.
pub(crate) fn kubelet_access(settings: &KubeletSettings) -> Result<KubeletAccess, String> {
    let read = |key: &str, path: &PathBuf| {
        std::fs::read(path).map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))
    };
    let ca = match &settings.ca_path {
        Some(path) if settings.url.starts_with("https://") => Some(read("kubelet_ca_path", path)?),
        _ => None,
    };
    let client = match &settings.client {
        Some((cert, key)) => Some((
            read("certificate_path", cert)?,
            read("private_key_path", key)?,
        )),
        None => None,
    };
    let trust = match &ca {
        Some(pem) => KubeletTrust::Roots(pem),
        None => KubeletTrust::Unverified,
    };
    let access = KubeletAccess::with_tls(
        &settings.url,
        trust,
        client.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
        settings.token_path.clone(),
        KUBELET_REQUEST_TIMEOUT,
    )
    .map_err(|e| {
        let key = if e.contains("client") {
            "certificate_path/private_key_path"
        } else {
            "kubelet_ca_path"
        };
        format!("{key}: {e}")
    })?;
    Ok(access.with_polling(settings.max_poll_attempts, settings.poll_retry_interval))
}

/// A node name is put in the URL: refuse anything that is not a host name or address.
fn check_host(name: &str) -> Result<(), String> {
    let valid = name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'_'));
    if valid {
        Ok(())
    } else {
        Err(format!("node_name: {name:?} is not a node name"))
    }
}

fn flag(data: &PluginData, key: &str) -> Result<bool, String> {
    match data.get(key) {
        None | Some(DataValue::Null) => Ok(false),
        Some(DataValue::Bool(b)) => Ok(*b),
        Some(other) => Err(format!("{key}: expected true or false, not {other:?}")),
    }
}

fn integer(data: &PluginData, key: &str) -> Result<Option<i64>, String> {
    match data.get(key) {
        None | Some(DataValue::Null) => Ok(None),
        Some(DataValue::Integer(n)) => Ok(Some(*n)),
        Some(other) => Err(format!("{key}: expected a whole number, not {other:?}")),
    }
}

/// A port: unset or 0 (SPIRE's "not set") is `None`.
fn port(data: &PluginData, key: &str) -> Result<Option<u16>, String> {
    match integer(data, key)? {
        None => Ok(None),
        Some(n) if n <= 0 => Ok(None),
        Some(n) => u16::try_from(n)
            .map(Some)
            .map_err(|_| format!("{key}: {n} is not a port")),
    }
}

/// A string setting; empty is unset (Go's zero value).
fn text(data: &PluginData, key: &str) -> Result<Option<String>, String> {
    match data.get(key) {
        None | Some(DataValue::Null) => Ok(None),
        Some(DataValue::String(s)) if s.is_empty() => Ok(None),
        Some(DataValue::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("{key}: expected a string, not {other:?}")),
    }
}

fn path(data: &PluginData, key: &str) -> Result<Option<PathBuf>, String> {
    Ok(text(data, key)?.map(PathBuf::from))
}

#[cfg(test)]
mod tests;
