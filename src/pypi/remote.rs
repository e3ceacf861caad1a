//! Reading another index's project page (PEP 691 JSON, else PEP 503 HTML) into file
//! entries, for pull-through. A file without a sha256 is left out: its bytes could not
//! be verified. File URLs are resolved against the page's URL.

use super::names::parse_filename;
use super::project::FileEntry;
use serde_json::Value;
use std::collections::HashMap;
use std::time::SystemTime;
use url::Url;

/// A project as the upstream lists it.
#[derive(Debug)]
pub struct RemotePage {
    pub name: String,
    pub files: Vec<FileEntry>,
}

/// What one listed file says, before it is checked.
#[derive(Default)]
struct Listed<'a> {
    filename: &'a str,
    href: &'a str,
    sha256: Option<String>,
    requires_python: Option<String>,
    metadata_sha256: Option<String>,
    yanked: Option<String>,
    size: u64,
    upload_time: Option<String>,
}

fn is_sha256(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

fn entry(page: &Url, project: &str, l: Listed<'_>) -> Option<FileEntry> {
    let dist = parse_filename(l.filename, project)?;
    let sha256 = l.sha256.filter(|h| is_sha256(h))?.to_ascii_lowercase();
    let mut url = page.join(l.href).ok()?;
    url.set_fragment(None);
    Some(FileEntry {
        filename: l.filename.to_string(),
        version: dist.version,
        kind: dist.kind,
        sha256,
        size: l.size,
        requires_python: l.requires_python.filter(|r| !r.is_empty()),
        metadata_sha256: l
            .metadata_sha256
            .filter(|h| is_sha256(h))
            .map(|h| h.to_ascii_lowercase()),
        yanked: l.yanked,
        upload_time: l
            .upload_time
            .unwrap_or_else(|| humantime::format_rfc3339_micros(SystemTime::now()).to_string()),
        upstream_url: Some(url.to_string()),
    })
}

/// A PEP 691 JSON project page.
pub fn parse_json(body: &[u8], page: &Url, project: &str) -> Result<RemotePage, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let files = v["files"]
        .as_array()
        .ok_or("no `files` array (not a PEP 691 project page)")?;
    let sha = |v: &Value| v["sha256"].as_str().map(str::to_string);
    let files = files
        .iter()
        .filter_map(|f| {
            let metadata = f
                .get("core-metadata")
                .or_else(|| f.get("dist-info-metadata"));
            let listed = Listed {
                filename: f["filename"].as_str()?,
                href: f["url"].as_str()?,
                sha256: sha(&f["hashes"]),
                requires_python: f["requires-python"].as_str().map(str::to_string),
                metadata_sha256: metadata.and_then(sha),
                yanked: match &f["yanked"] {
                    Value::Bool(true) => Some(String::new()),
                    Value::String(reason) => Some(reason.clone()),
                    _ => None,
                },
                size: f["size"].as_u64().unwrap_or(0),
                upload_time: f["upload-time"].as_str().map(str::to_string),
            };
            entry(page, project, listed)
        })
        .collect();
    let name = v["name"].as_str().unwrap_or(project).to_string();
    Ok(RemotePage { name, files })
}

/// A PEP 503 HTML project page: its anchors, with the PEP 592/658/714 attributes.
pub fn parse_html(body: &str, page: &Url, project: &str) -> RemotePage {
    let lower = body.to_ascii_lowercase();
    let mut files = Vec::new();
    let mut at = 0;
    while let Some(start) = lower[at..].find("<a ").map(|i| at + i) {
        let Some(tag_end) = lower[start..].find('>').map(|i| start + i) else {
            break;
        };
        let Some(close) = lower[tag_end..].find("</a>").map(|i| tag_end + i) else {
            break;
        };
        at = close;
        let attrs = attributes(&body[start + 3..tag_end]);
        let text = unescape(body[tag_end + 1..close].trim());
        let Some(href) = attrs.get("href") else {
            continue;
        };
        let (href, fragment) = href.split_once('#').unwrap_or((href, ""));
        let hash = |v: &str| v.strip_prefix("sha256=").map(str::to_string);
        let listed = Listed {
            filename: &text,
            href,
            sha256: hash(fragment),
            requires_python: attrs.get("data-requires-python").cloned(),
            metadata_sha256: attrs
                .get("data-core-metadata")
                .or_else(|| attrs.get("data-dist-info-metadata"))
                .and_then(|v| hash(v)),
            yanked: attrs.get("data-yanked").cloned(),
            ..Default::default()
        };
        files.extend(entry(page, project, listed));
    }
    RemotePage {
        name: project.to_string(),
        files,
    }
}

