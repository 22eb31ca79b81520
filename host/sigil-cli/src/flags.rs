//! Go-`flag`-style parsing, as SPIRE's CLI does it: `-flag value`, `--flag value`,
//! `-flag=value` and `--flag=value`; boolean flags take no value (or `=true`/`=false`);
//! repeatable flags collect every occurrence. Values are checked against the flag's kind
//! while parsing, so the typed accessors below cannot fail.

use std::collections::HashMap;
use std::fmt::Write as _;

/// What a flag holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A string; the last occurrence wins.
    Str,
    /// A decimal integer (may be negative; commands check the range).
    Int,
    /// A boolean switch.
    Bool,
    /// A Go-style duration (`90s`, `10m`, `1h30m`); a bare integer is taken as seconds.
    Duration,
    /// A repeatable string.
    Multi,
}

/// One flag a command accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    /// Name without dashes, in SPIRE's spelling (`spiffeID`, `x509SVIDTTL`).
    pub name: &'static str,
    pub kind: Kind,
    /// One line for the usage text.
    pub help: &'static str,
}

impl Spec {
    pub(crate) const fn new(name: &'static str, kind: Kind, help: &'static str) -> Self {
        Self { name, kind, help }
    }
}

/// Why the command line could not be parsed. The texts are Go's `flag` package's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlagError {
    /// The flag is not one the command accepts.
    #[error("flag provided but not defined: -{0}")]
    Unknown(String),
    /// A value flag was last on the line.
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    /// The value does not parse as the flag's kind.
    #[error("invalid value {value:?} for flag -{name}: {reason}")]
    InvalidValue {
        name: String,
        value: String,
        reason: String,
    },
    /// A bare word where a flag was expected.
    #[error("unexpected argument {0:?}")]
    UnexpectedArgument(String),
    /// `-` or `---x`: not a flag name.
    #[error("bad flag syntax: {0}")]
    BadSyntax(String),
}

/// The parsed flags of one invocation.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    values: HashMap<&'static str, Vec<String>>,
}

/// Parses `args` against `specs`.
pub(crate) fn parse(args: &[String], specs: &[Spec]) -> Result<Flags, FlagError> {
    let mut flags = Flags::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            if let Some(extra) = args.get(i) {
                return Err(FlagError::UnexpectedArgument(extra.clone()));
            }
            break;
        }
        let body = match arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) {
            Some(body) => body,
            None => return Err(FlagError::UnexpectedArgument(arg.clone())),
        };
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(FlagError::BadSyntax(arg.clone()));
        }
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (body, None),
        };
        let spec = specs
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| FlagError::Unknown(name.to_owned()))?;
        let value = match (spec.kind, inline) {
            (Kind::Bool, None) => "true".to_owned(),
            (_, Some(value)) => value,
            (_, None) => {
                let value = args
                    .get(i)
                    .ok_or_else(|| FlagError::MissingValue(name.to_owned()))?;
                i += 1;
                value.clone()
            }
        };
        check(spec, &value)?;
        flags.values.entry(spec.name).or_default().push(value);
    }
    Ok(flags)
}

/// The usage text Go prints after a flag error: `Usage of <command>:` and one entry per flag.
pub(crate) fn usage(command: &str, specs: &[Spec]) -> String {
    let mut text = format!("Usage of {command}:\n");
    let mut sorted: Vec<&Spec> = specs.iter().collect();
    sorted.sort_by_key(|s| s.name);
    for spec in sorted {
        let kind = match spec.kind {
            Kind::Str | Kind::Multi => " string",
            Kind::Int => " int",
            Kind::Duration => " duration",
            Kind::Bool => "",
        };
        let _ = writeln!(text, "  -{}{kind}\n    \t{}", spec.name, spec.help);
    }
    text
}

impl Flags {
    /// The last value of a string flag.
    pub(crate) fn str(&self, name: &str) -> Option<&str> {
        self.values.get(name)?.last().map(String::as_str)
    }

