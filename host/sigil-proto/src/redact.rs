//! `Debug` for the generated messages that carry a private key: every field but the key is
//! shown; the key prints as its length only, so a logged request or response never leaks it.

use std::fmt;

use crate::spire::api::agent::delegatedidentity::v1::X509svidWithKey;
use crate::workload::{Witsvid, X509svid};

struct Redacted(usize);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.0)
    }
}

impl fmt::Debug for X509svid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509svid")
            .field("spiffe_id", &self.spiffe_id)
            .field("x509_svid", &self.x509_svid)
            .field("x509_svid_key", &Redacted(self.x509_svid_key.len()))
            .field("bundle", &self.bundle)
            .field("hint", &self.hint)
            .finish()
    }
}

impl fmt::Debug for Witsvid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Witsvid")
            .field("spiffe_id", &self.spiffe_id)
            .field("wit_svid", &self.wit_svid)
            .field("wit_svid_key", &Redacted(self.wit_svid_key.len()))
            .field("hint", &self.hint)
            .finish()
    }
}

impl fmt::Debug for X509svidWithKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509svidWithKey")
            .field("x509_svid", &self.x509_svid)
            .field("x509_svid_key", &Redacted(self.x509_svid_key.len()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_keys_are_redacted() {
        let svid = X509svid {
            spiffe_id: "spiffe://example.org/web".into(),
            x509_svid_key: b"SECRET-KEY-BYTES".to_vec(),
            ..Default::default()
        };
        let shown = format!("{svid:?}");
        assert!(shown.contains("spiffe://example.org/web"), "{shown}");
        assert!(shown.contains("<redacted 16 bytes>"), "{shown}");
        // The key's bytes, in the form derived Debug prints a Vec<u8>.
        assert!(!shown.contains("83, 69, 67"), "{shown}");

        let with_key = X509svidWithKey {
            x509_svid: None,
            x509_svid_key: b"SECRET-KEY-BYTES".to_vec(),
        };
        let shown = format!("{with_key:#?}");
        assert!(shown.contains("<redacted 16 bytes>"), "{shown}");
        assert!(!shown.contains("83,"), "{shown}");

        let wit = Witsvid {
            spiffe_id: "spiffe://example.org/web".into(),
            wit_svid_key: r#"{"kty":"OKP","d":"SECRET"}"#.into(),
            ..Default::default()
        };
        let shown = format!("{wit:?}");
        assert!(shown.contains("spiffe://example.org/web"), "{shown}");
        assert!(shown.contains("<redacted 26 bytes>"), "{shown}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }
}
