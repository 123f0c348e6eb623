//! The `rasterstage` command line: parse, dispatch, report. All work is in the library.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use rasterstage::config::{self, Base, Config, Overrides};
use rasterstage::limits::MAX_THREADS;
use rasterstage::name::DatasetName;
use rasterstage::pipeline::{convert_tiles, ConvertJob, RunOptions};
use rasterstage::progress::{human, peak_rss_bytes};
use rasterstage::resample::Method;
use rasterstage::store::{StorageOptions, Store};

mod cli_load;
mod cli_merge;
mod cli_shard;

#[derive(Parser)]
#[command(
    name = "rasterstage",
    version,
    about = "Stage very large rasters for PostgreSQL: convert to Parquet tiles or Zarr window by window, then load exactly once"
)]
struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// No progress bars or info logs.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Convert rasters into staged tiles (Parquet) or a Zarr array, window by window.
    Convert(ConvertArgs),
    /// Show what is staged under a root: datasets, grids, tiles done/total, rows, value sum.
    Inspect(InspectArgs),
    /// Load staged datasets into PostgreSQL by binary COPY, exactly once per tile (resumable).
    Load(cli_load::LoadArgs),
    /// Compare staged and loaded data tile by tile (row count, value sum); non-zero exit on any difference.
    Verify(cli_load::VerifyArgs),
    /// Merge staged datasets on one lattice into one dataset with a column per dataset (optionally into PostgreSQL).
    Merge(cli_merge::MergeArgs),
    /// Show how `--shards N` splits a config's tiles: tiles, cells and source cells per shard.
    Plan(cli_shard::PlanArgs),
    /// Complete datasets whose tiles were all committed by shards (writes the final dataset.json).
    Finalize(cli_shard::FinalizeArgs),
    /// Draw a staged dataset as a PNG (gdal_translate -of PNG -outsize), optionally with its tiles.
    Preview(PreviewArgs),
}

#[derive(Args)]
pub(crate) struct ConvertArgs {
    /// Source raster (any GDAL path: GeoTIFF, COG, VRT, NetCDF:..., /vsis3/, s3://, gs://, az://).
    source: Option<String>,
    /// Config file; converts every enabled dataset in it.
    #[arg(long, short = 'c')]
    config: Option<String>,
    /// Only these datasets of the config (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    dataset: Vec<String>,
    /// Dataset name for an ad hoc source [default: the file stem, normalised to a safe
    /// identifier: `RGB.byte.tif` -> rgb_byte, `2019-lc.tif` -> r_2019_lc].
    #[arg(long)]
    name: Option<String>,
    /// Staging root: a folder, file://, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix [default: ./staging].
    #[arg(long, short = 'o')]
    out: Option<String>,
    /// parquet or zarr [default: parquet].
    #[arg(long, short = 'f')]
    format: Option<String>,
    /// Target resolution in target CRS units (both axes) [default: the source's; with no
    /// resolution, CRS or bounds the source grid is copied as it is].
    #[arg(long, conflicts_with = "tr", allow_negative_numbers = true)]
    resolution: Option<f64>,
    /// Target resolution as X Y (gdalwarp -tr).
    #[arg(long, num_args = 2, value_names = ["XRES", "YRES"], allow_negative_numbers = true)]
    tr: Option<Vec<f64>>,
    /// Target CRS (EPSG:xxxx, WKT, PROJ); default: the source's.
    #[arg(long, alias = "t-srs")]
    target_crs: Option<String>,
    /// Target bounds MINX MINY MAXX MAXY in the target CRS (gdalwarp -te).
    #[arg(long, alias = "te", num_args = 4, value_names = ["MINX", "MINY", "MAXX", "MAXY"], allow_negative_numbers = true)]
    bounds: Option<Vec<f64>>,
    /// sum, average, mode, min, max, nearest, bilinear (gdalwarp names; -r).
    #[arg(long, short = 'r')]
    method: Option<String>,
    /// Window (tile, Zarr chunk) size in target cells [default: 1024].
    #[arg(long)]
    window: Option<usize>,
    /// Band number [default: 1].
    #[arg(long, short = 'b')]
    band: Option<usize>,
    /// Nodata value of the source (overrides the file's).
    #[arg(long, allow_negative_numbers = true)]
    nodata: Option<f64>,
    /// Zarr format version: 3, or 2 for GDAL before 3.11 [default: 3].
    #[arg(long)]
    zarr_version: Option<u8>,
    /// Sharded Zarr v3: K x K windows (inner chunks) per shard object, one unit of work, so a
    /// small window does not mean tens of thousands of objects (output.zarr_shard; GDAL reads
    /// sharding from 3.13).
    #[arg(long, value_name = "K")]
    zarr_shard: Option<usize>,
    /// Write GeoParquet 1.1 tiles: each cell centre also as a point geometry (column
    /// `geometry`), a bbox covering column and the CRS as PROJJSON, so GeoPandas, DuckDB
    /// spatial and QGIS open the tiles as points (output.geoparquet).
    #[arg(long)]
    geoparquet: bool,
    /// Geometry encoding of --geoparquet: wkb (every reader) or point (GeoArrow native)
    /// [default: wkb].
    #[arg(long, requires = "geoparquet")]
    geoparquet_encoding: Option<String>,
    /// Write only the Parquet encodings every reader decodes (no BYTE_STREAM_SPLIT, which
    /// fastparquet cannot read); float tiles grow (output.parquet_compat).
    #[arg(long)]
    parquet_compat: bool,
    /// Relative tolerance for "same resolution" (passthrough) [default: 1e-9].
    #[arg(long)]
    resolution_tolerance: Option<f64>,
    /// Keep the source's own grid when the resolution matches, instead of aligning to
    /// multiples of the resolution (gdalwarp -tap, the default when a resolution, CRS or
    /// bounds is given).
    #[arg(long, conflicts_with = "align")]
    no_align: bool,
    /// Align the grid to multiples of the resolution (gdalwarp -tap) even when no resolution,
    /// CRS or bounds is given (then the default is the source grid as it is).
    #[arg(long)]
    align: bool,
    /// Replace an existing output converted from another source or with other settings.
    #[arg(long)]
    overwrite: bool,
    /// Worker threads [default: CPU cores].
    #[arg(long, short = 'j')]
    threads: Option<usize>,
    #[command(flatten)]
    shard: cli_shard::ShardArgs,
}

