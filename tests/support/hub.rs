//! Hugging Face Hub requests as huggingface_hub sends them: creating a repository, a
//! commit's NDJSON lines, and the LFS batch that hands out upload URLs.

use serde_json::{json, Value};

/// Creates the model repository `org/name` with `token`; the status and body.
pub async fn create_model(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    org: &str,
    name: &str,
) -> (u16, String) {
    let r = http
        .post(format!("{base}/api/repos/create"))
        .bearer_auth(token)
        .json(&json!({ "name": name, "organization": org, "type": "model" }))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A commit to `main` of the model `repo` (`org/name`) with `token`, the body still to
/// add (see [`ndjson`]).
pub fn commit(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    repo: &str,
) -> reqwest::RequestBuilder {
    http.post(format!("{base}/api/models/{repo}/commit/main"))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
}

/// A commit body: one JSON value a line.
pub fn ndjson(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// The header line of a commit.
pub fn header_line(summary: &str) -> Value {
    json!({ "key": "header", "value": { "summary": summary, "description": "" } })
}

/// A commit line carrying a small file inline, base64-encoded.
pub fn file_line(path: &str, content: &[u8]) -> Value {
    use base64::Engine as _;
    let content = base64::engine::general_purpose::STANDARD.encode(content);
    json!({ "key": "file", "value": { "path": path, "content": content, "encoding": "base64" } })
}

/// A commit line naming an LFS object by its SHA-256 (uploaded before, or not).
pub fn lfs_line(path: &str, oid: &str, size: usize) -> Value {
    json!({ "key": "lfsFile", "value": { "path": path, "algo": "sha256", "oid": oid, "size": size } })
}

/// Asks the LFS batch API of `repo` (`org/name`) to upload one object; its answer.
pub async fn lfs_batch(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    repo: &str,
    oid: &str,
    size: usize,
) -> Value {
    let batch = json!({"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": size}]});
    http.post(format!("{base}/{repo}.git/info/lfs/objects/batch"))
        .bearer_auth(token)
        .header("content-type", "application/vnd.git-lfs+json")
        .json(&batch)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The signed upload URL in an LFS batch answer for one object.
pub fn upload_href(answer: &Value) -> String {
    answer["objects"][0]["actions"]["upload"]["href"]
        .as_str()
        .unwrap_or_else(|| panic!("no upload action: {answer}"))
        .to_string()
}
