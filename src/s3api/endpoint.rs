//! Every S3 request as one typed `Endpoint`, parsed in one place from the method, the
//! Host, the raw path and the raw query, path-style (`/bucket/key`) or virtual-hosted
//! (`bucket.<domain>/key`). The reads this view serves carry their parsed parameters;
//! every other S3 operation is recognised by name and answered `NotImplemented`.

use super::error::{Code, Result, S3Error};
use super::query::{self, Param, QueryError};
use crate::auth::Action;
use http::{HeaderMap, Method};

/// AWS's limit on a key (UTF-8 bytes).
pub const MAX_KEY_LEN: usize = 1024;
/// The most keys one listing page returns, whatever `max-keys` asks.
pub const MAX_KEYS: u32 = 1000;

/// The parts of a request that say which operation it is.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub method: &'a Method,
    /// `Host` (HTTP/2: `:authority`), port included or not.
    pub host: Option<&'a str>,
    /// The raw path, percent escapes untouched.
    pub path: &'a str,
    /// The raw query without its `?`.
    pub query: &'a str,
    /// Only `x-amz-copy-source` is read: it tells CopyObject from PutObject.
    pub headers: &'a HeaderMap,
}

/// ListObjects (v1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListV1 {
    pub prefix: String,
    /// `None` also for an empty `delimiter=`, which S3 ignores.
    pub delimiter: Option<String>,
    pub marker: Option<String>,
    /// At most `MAX_KEYS`.
    pub max_keys: u32,
    pub url_encoded: bool,
}

/// ListObjectsV2.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListV2 {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub continuation_token: Option<String>,
    pub start_after: Option<String>,
    pub max_keys: u32,
    pub fetch_owner: bool,
    pub url_encoded: bool,
}

