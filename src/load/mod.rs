//! `load`: staged tiles into PostgreSQL by binary COPY, exactly once per tile.
//!
//! Each tile loads in one transaction: delete the rows of a previous version of the tile (if
//! the ledger has one), COPY its rows, write its ledger row, COMMIT. The decision to skip or
//! reload is taken inside that transaction under a per-tile advisory lock, so a retry after a
//! commit whose acknowledgement was lost, or two loaders running at once, never load a tile
//! twice. Tiles load in parallel over `--jobs` connections; the primary key is built once,
//! after the bulk load, by the run that finds every tile in the ledger (under the table's
//! lock, so two runs at once never both build it), then the table is analysed.

pub mod copy;
pub mod ledger;
pub mod pg;
pub mod shard;
pub mod verify;

use crate::name::{BadName, DatasetName};
use crate::progress::Progress;
use crate::stage::commit::{catch_panic, test_panic, TileErrorKind};
use crate::stage::manifest::{Format, Manifest, Status, TileRecord};
use crate::stage::StageError;
use crate::store::{Store, StoreError};
use copy::{CopyEncoder, DecodeError, TileShape};
use pg::{qualified, reason, ConnSpec};
use postgres::Client;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Attempts per tile when PostgreSQL fails transiently.
pub const MAX_ATTEMPTS: u32 = 6;
/// First retry delay; doubled on each further attempt.
const BACKOFF: Duration = Duration::from_millis(250);
/// Test hook: a pause (ms) inside each tile's transaction, mid-COPY, so that a test can kill
/// the loader or its backend while a transaction is open.
pub const TEST_DELAY_ENV: &str = "RASTERSTAGE_TEST_LOAD_DELAY_MS";

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
}

/// One result per dataset, by name, in the order they were processed.
pub type PerDataset<T> = Vec<(String, Result<T, LoadError>)>;

/// Everything `load` needs.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Staging root URL.
    pub root: String,
    /// Only these datasets (empty: every dataset under the root).
    pub datasets: Vec<String>,
    /// Where to connect.
    pub conn: ConnSpec,
    /// Parallel connections.
    pub jobs: usize,
    /// Target schema.
    pub schema: String,
    /// Prefix of every dataset table's name.
    pub table_prefix: String,
    /// Skip building the primary key.
    pub no_index: bool,
    /// Drop and reload tables that exist.
    pub replace: bool,
    /// No progress display.
    pub quiet: bool,
    /// How the staging store talks to an object store.
    pub storage: crate::store::StorageOptions,
}

/// What a finished dataset load did.
#[derive(Debug, Clone)]
pub struct LoadSummary {
    /// Dataset name.
    pub name: String,
    /// `"schema"."table"`.
    pub table: String,
    /// Tiles in dataset.json.
    pub tiles: usize,
    /// Tiles loaded by this run.
    pub loaded: usize,
    /// Tiles already loaded (same checksum), skipped.
    pub skipped: usize,
    /// Rows copied by this run.
    pub rows: u64,
    /// Staged rows in the dataset.
    pub total_rows: u64,
    /// Wall time.
    pub seconds: f64,
    /// Whether the primary key was built by this run.
    pub indexed: bool,
    /// Whether another run loading the same table at the same time built the primary key
    /// (this run found it there when its own tiles were in).
    pub key_by_other: bool,
}

/// A dataset's table name: prefix + dataset name, checked to fit PostgreSQL's 63 bytes and
/// never to be a catalogue table: every dataset table name (and so every `DROP TABLE` of
/// `--replace`) comes from here, so no path can drop `raster_datasets` or `raster_tile_loads`.
///
/// # Errors
/// [`LoadError::BadIdent`]; [`LoadError::BadName`] for a catalogue table's name.
pub fn table_name(prefix: &str, name: &DatasetName) -> Result<String, LoadError> {
    let t = format!("{prefix}{name}");
    pg::check_ident("table name (--table-prefix + dataset name)", &t, false)?;
    name.check_not_reserved(prefix)?;
    Ok(t)
}

