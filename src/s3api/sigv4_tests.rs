//! The AWS SigV4 test suite (tests/data/s3/aws-sig-v4-test-suite, the cases S3's rules
//! apply to) and requests boto3 signed (tests/data/s3/sigv4_boto3.json, made by
//! make_sigv4_fixtures.py next to it).

use super::*;
use http::{HeaderName, HeaderValue};
use std::path::PathBuf;

fn data(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/s3")
        .join(path)
}

fn at(amz_date: &str) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(parse_amz_date(amz_date).unwrap())
}

struct Owned {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
}

impl Owned {
    fn req(&self) -> Request<'_> {
        Request {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
        }
    }
}

fn split_target(target: &str) -> (String, String) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    (path.to_string(), query.to_string())
}

/// A `.req` of the suite: request line, `Name:value` lines, blank line, body.
fn suite_request(text: &str) -> (Owned, Vec<u8>) {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    let mut words = request_line.split(' ');
    let method: Method = words.next().unwrap().parse().unwrap();
    let (path, query) = split_target(words.next().unwrap());
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let owned = Owned {
        method,
        path,
        query,
        headers,
    };
    (owned, body.as_bytes().to_vec())
}

const SUITE_CASES: [&str; 20] = [
    "get-header-key-duplicate",
    "get-header-value-order",
    "get-header-value-trim",
    "get-unreserved",
    "get-vanilla",
    "get-vanilla-empty-query-key",
    "get-vanilla-query",
    "get-vanilla-query-order-key",
    "get-vanilla-query-order-key-case",
    "get-vanilla-query-order-value",
    "get-vanilla-query-unreserved",
    "get-vanilla-utf8-query",
    "post-header-key-case",
    "post-header-key-sort",
    "post-header-value-case",
    "post-vanilla",
    "post-vanilla-empty-query-value",
    "post-vanilla-query",
    "post-sts-header-before",
    "post-sts-header-after",
];

const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn suite_lookup(akid: &str) -> Option<S3Secret> {
    (akid == "AKIDEXAMPLE").then(|| S3Secret::from(SUITE_SECRET))
}

#[test]
fn aws_test_suite_canonical_requests_and_signatures() {
    let dir = data("aws-sig-v4-test-suite");
    for case in SUITE_CASES {
        let read = |ext: &str| std::fs::read_to_string(dir.join(format!("{case}.{ext}"))).unwrap();
        let (mut owned, body) = suite_request(&read("req"));
        let body_hash = hex::encode(Sha256::digest(&body));
        let rules = Rules {
            service: "service",
            body_sha256: Some(&body_hash),
        };
        owned
            .headers
            .insert(http::header::AUTHORIZATION, read("authz").parse().unwrap());
        let now = at("20150830T123600Z");

        let claim = header_claim(&rules, read("authz").as_bytes(), &owned.headers, now).unwrap();
        let params = query::parse(&owned.query).unwrap();
        let canonical = canonical_request(&owned.req(), &params, &claim).unwrap();
        assert_eq!(canonical, read("creq"), "{case}: canonical request");

        let caller = authenticate_with(&rules, &owned.req(), now, suite_lookup);
        assert_eq!(caller, Ok(Caller::Key("AKIDEXAMPLE".into())), "{case}");

        // One byte of the signature changed, or another secret: refused.
        let mut wrong = read("authz");
        let last = wrong.pop().unwrap();
        wrong.push(if last == '0' { '1' } else { '0' });
        owned
            .headers
            .insert(http::header::AUTHORIZATION, wrong.parse().unwrap());
        assert_eq!(
            authenticate_with(&rules, &owned.req(), now, suite_lookup),
            Err(SigError::SignatureDoesNotMatch),
            "{case}: forged"
        );
    }
}

#[test]
fn the_suite_under_s3_rules_needs_the_s3_service_and_a_content_hash() {
    let dir = data("aws-sig-v4-test-suite");
    let read = |ext: &str| std::fs::read_to_string(dir.join(format!("get-vanilla.{ext}"))).unwrap();
    let (mut owned, _) = suite_request(&read("req"));
    owned
        .headers
        .insert(http::header::AUTHORIZATION, read("authz").parse().unwrap());
    let now = at("20150830T123600Z");
    assert!(matches!(
        authenticate(&owned.req(), now, suite_lookup),
        Err(SigError::HeaderMalformed(m)) if m.contains("incorrect service")
    ));
    let rules = Rules {
        service: "service",
        body_sha256: None,
    };
    assert_eq!(
        authenticate_with(&rules, &owned.req(), now, suite_lookup),
        Err(SigError::MissingContentSha256)
    );
}

#[derive(serde::Deserialize)]
struct Boto {
    now: String,
    access_key_id: String,
    secret: String,
    requests: Vec<BotoRequest>,
}

#[derive(serde::Deserialize)]
struct BotoRequest {
    name: String,
    method: String,
    host: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
}

