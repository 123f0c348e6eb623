//! `merge --to-postgres --view`: a VIEW over already-loaded dataset tables instead of a
//! merged table. Each table's `(row_idx, col_idx)` is shifted by its dataset's offset on the
//! merged grid, the tables are joined on the shifted pair (FULL OUTER JOIN, or JOIN for
//! `--how inner`), and `x`, `y` are the merged grid's cell centres: the same rows a merged
//! table would hold, computed when queried.

use super::pg::{check_ident, exists, qualified, quote, ConnSpec};
use super::{db, table_name, LoadError};
use crate::grid::Grid;
use crate::name::DatasetName;
use crate::stage::manifest::How;

/// The `SELECT` of the view: `inputs` are `(qualified table, column name, [row, col] offset)`.
pub(crate) fn view_select(inputs: &[(String, String, [i64; 2])], grid: &Grid, how: How) -> String {
    // The centres tiles and tables hold, from the one formula (crate::centres).
    let x = grid.x_axis().sql("col_idx");
    let y = grid.y_axis().sql("row_idx");
    let mut sql = format!("SELECT row_idx, col_idx, {x} AS x, {y} AS y");
    for (i, (_, col, _)) in inputs.iter().enumerate() {
        sql.push_str(&format!(", t{i}.value AS {}", quote(col)));
    }
    let join = match how {
        How::Outer => "FULL OUTER JOIN",
        How::Inner => "JOIN",
    };
    for (i, (table, _, [r, c])) in inputs.iter().enumerate() {
        let sub = format!("(SELECT row_idx + {r} AS row_idx, col_idx + {c} AS col_idx, value FROM {table}) t{i}");
        if i == 0 {
            sql.push_str(&format!(" FROM {sub}"));
        } else {
            sql.push_str(&format!(" {join} {sub} USING (row_idx, col_idx)"));
        }
    }
    sql
}

/// A loaded dataset placed on the merged grid: `[row, col]` of its cell (0, 0).
pub type Placed = (DatasetName, [i64; 2]);

/// Creates (or replaces) the view `schema.name` over the loaded tables of `inputs` (each
/// dataset with the `[row, col]` of its cell (0, 0) on the merged `grid`, as
/// `merge::view_inputs` places them). Returns `"schema"."name"`.
///
/// # Errors
/// [`LoadError::NoTable`] for a dataset that is not loaded; [`LoadError::Db`] from
/// PostgreSQL; [`LoadError::BadIdent`] for a bad schema, prefix or table name.
pub fn create_view(
    conn: &ConnSpec,
    schema: &str,
    prefix: &str,
    inputs: &[Placed],
    grid: &Grid,
    name: &DatasetName,
    how: How,
) -> Result<String, LoadError> {
    check_ident("--schema", schema, false)?;
    check_ident("--table-prefix", prefix, true)?;
    let view = qualified(schema, &table_name(prefix, name)?);
    let mut tables = Vec::new();
    for (n, offset) in inputs {
        tables.push((qualified(schema, &table_name(prefix, n)?), n.to_string(), *offset));
    }
    let mut client = conn.connect()?;
    for (t, _, _) in &tables {
        if !exists(&mut client, t).map_err(db(format!("looking up {t}")))? {
            return Err(LoadError::NoTable(t.clone()));
        }
    }
    let db = db(format!("creating view {view}"));
    let mut tx = client.transaction().map_err(&db)?;
    // DROP + CREATE rather than CREATE OR REPLACE: a rerun with other inputs changes columns.
    tx.batch_execute(&format!("DROP VIEW IF EXISTS {view}")).map_err(&db)?;
    tx.batch_execute(&format!("CREATE VIEW {view} AS {}", view_select(&tables, grid, how))).map_err(&db)?;
    tx.commit().map_err(db)?;
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_shifts_and_joins() {
        let g =
            Grid { crs_wkt: String::new(), epsg: None, x0: -10.0, y0: 60.0, dx: 0.05, dy: -0.05, width: 3, height: 3 };
        let ins = vec![
            ("\"s\".\"a\"".to_string(), "a".to_string(), [0, 2]),
            ("\"s\".\"b\"".to_string(), "b".to_string(), [1, 0]),
        ];
        let sql = view_select(&ins, &g, How::Outer);
        assert!(sql.contains("row_idx + 0 AS row_idx, col_idx + 2 AS col_idx, value FROM \"s\".\"a\") t0"), "{sql}");
        assert!(sql.contains("FULL OUTER JOIN (SELECT row_idx + 1 AS row_idx"), "{sql}");
        // -10 and 0.05 in hundredths: x = (-2000 + (2 col + 1) * 5) * 0.005.
        let x = "((-2000::numeric + (2 * col_idx::numeric + 1) * 5::numeric) * '5e-3'::numeric)::float8 AS x";
        assert!(sql.contains(x), "{sql}");
        assert!(view_select(&ins, &g, How::Inner).contains(" JOIN (SELECT row_idx + 1"));
    }
}
