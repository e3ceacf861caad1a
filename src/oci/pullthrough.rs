//! OCI pull-through: manifests by tag are revalidated once per TTL, by digest fetched
//! on a miss; blobs are filled on a miss (coalesced, verified). What comes from the
//! upstream is stored through the registry's own records, byte for byte, as a push or
//! an import would store it. Requests go through `remote::` (token flow included).
//!
//! A tag pushed or imported here is this Airlock's own: pull-through never asks the
//! upstream about it and never moves it (`RepoDoc::upstream_tags` says which tags it set).
//! A blob is linked into a repository only once the upstream answered for that
//! repository, never because another repository's fill brought the bytes in.

use super::manifest::inspect;
use super::registry::{ManifestEntry, Registry};
use super::{Code, OciError, Reference, Repo, MAX_MANIFEST_BYTES};
use crate::digest::{Algorithm, Digest};
use crate::remote::token::{Credentials, RegistryAuth};
use crate::remote::{
    body_of, revalidate, Filled, Filler, Lookup, Open, Req, Upstream, UpstreamError,
    MANIFEST_ACCEPT,
};
use crate::store::{bytes_stream, ByteStream};
use bytes::Bytes;
use http::{header, HeaderMap, StatusCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The OCI upstream: the generic upstream, which registry it is, and its token flow.
#[derive(Debug)]
pub struct OciUpstream {
    pub up: Upstream,
    /// Set when the upstream is one registry (e.g. `docker.io` at registry-1.docker.io):
    /// only that host's repositories come from it, named without the host. Unset: the
    /// upstream takes host-prefixed names, as another Airlock does.
    registry: Option<String>,
    auth: Arc<RegistryAuth>,
}

/// A manifest as the upstream sent it.
struct Fetched {
    bytes: Bytes,
    media_type: Option<String>,
    digest: Digest,
}

impl OciUpstream {
    /// `realms`: token realms on other hosts trusted with the upstream token.
    pub fn new(up: Upstream, registry: Option<String>, realms: &[String]) -> OciUpstream {
        // The token is the password of Basic credentials, for the token realm (or for
        // the registry itself when it asks for Basic).
        let credentials = match &up.token {
            Some(secret) => Credentials::Basic {
                user: "airlock".into(),
                password: secret.clone(),
            },
            None => Credentials::Anonymous,
        };
        let auth = Arc::new(RegistryAuth::new(credentials, &up.base, realms));
        OciUpstream { up, registry, auth }
    }

    /// The upstream's URL for `/v2/<name>/<kind>/<reference>` and its name for the
    /// repository; `None` when this upstream does not serve that registry.
    fn url(&self, name: &str, kind: &str, reference: &str) -> Option<(String, String)> {
        let (path, ns) = match &self.registry {
            None => (name, None),
            Some(host) => (
                name.strip_prefix(host.as_str())?.strip_prefix('/')?,
                Some(host),
            ),
        };
        let mut url = self.up.url(&format!("/v2/{path}/{kind}/{reference}"));
        if let Some(ns) = ns {
            url.push_str(&format!("?ns={ns}"));
        }
        Some((url, path.to_string()))
    }

    /// Whether the upstream's repository `name` itself holds the blob (a HEAD of it there).
    async fn holds_blob(&self, name: &str, digest: &Digest) -> Result<(), UpstreamError> {
        let reference = digest.to_string();
        let head = Req::default().head();
        self.request(head, name, "blobs", &reference, "*/*")
            .await
            .map(drop)
    }

    async fn request(
        &self,
        req: Req,
        name: &str,
        kind: &str,
        reference: &str,
        accept: &str,
    ) -> Result<reqwest::Response, UpstreamError> {
        let (url, path) = self
            .url(name, kind, reference)
            .ok_or_else(|| UpstreamError::NotFound(format!("{name} is not from this upstream")))?;
        let req = req
            .accept(accept)
            .registry(self.auth.clone(), format!("repository:{path}:pull"));
        Ok(self.up.client.get(&url, &req).await?)
    }

    async fn manifest(&self, name: &str, reference: &Reference) -> Result<Fetched, UpstreamError> {
        let bad = |why: String| UpstreamError::Unavailable(format!("{name}:{reference}: {why}"));
        let response = self
            .request(
                Req::default(),
                name,
                "manifests",
                &reference.to_string(),
                MANIFEST_ACCEPT,
            )
            .await?;
        let header = |h: &str| {
            response
                .headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
        };
        let media_type = header("content-type").filter(|t| !t.is_empty());
        let announced: Option<Digest> = match header("docker-content-digest") {
            Some(d) => Some(
                d.parse()
                    .map_err(|e| bad(format!("Docker-Content-Digest: {e}")))?,
            ),
            None => None,
        };
        let (body, _) = body_of(response);
        let bytes = crate::store::collect_limited(body, MAX_MANIFEST_BYTES)
            .await
            .map_err(|e| bad(e.to_string()))?;
        let expected = match reference {
            Reference::Digest(d) => Some(d.clone()),
            Reference::Tag(_) => announced,
        };
        let algorithm = expected
            .as_ref()
            .map_or(Algorithm::Sha256, Digest::algorithm);
        let digest = Digest::of_bytes(algorithm, &bytes);
        if expected.as_ref().is_some_and(|e| *e != digest) {
            return Err(bad(format!(
                "content hashes to {digest}, not {}",
                expected.expect("checked")
            )));
        }
        Ok(Fetched {
            bytes,
            media_type,
            digest,
        })
    }

    /// The blob's body from the upstream, for the filler.
    fn open_blob(self: Arc<Self>, name: String, digest: Digest) -> Open {
        Box::pin(async move {
            let response = self
                .request(Req::default(), &name, "blobs", &digest.to_string(), "*/*")
                .await?;
            Ok(body_of(response))
        })
    }
}

fn unavailable(e: UpstreamError) -> OciError {
    OciError::new(Code::Unavailable, e.to_string()).with_status(StatusCode::BAD_GATEWAY)
}

/// Before a manifest is served: a missing one, or a tag not checked within the TTL, is
/// brought in from the upstream. Afterwards the store answers as usual (404 included).
pub async fn refresh_manifest(
    upstream: Option<&OciUpstream>,
    registry: &Registry,
    repo: &Repo,
    reference: &Reference,
) -> Result<(), OciError> {
    let Some(oci) = upstream else {
        return Ok(());
    };
    let doc = registry.repo(&repo.name).await?;
    let have = doc.as_ref().is_some_and(|d| match reference {
        Reference::Tag(t) => d.tags.contains_key(t),
        Reference::Digest(digest) => d.manifests.contains_key(digest),
    });
    if have && matches!(reference, Reference::Digest(_)) {
        return Ok(());
    }
    if let (Reference::Tag(t), Some(doc)) = (reference, &doc) {
        if doc.tag_is_local(t) {
            return Ok(());
        }
    }
    let fetch = async {
        match oci.manifest(&repo.name, reference).await {
            Ok(m) => {
                record(registry, repo, reference, m)
                    .await
                    .map_err(|e| UpstreamError::Unavailable(e.to_string()))?;
                Ok(Lookup::Stored)
            }
            Err(UpstreamError::NotFound(_)) => Ok(Lookup::Absent),
            Err(e) => Err(e),
        }
    };
    let key = format!("{}:{reference}", repo.name);
    revalidate(&oci.up, key, have, fetch)
        .await
        .map(|_| ())
        .map_err(unavailable)
}

async fn record(
    registry: &Registry,
    repo: &Repo,
    reference: &Reference,
    m: Fetched,
) -> Result<(), OciError> {
    let inspected = inspect(&m.bytes, m.media_type.as_deref())?;
    let size = m.bytes.len() as u64;
    registry
        .blobs()
        .put(&m.digest, bytes_stream(m.bytes), Some(size))
        .await?;
    let tag = match reference {
        Reference::Tag(t) => Some(t.as_str()),
        Reference::Digest(_) => None,
    };
    let entry = ManifestEntry::new(&inspected, size);
    let mut moved = false;
    registry
        .update_repo(&repo.name, |doc| {
            // Checked again here: a push may have claimed the tag since it was read.
            if tag.is_some_and(|t| doc.tag_is_local(t)) {
                moved = false;
                return Ok(false);
            }
            moved = doc.manifests.get(&m.digest) != Some(&entry);
            doc.manifests.insert(m.digest.clone(), entry.clone());
            if let Some(t) = tag {
                moved |=
                    doc.tags.insert(t.to_string(), m.digest.clone()).as_ref() != Some(&m.digest);
                doc.upstream_tags.insert(t.to_string(), m.digest.clone());
            }
            Ok(moved)
        })
        .await?;
    if moved {
        tracing::info!(repo = %repo.name, %reference, digest = %m.digest, "oci manifest pulled through");
    }
    Ok(())
}

/// A blob the repository does not hold (or whose bytes are not stored): linked when the
/// upstream has it, and filled when the store lacks it. `Some` is the body (and size)
/// streaming to this caller; `None` means it is stored and linked now, to be served as usual.
pub async fn fill_blob(
    upstream: Option<&Arc<OciUpstream>>,
    filler: &Filler,
    registry: &Registry,
    repo: &Repo,
    digest: &Digest,
    request: &HeaderMap,
    head: bool,
) -> Result<Option<(u64, ByteStream)>, OciError> {
    let Some(oci) = upstream else {
        return Ok(None);
    };
    let absent = |e: UpstreamError| match e {
        UpstreamError::NotFound(_) => OciError::new(
            Code::BlobUnknown,
            format!("blob {digest} is not in repository `{}`", repo.name),
        ),
        e => unavailable(e),
    };
    if registry.blobs().exists(digest).await? {
        // Stored for another repository: the upstream says whether this one holds it.
        oci.holds_blob(&repo.name, digest).await.map_err(absent)?;
        registry.link_blob(&repo.name, digest).await?;
        return Ok(None);
    }
    let whole = !head
        && !request.contains_key(header::RANGE)
        && !request.contains_key(header::IF_NONE_MATCH);
    // Set once the upstream answered this repository's own request for the blob.
    let confirmed = Arc::new(AtomicBool::new(false));
    let open: Open = {
        let (confirmed, open) = (
            confirmed.clone(),
            oci.clone().open_blob(repo.name.clone(), digest.clone()),
        );
        Box::pin(async move {
            let opened = open.await;
            confirmed.store(opened.is_ok(), Ordering::Release);
            opened
        })
    };
    let filled = filler
        .fill(digest, None, whole, open)
        .await
        .map_err(absent)?;
    if !confirmed.load(Ordering::Acquire) {
        // Another repository's fill (or one already done) brought the bytes in: whether
        // this repository holds the blob is still the upstream's to say.
        oci.holds_blob(&repo.name, digest).await.map_err(absent)?;
    }
    // Linked as soon as the upstream confirmed it: should this fill fail, the next
    // request finds the link without the bytes and fills again.
    registry.link_blob(&repo.name, digest).await?;
    Ok(match filled {
        Filled::Stored => None,
        Filled::Streaming { size, body } => Some((size, body)),
    })
}
