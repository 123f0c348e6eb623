//! Zarr groups: `<group>.zarr/` with one 2-D array per value column (dims y, x; one chunk
//! per window; zstd; fill value = nodata), 1-D `x`/`y` cell-centre coordinates and a CF
//! `spatial_ref` variable. `convert` writes one array named after the dataset; `merge` writes
//! one per input dataset, all sharing the coordinates (an xarray Dataset).
//!
//! Written by hand rather than through a Zarr library: the format is a few JSON documents
//! plus compressed chunks, and writing them directly gives one code path for v2 and v3 on
//! every store. Sharded v3 (`--zarr-shard K`) follows the `sharding_indexed` codec's
//! specification: a shard object is its K x K inner chunks (one per window, zstd, as
//! unsharded chunks) followed by their index (offset and size of each, little-endian u64, C
//! order; 2^64 - 1 twice for a chunk not stored) and the index's CRC-32C. CRS is written three ways so every reader finds it: CF `grid_mapping` +
//! `spatial_ref` (xarray/rioxarray), and `_CRS` on each array, the only place GDAL 3.6 looks.

use super::manifest::{Manifest, ZarrVersion};
use super::write_loop::TileErrorKind;
use super::{StageError, TileRecord, TileWriter};
use crate::dtype::{nodata_as, DataType, Sample};
use crate::grid::{Grid, Window};
use crate::store::Store;
use crate::tile::Tile;
use bytes::Bytes;
use serde_json::{json, Value};

/// Standard base64 of `v`'s 8 little-endian bytes (how xarray writes a float `_FillValue`
/// into Zarr v3 attributes).
fn base64_f64(v: f64) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = v.to_le_bytes();
    let mut out = String::with_capacity(12);
    for chunk in b.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, x)| n | (u32::from(*x) << (16 - 8 * i)));
        out.extend(
            (0..4).map(|i| if i <= chunk.len() { ABC[((n >> (18 - 6 * i)) & 63) as usize] as char } else { '=' }),
        );
    }
    out
}

/// zstd level for chunks.
const ZSTD_LEVEL: i32 = 3;

/// Offset and size of an inner chunk that is not stored, in a shard's index (the
/// `sharding_indexed` specification's "empty chunk"): readers take it as the fill value.
const EMPTY_CHUNK: u64 = u64::MAX;

/// Bytes of one index entry: offset and size, little-endian u64 each.
const INDEX_ENTRY: usize = 16;

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the `crc32c` codec that protects a
/// shard's index, as zarr-python writes it by default.
pub fn crc32c(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { (c >> 1) ^ 0x82F6_3B78 } else { c >> 1 };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    !bytes.iter().fold(!0u32, |c, &b| TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8))
}

/// A shard object being assembled: the stored inner chunks back to back, then
/// ([`ShardBuilder::finish`]) their index and its CRC-32C (`index_location: end`, so chunks
/// are appended as they are encoded and none is held twice).
#[derive(Debug)]
pub struct ShardBuilder {
    data: Vec<u8>,
    index: Vec<u8>,
}

impl ShardBuilder {
    /// An empty shard of `k` x `k` inner chunks (every one "not stored").
    pub fn new(k: usize) -> ShardBuilder {
        ShardBuilder { data: Vec::new(), index: EMPTY_CHUNK.to_le_bytes().repeat(2 * k * k) }
    }

    /// Stores encoded inner chunk number `i` (C order of the shard's chunk grid).
    pub fn put(&mut self, i: usize, chunk: &[u8]) {
        let e = &mut self.index[i * INDEX_ENTRY..(i + 1) * INDEX_ENTRY];
        e[..8].copy_from_slice(&(self.data.len() as u64).to_le_bytes());
        e[8..].copy_from_slice(&(chunk.len() as u64).to_le_bytes());
        self.data.extend_from_slice(chunk);
    }

    /// Whether no inner chunk is stored (the shard object need not exist).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The shard object's bytes.
    pub fn finish(self) -> Vec<u8> {
        let ShardBuilder { mut data, index } = self;
        let crc = crc32c(&index);
        data.extend_from_slice(&index);
        data.extend_from_slice(&crc.to_le_bytes());
        data
    }
}

