//! huggingface_hub (2.x, 1.x and 0.36, each in its own virtualenv), transformers and
//! datasets against the real server on loopback, on the filesystem store and on S3
//! (Garage). `tests/run-all.sh` sets up the virtualenvs: AIRLOCK_TEST_VENV (newest
//! huggingface_hub with transformers and datasets), AIRLOCK_TEST_VENV_HF1, AIRLOCK_TEST_VENV_HF0,
//! and AIRLOCK_TEST_VENV_HF119 (1.19, the last release negotiating Xet by LFS batch).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::airlock::Airlock;
use support::backend::{Backend, StoreArgs};
use support::process::{ok, venv_dir};

const ADMIN: &str = "admin-token-for-tests-0123";

/// Python from a virtualenv, pointed at Airlock, with a private cache and no token
/// or offline settings leaking in from the environment.
fn python(venv: &Path, server: &Airlock, home: &Path) -> Command {
    support::hf_python_in(venv, &server.base, home)
}

/// Runs `script` with the Python `cmd`, asserting that it succeeds; its output.
fn python_ok(cmd: &mut Command, script: &str) -> String {
    ok(cmd.arg("-c").arg(script))
}

/// A tiny but real model: a BERT config, a fast tokenizer, safetensors weights written by
/// the `safetensors` package, and a file large enough to be stored as LFS.
fn make_model(dir: &Path) -> PathBuf {
    let root = dir.join("tiny-model");
    python_ok(
        Command::new(venv_dir("AIRLOCK_TEST_VENV").join("bin/python")).current_dir(dir),
        r#"
import json, os, numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, models, pre_tokenizers
os.makedirs("tiny-model/nested", exist_ok=True)
vocab = {"[UNK]": 0, "[PAD]": 1, "hello": 2, "world": 3, "air": 4, "lock": 5}
config = {"model_type": "bert", "architectures": ["BertModel"], "vocab_size": len(vocab), "hidden_size": 8,
          "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 16}
json.dump(config, open("tiny-model/config.json", "w"))
tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
tok.save("tiny-model/tokenizer.json")
json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]", "pad_token": "[PAD]"},
          open("tiny-model/tokenizer_config.json", "w"))
save_file({"embeddings.weight": np.ones((len(vocab), 8), dtype=np.float32)}, "tiny-model/model.safetensors")
rng = np.random.default_rng(7)
rng.integers(0, 255, 11 * 1024 * 1024, dtype=np.uint8).tofile("tiny-model/nested/big.bin")
"#,
    );
    root
}

