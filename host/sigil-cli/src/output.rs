//! Human ("pretty") output exactly as SPIRE's CLI prints it, and the small encoders it needs:
//! Go's `time.Time` text, gRPC code names, base64 and PEM.

use std::io::Write;

use sigil_proto::spire::api::types as wire;

use crate::error::CliError;
use crate::json::Json;

/// `-output pretty|json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// SPIRE's human-readable text.
    Pretty,
    /// The response message in protobuf's JSON mapping (proto field names, as SPIRE prints).
    Json,
}

impl OutputFormat {
    pub(crate) fn parse(value: &str) -> Result<Self, CliError> {
        match value {
            "pretty" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            other => Err(CliError::invalid(format!(
                "invalid output format {other:?}: valid values are \"pretty\" and \"json\""
            ))),
        }
    }
}

/// Where a command writes, and how.
pub(crate) struct Out<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    pub format: OutputFormat,
}

impl std::fmt::Debug for Out<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Out").field("format", &self.format).finish()
    }
}

impl Out<'_> {
    /// Writes to stdout. A closed stdout is not worth failing a finished command over.
    pub(crate) fn print(&mut self, text: &str) {
        let _ = self.out.write_all(text.as_bytes());
    }

    /// Writes to stderr.
    pub(crate) fn eprint(&mut self, text: &str) {
        let _ = self.err.write_all(text.as_bytes());
    }

    /// Prints `value` as one line of JSON.
    pub(crate) fn json(&mut self, value: &Json) {
        let text = format!("{}\n", value.render());
        self.print(&text);
    }

    pub(crate) fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }
}

/// SPIRE's `util.Pluralizer`: `msg` followed by the singular when `n == 1`.
pub(crate) fn plural(msg: &str, singular: &str, plural: &str, n: usize) -> String {
    format!("{msg}{}", if n == 1 { singular } else { plural })
}

/// `spiffe://<td><path>` from the wire form; empty when absent.
pub(crate) fn id_string(id: Option<&wire::Spiffeid>) -> String {
    match id {
        Some(id) if !id.trust_domain.is_empty() => {
            format!("spiffe://{}{}", id.trust_domain, id.path)
        }
        _ => String::new(),
    }
}

/// One entry, as SPIRE's `printEntry`.
pub(crate) fn entry_text(e: &wire::Entry) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let id = if e.id.is_empty() { "(none)" } else { &e.id };
    let _ = writeln!(s, "Entry ID         : {id}");
    let _ = writeln!(s, "SPIFFE ID        : {}", id_string(e.spiffe_id.as_ref()));
    let _ = writeln!(s, "Parent ID        : {}", id_string(e.parent_id.as_ref()));
    let _ = writeln!(s, "Revision         : {}", e.revision_number);
    if e.downstream {
        let _ = writeln!(s, "Downstream       : true");
    }
    let ttl = |v: i32| {
        if v == 0 {
            "default".to_owned()
        } else {
            v.to_string()
        }
    };
    let _ = writeln!(s, "X509-SVID TTL    : {}", ttl(e.x509_svid_ttl));
    let _ = writeln!(s, "JWT-SVID TTL     : {}", ttl(e.jwt_svid_ttl));
    if e.expires_at != 0 {
        let _ = writeln!(s, "Expiration time  : {}", go_time_utc(e.expires_at));
    }
    for sel in &e.selectors {
        let _ = writeln!(s, "Selector         : {}:{}", sel.r#type, sel.value);
    }
    for td in &e.federates_with {
        let _ = writeln!(s, "FederatesWith    : {td}");
    }
    for dns in &e.dns_names {
        let _ = writeln!(s, "DNS name         : {dns}");
    }
    if e.admin {
        let _ = writeln!(s, "Admin            : true");
    }
    if e.store_svid {
        let _ = writeln!(s, "StoreSvid        : true");
    }
    if !e.hint.is_empty() {
        let _ = writeln!(s, "Hint             : {}", e.hint);
    }
    s.push('\n');
    s
}

/// One agent, as SPIRE's `printAgents`.
pub(crate) fn agent_text(a: &wire::Agent) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "SPIFFE ID         : {}", id_string(a.id.as_ref()));
    let _ = writeln!(s, "Attestation type  : {}", a.attestation_type);
    let _ = writeln!(
        s,
        "Expiration time   : {}",
        go_time_utc(a.x509svid_expires_at)
    );
    if a.banned {
        let _ = writeln!(s, "Banned            : true");
    } else {
        let _ = writeln!(s, "Serial number     : {}", a.x509svid_serial_number);
    }
    let _ = writeln!(s, "Can re-attest     : {}", a.can_reattest);
    if !a.agent_version.is_empty() {
        let _ = writeln!(s, "Agent version     : {}", a.agent_version);
    }
    s.push('\n');
    s
}

/// Go's `time.Unix(secs, 0).UTC().String()`: `2019-03-12 17:04:26 +0000 UTC`.
pub(crate) fn go_time_utc(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian, days since 1970-01-01).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// grpc-go's name for a status code (`AlreadyExists`), as `codes.Code.String()` prints it.
pub(crate) fn code_name(code: tonic::Code) -> String {
    code_name_i32(code as i32)
}

/// The same for a code carried as an integer in a batch result's `Status`.
pub(crate) fn code_name_i32(code: i32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("Code({code})"), |n| (*n).to_owned())
}

/// A batch item's status is OK when it is absent or has code 0.
pub(crate) fn status_ok(status: Option<&wire::Status>) -> bool {
    status.is_none_or(|s| s.code == 0)
}

/// `(code: X, msg: "…")`, the way SPIRE describes a failed batch item.
pub(crate) fn status_text(status: Option<&wire::Status>) -> String {
    let (code, msg) = status.map_or((0, ""), |s| (s.code, s.message.as_str()));
    format!("(code: {}, msg: {msg:?})", code_name_i32(code))
}

/// Standard base64 with padding.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One PEM block, 64 columns, as Go's `pem.Encode` writes it.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let body = base64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_matches_go() {
        assert_eq!(go_time_utc(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(go_time_utc(1_552_410_266), "2019-03-12 17:04:26 +0000 UTC");
        assert_eq!(go_time_utc(951_782_400), "2000-02-29 00:00:00 +0000 UTC");
        assert_eq!(go_time_utc(-1), "1969-12-31 23:59:59 +0000 UTC");
    }

    #[test]
    fn base64_and_pem() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        let block = pem("CERTIFICATE", &[0u8; 60]);
        let lines: Vec<&str> = block.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[2], "AAAAAAAAAAAAAAAA");
        assert_eq!(lines[3], "-----END CERTIFICATE-----");
    }

    #[test]
    fn code_names_are_grpc_gos() {
        assert_eq!(code_name(tonic::Code::AlreadyExists), "AlreadyExists");
        assert_eq!(code_name_i32(16), "Unauthenticated");
        assert_eq!(code_name_i32(99), "Code(99)");
        assert_eq!(plural("Found 1 ", "entry", "entries", 1), "Found 1 entry");
        assert_eq!(plural("Found 0 ", "entry", "entries", 0), "Found 0 entries");
    }
}
