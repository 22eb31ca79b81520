//! From HCL text to a small tree of sections and values that remembers every line.
//!
//! SPIRE reads its config with HCL version 1; `hcl-edit` parses HCL 2, which is the same
//! language for config files except that HCL 2 refuses a one-line block holding another
//! block (`NodeAttestor "join_token" { plugin_data {} }`, common in SPIRE configs). So the
//! text is first normalised: a newline is inserted after every `{` and before every `}`
//! outside strings, comments and heredocs, and a table maps each line of the normalised text
//! back to the line of the original, so errors still name the operator's line.
//!
//! The tree ([`Section`], [`Entry`], [`Node`]) treats a block (`ca_subject { … }`) and an
//! object-valued attribute (`ca_subject = { … }`) alike, as HCL 1 does. Expressions other
//! than literals (variables, function calls, `${…}` interpolation) are refused.

use std::ops::Range;

use hcl_edit::Span;
use hcl_edit::expr::{Expression, ObjectKey};
use hcl_edit::structure::{Body, Structure};
use hcl_edit::template::{Element, Template};

use crate::ConfigError;

/// A block body or an object: entries in file order.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    /// The line of the block or object's opening.
    pub(crate) line: usize,
    /// The attributes and nested blocks.
    pub(crate) entries: Vec<Entry>,
}

/// One attribute (`key = value`) or block (`key "label" { … }`).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) key: String,
    /// Block labels; empty for attributes and unlabelled blocks.
    pub(crate) labels: Vec<String>,
    pub(crate) line: usize,
    pub(crate) value: Node,
}

/// A value in the tree.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    List(Vec<Node>),
    /// `key { … }` or `key "label" { … }`.
    Block(Section),
    /// `key = { … }`.
    Object(Section),
}

impl Node {
    /// The section of a block or an object.
    pub(crate) fn as_section(&self) -> Option<&Section> {
        match self {
            Node::Block(s) | Node::Object(s) => Some(s),
            _ => None,
        }
    }

    /// A short name of the value's type, for messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Node::Str(_) => "a string",
            Node::Int(_) => "an integer",
            Node::Float(_) => "a number",
            Node::Bool(_) => "a bool",
            Node::Null => "null",
            Node::List(_) => "a list",
            Node::Block(_) => "a block",
            Node::Object(_) => "an object",
        }
    }
}

/// Parses `text` into the tree. `file` names the file in errors; `path` is the dotted key
/// prefix for errors inside it (empty at the top of a file).
pub(crate) fn parse(text: &str, file: &str, path: &str) -> Result<Section, ConfigError> {
    let (normalised, line_map) =
        normalise(text).map_err(|(line, message)| ConfigError::Syntax {
            file: file.to_owned(),
            line,
            message: message.to_owned(),
        })?;
    let lines = Lines::new(&normalised, line_map);
    let body = hcl_edit::parser::parse_body(&normalised).map_err(|e| ConfigError::Syntax {
        file: file.to_owned(),
        line: lines.original(e.location().line()),
        message: format!("{} (near `{}`)", e.message(), e.line().trim()),
    })?;
    let converter = Converter {
        file,
        lines: &lines,
    };
    converter.body(&body, path, 1)
}

/// Joins a dotted key: `join("server", "ca_ttl")` is `server.ca_ttl`.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

// === normalisation ===

/// How deep parentheses and brackets may nest in an expression. hcl-edit's expression parser
/// backtracks through every open parenthesis, so its time doubles with each level on some
/// inputs (a fuzzed line of 465 bytes nesting 18 deep took seconds); a configuration needs two
/// or three.
const MAX_EXPRESSION_DEPTH: usize = 8;

/// An unterminated string: a quoted string must close on its own line.
const UNTERMINATED_STRING: &str = "unterminated string: a quoted string must close on the line \
                                   it opens (use \\n for a newline, or a heredoc)";

