//! sigil's datastore: the [`DataStore`] trait, with SPIRE's datastore semantics, and its two
//! implementations, [`sqlite`] (the default: one file under the data directory) and
//! [`postgres`] (for several servers sharing one database).
//!
//! ```no_run
//! # async fn demo() -> Result<(), sigil_store::Error> {
//! let store = sigil_store::sqlite::open_in_dir("/var/lib/sigil/server").await?;
//! let agents = store.count_agents(&Default::default()).await?;
//! # Ok(()) }
//! ```
//!
//! # Semantics
//!
//! - Every call is one transaction; a write that fails leaves nothing behind.
//! - Entries are canonicalized (selectors and federated trust domains sorted and
//!   deduplicated) and validated on every write. Two entries with the same SPIFFE ID, parent
//!   ID and selector set cannot coexist.
//! - Listings are ordered by key (entry ID, agent SPIFFE ID, trust domain) in byte order and
//!   paged by key ("keyset" paging), so a page never costs more than its size.
//!   [`DataStore::scan_entries`] reads every entry in the store's own key order instead, a
//!   few range scans per page, for loading a cache.
//! - Times are Unix seconds ([`UnixTime`](sigil_types::UnixTime)); the store stamps
//!   `created_at` and event times with the system clock.
//!
//! # Change events
//!
//! Every write to an entry or an agent appends an [`Event`] (entry or agent, created, updated
//! or deleted) in the same transaction, so a server's in-memory cache can load everything once
//! and then follow [`DataStore::list_events`] from [`DataStore::latest_event_id`].
//!
//! On SQLite there is one writer, so event IDs become visible in increasing order. **On
//! PostgreSQL they can commit out of order**: two transactions take IDs 7 and 8, and 8 may
//! commit first. A follower that has seen 8 must not conclude that 7 does not exist; it should
//! remember the gap and read it again for a while (seconds; the time a write transaction can
//! take) before deciding the ID was rolled back, which also leaves a permanent gap. SPIRE's
//! event-based cache has the same problem and handles it the same way. Entry writes do not
//! reorder among themselves (they are serialized by an advisory lock), but agent writes
//! interleave with them. On PostgreSQL each transaction that wrote events also sends
//! `NOTIFY` on [`postgres::EVENTS_CHANNEL`] with the highest event ID it wrote, so other
//! servers can `LISTEN` instead of polling.
//!
//! # Schema
//!
//! The schema is migrated when a store is opened, inside a transaction; the version is kept in
//! `sigil_schema_version`. A database whose version is newer than this build knows is
//! refused with [`Error::SchemaTooNew`]. Architecture invariant: the two backends share all
//! query text, row mapping and validation (module `sql`); they differ only in how they run a
//! transaction and in a handful of column types.

mod ca_storage;
mod datastore;
mod error;
pub mod postgres;
mod sql;
pub mod sqlite;
mod types;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use ca_storage::DataStoreCaStorage;
pub use datastore::DataStore;
pub use error::{Error, ObjectKind, Result};
pub use types::{
    AgentFilter, AgentMask, BundleMask, DeleteMode, EntryFilter, EntryMask, Event, EventId,
    EventKind, EventOp, FederatesWithMatch, FederationRelationshipMask, MatchMode, Page,
    PageRequest, SelectorMatch,
};

/// The schema version this build of sigil writes and the newest it can open.
pub const SCHEMA_VERSION: i64 = sql::SCHEMA_VERSION;
