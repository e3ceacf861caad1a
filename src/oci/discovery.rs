//! Content discovery: tag lists and the catalog with `n`/`last` pagination, and the
//! referrers API.

use super::*;
use std::ops::Bound;
/// `n` and `last` of a paginated list.
fn page_params(query: &str) -> Result<(Option<usize>, Option<String>)> {
    let n = match query_one(query, "n") {
        None => None,
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            OciError::new(
                Code::PaginationNumberInvalid,
                format!("n=`{n}` is not a number"),
            )
        })?),
    };
    Ok((n.map(|n| n.min(MAX_PAGE)), query_one(query, "last")))
}

/// One page of a sorted list whose items after `last` are `after` (read only as far as
/// the page needs: a large repository's tags or the catalog cost one page), with the
/// `Link` to the next if there is more.
fn paginate<'a>(
    after: impl Iterator<Item = &'a str>,
    n: Option<usize>,
    path: &str,
    ns: Option<&str>,
) -> (Vec<&'a str>, Option<String>) {
    let limit = n.unwrap_or(MAX_PAGE);
    let mut page: Vec<&'a str> = after.take(limit + 1).collect();
    if page.len() <= limit {
        return (page, None);
    }
    page.truncate(limit);
    let link = page.last().map(|l| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("n", &limit.to_string())
            .append_pair("last", l);
        if let Some(ns) = ns {
            // The next page must name the same upstream as this one.
            q.append_pair("ns", ns);
        }
        let q = q.finish();
        format!("<{path}?{q}>; rel=\"next\"")
    });
    (page, link)
}

/// The page written straight from the borrowed names: a page of 100 tags as a JSON value
/// was 200 small allocations per request, a third of a hot tags/list's time with malloc.
fn list_response(body: &impl serde::Serialize, link: Option<String>) -> Response {
    let body = serde_json::to_string(body).expect("names and strings serialize");
    let mut r = json_response(StatusCode::OK, body, false);
    if let Some(link) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        r.headers_mut().insert(header::LINK, link);
    }
    r
}

pub(super) async fn tags(registry: &Registry, repo: &Repo, query: &str) -> Result<Response> {
    let (n, last) = page_params(query)?;
    let doc = registry.repo(&repo.name).await?.ok_or_else(|| {
        OciError::new(Code::NameUnknown, format!("no repository `{}`", repo.name))
    })?;
    let after = match last {
        Some(last) => doc
            .tags
            .range::<str, _>((Bound::Excluded(last.as_str()), Bound::Unbounded)),
        None => doc.tags.range::<str, _>(..),
    };
    let (page, link) = paginate(
        after.map(|(tag, _)| tag.as_str()),
        n,
        &format!("/v2/{}/tags/list", repo.path),
        query_one(query, "ns").as_deref(),
    );
    #[derive(serde::Serialize)]
    struct Tags<'a> {
        name: &'a str,
        tags: Vec<&'a str>,
    }
    let body = Tags {
        name: &repo.path,
        tags: page,
    };
    Ok(list_response(&body, link))
}

pub(super) async fn catalog(
    state: &OciState,
    registry: &Registry,
    identity: &Identity,
    query: &str,
) -> Result<Response> {
    let (n, last) = page_params(query)?;
    #[derive(serde::Serialize)]
    struct Repositories<'a> {
        repositories: Vec<&'a str>,
    }
    // Every name after `last`, from the kept list of every name (shared by every
    // identity); an identity that may read every name (the empty name matches only a
    // scope without a name prefix) needs no check per name.
    let names = registry.names_after(last.as_deref()).await?;
    let auth = &state.auth;
    let reads_all = auth
        .authorize(identity, Protocol::Oci, Action::Read, "")
        .is_ok();
    let visible = names.iter().filter(|name| {
        reads_all
            || auth
                .authorize(identity, Protocol::Oci, Action::Read, name)
                .is_ok()
    });
    let (page, link) = paginate(visible, n, "/v2/_catalog", None);
    if page.is_empty()
        && last.is_none()
        && matches!(identity, Identity::Anonymous)
        && !state.auth.anonymous_read()
    {
        return Err(OciError::from(AuthError::Unauthenticated));
    }
    Ok(list_response(&Repositories { repositories: page }, link))
}

pub(super) async fn referrers(
    registry: &Registry,
    repo: &Repo,
    subject: &Digest,
    query: &str,
) -> Result<Response> {
    let filter = query_one(query, "artifactType");
    let doc = registry.repo(&repo.name).await?;
    let mut manifests = Vec::new();
    for (digest, entry) in doc.iter().flat_map(|d| d.manifests.iter()) {
        if entry.subject.as_ref() != Some(subject) {
            continue;
        }
        if filter
            .as_ref()
            .is_some_and(|f| entry.artifact_type.as_ref() != Some(f))
        {
            continue;
        }
        let mut descriptor = serde_json::json!({
            "mediaType": entry.media_type,
            "digest": digest.to_string(),
            "size": entry.size,
        });
        if let Some(t) = &entry.artifact_type {
            descriptor["artifactType"] = t.clone().into();
        }
        if let Some(a) = &entry.annotations {
            descriptor["annotations"] = serde_json::to_value(a).expect("strings");
        }
        manifests.push(descriptor);
    }
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_INDEX,
        "manifests": manifests,
    });
    let mut r = json_response(StatusCode::OK, body.to_string(), false);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(manifest::OCI_INDEX),
    );
    if filter.is_some() {
        r.headers_mut().insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(r)
}
