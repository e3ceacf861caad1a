//! The S3 view's parsers of untrusted input (`airlock::s3api`) on hostile requests: any
//! Authorization header, query, Host and path gives an answer, never a panic; what is
//! accepted stays within the parsers' bounds; the largest inputs they accept are parsed
//! in time proportional to their size, and larger ones are refused before any work.

use airlock::auth::S3Secret;
use airlock::s3api::endpoint::{Endpoint, Target, MAX_KEYS, MAX_KEY_LEN};
use airlock::s3api::query::{self, MAX_QUERY_LEN, MAX_QUERY_PARAMS};
use airlock::s3api::sigv4::{self, Caller, Request, SigError, MAX_AUTHORIZATION_LEN};
use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// 2026-12-04T03:30:00Z, when the boto3 fixtures were signed.
fn fixture_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_796_355_000)
}

fn secret(_: &str) -> Option<S3Secret> {
    Some(S3Secret::from("reader-secret-0123456789"))
}

fn authenticate(
    method: &Method,
    path: &str,
    q: &str,
    headers: &HeaderMap,
) -> Result<Caller, SigError> {
    let req = Request {
        method,
        path,
        query: q,
        headers,
    };
    sigv4::authenticate(&req, fixture_now(), secret)
}

fn parse_endpoint(method: &Method, host: &str, path: &str, q: &str) -> bool {
    let headers = HeaderMap::new();
    let target = Target {
        method,
        host: Some(host),
        path,
        query: q,
        headers: &headers,
    };
    match Endpoint::parse(&target, Some("s3.airlock.test")) {
        Ok(Endpoint::GetObject { key, .. }) | Ok(Endpoint::HeadObject { key, .. }) => {
            assert!(key.len() <= MAX_KEY_LEN && !key.contains('\0'));
            true
        }
        Ok(Endpoint::ListObjects { list, .. }) => {
            assert!(list.max_keys <= MAX_KEYS);
            true
        }
        Ok(Endpoint::ListObjectsV2 { list, .. }) => {
            assert!(list.max_keys <= MAX_KEYS);
            true
        }
        Ok(_) => true,
        Err(e) => {
            assert!(!e.message.is_empty());
            false
        }
    }
}

/// A header-signed ListObjectsV2 from the boto3 fixture, to mutate.
const SIGNED_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=reader/20261204/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=";

fn signed_headers(authorization: &[u8]) -> Option<HeaderMap> {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("127.0.0.1:9000"));
    h.insert("x-amz-date", HeaderValue::from_static("20261204T033000Z"));
    h.insert(
        "x-amz-content-sha256",
        HeaderValue::from_static(
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
    );
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_bytes(authorization).ok()?,
    );
    Some(h)
}

fn auth_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,300}",
        "AWS4-HMAC-SHA256 ((Credential|SignedHeaders|Signature)=[a-z0-9/;,= _-]{0,80}, ?){0,5}",
        Just(SIGNED_AUTHORIZATION.to_string())
            .prop_flat_map(|base| { "[0-9a-f]{0,70}".prop_map(move |sig| format!("{base}{sig}")) }),
    ]
}

