//! GeoParquet 1.1 tiles (`convert --geoparquet`): each cell centre also as a point geometry,
//! with a bbox covering column and the `geo` key-value metadata, so GeoPandas, DuckDB spatial,
//! GDAL and QGIS open the tiles as points and can skip rows by bounding box.
//!
//! The extra columns come after `row_idx, col_idx, x, y, value`; `load` and `merge` read only
//! the first ones, so they read GeoParquet tiles as they read plain ones.

use arrow_array::{ArrayRef, BinaryArray, Float64Array, StructArray};
use arrow_schema::{DataType as Arrow, Field, Fields};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Name of the geometry column (the `geo` metadata's primary column).
pub(crate) const GEOMETRY: &str = "geometry";
/// Name of the bbox covering column.
pub(crate) const BBOX: &str = "bbox";
/// Key of the GeoParquet metadata in a tile's key-value metadata.
pub(crate) const GEO_KEY: &str = "geo";

/// How the point geometry is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GeoEncoding {
    /// GeoArrow's native point encoding: `struct<x: double, y: double>`.
    Point,
    /// Well-known binary, 21 bytes a point: what every GeoParquet reader understands,
    /// including GDAL before 3.8.
    Wkb,
}

impl GeoEncoding {
    /// The name in the `geo` metadata's `encoding`.
    fn metadata_name(self) -> &'static str {
        match self {
            GeoEncoding::Point => "point",
            GeoEncoding::Wkb => "WKB",
        }
    }
}

fn xy_fields(names: &[&str]) -> Fields {
    names.iter().map(|n| Field::new(*n, Arrow::Float64, false)).collect()
}

/// The geometry and bbox columns appended to a tile's schema.
pub(crate) fn fields(encoding: GeoEncoding) -> [Field; 2] {
    let geometry = match encoding {
        GeoEncoding::Point => Field::new(GEOMETRY, Arrow::Struct(xy_fields(&["x", "y"])), false),
        GeoEncoding::Wkb => Field::new(GEOMETRY, Arrow::Binary, false),
    };
    [geometry, Field::new(BBOX, Arrow::Struct(xy_fields(&["xmin", "ymin", "xmax", "ymax"])), false)]
}

/// The geometry and bbox columns of the points `(x, y)`.
pub(crate) fn columns(encoding: GeoEncoding, x: &Arc<Float64Array>, y: &Arc<Float64Array>) -> [ArrayRef; 2] {
    let (xa, ya): (ArrayRef, ArrayRef) = (x.clone(), y.clone());
    let geometry: ArrayRef = match encoding {
        // The columns share the x and y buffers: nothing is copied.
        GeoEncoding::Point => Arc::new(StructArray::new(xy_fields(&["x", "y"]), vec![xa.clone(), ya.clone()], None)),
        GeoEncoding::Wkb => Arc::new(wkb_points(x.values(), y.values())),
    };
    // A point's bounding box is the point.
    let bbox =
        StructArray::new(xy_fields(&["xmin", "ymin", "xmax", "ymax"]), vec![xa.clone(), ya.clone(), xa, ya], None);
    [geometry, Arc::new(bbox)]
}

/// Length of one WKB point: byte order, geometry type, x, y.
const WKB_POINT_LEN: usize = 1 + 4 + 8 + 8;

/// Little-endian WKB points.
fn wkb_points(xs: &[f64], ys: &[f64]) -> BinaryArray {
    BinaryArray::from_iter_values(xs.iter().zip(ys).map(|(x, y)| {
        let mut p = [0u8; WKB_POINT_LEN];
        p[0] = 1;
        p[1..5].copy_from_slice(&1u32.to_le_bytes());
        p[5..13].copy_from_slice(&x.to_le_bytes());
        p[13..21].copy_from_slice(&y.to_le_bytes());
        p
    }))
}

/// Smallest and largest x and y of a tile's points, as they are written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Extent {
    min: [f64; 2],
    max: [f64; 2],
}

impl Default for Extent {
    fn default() -> Self {
        Extent { min: [f64::INFINITY; 2], max: [f64::NEG_INFINITY; 2] }
    }
}

impl Extent {
    /// Takes in the points `(x, y)` for each `x` of `xs`.
    pub(crate) fn add_row(&mut self, xs: &[f64], y: f64) {
        for &x in xs {
            self.min[0] = self.min[0].min(x);
            self.max[0] = self.max[0].max(x);
        }
        if !xs.is_empty() {
            self.min[1] = self.min[1].min(y);
            self.max[1] = self.max[1].max(y);
        }
    }
}

/// The `geo` metadata of a tile with points in `extent`, in the CRS `projjson` (PROJJSON text,
/// `None` when the CRS has none, which GeoParquet writes as `null`: unknown).
///
/// # Errors
/// When `projjson` is not JSON.
pub(crate) fn metadata(encoding: GeoEncoding, projjson: Option<&str>, extent: &Extent) -> Result<String, String> {
    let crs: serde_json::Value = projjson
        .map_or(Ok(serde_json::Value::Null), serde_json::from_str)
        .map_err(|e| format!("the CRS as PROJJSON is not JSON: {e}"))?;
    let doc = serde_json::json!({
        "version": "1.1.0",
        "primary_column": GEOMETRY,
        "columns": { GEOMETRY: {
            "encoding": encoding.metadata_name(),
            "geometry_types": ["Point"],
            "crs": crs,
            "bbox": [extent.min[0], extent.min[1], extent.max[0], extent.max[1]],
            "covering": { "bbox": {
                "xmin": [BBOX, "xmin"], "ymin": [BBOX, "ymin"], "xmax": [BBOX, "xmax"], "ymax": [BBOX, "ymax"],
            }},
        }},
    });
    Ok(doc.to_string())
}

/// The CRS `wkt` as PROJJSON (GDAL's OSRExportToPROJJSON); `None` for an empty WKT.
///
/// # Errors
/// GDAL's, as text, naming the CRS.
pub(crate) fn projjson(wkt: &str) -> Result<Option<String>, String> {
    if wkt.trim().is_empty() {
        return Ok(None);
    }
    let srs = gdal::spatial_ref::SpatialRef::from_wkt(wkt).map_err(|e| format!("reading the CRS: {e}"))?;
    srs.to_projjson().map(Some).map_err(|e| format!("writing the CRS as PROJJSON for GeoParquet: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    #[test]
    fn wkb_points_are_21_little_endian_bytes() {
        let a = wkb_points(&[1.5, -2.0], &[3.0, 4.25]);
        assert_eq!(a.len(), 2);
        let p = a.value(1);
        assert_eq!(p.len(), 21);
        assert_eq!(&p[..5], &[1, 1, 0, 0, 0]);
        assert_eq!(f64::from_le_bytes(p[5..13].try_into().unwrap()), -2.0);
        assert_eq!(f64::from_le_bytes(p[13..21].try_into().unwrap()), 4.25);
    }
}
