//! Reprojection (and the methods rasterstage has no kernel of its own for) through GDAL's
//! warper, one output window at a time, with the same result as one gdalwarp run over the
//! whole grid.
//!
//! Two things make a window's cells independent of how the grid was cut:
//! - every window's transformer maps the *whole* target grid's pixel coordinates (the window
//!   offset is added to GDAL's window-relative coordinates, exactly, before the whole grid's
//!   geotransform is applied), so each cell centre is computed as gdalwarp computes it;
//! - GDAL's warper would choose the kernel's scale (`XSCALE`/`YSCALE`: destination over
//!   source pixel size) per chunk from that chunk's source window, so bilinear, cubic and
//!   lanczos output would change with the window size. [`grid_scale`] computes the scale once
//!   for the whole grid, as the warper does for a single chunk, and every window gets it.
//!
//! `sum` is not GDAL's warper but [`sum_window`]: GDAL 3.6's sum kernel leaves seams between
//! chunks, so rasterstage computes its weights itself from the whole grid's transformer.
//!
//! The output extent without `--bounds` comes from `GDALSuggestedWarpOutput2`
//! ([`suggested_bounds`]), as gdalwarp finds it: it samples the edges and the interior, so
//! sources whose corners do not transform (full-disk geostationary, polar) work.

use crate::dtype::Sample;
use crate::grid::{Bounds, Grid, Window};
use crate::resample::footprint::{self, bbox, Corners};
use crate::resample::{Method, SourceBlock};
use crate::source::{Source, SourceError};
use gdal::cpl::CslStringList;
use gdal::raster::GdalType;
use gdal::{Dataset, DriverManager};
use std::ffi::{c_int, c_void};
use std::ops::Range;

/// Warp memory per worker, bytes: a window whose source region needs more is warped in
/// several chunks, which the fixed scale keeps identical.
const WARP_MEMORY: f64 = 64.0 * 1024.0 * 1024.0;

/// Steps per edge of the destination window sampled by GDAL's `ComputeSourceWindow`
/// (its `SAMPLE_STEPS` default).
const SAMPLE_STEPS: usize = 21;

fn gdal_alg(m: Method) -> gdal_sys::GDALResampleAlg::Type {
    use gdal_sys::GDALResampleAlg as A;
    match m {
        Method::Sum => A::GRA_Sum,
        Method::Average => A::GRA_Average,
        Method::Mode => A::GRA_Mode,
        Method::Min => A::GRA_Min,
        Method::Max => A::GRA_Max,
        Method::Nearest => A::GRA_NearestNeighbour,
        Method::Bilinear => A::GRA_Bilinear,
        Method::Cubic => A::GRA_Cubic,
        Method::CubicSpline => A::GRA_CubicSpline,
        Method::Lanczos => A::GRA_Lanczos,
        Method::Med => A::GRA_Med,
        Method::Q1 => A::GRA_Q1,
        Method::Q3 => A::GRA_Q3,
    }
}

/// The kernel radius in source pixels at scale 1 (GDAL's `GWKGetFilterRadius`), used to
/// give every window's source region a margin large enough for the fixed scale.
fn kernel_radius(m: Method) -> f64 {
    match m {
        Method::Cubic | Method::CubicSpline => 2.0,
        Method::Lanczos => 3.0,
        _ => 1.0,
    }
}

/// A failed read of window `w` of `src`, the reason prefixed with what was being done.
fn read_error<'a>(src: &'a Source, w: Window, doing: &'static str) -> impl Fn(String) -> SourceError + Copy + 'a {
    move |reason| {
        let (rows, cols) = (w.row0..w.row0 + w.rows, w.col0..w.col0 + w.cols);
        SourceError::read(&src.info.path, rows, cols, format!("{doing}: {reason}"))
    }
}

fn last_gdal_error() -> String {
    // SAFETY: CPLGetLastErrorMsg returns a pointer to a thread-local, NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(gdal_sys::CPLGetLastErrorMsg()).to_string_lossy().into_owned() }
}

