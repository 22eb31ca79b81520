//! SPIRE's rules for entry IDs and masked updates, and the node-alias entry of a join token
//! created with a SPIFFE ID, on the admin socket.

use sigil_proto::spire::api::server::entry::v1 as entry_api;
use sigil_proto::spire::api::types as wire;
use tonic::Code;
use tonic::transport::Channel;

use super::harness::{self, Harness, admin_channel, cli, create_entry, start};
use super::{codes, id, selector};

const PARENT: &str = "/spire/agent/join_token/node-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_masked_update_reads_only_the_masked_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Harness { server, socket, .. } = start(dir.path(), &harness::sqlite(dir.path())).await;
    let existing = create_entry(
        &socket,
        "spiffe://example.org/web",
        &format!("spiffe://example.org{PARENT}"),
    )
    .await;
    let mut entries = entry_api::entry_client::EntryClient::new(admin_channel(&socket).await);
    let hint_mask = wire::EntryMask {
        hint: true,
        ..Default::default()
    };

    // `{id, hint}` under the mask `{hint}`: only the hint changes.
    let results = update(
        &mut entries,
        vec![
            wire::Entry {
                id: existing.clone(),
                hint: "frontend".into(),
                ..Default::default()
            },
            wire::Entry {
                id: "no-such-entry".into(),
                hint: "frontend".into(),
                ..Default::default()
            },
        ],
        Some(hint_mask),
    )
    .await;
    assert_eq!(
        codes(results.iter().map(|r| r.status.as_ref())),
        [Code::Ok, Code::NotFound],
        "{results:?}"
    );
    let updated = results[0].entry.clone().expect("the updated entry");
    assert_eq!(updated.hint, "frontend");
    assert_eq!(updated.spiffe_id, id("/web"));
    assert_eq!(updated.parent_id, id(PARENT));
    assert_eq!(updated.selectors, vec![selector("unix", "uid:1000")]);
    let not_found = &results[1].status.as_ref().expect("status").message;
    assert!(not_found.contains("no-such-entry"), "{not_found}");

    // The merged entry is checked whole; a field outside the mask is not read, even when
    // it would be refused.
    let results = update(
        &mut entries,
        vec![
            wire::Entry {
                id: existing.clone(),
                ..Default::default()
            },
            wire::Entry {
                id: existing.clone(),
                spiffe_id: id("/spire/agent/join_token/node-2"),
                selectors: vec![selector("unix", "uid:2")],
                ..Default::default()
            },
        ],
        Some(wire::EntryMask {
            selectors: true,
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(
        codes(results.iter().map(|r| r.status.as_ref())),
        [Code::InvalidArgument, Code::Ok],
        "{results:?}"
    );
    let updated = results[1].entry.clone().expect("the updated entry");
    assert_eq!(updated.spiffe_id, id("/web"));
    assert_eq!(updated.selectors, vec![selector("unix", "uid:2")]);
    assert_eq!(updated.hint, "frontend");
    let results = update(
        &mut entries,
        vec![wire::Entry {
            id: existing.clone(),
            spiffe_id: id("/spire/agent/join_token/node-2"),
            ..Default::default()
        }],
        Some(wire::EntryMask {
            spiffe_id: true,
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(
        codes(results.iter().map(|r| r.status.as_ref())),
        [Code::InvalidArgument],
        "{results:?}"
    );
    let (code, out) = cli(&socket, &["entry", "show", "-entryID", &existing]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("spiffe://example.org/web"), "{out}");
    assert!(out.contains("frontend"), "{out}");
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_may_not_have_an_empty_or_reserved_spiffe_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Harness { server, socket, .. } = start(dir.path(), &harness::sqlite(dir.path())).await;
    let channel = admin_channel(&socket).await;
    let mut entries = entry_api::entry_client::EntryClient::new(channel.clone());
    let good = wire::Entry {
        spiffe_id: id("/web"),
        parent_id: id(PARENT),
        selectors: vec![selector("unix", "uid:1")],
        ..Default::default()
    };
    let refused = [
        // The trust domain itself, an agent's ID (the parent's), the server's, the namespace.
        ("", "spiffe_id"),
        (PARENT, "reserved"),
        ("/spire/server", "reserved"),
        ("/spire", "reserved"),
    ];
    let results = entries
        .batch_create_entry(entry_api::BatchCreateEntryRequest {
            entries: refused
                .iter()
                .map(|(path, _)| wire::Entry {
                    spiffe_id: id(path),
                    ..good.clone()
                })
                .chain([wire::Entry {
                    parent_id: id(""),
                    ..good.clone()
                }])
                .collect(),
            output_mask: None,
        })
        .await
        .expect("BatchCreateEntry answers per item")
        .into_inner()
        .results;
    assert_eq!(
        codes(results.iter().map(|r| r.status.as_ref())),
        [Code::InvalidArgument; 5],
        "{results:?}"
    );
    for (result, (_, word)) in results.iter().zip(refused) {
        let message = &result.status.as_ref().expect("status").message;
        assert!(message.contains(word), "{message}");
    }
    assert_eq!(count(&channel).await, 0, "nothing was created");

    // Paths that only look like the reserved one, and parents under /spire/agent/, are fine.
    let results = entries
        .batch_create_entry(entry_api::BatchCreateEntryRequest {
            entries: vec![
                good.clone(),
                wire::Entry {
                    spiffe_id: id("/spire-like"),
                    ..good.clone()
                },
            ],
            output_mask: None,
        })
        .await
        .expect("create")
        .into_inner()
        .results;
    assert_eq!(
        codes(results.iter().map(|r| r.status.as_ref())),
        [Code::Ok, Code::Ok],
        "{results:?}"
    );
    let web = results[0].entry.as_ref().expect("entry").id.clone();

    // An update may not move an entry into the reserved namespace either.
    let results = update(
        &mut entries,
        vec![wire::Entry {
            id: web,
            spiffe_id: id(PARENT),
            ..good
        }],
        None,
    )
    .await;
    assert_eq!(
        codes(results.iter().map(|r| r.status.as_ref())),
        [Code::InvalidArgument],
        "{results:?}"
    );
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_generate_with_a_spiffe_id_registers_it_for_the_tokens_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Harness { server, socket, .. } = start(dir.path(), &harness::sqlite(dir.path())).await;
    let (code, out) = cli(
        &socket,
        &[
            "token",
            "generate",
            "-spiffeID",
            "spiffe://example.org/myagent",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let token = out
        .trim()
        .strip_prefix("Token: ")
        .expect("the token")
        .to_owned();
    let agent_id = format!("spiffe://example.org/spire/agent/join_token/{token}");

    let channel = admin_channel(&socket).await;
    let listed = entry_api::entry_client::EntryClient::new(channel.clone())
        .list_entries(entry_api::ListEntriesRequest::default())
        .await
        .expect("list")
        .into_inner()
        .entries;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let alias = &listed[0];
    assert_eq!(alias.spiffe_id, id("/myagent"));
    assert_eq!(
        alias.parent_id,
        id(&format!("/spire/agent/join_token/{token}"))
    );
    assert_eq!(alias.selectors, vec![selector("spiffe_id", &agent_id)]);

    // The alias ID is a workload ID: the reserved namespace is refused before any token.
    let (code, out) = cli(
        &socket,
        &[
            "token",
            "generate",
            "-spiffeID",
            "spiffe://example.org/spire/agent/join_token/other",
        ],
    )
    .await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("reserved"), "{out}");
    assert_eq!(count(&channel).await, 1);
    server.shutdown();
}

async fn update(
    entries: &mut entry_api::entry_client::EntryClient<Channel>,
    batch: Vec<wire::Entry>,
    input_mask: Option<wire::EntryMask>,
) -> Vec<entry_api::batch_update_entry_response::Result> {
    entries
        .batch_update_entry(entry_api::BatchUpdateEntryRequest {
            entries: batch,
            input_mask,
            output_mask: None,
        })
        .await
        .expect("BatchUpdateEntry answers per item")
        .into_inner()
        .results
}

async fn count(channel: &Channel) -> i32 {
    entry_api::entry_client::EntryClient::new(channel.clone())
        .count_entries(entry_api::CountEntriesRequest::default())
        .await
        .expect("count")
        .into_inner()
        .count
}
