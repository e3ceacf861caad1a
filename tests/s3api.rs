//! The S3 API (`[s3api] listen`) with the real S3 clients, on the filesystem store and on
//! S3 (Garage): KServe's storage initializer (`kserve-storage`) and boto3 from the
//! virtualenv AIRLOCK_TEST_VENV_S3, Debian's awscli (AIRLOCK_TEST_AWS) and rclone
//! (AIRLOCK_TEST_RCLONE), all set up by `tests/run-all.sh`. The model is uploaded through the Hub API by
//! huggingface_hub (AIRLOCK_TEST_VENV), as a user would, and read back over S3.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::airlock::Airlock;
use support::backend::{Backend, StoreArgs};
use support::process::{ok, venv_dir};
use support::ADMIN;

const READER: &str = "reader-secret-0123456789";
const NO_HF: &str = "nohf-secret-0123456789";

/// `reader` may read `org/tiny` only; `nohf` may read Python packages only.
const TOKENS: &str = r#"
[[tokens]]
name = "reader"
secret = "reader-secret-0123456789"
scopes = ["read:hf:org/tiny"]

[[tokens]]
name = "nohf"
secret = "nohf-secret-0123456789"
scopes = ["read:pypi"]
"#;

/// A running server with its S3 endpoint.
struct S3Server {
    airlock: Airlock,
    /// `http://127.0.0.1:PORT` of the S3 listener.
    endpoint: String,
}

fn serve(store: &StoreArgs, dir: &Path, anonymous_read: bool) -> S3Server {
    let config = dir.join("airlock.toml");
    std::fs::write(&config, TOKENS).unwrap();
    let airlock = store.serve(
        dir,
        &[
            "--config",
            config.to_str().unwrap(),
            "--admin-token",
            ADMIN,
            "--s3api-listen",
            "127.0.0.1:0",
            "--anonymous-read",
            &anonymous_read.to_string(),
        ],
    );
    let endpoint = airlock.s3_endpoint();
    S3Server { airlock, endpoint }
}

/// The files of one revision: path to bytes.
type Tree = BTreeMap<String, Vec<u8>>;

fn write_tree(root: &Path, tree: &Tree) {
    for (path, bytes) in tree {
        let file = root.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, bytes).unwrap();
    }
}

fn read_tree(root: &Path) -> Tree {
    fn walk(root: &Path, dir: &Path, out: &mut Tree) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = Tree::new();
    walk(root, root, &mut out);
    out
}

/// What was uploaded: `org/tiny` at the tag `v1` and at `main`, and the private
/// `org/secret`. `main` holds a 9 MiB file (past the 8 MiB multipart threshold of boto3
/// and awscli) and a key that needs URL encoding in listings.
struct Seeded {
    v1: Tree,
    main: Tree,
}

fn seed(server: &S3Server, dir: &Path) -> Seeded {
    let mut v1 = Tree::new();
    v1.insert("config.json".into(), br#"{"v": 1}"#.to_vec());
    v1.insert("sub/deeper/x.txt".into(), b"deep\n".to_vec());
    v1.insert(
        "weights/model.safetensors".into(),
        support::pseudo_random(9 * 1024 * 1024 + 17, 7),
    );
    let mut v2 = Tree::new();
    v2.insert("config.json".into(), br#"{"v": 2}"#.to_vec());
    v2.insert("sub/a b+c.txt".into(), b"spaced\n".to_vec());
    write_tree(&dir.join("v1"), &v1);
    write_tree(&dir.join("v2"), &v2);
    let mut cmd = support::hf_python(&server.airlock.base, &dir.join("hf-home"));
    cmd.env("HF_TOKEN", ADMIN)
        .env("HF_HUB_DISABLE_XET", "1")
        .arg("-c")
        .arg(
            r#"
import sys
from huggingface_hub import HfApi
api = HfApi()
api.create_repo("org/tiny")
api.upload_folder(folder_path=sys.argv[1], repo_id="org/tiny", commit_message="v1")
api.create_tag("org/tiny", tag="v1")
api.upload_folder(folder_path=sys.argv[2], repo_id="org/tiny", commit_message="v2")
api.create_repo("org/secret", private=True)
api.upload_folder(folder_path=sys.argv[2], repo_id="org/secret")
print("SEEDED")
"#,
        )
        .arg(dir.join("v1"))
        .arg(dir.join("v2"));
    assert!(ok(&mut cmd).contains("SEEDED"));
    // The Hub adds its default .gitattributes when it creates a repository.
    let (status, attributes) = get(&server.airlock.url("/org/tiny/resolve/main/.gitattributes"));
    assert_eq!(status, 200);
    let mut main = v1.clone();
    main.extend(v2);
    main.insert(".gitattributes".into(), attributes.clone());
    v1.insert(".gitattributes".into(), attributes);
    Seeded { v1, main }
}

/// An unsigned GET: the status and the body.
fn get(url: &str) -> (u16, Vec<u8>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let r = support::http::client().get(url).send().await.unwrap();
        (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
    })
}

/// A program with no AWS or Hub settings from the environment (this machine sets
/// AWS_CA_BUNDLE, which rclone refuses for plain HTTP) and a home of its own.
fn client(program: PathBuf, home: &Path) -> Command {
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("HF_") || k.starts_with("RCLONE_") {
            cmd.env_remove(k);
        }
    }
    std::fs::create_dir_all(home).unwrap();
    cmd.env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("PYTHONUNBUFFERED", "1");
    cmd
}

