//! The `load` subcommand: arguments and reporting; all work is in `rasterstage::load`.

use crate::args::{load_line, ShardArgs, StagingArgs};
use anyhow::{bail, Result};
use clap::Args;
use rasterstage::load::geometry::Geometry;
use rasterstage::load::{self, LoadOptions};

/// `load` arguments.
#[derive(Args)]
pub struct LoadArgs {
    #[command(flatten)]
    staging: StagingArgs,
    /// Parallel connections [default: CPU cores].
    #[arg(long, short = 'j')]
    jobs: Option<usize>,
    /// Do not build the primary key (row_idx, col_idx), nor the GiST index on geom, after loading.
    #[arg(long)]
    no_index: bool,
    /// Add a PostGIS column geom geometry(Point, <EPSG code of the dataset's CRS>) holding each
    /// cell's centre, with a GiST index (the database needs the postgis extension) [default:
    /// the config's load.geometry].
    #[arg(long, value_name = "KIND", num_args = 0..=1, default_missing_value = "point", value_parser = parse_geometry)]
    geometry: Option<Geometry>,
    /// Drop and reload a dataset table that already exists.
    #[arg(long)]
    replace: bool,
    /// Coordinates: stored in every row, or computed by a view named as the table over a
    /// narrow `<table>__cells` (row_idx, col_idx, value).
    #[arg(long, value_enum, default_value_t = CoordsArg::Stored)]
    coords: CoordsArg,
    #[command(flatten)]
    shard: ShardArgs,
}

/// `--coords`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum CoordsArg {
    /// `x` and `y` stored in every row.
    Stored,
    /// `row_idx, col_idx, value` stored; a view adds `x`, `y`.
    View,
}

fn parse_geometry(s: &str) -> Result<Geometry, String> {
    Geometry::parse(s).ok_or_else(|| format!("unknown geometry {s:?}; use {}", Geometry::NAMES))
}

/// Runs `load`; prints one line per dataset.
///
/// # Errors
/// Any dataset failing (after the others ran).
pub fn run(a: LoadArgs, quiet: bool) -> Result<()> {
    let (st, db, conn) = a.staging.resolve("load")?;
    let jobs = rasterstage::config::worker_count(a.jobs, "--jobs", rasterstage::limits::MAX_JOBS)?;
    let opts = LoadOptions {
        root: st.root,
        datasets: st.datasets,
        conn,
        jobs,
        schema: db.schema,
        table_prefix: db.prefix,
        no_index: a.no_index,
        geometry: a.geometry.or(db.geometry),
        replace: a.replace,
        coords: match a.coords {
            CoordsArg::Stored => load::coords_view::Coords::Stored,
            CoordsArg::View => load::coords_view::Coords::View,
        },
        quiet,
        storage: st.storage,
    };
    let shard = a.shard.shard()?;
    if shard.is_some() && opts.replace {
        bail!("--replace with --shard/--shards would let every shard drop the others' rows: run one load --replace first, then the shards");
    }
    let results = match shard {
        Some(k) => load::shard::load_shard(&opts, k)?,
        None => load::load(&opts)?,
    };
    let total = results.len();
    let mut failed = 0;
    for (name, r) in results {
        match r {
            Ok(s) => println!("{}", load_line(&s, true)),
            // One dataset: its error is the command's error, printed once by main.
            Err(e) if total == 1 => return Err(e.into()),
            Err(e) => {
                eprintln!("error: {name}: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {total} datasets failed");
    }
    Ok(())
}
