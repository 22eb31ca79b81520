//! The private-key algorithms sigil generates, named as SPIRE's `ca_key_type`, `jwt_key_type`
//! and `workload_x509_svid_key_type` settings name them.

use std::fmt;
use std::str::FromStr;

/// A private key algorithm and size. Exhaustive on purpose: a new key type must be handled by
/// every match (key generation, signature algorithms), not fall into a default arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyType {
    /// ECDSA on NIST P-256 (`ec-p256`), SPIRE's default.
    #[default]
    EcP256,
    /// ECDSA on NIST P-384 (`ec-p384`).
    EcP384,
    /// RSA with a 2048-bit modulus (`rsa-2048`).
    Rsa2048,
    /// RSA with a 4096-bit modulus (`rsa-4096`).
    Rsa4096,
}

/// A key type string that is not one of SPIRE's four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown key type {0:?}: expected one of ec-p256, ec-p384, rsa-2048, rsa-4096")]
pub struct UnknownKeyType(pub String);

impl KeyType {
    /// Every key type, in the order SPIRE documents them.
    pub const ALL: [KeyType; 4] = [
        KeyType::EcP256,
        KeyType::EcP384,
        KeyType::Rsa2048,
        KeyType::Rsa4096,
    ];

    /// The configuration string: `ec-p256`, `ec-p384`, `rsa-2048` or `rsa-4096`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::EcP256 => "ec-p256",
            KeyType::EcP384 => "ec-p384",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa4096 => "rsa-4096",
        }
    }

    /// Whether this is an RSA key type.
    pub fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa2048 | KeyType::Rsa4096)
    }

    /// The JWS algorithm sigil signs JWT-SVIDs with for this key type.
    pub fn jws_algorithm(self) -> &'static str {
        match self {
            KeyType::EcP256 => "ES256",
            KeyType::EcP384 => "ES384",
            KeyType::Rsa2048 | KeyType::Rsa4096 => "RS256",
        }
    }
}

impl FromStr for KeyType {
    type Err = UnknownKeyType;

    /// Parses exactly the strings SPIRE accepts; anything else is refused with the value named.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownKeyType(s.to_owned()))
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for KeyType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for KeyType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_spire_names() {
        for (s, t) in [
            ("ec-p256", KeyType::EcP256),
            ("ec-p384", KeyType::EcP384),
            ("rsa-2048", KeyType::Rsa2048),
            ("rsa-4096", KeyType::Rsa4096),
        ] {
            assert_eq!(s.parse::<KeyType>().unwrap(), t);
            assert_eq!(t.to_string(), s);
        }
        assert_eq!(KeyType::default(), KeyType::EcP256);
    }

    #[test]
    fn refuses_other_spellings_naming_the_value() {
        for bad in ["EC-P256", "ec-p521", "rsa-1024", "rsa-3072", "", " ec-p256"] {
            let err = bad.parse::<KeyType>().unwrap_err();
            assert_eq!(err, UnknownKeyType(bad.to_owned()));
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn serde_uses_the_config_names() {
        let json = serde_json::to_string(&KeyType::Rsa4096).unwrap();
        assert_eq!(json, "\"rsa-4096\"");
        assert_eq!(
            serde_json::from_str::<KeyType>(&json).unwrap(),
            KeyType::Rsa4096
        );
        assert!(serde_json::from_str::<KeyType>("\"ec-p521\"").is_err());
    }
}
