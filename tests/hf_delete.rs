//! Deletion in the Hub's own terms, driven by huggingface_hub 2.x (`AIRLOCK_TEST_VENV`)
//! against the real server, on the filesystem store and on S3 (Garage): `delete_tag`,
//! `delete_branch`, `super_squash_history` and `delete_repo`, and who may not use them.

mod support;

use std::process::Command;
use support::airlock::Airlock;
use support::backend::{Backend, StoreArgs};
use support::process::venv_dir;
use support::ADMIN;

/// Admin of the model `org/tiny` and the dataset `org/ds`, nothing else.
const OWNER: &str = "owner-token-0123456789";
/// Write on `org/tiny`: uploads, branches, tags, squashes; no deletion of the repository.
const WRITER: &str = "writer-token-0123456789";
/// Admin of another repository: may ask for deletions, not of `org/tiny`.
const STRANGER: &str = "stranger-token-0123456789";
/// Read on `org/tiny`: sees it, changes nothing.
const READER: &str = "reader-token-0123456789";

/// Python preamble: the four callers, and `expect(exception, call)`.
const PRELUDE: &str = r#"
import os, sys, tempfile
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.utils import (HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError,
                                   EntryNotFoundError, BadRequestError)
owner = HfApi(token=os.environ["OWNER"])
writer = HfApi(token=os.environ["WRITER"])
stranger = HfApi(token=os.environ["STRANGER"])
reader = HfApi(token=os.environ["READER"])

def expect(exc, call, status=None):
    try:
        call()
    except exc as e:
        if status is not None:
            assert e.response.status_code == status, (e.response.status_code, e)
        return e
    raise SystemExit(f"expected {exc.__name__}")

def read(path, revision="main", api=writer):
    """The file as the server has it now: an empty cache each time, so nothing is reused."""
    cache = tempfile.mkdtemp()
    return open(hf_hub_download("org/tiny", path, revision=revision, token=api.token, cache_dir=cache), "rb").read()
"#;

struct Hub {
    dir: tempfile::TempDir,
    store: StoreArgs,
    server: Airlock,
}

/// A server with the four tokens, and the private model `org/tiny` made by its owner:
/// a small file, a binary one (uploaded through LFS), and then a second version of the
/// small one, each its own commit, written by the writer.
fn hub(backend: Backend) -> Hub {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("airlock.toml");
    std::fs::write(
        &config,
        format!(
            "[cache]\nmutable_ttl = \"100ms\"\n\
             [[tokens]]\nname = \"owner\"\nsecret = \"{OWNER}\"\nscopes = [\"admin:hf:org/tiny\", \"admin:hf:datasets/org/ds\"]\n\
             [[tokens]]\nname = \"writer\"\nsecret = \"{WRITER}\"\nscopes = [\"write:hf:org/tiny\"]\n\
             [[tokens]]\nname = \"stranger\"\nsecret = \"{STRANGER}\"\nscopes = [\"admin:hf:org/other\"]\n\
             [[tokens]]\nname = \"reader\"\nsecret = \"{READER}\"\nscopes = [\"read:hf:org/tiny\"]\n"
        ),
    )
    .unwrap();
    let store = StoreArgs::new(backend, dir.path());
    let server = store.serve(
        dir.path(),
        &["--config", config.to_str().unwrap(), "--admin-token", ADMIN],
    );
    let hub = Hub { dir, store, server };
    hub.python(
        r#"
owner.create_repo("org/tiny", private=True)
writer.upload_file(path_or_fileobj=b"one", path_in_repo="a.txt", repo_id="org/tiny")
weights = bytes(range(256)) * 4096
writer.upload_file(path_or_fileobj=weights, path_in_repo="w.bin", repo_id="org/tiny")
writer.upload_file(path_or_fileobj=b"two", path_in_repo="a.txt", repo_id="org/tiny")
assert len(writer.list_repo_commits("org/tiny")) == 4
print("SETUP-OK")
"#,
    );
    hub
}

