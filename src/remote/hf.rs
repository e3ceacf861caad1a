//! Reading a Hugging Face Hub (huggingface.co or another Airlock): a repository at a
//! revision (`/api/<kind>s/<id>/revision/<rev>?blobs=true`: its commit id, visibility,
//! gating, and every file with its git blob oid and, for LFS files, sha256 and size), the
//! recursive tree of a commit (following `Link: rel="next"` pages), and file URLs.
//!
//! File names are the upstream's and are not checked here: callers check each with the
//! rules of their own repositories before storing anything under it.

use super::client::{Client, FetchError, Req};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::Value;

/// Path segments keep `/` between them but escape everything URL-significant.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// The largest API answer read (a listing of a repo with very many files).
pub const MAX_API_BYTES: usize = 64 * 1024 * 1024;
/// Tree pages followed at most (the Hub pages 1,000 entries at a time).
const MAX_TREE_PAGES: usize = 10_000;

/// One Hub and how to ask it.
pub struct Hub<'a> {
    pub client: &'a Client,
    /// Without a trailing slash.
    pub base: String,
    pub req: Req,
}

/// A repository at a revision, as the upstream describes it.
#[derive(Debug)]
pub struct Revision {
    pub sha: String,
    pub last_modified: Option<String>,
    pub created_at: Option<String>,
    pub private: bool,
    /// Gated (`"auto"` or `"manual"` upstream; `false` when not).
    pub gated: bool,
    pub siblings: Vec<Sibling>,
}

#[derive(Debug, Clone)]
pub struct Sibling {
    pub rfilename: String,
    pub size: Option<u64>,
    pub blob_id: Option<String>,
    pub lfs: Option<Lfs>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Lfs {
    #[serde(alias = "oid")]
    pub sha256: String,
    pub size: u64,
}

/// A file of a recursive tree listing.
#[derive(Debug, Deserialize)]
pub struct TreeEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub oid: String,
    #[serde(default)]
    pub size: u64,
    pub path: String,
    #[serde(default)]
    pub lfs: Option<Lfs>,
}

/// Each `/` separated segment escaped.
pub fn encode_path(path: &str) -> String {
    path.split('/')
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

impl Hub<'_> {
    /// `<base>/api/<plural>/<id><rest>`
    pub fn api(&self, plural: &str, id: &str, rest: &str) -> String {
        format!("{}/api/{plural}/{id}{rest}", self.base)
    }

    /// Where a file of a commit is downloaded; `prefix` is `""` or `datasets/`.
    pub fn file_url(&self, prefix: &str, id: &str, commit: &str, path: &str) -> String {
        format!(
            "{}/{prefix}{id}/resolve/{commit}/{}",
            self.base,
            encode_path(path)
        )
    }

    pub async fn json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
    ) -> Result<(reqwest::header::HeaderMap, T), FetchError> {
        let small = self
            .client
            .get_small(
                url,
                &self.req.clone().accept("application/json"),
                MAX_API_BYTES,
            )
            .await?;
        let value = serde_json::from_slice(&small.body)
            .map_err(|e| FetchError::Verify(format!("{url}: unexpected answer: {e}")))?;
        Ok((small.headers, value))
    }

    /// The repository at `rev` (a branch, tag or commit id), with its files.
    pub async fn revision(
        &self,
        plural: &str,
        id: &str,
        rev: &str,
    ) -> Result<Revision, FetchError> {
        let url = self.api(
            plural,
            id,
            &format!("/revision/{}?blobs=true", utf8_percent_encode(rev, SEGMENT)),
        );
        let (_, info): (_, Value) = self.json(&url).await?;
        let bad = |why: &str| FetchError::Verify(format!("{url}: {why}"));
        let sha = info["sha"]
            .as_str()
            .filter(|s| s.len() == 40 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .ok_or_else(|| bad("the upstream answered no commit id"))?
            .to_string();
        let siblings = info["siblings"]
            .as_array()
            .ok_or_else(|| bad("no siblings in the answer"))?
            .iter()
            .map(|s| {
                Ok(Sibling {
                    rfilename: s["rfilename"]
                        .as_str()
                        .ok_or_else(|| bad("a sibling without rfilename"))?
                        .to_string(),
                    size: s["size"].as_u64(),
                    blob_id: s["blobId"].as_str().map(str::to_string),
                    lfs: s["lfs"]["sha256"].as_str().map(|sha256| Lfs {
                        sha256: sha256.to_ascii_lowercase(),
                        size: s["lfs"]["size"]
                            .as_u64()
                            .or(s["size"].as_u64())
                            .unwrap_or(0),
                    }),
                })
            })
            .collect::<Result<_, FetchError>>()?;
        let text = |k: &str| info[k].as_str().map(str::to_string);
        Ok(Revision {
            sha,
            last_modified: text("lastModified"),
            created_at: text("createdAt"),
            private: info["private"].as_bool().unwrap_or(false),
            gated: match &info["gated"] {
                Value::Bool(g) => *g,
                Value::String(s) => !s.is_empty() && s != "false",
                _ => false,
            },
            siblings,
        })
    }

    /// Every file of commit `sha`, following the listing's pages.
    pub async fn tree(
        &self,
        plural: &str,
        id: &str,
        sha: &str,
    ) -> Result<Vec<TreeEntry>, FetchError> {
        let mut entries: Vec<TreeEntry> = Vec::new();
        let mut next = Some(self.api(plural, id, &format!("/tree/{sha}?recursive=true")));
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_TREE_PAGES {
                return Err(FetchError::Verify(format!(
                    "{url}: more than {MAX_TREE_PAGES} pages of files"
                )));
            }
            let (headers, page): (_, Vec<TreeEntry>) = self.json(&url).await?;
            entries.extend(page.into_iter().filter(|e| e.kind == "file"));
            next = headers
                .get(reqwest::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
        }
        Ok(entries)
    }
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_and_paths() {
        assert_eq!(
            next_link("<https://hub/api/models/a/b/tree/main?cursor=x>; rel=\"next\"").as_deref(),
            Some("https://hub/api/models/a/b/tree/main?cursor=x")
        );
        assert_eq!(next_link("<https://x>; rel=\"prev\""), None);
        assert_eq!(encode_path("sub dir/a+b#.json"), "sub%20dir/a%2Bb%23.json");
    }
}
