//! The operations the S3 view serves, once the caller is known: thin, over `keys`,
//! `listing` and `object`.
//!
//! A repository the caller may not read answers exactly as one that does not exist, as
//! the Hub answers it (RepoNotFound): absent from listings, `NoSuchKey` on HEAD and GET.
//! A gated repository is listed to everyone who sees it, and its files are
//! `AccessDenied` to callers without a read scope for it (the Hub's 401/403 GatedRepo).

use super::endpoint::{Endpoint, ListV1, ListV2, ResponseHeaders};
use super::error::{Code, S3Error};
use super::keys;
use super::keys::RepoAt;
use super::listing::{self, Page, Source};
use super::object::{Fill, Read};
use super::xml::{self, Listing, Owner};
use super::S3State;
use crate::auth::{Action, Identity, Protocol};
use crate::hf::access::{may_read_gated_files, repo_access, RepoAccess};
use crate::hf::model::RepoType;
use crate::hf::pullthrough;
use crate::hf::HfError;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use std::time::SystemTime;

pub async fn serve(
    state: &S3State,
    identity: &Identity,
    endpoint: Endpoint,
    headers: &HeaderMap,
) -> Result<Response, S3Error> {
    match endpoint {
        Endpoint::ListBuckets => {
            let buckets: Vec<xml::Bucket> = keys::BUCKETS
                .iter()
                .map(|name| xml::Bucket {
                    name: name.to_string(),
                    created: SystemTime::UNIX_EPOCH,
                })
                .collect();
            Ok(xml_response(xml::list_all_my_buckets(
                &owner(identity),
                &buckets,
            )))
        }
        Endpoint::HeadBucket { bucket } => {
            kind(&bucket)?;
            let mut r = StatusCode::OK.into_response();
            if let Ok(region) = HeaderValue::from_str(&state.region) {
                r.headers_mut().insert("x-amz-bucket-region", region);
            }
            Ok(r)
        }
        Endpoint::GetBucketLocation { bucket } => {
            kind(&bucket)?;
            Ok(xml_response(xml::location_constraint(&state.region)))
        }
        Endpoint::ListObjects { bucket, list } => list_v1(state, identity, &bucket, list).await,
        Endpoint::ListObjectsV2 { bucket, list } => list_v2(state, identity, &bucket, list).await,
        Endpoint::HeadObject {
            bucket,
            key,
            part_number,
        } => {
            let read = Read {
                head: true,
                part_number,
                overrides: &ResponseHeaders::default(),
            };
            object(state, identity, &bucket, &key, headers, read).await
        }
        Endpoint::GetObject {
            bucket,
            key,
            part_number,
            response_headers,
        } => {
            let read = Read {
                head: false,
                part_number,
                overrides: &response_headers,
            };
            object(state, identity, &bucket, &key, headers, read).await
        }
        Endpoint::Unsupported { operation, .. } => Err(S3Error::not_implemented(operation)),
    }
}

fn xml_response(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        )],
        body,
    )
        .into_response()
}

fn owner(identity: &Identity) -> Owner {
    Owner {
        id: identity.name().to_string(),
        display_name: identity.name().to_string(),
    }
}

fn kind(bucket: &str) -> Result<RepoType, S3Error> {
    keys::bucket_kind(bucket).ok_or_else(|| S3Error::no_such_bucket(bucket))
}

/// A failure of the Hub's domain: an outage is a 503 the SDKs retry.
fn hf_error(e: HfError) -> S3Error {
    if e.status.is_server_error() {
        S3Error::new(Code::ServiceUnavailable, e.message)
    } else {
        S3Error::new(Code::InternalError, e.message)
    }
}

/// With `[hf] upstream` set, a repository at a revision is brought in (or revalidated)
/// before it is read, as the Hub routes do, for a caller who may read it: the permission
/// is checked before anything is asked of the upstream. `Ok(false)`: not upstream either.
async fn pull_revision(state: &S3State, identity: &Identity, at: &RepoAt) -> Result<bool, S3Error> {
    let Some(pull) = &state.pull else {
        return Ok(true);
    };
    let may_read = state.auth.anonymous_read()
        || state
            .auth
            .authorize(identity, Protocol::Hf, Action::Read, &at.repo.scope_name())
            .is_ok();
    if !may_read {
        return Ok(true);
    }
    match pullthrough::refresh_revision(Some(&pull.upstream), &state.repos, &at.repo, at.rev())
        .await
    {
        Ok(()) => Ok(true),
        Err(e) if e.status == StatusCode::NOT_FOUND => Ok(false),
        Err(e) => Err(hf_error(e)),
    }
}

