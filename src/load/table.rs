//! A dataset's table: its name, its DDL (created, checked, or replaced), and its completion
//! with the primary key, built once by whichever run (plain or shard) finds every tile loaded.

use super::coords_view::{relkind, Layout};
use super::{db, geometry, ledger, pg, LoadError, LoadOptions, KEY_BUILD_MEM};
use crate::name::DatasetName;
use crate::stage::manifest::{Manifest, TileRecord};
use pg::{qualified, reason};
use postgres::Client;
use std::collections::HashMap;

/// A dataset's table name: prefix + dataset name, checked to fit PostgreSQL's 63 bytes and
/// never to be a catalogue table: every dataset table name (and so every `DROP TABLE` of
/// `--replace`) comes from here, so no path can drop `raster_datasets` or `raster_tile_loads`.
///
/// # Errors
/// [`LoadError::BadIdent`]; [`LoadError::BadName`] for a catalogue table's name.
pub(crate) fn table_name(prefix: &str, name: &DatasetName) -> Result<String, LoadError> {
    let t = format!("{prefix}{name}");
    pg::check_ident("table name (--table-prefix + dataset name)", &t, false)?;
    name.check_not_reserved(prefix)?;
    Ok(t)
}

/// Columns of `table` as `(name, format_type)`, or `None` when it does not exist.
fn table_columns(
    c: &mut impl postgres::GenericClient,
    qt: &str,
) -> Result<Option<Vec<(String, String)>>, postgres::Error> {
    let Some(kind) = relkind(c, qt)? else { return Ok(None) };
    let rows = c.query(
        "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
         WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        &[&qt],
    )?;
    let mut cols: Vec<(String, String)> = rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
    if kind != b'r' && kind != b'p' {
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
pub(super) fn prepare_table(
    client: &mut Client,
    opts: &LoadOptions,
    m: &Manifest,
    lay: &Layout,
    geom: Option<&geometry::GeomColumn>,
) -> Result<bool, LoadError> {
    let (table, qt, qd) = (lay.table.as_str(), lay.qtable(), lay.qdata());
    let db = db(format!("preparing table {qt}"));
    let mut tx = client.transaction().map_err(&db)?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&format!("rasterstage:{qt}")]).map_err(&db)?;
    let mut expected = lay.shape(m);
    if let Some(g) = geom {
        expected.push(g.shape(&mut tx).map_err(&db)?);
    }
    let mut existing = table_columns(&mut tx, &qd).map_err(&db)?;
    if lay.table_in_the_way(&mut tx).map_err(&db)? {
        // A table with stored coordinates where the view goes.
        existing = table_columns(&mut tx, &qt).map_err(&db)?;
    }
    let mut create = existing.is_none();
    if let Some(cols) = existing {
        if opts.replace {
            tracing::info!("{}: --replace: dropping {qt}", m.name);
            lay.drop_all(&mut tx).map_err(&db)?;
            create = true;
        } else if cols != expected {
            geometry::check_shape(&qt, &cols, &expected)?;
            return Err(LoadError::WrongShape { table: qt, found: shape_text(&cols), expected: shape_text(&expected) });
        }
    }
    if create {
        tx.batch_execute(&lay.create_sql(m)).map_err(&db)?;
        if let Some(g) = geom {
            g.add_to(&mut tx, &qt).map_err(&db)?;
        }
        // The ledger describes rows of the table; a new table has none.
        ledger::clear(&mut tx, &opts.schema, table).map_err(&db)?;
    } else {
        let recorded = ledger::read(&mut tx, &opts.schema, table).map_err(&db)?;
        if recorded.is_empty() {
            // One statement, so one snapshot: a run loading this table right now commits a
            // tile's rows with its ledger row, and two statements could see the rows without
            // the ledger row.
            let sql = format!(
                "SELECT EXISTS (SELECT 1 FROM {qd}) AND NOT EXISTS (SELECT 1 FROM {} WHERE dataset = $1)",
                qualified(&opts.schema, "raster_tile_loads")
            );
            let foreign: bool = tx.query_one(&sql, &[&table]).map_err(&db)?.get(0);
            if foreign {
                return Err(LoadError::ForeignRows(qt));
            }
        }
        let staged: HashMap<&str, &TileRecord> = m.tiles.iter().map(|t| (t.id.as_str(), t)).collect();
        for (id, row) in &recorded {
            let same_window = staged.get(id.as_str()).is_some_and(|t| ledger::range_of(t) == row.range);
            if !same_window {
                tracing::info!("{}: tile {id} is no longer staged as loaded; removing its {} rows", m.name, row.rows);
                ledger::delete_range(&mut tx, &opts.schema, &lay.data, row.range).map_err(&db)?;
                ledger::forget(&mut tx, &opts.schema, table, id).map_err(&db)?;
            }
        }
    }
    if !lay.stores_xy() {
        tx.batch_execute(&lay.view_sql(m)).map_err(&db)?;
    }
    let has_pk = has_primary_key(&mut tx, &qd).map_err(&db)?;
    tx.commit().map_err(&db)?;
    Ok(has_pk)
}

