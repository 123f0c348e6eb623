//! Deciding what a conversion does: the target grid, and whether cells are copied
//! (passthrough), resampled by our kernels (same CRS) or warped by GDAL (other CRS).

use crate::dtype::DataType;
use crate::grid::{aligned_grid, checked_size, count_text, snap, Bounds, Grid, GridError};
use crate::limits::MAX_WINDOW_CELLS;
use crate::resample::axis::{AxisMap, PointMap};
use crate::resample::{Method, Resampling};
use crate::source::SourceInfo;
use gdal::spatial_ref::SpatialRef;

/// Errors choosing the target grid.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Grid geometry problems (bad resolution, empty bounds).
    #[error(transparent)]
    Grid(#[from] GridError),
    /// A CRS string GDAL does not understand.
    #[error("target CRS {0:?} is not understood by GDAL ({1}); use e.g. EPSG:4326")]
    BadCrs(String, String),
    /// Reprojection without a resolution.
    #[error("reprojecting {path} to {crs} needs a target resolution in that CRS's units: pass --resolution")]
    NeedResolution {
        /// The source.
        path: String,
        /// The target CRS.
        crs: String,
    },
    /// The source has no CRS, but a target CRS was asked for.
    #[error("{0} has no CRS, so it cannot be reprojected; assign one with gdal_translate -a_srs")]
    NoSourceCrs(String),
    /// Finding the source's extent in the target CRS failed.
    #[error("cannot find the extent of {0} in {1} ({2}); pass --bounds MINX MINY MAXX MAXY in the target CRS")]
    Transform(String, String, String),
    /// One target cell covers more source cells than may be read at once.
    #[error("{path}: one target cell covers up to {} source cells ({} x {}), more than the limit of {MAX_WINDOW_CELLS} read at once: choose a finer --resolution (resampling.target_resolution), or downsample in steps (e.g. gdalwarp -tr to an intermediate raster first)", count_text(*.cells), count_text(.fx.ceil()), count_text(.fy.ceil()))]
    TooCoarse {
        /// The source.
        path: String,
        /// Source cells of one target cell, at most.
        cells: f64,
        /// Source columns per target cell.
        fx: f64,
        /// Source rows per target cell.
        fy: f64,
    },
    /// A `--nodata` the source's cell type cannot hold: no cell could ever equal it.
    #[error("{path}: --nodata {value} cannot be a value of its {dtype} cells, so no cell would be nodata: give a whole number from {min} to {max} (nodata: in a config)")]
    NodataType {
        /// The source.
        path: String,
        /// The value asked for.
        value: f64,
        /// The source's cell type.
        dtype: &'static str,
        /// The type's smallest value.
        min: f64,
        /// The type's largest value.
        max: f64,
    },
}

/// How the target cells are computed.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// The target grid is on the source grid's lattice: cells are copied bit-exactly.
    /// Target cell (r, c) is source cell (r + dr, c + dc).
    Passthrough { dr: i64, dc: i64 },
    /// Same CRS, area-weighted kernels (sum, average, mode, min, max): target rows and
    /// columns onto source rows and columns.
    Areal { rows: AxisMap, cols: AxisMap },
    /// Same CRS, sampled at cell centres (nearest, bilinear).
    Point { rows: PointMap, cols: PointMap },
    /// Another CRS, or a method without a kernel of our own: GDAL's warper, window by
    /// window, with the whole grid's kernel scale ([`Plan::warp_scale`]); `sum` to another
    /// CRS is our own footprint kernel instead ([`crate::warp::sum_window`]).
    Warp,
}

/// What the user asked for about the target grid.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct GridRequest {
    /// Target resolution (x, y), positive; `None` keeps the source's.
    pub(crate) resolution: Option<(f64, f64)>,
    /// Target CRS (anything GDAL's SetFromUserInput takes); `None` keeps the source's.
    pub(crate) crs: Option<String>,
    /// Target bounds in the target CRS.
    pub(crate) bounds: Option<Bounds>,
    /// Relative tolerance for "same resolution" (passthrough).
    pub(crate) tolerance: f64,
    /// Align to multiples of the resolution (`-tap`); when false and the resolution matches,
    /// the source grid is kept as it is.
    pub(crate) align: bool,
    /// Whether passthrough is allowed at all (`allow_skip_resampling`).
    pub(crate) allow_passthrough: bool,
    /// Window size the target grid is cut into: [`plan`] refuses a grid of more than
    /// [`crate::limits::MAX_TILES`] windows before they are listed (0: not checked).
    pub(crate) window: usize,
    /// The `--nodata` override (not the file's own nodata, which GDAL may hold in any type):
    /// [`plan`] refuses one the source's cell type cannot hold.
    pub(crate) nodata_override: Option<f64>,
}

