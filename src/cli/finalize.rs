//! The `finalize` subcommand: completes datasets whose tiles shards committed.

use anyhow::{bail, Result};
use clap::Args;
use rasterstage::config::{self, Config};
use rasterstage::stage::finalize::{finalize, Completion};
use rasterstage::store::Store;

/// `finalize` arguments.
#[derive(Args)]
pub struct FinalizeArgs {
    /// Config file: its output.uri is the staging root, its enabled datasets the datasets.
    #[arg(long, short = 'c')]
    config: Option<String>,
    /// Staging root [default: the config's output.uri].
    #[arg(long)]
    from: Option<String>,
    /// Only these datasets (comma-separated) [default: the config's, else every staged dataset].
    #[arg(long, value_delimiter = ',')]
    dataset: Vec<String>,
}

/// Runs `finalize`: completes every dataset whose tiles are all committed; fails naming the
/// datasets that still miss tiles.
///
/// # Errors
/// Datasets with uncommitted tiles, or store failures.
pub fn run(a: FinalizeArgs) -> Result<()> {
    let cfg = Config::load_opt(a.config.as_deref())?;
    let st = config::staging_target(cfg.as_ref(), a.from.as_deref(), &a.dataset, "finalize")?;
    let root = Store::open_existing(&st.root, &st.storage)?;
    let names = rasterstage::load::dataset_names(&root, &st.datasets)?;
    let mut missing = Vec::new();
    for n in names {
        let ds = root.child(n.as_str());
        match finalize(&ds)? {
            None => {
                println!("{n}: no dataset.json (not started)");
                missing.push(n.to_string());
            }
            Some(Completion::Complete { tiles, rows, value_sum, written }) => println!(
                "{n}: complete ({tiles} tiles, {rows} rows, sum {value_sum}){}",
                if written { ", dataset.json written now" } else { "" }
            ),
            Some(Completion::Missing { committed, total }) => {
                println!("{n}: {committed} of {total} tiles committed; rerun the shards that failed");
                missing.push(n.to_string());
            }
        }
    }
    if !missing.is_empty() {
        bail!("{} dataset(s) not complete: {}", missing.len(), missing.join(", "));
    }
    Ok(())
}
