//! The real binary on a real S3 server (Garage on loopback): serving, readiness that
//! follows the store's availability, and one-line start-up errors.

mod support;

use std::time::{Duration, Instant};
use support::airlock::{command, Airlock};
use support::garage::Garage;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn s3_env(g: &Garage) -> Vec<(&str, &str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", g.key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", g.secret.as_str()),
        ("AWS_REGION", g.region.as_str()),
    ]
}

async fn wait_for_status(url: &str, status: u16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if let Ok(r) = client().get(url).send().await {
            if r.status() == status {
                return started.elapsed();
            }
        }
        assert!(
            started.elapsed() < within,
            "{url} did not answer {status} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
#[ignore = "needs a real S3 server: `bash tests/run-all.sh` builds and starts Garage"]
async fn readiness_follows_the_s3_store() {
    let garage = tokio::task::spawn_blocking(Garage::start).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("s3://{}/ready", garage.bucket);
    let server = Airlock::start(
        dir.path(),
        &["--store", &store, "--s3-endpoint", &garage.endpoint],
        &s3_env(&garage),
    );
    assert!(
        server.log().contains(&format!("store={store}")),
        "{}",
        server.log()
    );
    let http = client();
    assert_eq!(
        http.get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    garage.stop();
    let down = wait_for_status(&server.url("/readyz"), 503, Duration::from_secs(10)).await;
    // The process itself is still healthy: only the store is gone.
    assert_eq!(
        http.get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("airlock_store_errors_total{kind=\"readiness\"}"),
        "{metrics}"
    );

    garage.restart();
    let up = wait_for_status(&server.url("/readyz"), 200, Duration::from_secs(60)).await;
    eprintln!("readyz: 503 {down:?} after Garage stopped, 200 {up:?} after it came back");
}

/// Runs `airlock check` expecting a refusal; returns its single line of error.
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .args(args)
        .arg("check")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} passed");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "not one line: {stderr}");
    lines[0].to_string()
}

#[test]
#[ignore = "needs a real S3 server: `bash tests/run-all.sh` builds and starts Garage"]
fn s3_problems_at_start_up_say_what_to_fix() {
    let g = support::garage::shared();
    let store = format!("s3://{}/x", g.bucket);

    let ok = command(std::path::Path::new("/tmp"))
        .args(["--store", &store, "--s3-endpoint", &g.endpoint, "check"])
        .envs(s3_env(g))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let wrong_secret = [
        ("AWS_ACCESS_KEY_ID", g.key_id.as_str()),
        (
            "AWS_SECRET_ACCESS_KEY",
            "0000000000000000000000000000000000000000000000000000000000000000",
        ),
        ("AWS_REGION", g.region.as_str()),
    ];
    let e = refused(
        &["--store", &store, "--s3-endpoint", &g.endpoint],
        &wrong_secret,
    );
    assert!(e.contains("credentials"), "{e}");

    let e = refused(
        &[
            "--store",
            "s3://no-such-bucket-here",
            "--s3-endpoint",
            &g.endpoint,
        ],
        &s3_env(g),
    );
    assert!(
        e.contains("no-such-bucket-here") && e.contains("does not exist"),
        "{e}"
    );

    // A loopback port with nothing listening on it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let endpoint = format!("http://{closed}");
    let e = refused(&["--store", &store, "--s3-endpoint", &endpoint], &s3_env(g));
    assert!(e.contains(&endpoint) || e.contains("reach"), "{e}");
}
