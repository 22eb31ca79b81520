//! Typed reads from one section of the tree, with the file, line and dotted key of every
//! problem: [`Fields`] refuses unknown and repeated keys up front, then hands out values.

use std::path::PathBuf;
use std::time::Duration;

use crate::ConfigError;
use crate::duration::parse_ttl;
use crate::hcl::{Entry, Node, Section, join};

/// The file being read, for error messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub(crate) file: &'a str,
}

impl Ctx<'_> {
    pub(crate) fn invalid(&self, line: usize, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::InvalidValue {
            file: self.file.to_owned(),
            line,
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn missing(&self, line: usize, key: &str) -> ConfigError {
        ConfigError::MissingKey {
            file: self.file.to_owned(),
            line,
            key: key.to_owned(),
        }
    }

    pub(crate) fn conflict(
        &self,
        line: usize,
        key: &str,
        reason: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Conflict {
            file: self.file.to_owned(),
            line,
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unknown_key(&self, line: usize, key: &str, accepted: &[&str]) -> ConfigError {
        ConfigError::UnknownKey {
            file: self.file.to_owned(),
            line,
            key: key.to_owned(),
            accepted: accepted.join(", "),
        }
    }
}

/// The keys of one section, checked against the accepted ones.
#[derive(Debug)]
pub(crate) struct Fields<'a> {
    pub(crate) ctx: Ctx<'a>,
    /// The dotted key of the section (`server`, `plugins.DataStore.sql.plugin_data`).
    pub(crate) path: String,
    pub(crate) section: &'a Section,
}

impl<'a> Fields<'a> {
    /// Checks that every key of `section` is in `accepted` and appears once.
    pub(crate) fn new(
        ctx: Ctx<'a>,
        path: &str,
        section: &'a Section,
        accepted: &[&str],
    ) -> Result<Self, ConfigError> {
        for (i, entry) in section.entries.iter().enumerate() {
            let key = join(path, &entry.key);
            if !accepted.contains(&entry.key.as_str()) {
                return Err(ctx.unknown_key(entry.line, &key, accepted));
            }
            if let Some(first) = section.entries[..i].iter().find(|e| e.key == entry.key) {
                return Err(ConfigError::DuplicateKey {
                    file: ctx.file.to_owned(),
                    line: entry.line,
                    key,
                    first_line: first.line,
                });
            }
        }
        Ok(Fields {
            ctx,
            path: path.to_owned(),
            section,
        })
    }

    /// The dotted key of `key` in this section.
    pub(crate) fn key(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The entry for `key`, if set.
    pub(crate) fn entry(&self, key: &str) -> Option<&'a Entry> {
        self.section.entries.iter().find(|e| e.key == key)
    }

    fn type_error(&self, entry: &Entry, expected: &str) -> ConfigError {
        self.ctx.invalid(
            entry.line,
            &self.key(&entry.key),
            format!("expected {expected}, found {}", entry.value.type_name()),
        )
    }

    /// A string value, with its line.
    pub(crate) fn string(&self, key: &str) -> Result<Option<(String, usize)>, ConfigError> {
        let Some(entry) = self.entry(key) else {
            return Ok(None);
        };
        match &entry.value {
            Node::Str(s) => Ok(Some((s.clone(), entry.line))),
            _ => Err(self.type_error(entry, "a quoted string")),
        }
    }

    /// A string value or `default`.
    pub(crate) fn string_or(&self, key: &str, default: &str) -> Result<String, ConfigError> {
        Ok(self
            .string(key)?
            .map_or_else(|| default.to_owned(), |(s, _)| s))
    }

    /// A string that must be set and non-empty.
    pub(crate) fn required_string(&self, key: &str) -> Result<(String, usize), ConfigError> {
        match self.string(key)? {
            Some((s, line)) if s.is_empty() => {
                Err(self.ctx.invalid(line, &self.key(key), "must not be empty"))
            }
            Some(found) => Ok(found),
            None => Err(self.ctx.missing(self.section.line, &self.key(key))),
        }
    }

    /// An optional path (a non-empty string).
    pub(crate) fn path(&self, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        match self.string(key)? {
            Some((s, line)) if s.is_empty() => {
                Err(self.ctx.invalid(line, &self.key(key), "must not be empty"))
            }
            found => Ok(found.map(|(s, _)| PathBuf::from(s))),
        }
    }

    /// A TCP port: an integer, or a quoted integer as SPIRE's examples write it.
    pub(crate) fn port(&self, key: &str, default: u16) -> Result<u16, ConfigError> {
        let Some(entry) = self.entry(key) else {
            return Ok(default);
        };
        let parsed = match &entry.value {
            Node::Int(i) => u16::try_from(*i).ok(),
            Node::Str(s) => s.trim().parse::<u16>().ok(),
            _ => return Err(self.type_error(entry, "a port number")),
        };
        parsed.ok_or_else(|| {
            self.ctx.invalid(
                entry.line,
                &self.key(key),
                format!("{} is not a port number (0-65535)", display(&entry.value)),
            )
        })
    }

    /// A count: a positive integer, or the same quoted.
    pub(crate) fn count(&self, key: &str, default: usize) -> Result<usize, ConfigError> {
        let Some(entry) = self.entry(key) else {
            return Ok(default);
        };
        let parsed = match &entry.value {
            Node::Int(i) => usize::try_from(*i).ok(),
            Node::Str(s) => s.trim().parse::<usize>().ok(),
            _ => return Err(self.type_error(entry, "a positive integer")),
        };
        parsed.filter(|&n| n > 0).ok_or_else(|| {
            self.ctx.invalid(
                entry.line,
                &self.key(key),
                format!("{} is not a positive integer", display(&entry.value)),
            )
        })
    }

    /// A bool: `true`/`false`, or the same quoted (HCL 1 accepts both).
    pub(crate) fn bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        let Some(entry) = self.entry(key) else {
            return Ok(default);
        };
        match &entry.value {
            Node::Bool(b) => Ok(*b),
            Node::Str(s) if s == "true" => Ok(true),
            Node::Str(s) if s == "false" => Ok(false),
            _ => Err(self.type_error(entry, "true or false")),
        }
    }

    /// A TTL: a Go duration string of whole, positive seconds.
    pub(crate) fn ttl(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        let Some((text, line)) = self.string(key)? else {
            return Ok(None);
        };
        parse_ttl(&text)
            .map(Some)
            .map_err(|reason| self.ctx.invalid(line, &self.key(key), reason))
    }

    /// A list of strings (a single string is taken as a list of one, as HCL 1 decodes it).
    pub(crate) fn strings(&self, key: &str) -> Result<Option<(Vec<String>, usize)>, ConfigError> {
        let Some(entry) = self.entry(key) else {
            return Ok(None);
        };
        let list = match &entry.value {
            Node::Str(s) => vec![s.clone()],
            Node::List(items) => items
                .iter()
                .map(|item| match item {
                    Node::Str(s) => Ok(s.clone()),
                    other => Err(self.ctx.invalid(
                        entry.line,
                        &self.key(key),
                        format!(
                            "expected a list of strings, found {} in it",
                            other.type_name()
                        ),
                    )),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(self.type_error(entry, "a list of strings")),
        };
        Ok(Some((list, entry.line)))
    }

    /// A nested block or object (`key { … }` or `key = { … }`), checked against `accepted`.
    pub(crate) fn section(
        &self,
        key: &str,
        accepted: &[&str],
    ) -> Result<Option<Fields<'a>>, ConfigError> {
        let Some(entry) = self.entry(key) else {
            return Ok(None);
        };
        if !entry.labels.is_empty() {
            return Err(self
                .ctx
                .invalid(entry.line, &self.key(key), "takes no block label"));
        }
        let section = entry
            .value
            .as_section()
            .ok_or_else(|| self.type_error(entry, "a block"))?;
        Fields::new(self.ctx, &self.key(key), section, accepted).map(Some)
    }

    /// A string from a fixed set, compared case-insensitively; returns the index in `choices`.
    pub(crate) fn choice(&self, key: &str, choices: &[&str]) -> Result<Option<usize>, ConfigError> {
        let Some((text, line)) = self.string(key)? else {
            return Ok(None);
        };
        choices
            .iter()
            .position(|c| c.eq_ignore_ascii_case(&text))
            .map(Some)
            .ok_or_else(|| {
                self.ctx.invalid(
                    line,
                    &self.key(key),
                    format!("{text:?} is not one of {}", choices.join(", ")),
                )
            })
    }
}

/// A value as it was written, for messages.
fn display(node: &Node) -> String {
    match node {
        Node::Str(s) => format!("{s:?}"),
        Node::Int(i) => i.to_string(),
        Node::Float(f) => f.to_string(),
        other => other.type_name().to_owned(),
    }
}
