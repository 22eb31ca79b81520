//! The host's checks of what a WebAssembly plugin returns (sigil-plugins `output.rs`):
//! selector values, SPIFFE IDs from renderers, agent IDs from node attestors, and opaque
//! messages. Properties: an accepted output satisfies the documented limits (count and length
//! of selectors, message size), selectors get the plugin's name as their type and the value
//! unchanged, SPIFFE IDs are the plugin's text and in the trust domain, agent IDs have the form
//! `spiffe://<trust domain>/spire/agent/<plugin>/<suffix>`; a refusal names the plugin.
//!
//! sigil-plugins depends on wasmtime, whose instrumented build would dominate the fuzz build,
//! so `output.rs` itself is compiled into this target (`#[path]`) against the three items it
//! imports from its crate, restated in `shim` below with the same names and fields. A change
//! to those imports breaks this build, loudly.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sigil_types::{Selector, TrustDomain};

#[path = "../../host/sigil-plugins/src/output.rs"]
mod output;

/// `crate::error`, `crate::limits` and `crate::state` as `output.rs` uses them.
mod shim {
    pub(crate) mod error {
        #[derive(Debug)]
        pub(crate) enum PluginError {
            InvalidOutput { plugin: String, reason: String },
        }
    }

    pub(crate) mod limits {
        /// The fields of sigil-plugins' `Limits` that `output.rs` reads.
        #[derive(Debug)]
        pub(crate) struct Limits {
            pub(crate) max_selectors: usize,
            pub(crate) max_selector_len: usize,
            pub(crate) max_message_bytes: usize,
        }
    }

    pub(crate) mod state {
        /// sigil-plugins' `state::truncate`, restated: `text` cut to at most `max` bytes at a
        /// character boundary.
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
    }
}
use shim::{error, limits, state};

use error::PluginError;
use limits::Limits;

#[derive(Debug, Arbitrary)]
struct Input {
    plugin: PluginName,
    max_selectors: u8,
    max_selector_len: u16,
    max_message_bytes: u16,
    values: Vec<String>,
    id: String,
    message: Vec<u8>,
}

/// Configured plugin names are operator-chosen; a likely one helps the agent-ID form.
#[derive(Debug, Arbitrary)]
enum PluginName {
    JoinToken,
    K8s,
    Any(String),
}

fuzz_target!(|input: Input| {
    let plugin = match &input.plugin {
        PluginName::JoinToken => "join_token",
        PluginName::K8s => "k8s_psat",
        PluginName::Any(name) => name.as_str(),
    };
    let limits = Limits {
        max_selectors: usize::from(input.max_selectors),
        max_selector_len: usize::from(input.max_selector_len),
        max_message_bytes: usize::from(input.max_message_bytes),
    };
    let td = TrustDomain::new("example.org").expect("valid");

    match output::selectors(plugin, &limits, &input.values) {
        Ok(selectors) => {
            assert!(input.values.len() <= limits.max_selectors);
            assert_eq!(selectors.len(), input.values.len());
            for (selector, value) in selectors.iter().zip(&input.values) {
                assert!(value.len() <= limits.max_selector_len);
                assert_eq!(selector.selector_type(), plugin);
                assert_eq!(selector.value(), value);
                let again: Selector = selector.to_string().parse().expect("displays and parses");
                assert_eq!(&again, selector);
            }
        }
        Err(e) => names_plugin(&e, plugin),
    }

    match output::spiffe_id(plugin, &td, &input.id) {
        Ok(id) => {
            assert_eq!(id.as_str(), input.id);
            assert!(id.is_member_of(&td));
        }
        Err(e) => names_plugin(&e, plugin),
    }

    match output::agent_id(plugin, &td, &input.id) {
        Ok(id) => {
            assert!(id.is_member_of(&td));
            let prefix = format!("spiffe://example.org/spire/agent/{plugin}/");
            let suffix = input.id.strip_prefix(&prefix).expect("the agent-ID form");
            assert!(!suffix.is_empty());
        }
        Err(e) => names_plugin(&e, plugin),
    }

    match output::message(plugin, &limits, "payload", input.message.clone()) {
        Ok(bytes) => {
            assert!(bytes.len() <= limits.max_message_bytes);
            assert_eq!(bytes, input.message);
        }
        Err(e) => names_plugin(&e, plugin),
    }
});

fn names_plugin(error: &PluginError, expected: &str) {
    let PluginError::InvalidOutput { plugin, reason } = error;
    assert_eq!(plugin, expected);
    assert!(!reason.is_empty());
    // Messages quote at most a bounded part of what the plugin returned.
    assert!(reason.len() <= 4096, "a {}-byte error reason", reason.len());
}
