//! The embedded default: objects as files under one directory.
//!
//! A put streams into `<root>/.tmp/<random>`, fsyncs, verifies, then renames (or, for
//! `PutMode::Create`, hard-links) into place, so readers only ever see complete files;
//! the folder is fsynced after, so a published file survives a power loss. A put that
//! fails or is dropped removes its temporary file; files a killed process left in `.tmp`
//! are never listed and are swept at open.
//!
//! Several processes may share the directory (`serve` beside `airlock mirror`, `bundle
//! import`, `hf import`, `pypi yank`): create-if-absent is a hard link, atomic between
//! them; `PutMode::Update`'s compare-then-rename holds an `flock` on one of the lock
//! files in `<root>/.locks/` (one per key hash bucket), which every process honours.
//! (Advisory locks need a local filesystem or NFSv4; the store is not meant for others.)

use super::fs_listing::Listings;
use super::keyed_locks::KeyedLocks;
use super::verify::Verifier;
use super::{
    ByteStream, GetOptions, GetResult, KeyPage, ListPage, ObjectKey, ObjectMeta, ObjectStore,
    PutMode, PutOptions, PutResult, Result, StoreError,
};
use async_trait::async_trait;
use futures::StreamExt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub(super) const TMP_DIR: &str = ".tmp";
/// Lock files for conditional updates across processes (never listed: keys cannot
/// start with `.`).
const LOCK_DIR: &str = ".locks";
/// Read size for streaming a file out: large enough that the per-read hop to the
/// blocking pool is noise next to the copy itself, and that hyper writes big frames
/// (measured in benches/blob_throughput: 256 KiB frames cost ~25% single-stream speed).
const READ_CHUNK: usize = 1024 * 1024;
/// Files up to this size are read whole when opened (documents, small packages); larger
/// ones are streamed, or sent with `sendfile`.
const SMALL_READ: u64 = 64 * 1024;
/// Buffer for writes: puts arrive as small network frames, coalesced into pieces this
/// large before each write, so the hand-off to the blocking pool is rare.
const WRITE_BUFFER: usize = 1024 * 1024;
/// Temporary files older than this at open belong to a process that died mid-write.
const STALE_TMP: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub struct FsStore {
    root: PathBuf,
    /// Serializes `PutMode::Update` per key inside this process, before the lock file
    /// (see `lock_across_processes`) serializes it between processes: tasks then wait
    /// here, not in a blocking thread each.
    update_locks: KeyedLocks<PathBuf>,
    /// Sorted names of large folders, for listings (`fs_listing.rs`).
    listings: Arc<Listings>,
}

impl FsStore {
    pub async fn open(root: &Path) -> anyhow::Result<Self> {
        let tmp = root.join(TMP_DIR);
        tokio::fs::create_dir_all(root.join(LOCK_DIR))
            .await
            .and(tokio::fs::create_dir_all(&tmp).await)
            .map_err(|e| {
            anyhow::anyhow!(
                "cannot create the store directory {}: {e}; choose a writable path with --store or AIRLOCK_STORE",
                root.display()
            )
        })?;
        // Probe writability now rather than on the first upload.
        let probe = tmp.join(format!("probe-{}", random_name()));
        tokio::fs::write(&probe, b"").await.map_err(|e| {
            anyhow::anyhow!("store directory {} is not writable: {e}", root.display())
        })?;
        let _ = tokio::fs::remove_file(&probe).await;
        sweep_stale_tmp(&tmp).await;
        let root = tokio::fs::canonicalize(root).await?;
        Ok(FsStore {
            root,
            update_locks: KeyedLocks::default(),
            listings: Arc::default(),
        })
    }