#[derive(Args)]
struct InspectArgs {
    /// Staging root (folder, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix).
    root: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also show loaded tiles/total per dataset in this database.
    #[command(flatten)]
    db: cli_load::DbArgs,
    /// Also write a preview of each dataset to <root>/<dataset>/preview.png (1024 pixels wide).
    #[arg(long)]
    preview: bool,
}

#[derive(Args)]
struct PreviewArgs {
    /// The dataset folder: <root>/<dataset> (a folder, file:// or s3://bucket/prefix/dataset).
    #[arg(required_unless_present = "dataset", conflicts_with_all = ["from", "dataset"])]
    dataset_url: Option<String>,
    /// Staging root (folder or s3://bucket/prefix), with --dataset.
    #[arg(long, requires = "dataset")]
    from: Option<String>,
    /// Dataset name under --from.
    #[arg(long, requires = "from")]
    dataset: Option<String>,
    /// PNG file to write.
    #[arg(long, short = 'o')]
    out: String,
    /// Width in pixels; the height follows the grid's extent [default: 1024].
    #[arg(long)]
    width: Option<String>,
    /// Column of a merged dataset [default: its first].
    #[arg(long)]
    column: Option<String>,
    /// average or mode of the cells under a pixel [default: mode for integer data converted
    /// with mode, else average].
    #[arg(long, short = 'r')]
    method: Option<String>,
    /// Colour ramp: viridis, cividis, magma, inferno, plasma, turbo [default: viridis].
    #[arg(long)]
    ramp: Option<String>,
    /// linear (min to max) or percentile (2 % to 98 %) [default: linear].
    #[arg(long)]
    stretch: Option<String>,
    /// Overlay the tile grid: committed tiles outlined, uncommitted ones hatched, failed
    /// loads (with --database-url) red.
    #[arg(long)]
    tiles: bool,
    #[command(flatten)]
    db: cli_load::DbArgs,
}

/// gdalwarp users type `-tr`, `-te`, `-t_srs`: accept them as the long flags they mean.
fn gdal_style_args() -> Vec<String> {
    std::env::args()
        .map(|a| match a.as_str() {
            "-tr" => "--tr".to_string(),
            "-te" => "--bounds".to_string(),
            "-t_srs" => "--target-crs".to_string(),
            _ => a,
        })
        .collect()
}

fn main() {
    let cli = Cli::parse_from(gdal_style_args());
    init_logging(cli.verbose, cli.quiet);
    if let Err(e) = run(cli) {
        eprintln!("error: {}", one_line(&e));
        std::process::exit(1);
    }
}

/// The error and its causes on one line, without repeating a cause already in the message.
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg.replace('\n', " ")
}

fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (_, 0) => "info",
        (_, 1) => "info,rasterstage=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

