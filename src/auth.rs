//! Tokens and scopes, shared by all three protocols.
//!
//! A token arrives as `Authorization: Bearer <token>` or as the password of HTTP Basic
//! auth (any user name: pip and twine send `__token__`). Each token carries scopes such
//! as `read`, `write:pypi` or `write:oci:docker.io/myteam/` (action, optional protocol,
//! optional name prefix). Protocols ask one question — may this identity do this action
//! on this name? — and render a refusal in their own error format.

use base64::Engine as _;
use http::HeaderMap;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use subtle::ConstantTimeEq;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Oci,
    Pypi,
    Hf,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Oci => "oci",
            Protocol::Pypi => "pypi",
            Protocol::Hf => "hf",
        }
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "oci" => Ok(Protocol::Oci),
            "pypi" => Ok(Protocol::Pypi),
            "hf" => Ok(Protocol::Hf),
            other => Err(format!("unknown protocol `{other}` (oci, pypi, hf)")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Read,
    /// Push, upload, tag, yank; implies read.
    Write,
    /// Deletes and store-wide operations; implies write.
    Admin,
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Action::Read),
            "write" => Ok(Action::Write),
            "admin" => Ok(Action::Admin),
            other => Err(format!("unknown action `{other}` (read, write, admin)")),
        }
    }
}

/// `action[:protocol[:name-prefix]]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub action: Action,
    pub protocol: Option<Protocol>,
    pub prefix: Option<String>,
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.splitn(3, ':');
        let action = parts.next().unwrap_or_default().parse()?;
        let protocol = match parts.next() {
            None | Some("*") => None,
            Some(p) => Some(p.parse()?),
        };
        let prefix = parts.next().filter(|p| !p.is_empty()).map(str::to_string);
        Ok(Scope {
            action,
            protocol,
            prefix,
        })
    }
}

impl Scope {
    fn allows(&self, protocol: Protocol, action: Action, name: &str) -> bool {
        self.action >= action
            && self.protocol.is_none_or(|p| p == protocol)
            && self
                .prefix
                .as_deref()
                .is_none_or(|p| prefix_grants(&scope_prefix(protocol, p), name))
    }
}

/// The permission a request needs, decided from its parsed endpoint alone so that it is
/// checked before any store or upstream work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Nothing: redirects, method refusals, self-authorizing signed URLs.
    None,
    /// `action` on this name.
    On { action: Action, name: String },
    /// `action` on a name carried in the body: at least one scope must allow `action`
    /// in the protocol, and the name is checked once the body is parsed.
    AnyName(Action),
}

/// A prefix as names of `protocol` are spelled: Hub names carry their kind
/// (`models/org/m`, `datasets/org/d`), and a prefix without one means models, as the
/// config has always written them (`write:hf:alice/`).
fn scope_prefix(protocol: Protocol, prefix: &str) -> std::borrow::Cow<'_, str> {
    let kinds = ["models", "datasets", "spaces"];
    let first = prefix.split('/').next().unwrap_or_default();
    if protocol == Protocol::Hf && !kinds.contains(&first) {
        format!("models/{prefix}").into()
    } else {
        prefix.into()
    }
}

/// Whole path segments: `team` and `team/` grant `team` and `team/...`, never `team-evil`.
fn prefix_grants(prefix: &str, name: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    !prefix.is_empty()
        && name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// A token as the config file declares it.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Shown in logs; never the secret.
    pub name: String,
    /// The token itself ...
    pub secret: Option<String>,
    /// ... or the environment variable holding it (keeps secrets out of the file).
    pub secret_env: Option<String>,
    pub scopes: Vec<String>,
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("secret_env", &self.secret_env)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

const MIN_SECRET_LEN: usize = 16;

pub fn check_secret_strength(secret: &str) -> Result<(), String> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(format!("too short (at least {MIN_SECRET_LEN} characters)"));
    }
    if secret
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ':')
    {
        return Err("contains whitespace, control characters or ':'".into());
    }
    Ok(())
}

impl TokenConfig {
    fn secret(&self) -> Result<String, String> {
        match (&self.secret, &self.secret_env) {
            (Some(s), None) => Ok(s.clone()),
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                format!(
                    "tokens `{}`: environment variable {var} (secret_env) is not set",
                    self.name
                )
            }),
            _ => Err(format!(
                "tokens `{}`: give exactly one of `secret` and `secret_env`",
                self.name
            )),
        }
    }
}

