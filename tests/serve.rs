//! The real `airlock` binary on a loopback port: start-up on the embedded default,
//! health/readiness/metrics on either store (readiness follows the store's
//! availability), one-line configuration errors, the operator blob API, and graceful
//! shutdown with a download in flight.

mod support;

use futures::StreamExt;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::airlock::{command, Airlock};
use support::backend::Backend;
use support::garage::Garage;
use support::http;
use support::process::refused;
use support::seed_blob;

const ADMIN: &str = "admin-token-for-tests-0123";

fn client() -> reqwest::Client {
    http::following_redirects()
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
async fn json_logs_carry_the_access_fields() {
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
}

/// A store a test can take away and bring back: the filesystem store's directory, or a
/// Garage of the test's own (stopping the shared one would fail every other test).
enum Removable {
    Dir { store: PathBuf, gone: PathBuf },
    Garage(Box<Garage>),
}

impl Removable {
    fn take_away(&self) {
        match self {
            Removable::Dir { store, gone } => std::fs::rename(store, gone).unwrap(),
            Removable::Garage(garage) => garage.stop(),
        }
    }

    fn bring_back(&self) {
        match self {
            Removable::Dir { store, gone } => std::fs::rename(gone, store).unwrap(),
            Removable::Garage(garage) => garage.restart(),
        }
    }
}

/// Polls `url` until it answers `status` (at least once, so `within` may be zero);
/// how long that took and the body.
async fn wait_for_status(
    http: &reqwest::Client,
    url: &str,
    status: u16,
    within: Duration,
) -> (Duration, String) {
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(url).send().await {
            if r.status() == status {
                return (started.elapsed(), r.text().await.unwrap());
            }
        }
        assert!(
            started.elapsed() < within,
            "{url} did not answer {status} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `/readyz` says whether the store answers, while `/healthz` (the process) stays 200
/// and the metrics count the failed probes.
async fn readiness_follows_the_store(backend: Backend) {
    let cwd = tempfile::tempdir().unwrap();
    let (removable, store, args, env) = match backend {
        Backend::Fs => {
            let store = cwd.path().join("store");
            let gone = cwd.path().join("gone");
            let arg = store.to_str().unwrap().to_string();
            let described = format!("file://{arg}");
            (
                Removable::Dir { store, gone },
                described,
                vec!["--store".to_string(), arg],
                vec![],
            )
        }
        Backend::S3 | Backend::S3Redirect => {
            let garage = tokio::task::spawn_blocking(Garage::start).await.unwrap();
            let store = format!("s3://{}/ready", garage.bucket);
            let args = vec![
                "--store".to_string(),
                store.clone(),
                "--s3-endpoint".to_string(),
                garage.endpoint.clone(),
            ];
            let env = vec![
                ("AWS_ACCESS_KEY_ID", garage.key_id.clone()),
                ("AWS_SECRET_ACCESS_KEY", garage.secret.clone()),
                ("AWS_REGION", garage.region.clone()),
            ];
            (Removable::Garage(Box::new(garage)), store, args, env)
        }
    };
    // A directory is gone at once; S3 is noticed when a request to it fails, and a
    // restarted Garage takes a while to answer again.
    let (noticed, recovered) = match backend {
        Backend::Fs => (Duration::ZERO, Duration::ZERO),
        _ => (Duration::from_secs(10), Duration::from_secs(60)),
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Airlock::start(cwd.path(), &args, &env);
    assert!(
        server.log().contains(&format!("store={store}")),
        "{}",
        server.log()
    );
    let http = http::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for path in ["/healthz", "/readyz"] {
        let r = http.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }

    removable.take_away();
    let (down, body) = wait_for_status(&http, &server.url("/readyz"), 503, noticed).await;
    assert!(body.contains("unreachable"), "{body}");
    // The process itself is still healthy: only the store is gone.
    let r = http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let metrics = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let failed_probes: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("airlock_store_errors_total{kind=\"readiness\"} "))
        .unwrap_or_else(|| panic!("no readiness errors counted:\n{metrics}"))
        .parse()
        .unwrap();
    if backend == Backend::Fs {
        assert_eq!(failed_probes, 1, "{metrics}");
    }

    removable.bring_back();
    let (up, _) = wait_for_status(&http, &server.url("/readyz"), 200, recovered).await;
    eprintln!("readyz: 503 {down:?} after the store went, 200 {up:?} after it came back");
}

on_both_stores!(async: readiness_follows_the_store);

/// Runs the binary (in a directory of its own) expecting it to refuse to start; returns
/// its one line of error.
fn refused_in_tmp(args: &[&str], envs: &[(&str, &str)]) -> String {
    let cwd = tempfile::tempdir().unwrap();
    refused(command(cwd.path()).args(args).envs(envs.iter().copied()))
}

/// Arguments, environment, and what the one line of refusal must name.
type Refusal<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a [&'a str]);

#[test]
fn bad_configuration_fails_in_one_line_that_names_the_fix() {
    let config_file = |text: &str| {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "{text}").unwrap();
        file
    };
    let misspelt = config_file("listen = \"127.0.0.1:0\"\nanonymous_reed = false");
    let misspelt = misspelt.path().to_str().unwrap();
    let bad_scope = config_file(
        "[[tokens]]\nname = \"ci\"\nsecret = \"0123456789abcdef0\"\nscopes = [\"push\"]",
    );
    let bad_scope = bad_scope.path().to_str().unwrap();
    #[rustfmt::skip]
    let rows: [Refusal; 8] = [
        (&["serve", "--listen", "nowhere"], &[], &["`listen`", "HOST:PORT"]),
        (&["serve"], &[("AIRLOCK_STORE", "gs://bucket")], &["`store`", "s3://"]),
        (&["serve", "--admin-token", "short"], &[], &["admin_token", "too short"]),
        (&["--config", misspelt, "serve"], &[], &["anonymous_reed", "line 2"]),
        (&["serve", "--config", bad_scope], &[], &["ci", "push"]),
        (&["serve", "--config", "/nonexistent/airlock.toml"], &[], &["cannot read config file"]),
        (&["serve", "--store", "/proc/airlock-store"], &[], &["/proc/airlock-store", "--store"]),
        (&["serve", "--shutdown-grace", "a while"], &[], &["shutdown_grace"]),
    ];
    for (args, env, needles) in rows {
        let e = refused_in_tmp(args, env);
        for needle in needles {
            assert!(e.contains(needle), "{args:?} {env:?}: no {needle:?} in {e}");
        }
    }
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

/// A conditional or range GET: its headers, and the status, Content-Range and body
/// expected.
type Conditional<'a> = (
    &'a [(&'a str, &'a str)],
    u16,
    Option<&'a str>,
    Option<&'a [u8]>,
);

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
    // A digest says nothing about whose bytes these are: an admin of one protocol or of
    // one name prefix is not an admin of the store.
    for (token, status) in [
        ("reader-token-0123456789", 403),
        ("images-admin-0123456789", 403),
        ("team-admin-0123456789", 403),
        ("not-a-token", 401),
    ] {
        let r = http.get(&url).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), status, "{token}");
    }

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

    #[rustfmt::skip]
    let rows: [Conditional; 5] = [
        (&[("range", "bytes=0-0")], 206, Some("bytes 0-0/100000"), Some(&data[..1])),
        (&[("range", "bytes=-10")], 206, None, Some(&data[100_000 - 10..])),
        (&[("range", "bytes=100000-")], 416, Some("bytes */100000"), None),
        // A stale If-Range falls back to the whole body.
        (&[("range", "bytes=0-9"), ("if-range", "\"other\"")], 200, None, None),
        (&[("if-none-match", &etag)], 304, None, None),
    ];
    for (headers, status, content_range, body) in rows {
        let mut request = http.get(&url).bearer_auth(ADMIN);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), status, "{headers:?}");
        if let Some(content_range) = content_range {
            assert_eq!(r.headers()["content-range"], content_range, "{headers:?}");
        }
        if let Some(body) = body {
            assert!(r.bytes().await.unwrap() == body, "{headers:?}");
        }
    }

    let missing = format!("/_airlock/blobs/sha256:{}", "0".repeat(64));
    for (path, status) in [
        (missing.as_str(), 404),
        ("/_airlock/blobs/sha256:..%2F..%2Fetc", 400),
    ] {
        let r = http
            .get(server.url(path))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{path}");
    }
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
        let fresh = client();
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

