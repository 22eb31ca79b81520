//! The agent's JWT-SVID cache, bounded as SPIRE's agent bounds it
//! (`pkg/agent/manager/cache/jwt_cache.go` and `manager.FetchJWTSVID`):
//!
//! - At most `jwt_svid_cache_max_size` tokens (a hard limit); storing one more drops the least
//!   recently used (a lookup counts as a use).
//! - The key is the SPIFFE ID and the sorted audiences, hashed with SHA-256 (as SPIRE's
//!   `jwtSVIDKey`), so a key costs 32 bytes whatever the audiences' size.
//! - A cached token is served while it has more than about half of its lifetime left: SPIRE's
//!   `JWTSVIDExpiresSoon`, half-life with a jitter of ±10 % of it, drawn per lookup so that
//!   workloads do not all renew in the same second. Past that, a new one is minted; if the
//!   server cannot mint, the cached one is served while it has not expired.
//! - Unlike SPIRE, expired tokens are also dropped on every lookup and store, so that they
//!   do not hold memory until the LRU order reaches them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use sigil_types::{JwtSvid, SpiffeId};

/// A cache key: SHA-256 of the SPIFFE ID and the sorted audiences.
pub(crate) type JwtKey = [u8; 32];

/// What the cache holds for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cached {
    /// A token with enough life left: serve it.
    Fresh(JwtSvid),
    /// A token past its reuse window but not expired: mint a new one, fall back to this one.
    Renewable(JwtSvid),
    /// Nothing usable.
    Missing,
}

/// A bounded LRU of JWT-SVIDs.
#[derive(Debug)]
pub(crate) struct JwtSvidCache {
    max_size: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    svids: HashMap<JwtKey, Slot>,
    /// Keys by their last use, oldest first.
    by_use: BTreeMap<u64, JwtKey>,
    /// A counter that orders uses.
    clock: u64,
}

#[derive(Debug)]
struct Slot {
    svid: JwtSvid,
    used: u64,
}

impl JwtSvidCache {
    /// A cache of at most `max_size` tokens (at least one).
    pub(crate) fn new(max_size: usize) -> Self {
        JwtSvidCache {
            max_size: max_size.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// The token for `key` at `now`, marking it used.
    pub(crate) fn lookup(&self, key: &JwtKey, now: i64) -> Cached {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.drop_expired(now);
        let Some(svid) = state.touch(key) else {
            return Cached::Missing;
        };
        if expires_soon(&svid, now, jitter(svid.expires_at - svid.issued_at)) {
            Cached::Renewable(svid)
        } else {
            Cached::Fresh(svid)
        }
    }

    /// Stores `svid` under `key` as the most recently used, dropping expired tokens and then
    /// the least recently used ones down to the limit.
    pub(crate) fn store(&self, key: JwtKey, svid: JwtSvid, now: i64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.drop_expired(now);
        state.remove(&key);
        while state.svids.len() >= self.max_size {
            let Some((_, oldest)) = state.by_use.pop_first() else {
                break;
            };
            state.svids.remove(&oldest);
        }
        state.clock += 1;
        let used = state.clock;
        state.by_use.insert(used, key);
        state.svids.insert(key, Slot { svid, used });
    }

    /// How many tokens the cache holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .svids
            .len()
    }
}

// === impl State ===

impl State {
    /// The token for `key`, now the most recently used.
    fn touch(&mut self, key: &JwtKey) -> Option<JwtSvid> {
        self.clock += 1;
        let now = self.clock;
        let slot = self.svids.get_mut(key)?;
        self.by_use.remove(&slot.used);
        slot.used = now;
        self.by_use.insert(now, *key);
        Some(slot.svid.clone())
    }

    fn remove(&mut self, key: &JwtKey) {
        if let Some(slot) = self.svids.remove(key) {
            self.by_use.remove(&slot.used);
        }
    }

    fn drop_expired(&mut self, now: i64) {
        let by_use = &mut self.by_use;
        self.svids.retain(|_, slot| {
            let alive = slot.svid.expires_at > now;
            if !alive {
                by_use.remove(&slot.used);
            }
            alive
        });
    }
}

/// The cache key of `spiffe_id` with `audience`: order does not matter, and a NUL after each
/// item keeps `["ab"]` and `["a", "b"]` apart.
pub(crate) fn key(spiffe_id: &SpiffeId, audience: &[String]) -> JwtKey {
    let mut sorted: Vec<&str> = audience.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let mut hash = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    hash.update(spiffe_id.as_str().as_bytes());
    hash.update(&[0]);
    for one in sorted {
        hash.update(one.as_bytes());
        hash.update(&[0]);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(hash.finish().as_ref());
    key
}

/// SPIRE's `JWTSVIDExpiresSoon`: expired, or no more than half its lifetime (moved by
/// `jitter` seconds) left.
pub(crate) fn expires_soon(svid: &JwtSvid, now: i64, jitter: i64) -> bool {
    let left = svid.expires_at - now;
    if left <= 0 {
        return true;
    }
    let lifetime = svid.expires_at - svid.issued_at;
    left <= lifetime / 2 + jitter
}

/// A random shift of the half-life of a token of `lifetime` seconds, in `-d..d` where `d`
/// is a tenth of the half-life (SPIRE's `calculateJitteredHalfLife`); 0 when that is under a
/// second.
pub(crate) fn jitter(lifetime: i64) -> i64 {
    let delta = lifetime / 2 / 10;
    let mut bytes = [0u8; 8];
    if delta <= 0 || aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return 0;
    }
    let span = delta.unsigned_abs() * 2;
    i64::try_from(u64::from_le_bytes(bytes) % span).unwrap_or(0) - delta
}

#[cfg(test)]
mod tests;
