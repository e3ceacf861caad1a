use super::*;

const DOMAIN: &str = "s3.airlock.test";

fn parse_with(method: Method, host: &str, target: &str, headers: &HeaderMap) -> Result<Endpoint> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Endpoint::parse(
        &Target {
            method: &method,
            host: Some(host),
            path,
            query,
            headers,
        },
        Some(DOMAIN),
    )
}

fn parse(method: Method, target: &str) -> Result<Endpoint> {
    parse_with(method, "127.0.0.1:9000", target, &HeaderMap::new())
}

fn code(method: Method, target: &str) -> Code {
    parse(method, target).unwrap_err().code
}

fn operation(method: Method, target: &str) -> &'static str {
    match parse(method, target).unwrap() {
        Endpoint::Unsupported { operation, .. } => operation,
        other => panic!("{target}: {other:?}"),
    }
}

#[test]
fn the_reads_served() {
    assert_eq!(parse(Method::GET, "/").unwrap(), Endpoint::ListBuckets);
    let models = || "models".to_string();
    assert_eq!(
        parse(Method::HEAD, "/models").unwrap(),
        Endpoint::HeadBucket { bucket: models() }
    );
    assert_eq!(
        parse(Method::GET, "/models?location").unwrap(),
        Endpoint::GetBucketLocation { bucket: models() }
    );
    assert_eq!(
        parse(Method::GET, "/models/").unwrap(),
        Endpoint::ListObjects {
            bucket: models(),
            list: ListV1 {
                max_keys: 1000,
                ..ListV1::default()
            }
        }
    );
    assert_eq!(
        parse(
            Method::GET,
            "/models?prefix=org%2Fa+b%2F&delimiter=%2F&marker=org%2Fa&max-keys=5000&encoding-type=url"
        )
        .unwrap(),
        Endpoint::ListObjects {
            bucket: models(),
            list: ListV1 {
                prefix: "org/a b/".into(),
                delimiter: Some("/".into()),
                marker: Some("org/a".into()),
                max_keys: 1000,
                url_encoded: true,
            }
        }
    );
    assert_eq!(
        parse(
            Method::GET,
            "/models?list-type=2&continuation-token=b3Jn%2B%3D&start-after=x&fetch-owner=true&max-keys=7&delimiter="
        )
        .unwrap(),
        Endpoint::ListObjectsV2 {
            bucket: models(),
            list: ListV2 {
                continuation_token: Some("b3Jn+=".into()),
                start_after: Some("x".into()),
                fetch_owner: true,
                max_keys: 7,
                ..ListV2::default()
            }
        }
    );
    assert_eq!(
        parse(Method::HEAD, "/models/org/m/a%20b%2Bc.bin?versionId=null").unwrap(),
        Endpoint::HeadObject {
            bucket: models(),
            key: "org/m/a b+c.bin".into(),
            part_number: None,
        }
    );
    assert_eq!(
        parse(
            Method::GET,
            "/models/org/m/%E2%9C%93?partNumber=1&response-content-disposition=attachment%3B%20filename%3Dx"
        )
        .unwrap(),
        Endpoint::GetObject {
            bucket: models(),
            key: "org/m/\u{2713}".into(),
            part_number: Some(1),
            response_headers: ResponseHeaders {
                content_disposition: Some("attachment; filename=x".into()),
                ..ResponseHeaders::default()
            },
        }
    );
    // Decoded once: `%252F` is the three characters `%2F`, not a slash.
    assert!(matches!(
        parse(Method::GET, "/models/org/m/a%252Fb").unwrap(),
        Endpoint::GetObject { key, .. } if key == "org/m/a%2Fb"
    ));
    for e in [
        Endpoint::ListBuckets,
        parse(Method::GET, "/models/k").unwrap(),
    ] {
        assert_eq!(e.action(), Some(Action::Read));
    }
}