/// The decided conversion.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The output grid.
    pub(crate) target: Grid,
    /// The method (ignored for passthrough).
    pub(crate) method: Method,
    pub(crate) kind: Kind,
    /// Output cell type and nodata.
    pub(crate) dtype: DataType,
    pub(crate) nodata: Option<f64>,
    /// For [`Kind::Warp`]: the warper's kernel scale (x, y) for the whole grid, given to
    /// every window's warp so that the cells do not depend on the windows.
    pub(crate) warp_scale: Option<(f64, f64)>,
}

impl Plan {
    /// Whether the cells are copied or resampled, and with which method.
    pub(crate) fn resampling(&self) -> Resampling {
        match self.kind {
            Kind::Passthrough { .. } => Resampling::Passthrough,
            _ => Resampling::Resampled(self.method),
        }
    }

    /// "passthrough" or the method name, as recorded in dataset.json and PostgreSQL.
    pub(crate) fn method_label(&self) -> &'static str {
        self.resampling().name()
    }

    /// Whether the cells are copied.
    pub(crate) fn is_passthrough(&self) -> bool {
        matches!(self.kind, Kind::Passthrough { .. })
    }
}

fn same_crs(a: &str, b: &str) -> bool {
    a == b || matches!((SpatialRef::from_wkt(a), SpatialRef::from_wkt(b)), (Ok(x), Ok(y)) if x == y)
}

/// Decides the conversion of `src` for `req` with `method`.
///
/// # Errors
/// A [`PlanError`] for an unusable request.
pub(crate) fn plan(src: &SourceInfo, req: &GridRequest, method: Method) -> Result<Plan, PlanError> {
    // A `--nodata` that no cell of the source's type can equal would otherwise treat every
    // cell as valid without a word.
    if let (Some(value), Some((min, max))) = (req.nodata_override, src.dtype.int_range()) {
        if !holds(src.dtype, value) {
            return Err(PlanError::NodataType { path: src.path.clone(), value, dtype: src.dtype.name(), min, max });
        }
    }
    let p = plan_target(src, req, method)?;
    if matches!(p.kind, Kind::Areal { .. }) {
        let sg = &src.grid;
        // Source cells one target cell overlaps, at most: a partial cell at each edge.
        let fx = (p.target.dx / sg.dx).abs();
        let fy = (p.target.dy / sg.dy).abs();
        let cells = (fx.ceil() + 1.0).min(sg.width as f64) * (fy.ceil() + 1.0).min(sg.height as f64);
        if cells.is_nan() || cells > MAX_WINDOW_CELLS as f64 {
            return Err(PlanError::TooCoarse { path: src.path.clone(), cells, fx, fy });
        }
    }
    Ok(p)
}

/// Whether a cell of type `t` can equal `v` (NaN, a fraction or a value out of range cannot
/// be an integer cell).
fn holds(t: DataType, v: f64) -> bool {
    t.int_range().is_none_or(|(min, max)| v.fract() == 0.0 && v >= min && v <= max)
}

/// `target` when it is within the grid and tile limits: checked before anything is
/// allocated per cell, row, column or window of it.
fn checked(target: Grid, req: &GridRequest) -> Result<Grid, GridError> {
    checked_size(target.width as f64, target.height as f64)?;
    if req.window > 0 {
        target.check_windows(req.window)?;
    }
    Ok(target)
}

