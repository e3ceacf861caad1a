//! Bundles against the real binary and real stores: content seeded with the import
//! commands, exported, carried (as files), imported into another store and served from it.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use support::backend::{Backend, StoreArgs};
use support::http;
use support::images;
use support::process::output_ok;
use support::store_walk::stored_blobs;
use support::wheels::wheel;

const ADMIN: &str = "admin-token-for-tests-0123";
const WHEEL: &str = "demo_pkg-1.0-py3-none-any.whl";
const IMAGE: &str = "docker.io/ml/tiny";
/// Logged at open by every command on an S3 server without conditional writes (Garage).
const GARAGE_NOTICE: &str = " INFO airlock::store::s3: S3 server ignores conditional writes";

fn ok(out: Output) -> String {
    output_ok(out, "airlock")
}

fn fails(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "command should have failed:\n{stderr}"
    );
    stderr
}

fn airlock(store: &StoreArgs, dir: &Path, args: &[&str]) -> Output {
    store.cli(dir).args(args).output().unwrap()
}

/// `airlock bundle export --out <out>` plus `options`, which must succeed; what it said.
fn export(store: &StoreArgs, dir: &Path, out: &Path, options: &[&str]) -> String {
    let mut args = vec!["bundle", "export", "--out", out.to_str().unwrap()];
    args.extend_from_slice(options);
    ok(airlock(store, dir, &args))
}

struct Seeded {
    layer: Vec<u8>,
    manifest_digest: String,
    manifest: Vec<u8>,
    config_json: Vec<u8>,
}

/// One wheel, one image and one model, through the ordinary import commands.
fn seed(store: &StoreArgs, dir: &Path) -> Seeded {
    let wheels = dir.join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    wheel("demo-pkg", "1.0", &[], None).write_to(&wheels);
    ok(airlock(
        store,
        dir,
        &["pypi", "import", wheels.to_str().unwrap()],
    ));

    let layer = b"a layer that crossed the air gap".to_vec();
    let layout = dir.join("layout");
    let (manifest_digest, manifest) = images::tiny_layout(&layout, &format!("{IMAGE}:1.0"), &layer);
    ok(airlock(
        store,
        dir,
        &["oci", "import", layout.to_str().unwrap()],
    ));

    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    let config_json = br#"{"architectures":["Tiny"],"model_type":"tiny"}"#.to_vec();
    std::fs::write(model.join("config.json"), &config_json).unwrap();
    std::fs::write(model.join("weights.bin"), vec![7u8; 100_000]).unwrap();
    ok(airlock(
        store,
        dir,
        &["hf", "import", "org/tiny", model.to_str().unwrap()],
    ));
    Seeded {
        layer,
        manifest_digest,
        manifest,
        config_json,
    }
}

async fn get(url: &str, accept: &str) -> (u16, Vec<u8>) {
    let r = http::following_redirects()
        .get(url)
        .bearer_auth(ADMIN)
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

/// The receiving store serves what was seeded on the other side, through all three APIs.
async fn assert_serves(store: &StoreArgs, dir: &Path, seeded: &Seeded, wheels: &[&str]) {
    let server = store.serve(dir, &["--admin-token", ADMIN]);
    let page_url = server.url("/simple/demo-pkg/");
    let (status, page) = get(&page_url, "application/vnd.pypi.simple.v1+json").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&page));
    let page: Value = serde_json::from_slice(&page).unwrap();
    let files = page["files"].as_array().unwrap();
    let names: Vec<&str> = files
        .iter()
        .map(|f| f["filename"].as_str().unwrap())
        .collect();
    assert_eq!(names, wheels);
    let url = reqwest::Url::parse(&page_url)
        .unwrap()
        .join(files[0]["url"].as_str().unwrap())
        .unwrap();
    let (status, body) = get(url.as_str(), "*/*").await;
    assert_eq!(status, 200);
    assert_eq!(
        support::sha256(&body),
        format!("sha256:{}", files[0]["hashes"]["sha256"].as_str().unwrap())
    );

    let oci = "application/vnd.oci.image.manifest.v1+json";
    let (status, body) = get(&server.url(&format!("/v2/{IMAGE}/manifests/1.0")), oci).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, seeded.manifest);
    let (status, body) = get(
        &server.url(&format!("/v2/{IMAGE}/manifests/{}", seeded.manifest_digest)),
        oci,
    )
    .await;
    assert_eq!((status, body), (200, seeded.manifest.clone()));
    let layer = support::sha256(&seeded.layer);
    let (status, body) = get(&server.url(&format!("/v2/{IMAGE}/blobs/{layer}")), "*/*").await;
    assert_eq!((status, body), (200, seeded.layer.clone()));

    let (status, body) = get(&server.url("/org/tiny/resolve/main/config.json"), "*/*").await;
    assert_eq!((status, body), (200, seeded.config_json.clone()));
    let (status, body) = get(&server.url("/org/tiny/resolve/main/weights.bin"), "*/*").await;
    assert_eq!((status, body.len()), (200, 100_000));
}

