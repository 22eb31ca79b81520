//! Set-match filters as SQL: the four [`MatchMode`]s over a child table that holds one row
//! per element of an owner's set (entry selectors, entry federated trust domains, agent
//! selectors).

use sigil_types::{Selector, TrustDomain};

use super::value::{Sql, Value};
use crate::{Error, MatchMode, Result};

/// A child table holding sets: one row per (owner, element).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SetTable {
    /// The table.
    pub(crate) table: &'static str,
    /// Its column referencing the owner's `pk`.
    pub(crate) owner: &'static str,
    /// The columns that make up one element.
    pub(crate) columns: &'static [&'static str],
}

/// `entry_selectors`.
pub(crate) const ENTRY_SELECTORS: SetTable = SetTable {
    table: "entry_selectors",
    owner: "entry_pk",
    columns: &["type", "value"],
};

/// `entry_federates_with`.
pub(crate) const ENTRY_FEDERATES_WITH: SetTable = SetTable {
    table: "entry_federates_with",
    owner: "entry_pk",
    columns: &["trust_domain"],
};

/// `agent_selectors`.
pub(crate) const AGENT_SELECTORS: SetTable = SetTable {
    table: "agent_selectors",
    owner: "agent_pk",
    columns: &["type", "value"],
};

/// The elements of a selector filter, deduplicated; refuses an empty set.
pub(crate) fn selector_items(
    field: &'static str,
    selectors: &[Selector],
) -> Result<Vec<Vec<Value>>> {
    let mut sorted = selectors.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.is_empty() {
        return Err(Error::invalid(
            field,
            "cannot filter by an empty selector set",
        ));
    }
    Ok(sorted
        .iter()
        .map(|s| vec![s.selector_type().into(), s.value().into()])
        .collect())
}

/// The elements of a federates-with filter, deduplicated; refuses an empty set.
pub(crate) fn trust_domain_items(
    field: &'static str,
    trust_domains: &[TrustDomain],
) -> Result<Vec<Vec<Value>>> {
    let mut sorted = trust_domains.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.is_empty() {
        return Err(Error::invalid(
            field,
            "cannot filter by an empty trust domain set",
        ));
    }
    Ok(sorted.iter().map(|td| vec![td.name().into()]).collect())
}

/// Appends ` AND <condition>` selecting the owners (whose key is the expression `owner_pk`)
/// whose set matches `items` under `mode`. `items` must be non-empty and free of duplicates.
///
/// - Any: some row of the owner is in the set.
/// - Superset: as many of the owner's rows are in the set as the set has elements.
/// - Subset: Any, and no row of the owner is outside the set.
/// - Exact: Superset, and no row of the owner is outside the set.
pub(crate) fn push_set_match(
    sql: &mut Sql,
    table: SetTable,
    owner_pk: &str,
    items: Vec<Vec<Value>>,
    mode: MatchMode,
) {
    let count = items.len();
    // Bind each element once; the condition text may appear twice.
    let placeholders: Vec<Vec<String>> = items
        .into_iter()
        .map(|item| item.into_iter().map(|v| sql.bind(v)).collect())
        .collect();
    let member = |alias: &str| -> String {
        let alternatives: Vec<String> = placeholders
            .iter()
            .map(|item| {
                let terms: Vec<String> = table
                    .columns
                    .iter()
                    .zip(item)
                    .map(|(column, p)| format!("{alias}.{column} = {p}"))
                    .collect();
                format!("({})", terms.join(" AND "))
            })
            .collect();
        format!("({})", alternatives.join(" OR "))
    };
    let SetTable {
        table: name, owner, ..
    } = table;
    let any = format!(
        " AND {owner_pk} IN (SELECT s.{owner} FROM {name} s WHERE {})",
        member("s")
    );
    let superset = format!(
        " AND {owner_pk} IN (SELECT s.{owner} FROM {name} s WHERE {} GROUP BY s.{owner} \
         HAVING COUNT(*) = {count})",
        member("s")
    );
    let nothing_outside = format!(
        " AND NOT EXISTS (SELECT 1 FROM {name} x WHERE x.{owner} = {owner_pk} AND NOT {})",
        member("x")
    );
    match mode {
        MatchMode::Any => sql.push(&any),
        MatchMode::Superset => sql.push(&superset),
        MatchMode::Subset => sql.push(&any).push(&nothing_outside),
        MatchMode::Exact => sql.push(&superset).push(&nothing_outside),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_reuses_the_bound_parameters() {
        let mut sql = Sql::new("SELECT e.pk FROM entries e WHERE 1 = 1");
        let items = vec![vec!["unix".into(), "uid:0".into()]];
        push_set_match(&mut sql, ENTRY_SELECTORS, "e.pk", items, MatchMode::Exact);
        assert_eq!(sql.params.len(), 2);
        assert!(sql.text.contains("HAVING COUNT(*) = 1"), "{}", sql.text);
        assert!(
            sql.text.contains("x.type = $1 AND x.value = $2"),
            "{}",
            sql.text
        );
        assert!(
            sql.text.contains("s.type = $1 AND s.value = $2"),
            "{}",
            sql.text
        );
    }

    #[test]
    fn empty_sets_are_refused() {
        assert!(selector_items("by_selectors", &[]).is_err());
        assert!(trust_domain_items("by_federates_with", &[]).is_err());
    }
}