/// The datasets to work on under `root`: `only` (validated names), or every folder with a
/// dataset.json.
///
/// # Errors
/// [`LoadError::BadName`], [`LoadError::NothingStaged`], [`LoadError::Store`].
pub fn dataset_names(root: &Store, only: &[String]) -> Result<Vec<DatasetName>, LoadError> {
    if !only.is_empty() {
        return only.iter().map(|n| DatasetName::new(n).map_err(LoadError::from)).collect();
    }
    let mut out = Vec::new();
    for folder in root.folders()? {
        if root.child(&folder).get(crate::stage::manifest::MANIFEST)?.is_some() {
            match DatasetName::new(&folder) {
                Ok(n) => out.push(n),
                Err(e) => tracing::warn!("skipping {}: {e}", root.url_of(&folder)),
            }
        }
    }
    if out.is_empty() {
        return Err(LoadError::NothingStaged(root.url().to_string()));
    }
    Ok(out)
}

/// Reads a dataset's manifest, validated ([`Manifest::read`]: named as its folder, every
/// tile one window of its grid, totals equal to the tiles' sums), and checks it may be
/// loaded. Every loader and `verify` start here, before anything is written to PostgreSQL,
/// so a tampered folder is refused whole.
///
/// # Errors
/// [`LoadError::NoManifest`], [`LoadError::Stage`] (unreadable or invalid, naming the file
/// and field), [`LoadError::NotComplete`], [`LoadError::BadName`].
pub fn complete_manifest(ds: &Store) -> Result<Manifest, LoadError> {
    let m = Manifest::read(ds)?.ok_or_else(|| LoadError::NoManifest(ds.url().to_string()))?;
    DatasetName::new(&m.name)?;
    if m.status != Status::Complete {
        return Err(LoadError::NotComplete { name: m.name.clone(), url: ds.url().to_string() });
    }
    Ok(m)
}

/// Loads every selected dataset; one result per dataset, in order. A dataset that fails does
/// not stop the others.
///
/// # Errors
/// Only what stops everything: bad options, no connection, no datasets, the schema DDL.
pub fn load(opts: &LoadOptions) -> Result<PerDataset<LoadSummary>, LoadError> {
    pg::check_ident("--schema", &opts.schema, false)?;
    pg::check_ident("--table-prefix", &opts.table_prefix, true)?;
    let root = Store::open_with(&opts.root, &opts.storage)?;
    let names = dataset_names(&root, &opts.datasets)?;
    let mut client = opts.conn.connect()?;
    pg::apply_schema(&mut client, &opts.schema)?;
    let mut out = Vec::new();
    for name in names {
        // The previous dataset may have ended on a broken connection (server restart).
        let r = revive(&mut client, &opts.conn).and_then(|()| load_dataset(opts, &root, &mut client, &name));
        out.push((name.to_string(), r));
    }
    Ok(out)
}

/// Replaces `client` with a fresh connection when it no longer answers, retrying with
/// backoff while the server comes back: a restart ends every session, including this idle
/// one, while the workers retry their tiles on their own connections.
///
/// # Errors
/// [`LoadError::Connect`] when no connection can be made within the retries.
fn revive(client: &mut Client, conn: &ConnSpec) -> Result<(), LoadError> {
    if client.is_valid(Duration::from_secs(10)).is_ok() {
        return Ok(());
    }
    let mut attempt = 0;
    loop {
        match conn.connect() {
            Ok(c) => {
                *client = c;
                return Ok(());
            }
            Err(e) if attempt + 1 >= MAX_ATTEMPTS => return Err(e),
            Err(e) => tracing::warn!("reconnecting, attempt {} failed, retrying: {e}", attempt + 1),
        }
        std::thread::sleep(BACKOFF * 2u32.pow(attempt));
        attempt += 1;
    }
}

