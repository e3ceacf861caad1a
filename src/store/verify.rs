//! Checks a body against its expected digest and size while it streams, so a backend
//! can decide to publish or discard at the end without a second pass over the data.

use super::StoreError;
use crate::digest::{Digest, Hasher};

pub(crate) struct Verifier {
    hasher: Option<(Hasher, Digest)>,
    expected_size: Option<u64>,
    size: u64,
}

impl Verifier {
    pub(crate) fn new(expected_digest: Option<&Digest>, expected_size: Option<u64>) -> Self {
        Verifier {
            hasher: expected_digest.map(|d| (Hasher::new(d.algorithm()), d.clone())),
            expected_size,
            size: 0,
        }
    }

    /// Feeds one chunk; fails early once more bytes arrived than expected.
    pub(crate) fn update(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.size += chunk.len() as u64;
        if let Some(expected) = self.expected_size {
            if self.size > expected {
                return Err(StoreError::SizeMismatch {
                    expected,
                    actual: self.size,
                });
            }
        }
        if let Some((h, _)) = &mut self.hasher {
            h.update(chunk);
        }
        Ok(())
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Whether the complete body may be published.
    pub(crate) fn finish(self) -> Result<u64, StoreError> {
        if let Some(expected) = self.expected_size {
            if self.size != expected {
                return Err(StoreError::SizeMismatch {
                    expected,
                    actual: self.size,
                });
            }
        }
        if let Some((h, expected)) = self.hasher {
            let actual = h.finish();
            if actual != expected {
                return Err(StoreError::DigestMismatch { expected, actual });
            }
        }
        Ok(self.size)
    }
}
