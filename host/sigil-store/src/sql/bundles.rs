//! Trust bundles, stored as one JSON document per trust domain.

use sigil_types::{Bundle, BundleError, TrustDomain, UnixTime};
use tracing::warn;

use super::entry_query::{into_page, push_paging};
use super::value::{Sql, to_count};
use super::{Db, Lock, Row, entries, query_opt};
use crate::{BundleMask, DeleteMode, Error, ObjectKind, Page, PageRequest, Result};

fn document(bundle: &Bundle) -> Result<String> {
    serde_json::to_string(bundle).map_err(|e| Error::invalid("bundle", e))
}

fn bundle_from_row(row: &Row) -> Result<Bundle> {
    let trust_domain = row.text(0)?;
    let bundle: Bundle = serde_json::from_str(row.text(1)?)
        .map_err(|e| Error::corrupt(format!("bundle of {trust_domain}"), e))?;
    if bundle.trust_domain.name() != trust_domain {
        return Err(Error::corrupt(
            format!("bundle of {trust_domain}"),
            format!("it is the bundle of {}", bundle.trust_domain),
        ));
    }
    Ok(bundle)
}

/// Stores a new bundle.
pub(crate) async fn create(db: &mut dyn Db, bundle: Bundle) -> Result<Bundle> {
    bundle.validate()?;
    let rows = db
        .query(
            "INSERT INTO bundles (trust_domain, document) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING RETURNING trust_domain",
            &[bundle.trust_domain.name().into(), document(&bundle)?.into()],
        )
        .await?;
    if rows.is_empty() {
        return Err(Error::already_exists(
            ObjectKind::Bundle,
            &bundle.trust_domain,
        ));
    }
    Ok(bundle)
}

/// The bundle of `trust_domain`.
pub(crate) async fn fetch(db: &mut dyn Db, trust_domain: &TrustDomain) -> Result<Option<Bundle>> {
    query_opt(
        db,
        "SELECT trust_domain, document FROM bundles WHERE trust_domain = $1",
        &[trust_domain.name().into()],
    )
    .await?
    .map(|row| bundle_from_row(&row))
    .transpose()
}

/// The bundle of `trust_domain`, or `NotFound`.
async fn fetch_existing(db: &mut dyn Db, trust_domain: &TrustDomain) -> Result<Bundle> {
    fetch(db, trust_domain)
        .await?
        .ok_or_else(|| Error::not_found(ObjectKind::Bundle, trust_domain))
}

/// Stores `bundle`, replacing any bundle of its trust domain.
pub(crate) async fn set(db: &mut dyn Db, bundle: Bundle) -> Result<Bundle> {
    bundle.validate()?;
    db.execute(
        "INSERT INTO bundles (trust_domain, document) VALUES ($1, $2) \
         ON CONFLICT (trust_domain) DO UPDATE SET document = excluded.document",
        &[bundle.trust_domain.name().into(), document(&bundle)?.into()],
    )
    .await?;
    Ok(bundle)
}

/// A page of bundles.
pub(crate) async fn list(db: &mut dyn Db, page: Option<&PageRequest>) -> Result<Page<Bundle>> {
    let mut sql = Sql::new("SELECT b.trust_domain, b.document FROM bundles b WHERE 1 = 1");
    push_paging(&mut sql, "b.trust_domain", page)?;
    let rows = db.query(&sql.text, &sql.params).await?;
    let bundles = rows
        .iter()
        .map(bundle_from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(into_page(bundles, page, |b: &Bundle| {
        b.trust_domain.to_string()
    }))
}

/// How many bundles there are.
pub(crate) async fn count(db: &mut dyn Db) -> Result<u64> {
    let rows = db.query("SELECT COUNT(*) FROM bundles", &[]).await?;
    to_count(rows.first().map(|r| r.int(0)).transpose()?.unwrap_or(0))
}

/// Applies `mask` to the stored bundle.
pub(crate) async fn update(db: &mut dyn Db, given: Bundle, mask: BundleMask) -> Result<Bundle> {
    db.lock(Lock::Bundles).await?;
    let mut bundle = fetch_existing(db, &given.trust_domain).await?;
    if mask.x509_authorities {
        bundle.x509_authorities = given.x509_authorities;
    }
    if mask.jwt_authorities {
        bundle.jwt_authorities = given.jwt_authorities;
    }
    if mask.refresh_hint {
        bundle.refresh_hint = given.refresh_hint;
    }
    if mask.sequence_number {
        bundle.sequence_number = given.sequence_number;
    }
    set(db, bundle).await
}

/// Merges `given` into the stored bundle, or stores it.
pub(crate) async fn append(db: &mut dyn Db, given: Bundle) -> Result<Bundle> {
    given.validate()?;
    db.lock(Lock::Bundles).await?;
    match fetch(db, &given.trust_domain).await? {
        None => set(db, given).await,
        Some(mut bundle) => {
            if bundle.append(&given) {
                set(db, bundle).await
            } else {
                Ok(bundle)
            }
        }
    }
}

/// Deletes the bundle, handling federated entries per `mode`.
pub(crate) async fn delete(
    db: &mut dyn Db,
    trust_domain: &TrustDomain,
    mode: DeleteMode,
    now: UnixTime,
) -> Result<()> {
    // Entries before bundles, the order every caller takes them in.
    db.lock(Lock::Entries).await?;
    db.lock(Lock::Bundles).await?;
    fetch_existing(db, trust_domain).await?;
    let federated = entries::federated_with(db, trust_domain.name()).await?;
    if !federated.is_empty() {
        match mode {
            DeleteMode::Restrict => {
                return Err(Error::BundleInUse {
                    trust_domain: trust_domain.clone(),
                    entries: u64::try_from(federated.len()).unwrap_or(u64::MAX),
                });
            }
            DeleteMode::Delete => entries::delete_many(db, &federated, now).await?,
            DeleteMode::Dissociate => {
                entries::dissociate(db, trust_domain.name(), &federated, now).await?;
            }
        }
    }
    db.execute(
        "DELETE FROM bundles WHERE trust_domain = $1",
        &[trust_domain.name().into()],
    )
    .await?;
    Ok(())
}

/// Prunes expired authorities; returns whether the bundle changed.
pub(crate) async fn prune(
    db: &mut dyn Db,
    trust_domain: &TrustDomain,
    expires_before: UnixTime,
) -> Result<bool> {
    db.lock(Lock::Bundles).await?;
    let mut bundle = fetch_existing(db, trust_domain).await?;
    match bundle.prune(expires_before) {
        Ok(true) => {
            set(db, bundle).await?;
            Ok(true)
        }
        Ok(false) => Ok(false),
        Err(BundleError::WouldPruneAll(_)) => {
            warn!(%trust_domain, expires_before, "bundle not pruned: every X.509 authority expired");
            Ok(false)
        }
        Err(e) => Err(Error::corrupt(format!("bundle of {trust_domain}"), e)),
    }
}
