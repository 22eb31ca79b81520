//! Writing entries: create (one or a batch), update, delete, prune.
//!
//! Every function here takes [`Lock::Entries`] first, so on PostgreSQL the duplicate check and
//! the write are one atomic step across servers; on SQLite the single writer already is.

use std::collections::HashMap;

use sigil_types::{RegistrationEntry, Selector, SpiffeId, UnixTime};

use super::entry_query::{ENTRY_COLUMNS, StoredEntry, by_identity, fetch, query_entries};
use super::events;
use super::value::{Sql, Value, pow2_chunks};
use super::{Db, Lock};
use crate::{EntryMask, Error, EventKind, EventOp, ObjectKind, Result};

/// Entries per multi-row `INSERT` (13 parameters each).
const INSERT_CHUNK: usize = 64;
/// Keys per `IN (…)` / `OR` lookup.
const LOOKUP_CHUNK: usize = 128;

/// Canonicalizes, validates and stores `entries` (all or none); see
/// [`DataStore::create_entries`](crate::DataStore::create_entries).
pub(crate) async fn create(
    db: &mut dyn Db,
    mut entries: Vec<RegistrationEntry>,
    now: UnixTime,
) -> Result<Vec<RegistrationEntry>> {
    for entry in &mut entries {
        entry.canonicalize();
        entry.validate()?;
        entry.revision_number = 0;
        entry.created_at = now;
    }
    refuse_duplicates_within(&entries)?;
    db.lock(Lock::Entries).await?;
    refuse_existing_ids(db, &entries).await?;
    refuse_similar(db, &entries).await?;

    let mut pks: HashMap<String, i64> = HashMap::with_capacity(entries.len());
    for chunk in pow2_chunks(entries.len(), INSERT_CHUNK) {
        let mut sql = Sql::new(
            "INSERT INTO entries (id, spiffe_id, parent_id, x509_svid_ttl, jwt_svid_ttl, admin, \
             downstream, dns_names, hint, store_svid, expires_at, revision_number, created_at) \
             VALUES ",
        );
        for (i, entry) in entries[chunk].iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.list(entry_values(entry)?);
        }
        sql.push(" RETURNING pk, id");
        for row in db.query(&sql.text, &sql.params).await? {
            pks.insert(row.text(1)?.to_owned(), row.int(0)?);
        }
    }
    let mut selectors = Vec::new();
    let mut federates = Vec::new();
    for entry in &entries {
        let pk = *pks
            .get(entry.id.as_str())
            .ok_or_else(|| Error::Backend("inserted entry returned no key".into()))?;
        selectors.extend(entry.selectors.iter().map(|s| (pk, s)));
        federates.extend(entry.federates_with.iter().map(|td| (pk, td.name())));
    }
    insert_selectors(db, &selectors).await?;
    insert_federates_with(db, &federates).await?;
    let ids: Vec<String> = entries.iter().map(|e| e.id.to_string()).collect();
    events::append(db, EventKind::Entry, EventOp::Created, &ids, now).await?;
    Ok(entries)
}

/// The `entries` column values of `entry`, in the `INSERT` column order.
fn entry_values(entry: &RegistrationEntry) -> Result<Vec<Value>> {
    let dns_names =
        serde_json::to_string(&entry.dns_names).map_err(|e| Error::invalid("dns_names", e))?;
    Ok(vec![
        entry.id.as_str().into(),
        entry.spiffe_id.as_str().into(),
        entry.parent_id.as_str().into(),
        entry.x509_svid_ttl.into(),
        entry.jwt_svid_ttl.into(),
        entry.admin.into(),
        entry.downstream.into(),
        dns_names.into(),
        entry.hint.as_str().into(),
        entry.store_svid.into(),
        entry.expires_at.into(),
        entry.revision_number.into(),
        entry.created_at.into(),
    ])
}

/// Two entries of one batch with the same ID, or similar to each other.
fn refuse_duplicates_within(entries: &[RegistrationEntry]) -> Result<()> {
    let mut ids = HashMap::with_capacity(entries.len());
    let mut identities: HashMap<(&SpiffeId, &SpiffeId, &[Selector]), usize> =
        HashMap::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let earlier = ids.insert(entry.id.as_str(), i).or_else(|| {
            identities.insert(
                (&entry.spiffe_id, &entry.parent_id, &entry.selectors[..]),
                i,
            )
        });
        if let Some(earlier) = earlier.and_then(|j| entries.get(j)) {
            return Err(Error::entry_exists(earlier.clone()));
        }
    }
    Ok(())
}

/// Fails with the stored entry when one of `entries` reuses its ID.
async fn refuse_existing_ids(db: &mut dyn Db, entries: &[RegistrationEntry]) -> Result<()> {
    for chunk in pow2_chunks(entries.len(), LOOKUP_CHUNK) {
        let mut sql = Sql::new(&format!(
            "SELECT {ENTRY_COLUMNS} FROM entries e WHERE e.id IN "
        ));
        sql.list(entries[chunk].iter().map(|e| e.id.as_str()));
        if let Some(existing) = query_entries(db, &sql).await?.into_iter().next() {
            return Err(Error::entry_exists(existing.entry));
        }
    }
    Ok(())
}

