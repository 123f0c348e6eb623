//! The GDAL side: opening a source raster, its grid and nodata, and windowed reads.
//!
//! A `gdal::Dataset` is `Send` but not `Sync`, so every worker thread opens its own
//! [`Source`]. The GDAL block cache is bounded once per process by [`init_gdal`].

use crate::dtype::DataType;
use crate::grid::{Grid, GridError};
use gdal::raster::GdalType;
use gdal::Dataset;
use serde::{Deserialize, Serialize};
use std::sync::Once;

/// Errors opening or reading a source raster; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A local file that does not exist.
    #[error("{0}: no such file; check the path (use /vsis3/... or s3://... for objects)")]
    Missing(String),
    /// GDAL cannot open the file as a raster.
    #[error("{0}: not a raster GDAL can open ({1})")]
    NotRaster(String, String),
    /// The band number is not in the file.
    #[error("{path}: band {band} does not exist (the file has {count} band(s)); pick one with --band")]
    BadBand {
        /// The file.
        path: String,
        /// The band asked for.
        band: usize,
        /// How many bands the file has.
        count: usize,
    },
    /// A cell type rasterstage does not read.
    #[error("{0}: cell type {1} is not supported (supported: Byte, UInt16, Int16, UInt32, Int32, Float32, Float64)")]
    BadType(String, String),
    /// The geotransform is unusable.
    #[error(transparent)]
    Grid(#[from] GridError),
    /// No geotransform at all.
    #[error("{0}: has no geotransform (not georeferenced); assign one with gdal_translate -a_ullr/-a_srs")]
    NoTransform(String),
    /// A windowed read failed.
    #[error("{path}: reading rows {row0}..{row1}, cols {col0}..{col1} failed: {reason}")]
    Read {
        /// The file.
        path: String,
        /// First row.
        row0: usize,
        /// End row.
        row1: usize,
        /// First column.
        col0: usize,
        /// End column.
        col1: usize,
        /// GDAL's message.
        reason: String,
    },
}

/// What identifies a source's content cheaply: a changed file gets a different fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Size in bytes (from GDAL's VSI stat, so /vsis3/ works too).
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
}

/// Everything about a source band that the conversion needs, without the open handle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// The path as given by the user.
    pub path: String,
    /// The band number (1-based).
    pub band: usize,
    /// Cell type.
    pub dtype: DataType,
    /// Nodata value (`--nodata` or the file's).
    #[serde(with = "crate::stage::manifest::json_opt_f64")]
    pub nodata: Option<f64>,
    /// The source grid.
    pub grid: Grid,
    /// Size and mtime.
    pub fingerprint: Fingerprint,
}

/// GDAL block cache in MB unless `GDAL_CACHEMAX` is set. Every source block is decoded
/// once per strip, so the cache only has to hold the block row two strips share; GDAL's
/// default (5% of RAM) just grows the process. Measured on a 43200 x 21600 Byte GeoTIFF:
/// 16 MB was faster than 64 MB (2.5 s vs 3.1 s) and 85 MB lighter.
pub const DEFAULT_CACHE_MB: &str = "32";

/// Bounds GDAL's block cache unless the user set `GDAL_CACHEMAX`, and passes S3 settings
/// from the AWS variables to `/vsis3/`.
pub fn init_gdal() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // GDAL prints its errors to stderr itself, which would add lines to rasterstage's own
        // one-line error (e.g. "ERROR 1: PROJ: ... crs not found" before "error: target CRS
        // ..."). Every failure GDAL reports reaches the caller as an error anyway, so log
        // failures at debug level; warnings stay visible.
        gdal::config::set_error_handler(|kind, num, msg| match kind {
            gdal::errors::CplErrType::Warning => tracing::warn!("GDAL: {msg}"),
            gdal::errors::CplErrType::None | gdal::errors::CplErrType::Debug => tracing::trace!("GDAL: {msg}"),
            _ => tracing::debug!("GDAL error {num}: {msg}"),
        });
        if std::env::var_os("GDAL_CACHEMAX").is_none() {
            let _ = gdal::config::set_config_option("GDAL_CACHEMAX", DEFAULT_CACHE_MB);
        }
        if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
            // GDAL wants host:port plus a separate HTTPS switch, and path-style addressing
            // for S3-compatible servers.
            let https = endpoint.starts_with("https://");
            let host = endpoint.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
            let _ = gdal::config::set_config_option("AWS_S3_ENDPOINT", host);
            let _ = gdal::config::set_config_option("AWS_HTTPS", if https { "YES" } else { "NO" });
            let _ = gdal::config::set_config_option("AWS_VIRTUAL_HOSTING", "FALSE");
        }
    });
}

/// The path GDAL opens: `s3://bucket/key` becomes `/vsis3/bucket/key`.
pub fn gdal_path(path: &str) -> String {
    match path.strip_prefix("s3://") {
        Some(rest) => format!("/vsis3/{rest}"),
        None => path.to_string(),
    }
}

