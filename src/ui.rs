//! The web catalog's pages at `/ui/`: plain HTML, CSS and JS from `static/ui/`, compiled
//! into the binary (a handful of small files, so `include_bytes!` in a table does what
//! an embedding crate would, with no dependency and no build step). The pages read the
//! JSON API under `/_airlock/catalog/`.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// (file name, content type, content)
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        HTML,
        include_bytes!("../static/ui/index.html"),
    ),
    ("item.html", HTML, include_bytes!("../static/ui/item.html")),
    (
        "store.html",
        HTML,
        include_bytes!("../static/ui/store.html"),
    ),
    ("app.js", JS, include_bytes!("../static/ui/app.js")),
    ("style.css", CSS, include_bytes!("../static/ui/style.css")),
];
const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Only this server's own files and API: the pages work air-gapped and nothing injected
/// into a name shown on a page can load or run anything else.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { file("index.html") }))
        .route(
            "/ui/{name}",
            get(|Path(name): Path<String>| async move { file(&name) }),
        )
}

fn file(name: &str) -> Response {
    let Some((_, content_type, body)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such page\n").into_response();
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Pages change with the binary: revalidation is cheap, stale pages after an upgrade are not.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