/// A client that sends `Expect: 100-continue` and is refused waits for nothing more; if
/// the refusal is late (past botocore's one-second wait, say), it sends the body anyway.
/// That body was never read, so the connection cannot carry another request: the refusal
/// says `Connection: close`, and the bytes sent after it are never taken for a request.
#[tokio::test]
async fn a_refusal_before_an_expected_body_closes_the_connection() {
    use std::io::{BufRead, BufReader, Read};
    let cwd = tempfile::tempdir().unwrap();
    let server = Airlock::start(cwd.path(), &["--admin-token", ADMIN], &[]);
    let addr = server.base.trim_start_matches("http://").to_string();
    let zeros = "0".repeat(64);
    tokio::task::spawn_blocking(move || {
        let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            tcp,
            "PUT /v2/team/app/blobs/uploads/x?digest=sha256:{zeros} HTTP/1.1\r\nHost: {addr}\r\n\
             Content-Length: 1\r\nExpect: 100-continue\r\n\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(tcp.try_clone().unwrap());
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push(line.trim_end().to_ascii_lowercase());
        }
        assert!(head[0].starts_with("http/1.1 4"), "{head:?}");
        assert!(head.iter().any(|h| h == "connection: close"), "{head:?}");
        // The late body, then a request of its own: neither is answered.
        let _ = write!(tcp, "xGET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
        let rest = String::from_utf8_lossy(&rest);
        assert!(
            !rest.contains("HTTP/1.1"),
            "answered after the refusal: {rest}"
        );
    })
    .await
    .unwrap();
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
async fn file_downloads_over_http1_are_sent_without_copying_and_arrive_intact() {
    const MIB: usize = 1024 * 1024;
    let cwd = tempfile::tempdir().unwrap();
    let store = cwd.path().join("store");
    // Not a whole number of sendfile frames, so the last one is short.
    let (digest, data) = seed_blob(&store, 9 * MIB + 12_345).await;
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

    // Alone, a download goes by sendfile.
    let before = zero_copy_bytes(&http, &server).await;
    assert!(get(http.clone(), None).await[..] == data[..]);
    assert_eq!(
        zero_copy_bytes(&http, &server).await - before,
        data.len() as u64,
        "alone: sendfile"
    );

    // Several at once on kept-alive connections too, and ranges across frame borders.
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
}

fn s3_env(g: &Garage) -> Vec<(&str, &str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", g.key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", g.secret.as_str()),
        ("AWS_REGION", g.region.as_str()),
    ]
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
    let e = refused_in_tmp(
        &["--store", &store, "--s3-endpoint", &g.endpoint, "check"],
        &wrong_secret,
    );
    assert!(e.contains("credentials"), "{e}");

    let e = refused_in_tmp(
        &[
            "--store",
            "s3://no-such-bucket-here",
            "--s3-endpoint",
            &g.endpoint,
            "check",
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
    let e = refused_in_tmp(
        &["--store", &store, "--s3-endpoint", &endpoint, "check"],
        &s3_env(g),
    );
    assert!(e.contains(&endpoint) || e.contains("reach"), "{e}");
}
