//! A digest is not a key: a writer may reference content already in the store only by
//! sending its bytes (verified, then discarded), when it can read something that holds
//! that content, or as a store-wide admin. Raw HTTP, as an attacker sends it, against the
//! real binary on both stores; the ordinary client flows keep working.

mod support;

use serde_json::{json, Value};
use std::path::Path;
use support::airlock::Airlock;
use support::backend::{Backend, StoreArgs};
use support::http;
use support::hub;
use support::sha256_hex;

const ADMIN: &str = "admin-token-for-tests-0123";
/// May write `alice/...` on the Hub and `docker.io/alice/...` images; reads nothing else.
const ALICE: &str = "alice-token-0123456789abc";

/// A config with Alice's token, a private Hub repo `victim/secret` holding `secret`
/// as `weights.bin`, and the server on `backend`.
fn start(backend: Backend, dir: &Path, secret: &[u8]) -> (StoreArgs, Airlock, String) {
    let config = dir.join("airlock.toml");
    std::fs::write(
        &config,
        format!(
            "[[tokens]]\nname = \"alice\"\nsecret = \"{ALICE}\"\nscopes = [\"write:hf:alice/\", \"write:oci:docker.io/alice/\"]\n"
        ),
    )
    .unwrap();
    let config = config.to_string_lossy().into_owned();
    let store = StoreArgs::new(backend, dir);
    let folder = dir.join("secret-model");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("weights.bin"), secret).unwrap();
    support::process::output_ok(
        store
            .cli(dir)
            .args(["--config", &config, "hf", "import", "victim/secret"])
            .arg(&folder)
            .arg("--private")
            .output()
            .unwrap(),
        "hf import",
    );
    let server = store.serve(dir, &["--config", &config, "--admin-token", ADMIN]);
    (store, server, config)
}

