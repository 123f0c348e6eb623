//! `config.yml` and command-line overrides, merged in one order: built-in defaults, then the
//! config file, then flags. `schemas/config.schema.json` describes the same shape; serde
//! enforces it here (unknown keys and wrong types are errors naming the key and line).

use crate::grid::Bounds;
use crate::name::DatasetName;
use crate::pipeline::ConvertJob;
use crate::plan::GridRequest;
use crate::resample::Method;
use crate::stage::Format;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Default window (tile) size in target cells.
pub const DEFAULT_WINDOW: usize = 1024;
/// Default staging root.
pub const DEFAULT_OUT: &str = "./staging";
/// Default relative tolerance for "same resolution".
pub const DEFAULT_TOLERANCE: f64 = 1e-9;

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
}

/// A resolution: one number for both axes, or `[x, y]`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Resolution {
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
    /// Datasets to convert.
    pub datasets: Vec<DatasetConfig>,
    /// Target grid and methods.
    #[serde(default)]
    pub resampling: ResamplingConfig,
    /// Where and how to stage.
    #[serde(default)]
    pub output: OutputConfig,
    /// PostgreSQL connection for `load`.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// Retries, timeouts and concurrency of object store requests (s3://).
    #[serde(default)]
    pub storage: StorageConfig,
    /// What `merge --config` merges.
    #[serde(default)]
    pub merge: Option<MergeConfig>,
}

/// The `merge:` section: staged datasets (under `output.uri`) merged into one dataset with
/// a column per input.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeConfig {
    /// Name of the merged dataset (its folder and table); default `merged`.
    pub name: Option<String>,
    /// The datasets to merge, in column order.
    pub datasets: Vec<String>,
    /// `outer` (a cell where any dataset is valid, the default) or `inner` (every dataset).
    pub how: Option<String>,
    /// `parquet` (default) or `zarr`.
    pub format: Option<String>,
    /// Zarr version (2 or 3) with `format: zarr`; default `output.zarr_version`, else 3.
    pub zarr_version: Option<u8>,
    /// Staging root of the merged dataset; default `output.uri`.
    pub uri: Option<String>,
    /// Window (tile) size of the merged grid; default the first dataset's.
    pub window: Option<usize>,
}

/// One dataset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// Name (safe SQL identifier; `-` becomes `_`).
    pub name: String,
    /// Raster path or URL.
    pub path: String,
    /// Data kind, mapped to a method by `resampling.strategies`.
    pub data_type: Option<String>,
    /// Band number (default 1).
    pub band: Option<usize>,
    /// Informational band name (the original pipeline's `band_name`).
    pub band_name: Option<String>,
    /// Method for this dataset, overriding the strategy.
    #[serde(alias = "resampling_method")]
    pub method: Option<String>,
    /// Nodata override.
    pub nodata: Option<f64>,
    /// Whether to convert it (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// The `resampling:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResamplingConfig {
    /// Target resolution; absent keeps each source's.
    pub target_resolution: Option<Resolution>,
    /// Target CRS; absent keeps each source's.
    pub target_crs: Option<String>,
    /// Target bounds `[minx, miny, maxx, maxy]`; sharing them makes every dataset's
    /// `(row_idx, col_idx)` identical for the same cell.
    pub target_bounds: Option<[f64; 4]>,
    /// Relative tolerance for "same resolution".
    #[serde(default = "default_tolerance")]
    pub resolution_tolerance: f64,
    /// Copy cells when the source is already on the target grid.
    #[serde(default = "yes")]
    pub allow_skip_resampling: bool,
    /// Align to multiples of the resolution (gdalwarp -tap).
    #[serde(default = "yes")]
    pub align: bool,
    /// Method per data kind.
    #[serde(default)]
    pub strategies: BTreeMap<String, String>,
    /// Window (tile) size in target cells.
    #[serde(default = "default_window")]
    pub window_size: usize,
    /// Worker threads (default: CPU cores).
    pub threads: Option<usize>,
}

fn default_tolerance() -> f64 {
    DEFAULT_TOLERANCE
}
fn default_window() -> usize {
    DEFAULT_WINDOW
}

impl Default for ResamplingConfig {
    fn default() -> Self {
        ResamplingConfig {
            target_resolution: None,
            target_crs: None,
            target_bounds: None,
            resolution_tolerance: DEFAULT_TOLERANCE,
            allow_skip_resampling: true,
            align: true,
            strategies: BTreeMap::new(),
            window_size: DEFAULT_WINDOW,
            threads: None,
        }
    }
}

/// The `output:` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// `parquet` (default) or `zarr`.
    pub format: Option<String>,
    /// Staging root (local folder or s3://bucket/prefix).
    pub uri: Option<String>,
    /// Zarr version (3 default, 2 for GDAL < 3.8).
    pub zarr_version: Option<u8>,
}

