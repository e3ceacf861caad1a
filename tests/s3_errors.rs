//! Opening an S3 store that cannot work fails at once with one line saying what to fix.

mod support;

use airlock::store::{S3Settings, S3Store};
use support::garage;

async fn open_error(bucket: &str, settings: &S3Settings) -> String {
    let err = S3Store::open(bucket.to_string(), "errors".to_string(), settings)
        .await
        .expect_err("opening should fail");
    let msg = format!("{err:#}");
    eprintln!("{msg}");
    assert!(!msg.contains('\n'), "not one line: {msg}");
    msg
}

#[tokio::test]
async fn unreachable_endpoint_is_named() {
    // A loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let settings = S3Settings {
        endpoint: Some(endpoint.clone()),
        access_key_id: Some(garage::KEY_ID.into()),
        secret_access_key: Some(garage::SECRET.into()),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let msg = open_error("airlock-test", &settings).await;
    assert!(
        msg.contains(&format!("cannot reach the S3 endpoint {endpoint}")),
        "{msg}"
    );
    assert!(msg.contains("--s3-endpoint / AWS_ENDPOINT_URL"), "{msg}");
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
#[ignore = "needs a real S3 server: `bash tests/run-all.sh` builds and starts Garage"]
async fn wrong_credentials_are_reported() {
    let garage = tokio::task::spawn_blocking(garage::shared).await.unwrap();
    let wrong_secret = S3Settings {
        secret_access_key: Some("0".repeat(64)),
        ..garage.settings()
    };
    let unknown_key = S3Settings {
        access_key_id: Some("GK000000000000000000000000".into()),
        ..garage.settings()
    };
    for settings in [wrong_secret, unknown_key] {
        let msg = open_error(&garage.bucket, &settings).await;
        assert!(
            msg.contains(&format!(
                "S3 rejected the credentials for bucket {}",
                garage.bucket
            )),
            "{msg}"
        );
        assert!(
            msg.contains("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"),
            "{msg}"
        );
    }
}

#[tokio::test]
#[ignore = "needs a real S3 server: `bash tests/run-all.sh` builds and starts Garage"]
async fn missing_bucket_is_reported() {
    let garage = tokio::task::spawn_blocking(garage::shared).await.unwrap();
    let msg = open_error("no-such-bucket", &garage.settings()).await;
    assert!(
        msg.contains(&format!(
            "bucket no-such-bucket does not exist at {}",
            garage.endpoint
        )),
        "{msg}"
    );
    assert!(msg.contains("garage bucket create no-such-bucket"), "{msg}");
}

#[tokio::test]
#[ignore = "needs a real S3 server: `bash tests/run-all.sh` builds and starts Garage"]
async fn wrong_region_is_reported() {
    let garage = tokio::task::spawn_blocking(garage::shared).await.unwrap();
    let settings = S3Settings {
        region: Some("us-west-2".into()),
        ..garage.settings()
    };
    let msg = open_error(&garage.bucket, &settings).await;
    assert!(msg.contains("--s3-region"), "{msg}");
}