impl Hub {
    /// Runs `script` after [`PRELUDE`]; asserts it succeeds and prints `...-OK`.
    fn python(&self, script: &str) -> String {
        self.run_python(script, false)
    }

    fn run_python(&self, script: &str, xet: bool) -> String {
        let mut cmd: Command = support::hf_python_in(
            &venv_dir("AIRLOCK_TEST_VENV"),
            &self.server.base,
            &self.dir.path().join("home"),
        );
        if !xet {
            cmd.env("HF_HUB_DISABLE_XET", "1");
        }
        let out = cmd
            .env("OWNER", OWNER)
            .env("WRITER", WRITER)
            .env("STRANGER", STRANGER)
            .env("READER", READER)
            .arg("-c")
            .arg(format!("{PRELUDE}\n{script}"))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("-OK"),
            "{text}\n--- server log ---\n{}",
            self.server.log()
        );
        text
    }

    /// As [`Hub::python`], uploading through Xet (hf_xet).
    fn python_xet(&self, script: &str) -> String {
        self.run_python(script, true)
    }

    /// `airlock gc --grace 0s`: its report.
    fn gc(&self) -> serde_json::Value {
        let out = support::process::ok(
            self.store
                .cli(self.dir.path())
                .args(["--config", self.config().to_str().unwrap()])
                .args(["gc", "--json", "--grace", "0s"]),
        );
        let json = out
            .lines()
            .find(|l| l.starts_with("{\"store\""))
            .unwrap_or_default();
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// The server's configuration, which `gc` also reads.
    fn config(&self) -> std::path::PathBuf {
        self.dir.path().join("airlock.toml")
    }

    /// Stops the server and starts another on the same store: nothing cached in memory.
    fn restart(&mut self) {
        let config = self.config();
        self.server = self.store.serve(
            self.dir.path(),
            &["--config", config.to_str().unwrap(), "--admin-token", ADMIN],
        );
    }

    /// The keys of `org/tiny`'s documents in the store.
    fn repo_keys(&self) -> Vec<String> {
        self.store.keys_under("hf/models/org--tiny/")
    }
}

/// `delete_tag` and `delete_branch` remove the ref and nothing else; a missing one is
/// RevisionNotFound, and `main` stays.
fn branches_and_tags_are_deleted(backend: Backend) {
    let hub = hub(backend);
    hub.python(
        r#"
writer.create_branch("org/tiny", branch="dev")
writer.create_tag("org/tiny", tag="v1")
assert read("a.txt", "dev") == b"two" and read("a.txt", "v1") == b"two"
writer.delete_tag("org/tiny", tag="v1")
writer.delete_branch("org/tiny", branch="dev")
refs = writer.list_repo_refs("org/tiny")
assert [b.name for b in refs.branches] == ["main"] and refs.tags == [], refs
for rev in ["dev", "v1"]:
    expect(RevisionNotFoundError, lambda: read("a.txt", rev))
expect(RevisionNotFoundError, lambda: writer.delete_tag("org/tiny", tag="v1"))
expect(RevisionNotFoundError, lambda: writer.delete_branch("org/tiny", branch="dev"))
expect(HfHubHTTPError, lambda: writer.delete_branch("org/tiny", branch="main"), 403)
assert read("a.txt") == b"two" and len(writer.list_repo_commits("org/tiny")) == 4
print("REFS-OK")
"#,
    );
}

