//! The registry token flow, as real registries ask for it: a `401` with
//! `WWW-Authenticate: Bearer realm=..,service=..,scope=..` is answered by fetching a
//! token from the realm (anonymously, or with Basic credentials), a `Basic` challenge
//! with the credentials themselves; a configured bearer token is sent as it is. Tokens
//! are kept per scope until shortly before they expire.
//!
//! Credentials never leave the registry's origin: they go to the registry itself and to
//! a token realm on the same host (or one the operator named), and never from `https`
//! down to `http`. A realm elsewhere is asked anonymously, which is enough for public
//! content and leaks nothing.

use super::client::{Client, Req};
use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tokens without `expires_in` are assumed to last this long (the spec's default).
const DEFAULT_TOKEN_LIFE: Duration = Duration::from_secs(60);
/// The largest token answer read.
const MAX_TOKEN_ANSWER: usize = 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Basic { user: String, password: String },
    Bearer(String),
}

impl Credentials {
    fn basic_header(&self) -> Option<HeaderValue> {
        let Credentials::Basic { user, password } = self else {
            return None;
        };
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).ok()
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a:pull,push"`:
/// quoted values may hold commas, so this is a small tokenizer rather than a split.
/// Linear in the header's length.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.is_empty() {
        return None;
    }
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if key.trim().is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
        }
        params.push((key.trim().to_string(), value.trim().to_string()));
    }
    Some(Challenge {
        scheme: scheme.to_string(),
        params,
    })
}

/// Authentication with one registry, shared by every repository read from it.
#[derive(Debug)]
pub struct RegistryAuth {
    credentials: Credentials,
    /// The registry's own URL: credentials go to its origin only.
    registry: url::Url,
    /// Token realms the operator named as trusted with the credentials.
    realms: Vec<url::Url>,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    /// The registry asked for Basic: send it up front from now on.
    basic: AtomicBool,
}

impl RegistryAuth {
    /// `registry` is the URL requests go to (a bad URL trusts no origin at all).
    pub fn new(credentials: Credentials, registry: &str, realms: &[String]) -> RegistryAuth {
        RegistryAuth {
            credentials,
            registry: url::Url::parse(registry)
                .unwrap_or_else(|_| url::Url::parse("invalid:").expect("valid")),
            realms: realms
                .iter()
                .filter_map(|r| url::Url::parse(r).ok())
                .collect(),
            tokens: Mutex::default(),
            basic: AtomicBool::new(false),
        }
    }

    /// Whether `url` is on the registry's origin.
    fn is_registry(&self, url: &url::Url) -> bool {
        url.origin() == self.registry.origin()
    }

    /// Whether a token realm may be sent the credentials: on the registry's host (or
    /// named by the operator), and not `http` when the registry is `https`.
    pub fn trusts_realm(&self, realm: &url::Url) -> bool {
        let downgrade = self.registry.scheme() == "https" && realm.scheme() != "https";
        let same_host = realm.host_str().is_some() && realm.host_str() == self.registry.host_str();
        let named = self.realms.iter().any(|r| {
            r.origin() == realm.origin()
                && r.path().trim_end_matches('/') == realm.path().trim_end_matches('/')
        });
        !downgrade && matches!(realm.scheme(), "http" | "https") && (same_host || named)
    }

