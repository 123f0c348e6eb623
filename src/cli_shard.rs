//! Scale-out on the command line: `--shard K/N` / `--shards N` (shared by convert, load and
//! merge), `plan` and `finalize`. Part of the binary; the assignment is `rasterstage::shard`.

use anyhow::{bail, Context, Result};
use clap::Args;
use rasterstage::limits::MAX_SHARDS;
use rasterstage::pipeline::{tile_units, ConvertJob};
use rasterstage::shard::{self, Shard, Unit};
use rasterstage::stage::finalize::{finalize, Completion};
use rasterstage::store::Store;
use std::collections::{HashMap, HashSet};

/// Which shard this process is.
#[derive(Args, Clone, Default)]
pub struct ShardArgs {
    /// Do only shard K of N (0-based, like JOB_COMPLETION_INDEX): a deterministic, disjoint,
    /// cell-balanced share of all tiles of all datasets.
    #[arg(long, value_name = "K/N", conflicts_with = "shards")]
    pub shard: Option<String>,
    /// Split into N shards and take K from JOB_COMPLETION_INDEX (Kubernetes Indexed Job),
    /// AWS_BATCH_JOB_ARRAY_INDEX (AWS Batch array job) or SLURM_ARRAY_TASK_ID (Slurm job
    /// array, sbatch --array=0-<N-1>; checked against the array's MIN/MAX/COUNT).
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
}

impl ShardArgs {
    /// The shard, if any.
    ///
    /// # Errors
    /// A bad `--shard`, or `--shards` without an index variable.
    pub fn shard(&self) -> Result<Option<Shard>> {
        let k = Shard::from_args(self.shard.as_deref(), self.shards)?;
        if let Some(k) = k {
            check_shard_count(k.count, if self.shards.is_some() { "--shards" } else { "--shard" })?;
        }
        Ok(k)
    }
}

/// Refuses more shards than [`MAX_SHARDS`]: the assignment keeps a counter per shard.
fn check_shard_count(n: usize, what: &str) -> Result<()> {
    if n > MAX_SHARDS {
        bail!("{what}: at most {MAX_SHARDS} shards, got {n}");
    }
    Ok(())
}

/// Every tile of every job with its cost, in job order.
fn convert_units(jobs: &[ConvertJob]) -> Result<Vec<Unit>> {
    let mut units = Vec::new();
    for job in jobs {
        units.extend(tile_units(job).with_context(|| format!("planning {}", job.name))?);
    }
    Ok(units)
}

/// This shard's tile ids, by dataset name.
///
/// # Errors
/// A source that cannot be opened or planned.
pub fn my_convert_tiles(jobs: &[ConvertJob], k: Shard) -> Result<HashMap<String, HashSet<String>>> {
    let units = convert_units(jobs)?;
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    for (ds, tile) in shard::mine(&units, k) {
        out.entry(ds).or_default().insert(tile);
    }
    Ok(out)
}

/// `plan` arguments: the same as `convert`, plus the output form.
#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    convert: crate::ConvertArgs,
    /// Print the plan as JSON (per shard: tiles, cells, weight; and every tile's shard).
    #[arg(long)]
    json: bool,
}

/// Runs `plan`: tiles, target cells and weight (source cells read) per shard.
///
/// # Errors
/// No `--shards`, or a dataset that cannot be planned.
pub fn run_plan(a: PlanArgs) -> Result<()> {
    let n = match (a.convert.shard.shards, &a.convert.shard.shard) {
        (Some(n), _) => n,
        (None, Some(s)) => Shard::parse(s)?.count,
        (None, None) => bail!("plan needs --shards N"),
    };
    if n == 0 {
        bail!("--shards must be at least 1");
    }
    check_shard_count(n, if a.convert.shard.shards.is_some() { "--shards" } else { "--shard" })?;
    let (jobs, _) = crate::convert_jobs(&a.convert)?;
    let units = convert_units(&jobs)?;
    let loads = shard::loads(&units, n);
    if a.json {
        let assignment = shard::assign(&units, n);
        let tiles: Vec<_> = units
            .iter()
            .zip(&assignment)
            .map(|(u, k)| serde_json::json!({"dataset": u.dataset, "tile": u.tile, "cells": u.cells, "weight": u.weight, "shard": k}))
            .collect();
        let doc = serde_json::json!({
            "shards": n,
            "datasets": jobs.iter().map(|j| j.name.to_string()).collect::<Vec<_>>(),
            "tiles": units.len(),
            "cells": units.iter().map(|u| u.cells).sum::<u64>(),
            "weight": units.iter().map(|u| u.weight).sum::<u64>(),
            "per_shard": loads,
            "assignment": tiles,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    let total_w: u64 = units.iter().map(|u| u.weight).sum();
    println!("{} tiles of {} datasets over {n} shards (0-based; weight = source cells read)", units.len(), jobs.len());
    println!("{:>6} {:>8} {:>14} {:>16} {:>7}", "shard", "tiles", "cells", "weight", "share");
    for l in &loads {
        println!(
            "{:>6} {:>8} {:>14} {:>16} {:>6.1}%",
            l.shard,
            l.tiles,
            l.cells,
            l.weight,
            100.0 * l.weight as f64 / total_w.max(1) as f64
        );
    }
    Ok(())
}

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
pub fn run_finalize(a: FinalizeArgs) -> Result<()> {
    let cfg = rasterstage::config::Config::load_applying_storage(a.config.as_deref())?;
    let root_url = match (&a.from, cfg.as_ref().and_then(|c| c.output.uri.clone())) {
        (Some(f), _) => f.clone(),
        (None, Some(u)) => u,
        (None, None) if cfg.is_some() => rasterstage::config::DEFAULT_OUT.to_string(),
        (None, None) => bail!("nothing to finalize: give --from ./staging or --config config.yml"),
    };
    let only: Vec<String> = if !a.dataset.is_empty() {
        a.dataset.clone()
    } else if let Some(c) = &cfg {
        c.datasets.iter().filter(|d| d.enabled).map(|d| d.name.replace('-', "_")).collect()
    } else {
        Vec::new()
    };
    let root = Store::open_existing(&root_url)?;
    let names = rasterstage::load::dataset_names(&root, &only)?;
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

/// The summary line's note on a shard's part: empty without `--shard`.
pub fn shard_status(shard: Option<Shard>, complete: bool) -> String {
    match (shard, complete) {
        (Some(k), true) => format!(" by shard {k}, dataset complete"),
        (Some(k), false) => format!(" by shard {k}, dataset not complete yet"),
        (None, _) => String::new(),
    }
}
