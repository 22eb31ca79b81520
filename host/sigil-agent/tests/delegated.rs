//! The Delegated Identity API on the agent's admin socket, with a real agent process and the
//! in-process server. The test process is the delegate: an entry for its uid has the SPIFFE
//! ID `spiffe://example.org/delegate`, listed (or not) in `authorized_delegates`. It asks
//! for the identities of a workload that only exists as selectors (`unix:uid:4242`), for its
//! own by PID, and for the bundles, through a tonic client generated from sigil-proto.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a failed setup or check step must fail the test"
)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use sigil_proto::spire::api::agent::delegatedidentity::v1::delegated_identity_client::DelegatedIdentityClient;
use sigil_proto::spire::api::agent::delegatedidentity::v1::{
    FetchJwtsviDsRequest, SubscribeToJwtBundlesRequest, SubscribeToX509BundlesRequest,
    SubscribeToX509sviDsRequest, SubscribeToX509sviDsResponse, X509svidWithKey,
};
use sigil_proto::spire::api::types::Selector as WireSelector;
use sigil_types::{Bundle, TrustDomain};
use tonic::Code;
use tonic::transport::Channel;

mod common;

use common::{
    AGENT, Agent, Server, WAIT, agent_conf, agent_conf_extra, fetch_x509, uds_channel, unix_now,
    verify_chain,
};

const DELEGATE: &str = "spiffe://example.org/delegate";
const TARGET: &str = "spiffe://example.org/target";
const OWN_TD: &str = "spiffe://example.org";

/// A server with the delegate's and the target's entries, and an agent serving the admin
/// socket with `authorized_delegates = [delegates]`, synced.
struct Setup {
    _dir: tempfile::TempDir,
    /// The admin socket's directory: not the workload socket's (the config refuses that).
    admin_dir: tempfile::TempDir,
    server: Server,
    agent: Agent,
    bundle_pem: String,
    target_entry: String,
    agent_id: String,
}

impl Setup {
    async fn start(delegates: &str) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let admin_dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(dir.path()).await;
        let token = server.token().await;
        let bundle_pem = server.cli_out(&["bundle", "show"]).await;
        let bundle_path = dir.path().join("bootstrap.pem");
        std::fs::write(&bundle_path, &bundle_pem).expect("write bundle");
        let agent_id = format!("spiffe://example.org/spire/agent/join_token/{token}");
        let uid = std::fs::metadata("/proc/self").expect("proc").uid();
        server
            .cli_out(&[
                "entry",
                "create",
                "-spiffeID",
                DELEGATE,
                "-parentID",
                &agent_id,
                "-selector",
                &format!("unix:uid:{uid}"),
            ])
            .await;
        let created = server
            .cli_out(&[
                "entry",
                "create",
                "-spiffeID",
                TARGET,
                "-parentID",
                &agent_id,
                "-selector",
                "unix:uid:4242",
                "-hint",
                "first",
            ])
            .await;
        let target_entry = created
            .lines()
            .find_map(|l| l.strip_prefix("Entry ID         : "))
            .expect("entry ID")
            .trim()
            .to_owned();
        let conf = dir.path().join("agent.conf");
        std::fs::write(
            &conf,
            agent_conf_extra(
                dir.path(),
                server.address.port(),
                &format!("trust_bundle_path = \"{}\"", bundle_path.display()),
                &format!(
                    "admin_socket_path = \"{}\"\n    authorized_delegates = [{delegates}]",
                    admin_dir.path().join("admin.sock").display()
                ),
            ),
        )
        .expect("write config");
        let mut agent = Agent::start(&conf, Some(&token), dir.path(), "delegated");
        // Synced: the delegate itself gets its SVID on the workload socket.
        let own = fetch_x509(&dir.path().join("agent.sock"), &mut agent).await;
        assert_eq!(own.ids, [DELEGATE]);
        Setup {
            _dir: dir,
            admin_dir,
            server,
            agent,
            bundle_pem,
            target_entry,
            agent_id,
        }
    }

    fn admin_socket(&self) -> PathBuf {
        self.admin_dir.path().join("admin.sock")
    }

    async fn client(&self) -> DelegatedIdentityClient<Channel> {
        DelegatedIdentityClient::new(uds_channel(&self.admin_socket()).await)
    }

    fn roots(&self) -> Vec<pem::Pem> {
        pem::parse_many(&self.bundle_pem).expect("bundle PEM")
    }

    /// The server's bundle as a SPIFFE bundle (with its JWT authorities).
    async fn server_bundle(&self) -> Bundle {
        let jwks = self
            .server
            .cli_out(&["bundle", "show", "-format", "spiffe"])
            .await;
        Bundle::from_jwks(td(), &jwks).expect("JWKS")
    }
}

