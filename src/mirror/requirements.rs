//! Requirement lines as pip reads them from a requirements file (`uv pip compile
//! --generate-hashes` output included): `name==version`, backslash continuations,
//! comments, and `--hash=sha256:<hex>` options, which restrict a requirement to the
//! files with those hashes. PEP 508 parsing (names, extras, specifiers, markers) is
//! `pep508_rs`'s. Markers are kept out of the decision: the mirror serves many machines.

use pep508_rs::{Requirement, VersionOrUrl};
use std::collections::BTreeSet;

#[derive(Debug, Clone)]
pub struct Wanted {
    pub name: String,
    /// The PEP 440 specifiers; empty means every version.
    pub specifiers: pep440_rs::VersionSpecifiers,
    /// Allowed sha256 hex digests; empty means any.
    pub hashes: BTreeSet<String>,
    /// An exact `==` pin: yanked files are taken too (PEP 592).
    pub pinned: bool,
}

/// Parses one requirement string (`numpy>=1.26,<2`, `tokenizers`).
pub fn parse_requirement(text: &str) -> Result<Wanted, String> {
    let req: Requirement = text
        .trim()
        .parse()
        .map_err(|e| format!("`{text}` is not a valid requirement: {e}"))?;
    let specifiers = match req.version_or_url {
        None => pep440_rs::VersionSpecifiers::empty(),
        Some(VersionOrUrl::VersionSpecifier(s)) => s,
        Some(VersionOrUrl::Url(_)) => {
            return Err(format!(
                "`{text}`: URL requirements cannot be mirrored from an index"
            ))
        }
    };
    let pinned = specifiers.iter().any(|s| {
        matches!(
            s.operator(),
            pep440_rs::Operator::Equal | pep440_rs::Operator::ExactEqual
        )
    });
    Ok(Wanted {
        name: req.name.to_string(),
        specifiers,
        hashes: BTreeSet::new(),
        pinned,
    })
}

/// Parses a requirements file's text.
pub fn parse_file(text: &str) -> Result<Vec<Wanted>, String> {
    let joined = text.replace("\\\r\n", " ").replace("\\\n", " ");
    let mut out = Vec::new();
    for (n, raw) in joined.lines().enumerate() {
        // ` #` starts a comment; `#` inside a URL fragment needs a space before to count.
        let line = match raw.find(" #") {
            Some(i) => &raw[..i],
            None if raw.trim_start().starts_with('#') => "",
            None => raw,
        }
        .trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('-') {
            // Options of their own line (--index-url, -r, -c, ...) say nothing about files.
            tracing::debug!("requirements line {}: option ignored: {line}", n + 1);
            continue;
        }
        let mut hashes = BTreeSet::new();
        let mut requirement = Vec::new();
        for token in line.split_whitespace() {
            if let Some(h) = token
                .strip_prefix("--hash=")
                .or_else(|| token.strip_prefix("--hash "))
            {
                let hex = h.strip_prefix("sha256:").ok_or_else(|| {
                    format!(
                        "line {}: only sha256 hashes are supported, not `{h}`",
                        n + 1
                    )
                })?;
                hashes.insert(hex.to_ascii_lowercase());
            } else {
                requirement.push(token);
            }
        }
        let mut wanted = parse_requirement(&requirement.join(" "))
            .map_err(|e| format!("line {}: {e}", n + 1))?;
        wanted.hashes = hashes;
        out.push(wanted);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_uv_compiled_files() {
        let text = "# generated\n--index-url https://x/simple\nnumpy==1.26.4 \\\n    --hash=sha256:AA \\\n    --hash=sha256:bb\n    # via torch\nrequests>=2 ; python_version >= \"3.8\"  # comment\n";
        let reqs = parse_file(text).unwrap();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].name, "numpy");
        assert!(reqs[0].pinned);
        assert_eq!(
            reqs[0].hashes.iter().cloned().collect::<Vec<_>>(),
            ["aa", "bb"]
        );
        assert_eq!(reqs[1].name, "requests");
        assert!(!reqs[1].pinned);
        assert!(reqs[1].hashes.is_empty());
        assert!(parse_file("x==1 --hash=md5:abc").is_err());
        assert!(parse_file("not a requirement!").is_err());
    }

    #[test]
    fn specifiers_select_versions() {
        let w = parse_requirement("numpy>=1.26,<2").unwrap();
        let v = |s: &str| s.parse::<pep440_rs::Version>().unwrap();
        assert!(w.specifiers.contains(&v("1.26.4")));
        assert!(!w.specifiers.contains(&v("2.0.0")));
        assert!(parse_requirement("tokenizers")
            .unwrap()
            .specifiers
            .is_empty());
    }
}
