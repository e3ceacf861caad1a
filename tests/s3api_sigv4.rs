//! The S3 view's SigV4 check against the AWS SDK's own signer (`aws-sigv4`, the crate
//! aws-sdk-s3 signs with, set up as aws-sdk-s3 sets it: the path encoded once and not
//! normalized, `x-amz-content-sha256` sent). Any key, any listing query, by header or
//! presigned: what the SDK signs verifies; the same request with any signed part
//! changed, another secret or outside its validity does not.

use airlock::auth::S3Secret;
use airlock::s3api::endpoint::{Endpoint, Target};
use airlock::s3api::sigv4::{self, Caller, Request, SigError};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
    SignatureLocation, SigningSettings, UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderMap, HeaderValue, Method};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use proptest::prelude::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const KEY_ID: &str = "reader";
const SECRET: &str = "reader-secret-0123456789";
const HOST: &str = "127.0.0.1:9000";

/// How aws-sdk-s3 writes a key into the path: `/` kept, the rest of what is not
/// unreserved escaped.
const KEY_PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// And a query value: everything but the unreserved characters.
const QUERY_VALUE: &AsciiSet = &KEY_PATH.add(b'/');

fn signed_at() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_796_355_000)
}

fn secret(akid: &str) -> Option<S3Secret> {
    (akid == KEY_ID).then(|| S3Secret::from(SECRET))
}

/// The request as the server receives it.
struct Received {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
}

impl Received {
    fn verify_with(
        &self,
        now: SystemTime,
        secret_of: impl FnOnce(&str) -> Option<S3Secret>,
    ) -> Result<Caller, SigError> {
        let req = Request {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
        };
        sigv4::authenticate(&req, now, secret_of)
    }

    fn verify(&self) -> Result<Caller, SigError> {
        self.verify_with(signed_at(), secret)
    }

    fn endpoint(&self) -> Endpoint {
        let target = Target {
            method: &self.method,
            host: Some(HOST),
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
        };
        Endpoint::parse(&target, None).unwrap()
    }
}

/// Signs `method path?query` as aws-sdk-s3 does, in headers or as a presigned URL.
fn sdk_signed(
    method: Method,
    path: &str,
    query: &str,
    presigned: bool,
    unsigned_payload: bool,
) -> Received {
    let uri = if query.is_empty() {
        format!("http://{HOST}{path}")
    } else {
        format!("http://{HOST}{path}?{query}")
    };
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    if presigned {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(900));
    } else {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let identity: Identity = Credentials::new(KEY_ID, SECRET, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(signed_at())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let body = if unsigned_payload || presigned {
        SignableBody::UnsignedPayload
    } else {
        SignableBody::Bytes(&[])
    };
    let signable = SignableRequest::new(method.as_str(), &uri, std::iter::empty(), body).unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = http::Request::builder()
        .method(method)
        .uri(&uri)
        .body(())
        .unwrap();
    instructions.apply_to_request_http1x(&mut request);
    let mut headers = request.headers().clone();
    headers.insert(http::header::HOST, HeaderValue::from_static(HOST));
    Received {
        method: request.method().clone(),
        path: request.uri().path().to_string(),
        query: request.uri().query().unwrap_or_default().to_string(),
        headers,
    }
}

fn key_path(bucket: &str, key: &str) -> String {
    format!("/{bucket}/{}", utf8_percent_encode(key, KEY_PATH))
}

fn list_query(prefix: &str, token: &str) -> String {
    format!(
        "list-type=2&prefix={}&delimiter=%2F&continuation-token={}&encoding-type=url",
        utf8_percent_encode(prefix, QUERY_VALUE),
        utf8_percent_encode(token, QUERY_VALUE)
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// GetObject and HeadObject of any key, by header (empty-body hash or
    /// UNSIGNED-PAYLOAD) or presigned: verified, and the endpoint is that key.
    #[test]
    fn any_key_signed_by_the_sdk_verifies(
        key in "[ -~\u{e0}-\u{ff}\u{4e00}-\u{4e10}]{1,60}",
        head in any::<bool>(),
        presigned in any::<bool>(),
        unsigned_payload in any::<bool>(),
    ) {
        let method = if head { Method::HEAD } else { Method::GET };
        let received = sdk_signed(method, &key_path("models", &key), "", presigned, unsigned_payload);
        prop_assert_eq!(received.verify(), Ok(Caller::Key(KEY_ID.into())));
        let named = match received.endpoint() {
            Endpoint::GetObject { key, .. } | Endpoint::HeadObject { key, .. } => key,
            other => panic!("{other:?}"),
        };
        prop_assert_eq!(named, key);
    }

    /// ListObjectsV2 with any prefix and continuation token (`+`, `=`, `/`, spaces).
    #[test]
    fn any_listing_query_signed_by_the_sdk_verifies(
        prefix in "[ -~]{0,40}",
        token in "[A-Za-z0-9+/=]{1,40}",
        presigned in any::<bool>(),
    ) {
        let received = sdk_signed(Method::GET, "/models", &list_query(&prefix, &token), presigned, false);
        prop_assert_eq!(received.verify(), Ok(Caller::Key(KEY_ID.into())));
        let Endpoint::ListObjectsV2 { list, .. } = received.endpoint() else { panic!() };
        prop_assert_eq!(list.prefix, prefix);
        prop_assert_eq!(list.continuation_token, Some(token));
    }

    /// One signed part changed: another key, another query value, another signed header
    /// value, another method. Refused.
    #[test]
    fn changed_requests_do_not_verify(
        key in "[a-z0-9/._-]{1,30}",
        other in "[a-z0-9/._-]{1,30}",
        presigned in any::<bool>(),
    ) {
        prop_assume!(key != other);
        let signed = || sdk_signed(Method::GET, &key_path("models", &key), "", presigned, false);
        let mut moved = signed();
        moved.path = key_path("models", &other);
        prop_assert_eq!(moved.verify(), Err(SigError::SignatureDoesNotMatch));
        let mut asked = signed();
        asked.query = if asked.query.is_empty() { "tagging".into() } else { format!("{}&tagging", asked.query) };
        prop_assert_eq!(asked.verify(), Err(SigError::SignatureDoesNotMatch));
        let mut head = signed();
        head.method = Method::HEAD;
        prop_assert_eq!(head.verify(), Err(SigError::SignatureDoesNotMatch));
        let mut host = signed();
        host.headers.insert(http::header::HOST, HeaderValue::from_static("127.0.0.1:9001"));
        prop_assert_eq!(host.verify(), Err(SigError::SignatureDoesNotMatch));
    }
}

#[test]
fn secrets_and_time_bound_sdk_signatures() {
    let header = sdk_signed(Method::GET, "/models/org/m/w.bin", "", false, true);
    let presigned = sdk_signed(Method::GET, "/models/org/m/w.bin", "", true, false);
    for r in [&header, &presigned] {
        assert_eq!(
            r.verify_with(signed_at(), |_| Some(S3Secret::from(
                "reader-secret-0123456780"
            ))),
            Err(SigError::SignatureDoesNotMatch)
        );
        assert_eq!(
            r.verify_with(signed_at(), |_| None),
            Err(SigError::InvalidAccessKeyId)
        );
    }
    let later = |s: u64| signed_at() + Duration::from_secs(s);
    assert!(header.verify_with(later(900), secret).is_ok());
    assert_eq!(
        header.verify_with(later(901), secret),
        Err(SigError::RequestTimeTooSkewed)
    );
    assert!(presigned.verify_with(later(900), secret).is_ok());
    assert_eq!(
        presigned.verify_with(later(901), secret),
        Err(SigError::Expired)
    );
}
