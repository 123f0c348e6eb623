//! The `convert` subcommand: arguments and reporting; `rasterstage::config` resolves the
//! jobs and `rasterstage::convert` converts.

use crate::args::{one_line, shard_status, ShardArgs};
use anyhow::{bail, Result};
use clap::Args;
use rasterstage::config::{self, ConvertJobs, Overrides};
use rasterstage::convert::{convert_tiles, shard_tiles, RunOptions};
use rasterstage::limits::MAX_THREADS;
use rasterstage::progress::peak_rss_bytes;
use rasterstage::resample::Method;
use rasterstage::stage::geoparquet::GeoEncoding;
use rasterstage::stage::{Format, ZarrVersion};

/// `convert` arguments (also `plan`'s).
#[derive(Args)]
pub struct ConvertArgs {
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
    /// Staging format [default: parquet].
    #[arg(long, short = 'f', ignore_case = true)]
    format: Option<Format>,
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
    /// Resampling method (gdalwarp names; -r).
    #[arg(long, short = 'r', ignore_case = true)]
    method: Option<Method>,
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
    zarr_version: Option<ZarrVersion>,
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
    #[arg(long, requires = "geoparquet", ignore_case = true)]
    geoparquet_encoding: Option<GeoEncoding>,
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
    pub shard: ShardArgs,
}

impl ConvertArgs {
    fn overrides(&self) -> Overrides {
        let resolution = match (&self.resolution, &self.tr) {
            (Some(r), _) => Some((*r, *r)),
            (None, Some(v)) => Some((v[0], v[1].abs())),
            _ => None,
        };
        Overrides {
            out: self.out.clone(),
            format: self.format,
            resolution,
            target_crs: self.target_crs.clone(),
            bounds: self.bounds.as_ref().map(|b| [b[0], b[1], b[2], b[3]]),
            method: self.method,
            window: self.window,
            zarr_version: self.zarr_version,
            zarr_shard: self.zarr_shard,
            geoparquet: self.geoparquet,
            geoparquet_encoding: self.geoparquet_encoding,
            parquet_compat: self.parquet_compat,
            band: self.band,
            nodata: self.nodata,
            tolerance: self.resolution_tolerance,
            no_align: self.no_align,
            align: self.align,
            only: self.dataset.clone(),
        }
    }

    /// The datasets `convert` would convert with these arguments, and the config's threads.
    ///
    /// # Errors
    /// As [`config::convert_jobs`].
    pub fn jobs(&self) -> Result<ConvertJobs> {
        Ok(config::convert_jobs(
            self.config.as_deref(),
            self.source.as_deref(),
            self.name.as_deref(),
            &self.overrides(),
        )?)
    }
}

/// Runs `convert`; prints one line per dataset.
///
/// # Errors
/// Any dataset failing (after the others ran).
pub fn run(a: ConvertArgs, quiet: bool) -> Result<()> {
    let ConvertJobs { jobs, threads } = a.jobs()?;
    let what = if a.threads.is_some() { "--threads" } else { "resampling.threads" };
    let threads = config::worker_count(a.threads.or(threads), what, MAX_THREADS)?;
    let shard = a.shard.shard()?;
    if shard.is_some() && a.overwrite {
        bail!("--overwrite with --shard/--shards would let every shard delete the others' tiles: run one convert --overwrite (or delete the output) first, then the shards");
    }
    // Every shard computes the same assignment over all datasets together.
    let mine = shard.map(|k| shard_tiles(&jobs, k)).transpose()?;
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
                shard_status(shard, s.complete),
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
