//! ClusterFederatedTrustDomains to federation relationships, as spire-controller-manager's
//! federation reconciler: one relationship per trust domain (the older object wins a
//! conflict), compared without the bundle; relationships no object declares are deleted.

use std::collections::BTreeMap;

use sigil_types::{Bundle, BundleEndpointProfile, FederationRelationship, SpiffeId, TrustDomain};

use crate::config::ControllerConfig;
use crate::crd::ClusterFederatedTrustDomain;

/// The relationships declared, by trust domain, and why objects declared none.
#[derive(Debug, Default)]
pub struct Declared {
    /// By trust domain name.
    pub relationships: BTreeMap<String, FederationRelationship>,
    /// For the log.
    pub problems: Vec<String>,
}

/// The relationships `objects` declare under `config`.
pub fn declare(config: &ControllerConfig, objects: &[&ClusterFederatedTrustDomain]) -> Declared {
    let mut ordered: Vec<&ClusterFederatedTrustDomain> = objects
        .iter()
        .copied()
        .filter(|o| config.handles_class(&o.spec.class_name))
        .collect();
    ordered.sort_by(|a, b| {
        let time =
            |o: &ClusterFederatedTrustDomain| o.metadata.creation_timestamp.as_ref().map(|t| t.0);
        time(a).cmp(&time(b))
    });
    let mut out = Declared::default();
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    for object in ordered {
        let name = object.metadata.name.clone().unwrap_or_default();
        match parse(object) {
            Ok(relationship) => {
                let td = relationship.trust_domain.name().to_owned();
                if let Some(owner) = owners.get(&td) {
                    out.problems.push(format!(
                        "ClusterFederatedTrustDomain {name:?}: ignored, trust domain {td} is \
                         already declared by {owner:?}"
                    ));
                    continue;
                }
                owners.insert(td.clone(), name);
                out.relationships.insert(td, relationship);
            }
            Err(e) => out
                .problems
                .push(format!("ClusterFederatedTrustDomain {name:?}: {e}")),
        }
    }
    out
}

/// Upstream's `ParseClusterFederatedTrustDomainSpec`.
fn parse(object: &ClusterFederatedTrustDomain) -> Result<FederationRelationship, String> {
    let spec = &object.spec;
    let trust_domain = TrustDomain::new(&spec.trust_domain)
        .map_err(|e| format!("invalid trustDomain value {:?}: {e}", spec.trust_domain))?;
    check_url(&spec.bundle_endpoint_url).map_err(|e| {
        format!(
            "invalid bundleEndpointURL value {:?}: {e}",
            spec.bundle_endpoint_url
        )
    })?;
    let profile = match spec.bundle_endpoint_profile.profile_type.as_str() {
        "https_web" if !spec.bundle_endpoint_profile.endpoint_spiffe_id.is_empty() => {
            return Err(
                "invalid bundle endpoint profile endpointSPIFFEID value: not \
                        applicable to the \"https_web\" profile"
                    .into(),
            );
        }
        "https_web" => BundleEndpointProfile::HttpsWeb,
        "https_spiffe" => BundleEndpointProfile::HttpsSpiffe {
            endpoint_spiffe_id: spec
                .bundle_endpoint_profile
                .endpoint_spiffe_id
                .parse::<SpiffeId>()
                .map_err(|e| {
                    format!("invalid bundle endpoint profile endpointSPIFFEID value: {e}")
                })?,
        },
        other => {
            return Err(format!(
                "invalid bundle endpoint profile type value {other:?}"
            ));
        }
    };
    let trust_domain_bundle = if spec.trust_domain_bundle.is_empty() {
        None
    } else {
        Some(
            Bundle::from_jwks(trust_domain.clone(), &spec.trust_domain_bundle)
                .map_err(|e| format!("invalid trustDomainBundle value: {e}"))?,
        )
    };
    Ok(FederationRelationship {
        trust_domain,
        bundle_endpoint_url: spec.bundle_endpoint_url.clone(),
        profile,
        trust_domain_bundle,
    })
}

/// Upstream's checks: https, a host, no user information.
fn check_url(url: &str) -> Result<(), &'static str> {
    if url.is_empty() {
        return Err("bundle endpoint URL is missing");
    }
    let Some(rest) = url.strip_prefix("https://") else {
        return Err("scheme must be https");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("cannot contain userinfo");
    }
    if authority.is_empty() {
        return Err("host must be specified");
    }
    Ok(())
}

/// What to do on the server.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Relationships to create.
    pub create: Vec<FederationRelationship>,
    /// Relationships to update.
    pub update: Vec<FederationRelationship>,
    /// Trust domains whose relationship goes.
    pub delete: Vec<String>,
}

