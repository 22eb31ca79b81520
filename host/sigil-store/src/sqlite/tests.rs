use rusqlite::Connection;

use super::*;
use crate::sql::{list_sql, migrate, sqlite_placeholders};
use crate::{EntryFilter, MatchMode, PageRequest, SelectorMatch};

/// Why the shared SQL is rewritten for SQLite: SQLite numbers `$n` parameters by first
/// appearance, not by `n`; `?n` is numbered by `n`.
#[test]
fn dollar_parameters_are_numbered_by_appearance_in_sqlite() {
    let conn = Connection::open_in_memory().expect("open");
    let raw: (i64, i64) = conn
        .query_row("SELECT $2, $1", [10, 20], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query");
    assert_eq!(raw, (10, 20), "SQLite bound $2 to the first value");
    let sql = sqlite_placeholders("SELECT $2, $1, $2 + $10");
    assert_eq!(sql, "SELECT ?2, ?1, ?2 + ?10");
    let rewritten: (i64, i64) = conn
        .query_row("SELECT ?2, ?1", [10, 20], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query");
    assert_eq!(rewritten, (20, 10));
}

fn migrated() -> Connection {
    let mut conn = Connection::open_in_memory().expect("open");
    configure(&conn).expect("configure");
    transaction(&mut conn, "BEGIN IMMEDIATE", |db| {
        Box::pin(migrate(db, Dialect::Sqlite))
    })
    .expect("migrate");
    conn
}

/// The plan SQLite picks for the list statement built from `filter`.
fn plan(conn: &Connection, filter: &EntryFilter) -> String {
    let sql = list_sql(filter, Some(&PageRequest::first(100))).expect("statement");
    let mut stmt = conn
        .prepare(&format!(
            "EXPLAIN QUERY PLAN {}",
            sqlite_placeholders(&sql.text)
        ))
        .expect("prepare");
    let rows = stmt
        .query_map(rusqlite::params_from_iter(&sql.params), |r| {
            r.get::<_, String>(3)
        })
        .expect("explain");
    rows.map(|r| r.expect("plan row"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Listing by one selector and by parent ID are index lookups, never scans of a table.
#[test]
fn list_by_selector_and_by_parent_use_indexes() {
    let conn = migrated();
    let by_selector = EntryFilter {
        by_selectors: Some(SelectorMatch {
            selectors: vec!["k8s:ns:web".parse().expect("selector")],
            mode: MatchMode::Superset,
        }),
        ..EntryFilter::default()
    };
    let p = plan(&conn, &by_selector);
    assert!(p.contains("entry_selectors_type_value"), "{p}");
    assert!(!p.contains("SCAN"), "{p}");

    let by_parent = EntryFilter {
        by_parent_id: Some("spiffe://example.org/agent/a".parse().expect("SPIFFE ID")),
        ..EntryFilter::default()
    };
    let p = plan(&conn, &by_parent);
    assert!(p.contains("entries_parent_id"), "{p}");
    assert!(!p.contains("SCAN"), "{p}");
}

/// The database holds join tokens: a new file, and a new data directory, are private.
#[cfg(unix)]
#[tokio::test]
async fn new_database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;

    let root = tempfile::tempdir().expect("temporary directory");
    let dir = root.path().join("data");
    let store = open_in_dir(&dir).await.expect("open");
    store
        .create_join_token(sigil_types::JoinToken {
            token: "t".into(),
            expires_at: 1,
        })
        .await
        .expect("write");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(DEFAULT_FILE_NAME)), 0o600);
    assert_eq!(mode(&dir.join(format!("{DEFAULT_FILE_NAME}-wal"))), 0o600);
}
