//! The datastore conformance suite against every backend: SQLite in memory, SQLite in a file,
//! and PostgreSQL (`DATABASE_URL`, e.g. `postgres://postgres@127.0.0.1:5432/test`; each case
//! gets its own schema, dropped afterwards). Without `DATABASE_URL` the PostgreSQL cases fail.
#![expect(
    clippy::expect_used,
    reason = "test fixtures: a failed setup step fails the case"
)]

use std::sync::Arc;

use async_trait::async_trait;
use sigil_store::conformance::Fixture;
use sigil_store::{DataStore, Result};
use sigil_testkit::postgres::{Schema, admin_client};

// === SQLite ===

struct SqliteMemory;

#[async_trait]
impl Fixture for SqliteMemory {
    async fn open(&self) -> Result<Arc<dyn DataStore>> {
        sigil_store::sqlite::open_in_memory().await
    }
    async fn schema_version(&self) -> i64 {
        unreachable!("an in-memory database does not outlive its store")
    }
    async fn set_schema_version(&self, _version: i64) {
        unreachable!("an in-memory database does not outlive its store")
    }
    async fn teardown(&self) {}
}

async fn sqlite_memory_fixture() -> Box<dyn Fixture> {
    Box::new(SqliteMemory)
}

struct SqliteFile {
    dir: tempfile::TempDir,
}

impl SqliteFile {
    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join(sigil_store::sqlite::DEFAULT_FILE_NAME)
    }

    fn raw(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.path()).expect("open the SQLite file directly")
    }
}

#[async_trait]
impl Fixture for SqliteFile {
    async fn open(&self) -> Result<Arc<dyn DataStore>> {
        sigil_store::sqlite::open_in_dir(self.dir.path()).await
    }
    async fn schema_version(&self) -> i64 {
        self.raw()
            .query_row("SELECT version FROM sigil_schema_version", [], |r| r.get(0))
            .expect("read the schema version")
    }
    async fn set_schema_version(&self, version: i64) {
        self.raw()
            .execute("UPDATE sigil_schema_version SET version = ?1", [version])
            .expect("write the schema version");
    }
    async fn teardown(&self) {}
}

async fn sqlite_file_fixture() -> Box<dyn Fixture> {
    Box::new(SqliteFile {
        dir: tempfile::tempdir().expect("temporary directory"),
    })
}

mod sqlite_memory {
    sigil_store::store_conformance_tests!(crate::sqlite_memory_fixture);
}

mod sqlite_file {
    sigil_store::store_conformance_tests!(crate::sqlite_file_fixture);
    sigil_store::persistence_conformance_tests!(crate::sqlite_file_fixture);
}

// === PostgreSQL ===

/// A fresh schema per case; the store reaches it through `search_path`.
struct Postgres {
    schema: Schema,
}

#[async_trait]
impl Fixture for Postgres {
    async fn open(&self) -> Result<Arc<dyn DataStore>> {
        sigil_store::postgres::connect_with_pool_size(&self.schema.store_url(), 4).await
    }
    async fn schema_version(&self) -> i64 {
        let client = admin_client(self.schema.database_url()).await;
        let sql = format!(
            "SELECT version FROM {}.sigil_schema_version",
            self.schema.name()
        );
        client
            .query_one(&sql, &[])
            .await
            .expect("read the schema version")
            .get(0)
    }
    async fn set_schema_version(&self, version: i64) {
        let client = admin_client(self.schema.database_url()).await;
        let sql = format!(
            "UPDATE {}.sigil_schema_version SET version = $1",
            self.schema.name()
        );
        client
            .execute(&sql, &[&version])
            .await
            .expect("write the schema version");
    }
    async fn teardown(&self) {
        self.schema.drop_now().await;
    }
}

async fn postgres_fixture() -> Box<dyn Fixture> {
    Box::new(Postgres {
        schema: Schema::create("sigil_test"),
    })
}

mod postgres {
    use sigil_testkit::postgres::{admin_client, database_url};

    sigil_store::store_conformance_tests!(crate::postgres_fixture);
    sigil_store::persistence_conformance_tests!(crate::postgres_fixture);

    /// Committed event writes are announced on `sigil_events`, once per transaction, with the
    /// highest event ID; failed writes announce nothing. Runs in its own database, because
    /// notifications are per database.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_are_notified_on_commit() {
        use std::time::Duration;

        use sigil_store::conformance::support::entry;
        use tokio_postgres::AsyncMessage;

        let url = database_url();
        let db = format!("sigil_test_{}", uuid::Uuid::new_v4().simple());
        let admin = admin_client(&url).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .expect("create the test database");
        // Replace the database name in the URL's path.
        let (base, query) = url.split_once('?').unwrap_or((&url, ""));
        let (server, _) = base
            .rsplit_once('/')
            .expect("DATABASE_URL is a postgres:// URL");
        let db_url = if query.is_empty() {
            format!("{server}/{db}")
        } else {
            format!("{server}/{db}?{query}")
        };

        let outcome = tokio::spawn({
            let db_url = db_url.clone();
            async move {
                let (listener, mut connection) =
                    tokio_postgres::connect(&db_url, tokio_postgres::NoTls)
                        .await
                        .expect("connect the listener");
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                tokio::spawn(async move {
                    while let Some(Ok(message)) =
                        std::future::poll_fn(|cx| connection.poll_message(cx)).await
                    {
                        if let AsyncMessage::Notification(n) = message {
                            let _ = tx.send((n.channel().to_owned(), n.payload().to_owned()));
                        }
                    }
                });
                listener
                    .batch_execute("LISTEN sigil_events")
                    .await
                    .expect("listen");

                let store = sigil_store::postgres::connect(&db_url)
                    .await
                    .expect("connect");
                store
                    .create_entry(entry("/web", "a", &["unix:uid:0"]))
                    .await
                    .expect("create");
                let latest = store.latest_event_id().await.expect("latest");
                let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                    .await
                    .expect("a notification within 5 s")
                    .expect("listener alive");
                assert_eq!(first, ("sigil_events".to_owned(), latest.to_string()));

                let batch = (0..10)
                    .map(|i| entry(&format!("/w/{i}"), "a", &["unix:uid:0"]))
                    .collect();
                store.create_entries(batch).await.expect("batch");
                let _ = store
                    .create_entry(entry("/web", "a", &["unix:uid:0"]))
                    .await
                    .expect_err("duplicate");
                let latest = store.latest_event_id().await.expect("latest");
                tokio::time::sleep(Duration::from_millis(500)).await;
                let mut rest = Vec::new();
                while let Ok(n) = rx.try_recv() {
                    rest.push(n);
                }
                assert_eq!(
                    rest,
                    [("sigil_events".to_owned(), latest.to_string())],
                    "one notification per committed transaction, none for a failed one"
                );
            }
        })
        .await;
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}