/// Diff the declared relationships against the server's. As upstream, two relationships
/// are equal when trust domain, URL and profile are; the bundle is the server's to keep.
pub fn plan(current: Vec<FederationRelationship>, declared: Declared) -> Plan {
    let mut current: BTreeMap<String, FederationRelationship> = current
        .into_iter()
        .map(|r| (r.trust_domain.name().to_owned(), r))
        .collect();
    let mut out = Plan::default();
    for (td, wanted) in declared.relationships {
        match current.remove(&td) {
            None => out.create.push(wanted),
            Some(existing)
                if existing.bundle_endpoint_url != wanted.bundle_endpoint_url
                    || existing.profile != wanted.profile =>
            {
                out.update.push(wanted);
            }
            Some(_) => {}
        }
    }
    out.delete = current.into_keys().collect();
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    use super::*;
    use crate::crd::{BundleEndpointProfile as Profile, ClusterFederatedTrustDomainSpec};

    fn config() -> ControllerConfig {
        ControllerConfig::parse("trustDomain: example.org\n").expect("config")
    }

    fn object(
        name: &str,
        created: i64,
        td: &str,
        url: &str,
        profile: &str,
        id: &str,
    ) -> ClusterFederatedTrustDomain {
        ClusterFederatedTrustDomain {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(
                    k8s_openapi::jiff::Timestamp::from_second(created).expect("time"),
                )),
                ..ObjectMeta::default()
            },
            spec: ClusterFederatedTrustDomainSpec {
                trust_domain: td.into(),
                bundle_endpoint_url: url.into(),
                bundle_endpoint_profile: Profile {
                    profile_type: profile.into(),
                    endpoint_spiffe_id: id.into(),
                },
                ..ClusterFederatedTrustDomainSpec::default()
            },
        }
    }

    #[test]
    fn objects_become_relationships_and_the_older_wins_a_conflict() {
        let newer = object(
            "newer",
            20,
            "other.org",
            "https://b.example/bundle",
            "https_web",
            "",
        );
        let older = object(
            "older",
            10,
            "other.org",
            "https://a.example:8443",
            "https_spiffe",
            "spiffe://other.org/spire/server",
        );
        let declared = declare(&config(), &[&newer, &older]);
        let got = &declared.relationships["other.org"];
        assert_eq!(got.bundle_endpoint_url, "https://a.example:8443");
        assert!(
            matches!(&got.profile, BundleEndpointProfile::HttpsSpiffe { endpoint_spiffe_id } if endpoint_spiffe_id.to_string() == "spiffe://other.org/spire/server")
        );
        assert!(
            declared.problems[0].contains("\"newer\"")
                && declared.problems[0].contains("\"older\"")
        );
    }

    #[test]
    fn bad_specs_are_named() {
        for (o, wanted) in [
            (
                object("a", 1, "Bad TD", "https://x", "https_web", ""),
                "trustDomain",
            ),
            (
                object("b", 1, "td", "http://x", "https_web", ""),
                "scheme must be https",
            ),
            (
                object("c", 1, "td", "https://u@x", "https_web", ""),
                "userinfo",
            ),
            (object("d", 1, "td", "https:///p", "https_web", ""), "host"),
            (
                object("e", 1, "td", "https://x", "https_web", "spiffe://td/s"),
                "not applicable",
            ),
            (
                object("f", 1, "td", "https://x", "https_spiffe", "nope"),
                "endpointSPIFFEID",
            ),
            (object("g", 1, "td", "https://x", "ftp", ""), "profile type"),
        ] {
            let declared = declare(&config(), &[&o]);
            assert!(declared.relationships.is_empty());
            assert!(
                declared.problems[0].contains(wanted),
                "{wanted}: {:?}",
                declared.problems
            );
        }
        let mut bundle = object("h", 1, "td", "https://x", "https_web", "");
        bundle.spec.trust_domain_bundle = "{not json".into();
        let declared = declare(&config(), &[&bundle]);
        assert!(
            declared.problems[0].contains("trustDomainBundle"),
            "{:?}",
            declared.problems
        );
    }

    #[test]
    fn the_plan_ignores_bundles_and_deletes_the_undeclared() {
        let declared = declare(
            &config(),
            &[
                &object("a", 1, "same.org", "https://same", "https_web", ""),
                &object("b", 1, "moved.org", "https://new", "https_web", ""),
                &object("c", 1, "new.org", "https://n", "https_web", ""),
            ],
        );
        let mut same = declared.relationships["same.org"].clone();
        same.trust_domain_bundle = Some(Bundle::new(same.trust_domain.clone()));
        let mut moved = declared.relationships["moved.org"].clone();
        moved.bundle_endpoint_url = "https://old".into();
        let mut gone = declared.relationships["new.org"].clone();
        gone.trust_domain = TrustDomain::new("gone.org").expect("td");
        let plan = plan(vec![same, moved, gone], declared);
        let names = |v: &[FederationRelationship]| -> Vec<String> {
            v.iter().map(|r| r.trust_domain.name().to_owned()).collect()
        };
        assert_eq!(names(&plan.create), ["new.org"]);
        assert_eq!(names(&plan.update), ["moved.org"]);
        assert_eq!(plan.delete, ["gone.org"]);
    }
}