/// `super_squash_history` leaves one commit of the same files on the branch (a new
/// 40-hex id, no parents); a tag made before still reads the old history and files.
fn super_squash_keeps_the_files_and_the_tags(backend: Backend) {
    let hub = hub(backend);
    hub.python(
        r#"
writer.create_tag("org/tiny", tag="v1")
writer.upload_file(path_or_fileobj=b"three", path_in_repo="c.txt", repo_id="org/tiny")
files = sorted(writer.list_repo_files("org/tiny"))
before = {f: read(f) for f in files}
old_sha = writer.repo_info("org/tiny").sha
writer.super_squash_history("org/tiny", commit_message="one commit")
commits = writer.list_repo_commits("org/tiny")
assert [c.title for c in commits] == ["one commit"], commits
sha = writer.repo_info("org/tiny").sha
assert sha == commits[0].commit_id and sha != old_sha and len(sha) == 40, (sha, old_sha)
int(sha, 16)
assert sorted(writer.list_repo_files("org/tiny")) == files
assert {f: read(f, sha) for f in files} == before
# The tag keeps the old history: its files, not c.txt, and its commits.
assert read("a.txt", "v1") == b"two" and read("w.bin", "v1") == before["w.bin"]
expect(EntryNotFoundError, lambda: read("c.txt", "v1"))
assert len(writer.list_repo_commits("org/tiny", revision="v1")) == 4
# The old head is still stored, unreachable from main.
assert read("c.txt", old_sha) == b"three"
# Squashing again, with the client's default message, still gives one commit.
writer.super_squash_history("org/tiny")
assert len(writer.list_repo_commits("org/tiny")) == 1
expect(BadRequestError, lambda: writer.super_squash_history("org/tiny", branch="v1"))
expect(RevisionNotFoundError, lambda: writer.super_squash_history("org/tiny", branch="nope"))
print("SQUASH-OK")
"#,
    );
}

/// `delete_repo` by an admin of the repository: every route answers RepoNotFound, a
/// second delete too (unless `missing_ok`), the bytes stay in the store, and the same id
/// can be created again, starting empty. A dataset is deleted by its type.
fn delete_repo_then_create_again(backend: Backend) {
    let hub = hub(backend);
    let blobs_before = hub.store.keys_under("blobs/");
    let out = hub.python(
        r#"
old_sha = owner.repo_info("org/tiny").sha
owner.create_tag("org/tiny", tag="v1")
owner.delete_repo("org/tiny")
for call in [
    lambda: owner.repo_info("org/tiny"),
    lambda: owner.list_repo_files("org/tiny"),
    lambda: owner.list_repo_refs("org/tiny"),
    lambda: read("a.txt", api=owner),
    lambda: owner.create_branch("org/tiny", branch="late"),
    lambda: writer.upload_file(path_or_fileobj=b"late", path_in_repo="late.txt", repo_id="org/tiny"),
    lambda: owner.delete_repo("org/tiny"),
]:
    expect(RepositoryNotFoundError, call)
owner.delete_repo("org/tiny", missing_ok=True)
assert "org/tiny" not in [m.id for m in HfApi(token=os.environ["OWNER"]).list_models()]
owner.create_repo("org/tiny", private=True)
assert owner.list_repo_files("org/tiny") == [".gitattributes"]
assert len(owner.list_repo_commits("org/tiny")) == 1
refs = owner.list_repo_refs("org/tiny")
assert [b.name for b in refs.branches] == ["main"] and refs.tags == [], refs
for rev in [old_sha, "v1"]:
    expect(RevisionNotFoundError, lambda: read("a.txt", rev, api=owner))
owner.create_repo("org/ds", repo_type="dataset")
owner.delete_repo("org/ds", repo_type="dataset")
expect(RepositoryNotFoundError, lambda: owner.repo_info("org/ds", repo_type="dataset"))
print("DELETE-OK")
"#,
    );
    assert!(out.contains("DELETE-OK"), "{out}");
    // Only the new repository's documents: itself, its refs, its one commit.
    let keys = hub.repo_keys();
    let commits = keys.iter().filter(|k| k.contains("/commits/")).count();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(commits, 1, "{keys:?}");
    assert!(hub.store.keys_under("hf/datasets/org--ds/").is_empty());
    // The bytes stay until garbage collection.
    let blobs_after = hub.store.keys_under("blobs/");
    for blob in &blobs_before {
        assert!(blobs_after.contains(blob), "{blob} was removed");
    }
}

