//! What the two daemons, sigil-server and sigil-agent, share at start:
//! - [`init_logging`]: logging as `log_level`, `log_format` and `log_file` say (SPIRE's keys);
//! - [`shutdown_signal`]: the signals that stop them;
//! - [`health`]: the `health_checks` HTTP listener (live and ready endpoints);
//! - [`plugin_spec`]: a configured plugin as the plugin host loads it.

pub mod health;
mod logging;
mod plugins;
mod signals;

pub use logging::init_logging;
pub use plugins::plugin_spec;
pub use signals::shutdown_signal;
