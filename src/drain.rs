//! Refused uploads are read before the refusal goes out.
//!
//! Many clients (twine, requests-based tools, curl without `Expect`) send the whole body
//! before they read the answer. A handler that refuses early (no token, bad digest, name
//! not allowed) drops the body unread, and HTTP/1.1 then closes the connection under a
//! client that is still sending: the client reports a broken pipe or a reset instead of
//! the error that says what to fix. So the body of every HTTP/1.x request that ends in an
//! error is read and thrown away, bounded in bytes and time, before the answer is sent.
//!
//! The handler gets a proxy of the body; the body itself stays here, so what the handler
//! left unread can still be drained after it has answered. HTTP/2 needs none of this (a
//! stream is reset on its own), nor does a request that waits for `100 Continue`: it has
//! sent nothing yet, and reading would ask it to send what is being refused.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http::{header, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// A larger refused body is cut off (the connection closes, as without draining).
const DRAIN_BYTES: usize = 64 * 1024 * 1024;
/// So does one that arrives slower than this allows.
const DRAIN_TIME: Duration = Duration::from_secs(10);

pub async fn drain_refused_bodies(request: Request, next: Next) -> Response {
    if !worth_draining(&request) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let slot = Arc::new(Mutex::new(Some(body)));
    let proxy = Body::new(SharedBody { slot: slot.clone() });
    let response = next.run(Request::from_parts(parts, proxy)).await;
    if response.status().is_client_error() || response.status().is_server_error() {
        let rest = slot.lock().expect("body slot").take();
        if let Some(rest) = rest {
            drain(rest).await;
        }
    }
    response
}

fn worth_draining(request: &Request) -> bool {
    let headers = request.headers();
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v != "0");
    let waits_for_continue = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    has_body && !waits_for_continue && request.version() <= Version::HTTP_11
}

async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    let mut read = 0;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(chunk)) = futures::StreamExt::next(&mut stream).await {
            read += chunk.len();
            if read > DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

/// The handler's view of a body kept in the middleware's slot.
struct SharedBody {
    slot: Arc<Mutex<Option<Body>>>,
}

impl HttpBody for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match self.slot.lock().expect("body slot").as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.slot
            .lock()
            .expect("body slot")
            .as_ref()
            .is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.slot
            .lock()
            .expect("body slot")
            .as_ref()
            .map(HttpBody::size_hint)
            .unwrap_or_else(|| SizeHint::with_exact(0))
    }
}
