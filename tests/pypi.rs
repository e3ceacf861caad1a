//! The Python index over HTTP against the real binary: pages in both formats,
//! negotiation, redirects, caching, files and `.metadata`, uploads as twine sends them,
//! import and yank through the CLI, named indexes, and refusals.

mod support;

use reqwest::multipart::{Form, Part};
use serde_json::Value;
use std::io::Write as _;
use support::airlock::{command, Airlock};
use support::http;
use support::store_walk::file_count;
use support::twine;
use support::wheels::{sdist, wheel, Dist};

const ADMIN: &str = "admin-token-for-tests-0123";
const TEAM: &str = "team-token-0123456789ab";
const JSON: &str = "application/vnd.pypi.simple.v1+json";
const PIP_ACCEPT: &str =
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";

struct Fixture {
    server: Airlock,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("airlock.toml");
    let mut f = std::fs::File::create(&config).unwrap();
    writeln!(
        f,
        "store = \"{}\"\n[pypi]\nindexes = [\"team\"]\n[[tokens]]\nname = \"team\"\nsecret = \"{TEAM}\"\nscopes = [\"write:pypi:team/\"]",
        dir.path().join("store").display()
    )
    .unwrap();
    let server = Airlock::start(
        dir.path(),
        &["--config", config.to_str().unwrap(), "--admin-token", ADMIN],
        &[],
    );
    Fixture {
        server,
        dir,
        config,
    }
}

/// A multipart upload the way twine builds it.
async fn upload(
    base: &str,
    index_path: &str,
    dist: &Dist,
    token: Option<&str>,
    claimed_sha: Option<&str>,
) -> reqwest::Response {
    twine::upload(
        &http::client(),
        &format!("{base}{index_path}"),
        dist,
        token,
        claimed_sha,
    )
    .await
}

