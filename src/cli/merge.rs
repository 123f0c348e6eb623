//! The `merge` subcommand: arguments and reporting; `rasterstage::config` resolves the job,
//! `rasterstage::merge` merges and `rasterstage::load` loads.

use crate::args::{load_line, shard_status, DbArgs, ShardArgs};
use anyhow::{bail, Result};
use clap::Args;
use rasterstage::config::{self, Config, MergeFlags};
use rasterstage::load::{self, LoadOptions};
use rasterstage::merge::{self, RunOptions};
use rasterstage::progress::peak_rss_bytes;
use rasterstage::store::Store;

/// `merge` arguments.
#[derive(Args)]
pub struct MergeArgs {
    /// Config file: merges its `merge:` section (inputs under output.uri).
    #[arg(long, short = 'c')]
    config: Option<String>,
    #[command(flatten)]
    merge: MergeFlags,
    /// Replace a merged dataset made from other inputs or settings.
    #[arg(long)]
    overwrite: bool,
    /// Worker threads (and connections with --to-postgres) [default: CPU cores].
    #[arg(long, short = 'j')]
    threads: Option<usize>,
    /// Also load the merged dataset into PostgreSQL (exactly once per tile, like `load`).
    #[arg(long)]
    to_postgres: bool,
    /// With --to-postgres: create a VIEW joining the already-loaded dataset tables instead of
    /// staging and loading a merged table.
    #[arg(long, requires = "to_postgres")]
    view: bool,
    /// With --to-postgres: drop and reload a merged table that already exists.
    #[arg(long, requires = "to_postgres")]
    replace: bool,
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    shard: ShardArgs,
}

/// Runs `merge`; prints one summary line (and the load's with --to-postgres).
///
/// # Errors
/// Any failure, as one line.
pub fn run(a: MergeArgs, quiet: bool) -> Result<()> {
    let cfg = Config::load_opt(a.config.as_deref())?;
    let flags = MergeFlags { to_postgres: a.to_postgres, table_prefix: a.db.table_prefix.clone(), ..a.merge.clone() };
    let job = config::merge_job(cfg.as_ref(), &flags)?;
    // The threads are also the connections of --to-postgres.
    let max = rasterstage::limits::MAX_THREADS.min(rasterstage::limits::MAX_JOBS);
    let threads = config::worker_count(a.threads, "--threads", max)?;
    tracing::debug!("merge job: {job:?}");

    if a.view {
        let (db, conn) = a.db.resolve(cfg.as_ref())?;
        let root = Store::open_existing(&job.from, &job.storage)?;
        let (grid, inputs) = merge::view_inputs(&root, &job.datasets)?;
        let view = load::view::create_view(&conn, &db.schema, &db.prefix, &inputs, &grid, &job.name, job.how)?;
        println!("{}: view {view} ({}) over {} loaded tables", job.name, job.how.name(), job.datasets.len());
        return Ok(());
    }

    let shard = a.shard.shard()?;
    if shard.is_some() && (a.overwrite || a.to_postgres) {
        bail!("--shard/--shards cannot go with --overwrite (every shard would delete the others' tiles) or --to-postgres (the merged dataset is complete only after the last shard): merge the shards, then `load --shard`");
    }
    // One dataset: a shard's tiles are its share of the merged grid's windows.
    let only = match shard {
        Some(k) => Some(rasterstage::shard::mine(&merge::tile_units(&job)?, k).into_iter().map(|(_, t)| t).collect()),
        None => None,
    };
    let s = merge::merge_tiles(&job, &RunOptions { threads, overwrite: a.overwrite, quiet }, only.as_ref())?;
    println!(
        "{}: {} datasets merged ({}) onto {}x{}, {} tiles ({} written now{}), {} rows, sum {}, {:.1} s, peak RSS {} MB -> {}",
        s.name,
        s.inputs,
        job.how.name(),
        s.shape[0],
        s.shape[1],
        s.tiles,
        s.written,
        shard_status(shard, s.complete),
        s.rows,
        s.value_sum,
        s.seconds,
        peak_rss_bytes() / (1 << 20),
        s.url
    );
    if a.to_postgres {
        let (db, conn) = a.db.resolve(cfg.as_ref())?;
        let opts = LoadOptions {
            root: job.out.clone(),
            datasets: vec![job.name.to_string()],
            conn,
            jobs: threads,
            schema: db.schema,
            table_prefix: db.prefix,
            no_index: false,
            geometry: db.geometry,
            replace: a.replace,
            coords: load::coords_view::Coords::Stored,
            quiet,
            storage: job.storage.clone(),
        };
        for (_, r) in load::load(&opts)? {
            println!("{}", load_line(&r?, false));
        }
    }
    Ok(())
}
