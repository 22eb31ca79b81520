//! The PostgreSQL backend, for several servers sharing one database.
//!
//! Connections come from a deadpool pool; every call is one transaction on one connection,
//! with statements prepared once per connection. Reads run in `REPEATABLE READ READ ONLY`
//! transactions so a listing and the selectors it loads come from one snapshot. Writes run in
//! `READ COMMITTED` and take transaction-scoped advisory locks (keyed by schema) where a check
//! and a write must be atomic across servers, such as the entry duplicate check. A transaction
//! that wrote change events sends `NOTIFY sigil_events, '<highest event id>'` as it commits.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{IsolationLevel, NoTls, Statement};

use crate::sql::{
    Backend, Db, Dialect, EachRow, Lock, Row, RowRef, SqlStore, TxFn, Value, ValueRef,
};
use crate::{DataStore, Error, EventId, Result};

/// The channel change events are announced on; the payload is the highest event ID the
/// committing transaction wrote, in decimal.
pub const EVENTS_CHANNEL: &str = "sigil_events";

/// Connections the pool opens at most, unless told otherwise.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// Statements with more parameters than this are batch statements built for one call (multi-
/// row inserts, `IN` lists, multi-key lookups). They are prepared for that call only, which
/// also makes PostgreSQL plan them with the actual values: a cached statement soon gets a
/// generic plan, and one made while a table was still nearly empty scans the whole table for
/// good (a bulk load into a fresh database slowed down 100-fold that way).
const CACHE_MAX_PARAMS: usize = 16;

/// Past this many prepared statements on one connection, its cache is emptied (filters build
/// statements whose text varies with the number of selectors).
const STATEMENT_CACHE_LIMIT: usize = 512;

/// Connects to PostgreSQL (`postgres://user@host:port/db?…` or `host=… user=…`) and migrates
/// the schema. TLS is not supported yet: use a local socket or a trusted network.
pub async fn connect(connection_string: &str) -> Result<Arc<dyn DataStore>> {
    connect_with_pool_size(connection_string, DEFAULT_POOL_SIZE).await
}

/// [`connect`] with at most `pool_size` connections.
pub async fn connect_with_pool_size(
    connection_string: &str,
    pool_size: usize,
) -> Result<Arc<dyn DataStore>> {
    let config: tokio_postgres::Config = connection_string
        .parse()
        .map_err(|e| Error::Backend(format!("invalid PostgreSQL connection string: {e}")))?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(pool_size.max(1))
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(Duration::from_secs(10)))
        .wait_timeout(Some(Duration::from_secs(30)))
        .build()
        .map_err(|e| Error::Backend(format!("cannot build PostgreSQL pool: {e}")))?;
    Ok(Arc::new(SqlStore::open(Postgres { pool }).await?))
}

// === impl Postgres ===

/// The PostgreSQL [`Backend`].
struct Postgres {
    pool: Pool,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's Debug would print the connection settings, password included.
        f.debug_struct("Postgres")
            .field("pool_size", &self.pool.status().max_size)
            .finish()
    }
}

impl Postgres {
    async fn client(pool: &Pool) -> Result<deadpool_postgres::Object> {
        let client = pool
            .get()
            .await
            .map_err(|e| Error::Backend(format!("PostgreSQL connection: {e}")))?;
        if client.statement_cache.size() > STATEMENT_CACHE_LIMIT {
            client.statement_cache.clear();
        }
        Ok(client)
    }
}

impl Backend for Postgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn read<R: Send + 'static>(&self, f: impl TxFn<R>) -> impl Future<Output = Result<R>> + Send {
        let pool = self.pool.clone();
        async move {
            let mut client = Self::client(&pool).await?;
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(pg_error)?;
            let mut db = PgDb {
                tx,
                last_event: None,
            };
            let result = f(&mut db).await;
            db.finish(result).await
        }
    }

    fn write<R: Send + 'static>(&self, f: impl TxFn<R>) -> impl Future<Output = Result<R>> + Send {
        let pool = self.pool.clone();
        async move {
            let mut client = Self::client(&pool).await?;
            let tx = client.transaction().await.map_err(pg_error)?;
            let mut db = PgDb {
                tx,
                last_event: None,
            };
            let result = f(&mut db).await;
            db.finish(result).await
        }
    }
}

// === impl PgDb ===

/// [`Db`] over a PostgreSQL transaction.
struct PgDb<'c> {
    tx: deadpool_postgres::Transaction<'c>,
    /// The highest event ID written, announced at commit.
    last_event: Option<EventId>,
}

impl PgDb<'_> {
    /// Commits (announcing the events written) when `result` is `Ok`, rolls back otherwise.
    async fn finish<R>(mut self, result: Result<R>) -> Result<R> {
        match result {
            Ok(value) => {
                if let Some(id) = self.last_event {
                    self.execute(
                        "SELECT pg_notify($1, $2)",
                        &[EVENTS_CHANNEL.into(), id.to_string().into()],
                    )
                    .await?;
                }
                self.tx.commit().await.map_err(pg_error)?;
                Ok(value)
            }
            Err(e) => {
                // A failed rollback means a broken connection, which the pool discards.
                let _ = self.tx.rollback().await;
                Err(e)
            }
        }
    }

    async fn prepare(&self, sql: &str, params: &[Value]) -> Result<(Statement, Vec<Param>)> {
        let stmt = if params.len() > CACHE_MAX_PARAMS {
            self.tx.prepare(sql).await
        } else {
            self.tx.prepare_cached(sql).await
        }
        .map_err(pg_error)?;
        if stmt.params().len() != params.len() {
            return Err(Error::Backend(format!(
                "statement takes {} parameters, {} given",
                stmt.params().len(),
                params.len()
            )));
        }
        let bound = stmt
            .params()
            .iter()
            .zip(params)
            .map(|(ty, value)| bind(ty, value))
            .collect::<Result<Vec<_>>>()?;
        Ok((stmt, bound))
    }
}