/// Who may not delete: a token with write (not admin) on the repository gets 403, a
/// token for another repository gets 404 as if the private repository did not exist,
/// a reader may neither squash nor delete refs, and the repository is still whole
/// afterwards.
fn delete_repo_refusals(backend: Backend) {
    let hub = hub(backend);
    let keys_before = hub.repo_keys();
    hub.python(
        r#"
expect(HfHubHTTPError, lambda: writer.delete_repo("org/tiny"), 403)
expect(RepositoryNotFoundError, lambda: stranger.delete_repo("org/tiny"), 404)
expect(RepositoryNotFoundError, lambda: stranger.delete_repo("org/missing"), 404)
expect(HfHubHTTPError, lambda: writer.super_squash_history("org/other"), 403)
expect(HfHubHTTPError, lambda: stranger.super_squash_history("org/tiny"), 403)
assert reader.repo_info("org/tiny").sha
expect(HfHubHTTPError, lambda: reader.delete_repo("org/tiny"), 403)
expect(HfHubHTTPError, lambda: reader.super_squash_history("org/tiny"), 403)
writer.create_tag("org/tiny", tag="v1")
expect(HfHubHTTPError, lambda: reader.delete_tag("org/tiny", tag="v1"), 403)
expect(HfHubHTTPError, lambda: reader.delete_branch("org/tiny", branch="main"), 403)
assert [t.name for t in owner.list_repo_refs("org/tiny").tags] == ["v1"]
assert read("a.txt", api=owner) == b"two"
assert len(owner.list_repo_commits("org/tiny")) == 4
print("REFUSED-OK")
"#,
    );
    assert_eq!(hub.repo_keys(), keys_before);
}

/// Garbage collection after each kind of deletion frees what only the deleted history
/// named, and nothing a wheel or an image layer also holds (a cross-protocol dedup never
/// becomes a cross-protocol delete): a branch of Xet uploads, a file version squashed
/// away, a whole repository.
fn collection_frees_what_deletions_left(backend: Backend) {
    let hub = hub(backend);
    let dir = hub.dir.path();
    let wheels = dir.join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    let wheel = support::wheels::wheel("gcdemo", "1.0", &[], None);
    let wheel_path = wheel.write_to(&wheels);
    support::process::ok(
        hub.store
            .cli(dir)
            .args(["pypi", "import", wheels.to_str().unwrap()]),
    );
    let weights: Vec<u8> = (0..=255u8).cycle().take(256 * 4096).collect();

    // A branch of files uploaded through Xet, one of them the wheel's bytes; deleted.
    hub.python_xet(&format!(
        r#"
import random
writer.create_branch("org/tiny", branch="dev")
writer.upload_file(path_or_fileobj=random.Random(7).randbytes(300_000), path_in_repo="dev.bin", repo_id="org/tiny", revision="dev")
writer.upload_file(path_or_fileobj={wheel:?}, path_in_repo="shared.bin", repo_id="org/tiny", revision="dev")
writer.delete_branch("org/tiny", branch="dev")
print("DEV-OK")
"#,
        wheel = wheel_path.to_str().unwrap()
    ));
    assert!(!hub.store.keys_under("xet/xorbs/").is_empty());
    let report = hub.gc();
    assert!(
        report["swept"]["xorbs"]["count"].as_u64().unwrap() >= 1,
        "{report}"
    );
    assert_eq!(
        hub.store.keys_under("xet/xorbs/"),
        Vec::<String>::new(),
        "every xorb was the deleted branch's: {report}"
    );
    assert!(hub.store.has_blob(&wheel.bytes), "the wheel stays");

    // Two versions of a file, squashed: the first is in no history any more.
    let v1: Vec<u8> = support::pseudo_random(200_000, 31);
    let v2: Vec<u8> = support::pseudo_random(200_000, 32);
    std::fs::write(dir.join("v1.bin"), &v1).unwrap();
    std::fs::write(dir.join("v2.bin"), &v2).unwrap();
    hub.python(&format!(
        r#"
writer.upload_file(path_or_fileobj={v1:?}, path_in_repo="v.bin", repo_id="org/tiny")
writer.upload_file(path_or_fileobj={v2:?}, path_in_repo="v.bin", repo_id="org/tiny")
writer.super_squash_history("org/tiny")
print("SQUASHED-OK")
"#,
        v1 = dir.join("v1.bin").to_str().unwrap(),
        v2 = dir.join("v2.bin").to_str().unwrap(),
    ));
    assert!(hub.store.has_blob(&v1));
    let report = hub.gc();
    assert!(!hub.store.has_blob(&v1), "{report}");
    assert!(hub.store.has_blob(&v2) && hub.store.has_blob(&weights) && hub.store.has_blob(b"two"));
    assert!(
        !hub.store.has_blob(b"one"),
        "a.txt's first version: {report}"
    );
    hub.python(
        r#"
assert read("v.bin")[:4] and read("a.txt") == b"two" and read("w.bin") == bytes(range(256)) * 4096
print("READ-OK")
"#,
    );

    // The repository deleted, with its weights also an image's layer: only the wheel
    // (and its metadata) and the image remain.
    let http = support::http::client();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(support::push_image(
        &http,
        &hub.server.base,
        ADMIN,
        "team/weights",
        "v1",
        &weights,
    ));
    hub.python(
        r#"
owner.delete_repo("org/tiny")
print("DELETED-OK")
"#,
    );
    let report = hub.gc();
    assert!(
        !hub.store.has_blob(&v2) && !hub.store.has_blob(b"two"),
        "{report}"
    );
    assert!(
        hub.store.has_blob(&weights) && hub.store.has_blob(&wheel.bytes),
        "{report}"
    );
    assert_eq!(
        hub.store.keys_under("blobs/").len(),
        5,
        "wheel, its metadata, the image's layer, config and manifest: {report}"
    );
}

