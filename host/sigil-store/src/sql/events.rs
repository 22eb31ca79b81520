//! The change-event log: written by every entry and agent write, in its transaction.

use sigil_types::UnixTime;

use super::Db;
use super::value::{Sql, pow2_chunks};
use crate::{Error, Event, EventId, EventKind, EventOp, Result};

/// Appends one event per object, in the order given.
pub(crate) async fn append(
    db: &mut dyn Db,
    kind: EventKind,
    op: EventOp,
    object_ids: &[String],
    now: UnixTime,
) -> Result<()> {
    for chunk in pow2_chunks(object_ids.len(), 128) {
        let mut sql = Sql::new("INSERT INTO events (kind, object_id, op, created_at) VALUES ");
        let kind = sql.bind(kind.as_str());
        let op = sql.bind(op.as_str());
        let now = sql.bind(now);
        for (i, id) in object_ids[chunk].iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push(&format!("({kind}, "))
                .param(id.as_str())
                .push(&format!(", {op}, {now})"));
        }
        sql.push(" RETURNING id");
        for row in db.query(&sql.text, &sql.params).await? {
            db.event_written(row.int(0)?);
        }
    }
    Ok(())
}

/// Appends one event.
pub(crate) async fn append_one(
    db: &mut dyn Db,
    kind: EventKind,
    op: EventOp,
    object_id: &str,
    now: UnixTime,
) -> Result<()> {
    append(db, kind, op, &[object_id.to_owned()], now).await
}

/// Up to `limit` events after `after`.
pub(crate) async fn list(db: &mut dyn Db, after: EventId, limit: u32) -> Result<Vec<Event>> {
    let rows = db
        .query(
            "SELECT id, kind, object_id, op, created_at FROM events WHERE id > $1 \
             ORDER BY id LIMIT $2",
            &[after.into(), limit.into()],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let id = row.int(0)?;
            let kind = row.text(1)?;
            let op = row.text(3)?;
            Ok(Event {
                id,
                kind: EventKind::parse(kind)
                    .ok_or_else(|| Error::corrupt(format!("event {id}"), "unknown kind"))?,
                object_id: row.text(2)?.to_owned(),
                op: EventOp::parse(op)
                    .ok_or_else(|| Error::corrupt(format!("event {id}"), "unknown op"))?,
                created_at: row.int(4)?,
            })
        })
        .collect()
}

/// The highest event ID, 0 when there is none.
pub(crate) async fn latest(db: &mut dyn Db) -> Result<EventId> {
    let rows = db.query("SELECT MAX(id) FROM events", &[]).await?;
    match rows.first() {
        Some(row) => Ok(row.opt_int(0)?.unwrap_or(0)),
        None => Ok(0),
    }
}

/// Deletes the events created before `before`.
pub(crate) async fn prune(db: &mut dyn Db, before: UnixTime) -> Result<u64> {
    let n = db
        .execute("DELETE FROM events WHERE created_at < $1", &[before.into()])
        .await?;
    Ok(n)
}
