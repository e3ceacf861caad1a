//! HTTPS in the binary: HTTP/1.1 and HTTP/2 over TLS, certificate rotation while a
//! download is in flight, a bad new pair refused, bad files refused at start-up, and
//! pip, huggingface_hub and skopeo trusting a test CA. The CA and certificates are made
//! here with rcgen.

mod support;

use futures::StreamExt;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::airlock::{command, Airlock};
use support::images;
use support::process::{self, ok, venv_dir};
use support::seed_blob;

const ADMIN: &str = "admin-token-for-tests-0123";

/// A test certificate authority.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// A server certificate and its key, as PEM and DER.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // What OpenSSL's strict verification (Python 3.13's default) asks of a CA.
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(DnType::CommonName, "Airlock test CA");
        let cert = params.self_signed(&key).unwrap();
        Ca {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
        }
    }

    /// A certificate for `localhost` and `127.0.0.1` with this serial number.
    fn issue(&self, serial: u64) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("airlock test {serial}"));
        params.serial_number = Some(serial.into());
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

/// The files the server reads: written elsewhere, then renamed into place, as a
/// certificate manager does.
struct TlsDir {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl TlsDir {
    fn new(dir: &Path, ca: &Ca, leaf: &Leaf) -> TlsDir {
        std::fs::create_dir_all(dir.join("tls")).unwrap();
        let files = TlsDir {
            cert: dir.join("tls/tls.crt"),
            key: dir.join("tls/tls.key"),
            ca: dir.join("tls/ca.pem"),
        };
        std::fs::write(&files.ca, &ca.pem).unwrap();
        files.install(leaf);
        files
    }

    fn install(&self, leaf: &Leaf) {
        replace(&self.cert, leaf.cert_pem.as_bytes());
        replace(&self.key, leaf.key_pem.as_bytes());
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
        ]
    }
}