#[tokio::test]
async fn upload_then_serve_pages_files_and_metadata() {
    let fx = start();
    let base = &fx.server.base;
    let client = http::client();
    let core = wheel("Demo_Core", "1.0", &["requests>=2"], Some(">=3.8,<4"));
    let r = upload(base, "/legacy/", &core, Some(ADMIN), None).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // JSON for pip's Accept, with every PEP 691/700 field.
    let r = client
        .get(format!("{base}/simple/demo-core/"))
        .header("accept", PIP_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], JSON);
    assert_eq!(r.headers()["vary"], "Accept");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["meta"]["api-version"], "1.1");
    assert_eq!(page["name"], "demo-core");
    assert_eq!(page["versions"], serde_json::json!(["1.0"]));
    let file = &page["files"][0];
    assert_eq!(file["filename"], core.filename);
    assert_eq!(file["hashes"]["sha256"], core.sha256());
    assert_eq!(file["requires-python"], ">=3.8,<4");
    assert_eq!(file["size"], core.bytes.len());
    assert_eq!(file["yanked"], false);
    assert!(file["upload-time"].as_str().unwrap().ends_with('Z'));
    let metadata_sha = file["core-metadata"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(file["dist-info-metadata"]["sha256"], metadata_sha.as_str());

    // Conditional GET.
    let r = client
        .get(format!("{base}/simple/demo-core/"))
        .header("accept", PIP_ACCEPT)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    // The file URL is relative to the page; resolve it as pip does.
    let page_url = reqwest::Url::parse(&format!("{base}/simple/demo-core/")).unwrap();
    let file_url = page_url.join(file["url"].as_str().unwrap()).unwrap();
    let r = client.get(file_url.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    assert_eq!(r.bytes().await.unwrap(), core.bytes);
    let r = client
        .get(file_url.clone())
        .header("range", "bytes=-22")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.bytes().await.unwrap(),
        core.bytes[core.bytes.len() - 22..]
    );
    // The .metadata file hashes to the announced value and is the wheel's METADATA.
    let metadata_url = format!("{file_url}.metadata");
    let body = client
        .get(&metadata_url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body)),
        metadata_sha
    );
    assert!(String::from_utf8_lossy(&body).contains("Requires-Dist: requests>=2"));

    // HTML for browsers and legacy clients, with escaped attributes.
    let r = client
        .get(format!("{base}/simple/demo-core/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/html");
    let html = r.text().await.unwrap();
    assert!(
        html.contains("<meta name=\"pypi:repository-version\" content=\"1.1\">"),
        "{html}"
    );
    assert!(
        html.contains("data-requires-python=\"&gt;=3.8,&lt;4\""),
        "{html}"
    );
    assert!(html.contains(&format!("data-core-metadata=\"sha256={metadata_sha}\"")));
    assert!(html.contains(&format!("#sha256={}", core.sha256())));
    let r = client
        .get(format!("{base}/simple/demo-core/"))
        .header("accept", "application/vnd.pypi.simple.v1+html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.pypi.simple.v1+html"
    );
    let r = client
        .get(format!("{base}/simple/demo-core/?format={JSON}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], JSON);

    // Root page in both formats.
    let root: Value = client
        .get(format!("{base}/simple/"))
        .header("accept", JSON)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Listed by normalized name: the list is the listing of the project documents.
    assert_eq!(root["projects"], serde_json::json!([{"name": "demo-core"}]));
    let html = client
        .get(format!("{base}/simple/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("<a href=\"demo-core/\">demo-core</a>"),
        "{html}"
    );
    // Sent whole once, the page is kept with an ETag of its bytes: revalidation is a 304.
    let r = client.get(format!("{base}/simple/")).send().await.unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(r.text().await.unwrap(), html);
    let r = client
        .get(format!("{base}/simple/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    // Negotiation failure, redirects to the normalized URL, unknown project.
    let r = client
        .get(format!("{base}/simple/demo-core/"))
        .header("accept", "application/xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406);
    let r = client
        .get(format!("{base}/simple/Demo.Core/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"], "/simple/demo-core/");
    let r = client
        .get(format!("{base}/simple/demo-core"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/simple/demo-core/");
    assert_eq!(
        client
            .get(format!("{base}/simple/nothing-here/"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // The same index is reachable under its name.
    let r = client
        .get(format!("{base}/pypi/default/simple/demo-core/"))
        .header("accept", JSON)
        .send()
        .await
        .unwrap();
    let page: Value = r.json().await.unwrap();
    let url = reqwest::Url::parse(&format!("{base}/pypi/default/simple/demo-core/"))
        .unwrap()
        .join(page["files"][0]["url"].as_str().unwrap())
        .unwrap();
    assert_eq!(url, file_url);
}

/// One upload and its answer: what it is, the index, the file, the token, the SHA-256
/// the form claims (else the file's), the status, and a text the answer must hold.
type UploadRow<'a> = (
    &'a str,
    &'a str,
    &'a Dist,
    Option<&'a str>,
    Option<&'a str>,
    u16,
    &'a str,
);

#[tokio::test]
async fn uploads_are_verified_authorized_and_never_overwrite() {
    let fx = start();
    let base = &fx.server.base;
    let dist = wheel("guarded", "1.0", &[], None);

    let other = wheel("guarded", "2.0", &[], None);
    let mut tampered = wheel("guarded", "1.0", &["idna"], None);
    tampered.filename = dist.filename.clone();
    let junk = Dist {
        filename: "guarded-3.0-py3-none-any.whl".into(),
        bytes: b"not a zip".to_vec(),
    };
    let mut renamed = wheel("guarded", "4.0", &[], None);
    renamed.filename = "other-4.0-py3-none-any.whl".into();
    let zeros = "0".repeat(64);
    let (legacy, team) = ("/legacy/", "/pypi/team/legacy/");
    #[rustfmt::skip]
    let rows: [UploadRow; 9] = [
        ("anonymous", legacy, &dist, None, None, 401, ""),
        ("an unknown token", legacy, &dist, Some("wrong-token-0123456789"), None, 401, ""),
        // The team token may write only to the team index.
        ("team token, default index", legacy, &dist, Some(TEAM), None, 403, ""),
        ("team token, team index", team, &dist, Some(TEAM), None, 200, ""),
        // A corrupted upload: the claimed digest does not match.
        ("a wrong claimed digest", team, &other, Some(TEAM), Some(&zeros), 400, "does not match"),
        // Same file again: idempotent. Different content under the same name: refused.
        ("the same file again", team, &dist, Some(TEAM), None, 200, ""),
        ("other bytes, same name", team, &tampered, Some(TEAM), None, 409, "File already exists"),
        // Not a distribution, or one whose name does not match its metadata.
        ("not a zip", team, &junk, Some(TEAM), None, 400, ""),
        ("a name its metadata denies", team, &renamed, Some(ADMIN), None, 400, ""),
    ];
    for (what, index, file, token, claimed, status, text) in rows {
        let r = upload(base, index, file, token, claimed).await;
        let challenge = r.headers().get("www-authenticate").cloned();
        assert_eq!(r.status(), status, "{what}");
        if status == 401 {
            let challenge = challenge.unwrap_or_else(|| panic!("{what}: no challenge"));
            assert!(challenge.to_str().unwrap().starts_with("Basic"), "{what}");
        }
        let body = r.text().await.unwrap();
        assert!(body.contains(text), "{what}: {body}");
    }

    // Only the good file is listed; nothing was stored for the refused ones.
    let page: Value = http::client()
        .get(format!("{base}/pypi/team/simple/guarded/"))
        .header("accept", JSON)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["files"].as_array().unwrap().len(), 1);
    let blob_count = file_count(&fx.dir.path().join("store/blobs"));
    assert_eq!(blob_count, 2, "one wheel and its metadata");
    // The default index never saw it, and an unknown index is a clear 404.
    assert_eq!(
        http::client()
            .get(format!("{base}/simple/guarded/"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let r = http::client()
        .get(format!("{base}/pypi/nope/simple/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("team"));
    // Path games.
    for path in [
        "/pypi/team/files/guarded/..%2F..%2Fetc/passwd",
        "/simple/..%2F..%2F/",
        "/pypi/team/files/guarded/x/y",
    ] {
        let status = http::client()
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "{path}");
    }
}

#[tokio::test]
async fn import_and_yank_through_the_cli() {
    let fx = start();
    let base = &fx.server.base;
    let wheelhouse = fx.dir.path().join("wheelhouse");
    std::fs::create_dir_all(wheelhouse.join("nested")).unwrap();
    wheel("alpha", "1.0", &[], None).write_to(&wheelhouse);
    wheel("alpha", "1.1", &[], None).write_to(&wheelhouse);
    sdist("beta-pkg", "0.5", &["alpha"]).write_to(&wheelhouse.join("nested"));
    std::fs::write(wheelhouse.join("broken-1.0-py3-none-any.whl"), b"garbage").unwrap();
    std::fs::write(wheelhouse.join("README.txt"), b"not a distribution").unwrap();
    let config = fx.config.to_str().unwrap();

    let out = command(fx.dir.path())
        .args([
            "--config",
            config,
            "pypi",
            "import",
            wheelhouse.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a broken file must fail the import: {stderr}"
    );
    assert!(
        stderr.contains("3 added, 0 already present, 1 failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("broken-1.0-py3-none-any.whl") && stderr.contains("zip"),
        "{stderr}"
    );

    // Idempotent: the second run adds nothing.
    std::fs::remove_file(wheelhouse.join("broken-1.0-py3-none-any.whl")).unwrap();
    let out = command(fx.dir.path())
        .args([
            "--config",
            config,
            "pypi",
            "import",
            wheelhouse.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("0 added, 3 already present, 0 failed"),
        "{stderr}"
    );

    let page = |project: &'static str| {
        let url = format!("{base}/simple/{project}/");
        async move {
            http::client()
                .get(url)
                .header("accept", JSON)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let beta = page("beta-pkg").await;
    assert_eq!(beta["files"][0]["filename"], "beta_pkg-0.5.tar.gz");
    // An sdist's PKG-INFO is not announced as PEP 658 metadata.
    assert_eq!(beta["files"][0]["core-metadata"], false);

    let out = command(fx.dir.path())
        .args([
            "--config",
            config,
            "pypi",
            "yank",
            "alpha",
            "1.1",
            "--reason",
            "broken <build>",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The page cache is bounded by cache.mutable_ttl (5 s by default).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let alpha = page("alpha").await;
        let yanked: Vec<_> = alpha["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["yanked"].clone())
            .collect();
        if yanked.contains(&Value::from("broken <build>")) {
            assert_eq!(
                yanked.iter().filter(|y| **y == Value::Bool(false)).count(),
                1
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "yank not visible");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let out = command(fx.dir.path())
        .args(["--config", config, "pypi", "yank", "alpha", "9.9"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("known: 1.0, 1.1"));
    let out = command(fx.dir.path())
        .args(["--config", config, "pypi", "unyank", "alpha", "1.1"])
        .output()
        .unwrap();
    assert!(out.status.success());
}

/// A multipart body by hand, for the malformed cases a client library will not build.
async fn raw_upload(base: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    http::client()
        .post(format!("{base}/legacy/"))
        .basic_auth("__token__", Some(ADMIN))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn bad_uploads_get_clear_errors_and_store_nothing() {
    let fx = start();
    let base = &fx.server.base;
    let blobs_before = || {
        let dir = fx.dir.path().join("store/blobs");
        if dir.exists() {
            file_count(&dir)
        } else {
            0
        }
    };

    // Malformed multipart.
    let r = raw_upload(
        base,
        "multipart/form-data; boundary=xyz",
        b"this is not multipart".to_vec(),
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = raw_upload(base, "application/json", b"{}".to_vec()).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("multipart"));
    // A form without the file.
    let form = Form::new().text(":action", "file_upload").text("name", "x");
    let r = http::client()
        .post(format!("{base}/legacy/"))
        .basic_auth("__token__", Some(ADMIN))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("content"));
    // Path traversal in the file name.
    let dist = wheel("evil", "1.0", &[], None);
    let form = Form::new().text(":action", "file_upload").part(
        "content",
        Part::bytes(dist.bytes.clone()).file_name("../../evil-1.0-py3-none-any.whl"),
    );
    let r = http::client()
        .post(format!("{base}/legacy/"))
        .basic_auth("__token__", Some(ADMIN))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A zip-bomb-like wheel: a few KiB that inflate to a 64 MiB METADATA.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("bomb-1.0.dist-info/METADATA", options)
        .unwrap();
    let zeros = vec![b' '; 1 << 20];
    for _ in 0..64 {
        zip.write_all(&zeros).unwrap();
    }
    let bomb = Dist {
        filename: "bomb-1.0-py3-none-any.whl".into(),
        bytes: zip.finish().unwrap().into_inner(),
    };
    assert!(bomb.bytes.len() < 1 << 20);
    let r = upload(base, "/legacy/", &bomb, Some(ADMIN), None).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("large"));
    assert_eq!(blobs_before(), 0, "nothing stored for refused uploads");
}

#[tokio::test]
async fn oversized_uploads_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("airlock.toml");
    std::fs::write(&config, "[pypi]\nmax_upload_bytes = 2000\n").unwrap();
    let store = dir.path().join("store");
    let server = Airlock::start(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
            "--admin-token",
            ADMIN,
        ],
        &[],
    );
    let mut big = wheel("big", "1.0", &[], None);
    let padding = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect::<Vec<_>>();
    big.bytes.extend_from_slice(&padding);
    let r = upload(&server.base, "/legacy/", &big, Some(ADMIN), None).await;
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("max_upload_bytes"));
    assert!(!store.join("blobs").exists());
}

/// The server's peak resident memory so far, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// A form text field is refused once the fields pass their 16 MiB budget, without the
/// field ever being held whole (it used to be read to its end first: 60 MiB in memory).
#[tokio::test]
async fn an_oversized_form_field_is_never_held_whole() {
    let fx = start();
    let before = peak_rss_kib(fx.server.pid());
    const FIELD: usize = 60 * 1024 * 1024;
    let head = "--B\r\nContent-Disposition: form-data; name=\":action\"\r\n\r\nfile_upload\r\n\
                --B\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\n";
    let pieces = std::iter::once(bytes::Bytes::from(head))
        .chain((0..FIELD / (1 << 20)).map(|_| bytes::Bytes::from(vec![b'a'; 1 << 20])))
        .chain(std::iter::once(bytes::Bytes::from("\r\n--B--\r\n")))
        .map(Ok::<_, std::io::Error>);
    let r = http::client()
        .post(format!("{}/legacy/", fx.server.base))
        .basic_auth("__token__", Some(ADMIN))
        .header("content-type", "multipart/form-data; boundary=B")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("form fields too large"));
    let grown = peak_rss_kib(fx.server.pid()).saturating_sub(before);
    assert!(
        grown < 40 * 1024,
        "the server's peak memory grew by {grown} KiB"
    );
}

#[tokio::test]
async fn odd_names_and_markers_are_escaped() {
    let fx = start();
    let base = &fx.server.base;
    let odd = wheel(
        "Odd.Name_pkg",
        "1.0rc1",
        &["other; python_version < \"3.9\""],
        Some("!=3.0.*,<4,>=2.7"),
    );
    let r = upload(base, "/legacy/", &odd, Some(ADMIN), None).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let out = command(fx.dir.path())
        .args([
            "--config",
            fx.config.to_str().unwrap(),
            "pypi",
            "yank",
            "odd-name-pkg",
            "1.0rc1",
            "--reason",
            "it's \"<broken>\" & bad",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let html = loop {
        let html = http::client()
            .get(format!("{base}/simple/odd-name-pkg/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if html.contains("data-yanked") {
            break html;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert!(
        html.contains("data-requires-python=\"!=3.0.*,&lt;4,&gt;=2.7\""),
        "{html}"
    );
    assert!(
        html.contains("data-yanked=\"it&#x27;s &quot;&lt;broken&gt;&quot; &amp; bad\""),
        "{html}"
    );
    assert!(
        html.contains("<title>Links for Odd.Name_pkg</title>"),
        "{html}"
    );
    let json: Value = http::client()
        .get(format!("{base}/simple/odd-name-pkg/"))
        .header("accept", JSON)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["files"][0]["yanked"], "it's \"<broken>\" & bad");
    assert_eq!(json["files"][0]["requires-python"], "!=3.0.*,<4,>=2.7");
    assert_eq!(json["name"], "odd-name-pkg");
}
