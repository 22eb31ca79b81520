//! Federation relationships. A relationship's bundle lives in `bundles`, as in SPIRE: setting
//! one through a relationship sets the trust domain's bundle.

use sigil_types::{BundleEndpointProfile, FederationRelationship, SpiffeId, TrustDomain};

use super::entry_query::{into_page, push_paging};
use super::value::{Sql, Value};
use super::{Db, Lock, Row, bundles, query_opt};
use crate::{Error, FederationRelationshipMask, ObjectKind, Page, PageRequest, Result};

const COLUMNS: &str = "f.trust_domain, f.bundle_endpoint_url, f.profile, f.endpoint_spiffe_id";

fn validate(relationship: &FederationRelationship) -> Result<()> {
    if !relationship.bundle_endpoint_url.starts_with("https://") {
        return Err(Error::invalid(
            "bundle_endpoint_url",
            "must be an https:// URL",
        ));
    }
    if let Some(bundle) = &relationship.trust_domain_bundle {
        if bundle.trust_domain != relationship.trust_domain {
            return Err(Error::invalid(
                "trust_domain_bundle",
                format!(
                    "is the bundle of {}, not of {}",
                    bundle.trust_domain, relationship.trust_domain
                ),
            ));
        }
        bundle
            .validate()
            .map_err(|e| Error::invalid("trust_domain_bundle", e))?;
    }
    Ok(())
}

fn profile_values(profile: &BundleEndpointProfile) -> (Value, Value) {
    match profile {
        BundleEndpointProfile::HttpsWeb => ("https_web".into(), Value::Null),
        BundleEndpointProfile::HttpsSpiffe { endpoint_spiffe_id } => {
            ("https_spiffe".into(), endpoint_spiffe_id.as_str().into())
        }
    }
}

fn from_row(row: &Row) -> Result<FederationRelationship> {
    let td = row.text(0)?;
    let what = || format!("federation relationship with {td}");
    let trust_domain = TrustDomain::new(td).map_err(|e| Error::corrupt(what(), e))?;
    let profile = match (row.text(2)?, row.opt_text(3)?) {
        ("https_web", _) => BundleEndpointProfile::HttpsWeb,
        ("https_spiffe", Some(id)) => BundleEndpointProfile::HttpsSpiffe {
            endpoint_spiffe_id: id
                .parse::<SpiffeId>()
                .map_err(|e| Error::corrupt(what(), e))?,
        },
        (other, _) => return Err(Error::corrupt(what(), format!("profile {other:?}"))),
    };
    Ok(FederationRelationship {
        trust_domain,
        bundle_endpoint_url: row.text(1)?.to_owned(),
        profile,
        trust_domain_bundle: None,
    })
}

/// Attaches the stored bundle of the relationship's trust domain.
async fn with_bundle(
    db: &mut dyn Db,
    mut relationship: FederationRelationship,
) -> Result<FederationRelationship> {
    relationship.trust_domain_bundle = bundles::fetch(db, &relationship.trust_domain).await?;
    Ok(relationship)
}

/// Stores a new relationship (and its bundle, when set).
pub(crate) async fn create(
    db: &mut dyn Db,
    relationship: FederationRelationship,
) -> Result<FederationRelationship> {
    validate(&relationship)?;
    db.lock(Lock::Bundles).await?;
    let (profile, endpoint_id) = profile_values(&relationship.profile);
    let rows = db
        .query(
            "INSERT INTO federation_relationships (trust_domain, bundle_endpoint_url, profile, \
             endpoint_spiffe_id) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING \
             RETURNING trust_domain",
            &[
                relationship.trust_domain.name().into(),
                relationship.bundle_endpoint_url.as_str().into(),
                profile,
                endpoint_id,
            ],
        )
        .await?;
    if rows.is_empty() {
        return Err(Error::already_exists(
            ObjectKind::FederationRelationship,
            &relationship.trust_domain,
        ));
    }
    if let Some(bundle) = &relationship.trust_domain_bundle {
        bundles::set(db, bundle.clone()).await?;
    }
    Ok(relationship)
}

/// The relationship with `trust_domain`.
pub(crate) async fn fetch(
    db: &mut dyn Db,
    trust_domain: &TrustDomain,
) -> Result<Option<FederationRelationship>> {
    let row = query_opt(
        db,
        &format!("SELECT {COLUMNS} FROM federation_relationships f WHERE f.trust_domain = $1"),
        &[trust_domain.name().into()],
    )
    .await?;
    match row {
        Some(row) => Ok(Some(with_bundle(db, from_row(&row)?).await?)),
        None => Ok(None),
    }
}

/// A page of relationships.
pub(crate) async fn list(
    db: &mut dyn Db,
    page: Option<&PageRequest>,
) -> Result<Page<FederationRelationship>> {
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM federation_relationships f WHERE 1 = 1"
    ));
    push_paging(&mut sql, "f.trust_domain", page)?;
    let rows = db.query(&sql.text, &sql.params).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        out.push(with_bundle(db, from_row(row)?).await?);
    }
    Ok(into_page(out, page, |r: &FederationRelationship| {
        r.trust_domain.to_string()
    }))
}

/// Applies `mask` to the stored relationship.
pub(crate) async fn update(
    db: &mut dyn Db,
    given: FederationRelationship,
    mask: FederationRelationshipMask,
) -> Result<FederationRelationship> {
    db.lock(Lock::Bundles).await?;
    let mut relationship = fetch(db, &given.trust_domain)
        .await?
        .ok_or_else(|| Error::not_found(ObjectKind::FederationRelationship, &given.trust_domain))?;
    if mask.bundle_endpoint_url {
        relationship.bundle_endpoint_url = given.bundle_endpoint_url;
    }
    if mask.profile {
        relationship.profile = given.profile;
    }
    let new_bundle = if mask.trust_domain_bundle {
        given.trust_domain_bundle
    } else {
        None
    };
    if new_bundle.is_some() {
        relationship.trust_domain_bundle = new_bundle.clone();
    }
    validate(&relationship)?;
    let (profile, endpoint_id) = profile_values(&relationship.profile);
    db.execute(
        "UPDATE federation_relationships SET bundle_endpoint_url = $2, profile = $3, \
         endpoint_spiffe_id = $4 WHERE trust_domain = $1",
        &[
            relationship.trust_domain.name().into(),
            relationship.bundle_endpoint_url.as_str().into(),
            profile,
            endpoint_id,
        ],
    )
    .await?;
    if let Some(bundle) = new_bundle {
        bundles::set(db, bundle).await?;
    }
    Ok(relationship)
}

/// Deletes the relationship.
pub(crate) async fn delete(db: &mut dyn Db, trust_domain: &TrustDomain) -> Result<()> {
    let n = db
        .execute(
            "DELETE FROM federation_relationships WHERE trust_domain = $1",
            &[trust_domain.name().into()],
        )
        .await?;
    if n == 0 {
        return Err(Error::not_found(
            ObjectKind::FederationRelationship,
            trust_domain,
        ));
    }
    Ok(())
}