    /// One listing page (`Listings::page` or `key_page`), walked on the blocking pool.
    async fn on_listings<T: Send + 'static>(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        page: fn(&Listings, &Path, &str, Option<&str>, usize) -> Result<T>,
    ) -> Result<T> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        let start_after = start_after.map(str::to_string);
        let listings = self.listings.clone();
        tokio::task::spawn_blocking(move || {
            page(
                &listings,
                &root,
                &prefix,
                start_after.as_deref(),
                limit.max(1),
            )
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }

    fn path_of(&self, key: &ObjectKey) -> PathBuf {
        // ObjectKey forbids `..`, absolute paths and a leading `.`, so this stays under root.
        self.root.join(key.as_str())
    }

    /// A missing file is "not found" only while the store directory itself is there: a
    /// vanished or unmounted store is an outage, which clients must not read as absence.
    fn read_error(&self, e: io::Error, key: &ObjectKey) -> StoreError {
        match io_error(e, key) {
            StoreError::NotFound(_) if !self.root.join(TMP_DIR).is_dir() => {
                StoreError::Unavailable(format!("store directory {} is gone", self.root.display()))
            }
            other => other,
        }
    }

    /// Holds the lock file of `key`'s bucket until the returned file is dropped: an
    /// exclusive `flock`, which conflicts between processes and between separate opens
    /// within one. The bucket is the first byte of the key's sha256: 256 lock files, a
    /// bounded set never deleted, so no process can lock a file another has just
    /// unlinked. A lock is held only for a stat and a rename, so keys sharing one wait
    /// very little.
    async fn lock_across_processes(&self, key: &ObjectKey) -> io::Result<std::fs::File> {
        let bucket = crate::digest::Digest::of_bytes(
            crate::digest::Algorithm::Sha256,
            key.as_str().as_bytes(),
        )
        .hex()[..2]
            .to_string();
        let path = self.root.join(LOCK_DIR).join(bucket);
        tokio::task::spawn_blocking(move || {
            let mut open = std::fs::OpenOptions::new();
            open.create(true).truncate(false).write(true);
            let file = match open.open(&path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // A store made before lock files: make their folder.
                    std::fs::create_dir_all(path.parent().expect("under the root"))?;
                    open.open(&path)?
                }
                other => other?,
            };
            flock_exclusive(&file)?;
            Ok(file)
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn meta_of(&self, key: &ObjectKey, path: &Path) -> Result<ObjectMeta> {
        let md = tokio::fs::metadata(path)
            .await
            .map_err(|e| self.read_error(e, key))?;
        if !md.is_file() {
            return Err(StoreError::NotFound(key.to_string()));
        }
        Ok(meta_from(key.clone(), &md))
    }
}

pub(super) fn meta_from(key: ObjectKey, md: &std::fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        key,
        size: md.len(),
        etag: etag_of(md),
        last_modified: md.modified().ok(),
    }
}

/// Every publish renames a new file into place, so the inode changes with each
/// version; with size and mtime it makes a cheap version token.
fn etag_of(md: &std::fs::Metadata) -> String {
    let mtime_ns = md.mtime() as i128 * 1_000_000_000 + md.mtime_nsec() as i128;
    format!("{:x}-{:x}-{:x}", md.ino(), md.len(), mtime_ns)
}

/// Blocks until this open file holds an exclusive `flock` (released when it closes).
fn flock_exclusive(file: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: flock on a file descriptor this `File` owns and keeps open.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Makes a rename or link into `dir` durable: without this a power loss can undo it.
async fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
        .await
        .map_err(io::Error::other)?
}

fn io_error(e: io::Error, key: &ObjectKey) -> StoreError {
    match e.kind() {
        // A path component that is a file (key "a/b" when "a" is an object) is also absent.
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
            StoreError::NotFound(key.to_string())
        }
        _ => StoreError::from_write(e, key),
    }
}

fn random_name() -> String {
    hex::encode(rand::random::<[u8; 12]>())
}

async fn sweep_stale_tmp(tmp: &Path) {
    let Ok(mut dir) = tokio::fs::read_dir(tmp).await else {
        return;
    };
    while let Ok(Some(entry)) = dir.next_entry().await {
        let stale = entry
            .metadata()
            .await
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > STALE_TMP);
        if stale {
            let _ = tokio::fs::remove_file(entry.path()).await;
        }
    }
}

/// Removes the temporary file unless the put published it.
struct TmpGuard(Option<PathBuf>);

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Writes a body to a file in `WRITE_BUFFER` pieces on the blocking pool, one piece in
/// flight while the next fills, then fsyncs.
///
/// Why not `tokio::fs::File` behind a `BufWriter`: that copies every buffer once more
/// into tokio's own and hops to the blocking pool per buffer, one at a time; a 1 GiB push
/// spent a quarter of its CPU in those hand-offs (measured with perf, benches/oci_push).
struct FileSink {
    file: Arc<std::fs::File>,
    buffer: bytes::BytesMut,
    in_flight: Option<tokio::task::JoinHandle<io::Result<()>>>,
}

