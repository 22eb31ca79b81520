//! `plugin_data` as typed configuration.
//!
//! The host hands `configure` the plugin's `plugin_data` as HCL attribute text (`key =
//! value` lines, nested `{ … }` objects and blocks), as SPIRE hands its plugins. [`from_hcl`]
//! reads that text into any `serde` type, so a plugin declares its configuration as a struct:
//!
//! ```
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config {
//!     cluster: String,
//!     #[serde(default)]
//!     audience: Vec<String>,
//! }
//!
//! let config: Config = sigil_pdk::config::from_hcl(
//!     "cluster = \"prod\"\naudience = [\"spire-server\"]\n",
//! )
//! .expect("valid");
//! assert_eq!(config.cluster, "prod");
//! ```
//!
//! The reader takes HCL's attribute syntax: strings with escapes, numbers, `true`, `false`,
//! `null`, lists, objects (`{ k = v, "quoted key" = v }`, `=` or `:`, commas or newlines
//! between members), blocks (`name "label" { … }`, labels nesting as objects), and `#`,
//! `//` and `/* */` comments. Expressions, heredocs and templates are refused. A key given
//! twice is an error, not a silent override.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Nesting deeper than this is refused: the input is the operator's, but a plugin should
/// not overflow its stack on any input.
const MAX_DEPTH: usize = 32;

/// Read HCL attribute text into `T`. The error names the line and what was wrong, or the
/// field `serde` refused.
pub fn from_hcl<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let value = parse(text)?;
    serde_json::from_value(value).map_err(|e| format!("plugin_data: {e}"))
}

/// Read HCL attribute text into a JSON object.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        text,
        at: 0,
    };
    let body = parser.body(0, None)?;
    Ok(Value::Object(body))
}

