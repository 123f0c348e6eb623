//! `config.yml` and command-line overrides, merged in one order: built-in defaults, then the
//! config file, then flags. `schemas/config.schema.json` describes the same shape; serde
//! enforces it here (unknown keys and wrong types are errors naming the key and line).

use crate::convert::ConvertJob;
use crate::grid::Bounds;
use crate::limits;
use crate::merge::{How, MergeJob};
use crate::name::{BadName, DatasetName};
use crate::resample::Method;
use crate::stage::geoparquet::GeoEncoding;
use crate::stage::parquet::ParquetOptions;
use crate::stage::{Format, ZarrVersion};
use crate::store::{StorageOptions, StoreError};
use crate::target_grid::GridRequest;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Default staging root.
pub(crate) const DEFAULT_OUT: &str = "./staging";
/// Smallest window (tile) side: smaller ones only multiply tiles and requests.
pub(crate) const MIN_WINDOW: usize = limits::MIN_WRITE_WINDOW;
/// Largest window (tile) side of `convert` and `merge` ([`limits::MAX_WRITE_WINDOW`]).
pub(crate) const MAX_WINDOW: usize = limits::MAX_WRITE_WINDOW;

/// Config and override errors, each naming the file, dataset or key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{0}: cannot read config: {1}")]
    Read(String, std::io::Error),
    /// YAML syntax or schema error (serde names the key, line and column).
    #[error("{0}: {1}")]
    Parse(String, String),
    /// A value that parses but is not allowed.
    #[error("{0}: {1}")]
    Invalid(String, String),
    /// A dataset name that cannot be a table name.
    #[error(transparent)]
    Name(#[from] BadName),
    /// A bad `RASTERSTAGE_S3_*` variable.
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// Flags that do not go together, or nothing to work on.
    #[error("{0}")]
    Usage(String),
}

/// A resolution: one number for both axes, or `[x, y]`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
pub(crate) enum Resolution {
    /// Square cells.
    Square(f64),
    /// `[x, y]`.
    Pair([f64; 2]),
}

impl Resolution {
    fn xy(self) -> (f64, f64) {
        match self {
            Resolution::Square(r) => (r, r),
            Resolution::Pair([x, y]) => (x, y),
        }
    }
}

/// The whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The file it was read from, for messages.
    #[serde(skip)]
    pub(crate) path: String,
    /// Datasets to convert.
    pub(crate) datasets: Vec<DatasetConfig>,
    /// Target grid and methods.
    #[serde(default)]
    pub(crate) resampling: ResamplingConfig,
    /// Where and how to stage.
    #[serde(default)]
    pub(crate) output: OutputConfig,
    /// PostgreSQL connection for `load`.
    #[serde(default)]
    pub(crate) database: DatabaseConfig,
    /// How `load` loads (`load.geometry`).
    #[serde(default)]
    pub(crate) load: LoadConfig,
    /// Retries, timeouts and concurrency of object store requests (s3://, gs://, az://).
    #[serde(default)]
    pub(crate) storage: StorageConfig,
    /// What `merge --config` merges.
    #[serde(default)]
    pub(crate) merge: Option<MergeConfig>,
}

/// The `merge:` section: staged datasets (under `output.uri`) merged into one dataset with
/// a column per input.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MergeConfig {
    /// Name of the merged dataset (its folder and table); default `merged`.
    pub(crate) name: Option<String>,
    /// The datasets to merge, in column order.
    pub(crate) datasets: Vec<String>,
    /// `outer` (a cell where any dataset is valid, the default) or `inner` (every dataset).
    pub(crate) how: Option<How>,
    /// `parquet` (default) or `zarr`.
    pub(crate) format: Option<Format>,
    /// Zarr version (2 or 3) with `format: zarr`; default `output.zarr_version`, else 3.
    pub(crate) zarr_version: Option<ZarrVersion>,
    /// Staging root of the merged dataset; default `output.uri`.
    pub(crate) uri: Option<String>,
    /// Window (tile) size of the merged grid; default the first dataset's.
    pub(crate) window: Option<usize>,
}

/// One dataset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DatasetConfig {
    /// Name (safe SQL identifier; `-` becomes `_`).
    pub(crate) name: String,
    /// Raster path or URL.
    pub(crate) path: String,
    /// Data kind, mapped to a method by `resampling.strategies`.
    pub(crate) data_type: Option<String>,
    /// Band number (default 1).
    pub(crate) band: Option<usize>,
    /// Informational band name (the original pipeline's `band_name`): accepted, not used.
    #[serde(rename = "band_name")]
    _band_name: Option<String>,
    /// Method for this dataset, overriding the strategy.
    #[serde(alias = "resampling_method")]
    pub(crate) method: Option<String>,
    /// Nodata override.
    pub(crate) nodata: Option<f64>,
    /// Whether to convert it (default true).
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
}

fn yes() -> bool {
    true
}

/// The `resampling:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ResamplingConfig {
    /// Target resolution; absent keeps each source's.
    pub(crate) target_resolution: Option<Resolution>,
    /// Target CRS; absent keeps each source's.
    pub(crate) target_crs: Option<String>,
    /// Target bounds `[minx, miny, maxx, maxy]`; sharing them makes every dataset's
    /// `(row_idx, col_idx)` identical for the same cell.
    pub(crate) target_bounds: Option<[f64; 4]>,
    /// Relative tolerance for "same resolution".
    pub(crate) resolution_tolerance: f64,
    /// Copy cells when the source is already on the target grid.
    pub(crate) allow_skip_resampling: bool,
    /// Align to multiples of the resolution (gdalwarp -tap). Absent: aligned when a grid
    /// is asked for (`target_resolution`, `target_crs` or `target_bounds`), else the
    /// source grid is copied as it is.
    pub(crate) align: Option<bool>,
    /// Method per data kind.
    pub(crate) strategies: BTreeMap<String, String>,
    /// Window (tile) size in target cells.
    pub(crate) window_size: usize,
    /// Worker threads (default: CPU cores).
    pub(crate) threads: Option<usize>,
}

impl Default for ResamplingConfig {
    fn default() -> Self {
        ResamplingConfig {
            target_resolution: None,
            target_crs: None,
            target_bounds: None,
            resolution_tolerance: 1e-9,
            allow_skip_resampling: true,
            align: None,
            strategies: BTreeMap::new(),
            window_size: 1024,
            threads: None,
        }
    }
}

