//! `token generate`: CreateJoinToken.

use sigil_proto::spire::api::server::agent::v1 as api;

use super::args;
use crate::Cmd;
use crate::error::CliError;
use crate::flags::{Kind, Spec};
use crate::json::{self, Json};

/// SPIRE's default join token lifetime in seconds.
const DEFAULT_TTL: i64 = 600;

pub(crate) const GENERATE: &[Spec] = &[
    Spec::new(
        "spiffeID",
        Kind::Str,
        "Additional SPIFFE ID to assign the token owner (optional)",
    ),
    Spec::new("ttl", Kind::Int, "Token TTL in seconds (default 600)"),
];

/// `token generate`: prints `Token: <value>`.
pub(crate) async fn generate(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let ttl = cmd.flags.int("ttl", DEFAULT_TTL);
    if ttl < 1 {
        return Err(CliError::invalid("a positive TTL is required"));
    }
    let ttl = i32::try_from(ttl).map_err(|_| CliError::invalid("TTL is too large"))?;
    let agent_id = cmd.flags.str("spiffeID").map(args::spiffe_id).transpose()?;
    let mut client = api::agent_client::AgentClient::new(cmd.channel().await?);
    let token = client
        .create_join_token(api::CreateJoinTokenRequest {
            ttl,
            token: String::new(),
            agent_id,
        })
        .await
        .map_err(CliError::rpc)?
        .into_inner();
    if cmd.out.is_json() {
        cmd.out.json(&Json::Obj(vec![
            ("value", json::s(&token.value)),
            ("expires_at", json::i64s(token.expires_at)),
        ]));
    } else {
        cmd.out.print(&format!("Token: {}\n", token.value));
    }
    Ok(())
}
