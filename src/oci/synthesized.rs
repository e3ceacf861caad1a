//! Images the registry makes instead of storing: a feature built over other content
//! (the model images of `modelimage/`) claims a reserved part of the name space and
//! answers its reads, while the registry keeps the HTTP side — token flow, challenges,
//! ranges, error bodies — and refuses every write and pull-through under it. The
//! feature is handed in by the server, so the registry never imports it.

use super::endpoint::Reference;
use super::error::Result;
use crate::auth::Identity;
use crate::digest::Digest;
use crate::store::{ByteStream, StoreError};
use bytes::Bytes;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A generated manifest (or index); its digest is the sha256 of `bytes`.
#[derive(Clone, Debug)]
pub struct SynthManifest {
    pub media_type: &'static str,
    pub bytes: Bytes,
}

/// Bytes made on demand, read by range (`range` is within `0..size`).
pub trait RangeRead: Send + Sync {
    fn read(&self, range: Range<u64>) -> BoxFuture<'_, Result<ByteStream, StoreError>>;
}

/// How a blob of a synthesized image is served.
#[derive(Clone)]
pub enum SynthBlob {
    /// A blob of the store, served as any other (sendfile, presigned redirect).
    Stored(Digest),
    /// Generated: small documents from memory, tar framing around stored files.
    Generated {
        size: u64,
        reader: Arc<dyn RangeRead>,
    },
}

impl std::fmt::Debug for SynthBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SynthBlob::Stored(d) => write!(f, "Stored({d})"),
            SynthBlob::Generated { size, .. } => write!(f, "Generated({size} bytes)"),
        }
    }
}

/// A reader of bytes already in memory.
pub struct InMemory(pub Bytes);

impl RangeRead for InMemory {
    fn read(&self, range: Range<u64>) -> BoxFuture<'_, Result<ByteStream, StoreError>> {
        let part = self.0.slice(range.start as usize..range.end as usize);
        Box::pin(async move { Ok(crate::store::bytes_stream(part)) })
    }
}

/// The reads of a reserved name space. Each call authorizes `identity` itself (the
/// registry's own scopes do not apply here); an `UNAUTHORIZED` error is answered with
/// the token service's challenge.
pub trait Synthesizer: Send + Sync + std::fmt::Debug {
    /// Whether the canonical name `<host>/<path>` is in the reserved space.
    fn claims(&self, name: &str) -> bool;

    /// Why writes are refused under this name (for the `DENIED` message).
    fn read_only_reason(&self) -> &'static str;

    fn tags<'a>(
        &'a self,
        identity: &'a Identity,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>>>;

    fn manifest<'a>(
        &'a self,
        identity: &'a Identity,
        name: &'a str,
        reference: &'a Reference,
    ) -> BoxFuture<'a, Result<SynthManifest>>;

    fn blob<'a>(
        &'a self,
        identity: &'a Identity,
        name: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<SynthBlob>>;
}
