//! What the agent keeps in `data_dir` so a restart needs no new attestation.
//!
//! | file | content | mode |
//! | --- | --- | --- |
//! | `agent-svid.json` | the agent's SPIFFE ID and X509-SVID chain (DER, base64) | 0600 |
//! | `agent-key.der` | the agent SVID's private key, PKCS#8 DER | 0600 |
//! | `bundle.json` | the trust domain's bundle as last synced (sigil-types' JSON) | 0600 |
//!
//! The directory is created 0700. Every file is written to a temporary file and renamed, so
//! a crash leaves the old or the new version, never half of one. The key is written before
//! the SVID, so a stored SVID always has its key.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sigil_types::{Bundle, PrivateKeyDer, SpiffeId};

use crate::error::AgentError;

/// File of the agent SVID chain.
pub const AGENT_SVID_FILE: &str = "agent-svid.json";
/// File of the agent SVID's key.
pub const AGENT_KEY_FILE: &str = "agent-key.der";
/// File of the bundle.
pub const BUNDLE_FILE: &str = "bundle.json";

/// The agent's identity: its SVID chain (leaf first) and key.
#[derive(Debug, Clone)]
pub(crate) struct AgentSvid {
    pub(crate) spiffe_id: SpiffeId,
    pub(crate) chain: Vec<Vec<u8>>,
    pub(crate) key: PrivateKeyDer,
    /// The server lets this agent attest again (its node attestor can prove the node
    /// repeatedly, unlike a one-time join token): it renews and recovers from eviction by
    /// attesting.
    pub(crate) reattestable: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SvidFile {
    spiffe_id: SpiffeId,
    cert_chain: Vec<String>,
    #[serde(default)]
    reattestable: bool,
}

/// The data directory.
#[derive(Debug, Clone)]
pub(crate) struct DataDir {
    dir: PathBuf,
}

impl DataDir {
    /// Opens (creating 0700) `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Self, AgentError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| AgentError::file(dir, e))?;
        Ok(DataDir {
            dir: dir.to_owned(),
        })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// The stored agent SVID and key, if both are there.
    pub(crate) fn load_agent_svid(&self) -> Result<Option<AgentSvid>, AgentError> {
        let svid_path = self.dir.join(AGENT_SVID_FILE);
        let key_path = self.dir.join(AGENT_KEY_FILE);
        if !svid_path.exists() || !key_path.exists() {
            return Ok(None);
        }
        let text = fs::read(&svid_path).map_err(|e| AgentError::file(&svid_path, e))?;
        let file: SvidFile =
            serde_json::from_slice(&text).map_err(|e| AgentError::file(&svid_path, e))?;
        let chain = file
            .cert_chain
            .iter()
            .map(|c| STANDARD.decode(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AgentError::file(&svid_path, e))?;
        if chain.is_empty() {
            return Err(AgentError::file(&svid_path, "empty certificate chain"));
        }
        check_mode(&key_path)?;
        let key = fs::read(&key_path).map_err(|e| AgentError::file(&key_path, e))?;
        Ok(Some(AgentSvid {
            spiffe_id: file.spiffe_id,
            chain,
            key: PrivateKeyDer::new(key),
            reattestable: file.reattestable,
        }))
    }

    /// Stores the agent SVID: the key first, then the chain.
    pub(crate) fn store_agent_svid(&self, svid: &AgentSvid) -> Result<(), AgentError> {
        self.write(AGENT_KEY_FILE, svid.key.secret_pkcs8_der())?;
        let file = SvidFile {
            spiffe_id: svid.spiffe_id.clone(),
            cert_chain: svid.chain.iter().map(|c| STANDARD.encode(c)).collect(),
            reattestable: svid.reattestable,
        };
        let text =
            serde_json::to_vec_pretty(&file).map_err(|e| AgentError::file(AGENT_SVID_FILE, e))?;
        self.write(AGENT_SVID_FILE, &text)
    }

    /// Removes the stored agent SVID and key (after the server evicted or banned the agent),
    /// so the next start attests anew. The SVID goes first: a key without an SVID is ignored.
    pub(crate) fn remove_agent_svid(&self) -> Result<(), AgentError> {
        for name in [AGENT_SVID_FILE, AGENT_KEY_FILE] {
            let path = self.dir.join(name);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(AgentError::file(&path, error)),
            }
        }
        Ok(())
    }

