//! A local attacker against the Workload API socket, with real processes: a connection kept
//! after its connector changed identity. The agent must attest the process that connected,
//! with the credentials it connected with, or nobody.
//!
//! The attacker (uid 65534, which has an entry of its own) connects from a Python process and
//! hands the connected socket to this test over SCM_RIGHTS, so the test can keep calling on a
//! connection whose `SO_PEERCRED` names the attacker's process. Then the attacker's process
//! either execs a setuid-root program (same PID, same start time, euid 0) or exits so that a
//! root process can be given its PID (`/proc/sys/kernel/ns_last_pid`). Before the fix both
//! calls returned root's SVID and key.
//!
//! Needs root (to run as uid 65534, to make a setuid-root binary and to steer PID allocation);
//! CI runs as root, and the test fails, never skips, elsewhere.

#![expect(
    clippy::expect_used,
    reason = "test helpers outside #[test] functions: a failed setup step must fail the test"
)]

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use sigil_proto::workload::X509svidRequest;
use sigil_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use sigil_testkit::process::cpu_share;
use tonic::transport::{Channel, Endpoint, Uri};

mod common;

use common::{Agent, JoinTokenSetup, agent_conf_extra};

const NOBODY: u32 = 65534;
const ROOT_ID: &str = "spiffe://example.org/workload";
const NOBODY_ID: &str = "spiffe://example.org/nobody";

/// Connects to `socket` as uid 65534, sends the connected socket back over its stdin (a
/// socketpair), waits for one byte, then execs `argv[2:]` (or exits when there is none).
const CONNECTOR: &str = r#"
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
control = socket.socket(fileno=0)
socket.send_fds(control, [b"c"], [s.fileno()])
control.recv(1)
if len(sys.argv) > 2:
    os.execv(sys.argv[2], sys.argv[2:])
"#;

/// An agent serving root's and nobody's entries, reachable by uid 65534.
struct Setup {
    dir: tempfile::TempDir,
    socket: std::path::PathBuf,
    _setup: JoinTokenSetup,
    agent: Agent,
}

/// How the agent is started.
#[derive(Default)]
struct Options {
    /// Lines added to the `agent` block.
    extra: &'static str,
    /// The agent's descriptor limit.
    nofile: Option<u64>,
}

impl Setup {
    async fn start() -> Setup {
        Self::start_with(Options::default()).await
    }

