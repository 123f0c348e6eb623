//! The `plan` subcommand: how `--shards N` splits a config's tiles. The assignment is
//! `rasterstage::shard`.

use anyhow::{bail, Result};
use clap::Args;
use rasterstage::config::ConvertJobs;
use rasterstage::convert::jobs_units;
use rasterstage::shard::{self, Shard};

/// `plan` arguments: the same as `convert`, plus the output form.
#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    convert: crate::convert::ConvertArgs,
    /// Print the plan as JSON (per shard: tiles, cells, weight; and every tile's shard).
    #[arg(long)]
    json: bool,
}

/// Runs `plan`: tiles, target cells and weight (source cells read) per shard.
///
/// # Errors
/// No `--shards`, or a dataset that cannot be planned.
pub fn run(a: PlanArgs) -> Result<()> {
    let sa = &a.convert.shard;
    let n = match (sa.shards, &sa.shard) {
        (Some(n), _) => n,
        (None, Some(s)) => Shard::parse(s)?.count,
        (None, None) => bail!("plan needs --shards N"),
    };
    if n == 0 {
        bail!("--shards must be at least 1");
    }
    sa.check_count(n)?;
    let ConvertJobs { jobs, .. } = a.convert.jobs()?;
    let units = jobs_units(&jobs)?;
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
