//! The documents against golden files in tests/data/s3/xml/, which
//! tests/data/s3/check_xml_with_botocore.py parses with botocore's own parser and
//! list-decoding handlers (run it after regenerating them with AIRLOCK_UPDATE_GOLDEN=1).

use super::*;
use crate::s3api::error::{Code, S3Error};
use std::path::PathBuf;

fn golden(name: &str, xml: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/s3/xml")
        .join(format!("{name}.xml"));
    if std::env::var_os("AIRLOCK_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, xml).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        xml, expected,
        "{name}: rerun with AIRLOCK_UPDATE_GOLDEN=1 if intended"
    );
}

/// 2026-12-04T03:30:00.123Z
fn when() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_796_355_000_123)
}

fn owner() -> Owner {
    Owner {
        id: "airlock".into(),
        display_name: "airlock".into(),
    }
}

/// Keys botocore must get back exactly: spaces, `+`, `%`, non-ASCII, XML specials.
const ODD_KEYS: [&str; 3] = [
    "org/m/dir with space/ü+w (1).bin",
    "org/m/a&b<c>\"d'e%2F.txt",
    "org/m/tab\there",
];

fn objects() -> Vec<Object> {
    ODD_KEYS
        .iter()
        .enumerate()
        .map(|(i, k)| Object {
            key: k.to_string(),
            last_modified: when(),
            etag: format!("{}-1", "ab".repeat(16 + i)),
            size: 10 + i as u64,
        })
        .collect()
}

#[test]
fn timestamps_have_milliseconds() {
    assert_eq!(timestamp(when()), "2026-12-04T03:30:00.123Z");
    assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    // Dates the formatter cannot write are clamped, not a panic.
    assert_eq!(
        timestamp(UNIX_EPOCH - Duration::from_secs(1)),
        "1970-01-01T00:00:00.000Z"
    );
    assert_eq!(
        timestamp(UNIX_EPOCH + Duration::from_secs(1 << 40)),
        "9999-12-31T23:59:59.999Z"
    );
}

#[test]
fn escaping() {
    assert_eq!(escape("a&b<c>\"d'e"), "a&amp;b&lt;c&gt;&quot;d&apos;e");
    assert_eq!(escape("x\u{1}y\rz\tw\n"), "x&#x1;y&#xD;z\tw\n");
    assert_eq!(escape("ü"), "ü");
}

#[test]
fn list_buckets_document() {
    let buckets = [
        Bucket {
            name: "datasets".into(),
            created: when(),
        },
        Bucket {
            name: "models".into(),
            created: when(),
        },
    ];
    golden("list_buckets", &list_all_my_buckets(&owner(), &buckets));
}

#[test]
fn location_documents() {
    golden("location_us_east_1", &location_constraint("us-east-1"));
    golden("location_eu_west_1", &location_constraint("eu-west-1"));
}

#[test]
fn list_v2_url_encoded() {
    let listing = Listing {
        bucket: "models".into(),
        prefix: "org/m/".into(),
        delimiter: Some("/".into()),
        max_keys: 1000,
        url_encoded: true,
        is_truncated: true,
        contents: objects(),
        common_prefixes: vec!["org/m/sub dir+x/".into()],
        page: Page::V2 {
            continuation_token: Some("b3JnL20vYQ==".into()),
            next_continuation_token: Some("b3JnL20vdGFi+/=".into()),
            start_after: Some("org/m/a b".into()),
            fetch_owner: false,
        },
        owner: owner(),
    };
    let xml = listing.to_xml();
    assert!(xml.contains("<KeyCount>4</KeyCount>"));
    assert!(xml.contains("<Key>org/m/dir%20with%20space/%C3%BC%2Bw%20%281%29.bin</Key>"));
    assert!(!xml.contains("<Owner>"));
    golden("list_v2_url", &xml);
}

#[test]
fn list_v2_plain_with_owner() {
    let listing = Listing {
        bucket: "models".into(),
        prefix: String::new(),
        delimiter: None,
        max_keys: 2,
        url_encoded: false,
        is_truncated: false,
        contents: objects(),
        common_prefixes: vec![],
        page: Page::V2 {
            continuation_token: None,
            next_continuation_token: None,
            start_after: None,
            fetch_owner: true,
        },
        owner: owner(),
    };
    let xml = listing.to_xml();
    assert!(xml.contains("<Key>org/m/a&amp;b&lt;c&gt;&quot;d&apos;e%2F.txt</Key>"));
    assert!(xml.contains("<ETag>&quot;"));
    golden("list_v2_plain", &xml);
}

#[test]
fn list_v1_pages() {
    let listing = |url_encoded: bool| Listing {
        bucket: "models".into(),
        prefix: "org/".into(),
        delimiter: Some("/".into()),
        max_keys: 1000,
        url_encoded,
        is_truncated: true,
        contents: objects(),
        common_prefixes: vec!["org/m/".into()],
        page: Page::V1 {
            marker: "org/a b".into(),
            next_marker: Some("org/m/tab\there".into()),
        },
        owner: owner(),
    };
    golden("list_v1_url", &listing(true).to_xml());
    golden("list_v1_plain", &listing(false).to_xml());
}

#[test]
fn error_document() {
    let e = S3Error::new(Code::NoSuchKey, "The specified key does not exist.")
        .with_resource("/models/org/m/a&b")
        .with_request_id("0123abcd");
    golden("error_no_such_key", &e.to_xml());
}
