//! gRPC definitions for sigil, generated at build time from the `.proto` files in `proto/`.
//!
//! The modules mirror the protobuf packages, so a SPIRE type `spire.api.types.Entry` is
//! [`spire::api::types::Entry`] and the service `spire.api.server.entry.v1.Entry` is served
//! by [`spire::api::server::entry::v1::entry_server::EntryServer`]. Package names, message
//! names, field numbers and method names are SPIRE's, so SPIRE's own clients and agents can
//! talk to sigil and the other way round.
//!
//! The SPIFFE Workload API has no protobuf package; it lives in [`workload`] and its
//! service path is `/SpiffeWorkloadAPI/<method>`.
//!
//! Generated types are wire DTOs. [`convert`] turns them into `sigil-types` domain values
//! (parse, don't validate) and back.

pub mod convert;
pub mod denied;
mod redact;
pub mod retry;

/// Generated code for the `spire.*` protobuf packages.
pub mod spire {
    /// `spire.api.*`.
    pub mod api {
        /// `spire.api.types`: messages shared by every SPIRE API.
        pub mod types {
            include!(concat!(env!("OUT_DIR"), "/spire.api.types.rs"));
        }

        /// Server APIs: the admin socket and the agent-facing TCP port.
        pub mod server {
            /// `spire.api.server.agent.*`.
            pub mod agent {
                /// `spire.api.server.agent.v1`: agents, node attestation, join tokens.
                #[expect(
                    clippy::allow_attributes,
                    reason = "tonic-build puts #[allow] on its generated clients and servers"
                )]
                pub mod v1 {
                    include!(concat!(env!("OUT_DIR"), "/spire.api.server.agent.v1.rs"));
                }
            }

            /// `spire.api.server.bundle.*`.
            pub mod bundle {
                /// `spire.api.server.bundle.v1`: own and federated bundles.
                #[expect(
                    clippy::allow_attributes,
                    reason = "tonic-build puts #[allow] on its generated clients and servers"
                )]
                pub mod v1 {
                    include!(concat!(env!("OUT_DIR"), "/spire.api.server.bundle.v1.rs"));
                }
            }

            /// `spire.api.server.entry.*`.
            pub mod entry {
                /// `spire.api.server.entry.v1`: registration entries and authorized-entry sync.
                #[expect(
                    clippy::allow_attributes,
                    reason = "tonic-build puts #[allow] on its generated clients and servers"
                )]
                pub mod v1 {
                    include!(concat!(env!("OUT_DIR"), "/spire.api.server.entry.v1.rs"));
                }
            }

            /// `spire.api.server.svid.*`.
            pub mod svid {
                /// `spire.api.server.svid.v1`: X509-SVID and JWT-SVID signing.
                #[expect(
                    clippy::allow_attributes,
                    reason = "tonic-build puts #[allow] on its generated clients and servers"
                )]
                pub mod v1 {
                    include!(concat!(env!("OUT_DIR"), "/spire.api.server.svid.v1.rs"));
                }
            }

            /// `spire.api.server.trustdomain.*`.
            pub mod trustdomain {
                /// `spire.api.server.trustdomain.v1`: federation relationships.
                #[expect(
                    clippy::allow_attributes,
                    reason = "tonic-build puts #[allow] on its generated clients and servers"
                )]
                pub mod v1 {
                    include!(concat!(
                        env!("OUT_DIR"),
                        "/spire.api.server.trustdomain.v1.rs"
                    ));
                }
            }
        }

        /// Agent APIs served on the agent's admin socket.
        pub mod agent {
            /// `spire.api.agent.delegatedidentity.*`.
            pub mod delegatedidentity {
                /// `spire.api.agent.delegatedidentity.v1`: the Delegated Identity API.
                #[expect(
                    clippy::allow_attributes,
                    reason = "tonic-build puts #[allow] on its generated clients and servers"
                )]
                pub mod v1 {
                    include!(concat!(
                        env!("OUT_DIR"),
                        "/spire.api.agent.delegatedidentity.v1.rs"
                    ));
                }
            }
        }
    }
}

/// The SPIFFE Workload API (`workload.proto`, no protobuf package): service
/// `SpiffeWorkloadAPI`, served by [`workload::spiffe_workload_api_server`].
#[expect(
    clippy::allow_attributes,
    reason = "tonic-build puts #[allow] on its generated clients and servers"
)]
pub mod workload {
    include!(concat!(env!("OUT_DIR"), "/_.rs"));
}
