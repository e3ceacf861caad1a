//! Counts the operations that reach the backend, for `/metrics`: with an S3 store every
//! one is a round trip, so this is what the caches are judged by.

use super::{
    ByteStream, GetOptions, GetResult, KeyPage, ListPage, ObjectKey, ObjectMeta, ObjectStore,
    PutOptions, PutResult, Result,
};
use async_trait::async_trait;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct OpCounts {
    pub get: AtomicU64,
    pub head: AtomicU64,
    pub put: AtomicU64,
    pub list: AtomicU64,
    pub delete: AtomicU64,
}

impl OpCounts {
    /// (operation, count) pairs.
    pub fn snapshot(&self) -> [(&'static str, u64); 5] {
        [
            ("get", self.get.load(Ordering::Relaxed)),
            ("head", self.head.load(Ordering::Relaxed)),
            ("put", self.put.load(Ordering::Relaxed)),
            ("list", self.list.load(Ordering::Relaxed)),
            ("delete", self.delete.load(Ordering::Relaxed)),
        ]
    }
}

#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    counts: Arc<OpCounts>,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn ObjectStore>, counts: Arc<OpCounts>) -> Self {
        CountingStore { inner, counts }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn get(&self, key: &ObjectKey, options: GetOptions) -> Result<GetResult> {
        bump(&self.counts.get);
        self.inner.get(key, options).await
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta> {
        bump(&self.counts.head);
        self.inner.head(key).await
    }

    async fn put(
        &self,
        key: &ObjectKey,
        body: ByteStream,
        options: PutOptions,
    ) -> Result<PutResult> {
        bump(&self.counts.put);
        self.inner.put(key, body, options).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        bump(&self.counts.list);
        self.inner.list(prefix, start_after, limit).await
    }

    async fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage> {
        bump(&self.counts.list);
        self.inner.list_keys(prefix, start_after, limit).await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<()> {
        bump(&self.counts.delete);
        self.inner.delete(key).await
    }

    async fn presigned_get(&self, key: &ObjectKey) -> Result<Option<String>> {
        self.inner.presigned_get(key).await
    }

    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<PutResult> {
        bump(&self.counts.put);
        self.inner.copy(from, to).await
    }

    async fn remove_abandoned_writes(
        &self,
        before: std::time::SystemTime,
        dry_run: bool,
    ) -> Result<u64> {
        self.inner.remove_abandoned_writes(before, dry_run).await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}
