//! `airlock gc`: what the store holds that nothing references, and the upload sessions
//! nobody finished (`crate::gc`).

use crate::gc::{self, GcSettings, Options};
use crate::store::Stores;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Report only: remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Content written or linked more recently than this is never reclaimable (a push or
    /// commit naming it may be under way). Default: `[gc] grace`, 1h.
    #[arg(long, value_parser = humantime::parse_duration)]
    grace: Option<Duration>,
    /// Upload sessions started longer ago than this are removed. Default:
    /// `[oci] purge_uploads_after`, 7d.
    #[arg(long, value_parser = humantime::parse_duration)]
    uploads_older_than: Option<Duration>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

pub async fn run(
    stores: Stores,
    settings: &GcSettings,
    purge_uploads_after: Duration,
    args: GcArgs,
) -> anyhow::Result<()> {
    let options = Options::from_settings(
        settings,
        args.dry_run,
        args.grace.unwrap_or(settings.grace),
        args.uploads_older_than.unwrap_or(purge_uploads_after),
    );
    eprintln!(
        "airlock gc{}: marking what every OCI repository, Python index and Hub repository references in {}...",
        if args.dry_run { " (dry run)" } else { "" },
        stores.store.describe()
    );
    let report = gc::run(&stores, &options).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}
