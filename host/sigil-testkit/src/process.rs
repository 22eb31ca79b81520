//! The daemons as real processes: [`Daemon`] is any `sigil-server` or `sigil-agent` process
//! with its standard error in a log file, killed when dropped; [`ServerProcess`] is a
//! `sigil-server run` that answers its own `healthcheck`, driven with its own CLI.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::WAIT;
use crate::ports::logged_address;

/// How long a server process may take to become healthy (on PostgreSQL, on a loaded
/// machine, it migrates its schema first).
const SERVER_START: Duration = Duration::from_secs(60);

/// The binary `name` of this workspace, beside the running test's own executable
/// (`target/<profile>/deps/<test>` → `target/<profile>/<name>`). `cargo test` builds a
/// package's binaries before its tests; another package's need `cargo test --workspace` or
/// `cargo build -p <package>`, which the panic message says.
pub fn binary(name: &str) -> PathBuf {
    let test = std::env::current_exe().expect("the test executable's path");
    let profile = test
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let path = profile.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p {name}` or run `cargo test --workspace`",
        path.display()
    );
    path
}

/// `binary` run under `prlimit` with at most `nofile` open descriptors (prlimit execs it:
/// the child is the daemon itself).
pub fn with_nofile(binary: &Path, nofile: u64) -> Command {
    let mut command = Command::new("prlimit");
    command
        .arg(format!("--nofile={nofile}:{nofile}"))
        .arg(binary);
    command
}

/// A daemon process, its standard error appended to a log file; killed when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    log: PathBuf,
    /// Where this process's part of the log starts (a restarted daemon appends to the same
    /// file).
    log_start: usize,
}

impl Daemon {
    /// Runs `command` (a daemon binary and anything before it) as `… run -config config
    /// extra…`, standard output discarded, standard error appended to `log`.
    pub fn run(mut command: Command, config: &Path, extra: &[&str], log: &Path) -> Daemon {
        let log_start = std::fs::metadata(log).map_or(0, |m| m.len());
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open the log {}: {e}", log.display()));
        command.args(["run", "-config"]).arg(config).args(extra);
        let child = command
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        Daemon {
            child,
            log: log.to_owned(),
            log_start: usize::try_from(log_start).expect("log size"),
        }
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What this process has logged so far.
    pub fn log(&self) -> String {
        let all = std::fs::read(&self.log).unwrap_or_default();
        String::from_utf8_lossy(all.get(self.log_start..).unwrap_or_default()).into_owned()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `limit` for the process to exit on its own; its exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the daemon") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not exit: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Asks the process to stop (SIGTERM) and waits up to [`WAIT`] for it; its exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {} failed", self.child.id());
        self.wait_exit(WAIT)
    }

    /// SIGKILL: no clean shutdown. Does nothing when the process has exited.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to [`WAIT`] until the process logs a line with `message` and an
    /// `address=IP:PORT` field; that address. The daemon must log at INFO or DEBUG.
    pub fn logged_address(&mut self, message: &str) -> SocketAddr {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(address) = logged_address(&self.log(), message) {
                return address;
            }
            assert!(
                self.running() && Instant::now() < deadline,
                "no `{message} address=…` line (log_level must be INFO or DEBUG): {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `sigil-server run` from a config file, healthy (its `healthcheck` passes) once started.
#[derive(Debug)]
pub struct ServerProcess {
    daemon: Daemon,
    binary: PathBuf,
    socket: PathBuf,
}

impl ServerProcess {
    /// Starts the workspace's `sigil-server` with `config`, whose admin socket is `socket`;
    /// its log goes to `log`.
    pub fn start(config: &Path, socket: &Path, log: &Path) -> ServerProcess {
        let binary = binary("sigil-server");
        Self::start_command(Command::new(&binary), config, socket, log)
    }

    /// [`ServerProcess::start`] with at most `nofile` open descriptors.
    pub fn start_with_nofile(
        config: &Path,
        socket: &Path,
        log: &Path,
        nofile: u64,
    ) -> ServerProcess {
        let binary = binary("sigil-server");
        Self::start_command(with_nofile(&binary, nofile), config, socket, log)
    }

    fn start_command(command: Command, config: &Path, socket: &Path, log: &Path) -> ServerProcess {
        let mut server = ServerProcess {
            daemon: Daemon::run(command, config, &[], log),
            binary: binary("sigil-server"),
            socket: socket.to_owned(),
        };
        let deadline = Instant::now() + SERVER_START;
        while !server.cli(&["healthcheck"]).status.success() {
            assert!(
                Instant::now() < deadline && server.daemon.running(),
                "the server did not become healthy: {}",
                server.daemon.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// Runs a CLI command against this server's admin socket.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(&self.binary)
            .args(args)
            .arg("-socketPath")
            .arg(&self.socket)
            .output()
            .expect("run the server CLI")
    }

    /// Runs a CLI command that must succeed; its standard output.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The address the agent API is bound to (give the server `bind_port = "0"`).
    pub fn agent_api(&mut self) -> SocketAddr {
        self.daemon.logged_address("agent API listening")
    }

    /// The address the health-check listener is bound to (its `bind_port` may be 0).
    pub fn health(&mut self) -> SocketAddr {
        self.daemon.logged_address("health checks listening")
    }

    /// The admin socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The process.
    pub fn daemon(&mut self) -> &mut Daemon {
        &mut self.daemon
    }

    /// Stops with SIGTERM: the server must exit cleanly and remove its admin socket.
    pub fn stop(mut self) {
        let status = self.daemon.terminate();
        assert!(
            status.success(),
            "the server exits cleanly on SIGTERM: {status}: {}",
            self.daemon.log()
        );
        assert!(!self.socket.exists(), "the socket is removed on shutdown");
    }

    /// SIGKILL: no clean shutdown.
    pub fn kill(&mut self) {
        self.daemon.stop();
    }
}

/// The share of one core `pid` used over `window`, from its utime and stime in
/// `/proc/<pid>/stat`.
pub fn cpu_share(pid: u32, window: Duration) -> f64 {
    let ticks = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let after_name = &stat[stat.rfind(')').expect("stat name") + 1..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // utime and stime are fields 14 and 15; fields[0] is field 3.
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
    };
    let before = ticks();
    std::thread::sleep(window);
    let used = ticks() - before;
    // Clock ticks are 1/100 s on Linux (USER_HZ).
    used as f64 / 100.0 / window.as_secs_f64()
}