#[test]
fn virtual_hosted_style() {
    let h = HeaderMap::new();
    let v = |host: &str, target: &str| parse_with(Method::GET, host, target, &h).unwrap();
    assert!(matches!(
        v("models.s3.airlock.test:9443", "/org/m/config.json"),
        Endpoint::GetObject { bucket, key, .. } if bucket == "models" && key == "org/m/config.json"
    ));
    assert!(matches!(
        v("Datasets.S3.Airlock.Test", "/?list-type=2"),
        Endpoint::ListObjectsV2 { bucket, .. } if bucket == "datasets"
    ));
    // The domain itself, or another host: path-style.
    assert_eq!(v("s3.airlock.test", "/"), Endpoint::ListBuckets);
    assert!(matches!(
        v("s3.airlock.test:9443", "/models/k"),
        Endpoint::GetObject { bucket, .. } if bucket == "models"
    ));
    assert!(matches!(
        v("elsewhere.test", "/models/k"),
        Endpoint::GetObject { bucket, .. } if bucket == "models"
    ));
    // Without a configured domain, always path-style.
    let target = Target {
        method: &Method::GET,
        host: Some("models.s3.airlock.test"),
        path: "/org/m",
        query: "",
        headers: &h,
    };
    assert!(matches!(
        Endpoint::parse(&target, None).unwrap(),
        Endpoint::GetObject { bucket, .. } if bucket == "org"
    ));
}

#[test]
fn everything_else_is_named_and_not_implemented() {
    assert_eq!(operation(Method::PUT, "/models/k"), "PutObject");
    let mut copy = HeaderMap::new();
    copy.insert("x-amz-copy-source", "/a/b".parse().unwrap());
    assert!(matches!(
        parse_with(Method::PUT, "h", "/models/k", &copy).unwrap(),
        Endpoint::Unsupported {
            operation: "CopyObject",
            ..
        }
    ));
    assert!(matches!(
        parse_with(Method::PUT, "h", "/models/k?partNumber=2&uploadId=u", &copy).unwrap(),
        Endpoint::Unsupported {
            operation: "UploadPartCopy",
            ..
        }
    ));
    let cases = [
        (
            Method::PUT,
            "/models/k?partNumber=2&uploadId=u",
            "UploadPart",
        ),
        (Method::DELETE, "/models/k", "DeleteObject"),
        (
            Method::DELETE,
            "/models/k?uploadId=u",
            "AbortMultipartUpload",
        ),
        (Method::POST, "/models/k?uploads", "CreateMultipartUpload"),
        (
            Method::POST,
            "/models/k?uploadId=u",
            "CompleteMultipartUpload",
        ),
        (Method::GET, "/models/k?uploadId=u", "ListParts"),
        (Method::GET, "/models/k?acl", "GetObjectAcl"),
        (Method::PUT, "/models/k?tagging", "PutObjectTagging"),
        (Method::DELETE, "/models/k?tagging", "DeleteObjectTagging"),
        (Method::GET, "/models/k?attributes", "GetObjectAttributes"),
        (Method::POST, "/models?delete", "DeleteObjects"),
        (Method::PUT, "/models", "CreateBucket"),
        (Method::DELETE, "/models", "DeleteBucket"),
        (Method::GET, "/models?acl", "GetBucketAcl"),
        (Method::GET, "/models?versions", "ListObjectVersions"),
        (Method::GET, "/models?uploads", "ListMultipartUploads"),
        (Method::GET, "/models?versioning", "GetBucketVersioning"),
        (Method::PUT, "/models?policy", "PutBucketPolicy"),
        (Method::DELETE, "/models?cors", "DeleteBucketCors"),
        (Method::OPTIONS, "/models/k", "Options"),
    ];
    for (method, target, expected) in cases {
        assert_eq!(
            operation(method.clone(), target),
            expected,
            "{method} {target}"
        );
        assert_eq!(parse(method, target).unwrap().action(), None);
    }
    assert_eq!(code(Method::DELETE, "/models?acl"), Code::MethodNotAllowed);
    assert_eq!(code(Method::PATCH, "/models/k"), Code::MethodNotAllowed);
    assert_eq!(code(Method::PUT, "/"), Code::MethodNotAllowed);
}