fn run(cli: Cli) -> Result<()> {
    // A bad RASTERSTAGE_S3_* variable fails the run before it reads or writes anything,
    // whether or not the run ends up talking to an object store.
    StorageOptions::default().with_env()?;
    match cli.cmd {
        Cmd::Convert(a) => run_convert(a, cli.quiet),
        Cmd::Inspect(a) => run_inspect(a),
        Cmd::Load(a) => cli_load::run_load(a, cli.quiet),
        Cmd::Verify(a) => cli_load::run_verify(a),
        Cmd::Merge(a) => cli_merge::run_merge(a, cli.quiet),
        Cmd::Plan(a) => cli_shard::run_plan(a),
        Cmd::Finalize(a) => cli_shard::run_finalize(a),
        Cmd::Preview(a) => run_preview(a, cli.quiet),
    }
}

fn overrides(a: &ConvertArgs) -> Result<Overrides> {
    let resolution = match (&a.resolution, &a.tr) {
        (Some(r), _) => Some((*r, *r)),
        (None, Some(v)) => Some((v[0], v[1].abs())),
        _ => None,
    };
    Ok(Overrides {
        out: a.out.clone(),
        format: a.format.clone(),
        resolution,
        target_crs: a.target_crs.clone(),
        bounds: a.bounds.as_ref().map(|b| [b[0], b[1], b[2], b[3]]),
        method: a.method.clone(),
        window: a.window,
        zarr_version: a.zarr_version,
        zarr_shard: a.zarr_shard,
        geoparquet: a.geoparquet,
        geoparquet_encoding: a.geoparquet_encoding.clone(),
        parquet_compat: a.parquet_compat,
        band: a.band,
        nodata: a.nodata,
        tolerance: a.resolution_tolerance,
        no_align: a.no_align,
        align: a.align,
        only: a.dataset.clone(),
    })
}

/// The datasets `convert` would convert with these arguments, and the config's thread count.
fn convert_jobs(a: &ConvertArgs) -> Result<(Vec<ConvertJob>, Option<usize>)> {
    let o = overrides(a)?;
    let (jobs, threads): (Vec<ConvertJob>, Option<usize>) = match (&a.config, &a.source) {
        (Some(path), None) => {
            let cfg = Config::load(path)?;
            rasterstage::store::set_default_options(cfg.storage.options(path)?);
            let jobs = config::jobs_from_config(path, &cfg, &o)?;
            if jobs.is_empty() {
                bail!("{path}: no enabled datasets to convert");
            }
            (jobs, cfg.resampling.threads)
        }
        (None, Some(src)) => {
            let name = match a.name.as_deref() {
                Some(n) => DatasetName::new(n)?,
                None => DatasetName::from_source(src)?,
            };
            name.check_not_reserved("")?;
            let method = match &a.method {
                Some(m) => Some(
                    Method::parse(m)
                        .with_context(|| format!("--method: unknown method {m:?}; use one of {}", Method::names()))?,
                ),
                None => None,
            };
            let job = config::resolve(name, src.clone(), a.band.unwrap_or(1), a.nodata, method, &o, Base::defaults())?;
            (vec![job], None)
        }
        (Some(_), Some(_)) => bail!("give either a source raster or --config, not both"),
        (None, None) => bail!("nothing to convert: give a source raster or --config config.yml"),
    };
    Ok((jobs, threads))
}