/// Checks the `[[tokens]]` of the config file; the message names the token and the fix.
pub fn validate_tokens(tokens: &[TokenConfig]) -> Result<(), String> {
    let mut names = std::collections::HashSet::new();
    for t in tokens {
        if !names.insert(&t.name) {
            return Err(format!(
                "`tokens`: the name `{}` is used twice; names must be unique",
                t.name
            ));
        }
        let secret = t.secret()?;
        check_secret_strength(&secret).map_err(|p| format!("`tokens` `{}`: secret {p}", t.name))?;
        if t.scopes.is_empty() {
            return Err(format!(
                "`tokens` `{}`: no scopes; add e.g. scopes = [\"read\"]",
                t.name
            ));
        }
        for s in &t.scopes {
            s.parse::<Scope>().map_err(|e| {
                format!("`tokens` `{}`: scope `{s}`: {e}; write action[:protocol[:prefix]] such as write:pypi", t.name)
            })?;
        }
    }
    Ok(())
}

/// Who is asking.
#[derive(Clone, Debug)]
pub enum Identity {
    Anonymous,
    Token(Arc<Principal>),
}

#[derive(Debug)]
pub struct Principal {
    pub name: String,
    scopes: Vec<Scope>,
}

impl Identity {
    pub fn name(&self) -> &str {
        match self {
            Identity::Anonymous => "anonymous",
            Identity::Token(p) => &p.name,
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A credential was sent but matches no token: clients must not fall back to anonymous.
    #[error("invalid credentials in Authorization header")]
    InvalidCredentials,
    /// No credential, and the action needs one.
    #[error("authentication required")]
    Unauthenticated,
    /// A valid token without the scope for this.
    #[error("token `{0}` may not do this")]
    Forbidden(String),
}

/// A token's secret itself, as an S3 client's HMAC key: never logged, never compared
/// directly (the S3 view recomputes the client's signature with it).
#[derive(Clone)]
pub struct S3Secret(Arc<str>);

impl S3Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for S3Secret {
    fn from(secret: &str) -> Self {
        S3Secret(secret.into())
    }
}

impl fmt::Debug for S3Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("S3Secret(..)")
    }
}

/// The token table. Secrets are kept as sha256 hashes and compared in constant time; the
/// S3 view alone also needs them in the clear (see `s3_secret`).
#[derive(Debug)]
pub struct Auth {
    tokens: Vec<([u8; 32], Arc<Principal>)>,
    /// By token name (`admin` for the admin token): the HMAC keys of S3 signatures.
    s3_secrets: Vec<(String, S3Secret)>,
    anonymous_read: bool,
}

impl Auth {
    pub fn new(
        admin_token: Option<&str>,
        tokens: &[TokenConfig],
        anonymous_read: bool,
    ) -> Result<Self, String> {
        let mut table = Vec::new();
        let mut s3_secrets = Vec::new();
        if let Some(admin) = admin_token {
            s3_secrets.push(("admin".to_string(), S3Secret::from(admin)));
            let principal = Principal {
                name: "admin".into(),
                scopes: vec![Scope {
                    action: Action::Admin,
                    protocol: None,
                    prefix: None,
                }],
            };
            table.push((hash(admin), Arc::new(principal)));
        }
        for t in tokens {
            let scopes = t
                .scopes
                .iter()
                .map(|s| s.parse())
                .collect::<Result<_, _>>()?;
            let principal = Principal {
                name: t.name.clone(),
                scopes,
            };
            let secret = t.secret()?;
            table.push((hash(&secret), Arc::new(principal)));
            s3_secrets.push((t.name.clone(), S3Secret::from(secret.as_str())));
        }
        Ok(Auth {
            tokens: table,
            s3_secrets,
            anonymous_read,
        })
    }

