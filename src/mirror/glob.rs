//! `allow`/`ignore` patterns with the semantics of `huggingface_hub.snapshot_download`'s
//! `allow_patterns`/`ignore_patterns`: Python's `fnmatch` on the whole repo path (so `*`
//! also crosses `/`), and a pattern ending in `/` means everything under that folder.

/// Python `fnmatch.fnmatchcase`: `*`, `?`, `[seq]`, `[!seq]`.
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = name.chars().collect();
    // Iterative matching with one backtrack point for the last `*` (linear-ish, no recursion).
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
            continue;
        }
        if pi < p.len() {
            if let Some((matched, next)) = match_one(&p, pi, t[ti]) {
                if matched {
                    pi = next;
                    ti += 1;
                    continue;
                }
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether the pattern item at `pi` matches `c`, and where the next item starts.
fn match_one(p: &[char], pi: usize, c: char) -> Option<(bool, usize)> {
    match p[pi] {
        '?' => Some((true, pi + 1)),
        '[' => {
            let mut i = pi + 1;
            let negate = p.get(i) == Some(&'!');
            if negate {
                i += 1;
            }
            let start = i;
            let mut found = false;
            // `]` right after `[` or `[!` is a literal member.
            while i < p.len() && (p[i] != ']' || i == start) {
                if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                    found |= p[i] <= c && c <= p[i + 2];
                    i += 3;
                } else {
                    found |= p[i] == c;
                    i += 1;
                }
            }
            if i >= p.len() {
                // No closing bracket: `[` is literal, as in Python.
                return Some((c == '[', pi + 1));
            }
            Some((found != negate, i + 1))
        }
        other => Some((other == c, pi + 1)),
    }
}

fn expand(pattern: &str) -> String {
    if pattern.ends_with('/') {
        format!("{pattern}*")
    } else {
        pattern.to_string()
    }
}

/// `snapshot_download`'s filter: kept when some allow pattern matches (or none are
/// given) and no ignore pattern does.
pub fn keep(path: &str, allow: &[String], ignore: &[String]) -> bool {
    (allow.is_empty() || allow.iter().any(|p| fnmatch(&expand(p), path)))
        && !ignore.iter().any(|p| fnmatch(&expand(p), path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_like_python() {
        assert!(fnmatch("*.json", "config.json"));
        assert!(
            fnmatch("*.json", "sub/dir/config.json"),
            "* crosses / in fnmatch"
        );
        assert!(!fnmatch("*.json", "config.json.bak"));
        assert!(fnmatch(
            "model-?????-of-*.safetensors",
            "model-00001-of-00002.safetensors"
        ));
        assert!(fnmatch("[a-c]*.bin", "b.bin"));
        assert!(!fnmatch("[!a-c]*.bin", "b.bin"));
        assert!(fnmatch("[]]x", "]x"));
        assert!(fnmatch("[x", "[x"));
        assert!(fnmatch("*", ""));
        assert!(!fnmatch("?", ""));
        assert!(fnmatch("a*b*c", "aXXbYYc"));
        assert!(!fnmatch("a*b*c", "aXXbYY"));
        assert!(!fnmatch("*.JSON", "config.json"), "case-sensitive");
    }

    #[test]
    fn allow_and_ignore_like_snapshot_download() {
        let s = |v: &[&str]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        assert!(keep("anything", &[], &[]));
        assert!(keep("onnx/model.onnx", &s(&["onnx/"]), &[]));
        assert!(!keep("model.onnx", &s(&["onnx/"]), &[]));
        assert!(!keep(
            "pytorch_model.bin",
            &s(&["*.json", "*.bin"]),
            &s(&["*.bin"])
        ));
        assert!(keep(
            "config.json",
            &s(&["*.json", "*.bin"]),
            &s(&["*.bin"])
        ));
    }

    #[test]
    fn many_stars_stay_fast() {
        // A recursive matcher takes exponential time in the stars here.
        let pattern = format!("{}b", "*a".repeat(300));
        let started = std::time::Instant::now();
        assert!(!fnmatch(&pattern, &"a".repeat(2000)));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    /// A plain recursive fnmatch over `*`, `?` and literals: exponential, but the
    /// definition, for small inputs.
    fn reference(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => (0..=t.len()).any(|i| reference(&p[1..], &t[i..])),
            (Some('?'), Some(_)) => reference(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => reference(&p[1..], &t[1..]),
            _ => false,
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn agrees_with_the_definition(p in proptest::collection::vec(proptest::sample::select(vec!['a', 'b', '/', '*', '?']), 0..10),
                                      t in proptest::collection::vec(proptest::sample::select(vec!['a', 'b', '/']), 0..12)) {
            let (ps, ts): (String, String) = (p.iter().collect(), t.iter().collect());
            proptest::prop_assert_eq!(fnmatch(&ps, &ts), reference(&p, &t), "{} vs {}", ps, ts);
        }

        #[test]
        fn never_panics(p in proptest::collection::vec(proptest::char::any(), 0..64), t in proptest::collection::vec(proptest::char::any(), 0..64)) {
            let (ps, ts): (String, String) = (p.iter().collect(), t.iter().collect());
            let _ = fnmatch(&ps, &ts);
        }
    }
}
