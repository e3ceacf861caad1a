//! The OCI distribution API over HTTP against the real binary: every endpoint of the
//! spec's conformance areas (pull, push in every upload style, content discovery,
//! content management, referrers), the token service, naming across upstreams, and
//! refusals of bad input with the spec's codes, leaving nothing behind.

mod support;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha512};
use std::io::Write as _;
use support::airlock::Airlock;
use support::http;
use support::images;
use support::sha256;

const ADMIN: &str = "admin-token-for-tests-0123";
const TEAM: &str = "team-token-0123456789ab";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

struct Fixture {
    server: Airlock,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

fn start_with(extra: &str, args: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("airlock.toml");
    let mut f = std::fs::File::create(&config).unwrap();
    writeln!(
        f,
        "store = \"{}\"\n{extra}\n[[tokens]]\nname = \"team\"\nsecret = \"{TEAM}\"\nscopes = [\"write:oci:docker.io/team/\"]",
        dir.path().join("store").display()
    )
    .unwrap();
    let mut all = vec!["--config", config.to_str().unwrap(), "--admin-token", ADMIN];
    all.extend_from_slice(args);
    let server = Airlock::start(dir.path(), &all, &[]);
    let http = http::client();
    Fixture { server, dir, http }
}

fn start() -> Fixture {
    start_with("", &[])
}

fn sha512(data: &[u8]) -> String {
    format!("sha512:{}", hex::encode(Sha512::digest(data)))
}

fn code_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    v["errors"][0]["code"].as_str().unwrap().to_string()
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

impl Fixture {
    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(ADMIN)
    }

    /// Sends and returns status, headers and body text.
    async fn send(&self, rb: reqwest::RequestBuilder) -> (StatusCode, HeaderMap, String) {
        let r = rb.send().await.unwrap();
        let (s, h) = (r.status(), r.headers().clone());
        (s, h, r.text().await.unwrap())
    }

    /// A blob pushed with POST then PUT (the monolithic upload).
    async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        let (s, h, body) = self
            .send(self.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/")))
            .await;
        assert_eq!(s, 202, "{body}");
        let location = header(&h, "location");
        let sep = if location.contains('?') { '&' } else { '?' };
        let (s, h, body) = self
            .send(
                self.req(Method::PUT, &format!("{location}{sep}digest={digest}"))
                    .body(data.to_vec()),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        assert_eq!(header(&h, "docker-content-digest"), digest);
        digest
    }

    /// A small image: config and one layer pushed, manifest pushed under `tag`.
    async fn push_image(&self, repo: &str, tag: &str, layer: &[u8]) -> (String, Vec<u8>) {
        let config = format!(
            "{{\"architecture\":\"amd64\",\"os\":\"linux\",\"layer\":{}}}",
            layer.len()
        );
        let config_digest = self.push_blob(repo, config.as_bytes()).await;
        let layer_digest = self.push_blob(repo, layer).await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}]
        });
        // Pretty-printed on purpose: the bytes must come back exactly, whitespace and all.
        let bytes = serde_json::to_vec_pretty(&manifest).unwrap();
        let digest = self.put_manifest(repo, tag, OCI_MANIFEST, &bytes).await;
        (digest, bytes)
    }

    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let (s, h, body) = self
            .send(
                self.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
                    .header("content-type", media_type)
                    .body(bytes.to_vec()),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        let digest = sha256(bytes);
        assert_eq!(header(&h, "docker-content-digest"), digest);
        digest
    }

    /// Everything under the store's upload area (must be empty after any finished or
    /// failed upload).
    fn leftover_uploads(&self) -> Vec<String> {
        let dir = self.dir.path().join("store/uploads/oci");
        let mut found = Vec::new();
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    found.push(e.path().display().to_string());
                }
            }
        }
        found
    }
}

