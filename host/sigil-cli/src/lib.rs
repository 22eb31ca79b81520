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
mod error;
mod flags;
mod json;
mod output;
mod server;

use std::io::Write;
use std::path::{Path, PathBuf};

use tonic::transport::Channel;

pub use error::CliError;
pub use flags::FlagError;
pub use output::OutputFormat;
pub use server::DEFAULT_SOCKET_PATH;

use flags::{Flags, Spec};
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
    commands: server::COMMANDS,
    common: server::COMMON,
    default_socket: DEFAULT_SOCKET_PATH,
};

const AGENT: Tool = Tool {
    binary: Binary::Agent,
    commands: agent::COMMANDS,
    common: agent::COMMON,
    default_socket: agent::DEFAULT_SOCKET_PATH,
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
        Binary::Agent => agent::dispatch(command.name, &mut cmd).await,
        Binary::Server => server::dispatch(command.name, &mut cmd).await,
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
        server::channel(Path::new(&self.socket)).await
    }
}

/// A command name (`entry create`) and the flags it takes besides the common ones.
#[derive(Debug)]
pub(crate) struct Command {
    name: &'static str,
    specs: &'static [Spec],
    synopsis: &'static str,
}

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
