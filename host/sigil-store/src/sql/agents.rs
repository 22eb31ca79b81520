//! Attested agents.

use std::collections::HashMap;

use sigil_types::{AttestedAgent, Selector, SpiffeId, UnixTime};

use super::entry_query::{into_page, push_paging};
use super::events;
use super::filter::{AGENT_SELECTORS, push_set_match, selector_items};
use super::value::{Sql, Value, pow2_chunks, to_count};
use super::{Db, Lock, Row, entries};
use crate::{
    AgentFilter, AgentMask, Error, EventKind, EventOp, ObjectKind, Page, PageRequest, Result,
};

/// The agent columns, in the order [`agent_from_row`] reads them.
const AGENT_COLUMNS: &str = "a.pk, a.spiffe_id, a.attestation_type, a.cert_serial_number, \
     a.cert_not_after, a.new_cert_serial_number, a.new_cert_not_after, a.banned, a.can_reattest, \
     a.agent_version";

fn agent_from_row(row: &Row) -> Result<(i64, AttestedAgent)> {
    let id = row.text(1)?;
    let spiffe_id: SpiffeId = id
        .parse()
        .map_err(|e| Error::corrupt(format!("agent {id}"), e))?;
    Ok((
        row.int(0)?,
        AttestedAgent {
            spiffe_id,
            attestation_type: row.text(2)?.to_owned(),
            cert_serial_number: row.text(3)?.to_owned(),
            cert_not_after: row.int(4)?,
            new_cert_serial_number: row.text(5)?.to_owned(),
            new_cert_not_after: row.int(6)?,
            selectors: Vec::new(),
            banned: row.bool(7)?,
            can_reattest: row.bool(8)?,
            agent_version: row.text(9)?.to_owned(),
        },
    ))
}

/// Runs a query selecting [`AGENT_COLUMNS`] and returns complete agents.
async fn query_agents(db: &mut dyn Db, sql: &Sql) -> Result<Vec<(i64, AttestedAgent)>> {
    let rows = db.query(&sql.text, &sql.params).await?;
    let mut agents = rows
        .iter()
        .map(agent_from_row)
        .collect::<Result<Vec<_>>>()?;
    let index: HashMap<i64, usize> = agents.iter().enumerate().map(|(i, a)| (a.0, i)).collect();
    let pks: Vec<i64> = agents.iter().map(|a| a.0).collect();
    for chunk in pow2_chunks(pks.len(), 256) {
        let mut sql =
            Sql::new("SELECT agent_pk, type, value FROM agent_selectors WHERE agent_pk IN ");
        sql.list(pks[chunk].iter().copied());
        for row in db.query(&sql.text, &sql.params).await? {
            let pk = row.int(0)?;
            let agent = index
                .get(&pk)
                .and_then(|&i| agents.get_mut(i))
                .ok_or_else(|| Error::Backend(format!("selector row for unknown agent {pk}")))?;
            let selector = Selector::new(row.text(1)?, row.text(2)?).map_err(|e| {
                Error::corrupt(
                    format!("agent {}", agent.1.spiffe_id),
                    format!("selector: {e}"),
                )
            })?;
            agent.1.selectors.push(selector);
        }
    }
    for (_, agent) in &mut agents {
        agent.selectors.sort();
    }
    Ok(agents)
}

fn validate(agent: &mut AttestedAgent) -> Result<()> {
    if agent.attestation_type.is_empty() {
        return Err(Error::invalid("attestation_type", "must not be empty"));
    }
    agent.selectors.sort();
    agent.selectors.dedup();
    Ok(())
}

async fn insert_selectors(db: &mut dyn Db, pk: i64, selectors: &[Selector]) -> Result<()> {
    for chunk in pow2_chunks(selectors.len(), 256) {
        let mut sql = Sql::new("INSERT INTO agent_selectors (agent_pk, type, value) VALUES ");
        for (i, s) in selectors[chunk].iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.list([Value::Int(pk), s.selector_type().into(), s.value().into()]);
        }
        db.execute(&sql.text, &sql.params).await?;
    }
    Ok(())
}

