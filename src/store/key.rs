//! Validated object keys. Keys become file paths on the filesystem backend, so the
//! checks here are what keeps a crafted name from escaping the store root.

use super::StoreError;
use std::fmt;

/// A `/`-separated key: no empty, `.` or `..` segments, no backslashes or control
/// characters, and no leading `.` on the first segment (reserved for the store's own
/// temporary files).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

const MAX_KEY_LEN: usize = 1024;

impl ObjectKey {
    pub fn new(key: impl Into<String>) -> Result<Self, StoreError> {
        let key = key.into();
        let valid = !key.is_empty()
            && key.len() <= MAX_KEY_LEN
            && !key.starts_with('.')
            && key
                .split('/')
                .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
            && !key.chars().any(|c| c == '\\' || c.is_control());
        if valid {
            Ok(ObjectKey(key))
        } else {
            Err(StoreError::InvalidKey(key))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_keys() {
        for k in [
            "a",
            "blobs/sha256/ab/abcdef",
            "meta/oci/docker.io/library/busybox/_tags/1.36",
        ] {
            assert!(ObjectKey::new(k).is_ok(), "{k}");
        }
    }

    #[test]
    fn refuses_traversal_and_oddities() {
        for k in [
            "", "/abs", "a//b", "a/", "../x", "a/../b", "a/./b", ".tmp/x", "a\\b", "a\0b", "a\nb",
        ] {
            assert!(ObjectKey::new(k).is_err(), "{k:?}");
        }
        assert!(ObjectKey::new("x".repeat(MAX_KEY_LEN + 1)).is_err());
    }
}
