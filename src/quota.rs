//! Byte quotas (`quotas` in `[oci]`, `[pypi]` and `[hf]`): a limit per scope (an OCI
//! namespace, a Python index, a Hub organization), sizes as operators write them, and the
//! refusal each protocol words in its own error format.
//!
//! A scope's usage is what its live items reference, each blob once however many items
//! name it (the mark `airlock gc` makes, restricted to the scope); the protocol computes
//! it when a write would add to it. Deleting frees quota at once, before any collection.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;

/// `4GiB`, `700MB`, `64KiB`, `1G` (binary), or plain bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as 4GiB or 700MB"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit (use B, KiB, MiB, GiB, KB, MB, GB)"
            ))
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Bytes for people: `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

/// Deserializes an optional size written as `"10GiB"` or a number of bytes.
pub fn optional_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Option::<Size>::deserialize(d)? {
        None => Ok(None),
        Some(Size::Bytes(b)) => Ok(Some(b)),
        Some(Size::Text(t)) => parse_size(&t).map(Some).map_err(serde::de::Error::custom),
    }
}

/// Limits by scope: `{ "docker.io/team" = "10GiB" }`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Quotas(BTreeMap<String, u64>);

impl<'de> Deserialize<'de> for Quotas {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Size {
            Bytes(u64),
            Text(String),
        }
        let raw = BTreeMap::<String, Size>::deserialize(d)?;
        let mut out = BTreeMap::new();
        for (scope, size) in raw {
            let bytes = match size {
                Size::Bytes(b) => b,
                Size::Text(t) => parse_size(&t).map_err(serde::de::Error::custom)?,
            };
            out.insert(scope.trim_matches('/').to_string(), bytes);
        }
        Ok(Quotas(out))
    }
}

impl Quotas {
    pub fn new(limits: impl IntoIterator<Item = (String, u64)>) -> Quotas {
        Quotas(limits.into_iter().collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The limit of exactly this scope (a Python index, a Hub organization).
    pub fn of(&self, scope: &str) -> Option<Limit> {
        self.0.get(scope).map(|&bytes| Limit {
            scope: scope.to_string(),
            bytes,
        })
    }

    /// The limit of the deepest scope `name` is under, scopes being `/`-separated
    /// prefixes (an OCI namespace `docker.io/team` holds `docker.io/team/app/api`).
    pub fn under(&self, name: &str) -> Option<Limit> {
        self.0
            .iter()
            .filter(|(scope, _)| {
                name == scope.as_str()
                    || name
                        .strip_prefix(scope.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .max_by_key(|(scope, _)| scope.len())
            .map(|(scope, &bytes)| Limit {
                scope: scope.clone(),
                bytes,
            })
    }
}

/// One scope's limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    pub scope: String,
    pub bytes: u64,
}

impl Limit {
    /// Refuses a write adding `adding` bytes to a scope holding `used`.
    pub fn admit(&self, used: u64, adding: u64) -> Result<(), Exceeded> {
        match used.checked_add(adding) {
            Some(total) if total <= self.bytes => Ok(()),
            _ => Err(Exceeded {
                limit: self.clone(),
                used,
                adding,
            }),
        }
    }
}

/// A write refused by a quota; the message names the quota and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exceeded {
    pub limit: Limit,
    pub used: u64,
    pub adding: u64,
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "quota exceeded: `{}` may hold {}; it holds {} and this would add {}. Delete something there, or ask an operator to raise the quota",
            self.limit.scope,
            human(self.limit.bytes),
            human(self.used),
            human(self.adding)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_scopes() {
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("700MB"), Ok(700_000_000));
        assert_eq!(parse_size("12"), Ok(12));
        assert!(parse_size("4 parsecs").is_err());
        let quotas: Quotas =
            toml::from_str("\"docker.io/team\" = \"1MiB\"\n\"docker.io/team/big\" = 10\n").unwrap();
        assert_eq!(quotas.under("docker.io/team/app").unwrap().bytes, 1 << 20);
        assert_eq!(quotas.under("docker.io/team/big/x").unwrap().bytes, 10);
        assert_eq!(quotas.under("docker.io/teamster/app"), None);
        assert_eq!(quotas.of("docker.io/team").unwrap().bytes, 1 << 20);
        let limit = quotas.of("docker.io/team").unwrap();
        assert!(limit.admit(1 << 19, 1 << 19).is_ok());
        let refused = limit.admit(1 << 20, 1).unwrap_err().to_string();
        assert!(
            refused.contains("`docker.io/team` may hold 1.0 MiB"),
            "{refused}"
        );
    }
}
