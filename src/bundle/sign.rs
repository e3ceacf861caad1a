//! Detached ed25519 signatures of `manifest.json`. The manifest names every object by
//! digest, so signing it signs the whole bundle.
//!
//! Key files are one line of base64: `PREFIX.key` the 32-byte secret seed (mode 0600),
//! `PREFIX.pub` the 32-byte public key; `manifest.json.sig` the 64-byte signature.

use anyhow::{anyhow, bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes a new key pair; never overwrites an existing key.
pub fn keygen(prefix: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow!("no randomness from the OS: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    let with_ext = |ext: &str| {
        let mut p = prefix.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    };
    let (secret_path, public_path) = (with_ext(".key"), with_ext(".pub"));
    let mut options = std::fs::File::options();
    options.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut secret = options.open(&secret_path).with_context(|| {
        format!(
            "{}: cannot create it (keys are never overwritten; choose another --out)",
            secret_path.display()
        )
    })?;
    writeln!(secret, "{}", B64.encode(key.to_bytes()))?;
    secret.sync_all()?;
    std::fs::write(
        &public_path,
        format!("{}\n", B64.encode(key.verifying_key().to_bytes())),
    )
    .with_context(|| format!("{}", public_path.display()))?;
    Ok((secret_path, public_path))
}

fn decode<const N: usize>(text: &str, what: &str) -> anyhow::Result<[u8; N]> {
    let bytes = B64
        .decode(text.trim())
        .map_err(|_| anyhow!("{what} is not base64"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow!("{what} is not {N} bytes of base64"))
}

pub fn load_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the signing key {}; make one with `airlock bundle keygen`",
            path.display()
        )
    })?;
    let seed = decode::<32>(&text, &format!("signing key {}", path.display()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// A public key given inline (base64, as in `PREFIX.pub`) or as a path to such a file.
pub fn load_public_key(given: &str) -> anyhow::Result<VerifyingKey> {
    let text = match decode::<32>(given, "key") {
        Ok(_) => given.to_string(),
        Err(_) => std::fs::read_to_string(given).with_context(|| {
            format!("bundle public key `{given}`: neither base64 nor a readable file; give the PREFIX.pub that `airlock bundle keygen` wrote")
        })?,
    };
    let bytes = decode::<32>(&text, &format!("bundle public key `{given}`"))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| anyhow!("bundle public key `{given}` is not a valid ed25519 key"))
}

pub fn sign(key: &SigningKey, manifest: &[u8]) -> Vec<u8> {
    format!("{}\n", B64.encode(key.sign(manifest).to_bytes())).into_bytes()
}

/// What was checked, for the summary.
#[derive(Debug, PartialEq, Eq)]
pub enum Checked {
    /// Signed by the configured key with this index.
    Verified(usize),
    /// No key configured: nothing to check against.
    NotChecked { signed: bool },
}

/// Refuses a bundle whose signature does not verify against any configured key, and an
/// unsigned one when keys are configured.
pub fn check(
    keys: &[VerifyingKey],
    manifest: &[u8],
    signature: Option<&[u8]>,
) -> anyhow::Result<Checked> {
    if keys.is_empty() {
        return Ok(Checked::NotChecked {
            signed: signature.is_some(),
        });
    }
    let Some(signature) = signature else {
        bail!("the bundle is not signed, but bundle public keys are configured: nothing was imported; export it with --sign-key, or import without the keys configured if it is trusted");
    };
    let text = std::str::from_utf8(signature).unwrap_or_default();
    let signature = decode::<64>(text, "manifest.json.sig")
        .map(|b| Signature::from_bytes(&b))
        .map_err(|e| anyhow!("{e}: the bundle was altered; nothing was imported; get a fresh copy from the sender"))?;
    for (i, key) in keys.iter().enumerate() {
        if key.verify_strict(manifest, &signature).is_ok() {
            return Ok(Checked::Verified(i));
        }
    }
    bail!("the bundle's signature does not verify against any configured public key (altered, or signed by another key): nothing was imported; get the bundle again from a trusted sender, or configure its public key in [bundle] public_keys")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_manifests_verify_and_tampering_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public) = keygen(&dir.path().join("k")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(keygen(&dir.path().join("k")).is_err(), "never overwrites");
        let key = load_signing_key(&secret).unwrap();
        let by_path = load_public_key(public.to_str().unwrap()).unwrap();
        let inline = load_public_key(std::fs::read_to_string(&public).unwrap().trim()).unwrap();
        assert_eq!(by_path, inline);

        let manifest = br#"{"objects":[]}"#;
        let sig = sign(&key, manifest);
        assert_eq!(
            check(&[by_path], manifest, Some(&sig)).unwrap(),
            Checked::Verified(0)
        );
        assert!(check(&[by_path], br#"{"objects":[1]}"#, Some(&sig)).is_err());
        assert!(check(&[by_path], manifest, None).is_err());
        assert!(check(&[by_path], manifest, Some(b"garbage")).is_err());
        let (_, other) = keygen(&dir.path().join("other")).unwrap();
        let other = load_public_key(other.to_str().unwrap()).unwrap();
        assert!(check(&[other], manifest, Some(&sig)).is_err());
        assert_eq!(
            check(&[other, by_path], manifest, Some(&sig)).unwrap(),
            Checked::Verified(1)
        );
        assert_eq!(
            check(&[], manifest, None).unwrap(),
            Checked::NotChecked { signed: false }
        );
    }
}