fn query_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,300}",
        "((X-Amz-[A-Za-z]{0,12}|list-type|prefix|max-keys|delimiter|encoding-type|partNumber|versionId|acl|uploads)(=[%0-9A-Za-z+/_.-]{0,40})?&?){0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any Authorization header and query: an answer, and never a caller without a
    /// signature the secret made (a random signature does not verify).
    #[test]
    fn sigv4_never_panics(auth in auth_text(), q in query_text(), method in prop_oneof![Just(Method::GET), Just(Method::HEAD), Just(Method::PUT)]) {
        if let Some(headers) = signed_headers(auth.as_bytes()) {
            let r = authenticate(&method, "/models", &q, &headers);
            prop_assert!(!matches!(r, Ok(Caller::Key(_))), "{auth} {q}");
        }
        let r = authenticate(&method, "/models", &q, &HeaderMap::new());
        prop_assert!(!matches!(r, Ok(Caller::Key(_))), "{q}");
    }

    /// Any raw bytes as the header: no panic.
    #[test]
    fn sigv4_header_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Some(headers) = signed_headers(&bytes) {
            let _ = authenticate(&Method::GET, "/", "", &headers);
        }
    }

    /// Any query: at most MAX_QUERY_PARAMS pairs, no decoded part longer than its text.
    #[test]
    fn query_parser_bounded(q in "[ -~]{0,600}") {
        if let Ok(params) = query::parse(&q) {
            prop_assert!(params.len() <= MAX_QUERY_PARAMS);
            for p in params {
                prop_assert!(p.name.len() + p.value.len() <= q.len());
            }
        }
    }

    /// Any method, Host, path and query: an endpoint or an S3 error, within bounds.
    #[test]
    fn endpoint_parser_never_panics(
        method in prop_oneof![Just(Method::GET), Just(Method::HEAD), Just(Method::PUT), Just(Method::POST), Just(Method::DELETE), Just(Method::OPTIONS), Just(Method::PATCH)],
        host in "([a-z0-9.-]{0,20}\\.)?s3\\.airlock\\.test(:[0-9]{1,5})?|[ -~]{0,30}",
        path in "/[ -~]{0,200}|/(models|datasets)(/[%0-9A-Fa-f/a-z. ]{0,80})?",
        q in query_text(),
    ) {
        parse_endpoint(&method, &host, &path, &q);
    }
}

/// The largest inputs each parser accepts, and inputs just over its limits: answered in
/// well under a second each (quadratic work on 16 KiB would take far longer), the larger
/// ones refused.
#[test]
fn worst_cases_are_linear_and_limits_hold() {
    let started = Instant::now();
    // A query at the length limit made of separators and escapes.
    let q = "%25&".repeat(MAX_QUERY_LEN / 4);
    assert!(
        query::parse(&q).is_err(),
        "more than MAX_QUERY_PARAMS pairs"
    );
    let q = "%2".repeat(MAX_QUERY_LEN / 2);
    assert_eq!(query::parse(&q).unwrap().len(), 1);
    assert!(query::parse(&"a".repeat(MAX_QUERY_LEN + 1)).is_err());
    // A presigned query with every parameter at its longest.
    let presigned = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}&X-Amz-Date=20261204T033000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders={}&X-Amz-Signature=00",
        "a".repeat(8000),
        "h;".repeat(2000)
    );
    assert!(authenticate(&Method::GET, "/m/k", &presigned, &HeaderMap::new()).is_err());
    // Authorization headers at and over the limit.
    let components = ", Signature=0".repeat(MAX_AUTHORIZATION_LEN / 13);
    let at_limit = format!("AWS4-HMAC-SHA256 {components}");
    let headers = signed_headers(&at_limit.as_bytes()[..MAX_AUTHORIZATION_LEN]).unwrap();
    assert!(matches!(
        authenticate(&Method::GET, "/", "", &headers),
        Err(SigError::HeaderMalformed(_))
    ));
    let over = format!(
        "{SIGNED_AUTHORIZATION}{}",
        "0".repeat(MAX_AUTHORIZATION_LEN)
    );
    let headers = signed_headers(over.as_bytes()).unwrap();
    assert!(matches!(
        authenticate(&Method::GET, "/", "", &headers),
        Err(SigError::HeaderMalformed(m)) if m == "too long"
    ));
    // Keys: escapes at the decoded limit, and a path far over it.
    let key = "%C3%BC".repeat(MAX_KEY_LEN / 2);
    assert!(parse_endpoint(
        &Method::GET,
        "h",
        &format!("/models/{key}"),
        ""
    ));
    let huge = "%41".repeat(1 << 16);
    assert!(!parse_endpoint(
        &Method::GET,
        "h",
        &format!("/models/{huge}"),
        ""
    ));
    assert!(!parse_endpoint(&Method::GET, "h", &format!("/{huge}"), ""));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "worst cases took {:?}",
        started.elapsed()
    );
}
