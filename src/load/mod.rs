//! `load`: staged tiles into PostgreSQL by binary COPY, exactly once per tile.
//!
//! Each tile loads in one transaction: delete the rows of a previous version of the tile (if
//! the ledger has one), COPY its rows, write its ledger row, COMMIT. The decision to skip or
//! reload is taken inside that transaction under a per-tile advisory lock, so a retry after a
//! commit whose acknowledgement was lost, or two loaders running at once, never load a tile
//! twice. Tiles load in parallel over `--jobs` connections; the primary key is built once,
//! after the bulk load, by the run that finds every tile in the ledger (under the table's
//! lock, so two runs at once never both build it), then the table is analysed.

mod catalogue;
pub mod coords_view;
pub(crate) mod copy;
mod error;
pub mod geometry;
pub(crate) mod ledger;
pub mod pg;
pub mod shard;
mod table;
mod tile;
pub mod verify;
pub mod view;

use crate::name::DatasetName;
use crate::progress::Progress;
use crate::stage::manifest::{Manifest, Status, TileRecord};
use crate::stage::write_loop::{catch_panic, TileErrorKind};
use crate::store::Store;
use crate::test_hooks::test_panic;
use catalogue::record_dataset;
use coords_view::{Coords, Layout};
use copy::CopyEncoder;
pub use error::LoadError;
use pg::{qualified, reason, ConnSpec};
use postgres::Client;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
pub(crate) use table::table_name;
use table::{complete_table, prepare_table};
use tile::{Failure, Job, Outcome};

/// `maintenance_work_mem` for the primary key build (raised to, never lowered).
pub(crate) const KEY_BUILD_MEM: &str = "512MB";
/// Attempts per tile when PostgreSQL fails transiently.
pub(crate) const MAX_ATTEMPTS: u32 = 6;
/// First retry delay; doubled on each further attempt.
pub(crate) const BACKOFF: Duration = Duration::from_millis(250);

/// One result per dataset, by name, in the order they were processed.
pub(crate) type PerDataset<T> = Vec<(String, Result<T, LoadError>)>;

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
    /// Skip building the primary key (and the GiST index on `geom`).
    pub no_index: bool,
    /// Add a PostGIS `geom` column (`--geometry`).
    pub geometry: Option<geometry::Geometry>,
    /// Drop and reload tables that exist.
    pub replace: bool,
    /// Store `x`, `y` in every row, or compute them in a view (`--coords view`).
    pub coords: Coords,
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
    /// Whether the GiST index on `geom` was built by this run.
    pub geom_indexed: bool,
    /// Whether another run loading the same table at the same time built the primary key
    /// (this run found it there when its own tiles were in).
    pub key_by_other: bool,
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
pub(crate) fn complete_manifest(ds: &Store) -> Result<Manifest, LoadError> {
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
    load_tiles(opts, None)
}

