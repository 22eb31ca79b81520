//! The messages of x509pop attestation, shared by the agent and server sides.
//!
//! 1. The agent sends [`Payload`]: its certificate chain (DER, leaf first), which the server
//!    verifies against the CA bundle it was configured with.
//! 2. The server answers with [`Challenge`]: a fresh random nonce.
//! 3. The agent signs [`signed_message`]`(nonce)` with the certificate's private key and sends
//!    [`Response`]; the server checks the signature with the leaf's public key.
//!
//! The shapes follow SPIRE's x509pop (JSON with base64 byte strings). The signed message
//! carries a context prefix so the key is never made to sign a bare server-chosen value.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// Length of the server's nonce.
pub const NONCE_LEN: usize = 32;

/// What the node key signs: a context string, then the nonce.
pub fn signed_message(nonce: &[u8]) -> Vec<u8> {
    let mut message = b"sigil x509pop challenge v1\n".to_vec();
    message.extend_from_slice(nonce);
    message
}

/// The attestation payload: the node's certificate chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// DER certificates, base64: the leaf, then intermediates.
    pub certificates: Vec<String>,
}

/// The server's challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// The nonce, base64.
    pub nonce: String,
}

/// The agent's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The signature over [`signed_message`], base64.
    pub signature: String,
}

/// Base64 of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// `text` from base64; the error names `what`.
pub fn decode(what: &str, text: &str) -> Result<Vec<u8>, String> {
    STANDARD
        .decode(text)
        .map_err(|_| format!("{what} is not base64"))
}

/// `value` as JSON bytes.
pub fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(value).map_err(|e| format!("cannot encode: {e}"))
}

/// `bytes` as the JSON message `what`.
pub fn from_json<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("the {what} is not valid: {e}"))
}

/// The `key = "value"` lines of `plugin_data`, checked against `known` keys. Blank lines
/// and `#` or `//` comments are skipped; unknown keys and malformed lines are errors.
pub fn settings<'a>(config: &'a str, known: &[&str]) -> Result<Vec<(&'a str, &'a str)>, String> {
    let mut settings = Vec::new();
    for (number, line) in config.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("//") {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("plugin_data line {}: expected `key = value`", number + 1))?;
        let key = key.trim();
        if !known.contains(&key) {
            return Err(format!(
                "plugin_data line {}: unknown key {key:?} (known: {})",
                number + 1,
                known.join(", ")
            ));
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(|| {
                format!(
                    "plugin_data line {}: {key} must be a quoted string",
                    number + 1
                )
            })?;
        settings.push((key, value));
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        let known = ["ca_bundle_path", "agent_path_template"];
        assert_eq!(
            settings("ca_bundle_path = \"/a\"\n# c\n", &known),
            Ok(vec![("ca_bundle_path", "/a")])
        );
        assert!(settings("other = \"x\"", &known).is_err_and(|e| e.contains("unknown key")));
        assert!(settings("ca_bundle_path = 3", &known).is_err_and(|e| e.contains("quoted")));
        assert!(settings("nonsense", &known).is_err_and(|e| e.contains("line 1")));
    }

    #[test]
    fn messages_round_trip() {
        let payload = Payload {
            certificates: vec![encode(b"der")],
        };
        let bytes = to_json(&payload).unwrap();
        assert_eq!(from_json::<Payload>("payload", &bytes), Ok(payload));
        assert!(from_json::<Challenge>("challenge", b"{}").is_err());
        assert_eq!(decode("x", &encode(b"abc")), Ok(b"abc".to_vec()));
        assert!(signed_message(b"n").ends_with(b"\nn"));
    }
}
