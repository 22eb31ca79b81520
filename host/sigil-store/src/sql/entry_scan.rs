//! Scanning every entry in surrogate-key order: the bulk read behind
//! [`DataStore::scan_entries`](crate::DataStore::scan_entries).
//!
//! A page is three range scans over `pk`: the entries, then their selectors and their
//! federated trust domains, whose primary keys start with `entry_pk`, so the child rows come
//! back in the entries' order and are matched to them in one merge pass. Listing by entry ID
//! instead reads the table in random order and needs an `IN (…)` lookup per 256 entries.

use sigil_types::{RegistrationEntry, Selector, TrustDomain};

use super::Db;
use super::entry_query::{ENTRY_COLUMNS, StoredEntry, entry_from_row, page_size};
use crate::{Error, Page, PageRequest, Result};

/// One page of every entry, in `pk` order. The token is the last entry's `pk`.
pub(crate) async fn scan(db: &mut dyn Db, page: &PageRequest) -> Result<Page<RegistrationEntry>> {
    let size = page_size(page)?;
    let after = match &page.token {
        None => i64::MIN,
        Some(token) => token
            .parse::<i64>()
            .map_err(|_| Error::invalid("page_token", "not a token of scan_entries"))?,
    };
    let limit = i64::try_from(size).unwrap_or(i64::MAX).saturating_add(1);
    let mut entries = Vec::with_capacity(size.min(MAX_PREALLOCATED) + 1);
    db.query_each(
        &format!("SELECT {ENTRY_COLUMNS} FROM entries e WHERE e.pk > $1 ORDER BY e.pk LIMIT $2"),
        &[after.into(), limit.into()],
        &mut |row| {
            entries.push(entry_from_row(row)?);
            Ok(())
        },
    )
    .await?;
    let more = entries.len() > size;
    entries.truncate(size);
    let Some(last) = entries.last().map(|e| e.pk) else {
        return Ok(Page {
            items: Vec::new(),
            next_token: None,
        });
    };
    let range = [after.into(), last.into()];
    let mut owners = Owners::new(&mut entries);
    db.query_each(
        "SELECT entry_pk, type, value FROM entry_selectors \
         WHERE entry_pk > $1 AND entry_pk <= $2 ORDER BY entry_pk",
        &range,
        &mut |row| {
            let stored = owners.get(row.int(0)?)?;
            let selector = Selector::new(row.text(1)?, row.text(2)?)
                .map_err(|e| corrupt(stored, format!("selector: {e}")))?;
            stored.entry.selectors.push(selector);
            Ok(())
        },
    )
    .await?;
    let mut owners = Owners::new(&mut entries);
    db.query_each(
        "SELECT entry_pk, trust_domain FROM entry_federates_with \
         WHERE entry_pk > $1 AND entry_pk <= $2 ORDER BY entry_pk",
        &range,
        &mut |row| {
            let stored = owners.get(row.int(0)?)?;
            let td = TrustDomain::new(row.text(1)?)
                .map_err(|e| corrupt(stored, format!("federates_with: {e}")))?;
            stored.entry.federates_with.push(td);
            Ok(())
        },
    )
    .await?;
    let items = entries
        .into_iter()
        .map(|mut stored| {
            // Stored canonical already; sorting again is cheap and makes the order the same
            // whatever the database's collation.
            stored.entry.canonicalize();
            stored.entry
        })
        .collect();
    Ok(Page {
        items,
        next_token: more.then(|| last.to_string()),
    })
}

/// Entries allocated for up front, whatever the page size asked for.
const MAX_PREALLOCATED: usize = 100_000;

fn corrupt(stored: &StoredEntry, reason: String) -> Error {
    Error::corrupt(format!("entry {}", stored.entry.id), reason)
}

/// Finds the entry that owns each child row of a scan, given rows in `entry_pk` order.
struct Owners<'e> {
    entries: &'e mut [StoredEntry],
    next: usize,
}

impl<'e> Owners<'e> {
    fn new(entries: &'e mut [StoredEntry]) -> Self {
        Self { entries, next: 0 }
    }

    /// The entry with key `pk`; keys must come in ascending order.
    fn get(&mut self, pk: i64) -> Result<&mut StoredEntry> {
        while self.entries.get(self.next).is_some_and(|e| e.pk < pk) {
            self.next += 1;
        }
        match self.entries.get_mut(self.next) {
            Some(stored) if stored.pk == pk => Ok(stored),
            _ => Err(Error::Backend(format!("child row for unknown entry {pk}"))),
        }
    }
}