/// Inserts a newline after each `{` and before each `}` outside strings, comments and
/// heredocs. Returns the new text and, per line of it (0-based), the original 1-based line;
/// or the line and reason of what cannot be parsed: a string that does not close, or
/// parentheses and brackets nested deeper than [`MAX_EXPRESSION_DEPTH`].
fn normalise(text: &str) -> Result<(String, Vec<usize>), (usize, &'static str)> {
    let bytes = text.as_bytes();
    let mut out = Normalised {
        text: String::with_capacity(text.len() + text.len() / 8),
        map: vec![1],
        line: 1,
    };
    let (mut i, mut copied, mut depth) = (0, 0, 0_usize);
    let line_of = |at: usize| 1 + text[..at].matches('\n').count();
    while i < bytes.len() {
        let next = bytes.get(i + 1).copied();
        i = match (bytes[i], next) {
            (b'"', _) => {
                skip_string(bytes, i + 1).ok_or_else(|| (line_of(i), UNTERMINATED_STRING))?
            }
            (b'(' | b'[', _) => {
                depth += 1;
                if depth > MAX_EXPRESSION_DEPTH {
                    return Err((
                        line_of(i),
                        "parentheses and brackets nest deeper than 8 levels",
                    ));
                }
                i + 1
            }
            (b')' | b']', _) => {
                depth = depth.saturating_sub(1);
                i + 1
            }
            (b'#', _) | (b'/', Some(b'/')) => find_from(text, i, "\n"),
            (b'/', Some(b'*')) => (find_from(text, i + 2, "*/") + 2).min(bytes.len()),
            (b'<', Some(b'<')) => skip_heredoc(text, i),
            (b'{', _) => {
                out.copy(&text[copied..=i]);
                out.synthetic_newline();
                copied = i + 1;
                i + 1
            }
            (b'}', _) => {
                out.copy(&text[copied..i]);
                out.synthetic_newline();
                copied = i;
                i + 1
            }
            _ => i + 1,
        };
    }
    out.copy(&text[copied..]);
    Ok((out.text, out.map))
}

/// The normalised text being built and its line table.
struct Normalised {
    text: String,
    map: Vec<usize>,
    line: usize,
}

impl Normalised {
    /// Copies original text, counting its lines.
    fn copy(&mut self, part: &str) {
        for _ in part.matches('\n') {
            self.line += 1;
            self.map.push(self.line);
        }
        self.text.push_str(part);
    }

    /// Adds a newline that is not in the original: the new line maps to the current one.
    fn synthetic_newline(&mut self) {
        self.text.push('\n');
        self.map.push(self.line);
    }
}

/// The index just past a string that starts at `start` (after its opening quote), or `None`
/// when a newline or the end of the text comes first.
fn skip_string(bytes: &[u8], start: usize) -> Option<usize> {
    let mut j = start;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            b'\n' => return None,
            _ => j += 1,
        }
    }
    None
}

/// The index of `needle` at or after `from`, or the end of the text.
fn find_from(text: &str, from: usize, needle: &str) -> usize {
    text.get(from..)
        .and_then(|rest| rest.find(needle))
        .map_or(text.len(), |at| from + at)
}

/// The index of the end of the heredoc that starts at `start` (`<<EOT` or `<<-EOT`): the end
/// of the line holding only the delimiter.
fn skip_heredoc(text: &str, start: usize) -> usize {
    let header_end = find_from(text, start, "\n");
    let delimiter = text[start + 2..header_end].trim_start_matches('-').trim();
    if delimiter.is_empty() {
        return start + 2;
    }
    let mut pos = header_end + 1;
    while pos < text.len() {
        let line_end = find_from(text, pos, "\n");
        if text[pos..line_end].trim() == delimiter {
            return line_end;
        }
        pos = line_end + 1;
    }
    text.len()
}

/// Byte offsets of the normalised text to original line numbers.
struct Lines {
    /// Start offset of each normalised line.
    starts: Vec<usize>,
    /// Original 1-based line of each normalised line.
    map: Vec<usize>,
}

impl Lines {
    fn new(text: &str, map: Vec<usize>) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { starts, map }
    }

    /// The original line of a normalised 1-based line.
    fn original(&self, normalised_line: usize) -> usize {
        let index = normalised_line.saturating_sub(1);
        self.map
            .get(index)
            .or(self.map.last())
            .copied()
            .unwrap_or(1)
    }

    /// The original line of a byte offset in the normalised text.
    fn of(&self, span: Option<Range<usize>>) -> usize {
        let offset = span.map_or(0, |r| r.start);
        let index = self.starts.partition_point(|&s| s <= offset);
        self.original(index)
    }
}

