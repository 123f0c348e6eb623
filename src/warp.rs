//! Reprojection to another CRS through GDAL's warper, one output window at a time.
//!
//! Each window is warped into an in-memory dataset of exactly the window's size and
//! extent; GDAL reads only the source region it needs, within a bounded warp memory.

use crate::dtype::Sample;
use crate::grid::Window;
use crate::plan::Plan;
use crate::resample::Method;
use crate::source::{Source, SourceError};
use gdal::raster::GdalType;
use gdal::DriverManager;
use std::ffi::CString;

/// Warp memory per worker, bytes.
const WARP_MEMORY: f64 = 64.0 * 1024.0 * 1024.0;

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
    }
}

/// Warps the source into output window `w` of `plan.target`, returning its cells row-major.
///
/// # Errors
/// [`SourceError::Read`] with GDAL's message when the warp fails.
pub fn warp_window<O: Sample + GdalType>(src: &Source, plan: &Plan, w: Window) -> Result<Vec<O>, SourceError> {
    let err = |reason: String| SourceError::Read {
        path: src.info.path.clone(),
        row0: w.row0,
        row1: w.row0 + w.rows,
        col0: w.col0,
        col1: w.col0 + w.cols,
        reason: format!("warping to the target grid: {reason}"),
    };
    let t = &plan.target;
    let nodata = plan.nodata.unwrap_or(f64::NAN);
    let driver = DriverManager::get_driver_by_name("MEM").map_err(|e| err(e.to_string()))?;
    let mut dst = driver.create_with_band_type::<O, _>("", w.cols, w.rows, 1).map_err(|e| err(e.to_string()))?;
    dst.set_geo_transform(&[t.x0 + w.col0 as f64 * t.dx, t.dx, 0.0, t.y0 + w.row0 as f64 * t.dy, 0.0, t.dy])
        .map_err(|e| err(e.to_string()))?;
    dst.set_projection(&t.crs_wkt).map_err(|e| err(e.to_string()))?;
    {
        let mut band = dst.rasterband(1).map_err(|e| err(e.to_string()))?;
        band.set_no_data_value(Some(nodata)).map_err(|e| err(e.to_string()))?;
        band.fill(nodata, None).map_err(|e| err(e.to_string()))?;
    }
    // Source::open checked the band against the band count (a C int); checked again here
    // rather than cast, so that no other caller can warp a wrapped band number.
    let src_band =
        i32::try_from(src.info.band).map_err(|_| err(format!("band {} is not a GDAL band number", src.info.band)))?;
    let src_wkt = CString::new(src.info.grid.crs_wkt.as_str()).map_err(|e| err(e.to_string()))?;
    let dst_wkt = CString::new(t.crs_wkt.as_str()).map_err(|e| err(e.to_string()))?;
    // SAFETY: the options struct and its arrays are allocated with GDAL's allocator because
    // GDALDestroyWarpOptions frees them; both datasets outlive the call.
    let rc = unsafe {
        let opts = gdal_sys::GDALCreateWarpOptions();
        let key = CString::new("INIT_DEST").unwrap();
        let val = CString::new("NO_DATA").unwrap();
        (*opts).papszWarpOptions = gdal_sys::CSLSetNameValue((*opts).papszWarpOptions, key.as_ptr(), val.as_ptr());
        (*opts).nBandCount = 1;
        (*opts).panSrcBands = gdal_sys::CPLMalloc(std::mem::size_of::<i32>()) as *mut i32;
        *(*opts).panSrcBands = src_band;
        (*opts).panDstBands = gdal_sys::CPLMalloc(std::mem::size_of::<i32>()) as *mut i32;
        *(*opts).panDstBands = 1;
        if let Some(snd) = src.info.nodata {
            (*opts).padfSrcNoDataReal = gdal_sys::CPLMalloc(std::mem::size_of::<f64>()) as *mut f64;
            *(*opts).padfSrcNoDataReal = snd;
        }
        (*opts).padfDstNoDataReal = gdal_sys::CPLMalloc(std::mem::size_of::<f64>()) as *mut f64;
        *(*opts).padfDstNoDataReal = nodata;
        let rc = gdal_sys::GDALReprojectImage(
            src.dataset().c_dataset(),
            src_wkt.as_ptr(),
            dst.c_dataset(),
            dst_wkt.as_ptr(),
            gdal_alg(plan.method),
            WARP_MEMORY,
            0.0,
            None,
            std::ptr::null_mut(),
            opts,
        );
        gdal_sys::GDALDestroyWarpOptions(opts);
        rc
    };
    if rc != gdal_sys::CPLErr::CE_None {
        return Err(
            err(gdal::errors::GdalError::CplError { class: rc, number: 0, msg: last_gdal_error() }.to_string()),
        );
    }
    let band = dst.rasterband(1).map_err(|e| err(e.to_string()))?;
    let mut out = vec![O::default(); w.cells()];
    band.read_into_slice::<O>((0, 0), (w.cols, w.rows), (w.cols, w.rows), &mut out, None)
        .map_err(|e| err(e.to_string()))?;
    Ok(out)
}

fn last_gdal_error() -> String {
    // SAFETY: CPLGetLastErrorMsg returns a pointer to a thread-local, NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(gdal_sys::CPLGetLastErrorMsg()).to_string_lossy().into_owned() }
}