    /// Identifies the caller from `Authorization`; a wrong token is an error, not anonymous.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, AuthError> {
        let Some(value) = headers.get(http::header::AUTHORIZATION) else {
            return Ok(Identity::Anonymous);
        };
        let value = value.to_str().map_err(|_| AuthError::InvalidCredentials)?;
        let token = credential_of(value).ok_or(AuthError::InvalidCredentials)?;
        self.identify(&token).ok_or(AuthError::InvalidCredentials)
    }

    /// The identity a raw token stands for, if any.
    pub fn identify(&self, token: &str) -> Option<Identity> {
        let presented = hash(token);
        // Compare against every entry so timing says nothing about which one matched.
        let mut found = None;
        for (h, principal) in &self.tokens {
            if bool::from(h.ct_eq(&presented)) {
                found = Some(principal.clone());
            }
        }
        found.map(Identity::Token)
    }

    pub fn authorize(
        &self,
        identity: &Identity,
        protocol: Protocol,
        action: Action,
        name: &str,
    ) -> Result<(), AuthError> {
        match identity {
            Identity::Anonymous if action == Action::Read && self.anonymous_read => Ok(()),
            Identity::Anonymous => Err(AuthError::Unauthenticated),
            Identity::Token(p) if p.scopes.iter().any(|s| s.allows(protocol, action, name)) => {
                Ok(())
            }
            Identity::Token(p) => Err(AuthError::Forbidden(p.name.clone())),
        }
    }

    /// An admin of the whole store: every protocol, every name. Blobs are shared across
    /// protocols, so only this may name stored content by digest alone; an admin of
    /// images only must not reach a private model's bytes. The empty name is matched
    /// only by a scope without a name prefix.
    pub fn authorize_store_admin(&self, identity: &Identity) -> Result<(), AuthError> {
        [Protocol::Oci, Protocol::Pypi, Protocol::Hf]
            .into_iter()
            .try_for_each(|p| self.authorize(identity, p, Action::Admin, ""))
    }

    pub fn is_store_admin(&self, identity: &Identity) -> bool {
        self.authorize_store_admin(identity).is_ok()
    }

    pub fn anonymous_read(&self) -> bool {
        self.anonymous_read
    }

    /// May this identity do `action` on at least one name of `protocol`? For requests
    /// whose name is in the body: refused here before the body is read, and checked
    /// again for the name once it is known.
    pub fn authorize_some(
        &self,
        identity: &Identity,
        protocol: Protocol,
        action: Action,
    ) -> Result<(), AuthError> {
        match identity {
            Identity::Anonymous if action == Action::Read && self.anonymous_read => Ok(()),
            Identity::Anonymous => Err(AuthError::Unauthenticated),
            Identity::Token(p)
                if p.scopes
                    .iter()
                    .any(|s| s.action >= action && s.protocol.is_none_or(|sp| sp == protocol)) =>
            {
                Ok(())
            }
            Identity::Token(p) => Err(AuthError::Forbidden(p.name.clone())),
        }
    }

    /// The identity a principal's name stands for, for tokens that name their holder
    /// (the OCI token service). `None` for unknown or ambiguous names, so a removed,
    /// renamed or duplicated token never resolves.
    pub fn identity_named(&self, name: &str) -> Option<Identity> {
        let mut matches = self.tokens.iter().filter(|(_, p)| p.name == name);
        let (_, principal) = matches.next()?;
        matches
            .next()
            .is_none()
            .then(|| Identity::Token(principal.clone()))
    }

    /// The secret of the token named `access_key_id` (`admin`: the admin token), for S3
    /// clients: SigV4 is an HMAC keyed by the secret itself, so a hash cannot check it.
    /// The secrets stay in memory for this lookup only. `None` for unknown or duplicated
    /// names, so an ambiguous access key id never signs.
    pub fn s3_secret(&self, access_key_id: &str) -> Option<S3Secret> {
        let mut matches = self.s3_secrets.iter().filter(|(n, _)| n == access_key_id);
        let (_, secret) = matches.next()?;
        matches.next().is_none().then(|| secret.clone())
    }

    /// A fingerprint of the secret of the token named `name` (one-way, distinct from the
    /// stored hash): what a refresh token is bound to, so rotating that secret revokes it.
    pub fn secret_fingerprint(&self, name: &str) -> Option<[u8; 32]> {
        let mut matches = self.tokens.iter().filter(|(_, p)| p.name == name);
        let (secret_hash, _) = matches.next()?;
        if matches.next().is_some() {
            return None;
        }
        Some(
            Sha256::new()
                .chain_update(b"airlock-refresh-binding-v1\0")
                .chain_update(secret_hash)
                .finalize()
                .into(),
        )
    }

    /// A digest of every configured credential: replicas sharing a configuration derive
    /// the same signing keys from it, and changing any credential changes it.
    pub fn credentials_fingerprint(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for (secret_hash, principal) in &self.tokens {
            h.update(secret_hash);
            h.update(principal.name.as_bytes());
            h.update([0]);
        }
        h.finalize().into()
    }
}

fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The token in a `Bearer` or `Basic` credential (Basic: the password, any user name).
/// The token of `Authorization: Bearer <token>` (the scheme in any case, RFC 9110), for
/// credentials that only ever travel as bearer tokens (Xet CAS tokens).
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    bearer_of(value)
}

fn bearer_of(value: &str) -> Option<String> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty()).then(|| rest.to_string())
}

fn credential_of(value: &str) -> Option<String> {
    if let Some(token) = bearer_of(value) {
        return Some(token);
    }
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (_user, password) = decoded.split_once(':')?;
        return (!password.is_empty()).then(|| password.to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        let tokens = vec![
            TokenConfig {
                name: "reader".into(),
                secret: Some("reader-secret-0123456789".into()),
                secret_env: None,
                scopes: vec!["read".into()],
            },
            TokenConfig {
                name: "team".into(),
                secret: Some("team-secret-0123456789".into()),
                secret_env: None,
                scopes: vec!["write:oci:docker.io/team/".into(), "write:pypi".into()],
            },
        ];
        validate_tokens(&tokens).unwrap();
        Auth::new(Some("admin-secret-0123456789"), &tokens, false).unwrap()
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn bearer_and_basic_identify_tokens() {
        let a = auth();
        let id = a
            .authenticate(&headers("Bearer team-secret-0123456789"))
            .unwrap();
        assert_eq!(id.name(), "team");
        let basic =
            base64::engine::general_purpose::STANDARD.encode("__token__:reader-secret-0123456789");
        let id = a.authenticate(&headers(&format!("Basic {basic}"))).unwrap();
        assert_eq!(id.name(), "reader");
        assert_eq!(
            a.authenticate(&headers("Bearer wrong")).unwrap_err(),
            AuthError::InvalidCredentials
        );
        assert!(matches!(
            a.authenticate(&HeaderMap::new()),
            Ok(Identity::Anonymous)
        ));
    }

    #[test]
    fn scopes_limit_protocol_prefix_and_action() {
        let a = auth();
        let team = a.identify("team-secret-0123456789").unwrap();
        assert!(a
            .authorize(&team, Protocol::Oci, Action::Write, "docker.io/team/app")
            .is_ok());
        assert!(a
            .authorize(&team, Protocol::Oci, Action::Read, "docker.io/team/app")
            .is_ok());
        assert!(a
            .authorize(
                &team,
                Protocol::Oci,
                Action::Write,
                "docker.io/library/busybox"
            )
            .is_err());
        assert!(a
            .authorize(&team, Protocol::Pypi, Action::Write, "requests")
            .is_ok());
        assert!(a
            .authorize(&team, Protocol::Hf, Action::Read, "gpt2")
            .is_err());
        assert!(a
            .authorize(&team, Protocol::Pypi, Action::Admin, "requests")
            .is_err());
        let reader = a.identify("reader-secret-0123456789").unwrap();
        assert!(a
            .authorize(&reader, Protocol::Hf, Action::Read, "gpt2")
            .is_ok());
        assert_eq!(
            a.authorize(&reader, Protocol::Hf, Action::Write, "gpt2"),
            Err(AuthError::Forbidden("reader".into()))
        );
        let admin = a.identify("admin-secret-0123456789").unwrap();
        assert!(a
            .authorize(&admin, Protocol::Oci, Action::Admin, "x")
            .is_ok());
        // Anonymous read is off in this table.
        assert_eq!(
            a.authorize(&Identity::Anonymous, Protocol::Hf, Action::Read, "gpt2"),
            Err(AuthError::Unauthenticated)
        );
    }

    #[test]
    fn bad_token_config_is_refused_with_a_reason() {
        let t = |secret: &str, scopes: &[&str]| TokenConfig {
            name: "t".into(),
            secret: Some(secret.into()),
            secret_env: None,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        };
        assert!(validate_tokens(&[t("short", &["read"])])
            .unwrap_err()
            .contains("too short"));
        assert!(validate_tokens(&[t("long-enough-secret-123", &["fly"])])
            .unwrap_err()
            .contains("fly"));
        assert!(validate_tokens(&[t("long-enough-secret-123", &["read:npm"])]).is_err());
        assert!(validate_tokens(&[t("long-enough-secret-123", &[])]).is_err());
    }

    #[test]
    fn s3_secrets_by_token_name() {
        let a = auth();
        assert_eq!(
            a.s3_secret("reader").unwrap().expose(),
            "reader-secret-0123456789"
        );
        assert_eq!(
            a.s3_secret("admin").unwrap().expose(),
            "admin-secret-0123456789"
        );
        assert!(a.s3_secret("nobody").is_none());
        assert!(!format!("{:?}", a).contains("reader-secret"));
        let twice = |name: &str| TokenConfig {
            name: name.into(),
            secret: Some(format!("{name}-secret-0123456789")),
            secret_env: None,
            scopes: vec!["read".into()],
        };
        // Duplicated names (a token called `admin` too) answer nothing.
        let dup = Auth::new(
            Some("admin-secret-0123456789"),
            &[twice("admin"), twice("x")],
            false,
        )
        .unwrap();
        assert!(dup.s3_secret("admin").is_none());
        assert!(dup.s3_secret("x").is_some());
    }

    #[test]
    fn prefixes_grant_whole_segments() {
        let s = |text: &str| text.parse::<Scope>().unwrap();
        for prefix in ["write:oci:docker.io/team", "write:oci:docker.io/team/"] {
            let scope = s(prefix);
            assert!(scope.allows(Protocol::Oci, Action::Write, "docker.io/team"));
            assert!(scope.allows(Protocol::Oci, Action::Write, "docker.io/team/app"));
            assert!(!scope.allows(Protocol::Oci, Action::Write, "docker.io/team-evil"));
            assert!(!scope.allows(Protocol::Oci, Action::Write, "docker.io/team-evil/app"));
            assert!(!scope.allows(Protocol::Oci, Action::Write, "docker.io/tea"));
        }
        assert!(!s("write:oci:/").allows(Protocol::Oci, Action::Write, "x"));
    }

    #[test]
    fn hub_prefixes_name_their_kind() {
        let s = |text: &str| text.parse::<Scope>().unwrap();
        let alice = s("write:hf:alice/");
        assert!(alice.allows(Protocol::Hf, Action::Write, "models/alice/m"));
        assert!(!alice.allows(Protocol::Hf, Action::Write, "datasets/alice/d"));
        assert!(!alice.allows(Protocol::Hf, Action::Write, "models/alice-evil/m"));
        let data = s("write:hf:datasets/alice/");
        assert!(data.allows(Protocol::Hf, Action::Write, "datasets/alice/d"));
        assert!(!data.allows(Protocol::Hf, Action::Write, "models/alice/d"));
        // The model `datasets/x` is not the dataset `x`.
        let model_org = s("write:hf:models/datasets/");
        assert!(model_org.allows(Protocol::Hf, Action::Write, "models/datasets/x"));
        assert!(!model_org.allows(Protocol::Hf, Action::Write, "datasets/x"));
        // Other protocols are untouched by the Hub's spelling.
        assert!(s("write:*:alice/").allows(Protocol::Pypi, Action::Write, "alice/pkg"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Any header value: no panic, and a credential no longer than the header.
        #[test]
        fn authorization_header_never_panics(value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let text = String::from_utf8_lossy(&value);
            if let Some(c) = credential_of(&text) {
                proptest::prop_assert!(c.len() <= text.len());
            }
            if let Ok(v) = http::HeaderValue::from_bytes(&value) {
                let mut h = HeaderMap::new();
                h.insert(http::header::AUTHORIZATION, v);
                let _ = auth().authenticate(&h);
            }
        }

        /// Any scope string parses or is refused; a parsed one answers without panicking,
        /// and a granted name starts with its prefix's segments.
        #[test]
        fn scope_strings(text in "[a-z:/*.-]{0,40}", name in "[a-z/.-]{0,40}") {
            if let Ok(scope) = text.parse::<Scope>() {
                for protocol in [Protocol::Oci, Protocol::Pypi, Protocol::Hf] {
                    if scope.allows(protocol, Action::Read, &name) {
                        if let Some(p) = &scope.prefix {
                            let p = scope_prefix(protocol, p);
                            proptest::prop_assert!(name.starts_with(p.trim_end_matches('/')));
                        }
                    }
                }
            }
        }
    }
}
