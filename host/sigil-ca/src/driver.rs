//! The rotation loop: calls [`CaManager::rotate`] on an interval, on tokio's clock so that a
//! paused-clock test can drive a whole CA lifetime in milliseconds.

use std::sync::Arc;
use std::time::Duration;

use sigil_types::Clock;
use tokio::time::MissedTickBehavior;
use tracing::{info, warn};

use crate::CaManager;

/// How often SPIRE's CA manager checks whether to rotate: every 10 seconds.
pub const DEFAULT_ROTATION_INTERVAL: Duration = Duration::from_secs(10);

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
