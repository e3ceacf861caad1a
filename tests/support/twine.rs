//! Uploads to a PyPI legacy endpoint (`/legacy/`) the way twine sends them.

use super::wheels::Dist;
use std::io::Write as _;

/// The content type and body of twine's multipart upload of `dist`: name and version
/// from its file name, its SHA-256 (or `claimed_sha` instead), then the file.
pub fn form(dist: &Dist, claimed_sha: Option<&str>) -> (String, Vec<u8>) {
    let stem = dist
        .filename
        .trim_end_matches(".whl")
        .trim_end_matches(".tar.gz");
    let mut parts = stem.split('-');
    let (name, version) = (parts.next().unwrap(), parts.next().unwrap());
    let filetype = if dist.filename.ends_with(".whl") {
        "bdist_wheel"
    } else {
        "sdist"
    };
    let sha256 = claimed_sha
        .map(str::to_string)
        .unwrap_or_else(|| dist.sha256());
    let boundary = "airlocktestboundary0123456789";
    let mut body = Vec::new();
    for (field, value) in [
        (":action", "file_upload"),
        ("protocol_version", "1"),
        ("name", name),
        ("version", version),
        ("filetype", filetype),
        ("pyversion", "py3"),
        ("metadata_version", "2.1"),
        ("sha256_digest", &sha256),
    ] {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n"
        )
        .unwrap();
    }
    write!(
        body,
        "--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n",
        dist.filename
    )
    .unwrap();
    body.extend_from_slice(&dist.bytes);
    write!(body, "\r\n--{boundary}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// POSTs twine's upload of `dist` to `url`, with `token` as twine sends it (basic auth,
/// user `__token__`), if any.
pub async fn upload(
    http: &reqwest::Client,
    url: &str,
    dist: &Dist,
    token: Option<&str>,
    claimed_sha: Option<&str>,
) -> reqwest::Response {
    let (content_type, body) = form(dist, claimed_sha);
    let mut request = http
        .post(url)
        .header("content-type", content_type)
        .body(body);
    if let Some(token) = token {
        request = request.basic_auth("__token__", Some(token));
    }
    request.send().await.unwrap()
}
