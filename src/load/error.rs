//! The errors of `load`, `verify` and the loaded-status query.

use super::MAX_ATTEMPTS;
use crate::name::BadName;
use crate::stage::StageError;
use crate::store::StoreError;

/// Errors of `load`, `verify` and the loaded-status query, each naming what it is about.
/// None ever contains a password.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The connection URL does not parse.
    #[error("invalid database URL: {0}")]
    BadUrl(String),
    /// PostgreSQL cannot be reached or refuses the login.
    #[error("cannot connect to PostgreSQL ({target}): {reason}")]
    Connect {
        /// Host, port, user and database.
        target: String,
        /// Why.
        reason: String,
    },
    /// A statement failed.
    #[error("{what}: {reason}")]
    Db {
        /// What was being done, naming the table.
        what: String,
        /// The server's message.
        reason: String,
    },
    /// The staging store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// dataset.json is unreadable.
    #[error(transparent)]
    Stage(#[from] StageError),
    /// A dataset name that is not a safe identifier.
    #[error(transparent)]
    BadName(#[from] BadName),
    /// A schema name or table prefix that is not a safe identifier.
    #[error("{0} {1:?} is not a safe SQL identifier: use lowercase letters, digits and _ (starting with a letter or _), at most 63 characters")]
    BadIdent(String, String),
    /// Nothing staged where a dataset was expected.
    #[error("{0}: no dataset.json, nothing is staged there; run convert first")]
    NoManifest(String),
    /// No dataset at all under the root.
    #[error("no staged datasets under {0}; run convert first")]
    NothingStaged(String),
    /// The dataset is still converting.
    #[error("dataset {name} at {url} is not complete (status converting): run convert to finish it")]
    NotComplete {
        /// Dataset name.
        name: String,
        /// Dataset folder.
        url: String,
    },
    /// The table exists with another shape.
    #[error("table {table} exists with another shape ({found}; loading needs {expected}): drop it, choose another --schema/--table-prefix, or rerun with --replace")]
    WrongShape {
        /// `"schema"."table"`.
        table: String,
        /// Its columns.
        found: String,
        /// What rasterstage needs.
        expected: String,
    },
    /// The table holds rows the ledger knows nothing about.
    #[error("table {0} already holds rows that rasterstage did not load (no raster_tile_loads entries): rerun with --replace to drop and reload it")]
    ForeignRows(String),
    /// Every tile is in the ledger, but the table holds fewer rows than the ledger says were
    /// loaded: rows were deleted outside rasterstage.
    #[error("{table} holds {rows} rows, but its ledger (raster_tile_loads) says {recorded} were loaded, so every tile looks already loaded: rows were deleted outside rasterstage; rerun with rasterstage load --replace to drop and reload it")]
    LostRows {
        /// `"schema"."table"`.
        table: String,
        /// Rows in the table.
        rows: i64,
        /// Rows the ledger records.
        recorded: i64,
    },
    /// Some tiles failed; the others are committed.
    #[error("{dataset}: {failed} of {total} tiles failed (the others are committed; fix them and rerun load)")]
    TilesFailed {
        /// Dataset name.
        dataset: String,
        /// Failed tiles.
        failed: usize,
        /// All tiles.
        total: usize,
    },
    /// PostgreSQL kept failing transiently (down, restarting for too long) beyond the retries;
    /// the remaining tiles were not attempted, since they would only fail the same way.
    #[error("{dataset}: PostgreSQL kept failing, gave up after {MAX_ATTEMPTS} attempts with {committed} of {total} tiles committed (rerun load to finish): {reason}")]
    GaveUp {
        /// Dataset name.
        dataset: String,
        /// Tiles committed, by this run or an earlier one.
        committed: usize,
        /// All tiles.
        total: usize,
        /// The last failure.
        reason: String,
    },
    /// `verify` found differences.
    #[error("{dataset}: {differing} of {total} tiles differ between staging and PostgreSQL: to make the table match the staged data again, rerun rasterstage load --replace --dataset {dataset} (with the same --from/--schema)")]
    Differs {
        /// Dataset name.
        dataset: String,
        /// Differing tiles.
        differing: usize,
        /// All tiles.
        total: usize,
    },
    /// After every tile of this run, the ledger misses tiles of the dataset: another run
    /// changed the table meanwhile.
    #[error("{table}: only {recorded} of {total} tiles are recorded after this load (another run replaced or changed the table meanwhile); the primary key is not built: rerun load")]
    Incomplete {
        /// `"schema"."table"`.
        table: String,
        /// Tiles recorded with their staged checksum.
        recorded: usize,
        /// Tiles of the dataset.
        total: usize,
    },
    /// `verify` on a dataset that is not loaded.
    #[error("table {0} does not exist: run load first")]
    NoTable(String),
    /// `--geometry` cannot be honoured, or `verify` found `geom` wrong.
    #[error(transparent)]
    Geometry(#[from] GeometryError),
}

/// The largest SRID PostGIS accepts for a column (`SRID_USER_MAXIMUM`); larger ones are
/// silently remapped by PostGIS, which would make the column lie about its CRS.
pub(crate) const MAX_SRID: u32 = 998_999;

/// Why `--geometry` cannot be honoured or `verify` finds `geom` wrong; each names what to do.
#[derive(Debug, thiserror::Error)]
pub enum GeometryError {
    /// The target database lacks the extension.
    #[error("--geometry needs the PostGIS extension, and the target database ({target}) does not have it: {hint}, or load without --geometry")]
    NoPostgis {
        /// Host, port, user and database.
        target: String,
        /// What to run or install.
        hint: String,
    },
    /// `--geometry` with `--coords view`: the narrow table has no `x, y` for `geom` to stand for.
    #[error("--geometry needs the coordinates stored in the table: load with --coords stored (the default), or without --geometry")]
    NeedsStoredCoords,
    /// The dataset's CRS has no EPSG code to use as the SRID.
    #[error("{dataset}: --geometry needs the dataset's CRS as an EPSG code (the SRID of geom), and dataset.json has none (grid.epsg): reconvert it with --target-crs EPSG:<code> (the same CRS by its EPSG code, if it has one), or load it without --geometry")]
    NoEpsg {
        /// Dataset name.
        dataset: String,
    },
    /// The EPSG code is beyond what PostGIS accepts as an SRID.
    #[error("{dataset}: --geometry: EPSG:{epsg} is above PostGIS's largest SRID {MAX_SRID}: reconvert it with --target-crs to a CRS with a smaller code, or load it without --geometry")]
    BadSrid {
        /// Dataset name.
        dataset: String,
        /// The code.
        epsg: u32,
    },
    /// The table exists, and differs from what this load needs only by its `geom` column.
    #[error("table {table} {found}: {todo}")]
    GeomColumn {
        /// `"schema"."table"`.
        table: String,
        /// What the table has.
        found: String,
        /// What to do.
        todo: String,
    },
    /// `verify`: rows whose `geom` is not the point `(x, y)`.
    #[error("{table}: {null} rows have no geom and {moved} have a geom other than their (x, y): rerun rasterstage load --replace --geometry --dataset {dataset} (with the same --from/--schema)")]
    Mismatch {
        /// `"schema"."table"`.
        table: String,
        /// Dataset name.
        dataset: String,
        /// Rows with a NULL `geom`.
        null: i64,
        /// Rows with a `geom` elsewhere than `(x, y)`.
        moved: i64,
    },
}
