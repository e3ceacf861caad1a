//! How a commit is stored. Every commit lists all of its repository's files, so a
//! dataset of 100,000 files has commits of about 17 MB of file list: more than one
//! document may hold. Up to [`INLINE_BYTES`] of file list a commit is one document, as
//! it always was; beyond that the list is cut into pages stored as blobs, and the
//! document names them.
//!
//! Pages are content-addressed, so a commit that changes a few files of 100,000 writes
//! one or two new pages and shares the rest with its parent. Where a page ends is chosen
//! by a hash of the path (as content-defined chunking does), not by position, so a file
//! added or removed moves only the boundary of the page it falls in.

use super::model::{fnv1a, Commit, CommitSummary, FileEntry};
use super::HfError;
use crate::digest::{Algorithm, Digest};
use crate::store::MAX_DOCUMENT_BYTES;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// File lists up to this size stay in the commit document.
pub const INLINE_BYTES: usize = 1 << 20;
/// A page ends at a boundary path once it holds this much...
const PAGE_MIN_BYTES: usize = 64 << 10;
/// ...and at the next path in any case once it holds this much. One entry is at most a
/// few KiB (paths are at most 1,024 bytes), so no page exceeds [`MAX_PAGE_BYTES`].
const PAGE_MAX_BYTES: usize = 1 << 20;
/// What a reader accepts as one page.
pub const MAX_PAGE_BYTES: usize = 2 << 20;
/// About one path in this many ends a page: pages of about 250 KB with short paths, seldom
/// cut at [`PAGE_MAX_BYTES`] (a cut by size moves the boundaries after it).
const BOUNDARY_ONE_IN: u64 = 1024;
/// The most files a commit may list: every request on a repository holds its head's
/// file list in memory (about 250 bytes a file). Three times what the Hub recommends.
pub const MAX_COMMIT_FILES: usize = 300_000;

/// One page of a commit's file list: a blob holding a JSON array of file entries.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FilePage {
    pub sha256: String,
    pub files: usize,
    /// The sum of its files' sizes, so that a repository list shows a commit's size
    /// without reading its pages (absent from commits written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// A commit document as stored: its files inline, or the pages that hold them.
#[derive(Deserialize)]
pub struct StoredCommit {
    id: String,
    parents: Vec<String>,
    title: String,
    message: String,
    author: String,
    date: String,
    #[serde(default)]
    files: Vec<FileEntry>,
    #[serde(default)]
    pub file_pages: Vec<FilePage>,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

impl StoredCommit {
    /// The files the pages hold, before any is read: bounds what loading them costs.
    pub fn paged_files(&self) -> usize {
        self.file_pages.iter().map(|p| p.files).sum()
    }

    /// What a repository list shows, if the document alone says it: always for an
    /// inline commit, for a paged one when each page records its size.
    pub fn summary(&self) -> Option<CommitSummary> {
        let (files, used_storage) = if self.file_pages.is_empty() {
            (self.files.len(), self.files.iter().map(|f| f.size).sum())
        } else {
            let bytes = self
                .file_pages
                .iter()
                .map(|p| p.bytes)
                .sum::<Option<u64>>()?;
            (self.paged_files(), bytes)
        };
        Some(CommitSummary {
            id: self.id.clone(),
            date: self.date.clone(),
            config: self.config.clone(),
            files,
            used_storage,
        })
    }

    /// The commit, with `paged` (the pages' entries, in order) as its files when paged.
    pub fn into_commit(self, paged: Vec<FileEntry>) -> Commit {
        Commit {
            id: self.id,
            parents: self.parents,
            title: self.title,
            message: self.message,
            author: self.author,
            date: self.date,
            files: if self.file_pages.is_empty() {
                self.files
            } else {
                paged
            },
            config: self.config,
        }
    }
}

/// The paged form of a commit document, written from a borrowed commit.
#[derive(Serialize)]
struct PagedCommit<'a> {
    id: &'a str,
    parents: &'a [String],
    title: &'a str,
    message: &'a str,
    author: &'a str,
    date: &'a str,
    file_pages: &'a [FilePage],
    #[serde(skip_serializing_if = "Option::is_none")]
    config: &'a Option<serde_json::Value>,
}

/// A page to store before the document that names it.
pub struct Page {
    pub digest: Digest,
    pub bytes: Bytes,
}

/// A commit ready to store: its document, and the pages it names (none when inline).
pub struct Encoded {
    pub doc: Bytes,
    pub pages: Vec<Page>,
}

pub fn decode(bytes: &[u8]) -> Result<StoredCommit, HfError> {
    super::repo::parse(bytes)
}

