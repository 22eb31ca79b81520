//! `sigil-server`: `run` and `validate` for the daemon; every other command is SPIRE's
//! admin CLI (`entry`, `bundle`, `agent`, `token`, `jwt`, `x509`, `federation`,
//! `healthcheck`), a client of the admin socket.

use std::path::PathBuf;
use std::process::ExitCode;

use sigil_config::{ConfigError, ServerConfig};

const USAGE: &str = "usage: sigil-server run -config <file> [-expandEnv]
       sigil-server validate -config <file> [-expandEnv]
       sigil-server <entry|bundle|agent|token|jwt|x509|federation|healthcheck> ...";

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
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(_) => {
            let code = runtime.block_on(sigil_cli::run(
                &args,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            ));
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}

/// `-config <file>` (or `--config`, `-config=<file>`) and `-expandEnv`.
fn config_flags(args: &[String]) -> Result<(PathBuf, bool), String> {
    let mut config = None;
    let mut expand_env = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let name = arg.trim_start_matches('-');
        match name.split_once('=') {
            Some(("config", value)) => config = Some(PathBuf::from(value)),
            Some(("expandEnv", value)) => expand_env = value == "true",
            _ => match name {
                "config" => {
                    let value = iter
                        .next()
                        .ok_or_else(|| "flag needs an argument: -config".to_owned())?;
                    config = Some(PathBuf::from(value));
                }
                "expandEnv" => expand_env = true,
                other => return Err(format!("flag provided but not defined: -{other}")),
            },
        }
    }
    let config = config.ok_or_else(|| "-config is required".to_owned())?;
    Ok((config, expand_env))
}

fn load(args: &[String]) -> Result<ServerConfig, ExitCode> {
    let (path, expand_env) = config_flags(args).map_err(|message| {
        eprintln!("error: {message}\n{USAGE}");
        config_exit()
    })?;
    ServerConfig::from_file(&path, expand_env).map_err(|error| {
        eprintln!("error: {error}");
        config_exit()
    })
}

/// Exit code of a configuration or flag error: 64, `EX_USAGE`.
fn config_exit() -> ExitCode {
    ExitCode::from(u8::try_from(ConfigError::EXIT_CODE).unwrap_or(64))
}

fn validate(args: &[String]) -> ExitCode {
    match load(args) {
        Ok(_) => {
            println!("Configuration is valid.");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

async fn run(args: &[String]) -> ExitCode {
    let config = match load(args) {
        Ok(config) => config,
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
    let server = match sigil_server::Server::start(config).await {
        Ok(server) => server,
        Err(error) => {
            tracing::error!(error = %error, "cannot start");
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        sigil_daemon::shutdown_signal().await;
        let _ = stop.send(true);
    });
    let wait = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let served = tokio::try_join!(
        sigil_server::serve(server.clone(), wait(stopped.clone())),
        sigil_server::serve_agents(server.clone(), wait(stopped.clone())),
        sigil_server::serve_health(server, wait(stopped)),
    );
    match served {
        Ok(_) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(error = %error, "stopped");
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
