//! Join tokens for the `join_token` node attestor: redeemed in the datastore.

use std::sync::Arc;

use sigil_plugins::{JoinTokenRedeemer, RedeemError};
use sigil_store::DataStore;
use tokio::runtime::Handle;

/// Redeems tokens with the datastore's atomic `take_join_token`. Plugin calls are
/// synchronous and run on blocking threads, so this blocks on the runtime's handle.
pub(crate) struct StoreTokens {
    pub(crate) store: Arc<dyn DataStore>,
    pub(crate) runtime: Handle,
}

impl JoinTokenRedeemer for StoreTokens {
    fn redeem(&self, token: &str) -> Result<(), RedeemError> {
        match self
            .runtime
            .block_on(self.store.take_join_token(token, now()))
        {
            Ok(_) => Ok(()),
            Err(sigil_store::Error::NotFound { .. }) => Err(RedeemError::Refused(
                "the join token does not exist or was already used".into(),
            )),
            Err(sigil_store::Error::JoinTokenExpired { expired_at }) => Err(RedeemError::Refused(
                format!("the join token expired at {expired_at}"),
            )),
            Err(error) => Err(RedeemError::Unavailable(error.to_string())),
        }
    }
}

/// Now, in Unix seconds.
pub(crate) use sigil_clock::unix_now as now;