fn td() -> TrustDomain {
    "example.org".parse().expect("td")
}

fn selector(t: &str, v: &str) -> WireSelector {
    WireSelector {
        r#type: t.into(),
        value: v.into(),
    }
}

fn by_selectors(selectors: Vec<WireSelector>) -> SubscribeToX509sviDsRequest {
    SubscribeToX509sviDsRequest { selectors, pid: 0 }
}

/// A subscription to this process's own X509-SVIDs, by PID.
fn by_pid() -> SubscribeToX509sviDsRequest {
    SubscribeToX509sviDsRequest {
        selectors: Vec::new(),
        pid: own_pid(),
    }
}

fn own_pid() -> i32 {
    i32::try_from(std::process::id()).expect("pid")
}

fn ids(response: &SubscribeToX509sviDsResponse) -> Vec<String> {
    response
        .x509_svids
        .iter()
        .map(|s| {
            let id = s
                .x509_svid
                .as_ref()
                .and_then(|svid| svid.id.as_ref())
                .expect("SVID with an ID");
            format!("spiffe://{}{}", id.trust_domain, id.path)
        })
        .collect()
}

/// The SVID's key is the certificate's key, and the chain ends at a root of the bundle.
fn check_svid(svid: &X509svidWithKey, roots: &[pem::Pem]) {
    let wire = svid.x509_svid.as_ref().expect("an X509-SVID");
    verify_chain(&wire.cert_chain, roots);
    let (_, leaf) = x509_parser::parse_x509_certificate(&wire.cert_chain[0]).expect("leaf");
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &svid.x509_svid_key)
        .expect("a PKCS#8 P-256 key");
    assert_eq!(
        key.public_key().as_ref(),
        leaf.public_key().subject_public_key.data.as_ref(),
        "the key belongs to the certificate"
    );
    let not_after = leaf.validity().not_after.timestamp();
    assert_eq!(wire.expires_at, not_after);
}

/// The next message of `stream` within `limit`.
async fn next<T>(stream: &mut tonic::Streaming<T>, limit: Duration) -> T {
    tokio::time::timeout(limit, stream.message())
        .await
        .expect("a message in time")
        .expect("the stream stays healthy")
        .expect("the stream stays open")
}