/// A dataset whose file list is too large for one document keeps it in pages, which are
/// blobs (`src/hf/commit_doc.rs`): collection keeps every page a commit names, a new
/// server reads the list back whole, and deleting the repository frees them.
fn a_paged_file_list_survives_collection(backend: Backend) {
    let mut hub = hub(backend);
    let before = hub.store.keys_under("blobs/");
    // 1,500 files in a folder 900 bytes deep: 1.6 MB of file list, in pages.
    hub.python(
        r#"
from huggingface_hub import CommitOperationAdd
owner.create_repo("org/ds", repo_type="dataset")
folder = "/".join(["d" * 179] * 5)
ops = [CommitOperationAdd(path_in_repo=f"{folder}/{i:05}.txt", path_or_fileobj=f"file {i}".encode()) for i in range(1500)]
owner.create_commit("org/ds", ops, commit_message="many", repo_type="dataset")
owner.upload_file(path_or_fileobj=b"one more", path_in_repo="more.txt", repo_id="org/ds", repo_type="dataset")
print("PAGED-OK")
"#,
    );
    let stored = hub.store.keys_under("blobs/");
    // Each file, .gitattributes, and the pages of two commits.
    assert!(stored.len() > before.len() + 1502, "{}", stored.len());
    let report = hub.gc();
    let after = hub.store.keys_under("blobs/");
    let swept = stored.iter().filter(|k| !after.contains(k)).count();
    assert_eq!(swept, 0, "every blob is referenced: {report}");
    hub.restart();
    hub.python(
        r#"
files = owner.list_repo_files("org/ds", repo_type="dataset")
assert len(files) == 1502, len(files)
path = hf_hub_download("org/ds", "/".join(["d" * 179] * 5) + "/01234.txt", repo_type="dataset", token=owner.token, cache_dir=tempfile.mkdtemp())
assert open(path, "rb").read() == b"file 1234"
owner.delete_repo("org/ds", repo_type="dataset")
print("READ-OK")
"#,
    );
    let report = hub.gc();
    let left = hub.store.keys_under("blobs/");
    assert!(
        left == before,
        "{} blobs left, {} before: {report}",
        left.len(),
        before.len()
    );
}

