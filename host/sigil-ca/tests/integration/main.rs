//! sigil-ca's integration tests: one binary. SVIDs checked by `openssl verify`, the upstream
//! disk CA, and CA rotation on a paused clock with restarts.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions: a failed setup step must fail the test"
)]

mod openssl;
mod rotation;
mod support;
mod upstream;