/// `name="value"` pairs (quotes optional), names lowercased, values unescaped.
fn attributes(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let name_end = rest.find(['=', ' ']).unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..].trim_start();
        let value = if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (value, remaining) = match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let end = after[1..].find(q).map_or(after.len(), |i| i + 1);
                    (&after[1..end], after.get(end + 1..).unwrap_or(""))
                }
                _ => after.split_once(' ').unwrap_or((after, "")),
            };
            rest = remaining.trim_start();
            unescape(value)
        } else {
            String::new()
        };
        if !name.is_empty() {
            out.insert(name, value);
        }
    }
    out
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        // An entity is short: look for its `;` nearby only, so text full of `&` stays linear.
        let Some(end) = rest.as_bytes()[..rest.len().min(11)]
            .iter()
            .position(|b| *b == b';')
        else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
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
        match c {
            Some(c) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_html_pages_with_their_attributes() {
        let page = Url::parse("http://up:8080/simple/demo-pkg/").unwrap();
        let h = "ab".repeat(32);
        let m = "cd".repeat(32);
        let html = format!(
            r#"<html><body>
            <a href="../../pypi/default/files/demo-pkg/{h}/demo_pkg-1.0-py3-none-any.whl#sha256={h}" data-requires-python="&gt;=3.8" data-core-metadata="sha256={m}" data-yanked="bad &amp; old">demo_pkg-1.0-py3-none-any.whl</a><br />
            <A HREF='https://files.example/demo_pkg-1.1.tar.gz'>demo_pkg-1.1.tar.gz</A>
            <a href="other-1.0.tar.gz#sha256={h}">other-1.0.tar.gz</a>
            </body></html>"#
        );
        let p = parse_html(&html, &page, "demo-pkg");
        assert_eq!(p.files.len(), 1, "unhashed and foreign files are left out");
        let f = &p.files[0];
        assert_eq!(
            f.upstream_url.as_deref(),
            Some(
                format!(
                    "http://up:8080/pypi/default/files/demo-pkg/{h}/demo_pkg-1.0-py3-none-any.whl"
                )
                .as_str()
            )
        );
        assert_eq!(f.requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(f.metadata_sha256.as_deref(), Some(m.as_str()));
        assert_eq!(f.yanked.as_deref(), Some("bad & old"));
        assert_eq!(f.version, "1.0");
    }

    #[test]
    fn reads_json_pages() {
        let page = Url::parse("http://up/simple/demo-pkg/").unwrap();
        let h = "ab".repeat(32);
        let body = serde_json::json!({"name": "demo-pkg", "files": [
            {"filename": "demo_pkg-1.0-py3-none-any.whl", "url": "/f/demo_pkg-1.0-py3-none-any.whl",
             "hashes": {"sha256": h}, "core-metadata": true, "yanked": true, "size": 42},
            {"filename": "demo_pkg-2.0.tar.gz", "url": "x", "hashes": {}}
        ]});
        let p = parse_json(body.to_string().as_bytes(), &page, "demo-pkg").unwrap();
        assert_eq!(p.files.len(), 1);
        let f = &p.files[0];
        assert_eq!(
            f.upstream_url.as_deref(),
            Some("http://up/f/demo_pkg-1.0-py3-none-any.whl")
        );
        assert_eq!((f.size, f.yanked.as_deref()), (42, Some("")));
        assert!(
            f.metadata_sha256.is_none(),
            "metadata without a hash cannot be verified"
        );
        assert!(parse_json(b"{}", &page, "demo-pkg").is_err());
    }

    use proptest::prelude::*;

    /// Pieces of HTML and JSON that steer the parsers, so random pages reach deep.
    fn page_text() -> impl Strategy<Value = String> {
        let piece = proptest::sample::select(vec![
            "<a ",
            "<A HREF=",
            "href=\"",
            "'",
            "\"",
            ">",
            "</a>",
            "&amp;",
            "&#x",
            "&#",
            ";",
            "&",
            "#sha256=",
            "ab",
            "data-yanked",
            "=",
            " ",
            "demo_pkg-1.0.tar.gz",
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
            "null",
        ]);
        proptest::collection::vec(piece, 0..64).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// An upstream page of any shape: files or an error, never a panic, and never
        /// more files than anchors or entries it holds.
        #[test]
        fn any_page(text in page_text(), bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let page = Url::parse("http://up/simple/demo-pkg/").unwrap();
            let html = parse_html(&text, &page, "demo-pkg");
            prop_assert!(html.files.len() <= text.matches("<a ").count() + 1);
            let _ = parse_json(text.as_bytes(), &page, "demo-pkg");
            let _ = parse_json(&bytes, &page, "demo-pkg");
            let _ = parse_html(&String::from_utf8_lossy(&bytes), &page, "demo-pkg");
        }
    }

    #[test]
    fn adversarial_pages_parse_in_linear_time() {
        // Each `&` looked for its `;` to the end of the text: quadratic in ampersands.
        let page = Url::parse("http://up/simple/demo-pkg/").unwrap();
        let html = format!("<a href=\"{}\">x</a>", "&".repeat(400_000));
        let started = std::time::Instant::now();
        parse_html(&html, &page, "demo-pkg");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}
