//! `format_version` 1: the manifest and commit records rasterstage wrote before the typed
//! manifest. The same facts, flat: a merge dressed as a converted raster (its inputs in the
//! source's path), the method as a string, `zarr_version` beside the format, and each tile's
//! window as four fields of the record. Read only, and turned into today's [`Manifest`] at
//! once, so that every reader sees one type; a field at fault is named as version 1 names it.

use super::{
    invalid, json_f64, json_opt_f64, short, Column, Format, How, Invalid, Kind, Manifest, Merged, Raster, StagedFormat,
    Status, TileRecord, ZarrVersion, FORMAT_VERSION,
};
use crate::dtype::DataType;
use crate::grid::{Bounds, Grid, Window};
use crate::resample::Resampling;
use crate::source::SourceInfo;
use crate::stage::geoparquet::GeoEncoding;
use serde::Deserialize;

/// The version this module reads.
pub(super) const VERSION: u32 = 1;

/// A version-1 commit record: the window as four fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TileRecordV1 {
    id: String,
    row0: usize,
    col0: usize,
    rows: usize,
    cols: usize,
    path: Option<String>,
    row_count: u64,
    #[serde(with = "json_f64")]
    value_sum: f64,
    checksum: Option<String>,
    bytes: u64,
}

impl From<TileRecordV1> for TileRecord {
    fn from(t: TileRecordV1) -> TileRecord {
        TileRecord {
            id: t.id,
            window: Window { row0: t.row0, col0: t.col0, rows: t.rows, cols: t.cols },
            path: t.path,
            row_count: t.row_count,
            value_sum: t.value_sum,
            checksum: t.checksum,
            bytes: t.bytes,
        }
    }
}

/// A version-1 `dataset.json`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ManifestV1 {
    /// [`VERSION`]: read first, by [`Manifest::parse`], which chose this reader by it.
    #[serde(rename = "format_version")]
    _version: u32,
    name: String,
    status: Status,
    created_by: String,
    source: SourceInfo,
    grid: Grid,
    lattice_offset: Option<[i64; 2]>,
    bounds: Bounds,
    /// A method's name, `passthrough`, or (a merge) `merge`.
    method: String,
    dtype: DataType,
    #[serde(with = "json_opt_f64")]
    nodata: Option<f64>,
    window: usize,
    format: Format,
    zarr_version: Option<u8>,
    #[serde(default)]
    zarr_shard: Option<usize>,
    #[serde(default)]
    geoparquet: Option<GeoEncoding>,
    #[serde(default)]
    parquet_compat: bool,
    settings_hash: String,
    tile_count: usize,
    row_count: u64,
    #[serde(with = "json_f64")]
    value_sum: f64,
    tiles: Vec<TileRecordV1>,
    #[serde(default)]
    columns: Option<Vec<Column>>,
}

impl ManifestV1 {
    /// Whether it describes a merge (then `merge` rewrites it).
    pub(super) fn is_merge(&self) -> bool {
        self.columns.is_some()
    }

    /// Today's manifest of the same dataset (not yet validated: [`Manifest::validate`]
    /// follows). What version 1 could say but the typed manifest cannot (a Zarr version on
    /// Parquet, Parquet options on Zarr, a method or a merge's inputs that do not parse) is
    /// refused here.
    ///
    /// # Errors
    /// The first [`Invalid`] field, named as in version 1.
    pub(super) fn upgrade(self) -> Result<Manifest, Invalid> {
        let (shard, geoparquet, compat) = (self.zarr_shard, self.geoparquet, self.parquet_compat);
        let format = match (self.format, self.zarr_version) {
            (Format::Zarr, Some(v @ (2 | 3))) => {
                StagedFormat::Zarr { version: ZarrVersion::try_from(v).expect("2 or 3"), shard }
            }
            (Format::Parquet, None) => StagedFormat::Parquet { geoparquet, compat },
            (Format::Zarr, v) => {
                return invalid("zarr_version", format!("is {v:?}, must be 2 or 3 for the zarr format"))
            }
            (Format::Parquet, Some(v)) => {
                return invalid("zarr_version", format!("is {v}, must be null for the parquet format"))
            }
        };
        if let Some(k) = shard.filter(|_| self.format != Format::Zarr) {
            return invalid("zarr_shard", format!("is {k}, but sharding is a Zarr v3 feature"));
        }
        if self.format != Format::Parquet && (geoparquet.is_some() || compat) {
            return invalid("geoparquet", "Parquet options are set on a dataset that is not Parquet".to_string());
        }
        let kind = match self.columns {
            Some(columns) => {
                // The columns first: the inputs' description is only read for a merge.
                super::check_columns(&self.grid, &columns)?;
                let (how, from) = merge_description(&self.source.path)?;
                Kind::Merge(Merged { how, from, columns })
            }
            None => Kind::Raster(Raster {
                method: serde_json::from_value::<Resampling>(serde_json::Value::String(self.method.clone())).map_err(
                    |_| Invalid {
                        field: "method".into(),
                        reason: format!("{:?} is neither passthrough nor a resampling method", short(&self.method)),
                    },
                )?,
                source: self.source,
                dtype: self.dtype,
                nodata: self.nodata,
            }),
        };
        Ok(Manifest {
            format_version: FORMAT_VERSION,
            name: self.name,
            status: self.status,
            created_by: self.created_by,
            kind,
            grid: self.grid,
            lattice_offset: self.lattice_offset,
            bounds: self.bounds,
            window: self.window,
            format,
            settings_hash: self.settings_hash,
            tile_count: self.tile_count,
            row_count: self.row_count,
            value_sum: self.value_sum,
            tiles: self.tiles.into_iter().map(TileRecord::from).collect(),
        })
    }
}

/// The `how` and inputs' root of a version-1 merge, from its source's path
/// (`merge (<how>) of <inputs> from <root>`, as [`Merged::description`] writes it).
fn merge_description(path: &str) -> Result<(How, String), Invalid> {
    let parsed = path.strip_prefix("merge (").and_then(|rest| {
        let (how, rest) = rest.split_once(") of ")?;
        let how = match how {
            "outer" => How::Outer,
            "inner" => How::Inner,
            _ => return None,
        };
        // Input names are identifiers (no spaces): the first " from " ends them.
        Some((how, rest.split_once(" from ")?.1.to_string()))
    });
    parsed.ok_or_else(|| Invalid {
        field: "source.path".into(),
        reason: format!("{:?} is not a merge's description (merge (<how>) of <inputs> from <root>)", short(path)),
    })
}

/// A field of today's manifest as version 1 names it (`kind.raster.source.band` is
/// `source.band`, `format.zarr.shard` is `zarr_shard`, `tiles[2].window.rows` is
/// `tiles[2].rows`), so a version-1 file's errors name what its reader sees.
pub(super) fn field_name(field: &str) -> String {
    const RENAMED: [(&str, &str); 6] = [
        ("kind.raster.", ""),
        ("kind.merge.", ""),
        ("format.zarr.shard", "zarr_shard"),
        ("format.zarr.version", "zarr_version"),
        ("format.parquet.geoparquet", "geoparquet"),
        ("format.parquet.compat", "parquet_compat"),
    ];
    for (new, old) in RENAMED {
        if let Some(rest) = field.strip_prefix(new) {
            return format!("{old}{rest}");
        }
    }
    match field.split_once("].window.") {
        Some((tile, rest)) if field.starts_with("tiles[") => format!("{tile}].{rest}"),
        _ => field.to_string(),
    }
}
