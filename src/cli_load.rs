//! The `load` and `verify` subcommands and `inspect --database-url`: arguments and reporting.
//! Part of the binary (next to main.rs); all work is in `rasterstage::load`.

use anyhow::{bail, Result};
use clap::Args;
use rasterstage::config::Config;
use rasterstage::load::geometry::Geometry;
use rasterstage::load::pg::ConnSpec;
use rasterstage::load::{self, LoadOptions};
use rasterstage::progress::{human, peak_rss_bytes};
use rasterstage::store::Store;
use std::collections::BTreeMap;

/// Where the tables are: connection, schema, prefix.
#[derive(Args, Clone, Default)]
pub struct DbArgs {
    /// PostgreSQL URL [default: $DATABASE_URL, then the config's database.url, then PG* variables].
    #[arg(long)]
    pub database_url: Option<String>,
    /// Schema of the tables [default: the config's database.schema, else public].
    #[arg(long)]
    pub schema: Option<String>,
    /// Prefix of each dataset's table name [default: the config's database.table_prefix].
    #[arg(long)]
    pub table_prefix: Option<String>,
}

/// What is staged where, and which of it: shared by `load` and `verify`.
#[derive(Args)]
pub struct StagingArgs {
    /// Config file: its output.uri is the staging root, its database section the target.
    #[arg(long, short = 'c')]
    pub config: Option<String>,
    /// Staging root (folder, file://, s3://, gs:// or az:// URL) [default: the config's output.uri].
    #[arg(long)]
    pub from: Option<String>,
    /// Only these datasets (repeatable or comma-separated) [default: every staged dataset].
    #[arg(long, value_delimiter = ',')]
    pub dataset: Vec<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

/// `load` arguments.
#[derive(Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub staging: StagingArgs,
    /// Parallel connections [default: CPU cores].
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Do not build the primary key (row_idx, col_idx), nor the GiST index on geom, after loading.
    #[arg(long)]
    pub no_index: bool,
    /// Add a PostGIS column geom geometry(Point, <EPSG code of the dataset's CRS>) holding each
    /// cell's centre, with a GiST index (the database needs the postgis extension) [default:
    /// the config's load.geometry].
    #[arg(long, value_name = "KIND", num_args = 0..=1, default_missing_value = "point", value_parser = parse_geometry)]
    pub geometry: Option<Geometry>,
    /// Drop and reload a dataset table that already exists.
    #[arg(long)]
    pub replace: bool,
    /// Coordinates: stored in every row, or computed by a view named as the table over a
    /// narrow `<table>__cells` (row_idx, col_idx, value).
    #[arg(long, value_enum, default_value_t = CoordsArg::Stored)]
    pub coords: CoordsArg,
    #[command(flatten)]
    pub shard: crate::cli_shard::ShardArgs,
}

/// `--coords`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum CoordsArg {
    /// `x` and `y` stored in every row.
    Stored,
    /// `row_idx, col_idx, value` stored; a view adds `x`, `y`.
    View,
}

/// `verify` arguments.
#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub staging: StagingArgs,
}

fn parse_geometry(s: &str) -> Result<Geometry, String> {
    Geometry::parse(s).ok_or_else(|| format!("unknown geometry {s:?}; use {}", Geometry::NAMES))
}

struct Target {
    root: String,
    datasets: Vec<String>,
    conn: ConnSpec,
    schema: String,
    prefix: String,
    /// The config's `load.geometry`.
    geometry: Option<Geometry>,
}

fn target(st: &StagingArgs) -> Result<Target> {
    let StagingArgs { config, from, dataset, db } = st;
    let cfg = Config::load_applying_storage(config.as_deref())?;
    let root = match (from, cfg.as_ref().and_then(|c| c.output.uri.clone())) {
        (Some(f), _) => f.clone(),
        (None, Some(u)) => u,
        (None, None) if cfg.is_some() => rasterstage::config::DEFAULT_OUT.to_string(),
        (None, None) => bail!("nothing to load: give --from ./staging or --config config.yml"),
    };
    let datasets = if !dataset.is_empty() {
        dataset.to_vec()
    } else if let Some(c) = &cfg {
        c.datasets.iter().filter(|d| d.enabled).map(|d| d.name.replace('-', "_")).collect()
    } else {
        Vec::new()
    };
    let dbc = cfg.as_ref().map(|c| c.database.clone()).unwrap_or_default();
    let conn = ConnSpec::resolve(db.database_url.as_deref(), dbc.url.as_deref())?;
    Ok(Target {
        root,
        datasets,
        conn,
        schema: db.schema.clone().or(dbc.schema).unwrap_or_else(|| "public".to_string()),
        prefix: db.table_prefix.clone().or(dbc.table_prefix).unwrap_or_default(),
        geometry: cfg.as_ref().and_then(|c| c.load.geometry),
    })
}