/// The stored inner chunks of shard object `bytes` of `k` x `k` inner chunks: for each, its
/// number (C order) and its bytes, after the index's size, CRC-32C and every range are checked
/// (a damaged or foreign shard is refused, not read past its end).
///
/// # Errors
/// What is wrong with the shard, as text.
pub fn shard_chunks(bytes: &[u8], k: usize) -> Result<Vec<(usize, &[u8])>, String> {
    let n = k.checked_mul(k).filter(|&n| n > 0).ok_or("bad shard shape")?;
    let index_len = n * INDEX_ENTRY + 4;
    if bytes.len() < index_len {
        return Err(format!("shard of {} bytes is shorter than its {index_len}-byte index", bytes.len()));
    }
    let (data, index) = bytes.split_at(bytes.len() - index_len);
    let (entries, crc) = index.split_at(n * INDEX_ENTRY);
    let crc = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
    if crc32c(entries) != crc {
        return Err("the shard index's CRC-32C does not match (damaged or not a shard)".into());
    }
    let mut out = Vec::new();
    for (i, e) in entries.chunks_exact(INDEX_ENTRY).enumerate() {
        let off = u64::from_le_bytes(e[..8].try_into().expect("8 bytes"));
        let len = u64::from_le_bytes(e[8..].try_into().expect("8 bytes"));
        if off == EMPTY_CHUNK && len == EMPTY_CHUNK {
            continue;
        }
        match off.checked_add(len) {
            Some(end) if end <= data.len() as u64 => out.push((i, &data[off as usize..end as usize])),
            _ => {
                return Err(format!("inner chunk {i} ({off}+{len}) lies beyond the shard's {} data bytes", data.len()))
            }
        }
    }
    Ok(out)
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

use super::keys::{chunk_key, in_zarr_group, zarr_attributes_v2, zarr_consolidated_v2, zarr_metadata};

/// One 2-D value array of a group.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ZarrArray {
    /// Array name: the dataset's, or an input dataset's in a merged group.
    pub(crate) name: String,
    /// Cell type.
    pub(crate) dtype: DataType,
    /// Nodata: the array's fill value (and CF `_FillValue`).
    pub(crate) nodata: Option<f64>,
}

impl ZarrArray {
    /// What a cell without data holds: nodata when the type can represent it, else NaN for a
    /// float array; `None` for an integer array without a representable nodata, whose every
    /// value may be data, so no fill value is safe.
    pub(crate) fn fill(&self) -> Option<f64> {
        crate::with_sample_type!(self.dtype, T => nodata_as::<T>(self.nodata).map(T::to_f64))
            .or(self.dtype.is_float().then_some(f64::NAN))
    }
}

/// A Zarr group of 2-D arrays on one grid, chunked by window, with shared coordinates, in a
/// dataset folder.
pub(crate) struct ZarrGroup {
    /// The dataset folder.
    pub(crate) ds: Store,
    name: String,
    grid: Grid,
    window: usize,
    version: ZarrVersion,
    /// Windows per shard side (`--zarr-shard`), when the value arrays are sharded.
    shard: Option<usize>,
    /// The value arrays, in order.
    pub(crate) arrays: Vec<ZarrArray>,
    /// CF grid-mapping attributes of the grid's CRS (for `spatial_ref`).
    cf: serde_json::Map<String, Value>,
}

impl ZarrGroup {
    /// Cells along one side of a stored object of a value array: the window, or a shard.
    fn tile_side(&self) -> usize {
        self.window * self.shard.unwrap_or(1)
    }

    /// The group `<name>.zarr` of a Zarr-staged dataset in dataset folder `ds`, from its
    /// manifest alone: its one array, or one per column of a merged dataset. Every process
    /// derives the same metadata from it.
    pub(crate) fn of_manifest(ds: Store, m: &Manifest) -> ZarrGroup {
        let arrays = match m.columns() {
            Some(cols) => {
                cols.iter().map(|c| ZarrArray { name: c.name.clone(), dtype: c.dtype, nodata: c.nodata }).collect()
            }
            None => {
                let (dtype, nodata) = m.value_type();
                vec![ZarrArray { name: m.name.clone(), dtype, nodata }]
            }
        };
        ZarrGroup {
            ds,
            name: m.name.clone(),
            grid: m.grid.clone(),
            window: m.window,
            // Only a Zarr dataset's group is built (the version is then always there).
            version: m.format.zarr_version().unwrap_or_default(),
            shard: m.format.shard(),
            arrays,
            cf: super::cf::grid_mapping(&m.grid.crs_wkt),
        }
    }

