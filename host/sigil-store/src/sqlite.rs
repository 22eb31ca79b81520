//! The SQLite backend: sigil's default datastore, one file under the data directory.
//!
//! A file database gets one writer connection and four reader connections, all in WAL
//! mode with `synchronous = NORMAL`, foreign keys on and a busy timeout; readers see the last
//! committed state while the writer works. `:memory:` gets a single connection, as each
//! connection to it would be a separate database. The driver is blocking, so every
//! transaction runs on tokio's blocking pool, where the shared async datastore code is polled
//! to completion (it never waits on anything but this driver).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, ValueRef as SqliteValue};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::sql::{
    Backend, Db, Dialect, EachRow, Lock, Row, RowRef, SqlStore, TxFn, Value, ValueRef,
    sqlite_placeholders,
};
use crate::{DataStore, Error, EventId, Result};

/// The datastore's file name inside the data directory.
pub const DEFAULT_FILE_NAME: &str = "datastore.sqlite3";

/// Reader connections of a file database.
const READERS: usize = 4;

/// How long a connection waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;

/// Opens the SQLite datastore in the file `path`, creating it if needed, and migrates its
/// schema. `":memory:"` opens a fresh in-memory database.
pub async fn open(path: impl AsRef<Path>) -> Result<Arc<dyn DataStore>> {
    let path = path.as_ref().to_owned();
    let backend = if path.as_os_str() == ":memory:" {
        tokio::task::spawn_blocking(Sqlite::memory).await
    } else {
        tokio::task::spawn_blocking(move || Sqlite::file(&path)).await
    }
    .map_err(|e| Error::Backend(format!("SQLite open task failed: {e}")))??;
    Ok(Arc::new(SqlStore::open(backend).await?))
}

/// Opens `<data_dir>/datastore.sqlite3`, creating the directory (mode 0700) and the file
/// (mode 0600) if needed.
pub async fn open_in_dir(data_dir: impl AsRef<Path>) -> Result<Arc<dyn DataStore>> {
    let dir = data_dir.as_ref();
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| {
        Error::Backend(format!(
            "cannot create data directory {}: {e}",
            dir.display()
        ))
    })?;
    open(dir.join(DEFAULT_FILE_NAME)).await
}

/// Opens a fresh in-memory datastore (tests, tools).
pub async fn open_in_memory() -> Result<Arc<dyn DataStore>> {
    open(":memory:").await
}

// === impl Sqlite ===

/// The SQLite [`Backend`]: a writer pool of one connection and a reader pool.
#[derive(Debug)]
struct Sqlite {
    writer: Arc<Pool>,
    readers: Arc<Pool>,
}

impl Sqlite {
    fn memory() -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(sqlite_error)?;
        configure(&conn)?;
        let pool = Pool::new(vec![conn]);
        Ok(Self {
            writer: Arc::clone(&pool),
            readers: pool,
        })
    }

    fn file(path: &Path) -> Result<Self> {
        create_private(path)?;
        let writer = Connection::open(path).map_err(|e| open_error(path, e))?;
        configure(&writer)?;
        let mode: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(sqlite_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Backend(format!(
                "{}: SQLite refused WAL mode (got {mode})",
                path.display()
            )));
        }
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let reader =
                Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e))?;
            configure(&reader)?;
            reader
                .pragma_update(None, "query_only", true)
                .map_err(sqlite_error)?;
            readers.push(reader);
        }
        Ok(Self {
            writer: Pool::new(vec![writer]),
            readers: Pool::new(readers),
        })
    }
}

/// Creates the database file readable by its owner only (it holds join tokens), unless it
/// exists. SQLite gives its `-wal` and `-shm` files the database file's permissions.
fn create_private(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::Backend(format!(
            "cannot create SQLite database {}: {e}",
            path.display()
        ))),
    }
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite_error)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(sqlite_error)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sqlite_error)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

impl Backend for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn read<R: Send + 'static>(&self, f: impl TxFn<R>) -> impl Future<Output = Result<R>> + Send {
        let pool = Arc::clone(&self.readers);
        async move {
            pool.run(move |conn| transaction(conn, "BEGIN DEFERRED", f))
                .await
        }
    }

    fn write<R: Send + 'static>(&self, f: impl TxFn<R>) -> impl Future<Output = Result<R>> + Send {
        let pool = Arc::clone(&self.writer);
        async move {
            pool.run(move |conn| transaction(conn, "BEGIN IMMEDIATE", f))
                .await
        }
    }
}

/// Runs `f` between `begin` and COMMIT (ROLLBACK when it fails).
fn transaction<R>(conn: &mut Connection, begin: &str, f: impl TxFn<R>) -> Result<R> {
    conn.execute_batch(begin).map_err(sqlite_error)?;
    let result = block_on_ready(f(&mut SqliteDb { conn }));
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    if let Err(e) = conn.execute_batch(end) {
        if !conn.is_autocommit() {
            // Best effort: the connection must not go back to the pool inside a transaction.
            let _ = conn.execute_batch("ROLLBACK");
        }
        if result.is_ok() {
            return Err(sqlite_error(e));
        }
    }
    result
}

/// Polls a future that is ready at once: the shared datastore code over [`SqliteDb`], whose
/// every call completes synchronously.
fn block_on_ready<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(result) => result,
        Poll::Pending => Err(Error::Backend(
            "internal error: a SQLite transaction waited on something other than SQLite".into(),
        )),
    }
}

