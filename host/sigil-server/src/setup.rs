//! From configuration to running parts: datastore, keys, CA, plugins, entry cache.

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sigil_ca::{
    CaConfig, CaManager, DEFAULT_ROTATION_INTERVAL, DiskKeyManager, KeyManager, MemoryKeyManager,
    Subject, UpstreamDiskConfig,
};
use sigil_clock::SystemClock;
use sigil_config::{DatabaseType, KeyManagerConfig, ServerConfig};
use sigil_entrycache::{CacheConfig, EntryCache};
use sigil_plugins::{HostConfig, NodeAttestorServer, PluginHost};
use sigil_store::{DataStore, DataStoreCaStorage};
use sigil_types::TrustDomain;
use tokio::sync::watch;

use crate::error::ServerError;
use crate::tokens::now;

/// How often the entry cache polls the event log (PostgreSQL notifications wake it sooner).
const CACHE_POLL: Duration = Duration::from_secs(1);

/// A started server: every part the APIs use. Background tasks (CA rotation, the entry
/// cache's follower) run until [`Server::shutdown`].
pub struct Server {
    pub(crate) trust_domain: TrustDomain,
    pub(crate) config: ServerConfig,
    pub(crate) store: Arc<dyn DataStore>,
    pub(crate) ca: Arc<CaManager>,
    pub(crate) cache: Arc<EntryCache>,
    /// Node attestors by configured name; used by the agent API.
    pub(crate) node_attestors: BTreeMap<String, NodeAttestorServer>,
    stop: watch::Sender<bool>,
}

impl Server {
    /// Open the datastore, start the CA, load the plugins and the entry cache, and start the
    /// background tasks.
    pub async fn start(config: ServerConfig) -> Result<Arc<Self>, ServerError> {
        let data_dir = config.data_dir.clone();
        create_private_dir(&data_dir)?;
        let store = open_store(&config).await?;
        let keys: Arc<dyn KeyManager> = match &config.plugins.key_manager {
            KeyManagerConfig::Memory => Arc::new(MemoryKeyManager::new()),
            KeyManagerConfig::Disk { keys_path } => Arc::new(DiskKeyManager::open(keys_path)?),
            other => {
                return Err(ServerError::Unsupported(format!(
                    "KeyManager {other:?} is not supported by this server"
                )));
            }
        };
        // Servers sharing a database each keep their own CA slots; the bundle is shared.
        let instance = instance_id(&data_dir)?;
        let storage = Arc::new(DataStoreCaStorage::new(
            store.clone(),
            format!("server/{instance}"),
        ));
        let ca = Arc::new(CaManager::start(ca_config(&config)?, keys, storage, now()).await?);
        tracing::info!(
            trust_domain = %config.trust_domain,
            slot = ?ca.current().slot(),
            not_after = ca.current().x509_ca().not_after(),
            "CA ready"
        );

        let plugins = PluginHost::new(
            HostConfig::default().with_artifact_cache(data_dir.join("plugin-cache")),
        )?;
        let node_attestors = crate::node_attestors::load(&config, &plugins, &store)?;
        let publishers = crate::publishers::load(&config, &plugins)?;

        let cache =
            EntryCache::load(store.as_ref(), &config.trust_domain, CacheConfig::default()).await?;
        tracing::info!(
            entries = cache.entry_count(),
            agents = cache.agent_count(),
            "entry cache loaded"
        );
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(sigil_entrycache::run_follower(
            cache.clone(),
            store.clone(),
            CACHE_POLL,
            wait_for_stop(stopped.clone()),
        ));
        if config.plugins.data_store.database_type == DatabaseType::Postgres {
            tokio::spawn(crate::listen::wake_on_notify(
                config.plugins.data_store.connection_string.clone(),
                cache.clone(),
                stopped.clone(),
            ));
        }
        let rotation = tokio::spawn(sigil_ca::run_rotation(
            ca.clone(),
            Arc::new(SystemClock),
            DEFAULT_ROTATION_INTERVAL,
        ));
        tokio::spawn(crate::publishers::run(
            publishers,
            store.clone(),
            config.trust_domain.clone(),
            stopped.clone(),
        ));
        let mut stopped_rotation = stopped;
        tokio::spawn(async move {
            let _ = stopped_rotation.wait_for(|stop| *stop).await;
            rotation.abort();
        });

        Ok(Arc::new(Server {
            trust_domain: config.trust_domain.clone(),
            config,
            store,
            ca,
            cache,
            node_attestors,
            stop,
        }))
    }

    /// Stop the background tasks.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

async fn wait_for_stop(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// SQLite at `connection_string` (or `<data_dir>/datastore.sqlite3` when empty), or
/// PostgreSQL.
async fn open_store(config: &ServerConfig) -> Result<Arc<dyn DataStore>, ServerError> {
    let data_store = &config.plugins.data_store;
    Ok(match data_store.database_type {
        DatabaseType::Postgres => {
            sigil_store::postgres::connect(&data_store.connection_string).await?
        }
        _ if data_store.connection_string.is_empty() => {
            sigil_store::sqlite::open_in_dir(&config.data_dir).await?
        }
        _ => sigil_store::sqlite::open(&data_store.connection_string).await?,
    })
}

fn ca_config(config: &ServerConfig) -> Result<CaConfig, ServerError> {
    let mut ca = CaConfig::new(config.trust_domain.clone());
    ca.key_type = config.ca_key_type;
    ca.ca_ttl = config.ca_ttl;
    ca.x509_svid_ttl = config.default_x509_svid_ttl;
    ca.jwt_svid_ttl = config.default_jwt_svid_ttl;
    let subject = &config.ca_subject;
    // The CA certificate carries one country and one organization; say so rather than drop
    // the rest.
    for (field, values) in [
        ("country", &subject.country),
        ("organization", &subject.organization),
    ] {
        if values.len() > 1 {
            return Err(ServerError::Unsupported(format!(
                "ca_subject.{field}: {values:?} has more than one value; this server supports one"
            )));
        }
    }
    let mut ca_subject = Subject::spire_ca_default();
    if let Some(country) = subject.country.first() {
        ca_subject.country = Some(country.clone());
    }
    if let Some(organization) = subject.organization.first() {
        ca_subject.organization = Some(organization.clone());
    }
    if !subject.common_name.is_empty() {
        ca_subject.common_name = Some(subject.common_name.clone());
    }
    ca.subject = ca_subject;
    ca.upstream = config
        .plugins
        .upstream_authority
        .as_ref()
        .map(|upstream| UpstreamDiskConfig {
            cert_file_path: upstream.cert_file_path.clone(),
            key_file_path: upstream.key_file_path.clone(),
            bundle_file_path: upstream.bundle_file_path.clone(),
        });
    Ok(ca)
}

/// This server's instance ID, kept in `<data_dir>/instance-id` (created on first start): the
/// name of its CA journal in a datastore several servers may share.
fn instance_id(data_dir: &Path) -> Result<String, ServerError> {
    let path = data_dir.join("instance-id");
    let io = |source| ServerError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        Ok(_) => Err(io(std::io::Error::other("the file is empty"))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let id = uuid::Uuid::new_v4().to_string();
            std::fs::write(&path, format!("{id}\n")).map_err(io)?;
            Ok(id)
        }
        Err(error) => Err(io(error)),
    }
}

/// Create `dir` (0700) if it does not exist.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), ServerError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| ServerError::Io {
            path: dir.to_owned(),
            source,
        })
}
