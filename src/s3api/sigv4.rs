//! AWS Signature Version 4 as S3 servers verify it, for what readers send: the
//! `Authorization: AWS4-HMAC-SHA256 ...` header with `x-amz-date` and
//! `x-amz-content-sha256`, and presigned URLs (`X-Amz-Algorithm`, `X-Amz-Credential`,
//! `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders`, `X-Amz-Signature`).
//!
//! The canonical request follows the S3 flavour of the spec: the path exactly as received
//! (S3 neither normalizes nor double-encodes it, and every S3 client signs the path it
//! sends), query pairs decoded once, re-encoded with the SigV4 rules and sorted, header
//! values trimmed with inner runs of spaces collapsed. Any region is accepted as sent;
//! the service must be `s3`. The caller hands the raw request parts and `now`; the
//! listener must pass HTTP/2's `:authority` as `host`.

use super::error::Code;
use super::query::{self, aws_encode, Param, QueryError};
use crate::auth::S3Secret;
use hmac::{Hmac, Mac};
use http::{HeaderMap, Method};
use sha2::{Digest as _, Sha256};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// The sha256 of an empty body: what a signed GET or HEAD carries.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// How far a header-signed request's date may be from ours (AWS: 15 minutes).
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
/// The longest validity of a presigned URL (AWS: seven days).
pub const MAX_PRESIGNED_EXPIRES: u64 = 7 * 24 * 3600;
/// An `Authorization` header longer than this is refused unparsed (botocore's are ~300).
pub const MAX_AUTHORIZATION_LEN: usize = 4096;
/// More signed headers than this are refused (botocore signs four to six).
pub const MAX_SIGNED_HEADERS: usize = 32;
/// The signed header values together may not exceed this.
pub const MAX_SIGNED_HEADER_BYTES: usize = 32 * 1024;
const MAX_CREDENTIAL_PART: usize = 128;

/// The parts of a request a signature covers, as received.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: &'a Method,
    /// The raw path, percent escapes untouched.
    pub path: &'a str,
    /// The raw query without its `?` (empty if none).
    pub query: &'a str,
    pub headers: &'a HeaderMap,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// No signature at all: the caller decides whether anonymous reads are allowed.
    Anonymous,
    /// A valid signature by this access key id.
    Key(String),
}

/// Why a signature was refused; `code()` names the S3 error AWS answers with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("the authorization header is malformed: {0}")]
    HeaderMalformed(String),
    #[error("error parsing the X-Amz-Credential parameters: {0}")]
    QueryMalformed(String),
    #[error("the authorization mechanism you have provided is not supported; please use AWS4-HMAC-SHA256")]
    UnsupportedMechanism,
    #[error("only one auth mechanism allowed: the X-Amz-Algorithm query parameter or the Authorization header")]
    MultipleMechanisms,
    #[error("AWS authentication requires a valid x-amz-date header")]
    MissingDate,
    #[error("missing required header for this request: x-amz-content-sha256")]
    MissingContentSha256,
    #[error("x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a sha256 in lower-case hex")]
    InvalidContentSha256,
    #[error("this S3 API is read-only: requests with a body are not implemented")]
    BodyNotSupported,
    #[error("there were headers present in the request which were not signed: {0}")]
    UnsignedHeader(String),
    #[error("the signed header `{0}` is not in the request")]
    SignedHeaderMissing(String),
    #[error("the AWS access key id you provided does not exist in our records")]
    InvalidAccessKeyId,
    #[error("the request signature we calculated does not match the signature you provided; check your key and signing method")]
    SignatureDoesNotMatch,
    #[error("the difference between the request time and the current time is too large")]
    RequestTimeTooSkewed,
    #[error("request has expired")]
    Expired,
    #[error("request is not valid yet")]
    NotYetValid,
}

impl SigError {
    /// The S3 error code AWS answers with.
    pub fn code(&self) -> Code {
        match self {
            SigError::HeaderMalformed(_) => Code::AuthorizationHeaderMalformed,
            SigError::QueryMalformed(_) => Code::AuthorizationQueryParametersError,
            SigError::UnsupportedMechanism | SigError::MissingContentSha256 => Code::InvalidRequest,
            SigError::MultipleMechanisms | SigError::InvalidContentSha256 => Code::InvalidArgument,
            SigError::BodyNotSupported => Code::NotImplemented,
            SigError::MissingDate
            | SigError::UnsignedHeader(_)
            | SigError::Expired
            | SigError::NotYetValid => Code::AccessDenied,
            SigError::SignedHeaderMissing(_) | SigError::SignatureDoesNotMatch => {
                Code::SignatureDoesNotMatch
            }
            SigError::InvalidAccessKeyId => Code::InvalidAccessKeyId,
            SigError::RequestTimeTooSkewed => Code::RequestTimeTooSkewed,
        }
    }
}

