//! The on-disk cache of compiled plugins, so a restart does not run cranelift again.
//!
//! A compiled component is native code: loading one is `unsafe` in wasmtime, because a
//! tampered file runs with the daemon's rights. The cache keeps that safe by who can write
//! it: the directory is created 0700 and refused unless it belongs to this process's user
//! and nobody else may write it; files are written 0600 through a temporary name and a
//! rename. The file name binds the component's SHA-256 (checked against the bytes at every
//! load, and against `plugin_checksum` when configured), the engine profile and wasmtime's
//! compatibility hash of the engine's settings; wasmtime checks its own header as well.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::engine::Profile;
use crate::error::PluginError;

/// A directory of compiled components, owned by this process's user.
#[derive(Debug, Clone)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    /// Open (creating it 0700 if needed) the cache directory `dir`, refusing one that
    /// another user owns or that group or others may write.
    pub(crate) fn open(dir: &Path) -> Result<Self, PluginError> {
        let fail =
            |reason: String| PluginError::Host(format!("plugin cache {}: {reason}", dir.display()));
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| fail(format!("cannot create it: {e}")))?;
        }
        let metadata = fs::metadata(dir).map_err(|e| fail(format!("cannot read it: {e}")))?;
        if !metadata.is_dir() {
            return Err(fail("not a directory".into()));
        }
        let own_uid = fs::metadata("/proc/self")
            .map_err(|e| fail(format!("cannot tell this process's user: {e}")))?
            .uid();
        if metadata.uid() != own_uid {
            return Err(fail(format!(
                "owned by uid {}, not by this process's uid {own_uid}",
                metadata.uid()
            )));
        }
        if metadata.permissions().mode() & 0o022 != 0 {
            return Err(fail(format!(
                "mode {:o} lets others write it; make it 0700",
                metadata.permissions().mode() & 0o777
            )));
        }
        Ok(ArtifactCache {
            dir: dir.to_owned(),
        })
    }

    /// The compiled component for `digest` on `engine`, from the cache or compiled by
    /// `compile` and stored. A cache file that cannot be read or written is logged and
    /// the component compiled: the cache only saves time.
    pub(crate) fn component(
        &self,
        engine: &Engine,
        profile: Profile,
        digest: &[u8; 32],
        compile: impl FnOnce() -> Result<Component, PluginError>,
    ) -> Result<Component, PluginError> {
        let path = self.path(engine, profile, digest);
        if path.exists() {
            match load(engine, &path) {
                Ok(component) => return Ok(component),
                Err(error) => tracing::warn!(
                    path = %path.display(),
                    error = %error,
                    "cannot load a cached plugin, compiling it again"
                ),
            }
        }
        let component = compile()?;
        if let Err(error) = store(&component, &path) {
            tracing::warn!(path = %path.display(), error = %error, "cannot cache a compiled plugin");
        }
        Ok(component)
    }

    fn path(&self, engine: &Engine, profile: Profile, digest: &[u8; 32]) -> PathBuf {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let profile = match profile {
            Profile::Io => "io",
            Profile::Pure => "pure",
        };
        self.dir.join(format!(
            "{}-{profile}-{:016x}.cwasm",
            hex::encode(digest),
            hasher.finish()
        ))
    }
}

/// Load a compiled component written by [`store`].
fn load(engine: &Engine, path: &Path) -> Result<Component, String> {
    let metadata = fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !metadata.is_file() || metadata.permissions().mode() & 0o022 != 0 {
        return Err("not a regular file writable only by its owner".into());
    }
    #[expect(
        unsafe_code,
        reason = "the file is native code compiled by this host into a directory only this \
                  user can write (checked in ArtifactCache::open and above), named by the \
                  component's verified SHA-256 and the engine's compatibility hash"
    )]
    // SAFETY: see the reason above; wasmtime also refuses files from another engine
    // configuration or version.
    let component = unsafe { Component::deserialize_file(engine, path) };
    component.map_err(|e| format!("{e:#}"))
}

/// Write `component`'s compiled form to `path`: 0600, through a temporary file and a
/// rename, so a concurrent reader sees a whole file or none.
fn store(component: &Component, path: &Path) -> Result<(), String> {
    let bytes = component.serialize().map_err(|e| format!("{e:#}"))?;
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(&bytes)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temporary, path));
    if let Err(error) = written {
        // Best effort: the temporary file is ours and useless now.
        let _ = fs::remove_file(&temporary);
        return Err(error.to_string());
    }
    Ok(())
}
