//! SPIRE's `-expandEnv`: `$VAR` and `${VAR}` in the config text are replaced before parsing,
//! exactly as Go's `os.ExpandEnv` does (unset variables become empty, `${}` is dropped, a `$`
//! followed by nothing that can start a name is kept).

/// Expands `$VAR` and `${VAR}` from the process environment, as Go's `os.ExpandEnv`.
pub fn expand_env(text: &str) -> String {
    expand_env_with(text, |name| std::env::var(name).ok())
}

/// Expands `$VAR` and `${VAR}` with `lookup` supplying the values (`None` = unset = empty),
/// following Go's `os.Expand`.
pub fn expand_env_with(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut j = 0;
    while j < text.len() {
        if text.as_bytes()[j] == b'$' && j + 1 < text.len() {
            out.push_str(&text[copied..j]);
            let (name, width) = shell_name(&text[j + 1..]);
            match (name, width) {
                // Invalid syntax (`${}` or an unclosed `${`): the characters are dropped.
                ("", w) if w > 0 => {}
                // `$` not followed by a name: kept.
                ("", _) => out.push('$'),
                (name, _) => out.push_str(&lookup(name).unwrap_or_default()),
            }
            j += width;
            copied = j + 1;
        }
        j += 1;
    }
    out.push_str(text.get(copied..).unwrap_or(""));
    out
}

/// Go's `getShellName`: the variable name at the start of `s` (just after a `$`) and how many
/// bytes of `s` it uses.
fn shell_name(s: &str) -> (&str, usize) {
    let bytes = s.as_bytes();
    if bytes[0] == b'{' {
        if bytes.len() > 2 && is_special(bytes[1]) && bytes[2] == b'}' {
            return (&s[1..2], 3);
        }
        return match s[1..].find('}') {
            Some(0) => ("", 2),
            Some(end) => (&s[1..=end], end + 2),
            None => ("", 1),
        };
    }
    if is_special(bytes[0]) {
        return (&s[0..1], 1);
    }
    let len = bytes
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    (&s[..len], len)
}

/// Go's `isShellSpecialVar`.
fn is_special(c: u8) -> bool {
    matches!(
        c,
        b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-' | b'0'..=b'9'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "TD" => Some("example.org".into()),
            "DIR" => Some("/var/lib/sigil".into()),
            "1" => Some("one".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_like_go() {
        let cases = [
            ("trust_domain = \"$TD\"", "trust_domain = \"example.org\""),
            (
                "data_dir = \"${DIR}/data\"",
                "data_dir = \"/var/lib/sigil/data\"",
            ),
            ("$TD.$DIR", "example.org./var/lib/sigil"),
            ("a${UNSET}b$UNSET_TOO c", "ab c"),
            ("cost: $", "cost: $"),
            ("x $ y", "x $ y"),
            ("${}", ""),
            ("${TD", "TD"),
            ("$1$", "one$"),
            ("$$", ""),
            ("$TD-x", "example.org-x"),
            ("no dollars", "no dollars"),
            ("été $TD ü", "été example.org ü"),
        ];
        for (input, expected) in cases {
            assert_eq!(expand_env_with(input, lookup), expected, "{input:?}");
        }
    }
}
