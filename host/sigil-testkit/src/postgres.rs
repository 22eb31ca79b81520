//! A PostgreSQL schema per test in the database `DATABASE_URL` names (scripts/test.sh sets
//! it): a uniquely named schema, a store URL whose `search_path` is that schema, and the
//! schema dropped again when the [`Schema`] is. Without `DATABASE_URL` a test fails, never
//! skips.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio_postgres::{Client, NoTls};

/// `DATABASE_URL`; panics, naming it, when it is not set.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "DATABASE_URL is not set: the PostgreSQL tests need a database (scripts/test.sh \
             sets it), e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/test"
        )
    })
}

/// A connection to `url` for set-up SQL, its connection task spawned on the current runtime.
pub async fn admin_client(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to DATABASE_URL: {e}"));
    tokio::spawn(connection);
    client
}

/// `url` with `param` (`key=value`) added to its query string.
pub fn with_param(url: &str, param: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{param}")
}

/// A fresh schema in the `DATABASE_URL` database, dropped (with everything in it) when this
/// is dropped, also when the test panics.
#[derive(Debug)]
pub struct Schema {
    url: String,
    name: String,
    dropped: AtomicBool,
}

impl Schema {
    /// Creates `<prefix>_<random hex>` in the `DATABASE_URL` database. Callable from
    /// synchronous and asynchronous tests alike (the SQL runs on a thread of its own).
    pub fn create(prefix: &str) -> Schema {
        let url = database_url();
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let sql = format!("CREATE SCHEMA {name}");
        if let Err(e) = execute_blocking(&url, &sql) {
            panic!("{sql}: {e}");
        }
        Schema {
            url,
            name,
            dropped: AtomicBool::new(false),
        }
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database URL (`DATABASE_URL`), for set-up connections that name the schema.
    pub fn database_url(&self) -> &str {
        &self.url
    }

    /// The database URL with `search_path` set to this schema: what a store opens.
    pub fn store_url(&self) -> String {
        with_param(&self.url, &format!("options=-csearch_path%3D{}", self.name))
    }

    /// Drops the schema now (a fixture's teardown); dropping `self` later does nothing more.
    pub async fn drop_now(&self) {
        if self.dropped.swap(true, Ordering::SeqCst) {
            return;
        }
        let sql = drop_sql(&self.name);
        if let Err(e) = admin_client(&self.url).await.batch_execute(&sql).await {
            eprintln!("{sql}: {e}");
        }
    }

    /// Keeps the schema after this is dropped (a benchmark asked to keep its data); its name.
    pub fn keep(mut self) -> String {
        self.dropped.store(true, Ordering::SeqCst);
        std::mem::take(&mut self.name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if self.dropped.swap(true, Ordering::SeqCst) {
            return;
        }
        let sql = drop_sql(&self.name);
        if let Err(e) = execute_blocking(&self.url, &sql) {
            eprintln!("{sql}: {e}");
        }
    }
}

fn drop_sql(name: &str) -> String {
    format!("DROP SCHEMA IF EXISTS {name} CASCADE")
}

/// Runs `sql` on a connection to `url` from a thread and runtime of its own, so that it can
/// be called from inside or outside a runtime (and from `Drop`).
fn execute_blocking(url: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the schema SQL");
        runtime.block_on(async move {
            let (client, connection) = tokio_postgres::connect(&url, NoTls).await?;
            tokio::spawn(connection);
            client.batch_execute(&sql).await
        })
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