// === conversion ===

struct Converter<'a> {
    file: &'a str,
    lines: &'a Lines,
}

impl Converter<'_> {
    fn body(&self, body: &Body, path: &str, line: usize) -> Result<Section, ConfigError> {
        let mut entries = Vec::with_capacity(body.len());
        for structure in body.iter() {
            let entry = match structure {
                Structure::Attribute(attr) => {
                    let key = attr.key.as_str().to_owned();
                    let line = self.lines.of(attr.span());
                    let value = self.expr(&attr.value, &join(path, &key), line)?;
                    Entry {
                        key,
                        labels: Vec::new(),
                        line,
                        value,
                    }
                }
                Structure::Block(block) => {
                    let key = block.ident.as_str().to_owned();
                    let labels: Vec<String> =
                        block.labels.iter().map(|l| l.as_str().to_owned()).collect();
                    let line = self.lines.of(block.span());
                    let mut inner = join(path, &key);
                    for label in &labels {
                        inner = join(&inner, label);
                    }
                    let section = self.body(&block.body, &inner, line)?;
                    Entry {
                        key,
                        labels,
                        line,
                        value: Node::Block(section),
                    }
                }
            };
            entries.push(entry);
        }
        Ok(Section { line, entries })
    }

    fn expr(&self, expr: &Expression, key: &str, line: usize) -> Result<Node, ConfigError> {
        let line_of = |span| self.lines.of(span).max(line);
        Ok(match expr {
            Expression::Null(_) => Node::Null,
            Expression::Bool(b) => Node::Bool(*b.value()),
            Expression::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) if !n.is_f64() => Node::Int(i),
                (_, Some(f)) => Node::Float(f),
                _ => return Err(self.invalid(line, key, "is not a number")),
            },
            Expression::String(s) => Node::Str(s.value().clone()),
            Expression::StringTemplate(t) => Node::Str(self.template(t, key, line)?),
            Expression::HeredocTemplate(h) => Node::Str(self.template(&h.template, key, line)?),
            Expression::Parenthesis(p) => self.expr(p.inner(), key, line)?,
            Expression::Array(array) => Node::List(
                array
                    .iter()
                    .map(|e| self.expr(e, key, line_of(e.span())))
                    .collect::<Result<_, _>>()?,
            ),
            Expression::Object(object) => {
                let mut entries = Vec::with_capacity(object.len());
                for (k, v) in object.iter() {
                    let name = match k {
                        ObjectKey::Ident(ident) => ident.as_str().to_owned(),
                        ObjectKey::Expression(Expression::String(s)) => s.value().clone(),
                        ObjectKey::Expression(Expression::Variable(v)) => v.as_str().to_owned(),
                        ObjectKey::Expression(_) => {
                            return Err(self.invalid(
                                line_of(k.span()),
                                key,
                                "object keys must be names or quoted strings",
                            ));
                        }
                    };
                    let entry_line = line_of(k.span());
                    let value = self.expr(v.expr(), &join(key, &name), entry_line)?;
                    entries.push(Entry {
                        key: name,
                        labels: Vec::new(),
                        line: entry_line,
                        value,
                    });
                }
                Node::Object(Section { line, entries })
            }
            _ => {
                return Err(self.invalid(
                    line,
                    key,
                    "expressions are not supported here: write a literal value (a quoted \
                     string, number, bool, list or block)",
                ));
            }
        })
    }

    /// A template made only of literal text; interpolation is refused.
    fn template(&self, template: &Template, key: &str, line: usize) -> Result<String, ConfigError> {
        let mut text = String::new();
        for element in template.iter() {
            match element {
                Element::Literal(literal) => text.push_str(literal.value()),
                _ => {
                    return Err(self.invalid(
                        line,
                        key,
                        "`${...}` and `%{...}` in strings are not evaluated: run with \
                         -expandEnv to substitute environment variables, or write $${ for a \
                         literal ${",
                    ));
                }
            }
        }
        Ok(text)
    }

    fn invalid(&self, line: usize, key: &str, reason: &str) -> ConfigError {
        ConfigError::InvalidValue {
            file: self.file.to_owned(),
            line,
            key: key.to_owned(),
            reason: reason.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests;
