//! Logging as SPIRE's `log_level`, `log_format` and `log_file` keys say.

use std::io::IsTerminal;
use std::path::Path;

use sigil_config::{LogConfig, LogFormat, LogLevel};
use tracing_subscriber::fmt::writer::BoxMakeWriter;

/// Installs the global logger: to standard error, or appended to `log_file` when set;
/// colours only on a terminal. `SIGIL_LOG` (an `EnvFilter` directive) overrides the level.
///
/// # Errors
///
/// `log_file` cannot be opened; the error names it.
pub fn init_logging(config: &LogConfig) -> std::io::Result<()> {
    let level = match config.level {
        LogLevel::Debug => "debug",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let (writer, ansi) = match &config.file {
        Some(path) => (
            BoxMakeWriter::new(std::sync::Mutex::new(open(path)?)),
            false,
        ),
        None => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        ),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match config.format {
        LogFormat::Json => builder.json().init(),
        _ => builder.init(),
    }
    Ok(())
}

/// `log_file`, opened for appending (created 0600 when missing: logs name identities).
fn open(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_file_that_cannot_be_opened_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing-dir/agent.log");
        let error = open(&path).expect_err("no such directory");
        assert!(
            error.to_string().contains("missing-dir/agent.log"),
            "{error}"
        );
    }

    #[test]
    fn a_new_log_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("server.log");
        open(&path).expect("open");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