/// GDAL's generic source-pixel <-> target transformer, destroyed on drop.
struct Transformer(*mut c_void);

impl Transformer {
    /// From `ds`'s pixels to `dst_wkt` coordinates, or to the pixels of `dst_gt` when given
    /// (exactly, no approximation: gdalwarp `-et 0`).
    fn new(ds: &Dataset, dst_wkt: &str, dst_gt: Option<&[f64; 6]>) -> Result<Transformer, String> {
        let mut opts = CslStringList::new();
        opts.set_name_value("DST_SRS", dst_wkt).map_err(|e| e.to_string())?;
        // SAFETY: the dataset outlives the transformer (both live within one call of ours).
        let t =
            unsafe { gdal_sys::GDALCreateGenImgProjTransformer2(ds.c_dataset(), std::ptr::null_mut(), opts.as_ptr()) };
        if t.is_null() {
            return Err(last_gdal_error());
        }
        let t = Transformer(t);
        if let Some(gt) = dst_gt {
            // SAFETY: a GenImgProj transformer and a 6-element geotransform.
            unsafe { gdal_sys::GDALSetGenImgProjTransformerDstGeoTransform(t.0, gt.as_ptr()) };
        }
        Ok(t)
    }

    /// Target pixel (x, y) to source pixel with `dst_to_src`, else the reverse, in place;
    /// `ok[i]` tells which points transformed.
    fn transform(&self, dst_to_src: bool, x: &mut [f64], y: &mut [f64]) -> Vec<bool> {
        let mut z = vec![0.0; x.len()];
        let mut ok = vec![0; x.len()];
        // SAFETY: four arrays of x.len() elements.
        unsafe {
            gdal_sys::GDALGenImgProjTransform(
                self.0,
                c_int::from(dst_to_src),
                x.len() as c_int,
                x.as_mut_ptr(),
                y.as_mut_ptr(),
                z.as_mut_ptr(),
                ok.as_mut_ptr(),
            )
        };
        // A point that lands at no finite place did not transform either.
        (0..x.len()).map(|i| ok[i] != 0 && x[i].is_finite() && y[i].is_finite()).collect()
    }
}

impl Drop for Transformer {
    fn drop(&mut self) {
        // SAFETY: created by GDALCreateGenImgProjTransformer2, destroyed once.
        unsafe { gdal_sys::GDALDestroyGenImgProjTransformer(self.0) }
    }
}

/// The extent gdalwarp gives `ds` in `dst_wkt` when no `-te` is given
/// (`GDALSuggestedWarpOutput2`: edges and interior sampled, poles and the antimeridian handled).
///
/// # Errors
/// GDAL's message when no part of the source transforms.
pub(crate) fn suggested_bounds(ds: &Dataset, dst_wkt: &str) -> Result<Bounds, String> {
    let t = Transformer::new(ds, dst_wkt, None)?;
    let mut gt = [0.0; 6];
    let (mut px, mut lines) = (0, 0);
    let mut ext = [0.0; 4];
    // SAFETY: the transformer matches GDALGenImgProjTransform; the out arrays have 6 and 4
    // elements as GDAL writes.
    let rc = unsafe {
        gdal_sys::GDALSuggestedWarpOutput2(
            ds.c_dataset(),
            Some(gdal_sys::GDALGenImgProjTransform),
            t.0,
            gt.as_mut_ptr(),
            &mut px,
            &mut lines,
            ext.as_mut_ptr(),
            0,
        )
    };
    if rc != gdal_sys::CPLErr::CE_None {
        return Err(last_gdal_error());
    }
    if !ext.iter().all(|v| v.is_finite()) {
        return Err("no finite extent".into());
    }
    Ok(Bounds { minx: ext[0], miny: ext[1], maxx: ext[2], maxy: ext[3] })
}

