//! `sigil_cli::run_agent`, SPIRE's `spire-agent api …` and `healthcheck`, against a real
//! workload socket served by sigil-workload with in-memory identities.

#![expect(
    clippy::expect_used,
    reason = "test helpers outside #[test] functions: a failed setup step must fail the test"
)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sigil_ca::{JwtSigner, Key, KeyType, Subject, X509Ca, X509SvidParams};
use sigil_types::{Bundle, EntryId, SpiffeId, TrustDomain, UnixTime, X509Authority};
use sigil_workload::testing::StaticIdentities;
use sigil_workload::{WorkloadConfig, WorkloadSvid, WorkloadUpdate};

fn now() -> UnixTime {
    sigil_clock::unix_now()
}

/// Identities for one workload: an X509-SVID for `/web`, the bundle with the CA and the JWT
/// key, and a JWT signer.
fn identities() -> StaticIdentities {
    let trust_domain = TrustDomain::new("example.org").expect("trust domain");
    let ca = X509Ca::self_signed(
        &trust_domain,
        Key::generate("ca", KeyType::EcP256).expect("CA key"),
        &Subject::spire_ca_default(),
        Duration::from_secs(3600),
        now() - 60,
    )
    .expect("CA");
    let jwt_key = Key::generate("jwt", KeyType::EcP256).expect("JWT key");
    let kid = sigil_ca::generate_kid().expect("kid");
    let signer = || JwtSigner::new(jwt_key.clone(), kid.clone(), now() + 3600).expect("signer");
    let mut bundle = Bundle::new(trust_domain.clone());
    bundle.x509_authorities.push(X509Authority {
        der: ca.cert_der().to_vec(),
        tainted: false,
    });
    bundle.jwt_authorities.push(signer().authority());
    let svid = ca
        .mint_x509_svid_with_new_key(
            KeyType::EcP256,
            &X509SvidParams::new(SpiffeId::new(&trust_domain, "/web").expect("id")),
            now(),
        )
        .expect("SVID");
    let update = WorkloadUpdate::new(
        vec![WorkloadSvid {
            entry_id: EntryId::new("entry-web").expect("entry ID"),
            svid,
        }],
        bundle,
        [],
    );
    StaticIdentities::new(update).with_jwt_signer(signer())
}

/// Serve `identities` on a socket in `dir` until the returned sender is dropped.
async fn serve(dir: &Path) -> (std::path::PathBuf, tokio::sync::oneshot::Sender<()>) {
    let socket = dir.join("api.sock");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sigil_workload::serve(
        socket.clone(),
        Arc::new(identities()),
        WorkloadConfig::default(),
        async {
            let _ = stopped.await;
        },
    ));
    for _ in 0..200 {
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (socket, stop)
}

async fn agent(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    args.extend(["-socketPath".to_owned(), socket.display().to_string()]);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = sigil_cli::run_agent(&args, &mut out, &mut err).await;
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_x509_prints_and_writes_the_svid_as_spire_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (socket, _stop) = serve(dir.path()).await;
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).expect("out dir");
    let (code, out, err) = agent(
        &socket,
        &[
            "api",
            "fetch",
            "x509",
            "-write",
            &out_dir.display().to_string(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Received 1 svid after "), "{out}");
    assert!(
        out.contains("SPIFFE ID:\t\tspiffe://example.org/web\n"),
        "{out}"
    );
    assert!(out.contains("SVID Valid Until:\t"), "{out}");
    assert!(out.contains("CA #1 Valid After:\t"), "{out}");
    assert!(out.contains(" +0000 UTC\n"), "Go's time format: {out}");
    assert!(out.contains("Writing key #0 to file"), "{out}");

    let svid = std::fs::read_to_string(out_dir.join("svid.0.pem")).expect("svid.0.pem");
    let bundle = std::fs::read_to_string(out_dir.join("bundle.0.pem")).expect("bundle.0.pem");
    let key = out_dir.join("svid.0.key");
    assert!(svid.starts_with("-----BEGIN CERTIFICATE-----"), "{svid}");
    assert!(
        bundle.starts_with("-----BEGIN CERTIFICATE-----"),
        "{bundle}"
    );
    assert!(
        std::fs::read_to_string(&key)
            .expect("key")
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    let mode = std::fs::metadata(&key).expect("key").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key is private");

    // `api fetch` alone is `api fetch x509`; `-silent` prints nothing.
    let (code, out, err) = agent(&socket, &["api", "fetch", "-silent"]).await;
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_and_validate_jwt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (socket, _stop) = serve(dir.path()).await;
    let (code, out, err) = agent(&socket, &["api", "fetch", "jwt", "-audience", "db"]).await;
    assert_eq!(code, 0, "{err}");
    let token = out
        .split("token(spiffe://example.org/web):\n\t")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .expect("a token line")
        .to_owned();
    assert_eq!(token.split('.').count(), 3, "{out}");
    assert!(out.contains("bundle("), "{out}");

    let (code, out, err) = agent(
        &socket,
        &["api", "validate", "jwt", "-audience", "db", "-svid", &token],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("SVID is valid.\nSPIFFE ID : spiffe://example.org/web\nClaims    : {"),
        "{out}"
    );
    assert!(out.contains("\"aud\""), "{out}");

    let (code, _, err) = agent(
        &socket,
        &[
            "api",
            "validate",
            "jwt",
            "-audience",
            "other",
            "-svid",
            &token,
        ],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.starts_with("Error: SVID is not valid: "), "{err}");

    let (code, _, err) = agent(&socket, &["api", "fetch", "jwt"]).await;
    assert_eq!(code, 1);
    assert_eq!(err, "Error: audience must be specified\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_reports_a_serving_agent_and_a_missing_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (socket, stop) = serve(dir.path()).await;
    let (code, out, err) = agent(&socket, &["healthcheck"]).await;
    assert_eq!((code, out.as_str()), (0, "Agent is healthy.\n"), "{err}");
    drop(stop);
    let missing = dir.path().join("missing.sock");
    let (code, _, err) = agent(&missing, &["healthcheck"]).await;
    assert_eq!(code, 1);
    assert_eq!(err, "Agent is unhealthy: unable to determine health\n");
    let (code, _, err) = agent(&missing, &["api", "fetch", "x509", "-bogus"]).await;
    assert_eq!(code, 1);
    assert!(
        err.starts_with("flag provided but not defined: -bogus"),
        "{err}"
    );
}
