//! `airlock bundle ...`: export, import, have, keygen.

use crate::bundle::export::{export, ExportOptions};
use crate::bundle::manifest::Have;
use crate::bundle::sign::{self, Checked};
use crate::config::Config;
use crate::progress::{bytes_bar, report};
use crate::spec::ContentSpec;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum BundleCommand {
    /// Pack this store's content into a bundle to carry across the air gap: everything
    /// (blobs, oci/, pypi/, hf/), or what --spec names; minus what --have lists.
    Export {
        /// The bundle file (NAME.tar; with --split, NAME.tar.000, .001, ...), or an
        /// existing directory to write bundle.tar into.
        #[arg(long)]
        out: PathBuf,
        /// A content spec (the format `airlock mirror` reads): only what it names.
        #[arg(long)]
        spec: Option<PathBuf>,
        /// What the receiver holds (`airlock bundle have > have.json` there): left out.
        #[arg(long)]
        have: Option<PathBuf>,
        /// Cut the bundle into volumes of at most this size, e.g. 4GiB or 700MB.
        #[arg(long, value_parser = crate::bundle::volumes::parse_size, value_name = "SIZE")]
        split: Option<u64>,
        /// Sign the manifest with this key (from `airlock bundle keygen`).
        #[arg(long, value_name = "KEYFILE")]
        sign_key: Option<PathBuf>,
    },
    /// Verify a bundle completely, then add its content to this store, merging tags,
    /// refs and project pages with what is here. Resumable and idempotent: re-run it.
    Import {
        /// The bundle file, all its volumes, or the directory holding them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Accept only bundles signed by this key (a PREFIX.pub file or its base64), in
        /// addition to `[bundle] public_keys` in the config file.
        #[arg(long, value_name = "KEY")]
        public_key: Vec<String>,
    },
    /// Print what this store holds, as JSON for `airlock bundle export --have`.
    Have,
    /// Write a new ed25519 key pair: PREFIX.key (secret, mode 0600) and PREFIX.pub.
    Keygen {
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
    },
}

pub async fn run(config: Config, command: BundleCommand) -> anyhow::Result<()> {
    match command {
        BundleCommand::Keygen { out } => {
            let (secret, public) = sign::keygen(&out)?;
            eprintln!(
                "wrote {} (keep it secret: export --sign-key) and {} (for import: --public-key or [bundle] public_keys)",
                secret.display(),
                public.display()
            );
            Ok(())
        }
        BundleCommand::Have => {
            let stores = super::open_stores(&config).await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let counts = crate::bundle::have::write(&stores, &mut out).await?;
            eprintln!(
                "{}: {} blobs, {} xorbs, {} documents",
                stores.store.describe(),
                counts.blobs,
                counts.xorbs,
                counts.docs
            );
            Ok(())
        }
        BundleCommand::Export {
            out,
            spec,
            have,
            split,
            sign_key,
        } => {
            // Everything that can be wrong with the arguments fails before the store is read.
            let sign_key = sign_key.map(|p| sign::load_signing_key(&p)).transpose()?;
            let have = have.map(|p| Have::load(&p)).transpose()?;
            let spec = spec
                .map(|p| ContentSpec::load(&p).map(|s| (s, p)))
                .transpose()?;
            let stores = super::open_stores(&config).await?;
            let selection = match &spec {
                Some((spec, path)) => {
                    let default_host = &config.oci.default_registry;
                    let spec_path = path.display().to_string();
                    let have = have.as_ref();
                    crate::bundle::select::from_spec(&stores, default_host, spec, &spec_path, have)
                        .await?
                }
                None => crate::bundle::select::everything(&stores).await?,
            };
            let bar = bytes_bar(0);
            for note in &selection.notes {
                report(&bar, format!("note: {note}"));
            }
            let options = ExportOptions {
                out,
                split,
                sign_key,
                have,
            };
            let done = export(&stores, selection, options, bar.clone()).await?;
            bar.finish_and_clear();
            eprintln!(
                "bundle: {} objects, {} bytes{}{}, in {} file(s):",
                done.objects,
                done.bytes,
                if done.held > 0 {
                    format!(" ({} left out: the receiver has them)", done.held)
                } else {
                    String::new()
                },
                if done.signed { ", signed" } else { "" },
                done.volumes.len()
            );
            for v in &done.volumes {
                eprintln!("  {}", v.display());
            }
            Ok(())
        }
        BundleCommand::Import { paths, public_key } => {
            let keys = config
                .bundle
                .public_keys
                .iter()
                .chain(public_key.iter())
                .map(|k| sign::load_public_key(k))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let stores = super::open_stores(&config).await?;
            let bar = bytes_bar(0);
            // Imported Xet files follow the uploads' policy: by default only their xorbs are
            // kept and plain resolve rebuilds the bytes from them.
            let options = crate::bundle::import::ImportOptions {
                materialize_xet: config.hf.xet_materialize,
            };
            let done =
                crate::bundle::import::import(&stores, &paths, &keys, options, bar.clone()).await;
            bar.finish_and_clear();
            let done = done?;
            let signature = match done.signature {
                Some(Checked::Verified(i)) => format!("signature verified (key {})", i + 1),
                Some(Checked::NotChecked { signed: true }) => {
                    "signed, but not checked: no public key configured".into()
                }
                _ => "unsigned, no public key configured".into(),
            };
            let xet = if done.xorbs_new + done.xorbs_present + done.xet_files_new > 0 {
                format!(
                    "xorbs {} new ({} bytes), {} already present; Xet files {} new; ",
                    done.xorbs_new, done.xorb_bytes_new, done.xorbs_present, done.xet_files_new
                )
            } else {
                String::new()
            };
            eprintln!(
                "imported into {}: blobs {} new ({} bytes), {} already present; {xet}documents {} created, {} merged, {} unchanged; {signature}",
                stores.store.describe(),
                done.blobs_new,
                done.bytes_new,
                done.blobs_present,
                done.docs_created,
                done.docs_merged,
                done.docs_unchanged,
            );
            Ok(())
        }
    }
}
