//! sigil-server: the certificate authority and registration server of one trust domain.
//!
//! [`Server::start`] turns a [`ServerConfig`](sigil_config::ServerConfig) into running parts:
//! the datastore (SQLite or PostgreSQL), the key manager, the CA with its rotation, the
//! authorized-entry cache following the datastore's event log, and the node attestor
//! plugins. [`serve`] then serves SPIRE's server API on the admin Unix socket until told to
//! stop. The `sigil-server` binary wraps both (`run`, `validate`) and hands every other
//! command to [`sigil_cli`], SPIRE's admin CLI.
//!
//! [`serve_agents`] serves the agent-facing API on TCP with TLS (attestation, SVIDs, entry
//! sync; admin and downstream callers by their entries' flags) and [`serve_health`] the
//! `health_checks` HTTP endpoints.

mod admin;
mod agent_api;
mod api;
mod api_error;
mod error;
mod health;
mod listen;
mod node_attestors;
mod publishers;
mod setup;
mod tls;
mod tokens;

pub use admin::serve;
pub use agent_api::{serve_agents, serve_agents_on};
pub use error::ServerError;
pub use health::serve_health;
pub use setup::Server;