    fn token(&self, scope: &str) -> Option<String> {
        let tokens = self.tokens.lock().expect("not poisoned");
        tokens
            .get(scope)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(t, _)| t.clone())
    }

    fn keep(&self, scope: &str, token: String, life: Duration) {
        let until = Instant::now() + life.saturating_sub(Duration::from_secs(10));
        self.tokens
            .lock()
            .expect("not poisoned")
            .insert(scope.to_string(), (token, until));
    }

    /// Adds what is known to be needed to a request for `url` in `scope`.
    pub fn authorize(&self, url: &str, scope: &str, headers: &mut HeaderMap) {
        let Ok(url) = url::Url::parse(url) else {
            return;
        };
        if !self.is_registry(&url) {
            return;
        }
        let value = if let Some(token) = self.token(scope) {
            HeaderValue::from_str(&format!("Bearer {token}")).ok()
        } else if let Credentials::Bearer(token) = &self.credentials {
            HeaderValue::from_str(&format!("Bearer {token}")).ok()
        } else if self.basic.load(Ordering::Relaxed) {
            self.credentials.basic_header()
        } else {
            None
        };
        if let Some(v) = value {
            headers.insert(AUTHORIZATION, v);
        }
    }

    /// Answers a `401` to a request in `scope`; `true` when it is worth sending again.
    pub async fn answer(&self, client: &Client, response: &reqwest::Response, scope: &str) -> bool {
        if !self.is_registry(response.url()) {
            return false;
        }
        let Some(challenge) = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
        else {
            // No challenge at all: Basic is the one thing left to try.
            let had = self.basic.swap(true, Ordering::Relaxed);
            return !had && self.credentials.basic_header().is_some();
        };
        if challenge.scheme.eq_ignore_ascii_case("basic") {
            let had = self.basic.swap(true, Ordering::Relaxed);
            return !had && self.credentials.basic_header().is_some();
        }
        if !challenge.scheme.eq_ignore_ascii_case("bearer") {
            return false;
        }
        match self.fetch_token(client, &challenge, scope).await {
            Some((token, life)) => {
                self.keep(scope, token, life);
                true
            }
            None => false,
        }
    }

    async fn fetch_token(
        &self,
        client: &Client,
        challenge: &Challenge,
        scope: &str,
    ) -> Option<(String, Duration)> {
        let mut url = url::Url::parse(challenge.param("realm")?).ok()?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = challenge.param("service") {
                q.append_pair("service", service);
            }
            q.append_pair("scope", challenge.param("scope").unwrap_or(scope));
        }
        let mut req = Req::default();
        match self.credentials.basic_header() {
            Some(basic) if self.trusts_realm(&url) => {
                req.headers.insert(AUTHORIZATION, basic);
            }
            Some(_) => tracing::warn!(
                realm = %url.origin().ascii_serialization(),
                registry = %self.registry.origin().ascii_serialization(),
                "the registry's token realm is on another host (or plain http): asking it anonymously, without the credentials"
            ),
            None => {}
        }
        // Boxed: fetching the token is itself a request.
        let answer = match Box::pin(client.get_small(url.as_str(), &req, MAX_TOKEN_ANSWER)).await {
            Ok(small) => small.body,
            Err(e) => {
                tracing::warn!("registry token request failed: {e}");
                return None;
            }
        };
        #[derive(serde::Deserialize)]
        struct Answer {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let answer: Answer = serde_json::from_slice(&answer).ok()?;
        let token = answer.token.or(answer.access_token)?;
        let life = answer
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFE);
        Some((token, life))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "Bearer");
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("service"), Some("registry.docker.io"));
        assert_eq!(
            c.param("scope"),
            Some("repository:library/busybox:pull,push")
        );
        let c = parse_challenge("Bearer realm=http://r/t,service=s").unwrap();
        assert_eq!(c.param("service"), Some("s"));
    }

    #[test]
    fn parses_basic_unquoted_and_escaped_values() {
        let c = parse_challenge(r#"Basic realm="Registry \"x\"", charset=UTF-8"#).unwrap();
        assert_eq!(c.scheme, "Basic");
        assert_eq!(c.param("realm"), Some(r#"Registry "x""#));
        assert_eq!(c.param("charset"), Some("UTF-8"));
        assert_eq!(parse_challenge("Bearer").unwrap().params, vec![]);
        assert!(parse_challenge("").is_none());
    }

    #[test]
    fn credentials_go_to_realms_on_the_registry_host_only() {
        let basic = Credentials::Basic {
            user: "u".into(),
            password: "p".into(),
        };
        let url = |s: &str| url::Url::parse(s).unwrap();
        let auth = RegistryAuth::new(basic.clone(), "https://reg.example:5000", &[]);
        assert!(auth.trusts_realm(&url("https://reg.example/token")));
        assert!(
            !auth.trusts_realm(&url("http://reg.example:5000/token")),
            "no downgrade"
        );
        assert!(!auth.trusts_realm(&url("https://evil.example/token")));
        let named = RegistryAuth::new(
            basic,
            "https://registry-1.docker.io",
            &["https://auth.docker.io/token".into()],
        );
        assert!(named.trusts_realm(&url("https://auth.docker.io/token")));
        assert!(!named.trusts_realm(&url("https://auth.docker.io/other")));
        let mut headers = HeaderMap::new();
        named.basic.store(true, Ordering::Relaxed);
        named.authorize("https://cdn.example/blob", "s", &mut headers);
        assert!(headers.is_empty(), "nothing for another origin");
        named.authorize("https://registry-1.docker.io/v2/", "s", &mut headers);
        assert!(headers.contains_key(AUTHORIZATION));
    }
}