/// Whether table `qt` (`"schema"."table"`) has a primary key.
fn has_primary_key(c: &mut impl postgres::GenericClient, qt: &str) -> Result<bool, postgres::Error> {
    let q = "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = to_regclass($1) AND indisprimary)";
    Ok(c.query_one(q, &[&qt])?.get(0))
}

/// What [`complete_table`] found and did.
pub(super) struct Completion {
    /// Tiles of the manifest recorded in the ledger with their staged checksum.
    pub(super) recorded: usize,
    /// This run built the primary key.
    pub(super) indexed: bool,
    /// This run built the GiST index on `geom`.
    pub(super) geom_indexed: bool,
    /// The primary key was built by another run since this one prepared the table.
    pub(super) key_by_other: bool,
}

/// The last step of a load: under the table's advisory lock (the one [`prepare_table`]
/// takes), reads the ledger, and only if it holds every tile of `m` with its checksum builds
/// the primary key, unless it is there already or `--no-index`. Runs that load one dataset at
/// once (two `load`s, shards, two `merge --to-postgres`) thus build the key once, after the
/// last tile: the lock orders their checks, and a run that finds the ledger incomplete
/// leaves the key to whichever run completes it. `had_key`: the table had its key when this
/// run prepared it. With `geom`, its GiST index is built the same way, in the same
/// transaction.
pub(super) fn complete_table(
    client: &mut Client,
    opts: &LoadOptions,
    m: &Manifest,
    lay: &Layout,
    had_key: bool,
    geom: Option<&geometry::GeomColumn>,
) -> Result<Completion, LoadError> {
    let (table, qt, qd) = (lay.table.as_str(), lay.qtable(), lay.qdata());
    let db = db(format!("completing {qt}"));
    let mut tx = client.transaction().map_err(&db)?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&format!("rasterstage:{qt}")]).map_err(&db)?;
    let ledger = ledger::read(&mut tx, &opts.schema, table).map_err(&db)?;
    let recorded = m.tiles.iter().filter(|t| ledger::is_loaded(&ledger, t)).count();
    let mut done = Completion { recorded, indexed: false, geom_indexed: false, key_by_other: false };
    if recorded < m.tiles.len() || opts.no_index {
        return Ok(done);
    }
    if has_primary_key(&mut tx, &qd).map_err(&db)? {
        if !had_key {
            tracing::info!("{}: the primary key of {qt} was already built by another run", m.name);
            done.key_by_other = true;
        }
        done.geom_indexed = geometry::index_and_commit(tx, geom, &m.name, &qt)?;
        return Ok(done);
    }
    tracing::info!("{}: building the primary key of {qt}", m.name);
    // Enough memory for the key's sort to run in memory rather than as an external merge
    // (1.14x faster on 8 M rows, docs/BENCHMARKS.md); only for this transaction, and never
    // lowering a larger setting. The sort allocates what it needs, up to this.
    tx.execute(
        "SELECT set_config('maintenance_work_mem', $1, true) \
         WHERE pg_size_bytes(current_setting('maintenance_work_mem')) < pg_size_bytes($1)",
        &[&KEY_BUILD_MEM],
    )
    .map_err(&db)?;
    tx.batch_execute(&format!("ALTER TABLE {qd} ADD PRIMARY KEY (row_idx, col_idx)")).map_err(|e| {
        // Only a unique violation means duplicate cells; a broken connection does not.
        let hint =
            if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) { " (duplicate cells?)" } else { "" };
        LoadError::Db { what: format!("building the primary key of {qt}{hint}"), reason: reason(&e) }
    })?;
    done.geom_indexed = geometry::index_and_commit(tx, geom, &m.name, &qt)?;
    done.indexed = true;
    Ok(done)
}
