//! Closing idle connections: a connection is idle while it has no open request (a stream in
//! progress counts as open for as long as its response body lives), and is closed once it has
//! been idle for the listener's `idle_timeout`. A Workload API watch stream that sees no
//! traffic for hours is not idle; a connection a client opened and left is.
//!
//! [`IdleLayer`] counts open requests per connection (it finds the connection's [`Activity`]
//! in the request's [`UnixPeer`](crate::UnixPeer)); the connection's read side asks
//! [`IdleClock`] whether to report end of stream, which makes hyper close it.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::UnixPeer;

/// Open requests of one connection, and since when it has had none.
#[derive(Debug)]
pub(crate) struct Activity {
    open: AtomicUsize,
    idle_since: Mutex<Instant>,
}

impl Activity {
    pub(crate) fn new() -> Self {
        Activity {
            open: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
        }
    }

    fn begin(self: &Arc<Self>) -> OpenRequest {
        self.open.fetch_add(1, Ordering::SeqCst);
        OpenRequest(self.clone())
    }

    /// How long the connection has been idle, or `None` while a request is open.
    fn idle_for(&self) -> Option<Duration> {
        if self.open.load(Ordering::SeqCst) > 0 {
            return None;
        }
        Some(
            self.idle_since
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .elapsed(),
        )
    }
}

/// One open request; the connection is idle again once every one has been dropped.
#[derive(Debug)]
struct OpenRequest(Arc<Activity>);

impl Drop for OpenRequest {
    fn drop(&mut self) {
        let mut since = self
            .0
            .idle_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.0.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            *since = Instant::now();
        }
    }
}

/// The read side's timer: wakes the connection to look again, and says when it has been idle
/// long enough.
#[derive(Debug)]
pub(crate) struct IdleClock {
    activity: Arc<Activity>,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl IdleClock {
    pub(crate) fn new(activity: Arc<Activity>, timeout: Duration) -> Self {
        IdleClock {
            activity,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    /// Whether the connection has been idle for the timeout; otherwise arms the timer for the
    /// next look (the remaining idle time, or a whole timeout while requests are open).
    pub(crate) fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            let wait = match self.activity.idle_for() {
                Some(idle) if idle >= self.timeout => return true,
                Some(idle) => self.timeout - idle,
                None => self.timeout,
            };
            self.sleep.as_mut().reset(Instant::now() + wait);
            if self.sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
        }
    }
}

/// A tower layer (tonic's `Server::layer`) that counts each request as open on its
/// connection until its response body is dropped.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdleLayer;

impl<S> tower::Layer<S> for IdleLayer {
    type Service = IdleService<S>;

    fn layer(&self, inner: S) -> IdleService<S> {
        IdleService { inner }
    }
}

/// See [`IdleLayer`].
#[derive(Debug, Clone)]
pub struct IdleService<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for IdleService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<TrackedBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let open = request
            .extensions()
            .get::<UnixPeer>()
            .map(|peer| peer.activity.begin());
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| TrackedBody { body, _open: open }))
        })
    }
}

/// A response body that keeps its request open while it lives.
#[derive(Debug)]
pub struct TrackedBody<B> {
    body: B,
    _open: Option<OpenRequest>,
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
