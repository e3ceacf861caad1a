//! Images from an OCI registry (any registry, or another Airlock) into the registry's
//! store, byte for byte: manifests keep their digests and media types, tags point where
//! they point upstream, every blob is linked to the repository.
//!
//! An index is stored exactly as the upstream has it, even when `platforms` picks a
//! subset: its digest (what a deployment pins) must not change. Only the chosen
//! children (and attestations that refer to them) and their blobs are fetched, so pulling
//! another platform from this store gets "manifest unknown" — the mirror holds what the
//! spec asked for, and says so rather than rewriting the index.
//!
//! Referrers (signatures, SBOMs) come from the referrers API when the upstream has it;
//! a 404 there means "no referrers API" and is not an error.
//!
//! Upstream URL: `[upstreams.oci]` maps a registry host to a URL. When that URL is not
//! the registry itself (a mirror such as another Airlock), requests carry containerd's
//! `?ns=<host>` so the mirror knows which upstream's repository is meant.
//!
//! Credentials come from the environment, one variable per registry host:
//! `AIRLOCK_MIRROR_OCI_AUTH_<HOST>` with the host upper-cased and every other character
//! than a letter or digit turned into `_` (`docker.io` -> `AIRLOCK_MIRROR_OCI_AUTH_DOCKER_IO`).
//! The value `user:password` is Basic (also what the token realm gets); a value without
//! `:` is a bearer token. Without a variable the mirror pulls anonymously. They go to the
//! registry's origin and to a token realm on its host; a realm elsewhere only when named
//! in `AIRLOCK_MIRROR_OCI_REALM_<HOST>` (Docker Hub's own realm is known).

use super::image::{choose_children, is_the_registry, parse_image, Reference};
use super::report::Status;
use super::Mirror;
use crate::digest::{Algorithm, Digest};
use crate::oci::manifest::{inspect, Inspected};
use crate::oci::registry::ManifestEntry;
use crate::remote::token::{Credentials, RegistryAuth};
use crate::remote::{FetchError, Req, MANIFEST_ACCEPT};
use crate::spec::OciItem;
use futures::StreamExt;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Referrers of referrers (a signature of an SBOM) are followed this deep.
const MAX_DEPTH: usize = 3;

struct Ctx<'a> {
    m: &'a Mirror,
    item: &'a OciItem,
    /// Local canonical repository name (`docker.io/library/busybox`).
    repo: String,
    base: String,
    remote: String,
    ns: Option<String>,
    req: Req,
}

impl Ctx<'_> {
    fn url(&self, rest: &str) -> String {
        let ns = match &self.ns {
            Some(ns) => format!(
                "?ns={}",
                url::form_urlencoded::byte_serialize(ns.as_bytes()).collect::<String>()
            ),
            None => String::new(),
        };
        format!("{}/v2/{}/{rest}{ns}", self.base, self.remote)
    }

    fn what(&self, kind: &str, digest: &Digest) -> String {
        format!("oci {} {kind} {digest}", self.repo)
    }
}

pub async fn mirror_item(m: &Mirror, item: &OciItem) {
    if let Err(reason) = mirror_image(m, item).await {
        m.report
            .record(format!("oci {}", item.image), Status::Failed(reason));
    }
}

async fn mirror_image(m: &Mirror, item: &OciItem) -> Result<(), String> {
    let (repo, reference) = parse_image(&item.image)?;
    let (host, remote) = repo
        .split_once('/')
        .ok_or("image name without a repository")?;
    let base = m.spec.upstreams.oci_registry_url(host);
    let auth = RegistryAuth::new(credentials_from_env(host), &base, &realms_from_env(host));
    let ctx = Ctx {
        m,
        item,
        ns: (!is_the_registry(host, &base)).then(|| host.to_string()),
        remote: remote.to_string(),
        base,
        req: Req::default().registry(Arc::new(auth), format!("repository:{remote}:pull")),
        repo: repo.clone(),
    };
    m.report.message(item.image.clone());
    let (digest, entry) = match &reference {
        Reference::Tag(tag) => {
            let (bytes, media_type) = fetch_manifest(&ctx, tag, None).await?;
            let digest = Digest::of_bytes(Algorithm::Sha256, &bytes);
            mirror_manifest(&ctx, digest, bytes, media_type, 0).await?
        }
        Reference::Digest(d) => {
            let (bytes, media_type) = local_or_fetch(&ctx, d, None).await?;
            mirror_manifest(&ctx, d.clone(), bytes, media_type, 0).await?
        }
    };
    if !m.dry_run {
        let tag = match &reference {
            Reference::Tag(t) => Some(t.as_str()),
            Reference::Digest(_) => None,
        };
        register(&ctx, &digest, entry, tag).await?;
    }
    Ok(())
}

