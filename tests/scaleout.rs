//! Scale-out: three `airlock serve` processes on one Garage bucket, as replicas behind a
//! Service are. Garage ignores conditional writes, so what keeps racing updates from
//! different replicas apart here is the lock Airlock keeps in the bucket itself. Each test
//! spreads one workload over the three: a chunked OCI upload continued on other replicas,
//! sixteen concurrent pushes of one layer, concurrent tag pushes and twine uploads, and
//! concurrent huggingface_hub commits on one branch.

mod support;

use futures::future::join_all;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::airlock::Airlock;
use support::http;
use support::process::venv_dir;
use support::sha256;

use support::cluster::{Cluster, OutputAsync, ADMIN, MUTABLE_TTL};

/// The path and query of an upload `Location`, to send to whichever replica comes next.
fn location_path(r: &reqwest::Response) -> String {
    let location = r.headers()["location"].to_str().unwrap();
    match location.find("/v2/") {
        Some(i) => location[i..].to_string(),
        None => panic!("unexpected upload location {location}"),
    }
}

/// A blob pushed in `chunks`, each request of the upload going to the next replica:
/// POST on `first`, PATCH on the following ones, the closing PUT on the one after.
async fn push_chunked(
    http: &reqwest::Client,
    cluster: &Cluster,
    first: usize,
    name: &str,
    chunks: &[&[u8]],
) -> reqwest::Response {
    let mut r = http
        .post(
            cluster
                .replica(first)
                .url(&format!("/v2/{name}/blobs/uploads/")),
        )
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{:?}", r.text().await);
    let whole: Vec<u8> = chunks.concat();
    let mut offset = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        let replica = cluster.replica(first + 1 + i);
        r = http
            .patch(replica.url(&location_path(&r)))
            .bearer_auth(ADMIN)
            .header("content-type", "application/octet-stream")
            .header(
                "content-range",
                format!("{offset}-{}", offset + chunk.len() - 1),
            )
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{:?}", r.text().await);
        offset += chunk.len();
        assert_eq!(
            r.headers()["range"].to_str().unwrap(),
            format!("0-{}", offset - 1)
        );
    }
    let closing = cluster.replica(first + 1 + chunks.len());
    let path = location_path(&r);
    let sep = if path.contains('?') { '&' } else { '?' };
    http.put(closing.url(&format!("{path}{sep}digest={}", sha256(&whole))))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
}

