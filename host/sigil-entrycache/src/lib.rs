//! The server's in-memory authorized-entry cache.
//!
//! An [`EntryCache`] holds every registration entry and every attested agent of the
//! datastore. [`EntryCache::load`] pages through the store once; [`EntryCache::sync_once`]
//! (driven by [`run_follower`]) then follows the datastore's change-event log, refetching each
//! changed object by its key and upserting or removing it. The cache answers the questions the
//! server asks on every agent call without touching the database:
//!
//! - [`EntryCache::authorized_entries`]: the entries an agent may serve, by SPIRE's rules
//!   (entries parented to the agent, the children of every node-alias entry whose selectors
//!   the agent's attested selectors include, and recursively every descendant of those);
//! - [`EntryCache::authorized_entry`]: whether an agent may obtain a given SPIFFE ID (the CSR
//!   check);
//! - [`EntryCache::changes_since`]: what changed for one agent since a [`Revision`], so the
//!   server can sync agents incrementally, with deletions, or say that a full sync is needed.
//!
//! # Following the event log
//!
//! On PostgreSQL event IDs can commit out of order, so a missing ID is not proof that it will
//! never appear. The follower remembers every skipped ID as a *gap* and reads it again on each
//! poll until it appears or until it has been missing for [`CacheConfig::gap_timeout`] and at
//! least [`CacheConfig::gap_polls`] polls (then it is taken to be a rolled-back transaction).
//! Applying an event always refetches the object's current state, so events may be applied in
//! any order and more than once.
//!
//! # Revisions
//!
//! Every change the cache applies increments its revision; every cached entry remembers the
//! revision at which it last changed; changes that can take entries away from an agent (a
//! deletion, a new parent or SPIFFE ID, new selectors on a node alias) are kept in a bounded
//! log. A revision carries the cache's random *epoch*, so a revision handed out by another
//! server or by an earlier process is never mistaken for one of this cache's.
//!
//! Architecture invariant: this crate reads the datastore and nothing else; it never writes,
//! and knows nothing of gRPC or plugins. PostgreSQL `LISTEN` belongs to the server, which calls
//! [`EntryCache::poke`] when a notification arrives.

mod authz;
mod cache;
mod error;
mod follow;
mod index;
mod revision;
mod source;

#[cfg(test)]
mod tests;

pub use cache::{CacheConfig, CachedAgent, EntryCache};
pub use error::{Error, Result};
pub use follow::{SyncReport, run_follower};
pub use revision::{Changes, Revision};
pub use source::CacheSource;