/// Runs `load`; prints one line per dataset.
///
/// # Errors
/// Any dataset failing (after the others ran).
pub fn run_load(a: LoadArgs, quiet: bool) -> Result<()> {
    let t = target(&a.staging)?;
    let jobs = rasterstage::config::worker_count(a.jobs, "--jobs", rasterstage::limits::MAX_JOBS)?;
    let opts = LoadOptions {
        root: t.root,
        datasets: t.datasets,
        conn: t.conn,
        jobs,
        schema: t.schema,
        table_prefix: t.prefix,
        no_index: a.no_index,
        geometry: a.geometry.or(t.geometry),
        replace: a.replace,
        coords: match a.coords {
            CoordsArg::Stored => load::coords_view::Coords::Stored,
            CoordsArg::View => load::coords_view::Coords::View,
        },
        quiet,
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
            Ok(s) => println!(
                "{}: {} tiles ({} loaded now, {} already loaded), {} rows copied of {}, {:.1} s, {} rows/s{}, peak RSS {} MB -> {}",
                s.name,
                s.tiles,
                s.loaded,
                s.skipped,
                s.rows,
                s.total_rows,
                s.seconds,
                human(s.rows as f64 / s.seconds.max(1e-3)),
                key_note(&s),
                peak_rss_bytes() / (1 << 20),
                s.table
            ),
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

/// What the summary line says about the primary key.
pub fn key_note(s: &load::LoadSummary) -> &'static str {
    match (s.indexed, s.key_by_other, s.geom_indexed) {
        (true, _, true) => ", primary key and GiST index on geom built",
        (true, _, false) => ", primary key built",
        (false, true, _) => ", primary key already built by another run",
        (false, false, true) => ", GiST index on geom built",
        _ => "",
    }
}

/// Runs `verify`; lists every differing tile.
///
/// # Errors
/// Any difference or failure.
pub fn run_verify(a: VerifyArgs) -> Result<()> {
    let t = target(&a.staging)?;
    let root = Store::open(&t.root)?;
    let results = load::verify::verify(&root, &t.datasets, &t.conn, &t.schema, &t.prefix)?;
    let total = results.len();
    let mut bad = 0;
    for (name, r) in results {
        match r {
            Ok(rep) => {
                for d in &rep.diffs {
                    println!(
                        "{name} {}: rows staged {} loaded {}, sum staged {} loaded {}",
                        d.tile, d.staged_rows, d.loaded_rows, d.staged_sum, d.loaded_sum
                    );
                }
                match rep.error() {
                    Some(e) if total == 1 => return Err(e.into()),
                    Some(e) => {
                        eprintln!("error: {e}");
                        bad += 1;
                    }
                    None => println!("{name}: {} tiles match {}", rep.tiles, rep.table),
                }
            }
            Err(e) if total == 1 => return Err(e.into()),
            Err(e) => {
                eprintln!("error: {name}: {e}");
                bad += 1;
            }
        }
    }
    if bad > 0 {
        bail!("{bad} of {total} datasets differ or failed");
    }
    Ok(())
}

/// A schema and the loaded/total tiles per dataset in it.
pub type Loaded = (String, BTreeMap<String, (usize, usize)>);

/// The schema looked in and the loaded/total tiles per dataset for `inspect`, when a
/// database is given.
///
/// # Errors
/// Connection or query failures.
pub fn loaded(db: &DbArgs, root: &Store) -> Result<Option<Loaded>> {
    if db.database_url.is_none() {
        return Ok(None);
    }
    let conn = ConnSpec::resolve(db.database_url.as_deref(), None)?;
    let schema = db.schema.clone().unwrap_or_else(|| "public".to_string());
    let prefix = db.table_prefix.clone().unwrap_or_default();
    let tiles = load::verify::loaded_tiles(root, &conn, &schema, &prefix)?;
    Ok(Some((schema, tiles)))
}
