//! Repository names: validation and the one canonical form everything is stored under.
//!
//! A repository is stored as `<upstream host>/<path>`, whichever way a client names it:
//! 1. a host prefix in the path (`/v2/quay.io/x/y/...`, as podman/CRI-O mirrors,
//!    containerd's `override_path` and direct pushes send it): the first segment is a
//!    host when it contains `.` or `:` or is `localhost`, and more segments follow;
//! 2. else containerd's `?ns=<host>` (a hosts.toml mirror);
//! 3. else the configured default upstream (`docker.io`).
//!
//! `docker.io`, `index.docker.io` and `registry-1.docker.io` are one upstream, and a
//! one-segment Docker Hub name gets `library/`. So `docker pull busybox`,
//! `ctr pull docker.io/library/busybox` through a mirror, and a push to
//! `airlock:8080/docker.io/library/busybox` all meet at `docker.io/library/busybox`.

/// Clients cap `host/name` at about 255 characters.
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub fn is_valid_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or any number of "-", then alphanumerics.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !alnum(b[i]) {
            return false;
        }
    }
    true
}

/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`
pub fn is_valid_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A registry host as it may prefix a name: `quay.io`, `localhost`, `host:5000`.
fn is_valid_host(s: &str) -> bool {
    let (host, port) = match s.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit()));
    host_ok && port_ok
}

fn looks_like_host(segment: &str) -> bool {
    segment.contains('.') || segment.contains(':') || segment == "localhost"
}

/// Folds Docker Hub's aliases into one upstream name.
pub fn normalize_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => host,
    }
}

/// Why a name was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidName(pub String);

/// The canonical `<host>/<path>` for a name as a client sent it.
pub fn canonical(raw: &str, ns: Option<&str>, default_host: &str) -> Result<String, InvalidName> {
    let refuse = |why: &str| Err(InvalidName(format!("repository name `{raw}`: {why}")));
    if raw.is_empty() {
        return refuse("empty");
    }
    let segments: Vec<&str> = raw.split('/').collect();
    let (host, path) = if segments.len() > 1 && looks_like_host(segments[0]) {
        if !is_valid_host(segments[0]) {
            return refuse("the first component looks like a registry host but is not one");
        }
        (normalize_host(segments[0]), &segments[1..])
    } else {
        let host = ns.filter(|n| !n.is_empty()).unwrap_or(default_host);
        if !is_valid_host(&host.to_ascii_lowercase()) {
            return refuse("the `ns` parameter is not a registry host");
        }
        (normalize_host(host), &segments[..])
    };
    if let Some(bad) = path.iter().find(|s| !is_valid_component(s)) {
        return refuse(&format!(
            "component `{bad}` must be lowercase letters and digits separated by '.', '_', '__' or '-'"
        ));
    }
    let path = if host == "docker.io" && path.len() == 1 {
        format!("library/{}", path[0])
    } else {
        path.join("/")
    };
    let name = format!("{host}/{path}");
    if name.len() > MAX_NAME_LEN {
        return refuse(&format!("longer than {MAX_NAME_LEN} characters"));
    }
    Ok(name)
}

/// A reference as the token service receives it in a scope: no `ns`, so a name without
/// a host prefix belongs to the default upstream.
pub fn canonical_for_scope(raw: &str, default_host: &str) -> Option<String> {
    canonical(raw, None, default_host).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_follow_the_spec_grammar() {
        for ok in [
            "a",
            "busybox",
            "a.b",
            "a_b",
            "a__b",
            "a---b",
            "x9",
            "index.json",
        ] {
            assert!(is_valid_component(ok), "{ok}");
        }
        for bad in [
            "", "A", "a..b", "a___b", "-a", "a-", ".", "..", "a/b", "a:b", "_a",
        ] {
            assert!(!is_valid_component(bad), "{bad}");
        }
    }

    #[test]
    fn tags_follow_the_spec_grammar() {
        assert!(is_valid_tag("1.36"));
        assert!(is_valid_tag("_x-Y.z"));
        assert!(!is_valid_tag(".hidden"));
        assert!(!is_valid_tag("-x"));
        assert!(!is_valid_tag("a/b"));
        assert!(!is_valid_tag(&"a".repeat(129)));
    }

    #[test]
    fn names_meet_in_one_canonical_form() {
        let c = |raw, ns| canonical(raw, ns, "docker.io").unwrap();
        assert_eq!(c("busybox", None), "docker.io/library/busybox");
        assert_eq!(
            c("library/busybox", Some("docker.io")),
            "docker.io/library/busybox"
        );
        assert_eq!(
            c("docker.io/library/busybox", None),
            "docker.io/library/busybox"
        );
        assert_eq!(c("docker.io/busybox", None), "docker.io/library/busybox");
        assert_eq!(c("registry-1.docker.io/x/y", None), "docker.io/x/y");
        assert_eq!(c("x/y", Some("quay.io")), "quay.io/x/y");
        assert_eq!(c("quay.io/x/y", Some("quay.io")), "quay.io/x/y");
        assert_eq!(c("pause", Some("registry.k8s.io")), "registry.k8s.io/pause");
        assert_eq!(c("localhost:5000/app", None), "localhost:5000/app");
        assert_eq!(c("localhost/app", None), "localhost/app");
        assert!(canonical("../etc", None, "docker.io").is_err());
        assert!(canonical("a/../b", None, "docker.io").is_err());
        assert!(canonical("Upper/x", None, "docker.io").is_err());
        assert!(canonical("x", Some("bad host!"), "docker.io").is_err());
        assert!(canonical(&"a/".repeat(200), None, "docker.io").is_err());
    }
}