    /// The last value of a string flag, or `default`.
    pub(crate) fn str_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.str(name).unwrap_or(default)
    }

    /// Every value of a repeatable flag, in order.
    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    /// Whether a flag was given at all.
    pub(crate) fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// A boolean flag's value; false when absent.
    pub(crate) fn bool(&self, name: &str) -> bool {
        self.str(name).is_some_and(|v| parse_bool(v) == Some(true))
    }

    /// An integer flag's value, or `default`.
    pub(crate) fn int(&self, name: &str, default: i64) -> i64 {
        self.str(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// A duration flag's value in whole seconds (rounded up), or `default`.
    pub(crate) fn seconds(&self, name: &str, default: i64) -> i64 {
        self.str(name)
            .and_then(|v| parse_duration(v).ok())
            .unwrap_or(default)
    }
}

fn check(spec: &Spec, value: &str) -> Result<(), FlagError> {
    let reason = match spec.kind {
        Kind::Str | Kind::Multi => return Ok(()),
        Kind::Bool => parse_bool(value)
            .map(|_| ())
            .ok_or("parse error".to_owned()),
        Kind::Int => value
            .parse::<i64>()
            .map(|_| ())
            .map_err(|_| "parse error".to_owned()),
        Kind::Duration => parse_duration(value).map(|_| ()),
    };
    reason.map_err(|reason| FlagError::InvalidValue {
        name: spec.name.to_owned(),
        value: value.to_owned(),
        reason,
    })
}

fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Parses `1h30m`, `90s`, `500ms` (rounded up to a second) or a bare number of seconds.
pub(crate) fn parse_duration(value: &str) -> Result<i64, String> {
    if let Ok(seconds) = value.parse::<i64>() {
        return Ok(seconds);
    }
    let (negative, mut rest) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    if rest.is_empty() {
        return Err(format!("time: invalid duration {value:?}"));
    }
    let mut millis: i64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number: i64 = rest[..digits]
            .parse()
            .map_err(|_| format!("time: invalid duration {value:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" => return Err(format!("time: missing unit in duration {value:?}")),
            unit => return Err(format!("time: unknown unit {unit:?} in duration {value:?}")),
        };
        rest = &rest[unit_len..];
        millis = number
            .checked_mul(scale)
            .and_then(|v| millis.checked_add(v))
            .ok_or_else(|| format!("time: invalid duration {value:?}"))?;
    }
    let seconds = (millis + 999) / 1_000;
    Ok(if negative { -seconds } else { seconds })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[Spec] = &[
        Spec::new("spiffeID", Kind::Str, ""),
        Spec::new("selector", Kind::Multi, ""),
        Spec::new("admin", Kind::Bool, ""),
        Spec::new("x509SVIDTTL", Kind::Int, ""),
        Spec::new("ttl", Kind::Duration, ""),
    ];

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn every_spelling_of_a_value_flag_is_accepted() {
        for line in [
            &["-spiffeID", "spiffe://x/y"][..],
            &["--spiffeID", "spiffe://x/y"],
            &["-spiffeID=spiffe://x/y"],
            &["--spiffeID=spiffe://x/y"],
        ] {
            let flags = parse(&args(line), SPECS).unwrap();
            assert_eq!(flags.str("spiffeID"), Some("spiffe://x/y"), "{line:?}");
        }
    }

    #[test]
    fn repeatable_flags_collect_in_order_and_bools_take_no_value() {
        let flags = parse(
            &args(&["-selector", "unix:uid:1", "-admin", "--selector=k8s:ns:a=b"]),
            SPECS,
        )
        .unwrap();
        assert_eq!(flags.all("selector"), ["unix:uid:1", "k8s:ns:a=b"]);
        assert!(flags.bool("admin"));
        assert!(
            !parse(&args(&["-admin=false"]), SPECS)
                .unwrap()
                .bool("admin")
        );
        assert!(!flags.is_set("spiffeID"));
    }

    #[test]
    fn errors_name_the_flag() {
        let err = |line: &[&str]| parse(&args(line), SPECS).unwrap_err().to_string();
        assert_eq!(err(&["-nope", "x"]), "flag provided but not defined: -nope");
        assert_eq!(err(&["-spiffeID"]), "flag needs an argument: -spiffeID");
        assert_eq!(
            err(&["-x509SVIDTTL", "ten"]),
            "invalid value \"ten\" for flag -x509SVIDTTL: parse error"
        );
        assert_eq!(
            err(&["-admin=maybe"]),
            "invalid value \"maybe\" for flag -admin: parse error"
        );
        assert_eq!(err(&["stray"]), "unexpected argument \"stray\"");
        assert_eq!(err(&["---x"]), "bad flag syntax: ---x");
        assert!(
            err(&["-ttl", "5y"])
                .starts_with("invalid value \"5y\" for flag -ttl: time: unknown unit")
        );
    }

    #[test]
    fn durations_follow_go_and_round_up() {
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("1500ms"), Ok(2));
        assert_eq!(parse_duration("600"), Ok(600));
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("h").is_err());
        let flags = parse(&args(&["-ttl", "2m"]), SPECS).unwrap();
        assert_eq!(flags.seconds("ttl", 0), 120);
        assert_eq!(flags.int("x509SVIDTTL", 7), 7);
    }

    #[test]
    fn usage_lists_flags_sorted_with_their_kind() {
        let text = usage("entry create", SPECS);
        assert!(text.starts_with("Usage of entry create:\n  -admin\n"));
        assert!(text.contains("  -x509SVIDTTL int\n"));
        assert!(text.contains("  -selector string\n"));
    }
}