/// A lock that a panicking worker may have poisoned: what it guards (a list of failures, a
/// flag) is whole after any panic, so it is used as is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn db(what: impl Into<String>) -> impl FnOnce(postgres::Error) -> LoadError {
    let what = what.into();
    move |e| LoadError::Db { what, reason: reason(&e) }
}

/// Objects in the dataset folder that look like tiles but are not listed: ignored, with a
/// warning (a convert that crashed before committing them, or foreign files).
fn warn_unlisted(ds: &Store, m: &Manifest) -> Result<(), LoadError> {
    let listed: HashSet<String> = m.tiles.iter().flat_map(|t| m.tile_keys(t)).collect();
    // Where tiles live: `tiles/`, or the folder of each value array of the Zarr group.
    let prefixes: Vec<String> = match (m.format, &m.columns) {
        (Format::Parquet, _) => vec!["tiles".to_string()],
        (Format::Zarr, None) => vec![format!("{n}.zarr/{n}", n = m.name)],
        (Format::Zarr, Some(cols)) => cols.iter().map(|c| format!("{}.zarr/{}", m.name, c.name)).collect(),
    };
    let is_tile = |k: &str| match m.format {
        Format::Parquet => k.ends_with(".parquet"),
        Format::Zarr => !matches!(k.rsplit('/').next().unwrap_or(""), "zarr.json" | ".zarray" | ".zattrs"),
    };
    let mut unlisted = Vec::new();
    for prefix in &prefixes {
        unlisted.extend(ds.list(prefix)?.into_iter().filter(|k| is_tile(k) && !listed.contains(k)));
    }
    if !unlisted.is_empty() {
        tracing::warn!(
            "{}: ignoring {} file(s) not listed in dataset.json (e.g. {})",
            m.name,
            unlisted.len(),
            ds.url_of(&unlisted[0])
        );
    }
    Ok(())
}

/// Columns of `table` as `(name, format_type)`, or `None` when it does not exist.
fn table_columns(
    c: &mut impl postgres::GenericClient,
    qt: &str,
) -> Result<Option<Vec<(String, String)>>, postgres::Error> {
    let kind: Option<i8> =
        c.query_opt("SELECT relkind FROM pg_class WHERE oid = to_regclass($1)", &[&qt])?.map(|r| r.get(0));
    if kind.is_none() {
        return Ok(None);
    }
    let rows = c.query(
        "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
         WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        &[&qt],
    )?;
    let mut cols: Vec<(String, String)> = rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
    if kind != Some(b'r' as i8) && kind != Some(b'p' as i8) {
        cols.insert(0, ("(not a table)".into(), String::new()));
    }
    Ok(Some(cols))
}

fn shape_text(cols: &[(String, String)]) -> String {
    cols.iter().map(|(n, t)| format!("{n} {t}")).collect::<Vec<_>>().join(", ")
}

