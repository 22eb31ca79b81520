//! SPIFFE-ID renderers: output validation, fuel, and the built-in `k8s_template`.

use super::*;

#[test]
fn renderer_output_is_validated() {
    let host = host();
    let ok = renderer(&host, "spiffe://example.org/ns/prod/sa/web")
        .render(&pod_input())
        .expect("renders");
    assert_eq!(
        ok,
        Some(SpiffeId::from_str("spiffe://example.org/ns/prod/sa/web").expect("id"))
    );
    assert_eq!(
        renderer(&host, "").render(&pod_input()).expect("no id"),
        None
    );

    let error = renderer(&host, "spiffe://other.org/workload")
        .render(&pod_input())
        .expect_err("foreign");
    assert!(
        matches!(error, PluginError::InvalidOutput { .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("not in the trust domain example.org"),
        "{error}"
    );

    for malformed in [
        "spiffe://example.org/a//b",
        "https://example.org/x",
        "spiffe://example.org/x/",
    ] {
        let error = renderer(&host, malformed)
            .render(&pod_input())
            .expect_err("malformed");
        assert!(
            error.to_string().contains("malformed SPIFFE ID"),
            "{malformed}: {error}"
        );
    }
}

#[test]
fn renderer_runs_out_of_fuel() {
    let error = renderer(&host(), "spin")
        .render(&pod_input())
        .expect_err("spins");
    assert!(
        matches!(&error, PluginError::CpuBudgetExceeded { plugin, .. } if plugin == "echo"),
        "{error}"
    );
    assert!(error.to_string().contains("fuel"), "{error}");
}

#[test]
fn k8s_template_renders_cluster_spiffe_id_templates() {
    let host = host();
    let load = |template: &str| {
        let data = format!("template = \"{}\"", template.replace('"', "\\\""));
        host.load_id_renderer(&td(), &PluginSpec::builtin("k8s_template", &data))
    };
    let istio = load("spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}")
        .expect("loads");
    assert_eq!(
        istio
            .render(&pod_input())
            .expect("renders")
            .map(|id| id.to_string()),
        Some("spiffe://example.org/ns/prod/sa/web-sa".to_owned())
    );
    let labelled = load(
        "spiffe://{{ .TrustDomain }}/{{ .ClusterName }}/app/{{ index .PodMeta.Labels \"app\" }}",
    )
    .expect("loads");
    assert_eq!(
        labelled
            .render(&pod_input())
            .expect("renders")
            .map(|id| id.to_string()),
        Some("spiffe://example.org/demo/app/web".to_owned())
    );

    let error =
        load("spiffe://{{ .TrustDomain }}/{{ .PodMeta.Nmespace }}").expect_err("unknown field");
    assert!(error.to_string().contains(".PodMeta.Nmespace"), "{error}");

    let missing =
        load("spiffe://{{ .TrustDomain }}/{{ .PodMeta.Labels \"tier\" }}").expect("loads");
    let error = missing.render(&pod_input()).expect_err("missing label");
    assert!(
        error.to_string().contains("pod label \"tier\" is missing"),
        "{error}"
    );

    let foreign = load("spiffe://elsewhere.org/{{ .PodMeta.Name }}").expect("loads");
    let error = foreign.render(&pod_input()).expect_err("foreign");
    assert!(
        matches!(error, PluginError::InvalidOutput { .. }),
        "{error}"
    );
}
