//! The S3 API: a read-only view of the Hugging Face repositories for S3 clients (boto3,
//! `aws s3`, rclone, KServe's `s3://` storage initializer), not a protocol of its own.
//! Buckets `models` and `datasets` will hold keys `<org>/<name>/<path>`; like `catalog`
//! it is a cross-cutting module, reading the repositories through the Hub's domain API,
//! never its handlers.
//!
//! Credentials: the access key id is a `[[tokens]]` name (`admin` for the admin token)
//! and the secret access key is that token's secret (`Auth::s3_secret`).
//!
//! Here so far, the parts that need no store:
//! - `sigv4`: Signature Version 4 verification (headers and presigned URLs);
//! - `query`: the query string decoded once, shared by `sigv4` and `endpoint` so what is
//!   signed and what is served agree;
//! - `endpoint`: every S3 request as one typed `Endpoint`, path-style or virtual-hosted;
//! - `error` and `xml`: the S3 XML error body and the listing documents.
//!
//! Still to come: the listener of its own (`s3_listen`: path-style `/bucket/key` collides
//! with the Hub's root routes; it must hand HTTP/2's `:authority` to both parsers as the
//! host), the mapping of buckets and keys onto repositories with a revision pin, scopes
//! checked as the Hub routes check them (`Endpoint::action`), and GetObject streamed from
//! the store with ranges and conditionals through `download.rs`.

pub mod endpoint;
pub mod error;
pub mod query;
pub mod sigv4;
pub mod xml;
