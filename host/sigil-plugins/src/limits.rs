//! Per-call limits and the host-wide settings of the engines.

use std::path::PathBuf;
use std::time::Duration;

/// What one plugin call may use. Every limit has its own error: CPU →
/// [`PluginError::CpuBudgetExceeded`](crate::PluginError::CpuBudgetExceeded), memory →
/// [`PluginError::MemoryLimit`](crate::PluginError::MemoryLimit), outputs →
/// [`PluginError::InvalidOutput`](crate::PluginError::InvalidOutput).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Wall-clock budget of one call of an I/O-capable plugin (attestors), checked by epoch
    /// interruption every [`EPOCH_TICK`]: a call is stopped once it has run for `cpu`
    /// (give or take one tick), not counting the time the host spent on I/O for it inside
    /// capability calls (files, network, publish targets), which `io_timeout` bounds, nor
    /// the time its thread waited for a CPU (`/proc/thread-self/schedstat`, where the
    /// kernel reports it), so a loaded machine does not turn into budget failures.
    pub cpu: Duration,
    /// Longest one I/O-doing host call (an HTTP request, a file write) may take.
    pub io_timeout: Duration,
    /// Fuel budget of one call of a pure plugin (renderers): about one unit per WebAssembly
    /// instruction, so the same input always stops at the same point.
    pub fuel: u64,
    /// Linear memory one instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// Most selectors one attestation may return.
    pub max_selectors: usize,
    /// Longest selector value (without the type), in bytes.
    pub max_selector_len: usize,
    /// Longest node-attestation message (payload, challenge, answer, challenge state), in
    /// bytes.
    pub max_message_bytes: usize,
    /// Most bytes one bundle publisher `write` may carry.
    pub max_publish_bytes: usize,
    /// Largest granted file or HTTP response body a plugin may read, in bytes.
    pub max_read_bytes: usize,
}

/// How often the epoch of the I/O engine advances.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cpu: Duration::from_millis(100),
            io_timeout: Duration::from_secs(5),
            fuel: 100_000_000,
            memory_bytes: 64 << 20,
            max_selectors: 256,
            max_selector_len: 1024,
            max_message_bytes: 64 << 10,
            max_publish_bytes: 1 << 20,
            max_read_bytes: 1 << 20,
        }
    }
}

impl Limits {
    /// These limits with a CPU budget of `cpu` for I/O-capable plugins.
    #[must_use]
    pub fn with_cpu(mut self, cpu: Duration) -> Self {
        self.cpu = cpu;
        self
    }

    /// These limits with a fuel budget of `fuel` for pure plugins.
    #[must_use]
    pub fn with_fuel(mut self, fuel: u64) -> Self {
        self.fuel = fuel;
        self
    }

    /// These limits with a memory limit of `bytes`.
    #[must_use]
    pub fn with_memory_bytes(mut self, bytes: usize) -> Self {
        self.memory_bytes = bytes;
        self
    }

    /// These limits with at most `count` selectors of at most `len` bytes each.
    #[must_use]
    pub fn with_selector_limits(mut self, count: usize, len: usize) -> Self {
        self.max_selectors = count;
        self.max_selector_len = len;
        self
    }

    /// These limits with bundle publisher writes of at most `bytes`.
    #[must_use]
    pub fn with_max_publish_bytes(mut self, bytes: usize) -> Self {
        self.max_publish_bytes = bytes;
        self
    }

    /// These limits with I/O host calls bounded by `timeout`.
    #[must_use]
    pub fn with_io_timeout(mut self, timeout: Duration) -> Self {
        self.io_timeout = timeout;
        self
    }

    /// The epoch deadline of a call, in ticks: the budget rounded up to whole ticks, plus
    /// one, because the first tick may come at any moment after the call starts.
    pub(crate) fn epoch_ticks(&self) -> u64 {
        ticks_for(self.cpu)
    }
}

/// `budget` in epoch ticks, rounded up, plus one for the partial first tick.
pub(crate) fn ticks_for(budget: Duration) -> u64 {
    let tick = EPOCH_TICK.as_nanos().max(1);
    let ticks = budget.as_nanos().div_ceil(tick);
    u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
}

/// Settings of the plugin host as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostConfig {
    /// Calls that may run at once per engine: the pool's instance count with the pooling
    /// allocator, and the same bound with on-demand allocation. A call beyond that waits
    /// in the engine's queue.
    pub max_concurrent_calls: u32,
    /// Most calls that may wait for an instance slot per engine; one more is refused at
    /// once with [`PluginError::Saturated`](crate::PluginError::Saturated).
    pub max_queued_calls: u32,
    /// Longest a call waits for an instance slot before it is refused with
    /// [`PluginError::Saturated`](crate::PluginError::Saturated).
    pub queue_wait: Duration,
    /// The largest [`Limits::memory_bytes`] any plugin may be given (the size of a pool
    /// slot).
    pub memory_ceiling: usize,
    /// Use the pooling allocator if the address-space probe passes. When false, or when
    /// the probe fails, instances are allocated on demand.
    pub pooling: bool,
    /// Where compiled plugins are kept between runs (created 0700; refused if another
    /// user owns it or others may write it). `None`: compile at every start.
    pub artifact_cache: Option<PathBuf>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            max_concurrent_calls: 32,
            max_queued_calls: 1024,
            queue_wait: Duration::from_secs(5),
            memory_ceiling: 256 << 20,
            pooling: true,
            artifact_cache: None,
        }
    }
}

impl HostConfig {
    /// At most `calls` plugin calls at once per engine (at least one).
    #[must_use]
    pub fn with_max_concurrent_calls(mut self, calls: u32) -> Self {
        self.max_concurrent_calls = calls.max(1);
        self
    }

    /// Calls beyond the concurrent ones wait, at most `queued` of them and each at most
    /// `wait`, before they are refused with
    /// [`PluginError::Saturated`](crate::PluginError::Saturated).
    #[must_use]
    pub fn with_queue(mut self, queued: u32, wait: Duration) -> Self {
        self.max_queued_calls = queued;
        self.queue_wait = wait;
        self
    }

    /// Keep compiled plugins in `dir` between runs.
    #[must_use]
    pub fn with_artifact_cache(mut self, dir: impl Into<PathBuf>) -> Self {
        self.artifact_cache = Some(dir.into());
        self
    }
}
