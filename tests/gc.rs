//! `airlock gc` against the real binary, on the filesystem store and on Garage: the mark
//! spans every protocol (a blob shared by an image layer and a model file is referenced
//! by both), what nothing references is reclaimable only past the grace period,
//! abandoned upload sessions are removed by age while active ones are left alone, and the
//! last run's report reaches `/metrics`.

mod support;

use std::path::Path;
use support::backend::{Backend, StoreArgs};
use support::process::ok;
use support::{push_image, sha256, ADMIN};

/// `airlock gc --json` with `args`: its report.
fn gc(store: &StoreArgs, dir: &Path, args: &[&str]) -> serde_json::Value {
    gc_with(store, dir, &[], args)
}

/// The same, with global options (`--config`) before `gc`.
fn gc_with(store: &StoreArgs, dir: &Path, global: &[&str], args: &[&str]) -> serde_json::Value {
    let out = ok(store
        .cli(dir)
        .args(global)
        .args(["gc", "--json"])
        .args(args));
    let json = out
        .lines()
        .find(|l| l.starts_with("{\"store\""))
        .unwrap_or_default();
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn tally(report: &serde_json::Value, field: &str) -> (u64, u64) {
    let t = &report[field];
    (t["count"].as_u64().unwrap(), t["bytes"].as_u64().unwrap())
}

fn by(report: &serde_json::Value, protocol: &str) -> (u64, u64) {
    let t = &report["referenced_by"][protocol];
    (
        t["count"].as_u64().unwrap_or(0),
        t["bytes"].as_u64().unwrap_or(0),
    )
}

/// Deletes a tag or manifest of `name` as the registry API does (202).
async fn delete_manifest(http: &reqwest::Client, base: &str, name: &str, reference: &str) {
    let r = http
        .delete(format!("{base}/v2/{name}/manifests/{reference}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "deleting {name}:{reference}");
}

/// The status of a manifest GET (an image manifest accepted).
async fn manifest_status(http: &reqwest::Client, base: &str, name: &str, reference: &str) -> u16 {
    http.get(format!("{base}/v2/{name}/manifests/{reference}"))
        .bearer_auth(ADMIN)
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The digests of the untagged manifests retention removed.
fn untagged(report: &serde_json::Value) -> Vec<&str> {
    report["retention"]["untagged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect()
}

async fn gc_counts_across_protocols_and_sweeps_abandoned_uploads(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let store = StoreArgs::new(backend, dir);
    // A model whose weights are byte for byte an image layer, and a file of its own.
    let shared = support::pseudo_random(300_000, 1);
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("weights.bin"), &shared).unwrap();
    std::fs::write(model.join("config.json"), b"{\"gc\": 1}").unwrap();
    ok(store
        .cli(dir)
        .args(["hf", "import", "org/tiny", model.to_str().unwrap()]));
    let wheel = support::wheels::wheel("gcdemo", "1.0", &[], None);
    let wheels = dir.join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    wheel.write_to(&wheels);
    ok(store
        .cli(dir)
        .args(["pypi", "import", wheels.to_str().unwrap()]));

    let server = store.serve(dir, &["--admin-token", ADMIN]);
    let http = support::http::client();
    let base = server.base.clone();
    // Two images with one config; `b` is then deleted, leaving its layer and manifest to
    // nothing. A blob pushed and never named by a manifest, and an upload left unfinished.
    let a = push_image(&http, &base, ADMIN, "team/a", "v1", &shared).await;
    let only_b = support::pseudo_random(200_000, 2);
    let b = push_image(&http, &base, ADMIN, "team/b", "v1", &only_b).await;
    delete_manifest(&http, &base, "team/b", &b).await;
    let orphan = support::pseudo_random(100_000, 3);
    let r = http
        .post(format!(
            "{base}/v2/team/a/blobs/uploads/?digest={}",
            sha256(&orphan)
        ))
        .bearer_auth(ADMIN)
        .body(orphan.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .post(format!("{base}/v2/team/a/blobs/uploads/"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let session = r.headers()["location"].to_str().unwrap().to_string();
    let session = if session.starts_with('/') {
        format!("{base}{session}")
    } else {
        session
    };
    let r = http
        .patch(&session)
        .bearer_auth(ADMIN)
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; 50_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let b_manifest_size = store
        .objects()
        .into_iter()
        .find(|(k, _)| k.ends_with(b.trim_start_matches("sha256:")))
        .map(|(_, size)| size)
        .expect("the deleted manifest's bytes are still stored");

    // Nothing is past a zero grace period: the deleted image's layer and manifest and the
    // orphan are reclaimable; the layer the model shares is the OCI repository's and the
    // Hub's; the dry run leaves the unfinished upload in place.
    let report = gc(
        &store,
        dir,
        &["--dry-run", "--grace", "0s", "--uploads-older-than", "0s"],
    );
    let reclaimable = (
        3,
        only_b.len() as u64 + orphan.len() as u64 + b_manifest_size,
    );
    assert_eq!(tally(&report, "reclaimable"), reclaimable, "{report}");
    assert_eq!(tally(&report, "recent"), (0, 0), "{report}");
    assert_eq!(by(&report, "shared"), (1, shared.len() as u64), "{report}");
    assert_eq!(
        by(&report, "pypi").0,
        2,
        "the wheel and its metadata: {report}"
    );
    assert_eq!(
        by(&report, "hf").0,
        2,
        "config.json and .gitattributes: {report}"
    );
    assert_eq!(
        by(&report, "oci").0,
        2,
        "image a's config and manifest: {report}"
    );
    assert_eq!(report["uploads"]["sessions"], 1, "{report}");
    assert!(!store.keys_under("uploads/").is_empty());

    // The default grace period keeps all of it: it was written just now.
    let report = gc(&store, dir, &["--dry-run"]);
    assert_eq!(tally(&report, "reclaimable"), (0, 0), "{report}");
    assert_eq!(tally(&report, "recent"), reclaimable, "{report}");
    assert_eq!(report["uploads"]["active"], 1, "{report}");

    // A real run: the abandoned session goes, and its client is told to start over.
    let report = gc(&store, dir, &["--uploads-older-than", "0s"]);
    assert_eq!(report["uploads"]["sessions"], 1, "{report}");
    assert_eq!(store.keys_under("uploads/"), Vec::<String>::new());
    let r = http
        .patch(&session)
        .bearer_auth(ADMIN)
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("BLOB_UPLOAD_UNKNOWN"));
    // Every replica's /metrics shows the store's last run.
    let metrics = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "airlock_store_referenced_bytes{protocol=\"shared\"} 300000".to_string(),
        "airlock_store_reclaimable_bytes{kind=\"blob\"} 0".to_string(),
        "airlock_gc_last_run_uploads_removed 1".to_string(),
        "airlock_gc_last_run_dry_run 0".to_string(),
    ] {
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }
    // The catalog's store page shows it to store-wide admins, and to nobody else.
    let store_page = |token: Option<&'static str>| {
        let mut r = http.get(server.url("/_airlock/catalog/store"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            r.send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let page = store_page(Some(ADMIN)).await;
    assert_eq!(page["gc"]["uploads_removed"], 1, "{page}");
    assert_eq!(page["gc"]["reclaimable_bytes"], 0, "{page}");
    assert_eq!(store_page(None).await["gc"], serde_json::Value::Null);
    // Everything referenced still reads.
    let r = http
        .get(format!("{base}/v2/team/a/blobs/{}", sha256(&shared)))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), shared);
    let r = http
        .get(server.url("/org/tiny/resolve/main/weights.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), shared);

    // Past a zero grace period the sweep removes exactly the three unreferenced blobs
    // (listed in the store itself), and everything referenced still pulls.
    let blobs_before = store.keys_under("blobs/");
    let report = gc(&store, dir, &["--grace", "0s"]);
    assert_eq!(tally(&report["swept"], "blobs"), reclaimable, "{report}");
    let blobs_after = store.keys_under("blobs/");
    let mut removed: Vec<String> = blobs_before
        .iter()
        .filter(|k| !blobs_after.contains(k))
        .map(|k| format!("sha256:{}", k.rsplit('/').next().unwrap()))
        .collect();
    removed.sort();
    let mut expected = vec![sha256(&only_b), sha256(&orphan), b.clone()];
    expected.sort();
    assert_eq!(removed, expected);
    assert_eq!(
        store.keys_under("gc/sweeps/"),
        Vec::<String>::new(),
        "lease and batches gone"
    );
    assert_eq!(manifest_status(&http, &base, "team/a", &a).await, 200);
    let r = http
        .get(format!("{base}/v2/team/a/blobs/{}", sha256(&shared)))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), shared);
    let r = http
        .get(server.url("/org/tiny/resolve/main/weights.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), shared);
    let r = http
        .get(format!("{base}/v2/team/b/blobs/{}", sha256(&only_b)))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the deleted image's own layer is gone");
    // The catalog's store page (read by a fresh server: nothing cached) shows what it freed.
    drop(server);
    let server = store.serve(dir, &["--admin-token", ADMIN]);
    let page: serde_json::Value = http
        .get(server.url("/_airlock/catalog/store"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["gc"]["removed_bytes"], reclaimable.1, "{page}");
    assert_eq!(page["gc"]["removed_blobs"], reclaimable.0, "{page}");
    // A second run finds nothing left to remove.
    let report = gc(&store, dir, &["--grace", "0s"]);
    assert_eq!(tally(&report["swept"], "blobs"), (0, 0), "{report}");
}

/// `[gc] interval`: `serve` collects on its own, and its report reaches `/metrics`.
async fn serve_collects_on_its_timer(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let store = StoreArgs::new(backend, dir);
    let config = dir.join("airlock.toml");
    // The OCI purger off: the abandoned session is the collector's to remove.
    std::fs::write(
        &config,
        "[gc]\ninterval = \"1s\"\n[oci]\npurge_uploads_after = \"0s\"\n",
    )
    .unwrap();
    let server = store.serve(
        dir,
        &["--config", config.to_str().unwrap(), "--admin-token", ADMIN],
    );
    let http = support::http::client();
    let r = http
        .post(server.url("/v2/team/a/blobs/uploads/"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let metrics = http
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("airlock_gc_last_run_uploads_removed 1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no collection within 30 s:\n{metrics}\n{}",
            server.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(store.keys_under("uploads/"), Vec::<String>::new());
}

/// Tags of `docker.io/team/app`, sorted.
async fn tags(http: &reqwest::Client, base: &str) -> Vec<String> {
    let list: serde_json::Value = http
        .get(format!("{base}/v2/team/app/tags/list"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut tags: Vec<String> = serde_json::from_value(list["tags"].clone()).unwrap();
    tags.sort();
    tags
}

/// `[[gc.retention]]` keep-last-3 over ten pushed tags: the three most recently pushed
/// stay (and `latest`, which the rule does not govern), the other seven go with their
/// images, whose layers and manifests are then unreferenced.
async fn retention_keeps_the_last_pushed_tags(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let store = StoreArgs::new(backend, dir);
    let config = dir.join("airlock.toml");
    std::fs::write(
        &config,
        "[cache]\nmutable_ttl = \"100ms\"\n\
         [[gc.retention]]\nrepositories = \"docker.io/team/*\"\ntags = \"v*\"\nkeep_last = 3\n",
    )
    .unwrap();
    // The server sees what the command changed once its cached tags expire.
    let server = store.serve(
        dir,
        &["--config", config.to_str().unwrap(), "--admin-token", ADMIN],
    );
    let http = support::http::client();
    let base = server.base.clone();
    // Pushed in order v1..v10, a second apart (S3 dates objects to the second): by name,
    // v10 would sort before v2, so only the push order can keep v8, v9 and v10.
    for i in 1..=10 {
        let layer = vec![i as u8; 10_000];
        push_image(&http, &base, ADMIN, "team/app", &format!("v{i}"), &layer).await;
        if i == 10 {
            push_image(&http, &base, ADMIN, "team/app", "latest", &layer).await;
        } else {
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
    }
    let global = ["--config", config.to_str().unwrap()];
    let report = gc_with(&store, dir, &global, &["--dry-run"]);
    let removed: Vec<&str> = report["retention"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tag"].as_str().unwrap())
        .collect();
    assert_eq!(
        removed,
        ["v1", "v2", "v3", "v4", "v5", "v6", "v7"],
        "{report}"
    );
    assert_eq!(
        tags(&http, &base).await.len(),
        11,
        "a dry run removes nothing"
    );

    let report = gc_with(&store, dir, &global, &["--grace", "0s"]);
    assert_eq!(report["retention"]["tags"].as_array().unwrap().len(), 7);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(tags(&http, &base).await, ["latest", "v10", "v8", "v9"]);
    // The seven images' layers and manifests are nothing's now.
    assert_eq!(tally(&report, "reclaimable").0, 14, "{report}");
    assert_eq!(manifest_status(&http, &base, "team/app", "v1").await, 404);
    for tag in ["v8", "latest"] {
        assert_eq!(
            manifest_status(&http, &base, "team/app", tag).await,
            200,
            "{tag}"
        );
    }
}

/// `[[gc.python_retention]]`: of a project's releases, the two uploaded last stay (not
/// the two greatest version strings: 10.0 was uploaded before 9.0); the others leave the
/// index, and their wheels are swept in the same run; another project is not governed.
async fn python_retention_keeps_the_last_uploaded_releases(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let store = StoreArgs::new(backend, dir);
    let config = dir.join("airlock.toml");
    std::fs::write(
        &config,
        "[[gc.python_retention]]\nprojects = \"default/gcdemo\"\nkeep_last = 2\n",
    )
    .unwrap();
    let mut wheels = Vec::new();
    for version in ["1.0", "2.0", "10.0", "9.0"] {
        let folder = dir.join(format!("wheels-{version}"));
        std::fs::create_dir_all(&folder).unwrap();
        let wheel = support::wheels::wheel("gcdemo", version, &[], None);
        wheel.write_to(&folder);
        ok(store
            .cli(dir)
            .args(["pypi", "import", folder.to_str().unwrap()]));
        wheels.push(wheel);
    }
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let old_other = support::wheels::wheel("othertool", "0.1", &[], None);
    old_other.write_to(&other);
    support::wheels::wheel("othertool", "0.2", &[], None).write_to(&other);
    support::wheels::wheel("othertool", "0.3", &[], None).write_to(&other);
    ok(store
        .cli(dir)
        .args(["pypi", "import", other.to_str().unwrap()]));
    let global = ["--config", config.to_str().unwrap()];

    let report = gc_with(&store, dir, &global, &["--dry-run", "--grace", "0s"]);
    let versions = |report: &serde_json::Value| -> Vec<String> {
        report["releases_removed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{}/{} {}",
                    r["index"].as_str().unwrap(),
                    r["project"].as_str().unwrap(),
                    r["version"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        versions(&report),
        ["default/gcdemo 2.0", "default/gcdemo 1.0"],
        "{report}"
    );
    let report = gc_with(&store, dir, &global, &["--grace", "0s"]);
    assert_eq!(
        versions(&report),
        ["default/gcdemo 2.0", "default/gcdemo 1.0"],
        "{report}"
    );
    let server = store.serve(dir, &["--admin-token", ADMIN]);
    let page: serde_json::Value = support::http::client()
        .get(server.url("/simple/gcdemo/"))
        .header("accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut files: Vec<&str> = page["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["filename"].as_str().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "gcdemo-10.0-py3-none-any.whl",
            "gcdemo-9.0-py3-none-any.whl"
        ]
    );
    let has = |data: &[u8]| store.has_blob(data);
    assert!(
        !has(&wheels[0].bytes) && !has(&wheels[1].bytes),
        "swept in the same run"
    );
    assert!(has(&wheels[2].bytes) && has(&wheels[3].bytes));
    assert!(
        has(&old_other.bytes),
        "a project no rule names keeps every release"
    );
}

/// `airlock pypi remove`: a version leaves the index (pip no longer sees it), and its
/// wheel and metadata become unreferenced; a version that is not there is refused by name.
async fn a_removed_release_is_unreferenced(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let store = StoreArgs::new(backend, dir);
    let wheels = dir.join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    for version in ["1.0", "2.0"] {
        support::wheels::wheel("gcdemo", version, &[], None).write_to(&wheels);
    }
    ok(store
        .cli(dir)
        .args(["pypi", "import", wheels.to_str().unwrap()]));
    let out = ok(store.cli(dir).args(["pypi", "remove", "gcdemo", "1.0"]));
    assert!(out.contains("removed gcdemo-1.0-py3-none-any.whl"), "{out}");
    let refused = store
        .cli(dir)
        .args(["pypi", "remove", "gcdemo", "7.0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("has no version 7.0"),
        "{stderr}"
    );

    let report = gc(&store, dir, &["--dry-run", "--grace", "0s"]);
    assert_eq!(
        tally(&report, "reclaimable").0,
        2,
        "1.0's wheel and metadata: {report}"
    );
    assert_eq!(
        by(&report, "pypi").0,
        2,
        "2.0's wheel and metadata: {report}"
    );
    let server = store.serve(dir, &["--admin-token", ADMIN]);
    let page: serde_json::Value = support::http::client()
        .get(server.url("/simple/gcdemo/"))
        .header("accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let files: Vec<&str> = page["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["filename"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["gcdemo-2.0-py3-none-any.whl"]);
}

/// A Hub repository deleted through the Hub API (`delete_repo`'s route): its own file is
/// unreferenced, the file whose bytes are also a wheel stays (a cross-protocol dedup
/// never becomes a cross-protocol delete), and so does what another repository shares.
async fn a_deleted_repository_leaves_shared_bytes_referenced(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let store = StoreArgs::new(backend, dir);
    let wheels = dir.join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    let wheel = support::wheels::wheel("gcdemo", "1.0", &[], None);
    let wheel_path = wheel.write_to(&wheels);
    ok(store
        .cli(dir)
        .args(["pypi", "import", wheels.to_str().unwrap()]));
    let unique = support::pseudo_random(50_000, 9);
    for (repo, files) in [
        (
            "org/gone",
            vec![
                ("unique.bin", unique.clone()),
                ("gcdemo.whl", std::fs::read(&wheel_path).unwrap()),
            ],
        ),
        ("org/keep", vec![("keep.txt", b"kept".to_vec())]),
    ] {
        let folder = dir.join(repo.replace('/', "-"));
        std::fs::create_dir_all(&folder).unwrap();
        for (name, bytes) in files {
            std::fs::write(folder.join(name), bytes).unwrap();
        }
        ok(store
            .cli(dir)
            .args(["hf", "import", repo, folder.to_str().unwrap()]));
    }
    let server = store.serve(dir, &["--admin-token", ADMIN]);
    // Its ModelPack image served once: the model images keep a record of that.
    let r = support::http::client()
        .get(server.url("/v2/huggingface.co/org/gone/manifests/main-modelpack"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let records = || store.keys_under("modelimages/models/org--gone/");
    assert_eq!(records().len(), 1, "served.json");
    let r = support::http::client()
        .delete(server.url("/api/repos/delete"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"name": "gone", "organization": "org", "type": "model"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);

    let report = gc(&store, dir, &["--dry-run", "--grace", "0s"]);
    assert_eq!(
        tally(&report, "reclaimable"),
        (1, unique.len() as u64),
        "only the deleted repository's own file: {report}"
    );
    assert_eq!(by(&report, "shared"), (0, 0), "{report}");
    assert_eq!(
        by(&report, "pypi").0,
        2,
        "the wheel and its metadata: {report}"
    );
    assert_eq!(report["model_image_records_removed"], 1, "{report}");
    assert_eq!(records().len(), 1, "a dry run removes nothing");
    let report = gc(&store, dir, &[]);
    assert_eq!(report["model_image_records_removed"], 1, "{report}");
    assert_eq!(records(), Vec::<String>::new());
}

/// `untagged_older_than`: a manifest left untagged goes once old enough; a tagged image
/// stays, and nothing goes while the limit has not passed.
async fn retention_removes_old_untagged_manifests(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let store = StoreArgs::new(backend, dir);
    let rule = |after: &str| {
        let path = dir.join(format!("untagged-{after}.toml"));
        std::fs::write(
            &path,
            format!(
                "[[gc.retention]]\nrepositories = \"docker.io/team/*\"\nuntagged_older_than = \"{after}\"\n"
            ),
        )
        .unwrap();
        path.to_str().unwrap().to_string()
    };
    let server = store.serve(dir, &["--admin-token", ADMIN]);
    let http = support::http::client();
    let base = server.base.clone();
    push_image(&http, &base, ADMIN, "team/app", "v1", &[1u8; 1000]).await;
    let orphan = push_image(&http, &base, ADMIN, "team/app", "tmp", &[2u8; 1000]).await;
    delete_manifest(&http, &base, "team/app", "tmp").await;
    drop(server);

    let report = gc_with(&store, dir, &["--config", &rule("1h")], &[]);
    assert_eq!(
        report["retention"]["untagged"],
        serde_json::json!([]),
        "{report}"
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let report = gc_with(&store, dir, &["--config", &rule("1s")], &["--grace", "0s"]);
    assert_eq!(untagged(&report), [orphan.as_str()], "{report}");
    // Its layer and manifest are nothing's now; the tagged image's stay referenced.
    assert_eq!(tally(&report, "reclaimable").0, 2, "{report}");
    let server = store.serve(dir, &["--admin-token", ADMIN]);
    for (reference, status) in [(orphan.as_str(), 404), ("v1", 200)] {
        let got = manifest_status(&http, &server.base, "team/app", reference).await;
        assert_eq!(got, status, "{reference}");
    }
}

/// `untagged_older_than` never takes what a tag reaches through an index: the children
/// of a tagged multi-platform index stay (they are untagged themselves), an orphan goes.
async fn untagged_retention_keeps_the_children_of_a_tagged_index(backend: Backend) {
    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let store = StoreArgs::new(backend, dir);
    let config = dir.join("untagged.toml");
    std::fs::write(
        &config,
        "[[gc.retention]]\nrepositories = \"docker.io/team/*\"\nuntagged_older_than = \"1s\"\n",
    )
    .unwrap();
    let server = store.serve(dir, &["--admin-token", ADMIN]);
    let http = support::http::client();
    let base = server.base.clone();
    let manifest = |reference: String| {
        let http = http.clone();
        let url = format!("{base}/v2/team/multi/manifests/{reference}");
        async move {
            http.get(url)
                .bearer_auth(ADMIN)
                .header("accept", format!("{MANIFEST}, {INDEX}"))
                .send()
                .await
                .unwrap()
        }
    };
    // Two platform images, their tags then dropped, under one tagged index; an orphan.
    let mut children = Vec::new();
    for (i, arch) in ["amd64", "arm64"].iter().enumerate() {
        let tag = format!("child-{arch}");
        let digest = push_image(
            &http,
            &base,
            ADMIN,
            "team/multi",
            &tag,
            &[i as u8 + 1; 1000],
        )
        .await;
        let size = manifest(digest.clone()).await.bytes().await.unwrap().len();
        delete_manifest(&http, &base, "team/multi", &tag).await;
        children.push(serde_json::json!({
            "mediaType": MANIFEST, "digest": digest, "size": size,
            "platform": {"architecture": arch, "os": "linux"}
        }));
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": INDEX, "manifests": children
    }))
    .unwrap();
    let r = http
        .put(format!("{base}/v2/team/multi/manifests/v1"))
        .bearer_auth(ADMIN)
        .header("content-type", INDEX)
        .body(index)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let orphan = push_image(&http, &base, ADMIN, "team/multi", "tmp", &[9u8; 1000]).await;
    delete_manifest(&http, &base, "team/multi", "tmp").await;
    std::thread::sleep(std::time::Duration::from_millis(1100));

    let report = gc_with(&store, dir, &["--config", config.to_str().unwrap()], &[]);
    assert_eq!(untagged(&report), [orphan.as_str()], "{report}");
    drop(server);
    let server = store.serve(dir, &["--admin-token", ADMIN]);
    let base = server.base.clone();
    for child in &children {
        let digest = child["digest"].as_str().unwrap();
        let got = manifest_status(&http, &base, "team/multi", digest).await;
        assert_eq!(got, 200, "child {digest}");
    }
}

/// Two busybox images sharing their layer, one deleted: the collection removes its config
/// and manifest only (listed in the store itself), and containerd pulls and runs the other.
async fn a_deleted_image_leaves_the_shared_layer_to_the_other(backend: Backend) {
    let dir = tempfile::Builder::new()
        .prefix("gc-ctd")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = dir.path();
    let store = StoreArgs::new(backend, dir);
    let server = store.serve(dir, &["--admin-token", ADMIN]);
    let host = server.base.trim_start_matches("http://").to_string();
    let layout = support::images::busybox_layout(dir, "a", "hello from a");
    ok(std::process::Command::new("umoci").args([
        "config",
        "--image",
        &format!("{}:a", layout.display()),
        "--tag",
        "b",
        "--config.cmd",
        "/bin/echo",
        "--config.cmd",
        "hello from b",
    ]));
    for tag in ["a", "b"] {
        ok(support::images::skopeo(dir).args([
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            "--dest-creds",
            &format!("ci:{ADMIN}"),
            &format!("oci:{}:{tag}", layout.display()),
            &format!("docker://{host}/docker.io/library/busybox:{tag}"),
        ]));
    }
    let http = support::http::client();
    let manifest = |tag: &str| {
        let (http, url) = (
            http.clone(),
            server.url(&format!("/v2/library/busybox/manifests/{tag}")),
        );
        async move {
            let r = http
                .get(url)
                .header("accept", "application/vnd.oci.image.manifest.v1+json")
                .send()
                .await
                .unwrap();
            let digest = r.headers()["docker-content-digest"]
                .to_str()
                .unwrap()
                .to_string();
            let body: serde_json::Value = r.json().await.unwrap();
            (digest, body)
        }
    };
    let (a, a_body) = manifest("a").await;
    let (b, b_body) = manifest("b").await;
    assert_eq!(a_body["layers"], b_body["layers"], "one layer, shared");
    delete_manifest(&http, &server.base, "docker.io/library/busybox", &b).await;

    let before = store.keys_under("blobs/");
    let report = gc(&store, dir, &["--grace", "0s"]);
    let after = store.keys_under("blobs/");
    let mut removed: Vec<String> = before
        .iter()
        .filter(|k| !after.contains(k))
        .map(|k| format!("sha256:{}", k.rsplit('/').next().unwrap()))
        .collect();
    removed.sort();
    let mut expected = vec![
        b.clone(),
        b_body["config"]["digest"].as_str().unwrap().to_string(),
    ];
    expected.sort();
    assert_eq!(removed, expected, "{report}");

    let hosts = dir.join("certs.d");
    ok(std::process::Command::new(support::airlock::BIN)
        .args([
            "oci",
            "hosts-toml",
            "--upstream",
            "docker.io",
            "--airlock",
            &server.base,
            "--write",
        ])
        .arg(&hosts));
    let ctd = support::containerd::Containerd::start(dir);
    let pulled = ok(ctd
        .ctr()
        .args(["images", "pull", "--snapshotter", "native", "--hosts-dir"])
        .arg(&hosts)
        .arg("docker.io/library/busybox:a"));
    assert!(pulled.contains(&a), "{pulled}");
    let out = ok(ctd.ctr().args([
        "run",
        "--snapshotter",
        "native",
        "--rm",
        "docker.io/library/busybox:a",
        &format!("gc-{}", hex::encode(rand::random::<[u8; 4]>())),
    ]));
    assert_eq!(out.trim(), "hello from a", "containerd log:\n{}", ctd.log());
}

/// What killed processes left half-written in the backend (a file in `.tmp/`, an S3
/// multipart upload never completed) goes by age; a dry run only counts it.
async fn unfinished_writes_are_removed_by_age(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let store = StoreArgs::new(backend, dir);
    let report = gc(&store, dir, &["--dry-run"]);
    assert_eq!(report["abandoned_writes"], 0, "{report}");
    store.leave_unfinished_write("blobs/sha256/ab/killed-mid-write");
    assert_eq!(store.unfinished_writes().len(), 1);
    let report = gc(&store, dir, &["--dry-run", "--uploads-older-than", "0s"]);
    assert_eq!(report["abandoned_writes"], 1, "{report}");
    assert_eq!(
        store.unfinished_writes().len(),
        1,
        "a dry run removes nothing"
    );
    let report = gc(&store, dir, &[]);
    assert_eq!(
        report["abandoned_writes"], 0,
        "younger than a week: {report}"
    );
    let report = gc(&store, dir, &["--uploads-older-than", "0s"]);
    assert_eq!(report["abandoned_writes"], 1, "{report}");
    assert_eq!(store.unfinished_writes(), Vec::<String>::new());
}

/// With real clients (skopeo, containerd), which the plain suite does not need.
mod clients {
    use super::*;

    on_both_stores!(
        async,
        ignore_fs = "needs containerd, runc, umoci, skopeo and busybox-static (as root): `bash tests/run-all.sh` sets them up",
        ignore_s3 = "needs containerd, runc, umoci, skopeo, busybox-static and Garage: `bash tests/run-all.sh` sets them up":
        a_deleted_image_leaves_the_shared_layer_to_the_other,
    );
}

on_both_stores!(async:
    a_removed_release_is_unreferenced,
    retention_removes_old_untagged_manifests,
    untagged_retention_keeps_the_children_of_a_tagged_index,
    a_deleted_repository_leaves_shared_bytes_referenced,
    gc_counts_across_protocols_and_sweeps_abandoned_uploads,
    serve_collects_on_its_timer,
    retention_keeps_the_last_pushed_tags,
    unfinished_writes_are_removed_by_age,
    python_retention_keeps_the_last_uploaded_releases,
);