/// The `output:` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutputConfig {
    /// `parquet` (default) or `zarr`.
    pub(crate) format: Option<Format>,
    /// Staging root (local folder, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix).
    pub(crate) uri: Option<String>,
    /// Zarr version (3 default, 2 for GDAL < 3.11: older GDAL lacks v3's codecs).
    pub(crate) zarr_version: Option<ZarrVersion>,
    /// Sharded Zarr v3: K x K windows per shard object (`--zarr-shard K`).
    pub(crate) zarr_shard: Option<usize>,
    /// GeoParquet tiles (a point geometry column, bbox covering, `geo` metadata).
    pub(crate) geoparquet: Option<bool>,
    /// Encoding of the GeoParquet geometry: `wkb` (default) or `point`.
    pub(crate) geoparquet_encoding: Option<GeoEncoding>,
    /// Only encodings every Parquet reader decodes (no BYTE_STREAM_SPLIT).
    pub(crate) parquet_compat: Option<bool>,
}

/// The `database:` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DatabaseConfig {
    /// Connection URL (DATABASE_URL and --database-url take precedence).
    pub(crate) url: Option<String>,
    /// Schema for the tables.
    pub(crate) schema: Option<String>,
    /// Prefix for dataset table names.
    pub(crate) table_prefix: Option<String>,
}

/// The `load:` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadConfig {
    /// `point`: a PostGIS `geom` column holding each cell's centre (`load --geometry`).
    pub geometry: Option<crate::load::geometry::Geometry>,
}

/// The `storage:` section: how requests to an object store are retried and bounded.
/// `RASTERSTAGE_S3_*` variables of the same names override it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StorageConfig {
    /// Retries of one request after a 5xx, a timeout or a dropped connection.
    pub(crate) max_retries: usize,
    /// No retry starts later than this many seconds after a request's first attempt.
    pub(crate) retry_timeout_secs: f64,
    /// Time limit of one HTTP request in seconds.
    pub(crate) request_timeout_secs: f64,
    /// Requests in flight at once.
    pub(crate) max_concurrent_requests: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        let o = StorageOptions::default();
        StorageConfig {
            max_retries: o.max_retries,
            retry_timeout_secs: o.retry_timeout.as_secs_f64(),
            request_timeout_secs: o.request_timeout.as_secs_f64(),
            max_concurrent_requests: o.max_concurrent_requests,
        }
    }
}

impl StorageConfig {
    /// The store options these settings give.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key of a value out of range, and the range.
    pub(crate) fn options(&self, path: &str) -> Result<crate::store::StorageOptions, ConfigError> {
        let bad = |key: &str, m: String| ConfigError::Invalid(format!("{path}: storage.{key}"), m);
        let secs = |key: &str, v: f64| {
            limits::duration_secs(v).filter(|d| !d.is_zero()).ok_or_else(|| {
                bad(
                    key,
                    format!("must be a number of seconds above 0 and at most {}, got {v}", limits::MAX_DURATION_SECS),
                )
            })
        };
        let count = |key: &str, v: usize, min: usize, max: usize| {
            (min..=max)
                .contains(&v)
                .then_some(v)
                .ok_or_else(|| bad(key, format!("must be at least {min} and at most {max}, got {v}")))
        };
        Ok(crate::store::StorageOptions {
            max_retries: count("max_retries", self.max_retries, 0, limits::MAX_RETRIES)?,
            retry_timeout: secs("retry_timeout_secs", self.retry_timeout_secs)?,
            request_timeout: secs("request_timeout_secs", self.request_timeout_secs)?,
            max_concurrent_requests: count(
                "max_concurrent_requests",
                self.max_concurrent_requests,
                1,
                limits::MAX_CONCURRENT_REQUESTS,
            )?,
            ..Default::default()
        })
    }
}

/// A number of workers (threads or connections): `requested` (from the setting `what`), else
/// one per CPU core; more than `max` is capped at `max` with a warning (a larger number only
/// adds idle threads or connections, never speed).
///
/// # Errors
/// [`ConfigError::Invalid`] for 0.
pub fn worker_count(requested: Option<usize>, what: &str, max: usize) -> Result<usize, ConfigError> {
    match requested {
        Some(0) => Err(ConfigError::Invalid(what.to_string(), "must be at least 1".into())),
        Some(n) if n > max => {
            tracing::warn!("{what} {n} is more than the limit of {max}: using {max}");
            Ok(max)
        }
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get()).min(max)),
    }
}

/// The built-in method per data kind, as the original pipeline had them.
pub(crate) fn default_strategies() -> BTreeMap<String, String> {
    [("richness_data", "sum"), ("continuous_data", "average"), ("categorical_data", "mode")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Config {
    /// Reads and parses a config file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and, for schema errors, the key and line.
    pub(crate) fn load(path: &str) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_string(), e))?;
        let mut cfg = Config::parse(path, &text)?;
        // Relative paths in a config mean "next to the config", wherever it is run from.
        let base = std::path::Path::new(path).parent().unwrap_or(std::path::Path::new(""));
        let uris = [cfg.output.uri.as_mut(), cfg.merge.as_mut().and_then(|m| m.uri.as_mut())];
        for p in cfg.datasets.iter_mut().map(|d| &mut d.path).chain(uris.into_iter().flatten()) {
            *p = rebase(base, p);
        }
        Ok(cfg)
    }

    /// Reads `--config` if given.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_opt(path: Option<&str>) -> Result<Option<Config>, ConfigError> {
        path.map(Config::load).transpose()
    }

    /// Parses config text; `path` is only for messages.
    ///
    /// # Errors
    /// [`ConfigError::Parse`].
    pub(crate) fn parse(path: &str, text: &str) -> Result<Config, ConfigError> {
        let mut cfg: Config =
            serde_yaml::from_str(text).map_err(|e| ConfigError::Parse(path.to_string(), e.to_string()))?;
        cfg.path = path.to_string();
        Ok(cfg)
    }

    /// The names of the enabled datasets, as their folders are named (`-` becomes `_`).
    pub(crate) fn enabled_names(&self) -> Vec<String> {
        self.datasets.iter().filter(|d| d.enabled).map(|d| d.name.replace('-', "_")).collect()
    }
}

/// The storage options of the config's `storage:` section (the defaults without a config),
/// with any `RASTERSTAGE_S3_*` variable applied on top.
///
/// # Errors
/// An invalid `storage:` value or variable, named.
pub fn storage_options(cfg: Option<&Config>) -> Result<StorageOptions, ConfigError> {
    let base = cfg.map_or_else(|| Ok(StorageOptions::default()), |c| c.storage.options(&c.path))?;
    Ok(base.with_env()?)
}

/// What `load`, `verify` and `finalize` work on: a staging root and the datasets under it.
#[derive(Debug, Clone, PartialEq)]
pub struct StagingTarget {
    /// Staging root URL.
    pub root: String,
    /// Only these datasets (empty: every staged dataset).
    pub datasets: Vec<String>,
    /// How the staging store talks to an object store.
    pub storage: StorageOptions,
}

