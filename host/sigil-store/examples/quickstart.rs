//! The quickstart until sigil-server and sigil-agent exist: the real CA and datastore, driven
//! directly. Registers the current uid in a SQLite datastore, finds the entry the way the
//! agent will (entries whose selectors the workload's selectors satisfy), mints an X509-SVID
//! for it from a CSR made here, and writes `svid.pem` and `bundle.pem` to the given directory.
//!
//! `cargo run -p sigil-store --example quickstart -- <dir>`

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use sigil_ca::{CaConfig, CaManager, DiskKeyManager, X509SvidParams};
use sigil_store::{DataStoreCaStorage, EntryFilter, MatchMode, SelectorMatch};
use sigil_types::{RegistrationEntry, Selector, SpiffeId, TrustDomain};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let dir = std::env::args()
        .nth(1)
        .context("usage: quickstart <empty directory>")?;
    let dir = std::path::Path::new(&dir);
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let uid = std::fs::metadata("/proc/self")
        .context("reading this process's uid from /proc/self")?
        .uid();

    let td = TrustDomain::new("example.org")?;
    let store = sigil_store::sqlite::open_in_dir(&dir.join("data")).await?;
    let keys = Arc::new(DiskKeyManager::open(dir.join("data/keys"))?);
    let storage = Arc::new(DataStoreCaStorage::new(store.clone(), "quickstart"));
    let ca = CaManager::start(CaConfig::new(td.clone()), keys, storage, now).await?;
    println!(
        "CA for {td}: slot {:?}, valid until {}",
        ca.current().slot(),
        ca.current().x509_ca().not_after()
    );

    let selector = Selector::new("unix", &format!("uid:{uid}"))?;
    let entry = RegistrationEntry::new(
        SpiffeId::new(&td, &format!("/quickstart/uid/{uid}"))?,
        SpiffeId::new(&td, "/spire/agent/join_token/quickstart")?,
        vec![selector.clone()],
    );
    let entry = store.create_entry(entry).await?;
    println!("Entry ID         : {}", entry.id);
    println!("SPIFFE ID        : {}", entry.spiffe_id);
    println!("Parent ID        : {}", entry.parent_id);
    println!("Selector         : {selector}");

    // The agent will match a workload's attested selectors like this.
    let filter = EntryFilter {
        by_selectors: Some(SelectorMatch {
            selectors: vec![selector],
            mode: MatchMode::Subset,
        }),
        ..EntryFilter::default()
    };
    let found = store.list_entries(&filter, None).await?.items;
    let [entry] = found.as_slice() else {
        bail!("expected one entry for uid {uid}, found {}", found.len());
    };

    // The workload's key never leaves it: only the CSR goes to the CA.
    let key = rcgen::KeyPair::generate()?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())?.serialize_request(&key)?;
    let chain = ca.mint_x509_svid(
        csr.der(),
        &X509SvidParams::new(entry.spiffe_id.clone()),
        now,
    )?;
    let leaf = chain
        .cert_chain
        .first()
        .context("CA returned an empty chain")?;
    let pem = |der: &[u8]| pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()));
    std::fs::write(dir.join("svid.pem"), pem(leaf))?;
    let bundle = store
        .fetch_bundle(&td)
        .await?
        .context("the CA did not publish a bundle")?;
    std::fs::write(dir.join("bundle.pem"), bundle.x509_authorities_pem())?;

    println!("X509-SVID        : {}", entry.spiffe_id);
    println!("Expires at       : {} (unix seconds)", chain.expires_at);
    println!(
        "Wrote            : {} and {}",
        dir.join("svid.pem").display(),
        dir.join("bundle.pem").display()
    );
    Ok(())
}
