//! The scale bench's store generator. Everything is written through the library's own
//! domain write APIs, as uploads and pushes would write it (`Index::add_file` after
//! `BlobStore::put`; `Registry::link_blob` + `Registry::update_repo` as a manifest push
//! does; `Repos::create` + `Repos::commit_changes` as the Hub's commit API does). No
//! listing document (catalog.json, models.json, a RepoDoc) is ever
//! written here directly: when a write path rewrites a whole listing per item, the
//! generation rate shows it, and that is one of the bench's findings.
//!
//! Content is small and distinct (derived from the item's index), and real enough to
//! render: PEP 427 wheel and sdist filenames with versions, OCI manifests whose
//! descriptors carry the right digests and sizes (layers are real tiny tars), Hub files
//! with git blob oids.

use airlock::digest::{Algorithm, Digest};
use airlock::hf::model::{RepoRef, RepoType};
use airlock::hf::repo::{Op, Parent, Repos};
use airlock::oci::manifest;
use airlock::oci::registry::{ManifestEntry, Registry};
use airlock::pypi::project::FileEntry;
use airlock::pypi::Index;
use airlock::store::{bytes_stream, Stores};
use anyhow::{anyhow, Context as _, Result};
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const UPLOAD_TIME: &str = "2026-01-01T00:00:00.000000Z";
const AUTHOR: &str = "scale-bench";

/// Names of everything the generator makes, shared with the measuring side.
pub mod names {
    pub const BIG_PROJECT: &str = "big-project";
    pub const BIG_TAGS_REPO: &str = "docker.io/scale/big-tags";
    pub const MULTIARCH_REPO: &str = "docker.io/scale/multiarch";
    pub const BIG_HF: &str = "scale/big-files";
    pub const HISTORY_HF: &str = "scale/long-history";

    pub fn project(i: usize) -> String {
        format!("proj_{i:06}")
    }
    /// The normalized form (PEP 503) the URLs use.
    pub fn project_url(i: usize) -> String {
        format!("proj-{i:06}")
    }
    pub fn image_repo(i: usize) -> String {
        format!("docker.io/scale/repo_{i:05}")
    }
    pub fn model(i: usize) -> String {
        format!("scale/model-{i:05}")
    }
    pub fn tag(k: usize) -> String {
        format!("t{k:05}")
    }
    pub fn big_hf_file(k: usize) -> String {
        format!("file_{k:06}.txt")
    }
}

/// The constant "large items" every size holds.
#[derive(Clone, Debug)]
pub struct Large {
    pub pypi_files: usize,
    pub tags: usize,
    pub platforms: usize,
    pub hf_files: usize,
    pub commits: usize,
}

impl Large {
    /// Defaults, overridden by `AIRLOCK_SCALE_LARGE=pypi_files=5000,tags=10000,...`.
    pub fn from_env() -> Large {
        let mut large = Large {
            pypi_files: 5000,
            // 10,000 took 238 s to push here (each push rewrites the whole repository
            // document: 246 tags/s at first, 19 at the end); 5,000 takes about a minute.
            tags: 5_000,
            platforms: 50,
            hf_files: 100_000,
            commits: 1000,
        };
        if let Ok(spec) = std::env::var("AIRLOCK_SCALE_LARGE") {
            for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
                let (key, value) = part
                    .split_once('=')
                    .unwrap_or_else(|| panic!("AIRLOCK_SCALE_LARGE: `{part}` is not key=value"));
                let value: usize = value.trim().parse().unwrap_or_else(|_| {
                    panic!("AIRLOCK_SCALE_LARGE: `{part}`: the value is not a count")
                });
                match key.trim() {
                    "pypi_files" => large.pypi_files = value.max(1),
                    "tags" => large.tags = value.max(1),
                    "platforms" => large.platforms = value.max(1),
                    "hf_files" => large.hf_files = value.max(1),
                    "commits" => large.commits = value.max(1),
                    other => panic!("AIRLOCK_SCALE_LARGE: unknown key `{other}`"),
                }
            }
        }
        large
    }
}

/// One generation step's outcome: what it made, how fast, and how the rate moved
/// between its first and last tenth (a falling rate means a cost growing per item).
#[derive(Clone, Debug)]
pub struct Step {
    pub name: String,
    pub items: usize,
    pub unit: &'static str,
    pub seconds: f64,
    /// Items per second over the first and the last tenth of the items.
    pub first_rate: f64,
    pub last_rate: f64,
    /// Whole-item retries after a write path gave up on conflicting concurrent updates.
    pub retries: u64,
    /// The first such error, as the write path worded it.
    pub retry_sample: Option<String>,
    pub error: Option<String>,
}