impl BotoRequest {
    fn owned(&self) -> Owned {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, self.host.parse().unwrap());
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            headers.insert(name, value.parse().unwrap());
        }
        Owned {
            method: self.method.parse().unwrap(),
            path: self.path.clone(),
            query: self.query.clone(),
            headers,
        }
    }
}

fn boto() -> Boto {
    let text = std::fs::read_to_string(data("sigv4_boto3.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn boto3_requests_verify_and_forgeries_do_not() {
    let boto = boto();
    let lookup =
        |akid: &str| (akid == boto.access_key_id).then(|| S3Secret::from(boto.secret.as_str()));
    let now = at(&boto.now);
    assert!(boto.requests.len() >= 8);
    for r in &boto.requests {
        let owned = r.owned();
        assert_eq!(
            authenticate(&owned.req(), now, lookup),
            Ok(Caller::Key("reader".into())),
            "{}",
            r.name
        );
        // Another secret, another path, another query: refused.
        let other = |_: &str| Some(S3Secret::from("another-secret-0123456789"));
        assert_eq!(
            authenticate(&owned.req(), now, other),
            Err(SigError::SignatureDoesNotMatch),
            "{}",
            r.name
        );
        let mut moved = r.owned();
        moved.path.push('x');
        assert_eq!(
            authenticate(&moved.req(), now, lookup),
            Err(SigError::SignatureDoesNotMatch),
            "{}",
            r.name
        );
        let mut asked = r.owned();
        asked.query.push_str(if asked.query.is_empty() {
            "acl"
        } else {
            "&acl"
        });
        assert_eq!(
            authenticate(&asked.req(), now, lookup),
            Err(SigError::SignatureDoesNotMatch),
            "{}",
            r.name
        );
        assert_eq!(
            authenticate(&owned.req(), now, |_| None),
            Err(SigError::InvalidAccessKeyId),
            "{}",
            r.name
        );
    }
}

fn boto_named(name: &str) -> (Owned, SystemTime, impl Fn(&str) -> Option<S3Secret>) {
    let boto = boto();
    let r = boto.requests.iter().find(|r| r.name == name).unwrap();
    let secret = boto.secret.clone();
    (r.owned(), at(&boto.now), move |_: &str| {
        Some(S3Secret::from(secret.as_str()))
    })
}

#[test]
fn header_signatures_hold_for_fifteen_minutes_either_way() {
    let (owned, now, lookup) = boto_named("head_object");
    let minutes = |m: u64| Duration::from_secs(m * 60);
    assert!(authenticate(&owned.req(), now + minutes(15), &lookup).is_ok());
    assert!(authenticate(&owned.req(), now - minutes(15), &lookup).is_ok());
    for skewed in [now + minutes(16), now - minutes(16)] {
        assert_eq!(
            authenticate(&owned.req(), skewed, &lookup),
            Err(SigError::RequestTimeTooSkewed)
        );
    }
}

#[test]
fn presigned_urls_expire_and_refuse_a_second_mechanism() {
    let (owned, now, lookup) = boto_named("presigned_get_object");
    let secs = Duration::from_secs;
    assert!(authenticate(&owned.req(), now + secs(3600), &lookup).is_ok());
    assert_eq!(
        authenticate(&owned.req(), now + secs(3601), &lookup),
        Err(SigError::Expired)
    );
    assert_eq!(SigError::Expired.code(), Code::AccessDenied);
    assert_eq!(
        authenticate(&owned.req(), now - secs(16 * 60), &lookup),
        Err(SigError::NotYetValid)
    );
    // A longer validity than the signed one is a forgery.
    let mut longer = owned_clone(&owned);
    longer.query = longer
        .query
        .replace("X-Amz-Expires=3600", "X-Amz-Expires=7200");
    assert_eq!(
        authenticate(&longer.req(), now, &lookup),
        Err(SigError::SignatureDoesNotMatch)
    );
    let mut week = owned_clone(&owned);
    week.query = week
        .query
        .replace("X-Amz-Expires=3600", "X-Amz-Expires=604801");
    assert!(matches!(
        authenticate(&week.req(), now, &lookup),
        Err(SigError::QueryMalformed(m)) if m.contains("less than a week")
    ));
    let mut both = owned_clone(&owned);
    both.headers.insert(
        http::header::AUTHORIZATION,
        "AWS4-HMAC-SHA256 Credential=x".parse().unwrap(),
    );
    assert_eq!(
        authenticate(&both.req(), now, &lookup),
        Err(SigError::MultipleMechanisms)
    );
    // An x-amz-* header the URL did not sign.
    let mut extra = owned_clone(&owned);
    extra
        .headers
        .insert("x-amz-checksum-mode", "ENABLED".parse().unwrap());
    assert_eq!(
        authenticate(&extra.req(), now, &lookup),
        Err(SigError::UnsignedHeader("x-amz-checksum-mode".into()))
    );
}

fn owned_clone(o: &Owned) -> Owned {
    Owned {
        method: o.method.clone(),
        path: o.path.clone(),
        query: o.query.clone(),
        headers: o.headers.clone(),
    }
}

#[test]
fn readers_send_no_body() {
    let (owned, now, lookup) = boto_named("get_object_path_style");
    let with = |value: &str| {
        let mut o = owned_clone(&owned);
        o.headers
            .insert("x-amz-content-sha256", value.parse().unwrap());
        authenticate(&o.req(), now, &lookup)
    };
    assert_eq!(with(&"a".repeat(64)), Err(SigError::BodyNotSupported));
    assert_eq!(
        with("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        Err(SigError::BodyNotSupported)
    );
    assert_eq!(with("nonsense"), Err(SigError::InvalidContentSha256));
    // The signed value itself, changed to UNSIGNED-PAYLOAD: the signature no longer holds.
    assert_eq!(with(UNSIGNED_PAYLOAD), Err(SigError::SignatureDoesNotMatch));
}

#[test]
fn anonymous_and_other_mechanisms() {
    let headers = HeaderMap::new();
    let req = |query: &'static str| Request {
        method: &Method::GET,
        path: "/models/a",
        query,
        headers: &headers,
    };
    let now = at("20261204T033000Z");
    assert_eq!(authenticate(&req(""), now, |_| None), Ok(Caller::Anonymous));
    assert_eq!(
        authenticate(&req("AWSAccessKeyId=a&Signature=b&Expires=1"), now, |_| {
            None
        }),
        Err(SigError::UnsupportedMechanism)
    );
    let mut v2 = HeaderMap::new();
    v2.insert(
        http::header::AUTHORIZATION,
        "AWS reader:c2ln".parse().unwrap(),
    );
    let r = Request {
        headers: &v2,
        ..req("")
    };
    assert_eq!(
        authenticate(&r, now, |_| None),
        Err(SigError::UnsupportedMechanism)
    );
}

#[test]
fn malformed_authorization_headers() {
    let (owned, now, lookup) = boto_named("list_buckets");
    let with = |value: String| {
        let mut o = owned_clone(&owned);
        o.headers
            .insert(http::header::AUTHORIZATION, value.parse().unwrap());
        authenticate(&o.req(), now, &lookup)
    };
    let sig = format!("Signature={}", "0".repeat(64));
    let good_cred = "Credential=reader/20261204/us-east-1/s3/aws4_request";
    let signed = "SignedHeaders=host;x-amz-content-sha256;x-amz-date";
    let malformed = |r: Result<Caller, SigError>| matches!(r, Err(SigError::HeaderMalformed(_)));
    assert!(malformed(with(format!("{ALGORITHM} {good_cred}, {sig}"))));
    assert!(malformed(with(format!(
        "{ALGORITHM} {good_cred}, {good_cred}, {signed}, {sig}"
    ))));
    assert!(malformed(with(format!(
        "{ALGORITHM} Credential=reader/20261204/us-east-1/s3/aws5_request, {signed}, {sig}"
    ))));
    assert!(malformed(with(format!(
        "{ALGORITHM} Credential=reader/20261203/us-east-1/s3/aws4_request, {signed}, {sig}"
    ))));
    assert!(malformed(with(format!(
        "{ALGORITHM} {good_cred}, SignedHeaders=x-amz-content-sha256;x-amz-date, {sig}"
    ))));
    assert!(malformed(with(format!(
        "{ALGORITHM} {good_cred}, SignedHeaders=Host;x-amz-date, {sig}"
    ))));
    let many = vec!["h"; MAX_SIGNED_HEADERS + 1].join(";");
    assert!(malformed(with(format!(
        "{ALGORITHM} {good_cred}, SignedHeaders={many}, {sig}"
    ))));
    assert!(malformed(with(format!(
        "{ALGORITHM} {}",
        "a".repeat(MAX_AUTHORIZATION_LEN)
    ))));
    // A signed header the request does not carry.
    assert_eq!(
        with(format!(
            "{ALGORITHM} {good_cred}, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, {sig}"
        )),
        Err(SigError::SignedHeaderMissing("range".into()))
    );
    // Any region is accepted as sent (the signature then decides).
    assert_eq!(
        with(format!(
            "{ALGORITHM} Credential=reader/20261204/eu-west-9/s3/aws4_request, {signed}, {sig}"
        )),
        Err(SigError::SignatureDoesNotMatch)
    );
}

#[test]
fn amz_dates() {
    assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
    assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
    assert_eq!(parse_amz_date("20240229T000000Z"), Some(1_709_164_800));
    for bad in [
        "20150830T123600",
        "2015083OT123600Z",
        "20151330T123600Z",
        "+0150830T123600Z",
        "20150830T2460000Z",
        "",
    ] {
        assert_eq!(parse_amz_date(bad), None, "{bad}");
    }
}
