//! Pull-through eviction under a size budget, on the filesystem store and on Garage: a
//! downstream Airlock pulls wheels through from an upstream one; `airlock gc` evicts the
//! least recently read copies until the budget holds, never a wheel uploaded here, and a
//! client reading an evicted file gets it again from the upstream: while collections run
//! and clients keep downloading, no listed file ever answers 404.

mod support;

use std::time::Duration;
use support::backend::Backend;
use support::backend::StoreArgs;
use support::pseudo_random;
use support::pullthrough::{
    downstream, downstream_of, seed_model, seed_tiny, seed_wheel, upstream, Node,
};
use support::wheels::{wheel_with_data, Dist};

const WHEELS: usize = 6;

/// The downstream's URL of `dist`'s file, from its project page.
async fn file_url(http: &reqwest::Client, down: &Node, dist: &Dist, project: &str) -> String {
    let page: serde_json::Value = http
        .get(down.server.url(&format!("/simple/{project}/")))
        .header("accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let file = page["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["filename"] == dist.filename.as_str())
        .unwrap_or_else(|| panic!("{} not listed: {page}", dist.filename));
    reqwest::Url::parse(&down.server.url(&format!("/simple/{project}/")))
        .unwrap()
        .join(file["url"].as_str().unwrap())
        .unwrap()
        .to_string()
}

/// Downloads `url`, which must answer `dist`'s bytes.
async fn download(http: &reqwest::Client, url: &str, dist: &Dist) {
    let r = http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    assert!(r.bytes().await.unwrap() == dist.bytes, "{url}: other bytes");
}

