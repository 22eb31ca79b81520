//! The SPIFFE Workload API through the generated client over the socket.

use std::os::unix::fs::MetadataExt;

use prost_types::value::Kind;
use sigil_proto::workload::{
    JwtBundlesRequest, JwtsvidRequest, ValidateJwtsvidRequest, WitBundlesRequest, WitsvidRequest,
    X509BundlesRequest, X509svidRequest,
};
use sigil_types::{Bundle, JwtAuthority};
use sigil_workload::testing::StaticIdentities;
use sigil_workload::{IdentityError, WorkloadConfig, WorkloadUpdate};
use tonic::{Code, Request};

use crate::support::*;

fn assert_status<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, message: &str) {
    let status = result.expect_err("the call must be refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(status.message().contains(message), "{status:?}");
}

#[tokio::test]
async fn every_call_without_the_security_header_is_invalid_argument() {
    let world = World::new();
    let socket = Socket::start(world.identities(), WorkloadConfig::default()).await;
    let mut client = socket.workload_client().await;
    let missing = "security header missing from request";

    assert_status(
        client.fetch_x509svid(X509svidRequest {}).await,
        Code::InvalidArgument,
        missing,
    );
    assert_status(
        client.fetch_x509_bundles(X509BundlesRequest {}).await,
        Code::InvalidArgument,
        missing,
    );
    assert_status(
        client.fetch_jwt_bundles(JwtBundlesRequest {}).await,
        Code::InvalidArgument,
        missing,
    );
    let jwt = JwtsvidRequest {
        audience: vec!["svc".into()],
        spiffe_id: String::new(),
    };
    assert_status(
        client.fetch_jwtsvid(jwt.clone()).await,
        Code::InvalidArgument,
        missing,
    );
    assert_status(
        client
            .validate_jwtsvid(ValidateJwtsvidRequest {
                audience: "svc".into(),
                svid: "x.y.z".into(),
            })
            .await,
        Code::InvalidArgument,
        missing,
    );
    // A header with another value is no header.
    let mut wrong = Request::new(jwt);
    wrong
        .metadata_mut()
        .insert("workload.spiffe.io", "yes".parse().unwrap());
    assert_status(
        client.fetch_jwtsvid(wrong).await,
        Code::InvalidArgument,
        missing,
    );
    // The refused calls never reached attestation.
    assert!(socket.identities.callers().is_empty());
}

/// go-spiffe's Workload API has the WIT-SVID calls; sigil issues no WIT-SVIDs and answers
/// them Unimplemented, as SPIRE's agent does, after the same header check as every call.
#[tokio::test]
async fn wit_svid_calls_are_unimplemented() {
    let world = World::new();
    let socket = Socket::start(world.identities(), WorkloadConfig::default()).await;
    let mut client = socket.workload_client().await;
    assert_status(
        client
            .fetch_witsvid(with_header(WitsvidRequest::default()))
            .await,
        Code::Unimplemented,
        "WIT-SVIDs are not supported",
    );
    assert_status(
        client
            .fetch_wit_bundles(with_header(WitBundlesRequest {}))
            .await,
        Code::Unimplemented,
        "WIT-SVIDs are not supported",
    );
    assert_status(
        client.fetch_witsvid(WitsvidRequest::default()).await,
        Code::InvalidArgument,
        "security header missing from request",
    );
}

#[tokio::test]
async fn a_caller_without_identity_is_permission_denied() {
    let world = World::new();
    let identities = StaticIdentities::new(WorkloadUpdate::empty(world.own.bundle()))
        .with_jwt_signer(world.own.signer());
    let socket = Socket::start(identities, WorkloadConfig::default()).await;
    let mut client = socket.workload_client().await;
    let none = "no identity issued";

    let mut stream = client
        .fetch_x509svid(with_header(X509svidRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_status(next(&mut stream).await, Code::PermissionDenied, none);

    let mut stream = client
        .fetch_x509_bundles(with_header(X509BundlesRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_status(next(&mut stream).await, Code::PermissionDenied, none);

    let mut stream = client
        .fetch_jwt_bundles(with_header(JwtBundlesRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_status(next(&mut stream).await, Code::PermissionDenied, none);

    assert_status(
        client
            .fetch_jwtsvid(with_header(JwtsvidRequest {
                audience: vec!["svc".into()],
                spiffe_id: String::new(),
            }))
            .await,
        Code::PermissionDenied,
        none,
    );
    assert_status(
        client
            .validate_jwtsvid(with_header(ValidateJwtsvidRequest {
                audience: "svc".into(),
                svid: "x.y.z".into(),
            }))
            .await,
        Code::PermissionDenied,
        none,
    );
}

#[tokio::test]
async fn unauthenticated_verifiers_get_bundles_when_allowed() {
    let world = World::new();
    let identities = StaticIdentities::new(WorkloadUpdate::new(
        Vec::new(),
        world.own.bundle(),
        [world.federated.bundle()],
    ));
    let mut config = WorkloadConfig::default();
    config.allow_unauthenticated_verifiers = true;
    let socket = Socket::start(identities, config).await;
    let mut client = socket.workload_client().await;

    let mut stream = client
        .fetch_x509_bundles(with_header(X509BundlesRequest {}))
        .await
        .unwrap()
        .into_inner();
    let bundles = next(&mut stream).await.unwrap().unwrap().bundles;
    // Without an identity the caller federates with nothing: the own bundle only, as SPIRE.
    assert_eq!(bundles.keys().collect::<Vec<_>>(), ["spiffe://example.org"]);
    let mut stream = client
        .fetch_jwt_bundles(with_header(JwtBundlesRequest {}))
        .await
        .unwrap()
        .into_inner();
    let bundles = next(&mut stream).await.unwrap().unwrap().bundles;
    assert_eq!(bundles.keys().collect::<Vec<_>>(), ["spiffe://example.org"]);
    // X509-SVIDs still need an identity.
    let mut stream = client
        .fetch_x509svid(with_header(X509svidRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_status(
        next(&mut stream).await,
        Code::PermissionDenied,
        "no identity issued",
    );
}

#[tokio::test]
async fn a_refused_attestation_is_permission_denied_with_the_agents_reason() {
    let world = World::new();
    let identities = world
        .identities()
        .refusing(IdentityError::Denied("workload attestor failed".into()));
    let socket = Socket::start(identities, WorkloadConfig::default()).await;
    let mut client = socket.workload_client().await;
    assert_status(
        client.fetch_x509svid(with_header(X509svidRequest {})).await,
        Code::PermissionDenied,
        "workload attestor failed",
    );
}

#[tokio::test]
async fn an_unavailable_agent_answers_unavailable_with_a_retry_pushback() {
    let world = World::new();
    let identities = world.identities().refusing(IdentityError::Unavailable(
        "workload attestation is busy".into(),
    ));
    let socket = Socket::start(identities, WorkloadConfig::default()).await;
    let mut client = socket.workload_client().await;
    let status = client
        .fetch_x509svid(with_header(X509svidRequest {}))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(
        sigil_proto::retry::retry_pushback(&status),
        Some(std::time::Duration::from_secs(1)),
        "{status:?}"
    );
    // A refusal that retrying cannot change carries no hint.
    let denied = World::new()
        .identities()
        .refusing(IdentityError::Denied("no".into()));
    let socket = Socket::start(denied, WorkloadConfig::default()).await;
    let status = socket
        .workload_client()
        .await
        .fetch_x509svid(with_header(X509svidRequest {}))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(sigil_proto::retry::retry_pushback(&status), None);
}

#[tokio::test]
async fn fetch_x509_svid_serves_the_svids_and_pushes_on_rotation() {
    let world = World::new();
    let socket = Socket::start(world.identities(), WorkloadConfig::default()).await;
    let mut client = socket.workload_client().await;
    let mut stream = client
        .fetch_x509svid(with_header(X509svidRequest {}))
        .await
        .unwrap()
        .into_inner();

    let first = next(&mut stream).await.unwrap().unwrap();
    let current = socket.identities.current();
    assert_eq!(first.svids.len(), 2);
    // Entry-ID order: entry "a" (/db) before entry "b" (/web).
    assert_eq!(first.svids[0].spiffe_id, "spiffe://example.org/db");
    assert_eq!(first.svids[1].spiffe_id, "spiffe://example.org/web");
    for (served, expected) in first.svids.iter().zip(current.svids()) {
        assert_eq!(served.x509_svid, expected.svid.cert_chain.concat());
        assert_eq!(
            served.x509_svid_key,
            expected.svid.private_key.secret_pkcs8_der()
        );
        assert_eq!(served.bundle, world.own.ca.cert_der());
        assert_eq!(served.hint, expected.svid.hint);
    }
    assert_eq!(first.federated_bundles.len(), 1);
    assert_eq!(
        first.federated_bundles["spiffe://federated.test"],
        world.federated.ca.cert_der()
    );

    // The caller was attested from the connection's peer credentials: this process.
    let callers = socket.identities.callers();
    let me = callers.last().unwrap();
    assert_eq!(me.pid, Some(i32::try_from(std::process::id()).unwrap()));
    let own_file = std::fs::metadata(&socket.path).unwrap();
    assert_eq!(me.uid, own_file.uid());

    // Rotation: a new SVID for /web pushes a new response to the open stream.
    let rotated = world.own.svid("b", "/web");
    let new_leaf = rotated.svid.cert_chain[0].clone();
    socket.identities.set(WorkloadUpdate::new(
        vec![rotated],
        world.own.bundle(),
        [world.federated.bundle()],
    ));
    let pushed = next(&mut stream).await.unwrap().unwrap();
    assert_eq!(pushed.svids.len(), 1);
    assert_eq!(pushed.svids[0].spiffe_id, "spiffe://example.org/web");
    assert!(pushed.svids[0].x509_svid.starts_with(&new_leaf));
    assert_ne!(pushed.svids[0].x509_svid, first.svids[1].x509_svid);

    // Losing every identity ends the stream with PermissionDenied.
    socket
        .identities
        .set(WorkloadUpdate::empty(world.own.bundle()));
    assert_status(
        next(&mut stream).await,
        Code::PermissionDenied,
        "no identity issued",
    );
}

#[tokio::test]
async fn jwt_svids_are_minted_and_validated() {
    let world = World::new();
    let socket = Socket::start(world.identities(), WorkloadConfig::default()).await;
    let mut client = socket.workload_client().await;

    let fetched = client
        .fetch_jwtsvid(with_header(JwtsvidRequest {
            audience: vec!["svc".into(), "other".into()],
            spiffe_id: "spiffe://example.org/web".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.svids.len(), 1);
    let svid = &fetched.svids[0];
    assert_eq!(svid.spiffe_id, "spiffe://example.org/web");
    assert_eq!(svid.hint, "hint-b");

    let validated = client
        .validate_jwtsvid(with_header(ValidateJwtsvidRequest {
            audience: "svc".into(),
            svid: svid.svid.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(validated.spiffe_id, "spiffe://example.org/web");
    let claims = validated.claims.unwrap().fields;
    assert_eq!(
        claims["sub"].kind,
        Some(Kind::StringValue("spiffe://example.org/web".into()))
    );
    let Some(Kind::ListValue(aud)) = &claims["aud"].kind else {
        panic!("aud is not a list: {claims:?}");
    };
    assert_eq!(aud.values.len(), 2);
    assert!(matches!(claims["exp"].kind, Some(Kind::NumberValue(_))));

    // Without a SPIFFE ID: one JWT-SVID per SPIFFE ID of the workload.
    let all = client
        .fetch_jwtsvid(with_header(JwtsvidRequest {
            audience: vec!["svc".into()],
            spiffe_id: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.svids.len(), 2);

    let validate = |audience: &str, token: &str| {
        with_header(ValidateJwtsvidRequest {
            audience: audience.into(),
            svid: token.into(),
        })
    };
    // Wrong audience.
    assert_status(
        client
            .validate_jwtsvid(validate("elsewhere", &svid.svid))
            .await,
        Code::InvalidArgument,
        "audience",
    );
    // A flipped signature byte.
    let mut tampered = svid.svid.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_status(
        client.validate_jwtsvid(validate("svc", &tampered)).await,
        Code::InvalidArgument,
        "invalid JWT-SVID",
    );
    // Signed by a key that is in no bundle.
    let stranger = Pki::new(OWN_TD);
    let foreign = stranger
        .jwt
        .mint_jwt_svid(
            &id("/web"),
            &["svc".into()],
            std::time::Duration::from_secs(60),
            now(),
        )
        .unwrap();
    assert_status(
        client
            .validate_jwtsvid(validate("svc", &foreign.token))
            .await,
        Code::InvalidArgument,
        "invalid JWT-SVID",
    );
    // Expired: signed by the bundle's key an hour ago with a one-minute lifetime.
    let expired = world
        .own
        .jwt
        .mint_jwt_svid(
            &id("/web"),
            &["svc".into()],
            std::time::Duration::from_secs(60),
            now() - 3600,
        )
        .unwrap();
    assert_status(
        client
            .validate_jwtsvid(validate("svc", &expired.token))
            .await,
        Code::InvalidArgument,
        "invalid JWT-SVID",
    );
    // Garbage never panics the server.
    for junk in ["", "a", "a.b.c", "...", "€.€.€", &"x.".repeat(10_000)] {
        let result = client.validate_jwtsvid(validate("svc", junk)).await;
        assert_eq!(
            result.unwrap_err().code(),
            Code::InvalidArgument,
            "{junk:.20}"
        );
    }
    // Missing fields.
    assert_status(
        client.validate_jwtsvid(validate("", &svid.svid)).await,
        Code::InvalidArgument,
        "audience must be specified",
    );
    assert_status(
        client
            .fetch_jwtsvid(with_header(JwtsvidRequest {
                audience: Vec::new(),
                spiffe_id: String::new(),
            }))
            .await,
        Code::InvalidArgument,
        "audience must be specified",
    );
    // A SPIFFE ID that does not parse, and one the workload does not have.
    assert_status(
        client
            .fetch_jwtsvid(with_header(JwtsvidRequest {
                audience: vec!["svc".into()],
                spiffe_id: "not a spiffe id".into(),
            }))
            .await,
        Code::InvalidArgument,
        "invalid SPIFFE ID",
    );
    let huge = format!("spiffe://example.org/{}", "%".repeat(1_000_000));
    let status = client
        .fetch_jwtsvid(with_header(JwtsvidRequest {
            audience: vec!["svc".into()],
            spiffe_id: huge,
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().len() < 4096);
    assert_status(
        client
            .fetch_jwtsvid(with_header(JwtsvidRequest {
                audience: vec!["svc".into()],
                spiffe_id: "spiffe://example.org/other".into(),
            }))
            .await,
        Code::PermissionDenied,
        "",
    );
}

#[tokio::test]
async fn x509_bundles_are_served_and_pushed() {
    let world = World::new();
    let socket = Socket::start(world.identities(), WorkloadConfig::default()).await;
    let mut client = socket.workload_client().await;
    let mut stream = client
        .fetch_x509_bundles(with_header(X509BundlesRequest {}))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut stream).await.unwrap().unwrap();
    assert_eq!(first.bundles.len(), 2);
    assert_eq!(
        first.bundles["spiffe://example.org"],
        world.own.ca.cert_der()
    );
    assert_eq!(
        first.bundles["spiffe://federated.test"],
        world.federated.ca.cert_der()
    );

    // A change that leaves the bundles as they were sends nothing (as SPIRE).
    socket.identities.set(WorkloadUpdate::new(
        vec![world.own.svid("a", "/db")],
        world.own.bundle(),
        [world.federated.bundle()],
    ));
    assert_quiet(&mut stream, "bundles unchanged").await;

    // A second authority (CA rotation) is pushed, DER concatenated.
    let next_ca = Pki::new(OWN_TD);
    let mut bundle = world.own.bundle();
    bundle.append(&next_ca.bundle());
    socket.identities.set(WorkloadUpdate::new(
        vec![world.own.svid("a", "/db")],
        bundle,
        [world.federated.bundle()],
    ));
    let pushed = next(&mut stream).await.unwrap().unwrap();
    assert_eq!(
        pushed.bundles["spiffe://example.org"],
        [world.own.ca.cert_der(), next_ca.ca.cert_der()].concat()
    );
}

#[tokio::test]
async fn jwt_bundles_are_jwk_sets_and_pushed() {
    let world = World::new();
    let socket = Socket::start(world.identities(), WorkloadConfig::default()).await;
    let mut client = socket.workload_client().await;
    let mut stream = client
        .fetch_jwt_bundles(with_header(JwtBundlesRequest {}))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut stream).await.unwrap().unwrap();
    assert_eq!(first.bundles.len(), 2);
    let own = std::str::from_utf8(&first.bundles["spiffe://example.org"]).unwrap();
    let parsed = Bundle::from_jwks(td(OWN_TD), own).unwrap();
    // JWT keys only; no X.509 authorities.
    assert!(parsed.x509_authorities.is_empty());
    assert_eq!(parsed.jwt_authorities.len(), 1);
    assert_eq!(parsed.jwt_authorities[0].key_id, world.own.jwt.kid());
    assert_eq!(
        parsed.jwt_authorities[0].public_key_der,
        world.own.jwt.authority().public_key_der
    );
    let json: serde_json::Value = serde_json::from_str(own).unwrap();
    assert_eq!(json["keys"][0]["kty"], "EC");
    assert_eq!(json["keys"][0]["kid"], world.own.jwt.kid());

    // A new JWT key is pushed.
    let mut bundle = world.own.bundle();
    let extra = Pki::new(OWN_TD);
    bundle.jwt_authorities.push(JwtAuthority {
        key_id: extra.jwt.kid().to_owned(),
        ..extra.jwt.authority()
    });
    socket.identities.set(WorkloadUpdate::new(
        vec![world.own.svid("a", "/db")],
        bundle,
        [world.federated.bundle()],
    ));
    let pushed = next(&mut stream).await.unwrap().unwrap();
    let own = std::str::from_utf8(&pushed.bundles["spiffe://example.org"]).unwrap();
    let parsed = Bundle::from_jwks(td(OWN_TD), own).unwrap();
    assert_eq!(parsed.jwt_authorities.len(), 2);
}

#[tokio::test]
async fn a_repeated_hint_is_served_once() {
    let world = World::new();
    let mut first = world.own.svid("a", "/db");
    let mut second = world.own.svid("b", "/web");
    let third = world.own.svid("c", "/api");
    first.svid.hint = "internal".into();
    second.svid.hint = "internal".into();
    let identities = StaticIdentities::new(WorkloadUpdate::new(
        vec![third, second, first],
        world.own.bundle(),
        [],
    ))
    .with_jwt_signer(world.own.signer());
    let socket = Socket::start(identities, WorkloadConfig::default()).await;
    let mut client = socket.workload_client().await;

    let mut stream = client
        .fetch_x509svid(with_header(X509svidRequest {}))
        .await
        .unwrap()
        .into_inner();
    let response = next(&mut stream).await.unwrap().unwrap();
    let served: Vec<(&str, &str)> = response
        .svids
        .iter()
        .map(|s| (s.spiffe_id.as_str(), s.hint.as_str()))
        .collect();
    // Entry "a" keeps the hint; entry "b" is dropped; entry "c" has its own hint.
    assert_eq!(
        served,
        [
            ("spiffe://example.org/db", "internal"),
            ("spiffe://example.org/api", "hint-c"),
        ]
    );

    let jwts = client
        .fetch_jwtsvid(with_header(JwtsvidRequest {
            audience: vec!["svc".into()],
            spiffe_id: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    let hints: Vec<&str> = jwts.svids.iter().map(|s| s.hint.as_str()).collect();
    assert_eq!(hints, ["internal", "hint-c"]);
}

#[tokio::test]
async fn an_audience_over_the_limits_is_invalid_argument_before_attestation() {
    let world = World::new();
    let socket = Socket::start(world.identities(), WorkloadConfig::default()).await;
    let mut client = socket.workload_client().await;
    let fetch = |audience: Vec<String>| {
        with_header(JwtsvidRequest {
            audience,
            spiffe_id: String::new(),
        })
    };

    let one_mib = "a".repeat(1 << 20);
    assert_status(
        client.fetch_jwtsvid(fetch(vec![one_mib])).await,
        Code::InvalidArgument,
        "audience[0]: 1048576 bytes, at most 4096 bytes per audience",
    );
    assert_status(
        client.fetch_jwtsvid(fetch(vec!["svc".into(); 33])).await,
        Code::InvalidArgument,
        "33 audiences given, at most 32",
    );
    assert_status(
        client.fetch_jwtsvid(fetch(vec!["b".repeat(3000); 3])).await,
        Code::InvalidArgument,
        "9000 bytes in total, at most 8192",
    );
    assert!(socket.identities.callers().is_empty());

    // At the limits: served.
    let fetched = client
        .fetch_jwtsvid(fetch(vec!["c".repeat(4096), "d".repeat(4096)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.svids.len(), 2);
}
