//! The admission queue of an engine: a call takes an instance slot before it creates its
//! `Store`, and gives it back when the store (and so the instance) is gone.
//!
//! The slots are as many as the pool has component instances
//! ([`HostConfig::max_concurrent_calls`]), so a call never reaches the pooling allocator
//! without room for its instance; with on-demand allocation the same count bounds how many
//! instances exist at once. A call that finds every slot taken waits in a first-come,
//! first-served queue of at most [`HostConfig::max_queued_calls`] calls, for at most
//! [`HostConfig::queue_wait`]; otherwise it gets [`PluginError::Saturated`] at once.
//!
//! A freed slot is handed to the oldest waiter directly, so a newly arriving call never
//! overtakes one that has been waiting. Waiting blocks the calling thread, as the plugin
//! call itself does: callers run plugin calls on blocking threads.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{PluginError, Saturation};
use crate::limits::HostConfig;

/// How often, at most, saturation is reported in the log: a burst of refused calls makes
/// one warning, with the count of the calls refused since the previous one.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The instance slots of one engine and the calls waiting for one.
#[derive(Debug)]
pub(crate) struct Capacity {
    state: Mutex<State>,
    max_queued: usize,
    wait: Duration,
}

#[derive(Debug)]
struct State {
    /// Slots nobody holds.
    free: u32,
    /// Calls waiting for a slot, oldest first.
    queue: VecDeque<Arc<Waiter>>,
    /// Calls refused since the last warning, and when it was written.
    refused: u64,
    reported: Option<Instant>,
}

/// One waiting call: set `granted` (under the state's lock) and notify to hand it a slot.
#[derive(Debug, Default)]
struct Waiter {
    granted: Mutex<bool>,
    wake: Condvar,
}

/// A held slot; dropping it frees the slot for the next call.
#[derive(Debug)]
pub(crate) struct Slot {
    capacity: Arc<Capacity>,
}

impl Capacity {
    /// The slots and queue bounds of `host`.
    pub(crate) fn new(host: &HostConfig) -> Arc<Self> {
        Arc::new(Capacity {
            state: Mutex::new(State {
                free: host.max_concurrent_calls.max(1),
                queue: VecDeque::new(),
                refused: 0,
                reported: None,
            }),
            max_queued: usize::try_from(host.max_queued_calls).unwrap_or(usize::MAX),
            wait: host.queue_wait,
        })
    }

    /// A slot for a call of `plugin`: at once when one is free and nobody is waiting, else
    /// after waiting in the queue; [`PluginError::Saturated`] when the queue is full or the
    /// wait runs out.
    pub(crate) fn acquire(self: &Arc<Self>, plugin: &str) -> Result<Slot, PluginError> {
        let waiter = {
            let mut state = self.lock();
            if state.free > 0 && state.queue.is_empty() {
                state.free -= 1;
                return Ok(self.slot());
            }
            if state.queue.len() >= self.max_queued {
                let queued = state.queue.len();
                return Err(self.refuse(state, plugin, Saturation::QueueFull { queued }));
            }
            let waiter = Arc::new(Waiter::default());
            state.queue.push_back(waiter.clone());
            waiter
        };
        let deadline = Instant::now() + self.wait;
        let mut granted = waiter
            .granted
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while !*granted {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            granted = waiter
                .wake
                .wait_timeout(granted, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if *granted {
            return Ok(self.slot());
        }
        drop(granted);
        // Out of time. A slot may have been handed over meanwhile: the hand-over happens
        // under the state's lock, so under it the waiter is either still queued or granted.
        let mut state = self.lock();
        match state.queue.iter().position(|w| Arc::ptr_eq(w, &waiter)) {
            Some(index) => {
                state.queue.remove(index);
                let waited = self.wait;
                Err(self.refuse(state, plugin, Saturation::Deadline { waited }))
            }
            None => Ok(self.slot()),
        }
    }

    fn slot(self: &Arc<Self>) -> Slot {
        Slot {
            capacity: self.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The saturation error, counted and reported at most every [`REPORT_EVERY`].
    fn refuse(
        &self,
        mut state: MutexGuard<'_, State>,
        plugin: &str,
        cause: Saturation,
    ) -> PluginError {
        state.refused = state.refused.saturating_add(1);
        let now = Instant::now();
        if state
            .reported
            .is_none_or(|at| now.duration_since(at) >= REPORT_EVERY)
        {
            let refused = std::mem::take(&mut state.refused);
            state.reported = Some(now);
            drop(state);
            tracing::warn!(
                plugin,
                refused,
                reason = %cause,
                "plugin calls refused: every instance slot is busy"
            );
        }
        PluginError::Saturated {
            plugin: plugin.to_owned(),
            cause,
        }
    }

    /// Gives a freed slot to the oldest waiter, or back to the pool of free slots.
    fn release(&self) {
        let mut state = self.lock();
        match state.queue.pop_front() {
            Some(waiter) => {
                *waiter
                    .granted
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = true;
                waiter.wake.notify_one();
            }
            None => state.free = state.free.saturating_add(1),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.capacity.release();
    }
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::*;

    fn capacity(slots: u32, queued: u32, wait: Duration) -> Arc<Capacity> {
        Capacity::new(
            &HostConfig::default()
                .with_max_concurrent_calls(slots)
                .with_queue(queued, wait),
        )
    }

    #[test]
    fn a_full_queue_is_refused_at_once_and_a_waiter_gets_the_freed_slot() {
        let capacity = capacity(1, 1, Duration::from_secs(30));
        let held = capacity.acquire("p").map_err(|e| e.to_string());
        assert!(held.is_ok(), "{held:?}");
        let waiting = thread::spawn({
            let capacity = capacity.clone();
            move || capacity.acquire("p").map(drop).map_err(|e| e.to_string())
        });
        let started = Instant::now();
        while capacity.lock().queue.is_empty() {
            assert!(started.elapsed() < Duration::from_secs(10), "never queued");
            thread::sleep(Duration::from_millis(5));
        }
        let third = capacity.acquire("p").map(drop).err();
        assert!(
            matches!(
                third,
                Some(PluginError::Saturated {
                    cause: Saturation::QueueFull { queued: 1 },
                    ..
                })
            ),
            "{third:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        drop(held);
        assert_eq!(waiting.join().ok(), Some(Ok(())));
    }

    #[test]
    fn a_waiter_gives_up_at_its_deadline_and_frees_its_place() {
        let capacity = capacity(1, 4, Duration::from_millis(50));
        let held = capacity.acquire("p");
        assert!(held.is_ok());
        let started = Instant::now();
        let error = capacity.acquire("p").map(drop).err();
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(
            matches!(
                error,
                Some(PluginError::Saturated {
                    cause: Saturation::Deadline { .. },
                    ..
                })
            ),
            "{error:?}"
        );
        assert!(capacity.lock().queue.is_empty());
        drop(held);
        assert_eq!(capacity.lock().free, 1);
    }
}
