//! `agent list|show|evict|ban|count`: the Agent service.

use sigil_proto::spire::api::server::agent::v1 as api;
use sigil_proto::spire::api::types as wire;

use super::args;
use crate::Cmd;
use crate::error::CliError;
use crate::flags::{Kind, Spec};
use crate::json::{self, Json};
use crate::output::{agent_text, plural};

/// SPIRE's page size for `agent list`.
const PAGE_SIZE: i32 = 1000;

const SPIFFE_ID: Spec = Spec::new(
    "spiffeID",
    Kind::Str,
    "The SPIFFE ID of the agent (agent identity)",
);
const SELECTOR: Spec = Spec::new(
    "selector",
    Kind::Multi,
    "A colon-delimited type:value selector. Can be used more than once",
);
const MATCH_SELECTORS: Spec = Spec::new(
    "matchSelectorsOn",
    Kind::Str,
    "The match mode used when filtering by selectors. Options: exact, any, superset and subset",
);
const ATTESTATION_TYPE: Spec = Spec::new(
    "attestationType",
    Kind::Str,
    "Filter by attestation type, like join_token or x509pop.",
);
const BANNED: Spec = Spec::new(
    "banned",
    Kind::Str,
    "Filter based on string received, 'true': banned agents, 'false': not banned agents, other value will return all.",
);
const CAN_REATTEST: Spec = Spec::new(
    "canReattest",
    Kind::Str,
    "Filter based on string received, 'true': agents that can reattest, 'false': agents that can't reattest, other value will return all.",
);
const EXPIRES_BEFORE: Spec = Spec::new(
    "expiresBefore",
    Kind::Str,
    "Filter by expiration time (format: \"2006-01-02 15:04:05 -0700 -07\")",
);

pub(crate) const LIST: &[Spec] = &[
    SELECTOR,
    MATCH_SELECTORS,
    ATTESTATION_TYPE,
    BANNED,
    CAN_REATTEST,
    EXPIRES_BEFORE,
];
pub(crate) const COUNT: &[Spec] = LIST;
pub(crate) const BY_ID: &[Spec] = &[SPIFFE_ID];

/// `agent list`: ListAgents page by page.
pub(crate) async fn list(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let filter = filter(&cmd.flags)?;
    let mut client = api::agent_client::AgentClient::new(cmd.channel().await?);
    let mut agents = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_agents(api::ListAgentsRequest {
                filter: Some(filter.clone()),
                output_mask: None,
                page_size: PAGE_SIZE,
                page_token,
            })
            .await
            .map_err(CliError::rpc)?
            .into_inner();
        agents.extend(page.agents);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    if cmd.out.is_json() {
        cmd.out.json(&Json::Obj(vec![
            ("agents", json::list(&agents, json::agent)),
            ("next_page_token", json::s("")),
        ]));
        return Ok(());
    }
    if agents.is_empty() {
        cmd.out.print("No attested agents found\n");
        return Ok(());
    }
    let mut text = plural(
        &format!("Found {} attested ", agents.len()),
        "agent",
        "agents",
        agents.len(),
    );
    text.push_str(":\n\n");
    for agent in &agents {
        text.push_str(&agent_text(agent));
    }
    cmd.out.print(&text);
    Ok(())
}

/// `agent show`: GetAgent.
pub(crate) async fn show(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let id = agent_id(cmd)?;
    let mut client = api::agent_client::AgentClient::new(cmd.channel().await?);
    let agent = client
        .get_agent(api::GetAgentRequest {
            id: Some(id),
            output_mask: None,
        })
        .await
        .map_err(CliError::rpc)?
        .into_inner();
    if cmd.out.is_json() {
        cmd.out.json(&json::agent(&agent));
        return Ok(());
    }
    let mut text = String::from("Found an attested agent given its SPIFFE ID\n\n");
    text.push_str(&agent_text(&agent));
    for s in &agent.selectors {
        text.push_str(&format!("Selectors         : {}:{}\n", s.r#type, s.value));
    }
    cmd.out.print(&text);
    Ok(())
}

/// `agent evict`: DeleteAgent.
pub(crate) async fn evict(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let id = agent_id(cmd)?;
    let mut client = api::agent_client::AgentClient::new(cmd.channel().await?);
    client
        .delete_agent(api::DeleteAgentRequest { id: Some(id) })
        .await
        .map_err(CliError::rpc)?;
    done(cmd, "Agent evicted successfully\n");
    Ok(())
}

/// `agent ban`: BanAgent.
pub(crate) async fn ban(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let id = agent_id(cmd)?;
    let mut client = api::agent_client::AgentClient::new(cmd.channel().await?);
    client
        .ban_agent(api::BanAgentRequest { id: Some(id) })
        .await
        .map_err(CliError::rpc)?;
    done(cmd, "Agent banned successfully\n");
    Ok(())
}

/// `agent count`: CountAgents.
pub(crate) async fn count(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let f = filter(&cmd.flags)?;
    let filter = api::count_agents_request::Filter {
        by_attestation_type: f.by_attestation_type,
        by_selector_match: f.by_selector_match,
        by_banned: f.by_banned,
        by_can_reattest: f.by_can_reattest,
        by_expires_before: f.by_expires_before,
    };
    let mut client = api::agent_client::AgentClient::new(cmd.channel().await?);
    let n = client
        .count_agents(api::CountAgentsRequest {
            filter: Some(filter),
        })
        .await
        .map_err(CliError::rpc)?
        .into_inner()
        .count;
    if cmd.out.is_json() {
        cmd.out.json(&json::count(n));
    } else {
        let text = plural(
            &format!("{n} attested "),
            "agent",
            "agents",
            usize::try_from(n).unwrap_or(0),
        );
        cmd.out.print(&format!("{text}\n"));
    }
    Ok(())
}

fn done(cmd: &mut Cmd<'_>, pretty: &str) {
    if cmd.out.is_json() {
        cmd.out.json(&Json::Obj(Vec::new()));
    } else {
        cmd.out.print(pretty);
    }
}

fn agent_id(cmd: &Cmd<'_>) -> Result<wire::Spiffeid, CliError> {
    let id = cmd
        .flags
        .str("spiffeID")
        .ok_or_else(|| CliError::invalid("a SPIFFE ID is required"))?;
    args::spiffe_id(id)
}

fn filter(flags: &crate::flags::Flags) -> Result<api::list_agents_request::Filter, CliError> {
    let mut filter = api::list_agents_request::Filter {
        by_attestation_type: flags.str_or("attestationType", "").to_owned(),
        by_expires_before: flags.str_or("expiresBefore", "").to_owned(),
        ..Default::default()
    };
    let selectors = flags.all("selector");
    if !selectors.is_empty() {
        let r#match = args::selector_match(flags.str_or("matchSelectorsOn", "superset"))?;
        let mut parsed = Vec::new();
        for s in &selectors {
            parsed
                .push(args::selector(s).map_err(|e| {
                    CliError::invalid(format!("error parsing selector {s:?}: {e}"))
                })?);
        }
        filter.by_selector_match = Some(wire::SelectorMatch {
            selectors: parsed,
            r#match,
        });
    }
    let tri = |name: &str| match flags.str(name) {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    };
    filter.by_banned = tri("banned");
    filter.by_can_reattest = tri("canReattest");
    Ok(filter)
}