fn run_convert(a: ConvertArgs, quiet: bool) -> Result<()> {
    let (jobs, threads) = convert_jobs(&a)?;
    let what = if a.threads.is_some() { "--threads" } else { "resampling.threads" };
    let threads = config::worker_count(a.threads.or(threads), what, MAX_THREADS)?;
    let shard = a.shard.shard()?;
    if shard.is_some() && a.overwrite {
        bail!("--overwrite with --shard/--shards would let every shard delete the others' tiles: run one convert --overwrite (or delete the output) first, then the shards");
    }
    // Every shard computes the same assignment over all datasets together.
    let mine = match shard {
        Some(k) => Some(cli_shard::my_convert_tiles(&jobs, k)?),
        None => None,
    };
    let opts = RunOptions { threads, overwrite: a.overwrite, quiet };
    let mut failed = 0;
    for job in &jobs {
        tracing::debug!("job: {job:?}");
        let only = mine.as_ref().map(|m| m.get(job.name.as_str()).cloned().unwrap_or_default());
        match convert_tiles(job, &opts, only.as_ref()) {
            Ok(s) => println!(
                "{}: {} tiles ({} written now{}), {} rows, sum {}, {}, {:.1} s, peak RSS {} MB -> {}",
                if a.name.is_none() && a.config.is_none() {
                    format!("{} (name from the file name; --name to choose another)", s.name)
                } else {
                    s.name.clone()
                },
                s.tiles,
                s.written,
                cli_shard::shard_status(shard, s.complete),
                s.rows,
                s.value_sum,
                if s.source_grid { "passthrough: the source grid as it is".to_string() } else { s.method.clone() },
                s.seconds,
                peak_rss_bytes() / (1 << 20),
                s.url
            ),
            Err(e) => {
                failed += 1;
                if jobs.len() == 1 {
                    return Err(e.into());
                }
                eprintln!("error: {}: {}", job.name, one_line(&e.into()));
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} datasets failed", jobs.len());
    }
    Ok(())
}

fn run_preview(a: PreviewArgs, quiet: bool) -> Result<()> {
    use rasterstage::preview::{self, LoadTarget, OutFile, PreviewOptions};
    let (root, name) = match (&a.dataset_url, &a.from, &a.dataset) {
        (Some(u), _, _) => preview::split_dataset_url(u),
        (None, Some(f), Some(d)) => (f.clone(), d.clone()),
        _ => bail!("give the dataset as <root>/<dataset>, or --from ROOT --dataset NAME"),
    };
    let mut opts =
        PreviewOptions::from_flags(a.width.as_deref(), a.method.as_deref(), a.ramp.as_deref(), a.stretch.as_deref())?;
    (opts.column, opts.tiles, opts.quiet) = (a.column.clone(), a.tiles, quiet);
    if a.db.database_url.is_some() {
        if !a.tiles {
            bail!("--database-url marks failed loads on the tile overlay: add --tiles");
        }
        opts.loads = Some(LoadTarget {
            conn: rasterstage::load::pg::ConnSpec::resolve(a.db.database_url.as_deref(), None)?,
            schema: a.db.schema.clone().unwrap_or_else(|| "public".to_string()),
            table_prefix: a.db.table_prefix.clone().unwrap_or_default(),
        });
    }
    let out = OutFile::create(std::path::Path::new(&a.out))?;
    let (ds, m) = preview::open_dataset(&Store::open_existing(&root)?, &name)?;
    let p = preview::render(&ds, &m, &opts)?;
    out.commit(&p.png)?;
    println!("{} -> {}", p.summary(), a.out);
    Ok(())
}

fn run_inspect(a: InspectArgs) -> Result<()> {
    let root = Store::open_existing(&a.root)?;
    let list = rasterstage::inspect::inspect(&root)?;
    let loaded = cli_load::loaded(&a.db, &root)?;
    if a.preview {
        let opts = rasterstage::preview::PreviewOptions::default();
        let written = rasterstage::preview::write_beside(&root, &opts)?;
        let total = written.len();
        let mut failed = 0;
        for (name, r) in written {
            match r {
                Ok(url) => eprintln!("{name}: preview -> {url}"),
                Err(e) => {
                    failed += 1;
                    eprintln!("error: {name}: preview: {}", one_line(&e.into()));
                }
            }
        }
        if failed > 0 {
            bail!("{failed} of {total} previews failed");
        }
    }
    if a.json {
        let mut v = serde_json::to_value(&list)?;
        if let (Some((schema, loaded)), Some(items)) = (&loaded, v.as_array_mut()) {
            for d in items {
                let n = d["name"].as_str().and_then(|n| loaded.get(n)).map_or(0, |l| l.0);
                d["loaded_tiles"] = n.into();
                d["loaded_schema"] = schema.clone().into();
            }
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if list.is_empty() {
        println!("no staged datasets under {}", root.url());
        return Ok(());
    }
    println!(
        "{:<20} {:<10} {:<8} {:<12} {:<8} {:>13} {:>12} {:>11} {:>14} {:>14}",
        "dataset", "status", "format", "method", "dtype", "shape", "resolution", "tiles", "rows", "value_sum"
    );
    // The schema is printed because "loaded 0/6" in the default schema (public) is what a
    // load into another schema looks like when --schema is left out.
    let loaded_col = |name: &str| match &loaded {
        Some((schema, l)) => format!(
            "  loaded {} (schema {schema})",
            l.get(name).map_or_else(|| "0/?".to_string(), |(n, t)| format!("{n}/{t}"))
        ),
        None => String::new(),
    };
    for d in list {
        println!(
            "{:<20} {:<10} {:<8} {:<12} {:<8} {:>13} {:>12} {:>11} {:>14} {:>14}{}",
            d.name,
            format!("{:?}", d.status).to_lowercase(),
            format!("{:?}", d.format).to_lowercase(),
            d.method,
            d.dtype,
            format!("{}x{}", d.shape[0], d.shape[1]),
            format!("{:.6}", d.resolution[0]),
            format!("{}/{}", d.tiles_done, d.tiles_total),
            d.rows,
            human(d.value_sum),
            loaded_col(&d.name)
        );
    }
    Ok(())
}
