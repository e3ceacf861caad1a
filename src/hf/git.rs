//! Git-faithful identities, so clients that pin commits and compare oids see what the
//! Hub would show: blob oids (sha1 of `blob <len>\0<content>`), LFS pointers, tree oids
//! and commit ids.

use sha1::{Digest as _, Sha1};

/// Files above this size are stored as LFS, as the Hub does.
pub const LFS_THRESHOLD: u64 = 10 * 1024 * 1024;

pub fn blob_oid(content: &[u8]) -> String {
    object_id("blob", content)
}

fn object_id(kind: &str, body: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("{kind} {}\0", body.len()).as_bytes());
    h.update(body);
    hex::encode(h.finalize())
}

/// The pointer file git stores in place of an LFS file.
pub fn lfs_pointer(sha256_hex: &str, size: u64) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256_hex}\nsize {size}\n")
}

/// Incremental blob oid, for files streamed from disk (the length must be known first).
pub struct BlobHasher(Sha1);

impl BlobHasher {
    pub fn new(len: u64) -> Self {
        let mut h = Sha1::new();
        h.update(format!("blob {len}\0").as_bytes());
        BlobHasher(h)
    }
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// One entry of a tree object: a file (by blob oid) or a sub-tree.
pub struct TreeEntry<'a> {
    pub name: &'a str,
    pub oid: &'a str,
    pub is_dir: bool,
}

/// The oid of a tree object with these entries (git sorts names as if directories
/// ended in '/').
pub fn tree_oid(entries: &mut [TreeEntry<'_>]) -> String {
    entries.sort_by_key(sort_key);
    let mut body = Vec::new();
    for e in entries.iter() {
        body.extend_from_slice(if e.is_dir { b"40000 " } else { b"100644 " });
        body.extend_from_slice(e.name.as_bytes());
        body.push(0);
        body.extend_from_slice(&hex::decode(e.oid).expect("oid is hex"));
    }
    object_id("tree", &body)
}

fn sort_key(e: &TreeEntry<'_>) -> Vec<u8> {
    let mut k = e.name.as_bytes().to_vec();
    if e.is_dir {
        k.push(b'/');
    }
    k
}

/// The id of a commit object.
pub fn commit_oid(
    tree: &str,
    parents: &[String],
    author: &str,
    unix_time: i64,
    message: &str,
) -> String {
    let mut body = format!("tree {tree}\n");
    for p in parents {
        body.push_str(&format!("parent {p}\n"));
    }
    body.push_str(&format!(
        "author {author} {unix_time} +0000\ncommitter {author} {unix_time} +0000\n\n{message}\n"
    ));
    object_id("commit", body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            blob_oid(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        // the empty tree
        assert_eq!(
            tree_oid(&mut []),
            "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
        );
        let mut h = BlobHasher::new(6);
        h.update(b"hel");
        h.update(b"lo\n");
        assert_eq!(h.finish(), blob_oid(b"hello\n"));
        // `git mktree` of "100644 blob ce01...\thello.txt"
        let mut entries = [TreeEntry {
            name: "hello.txt",
            oid: "ce013625030ba8dba906f756967f9e9ca394464a",
            is_dir: false,
        }];
        assert_eq!(
            tree_oid(&mut entries),
            "aaa96ced2d9a1c8e72c56b253a0e2fe78393feb7"
        );
    }

    #[test]
    fn lfs_pointer_has_the_hub_layout() {
        let p = lfs_pointer(&"a".repeat(64), 42);
        assert!(p.starts_with("version https://git-lfs.github.com/spec/v1\noid sha256:aaaa"));
        assert!(p.ends_with("size 42\n"));
    }
}
