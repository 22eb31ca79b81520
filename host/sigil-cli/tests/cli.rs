//! End-to-end tests of `sigil_cli::run` against an in-memory double of the admin API on a
//! temporary Unix socket: what the server received, the exact output, exit codes and stderr.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers and the test double: a panic is a test failure"
)]

#[path = "cli/fake.rs"]
mod fake;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use fake::Req;
use sigil_proto::spire::api::types as wire;
use x509_parser::prelude::FromDer;

/// Runs the CLI with `-socketPath <socket>` put right after the command words; returns
/// (exit code, stdout, stderr).
async fn cli(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let mut argv: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let words = args.iter().take_while(|a| !a.starts_with('-')).count();
    argv.insert(words, socket.display().to_string());
    argv.insert(words, "-socketPath".into());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = sigil_cli::run(&argv, &mut out, &mut err).await;
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn id(td: &str, path: &str) -> Option<wire::Spiffeid> {
    Some(wire::Spiffeid {
        trust_domain: td.into(),
        path: path.into(),
    })
}

fn sel(t: &str, v: &str) -> wire::Selector {
    wire::Selector {
        r#type: t.into(),
        value: v.into(),
    }
}

fn entry(entry_id: &str, path: &str, parent: &str, selectors: Vec<wire::Selector>) -> wire::Entry {
    wire::Entry {
        id: entry_id.into(),
        spiffe_id: id("example.org", path),
        parent_id: id("example.org", parent),
        selectors,
        ..Default::default()
    }
}

fn ca_cert() -> rcgen::Certificate {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap()
}

// === entry ===

#[tokio::test]
async fn entry_create_sends_the_parsed_entry_and_prints_it_as_spire_does() {
    let server = fake::start().await;
    let (code, out, err) = cli(
        &server.socket,
        &[
            "entry",
            "create",
            "-spiffeID",
            "spiffe://example.org/web",
            "--parentID=spiffe://example.org/host",
            "-selector",
            "unix:uid:1000",
            "--selector",
            "k8s:pod-label:app:web",
            "-dns=web.example.org",
            "-x509SVIDTTL",
            "300",
            "-admin",
            "-hint",
            "web",
            "-entryExpiry",
            "1552410266",
        ],
    )
    .await;
    assert_eq!((code, err.as_str()), (0, ""));
    let Req::CreateEntries(req) = &server.fake.requests()[0] else {
        panic!("expected BatchCreateEntry")
    };
    let sent = &req.entries[0];
    assert_eq!(sent.spiffe_id, id("example.org", "/web"));
    assert_eq!(sent.parent_id, id("example.org", "/host"));
    assert_eq!(
        sent.selectors,
        [sel("unix", "uid:1000"), sel("k8s", "pod-label:app:web")]
    );
    assert_eq!(
        (
            sent.x509_svid_ttl,
            sent.jwt_svid_ttl,
            sent.admin,
            sent.downstream
        ),
        (300, 0, true, false)
    );
    assert_eq!(sent.dns_names, ["web.example.org"]);
    assert_eq!(sent.expires_at, 1_552_410_266);
    assert_eq!(
        out,
        "Entry ID         : entry-1\n\
         SPIFFE ID        : spiffe://example.org/web\n\
         Parent ID        : spiffe://example.org/host\n\
         Revision         : 0\n\
         X509-SVID TTL    : 300\n\
         JWT-SVID TTL     : default\n\
         Expiration time  : 2019-03-12 17:04:26 +0000 UTC\n\
         Selector         : unix:uid:1000\n\
         Selector         : k8s:pod-label:app:web\n\
         DNS name         : web.example.org\n\
         Admin            : true\n\
         Hint             : web\n\n"
    );
}

#[tokio::test]
async fn entry_create_node_parents_the_entry_to_the_server_id() {
    let server = fake::start().await;
    let (code, _, err) = cli(
        &server.socket,
        &[
            "entry",
            "create",
            "-node",
            "-spiffeID",
            "spiffe://example.org/nodes/a",
            "-selector",
            "x509pop:subject:cn:a",
        ],
    )
    .await;
    assert_eq!((code, err.as_str()), (0, ""));
    let Req::CreateEntries(req) = &server.fake.requests()[0] else {
        panic!("expected BatchCreateEntry")
    };
    assert_eq!(req.entries[0].parent_id, id("example.org", "/spire/server"));
}

#[tokio::test]
async fn entry_create_reports_a_failed_batch_item_like_spire() {
    let server = fake::start().await;
    server.fake.state().conflicting_path = Some("/web".into());
    let (code, out, err) = cli(
        &server.socket,
        &[
            "entry",
            "create",
            "-spiffeID",
            "spiffe://example.org/web",
            "-parentID",
            "spiffe://example.org/host",
            "-selector",
            "unix:uid:1",
        ],
    )
    .await;
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        "Failed to create the following entry (code: AlreadyExists, msg: \"similar entry already exists\"):\n\
         Entry ID         : (none)\n\
         SPIFFE ID        : spiffe://example.org/web\n\
         Parent ID        : spiffe://example.org/host\n\
         Revision         : 0\n\
         X509-SVID TTL    : default\n\
         JWT-SVID TTL     : default\n\
         Selector         : unix:uid:1\n\n\
         Error: failed to create one or more entries\n"
    );
}