fn gc(down: &Node) -> serde_json::Value {
    let out = down
        .store
        .cli(&down.dir)
        .args(["--config", down.config.to_str().unwrap()])
        .args(["gc", "--json", "--grace", "0s"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

async fn least_recently_read_copies_go_first(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream(Backend::Fs, dir.path(), "");
    let wheels_dir = dir.path().join("wheels");
    std::fs::create_dir_all(&wheels_dir).unwrap();
    let dists: Vec<Dist> = (0..WHEELS)
        .map(|i| {
            let data = pseudo_random(100 << 10, 50 + 2 * i as u32);
            let dist = wheel_with_data(&format!("cached{i}"), "1.0", &[], None, data);
            dist.write_to(&wheels_dir);
            dist
        })
        .collect();
    up.import(&["pypi", "import", wheels_dir.to_str().unwrap()]);
    let down = downstream_of(
        backend,
        dir.path(),
        "pypi",
        &format!("{}/simple/", up.server.base),
        "[gc]\npull_through_budget = \"350KiB\"\naccess_flush = \"500ms\"\n",
    );
    // A wheel uploaded to the downstream itself: never evicted, whatever its size.
    let local_dir = dir.path().join("local");
    std::fs::create_dir_all(&local_dir).unwrap();
    let local = wheel_with_data("homegrown", "1.0", &[], None, pseudo_random(400 << 10, 99));
    local.write_to(&local_dir);
    down.import(&["pypi", "import", local_dir.to_str().unwrap()]);

    let http = support::http::following_redirects();
    let mut urls = Vec::new();
    for (i, dist) in dists.iter().enumerate() {
        urls.push(file_url(&http, &down, dist, &format!("cached{i}")).await);
    }
    // Read in order, a second apart, then the first again: least recent are 1, 2, 3...
    for (url, dist) in urls.iter().zip(&dists) {
        download(&http, url, dist).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    download(&http, &urls[0], &dists[0]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // one flush of the reads

    let report = gc(&down);
    let evicted: Vec<usize> = (0..WHEELS)
        .filter(|&i| !down.store.has_blob(&dists[i].bytes))
        .collect();
    assert_eq!(evicted, [1, 2, 3], "{report}");
    assert_eq!(report["evicted"]["count"], 3, "{report}");
    assert!(down.store.has_blob(&local.bytes), "the local wheel stays");
    assert!(
        report["pull_through"]["bytes"].as_u64().unwrap() > 350 << 10,
        "{report}"
    );
    // Still listed, and fetched again when read.
    download(&http, &urls[1], &dists[1]).await;
    assert!(down.store.has_blob(&dists[1].bytes));

    // Collections while clients keep downloading every file: never a 404.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dists = std::sync::Arc::new(dists);
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (http, urls, dists, stop) =
                (http.clone(), urls.clone(), dists.clone(), stop.clone());
            tokio::spawn(async move {
                let mut reads = 0;
                for round in 0..500 {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let i = (round + c) % WHEELS;
                    download(&http, &urls[i], &dists[i]).await;
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let mut evicted = 0;
    for _ in 0..3 {
        let down = &down;
        let report = tokio::task::spawn_blocking({
            let cmd_dir = down.dir.clone();
            let mut cmd = down.store.cli(&cmd_dir);
            cmd.args(["--config", down.config.to_str().unwrap()])
                .args(["gc", "--json", "--grace", "0s"]);
            move || cmd.output().unwrap()
        })
        .await
        .unwrap();
        assert!(report.status.success());
        let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
        evicted += report["evicted"]["count"].as_u64().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut reads = 0;
    for client in clients {
        reads += client.await.unwrap();
    }
    assert!(reads > 0 && evicted > 0, "{reads} reads, {evicted} evicted");

    // Where nothing could fetch them again (no upstream, as on the far side of a bundle
    // that carried pull-through's documents), copies are never evicted.
    let isolated = down.dir.join("no-upstream.toml");
    std::fs::write(&isolated, "[gc]\npull_through_budget = \"1KiB\"\n").unwrap();
    let out = down
        .store
        .cli(&down.dir)
        .args(["--config", isolated.to_str().unwrap()])
        .args(["gc", "--json", "--grace", "0s"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["evicted"]["count"], 0, "{report}");
    assert_eq!(report["pull_through"]["count"], 0, "{report}");
    eprintln!("{reads} downloads during 3 collections that evicted {evicted} copies: none failed");
}

/// The same for OCI images pulled through: layers beyond the budget go, least recently
/// pulled first, and an evicted layer is pulled from the upstream again; manifests (small,
/// and what a tag resolves to) always stay.
async fn least_recently_pulled_layers_go_first(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream(Backend::Fs, dir.path(), "");
    // Seeds two apart: `pseudo_random` sets the low bit, so 70 and 71 are one seed.
    let layers: Vec<Vec<u8>> = (0..4)
        .map(|i| pseudo_random(100 << 10, 70 + 2 * i))
        .collect();
    for (i, layer) in layers.iter().enumerate() {
        seed_tiny(&up, &format!("img{i}"), "v1", layer);
    }
    let down = downstream_of(
        backend,
        dir.path(),
        "oci",
        &up.server.base,
        "[gc]\npull_through_budget = \"250KiB\"\naccess_flush = \"500ms\"\n",
    );
    let http = support::http::client();
    let pull = |i: usize| {
        let (http, base, layer) = (http.clone(), down.server.base.clone(), layers[i].clone());
        async move {
            let r = http
                .get(format!("{base}/v2/library/img{i}/manifests/v1"))
                .header("accept", "application/vnd.oci.image.manifest.v1+json")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "manifest of img{i}");
            let r = http
                .get(format!(
                    "{base}/v2/library/img{i}/blobs/{}",
                    support::sha256(&layer)
                ))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "layer of img{i}");
            assert!(r.bytes().await.unwrap() == layer, "img{i}: other bytes");
        }
    };
    for i in 0..4 {
        pull(i).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    pull(0).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let report = gc(&down);
    let evicted: Vec<usize> = (0..4)
        .filter(|&i| !down.store.has_blob(&layers[i]))
        .collect();
    assert_eq!(evicted, [1, 2], "{report}");
    for i in 0..4 {
        pull(i).await;
    }
    assert!(down.store.has_blob(&layers[1]), "pulled again");
}

/// The same for Hub repositories pulled through: the files of the two least recently
/// downloaded models are evicted, and each downloads again, from the upstream.
async fn least_recently_downloaded_model_files_go_first(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream(Backend::Fs, dir.path(), "");
    let weights: Vec<Vec<u8>> = (0..4)
        .map(|i| pseudo_random(100 << 10, 90 + 2 * i))
        .collect();
    for (i, w) in weights.iter().enumerate() {
        seed_model(&up, &format!("org/m{i}"), &[("w.bin", w)]);
    }
    let down = downstream_of(
        backend,
        dir.path(),
        "hf",
        &up.server.base,
        "[gc]\npull_through_budget = \"250KiB\"\naccess_flush = \"500ms\"\n",
    );
    let http = support::http::following_redirects();
    let download = |i: usize| {
        let (http, url, w) = (
            http.clone(),
            down.server.url(&format!("/org/m{i}/resolve/main/w.bin")),
            weights[i].clone(),
        );
        async move {
            let r = http.get(&url).send().await.unwrap();
            assert_eq!(r.status(), 200, "{url}");
            assert!(r.bytes().await.unwrap() == w, "m{i}: other bytes");
        }
    };
    for i in 0..4 {
        download(i).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    download(0).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let report = gc(&down);
    let evicted: Vec<usize> = (0..4)
        .filter(|&i| !down.store.has_blob(&weights[i]))
        .collect();
    assert_eq!(evicted, [1, 2], "{report}");
    // The upstream's downloads of model files, by its access log.
    let file_gets = || {
        up.server
            .log()
            .lines()
            .filter(|l| l.contains("method=GET") && l.contains("/resolve/"))
            .count()
    };
    let gets_before = file_gets();
    for i in 0..4 {
        download(i).await;
    }
    assert!(down.store.has_blob(&weights[1]), "downloaded again");
    assert_eq!(
        file_gets() - gets_before,
        2,
        "only the evicted files came from the upstream again"
    );
}

/// What one Airlock pulled through arrives in another by bundle import, and there it is
/// local: with an upstream configured and a budget of one byte, nothing is evicted (the
/// upstream might not have it, and the operator imported it to keep it).
async fn imported_copies_are_never_evicted(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream(Backend::Fs, dir.path(), "");
    let wheel = seed_wheel(&up, "carried", "1.0");
    let weights = pseudo_random(50 << 10, 120);
    seed_model(&up, "org/carried", &[("w.bin", &weights)]);
    let layer = pseudo_random(50 << 10, 122);
    seed_tiny(&up, "carried", "v1", &layer);

    let down = downstream(Backend::Fs, dir.path(), &up, "");
    let http = support::http::following_redirects();
    let url = file_url(&http, &down, &wheel, "carried").await;
    download(&http, &url, &wheel).await;
    let r = http
        .get(down.server.url("/org/carried/resolve/main/w.bin"))
        .send()
        .await
        .unwrap();
    assert!(r.status() == 200 && r.bytes().await.unwrap() == weights);
    let r = http
        .get(down.server.url("/v2/library/carried/manifests/v1"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(down.server.url(&format!(
            "/v2/library/carried/blobs/{}",
            support::sha256(&layer)
        )))
        .send()
        .await
        .unwrap();
    assert!(r.status() == 200 && r.bytes().await.unwrap() == layer);
    let bundle = dir.path().join("carried.tar");
    down.import(&["bundle", "export", "--out", bundle.to_str().unwrap()]);

    let base = &up.server.base;
    let receiver = Node::start(
        &dir.path().join("receiver"),
        StoreArgs::new(backend, &dir.path().join("receiver")),
        &format!(
            "[oci]\nupstream = \"{base}\"\n[pypi]\nupstream = \"{base}/simple/\"\n\
             [hf]\nupstream = \"{base}\"\n[gc]\npull_through_budget = \"1B\"\n"
        ),
        None,
    );
    receiver.import(&["bundle", "import", bundle.to_str().unwrap()]);
    let report = gc(&receiver);
    assert_eq!(report["pull_through"]["count"], 0, "{report}");
    assert_eq!(report["evicted"]["count"], 0, "{report}");
    for (what, bytes) in [
        ("wheel", &wheel.bytes),
        ("model file", &weights),
        ("layer", &layer),
    ] {
        assert!(receiver.store.has_blob(bytes), "the {what} stays: {report}");
    }
}

on_both_stores!(async:
    imported_copies_are_never_evicted,
    least_recently_read_copies_go_first,
    least_recently_pulled_layers_go_first,
    least_recently_downloaded_model_files_go_first,
);
