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
//!
//! A refused body that stays unread (one that waits for `100 Continue`, or is too large or
//! too slow to drain) leaves the connection unusable: the server closes it after the
//! answer, and the answer says `Connection: close` so that no client puts it back in its
//! pool. botocore, for one, sends the body anyway when no answer came within a second,
//! and then reused the closed connection for its next request.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderValue, Version};
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
    let sent = match body_on_http1(&request) {
        None => return next.run(request).await,
        Some(BodyState::AwaitsContinue) => {
            let mut response = next.run(request).await;
            if refused(&response) {
                close_after(&mut response);
            }
            return response;
        }
        Some(BodyState::Sent) => request,
    };
    let (parts, body) = sent.into_parts();
    let slot = Arc::new(Mutex::new(Some(body)));
    let proxy = Body::new(SharedBody { slot: slot.clone() });
    let mut response = next.run(Request::from_parts(parts, proxy)).await;
    if refused(&response) {
        let rest = slot.lock().expect("body slot").take();
        if let Some(rest) = rest {
            if !drain(rest).await {
                close_after(&mut response);
            }
        }
    }
    response
}

/// Where an HTTP/1.x request's body is when the handler starts.
enum BodyState {
    /// On its way, or already in the socket buffers.
    Sent,
    /// Held back until the server asks for it with `100 Continue`.
    AwaitsContinue,
}

fn body_on_http1(request: &Request) -> Option<BodyState> {
    let headers = request.headers();
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v != "0");
    if !has_body || request.version() > Version::HTTP_11 {
        return None;
    }
    let waits_for_continue = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    Some(match waits_for_continue {
        true => BodyState::AwaitsContinue,
        false => BodyState::Sent,
    })
}

fn refused(response: &Response) -> bool {
    response.status().is_client_error() || response.status().is_server_error()
}

/// The body was left unread: the connection ends with this answer, and says so.
fn close_after(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}

/// Reads the body to its end within the limits; whether it got there.
async fn drain(body: Body) -> bool {
    let mut stream = body.into_data_stream();
    let mut read = 0;
    tokio::time::timeout(DRAIN_TIME, async {
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            let Ok(chunk) = chunk else { return false };
            read += chunk.len();
            if read > DRAIN_BYTES {
                return false;
            }
        }
        true
    })
    .await
    .unwrap_or(false)
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