/// The warper's kernel scale (`XSCALE`, `YSCALE`: destination over source pixel size) for
/// the whole `target` grid in one chunk, as GDAL's `ComputeSourceWindow` derives it: the
/// destination's edges (and, when some edge point does not transform, a grid over the
/// whole destination) mapped to source pixels, the grid's size over their extent clamped
/// to the source raster.
///
/// # Errors
/// GDAL's message when the transformer cannot be built.
pub(crate) fn grid_scale(ds: &Dataset, target: &Grid) -> Result<(f64, f64), String> {
    let t = Transformer::new(ds, &target.crs_wkt, Some(&target.geotransform()))?;
    let (w, h) = (target.width as f64, target.height as f64);
    let extent = |grid: bool| {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        let step = 1.0 / (SAMPLE_STEPS - 1) as f64;
        if grid {
            for i in 0..SAMPLE_STEPS {
                for j in 0..SAMPLE_STEPS {
                    x.push(i as f64 * step * w);
                    y.push(j as f64 * step * h);
                }
            }
        } else {
            for i in 0..SAMPLE_STEPS {
                let r = i as f64 * step;
                x.extend([r * w, r * w, 0.0, w]);
                y.extend([0.0, h, r * h, r * h]);
            }
        }
        let ok = t.transform(true, &mut x, &mut y);
        (bbox((0..x.len()).filter(|&i| ok[i]).map(|i| (x[i], y[i]))), ok.iter().all(|&ok| ok))
    };
    let e = match extent(false) {
        (e, true) => e,
        _ => extent(true).0,
    };
    // The source window is clamped to the raster before the scale is taken from it.
    let (sw, sh) = (ds.raster_size().0 as f64, ds.raster_size().1 as f64);
    let span = |lo: f64, hi: f64, n: f64| hi.min(n) - lo.max(0.0);
    let scale = |n: f64, span: f64| if span > 0.0 && span.is_finite() { n / span } else { 1.0 };
    Ok((scale(w, span(e.0, e.2, sw)), scale(h, span(e.1, e.3, sh))))
}

/// The transformer every window's warp uses: GDAL hands it the window dataset's pixel
/// coordinates; it adds the window's offset (exact: small integers plus halves) and applies
/// the whole grid's transformer.
struct WindowTransform {
    inner: *mut c_void,
    col0: f64,
    row0: f64,
}

unsafe extern "C" fn window_transform(
    arg: *mut c_void,
    dst_to_src: c_int,
    n: c_int,
    x: *mut f64,
    y: *mut f64,
    z: *mut f64,
    ok: *mut c_int,
) -> c_int {
    // SAFETY: `arg` is the WindowTransform of the running warp; x and y have n elements.
    let a = &*(arg as *const WindowTransform);
    let (xs, ys) = (std::slice::from_raw_parts_mut(x, n as usize), std::slice::from_raw_parts_mut(y, n as usize));
    if dst_to_src != 0 {
        xs.iter_mut().for_each(|v| *v += a.col0);
        ys.iter_mut().for_each(|v| *v += a.row0);
        gdal_sys::GDALGenImgProjTransform(a.inner, dst_to_src, n, x, y, z, ok)
    } else {
        let rc = gdal_sys::GDALGenImgProjTransform(a.inner, dst_to_src, n, x, y, z, ok);
        xs.iter_mut().for_each(|v| *v -= a.col0);
        ys.iter_mut().for_each(|v| *v -= a.row0);
        rc
    }
}