/// Fails with the stored entry when one of `entries` has the same SPIFFE ID, parent ID and
/// selectors as it.
async fn refuse_similar(db: &mut dyn Db, entries: &[RegistrationEntry]) -> Result<()> {
    let mut wanted: HashMap<(&SpiffeId, &SpiffeId), Vec<&RegistrationEntry>> = HashMap::new();
    for entry in entries {
        wanted
            .entry((&entry.spiffe_id, &entry.parent_id))
            .or_default()
            .push(entry);
    }
    let keys: Vec<(&SpiffeId, &SpiffeId)> = wanted.keys().copied().collect();
    for chunk in pow2_chunks(keys.len(), LOOKUP_CHUNK) {
        let mut sql = Sql::new(&format!("SELECT {ENTRY_COLUMNS} FROM entries e WHERE "));
        for (i, (spiffe_id, parent_id)) in keys[chunk].iter().enumerate() {
            if i > 0 {
                sql.push(" OR ");
            }
            sql.push("(e.spiffe_id = ")
                .param(spiffe_id.as_str())
                .push(" AND e.parent_id = ")
                .param(parent_id.as_str())
                .push(")");
        }
        for candidate in query_entries(db, &sql).await? {
            let key = (&candidate.entry.spiffe_id, &candidate.entry.parent_id);
            let similar = wanted
                .get(&key)
                .is_some_and(|new| new.iter().any(|e| e.is_similar(&candidate.entry)));
            if similar {
                return Err(Error::entry_exists(candidate.entry));
            }
        }
    }
    Ok(())
}

/// Inserts `(entry pk, selector)` rows.
async fn insert_selectors(db: &mut dyn Db, rows: &[(i64, &Selector)]) -> Result<()> {
    for chunk in pow2_chunks(rows.len(), 256) {
        let mut sql = Sql::new("INSERT INTO entry_selectors (entry_pk, type, value) VALUES ");
        for (i, (pk, selector)) in rows[chunk].iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.list([
                Value::Int(*pk),
                selector.selector_type().into(),
                selector.value().into(),
            ]);
        }
        db.execute(&sql.text, &sql.params).await?;
    }
    Ok(())
}

/// Inserts `(entry pk, trust domain)` rows.
async fn insert_federates_with(db: &mut dyn Db, rows: &[(i64, &str)]) -> Result<()> {
    for chunk in pow2_chunks(rows.len(), 256) {
        let mut sql = Sql::new("INSERT INTO entry_federates_with (entry_pk, trust_domain) VALUES ");
        for (i, (pk, td)) in rows[chunk].iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.list([Value::Int(*pk), (*td).into()]);
        }
        db.execute(&sql.text, &sql.params).await?;
    }
    Ok(())
}

/// Applies `mask`; see [`DataStore::update_entry`](crate::DataStore::update_entry).
pub(crate) async fn update(
    db: &mut dyn Db,
    given: RegistrationEntry,
    mask: EntryMask,
    now: UnixTime,
) -> Result<RegistrationEntry> {
    db.lock(Lock::Entries).await?;
    let StoredEntry { pk, entry: stored } = fetch(db, &given.id)
        .await?
        .ok_or_else(|| Error::not_found(ObjectKind::Entry, &given.id))?;
    let mut updated = stored.clone();
    apply_mask(&mut updated, given, mask);
    updated.canonicalize();
    updated.validate()?;
    updated.revision_number = stored.revision_number.saturating_add(1);
    if !updated.is_similar(&stored) {
        let others = by_identity(db, &updated.spiffe_id, &updated.parent_id).await?;
        if let Some(other) = others
            .into_iter()
            .find(|o| o.pk != pk && o.entry.is_similar(&updated))
        {
            return Err(Error::entry_exists(other.entry));
        }
    }
    let mut params = entry_values(&updated)?;
    params[0] = Value::Int(pk);
    db.execute(
        "UPDATE entries SET spiffe_id = $2, parent_id = $3, x509_svid_ttl = $4, \
         jwt_svid_ttl = $5, admin = $6, downstream = $7, dns_names = $8, hint = $9, \
         store_svid = $10, expires_at = $11, revision_number = $12, created_at = $13 \
         WHERE pk = $1",
        &params,
    )
    .await?;
    if updated.selectors != stored.selectors {
        db.execute(
            "DELETE FROM entry_selectors WHERE entry_pk = $1",
            &[pk.into()],
        )
        .await?;
        let rows: Vec<(i64, &Selector)> = updated.selectors.iter().map(|s| (pk, s)).collect();
        insert_selectors(db, &rows).await?;
    }
    if updated.federates_with != stored.federates_with {
        db.execute(
            "DELETE FROM entry_federates_with WHERE entry_pk = $1",
            &[pk.into()],
        )
        .await?;
        let rows: Vec<(i64, &str)> = updated
            .federates_with
            .iter()
            .map(|td| (pk, td.name()))
            .collect();
        insert_federates_with(db, &rows).await?;
    }
    events::append_one(
        db,
        EventKind::Entry,
        EventOp::Updated,
        updated.id.as_str(),
        now,
    )
    .await?;
    Ok(updated)
}

