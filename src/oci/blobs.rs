//! Blobs: pulls with ranges through the shared blob response, and per-repository
//! deletes (the content itself stays in the shared store).

use super::*;
/// A blob is in a repository when it was pushed or mounted there, or is one of its
/// manifests (clients may fetch manifests through the blob endpoint).
async fn in_repo(registry: &Registry, repo: &Repo, digest: &Digest) -> Result<bool> {
    if registry.blob_linked(&repo.name, digest).await? {
        return Ok(true);
    }
    Ok(registry
        .repo(&repo.name)
        .await?
        .is_some_and(|doc| doc.manifests.contains_key(digest)))
}

fn blob_unknown(repo: &Repo, digest: &Digest) -> OciError {
    OciError::new(
        Code::BlobUnknown,
        format!("blob {digest} is not in repository `{}`", repo.name),
    )
}

pub(super) async fn get_blob(
    state: &OciState,
    registry: &Registry,
    repo: &Repo,
    digest: &Digest,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response> {
    let linked = in_repo(registry, repo, digest).await?;
    let stored = linked && registry.blobs().exists(digest).await?;
    match serve_blob(state, registry, repo, digest, headers, head, linked, stored).await {
        // A pull-through copy evicted since this process last saw it: the failed read
        // made the store forget it, and this pass fetches it from the upstream again.
        Err(e) if stored && state.upstream.is_some() && e.code == Code::BlobUnknown => {
            serve_blob(state, registry, repo, digest, headers, head, linked, false).await
        }
        served => served,
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve_blob(
    state: &OciState,
    registry: &Registry,
    repo: &Repo,
    digest: &Digest,
    headers: &HeaderMap,
    head: bool,
    linked: bool,
    stored: bool,
) -> Result<Response> {
    if state.upstream.is_some() && !stored {
        let filled = super::pullthrough::fill_blob(
            state.upstream.as_ref(),
            &state.filler,
            registry,
            repo,
            digest,
            headers,
            head,
        )
        .await?;
        if let Some((size, body)) = filled {
            let mut streaming = crate::download::streamed(digest, size, body);
            streaming
                .headers_mut()
                .insert("docker-content-digest", digest_header(digest));
            return Ok(streaming);
        }
    } else if !linked {
        return Err(blob_unknown(repo, digest));
    }
    let mut r = blob_response(registry.blobs(), digest, headers, head)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => blob_unknown(repo, digest),
            other => other.into(),
        })?;
    r.headers_mut()
        .insert("docker-content-digest", digest_header(digest));
    Ok(r)
}

pub(super) async fn delete_blob(
    registry: &Registry,
    repo: &Repo,
    digest: &Digest,
) -> Result<Response> {
    if !registry.blob_linked(&repo.name, digest).await? {
        return Err(blob_unknown(repo, digest));
    }
    // The content stays in the shared blob store: other repositories may hold it.
    registry.unlink_blob(&repo.name, digest).await?;
    tracing::info!(repo = %repo.name, %digest, "oci blob unlinked");
    Ok(accepted())
}