/// [`load`], or with `shard` only that shard's tiles of each dataset ([`shard::load_shard`]).
fn load_tiles(opts: &LoadOptions, shard: Option<crate::shard::Shard>) -> Result<PerDataset<LoadSummary>, LoadError> {
    pg::check_ident("--schema", &opts.schema, false)?;
    pg::check_ident("--table-prefix", &opts.table_prefix, true)?;
    let root = Store::open_with(&opts.root, &opts.storage)?;
    let names = dataset_names(&root, &opts.datasets)?;
    let mut mine = shard.map(|k| shard::tiles_of(&root, &names, k)).transpose()?;
    if opts.geometry.is_some() && opts.coords == Coords::View {
        return Err(LoadError::Geometry(geometry::GeometryError::NeedsStoredCoords));
    }
    let mut client = opts.conn.connect()?;
    geometry::check_available(&mut client, opts.geometry, &opts.conn)?;
    pg::apply_schema(&mut client, &opts.schema)?;
    let mut out = Vec::new();
    for name in names {
        let only = mine.as_mut().map(|m| m.remove(name.as_str()).unwrap_or_default());
        // The previous dataset may have ended on a broken connection (server restart).
        let r =
            revive(&mut client, &opts.conn).and_then(|()| load_dataset(opts, &root, &mut client, &name, only.as_ref()));
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

/// [`LoadError::Db`] doing `what`, for `map_err`.
fn db(what: impl Into<String>) -> impl Fn(postgres::Error) -> LoadError {
    let what = what.into();
    move |e| LoadError::Db { what: what.clone(), reason: reason(&e) }
}

/// Objects in the dataset folder that look like tiles but are not listed: ignored, with a
/// warning (a convert that crashed before committing them, or foreign files).
fn warn_unlisted(ds: &Store, m: &Manifest) -> Result<(), LoadError> {
    let listed: HashSet<String> = m.tiles.iter().flat_map(|t| m.tile_keys(t)).collect();
    let mut unlisted = Vec::new();
    for prefix in m.tile_prefixes() {
        unlisted.extend(ds.list(&prefix)?.into_iter().filter(|k| m.is_tile_key(k) && !listed.contains(k)));
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

/// Loads the tiles of `name` whose ids are in `only` (every tile when `None`: a shard's part
/// otherwise), then, if the ledger then holds every tile, builds the primary key
/// ([`complete_table`]), analyses the table and records the dataset.
fn load_dataset(
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
    let lay = Layout::new(opts.coords, &opts.schema, &table)?;
    let qd = lay.qdata();
    warn_unlisted(&ds, &m)?;
    let geom = geometry::GeomColumn::of(client, opts.geometry, &opts.conn, &m)?;
    let has_pk = prepare_table(client, opts, &m, &lay, geom.as_ref())?;

    let recorded = ledger::read(client, &opts.schema, &table).map_err(db(format!("reading the ledger of {qt}")))?;
    let todo: Vec<&TileRecord> = m
        .tiles
        .iter()
        .filter(|t| only.is_none_or(|o| o.contains(&t.id)))
        .filter(|t| !ledger::is_loaded(&recorded, t))
        .collect();
    let skipped_before = m.tiles.len() - todo.len();
    if todo.is_empty() && only.is_none() && !m.tiles.is_empty() {
        // Only when every tile would be skipped: then a count(*) (a full scan of a large
        // table, once per dataset) is the one thing that can tell "loaded" from "loaded, then
        // rows deleted by hand". A run with tiles to load never pays it.
        let recorded: i64 = m.tiles.iter().filter_map(|t| recorded.get(&t.id)).map(|r| r.rows).sum();
        let rows: i64 = client
            .query_one(&format!("SELECT count(*) FROM {qd}"), &[])
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
        data: &lay.data,
        copy_sql: format!(
            "COPY {qd} ({}{}) FROM STDIN (FORMAT binary)",
            lay.copy_columns(&m),
            if geom.is_some() { ", geom" } else { "" }
        ),
        geom_srid: geom.as_ref().map(|g| g.srid),
        delay: crate::test_hooks::Pause::LoadCopy.duration(),
    };
    let progress = Progress::new(name.as_str(), m.tiles.len() as u64, skipped_before as u64, opts.quiet);
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    // Set by the first tile that exhausts its retries: every other tile would wait through
    // the same retries against the same unavailable server, so none is started any more.
    let gave_up: OnceLock<String> = OnceLock::new();
    let loaded = AtomicUsize::new(0);
    let rows = std::sync::atomic::AtomicU64::new(0);
    let workers = opts.jobs.max(1).min(todo.len().max(1));
    let xy = lay.stores_xy();
    std::thread::scope(|s| {
        for w in 0..workers {
            let (job, todo, next, failed, gave_up, loaded, rows, progress) =
                (&job, &todo, &next, &failed, &gave_up, &loaded, &rows, &progress);
            s.spawn(move || {
                // Every worker owns its connection, opened lazily and replaced after a failure.
                let mut client: Option<Client> = None;
                let mut enc = CopyEncoder::for_xy(xy);
                loop {
                    if gave_up.get().is_some() {
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
                        (client, enc) = (None, CopyEncoder::for_xy(xy));
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
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(Failure::GaveUp(msg)) => {
                            let _ = gave_up.set(msg);
                        }
                    }
                }
                tracing::debug!("worker {w} done");
            });
        }
    });
    progress.finish();
    let (failed, loaded, rows) = (failed.into_inner(), loaded.into_inner(), rows.into_inner());
    if let Some(reason) = gave_up.into_inner() {
        let (dataset, committed, total) = (m.name.clone(), skipped_before + loaded, m.tiles.len());
        return Err(LoadError::GaveUp { dataset, committed, total, reason });
    }
    if failed > 0 {
        return Err(LoadError::TilesFailed { dataset: m.name.clone(), failed, total: m.tiles.len() });
    }
    // The workers rode out any restart on their own connections; this one may have died.
    revive(client, &opts.conn)?;
    let done = complete_table(client, opts, &m, &lay, has_pk, geom.as_ref())?;
    if done.recorded == m.tiles.len() {
        if loaded > 0 || done.indexed {
            client.batch_execute(&format!("ANALYZE {qd}")).map_err(db(format!("analysing {qd}")))?;
        }
        record_dataset(client, opts, &ds, &m, &table)?;
    } else if only.is_some() {
        tracing::info!(
            "{}: this shard's tiles are loaded; {} of {} in {qt}, the last shard builds the primary key",
            m.name,
            done.recorded,
            m.tiles.len()
        );
    } else {
        // Every tile of this run is committed or was found committed, so another run changed
        // the table meanwhile (--replace, or a load of a reconverted dataset).
        return Err(LoadError::Incomplete { table: qt, recorded: done.recorded, total: m.tiles.len() });
    }
    let mine = only.map_or(m.tiles.len(), HashSet::len);
    Ok(LoadSummary {
        name: m.name.clone(),
        table: qt,
        tiles: m.tiles.len(),
        loaded,
        skipped: mine - loaded.min(mine),
        rows,
        total_rows: m.row_count,
        seconds: start.elapsed().as_secs_f64(),
        indexed: done.indexed,
        geom_indexed: done.geom_indexed,
        key_by_other: done.key_by_other,
    })
}
