//! spire-controller-manager's custom resources (`spire.spiffe.io/v1alpha1`), with its JSON
//! field names and defaults, so manifests written for it apply unchanged.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::core::{ClusterResourceScope, Duration};
use serde::{Deserialize, Serialize};

/// The API group of the resources.
pub const GROUP: &str = "spire.spiffe.io";
/// Their API version.
pub const VERSION: &str = "v1alpha1";

/// `ClusterSPIFFEID`: an entry template applied to every selected pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterSPIFFEID {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What to register.
    pub spec: ClusterSPIFFEIDSpec,
    /// What the controller last did with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ClusterSPIFFEIDStatus>,
}

/// `ClusterSPIFFEID.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSPIFFEIDSpec {
    /// Go template of the SPIFFE ID.
    #[serde(rename = "spiffeIDTemplate")]
    pub spiffe_id_template: String,
    /// X509-SVID TTL (a Go duration; zero: the server's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
    /// JWT-SVID TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_ttl: Option<Duration>,
    /// Go templates of DNS names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_name_templates: Vec<String>,
    /// Go templates of extra selectors (`type:value`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workload_selector_templates: Vec<String>,
    /// Trust domains the entry federates with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub federates_with: Vec<String>,
    /// Namespaces whose pods are candidates (none: every namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Pods selected in those namespaces (none: every pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    /// Entries get the admin flag.
    #[serde(default)]
    pub admin: bool,
    /// Entries get the downstream flag.
    #[serde(default)]
    pub downstream: bool,
    /// Add DNS names of the services whose endpoints include the pod.
    #[serde(default, rename = "autoPopulateDNSNames")]
    pub auto_populate_dns_names: bool,
    /// The controller class that handles this object.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub class_name: String,
    /// Applies only to pods no other (non-fallback) ClusterSPIFFEID applies to.
    #[serde(default)]
    pub fallback: bool,
    /// The entries' hint.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hint: String,
}

/// `ClusterSPIFFEID.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSPIFFEIDStatus {
    /// Counts from the last reconcile.
    #[serde(default)]
    pub stats: ClusterSPIFFEIDStats,
}

/// `ClusterSPIFFEID.status.stats`; every field is always written, as upstream does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSPIFFEIDStats {
    /// Namespaces the namespace selector matched.
    #[serde(default)]
    pub namespaces_selected: i64,
    /// Of those, ignored by `ignoreNamespaces`.
    #[serde(default)]
    pub namespaces_ignored: i64,
    /// Pods selected.
    #[serde(default)]
    pub pods_selected: i64,
    /// Pods whose entry could not be rendered.
    #[serde(default)]
    pub pod_entry_render_failures: i64,
    /// Entries masked by an equal entry of an older object.
    #[serde(default)]
    pub entries_masked: i64,
    /// Entries this object sets.
    #[serde(default)]
    pub entries_to_set: i64,
    /// Entries the server refused.
    #[serde(default)]
    pub entry_failures: i64,
}

/// `ClusterStaticEntry`: one entry, as is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterStaticEntry {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The entry.
    pub spec: ClusterStaticEntrySpec,
    /// What the controller last did with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ClusterStaticEntryStatus>,
}

/// `ClusterStaticEntry.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStaticEntrySpec {
    /// The SPIFFE ID.
    #[serde(rename = "spiffeID")]
    pub spiffe_id: String,
    /// The parent ID.
    #[serde(rename = "parentID")]
    pub parent_id: String,
    /// Selectors, `type:value`.
    #[serde(default)]
    pub selectors: Vec<String>,
    /// Trust domains the entry federates with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub federates_with: Vec<String>,
    /// X509-SVID TTL.
    #[serde(
        default,
        rename = "x509SVIDTTL",
        skip_serializing_if = "Option::is_none"
    )]
    pub x509_svid_ttl: Option<Duration>,
    /// JWT-SVID TTL.
    #[serde(
        default,
        rename = "jwtSVIDTTL",
        skip_serializing_if = "Option::is_none"
    )]
    pub jwt_svid_ttl: Option<Duration>,
    /// DNS names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    /// Hint.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hint: String,
    /// Admin flag.
    #[serde(default)]
    pub admin: bool,
    /// Downstream flag.
    #[serde(default)]
    pub downstream: bool,
    /// Store-SVID flag.
    #[serde(default, rename = "storeSVID")]
    pub store_svid: bool,
    /// The controller class that handles this object.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub class_name: String,
}

/// `ClusterStaticEntry.status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStaticEntryStatus {
    /// The spec parsed into an entry.
    #[serde(default)]
    pub rendered: bool,
    /// An equal entry of an older object wins.
    #[serde(default)]
    pub masked: bool,
    /// The entry is on the server.
    #[serde(default)]
    pub set: bool,
}

