//! The push loop every watching RPC shares, on this socket and on the agent's admin socket.

use std::pin::Pin;

use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::serve::closed;

/// A gRPC server stream.
pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A stream that answers `respond(current value of source)` at once, then again after every
/// change of `source` that changes the answer (as SPIRE, an identical response is not sent
/// twice). It ends when the caller goes away; with `respond`'s error when it refuses; with
/// `source_gone()` when the source's sender is dropped; with `shutting_down()` when
/// `closing` turns true (serving stops: tonic's graceful shutdown waits for open streams).
pub fn push_on_change<S, T, E, F>(
    mut source: watch::Receiver<S>,
    mut closing: watch::Receiver<bool>,
    respond: F,
    source_gone: fn() -> E,
    shutting_down: fn() -> E,
) -> ResponseStream<T>
where
    S: Clone + Send + Sync + 'static,
    T: PartialEq + Clone + Send + 'static,
    E: Into<Status> + Send + 'static,
    F: Fn(&S) -> Result<T, E> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut previous: Option<T> = None;
        loop {
            let current = source.borrow_and_update().clone();
            match respond(&current) {
                Ok(response) if previous.as_ref() == Some(&response) => {}
                Ok(response) => {
                    if tx.send(Ok(response.clone())).await.is_err() {
                        return;
                    }
                    previous = Some(response);
                }
                Err(error) => {
                    let _ = tx.send(Err(error.into())).await;
                    return;
                }
            }
            tokio::select! {
                changed = source.changed() => {
                    if changed.is_err() {
                        let _ = tx.send(Err(source_gone().into())).await;
                        return;
                    }
                }
                () = closed(&mut closing) => {
                    let _ = tx.send(Err(shutting_down().into())).await;
                    return;
                }
                () = tx.closed() => return,
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}
