//! sigil's certificate authority: private keys, the X.509 CA, X509-SVID and JWT-SVID minting,
//! and the A/B rotation of CA slots.
//!
//! - [`KeyManager`] generates and keeps keys by ID ([`MemoryKeyManager`], [`DiskKeyManager`]).
//! - [`X509Ca`] is a self-signed root or an intermediate under an [`UpstreamCa`]; it mints
//!   X509-SVIDs from CSRs exactly per the SPIFFE X509-SVID specification.
//! - [`JwtSigner`] mints JWT-SVIDs; [`validate_jwt_svid`] checks one against a bundle.
//! - [`rotation`] decides, without I/O, when to prepare and activate CA slots; [`CaManager`]
//!   carries that out against a [`KeyManager`] and a [`CaStorage`]; [`run_rotation`] drives it.
//!
//! Architecture invariants: this crate does no network I/O (the only file I/O is the disk key
//! manager and reading upstream CA files); key material never reaches `Debug` output or logs;
//! the only crypto stack is aws-lc-rs (directly, and under rcgen and x509-parser).

mod driver;
mod error;
mod jwt;
mod keys;
mod manager;
pub mod rotation;
mod storage;
#[cfg(test)]
mod test_support;
mod x509;

pub use driver::{DEFAULT_ROTATION_INTERVAL, run_rotation};
pub use error::CaError;
pub use jwt::{
    DEFAULT_JWT_SVID_TTL, JwtError, JwtSigner, ValidatedJwtSvid, generate_kid, validate_jwt_svid,
};
pub use keys::{DiskKeyManager, Key, KeyError, KeyManager, MemoryKeyManager};
pub use manager::{ActiveCa, CaConfig, CaManager, CaManagerError, DEFAULT_CA_TTL};
pub use sigil_types::KeyType;
pub use storage::{CaStorage, MemoryCaStorage, StorageError};
pub use x509::{
    BACKDATE_SECONDS, CsrKeyPolicy, DEFAULT_X509_SVID_TTL, IssuedChain, Subject, UpstreamCa,
    UpstreamDiskConfig, X509Ca, X509SvidParams,
};