/// The `response-*` parameters of a signed GetObject: headers the answer must carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseHeaders {
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub content_type: Option<String>,
    pub expires: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /`
    ListBuckets,
    /// `HEAD /bucket`
    HeadBucket { bucket: String },
    /// `GET /bucket?location`
    GetBucketLocation { bucket: String },
    /// `GET /bucket`
    ListObjects { bucket: String, list: ListV1 },
    /// `GET /bucket?list-type=2`
    ListObjectsV2 { bucket: String, list: ListV2 },
    /// `HEAD /bucket/key`
    HeadObject {
        bucket: String,
        key: String,
        /// 1 to 10000; objects here are single-part, so only 1 exists.
        part_number: Option<u16>,
    },
    /// `GET /bucket/key`
    GetObject {
        bucket: String,
        key: String,
        part_number: Option<u16>,
        response_headers: ResponseHeaders,
    },
    /// Any other S3 operation, by its API name (`PutObject`, `GetObjectAcl`, ...).
    Unsupported {
        operation: &'static str,
        bucket: Option<String>,
    },
}

/// Bucket subresources: (query parameter, GET, PUT, DELETE operation).
type Subresource = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

#[rustfmt::skip]
const BUCKET_SUBRESOURCES: [Subresource; 23] = [
    ("accelerate", Some("GetBucketAccelerateConfiguration"), Some("PutBucketAccelerateConfiguration"), None),
    ("acl", Some("GetBucketAcl"), Some("PutBucketAcl"), None),
    ("analytics", Some("GetBucketAnalyticsConfiguration"), Some("PutBucketAnalyticsConfiguration"), Some("DeleteBucketAnalyticsConfiguration")),
    ("cors", Some("GetBucketCors"), Some("PutBucketCors"), Some("DeleteBucketCors")),
    ("encryption", Some("GetBucketEncryption"), Some("PutBucketEncryption"), Some("DeleteBucketEncryption")),
    ("intelligent-tiering", Some("GetBucketIntelligentTieringConfiguration"), Some("PutBucketIntelligentTieringConfiguration"), Some("DeleteBucketIntelligentTieringConfiguration")),
    ("inventory", Some("GetBucketInventoryConfiguration"), Some("PutBucketInventoryConfiguration"), Some("DeleteBucketInventoryConfiguration")),
    ("lifecycle", Some("GetBucketLifecycleConfiguration"), Some("PutBucketLifecycleConfiguration"), Some("DeleteBucketLifecycle")),
    ("logging", Some("GetBucketLogging"), Some("PutBucketLogging"), None),
    ("metrics", Some("GetBucketMetricsConfiguration"), Some("PutBucketMetricsConfiguration"), Some("DeleteBucketMetricsConfiguration")),
    ("notification", Some("GetBucketNotificationConfiguration"), Some("PutBucketNotificationConfiguration"), None),
    ("object-lock", Some("GetObjectLockConfiguration"), Some("PutObjectLockConfiguration"), None),
    ("ownershipControls", Some("GetBucketOwnershipControls"), Some("PutBucketOwnershipControls"), Some("DeleteBucketOwnershipControls")),
    ("policy", Some("GetBucketPolicy"), Some("PutBucketPolicy"), Some("DeleteBucketPolicy")),
    ("policyStatus", Some("GetBucketPolicyStatus"), None, None),
    ("publicAccessBlock", Some("GetPublicAccessBlock"), Some("PutPublicAccessBlock"), Some("DeletePublicAccessBlock")),
    ("replication", Some("GetBucketReplication"), Some("PutBucketReplication"), Some("DeleteBucketReplication")),
    ("requestPayment", Some("GetBucketRequestPayment"), Some("PutBucketRequestPayment"), None),
    ("tagging", Some("GetBucketTagging"), Some("PutBucketTagging"), Some("DeleteBucketTagging")),
    ("uploads", Some("ListMultipartUploads"), None, None),
    ("versioning", Some("GetBucketVersioning"), Some("PutBucketVersioning"), None),
    ("versions", Some("ListObjectVersions"), None, None),
    ("website", Some("GetBucketWebsite"), Some("PutBucketWebsite"), Some("DeleteBucketWebsite")),
];

#[rustfmt::skip]
const OBJECT_SUBRESOURCES: [Subresource; 6] = [
    ("acl", Some("GetObjectAcl"), Some("PutObjectAcl"), None),
    ("attributes", Some("GetObjectAttributes"), None, None),
    ("legal-hold", Some("GetObjectLegalHold"), Some("PutObjectLegalHold"), None),
    ("retention", Some("GetObjectRetention"), Some("PutObjectRetention"), None),
    ("tagging", Some("GetObjectTagging"), Some("PutObjectTagging"), Some("DeleteObjectTagging")),
    ("torrent", Some("GetObjectTorrent"), None, None),
];

fn invalid(message: impl Into<String>) -> S3Error {
    S3Error::new(Code::InvalidArgument, message)
}

/// The request's query pairs, with the lookups the parser needs.
struct Query(Vec<Param>);

impl Query {
    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|p| p.name_is(name))
    }

    /// The one value of `name`, as UTF-8; a repeated parameter is refused.
    fn get(&self, name: &str) -> Result<Option<String>> {
        let mut found = self.0.iter().filter(|p| p.name_is(name));
        let Some(first) = found.next() else {
            return Ok(None);
        };
        if found.next().is_some() {
            return Err(invalid(format!("the query parameter {name} is repeated")));
        }
        String::from_utf8(first.value.clone())
            .map(Some)
            .map_err(|_| invalid(format!("the query parameter {name} is not UTF-8")))
    }

    fn subresource(&self, table: &[Subresource]) -> Option<Subresource> {
        table.iter().copied().find(|(name, ..)| self.has(name))
    }
}

impl Endpoint {
    /// `domain` is the base of virtual-hosted names (`s3.example.org` makes
    /// `models.s3.example.org` the bucket `models`); without it, or for any other host,
    /// the bucket is the first path segment.
    pub fn parse(target: &Target<'_>, domain: Option<&str>) -> Result<Endpoint> {
        let params = query::parse(target.query).map_err(|e| match e {
            QueryError::TooLong => invalid("the query string is too long"),
            QueryError::TooManyParams => invalid("too many query parameters"),
        })?;
        let query = Query(params);
        let path = target.path.strip_prefix('/').unwrap_or(target.path);
        let (bucket, raw_key) = match domain.and_then(|d| virtual_bucket(target.host?, d)) {
            Some(bucket) => (Some(bucket), path),
            None => match path.split_once('/') {
                Some((bucket, key)) => (Some(bucket.to_string()), key),
                None if path.is_empty() => (None, ""),
                None => (Some(path.to_string()), ""),
            },
        };
        let Some(bucket) = bucket else {
            return match *target.method {
                Method::GET => Ok(Endpoint::ListBuckets),
                _ => Err(not_allowed(target.method)),
            };
        };
        check_bucket_name(&bucket)?;
        if raw_key.is_empty() {
            return bucket_endpoint(target, &query, bucket);
        }
        let key = decode_key(raw_key)?;
        object_endpoint(target, &query, bucket, key)
    }

    /// What the caller's token needs: read for every operation served; `None` for the
    /// ones answered `NotImplemented` without touching anything.
    pub fn action(&self) -> Option<Action> {
        match self {
            Endpoint::Unsupported { .. } => None,
            _ => Some(Action::Read),
        }
    }

    pub fn bucket(&self) -> Option<&str> {
        match self {
            Endpoint::ListBuckets => None,
            Endpoint::Unsupported { bucket, .. } => bucket.as_deref(),
            Endpoint::HeadBucket { bucket }
            | Endpoint::GetBucketLocation { bucket }
            | Endpoint::ListObjects { bucket, .. }
            | Endpoint::ListObjectsV2 { bucket, .. }
            | Endpoint::HeadObject { bucket, .. }
            | Endpoint::GetObject { bucket, .. } => Some(bucket),
        }
    }

    /// The S3 API name of the operation, for logs and metrics.
    pub fn operation(&self) -> &'static str {
        match self {
            Endpoint::ListBuckets => "ListBuckets",
            Endpoint::HeadBucket { .. } => "HeadBucket",
            Endpoint::GetBucketLocation { .. } => "GetBucketLocation",
            Endpoint::ListObjects { .. } => "ListObjects",
            Endpoint::ListObjectsV2 { .. } => "ListObjectsV2",
            Endpoint::HeadObject { .. } => "HeadObject",
            Endpoint::GetObject { .. } => "GetObject",
            Endpoint::Unsupported { operation, .. } => operation,
        }
    }
}

fn not_allowed(method: &Method) -> S3Error {
    S3Error::new(
        Code::MethodNotAllowed,
        format!("the specified method {method} is not allowed against this resource"),
    )
}

/// `models.s3.example.org[:port]` under `s3.example.org`: `models`.
fn virtual_bucket(host: &str, domain: &str) -> Option<String> {
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let host = host.to_ascii_lowercase();
    let bucket = host
        .strip_suffix(&domain.to_ascii_lowercase())?
        .strip_suffix('.')?;
    (!bucket.is_empty()).then(|| bucket.to_string())
}

/// S3's bucket naming rules: 3 to 63 of `a-z 0-9 . -`, starting and ending alphanumeric.
fn check_bucket_name(bucket: &str) -> Result<()> {
    let b = bucket.as_bytes();
    let valid = (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric();
    if valid {
        Ok(())
    } else {
        Err(
            S3Error::new(Code::InvalidBucketName, "the specified bucket is not valid")
                .with_resource(format!("/{}", bucket.chars().take(64).collect::<String>())),
        )
    }
}

/// A key percent-decoded once; it must be UTF-8, at most `MAX_KEY_LEN` bytes, no NUL.
fn decode_key(raw: &str) -> Result<String> {
    // Decoding never lengthens, so a raw path three times the limit cannot fit.
    if raw.len() > 3 * MAX_KEY_LEN {
        return Err(key_too_long());
    }
    let key = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| invalid("the object key is not valid UTF-8"))?;
    if key.len() > MAX_KEY_LEN {
        return Err(key_too_long());
    }
    if key.contains('\0') {
        return Err(invalid("the object key contains a NUL character"));
    }
    Ok(key.into_owned())
}

fn key_too_long() -> S3Error {
    S3Error::new(
        Code::KeyTooLongError,
        format!("your key is too long (at most {MAX_KEY_LEN} bytes)"),
    )
}

/// The operation a subresource names for this method, or a refusal.
fn by_method(
    method: &Method,
    (_, get, put, delete): Subresource,
    bucket: String,
) -> Result<Endpoint> {
    let operation = match *method {
        Method::GET | Method::HEAD => get,
        Method::PUT => put,
        Method::DELETE => delete,
        _ => None,
    };
    operation
        .map(|operation| Endpoint::Unsupported {
            operation,
            bucket: Some(bucket),
        })
        .ok_or_else(|| not_allowed(method))
}

fn unsupported(operation: &'static str, bucket: String) -> Result<Endpoint> {
    Ok(Endpoint::Unsupported {
        operation,
        bucket: Some(bucket),
    })
}

fn bucket_endpoint(target: &Target<'_>, query: &Query, bucket: String) -> Result<Endpoint> {
    let method = target.method;
    if *method == Method::GET && query.has("location") {
        return Ok(Endpoint::GetBucketLocation { bucket });
    }
    if let Some(sub) = query.subresource(&BUCKET_SUBRESOURCES) {
        if *method != Method::HEAD {
            return by_method(method, sub, bucket);
        }
    }
    match *method {
        Method::HEAD => Ok(Endpoint::HeadBucket { bucket }),
        Method::GET => match query.get("list-type")?.as_deref() {
            Some("2") => Ok(Endpoint::ListObjectsV2 {
                bucket,
                list: list_v2(query)?,
            }),
            Some(other) => Err(invalid(format!("list-type `{other}` is not 2"))),
            None => Ok(Endpoint::ListObjects {
                bucket,
                list: list_v1(query)?,
            }),
        },
        Method::PUT => unsupported("CreateBucket", bucket),
        Method::DELETE => unsupported("DeleteBucket", bucket),
        Method::POST if query.has("delete") => unsupported("DeleteObjects", bucket),
        Method::POST => unsupported("PostObject", bucket),
        Method::OPTIONS => unsupported("Options", bucket),
        _ => Err(not_allowed(method)),
    }
}

fn object_endpoint(
    target: &Target<'_>,
    query: &Query,
    bucket: String,
    key: String,
) -> Result<Endpoint> {
    let method = target.method;
    let upload = query.has("uploadId");
    if let Some(sub) = query.subresource(&OBJECT_SUBRESOURCES) {
        if *method != Method::HEAD {
            return by_method(method, sub, bucket);
        }
    }
    match *method {
        Method::GET if upload => unsupported("ListParts", bucket),
        Method::GET | Method::HEAD => {
            if let Some(version) = query.get("versionId")? {
                // `null` names the only version an unversioned bucket has.
                if version != "null" {
                    return Err(invalid("invalid version id specified")
                        .with_resource(format!("/{bucket}/{key}")));
                }
            }
            let part_number = part_number(query)?;
            if *method == Method::HEAD {
                return Ok(Endpoint::HeadObject {
                    bucket,
                    key,
                    part_number,
                });
            }
            Ok(Endpoint::GetObject {
                bucket,
                key,
                part_number,
                response_headers: response_headers(query)?,
            })
        }
        Method::PUT => {
            let copy = target.headers.contains_key("x-amz-copy-source");
            let operation = match (upload, copy) {
                (true, true) => "UploadPartCopy",
                (true, false) => "UploadPart",
                (false, true) => "CopyObject",
                (false, false) => "PutObject",
            };
            unsupported(operation, bucket)
        }
        Method::POST if query.has("uploads") => unsupported("CreateMultipartUpload", bucket),
        Method::POST if upload => unsupported("CompleteMultipartUpload", bucket),
        Method::POST if query.has("restore") => unsupported("RestoreObject", bucket),
        Method::POST if query.has("select") => unsupported("SelectObjectContent", bucket),
        Method::DELETE if upload => unsupported("AbortMultipartUpload", bucket),
        Method::DELETE => unsupported("DeleteObject", bucket),
        Method::OPTIONS => unsupported("Options", bucket),
        _ => Err(not_allowed(method)),
    }
}

fn part_number(query: &Query) -> Result<Option<u16>> {
    let Some(text) = query.get("partNumber")? else {
        return Ok(None);
    };
    match text.parse::<u16>() {
        Ok(n @ 1..=10000) if text.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
        _ => Err(invalid(
            "part number must be an integer between 1 and 10000, inclusive",
        )),
    }
}

fn max_keys(query: &Query) -> Result<u32> {
    let Some(text) = query.get("max-keys")? else {
        return Ok(MAX_KEYS);
    };
    let digits = !text.is_empty() && text.len() <= 10 && text.bytes().all(|b| b.is_ascii_digit());
    let n: u64 = digits
        .then(|| text.parse().ok())
        .flatten()
        .ok_or_else(|| invalid("provided max-keys not an integer or within integer range"))?;
    Ok(n.min(u64::from(MAX_KEYS)) as u32)
}

fn url_encoded(query: &Query) -> Result<bool> {
    match query.get("encoding-type")?.as_deref() {
        None => Ok(false),
        Some("url") => Ok(true),
        Some(_) => Err(invalid("invalid Encoding Method specified in Request")),
    }
}

fn delimiter(query: &Query) -> Result<Option<String>> {
    Ok(query.get("delimiter")?.filter(|d| !d.is_empty()))
}

fn list_v1(query: &Query) -> Result<ListV1> {
    Ok(ListV1 {
        prefix: query.get("prefix")?.unwrap_or_default(),
        delimiter: delimiter(query)?,
        marker: query.get("marker")?.filter(|m| !m.is_empty()),
        max_keys: max_keys(query)?,
        url_encoded: url_encoded(query)?,
    })
}

fn list_v2(query: &Query) -> Result<ListV2> {
    let continuation_token = query.get("continuation-token")?;
    if continuation_token.as_deref() == Some("") {
        return Err(invalid("the continuation token provided is incorrect"));
    }
    let fetch_owner = match query.get("fetch-owner")?.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(invalid("fetch-owner must be true or false")),
    };
    Ok(ListV2 {
        prefix: query.get("prefix")?.unwrap_or_default(),
        delimiter: delimiter(query)?,
        continuation_token,
        start_after: query.get("start-after")?.filter(|s| !s.is_empty()),
        max_keys: max_keys(query)?,
        fetch_owner,
        url_encoded: url_encoded(query)?,
    })
}

fn response_headers(query: &Query) -> Result<ResponseHeaders> {
    let header = |name: &str| -> Result<Option<String>> {
        let value = query.get(name)?;
        if let Some(v) = &value {
            http::HeaderValue::from_str(v)
                .map_err(|_| invalid(format!("{name} is not a valid header value")))?;
        }
        Ok(value)
    };
    Ok(ResponseHeaders {
        cache_control: header("response-cache-control")?,
        content_disposition: header("response-content-disposition")?,
        content_encoding: header("response-content-encoding")?,
        content_language: header("response-content-language")?,
        content_type: header("response-content-type")?,
        expires: header("response-expires")?,
    })
}

#[cfg(test)]
#[path = "endpoint_tests.rs"]
mod tests;