impl Step {
    pub fn rate(&self) -> f64 {
        self.items as f64 / self.seconds.max(1e-9)
    }
}

/// Completion instants of a step's items, for the first/last tenth rates.
struct Progress {
    started: Instant,
    done: Mutex<Vec<Duration>>,
    retries: AtomicU64,
    retry_sample: Mutex<Option<String>>,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            started: Instant::now(),
            done: Mutex::new(Vec::new()),
            retries: AtomicU64::new(0),
            retry_sample: Mutex::new(None),
        }
    }

    fn tick(&self) {
        let at = self.started.elapsed();
        self.done.lock().unwrap().push(at);
    }

    fn finish(&self, name: &str, unit: &'static str, error: Option<String>) -> Step {
        let seconds = self.started.elapsed().as_secs_f64();
        let mut done = self.done.lock().unwrap().clone();
        done.sort();
        let n = done.len();
        let tenth = (n / 10).max(1);
        let (first_rate, last_rate) = if n >= 2 {
            let first = done[tenth.min(n) - 1].as_secs_f64();
            let last_start = done[n - tenth.min(n - 1) - 1].as_secs_f64();
            let last = done[n - 1].as_secs_f64();
            (
                tenth as f64 / first.max(1e-9),
                tenth as f64 / (last - last_start).max(1e-9),
            )
        } else {
            (f64::NAN, f64::NAN)
        };
        Step {
            name: name.to_string(),
            items: n,
            unit,
            seconds,
            first_rate,
            last_rate,
            retries: self.retries.load(Ordering::Relaxed),
            retry_sample: self.retry_sample.lock().unwrap().clone(),
            error,
        }
    }
}

fn err(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("{e:?}")
}

/// Whether a write path gave up because other writers kept winning the conditional put
/// of the same document (a retry of the whole item is then what a client would do).
fn lost_race(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}");
    text.contains("conflicting concurrent updates") || text.contains("changing too fast")
}

/// Runs `make` again (at most 20 times) while it fails only by losing races.
async fn retrying<F, Fut>(progress: &Progress, mut make: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    for attempt in 0.. {
        match make().await {
            Err(e) if attempt < 20 && lost_race(&e) => {
                progress.retries.fetch_add(1, Ordering::Relaxed);
                progress
                    .retry_sample
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| format!("{e:#}"));
                tokio::time::sleep(Duration::from_millis(5 * (attempt + 1))).await;
            }
            other => return other,
        }
    }
    unreachable!()
}

/// `len` bytes of printable filler that starts with `seed` (so every item differs).
fn content(seed: &str, len: usize) -> Bytes {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        out.extend_from_slice(seed.as_bytes());
        out.push(b'\n');
    }
    out.truncate(len);
    Bytes::from(out)
}

/// A tar holding one small file: a real, tiny image layer.
fn tiny_tar(name: &str, data: &[u8]) -> Bytes {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(1_767_225_600);
    header.set_cksum();
    builder.append_data(&mut header, name, data).unwrap();
    Bytes::from(builder.into_inner().unwrap())
}

pub struct Generator {
    pub stores: Stores,
    index: Index,
    registry: Registry,
    repos: Repos,
    concurrency: usize,
}

impl Generator {
    pub fn new(stores: Stores, concurrency: usize) -> Generator {
        Generator {
            index: Index::new(airlock::pypi::DEFAULT_INDEX, stores.docs.clone()),
            registry: Registry::new(stores.docs.clone(), stores.blobs.clone()),
            repos: Repos::new(stores.docs.clone(), stores.blobs.clone()),
            stores,
            concurrency: concurrency.max(1),
        }
    }

    async fn put_blob(&self, bytes: Bytes) -> Result<Digest> {
        let digest = Digest::of_bytes(Algorithm::Sha256, &bytes);
        let len = bytes.len() as u64;
        self.stores
            .blobs
            .put(&digest, bytes_stream(bytes), Some(len))
            .await
            .map_err(err)?;
        Ok(digest)
    }

    /// Entries of the three listings as the store holds them now: PyPI projects, OCI
    /// catalog, Hub models (a write path that lost its listing update shows here).
    pub async fn listed(&self) -> (usize, usize, usize) {
        let projects = self.index.names().await.map_or(0, |v| v.len());
        let images = self.registry.all_names().await.map_or(0, |c| c.len());
        let models = self
            .repos
            .list(RepoType::Model)
            .await
            .map_or(0, |l| l.len());
        (projects, images, models)
    }

