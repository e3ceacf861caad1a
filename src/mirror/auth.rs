//! Registry authentication as real registries ask for it: a `401` with
//! `WWW-Authenticate: Bearer realm=..,service=..,scope=..` is answered by fetching a
//! token from the realm (anonymously, or with Basic credentials), `Basic` challenges with
//! the credentials themselves, and a configured bearer token is sent as it is.
//!
//! Credentials come from the environment, one variable per registry host:
//! `AIRLOCK_MIRROR_OCI_AUTH_<HOST>` with the host upper-cased and every other character
//! than a letter or digit turned into `_` (`docker.io` -> `AIRLOCK_MIRROR_OCI_AUTH_DOCKER_IO`).
//! The value `user:password` is Basic (also what the token realm gets); a value without
//! `:` is a bearer token. Without a variable the mirror pulls anonymously.

use super::client::{Client, Req};
use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Mutex;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Basic { user: String, password: String },
    Bearer(String),
}

impl Credentials {
    pub fn env_var(host: &str) -> String {
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
        format!("AIRLOCK_MIRROR_OCI_AUTH_{host}")
    }

    pub fn parse(value: &str) -> Credentials {
        match value.split_once(':') {
            _ if value.is_empty() => Credentials::Anonymous,
            Some((user, password)) => Credentials::Basic {
                user: user.to_string(),
                password: password.to_string(),
            },
            None => Credentials::Bearer(value.to_string()),
        }
    }

    pub fn from_env(host: &str) -> Credentials {
        std::env::var(Self::env_var(host))
            .map(|v| Credentials::parse(v.trim()))
            .unwrap_or(Credentials::Anonymous)
    }

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

/// Authentication for one repository of one registry (a token's scope is per repository).
pub struct RegistryAuth {
    credentials: Credentials,
    /// The repository path on the upstream, for a token request whose challenge has no scope.
    remote_name: String,
    token: Mutex<Option<String>>,
    /// The registry asked for Basic: send it up front from now on.
    basic: AtomicBool,
}

impl RegistryAuth {
    pub fn new(credentials: Credentials, remote_name: &str) -> Self {
        RegistryAuth {
            credentials,
            remote_name: remote_name.to_string(),
            token: Mutex::new(None),
            basic: AtomicBool::new(false),
        }
    }

    /// Adds what is known to be needed to a request's headers.
    pub async fn authorize(&self, headers: &mut HeaderMap) {
        let value = if let Some(token) = self.token.lock().await.as_ref() {
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

    /// Answers a `401`; `true` when the request is worth sending again.
    pub async fn answer(&self, client: &Client, response: &reqwest::Response) -> bool {
        let Some(challenge) = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
        else {
            return false;
        };
        if challenge.scheme.eq_ignore_ascii_case("basic") {
            let had = self.basic.swap(true, Ordering::Relaxed);
            return !had && self.credentials.basic_header().is_some();
        }
        if !challenge.scheme.eq_ignore_ascii_case("bearer") {
            return false;
        }
        let Some(realm) = challenge.param("realm") else {
            return false;
        };
        let Ok(mut url) = url::Url::parse(realm) else {
            return false;
        };
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = challenge.param("service") {
                q.append_pair("service", service);
            }
            let default_scope = format!("repository:{}:pull", self.remote_name);
            q.append_pair("scope", challenge.param("scope").unwrap_or(&default_scope));
        }
        let mut req = Req::default();
        if let Some(basic) = self.credentials.basic_header() {
            req.headers.insert(AUTHORIZATION, basic);
        }
        // Boxed: fetching the token is itself a request that could meet a challenge.
        let token = match Box::pin(client.get_small(url.as_str(), &req, 1024 * 1024)).await {
            Ok((_, body)) => serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    v.get("token")
                        .or_else(|| v.get("access_token"))
                        .and_then(|t| t.as_str())
                        .map(str::to_string)
                }),
            Err(e) => {
                tracing::warn!("registry token request failed: {e}");
                None
            }
        };
        match token {
            Some(token) => {
                *self.token.lock().await = Some(token);
                true
            }
            None => false,
        }
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
    fn credentials_from_variables() {
        assert_eq!(
            Credentials::env_var("registry-1.docker.io:5000"),
            "AIRLOCK_MIRROR_OCI_AUTH_REGISTRY_1_DOCKER_IO_5000"
        );
        assert_eq!(
            Credentials::parse("u:p:q"),
            Credentials::Basic {
                user: "u".into(),
                password: "p:q".into()
            }
        );
        assert_eq!(Credentials::parse("tok"), Credentials::Bearer("tok".into()));
        assert_eq!(Credentials::parse(""), Credentials::Anonymous);
    }
}
