//! The XML documents S3 answers with, as botocore's `service-2.json` (2006-03-01) shapes
//! them: ListAllMyBucketsResult, ListBucketResult (v1 and v2), LocationConstraint, and
//! the text escaping every one of them (and the error body) uses.

use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// `encoding-type=url` escaping: what the unreserved set and `/` leave, as `%XX` (a space
/// is `%20`, a `+` `%2B`, so both `unquote` and `unquote_plus` decode it).
const URL_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Text for an element's content or an attribute: the five XML escapes, and characters
/// XML cannot carry literally (controls; `\r`, which parsers would fold) as references.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => {
                let _ = write!(out, "&#x{:X};", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// The last millisecond of year 9999: the formatter has no later date.
const LAST_DATE: Duration = Duration::from_millis(253_402_300_799_999);

/// ISO 8601 with milliseconds, as S3 writes `LastModified` and `CreationDate`. Clamped
/// to 1970..=9999, where the formatter would otherwise panic (a recorded date is data).
pub fn timestamp(t: SystemTime) -> String {
    let since = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .min(LAST_DATE);
    humantime::format_rfc3339_millis(UNIX_EPOCH + since).to_string()
}

/// `<name>text</name>`, escaped.
fn element(out: &mut String, name: &str, text: &str) {
    let _ = write!(out, "<{name}>{}</{name}>", escape(text));
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub id: String,
    pub display_name: String,
}

fn owner(out: &mut String, o: &Owner) {
    out.push_str("<Owner>");
    element(out, "ID", &o.id);
    element(out, "DisplayName", &o.display_name);
    out.push_str("</Owner>");
}

#[derive(Clone, Debug)]
pub struct Bucket {
    pub name: String,
    pub created: SystemTime,
}

/// The answer to ListBuckets.
pub fn list_all_my_buckets(o: &Owner, buckets: &[Bucket]) -> String {
    let mut out = format!("{DECLARATION}<ListAllMyBucketsResult xmlns=\"{NAMESPACE}\">");
    owner(&mut out, o);
    out.push_str("<Buckets>");
    for b in buckets {
        out.push_str("<Bucket>");
        element(&mut out, "Name", &b.name);
        element(&mut out, "CreationDate", &timestamp(b.created));
        out.push_str("</Bucket>");
    }
    out.push_str("</Buckets></ListAllMyBucketsResult>");
    out
}

/// The answer to GetBucketLocation: empty for `us-east-1`, as AWS answers it.
pub fn location_constraint(region: &str) -> String {
    let region = if region == "us-east-1" { "" } else { region };
    format!(
        "{DECLARATION}<LocationConstraint xmlns=\"{NAMESPACE}\">{}</LocationConstraint>",
        escape(region)
    )
}

#[derive(Clone, Debug)]
pub struct Object {
    pub key: String,
    pub last_modified: SystemTime,
    /// Without its quotes.
    pub etag: String,
    pub size: u64,
}

/// What distinguishes the two listing versions.
#[derive(Clone, Debug)]
pub enum Page {
    V1 {
        marker: String,
        /// Sent when truncated and a delimiter was given (without one, clients continue
        /// from the last key, as AWS documents).
        next_marker: Option<String>,
    },
    V2 {
        continuation_token: Option<String>,
        next_continuation_token: Option<String>,
        start_after: Option<String>,
        fetch_owner: bool,
    },
}

/// One page of ListObjects (v1) or ListObjectsV2.
#[derive(Clone, Debug)]
pub struct Listing {
    pub bucket: String,
    pub prefix: String,
    pub delimiter: Option<String>,
    pub max_keys: u32,
    /// `encoding-type=url` was asked for: keys, prefixes, the delimiter, markers and
    /// start-after are written URL-encoded (continuation tokens are not, as AWS does).
    pub url_encoded: bool,
    pub is_truncated: bool,
    pub contents: Vec<Object>,
    pub common_prefixes: Vec<String>,
    pub page: Page,
    /// Written in v1 always and in v2 with `fetch-owner=true`, as S3 does.
    pub owner: Owner,
}

impl Listing {
    fn text(&self, raw: &str) -> String {
        if self.url_encoded {
            percent_encode(raw.as_bytes(), URL_KEEP).to_string()
        } else {
            raw.to_string()
        }
    }

    /// The ListBucketResult document.
    pub fn to_xml(&self) -> String {
        let mut out = format!("{DECLARATION}<ListBucketResult xmlns=\"{NAMESPACE}\">");
        element(&mut out, "Name", &self.bucket);
        element(&mut out, "Prefix", &self.text(&self.prefix));
        let with_owner = match &self.page {
            Page::V1 {
                marker,
                next_marker,
            } => {
                element(&mut out, "Marker", &self.text(marker));
                if let Some(next) = next_marker {
                    element(&mut out, "NextMarker", &self.text(next));
                }
                true
            }
            Page::V2 {
                continuation_token,
                next_continuation_token,
                start_after,
                fetch_owner,
            } => {
                if let Some(token) = continuation_token {
                    element(&mut out, "ContinuationToken", token);
                }
                if let Some(token) = next_continuation_token {
                    element(&mut out, "NextContinuationToken", token);
                }
                if let Some(after) = start_after {
                    element(&mut out, "StartAfter", &self.text(after));
                }
                let count = self.contents.len() + self.common_prefixes.len();
                element(&mut out, "KeyCount", &count.to_string());
                *fetch_owner
            }
        };
        element(&mut out, "MaxKeys", &self.max_keys.to_string());
        if let Some(d) = &self.delimiter {
            element(&mut out, "Delimiter", &self.text(d));
        }
        if self.url_encoded {
            element(&mut out, "EncodingType", "url");
        }
        element(
            &mut out,
            "IsTruncated",
            if self.is_truncated { "true" } else { "false" },
        );
        for o in &self.contents {
            out.push_str("<Contents>");
            element(&mut out, "Key", &self.text(&o.key));
            element(&mut out, "LastModified", &timestamp(o.last_modified));
            element(&mut out, "ETag", &format!("\"{}\"", o.etag));
            element(&mut out, "Size", &o.size.to_string());
            if with_owner {
                owner(&mut out, &self.owner);
            }
            element(&mut out, "StorageClass", "STANDARD");
            out.push_str("</Contents>");
        }
        for p in &self.common_prefixes {
            out.push_str("<CommonPrefixes>");
            element(&mut out, "Prefix", &self.text(p));
            out.push_str("</CommonPrefixes>");
        }
        out.push_str("</ListBucketResult>");
        out
    }
}

#[cfg(test)]
#[path = "xml_tests.rs"]
mod tests;
