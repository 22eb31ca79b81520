//! `sigil-agent`'s workload commands, SPIRE's `spire-agent api …` and `healthcheck`: SPIFFE
//! Workload API calls on the agent's socket, with the `workload.spiffe.io: true` header every
//! call must carry, and SPIRE's text output.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use sigil_proto::workload as api;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::CliError;
use crate::flags::{Kind, Spec};
use crate::output::{go_time_utc, pem};
use crate::{Cmd, Command};

/// SPIRE's default Workload API socket.
pub(crate) const DEFAULT_SOCKET_PATH: &str = "/tmp/spire-agent/public/api.sock";

/// Flags every agent command takes.
pub(crate) const COMMON: &[Spec] = &[
    Spec::new(
        "socketPath",
        Kind::Str,
        "Path to the SPIRE Agent API socket (default \"/tmp/spire-agent/public/api.sock\")",
    ),
    Spec::new(
        "timeout",
        Kind::Duration,
        "Time to wait for a response (default 5s)",
    ),
    Spec::new(
        "output",
        Kind::Str,
        "Desired output format (pretty, json); default: pretty.",
    ),
];

const FETCH_X509: &[Spec] = &[
    Spec::new("silent", Kind::Bool, "Suppress stdout"),
    Spec::new(
        "write",
        Kind::Str,
        "Write SVID data to the specified path (optional; only available for pretty output format)",
    ),
];
const FETCH_JWT: &[Spec] = &[
    Spec::new(
        "audience",
        Kind::Multi,
        "comma separated list of audience values",
    ),
    Spec::new("spiffeID", Kind::Str, "SPIFFE ID subject (optional)"),
];
const VALIDATE_JWT: &[Spec] = &[
    Spec::new("audience", Kind::Str, "expected audience value"),
    Spec::new("svid", Kind::Str, "JWT SVID"),
];
const HEALTH: &[Spec] = &[
    Spec::new(
        "shallow",
        Kind::Bool,
        "Perform a less stringent health check",
    ),
    Spec::new("verbose", Kind::Bool, "Print verbose information"),
];

pub(crate) const COMMANDS: &[Command] = &[
    Command {
        name: "api fetch x509",
        specs: FETCH_X509,
        synopsis: "Fetches X509 SVIDs from the Workload API",
    },
    Command {
        name: "api fetch",
        specs: FETCH_X509,
        synopsis: "Fetches X509 SVIDs from the Workload API (same as api fetch x509)",
    },
    Command {
        name: "api fetch jwt",
        specs: FETCH_JWT,
        synopsis: "Fetches a JWT SVID from the Workload API",
    },
    Command {
        name: "api validate jwt",
        specs: VALIDATE_JWT,
        synopsis: "Validates a JWT SVID",
    },
    Command {
        name: "api watch",
        specs: &[],
        synopsis: "Attaches to the Workload API and prints updates as they're received",
    },
    Command {
        name: "healthcheck",
        specs: HEALTH,
        synopsis: "Determines agent health status",
    },
];

pub(crate) async fn dispatch(name: &str, cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    match name {
        "api fetch x509" | "api fetch" => fetch_x509(cmd).await,
        "api fetch jwt" => fetch_jwt(cmd).await,
        "api validate jwt" => validate_jwt(cmd).await,
        "api watch" => watch(cmd).await,
        "healthcheck" => health(cmd).await,
        other => Err(CliError::invalid(format!("unknown command {other:?}"))),
    }
}

type Client = api::spiffe_workload_api_client::SpiffeWorkloadApiClient<Channel>;

/// A request with the security header and the `-timeout` deadline.
fn request<T>(cmd: &Cmd<'_>, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("workload.spiffe.io", MetadataValue::from_static("true"));
    if let Some(timeout) = timeout(cmd) {
        request.set_timeout(timeout);
    }
    request
}

fn timeout(cmd: &Cmd<'_>) -> Option<Duration> {
    let seconds = cmd.flags.seconds("timeout", 5);
    u64::try_from(seconds)
        .ok()
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
}

async fn client(cmd: &Cmd<'_>) -> Result<Client, CliError> {
    Ok(Client::new(cmd.channel().await?))
}