/// What differs between S3 and the generic AWS test suite.
struct Rules<'a> {
    service: &'a str,
    /// The generic suite's requests carry no `x-amz-content-sha256`; S3 requires it
    /// (`None`) and accepts only what a reader sends.
    body_sha256: Option<&'a str>,
}

const S3: Rules<'static> = Rules {
    service: "s3",
    body_sha256: None,
};

/// Who signed this request, checked against `secret_of(access key id)`.
pub fn authenticate(
    req: &Request<'_>,
    now: SystemTime,
    secret_of: impl FnOnce(&str) -> Option<S3Secret>,
) -> Result<Caller, SigError> {
    authenticate_with(&S3, req, now, secret_of)
}

fn authenticate_with(
    rules: &Rules<'_>,
    req: &Request<'_>,
    now: SystemTime,
    secret_of: impl FnOnce(&str) -> Option<S3Secret>,
) -> Result<Caller, SigError> {
    let params = query::parse(req.query).map_err(|e| match e {
        QueryError::TooLong => SigError::QueryMalformed("the query string is too long".into()),
        QueryError::TooManyParams => SigError::QueryMalformed("too many query parameters".into()),
    })?;
    let presigned = params.iter().any(|p| p.name_is("X-Amz-Algorithm"));
    let header = req.headers.get(http::header::AUTHORIZATION);
    let claim = match (presigned, header) {
        (true, Some(_)) => return Err(SigError::MultipleMechanisms),
        (true, None) => presigned_claim(rules, &params, now)?,
        (false, Some(value)) => header_claim(rules, value.as_bytes(), req.headers, now)?,
        (false, None) => {
            if params.iter().any(|p| p.name_is("AWSAccessKeyId")) {
                return Err(SigError::UnsupportedMechanism);
            }
            return Ok(Caller::Anonymous);
        }
    };
    if !claim.signed_headers.iter().any(|h| h == "host") {
        return Err(claim.malformed("the host header must be signed".into()));
    }
    for name in req.headers.keys() {
        let name = name.as_str();
        if name.starts_with("x-amz-") && !claim.signed_headers.iter().any(|h| h == name) {
            return Err(SigError::UnsignedHeader(name.to_string()));
        }
    }
    let canonical = canonical_request(req, &params, &claim)?;
    let secret = secret_of(&claim.credential.access_key_id).ok_or(SigError::InvalidAccessKeyId)?;
    let expected = signature(&secret, &claim, &canonical);
    if bool::from(expected.as_bytes().ct_eq(claim.signature.as_bytes())) {
        Ok(Caller::Key(claim.credential.access_key_id))
    } else {
        Err(SigError::SignatureDoesNotMatch)
    }
}

/// `<akid>/<yyyymmdd>/<region>/<service>/aws4_request`
#[derive(Debug)]
struct Credential {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
}

impl Credential {
    fn parse(text: &str, rules: &Rules<'_>) -> Result<Credential, String> {
        let parts: Vec<&str> = text.splitn(6, '/').collect();
        let [akid, date, region, service, terminal] = parts[..] else {
            return Err(format!(
                "`{text}` is not <key>/<date>/<region>/<service>/aws4_request"
            ));
        };
        if terminal != "aws4_request" {
            return Err(format!(
                "the credential scope ends in `{terminal}`, not aws4_request"
            ));
        }
        for part in [akid, date, region, service] {
            if part.is_empty() || part.len() > MAX_CREDENTIAL_PART {
                return Err("a credential part is empty or too long".into());
            }
        }
        if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("the credential date `{date}` is not YYYYMMDD"));
        }
        if service != rules.service {
            return Err(format!(
                "incorrect service `{service}`; this endpoint belongs to `{}`",
                rules.service
            ));
        }
        Ok(Credential {
            access_key_id: akid.to_string(),
            date: date.to_string(),
            region: region.to_string(),
            service: service.to_string(),
        })
    }

    fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// What a request says about its own signature.
