//! Minting workload X509-SVIDs: keys and CSRs made in the agent (on a blocking thread), one
//! `BatchNewX509SVID` per batch, and the renewal time of each SVID (half-life plus jitter).

use sigil_proto::spire::api::server::svid::v1 as svid_api;
use sigil_types::x509::validity;
use sigil_types::{RegistrationEntry, X509Svid};

use super::Syncer;
use crate::cache::CachedSvid;
use crate::error::AgentError;
use crate::keys;

impl Syncer {
    /// One `BatchNewX509SVID` for `entries`: an SVID per entry, `None` where refused.
    pub(crate) async fn mint<'a>(
        &self,
        entries: impl Iterator<Item = &'a RegistrationEntry>,
    ) -> Result<Vec<Option<CachedSvid>>, AgentError> {
        const CALL: &str = "BatchNewX509SVID";
        let entries: Vec<&RegistrationEntry> = entries.collect();
        let key_type = self.key_type;
        let count = entries.len();
        let pairs = tokio::task::spawn_blocking(move || {
            (0..count)
                .map(|_| {
                    let key = keys::generate(key_type)?;
                    let csr = keys::csr(&key)?;
                    Ok((keys::private_der(&key), csr))
                })
                .collect::<Result<Vec<_>, AgentError>>()
        })
        .await
        .map_err(|e| AgentError::Key(e.to_string()))??;
        let params = entries
            .iter()
            .zip(&pairs)
            .map(|(entry, (_, csr))| svid_api::NewX509svidParams {
                entry_id: entry.id.as_str().to_owned(),
                csr: csr.clone(),
            })
            .collect();
        let response = svid_api::svid_client::SvidClient::new(self.client.channel())
            .batch_new_x509svid(svid_api::BatchNewX509svidRequest { params })
            .await
            .map_err(|s| AgentError::server(CALL, s))?
            .into_inner();
        if response.results.len() != entries.len() {
            return Err(AgentError::bad(CALL, "one result per entry expected"));
        }
        let mut out = Vec::with_capacity(entries.len());
        for ((entry, (key, _)), result) in entries.iter().zip(pairs).zip(response.results) {
            let status = result.status.unwrap_or_default();
            let svid = match (status.code, result.svid) {
                (0, Some(svid)) => cached(entry, svid, key),
                (_, _) => Err(format!("code {}: {}", status.code, status.message)),
            };
            match svid {
                Ok(svid) => {
                    tracing::debug!(entry_id = %entry.id.as_str(), spiffe_id = %entry.spiffe_id, "X509-SVID minted");
                    out.push(Some(svid));
                }
                Err(reason) => {
                    tracing::warn!(entry_id = %entry.id.as_str(), spiffe_id = %entry.spiffe_id, %reason, "the server refused an X509-SVID");
                    out.push(None);
                }
            }
        }
        Ok(out)
    }
}

/// The SVID from the wire with the key made for it.
fn cached(
    entry: &RegistrationEntry,
    svid: sigil_proto::spire::api::types::X509svid,
    key: sigil_types::PrivateKeyDer,
) -> Result<CachedSvid, String> {
    let leaf = svid.cert_chain.first().ok_or("empty certificate chain")?;
    let (not_before, not_after) = validity(leaf)?;
    let ids = sigil_types::x509::uri_sans(leaf)?;
    if ids.len() != 1 || ids[0] != entry.spiffe_id.as_str() {
        return Err(format!("SVID names {ids:?}, entry has {}", entry.spiffe_id));
    }
    let lifetime = (not_after - not_before).max(0);
    Ok(CachedSvid {
        svid: X509Svid {
            spiffe_id: entry.spiffe_id.clone(),
            cert_chain: svid.cert_chain,
            private_key: key,
            expires_at: not_after,
            hint: entry.hint.clone(),
        },
        renew_at: not_before + lifetime / 2 + jitter(lifetime / 10),
        revision: entry.revision_number,
    })
}

/// A random number of seconds in `0..max` (0 when `max` ≤ 0).
fn jitter(max: i64) -> i64 {
    let mut bytes = [0u8; 8];
    if max <= 0 || aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return 0;
    }
    i64::try_from(u64::from_le_bytes(bytes) % max.unsigned_abs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_range() {
        assert_eq!(jitter(0), 0);
        for _ in 0..100 {
            assert!((0..7).contains(&jitter(7)));
        }
    }
}
