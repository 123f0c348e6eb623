//! The `raster_datasets` catalogue: one row per loaded dataset.

use super::{db, pg, LoadError, LoadOptions};
use crate::resample::Resampling;
use crate::stage::manifest::{Kind, Manifest, StagedFormat};
use crate::stage::StageError;
use crate::store::Store;
use pg::qualified;
use postgres::Client;

/// Upserts the dataset's row in `raster_datasets`.
pub(super) fn record_dataset(
    client: &mut Client,
    opts: &LoadOptions,
    ds: &Store,
    m: &Manifest,
    table: &str,
) -> Result<(), LoadError> {
    let g = &m.grid;
    let b = &m.bounds;
    let transform: Vec<f64> = g.geotransform().to_vec();
    let resolution = vec![g.dx, -g.dy];
    let bounds = vec![b.minx, b.miny, b.maxx, b.maxy];
    // Every number is converted with a check (Manifest::validate bounds them, so none fails
    // for a manifest that was read), and the totals are the tiles' own, recomputed: nothing
    // a hand-edited total says reaches the catalogue.
    let file = ds.url_of(crate::stage::manifest::MANIFEST);
    let out_of_range = |field: &str, v: String| {
        LoadError::Stage(StageError::Invalid {
            file: file.clone(),
            field: field.to_string(),
            reason: format!("is {v}, out of range of its PostgreSQL column"),
            redo: m.redo(),
        })
    };
    let int4 = |field: &str, v: u64| i32::try_from(v).map_err(|_| out_of_range(field, v.to_string()));
    let epsg = g.epsg.map(|e| int4("grid.epsg", e.into())).transpose()?;
    // A merge has no raster source: its description stands for one, band 1.
    let (source, band) = match &m.kind {
        Kind::Raster(r) => (r.source.path.clone(), int4("kind.raster.source.band", r.source.band as u64)?),
        Kind::Merge(merged) => (merged.description(), 1),
    };
    let (dtype, nodata) = m.value_type();
    let (width, height) = (int4("grid.width", g.width as u64)?, int4("grid.height", g.height as u64)?);
    // A tile's side: the window, or a sharded Zarr's shard (what tile_count counts).
    let tile_size = int4("window", m.tile_side() as u64)?;
    let tile_count = int4("tile_count", m.tiles.len() as u64)?;
    let rows: u64 = m.tiles.iter().try_fold(0u64, |n, t| n.checked_add(t.row_count)).unwrap_or(u64::MAX);
    let row_count = i64::try_from(rows).map_err(|_| out_of_range("row_count", rows.to_string()))?;
    let value_sum = m.tiles_sum();
    let format = match m.format {
        StagedFormat::Parquet { .. } => "parquet",
        StagedFormat::Zarr { .. } => "zarr",
    };
    let sql = format!(
        "INSERT INTO {} (name, table_name, source, band, crs_wkt, epsg, transform, width, height, resolution, bounds, \
         dtype, nodata, method, passthrough, format, tile_size, staging_uri, tile_count, row_count, value_sum, loaded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, now()) \
         ON CONFLICT (name) DO UPDATE SET table_name = EXCLUDED.table_name, source = EXCLUDED.source, band = EXCLUDED.band, \
         crs_wkt = EXCLUDED.crs_wkt, epsg = EXCLUDED.epsg, transform = EXCLUDED.transform, width = EXCLUDED.width, \
         height = EXCLUDED.height, resolution = EXCLUDED.resolution, bounds = EXCLUDED.bounds, dtype = EXCLUDED.dtype, \
         nodata = EXCLUDED.nodata, method = EXCLUDED.method, passthrough = EXCLUDED.passthrough, format = EXCLUDED.format, \
         tile_size = EXCLUDED.tile_size, staging_uri = EXCLUDED.staging_uri, tile_count = EXCLUDED.tile_count, \
         row_count = EXCLUDED.row_count, value_sum = EXCLUDED.value_sum, loaded_at = EXCLUDED.loaded_at",
        qualified(&opts.schema, "raster_datasets")
    );
    client
        .execute(
            &sql,
            &[
                &m.name,
                &table,
                &source,
                &band,
                &g.crs_wkt,
                &epsg,
                &transform,
                &width,
                &height,
                &resolution,
                &bounds,
                &dtype.name(),
                &nodata,
                &m.method_label(),
                &matches!(&m.kind, Kind::Raster(r) if r.method == Resampling::Passthrough),
                &format,
                &tile_size,
                &ds.url(),
                &tile_count,
                &row_count,
                &value_sum,
            ],
        )
        .map_err(db(format!("recording {} in raster_datasets", m.name)))?;
    Ok(())
}
