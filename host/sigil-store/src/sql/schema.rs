//! The schema and its migrations.
//!
//! The schema is written once, with a few `{PLACEHOLDER}`s for the types the two databases
//! spell differently. Migrations are numbered from 1; the database records the last one applied
//! in `sigil_schema_version`, and [`migrate`] applies the missing ones inside the opening
//! transaction, so a failed migration leaves the database as it was.

use tracing::info;

use super::{Db, Lock, query_opt};
use crate::{Error, Result};

/// The schema version this build writes. Opening a database at a higher version fails with
/// [`Error::SchemaTooNew`].
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Which SQL the schema is rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// SQLite 3.35 or later (for `RETURNING`).
    Sqlite,
    /// PostgreSQL 12 or later.
    Postgres,
}

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2];

/// Version 1.
///
/// - Entries have an integer surrogate key `pk`; child tables reference it, which keeps the
///   selector index small. `id` is the entry ID that pages are ordered by.
/// - `entry_selectors (entry_pk, type, value)` with an index on `(type, value, entry_pk)`: a
///   lookup by one selector is one index range scan. `entries (parent_id, id)` serves listing
///   by parent ID in page order.
/// - `dns_names` is a JSON array: it is never filtered on and its order matters.
/// - Keys compared for paging use byte order on both databases (`COLLATE "C"` on PostgreSQL).
const V1: &str = r#"
CREATE TABLE entries (
    pk {PK},
    id {KEY} NOT NULL UNIQUE,
    spiffe_id TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    x509_svid_ttl BIGINT NOT NULL,
    jwt_svid_ttl BIGINT NOT NULL,
    admin {BOOL} NOT NULL,
    downstream {BOOL} NOT NULL,
    dns_names TEXT NOT NULL,
    hint TEXT NOT NULL,
    store_svid {BOOL} NOT NULL,
    expires_at BIGINT,
    revision_number BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX entries_parent_id ON entries (parent_id, id);
CREATE INDEX entries_spiffe_id ON entries (spiffe_id, parent_id);
CREATE INDEX entries_hint ON entries (hint);
CREATE INDEX entries_expires_at ON entries (expires_at);

CREATE TABLE entry_selectors (
    entry_pk BIGINT NOT NULL REFERENCES entries (pk) ON DELETE CASCADE,
    type TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (entry_pk, type, value)
){WITHOUT_ROWID};
CREATE INDEX entry_selectors_type_value ON entry_selectors (type, value, entry_pk);

CREATE TABLE entry_federates_with (
    entry_pk BIGINT NOT NULL REFERENCES entries (pk) ON DELETE CASCADE,
    trust_domain TEXT NOT NULL,
    PRIMARY KEY (entry_pk, trust_domain)
){WITHOUT_ROWID};
CREATE INDEX entry_federates_with_trust_domain ON entry_federates_with (trust_domain, entry_pk);

CREATE TABLE agents (
    pk {PK},
    spiffe_id {KEY} NOT NULL UNIQUE,
    attestation_type TEXT NOT NULL,
    cert_serial_number TEXT NOT NULL,
    cert_not_after BIGINT NOT NULL,
    new_cert_serial_number TEXT NOT NULL,
    new_cert_not_after BIGINT NOT NULL,
    banned {BOOL} NOT NULL,
    can_reattest {BOOL} NOT NULL
);
CREATE INDEX agents_cert_not_after ON agents (cert_not_after);

CREATE TABLE agent_selectors (
    agent_pk BIGINT NOT NULL REFERENCES agents (pk) ON DELETE CASCADE,
    type TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (agent_pk, type, value)
){WITHOUT_ROWID};
CREATE INDEX agent_selectors_type_value ON agent_selectors (type, value, agent_pk);

CREATE TABLE bundles (
    trust_domain {KEY} PRIMARY KEY,
    document TEXT NOT NULL
);

CREATE TABLE join_tokens (
    token TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX join_tokens_expires_at ON join_tokens (expires_at);

CREATE TABLE ca_journals (
    name TEXT PRIMARY KEY,
    journal {BLOB} NOT NULL
);

CREATE TABLE federation_relationships (
    trust_domain {KEY} PRIMARY KEY,
    bundle_endpoint_url TEXT NOT NULL,
    profile TEXT NOT NULL,
    endpoint_spiffe_id TEXT
);

CREATE TABLE events (
    id {PK},
    kind TEXT NOT NULL,
    object_id TEXT NOT NULL,
    op TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX events_created_at ON events (created_at);
"#;

/// Version 2: the version an agent reports through `PostStatus` (SPIRE's
/// `attested_node_entries.agent_version`).
const V2: &str = "ALTER TABLE agents ADD COLUMN agent_version TEXT NOT NULL DEFAULT '';";

/// The schema text for `dialect`.
pub(crate) fn render(template: &str, dialect: Dialect) -> String {
    let (pk, key, boolean, blob, without_rowid) = match dialect {
        // AUTOINCREMENT: IDs are never reused, even after the newest rows are deleted; the
        // event log relies on that.
        Dialect::Sqlite => (
            "INTEGER PRIMARY KEY AUTOINCREMENT",
            "TEXT",
            "INTEGER",
            "BLOB",
            " WITHOUT ROWID",
        ),
        Dialect::Postgres => (
            "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
            "TEXT COLLATE \"C\"",
            "BOOLEAN",
            "BYTEA",
            "",
        ),
    };
    template
        .replace("{PK}", pk)
        .replace("{KEY}", key)
        .replace("{BOOL}", boolean)
        .replace("{BLOB}", blob)
        .replace("{WITHOUT_ROWID}", without_rowid)
}

/// Brings the schema up to [`SCHEMA_VERSION`]; returns the version found before.
pub(crate) async fn migrate(db: &mut dyn Db, dialect: Dialect) -> Result<i64> {
    db.lock(Lock::Migrations).await?;
    db.execute_script("CREATE TABLE IF NOT EXISTS sigil_schema_version (version BIGINT NOT NULL)")
        .await?;
    let found = match query_opt(db, "SELECT MAX(version) FROM sigil_schema_version", &[]).await? {
        Some(row) => row.opt_int(0)?,
        None => None,
    };
    let found = match found {
        Some(v) => v,
        None => {
            db.execute("INSERT INTO sigil_schema_version (version) VALUES (0)", &[])
                .await?;
            0
        }
    };
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, script) in (1_i64..).zip(MIGRATIONS) {
        if version <= found {
            continue;
        }
        db.execute_script(&render(script, dialect)).await?;
        db.execute(
            "UPDATE sigil_schema_version SET version = $1",
            &[version.into()],
        )
        .await?;
        info!(version, "datastore schema migrated");
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_rendered() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            for m in MIGRATIONS {
                let sql = render(m, dialect);
                assert!(!sql.contains('{'), "{dialect:?}: {sql}");
            }
        }
    }
}