fn s3_venv(tool: &str, home: &Path) -> Command {
    client(
        venv_dir("AIRLOCK_TEST_VENV_S3").join("bin").join(tool),
        home,
    )
}

fn with_key(cmd: &mut Command, key: &str, secret: &str) {
    cmd.env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret);
}

/// KServe's storage initializer: `Storage.download("s3://...")` with the environment
/// the KServe controller gives it.
fn kserve_download(server: &S3Server, uri: &str, out: &Path, key: Option<(&str, &str)>) -> Tree {
    let mut cmd = s3_venv("python", &out.with_extension("home"));
    let authority = server.endpoint.trim_start_matches("http://");
    cmd.env("AWS_ENDPOINT_URL", &server.endpoint)
        .env("S3_ENDPOINT", authority)
        .env("S3_USE_HTTPS", "0");
    match key {
        Some((id, secret)) => with_key(&mut cmd, id, secret),
        None => {
            cmd.env("awsAnonymousCredential", "true");
        }
    }
    std::fs::create_dir_all(out).unwrap();
    cmd.arg("-c")
        .arg("import sys\nfrom kserve_storage import Storage\nprint(Storage.download(sys.argv[1], sys.argv[2]))")
        .arg(uri)
        .arg(out);
    ok(&mut cmd);
    read_tree(out)
}

fn kserve_storage(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreArgs::new(backend, dir.path());
    let server = serve(&store, dir.path(), true);
    let seeded = seed(&server, dir.path());
    let got = kserve_download(
        &server,
        "s3://models/org/tiny/",
        &dir.path().join("out-main"),
        Some(("reader", READER)),
    );
    assert_eq!(got, seeded.main, "main, signed");
    let got = kserve_download(
        &server,
        "s3://models/org/tiny@v1",
        &dir.path().join("out-v1"),
        Some(("admin", ADMIN)),
    );
    assert_eq!(got, seeded.v1, "pinned to the tag v1");
    // Anonymous (KServe's awsAnonymousCredential): the public model, byte-identical.
    let got = kserve_download(
        &server,
        "s3://models/org/tiny/",
        &dir.path().join("out-anonymous"),
        None,
    );
    assert_eq!(got, seeded.main, "main, anonymous");
}

/// boto3: listings (v1 and v2 paginators, delimiter, URL-encoded keys), HEAD, ranged and
/// conditional GET, multipart download_file, presigned URLs, and every refusal.
const BOTO3: &str = r#"
import hashlib, json, os, sys, urllib.request, urllib.error
import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
endpoint, admin, reader, nohf = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
expected = json.loads(sys.argv[5])          # path -> sha256 of main
v1_config = sys.argv[6].encode()
out = sys.argv[7]
def client(key, secret, **kw):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                        region_name="us-east-1", config=Config(retries={"max_attempts": 1}, **kw))
def code(call):
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"]
    raise AssertionError("not refused")
def refused(call, expected, what=""):
    got = code(call)
    assert got == expected, "%s: expected %s, got %s" % (what, expected, got)
s3 = client("reader", reader)
keys = ["org/tiny/" + p for p in sorted(expected)]

pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket="models", Prefix="org/tiny/", PaginationConfig={"PageSize": 2}))
assert len(pages) == (len(keys) + 1) // 2, len(pages)
assert [o["Key"] for p in pages for o in p.get("Contents", [])] == keys, pages
assert all(o["ETag"] == '"%s"' % expected[o["Key"][len("org/tiny/"):]] for p in pages for o in p["Contents"])
for name in ["list_objects_v2", "list_objects"]:
    pages = list(s3.get_paginator(name).paginate(Bucket="models", Prefix="org/tiny/", Delimiter="/", PaginationConfig={"PageSize": 2}))
    prefixes = [c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])]
    contents = [o["Key"] for p in pages for o in p.get("Contents", [])]
    assert prefixes == ["org/tiny/sub/", "org/tiny/weights/"], (name, prefixes)
    assert contents == ["org/tiny/.gitattributes", "org/tiny/config.json"], (name, contents)
    assert len(pages) == 2, (name, len(pages))
top = s3.list_objects_v2(Bucket="models", Delimiter="/")
assert [c["Prefix"] for c in top["CommonPrefixes"]] == ["org/"], top
inside = s3.list_objects_v2(Bucket="models", Prefix="org/", Delimiter="/")
assert [c["Prefix"] for c in inside["CommonPrefixes"]] == ["org/tiny/"], inside   # org/secret is not the reader's
sub = s3.list_objects_v2(Bucket="models", Prefix="org/tiny/sub/a b")
assert [o["Key"] for o in sub["Contents"]] == ["org/tiny/sub/a b+c.txt"], sub
pinned = s3.list_objects_v2(Bucket="models", Prefix="org/tiny@v1/")
assert "org/tiny@v1/config.json" in [o["Key"] for o in pinned["Contents"]], pinned
assert s3.head_bucket(Bucket="models")["ResponseMetadata"]["HTTPStatusCode"] == 200
refused(lambda: s3.head_bucket(Bucket="spaces"), "404")
assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["datasets", "models"]

weights = "org/tiny/weights/model.safetensors"
head = s3.head_object(Bucket="models", Key=weights)
assert head["ContentLength"] == 9 * 1024 * 1024 + 17 and head["ETag"] == '"%s"' % expected["weights/model.safetensors"], head
part = s3.get_object(Bucket="models", Key=weights, Range="bytes=10-19")
assert part["ContentRange"] == "bytes 10-19/%d" % head["ContentLength"], part
s3.download_file("models", weights, out)
assert hashlib.sha256(open(out, "rb").read()).hexdigest() == expected["weights/model.safetensors"]
whole = open(out, "rb").read()
assert part["Body"].read() == whole[10:20]
refused(lambda: s3.get_object(Bucket="models", Key=weights, IfNoneMatch=head["ETag"]), "304")
refused(lambda: s3.get_object(Bucket="models", Key=weights, IfMatch='"0"'), "PreconditionFailed")
refused(lambda: s3.get_object(Bucket="models", Key=weights, IfModifiedSince=head["LastModified"]), "304")
refused(lambda: s3.get_object(Bucket="models", Key=weights, Range="bytes=99999999-"), "InvalidRange")
assert s3.get_object(Bucket="models", Key="org/tiny@v1/config.json")["Body"].read() == v1_config
assert s3.get_object(Bucket="models", Key="org/tiny/sub/a b+c.txt")["Body"].read() == b"spaced\n"
for missing in ["org/tiny@nope/config.json", "org/tiny/nope", "org/tiny/../tiny/config.json", "org/tiny//config.json", "org/tiny"]:
    refused(lambda: s3.get_object(Bucket="models", Key=missing), "NoSuchKey", missing)

# boto3 presigns with SigV2 unless told otherwise: refused, by name.
v2 = s3.generate_presigned_url("get_object", Params={"Bucket": "models", "Key": weights}, ExpiresIn=300)
try:
    urllib.request.urlopen(v2)
    raise AssertionError("SigV2 accepted")
except urllib.error.HTTPError as e:
    assert e.code == 400 and b"AWS4-HMAC-SHA256" in e.read()
v4 = client("reader", reader, signature_version="s3v4")
url = v4.generate_presigned_url("get_object", Params={"Bucket": "models", "Key": weights}, ExpiresIn=300)
assert urllib.request.urlopen(url).read() == whole
try:
    urllib.request.urlopen(url.replace("X-Amz-Signature=", "X-Amz-Signature=0"))
    raise AssertionError("forged signature accepted")
except urllib.error.HTTPError as e:
    assert e.code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in e.read()

