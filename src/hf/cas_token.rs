//! Access tokens for Airlock's Xet CAS, handed out by the Hub's `xet-read-token` and
//! `xet-write-token` routes.
//!
//! A CAS token is bound to one repository, to read or write, to the Airlock token it was
//! derived from, and to an expiry. The CAS checks all four on every request, and asks the
//! configuration again whether that Airlock token still has the scope: a token removed
//! from the config, or whose secret was rotated, takes its CAS tokens with it at once,
//! not when they expire. Tokens are HMAC-signed, so every replica sharing the Hub's
//! signing key accepts them without shared state.

use super::model::{RepoRef, RepoType};
use crate::auth::{Action, Auth, Identity, Protocol};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};

/// How long a CAS token lives. hf_xet asks for a new one 30 s before it expires, through
/// the refresh route the Hub names, so a long upload is not cut off.
pub const CAS_TOKEN_TTL_SECS: u64 = 3600;
/// Longer than any token this module writes; a longer bearer value is not one.
const MAX_TOKEN_LEN: usize = 2048;
const PREFIX: &str = "xetcas1.";

/// What a CAS token allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CasGrant {
    pub repo: RepoRef,
    pub write: bool,
    /// The Airlock token's name, or `None` for an anonymous reader.
    pub principal: Option<String>,
    /// Unix seconds.
    pub expires: u64,
}

impl CasGrant {
    pub fn action(&self) -> Action {
        if self.write {
            Action::Write
        } else {
            Action::Read
        }
    }
}

#[derive(Clone)]
pub struct CasTokens {
    key: [u8; 32],
}

impl std::fmt::Debug for CasTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CasTokens")
    }
}

impl CasTokens {
    /// Derived from the Hub's signing key, under a label of its own so that no LFS upload
    /// signature is ever a CAS token signature or the reverse.
    pub fn new(signing_key: &[u8; 32]) -> CasTokens {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(signing_key).expect("any key length");
        mac.update(b"airlock-xet-cas-token-v1");
        CasTokens {
            key: mac.finalize().into_bytes().into(),
        }
    }

    /// A token for `identity` on `repo`, if it may have one: the caller must already be
    /// authorized for the action (the Hub route checks that first); this binds the token
    /// to the credential it came from. `None` for an identity with no stable binding
    /// (a token name configured twice).
    pub fn mint(
        &self,
        auth: &Auth,
        identity: &Identity,
        repo: &RepoRef,
        write: bool,
        now: u64,
    ) -> Option<(String, CasGrant)> {
        let principal = match identity {
            Identity::Anonymous if !write => None,
            Identity::Anonymous => return None,
            Identity::Token(p) => Some(p.name.clone()),
        };
        let binding = binding(auth, principal.as_deref())?;
        let grant = CasGrant {
            repo: repo.clone(),
            write,
            principal,
            expires: now + CAS_TOKEN_TTL_SECS,
        };
        let payload = encode(&grant);
        let sig = self.sign(&payload, &binding);
        Some((
            format!("{PREFIX}{}.{}", B64.encode(&payload), B64.encode(sig)),
            grant,
        ))
    }

    /// The grant a bearer token carries, if it is one of ours, unexpired, still bound to
    /// a configured credential, and that credential still has the scope.
    pub fn verify(&self, auth: &Auth, token: &str, now: u64) -> Option<CasGrant> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let (payload, sig) = token.strip_prefix(PREFIX)?.split_once('.')?;
        let payload = B64.decode(payload).ok()?;
        let sig = B64.decode(sig).ok()?;
        let grant = decode(&payload)?;
        let binding = binding(auth, grant.principal.as_deref())?;
        self.mac(&payload, &binding).verify_slice(&sig).ok()?;
        if grant.expires <= now {
            return None;
        }
        let identity = match &grant.principal {
            None if grant.write => return None,
            None => Identity::Anonymous,
            Some(name) => auth.identity_named(name)?,
        };
        auth.authorize(
            &identity,
            Protocol::Hf,
            grant.action(),
            &grant.repo.scope_name(),
        )
        .ok()?;
        Some(grant)
    }

    fn mac(&self, payload: &[u8], binding: &[u8; 32]) -> Hmac<sha2::Sha256> {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(binding);
        mac.update(payload);
        mac
    }

    fn sign(&self, payload: &[u8], binding: &[u8; 32]) -> Vec<u8> {
        self.mac(payload, binding).finalize().into_bytes().to_vec()
    }
}

/// What a token is bound to: the fingerprint of the credential's secret (rotating it
/// revokes the token), or for anonymous readers the fact that anonymous reads are on.
fn binding(auth: &Auth, principal: Option<&str>) -> Option<[u8; 32]> {
    match principal {
        Some(name) => auth.secret_fingerprint(name),
        None if auth.anonymous_read() => Some([0; 32]),
        None => None,
    }
}

/// `kind \n repo \n r|w \n expires \n principal`: repository and token names never hold
/// a newline, so the fields cannot run into each other.
fn encode(grant: &CasGrant) -> Vec<u8> {
    format!(
        "{}\n{}\n{}\n{}\n{}",
        grant.repo.kind.plural(),
        grant.repo.id,
        if grant.write { "w" } else { "r" },
        grant.expires,
        grant.principal.as_deref().unwrap_or("")
    )
    .into_bytes()
}

