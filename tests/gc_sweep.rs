//! The sweep racing writers: `airlock gc` removing what nothing references while sixteen
//! skopeo pushes, spread over three replicas on one Garage bucket, publish images whose
//! layers were unreferenced when the collection marked. Every image a push reported as
//! pushed must pull and verify afterwards; a push refused because the collection removed
//! its layer first says so (MANIFEST_BLOB_UNKNOWN) and succeeds when run again. Once with
//! the collection running to the end, once with it killed (`kill -9`) halfway, after
//! which the next collection takes over its lease and finishes.

mod support;

use futures::future::join_all;
use futures::StreamExt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::cluster::{Cluster, OutputAsync, ADMIN};
use support::images::{skopeo, tiny_layout};
use support::{pseudo_random, push_image, sha256};

const IMAGES: usize = 16;
/// Unreferenced blobs besides the images' layers, so that the sweep runs long enough to
/// race the pushes (and to be killed halfway).
const FILLER: usize = 2500;
/// Pushes per image at most (a refused push is run again, as its user would).
const ATTEMPTS: usize = 8;

/// `airlock gc --grace 0s` in the background, its log collected line by line.
struct Collection {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Collection {
    fn start(cluster: &Cluster) -> Collection {
        let mut child = cluster
            .store
            .cli(cluster.dir())
            .args(["gc", "--json", "--grace", "0s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Collection { child, log }
    }

    /// Waits until the log shows `needle` (or the collection ended without it).
    fn wait_for(&mut self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if self.log.lock().unwrap().contains(needle) {
                return true;
            }
            if self.child.try_wait().unwrap().is_some() {
                return self.log.lock().unwrap().contains(needle);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no {needle:?} in the collection's log:\n{}", self.log());
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Its JSON report, once it ended successfully.
    fn report(self) -> serde_json::Value {
        let out = self.child.wait_with_output().unwrap();
        let log = self.log.lock().unwrap().clone();
        assert!(out.status.success(), "gc failed:\n{log}");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}:\n{log}"))
    }
}

fn host(cluster: &Cluster, i: usize) -> String {
    cluster
        .replica(i)
        .base
        .trim_start_matches("http://")
        .to_string()
}

/// Each image's layout (tag `new`), after an image of the same layer was pushed to its
/// repository and deleted: the layer is linked there and unreferenced. Plus FILLER
/// unreferenced blobs pushed to a repository of their own.
async fn prepare(cluster: &Cluster) -> Vec<(PathBuf, Vec<u8>)> {
    let http = support::http::client();
    let mut layouts = Vec::new();
    for i in 0..IMAGES {
        // Seeds two apart: `pseudo_random` sets the low bit (one layer per image).
        let layer = pseudo_random(256 << 10, 1000 + 2 * i as u32);
        let base = &cluster.replica(i).base;
        let name = format!("team/img-{i}");
        let old = push_image(&http, base, ADMIN, &name, "old", &layer).await;
        let r = http
            .delete(format!("{base}/v2/{name}/manifests/{old}"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let layout = cluster.dir().join(format!("layout-{i}"));
        tiny_layout(&layout, "new", &layer);
        layouts.push((layout, layer));
    }
    let pushes = (0..FILLER).map(|n| {
        let (http, base) = (&http, &cluster.replica(n).base);
        async move {
            let blob = format!("filler {n}").into_bytes();
            let r = http
                .post(format!(
                    "{base}/v2/team/filler/blobs/uploads/?digest={}",
                    sha256(&blob)
                ))
                .bearer_auth(ADMIN)
                .body(blob)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
    });
    futures::stream::iter(pushes)
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    layouts
}

/// Pushes image `i` with skopeo until a push succeeds; the failures' messages.
async fn push_until_pushed(cluster: &Cluster, i: usize, layout: &Path) -> Vec<String> {
    let mut refusals = Vec::new();
    let home = cluster.dir().join(format!("skopeo-push-{i}"));
    std::fs::create_dir_all(&home).unwrap();
    for _ in 0..ATTEMPTS {
        let out = skopeo(&home)
            .args([
                "copy",
                "--preserve-digests",
                "--dest-tls-verify=false",
                "--dest-creds",
                &format!("ci:{ADMIN}"),
                &format!("oci:{}:new", layout.display()),
                &format!("docker://{}/team/img-{i}:new", host(cluster, i)),
            ])
            .output_async()
            .await
            .unwrap()
            .unwrap();
        if out.status.success() {
            return refusals;
        }
        refusals.push(String::from_utf8_lossy(&out.stderr).to_string());
    }
    panic!("image {i} was never pushed: {refusals:#?}");
}

/// Every image pulls from another replica than it was pushed to, and its layer is the
/// layer pushed (skopeo verifies each blob's digest as it copies).
async fn every_image_pulls(cluster: &Cluster, layouts: &[(PathBuf, Vec<u8>)]) {
    let pulls = layouts
        .iter()
        .enumerate()
        .map(|(i, (_, layer))| async move {
            let out_dir = cluster.dir().join(format!("pulled-{i}"));
            let _ = std::fs::remove_dir_all(&out_dir);
            let home = cluster.dir().join(format!("skopeo-pull-{i}"));
            std::fs::create_dir_all(&home).unwrap();
            let out = skopeo(&home)
                .args([
                    "copy",
                    "--src-tls-verify=false",
                    "--dest-oci-accept-uncompressed-layers",
                    &format!("docker://{}/team/img-{i}:new", host(cluster, i + 1)),
                    &format!("oci:{}:new", out_dir.display()),
                ])
                .output_async()
                .await
                .unwrap()
                .unwrap();
            assert!(
                out.status.success(),
                "image {i} does not pull: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let hex = sha256(layer);
            let path = out_dir
                .join("blobs/sha256")
                .join(hex.trim_start_matches("sha256:"));
            let pulled = std::fs::read(&path).unwrap_or_else(|e| {
                let names: Vec<_> = std::fs::read_dir(out_dir.join("blobs/sha256"))
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                panic!("image {i}: {e}: the layer {hex} is not among {names:?}")
            });
            assert!(pulled == *layer, "image {i}: another layer");
        });
    join_all(pulls).await;
}

/// How many of the filler blobs the store still holds (listed in the bucket directly).
fn filler_left(cluster: &Cluster) -> usize {
    let stored: std::collections::HashSet<String> = cluster
        .store
        .keys_under("blobs/")
        .into_iter()
        .filter_map(|k| k.rsplit('/').next().map(str::to_string))
        .collect();
    (0..FILLER)
        .filter(|n| {
            let digest = sha256(format!("filler {n}").as_bytes());
            stored.contains(digest.trim_start_matches("sha256:"))
        })
        .count()
}

/// The refusals a push may meet: the collection removed the layer before the manifest
/// came, and the registry says which blob to push again.
fn assert_refusals_name_the_blob(refusals: &[String]) {
    for r in refusals {
        assert!(
            r.contains("MANIFEST_BLOB_UNKNOWN") || r.contains("manifest blob unknown"),
            "a push failed for another reason: {r}"
        );
    }
}

async fn pushes_race_a_collection(kill_halfway: bool) {
    let cluster = Cluster::start();
    let layouts = prepare(&cluster).await;
    let mut gc = Collection::start(&cluster);
    // The pushes begin once the collection has marked: every layer they name is then a
    // candidate, and only the claims keep it.
    assert!(gc.wait_for(" marked"), "{}", gc.log());
    let pushes: Vec<_> = layouts
        .iter()
        .enumerate()
        .map(|(i, (layout, _))| {
            let cluster = &cluster;
            async move { push_until_pushed(cluster, i, layout).await }
        })
        .collect();
    let pushing = join_all(pushes);
    let refusals = if kill_halfway {
        let killed = tokio::task::spawn_blocking(move || {
            assert!(gc.wait_for("sweeping"), "{}", gc.log());
            gc.child.kill().unwrap();
            gc.child.wait().unwrap();
            gc.log()
        });
        let (refusals, log) = tokio::join!(pushing, killed);
        let log = log.unwrap();
        // Nothing else removes the filler: what is left is what the killed one left.
        let left = filler_left(&cluster);
        assert!(
            left > 0 && left < FILLER,
            "killed halfway: {left} of {FILLER} left\n{log}"
        );
        refusals
    } else {
        let refusals = pushing.await;
        let report = tokio::task::spawn_blocking(move || gc.report())
            .await
            .unwrap();
        assert!(
            report["swept"]["blobs"]["count"].as_u64().unwrap() >= FILLER as u64,
            "{report}"
        );
        refusals
    };
    for r in &refusals {
        assert_refusals_name_the_blob(r);
    }
    let refused: usize = refusals.iter().map(Vec::len).sum();
    eprintln!("{IMAGES} images pushed; {refused} push(es) refused and run again");
    every_image_pulls(&cluster, &layouts).await;

    // The next collection finishes the work (taking over a dead collection's lease at
    // once, on the same host): nothing unreferenced is left, the images still pull.
    let report = tokio::task::spawn_blocking({
        let mut cmd = cluster.store.cli(cluster.dir());
        cmd.args(["gc", "--json", "--grace", "0s"]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["swept"]["deferred"], 0, "{report}");
    let reclaimable = report["reclaimable"]["count"].as_u64().unwrap();
    assert_eq!(
        report["swept"]["blobs"]["count"].as_u64().unwrap(),
        reclaimable,
        "{report}"
    );
    assert_eq!(cluster.store.keys_under("gc/sweeps/"), Vec::<String>::new());
    assert_eq!(filler_left(&cluster), 0);
    every_image_pulls(&cluster, &layouts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Garage and skopeo: bash tests/run-all.sh"]
async fn sixteen_pushes_through_three_replicas_race_a_collection() {
    pushes_race_a_collection(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Garage and skopeo: bash tests/run-all.sh"]
async fn sixteen_pushes_race_a_collection_killed_halfway() {
    pushes_race_a_collection(true).await;
}
