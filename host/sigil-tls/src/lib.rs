//! SPIFFE over rustls, shared by the server, the agent and their tests:
//! - one crypto provider (aws-lc-rs) for every TLS config;
//! - [`SpiffeServerVerifier`], the check an agent makes of the server's certificate (chain to
//!   the current roots, then exactly the expected SPIFFE ID in the URI SAN: SVIDs carry no DNS
//!   name);
//! - [`BundleClientVerifier`], the server's check of agents' client certificates against the
//!   trust bundle as it is at each handshake;
//! - [`peer_spiffe_id`], the caller's SPIFFE ID once the handshake verified it.
//!
//! Reading certificates (URI SANs, validity) is not TLS: it lives in `sigil_types::x509`.

mod client_verifier;
mod server_verifier;
mod signatures;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use sigil_types::SpiffeId;

pub use client_verifier::{BundleClientVerifier, TrustRoots};
pub use server_verifier::SpiffeServerVerifier;

/// rustls' aws-lc-rs provider: the one crypto stack.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The SPIFFE ID of a (verified) peer's leaf certificate: its first URI SAN, if that is one.
pub fn peer_spiffe_id(certs: Option<&[CertificateDer<'static>]>) -> Option<SpiffeId> {
    let leaf = certs?.first()?;
    sigil_types::x509::uri_sans(leaf.as_ref())
        .ok()?
        .first()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests;
