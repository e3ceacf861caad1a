//! The accept loop: serves each connection with bounds on what one client can hold.
//!
//! A client that never finishes its headers (slowloris), keeps a connection open with no
//! request, or starts an upload and stops sending would otherwise hold a task, a socket
//! and (for uploads) a temporary file forever; enough of them and the descriptors run out.
//! So every connection is served under `Limits`: hyper's header read timeout (it needs a
//! timer, which `axum::serve` does not give it), an idle timeout while no request is in
//! flight, a stall timeout on request bodies, and a bound on connections served at once
//! (further ones wait in the kernel's listen backlog, costing this process nothing).

use crate::sendfile::ZeroCopy;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

/// What one client may hold of the server (`[http]` in the configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// From the moment the server waits for a request until its headers are complete;
    /// on HTTP/1 the wait for the next request on a kept-alive connection counts too.
    pub header_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// A request body that brings no byte for this long fails, and its connection closes.
    pub body_stall_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            body_stall_timeout: Duration::from_secs(60),
            max_connections: 10_000,
        }
    }
}

/// Serves what `listener` accepts until `shutdown` resolves, then stops accepting and
/// gives in-flight requests up to `grace` to finish.
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    limits: Limits,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Io: crate::sendfile::ZeroCopyInfo,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut warned_full = false;
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if !warned_full {
                    warned_full = true;
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection limit reached: new connections wait until one closes (http.max_connections)"
                    );
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                    () = &mut shutdown => break,
                }
            }
        };
        let (io, _peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        if slots.available_permits() > 0 {
            warned_full = false;
        }
        let activity = Arc::new(Activity::default());
        let service = Connection {
            app: app.clone(),
            zero_copy: crate::sendfile::ZeroCopyInfo::zero_copy(&io),
            activity: activity.clone(),
            stall: limits.body_stall_timeout,
        };
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            tokio::select! {
                result = conn => if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                },
                () = activity.idle_for(limits.header_timeout, limits.idle_timeout) => {
                    tracing::debug!("closing an idle connection");
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!(grace = ?grace, "shutting down: no new connections, waiting for in-flight requests");
    match tokio::time::timeout(grace, graceful.shutdown()).await {
        Ok(()) => tracing::info!("all requests finished"),
        Err(_) => {
            tracing::warn!(grace = ?grace, "grace period over, closing the remaining connections")
        }
    }
    Ok(())
}

/// One connection's service: the app, with the connection's zero-copy table, the body
/// stall timeout on each request, and each request counted while it is in flight.
#[derive(Clone)]
struct Connection {
    app: Router,
    zero_copy: ZeroCopy,
    activity: Arc<Activity>,
    stall: Duration,
}

impl hyper::service::Service<Request<Incoming>> for Connection {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        // Held until the response body is sent or dropped, or the request is abandoned.
        let busy = self.activity.begin();
        let mut request = request.map(|body| Body::new(StallLimit::new(body, self.stall)));
        request
            .extensions_mut()
            .insert(ConnectInfo(self.zero_copy.clone()));
        let app = self.app.clone();
        Box::pin(async move {
            let response = tower::ServiceExt::oneshot(app, request).await?;
            Ok(response.map(|body| Body::new(InFlight { body, _busy: busy })))
        })
    }
}

/// Requests in flight on one connection, and since when it has had none.
struct Activity {
    /// Whether a request has begun: until then the connection is only waiting for one.
    started: AtomicBool,
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            started: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
        }
    }
}

impl Activity {
    fn begin(self: &Arc<Self>) -> Busy {
        self.started.store(true, Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    /// Resolves once the connection has had no request in flight for `limit` (noticed
    /// within one more `limit` of it), or, before its first request, for `first`: the
    /// header timeout, which hyper applies only once it knows the HTTP version, so a
    /// client that sends fewer bytes than the HTTP/2 preface would escape it.
    async fn idle_for(&self, first: Duration, later: Duration) {
        loop {
            let limit = if self.started.load(Ordering::SeqCst) {
                later
            } else {
                first
            };
            let wait = if self.in_flight.load(Ordering::SeqCst) > 0 {
                limit
            } else {
                let idle = self.idle_since.lock().expect("idle clock").elapsed();
                match limit.checked_sub(idle) {
                    Some(rest) if !rest.is_zero() => rest,
                    _ => return,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// One request in flight.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut since = self.0.idle_since.lock().expect("idle clock");
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            *since = Instant::now();
        }
    }
}

/// A response body that keeps its request counted as in flight until it is sent.
struct InFlight {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for InFlight {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body that fails when no byte arrives for `limit` while the handler waits
/// for one: the upload is abandoned like any other broken one (its temporary data is
/// removed) and the connection closes.
struct StallLimit {
    body: Incoming,
    limit: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl StallLimit {
    fn new(body: Incoming, limit: Duration) -> Self {
        StallLimit {
            body,
            limit,
            timer: None,
        }
    }
}

impl http_body::Body for StallLimit {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.timer = None;
                Poll::Ready(frame.map(|f| f.map_err(std::io::Error::other)))
            }
            Poll::Pending => {
                let limit = this.limit;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                ready!(timer.as_mut().poll(cx));
                // Fires again at once if polled after this.
                Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the request body sent nothing for {limit:?} (http.body_stall_timeout)"
                    ),
                ))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