/// `[[gc.hub_retention]]` over ten commits of a file, each tagged: keep-last-3 removes
/// the tags of the seven oldest (not `stable`, which the rule does not govern), and
/// keep-commits-1 cuts every commit no remaining ref names, so only the four file
/// versions the refs name stay. Without the cut, v10's history would keep them all.
fn retention_keeps_the_last_tags_and_commits(backend: Backend) {
    let hub = hub(backend);
    let dir = hub.dir.path();
    let versions: Vec<Vec<u8>> = (1..=10)
        .map(|i| support::pseudo_random(20_000, 100 + 2 * i))
        .collect();
    for (i, bytes) in versions.iter().enumerate() {
        std::fs::write(dir.join(format!("v{}.bin", i + 1)), bytes).unwrap();
    }
    hub.python(&format!(
        r#"
for i in range(1, 11):
    writer.upload_file(path_or_fileobj=f"{dir}/v{{i}}.bin", path_in_repo="v.bin", repo_id="org/tiny")
    writer.create_tag("org/tiny", tag=f"v{{i}}")
    if i == 2:
        writer.create_tag("org/tiny", tag="stable")
print("TAGGED-OK")
"#,
        dir = dir.to_str().unwrap()
    ));
    let mut config = std::fs::read_to_string(hub.config()).unwrap();
    config.push_str(
        "[[gc.hub_retention]]\nrepos = \"models/org/*\"\ntags = \"v*\"\nkeep_last = 3\n\
         [[gc.hub_retention]]\nrepos = \"models/org/tiny\"\nkeep_commits = 1\n",
    );
    std::fs::write(hub.config(), config).unwrap();

    let report = hub.gc();
    let removed: Vec<&str> = report["hub_retention"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(
        removed,
        ["v1", "v2", "v3", "v4", "v5", "v6", "v7"],
        "by commit date, not name (v10 sorts before v8 by name): {report}"
    );
    // 4 commits of the setup, and v1, v3..v7's.
    assert_eq!(
        report["hub_retention"]["commits"]["models/org/tiny"], 10,
        "{report}"
    );
    for (i, bytes) in versions.iter().enumerate() {
        let kept = matches!(i + 1, 2 | 8 | 9 | 10);
        assert_eq!(hub.store.has_blob(bytes), kept, "v{}: {report}", i + 1);
    }
    assert!(!hub.store.has_blob(b"one"), "the setup's first a.txt");
    let v5 = report["hub_retention"]["tags"][4]["commit"]
        .as_str()
        .unwrap();
    // The server sees the refs the command changed once its cached ones expire.
    std::thread::sleep(std::time::Duration::from_millis(300));
    hub.python(&format!(
        r#"
refs = reader.list_repo_refs("org/tiny")
assert sorted(t.name for t in refs.tags) == ["stable", "v10", "v8", "v9"], refs.tags
assert read("v.bin", revision="v8") == open("{dir}/v8.bin", "rb").read()
assert read("v.bin", revision="stable") == open("{dir}/v2.bin", "rb").read()
assert read("v.bin") == open("{dir}/v10.bin", "rb").read() and read("w.bin") == bytes(range(256)) * 4096
expect(RevisionNotFoundError, lambda: read("v.bin", revision="v7"))
expect(RevisionNotFoundError, lambda: read("v.bin", revision="{v5}"))
# History stops where it was cut: main reaches v10, v9 and v8's commits.
main = reader.list_repo_commits("org/tiny")
assert len(main) == 3, main
stable = reader.list_repo_commits("org/tiny", revision="stable")
assert len(stable) == 1, stable
print("KEPT-OK")
"#,
        dir = dir.to_str().unwrap()
    ));
}

on_both_stores!(
    sync,
    ignore_fs = "needs huggingface_hub: `bash tests/run-all.sh` sets it up",
    ignore_s3 = "needs huggingface_hub and Garage: `bash tests/run-all.sh` sets them up":
    branches_and_tags_are_deleted,
    super_squash_keeps_the_files_and_the_tags,
    delete_repo_then_create_again,
    delete_repo_refusals,
    collection_frees_what_deletions_left,
    a_paged_file_list_survives_collection,
    retention_keeps_the_last_tags_and_commits
);
