//! SPIRE's server API as served on the admin socket (and, to admin callers, on the TCP API):
//! one module per service. Errors become gRPC statuses in `crate::api_error`.

pub(crate) mod agent;
pub(crate) mod bundle;
pub(crate) mod entry;
mod entry_rules;
pub(crate) mod svid;
pub(crate) mod trustdomain;

use sigil_proto::spire::api::types as wire;
use sigil_store::PageRequest;
use sigil_types::SpiffeId;

use crate::api_error::ApiError;

/// Largest page any listing returns; also the page size when the caller leaves it to us.
pub(crate) const MAX_PAGE: u32 = 1000;

/// A listing's `page_size` and `page_token` as a datastore page request.
pub(crate) fn page_request(page_size: i32, page_token: String) -> Result<PageRequest, ApiError> {
    let page_size = match u32::try_from(page_size) {
        Ok(0) => MAX_PAGE,
        Ok(size) => size.min(MAX_PAGE),
        Err(_) => return Err(ApiError::invalid_argument("page_size must not be negative")),
    };
    Ok(PageRequest {
        page_size,
        token: (!page_token.is_empty()).then_some(page_token),
    })
}

/// A required SPIFFE ID field of a request.
pub(crate) fn spiffe_id(field: &str, id: Option<&wire::Spiffeid>) -> Result<SpiffeId, ApiError> {
    let id = id.ok_or_else(|| ApiError::invalid_argument(format!("{field} is required")))?;
    SpiffeId::try_from(id).map_err(|e| ApiError::invalid_argument(format!("{field}: {e}")))
}