/// A manifest by tag or digest, checked against its digest; (bytes, media type).
async fn fetch_manifest(
    ctx: &Ctx<'_>,
    reference: &str,
    expected: Option<&Digest>,
) -> Result<(bytes::Bytes, Option<String>), String> {
    let req = ctx.req.clone().accept(MANIFEST_ACCEPT);
    let small = ctx
        .m
        .client
        .get_small(
            &ctx.url(&format!("manifests/{reference}")),
            &req,
            crate::oci::MAX_MANIFEST_BYTES,
        )
        .await
        .map_err(|e| e.to_string())?;
    let (headers, bytes) = (small.headers, small.body);
    let media_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
        .filter(|v| v.contains("manifest") || v.contains("index"));
    let announced: Option<Digest> = headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    for want in expected.into_iter().chain(announced.as_ref()) {
        let actual = Digest::of_bytes(want.algorithm(), &bytes);
        if actual != *want {
            return Err(format!(
                "manifest {reference}: content hashes to {actual}, not {want}; nothing was stored"
            ));
        }
    }
    Ok((bytes, media_type))
}

/// A manifest by digest: from the store when this repository already has it.
async fn local_or_fetch(
    ctx: &Ctx<'_>,
    digest: &Digest,
    media_type: Option<String>,
) -> Result<(bytes::Bytes, Option<String>), String> {
    let known = ctx
        .m
        .registry
        .repo(&ctx.repo)
        .await
        .map_err(|e| e.message)?;
    if let Some(entry) = known.as_ref().and_then(|doc| doc.manifests.get(digest)) {
        if let Ok(bytes) = ctx.m.registry.manifest_bytes(digest).await {
            return Ok((bytes, Some(entry.media_type.clone())));
        }
    }
    let (bytes, fetched_type) = fetch_manifest(ctx, &digest.to_string(), Some(digest)).await?;
    Ok((bytes, fetched_type.or(media_type)))
}

/// Stores one manifest with everything it needs (children, blobs, referrers) first.
async fn mirror_manifest(
    ctx: &Ctx<'_>,
    digest: Digest,
    bytes: bytes::Bytes,
    media_type: Option<String>,
    depth: usize,
) -> Result<(Digest, ManifestEntry), String> {
    let m = ctx.m;
    let inspected: Inspected = inspect(&bytes, media_type.as_deref())
        .map_err(|e| format!("manifest {digest}: {}", e.message))?;
    let body: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    let stored_before = m.blobs.exists(&digest).await.map_err(|e| e.to_string())?;

    if inspected.media_type.contains("index") || inspected.media_type.contains("manifest.list") {
        for (child, child_type) in choose_children(&body, &ctx.item.platforms) {
            let (child_bytes, child_type) = local_or_fetch(ctx, &child, child_type).await?;
            let (d, entry) = Box::pin(mirror_manifest(
                ctx,
                child,
                child_bytes,
                child_type,
                depth + 1,
            ))
            .await?;
            if !m.dry_run {
                register(ctx, &d, entry, None).await?;
            }
        }
    }
    fetch_blobs(ctx, &body, &inspected.blobs).await?;
    let entry = ManifestEntry::new(&inspected, bytes.len() as u64);
    if !m.dry_run {
        let len = bytes.len() as u64;
        m.blobs
            .put(&digest, crate::store::bytes_stream(bytes), Some(len))
            .await
            .map_err(|e| e.to_string())?;
    }
    let status = match (stored_before, m.dry_run) {
        (true, _) => Status::Skipped,
        (false, true) => Status::WouldFetch,
        (false, false) => Status::New,
    };
    m.report.record(ctx.what("manifest", &digest), status);
    if ctx.item.referrers && depth < MAX_DEPTH {
        mirror_referrers(ctx, &digest, depth).await?;
    }
    Ok((digest, entry))
}

