//! The registry token service (`/token`) and how a registry request is authenticated.
//!
//! Registry clients follow the token flow: a `401` with
//! `WWW-Authenticate: Bearer realm="<airlock>/token",service="airlock",scope="..."`, then
//! `GET /token?service=airlock&scope=repository:<name>:pull,push` (HTTP Basic with an
//! Airlock token as password, or anonymous), then the request again with the token.
//!
//! A token is `<base64url payload>.<base64url HMAC-SHA256>` naming the identity it
//! was issued to and when it expires. Each request is still authorized against that
//! identity's scopes with the canonical repository name, so a scope a client named one
//! way (`library/busybox`) covers the repository however a later request names it.
//!
//! The signing key is `[oci] token_secret` when set, else derived from the configured
//! credentials (admin token and `[[tokens]]`): replicas sharing a configuration accept
//! each other's tokens, and changing the credentials retires every token issued.
//! Airlock's own tokens work directly too, as Bearer or as the Basic password.
//!
//! Only a configured credential gets a token: one this service issued never mints another
//! (a leaked one dies with its TTL). A refresh token (`access_type=offline`) carries a
//! fingerprint of its holder's secret and works only while that secret is configured.

use super::error::{Code, OciError};
use super::names::canonical_for_scope;
use super::OciState;
use crate::auth::{Action, AuthError, Identity, Protocol};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const SERVICE: &str = "airlock";
/// Form bodies of token POSTs are a few hundred bytes.
const MAX_FORM_BYTES: usize = 64 * 1024;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The principal's name; `None` for anonymous.
    sub: Option<String>,
    exp: u64,
    #[serde(default)]
    access: Vec<Access>,
    /// Set on refresh tokens only: the fingerprint of the secret of `sub` they were
    /// obtained with (`Auth::secret_fingerprint`). Only a refresh token mints new tokens,
    /// and only while that secret is still configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_for: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Access {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    actions: Vec<String>,
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn signing_key(state: &OciState) -> [u8; 32] {
    let mut h = Sha256::new().chain_update(b"airlock-oci-token-v1\0");
    match state.settings.token_secret() {
        Some(secret) => h.update(secret.as_bytes()),
        None => h.update(state.auth.credentials_fingerprint()),
    }
    h.finalize().into()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn sign(state: &OciState, claims: &Claims) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("serializable"));
    let mac = hmac_sha256(&signing_key(state), payload.as_bytes());
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac))
}

/// The claims of a token this service signed, if it is one and still valid.
fn verify(state: &OciState, token: &str) -> Option<Claims> {
    let (payload, mac) = token.split_once('.')?;
    let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
    let expected = hmac_sha256(&signing_key(state), payload.as_bytes());
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], &mac[..])) {
        return None;
    }
    let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    (claims.exp > unix_now()).then_some(claims)
}

/// The identity a refresh token stands for, while the secret it was bound to is the
/// one configured for that name.
fn refreshed(state: &OciState, token: &str) -> Option<Identity> {
    let claims = verify(state, token)?;
    let name = claims.sub?;
    let bound = hex::decode(claims.refresh_for?).ok()?;
    let current = state.auth.secret_fingerprint(&name)?;
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&current[..], &bound[..])) {
        return None;
    }
    state.auth.identity_named(&name)
}

/// Who sent a registry request: a token from `/token`, or an Airlock token.
pub fn identify(state: &OciState, headers: &HeaderMap) -> Result<Identity, AuthError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    // A refresh token is for `/token` only: it never expires on its own.
    let access = bearer
        .and_then(|t| verify(state, t))
        .filter(|c| c.refresh_for.is_none());
    if let Some(claims) = access {
        return match claims.sub {
            None => Ok(Identity::Anonymous),
            Some(name) => state
                .auth
                .identity_named(&name)
                .ok_or(AuthError::InvalidCredentials),
        };
    }
    state.auth.authenticate(headers)
}

/// `Bearer realm=...,service=...[,scope=...]`
pub fn challenge(state: &OciState, headers: &HeaderMap, scope: Option<&str>) -> String {
    let mut c = format!(
        "Bearer realm=\"{}/token\",service=\"{SERVICE}\"",
        state.site.base_url(headers)
    );
    if let Some(scope) = scope {
        c.push_str(&format!(",scope=\"{scope}\""));
    }
    c
}

/// The token-scope spelling of an action.
pub fn scope_actions(action: Action) -> &'static str {
    match action {
        Action::Read => "pull",
        Action::Write => "pull,push",
        Action::Admin => "delete",
    }
}

fn action_of(word: &str) -> Vec<Action> {
    match word {
        "pull" => vec![Action::Read],
        "push" => vec![Action::Write],
        "delete" => vec![Action::Admin],
        "*" => vec![Action::Read, Action::Write, Action::Admin],
        _ => Vec::new(),
    }
}

/// `repository:<name>:<actions>`; the name may itself hold a `:` (`host:5000/x`).
fn parse_scope(scope: &str) -> Option<(String, String, Vec<String>)> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    Some((
        kind.to_string(),
        name.to_string(),
        actions.split(',').map(str::to_string).collect(),
    ))
}