fn decode(payload: &[u8]) -> Option<CasGrant> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut fields = text.split('\n');
    let kind = RepoType::from_plural(fields.next()?)?;
    let repo = RepoRef::new(kind, fields.next()?)?;
    let write = match fields.next()? {
        "w" => true,
        "r" => false,
        _ => return None,
    };
    let expires = fields.next()?.parse().ok()?;
    let principal = Some(fields.next()?.to_string()).filter(|p| !p.is_empty());
    if fields.next().is_some() {
        return None;
    }
    Some(CasGrant {
        repo,
        write,
        principal,
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenConfig;

    const NOW: u64 = 1_800_000_000;

    fn auth(secret: &str, scopes: &[&str], anonymous_read: bool) -> Auth {
        let tokens = vec![TokenConfig {
            name: "alice".into(),
            secret: Some(secret.into()),
            secret_env: None,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }];
        Auth::new(None, &tokens, anonymous_read).unwrap()
    }

    fn alice(auth: &Auth) -> Identity {
        auth.identity_named("alice").unwrap()
    }

    fn model(id: &str) -> RepoRef {
        RepoRef::new(RepoType::Model, id).unwrap()
    }

    #[test]
    fn a_token_grants_its_repository_and_action_until_it_expires() {
        let tokens = CasTokens::new(&[7; 32]);
        let a = auth("alice-secret-0123456789", &["write:hf:alice/"], false);
        let (token, grant) = tokens
            .mint(&a, &alice(&a), &model("alice/m"), true, NOW)
            .unwrap();
        assert_eq!(tokens.verify(&a, &token, NOW + 10), Some(grant.clone()));
        assert_eq!(grant.expires, NOW + CAS_TOKEN_TTL_SECS);
        assert_eq!(tokens.verify(&a, &token, grant.expires), None, "expired");
        // Another replica with the same key accepts it; another key does not.
        assert!(CasTokens::new(&[7; 32]).verify(&a, &token, NOW).is_some());
        assert!(CasTokens::new(&[8; 32]).verify(&a, &token, NOW).is_none());
    }

    #[test]
    fn a_rotated_secret_or_a_narrowed_scope_revokes_at_once() {
        let tokens = CasTokens::new(&[7; 32]);
        let a = auth("alice-secret-0123456789", &["write:hf:alice/"], false);
        let (token, _) = tokens
            .mint(&a, &alice(&a), &model("alice/m"), true, NOW)
            .unwrap();
        let rotated = auth("alice-secret-rotated-0123", &["write:hf:alice/"], false);
        assert!(tokens.verify(&rotated, &token, NOW).is_none());
        let narrowed = auth("alice-secret-0123456789", &["read:hf:alice/"], false);
        assert!(tokens.verify(&narrowed, &token, NOW).is_none());
    }

    #[test]
    fn anonymous_readers_get_read_tokens_only_while_anonymous_read_is_on() {
        let tokens = CasTokens::new(&[7; 32]);
        let open = auth("alice-secret-0123456789", &[], true);
        assert!(tokens
            .mint(&open, &Identity::Anonymous, &model("o/m"), true, NOW)
            .is_none());
        let (token, grant) = tokens
            .mint(&open, &Identity::Anonymous, &model("o/m"), false, NOW)
            .unwrap();
        assert_eq!(grant.principal, None);
        assert!(tokens.verify(&open, &token, NOW).is_some());
        let closed = auth("alice-secret-0123456789", &[], false);
        assert!(tokens.verify(&closed, &token, NOW).is_none());
    }

    #[test]
    fn altered_tokens_are_refused() {
        let tokens = CasTokens::new(&[7; 32]);
        let a = auth("alice-secret-0123456789", &["write:hf:"], false);
        let (token, grant) = tokens
            .mint(&a, &alice(&a), &model("alice/m"), false, NOW)
            .unwrap();
        let (payload, sig) = token.strip_prefix(PREFIX).unwrap().split_once('.').unwrap();
        // The same signature over another repository, or over write instead of read.
        for other in [
            CasGrant {
                repo: model("bob/m"),
                ..grant.clone()
            },
            CasGrant {
                write: true,
                ..grant.clone()
            },
            CasGrant {
                expires: grant.expires + 1_000_000,
                ..grant.clone()
            },
        ] {
            let forged = format!("{PREFIX}{}.{sig}", B64.encode(encode(&other)));
            assert!(tokens.verify(&a, &forged, NOW).is_none(), "{other:?}");
        }
        assert!(tokens
            .verify(&a, &format!("{PREFIX}{payload}."), NOW)
            .is_none());
        assert!(tokens.verify(&a, "xetcas1.", NOW).is_none());
        assert!(tokens.verify(&a, &"x".repeat(5000), NOW).is_none());
        assert!(tokens.verify(&a, "alice-secret-0123456789", NOW).is_none());
    }

    #[test]
    fn payloads_round_trip_and_reject_extra_fields() {
        let grant = CasGrant {
            repo: RepoRef::new(RepoType::Dataset, "org/d").unwrap(),
            write: false,
            principal: Some("ci".into()),
            expires: 42,
        };
        assert_eq!(decode(&encode(&grant)), Some(grant));
        assert_eq!(decode(b"datasets\norg/d\nr\n42\nci\nextra"), None);
        assert_eq!(decode(b"datasets\n../x\nr\n42\nci"), None);
    }
}
