//! Trust findings over HTTP against the real binary: untrusted input parsed in linear
//! time and within bounds (`.gitattributes`, the commit NDJSON), manifests held to the
//! manifest media types, `nosniff` on every response, a token service that never renews
//! its own tokens, and scopes that grant whole names. The Xet parsers' property tests
//! live in `xet_parsers/`.

mod support;
#[path = "xet_parsers/mod.rs"]
mod xet_parsers;

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use support::airlock::Airlock;
use support::backend::{Backend, StoreArgs};
use support::http;
use support::hub::{self, file_line, header_line, ndjson};
use support::sha256;

/// Bounded, so a parser that never answers fails its test rather than hanging the run.
fn client() -> reqwest::Client {
    http::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

const ADMIN: &str = "admin-token-for-tests-0123";
const TEAM: &str = "team-token-0123456789ab";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// `airlock serve` on `backend` with the admin token and `config` (tokens, settings).
fn serve(backend: Backend, dir: &Path, config: &str) -> Airlock {
    let file = dir.join("airlock.toml");
    std::fs::write(&file, config).unwrap();
    StoreArgs::new(backend, dir).serve(
        dir,
        &["--config", file.to_str().unwrap(), "--admin-token", ADMIN],
    )
}

async fn create_model(server: &Airlock, token: &str, org: &str, name: &str) -> u16 {
    hub::create_model(&client(), &server.base, token, org, name)
        .await
        .0
}

/// A `.gitattributes` with a pattern whose backtracking is exponential in its stars
/// (each star multiplied a preupload's time; seven took 20 s for a 60-character path),
/// then a preupload of a path it almost matches: answered at once, with git's answer.
async fn gitattributes_with_many_stars(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(backend, dir.path(), "");
    assert_eq!(create_model(&server, ADMIN, "org", "stars").await, 200);
    let attributes = format!(
        "{}b filter=lfs diff=lfs merge=lfs -text\n*.dat filter=lfs\nsmall.dat -filter\n",
        "*a".repeat(12)
    );
    let r = hub::commit(&client(), &server.base, ADMIN, "org/stars")
        .body(ndjson(&[
            header_line("test"),
            file_line(".gitattributes", attributes.as_bytes()),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    let near_miss = format!("{}c", "a".repeat(60));
    let files: Vec<Value> = [near_miss.as_str(), "x/w.dat", "small.dat", "aab"]
        .iter()
        .map(|p| json!({ "path": p, "sample": "", "size": 10 }))
        .collect();
    let started = Instant::now();
    let r = client()
        .post(server.url("/api/models/org/stars/preupload/main"))
        .bearer_auth(ADMIN)
        .json(&json!({ "files": files }))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("preupload answered within 20 s");
    let elapsed = started.elapsed();
    let body: Value = r.json().await.unwrap();
    let mode = |path: &str| {
        body["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path)
            .map(|f| f["uploadMode"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(mode(&near_miss), "regular");
    assert_eq!(
        mode("x/w.dat"),
        "lfs",
        "a pattern without / matches at any depth"
    );
    assert_eq!(mode("small.dat"), "regular", "a later -filter unsets");
    assert_eq!(mode("aab"), "regular", "twelve `*a` need twelve a's");
    assert!(
        elapsed < Duration::from_secs(5),
        "preupload took {elapsed:?}"
    );
}

/// A 160 KB commit line sent one byte per chunk (quadratic before: ~10 s in release),
/// and a line over the limit refused with 413 in the Hub's error format.
async fn commit_lines_linear_and_bounded(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(backend, dir.path(), "");
    assert_eq!(create_model(&server, ADMIN, "org", "lines").await, 200);
    let content: Vec<u8> = support::pseudo_random(120 * 1024, 7)
        .into_iter()
        .map(|b| b'a' + b % 26)
        .collect();
    let body = ndjson(&[header_line("test"), file_line("big.txt", &content)]).into_bytes();
    let chunks = body.into_iter().map(|b| Ok::<_, std::io::Error>(vec![b]));
    let started = Instant::now();
    let r = hub::commit(&client(), &server.base, ADMIN, "org/lines")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("commit answered within 30 s");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let got = client()
        .get(server.url("/org/lines/resolve/main/big.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap(), content);

    // One line longer than base64 of an LFS-threshold file, never ending.
    let long = vec![b'x'; 16 * 1024 * 1024];
    let r = hub::commit(&client(), &server.base, ADMIN, "org/lines")
        .body(long)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.headers().contains_key("x-error-message"));
    let error: Value = r.json().await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("line longer"),
        "{error}"
    );
}

/// Manifests only as the OCI and Docker manifest types: `text/html` with a script in an
/// annotation is refused, so is a document that is both an image and an index; a valid
/// manifest is served with its type, and `nosniff`.
async fn manifests_only_as_manifest_types(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(backend, dir.path(), "");
    let http = client();
    let repo = "library/html";
    let digest = support::push_image(&http, &server.base, ADMIN, repo, "v1", b"layer").await;
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let image = |media_type: Option<&str>, extra: Value| {
        let mut m = json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config), "size": config.len()},
            "layers": [],
            "annotations": {"x": "<html><script>alert(document.cookie)</script></html>"},
        });
        if let Some(t) = media_type {
            m["mediaType"] = t.into();
        }
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        m.to_string()
    };
    let child = json!([{ "mediaType": OCI_MANIFEST, "digest": digest, "size": 1 }]);
    let index = "application/vnd.oci.image.index.v1+json";
    for (content_type, body) in [
        ("text/html", image(None, json!({}))),
        ("text/html", image(Some("text/html"), json!({}))),
        (OCI_MANIFEST, image(Some("text/html"), json!({}))),
        (
            OCI_MANIFEST,
            image(Some(OCI_MANIFEST), json!({ "manifests": child })),
        ),
        (index, image(Some(index), json!({ "manifests": child }))),
    ] {
        let r = http
            .put(server.url(&format!("/v2/{repo}/manifests/evil")))
            .bearer_auth(ADMIN)
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, 400, "{content_type} {body}: {text}");
        assert!(text.contains("MANIFEST_INVALID"), "{text}");
    }
    let r = http
        .get(server.url(&format!("/v2/{repo}/manifests/evil")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let r = http
        .get(server.url(&format!("/v2/{repo}/manifests/v1")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], OCI_MANIFEST);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
}

on_both_stores!(async:
    gitattributes_with_many_stars,
    commit_lines_linear_and_bounded,
    manifests_only_as_manifest_types,
    every_response_says_nosniff,
    token_service_never_renews_its_own_tokens,
    scope_prefixes_grant_whole_segments,
    hub_write_scope_creates_its_repos,
    hub_model_datasets_x_is_not_dataset_x,
);

/// Every protocol's answers, successes and errors alike, carry `nosniff`.
async fn every_response_says_nosniff(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(backend, dir.path(), "");
    for path in [
        "/",
        "/healthz",
        "/v2/",
        "/v2/nothing/here/manifests/latest",
        "/simple/",
        "/simple/nothing/",
        "/api/models",
        "/api/models/nobody/nothing",
        "/nobody/nothing/resolve/main/x",
        "/ui/",
        "/token?service=airlock",
    ] {
        for token in [None, Some(ADMIN), Some("wrong-token-0123456789")] {
            let mut request = client().get(server.url(path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let r = request.send().await.unwrap();
            assert_eq!(
                r.headers()
                    .get("x-content-type-options")
                    .map(|v| v.to_str().unwrap()),
                Some("nosniff"),
                "{path} ({}, token {token:?})",
                r.status()
            );
        }
    }
}

async fn token_form(server: &Airlock, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let r = client()
        .post(server.url("/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn token_config(secret: &str) -> String {
    format!(
        "[oci]\ntoken_secret = \"signing-secret-stays-the-same-0123\"\n\
         [[tokens]]\nname = \"ci\"\nsecret = \"{secret}\"\nscopes = [\"write:oci:docker.io/ci/\"]\n"
    )
}

/// `/token` mints tokens for configured credentials only: a token it issued, leaked,
/// gets no successor as `password` or `refresh_token`; a refresh token is no access
/// token; and rotating the client's secret revokes its refresh tokens (the signing key
/// is fixed here, so only that binding can).
async fn token_service_never_renews_its_own_tokens(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let old = "ci-secret-before-rotation-01";
    let scope = "repository:ci/app:pull,push";
    let mut server = serve(backend, dir.path(), &token_config(old));
    let password = |p: &'static str| {
        vec![
            ("grant_type", "password"),
            ("username", "ci"),
            ("password", p),
            ("service", "airlock"),
            ("scope", scope),
        ]
    };

    let (s, issued) = token_form(&server, &password(old)).await;
    assert_eq!(s, 200, "{issued}");
    let leaked = issued["token"].as_str().unwrap().to_string();
    let r = client()
        .get(server.url("/v2/ci/app/tags/list"))
        .bearer_auth(&leaked)
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 401, "the issued token works on the registry");
    for form in [
        vec![
            ("grant_type", "password"),
            ("username", "ci"),
            ("password", leaked.as_str()),
            ("service", "airlock"),
            ("scope", scope),
        ],
        vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", leaked.as_str()),
            ("service", "airlock"),
            ("scope", scope),
        ],
    ] {
        let (s, body) = token_form(&server, &form).await;
        assert_eq!(s, 401, "a leaked access token renewed itself: {body}");
    }
    let r = client()
        .get(server.url(&format!("/token?service=airlock&scope={scope}")))
        .basic_auth("ci", Some(&leaked))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "nor through Basic auth");

    let mut offline = password(old);
    offline.push(("access_type", "offline"));
    let (s, body) = token_form(&server, &offline).await;
    assert_eq!(s, 200);
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(refresh, body["token"].as_str().unwrap());
    let r = client()
        .get(server.url("/v2/ci/app/tags/list"))
        .bearer_auth(&refresh)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a refresh token is not an access token");
    let by_refresh = |refresh: String| {
        vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", refresh),
            ("service", "airlock".to_string()),
            ("scope", scope.to_string()),
        ]
    };
    let form = by_refresh(refresh.clone());
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, body) = token_form(&server, &form).await;
    assert_eq!(s, 200, "{body}");
    assert!(body["token"].is_string());

    // The client's secret is rotated: its refresh token dies with the old secret.
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(10)).expect("stopped");
    let new = "ci-secret-after-rotation-02";
    let server = serve(backend, dir.path(), &token_config(new));
    let (s, body) = token_form(&server, &form).await;
    assert_eq!(s, 401, "a refresh token outlived its secret: {body}");
    let (s, _) = token_form(&server, &password(old)).await;
    assert_eq!(s, 401);
    let (s, _) = token_form(&server, &password(new)).await;
    assert_eq!(s, 200);
}

fn team_server(backend: Backend, dir: &Path) -> Airlock {
    serve(
        backend,
        dir,
        &format!(
            "[[tokens]]\nname = \"team\"\nsecret = \"{TEAM}\"\n\
             scopes = [\"write:oci:docker.io/team\", \"write:hf:alice/\", \"write:hf:datasets/\"]\n"
        ),
    )
}

async fn commit_a_file(server: &Airlock, token: &str, id: &str) -> StatusCode {
    hub::commit(&client(), &server.base, token, id)
        .body(ndjson(&[header_line("test"), file_line("a.txt", b"hello")]))
        .send()
        .await
        .unwrap()
        .status()
}

/// A prefix grants whole segments: `docker.io/team` never grants `docker.io/team-evil`.
async fn scope_prefixes_grant_whole_segments(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = team_server(backend, dir.path());
    let http = client();
    support::push_image(&http, &server.base, TEAM, "team/app", "v1", b"mine").await;
    let r = http
        .post(server.url("/v2/team-evil/app/blobs/uploads/"))
        .bearer_auth(TEAM)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "docker.io/team granted docker.io/team-evil"
    );
}

/// `write:hf:alice/` creates `alice/...` repositories and commits to them, and nothing
/// outside `alice/`.
async fn hub_write_scope_creates_its_repos(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = team_server(backend, dir.path());
    assert_eq!(create_model(&server, TEAM, "alice", "m").await, 200);
    assert_eq!(commit_a_file(&server, TEAM, "alice/m").await, 200);
    assert_eq!(create_model(&server, TEAM, "bob", "m").await, 403);
    assert_eq!(create_model(&server, ADMIN, "bob", "m").await, 200);
    assert_eq!(commit_a_file(&server, TEAM, "bob/m").await, 403);
}

/// `write:hf:datasets/` is every dataset, not the models of an org named `datasets`:
/// the model `datasets/x` and the dataset `x` are two scope names.
async fn hub_model_datasets_x_is_not_dataset_x(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = team_server(backend, dir.path());
    assert_eq!(create_model(&server, ADMIN, "datasets", "x").await, 200);
    assert_eq!(commit_a_file(&server, TEAM, "datasets/x").await, 403);
}
