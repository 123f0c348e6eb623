//! `dataset.json`: what a staged dataset is (grid, source, method) and which tiles are
//! committed, with their row counts, value sums and checksums.
//!
//! A tile is committed by writing its record to `_tiles/<tile id>.json` after the tile itself
//! is complete. Records are separate objects so that workers (and, later, machines) never
//! rewrite one shared file; `dataset.json` gathers them when the conversion completes, and
//! only a `complete` dataset is trusted by `load`.

use super::StageError;
use crate::dtype::DataType;
use crate::grid::{Bounds, Grid, Window};
use crate::source::SourceInfo;
use crate::store::Store;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The manifest's file name inside a dataset folder.
pub const MANIFEST: &str = "dataset.json";
/// Folder of per-tile commit records.
pub const COMMITS: &str = "_tiles";
/// Version of the staging layout; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

/// Staging format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One Parquet file per window under `tiles/`.
    Parquet,
    /// One Zarr group under `<name>.zarr/`: one array chunked by window (a merged dataset:
    /// one per column).
    Zarr,
}

impl Format {
    /// Parses `parquet` or `zarr`.
    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "parquet" => Some(Format::Parquet),
            "zarr" => Some(Format::Zarr),
            _ => None,
        }
    }
}

/// Whether every tile is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Tiles are still being written; readers must not trust the dataset yet.
    Converting,
    /// Every tile is committed and listed.
    Complete,
}

/// One committed tile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TileRecord {
    /// `r<row0>_c<col0>`.
    pub id: String,
    /// First target row.
    pub row0: usize,
    /// First target column.
    pub col0: usize,
    /// Rows in the window.
    pub rows: usize,
    /// Columns in the window.
    pub cols: usize,
    /// Object key relative to the dataset folder; `None` when the window has no valid cell
    /// (nothing is written for it). In a merged Zarr dataset, the first column's chunk: the
    /// tile is that window's chunk of every column ([`Manifest::tile_keys`]).
    pub path: Option<String>,
    /// Valid cells (Parquet rows; merged datasets: cells kept).
    pub row_count: u64,
    /// Sum of the valid values, in row-major order (merged datasets: of every non-null
    /// value, row by row, columns in order).
    #[serde(with = "json_f64")]
    pub value_sum: f64,
    /// `sha256:<hex>` of the object's bytes (of a merged Zarr window: of its chunks,
    /// concatenated in column order).
    pub checksum: Option<String>,
    /// Size of the object in bytes (of a merged Zarr window: of all its chunks).
    pub bytes: u64,
}

/// One value column of a dataset written by `merge`: the values of one input dataset,
/// nullable (NULL where that dataset has no valid cell).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    /// Column name: the input dataset's name.
    pub name: String,
    /// Cell type of the input dataset, kept unchanged.
    pub dtype: DataType,
    /// Nodata of the input dataset (the Zarr fill value; Parquet and PostgreSQL hold NULL).
    #[serde(with = "json_opt_f64")]
    pub nodata: Option<f64>,
    /// The input dataset's folder.
    pub source: String,
    /// `[row, col]` of the input's cell (0, 0) on this dataset's grid: input cell (r, c) is
    /// cell (r + row, c + col) here.
    pub offset: [i64; 2],
}

impl TileRecord {
    /// The record of window `w` with its row count and value sum, before any object is
    /// written (a window without valid cells stays like this: nothing is stored for it).
    pub fn new(w: Window, row_count: u64, value_sum: f64) -> TileRecord {
        TileRecord {
            id: w.tile_id(),
            row0: w.row0,
            col0: w.col0,
            rows: w.rows,
            cols: w.cols,
            path: None,
            row_count,
            value_sum,
            checksum: None,
            bytes: 0,
        }
    }

    /// Stores the tile's object at `key` in `ds` (atomically) and records its path, size and
    /// checksum.
    ///
    /// # Errors
    /// [`StageError::Store`].
    pub fn store(&mut self, ds: &Store, key: String, bytes: Vec<u8>) -> Result<(), StageError> {
        self.store_parts(ds, vec![(key, bytes)])
    }

