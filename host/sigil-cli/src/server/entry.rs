//! `entry create|show|update|delete|count`: the Entry service.

use sigil_proto::spire::api::server::entry::v1 as api;
use sigil_proto::spire::api::types as wire;

use super::args;
use crate::Cmd;
use crate::error::CliError;
use crate::json::{self, Json};
use crate::output::{entry_text, plural, status_ok, status_text};

/// SPIRE's page size for `entry show`.
const PAGE_SIZE: i32 = 500;

pub(crate) use super::entry_flags::{COUNT, CREATE, DELETE, SHOW, UPDATE};
use super::entry_flags::{entry_from_flags, list_filter};

/// `entry create`: BatchCreateEntry with the entry built from flags or the `-data` file.
pub(crate) async fn create(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let entries = match cmd.flags.str("data") {
        Some(path) => super::entry_data::parse(&args::read_input(Some(path))?)?,
        None => vec![entry_from_flags(&cmd.flags, false)?.0],
    };
    let mut client = api::entry_client::EntryClient::new(cmd.channel().await?);
    let response = client
        .batch_create_entry(api::BatchCreateEntryRequest {
            entries: entries.clone(),
            output_mask: None,
        })
        .await
        .map_err(CliError::rpc)?
        .into_inner();
    let results = response.results.into_iter().map(|r| (r.status, r.entry));
    report(cmd, "create", results.collect(), &entries)
}

/// `entry update`: BatchUpdateEntry with an input mask naming the fields given.
pub(crate) async fn update(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let (entries, input_mask) = match cmd.flags.str("data") {
        Some(path) => (
            super::entry_data::parse(&args::read_input(Some(path))?)?,
            None,
        ),
        None => {
            let (entry, mask) = entry_from_flags(&cmd.flags, true)?;
            (vec![entry], Some(mask))
        }
    };
    let mut client = api::entry_client::EntryClient::new(cmd.channel().await?);
    let response = client
        .batch_update_entry(api::BatchUpdateEntryRequest {
            entries: entries.clone(),
            input_mask,
            output_mask: None,
        })
        .await
        .map_err(CliError::rpc)?
        .into_inner();
    let results = response.results.into_iter().map(|r| (r.status, r.entry));
    report(cmd, "update", results.collect(), &entries)
}

/// A batch result: the item's status and entry.
type Item = (Option<wire::Status>, Option<wire::Entry>);

/// Prints a create/update response: succeeded entries on stdout, failed ones on stderr with
/// their status, and fails the command when any item failed. The API leaves failed entries
/// out of its results; as SPIRE does, the requested entry is shown in their place.
fn report(
    cmd: &mut Cmd<'_>,
    verb: &str,
    mut items: Vec<Item>,
    requested: &[wire::Entry],
) -> Result<(), CliError> {
    for ((status, entry), requested) in items.iter_mut().zip(requested) {
        if !status_ok(status.as_ref()) {
            *entry = Some(requested.clone());
        }
    }
    let (ok, failed): (Vec<&Item>, Vec<&Item>) =
        items.iter().partition(|(st, _)| status_ok(st.as_ref()));
    if cmd.out.is_json() {
        cmd.out.json(&json::results(&items, "entry", |(st, e)| {
            (st.as_ref(), json::opt(e.as_ref(), json::entry))
        }));
    } else {
        for (_, entry) in &ok {
            cmd.out
                .print(&entry.as_ref().map(entry_text).unwrap_or_default());
        }
        for (st, entry) in &failed {
            let text = format!(
                "Failed to {verb} the following entry {}:\n{}",
                status_text(st.as_ref()),
                entry.as_ref().map(entry_text).unwrap_or_default()
            );
            cmd.out.eprint(&text);
        }
    }
    if !failed.is_empty() {
        return Err(CliError::Batch(format!(
            "failed to {verb} one or more entries"
        )));
    }
    Ok(())
}