async fn status_and_text(r: reqwest::RequestBuilder) -> (u16, String) {
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// An HF commit naming another private repo's object by oid is refused, LFS batch asks
/// for the bytes, and the upload the client then makes (verified) lets the commit in.
async fn hf_commit_needs_the_bytes_or_a_readable_copy(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let secret = support::pseudo_random(64 * 1024, 0x5ec7e7);
    let oid = sha256_hex(&secret);
    let (_store, server, _) = start(backend, dir.path(), &secret);
    let base = &server.base;
    let c = http::client();
    let (s, text) = hub::create_model(&c, base, ADMIN, "alice", "stolen").await;
    assert_eq!(s, 200, "{text}");

    // The attack: a commit naming the private file's oid, no bytes sent.
    let commit = |path: &str| {
        hub::commit(&c, base, ALICE, "alice/stolen").body(hub::ndjson(&[
            hub::header_line("add"),
            hub::lfs_line(path, &oid, secret.len()),
        ]))
    };
    let (s, text) = status_and_text(commit("loot.bin")).await;
    assert_eq!(
        s, 400,
        "an lfsFile of another repo's object was accepted: {text}"
    );
    assert!(text.contains("upload the file's content"), "{text}");
    let (s, _) = status_and_text(c.get(format!("{base}/alice/stolen/resolve/main/loot.bin"))).await;
    assert_eq!(s, 404);

    // LFS batch does not say "already there": the client must upload.
    let batch = || hub::lfs_batch(&c, base, ALICE, "alice/stolen", &oid, secret.len());
    let href = hub::upload_href(&batch().await);
    let verify = json!({"oid": oid, "size": secret.len()});
    let verify_url = format!("{base}/api/models/alice/stolen/lfs-verify");
    let (s, _) = status_and_text(c.post(&verify_url).bearer_auth(ALICE).json(&verify)).await;
    assert_eq!(
        s, 404,
        "verify must not vouch for an object never uploaded here"
    );

    // The signed URL is for this repository only.
    let elsewhere = href.replace("repo=models/alice/stolen", "repo=models/victim/secret");
    assert_ne!(elsewhere, href);
    let (s, _) = status_and_text(c.put(&elsewhere).body(secret.clone())).await;
    assert_eq!(s, 403);
    // Bytes of the right size but not the content: refused, nothing linked.
    let mut wrong = secret.clone();
    wrong[0] ^= 1;
    let (s, _) = status_and_text(c.put(&href).body(wrong)).await;
    assert_eq!(s, 400);
    let (s, _) = status_and_text(c.post(&verify_url).bearer_auth(ALICE).json(&verify)).await;
    assert_eq!(s, 404);
    let (s, _) = status_and_text(commit("loot.bin")).await;
    assert_eq!(s, 400);

    // Whoever has the bytes may publish them: verified, then linked to this repo.
    let (s, text) = status_and_text(c.put(&href).body(secret.clone())).await;
    assert_eq!(s, 200, "{text}");
    let (s, _) = status_and_text(c.post(&verify_url).bearer_auth(ALICE).json(&verify)).await;
    assert_eq!(s, 200);
    let (s, text) = status_and_text(commit("weights.bin")).await;
    assert_eq!(s, 200, "{text}");
    let r = c
        .get(format!("{base}/alice/stolen/resolve/main/weights.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), secret.as_slice());
    // Now held by this repo: batch skips it, and another path may name it by oid.
    let answer = batch().await;
    assert!(answer["objects"][0].get("actions").is_none(), "{answer}");
    let (s, text) = status_and_text(commit("copy.bin")).await;
    assert_eq!(s, 200, "{text}");
}

/// A `Location` header as a URL (the spec allows a path).
fn absolute(base: &str, location: String) -> String {
    if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location
    }
}

fn oci_code(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["errors"][0]["code"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// OCI: a mount without `from`, or from a repository the caller cannot read or that
/// does not hold the blob, opens an ordinary upload session (202), never a link.
async fn oci_mount_needs_a_readable_source(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (_store, server, _) = start(backend, dir.path(), b"unused");
    let base = &server.base;
    let c = http::client();
    let layer = support::pseudo_random(32 * 1024, 0x1a7e5);
    let digest = support::sha256(&layer);
    support::push_image(&c, base, ADMIN, "victim/app", "v1", &layer).await;
    let head = |repo: &str| {
        c.head(format!("{base}/v2/{repo}/blobs/{digest}"))
            .bearer_auth(ALICE)
    };

    for query in [
        format!("mount={digest}"),
        format!("mount={digest}&from=victim/app"),
        format!("mount={digest}&from=alice/nothing-here"),
    ] {
        let r = c
            .post(format!("{base}/v2/alice/app/blobs/uploads/?{query}"))
            .bearer_auth(ALICE)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{query}: a refused mount opens a session");
        let location = r.headers()["location"].to_str().unwrap().to_string();
        assert!(r.headers().contains_key("docker-upload-uuid"), "{query}");
        assert!(
            location.contains("/v2/alice/app/blobs/uploads/"),
            "{location}"
        );
        let (s, _) = status_and_text(head("alice/app")).await;
        assert_eq!(s, 404, "{query} linked the blob");
        // The session is a real one: cancel it.
        let location = absolute(base, location);
        let (s, _) = status_and_text(c.delete(&location).bearer_auth(ALICE)).await;
        assert_eq!(s, 204);
    }
}

/// An upload naming a digest the store holds must still carry those bytes: checked
/// (monolithic and chunked), then linked; never linked on the digest alone.
async fn oci_upload_of_a_stored_digest_checks_the_bytes(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (_store, server, _) = start(backend, dir.path(), b"unused");
    let base = &server.base;
    let c = http::client();
    let layer = support::pseudo_random(32 * 1024, 0x1a7e5);
    let digest = support::sha256(&layer);
    support::push_image(&c, base, ADMIN, "victim/app", "v1", &layer).await;
    let head = |repo: &str| {
        c.head(format!("{base}/v2/{repo}/blobs/{digest}"))
            .bearer_auth(ALICE)
    };

    // Monolithic upload of a stored digest with other bytes of the same size.
    let mut wrong = layer.clone();
    wrong[7] ^= 0xff;
    let (s, body) = status_and_text(
        c.post(format!(
            "{base}/v2/alice/app/blobs/uploads/?digest={digest}"
        ))
        .bearer_auth(ALICE)
        .body(wrong.clone()),
    )
    .await;
    assert_eq!(
        (s, oci_code(&body).as_str()),
        (400, "DIGEST_INVALID"),
        "{body}"
    );
    let (s, _) = status_and_text(head("alice/app")).await;
    assert_eq!(s, 404);
    // The same through a session: PATCH, then the closing PUT naming the digest.
    let r = c
        .post(format!("{base}/v2/alice/app/blobs/uploads/"))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let location = absolute(base, location);
    let r = c
        .patch(&location)
        .bearer_auth(ALICE)
        .body(wrong[..1000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let location = absolute(base, location);
    let sep = if location.contains('?') { '&' } else { '?' };
    let (s, body) = status_and_text(
        c.put(format!("{location}{sep}digest={digest}"))
            .bearer_auth(ALICE)
            .body(wrong[1000..].to_vec()),
    )
    .await;
    assert_eq!(
        (s, oci_code(&body).as_str()),
        (400, "DIGEST_INVALID"),
        "{body}"
    );
    let (s, _) = status_and_text(head("alice/app")).await;
    assert_eq!(s, 404);

    // With the bytes, the upload is accepted (not stored twice) and linked; a mount
    // from a repository Alice can read works as before.
    let (s, body) = status_and_text(
        c.post(format!(
            "{base}/v2/alice/app/blobs/uploads/?digest={digest}"
        ))
        .bearer_auth(ALICE)
        .body(layer.clone()),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let (s, _) = status_and_text(head("alice/app")).await;
    assert_eq!(s, 200);
    let (s, body) = status_and_text(
        c.post(format!(
            "{base}/v2/alice/copy/blobs/uploads/?mount={digest}&from=alice/app"
        ))
        .bearer_auth(ALICE),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let (s, _) = status_and_text(head("alice/copy")).await;
    assert_eq!(s, 200);
}

on_both_stores!(async:
    hf_commit_needs_the_bytes_or_a_readable_copy,
    oci_mount_needs_a_readable_source,
    oci_upload_of_a_stored_digest_checks_the_bytes,
);

/// The catalog has no size to fill: it is the listing of the repository documents.
/// A full `oci/catalog.json` as earlier versions kept it (16 MiB of names, the cap that
/// once left a late push unlisted) neither fails a push nor hides it, and the names it
/// holds without a repository are not listed. Filesystem only: the old document is
/// written directly, and the listing is the same logic on every store.
#[tokio::test]
async fn an_old_full_catalog_neither_fails_nor_hides_a_push() {
    const MAX: usize = 16 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let (_store, server, _) = start(Backend::Fs, dir.path(), b"unused");
    // Names until there is no room for one more of at least their length.
    let mut names = std::collections::BTreeSet::new();
    let mut len = r#"{"repositories":[]}"#.len();
    let mut i = 0u64;
    loop {
        let name = format!("docker.io/alice/filler-r{i:09}");
        if len + name.len() + 3 > MAX {
            break;
        }
        len += name.len() + 3;
        names.insert(name);
        i += 1;
    }
    let catalog = serde_json::to_vec(&json!({ "repositories": names })).unwrap();
    assert!(catalog.len() <= MAX && catalog.len() > MAX - 40);
    let path = dir.path().join("store/oci/catalog.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &catalog).unwrap();

    let c = http::client();
    let layer = b"a layer pushed into a full catalog".to_vec();
    let repo = "alice/a-repository-pushed-late";
    let digest = support::push_image(&c, &server.base, ALICE, repo, "v1", &layer).await;
    let r = c
        .get(format!("{}/v2/{repo}/manifests/{digest}", server.base))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(format!("{}/v2/_catalog", server.base))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let listed: Value = r.json().await.unwrap();
    assert_eq!(
        listed["repositories"],
        json!(["docker.io/alice/a-repository-pushed-late"])
    );
}
