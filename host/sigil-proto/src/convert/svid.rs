//! `X509SVID` and `JWTSVID`: domain → wire only. The server mints SVIDs and sends them;
//! it never takes one in through this API (the private key never travels in these messages).

use sigil_types::{JwtSvid, X509Svid};

use crate::spire::api::types as wire;

impl From<&X509Svid> for wire::X509svid {
    fn from(s: &X509Svid) -> Self {
        Self {
            cert_chain: s.cert_chain.clone(),
            id: Some((&s.spiffe_id).into()),
            expires_at: s.expires_at,
            hint: s.hint.clone(),
        }
    }
}

impl From<&JwtSvid> for wire::Jwtsvid {
    fn from(s: &JwtSvid) -> Self {
        Self {
            token: s.token.clone(),
            id: Some((&s.spiffe_id).into()),
            expires_at: s.expires_at,
            issued_at: s.issued_at,
            hint: s.hint.clone(),
        }
    }
}