/// `ClusterFederatedTrustDomain`: a federation relationship.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterFederatedTrustDomain {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The relationship.
    pub spec: ClusterFederatedTrustDomainSpec,
}

/// `ClusterFederatedTrustDomain.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterFederatedTrustDomainSpec {
    /// The foreign trust domain.
    pub trust_domain: String,
    /// Its bundle endpoint (https).
    #[serde(rename = "bundleEndpointURL")]
    pub bundle_endpoint_url: String,
    /// How the endpoint is authenticated.
    pub bundle_endpoint_profile: BundleEndpointProfile,
    /// Its bundle to start from (SPIFFE bundle JSON), if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trust_domain_bundle: String,
    /// The controller class that handles this object.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub class_name: String,
}

/// `bundleEndpointProfile`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleEndpointProfile {
    /// `https_web` or `https_spiffe`.
    #[serde(rename = "type")]
    pub profile_type: String,
    /// The endpoint's SPIFFE ID (`https_spiffe` only).
    #[serde(
        default,
        rename = "endpointSPIFFEID",
        skip_serializing_if = "String::is_empty"
    )]
    pub endpoint_spiffe_id: String,
}

macro_rules! cluster_resource {
    ($ty:ty, $kind:literal, $plural:literal) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = ClusterResourceScope;

            fn kind(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($kind)
            }

            fn group(_: &()) -> Cow<'_, str> {
                Cow::Borrowed(GROUP)
            }

            fn version(_: &()) -> Cow<'_, str> {
                Cow::Borrowed(VERSION)
            }

            fn plural(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($plural)
            }

            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }

            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

cluster_resource!(ClusterSPIFFEID, "ClusterSPIFFEID", "clusterspiffeids");
cluster_resource!(
    ClusterStaticEntry,
    "ClusterStaticEntry",
    "clusterstaticentries"
);
cluster_resource!(
    ClusterFederatedTrustDomain,
    "ClusterFederatedTrustDomain",
    "clusterfederatedtrustdomains"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_of_upstream_parses_with_its_field_names() {
        let json = serde_json::json!({
            "apiVersion": "spire.spiffe.io/v1alpha1",
            "kind": "ClusterSPIFFEID",
            "metadata": {"name": "istio"},
            "spec": {
                "spiffeIDTemplate": "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}",
                "podSelector": {"matchLabels": {"spiffe.io/spire-managed-identity": "true"}},
                "ttl": "1h",
                "jwtTtl": "5m",
                "dnsNameTemplates": ["{{ .PodMeta.Name }}.example"],
                "autoPopulateDNSNames": true,
                "federatesWith": ["other.org"],
                "className": "a",
                "fallback": true,
                "hint": "h"
            }
        });
        let parsed: ClusterSPIFFEID = serde_json::from_value(json).expect("parse");
        assert_eq!(
            parsed.spec.ttl.map(std::time::Duration::from),
            Some(std::time::Duration::from_secs(3600))
        );
        assert_eq!(
            parsed.spec.jwt_ttl.map(std::time::Duration::from),
            Some(std::time::Duration::from_secs(300))
        );
        assert!(parsed.spec.auto_populate_dns_names && parsed.spec.fallback);
        assert_eq!(parsed.spec.class_name, "a");
        assert_eq!(parsed.spec.federates_with, ["other.org"]);
        let labels = parsed
            .spec
            .pod_selector
            .and_then(|s| s.match_labels)
            .expect("matchLabels");
        assert_eq!(labels["spiffe.io/spire-managed-identity"], "true");
    }

    #[test]
    fn status_stats_serialize_with_upstream_names() {
        let status = ClusterSPIFFEIDStatus {
            stats: ClusterSPIFFEIDStats {
                namespaces_selected: 1,
                pods_selected: 2,
                entries_to_set: 3,
                ..ClusterSPIFFEIDStats::default()
            },
        };
        let json = serde_json::to_value(status).expect("serialize");
        assert_eq!(json["stats"]["namespacesSelected"], 1);
        assert_eq!(json["stats"]["podsSelected"], 2);
        assert_eq!(json["stats"]["entriesToSet"], 3);
        assert_eq!(json["stats"]["podEntryRenderFailures"], 0);
    }

    #[test]
    fn static_entry_fields_use_upstream_names() {
        let json = serde_json::json!({
            "metadata": {"name": "s"},
            "spec": {
                "spiffeID": "spiffe://td/x", "parentID": "spiffe://td/p",
                "selectors": ["unix:uid:0"], "x509SVIDTTL": "10m", "storeSVID": true
            }
        });
        let parsed: ClusterStaticEntry = serde_json::from_value(json).expect("parse");
        assert_eq!(parsed.spec.spiffe_id, "spiffe://td/x");
        assert!(parsed.spec.store_svid);
        assert_eq!(
            parsed.spec.x509_svid_ttl.map(std::time::Duration::from),
            Some(std::time::Duration::from_secs(600))
        );
    }
}
