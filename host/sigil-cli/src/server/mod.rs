//! `sigil-server`'s commands, SPIRE's `spire-server …` subcommands: SPIRE's server API over
//! the admin Unix socket. `agent.rs` holds the server's `agent list|show|evict|ban|count`
//! (agents as the server records them); the agent binary's own commands are in `crate::agent`.

mod agent;
mod args;
mod bundle;
mod connect;
mod entry;
mod entry_data;
mod entry_flags;
mod federation;
mod health;
mod mint;
mod token;

pub use connect::DEFAULT_SOCKET_PATH;
pub(crate) use connect::channel;

use crate::error::CliError;
use crate::flags::{Kind, Spec};
use crate::{Cmd, Command};

/// Flags every `spire-server` command takes.
pub(crate) const COMMON: &[Spec] = &[
    Spec::new(
        "socketPath",
        Kind::Str,
        "Path to the SPIRE Server API socket (default \"/tmp/spire-server/private/api.sock\")",
    ),
    Spec::new(
        "output",
        Kind::Str,
        "Desired output format (pretty, json); default: pretty.",
    ),
];

pub(crate) const COMMANDS: &[Command] = &[
    Command {
        name: "entry create",
        specs: entry::CREATE,
        synopsis: "Creates registration entries",
    },
    Command {
        name: "entry show",
        specs: entry::SHOW,
        synopsis: "Displays configured registration entries",
    },
    Command {
        name: "entry update",
        specs: entry::UPDATE,
        synopsis: "Updates registration entries",
    },
    Command {
        name: "entry delete",
        specs: entry::DELETE,
        synopsis: "Deletes registration entries",
    },
    Command {
        name: "entry count",
        specs: entry::COUNT,
        synopsis: "Count registration entries",
    },
    Command {
        name: "bundle show",
        specs: bundle::SHOW,
        synopsis: "Prints server CA bundle to stdout",
    },
    Command {
        name: "bundle list",
        specs: bundle::LIST,
        synopsis: "Lists federated bundle data",
    },
    Command {
        name: "bundle set",
        specs: bundle::SET,
        synopsis: "Creates or updates federated bundle data",
    },
    Command {
        name: "bundle delete",
        specs: bundle::DELETE,
        synopsis: "Deletes federated bundle data",
    },
    Command {
        name: "bundle count",
        specs: bundle::COUNT,
        synopsis: "Count bundles",
    },
    Command {
        name: "agent list",
        specs: agent::LIST,
        synopsis: "Lists attested agents and their SPIFFE IDs",
    },
    Command {
        name: "agent show",
        specs: agent::BY_ID,
        synopsis: "Shows the details of an attested agent given its SPIFFE ID",
    },
    Command {
        name: "agent evict",
        specs: agent::BY_ID,
        synopsis: "Evicts an attested agent given its SPIFFE ID",
    },
    Command {
        name: "agent ban",
        specs: agent::BY_ID,
        synopsis: "Ban an attested agent given its SPIFFE ID",
    },
    Command {
        name: "agent count",
        specs: agent::COUNT,
        synopsis: "Count attested agents",
    },
    Command {
        name: "token generate",
        specs: token::GENERATE,
        synopsis: "Generates a join token",
    },
    Command {
        name: "jwt mint",
        specs: mint::JWT,
        synopsis: "Mints a JWT-SVID",
    },
    Command {
        name: "x509 mint",
        specs: mint::X509,
        synopsis: "Mints an X509-SVID",
    },
    Command {
        name: "federation create",
        specs: federation::CONFIG,
        synopsis: "Creates a dynamic federation relationship with a foreign trust domain",
    },
    Command {
        name: "federation list",
        specs: federation::LIST,
        synopsis: "Lists all dynamic federation relationships",
    },
    Command {
        name: "federation show",
        specs: federation::SHOW,
        synopsis: "Shows a dynamic federation relationship",
    },
    Command {
        name: "federation update",
        specs: federation::CONFIG,
        synopsis: "Updates a dynamic federation relationship with a foreign trust domain",
    },
    Command {
        name: "federation delete",
        specs: federation::DELETE,
        synopsis: "Deletes a dynamic federation relationship",
    },
    Command {
        name: "healthcheck",
        specs: health::SPECS,
        synopsis: "Determines server health status",
    },
];

pub(crate) async fn dispatch(name: &str, cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    match name {
        "entry create" => entry::create(cmd).await,
        "entry show" => entry::show(cmd).await,
        "entry update" => entry::update(cmd).await,
        "entry delete" => entry::delete(cmd).await,
        "entry count" => entry::count(cmd).await,
        "bundle show" => bundle::show(cmd).await,
        "bundle list" => bundle::list(cmd).await,
        "bundle set" => bundle::set(cmd).await,
        "bundle delete" => bundle::delete(cmd).await,
        "bundle count" => bundle::count(cmd).await,
        "agent list" => agent::list(cmd).await,
        "agent show" => agent::show(cmd).await,
        "agent evict" => agent::evict(cmd).await,
        "agent ban" => agent::ban(cmd).await,
        "agent count" => agent::count(cmd).await,
        "token generate" => token::generate(cmd).await,
        "jwt mint" => mint::jwt(cmd).await,
        "x509 mint" => mint::x509(cmd).await,
        "federation create" => federation::create(cmd).await,
        "federation list" => federation::list(cmd).await,
        "federation show" => federation::show(cmd).await,
        "federation update" => federation::update(cmd).await,
        "federation delete" => federation::delete(cmd).await,
        "healthcheck" => health::check(cmd).await,
        other => Err(CliError::invalid(format!("unknown command {other:?}"))),
    }
}
