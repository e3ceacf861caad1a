//! The module graph as docs/architecture.md draws it, checked from the source: every
//! `crate::<module>` reference in `src/` (comments left out) is an arrow between
//! top-level modules. Fails on an import circle, on a protocol reaching into another,
//! on the store reaching up, and on a protocol's domain code using the HTTP framework,
//! the server or the configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const PROTOCOLS: [&str; 3] = ["oci", "pypi", "hf"];

/// Cross-cutting features over the protocols: they may use a protocol's domain objects,
/// never its HTTP layer, and no protocol may use them. `s3api` is one of them, not a
/// fourth protocol: the S3 API is a view of the Hub's repositories.
const CROSS_CUTTING: [&str; 5] = ["catalog", "bundle", "mirror", "s3api", "modelimage"];

/// The S3 view's parsers of untrusted input, written over plain `http` types so they
/// can be checked (and fuzzed) without a server.
const S3API_PARSERS: [&str; 4] = [
    "s3api/sigv4.rs",
    "s3api/query.rs",
    "s3api/endpoint.rs",
    "s3api/xml.rs",
];

/// Each protocol's HTTP layer: request parsing, handlers and the error body. Every other
/// file of a protocol is its domain (new files too, until listed here).
const HTTP_LAYER: [&str; 21] = [
    "oci/mod.rs",
    "oci/endpoint.rs",
    "oci/error.rs",
    "oci/blobs.rs",
    "oci/discovery.rs",
    "oci/manifests.rs",
    "oci/upload.rs",
    "oci/token.rs",
    "pypi/mod.rs",
    "pypi/endpoint.rs",
    "pypi/error.rs",
    "pypi/upload.rs",
    "pypi/root.rs",
    "hf/mod.rs",
    "hf/endpoint.rs",
    "hf/api.rs",
    "hf/tree.rs",
    "hf/upload.rs",
    "hf/cas.rs",
    "hf/cas_endpoint.rs",
    "hf/cas_download.rs",
];

/// Files of a protocol that the HTTP framework may appear in besides the HTTP layer:
/// the protocol's one error type renders its own body.
const ERROR_TYPES: [&str; 3] = ["oci/error.rs", "pypi/error.rs", "hf/error.rs"];

struct Source {
    /// Relative to `src/`, with `/`.
    path: String,
    /// The code without comments.
    code: String,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path: PathBuf = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text
                    .lines()
                    .map(|l| l.split("//").next().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("\n");
                let rel = path.strip_prefix(&root).unwrap();
                let rel = rel.to_string_lossy().replace('\\', "/");
                out.push(Source { path: rel, code });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// `oci/registry.rs` and `oci.rs` are in `oci`; `lib.rs` and `main.rs` in none.
fn module_of(path: &str) -> Option<&str> {
    let first = path.split('/').next()?;
    let module = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(module, "lib" | "main")).then_some(module)
}

/// The top-level modules a piece of code names as `crate::<module>`.
fn references(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
        rest = after;
    }
    out
}

fn graph(sources: &[Source]) -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in sources {
        let Some(from) = module_of(&s.path) else {
            continue;
        };
        let edges = g.entry(from.to_string()).or_default();
        for to in references(&s.code) {
            if to != from {
                edges.insert(to);
            }
        }
    }
    g
}

/// The strongly connected components with more than one module (Tarjan).
fn circles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.g.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.g.contains_key(w) {
                    continue;
                }
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in g.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn the_module_graph_has_no_circle() {
    let g = graph(&sources());
    let found = circles(&g);
    assert!(
        found.is_empty(),
        "import circles between top-level modules (each line is one circle; see \
         docs/architecture.md for the allowed arrows): {found:#?}"
    );
}

#[test]
fn no_protocol_imports_another() {
    let g = graph(&sources());
    for p in PROTOCOLS {
        for q in PROTOCOLS {
            assert!(
                p == q || !g.get(p).is_some_and(|e| e.contains(q)),
                "`{p}` imports `{q}`: protocols share code only through the layers below them"
            );
        }
    }
}

