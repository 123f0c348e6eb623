//! A dataset's table: its name, its DDL (created, checked, or replaced), and its completion
//! with the primary key, built once by whichever run (plain or shard) finds every tile loaded.

use super::{db, ledger, pg, LoadError, LoadOptions};
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
pub(super) fn prepare_table(
    client: &mut Client,
    opts: &LoadOptions,
    m: &Manifest,
    table: &str,
) -> Result<bool, LoadError> {
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

/// What [`complete_table`] found and did.
pub(super) struct Completion {
    /// Tiles of the manifest recorded in the ledger with their staged checksum.
    pub(super) recorded: usize,
    /// This run built the primary key.
    pub(super) indexed: bool,
    /// The primary key was built by another run since this one prepared the table.
    pub(super) key_by_other: bool,
}

/// The last step of a load: under the table's advisory lock (the one [`prepare_table`]
/// takes), reads the ledger, and only if it holds every tile of `m` with its checksum builds
/// the primary key, unless it is there already or `--no-index`. Runs that load one dataset at
/// once (two `load`s, shards, two `merge --to-postgres`) thus build the key once, after the
/// last tile: the lock orders their checks, and a run that finds the ledger incomplete
/// leaves the key to whichever run completes it. `had_key`: the table had its key when this
/// run prepared it.
pub(super) fn complete_table(
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
