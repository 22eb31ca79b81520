//! `sigil-agent`: `run` and `validate` for the agent daemon; every other command is SPIRE's
//! `spire-agent` workload CLI (`api fetch x509`, `api fetch jwt`, `api validate jwt`,
//! `api watch`, `healthcheck`), a client of the workload socket.

use std::path::PathBuf;
use std::process::ExitCode;

use sigil_agent::{AgentError, RunOptions};
use sigil_config::{AgentConfig, ConfigError};

/// The hidden command `run` starts as a child process to compile the plugins.
const WARM_PLUGIN_CACHE: &str = "__warm-plugin-cache";

const USAGE: &str = "usage: sigil-agent run -config <file> [-joinToken <token>] [-expandEnv]
       sigil-agent validate -config <file> [-expandEnv]
       sigil-agent <api|healthcheck> ...";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match args.first().map(String::as_str) {
        Some("run") => runtime.block_on(run(&args[1..])),
        Some("validate") => validate(&args[1..]),
        // Internal: run by `run` as a child process (see `sigil_agent::warm_plugin_cache`).
        Some(WARM_PLUGIN_CACHE) => warm_plugin_cache(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(_) => {
            let code = runtime.block_on(sigil_cli::run_agent(
                &args,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            ));
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}

/// The parsed flags of `run` and `validate`.
struct Flags {
    config: PathBuf,
    expand_env: bool,
    join_token: Option<String>,
}

/// `-config <file>` (or `--config`, `-config=<file>`), `-expandEnv` and, for `run`,
/// `-joinToken <token>`.
fn flags(args: &[String], allow_token: bool) -> Result<Flags, String> {
    let mut config = None;
    let mut expand_env = false;
    let mut join_token = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let name = arg.trim_start_matches('-');
        match name.split_once('=') {
            Some(("config", value)) => config = Some(PathBuf::from(value)),
            Some(("expandEnv", value)) => expand_env = value == "true",
            Some(("joinToken", value)) if allow_token => join_token = Some(value.to_owned()),
            _ => match name {
                "config" => {
                    let value = iter
                        .next()
                        .ok_or_else(|| "flag needs an argument: -config".to_owned())?;
                    config = Some(PathBuf::from(value));
                }
                "joinToken" if allow_token => {
                    let value = iter
                        .next()
                        .ok_or_else(|| "flag needs an argument: -joinToken".to_owned())?;
                    join_token = Some(value.clone());
                }
                "expandEnv" => expand_env = true,
                other => return Err(format!("flag provided but not defined: -{other}")),
            },
        }
    }
    let config = config.ok_or_else(|| "-config is required".to_owned())?;
    Ok(Flags {
        config,
        expand_env,
        join_token,
    })
}

fn load(args: &[String], allow_token: bool) -> Result<(AgentConfig, Option<String>), ExitCode> {
    let flags = flags(args, allow_token).map_err(|message| {
        eprintln!("error: {message}\n{USAGE}");
        config_exit()
    })?;
    let config = AgentConfig::from_file(&flags.config, flags.expand_env).map_err(|error| {
        eprintln!("error: {error}");
        config_exit()
    })?;
    Ok((config, flags.join_token))
}

/// Exit code of a configuration or flag error: 64, `EX_USAGE`.
fn config_exit() -> ExitCode {
    ExitCode::from(u8::try_from(ConfigError::EXIT_CODE).unwrap_or(64))
}

fn validate(args: &[String]) -> ExitCode {
    match load(args, false) {
        Ok(_) => {
            println!("Configuration is valid.");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// `__warm-plugin-cache -config <file> [-expandEnv]`: compiles the plugins into the artifact
/// cache and exits.
fn warm_plugin_cache(args: &[String]) -> ExitCode {
    let config = match load(args, false) {
        Ok((config, _)) => config,
        Err(code) => return code,
    };
    match sigil_agent::warm_plugin_cache(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Compiles the plugins in a child process, so the compiler's memory never belongs to the
/// daemon. A failure is only logged: the daemon then compiles them itself (and reports any
/// real plugin error as it starts).
async fn warm_in_child(args: &[String]) {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    // The child gets `-config` and `-expandEnv`, never the join token.
    let mut child_args = vec![WARM_PLUGIN_CACHE.to_owned()];
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let name = arg.trim_start_matches('-');
        if name == "joinToken" {
            iter.next();
        } else if !name.starts_with("joinToken=") {
            child_args.push(arg.clone());
        }
    }
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args(&child_args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .status()
    })
    .await;
    match status {
        Ok(Ok(status)) if status.success() => {
            tracing::debug!(elapsed = ?started.elapsed(), "plugins compiled in a child process");
        }
        other => tracing::warn!(
            ?other,
            "compiling the plugins in a child process failed; the agent compiles them itself"
        ),
    }
}

async fn run(args: &[String]) -> ExitCode {
    let (config, join_token) = match load(args, true) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    if let Err(error) = sigil_daemon::init_logging(&config.log) {
        eprintln!("error: log_file: {error}");
        return config_exit();
    }
    if let Some(telemetry) = &config.telemetry {
        tracing::warn!(
            line = telemetry.line,
            "the telemetry block is not supported yet and is ignored"
        );
    }
    warm_in_child(args).await;
    let options = RunOptions::default().with_join_token(join_token);
    match sigil_agent::run(config, options, sigil_daemon::shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(error = %error, "stopped");
            eprintln!("error: {error}");
            match error {
                AgentError::Unsupported { .. } => config_exit(),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
