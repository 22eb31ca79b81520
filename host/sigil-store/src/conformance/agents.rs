//! Attested agents.

use std::sync::Arc;

use sigil_types::{AttestedAgent, RegistrationEntry};

use super::support::{agent, assert_already_exists, assert_invalid, assert_not_found, id, sel};
use crate::{AgentFilter, AgentMask, DataStore, MatchMode, ObjectKind, PageRequest, SelectorMatch};

async fn names(store: &Arc<dyn DataStore>, filter: &AgentFilter) -> Vec<String> {
    let page = store.list_agents(filter, None).await.expect("list agents");
    let count = store.count_agents(filter).await.expect("count agents");
    assert_eq!(count, page.items.len() as u64, "count disagrees with list");
    page.items
        .iter()
        .map(|a| {
            a.spiffe_id
                .path()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// Every field survives; selectors come back sorted and deduplicated.
pub async fn agent_create_fetch_round_trip(store: Arc<dyn DataStore>) {
    let mut given = agent(
        "n1",
        "join_token",
        &["unix:uid:0", "aws:region:eu", "unix:uid:0"],
    );
    given.new_cert_serial_number = "2".into();
    given.new_cert_not_after = 2_100_000_000;
    given.banned = true;
    given.can_reattest = true;
    let created = store.create_agent(given.clone()).await.expect("create");
    assert_eq!(
        created.selectors,
        vec![sel("aws:region:eu"), sel("unix:uid:0")]
    );
    let fetched = store
        .fetch_agent(&given.spiffe_id)
        .await
        .expect("fetch")
        .expect("agent exists");
    assert_eq!(fetched, created);
    assert_eq!(
        store
            .fetch_agent(&id("/spire/agent/x/none"))
            .await
            .expect("fetch"),
        None
    );
}

/// A second agent with the same SPIFFE ID is refused.
pub async fn agent_create_duplicate_is_already_exists(store: Arc<dyn DataStore>) {
    let given = agent("n1", "join_token", &["unix:uid:0"]);
    store.create_agent(given.clone()).await.expect("create");
    assert_already_exists(store.create_agent(given).await, ObjectKind::Agent);
    assert_eq!(
        store
            .count_agents(&AgentFilter::default())
            .await
            .expect("count"),
        1
    );
}

/// An agent without attestation type is refused.
pub async fn agent_invalid_is_invalid_argument(store: Arc<dyn DataStore>) {
    let mut given = agent("n1", "join_token", &["unix:uid:0"]);
    given.attestation_type = String::new();
    assert_invalid(store.create_agent(given).await, "attestation_type");
}

/// Only masked fields change.
pub async fn agent_update_changes_only_masked_fields(store: Arc<dyn DataStore>) {
    let stored = store
        .create_agent(agent("n1", "x509pop", &["x509pop:ca:1"]))
        .await
        .expect("create");
    let change = AttestedAgent {
        attestation_type: "other".into(),
        cert_serial_number: "99".into(),
        cert_not_after: 1,
        new_cert_serial_number: "100".into(),
        new_cert_not_after: 2,
        selectors: vec![sel("x509pop:ca:2"), sel("x509pop:ca:3")],
        banned: true,
        can_reattest: true,
        agent_version: "1.14.0".into(),
        ..stored.clone()
    };
    let mask = AgentMask {
        new_cert_serial_number: true,
        new_cert_not_after: true,
        ..AgentMask::default()
    };
    let updated = store
        .update_agent(change.clone(), &mask)
        .await
        .expect("update");
    let expected = AttestedAgent {
        new_cert_serial_number: "100".into(),
        new_cert_not_after: 2,
        ..stored.clone()
    };
    assert_eq!(updated, expected);
    assert_eq!(
        store.fetch_agent(&stored.spiffe_id).await.expect("fetch"),
        Some(expected)
    );

    let mask = AgentMask {
        selectors: true,
        banned: true,
        ..AgentMask::default()
    };
    let updated = store
        .update_agent(change.clone(), &mask)
        .await
        .expect("update");
    assert_eq!(updated.selectors, change.selectors);
    assert!(updated.banned);
    assert!(!updated.can_reattest, "unmasked field changed");
    assert_eq!(updated.cert_serial_number, "1", "unmasked field changed");
    assert_eq!(updated.agent_version, "", "unmasked field changed");

    let updated = store
        .update_agent(change.clone(), &AgentMask::ALL)
        .await
        .expect("update");
    let expected = AttestedAgent {
        attestation_type: stored.attestation_type,
        ..change
    };
    assert_eq!(updated, expected, "attestation type is not updatable");
    assert_eq!(
        store.fetch_agent(&stored.spiffe_id).await.expect("fetch"),
        Some(expected),
        "every updatable field is stored, agent_version too"
    );
}

/// Updating or deleting an absent agent is NotFound.
pub async fn agent_update_and_delete_missing_are_not_found(store: Arc<dyn DataStore>) {
    let ghost = agent("ghost", "join_token", &[]);
    assert_not_found(
        store.update_agent(ghost.clone(), &AgentMask::ALL).await,
        ObjectKind::Agent,
    );
    assert_not_found(
        store.delete_agent(&ghost.spiffe_id).await,
        ObjectKind::Agent,
    );
}

/// Delete returns the deleted agent.
pub async fn agent_delete_returns_the_agent(store: Arc<dyn DataStore>) {
    let stored = store
        .create_agent(agent("n1", "join_token", &["unix:uid:0"]))
        .await
        .expect("create");
    assert_eq!(
        store.delete_agent(&stored.spiffe_id).await.expect("delete"),
        stored
    );
    assert_eq!(
        store.fetch_agent(&stored.spiffe_id).await.expect("fetch"),
        None
    );
    store.create_agent(stored).await.expect("attest again");
}

/// Deleting a join-token agent deletes its token's node-alias entries (parented to the agent,
/// with the one selector `spiffe_id:<agent ID>`), as SPIRE does, and nothing else: other
/// entries under the agent, and aliases of agents attested otherwise, stay.
pub async fn agent_delete_join_token_takes_its_alias_entries(store: Arc<dyn DataStore>) {
    let token_agent = store
        .create_agent(agent("tok", "join_token", &[]))
        .await
        .expect("create");
    let other_agent = store
        .create_agent(agent("n1", "x509pop", &[]))
        .await
        .expect("create");
    let alias = |agent: &AttestedAgent, path: &str, extra: &[&str]| {
        let mut selectors = vec![sel(&format!("spiffe_id:{}", agent.spiffe_id))];
        selectors.extend(extra.iter().map(|s| sel(s)));
        RegistrationEntry::new(id(path), agent.spiffe_id.clone(), selectors)
    };
    let doomed = alias(&token_agent, "/myagent", &[]);
    let kept = [
        alias(&token_agent, "/workload", &["unix:uid:0"]),
        RegistrationEntry::new(
            id("/other"),
            token_agent.spiffe_id.clone(),
            vec![sel("spiffe_id:spiffe://example.org/elsewhere")],
        ),
        alias(&other_agent, "/x509pop-alias", &[]),
    ];
    store
        .create_entries(
            std::iter::once(doomed.clone())
                .chain(kept.clone())
                .collect(),
        )
        .await
        .expect("create entries");
    store
        .delete_agent(&token_agent.spiffe_id)
        .await
        .expect("delete");
    assert_eq!(store.fetch_entry(&doomed.id).await.expect("fetch"), None);
    for entry in &kept {
        assert!(
            store.fetch_entry(&entry.id).await.expect("fetch").is_some(),
            "{} was deleted",
            entry.spiffe_id
        );
    }
    store
        .delete_agent(&other_agent.spiffe_id)
        .await
        .expect("delete");
    assert!(
        store
            .fetch_entry(&kept[2].id)
            .await
            .expect("fetch")
            .is_some()
    );
}

/// Attestation type, banned, can-reattest and expiry filters, alone and combined.
pub async fn agent_list_filters(store: Arc<dyn DataStore>) {
    let mut banned = agent("b", "join_token", &[]);
    banned.banned = true;
    let mut reattest = agent("r", "k8s_psat", &[]);
    reattest.can_reattest = true;
    let mut expiring = agent("e", "k8s_psat", &[]);
    expiring.cert_not_after = 1000;
    for a in [
        agent("plain", "join_token", &[]),
        banned,
        reattest,
        expiring,
    ] {
        store.create_agent(a).await.expect("create");
    }
    let by_type = AgentFilter {
        by_attestation_type: Some("k8s_psat".into()),
        ..AgentFilter::default()
    };
    assert_eq!(names(&store, &by_type).await, ["e", "r"]);
    let by_banned = AgentFilter {
        by_banned: Some(true),
        ..AgentFilter::default()
    };
    assert_eq!(names(&store, &by_banned).await, ["b"]);
    let not_banned = AgentFilter {
        by_banned: Some(false),
        ..AgentFilter::default()
    };
    assert_eq!(names(&store, &not_banned).await.len(), 3);
    let by_reattest = AgentFilter {
        by_can_reattest: Some(true),
        ..AgentFilter::default()
    };
    assert_eq!(names(&store, &by_reattest).await, ["r"]);
    let expiring = AgentFilter {
        by_expires_before: Some(1001),
        ..AgentFilter::default()
    };
    assert_eq!(names(&store, &expiring).await, ["e"]);
    let edge = AgentFilter {
        by_expires_before: Some(1000),
        ..AgentFilter::default()
    };
    assert!(
        names(&store, &edge).await.is_empty(),
        "expires before is strict"
    );
    let combined = AgentFilter {
        by_attestation_type: Some("k8s_psat".into()),
        by_can_reattest: Some(false),
        ..AgentFilter::default()
    };
    assert_eq!(names(&store, &combined).await, ["e"]);
}

/// The four selector match modes over agents, for the set {a, b}.
pub async fn agent_list_by_selectors_modes(store: Arc<dyn DataStore>) {
    let (a, b, c) = ("aws:tag:a", "aws:tag:b", "aws:tag:c");
    for (name, selectors) in [
        ("A", vec![a]),
        ("B", vec![a, b]),
        ("C", vec![a, b, c]),
        ("D", vec![b, c]),
        ("E", vec!["aws:tag:d"]),
        ("F", vec![]),
    ] {
        store
            .create_agent(agent(name, "aws_iid", &selectors))
            .await
            .expect("create");
    }
    let filter = |mode| AgentFilter {
        by_selectors: Some(SelectorMatch {
            selectors: vec![sel(b), sel(a)],
            mode,
        }),
        ..AgentFilter::default()
    };
    assert_eq!(names(&store, &filter(MatchMode::Exact)).await, ["B"]);
    assert_eq!(names(&store, &filter(MatchMode::Subset)).await, ["A", "B"]);
    assert_eq!(
        names(&store, &filter(MatchMode::Superset)).await,
        ["B", "C"]
    );
    assert_eq!(
        names(&store, &filter(MatchMode::Any)).await,
        ["A", "B", "C", "D"]
    );
}

/// Paging over agents, and counting.
pub async fn agent_list_paging_and_count(store: Arc<dyn DataStore>) {
    for i in 0..23 {
        store
            .create_agent(agent(&format!("n{i:02}"), "join_token", &[]))
            .await
            .expect("create");
    }
    let mut seen = Vec::new();
    let mut page = PageRequest::first(5);
    let mut pages = 0;
    loop {
        let result = store
            .list_agents(&AgentFilter::default(), Some(&page))
            .await
            .expect("list");
        pages += 1;
        assert!(result.items.len() <= 5);
        seen.extend(result.items.into_iter().map(|a| a.spiffe_id.to_string()));
        match result.next_token {
            Some(token) => page.token = Some(token),
            None => break,
        }
    }
    assert_eq!(pages, 5);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "pages are unordered or repeat agents");
    assert_eq!(seen.len(), 23);
    assert_eq!(
        store
            .count_agents(&AgentFilter::default())
            .await
            .expect("count"),
        23
    );
    assert_invalid(
        store
            .list_agents(&AgentFilter::default(), Some(&PageRequest::first(0)))
            .await,
        "page_size",
    );
}
