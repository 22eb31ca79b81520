//! An independent client: the rust `spiffe` crate reads the X.509 context from the socket.

use sigil_workload::WorkloadConfig;

use crate::support::*;

#[tokio::test]
async fn the_spiffe_crate_fetches_the_x509_context() {
    let world = World::new();
    let socket = Socket::start(world.identities(), WorkloadConfig::default()).await;
    let endpoint = format!("unix:{}", socket.path.display());
    let client = spiffe::WorkloadApiClient::connect_to(&endpoint)
        .await
        .expect("the spiffe crate connects");

    let context = client
        .fetch_x509_context()
        .await
        .expect("the spiffe crate accepts the X.509 context");
    let default = context.default_svid().expect("a default SVID");
    assert_eq!(default.spiffe_id().to_string(), "spiffe://example.org/db");
    assert_eq!(default.hint(), Some("hint-a"));
    let ids: Vec<String> = context
        .svids()
        .iter()
        .map(|s| s.spiffe_id().to_string())
        .collect();
    assert_eq!(ids, ["spiffe://example.org/db", "spiffe://example.org/web"]);
    let expected = socket.identities.current();
    assert_eq!(
        default.leaf().as_bytes(),
        expected.svids()[0].svid.cert_chain[0].as_slice()
    );

    let bundles = context.bundle_set();
    let own = spiffe::TrustDomain::new(OWN_TD).unwrap();
    let federated = spiffe::TrustDomain::new(FEDERATED_TD).unwrap();
    let own_bundle = bundles.get(&own).expect("own bundle");
    assert_eq!(
        own_bundle.authorities()[0].as_bytes(),
        world.own.ca.cert_der()
    );
    let federated_bundle = bundles.get(&federated).expect("federated bundle");
    assert_eq!(
        federated_bundle.authorities()[0].as_bytes(),
        world.federated.ca.cert_der()
    );

    // Its bundle-only call works too.
    let bundles = client.fetch_x509_bundles().await.expect("X.509 bundles");
    assert_eq!(bundles.len(), 2);
}

#[tokio::test]
async fn the_spiffe_crate_fetches_jwt_bundles_and_validates_through_the_socket() {
    let world = World::new();
    let socket = Socket::start(world.identities(), WorkloadConfig::default()).await;
    let endpoint = format!("unix:{}", socket.path.display());
    let client = spiffe::WorkloadApiClient::connect_to(&endpoint)
        .await
        .expect("the spiffe crate connects");

    let bundles = client
        .fetch_jwt_bundles()
        .await
        .expect("the spiffe crate accepts the JWT bundles");
    let own = spiffe::TrustDomain::new(OWN_TD).unwrap();
    let own_bundle = bundles.get(&own).expect("own JWT bundle");
    assert!(own_bundle.find_jwt_authority(world.own.jwt.kid()).is_some());

    let web = spiffe::SpiffeId::new("spiffe://example.org/web").unwrap();
    let svid = client
        .fetch_jwt_svid(["svc"], Some(&web))
        .await
        .expect("the spiffe crate accepts the JWT-SVID");
    assert_eq!(svid.spiffe_id(), &web);
    assert_eq!(svid.audience(), ["svc"]);

    // Validation by the agent, through the crate.
    let validated = client
        .validate_jwt_token("svc", svid.token())
        .await
        .expect("the agent validates its own JWT-SVID");
    assert_eq!(validated.spiffe_id(), &web);
    let refused = client.validate_jwt_token("other", svid.token()).await;
    assert!(refused.is_err(), "wrong audience must be refused");
}
