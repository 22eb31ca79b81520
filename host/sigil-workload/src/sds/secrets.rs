//! Building Envoy `Secret` resources from a workload's identities: which names exist, and
//! what each carries.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::envoy::config::core::v3::{DataSource, Node, TypedExtensionConfig};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::secret::Type as SecretType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::spiffe_cert_validator_config::TrustDomain as ValidatorTrustDomain;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, Secret, SpiffeCertValidatorConfig, TlsCertificate,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::protobuf::value::Kind;
use pem::{EncodeConfig, LineEnding, Pem};
use prost::{Message, Name};
use sigil_types::Bundle;

use crate::error::ApiError;
use crate::{WorkloadConfig, WorkloadSvid, WorkloadUpdate};

/// Envoy's name for its SPIFFE certificate validator extension.
const SPIFFE_VALIDATOR: &str = "envoy.tls.cert_validator.spiffe";

/// Node metadata key with which one Envoy overrides `disable_spiffe_cert_validation`.
const DISABLE_VALIDATOR_KEY: &str = "disable_spiffe_cert_validation";

/// How bundles are handed to Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValidationStyle {
    /// `trusted_ca` with the bundle's certificates: for Envoy before 1.18, or when the SPIFFE
    /// validator is disabled.
    TrustedCa,
    /// `custom_validator_config` with Envoy's SPIFFE validator: each trust domain's
    /// certificates only vouch for SPIFFE IDs of that trust domain.
    SpiffeValidator,
}

impl ValidationStyle {
    /// SPIRE's choice: the SPIFFE validator when the Envoy reports build version 1.18 or later
    /// and it is not disabled (by config, or by the node's metadata).
    pub(crate) fn for_node(node: Option<&Node>, config: &WorkloadConfig) -> Self {
        let mut disabled = config.disable_spiffe_cert_validation;
        if let Some(value) = node
            .and_then(|n| n.metadata.as_ref())
            .and_then(|m| m.fields.get(DISABLE_VALIDATOR_KEY))
            .and_then(|v| v.kind.as_ref())
        {
            // A value of another type, or an unparseable string, leaves the config's choice.
            match value {
                Kind::BoolValue(b) => disabled = *b,
                Kind::StringValue(s) => disabled = parse_go_bool(s).unwrap_or(disabled),
                _ => {}
            }
        }
        if !disabled && reports_1_18_or_later(node) {
            Self::SpiffeValidator
        } else {
            Self::TrustedCa
        }
    }
}

/// The resources for `requested` names (every SVID and bundle when none are named), bundles
/// first, each name once. A name that is neither configured, nor a SPIFFE ID of the workload,
/// nor a trust domain it has a bundle for refuses the whole request.
pub(crate) fn resources(
    requested: &[String],
    update: &WorkloadUpdate,
    style: ValidationStyle,
    config: &WorkloadConfig,
) -> Result<Vec<Any>, ApiError> {
    let mut wanted: BTreeSet<&str> = requested
        .iter()
        .map(String::as_str)
        .filter(|n| !n.is_empty())
        .collect();
    let everything = wanted.is_empty();
    let mut take = |name: &str| everything || wanted.remove(name);
    let mut out = Vec::new();

    let own = update.bundle();
    let own_id = own.trust_domain.id().to_string();
    if take(&own_id) {
        out.push(validation_context(&own_id, [own], style));
    }
    if !everything && take(&config.default_bundle_name) {
        out.push(validation_context(
            &config.default_bundle_name,
            [own],
            style,
        ));
    }
    if !everything && take(&config.default_all_bundles_name) {
        if style == ValidationStyle::TrustedCa {
            return Err(ApiError::AllBundlesNeedSpiffeValidator(
                config.default_all_bundles_name.clone(),
            ));
        }
        let name = &config.default_all_bundles_name;
        out.push(validation_context(name, update.all_bundles(), style));
    }
    for bundle in update.federated_bundles().values() {
        let id = bundle.trust_domain.id().to_string();
        if take(&id) {
            out.push(validation_context(&id, [bundle], style));
        }
    }

    let mut served_ids = BTreeSet::new();
    for (index, svid) in update.svids().iter().enumerate() {
        let id = svid.svid.spiffe_id.as_str();
        // Two entries may share a SPIFFE ID; the first in entry-ID order is served.
        if served_ids.insert(id) && take(id) {
            out.push(tls_certificate(id, svid)?);
        }
        if index == 0 && !everything && take(&config.default_svid_name) {
            out.push(tls_certificate(&config.default_svid_name, svid)?);
        }
    }

    if !wanted.is_empty() {
        return Err(ApiError::unknown_resources(wanted.into_iter()));
    }
    Ok(out)
}

/// A message packed as `google.protobuf.Any`.
pub(crate) fn to_any<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