async fn get_blob(http: &reqwest::Client, replica: &Airlock, name: &str, digest: &str) -> Vec<u8> {
    let r = http
        .get(replica.url(&format!("/v2/{name}/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{digest} from {}", replica.base);
    r.bytes().await.unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Garage: bash tests/run-all.sh"]
async fn a_chunked_oci_upload_continues_on_every_replica() {
    let cluster = Cluster::start();
    let http = http::client();
    let name = "team/chunked";
    let chunks = [
        support::pseudo_random(6 << 20, 1),
        support::pseudo_random(6 << 20, 2),
        support::pseudo_random(1 << 20, 3),
    ];
    let parts: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
    let whole = chunks.concat();
    // POST on replica 0, PATCHes on 1, 2, 0, closing PUT on 1.
    let r = push_chunked(&http, &cluster, 0, name, &parts).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let digest = sha256(&whole);
    assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
    for i in 0..3 {
        assert!(get_blob(&http, cluster.replica(i), name, &digest).await == whole);
    }
    assert_eq!(
        cluster.store.keys_under("uploads/"),
        Vec::<String>::new(),
        "the upload's chunks and state are gone"
    );
    assert_eq!(cluster.store.unfinished_writes(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Garage: bash tests/run-all.sh"]
async fn sixteen_concurrent_pushes_of_one_layer_store_it_once() {
    let cluster = Cluster::start();
    let http = http::client();
    let layer = support::pseudo_random(9 << 20, 16);
    let digest = sha256(&layer);
    // Half push in one monolithic POST, half in two chunks spread over the replicas; every
    // push goes to its own repository, as sixteen images sharing a base layer would.
    let pushes = (0..16).map(|i| {
        let (http, cluster, layer, digest) = (&http, &cluster, &layer, &digest);
        async move {
            let name = format!("team/app-{i}");
            let r = if i % 2 == 0 {
                http.post(
                    cluster
                        .replica(i)
                        .url(&format!("/v2/{name}/blobs/uploads/?digest={digest}")),
                )
                .bearer_auth(ADMIN)
                .body(layer.clone())
                .send()
                .await
                .unwrap()
            } else {
                let (a, b) = layer.split_at(5 << 20);
                push_chunked(http, cluster, i, &name, &[a, b]).await
            };
            (
                name,
                r.status().as_u16(),
                r.text().await.unwrap_or_default(),
            )
        }
    });
    let results = join_all(pushes).await;
    for (name, status, body) in &results {
        assert_eq!(*status, 201, "{name}: {body}");
    }
    // One object holds the layer, whichever replica stored it first.
    let hex = digest.trim_start_matches("sha256:");
    let stored: Vec<String> = cluster
        .store
        .keys_under("blobs/")
        .into_iter()
        .filter(|k| k.ends_with(hex))
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(cluster.store.keys_under("uploads/"), Vec::<String>::new());
    assert_eq!(cluster.store.unfinished_writes(), Vec::<String>::new());
    // Every repository serves it from every replica.
    for (i, (name, _, _)) in results.iter().enumerate() {
        assert!(get_blob(&http, cluster.replica(i + 1), name, &digest).await == layer);
    }
}

/// Polls `read` on a replica until `done` holds, for at most the mutable TTL plus slack
/// (a replica may serve a page it cached before the others changed it until then).
async fn eventually<T: std::fmt::Debug>(
    what: &str,
    mut read: impl AsyncFnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + MUTABLE_TTL + Duration::from_secs(3);
    loop {
        let value = read().await;
        if done(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: still {value:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Garage: bash tests/run-all.sh"]
async fn concurrent_tag_pushes_through_three_replicas_lose_no_tag() {
    let cluster = Cluster::start();
    let http = http::client();
    let name = "team/tags";
    let tags: Vec<String> = (0..12).map(|i| format!("v{i}")).collect();
    join_all(tags.iter().enumerate().map(|(i, tag)| {
        support::push_image(
            &http,
            &cluster.replica(i).base,
            ADMIN,
            name,
            tag,
            tag.as_bytes(),
        )
    }))
    .await;
    for i in 0..3 {
        let listed = eventually(
            "tags/list",
            async || {
                let r = http
                    .get(cluster.replica(i).url(&format!("/v2/{name}/tags/list")))
                    .send()
                    .await
                    .unwrap();
                let body: serde_json::Value = r.json().await.unwrap();
                let mut tags: Vec<String> =
                    serde_json::from_value(body["tags"].clone()).unwrap_or_default();
                tags.sort();
                tags
            },
            |listed| listed.len() == tags.len(),
        )
        .await;
        let mut expected = tags.clone();
        expected.sort();
        assert_eq!(listed, expected);
    }
}
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Garage, twine and pip: bash tests/run-all.sh"]
async fn concurrent_twine_uploads_through_three_replicas_lose_no_file() {
    let cluster = Cluster::start();
    let twine = venv_dir("AIRLOCK_TEST_VENV").join("bin/twine");
    let dists: Vec<PathBuf> = (0..6)
        .map(|i| {
            support::wheels::wheel("shared-project", &format!("1.{i}"), &[], None)
                .write_to(cluster.dir())
        })
        .collect();
    // Six twine processes at once, two per replica.
    let uploads: Vec<_> = dists
        .iter()
        .enumerate()
        .map(|(i, dist)| {
            Command::new(&twine)
                .args(["upload", "--non-interactive", "--disable-progress-bar"])
                .arg("--repository-url")
                .arg(cluster.replica(i).url("/legacy/"))
                .args(["-u", "__token__", "-p", ADMIN])
                .arg(dist)
                .output_async()
        })
        .collect();
    for out in join_all(uploads).await {
        support::process::output_ok(out.unwrap().unwrap(), "twine");
    }
    let http = http::client();
    for i in 0..3 {
        let files = eventually(
            "the project page",
            async || {
                let r = http
                    .get(cluster.replica(i).url("/simple/shared-project/"))
                    .header("accept", "application/vnd.pypi.simple.v1+json")
                    .send()
                    .await
                    .unwrap();
                let page: serde_json::Value = r.json().await.unwrap();
                let mut names: Vec<String> = page["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["filename"].as_str().unwrap().to_string())
                    .collect();
                names.sort();
                names
            },
            |names| names.len() == dists.len(),
        )
        .await;
        let mut expected: Vec<String> = dists
            .iter()
            .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        expected.sort();
        assert_eq!(files, expected);
    }
}

fn output_python(out: std::process::Output) -> String {
    support::process::output_ok(out, "python")
}

/// huggingface_hub pointed at one replica, with a private cache.
fn hf_python(replica: &Airlock, home: &Path) -> Command {
    let mut cmd = support::hf_python(&replica.base, home);
    cmd.env("HF_TOKEN", ADMIN);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Garage and huggingface_hub: bash tests/run-all.sh"]
async fn concurrent_commits_on_one_branch_through_two_replicas_lose_none() {
    const COMMITS: usize = 5;
    let cluster = Cluster::start();
    let home = cluster.dir().join("hf-home");
    output_python(
        hf_python(cluster.replica(0), &home)
            .arg("-c")
            .arg("from huggingface_hub import HfApi; HfApi().create_repo('org/shared')")
            .output()
            .unwrap(),
    );
    // Two writers, one per replica, each making COMMITS commits on main as fast as it can.
    let writers: Vec<_> = ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, writer)| {
            hf_python(cluster.replica(i), &home)
                .arg("-c")
                .arg(format!(
                    r#"
from huggingface_hub import HfApi
api = HfApi()
for n in range({COMMITS}):
    api.upload_file(path_or_fileobj=f"{writer} {{n}}".encode(), path_in_repo=f"{writer}/{{n}}.txt",
                    repo_id="org/shared", commit_message=f"{writer} {{n}}")
"#
                ))
                .output_async()
        })
        .collect();
    for out in join_all(writers).await {
        output_python(out.unwrap().unwrap());
    }
    // Read through the third replica, which has cached nothing of the repository.
    let out = output_python(
        hf_python(cluster.replica(2), &home)
            .arg("-c")
            .arg(
                r#"
from huggingface_hub import HfApi, hf_hub_download
api = HfApi()
files = sorted(f for f in api.list_repo_files("org/shared") if f.endswith(".txt"))
print("files", " ".join(files))
commits = api.list_repo_commits("org/shared")
print("commits", len(commits))
for f in files:
    assert open(hf_hub_download("org/shared", f)).read() == f[0] + " " + f[2], f
"#,
            )
            .output()
            .unwrap(),
    );
    let expected: Vec<String> = ["a", "b"]
        .iter()
        .flat_map(|w| (0..COMMITS).map(move |n| format!("{w}/{n}.txt")))
        .collect();
    assert!(
        out.contains(&format!("files {}", expected.join(" "))),
        "{out}"
    );
    // The initial commit of create_repo plus every upload, in one line of history.
    assert!(
        out.contains(&format!("commits {}", 2 * COMMITS + 1)),
        "{out}"
    );
}
