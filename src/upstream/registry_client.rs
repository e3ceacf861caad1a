//! Reading from an upstream OCI registry, with the registry token flow: a `401` with
//! `WWW-Authenticate: Bearer realm=...,service=...,scope=...` is answered by fetching a
//! token from the realm (anonymously, or with the configured token as the Basic
//! password) and retrying. Tokens are kept per scope until shortly before they expire.

use super::client::{chain, check};
use super::{Upstream, UpstreamError};
use http::header::{ACCEPT, WWW_AUTHENTICATE};
use http::StatusCode;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Every manifest media type a registry may hold: upstreams serve only what is accepted.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.oci.artifact.manifest.v1+json";

/// Tokens without `expires_in` are assumed to last this long (the spec's default).
const DEFAULT_TOKEN_LIFE: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Tokens(Mutex<HashMap<String, (String, Instant)>>);

impl Tokens {
    fn get(&self, scope: &str) -> Option<String> {
        let tokens = self.0.lock().expect("not poisoned");
        tokens
            .get(scope)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(t, _)| t.clone())
    }

    fn put(&self, scope: &str, token: String, life: Duration) {
        let until = Instant::now() + life.saturating_sub(Duration::from_secs(10));
        self.0
            .lock()
            .expect("not poisoned")
            .insert(scope.to_string(), (token, until));
    }
}

/// A GET or HEAD of `url` in repository `repo` (the upstream's name for it).
pub async fn send(
    up: &Upstream,
    tokens: &Tokens,
    method: http::Method,
    url: &str,
    repo: &str,
    accept: &str,
) -> Result<reqwest::Response, UpstreamError> {
    let scope = format!("repository:{repo}:pull");
    let request = |auth: Auth| {
        let r = up.http.request(method.clone(), url).header(ACCEPT, accept);
        match auth {
            Auth::None => r,
            Auth::Bearer(token) => r.bearer_auth(token),
            Auth::Basic(secret) => r.basic_auth("airlock", Some(secret)),
        }
    };
    // Credentials go to the token service, as registries expect; a token already got
    // for this scope is sent straight away.
    let first = match tokens.get(&scope) {
        Some(token) => request(Auth::Bearer(token)),
        None => request(Auth::None),
    };
    let first = first
        .send()
        .await
        .map_err(|e| UpstreamError::Unavailable(format!("{url}: {}", chain(&e))))?;
    if first.status() != StatusCode::UNAUTHORIZED {
        return check(url, Ok(first));
    }
    let challenge = first
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let retry = match (bearer_params(&challenge), &up.token) {
        (Some(params), _) => {
            let (token, life) = fetch_token(up, &params, &scope).await?;
            tokens.put(&scope, token.clone(), life);
            request(Auth::Bearer(token))
        }
        (None, Some(secret)) => request(Auth::Basic(secret.clone())),
        (None, None) => return check(url, Ok(first)),
    };
    check(url, retry.send().await)
}

enum Auth {
    None,
    Bearer(String),
    Basic(String),
}

async fn fetch_token(
    up: &Upstream,
    params: &HashMap<String, String>,
    default_scope: &str,
) -> Result<(String, Duration), UpstreamError> {
    let realm = params.get("realm").ok_or_else(|| {
        UpstreamError::Unavailable("upstream's Bearer challenge names no realm".into())
    })?;
    let scope = params
        .get("scope")
        .map(String::as_str)
        .unwrap_or(default_scope);
    let mut query = vec![("scope", scope)];
    if let Some(service) = params.get("service") {
        query.push(("service", service));
    }
    let mut request = up.http.get(realm).query(&query);
    if let Some(secret) = &up.token {
        request = request.basic_auth("airlock", Some(secret));
    }
    let response = check(realm, request.send().await)?;
    #[derive(serde::Deserialize)]
    struct Answer {
        token: Option<String>,
        access_token: Option<String>,
        expires_in: Option<u64>,
    }
    let answer: Answer = response.json().await.map_err(|e| {
        UpstreamError::Unavailable(format!("{realm}: not a token answer: {}", chain(&e)))
    })?;
    let token = answer
        .token
        .or(answer.access_token)
        .ok_or_else(|| UpstreamError::Unavailable(format!("{realm}: the answer holds no token")))?;
    let life = answer
        .expires_in
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TOKEN_LIFE);
    Ok((token, life))
}

/// `Bearer realm="...",service="...",scope="..."` to its parameters; `None` for other schemes.
pub fn bearer_params(challenge: &str) -> Option<HashMap<String, String>> {
    let rest = challenge.trim();
    let (scheme, rest) = rest.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => after.split_once(',').unwrap_or((after, "")),
        };
        params.insert(key.trim().to_ascii_lowercase(), value.to_string());
        rest = after.trim_start_matches([',', ' ']);
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let p = bearer_params(
            r#"Bearer realm="http://a:8080/token",service="airlock",scope="repository:docker.io/x/y:pull,push""#,
        )
        .unwrap();
        assert_eq!(p["realm"], "http://a:8080/token");
        assert_eq!(p["service"], "airlock");
        assert_eq!(p["scope"], "repository:docker.io/x/y:pull,push");
        assert!(bearer_params(r#"Basic realm="x""#).is_none());
        let p = bearer_params("Bearer realm=http://r/t,service=s").unwrap();
        assert_eq!(p["service"], "s");
    }
}