/// `api fetch x509`: the first FetchX509SVID response, printed as SPIRE prints it and, with
/// `-write`, written as `svid.N.pem`, `svid.N.key` (0600) and `bundle.N.pem`.
async fn fetch_x509(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let mut client = client(cmd).await?;
    let started = Instant::now();
    let mut stream = client
        .fetch_x509svid(request(cmd, api::X509svidRequest {}))
        .await
        .map_err(CliError::rpc)?
        .into_inner();
    let response = stream
        .message()
        .await
        .map_err(CliError::rpc)?
        .ok_or_else(|| CliError::invalid("the agent closed the stream without an answer"))?;
    let elapsed = started.elapsed();
    let text = x509_text(&response, elapsed)?;
    if !cmd.flags.bool("silent") {
        cmd.out.print(&text);
    }
    if let Some(dir) = cmd.flags.str("write").map(str::to_owned) {
        write_x509(cmd, Path::new(&dir), &response)?;
    }
    Ok(())
}

/// SPIRE's `Received N svid(s) after T` block.
fn x509_text(response: &api::X509svidResponse, elapsed: Duration) -> Result<String, CliError> {
    if response.svids.is_empty() {
        return Err(CliError::invalid("workload response contains no svids"));
    }
    let mut text = format!(
        "Received {} svid{} after {}\n",
        response.svids.len(),
        if response.svids.len() == 1 { "" } else { "s" },
        go_duration(elapsed)
    );
    let mut federated: Vec<(&String, &Vec<u8>)> = response.federated_bundles.iter().collect();
    federated.sort();
    for svid in &response.svids {
        let chain = certificates(&svid.x509_svid, &svid.spiffe_id)?;
        let bundle = certificates(&svid.bundle, "the trust bundle")?;
        let _ = write!(text, "\nSPIFFE ID:\t\t{}\n", svid.spiffe_id);
        if let Some((leaf, intermediates)) = chain.split_first() {
            let _ = writeln!(text, "SVID Valid After:\t{}", go_time_utc(leaf.0));
            let _ = writeln!(text, "SVID Valid Until:\t{}", go_time_utc(leaf.1));
            for (i, (after, until)) in intermediates.iter().enumerate() {
                let _ = writeln!(
                    text,
                    "Intermediate #{} Valid After:\t{}",
                    i + 1,
                    go_time_utc(*after)
                );
                let _ = writeln!(
                    text,
                    "Intermediate #{} Valid Until:\t{}",
                    i + 1,
                    go_time_utc(*until)
                );
            }
        }
        for (i, (after, until)) in bundle.iter().enumerate() {
            let _ = writeln!(text, "CA #{} Valid After:\t{}", i + 1, go_time_utc(*after));
            let _ = writeln!(text, "CA #{} Valid Until:\t{}", i + 1, go_time_utc(*until));
        }
        for (trust_domain, der) in &federated {
            for (i, (after, until)) in certificates(der, trust_domain)?.iter().enumerate() {
                let _ = writeln!(
                    text,
                    "[{trust_domain}] CA #{} Valid After:\t{}",
                    i + 1,
                    go_time_utc(*after)
                );
                let _ = writeln!(
                    text,
                    "[{trust_domain}] CA #{} Valid Until:\t{}",
                    i + 1,
                    go_time_utc(*until)
                );
            }
        }
    }
    text.push('\n');
    Ok(text)
}

/// The validity (notBefore, notAfter as Unix seconds) of each certificate in concatenated
/// DER, which must hold at least one.
fn certificates(mut der: &[u8], what: &str) -> Result<Vec<(i64, i64)>, CliError> {
    let mut out = Vec::new();
    while !der.is_empty() {
        let (rest, cert) = X509Certificate::from_der(der).map_err(|e| {
            CliError::invalid(format!("failed to parse certificates of {what}: {e}"))
        })?;
        let validity = cert.validity();
        out.push((
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        ));
        der = rest;
    }
    if out.is_empty() {
        return Err(CliError::invalid(format!("no certificates in {what}")));
    }
    Ok(out)
}

/// Splits concatenated DER certificates into PEM blocks.
fn pem_certificates(mut der: &[u8]) -> Result<String, CliError> {
    let mut text = String::new();
    while !der.is_empty() {
        let (rest, _) = X509Certificate::from_der(der)
            .map_err(|e| CliError::invalid(format!("failed to parse certificates: {e}")))?;
        text.push_str(&pem("CERTIFICATE", &der[..der.len() - rest.len()]));
        der = rest;
    }
    Ok(text)
}

