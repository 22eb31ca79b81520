//! A served socket in a tempdir with test-support identities, and real gRPC clients on it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use sigil_ca::{JwtSigner, Key, KeyType, Subject, X509Ca, X509SvidParams};
use sigil_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use sigil_types::{Bundle, EntryId, SpiffeId, TrustDomain, UnixTime, X509Authority};
use sigil_workload::testing::StaticIdentities;
use sigil_workload::{WorkloadConfig, WorkloadSvid, WorkloadUpdate};
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint, Uri};

/// How long a test waits for something that must happen.
pub(crate) const WAIT: Duration = Duration::from_secs(10);
/// How long a test waits to show that something does not happen.
pub(crate) const QUIET: Duration = Duration::from_millis(500);

pub(crate) const OWN_TD: &str = "example.org";
pub(crate) const FEDERATED_TD: &str = "federated.test";

pub(crate) fn now() -> UnixTime {
    sigil_clock::unix_now()
}

pub(crate) fn td(name: &str) -> TrustDomain {
    TrustDomain::new(name).unwrap()
}

pub(crate) fn id(path: &str) -> SpiffeId {
    SpiffeId::new(&td(OWN_TD), path).unwrap()
}

/// A CA for one trust domain, able to mint SVIDs, plus a JWT signer whose key is generated
/// here (P-256).
pub(crate) struct Pki {
    pub(crate) ca: X509Ca,
    pub(crate) jwt: JwtSigner,
    pub(crate) trust_domain: TrustDomain,
    jwt_key: Key,
}

impl Pki {
    pub(crate) fn new(trust_domain: &str) -> Self {
        let trust_domain = td(trust_domain);
        let key = Key::generate("x509-ca", KeyType::EcP256).unwrap();
        let ca = X509Ca::self_signed(
            &trust_domain,
            key,
            &Subject::spire_ca_default(),
            Duration::from_secs(24 * 3600),
            now() - 60,
        )
        .unwrap();
        let jwt_key = Key::generate("jwt-key", KeyType::EcP256).unwrap();
        let jwt = JwtSigner::new(
            jwt_key.clone(),
            sigil_ca::generate_kid().unwrap(),
            now() + 3600,
        )
        .unwrap();
        Self {
            ca,
            jwt,
            trust_domain,
            jwt_key,
        }
    }

    /// A second signer with the same key and `kid` (the first stays with the test).
    pub(crate) fn signer(&self) -> JwtSigner {
        JwtSigner::new(self.jwt_key.clone(), self.jwt.kid(), self.jwt.expires_at()).unwrap()
    }

    /// The trust domain's bundle: the CA certificate and the JWT key.
    pub(crate) fn bundle(&self) -> Bundle {
        let mut bundle = Bundle::new(self.trust_domain.clone());
        bundle.x509_authorities.push(X509Authority {
            der: self.ca.cert_der().to_vec(),
            tainted: false,
        });
        bundle.jwt_authorities.push(self.jwt.authority());
        bundle
    }

    /// A fresh X509-SVID for `path`, issued for entry `entry`.
    pub(crate) fn svid(&self, entry: &str, path: &str) -> WorkloadSvid {
        let spiffe_id = SpiffeId::new(&self.trust_domain, path).unwrap();
        let mut svid = self
            .ca
            .mint_x509_svid_with_new_key(KeyType::EcP256, &X509SvidParams::new(spiffe_id), now())
            .unwrap();
        svid.hint = format!("hint-{entry}");
        WorkloadSvid {
            entry_id: EntryId::new(entry).unwrap(),
            svid,
        }
    }
}

/// The identities of most tests: two SVIDs (entry `b` for `/web`, entry `a` for `/db`, so
/// entry-ID order puts `/db` first), the own bundle and one federated bundle.
pub(crate) struct World {
    pub(crate) own: Pki,
    pub(crate) federated: Pki,
}

impl World {
    pub(crate) fn new() -> Self {
        Self {
            own: Pki::new(OWN_TD),
            federated: Pki::new(FEDERATED_TD),
        }
    }

    pub(crate) fn update(&self) -> WorkloadUpdate {
        WorkloadUpdate::new(
            vec![self.own.svid("b", "/web"), self.own.svid("a", "/db")],
            self.own.bundle(),
            [self.federated.bundle()],
        )
    }

    pub(crate) fn identities(&self) -> StaticIdentities {
        StaticIdentities::new(self.update()).with_jwt_signer(self.own.signer())
    }
}

/// A workload socket being served.
pub(crate) struct Socket {
    _dir: tempfile::TempDir,
    pub(crate) path: PathBuf,
    pub(crate) identities: Arc<StaticIdentities>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), sigil_workload::ServeError>>>,
}

impl Socket {
    pub(crate) async fn start(identities: StaticIdentities, config: WorkloadConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // A directory that does not exist yet: serve creates it.
        let path = dir.path().join("agent").join("public").join("api.sock");
        Self::start_at(dir, path, identities, config).await
    }

    pub(crate) async fn start_at(
        dir: tempfile::TempDir,
        path: PathBuf,
        identities: StaticIdentities,
        config: WorkloadConfig,
    ) -> Self {
        let identities = Arc::new(identities);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(sigil_workload::serve(
            path.clone(),
            identities.clone(),
            config,
            async {
                let _ = stopped.await;
            },
        ));
        let socket = Self {
            _dir: dir,
            path,
            identities,
            stop: Some(stop),
            server: Some(server),
        };
        socket.wait_connectable().await;
        socket
    }

    async fn wait_connectable(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while UnixStream::connect(&self.path).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "socket never accepted"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(crate) async fn channel(&self) -> Channel {
        channel(&self.path).await
    }

    pub(crate) async fn workload_client(&self) -> SpiffeWorkloadApiClient<Channel> {
        SpiffeWorkloadApiClient::new(self.channel().await)
    }

    /// Stops serving and returns what `serve` returned.
    pub(crate) async fn stop(mut self) -> Result<(), sigil_workload::ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.server.take().unwrap().await.unwrap()
    }
}

pub(crate) async fn channel(path: &Path) -> Channel {
    let path = path.to_owned();
    // The URI is required but unused: the connector always dials the socket.
    Endpoint::from_static("http://localhost")
        .connect_timeout(WAIT)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .unwrap()
}

/// A request with the Workload API's security header.
pub(crate) fn with_header<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("workload.spiffe.io", "true".parse().unwrap());
    request
}

/// The next item of a stream, failing the test if none comes within [`WAIT`].
pub(crate) async fn next<T>(stream: &mut tonic::Streaming<T>) -> Result<Option<T>, tonic::Status> {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("no stream message in time")
}

/// Asserts that no item arrives within [`QUIET`].
pub(crate) async fn assert_quiet<T: std::fmt::Debug>(stream: &mut tonic::Streaming<T>, why: &str) {
    if let Ok(item) = tokio::time::timeout(QUIET, stream.message()).await {
        panic!("{why}: expected no response, got {item:?}");
    }
}