#[test]
fn the_store_and_the_leaves_import_nothing_above_them() {
    let g = graph(&sources());
    let allowed: [(&str, &[&str]); 5] = [
        ("store", &["digest"]),
        ("xet", &["digest"]),
        ("digest", &[]),
        ("auth", &[]),
        ("site", &[]),
    ];
    for (module, may) in allowed {
        let extra: Vec<_> = g
            .get(module)
            .into_iter()
            .flatten()
            .filter(|m| !may.contains(&m.as_str()))
            .collect();
        assert!(extra.is_empty(), "`{module}` imports {extra:?}");
    }
}

#[test]
fn only_the_top_reads_the_configuration_or_the_server() {
    for s in sources() {
        let refs = references(&s.code);
        let top = matches!(module_of(&s.path), Some("cli" | "server" | "config") | None);
        for forbidden in ["config", "server"] {
            assert!(
                top || !refs.contains(forbidden),
                "{} uses crate::{forbidden}: only the CLI and the server read it; pass what \
                 the code needs (its settings, its state) down instead",
                s.path
            );
        }
    }
}

#[test]
fn protocol_domains_know_nothing_of_http_handling() {
    let mut checked = 0;
    for s in sources() {
        let Some(module) = module_of(&s.path) else {
            continue;
        };
        if !PROTOCOLS.contains(&module)
            || HTTP_LAYER.contains(&s.path.as_str())
            || ERROR_TYPES.contains(&s.path.as_str())
        {
            continue;
        }
        checked += 1;
        for word in ["axum::", "axum;", "crate::server", "crate::config"] {
            assert!(
                !s.code.contains(word),
                "{} is domain code but uses `{word}`: move the HTTP part into the \
                 protocol's handlers (and list it in HTTP_LAYER if it is one)",
                s.path
            );
        }
    }
    assert!(checked >= 10, "only {checked} domain files found");
}

#[test]
fn cross_cutting_features_use_protocol_domains_not_their_handlers() {
    let g = graph(&sources());
    for p in PROTOCOLS {
        for c in CROSS_CUTTING {
            assert!(
                !g.get(p).is_some_and(|e| e.contains(c)),
                "`{p}` imports `{c}`: a protocol never depends on a feature built over it"
            );
        }
    }
    let handlers: Vec<String> = HTTP_LAYER
        .iter()
        .filter(|f| !f.ends_with("/mod.rs"))
        .map(|f| format!("crate::{}", f.trim_end_matches(".rs").replace('/', "::")))
        .collect();
    for s in sources() {
        if !module_of(&s.path).is_some_and(|m| CROSS_CUTTING.contains(&m)) {
            continue;
        }
        for h in &handlers {
            let named = s.code.match_indices(h.as_str()).any(|(i, _)| {
                !s.code[i + h.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            });
            assert!(
                !named,
                "{} uses `{h}`, a protocol's HTTP layer: use its domain objects instead",
                s.path
            );
        }
    }
}

#[test]
fn the_s3_parsers_know_nothing_of_the_framework() {
    let sources = sources();
    for file in S3API_PARSERS {
        let s = sources
            .iter()
            .find(|s| s.path == file)
            .unwrap_or_else(|| panic!("{file} is missing: update S3API_PARSERS"));
        for word in ["axum", "crate::server", "crate::config"] {
            assert!(
                !s.code.contains(word),
                "{file} uses `{word}`: the S3 parsers take `http` types only"
            );
        }
    }
}

#[test]
fn the_checker_finds_a_circle() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default().insert("a".into());
    g.entry("d".into()).or_default().insert("a".into());
    assert_eq!(circles(&g), vec![vec!["a", "b", "c"]]);
    assert_eq!(
        references("use crate::store::{A, B};\nlet x = crate::oci::f();"),
        BTreeSet::from(["oci".to_string(), "store".to_string()])
    );
}
