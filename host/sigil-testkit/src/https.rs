//! A small HTTP/1.1 server on loopback, plain or over TLS, for the stand-ins of servers sigil
//! calls as a client (the Kubernetes API server, a kubelet, an allow-listed HTTP endpoint).
//!
//! One thread per connection and one request per connection (`Connection: close`): clients
//! reconnect, which is what the tests want to count. Every request is recorded. A response
//! may stream (chunked transfer encoding) until its sender goes away or its time is up, as a
//! Kubernetes watch does.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Largest request body read; a stand-in has no use for more.
const MAX_BODY: usize = 4 << 20;

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body, as sent.
    pub body: Vec<u8>,
}

impl Request {
    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The value of the query parameter `name`, undecoded.
    pub fn query(&self, name: &str) -> Option<&str> {
        let (_, query) = self.target.split_once('?')?;
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find_map(|(k, v)| (k == name).then_some(v))
    }

    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find_map(|(k, v)| (k == name).then_some(v.as_str()))
    }

    /// The bearer token of the `Authorization` header.
    pub fn bearer(&self) -> Option<&str> {
        self.header("authorization")?.strip_prefix("Bearer ")
    }
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body, sent as `application/json`.
    pub body: Vec<u8>,
    /// When set, the body is streamed instead: chunks as they arrive.
    pub stream: Option<Stream>,
}

impl Response {
    /// A JSON answer.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            body: body.into(),
            stream: None,
        }
    }

    /// A streamed answer: every message of `chunks` is sent as a chunk as soon as it
    /// arrives; the response ends when the sender is dropped or after `limit`.
    pub fn streaming(status: u16, chunks: Receiver<Vec<u8>>, limit: Duration) -> Self {
        Response {
            status,
            body: Vec::new(),
            stream: Some(Stream {
                chunks: Arc::new(Mutex::new(chunks)),
                limit,
            }),
        }
    }
}

/// The body of a streamed [`Response`].
#[derive(Debug, Clone)]
pub struct Stream {
    chunks: Arc<Mutex<Receiver<Vec<u8>>>>,
    limit: Duration,
}

impl PartialEq for Stream {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.chunks, &other.chunks)
    }
}

impl Eq for Stream {}

/// Answers requests.
pub type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// A running server. It serves until the test process exits.
#[derive(Debug, Clone)]
pub struct TestServer {
    port: u16,
    scheme: &'static str,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl TestServer {
    /// A plain-HTTP server answering through `handler`.
    pub fn plain(handler: Arc<Handler>) -> Self {
        Self::start(None, handler)
    }

    /// An HTTPS server with the certificate of `tls`, answering through `handler`.
    pub fn tls(tls: &TestTls, handler: Arc<Handler>) -> Self {
        Self::start(Some(tls.config.clone()), handler)
    }

    fn start(tls: Option<Arc<rustls::ServerConfig>>, handler: Arc<Handler>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("the bound address").port();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (tls, handler, log) = (tls.clone(), handler.clone(), log.clone());
                std::thread::spawn(move || match tls {
                    Some(config) => {
                        let Ok(connection) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        serve(
                            rustls::StreamOwned::new(connection, stream),
                            &*handler,
                            &log,
                        );
                    }
                    None => serve(stream, &*handler, &log),
                });
            }
        });
        TestServer {
            port,
            scheme,
            requests,
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `path` on this server (`https://127.0.0.1:<port><path>`).
    pub fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.port)
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Read one request, record it, answer it, close.
fn serve<S: Read + Write>(stream: S, handler: &Handler, log: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return;
    };
    let (method, target) = (method.to_owned(), target.to_owned());
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
        if name == "content-length" {
            length = value.parse().unwrap_or(0);
        }
        headers.push((name, value));
    }
    if length > MAX_BODY {
        return;
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let request = Request {
        method,
        target,
        headers,
        body,
    };
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(request.clone());
    let response = handler(&request);
    let mut stream = reader.into_inner();
    if let Some(body) = &response.stream {
        stream_body(&mut stream, response.status, body);
        return;
    }
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        reason(response.status),
        response.body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&response.body);
    let _ = stream.flush();
}

/// Send a chunked response from `body` until its sender is gone, its time is up, or the
/// client hangs up.
fn stream_body<S: Write>(stream: &mut S, status: u16, body: &Stream) {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        reason(status)
    );
    if stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.flush())
        .is_err()
    {
        return;
    }
    let deadline = Instant::now() + body.limit;
    let chunks = body.chunks.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match chunks.recv_timeout(left) {
            Ok(chunk) if chunk.is_empty() => {}
            Ok(chunk) => {
                let framed = stream
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .and_then(|()| stream.write_all(&chunk))
                    .and_then(|()| stream.write_all(b"\r\n"))
                    .and_then(|()| stream.flush());
                if framed.is_err() {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let _ = stream.flush();
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        410 => "Gone",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

/// A test CA and a server certificate for `127.0.0.1` and `localhost` signed by it.
#[derive(Clone)]
pub struct TestTls {
    /// The server configuration presenting the certificate.
    pub config: Arc<rustls::ServerConfig>,
    /// The CA certificate, PEM: what clients must trust.
    pub ca_pem: String,
}

impl std::fmt::Debug for TestTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestTls").finish_non_exhaustive()
    }
}

impl TestTls {
    /// A fresh CA and server certificate.
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let key = KeyPair::generate().expect("server key");
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("server params")
            .signed_by(&key, &issuer)
            .expect("server certificate");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("server config");
        TestTls {
            config: Arc::new(config),
            ca_pem: ca.pem(),
        }
    }
}

impl Default for TestTls {
    fn default() -> Self {
        Self::new()
    }
}
