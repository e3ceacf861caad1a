//! S3-compatible backend (AWS S3, MinIO, Ceph RGW, Garage) through aws-sdk-s3.

use super::{
    ByteStream, GetOptions, GetResult, ListPage, ObjectKey, ObjectMeta, ObjectStore, PutOptions,
    PutResult, Result,
};
use async_trait::async_trait;
use serde::Deserialize;

/// How conditional puts (`PutMode::Create`/`Update`) are made safe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConditionalWrites {
    /// Probe the server at open: native if it honours `If-None-Match`/`If-Match` on
    /// PutObject, local otherwise.
    #[default]
    Auto,
    /// The server enforces `If-None-Match: *` and `If-Match: <etag>` (AWS S3, MinIO, Ceph RGW).
    Native,
    /// Check-then-put under a per-key lock inside this process (servers that ignore the
    /// headers, such as Garage): safe for one Airlock replica per bucket.
    Local,
}

/// S3 connection settings; credentials come from the standard AWS chain.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// Endpoint URL for non-AWS servers (`AWS_ENDPOINT_URL` when unset).
    pub endpoint: Option<String>,
    /// Region (`AWS_REGION` when unset; `us-east-1` as a last resort).
    pub region: Option<String>,
    /// Path-style addressing (`http://host/bucket/key`); defaults to on when an endpoint is set.
    pub path_style: Option<bool>,
    #[serde(default)]
    pub conditional_writes: ConditionalWrites,
}

#[derive(Debug)]
pub struct S3Store {}

impl S3Store {
    pub async fn open(bucket: String, prefix: String, settings: &S3Settings) -> anyhow::Result<Self> {
        let _ = (bucket, prefix, settings);
        anyhow::bail!("the S3 backend is being written")
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn get(&self, _key: &ObjectKey, _options: GetOptions) -> Result<GetResult> {
        unimplemented!()
    }
    async fn head(&self, _key: &ObjectKey) -> Result<ObjectMeta> {
        unimplemented!()
    }
    async fn put(&self, _key: &ObjectKey, _body: ByteStream, _options: PutOptions) -> Result<PutResult> {
        unimplemented!()
    }
    async fn list(&self, _prefix: &str, _start_after: Option<&str>, _limit: usize) -> Result<ListPage> {
        unimplemented!()
    }
    async fn delete(&self, _key: &ObjectKey) -> Result<()> {
        unimplemented!()
    }
    fn describe(&self) -> String {
        String::new()
    }
}