/// Warps the source into output window `w` of grid `t` with `method`, returning its cells
/// row-major; `nodata` is the output's, `scale` the whole grid's kernel scale ([`grid_scale`],
/// computed once when the conversion is planned, so every window warps alike).
///
/// # Errors
/// [`SourceError::Read`] with GDAL's message when the warp fails.
pub(crate) fn warp_window<O: Sample + GdalType>(
    src: &Source,
    t: &Grid,
    method: Method,
    nodata: Option<f64>,
    scale: Option<(f64, f64)>,
    w: Window,
) -> Result<Vec<O>, SourceError> {
    let err = read_error(src, w, "warping to the target grid");
    let gdal_err = |e: gdal::errors::GdalError| err(e.to_string());
    let nodata = nodata.unwrap_or(f64::NAN);
    let driver = DriverManager::get_driver_by_name("MEM").map_err(gdal_err)?;
    let mut dst = driver.create_with_band_type::<O, _>("", w.cols, w.rows, 1).map_err(gdal_err)?;
    dst.set_geo_transform(&[t.x0 + w.col0 as f64 * t.dx, t.dx, 0.0, t.y0 + w.row0 as f64 * t.dy, 0.0, t.dy])
        .map_err(gdal_err)?;
    dst.set_projection(&t.crs_wkt).map_err(gdal_err)?;
    dst.rasterband(1).and_then(|mut b| b.set_no_data_value(Some(nodata))).map_err(gdal_err)?;
    let grid = Transformer::new(src.dataset(), &t.crs_wkt, Some(&t.geotransform())).map_err(err)?;
    let mut arg = WindowTransform { inner: grid.0, col0: w.col0 as f64, row0: w.row0 as f64 };
    let (xscale, yscale) = scale.unwrap_or((1.0, 1.0));
    // The margin the kernel needs at the fixed scale, whatever scale GDAL would guess for
    // this window's own source region; more source cells read never change a result.
    let extra = (kernel_radius(method) / xscale.min(yscale).min(1.0)).ceil() as i64 + 2;
    let mut wo = CslStringList::new();
    for (k, v) in [
        ("INIT_DEST", "NO_DATA".to_string()),
        ("XSCALE", format!("{xscale:?}")),
        ("YSCALE", format!("{yscale:?}")),
        ("SOURCE_EXTRA", extra.to_string()),
    ] {
        wo.set_name_value(k, &v).map_err(gdal_err)?;
    }
    // Source::open checked the band against the band count (a C int); checked again here
    // rather than cast, so that no other caller can warp a wrapped band number.
    let src_band =
        i32::try_from(src.info.band).map_err(|_| err(format!("band {} is not a GDAL band number", src.info.band)))?;
    // A source block GDAL fails to read while warping is reported through the error handler
    // and may still leave the warp "successful": gdal_checked fails the window instead of
    // letting the cells of that block silently become nodata.
    let checked = crate::source::gdal_checked(|| {
        // SAFETY: the options struct and its arrays are allocated with GDAL's allocator
        // because GDALDestroyWarpOptions frees them (the string list is duplicated for it);
        // the datasets, the transformer and `arg` outlive the operation.
        Ok(unsafe {
            let opts = gdal_sys::GDALCreateWarpOptions();
            (*opts).papszWarpOptions = gdal_sys::CSLDuplicate(wo.as_ptr());
            (*opts).hSrcDS = src.dataset().c_dataset();
            (*opts).hDstDS = dst.c_dataset();
            (*opts).eResampleAlg = gdal_alg(method);
            (*opts).dfWarpMemoryLimit = WARP_MEMORY;
            (*opts).nBandCount = 1;
            (*opts).panSrcBands = cpl_one(src_band);
            (*opts).panDstBands = cpl_one(1);
            if let Some(snd) = src.info.nodata {
                (*opts).padfSrcNoDataReal = cpl_one(snd);
            }
            (*opts).padfDstNoDataReal = cpl_one(nodata);
            (*opts).pfnTransformer = Some(window_transform);
            (*opts).pTransformerArg = &mut arg as *mut WindowTransform as *mut c_void;
            let op = gdal_sys::GDALCreateWarpOperation(opts);
            let rc = if op.is_null() {
                gdal_sys::CPLErr::CE_Failure
            } else {
                let rc = gdal_sys::GDALChunkAndWarpImage(op, 0, 0, w.cols as c_int, w.rows as c_int);
                gdal_sys::GDALDestroyWarpOperation(op);
                rc
            };
            // The transformer is ours: keep GDALDestroyWarpOptions from touching it.
            (*opts).pTransformerArg = std::ptr::null_mut();
            gdal_sys::GDALDestroyWarpOptions(opts);
            rc
        })
    });
    drop(grid);
    let rc = checked.map_err(err)?;
    if rc != gdal_sys::CPLErr::CE_None {
        return Err(gdal_err(gdal::errors::GdalError::CplError { class: rc, number: 0, msg: last_gdal_error() }));
    }
    let band = dst.rasterband(1).map_err(gdal_err)?;
    let mut out = vec![O::default(); w.cells()];
    band.read_into_slice::<O>((0, 0), (w.cols, w.rows), (w.cols, w.rows), &mut out, None).map_err(gdal_err)?;
    Ok(out)
}

