//! Runs the server and the CLI on either store: the filesystem, or S3 on the shared
//! Garage (a fresh prefix each time, so tests never see each other's data).

use super::airlock::{command, Airlock};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Fs,
    S3,
    /// S3, with blob downloads answered by redirects to presigned Garage URLs.
    S3Redirect,
}

/// Store arguments and environment for one test's store.
#[derive(Clone, Debug)]
pub struct StoreArgs {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    location: Location,
}

/// Where the store's objects are, for looking at them without Airlock.
#[derive(Clone, Debug)]
enum Location {
    Dir(PathBuf),
    /// The object-name prefix in the shared Garage's bucket, with a trailing `/`.
    S3(String),
}

impl StoreArgs {
    pub fn new(backend: Backend, dir: &Path) -> StoreArgs {
        match backend {
            Backend::Fs => StoreArgs {
                args: vec!["--store".into(), dir.join("store").to_string_lossy().into()],
                env: vec![],
                location: Location::Dir(dir.join("store")),
            },
            Backend::S3 | Backend::S3Redirect => {
                let g = super::garage::shared();
                let prefix = format!("t-{}", hex::encode(rand::random::<[u8; 6]>()));
                StoreArgs {
                    args: vec![
                        "--store".into(),
                        format!("s3://{}/{prefix}", g.bucket),
                        "--s3-endpoint".into(),
                        g.endpoint.clone(),
                        "--s3-redirect-downloads".into(),
                        (backend == Backend::S3Redirect).to_string(),
                    ],
                    env: vec![
                        ("AWS_ACCESS_KEY_ID".into(), g.key_id.clone()),
                        ("AWS_SECRET_ACCESS_KEY".into(), g.secret.clone()),
                        ("AWS_REGION".into(), g.region.clone()),
                    ],
                    location: Location::S3(format!("{prefix}/")),
                }
            }
        }
    }

    /// `airlock serve` on this store, plus extra arguments.
    pub fn serve(&self, dir: &Path, extra: &[&str]) -> Airlock {
        let mut args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Airlock::start(dir, &args, &env)
    }

    /// An `airlock` command (import, yank, ...) on this store.
    pub fn cli(&self, dir: &Path) -> Command {
        let mut cmd = command(dir);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Every object in the store, as keys relative to its root (`blobs/sha256/...`,
    /// `oci/...`), sorted, looked at directly rather than through Airlock: on disk every
    /// file under the store directory, temporary ones in `.tmp/` included; on S3 every
    /// object under the store's prefix.
    pub fn object_keys(&self) -> Vec<String> {
        self.objects().into_iter().map(|(key, _)| key).collect()
    }

    /// As [`Self::object_keys`], with each object's size in bytes.
    pub fn objects(&self) -> Vec<(String, u64)> {
        match &self.location {
            Location::Dir(root) => {
                let mut objects = Vec::new();
                walk(root, root, &mut objects);
                objects.sort();
                objects
            }
            Location::S3(prefix) => {
                let prefix = prefix.clone();
                block_on(async move {
                    let (client, bucket) = s3_client();
                    let mut objects = Vec::new();
                    let mut pages = client
                        .list_objects_v2()
                        .bucket(bucket)
                        .prefix(&prefix)
                        .into_paginator()
                        .send();
                    while let Some(page) = pages.next().await {
                        let page = page.unwrap_or_else(|e| panic!("listing {prefix}: {e:?}"));
                        for object in page.contents() {
                            let key = object.key().unwrap();
                            let size = object.size().unwrap_or_default() as u64;
                            objects.push((
                                key.strip_prefix(prefix.as_str()).unwrap().to_string(),
                                size,
                            ));
                        }
                    }
                    objects.sort();
                    objects
                })
            }
        }
    }

    /// Whether the store holds `data` as a blob (listed in the store directly).
    pub fn has_blob(&self, data: &[u8]) -> bool {
        let hex = super::sha256_hex(data);
        self.keys_under(&format!("blobs/sha256/{}/", &hex[..2]))
            .iter()
            .any(|k| k.ends_with(&hex))
    }

    /// Keys of the objects under `prefix` (a plain string prefix of the key).
    pub fn keys_under(&self, prefix: &str) -> Vec<String> {
        self.object_keys()
            .into_iter()
            .filter(|k| k.starts_with(prefix))
            .collect()
    }

    /// Writes that were begun and neither finished nor cleaned up: files in `.tmp/` on
    /// disk; multipart uploads never completed nor aborted on S3 (invisible in listings,
    /// but stored and billed until a lifecycle rule removes them).
    pub fn unfinished_writes(&self) -> Vec<String> {
        match &self.location {
            Location::Dir(_) => self.keys_under(".tmp/"),
            Location::S3(prefix) => {
                let prefix = prefix.clone();
                block_on(async move {
                    let (client, bucket) = s3_client();
                    let mut found = Vec::new();
                    let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
                    loop {
                        let page = client
                            .list_multipart_uploads()
                            .bucket(bucket)
                            .prefix(&prefix)
                            .set_key_marker(key_marker.take())
                            .set_upload_id_marker(id_marker.take())
                            .send()
                            .await
                            .unwrap_or_else(|e| panic!("listing uploads under {prefix}: {e:?}"));
                        for upload in page.uploads() {
                            found.push(format!(
                                "multipart upload {} of {}",
                                upload.upload_id().unwrap_or("?"),
                                upload.key().unwrap_or("?")
                            ));
                        }
                        if !page.is_truncated().unwrap_or(false) {
                            break;
                        }
                        key_marker = page.next_key_marker().map(str::to_string);
                        id_marker = page.next_upload_id_marker().map(str::to_string);
                    }
                    found
                })
            }
        }
    }
}

impl StoreArgs {
    /// Leaves a write unfinished at `key`, as a process killed in the middle of it would:
    /// a file in `.tmp/` on disk, a multipart upload begun and never completed on S3.
    pub fn leave_unfinished_write(&self, key: &str) {
        match &self.location {
            Location::Dir(root) => {
                std::fs::create_dir_all(root.join(".tmp")).unwrap();
                std::fs::write(root.join(".tmp").join(key.replace('/', "-")), b"part").unwrap();
            }
            Location::S3(prefix) => {
                let key = format!("{prefix}{key}");
                block_on(async move {
                    let (client, bucket) = s3_client();
                    client
                        .create_multipart_upload()
                        .bucket(bucket)
                        .key(&key)
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("starting an upload of {key}: {e:?}"));
                });
            }
        }
    }
}

/// Files under `dir`, as `/`-separated paths relative to `root`, with their sizes.
fn walk(root: &Path, dir: &Path, keys: &mut Vec<(String, u64)>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, keys);
        } else {
            let relative = path.strip_prefix(root).unwrap();
            let parts: Vec<_> = relative.iter().map(|p| p.to_string_lossy()).collect();
            let size = entry.metadata().map(|m| m.len()).unwrap_or_default();
            keys.push((parts.join("/"), size));
        }
    }
}

