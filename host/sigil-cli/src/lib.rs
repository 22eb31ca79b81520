//! sigil's command-line clients. [`run`]: SPIRE's `spire-server` subcommands (`entry`,
//! `bundle`, `agent`, `token`, `jwt`, `x509`, `federation`, `healthcheck`) speaking SPIRE's
//! server API over the admin Unix socket. [`run_agent`]: SPIRE's `spire-agent` workload
//! commands (`api fetch x509|jwt`, `api validate jwt`, `api watch`, `healthcheck`) speaking
//! the SPIFFE Workload API over the agent's socket.
//!
//! Both take the arguments after the binary name and return the exit code, so the binaries
//! can expose them as `sigil-server entry create -spiffeID … -selector …` and
//! `sigil-agent api fetch x509`. Flags are
//! SPIRE's (Go `flag` syntax: `-flag value`, `--flag=value`); output is SPIRE's text, or
//! with `-output json` the response message in protobuf's JSON mapping. Errors print as `Error: <message>` on
//! stderr and exit 1; a flag error prints the flag package's message and the usage.

mod agent;
mod args;
mod bundle;
mod connect;
mod entry;
mod entry_data;
mod entry_flags;
mod error;
mod federation;
mod flags;
mod health;
mod json;
mod mint;
mod output;
mod token;
mod workload;

use std::io::Write;
use std::path::{Path, PathBuf};

use tonic::transport::Channel;

pub use connect::DEFAULT_SOCKET_PATH;
pub use error::CliError;
pub use flags::FlagError;
pub use output::OutputFormat;

use flags::{Flags, Kind, Spec};
use output::Out;

/// Runs one `spire-server` command. `args` are the arguments after the binary name, e.g.
/// `["entry", "show", "-spiffeID", "spiffe://example.org/web"]`. Returns the exit code:
/// 0 on success, 1 on a bad command line, a failed RPC or a failed batch item.
pub async fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    run_in(&SERVER, args, out, err).await
}

/// Runs one `spire-agent` command (`api fetch x509`, `api fetch jwt`, `api validate jwt`,
/// `api watch`, `healthcheck`) against the agent's Workload API socket. Exit codes as
/// [`run`].
pub async fn run_agent(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    run_in(&AGENT, args, out, err).await
}

/// One of the two command-line tools: its commands, the flags they all take, and the socket
/// they talk to by default.
#[derive(Debug)]
struct Tool {
    binary: Binary,
    commands: &'static [Command],
    common: &'static [Spec],
    default_socket: &'static str,
}

/// Which binary a tool belongs to, and so which commands it dispatches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binary {
    Server,
    Agent,
}

const SERVER: Tool = Tool {
    binary: Binary::Server,
    commands: COMMANDS,
    common: COMMON,
    default_socket: DEFAULT_SOCKET_PATH,
};

const AGENT: Tool = Tool {
    binary: Binary::Agent,
    commands: workload::COMMANDS,
    common: workload::COMMON,
    default_socket: workload::DEFAULT_SOCKET_PATH,
};

async fn run_in(tool: &Tool, args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let Some((command, rest)) = find_command(tool.commands, args) else {
        let _ = err.write_all(commands_help(tool).as_bytes());
        return 1;
    };
    let specs: Vec<Spec> = command.specs.iter().chain(tool.common).copied().collect();
    let parsed = flags::parse(rest, &specs).and_then(|flags| {
        let format = OutputFormat::parse(flags.str_or("output", "pretty")).map_err(|e| {
            FlagError::InvalidValue {
                name: "output".into(),
                value: flags.str_or("output", "").to_owned(),
                reason: e.to_string(),
            }
        })?;
        Ok((flags, format))
    });
    let (flags, format) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            let text = format!("{e}\n{}", flags::usage(command.name, &specs));
            let _ = err.write_all(text.as_bytes());
            return 1;
        }
    };
    let socket = PathBuf::from(flags.str_or("socketPath", tool.default_socket));
    let mut cmd = Cmd {
        flags,
        socket,
        out: Out { out, err, format },
    };
    let result = match tool.binary {
        Binary::Agent => workload::dispatch(command.name, &mut cmd).await,
        Binary::Server => dispatch(command.name, &mut cmd).await,
    };
    match result {
        Ok(()) => 0,
        Err(e @ (CliError::Unhealthy(_) | CliError::AgentUnhealthy(_))) => {
            cmd.out.eprint(&format!("{e}\n"));
            1
        }
        Err(e) => {
            cmd.out.eprint(&format!("Error: {e}\n"));
            1
        }
    }
}

/// One invocation: its flags, the socket and the output streams.
pub(crate) struct Cmd<'a> {
    pub flags: Flags,
    pub socket: PathBuf,
    pub out: Out<'a>,
}

impl std::fmt::Debug for Cmd<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cmd").field("socket", &self.socket).finish()
    }
}

impl Cmd<'_> {
    /// Connects to the admin API socket.
    pub(crate) async fn channel(&self) -> Result<Channel, CliError> {
        connect::channel(Path::new(&self.socket)).await
    }
}

/// A command name (`entry create`) and the flags it takes besides the common ones.
#[derive(Debug)]
pub(crate) struct Command {
    name: &'static str,
    specs: &'static [Spec],
    synopsis: &'static str,
}

/// Flags every `spire-server` command takes.
const COMMON: &[Spec] = &[
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

const COMMANDS: &[Command] = &[
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

/// Matches up to three leading words (`api fetch x509`) against the command table, longest
/// first.
fn find_command<'a>(
    commands: &'static [Command],
    args: &'a [String],
) -> Option<(&'static Command, &'a [String])> {
    let words: Vec<&str> = args
        .iter()
        .take(3)
        .take_while(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    (1..=words.len()).rev().find_map(|n| {
        let name = words[..n].join(" ");
        commands
            .iter()
            .find(|c| c.name == name)
            .map(|command| (command, &args[n..]))
    })
}

fn commands_help(tool: &Tool) -> String {
    let binary = match tool.binary {
        Binary::Server => "sigil-server",
        Binary::Agent => "sigil-agent",
    };
    let mut text =
        format!("Usage: {binary} <command> [<subcommand>] [flags]\n\nAvailable commands are:\n");
    for command in tool.commands {
        text.push_str(&format!("    {:<20} {}\n", command.name, command.synopsis));
    }
    text
}

async fn dispatch(name: &str, cmd: &mut Cmd<'_>) -> Result<(), CliError> {
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
