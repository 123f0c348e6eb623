//! `raster_tile_loads`: which tile of which table is committed, with which checksum.
//!
//! A tile's ledger row is written in the same transaction as its rows, so the ledger is
//! exactly what the table holds, whatever was interrupted.

use super::pg::{exists, qualified};
use crate::stage::TileRecord;
use postgres::GenericClient;
use std::collections::HashMap;

/// The checksum recorded for a tile with no valid cell (nothing staged, nothing loaded).
pub(crate) const EMPTY: &str = "empty";

/// What the ledger records for a tile.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LedgerRow {
    /// Tile id.
    pub(crate) tile_id: String,
    /// Window of the tile when it was loaded.
    pub(crate) range: [i32; 4],
    /// Checksum of the staged object that was loaded.
    pub(crate) checksum: String,
    /// Rows loaded.
    pub(crate) rows: i64,
}

/// The checksum the ledger should hold for `t` once it is loaded.
pub(crate) fn wanted_checksum(t: &TileRecord) -> &str {
    match (&t.path, &t.checksum) {
        (Some(_), Some(c)) => c,
        _ => EMPTY,
    }
}

/// Whether `recorded` (a table's ledger) holds tile `t` with its current checksum.
pub(crate) fn is_loaded(recorded: &HashMap<String, LedgerRow>, t: &TileRecord) -> bool {
    recorded.get(&t.id).is_some_and(|r| r.checksum == wanted_checksum(t))
}

/// `[row0, col0, rows, cols]` of a tile record.
pub(crate) fn range_of(t: &TileRecord) -> [i32; 4] {
    // TileRecord::check bounds every window read from a manifest to int4; saturating, not
    // wrapping, keeps any other record from naming another tile's window.
    let int4 = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
    [int4(t.window.row0), int4(t.window.col0), int4(t.window.rows), int4(t.window.cols)]
}

/// Every ledger row of table `table` in `schema`; empty when the ledger does not exist.
///
/// # Errors
/// The database's.
pub(crate) fn read(
    c: &mut impl GenericClient,
    schema: &str,
    table: &str,
) -> Result<HashMap<String, LedgerRow>, postgres::Error> {
    let ledger = qualified(schema, "raster_tile_loads");
    if !exists(c, &ledger)? {
        return Ok(HashMap::new());
    }
    let rows = c.query(
        &format!("SELECT tile_id, row0, col0, nrows, ncols, checksum, rows FROM {ledger} WHERE dataset = $1"),
        &[&table],
    )?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let row = LedgerRow {
                tile_id: r.get(0),
                range: [r.get(1), r.get(2), r.get(3), r.get(4)],
                checksum: r.get(5),
                rows: r.get(6),
            };
            (row.tile_id.clone(), row)
        })
        .collect())
}

/// Deletes the rows of `table` in a tile's window `[row0, col0, rows, cols]`.
///
/// # Errors
/// The database's.
pub(crate) fn delete_range(
    c: &mut impl GenericClient,
    schema: &str,
    table: &str,
    range: [i32; 4],
) -> Result<u64, postgres::Error> {
    let [r0, c0, nr, nc] = range;
    c.execute(
        &format!(
            "DELETE FROM {} WHERE row_idx >= $1 AND row_idx < $2 AND col_idx >= $3 AND col_idx < $4",
            qualified(schema, table)
        ),
        &[&r0, &(r0 + nr), &c0, &(c0 + nc)],
    )
}

/// Records a tile as loaded (insert or replace).
///
/// # Errors
/// The database's.
pub(crate) fn record(
    c: &mut impl GenericClient,
    schema: &str,
    table: &str,
    t: &TileRecord,
    rows: u64,
    value_sum: f64,
) -> Result<(), postgres::Error> {
    let [r0, c0, nr, nc] = range_of(t);
    c.execute(
        &format!(
            "INSERT INTO {} (dataset, tile_id, row0, col0, nrows, ncols, checksum, rows, value_sum, loaded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now()) \
             ON CONFLICT (dataset, tile_id) DO UPDATE SET row0 = EXCLUDED.row0, col0 = EXCLUDED.col0, \
             nrows = EXCLUDED.nrows, ncols = EXCLUDED.ncols, checksum = EXCLUDED.checksum, rows = EXCLUDED.rows, \
             value_sum = EXCLUDED.value_sum, loaded_at = EXCLUDED.loaded_at",
            qualified(schema, "raster_tile_loads")
        ),
        &[&table, &t.id, &r0, &c0, &nr, &nc, &wanted_checksum(t), &i64::try_from(rows).unwrap_or(i64::MAX), &value_sum],
    )?;
    Ok(())
}

/// Forgets every tile of `table`.
///
/// # Errors
/// The database's.
pub(crate) fn clear(c: &mut impl GenericClient, schema: &str, table: &str) -> Result<u64, postgres::Error> {
    c.execute(&format!("DELETE FROM {} WHERE dataset = $1", qualified(schema, "raster_tile_loads")), &[&table])
}

/// Forgets one tile of `table`.
///
/// # Errors
/// The database's.
pub(crate) fn forget(
    c: &mut impl GenericClient,
    schema: &str,
    table: &str,
    tile_id: &str,
) -> Result<u64, postgres::Error> {
    c.execute(
        &format!("DELETE FROM {} WHERE dataset = $1 AND tile_id = $2", qualified(schema, "raster_tile_loads")),
        &[&table, &tile_id],
    )
}

#[cfg(test)]
mod tests {
    /// What the loader derives from a tile record is safe for every manifest `stage`
    /// accepts, hand-edited or damaged ones included.
    #[test]
    fn accepted_mutated_manifests_give_ranges_and_checksums() {
        for m in crate::stage::manifest::fuzz_tests::accepted_manifests() {
            for t in &m.tiles {
                let _ = (super::range_of(t), super::wanted_checksum(t));
            }
        }
    }
}
