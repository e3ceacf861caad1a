//! Core metadata (the `METADATA` of a wheel, the `PKG-INFO` of an sdist): read from the
//! file itself, never trusted from an upload form, and served as the PEP 658 `.metadata`.

use super::names::DistKind;
use std::io::Read;
use std::path::Path;

/// Core metadata files are small; anything larger is not one.
const MAX_METADATA_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreMetadata {
    pub metadata_version: String,
    pub name: String,
    pub version: String,
    pub requires_python: Option<String>,
    pub summary: Option<String>,
    pub requires_dist: Vec<String>,
}

impl CoreMetadata {
    /// Parses the RFC 822-style header block (continuation lines start with white space).
    pub fn parse(text: &str) -> Result<CoreMetadata, String> {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            if line.is_empty() {
                break; // the body (long description) follows
            }
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = fields.last_mut() {
                    value.push('\n');
                    value.push_str(line.trim());
                }
                continue;
            }
            if let Some((key, value)) = line.split_once(':') {
                fields.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let get = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty() && v != "UNKNOWN")
        };
        let name = get("name").ok_or("core metadata has no Name field")?;
        let version = get("version").ok_or("core metadata has no Version field")?;
        Ok(CoreMetadata {
            metadata_version: get("metadata-version").unwrap_or_else(|| "1.0".into()),
            name,
            version,
            requires_python: get("requires-python"),
            summary: get("summary"),
            requires_dist: fields
                .iter()
                .filter(|(k, _)| k == "requires-dist")
                .map(|(_, v)| v.clone())
                .collect(),
        })
    }
}

/// Reads the raw core metadata out of a distribution file on local disk.
pub fn extract(path: &Path, kind: DistKind, filename: &str) -> Result<Vec<u8>, String> {
    if kind == DistKind::Wheel {
        return from_zip(path, |name| {
            let mut parts = name.split('/');
            matches!(
                (parts.next(), parts.next(), parts.next()),
                (Some(dir), Some("METADATA"), None) if dir.ends_with(".dist-info")
            )
        });
    }
    let is_pkg_info = |name: &str| {
        let mut parts = name.trim_start_matches("./").split('/');
        matches!(
            (parts.next(), parts.next(), parts.next()),
            (Some(_), Some("PKG-INFO"), None)
        )
    };
    if filename.ends_with(".zip") {
        from_zip(path, is_pkg_info)
    } else if filename.ends_with(".tar.gz") || filename.ends_with(".tgz") {
        from_tar_gz(path, is_pkg_info)
    } else {
        Err("only .tar.gz and .zip sdists can be read".into())
    }
}

fn from_zip(path: &Path, wanted: impl Fn(&str) -> bool) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| format!("not a valid zip archive: {e}"))?;
    let name = archive
        .file_names()
        .filter(|n| wanted(n))
        .min() // the shortest path is the project's own, not a vendored one
        .map(str::to_string)
        .ok_or("no core metadata file (*.dist-info/METADATA or PKG-INFO) in the archive")?;
    let entry = archive.by_name(&name).map_err(|e| e.to_string())?;
    read_limited(entry)
}

fn from_tar_gz(path: &Path, wanted: impl Fn(&str) -> bool) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let entries = archive
        .entries()
        .map_err(|e| format!("not a valid tar.gz: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("not a valid tar.gz: {e}"))?;
        let name = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .to_string();
        if wanted(&name) {
            return read_limited(entry);
        }
    }
    Err("no PKG-INFO at the top of the sdist".into())
}

fn read_limited(reader: impl Read) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    reader
        .take(MAX_METADATA_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 > MAX_METADATA_BYTES {
        return Err("core metadata file is implausibly large".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers_and_repeated_fields() {
        let text = "Metadata-Version: 2.1\nName: Foo-Bar\nVersion: 1.0\nSummary: A thing\n\
                    Requires-Python: >=3.9\nRequires-Dist: requests (>=2)\nRequires-Dist: idna; extra == \"x\"\n\
                    Description: long\n        continued\n\nBody text: not a header\n";
        let m = CoreMetadata::parse(text).unwrap();
        assert_eq!(m.name, "Foo-Bar");
        assert_eq!(m.version, "1.0");
        assert_eq!(m.requires_python.as_deref(), Some(">=3.9"));
        assert_eq!(m.requires_dist.len(), 2);
        assert!(CoreMetadata::parse("Name: x\n").is_err());
    }

    fn header_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::strategy::Strategy as _;
        let piece = proptest::sample::select(vec![
            "Name",
            "Version",
            "Requires-Dist",
            "Metadata-Version",
            ":",
            " ",
            "\t",
            "\n",
            "\r\n",
            "x",
            "1.0",
            "UNKNOWN",
            "é",
            "requests (>=2)",
        ]);
        proptest::collection::vec(piece, 0..128).prop_map(|v| v.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Any METADATA text: parsed or refused, never a panic; nothing parsed is larger
        /// than the text it came from.
        #[test]
        fn any_metadata(text in header_text(), raw in proptest::collection::vec(proptest::prelude::any::<char>(), 0..256)) {
            if let Ok(m) = CoreMetadata::parse(&text) {
                let total = m.name.len() + m.version.len() + m.requires_dist.iter().map(String::len).sum::<usize>();
                proptest::prop_assert!(total <= text.len());
            }
            let _ = CoreMetadata::parse(&raw.into_iter().collect::<String>());
        }
    }

    #[test]
    fn long_continuations_stay_linear() {
        let text = format!(
            "Name: x\nVersion: 1\nSummary: s\n{}",
            " more\n".repeat(500_000)
        );
        let started = std::time::Instant::now();
        assert!(CoreMetadata::parse(&text).is_ok());
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