/// `entry show`: GetEntry for `-entryID`, else ListEntries page by page.
pub(crate) async fn show(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let flags = &cmd.flags;
    let entry_id = flags.str("entryID").map(str::to_owned);
    if entry_id.is_some()
        && (flags.is_set("parentID") || flags.is_set("spiffeID") || flags.is_set("selector"))
    {
        return Err(CliError::invalid(
            "the -entryID flag can't be combined with others",
        ));
    }
    let filter = list_filter(flags)?;
    let mut client = api::entry_client::EntryClient::new(cmd.channel().await?);
    let mut entries = Vec::new();
    if let Some(id) = entry_id {
        let entry = client
            .get_entry(api::GetEntryRequest {
                id: id.clone(),
                output_mask: None,
            })
            .await
            .map_err(CliError::rpc_in(&format!("error fetching entry ID {id}")))?;
        entries.push(entry.into_inner());
    } else {
        let mut page_token = String::new();
        loop {
            let page = client
                .list_entries(api::ListEntriesRequest {
                    filter: Some(filter.clone()),
                    output_mask: None,
                    page_size: PAGE_SIZE,
                    page_token,
                })
                .await
                .map_err(CliError::rpc_in("error fetching entries"))?
                .into_inner();
            entries.extend(page.entries);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
    }
    sort_entries(&mut entries);
    if cmd.out.is_json() {
        cmd.out.json(&Json::Obj(vec![
            ("entries", json::list(&entries, json::entry)),
            ("next_page_token", json::s("")),
        ]));
        return Ok(());
    }
    let mut text = plural(
        &format!("Found {} ", entries.len()),
        "entry",
        "entries",
        entries.len(),
    );
    text.push('\n');
    for entry in &entries {
        text.push_str(&entry_text(entry));
    }
    cmd.out.print(&text);
    Ok(())
}

/// `entry delete`: BatchDeleteEntry of `-entryID`.
pub(crate) async fn delete(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let id = cmd
        .flags
        .str("entryID")
        .ok_or_else(|| CliError::invalid("an entry ID is required"))?
        .to_owned();
    let mut client = api::entry_client::EntryClient::new(cmd.channel().await?);
    let response = client
        .batch_delete_entry(api::BatchDeleteEntryRequest {
            ids: vec![id.clone()],
        })
        .await
        .map_err(CliError::rpc)?
        .into_inner();
    if cmd.out.is_json() {
        cmd.out.json(&json::results(&response.results, "id", |r| {
            (r.status.as_ref(), json::s(&r.id))
        }));
    }
    for result in &response.results {
        if !status_ok(result.status.as_ref()) {
            return Err(CliError::Batch(format!(
                "failed to delete entry with ID {id} {}",
                status_text(result.status.as_ref())
            )));
        }
        if !cmd.out.is_json() {
            cmd.out
                .print(&format!("Deleted entry with ID: {}\n", result.id));
        }
    }
    Ok(())
}

/// `entry count`: CountEntries with the same filters as `entry show`.
pub(crate) async fn count(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let f = list_filter(&cmd.flags)?;
    let filter = api::count_entries_request::Filter {
        by_spiffe_id: f.by_spiffe_id,
        by_parent_id: f.by_parent_id,
        by_selectors: f.by_selectors,
        by_federates_with: f.by_federates_with,
        by_hint: f.by_hint,
        by_downstream: f.by_downstream,
    };
    let mut client = api::entry_client::EntryClient::new(cmd.channel().await?);
    let n = client
        .count_entries(api::CountEntriesRequest {
            filter: Some(filter),
        })
        .await
        .map_err(CliError::rpc)?
        .into_inner()
        .count;
    if cmd.out.is_json() {
        cmd.out.json(&json::count(n));
    } else {
        let n_usize = usize::try_from(n).unwrap_or(0);
        let text = plural(&format!("{n} registration "), "entry", "entries", n_usize);
        cmd.out.print(&format!("{text}\n"));
    }
    Ok(())
}

/// SPIRE's `SortTypesEntries`: selectors sorted within each entry, then entries by SPIFFE ID,
/// parent ID, selectors and TTLs.
fn sort_entries(entries: &mut [wire::Entry]) {
    let id_key = |id: &Option<wire::Spiffeid>| {
        id.as_ref()
            .map(|i| (i.trust_domain.clone(), i.path.clone()))
            .unwrap_or_default()
    };
    for e in entries.iter_mut() {
        e.selectors
            .sort_by(|a, b| (&a.r#type, &a.value).cmp(&(&b.r#type, &b.value)));
    }
    entries.sort_by(|a, b| {
        let sel = |e: &wire::Entry| {
            e.selectors
                .iter()
                .map(|s| (s.r#type.clone(), s.value.clone()))
                .collect::<Vec<_>>()
        };
        (
            id_key(&a.spiffe_id),
            id_key(&a.parent_id),
            sel(a),
            a.x509_svid_ttl,
            a.jwt_svid_ttl,
        )
            .cmp(&(
                id_key(&b.spiffe_id),
                id_key(&b.parent_id),
                sel(b),
                b.x509_svid_ttl,
                b.jwt_svid_ttl,
            ))
    });
}