refused(lambda: client("reader", "wrong-secret-0123456789").list_objects_v2(Bucket="models"), "SignatureDoesNotMatch")
refused(lambda: client("nobody", reader).list_objects_v2(Bucket="models"), "InvalidAccessKeyId")
refused(lambda: client("nohf", nohf).list_objects_v2(Bucket="models"), "AccessDenied")
refused(lambda: s3.get_object(Bucket="models", Key="org/secret/config.json"), "NoSuchKey")
admin_s3 = client("admin", admin)
assert admin_s3.get_object(Bucket="models", Key="org/secret/config.json")["Body"].read() == b'{"v": 2}'
refused(lambda: s3.put_object(Bucket="models", Key="org/tiny/new.txt", Body=b"x"), "NotImplemented")
refused(lambda: s3.delete_object(Bucket="models", Key="org/tiny/config.json"), "NotImplemented")

anonymous = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=Config(signature_version=UNSIGNED))
assert anonymous.get_object(Bucket="models", Key="org/tiny/config.json")["Body"].read() == b'{"v": 2}'
listed = [o["Key"] for o in anonymous.list_objects_v2(Bucket="models")["Contents"]]
assert listed == keys, listed                                                      # no org/secret
refused(lambda: anonymous.get_object(Bucket="models", Key="org/secret/config.json"), "NoSuchKey")
print("BOTO3-OK")
"#;

fn sha256_json(tree: &Tree) -> String {
    let map: BTreeMap<&str, String> = tree
        .iter()
        .map(|(p, b)| (p.as_str(), support::sha256_hex(b)))
        .collect();
    serde_json::to_string(&map).unwrap()
}

fn boto3(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreArgs::new(backend, dir.path());
    let server = serve(&store, dir.path(), true);
    let seeded = seed(&server, dir.path());
    let mut cmd = s3_venv("python", &dir.path().join("boto-home"));
    cmd.arg("-c")
        .arg(BOTO3)
        .arg(&server.endpoint)
        .args([ADMIN, READER, NO_HF])
        .arg(sha256_json(&seeded.main))
        .arg(String::from_utf8(seeded.v1["config.json"].clone()).unwrap())
        .arg(dir.path().join("weights.bin"));
    let out = ok(&mut cmd);
    assert!(out.contains("BOTO3-OK"), "{out}");
}

