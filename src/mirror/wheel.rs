//! Choosing distribution files by their names: version, wheel tags (PEP 427/425) against
//! the spec's `platforms` (fnmatch patterns over platform tags, so `manylinux*_x86_64`
//! works; `any` is the pure-Python tag) and `python` versions (with `Requires-Python`).

use super::glob::fnmatch;
use crate::pypi::normalize;
use pep440_rs::{Version, VersionSpecifiers};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistName {
    pub wheel: bool,
    pub version: String,
    pub pythons: Vec<String>,
    pub abis: Vec<String>,
    pub platforms: Vec<String>,
}

const SDIST_SUFFIXES: [&str; 4] = [".tar.gz", ".zip", ".tar.bz2", ".tgz"];

/// Parses a wheel or sdist filename of `project`; `None` for anything else.
pub fn parse(filename: &str, project: &str) -> Option<DistName> {
    let project = normalize(project);
    if let Some(stem) = filename.strip_suffix(".whl") {
        let parts: Vec<&str> = stem.split('-').collect();
        if !(parts.len() == 5 || parts.len() == 6) || normalize(parts[0]) != project {
            return None;
        }
        let n = parts.len();
        let split = |s: &str| s.split('.').map(str::to_string).collect();
        return Some(DistName {
            wheel: true,
            version: parts[1].to_string(),
            pythons: split(parts[n - 3]),
            abis: split(parts[n - 2]),
            platforms: split(parts[n - 1]),
        });
    }
    let stem = SDIST_SUFFIXES
        .iter()
        .find_map(|s| filename.strip_suffix(s))?;
    // The name may itself hold `-`: find the split whose left side is the project.
    stem.match_indices('-').find_map(|(i, _)| {
        (normalize(&stem[..i]) == project).then(|| DistName {
            wheel: false,
            version: stem[i + 1..].to_string(),
            pythons: vec![],
            abis: vec![],
            platforms: vec![],
        })
    })
}

/// Whether a wheel's platform tags match one of the patterns (sdists always do).
pub fn platform_ok(dist: &DistName, patterns: &[String]) -> bool {
    !dist.wheel
        || patterns.is_empty()
        || dist
            .platforms
            .iter()
            .any(|tag| patterns.iter().any(|p| fnmatch(p, tag)))
}

/// `3.11` -> (3, 11)
fn major_minor(python: &str) -> Option<(u32, u32)> {
    let (a, b) = python.trim().split_once('.')?;
    Some((a.parse().ok()?, b.split('.').next()?.parse().ok()?))
}

/// Whether one python tag (`py3`, `py39`, `cp311`, `pp310`) runs on major.minor.
fn tag_runs_on(tag: &str, abi3: bool, (major, minor): (u32, u32)) -> bool {
    let digits_at = tag.find(|c: char| c.is_ascii_digit()).unwrap_or(tag.len());
    let (implementation, digits) = tag.split_at(digits_at);
    let Some(tag_major) = digits.get(..1).and_then(|d| d.parse::<u32>().ok()) else {
        return false;
    };
    if tag_major != major {
        return false;
    }
    let Ok(tag_minor) = digits[1..].parse::<u32>() else {
        return digits.len() == 1; // `py3`: any 3.x
    };
    // pip treats `pyXY` and the stable ABI (`cpXY-abi3`) as good for XY and later.
    if implementation == "py" || abi3 {
        tag_minor <= minor
    } else {
        tag_minor == minor
    }
}

/// Whether the file suits one of the Python versions (empty list: any).
pub fn python_ok(dist: &DistName, requires_python: Option<&str>, pythons: &[String]) -> bool {
    if pythons.is_empty() {
        return true;
    }
    let requires: Option<VersionSpecifiers> = requires_python.and_then(|r| r.parse().ok());
    pythons
        .iter()
        .filter_map(|p| major_minor(p))
        .any(|(major, minor)| {
            let by_requires = requires.as_ref().is_none_or(|spec| {
                // Any patch release of that minor version will do.
                [0, 99].iter().any(|patch| {
                    format!("{major}.{minor}.{patch}")
                        .parse::<Version>()
                        .is_ok_and(|v| spec.contains(&v))
                })
            });
            let abi3 = dist.abis.iter().any(|a| a == "abi3");
            let by_tags = !dist.wheel
                || dist
                    .pythons
                    .iter()
                    .any(|t| tag_runs_on(t, abi3, (major, minor)));
            by_requires && by_tags
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_names() {
        let w = parse(
            "numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "NumPy",
        )
        .unwrap();
        assert!(w.wheel);
        assert_eq!(w.version, "1.26.4");
        assert_eq!(
            w.platforms,
            s(&["manylinux_2_17_x86_64", "manylinux2014_x86_64"])
        );
        let sd = parse("zope.interface-6.0.tar.gz", "zope-interface").unwrap();
        assert_eq!(sd.version, "6.0");
        assert!(!sd.wheel);
        assert_eq!(parse("my-pkg-1.0.tar.gz", "my_pkg").unwrap().version, "1.0");
        assert!(parse("other-1.0.tar.gz", "demo").is_none());
        assert!(parse("demo-1.0.exe", "demo").is_none());
    }

    #[test]
    fn filters_platforms_and_pythons() {
        let w = parse("x-1.0-cp311-cp311-manylinux2014_x86_64.whl", "x").unwrap();
        assert!(platform_ok(&w, &s(&["manylinux*_x86_64"])));
        assert!(!platform_ok(&w, &s(&["any", "win_amd64"])));
        assert!(python_ok(&w, None, &s(&["3.11"])));
        assert!(!python_ok(&w, None, &s(&["3.12"])));
        let abi3 = parse("x-1.0-cp38-abi3-win_amd64.whl", "x").unwrap();
        assert!(python_ok(&abi3, None, &s(&["3.12"])));
        assert!(!python_ok(&abi3, None, &s(&["3.7"])));
        let pure = parse("x-1.0-py3-none-any.whl", "x").unwrap();
        assert!(platform_ok(&pure, &s(&["any"])));
        assert!(python_ok(&pure, Some(">=3.8"), &s(&["3.11"])));
        assert!(!python_ok(&pure, Some(">=3.12"), &s(&["3.11"])));
        assert!(python_ok(&pure, Some(">=3.8.1"), &s(&["3.8"])));
        let sdist = parse("x-1.0.tar.gz", "x").unwrap();
        assert!(platform_ok(&sdist, &s(&["win_amd64"])));
        assert!(!python_ok(&sdist, Some("<3"), &s(&["3.11"])));
    }
}
