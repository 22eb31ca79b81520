//! The flags of the `entry` commands and what they build: the entry for create/update
//! (with the input mask of the fields given) and the show/count filter.

use sigil_proto::spire::api::server::entry::v1 as api;
use sigil_proto::spire::api::types as wire;

use super::args;
use crate::error::CliError;
use crate::flags::{Flags, Kind, Spec};

/// The path of the server's own ID, the parent of node entries (`-node`).
const SERVER_ID_PATH: &str = "/spire/server";

const ENTRY_ID: Spec = Spec::new("entryID", Kind::Str, "The registration entry ID");
const SPIFFE_ID: Spec = Spec::new(
    "spiffeID",
    Kind::Str,
    "The SPIFFE ID that this record represents",
);
const PARENT_ID: Spec = Spec::new(
    "parentID",
    Kind::Str,
    "The SPIFFE ID of this record's parent",
);
const SELECTOR: Spec = Spec::new(
    "selector",
    Kind::Multi,
    "A colon-delimited type:value selector. Can be used more than once",
);
const FEDERATES_WITH: Spec = Spec::new(
    "federatesWith",
    Kind::Multi,
    "SPIFFE ID of a trust domain to federate with. Can be used more than once",
);
const DOWNSTREAM: Spec = Spec::new(
    "downstream",
    Kind::Bool,
    "A boolean value that, when set, indicates that the entry describes a downstream SPIRE server",
);
const HINT: Spec = Spec::new(
    "hint",
    Kind::Str,
    "The entry hint, used to disambiguate entries with the same SPIFFE ID",
);

/// Fields written by `entry create` and `entry update`.
const FIELDS: [Spec; 14] = [
    ENTRY_ID,
    SPIFFE_ID,
    PARENT_ID,
    SELECTOR,
    FEDERATES_WITH,
    DOWNSTREAM,
    HINT,
    Spec::new(
        "node",
        Kind::Bool,
        "If set, this entry will be applied to matching nodes rather than workloads",
    ),
    Spec::new(
        "admin",
        Kind::Bool,
        "If set, the SPIFFE ID in this entry will be granted access to the Server APIs",
    ),
    Spec::new(
        "storeSVID",
        Kind::Bool,
        "A boolean value that, when set, indicates that the resulting issued SVID from this entry must be stored through an SVIDStore plugin",
    ),
    Spec::new(
        "dns",
        Kind::Multi,
        "A DNS name that will be included in SVIDs issued based on this entry, where appropriate. Can be used more than once",
    ),
    Spec::new(
        "x509SVIDTTL",
        Kind::Int,
        "The lifetime, in seconds, for x509-SVIDs issued based on this registration entry",
    ),
    Spec::new(
        "jwtSVIDTTL",
        Kind::Int,
        "The lifetime, in seconds, for JWT-SVIDs issued based on this registration entry",
    ),
    Spec::new(
        "entryExpiry",
        Kind::Int,
        "An expiry, from epoch in seconds, for the resulting registration entry to be pruned",
    ),
];

const DATA: Spec = Spec::new(
    "data",
    Kind::Str,
    "Path to a file containing registration JSON (optional). If set to '-', read the JSON from stdin.",
);
const MATCH_SELECTORS: Spec = Spec::new(
    "matchSelectorsOn",
    Kind::Str,
    "The match mode used when filtering by selectors. Options: exact, any, superset and subset",
);
const MATCH_FEDERATES: Spec = Spec::new(
    "matchFederatesWithOn",
    Kind::Str,
    "The match mode used when filtering by federates with. Options: exact, any, superset and subset",
);

pub(crate) const CREATE: &[Spec] = &[
    FIELDS[0], FIELDS[1], FIELDS[2], FIELDS[3], FIELDS[4], FIELDS[5], FIELDS[6], FIELDS[7],
    FIELDS[8], FIELDS[9], FIELDS[10], FIELDS[11], FIELDS[12], FIELDS[13], DATA,
];
pub(crate) const UPDATE: &[Spec] = CREATE;
pub(crate) const SHOW: &[Spec] = &[
    ENTRY_ID,
    SPIFFE_ID,
    PARENT_ID,
    SELECTOR,
    FEDERATES_WITH,
    DOWNSTREAM,
    HINT,
    MATCH_SELECTORS,
    MATCH_FEDERATES,
];
pub(crate) const COUNT: &[Spec] = &[
    SPIFFE_ID,
    PARENT_ID,
    SELECTOR,
    FEDERATES_WITH,
    DOWNSTREAM,
    HINT,
    MATCH_SELECTORS,
    MATCH_FEDERATES,
];
pub(crate) const DELETE: &[Spec] = &[ENTRY_ID];

