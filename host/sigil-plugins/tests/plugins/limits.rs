//! Per-call limits and allocation strategies: the hostile fixtures.

use super::*;

#[test]
fn infinite_loop_exceeds_the_cpu_budget_while_a_parallel_call_succeeds() {
    let host = host();
    let spin = hostile(&host, "spin");
    let good = hostile(&host, "good");
    let (uid, _, _) = own_ids();
    let parallel = thread::spawn(move || {
        (0..20)
            .map(|_| good.attest(std::process::id()))
            .collect::<Vec<_>>()
    });
    let started = Instant::now();
    let error = spin.attest(std::process::id()).expect_err("spins");
    let elapsed = started.elapsed();
    assert!(
        matches!(&error, PluginError::CpuBudgetExceeded { plugin, .. } if plugin == "hostile"),
        "{error}"
    );
    assert!(error.to_string().contains("CPU budget exceeded"), "{error}");
    // 100 ms budget, 10 ms ticks; generous slack for a loaded machine.
    assert!(
        elapsed < Duration::from_millis(1500),
        "stopped after {elapsed:?}"
    );
    for result in parallel.join().expect("parallel thread") {
        assert_eq!(
            result.expect("good call"),
            vec![selector(&format!("hostile:uid:{uid}"))]
        );
    }
}

#[test]
fn cpu_budget_is_configurable() {
    let limits = Limits::default().with_cpu(Duration::from_millis(30));
    let spec = PluginSpec::bytes("hostile", HOSTILE_ATTESTOR, "spin").with_limits(limits);
    let spin = host().load_workload_attestor(&td(), &spec).expect("loads");
    let error = spin.attest(std::process::id()).expect_err("spins");
    assert!(
        error.to_string().contains("CPU budget exceeded (30 ms)"),
        "{error}"
    );
}

#[test]
fn unbounded_allocation_hits_the_memory_limit() {
    let error = hog(&host()).attest(std::process::id()).expect_err("hogs");
    assert!(
        matches!(&error, PluginError::MemoryLimit { plugin, limit_bytes } if plugin == "hostile" && *limit_bytes == 64 << 20),
        "{error}"
    );
    assert!(error.to_string().contains("memory limit"), "{error}");
}

#[test]
fn panic_is_a_trap_carrying_the_plugin_name() {
    let error = hostile(&host(), "panic")
        .attest(std::process::id())
        .expect_err("panics");
    assert!(
        matches!(&error, PluginError::Trap { plugin, .. } if plugin == "hostile"),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.starts_with("plugin hostile trapped"), "{message}");
    assert!(
        message.contains("panics on purpose"),
        "stderr is in the error: {message}"
    );
}

#[test]
fn too_many_or_too_long_selectors_are_refused() {
    let host = host();
    let error = hostile(&host, "many")
        .attest(std::process::id())
        .expect_err("many");
    assert!(
        error.to_string().contains("more than the limit of 256"),
        "{error}"
    );
    let error = hostile(&host, "long")
        .attest(std::process::id())
        .expect_err("long");
    assert!(
        matches!(error, PluginError::InvalidOutput { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("longer than the limit of 1024"),
        "{error}"
    );
}

#[test]
fn a_trapped_plugin_keeps_serving_later_calls() {
    let host = host();
    let spin = hostile(&host, "spin");
    assert!(spin.attest(std::process::id()).is_err());
    let good = hostile(&host, "good");
    assert!(good.attest(std::process::id()).is_ok());
}

#[test]
fn on_demand_allocation_works_like_the_pool() {
    let mut config = HostConfig::default();
    config.pooling = false;
    let host = PluginHost::new(config).expect("host");
    assert!(!host.uses_pooling());
    let unix = host
        .load_workload_attestor(&td(), &PluginSpec::builtin("unix", ""))
        .expect("unix loads");
    let (uid, _, _) = own_ids();
    assert!(
        unix.attest(std::process::id())
            .expect("attest")
            .contains(&selector(&format!("unix:uid:{uid}")))
    );
    let error = hog(&host).attest(std::process::id()).expect_err("hogs");
    assert!(matches!(error, PluginError::MemoryLimit { .. }), "{error}");
}

#[test]
fn pool_exhaustion_is_an_error_not_a_hang() {
    let mut config = HostConfig::default();
    config.max_concurrent_calls = 1;
    let host = PluginHost::new(config).expect("host");
    if !host.uses_pooling() {
        return; // the address-space probe failed here: nothing to exhaust
    }
    let spin = hostile(&host, "spin");
    let good = hostile(&host, "good");
    let spinning = thread::spawn(move || spin.attest(std::process::id()));
    thread::sleep(Duration::from_millis(30));
    let during = good.attest(std::process::id());
    assert!(spinning.join().expect("thread").is_err());
    if let Err(error) = during {
        assert!(matches!(error, PluginError::Host(_)), "{error}");
    }
}
