//! Signed xorb URLs: what a reconstruction hands hf_xet to fetch chunks with.
//!
//! hf_xet fetches these with no credentials (like the presigned S3 URLs the Hub gives
//! it), so the URL itself is the grant: one xorb, the exact byte ranges the
//! reconstruction named, and an expiry, under an HMAC whose key is derived from the Hub's
//! signing key with a label of its own (no CAS token or LFS upload signature is ever one
//! of these). Every replica sharing the key accepts them. A request may ask for any of
//! the signed ranges, or parts of them (hf_xet splits a multi-range URL into single-range
//! requests), never a byte outside them.

use crate::xet::MerkleHash;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};

/// How long a fetch URL lives. hf_xet asks for a new reconstruction when one is refused
/// with a 403, so a short life costs a round trip, not a failed download.
pub const FETCH_URL_TTL_SECS: u64 = 900;
/// Ranges one URL may carry: keeps URLs far below common 8 KiB limits.
pub const MAX_RANGES_PER_URL: usize = 128;

#[derive(Clone)]
pub struct FetchSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for FetchSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FetchSigner")
    }
}

/// What a verified URL allows: byte ranges of one xorb, ends inclusive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchGrant {
    pub xorb: MerkleHash,
    pub ranges: Vec<(u64, u64)>,
}

impl FetchGrant {
    /// Whether every requested range lies within one granted range.
    pub fn covers(&self, requested: &[(u64, u64)]) -> bool {
        !requested.is_empty()
            && requested
                .iter()
                .all(|&(s, e)| s <= e && self.ranges.iter().any(|&(gs, ge)| gs <= s && e <= ge))
    }
}

impl FetchSigner {
    pub fn new(signing_key: &[u8; 32]) -> FetchSigner {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(signing_key).expect("any key length");
        mac.update(b"airlock-xet-fetch-url-v1");
        FetchSigner {
            key: mac.finalize().into_bytes().into(),
        }
    }

    /// The query string (without `?`) granting `ranges` of `xorb` until `expires`.
    pub fn sign(&self, xorb: &MerkleHash, ranges: &[(u64, u64)], expires: u64) -> String {
        let ranges = spell(ranges);
        let sig = B64.encode(self.mac(xorb, &ranges, expires).finalize().into_bytes());
        format!("ranges={ranges}&exp={expires}&sig={sig}")
    }

    /// The grant of a query string, if this signer made it and it has not expired.
    pub fn verify(&self, xorb: &MerkleHash, query: &str, now: u64) -> Option<FetchGrant> {
        if query.len() > 64 + MAX_RANGES_PER_URL * 42 {
            return None;
        }
        let (mut ranges, mut exp, mut sig) = (None, None, None);
        for pair in query.split('&') {
            match pair.split_once('=')? {
                ("ranges", v) if ranges.is_none() => ranges = Some(v),
                ("exp", v) if exp.is_none() => exp = Some(v.parse::<u64>().ok()?),
                ("sig", v) if sig.is_none() => sig = Some(B64.decode(v).ok()?),
                _ => return None,
            }
        }
        let (ranges, expires, sig) = (ranges?, exp?, sig?);
        self.mac(xorb, ranges, expires).verify_slice(&sig).ok()?;
        if expires <= now {
            return None;
        }
        Some(FetchGrant {
            xorb: *xorb,
            ranges: parse_ranges(ranges, MAX_RANGES_PER_URL)?,
        })
    }

    fn mac(&self, xorb: &MerkleHash, ranges: &str, expires: u64) -> Hmac<sha2::Sha256> {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(format!("{}\n{ranges}\n{expires}", xorb.to_api_hex()).as_bytes());
        mac
    }
}

/// `a-b,c-d`
fn spell(ranges: &[(u64, u64)]) -> String {
    ranges
        .iter()
        .map(|(s, e)| format!("{s}-{e}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `a-b,c-d` (ends inclusive, each `a <= b`), at most `max` of them.
pub fn parse_ranges(text: &str, max: usize) -> Option<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    for r in text.split(',') {
        if out.len() == max {
            return None;
        }
        let (s, e) = r.trim().split_once('-')?;
        let (s, e): (u64, u64) = (s.parse().ok()?, e.parse().ok()?);
        if s > e {
            return None;
        }
        out.push((s, e));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn a_url_grants_its_ranges_of_its_xorb_until_it_expires() {
        let signer = FetchSigner::new(&[3; 32]);
        let x = MerkleHash([1; 32]);
        let q = signer.sign(&x, &[(0, 99), (200, 299)], NOW + 60);
        let grant = signer.verify(&x, &q, NOW).unwrap();
        assert!(grant.covers(&[(0, 99)]));
        assert!(grant.covers(&[(10, 20), (200, 299)]));
        assert!(!grant.covers(&[(0, 100)]), "one byte past");
        assert!(!grant.covers(&[(90, 210)]), "across the gap");
        assert!(!grant.covers(&[]));
        assert!(signer.verify(&x, &q, NOW + 60).is_none(), "expired");
        assert!(signer.verify(&MerkleHash([2; 32]), &q, NOW).is_none());
        assert!(FetchSigner::new(&[4; 32]).verify(&x, &q, NOW).is_none());
    }

    #[test]
    fn altered_urls_are_refused() {
        let signer = FetchSigner::new(&[3; 32]);
        let x = MerkleHash([1; 32]);
        let q = signer.sign(&x, &[(0, 99)], NOW + 60);
        for forged in [
            q.replace("0-99", "0-999"),
            q.replace(&format!("exp={}", NOW + 60), &format!("exp={}", NOW + 6000)),
            format!("{q}&ranges=0-999"),
            q.replace("&sig=", "&sig=A"),
            q.split("&sig").next().unwrap().to_string(),
            String::new(),
        ] {
            assert!(signer.verify(&x, &forged, NOW).is_none(), "{forged}");
        }
    }

    #[test]
    fn range_lists_are_bounded() {
        assert_eq!(parse_ranges("1-2, 5-9", 4), Some(vec![(1, 2), (5, 9)]));
        assert_eq!(parse_ranges("2-1", 4), None);
        assert_eq!(parse_ranges("1-", 4), None);
        assert_eq!(parse_ranges("-5", 4), None);
        assert_eq!(parse_ranges("1-2,3-4,5-6", 2), None);
    }
}
