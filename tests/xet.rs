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

fn start(backend: Backend, dir: &Path) -> (StoreArgs, Airlock) {
    let config = dir.join("airlock.toml");
    std::fs::write(
        &config,
        format!(
            "[[tokens]]\nname = \"alice\"\nsecret = \"{ALICE}\"\nscopes = [\"write:hf:alice/\"]\n\
             [[tokens]]\nname = \"bob\"\nsecret = \"{BOB}\"\nscopes = [\"write:hf:bob/\"]\n\
             [[tokens]]\nname = \"reader\"\nsecret = \"{READER}\"\nscopes = [\"read:hf:alice/\"]\n"
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

    // Each file is now an ordinary blob, and alice/m (the token's repository) may commit it.
    for (sha, _) in [FILE_A, FILE_B] {
        assert_eq!(store.keys_under(&blob_of(sha)).len(), 1);
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

on_both_stores!(
    async:
    xet_tokens_follow_the_hub_scopes,
    the_cas_keeps_only_what_verifies,
);
