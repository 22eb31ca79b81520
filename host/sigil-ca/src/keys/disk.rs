//! A key manager that keeps one PKCS#8 DER file per key in a directory (SPIRE's `disk`
//! KeyManager, one file per key instead of one JSON document).
//!
//! Files are written to a temporary name created with mode 0600 (never chmod-ed afterwards),
//! synced, then renamed over the final name, so a crash leaves either the old key or the new
//! one. The directory is created 0700.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use zeroize::Zeroizing;

use super::{Key, KeyError, KeyManager, validate_key_id};
use crate::KeyType;

/// The suffix of key files: `<key ID>.pkcs8`.
const KEY_FILE_SUFFIX: &str = ".pkcs8";
/// Temporary files are `.<key ID>.pkcs8.tmp-<random>`; leftovers from a crash are removed.
const TEMP_MARKER: &str = ".pkcs8.tmp-";

/// Keys in a directory, one file per key, reloaded when the directory is opened again.
#[derive(Debug)]
pub struct DiskKeyManager {
    dir: PathBuf,
    keys: Mutex<BTreeMap<String, Key>>,
}

impl DiskKeyManager {
    /// Opens (creating it 0700 if missing) the key directory and loads every key in it.
    ///
    /// Fails, naming the file, when a key file is corrupt, is not a regular file, or can be
    /// read by group or others; fails when the directory is writable by group or others.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, KeyError> {
        let dir = dir.into();
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| KeyError::Io { path, source }
        };
        if !dir.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(io(&dir))?;
        }
        let meta = fs::metadata(&dir).map_err(io(&dir))?;
        let mode = meta.permissions().mode() & 0o7777;
        if !meta.is_dir() || mode & 0o022 != 0 {
            return Err(KeyError::KeyDirPermissions { path: dir, mode });
        }

        let mut keys = BTreeMap::new();
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.starts_with('.') && name.contains(TEMP_MARKER) {
                // A write that never reached its rename: the key was never used.
                fs::remove_file(&path).map_err(io(&path))?;
                continue;
            }
            let Some(id) = name.strip_suffix(KEY_FILE_SUFFIX) else {
                continue;
            };
            let key = load_key_file(&path, id)?;
            keys.insert(id.to_owned(), key);
        }
        Ok(Self {
            dir,
            keys: Mutex::new(keys),
        })
    }

    /// The directory this manager keeps its keys in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a key ID is stored in.
    pub fn key_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}{KEY_FILE_SUFFIX}"))
    }

    fn write_atomically(&self, key: &Key) -> Result<(), KeyError> {
        let final_path = self.key_path(key.id());
        let temp_path = self
            .dir
            .join(format!(".{}{TEMP_MARKER}{}", key.id(), random_suffix()));
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp_path)?;
            file.write_all(key.secret_pkcs8_der())?;
            file.sync_all()?;
            drop(file);
            fs::rename(&temp_path, &final_path)?;
            File::open(&self.dir)?.sync_all()
        })();
        result.map_err(|source| {
            // Best effort: the temporary file is also removed by the next `open`.
            let _ = fs::remove_file(&temp_path);
            KeyError::Io {
                path: final_path,
                source,
            }
        })
    }
}

impl KeyManager for DiskKeyManager {
    fn generate_key(&self, id: &str, key_type: KeyType) -> Result<Key, KeyError> {
        let key = Key::generate(id, key_type)?;
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        self.write_atomically(&key)?;
        keys.insert(id.to_owned(), key.clone());
        Ok(key)
    }

    fn key(&self, id: &str) -> Result<Option<Key>, KeyError> {
        validate_key_id(id)?;
        Ok(self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned())
    }

    fn keys(&self) -> Result<Vec<Key>, KeyError> {
        Ok(self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect())
    }
}

fn load_key_file(path: &Path, id: &str) -> Result<Key, KeyError> {
    let corrupt = |reason: String| KeyError::KeyFileCorrupt {
        path: path.to_owned(),
        reason,
    };
    let meta = fs::symlink_metadata(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })?;
    if !meta.file_type().is_file() {
        return Err(corrupt("not a regular file".into()));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::KeyFilePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    let der = Zeroizing::new(fs::read(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })?);
    Key::from_pkcs8_der(id, &der).map_err(|e| match e {
        KeyError::UnsupportedKey { reason, .. } => corrupt(reason),
        other => corrupt(other.to_string()),
    })
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    // On the (never observed) failure of the system RNG the name is still unique enough:
    // `create_new` refuses to reuse an existing temporary file.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
