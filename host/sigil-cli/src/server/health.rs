//! `healthcheck`: grpc.health.v1 `Check` on the admin socket, as SPIRE's
//! `spire-server healthcheck` does.

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::Cmd;
use crate::error::CliError;
use crate::flags::{Kind, Spec};

pub(crate) const SPECS: &[Spec] = &[
    Spec::new(
        "shallow",
        Kind::Bool,
        "Perform a less stringent health check",
    ),
    Spec::new("verbose", Kind::Bool, "Print verbose information"),
];

/// Prints `Server is healthy.` or fails with `Server is unhealthy: …`.
pub(crate) async fn check(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let verbose = cmd.flags.bool("verbose");
    if verbose {
        cmd.out.print("Checking server health...\n");
    }
    let unhealthy = CliError::Unhealthy;
    let channel = match cmd.channel().await {
        Ok(channel) => channel,
        Err(e) => {
            if verbose {
                cmd.out.eprint(&format!("Failed to check health: {e}\n"));
            }
            return Err(unhealthy("unable to determine health".into()));
        }
    };
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await;
    match response {
        Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => {
            cmd.out.print("Server is healthy.\n");
            Ok(())
        }
        Ok(r) => {
            let name = ServingStatus::try_from(r.get_ref().status).map_or_else(
                |_| r.get_ref().status.to_string(),
                |s| s.as_str_name().to_owned(),
            );
            Err(unhealthy(format!("server returned status {name:?}")))
        }
        Err(status) => {
            if verbose {
                cmd.out.eprint(&format!(
                    "Failed to check health: {}\n",
                    CliError::rpc(status)
                ));
            }
            Err(unhealthy("unable to determine health".into()))
        }
    }
}