#[test]
fn bad_input_is_refused_with_s3_codes() {
    assert_eq!(
        code(Method::GET, "/models/k?versionId=3"),
        Code::InvalidArgument
    );
    assert_eq!(
        code(Method::GET, "/models/k?partNumber=0"),
        Code::InvalidArgument
    );
    assert_eq!(
        code(Method::GET, "/models/k?partNumber=10001"),
        Code::InvalidArgument
    );
    assert_eq!(
        code(Method::GET, "/models/k?partNumber=+1"),
        Code::InvalidArgument
    );
    assert_eq!(code(Method::GET, "/models/%FF%FE"), Code::InvalidArgument);
    assert_eq!(code(Method::GET, "/models/a%00b"), Code::InvalidArgument);
    assert_eq!(
        code(
            Method::GET,
            &format!("/models/{}", "a".repeat(MAX_KEY_LEN + 1))
        ),
        Code::KeyTooLongError
    );
    assert!(parse(Method::GET, &format!("/models/{}", "a".repeat(MAX_KEY_LEN))).is_ok());
    assert_eq!(
        code(
            Method::GET,
            &format!("/models/{}", "%C3%BC".repeat(MAX_KEY_LEN / 2 + 1))
        ),
        Code::KeyTooLongError
    );
    assert_eq!(
        code(Method::GET, "/models?max-keys=-1"),
        Code::InvalidArgument
    );
    assert_eq!(
        code(Method::GET, "/models?max-keys=ten"),
        Code::InvalidArgument
    );
    assert_eq!(
        code(Method::GET, "/models?encoding-type=base64"),
        Code::InvalidArgument
    );
    assert_eq!(
        code(Method::GET, "/models?list-type=3"),
        Code::InvalidArgument
    );
    assert_eq!(
        code(Method::GET, "/models?list-type=2&continuation-token="),
        Code::InvalidArgument
    );
    assert_eq!(
        code(Method::GET, "/models?list-type=2&fetch-owner=yes"),
        Code::InvalidArgument
    );
    assert_eq!(
        code(Method::GET, "/models?prefix=a&prefix=b"),
        Code::InvalidArgument
    );
    assert_eq!(
        code(Method::GET, "/models?prefix=%FF"),
        Code::InvalidArgument
    );
    assert_eq!(
        code(Method::GET, "/models/k?response-content-type=a%0Ab"),
        Code::InvalidArgument
    );
    for bucket in [
        "ab", "Models", "-models", "models-", "mo_dels", "..", "%6dodels",
    ] {
        assert_eq!(
            code(Method::GET, &format!("/{bucket}/k")),
            Code::InvalidBucketName,
            "{bucket}"
        );
    }
    assert_eq!(
        code(
            Method::GET,
            &format!("/models?{}", vec!["a=1"; 65].join("&"))
        ),
        Code::InvalidArgument
    );
}

/// The requests boto3 sent (tests/data/s3/sigv4_boto3.json) parse to what it asked for.
#[test]
fn boto3_requests() {
    #[derive(serde::Deserialize)]
    struct Fixture {
        requests: Vec<Request>,
    }
    #[derive(serde::Deserialize)]
    struct Request {
        name: String,
        method: String,
        host: String,
        path: String,
        query: String,
    }
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/s3/sigv4_boto3.json");
    let fixture: Fixture = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let key = "org/model/dir with space/ü+weights (1).safetensors";
    for r in fixture.requests {
        let method: Method = r.method.parse().unwrap();
        let target = format!("{}?{}", r.path, r.query);
        let e = parse_with(method, &r.host, &target, &HeaderMap::new()).unwrap();
        let ok = match r.name.as_str() {
            "get_object_path_style" | "get_object_unsigned_payload" | "presigned_get_object" => {
                matches!(&e, Endpoint::GetObject { bucket, key: k, .. } if bucket == "models" && k == key)
            }
            "head_object" => {
                matches!(&e, Endpoint::HeadObject { key, .. } if key == "org/model/config.json")
            }
            "head_bucket" => matches!(&e, Endpoint::HeadBucket { .. }),
            "list_objects_v2" => matches!(&e, Endpoint::ListObjectsV2 { list, .. }
                if list.prefix == "org/model/dir with space/"
                    && list.delimiter.as_deref() == Some("/")
                    && list.max_keys == 2
                    && list.continuation_token.as_deref() == Some("b3JnL21vZGVsL2E+Yg==")
                    && list.start_after.as_deref() == Some("org/model/a")
                    && list.url_encoded),
            "list_objects_v1_virtual_host" => matches!(&e, Endpoint::ListObjects { bucket, list }
                if bucket == "models" && list.prefix == "org/" && list.marker.as_deref() == Some("org/a b")),
            "list_buckets" => e == Endpoint::ListBuckets,
            other => panic!("no expectation for {other}"),
        };
        assert!(ok, "{}: {e:?}", r.name);
    }
}
