//! The SQL datastore shared by both backends.
//!
//! Everything a datastore does is written once here, as `async fn`s over [`Db`], a transaction
//! handle that can run a statement and little else. The statements use `$n` placeholders,
//! which PostgreSQL takes as they are and SQLite takes after [`sqlite_placeholders`]. A
//! backend implements [`Db`] for its driver and [`Backend`] to open read and write
//! transactions; [`SqlStore`] turns any backend into a [`DataStore`](crate::DataStore).
//!
//! The SQLite driver is synchronous. Its [`Db`] answers every call without ever returning
//! `Pending`, so the SQLite backend runs the same async code to completion on a blocking
//! thread (see `crate::sqlite`). Architecture invariant: code in this module awaits nothing
//! but [`Db`] calls, or SQLite would stall.

mod agents;
mod bundles;
mod entries;
mod entry_query;
mod entry_scan;
mod events;
mod federation;
mod filter;
mod misc;
mod schema;
mod store;
mod value;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;

use crate::{EventId, Result};

pub(crate) use schema::{Dialect, SCHEMA_VERSION};
pub(crate) use store::SqlStore;
pub(crate) use value::{Row, RowRef, Value, ValueRef};

#[cfg(test)]
pub(crate) use {entry_query::list_sql, schema::migrate};

/// A boxed, sendable future, as the transaction closures return.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Application-level locks that serialize writers across processes sharing one PostgreSQL
/// database (SQLite has a single writer, so there they are no-ops). Held until the
/// transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lock {
    /// Entry writes: makes the duplicate check and the insert one atomic step.
    Entries = 1,
    /// Read-modify-write of bundles.
    Bundles = 2,
    /// Schema migrations, so two servers starting together do not both migrate.
    Migrations = 3,
}

/// What [`Db::query_each`] calls for each row.
pub(crate) type EachRow<'e> = dyn FnMut(&dyn RowRef) -> Result<()> + Send + 'e;

/// An open transaction: the only thing the shared datastore code talks to.
#[async_trait]
pub(crate) trait Db: Send {
    /// Runs a statement that returns rows.
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>>;

    /// Runs a statement that returns rows and hands each to `each` as the driver holds it,
    /// without copying its values into a [`Row`] first: for bulk reads. Stops at the first
    /// error `each` returns.
    async fn query_each(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut EachRow<'_>,
    ) -> Result<()>;

    /// Runs a statement that returns no rows; returns the number of rows it changed.
    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64>;

    /// Runs several `;`-separated statements without parameters (schema migrations).
    async fn execute_script(&mut self, sql: &str) -> Result<()>;

    /// Takes `lock` until the transaction ends.
    async fn lock(&mut self, lock: Lock) -> Result<()>;

    /// Records that this transaction wrote the event `id` (PostgreSQL notifies listeners of
    /// the highest one when it commits).
    fn event_written(&mut self, id: EventId);
}

/// A closure run inside a transaction.
pub(crate) trait TxFn<R>:
    for<'a> FnOnce(&'a mut dyn Db) -> BoxFuture<'a, Result<R>> + Send + 'static
{
}

impl<R, F> TxFn<R> for F where
    F: for<'a> FnOnce(&'a mut dyn Db) -> BoxFuture<'a, Result<R>> + Send + 'static
{
}

/// A database engine: opens transactions and runs closures in them. The transaction commits
/// when the closure returns `Ok` and rolls back otherwise.
pub(crate) trait Backend: Send + Sync + fmt::Debug + 'static {
    /// The SQL dialect, for the schema.
    fn dialect(&self) -> Dialect;

    /// Runs `f` in a read-only transaction that sees one consistent snapshot.
    fn read<R: Send + 'static>(&self, f: impl TxFn<R>) -> impl Future<Output = Result<R>> + Send;

    /// Runs `f` in a read-write transaction.
    fn write<R: Send + 'static>(&self, f: impl TxFn<R>) -> impl Future<Output = Result<R>> + Send;
}

/// Runs a statement expected to return at most one row.
pub(crate) async fn query_opt(db: &mut dyn Db, sql: &str, params: &[Value]) -> Result<Option<Row>> {
    Ok(db.query(sql, params).await?.into_iter().next())
}

/// Rewrites `$n` placeholders as `?n`. SQLite reads `$1` as a *named* parameter and numbers
/// named parameters in order of first appearance, so `… $2 … $1 …` would bind the values the
/// wrong way round; `?n` is SQLite's explicitly numbered form and means what `$n` means to
/// PostgreSQL. The shared SQL never has `$` inside a string literal.
pub(crate) fn sqlite_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// The current time in Unix seconds (entries' `created_at`, events' timestamps).
pub(crate) use sigil_clock::unix_now as now;