#[tokio::test]
async fn entry_create_batch_from_a_data_file() {
    let server = fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("entries.json");
    std::fs::write(
        &data,
        r#"{"entries":[
            {"spiffe_id":"spiffe://example.org/a","parent_id":"spiffe://example.org/host","selectors":[{"type":"unix","value":"uid:1"}]},
            {"spiffe_id":"spiffe://example.org/b","parent_id":"spiffe://example.org/host","selectors":[{"type":"unix","value":"uid:2"}],"jwt_svid_ttl":30}
        ]}"#,
    )
    .unwrap();
    let (code, out, err) = cli(
        &server.socket,
        &["entry", "create", "-data", data.to_str().unwrap()],
    )
    .await;
    assert_eq!((code, err.as_str()), (0, ""));
    let Req::CreateEntries(req) = &server.fake.requests()[0] else {
        panic!("expected BatchCreateEntry")
    };
    assert_eq!(req.entries.len(), 2);
    assert_eq!(req.entries[1].jwt_svid_ttl, 30);
    assert_eq!(out.matches("Entry ID         : entry-").count(), 2);
    assert!(out.contains("JWT-SVID TTL     : 30\n"));
}

/// Flag and validation errors: exit 1, the message on stderr, nothing sent to the server.
#[tokio::test]
async fn entry_create_rejects_bad_command_lines_before_calling_the_server() {
    let server = fake::start().await;
    let base = [
        "entry",
        "create",
        "-spiffeID",
        "spiffe://example.org/w",
        "-parentID",
        "spiffe://example.org/h",
    ];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        base.iter().chain(extra).copied().collect()
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (with(&[]), "Error: at least one selector is required\n"),
        (
            with(&["-selector", "unix"]),
            "Error: selector \"unix\" must be formatted as type:value\n",
        ),
        (
            with(&["-selector", "a:b", "-x509SVIDTTL", "-5"]),
            "Error: a positive x509-SVID TTL is required\n",
        ),
        (
            with(&["-selector", "a:b", "-jwtSVIDTTL", "-1"]),
            "Error: a positive JWT-SVID TTL is required\n",
        ),
        (
            vec![
                "entry",
                "create",
                "-selector",
                "a:b",
                "-parentID",
                "spiffe://example.org/h",
            ],
            "Error: a SPIFFE ID is required\n",
        ),
        (
            vec![
                "entry",
                "create",
                "-selector",
                "a:b",
                "-spiffeID",
                "spiffe://example.org/w",
            ],
            "Error: a parent ID is required if the node flag is not set\n",
        ),
        (
            vec![
                "entry",
                "create",
                "-node",
                "-selector",
                "a:b",
                "-spiffeID",
                "spiffe://example.org/w",
                "-federatesWith",
                "spiffe://o.test",
            ],
            "Error: node entries can not federate\n",
        ),
        (
            vec![
                "entry",
                "create",
                "-selector",
                "a:b",
                "-spiffeID",
                "example.org/w",
                "-parentID",
                "spiffe://example.org/h",
            ],
            "Error: scheme is missing or invalid: a SPIFFE ID starts with \"spiffe://\"\n",
        ),
    ];
    for (args, expected) in cases {
        let (code, out, err) = cli(&server.socket, &args).await;
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (1, "", expected),
            "{args:?}"
        );
    }
    for (args, first_line) in [
        (
            with(&["-selector", "a:b", "-x509SVIDTTL", "abc"]),
            "invalid value \"abc\" for flag -x509SVIDTTL: parse error",
        ),
        (
            with(&["-selector", "a:b", "-bogus", "1"]),
            "flag provided but not defined: -bogus",
        ),
        (with(&["-selector"]), "flag needs an argument: -selector"),
    ] {
        let (code, _, err) = cli(&server.socket, &args).await;
        assert_eq!(code, 1, "{args:?}");
        assert!(
            err.starts_with(&format!("{first_line}\nUsage of entry create:\n")),
            "{args:?}: {err}"
        );
        assert!(err.contains("  -selector string\n"), "{err}");
    }
    assert!(server.fake.requests().is_empty());
}

