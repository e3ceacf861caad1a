//! The URL clients reach this server at, for absolute URLs written into responses
//! (token realms, `Location` headers, Hub endpoints, snippets in the catalog).

use http::{header, HeaderMap};

#[derive(Clone, Debug)]
pub struct Site {
    /// `public_url` without its trailing `/`; unset: each request's own host.
    public_url: Option<String>,
    /// The scheme clients use to reach this process directly: `https` when it serves TLS.
    scheme: &'static str,
}

impl Site {
    pub fn new(public_url: Option<&url::Url>, tls: bool) -> Site {
        Site {
            public_url: public_url.map(|u| u.as_str().trim_end_matches('/').to_string()),
            scheme: if tls { "https" } else { "http" },
        }
    }

    /// `public_url` when configured: URLs then need no request to be built.
    pub fn public_url(&self) -> Option<&str> {
        self.public_url.as_deref()
    }

    /// `public_url`, else the scheme and `Host` of this request. A `Host` with anything
    /// but host-name characters is not echoed back (it ends up in headers and pages);
    /// `X-Forwarded-Proto: https` from a TLS-terminating proxy is honoured.
    pub fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .filter(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
            })
            .unwrap_or("localhost");
        let scheme = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .filter(|p| *p == "https")
            .unwrap_or(self.scheme);
        format!("{scheme}://{host}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn public_url_wins_else_the_request_host() {
        let url = url::Url::parse("https://airlock.example/").unwrap();
        let site = Site::new(Some(&url), false);
        assert_eq!(
            site.base_url(&headers(&[("host", "x:1")])),
            "https://airlock.example"
        );
        let site = Site::new(None, false);
        assert_eq!(
            site.base_url(&headers(&[("host", "a.b:8080")])),
            "http://a.b:8080"
        );
        assert_eq!(
            site.base_url(&headers(&[("host", "a\"b")])),
            "http://localhost"
        );
        let forwarded = headers(&[("host", "a"), ("x-forwarded-proto", "https")]);
        assert_eq!(site.base_url(&forwarded), "https://a");
        assert_eq!(
            Site::new(None, true).base_url(&headers(&[("host", "a")])),
            "https://a"
        );
    }
}
