//! `load --coords view`: a narrow table `row_idx, col_idx, <values>` with the coordinates
//! computed by a view.
//!
//! The rows are stored in `<table>__cells`; a view named as the table (`<prefix><dataset>`)
//! adds `x` and `y` from the grid with [`crate::centres::Axis::sql`], the same centres the
//! tiles and the default table hold, bit for bit. Queries written for the default table run
//! unchanged on the view. The ledger (`raster_tile_loads.dataset`), `raster_datasets`,
//! `verify` and `inspect` keep naming the view; COPY, deletes, the primary key and ANALYZE go
//! to the cells table.

use super::pg::{check_ident, qualified, quote, value_columns};
use super::LoadError;
use crate::stage::Manifest;
use postgres::GenericClient;

/// Suffix of the table that holds the rows behind a `--coords view` view.
pub(crate) const CELLS_SUFFIX: &str = "__cells";

/// Where `load` puts coordinates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Coords {
    /// `x` and `y` stored in every row (the default).
    #[default]
    Stored,
    /// Not stored: a view computes them from `row_idx` and `col_idx`.
    View,
}

/// The relations of one dataset's table.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// Coordinate mode.
    pub(crate) coords: Coords,
    /// Schema.
    schema: String,
    /// The table name users query (a table, or the view).
    pub(crate) table: String,
    /// Unqualified name of the relation that holds the rows.
    pub(crate) data: String,
}

/// The column type names `format_type()` reports for each PostgreSQL type rasterstage uses.
fn format_type_name(pg: &str) -> &'static str {
    match pg {
        "int2" => "smallint",
        "int4" => "integer",
        "int8" => "bigint",
        "float4" => "real",
        _ => "double precision",
    }
}

/// Kind of a relation (`pg_class.relkind`) by qualified name, `None` when absent.
pub(crate) fn relkind(c: &mut impl GenericClient, qt: &str) -> Result<Option<u8>, postgres::Error> {
    Ok(c.query_opt("SELECT relkind FROM pg_class WHERE oid = to_regclass($1)", &[&qt])?
        .map(|r| r.get::<_, i8>(0) as u8))
}

impl Layout {
    /// The layout of `table` in `schema`.
    ///
    /// # Errors
    /// [`LoadError::BadIdent`] when `<table>__cells` does not fit PostgreSQL's 63 bytes.
    pub(crate) fn new(coords: Coords, schema: &str, table: &str) -> Result<Layout, LoadError> {
        let data = match coords {
            Coords::Stored => table.to_string(),
            Coords::View => {
                let d = format!("{table}{CELLS_SUFFIX}");
                let what = format!("table name (--table-prefix + dataset name) plus {CELLS_SUFFIX} for --coords view");
                check_ident(&what, &d, false)?;
                d
            }
        };
        Ok(Layout { coords, schema: schema.to_string(), table: table.to_string(), data })
    }

    /// `"schema"."data"`: where COPY, deletes, the primary key and ANALYZE go.
    pub(crate) fn qdata(&self) -> String {
        qualified(&self.schema, &self.data)
    }

    /// `"schema"."table"`.
    pub(crate) fn qtable(&self) -> String {
        qualified(&self.schema, &self.table)
    }

    /// Whether rows carry `x` and `y`.
    pub(crate) fn stores_xy(&self) -> bool {
        self.coords == Coords::Stored
    }

    /// The rows' table's columns as `(name, PostgreSQL type, NOT NULL)`: `row_idx, col_idx`,
    /// `x, y` when stored, then the values (nullable in a merged dataset, one per input).
    fn columns(&self, m: &Manifest) -> Vec<(String, &'static str, bool)> {
        let keys = [("row_idx", "int4"), ("col_idx", "int4"), ("x", "float8"), ("y", "float8")];
        let keys = &keys[..if self.stores_xy() { 4 } else { 2 }];
        let not_null = m.columns().is_none();
        let values = value_columns(m).into_iter().map(|(n, t)| (n, t, not_null));
        keys.iter().map(|&(n, t)| (n.to_string(), t, true)).chain(values).collect()
    }

    /// The columns COPY writes, in order.
    pub(crate) fn copy_columns(&self, m: &Manifest) -> String {
        self.columns(m).iter().map(|(n, _, _)| quote(n)).collect::<Vec<_>>().join(", ")
    }

    /// The expected `(column, format_type)` of the rows' table.
    pub(crate) fn shape(&self, m: &Manifest) -> Vec<(String, String)> {
        self.columns(m).into_iter().map(|(n, t, _)| (n, format_type_name(t).to_string())).collect()
    }

    /// `CREATE TABLE` of the rows' table.
    pub(crate) fn create_sql(&self, m: &Manifest) -> String {
        let cols = self.columns(m);
        let cols: Vec<String> =
            cols.iter().map(|(n, t, nn)| format!("{} {t}{}", quote(n), if *nn { " NOT NULL" } else { "" })).collect();
        format!("CREATE TABLE {} ({})", self.qdata(), cols.join(", "))
    }

    /// `CREATE OR REPLACE VIEW` of the table name over the cells table: the centres of the
    /// current grid, so a reconverted dataset's view follows its grid.
    pub(crate) fn view_sql(&self, m: &Manifest) -> String {
        let values: Vec<String> = value_columns(m).iter().map(|(n, _)| quote(n)).collect();
        format!(
            "CREATE OR REPLACE VIEW {} AS SELECT row_idx, col_idx, {} AS x, {} AS y, {} FROM {}",
            self.qtable(),
            m.grid.x_axis().sql_cells("col_idx", m.grid.width),
            m.grid.y_axis().sql_cells("row_idx", m.grid.height),
            values.join(", "),
            self.qdata()
        )
    }

    /// Drops whatever holds this table's rows in either mode: the table, or the view and its
    /// cells table. A `<table>__cells` is dropped only behind a view of that name (a table of
    /// another dataset may be named so).
    ///
    /// # Errors
    /// The database's.
    pub(crate) fn drop_all(&self, c: &mut impl GenericClient) -> Result<(), postgres::Error> {
        let qt = self.qtable();
        let cells = qualified(&self.schema, &format!("{}{CELLS_SUFFIX}", self.table));
        match relkind(c, &qt)? {
            Some(b'v') => {
                c.batch_execute(&format!("DROP VIEW {qt}"))?;
                if relkind(c, &cells)?.is_some() {
                    c.batch_execute(&format!("DROP TABLE {cells}"))?;
                }
            }
            Some(_) => c.batch_execute(&format!("DROP TABLE {qt}"))?,
            None => {}
        }
        if self.coords == Coords::View && relkind(c, &self.qdata())?.is_some() {
            c.batch_execute(&format!("DROP TABLE {}", self.qdata()))?;
        }
        Ok(())
    }

    /// In view mode, the table name taken by a table (a default load): its columns, to be
    /// refused as another shape. In the default mode, a view there (a `--coords view` load)
    /// is refused the same way by the caller's shape check.
    ///
    /// # Errors
    /// The database's.
    pub(crate) fn table_in_the_way(&self, c: &mut impl GenericClient) -> Result<bool, postgres::Error> {
        Ok(!self.stores_xy() && matches!(relkind(c, &self.qtable())?, Some(k) if k != b'v'))
    }
}
