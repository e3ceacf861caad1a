//! Xet uploads against the real binary on both stores, with raw HTTP as a hostile client
//! would send it: the Hub's token routes follow the caller's scopes, the CAS keeps only
//! xorbs that hash to their name and shards whose claims hold, and a file uploaded
//! through Xet becomes an ordinary file of the repository the token was for. The xorbs
//! and shard are xet-core's own output (tests/data/xet/README.md). huggingface_hub and
//! hf_xet themselves are run by tests/hf_clients.rs.

mod support;

use serde_json::{json, Value};
use std::path::Path;
use support::airlock::Airlock;
use support::backend::{Backend, StoreArgs};
use support::http;

const ADMIN: &str = "admin-token-for-tests-0123";
/// Writes `alice/...` on the Hub.
const ALICE: &str = "alice-token-0123456789abc";
/// Writes `bob/...` on the Hub.
const BOB: &str = "bob-token-0123456789abcde";
/// Reads `alice/...` only.
const READER: &str = "reader-token-0123456789ab";

const X1: &[u8] = include_bytes!("data/xet/x1.xorb");
const X2: &[u8] = include_bytes!("data/xet/x2.xorb");
const SHARD: &[u8] = include_bytes!("data/xet/two_files.shard");
const X1_HASH: &str = "1d9602ee776ce2c98cf2470b0e82c60fdb24a8f45f47f0b1cb6085afb22a7998";
const X2_HASH: &str = "7c0dd5959728d162e291100270c88d56d2d9b0fa2eb4b25c9901c504fb08f300";
/// The two files the shard describes: sha256 and size (tests/data/xet/vectors.txt).
const FILE_A: (&str, usize) = (
    "1afd8b88c29ab5355e511deb066647e7dd92397cf603c3c5fbc1b986289c0109",
    20000,
);
const FILE_B: (&str, usize) = (
    "58ed93be480ab0cd9cb0ad6e18bc96bf4655691a32c133ca04ebe6a7f5f9c40c",
    13500,
);
/// Their Xet file hashes (tests/data/xet/vectors.txt).
const FILE_A_XET: &str = "fdace46d5407288c0424008113a5f9acebd2dd53976c58be12f380419afa0170";
const FILE_B_XET: &str = "7993803456b19dec5c93d469fd4d52176fbbde419a0864cdf8c126f71bb7a87c";

fn start(backend: Backend, dir: &Path) -> (StoreArgs, Airlock) {
    start_with(backend, dir, "")
}

/// As [`start`], with more configuration (`[hf] ...`) after the tokens.
fn start_with(backend: Backend, dir: &Path, extra: &str) -> (StoreArgs, Airlock) {
    let config = dir.join("airlock.toml");
    std::fs::write(
        &config,
        format!(
            "[[tokens]]\nname = \"alice\"\nsecret = \"{ALICE}\"\nscopes = [\"write:hf:alice/\"]\n\
             [[tokens]]\nname = \"bob\"\nsecret = \"{BOB}\"\nscopes = [\"write:hf:bob/\"]\n\
             [[tokens]]\nname = \"reader\"\nsecret = \"{READER}\"\nscopes = [\"read:hf:alice/\"]\n{extra}"
        ),
    )
    .unwrap();
    let store = StoreArgs::new(backend, dir);
    let server = store.serve(
        dir,
        &["--config", config.to_str().unwrap(), "--admin-token", ADMIN],
    );
    (store, server)
}