fn write_x509(
    cmd: &mut Cmd<'_>,
    dir: &Path,
    response: &api::X509svidResponse,
) -> Result<(), CliError> {
    let mut federated: Vec<(&String, &Vec<u8>)> = response.federated_bundles.iter().collect();
    federated.sort();
    for (i, svid) in response.svids.iter().enumerate() {
        let svid_path = dir.join(format!("svid.{i}.pem"));
        cmd.out.print(&format!(
            "Writing SVID #{i} to file {}.\n",
            svid_path.display()
        ));
        write_file(&svid_path, &pem_certificates(&svid.x509_svid)?, 0o644)?;
        let key_path = dir.join(format!("svid.{i}.key"));
        cmd.out.print(&format!(
            "Writing key #{i} to file {}.\n",
            key_path.display()
        ));
        write_file(&key_path, &pem("PRIVATE KEY", &svid.x509_svid_key), 0o600)?;
        let bundle_path = dir.join(format!("bundle.{i}.pem"));
        cmd.out.print(&format!(
            "Writing bundle #{i} to file {}.\n",
            bundle_path.display()
        ));
        write_file(&bundle_path, &pem_certificates(&svid.bundle)?, 0o644)?;
        for (j, (trust_domain, der)) in federated.iter().enumerate() {
            let path = dir.join(format!("federated_bundle.{i}.{j}.pem"));
            cmd.out.print(&format!(
                "Writing federated bundle #{j} for trust domain {trust_domain} to file {}.\n",
                path.display()
            ));
            write_file(&path, &pem_certificates(der)?, 0o644)?;
        }
    }
    Ok(())
}

/// Writes `text` to `path` with `mode`, replacing the file; the mode is set before any byte is
/// written, so a key is never readable by others.
fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), CliError> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let context = || format!("writing {}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(CliError::io(context()))?;
    // An existing file keeps its old mode through `open`; set ours.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(CliError::io(context()))?;
    file.write_all(text.as_bytes())
        .map_err(CliError::io(context()))
}

/// `api fetch jwt -audience a[,b] [-spiffeID id]`: JWT-SVIDs and the JWT bundles.
async fn fetch_jwt(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let audience: Vec<String> = cmd
        .flags
        .all("audience")
        .iter()
        .flat_map(|a| a.split(','))
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    if audience.is_empty() {
        return Err(CliError::invalid("audience must be specified"));
    }
    let mut client = client(cmd).await?;
    let bundles = client
        .fetch_jwt_bundles(request(cmd, api::JwtBundlesRequest {}))
        .await
        .map_err(CliError::rpc_in("failed to receive JWT bundles"))?
        .into_inner()
        .message()
        .await
        .map_err(CliError::rpc_in("failed to receive JWT bundles"))?
        .ok_or_else(|| CliError::invalid("the agent closed the stream without an answer"))?;
    let svids = client
        .fetch_jwtsvid(request(
            cmd,
            api::JwtsvidRequest {
                audience,
                spiffe_id: cmd.flags.str_or("spiffeID", "").to_owned(),
            },
        ))
        .await
        .map_err(CliError::rpc)?
        .into_inner();
    let mut text = String::new();
    for svid in &svids.svids {
        let _ = write!(text, "token({}):\n\t{}\n", svid.spiffe_id, svid.svid);
    }
    let mut bundles: Vec<(String, Vec<u8>)> = bundles.bundles.into_iter().collect();
    bundles.sort();
    for (trust_domain, jwks) in bundles {
        let _ = write!(
            text,
            "bundle({trust_domain}):\n\t{}\n",
            String::from_utf8_lossy(&jwks)
        );
    }
    cmd.out.print(&text);
    Ok(())
}