#[derive(Debug)]
struct Claim {
    presigned: bool,
    credential: Credential,
    /// `YYYYMMDDTHHMMSSZ`, as signed.
    amz_date: String,
    signed_headers: Vec<String>,
    signature: String,
    payload_hash: String,
}

impl Claim {
    fn malformed(&self, why: String) -> SigError {
        if self.presigned {
            SigError::QueryMalformed(why)
        } else {
            SigError::HeaderMalformed(why)
        }
    }
}

fn header_claim(
    rules: &Rules<'_>,
    value: &[u8],
    headers: &HeaderMap,
    now: SystemTime,
) -> Result<Claim, SigError> {
    let bad = |why: &str| SigError::HeaderMalformed(why.to_string());
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(bad("too long"));
    }
    let value = std::str::from_utf8(value).map_err(|_| bad("not UTF-8"))?;
    let (algorithm, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if algorithm != ALGORITHM {
        return Err(SigError::UnsupportedMechanism);
    }
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for component in rest.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let (key, val) = component
            .split_once('=')
            .ok_or_else(|| bad("a component is not key=value"))?;
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => return Err(bad("unknown component")),
        };
        if slot.replace(val).is_some() {
            return Err(bad("a component is repeated"));
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(bad(
            "Credential, SignedHeaders and Signature are all required",
        ));
    };
    let credential = Credential::parse(credential, rules).map_err(SigError::HeaderMalformed)?;
    let signed_headers = parse_signed_headers(signed).map_err(SigError::HeaderMalformed)?;

    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or(SigError::MissingDate)?;
    let signed_at = parse_amz_date(amz_date).ok_or(SigError::MissingDate)?;
    check_scope_date(&credential, amz_date).map_err(SigError::HeaderMalformed)?;
    let now = unix_seconds(now);
    if now.abs_diff(signed_at) > MAX_SKEW.as_secs() {
        return Err(SigError::RequestTimeTooSkewed);
    }

    let content = headers.get("x-amz-content-sha256").map(|v| v.as_bytes());
    let payload_hash = match (content, rules.body_sha256) {
        (Some(v), Some(_)) => String::from_utf8_lossy(v).into_owned(),
        (None, Some(body)) => body.to_string(),
        (None, None) => return Err(SigError::MissingContentSha256),
        (Some(v), None) if v == UNSIGNED_PAYLOAD.as_bytes() || v == EMPTY_SHA256.as_bytes() => {
            String::from_utf8_lossy(v).into_owned()
        }
        (Some(v), None) if is_lower_hex_sha256(v) || v.starts_with(b"STREAMING-") => {
            return Err(SigError::BodyNotSupported)
        }
        (Some(_), None) => return Err(SigError::InvalidContentSha256),
    };
    Ok(Claim {
        presigned: false,
        credential,
        amz_date: amz_date.to_string(),
        signed_headers,
        signature: signature.to_string(),
        payload_hash,
    })
}

fn presigned_claim(
    rules: &Rules<'_>,
    params: &[Param],
    now: SystemTime,
) -> Result<Claim, SigError> {
    let bad = |why: String| SigError::QueryMalformed(why);
    let one = |name: &str| -> Result<&str, SigError> {
        let mut found = params.iter().filter(|p| p.name_is(name));
        let value = found
            .next()
            .ok_or_else(|| bad(format!("the query parameter {name} is missing")))?;
        if found.next().is_some() {
            return Err(bad(format!("the query parameter {name} is repeated")));
        }
        std::str::from_utf8(&value.value).map_err(|_| bad(format!("{name} is not UTF-8")))
    };
    if one("X-Amz-Algorithm")? != ALGORITHM {
        return Err(bad("X-Amz-Algorithm only supports AWS4-HMAC-SHA256".into()));
    }
    let credential = Credential::parse(one("X-Amz-Credential")?, rules).map_err(bad)?;
    let amz_date = one("X-Amz-Date")?;
    let signed_at = parse_amz_date(amz_date)
        .ok_or_else(|| bad("X-Amz-Date must be in the ISO8601 long format".into()))?;
    check_scope_date(&credential, amz_date).map_err(bad)?;
    let expires = one("X-Amz-Expires")?;
    let expires: u64 =
        (!expires.is_empty() && expires.len() <= 7 && expires.bytes().all(|b| b.is_ascii_digit()))
            .then(|| expires.parse().ok())
            .flatten()
            .ok_or_else(|| bad("X-Amz-Expires should be a number".into()))?;
    if expires > MAX_PRESIGNED_EXPIRES {
        return Err(bad(format!(
            "X-Amz-Expires must be less than a week (in seconds) that is; {MAX_PRESIGNED_EXPIRES}"
        )));
    }
    let signed_headers = parse_signed_headers(one("X-Amz-SignedHeaders")?).map_err(bad)?;
    let signature = one("X-Amz-Signature")?;

    let now = unix_seconds(now);
    if now.saturating_add(MAX_SKEW.as_secs()) < signed_at {
        return Err(SigError::NotYetValid);
    }
    if now > signed_at.saturating_add(expires) {
        return Err(SigError::Expired);
    }
    Ok(Claim {
        presigned: true,
        credential,
        amz_date: amz_date.to_string(),
        signed_headers,
        signature: signature.to_string(),
        payload_hash: UNSIGNED_PAYLOAD.to_string(),
    })
}