async fn create(server: &Airlock, token: &str, body: Value) {
    let r = http::client()
        .post(server.url("/api/repos/create"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// The CAS token and URL the Hub hands `token` for `repo`, or the status it refused with.
async fn cas_token(
    server: &Airlock,
    token: Option<&str>,
    prefix: &str,
    repo: &str,
    kind: &str,
) -> Result<(String, String), u16> {
    let mut request = http::client()
        .get(server.url(&format!("{prefix}/api/models/{repo}/xet-{kind}-token/main")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let r = request.send().await.unwrap();
    if r.status() != 200 {
        return Err(r.status().as_u16());
    }
    let headers = r.headers().clone();
    let body: Value = r.json().await.unwrap();
    let access = body["accessToken"].as_str().unwrap().to_string();
    let cas = body["casUrl"].as_str().unwrap().to_string();
    // Clients before huggingface_hub 1.19 and git-xet read the same from headers.
    assert_eq!(headers["x-xet-access-token"], access.as_str());
    assert_eq!(headers["x-xet-cas-url"], cas.as_str());
    assert_eq!(
        headers["x-xet-token-expiration"],
        body["exp"].as_u64().unwrap().to_string().as_str()
    );
    Ok((access, cas))
}

async fn post(url: String, token: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut request = http::client().post(url).body(body.to_vec());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn xet_tokens_follow_the_hub_scopes(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (_store, server) = start(backend, dir.path());
    create(
        &server,
        ALICE,
        json!({"name": "m", "organization": "alice"}),
    )
    .await;
    create(
        &server,
        ADMIN,
        json!({"name": "secret", "organization": "victim", "private": true}),
    )
    .await;

    let (_, cas) = cas_token(&server, Some(ALICE), "", "alice/m", "write")
        .await
        .unwrap();
    assert_eq!(cas, server.url("/_airlock/xet"));
    // Through the `/hf` prefix the CAS is the same one.
    let (_, cas) = cas_token(&server, Some(ALICE), "/hf", "alice/m", "write")
        .await
        .unwrap();
    assert_eq!(cas, server.url("/_airlock/xet"));
    assert!(cas_token(&server, Some(READER), "", "alice/m", "read")
        .await
        .is_ok());
    assert!(cas_token(&server, None, "", "alice/m", "read")
        .await
        .is_ok());
    for (token, repo, kind, status) in [
        (Some(READER), "alice/m", "write", 403),
        (None, "alice/m", "write", 401),
        (Some(BOB), "alice/m", "write", 403),
        (Some(ALICE), "alice/nope", "write", 404),
        // A private repository of someone else does not exist for the caller.
        (Some(ALICE), "victim/secret", "read", 404),
        (Some("not-a-token-0123456789"), "alice/m", "read", 401),
    ] {
        assert_eq!(
            cas_token(&server, token, "", repo, kind).await.err(),
            Some(status),
            "{token:?} {repo} {kind}"
        );
    }
}

async fn the_cas_keeps_only_what_verifies(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (store, server) = start(backend, dir.path());
    create(
        &server,
        ALICE,
        json!({"name": "m", "organization": "alice"}),
    )
    .await;
    create(&server, BOB, json!({"name": "m", "organization": "bob"})).await;
    let (write, cas) = cas_token(&server, Some(ALICE), "", "alice/m", "write")
        .await
        .unwrap();
    let (read, _) = cas_token(&server, Some(READER), "", "alice/m", "read")
        .await
        .unwrap();
    let xorb = |hash: &str| format!("{cas}/v1/xorbs/default/{hash}");

    // Refused before anything is read: no token, a read token, a forged one.
    for (token, status) in [
        (None, 401),
        (Some(read.as_str()), 403),
        (Some("xetcas1.e30.AAAA"), 401),
    ] {
        assert_eq!(post(xorb(X1_HASH), token, X1).await.0, status, "{token:?}");
    }
    // A xorb that does not hash to its name, or ends early, is never stored.
    let (status, text) = post(xorb(X2_HASH), Some(&write), X1).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("xorb hash is"), "{text}");
    let (status, text) = post(xorb(X1_HASH), Some(&write), &X1[..X1.len() - 5]).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(store.keys_under("xet/"), Vec::<String>::new());
    assert_eq!(store.unfinished_writes(), Vec::<String>::new());

    assert_eq!(
        post(xorb(X1_HASH), Some(&write), X1).await,
        (200, json!({"was_inserted": true}).to_string())
    );
    assert_eq!(
        post(xorb(X1_HASH), Some(&write), X1).await,
        (200, json!({"was_inserted": false}).to_string())
    );
    // Already stored: the body is read and dropped, but not past a xorb's size limit.
    let (status, text) = post(xorb(X1_HASH), Some(&write), &vec![0; 65 << 20]).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("larger than"), "{text}");
    let head = |hash: &str| http::client().head(xorb(hash)).bearer_auth(&read).send();
    assert_eq!(head(X1_HASH).await.unwrap().status(), 200);
    assert_eq!(head(X2_HASH).await.unwrap().status(), 404);

    // A shard naming a xorb not uploaded yet is refused, and records nothing.
    let (status, text) = post(format!("{cas}/v1/shards"), Some(&write), SHARD).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains(X2_HASH), "{text}");
    assert_eq!(post(xorb(X2_HASH), Some(&write), X2).await.0, 200);

    // Claims that do not hold: a sha256 the chunks do not hash to, a term verification
    // hash that is not the range hash of the chunks (the proof of having them).
    let shard = airlock::xet::parse_shard(SHARD, SHARD.len() as u64).unwrap();
    let reversed_sha: Vec<u8> = hex::decode(FILE_A.0)
        .unwrap()
        .chunks(8)
        .flat_map(|block| block.iter().rev().copied().collect::<Vec<_>>())
        .collect();
    let verification = shard.files[0].terms[0].verification.unwrap().0;
    for (what, needle) in [
        ("sha256", reversed_sha),
        ("verification", verification.to_vec()),
    ] {
        let at = SHARD
            .windows(32)
            .position(|w| w == needle.as_slice())
            .unwrap_or_else(|| panic!("{what} not found in the shard"));
        let mut forged = SHARD.to_vec();
        forged[at + 5] ^= 1;
        let (status, text) = post(format!("{cas}/v1/shards"), Some(&write), &forged).await;
        assert_eq!(status, 400, "{what}: {text}");
    }
    // No file recorded, no link; the file whose sha256 was forged was never stored (the
    // other one may be: verified content that nothing refers to).
    assert_eq!(store.keys_under("xet/files/"), Vec::<String>::new());
    assert_eq!(
        store.keys_under("hf/models/alice--m/lfs/"),
        Vec::<String>::new()
    );
    let blob_of = |sha: &str| format!("blobs/sha256/{}/{sha}", &sha[..2]);
    assert_eq!(store.keys_under(&blob_of(FILE_A.0)), Vec::<String>::new());

    // The v2 route streams progress and ends with the result.
    let r = http::client()
        .post(format!("{cas}/v2/shards"))
        .bearer_auth(&write)
        .body(SHARD.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text = r.text().await.unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        events.last().unwrap(),
        &json!({"type": "result", "result": 1}),
        "{text}"
    );
    assert!(events.iter().any(|e| e["type"] == "validating"), "{text}");
    // A failure after the stream started is its last event.
    let r = http::client()
        .post(format!("{cas}/v2/shards"))
        .bearer_auth(&write)
        .body(SHARD[..100].to_vec())
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "error", "{text}");

    // Each file is recorded, kept as its xorbs only (no copy under blobs/), and alice/m
    // (the token's repository) may commit it.
    for (sha, _) in [FILE_A, FILE_B] {
        assert_eq!(store.keys_under(&blob_of(sha)), Vec::<String>::new());
    }
    assert_eq!(store.keys_under("xet/files/").len(), 2);
    let commit = |repo: &str, token: &str| {
        let ndjson = format!(
            "{}\n{}\n",
            json!({"key": "header", "value": {"summary": "add", "description": ""}}),
            json!({"key": "lfsFile", "value": {"path": "a.bin", "algo": "sha256", "oid": FILE_A.0, "size": FILE_A.1}})
        );
        http::client()
            .post(server.url(&format!("/api/models/{repo}/commit/main")))
            .bearer_auth(token)
            .header("content-type", "application/x-ndjson")
            .body(ndjson)
            .send()
    };
    let r = commit("alice/m", ALICE).await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let bytes = http::client()
        .get(server.url("/alice/m/resolve/main/a.bin"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.len(), FILE_A.1);
    assert_eq!(support::sha256_hex(&bytes), FILE_A.0);
    // Bob never uploaded it: his repository may not name it.
    let r = commit("bob/m", BOB).await.unwrap();
    assert_ne!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// Uploads the fixture xorbs and shard as alice, and commits file A as `a.bin`, file B as
/// `b.bin` and a small regular file to alice/m; the commit id.
async fn upload_fixture(server: &Airlock) -> String {
    create(server, ALICE, json!({"name": "m", "organization": "alice"})).await;
    let (write, cas) = cas_token(server, Some(ALICE), "", "alice/m", "write")
        .await
        .unwrap();
    for (hash, xorb) in [(X1_HASH, X1), (X2_HASH, X2)] {
        let url = format!("{cas}/v1/xorbs/default/{hash}");
        assert_eq!(post(url, Some(&write), xorb).await.0, 200);
    }
    assert_eq!(
        post(format!("{cas}/v1/shards"), Some(&write), SHARD)
            .await
            .0,
        200
    );
    use support::hub::{commit, file_line, header_line, lfs_line, ndjson};
    let body = ndjson(&[
        header_line("add"),
        lfs_line("a.bin", FILE_A.0, FILE_A.1),
        lfs_line("b.bin", FILE_B.0, FILE_B.1),
        file_line("small.txt", b"hello"),
    ]);
    let r = commit(&http::client(), &server.base, ALICE, "alice/m")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["commitOid"].as_str().unwrap().to_string()
}

fn xorb_bytes(hash: &str) -> &'static [u8] {
    match hash {
        X1_HASH => X1,
        X2_HASH => X2,
        other => panic!("unknown xorb {other}"),
    }
}

/// Fetches `url` with `range` (`bytes=...`); the status and body.
async fn fetch(url: &str, range: Option<&str>) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = http::client().get(url);
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let r = request.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.bytes().await.unwrap().to_vec())
}

/// The file bytes a reconstruction describes, fetched through its URLs (each checked to
/// be exactly the stored xorb bytes it names) and decoded.
async fn rebuild(answer: &Value, v2: bool) -> Vec<u8> {
    let mut fetched: Vec<(String, u32, u32, Vec<u8>)> = Vec::new();
    let map = if v2 {
        &answer["xorbs"]
    } else {
        &answer["fetch_info"]
    };
    for (hash, entries) in map.as_object().unwrap() {
        for entry in entries.as_array().unwrap() {
            let ranges: Vec<(Value, Value)> = if v2 {
                entry["ranges"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| (r["chunks"].clone(), r["bytes"].clone()))
                    .collect()
            } else {
                vec![(entry["range"].clone(), entry["url_range"].clone())]
            };
            for (chunks, bytes) in ranges {
                let (s, e) = (
                    bytes["start"].as_u64().unwrap(),
                    bytes["end"].as_u64().unwrap(),
                );
                let (status, headers, body) = fetch(
                    entry["url"].as_str().unwrap(),
                    Some(&format!("bytes={s}-{e}")),
                )
                .await;
                assert_eq!(status, 206);
                let stored = xorb_bytes(hash);
                assert_eq!(
                    headers["content-range"],
                    format!("bytes {s}-{e}/{}", stored.len()).as_str()
                );
                assert_eq!(body, &stored[s as usize..=e as usize]);
                let c = (
                    chunks["start"].as_u64().unwrap(),
                    chunks["end"].as_u64().unwrap(),
                );
                fetched.push((hash.clone(), c.0 as u32, c.1 as u32, body));
            }
        }
    }
    let mut out = Vec::new();
    for term in answer["terms"].as_array().unwrap() {
        let hash = term["hash"].as_str().unwrap();
        let (start, end) = (
            term["range"]["start"].as_u64().unwrap() as u32,
            term["range"]["end"].as_u64().unwrap() as u32,
        );
        let index = airlock::xet::verify_xorb(hash.parse().unwrap(), xorb_bytes(hash)).unwrap();
        let (_, fs, _, body) = fetched
            .iter()
            .find(|(h, s, e, _)| h == hash && *s <= start && end <= *e)
            .unwrap_or_else(|| panic!("no fetch covers {hash} {start}..{end}"));
        // The bytes of chunks start..end within the fetched range of chunks fs..
        let base = index.byte_range(*fs..*fs + 1).unwrap().start;
        let want = index.byte_range(start..end).unwrap();
        let stored = &body[(want.start - base) as usize..(want.end - base) as usize];
        let mut term_bytes = Vec::new();
        airlock::xet::decode_range(&index, start..end, stored, |c| {
            term_bytes.extend_from_slice(c)
        })
        .unwrap();
        assert_eq!(
            term_bytes.len() as u64,
            term["unpacked_length"].as_u64().unwrap()
        );
        out.extend(term_bytes);
    }
    out.drain(..answer["offset_into_first_range"].as_u64().unwrap() as usize);
    out
}

async fn downloads_through_the_cas(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    // This store keeps a whole copy of each Xet file too; its bundles still carry chunks.
    let (store, server) = start_with(backend, dir.path(), "[hf]\nxet_materialize = true\n");
    let commit = upload_fixture(&server).await;
    for (sha, _) in [FILE_A, FILE_B] {
        let blob = format!("blobs/sha256/{}/{sha}", &sha[..2]);
        assert_eq!(store.keys_under(&blob).len(), 1, "{sha}");
    }
    create(&server, BOB, json!({"name": "m", "organization": "bob"})).await;

    // A read token reaches files: a gated repository's go only to tokens that may read
    // them, as its resolve does.
    let folder = dir.path().join("gated");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("config.json"), "{}").unwrap();
    support::process::output_ok(
        store
            .cli(dir.path())
            .args(["hf", "import", "alice/gated"])
            .arg(&folder)
            .arg("--gated")
            .output()
            .unwrap(),
        "hf import",
    );
    assert_eq!(
        cas_token(&server, None, "", "alice/gated", "read")
            .await
            .err(),
        Some(401)
    );
    assert!(cas_token(&server, Some(READER), "", "alice/gated", "read")
        .await
        .is_ok());

    // Resolve offers Xet for the files uploaded through it, on HEAD and GET, and nothing
    // for the regular file; the tree and paths-info say the same.
    let token_route = server.url(&format!("/api/models/alice/m/xet-read-token/{commit}"));
    for (path, xet) in [
        ("a.bin", Some(FILE_A_XET)),
        ("b.bin", Some(FILE_B_XET)),
        ("small.txt", None),
    ] {
        let url = server.url(&format!("/alice/m/resolve/main/{path}"));
        for r in [
            http::client().head(&url).send().await.unwrap(),
            http::client().get(&url).send().await.unwrap(),
        ] {
            assert_eq!(r.status(), 200);
            let h = r.headers();
            assert_eq!(
                h.get("x-xet-hash").map(|v| v.to_str().unwrap()),
                xet,
                "{path}"
            );
            let link = xet.map(|_| format!("<{token_route}>; rel=\"xet-auth\""));
            assert_eq!(
                h.get("link").map(|v| v.to_str().unwrap().to_string()),
                link,
                "{path}"
            );
        }
    }
    let tree: Value = http::client()
        .get(server.url("/api/models/alice/m/tree/main"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let xet_hashes: Vec<(&str, Option<&str>)> = tree
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap(), e["xetHash"].as_str()))
        .collect();
    assert_eq!(
        xet_hashes,
        [
            (".gitattributes", None),
            ("a.bin", Some(FILE_A_XET)),
            ("b.bin", Some(FILE_B_XET)),
            ("small.txt", None)
        ]
    );

    // The token route named by the link hands out a read token; the file's reconstruction
    // rebuilds it exactly, in v1 and v2.
    let (read, cas) = cas_token(&server, Some(READER), "", "alice/m", "read")
        .await
        .unwrap();
    let a = http::client()
        .get(server.url("/alice/m/resolve/main/a.bin"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let reconstruction = |v: &str, file: &str, token: &str, range: Option<&str>| {
        let mut request = http::client()
            .get(format!("{cas}/{v}/reconstructions/{file}"))
            .bearer_auth(token);
        if let Some(range) = range {
            request = request.header("range", range);
        }
        request.send()
    };
    for (v, v2) in [("v1", false), ("v2", true)] {
        let r = reconstruction(v, FILE_A_XET, &read, None).await.unwrap();
        assert_eq!(r.status(), 200, "{v}");
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["offset_into_first_range"], 0, "{answer}");
        assert_eq!(rebuild(&answer, v2).await, a.to_vec(), "{v}");
        // A range: the terms cover it, the offset says where it starts.
        let r = reconstruction(v, FILE_A_XET, &read, Some("bytes=15000-19999"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let answer: Value = r.json().await.unwrap();
        let got = rebuild(&answer, v2).await;
        assert!(got.len() >= 5000, "{answer}");
        assert_eq!(got[..5000], a[15000..20000], "{v}");
        // Past the end: 416, as hf_xet expects at the end of a file.
        let r = reconstruction(v, FILE_A_XET, &read, Some("bytes=20000-20100"))
            .await
            .unwrap();
        assert_eq!(r.status(), 416);
    }

    // The Rust hf-hub crate (TGI, candle) knows nothing of Xet: plain resolve.
    let api = hf_hub::api::tokio::ApiBuilder::new()
        .with_endpoint(server.base.clone())
        .with_cache_dir(dir.path().join("hf-hub-cache"))
        .with_progress(false)
        .build()
        .unwrap();
    let got = api.model("alice/m".to_string()).get("a.bin").await.unwrap();
    assert_eq!(std::fs::read(got).unwrap(), a.to_vec());

    // A file hash is not a capability: bob's token, for a repository that does not hold
    // the file, finds nothing; without a token, nothing either.
    let (bob_read, _) = cas_token(&server, Some(BOB), "", "bob/m", "read")
        .await
        .unwrap();
    let r = reconstruction("v2", FILE_A_XET, &bob_read, None)
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http::client()
        .get(format!("{cas}/v2/reconstructions/{FILE_A_XET}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let unknown = "ab".repeat(32);
    let r = reconstruction("v1", &unknown, &read, None).await.unwrap();
    assert_eq!(r.status(), 404);

    // Signed URLs: the granted range only, of the granted xorb, unaltered.
    let answer: Value = reconstruction("v1", FILE_A_XET, &read, None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (xorb, entries) = answer["fetch_info"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    let url = entries[0]["url"].as_str().unwrap().to_string();
    let (s, e) = (
        entries[0]["url_range"]["start"].as_u64().unwrap(),
        entries[0]["url_range"]["end"].as_u64().unwrap(),
    );
    let stored = xorb_bytes(xorb);
    // Two pieces of the granted range in one request: multipart/byteranges.
    let (status, headers, body) =
        fetch(&url, Some(&format!("bytes={s}-{},{}-{e}", s + 9, e - 9))).await;
    assert_eq!(status, 206);
    let content_type = headers["content-type"].to_str().unwrap();
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{content_type}"));
    let part = |a: u64, b: u64| {
        [
            format!(
                "--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {a}-{b}/{}\r\n\r\n",
                stored.len()
            )
            .into_bytes(),
            stored[a as usize..=b as usize].to_vec(),
            b"\r\n".to_vec(),
        ]
        .concat()
    };
    let want = [
        part(s, s + 9),
        part(e - 9, e),
        format!("--{boundary}--\r\n").into_bytes(),
    ]
    .concat();
    assert_eq!(body, want);
    let other = if xorb == X1_HASH { X2_HASH } else { X1_HASH };
    let (path, query) = url.split_once('?').unwrap();
    for (url, range, status) in [
        // one byte past the grant, no range, a suffix range
        (url.clone(), Some(format!("bytes={s}-{}", e + 1)), 416),
        (url.clone(), None, 416),
        (url.clone(), Some("bytes=-100".to_string()), 416),
        // the same signature on another xorb, on other ranges, or a later expiry
        (
            url.replace(xorb.as_str(), other),
            Some("bytes=0-9".to_string()),
            403,
        ),
        (
            url.replace(
                &format!("ranges={s}-{e}"),
                &format!("ranges=0-{}", e + 1000),
            ),
            Some("bytes=0-9".to_string()),
            403,
        ),
        (
            format!("{path}?{}", query.replace("exp=", "exp=9")),
            Some(format!("bytes={s}-{e}")),
            403,
        ),
        (path.to_string(), Some(format!("bytes={s}-{e}")), 403),
    ] {
        let (got, _, body) = fetch(&url, range.as_deref()).await;
        assert_eq!(
            got,
            status,
            "{url} {range:?}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let log = server.log();
    assert!(log.contains("route=xet.reconstruction"), "{log}");
    assert!(log.contains("route=xet.fetch"), "{log}");

    // A bundle carries the files uploaded through Xet as chunks: their records and
    // xorbs, not their blobs. Where it is imported, Xet is offered for them and served.
    let bundle = dir.path().join("out.tar");
    let run = |store: &StoreArgs, args: &[&str]| {
        support::process::output_ok(store.cli(dir.path()).args(args).output().unwrap(), "bundle");
    };
    run(
        &store,
        &["bundle", "export", "--out", bundle.to_str().unwrap()],
    );
    let mut archive = tar::Archive::new(std::fs::File::open(&bundle).unwrap());
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().to_string())
        .collect();
    for hash in [X1_HASH, X2_HASH] {
        assert!(names.contains(&format!("xorbs/{hash}")), "{names:?}");
    }
    for (sha, _) in [FILE_A, FILE_B] {
        assert!(
            !names.contains(&format!("objects/sha256/{sha}")),
            "{names:?}"
        );
    }
    let target = StoreArgs::new(backend, &dir.path().join("b"));
    run(&target, &["bundle", "import", bundle.to_str().unwrap()]);
    let config = dir.path().join("airlock.toml");
    let receiver = target.serve(
        dir.path(),
        &["--config", config.to_str().unwrap(), "--admin-token", ADMIN],
    );
    let r = http::client()
        .head(receiver.url("/alice/m/resolve/main/a.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-xet-hash"], FILE_A_XET);
    assert!(r.headers().get("link").is_some());
    let tree: Value = http::client()
        .get(receiver.url("/api/models/alice/m/tree/main"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let a_entry = tree
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "a.bin")
        .unwrap();
    assert_eq!(a_entry["xetHash"], FILE_A_XET, "{tree}");
    let (read, cas) = cas_token(&receiver, Some(READER), "", "alice/m", "read")
        .await
        .unwrap();
    for v in ["v1", "v2"] {
        let answer: Value = http::client()
            .get(format!("{cas}/{v}/reconstructions/{FILE_A_XET}"))
            .bearer_auth(&read)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(rebuild(&answer, v == "v2").await, a.to_vec(), "{v}");
    }
    // The receiver keeps xorbs only (the default): plain resolve rebuilds the file.
    assert!(target
        .keys_under(&format!("blobs/sha256/{}/{}", &FILE_A.0[..2], FILE_A.0))
        .is_empty());
    let r = http::client()
        .get(receiver.url("/alice/m/resolve/main/a.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), a);
}

/// Exports the fixture repository from a sender on the filesystem, unsigned (the
/// signature covers the manifest; the xorbs are checked against their hashes); the
/// bundle's path.
async fn exported_fixture(dir: &Path, extra: &[&str]) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("sender")).unwrap();
    let (store, server) = start(Backend::Fs, &dir.join("sender"));
    upload_fixture(&server).await;
    let bundle = dir.join("fixture.tar");
    let mut cmd = store.cli(dir);
    cmd.args(["bundle", "export", "--out", bundle.to_str().unwrap()])
        .args(extra);
    support::process::output_ok(cmd.output().unwrap(), "bundle export");
    bundle
}

fn import(target: &StoreArgs, dir: &Path, bundle: &Path) -> std::process::Output {
    target
        .cli(dir)
        .args(["bundle", "import", bundle.to_str().unwrap()])
        .output()
        .unwrap()
}

/// What the receiver holds of the repository: nothing at all after a refused import.
fn imported_keys(target: &StoreArgs) -> Vec<String> {
    ["xet/", "blobs/", "hf/"]
        .iter()
        .flat_map(|p| target.keys_under(p))
        .collect()
}

/// A bundle whose last xorb was altered (one byte flipped in the bundle file) is refused
/// before anything is stored: nothing under xet/ (the other xorb included), no blob, no
/// document. The pristine bundle then imports.
async fn a_bundle_with_an_altered_xorb_imports_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bundle = exported_fixture(d, &[]).await;
    let pristine = std::fs::read(&bundle).unwrap();
    // The xorb stored last: pass two stores in the bundle's order.
    let mut archive = tar::Archive::new(std::fs::File::open(&bundle).unwrap());
    let (name, at) = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            let name = e.path().unwrap().to_string_lossy().to_string();
            (name, e.raw_file_position() + e.size() / 2)
        })
        .filter(|(name, _)| name.starts_with("xorbs/"))
        .last()
        .unwrap();
    let mut altered = pristine.clone();
    altered[at as usize] ^= 0x40;
    std::fs::write(&bundle, &altered).unwrap();
    let target = StoreArgs::new(backend, &d.join("receiver"));
    let out = import(&target, d, &bundle);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("xorb {} is corrupt", &name["xorbs/".len()..]))
            && stderr.contains("nothing was imported"),
        "{stderr}"
    );
    assert_eq!(imported_keys(&target), Vec::<String>::new());

    std::fs::write(&bundle, &pristine).unwrap();
    support::process::output_ok(import(&target, d, &bundle), "bundle import");
    assert_eq!(
        target.keys_under("xet/xorbs/").len(),
        4,
        "two xorbs and their indexes"
    );
}

/// A bundle whose file records name xorbs it does not carry (left out by a have.json
/// that claims them) is refused where the xorbs are missing, with nothing imported.
async fn a_bundle_naming_missing_xorbs_imports_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let have = d.join("have.json");
    std::fs::write(
        &have,
        json!({"format": "airlock-bundle-have", "version": 1, "blobs": [], "docs": {},
               "xorbs": [X1_HASH, X2_HASH]})
        .to_string(),
    )
    .unwrap();
    let bundle = exported_fixture(d, &["--have", have.to_str().unwrap()]).await;
    let target = StoreArgs::new(backend, &d.join("receiver"));
    let out = import(&target, d, &bundle);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("which neither the bundle carries nor this store holds")
            && stderr.contains("nothing was imported"),
        "{stderr}"
    );
    assert_eq!(imported_keys(&target), Vec::<String>::new());
}

/// A file uploaded through Xet is kept as xorbs only (`[hf] xet_materialize` is off by
/// default), yet is a file like any other: plain resolve rebuilds it (whole, any range,
/// HEAD, 304, 416, `If-Range`) with the headers and validators of a stored blob, the
/// LFS batch API and commits treat it as held by its repository only, and the hf-hub
/// crate downloads it.
async fn plain_resolve_rebuilds_xet_only_files(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (store, server) = start_with(backend, dir.path(), "[s3api]\nlisten = \"127.0.0.1:0\"\n");
    let commit = upload_fixture(&server).await;
    for (sha, _) in [FILE_A, FILE_B] {
        let blob = format!("blobs/sha256/{}/{sha}", &sha[..2]);
        assert_eq!(store.keys_under(&blob), Vec::<String>::new(), "{sha}");
    }
    let client = http::client();
    let get = |url: &str, headers: &[(&str, &str)]| {
        let mut request = client.get(url);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send()
    };
    let mut whole_a = Vec::new();
    for (path, (sha, size), xet) in [("a.bin", FILE_A, FILE_A_XET), ("b.bin", FILE_B, FILE_B_XET)] {
        let url = server.url(&format!("/alice/m/resolve/main/{path}"));
        let etag = format!("\"{sha}\"");
        let r = get(&url, &[]).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        for (name, want) in [
            ("etag", etag.as_str()),
            ("x-linked-etag", etag.as_str()),
            ("x-linked-size", &size.to_string()),
            ("content-length", &size.to_string()),
            ("accept-ranges", "bytes"),
            ("x-repo-commit", &commit),
            ("x-xet-hash", xet),
        ] {
            assert_eq!(h[name], want, "{path} {name}");
        }
        let whole = r.bytes().await.unwrap().to_vec();
        assert_eq!(support::sha256_hex(&whole), sha, "{path}");
        if path == "a.bin" {
            whole_a = whole.clone();
        }

        let r = client.head(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-length"], size.to_string().as_str());
        assert_eq!(r.headers()["etag"], etag.as_str());
        assert_eq!(r.headers()["x-xet-hash"], xet);
        assert!(r.bytes().await.unwrap().is_empty());

        for validator in [etag.as_str(), "\"other\", *"] {
            let r = get(&url, &[("if-none-match", validator)]).await.unwrap();
            assert_eq!(r.status(), 304, "{validator}");
            assert_eq!(r.headers()["etag"], etag.as_str());
        }
        for range in [
            format!("bytes={size}-"),
            format!("bytes={}-{}", size + 5, size + 9),
        ] {
            let r = get(&url, &[("range", &range)]).await.unwrap();
            assert_eq!(r.status(), 416, "{range}");
            assert_eq!(
                r.headers()["content-range"],
                format!("bytes */{size}").as_str()
            );
        }
        // If-Range naming another version: the whole file; naming this one: the range.
        let r = get(&url, &[("range", "bytes=10-19"), ("if-range", "\"old\"")])
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap(), whole);
        let r = get(&url, &[("range", "bytes=10-19"), ("if-range", &etag)])
            .await
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(r.bytes().await.unwrap(), whole[10..20]);

        // Ranges starting and ending anywhere (inside chunks, on their edges, across
        // the two xorbs), open-ended and suffix ranges.
        let mut ranges: Vec<(String, usize, usize)> = Vec::new();
        for start in (0..size).step_by(997).chain([size - 1]) {
            for len in [1, 13, 4095, 4096, 8191, 10_000, size] {
                let end = (start + len).min(size);
                ranges.push((format!("bytes={start}-{}", end - 1), start, end));
            }
            ranges.push((format!("bytes={start}-"), start, size));
        }
        for n in [1, 5000, size, size + 10] {
            ranges.push((format!("bytes=-{n}"), size.saturating_sub(n), size));
        }
        for (range, start, end) in ranges {
            let r = get(&url, &[("range", &range)]).await.unwrap();
            assert_eq!(r.status(), 206, "{path} {range}");
            assert_eq!(
                r.headers()["content-range"],
                format!("bytes {start}-{}/{size}", end - 1).as_str(),
                "{path} {range}"
            );
            let body = r.bytes().await.unwrap();
            assert!(body[..] == whole[start..end], "{path} {range}");
        }
    }

    // The LFS batch API: held by alice/m (its upload's repository), so nothing to
    // upload; bob/m has to upload the bytes himself.
    use support::hub::{lfs_batch, upload_href};
    let answer = lfs_batch(&client, &server.base, ALICE, "alice/m", FILE_A.0, FILE_A.1).await;
    assert!(answer["objects"][0].get("actions").is_none(), "{answer}");
    create(&server, BOB, json!({"name": "m", "organization": "bob"})).await;
    let answer = lfs_batch(&client, &server.base, BOB, "bob/m", FILE_A.0, FILE_A.1).await;
    upload_href(&answer);
    let verify = |repo: &'static str, token: &'static str| {
        client
            .post(server.url(&format!("/api/models/{repo}/lfs-verify")))
            .bearer_auth(token)
            .header("content-type", "application/vnd.git-lfs+json")
            .json(&json!({"oid": FILE_A.0, "size": FILE_A.1}))
            .send()
    };
    assert_eq!(verify("alice/m", ALICE).await.unwrap().status(), 200);
    assert_eq!(verify("bob/m", BOB).await.unwrap().status(), 404);

    // The hf-hub crate (TGI, candle) reads the rebuilt file over plain HTTP.
    let api = hf_hub::api::tokio::ApiBuilder::new()
        .with_endpoint(server.base.clone())
        .with_cache_dir(dir.path().join("hf-hub-cache"))
        .with_progress(false)
        .build()
        .unwrap();
    let got = api.model("alice/m".to_string()).get("a.bin").await.unwrap();
    assert_eq!(std::fs::read(got).unwrap(), whole_a);

    // The S3 view (GetObject, whole and ranged) and the OCI ModelPack image (whose layer
    // is the file itself; the modelcar's tar layers read files the same way) rebuild it.
    let s3 = server.s3_endpoint();
    let object = format!("{s3}/models/alice/m/a.bin");
    let r = get(&object, &[]).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], format!("\"{}\"", FILE_A.0).as_str());
    assert_eq!(r.bytes().await.unwrap(), whole_a);
    let r = get(&object, &[("range", "bytes=4000-16999")])
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), whole_a[4000..17000]);

    let v2 = |path: &str| server.url(&format!("/v2/huggingface.co/alice/m/{path}"));
    let r = get(&v2("manifests/main-modelpack"), &[]).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = get(&v2(&format!("blobs/sha256:{}", FILE_A.0)), &[])
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), whole_a);
}

