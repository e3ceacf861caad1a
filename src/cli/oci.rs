//! `airlock oci ...`: import images without a network, and print node configuration.

use crate::config::Config;
use crate::oci::import::{self, Importer};
use crate::oci::names;
use crate::oci::registry::Registry;
use crate::progress::{bytes_bar, report};
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum OciCommand {
    /// Import images from OCI image layouts (directories, or tar archives of one such as
    /// `skopeo copy ... oci-archive:`) and `docker save` tarballs. Layout content keeps
    /// its digests byte for byte; importing again stores nothing twice.
    Import {
        /// Layout directories, layout tar archives or docker-archive tarballs.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Repository for layouts that name their images by tag only (umoci, `skopeo
        /// copy ... oci:DIR:TAG`), e.g. docker.io/library/busybox. Names with a full
        /// reference (`io.containerd.image.name`, docker RepoTags) go where they say.
        #[arg(long)]
        repo: Option<String>,
    },
    /// Remove upload sessions that clients started and abandoned (run it from cron; safe
    /// while serving: sessions younger than --older-than are left alone).
    PurgeUploads {
        /// Age after which a session counts as abandoned, e.g. 24h.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        older_than: std::time::Duration,
    },
    /// Print containerd hosts.toml files and a podman/CRI-O registries.conf snippet that
    /// send every pull for the given upstreams to Airlock (and nowhere else).
    HostsToml {
        /// Upstream registries to mirror, e.g. docker.io, quay.io, registry.k8s.io.
        #[arg(long = "upstream", required = true)]
        upstreams: Vec<String>,
        /// Airlock's URL as the nodes reach it, e.g. http://airlock.internal:8080.
        #[arg(long)]
        airlock: String,
        /// Also let containerd push through the mirror.
        #[arg(long)]
        push: bool,
        /// Write the hosts.toml files under this directory (`DIR/<upstream>/hosts.toml`,
        /// e.g. /etc/containerd/certs.d) instead of only printing them.
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
    },
}

pub async fn run(config: Config, command: OciCommand) -> anyhow::Result<()> {
    match command {
        OciCommand::HostsToml {
            upstreams,
            airlock,
            push,
            write,
        } => {
            let text = hosts_toml(&upstreams, &airlock, push)?;
            if let Some(dir) = write {
                for (upstream, file) in hosts_files(&text) {
                    let path = dir.join(upstream).join("hosts.toml");
                    std::fs::create_dir_all(path.parent().expect("has parent"))?;
                    std::fs::write(&path, file)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    eprintln!("wrote {}", path.display());
                }
            }
            print!("{text}");
            Ok(())
        }
        OciCommand::PurgeUploads { older_than } => {
            let stores = super::open_stores(&config).await?;
            let purged =
                crate::oci::purge_uploads(&stores.store, &stores.docs, older_than, false).await?;
            eprintln!(
                "removed {} abandoned upload session(s) ({} object(s))",
                purged.sessions, purged.objects
            );
            Ok(())
        }
        OciCommand::Import { paths, repo } => {
            let stores = super::open_stores(&config).await?;
            let registry = Registry::new(stores.docs, stores.blobs);
            import_all(
                registry,
                &config.oci.default_registry,
                &paths,
                repo.as_deref(),
            )
            .await
        }
    }
}

/// The `(upstream, hosts.toml)` pairs of the generated text.
fn hosts_files(text: &str) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for part in text.split("\n# /etc/containerd/certs.d/").skip(1) {
        let (header, body) = part.split_once('\n').unwrap_or((part, ""));
        let upstream = header.trim_end_matches("/hosts.toml").to_string();
        let body = body.split("\n# podman").next().unwrap_or(body);
        files.push((upstream, body.trim_end().to_string() + "\n"));
    }
    files
}

