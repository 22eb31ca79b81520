//! The `disk` bundle publisher (SPIRE's `disk` BundlePublisher): writes the trust bundle to
//! the file the operator granted, as PEM (`format = "pem"`) or as a SPIFFE bundle document
//! (`format = "spiffe"`, a JWK set with SPIFFE's extensions).
//!
//! The plugin never opens a file itself: the server grants `file_path` as its publish
//! target, so the plugin can write nowhere else. Configuration (`plugin_data`, HCL
//! attributes): `file_path = "…"` (required, read by the server) and
//! `format = "pem" | "spiffe"` (required). Any other key is refused.

use sigil_pdk::{Bundle, BundlePublisher, PluginError, Target};

/// How the bundle is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Pem,
    Spiffe,
}

/// The plugin: its format.
#[derive(Debug)]
pub struct Disk {
    format: Format,
}

impl BundlePublisher for Disk {
    fn configure(_trust_domain: &str, config: &str) -> Result<Self, PluginError> {
        let mut format = None;
        for line in config.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with("//") {
                continue;
            }
            let invalid = |m: String| PluginError::InvalidArgument(m);
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| invalid("plugin_data: expected `format = \"pem\"`".into()))?;
            if key.trim() == "file_path" {
                continue;
            }
            if key.trim() != "format" {
                return Err(invalid(format!(
                    "plugin_data: unknown key {:?}",
                    key.trim()
                )));
            }
            format = Some(match value.trim() {
                "\"pem\"" => Format::Pem,
                "\"spiffe\"" => Format::Spiffe,
                other => {
                    return Err(invalid(format!(
                        "plugin_data: format must be \"pem\" or \"spiffe\", not {other}"
                    )));
                }
            });
        }
        let format = format.ok_or_else(|| {
            PluginError::InvalidArgument("plugin_data: `format` is required".into())
        })?;
        Ok(Disk { format })
    }

    fn publish(&self, bundle: &Bundle, target: &Target) -> Result<(), PluginError> {
        let contents = match self.format {
            Format::Pem => bundle.x509_authorities_pem.as_bytes(),
            Format::Spiffe => bundle.spiffe_bundle_json.as_bytes(),
        };
        target.write(contents)?;
        sigil_pdk::log::info(&format!(
            "published bundle {} of {} to {}",
            bundle.sequence_number,
            bundle.trust_domain,
            target.describe()
        ));
        Ok(())
    }
}

sigil_pdk::export_bundle_publisher!(Disk);
