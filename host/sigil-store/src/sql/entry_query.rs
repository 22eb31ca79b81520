//! Reading entries: row mapping, filters, listing, counting.

use std::collections::HashMap;

use sigil_types::{EntryId, RegistrationEntry, Selector, SpiffeId, TrustDomain};

use super::filter::{
    ENTRY_FEDERATES_WITH, ENTRY_SELECTORS, push_set_match, selector_items, trust_domain_items,
};
use super::value::{Sql, pow2_chunks, to_count, to_u32};
use super::{Db, RowRef};
use crate::{EntryFilter, Error, Page, PageRequest, Result};

/// The entry columns every entry query selects, in the order [`entry_from_row`] reads them.
pub(crate) const ENTRY_COLUMNS: &str = "e.pk, e.id, e.spiffe_id, e.parent_id, e.x509_svid_ttl, \
     e.jwt_svid_ttl, e.admin, e.downstream, e.dns_names, e.hint, e.store_svid, e.expires_at, \
     e.revision_number, e.created_at";

/// An entry with its surrogate key.
#[derive(Debug, Clone)]
pub(crate) struct StoredEntry {
    /// `entries.pk`.
    pub(crate) pk: i64,
    /// The entry, with its selectors and federated trust domains once loaded.
    pub(crate) entry: RegistrationEntry,
}

/// Maps a row of [`ENTRY_COLUMNS`]; selectors and federated trust domains are left empty.
pub(super) fn entry_from_row(row: &dyn RowRef) -> Result<StoredEntry> {
    let id = row.text(1)?;
    let what = || format!("entry {id}");
    let entry_id = EntryId::new(id).map_err(|e| Error::corrupt(what(), e))?;
    let spiffe_id: SpiffeId = row
        .text(2)?
        .parse()
        .map_err(|e| Error::corrupt(what(), format!("spiffe_id: {e}")))?;
    let parent_id: SpiffeId = row
        .text(3)?
        .parse()
        .map_err(|e| Error::corrupt(what(), format!("parent_id: {e}")))?;
    let dns_names: Vec<String> = match row.text(8)? {
        // What almost every entry stores; no need for the JSON parser.
        "[]" => Vec::new(),
        json => serde_json::from_str(json)
            .map_err(|e| Error::corrupt(what(), format!("dns_names: {e}")))?,
    };
    Ok(StoredEntry {
        pk: row.int(0)?,
        entry: RegistrationEntry {
            id: entry_id,
            spiffe_id,
            parent_id,
            selectors: Vec::new(),
            x509_svid_ttl: to_u32(row.int(4)?, "x509_svid_ttl")?,
            jwt_svid_ttl: to_u32(row.int(5)?, "jwt_svid_ttl")?,
            federates_with: Vec::new(),
            admin: row.bool(6)?,
            downstream: row.bool(7)?,
            dns_names,
            hint: row.text(9)?.to_owned(),
            store_svid: row.bool(10)?,
            expires_at: row.opt_int(11)?,
            revision_number: row.int(12)?,
            created_at: row.int(13)?,
        },
    })
}

/// Runs a query selecting [`ENTRY_COLUMNS`] and returns complete entries.
pub(crate) async fn query_entries(db: &mut dyn Db, sql: &Sql) -> Result<Vec<StoredEntry>> {
    let rows = db.query(&sql.text, &sql.params).await?;
    let mut entries = rows
        .iter()
        .map(|row| entry_from_row(row))
        .collect::<Result<Vec<_>>>()?;
    load_sets(db, &mut entries).await?;
    Ok(entries)
}

/// Fills in the selectors and federated trust domains of `entries`, with one query per chunk
/// of entries for both.
async fn load_sets(db: &mut dyn Db, entries: &mut [StoredEntry]) -> Result<()> {
    let index: HashMap<i64, usize> = entries.iter().enumerate().map(|(i, e)| (e.pk, i)).collect();
    let pks: Vec<i64> = entries.iter().map(|e| e.pk).collect();
    for chunk in pow2_chunks(pks.len(), 256) {
        let mut sql = Sql::default();
        let keys = sql.bind_list(pks[chunk].iter().copied());
        sql.push(&format!(
            "SELECT s.entry_pk, s.type, s.value FROM entry_selectors s WHERE s.entry_pk IN {keys} \
             UNION ALL SELECT f.entry_pk, NULL, f.trust_domain FROM entry_federates_with f \
             WHERE f.entry_pk IN {keys}"
        ));
        for row in db.query(&sql.text, &sql.params).await? {
            let stored = owner(entries, &index, row.int(0)?)?;
            let what = || format!("entry {}", stored.entry.id);
            match row.opt_text(1)? {
                Some(selector_type) => {
                    let selector = Selector::new(selector_type, row.text(2)?)
                        .map_err(|e| Error::corrupt(what(), format!("selector: {e}")))?;
                    stored.entry.selectors.push(selector);
                }
                None => {
                    let td = TrustDomain::new(row.text(2)?)
                        .map_err(|e| Error::corrupt(what(), format!("federates_with: {e}")))?;
                    stored.entry.federates_with.push(td);
                }
            }
        }
    }
    for stored in entries {
        stored.entry.canonicalize();
    }
    Ok(())
}

