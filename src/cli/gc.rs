//! `airlock gc`: what the store holds that nothing references, and the upload sessions
//! nobody finished (`crate::gc`).

use crate::gc::{self, Options};
use crate::store::Stores;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Report only: remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Content written or linked more recently than this is never reclaimable (a push or
    /// commit naming it may be under way).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    grace: Duration,
    /// Upload sessions with nothing written for longer than this are removed.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    uploads_older_than: Duration,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

pub async fn run(stores: Stores, args: GcArgs) -> anyhow::Result<()> {
    let options = Options {
        dry_run: args.dry_run,
        grace: args.grace,
        uploads_older_than: args.uploads_older_than,
    };
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