/// Stores a new agent.
pub(crate) async fn create(
    db: &mut dyn Db,
    mut agent: AttestedAgent,
    now: UnixTime,
) -> Result<AttestedAgent> {
    validate(&mut agent)?;
    let rows = db
        .query(
            "INSERT INTO agents (spiffe_id, attestation_type, cert_serial_number, cert_not_after, \
             new_cert_serial_number, new_cert_not_after, banned, can_reattest, agent_version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING pk",
            &[
                agent.spiffe_id.as_str().into(),
                agent.attestation_type.as_str().into(),
                agent.cert_serial_number.as_str().into(),
                agent.cert_not_after.into(),
                agent.new_cert_serial_number.as_str().into(),
                agent.new_cert_not_after.into(),
                agent.banned.into(),
                agent.can_reattest.into(),
                agent.agent_version.as_str().into(),
            ],
        )
        .await?;
    let pk = match rows.first() {
        Some(row) => row.int(0)?,
        None => return Err(Error::already_exists(ObjectKind::Agent, &agent.spiffe_id)),
    };
    insert_selectors(db, pk, &agent.selectors).await?;
    events::append_one(
        db,
        EventKind::Agent,
        EventOp::Created,
        agent.spiffe_id.as_str(),
        now,
    )
    .await?;
    Ok(agent)
}

/// The agent with this SPIFFE ID.
pub(crate) async fn fetch(db: &mut dyn Db, spiffe_id: &SpiffeId) -> Result<Option<AttestedAgent>> {
    let mut sql = Sql::new(&format!(
        "SELECT {AGENT_COLUMNS} FROM agents a WHERE a.spiffe_id = "
    ));
    sql.param(spiffe_id.as_str());
    Ok(query_agents(db, &sql)
        .await?
        .into_iter()
        .next()
        .map(|a| a.1))
}

/// Applies `mask`. The `UPDATE` comes first so that, on PostgreSQL, it locks the agent's row
/// until commit and concurrent updates of one agent apply one after the other.
pub(crate) async fn update(
    db: &mut dyn Db,
    mut agent: AttestedAgent,
    mask: AgentMask,
    now: UnixTime,
) -> Result<AttestedAgent> {
    let mut sql = Sql::new("UPDATE agents SET spiffe_id = spiffe_id");
    let columns: [(&str, bool, Value); 7] = [
        (
            "cert_serial_number",
            mask.cert_serial_number,
            agent.cert_serial_number.as_str().into(),
        ),
        (
            "cert_not_after",
            mask.cert_not_after,
            agent.cert_not_after.into(),
        ),
        (
            "new_cert_serial_number",
            mask.new_cert_serial_number,
            agent.new_cert_serial_number.as_str().into(),
        ),
        (
            "new_cert_not_after",
            mask.new_cert_not_after,
            agent.new_cert_not_after.into(),
        ),
        ("banned", mask.banned, agent.banned.into()),
        ("can_reattest", mask.can_reattest, agent.can_reattest.into()),
        (
            "agent_version",
            mask.agent_version,
            agent.agent_version.as_str().into(),
        ),
    ];
    for (column, masked, value) in columns {
        if masked {
            sql.push(&format!(", {column} = ")).param(value);
        }
    }
    sql.push(" WHERE spiffe_id = ")
        .param(agent.spiffe_id.as_str())
        .push(" RETURNING pk");
    let pk = match db.query(&sql.text, &sql.params).await?.first() {
        Some(row) => row.int(0)?,
        None => return Err(Error::not_found(ObjectKind::Agent, &agent.spiffe_id)),
    };
    if mask.selectors {
        agent.selectors.sort();
        agent.selectors.dedup();
        db.execute(
            "DELETE FROM agent_selectors WHERE agent_pk = $1",
            &[pk.into()],
        )
        .await?;
        insert_selectors(db, pk, &agent.selectors).await?;
    }
    events::append_one(
        db,
        EventKind::Agent,
        EventOp::Updated,
        agent.spiffe_id.as_str(),
        now,
    )
    .await?;
    fetch(db, &agent.spiffe_id)
        .await?
        .ok_or_else(|| Error::not_found(ObjectKind::Agent, &agent.spiffe_id))
}

