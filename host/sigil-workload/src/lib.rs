//! The agent's workload socket: the SPIFFE Workload API and Envoy's Secret Discovery Service
//! v3 on one Unix socket, plus `grpc.health.v1`.
//!
//! This crate serves; it does not attest and does not talk to the server. The agent
//! implements [`WorkloadIdentities`]: given a caller's peer credentials (`SO_PEERCRED`) it
//! says who the caller is and hands over a [`tokio::sync::watch`] of the caller's
//! [`WorkloadUpdate`]s (X509-SVIDs in entry-ID order, the own bundle, federated bundles) and
//! mints JWT-SVIDs on request. [`serve`] puts both APIs on the socket; every stream pushes
//! when the watch changes.
//!
//! Architecture invariant: private keys leave this crate only inside responses to the
//! attested caller they were issued for; they are never logged.

mod config;
mod error;
mod identities;
mod jwt;
mod sds;
mod serve;
mod stream;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
mod workload_api;

pub use config::WorkloadConfig;
pub use error::ServeError;
pub use identities::{Caller, IdentityError, WorkloadIdentities, WorkloadSvid, WorkloadUpdate};
pub use serve::{bind, caller_of, serve};
pub use stream::{ResponseStream, push_on_change};