    /// The stored bundle, if any.
    pub(crate) fn load_bundle(&self) -> Result<Option<Bundle>, AgentError> {
        let path = self.dir.join(BUNDLE_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = fs::read(&path).map_err(|e| AgentError::file(&path, e))?;
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| AgentError::file(&path, e))
    }

    /// Stores the bundle.
    pub(crate) fn store_bundle(&self, bundle: &Bundle) -> Result<(), AgentError> {
        let text =
            serde_json::to_vec_pretty(bundle).map_err(|e| AgentError::file(BUNDLE_FILE, e))?;
        self.write(BUNDLE_FILE, &text)
    }

    /// Writes `name` 0600 through a temporary file and a rename.
    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), AgentError> {
        let path = self.dir.join(name);
        let temp = self.dir.join(format!(".{name}.tmp"));
        let _ = fs::remove_file(&temp);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| AgentError::file(&temp, e))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| AgentError::file(&temp, e))?;
        fs::rename(&temp, &path).map_err(|e| AgentError::file(&path, e))
    }
}

/// Refuses a key file others may read.
fn check_mode(path: &Path) -> Result<(), AgentError> {
    let mode = fs::metadata(path)
        .map_err(|e| AgentError::file(path, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(AgentError::file(
            path,
            format!(
                "mode {:o} lets others read the key; expected 0600",
                mode & 0o777
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svid() -> AgentSvid {
        AgentSvid {
            spiffe_id: "spiffe://example.org/spire/agent/x/y".parse().expect("id"),
            chain: vec![vec![1, 2, 3], vec![4, 5]],
            key: PrivateKeyDer::new(vec![9; 32]),
            reattestable: true,
        }
    }

    #[test]
    fn the_agent_svid_round_trips_with_a_0600_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = DataDir::open(&dir.path().join("data")).expect("open");
        assert!(data.load_agent_svid().expect("load").is_none());
        data.store_agent_svid(&svid()).expect("store");
        let mode = |name: &str| {
            fs::metadata(data.path().join(name))
                .expect("stat")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(AGENT_KEY_FILE), 0o600);
        assert_eq!(mode(AGENT_SVID_FILE), 0o600);
        assert_eq!(
            fs::metadata(data.path())
                .expect("stat")
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        let loaded = data.load_agent_svid().expect("load").expect("stored");
        assert_eq!(loaded.spiffe_id, svid().spiffe_id);
        assert_eq!(loaded.chain, svid().chain);
        assert_eq!(loaded.key, svid().key);
        assert!(loaded.reattestable);
        data.remove_agent_svid().expect("remove");
        assert!(data.load_agent_svid().expect("load").is_none());
        data.remove_agent_svid().expect("removing twice is fine");
    }

    #[test]
    fn a_key_others_may_read_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = DataDir::open(dir.path()).expect("open");
        data.store_agent_svid(&svid()).expect("store");
        let key = dir.path().join(AGENT_KEY_FILE);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = data.load_agent_svid().expect_err("loose mode");
        assert!(error.to_string().contains("0600"), "{error}");
    }

    #[test]
    fn the_bundle_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = DataDir::open(dir.path()).expect("open");
        assert!(data.load_bundle().expect("load").is_none());
        let mut bundle = Bundle::new("example.org".parse().expect("td"));
        bundle.sequence_number = 7;
        data.store_bundle(&bundle).expect("store");
        assert_eq!(data.load_bundle().expect("load"), Some(bundle));
    }
}