#[tokio::test]
async fn entry_show_pages_filters_and_sorts() {
    let server = fake::start().await;
    {
        let mut state = server.fake.state();
        state.page_size = 1;
        state.entries = vec![
            entry("e3", "/z", "/host", vec![sel("unix", "uid:1000")]),
            entry(
                "e1",
                "/a",
                "/host",
                vec![sel("unix", "uid:1000"), sel("docker", "image:x")],
            ),
            entry("e2", "/m", "/host", vec![sel("unix", "uid:1000")]),
        ];
    }
    let (code, out, err) = cli(
        &server.socket,
        &[
            "entry",
            "show",
            "-selector",
            "unix:uid:1000",
            "-matchSelectorsOn",
            "any",
            "-downstream",
        ],
    )
    .await;
    assert_eq!((code, err.as_str()), (0, ""));
    let lists: Vec<_> = server
        .fake
        .requests()
        .into_iter()
        .map(|r| match r {
            Req::ListEntries(l) => l,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        lists
            .iter()
            .map(|l| l.page_token.as_str())
            .collect::<Vec<_>>(),
        ["", "1", "2"]
    );
    assert!(lists.iter().all(|l| l.page_size == 500));
    let filter = lists[0].filter.clone().unwrap();
    assert_eq!(
        filter.by_selectors,
        Some(wire::SelectorMatch {
            selectors: vec![sel("unix", "uid:1000")],
            r#match: 3
        })
    );
    assert_eq!(filter.by_downstream, Some(true));
    assert_eq!(filter.by_spiffe_id, None);
    let header_and_ids: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("Found") || l.starts_with("Entry ID"))
        .collect();
    assert_eq!(
        header_and_ids,
        [
            "Found 3 entries",
            "Entry ID         : e1",
            "Entry ID         : e2",
            "Entry ID         : e3"
        ]
    );
    // Selectors within an entry are sorted too.
    assert!(out.contains("Selector         : docker:image:x\nSelector         : unix:uid:1000\n"));
}

