//! A plugin's `plugin_data` as values ([`PluginData`]) and as the HCL text handed to WASM
//! plugins' `configure` ([`PluginData::to_hcl`]): one `key = value` line per attribute,
//! strings quoted, numbers and bools bare, nested blocks written back as blocks. Parsing the
//! text again gives the same values.

use std::fmt::Write as _;

use crate::ConfigError;
use crate::hcl::{self, Entry, Node, Section};

/// The attributes and blocks of a `plugin_data` block, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PluginData {
    /// The entries.
    pub entries: Vec<DataEntry>,
}

/// One attribute (`key = value`) or nested block (`key "label" { … }`) of plugin data.
#[derive(Debug, Clone, PartialEq)]
pub struct DataEntry {
    /// The attribute or block name.
    pub key: String,
    /// Block labels (empty for attributes).
    pub labels: Vec<String>,
    /// The value.
    pub value: DataValue,
}

/// A plugin data value.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DataValue {
    /// A string.
    String(String),
    /// A whole number.
    Integer(i64),
    /// A number with a fraction.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// `[ … ]`
    List(Vec<DataValue>),
    /// `{ key = value, … }`: an object-valued attribute.
    Object(Vec<(String, DataValue)>),
    /// A nested block's body.
    Block(Vec<DataEntry>),
}

impl PluginData {
    /// Parses HCL attribute text (the form [`PluginData::to_hcl`] writes).
    pub fn parse(text: &str) -> Result<PluginData, ConfigError> {
        let section = hcl::parse(text, "plugin_data", "")?;
        Ok(PluginData::from_section(&section))
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of the attribute `key`, if set.
    pub fn get(&self, key: &str) -> Option<&DataValue> {
        self.entries.iter().find(|e| e.key == key).map(|e| &e.value)
    }

    /// The data as HCL attribute lines; empty data gives "".
    pub fn to_hcl(&self) -> String {
        let mut out = String::new();
        write_entries(&mut out, &self.entries, 0);
        out
    }

    pub(crate) fn from_section(section: &Section) -> PluginData {
        PluginData {
            entries: entries(section),
        }
    }
}

fn entries(section: &Section) -> Vec<DataEntry> {
    section.entries.iter().map(entry).collect()
}

fn entry(e: &Entry) -> DataEntry {
    DataEntry {
        key: e.key.clone(),
        labels: e.labels.clone(),
        value: value(&e.value),
    }
}

fn value(node: &Node) -> DataValue {
    match node {
        Node::Str(s) => DataValue::String(s.clone()),
        Node::Int(i) => DataValue::Integer(*i),
        Node::Float(f) => DataValue::Float(*f),
        Node::Bool(b) => DataValue::Bool(*b),
        Node::Null => DataValue::Null,
        Node::List(items) => DataValue::List(items.iter().map(value).collect()),
        Node::Block(s) => DataValue::Block(entries(s)),
        Node::Object(s) => DataValue::Object(
            s.entries
                .iter()
                .map(|e| (e.key.clone(), value(&e.value)))
                .collect(),
        ),
    }
}

// === rendering ===

fn write_entries(out: &mut String, entries: &[DataEntry], depth: usize) {
    for entry in entries {
        indent(out, depth);
        match &entry.value {
            DataValue::Block(body) => {
                out.push_str(&entry.key);
                for label in &entry.labels {
                    out.push(' ');
                    write_string(out, label);
                }
                out.push_str(" {\n");
                write_entries(out, body, depth + 1);
                indent(out, depth);
                out.push_str("}\n");
            }
            other => {
                let _ = write!(out, "{} = ", entry.key);
                write_value(out, other, depth);
                out.push('\n');
            }
        }
    }
}

fn write_value(out: &mut String, value: &DataValue, depth: usize) {
    match value {
        DataValue::String(s) => write_string(out, s),
        DataValue::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        DataValue::Float(f) => {
            // `{:?}` keeps a fraction (`2.0`) so the value reads back as a float.
            let _ = write!(out, "{f:?}");
        }
        DataValue::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        DataValue::Null => out.push_str("null"),
        DataValue::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item, depth);
            }
            out.push(']');
        }
        DataValue::Object(members) => {
            out.push_str("{\n");
            for (k, v) in members {
                indent(out, depth + 1);
                let _ = write!(out, "{} = ", key(k));
                write_value(out, v, depth + 1);
                out.push('\n');
            }
            indent(out, depth);
            out.push('}');
        }
        DataValue::Block(body) => {
            // A block can only be an entry; inside a value it is written as an object.
            let members = body
                .iter()
                .map(|e| (e.key.clone(), e.value.clone()))
                .collect();
            write_value(out, &DataValue::Object(members), depth);
        }
    }
}

/// An object key as written: bare when it is a plain identifier, quoted otherwise. (Body
/// keys are always identifiers, because they were parsed as such, and are written bare.)
fn key(k: &str) -> String {
    let mut chars = k.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain && !matches!(k, "true" | "false" | "null") {
        k.to_owned()
    } else {
        let mut quoted = String::new();
        write_string(&mut quoted, k);
        quoted
    }
}

/// A quoted HCL string: `\`, `"` and control characters escaped, `${` and `%{` doubled so
/// they are not read as templates.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}