fn setup(backend: Backend, dir: &Path) -> (StoreArgs, Airlock) {
    let store = StoreArgs::new(backend, dir);
    let model = make_model(dir);
    let import = |args: &[&str]| {
        let out = store
            .cli(dir)
            .args(["hf", "import"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    import(&["org/tiny", model.to_str().unwrap()]);
    let csv = dir.join("csv-dataset");
    std::fs::create_dir_all(csv.join("data")).unwrap();
    std::fs::write(
        csv.join("data/train.csv"),
        "text,label\nhello world,1\nair lock,0\nhello air,1\n",
    )
    .unwrap();
    import(&["org/ds", csv.to_str().unwrap(), "--type", "dataset"]);
    let server = store.serve(dir, &["--admin-token", ADMIN]);
    (store, server)
}

/// The download-side checks, written to run unchanged on huggingface_hub 0.36, 1.x and 2.x.
const DOWNLOADS: &str = r#"
import os, sys
from huggingface_hub import HfApi, snapshot_download, hf_hub_download
from huggingface_hub.utils import RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError
api = HfApi()
info = api.model_info("org/tiny")
sha = info.sha
assert len(sha) == 40, sha
path = snapshot_download("org/tiny")
assert sorted(os.listdir(path)) == [".gitattributes", "config.json", "model.safetensors", "nested", "tokenizer.json", "tokenizer_config.json"], os.listdir(path)
assert os.path.getsize(os.path.join(path, "nested/big.bin")) == 11 * 1024 * 1024
# By branch, tag, commit id and PR ref.
for rev in ["main", "v1", sha]:
    f = hf_hub_download("org/tiny", "config.json", revision=rev)
    assert os.path.basename(os.path.dirname(f)) == sha, f
f = hf_hub_download("org/cached", "config.json", revision="refs/pr/1")
assert open(f).read().startswith("{")
files = sorted(e.path for e in api.list_repo_tree("org/tiny", recursive=True))
assert "nested/big.bin" in files and "nested" in files, files
assert api.file_exists("org/tiny", "config.json") and not api.file_exists("org/tiny", "missing.json")
for call, exc in [
    (lambda: api.model_info("org/missing"), RepositoryNotFoundError),
    (lambda: hf_hub_download("org/tiny", "config.json", revision="no-such-branch"), RevisionNotFoundError),
    (lambda: hf_hub_download("org/tiny", "missing.json"), EntryNotFoundError),
]:
    try:
        call()
        raise SystemExit(f"no {exc.__name__}")
    except exc:
        pass
# Ranges: HfFileSystem reads a slice of the LFS file with a Range request.
from huggingface_hub import HfFileSystem
with HfFileSystem().open("org/tiny/nested/big.bin", "rb") as fh:
    fh.seek(1_000_000)
    part = fh.read(100)
whole = open(os.path.join(path, "nested/big.bin"), "rb").read()
assert part == whole[1_000_000:1_000_100]
print("DOWNLOADS-OK", sha)
"#;

/// Upload round trip: create_repo, upload_folder (LFS through signed URLs), snapshot back.
const UPLOADS: &str = r#"
import os, filecmp, sys
from huggingface_hub import HfApi, snapshot_download
src = sys.argv[1]
api = HfApi()
api.create_repo("team/roundtrip", exist_ok=True)
api.create_repo("team/roundtrip", exist_ok=True)
api.upload_folder(folder_path=src, repo_id="team/roundtrip", commit_message="round trip")
api.upload_file(path_or_fileobj=b"new file", path_in_repo="extra.txt", repo_id="team/roundtrip")
api.delete_file("extra.txt", repo_id="team/roundtrip")
back = snapshot_download("team/roundtrip")
for rel in ["config.json", "model.safetensors", "nested/big.bin", "tokenizer.json"]:
    assert filecmp.cmp(os.path.join(src, rel), os.path.join(back, rel), shallow=False), rel
assert not os.path.exists(os.path.join(back, "extra.txt"))
print("UPLOADS-OK")
"#;

/// Makes `org/cached`: a huggingface_hub cache folder (as a connected machine leaves it)
/// with an extra `refs/pr/1`, imported so that its commit ids are kept.
fn import_a_cache(store: &StoreArgs, server: &Airlock, dir: &Path) -> String {
    let home = dir.join("hf-home-cache");
    let out = python_ok(
        &mut python(&venv_dir("AIRLOCK_TEST_VENV"), server, &home),
        r#"
from huggingface_hub import snapshot_download, HfApi
snapshot_download("org/tiny")
print("SHA", HfApi().model_info("org/tiny").sha)
"#,
    );
    let sha = out
        .split("SHA ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let cache = home.join("hub/models--org--tiny");
    std::fs::create_dir_all(cache.join("refs/pr")).unwrap();
    std::fs::write(cache.join("refs/pr/1"), &sha).unwrap();
    let out = store
        .cli(dir)
        .args(["hf", "import", "org/cached"])
        .arg(&cache)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains(&format!("pr/1 -> {sha}")),
        "{stderr}"
    );
    sha
}

fn tag_v1(server: &Airlock) {
    let out = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "POST",
            "-H",
            &format!("authorization: Bearer {ADMIN}"),
            "-H",
            "content-type: application/json",
        ])
        .args([
            "--data",
            r#"{"tag":"v1"}"#,
            &server.url("/api/models/org/tiny/tag/main"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn huggingface_hub_versions(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (store, server) = setup(backend, dir.path());
    tag_v1(&server);
    let sha = import_a_cache(&store, &server, dir.path());
    let model = dir.path().join("tiny-model");
    for (var, name) in [
        ("AIRLOCK_TEST_VENV", "2.x"),
        ("AIRLOCK_TEST_VENV_HF1", "1.x"),
        ("AIRLOCK_TEST_VENV_HF0", "0.36"),
    ] {
        let home = dir.path().join(format!("home-{name}"));
        let out = python_ok(&mut python(&venv_dir(var), &server, &home), DOWNLOADS);
        assert!(
            out.contains(&format!("DOWNLOADS-OK {sha}")),
            "huggingface_hub {name}: {out}"
        );
        // Uploads: 2.x and 1.x (1.20+) go through Xet, as installed, with no variable
        // set; 0.36 uses LFS.
        let mut cmd = python(&venv_dir(var), &server, &home);
        cmd.env("HF_TOKEN", ADMIN);
        let out = cmd.arg("-c").arg(UPLOADS).arg(&model).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("UPLOADS-OK"),
            "huggingface_hub {name}: {text}"
        );
    }
    // The stock client's Xet upload: xorbs and a shard to Airlock's CAS, then the commit;
    // the file is kept as its xorbs only and downloads byte-identical.
    let mut cmd = python(
        &venv_dir("AIRLOCK_TEST_VENV"),
        &server,
        &dir.path().join("home-xet"),
    );
    cmd.env("HF_TOKEN", ADMIN);
    let script = r#"
import hashlib, os
from huggingface_hub import HfApi, hf_hub_download
api = HfApi()
api.create_repo("team/xet", exist_ok=True)
data = os.urandom(11 * 1024 * 1024)
api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id="team/xet")
assert open(hf_hub_download("team/xet", "w.bin"), "rb").read() == data
print("XET-OK", hashlib.sha256(data).hexdigest())
"#;
    let out = python_ok(&mut cmd, script);
    let sha = out
        .split_whitespace()
        .skip_while(|w| *w != "XET-OK")
        .nth(1)
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    let log = server.log();
    assert!(log.contains("route=xet.xorb.upload status=200"), "{log}");
    assert!(log.contains("route=xet.shard status=200"), "{log}");
    assert_eq!(
        store.keys_under(&format!("blobs/sha256/{}/{sha}", &sha[..2])),
        Vec::<String>::new()
    );
    plain_download_and_resume(&server, dir.path(), "team/xet", "w.bin", &sha);
    // 0.36 resumes an interrupted download from its `.incomplete` file with a Range request.
    let home = dir.path().join("home-resume");
    let out = python_ok(
        &mut python(&venv_dir("AIRLOCK_TEST_VENV_HF0"), &server, &home),
        r#"
import os
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.file_download import repo_folder_name
info = HfApi().model_info("org/tiny", files_metadata=True)
big = [s for s in info.siblings if s.rfilename == "nested/big.bin"][0]
blobs = os.path.join(os.environ["HF_HOME"], "hub", repo_folder_name(repo_id="org/tiny", repo_type="model"), "blobs")
os.makedirs(blobs, exist_ok=True)
first = hf_hub_download("org/tiny", "nested/big.bin", cache_dir=os.path.join(os.environ["HF_HOME"], "ref"))
data = open(first, "rb").read()
open(os.path.join(blobs, big.lfs.sha256 + ".incomplete"), "wb").write(data[:5_000_000])
again = hf_hub_download("org/tiny", "nested/big.bin")
assert open(again, "rb").read() == data
print("RESUME-OK")
"#,
    );
    assert!(out.contains("RESUME-OK"));
    assert!(
        server.log().contains("range=\"bytes=5000000-\""),
        "no ranged GET seen for the resume"
    );
    if backend == Backend::S3Redirect {
        assert!(
            server
                .log()
                .lines()
                .any(|l| l.contains("/resolve/") && l.contains("status=307")),
            "{}",
            server.log()
        );
    }
}

/// huggingface_hub 0.36 with `HF_HUB_DISABLE_XET=1` downloads `repo`'s `file` by plain
/// resolve (rebuilt from xorbs when the store holds no blob), whole and then resumed from
/// a partial download with a Range request; both must hash to `sha`.
fn plain_download_and_resume(server: &Airlock, dir: &Path, repo: &str, file: &str, sha: &str) {
    let mut cmd = python(
        &venv_dir("AIRLOCK_TEST_VENV_HF0"),
        server,
        &dir.join("home-plain-resume"),
    );
    let seen = server.log().len();
    cmd.env("HF_HUB_DISABLE_XET", "1")
        .env("REPO", repo)
        .env("FILE", file)
        .env("SHA", sha);
    let out = python_ok(
        &mut cmd,
        r#"
import hashlib, os
from huggingface_hub import hf_hub_download
from huggingface_hub.file_download import repo_folder_name
repo, name, sha = os.environ["REPO"], os.environ["FILE"], os.environ["SHA"]
first = hf_hub_download(repo, name, cache_dir=os.path.join(os.environ["HF_HOME"], "ref"))
data = open(first, "rb").read()
assert hashlib.sha256(data).hexdigest() == sha
blobs = os.path.join(os.environ["HF_HOME"], "hub", repo_folder_name(repo_id=repo, repo_type="model"), "blobs")
os.makedirs(blobs, exist_ok=True)
open(os.path.join(blobs, sha + ".incomplete"), "wb").write(data[:len(data) // 2 + 1])
again = hf_hub_download(repo, name)
assert open(again, "rb").read() == data
print("PLAIN-RESUME-OK")
"#,
    );
    assert!(out.contains("PLAIN-RESUME-OK"), "{out}");
    let log = server.log()[seen..].to_string();
    assert!(
        log.lines().any(|l| l.contains(&format!("/{repo}/resolve/"))
            && l.contains("status=206")
            && l.contains("range=\"bytes=")),
        "no ranged GET of {repo}/{file} seen for the resume\n{log}"
    );
    assert!(
        !log.contains("route=xet."),
        "0.36 without Xet used the CAS\n{log}"
    );
}

/// The three huggingface_hub generations download, resume and upload when the S3 store
/// answers file downloads with redirects to presigned Garage URLs, as huggingface.co does
/// with its CDN.
#[test]
#[ignore = "needs huggingface_hub and Garage: `bash tests/run-all.sh` sets them up"]
fn huggingface_hub_follows_presigned_s3_redirects() {
    huggingface_hub_versions(Backend::S3Redirect);
}

fn transformers_and_datasets(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (_store, server) = setup(backend, dir.path());
    let home = dir.path().join("home");
    let out = python_ok(
        &mut python(&venv_dir("AIRLOCK_TEST_VENV"), &server, &home),
        r#"
from transformers import AutoConfig, AutoTokenizer
config = AutoConfig.from_pretrained("org/tiny")
assert config.model_type == "bert" and config.hidden_size == 8, config
tok = AutoTokenizer.from_pretrained("org/tiny")
assert tok("hello world")["input_ids"] == [2, 3], tok("hello world")
import datasets
ds = datasets.load_dataset("org/ds", split="train")
assert ds.num_rows == 3 and ds[0]["text"] == "hello world", ds
print("TRANSFORMERS-DATASETS-OK")
"#,
    );
    assert!(out.contains("TRANSFORMERS-DATASETS-OK"), "{out}");
    assert!(!server.log().contains("status=5"), "{}", server.log());
}

/// Sum of `airlock_store_operations_total` for reads (get, head, list).
fn store_reads(server: &Airlock) -> u64 {
    let out = Command::new("curl")
        .args(["-sf", &server.url("/metrics")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            l.starts_with("airlock_store_operations_total{op=\"get\"}")
                || l.starts_with("airlock_store_operations_total{op=\"head\"}")
                || l.starts_with("airlock_store_operations_total{op=\"list\"}")
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// `snapshot_download` of 1,000 small files: at most 2 store reads per file with cold
/// caches, none per file once warm.
fn thousand_files_store_reads(backend: Backend) {
    const FILES: u64 = 1000;
    let dir = tempfile::tempdir().unwrap();
    let store = StoreArgs::new(backend, dir.path());
    let folder = dir.path().join("many");
    std::fs::create_dir_all(folder.join("shards")).unwrap();
    for i in 0..FILES {
        std::fs::write(
            folder.join(format!("shards/part-{i:04}.json")),
            format!("{{\"part\": {i}}}"),
        )
        .unwrap();
    }
    let out = store
        .cli(dir.path())
        .args(["hf", "import", "org/many"])
        .arg(&folder)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = store.serve(dir.path(), &[]);
    let home = dir.path().join("home");
    let script = r#"
import os
from huggingface_hub import snapshot_download
p = snapshot_download("org/many", max_workers=8)
assert len(os.listdir(os.path.join(p, "shards"))) == 1000
print("SNAPSHOT-OK")
"#;
    let before = store_reads(&server);
    python_ok(
        &mut python(&venv_dir("AIRLOCK_TEST_VENV"), &server, &home),
        script,
    );
    let cold = store_reads(&server) - before;
    // Two per file, plus a fixed cost for the repo, refs and commit documents that the
    // client's parallel workers may each miss before the first answer is cached.
    assert!(
        cold <= 2 * FILES + 50,
        "{cold} store reads for {FILES} files on a cold cache"
    );
    let before = store_reads(&server);
    python_ok(
        &mut python(&venv_dir("AIRLOCK_TEST_VENV"), &server, &home),
        script,
    );
    let warm = store_reads(&server) - before;
    assert!(
        warm <= 10,
        "{warm} store reads for an unchanged snapshot on a warm cache"
    );
    eprintln!("store reads for {FILES} files: cold {cold}, warm {warm}");
    // More entries than a tree page holds: the client follows the cursors to the end.
    python_ok(
        &mut python(&venv_dir("AIRLOCK_TEST_VENV"), &server, &home),
        r#"
from huggingface_hub import HfApi
api = HfApi()
entries = [e.path for e in api.list_repo_tree("org/many", recursive=True)]
assert len(entries) == len(set(entries)) == 1002, len(entries)
assert sum(p.startswith("shards/") for p in entries) == 1000 and "shards" in entries
shards = [e.path for e in api.list_repo_tree("org/many", path_in_repo="shards")]
assert shards == sorted(shards) and len(shards) == 1000, len(shards)
print("TREE-OK")
"#,
    );
}

/// A token scoped `write:hf:alice/` creates `alice/...` repositories and uploads to them
/// with huggingface_hub (a 403 on create_repo before), and nothing under another name.
fn prefix_scoped_token_creates_and_uploads(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("airlock.toml");
    std::fs::write(
        &config,
        "[[tokens]]\nname = \"alice\"\nsecret = \"alice-token-0123456789\"\nscopes = [\"write:hf:alice/\"]\n",
    )
    .unwrap();
    let server = StoreArgs::new(backend, dir.path()).serve(
        dir.path(),
        &["--config", config.to_str().unwrap(), "--admin-token", ADMIN],
    );
    let mut cmd = python(
        &venv_dir("AIRLOCK_TEST_VENV"),
        &server,
        &dir.path().join("home"),
    );
    cmd.env("HF_TOKEN", "alice-token-0123456789")
        .env("HF_HUB_DISABLE_XET", "1");
    let out = python_ok(
        &mut cmd,
        r#"
import os
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.utils import HfHubHTTPError
api = HfApi()
api.create_repo("alice/model")
api.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id="alice/model")
api.upload_file(path_or_fileobj=os.urandom(11 * 1024 * 1024), path_in_repo="w.bin", repo_id="alice/model")
assert open(hf_hub_download("alice/model", "a.txt"), "rb").read() == b"hello"
try:
    api.create_repo("bob/model")
    raise SystemExit("created bob/model")
except HfHubHTTPError as e:
    assert e.response.status_code == 403, e
print("SCOPED-OK")
"#,
    );
    assert!(out.contains("SCOPED-OK"), "{out}");
}

/// huggingface_hub uploads a file whose content a private repo of another owner already
/// holds: the server asks for the bytes (knowing a digest is not enough), verifies them
/// without storing them twice, links them to the new repo, and the file reads back.
fn upload_of_content_stored_elsewhere(backend: Backend) {
    const ALICE: &str = "alice-token-0123456789abc";
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("airlock.toml");
    std::fs::write(
        &config,
        format!(
            "[[tokens]]\nname = \"alice\"\nsecret = \"{ALICE}\"\nscopes = [\"write:hf:alice/\"]\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let store = StoreArgs::new(backend, dir.path());
    let folder = dir.path().join("secret");
    std::fs::create_dir_all(&folder).unwrap();
    let weights: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(folder.join("weights.bin"), &weights).unwrap();
    support::process::output_ok(
        store
            .cli(dir.path())
            .args(["--config", config, "hf", "import", "victim/secret"])
            .arg(&folder)
            .arg("--private")
            .output()
            .unwrap(),
        "hf import",
    );
    let server = store.serve(dir.path(), &["--config", config, "--admin-token", ADMIN]);
    let mut cmd = python(
        &venv_dir("AIRLOCK_TEST_VENV"),
        &server,
        &dir.path().join("home"),
    );
    cmd.env("HF_HUB_DISABLE_XET", "1")
        .env("ADMIN", ADMIN)
        .env("ALICE", ALICE);
    let out = cmd
        .arg("-c")
        .arg(
            r#"
import os, sys
from huggingface_hub import HfApi, hf_hub_download
HfApi(token=os.environ["ADMIN"]).create_repo("alice/mine")
alice = HfApi(token=os.environ["ALICE"])
alice.upload_file(path_or_fileobj=sys.argv[1], path_in_repo="weights.bin", repo_id="alice/mine")
got = hf_hub_download("alice/mine", "weights.bin", token=os.environ["ALICE"])
assert open(got, "rb").read() == open(sys.argv[1], "rb").read()
print("UPLOAD-OK")
"#,
        )
        .arg(folder.join("weights.bin"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("UPLOAD-OK"), "{text}");
    // The client was asked for the bytes and sent them.
    server.wait_for_log("/api/lfs-upload/");
}

on_both_stores!(
    sync,
    ignore_fs = "needs huggingface_hub, transformers and datasets: `bash tests/run-all.sh` sets them up",
    ignore_s3 = "needs huggingface_hub, transformers, datasets and Garage: `bash tests/run-all.sh` sets them up":
    huggingface_hub_versions,
    transformers_and_datasets,
    thousand_files_store_reads,
    prefix_scoped_token_creates_and_uploads,
    upload_of_content_stored_elsewhere,
    xet_downloads,
    xet_revision_dedup
);

/// Downloads through Xet: stock huggingface_hub 2.x, 1.x and 0.36 (each with hf_xet) fetch
/// a file uploaded through Xet by reconstruction and signed xorb URLs (v2 and, forced, v1;
/// single ranges and, when asked, multi-range requests), byte-identical. With
/// `HF_HUB_DISABLE_XET=1` they use plain resolve; a file uploaded by LFS is never offered
/// Xet.
fn xet_downloads(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = StoreArgs::new(backend, dir.path()).serve(dir.path(), &["--admin-token", ADMIN]);
    // w2.bin shares its first and last parts with w.bin: uploaded after it, it is made of
    // two disjoint ranges of w.bin's xorb around new data, which a reconstruction asks
    // for as one multi-range fetch.
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut part = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    };
    let (a, b, c, d, e) = (
        part(2 << 20),
        part(2 << 20),
        part(2 << 20),
        part(2 << 20),
        part(3 << 20),
    );
    std::fs::write(files.join("w.bin"), [&a[..], &b, &c].concat()).unwrap();
    std::fs::write(files.join("w2.bin"), [&a[..], &d, &c].concat()).unwrap();
    std::fs::write(files.join("lfs.bin"), &e).unwrap();
    let upload = |xet: bool, name: &str| {
        let mut cmd = python(
            &venv_dir("AIRLOCK_TEST_VENV"),
            &server,
            &dir.path().join("home-up"),
        );
        cmd.env("HF_TOKEN", ADMIN).env("FILE", files.join(name));
        if !xet {
            cmd.env("HF_HUB_DISABLE_XET", "1");
        }
        python_ok(
            &mut cmd,
            r#"
import os
from huggingface_hub import HfApi
api = HfApi()
api.create_repo("team/xet", exist_ok=True)
path = os.environ["FILE"]
api.upload_file(path_or_fileobj=path, path_in_repo=os.path.basename(path), repo_id="team/xet")
"#,
        );
    };
    upload(true, "w.bin");
    upload(true, "w2.bin");
    upload(false, "lfs.bin");
    let count = |route: &str, status: &str| {
        let log = server.log();
        log.lines()
            .filter(|l| l.contains(route) && l.contains(status))
            .count()
    };
    let reconstructions = || count("route=xet.reconstruction", "status=200");
    let fetches = || count("route=xet.fetch", "status=206");
    // Each run downloads both files into a fresh cache and says whether Xet was offered.
    let download = |var: &str, home: &str, env: &[(&str, &str)]| {
        let mut cmd = python(&venv_dir(var), &server, &dir.path().join(home));
        cmd.env("HF_TOKEN", ADMIN).env("FILES", &files);
        for (k, v) in env {
            cmd.env(k, v);
        }
        python_ok(
            &mut cmd,
            r#"
import os
from huggingface_hub import hf_hub_download, get_hf_file_metadata, hf_hub_url
for name in ["w.bin", "w2.bin", "lfs.bin"]:
    want = open(os.path.join(os.environ["FILES"], name), "rb").read()
    assert open(hf_hub_download("team/xet", name), "rb").read() == want, name
for name in ["w.bin", "w2.bin", "lfs.bin"]:
    meta = get_hf_file_metadata(hf_hub_url("team/xet", name))
    print("XET-OFFERED", name, getattr(meta, "xet_file_data", None) is not None)
"#,
        )
    };
    for (var, name, env) in [
        ("AIRLOCK_TEST_VENV", "2.x", vec![]),
        ("AIRLOCK_TEST_VENV_HF1", "1.x", vec![]),
        // 0.36 downloads through Xet too when hf_xet is installed.
        ("AIRLOCK_TEST_VENV_HF0", "0.36", vec![]),
        (
            "AIRLOCK_TEST_VENV",
            "2.x-v1",
            vec![("HF_XET_CLIENT_RECONSTRUCTION_API_VERSION", "1")],
        ),
        (
            "AIRLOCK_TEST_VENV",
            "2.x-multirange",
            vec![("HF_XET_CLIENT_ENABLE_MULTIRANGE_FETCHING", "true")],
        ),
    ] {
        let (r, f) = (reconstructions(), fetches());
        let out = download(var, &format!("home-{name}"), &env);
        assert!(out.contains("XET-OFFERED w.bin True"), "{name}: {out}");
        assert!(out.contains("XET-OFFERED w2.bin True"), "{name}: {out}");
        assert!(out.contains("XET-OFFERED lfs.bin False"), "{name}: {out}");
        assert!(
            reconstructions() > r,
            "{name}: no reconstruction\n{}",
            server.log()
        );
        assert!(fetches() > f, "{name}: no xorb fetch\n{}", server.log());
    }
    assert!(
        server.log().contains("/v1/reconstructions/"),
        "{}",
        server.log()
    );
    let multi = server
        .log()
        .lines()
        .filter(|l| l.contains("route=xet.fetch") && l.contains("status=206"))
        .any(|l| {
            l.contains("range=\"bytes=")
                && l.split("range=")
                    .nth(1)
                    .is_some_and(|r| r.split(' ').next().unwrap_or("").contains(','))
        });
    assert!(multi, "no multi-range fetch\n{}", server.log());
    assert!(
        server.log().contains("/v2/reconstructions/"),
        "{}",
        server.log()
    );
    // Plain HTTP for everyone else: no reconstruction asked for.
    for (var, name, env) in [
        (
            "AIRLOCK_TEST_VENV_HF0",
            "0.36-disabled",
            vec![("HF_HUB_DISABLE_XET", "1")],
        ),
        (
            "AIRLOCK_TEST_VENV",
            "2.x-disabled",
            vec![("HF_HUB_DISABLE_XET", "1")],
        ),
    ] {
        let r = reconstructions();
        download(var, &format!("home-{name}"), &env);
        assert_eq!(reconstructions(), r, "{name} used Xet\n{}", server.log());
    }
}

/// The sum of the sizes of every object in the store, looked at directly.
fn stored_bytes(store: &StoreArgs) -> u64 {
    store.objects().iter().map(|(_, size)| size).sum()
}

/// SHA-256 of a file on disk, read in pieces.
fn file_sha256(path: &Path) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut std::fs::File::open(path).unwrap(), &mut hasher).unwrap();
    hex::encode(hasher.finalize())
}

/// curl downloads `url` to `out` by plain resolve; `-C -` resumes from what `out` holds.
fn curl_download(url: &str, out: &Path, resume: bool) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sSf", "-o"]).arg(out);
    if resume {
        cmd.args(["-C", "-"]);
    }
    ok(cmd.arg(url));
}

/// Chunk-level dedup, measured (#14): the stock client (huggingface_hub 2.4 + hf_xet, no
/// variable) uploads a 200 MiB safetensors file, then a revision of it with 1 % of its
/// bytes changed in four places; the store grows by at most 5 % of the file. Both
/// revisions, stored as xorbs only, download byte-identical by plain resolve (curl,
/// whole and resumed). A config.json the repository's .gitattributes sends through Xet
/// is still read for the model's listing.
fn xet_revision_dedup(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreArgs::new(backend, dir.path());
    let server = store.serve(dir.path(), &["--admin-token", ADMIN]);
    let upload = |stage: &str| -> (String, String, u64) {
        let mut cmd = python(
            &venv_dir("AIRLOCK_TEST_VENV"),
            &server,
            &dir.path().join("home-xet"),
        );
        cmd.env("HF_TOKEN", ADMIN)
            .env("WORK", dir.path())
            .env("STAGE", stage);
        let out = python_ok(
            &mut cmd,
            r#"
import hashlib, json, os
import numpy as np
from safetensors.numpy import save_file
from huggingface_hub import HfApi
work, stage = os.environ["WORK"], os.environ["STAGE"]
api = HfApi()
path = os.path.join(work, stage + ".safetensors")
if stage == "rev1":
    api.create_repo("team/big", exist_ok=True)
    # JSON goes through LFS here, so config.json is uploaded through Xet too.
    api.upload_file(path_or_fileobj=b"*.json filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
                    path_in_repo=".gitattributes", repo_id="team/big")
    api.upload_file(path_or_fileobj=json.dumps({"model_type": "bert", "architectures": ["BertModel"]}).encode(),
                    path_in_repo="config.json", repo_id="team/big")
    rng = np.random.default_rng(14)
    save_file({f"layer{i}.weight": rng.standard_normal((1024, 12800), dtype=np.float32) for i in range(4)}, path)
else:
    data = bytearray(open(os.path.join(work, "rev1.safetensors"), "rb").read())
    rng = np.random.default_rng(15)
    span = len(data) // 400
    for where in (0.1, 0.35, 0.6, 0.85):
        at = int(len(data) * where)
        data[at:at + span] = rng.integers(0, 256, span, dtype=np.uint8).tobytes()
    open(path, "wb").write(data)
info = api.upload_file(path_or_fileobj=path, path_in_repo="model.safetensors", repo_id="team/big", commit_message=stage)
print("REV", info.oid, hashlib.sha256(open(path, "rb").read()).hexdigest(), os.path.getsize(path))
"#,
        );
        let mut words = out.split_whitespace().skip_while(|w| *w != "REV").skip(1);
        let mut next = || words.next().unwrap_or_else(|| panic!("{out}")).to_string();
        (next(), next(), next().parse().unwrap())
    };
    let (commit1, sha1, size) = upload("rev1");
    assert!(size > 200 << 20, "{size}");
    let after_rev1 = stored_bytes(&store);
    let (commit2, sha2, size2) = upload("rev2");
    let growth = stored_bytes(&store) - after_rev1;
    println!(
        "xet dedup ({backend:?}): file {size} bytes; store after revision 1: {after_rev1} bytes; \
         growth after revision 2 (1 % changed): {growth} bytes = {:.2} % of the file",
        growth as f64 * 100.0 / size as f64
    );
    assert_eq!(size2, size);
    assert!(
        growth * 20 <= size,
        "the store grew by {growth} bytes for a {size}-byte file"
    );
    let log = server.log();
    assert!(log.contains("route=xet.shard status=200"), "{log}");
    assert_eq!(
        store
            .keys_under("blobs/sha256/")
            .iter()
            .filter(|k| k.contains(&sha1) || k.contains(&sha2))
            .count(),
        0
    );

    for (rev, sha, name) in [(&commit1, &sha1, "rev1"), (&commit2, &sha2, "rev2")] {
        let url = server.url(&format!("/team/big/resolve/{rev}/model.safetensors"));
        let out = dir.path().join(format!("{name}.download"));
        curl_download(&url, &out, false);
        assert_eq!(&file_sha256(&out), sha, "{name}");
        // Resumed: curl asks for the rest with a Range request.
        let partial = std::fs::File::options().write(true).open(&out).unwrap();
        partial.set_len(size * 2 / 5).unwrap();
        curl_download(&url, &out, true);
        assert_eq!(&file_sha256(&out), sha, "{name} resumed");
        std::fs::remove_file(&out).unwrap();
    }
    let info: serde_json::Value = serde_json::from_str(&ok(
        Command::new("curl").args(["-sf", &server.url("/api/models/team/big")])
    ))
    .unwrap();
    assert_eq!(
        info["config"],
        serde_json::json!({"architectures": ["BertModel"], "model_type": "bert"}),
        "{info}"
    );
}

/// Access-log lines of `route` answered with `status` (`route=xet.shard`, `status=200`).
fn log_count(server: &Airlock, route: &str, status: &str) -> usize {
    server
        .log()
        .lines()
        .filter(|l| l.contains(route) && l.contains(status))
        .count()
}

fn reconstructions(server: &Airlock) -> usize {
    log_count(server, "route=xet.reconstruction", "status=200")
}

/// A client of the virtualenv `var` with the admin token, with a home of its own.
fn hf_client(var: &str, server: &Airlock, dir: &Path, home: &str) -> Command {
    let mut cmd = python(&venv_dir(var), server, &dir.join(home));
    cmd.env("HF_TOKEN", ADMIN);
    cmd
}

/// The test model of [`make_model`] with weights of a few MiB (a padded vocabulary, as
/// real checkpoints have), so that they are big enough for Xet to chunk into many pieces.
fn make_xet_model(dir: &Path) -> PathBuf {
    let root = make_model(dir);
    python_ok(
        Command::new(venv_dir("AIRLOCK_TEST_VENV").join("bin/python")).current_dir(&root),
        r#"
import json, numpy as np
from safetensors.numpy import save_file
config = json.load(open("config.json"))
config["vocab_size"] = 131072
json.dump(config, open("config.json", "w"))
rng = np.random.default_rng(11)
save_file({"embeddings.word_embeddings.weight": rng.standard_normal((131072, 8), dtype=np.float32)}, "model.safetensors")
"#,
    );
    root
}

/// Python that every huggingface_hub generation runs: `same_tree(local, snapshot)`
/// asserts that a downloaded snapshot holds exactly the local files (plus the
/// `.gitattributes` the server wrote), byte for byte.
const SAME_TREE: &str = r#"
import filecmp, os
def same_tree(local, snap):
    def files(root):
        return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
    want = files(local)
    assert files(snap) == sorted(want + [".gitattributes"]), (files(snap), want)
    for rel in want:
        assert filecmp.cmp(os.path.join(local, rel), os.path.join(snap, rel), shallow=False), rel
    return len(want)
"#;

/// The stock client (huggingface_hub 2.x with hf_xet, no variable set) fills
/// `team/model-xet` in every way it uploads, each through Xet: upload_folder of the
/// model, upload_file, create_commit of 100 files, and the `hf upload` CLI. The local
/// folder is left holding exactly what the repository holds.
fn upload_every_way(server: &Airlock, dir: &Path, model: &Path) {
    let mut cmd = hf_client("AIRLOCK_TEST_VENV", server, dir, "home-upload");
    cmd.env("MODEL", model);
    python_ok(
        &mut cmd,
        r#"
import os
from huggingface_hub import HfApi, CommitOperationAdd
root = os.environ["MODEL"]
api = HfApi()
api.create_repo("team/model-xet")
api.upload_folder(folder_path=root, repo_id="team/model-xet", commit_message="the model")
os.makedirs(os.path.join(root, "extra"))
extra = os.path.join(root, "extra", "added.bin")
open(extra, "wb").write(os.urandom(3 << 20))
api.upload_file(path_or_fileobj=extra, path_in_repo="extra/added.bin", repo_id="team/model-xet")
os.makedirs(os.path.join(root, "many"))
ops = []
for i in range(100):
    path = os.path.join(root, "many", f"part-{i:03}.bin")
    open(path, "wb").write(os.urandom(4096 + i))
    ops.append(CommitOperationAdd(path_in_repo=f"many/part-{i:03}.bin", path_or_fileobj=path))
api.create_commit("team/model-xet", operations=ops, commit_message="100 files")
os.makedirs(os.path.join(root, "cli"))
open(os.path.join(root, "cli", "weights.bin"), "wb").write(os.urandom(2 << 20))
open(os.path.join(root, "cli", "notes.txt"), "w").write("uploaded by the hf CLI\n")
"#,
    );
    // The CLI with the environment the Python clients get.
    let env = hf_client("AIRLOCK_TEST_VENV", server, dir, "home-upload");
    let mut cli = Command::new(venv_dir("AIRLOCK_TEST_VENV").join("bin/hf"));
    for (k, v) in env.get_envs() {
        match v {
            Some(v) => cli.env(k, v),
            None => cli.env_remove(k),
        };
    }
    ok(cli
        .args(["upload", "team/model-xet"])
        .arg(model.join("cli"))
        .arg("cli"));
}

/// A huggingface_hub 1.x from before 1.20 negotiates through the LFS batch API (it
/// offers `basic`, `multipart` and `xet`), one from after goes straight to Xet: each
/// uploads a file to `team/model-xet` through Xet and reads it back.
fn older_1x_clients_upload(server: &Airlock, dir: &Path, model: &Path) {
    std::fs::create_dir_all(model.join("by")).unwrap();
    for (var, name) in [
        ("AIRLOCK_TEST_VENV_HF119", "1.19"),
        ("AIRLOCK_TEST_VENV_HF1", "1.x"),
    ] {
        let (shards, batches) = (
            log_count(server, "route=xet.shard", "status=200"),
            log_count(server, "route=hf.lfs_batch", "status=200"),
        );
        let mut cmd = hf_client(var, server, dir, &format!("home-up-{name}"));
        cmd.env("FILE", model.join(format!("by/hf-{name}.bin")));
        let out = python_ok(
            &mut cmd,
            r#"
import os
import huggingface_hub
from huggingface_hub import HfApi, hf_hub_download
path = os.environ["FILE"]
open(path, "wb").write(os.urandom(3 << 20))
name = "by/" + os.path.basename(path)
HfApi().upload_file(path_or_fileobj=path, path_in_repo=name, repo_id="team/model-xet")
assert open(hf_hub_download("team/model-xet", name), "rb").read() == open(path, "rb").read()
print("UPLOADED-BY", huggingface_hub.__version__)
"#,
        );
        assert!(out.contains("UPLOADED-BY 1."), "{name}: {out}");
        assert!(
            log_count(server, "route=xet.shard", "status=200") > shards,
            "huggingface_hub {name} did not upload through Xet:\n{}",
            server.log()
        );
        let negotiated = log_count(server, "route=hf.lfs_batch", "status=200") > batches;
        assert_eq!(negotiated, name == "1.19", "{name}:\n{}", server.log());
    }
}

/// Every upload above went through Xet: no LFS PUT at all.
fn nothing_uploaded_by_lfs(server: &Airlock) {
    assert_eq!(
        log_count(server, "route=hf.lfs_upload", "status="),
        0,
        "{}",
        server.log()
    );
    assert!(log_count(server, "route=xet.shard", "status=200") >= 4);
}

/// The stock client downloads the repository through Xet (snapshot_download and
/// hf_hub_download, byte-identical), and transformers and safetensors load the model.
fn stock_client_downloads_through_xet(server: &Airlock, dir: &Path, model: &Path) {
    let before = reconstructions(server);
    let mut cmd = hf_client("AIRLOCK_TEST_VENV", server, dir, "home-xet-down");
    cmd.env("MODEL", model);
    let out = python_ok(
        &mut cmd,
        &format!(
            "{SAME_TREE}{}",
            r#"
import numpy as np
from huggingface_hub import snapshot_download, hf_hub_download, get_hf_file_metadata, hf_hub_url
root = os.environ["MODEL"]
print("FILES", same_tree(root, snapshot_download("team/model-xet")))
fresh = os.path.join(os.environ["HF_HOME"], "fresh")
big = hf_hub_download("team/model-xet", "nested/big.bin", cache_dir=fresh)
assert filecmp.cmp(big, os.path.join(root, "nested/big.bin"), shallow=False)
for name in ["model.safetensors", "nested/big.bin", "many/part-000.bin", "cli/weights.bin", "by/hf-1.19.bin"]:
    assert get_hf_file_metadata(hf_hub_url("team/model-xet", name)).xet_file_data is not None, name
from transformers import AutoConfig, AutoTokenizer
config = AutoConfig.from_pretrained("team/model-xet")
assert config.model_type == "bert" and config.vocab_size == 131072, config
tok = AutoTokenizer.from_pretrained("team/model-xet")
assert tok("hello world")["input_ids"] == [2, 3], tok("hello world")
from safetensors import safe_open
weights = hf_hub_download("team/model-xet", "model.safetensors")
with safe_open(weights, "np") as got, safe_open(os.path.join(root, "model.safetensors"), "np") as want:
    assert list(got.keys()) == list(want.keys())
    for k in want.keys():
        assert np.array_equal(got.get_tensor(k), want.get_tensor(k)), k
print("XET-DOWNLOADS-OK")
"#
        ),
    );
    assert!(out.contains("XET-DOWNLOADS-OK"), "{out}");
    // A reconstruction at least for each file stored through Xet (all but the config,
    // the two tokenizer files and the notes): the snapshot did not fall back to plain
    // resolve.
    let xet_files = out
        .split("FILES ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("{out}"))
        - 4;
    assert!(
        reconstructions(server) - before >= xet_files,
        "{} reconstructions for {xet_files} Xet files:\n{}",
        reconstructions(server) - before,
        server.log()
    );
}

/// The same repository, downloaded by the clients that do not use Xet (huggingface_hub
/// 0.36 and 1.x with `HF_HUB_DISABLE_XET=1`) and by 0.36 as installed (with hf_xet, so
/// through Xet): byte-identical. 0.36 resumes an interrupted plain download of a file
/// uploaded through Xet with a ranged GET.
fn other_python_clients_download(server: &Airlock, dir: &Path, model: &Path) {
    for (var, name, xet) in [
        ("AIRLOCK_TEST_VENV_HF0", "0.36", true),
        ("AIRLOCK_TEST_VENV_HF0", "0.36-plain", false),
        ("AIRLOCK_TEST_VENV_HF1", "1.x-plain", false),
    ] {
        let before = reconstructions(server);
        let mut cmd = hf_client(var, server, dir, &format!("home-{name}"));
        cmd.env("MODEL", model);
        if !xet {
            cmd.env("HF_HUB_DISABLE_XET", "1");
        }
        let script = format!(
            "{SAME_TREE}{}",
            r#"
from huggingface_hub import snapshot_download
same_tree(os.environ["MODEL"], snapshot_download("team/model-xet"))
print("SNAPSHOT-OK")
"#
        );
        assert!(python_ok(&mut cmd, &script).contains("SNAPSHOT-OK"));
        assert_eq!(
            reconstructions(server) > before,
            xet,
            "{name}:\n{}",
            server.log()
        );
    }
    // hf_xet itself does not resume: huggingface_hub 2.x downloads into a temporary
    // file of its own, removed on failure, and 0.36 hands hf_xet its `.incomplete`
    // file to overwrite. The plain path resumes, from the partial file's length.
    let mut cmd = hf_client("AIRLOCK_TEST_VENV_HF0", server, dir, "home-resume");
    cmd.env("MODEL", model).env("HF_HUB_DISABLE_XET", "1");
    let out = python_ok(
        &mut cmd,
        r#"
import os
from huggingface_hub import hf_hub_download, get_hf_file_metadata, hf_hub_url
from huggingface_hub.file_download import repo_folder_name
etag = get_hf_file_metadata(hf_hub_url("team/model-xet", "nested/big.bin")).etag
blobs = os.path.join(os.environ["HF_HOME"], "hub", repo_folder_name(repo_id="team/model-xet", repo_type="model"), "blobs")
os.makedirs(blobs)
data = open(os.path.join(os.environ["MODEL"], "nested/big.bin"), "rb").read()
open(os.path.join(blobs, etag + ".incomplete"), "wb").write(data[:4_000_000])
assert open(hf_hub_download("team/model-xet", "nested/big.bin"), "rb").read() == data
print("RESUME-OK")
"#,
    );
    assert!(out.contains("RESUME-OK"), "{out}");
    assert!(
        server
            .log()
            .lines()
            .any(|l| l.contains("range=\"bytes=4000000-\"")
                && (l.contains("status=206") || l.contains("status=307"))),
        "no ranged GET for the resume:\n{}",
        server.log()
    );
}

/// The Rust `hf-hub` crate (a `Range: bytes=0-0` probe, then parallel ranges) reads
/// the files uploaded through Xet byte-identical.
fn hf_hub_crate_downloads(server: &Airlock, dir: &Path, model: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let api = hf_hub::api::tokio::ApiBuilder::new()
            .with_endpoint(server.base.clone())
            .with_cache_dir(dir.join("hf-hub-crate"))
            .with_token(Some(ADMIN.to_string()))
            .with_progress(false)
            .build()
            .unwrap();
        let repo = api.model("team/model-xet".to_string());
        for name in [
            "model.safetensors",
            "nested/big.bin",
            "extra/added.bin",
            "many/part-042.bin",
            "cli/weights.bin",
            "by/hf-1.19.bin",
        ] {
            let got = repo
                .get(name)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                std::fs::read(got).unwrap() == std::fs::read(model.join(name)).unwrap(),
                "{name} differs"
            );
        }
    });
}

/// A dataset repository whose parquet file (written by pyarrow) is uploaded through Xet
/// by the stock client, then loaded by `datasets.load_dataset`, through Xet.
fn dataset_through_xet(server: &Airlock, dir: &Path) {
    let (shards, before) = (
        log_count(server, "route=xet.shard", "status=200"),
        reconstructions(server),
    );
    let mut cmd = hf_client("AIRLOCK_TEST_VENV", server, dir, "home-dataset");
    cmd.env("DATA", dir.join("train.parquet"));
    let out = python_ok(
        &mut cmd,
        r#"
import os
import pyarrow as pa, pyarrow.parquet as pq
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url
rows = 50_000
pq.write_table(pa.table({"text": [f"row {i}" for i in range(rows)], "label": [i % 3 for i in range(rows)]}), os.environ["DATA"])
api = HfApi()
api.create_repo("team/ds-xet", repo_type="dataset")
api.upload_file(path_or_fileobj=os.environ["DATA"], path_in_repo="data/train.parquet", repo_id="team/ds-xet", repo_type="dataset")
url = hf_hub_url("team/ds-xet", "data/train.parquet", repo_type="dataset")
assert get_hf_file_metadata(url).xet_file_data is not None
import datasets
ds = datasets.load_dataset("team/ds-xet", split="train")
assert ds.num_rows == rows and ds[7]["text"] == "row 7" and ds[7]["label"] == 1, ds
print("DATASET-OK")
"#,
    );
    assert!(out.contains("DATASET-OK"), "{out}");
    assert!(log_count(server, "route=xet.shard", "status=200") > shards);
    assert!(reconstructions(server) > before, "{}", server.log());
}

/// Files uploaded through Xet, by every client that uploads, read back by every client
/// that downloads, on one server: the stock huggingface_hub (2.x with hf_xet, no variable
/// set) uploads a real model every way it can and a parquet dataset; a 1.x from before
/// 1.20 (negotiating through the LFS batch API) and one from after upload too; then the
/// stock client, transformers, safetensors, datasets, 0.36, 1.x without Xet and the
/// `hf-hub` crate read it all byte-identical.
fn xet_uploads_every_client(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = StoreArgs::new(backend, dir.path()).serve(dir.path(), &["--admin-token", ADMIN]);
    let model = make_xet_model(dir.path());
    upload_every_way(&server, dir.path(), &model);
    older_1x_clients_upload(&server, dir.path(), &model);
    nothing_uploaded_by_lfs(&server);
    stock_client_downloads_through_xet(&server, dir.path(), &model);
    other_python_clients_download(&server, dir.path(), &model);
    hf_hub_crate_downloads(&server, dir.path(), &model);
    dataset_through_xet(&server, dir.path());
    assert!(!server.log().contains("status=5"), "{}", server.log());
}

mod xet_clients {
    use super::*;
    on_both_stores!(
        sync,
        ignore_fs = "needs huggingface_hub 2.x, 1.19, 1.x and 0.36, transformers and datasets: `bash tests/run-all.sh` sets them up",
        ignore_s3 = "needs huggingface_hub 2.x, 1.19, 1.x and 0.36, transformers, datasets and Garage: `bash tests/run-all.sh` sets them up":
        xet_uploads_every_client
    );
}
