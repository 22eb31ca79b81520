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

/// Calls beyond the pool's instances wait for a slot instead of failing, with the pooling
/// allocator and with on-demand allocation alike: three 200 ms spinners and twelve good calls
/// at once on two slots all get their own outcome (the spinners their CPU budget, the good
/// calls their selectors), and the spinners ran at most two at a time. The pooling round
/// asserts that the pooling allocator is in use rather than passing on the fallback.
#[test]
fn calls_beyond_the_pool_queue_for_a_slot_and_all_complete() {
    for pooling in [true, false] {
        let mut config = HostConfig::default().with_max_concurrent_calls(2);
        config.pooling = pooling;
        let host = PluginHost::new(config).expect("host");
        // Without this the pooling round would quietly fall back to on-demand allocation on a
        // machine where the address-space probe fails, and test it twice.
        assert_eq!(
            host.uses_pooling(),
            pooling,
            "pooling {pooling}: the host must use the allocator asked for; with pooling on, the \
             pooling allocator's address-space probe failed on this machine (see \
             sigil-plugins' engine.rs), so the pooled path cannot be tested here"
        );
        let limits = Limits::default().with_cpu(Duration::from_millis(200));
        let spin = PluginSpec::bytes("hostile", HOSTILE_ATTESTOR, "spin").with_limits(limits);
        let spin = host.load_workload_attestor(&td(), &spin).expect("loads");
        let good = hostile(&host, "good");
        let (uid, _, _) = own_ids();
        let start = Arc::new(Barrier::new(15));
        let started = Instant::now();
        let calls: Vec<_> = (0..15)
            .map(|i| {
                let plugin = if i < 3 { spin.clone() } else { good.clone() };
                let start = start.clone();
                thread::spawn(move || {
                    start.wait();
                    plugin.attest(std::process::id())
                })
            })
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            let result = call.join().expect("call thread");
            if i < 3 {
                let error = result.expect_err("spins");
                assert!(
                    matches!(error, PluginError::CpuBudgetExceeded { .. }),
                    "pooling {pooling}: spinner {i}: {error}"
                );
            } else {
                let selectors = result.unwrap_or_else(|e| panic!("pooling {pooling}: {e}"));
                assert_eq!(selectors, vec![selector(&format!("hostile:uid:{uid}"))]);
            }
        }
        // Two slots: the third spinner started only when one of the first two stopped.
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(400),
            "pooling {pooling}: three 200 ms spinners on two slots took only {elapsed:?}"
        );
    }
}

/// With one slot held, a call that waits longer than `queue_wait` and a call that finds the
/// queue full are refused as saturated, a distinct error; the slot serves again afterwards.
#[test]
fn a_passed_deadline_or_a_full_queue_is_saturation_not_a_trap() {
    let config = HostConfig::default()
        .with_max_concurrent_calls(1)
        .with_queue(1, Duration::from_millis(300));
    let host = PluginHost::new(config).expect("host");
    let limits = Limits::default().with_cpu(Duration::from_secs(3));
    let spin = PluginSpec::bytes("hostile", HOSTILE_ATTESTOR, "spin").with_limits(limits);
    let spin = host.load_workload_attestor(&td(), &spin).expect("loads");
    let good = hostile(&host, "good");
    let spinning = thread::spawn(move || spin.attest(std::process::id()));

    // Until the spinner holds the slot a good call still gets it; then it waits 300 ms.
    let probing = Instant::now();
    let deadline = loop {
        let called = Instant::now();
        match good.attest(std::process::id()) {
            Ok(_) => {
                assert!(
                    probing.elapsed() < Duration::from_secs(2),
                    "never saturated"
                );
                thread::sleep(Duration::from_millis(10));
            }
            Err(error) => break (error, called.elapsed()),
        }
    };
    let (error, waited) = deadline;
    assert!(
        matches!(
            &error,
            PluginError::Saturated { plugin, cause: Saturation::Deadline { .. } } if plugin == "hostile"
        ),
        "{error}"
    );
    assert!(error.is_saturated());
    assert!(waited >= Duration::from_millis(300), "{waited:?}");

    // Four at once on a queue of one: one waits, the others are turned away at once.
    let start = Arc::new(Barrier::new(4));
    let results: Vec<_> = (0..4)
        .map(|_| {
            let (good, start) = (good.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                good.attest(std::process::id())
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|call| call.join().expect("call thread"))
        .collect();
    let full = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(PluginError::Saturated {
                    cause: Saturation::QueueFull { queued: 1 },
                    ..
                })
            )
        })
        .count();
    assert!(full >= 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().is_err_and(PluginError::is_saturated)),
        "{results:?}"
    );

    let spun = spinning.join().expect("spinner").expect_err("spins");
    assert!(
        matches!(spun, PluginError::CpuBudgetExceeded { .. }),
        "{spun}"
    );
    assert!(good.attest(std::process::id()).is_ok());
}
