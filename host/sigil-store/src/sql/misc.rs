//! Join tokens and CA journals: single-table key/value records.

use sigil_types::{JoinToken, UnixTime};

use super::{Db, query_opt};
use crate::{Error, ObjectKind, Result};

/// Join tokens are secrets: errors never name them.
const REDACTED: &str = "<redacted>";

/// Stores a join token.
pub(crate) async fn create_join_token(db: &mut dyn Db, token: JoinToken) -> Result<()> {
    if token.token.is_empty() {
        return Err(Error::invalid("token", "must not be empty"));
    }
    let rows = db
        .query(
            "INSERT INTO join_tokens (token, expires_at) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING RETURNING token",
            &[token.token.as_str().into(), token.expires_at.into()],
        )
        .await?;
    if rows.is_empty() {
        return Err(Error::already_exists(ObjectKind::JoinToken, REDACTED));
    }
    Ok(())
}

/// The join token with this secret.
pub(crate) async fn fetch_join_token(db: &mut dyn Db, token: &str) -> Result<Option<JoinToken>> {
    query_opt(
        db,
        "SELECT expires_at FROM join_tokens WHERE token = $1",
        &[token.into()],
    )
    .await?
    .map(|row| {
        Ok(JoinToken {
            token: token.to_owned(),
            expires_at: row.int(0)?,
        })
    })
    .transpose()
}

/// Deletes a join token.
pub(crate) async fn delete_join_token(db: &mut dyn Db, token: &str) -> Result<()> {
    let n = db
        .execute("DELETE FROM join_tokens WHERE token = $1", &[token.into()])
        .await?;
    if n == 0 {
        return Err(Error::not_found(ObjectKind::JoinToken, REDACTED));
    }
    Ok(())
}

/// Deletes the tokens that expired before `expires_before`.
pub(crate) async fn prune_join_tokens(db: &mut dyn Db, expires_before: UnixTime) -> Result<u64> {
    db.execute(
        "DELETE FROM join_tokens WHERE expires_at < $1",
        &[expires_before.into()],
    )
    .await
}

/// Deletes the token and returns it: `Ok(Ok(token))` when it was valid, `Ok(Err(expired))`
/// when it had expired. The outer error is for failures that must roll back; the inner one
/// lets the deletion of an expired token commit.
pub(crate) async fn take_join_token(
    db: &mut dyn Db,
    token: &str,
    now: UnixTime,
) -> Result<Result<JoinToken>> {
    let row = query_opt(
        db,
        "DELETE FROM join_tokens WHERE token = $1 RETURNING expires_at",
        &[token.into()],
    )
    .await?
    .ok_or_else(|| Error::not_found(ObjectKind::JoinToken, REDACTED))?;
    let expires_at = row.int(0)?;
    if expires_at < now {
        return Ok(Err(Error::JoinTokenExpired {
            expired_at: expires_at,
        }));
    }
    Ok(Ok(JoinToken {
        token: token.to_owned(),
        expires_at,
    }))
}

/// Stores a CA journal, replacing the previous one.
pub(crate) async fn set_ca_journal(db: &mut dyn Db, name: &str, journal: Vec<u8>) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("name", "must not be empty"));
    }
    db.execute(
        "INSERT INTO ca_journals (name, journal) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET journal = excluded.journal",
        &[name.into(), journal.into()],
    )
    .await?;
    Ok(())
}

/// The CA journal `name`.
pub(crate) async fn fetch_ca_journal(db: &mut dyn Db, name: &str) -> Result<Option<Vec<u8>>> {
    query_opt(
        db,
        "SELECT journal FROM ca_journals WHERE name = $1",
        &[name.into()],
    )
    .await?
    .map(|mut row| row.take_blob(0))
    .transpose()
}