    async fn start_with(options: Options) -> Setup {
        assert_eq!(
            std::fs::metadata("/proc/self").expect("proc").uid(),
            0,
            "this test runs processes as uid 65534 and makes a setuid binary: it needs root (CI runs as root)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let setup = JoinTokenSetup::start(dir.path()).await;
        setup
            .server
            .cli_out(&[
                "entry",
                "create",
                "-spiffeID",
                NOBODY_ID,
                "-parentID",
                &setup.agent_id,
                "-selector",
                &format!("unix:uid:{NOBODY}"),
            ])
            .await;
        let conf = dir.path().join("agent.conf");
        let bundle = format!(
            "trust_bundle_path = \"{}\"",
            dir.path().join("bootstrap.pem").display()
        );
        std::fs::write(
            &conf,
            agent_conf_extra(
                dir.path(),
                setup.server.address.port(),
                &bundle,
                options.extra,
            ),
        )
        .expect("write config");
        let agent = match options.nofile {
            Some(nofile) => {
                Agent::start_with_nofile(&conf, Some(&setup.token), dir.path(), "hostile", nofile)
            }
            None => Agent::start(&conf, Some(&setup.token), dir.path(), "hostile"),
        };
        let socket = dir.path().join("agent.sock");
        let setup = Setup {
            dir,
            socket,
            _setup: setup,
            agent,
        };
        // Root (this test) has an entry: wait until it is served.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if setup.socket.exists()
                && let Ok(stream) = tokio::net::UnixStream::connect(&setup.socket).await
                && let Ok(id) = fetch(&channel(stream.into_std().expect("std stream")).await).await
            {
                assert_eq!(id, ROOT_ID);
                break;
            }
            assert!(Instant::now() < deadline, "no SVID: {}", setup.agent.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        setup
    }

    /// Starts the connector as uid 65534; returns it with the connection it opened.
    fn connect_as_nobody(&self, exec: &[&str]) -> (Child, StdUnixStream, StdUnixStream) {
        let (ours, theirs) = StdUnixStream::pair().expect("socketpair");
        let child = Command::new("python3")
            .arg("-c")
            .arg(CONNECTOR)
            .arg(&self.socket)
            .args(exec)
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .uid(NOBODY)
            .gid(NOBODY)
            .spawn()
            .expect("run python3 as uid 65534");
        let connection = receive_fd(&ours);
        (child, ours, connection)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_that_execs_a_setuid_program_gets_no_identity_on_its_kept_connection() {
    let setup = Setup::start().await;
    // A setuid-root program that stays alive: a copy of sleep.
    let suid = setup.dir.path().join("suid-sleep");
    std::fs::copy("/bin/sleep", &suid).expect("copy sleep");
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).expect("chmod");

    let suid_arg = suid.to_str().expect("utf-8 path");
    let (mut child, mut control, connection) = setup.connect_as_nobody(&[suid_arg, "60"]);
    let pid = child.id();
    let connection = channel(connection).await;
    // Attested as itself first: nobody's SVID, on this very connection.
    assert_eq!(
        fetch(&connection).await.expect("nobody attests as itself"),
        NOBODY_ID
    );

    control.write_all(b"g").expect("tell the connector to exec");
    wait_for_euid(pid, 0);
    let after = fetch(&connection).await;
    let _ = child.kill();
    let _ = child.wait();
    let refusal =
        after.expect_err("a process of uid 65534 that exec'd a setuid program got an SVID");
    assert_eq!(refusal.code(), tonic::Code::PermissionDenied, "{refusal:?}");
    let log = setup.agent.log();
    assert!(
        log.contains("not the uid 65534/gid 65534 it connected with"),
        "the agent's log says why: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_connector_exited_gets_no_identity_when_its_pid_is_reused() {
    let setup = Setup::start().await;
    let (mut child, mut control, connection) = setup.connect_as_nobody(&[]);
    let pid = child.id();
    control.write_all(b"g").expect("tell the connector to exit");
    assert!(child.wait().expect("wait").success());
    // The connector is gone and reaped; give its PID to a root process.
    let mut reused = reuse_pid(pid);
    assert_eq!(euid_of(reused.id()), Some(0));
    let after = fetch(&channel(connection).await).await;
    let _ = reused.kill();
    let _ = reused.wait();
    let refusal =
        after.expect_err("a kept connection got the SVID of the process that reused its PID");
    assert_eq!(refusal.code(), tonic::Code::PermissionDenied, "{refusal:?}");
    let log = setup.agent.log();
    assert!(
        log.contains("has exited"),
        "the agent's log says why: {log}"
    );
    drop(control);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_descriptor_limit_the_agent_backs_off_and_serves_again_when_descriptors_free() {
    // 64 descriptors: the agent's own (sockets, files, its server connection) take a few
    // dozen, so the flood below reaches the limit long before the connection bounds.
    let setup = Setup::start_with(Options {
        nofile: Some(64),
        ..Options::default()
    })
    .await;
    let mut flood = Vec::new();
    for _ in 0..200 {
        flood.push(StdUnixStream::connect(&setup.socket).expect("connect (the backlog takes it)"));
    }
    // Let the agent accept what it can and hit EMFILE with connections still queued.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu = cpu_share(setup.agent.pid(), Duration::from_secs(3));
    assert!(
        cpu < 0.10,
        "the agent used {:.0} % of a core while out of descriptors: {}",
        cpu * 100.0,
        setup.agent.log()
    );
    assert!(
        setup.agent.log().contains("out of file descriptors"),
        "the agent says why it stopped accepting: {}",
        setup.agent.log()
    );
    drop(flood);
    // Descriptors free up as the agent sees the flood's connections close: it serves again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(stream) = StdUnixStream::connect(&setup.socket)
            && let Ok(id) = fetch(&channel(stream).await).await
        {
            assert_eq!(id, ROOT_ID);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not serve again: {}",
            setup.agent.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_open_streams_are_not() {
    let setup = Setup::start_with(Options {
        extra: "workload_api_idle_timeout = \"2s\"",
        ..Options::default()
    })
    .await;
    // A watch stream stays open past the idle timeout: it is an open call.
    let watcher = channel(StdUnixStream::connect(&setup.socket).expect("connect")).await;
    let mut request = tonic::Request::new(X509svidRequest {});
    request
        .metadata_mut()
        .insert("workload.spiffe.io", "true".parse().expect("header"));
    let mut watch = SpiffeWorkloadApiClient::new(watcher)
        .fetch_x509svid(request)
        .await
        .expect("watch")
        .into_inner();
    assert!(watch.message().await.expect("first answer").is_some());
    // A connection that never sends a request.
    let mut idle = StdUnixStream::connect(&setup.socket).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let opened = Instant::now();
    let mut sink = Vec::new();
    // The agent speaks first (its HTTP/2 SETTINGS), then closes: end of stream.
    let read = idle.read_to_end(&mut sink);
    assert!(read.is_ok(), "the idle connection was not closed: {read:?}");
    let waited = opened.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(8),
        "closed after {waited:?}, idle timeout 2 s"
    );
    // The watch is still there: no error has ended it.
    let still_open = tokio::time::timeout(Duration::from_millis(500), watch.message()).await;
    assert!(
        still_open.is_err(),
        "the watch stream ended: {still_open:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_uid_cannot_take_every_connection() {
    let setup = Setup::start_with(Options {
        extra: "workload_api_max_connections_per_uid = 4",
        ..Options::default()
    })
    .await;
    // Hold four accepted connections. An accepted one hears the agent's HTTP/2 SETTINGS at
    // once; a refused one is closed. The set-up's own connection may still be closing, so a
    // refusal is retried.
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while held.len() < 4 {
        assert!(Instant::now() < deadline, "could not hold four connections");
        let stream = StdUnixStream::connect(&setup.socket).expect("connect");
        if accepted(&stream) {
            held.push(stream);
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Root's fifth is closed at once, without a word.
    let fifth = StdUnixStream::connect(&setup.socket).expect("connect");
    assert!(
        !accepted(&fifth),
        "a fifth connection of uid 0 was accepted: {}",
        setup.agent.log()
    );
    // Another uid can still connect and be served.
    let (mut child, _control, connection) = setup.connect_as_nobody(&[]);
    assert_eq!(
        fetch(&channel(connection).await)
            .await
            .expect("nobody is served"),
        NOBODY_ID
    );
    let _ = child.kill();
    let _ = child.wait();
    drop(held);
}

/// Whether the agent accepted `stream`: its HTTP/2 server preface arrives (a refused
/// connection is closed with nothing sent).
fn accepted(mut stream: &StdUnixStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut first = [0u8; 9];
    match stream.read(&mut first) {
        Ok(0) => false,
        Ok(_) => true,
        Err(error) => panic!("neither served nor closed within 5 s: {error}"),
    }
}

/// A gRPC channel over `stream`, an already connected socket (one HTTP/2 connection; no
/// reconnecting).
async fn channel(stream: StdUnixStream) -> Channel {
    stream.set_nonblocking(true).expect("nonblocking");
    let mut stream = Some(tokio::net::UnixStream::from_std(stream).expect("tokio stream"));
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let stream = stream.take();
            async move {
                stream
                    .map(TokioIo::new)
                    .ok_or_else(|| std::io::Error::other("the connection was used already"))
            }
        }))
        .await
        .expect("an HTTP/2 connection over the socket")
}

/// One FetchX509SVID call on `channel`; the SPIFFE ID of the first SVID.
async fn fetch(channel: &Channel) -> Result<String, tonic::Status> {
    let mut request = tonic::Request::new(X509svidRequest {});
    request
        .metadata_mut()
        .insert("workload.spiffe.io", "true".parse().expect("header"));
    let mut answers = SpiffeWorkloadApiClient::new(channel.clone())
        .fetch_x509svid(request)
        .await?
        .into_inner();
    let first = answers
        .message()
        .await?
        .ok_or_else(|| tonic::Status::unknown("the stream ended without an answer"))?;
    let svid = first
        .svids
        .first()
        .ok_or_else(|| tonic::Status::unknown("an answer without SVIDs"))?;
    Ok(svid.spiffe_id.clone())
}

/// Receives one file descriptor sent with SCM_RIGHTS on `control`.
fn receive_fd(control: &StdUnixStream) -> StdUnixStream {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    recvmsg(
        control,
        &mut [std::io::IoSliceMut::new(&mut byte)],
        &mut ancillary,
        RecvFlags::empty(),
    )
    .expect("recvmsg");
    for message in ancillary.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = message
            && let Some(fd) = fds.next()
        {
            return StdUnixStream::from(fd);
        }
    }
    let mut rest = String::new();
    let _ = (&*control).read_to_string(&mut rest);
    panic!("the connector sent no socket");
}

fn euid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|id| id.parse().ok())
}

fn wait_for_euid(pid: u32, euid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while euid_of(pid) != Some(euid) {
        assert!(
            Instant::now() < deadline,
            "process {pid} never ran as euid {euid} (is the test directory on a nosuid mount?)"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a root process with PID `pid`: sets the kernel's last-PID counter just below it and
/// forks, retrying while other processes on the machine take the PID first.
fn reuse_pid(pid: u32) -> Child {
    for _ in 0..200 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
            .expect("write /proc/sys/kernel/ns_last_pid (needs root in the initial PID namespace)");
        let mut child = Command::new("sleep").arg("60").spawn().expect("run sleep");
        if child.id() == pid {
            return child;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("could not give PID {pid} to a new process");
}