/// One S3 client on the shared Garage for the whole test binary, and its bucket.
fn s3_client() -> (&'static aws_sdk_s3::Client, &'static str) {
    static CLIENT: OnceLock<aws_sdk_s3::Client> = OnceLock::new();
    let g = super::garage::shared();
    (CLIENT.get_or_init(|| g.client()), g.bucket.as_str())
}

/// Runs `future` to completion on a runtime of its own, so the helpers above work the
/// same from plain `#[test]`s and from inside `#[tokio::test]`s (where blocking on the
/// caller's runtime would panic).
fn block_on<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> T {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    });
    match futures::executor::block_on(runtime.spawn(future)) {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Each scenario, a function taking a `Backend`, as two tests: `fs::name`, and `s3::name`,
/// which is ignored (run by `bash tests/run-all.sh`, which starts Garage). `async:` for
/// async scenarios; `ignore_fs`/`ignore_s3` when the scenarios need installed clients too.
/// Expands where `Backend` is in scope.
#[macro_export]
macro_rules! on_both_stores {
    (async: $($scenario:ident),* $(,)?) => {
        mod fs {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(super::Backend::Fs).await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test]
                #[ignore = "needs Garage: bash tests/run-all.sh"]
                async fn $scenario() {
                    super::$scenario(super::Backend::S3).await;
                }
            )*
        }
    };
    (async, ignore_fs = $fs:literal, ignore_s3 = $s3:literal: $($scenario:ident),* $(,)?) => {
        mod fs {
            $(
                #[tokio::test]
                #[ignore = $fs]
                async fn $scenario() {
                    super::$scenario(super::Backend::Fs).await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test]
                #[ignore = $s3]
                async fn $scenario() {
                    super::$scenario(super::Backend::S3).await;
                }
            )*
        }
    };
    (sync: $($scenario:ident),* $(,)?) => {
        mod fs {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario(super::Backend::Fs);
                }
            )*
        }
        mod s3 {
            $(
                #[test]
                #[ignore = "needs Garage: bash tests/run-all.sh"]
                fn $scenario() {
                    super::$scenario(super::Backend::S3);
                }
            )*
        }
    };
    (sync, ignore_fs = $fs:literal, ignore_s3 = $s3:literal: $($scenario:ident),* $(,)?) => {
        mod fs {
            $(
                #[test]
                #[ignore = $fs]
                fn $scenario() {
                    super::$scenario(super::Backend::Fs);
                }
            )*
        }
        mod s3 {
            $(
                #[test]
                #[ignore = $s3]
                fn $scenario() {
                    super::$scenario(super::Backend::S3);
                }
            )*
        }
    };
}
