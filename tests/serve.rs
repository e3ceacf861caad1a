//! The real `airlock` binary on a loopback port: start-up on the embedded default,
//! health/readiness/metrics, one-line configuration errors, the operator blob API,
//! and graceful shutdown with a download in flight.

mod support;

use futures::StreamExt;
use std::io::Write;
use std::time::{Duration, Instant};
use support::airlock::{command, Airlock};
use support::seed_blob;

const ADMIN: &str = "admin-token-for-tests-0123";

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn starts_with_no_flags_on_the_embedded_store() {
    let cwd = tempfile::tempdir().unwrap();
    // No flags at all; the port comes from the environment only so tests can run in parallel.
    let server = Airlock::start(cwd.path(), &[], &[("AIRLOCK_LISTEN", "127.0.0.1:0")]);
    assert!(server.log().contains("store=file://"), "{}", server.log());
    assert!(cwd.path().join("airlock-data").is_dir());
    let http = client();
    let r = http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    let r = http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(
        "airlock_http_requests_total{protocol=\"system\",route=\"/healthz\",method=\"GET\",status=\"200\"} 1"
    ), "{text}");
    assert!(text.contains("airlock_http_request_duration_seconds_bucket"));
    assert!(text.contains("airlock_http_response_bytes_total{protocol=\"system\"}"));
    // One access-log line per request, with the fields operators grep for.
    let log = server.wait_for_log("path=/readyz");
    let line = log
        .lines()
        .find(|l| l.contains("path=/readyz"))
        .expect("access log line");
    for field in [
        "request_id=",
        "method=GET",
        "status=200",
        "bytes=",
        "duration_ms=",
    ] {
        assert!(line.contains(field), "{line}");
    }
}

#[tokio::test]
async fn json_logs_and_readiness_follow_the_store() {
    let cwd = tempfile::tempdir().unwrap();
    let store = cwd.path().join("store");
    let store_arg = store.to_str().unwrap();
    let server = Airlock::start(
        cwd.path(),
        &["--store", store_arg, "--log-format", "json"],
        &[],
    );
    let http = client();
    assert_eq!(
        http.get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let line = server
        .wait_for_log("\"path\":\"/readyz\"")
        .lines()
        .find(|l| l.contains("\"path\":\"/readyz\""))
        .map(str::to_string)
        .expect("json access line");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["status"], 200);
    assert!(v["request_id"].is_string() && v["duration_ms"].is_number());
    // The store directory disappears: not ready, and the metrics count it.
    std::fs::rename(&store, cwd.path().join("gone")).unwrap();
    let r = http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("unreachable"));
    let text = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("airlock_store_errors_total{kind=\"readiness\"} 1"),
        "{text}"
    );
    std::fs::rename(cwd.path().join("gone"), &store).unwrap();
    assert_eq!(
        http.get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Runs the binary expecting it to refuse to start; returns its one line of error.
fn refused(args: &[&str], envs: &[(&str, &str)]) -> String {
    let cwd = tempfile::tempdir().unwrap();
    let out = command(cwd.path())
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} started");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<_> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "not one line: {stderr}");
    lines[0].to_string()
}

#[test]
fn bad_configuration_fails_in_one_line_that_names_the_fix() {
    let e = refused(&["serve", "--listen", "nowhere"], &[]);
    assert!(e.contains("`listen`") && e.contains("HOST:PORT"), "{e}");

    let e = refused(&["serve"], &[("AIRLOCK_STORE", "gs://bucket")]);
    assert!(e.contains("`store`") && e.contains("s3://"), "{e}");

    let e = refused(&["serve", "--admin-token", "short"], &[]);
    assert!(e.contains("admin_token") && e.contains("too short"), "{e}");

    let mut config = tempfile::NamedTempFile::new().unwrap();
    writeln!(config, "listen = \"127.0.0.1:0\"\nanonymous_reed = false").unwrap();
    let path = config.path().to_str().unwrap();
    let e = refused(&["--config", path, "serve"], &[]);
    assert!(e.contains("anonymous_reed") && e.contains("line 2"), "{e}");

    let mut config = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        config,
        "[[tokens]]\nname = \"ci\"\nsecret = \"0123456789abcdef0\"\nscopes = [\"push\"]"
    )
    .unwrap();
    let e = refused(&["serve", "--config", config.path().to_str().unwrap()], &[]);
    assert!(e.contains("ci") && e.contains("push"), "{e}");

    let e = refused(&["serve", "--config", "/nonexistent/airlock.toml"], &[]);
    assert!(e.contains("cannot read config file"), "{e}");

    let e = refused(&["serve", "--store", "/proc/airlock-store"], &[]);
    assert!(
        e.contains("/proc/airlock-store") && e.contains("--store"),
        "{e}"
    );

    let e = refused(&["serve", "--shutdown-grace", "a while"], &[]);
    assert!(e.contains("shutdown_grace"), "{e}");
}