/// The show/count filter from flags.
pub(crate) fn list_filter(flags: &Flags) -> Result<api::list_entries_request::Filter, CliError> {
    let mut filter = api::list_entries_request::Filter::default();
    if let Some(id) = flags.str("parentID") {
        filter.by_parent_id = Some(args::spiffe_id_for("parent ID", id)?);
    }
    if let Some(id) = flags.str("spiffeID") {
        filter.by_spiffe_id = Some(args::spiffe_id_for("SPIFFE ID", id)?);
    }
    let selectors = flags.all("selector");
    if !selectors.is_empty() {
        let r#match = args::selector_match(flags.str_or("matchSelectorsOn", "superset"))?;
        let selectors = args::selectors(&selectors)
            .map_err(|e| CliError::invalid(format!("error parsing selectors: {e}")))?;
        filter.by_selectors = Some(wire::SelectorMatch { selectors, r#match });
    }
    let federates_with = flags.all("federatesWith");
    if !federates_with.is_empty() {
        let r#match = args::federates_with_match(flags.str_or("matchFederatesWithOn", "superset"))?;
        filter.by_federates_with = Some(wire::FederatesWithMatch {
            trust_domains: federates_with,
            r#match,
        });
    }
    if let Some(hint) = flags.str("hint") {
        filter.by_hint = Some(hint.to_owned());
    }
    if flags.is_set("downstream") {
        filter.by_downstream = Some(flags.bool("downstream"));
    }
    Ok(filter)
}

/// Builds one entry from flags. For create, SPIRE's checks apply and every field is sent;
/// for update, only the flags given are set and named in the returned mask.
pub(crate) fn entry_from_flags(
    f: &Flags,
    update: bool,
) -> Result<(wire::Entry, wire::EntryMask), CliError> {
    let node = f.bool("node");
    if update && f.str("entryID").is_none() {
        return Err(CliError::invalid("an entry ID is required"));
    }
    if !update {
        if f.all("selector").is_empty() {
            return Err(CliError::invalid("at least one selector is required"));
        }
        if node && f.is_set("federatesWith") {
            return Err(CliError::invalid("node entries can not federate"));
        }
        if !f.is_set("parentID") && !node {
            return Err(CliError::invalid(
                "a parent ID is required if the node flag is not set",
            ));
        }
        if !f.is_set("spiffeID") {
            return Err(CliError::invalid("a SPIFFE ID is required"));
        }
    }
    let x509_svid_ttl = args::ttl(f.int("x509SVIDTTL", 0), "x509-SVID TTL")?;
    let jwt_svid_ttl = args::ttl(f.int("jwtSVIDTTL", 0), "JWT-SVID TTL")?;
    let mut mask = wire::EntryMask::default();
    let mut e = wire::Entry {
        id: f.str_or("entryID", "").to_owned(),
        x509_svid_ttl,
        jwt_svid_ttl,
        federates_with: f.all("federatesWith"),
        admin: f.bool("admin"),
        downstream: f.bool("downstream"),
        expires_at: f.int("entryExpiry", 0),
        dns_names: f.all("dns"),
        store_svid: f.bool("storeSVID"),
        hint: f.str_or("hint", "").to_owned(),
        selectors: args::selectors(&f.all("selector"))?,
        ..Default::default()
    };
    if let Some(id) = f.str("spiffeID") {
        e.spiffe_id = Some(args::spiffe_id(id)?);
    }
    if node {
        let td = e
            .spiffe_id
            .as_ref()
            .map(|id| id.trust_domain.clone())
            .ok_or_else(|| {
                CliError::invalid("the -node flag needs -spiffeID to name the trust domain")
            })?;
        e.parent_id = Some(wire::Spiffeid {
            trust_domain: td,
            path: SERVER_ID_PATH.to_owned(),
        });
    } else if let Some(id) = f.str("parentID") {
        e.parent_id = Some(args::spiffe_id(id)?);
    }
    mask.spiffe_id = f.is_set("spiffeID");
    mask.parent_id = f.is_set("parentID") || node;
    mask.selectors = f.is_set("selector");
    mask.x509_svid_ttl = f.is_set("x509SVIDTTL");
    mask.jwt_svid_ttl = f.is_set("jwtSVIDTTL");
    mask.federates_with = f.is_set("federatesWith");
    mask.admin = f.is_set("admin");
    mask.downstream = f.is_set("downstream");
    mask.expires_at = f.is_set("entryExpiry");
    mask.dns_names = f.is_set("dns");
    mask.store_svid = f.is_set("storeSVID");
    mask.hint = f.is_set("hint");
    Ok((e, mask))
}
