//! Reading a project page of a simple repository: the JSON form (PEP 691) when the
//! upstream offers it, else the HTML form (PEP 503 with 592, 658/714 and the hash
//! fragment), both into one list of files with what the upstream says about each.
//!
//! The page is untrusted: it is read up to `MAX_PAGE_BYTES`, and the HTML reader moves
//! forward only (each byte is looked at a bounded number of times), so a hostile page
//! costs time linear in its size. Which files belong to the project, and whether a hash
//! is usable, is the caller's business.

use super::client::{Client, FetchError, Req};
use serde_json::Value;

pub const ACCEPT: &str = "application/vnd.pypi.simple.v1+json, \
    application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1";
/// The largest project page read (pypi.org's biggest are a few MiB).
pub const MAX_PAGE_BYTES: usize = 64 * 1024 * 1024;
/// The longest character reference `&...;` recognized.
const MAX_ENTITY: usize = 10;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DistFile {
    pub filename: String,
    /// Absolute URL (relative ones are resolved against the page), without fragment.
    pub url: String,
    /// As listed, lowercased; not checked to be a sha256.
    pub sha256: Option<String>,
    pub requires_python: Option<String>,
    /// Yanked (PEP 592), with the reason (possibly empty).
    pub yanked: Option<String>,
    pub upload_time: Option<String>,
    /// Size in bytes when the page says (PEP 700), else 0.
    pub size: u64,
    /// The upstream serves `<url>.metadata` (PEP 658/714), with its sha256 when given.
    pub metadata: Option<Option<String>>,
}

/// A project page as read.
#[derive(Debug, Default)]
pub struct Page {
    /// The project's display name, when the page says.
    pub name: Option<String>,
    pub files: Vec<DistFile>,
}

/// GETs and parses the project page at `url`.
pub async fn fetch(client: &Client, url: &str, req: Req) -> Result<Page, FetchError> {
    let small = client
        .get_small(url, &req.accept(ACCEPT), MAX_PAGE_BYTES)
        .await?;
    let content_type = small
        .headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/html");
    parse(content_type, &small.body, &small.url)
        .map_err(|e| FetchError::Verify(format!("{url}: {e}")))
}

/// Parses a page by its content type; `page_url` resolves relative links.
pub fn parse(content_type: &str, body: &[u8], page_url: &url::Url) -> Result<Page, String> {
    if content_type.contains("json") {
        parse_json(body, page_url)
    } else {
        Ok(Page {
            name: None,
            files: parse_html(&String::from_utf8_lossy(body), page_url),
        })
    }
}

fn resolve(page: &url::Url, href: &str) -> Option<String> {
    let mut url = page.join(href).ok()?;
    url.set_fragment(None);
    Some(url.to_string())
}

fn sha256_of(v: &Value) -> Option<String> {
    v.get("sha256")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
}

fn parse_json(body: &[u8], page: &url::Url) -> Result<Page, String> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| format!("project page is not JSON: {e}"))?;
    let files = doc["files"]
        .as_array()
        .ok_or("project page has no `files` array (not a PEP 691 project page)")?;
    let files = files
        .iter()
        .filter_map(|f| {
            let metadata = match f
                .get("core-metadata")
                .or_else(|| f.get("dist-info-metadata"))
            {
                Some(Value::Bool(true)) => Some(None),
                Some(v @ Value::Object(_)) => Some(sha256_of(v)),
                _ => None,
            };
            Some(DistFile {
                filename: f["filename"].as_str()?.to_string(),
                url: resolve(page, f["url"].as_str()?)?,
                sha256: sha256_of(&f["hashes"]),
                requires_python: f["requires-python"].as_str().map(str::to_string),
                yanked: match &f["yanked"] {
                    Value::Bool(true) => Some(String::new()),
                    Value::String(reason) => Some(reason.clone()),
                    _ => None,
                },
                upload_time: f["upload-time"].as_str().map(str::to_string),
                size: f["size"].as_u64().unwrap_or(0),
                metadata,
            })
        })
        .collect();
    Ok(Page {
        name: doc["name"].as_str().map(str::to_string),
        files,
    })
}