async fn page(
    state: &S3State,
    identity: &Identity,
    bucket: &str,
    request: &listing::Request,
) -> Result<Page, S3Error> {
    let kind = kind(bucket)?;
    // A prefix inside one repository lists it as the upstream has it; a wider one lists
    // what is here (the upstream is not enumerated).
    if let Some(at) = keys::prefix_repo(kind, &request.prefix) {
        pull_revision(state, identity, &at).await?;
    }
    let mut source = Source::new(&state.repos, &state.auth, identity, kind, &request.prefix)
        .await
        .map_err(hf_error)?;
    let mut page = source.page(request).await.map_err(hf_error)?;
    // `max-keys=0` returns nothing and has nothing to continue from.
    page.truncated &= page.last.is_some();
    Ok(page)
}

fn listing(
    bucket: &str,
    identity: &Identity,
    request: listing::Request,
    url_encoded: bool,
    page: Page,
    kind: xml::Page,
) -> Listing {
    Listing {
        bucket: bucket.to_string(),
        prefix: request.prefix,
        delimiter: request.delimiter,
        max_keys: request.max_keys,
        url_encoded,
        is_truncated: page.truncated,
        contents: page
            .contents
            .into_iter()
            .map(|e| xml::Object {
                key: e.key,
                last_modified: e.last_modified,
                etag: e.sha256,
                size: e.size,
            })
            .collect(),
        common_prefixes: page.common_prefixes,
        page: kind,
        owner: owner(identity),
    }
}

async fn list_v1(
    state: &S3State,
    identity: &Identity,
    bucket: &str,
    list: ListV1,
) -> Result<Response, S3Error> {
    let request = listing::Request {
        prefix: list.prefix,
        delimiter: list.delimiter,
        after: list.marker.clone(),
        max_keys: list.max_keys,
    };
    let page = page(state, identity, bucket, &request).await?;
    // Without a delimiter clients continue from the last key, as AWS documents.
    let next_marker = (page.truncated && request.delimiter.is_some())
        .then(|| page.last.clone())
        .flatten();
    let kind = xml::Page::V1 {
        marker: list.marker.unwrap_or_default(),
        next_marker,
    };
    let body = listing(bucket, identity, request, list.url_encoded, page, kind).to_xml();
    Ok(xml_response(body))
}

async fn list_v2(
    state: &S3State,
    identity: &Identity,
    bucket: &str,
    list: ListV2,
) -> Result<Response, S3Error> {
    let after = match &list.continuation_token {
        Some(token) => Some(listing::parse_continuation_token(token).ok_or_else(|| {
            S3Error::new(
                Code::InvalidArgument,
                "The continuation token provided is incorrect",
            )
        })?),
        None => list.start_after.clone(),
    };
    let request = listing::Request {
        prefix: list.prefix,
        delimiter: list.delimiter,
        after,
        max_keys: list.max_keys,
    };
    let page = page(state, identity, bucket, &request).await?;
    let next = page
        .truncated
        .then(|| page.last.as_deref().map(listing::continuation_token))
        .flatten();
    let kind = xml::Page::V2 {
        continuation_token: list.continuation_token,
        next_continuation_token: next,
        start_after: list.start_after,
        fetch_owner: list.fetch_owner,
    };
    let body = listing(bucket, identity, request, list.url_encoded, page, kind).to_xml();
    Ok(xml_response(body))
}

async fn object(
    state: &S3State,
    identity: &Identity,
    bucket: &str,
    key: &str,
    headers: &HeaderMap,
    read: Read<'_>,
) -> Result<Response, S3Error> {
    let kind = kind(bucket)?;
    let missing = || S3Error::no_such_key(bucket, key);
    let (at, path) = keys::parse_file_key(kind, key).ok_or_else(missing)?;
    if !pull_revision(state, identity, &at).await? {
        return Err(missing());
    }
    let doc = state
        .repos
        .repo(&at.repo)
        .await
        .map_err(hf_error)?
        .ok_or_else(missing)?;
    if repo_access(&state.auth, identity, &at.repo, &doc) != RepoAccess::Granted {
        return Err(missing());
    }
    if doc.gated && !may_read_gated_files(&state.auth, identity, &at.repo) {
        return Err(S3Error::new(
            Code::AccessDenied,
            format!(
                "Access Denied: {} is gated; sign with a token that has a read scope for it",
                at.repo.id
            ),
        )
        .with_resource(format!("/{bucket}/{key}")));
    }
    let view = match state.repos.resolve(&at.repo, at.rev()).await {
        Ok(view) => view,
        Err(e) if e.status == StatusCode::NOT_FOUND => return Err(missing()),
        Err(e) => return Err(hf_error(e)),
    };
    let file = view.file(&path).ok_or_else(missing)?;
    let fill = state.pull.as_ref().map(|pull| Fill {
        pull,
        repo: &at.repo,
        commit: &view.commit.id,
    });
    super::object::respond(
        &state.repos,
        fill,
        file,
        listing::commit_date(&view),
        headers,
        read,
        &format!("/{bucket}/{key}"),
    )
    .await
}
