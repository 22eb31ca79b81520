//! Compiles `proto/` into Rust without a system `protoc`: protox (a protobuf compiler in
//! Rust) parses the files into a `FileDescriptorSet`, and tonic-prost-build generates the
//! prost messages plus tonic clients and servers from that set.

use std::error::Error;

/// Every file with a service or message the crate exposes; imports are found through
/// `proto/` itself (and protox's built-in copies of the `google/protobuf` well-known types).
const PROTOS: &[&str] = &[
    "spire/api/types/agent.proto",
    "spire/api/types/attestation.proto",
    "spire/api/types/bundle.proto",
    "spire/api/types/entry.proto",
    "spire/api/types/federateswith.proto",
    "spire/api/types/federationrelationship.proto",
    "spire/api/types/jointoken.proto",
    "spire/api/types/jwtsvid.proto",
    "spire/api/types/selector.proto",
    "spire/api/types/spiffeid.proto",
    "spire/api/types/status.proto",
    "spire/api/types/witsvid.proto",
    "spire/api/types/x509svid.proto",
    "spire/api/server/agent/v1/agent.proto",
    "spire/api/server/bundle/v1/bundle.proto",
    "spire/api/server/entry/v1/entry.proto",
    "spire/api/server/svid/v1/svid.proto",
    "spire/api/server/trustdomain/v1/trustdomain.proto",
    "spire/api/agent/delegatedidentity/v1/delegatedidentity.proto",
    "spiffe/workload/workload.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Messages that carry a private key get a hand-written, redacting `Debug`
        // (src/redact.rs) instead of the derived one.
        .skip_debug([
            ".X509SVID",
            ".WITSVID",
            ".spire.api.agent.delegatedidentity.v1.X509SVIDWithKey",
        ])
        .compile_fds(descriptors)?;
    Ok(())
}
