//! `Entry` and `Selector`.

use sigil_types::{RawEntry, RegistrationEntry, Selector};

use super::{ConvertError, required_spiffe_id};
use crate::spire::api::types as wire;

impl TryFrom<&wire::Selector> for Selector {
    type Error = ConvertError;

    fn try_from(s: &wire::Selector) -> Result<Self, Self::Error> {
        Selector::new(&s.r#type, &s.value).map_err(|e| ConvertError::field("selectors", e))
    }
}

impl From<&Selector> for wire::Selector {
    fn from(s: &Selector) -> Self {
        Self {
            r#type: s.selector_type().to_owned(),
            value: s.value().to_owned(),
        }
    }
}

/// Parses selectors, naming `field` in errors.
pub(crate) fn selectors(
    field: &str,
    selectors: &[wire::Selector],
) -> Result<Vec<Selector>, ConvertError> {
    selectors
        .iter()
        .map(|s| Selector::try_from(s).map_err(|e| ConvertError::field(field, reason(e))))
        .collect()
}

fn reason(e: ConvertError) -> String {
    match e {
        ConvertError::InvalidField { reason, .. } => reason,
    }
}

impl TryFrom<&wire::Entry> for RegistrationEntry {
    type Error = ConvertError;

    /// Parses the structured fields (SPIFFEIDs, selectors) here, then hands the rest to
    /// [`RegistrationEntry::from_raw`], so the API and the CLI share one set of entry rules.
    /// An empty `id` gets a random one. `revision_number` and `created_at` are copied as
    /// they are: they are output-only, and the server decides what to do with them.
    /// `additional_attributes` has no domain counterpart and is not read here: an agent
    /// keeps an entry a SPIRE server sends with it, and the admin API refuses the attributes
    /// it would otherwise lose ([`additional_attributes_unsupported`]).
    fn try_from(e: &wire::Entry) -> Result<Self, Self::Error> {
        let spiffe_id = required_spiffe_id("spiffe_id", e.spiffe_id.as_ref())?;
        let parent_id = required_spiffe_id("parent_id", e.parent_id.as_ref())?;
        let selectors: Vec<String> = selectors("selectors", &e.selectors)?
            .iter()
            .map(ToString::to_string)
            .collect();
        let raw = RawEntry {
            id: &e.id,
            spiffe_id: spiffe_id.as_str(),
            parent_id: parent_id.as_str(),
            selectors: selectors.iter().map(String::as_str).collect(),
            x509_svid_ttl: e.x509_svid_ttl,
            jwt_svid_ttl: e.jwt_svid_ttl,
            federates_with: e.federates_with.iter().map(String::as_str).collect(),
            admin: e.admin,
            downstream: e.downstream,
            dns_names: e.dns_names.iter().map(String::as_str).collect(),
            hint: &e.hint,
            store_svid: e.store_svid,
            expires_at: e.expires_at,
        };
        let mut entry = RegistrationEntry::from_raw(raw)
            .map_err(|err| ConvertError::field(err.field_name(), err))?;
        entry.revision_number = e.revision_number;
        entry.created_at = e.created_at;
        Ok(entry)
    }
}

impl From<&RegistrationEntry> for wire::Entry {
    fn from(e: &RegistrationEntry) -> Self {
        Self {
            id: e.id.as_str().to_owned(),
            spiffe_id: Some((&e.spiffe_id).into()),
            parent_id: Some((&e.parent_id).into()),
            selectors: e.selectors.iter().map(Into::into).collect(),
            x509_svid_ttl: saturating_i32(e.x509_svid_ttl),
            federates_with: e
                .federates_with
                .iter()
                .map(|td| td.name().to_owned())
                .collect(),
            admin: e.admin,
            downstream: e.downstream,
            expires_at: e.expires_at.unwrap_or(0),
            dns_names: e.dns_names.clone(),
            revision_number: e.revision_number,
            store_svid: e.store_svid,
            jwt_svid_ttl: saturating_i32(e.jwt_svid_ttl),
            hint: e.hint.clone(),
            created_at: e.created_at,
            additional_attributes: None,
        }
    }
}

/// The first of `entry`'s additional attributes that is set, as an error: sigil stores
/// none of them, so an API that would persist the entry refuses it rather than drop the
/// setting. An absent or all-default `additional_attributes` is fine.
pub fn additional_attributes_unsupported(entry: &wire::Entry) -> Result<(), ConvertError> {
    let Some(attributes) = &entry.additional_attributes else {
        return Ok(());
    };
    for (name, set) in [
        (
            "disable_x509_svid_prefetch",
            attributes.disable_x509_svid_prefetch,
        ),
        ("jwt_svid_include_jti", attributes.jwt_svid_include_jti),
    ] {
        if set {
            return Err(ConvertError::field(
                format!("additional_attributes.{name}"),
                "is not supported by sigil",
            ));
        }
    }
    Ok(())
}

/// TTLs are `u32` in the domain and `int32` on the wire; anything past `i32::MAX` seconds
/// (68 years) is clamped rather than wrapped negative.
fn saturating_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}