/// The `database:` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Connection URL (DATABASE_URL and --database-url take precedence).
    pub url: Option<String>,
    /// Schema for the tables.
    pub schema: Option<String>,
    /// Prefix for dataset table names.
    pub table_prefix: Option<String>,
}

/// The `storage:` section: how requests to an object store are retried and bounded.
/// `RASTERSTAGE_S3_*` variables of the same names override it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Retries of one request after a 5xx, a timeout or a dropped connection.
    pub max_retries: usize,
    /// No retry starts later than this many seconds after a request's first attempt.
    pub retry_timeout_secs: f64,
    /// Time limit of one HTTP request in seconds.
    pub request_timeout_secs: f64,
    /// Requests in flight at once.
    pub max_concurrent_requests: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            max_retries: crate::store::DEFAULT_MAX_RETRIES,
            retry_timeout_secs: crate::store::DEFAULT_RETRY_TIMEOUT_SECS as f64,
            request_timeout_secs: crate::store::DEFAULT_REQUEST_TIMEOUT_SECS as f64,
            max_concurrent_requests: crate::store::DEFAULT_MAX_CONCURRENT_REQUESTS,
        }
    }
}

impl StorageConfig {
    /// The store options these settings give.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key of a value out of range.
    pub fn options(&self, path: &str) -> Result<crate::store::StorageOptions, ConfigError> {
        let secs = |key: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(std::time::Duration::from_secs_f64(v))
            } else {
                Err(ConfigError::Invalid(
                    format!("{path}: storage.{key}"),
                    format!("must be a positive number, got {v}"),
                ))
            }
        };
        if self.max_concurrent_requests == 0 {
            return Err(ConfigError::Invalid(
                format!("{path}: storage.max_concurrent_requests"),
                "must be at least 1".into(),
            ));
        }
        Ok(crate::store::StorageOptions {
            max_retries: self.max_retries,
            retry_timeout: secs("retry_timeout_secs", self.retry_timeout_secs)?,
            request_timeout: secs("request_timeout_secs", self.request_timeout_secs)?,
            max_concurrent_requests: self.max_concurrent_requests,
            ..Default::default()
        })
    }
}