on_both_stores!(
    async:
    xet_tokens_follow_the_hub_scopes,
    the_cas_keeps_only_what_verifies,
    downloads_through_the_cas,
    plain_resolve_rebuilds_xet_only_files,
    global_dedup_answers_readers_only,
    a_bundle_with_an_altered_xorb_imports_nothing,
    a_bundle_naming_missing_xorbs_imports_nothing,
);

/// Scenarios that run the real client (their own module: the macro names `fs` and `s3`).
mod clients {
    use super::*;
    on_both_stores!(
        sync,
        ignore_fs = "needs huggingface_hub and hf_xet: `bash tests/run-all.sh` sets them up",
        ignore_s3 = "needs huggingface_hub, hf_xet and Garage: `bash tests/run-all.sh` sets them up":
        a_new_revision_from_a_cold_cache_uploads_only_what_changed,
    );
}

const MIXED: &[u8] = include_bytes!("data/xet/mixed.xorb");
/// mixed.xorb's hash, then one line per chunk starting with its hash.
const MIXED_INDEX: &str = include_str!("data/xet/mixed.xorb.index");

/// `GET {cas}/v1/chunks/{prefix}/{chunk}`: the status and body.
async fn dedup_query(cas: &str, prefix: &str, chunk: &str, token: Option<&str>) -> (u16, Vec<u8>) {
    let mut request = http::client().get(format!("{cas}/v1/chunks/{prefix}/{chunk}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

/// Global dedup: a chunk the CAS indexed is answered with a shard describing its xorb,
/// every chunk hash HMAC'd under the answer's own key (never the raw hashes), and only to
/// a token whose credential may read a repository the xorb was uploaded for; to anyone
/// else, the 404 of a chunk never seen.
async fn global_dedup_answers_readers_only(backend: Backend) {
    use airlock::xet::MerkleHash;
    let dir = tempfile::tempdir().unwrap();
    let (store, server) = start(backend, dir.path());
    // x1 and x2 for the public alice/m; file b of the shard starts at x1's chunk 1.
    upload_fixture(&server).await;
    create(
        &server,
        ALICE,
        json!({"name": "private", "organization": "alice", "private": true}),
    )
    .await;
    create(&server, BOB, json!({"name": "m", "organization": "bob"})).await;
    let (write, cas) = cas_token(&server, Some(ALICE), "", "alice/private", "write")
        .await
        .unwrap();
    let mut lines = MIXED_INDEX.lines();
    let mixed = lines.next().unwrap();
    let raw: Vec<MerkleHash> = lines
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    let url = format!("{cas}/v1/xorbs/default/{mixed}");
    assert_eq!(post(url, Some(&write), MIXED).await.0, 200);
    let first = raw[0].to_api_hex();

    let token = |who: &'static str, repo: &'static str| {
        let server = &server;
        async move {
            cas_token(server, Some(who), "", repo, "read")
                .await
                .unwrap()
                .0
        }
    };
    let alice = token(ALICE, "alice/private").await;
    // READER's credential reads alice/*: its token for alice/m reaches alice/private's xorb.
    let reader = token(READER, "alice/m").await;
    let bob = token(BOB, "bob/m").await;

    let mut keys = Vec::new();
    for (token, prefix) in [(&alice, "default-merkledb"), (&reader, "default")] {
        let (status, body) = dedup_query(&cas, prefix, &first, Some(token)).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let shard = airlock::xet::parse_dedup_shard(&body).unwrap();
        assert_eq!(shard.xorbs.len(), 1);
        assert_eq!(shard.xorbs[0].hash.to_api_hex(), mixed);
        assert_ne!(shard.hmac_key, MerkleHash::ZERO);
        // hf_xet matches its own chunks by keying their hashes (xet-core `MerkleHash::hmac`:
        // keyed BLAKE3); computed here without Airlock's code.
        let keyed: Vec<MerkleHash> = raw
            .iter()
            .map(|h| {
                MerkleHash(*blake3::keyed_hash(shard.hmac_key.as_bytes(), h.as_bytes()).as_bytes())
            })
            .collect();
        let got: Vec<MerkleHash> = shard.xorbs[0].chunks.iter().map(|c| c.hash).collect();
        assert_eq!(got, keyed);
        for h in &raw {
            assert!(
                !body.windows(32).any(|w| w == h.as_bytes()),
                "raw chunk hash {h} disclosed"
            );
        }
        keys.push(shard.hmac_key);
    }
    assert_ne!(keys[0], keys[1], "a fresh key per answer");

    // Bob may not read alice/private: his token learns nothing of its xorb.
    let unknown = "ab".repeat(32);
    for (chunk, token, status) in [
        (first.as_str(), Some(bob.as_str()), 404),
        (unknown.as_str(), Some(alice.as_str()), 404),
        (first.as_str(), None, 401),
        (first.as_str(), Some("xetcas1.e30.AAAA"), 401),
    ] {
        let (got, body) = dedup_query(&cas, "default-merkledb", chunk, token).await;
        assert_eq!(
            got,
            status,
            "{chunk} {token:?}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    // alice/m is public: bob's token may dedup against its xorbs, at file a's first chunk
    // (x1's first) and at file b's (inside x1, indexed when the shard was accepted); both
    // files go on in x2, which the answer describes too.
    let x1 = airlock::xet::verify_xorb(X1_HASH.parse().unwrap(), X1).unwrap();
    for i in [0, 1] {
        let (status, body) =
            dedup_query(&cas, "default", &x1.chunks[i].hash.to_api_hex(), Some(&bob)).await;
        assert_eq!(status, 200, "x1 chunk {i}");
        let shard = airlock::xet::parse_dedup_shard(&body).unwrap();
        let mut xorbs: Vec<String> = shard.xorbs.iter().map(|x| x.hash.to_api_hex()).collect();
        xorbs.sort();
        assert_eq!(xorbs, [X1_HASH, X2_HASH], "x1 chunk {i}");
    }
    // A chunk of x1 that neither starts a file nor is 0 mod 1024 is not tracked.
    if !airlock::hf::cas_dedup::is_eligible(&x1.chunks[2].hash) {
        let chunk = x1.chunks[2].hash.to_api_hex();
        assert_eq!(
            dedup_query(&cas, "default", &chunk, Some(&alice)).await.0,
            404
        );
    }
    let repos = store.keys_under("xet/repos/");
    assert!(
        repos
            .iter()
            .any(|k| k.contains(mixed) && k.ends_with("/models/alice--private")),
        "{repos:?}"
    );
    assert!(store.keys_under("xet/dedup/").len() >= 4);
    let log = server.log();
    assert!(log.contains("route=xet.dedup status=200"), "{log}");
}

/// What global dedup is for: stock huggingface_hub 2.4 + hf_xet 1.8, no variable set,
/// uploads revision 1 of a 24 MiB file from one machine; another machine (a fresh
/// HF_HOME, so no local shard cache) uploads revision 2, 1 % of it changed in three
/// places, and sends only xorbs for what changed.
fn a_new_revision_from_a_cold_cache_uploads_only_what_changed(backend: Backend) {
    use support::process::{ok, venv_dir};
    let dir = tempfile::tempdir().unwrap();
    let store = StoreArgs::new(backend, dir.path());
    let server = store.serve(dir.path(), &["--admin-token", ADMIN]);
    let size = 24usize << 20;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    };
    let rev1 = random(size);
    let mut rev2 = rev1.clone();
    let edit = 80 << 10;
    for at in [3usize << 20, 11 << 20, 19 << 20] {
        rev2[at..at + edit].copy_from_slice(&random(edit));
    }
    let changed = rev1.iter().zip(&rev2).filter(|(a, b)| a != b).count();
    let (file1, file2) = (dir.path().join("rev1.bin"), dir.path().join("rev2.bin"));
    std::fs::write(&file1, &rev1).unwrap();
    std::fs::write(&file2, &rev2).unwrap();
    let xorb_bytes = || -> u64 {
        store
            .objects()
            .iter()
            .filter(|(k, _)| k.starts_with("xet/xorbs/") && !k.ends_with(".index"))
            .map(|(_, size)| size)
            .sum()
    };
    let upload = |machine: &str, file: &Path| {
        let mut cmd = support::hf_python_in(
            &venv_dir("AIRLOCK_TEST_VENV"),
            &server.base,
            &dir.path().join(machine),
        );
        cmd.env("HF_TOKEN", ADMIN).env("FILE", file);
        ok(cmd.arg("-c").arg(
            r#"
import os
from huggingface_hub import HfApi, hf_hub_download
api = HfApi()
api.create_repo("team/dedup", exist_ok=True)
path = os.environ["FILE"]
api.upload_file(path_or_fileobj=path, path_in_repo="model.bin", repo_id="team/dedup")
assert open(hf_hub_download("team/dedup", "model.bin"), "rb").read() == open(path, "rb").read()
"#,
        ))
    };
    upload("machine-a", &file1);
    let before = xorb_bytes();
    upload("machine-b", &file2);
    let after = xorb_bytes();
    let sent = after - before;
    println!(
        "dedup: file {size} B, changed {changed} B ({:.2} %); revision 1 stored {before} B of \
         xorbs; revision 2 from a cold cache added {sent} B ({:.2} % of the file)",
        100.0 * changed as f64 / size as f64,
        100.0 * sent as f64 / size as f64
    );
    assert!(
        before as usize >= size,
        "revision 1 was not stored as xorbs: {before}"
    );
    assert!(
        sent as usize * 10 <= size,
        "revision 2 sent {sent} bytes of xorbs for {changed} changed bytes\n{}",
        server.log()
    );
    assert!(server.log().contains("route=xet.dedup status=200"));
}