/// Config and layers, concurrently; each verified by the blob store as it streams in.
async fn fetch_blobs(ctx: &Ctx<'_>, body: &Value, blobs: &[Digest]) -> Result<(), String> {
    let m = ctx.m;
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    for d in body["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(body["blobs"].as_array().into_iter().flatten())
        .chain(std::iter::once(&body["config"]))
    {
        if let (Some(digest), Some(size)) = (d["digest"].as_str(), d["size"].as_u64()) {
            sizes.insert(digest.to_string(), size);
        }
    }
    let results = futures::stream::iter(blobs.iter().map(|digest| {
        let size = sizes.get(&digest.to_string()).copied();
        async move {
            let what = ctx.what("blob", digest);
            let status = fetch_blob(ctx, digest, size).await;
            match &status {
                Ok(s) => m.report.record(what, s.clone()),
                Err(reason) => m.report.record(what, Status::Failed(reason.clone())),
            }
            status
        }
    }))
    .buffer_unordered(m.concurrency)
    .collect::<Vec<_>>()
    .await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    if failed > 0 {
        return Err(format!(
            "{failed} blob(s) failed, so the manifest was not stored; run again to fetch them"
        ));
    }
    Ok(())
}

async fn fetch_blob(ctx: &Ctx<'_>, digest: &Digest, size: Option<u64>) -> Result<Status, String> {
    let m = ctx.m;
    let status = if m.blobs.exists(digest).await.map_err(|e| e.to_string())? {
        Status::Skipped
    } else if m.dry_run {
        return Ok(Status::WouldFetch);
    } else {
        m.report.expect_bytes(size.unwrap_or(0));
        m.client
            .download_blob(
                &ctx.url(&format!("blobs/{digest}")),
                &ctx.req,
                &m.blobs,
                digest,
                size,
                m.report.bar(),
            )
            .await
            .map_err(|e| e.to_string())?;
        Status::New
    };
    if !m.dry_run {
        ctx.m
            .registry
            .link_blob(&ctx.repo, digest)
            .await
            .map_err(|e| e.message)?;
    }
    Ok(status)
}

/// Signatures, SBOMs and other artifacts whose subject is `digest`.
async fn mirror_referrers(ctx: &Ctx<'_>, digest: &Digest, depth: usize) -> Result<(), String> {
    let req = ctx.req.clone().accept(OCI_INDEX);
    let url = ctx.url(&format!("referrers/{digest}"));
    let listing = match ctx
        .m
        .client
        .get_small(&url, &req, crate::oci::MAX_MANIFEST_BYTES)
        .await
    {
        Ok(small) => small.body,
        // No referrers API here (404, or an older registry refusing the path).
        Err(FetchError::Status { status, .. }) if status.is_client_error() => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    let listing: Value = serde_json::from_slice(&listing).map_err(|e| format!("{url}: {e}"))?;
    for r in listing["manifests"].as_array().into_iter().flatten() {
        let Some(Ok(d)) = r["digest"].as_str().map(str::parse::<Digest>) else {
            continue;
        };
        let (bytes, media_type) =
            local_or_fetch(ctx, &d, r["mediaType"].as_str().map(str::to_string)).await?;
        let (d, entry) = Box::pin(mirror_manifest(ctx, d, bytes, media_type, depth + 1)).await?;
        if !ctx.m.dry_run {
            register(ctx, &d, entry, None).await?;
        }
    }
    Ok(())
}

/// Enters a manifest (and its tag) in the repository document.
async fn register(
    ctx: &Ctx<'_>,
    digest: &Digest,
    entry: ManifestEntry,
    tag: Option<&str>,
) -> Result<(), String> {
    let (claim, gone) = ctx
        .m
        .registry
        .claim_manifest(digest, &entry.media_type)
        .await
        .map_err(|e| e.message)?;
    let recorded = match gone.first() {
        Some(d) => Err(format!(
            "{d} was removed by garbage collection while the mirror ran; run the mirror again"
        )),
        None => record(ctx, digest, entry, tag).await,
    };
    claim.release().await;
    recorded
}

async fn record(
    ctx: &Ctx<'_>,
    digest: &Digest,
    entry: ManifestEntry,
    tag: Option<&str>,
) -> Result<(), String> {
    ctx.m
        .registry
        .update_repo(&ctx.repo, |doc| {
            let mut changed = doc.manifests.get(digest) != Some(&entry);
            doc.manifests.insert(digest.clone(), entry.clone());
            if let Some(t) = tag {
                changed |= doc.tags.insert(t.to_string(), digest.clone()).as_ref() != Some(digest);
                // Mirrored on an operator's word: pull-through leaves it alone.
                changed |= doc.upstream_tags.remove(t).is_some();
            }
            Ok(changed)
        })
        .await
        .map_err(|e| e.message)?;
    Ok(())
}

/// `AIRLOCK_MIRROR_OCI_AUTH_DOCKER_IO` for `docker.io`.
fn env_var(prefix: &str, host: &str) -> String {
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{prefix}{host}")
}

/// `user:password` is Basic, a value without `:` a bearer token, empty or unset anonymous.
fn parse_credentials(value: &str) -> Credentials {
    match value.split_once(':') {
        _ if value.is_empty() => Credentials::Anonymous,
        Some((user, password)) => Credentials::Basic {
            user: user.to_string(),
            password: password.to_string(),
        },
        None => Credentials::Bearer(value.to_string()),
    }
}

fn credentials_from_env(host: &str) -> Credentials {
    std::env::var(env_var("AIRLOCK_MIRROR_OCI_AUTH_", host))
        .map(|v| parse_credentials(v.trim()))
        .unwrap_or(Credentials::Anonymous)
}

/// Token realms on other hosts trusted with the credentials of `host`.
fn realms_from_env(host: &str) -> Vec<String> {
    let mut realms: Vec<String> = std::env::var(env_var("AIRLOCK_MIRROR_OCI_REALM_", host))
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    if host == "docker.io" {
        realms.push("https://auth.docker.io/token".into());
    }
    realms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_from_variables() {
        assert_eq!(
            env_var("AIRLOCK_MIRROR_OCI_AUTH_", "registry-1.docker.io:5000"),
            "AIRLOCK_MIRROR_OCI_AUTH_REGISTRY_1_DOCKER_IO_5000"
        );
        assert_eq!(
            parse_credentials("u:p:q"),
            Credentials::Basic {
                user: "u".into(),
                password: "p:q".into()
            }
        );
        assert_eq!(parse_credentials("tok"), Credentials::Bearer("tok".into()));
        assert_eq!(parse_credentials(""), Credentials::Anonymous);
    }
}