/// Replaces the character references of HTML text; an `&` that starts none stays.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        // Only a short window is searched for the `;`, so `&&&&...` stays linear.
        let window = &rest.as_bytes()[..rest.len().min(MAX_ENTITY + 1)];
        let c = window.iter().position(|&b| b == b';').and_then(|end| {
            let entity = &rest[1..end];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, end))
        });
        match c {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `name="value"` / `name='value'` / `name=value` / bare `name` attributes of one tag,
/// names lowercased, values unescaped.
fn attributes(tag: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = tag.trim();
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let name = rest[..end].to_ascii_lowercase();
        rest = rest[end..].trim_start();
        let value = if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (value, remaining) = match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let close = after[1..].find(q).map(|i| i + 1).unwrap_or(after.len());
                    (&after[1..close], after.get(close + 1..).unwrap_or(""))
                }
                _ => {
                    let close = after.find(char::is_whitespace).unwrap_or(after.len());
                    (&after[..close], &after[close..])
                }
            };
            rest = remaining.trim_start();
            Some(unescape(value))
        } else {
            None
        };
        if !name.is_empty() {
            out.push((name, value));
        }
    }
    out
}

/// The anchors of a PEP 503 page. Each search starts where the last one ended, and the
/// one search for a closing `</a` is remembered: linear in the page's size.
fn parse_html(html: &str, page: &url::Url) -> Vec<DistFile> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut at = 0;
    // Where the last search found `</a` (None: nowhere after it), so a page of unclosed
    // anchors is not searched to its end once per anchor.
    let mut next_close: Option<Option<usize>> = None;
    while let Some(start) = lower[at..].find("<a").map(|i| i + at) {
        at = start + 2;
        // `<abbr>`, `<area>`: not anchors.
        if !lower[at..].starts_with(|c: char| c.is_ascii_whitespace() || c == '>') {
            continue;
        }
        let Some(tag_end) = lower[at..].find('>').map(|i| i + at) else {
            break;
        };
        let close = match next_close {
            Some(Some(c)) if c >= tag_end => Some(c),
            Some(None) => None,
            _ => {
                let found = lower[tag_end..].find("</a").map(|i| i + tag_end);
                next_close = Some(found);
                found
            }
        };
        let text_end = close.unwrap_or(tag_end + 1);
        at = text_end.max(tag_end + 1);
        let attrs = attributes(html[start + 2..tag_end].trim_end_matches('/'));
        let get = |n: &str| attrs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let Some(Some(href)) = get("href") else {
            continue;
        };
        let (link, fragment) = href.split_once('#').unwrap_or((&href, ""));
        let Some(url) = resolve(page, link) else {
            continue;
        };
        let metadata = get("data-core-metadata")
            .or_else(|| get("data-dist-info-metadata"))
            .and_then(|v| match v.as_deref() {
                Some("false") => None,
                Some(v) => Some(v.strip_prefix("sha256=").map(str::to_ascii_lowercase)),
                None => Some(None),
            });
        out.push(DistFile {
            filename: unescape(html[tag_end + 1..text_end].trim()),
            url,
            sha256: fragment
                .strip_prefix("sha256=")
                .map(str::to_ascii_lowercase),
            requires_python: get("data-requires-python").flatten(),
            yanked: get("data-yanked").map(Option::unwrap_or_default),
            upload_time: None,
            size: 0,
            metadata,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> url::Url {
        url::Url::parse("https://idx.example/simple/demo/").unwrap()
    }

    #[test]
    fn reads_html_pages() {
        let html = r#"<html><body>
<a href="../../files/demo-1.0-py3-none-any.whl#sha256=AB" data-requires-python="&gt;=3.8" data-core-metadata="sha256=cd" data-yanked="bad &amp; old">demo-1.0-py3-none-any.whl</a><br/>
<abbr title="x">not a link</abbr>
<A HREF='https://other/demo-1.0.tar.gz' data-dist-info-metadata=true>demo-1.0.tar.gz</A>
</body></html>"#;
        let files = parse("text/html", html.as_bytes(), &page()).unwrap().files;
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[0].url,
            "https://idx.example/files/demo-1.0-py3-none-any.whl"
        );
        assert_eq!(files[0].sha256.as_deref(), Some("ab"));
        assert_eq!(files[0].requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(files[0].yanked.as_deref(), Some("bad & old"));
        assert_eq!(files[0].metadata, Some(Some("cd".into())));
        assert_eq!(files[1].filename, "demo-1.0.tar.gz");
        assert_eq!(files[1].metadata, Some(None));
        assert_eq!(files[1].sha256, None);
        assert_eq!(files[1].yanked, None);
    }

    #[test]
    fn reads_json_pages() {
        let json = r#"{"meta":{"api-version":"1.1"},"name":"demo","files":[
 {"filename":"demo-1.0.tar.gz","url":"/f/demo-1.0.tar.gz","hashes":{"sha256":"ee"},
  "yanked":"broken","upload-time":"2024-01-01T00:00:00.000000Z","core-metadata":false,"size":42},
 {"filename":"demo-2.0-py3-none-any.whl","url":"x.whl","hashes":{},"yanked":false,
  "requires-python":">=3.9","dist-info-metadata":{"sha256":"ff"}}]}"#;
        let p = parse(
            "application/vnd.pypi.simple.v1+json",
            json.as_bytes(),
            &page(),
        )
        .unwrap();
        assert_eq!(p.name.as_deref(), Some("demo"));
        let files = p.files;
        assert_eq!(files[0].url, "https://idx.example/f/demo-1.0.tar.gz");
        assert_eq!(files[0].yanked.as_deref(), Some("broken"));
        assert_eq!(files[0].metadata, None);
        assert_eq!(files[0].size, 42);
        assert_eq!(
            files[0].upload_time.as_deref(),
            Some("2024-01-01T00:00:00.000000Z")
        );
        assert_eq!(files[1].url, "https://idx.example/simple/demo/x.whl");
        assert_eq!(files[1].sha256, None);
        assert_eq!(files[1].metadata, Some(Some("ff".into())));
        assert!(parse("application/json", b"{}", &page()).is_err());
    }

    #[test]
    fn hostile_html_costs_linear_time() {
        let n = 2_000_000;
        for hostile in [
            "<a ".repeat(n / 3),
            "<a>".repeat(n / 3),
            "&".repeat(n),
            format!("<a href='x'>{}</a>", "&amp".repeat(n / 4)),
        ] {
            let started = std::time::Instant::now();
            let _ = parse("text/html", hostile.as_bytes(), &page());
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{} bytes took {:?}",
                hostile.len(),
                started.elapsed()
            );
        }
    }

    use proptest::prelude::*;

    fn page_text() -> impl Strategy<Value = String> {
        let piece = proptest::sample::select(vec![
            "<a",
            "<A HREF=",
            " href=",
            "\"",
            "'",
            ">",
            "</a",
            "</a>",
            "&amp;",
            "&lt;",
            "#sha256=",
            "AB",
            "data-core-metadata",
            "=",
            " ",
            "/",
            "demo-1.0.tar.gz",
            "../",
            "é",
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            "\"files\"",
            "\"url\"",
            "\"filename\"",
            "\"hashes\"",
            "true",
        ]);
        proptest::collection::vec(piece, 0..64).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn any_page(text in page_text(), bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let html = parse("text/html", text.as_bytes(), &page()).unwrap().files;
            prop_assert!(html.len() <= text.matches("<a").count() + text.matches("<A").count());
            let _ = parse("application/vnd.pypi.simple.v1+json", text.as_bytes(), &page());
            let _ = parse("application/vnd.pypi.simple.v1+json", &bytes, &page());
            let _ = parse("text/html", &bytes, &page());
        }
    }

    #[test]
    fn adversarial_pages_parse_in_linear_time() {
        // Every `<a` without a closing `</a` searched the rest of the page for one.
        let html = "<a href=x>".repeat(100_000);
        let started = std::time::Instant::now();
        assert_eq!(
            parse("text/html", html.as_bytes(), &page())
                .unwrap()
                .files
                .len(),
            100_000
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}