/// boto3's `download_file` of a 200 MiB file: its managed transfer (8 MiB ranged parts,
/// ten at a time) against one stored blob, byte-identical.
fn boto3_download_file_200_mib(backend: Backend) {
    const SIZE: usize = 200 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let store = StoreArgs::new(backend, dir.path());
    let model = dir.path().join("big");
    std::fs::create_dir_all(&model).unwrap();
    let weights = support::pseudo_random(SIZE, 11);
    let sha = support::sha256_hex(&weights);
    std::fs::write(model.join("model.safetensors"), &weights).unwrap();
    drop(weights);
    ok(store
        .cli(dir.path())
        .args(["hf", "import", "org/big", model.to_str().unwrap()]));
    let server = serve(&store, dir.path(), true);
    let mut cmd = s3_venv("python", &dir.path().join("boto-home"));
    cmd.arg("-c")
        .arg(
            r#"
import hashlib, sys, boto3
from botocore import UNSIGNED
from botocore.config import Config
from boto3.s3.transfer import TransferConfig
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1", config=Config(signature_version=UNSIGNED))
s3.download_file("models", "org/big/model.safetensors", sys.argv[2], Config=TransferConfig(multipart_chunksize=8 << 20, max_concurrency=10))
h = hashlib.sha256()
with open(sys.argv[2], "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
print("SHA", h.hexdigest())
"#,
        )
        .arg(&server.endpoint)
        .arg(dir.path().join("out.bin"));
    let out = ok(&mut cmd);
    assert!(out.contains(&format!("SHA {sha}")), "{out}");
    assert_eq!(
        std::fs::metadata(dir.path().join("out.bin")).unwrap().len(),
        SIZE as u64
    );
}

/// `aws s3 ls` and `aws s3 cp --recursive` (ListObjectsV2, ranged multipart downloads of
/// the 9 MiB file), then rclone `lsf`, `copy` and `check`: every file compared, none
/// reported as an MD5 mismatch.
fn awscli_and_rclone(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreArgs::new(backend, dir.path());
    let server = serve(&store, dir.path(), true);
    let seeded = seed(&server, dir.path());
    let home = dir.path().join("cli-home");
    let aws = |args: &[&str]| {
        let program = std::env::var_os("AIRLOCK_TEST_AWS")
            .map(PathBuf::from)
            .expect("AIRLOCK_TEST_AWS is not set: run `bash tests/run-all.sh`, which installs Debian's awscli");
        let mut cmd = client(program, &home);
        with_key(&mut cmd, "reader", READER);
        ok(cmd.arg("--endpoint-url").arg(&server.endpoint).args(args))
    };
    let buckets = aws(&["s3", "ls"]);
    assert!(
        buckets.contains(" models") && buckets.contains(" datasets"),
        "{buckets}"
    );
    let listed = aws(&["s3", "ls", "s3://models/org/tiny/"]);
    for line in [
        "PRE sub/",
        "PRE weights/",
        " config.json",
        " .gitattributes",
    ] {
        assert!(listed.contains(line), "{line} missing from:\n{listed}");
    }
    let out = dir.path().join("aws-out");
    aws(&[
        "s3",
        "cp",
        "--recursive",
        "s3://models/org/tiny/",
        out.to_str().unwrap(),
    ]);
    assert_eq!(read_tree(&out), seeded.main);
    // s3transfer fetched the 9 MiB file in 8 MiB ranges.
    server.airlock.wait_for_log("bytes=8388608-");
    // `aws s3 sync`: everything the first time, nothing the second (sizes and dates
    // agree); a pinned revision syncs as that revision.
    let synced = dir.path().join("aws-sync");
    let first = aws(&[
        "s3",
        "sync",
        "s3://models/org/tiny/",
        synced.to_str().unwrap(),
    ]);
    assert_eq!(read_tree(&synced), seeded.main);
    assert_eq!(
        first.matches("download: ").count(),
        seeded.main.len(),
        "{first}"
    );
    let again = aws(&[
        "s3",
        "sync",
        "s3://models/org/tiny/",
        synced.to_str().unwrap(),
    ]);
    assert!(!again.contains("download: "), "{again}");
    let pinned = dir.path().join("aws-sync-v1");
    aws(&[
        "s3",
        "sync",
        "s3://models/org/tiny@v1/",
        pinned.to_str().unwrap(),
    ]);
    assert_eq!(read_tree(&pinned), seeded.v1);

    let rclone = |args: &[&str]| {
        let program = std::env::var_os("AIRLOCK_TEST_RCLONE")
            .map(PathBuf::from)
            .expect(
            "AIRLOCK_TEST_RCLONE is not set: run `bash tests/run-all.sh`, which installs rclone",
        );
        let mut cmd = client(program, &home);
        cmd.env("RCLONE_CONFIG_AL_TYPE", "s3")
            .env("RCLONE_CONFIG_AL_PROVIDER", "Other")
            .env("RCLONE_CONFIG_AL_ENDPOINT", &server.endpoint)
            .env("RCLONE_CONFIG_AL_ACCESS_KEY_ID", "reader")
            .env("RCLONE_CONFIG_AL_SECRET_ACCESS_KEY", READER)
            .env("RCLONE_CONFIG_AL_REGION", "us-east-1")
            .env("RCLONE_CONFIG", dir.path().join("rclone.conf"))
            .args(args);
        ok(&mut cmd)
    };
    let files = rclone(&["lsf", "-R", "--files-only", "al:models/org/tiny"]);
    let mut listed: Vec<&str> = files.lines().filter(|l| !l.contains("NOTICE")).collect();
    listed.sort();
    assert_eq!(
        listed,
        seeded.main.keys().map(String::as_str).collect::<Vec<_>>()
    );
    let copied = dir.path().join("rclone-out");
    rclone(&[
        "copy",
        "--checksum",
        "al:models/org/tiny",
        copied.to_str().unwrap(),
    ]);
    assert_eq!(read_tree(&copied), seeded.main);
    let checked = rclone(&["check", "al:models/org/tiny", copied.to_str().unwrap()]);
    assert!(
        checked.contains("0 differences found") && !checked.contains("ERROR"),
        "{checked}"
    );
    // A 64-hex ETag is no MD5 to rclone: it says so instead of reporting mismatches.
    assert!(checked.contains("hashes could not be checked"), "{checked}");
}

/// With anonymous reads off, an unsigned request is refused before anything is read, and
/// a signed one still reads.
fn anonymous_read_off(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreArgs::new(backend, dir.path());
    let server = serve(&store, dir.path(), true);
    let seeded = seed(&server, dir.path());
    drop(server);
    let server = serve(&store, dir.path(), false);
    for path in ["/models?list-type=2", "/models/org/tiny/config.json", "/"] {
        let (status, body) = get(&format!("{}{path}", server.endpoint));
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.contains("<Code>AccessDenied</Code>"), "{path}: {body}");
    }
    let got = kserve_download(
        &server,
        "s3://models/org/tiny/",
        &dir.path().join("out"),
        Some(("reader", READER)),
    );
    assert_eq!(got, seeded.main);
}