    /// Project documents the default index holds (listed or not), counted by listing
    /// the store under `pypi/default/projects/`, a page at a time.
    pub async fn stored_projects(&self) -> Result<usize> {
        let mut count = 0;
        let mut after: Option<String> = None;
        for _ in 0..100_000 {
            let page = self
                .stores
                .store
                .list("pypi/default/projects/", after.as_deref(), 1000)
                .await
                .map_err(err)?;
            count += page
                .objects
                .iter()
                .filter(|o| o.key.as_str().ends_with(".json"))
                .count();
            match page.next_start_after {
                Some(next) => after = Some(next),
                None => return Ok(count),
            }
        }
        Err(anyhow!("too many pages"))
    }

    // ---- PyPI ----

    /// One file of a project: the body stored as a blob, then listed by `add_file`.
    async fn pypi_file(
        &self,
        display: &str,
        filename: &str,
        version: &str,
        kind: &str,
    ) -> Result<()> {
        let body = content(&format!("{filename} scale-bench"), 96 + filename.len() % 64);
        let size = body.len();
        let digest = self.put_blob(body).await?;
        let entry: FileEntry = serde_json::from_value(serde_json::json!({
            "filename": filename,
            "version": version,
            "kind": kind,
            "sha256": digest.hex(),
            "size": size,
            "requires_python": ">=3.8",
            "upload_time": UPLOAD_TIME,
        }))?;
        self.index.add_file(display, entry).await.map_err(err)?;
        Ok(())
    }

    async fn pypi_project(&self, i: usize) -> Result<()> {
        let name = names::project(i);
        for (version, kind, filename) in [
            ("1.0", "wheel", format!("{name}-1.0-py3-none-any.whl")),
            ("1.1", "wheel", format!("{name}-1.1-py3-none-any.whl")),
            ("1.1", "sdist", format!("{name}-1.1.tar.gz")),
        ] {
            self.pypi_file(&name, &filename, version, kind).await?;
        }
        Ok(())
    }

    /// Projects number `items`, of 3 files each, `concurrency` projects at a time.
    pub async fn pypi_projects(&self, items: std::ops::Range<usize>) -> Step {
        let progress = Progress::new();
        let result = futures::stream::iter(items)
            .map(|i| {
                let progress = &progress;
                async move {
                    retrying(progress, || self.pypi_project(i)).await?;
                    progress.tick();
                    Ok::<_, anyhow::Error>(())
                }
            })
            .buffer_unordered(self.concurrency)
            .try_collect::<()>()
            .await;
        progress.finish(
            "pypi: projects of 3 files",
            "projects",
            result.err().map(|e| format!("{e:#}")),
        )
    }

    /// One project with `files` files, added one at a time (as uploads arrive): every
    /// `add_file` is a read-modify-write of the project document.
    pub async fn pypi_big_project(&self, files: usize) -> Step {
        let progress = Progress::new();
        let mut error = None;
        for k in 0..files {
            let version = format!("{}.{}.{}", k / 100, (k / 10) % 10, k % 10);
            let (kind, filename) = if k % 2 == 0 {
                ("wheel", format!("big_project-{version}-py3-none-any.whl"))
            } else {
                ("sdist", format!("big_project-{version}.tar.gz"))
            };
            if let Err(e) = retrying(&progress, || {
                self.pypi_file("big_project", &filename, &version, kind)
            })
            .await
            {
                error = Some(format!("after {k} files: {e:#}"));
                break;
            }
            progress.tick();
        }
        progress.finish(&format!("pypi: one project, {files} files"), "files", error)
    }

    // ---- OCI ----