fn validation_context<'a>(
    name: &str,
    bundles: impl IntoIterator<Item = &'a Bundle>,
    style: ValidationStyle,
) -> Any {
    let context = match style {
        ValidationStyle::TrustedCa => CertificateValidationContext {
            // Only ever called with one bundle in this style (see `ALL` above).
            trusted_ca: Some(inline(
                bundles
                    .into_iter()
                    .map(Bundle::x509_authorities_pem)
                    .collect::<String>()
                    .into_bytes(),
            )),
            ..Default::default()
        },
        ValidationStyle::SpiffeValidator => {
            let mut trust_domains: Vec<ValidatorTrustDomain> = bundles
                .into_iter()
                .map(|b| ValidatorTrustDomain {
                    name: b.trust_domain.name().to_owned(),
                    trust_bundle: Some(inline(b.x509_authorities_pem().into_bytes())),
                    ..Default::default()
                })
                .collect();
            trust_domains.sort_by(|a, b| a.name.cmp(&b.name));
            let validator = SpiffeCertValidatorConfig {
                trust_domains,
                ..Default::default()
            };
            CertificateValidationContext {
                custom_validator_config: Some(TypedExtensionConfig {
                    name: SPIFFE_VALIDATOR.to_owned(),
                    typed_config: Some(to_any(&validator)),
                }),
                ..Default::default()
            }
        }
    };
    to_any(&Secret {
        name: name.to_owned(),
        r#type: Some(SecretType::ValidationContext(context)),
    })
}

fn tls_certificate(name: &str, svid: &WorkloadSvid) -> Result<Any, ApiError> {
    let chain: String = svid
        .svid
        .cert_chain
        .iter()
        .map(|der| pem_block("CERTIFICATE", der.clone()))
        .collect();
    let key = pem_block(
        "PRIVATE KEY",
        svid.svid.private_key.secret_pkcs8_der().to_vec(),
    );
    if chain.is_empty() {
        tracing::error!(spiffe_id = %svid.svid.spiffe_id, "X509-SVID without certificates");
        return Err(ApiError::Internal);
    }
    Ok(to_any(&Secret {
        name: name.to_owned(),
        r#type: Some(SecretType::TlsCertificate(TlsCertificate {
            certificate_chain: Some(inline(chain.into_bytes())),
            private_key: Some(inline(key.into_bytes())),
            ..Default::default()
        })),
    }))
}

fn inline(bytes: Vec<u8>) -> DataSource {
    DataSource {
        specifier: Some(Specifier::InlineBytes(bytes)),
        ..Default::default()
    }
}

/// One PEM block with `\n` line endings, as Go's `encoding/pem` writes.
fn pem_block(label: &str, der: Vec<u8>) -> String {
    pem::encode_config(
        &Pem::new(label, der),
        EncodeConfig::new().set_line_ending(LineEnding::LF),
    )
}

fn reports_1_18_or_later(node: Option<&Node>) -> bool {
    match node.and_then(|n| n.user_agent_version_type.as_ref()) {
        Some(UserAgentVersionType::UserAgentBuildVersion(build)) => build
            .version
            .as_ref()
            .is_some_and(|v| (v.major_number == 1 && v.minor_number > 17) || v.major_number > 1),
        _ => false,
    }
}

/// Go's `strconv.ParseBool`, which SPIRE applies to the metadata value.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::BuildVersion;
    use envoy_types::pb::envoy::r#type::v3::SemanticVersion;
    use envoy_types::pb::google::protobuf::{Struct, Value};

    use super::*;

    fn envoy(major: u32, minor: u32, metadata: Option<Kind>) -> Node {
        Node {
            user_agent_version_type: Some(UserAgentVersionType::UserAgentBuildVersion(
                BuildVersion {
                    version: Some(SemanticVersion {
                        major_number: major,
                        minor_number: minor,
                        patch: 0,
                    }),
                    metadata: None,
                },
            )),
            metadata: metadata.map(|kind| Struct {
                fields: [(DISABLE_VALIDATOR_KEY.to_owned(), Value { kind: Some(kind) })].into(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_validation_style_follows_spire() {
        let on = WorkloadConfig::default();
        let off = WorkloadConfig {
            disable_spiffe_cert_validation: true,
            ..WorkloadConfig::default()
        };
        let style = ValidationStyle::for_node;
        use ValidationStyle::{SpiffeValidator, TrustedCa};

        assert_eq!(style(Some(&envoy(1, 18, None)), &on), SpiffeValidator);
        assert_eq!(style(Some(&envoy(2, 0, None)), &on), SpiffeValidator);
        assert_eq!(style(Some(&envoy(1, 17, None)), &on), TrustedCa);
        assert_eq!(style(Some(&Node::default()), &on), TrustedCa);
        assert_eq!(style(None, &on), TrustedCa);
        assert_eq!(style(Some(&envoy(1, 30, None)), &off), TrustedCa);
        // The node's metadata overrides the config either way; junk leaves the config.
        let bool_on = Some(Kind::BoolValue(true));
        assert_eq!(style(Some(&envoy(1, 30, bool_on)), &on), TrustedCa);
        let text_off = Some(Kind::StringValue("false".into()));
        assert_eq!(style(Some(&envoy(1, 30, text_off)), &off), SpiffeValidator);
        let junk = Some(Kind::StringValue("maybe".into()));
        assert_eq!(style(Some(&envoy(1, 30, junk)), &on), SpiffeValidator);
        let number = Some(Kind::NumberValue(1.0));
        assert_eq!(style(Some(&envoy(1, 30, number)), &off), TrustedCa);
    }
}
