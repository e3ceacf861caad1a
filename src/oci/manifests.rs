//! Manifests: served byte for byte with their pushed media type, checked on push
//! against what the repository holds, deleted by tag or digest.

use super::*;
fn manifest_unknown(repo: &Repo, reference: &impl std::fmt::Display) -> OciError {
    OciError::new(
        Code::ManifestUnknown,
        format!(
            "manifest `{reference}` is not in repository `{}`",
            repo.name
        ),
    )
}

pub(super) async fn get_manifest(
    registry: &Registry,
    repo: &Repo,
    reference: &Reference,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response> {
    let doc = registry
        .repo(&repo.name)
        .await?
        .ok_or_else(|| manifest_unknown(repo, reference))?;
    let digest = match reference {
        Reference::Tag(tag) => doc
            .tags
            .get(tag)
            .ok_or_else(|| manifest_unknown(repo, reference))?,
        Reference::Digest(d) => d,
    };
    let entry = doc
        .manifests
        .get(digest)
        .ok_or_else(|| manifest_unknown(repo, reference))?;
    let etag = format!("\"{digest}\"");
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut r = if head || not_modified {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(registry.manifest_bytes(digest).await?))
    };
    if not_modified {
        *r.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let h = r.headers_mut();
    // A manifest stored before pushes were held to the manifest types is served as
    // opaque bytes, never as whatever its pusher declared.
    let media_type = Some(entry.media_type.as_str())
        .filter(|t| manifest::is_index_type(t).is_some())
        .unwrap_or("application/octet-stream");
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(media_type).expect("a known media type"),
    );
    if !not_modified {
        h.insert(header::CONTENT_LENGTH, entry.size.into());
    }
    h.insert("docker-content-digest", digest_header(digest));
    h.insert(header::ETAG, HeaderValue::from_str(&etag).expect("ascii"));
    Ok(r)
}

