//! Trust domains and SPIFFE IDs, exactly as the SPIFFE ID specification defines them.

use std::fmt;
use std::str::FromStr;

const SCHEME_PREFIX: &str = "spiffe://";
/// The spec caps a SPIFFE ID at 2048 bytes and a trust domain name at 255.
const MAX_ID_LEN: usize = 2048;
const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// Why a string is not a SPIFFE ID or trust domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpiffeIdError {
    /// The string was empty.
    #[error("SPIFFE ID is empty")]
    Empty,
    /// The string does not start with `spiffe://`.
    #[error("scheme is missing or invalid: a SPIFFE ID starts with \"spiffe://\"")]
    WrongScheme,
    /// Nothing between `spiffe://` and the path.
    #[error("trust domain is missing")]
    MissingTrustDomain,
    /// A trust domain character outside `[a-z0-9.-_]`; this covers ports, userinfo and
    /// upper case.
    #[error(
        "trust domain characters are limited to lowercase letters, numbers, dots, dashes, \
         and underscores (found {0:?})"
    )]
    BadTrustDomainChar(char),
    /// The trust domain name is longer than 255 bytes.
    #[error("trust domain is longer than {MAX_TRUST_DOMAIN_LEN} bytes")]
    TrustDomainTooLong,
    /// `//` somewhere in the path.
    #[error("path cannot contain empty segments")]
    EmptySegment,
    /// A `.` or `..` segment.
    #[error("path cannot contain dot segments")]
    DotSegment,
    /// The path ends with `/`.
    #[error("path cannot have a trailing slash")]
    TrailingSlash,
    /// A path character outside `[A-Za-z0-9.-_]`; this covers queries and fragments.
    #[error(
        "path segment characters are limited to letters, numbers, dots, dashes, and \
         underscores (found {0:?})"
    )]
    BadPathChar(char),
    /// A path given on its own does not start with `/`.
    #[error("path must start with \"/\"")]
    RelativePath,
    /// The whole ID is longer than 2048 bytes.
    #[error("SPIFFE ID is longer than {MAX_ID_LEN} bytes")]
    TooLong,
}

/// A SPIFFE trust domain name, such as `example.org`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrustDomain(String);

impl TrustDomain {
    /// Parses a bare trust domain name (`example.org`). Use [`str::parse`] to also accept the
    /// `spiffe://example.org` form.
    pub fn new(name: &str) -> Result<Self, SpiffeIdError> {
        validate_trust_domain(name)?;
        Ok(Self(name.to_owned()))
    }

    /// The trust domain name, without scheme.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// The trust domain's own SPIFFE ID, `spiffe://<name>`.
    pub fn id(&self) -> SpiffeId {
        SpiffeId {
            id: format!("{SCHEME_PREFIX}{}", self.0),
            td_end: SCHEME_PREFIX.len() + self.0.len(),
        }
    }
}

impl FromStr for TrustDomain {
    type Err = SpiffeIdError;

    /// Accepts `example.org` or `spiffe://example.org` (an ID with a path is refused, as a
    /// trust domain has none).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(":/") {
            let id = SpiffeId::from_str(s)?;
            if !id.path().is_empty() {
                return Err(SpiffeIdError::BadTrustDomainChar('/'));
            }
            return Ok(id.trust_domain());
        }
        Self::new(s)
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustDomain({})", self.0)
    }
}

/// A SPIFFE ID: `spiffe://<trust domain><path>`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpiffeId {
    id: String,
    /// Byte offset where the trust domain ends and the path begins.
    td_end: usize,
}

impl SpiffeId {
    /// Builds `spiffe://<td><path>`; `path` is empty or starts with `/`.
    pub fn new(trust_domain: &TrustDomain, path: &str) -> Result<Self, SpiffeIdError> {
        if !path.is_empty() && !path.starts_with('/') {
            return Err(SpiffeIdError::RelativePath);
        }
        validate_path(path)?;
        let id = format!("{SCHEME_PREFIX}{}{path}", trust_domain.0);
        if id.len() > MAX_ID_LEN {
            return Err(SpiffeIdError::TooLong);
        }
        Ok(Self {
            td_end: SCHEME_PREFIX.len() + trust_domain.0.len(),
            id,
        })
    }

    /// The trust domain this ID belongs to.
    pub fn trust_domain(&self) -> TrustDomain {
        TrustDomain(self.trust_domain_name().to_owned())
    }

    /// The trust domain name, borrowed.
    pub fn trust_domain_name(&self) -> &str {
        &self.id[SCHEME_PREFIX.len()..self.td_end]
    }

    /// The path, empty or starting with `/`.
    pub fn path(&self) -> &str {
        &self.id[self.td_end..]
    }

    /// Whether this ID is in the given trust domain.
    pub fn is_member_of(&self, trust_domain: &TrustDomain) -> bool {
        self.trust_domain_name() == trust_domain.0
    }

    /// The whole ID as a string.
    pub fn as_str(&self) -> &str {
        &self.id
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(SpiffeIdError::Empty);
        }
        if s.len() > MAX_ID_LEN {
            return Err(SpiffeIdError::TooLong);
        }
        let rest = s
            .strip_prefix(SCHEME_PREFIX)
            .ok_or(SpiffeIdError::WrongScheme)?;
        let td_len = rest.find('/').unwrap_or(rest.len());
        validate_trust_domain(&rest[..td_len])?;
        validate_path(&rest[td_len..])?;
        Ok(Self {
            id: s.to_owned(),
            td_end: SCHEME_PREFIX.len() + td_len,
        })
    }
}

impl TryFrom<&str> for SpiffeId {
    type Error = SpiffeIdError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({})", self.id)
    }
}

impl serde::Serialize for SpiffeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.id)
    }
}

impl<'de> serde::Deserialize<'de> for SpiffeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for TrustDomain {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for TrustDomain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn validate_trust_domain(name: &str) -> Result<(), SpiffeIdError> {
    if name.is_empty() {
        return Err(SpiffeIdError::MissingTrustDomain);
    }
    if name.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(SpiffeIdError::TrustDomainTooLong);
    }
    match name.chars().find(|&c| !is_trust_domain_char(c)) {
        Some(c) => Err(SpiffeIdError::BadTrustDomainChar(c)),
        None => Ok(()),
    }
}

fn validate_path(path: &str) -> Result<(), SpiffeIdError> {
    if path.is_empty() {
        return Ok(());
    }
    // Callers pass either "" or a string starting with '/'; skip that first slash.
    for segment in path[1..].split('/') {
        match segment {
            "" => {
                return Err(if path.ends_with('/') && !path[1..].contains("//") {
                    SpiffeIdError::TrailingSlash
                } else {
                    SpiffeIdError::EmptySegment
                });
            }
            "." | ".." => return Err(SpiffeIdError::DotSegment),
            _ => {
                if let Some(c) = segment.chars().find(|&c| !is_path_char(c)) {
                    return Err(SpiffeIdError::BadPathChar(c));
                }
            }
        }
    }
    Ok(())
}

fn is_trust_domain_char(c: char) -> bool {
    matches!(c, 'a'..='z' | '0'..='9' | '.' | '-' | '_')
}

fn is_path_char(c: char) -> bool {
    matches!(c, 'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_')
}

#[cfg(test)]
mod tests;