#[tokio::test]
async fn entry_show_by_id_and_as_json() {
    let server = fake::start().await;
    server.fake.state().entries = vec![entry("e1", "/a", "/host", vec![sel("unix", "uid:1")])];
    let (code, out, _) = cli(
        &server.socket,
        &["entry", "show", "-entryID", "e1", "-output", "json"],
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "{\"entries\":[{\"id\":\"e1\",\"spiffe_id\":{\"trust_domain\":\"example.org\",\"path\":\"/a\"},\
         \"parent_id\":{\"trust_domain\":\"example.org\",\"path\":\"/host\"},\"selectors\":[{\"type\":\"unix\",\"value\":\"uid:1\"}],\
         \"x509_svid_ttl\":0,\"federates_with\":[],\"admin\":false,\"downstream\":false,\"expires_at\":\"0\",\"dns_names\":[],\
         \"revision_number\":\"0\",\"store_svid\":false,\"jwt_svid_ttl\":0,\"hint\":\"\",\"created_at\":\"0\"}],\"next_page_token\":\"\"}\n"
    );
    let (code, out, err) = cli(&server.socket, &["entry", "show", "-entryID", "nope"]).await;
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        "Error: error fetching entry ID nope: rpc error: code = NotFound desc = entry not found\n"
    );
    let (code, _, err) = cli(
        &server.socket,
        &[
            "entry",
            "show",
            "-entryID",
            "e1",
            "-spiffeID",
            "spiffe://example.org/a",
        ],
    )
    .await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error: the -entryID flag can't be combined with others\n"
        )
    );
}

#[tokio::test]
async fn entry_update_masks_only_the_fields_given() {
    let server = fake::start().await;
    server.fake.state().entries = vec![entry("e1", "/a", "/host", vec![sel("unix", "uid:1")])];
    let (code, out, err) = cli(
        &server.socket,
        &[
            "entry",
            "update",
            "-entryID",
            "e1",
            "-x509SVIDTTL",
            "60",
            "-selector",
            "unix:uid:2",
        ],
    )
    .await;
    assert_eq!((code, err.as_str()), (0, ""));
    let Req::UpdateEntries(req) = &server.fake.requests()[0] else {
        panic!("expected BatchUpdateEntry")
    };
    assert_eq!(req.entries[0].id, "e1");
    assert_eq!(req.entries[0].selectors, [sel("unix", "uid:2")]);
    let expected_mask = wire::EntryMask {
        x509_svid_ttl: true,
        selectors: true,
        ..Default::default()
    };
    assert_eq!(req.input_mask, Some(expected_mask));
    assert!(out.starts_with("Entry ID         : e1\n"));

    let (code, _, err) = cli(
        &server.socket,
        &["entry", "update", "-entryID", "gone", "-admin"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.starts_with("Failed to update the following entry (code: NotFound, msg: \"entry not found\"):\nEntry ID         : gone\n"), "{err}");
    assert!(
        err.ends_with("Admin            : true\n\nError: failed to update one or more entries\n"),
        "{err}"
    );

    let (code, _, err) = cli(&server.socket, &["entry", "update", "-admin"]).await;
    assert_eq!(
        (code, err.as_str()),
        (1, "Error: an entry ID is required\n")
    );
}

#[tokio::test]
async fn entry_delete_and_count() {
    let server = fake::start().await;
    server.fake.state().entries = vec![
        entry("e1", "/a", "/host", vec![sel("unix", "uid:1")]),
        entry("e2", "/b", "/host", vec![sel("unix", "uid:2")]),
    ];
    let (code, out, _) = cli(
        &server.socket,
        &["entry", "count", "-spiffeID", "spiffe://example.org/a"],
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "2 registration entries\n"));
    let Req::CountEntries(req) = &server.fake.requests()[0] else {
        panic!("expected CountEntries")
    };
    assert_eq!(
        req.filter.as_ref().unwrap().by_spiffe_id,
        id("example.org", "/a")
    );

    let (code, out, _) = cli(&server.socket, &["entry", "delete", "-entryID", "e1"]).await;
    assert_eq!((code, out.as_str()), (0, "Deleted entry with ID: e1\n"));
    let (code, out, _) = cli(&server.socket, &["entry", "count", "-output", "json"]).await;
    assert_eq!((code, out.as_str()), (0, "{\"count\":1}\n"));
    let (code, out, _) = cli(&server.socket, &["entry", "count"]).await;
    assert_eq!((code, out.as_str()), (0, "1 registration entry\n"));

    let (code, _, err) = cli(&server.socket, &["entry", "delete", "-entryID", "e1"]).await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "Error: failed to delete entry with ID e1 (code: NotFound, msg: \"entry not found\")\n"
    );
}