/// `api validate jwt -audience a -svid token`.
async fn validate_jwt(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let audience = cmd.flags.str_or("audience", "").to_owned();
    if audience.is_empty() {
        return Err(CliError::invalid("audience must be specified"));
    }
    let svid = cmd.flags.str_or("svid", "").to_owned();
    if svid.is_empty() {
        return Err(CliError::invalid("svid must be specified"));
    }
    let mut client = client(cmd).await?;
    let response = client
        .validate_jwtsvid(request(cmd, api::ValidateJwtsvidRequest { audience, svid }))
        .await
        .map_err(|status| {
            if status.code() == tonic::Code::InvalidArgument {
                CliError::invalid(format!("SVID is not valid: {}", status.message()))
            } else {
                CliError::rpc_in("unable to validate JWT SVID")(status)
            }
        })?
        .into_inner();
    let claims = response
        .claims
        .as_ref()
        .map_or(serde_json::Value::Null, struct_json);
    cmd.out.print(&format!(
        "SVID is valid.\nSPIFFE ID : {}\nClaims    : {claims}\n",
        response.spiffe_id
    ));
    Ok(())
}

/// `api watch`: every X.509 update until the stream ends, as `api fetch x509` prints one.
async fn watch(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let mut client = client(cmd).await?;
    // A watch has no deadline: it runs until the agent or the user ends it.
    let mut call = tonic::Request::new(api::X509svidRequest {});
    call.metadata_mut()
        .insert("workload.spiffe.io", MetadataValue::from_static("true"));
    let mut stream = client
        .fetch_x509svid(call)
        .await
        .map_err(CliError::rpc)?
        .into_inner();
    let mut last = Instant::now();
    while let Some(response) = stream.message().await.map_err(CliError::rpc)? {
        let text = x509_text(&response, last.elapsed())?;
        cmd.out.print(&text);
        last = Instant::now();
    }
    Err(CliError::invalid("the agent ended the stream"))
}

/// `healthcheck`: grpc.health.v1 on the agent's socket.
async fn health(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let verbose = cmd.flags.bool("verbose");
    if verbose {
        cmd.out.print("Checking agent health...\n");
    }
    let unhealthy = |reason: &str| CliError::AgentUnhealthy(reason.to_owned());
    let channel = match cmd.channel().await {
        Ok(channel) => channel,
        Err(e) => {
            if verbose {
                cmd.out.eprint(&format!("Failed to check health: {e}\n"));
            }
            return Err(unhealthy("unable to determine health"));
        }
    };
    let mut call = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    if let Some(timeout) = timeout(cmd) {
        call.set_timeout(timeout);
    }
    match HealthClient::new(channel).check(call).await {
        Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => {
            cmd.out.print("Agent is healthy.\n");
            Ok(())
        }
        Ok(r) => Err(unhealthy(&format!(
            "agent returned status {}",
            r.get_ref().status
        ))),
        Err(status) => {
            if verbose {
                cmd.out.eprint(&format!(
                    "Failed to check health: {}\n",
                    CliError::rpc(status)
                ));
            }
            Err(unhealthy("unable to determine health"))
        }
    }
}

/// Go's `time.Duration.String()` for the durations a fetch takes: `812.5µs`, `8.712345ms`,
/// `1.5s`.
fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    let (value, unit) = if nanos < 1_000 {
        return format!("{nanos}ns");
    } else if nanos < 1_000_000 {
        (nanos as f64 / 1e3, "µs")
    } else if nanos < 1_000_000_000 {
        (nanos as f64 / 1e6, "ms")
    } else {
        (nanos as f64 / 1e9, "s")
    };
    let text = format!("{value:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{unit}")
}

/// A protobuf `Struct` as JSON (the claims of a validated JWT-SVID).
fn struct_json(value: &prost_types::Struct) -> serde_json::Value {
    serde_json::Value::Object(
        value
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), value_json(v)))
            .collect(),
    )
}

fn value_json(value: &prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind as V;
    match &value.kind {
        None | Some(V::NullValue(_)) => serde_json::Value::Null,
        Some(V::NumberValue(n)) => serde_json::Number::from_f64(*n)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Some(V::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(V::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(V::StructValue(s)) => struct_json(s),
        Some(V::ListValue(l)) => {
            serde_json::Value::Array(l.values.iter().map(value_json).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_prints_them() {
        assert_eq!(go_duration(Duration::from_nanos(512)), "512ns");
        assert_eq!(go_duration(Duration::from_micros(812)), "812µs");
        assert_eq!(go_duration(Duration::from_nanos(8_712_345)), "8.712345ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
    }
}
