//! One access-log line and one metrics sample per request, written when the response
//! body has been sent (or abandoned), so bytes and duration cover the whole download.

use crate::metrics::Metrics;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderValue;
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// Protocol handlers put this in their response extensions to name the endpoint they
/// served (e.g. `oci.blob.get`); routes matched by axum are labelled by their pattern.
#[derive(Clone, Copy, Debug)]
pub struct RouteLabel(pub &'static str);

/// Put in a response's extensions by a protocol when the store itself failed, so the
/// metrics count store errors in one place whatever protocol hit them.
#[derive(Clone, Copy, Debug)]
pub struct StoreFailure;

/// Which API a path belongs to, for the `protocol` label.
pub fn protocol_of_path(path: &str) -> &'static str {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "v2" | "token" => "oci",
        "simple" | "legacy" | "pypi" => "pypi",
        "" | "healthz" | "readyz" | "metrics" | "ui" | "static" | "favicon.ico" | "_airlock" => {
            "system"
        }
        // The HF API owns the root namespace: /api, /hf, /datasets, /{org}/{repo}/resolve/...
        _ => "hf",
    }
}

/// Labels a response of a route that does not label its own with the route's pattern
/// (`/healthz`, `/ui/{name}`): `observe` runs outside the router, where the pattern
/// matched is not known.
pub async fn label_matched_route(req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(req).await;
    if let Some(matched) = matched {
        response.extensions_mut().insert(matched);
    }
    response
}

pub async fn observe(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| hex::encode(rand::random::<[u8; 8]>()));
    let method = req.method().to_string();
    // Ranged reads (resumes, parallel layer fetches) are worth seeing in the log.
    let range = req
        .headers()
        .get(http::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(64).collect::<String>());
    let path = req.uri().path().to_string();
    metrics.request_started();

    let mut response = next.run(req).await;

    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    if response.extensions().get::<StoreFailure>().is_some() {
        metrics.store_error("unavailable");
    }
    let route = match response.extensions().get::<RouteLabel>() {
        Some(label) => label.0.to_string(),
        None => response
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| "unmatched".into(), |m| m.as_str().to_string()),
    };
    let completion = Completion {
        metrics,
        started,
        request_id,
        protocol: protocol_of_path(&path),
        method,
        path,
        route,
        range,
        status: response.status().as_u16(),
        bytes: 0,
    };
    let (parts, body) = response.into_parts();
    // hyper stops polling once Content-Length bytes are out, so "complete" is judged by
    // that count; a HEAD response has no body to complete.
    let expected_bytes = if completion.method == "HEAD" {
        Some(0)
    } else {
        parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    };
    let body = ObservedBody {
        inner: body,
        completion: Some(completion),
        expected_bytes,
    };
    Response::from_parts(parts, Body::new(body))
}

struct Completion {
    metrics: Arc<Metrics>,
    started: Instant,
    request_id: String,
    protocol: &'static str,
    method: String,
    path: String,
    route: String,
    range: Option<String>,
    status: u16,
    bytes: u64,
}

impl Completion {
    fn finish(self, complete: bool) {
        let elapsed = self.started.elapsed();
        self.metrics.request_finished(
            self.protocol,
            &self.route,
            &self.method,
            self.status,
            self.bytes,
            elapsed,
        );
        tracing::info!(
            target: "airlock::access",
            request_id = %self.request_id,
            method = %self.method,
            path = %self.path,
            route = %self.route,
            range = self.range.as_deref(),
            status = self.status,
            bytes = self.bytes,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            complete,
            "request"
        );
    }
}

/// Counts body bytes as they are sent and reports when the body ends or is dropped
/// (a client that disconnects mid-download is logged with `complete=false`).
struct ObservedBody {
    inner: Body,
    completion: Option<Completion>,
    expected_bytes: Option<u64>,
}

impl http_body::Body for ObservedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(c)) = (frame.data_ref(), self.completion.as_mut()) {
                    c.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => {
                if let Some(c) = self.completion.take() {
                    c.finish(true);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(c) = self.completion.take() {
                    c.finish(false);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        if let Some(c) = self.completion.take() {
            let complete =
                http_body::Body::is_end_stream(&self.inner) || self.expected_bytes == Some(c.bytes);
            c.finish(complete);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::protocol_of_path;

    #[test]
    fn paths_map_to_protocols() {
        assert_eq!(protocol_of_path("/v2/library/busybox/manifests/1"), "oci");
        assert_eq!(protocol_of_path("/simple/requests/"), "pypi");
        assert_eq!(protocol_of_path("/legacy/"), "pypi");
        assert_eq!(protocol_of_path("/api/models/gpt2"), "hf");
        assert_eq!(protocol_of_path("/gpt2/resolve/main/config.json"), "hf");
        assert_eq!(protocol_of_path("/hf/api/models/x/y"), "hf");
        assert_eq!(protocol_of_path("/metrics"), "system");
        assert_eq!(protocol_of_path("/_airlock/catalog/items"), "system");
        assert_eq!(protocol_of_path("/"), "system");
    }
}
