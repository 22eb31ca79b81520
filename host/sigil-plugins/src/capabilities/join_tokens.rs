//! `join-tokens`: the host redeems a token through whatever the embedder supplies (the
//! server's datastore), so the plugin never sees the token store.

/// Redeems join tokens: implemented by the server over its datastore. Called from a plugin
/// call, which is synchronous: an implementation over async code blocks on it.
pub trait JoinTokenRedeemer: Send + Sync + 'static {
    /// Delete `token` if it exists and has not expired; fail otherwise. Must be atomic: of
    /// two concurrent redemptions of one token, one fails.
    fn redeem(&self, token: &str) -> Result<(), RedeemError>;
}

/// Why a token was not redeemed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedeemError {
    /// Unknown, already used, or expired: the plugin sees `permission-denied`.
    #[error("{0}")]
    Refused(String),
    /// The token store could not be asked: the plugin sees `unavailable`.
    #[error("{0}")]
    Unavailable(String),
}