#[tokio::test]
async fn base_endpoint_and_token_service() {
    let fx = start();
    // Anonymous callers are challenged, so clients learn where to get a token.
    let (s, h, body) = fx.send(fx.http.get(fx.url("/v2/"))).await;
    assert_eq!(s, 401);
    assert_eq!(code_of(&body), "UNAUTHORIZED");
    assert_eq!(
        header(&h, "docker-distribution-api-version"),
        "registry/2.0"
    );
    let challenge = header(&h, "www-authenticate");
    assert!(challenge.starts_with("Bearer realm=\""), "{challenge}");
    assert!(
        challenge.contains(&format!("{}/token\"", fx.server.base)),
        "{challenge}"
    );
    assert!(challenge.contains("service=\"airlock\""), "{challenge}");

    // Anonymous read is on: an anonymous pull token opens /v2/.
    let (s, _, body) = fx
        .send(
            fx.http
                .get(fx.url("/token?service=airlock&scope=repository:library/busybox:pull")),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let token: Value = serde_json::from_str(&body).unwrap();
    assert!(token["expires_in"].as_u64().unwrap() >= 60);
    assert_eq!(token["token"], token["access_token"]);
    let anon = token["token"].as_str().unwrap().to_string();
    let (s, h, body) = fx
        .send(fx.http.get(fx.url("/v2/")).bearer_auth(&anon))
        .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "{}"));
    assert_eq!(
        header(&h, "docker-distribution-api-version"),
        "registry/2.0"
    );

    // An anonymous token cannot push: the challenge names the scope to ask for.
    let (s, h, body) = fx
        .send(
            fx.http
                .post(fx.url("/v2/busybox/blobs/uploads/"))
                .bearer_auth(&anon),
        )
        .await;
    assert_eq!(s, 401, "{body}");
    assert!(header(&h, "www-authenticate")
        .contains("scope=\"repository:docker.io/library/busybox:pull,push\""));

    // Basic auth with an Airlock token gets a push token (GET and the OAuth2 POST).
    let (s, _, body) = fx
        .send(
            fx.http
                .get(fx.url("/token?service=airlock&scope=repository:library/busybox:pull,push"))
                .basic_auth("ci", Some(ADMIN)),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let push: Value = serde_json::from_str(&body).unwrap();
    let push = push["token"].as_str().unwrap().to_string();
    let (s, _, body) = fx
        .send(
            fx.http
                .post(fx.url("/v2/busybox/blobs/uploads/"))
                .bearer_auth(&push),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    let (s, _, body) = fx
        .send(fx.http.post(fx.url("/token")).form(&[
            ("grant_type", "password"),
            ("username", "ci"),
            ("password", ADMIN),
            ("service", "airlock"),
            ("scope", "repository:docker.io/library/busybox:push"),
        ]))
        .await;
    assert_eq!(s, 200, "{body}");

    // Wrong credentials: 401 with a Basic challenge from the token service, and a
    // forged or tampered token is refused by the registry.
    let (s, h, _) = fx
        .send(
            fx.http
                .get(fx.url("/token"))
                .basic_auth("ci", Some("wrong-secret-0123456789")),
        )
        .await;
    assert_eq!(s, 401);
    assert!(header(&h, "www-authenticate").starts_with("Basic"));
    let tampered = format!("{}x", &push[..push.len() - 1]);
    let v2 = || fx.http.get(fx.url("/v2/"));
    for (what, request, status) in [
        ("a tampered token", v2().bearer_auth(tampered), 401),
        // Airlock's own tokens work directly, as Bearer and as the Basic password.
        ("the admin token as Bearer", v2().bearer_auth(ADMIN), 200),
        (
            "the admin token as Basic password",
            v2().basic_auth("x", Some(ADMIN)),
            200,
        ),
    ] {
        let (s, _, body) = fx.send(request).await;
        assert_eq!(s, status, "{what}: {body}");
    }
}

#[tokio::test]
async fn scopes_are_checked_on_the_canonical_name() {
    let fx = start();
    let (digest, _) = fx.push_image("team/app", "v1", b"team layer").await;
    // The team token may write docker.io/team/... however the name is spelled ...
    let (s, _, body) = fx
        .send(
            fx.http
                .post(fx.url("/v2/team/app/blobs/uploads/?ns=docker.io"))
                .bearer_auth(TEAM),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    let (s, _, _) = fx
        .send(
            fx.http
                .post(fx.url("/v2/docker.io/team/app/blobs/uploads/"))
                .basic_auth("team", Some(TEAM)),
        )
        .await;
    assert_eq!(s, 202);
    // ... but not elsewhere, and may not delete.
    let (s, _, body) = fx
        .send(
            fx.http
                .post(fx.url("/v2/library/busybox/blobs/uploads/"))
                .bearer_auth(TEAM),
        )
        .await;
    assert_eq!(
        (s, code_of(&body).as_str()),
        (StatusCode::FORBIDDEN, "DENIED")
    );
    let (s, _, body) = fx
        .send(
            fx.http
                .delete(fx.url(&format!("/v2/team/app/manifests/{digest}")))
                .bearer_auth(TEAM),
        )
        .await;
    assert_eq!(s, 403, "{body}");
    // The token service grants only the intersection.
    let (_, _, body) = fx
        .send(
            fx.http
                .get(fx.url("/token?scope=repository:team/app:pull,push,delete&scope=repository:other/x:push"))
                .basic_auth("team", Some(TEAM)),
        )
        .await;
    let granted: Value = serde_json::from_str(&body).unwrap();
    let token = granted["token"].as_str().unwrap();
    let payload = token.split('.').next().unwrap();
    use base64::Engine as _;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["access"],
        json!([{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}])
    );
}

#[tokio::test]
async fn anonymous_read_off_requires_credentials_for_pulls() {
    let fx = start_with("anonymous_read = false", &[]);
    fx.push_image("library/busybox", "1", b"layer").await;
    let (s, h, body) = fx
        .send(fx.http.get(fx.url("/v2/library/busybox/manifests/1")))
        .await;
    assert_eq!(
        (s, code_of(&body).as_str()),
        (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
    );
    assert!(header(&h, "www-authenticate")
        .contains("scope=\"repository:docker.io/library/busybox:pull\""));
    let (s, _, _) = fx
        .send(
            fx.http
                .get(fx.url("/token?scope=repository:library/busybox:pull")),
        )
        .await;
    assert_eq!(s, 401);
    let (_, _, body) = fx
        .send(
            fx.http
                .get(fx.url("/token?scope=repository:library/busybox:pull"))
                .basic_auth("u", Some(ADMIN)),
        )
        .await;
    let token: Value = serde_json::from_str(&body).unwrap();
    let (s, _, _) = fx
        .send(
            fx.http
                .get(fx.url("/v2/library/busybox/manifests/1"))
                .bearer_auth(token["token"].as_str().unwrap()),
        )
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn pull_manifests_and_blobs_byte_exact() {
    let fx = start();
    let layer: Vec<u8> = (0..2048u32).map(|i| (i % 251) as u8).collect();
    let (digest, bytes) = fx.push_image("library/busybox", "1.36", &layer).await;

    for reference in ["1.36", digest.as_str()] {
        let path = format!("/v2/library/busybox/manifests/{reference}");
        let (s, h, body) = fx.send(fx.http.get(fx.url(&path))).await;
        assert_eq!(s, 200);
        assert_eq!(body.as_bytes(), &bytes[..], "byte-exact");
        assert_eq!(header(&h, "content-type"), OCI_MANIFEST);
        assert_eq!(header(&h, "content-length"), bytes.len().to_string());
        assert_eq!(header(&h, "docker-content-digest"), digest);
        assert_eq!(header(&h, "etag"), format!("\"{digest}\""));
        let (s, h, body) = fx.send(fx.http.head(fx.url(&path))).await;
        assert_eq!(s, 200);
        assert!(body.is_empty());
        assert_eq!(header(&h, "content-length"), bytes.len().to_string());
        assert_eq!(header(&h, "docker-content-digest"), digest);
        assert_eq!(header(&h, "content-type"), OCI_MANIFEST);
    }
    // Conditional GET.
    let (s, _, _) = fx
        .send(
            fx.http
                .get(fx.url("/v2/library/busybox/manifests/1.36"))
                .header("if-none-match", format!("\"{digest}\"")),
        )
        .await;
    assert_eq!(s, 304);

    // Blobs: whole, HEAD, ranges (206) and unsatisfiable ranges (416).
    let layer_digest = sha256(&layer);
    let blob = format!("/v2/library/busybox/blobs/{layer_digest}");
    let r = fx.http.get(fx.url(&blob)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(r.headers(), "docker-content-digest"), layer_digest);
    assert_eq!(r.bytes().await.unwrap(), layer);
    let (s, h, _) = fx.send(fx.http.head(fx.url(&blob))).await;
    assert_eq!(
        (s, header(&h, "content-length")),
        (StatusCode::OK, "2048".into())
    );
    assert_eq!(header(&h, "docker-content-digest"), layer_digest);
    for (range, content_range, len) in [
        ("bytes=500-1499", "bytes 500-1499/2048", 1000),
        ("bytes=500-", "bytes 500-2047/2048", 1548),
        ("bytes=-500", "bytes 1548-2047/2048", 500),
        ("bytes=2000-5000", "bytes 2000-2047/2048", 48),
    ] {
        let r = fx
            .http
            .get(fx.url(&blob))
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206, "{range}");
        assert_eq!(header(r.headers(), "content-range"), content_range);
        assert_eq!(r.bytes().await.unwrap().len(), len);
    }
    for range in ["bytes=500-0", "bytes=5000-10000"] {
        let (s, _, _) = fx
            .send(fx.http.get(fx.url(&blob)).header("range", range))
            .await;
        assert_eq!(s, 416, "{range}");
    }
    // A manifest is also reachable through the blob endpoint.
    let r = fx
        .http
        .get(fx.url(&format!("/v2/library/busybox/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), bytes);

    // Unknown things: the spec's codes.
    let missing = sha256(b"nothing");
    let (s, _, body) = fx
        .send(fx.http.get(fx.url("/v2/library/busybox/manifests/nope")))
        .await;
    assert_eq!(
        (s, code_of(&body).as_str()),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
    );
    let (s, _, body) = fx
        .send(
            fx.http
                .get(fx.url(&format!("/v2/library/busybox/manifests/{missing}"))),
        )
        .await;
    assert_eq!(
        (s, code_of(&body).as_str()),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
    );
    let (s, _, body) = fx
        .send(
            fx.http
                .get(fx.url(&format!("/v2/library/busybox/blobs/{missing}"))),
        )
        .await;
    assert_eq!(
        (s, code_of(&body).as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN")
    );
    // A blob of another repository is not in this one.
    let (s, _, _) = fx
        .send(
            fx.http
                .get(fx.url(&format!("/v2/other/repo/blobs/{layer_digest}"))),
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn docker_schema2_and_indexes_round_trip_unconverted() {
    let fx = start();
    let repo = "library/multi";
    let config = br#"{"architecture":"arm64","os":"linux"}"#;
    let c = fx.push_blob(repo, config).await;
    let l = fx.push_blob(repo, b"gzip bytes").await;
    let docker = format!(
        "{{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"{DOCKER_MANIFEST}\",\n   \"config\": {{\"mediaType\": \"application/vnd.docker.container.image.v1+json\", \"size\": {}, \"digest\": \"{c}\"}},\n   \"layers\": [{{\"mediaType\": \"application/vnd.docker.image.rootfs.diff.tar.gzip\", \"size\": 10, \"digest\": \"{l}\"}}]\n}}",
        config.len()
    );
    let docker_digest = fx
        .put_manifest(
            repo,
            &sha256(docker.as_bytes()),
            DOCKER_MANIFEST,
            docker.as_bytes(),
        )
        .await;
    let list = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [{"mediaType": DOCKER_MANIFEST, "size": docker.len(), "digest": docker_digest,
                       "platform": {"architecture": "arm64", "os": "linux"}}]
    })
    .to_string();
    fx.put_manifest(
        repo,
        "latest",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        list.as_bytes(),
    )
    .await;
    let (s, h, body) = fx
        .send(
            fx.http
                .get(fx.url("/v2/library/multi/manifests/latest"))
                .header("accept", OCI_MANIFEST),
        )
        .await;
    // Served as stored, whatever Accept says: never converted.
    assert_eq!(s, 200);
    assert_eq!(body, list);
    assert_eq!(
        header(&h, "content-type"),
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    let (_, h, body) = fx
        .send(
            fx.http
                .get(fx.url(&format!("/v2/library/multi/manifests/{docker_digest}"))),
        )
        .await;
    assert_eq!(body, docker);
    assert_eq!(header(&h, "content-type"), DOCKER_MANIFEST);

    // An index whose child is not in the repository is refused.
    let orphan = json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "size": 1, "digest": sha256(b"absent")}]})
    .to_string();
    let (s, _, body) = fx
        .send(
            fx.req(Method::PUT, "/v2/library/multi/manifests/orphan")
                .header("content-type", OCI_INDEX)
                .body(orphan),
        )
        .await;
    assert_eq!(
        (s, code_of(&body).as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN")
    );
}

#[tokio::test]
async fn push_in_every_upload_style() {
    let fx = start();
    let repo = "library/push";
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let digest = sha256(&data);

    // Single POST with ?digest=.
    let small = b"single post body";
    let (s, h, body) = fx
        .send(
            fx.req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(small)),
            )
            .header("content-type", "application/octet-stream")
            .body(small.to_vec()),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(
        header(&h, "location"),
        format!("/v2/{repo}/blobs/{}", sha256(small))
    );

    // Chunked with Content-Range, an out-of-order chunk refused (416) and recovered
    // from the status endpoint, the last chunk on the closing PUT.
    let (s, h, _) = fx
        .send(
            fx.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
                .header("content-length", "0"),
        )
        .await;
    assert_eq!(s, 202);
    let location = header(&h, "location");
    assert_eq!(header(&h, "range"), "0-0");
    let uuid = header(&h, "docker-upload-uuid");
    assert!(location.ends_with(&uuid), "{location} {uuid}");
    let patch = |range: &str, body: &[u8]| {
        fx.req(Method::PATCH, &location)
            .header("content-type", "application/octet-stream")
            .header("content-range", range.to_string())
            .body(body.to_vec())
    };
    let (s, h, _) = fx.send(patch("0-39999", &data[..40_000])).await;
    assert_eq!(s, 202);
    assert_eq!(header(&h, "range"), "0-39999");
    let (s, h, body) = fx.send(patch("50000-59999", &data[50_000..60_000])).await;
    assert_eq!(
        (s, code_of(&body).as_str()),
        (StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_INVALID")
    );
    assert_eq!(header(&h, "range"), "0-39999");
    let (s, h, _) = fx.send(fx.req(Method::GET, &location)).await;
    assert_eq!(s, 204);
    assert_eq!(header(&h, "range"), "0-39999");
    assert_eq!(header(&h, "location"), location);
    let (s, _, _) = fx.send(patch("40000-79999", &data[40_000..80_000])).await;
    assert_eq!(s, 202);
    let (s, h, body) = fx
        .send(
            fx.req(Method::PUT, &format!("{location}?digest={digest}"))
                .header("content-range", "80000-99999")
                .body(data[80_000..].to_vec()),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(header(&h, "docker-content-digest"), digest);
    let r = fx
        .http
        .get(fx.url(&format!("/v2/{repo}/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), data);
    assert!(
        fx.leftover_uploads().is_empty(),
        "{:?}",
        fx.leftover_uploads()
    );

    // Streaming PATCH without Content-Range (skopeo), then PUT with an empty body; the
    // session continues across requests from the store, in sha512.
    let data2: Vec<u8> = data.iter().rev().copied().collect();
    let digest2 = sha512(&data2);
    let (_, h, _) = fx
        .send(fx.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/")))
        .await;
    let location = header(&h, "location");
    let stream = futures::stream::iter(
        data2
            .chunks(7000)
            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let (s, h, _) = fx
        .send(
            fx.req(Method::PATCH, &location)
                .body(reqwest::Body::wrap_stream(stream)),
        )
        .await;
    assert_eq!(s, 202);
    assert_eq!(header(&h, "range"), format!("0-{}", data2.len() - 1));
    let (s, _, body) = fx
        .send(fx.req(Method::PUT, &format!("{location}?digest={digest2}")))
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, h, _) = fx
        .send(fx.http.head(fx.url(&format!("/v2/{repo}/blobs/{digest2}"))))
        .await;
    assert_eq!(
        (s, header(&h, "docker-content-digest")),
        (StatusCode::OK, digest2.clone())
    );

    // The whole blob on the closing PUT (containerd).
    let data3 = b"whole body on the put".to_vec();
    let (_, h, _) = fx
        .send(fx.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/")))
        .await;
    let location = header(&h, "location");
    let (s, _, _) = fx
        .send(
            fx.req(
                Method::PUT,
                &format!("{location}?digest={}", sha256(&data3)),
            )
            .body(data3.clone()),
        )
        .await;
    assert_eq!(s, 201);

    // Cross-repository mount: 201 when the source holds it, else a normal session.
    let (s, h, _) = fx
        .send(fx.req(
            Method::POST,
            &format!("/v2/library/other/blobs/uploads/?mount={digest}&from={repo}"),
        ))
        .await;
    assert_eq!(s, 201);
    assert_eq!(header(&h, "docker-content-digest"), digest);
    let (s, _, _) = fx
        .send(
            fx.http
                .head(fx.url(&format!("/v2/library/other/blobs/{digest}"))),
        )
        .await;
    assert_eq!(s, 200);
    let (s, h, _) = fx
        .send(fx.req(
            Method::POST,
            &format!(
                "/v2/library/third/blobs/uploads/?mount={}&from={repo}",
                sha256(b"never pushed")
            ),
        ))
        .await;
    assert_eq!(s, 202);
    // Cancel the session that mount opened: gone afterwards.
    let location = header(&h, "location");
    let (s, _, _) = fx.send(fx.req(Method::DELETE, &location)).await;
    assert_eq!(s, 204);
    let (s, _, body) = fx.send(fx.req(Method::GET, &location)).await;
    assert_eq!(
        (s, code_of(&body).as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN")
    );
    // Anonymous mount (no `from`) of a stored blob.
    let (s, _, _) = fx
        .send(fx.req(
            Method::POST,
            &format!("/v2/library/fourth/blobs/uploads/?mount={digest}"),
        ))
        .await;
    assert_eq!(s, 201);
    assert!(
        fx.leftover_uploads().is_empty(),
        "{:?}",
        fx.leftover_uploads()
    );
}

#[tokio::test]
async fn bad_uploads_get_the_right_code_and_leave_nothing_behind() {
    let fx = start();
    let repo = "library/bad";
    let data = b"the real content".to_vec();
    let wrong = sha256(b"something else");

    // Digest mismatch, monolithic.
    let (_, h, _) = fx
        .send(fx.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/")))
        .await;
    let location = header(&h, "location");
    let (s, _, body) = fx
        .send(
            fx.req(Method::PUT, &format!("{location}?digest={wrong}"))
                .body(data.clone()),
        )
        .await;
    assert_eq!(
        (s, code_of(&body).as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    let (s, _, _) = fx
        .send(fx.http.head(fx.url(&format!("/v2/{repo}/blobs/{wrong}"))))
        .await;
    assert_eq!(s, 404);
    let (s, _, body) = fx.send(fx.req(Method::GET, &location)).await;
    assert_eq!(
        (s, code_of(&body).as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN")
    );

    // Truncated chunked upload: the chunks do not add up to the digest.
    let (_, h, _) = fx
        .send(fx.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/")))
        .await;
    let location = header(&h, "location");
    fx.send(
        fx.req(Method::PATCH, &location)
            .header("content-range", "0-7")
            .body(data[..8].to_vec()),
    )
    .await;
    let (s, _, body) = fx
        .send(fx.req(Method::PUT, &format!("{location}?digest={}", sha256(&data))))
        .await;
    assert_eq!(
        (s, code_of(&body).as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    let (s, _, _) = fx
        .send(
            fx.http
                .head(fx.url(&format!("/v2/{repo}/blobs/{}", sha256(&data)))),
        )
        .await;
    assert_eq!(s, 404);

    // Single POST with a wrong digest, unsupported and malformed algorithms (with the
    // bytes), and a session asking for an unsupported algorithm (without).
    let wrong_digest = format!("digest={wrong}");
    for (query, body) in [
        (wrong_digest.as_str(), Some(&data)),
        ("digest=md5:d41d8cd98f00b204e9800998ecf8427e", Some(&data)),
        ("digest=sha256:abc", Some(&data)),
        ("digest=sha256:../../etc", Some(&data)),
        ("digest-algorithm=md5", None),
    ] {
        let mut request = fx.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/?{query}"));
        if let Some(body) = body {
            request = request.body(body.clone());
        }
        let (s, _, body) = fx.send(request).await;
        assert_eq!(
            (s, code_of(&body).as_str()),
            (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
            "{query}"
        );
    }
    // Closing PUT without a digest.
    let (_, h, _) = fx
        .send(fx.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/")))
        .await;
    let location = header(&h, "location");
    let (s, _, body) = fx
        .send(fx.req(Method::PUT, &location).body(data.clone()))
        .await;
    assert_eq!(
        (s, code_of(&body).as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    fx.send(fx.req(Method::DELETE, &location)).await;

    // Unknown sessions, and a session used under another repository's name.
    let unknown = format!("/v2/{repo}/blobs/uploads/{}", "0".repeat(32));
    for method in [Method::GET, Method::PATCH, Method::PUT, Method::DELETE] {
        let (s, _, body) = fx
            .send(
                fx.req(method.clone(), &format!("{unknown}?digest={wrong}"))
                    .body("x"),
            )
            .await;
        assert_eq!(
            (s, code_of(&body).as_str()),
            (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            "{method}"
        );
    }
    let (s, _, _) = fx
        .send(fx.req(Method::GET, &format!("/v2/{repo}/blobs/uploads/not-an-id")))
        .await;
    assert_eq!(s, 404);
    let (_, h, _) = fx
        .send(fx.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/")))
        .await;
    let location = header(&h, "location");
    let id = location.rsplit('/').next().unwrap();
    let (s, _, _) = fx
        .send(fx.req(
            Method::GET,
            &format!("/v2/library/elsewhere/blobs/uploads/{id}"),
        ))
        .await;
    assert_eq!(s, 404);
    fx.send(fx.req(Method::DELETE, &location)).await;

    assert!(
        fx.leftover_uploads().is_empty(),
        "{:?}",
        fx.leftover_uploads()
    );
    // Nothing of the failed uploads reached the blob store.
    let blobs = fx.dir.path().join("store/blobs/sha256");
    let wrong_hex = wrong.trim_start_matches("sha256:");
    assert!(!blobs.join(&wrong_hex[..2]).join(wrong_hex).exists());
}

#[tokio::test]
async fn bad_names_tags_and_manifests_are_refused() {
    let fx = start();
    for path in [
        "/v2/Upper/case/manifests/x",
        "/v2/a//b/manifests/x",
        "/v2/-a/manifests/x",
        "/v2/a%2fb/manifests/x",
    ] {
        let (s, _, body) = fx.send(fx.req(Method::GET, path)).await;
        assert_eq!(
            (s, code_of(&body).as_str()),
            (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            "{path}"
        );
    }
    // Traversal that an HTTP client would normalize away, sent raw.
    for path in [
        "/v2/a/../b/manifests/x",
        "/v2/a/%2e%2e/b/manifests/x",
        "/v2/../../etc/passwd/manifests/x",
        "/v2/a/./b/blobs/uploads/",
    ] {
        let (status, body) = http::raw_get(&fx.server.base, path, ADMIN);
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(code_of(&body), "NAME_INVALID", "{path}");
    }
    let long = format!("/v2/{}/manifests/x", vec!["abcdefghij"; 30].join("/"));
    let (s, _, body) = fx.send(fx.req(Method::GET, &long)).await;
    assert_eq!(
        (s, code_of(&body).as_str()),
        (StatusCode::BAD_REQUEST, "NAME_INVALID")
    );
    for tag in [".hidden", "-x", &"t".repeat(129)] {
        let (s, _, body) = fx
            .send(
                fx.req(Method::PUT, &format!("/v2/a/manifests/{tag}"))
                    .body("{}"),
            )
            .await;
        assert_eq!(
            (s, code_of(&body).as_str()),
            (StatusCode::BAD_REQUEST, "TAG_INVALID"),
            "{tag}"
        );
    }
    let (s, _, body) = fx
        .send(fx.req(Method::GET, "/v2/a/manifests/md5:abc"))
        .await;
    assert_eq!(
        (s, code_of(&body).as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );

    let repo = "library/m";
    let c = fx.push_blob(repo, b"{}").await;
    let manifest = |layers: Value| {
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": c, "size": 2},
               "layers": layers})
        .to_string()
    };
    let put = |reference: &str, ct: &str, body: String| {
        fx.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", ct.to_string())
            .body(body)
    };
    // Not JSON, schema 1, mismatched media type.
    for (ct, body) in [
        (OCI_MANIFEST, "not json".to_string()),
        (
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            r#"{"schemaVersion":1}"#.to_string(),
        ),
        (OCI_INDEX, manifest(json!([]))),
    ] {
        let (s, _, text) = fx.send(put("t", ct, body)).await;
        assert_eq!(
            (s, code_of(&text).as_str()),
            (StatusCode::BAD_REQUEST, "MANIFEST_INVALID")
        );
    }
    // A layer never pushed.
    let missing = manifest(json!([{"mediaType": "x", "digest": sha256(b"missing"), "size": 7}]));
    let (s, _, text) = fx.send(put("t", OCI_MANIFEST, missing)).await;
    assert_eq!(
        (s, code_of(&text).as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN")
    );
    // A non-distributable layer with `urls` need not be pushed.
    let foreign = manifest(
        json!([{"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "digest": sha256(b"foreign"), "size": 7, "urls": ["https://example.invalid/layer"]}]),
    );
    let (s, _, text) = fx.send(put("foreign", OCI_MANIFEST, foreign)).await;
    assert_eq!(s, 201, "{text}");
    // Pushed by a digest it does not have.
    let body = manifest(json!([]));
    let (s, _, text) = fx
        .send(put(&sha256(b"other"), OCI_MANIFEST, body.clone()))
        .await;
    assert_eq!(
        (s, code_of(&text).as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    // By its sha512 digest.
    let (s, h, text) = fx
        .send(put(&sha512(body.as_bytes()), OCI_MANIFEST, body.clone()))
        .await;
    assert_eq!(s, 201, "{text}");
    assert_eq!(header(&h, "docker-content-digest"), sha512(body.as_bytes()));
    let (s, _, got) = fx
        .send(
            fx.http
                .get(fx.url(&format!("/v2/{repo}/manifests/{}", sha512(body.as_bytes())))),
        )
        .await;
    assert_eq!((s, got), (StatusCode::OK, body));
    // Over 4 MiB: 413, and nothing stored.
    let mut huge = manifest(json!([]));
    huge.insert_str(
        1,
        &format!("\"padding\":\"{}\",", "x".repeat(4 * 1024 * 1024)),
    );
    let (s, _, text) = fx.send(put("huge", OCI_MANIFEST, huge)).await;
    assert_eq!(
        (s, code_of(&text).as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID")
    );
    let (s, _, _) = fx
        .send(fx.http.head(fx.url(&format!("/v2/{repo}/manifests/huge"))))
        .await;
    assert_eq!(s, 404);
    // Methods an endpoint does not serve.
    let (s, h, text) = fx
        .send(fx.req(Method::POST, &format!("/v2/{repo}/manifests/x")))
        .await;
    assert_eq!(
        (s, code_of(&text).as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED")
    );
    assert!(header(&h, "allow").contains("PUT"));
}

#[tokio::test]
async fn one_endpoint_for_many_upstreams() {
    let fx = start();
    let (digest, bytes) = fx
        .push_image("docker.io/library/busybox", "1.36", b"busybox")
        .await;
    // containerd through a hosts.toml mirror, Docker's registry-mirrors, aliases.
    for path in [
        "/v2/library/busybox/manifests/1.36?ns=docker.io",
        "/v2/busybox/manifests/1.36",
        "/v2/library/busybox/manifests/1.36",
        "/v2/registry-1.docker.io/library/busybox/manifests/1.36",
        "/v2/index.docker.io/busybox/manifests/1.36?ns=docker.io",
    ] {
        let (s, h, body) = fx.send(fx.http.get(fx.url(path))).await;
        assert_eq!(s, 200, "{path}");
        assert_eq!(body.as_bytes(), &bytes[..]);
        assert_eq!(header(&h, "docker-content-digest"), digest);
        if path.contains("ns=") {
            assert_eq!(header(&h, "oci-namespace"), "docker.io");
        }
    }
    // Another upstream: by ns or host prefix, never mixed up with docker.io.
    let (quay, _) = fx
        .push_image("quay.io/prometheus/node-exporter", "v1.8.0", b"quay")
        .await;
    let (s, h, _) = fx
        .send(
            fx.http
                .head(fx.url("/v2/prometheus/node-exporter/manifests/v1.8.0?ns=quay.io")),
        )
        .await;
    assert_eq!(
        (s, header(&h, "docker-content-digest")),
        (StatusCode::OK, quay)
    );
    let (s, _, _) = fx
        .send(
            fx.http
                .head(fx.url("/v2/prometheus/node-exporter/manifests/v1.8.0")),
        )
        .await;
    assert_eq!(s, 404);
    // A push named by `ns` continues at a Location that needs no `ns`.
    let (s, h, _) = fx
        .send(fx.req(
            Method::POST,
            "/v2/prometheus/node-exporter/blobs/uploads/?ns=quay.io",
        ))
        .await;
    assert_eq!(s, 202);
    let location = header(&h, "location");
    assert!(
        location.starts_with("/v2/quay.io/prometheus/node-exporter/blobs/uploads/"),
        "{location}"
    );
    let (s, h, _) = fx
        .send(
            fx.req(Method::PUT, &format!("{location}?digest={}", sha256(b"q")))
                .body("q"),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(
        header(&h, "location"),
        format!(
            "/v2/quay.io/prometheus/node-exporter/blobs/{}",
            sha256(b"q")
        )
    );
    // Pagination links keep the upstream.
    let (_, _, b) = fx
        .send(
            fx.http
                .get(fx.url("/v2/quay.io/prometheus/node-exporter/manifests/v1.8.0")),
        )
        .await;
    fx.put_manifest(
        "quay.io/prometheus/node-exporter",
        "v1.9.0",
        OCI_MANIFEST,
        b.as_bytes(),
    )
    .await;
    let (_, h, _) = fx
        .send(
            fx.http
                .get(fx.url("/v2/prometheus/node-exporter/tags/list?n=1&ns=quay.io")),
        )
        .await;
    assert_eq!(
        header(&h, "link"),
        "</v2/prometheus/node-exporter/tags/list?n=1&last=v1.8.0&ns=quay.io>; rel=\"next\""
    );
    let (_, _, body) = fx
        .send(fx.http.get(fx.url("/v2/_catalog")).bearer_auth(ADMIN))
        .await;
    let catalog: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        catalog["repositories"],
        json!([
            "docker.io/library/busybox",
            "quay.io/prometheus/node-exporter"
        ])
    );
}

#[tokio::test]
async fn content_discovery_tags_catalog_and_referrers() {
    let fx = start();
    let repo = "library/tags";
    let (digest, _) = fx.push_image(repo, "v1", b"x").await;
    for tag in ["b", "a", "C", "v2", "latest"] {
        let (_, _, body) = fx
            .send(fx.http.get(fx.url(&format!("/v2/{repo}/manifests/v1"))))
            .await;
        fx.put_manifest(repo, tag, OCI_MANIFEST, body.as_bytes())
            .await;
    }
    let list = |q: &str| {
        let url = fx.url(&format!("/v2/{repo}/tags/list{q}"));
        let http = fx.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            let link = header(r.headers(), "link");
            let v: Value = r.json().await.unwrap();
            (v, link)
        }
    };
    let (all, link) = list("").await;
    assert_eq!(all["name"], repo);
    assert_eq!(all["tags"], json!(["C", "a", "b", "latest", "v1", "v2"]));
    assert!(link.is_empty());
    let (page, link) = list("?n=2").await;
    assert_eq!(page["tags"], json!(["C", "a"]));
    assert_eq!(
        link,
        format!("</v2/{repo}/tags/list?n=2&last=a>; rel=\"next\"")
    );
    let (page, link) = list("?n=2&last=a").await;
    assert_eq!(page["tags"], json!(["b", "latest"]));
    assert!(!link.is_empty());
    let (page, link) = list("?n=10&last=latest").await;
    assert_eq!(page["tags"], json!(["v1", "v2"]));
    assert!(link.is_empty());
    let (page, _) = list("?last=v1").await;
    assert_eq!(page["tags"], json!(["v2"]));
    let (page, link) = list("?n=0").await;
    assert_eq!(page["tags"], json!([]));
    assert!(link.is_empty());
    let (s, _, body) = fx
        .send(fx.http.get(fx.url(&format!("/v2/{repo}/tags/list?n=x"))))
        .await;
    assert_eq!(
        (s, code_of(&body).as_str()),
        (StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID")
    );
    let (s, _, body) = fx.send(fx.http.get(fx.url("/v2/no/such/tags/list"))).await;
    assert_eq!(
        (s, code_of(&body).as_str()),
        (StatusCode::NOT_FOUND, "NAME_UNKNOWN")
    );

    // Multi-tag push by digest (`?tag=`), answered with OCI-Tag.
    let (_, _, body) = fx
        .send(fx.http.get(fx.url(&format!("/v2/{repo}/manifests/v1"))))
        .await;
    let (s, h, _) = fx
        .send(
            fx.req(
                Method::PUT,
                &format!("/v2/{repo}/manifests/{digest}?tag=x1&tag=x2"),
            )
            .header("content-type", OCI_MANIFEST)
            .body(body),
        )
        .await;
    assert_eq!(s, 201);
    let tags: Vec<_> = h
        .get_all("oci-tag")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(tags, ["x1", "x2"]);

    // Catalog pagination.
    fx.push_image("library/zz", "1", b"z").await;
    let (_, h, body) = fx
        .send(fx.http.get(fx.url("/v2/_catalog?n=1")).bearer_auth(ADMIN))
        .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["repositories"], json!(["docker.io/library/tags"]));
    assert!(header(&h, "link").contains("last=docker.io%2Flibrary%2Ftags"));
    let (_, _, body) = fx
        .send(
            fx.http
                .get(fx.url("/v2/_catalog?n=5&last=docker.io%2Flibrary%2Ftags"))
                .bearer_auth(ADMIN),
        )
        .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["repositories"], json!(["docker.io/library/zz"]));

    // Referrers: a subject not pushed yet is accepted and answered with OCI-Subject.
    let empty = fx.push_blob(repo, b"{}").await;
    let subject = sha256(b"a subject pushed later");
    let artifact = |kind: &str, note: &str| {
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": kind,
               "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
               "layers": [],
               "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 123},
               "annotations": {"note": note}})
        .to_string()
    };
    let sbom = artifact("application/spdx+json", "sbom");
    let sig = artifact("application/vnd.dev.cosign.signature", "sig");
    for a in [&sbom, &sig] {
        let (s, h, body) = fx
            .send(
                fx.req(
                    Method::PUT,
                    &format!("/v2/{repo}/manifests/{}", sha256(a.as_bytes())),
                )
                .header("content-type", OCI_MANIFEST)
                .body(a.clone()),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        assert_eq!(header(&h, "oci-subject"), subject);
    }
    let r = fx
        .http
        .get(fx.url(&format!("/v2/{repo}/referrers/{subject}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(r.headers(), "content-type"), OCI_INDEX);
    assert!(r.headers().get("oci-filters-applied").is_none());
    let index: Value = r.json().await.unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], OCI_INDEX);
    let found = index["manifests"].as_array().unwrap();
    assert_eq!(found.len(), 2);
    let sbom_entry = found
        .iter()
        .find(|m| m["digest"] == sha256(sbom.as_bytes()))
        .unwrap();
    assert_eq!(sbom_entry["artifactType"], "application/spdx+json");
    assert_eq!(sbom_entry["size"], sbom.len());
    assert_eq!(sbom_entry["annotations"]["note"], "sbom");
    let r = fx
        .http
        .get(fx.url(&format!(
            "/v2/{repo}/referrers/{subject}?artifactType=application/spdx%2Bjson"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(header(r.headers(), "oci-filters-applied"), "artifactType");
    let index: Value = r.json().await.unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    // Unknown subjects and repositories: an empty index, never 404.
    let r = fx
        .http
        .get(fx.url(&format!("/v2/no/repo/referrers/{}", sha256(b"x"))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let index: Value = r.json().await.unwrap();
    assert_eq!(index["manifests"], json!([]));
}

#[tokio::test]
async fn content_management_deletes() {
    let fx = start();
    let repo = "library/del";
    let layer = b"deletable layer";
    let (digest, _) = fx.push_image(repo, "v1", layer).await;
    let (_, _, body) = fx
        .send(fx.http.get(fx.url(&format!("/v2/{repo}/manifests/v1"))))
        .await;
    fx.put_manifest(repo, "v2", OCI_MANIFEST, body.as_bytes())
        .await;

    // Anonymous callers may not delete (challenged for the delete scope).
    let (s, h, _) = fx
        .send(fx.http.delete(fx.url(&format!("/v2/{repo}/manifests/v1"))))
        .await;
    assert_eq!(s, 401);
    assert!(header(&h, "www-authenticate").contains(":delete\""));
    // A tag.
    let (s, _, _) = fx
        .send(fx.req(Method::DELETE, &format!("/v2/{repo}/manifests/v1")))
        .await;
    assert_eq!(s, 202);
    let (s, _, _) = fx
        .send(fx.http.get(fx.url(&format!("/v2/{repo}/manifests/v1"))))
        .await;
    assert_eq!(s, 404);
    let (s, _, _) = fx
        .send(
            fx.http
                .get(fx.url(&format!("/v2/{repo}/manifests/{digest}"))),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _, body) = fx
        .send(fx.req(Method::DELETE, &format!("/v2/{repo}/manifests/v1")))
        .await;
    assert_eq!(
        (s, code_of(&body).as_str()),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
    );
    // A manifest by digest takes its tags with it.
    let (s, _, _) = fx
        .send(fx.req(Method::DELETE, &format!("/v2/{repo}/manifests/{digest}")))
        .await;
    assert_eq!(s, 202);
    for r in [digest.as_str(), "v2"] {
        let (s, _, _) = fx
            .send(fx.http.get(fx.url(&format!("/v2/{repo}/manifests/{r}"))))
            .await;
        assert_eq!(s, 404, "{r}");
    }
    let (_, _, body) = fx
        .send(fx.http.get(fx.url(&format!("/v2/{repo}/tags/list"))))
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["tags"],
        json!([])
    );
    // A blob.
    let blob = format!("/v2/{repo}/blobs/{}", sha256(layer));
    let (s, _, _) = fx.send(fx.req(Method::DELETE, &blob)).await;
    assert_eq!(s, 202);
    let (s, _, body) = fx.send(fx.http.get(fx.url(&blob))).await;
    assert_eq!(
        (s, code_of(&body).as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN")
    );
    let (s, _, body) = fx.send(fx.req(Method::DELETE, &blob)).await;
    assert_eq!(
        (s, code_of(&body).as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN")
    );
    // Deleting from a repository that does not exist creates nothing.
    let (s, _, _) = fx
        .send(fx.req(Method::DELETE, "/v2/library/ghost/manifests/v1"))
        .await;
    assert_eq!(s, 404);
    let (_, _, body) = fx.send(fx.req(Method::GET, "/v2/_catalog")).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["repositories"],
        json!(["docker.io/library/del"])
    );
}

#[tokio::test]
async fn a_broken_store_is_a_5xx_never_a_404() {
    let fx = start_with("[cache]\nmutable_ttl = \"1ms\"", &[]);
    fx.push_image("library/broken", "1", b"x").await;
    // The repository document becomes unreadable.
    let doc = fx
        .dir
        .path()
        .join("store/oci/repos/docker.io/library/broken/_repo.json");
    std::fs::write(&doc, b"{ truncated").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (s, _, body) = fx
        .send(fx.http.get(fx.url("/v2/library/broken/manifests/1")))
        .await;
    assert!(s.is_server_error(), "{s} {body}");
    assert_eq!(code_of(&body), "UNAVAILABLE");
}

/// `airlock oci ...` on the fixture's store, returning (success, stderr+stdout).
fn oci_cli(fx: &Fixture, args: &[&str]) -> (bool, String) {
    let out = support::airlock::command(fx.dir.path())
        .arg("--store")
        .arg(fx.dir.path().join("store"))
        .arg("oci")
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A `docker save` (legacy format) tarball: manifest.json, a config, an uncompressed layer.
fn docker_save(path: &std::path::Path, repo_tag: &str, layer: &[u8]) {
    let config = br#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/true"]}}"#;
    let config_name = format!("{}.json", &sha256(config)[7..]);
    let manifest =
        json!([{"Config": config_name, "RepoTags": [repo_tag], "Layers": ["abc123/layer.tar"]}]);
    let mut tar = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, data).unwrap();
    };
    add("manifest.json", manifest.to_string().as_bytes());
    add(&config_name, config);
    add("abc123/layer.tar", layer);
    tar.finish().unwrap();
}

#[tokio::test]
async fn import_layouts_and_docker_archives_offline() {
    let fx = start();
    let layout = fx.dir.path().join("layout");
    let (digest, bytes) = images::tiny_layout(&layout, "v1", b"layer one");
    let layout_arg = layout.to_str().unwrap();

    // A layout that names images by tag only needs --repo.
    let (ok, text) = oci_cli(&fx, &["import", layout_arg]);
    assert!(!ok && text.contains("--repo"), "{text}");
    let (ok, text) = oci_cli(
        &fx,
        &["import", "--repo", "docker.io/library/tiny", layout_arg],
    );
    assert!(ok, "{text}");
    assert!(text.contains("1 image(s) added"), "{text}");
    // Importing again stores nothing.
    let (ok, text) = oci_cli(&fx, &["import", "--repo", "library/tiny", layout_arg]);
    assert!(ok, "{text}");
    assert!(
        text.contains("0 image(s) added, 1 already present; 0 blob(s) stored"),
        "{text}"
    );
    let (s, h, body) = fx
        .send(fx.http.get(fx.url("/v2/library/tiny/manifests/v1")))
        .await;
    assert_eq!(s, 200);
    assert_eq!(body.as_bytes(), &bytes[..]);
    assert_eq!(header(&h, "docker-content-digest"), digest);
    let (s, _, body) = fx
        .send(
            fx.http
                .get(fx.url(&format!("/v2/library/tiny/blobs/{}", sha256(b"layer one")))),
        )
        .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "layer one"));

    // Full references in the layout and a tar of a layout (oci-archive), several at once.
    let named = fx.dir.path().join("named");
    let (named_digest, _) = images::tiny_layout(&named, "quay.io/airgap/hello:v2", b"layer two");
    let archive = fx.dir.path().join("layout.tar");
    let mut tar = tar::Builder::new(std::fs::File::create(&archive).unwrap());
    tar.append_dir_all(".", &named).unwrap();
    tar.finish().unwrap();
    drop(tar);
    let save = fx.dir.path().join("save.tar");
    docker_save(&save, "busybox:legacy", b"uncompressed layer tar");
    let (ok, text) = oci_cli(
        &fx,
        &[
            "import",
            named.to_str().unwrap(),
            archive.to_str().unwrap(),
            save.to_str().unwrap(),
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("docker save (legacy)"), "{text}");
    let (s, h, _) = fx
        .send(
            fx.http
                .head(fx.url("/v2/airgap/hello/manifests/v2?ns=quay.io")),
        )
        .await;
    assert_eq!(
        (s, header(&h, "docker-content-digest")),
        (StatusCode::OK, named_digest)
    );
    let (s, h, body) = fx
        .send(fx.http.get(fx.url("/v2/busybox/manifests/legacy")))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(header(&h, "content-type"), DOCKER_MANIFEST);
    let m: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(m["layers"][0]["digest"], sha256(b"uncompressed layer tar"));
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar"
    );

    // Not an image at all.
    let junk = fx.dir.path().join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    let (ok, text) = oci_cli(&fx, &["import", junk.to_str().unwrap()]);
    assert!(
        !ok && text.contains("neither an OCI image layout"),
        "{text}"
    );
}

#[test]
fn hosts_toml_points_every_upstream_at_airlock() {
    let out = support::airlock::command(std::path::Path::new("/"))
        .args([
            "oci",
            "hosts-toml",
            "--upstream",
            "docker.io",
            "--upstream",
            "quay.io",
            "--airlock",
            "http://airlock.internal:8080",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.matches("server = \"http://airlock.internal:8080\"")
            .count(),
        2,
        "{text}"
    );
    assert!(text.contains("# /etc/containerd/certs.d/quay.io/hosts.toml"));
    assert!(text.contains(
        "[host.\"http://airlock.internal:8080\"]\n  capabilities = [\"pull\", \"resolve\"]"
    ));
    assert!(text.contains(
        "prefix = \"quay.io\"\nlocation = \"airlock.internal:8080/quay.io\"\ninsecure = true"
    ));
    let out = support::airlock::command(std::path::Path::new("/"))
        .args([
            "oci",
            "hosts-toml",
            "--upstream",
            "docker.io",
            "--airlock",
            "ftp://x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// An upload session started, given one chunk, and left: what a client that gave up leaves.
async fn abandoned_upload(fx: &Fixture) -> String {
    let (_, h, _) = fx
        .send(fx.req(Method::POST, "/v2/library/purge/blobs/uploads/"))
        .await;
    let location = header(&h, "location");
    let (s, _, _) = fx
        .send(
            fx.req(Method::PATCH, &location)
                .body(b"half a layer".to_vec()),
        )
        .await;
    assert_eq!(s, 202);
    location
}

#[tokio::test]
async fn abandoned_uploads_are_purged() {
    let fx = start();
    let location = abandoned_upload(&fx).await;
    let (ok, text) = oci_cli(&fx, &["purge-uploads", "--older-than", "1h"]);
    assert!(ok && text.contains("removed 0 abandoned"), "{text}");
    let (s, _, _) = fx.send(fx.req(Method::GET, &location)).await;
    assert_eq!(s, 204);
    let (ok, text) = oci_cli(&fx, &["purge-uploads", "--older-than", "0s"]);
    assert!(
        ok && text.contains("removed 1 abandoned upload session(s) (2 object(s))"),
        "{text}"
    );
    let (s, _, _) = fx.send(fx.req(Method::GET, &location)).await;
    assert_eq!(s, 404);
    assert!(fx.leftover_uploads().is_empty());
}

#[tokio::test]
async fn serve_purges_abandoned_uploads_itself() {
    let fx = start_with("[oci]\npurge_uploads_after = \"2s\"", &[]);
    let location = abandoned_upload(&fx).await;
    assert!(!fx.leftover_uploads().is_empty());
    // Swept every second once older than 2 s (the session's start has 1 s resolution).
    let mut status = StatusCode::OK;
    for _ in 0..100 {
        status = fx.send(fx.req(Method::GET, &location)).await.0;
        if status == 404 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 404, "the session outlived 10 s");
    assert!(fx.leftover_uploads().is_empty());
    // Logged once the whole session is gone, which can be just after the GET saw 404.
    fx.server
        .wait_for_log("removed abandoned OCI upload sessions");
}
