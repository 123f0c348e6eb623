//! The `merge` subcommand: arguments and reporting; `rasterstage::config` resolves the job,
//! `rasterstage::merge` merges and `rasterstage::load` loads.

use crate::args::{key_note, shard_status, DbArgs, ShardArgs};
use anyhow::{bail, Result};
use clap::Args;
use rasterstage::config::{self, Config, MergeFlags};
use rasterstage::load::{self, LoadOptions};
use rasterstage::merge::{self, How, RunOptions};
use rasterstage::progress::{human, peak_rss_bytes};
use rasterstage::stage::{Format, ZarrVersion};
use rasterstage::store::Store;

/// `merge` arguments.
#[derive(Args)]
pub struct MergeArgs {
    /// Config file: merges its `merge:` section (inputs under output.uri).
    #[arg(long, short = 'c')]
    config: Option<String>,
    /// Staging root of the datasets to merge [default: the config's output.uri, else ./staging].
    #[arg(long)]
    from: Option<String>,
    /// Datasets to merge, in column order (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    datasets: Vec<String>,
    /// Folder of the merged dataset; its last segment is the dataset's name [default: <from>/<name>].
    #[arg(long, short = 'o')]
    out: Option<String>,
    /// Name of the merged dataset and of its table [default: --out's last segment, else merged].
    #[arg(long)]
    name: Option<String>,
    /// outer: cells where any dataset is valid; inner: cells where every dataset is valid [default: outer].
    #[arg(long, ignore_case = true)]
    how: Option<How>,
    /// Output format: parquet (tiles: row_idx, col_idx, x, y, one nullable column per dataset)
    /// or zarr (<name>.zarr: one array per dataset, fill value = its nodata, shared x/y) [default: parquet].
    #[arg(long, short = 'f', ignore_case = true)]
    format: Option<Format>,
    /// Zarr format version with --format zarr: 3, or 2 for GDAL before 3.11 [default: the config's output.zarr_version, else 3].
    #[arg(long)]
    zarr_version: Option<ZarrVersion>,
    /// Window (tile) size of the merged grid [default: the first dataset's].
    #[arg(long)]
    window: Option<usize>,
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
    let flags = MergeFlags {
        from: a.from.clone(),
        datasets: a.datasets.clone(),
        out: a.out.clone(),
        name: a.name.clone(),
        how: a.how,
        format: a.format,
        zarr_version: a.zarr_version,
        window: a.window,
        to_postgres: a.to_postgres,
        table_prefix: a.db.table_prefix.clone(),
    };
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
        Some(k) => {
            let units = merge::tile_units(&job)?;
            Some(rasterstage::shard::mine(&units, k).into_iter().map(|(_, t)| t).collect())
        }
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
            let l = r?;
            println!(
                "{}: {} tiles ({} loaded now, {} already loaded), {} rows copied of {}, {:.1} s, {} rows/s{} -> {}",
                l.name,
                l.tiles,
                l.loaded,
                l.skipped,
                l.rows,
                l.total_rows,
                l.seconds,
                human(l.rows as f64 / l.seconds.max(1e-3)),
                key_note(&l),
                l.table
            );
        }
    }
    Ok(())
}