/// One page's entries, checked against what the document says it holds.
pub fn decode_page(page: &FilePage, bytes: &[u8]) -> Result<Vec<FileEntry>, HfError> {
    let entries: Vec<FileEntry> = super::repo::parse(bytes)?;
    if entries.len() != page.files {
        return Err(corrupt(format!(
            "page {} holds {} files, its commit says {}",
            page.sha256,
            entries.len(),
            page.files
        )));
    }
    let bytes: u64 = entries.iter().map(|f| f.size).sum();
    if page.bytes.is_some_and(|b| b != bytes) {
        return Err(corrupt(format!(
            "page {} holds {bytes} bytes of files, its commit says {}",
            page.sha256,
            page.bytes.unwrap_or_default()
        )));
    }
    Ok(entries)
}

pub fn corrupt(message: String) -> HfError {
    HfError::from(crate::store::StoreError::Unavailable(format!(
        "corrupt commit: {message}"
    )))
}

pub fn encode(commit: &Commit) -> Result<Encoded, HfError> {
    if commit.files.len() > MAX_COMMIT_FILES {
        return Err(HfError::bad_request(format!(
            "this commit would list {} files; Airlock holds at most {MAX_COMMIT_FILES} files \
             in one repository: split them across repositories, or pack small files into \
             archives or parquet shards",
            commit.files.len()
        )));
    }
    let paged = paginate(&commit.files);
    if paged.iter().map(|(p, ..)| p.bytes.len()).sum::<usize>() <= INLINE_BYTES {
        return Ok(Encoded {
            doc: serde_json::to_vec(commit).expect("serializable").into(),
            pages: Vec::new(),
        });
    }
    let file_pages: Vec<FilePage> = paged
        .iter()
        .map(|(page, files, bytes)| FilePage {
            sha256: page.digest.hex().to_string(),
            files: *files,
            bytes: Some(*bytes),
        })
        .collect();
    let pages = paged.into_iter().map(|(page, ..)| page).collect();
    let doc = serde_json::to_vec(&PagedCommit {
        id: &commit.id,
        parents: &commit.parents,
        title: &commit.title,
        message: &commit.message,
        author: &commit.author,
        date: &commit.date,
        file_pages: &file_pages,
        config: &commit.config,
    })
    .expect("serializable");
    if doc.len() > MAX_DOCUMENT_BYTES {
        // Only a message of megabytes gets here: the pages of 300,000 files take 30 KB.
        return Err(HfError::bad_request(format!(
            "this commit's message and metadata take {} MiB; Airlock holds at most {} MiB: \
             shorten the commit message",
            doc.len() >> 20,
            MAX_DOCUMENT_BYTES >> 20
        )));
    }
    Ok(Encoded {
        doc: doc.into(),
        pages,
    })
}

/// Whether a page may end after `path`: by a hash stable across versions and machines
/// (a different cut would still read back, but would no longer share pages).
fn is_boundary(path: &str) -> bool {
    fnv1a(path.as_bytes()) % BOUNDARY_ONE_IN == 0
}

/// The file list cut into pages, each with the number of entries it holds.
fn paginate(files: &[FileEntry]) -> Vec<(Page, usize, u64)> {
    let mut pages = Vec::new();
    let (mut buf, mut count, mut bytes) = (Vec::new(), 0, 0);
    for file in files {
        buf.push(if count == 0 { b'[' } else { b',' });
        serde_json::to_writer(&mut buf, file).expect("serializable");
        count += 1;
        bytes += file.size;
        if buf.len() >= PAGE_MAX_BYTES || (buf.len() >= PAGE_MIN_BYTES && is_boundary(&file.path)) {
            pages.push(close(std::mem::take(&mut buf), count, bytes));
            (count, bytes) = (0, 0);
        }
    }
    if count > 0 {
        pages.push(close(buf, count, bytes));
    }
    pages
}