/// The built-in method per data kind, as the original pipeline had them.
pub fn default_strategies() -> BTreeMap<String, String> {
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
    pub fn load(path: &str) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_string(), e))?;
        let mut cfg = Config::parse(path, &text)?;
        // Relative paths in a config mean "next to the config", wherever it is run from.
        let base = std::path::Path::new(path).parent().unwrap_or(std::path::Path::new(""));
        for d in &mut cfg.datasets {
            d.path = rebase(base, &d.path);
        }
        if let Some(uri) = &cfg.output.uri {
            cfg.output.uri = Some(rebase(base, uri));
        }
        if let Some(uri) = cfg.merge.as_ref().and_then(|m| m.uri.clone()) {
            cfg.merge.as_mut().expect("merge section").uri = Some(rebase(base, &uri));
        }
        Ok(cfg)
    }

    /// Parses config text; `path` is only for messages.
    ///
    /// # Errors
    /// [`ConfigError::Parse`].
    pub fn parse(path: &str, text: &str) -> Result<Config, ConfigError> {
        serde_yaml::from_str(text).map_err(|e| ConfigError::Parse(path.to_string(), e.to_string()))
    }
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
    pub format: Option<String>,
    /// `--resolution` / `--tr`.
    pub resolution: Option<(f64, f64)>,
    /// `--target-crs`.
    pub target_crs: Option<String>,
    /// `--bounds` / `--te`.
    pub bounds: Option<[f64; 4]>,
    /// `--method`.
    pub method: Option<String>,
    /// `--window`.
    pub window: Option<usize>,
    /// `--zarr-version`.
    pub zarr_version: Option<u8>,
    /// `--band`.
    pub band: Option<usize>,
    /// `--nodata`.
    pub nodata: Option<f64>,
    /// `--resolution-tolerance`.
    pub tolerance: Option<f64>,
    /// `--no-align`.
    pub no_align: bool,
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
pub fn jobs_from_config(path: &str, cfg: &Config, o: &Overrides) -> Result<Vec<ConvertJob>, ConfigError> {
    let mut strategies = default_strategies();
    strategies.extend(cfg.resampling.strategies.clone());
    let mut jobs = Vec::new();
    for (i, d) in cfg.datasets.iter().enumerate() {
        let what = format!("{path}: datasets[{i}] ({})", d.name);
        if !d.enabled || (!o.only.is_empty() && !o.only.iter().any(|n| n.replace('-', "_") == d.name.replace('-', "_")))
        {
            continue;
        }
        let name = DatasetName::new(&d.name).map_err(|e| ConfigError::Invalid(what.clone(), e.to_string()))?;
        let method = match (&o.method, &d.method, &d.data_type) {
            (Some(m), _, _) => Some(parse_method("--method", m)?),
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
        let r = &cfg.resampling;
        let job = resolve(
            name,
            d.path.clone(),
            o.band.or(d.band).unwrap_or(1),
            o.nodata.or(d.nodata),
            method,
            o,
            Base {
                resolution: r.target_resolution.map(Resolution::xy),
                crs: r.target_crs.clone(),
                bounds: r.target_bounds,
                tolerance: r.resolution_tolerance,
                align: r.align,
                allow_passthrough: r.allow_skip_resampling,
                window: r.window_size,
                format: cfg.output.format.clone(),
                zarr_version: cfg.output.zarr_version,
                out: cfg.output.uri.clone(),
            },
        )
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

/// Values a job starts from before flags (the config's, or defaults).
#[derive(Debug, Clone, Default)]
pub struct Base {
    /// Target resolution.
    pub resolution: Option<(f64, f64)>,
    /// Target CRS.
    pub crs: Option<String>,
    /// Target bounds.
    pub bounds: Option<[f64; 4]>,
    /// Tolerance.
    pub tolerance: f64,
    /// `-tap` alignment.
    pub align: bool,
    /// Passthrough allowed.
    pub allow_passthrough: bool,
    /// Window size.
    pub window: usize,
    /// Format name.
    pub format: Option<String>,
    /// Zarr version.
    pub zarr_version: Option<u8>,
    /// Staging root.
    pub out: Option<String>,
}

impl Base {
    /// Built-in defaults (no config file).
    pub fn defaults() -> Base {
        Base {
            tolerance: DEFAULT_TOLERANCE,
            align: true,
            allow_passthrough: true,
            window: DEFAULT_WINDOW,
            ..Base::default()
        }
    }
}

/// Applies flags over `base` and validates the result.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the option.
pub fn resolve(
    name: DatasetName,
    source: String,
    band: usize,
    nodata: Option<f64>,
    method: Option<Method>,
    o: &Overrides,
    base: Base,
) -> Result<ConvertJob, ConfigError> {
    let bad = |k: &str, m: String| ConfigError::Invalid(k.to_string(), m);
    let resolution = o.resolution.or(base.resolution);
    if let Some((x, y)) = resolution {
        if !(x > 0.0 && y > 0.0 && x.is_finite() && y.is_finite()) {
            return Err(bad("resolution", format!("must be a positive number, got {x} x {y}")));
        }
    }
    let window = o.window.unwrap_or(base.window);
    if !(16..=16384).contains(&window) {
        return Err(bad("window", format!("must be between 16 and 16384 cells, got {window}")));
    }
    let fmt_name = o.format.clone().or(base.format).unwrap_or_else(|| "parquet".into());
    let format = Format::parse(&fmt_name)
        .ok_or_else(|| bad("format", format!("unknown format {fmt_name:?}; use parquet or zarr")))?;
    let zarr_version = o.zarr_version.or(base.zarr_version).unwrap_or(3);
    if zarr_version != 2 && zarr_version != 3 {
        return Err(bad("zarr_version", format!("must be 2 or 3, got {zarr_version}")));
    }
    if band == 0 {
        return Err(bad("band", "bands are numbered from 1".into()));
    }
    let bounds = o.bounds.or(base.bounds).map(|b| Bounds { minx: b[0], miny: b[1], maxx: b[2], maxy: b[3] });
    let tolerance = o.tolerance.unwrap_or(base.tolerance);
    Ok(ConvertJob {
        name,
        source,
        band,
        nodata,
        method,
        grid: GridRequest {
            resolution,
            crs: o.target_crs.clone().or(base.crs),
            bounds,
            tolerance,
            align: base.align && !o.no_align,
            allow_passthrough: base.allow_passthrough,
        },
        window,
        format,
        zarr_version,
        out: o.out.clone().or(base.out).unwrap_or_else(|| DEFAULT_OUT.into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "datasets:\n  - name: plants\n    path: p.tif\n    data_type: richness_data\n  - name: lc\n    path: l.tif\n    data_type: categorical_data\n    enabled: false\nresampling:\n  target_resolution: 0.05\n";

    #[test]
    fn strategies_and_overrides() {
        let cfg = Config::parse("c.yml", CFG).unwrap();
        let jobs = jobs_from_config("c.yml", &cfg, &Overrides::default()).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].method, Some(Method::Sum));
        assert_eq!(jobs[0].grid.resolution, Some((0.05, 0.05)));
        let o = Overrides { method: Some("average".into()), window: Some(256), ..Default::default() };
        let jobs = jobs_from_config("c.yml", &cfg, &o).unwrap();
        assert_eq!(jobs[0].method, Some(Method::Average));
        assert_eq!(jobs[0].window, 256);
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
}