// === the tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_authorized_delegate_gets_other_workloads_identities_and_bundles() {
    let mut setup = Setup::start(&format!("\"{DELEGATE}\"")).await;
    let admin = setup.admin_socket();
    let mode = std::fs::metadata(&admin)
        .expect("admin socket")
        .permissions()
        .mode();
    assert_eq!(format!("{:o}", mode & 0o777), "770", "admin socket mode");
    let mut client = setup.client().await;
    let roots = setup.roots();

    // By selectors: the target's SVID with its key, although no such process exists.
    let mut stream = client
        .subscribe_to_x509svi_ds(by_selectors(vec![selector("unix", "uid:4242")]))
        .await
        .expect("subscribe by selectors")
        .into_inner();
    let first = next(&mut stream, WAIT).await;
    assert_eq!(ids(&first), [TARGET]);
    check_svid(&first.x509_svids[0], &roots);
    let first_svid = first.x509_svids[0].x509_svid.clone().expect("SVID");
    assert_eq!(first_svid.hint, "first");
    assert!(first.federates_with.is_empty());

    // Selectors no entry is made of: an empty list, not an error (as SPIRE).
    let mut none = client
        .subscribe_to_x509svi_ds(by_selectors(vec![selector("unix", "uid:4243")]))
        .await
        .expect("subscribe")
        .into_inner();
    assert!(next(&mut none, WAIT).await.x509_svids.is_empty());

    // The entry changes: a new SVID is pushed within a sync or two.
    setup
        .server
        .cli_out(&[
            "entry",
            "update",
            "-entryID",
            &setup.target_entry,
            "-spiffeID",
            TARGET,
            "-parentID",
            &setup.agent_id,
            "-selector",
            "unix:uid:4242",
            "-hint",
            "second",
        ])
        .await;
    let updated = next(&mut stream, sigil_agent::SYNC_INTERVAL * 3).await;
    assert_eq!(ids(&updated), [TARGET]);
    let updated_svid = updated.x509_svids[0].x509_svid.clone().expect("SVID");
    assert_eq!(updated_svid.hint, "second");
    assert_ne!(updated_svid.cert_chain, first_svid.cert_chain, "a new SVID");
    check_svid(&updated.x509_svids[0], &roots);

    // By PID: this process is the delegate.
    let mut own = client
        .subscribe_to_x509svi_ds(by_pid())
        .await
        .expect("subscribe by PID")
        .into_inner();
    let mine = next(&mut own, WAIT).await;
    assert_eq!(ids(&mine), [DELEGATE]);
    check_svid(&mine.x509_svids[0], &roots);

    // Bundles: the own trust domain, keyed by its SPIFFE ID.
    let mut x509_bundles = client
        .subscribe_to_x509_bundles(SubscribeToX509BundlesRequest {})
        .await
        .expect("X.509 bundles")
        .into_inner();
    let bundles = next(&mut x509_bundles, WAIT).await.ca_certificates;
    let expected: Vec<u8> = roots.iter().flat_map(|r| r.contents().to_vec()).collect();
    assert_eq!(bundles.keys().collect::<Vec<_>>(), [OWN_TD]);
    assert_eq!(bundles[OWN_TD], expected);
    let server_bundle = setup.server_bundle().await;
    let mut jwt_bundles = client
        .subscribe_to_jwt_bundles(SubscribeToJwtBundlesRequest {})
        .await
        .expect("JWT bundles")
        .into_inner();
    let jwks = next(&mut jwt_bundles, WAIT).await.bundles;
    assert_eq!(jwks.keys().collect::<Vec<_>>(), [OWN_TD]);
    let served = Bundle::from_jwks(td(), std::str::from_utf8(&jwks[OWN_TD]).expect("UTF-8"))
        .expect("a JWK set");
    assert!(!served.jwt_authorities.is_empty());
    assert_eq!(served.jwt_authorities, server_bundle.jwt_authorities);
    assert!(served.x509_authorities.is_empty(), "JWT authorities only");

    // JWT-SVIDs: for the target by selectors, for this process by PID; both validate
    // against the server's bundle.
    let jwt = client
        .fetch_jwtsvi_ds(FetchJwtsviDsRequest {
            audience: vec!["svc".into()],
            selectors: vec![selector("unix", "uid:4242")],
            pid: 0,
        })
        .await
        .expect("JWT-SVIDs")
        .into_inner();
    assert_eq!(jwt.svids.len(), 1);
    let checked =
        sigil_ca::validate_jwt_svid(&jwt.svids[0].token, &server_bundle, "svc", unix_now())
            .expect("the JWT-SVID validates");
    assert_eq!(checked.spiffe_id.as_str(), TARGET);
    assert_eq!(jwt.svids[0].hint, "second");
    let jwt = client
        .fetch_jwtsvi_ds(FetchJwtsviDsRequest {
            audience: vec!["svc".into()],
            selectors: Vec::new(),
            pid: own_pid(),
        })
        .await
        .expect("JWT-SVIDs by PID")
        .into_inner();
    let checked =
        sigil_ca::validate_jwt_svid(&jwt.svids[0].token, &server_bundle, "svc", unix_now())
            .expect("the JWT-SVID validates");
    assert_eq!(checked.spiffe_id.as_str(), DELEGATE);

    // A graceful stop ends the open streams and removes the socket.
    let status = tokio::task::block_in_place(|| setup.agent.terminate());
    assert!(status.success(), "{status:?}: {}", setup.agent.log());
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(status) => return Some(status.code()),
            }
        }
    })
    .await
    .expect("the stream ends");
    assert!(matches!(ended, None | Some(Code::Unavailable)), "{ended:?}");
    assert!(!admin.exists(), "the admin socket is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_are_invalid_arguments() {
    let setup = Setup::start(&format!("\"{DELEGATE}\"")).await;
    let mut client = setup.client().await;
    let invalid = |result: Result<_, tonic::Status>, contains: &str| match result {
        Ok(_) => panic!("accepted, expected InvalidArgument containing {contains:?}"),
        Err(status) => {
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert!(status.message().contains(contains), "{status:?}");
        }
    };
    invalid(
        client
            .subscribe_to_x509svi_ds(by_selectors(Vec::new()))
            .await
            .map(drop),
        "selectors",
    );
    invalid(
        client
            .subscribe_to_x509svi_ds(by_selectors(vec![
                selector("unix", "uid:4242"),
                selector("unix", ""),
            ]))
            .await
            .map(drop),
        "\"unix:\"",
    );
    invalid(
        client
            .subscribe_to_x509svi_ds(SubscribeToX509sviDsRequest {
                selectors: vec![selector("unix", "uid:4242")],
                pid: own_pid(),
            })
            .await
            .map(drop),
        "not both",
    );
    invalid(
        client
            .subscribe_to_x509svi_ds(SubscribeToX509sviDsRequest {
                selectors: Vec::new(),
                pid: -1,
            })
            .await
            .map(drop),
        "PID",
    );
    invalid(
        client
            .fetch_jwtsvi_ds(FetchJwtsviDsRequest {
                audience: Vec::new(),
                selectors: vec![selector("unix", "uid:4242")],
                pid: 0,
            })
            .await
            .map(drop),
        "audience must be specified",
    );
    invalid(
        client
            .fetch_jwtsvi_ds(FetchJwtsviDsRequest {
                audience: vec!["svc".into()],
                selectors: vec![selector("", "x")],
                pid: 0,
            })
            .await
            .map(drop),
        "could not parse provided selectors",
    );
    invalid(
        client
            .fetch_jwtsvi_ds(FetchJwtsviDsRequest {
                audience: Vec::new(),
                selectors: Vec::new(),
                pid: own_pid(),
            })
            .await
            .map(drop),
        "audience must be specified",
    );
    // Audiences over sigil's limits, named with the limit and the value.
    invalid(
        client
            .fetch_jwtsvi_ds(FetchJwtsviDsRequest {
                audience: vec!["a".repeat(1 << 20)],
                selectors: vec![selector("unix", "uid:4242")],
                pid: 0,
            })
            .await
            .map(drop),
        "audience[0]: 1048576 bytes, at most 4096 bytes per audience",
    );
    invalid(
        client
            .fetch_jwtsvi_ds(FetchJwtsviDsRequest {
                audience: vec!["svc".into(); 33],
                selectors: Vec::new(),
                pid: own_pid(),
            })
            .await
            .map(drop),
        "33 audiences given, at most 32",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caller_not_in_authorized_delegates_gets_nothing() {
    let setup = Setup::start("\"spiffe://example.org/someone-else\"").await;
    let mut client = setup.client().await;
    let denied = |result: Result<(), tonic::Status>| match result {
        Ok(()) => panic!("served a caller that is not an authorized delegate"),
        Err(status) => {
            assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
            assert_eq!(
                status.message(),
                "caller not configured as an authorized delegate"
            );
        }
    };
    denied(
        client
            .subscribe_to_x509svi_ds(by_selectors(vec![selector("unix", "uid:4242")]))
            .await
            .map(drop),
    );
    denied(client.subscribe_to_x509svi_ds(by_pid()).await.map(drop));
    denied(
        client
            .subscribe_to_x509_bundles(SubscribeToX509BundlesRequest {})
            .await
            .map(drop),
    );
    denied(
        client
            .subscribe_to_jwt_bundles(SubscribeToJwtBundlesRequest {})
            .await
            .map(drop),
    );
    denied(
        client
            .fetch_jwtsvi_ds(FetchJwtsviDsRequest {
                audience: vec!["svc".into()],
                selectors: vec![selector("unix", "uid:4242")],
                pid: 0,
            })
            .await
            .map(drop),
    );
    denied(
        client
            .fetch_jwtsvi_ds(FetchJwtsviDsRequest {
                audience: vec!["svc".into()],
                selectors: Vec::new(),
                pid: own_pid(),
            })
            .await
            .map(drop),
    );
    // Not even invalid requests get further than the authorization (SPIRE's order).
    denied(
        client
            .subscribe_to_x509svi_ds(by_selectors(Vec::new()))
            .await
            .map(drop),
    );
}

#[test]
fn validate_refuses_an_admin_socket_in_the_workload_socket_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("agent.conf");
    // The workload socket is `<dir>/agent.sock`.
    let write = |admin: &Path| {
        std::fs::write(
            &conf,
            agent_conf_extra(
                dir.path(),
                8081,
                "trust_bundle_path = \"/b.pem\"",
                &format!(
                    "admin_socket_path = \"{}\"\n    authorized_delegates = [\"{DELEGATE}\"]",
                    admin.display()
                ),
            ),
        )
        .expect("write");
    };
    let validate = || {
        Command::new(AGENT)
            .args(["validate", "-config"])
            .arg(&conf)
            .output()
            .expect("run")
    };
    write(&dir.path().join("admin.sock"));
    let out = validate();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("agent.conf:") && err.contains("agent.admin_socket_path"),
        "{err}"
    );
    write(&dir.path().join("admin").join("admin.sock"));
    assert_eq!(validate().status.code(), Some(64));

    let elsewhere = tempfile::tempdir().expect("tempdir");
    write(&elsewhere.path().join("admin.sock"));
    let out = validate();
    assert!(out.status.success(), "{out:?}");
    // The base config stays valid.
    std::fs::write(
        &conf,
        agent_conf(dir.path(), 8081, "trust_bundle_path = \"/b.pem\""),
    )
    .expect("write");
    assert!(validate().status.success());
}