#[tokio::test]
async fn api_errors_print_the_grpc_status() {
    let server = fake::start().await;
    server.fake.state().fail = Some(tonic::Status::internal("internal server error"));
    let (code, out, err) = cli(&server.socket, &["entry", "count"]).await;
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        "Error: rpc error: code = Internal desc = internal server error\n"
    );
    let (code, _, err) = cli(&server.socket, &["entry", "show"]).await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error: error fetching entries: rpc error: code = Internal desc = internal server error\n"
        )
    );
}

#[tokio::test]
async fn unreachable_socket_and_unknown_commands_fail() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.sock");
    let (code, _, err) = cli(&missing, &["entry", "count"]).await;
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!("Error: connection error: {}: ", missing.display())),
        "{err}"
    );

    let (code, _, err) = cli(&missing, &["entry", "frobnicate"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("Available commands are:\n") && err.contains("entry create"),
        "{err}"
    );

    let (code, _, err) = cli(&missing, &["entry", "count", "-output", "yaml"]).await;
    assert_eq!(code, 1);
    assert!(
        err.starts_with("invalid value \"yaml\" for flag -output: "),
        "{err}"
    );
}

// === agent, token ===

#[tokio::test]
async fn agent_commands() {
    let server = fake::start().await;
    server.fake.state().agents = vec![
        wire::Agent {
            id: id("example.org", "/spire/agent/join_token/abc"),
            attestation_type: "join_token".into(),
            x509svid_serial_number: "1234".into(),
            x509svid_expires_at: 1_552_410_266,
            selectors: vec![sel("join_token", "abc")],
            can_reattest: false,
            banned: false,
            agent_version: "1.14.0".into(),
        },
        wire::Agent {
            id: id("example.org", "/spire/agent/x/banned"),
            banned: true,
            can_reattest: true,
            ..Default::default()
        },
    ];
    let (code, out, _) = cli(
        &server.socket,
        &["agent", "list", "-selector", "join_token:abc"],
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "Found 2 attested agents:\n\n\
         SPIFFE ID         : spiffe://example.org/spire/agent/join_token/abc\n\
         Attestation type  : join_token\n\
         Expiration time   : 2019-03-12 17:04:26 +0000 UTC\n\
         Serial number     : 1234\n\
         Can re-attest     : false\n\
         Agent version     : 1.14.0\n\n\
         SPIFFE ID         : spiffe://example.org/spire/agent/x/banned\n\
         Attestation type  : \n\
         Expiration time   : 1970-01-01 00:00:00 +0000 UTC\n\
         Banned            : true\n\
         Can re-attest     : true\n\n"
    );
    let Req::ListAgents(req) = &server.fake.requests()[0] else {
        panic!("expected ListAgents")
    };
    assert_eq!(req.page_size, 1000);
    let filter = req.filter.clone().unwrap();
    assert_eq!(
        filter.by_selector_match,
        Some(wire::SelectorMatch {
            selectors: vec![sel("join_token", "abc")],
            r#match: 2
        })
    );

    let (code, out, _) = cli(
        &server.socket,
        &[
            "agent",
            "show",
            "-spiffeID",
            "spiffe://example.org/spire/agent/join_token/abc",
        ],
    )
    .await;
    assert_eq!(code, 0);
    assert!(out.starts_with("Found an attested agent given its SPIFFE ID\n\nSPIFFE ID         : spiffe://example.org/spire/agent/join_token/abc\n"));
    assert!(
        out.ends_with(
            "Can re-attest     : false\nAgent version     : 1.14.0\n\n\
             Selectors         : join_token:abc\n"
        ),
        "{out}"
    );

    let (code, out, _) = cli(
        &server.socket,
        &[
            "agent",
            "evict",
            "-spiffeID",
            "spiffe://example.org/spire/agent/x/banned",
        ],
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "Agent evicted successfully\n"));
    let (code, out, _) = cli(
        &server.socket,
        &[
            "agent",
            "ban",
            "-spiffeID",
            "spiffe://example.org/spire/agent/x/banned",
        ],
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "Agent banned successfully\n"));
    let (code, out, _) = cli(&server.socket, &["agent", "count"]).await;
    assert_eq!((code, out.as_str()), (0, "2 attested agents\n"));
    let requests = server.fake.requests();
    assert!(
        matches!(&requests[2], Req::DeleteAgent(r) if r.id == id("example.org", "/spire/agent/x/banned"))
    );
    assert!(
        matches!(&requests[3], Req::BanAgent(r) if r.id == id("example.org", "/spire/agent/x/banned"))
    );

    let (code, _, err) = cli(&server.socket, &["agent", "ban"]).await;
    assert_eq!(
        (code, err.as_str()),
        (1, "Error: a SPIFFE ID is required\n")
    );
    let (code, _, err) = cli(
        &server.socket,
        &["agent", "show", "-spiffeID", "spiffe://example.org/nobody"],
    )
    .await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error: rpc error: code = NotFound desc = agent not found\n"
        )
    );
}

