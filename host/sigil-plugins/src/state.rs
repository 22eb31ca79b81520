//! What a `Store` holds during one call: the deny-all WASI context, the resource table,
//! the memory limiter and the captured stdout/stderr of the plugin.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::ResourceLimiter;

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
    /// When the call's CPU budget ends, for host calls that can take long (hashing an
    /// executable); `None` on the fuel-metered engine.
    pub(crate) deadline: Option<Instant>,
    /// Most bytes one bundle publisher `write` may carry.
    pub(crate) max_publish_bytes: usize,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    wasi: WasiCtx,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl CallState {
    /// A state whose WASI context grants nothing: no preopened directories, no environment,
    /// no arguments, no sockets, no stdin; stdout and stderr go to memory for the log.
    pub(crate) fn new(plugin: Arc<str>, limits: &Limits) -> Self {
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
            deadline: None,
            max_publish_bytes: limits.max_publish_bytes,
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
