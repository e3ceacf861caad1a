//! Project names (PEP 503 normalization) and distribution filenames.

/// `re.sub(r"[-_.]+", "-", name).lower()`
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_separator {
                out.push('-');
            }
            in_separator = true;
        } else {
            out.push(c.to_ascii_lowercase());
            in_separator = false;
        }
    }
    out
}

/// A valid project name (PEP 508): ASCII letters and digits, with `.`, `_`, `-` inside.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 200
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DistKind {
    Wheel,
    Sdist,
}

impl DistKind {
    /// The `filetype` value of the legacy upload API.
    pub fn upload_filetype(self) -> &'static str {
        match self {
            DistKind::Wheel => "bdist_wheel",
            DistKind::Sdist => "sdist",
        }
    }
}

/// What a filename says about its distribution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistFilename {
    pub kind: DistKind,
    /// The version as the filename spells it.
    pub version: String,
}

const SDIST_SUFFIXES: [&str; 4] = [".tar.gz", ".zip", ".tar.bz2", ".tgz"];

/// Parses `filename` as a distribution of `project` (wheel or sdist), checking that the
/// name part is that project. `None` when it is not a file of this project.
pub fn parse_filename(filename: &str, project: &str) -> Option<DistFilename> {
    if !is_safe_filename(filename) {
        return None;
    }
    let project = normalize(project);
    if let Some(stem) = filename.strip_suffix(".whl") {
        // {distribution}-{version}(-{build tag})?-{python tag}-{abi tag}-{platform tag}.whl
        let parts: Vec<&str> = stem.split('-').collect();
        if !(parts.len() == 5 || parts.len() == 6) || normalize(parts[0]) != project {
            return None;
        }
        return Some(DistFilename {
            kind: DistKind::Wheel,
            version: parts[1].to_string(),
        });
    }
    let stem = SDIST_SUFFIXES
        .iter()
        .find_map(|suffix| filename.strip_suffix(suffix))?;
    // {name}-{version}: the name may itself contain '-' in old sdists; find the split
    // whose left side normalizes to the project.
    stem.match_indices('-').find_map(|(i, _)| {
        let (name, version) = (&stem[..i], &stem[i + 1..]);
        (normalize(name) == project && !version.is_empty()).then(|| DistFilename {
            kind: DistKind::Sdist,
            version: version.to_string(),
        })
    })
}

/// A plain file name: no path separators, no leading dot, printable ASCII.
pub fn is_safe_filename(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'/' | b'\\' | b'"' | b'<' | b'>' | b'&' | b'#' | b'?' | b'%'
                )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_pep503() {
        assert_eq!(normalize("Foo_Bar"), "foo-bar");
        assert_eq!(normalize("foo.-_bar"), "foo-bar");
        assert_eq!(normalize("Django"), "django");
        assert!(is_valid_name("zope.interface"));
        assert!(!is_valid_name("-x"));
        assert!(!is_valid_name("a/b"));
        assert!(!is_valid_name(""));
    }

    #[test]
    fn parses_wheel_and_sdist_names() {
        let w = parse_filename("Foo_Bar-1.0.post1-py3-none-any.whl", "foo-bar").unwrap();
        assert_eq!((w.kind, w.version.as_str()), (DistKind::Wheel, "1.0.post1"));
        let w = parse_filename(
            "numpy-2.1.0-1-cp311-cp311-manylinux_2_17_x86_64.whl",
            "numpy",
        )
        .unwrap();
        assert_eq!(w.version, "2.1.0");
        let s = parse_filename("my-old-pkg-0.3.tar.gz", "my_old_pkg").unwrap();
        assert_eq!((s.kind, s.version.as_str()), (DistKind::Sdist, "0.3"));
        assert_eq!(parse_filename("other-1.0-py3-none-any.whl", "foo"), None);
        assert_eq!(parse_filename("foo-1.0.exe", "foo"), None);
        assert_eq!(parse_filename("../foo-1.0.tar.gz", "foo"), None);
        assert_eq!(parse_filename("foo-1.0-py3.whl", "foo"), None);
    }
}
