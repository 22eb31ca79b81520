//! The integration tests of sigil-workload: a real Unix socket in a tempdir, served by
//! `sigil_workload::serve` over test-support identities, called by real gRPC clients (the
//! generated Workload API client, the rust `spiffe` crate, an envoy-types SDS client and the
//! gRPC health client).

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions: a failed setup step must fail the test"
)]

mod api;
mod sds;
mod socket;
mod spiffe_client;
mod support;