/// `host;x-amz-date`: lower-case names, as many as `MAX_SIGNED_HEADERS`.
fn parse_signed_headers(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for name in text.split(';') {
        if out.len() == MAX_SIGNED_HEADERS {
            return Err(format!("more than {MAX_SIGNED_HEADERS} signed headers"));
        }
        let valid = !name.is_empty()
            && name.len() <= MAX_CREDENTIAL_PART
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
            });
        if !valid {
            return Err(format!("`{name}` is not a lower-case header name"));
        }
        out.push(name.to_string());
    }
    Ok(out)
}

fn check_scope_date(credential: &Credential, amz_date: &str) -> Result<(), String> {
    if amz_date.get(..8) == Some(credential.date.as_str()) {
        Ok(())
    } else {
        Err(format!(
            "the credential date `{}` does not match the request date `{amz_date}`",
            credential.date
        ))
    }
}

/// The canonical request of SigV4 for S3 (see the module comment).
fn canonical_request(
    req: &Request<'_>,
    params: &[Param],
    claim: &Claim,
) -> Result<String, SigError> {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .filter(|p| !(claim.presigned && p.name_is("X-Amz-Signature")))
        .map(|p| (aws_encode(&p.name), aws_encode(&p.value)))
        .collect();
    pairs.sort();
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");

    let mut headers = String::new();
    for name in &claim.signed_headers {
        let mut values = req.headers.get_all(name.as_str()).iter().peekable();
        if values.peek().is_none() {
            return Err(SigError::SignedHeaderMissing(name.clone()));
        }
        headers.push_str(name);
        headers.push(':');
        for (i, value) in values.enumerate() {
            if i > 0 {
                headers.push(',');
            }
            push_collapsed(&mut headers, value.as_bytes());
        }
        headers.push('\n');
        if headers.len() > MAX_SIGNED_HEADER_BYTES {
            return Err(claim.malformed("the signed headers are too long".into()));
        }
    }
    let path = if req.path.is_empty() { "/" } else { req.path };
    Ok(format!(
        "{}\n{path}\n{query}\n{headers}\n{}\n{}",
        req.method.as_str(),
        claim.signed_headers.join(";"),
        claim.payload_hash
    ))
}

/// A header value trimmed, each run of spaces and tabs inside it one space.
fn push_collapsed(out: &mut String, value: &[u8]) {
    let text = String::from_utf8_lossy(value);
    let mut words = text.split([' ', '\t']).filter(|w| !w.is_empty()).peekable();
    while let Some(word) = words.next() {
        out.push_str(word);
        if words.peek().is_some() {
            out.push(' ');
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The lower-case hex signature a client holding `secret` computes for `canonical`.
fn signature(secret: &S3Secret, claim: &Claim, canonical: &str) -> String {
    let c = &claim.credential;
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{}\n{}",
        claim.amz_date,
        c.scope(),
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = format!("AWS4{}", secret.expose());
    let key = hmac(key.as_bytes(), c.date.as_bytes());
    let key = hmac(&key, c.region.as_bytes());
    let key = hmac(&key, c.service.as_bytes());
    let key = hmac(&key, b"aws4_request");
    hex::encode(hmac(&key, string_to_sign.as_bytes()))
}

fn is_lower_hex_sha256(v: &[u8]) -> bool {
    v.len() == 64
        && v.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `YYYYMMDDTHHMMSSZ` as seconds since the epoch.
pub fn parse_amz_date(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, min, sec) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if year < 1970 || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    if hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86400 + hour * 3600 + min * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[path = "sigv4_tests.rs"]
mod tests;