/// A one-element array holding `v`, allocated with GDAL's allocator (for the warp options,
/// which GDAL frees).
unsafe fn cpl_one<T>(v: T) -> *mut T {
    let p = gdal_sys::CPLMalloc(std::mem::size_of::<T>()).cast::<T>();
    // SAFETY: CPLMalloc returns room for one T (it aborts rather than return null).
    p.write(v);
    p
}

/// `sum` onto window `w` of grid `t` by rasterstage's own sum-preserving kernel
/// ([`crate::resample::footprint`]): every source cell whose footprint reaches the window,
/// its corners transformed exactly to the whole grid's pixels, read in strips of at most
/// about `budget` bytes of cells and corners. Cells without data are NaN.
///
/// # Errors
/// [`SourceError::Read`] when the transformer cannot be built or a read fails.
pub fn sum_window<T: Sample + GdalType>(
    src: &Source,
    t: &Grid,
    w: Window,
    budget: usize,
) -> Result<Vec<f64>, SourceError> {
    let err = read_error(src, w, "reprojecting to the target grid");
    let tr = Transformer::new(src.dataset(), &t.crs_wkt, Some(&t.geotransform())).map_err(err)?;
    let size = (src.info.grid.width, src.info.grid.height);
    let mut out = vec![f64::NAN; w.cells()];
    let Some((rows, cols)) = source_region(&tr, size, w) else {
        return Ok(out);
    };
    let nodata: Option<T> = crate::dtype::nodata_as(src.info.nodata);
    // A cell costs its value and (about) one corner of two f64s.
    let per_cell = std::mem::size_of::<T>() + 16;
    let fit = (budget / per_cell).max(1);
    let (mut buf, mut x, mut y) = (Vec::<T>::new(), Vec::new(), Vec::new());
    let mut block = |r: Range<usize>, c: Range<usize>, out: &mut [f64]| {
        src.read(r.clone(), c.clone(), &mut buf)?;
        corners(&tr, &r, &c, &mut x, &mut y);
        let b = SourceBlock { data: &buf, row0: r.start, col0: c.start, cols: c.len() };
        footprint::sum(&b, nodata, Corners { x: &x, y: &y }, (t.width, t.height), w, out);
        Ok::<(), SourceError>(())
    };
    // Strips of whole rows, or a row in pieces when one row is too wide: either way the
    // source cells come in row-major order, the order each target cell adds them in.
    let h = (fit / cols.len()).max(1);
    for r in rows.clone().step_by(h) {
        for c in cols.clone().step_by(fit) {
            block(r..(r + h).min(rows.end), c..(c + fit).min(cols.end), &mut out)?;
        }
    }
    Ok(out)
}

/// The target-pixel coordinates of the corners of source rows `r` and columns `c` into
/// `x`, `y` (`(r.len() + 1) x (c.len() + 1)`, row-major; NaN where a corner does not
/// transform).
fn corners(tr: &Transformer, r: &Range<usize>, c: &Range<usize>, x: &mut Vec<f64>, y: &mut Vec<f64>) {
    x.clear();
    y.clear();
    for row in r.start..=r.end {
        for col in c.start..=c.end {
            x.push(col as f64);
            y.push(row as f64);
        }
    }
    let ok = tr.transform(false, x, y);
    for i in (0..ok.len()).filter(|&i| !ok[i]) {
        (x[i], y[i]) = (f64::NAN, f64::NAN);
    }
}