/// Makes the dataset's table ready: created, or checked (shape, no foreign rows), or dropped
/// and recreated with `--replace`; ledger rows of tiles that are no longer staged (or whose
/// window changed) are removed with their rows. Returns whether the table has a primary key.
fn prepare_table(client: &mut Client, opts: &LoadOptions, m: &Manifest, table: &str) -> Result<bool, LoadError> {
    let qt = qualified(&opts.schema, table);
    let what = format!("preparing table {qt}");
    let mut tx = client.transaction().map_err(db(&what))?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&format!("rasterstage:{qt}")]).map_err(db(&what))?;
    let expected = pg::table_shape_of(m);
    let existing = table_columns(&mut tx, &qt).map_err(db(&what))?;
    let mut create = existing.is_none();
    if let Some(cols) = existing {
        if opts.replace {
            tracing::info!("{}: --replace: dropping {qt}", m.name);
            tx.batch_execute(&format!("DROP TABLE {qt}")).map_err(db(&what))?;
            create = true;
        } else if cols != expected {
            return Err(LoadError::WrongShape { table: qt, found: shape_text(&cols), expected: shape_text(&expected) });
        }
    }
    if create {
        tx.batch_execute(&pg::create_table_sql(&qt, m)).map_err(db(&what))?;
        // The ledger describes rows of the table; a new table has none.
        ledger::clear(&mut tx, &opts.schema, table).map_err(db(&what))?;
    } else {
        let recorded = ledger::read(&mut tx, &opts.schema, table).map_err(db(&what))?;
        if recorded.is_empty() {
            // One statement, so one snapshot: a run loading this table right now commits a
            // tile's rows with its ledger row, and two statements could see the rows without
            // the ledger row.
            let sql = format!(
                "SELECT EXISTS (SELECT 1 FROM {qt}) AND NOT EXISTS (SELECT 1 FROM {} WHERE dataset = $1)",
                qualified(&opts.schema, "raster_tile_loads")
            );
            let foreign: bool = tx.query_one(&sql, &[&table]).map_err(db(&what))?.get(0);
            if foreign {
                return Err(LoadError::ForeignRows(qt));
            }
        }
        let staged: HashMap<&str, &TileRecord> = m.tiles.iter().map(|t| (t.id.as_str(), t)).collect();
        for (id, row) in &recorded {
            let same_window = staged.get(id.as_str()).is_some_and(|t| ledger::range_of(t) == row.range);
            if !same_window {
                tracing::info!("{}: tile {id} is no longer staged as loaded; removing its {} rows", m.name, row.rows);
                ledger::delete_range(&mut tx, &opts.schema, table, row.range).map_err(db(&what))?;
                ledger::forget(&mut tx, &opts.schema, table, id).map_err(db(&what))?;
            }
        }
    }
    let has_pk = has_primary_key(&mut tx, &qt).map_err(db(&what))?;
    tx.commit().map_err(db(&what))?;
    Ok(has_pk)
}

/// Whether table `qt` (`"schema"."table"`) has a primary key.
fn has_primary_key(c: &mut impl postgres::GenericClient, qt: &str) -> Result<bool, postgres::Error> {
    let q = "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = to_regclass($1) AND indisprimary)";
    Ok(c.query_one(q, &[&qt])?.get(0))
}

/// Why one tile did not load.
#[derive(Debug)]
enum TileError {
    /// The staged tile is bad or missing: retrying cannot help.
    Bad(String),
    /// PostgreSQL failed.
    Db(postgres::Error),
    /// Reconnecting failed.
    Connect(LoadError),
}

impl TileError {
    fn transient(&self) -> bool {
        match self {
            TileError::Bad(_) => false,
            TileError::Db(e) => pg::is_transient(e),
            TileError::Connect(_) => true,
        }
    }

    fn message(&self) -> String {
        match self {
            TileError::Bad(s) => s.clone(),
            TileError::Db(e) => reason(e),
            TileError::Connect(e) => e.to_string(),
        }
    }
}

/// Everything a worker needs to load tiles of one dataset.
struct Job<'a> {
    opts: &'a LoadOptions,
    ds: &'a Store,
    m: &'a Manifest,
    table: &'a str,
    copy_sql: String,
    delay: Option<Duration>,
}

enum Outcome {
    Loaded(u64),
    Skipped,
}

/// Why [`Job::tile`] failed.
enum Failure {
    /// This tile cannot load (bad tile, a statement error): the others go on.
    Tile(String),
    /// PostgreSQL failed transiently on every attempt: it is down, so the load stops.
    GaveUp(String),
}

