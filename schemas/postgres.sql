-- rasterstage: tables `load` creates (idempotently) in the target schema.
-- `load` runs this with search_path set to that schema; the per-dataset tables
-- (row_idx int4, col_idx int4, x float8, y float8, value <type>) are created by code,
-- because their value type depends on the dataset.

-- One row per loaded dataset: what a SQL user needs to know about the grid.
CREATE TABLE IF NOT EXISTS raster_datasets (
    name         text PRIMARY KEY,             -- dataset name (unique)
    table_name   text NOT NULL,                -- its table in this schema (prefix + name)
    source       text NOT NULL,                -- source raster path as given to convert
    band         int4 NOT NULL,
    crs_wkt      text NOT NULL,
    epsg         int4,
    transform    float8[] NOT NULL,            -- GDAL geotransform of the target grid
    width        int4 NOT NULL,
    height       int4 NOT NULL,
    resolution   float8[] NOT NULL,            -- {x, y}, both positive
    bounds       float8[] NOT NULL,            -- {minx, miny, maxx, maxy}
    dtype        text NOT NULL,                -- GDAL type of the staged values
    nodata       float8,
    method       text NOT NULL,                -- resampling method, or 'passthrough'
    passthrough  boolean NOT NULL,
    format       text NOT NULL,                -- parquet | zarr
    tile_size    int4 NOT NULL,                -- tile side in cells: the window (a sharded Zarr's shard)
    staging_uri  text NOT NULL,
    tile_count   int4 NOT NULL,
    row_count    int8 NOT NULL,
    value_sum    float8 NOT NULL,
    loaded_at    timestamptz NOT NULL DEFAULT now()
);

-- The exactly-once ledger: a tile's rows and its row here commit in one transaction.
-- `dataset` is the dataset's table name; the tile's cell range lets a re-converted or
-- vanished tile's rows be deleted without reading the old tile.
CREATE TABLE IF NOT EXISTS raster_tile_loads (
    dataset    text NOT NULL,
    tile_id    text NOT NULL,
    row0       int4 NOT NULL,
    col0       int4 NOT NULL,
    nrows      int4 NOT NULL,
    ncols      int4 NOT NULL,
    checksum   text NOT NULL,                  -- sha256:<hex> of the staged object, or 'empty'
    rows       int8 NOT NULL,
    value_sum  float8 NOT NULL,
    loaded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset, tile_id)
);
