//! The wire formats of the simple API: PEP 503 HTML and PEP 691 JSON (with the PEP 592,
//! 658/714 and 700 additions), and the content negotiation between them.

use super::project::{FileEntry, ProjectDoc};
use super::PypiError;
use serde_json::{json, Value};

pub const API_VERSION: &str = "1.1";

/// The representations a simple-API page can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    HtmlV1,
    /// Legacy `text/html`: the same body as v1 HTML.
    Html,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/vnd.pypi.simple.v1+json",
            Format::HtmlV1 => "application/vnd.pypi.simple.v1+html",
            Format::Html => "text/html",
        }
    }

    /// Media types each format answers to, most specific first.
    fn names(self) -> &'static [&'static str] {
        match self {
            Format::Json => &[
                "application/vnd.pypi.simple.v1+json",
                "application/vnd.pypi.simple.latest+json",
            ],
            Format::HtmlV1 => &[
                "application/vnd.pypi.simple.v1+html",
                "application/vnd.pypi.simple.latest+html",
            ],
            Format::Html => &["text/html"],
        }
    }
}

/// Picks the format for an `Accept` header (q-values honoured) or a `?format=` override.
/// Among equally acceptable formats, `text/html` wins, as for a browser or `curl`.
pub fn negotiate(accept: Option<&str>, format_param: Option<&str>) -> Result<Format, PypiError> {
    let candidates = [Format::Html, Format::HtmlV1, Format::Json];
    if let Some(wanted) = format_param {
        // An unescaped `+` in a query string arrives as a space.
        let wanted = wanted.replace(' ', "+");
        return candidates
            .into_iter()
            .find(|f| f.names().contains(&wanted.trim()))
            .ok_or_else(|| {
                PypiError::not_acceptable(format!("unsupported ?format= value `{wanted}`"))
            });
    }
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Format::Html);
    };
    let ranges: Vec<(String, f32)> = accept
        .split(',')
        .filter_map(|part| {
            let mut params = part.split(';');
            let media = params.next()?.trim().to_ascii_lowercase();
            let q = params
                .filter_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f32>().ok())
                })
                .next()
                .unwrap_or(1.0);
            (!media.is_empty()).then_some((media, q))
        })
        .collect();
    // Each candidate takes the quality of the most specific range that matches it.
    let quality = |f: Format| -> f32 {
        let mut best: Option<(u8, f32)> = None;
        for (media, q) in &ranges {
            let specificity = if f.names().contains(&media.as_str()) {
                3
            } else if media
                .strip_suffix("/*")
                .is_some_and(|t| f.content_type().starts_with(&format!("{t}/")))
            {
                2
            } else if media == "*/*" {
                1
            } else {
                continue;
            };
            if best.is_none_or(|(s, _)| specificity > s) {
                best = Some((specificity, *q));
            }
        }
        best.map(|(_, q)| q).unwrap_or(0.0)
    };
    let mut chosen: Option<(Format, f32)> = None;
    for f in candidates {
        let q = quality(f);
        if q > 0.0 && chosen.is_none_or(|(_, best)| q > best) {
            chosen = Some((f, q));
        }
    }
    chosen.map(|(f, _)| f).ok_or_else(|| {
        PypiError::not_acceptable(format!(
            "none of `{accept}` is served here; ask for application/vnd.pypi.simple.v1+json, \
             application/vnd.pypi.simple.v1+html or text/html"
        ))
    })
}

/// The `/simple/` page in parts, so that it is sent a listing page at a time: its head,
/// the entries of each page of projects (normalized names), and its tail.
pub mod root {
    use super::{escape, page_head, Format, API_VERSION};

    pub fn head(format: Format) -> String {
        match format {
            Format::Json => {
                format!("{{\"meta\":{{\"api-version\":\"{API_VERSION}\"}},\"projects\":[")
            }
            _ => page_head("Simple index"),
        }
    }

    /// `first`: no entry was written before these (JSON separates entries by commas).
    pub fn entries<'a>(
        format: Format,
        names: impl Iterator<Item = &'a str>,
        first: bool,
    ) -> String {
        // Room for a chunk of typical names without growing: the entries are most of
        // the work, and a copy each time the string doubles was a tenth of it.
        let per_name = match format {
            Format::Json => 40,
            _ => 80,
        };
        let mut out = String::with_capacity(names.size_hint().0 * per_name);
        for (i, name) in names.enumerate() {
            // Listed names are normalized ([a-z0-9-]): written as they are, the others
            // escaped.
            let plain = name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
            match format {
                Format::Json => {
                    if !(first && i == 0) {
                        out.push(',');
                    }
                    out.push_str("{\"name\":");
                    if plain {
                        out.push('"');
                        out.push_str(name);
                        out.push('"');
                    } else {
                        out.push_str(&serde_json::Value::from(name).to_string());
                    }
                    out.push('}');
                }
                _ => {
                    let escaped;
                    let name = if plain {
                        name
                    } else {
                        escaped = escape(name);
                        &escaped
                    };
                    out.push_str("    <a href=\"");
                    out.push_str(name);
                    out.push_str("/\">");
                    out.push_str(name);
                    out.push_str("</a><br />\n");
                }
            }
        }
        out
    }

    pub fn tail(format: Format) -> &'static str {
        match format {
            Format::Json => "]}",
            _ => "  </body>\n</html>\n",
        }
    }
}

/// One project's page. `file_url` maps a file to its URL (relative or absolute).
pub struct ProjectPage<'a> {
    pub normalized: &'a str,
    pub doc: &'a ProjectDoc,
    pub file_url: &'a dyn Fn(&FileEntry) -> String,
}