struct Parser<'a> {
    bytes: &'a [u8],
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    /// Attributes and blocks until `close` (or the end of input when `None`).
    fn body(&mut self, depth: usize, close: Option<u8>) -> Result<Map<String, Value>, String> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting is too deep"));
        }
        let mut map = Map::new();
        loop {
            self.skip_space(true)?;
            match self.peek() {
                None if close.is_none() => return Ok(map),
                None => return Err(self.error("unexpected end of input: a `}` is missing")),
                Some(c) if Some(c) == close => {
                    self.at += 1;
                    return Ok(map);
                }
                Some(b',') if close.is_some() => {
                    self.at += 1;
                    continue;
                }
                _ => {}
            }
            let key_line = self.line();
            let key = self.key()?;
            self.skip_space(false)?;
            let value = match self.peek() {
                Some(b'=' | b':') => {
                    self.at += 1;
                    self.skip_space(false)?;
                    self.value(depth + 1)?
                }
                // A block: `key "label" … { body }`.
                Some(b'{' | b'"') => self.block(depth + 1)?,
                _ => return Err(self.error(&format!("expected `=` after `{key}`"))),
            };
            insert(&mut map, key, value, key_line)?;
        }
    }

    fn block(&mut self, depth: usize) -> Result<Value, String> {
        let mut labels = Vec::new();
        loop {
            self.skip_space(false)?;
            match self.peek() {
                Some(b'"') => labels.push(self.string()?),
                Some(b'{') => break,
                _ => return Err(self.error("expected a block label or `{`")),
            }
        }
        self.at += 1;
        let mut value = Value::Object(self.body(depth, Some(b'}'))?);
        for label in labels.into_iter().rev() {
            let mut map = Map::new();
            map.insert(label, value);
            value = Value::Object(map);
        }
        Ok(value)
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting is too deep"));
        }
        match self.peek() {
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b'{') => {
                self.at += 1;
                Ok(Value::Object(self.body(depth, Some(b'}'))?))
            }
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_space(true)?;
                    match self.peek() {
                        Some(b']') => {
                            self.at += 1;
                            return Ok(Value::Array(items));
                        }
                        Some(b',') if !items.is_empty() => self.at += 1,
                        None => return Err(self.error("a list is not closed with `]`")),
                        _ => items.push(self.value(depth + 1)?),
                    }
                }
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => self.number(),
            Some(c) if c.is_ascii_alphabetic() => match self.word().to_owned().as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                "null" => Ok(Value::Null),
                other => Err(self.error(&format!(
                    "`{other}` is not a value (strings must be quoted)"
                ))),
            },
            Some(b'<') => Err(self.error("heredocs are not supported in plugin_data")),
            _ => Err(self.error("expected a value")),
        }
    }

    fn key(&mut self) -> Result<String, String> {
        match self.peek() {
            Some(b'"') => self.string(),
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => Ok(self.word().to_owned()),
            _ => Err(self.error("expected a key")),
        }
    }

    fn word(&mut self) -> &str {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        {
            self.at += 1;
        }
        &self.text[start..self.at]
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
        {
            self.at += 1;
        }
        let text = &self.text[start..self.at];
        if let Ok(n) = text.parse::<i64>() {
            return Ok(Value::from(n));
        }
        text.parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| self.error(&format!("`{text}` is not a number")))
    }

    fn string(&mut self) -> Result<String, String> {
        let start_line = self.line();
        let unclosed = || format!("plugin_data line {start_line}: a string is not closed");
        self.at += 1;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.at..];
            let mut chars = rest.chars();
            let Some(c) = chars.next() else {
                return Err(unclosed());
            };
            self.at += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\n' => return Err(format!("{} on its line", unclosed())),
                '\\' => {
                    let Some(escaped) = chars.next() else {
                        return Err(unclosed());
                    };
                    self.at += escaped.len_utf8();
                    match escaped {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        'u' => out.push(self.unicode_escape()?),
                        other => {
                            return Err(self.error(&format!("unknown escape `\\{other}`")));
                        }
                    }
                }
                '$' | '%' if self.peek() == Some(b'{') => {
                    return Err(self.error("templates (`${…}`, `%{…}`) are not supported"));
                }
                c => out.push(c),
            }
        }
    }

    fn unicode_escape(&mut self) -> Result<char, String> {
        let hex = self
            .text
            .get(self.at..self.at + 4)
            .ok_or_else(|| self.error("`\\u` needs four hex digits"))?;
        let code =
            u32::from_str_radix(hex, 16).map_err(|_| self.error("`\\u` needs four hex digits"))?;
        self.at += 4;
        char::from_u32(code).ok_or_else(|| self.error("`\\u` names no character"))
    }

    /// Skip blanks and comments; newlines too when `newlines`.
    fn skip_space(&mut self, newlines: bool) -> Result<(), String> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r') => self.at += 1,
                Some(b'\n') if newlines => self.at += 1,
                Some(b'#') => self.skip_line(),
                Some(b'/') if self.bytes.get(self.at + 1) == Some(&b'/') => self.skip_line(),
                Some(b'/') if self.bytes.get(self.at + 1) == Some(&b'*') => {
                    let end = self.text[self.at + 2..]
                        .find("*/")
                        .ok_or_else(|| self.error("a `/*` comment is not closed"))?;
                    self.at += end + 4;
                }
                _ => return Ok(()),
            }
        }
    }

    fn skip_line(&mut self) {
        while self.peek().is_some_and(|c| c != b'\n') {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn line(&self) -> usize {
        self.text[..self.at].matches('\n').count() + 1
    }

    fn error(&self, what: &str) -> String {
        format!("plugin_data line {}: {what}", self.line())
    }
}

/// Insert `key`, merging labelled blocks of the same name (`clusters "a" {}` and
/// `clusters "b" {}`); any other repeat is an error.
fn insert(
    map: &mut Map<String, Value>,
    key: String,
    value: Value,
    line: usize,
) -> Result<(), String> {
    match (map.get_mut(&key), value) {
        (None, value) => {
            map.insert(key, value);
            Ok(())
        }
        (Some(Value::Object(existing)), Value::Object(more))
            if more.keys().all(|k| !existing.contains_key(k)) && !more.is_empty() =>
        {
            existing.extend(more);
            Ok(())
        }
        _ => Err(format!("plugin_data line {line}: `{key}` is set twice")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spire_style_nested_configuration_reads_as_objects() {
        let text = r#"
            # k8s_psat, as SPIRE documents it
            clusters = {
                "MyCluster" = {
                    service_account_allow_list = ["production:spire-agent", "a:b",]
                    use_pod_uid_for_agent_id = true
                    audience = []
                }
                other = { kube_config_file = "/etc/kube.conf", n = -3, f = 1.5 }
            }
            block "x" "y" { a = "\u00e9\"\\" }
            block "z" { b = null }
        "#;
        let value = parse(text).expect("parses");
        assert_eq!(
            value["clusters"]["MyCluster"]["service_account_allow_list"],
            serde_json::json!(["production:spire-agent", "a:b"])
        );
        assert_eq!(
            value["clusters"]["MyCluster"]["use_pod_uid_for_agent_id"],
            true
        );
        assert_eq!(
            value["clusters"]["MyCluster"]["audience"],
            serde_json::json!([])
        );
        assert_eq!(value["clusters"]["other"]["n"], -3);
        assert_eq!(value["clusters"]["other"]["f"], 1.5);
        assert_eq!(value["block"]["x"]["y"]["a"], "é\"\\");
        assert_eq!(value["block"]["z"]["b"], Value::Null);
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        for (text, expected) in [
            ("a = 1\nb = unquoted\n", "line 2: `unquoted` is not a value"),
            ("a = 1\na = 2\n", "line 2: `a` is set twice"),
            ("a = {\n b = 1\n", "a `}` is missing"),
            ("a = \"open\n", "line 1: a string is not closed"),
            ("a = [1, 2\n", "not closed with `]`"),
            ("a = \"${x}\"\n", "templates"),
            ("a = <<EOF\nx\nEOF\n", "heredocs"),
            ("= 1\n", "expected a key"),
            ("a 1\n", "expected `=` after `a`"),
            ("a = 1e999\n", "is not a number"),
        ] {
            let error = parse(text).expect_err(text);
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        let deep = format!("a = {}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse(&deep).expect_err("deep").contains("too deep"));
    }

    #[test]
    fn typed_configuration_refuses_unknown_keys() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        struct Config {
            #[expect(dead_code, reason = "only the refusal is under test")]
            cluster: String,
        }
        let error = from_hcl::<Config>("cluster = \"a\"\nclustr = \"b\"\n").expect_err("unknown");
        assert!(error.contains("clustr"), "{error}");
    }
}