/// The staging root (`--from`, else the config's `output.uri`, else the default root when a
/// config is given) and the datasets (`--dataset`, else the config's enabled ones).
///
/// # Errors
/// [`ConfigError::Usage`] when neither `--from` nor a config is given (`verb` says for
/// what), and invalid storage settings.
pub fn staging_target(
    cfg: Option<&Config>,
    from: Option<&str>,
    datasets: &[String],
    verb: &str,
) -> Result<StagingTarget, ConfigError> {
    let root = match (from, cfg.and_then(|c| c.output.uri.clone())) {
        (Some(f), _) => f.to_string(),
        (None, Some(u)) => u,
        (None, None) if cfg.is_some() => DEFAULT_OUT.to_string(),
        (None, None) => {
            return Err(ConfigError::Usage(format!("nothing to {verb}: give --from ./staging or --config config.yml")))
        }
    };
    let datasets =
        if !datasets.is_empty() { datasets.to_vec() } else { cfg.map(Config::enabled_names).unwrap_or_default() };
    Ok(StagingTarget { root, datasets, storage: storage_options(cfg)? })
}

/// Where tables go: the config's connection URL, schema and table prefix under the flags.
#[derive(Debug, Clone, PartialEq)]
pub struct DbTarget {
    /// The config's `database.url` (the flag and `DATABASE_URL` take precedence).
    pub config_url: Option<String>,
    /// Schema of the tables (`public` unless set).
    pub schema: String,
    /// Prefix of every dataset table's name.
    pub prefix: String,
    /// The config's `load.geometry` (`--geometry` takes precedence).
    pub geometry: Option<crate::load::geometry::Geometry>,
}

/// The schema and table prefix of the flags, else the config's `database:` section, else
/// `public` and none.
pub fn db_target(cfg: Option<&Config>, schema: Option<&str>, prefix: Option<&str>) -> DbTarget {
    let dbc = cfg.map(|c| c.database.clone()).unwrap_or_default();
    DbTarget {
        config_url: dbc.url,
        schema: schema.map(str::to_string).or(dbc.schema).unwrap_or_else(|| "public".to_string()),
        prefix: prefix.map(str::to_string).or(dbc.table_prefix).unwrap_or_default(),
        geometry: cfg.and_then(|c| c.load.geometry),
    }
}

/// The datasets `convert` (and `plan`) work on, and the config's thread count.
#[derive(Debug, Clone)]
pub struct ConvertJobs {
    /// One job per dataset, in config order.
    pub jobs: Vec<ConvertJob>,
    /// The config's `resampling.threads`.
    pub threads: Option<usize>,
}

/// Resolves `convert`'s datasets: every enabled dataset of the config at `config`, or the one
/// ad hoc `source` (named `name`, else after the file), with the flags `o` on top.
///
/// # Errors
/// [`ConfigError`] naming the file, dataset, key or flag.
pub fn convert_jobs(
    config: Option<&str>,
    source: Option<&str>,
    name: Option<&str>,
    o: &Overrides,
) -> Result<ConvertJobs, ConfigError> {
    match (config, source) {
        (Some(path), None) => {
            let cfg = Config::load(path)?;
            let jobs = jobs_from_config(path, &cfg, o)?;
            if jobs.is_empty() {
                return Err(ConfigError::Invalid(path.to_string(), "no enabled datasets to convert".into()));
            }
            Ok(ConvertJobs { jobs, threads: cfg.resampling.threads })
        }
        (None, Some(src)) => {
            let name = name.map_or_else(|| DatasetName::from_source(src), DatasetName::new)?;
            name.check_not_reserved("")?;
            let base = Base { storage: storage_options(None)?, ..Base::default() };
            let job = resolve(name, src.to_string(), o.band.unwrap_or(1), o.nodata, o.method, o, base)?;
            Ok(ConvertJobs { jobs: vec![job], threads: None })
        }
        (Some(_), Some(_)) => Err(ConfigError::Usage("give either a source raster or --config, not both".into())),
        (None, None) => {
            Err(ConfigError::Usage("nothing to convert: give a source raster or --config config.yml".into()))
        }
    }
}

/// Name of the merged dataset when neither --out, --name nor the config gives one.
pub(crate) const DEFAULT_MERGE_NAME: &str = "merged";

/// `merge`'s flags (each overrides the config's `merge:` section).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MergeFlags {
    /// Staging root of the datasets to merge [default: the config's output.uri, else ./staging].
    #[arg(long)]
    pub from: Option<String>,
    /// Datasets to merge, in column order (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    pub datasets: Vec<String>,
    /// Folder of the merged dataset; its last segment is the dataset's name [default: <from>/<name>].
    #[arg(long, short = 'o')]
    pub out: Option<String>,
    /// Name of the merged dataset and of its table [default: --out's last segment, else merged].
    #[arg(long)]
    pub name: Option<String>,
    /// outer: cells where any dataset is valid; inner: cells where every dataset is valid [default: outer].
    #[arg(long, ignore_case = true)]
    pub how: Option<How>,
    /// Output format: parquet (tiles: row_idx, col_idx, x, y, one nullable column per dataset)
    /// or zarr (<name>.zarr: one array per dataset, fill value = its nodata, shared x/y) [default: parquet].
    #[arg(long, short = 'f', ignore_case = true)]
    pub format: Option<Format>,
    /// Zarr format version with --format zarr: 3, or 2 for GDAL before 3.11 [default: the config's output.zarr_version, else 3].
    #[arg(long)]
    pub zarr_version: Option<ZarrVersion>,
    /// Window (tile) size of the merged grid [default: the first dataset's].
    #[arg(long)]
    pub window: Option<usize>,
    /// `--to-postgres`: the name must also make a table name with the prefix.
    #[arg(skip)]
    pub to_postgres: bool,
    /// `--table-prefix`.
    #[arg(skip)]
    pub table_prefix: Option<String>,
}

/// Splits a dataset folder URL into (staging root, last segment).
fn split_out(out: &str) -> (String, String) {
    let t = out.trim_end_matches('/');
    match t.rsplit_once('/') {
        Some((root, last)) if !root.is_empty() && !root.ends_with(':') && !root.ends_with(":/") => {
            (root.to_string(), last.to_string())
        }
        Some((root, last)) => (format!("{root}/"), last.to_string()),
        None => (".".to_string(), t.to_string()),
    }
}