fn replace(path: &Path, data: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, data).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn start(cwd: &Path, tls: &TlsDir, extra: &[&str]) -> Airlock {
    let store = cwd.join("store");
    let mut args = tls.args();
    args.extend(["--store".into(), store.display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Airlock::start(cwd, &args, &[]);
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    server
}

/// A client that trusts only the test CA; a new one is a new connection.
fn client(ca: &Ca, http1: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .tls_info(true);
    if http1 {
        builder = builder.http1_only();
    }
    builder.build().unwrap()
}

/// The leaf certificate a response's connection was made with.
fn peer_cert(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("TLS info")
        .to_vec()
}

/// What a fresh connection to the server is shown.
async fn served_cert(server: &Airlock, ca: &Ca) -> Vec<u8> {
    let r = client(ca, false)
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    peer_cert(&r)
}

#[tokio::test]
async fn healthz_over_http1_and_http2() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let leaf = ca.issue(1);
    let tls = TlsDir::new(dir.path(), &ca, &leaf);
    let server = start(
        dir.path(),
        &tls,
        &["--admin-token", ADMIN, "--anonymous-read", "false"],
    );

    for (http1, version) in [
        (true, reqwest::Version::HTTP_11),
        (false, reqwest::Version::HTTP_2),
    ] {
        let r = client(&ca, http1)
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.version(), version);
        assert_eq!(peer_cert(&r), leaf.der);
        assert_eq!(r.text().await.unwrap(), "ok\n");
    }
    // URLs built from the Host header say https (here: the registry's token realm).
    let r = client(&ca, false)
        .get(server.url("/v2/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(&format!("realm=\"{}/token\"", server.base)),
        "{challenge}"
    );
    // The container health check speaks HTTPS too.
    let out = command(dir.path())
        .args(["healthcheck", "--url", &server.url("/healthz")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // Plain HTTP on the TLS port is not served.
    let plain = server.url("/healthz").replace("https://", "http://");
    let refused = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(&plain)
        .send()
        .await;
    assert!(refused.is_err() || refused.unwrap().status() != 200);
    // A client that does not trust the CA is refused by its own verifier.
    let untrusting = reqwest::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert!(untrusting.get(server.url("/healthz")).send().await.is_err());
}

#[tokio::test]
async fn rotation_serves_the_new_certificate_while_a_download_in_flight_completes() {
    let dir = tempfile::tempdir().unwrap();
    let (digest, data) = seed_blob(&dir.path().join("store"), 64 * 1024 * 1024).await;
    let ca = Ca::new();
    let old = ca.issue(1);
    let tls = TlsDir::new(dir.path(), &ca, &old);
    let server = start(dir.path(), &tls, &["--admin-token", ADMIN]);

    let downloading = client(&ca, false);
    let response = downloading
        .get(server.url(&format!("/_airlock/blobs/{digest}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(peer_cert(&response), old.der);
    let mut body = response.bytes_stream();
    let mut received = body.next().await.unwrap().unwrap().to_vec();

    let new = ca.issue(2);
    assert_ne!(new.der, old.der);
    tls.install(&new);
    server.wait_for_log("TLS certificate reloaded");
    assert_eq!(served_cert(&server, &ca).await, new.der);

    while let Some(chunk) = body.next().await {
        received.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(received.len(), data.len());
    assert!(received == data, "download differs after rotation");
}

#[tokio::test]
async fn sigterm_over_tls_lets_an_inflight_download_finish_and_refuses_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (digest, data) = seed_blob(&dir.path().join("store"), 48 * 1024 * 1024).await;
    let ca = Ca::new();
    let tls = TlsDir::new(dir.path(), &ca, &ca.issue(1));
    let mut server = start(
        dir.path(),
        &tls,
        &["--admin-token", ADMIN, "--shutdown-grace", "60s"],
    );
    let response = client(&ca, false)
        .get(server.url(&format!("/_airlock/blobs/{digest}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let mut body = response.bytes_stream();
    let mut received = body.next().await.unwrap().unwrap().to_vec();

    server.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while client(&ca, true)
        .get(server.url("/healthz"))
        .send()
        .await
        .is_ok()
    {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while let Some(chunk) = body.next().await {
        received.extend_from_slice(&chunk.unwrap());
    }
    assert!(received == data, "download differs after shutdown began");
    let status = server.wait_exit(Duration::from_secs(10)).expect("exited");
    assert!(status.success());
    server.wait_for_log("all requests finished");
}

#[tokio::test]
async fn grace_period_bounds_shutdown_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (digest, _) = seed_blob(&dir.path().join("store"), 48 * 1024 * 1024).await;
    let ca = Ca::new();
    let tls = TlsDir::new(dir.path(), &ca, &ca.issue(1));
    let mut server = start(
        dir.path(),
        &tls,
        &["--admin-token", ADMIN, "--shutdown-grace", "1s"],
    );
    // A client that stops reading: the download can never finish on its own.
    let response = client(&ca, true)
        .get(server.url(&format!("/_airlock/blobs/{digest}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
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

/// The S3 listener speaks TLS with the main listener's certificate, over HTTP/1.1 and
/// HTTP/2, and a rotated certificate reaches both.
#[tokio::test]
async fn the_s3_listener_serves_the_same_certificate_and_rotates_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("config.json"), b"{\"tls\": true}").unwrap();
    let store = dir.path().join("store");
    let out = command(dir.path())
        .args([
            "--store",
            store.to_str().unwrap(),
            "hf",
            "import",
            "org/tiny",
        ])
        .arg(&model)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let ca = Ca::new();
    let old = ca.issue(1);
    let tls = TlsDir::new(dir.path(), &ca, &old);
    let server = start(dir.path(), &tls, &["--s3api-listen", "127.0.0.1:0"]);
    let s3 = server.s3_endpoint();
    assert!(s3.starts_with("https://127.0.0.1:"), "{s3}");
    let object = format!("{s3}/models/org/tiny/config.json");
    for (http1, version) in [
        (true, reqwest::Version::HTTP_11),
        (false, reqwest::Version::HTTP_2),
    ] {
        let r = client(&ca, http1).get(&object).send().await.unwrap();
        assert_eq!((r.status().as_u16(), r.version()), (200, version));
        assert_eq!(peer_cert(&r), old.der);
        assert_eq!(&r.bytes().await.unwrap()[..], b"{\"tls\": true}");
    }
    let new = ca.issue(2);
    tls.install(&new);
    server.wait_for_log("TLS certificate reloaded");
    let r = client(&ca, false).get(&object).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(peer_cert(&r), new.der);
}

#[tokio::test]
async fn a_bad_new_pair_is_refused_and_the_old_certificate_kept() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let old = ca.issue(1);
    let tls = TlsDir::new(dir.path(), &ca, &old);
    let server = start(dir.path(), &tls, &[]);

    // A key that is not the certificate's.
    let stranger = KeyPair::generate().unwrap().serialize_pem();
    replace(&tls.key, stranger.as_bytes());
    let log = server.wait_for_log("TLS certificate not reloaded");
    assert!(
        log.contains("`tls_key`") && log.contains("is not the key of the certificate"),
        "{log}"
    );
    assert_eq!(served_cert(&server, &ca).await, old.der);

    // A key file that is not PEM at all.
    replace(&tls.key, b"this is not a key\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains("holds no PEM private key") {
        assert!(Instant::now() < deadline, "{}", server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served_cert(&server, &ca).await, old.der);

    // SIGHUP re-reads the files even when they have not changed (still refused here).
    let refusals = server.log().matches("TLS certificate not reloaded").count();
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.log().matches("TLS certificate not reloaded").count() == refusals {
        assert!(Instant::now() < deadline, "{}", server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served_cert(&server, &ca).await, old.der);

    // The right pair again: taken.
    let new = ca.issue(3);
    tls.install(&new);
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_cert(&server, &ca).await != new.der {
        assert!(Instant::now() < deadline, "{}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `airlock serve` expecting it to refuse to start; returns its one line of error.
fn refused(cwd: &Path, args: &[&str]) -> String {
    process::refused(
        command(cwd)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args),
    )
}

#[test]
fn bad_files_fail_start_up_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let leaf = ca.issue(1);
    let tls = TlsDir::new(dir.path(), &ca, &leaf);
    let cert = tls.cert.to_str().unwrap();
    let key = tls.key.to_str().unwrap();

    let e = refused(dir.path(), &["--tls-cert", cert]);
    assert!(e.contains("`tls_key`") && e.contains("--tls-key"), "{e}");

    let e = refused(
        dir.path(),
        &["--tls-cert", cert, "--tls-key", "/nonexistent/tls.key"],
    );
    assert!(
        e.contains("`tls_key`") && e.contains("/nonexistent/tls.key"),
        "{e}"
    );

    // The key in the certificate's place and the other way round.
    let e = refused(dir.path(), &["--tls-cert", key, "--tls-key", cert]);
    assert!(
        e.contains("`tls_cert`") && e.contains("no PEM certificate"),
        "{e}"
    );

    let other = dir.path().join("other.key");
    std::fs::write(&other, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let e = refused(
        dir.path(),
        &["--tls-cert", cert, "--tls-key", other.to_str().unwrap()],
    );
    assert!(e.contains("is not the key of the certificate"), "{e}");
}

// Real clients over HTTPS, trusting the test CA the way each is told to.
/// A client command with no CA bundle, index or proxy settings from this machine: it
/// trusts the test CA only as its own test tells it to. (requests lets
/// REQUESTS_CA_BUNDLE override pip's --cert, so it must not leak in.)
fn clean(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars() {
        let upper = k.to_ascii_uppercase();
        if upper.starts_with("PIP_")
            || upper.starts_with("HF_")
            || upper.starts_with("HUGGING")
            || upper.ends_with("_PROXY")
            || upper.contains("CA_BUNDLE")
            || upper.contains("SSL_CERT")
            || upper.contains("CA_CERTS")
        {
            cmd.env_remove(k);
        }
    }
    cmd
}
#[test]
#[ignore = "needs pip, huggingface_hub and skopeo: bash tests/run-all.sh"]
fn pip_huggingface_hub_and_skopeo_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let store = dir.join("store");
    let import = |args: &[&str]| {
        ok(command(dir)
            .args(["--store", store.to_str().unwrap()])
            .args(args))
    };

    let wheels = dir.join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    let wheel = support::wheels::wheel("tls-demo", "1.0", &[], None);
    wheel.write_to(&wheels);
    import(&["pypi", "import", wheels.to_str().unwrap()]);

    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    let config_json = r#"{"architectures":["Tiny"],"model_type":"tiny"}"#;
    std::fs::write(model.join("config.json"), config_json).unwrap();
    import(&["hf", "import", "org/tiny", model.to_str().unwrap()]);

    let layout = dir.join("layout");
    let (manifest_digest, _) = images::tiny_layout(&layout, "docker.io/ml/tiny:1.0", b"layer");
    import(&["oci", "import", layout.to_str().unwrap()]);

    let ca = Ca::new();
    let tls = TlsDir::new(dir, &ca, &ca.issue(1));
    let server = start(dir, &tls, &[]);
    let base = server.base.clone();
    let host = base.trim_start_matches("https://");

    // pip with --cert.
    let out = dir.join("pip-out");
    ok(clean(venv_dir("AIRLOCK_TEST_VENV").join("bin/pip"))
        .args(["download", "--no-deps", "--disable-pip-version-check"])
        .args(["--index-url", &format!("{base}/simple/")])
        .arg("--cert")
        .arg(&tls.ca)
        .arg("--dest")
        .arg(&out)
        .arg("tls-demo==1.0")
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_NO_CACHE_DIR", "1"));
    assert_eq!(
        std::fs::read(out.join(&wheel.filename)).unwrap(),
        wheel.bytes
    );

    // huggingface_hub with the CA bundle in the environment.
    let got = ok(clean(venv_dir("AIRLOCK_TEST_VENV").join("bin/python"))
        .env("HF_ENDPOINT", &base)
        .env("HF_HOME", dir.join("hf-home"))
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("REQUESTS_CA_BUNDLE", &tls.ca)
        .env("SSL_CERT_FILE", &tls.ca)
        .args([
            "-c",
            "from huggingface_hub import hf_hub_download\n\
             print(open(hf_hub_download('org/tiny', 'config.json')).read())",
        ]));
    assert!(got.contains(config_json), "{got}");

    // skopeo with a certificate directory holding the CA.
    let certs = dir.join("certs.d");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(&tls.ca, certs.join("ca.crt")).unwrap();
    let policy = dir.join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    std::fs::write(dir.join("registries.conf"), "").unwrap();
    let copied = dir.join("copied");
    ok(clean("skopeo")
        .arg("--policy")
        .arg(&policy)
        .arg("--registries-conf")
        .arg(dir.join("registries.conf"))
        .env("HOME", dir)
        .env_remove("REGISTRY_AUTH_FILE")
        .args(["copy", "--preserve-digests", "--src-cert-dir"])
        .arg(&certs)
        .arg(format!("docker://{host}/ml/tiny:1.0"))
        .arg(format!("oci:{}:1.0", copied.display())));
    assert_eq!(images::layout_manifest_digest(&copied), manifest_digest);
}