fn close(mut buf: Vec<u8>, count: usize, files_bytes: u64) -> (Page, usize, u64) {
    buf.push(b']');
    let bytes = Bytes::from(buf);
    let digest = Digest::of_bytes(Algorithm::Sha256, &bytes);
    (Page { digest, bytes }, count, files_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: String) -> FileEntry {
        FileEntry {
            sha256: format!("{:064x}", path.len()),
            oid: format!("{:040x}", path.len()),
            path,
            size: 1,
            lfs: false,
            xet_hash: None,
        }
    }

    fn commit(files: Vec<FileEntry>) -> Commit {
        Commit {
            id: "0".repeat(40),
            parents: vec!["1".repeat(40)],
            title: "t".into(),
            message: "m".into(),
            author: "a".into(),
            date: "2026-12-04T00:00:00.000Z".into(),
            files,
            config: None,
        }
    }

    fn read_back(encoded: &Encoded) -> Commit {
        let stored = decode(&encoded.doc).unwrap();
        let mut files = Vec::new();
        for (page, bytes) in stored.file_pages.iter().zip(&encoded.pages) {
            assert_eq!(page.sha256, bytes.digest.hex());
            files.extend(decode_page(page, &bytes.bytes).unwrap());
        }
        stored.into_commit(files)
    }

    #[test]
    fn a_small_commit_stays_one_document_as_before() {
        let c = commit((0..100).map(|i| file(format!("f{i:03}"))).collect());
        let encoded = encode(&c).unwrap();
        assert!(encoded.pages.is_empty());
        assert_eq!(encoded.doc, serde_json::to_vec(&c).unwrap());
        assert_eq!(read_back(&encoded).files, c.files);
    }

    #[test]
    fn a_large_commit_is_paged_and_reads_back_whole() {
        let c = commit(
            (0..30_000)
                .map(|i| file(format!("data/{i:06}.parquet")))
                .collect(),
        );
        let encoded = encode(&c).unwrap();
        assert!(encoded.pages.len() > 3, "{} pages", encoded.pages.len());
        assert!(encoded.doc.len() < 64 << 10, "{} bytes", encoded.doc.len());
        assert!(encoded
            .pages
            .iter()
            .all(|p| p.bytes.len() <= MAX_PAGE_BYTES));
        let back = read_back(&encoded);
        assert_eq!(back.files, c.files);
        assert_eq!(back.parents, c.parents);
    }

    #[test]
    fn a_file_added_to_a_large_commit_changes_one_page() {
        let paths: Vec<String> = (0..30_000).map(|i| format!("data/{:06}", i * 2)).collect();
        let before = encode(&commit(paths.iter().cloned().map(file).collect())).unwrap();
        let mut added = paths.clone();
        added.push("data/030001".into());
        added.sort();
        let after = encode(&commit(added.into_iter().map(file).collect())).unwrap();
        let old: std::collections::HashSet<_> = before.pages.iter().map(|p| &p.digest).collect();
        let new = after
            .pages
            .iter()
            .filter(|p| !old.contains(&p.digest))
            .count();
        assert!(new <= 2, "{new} of {} pages are new", after.pages.len());
    }

    #[test]
    fn a_commit_of_too_many_files_is_refused_with_the_limit() {
        let one = file("f".into());
        let c = commit(vec![one; MAX_COMMIT_FILES + 1]);
        let refused = encode(&c).err().expect("refused");
        assert_eq!(refused.status, http::StatusCode::BAD_REQUEST);
        assert!(
            refused.message.contains("at most 300000 files"),
            "{}",
            refused.message
        );
    }

    #[test]
    fn a_page_that_does_not_hold_what_its_commit_says_is_corrupt() {
        let page = FilePage {
            sha256: "0".repeat(64),
            files: 2,
            bytes: None,
        };
        let one = serde_json::to_vec(&[file("a".into())]).unwrap();
        assert!(decode_page(&page, &one).is_err());
        let sized = FilePage {
            files: 1,
            bytes: Some(2),
            ..page
        };
        assert!(decode_page(&sized, &one).is_err(), "1 byte of files, not 2");
    }

    #[test]
    fn a_summary_needs_no_page() {
        let mut files: Vec<FileEntry> = (0..30_000)
            .map(|i| file(format!("data/{i:06}.parquet")))
            .collect();
        files[7].size = 1 << 40;
        let c = commit(files);
        let total = 30_000 - 1 + (1 << 40);
        let paged = decode(&encode(&c).unwrap().doc).unwrap();
        assert!(!paged.file_pages.is_empty());
        let summary = paged.summary().expect("every page records its size");
        assert_eq!(
            (summary.id, summary.files, summary.used_storage),
            (c.id.clone(), 30_000, total)
        );
        let inline = decode(&encode(&commit(c.files[..10].to_vec())).unwrap().doc).unwrap();
        assert_eq!(inline.summary().unwrap().used_storage, 9 + (1 << 40));
    }

    #[test]
    fn a_paged_commit_written_before_page_sizes_has_no_summary() {
        let c = commit((0..30_000).map(|i| file(format!("d/{i:06}"))).collect());
        let mut doc: serde_json::Value = serde_json::from_slice(&encode(&c).unwrap().doc).unwrap();
        for page in doc["file_pages"].as_array_mut().unwrap() {
            page.as_object_mut().unwrap().remove("bytes");
        }
        let old = decode(&serde_json::to_vec(&doc).unwrap()).unwrap();
        assert!(old.summary().is_none());
    }
}