/// Resolves `merge`: the flags over the config's `merge:` section (and its `output:` and
/// `database:` sections) over the defaults.
///
/// # Errors
/// [`ConfigError`] naming the flag or key.
pub fn merge_job(cfg: Option<&Config>, f: &MergeFlags) -> Result<MergeJob, ConfigError> {
    let mc = cfg.and_then(|c| c.merge.clone());
    if let (Some(c), None, true) = (cfg, &mc, f.datasets.is_empty()) {
        return Err(ConfigError::Invalid(
            c.path.clone(),
            "no merge: section (merge: {name, datasets, how, format, uri}) and no --datasets".into(),
        ));
    }
    let mc = mc.unwrap_or_default();
    let from =
        f.from.clone().or_else(|| cfg.and_then(|c| c.output.uri.clone())).unwrap_or_else(|| DEFAULT_OUT.to_string());
    let names = if f.datasets.is_empty() { &mc.datasets } else { &f.datasets };
    let datasets = names.iter().map(|n| DatasetName::new(n)).collect::<Result<Vec<_>, _>>()?;
    let (out, out_name) = match f.out.as_deref().map(split_out) {
        Some((root, last)) => (root, Some(last)),
        None => (mc.uri.clone().unwrap_or_else(|| from.clone()), None),
    };
    let name_str = match (&f.name, &out_name) {
        (Some(n), Some(last)) if DatasetName::new(n)?.as_str() != DatasetName::new(last)?.as_str() => {
            return Err(ConfigError::Usage(format!(
                "--name {n} and --out (whose last segment names the dataset: {last}) disagree; give one of them"
            )))
        }
        (Some(n), _) => n.clone(),
        (None, Some(last)) => last.clone(),
        (None, None) => mc.name.clone().unwrap_or_else(|| DEFAULT_MERGE_NAME.to_string()),
    };
    let name = DatasetName::new(&name_str).map_err(|e| {
        ConfigError::Invalid("the merged dataset's name (--out's last segment or --name)".into(), e.to_string())
    })?;
    let prefix = db_target(cfg, None, f.table_prefix.as_deref()).prefix;
    // Refused before anything is staged: `load` would refuse the table anyway.
    name.check_not_reserved(if f.to_postgres { &prefix } else { "" })?;
    let window = f.window.or(mc.window);
    if let Some(w) = window {
        check_window(w, if f.window.is_some() { "--window" } else { "merge.window" })?;
    }
    Ok(MergeJob {
        from,
        datasets,
        out,
        name,
        how: f.how.or(mc.how).unwrap_or_default(),
        format: f.format.or(mc.format).unwrap_or(Format::Parquet),
        zarr_version: f
            .zarr_version
            .or(mc.zarr_version)
            .or_else(|| cfg.and_then(|c| c.output.zarr_version))
            .unwrap_or_default(),
        window,
        storage: storage_options(cfg)?,
    })
}

/// Refuses a window side `convert` and `merge` do not write; `what` names the flag or key.
fn check_window(w: usize, what: &str) -> Result<(), ConfigError> {
    if (MIN_WINDOW..=MAX_WINDOW).contains(&w) {
        return Ok(());
    }
    Err(ConfigError::Invalid(
        what.into(),
        format!(
            "must be between {MIN_WINDOW} and {MAX_WINDOW} cells (a window's {} cells at most are held in memory at once), got {w}",
            limits::MAX_WINDOW_CELLS
        ),
    ))
}

/// `p` relative to `base` when it is a relative local path (not a URL, /vsi path or GDAL
/// connection string such as `NETCDF:"f.nc":var`).
fn rebase(base: &std::path::Path, p: &str) -> String {
    let local = !p.contains("://") && !p.starts_with("/vsi") && !p.contains(':');
    if local && std::path::Path::new(p).is_relative() && !base.as_os_str().is_empty() {
        base.join(p).to_string_lossy().into_owned()
    } else {
        p.to_string()
    }
}

/// Flag values that override the config (or stand alone without one).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--out`.
    pub out: Option<String>,
    /// `--format`.
    pub format: Option<Format>,
    /// `--resolution` / `--tr`.
    pub resolution: Option<(f64, f64)>,
    /// `--target-crs`.
    pub target_crs: Option<String>,
    /// `--bounds` / `--te`.
    pub bounds: Option<[f64; 4]>,
    /// `--method`.
    pub method: Option<Method>,
    /// `--window`.
    pub window: Option<usize>,
    /// `--zarr-version`.
    pub zarr_version: Option<ZarrVersion>,
    /// `--zarr-shard`.
    pub zarr_shard: Option<usize>,
    /// `--geoparquet`.
    pub geoparquet: bool,
    /// `--geoparquet-encoding`.
    pub geoparquet_encoding: Option<GeoEncoding>,
    /// `--parquet-compat`.
    pub parquet_compat: bool,
    /// `--band`.
    pub band: Option<usize>,
    /// `--nodata`.
    pub nodata: Option<f64>,
    /// `--resolution-tolerance`.
    pub tolerance: Option<f64>,
    /// `--no-align`.
    pub no_align: bool,
    /// `--align`.
    pub align: bool,
    /// `--dataset`: only these names.
    pub only: Vec<String>,
}

fn parse_method(what: &str, s: &str) -> Result<Method, ConfigError> {
    Method::parse(s).ok_or_else(|| {
        ConfigError::Invalid(what.to_string(), format!("unknown method {s:?}; use one of {}", Method::names()))
    })
}

/// Resolves the config's enabled datasets (filtered by `--dataset`) plus overrides into jobs.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the dataset and the key.
pub(crate) fn jobs_from_config(path: &str, cfg: &Config, o: &Overrides) -> Result<Vec<ConvertJob>, ConfigError> {
    let storage = storage_options(Some(cfg))?;
    let mut strategies = default_strategies();
    strategies.extend(cfg.resampling.strategies.clone());
    let mut jobs = Vec::new();
    for (i, d) in cfg.datasets.iter().enumerate() {
        let what = format!("{path}: datasets[{i}] ({})", d.name);
        if !d.enabled || (!o.only.is_empty() && !o.only.iter().any(|n| n.replace('-', "_") == d.name.replace('-', "_")))
        {
            continue;
        }
        // A reserved table name is refused before anything is staged: `load` would refuse it anyway.
        let prefix = cfg.database.table_prefix.as_deref().unwrap_or("");
        let name = DatasetName::new(&d.name)
            .and_then(|n| n.check_not_reserved(prefix).map(|()| n))
            .map_err(|e| ConfigError::Invalid(what.clone(), e.to_string()))?;
        let method = match (&o.method, &d.method, &d.data_type) {
            (Some(m), _, _) => Some(*m),
            (None, Some(m), _) => Some(parse_method(&format!("{what}.method"), m)?),
            (None, None, Some(t)) => {
                let m = strategies.get(t).ok_or_else(|| {
                    ConfigError::Invalid(
                        format!("{what}.data_type"),
                        format!("no strategy for data_type {t:?}; add it under resampling.strategies or set method"),
                    )
                })?;
                Some(parse_method(&format!("{path}: resampling.strategies.{t}"), m)?)
            }
            (None, None, None) => None,
        };
        let base = Base { resampling: cfg.resampling.clone(), output: cfg.output.clone(), storage: storage.clone() };
        let job = resolve(name, d.path.clone(), o.band.or(d.band).unwrap_or(1), o.nodata.or(d.nodata), method, o, base)
            .map_err(|e| match e {
                ConfigError::Invalid(w, m) => ConfigError::Invalid(format!("{what}: {w}"), m),
                other => other,
            })?;
        jobs.push(job);
    }
    if let Some(missing) =
        o.only.iter().find(|n| !cfg.datasets.iter().any(|d| d.name.replace('-', "_") == n.replace('-', "_")))
    {
        return Err(ConfigError::Invalid(path.to_string(), format!("--dataset {missing:?} is not in the config")));
    }
    Ok(jobs)
}