impl FileSink {
    fn new(file: std::fs::File) -> Self {
        FileSink {
            file: Arc::new(file),
            buffer: bytes::BytesMut::with_capacity(WRITE_BUFFER),
            in_flight: None,
        }
    }

    async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= WRITE_BUFFER {
            self.start_write().await?;
        }
        Ok(())
    }

    /// Waits for the previous piece, then hands the buffer to the blocking pool.
    async fn start_write(&mut self) -> io::Result<()> {
        self.wait().await?;
        let piece = self.buffer.split().freeze();
        self.buffer.reserve(WRITE_BUFFER);
        let file = self.file.clone();
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            use std::io::Write;
            // One piece at a time, so the file cursor advances in body order.
            (&*file).write_all(&piece)
        }));
        Ok(())
    }

    async fn wait(&mut self) -> io::Result<()> {
        match self.in_flight.take() {
            Some(write) => write.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }

    /// Writes what is left and makes it durable before the caller publishes the file.
    async fn finish(mut self) -> io::Result<()> {
        if !self.buffer.is_empty() {
            self.start_write().await?;
        }
        self.wait().await?;
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || {
            // The version token is inode, size and mtime. The kernel stamps mtime from a
            // coarse clock (milliseconds) and reuses freed inodes at once, so two quick
            // rewrites of a document could repeat an old token and let a stale
            // conditional update through; a stamp from the fine clock cannot repeat.
            file.set_modified(SystemTime::now())?;
            file.sync_all()
        })
        .await
        .map_err(io::Error::other)?
    }
}

/// The file at `path`, its metadata, and its bytes when it is at most `SMALL_READ`.
fn opened(path: &Path) -> io::Result<(std::fs::File, std::fs::Metadata, Option<bytes::Bytes>)> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path)?;
    let md = file.metadata()?;
    if !md.is_file() || md.len() > SMALL_READ {
        return Ok((file, md, None));
    }
    let mut buf = vec![0; md.len() as usize];
    // Files are replaced by rename, never rewritten in place: the length stands.
    file.read_exact_at(&mut buf, 0)?;
    Ok((file, md, Some(buf.into())))
}

/// Streams a byte range of a file as `READ_CHUNK` frames, reading each with `pread` into
/// a fresh buffer on the blocking pool, one chunk ahead of the consumer.
///
/// Why not `tokio::fs::File` + `ReaderStream`: that reads into tokio's own buffer and
/// copies into ours, and only starts the next read once the previous frame was sent. Here
/// the disk read of chunk N+1 overlaps the socket write of chunk N, each frame is handed to
/// hyper without a copy, and memory stays at two chunks per download.
struct FileChunks {
    file: Arc<std::fs::File>,
    next: u64,
    end: u64,
    in_flight: Option<tokio::task::JoinHandle<io::Result<bytes::Bytes>>>,
}

impl FileChunks {
    /// Reads nothing until polled: a download that sends the file itself drops it unread.
    fn new(file: Arc<std::fs::File>, range: std::ops::Range<u64>) -> Self {
        FileChunks {
            file,
            next: range.start,
            end: range.end,
            in_flight: None,
        }
    }

    fn start_next_read(&mut self) {
        if self.next >= self.end {
            return;
        }
        let len = (self.end - self.next).min(READ_CHUNK as u64) as usize;
        let (file, offset) = (self.file.clone(), self.next);
        self.next += len as u64;
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let mut buf = bytes::BytesMut::zeroed(len);
            // A short read means the file shrank under us: report it rather than pad.
            file.read_exact_at(&mut buf, offset)?;
            Ok(buf.freeze())
        }));
    }
}

impl futures::Stream for FileChunks {
    type Item = io::Result<bytes::Bytes>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::future::Future;
        let this = self.get_mut();
        if this.in_flight.is_none() {
            this.start_next_read();
        }
        let Some(read) = this.in_flight.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        let result = futures::ready!(std::pin::Pin::new(read).poll(cx));
        this.in_flight = None;
        let chunk = match result {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(e)) => return std::task::Poll::Ready(Some(Err(e))),
            Err(join) => return std::task::Poll::Ready(Some(Err(io::Error::other(join)))),
        };
        this.start_next_read();
        std::task::Poll::Ready(Some(Ok(chunk)))
    }
}