#[async_trait]
impl Db for PgDb<'_> {
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let (stmt, bound) = self.prepare(sql, params).await?;
        let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|p| p.as_ref() as _).collect();
        let rows = self.tx.query(&stmt, &refs).await.map_err(pg_error)?;
        rows.iter().map(row_values).collect()
    }

    async fn query_each(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut EachRow<'_>,
    ) -> Result<()> {
        let (stmt, bound) = self.prepare(sql, params).await?;
        let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|p| p.as_ref() as _).collect();
        let rows = self.tx.query(&stmt, &refs).await.map_err(pg_error)?;
        for row in &rows {
            each(&PgRow(row))?;
        }
        Ok(())
    }

    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let (stmt, bound) = self.prepare(sql, params).await?;
        let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|p| p.as_ref() as _).collect();
        self.tx.execute(&stmt, &refs).await.map_err(pg_error)
    }

    async fn execute_script(&mut self, sql: &str) -> Result<()> {
        self.tx.batch_execute(sql).await.map_err(pg_error)
    }

    async fn lock(&mut self, lock: Lock) -> Result<()> {
        // Keyed by schema, so stores in different schemas of one database do not contend.
        self.execute(
            "SELECT pg_advisory_xact_lock(hashtext(current_schema()), $1)",
            &[Value::Int(lock as i64)],
        )
        .await?;
        Ok(())
    }

    fn event_written(&mut self, id: EventId) {
        self.last_event = Some(self.last_event.map_or(id, |last| last.max(id)));
    }
}

/// A bound parameter.
type Param = Box<dyn ToSql + Sync + Send>;

/// Converts `value` to the Rust type the driver wants for a parameter of type `ty`.
fn bind(ty: &Type, value: &Value) -> Result<Param> {
    let mismatch = || Error::Backend(format!("cannot bind {value:?} to a {ty} parameter"));
    let param: Param = if *ty == Type::INT8 {
        match value {
            Value::Null => Box::new(None::<i64>),
            Value::Int(v) => Box::new(*v),
            Value::Bool(v) => Box::new(i64::from(*v)),
            _ => return Err(mismatch()),
        }
    } else if *ty == Type::INT4 {
        match value {
            Value::Null => Box::new(None::<i32>),
            Value::Int(v) => Box::new(i32::try_from(*v).map_err(|_| mismatch())?),
            _ => return Err(mismatch()),
        }
    } else if *ty == Type::BOOL {
        match value {
            Value::Null => Box::new(None::<bool>),
            Value::Bool(v) => Box::new(*v),
            Value::Int(v) => Box::new(*v != 0),
            _ => return Err(mismatch()),
        }
    } else if *ty == Type::BYTEA {
        match value {
            Value::Null => Box::new(None::<Vec<u8>>),
            Value::Blob(v) => Box::new(v.clone()),
            _ => return Err(mismatch()),
        }
    } else {
        // TEXT, VARCHAR, NAME…: the driver checks that a string fits.
        match value {
            Value::Null => Box::new(None::<String>),
            Value::Text(v) => Box::new(v.clone()),
            _ => return Err(mismatch()),
        }
    };
    Ok(param)
}

/// Converts a driver row.
fn row_values(row: &tokio_postgres::Row) -> Result<Row> {
    let borrowed = PgRow(row);
    (0..row.len())
        .map(|i| borrowed.value(i).map(Value::from))
        .collect::<Result<Vec<_>>>()
        .map(Row)
}

/// A row in place in the driver's buffer, for [`Db::query_each`]: text is borrowed.
struct PgRow<'r>(&'r tokio_postgres::Row);

impl RowRef for PgRow<'_> {
    fn value(&self, i: usize) -> Result<ValueRef<'_>> {
        let row = self.0;
        let ty = row
            .columns()
            .get(i)
            .ok_or_else(|| Error::Backend(format!("result row has no column {i}")))?
            .type_();
        let value = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)
                .map(|v| v.map_or(ValueRef::Null, ValueRef::Int))
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)
                .map(|v| v.map_or(ValueRef::Null, |v| ValueRef::Int(v.into())))
        } else if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)
                .map(|v| v.map_or(ValueRef::Null, ValueRef::Bool))
        } else if *ty == Type::BYTEA {
            row.try_get::<_, Option<&[u8]>>(i)
                .map(|v| v.map_or(ValueRef::Null, ValueRef::Blob))
        } else {
            row.try_get::<_, Option<&str>>(i)
                .map(|v| v.map_or(ValueRef::Null, ValueRef::Text))
        };
        value.map_err(pg_error)
    }
}

/// Maps a driver error to the database's message and SQLSTATE; never includes SQL text.
fn pg_error(e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => Error::Backend(format!(
            "PostgreSQL: {} (SQLSTATE {})",
            db.message(),
            db.code().code()
        )),
        None => Error::Backend(format!("PostgreSQL: {e}")),
    }
}