/// The source rows and columns whose cells' footprints may reach window `w` (`None`: no
/// point of the window maps onto the source). A first guess from the window's edges (and,
/// when some do not transform, its interior) mapped to source pixels, then grown while a
/// cell on the region's border still reaches the window: the cells that reach a window form
/// one connected patch of the source, so a border that none of them crosses encloses them all.
fn source_region(tr: &Transformer, (sw, sh): (usize, usize), w: Window) -> Option<(Range<usize>, Range<usize>)> {
    if sw == 0 || sh == 0 || w.cells() == 0 {
        return None;
    }
    let (c0, r0, c1, r1) = (w.col0 as f64, w.row0 as f64, (w.col0 + w.cols) as f64, (w.row0 + w.rows) as f64);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..=w.cols {
        x.extend([c0 + i as f64, c0 + i as f64]);
        y.extend([r0, r1]);
    }
    for j in 0..=w.rows {
        x.extend([c0, c1]);
        y.extend([r0 + j as f64, r0 + j as f64]);
    }
    let n_edge = x.len();
    let steps = SAMPLE_STEPS - 1;
    for i in 0..=steps {
        for j in 0..=steps {
            x.push(c0 + (c1 - c0) * i as f64 / steps as f64);
            y.push(r0 + (r1 - r0) * j as f64 / steps as f64);
        }
    }
    let ok = tr.transform(true, &mut x, &mut y);
    // The edges bound the footprint of a window that transforms whole; the interior
    // counts only when some edge point fails.
    let upto = if ok[..n_edge].iter().all(|&ok| ok) { n_edge } else { x.len() };
    let (lx, ly, hx, hy) = bbox((0..upto).filter(|&i| ok[i]).map(|i| (x[i], y[i])));
    if !(lx <= hx && ly <= hy) {
        return None;
    }
    let clamp = |v: f64, n: usize| v.clamp(0.0, n as f64) as usize;
    let mut cols = clamp(lx.floor() - 1.0, sw)..clamp(hx.ceil() + 1.0, sw);
    let mut rows = clamp(ly.floor() - 1.0, sh)..clamp(hy.ceil() + 1.0, sh);
    if cols.is_empty() || rows.is_empty() {
        // The window maps just outside the source: its border cells may still reach in.
        cols = cols.start.min(sw - 1)..cols.end.max(cols.start.min(sw - 1) + 1);
        rows = rows.start.min(sh - 1)..rows.end.max(rows.start.min(sh - 1) + 1);
    }
    let reaches = |r: Range<usize>, c: Range<usize>| {
        let (mut cx, mut cy) = (Vec::new(), Vec::new());
        corners(tr, &r, &c, &mut cx, &mut cy);
        let stride = c.len() + 1;
        (0..r.len()).any(|i| {
            (0..c.len()).any(|j| {
                let q = [i * stride + j, i * stride + j + 1, (i + 1) * stride + j, (i + 1) * stride + j + 1];
                let (a, b, e, f) = bbox(q.map(|k| (cx[k], cy[k])));
                // NaN corners leave the cell out, as the kernel does.
                q.iter().all(|&k| cx[k].is_finite()) && a < c1 && e > c0 && b < r1 && f > r0
            })
        })
    };
    loop {
        let grow_r = (rows.len() / 2).max(8);
        let grow_c = (cols.len() / 2).max(8);
        let mut grown = false;
        if rows.start > 0 && reaches(rows.start..rows.start + 1, cols.clone()) {
            rows.start = rows.start.saturating_sub(grow_r);
            grown = true;
        }
        if rows.end < sh && reaches(rows.end - 1..rows.end, cols.clone()) {
            rows.end = (rows.end + grow_r).min(sh);
            grown = true;
        }
        if cols.start > 0 && reaches(rows.clone(), cols.start..cols.start + 1) {
            cols.start = cols.start.saturating_sub(grow_c);
            grown = true;
        }
        if cols.end < sw && reaches(rows.clone(), cols.end - 1..cols.end) {
            cols.end = (cols.end + grow_c).min(sw);
            grown = true;
        }
        if !grown {
            return Some((rows, cols));
        }
    }
}
