//! The rotation loop: calls [`CaManager::rotate`] on an interval, on tokio's clock so that a
//! paused-clock test can drive a whole CA lifetime in milliseconds.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sigil_types::UnixTime;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{info, warn};

use crate::CaManager;

/// How often SPIRE's CA manager checks whether to rotate: every 10 seconds.
pub const DEFAULT_ROTATION_INTERVAL: Duration = Duration::from_secs(10);

/// Where the rotation loop reads the time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time, in Unix seconds.
    fn now(&self) -> UnixTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        let elapsed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
    }
}

/// Wall-clock time that advances with tokio's clock: `start` plus the tokio time elapsed since
/// this clock was made. Under `tokio::time::pause` it advances only when tokio's does.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: UnixTime,
    anchor: Instant,
}

impl TokioClock {
    /// A clock reading `start` now.
    pub fn starting_at(start: UnixTime) -> Self {
        Self {
            start,
            anchor: Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> UnixTime {
        let elapsed = i64::try_from(self.anchor.elapsed().as_secs()).unwrap_or(i64::MAX);
        self.start.saturating_add(elapsed)
    }
}

/// Rotates `manager` every `interval` (the first check is immediate), forever. Failures are
/// logged and retried at the next tick; abort the task to stop.
pub async fn run_rotation(manager: Arc<CaManager>, clock: Arc<dyn Clock>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = clock.now();
        match manager.rotate(now).await {
            Ok(steps) => {
                for step in steps {
                    info!(?step, now, "CA rotation step taken");
                }
            }
            Err(error) => warn!(%error, now, "CA rotation failed; retrying at the next tick"),
        }
    }
}