/// What a job starts from before flags: the config's sections (or their defaults).
#[derive(Debug, Clone, Default)]
pub(crate) struct Base {
    /// The `resampling:` section.
    pub(crate) resampling: ResamplingConfig,
    /// The `output:` section.
    pub(crate) output: OutputConfig,
    /// How stores talk to an object store.
    pub(crate) storage: StorageOptions,
}

/// Applies flags over `base` and validates the result.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the option.
pub(crate) fn resolve(
    name: DatasetName,
    source: String,
    band: usize,
    nodata: Option<f64>,
    method: Option<Method>,
    o: &Overrides,
    base: Base,
) -> Result<ConvertJob, ConfigError> {
    let (r, out) = (&base.resampling, &base.output);
    let bad = |k: &str, m: String| ConfigError::Invalid(k.to_string(), m);
    // Each error names the flag when the value came from one, else the config key.
    let key = |flag: bool, f: &'static str, k: &'static str| if flag { f } else { k };
    let resolution = o.resolution.or(r.target_resolution.map(Resolution::xy));
    if let Some((x, y)) = resolution {
        if !(x > 0.0 && y > 0.0 && x.is_finite() && y.is_finite()) {
            let k = key(o.resolution.is_some(), "--resolution", "resampling.target_resolution");
            return Err(bad(k, format!("must be a positive number, got {x} x {y}")));
        }
    }
    let window = o.window.unwrap_or(r.window_size);
    check_window(window, key(o.window.is_some(), "--window", "resampling.window_size"))?;
    let format = o.format.or(out.format).unwrap_or(Format::Parquet);
    let zarr_version = o.zarr_version.or(out.zarr_version).unwrap_or_default();
    let zarr_shard = zarr_shard(o, out, format, zarr_version, window)?;
    if band == 0 {
        return Err(bad("band", "bands are numbered from 1".into()));
    }
    let parquet = parquet_options(o, out, format)?;
    let bounds = o.bounds.or(r.target_bounds);
    if let Some(b @ [minx, miny, maxx, maxy]) = bounds {
        if !(b.iter().all(|v| v.is_finite()) && minx < maxx && miny < maxy) {
            return Err(bad(
                key(o.bounds.is_some(), "--bounds", "resampling.target_bounds"),
                format!("must be 4 finite numbers MINX MINY MAXX MAXY with MINX < MAXX and MINY < MAXY, got {minx} {miny} {maxx} {maxy}"),
            ));
        }
    }
    let bounds = bounds.map(|b| Bounds { minx: b[0], miny: b[1], maxx: b[2], maxy: b[3] });
    let tolerance = o.tolerance.unwrap_or(r.resolution_tolerance);
    if !(0.0..=limits::MAX_RESOLUTION_TOLERANCE).contains(&tolerance) {
        return Err(bad(
            key(o.tolerance.is_some(), "--resolution-tolerance", "resampling.resolution_tolerance"),
            format!("must be from 0 to {} (relative), got {tolerance}", limits::MAX_RESOLUTION_TOLERANCE),
        ));
    }
    let crs = o.target_crs.clone().or_else(|| r.target_crs.clone());
    // With no grid asked for, the source grid is the target as it is: real files rarely have
    // an origin on a whole multiple of their cell size, and -tap would turn their copy into a
    // resampling. Asking for a grid (or --align) brings -tap back, as gdalwarp users expect.
    let grid_asked = resolution.is_some() || crs.is_some() || bounds.is_some();
    let align = !o.no_align && (o.align || r.align.unwrap_or(grid_asked));
    Ok(ConvertJob {
        name,
        source,
        band,
        nodata,
        method,
        grid: GridRequest {
            resolution,
            crs,
            bounds,
            tolerance,
            align,
            allow_passthrough: r.allow_skip_resampling,
            window,
            // Whether the source's cell type holds it is checked once the source is open.
            nodata_override: nodata,
        },
        window,
        format,
        zarr_version,
        zarr_shard,
        parquet,
        out: o.out.clone().or_else(|| out.uri.clone()).unwrap_or_else(|| DEFAULT_OUT.into()),
        storage: base.storage,
    })
}

/// `--zarr-shard` over `output.zarr_shard`: windows per shard side, refused for anything but
/// Zarr v3 and beyond [`limits::MAX_ZARR_SHARD`] or a shard side over [`MAX_WINDOW`] cells (a
/// shard is one unit of work, bounded like a window).
fn zarr_shard(
    o: &Overrides,
    out: &OutputConfig,
    format: Format,
    zarr_version: ZarrVersion,
    window: usize,
) -> Result<Option<usize>, ConfigError> {
    let Some(k) = o.zarr_shard.or(out.zarr_shard) else { return Ok(None) };
    let what = if o.zarr_shard.is_some() { "--zarr-shard" } else { "output.zarr_shard" };
    let bad = |m: String| Err(ConfigError::Invalid(what.to_string(), m));
    if format != Format::Zarr || zarr_version != ZarrVersion::V3 {
        let now = if format == Format::Zarr { "Zarr v2".to_string() } else { format!("{format:?}").to_lowercase() };
        return bad(format!(
            "sharding is a Zarr v3 feature, not for {now}; use --format zarr (--zarr-version 3) or drop it"
        ));
    }
    if !(1..=limits::MAX_ZARR_SHARD).contains(&k) {
        return bad(format!("must be from 1 to {} windows per shard side, got {k}", limits::MAX_ZARR_SHARD));
    }
    if k * window > MAX_WINDOW {
        return bad(format!(
            "{k} windows of {window} cells make a {}-cell shard side, more than {MAX_WINDOW} (a shard is written as one unit, bounded like a window); use a smaller K or --window",
            k * window
        ));
    }
    Ok(Some(k))
}

