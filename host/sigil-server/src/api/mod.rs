//! SPIRE's server API as served on the admin socket (and, to admin callers, on the TCP API):
//! one module per service, and the one place where errors become gRPC statuses.

pub(crate) mod agent;
pub(crate) mod bundle;
pub(crate) mod entry;
mod entry_rules;
pub(crate) mod svid;
pub(crate) mod trustdomain;

use sigil_proto::spire::api::types as wire;
use sigil_store::PageRequest;
use sigil_types::SpiffeId;
use tonic::{Code, Status};

/// A datastore error as the status a caller sees. Never carries SQL or connection details
/// (the store's errors do not either); backend failures say only that the datastore failed.
pub(crate) fn store_status(error: &sigil_store::Error) -> Status {
    use sigil_store::Error;
    match error {
        Error::NotFound { .. } => Status::not_found(error.to_string()),
        Error::AlreadyExists { .. } => Status::already_exists(error.to_string()),
        Error::InvalidArgument { .. } => Status::invalid_argument(error.to_string()),
        Error::JoinTokenExpired { .. } => Status::permission_denied(error.to_string()),
        Error::BundleInUse { .. } => Status::failed_precondition(error.to_string()),
        Error::SchemaTooNew { .. } | Error::Backend(_) => {
            tracing::error!(error = %error, "datastore failure");
            Status::internal("datastore failure; see the server log")
        }
        _ => Status::internal(error.to_string()),
    }
}

/// A per-item result status of a batch call (`spire.api.types.Status`).
pub(crate) fn item_status(status: &Status) -> wire::Status {
    wire::Status {
        code: status.code() as i32,
        message: status.message().to_owned(),
    }
}

/// The OK per-item status.
pub(crate) fn ok_status() -> wire::Status {
    wire::Status {
        code: Code::Ok as i32,
        message: String::new(),
    }
}

/// Largest page any listing returns; also the page size when the caller leaves it to us.
pub(crate) const MAX_PAGE: u32 = 1000;

/// A listing's `page_size` and `page_token` as a datastore page request.
pub(crate) fn page_request(page_size: i32, page_token: String) -> Result<PageRequest, Status> {
    let page_size = match u32::try_from(page_size) {
        Ok(0) => MAX_PAGE,
        Ok(size) => size.min(MAX_PAGE),
        Err(_) => return Err(Status::invalid_argument("page_size must not be negative")),
    };
    Ok(PageRequest {
        page_size,
        token: (!page_token.is_empty()).then_some(page_token),
    })
}

/// The answer to every WIT-SVID call (`MintWITSVID`, `BatchNewWITSVID`,
/// `PublishWITAuthority`): sigil issues no WIT-SVIDs, which is also how SPIRE answers while
/// its `wit-svid` feature flag is off (the default).
pub(crate) fn wit_unsupported() -> Status {
    Status::unimplemented("WIT-SVIDs are not supported")
}

/// A required SPIFFE ID field of a request.
pub(crate) fn spiffe_id(field: &str, id: Option<&wire::Spiffeid>) -> Result<SpiffeId, Status> {
    let id = id.ok_or_else(|| Status::invalid_argument(format!("{field} is required")))?;
    SpiffeId::try_from(id).map_err(|e| Status::invalid_argument(format!("{field}: {e}")))
}