on_both_stores!(sync, ignore_fs = "needs the S3 clients: bash tests/run-all.sh", ignore_s3 = "needs Garage and the S3 clients: bash tests/run-all.sh":
    kserve_storage, boto3, boto3_download_file_200_mib, awscli_and_rclone, anonymous_read_off);

/// Without Python: the AWS SDK for Rust (path-style, signed) and virtual-hosted requests
/// over HTTP/1.1 (`Host`) and HTTP/2 (`:authority`, no `Host` header), on a model
/// imported with `airlock hf import`.
mod sdk {
    use super::*;

    fn rust_sdk_and_virtual_hosts(backend: Backend) {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreArgs::new(backend, dir.path());
        let mut tree = Tree::new();
        tree.insert("config.json".into(), b"{}".to_vec());
        tree.insert("w/big.bin".into(), support::pseudo_random(300_000, 3));
        write_tree(&dir.path().join("model"), &tree);
        ok(store.cli(dir.path()).args([
            "hf",
            "import",
            "org/tiny",
            dir.path().join("model").to_str().unwrap(),
        ]));
        std::fs::write(
            dir.path().join("virtual.toml"),
            "[s3api]\ndomain = \"s3.test\"\n",
        )
        .unwrap();
        let airlock = store.serve(
            dir.path(),
            &[
                "--config",
                dir.path().join("virtual.toml").to_str().unwrap(),
                "--admin-token",
                ADMIN,
                "--s3api-listen",
                "127.0.0.1:0",
            ],
        );
        let addr: std::net::SocketAddr = airlock
            .s3_endpoint()
            .strip_prefix("http://")
            .expect("plain HTTP")
            .parse()
            .unwrap();
        let big = tree["w/big.bin"].clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
            let http = aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https();
            let config = aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .http_client(http)
                .region(Region::new("us-east-1"))
                .endpoint_url(format!("http://{addr}"))
                .force_path_style(true)
                .credentials_provider(Credentials::new("admin", ADMIN, None, None, "test"))
                .build();
            let s3 = aws_sdk_s3::Client::from_conf(config);
            let listed = s3
                .list_objects_v2()
                .bucket("models")
                .prefix("org/tiny/")
                .send()
                .await
                .unwrap();
            let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
            assert_eq!(
                keys,
                [
                    "org/tiny/.gitattributes",
                    "org/tiny/config.json",
                    "org/tiny/w/big.bin"
                ]
            );
            let part = s3
                .get_object()
                .bucket("models")
                .key("org/tiny/w/big.bin")
                .range("bytes=1000-1999")
                .send()
                .await
                .unwrap();
            assert_eq!(
                part.e_tag(),
                Some(format!("\"{}\"", support::sha256_hex(&big)).as_str())
            );
            let bytes = part.body.collect().await.unwrap().into_bytes();
            assert_eq!(&bytes[..], &big[1000..2000]);

            // The catalog's model page shows the S3 commands, at the S3 listener's port.
            let detail: serde_json::Value = support::http::client()
                .get(airlock.url("/_airlock/catalog/items/models/org/tiny"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let aws = format!(
                "aws --endpoint-url http://127.0.0.1:{} --no-sign-request s3 cp --recursive s3://models/org/tiny/ ./tiny",
                addr.port()
            );
            assert!(
                detail["snippets"].as_array().unwrap().iter().any(|s| s["text"] == aws.as_str()),
                "{detail}"
            );

            // Virtual-hosted: the bucket in the host name, over HTTP/1.1 and HTTP/2.
            let host = format!("models.s3.test:{}", addr.port());
            let url = format!("http://{host}/org/tiny/config.json");
            for h2 in [false, true] {
                let mut client = support::http::builder().resolve("models.s3.test", addr);
                if h2 {
                    client = client.http2_prior_knowledge();
                }
                let r = client.build().unwrap().get(&url).send().await.unwrap();
                let version = r.version();
                assert_eq!(
                    (r.status().as_u16(), h2),
                    (200, version == http::Version::HTTP_2)
                );
                assert_eq!(&r.bytes().await.unwrap()[..], b"{}");
            }
        });
    }

    on_both_stores!(sync: rust_sdk_and_virtual_hosts);
}