/// The Parquet options of flags over `base`, refused for a format that is not Parquet.
fn parquet_options(o: &Overrides, out: &OutputConfig, format: Format) -> Result<ParquetOptions, ConfigError> {
    let bad = |k: &str, m: String| ConfigError::Invalid(k.to_string(), m);
    let encoding = o.geoparquet_encoding.or(out.geoparquet_encoding).unwrap_or(DEFAULT_GEO_ENCODING);
    let geo = o.geoparquet || out.geoparquet.unwrap_or(false);
    let compat = o.parquet_compat || out.parquet_compat.unwrap_or(false);
    if format != Format::Parquet && (geo || compat) {
        let what = match (geo, o.geoparquet, o.parquet_compat) {
            (true, true, _) => "--geoparquet",
            (true, false, _) => "output.geoparquet",
            (false, _, true) => "--parquet-compat",
            _ => "output.parquet_compat",
        };
        return Err(bad(what, "applies to Parquet tiles only; drop it or use --format parquet".into()));
    }
    Ok(ParquetOptions { geoparquet: geo.then_some(encoding), compat })
}

/// GeoParquet's geometry encoding when none is named: WKB, which every GeoParquet reader
/// decodes (the native point encoding needs GDAL 3.8 or later, for one); the two cost the
/// same (docs/BENCHMARKS.md).
pub(crate) const DEFAULT_GEO_ENCODING: GeoEncoding = GeoEncoding::Wkb;

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "datasets:\n  - name: plants\n    path: p.tif\n    data_type: richness_data\n  - name: lc\n    path: l.tif\n    data_type: categorical_data\n    enabled: false\nresampling:\n  target_resolution: 0.05\n";

    #[test]
    fn output_geoparquet_and_parquet_compat() {
        let yml = format!("{CFG}output:\n  geoparquet: true\n  parquet_compat: true\n");
        let cfg = Config::parse("c.yml", &yml).unwrap();
        let jobs = jobs_from_config("c.yml", &cfg, &Overrides::default()).unwrap();
        assert_eq!(jobs[0].parquet, ParquetOptions { geoparquet: Some(GeoEncoding::Wkb), compat: true });
        let o = Overrides { geoparquet_encoding: Some(GeoEncoding::Point), ..Overrides::default() };
        assert_eq!(jobs_from_config("c.yml", &cfg, &o).unwrap()[0].parquet.geoparquet, Some(GeoEncoding::Point));
        // Defaults unchanged: plain tiles.
        let plain = jobs_from_config("c.yml", &Config::parse("c.yml", CFG).unwrap(), &Overrides::default()).unwrap();
        assert_eq!(plain[0].parquet, ParquetOptions::default());
        let zarr = Overrides { format: Some(Format::Zarr), ..Overrides::default() };
        assert!(jobs_from_config("c.yml", &cfg, &zarr).is_err());
    }

    #[test]
    fn strategies_and_overrides() {
        let cfg = Config::parse("c.yml", CFG).unwrap();
        let jobs = jobs_from_config("c.yml", &cfg, &Overrides::default()).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].method, Some(Method::Sum));
        assert_eq!(jobs[0].grid.resolution, Some((0.05, 0.05)));
        let o = Overrides { method: Some(Method::Average), window: Some(256), ..Default::default() };
        let jobs = jobs_from_config("c.yml", &cfg, &o).unwrap();
        assert_eq!(jobs[0].method, Some(Method::Average));
        assert_eq!(jobs[0].window, 256);
    }

    #[test]
    fn align_only_when_a_grid_is_asked_for() {
        let one = |o: &Overrides, base: Base| {
            resolve(DatasetName::new("a").unwrap(), "a.tif".into(), 1, None, None, o, base).unwrap().grid.align
        };
        let d = Base::default;
        assert!(!one(&Overrides::default(), d()), "no grid asked: the source grid as it is");
        assert!(one(&Overrides { resolution: Some((1.0, 1.0)), ..Default::default() }, d()));
        assert!(one(&Overrides { target_crs: Some("EPSG:3035".into()), ..Default::default() }, d()));
        assert!(one(&Overrides { bounds: Some([0.0, 0.0, 1.0, 1.0]), ..Default::default() }, d()));
        assert!(one(&Overrides { align: true, ..Default::default() }, d()));
        let res = Overrides { resolution: Some((1.0, 1.0)), no_align: true, ..Default::default() };
        assert!(!one(&res, d()));
        // A config's target_resolution keeps -tap; its explicit `align:` decides either way.
        let cfg = Config::parse("c.yml", CFG).unwrap();
        assert!(jobs_from_config("c.yml", &cfg, &Overrides::default()).unwrap()[0].grid.align);
        let plain = Config::parse("c.yml", "datasets:\n  - name: a\n    path: a.tif\n").unwrap();
        assert!(!jobs_from_config("c.yml", &plain, &Overrides::default()).unwrap()[0].grid.align);
        let forced =
            Config::parse("c.yml", "datasets:\n  - name: a\n    path: a.tif\nresampling:\n  align: true\n").unwrap();
        assert!(jobs_from_config("c.yml", &forced, &Overrides::default()).unwrap()[0].grid.align);
        let off = Config::parse("c.yml", &format!("{CFG}  align: false\n")).unwrap();
        assert!(!jobs_from_config("c.yml", &off, &Overrides::default()).unwrap()[0].grid.align);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e =
            Config::parse("c.yml", "datasets:\n  - name: a\n    path: b\n    colour: red\n").unwrap_err().to_string();
        assert!(e.contains("colour") && e.contains("line 4"), "{e}");
        let e = Config::parse("c.yml", "datasets: []\nresampling:\n  window_size: big\n").unwrap_err().to_string();
        assert!(e.contains("window_size") || e.contains("line 3"), "{e}");
    }

    #[test]
    fn relative_paths_are_next_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.yml");
        std::fs::write(&p, "datasets:\n  - name: a\n    path: data/a.tif\n  - name: b\n    path: /abs/b.tif\n  - name: c\n    path: s3://bkt/c.tif\noutput:\n  uri: staging\n").unwrap();
        let cfg = Config::load(p.to_str().unwrap()).unwrap();
        assert_eq!(cfg.datasets[0].path, dir.path().join("data/a.tif").to_str().unwrap());
        assert_eq!(cfg.datasets[1].path, "/abs/b.tif");
        assert_eq!(cfg.datasets[2].path, "s3://bkt/c.tif");
        assert_eq!(cfg.output.uri.as_deref(), dir.path().join("staging").to_str());
    }

    #[test]
    fn bad_values() {
        let cfg = Config::parse("c.yml", "datasets:\n  - name: a\n    path: b\n    method: bicubic\n").unwrap();
        let e = jobs_from_config("c.yml", &cfg, &Overrides::default()).unwrap_err().to_string();
        assert!(e.contains("unknown method \"bicubic\""), "{e}");
        let o = Overrides { resolution: Some((0.0, 0.0)), ..Default::default() };
        let cfg = Config::parse("c.yml", "datasets:\n  - name: a\n    path: b\n").unwrap();
        assert!(jobs_from_config("c.yml", &cfg, &o).unwrap_err().to_string().contains("positive"));
    }

    /// The error of the one config dataset `a` with these overrides.
    fn refused(cfg_text: &str, o: &Overrides) -> String {
        let cfg = Config::parse("c.yml", cfg_text).unwrap();
        jobs_from_config("c.yml", &cfg, o).unwrap_err().to_string()
    }

    const ONE: &str = "datasets:\n  - name: a\n    path: b\n";

    #[test]
    fn absurd_flags_name_the_flag_and_the_limit() {
        let bounds = |b: [f64; 4]| Overrides { bounds: Some(b), ..Default::default() };
        for b in [[f64::NAN, 0.0, 1.0, 1.0], [0.0, 0.0, f64::INFINITY, 1.0], [1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 1.0]]
        {
            let e = refused(ONE, &bounds(b));
            assert!(e.contains("--bounds") && e.contains("finite"), "{e}");
        }
        for w in [0, 15, 8193, 16384, 1 << 31, usize::MAX] {
            let e = refused(ONE, &Overrides { window: Some(w), ..Default::default() });
            assert!(e.contains("--window") && e.contains("8192") && e.contains(&w.to_string()), "{e}");
        }
        let o = Overrides { window: Some(MAX_WINDOW), ..Default::default() };
        assert_eq!(jobs_from_config("c.yml", &Config::parse("c.yml", ONE).unwrap(), &o).unwrap()[0].window, 8192);
        for r in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = refused(ONE, &Overrides { resolution: Some((r, r)), ..Default::default() });
            assert!(e.contains("--resolution") && e.contains("positive"), "{e}");
        }
        // --zarr-version 7 is refused by clap (tests/it/limits.rs); the type says why.
        let e = ZarrVersion::try_from(7).unwrap_err();
        assert!(e.contains("2 or 3"), "{e}");
        let e = refused(ONE, &Overrides { band: Some(0), ..Default::default() });
        assert!(e.contains("band") && e.contains("from 1"), "{e}");
        for t in [-1.0, 0.5, f64::NAN] {
            let e = refused(ONE, &Overrides { tolerance: Some(t), ..Default::default() });
            assert!(e.contains("--resolution-tolerance") && e.contains("0.001"), "{e}");
        }
    }

    #[test]
    fn absurd_config_values_name_the_key() {
        let e = refused(&format!("{ONE}resampling:\n  window_size: 100000\n"), &Overrides::default());
        assert!(e.contains("resampling.window_size") && e.contains("8192"), "{e}");
        let e = refused(&format!("{ONE}resampling:\n  target_bounds: [0, 0, .inf, 1]\n"), &Overrides::default());
        assert!(e.contains("resampling.target_bounds"), "{e}");
        let e = refused(&format!("{ONE}resampling:\n  target_resolution: .nan\n"), &Overrides::default());
        assert!(e.contains("resampling.target_resolution"), "{e}");
        let e = Config::parse("c.yml", &format!("{ONE}output:\n  zarr_version: 7\n")).unwrap_err().to_string();
        assert!(e.contains("output.zarr_version"), "{e}");
    }

    #[test]
    fn storage_durations_and_counts_are_bounded() {
        let opts = |yaml: &str| {
            Config::parse("c.yml", &format!("datasets: []\nstorage:\n  {yaml}\n")).unwrap().storage.options("c.yml")
        };
        for v in ["1e300", ".nan", ".inf", "-.inf", "-1", "0", "86401"] {
            for key in ["request_timeout_secs", "retry_timeout_secs"] {
                let e = opts(&format!("{key}: {v}")).unwrap_err().to_string();
                assert!(e.contains(&format!("c.yml: storage.{key}")) && e.contains("86400"), "{key}: {v}: {e}");
            }
        }
        let o = opts("request_timeout_secs: 86400").unwrap();
        assert_eq!(o.request_timeout, std::time::Duration::from_secs(86_400));
        assert_eq!(opts("retry_timeout_secs: 0.5").unwrap().retry_timeout, std::time::Duration::from_millis(500));
        for (yaml, key, limit) in [
            ("max_concurrent_requests: 0", "max_concurrent_requests", "1024"),
            ("max_concurrent_requests: 100000000000", "max_concurrent_requests", "1024"),
            ("max_retries: 101", "max_retries", "100"),
        ] {
            let e = opts(yaml).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(limit), "{e}");
        }
        // Out of range for the integer type: serde names the key.
        let e = Config::parse("c.yml", "datasets: []\nstorage:\n  max_retries: 1e300\n").unwrap_err().to_string();
        assert!(e.contains("max_retries"), "{e}");
        // The store checks the same limits on options built in code.
        let big = crate::store::StorageOptions { max_concurrent_requests: 1 << 40, ..Default::default() };
        assert!(big.validate().unwrap_err().to_string().contains("1024"));
        let long = crate::store::StorageOptions {
            retry_timeout: std::time::Duration::from_secs(1 << 40),
            ..Default::default()
        };
        assert!(long.validate().unwrap_err().to_string().contains("storage.retry_timeout_secs"));
    }

    #[test]
    fn catalogue_names_are_refused_at_convert() {
        let e = refused("datasets:\n  - name: raster_datasets\n    path: b\n", &Overrides::default());
        assert!(e.contains("c.yml: datasets[0] (raster_datasets)") && e.contains("--name"), "{e}");
        let e = refused("datasets:\n  - name: raster-tile-loads\n    path: b\n", &Overrides::default());
        assert!(e.contains("raster_tile_loads") && e.contains("catalogue"), "{e}");
        // With the config's table prefix, prefix + name is what must not collide.
        let text = "datasets:\n  - name: datasets\n    path: b\ndatabase:\n  table_prefix: raster_\n";
        let e = refused(text, &Overrides::default());
        assert!(e.contains("raster_datasets") && e.contains("prefix"), "{e}");
    }

    #[test]
    fn out_splits_into_root_and_name() {
        assert_eq!(split_out("./staging/merged"), ("./staging".into(), "merged".into()));
        assert_eq!(split_out("staging/merged/"), ("staging".into(), "merged".into()));
        assert_eq!(split_out("merged"), (".".into(), "merged".into()));
        assert_eq!(split_out("s3://bucket/merged"), ("s3://bucket".into(), "merged".into()));
        assert_eq!(split_out("/merged"), ("/".into(), "merged".into()));
    }

    #[test]
    fn typed_config_values() {
        let cfg = Config::parse(
            "c.yml",
            &format!("{ONE}output:\n  format: zarr\n  zarr_version: 2\nmerge:\n  datasets: [a]\n  how: full\n"),
        )
        .unwrap();
        assert_eq!(cfg.output.format, Some(Format::Zarr));
        assert_eq!(cfg.output.zarr_version, Some(ZarrVersion::V2));
        assert_eq!(cfg.merge.as_ref().unwrap().how, Some(How::Outer));
        let e = Config::parse("c.yml", &format!("{ONE}output:\n  format: csv\n")).unwrap_err().to_string();
        assert!(e.contains("output.format") && e.contains("csv"), "{e}");
        let e = Config::parse("c.yml", &format!("{ONE}merge:\n  datasets: []\n  how: left\n")).unwrap_err().to_string();
        assert!(e.contains("merge.how"), "{e}");
    }

    #[test]
    fn staging_target_from_flags_or_config() {
        let none = staging_target(None, None, &[], "load").unwrap_err().to_string();
        assert_eq!(none, "nothing to load: give --from ./staging or --config config.yml");
        let t = staging_target(None, Some("st"), &["a".into()], "load").unwrap();
        assert_eq!((t.root.as_str(), t.datasets), ("st", vec!["a".to_string()]));
        let cfg = Config::parse("c.yml", CFG).unwrap();
        let t = staging_target(Some(&cfg), None, &[], "verify").unwrap();
        // Only the enabled dataset; the default root.
        assert_eq!((t.root.as_str(), t.datasets), (DEFAULT_OUT, vec!["plants".to_string()]));
        let cfg =
            Config::parse("c.yml", &format!("{CFG}output:\n  uri: s3://b/p\nstorage:\n  max_retries: 3\n")).unwrap();
        let t = staging_target(Some(&cfg), None, &[], "finalize").unwrap();
        assert_eq!(t.root, "s3://b/p");
        // The config's storage section travels with the target (no process-global setting).
        assert_eq!(t.storage, cfg.storage.options("c.yml").unwrap().with_env().unwrap());
        let bad = Config::parse("c.yml", &format!("{CFG}storage:\n  max_retries: 1000\n")).unwrap();
        let e = staging_target(Some(&bad), None, &[], "load").unwrap_err().to_string();
        assert!(e.contains("c.yml: storage.max_retries"), "{e}");
    }

    #[test]
    fn db_target_flags_over_config() {
        assert_eq!(
            db_target(None, None, None),
            DbTarget { config_url: None, schema: "public".into(), prefix: String::new(), geometry: None }
        );
        let cfg = Config::parse(
            "c.yml",
            &format!("{CFG}database:\n  url: postgres://h/db\n  schema: raster\n  table_prefix: rs_\n"),
        )
        .unwrap();
        let t = db_target(Some(&cfg), None, None);
        assert_eq!(
            (t.config_url.as_deref(), t.schema.as_str(), t.prefix.as_str()),
            (Some("postgres://h/db"), "raster", "rs_")
        );
        let t = db_target(Some(&cfg), Some("s2"), Some(""));
        assert_eq!((t.schema.as_str(), t.prefix.as_str()), ("s2", ""));
    }

    #[test]
    fn convert_jobs_needs_one_source() {
        let o = Overrides::default();
        let e = convert_jobs(None, None, None, &o).unwrap_err().to_string();
        assert!(e.starts_with("nothing to convert"), "{e}");
        let e = convert_jobs(Some("c.yml"), Some("a.tif"), None, &o).unwrap_err().to_string();
        assert!(e.contains("not both"), "{e}");
        let jobs = convert_jobs(None, Some("/data/2019-lc.tif"), None, &o).unwrap();
        assert_eq!(jobs.jobs[0].name.as_str(), "r_2019_lc");
        assert_eq!((jobs.jobs[0].format, jobs.threads), (Format::Parquet, None));
        let o = Overrides { format: Some(Format::Zarr), zarr_version: Some(ZarrVersion::V2), ..o };
        let job = &convert_jobs(None, Some("a.tif"), Some("b"), &o).unwrap().jobs[0];
        assert_eq!((job.name.as_str(), job.format, job.zarr_version), ("b", Format::Zarr, ZarrVersion::V2));
        assert!(convert_jobs(None, Some("a.tif"), Some("raster_datasets"), &o).is_err());
    }

    #[test]
    fn merge_job_resolution() {
        let flags = MergeFlags { datasets: vec!["a".into(), "b".into()], ..Default::default() };
        let j = merge_job(None, &flags).unwrap();
        assert_eq!((j.from.as_str(), j.out.as_str(), j.name.as_str()), (DEFAULT_OUT, DEFAULT_OUT, "merged"));
        assert_eq!((j.how, j.format, j.zarr_version, j.window), (How::Outer, Format::Parquet, ZarrVersion::V3, None));
        let f = MergeFlags { out: Some("s3://b/ab".into()), ..flags.clone() };
        let j = merge_job(None, &f).unwrap();
        assert_eq!((j.out.as_str(), j.name.as_str()), ("s3://b", "ab"));
        let f = MergeFlags { out: Some("st/ab".into()), name: Some("cd".into()), ..flags.clone() };
        assert!(merge_job(None, &f).unwrap_err().to_string().contains("disagree"));
        let f = MergeFlags { window: Some(8), ..flags.clone() };
        assert!(merge_job(None, &f).unwrap_err().to_string().starts_with("--window: must be between"));
        let cfg = Config::parse(
            "c.yml",
            &format!("{CFG}output:\n  uri: st\n  zarr_version: 2\nmerge:\n  name: m\n  datasets: [a, b]\n  how: inner\n  format: zarr\n  window: 64\n"),
        )
        .unwrap();
        let j = merge_job(Some(&cfg), &MergeFlags::default()).unwrap();
        assert_eq!((j.from.as_str(), j.name.as_str(), j.datasets.len()), ("st", "m", 2));
        assert_eq!((j.how, j.format, j.zarr_version, j.window), (How::Inner, Format::Zarr, ZarrVersion::V2, Some(64)));
        let e = merge_job(Some(&Config::parse("c.yml", CFG).unwrap()), &MergeFlags::default()).unwrap_err().to_string();
        assert!(e.starts_with("c.yml: no merge: section"), "{e}");
    }

    #[test]
    fn worker_counts_are_capped() {
        assert_eq!(worker_count(Some(20_000), "--threads", limits::MAX_THREADS).unwrap(), limits::MAX_THREADS);
        assert_eq!(worker_count(Some(3), "--threads", limits::MAX_THREADS).unwrap(), 3);
        let e = worker_count(Some(0), "--jobs", limits::MAX_JOBS).unwrap_err().to_string();
        assert!(e.contains("--jobs") && e.contains("at least 1"), "{e}");
        assert!((1..=limits::MAX_THREADS).contains(&worker_count(None, "--threads", limits::MAX_THREADS).unwrap()));
    }
}