    /// Stores a tile made of several objects (a merged Zarr window: one chunk per column), each
    /// atomically, in order; records the first key as the path, and the size and checksum of
    /// them all, concatenated in order ([`Manifest::tile_keys`] gives the keys back).
    ///
    /// # Errors
    /// [`StageError::Store`].
    pub fn store_parts(&mut self, ds: &Store, parts: Vec<(String, Vec<u8>)>) -> Result<(), StageError> {
        self.checksum = Some(checksum_parts(parts.iter().map(|(_, b)| b.as_slice())));
        self.bytes = parts.iter().map(|(_, b)| b.len() as u64).sum();
        let mut first = None;
        for (key, bytes) in parts {
            ds.put(&key, Bytes::from(bytes))?;
            first.get_or_insert(key);
        }
        self.path = first;
        Ok(())
    }
}

/// The dataset manifest (`dataset.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Dataset name (a safe SQL identifier).
    pub name: String,
    /// Converting or complete.
    pub status: Status,
    /// Tool and version that wrote it.
    pub created_by: String,
    /// The source band.
    pub source: SourceInfo,
    /// The target grid.
    pub grid: Grid,
    /// Index of target cell (0, 0) on the lattice of multiples of the resolution from the CRS
    /// origin (`[row, col]`), when the grid is on it. Datasets with offsets join by subtracting
    /// them.
    pub lattice_offset: Option<[i64; 2]>,
    /// Target bounds.
    pub bounds: Bounds,
    /// Method name, or `passthrough` when cells were copied.
    pub method: String,
    /// Output cell type.
    pub dtype: DataType,
    /// Output nodata (`"NaN"` for NaN).
    #[serde(with = "json_opt_f64")]
    pub nodata: Option<f64>,
    /// Window (tile) size in target cells.
    pub window: usize,
    /// Staging format.
    pub format: Format,
    /// Zarr format version (2 or 3) when the format is Zarr.
    pub zarr_version: Option<u8>,
    /// Digest of everything that determines the output; a rerun with another one is refused.
    pub settings_hash: String,
    /// Number of windows.
    pub tile_count: usize,
    /// Valid cells over all tiles.
    pub row_count: u64,
    /// Sum of valid values over all tiles.
    #[serde(with = "json_f64")]
    pub value_sum: f64,
    /// Committed tiles, sorted by id position (row, then column).
    pub tiles: Vec<TileRecord>,
    /// The value columns of a dataset written by `merge` (one per input, in order); absent
    /// for a converted dataset, whose single column is `value`. In a merged dataset, a
    /// tile's `value_sum` is the sum of every non-null value of every column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<Column>>,
}

impl Manifest {
    /// Reads `dataset.json` from a dataset folder; `None` when there is none.
    ///
    /// # Errors
    /// [`StageError::Store`] or [`StageError::BadManifest`] naming the file.
    pub fn read(ds: &Store) -> Result<Option<Manifest>, StageError> {
        let Some(bytes) = ds.get(MANIFEST)? else { return Ok(None) };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StageError::BadManifest(ds.url_of(MANIFEST), e.to_string()))
    }

    /// Writes `dataset.json` atomically.
    ///
    /// # Errors
    /// [`StageError::Store`].
    pub fn write(&self, ds: &Store) -> Result<(), StageError> {
        let mut json = serde_json::to_vec_pretty(self).expect("manifest serialises");
        json.push(b'\n');
        ds.put(MANIFEST, Bytes::from(json))?;
        Ok(())
    }

    /// Writes `dataset.json` only if there is none yet (an atomic create, on S3 too); returns
    /// whether it wrote. Sharded runs start a dataset this way, so a shard that starts late
    /// can never overwrite a manifest another shard has meanwhile completed.
    ///
    /// # Errors
    /// [`StageError::Store`].
    pub fn create(&self, ds: &Store) -> Result<bool, StageError> {
        let mut json = serde_json::to_vec_pretty(self).expect("manifest serialises");
        json.push(b'\n');
        Ok(ds.put_if_absent(MANIFEST, Bytes::from(json))?)
    }

    /// The object keys of committed tile `t`, relative to the dataset folder: none for a tile
    /// without valid cells, its path, or, in a merged Zarr dataset, the window's chunk of
    /// every column, in column order (what its checksum covers).
    pub fn tile_keys(&self, t: &TileRecord) -> Vec<String> {
        match (&t.path, self.format, &self.columns) {
            (None, _, _) => Vec::new(),
            (Some(_), Format::Zarr, Some(cols)) => {
                let idx = [t.row0 / self.window.max(1), t.col0 / self.window.max(1)];
                let version = self.zarr_version.unwrap_or(3);
                cols.iter().map(|c| super::zarr::chunk_key(&self.name, version, &c.name, &idx)).collect()
            }
            (Some(p), _, _) => vec![p.clone()],
        }
    }

    /// Puts the committed records in, sorted, and totals them.
    pub fn set_tiles(&mut self, mut tiles: Vec<TileRecord>) {
        tiles.sort_by_key(|t| (t.row0, t.col0));
        self.row_count = tiles.iter().map(|t| t.row_count).sum();
        self.value_sum = tiles.iter().map(|t| t.value_sum).sum();
        self.tiles = tiles;
    }
}