impl Job<'_> {
    fn fetch(&self, t: &TileRecord) -> Result<Option<Vec<bytes::Bytes>>, TileError> {
        crate::stage::read::fetch_tile(self.ds, self.m, t).map_err(|e| TileError::Bad(e.to_string()))
    }

    /// One attempt: the tile's whole transaction.
    fn attempt(
        &self,
        client: &mut Client,
        t: &TileRecord,
        parts: Option<&[bytes::Bytes]>,
        enc: &mut CopyEncoder,
    ) -> Result<Outcome, TileError> {
        let schema = &self.opts.schema;
        let mut tx = client.transaction().map_err(TileError::Db)?;
        let key = format!("rasterstage:{}/{}", qualified(schema, self.table), t.id);
        tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&key]).map_err(TileError::Db)?;
        let prev = tx
            .query_opt(
                &format!(
                    "SELECT checksum, row0, col0, nrows, ncols FROM {} WHERE dataset = $1 AND tile_id = $2",
                    qualified(schema, "raster_tile_loads")
                ),
                &[&self.table, &t.id],
            )
            .map_err(TileError::Db)?;
        if let Some(row) = prev {
            let sum: String = row.get(0);
            if sum == ledger::wanted_checksum(t) {
                return Ok(Outcome::Skipped);
            }
            let range = [row.get(1), row.get(2), row.get(3), row.get(4)];
            ledger::delete_range(&mut tx, schema, self.table, range).map_err(TileError::Db)?;
        }
        enc.begin();
        if let Some(parts) = parts {
            let shape = TileShape::of(self.m, t);
            let mut writer = tx.copy_in(&self.copy_sql).map_err(TileError::Db)?;
            let mut first = true;
            let delay = self.delay;
            let mut sink = |b: &[u8]| -> std::io::Result<()> {
                writer.write_all(b)?;
                if first {
                    first = false;
                    if let Some(d) = delay {
                        writer.flush()?;
                        std::thread::sleep(d);
                    }
                }
                Ok(())
            };
            // fetch_tile returns one object per tile, or one chunk per column (merged Zarr).
            let r = match (self.m.format, &self.m.columns) {
                (Format::Parquet, None) => copy::parquet_rows(parts[0].clone(), &shape, enc, &mut sink),
                (Format::Zarr, None) => copy::zarr_rows(&parts[0], &shape, enc, &mut sink),
                (Format::Parquet, Some(cols)) => {
                    copy::merged_parquet_rows(parts[0].clone(), &shape, cols, enc, &mut sink)
                }
                (Format::Zarr, Some(cols)) => copy::merged_zarr_rows(parts, &shape, cols, enc, &mut sink),
            };
            match r {
                Ok(()) => {}
                Err(DecodeError::Bad(s)) => return Err(TileError::Bad(format!("unreadable tile: {s}"))),
                Err(DecodeError::Sink(e)) => {
                    return Err(match e.into_inner().map(|inner| inner.downcast::<postgres::Error>()) {
                        Some(Ok(pe)) => TileError::Db(*pe),
                        Some(Err(other)) => TileError::Bad(format!("writing COPY data: {other}")),
                        None => TileError::Bad("writing COPY data failed".into()),
                    })
                }
            }
            writer.finish().map_err(TileError::Db)?;
        }
        // Nothing is committed until the tile is what dataset.json says: a NaN or infinite
        // record matches no finite sum (same_sum), so it fails here instead of passing.
        if enc.rows != t.row_count {
            return Err(TileError::Bad(format!("tile holds {} rows, dataset.json says {}", enc.rows, t.row_count)));
        }
        if !crate::stage::manifest::same_sum(enc.value_sum, t.value_sum) {
            return Err(TileError::Bad(format!(
                "tile values sum to {}, dataset.json says {}",
                enc.value_sum, t.value_sum
            )));
        }
        ledger::record(&mut tx, schema, self.table, t, enc.rows, enc.value_sum).map_err(TileError::Db)?;
        tx.commit().map_err(TileError::Db)?;
        Ok(Outcome::Loaded(enc.rows))
    }

    /// Loads one tile, retrying transient failures on a fresh connection with backoff.
    fn tile(&self, client: &mut Option<Client>, t: &TileRecord, enc: &mut CopyEncoder) -> Result<Outcome, Failure> {
        let bytes = self.fetch(t).map_err(|e| Failure::Tile(e.message()))?;
        let mut last = String::new();
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(BACKOFF * 2u32.pow(attempt - 1));
            }
            let r = match client {
                Some(c) => self.attempt(c, t, bytes.as_deref(), enc),
                None => match self.opts.conn.connect() {
                    Ok(c) => {
                        let c = client.insert(c);
                        self.attempt(c, t, bytes.as_deref(), enc)
                    }
                    Err(e) => Err(TileError::Connect(e)),
                },
            };
            match r {
                Ok(o) => return Ok(o),
                Err(e) if e.transient() => {
                    last = e.message();
                    tracing::warn!("{}: tile {}: attempt {} failed, retrying: {last}", self.m.name, t.id, attempt + 1);
                    *client = None;
                }
                Err(e) => return Err(Failure::Tile(e.message())),
            }
        }
        Err(Failure::GaveUp(last))
    }
}

