//! The seam through which sigil reads the time. The clocks themselves (the system's, and one
//! driven by tokio's paused time for tests) live in sigil-clock: this crate does no I/O.

use std::fmt;

use crate::UnixTime;

/// Where code that decides by the time (expiry, renewal, rotation) reads it.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time, in Unix seconds.
    fn now(&self) -> UnixTime;
}