fn plan_target(src: &SourceInfo, req: &GridRequest, method: Method) -> Result<Plan, PlanError> {
    let sg = &src.grid;
    // Resolve the target CRS to WKT so that equal CRSs compare equal.
    let (crs_wkt, epsg) = match &req.crs {
        None => (sg.crs_wkt.clone(), sg.epsg),
        Some(s) => {
            let srs = SpatialRef::from_definition(s).map_err(|e| PlanError::BadCrs(s.clone(), e.to_string()))?;
            let epsg = srs.auth_code().ok().filter(|_| srs.auth_name().as_deref() == Some("EPSG")).map(|c| c as u32);
            (srs.to_wkt().map_err(|e| PlanError::BadCrs(s.clone(), e.to_string()))?, epsg)
        }
    };
    let reproject = req.crs.is_some() && !same_crs(&sg.crs_wkt, &crs_wkt);
    if reproject {
        if sg.crs_wkt.is_empty() {
            return Err(PlanError::NoSourceCrs(src.path.clone()));
        }
        let (rx, ry) = req.resolution.ok_or_else(|| PlanError::NeedResolution {
            path: src.path.clone(),
            crs: req.crs.clone().unwrap_or_default(),
        })?;
        let ds = open(src, &crs_wkt, req)?;
        // Without --bounds, the source's extent in the target CRS as gdalwarp finds it.
        let bounds = match req.bounds {
            Some(b) => b,
            None => crate::warp::suggested_bounds(&ds, &crs_wkt).map_err(transform_error(src, req))?,
        };
        let target = checked(aligned_grid(&crs_wkt, epsg, rx, ry, bounds)?, req)?;
        return warp_plan(src, &ds, target, method, req);
    }

    let (rx, ry) = req.resolution.unwrap_or((sg.dx, -sg.dy));
    if !(rx > 0.0 && ry > 0.0) {
        return Err(GridError::BadResolution(rx, ry).into());
    }
    let close = |a: f64, b: f64| (a - b).abs() <= req.tolerance * b.abs();
    let same_res = close(sg.dx, rx) && close(-sg.dy, ry);
    let target = if same_res && !req.align && req.bounds.is_none() {
        sg.clone()
    } else {
        // At the same resolution, on the source's own cell size, so the copy stays bit-exact.
        let (rx, ry) = if same_res { (sg.dx, -sg.dy) } else { (rx, ry) };
        aligned_grid(&sg.crs_wkt, sg.epsg, rx, ry, req.bounds.unwrap_or_else(|| sg.bounds()))?
    };
    let target = checked(target, req)?;
    if same_res && req.allow_passthrough && target.same_lattice(sg, 1e-9) {
        // Offsets are clamped far outside both grids (a target far from the source overlaps
        // none of it either way), so that no index arithmetic on them can overflow.
        let far = (1i64 << 40) as f64;
        let dc = snap((target.x0 - sg.x0) / sg.dx).clamp(-far, far) as i64;
        let dr = snap((target.y0 - sg.y0) / sg.dy).clamp(-far, far) as i64;
        let target = Grid { dx: sg.dx, dy: sg.dy, ..target };
        let extends = dr < 0
            || dc < 0
            || dr + target.height as i64 > sg.height as i64
            || dc + target.width as i64 > sg.width as i64;
        let nodata = output_nodata(src, Method::Nearest, src.dtype, !extends);
        return Ok(Plan {
            target,
            method,
            kind: Kind::Passthrough { dr, dc },
            dtype: src.dtype,
            nodata,
            warp_scale: None,
        });
    }
    if !method.has_own_kernel() {
        let ds = open(src, &crs_wkt, req)?;
        return warp_plan(src, &ds, target, method, req);
    }
    let kind = if method.is_areal() {
        Kind::Areal {
            rows: AxisMap::areal(sg.y0, sg.dy, sg.height, target.y0, target.dy, target.height),
            cols: AxisMap::areal(sg.x0, sg.dx, sg.width, target.x0, target.dx, target.width),
        }
    } else {
        Kind::Point {
            rows: PointMap::new(sg.y0, sg.dy, sg.height, target.y0, target.dy, target.height),
            cols: PointMap::new(sg.x0, sg.dx, sg.width, target.x0, target.dx, target.width),
        }
    };
    let dtype = method.output_type(src.dtype);
    let nodata = output_nodata(src, method, dtype, false);
    Ok(Plan { target, method, kind, dtype, nodata, warp_scale: None })
}

/// The source dataset, for GDAL's extent and scale computations.
fn open(src: &SourceInfo, crs_wkt: &str, req: &GridRequest) -> Result<gdal::Dataset, PlanError> {
    crate::source::init_gdal();
    gdal::Dataset::open(crate::source::gdal_path(&src.path)).map_err(|e| {
        PlanError::Transform(src.path.clone(), req.crs.clone().unwrap_or_else(|| crs_wkt.to_string()), e.to_string())
    })
}

/// A [`PlanError::Transform`] about `src` and the target CRS, with GDAL's message.
fn transform_error<'a>(src: &'a SourceInfo, req: &'a GridRequest) -> impl Fn(String) -> PlanError + 'a {
    |e| PlanError::Transform(src.path.clone(), req.crs.clone().unwrap_or_default(), e)
}

/// A [`Kind::Warp`] plan onto `target`, with the whole grid's kernel scale.
fn warp_plan(
    src: &SourceInfo,
    ds: &gdal::Dataset,
    target: Grid,
    method: Method,
    req: &GridRequest,
) -> Result<Plan, PlanError> {
    let scale = crate::warp::grid_scale(ds, &target).map_err(transform_error(src, req))?;
    tracing::debug!("{}: warper kernel scale {scale:?} for the whole grid", src.path);
    let dtype = method.output_type(src.dtype);
    let nodata = output_nodata(src, method, dtype, false);
    Ok(Plan { target, method, kind: Kind::Warp, dtype, nodata, warp_scale: Some(scale) })
}

/// The output nodata: NaN for float outputs computed from another type and for `sum` (a sum
/// can equal any number the source used as nodata); else the source's when the output type
/// can hold it; else the type's largest value (NaN for floats). `keep_none` keeps "no nodata"
/// for an exact copy of a raster that has none.
fn output_nodata(src: &SourceInfo, method: Method, dtype: DataType, keep_none: bool) -> Option<f64> {
    if dtype != src.dtype || method == Method::Sum {
        return Some(f64::NAN);
    }
    match src.nodata {
        Some(v) if holds(dtype, v) => Some(v),
        _ if keep_none => None,
        _ => Some(dtype.int_range().map_or(f64::NAN, |(_, max)| max)),
    }
}
