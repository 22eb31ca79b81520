//! Selectors: `type:value` facts about a node or workload, such as `unix:uid:1000`.

use std::fmt;
use std::str::FromStr;

/// Why a string is not a selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectorError {
    /// No `:` separates the type from the value.
    #[error("selector {0:?} must be of the form type:value")]
    MissingSeparator(String),
    /// The part before the first `:` is empty.
    #[error("selector type is empty")]
    EmptyType,
    /// The part after the first `:` is empty.
    #[error("selector value is empty")]
    EmptyValue,
    /// A control character (newline, NUL…) would corrupt logs and the CLI's output.
    #[error("selector contains a control character")]
    ControlChar,
}

/// A selector. The type is everything before the first `:`, the value everything after it, so
/// values may contain colons (`k8s:pod-label:app:web`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Selector {
    selector_type: String,
    value: String,
}

impl Selector {
    /// A selector from its two parts; the type may not contain `:`.
    pub fn new(selector_type: &str, value: &str) -> Result<Self, SelectorError> {
        if selector_type.is_empty() {
            return Err(SelectorError::EmptyType);
        }
        if selector_type.contains(':') {
            return Err(SelectorError::MissingSeparator(format!(
                "{selector_type}:{value}"
            )));
        }
        if value.is_empty() {
            return Err(SelectorError::EmptyValue);
        }
        if selector_type
            .chars()
            .chain(value.chars())
            .any(char::is_control)
        {
            return Err(SelectorError::ControlChar);
        }
        Ok(Self {
            selector_type: selector_type.to_owned(),
            value: value.to_owned(),
        })
    }

    /// The selector type: the plugin name that produced it (`unix`, `k8s`, `join_token`…).
    pub fn selector_type(&self) -> &str {
        &self.selector_type
    }

    /// The value, which may contain colons.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (selector_type, value) = s
            .split_once(':')
            .ok_or_else(|| SelectorError::MissingSeparator(s.to_owned()))?;
        Self::new(selector_type, value)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.selector_type, self.value)
    }
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Selector({}:{})", self.selector_type, self.value)
    }
}

impl serde::Serialize for Selector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Selector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Sorts and deduplicates a selector list into the canonical order used for storage and
/// duplicate detection.
pub(crate) fn canonicalize(selectors: &mut Vec<Selector>) {
    selectors.sort();
    selectors.dedup();
}
