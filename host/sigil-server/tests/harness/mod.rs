//! An in-process server for the API tests (sigil-testkit's, with its admin socket and its
//! agent API on a loopback port), driven with the CLI and generated gRPC clients; the entry
//! helpers these tests share.

use std::path::Path;

use sigil_testkit::conf::{ServerConf, sqlite_data_store};
pub(crate) use sigil_testkit::server::{
    InProcessServer as Harness, cli, token, uds_channel as admin_channel,
};

/// Start a server in `dir` with the DataStore `plugin_data` body `data_store`.
pub(crate) async fn start(dir: &Path, data_store: &str) -> Harness {
    Harness::start_conf(&ServerConf {
        data_store: data_store.to_owned(),
        ..ServerConf::in_dir(dir)
    })
    .await
}

/// Create an entry through `socket`; its ID.
pub(crate) async fn create_entry(socket: &Path, spiffe_id: &str, parent: &str) -> String {
    create_entry_with(socket, spiffe_id, parent, &[]).await
}

/// Create an entry with `extra` flags (`-admin`, `-downstream`, …) through `socket`; its ID.
pub(crate) async fn create_entry_with(
    socket: &Path,
    spiffe_id: &str,
    parent: &str,
    extra: &[&str],
) -> String {
    let mut args = vec![
        "entry",
        "create",
        "-spiffeID",
        spiffe_id,
        "-parentID",
        parent,
        "-selector",
        "unix:uid:1000",
    ];
    args.extend_from_slice(extra);
    let (code, out) = cli(socket, &args).await;
    assert_eq!(code, 0, "{out}");
    sigil_testkit::entry_id(&out)
}

/// The SQLite DataStore `plugin_data` body for a database in `dir`'s server data directory.
pub(crate) fn sqlite(dir: &Path) -> String {
    sqlite_data_store(&ServerConf::in_dir(dir).data_dir)
}