impl ProjectPage<'_> {
    pub fn html(&self) -> String {
        let mut out = page_head(&format!("Links for {}", self.doc.name));
        for f in &self.doc.files {
            let mut a = format!(
                "    <a href=\"{}#sha256={}\"",
                escape(&(self.file_url)(f)),
                f.sha256
            );
            if let Some(rp) = &f.requires_python {
                a.push_str(&format!(" data-requires-python=\"{}\"", escape(rp)));
            }
            if let Some(m) = &f.metadata_sha256 {
                // PEP 714's name, and PEP 658's for older pip.
                a.push_str(&format!(
                    " data-core-metadata=\"sha256={m}\" data-dist-info-metadata=\"sha256={m}\""
                ));
            }
            if let Some(reason) = &f.yanked {
                a.push_str(&format!(" data-yanked=\"{}\"", escape(reason)));
            }
            a.push_str(&format!(">{}</a><br />\n", escape(&f.filename)));
            out.push_str(&a);
        }
        out.push_str("  </body>\n</html>\n");
        out
    }

    pub fn json(&self) -> Value {
        let mut versions: Vec<&str> = Vec::new();
        for f in &self.doc.files {
            if !versions.contains(&f.version.as_str()) {
                versions.push(&f.version);
            }
        }
        let files: Vec<Value> = self
            .doc
            .files
            .iter()
            .map(|f| {
                let metadata = match &f.metadata_sha256 {
                    Some(m) => json!({"sha256": m}),
                    None => json!(false),
                };
                let yanked = match &f.yanked {
                    None => json!(false),
                    Some(reason) if reason.is_empty() => json!(true),
                    Some(reason) => json!(reason),
                };
                let mut file = json!({
                    "filename": f.filename,
                    "url": (self.file_url)(f),
                    "hashes": {"sha256": f.sha256},
                    "core-metadata": metadata,
                    "dist-info-metadata": metadata,
                    "yanked": yanked,
                    "size": f.size,
                    "upload-time": f.upload_time,
                });
                if let Some(rp) = &f.requires_python {
                    file["requires-python"] = json!(rp);
                }
                file
            })
            .collect();
        json!({
            "meta": {"api-version": API_VERSION},
            "name": self.normalized,
            "versions": versions,
            "files": files,
        })
    }
}

fn page_head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"{API_VERSION}\">\n    \
         <title>{0}</title>\n  </head>\n  <body>\n    <h1>{0}</h1>\n",
        escape(title)
    )
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_and_uv_get_json() {
        let pip = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";
        assert_eq!(negotiate(Some(pip), None).unwrap(), Format::Json);
        let html_first =
            "application/vnd.pypi.simple.v1+html, application/vnd.pypi.simple.v1+json; q=0.5";
        assert_eq!(negotiate(Some(html_first), None).unwrap(), Format::HtmlV1);
    }

    #[test]
    fn browsers_wildcards_and_legacy_get_html() {
        assert_eq!(negotiate(None, None).unwrap(), Format::Html);
        assert_eq!(negotiate(Some("*/*"), None).unwrap(), Format::Html);
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert_eq!(negotiate(Some(browser), None).unwrap(), Format::Html);
        assert_eq!(
            negotiate(Some("application/*"), None).unwrap(),
            Format::HtmlV1
        );
        assert_eq!(
            negotiate(Some("application/vnd.pypi.simple.latest+json"), None).unwrap(),
            Format::Json
        );
    }

    #[test]
    fn nothing_acceptable_is_406() {
        let e = negotiate(Some("application/xml"), None).unwrap_err();
        assert_eq!(e.status, http::StatusCode::NOT_ACCEPTABLE);
        let e = negotiate(
            Some("text/html;q=0, application/vnd.pypi.simple.v1+json;q=0"),
            None,
        )
        .unwrap_err();
        assert_eq!(e.status, http::StatusCode::NOT_ACCEPTABLE);
        assert_eq!(
            negotiate(
                Some("application/xml"),
                Some("application/vnd.pypi.simple.v1+json")
            )
            .unwrap(),
            Format::Json
        );
    }

    #[test]
    fn html_escapes_requires_python_and_reasons() {
        let doc = ProjectDoc {
            name: "Foo".into(),
            files: vec![FileEntry {
                filename: "foo-1.0-py3-none-any.whl".into(),
                version: "1.0".into(),
                kind: super::super::names::DistKind::Wheel,
                sha256: "ab".repeat(32),
                size: 3,
                requires_python: Some(">=3.9,<4".into()),
                metadata_sha256: Some("cd".repeat(32)),
                yanked: Some("broken <build>".into()),
                upload_time: "2026-01-01T00:00:00.000000Z".into(),
                upstream_url: None,
            }],
        };
        let url = |f: &FileEntry| format!("../../files/{}", f.filename);
        let page = ProjectPage {
            normalized: "foo",
            doc: &doc,
            file_url: &url,
        };
        let html = page.html();
        assert!(
            html.contains("data-requires-python=\"&gt;=3.9,&lt;4\""),
            "{html}"
        );
        assert!(html.contains("data-yanked=\"broken &lt;build&gt;\""));
        assert!(html.contains(&format!(
            "data-core-metadata=\"sha256={}\"",
            "cd".repeat(32)
        )));
        assert!(html.contains(&format!("#sha256={}", "ab".repeat(32))));
        let json = page.json();
        assert_eq!(json["files"][0]["yanked"], "broken <build>");
        assert_eq!(json["files"][0]["core-metadata"]["sha256"], "cd".repeat(32));
        assert_eq!(json["versions"][0], "1.0");
        assert_eq!(json["meta"]["api-version"], "1.1");
    }
}