    /// A config (whose diff_id names the layer) and a tiny tar layer, stored and linked.
    async fn oci_config_and_layer(
        &self,
        repo: &str,
        seed: &str,
        platform: (&str, Option<&str>),
    ) -> Result<(serde_json::Value, serde_json::Value)> {
        let layer = tiny_tar(
            "hello.txt",
            &content(&format!("layer of {seed}"), 64 + seed.len() % 64),
        );
        let layer_size = layer.len();
        let layer_digest = self.put_blob(layer).await?;
        let mut config = serde_json::json!({
            "architecture": platform.0,
            "os": "linux",
            "config": {"Labels": {"scale-bench": seed}},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]},
        });
        if let Some(variant) = platform.1 {
            config["variant"] = variant.into();
        }
        let config = Bytes::from(serde_json::to_vec(&config)?);
        let config_size = config.len();
        let config_digest = self.put_blob(config).await?;
        self.registry
            .link_blob(repo, &config_digest)
            .await
            .map_err(err)?;
        self.registry
            .link_blob(repo, &layer_digest)
            .await
            .map_err(err)?;
        Ok((
            serde_json::json!({"mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config_size}),
            serde_json::json!({"mediaType": OCI_LAYER, "digest": layer_digest.to_string(), "size": layer_size}),
        ))
    }

    /// Stores a manifest's bytes and enters it (with its tag) as a push does.
    async fn push_manifest(
        &self,
        repo: &str,
        bytes: Bytes,
        media_type: &str,
        tag: Option<&str>,
    ) -> Result<(Digest, usize)> {
        let inspected = manifest::inspect(&bytes, Some(media_type)).map_err(err)?;
        let len = bytes.len();
        let digest = self.put_blob(bytes).await?;
        let entry = ManifestEntry::new(&inspected, len as u64);
        self.registry
            .update_repo(repo, |doc| {
                let mut changed = doc.manifests.get(&digest) != Some(&entry);
                doc.manifests.insert(digest.clone(), entry.clone());
                if let Some(tag) = tag {
                    changed |=
                        doc.tags.insert(tag.to_string(), digest.clone()).as_ref() != Some(&digest);
                }
                Ok(changed)
            })
            .await
            .map_err(err)?;
        Ok((digest, len))
    }

    fn image_manifest(config: serde_json::Value, layer: serde_json::Value, title: &str) -> Bytes {
        Bytes::from(
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config,
                "layers": [layer],
                "annotations": {"org.opencontainers.image.title": title},
            }))
            .unwrap(),
        )
    }

    async fn oci_image(&self, i: usize) -> Result<()> {
        let repo = names::image_repo(i);
        let (config, layer) = self
            .oci_config_and_layer(&repo, &repo, ("amd64", None))
            .await?;
        let manifest = Self::image_manifest(config, layer, &repo);
        self.push_manifest(&repo, manifest, OCI_MANIFEST, Some("v1"))
            .await?;
        Ok(())
    }

    /// Repositories number `items`, with one tiny image each (tag `v1`).
    pub async fn oci_images(&self, items: std::ops::Range<usize>) -> Step {
        let progress = Progress::new();
        let result = futures::stream::iter(items)
            .map(|i| {
                let progress = &progress;
                async move {
                    retrying(progress, || self.oci_image(i)).await?;
                    progress.tick();
                    Ok::<_, anyhow::Error>(())
                }
            })
            .buffer_unordered(self.concurrency)
            .try_collect::<()>()
            .await;
        progress.finish(
            "oci: repositories of 1 image",
            "images",
            result.err().map(|e| format!("{e:#}")),
        )
    }

    /// One repository with `tags` tags, each its own manifest (a nightly-build repo);
    /// config and layer shared. Pushed one after the other: every push is a
    /// read-modify-write of the repository document.
    pub async fn oci_big_tags(&self, tags: usize) -> Step {
        let repo = names::BIG_TAGS_REPO;
        let progress = Progress::new();
        let shared = self
            .oci_config_and_layer(repo, "big-tags", ("amd64", None))
            .await;
        let (config, layer) = match shared {
            Ok(v) => v,
            Err(e) => {
                return progress.finish("oci: one repository, tags", "tags", Some(format!("{e:#}")))
            }
        };
        let mut error = None;
        for k in 0..tags {
            let tag = names::tag(k);
            let manifest = Self::image_manifest(config.clone(), layer.clone(), &tag);
            if let Err(e) = retrying(&progress, || async {
                self.push_manifest(repo, manifest.clone(), OCI_MANIFEST, Some(&tag))
                    .await
                    .map(|_| ())
            })
            .await
            {
                error = Some(format!("after {k} tags: {e:#}"));
                break;
            }
            progress.tick();
        }
        progress.finish(&format!("oci: one repository, {tags} tags"), "tags", error)
    }

    /// One image index over `platforms` platform images, tagged `latest`.
    pub async fn oci_multiarch(&self, platforms: usize) -> Step {
        let repo = names::MULTIARCH_REPO;
        let progress = Progress::new();
        let archs = [
            "amd64", "arm64", "ppc64le", "s390x", "riscv64", "386", "arm", "mips64le",
        ];
        let mut children = Vec::new();
        let mut error = None;
        for k in 0..platforms {
            let arch = archs[k % archs.len()];
            let variant = format!("v{}", k / archs.len() + 1);
            let made = async {
                let seed = format!("multiarch {arch} {variant}");
                let (config, layer) = self
                    .oci_config_and_layer(repo, &seed, (arch, Some(&variant)))
                    .await?;
                let manifest = Self::image_manifest(config, layer, &seed);
                self.push_manifest(repo, manifest, OCI_MANIFEST, None).await
            }
            .await;
            match made {
                Ok((digest, size)) => {
                    children.push(serde_json::json!({
                        "mediaType": OCI_MANIFEST, "digest": digest.to_string(), "size": size,
                        "platform": {"architecture": arch, "os": "linux", "variant": variant},
                    }));
                    progress.tick();
                }
                Err(e) => {
                    error = Some(format!("platform {k}: {e:#}"));
                    break;
                }
            }
        }
        if error.is_none() {
            let index = Bytes::from(
                serde_json::to_vec(&serde_json::json!({
                    "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children,
                }))
                .unwrap(),
            );
            if let Err(e) = self
                .push_manifest(repo, index, OCI_INDEX, Some("latest"))
                .await
            {
                error = Some(format!("the index: {e:#}"));
            }
        }
        progress.finish(
            &format!("oci: image index of {platforms} platforms"),
            "platforms",
            error,
        )
    }

    // ---- Hugging Face ----

    fn repo_ref(id: &str) -> RepoRef {
        RepoRef::new(RepoType::Model, id).expect("valid repo id")
    }

    async fn hf_model(&self, i: usize) -> Result<()> {
        let id = names::model(i);
        let repo = Self::repo_ref(&id);
        self.repos.create(&repo, false, AUTHOR).await.map_err(err)?;
        let mut ops = Vec::new();
        for (path, body) in [
            (
                "config.json",
                Bytes::from(format!(
                    r#"{{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":{},"_name":"{id}"}}"#,
                    64 * (i % 64 + 1)
                )),
            ),
            (
                "README.md",
                content(&format!("# {id}\n\nA scale-bench model."), 160),
            ),
            (
                "tokenizer_config.json",
                Bytes::from(format!(r#"{{"model_max_length":{}}}"#, 512 + i)),
            ),
        ] {
            let entry = self.repos.store_small_file(path, body).await.map_err(err)?;
            ops.push(Op::Put(entry));
        }
        self.repos
            .commit_changes(
                &repo,
                "main",
                Parent::Latest,
                ops,
                "add model files",
                "",
                AUTHOR,
                None,
            )
            .await
            .map_err(err)?;
        Ok(())
    }

    /// Model repositories number `items` (created, then one commit of 3 files each).
    pub async fn hf_models(&self, items: std::ops::Range<usize>) -> Step {
        let progress = Progress::new();
        let result = futures::stream::iter(items)
            .map(|i| {
                let progress = &progress;
                async move {
                    // A retry finds the repository created (`create` is then a no-op)
                    // and commits again.
                    retrying(progress, || self.hf_model(i)).await?;
                    progress.tick();
                    Ok::<_, anyhow::Error>(())
                }
            })
            .buffer_unordered(self.concurrency)
            .try_collect::<()>()
            .await;
        progress.finish(
            "hf: models of 3 files",
            "repos",
            result.err().map(|e| format!("{e:#}")),
        )
    }

    /// One repository with `files` files in one commit (as `upload_folder` makes it).
    /// Returns the blob step (files stored) and the commit step.
    pub async fn hf_big_files(&self, files: usize) -> (Step, Step) {
        let repo = Self::repo_ref(names::BIG_HF);
        let progress = Progress::new();
        if let Err(e) = self.repos.create(&repo, false, AUTHOR).await {
            let step = progress.finish(
                "hf: big repo, files stored",
                "files",
                Some(format!("{e:?}")),
            );
            return (step.clone(), step);
        }
        let stored: Result<Vec<Op>> = futures::stream::iter(0..files)
            .map(|k| {
                let progress = &progress;
                async move {
                    let path = names::big_hf_file(k);
                    let body = content(&format!("{path} of {}", names::BIG_HF), 64 + k % 64);
                    let entry = self
                        .repos
                        .store_small_file(&path, body)
                        .await
                        .map_err(err)?;
                    progress.tick();
                    Ok::<_, anyhow::Error>(Op::Put(entry))
                }
            })
            .buffered(self.concurrency)
            .try_collect()
            .await;
        let stored_step = match &stored {
            Ok(_) => progress.finish(&format!("hf: {files} files stored"), "files", None),
            Err(e) => progress.finish(
                &format!("hf: {files} files stored"),
                "files",
                Some(format!("{e:#}")),
            ),
        };
        let Ok(ops) = stored else {
            return (stored_step.clone(), stored_step);
        };
        let started = Instant::now();
        let result = self
            .repos
            .commit_changes(
                &repo,
                "main",
                Parent::Latest,
                ops,
                &format!("add {files} files"),
                "",
                AUTHOR,
                None,
            )
            .await;
        // One commit: no tenths to compare.
        let commit = Step {
            name: format!("hf: one commit of {files} files"),
            items: if result.is_ok() { files } else { 0 },
            unit: "files",
            seconds: started.elapsed().as_secs_f64(),
            first_rate: f64::NAN,
            last_rate: f64::NAN,
            retries: 0,
            retry_sample: None,
            error: result.err().map(|e| format!("{e:?}")),
        };
        (stored_step, commit)
    }

    /// One repository with `commits` commits after its first, each replacing one small
    /// file (a training run pushing its progress).
    pub async fn hf_history(&self, commits: usize) -> Step {
        let repo = Self::repo_ref(names::HISTORY_HF);
        let progress = Progress::new();
        if let Err(e) = self.repos.create(&repo, false, AUTHOR).await {
            return progress.finish("hf: long history", "commits", Some(format!("{e:?}")));
        }
        let mut error = None;
        for k in 0..commits {
            let made = async {
                let body = content(&format!("step {k} of {}", names::HISTORY_HF), 80);
                let entry = self
                    .repos
                    .store_small_file("progress.txt", body)
                    .await
                    .map_err(err)?;
                self.repos
                    .commit_changes(
                        &repo,
                        "main",
                        Parent::Latest,
                        vec![Op::Put(entry)],
                        &format!("step {k}"),
                        "",
                        AUTHOR,
                        None,
                    )
                    .await
                    .map_err(err)?;
                Ok::<_, anyhow::Error>(())
            }
            .await;
            if let Err(e) = made {
                error = Some(format!("after {k} commits: {e:#}"));
                break;
            }
            progress.tick();
        }
        progress.finish(
            &format!("hf: one repo, {commits} commits"),
            "commits",
            error,
        )
    }
}

/// Opens a store for the generator through the library (as every command does).
pub async fn open(
    url: &airlock::store::StoreUrl,
    s3: &airlock::store::S3Settings,
) -> Result<Stores> {
    Stores::open(url, s3, &airlock::store::CacheSettings::default())
        .await
        .context("opening the store for the generator")
}

/// The constant large items, in order; each step's outcome.
pub async fn large_items(generator: &Generator, large: &Large) -> Vec<Step> {
    let mut steps = Vec::new();
    eprintln!(
        "scale: large items: pypi project of {} files",
        large.pypi_files
    );
    steps.push(generator.pypi_big_project(large.pypi_files).await);
    eprintln!("scale: large items: oci repository of {} tags", large.tags);
    steps.push(generator.oci_big_tags(large.tags).await);
    eprintln!(
        "scale: large items: image index of {} platforms",
        large.platforms
    );
    steps.push(generator.oci_multiarch(large.platforms).await);
    eprintln!(
        "scale: large items: hf repository of {} files",
        large.hf_files
    );
    let (stored, commit) = generator.hf_big_files(large.hf_files).await;
    steps.push(stored);
    steps.push(commit);
    eprintln!(
        "scale: large items: hf repository of {} commits",
        large.commits
    );
    steps.push(generator.hf_history(large.commits).await);
    steps
}

/// The items that grow with the size: N projects, N/10 images, N/100 models; those of
/// a store of `from` already there (a store grown from one size to the next).
pub async fn sized_items(generator: &Generator, from: usize, n: usize) -> Vec<Step> {
    let mut steps = Vec::new();
    eprintln!("scale: N={n}: pypi projects {from}..{n}");
    steps.push(generator.pypi_projects(from..n).await);
    eprintln!("scale: N={n}: oci repositories {}..{}", from / 10, n / 10);
    steps.push(generator.oci_images(from / 10..n / 10).await);
    eprintln!("scale: N={n}: hf models {}..{}", from / 100, n / 100);
    steps.push(generator.hf_models(from / 100..n / 100).await);
    steps
}