// === impl Pool ===

/// Connections handed to blocking tasks one at a time.
struct Pool {
    conns: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("available", &self.permits.available_permits())
            .finish()
    }
}

impl Pool {
    fn new(conns: Vec<Connection>) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(conns.len())),
            conns: Mutex::new(conns),
        })
    }

    /// Runs `f` with a connection on the blocking pool. The connection goes back to the pool
    /// when `f` ends, even if the caller stopped waiting or `f` panicked.
    async fn run<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::Backend("SQLite connection pool closed".into()))?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = pool
                .conns
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop()
                .ok_or_else(|| Error::Backend("SQLite connection pool is empty".into()))?;
            let mut checkout = Checkout {
                conn: Some(conn),
                pool,
                _permit: permit,
            };
            match checkout.conn.as_mut() {
                Some(conn) => f(conn),
                None => Err(Error::Backend("SQLite connection lost".into())),
            }
        })
        .await
        .map_err(|e| Error::Backend(format!("SQLite task failed: {e}")))?
    }
}

/// A connection out of its pool; returns it on drop, rolled back if a transaction was left
/// open by a panic.
struct Checkout {
    conn: Option<Connection>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            self.pool
                .conns
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
        }
        // The permit is released after this, when the fields drop.
    }
}

// === impl SqliteDb ===

/// [`Db`] over a SQLite connection inside a transaction. Every method completes without
/// suspending.
struct SqliteDb<'c> {
    conn: &'c mut Connection,
}

impl SqliteDb<'_> {
    fn run_query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let mut stmt = self
            .conn
            .prepare_cached(&sqlite_placeholders(sql))
            .map_err(sqlite_error)?;
        let columns = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params))
            .map_err(sqlite_error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(sqlite_error)? {
            let row = SqliteRow(row);
            let values = (0..columns)
                .map(|i| row.value(i).map(Value::from))
                .collect::<Result<Vec<_>>>()?;
            out.push(Row(values));
        }
        Ok(out)
    }
}

#[async_trait]
impl Db for SqliteDb<'_> {
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        self.run_query(sql, params)
    }

    async fn query_each(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut EachRow<'_>,
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached(&sqlite_placeholders(sql))
            .map_err(sqlite_error)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params))
            .map_err(sqlite_error)?;
        while let Some(row) = rows.next().map_err(sqlite_error)? {
            each(&SqliteRow(row))?;
        }
        Ok(())
    }

    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let mut stmt = self
            .conn
            .prepare_cached(&sqlite_placeholders(sql))
            .map_err(sqlite_error)?;
        let n = stmt
            .execute(rusqlite::params_from_iter(params))
            .map_err(sqlite_error)?;
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    }

    async fn execute_script(&mut self, sql: &str) -> Result<()> {
        self.conn.execute_batch(sql).map_err(sqlite_error)
    }

    async fn lock(&mut self, _lock: Lock) -> Result<()> {
        // One writer connection, and `BEGIN IMMEDIATE` excludes other processes' writers.
        Ok(())
    }

    fn event_written(&mut self, _id: EventId) {}
}

/// A row in place in a SQLite statement, for [`Db::query_each`].
struct SqliteRow<'r, 's>(&'r rusqlite::Row<'s>);

impl RowRef for SqliteRow<'_, '_> {
    fn value(&self, i: usize) -> Result<ValueRef<'_>> {
        Ok(match self.0.get_ref(i).map_err(sqlite_error)? {
            SqliteValue::Null => ValueRef::Null,
            SqliteValue::Integer(v) => ValueRef::Int(v),
            SqliteValue::Text(bytes) => ValueRef::Text(
                std::str::from_utf8(bytes)
                    .map_err(|e| Error::Backend(format!("SQLite: column {i} is not UTF-8: {e}")))?,
            ),
            SqliteValue::Blob(bytes) => ValueRef::Blob(bytes),
            SqliteValue::Real(_) => {
                return Err(Error::Backend(format!("SQLite: column {i} is a real")));
            }
        })
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Self::Null => ToSqlOutput::Borrowed(SqliteValue::Null),
            Self::Int(v) => ToSqlOutput::Borrowed(SqliteValue::Integer(*v)),
            Self::Bool(v) => ToSqlOutput::Borrowed(SqliteValue::Integer(i64::from(*v))),
            Self::Text(v) => ToSqlOutput::Borrowed(SqliteValue::Text(v.as_bytes())),
            Self::Blob(v) => ToSqlOutput::Borrowed(SqliteValue::Blob(v)),
        })
    }
}

/// Maps a driver error; never includes SQL text.
fn sqlite_error(e: rusqlite::Error) -> Error {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => Error::Backend(format!(
            "SQLite: {}",
            message.unwrap_or_else(|| code.to_string())
        )),
        rusqlite::Error::SqlInputError { msg, .. } => Error::Backend(format!("SQLite: {msg}")),
        other => Error::Backend(format!("SQLite: {other}")),
    }
}

fn open_error(path: &Path, e: rusqlite::Error) -> Error {
    let path: PathBuf = path.to_owned();
    Error::Backend(format!(
        "cannot open SQLite database {}: {}",
        path.display(),
        sqlite_error(e)
    ))
}

#[cfg(test)]
mod tests;