fn have(store: &StoreArgs, dir: &Path) -> Value {
    let out = airlock(store, dir, &["bundle", "have"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Metadata documents in the store (looked at directly, not through Airlock).
fn metadata_objects(store: &StoreArgs) -> usize {
    let keys = store.object_keys();
    ["oci/", "pypi/", "hf/"]
        .iter()
        .map(|p| keys.iter().filter(|k| k.starts_with(p)).count())
        .sum()
}

/// The manifest inside a bundle file.
fn manifest_of(bundle: &Path) -> Value {
    let mut archive = tar::Archive::new(std::fs::File::open(bundle).unwrap());
    let mut first = archive.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(first.path().unwrap().to_str(), Some("manifest.json"));
    serde_json::from_reader(&mut first).unwrap()
}

/// Rewrites a bundle, letting `change` alter any entry's bytes.
fn rewrite(bundle: &Path, change: impl Fn(&str, Vec<u8>) -> Vec<u8>) {
    let mut entries = Vec::new();
    {
        let mut archive = tar::Archive::new(std::fs::File::open(bundle).unwrap());
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().to_string();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
            entries.push((name.clone(), change(&name, bytes)));
        }
    }
    let mut builder = tar::Builder::new(std::fs::File::create(bundle).unwrap());
    for (name, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, &name, &bytes[..]).unwrap();
    }
    builder.finish().unwrap();
}

fn round_trip(receiver: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let source = StoreArgs::new(Backend::Fs, &d.join("a"));
    let seeded = seed(&source, d);
    let bundle = d.join("one.tar");
    let out = ok(airlock(
        &source,
        d,
        &["bundle", "export", "--out", bundle.to_str().unwrap()],
    ));
    assert!(out.contains("1 file(s)"), "{out}");
    let manifest = manifest_of(&bundle);
    let keys: Vec<&str> = manifest["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.iter()
            .any(|k| k.starts_with("oci/repos/") && k.ends_with("/_repo.json"))
            && keys.contains(&"hf/models.json")
            && !keys.contains(&"oci/catalog.json"),
        "{keys:?}"
    );
    assert!(keys.iter().all(|k| !k.starts_with("uploads/")));

    let target = StoreArgs::new(receiver, &d.join("b"));
    let out = ok(airlock(
        &target,
        d,
        &["bundle", "import", bundle.to_str().unwrap()],
    ));
    assert!(out.contains("already present; documents"), "{out}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(assert_serves(&target, d, &seeded, &[WHEEL]));

    // Importing again changes nothing.
    let out = ok(airlock(
        &target,
        d,
        &["bundle", "import", bundle.to_str().unwrap()],
    ));
    assert!(
        out.contains("blobs 0 new (0 bytes)") && out.contains(" 0 created, 0 merged"),
        "{out}"
    );

    // And back: the receiver's store exported into a third, filesystem store equals the first.
    let back = d.join("back");
    std::fs::create_dir_all(&back).unwrap();
    ok(airlock(
        &target,
        d,
        &["bundle", "export", "--out", back.to_str().unwrap()],
    ));
    let third = StoreArgs::new(Backend::Fs, &d.join("c"));
    ok(airlock(
        &third,
        d,
        &["bundle", "import", back.to_str().unwrap()],
    ));
    assert_eq!(have(&third, d), have(&source, d));
}

#[test]
fn a_bundle_round_trip_between_filesystem_stores_serves_everything() {
    round_trip(Backend::Fs);
}

#[test]
#[ignore = "needs Garage: bash tests/run-all.sh"]
fn a_bundle_round_trip_filesystem_to_s3_and_back() {
    round_trip(Backend::S3);
}

fn an_incremental_bundle_holds_only_what_the_receiver_lacks(receiver: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let source = StoreArgs::new(Backend::Fs, &d.join("a"));
    let seeded = seed(&source, d);
    let target = StoreArgs::new(receiver, &d.join("b"));
    let first = d.join("first.tar");
    ok(airlock(
        &source,
        d,
        &["bundle", "export", "--out", first.to_str().unwrap()],
    ));
    ok(airlock(
        &target,
        d,
        &["bundle", "import", first.to_str().unwrap()],
    ));

    // A new version on the connected side; the receiver says what it has.
    let wheels = d.join("wheels2");
    std::fs::create_dir_all(&wheels).unwrap();
    let new_wheel = wheel("demo-pkg", "2.0", &[], None);
    new_wheel.write_to(&wheels);
    ok(airlock(
        &source,
        d,
        &["pypi", "import", wheels.to_str().unwrap()],
    ));
    let have_file = d.join("have.json");
    std::fs::write(&have_file, serde_json::to_vec(&have(&target, d)).unwrap()).unwrap();

    let second = d.join("second.tar");
    let out = ok(airlock(
        &source,
        d,
        &[
            "bundle",
            "export",
            "--out",
            second.to_str().unwrap(),
            "--have",
            have_file.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("left out: the receiver has them"), "{out}");
    let manifest = manifest_of(&second);
    let objects = manifest["objects"].as_array().unwrap();
    let blobs: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "blob").collect();
    // The new wheel and its .metadata; the one document that changed is its project page.
    assert_eq!(blobs.len(), 2, "{objects:#?}");
    assert!(blobs
        .iter()
        .any(|b| b["digest"] == format!("sha256:{}", new_wheel.sha256())));
    let docs: Vec<&str> = objects
        .iter()
        .filter(|o| o["kind"] == "doc")
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(docs, ["pypi/default/projects/demo-pkg.json"]);

    let out = ok(airlock(
        &target,
        d,
        &["bundle", "import", second.to_str().unwrap()],
    ));
    assert!(
        out.contains("blobs 2 new") && out.contains("1 merged"),
        "{out}"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(assert_serves(
        &target,
        d,
        &seeded,
        &[WHEEL, "demo_pkg-2.0-py3-none-any.whl"],
    ));
}

fn a_corrupt_object_or_a_tampered_manifest_imports_nothing(receiver: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let source = StoreArgs::new(Backend::Fs, &d.join("a"));
    seed(&source, d);
    let bundle = d.join("b.tar");
    ok(airlock(
        &source,
        d,
        &["bundle", "export", "--out", bundle.to_str().unwrap()],
    ));
    let pristine = std::fs::read(&bundle).unwrap();
    let target = StoreArgs::new(receiver, &d.join("t"));

    // One flipped byte in the last object (the other objects are all good).
    let last = manifest_of(&bundle)["objects"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .replace(':', "/");
    rewrite(&bundle, |name, mut bytes| {
        if name == format!("objects/{last}") {
            bytes[0] ^= 1;
        }
        bytes
    });
    let e = fails(airlock(
        &target,
        d,
        &["bundle", "import", bundle.to_str().unwrap()],
    ));
    assert!(
        e.contains("is corrupt") && e.contains("nothing was imported"),
        "{e}"
    );
    // One line, apart from the warning every command opening Garage logs first (it
    // ignores conditional writes; see `S3Store::open`).
    let lines: Vec<&str> = e
        .trim()
        .lines()
        .filter(|l| !(receiver != Backend::Fs && l.contains(GARAGE_NOTICE)))
        .collect();
    assert_eq!(lines.len(), 1, "one line: {e}");
    assert_eq!(metadata_objects(&target), 0);
    assert_eq!(
        stored_blobs(&target, "").len(),
        0,
        "verified before storing"
    );

    // A manifest that lies about a size.
    std::fs::write(&bundle, &pristine).unwrap();
    rewrite(&bundle, |name, bytes| {
        if name != "manifest.json" {
            return bytes;
        }
        let mut m: Value = serde_json::from_slice(&bytes).unwrap();
        let size = m["objects"][0]["size"].as_u64().unwrap();
        m["objects"][0]["size"] = (size + 1).into();
        serde_json::to_vec(&m).unwrap()
    });
    let e = fails(airlock(
        &target,
        d,
        &["bundle", "import", bundle.to_str().unwrap()],
    ));
    assert!(e.contains("damaged or was altered"), "{e}");
    // A manifest that names content the bundle does not carry.
    std::fs::write(&bundle, &pristine).unwrap();
    rewrite(&bundle, |name, bytes| {
        if name != "manifest.json" {
            return bytes;
        }
        let mut m: Value = serde_json::from_slice(&bytes).unwrap();
        let objects = m["objects"].as_array_mut().unwrap();
        let doc = objects.iter_mut().find(|o| o["kind"] == "doc").unwrap();
        doc["digest"] = support::sha256(b"something else").into();
        serde_json::to_vec(&m).unwrap()
    });
    let e = fails(airlock(
        &target,
        d,
        &["bundle", "import", bundle.to_str().unwrap()],
    ));
    assert!(e.contains("not listed in manifest.json"), "{e}");
    assert_eq!(metadata_objects(&target), 0);
    assert_eq!(stored_blobs(&target, "").len(), 0);

    // The pristine bundle still imports.
    std::fs::write(&bundle, &pristine).unwrap();
    ok(airlock(
        &target,
        d,
        &["bundle", "import", bundle.to_str().unwrap()],
    ));
    assert!(metadata_objects(&target) > 0);
}

fn signed_bundles_are_accepted_and_foreign_or_unsigned_ones_refused(receiver: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let source = StoreArgs::new(Backend::Fs, &d.join("a"));
    seed(&source, d);
    let keys = d.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let prefix = keys.join("site");
    ok(airlock(
        &source,
        d,
        &["bundle", "keygen", "--out", prefix.to_str().unwrap()],
    ));
    ok(airlock(
        &source,
        d,
        &[
            "bundle",
            "keygen",
            "--out",
            keys.join("foreign").to_str().unwrap(),
        ],
    ));
    let export = |name: &str, key: Option<&str>| {
        let path = d.join(name);
        let mut args = vec!["bundle", "export", "--out", path.to_str().unwrap()];
        if let Some(k) = key {
            args.extend(["--sign-key", k]);
        }
        ok(airlock(&source, d, &args));
        path
    };
    let site_key = keys.join("site.key");
    let signed = export("signed.tar", Some(site_key.to_str().unwrap()));
    let foreign = export(
        "foreign.tar",
        Some(keys.join("foreign.key").to_str().unwrap()),
    );
    let unsigned = export("unsigned.tar", None);

    // The receiver trusts the site key through its config file.
    let target = StoreArgs::new(receiver, &d.join("t"));
    let config = d.join("airlock.toml");
    std::fs::write(
        &config,
        format!(
            "[bundle]\npublic_keys = [\"{}\"]\n",
            keys.join("site.pub").display()
        ),
    )
    .unwrap();
    let import = |bundle: &Path| {
        target
            .cli(d)
            .args(["--config", config.to_str().unwrap(), "bundle", "import"])
            .arg(bundle)
            .output()
            .unwrap()
    };
    let e = fails(import(&foreign));
    assert!(
        e.contains("does not verify against any configured public key"),
        "{e}"
    );
    let e = fails(import(&unsigned));
    assert!(e.contains("not signed"), "{e}");
    let tampered = d.join("tampered.tar");
    std::fs::copy(&signed, &tampered).unwrap();
    rewrite(&tampered, |name, bytes| {
        if name == "manifest.json" {
            String::from_utf8(bytes)
                .unwrap()
                .replace("everything in", "anything in")
                .into_bytes()
        } else {
            bytes
        }
    });
    fails(import(&tampered));
    assert_eq!(metadata_objects(&target), 0);
    assert_eq!(stored_blobs(&target, "").len(), 0);

    let out = ok(import(&signed));
    assert!(out.contains("signature verified"), "{out}");
    // --public-key works without a config entry too.
    let other = StoreArgs::new(receiver, &d.join("o"));
    let pub_key = keys.join("site.pub");
    let e = fails(airlock(
        &other,
        d,
        &[
            "bundle",
            "import",
            "--public-key",
            pub_key.to_str().unwrap(),
            unsigned.to_str().unwrap(),
        ],
    ));
    assert!(e.contains("not signed"), "{e}");
}

fn split_volumes_import_and_a_truncated_volume_is_refused_then_resumed(receiver: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let source = StoreArgs::new(Backend::Fs, &d.join("a"));
    let seeded = seed(&source, d);
    let media = d.join("media");
    std::fs::create_dir_all(&media).unwrap();
    let base = media.join("bundle.tar");
    let out = ok(airlock(
        &source,
        d,
        &[
            "bundle",
            "export",
            "--out",
            base.to_str().unwrap(),
            "--split",
            "32KiB",
        ],
    ));
    let volumes: Vec<PathBuf> = (0..)
        .map(|i| PathBuf::from(format!("{}.{i:03}", base.display())))
        .take_while(|p| p.exists())
        .collect();
    assert!(volumes.len() >= 4, "{out}");
    assert!(volumes
        .iter()
        .all(|v| std::fs::metadata(v).unwrap().len() <= 32 * 1024));

    let target = StoreArgs::new(receiver, &d.join("t"));
    // A volume cut short on the way: refused, nothing imported.
    let last = volumes.last().unwrap();
    let full = std::fs::read(last).unwrap();
    std::fs::write(last, &full[..full.len() / 3]).unwrap();
    let e = fails(airlock(
        &target,
        d,
        &["bundle", "import", media.to_str().unwrap()],
    ));
    assert!(
        e.contains("ends after") && e.contains("copy it again"),
        "{e}"
    );
    assert_eq!(metadata_objects(&target), 0);
    // A missing one is named.
    let e = fails(airlock(
        &target,
        d,
        &[
            "bundle",
            "import",
            volumes[0].to_str().unwrap(),
            volumes[2].to_str().unwrap(),
        ],
    ));
    assert!(e.contains("bundle.tar.001 is missing"), "{e}");

    std::fs::write(last, &full).unwrap();
    let mut reversed: Vec<&str> = volumes.iter().map(|v| v.to_str().unwrap()).collect();
    reversed.reverse();
    let mut args = vec!["bundle", "import"];
    args.extend(reversed);
    ok(airlock(&target, d, &args));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(assert_serves(&target, d, &seeded, &[WHEEL]));
}

fn an_import_killed_midway_publishes_nothing_and_resumes(receiver: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let source = StoreArgs::new(Backend::Fs, &d.join("a"));
    let seeded = seed(&source, d);
    // Many blobs, so the kill lands while they are being stored.
    let many = d.join("many");
    std::fs::create_dir_all(&many).unwrap();
    for i in 0..300u32 {
        let body: Vec<u8> = (0..16 * 1024u32)
            .map(|j| (j.wrapping_mul(i + 1) >> 3) as u8)
            .collect();
        std::fs::write(many.join(format!("shard-{i:03}.bin")), body).unwrap();
    }
    ok(airlock(
        &source,
        d,
        &["hf", "import", "org/many", many.to_str().unwrap()],
    ));
    let bundle = d.join("big.tar");
    ok(airlock(
        &source,
        d,
        &["bundle", "export", "--out", bundle.to_str().unwrap()],
    ));

    let target = StoreArgs::new(receiver, &d.join("t"));
    let mut child = target
        .cli(d)
        .args(["bundle", "import", bundle.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while stored_blobs(&target, "").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no blob was ever stored"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it could be interrupted"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let stored = stored_blobs(&target, "").len();
    assert!(stored < 300, "interrupted while storing blobs ({stored})");
    assert_eq!(
        metadata_objects(&target),
        0,
        "no document before every blob is in"
    );

    let out = ok(airlock(
        &target,
        d,
        &["bundle", "import", bundle.to_str().unwrap()],
    ));
    let present: usize = out
        .split(" already present")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(present >= 1, "{out}");
    assert_eq!(have(&target, d), have(&source, d));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(assert_serves(&target, d, &seeded, &[WHEEL]));
}

fn a_spec_selects_the_named_content_only(receiver: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let source = StoreArgs::new(Backend::Fs, &d.join("a"));
    let seeded = seed(&source, d);
    // Content the spec does not name must stay behind.
    let wheels = d.join("more");
    std::fs::create_dir_all(&wheels).unwrap();
    wheel("other-pkg", "1.0", &[], None).write_to(&wheels);
    wheel("demo-pkg", "2.0", &[], None).write_to(&wheels);
    ok(airlock(
        &source,
        d,
        &["pypi", "import", wheels.to_str().unwrap()],
    ));
    // A model whose file list is paged (`src/hf/commit_doc.rs`): its pages travel too.
    let paged = d.join("paged");
    let deep = vec!["d".repeat(179); 5].join("/");
    std::fs::create_dir_all(paged.join(&deep)).unwrap();
    for i in 0..1500 {
        std::fs::write(
            paged.join(&deep).join(format!("{i:05}.txt")),
            format!("file {i}"),
        )
        .unwrap();
    }
    ok(airlock(
        &source,
        d,
        &["hf", "import", "org/paged", paged.to_str().unwrap()],
    ));
    let spec = d.join("spec.toml");
    std::fs::write(
        &spec,
        format!(
            "[[hf]]\nrepo = \"org/paged\"\n\n[[hf]]\nrepo = \"org/tiny\"\n\n[[pypi]]\nprojects = [\"demo-pkg<2\"]\n\n[[oci]]\nimage = \"{IMAGE}:1.0\"\n"
        ),
    )
    .unwrap();
    let bundle = d.join("spec.tar");
    export(&source, d, &bundle, &["--spec", spec.to_str().unwrap()]);
    let target = StoreArgs::new(receiver, &d.join("t"));
    ok(airlock(
        &target,
        d,
        &["bundle", "import", bundle.to_str().unwrap()],
    ));
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Only 1.0 of demo-pkg; other-pkg is absent.
    rt.block_on(assert_serves(&target, d, &seeded, &[WHEEL]));
    let held = have(&target, d);
    assert!(held["docs"]
        .get("pypi/default/projects/other-pkg.json")
        .is_none());
    let server = target.serve(d, &["--admin-token", ADMIN]);
    let url = server.url(&format!("/org/paged/resolve/main/{deep}/01234.txt"));
    let (status, body) = rt.block_on(get(&url, "*/*"));
    assert_eq!(
        (status, String::from_utf8_lossy(&body).to_string()),
        (200, "file 1234".to_string())
    );
    drop(server);

    // A blob gone from the exporting store is left out with a note naming the file that
    // needs it; everything else still travels.
    let gone = support::sha256_hex(b"file 7");
    std::fs::remove_file(d.join(format!("a/store/blobs/sha256/{}/{gone}", &gone[..2]))).unwrap();
    let again = d.join("spec-again.tar");
    let said = export(&source, d, &again, &["--spec", spec.to_str().unwrap()]);
    let note = format!(
        "note: hf org/paged {deep}/00007.txt: blob sha256:{gone} is not in this store; left out"
    );
    assert!(said.contains(&note), "{said}");
    let keys: Vec<String> = manifest_of(&again)["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_string())
        .collect();
    let first = manifest_of(&bundle)["objects"].as_array().unwrap().len();
    assert_eq!(keys.len(), first - 1, "{keys:?}");
    assert!(!keys.iter().any(|k| k.ends_with(&gone)), "{keys:?}");

    // With the have of the receiver, which holds all of the first bundle, no blob is
    // packed nor looked up: the one gone from this store is held, not missing.
    let have_file = d.join("have.json");
    std::fs::write(&have_file, serde_json::to_vec(&have(&target, d)).unwrap()).unwrap();
    let third = d.join("spec-have.tar");
    let said = export(
        &source,
        d,
        &third,
        &[
            "--spec",
            spec.to_str().unwrap(),
            "--have",
            have_file.to_str().unwrap(),
        ],
    );
    assert!(!said.contains("is not in this store"), "{said}");
    let first_blobs = manifest_of(&bundle)["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["kind"] == "blob")
        .count();
    let held: usize = said
        .split(" left out: the receiver has them")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count of held objects in:\n{said}"));
    assert!(
        held >= first_blobs,
        "{held} held, {first_blobs} blobs: {said}"
    );
    let packed = manifest_of(&third)["objects"].as_array().unwrap().clone();
    assert!(packed.iter().all(|o| o["kind"] != "blob"), "{packed:#?}");
}

// The receiving store on each backend; the exporting side stays on the filesystem (the
// round trip above covers exports from S3).
on_both_stores!(
    sync:
    an_incremental_bundle_holds_only_what_the_receiver_lacks,
    a_corrupt_object_or_a_tampered_manifest_imports_nothing,
    signed_bundles_are_accepted_and_foreign_or_unsigned_ones_refused,
    split_volumes_import_and_a_truncated_volume_is_refused_then_resumed,
    an_import_killed_midway_publishes_nothing_and_resumes,
    a_spec_selects_the_named_content_only,
);

/// Runs `script` with stock huggingface_hub + hf_xet (no variable disabling Xet) against
/// `server` as the admin, in `home`; its stdout.
fn hf_client(server: &support::airlock::Airlock, home: &Path, script: &str, file: &Path) -> String {
    let venv = support::process::venv_dir("AIRLOCK_TEST_VENV");
    let mut cmd = support::hf_python_in(&venv, &server.base, home);
    cmd.env("HF_TOKEN", ADMIN).env("FILE", file);
    support::process::ok(cmd.arg("-c").arg(script))
}

const XET_UPLOAD: &str = r#"
import os
from huggingface_hub import HfApi
api = HfApi()
api.create_repo("team/big", exist_ok=True)
api.upload_file(path_or_fileobj=os.environ["FILE"], path_in_repo="model.bin", repo_id="team/big")
"#;

/// Downloads model.bin at main through Xet and checks it against FILE.
const XET_DOWNLOAD: &str = r#"
import os
from huggingface_hub import hf_hub_download, get_hf_file_metadata, hf_hub_url
meta = get_hf_file_metadata(hf_hub_url("team/big", "model.bin"))
assert getattr(meta, "xet_file_data", None) is not None, "Xet not offered"
got = open(hf_hub_download("team/big", "model.bin"), "rb").read()
assert got == open(os.environ["FILE"], "rb").read(), "bytes differ"
print("XET-DOWNLOAD-OK")
"#;

/// Counts the receiver's answered reconstructions and xorb fetches.
fn xet_reads(server: &support::airlock::Airlock) -> (usize, usize) {
    let log = server.log();
    let count = |route: &str, status: &str| {
        log.lines()
            .filter(|l| l.contains(route) && l.contains(status))
            .count()
    };
    (
        count("route=xet.reconstruction", "status=200"),
        count("route=xet.fetch", "status=206"),
    )
}

/// A model uploaded through Xet by the stock client travels as chunks: the full bundle
/// carries its xorbs (not its blob) and the receiver serves it through its own CAS; a
/// second revision with ~1 % of the bytes changed in three places travels as an
/// incremental bundle of only the new xorbs, at most 5 % of the file.
fn xet_uploads_travel_as_chunks_and_a_revision_as_new_xorbs(receiver: Backend) {
    const SIZE: usize = 20 << 20;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let source = StoreArgs::new(Backend::Fs, &d.join("a"));
    let target = StoreArgs::new(receiver, &d.join("b"));
    let sender = source.serve(d, &["--admin-token", ADMIN]);
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
    let v1 = random(SIZE);
    let mut v2 = v1.clone();
    for at in [3 << 20, 9 << 20, 15 << 20] {
        let len = SIZE / 100 / 3;
        v2[at..at + len].copy_from_slice(&random(len));
    }
    let (f1, f2) = (d.join("v1.bin"), d.join("v2.bin"));
    std::fs::write(&f1, &v1).unwrap();
    std::fs::write(&f2, &v2).unwrap();
    let up_home = d.join("home-up");
    hf_client(&sender, &up_home, XET_UPLOAD, &f1);

    let full = d.join("full.tar");
    ok(airlock(
        &source,
        d,
        &["bundle", "export", "--out", full.to_str().unwrap()],
    ));
    let full_manifest = manifest_of(&full);
    let v1_sha = support::sha256_hex(&v1);
    let objects = full_manifest["objects"].as_array().unwrap();
    assert!(
        !objects
            .iter()
            .any(|o| o["digest"] == format!("sha256:{v1_sha}")),
        "the file's blob travels: {objects:#?}"
    );
    assert!(
        objects.iter().any(|o| o["kind"] == "xet-file"),
        "{objects:#?}"
    );
    let out = ok(airlock(
        &target,
        d,
        &["bundle", "import", full.to_str().unwrap()],
    ));
    assert!(out.contains("Xet files 1 new"), "{out}");
    let served = target.serve(d, &["--admin-token", ADMIN]);
    let before = xet_reads(&served);
    let got = hf_client(&served, &d.join("home-down-1"), XET_DOWNLOAD, &f1);
    assert!(got.contains("XET-DOWNLOAD-OK"), "{got}");
    let after = xet_reads(&served);
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "not through Xet: {}",
        served.log()
    );
    drop(served);

    // Revision 2 from the same client cache: only its new chunks are uploaded.
    hf_client(&sender, &up_home, XET_UPLOAD, &f2);
    let have_file = d.join("have.json");
    std::fs::write(&have_file, serde_json::to_vec(&have(&target, d)).unwrap()).unwrap();
    let inc = d.join("inc.tar");
    ok(airlock(
        &source,
        d,
        &[
            "bundle",
            "export",
            "--out",
            inc.to_str().unwrap(),
            "--have",
            have_file.to_str().unwrap(),
        ],
    ));
    let (full_bytes, inc_bytes) = (
        std::fs::metadata(&full).unwrap().len(),
        std::fs::metadata(&inc).unwrap().len(),
    );
    eprintln!(
        "XET-BUNDLE-FIGURES file {SIZE} bytes; full bundle {full_bytes} bytes ({} xorbs); incremental bundle {inc_bytes} bytes ({} xorbs, {:.2} % of the file)",
        full_manifest["xorbs"].as_array().map_or(0, Vec::len),
        manifest_of(&inc)["xorbs"].as_array().map_or(0, Vec::len),
        inc_bytes as f64 * 100.0 / SIZE as f64
    );
    assert!(full_bytes >= SIZE as u64, "{full_bytes}");
    let hashes = |m: &Value| -> Vec<String> {
        m["xorbs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| x["hash"].to_string())
            .collect()
    };
    let new = hashes(&manifest_of(&inc));
    assert!(!new.is_empty(), "the new chunks travel");
    assert!(
        new.iter().all(|h| !hashes(&full_manifest).contains(h)),
        "a held xorb travels again"
    );
    assert!(
        inc_bytes * 20 <= SIZE as u64,
        "incremental bundle {inc_bytes} bytes"
    );
    ok(airlock(
        &target,
        d,
        &["bundle", "import", inc.to_str().unwrap()],
    ));
    let served = target.serve(d, &["--admin-token", ADMIN]);
    let got = hf_client(&served, &d.join("home-down-2"), XET_DOWNLOAD, &f2);
    assert!(got.contains("XET-DOWNLOAD-OK"), "{got}");
    let reads = xet_reads(&served);
    assert!(
        reads.0 > 0 && reads.1 > 0,
        "not through Xet: {}",
        served.log()
    );
}

/// The real-client scenarios, apart so their `fs`/`s3` modules do not meet the ones above.
mod xet_clients {
    use super::*;
    on_both_stores!(
        sync,
        ignore_fs = "needs huggingface_hub and hf_xet: bash tests/run-all.sh",
        ignore_s3 = "needs huggingface_hub, hf_xet and Garage: bash tests/run-all.sh":
        xet_uploads_travel_as_chunks_and_a_revision_as_new_xorbs,
    );
}
