//! The capabilities of `sdk/wit/capabilities.wit`, one module each. A plugin may call a
//! capability only if its world lists it and the operator granted it to the plugin; a
//! plugin that imports an ungranted capability is refused when it is loaded, so call only
//! what the plugin's documentation tells operators to grant.

/// Files granted to the plugin by name (node attestors).
pub mod files {
    pub use crate::bindings::node_server::sigil::plugin::granted_files::{read, sign};
}

/// X.509 chain and signature checks done by the host (node attestors).
pub mod x509 {
    pub use crate::bindings::node_server::sigil::plugin::x509::{
        Certificate, VerifiedChain, verify_chain, verify_signature,
    };
}

/// Join-token redemption (server-side node attestors).
pub mod join_tokens {
    pub use crate::bindings::node_server::sigil::plugin::join_tokens::redeem;
}

/// HTTP requests to allow-listed URLs (node attestors, bundle publishers).
pub mod http {
    pub use crate::bindings::node_server::sigil::plugin::http_client::{Request, Response, fetch};
}

/// The cluster's Kubernetes API (server-side node attestors).
pub mod kubernetes {
    pub use crate::bindings::node_server::sigil::plugin::kubernetes::{
        TokenReview, node, pod, review_token,
    };
}

/// The pod of the process under attestation (workload attestors).
pub mod pods {
    pub use crate::bindings::workload::sigil::plugin::pod_lookup::{PodMatch, pod_of};
}
