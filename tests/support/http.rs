//! HTTP to the server under test: reqwest clients for loopback, and requests sent byte
//! for byte where a client library would normalize them.

use std::io::{Read as _, Write as _};

/// A client builder for the server under test: no proxy (everything is on loopback) and
/// redirects answered, not followed, so tests see them.
pub fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
}

/// [`builder`] as a client.
pub fn client() -> reqwest::Client {
    builder().build().unwrap()
}

/// A client that follows redirects as ordinary clients do (to presigned store URLs, say).
pub fn following_redirects() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A GET of `path` sent byte for byte as given (no URL normalization), for traversal
/// attempts, with `token` as bearer; the status and the body.
pub fn raw_get(base: &str, path: &str, token: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}