/// Grants the intersection of what was asked and what the identity may do; a partial
/// grant is not an error (the registry answers the request itself).
fn grant(state: &OciState, identity: &Identity, scopes: &[String]) -> Vec<Access> {
    let default_host = &state.settings.default_registry;
    let mut granted = Vec::new();
    for scope in scopes
        .iter()
        .flat_map(|s| s.split(' '))
        .filter(|s| !s.is_empty())
    {
        let Some((kind, name, actions)) = parse_scope(scope) else {
            continue;
        };
        let allowed: Vec<String> = match kind.as_str() {
            "repository" => {
                let Some(canonical) = canonical_for_scope(&name, default_host) else {
                    continue;
                };
                actions
                    .into_iter()
                    .filter(|a| {
                        let needed = action_of(a);
                        !needed.is_empty()
                            && needed.iter().all(|act| {
                                state
                                    .auth
                                    .authorize(identity, Protocol::Oci, *act, &canonical)
                                    .is_ok()
                            })
                    })
                    .collect()
            }
            // The catalog is filtered per repository; any identity may ask for it.
            "registry" if name == "catalog" => actions,
            _ => Vec::new(),
        };
        if !allowed.is_empty() {
            granted.push(Access {
                kind,
                name,
                actions: allowed,
            });
        }
    }
    granted
}

fn form_pairs(text: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

/// `GET /token` and `POST /token` (the OAuth2 password and refresh-token grants).
pub async fn endpoint(State(state): State<std::sync::Arc<OciState>>, request: Request) -> Response {
    let mut response = issue(&state, request)
        .await
        .unwrap_or_else(|e| e.into_response());
    response
        .extensions_mut()
        .insert(crate::observe::RouteLabel("oci.token"));
    super::common_headers(&mut response, None);
    response
}

async fn issue(state: &OciState, request: Request) -> Result<Response, OciError> {
    let basic_challenge = || "Basic realm=\"airlock\"".to_string();
    let method = request.method().clone();
    let headers = request.headers().clone();
    let mut params = form_pairs(request.uri().query().unwrap_or(""));
    if method == Method::POST {
        let body = crate::store::collect_limited(super::request_body(request), MAX_FORM_BYTES)
            .await
            .map_err(|e| {
                OciError::new(Code::Unsupported, format!("token form: {e}"))
                    .with_status(StatusCode::BAD_REQUEST)
            })?;
        params.extend(form_pairs(&String::from_utf8_lossy(&body)));
    } else if method != Method::GET {
        return Err(OciError::new(Code::Unsupported, "use GET or POST")
            .with_status(StatusCode::METHOD_NOT_ALLOWED));
    }
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());

    // The OAuth2 form carries a configured credential as `password`, or a refresh token.
    // A token this service issued is never a credential here: a leaked short-lived token
    // must not renew itself.
    let identity = match (param("password"), param("refresh_token")) {
        (Some(secret), _) => state.auth.identify(&secret),
        (None, Some(refresh)) => refreshed(state, &refresh),
        (None, None) => state.auth.authenticate(&headers).ok(),
    }
    .ok_or(AuthError::InvalidCredentials);
    let identity = identity.map_err(|e| OciError::from(e).with_challenge(basic_challenge()))?;
    if matches!(identity, Identity::Anonymous) && !state.auth.anonymous_read() {
        return Err(OciError::from(AuthError::Unauthenticated).with_challenge(basic_challenge()));
    }
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    let ttl: Duration = state.settings.token_ttl;
    let claims = Claims {
        sub: match &identity {
            Identity::Anonymous => None,
            Identity::Token(p) => Some(p.name.clone()),
        },
        exp: unix_now() + ttl.as_secs(),
        access: grant(state, &identity, &scopes),
        refresh_for: None,
    };
    let token = sign(state, &claims);
    let refresh_token = match (&claims.sub, param("access_type").as_deref()) {
        (Some(name), Some("offline")) => state.auth.secret_fingerprint(name).map(|fp| {
            sign(
                state,
                &Claims {
                    sub: Some(name.clone()),
                    // Valid as long as the secret it is bound to: a refresh token adds no
                    // lifetime to the credential it stands for.
                    exp: u64::MAX,
                    access: Vec::new(),
                    refresh_for: Some(hex::encode(fp)),
                },
            )
        }),
        _ => None,
    };
    let mut body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": ttl.as_secs(),
        "issued_at": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
    });
    if let Some(refresh_token) = refresh_token {
        body["refresh_token"] = serde_json::Value::String(refresh_token);
    }
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn scopes_parse_with_ports_in_names() {
        let (k, n, a) = parse_scope("repository:localhost:5000/x:pull,push").unwrap();
        assert_eq!((k.as_str(), n.as_str()), ("repository", "localhost:5000/x"));
        assert_eq!(a, ["pull", "push"]);
        assert!(parse_scope("nonsense").is_none());
    }
}
