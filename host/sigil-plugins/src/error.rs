//! The errors of the plugin host. Every variant that concerns one plugin carries its
//! configured name, so a log line or an API error says which plugin failed and why.

use std::path::PathBuf;

/// Why loading or calling a plugin failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The plugin name cannot be a selector type (empty, or contains `:` or a control
    /// character).
    #[error("plugin name {0:?} is not usable as a selector type")]
    BadName(String),
    /// No built-in plugin of this kind has this name.
    #[error("no built-in {kind} plugin is named {name:?}")]
    UnknownBuiltin {
        /// The plugin kind that was asked for.
        kind: &'static str,
        /// The configured plugin name.
        name: String,
    },
    /// The `plugin_wasm` file could not be read.
    #[error("plugin {plugin}: cannot read {}: {source}", path.display())]
    ReadWasm {
        /// The configured plugin name.
        plugin: String,
        /// The `plugin_wasm` path.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// `plugin_checksum` is not 64 hex digits.
    #[error("plugin {plugin}: plugin_checksum must be a SHA-256 in hex (64 hex digits)")]
    BadChecksum {
        /// The configured plugin name.
        plugin: String,
    },
    /// The component's SHA-256 differs from `plugin_checksum`.
    #[error("plugin {plugin}: checksum mismatch: expected sha256 {expected}, file has {actual}")]
    ChecksumMismatch {
        /// The configured plugin name.
        plugin: String,
        /// `plugin_checksum` as configured.
        expected: String,
        /// The digest of the bytes that were read.
        actual: String,
    },
    /// The bytes are not a WebAssembly component wasmtime can compile.
    #[error("plugin {plugin}: not a valid WebAssembly component: {reason}")]
    InvalidComponent {
        /// The configured plugin name.
        plugin: String,
        /// wasmtime's reason.
        reason: String,
    },
    /// The component imports an interface its world does not grant.
    #[error("plugin {plugin}: imports {import}, which is not granted to a {kind} plugin")]
    UngrantedImport {
        /// The configured plugin name.
        plugin: String,
        /// The plugin kind it was loaded as.
        kind: &'static str,
        /// The import's full name, such as `wasi:sockets/tcp@0.2.6`.
        import: String,
    },
    /// The component imports a capability of its world that the operator did not grant
    /// this plugin.
    #[error("plugin {plugin}: imports {import}, which is not granted to it ({how})")]
    CapabilityNotGranted {
        /// The configured plugin name.
        plugin: String,
        /// The import's full name.
        import: String,
        /// How it would be granted.
        how: &'static str,
    },
    /// The component does not have the exports of the world it was loaded as.
    #[error("plugin {plugin}: does not implement the {kind} world: {reason}")]
    WrongWorld {
        /// The configured plugin name.
        plugin: String,
        /// The plugin kind it was loaded as.
        kind: &'static str,
        /// What is missing or mistyped.
        reason: String,
    },
    /// The plugin ran out of its CPU budget (time for I/O plugins, fuel for renderers).
    #[error("plugin {plugin}: CPU budget exceeded ({budget})")]
    CpuBudgetExceeded {
        /// The configured plugin name.
        plugin: String,
        /// The budget, as configured (`100ms`, `50000000 fuel`).
        budget: String,
    },
    /// The plugin asked for more linear memory (or tables) than its limit.
    #[error("plugin {plugin}: memory limit of {limit_bytes} bytes exceeded")]
    MemoryLimit {
        /// The configured plugin name.
        plugin: String,
        /// The limit in bytes.
        limit_bytes: usize,
    },
    /// The plugin trapped: a panic, an out-of-bounds access, `unreachable`.
    #[error("plugin {plugin} trapped: {reason}")]
    Trap {
        /// The configured plugin name.
        plugin: String,
        /// The trap and what the plugin wrote to stderr just before, if anything.
        reason: String,
    },
    /// The plugin returned an error of its own.
    #[error("plugin {plugin} failed: {reason}")]
    Plugin {
        /// The configured plugin name.
        plugin: String,
        /// The plugin's error, with its WIT case (`invalid-argument: …`).
        reason: String,
    },
    /// The plugin returned something the host refuses: too many or too long selectors, a
    /// malformed SPIFFE ID, an ID in another trust domain.
    #[error("plugin {plugin} returned an invalid output: {reason}")]
    InvalidOutput {
        /// The configured plugin name.
        plugin: String,
        /// What was wrong.
        reason: String,
    },
    /// The facts of the process under attestation could not be read (it exited, or its PID
    /// was reused).
    #[error("process {pid}: {reason}")]
    Process {
        /// The PID asked for.
        pid: u32,
        /// What failed.
        reason: String,
    },
    /// The bundle handed to a publisher cannot be rendered as a SPIFFE bundle document.
    #[error("bundle cannot be published: {source}")]
    BadBundle {
        /// What is wrong with it.
        source: sigil_types::BundleError,
    },
    /// Every instance slot of the engine stayed busy: the call was not run. Neither the
    /// plugin's fault nor the caller's; the same call may succeed later.
    #[error("plugin {plugin}: not run, {cause}")]
    Saturated {
        /// The configured plugin name.
        plugin: String,
        /// Whether the queue was full or the wait ran out.
        cause: Saturation,
    },
    /// wasmtime refused the engine configuration or an instantiation for a reason that is
    /// not the plugin's fault.
    #[error("plugin host: {0}")]
    Host(String),
}

impl PluginError {
    /// Whether the call was refused for want of capacity ([`PluginError::Saturated`]), so
    /// that retrying it later may succeed.
    pub fn is_saturated(&self) -> bool {
        matches!(self, PluginError::Saturated { .. })
    }
}

/// Why a call found no instance slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Saturation {
    /// [`HostConfig::max_queued_calls`](crate::HostConfig::max_queued_calls) calls were
    /// already waiting.
    #[error("{queued} calls are already waiting for an instance slot")]
    QueueFull {
        /// The calls waiting.
        queued: usize,
    },
    /// No slot came free within [`HostConfig::queue_wait`](crate::HostConfig::queue_wait).
    #[error("no instance slot came free within {} ms", waited.as_millis())]
    Deadline {
        /// How long the call waited.
        waited: std::time::Duration,
    },
}
