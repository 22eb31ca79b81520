//! PostgreSQL `LISTEN sigil_events`: every writing transaction of any server on the
//! database sends `NOTIFY sigil_events`, and the entry cache is woken at once instead of at
//! its next poll, so a change made on one server reaches agents of another within a second.

use std::sync::Arc;
use std::time::Duration;

use sigil_entrycache::EntryCache;
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, NoTls};

/// Wait before reconnecting after the listening connection failed (the cache keeps polling
/// meanwhile).
const RECONNECT: Duration = Duration::from_secs(2);

/// Listen until `stopped` turns true, reconnecting on failure.
pub(crate) async fn wake_on_notify(
    connection_string: String,
    cache: Arc<EntryCache>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            result = listen(&connection_string, &cache) => {
                if let Err(error) = result {
                    tracing::warn!(error = %error, "PostgreSQL LISTEN connection failed; the entry cache falls back to polling until it reconnects");
                }
            }
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        tokio::select! {
            () = tokio::time::sleep(RECONNECT) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}

async fn listen(connection_string: &str, cache: &EntryCache) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = tokio_postgres::connect(connection_string, NoTls).await?;
    let (notified, mut notifications) = mpsc::unbounded_channel();
    // The connection must be polled for anything to happen, the LISTEN included.
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    let _ = notified.send(());
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error),
                None => return Ok(()),
            }
        }
    });
    client.batch_execute("LISTEN sigil_events").await?;
    tracing::debug!("listening for datastore change notifications");
    while notifications.recv().await.is_some() {
        cache.poke();
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