/// Deletes the agent and returns it. A join-token agent takes its token's node-alias entries
/// with it (see [`delete_join_token_aliases`]).
pub(crate) async fn delete(
    db: &mut dyn Db,
    spiffe_id: &SpiffeId,
    now: UnixTime,
) -> Result<AttestedAgent> {
    let agent = fetch(db, spiffe_id)
        .await?
        .ok_or_else(|| Error::not_found(ObjectKind::Agent, spiffe_id))?;
    if agent.attestation_type == JOIN_TOKEN {
        delete_join_token_aliases(db, spiffe_id, now).await?;
    }
    let n = db
        .execute(
            "DELETE FROM agents WHERE spiffe_id = $1",
            &[spiffe_id.as_str().into()],
        )
        .await?;
    if n == 0 {
        // Deleted by a concurrent transaction since the fetch.
        return Err(Error::not_found(ObjectKind::Agent, spiffe_id));
    }
    events::append_one(
        db,
        EventKind::Agent,
        EventOp::Deleted,
        spiffe_id.as_str(),
        now,
    )
    .await?;
    Ok(agent)
}

/// The node attestor whose agents' aliases are deleted with them.
const JOIN_TOKEN: &str = "join_token";

/// SPIRE deletes, with a join-token agent, the entries `CreateJoinToken` made for its token:
/// parented to the agent, with the single selector `spiffe_id:<agent ID>`. Entries of any
/// other shape under the agent are the operator's and stay.
async fn delete_join_token_aliases(
    db: &mut dyn Db,
    spiffe_id: &SpiffeId,
    now: UnixTime,
) -> Result<()> {
    db.lock(Lock::Entries).await?;
    let rows = db
        .query(
            "SELECT e.pk, e.id FROM entries e \
             WHERE e.parent_id = $1 \
             AND (SELECT COUNT(*) FROM entry_selectors s WHERE s.entry_pk = e.pk) = 1 \
             AND EXISTS (SELECT 1 FROM entry_selectors s \
                 WHERE s.entry_pk = e.pk AND s.type = 'spiffe_id' AND s.value = $2)",
            &[spiffe_id.as_str().into(), spiffe_id.as_str().into()],
        )
        .await?;
    let doomed = rows
        .iter()
        .map(|r| Ok((r.int(0)?, r.text(1)?.to_owned())))
        .collect::<Result<Vec<_>>>()?;
    if !doomed.is_empty() {
        entries::delete_many(db, &doomed, now).await?;
    }
    Ok(())
}

fn push_filter(sql: &mut Sql, filter: &AgentFilter) -> Result<()> {
    sql.push(" WHERE 1 = 1");
    if let Some(t) = &filter.by_attestation_type {
        sql.push(" AND a.attestation_type = ").param(t.as_str());
    }
    if let Some(banned) = filter.by_banned {
        sql.push(" AND a.banned = ").param(banned);
    }
    if let Some(can_reattest) = filter.by_can_reattest {
        sql.push(" AND a.can_reattest = ").param(can_reattest);
    }
    if let Some(before) = filter.by_expires_before {
        sql.push(" AND a.cert_not_after < ").param(before);
    }
    if let Some(m) = &filter.by_selectors {
        let items = selector_items("by_selectors", &m.selectors)?;
        push_set_match(sql, AGENT_SELECTORS, "a.pk", items, m.mode);
    }
    Ok(())
}

/// A page of the agents matching `filter`.
pub(crate) async fn list(
    db: &mut dyn Db,
    filter: &AgentFilter,
    page: Option<&PageRequest>,
) -> Result<Page<AttestedAgent>> {
    let mut sql = Sql::new(&format!("SELECT {AGENT_COLUMNS} FROM agents a"));
    push_filter(&mut sql, filter)?;
    push_paging(&mut sql, "a.spiffe_id", page)?;
    let agents = query_agents(db, &sql)
        .await?
        .into_iter()
        .map(|a| a.1)
        .collect();
    Ok(into_page(agents, page, |a: &AttestedAgent| {
        a.spiffe_id.to_string()
    }))
}

/// How many agents match `filter`.
pub(crate) async fn count(db: &mut dyn Db, filter: &AgentFilter) -> Result<u64> {
    let mut sql = Sql::new("SELECT COUNT(*) FROM agents a");
    push_filter(&mut sql, filter)?;
    let rows = db.query(&sql.text, &sql.params).await?;
    to_count(rows.first().map(|r| r.int(0)).transpose()?.unwrap_or(0))
}
