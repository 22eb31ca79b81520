//! Where sigil reads the time. [`sigil_types::Clock`] is the seam; this crate holds the two
//! clocks behind it, so that sigil-types stays free of I/O:
//! - [`SystemClock`], the host's wall clock, which the daemons run on;
//! - [`TokioClock`], wall time that advances with tokio's clock, so a test under
//!   `tokio::time::pause` drives expiry, renewal and rotation in milliseconds.

use std::time::{SystemTime, UNIX_EPOCH};

use sigil_types::{Clock, UnixTime};
use tokio::time::Instant;

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        unix_seconds(SystemTime::now())
    }
}

/// The system's wall clock now, in Unix seconds: `SystemClock.now()` for code that has no clock
/// to be handed (timestamps on records, not decisions a test must drive).
pub fn unix_now() -> UnixTime {
    SystemClock.now()
}

/// `at` in Unix seconds; a time before the epoch reads as 0, one past `i64::MAX` as `i64::MAX`.
pub fn unix_seconds(at: SystemTime) -> UnixTime {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
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

    /// A clock reading the system's time now, then following tokio's.
    pub fn starting_now() -> Self {
        Self::starting_at(unix_now())
    }
}

impl Clock for TokioClock {
    fn now(&self) -> UnixTime {
        let elapsed = i64::try_from(self.anchor.elapsed().as_secs()).unwrap_or(i64::MAX);
        self.start.saturating_add(elapsed)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn unix_seconds_clamps_instead_of_failing() {
        assert_eq!(unix_seconds(UNIX_EPOCH), 0);
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(5)), 0);
        assert_eq!(
            unix_seconds(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            1_700_000_000
        );
    }

    #[test]
    fn the_system_clock_reads_the_present() {
        // 2023-11-14: any machine running this is later than that.
        assert!(SystemClock.now() > 1_700_000_000);
    }

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_moves_only_with_tokio_time() {
        let clock = TokioClock::starting_at(1_000);
        assert_eq!(clock.now(), 1_000);
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.now(), 1_090);
    }
}