fn owner<'e>(
    entries: &'e mut [StoredEntry],
    index: &HashMap<i64, usize>,
    pk: i64,
) -> Result<&'e mut StoredEntry> {
    index
        .get(&pk)
        .and_then(|&i| entries.get_mut(i))
        .ok_or_else(|| Error::Backend(format!("child row for unknown entry {pk}")))
}

/// The entry with this ID.
pub(crate) async fn fetch(db: &mut dyn Db, id: &EntryId) -> Result<Option<StoredEntry>> {
    let mut sql = Sql::new(&format!(
        "SELECT {ENTRY_COLUMNS} FROM entries e WHERE e.id = "
    ));
    sql.param(id.as_str());
    Ok(query_entries(db, &sql).await?.into_iter().next())
}

/// Entries with this SPIFFE ID and parent ID (candidates for a duplicate).
pub(crate) async fn by_identity(
    db: &mut dyn Db,
    spiffe_id: &SpiffeId,
    parent_id: &SpiffeId,
) -> Result<Vec<StoredEntry>> {
    let mut sql = Sql::new(&format!(
        "SELECT {ENTRY_COLUMNS} FROM entries e WHERE e.spiffe_id = "
    ));
    sql.param(spiffe_id.as_str())
        .push(" AND e.parent_id = ")
        .param(parent_id.as_str());
    query_entries(db, &sql).await
}

/// Appends the `WHERE` clause for `filter` (entries aliased `e`).
fn push_filter(sql: &mut Sql, filter: &EntryFilter) -> Result<()> {
    sql.push(" WHERE 1 = 1");
    if let Some(id) = &filter.by_spiffe_id {
        sql.push(" AND e.spiffe_id = ").param(id.as_str());
    }
    if let Some(id) = &filter.by_parent_id {
        sql.push(" AND e.parent_id = ").param(id.as_str());
    }
    if let Some(hint) = &filter.by_hint {
        sql.push(" AND e.hint = ").param(hint.as_str());
    }
    if let Some(m) = &filter.by_selectors {
        let items = selector_items("by_selectors", &m.selectors)?;
        push_set_match(sql, ENTRY_SELECTORS, "e.pk", items, m.mode);
    }
    if let Some(m) = &filter.by_federates_with {
        let items = trust_domain_items("by_federates_with", &m.trust_domains)?;
        push_set_match(sql, ENTRY_FEDERATES_WITH, "e.pk", items, m.mode);
    }
    Ok(())
}

/// Checks a page request; returns the page size.
pub(crate) fn page_size(page: &PageRequest) -> Result<usize> {
    if page.page_size == 0 {
        return Err(Error::invalid("page_size", "must be greater than zero"));
    }
    usize::try_from(page.page_size).map_err(|_| Error::invalid("page_size", "too large"))
}

/// Appends keyset paging: `AND key > token ORDER BY key LIMIT size + 1`. The extra row tells
/// whether another page follows.
pub(crate) fn push_paging(sql: &mut Sql, key: &str, page: Option<&PageRequest>) -> Result<()> {
    match page {
        None => {
            sql.push(&format!(" ORDER BY {key}"));
        }
        Some(page) => {
            let size = page_size(page)?;
            if let Some(token) = &page.token {
                sql.push(&format!(" AND {key} > ")).param(token.as_str());
            }
            let limit = i64::try_from(size).unwrap_or(i64::MAX).saturating_add(1);
            sql.push(&format!(" ORDER BY {key} LIMIT ")).param(limit);
        }
    }
    Ok(())
}

/// Cuts the extra row fetched by [`push_paging`] and makes the next token from the last item.
pub(crate) fn into_page<T>(
    mut items: Vec<T>,
    page: Option<&PageRequest>,
    key: impl Fn(&T) -> String,
) -> Page<T> {
    let size = page.map_or(usize::MAX, |p| {
        usize::try_from(p.page_size).unwrap_or(usize::MAX)
    });
    if items.len() > size {
        items.truncate(size);
        let next_token = items.last().map(key);
        Page { items, next_token }
    } else {
        Page {
            items,
            next_token: None,
        }
    }
}

/// A page of the entries matching `filter`.
pub(crate) async fn list(
    db: &mut dyn Db,
    filter: &EntryFilter,
    page: Option<&PageRequest>,
) -> Result<Page<RegistrationEntry>> {
    let sql = list_sql(filter, page)?;
    let entries = query_entries(db, &sql)
        .await?
        .into_iter()
        .map(|s| s.entry)
        .collect();
    Ok(into_page(entries, page, |e: &RegistrationEntry| {
        e.id.to_string()
    }))
}

/// The statement listing the entries matching `filter`.
pub(crate) fn list_sql(filter: &EntryFilter, page: Option<&PageRequest>) -> Result<Sql> {
    let mut sql = Sql::new(&format!("SELECT {ENTRY_COLUMNS} FROM entries e"));
    push_filter(&mut sql, filter)?;
    push_paging(&mut sql, "e.id", page)?;
    Ok(sql)
}

/// How many entries match `filter`.
pub(crate) async fn count(db: &mut dyn Db, filter: &EntryFilter) -> Result<u64> {
    let mut sql = Sql::new("SELECT COUNT(*) FROM entries e");
    push_filter(&mut sql, filter)?;
    let rows = db.query(&sql.text, &sql.params).await?;
    to_count(rows.first().map(|r| r.int(0)).transpose()?.unwrap_or(0))
}