#[tokio::test]
async fn flags_beat_environment() {
    let cwd = tempfile::tempdir().unwrap();
    let server = Airlock::start(
        cwd.path(),
        &["--store", "from-flag"],
        &[("AIRLOCK_STORE", "from-env")],
    );
    assert!(server.log().contains("from-flag"), "{}", server.log());
    assert!(cwd.path().join("from-flag").is_dir());
    assert!(!cwd.path().join("from-env").exists());
}

#[tokio::test]
async fn operator_blob_api_serves_ranges_and_checks_the_token() {
    let cwd = tempfile::tempdir().unwrap();
    let store = cwd.path().join("store");
    let (digest, data) = seed_blob(&store, 100_000).await;
    let mut config = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        config,
        "[[tokens]]\nname = \"reader\"\nsecret = \"reader-token-0123456789\"\nscopes = [\"read\"]\n\
         [[tokens]]\nname = \"images-admin\"\nsecret = \"images-admin-0123456789\"\nscopes = [\"admin:oci\"]\n\
         [[tokens]]\nname = \"team-admin\"\nsecret = \"team-admin-0123456789\"\nscopes = [\"admin:*:team\"]"
    )
    .unwrap();
    let server = Airlock::start(
        cwd.path(),
        &[
            "--store",
            store.to_str().unwrap(),
            "--admin-token",
            ADMIN,
            "--config",
            config.path().to_str().unwrap(),
        ],
        &[],
    );
    let http = client();
    let url = server.url(&format!("/_airlock/blobs/{digest}"));

    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let r = http
        .get(&url)
        .bearer_auth("reader-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A digest says nothing about whose bytes these are: an admin of one protocol or of
    // one name prefix is not an admin of the store.
    for partial in ["images-admin-0123456789", "team-admin-0123456789"] {
        let r = http.get(&url).bearer_auth(partial).send().await.unwrap();
        assert_eq!(r.status(), 403, "{partial}");
    }
    let r = http
        .get(&url)
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Basic auth with any user name carries the token too.
    let r = http
        .get(&url)
        .basic_auth("__token__", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "100000");
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(r.bytes().await.unwrap(), data);

    let r = http.head(&url).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "100000");

    let r = http
        .get(&url)
        .bearer_auth(ADMIN)
        .header("range", "bytes=0-0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 0-0/100000");
    assert_eq!(r.bytes().await.unwrap(), data[..1]);
    let r = http
        .get(&url)
        .bearer_auth(ADMIN)
        .header("range", "bytes=-10")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), data[100_000 - 10..]);
    let r = http
        .get(&url)
        .bearer_auth(ADMIN)
        .header("range", "bytes=100000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */100000");
    // A stale If-Range falls back to the whole body.
    let r = http
        .get(&url)
        .bearer_auth(ADMIN)
        .header("range", "bytes=0-9")
        .header("if-range", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(&url)
        .bearer_auth(ADMIN)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    let missing = format!("/_airlock/blobs/sha256:{}", "0".repeat(64));
    let r = http
        .get(server.url(&missing))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .get(server.url("/_airlock/blobs/sha256:..%2F..%2Fetc"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn sigterm_lets_an_inflight_download_finish_and_refuses_new_connections() {
    let cwd = tempfile::tempdir().unwrap();
    let store = cwd.path().join("store");
    let (digest, data) = seed_blob(&store, 48 * 1024 * 1024).await;
    let mut server = Airlock::start(
        cwd.path(),
        &[
            "--store",
            store.to_str().unwrap(),
            "--admin-token",
            ADMIN,
            "--shutdown-grace",
            "20s",
        ],
        &[],
    );
    let http = client();
    let url = server.url(&format!("/_airlock/blobs/{digest}"));
    let response = http.get(&url).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut received = body.next().await.unwrap().unwrap().to_vec();

    server.signal("TERM");
    // Wait until the server has stopped accepting.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fresh = reqwest::Client::builder().no_proxy().build().unwrap();
        if fresh.get(server.url("/healthz")).send().await.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The download in flight still completes, byte for byte.
    while let Some(chunk) = body.next().await {
        received.extend_from_slice(&chunk.unwrap());
    }
    assert!(received == data, "download differs after shutdown began");
    let status = server.wait_exit(Duration::from_secs(10)).expect("exited");
    assert!(status.success());
    server.wait_for_log("all requests finished");
}

#[tokio::test]
async fn grace_period_bounds_how_long_shutdown_waits() {
    let cwd = tempfile::tempdir().unwrap();
    let store = cwd.path().join("store");
    let (digest, _) = seed_blob(&store, 48 * 1024 * 1024).await;
    let mut server = Airlock::start(
        cwd.path(),
        &[
            "--store",
            store.to_str().unwrap(),
            "--admin-token",
            ADMIN,
            "--shutdown-grace",
            "1s",
        ],
        &[],
    );
    let http = client();
    let url = server.url(&format!("/_airlock/blobs/{digest}"));
    // A client that stops reading: the download can never finish on its own.
    let response = http.get(&url).bearer_auth(ADMIN).send().await.unwrap();
    let started = Instant::now();
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("exited within the bound");
    assert!(status.success());
    assert!(started.elapsed() >= Duration::from_millis(900));
    server.wait_for_log("grace period over");
    drop(response);
}

/// Sends a request with a `len`-byte body the way twine and requests do, the whole body
/// before reading anything, and returns the status line of the answer.
fn status_after_sending_everything(base: &str, head: &str, len: usize) -> String {
    use std::io::{BufRead, BufReader};
    let addr = base.trim_start_matches("http://");
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        tcp,
        "{head}\r\nHost: {addr}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b'x'; 256 * 1024];
    let mut sent = 0;
    while sent < len {
        let n = chunk.len().min(len - sent);
        tcp.write_all(&chunk[..n])
            .unwrap_or_else(|e| panic!("{head}: connection broken after {sent} bytes: {e}"));
        sent += n;
    }
    let mut line = String::new();
    BufReader::new(tcp)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("{head}: no answer after the whole body: {e}"));
    line.trim_end().to_string()
}

#[tokio::test]
async fn a_refused_upload_is_answered_after_its_body_not_cut_off() {
    let cwd = tempfile::tempdir().unwrap();
    let server = Airlock::start(cwd.path(), &["--admin-token", ADMIN], &[]);
    let base = server.base.clone();
    let zeros = "0".repeat(64);
    // No token: each protocol refuses at once, before reading a body of 48 MiB.
    let cases = [
        (
            format!("POST /v2/team/app/blobs/uploads/?digest=sha256:{zeros} HTTP/1.1"),
            "HTTP/1.1 401",
        ),
        (
            "POST /api/models/org/model/commit/main HTTP/1.1".to_string(),
            "HTTP/1.1 401",
        ),
        ("POST /legacy/ HTTP/1.1".to_string(), "HTTP/1.1 401"),
    ];
    for (head, expected) in cases {
        let base = base.clone();
        let line = tokio::task::spawn_blocking(move || {
            status_after_sending_everything(&base, &head, 48 << 20)
        })
        .await
        .unwrap();
        assert!(line.starts_with(expected), "{line}");
    }
}

/// `airlock_zero_copy_bytes_total` from `/metrics`.
async fn zero_copy_bytes(http: &reqwest::Client, server: &Airlock) -> u64 {
    let text = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("airlock_zero_copy_bytes_total "))
        .unwrap_or_else(|| panic!("no zero-copy counter in:\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn concurrent_file_downloads_over_http1_are_sent_without_copying_and_arrive_intact() {
    const MIB: usize = 1024 * 1024;
    let cwd = tempfile::tempdir().unwrap();
    let store = cwd.path().join("store");
    // Not a whole number of sendfile frames, so the last one is short.
    let (digest, data) = seed_blob(&store, 9 * MIB + 12_345).await;
    // Larger than the socket buffers take, so a download of it stays in flight while its
    // client does not read.
    let (big, _) = seed_blob(&store, 96 * MIB).await;
    let server = Airlock::start(
        cwd.path(),
        &["--store", store.to_str().unwrap(), "--admin-token", ADMIN],
        &[],
    );
    let url = server.url(&format!("/_airlock/blobs/{digest}"));
    let http = client();
    let get = |http: reqwest::Client, range: Option<String>| {
        let url = url.clone();
        async move {
            let mut request = http.get(&url).bearer_auth(ADMIN);
            if let Some(range) = range {
                request = request.header("range", range);
            }
            let r = request.send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.bytes().await.unwrap()
        }
    };

    // Alone, a download is streamed (reading ahead on a second core is faster then).
    let before = zero_copy_bytes(&http, &server).await;
    assert!(get(http.clone(), None).await[..] == data[..]);
    assert_eq!(
        zero_copy_bytes(&http, &server).await,
        before,
        "alone: streamed"
    );

    // With another download in flight, every body byte goes by sendfile: whole ones,
    // several at once on kept-alive connections, and ranges across frame borders.
    let holder = client()
        .get(server.url(&format!("/_airlock/blobs/{big}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(holder.status(), 200);
    let before = zero_copy_bytes(&http, &server).await;
    let whole = futures::future::join_all((0..6).map(|_| get(http.clone(), None))).await;
    for body in &whole {
        assert!(body[..] == data[..], "a whole download differs");
    }
    let mut sent = 6 * data.len();
    for (start, end) in [
        (4 * MIB - 10, 8 * MIB + 10),
        (0, 0),
        (data.len() - 1, data.len() - 1),
    ] {
        let body = get(http.clone(), Some(format!("bytes={start}-{end}"))).await;
        assert!(body[..] == data[start..=end], "range {start}-{end} differs");
        sent += end - start + 1;
    }
    let suffix = get(http.clone(), Some("bytes=-100".into())).await;
    assert!(suffix[..] == data[data.len() - 100..]);
    sent += 100;
    assert_eq!(
        zero_copy_bytes(&http, &server).await - before,
        sent as u64,
        "every body byte went by sendfile"
    );

    // HTTP/2 (h2c here) frames the data itself: the bytes are streamed instead.
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let before = zero_copy_bytes(&http, &server).await;
    let body = get(h2, None).await;
    assert!(body[..] == data[..], "the h2 download differs");
    assert_eq!(zero_copy_bytes(&http, &server).await, before);
    drop(holder);
}