pub(super) async fn put_manifest(
    state: &OciState,
    registry: &Registry,
    repo: &Repo,
    reference: &Reference,
    request: Request,
) -> Result<Response> {
    let too_large = || {
        OciError::new(
            Code::SizeInvalid,
            format!("manifest larger than {MAX_MANIFEST_BYTES} bytes"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    let headers = request.headers().clone();
    let query = request.uri().query().unwrap_or("").to_string();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_DRAIN_BYTES) {
        return Err(too_large());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string());
    // Read past the limit (up to a bound) before refusing, so the client sees the 413
    // rather than a connection reset in the middle of its upload.
    let mut body = request_body(request);
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(chunk) = futures::StreamExt::next(&mut body).await {
        let chunk = chunk.map_err(|e| OciError::from(StoreError::Body(e)))?;
        seen += chunk.len();
        if seen > MAX_DRAIN_BYTES {
            break;
        }
        if seen <= MAX_MANIFEST_BYTES {
            buf.extend_from_slice(&chunk);
        }
    }
    if seen > MAX_MANIFEST_BYTES {
        return Err(too_large());
    }
    let bytes = buf.freeze();
    let inspected = manifest::inspect(&bytes, content_type.as_deref())?;
    let digest = match reference {
        Reference::Digest(d) => {
            let actual = Digest::of_bytes(d.algorithm(), &bytes);
            if &actual != d {
                return Err(OciError::new(
                    Code::DigestInvalid,
                    format!("the manifest's digest is {actual}, not {d}"),
                ));
            }
            actual
        }
        Reference::Tag(_) => Digest::of_bytes(Algorithm::Sha256, &bytes),
    };
    let mut tags: Vec<String> = query_all(&query, "tag");
    if let Some(bad) = tags.iter().find(|t| !names::is_valid_tag(t)) {
        return Err(OciError::new(
            Code::TagInvalid,
            format!("`{bad}` is not a valid tag"),
        ));
    }
    if let Reference::Tag(t) = reference {
        tags.push(t.clone());
    }

    // Every referenced blob must be in this repository already (checked concurrently:
    // on S3 each check is a round trip).
    let checks = inspected.blobs.iter().map(|d| async move {
        match registry.blob_linked(&repo.name, d).await {
            Ok(true) => Ok(None),
            Ok(false) => Ok(Some(d.clone())),
            Err(e) => Err(e),
        }
    });
    let missing = futures::future::try_join_all(checks).await?;
    if let Some(d) = missing.into_iter().flatten().next() {
        return Err(OciError::new(
            Code::ManifestBlobUnknown,
            format!(
                "blob {d} is not in repository `{}`; push it first",
                repo.name
            ),
        ));
    }
    if let Some(limit) = state.settings.quotas.under(&repo.name) {
        let mut adding = super::quota::descriptors(&bytes);
        adding.push((digest.clone(), bytes.len() as u64));
        super::quota::admit(registry, &limit, &adding).await?;
    }
    // Claimed, so a collection running now cannot remove them under the manifest; one
    // that already did leaves a link to nothing, and the client must push the blob again.
    let (claim, gone) = registry.blobs().claim(&inspected.blobs).await?;
    let stored = store_manifest(registry, repo, &digest, &bytes, &inspected, &tags, &gone).await;
    claim.release().await;
    stored?;
    tracing::info!(repo = %repo.name, %digest, tags = ?tags, "oci manifest pushed");

    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::CREATED;
    let h = r.headers_mut();
    h.insert(
        header::LOCATION,
        location(
            state,
            &format!(
                "/v2/{}/manifests/{digest}",
                repo.url_name(&state.settings.default_registry)
            ),
        ),
    );
    h.insert("docker-content-digest", digest_header(&digest));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    if let Some(subject) = &inspected.subject {
        h.insert("oci-subject", digest_header(subject));
    }
    for tag in query_all(&query, "tag") {
        if let Ok(v) = HeaderValue::from_str(&tag) {
            h.append("oci-tag", v);
        }
    }
    Ok(r)
}

pub(super) async fn delete_manifest(
    registry: &Registry,
    repo: &Repo,
    reference: &Reference,
) -> Result<Response> {
    let mut found = false;
    registry
        .update_repo(&repo.name, |doc| {
            found = match reference {
                Reference::Tag(tag) => doc.tags.remove(tag).is_some(),
                Reference::Digest(d) => {
                    doc.tags.retain(|_, target| target != d);
                    doc.manifests.remove(d).is_some()
                }
            };
            Ok(found)
        })
        .await?;
    if !found {
        return Err(manifest_unknown(repo, reference));
    }
    tracing::info!(repo = %repo.name, %reference, "oci manifest deleted");
    Ok(accepted())
}

/// Stores a pushed manifest and enters it (and its tags) in the repository, once every
/// blob it names is known to be stored (`gone`: those a collection removed since they
/// were pushed, which the client must push again).
#[allow(clippy::too_many_arguments)]
async fn store_manifest(
    registry: &Registry,
    repo: &Repo,
    digest: &Digest,
    bytes: &bytes::Bytes,
    inspected: &super::manifest::Inspected,
    tags: &[String],
    gone: &[Digest],
) -> Result<()> {
    if let Some(d) = gone.first() {
        for d in gone {
            registry.unlink_blob(&repo.name, d).await?;
        }
        return Err(OciError::new(
            Code::ManifestBlobUnknown,
            format!("blob {d} is no longer stored (garbage collection removed it after it was pushed); push it again"),
        ));
    }
    registry
        .blobs()
        .put(
            digest,
            crate::store::bytes_stream(bytes.clone()),
            Some(bytes.len() as u64),
        )
        .await?;
    let entry = ManifestEntry::new(inspected, bytes.len() as u64);
    registry
        .update_repo(&repo.name, |doc| {
            if let Some(child) = inspected
                .children
                .iter()
                .find(|c| !doc.manifests.contains_key(c))
            {
                return Err(OciError::new(
                    Code::ManifestBlobUnknown,
                    format!(
                        "manifest {child} is not in repository `{}`; push it first",
                        repo.name
                    ),
                ));
            }
            let mut changed = doc.manifests.get(digest) != Some(&entry);
            doc.manifests.insert(digest.clone(), entry.clone());
            for tag in tags {
                changed |= doc.tags.insert(tag.clone(), digest.clone()).as_ref() != Some(digest);
                changed |= doc.upstream_tags.remove(tag).is_some();
            }
            Ok(changed)
        })
        .await?;
    Ok(())
}