#[async_trait]
impl ObjectStore for FsStore {
    async fn get(&self, key: &ObjectKey, options: GetOptions) -> Result<GetResult> {
        let path = self.path_of(key);
        // Open, stat and (when small) read in one trip to the blocking pool: a document
        // or a small file is then one hand-off, not three.
        let opened = tokio::task::spawn_blocking(move || opened(&path))
            .await
            .map_err(|e| StoreError::Unavailable(format!("reading {key}: {e}")))?;
        let (file, md, small) = opened.map_err(|e| self.read_error(e, key))?;
        if !md.is_file() {
            return Err(StoreError::NotFound(key.to_string()));
        }
        let meta = meta_from(key.clone(), &md);
        let range = match options.range {
            Some(r) => r.resolve(meta.size)?,
            None => 0..meta.size,
        };
        if let Some(bytes) = small {
            let part = bytes.slice(range.start as usize..range.end as usize);
            return Ok(GetResult {
                meta,
                range,
                body: super::bytes_stream(part),
                file: None,
            });
        }
        let file = Arc::new(file);
        let body = FileChunks::new(file.clone(), range.clone());
        Ok(GetResult {
            meta,
            range,
            body: Box::pin(body),
            file: Some(file),
        })
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta> {
        self.meta_of(key, &self.path_of(key)).await
    }

    async fn put(
        &self,
        key: &ObjectKey,
        mut body: ByteStream,
        options: PutOptions,
    ) -> Result<PutResult> {
        let dest = self.path_of(key);
        let tmp_path = self.root.join(TMP_DIR).join(random_name());
        let mut guard = TmpGuard(Some(tmp_path.clone()));
        let unavailable = |e: io::Error| StoreError::from_write(e, key);

        let file = tokio::fs::File::create(&tmp_path)
            .await
            .map_err(unavailable)?;
        let mut out = FileSink::new(file.into_std().await);
        let mut verifier = Verifier::new(options.expected_digest.as_ref(), options.expected_size);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(StoreError::Body)?;
            verifier.update(&chunk)?;
            out.write(&chunk).await.map_err(unavailable)?;
        }
        out.finish().await.map_err(unavailable)?;
        let size = verifier.finish()?;

        make_parent(&dest).await.map_err(|e| match e.kind() {
            // A prefix of the key is itself an object: the key cannot exist.
            io::ErrorKind::AlreadyExists | io::ErrorKind::NotADirectory => {
                StoreError::InvalidKey(key.to_string())
            }
            _ => unavailable(e),
        })?;
        match &options.mode {
            PutMode::Overwrite => {
                in_parent(&dest, || tokio::fs::rename(&tmp_path, &dest))
                    .await
                    .map_err(unavailable)?;
            }
            PutMode::Create => {
                // link() fails if the destination exists: an atomic create-if-absent,
                // even between processes sharing the directory.
                match in_parent(&dest, || tokio::fs::hard_link(&tmp_path, &dest)).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        return Err(StoreError::PreconditionFailed(key.to_string()))
                    }
                    Err(e) => return Err(unavailable(e)),
                }
            }
            PutMode::Update(expected_etag) => {
                let _held = self.update_locks.lock(&dest).await;
                let _across = self.lock_across_processes(key).await.map_err(unavailable)?;
                match tokio::fs::metadata(&dest).await {
                    Ok(md) if &etag_of(&md) == expected_etag => {}
                    Ok(_) => return Err(StoreError::PreconditionFailed(key.to_string())),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        return Err(StoreError::PreconditionFailed(key.to_string()))
                    }
                    Err(e) => return Err(unavailable(e)),
                }
                in_parent(&dest, || tokio::fs::rename(&tmp_path, &dest))
                    .await
                    .map_err(unavailable)?;
            }
        }
        // After rename the temp path is gone; after link it still needs removing.
        drop(guard.0.take().map(std::fs::remove_file));
        let md = tokio::fs::metadata(&dest).await.map_err(unavailable)?;
        sync_parent(&dest).await.map_err(unavailable)?;
        Ok(PutResult {
            etag: etag_of(&md),
            size,
        })
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        self.on_listings(prefix, start_after, limit, Listings::page)
            .await
    }

    async fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage> {
        self.on_listings(prefix, start_after, limit, Listings::key_page)
            .await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<()> {
        let path = self.path_of(key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) => match io_error(e, key) {
                StoreError::NotFound(_) => return Ok(()),
                other => return Err(other),
            },
        }
        // Folders the delete leaves empty go too (every finished upload would otherwise
        // leave one behind). remove_dir refuses a folder that is not empty, so this stops
        // at the first one still in use; a put racing into a removed folder makes it again.
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| *d != self.root && d.starts_with(&self.root)) {
            if tokio::fs::remove_dir(d).await.is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }

    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<PutResult> {
        // Files are never modified in place (every put renames a new file over the old),
        // so a second name for the same inode is as good as a copy.
        let (source, dest) = (self.path_of(from), self.path_of(to));
        let tmp_path = self.root.join(TMP_DIR).join(random_name());
        let unavailable = |e: io::Error| StoreError::from_write(e, to);
        tokio::fs::hard_link(&source, &tmp_path)
            .await
            .map_err(|e| self.read_error(e, from))?;
        let mut guard = TmpGuard(Some(tmp_path.clone()));
        make_parent(&dest).await.map_err(unavailable)?;
        in_parent(&dest, || tokio::fs::rename(&tmp_path, &dest))
            .await
            .map_err(unavailable)?;
        guard.0 = None;
        let md = tokio::fs::metadata(&dest).await.map_err(unavailable)?;
        sync_parent(&dest).await.map_err(unavailable)?;
        Ok(PutResult {
            etag: etag_of(&md),
            size: md.len(),
        })
    }

    async fn remove_abandoned_writes(&self, before: SystemTime, dry_run: bool) -> Result<u64> {
        let mut dir = match tokio::fs::read_dir(self.root.join(TMP_DIR)).await {
            Ok(dir) => dir,
            Err(_) => return Ok(0),
        };
        let mut removed = 0;
        while let Ok(Some(entry)) = dir.next_entry().await {
            // A write in progress keeps its file's mtime fresh as data arrives.
            let old = entry
                .metadata()
                .await
                .ok()
                .and_then(|m| m.modified().ok())
                .is_some_and(|t| t < before);
            if old && (dry_run || tokio::fs::remove_file(entry.path()).await.is_ok()) {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }
}

/// Makes `dest`'s folder and any missing above it, each synced into its own parent:
/// a file renamed into a folder whose entry is not durable is not durable either.
async fn make_parent(dest: &Path) -> io::Result<()> {
    let Some(parent) = dest.parent() else {
        return Ok(());
    };
    if tokio::fs::metadata(parent).await.is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    let parent = parent.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let missing: Vec<&Path> = parent
            .ancestors()
            .take_while(|d| std::fs::symlink_metadata(d).is_err())
            .collect();
        std::fs::create_dir_all(&parent)?;
        for made in missing {
            if let Some(above) = made.parent() {
                std::fs::File::open(above)?.sync_all()?;
            }
        }
        Ok(())
    })
    .await
    .map_err(io::Error::other)?
}

