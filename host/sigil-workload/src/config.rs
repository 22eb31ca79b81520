//! Settings of the workload socket, with SPIRE's defaults (the agent config's `sds` block and
//! `allow_unauthenticated_verifiers`).

/// How the socket answers. `Default` gives SPIRE's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkloadConfig {
    /// SDS name of the workload's first X509-SVID in entry-ID order. SPIRE: `default`.
    pub default_svid_name: String,
    /// SDS name of the own trust domain's bundle. SPIRE: `ROOTCA`.
    pub default_bundle_name: String,
    /// SDS name of the own and every federated bundle together, served as one SPIFFE
    /// validator config. SPIRE: `ALL`.
    pub default_all_bundles_name: String,
    /// Serve bundles to Envoy as a plain `trusted_ca` instead of Envoy's SPIFFE certificate
    /// validator (`envoy.tls.cert_validator.spiffe`), whatever the Envoy version. An Envoy
    /// can override it per node with the node metadata key `disable_spiffe_cert_validation`.
    pub disable_spiffe_cert_validation: bool,
    /// Let callers without an identity fetch bundles and validate JWT-SVIDs (SPIRE's
    /// `allow_unauthenticated_verifiers`). Off: such callers get "no identity issued".
    pub allow_unauthenticated_verifiers: bool,
    /// Connection bounds and the idle timeout of the socket.
    pub limits: sigil_listen::Limits,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            default_svid_name: "default".into(),
            default_bundle_name: "ROOTCA".into(),
            default_all_bundles_name: "ALL".into(),
            disable_spiffe_cert_validation: false,
            allow_unauthenticated_verifiers: false,
            limits: sigil_listen::Limits::default(),
        }
    }
}
