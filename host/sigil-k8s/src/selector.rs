//! `metav1.LabelSelector` matching with the API server's rules: `matchLabels` and
//! `matchExpressions` (`In`, `NotIn`, `Exists`, `DoesNotExist`) all have to hold; an empty
//! selector matches everything.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// A checked label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Selector {
    /// Check `selector` as `metav1.LabelSelectorAsSelector` does: `In` and `NotIn` need
    /// values, `Exists` and `DoesNotExist` take none, other operators are refused.
    pub fn parse(selector: &LabelSelector) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement::In(key.clone(), vec![value.clone()]));
        }
        for expression in selector.match_expressions.iter().flatten() {
            let key = expression.key.clone();
            let values = expression.values.clone().unwrap_or_default();
            let requirement = match expression.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(format!(
                        "label selector on {key:?}: values must be non-empty for operator {}",
                        expression.operator
                    ));
                }
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(format!(
                        "label selector on {key:?}: values must be empty for operator {}",
                        expression.operator
                    ));
                }
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::DoesNotExist(key),
                other => {
                    return Err(format!(
                        "label selector on {key:?}: {other:?} is not a valid label selector operator"
                    ));
                }
            };
            requirements.push(requirement);
        }
        Ok(Selector { requirements })
    }

    /// Whether an object with `labels` is selected.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let get = |key: &str| labels.and_then(|l| l.get(key));
        self.requirements
            .iter()
            .all(|requirement| match requirement {
                Requirement::In(key, values) => get(key).is_some_and(|v| values.contains(v)),
                // As the API server: an object without the label is not "in" any value set.
                Requirement::NotIn(key, values) => get(key).is_none_or(|v| !values.contains(v)),
                Requirement::Exists(key) => get(key).is_some(),
                Requirement::DoesNotExist(key) => get(key).is_none(),
            })
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.to_owned(),
            operator: operator.to_owned(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    #[test]
    fn empty_selects_everything() {
        let selector = Selector::parse(&LabelSelector::default()).expect("parse");
        assert!(selector.matches(None));
        assert!(selector.matches(Some(&labels(&[("a", "b")]))));
    }

    #[test]
    fn match_labels_and_expressions_all_hold() {
        let selector = Selector::parse(&LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                expression("tier", "In", &["front", "edge"]),
                expression("legacy", "DoesNotExist", &[]),
                expression("zone", "NotIn", &["z9"]),
                expression("team", "Exists", &[]),
            ]),
        })
        .expect("parse");
        let good = labels(&[("app", "web"), ("tier", "edge"), ("team", "t")]);
        assert!(selector.matches(Some(&good)));
        let mut other = good.clone();
        other.insert("app".into(), "db".into());
        assert!(!selector.matches(Some(&other)));
        let mut legacy = good.clone();
        legacy.insert("legacy".into(), "yes".into());
        assert!(!selector.matches(Some(&legacy)));
        let mut zoned = good.clone();
        zoned.insert("zone".into(), "z9".into());
        assert!(!selector.matches(Some(&zoned)));
        let mut no_team = good;
        no_team.remove("team");
        assert!(!selector.matches(Some(&no_team)));
        assert!(!selector.matches(None));
    }

    #[test]
    fn bad_expressions_are_named() {
        for (op, values, wanted) in [
            ("In", &[][..], "non-empty"),
            ("Exists", &["x"][..], "must be empty"),
            ("Gt", &["1"][..], "not a valid"),
        ] {
            let err = Selector::parse(&LabelSelector {
                match_expressions: Some(vec![expression("k", op, values)]),
                ..LabelSelector::default()
            })
            .expect_err(op);
            assert!(err.contains(wanted) && err.contains("\"k\""), "{op}: {err}");
        }
    }
}