/// Commits a tile: records it after its object is complete.
///
/// # Errors
/// [`StageError::Store`].
pub fn commit(ds: &Store, rec: &TileRecord) -> Result<(), StageError> {
    let json = serde_json::to_vec(rec).expect("tile record serialises");
    ds.put(&format!("{COMMITS}/{}.json", rec.id), Bytes::from(json))?;
    Ok(())
}

/// Every committed tile record of a dataset folder.
///
/// # Errors
/// [`StageError::Store`], or [`StageError::BadManifest`] for an unreadable record.
pub fn committed(ds: &Store) -> Result<Vec<TileRecord>, StageError> {
    let mut out = Vec::new();
    for key in ds.list(COMMITS)? {
        if !key.ends_with(".json") {
            continue;
        }
        let Some(bytes) = ds.get(&key)? else { continue };
        match serde_json::from_slice::<TileRecord>(&bytes) {
            Ok(r) => out.push(r),
            // A record is written atomically, so a bad one is foreign: redo that tile.
            Err(e) => tracing::warn!("ignoring unreadable commit record {}: {e}", ds.url_of(&key)),
        }
    }
    Ok(out)
}

/// Ids of every committed tile of a dataset folder, from one listing of the records (no
/// record is read).
///
/// # Errors
/// [`StageError::Store`].
pub fn committed_ids(ds: &Store) -> Result<std::collections::HashSet<String>, StageError> {
    Ok(ds
        .list(COMMITS)?
        .into_iter()
        .filter_map(|k| k.strip_prefix(&format!("{COMMITS}/")).and_then(|k| k.strip_suffix(".json")).map(String::from))
        .collect())
}

/// `sha256:<hex>` of `bytes`.
pub fn checksum(bytes: &[u8]) -> String {
    checksum_parts([bytes])
}

/// `sha256:<hex>` of `parts` concatenated, without copying them together.
pub fn checksum_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    let d = h.finalize();
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Serde for f64 where NaN and infinities are strings (JSON has no NaN).
pub mod json_f64 {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises finite values as numbers, others as `"NaN"`, `"Infinity"`, `"-Infinity"`.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if *v > 0.0 {
            s.serialize_str("Infinity")
        } else {
            s.serialize_str("-Infinity")
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        N(f64),
        S(String),
    }

    /// Reads what [`serialize`] writes.
    ///
    /// # Errors
    /// A string other than NaN/Infinity/-Infinity.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::N(v) => Ok(v),
            Repr::S(s) => match s.as_str() {
                "NaN" => Ok(f64::NAN),
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                _ => Err(serde::de::Error::custom(format!("expected a number or \"NaN\", got {s:?}"))),
            },
        }
    }
}

/// [`json_f64`] for optional values (`null` = none).
pub mod json_opt_f64 {
    use serde::{Deserialize, Deserializer, Serializer};

    /// See [`super::json_f64::serialize`].
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(x) => super::json_f64::serialize(x, s),
            None => s.serialize_none(),
        }
    }

    #[derive(Deserialize)]
    struct W(#[serde(with = "super::json_f64")] f64);

    /// See [`super::json_f64::deserialize`].
    ///
    /// # Errors
    /// As there.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use super::{checksum, checksum_parts};

    #[test]
    fn parts_hash_as_their_concatenation() {
        assert_eq!(checksum_parts([&b"ab"[..], &b""[..], &b"cd"[..]]), checksum(b"abcd"));
        // sha256 of the empty string.
        assert_eq!(checksum(b""), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