fn load_dataset(
    opts: &LoadOptions,
    root: &Store,
    client: &mut Client,
    name: &DatasetName,
) -> Result<LoadSummary, LoadError> {
    load_dataset_only(opts, root, client, name, None)
}

/// Loads the tiles of `name` whose ids are in `only` (every tile when `None`: a shard's part
/// otherwise), then, if the ledger then holds every tile, builds the primary key
/// ([`complete_table`]), analyses the table and records the dataset.
fn load_dataset_only(
    opts: &LoadOptions,
    root: &Store,
    client: &mut Client,
    name: &DatasetName,
    only: Option<&HashSet<String>>,
) -> Result<LoadSummary, LoadError> {
    let start = Instant::now();
    let ds = root.child(name.as_str());
    // Validated, named as its folder (a folder holding another dataset's dataset.json is
    // refused: it would overwrite that dataset's catalogue row), before any statement runs.
    let m = complete_manifest(&ds)?;
    let table = table_name(&opts.table_prefix, name)?;
    let qt = qualified(&opts.schema, &table);
    warn_unlisted(&ds, &m)?;
    let has_pk = prepare_table(client, opts, &m, &table)?;

    let recorded = ledger::read(client, &opts.schema, &table).map_err(db(format!("reading the ledger of {qt}")))?;
    let todo: Vec<&TileRecord> = m
        .tiles
        .iter()
        .filter(|t| only.is_none_or(|o| o.contains(&t.id)))
        .filter(|t| recorded.get(&t.id).is_none_or(|r| r.checksum != ledger::wanted_checksum(t)))
        .collect();
    let skipped_before = m.tiles.len() - todo.len();
    if todo.is_empty() && only.is_none() && !m.tiles.is_empty() {
        // Only when every tile would be skipped: then a count(*) (a full scan of a large
        // table, once per dataset) is the one thing that can tell "loaded" from "loaded, then
        // rows deleted by hand". A run with tiles to load never pays it.
        let recorded: i64 = m.tiles.iter().filter_map(|t| recorded.get(&t.id)).map(|r| r.rows).sum();
        let rows: i64 = client
            .query_one(&format!("SELECT count(*) FROM {qt}"), &[])
            .map_err(db(format!("counting rows of {qt}")))?
            .get(0);
        if rows < recorded {
            return Err(LoadError::LostRows { table: qt, rows, recorded });
        }
    }
    let job = Job {
        opts,
        ds: &ds,
        m: &m,
        table: &table,
        copy_sql: format!(
            "COPY {qt} (row_idx, col_idx, x, y, {}) FROM STDIN (FORMAT binary)",
            pg::value_columns(&m).iter().map(|(n, _)| pg::quote(n)).collect::<Vec<_>>().join(", ")
        ),
        delay: std::env::var(TEST_DELAY_ENV).ok().and_then(|v| v.parse().ok()).map(Duration::from_millis),
    };
    let progress = Progress::new(name.as_str(), m.tiles.len() as u64, skipped_before as u64, opts.quiet);
    let next = AtomicUsize::new(0);
    let failures: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    // Set by the first tile that exhausts its retries: every other tile would wait through
    // the same retries against the same unavailable server, so none is started any more.
    let gave_up: Mutex<Option<String>> = Mutex::new(None);
    let loaded = AtomicUsize::new(0);
    let rows = std::sync::atomic::AtomicU64::new(0);
    let workers = opts.jobs.max(1).min(todo.len().max(1));
    std::thread::scope(|s| {
        for w in 0..workers {
            let (job, todo, next, failures, gave_up, loaded, rows, progress) =
                (&job, &todo, &next, &failures, &gave_up, &loaded, &rows, &progress);
            s.spawn(move || {
                // Every worker owns its connection, opened lazily and replaced after a failure.
                let mut client: Option<Client> = None;
                let mut enc = CopyEncoder::new();
                loop {
                    if lock(gave_up).is_some() {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(t) = todo.get(i) else { break };
                    let r = catch_panic(|| {
                        test_panic(&t.id);
                        job.tile(&mut client, t, &mut enc)
                    })
                    .unwrap_or_else(|msg| {
                        // The encoder and the connection may be mid-tile: both are replaced
                        // (closing the connection rolls its transaction back).
                        (client, enc) = (None, CopyEncoder::new());
                        Err(Failure::Tile(TileErrorKind::Panic(msg).to_string()))
                    });
                    match r {
                        Ok(Outcome::Loaded(n)) => {
                            loaded.fetch_add(1, Ordering::Relaxed);
                            rows.fetch_add(n, Ordering::Relaxed);
                            progress.tile_done(n);
                        }
                        Ok(Outcome::Skipped) => progress.tile_done(0),
                        Err(Failure::Tile(msg)) => {
                            tracing::error!("{}: tile {} failed: {msg}", job.m.name, t.id);
                            lock(failures).push((t.id.clone(), msg));
                        }
                        Err(Failure::GaveUp(msg)) => {
                            lock(gave_up).get_or_insert(msg);
                        }
                    }
                }
                tracing::debug!("worker {w} done");
            });
        }
    });
    progress.finish();
    let failures = failures.into_inner().unwrap_or_else(PoisonError::into_inner);
    if let Some(reason) = gave_up.into_inner().unwrap_or_else(PoisonError::into_inner) {
        return Err(LoadError::GaveUp {
            dataset: m.name.clone(),
            committed: skipped_before + loaded.into_inner(),
            total: m.tiles.len(),
            reason,
        });
    }
    if !failures.is_empty() {
        return Err(LoadError::TilesFailed { dataset: m.name.clone(), failed: failures.len(), total: m.tiles.len() });
    }
    let (loaded, rows) = (loaded.into_inner(), rows.into_inner());
    // The workers rode out any restart on their own connections; this one may have died.
    revive(client, &opts.conn)?;
    let done = complete_table(client, opts, &m, &table, has_pk)?;
    let mine = only.map_or(m.tiles.len(), HashSet::len);
    let summary = LoadSummary {
        name: m.name.clone(),
        table: qt.clone(),
        tiles: m.tiles.len(),
        loaded,
        skipped: mine - loaded.min(mine),
        rows,
        total_rows: m.row_count,
        seconds: 0.0,
        indexed: done.indexed,
        key_by_other: done.key_by_other,
    };
    if done.recorded < m.tiles.len() {
        if only.is_some() {
            tracing::info!(
                "{}: this shard's tiles are loaded; {} of {} in {qt}, the last shard builds the primary key",
                m.name,
                done.recorded,
                m.tiles.len()
            );
            return Ok(LoadSummary { seconds: start.elapsed().as_secs_f64(), ..summary });
        }
        // Every tile of this run is committed or was found committed, so another run changed
        // the table meanwhile (--replace, or a load of a reconverted dataset).
        return Err(LoadError::Incomplete { table: qt, recorded: done.recorded, total: m.tiles.len() });
    }
    if loaded > 0 || done.indexed {
        client.batch_execute(&format!("ANALYZE {qt}")).map_err(db(format!("analysing {qt}")))?;
    }
    record_dataset(client, opts, &ds, &m, &table)?;
    Ok(LoadSummary { seconds: start.elapsed().as_secs_f64(), ..summary })
}

/// What [`complete_table`] found and did.
struct Completion {
    /// Tiles of the manifest recorded in the ledger with their staged checksum.
    recorded: usize,
    /// This run built the primary key.
    indexed: bool,
    /// The primary key was built by another run since this one prepared the table.
    key_by_other: bool,
}

/// The last step of a load: under the table's advisory lock (the one [`prepare_table`]
/// takes), reads the ledger, and only if it holds every tile of `m` with its checksum builds
/// the primary key, unless it is there already or `--no-index`. Runs that load one dataset at
/// once (two `load`s, shards, two `merge --to-postgres`) thus build the key once, after the
/// last tile: the lock orders their checks, and a run that finds the ledger incomplete
/// leaves the key to whichever run completes it. `had_key`: the table had its key when this
/// run prepared it.
fn complete_table(
    client: &mut Client,
    opts: &LoadOptions,
    m: &Manifest,
    table: &str,
    had_key: bool,
) -> Result<Completion, LoadError> {
    let qt = qualified(&opts.schema, table);
    let what = format!("completing {qt}");
    let mut tx = client.transaction().map_err(db(&what))?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&format!("rasterstage:{qt}")]).map_err(db(&what))?;
    let ledger = ledger::read(&mut tx, &opts.schema, table).map_err(db(&what))?;
    let recorded =
        m.tiles.iter().filter(|t| ledger.get(&t.id).is_some_and(|r| r.checksum == ledger::wanted_checksum(t))).count();
    let mut done = Completion { recorded, indexed: false, key_by_other: false };
    if recorded < m.tiles.len() || opts.no_index {
        return Ok(done);
    }
    if has_primary_key(&mut tx, &qt).map_err(db(&what))? {
        if !had_key {
            tracing::info!("{}: the primary key of {qt} was already built by another run", m.name);
            done.key_by_other = true;
        }
        return Ok(done);
    }
    tracing::info!("{}: building the primary key of {qt}", m.name);
    tx.batch_execute(&format!("ALTER TABLE {qt} ADD PRIMARY KEY (row_idx, col_idx)")).map_err(|e| {
        // Only a unique violation means duplicate cells; a broken connection does not.
        let hint =
            if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) { " (duplicate cells?)" } else { "" };
        LoadError::Db { what: format!("building the primary key of {qt}{hint}"), reason: reason(&e) }
    })?;
    tx.commit().map_err(db(&what))?;
    done.indexed = true;
    Ok(done)
}

/// Upserts the dataset's row in `raster_datasets`.
fn record_dataset(
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
    let band = int4("source.band", m.source.band as u64)?;
    let (width, height) = (int4("grid.width", g.width as u64)?, int4("grid.height", g.height as u64)?);
    let tile_size = int4("window", m.window as u64)?;
    let tile_count = int4("tile_count", m.tiles.len() as u64)?;
    let rows: u64 = m.tiles.iter().try_fold(0u64, |n, t| n.checked_add(t.row_count)).unwrap_or(u64::MAX);
    let row_count = i64::try_from(rows).map_err(|_| out_of_range("row_count", rows.to_string()))?;
    let value_sum = m.tiles_sum();
    let format = match m.format {
        Format::Parquet => "parquet",
        Format::Zarr => "zarr",
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
                &m.source.path,
                &band,
                &g.crs_wkt,
                &epsg,
                &transform,
                &width,
                &height,
                &resolution,
                &bounds,
                &m.dtype.name(),
                &m.nodata,
                &m.method,
                &(m.method == "passthrough"),
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
