//! What the entry service checks beyond an entry's own rules: SPIRE's rules for the IDs an
//! entry may have, and how `BatchUpdateEntry` reads a request entry under an input mask.

use sigil_proto::spire::api::types as wire;
use sigil_store::EntryMask;
use sigil_types::{RegistrationEntry, SpiffeId, TrustDomain};

use crate::api_error::ApiError;

/// SPIRE's reserved path: agents (`/spire/agent/…`) and servers (`/spire/server`) live there.
const RESERVED: &str = "/spire";

/// SPIRE's rules for the IDs the mask writes. The SPIFFE ID must be a workload ID of this
/// trust domain: in it, with a path, and outside the reserved `/spire` namespace (so no entry
/// can hand out an agent's or the server's identity). The parent ID must be in this trust
/// domain with a path; agents' IDs, under `/spire/agent/`, are ordinary parents.
pub(crate) fn check_ids(
    trust_domain: &TrustDomain,
    entry: &RegistrationEntry,
    mask: &EntryMask,
) -> Result<(), ApiError> {
    if mask.spiffe_id {
        let id = &entry.spiffe_id;
        member(trust_domain, "spiffe_id", id)?;
        if is_reserved(id.path()) {
            return Err(ApiError::invalid_argument(format!(
                "spiffe_id: {id} is not a workload in trust domain {trust_domain}: its path is \
                 in the reserved namespace {RESERVED}/, which belongs to agents and servers"
            )));
        }
    }
    if mask.parent_id {
        member(trust_domain, "parent_id", &entry.parent_id)?;
    }
    Ok(())
}

/// A join token's node alias: the ID SPIRE's `CreateJoinToken` accepts as `agent_id` is a
/// workload ID, by the same rule as an entry's SPIFFE ID.
pub(crate) fn check_workload_id(
    trust_domain: &TrustDomain,
    field: &str,
    id: &SpiffeId,
) -> Result<(), ApiError> {
    member(trust_domain, field, id)?;
    if is_reserved(id.path()) {
        return Err(ApiError::invalid_argument(format!(
            "{field}: {id} is not a workload in trust domain {trust_domain}: its path is in \
             the reserved namespace {RESERVED}/"
        )));
    }
    Ok(())
}

fn member(trust_domain: &TrustDomain, field: &str, id: &SpiffeId) -> Result<(), ApiError> {
    if !id.is_member_of(trust_domain) {
        return Err(ApiError::invalid_argument(format!(
            "{field}: {id} is not in trust domain {trust_domain}"
        )));
    }
    if id.path().is_empty() {
        return Err(ApiError::invalid_argument(format!(
            "{field}: {id} is not a member of trust domain {trust_domain}: the path is empty"
        )));
    }
    Ok(())
}

fn is_reserved(path: &str) -> bool {
    path == RESERVED
        || path
            .strip_prefix(RESERVED)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The entry a masked update would store: `stored` with the fields of `mask` taken from
/// `request`. Only those fields of the request are read, and the whole result is checked as
/// an entry, so a partial request entry is fine and the merged one must still be valid.
pub(crate) fn merged(
    stored: &RegistrationEntry,
    request: &wire::Entry,
    mask: &EntryMask,
) -> Result<RegistrationEntry, ApiError> {
    let mut out = wire::Entry::from(stored);
    if mask.spiffe_id {
        out.spiffe_id.clone_from(&request.spiffe_id);
    }
    if mask.parent_id {
        out.parent_id.clone_from(&request.parent_id);
    }
    if mask.selectors {
        out.selectors.clone_from(&request.selectors);
    }
    if mask.x509_svid_ttl {
        out.x509_svid_ttl = request.x509_svid_ttl;
    }
    if mask.jwt_svid_ttl {
        out.jwt_svid_ttl = request.jwt_svid_ttl;
    }
    if mask.federates_with {
        out.federates_with.clone_from(&request.federates_with);
    }
    if mask.admin {
        out.admin = request.admin;
    }
    if mask.downstream {
        out.downstream = request.downstream;
    }
    if mask.dns_names {
        out.dns_names.clone_from(&request.dns_names);
    }
    if mask.hint {
        out.hint.clone_from(&request.hint);
    }
    if mask.store_svid {
        out.store_svid = request.store_svid;
    }
    if mask.expires_at {
        out.expires_at = request.expires_at;
    }
    RegistrationEntry::try_from(&out).map_err(|e| ApiError::invalid_argument(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_is_the_spire_namespace_only() {
        for path in [
            "/spire",
            "/spire/agent/x509pop/abc",
            "/spire/server",
            "/spire/",
        ] {
            assert!(is_reserved(path), "{path}");
        }
        for path in ["", "/spirez", "/spire-agent", "/web/spire", "/workload"] {
            assert!(!is_reserved(path), "{path}");
        }
    }
}