/// The node configuration text for `hosts-toml`.
pub fn hosts_toml(upstreams: &[String], airlock: &str, push: bool) -> anyhow::Result<String> {
    let url = url::Url::parse(airlock).map_err(|e| {
        anyhow::anyhow!("--airlock `{airlock}`: {e}; give e.g. http://airlock:8080")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        anyhow::bail!("--airlock `{airlock}`: give an http(s) URL such as http://airlock:8080");
    }
    let base = url.as_str().trim_end_matches('/').to_string();
    let host_port = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let insecure = url.scheme() == "http";
    let capabilities = if push {
        r#"["pull", "resolve", "push"]"#
    } else {
        r#"["pull", "resolve"]"#
    };
    let mut out = String::new();
    out.push_str("# containerd: one file per upstream under the registry config_path\n");
    out.push_str(
        "# (/etc/containerd/certs.d by default; `ctr --hosts-dir`). `server` is Airlock\n",
    );
    out.push_str("# too, so a miss is answered by Airlock and never goes to the internet.\n");
    for upstream in upstreams {
        let upstream = names::normalize_host(upstream);
        if names::canonical("x", Some(&upstream), "docker.io").is_err() {
            anyhow::bail!("--upstream `{upstream}` is not a registry host (e.g. quay.io)");
        }
        out.push_str(&format!(
            "\n# /etc/containerd/certs.d/{upstream}/hosts.toml\nserver = \"{base}\"\n\n[host.\"{base}\"]\n  capabilities = {capabilities}\n"
        ));
        if url.scheme() == "https" {
            out.push_str("  # ca = \"/etc/containerd/certs.d/airlock-ca.crt\"\n");
        }
    }
    out.push_str("\n# podman, CRI-O, skopeo: /etc/containers/registries.conf.d/airlock.conf\n");
    for upstream in upstreams {
        let upstream = names::normalize_host(upstream);
        out.push_str(&format!(
            "[[registry]]\nprefix = \"{upstream}\"\nlocation = \"{host_port}/{upstream}\"\n"
        ));
        if insecure {
            out.push_str("insecure = true\n");
        }
        out.push('\n');
    }
    Ok(out)
}

async fn import_all(
    registry: Registry,
    default_host: &str,
    paths: &[PathBuf],
    repo: Option<&str>,
) -> anyhow::Result<()> {
    let mut sources = Vec::new();
    for path in paths {
        let source = import::open(path)?;
        let found = import::list(&source, repo, default_host)
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))?;
        sources.push((path.clone(), source, found));
    }
    let total: u64 = sources.iter().map(|(_, s, _)| import::total_bytes(s)).sum();
    let bar = bytes_bar(total);
    let mut importer = Importer::new(registry);
    let progress = bar.clone();
    importer.on_bytes = Box::new(move |n| progress.inc(n));
    let mut failed = Vec::new();
    for (path, source, found) in &sources {
        for image in found {
            let name = format!(
                "{}{}",
                image.repo,
                image
                    .tag
                    .as_deref()
                    .map(|t| format!(":{t}"))
                    .unwrap_or_default()
            );
            bar.set_message(name.clone());
            match importer.import(source, image).await {
                Ok(true) => report(&bar, format!("added    {name}")),
                Ok(false) => report(&bar, format!("present  {name}")),

                Err(e) => {
                    report(&bar, format!("FAILED   {name} ({}): {e:#}", path.display()));
                    failed.push(name.clone());
                }
            }
            if matches!(image.kind, import::FoundKind::Legacy { .. }) {
                report(
                    &bar,
                    format!("note     {name}: docker save (legacy) holds no registry manifest; a new one was made, so its digest differs from the original registry's"),
                );
            }
        }
    }
    bar.finish_and_clear();
    let o = &importer.outcome;
    eprintln!(
        "{} image(s) added, {} already present; {} blob(s) stored ({} bytes), {} already present",
        o.images_new, o.images_present, o.blobs_new, o.bytes_new, o.blobs_present
    );
    if !failed.is_empty() {
        anyhow::bail!(
            "{} image(s) were not imported: {}; fix the source and run the import again (what was stored is complete and reused)",
            failed.len(),
            failed.join(", ")
        );
    }
    Ok(())
}
