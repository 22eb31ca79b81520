use super::*;

fn id(path: &str) -> SpiffeId {
    format!("spiffe://example.org{path}")
        .parse()
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A token for `audience` issued at `issued_at` for `lifetime` seconds.
fn svid(audience: &str, issued_at: i64, lifetime: i64) -> JwtSvid {
    JwtSvid {
        spiffe_id: id("/web"),
        token: format!("token-for-{audience}-{issued_at}"),
        audience: vec![audience.to_owned()],
        expires_at: issued_at + lifetime,
        issued_at,
        hint: String::new(),
    }
}

fn k(audience: &str) -> JwtKey {
    key(&id("/web"), &[audience.to_owned()])
}

#[test]
fn the_cache_holds_at_most_max_size_dropping_the_least_recently_used() {
    let cache = JwtSvidCache::new(3);
    for audience in ["a", "b", "c"] {
        cache.store(k(audience), svid(audience, 0, 300), 0);
    }
    // "a" is used, so "b" is now the least recently used.
    assert_eq!(cache.lookup(&k("a"), 1), Cached::Fresh(svid("a", 0, 300)));
    cache.store(k("d"), svid("d", 0, 300), 1);
    assert_eq!(cache.len(), 3);
    assert_eq!(cache.lookup(&k("b"), 1), Cached::Missing);
    for audience in ["a", "c", "d"] {
        assert!(
            matches!(cache.lookup(&k(audience), 1), Cached::Fresh(_)),
            "{audience}"
        );
    }
    // However many distinct audiences come, the size stays at the bound.
    for i in 0..1000 {
        cache.store(k(&format!("aud-{i}")), svid("x", 0, 300), 2);
        assert!(cache.len() <= 3);
    }
    assert_eq!(cache.len(), 3);
    assert_eq!(
        cache.lookup(&k("aud-999"), 2),
        Cached::Fresh(svid("x", 0, 300))
    );
    assert_eq!(cache.lookup(&k("aud-996"), 2), Cached::Missing);
}

#[test]
fn storing_a_key_again_replaces_it_without_growing() {
    let cache = JwtSvidCache::new(2);
    cache.store(k("a"), svid("a", 0, 300), 0);
    cache.store(k("b"), svid("b", 0, 300), 0);
    cache.store(k("a"), svid("a", 5, 300), 5);
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.lookup(&k("a"), 6), Cached::Fresh(svid("a", 5, 300)));
    assert!(matches!(cache.lookup(&k("b"), 6), Cached::Fresh(_)));
}

#[test]
fn expired_tokens_are_dropped_and_old_ones_are_only_a_fallback() {
    let cache = JwtSvidCache::new(10);
    cache.store(k("short"), svid("short", 0, 20), 0);
    cache.store(k("long"), svid("long", 0, 300), 0);
    // Well within the first half: served.
    assert!(matches!(cache.lookup(&k("long"), 10), Cached::Fresh(_)));
    // Past the half-life plus the largest jitter: renewed, the old one kept as a fallback.
    assert_eq!(
        cache.lookup(&k("long"), 200),
        Cached::Renewable(svid("long", 0, 300))
    );
    // Expired tokens go, also those no one asks for.
    assert_eq!(cache.lookup(&k("long"), 300), Cached::Missing);
    assert_eq!(cache.len(), 0);

    cache.store(k("a"), svid("a", 100, 20), 100);
    cache.store(k("b"), svid("b", 100, 300), 100);
    cache.store(k("c"), svid("c", 130, 300), 130);
    assert_eq!(cache.len(), 2, "the expired \"a\" was dropped on store");
}

#[test]
fn a_token_expires_soon_at_its_jittered_half_life() {
    let token = svid("a", 0, 300);
    // No jitter: the half-life, 150 s left.
    assert!(!expires_soon(&token, 149, 0));
    assert!(expires_soon(&token, 150, 0));
    // SPIRE's jitter moves the boundary by up to a tenth of the half-life either way.
    assert!(!expires_soon(&token, 134, 15));
    assert!(expires_soon(&token, 135, 15));
    assert!(!expires_soon(&token, 164, -15));
    assert!(expires_soon(&token, 165, -15));
    // Expired is always due, whatever the jitter.
    assert!(expires_soon(&token, 300, -1000));
}

#[test]
fn jitter_stays_within_a_tenth_of_the_half_life() {
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..2000 {
        let j = jitter(300);
        assert!((-15..15).contains(&j), "{j}");
        seen.insert(j);
    }
    assert!(seen.len() > 10, "the jitter varies: {seen:?}");
    assert_eq!(jitter(10), 0);
    assert_eq!(jitter(0), 0);
}

#[test]
fn keys_ignore_audience_order_but_not_boundaries_or_identity() {
    let web = id("/web");
    let ab = |a: &[&str]| key(&web, &a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
    assert_eq!(ab(&["x", "y"]), ab(&["y", "x"]));
    assert_ne!(ab(&["ab"]), ab(&["a", "b"]));
    assert_ne!(ab(&["x"]), key(&id("/db"), &["x".to_owned()]));
}