#[tokio::test]
async fn token_generate() {
    let server = fake::start().await;
    let (code, out, _) = cli(&server.socket, &["token", "generate"]).await;
    assert_eq!((code, out.as_str()), (0, "Token: token-abc\n"));
    let (code, _, _) = cli(
        &server.socket,
        &[
            "token",
            "generate",
            "-ttl",
            "60",
            "-spiffeID",
            "spiffe://example.org/host",
        ],
    )
    .await;
    assert_eq!(code, 0);
    let requests = server.fake.requests();
    assert!(
        matches!(&requests[0], Req::CreateJoinToken(r) if r.ttl == 600 && r.agent_id.is_none())
    );
    assert!(
        matches!(&requests[1], Req::CreateJoinToken(r) if r.ttl == 60 && r.agent_id == id("example.org", "/host"))
    );
    let (code, _, err) = cli(&server.socket, &["token", "generate", "-ttl", "0"]).await;
    assert_eq!(
        (code, err.as_str()),
        (1, "Error: a positive TTL is required\n")
    );
}

// === bundle ===

#[tokio::test]
async fn bundle_show_list_set_delete_count() {
    let server = fake::start().await;
    let cert = ca_cert();
    let der = cert.der().to_vec();
    let pem = cert.pem().replace("\r\n", "\n");
    {
        let mut state = server.fake.state();
        let authority = wire::X509Certificate {
            asn1: der.clone(),
            tainted: false,
        };
        state.bundle = wire::Bundle {
            trust_domain: "example.org".into(),
            x509_authorities: vec![authority.clone()],
            ..Default::default()
        };
        state.federated = vec![wire::Bundle {
            trust_domain: "other.test".into(),
            x509_authorities: vec![authority],
            ..Default::default()
        }];
    }
    let (code, out, _) = cli(&server.socket, &["bundle", "show"]).await;
    assert_eq!((code, out.as_str()), (0, pem.as_str()));

    let (code, out, _) = cli(&server.socket, &["bundle", "show", "-format", "spiffe"]).await;
    assert_eq!(code, 0);
    assert!(out.starts_with("{\n    \"keys\": [\n        {\n"), "{out}");
    assert!(out.contains("\"use\": \"x509-svid\""), "{out}");

    let (code, out, _) = cli(&server.socket, &["bundle", "list"]).await;
    assert_eq!(code, 0);
    let rule = "****************************************";
    assert_eq!(out, format!("{rule}\n* other.test\n{rule}\n{pem}"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fed.pem");
    std::fs::write(&path, &pem).unwrap();
    let (code, out, err) = cli(
        &server.socket,
        &[
            "bundle",
            "set",
            "-id",
            "spiffe://domain.test",
            "-path",
            path.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!((code, out.as_str(), err.as_str()), (0, "bundle set.\n", ""));
    let set = server.fake.requests().into_iter().find_map(|r| match r {
        Req::SetFederatedBundles(s) => Some(s),
        _ => None,
    });
    let set = set.unwrap();
    assert_eq!(set.bundle[0].trust_domain, "domain.test");
    assert_eq!(set.bundle[0].x509_authorities[0].asn1, der);

    let (code, out, _) = cli(
        &server.socket,
        &[
            "bundle",
            "delete",
            "-id",
            "other.test",
            "-mode",
            "dissociate",
        ],
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "bundle deleted.\n"));
    let Some(Req::DeleteFederatedBundles(del)) = server.fake.requests().last().cloned() else {
        panic!("expected delete")
    };
    assert_eq!(
        (del.trust_domains, del.mode),
        (vec!["other.test".to_owned()], 2)
    );
    let (code, _, err) = cli(&server.socket, &["bundle", "delete", "-id", "nope.test"]).await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error: failed to delete federated bundle \"nope.test\": no such bundle\n"
        )
    );
    let (code, _, err) = cli(
        &server.socket,
        &["bundle", "delete", "-id", "other.test", "-mode", "purge"],
    )
    .await;
    assert_eq!(
        (code, err.as_str()),
        (1, "Error: unsupported mode \"purge\"\n")
    );

    let (code, out, _) = cli(&server.socket, &["bundle", "count"]).await;
    assert_eq!((code, out.as_str()), (0, "2 bundles\n"));
    let (code, _, err) = cli(
        &server.socket,
        &["bundle", "set", "-path", path.to_str().unwrap()],
    )
    .await;
    assert_eq!((code, err.as_str()), (1, "Error: id flag is required\n"));
}

// === mint ===

#[tokio::test]
async fn x509_mint_writes_svid_key_and_bundle() {
    let server = fake::start().await;
    let cert = ca_cert();
    server.fake.state().bundle = wire::Bundle {
        trust_domain: "example.org".into(),
        x509_authorities: vec![wire::X509Certificate {
            asn1: cert.der().to_vec(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let (code, out, err) = cli(
        &server.socket,
        &[
            "x509",
            "mint",
            "-spiffeID",
            "spiffe://example.org/w",
            "-dns",
            "w.example.org",
            "-ttl",
            "1h",
            "-write",
            &d,
        ],
    )
    .await;
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        format!(
            "X509-SVID written to {d}/svid.pem\nPrivate key written to {d}/key.pem\nRoot CAs written to {d}/bundle.pem\n"
        )
    );
    let mode = std::fs::metadata(dir.path().join("key.pem"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        std::fs::read_to_string(dir.path().join("key.pem"))
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----\n")
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("bundle.pem")).unwrap(),
        cert.pem().replace("\r\n", "\n")
    );

    let Req::MintX509(req) = &server.fake.requests()[0] else {
        panic!("expected MintX509SVID")
    };
    assert_eq!(req.ttl, 3600);
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&req.csr).unwrap();
    let sans = csr
        .requested_extensions()
        .into_iter()
        .flatten()
        .filter_map(|ext| match ext {
            x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) => {
                Some(san.general_names.clone())
            }
            _ => None,
        })
        .flatten()
        .map(|n| n.to_string())
        .collect::<Vec<_>>();
    assert!(
        sans.contains(&"URI(spiffe://example.org/w)".to_owned()),
        "{sans:?}"
    );
    assert!(
        sans.contains(&"DNSName(w.example.org)".to_owned()),
        "{sans:?}"
    );

    let (code, _, err) = cli(
        &server.socket,
        &[
            "x509",
            "mint",
            "-spiffeID",
            "spiffe://example.org/w",
            "-ttl",
            "5y",
        ],
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        err.starts_with("invalid value \"5y\" for flag -ttl: "),
        "{err}"
    );
}

#[tokio::test]
async fn jwt_mint_prints_the_token() {
    let server = fake::start().await;
    let (code, out, _) = cli(
        &server.socket,
        &[
            "jwt",
            "mint",
            "-spiffeID",
            "spiffe://example.org/w",
            "-audience",
            "a",
            "-audience",
            "b",
            "-ttl",
            "5m",
        ],
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "header.payload.signature\n"));
    let Req::MintJwt(req) = &server.fake.requests()[0] else {
        panic!("expected MintJWTSVID")
    };
    assert_eq!(
        (req.audience.clone(), req.ttl),
        (vec!["a".to_owned(), "b".to_owned()], 300)
    );
    let (code, _, err) = cli(
        &server.socket,
        &["jwt", "mint", "-spiffeID", "spiffe://example.org/w"],
    )
    .await;
    assert_eq!(
        (code, err.as_str()),
        (1, "Error: at least one audience must be specified\n")
    );
}

// === federation, healthcheck ===

#[tokio::test]
async fn federation_create_update_delete() {
    let server = fake::start().await;
    let (code, out, err) = cli(
        &server.socket,
        &[
            "federation",
            "create",
            "-trustDomain",
            "other.test",
            "-bundleEndpointURL",
            "https://other.test/bundle",
            "-bundleEndpointProfile",
            "https_spiffe",
            "-endpointSpiffeID",
            "spiffe://other.test/spire/server",
        ],
    )
    .await;
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        "Trust domain              : other.test\n\
         Bundle endpoint URL       : https://other.test/bundle\n\
         Bundle endpoint profile   : https_spiffe\n\
         Endpoint SPIFFE ID        : spiffe://other.test/spire/server\n\n"
    );
    let (code, _, err) = cli(
        &server.socket,
        &[
            "federation",
            "update",
            "-trustDomain",
            "other.test",
            "-bundleEndpointURL",
            "https://other.test/v2",
        ],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.starts_with("Failed to update the following federation relationship (code: NotFound, msg: \"federation relationship not found\"):\n"));
    let Some(Req::UpdateRelationships(update)) = server.fake.requests().last().cloned() else {
        panic!("expected update")
    };
    let mask = wire::FederationRelationshipMask {
        bundle_endpoint_url: true,
        ..Default::default()
    };
    assert_eq!(update.input_mask, Some(mask));

    let (code, out, _) = cli(
        &server.socket,
        &["federation", "delete", "-id", "spiffe://other.test"],
    )
    .await;
    assert_eq!(
        (code, out.as_str()),
        (0, "federation relationship deleted.\n")
    );

    let (code, _, err) = cli(
        &server.socket,
        &[
            "federation",
            "create",
            "-trustDomain",
            "o.test",
            "-bundleEndpointURL",
            "https://o.test",
            "-bundleEndpointProfile",
            "https_spiffe",
        ],
    )
    .await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error: endpoint SPIFFE ID is required if 'https_spiffe' endpoint profile is set\n"
        )
    );
    let (code, _, err) = cli(
        &server.socket,
        &["federation", "create", "-trustDomain", "o.test"],
    )
    .await;
    assert_eq!(
        (code, err.as_str()),
        (1, "Error: bundle endpoint URL is required\n")
    );
}

#[tokio::test]
async fn healthcheck() {
    let server = fake::start().await;
    let (code, out, _) = cli(&server.socket, &["healthcheck"]).await;
    assert_eq!((code, out.as_str()), (0, "Server is healthy.\n"));
    server
        .health
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    let (code, _, err) = cli(&server.socket, &["healthcheck"]).await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Server is unhealthy: server returned status \"NOT_SERVING\"\n"
        )
    );
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = cli(&dir.path().join("none.sock"), &["healthcheck"]).await;
    assert_eq!(
        (code, err.as_str()),
        (1, "Server is unhealthy: unable to determine health\n")
    );
}
