//! The pull-through fixture: Airlocks seeded by `airlock ... import` (an upstream whose
//! caches forget quickly) and downstreams pulling every protocol, or one, through it.

use super::airlock::Airlock;
use super::backend::{Backend, StoreArgs};
use super::wheels::{self, Dist};
use super::{sha256, ADMIN};
use std::path::{Path, PathBuf};

/// One Airlock with its store and config file.
pub struct Node {
    pub server: Airlock,
    pub store: StoreArgs,
    pub dir: PathBuf,
    pub config: PathBuf,
}

impl Node {
    /// Starts `airlock serve` on `store` with `config` as its config file.
    pub fn start(dir: &Path, store: StoreArgs, config: &str, listen: Option<&str>) -> Node {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("airlock.toml");
        std::fs::write(&path, config).unwrap();
        let mut args = vec!["--config", path.to_str().unwrap(), "--admin-token", ADMIN];
        if let Some(listen) = listen {
            args.extend(["--listen", listen]);
        }
        let server = store.serve(dir, &args);
        Node {
            server,
            store,
            dir: dir.to_path_buf(),
            config: path,
        }
    }

    pub fn restart(&mut self) {
        let listen = self.server.base.trim_start_matches("http://").to_string();
        let config = std::fs::read_to_string(&self.config).unwrap();
        drop(std::mem::replace(
            self,
            Node::start(
                &self.dir.clone(),
                self.store.clone(),
                &config,
                Some(&listen),
            ),
        ));
    }

    /// Runs `airlock <args>` (an import, say) on this node's store.
    pub fn import(&self, args: &[&str]) {
        let out = self.store.cli(&self.dir).args(args).output().unwrap();
        super::process::output_ok(out, &format!("{args:?}"));
    }

    /// Access-log lines of GETs for `path`.
    pub fn gets(&self, path: &str) -> usize {
        let needle = format!("path={path} ");
        self.server
            .log()
            .lines()
            .filter(|l| l.contains("method=GET") && l.contains(&needle))
            .count()
    }
}

/// An upstream whose own caches forget quickly, so imports show at once.
pub fn upstream(backend: Backend, dir: &Path, extra: &str) -> Node {
    let store = StoreArgs::new(backend, dir);
    Node::start(
        &dir.join("up"),
        store,
        &format!("{extra}\n[cache]\nmutable_ttl = \"100ms\"\n"),
        None,
    )
}

/// A downstream pulling every protocol through `up`, revalidating after 1s; `extra` are
/// more keys of its `[oci]` section.
pub fn downstream(backend: Backend, dir: &Path, up: &Node, extra: &str) -> Node {
    let store = StoreArgs::new(backend, &dir.join("down"));
    let base = &up.server.base;
    let config = format!(
        "[oci]\nupstream = \"{base}\"\nupstream_ttl = \"1s\"\n{extra}\n\
         [pypi]\nupstream = \"{base}/simple/\"\nupstream_ttl = \"1s\"\n\
         [hf]\nupstream = \"{base}\"\nupstream_ttl = \"1s\"\n"
    );
    Node::start(&dir.join("down"), store, &config, None)
}

/// A tiny image `docker.io/library/<name>:<tag>` imported into `node`; its manifest's
/// digest and bytes.
pub fn seed_tiny(node: &Node, name: &str, tag: &str, layer: &[u8]) -> (String, Vec<u8>) {
    let layout = node
        .dir
        .join(format!("layout-{name}-{tag}-{}", sha256(layer)));
    let seeded =
        super::images::tiny_layout(&layout, &format!("docker.io/library/{name}:{tag}"), layer);
    node.import(&["oci", "import", layout.to_str().unwrap()]);
    seeded
}

/// A wheel of `name` `version` imported into `node`.
pub fn seed_wheel(node: &Node, name: &str, version: &str) -> Dist {
    let dir = node.dir.join(format!("wheels-{name}-{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    let dist = wheels::wheel(name, version, &[], Some(">=3.8"));
    dist.write_to(&dir);
    node.import(&["pypi", "import", dir.to_str().unwrap()]);
    dist
}

/// A downstream with only `section` pulling through `upstream` (plus `extra` keys there).
pub fn downstream_of(
    backend: Backend,
    dir: &Path,
    section: &str,
    upstream: &str,
    extra: &str,
) -> Node {
    let store = StoreArgs::new(backend, &dir.join("down"));
    let config =
        format!("[{section}]\nupstream = \"{upstream}\"\nupstream_ttl = \"1s\"\n{extra}\n");
    Node::start(&dir.join("down"), store, &config, None)
}

/// A model repository `repo` with `files` (`path`, content; paths may name folders)
/// imported into `node`.
pub fn seed_model(node: &Node, repo: &str, files: &[(&str, &[u8])]) {
    let folder = node.dir.join(format!("model-{}", repo.replace('/', "-")));
    for (path, content) in files {
        let path = folder.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    node.import(&["hf", "import", repo, folder.to_str().unwrap()]);
}
