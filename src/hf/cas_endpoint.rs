//! Every request to Airlock's Xet CAS (below `/_airlock/xet`) as one typed value, with
//! the access it needs. Paths and hash spellings as hub-docs `docs/xet/api.md` and
//! xet-core's client use them; hashes are 64 lowercase hex digits in the API's byte
//! order, checked here so no handler sees a malformed one.

use super::error::HfError;
use http::Method;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CasEndpoint {
    /// `HEAD /v1/xorbs/default/{hash}`: is it stored?
    XorbExists { hash: String },
    /// `POST /v1/xorbs/default/{hash}`: a serialized xorb.
    XorbUpload { hash: String },
    /// `POST /v1/shards` or `/v2/shards` (NDJSON progress).
    Shard { v2: bool },
    /// `GET /v1/chunks/{default,default-merkledb}/{hash}`: global dedup, a keyed shard
    /// describing a readable xorb that holds the chunk, or 404 ("not tracked").
    Dedup { hash: String },
    /// `POST /v1/telemetry`: accepted and dropped.
    Telemetry,
    /// `GET /v1/reconstructions/{file}` or `/v2/...` (optional `Range`): how to rebuild
    /// a file from xorb ranges, with signed URLs for them.
    Reconstruction { file: String, v2: bool },
    /// `GET /v1/fetch/{xorb}?ranges=..&exp=..&sig=..` with `Range`: stored bytes of a
    /// xorb, authorized by the URL's signature alone (hf_xet sends no token there).
    Fetch { xorb: String },
}

/// What a CAS request needs from its bearer token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CasAccess {
    /// Self-authorizing (a signed URL) or harmless (telemetry is dropped unread).
    None,
    Read,
    Write,
}

impl CasEndpoint {
    /// `path` is what follows the CAS prefix, e.g. `/v1/shards`.
    pub fn parse(method: &Method, path: &str) -> Result<CasEndpoint, HfError> {
        let not_found = || HfError::not_found(format!("no Xet CAS route for {path}"));
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let is = |m: Method| *method == m;
        let endpoint = match segments.as_slice() {
            ["v1", "xorbs", "default", h] if is(Method::HEAD) => {
                CasEndpoint::XorbExists { hash: hash(h)? }
            }
            ["v1", "xorbs", "default", h] if is(Method::POST) => {
                CasEndpoint::XorbUpload { hash: hash(h)? }
            }
            [v @ ("v1" | "v2"), "shards"] if is(Method::POST) => {
                CasEndpoint::Shard { v2: *v == "v2" }
            }
            // hf_xet 1.8 asks under `default`, the spec says `default-merkledb`.
            ["v1", "chunks", "default" | "default-merkledb", h] if is(Method::GET) => {
                CasEndpoint::Dedup { hash: hash(h)? }
            }
            ["v1", "telemetry"] if is(Method::POST) => CasEndpoint::Telemetry,
            [v @ ("v1" | "v2"), "reconstructions", h] if is(Method::GET) => {
                CasEndpoint::Reconstruction {
                    file: hash(h)?,
                    v2: *v == "v2",
                }
            }
            ["v1", "fetch", h] if is(Method::GET) => CasEndpoint::Fetch { xorb: hash(h)? },
            _ => return Err(not_found()),
        };
        Ok(endpoint)
    }

    pub fn access(&self) -> CasAccess {
        match self {
            CasEndpoint::Telemetry | CasEndpoint::Fetch { .. } => CasAccess::None,
            CasEndpoint::XorbExists { .. }
            | CasEndpoint::Dedup { .. }
            | CasEndpoint::Reconstruction { .. } => CasAccess::Read,
            CasEndpoint::XorbUpload { .. } | CasEndpoint::Shard { .. } => CasAccess::Write,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            CasEndpoint::XorbExists { .. } => "xet.xorb.head",
            CasEndpoint::XorbUpload { .. } => "xet.xorb.upload",
            CasEndpoint::Shard { .. } => "xet.shard",
            CasEndpoint::Dedup { .. } => "xet.dedup",
            CasEndpoint::Telemetry => "xet.telemetry",
            CasEndpoint::Reconstruction { .. } => "xet.reconstruction",
            CasEndpoint::Fetch { .. } => "xet.fetch",
        }
    }
}

fn hash(segment: &str) -> Result<String, HfError> {
    if segment.len() == 64
        && segment
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(segment.to_string())
    } else {
        Err(HfError::bad_request(format!(
            "`{segment}` is not a Xet hash (64 lowercase hex digits)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918";

    #[test]
    fn parses_every_route_with_its_access() {
        let cases = [
            (
                Method::HEAD,
                format!("/v1/xorbs/default/{H}"),
                CasAccess::Read,
            ),
            (
                Method::POST,
                format!("/v1/xorbs/default/{H}"),
                CasAccess::Write,
            ),
            (Method::POST, "/v1/shards".into(), CasAccess::Write),
            (Method::POST, "/v2/shards".into(), CasAccess::Write),
            (
                Method::GET,
                format!("/v1/chunks/default-merkledb/{H}"),
                CasAccess::Read,
            ),
            (
                Method::GET,
                format!("/v1/chunks/default/{H}"),
                CasAccess::Read,
            ),
            (Method::POST, "/v1/telemetry".into(), CasAccess::None),
            (
                Method::GET,
                format!("/v1/reconstructions/{H}"),
                CasAccess::Read,
            ),
            (
                Method::GET,
                format!("/v2/reconstructions/{H}"),
                CasAccess::Read,
            ),
            (Method::GET, format!("/v1/fetch/{H}"), CasAccess::None),
        ];
        for (method, path, access) in cases {
            let e = CasEndpoint::parse(&method, &path).unwrap_or_else(|e| panic!("{path}: {e:?}"));
            assert_eq!(e.access(), access, "{path}");
        }
    }

    #[test]
    fn refuses_bad_hashes_and_unknown_routes() {
        for (method, path, status) in [
            (Method::HEAD, "/v1/xorbs/default/XYZ".to_string(), 400),
            (
                Method::POST,
                format!("/v1/xorbs/default/{}", H.to_uppercase()),
                400,
            ),
            (
                Method::GET,
                format!("/v1/chunks/default-merkledb/{H}0"),
                400,
            ),
            (Method::POST, format!("/v1/xorbs/other/{H}"), 404),
            (Method::GET, format!("/v1/xorbs/default/{H}"), 404),
            (Method::DELETE, "/v1/shards".into(), 404),
            (Method::GET, "/v3/shards".into(), 404),
            (Method::GET, format!("/v1/xorbs/default/{H}/../x"), 404),
            (Method::GET, "/v1/reconstructions/abc".into(), 400),
            (Method::POST, format!("/v2/reconstructions/{H}"), 404),
            (Method::GET, format!("/v3/reconstructions/{H}"), 404),
            (Method::GET, format!("/v2/fetch/{H}"), 404),
            (Method::HEAD, format!("/v1/fetch/{H}"), 404),
        ] {
            let e = CasEndpoint::parse(&method, &path).unwrap_err();
            assert_eq!(e.status.as_u16(), status, "{method} {path}");
        }
    }
}
