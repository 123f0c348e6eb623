//! A Zarr group per dataset: `<name>.zarr/` with the 2-D array `<name>` (dims y, x; one
//! chunk per window; zstd; fill value = nodata), 1-D `x`/`y` cell-centre coordinates and a
//! CF `spatial_ref` variable.
//!
//! Written by hand rather than through a Zarr library: the format is a few JSON documents
//! plus compressed chunks, and writing them directly gives one code path for v2 and v3 on
//! every store. CRS is written three ways so every reader finds it: CF `grid_mapping` +
//! `spatial_ref` (xarray/rioxarray), and `_CRS` on the array, the only place GDAL 3.6 looks.

use super::{Layout, StageError, TileRecord, TileWriter};
use crate::dtype::{nodata_as, DataType, Sample};
use crate::store::Store;
use crate::tile::Tile;
use bytes::Bytes;
use serde_json::{json, Value};

/// One array of the group: (name, shape, chunks, dtype, fill, dims, attributes).
type ArraySpec<'a> = (&'a str, Vec<usize>, Vec<usize>, DataType, Value, Vec<&'a str>, Value);

/// Standard base64 of `v`'s 8 little-endian bytes (how xarray writes a float `_FillValue`
/// into Zarr v3 attributes).
fn base64_f64(v: f64) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = v.to_le_bytes();
    let mut out = String::with_capacity(12);
    for chunk in b.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, x)| n | (u32::from(*x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// zstd level for chunks.
const ZSTD_LEVEL: i32 = 3;

/// Writes one Zarr array chunked by window into a dataset folder.
pub struct ZarrWriter {
    ds: Store,
    layout: Layout,
    root: String,
}

fn fill_json(v: Option<f64>, dtype: DataType) -> Value {
    match v {
        Some(x) if x.is_nan() => json!("NaN"),
        Some(x) if dtype.is_float() => json!(x),
        Some(x) => json!(x as i64),
        None if dtype.is_float() => json!("NaN"),
        None => json!(0),
    }
}

impl ZarrWriter {
    /// A writer for dataset folder `ds`.
    pub fn new(ds: Store, layout: Layout) -> ZarrWriter {
        let root = format!("{}.zarr", layout.name);
        ZarrWriter { ds, layout, root }
    }

    fn v3(&self) -> bool {
        self.layout.zarr_version != 2
    }

    fn geographic(&self) -> bool {
        let w = self.layout.grid.crs_wkt.trim_start();
        self.layout.grid.epsg == Some(4326) || w.starts_with("GEOGCRS") || w.starts_with("GEOGCS")
    }

    fn chunk_key(&self, array: &str, idx: &[usize]) -> String {
        let parts: Vec<String> = idx.iter().map(|i| i.to_string()).collect();
        if self.v3() {
            if parts.is_empty() {
                format!("{}/{array}/c", self.root)
            } else {
                format!("{}/{array}/c/{}", self.root, parts.join("/"))
            }
        } else if parts.is_empty() {
            format!("{}/{array}/0", self.root)
        } else {
            format!("{}/{array}/{}", self.root, parts.join("."))
        }
    }

    /// Every metadata document: (key, JSON). The same list serves the files and v2's
    /// consolidated `.zmetadata`.
    fn documents(&self) -> Vec<(String, Value)> {
        let g = &self.layout.grid;
        let name = &self.layout.name;
        let wkt = &g.crs_wkt;
        let geo = self.geographic();
        let gt = format!("{} {} 0 {} 0 {}", g.x0, g.dx, g.y0, g.dy);
        let win = self.layout.window;
        let coord_attrs = |axis: &str| {
            let (std_name, long, units) = match (axis, geo) {
                ("x", true) => ("longitude", "longitude", "degrees_east"),
                ("y", true) => ("latitude", "latitude", "degrees_north"),
                ("x", false) => ("projection_x_coordinate", "x coordinate of projection", "metre"),
                _ => ("projection_y_coordinate", "y coordinate of projection", "metre"),
            };
            json!({"standard_name": std_name, "long_name": long, "units": units, "axis": axis.to_uppercase()})
        };
        // `coordinates` makes xarray's CF decoding attach `spatial_ref` to the data variable
        // as a coordinate; without it rioxarray finds the `grid_mapping` name but no variable
        // behind it, and `rio.crs` is None.
        let mut data_attrs = json!({
            "grid_mapping": "spatial_ref",
            "coordinates": "spatial_ref",
            "long_name": name,
        });
        if !wkt.is_empty() {
            data_attrs["_CRS"] = json!({"wkt": wkt});
        }
        if let (true, Some(nd)) = (self.v3(), self.layout.nodata) {
            // xarray uses a v3 array's fill_value only for missing chunks; nodata must be the
            // CF `_FillValue` attribute (floats as base64 of the little-endian f64, xarray's
            // encoding), or rioxarray reports no nodata and -9999 cells read as data.
            data_attrs["_FillValue"] =
                if self.layout.dtype.is_float() { json!(base64_f64(nd)) } else { json!(nd as i64) };
        }
        let sref_attrs = json!({"crs_wkt": wkt, "spatial_ref": wkt, "GeoTransform": gt});
        // An integer array without nodata has no fill value in v2 (null): xarray and GDAL take
        // v2's fill_value for nodata, and a 0 there masked every valid 0 cell. v3 requires a
        // fill value, but there readers use it only for missing chunks.
        let data_fill = if !self.v3() && self.layout.nodata.is_none() && !self.layout.dtype.is_float() {
            Value::Null
        } else {
            fill_json(self.layout.nodata, self.layout.dtype)
        };
        let arrays: Vec<ArraySpec> = vec![
            (
                name.as_str(),
                vec![g.height, g.width],
                vec![win, win],
                self.layout.dtype,
                data_fill,
                vec!["y", "x"],
                data_attrs,
            ),
            ("x", vec![g.width], vec![win], DataType::Float64, json!("NaN"), vec!["x"], coord_attrs("x")),
            ("y", vec![g.height], vec![win], DataType::Float64, json!("NaN"), vec!["y"], coord_attrs("y")),
            ("spatial_ref", vec![], vec![], DataType::Int32, json!(0), vec![], sref_attrs),
        ];
        let mut docs = Vec::new();
        if self.v3() {
            docs.push((
                format!("{}/zarr.json", self.root),
                json!({"zarr_format": 3, "node_type": "group", "attributes": {}}),
            ));
            for (a, shape, chunks, dt, fill, dims, attrs) in arrays {
                docs.push((
                    format!("{}/{a}/zarr.json", self.root),
                    json!({
                        "zarr_format": 3,
                        "node_type": "array",
                        "shape": shape,
                        "data_type": dt.zarr_v3(),
                        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
                        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
                        "fill_value": fill,
                        "codecs": [
                            {"name": "bytes", "configuration": {"endian": "little"}},
                            {"name": "zstd", "configuration": {"level": ZSTD_LEVEL, "checksum": false}}
                        ],
                        "attributes": attrs,
                        "dimension_names": dims,
                    }),
                ));
            }
        } else {
            docs.push((format!("{}/.zgroup", self.root), json!({"zarr_format": 2})));
            docs.push((format!("{}/.zattrs", self.root), json!({})));
            for (a, shape, chunks, dt, fill, dims, mut attrs) in arrays {
                attrs["_ARRAY_DIMENSIONS"] = json!(dims);
                docs.push((
                    format!("{}/{a}/.zarray", self.root),
                    json!({
                        "zarr_format": 2,
                        "shape": shape,
                        "chunks": chunks,
                        "dtype": dt.zarr_v2(),
                        "compressor": {"id": "zstd", "level": ZSTD_LEVEL},
                        "fill_value": fill,
                        "order": "C",
                        "filters": null,
                        "dimension_separator": ".",
                    }),
                ));
                docs.push((format!("{}/{a}/.zattrs", self.root), attrs));
            }
        }
        docs
    }

    fn put_json(&self, key: &str, v: &Value) -> Result<(), StageError> {
        let mut b = serde_json::to_vec_pretty(v).expect("json");
        b.push(b'\n');
        self.ds.put(key, Bytes::from(b))?;
        Ok(())
    }

    fn compress(&self, raw: &[u8], what: &str) -> Result<Vec<u8>, StageError> {
        zstd::bulk::compress(raw, ZSTD_LEVEL).map_err(|e| StageError::Encode {
            dataset: self.layout.name.clone(),
            tile: what.to_string(),
            reason: e.to_string(),
        })
    }

    /// Chunk bytes of a tile: padded to the full chunk shape with the fill value, as Zarr
    /// requires of edge chunks.
    fn chunk_bytes<T: Sample>(&self, tile: &Tile, values: &[T]) -> Vec<u8> {
        let win = self.layout.window;
        let w = tile.window;
        let fill: T = match tile.nodata {
            Some(v) => nodata_as(Some(v)).unwrap_or_else(|| T::from_f64(v)),
            None => T::default(),
        };
        let mut raw = Vec::with_capacity(win * win * std::mem::size_of::<T>());
        if w.rows == win && w.cols == win {
            T::extend_le(values, &mut raw);
            return raw;
        }
        let pad = vec![fill; win - w.cols];
        for r in 0..win {
            if r < w.rows {
                T::extend_le(&values[r * w.cols..(r + 1) * w.cols], &mut raw);
                T::extend_le(&pad, &mut raw);
            } else {
                T::extend_le(&vec![fill; win], &mut raw);
            }
        }
        raw
    }
}

impl TileWriter for ZarrWriter {
    fn begin(&self) -> Result<(), StageError> {
        for (key, doc) in self.documents() {
            self.put_json(&key, &doc)?;
        }
        // Cell-centre coordinates, one chunk per window, computed by the grid's one formula.
        let g = &self.layout.grid;
        let win = self.layout.window;
        for (axis, n) in [("x", g.width), ("y", g.height)] {
            for (ci, start) in (0..n).step_by(win).enumerate() {
                let vals: Vec<f64> = (start..start + win)
                    .map(|i| {
                        if i >= n {
                            f64::NAN
                        } else if axis == "x" {
                            g.centre_x(i)
                        } else {
                            g.centre_y(i)
                        }
                    })
                    .collect();
                let mut raw = Vec::with_capacity(win * 8);
                f64::extend_le(&vals, &mut raw);
                let key = self.chunk_key(axis, &[ci]);
                let z = self.compress(&raw, &key)?;
                self.ds.put(&key, Bytes::from(z))?;
            }
        }
        Ok(())
    }

    fn write(&self, tile: &Tile) -> Result<TileRecord, StageError> {
        let w = tile.window;
        let win = self.layout.window;
        let (row_count, value_sum) = tile.stats();
        let mut rec = TileRecord::new(w, row_count, value_sum);
        if row_count == 0 {
            // A missing chunk reads as the fill value: nothing to write.
            return Ok(rec);
        }
        let raw = crate::with_tile_values!(&tile.values, v => self.chunk_bytes(tile, v));
        let key = self.chunk_key(&self.layout.name, &[w.row0 / win, w.col0 / win]);
        let z = self.compress(&raw, &rec.id)?;
        rec.store(&self.ds, key, z)?;
        Ok(rec)
    }

    fn finish(&self) -> Result<(), StageError> {
        // Readers take consolidated metadata in place of the per-array documents: write it
        // last, from the same documents, so it can never be stale.
        let root_prefix = format!("{}/", self.root);
        let docs = self.documents();
        if self.v3() {
            // zarr-python 3 reads inline consolidated metadata from the group's zarr.json;
            // without it xarray warns on every open_zarr.
            let group_key = format!("{}/zarr.json", self.root);
            let mut meta = serde_json::Map::new();
            let mut group = json!({});
            for (key, doc) in docs {
                if key == group_key {
                    group = doc;
                } else if let Some(array) = key.strip_prefix(&root_prefix).and_then(|k| k.strip_suffix("/zarr.json")) {
                    meta.insert(array.to_string(), doc);
                }
            }
            group["consolidated_metadata"] = json!({"kind": "inline", "must_understand": false, "metadata": meta});
            self.put_json(&group_key, &group)?;
        } else {
            let mut meta = serde_json::Map::new();
            for (key, doc) in docs {
                meta.insert(key.trim_start_matches(&root_prefix).to_string(), doc);
            }
            self.put_json(
                &format!("{}/.zmetadata", self.root),
                &json!({"metadata": meta, "zarr_consolidated_format": 1}),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::base64_f64;

    #[test]
    fn base64_like_python() {
        // base64.standard_b64encode(struct.pack("<d", v)).decode()
        assert_eq!(base64_f64(-9999.0), "AAAAAICHw8A=");
        assert_eq!(base64_f64(f64::NAN), "AAAAAAAA+H8=");
        assert_eq!(base64_f64(0.0), "AAAAAAAAAAA=");
        assert_eq!(base64_f64(1.5), "AAAAAAAA+D8=");
    }
}