    fn v3(&self) -> bool {
        self.version == ZarrVersion::V3
    }

    fn geographic(&self) -> bool {
        let w = self.grid.crs_wkt.trim_start();
        self.grid.epsg == Some(4326) || w.starts_with("GEOGCRS") || w.starts_with("GEOGCS")
    }

    /// The key of the chunk (or shard) of `array` that holds tile `w`.
    pub(crate) fn tile_key(&self, array: &str, w: Window) -> String {
        let side = self.tile_side();
        chunk_key(&self.name, self.version, array, &[w.row0 / side, w.col0 / side])
    }

    /// Every metadata document: (key, JSON). The same list serves the files and v2's
    /// consolidated `.zmetadata`.
    fn documents(&self) -> Vec<(String, Value)> {
        let g = &self.grid;
        let wkt = &g.crs_wkt;
        let geo = self.geographic();
        let gt = format!("{} {} 0 {} 0 {}", g.x0, g.dx, g.y0, g.dy);
        // Coordinates are chunked like the value arrays' objects: a shard's side, so a sharded
        // group is not left with one coordinate object per window.
        let side = self.tile_side();
        let coord_attrs = |axis: &str| {
            let (std_name, long, units) = match (axis, geo) {
                ("x", true) => ("longitude", "longitude", "degrees_east"),
                ("y", true) => ("latitude", "latitude", "degrees_north"),
                ("x", false) => ("projection_x_coordinate", "x coordinate of projection", "metre"),
                _ => ("projection_y_coordinate", "y coordinate of projection", "metre"),
            };
            json!({"standard_name": std_name, "long_name": long, "units": units, "axis": axis.to_uppercase()})
        };
        let group_key = zarr_metadata(&self.name, None, self.version);
        let mut docs = if self.v3() {
            vec![(group_key, json!({"zarr_format": 3, "node_type": "group", "attributes": {}}))]
        } else {
            vec![(group_key, json!({"zarr_format": 2})), (zarr_attributes_v2(&self.name, None), json!({}))]
        };
        let chunk_codecs = json!([
            {"name": "bytes", "configuration": {"endian": "little"}},
            {"name": "zstd", "configuration": {"level": ZSTD_LEVEL, "checksum": false}}
        ]);
        // One array's documents (`sharded`: its value objects are shards of windows).
        let mut array =
            |a: &str, shape: &[usize], dt: DataType, fill: Value, dims: &[&str], mut attrs: Value, sharded| {
                let key = zarr_metadata(&self.name, Some(a), self.version);
                let chunks = vec![side; shape.len()];
                if !self.v3() {
                    // Sharding is v3 only (refused with v2 before anything is written).
                    attrs["_ARRAY_DIMENSIONS"] = json!(dims);
                    let doc = json!({
                        "zarr_format": 2,
                        "shape": shape,
                        "chunks": chunks,
                        "dtype": dt.zarr_v2(),
                        "compressor": {"id": "zstd", "level": ZSTD_LEVEL},
                        "fill_value": fill,
                        "order": "C",
                        "filters": null,
                        "dimension_separator": ".",
                    });
                    docs.extend([(key, doc), (zarr_attributes_v2(&self.name, Some(a)), attrs)]);
                    return;
                }
                let codecs = match self.shard.filter(|_| sharded) {
                    Some(_) => json!([{
                        "name": "sharding_indexed",
                        "configuration": {
                            "chunk_shape": [self.window, self.window],
                            "codecs": chunk_codecs,
                            "index_codecs": [
                                {"name": "bytes", "configuration": {"endian": "little"}},
                                {"name": "crc32c"}
                            ],
                            "index_location": "end"
                        }
                    }]),
                    None => chunk_codecs.clone(),
                };
                let doc = json!({
                    "zarr_format": 3,
                    "node_type": "array",
                    "shape": shape,
                    "data_type": dt.zarr_v3(),
                    "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
                    "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
                    "fill_value": fill,
                    "codecs": codecs,
                    "attributes": attrs,
                    "dimension_names": dims,
                });
                docs.push((key, doc));
            };
        for a in &self.arrays {
            // `coordinates` makes xarray's CF decoding attach `spatial_ref` to the data variable
            // as a coordinate; without it rioxarray finds the `grid_mapping` name but no variable
            // behind it, and `rio.crs` is None.
            let mut data_attrs = json!({
                "grid_mapping": "spatial_ref",
                "coordinates": "spatial_ref",
                "long_name": a.name,
            });
            if !wkt.is_empty() {
                data_attrs["_CRS"] = json!({"wkt": wkt});
            }
            if let (true, Some(nd)) = (self.v3(), a.nodata) {
                // xarray uses a v3 array's fill_value only for missing chunks; nodata must be the
                // CF `_FillValue` attribute (floats as base64 of the little-endian f64, xarray's
                // encoding), or rioxarray reports no nodata and -9999 cells read as data.
                data_attrs["_FillValue"] = if a.dtype.is_float() { json!(base64_f64(nd)) } else { json!(nd as i64) };
            }
            // An integer array without nodata has no fill value in v2 (null): xarray and GDAL
            // take v2's fill_value for nodata, and a 0 there masked every valid 0 cell. v3
            // requires a fill value, but there readers use it only for missing chunks.
            let data_fill = if !self.v3() && a.nodata.is_none() && !a.dtype.is_float() {
                Value::Null
            } else {
                fill_json(a.nodata, a.dtype)
            };
            array(&a.name, &[g.height, g.width], a.dtype, data_fill, &["y", "x"], data_attrs, true);
        }
        let mut sref_attrs = json!({"crs_wkt": wkt, "spatial_ref": wkt, "GeoTransform": gt});
        // rioxarray's attributes: the CF grid mapping next to the WKT, for CF readers.
        if let Value::Object(o) = &mut sref_attrs {
            o.extend(self.cf.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        array("x", &[g.width], DataType::Float64, json!("NaN"), &["x"], coord_attrs("x"), false);
        array("y", &[g.height], DataType::Float64, json!("NaN"), &["y"], coord_attrs("y"), false);
        array("spatial_ref", &[], DataType::Int32, json!(0), &[], sref_attrs, false);
        docs
    }

    fn put_json(&self, key: &str, v: &Value) -> Result<(), StageError> {
        let mut b = serde_json::to_vec_pretty(v).expect("json");
        b.push(b'\n');
        Ok(self.ds.put(key, Bytes::from(b))?)
    }

    /// zstd-compresses one chunk; `what` names it in the error.
    ///
    /// # Errors
    /// [`StageError::Encode`] naming the dataset and `what`.
    pub(crate) fn compress(&self, raw: &[u8], what: &str) -> Result<Vec<u8>, StageError> {
        zstd::bulk::compress(raw, ZSTD_LEVEL).map_err(|e| StageError::Encode {
            dataset: self.name.clone(),
            tile: what.to_string(),
            reason: e.to_string(),
        })
    }

    /// Chunk bytes of window `w` from its `values` (row-major, `w.rows * w.cols`): padded to
    /// the full chunk shape with `fill`, as Zarr requires of edge chunks.
    pub(crate) fn chunk_bytes<T: Sample>(&self, w: Window, values: &[T], fill: T) -> Vec<u8> {
        let win = self.window;
        let mut raw = Vec::with_capacity(win * win * std::mem::size_of::<T>());
        if w.rows == win && w.cols == win {
            T::extend_le(values, &mut raw);
            return raw;
        }
        let pad = vec![fill; win - w.cols];
        for row in values.chunks_exact(w.cols).take(w.rows) {
            T::extend_le(row, &mut raw);
            T::extend_le(&pad, &mut raw);
        }
        T::extend_le(&vec![fill; (win - w.rows) * win], &mut raw);
        raw
    }

    /// Writes what does not depend on tiles: the metadata documents and the coordinates.
    /// Idempotent (same bytes every time).
    ///
    /// # Errors
    /// [`StageError`] naming the object.
    pub(crate) fn begin(&self) -> Result<(), StageError> {
        for (key, doc) in self.documents() {
            self.put_json(&key, &doc)?;
        }
        // Cell-centre coordinates, one chunk per window, computed by the grid's one formula.
        let g = &self.grid;
        let win = self.tile_side();
        for (axis, n, centres) in [("x", g.width, g.x_axis()), ("y", g.height, g.y_axis())] {
            for (ci, start) in (0..n).step_by(win).enumerate() {
                let vals: Vec<f64> =
                    (start..start + win).map(|i| if i < n { centres.centre(i) } else { f64::NAN }).collect();
                let mut raw = Vec::with_capacity(win * 8);
                f64::extend_le(&vals, &mut raw);
                let key = chunk_key(&self.name, self.version, axis, &[ci]);
                let z = self.compress(&raw, &key)?;
                self.ds.put(&key, Bytes::from(z))?;
            }
        }
        Ok(())
    }

    /// Writes the consolidated metadata; runs once every tile is committed.
    ///
    /// # Errors
    /// [`StageError`] naming the object.
    pub(crate) fn finish(&self) -> Result<(), StageError> {
        // Readers take consolidated metadata in place of the per-array documents: write it
        // last, from the same documents, so it can never be stale.
        let mut docs = self.documents();
        if self.v3() {
            // zarr-python 3 reads inline consolidated metadata from the group's zarr.json;
            // without it xarray warns on every open_zarr. The group's document comes first;
            // every other v3 document is an array's, in the array's folder.
            let (group_key, mut group) = docs.remove(0);
            let in_group = |key: &str| Some(in_zarr_group(&self.name, key)?.rsplit_once('/')?.0.to_string());
            let meta: serde_json::Map<String, Value> =
                docs.into_iter().filter_map(|(key, doc)| Some((in_group(&key)?, doc))).collect();
            group["consolidated_metadata"] = json!({"kind": "inline", "must_understand": false, "metadata": meta});
            self.put_json(&group_key, &group)
        } else {
            let name = |key: &str| in_zarr_group(&self.name, key).unwrap_or(key).to_string();
            let meta: serde_json::Map<String, Value> = docs.into_iter().map(|(key, doc)| (name(&key), doc)).collect();
            self.put_json(&zarr_consolidated_v2(&self.name), &json!({"metadata": meta, "zarr_consolidated_format": 1}))
        }
    }
}

/// Writes a converted dataset's one Zarr array (its group's), chunked by window.
pub(crate) struct ZarrWriter(pub(crate) ZarrGroup);

impl ZarrWriter {
    fn chunk<T: Sample>(&self, tile: &Tile, values: &[T]) -> Vec<u8> {
        // Every cell of the window is written as it is (nodata included): only the padding of
        // edge chunks needs a fill, which readers never show.
        let fill: T = tile.nodata.map_or(T::default(), T::from_f64);
        self.0.chunk_bytes(tile.window, values, fill)
    }
}

impl TileWriter for ZarrWriter {
    fn begin(&self) -> Result<(), StageError> {
        self.0.begin()
    }

    fn write(&self, tile: &Tile) -> Result<TileRecord, StageError> {
        let w = tile.window;
        let (row_count, value_sum) = tile.stats();
        let mut rec = TileRecord::new(w, row_count, value_sum);
        if row_count == 0 {
            // A missing chunk reads as the fill value: nothing to write.
            return Ok(rec);
        }
        let raw = crate::with_tile_values!(&tile.values, v => self.chunk(tile, v));
        let key = self.0.tile_key(&self.0.arrays[0].name, w);
        rec.store(&self.0.ds, vec![(key, self.0.compress(&raw, &rec.id)?)])?;
        Ok(rec)
    }

    fn write_tile(
        &self,
        tile: Window,
        compute: &mut dyn FnMut(Window) -> Result<Tile, TileErrorKind>,
    ) -> Result<TileRecord, TileErrorKind> {
        let Some(k) = self.0.shard else { return Ok(self.write(&compute(tile)?)?) };
        // One shard: its windows in order, each compressed as it comes and appended, so only
        // the shard's compressed bytes and one window are in memory (K x window is bounded
        // like a window's side, limits::MAX_ZARR_SHARD).
        let win = self.0.window;
        let mut shard = ShardBuilder::new(k);
        let (mut rows, mut sums) = (0u64, Vec::with_capacity(k * k));
        for i in 0..k {
            for j in 0..k {
                // Beyond the grid's edge: never stored, read as the fill value.
                let Some(w) = tile.part(win, i, j) else { continue };
                let t = compute(w)?;
                let (n, sum) = t.stats();
                rows += n;
                sums.push(sum);
                if n > 0 {
                    let raw = crate::with_tile_values!(&t.values, v => self.chunk(&t, v));
                    shard.put(i * k + j, &self.0.compress(&raw, &w.tile_id())?);
                }
            }
        }
        let mut rec = TileRecord::new(tile, rows, super::manifest::exact_sum(sums));
        if !shard.is_empty() {
            let key = self.0.tile_key(&self.0.arrays[0].name, tile);
            rec.store(&self.0.ds, vec![(key, shard.finish())])?;
        }
        Ok(rec)
    }

    fn finish(&self) -> Result<(), StageError> {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{base64_f64, crc32c, shard_chunks, ShardBuilder, ZarrArray, ZarrGroup};
    use crate::dtype::DataType;

    #[test]
    fn every_manifest_the_fuzzer_gets_accepted_has_a_zarr_group() {
        let dir = tempfile::tempdir().unwrap();
        let ds = crate::store::Store::open(dir.path().to_str().unwrap()).unwrap();
        for m in crate::stage::manifest::fuzz_tests::accepted_manifests() {
            assert!(!ZarrGroup::of_manifest(ds.clone(), &m).arrays.is_empty());
        }
    }

    #[test]
    fn fill_is_nodata_nan_or_none() {
        let fill = |dtype, nodata| ZarrArray { name: "a".into(), dtype, nodata }.fill();
        assert_eq!(fill(DataType::Int16, Some(-32768.0)), Some(-32768.0));
        assert_eq!(fill(DataType::Float32, Some(-9999.0)), Some(-9999.0));
        assert!(fill(DataType::Float64, None).is_some_and(f64::is_nan));
        // Every integer may be data: no fill value is safe.
        assert_eq!(fill(DataType::Int32, None), None);
        // A nodata the type cannot hold marks no cell.
        assert_eq!(fill(DataType::Byte, Some(-9999.0)), None);
    }

    #[test]
    fn crc32c_check_value() {
        // The CRC catalogue's check value of CRC-32C (iSCSI).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn shards_round_trip_and_refuse_damage() {
        let mut b = ShardBuilder::new(2);
        b.put(3, b"last");
        b.put(1, b"second");
        let bytes = b.finish();
        assert_eq!(bytes.len(), 10 + 4 * 16 + 4);
        assert_eq!(shard_chunks(&bytes, 2).unwrap(), vec![(1, &b"second"[..]), (3, &b"last"[..])]);
        // A flipped index byte, a truncated shard, or another shape is refused.
        let mut bad = bytes.clone();
        bad[12] ^= 1;
        assert!(shard_chunks(&bad, 2).unwrap_err().contains("CRC-32C"));
        assert!(shard_chunks(&bytes[..20], 2).unwrap_err().contains("shorter"));
        assert!(shard_chunks(&bytes, 3).is_err());
        assert!(shard_chunks(&bytes, 0).is_err());
    }

    #[test]
    fn base64_like_python() {
        // base64.standard_b64encode(struct.pack("<d", v)).decode()
        assert_eq!(base64_f64(-9999.0), "AAAAAICHw8A=");
        assert_eq!(base64_f64(f64::NAN), "AAAAAAAA+H8=");
        assert_eq!(base64_f64(0.0), "AAAAAAAAAAA=");
        assert_eq!(base64_f64(1.5), "AAAAAAAA+D8=");
    }
}
