//! What a `Store` holds during one call: the deny-all WASI context, the resource table,
//! the memory limiter and the captured stdout/stderr of the plugin.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::ResourceLimiter;

use crate::capabilities::{Grants, HttpClients};
use crate::limits::Limits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// How much of stdout and of stderr a call keeps for the log.
const CAPTURE_BYTES: usize = 16 << 10;
/// Longest log message the host keeps from a plugin.
pub(crate) const MAX_LOG_MESSAGE: usize = 4 << 10;
/// Most table elements an instance may have.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The data of one call's store.
pub(crate) struct CallState {
    pub(crate) plugin: Arc<str>,
    /// The call's CPU budget, for host calls that compute on the plugin's behalf (hashing
    /// an executable); `None` on the fuel-metered engine.
    pub(crate) cpu_budget: Option<Duration>,
    /// Most bytes one bundle publisher `write` may carry.
    pub(crate) max_publish_bytes: usize,
    /// Most bytes a granted file or an HTTP response may have.
    pub(crate) max_read_bytes: usize,
    /// Bound of one I/O-doing host call.
    pub(crate) io_timeout: Duration,
    /// When the call started, how much of its time the host spent on I/O for it, and how
    /// long its thread had waited for a CPU when it started (`None` where the kernel does
    /// not say): the CPU budget is checked against the call's age minus its I/O and minus
    /// the time it spent runnable but not running, so a loaded machine does not make a
    /// plugin fail its budget.
    pub(crate) started: Instant,
    pub(crate) io_time: Duration,
    pub(crate) run_delay_at_start: Option<Duration>,
    /// Whether the plugin's code has been called: before, the instance is being created.
    pub(crate) in_call: bool,
    /// What the plugin was granted.
    pub(crate) grants: Arc<Grants>,
    pub(crate) http: HttpClients,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    wasi: WasiCtx,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl CallState {
    /// A state whose WASI context grants nothing: no preopened directories, no environment,
    /// no arguments, no sockets, no stdin; stdout and stderr go to memory for the log.
    pub(crate) fn new(
        plugin: Arc<str>,
        limits: &Limits,
        grants: Arc<Grants>,
        http: HttpClients,
    ) -> Self {
        let stdout = MemoryOutputPipe::new(CAPTURE_BYTES);
        let stderr = MemoryOutputPipe::new(CAPTURE_BYTES);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_blocking_current_thread(false)
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false)
            .build();
        CallState {
            plugin,
            cpu_budget: None,
            max_publish_bytes: limits.max_publish_bytes,
            max_read_bytes: limits.max_read_bytes,
            io_timeout: limits.io_timeout,
            started: Instant::now(),
            io_time: Duration::ZERO,
            run_delay_at_start: None,
            in_call: false,
            grants,
            http,
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                limit: limits.memory_bytes,
                hit: false,
            },
            wasi,
            stdout,
            stderr,
        }
    }

    /// Run `io` (a host call that waits on disk or network) and leave its duration out of
    /// the plugin's CPU budget.
    pub(crate) fn io<R>(&mut self, io: impl FnOnce(&Self) -> R) -> R {
        let start = Instant::now();
        let result = io(self);
        self.io_time = self.io_time.saturating_add(start.elapsed());
        result
    }

    /// Starts counting the time the call's thread waits for a CPU (the I/O engine's
    /// calls; a call runs on the thread that made its store).
    pub(crate) fn track_run_delay(&mut self) {
        self.run_delay_at_start = run_delay();
    }

    /// The instance exists and its code is about to be called: the CPU budget counts from
    /// here. Creating the instance is the host's work (allocating and resetting its memory,
    /// which stalls on the kernel when many calls start at once), not the plugin's.
    pub(crate) fn start_budget(&mut self) {
        self.in_call = true;
        self.started = Instant::now();
        self.io_time = Duration::ZERO;
        if self.cpu_budget.is_some() {
            self.track_run_delay();
        }
    }

    /// How long the plugin itself has run: the call's age minus its host I/O and minus the
    /// time its thread waited for a CPU since the call started. Time the thread sleeps still
    /// counts, so a plugin that waits (on a clock, say) uses its budget as before.
    pub(crate) fn cpu_used(&self) -> Duration {
        let waited = self
            .run_delay_at_start
            .zip(run_delay())
            .map_or(Duration::ZERO, |(start, now)| now.saturating_sub(start));
        self.started
            .elapsed()
            .saturating_sub(self.io_time)
            .saturating_sub(waited)
    }

    /// When the CPU budget runs out if the plugin does nothing but wait from now on.
    pub(crate) fn cpu_deadline(&self) -> Option<Instant> {
        let left = self.cpu_budget?.saturating_sub(self.cpu_used());
        Instant::now().checked_add(left)
    }

    /// Write what the plugin printed to the log, tagged with its name, and return the tail
    /// of stderr (a panic message, usually) for the error.
    pub(crate) fn flush_output(&self) -> String {
        let plugin = &*self.plugin;
        let stdout = self.stdout.contents();
        for line in String::from_utf8_lossy(&stdout)
            .lines()
            .filter(|l| !l.is_empty())
        {
            tracing::info!(plugin, stream = "stdout", message = line, "plugin output");
        }
        let stderr = self.stderr.contents();
        let stderr = String::from_utf8_lossy(&stderr);
        for line in stderr.lines().filter(|l| !l.is_empty()) {
            tracing::warn!(plugin, stream = "stderr", message = line, "plugin output");
        }
        let tail = stderr.trim();
        truncate(tail, 512).to_owned()
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Refuses memory growth past the call's limit and remembers that it did, so a trap that
/// follows (Rust aborts when an allocation fails) is reported as the memory limit.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit: usize,
    pub(crate) hit: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }
}

/// How long the current thread has waited on a run queue in its life: the second field of
/// `/proc/thread-self/schedstat` (nanoseconds). `None` where the kernel does not report it.
fn run_delay() -> Option<Duration> {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    parse_run_delay(&schedstat)
}

/// The run-queue wait in a `schedstat` line: on-CPU ns, run-queue ns, time slices.
pub(crate) fn parse_run_delay(schedstat: &str) -> Option<Duration> {
    let mut fields = schedstat.split_ascii_whitespace();
    fields.next()?;
    fields.next()?.parse().ok().map(Duration::from_nanos)
}

/// At most `max` bytes of `text`, cut at a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