fn apply_mask(entry: &mut RegistrationEntry, given: RegistrationEntry, mask: EntryMask) {
    let RegistrationEntry {
        spiffe_id,
        parent_id,
        selectors,
        x509_svid_ttl,
        jwt_svid_ttl,
        federates_with,
        admin,
        downstream,
        dns_names,
        hint,
        store_svid,
        expires_at,
        ..
    } = given;
    if mask.spiffe_id {
        entry.spiffe_id = spiffe_id;
    }
    if mask.parent_id {
        entry.parent_id = parent_id;
    }
    if mask.selectors {
        entry.selectors = selectors;
    }
    if mask.x509_svid_ttl {
        entry.x509_svid_ttl = x509_svid_ttl;
    }
    if mask.jwt_svid_ttl {
        entry.jwt_svid_ttl = jwt_svid_ttl;
    }
    if mask.federates_with {
        entry.federates_with = federates_with;
    }
    if mask.admin {
        entry.admin = admin;
    }
    if mask.downstream {
        entry.downstream = downstream;
    }
    if mask.dns_names {
        entry.dns_names = dns_names;
    }
    if mask.hint {
        entry.hint = hint;
    }
    if mask.store_svid {
        entry.store_svid = store_svid;
    }
    if mask.expires_at {
        entry.expires_at = expires_at;
    }
}

/// Deletes the entry and returns it.
pub(crate) async fn delete(
    db: &mut dyn Db,
    id: &sigil_types::EntryId,
    now: UnixTime,
) -> Result<RegistrationEntry> {
    db.lock(Lock::Entries).await?;
    let stored = fetch(db, id)
        .await?
        .ok_or_else(|| Error::not_found(ObjectKind::Entry, id))?;
    db.execute("DELETE FROM entries WHERE pk = $1", &[stored.pk.into()])
        .await?;
    events::append_one(db, EventKind::Entry, EventOp::Deleted, id.as_str(), now).await?;
    Ok(stored.entry)
}

/// Deletes the entries with these keys (whose IDs are given for the events).
pub(crate) async fn delete_many(
    db: &mut dyn Db,
    doomed: &[(i64, String)],
    now: UnixTime,
) -> Result<()> {
    for chunk in pow2_chunks(doomed.len(), LOOKUP_CHUNK) {
        let mut sql = Sql::new("DELETE FROM entries WHERE pk IN ");
        sql.list(doomed[chunk].iter().map(|(pk, _)| *pk));
        db.execute(&sql.text, &sql.params).await?;
    }
    let ids: Vec<String> = doomed.iter().map(|(_, id)| id.clone()).collect();
    events::append(db, EventKind::Entry, EventOp::Deleted, &ids, now).await
}

/// Deletes the entries that expired before `expires_before`.
pub(crate) async fn prune(db: &mut dyn Db, expires_before: UnixTime, now: UnixTime) -> Result<u64> {
    db.lock(Lock::Entries).await?;
    let rows = db
        .query(
            "SELECT pk, id FROM entries WHERE expires_at < $1",
            &[expires_before.into()],
        )
        .await?;
    let doomed = rows
        .iter()
        .map(|r| Ok((r.int(0)?, r.text(1)?.to_owned())))
        .collect::<Result<Vec<_>>>()?;
    delete_many(db, &doomed, now).await?;
    Ok(u64::try_from(doomed.len()).unwrap_or(u64::MAX))
}

/// The keys and IDs of the entries that federate with `trust_domain`.
pub(crate) async fn federated_with(
    db: &mut dyn Db,
    trust_domain: &str,
) -> Result<Vec<(i64, String)>> {
    let rows = db
        .query(
            "SELECT e.pk, e.id FROM entries e JOIN entry_federates_with f ON f.entry_pk = e.pk \
             WHERE f.trust_domain = $1 ORDER BY e.id",
            &[trust_domain.into()],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.int(0)?, r.text(1)?.to_owned())))
        .collect()
}

/// Removes `trust_domain` from the `federates_with` of the given entries, bumping their
/// revisions.
pub(crate) async fn dissociate(
    db: &mut dyn Db,
    trust_domain: &str,
    entries: &[(i64, String)],
    now: UnixTime,
) -> Result<()> {
    db.execute(
        "DELETE FROM entry_federates_with WHERE trust_domain = $1",
        &[trust_domain.into()],
    )
    .await?;
    for chunk in pow2_chunks(entries.len(), LOOKUP_CHUNK) {
        let mut sql =
            Sql::new("UPDATE entries SET revision_number = revision_number + 1 WHERE pk IN ");
        sql.list(entries[chunk].iter().map(|(pk, _)| *pk));
        db.execute(&sql.text, &sql.params).await?;
    }
    let ids: Vec<String> = entries.iter().map(|(_, id)| id.clone()).collect();
    events::append(db, EventKind::Entry, EventOp::Updated, &ids, now).await
}