fn vsi_stat(path: &str) -> Option<Fingerprint> {
    let c = std::ffi::CString::new(path).ok()?;
    // SAFETY: on Linux GDAL's VSIStatBufL is the C library's `struct stat64` (opaque in the
    // bindings), which VSIStatL fills; zeroed is a valid initial value.
    unsafe {
        let mut st: libc::stat64 = std::mem::zeroed();
        if gdal_sys::VSIStatL(c.as_ptr(), &mut st as *mut libc::stat64 as *mut gdal_sys::VSIStatBufL) != 0 {
            return None;
        }
        Some(Fingerprint { size: st.st_size as u64, mtime: st.st_mtime })
    }
}

/// An open source band: one per worker thread.
pub struct Source {
    /// What was read from the file.
    pub info: SourceInfo,
    dataset: Dataset,
}

impl Source {
    /// Opens band `band` of `path`; `nodata` overrides the file's nodata.
    ///
    /// # Errors
    /// A [`SourceError`] naming the file for anything unusable.
    pub fn open(path: &str, band: usize, nodata: Option<f64>) -> Result<Source, SourceError> {
        init_gdal();
        let gpath = gdal_path(path);
        if !gpath.starts_with("/vsi") && !gpath.contains(':') && !std::path::Path::new(&gpath).exists() {
            return Err(SourceError::Missing(path.to_string()));
        }
        let dataset = Dataset::open(&gpath).map_err(|e| {
            let reason = match e {
                // GDAL says nothing when no driver recognises the file: say it for it.
                gdal::errors::GdalError::NullPointer { msg, .. } if msg.trim().is_empty() => {
                    "no GDAL driver recognises its format".to_string()
                }
                other => other.to_string(),
            };
            SourceError::NotRaster(path.to_string(), reason)
        })?;
        let count = dataset.raster_count();
        if count == 0 {
            return Err(SourceError::NotRaster(path.to_string(), "it has no raster bands".into()));
        }
        if band == 0 || band > count {
            return Err(SourceError::BadBand { path: path.to_string(), band, count });
        }
        let rb = dataset.rasterband(band).map_err(|e| SourceError::NotRaster(path.to_string(), e.to_string()))?;
        let type_name = rb.band_type().name();
        let dtype =
            DataType::parse(&type_name).ok_or_else(|| SourceError::BadType(path.to_string(), type_name.clone()))?;
        let nodata = nodata.or_else(|| rb.no_data_value());
        let gt = dataset.geo_transform().map_err(|_| SourceError::NoTransform(path.to_string()))?;
        let (crs_wkt, epsg) = match dataset.spatial_ref() {
            Ok(srs) => {
                let wkt = srs.to_wkt().unwrap_or_default();
                let epsg =
                    srs.auth_code().ok().filter(|_| srs.auth_name().as_deref() == Some("EPSG")).map(|c| c as u32);
                (wkt, epsg)
            }
            Err(_) => (String::new(), None),
        };
        let (w, h) = dataset.raster_size();
        let grid = Grid::from_geotransform(path, gt, w, h, crs_wkt, epsg)?;
        let fingerprint = vsi_stat(&gpath).unwrap_or(Fingerprint { size: 0, mtime: 0 });
        Ok(Source { info: SourceInfo { path: path.to_string(), band, dtype, nodata, grid, fingerprint }, dataset })
    }

    /// The open GDAL dataset (for the warper).
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// Reads source rows `rows` and columns `cols` into `buf` (resized to fit), row-major.
    ///
    /// # Errors
    /// [`SourceError::Read`] naming the file and the window.
    pub fn read<T: GdalType + Copy + Default>(
        &self,
        rows: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
        buf: &mut Vec<T>,
    ) -> Result<(), SourceError> {
        // GDAL overwrites every cell: only grow (and so zero) the part that is new.
        buf.resize(rows.len() * cols.len(), T::default());
        self.read_into(rows, cols, buf)
    }

    /// Reads source rows `rows` and columns `cols` into `out`, which holds exactly that many
    /// cells, row-major.
    ///
    /// # Errors
    /// [`SourceError::Read`] naming the file and the window.
    pub fn read_into<T: GdalType + Copy>(
        &self,
        rows: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
        out: &mut [T],
    ) -> Result<(), SourceError> {
        let (nr, nc) = (rows.len(), cols.len());
        if nr == 0 || nc == 0 {
            return Ok(());
        }
        let err = |reason: String| SourceError::Read {
            path: self.info.path.clone(),
            row0: rows.start,
            row1: rows.end,
            col0: cols.start,
            col1: cols.end,
            reason,
        };
        let band = self.dataset.rasterband(self.info.band).map_err(|e| err(e.to_string()))?;
        band.read_into_slice::<T>((cols.start as isize, rows.start as isize), (nc, nr), (nc, nr), out, None)
            .map_err(|e| err(e.to_string()))
    }
}
