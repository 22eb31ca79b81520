//! `sigil-controller --config <file> [--expand-env]`: the registration controller on its
//! own, reading spire-controller-manager's configuration file (and flags) and talking to
//! the server's admin socket.
//! Kubernetes credentials come from the pod (in cluster) or `KUBECONFIG`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use sigil_k8s::{Controller, ControllerConfig, EntryApi, PluginTemplates};

fn usage() -> ExitCode {
    eprintln!("usage: sigil-controller --config <ControllerManagerConfig file> [--expand-env]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // Go's flag package accepts both `-config` and `--config`, with `=` or a space.
    let mut args = std::env::args().skip(1);
    let mut config_path: Option<PathBuf> = None;
    let mut expand_env = false;
    while let Some(arg) = args.next() {
        let flag = arg.trim_start_matches('-');
        match flag.split_once('=') {
            Some(("config", value)) => config_path = Some(value.into()),
            None if flag == "config" => match args.next() {
                Some(value) => config_path = Some(value.into()),
                None => return usage(),
            },
            // A Go boolean flag: bare, or `=true`/`=false`.
            None if flag == "expand-env" => expand_env = true,
            Some(("expand-env", value)) => match value {
                "true" | "1" | "t" | "T" | "TRUE" | "True" => expand_env = true,
                "false" | "0" | "f" | "F" | "FALSE" | "False" => expand_env = false,
                _ => {
                    eprintln!("invalid boolean value {value:?} for -expand-env");
                    return usage();
                }
            },
            _ => {
                eprintln!("unknown argument {arg:?}");
                return usage();
            }
        }
    }
    let Some(config_path) = config_path else {
        return usage();
    };
    let config = match ControllerConfig::load(&config_path, expand_env) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("unable to load the config file: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let client = match sigil_k8s::kubeclient::infer().await {
            Ok(client) => client,
            Err(e) => {
                eprintln!("Kubernetes client: {e}");
                return ExitCode::FAILURE;
            }
        };
        let entries = match EntryApi::connect(&config.spire_server_socket_path) {
            Ok(entries) => entries,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let templates = match PluginTemplates::new() {
            Ok(t) => Arc::new(t),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let controller = Controller::new(config, client, entries, templates);
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        match controller.run(shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        }
    })
}