/// Syncs the folder of a file just published.
async fn sync_parent(dest: &Path) -> io::Result<()> {
    match dest.parent() {
        Some(parent) => sync_dir(parent).await,
        None => Ok(()),
    }
}

/// Runs `publish` (a rename or link to `dest`, whose folder was just made). A delete may
/// remove that folder in between when it leaves it empty: then it is made again.
async fn in_parent<F, Fut>(dest: &Path, mut publish: F) -> io::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = io::Result<()>>,
{
    for _ in 0..3 {
        match publish().await {
            Err(e) if e.kind() == io::ErrorKind::NotFound => make_parent(dest).await?,
            other => return other,
        }
    }
    publish().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::bytes_stream;

    #[tokio::test]
    async fn a_delete_removes_the_folders_it_empties_and_a_put_makes_them_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).await.unwrap();
        let key = |k: &str| ObjectKey::new(k).unwrap();
        for k in ["uploads/oci/a/1", "uploads/oci/b/1"] {
            store
                .put(&key(k), bytes_stream("x"), PutOptions::default())
                .await
                .unwrap();
        }
        store.delete(&key("uploads/oci/a/1")).await.unwrap();
        assert!(!dir.path().join("uploads/oci/a").exists());
        assert!(dir.path().join("uploads/oci/b/1").exists(), "siblings stay");
        store.delete(&key("uploads/oci/b/1")).await.unwrap();
        assert!(!dir.path().join("uploads").exists());
        assert!(dir.path().exists(), "the root stays");
        store
            .put(
                &key("uploads/oci/a/2"),
                bytes_stream("y"),
                PutOptions::default(),
            )
            .await
            .unwrap();
        assert!(dir.path().join("uploads/oci/a/2").is_file());
    }
}
