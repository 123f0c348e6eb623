//! `load --geometry`: a PostGIS column `geom geometry(Point, <srid>)` holding each cell's
//! centre, for polygon queries (`ST_Within(geom, ...)`) served by a GiST index.
//!
//! The point is written by rasterstage itself, as EWKB inside the tile's binary COPY (the
//! `geometry` type's binary input reads EWKB), so a tile's rows arrive complete in the same
//! transaction as its ledger row: no later `UPDATE` rewrites the table, and the
//! exactly-once, resume and `--replace` rules of `load` hold for `geom` unchanged. The GiST
//! index is built where the primary key is, once, by the run that completes the table.
//!
//! The SRID is the dataset's EPSG code (`grid.epsg` of dataset.json). A CRS without one is
//! refused rather than loaded with SRID 0: PostGIS refuses to compare geometries of
//! different SRIDs, so SRID-0 points would fail every query against a polygon in a real CRS
//! and could never be transformed.

pub use super::error::GeometryError;
pub(crate) use super::error::MAX_SRID;
use super::pg::{qualified, quote, reason, ConnSpec};
use crate::stage::Manifest;
use postgres::GenericClient;

/// Bytes of the EWKB of a 2D point with an SRID: byte order, type, SRID, x, y.
const EWKB_LEN: usize = 1 + 4 + 4 + 8 + 8;
/// Bytes of a `geom` field in a binary COPY row: the length, then the EWKB.
pub(crate) const FIELD_LEN: usize = 4 + EWKB_LEN;
/// EWKB type word of a point with an SRID (`wkbPoint | 0x20000000`).
const POINT_WITH_SRID: u32 = 0x2000_0001;

/// The geometry `load --geometry` (config `load.geometry`) adds to each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Geometry {
    /// The cell's centre, `(x, y)`.
    Point,
}

impl Geometry {
    /// Parses a `--geometry` / `load.geometry` value.
    pub fn parse(s: &str) -> Option<Geometry> {
        match s {
            "point" => Some(Geometry::Point),
            _ => None,
        }
    }

    /// The values [`Geometry::parse`] accepts, for messages.
    pub const NAMES: &'static str = "point";
}

/// The binary COPY field of the point `(x, y)` with `srid`: its length, then little-endian
/// EWKB (a byte order PostGIS reads without swapping on the machines it runs on).
#[inline]
pub(crate) fn point_field(srid: u32, x: f64, y: f64) -> [u8; FIELD_LEN] {
    let mut b = [0u8; FIELD_LEN];
    b[0..4].copy_from_slice(&(EWKB_LEN as i32).to_be_bytes());
    b[4] = 1;
    b[5..9].copy_from_slice(&POINT_WITH_SRID.to_le_bytes());
    b[9..13].copy_from_slice(&srid.to_le_bytes());
    b[13..21].copy_from_slice(&x.to_le_bytes());
    b[21..29].copy_from_slice(&y.to_le_bytes());
    b
}

fn db(e: postgres::Error) -> super::LoadError {
    super::LoadError::Db { what: "looking up PostGIS".into(), reason: reason(&e) }
}

/// The schema PostGIS is installed in, or `None` when the database lacks it.
///
/// # Errors
/// The database's.
fn postgis_schema(c: &mut impl GenericClient) -> Result<Option<String>, postgres::Error> {
    let q = "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'postgis'";
    Ok(c.query_opt(q, &[])?.map(|r| r.get(0)))
}

/// With `--geometry`, checks that the target database has PostGIS: the first thing a load
/// does after connecting, so that without it nothing is written.
///
/// # Errors
/// [`GeometryError::NoPostgis`] (as a [`super::LoadError`]) naming the database and what to
/// run or install; [`super::LoadError::Db`].
pub(crate) fn check_available(
    client: &mut postgres::Client,
    geometry: Option<Geometry>,
    conn: &ConnSpec,
) -> Result<(), super::LoadError> {
    if geometry.is_some() && postgis_schema(client).map_err(db)?.is_none() {
        return Err(no_postgis(client, conn));
    }
    Ok(())
}

/// [`GeometryError::NoPostgis`] with a hint: `CREATE EXTENSION` where the server has PostGIS
/// to install, else the Debian package of the server's major version first.
fn no_postgis(client: &mut postgres::Client, conn: &ConnSpec) -> super::LoadError {
    let (available, major): (bool, i32) = match client.query_one(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'), \
             current_setting('server_version_num')::int / 10000",
        &[],
    ) {
        Ok(r) => (r.get(0), r.get(1)),
        Err(e) => return db(e),
    };
    let hint = if available {
        "run CREATE EXTENSION postgis; in that database (as a user allowed to create extensions)".to_string()
    } else {
        format!(
            "the server has no PostGIS to install: install it on the server (Debian/Ubuntu: apt-get install postgresql-{major}-postgis-3), then run CREATE EXTENSION postgis; in that database"
        )
    };
    GeometryError::NoPostgis { target: conn.describe(), hint }.into()
}

/// The `geom` column of one dataset's table: its SRID and where the `geometry` type lives.
#[derive(Debug, Clone)]
pub(crate) struct GeomColumn {
    /// The dataset's EPSG code.
    pub(crate) srid: u32,
    /// Schema of the PostGIS extension (the type is always named with it, so that `load
    /// --schema` works whatever the search_path).
    postgis: String,
}

impl GeomColumn {
    /// The column for dataset `m` with `--geometry`, or `None` without it.
    ///
    /// # Errors
    /// [`GeometryError::NoEpsg`], [`GeometryError::BadSrid`], [`GeometryError::NoPostgis`]
    /// (the extension was dropped since [`check_available`]), [`super::LoadError::Db`].
    pub(crate) fn of(
        client: &mut postgres::Client,
        geometry: Option<Geometry>,
        conn: &ConnSpec,
        m: &Manifest,
    ) -> Result<Option<GeomColumn>, super::LoadError> {
        let Some(Geometry::Point) = geometry else { return Ok(None) };
        let srid = match m.grid.epsg {
            None => return Err(GeometryError::NoEpsg { dataset: m.name.clone() }.into()),
            Some(e) if e > MAX_SRID => return Err(GeometryError::BadSrid { dataset: m.name.clone(), epsg: e }.into()),
            Some(e) => e,
        };
        let Some(postgis) = postgis_schema(client).map_err(db)? else { return Err(no_postgis(client, conn)) };
        let known: bool = client
            .query_one(
                &format!("SELECT EXISTS (SELECT 1 FROM {} WHERE srid = $1)", qualified(&postgis, "spatial_ref_sys")),
                &[&(srid as i32)],
            )
            .map_err(db)?
            .get(0);
        if !known {
            tracing::warn!(
                "{}: SRID {srid} is not in PostGIS's spatial_ref_sys: geom is loaded with it, but ST_Transform cannot convert it",
                m.name
            );
        }
        Ok(Some(GeomColumn { srid, postgis }))
    }

    /// The column as `pg_attribute`'s `format_type` shows it in this session (qualified
    /// with PostGIS's schema when that is not on the search_path), for the table shape check.
    ///
    /// # Errors
    /// The database's.
    pub(crate) fn shape(&self, c: &mut impl GenericClient) -> Result<(String, String), postgres::Error> {
        let n = quote(&self.postgis);
        let sql = format!(
            "SELECT format_type(to_regtype($1), {n}.geometry_typmod_in(ARRAY['Point', '{srid}']::cstring[]))",
            srid = self.srid
        );
        Ok(("geom".to_string(), c.query_one(&sql, &[&format!("{n}.geometry")])?.get(0)))
    }

    /// Adds the column to the table `qt`, just created in the same transaction.
    ///
    /// # Errors
    /// The database's.
    pub(crate) fn add_to(&self, c: &mut impl GenericClient, qt: &str) -> Result<(), postgres::Error> {
        c.batch_execute(&format!(
            "ALTER TABLE {qt} ADD COLUMN geom {}.geometry(Point, {}) NOT NULL",
            quote(&self.postgis),
            self.srid
        ))
    }
}

/// The end of `complete_table`'s transaction (the table's lock held, every tile in): builds
/// the GiST index on `geom` if the table has none, then commits. Returns whether it built it.
/// Called next to the primary key's build, so that concurrent loaders build it once.
///
/// # Errors
/// [`super::LoadError::Db`] naming the table.
pub(crate) fn index_and_commit(
    mut tx: postgres::Transaction<'_>,
    geom: Option<&GeomColumn>,
    dataset: &str,
    qt: &str,
) -> Result<bool, super::LoadError> {
    let mut built = false;
    if geom.is_some() {
        tracing::info!("{dataset}: building the GiST index on geom of {qt}");
        let db = super::db(format!("building the GiST index on geom of {qt}"));
        let exists: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
                 JOIN pg_am am ON am.oid = ic.relam JOIN pg_attribute a ON a.attrelid = i.indrelid \
                 AND a.attnum = i.indkey[0] WHERE i.indrelid = to_regclass($1) AND am.amname = 'gist' \
                 AND a.attname = 'geom')",
                &[&qt],
            )
            .map_err(&db)?
            .get(0);
        if !exists {
            // No name: PostgreSQL picks `<table>_geom_idx`, shortened and made unique in the
            // schema where a long table name would collide.
            tx.batch_execute(&format!("CREATE INDEX ON {qt} USING gist (geom)")).map_err(&db)?;
            built = true;
        }
    }
    tx.commit().map_err(super::db(format!("completing {qt}")))?;
    Ok(built)
}

/// Before `prepare_table` refuses a table of another shape: when the only difference is the
/// `geom` column (loaded with or without `--geometry`, or another SRID), a message saying
/// which flag to use.
///
/// # Errors
/// [`GeometryError::GeomColumn`].
pub(crate) fn check_shape(
    qt: &str,
    found: &[(String, String)],
    expected: &[(String, String)],
) -> Result<(), GeometryError> {
    let split = |cols: &[(String, String)]| {
        let (geom, rest): (Vec<_>, Vec<_>) = cols.iter().cloned().partition(|(n, _)| n == "geom");
        (geom.into_iter().next().map(|(_, t)| t), rest)
    };
    let ((has, rest_found), (wants, rest_expected)) = (split(found), split(expected));
    if rest_found != rest_expected || has == wants {
        return Ok(());
    }
    let (found, todo) = match (has, wants) {
        (Some(t), None) => (
            format!("has a geom column ({t}, loaded with --geometry)"),
            "load it with --geometry too, or rerun with --replace to reload it without geom".to_string(),
        ),
        (None, Some(_)) => (
            "has no geom column (loaded without --geometry)".to_string(),
            "rerun with --replace --geometry to reload it with geom, or load it without --geometry".to_string(),
        ),
        (Some(t), Some(w)) => (
            format!("has geom {t}, and the dataset's CRS now gives {w}"),
            "rerun with --replace --geometry to reload it".to_string(),
        ),
        (None, None) => return Ok(()),
    };
    Err(GeometryError::GeomColumn { table: qt.to_string(), found, todo })
}

/// `verify`: when `qt` has a `geom` column, checks in one pass that every row has one, at
/// its `(x, y)` (the SRID is the column's own constraint).
///
/// # Errors
/// [`GeometryError::Mismatch`]; [`super::LoadError::Db`].
pub(crate) fn verify(c: &mut postgres::Client, qt: &str, dataset: &str) -> Result<(), super::LoadError> {
    let db = |e: postgres::Error| super::LoadError::Db { what: format!("checking geom of {qt}"), reason: reason(&e) };
    let postgis: Option<String> = c
        .query_opt(
            "SELECT tn.nspname::text FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             JOIN pg_namespace tn ON tn.oid = t.typnamespace \
             WHERE a.attrelid = to_regclass($1) AND a.attname = 'geom' AND NOT a.attisdropped AND t.typname = 'geometry'",
            &[&qt],
        )
        .map_err(db)?
        .map(|r| r.get(0));
    let Some(n) = postgis.map(|s| quote(&s)) else { return Ok(()) };
    let row = c
        .query_one(
            &format!(
                "SELECT count(*) FILTER (WHERE geom IS NULL), \
                 count(*) FILTER (WHERE {n}.ST_X(geom) IS DISTINCT FROM x OR {n}.ST_Y(geom) IS DISTINCT FROM y) \
                 FROM {qt}"
            ),
            &[],
        )
        .map_err(db)?;
    let (null, moved): (i64, i64) = (row.get(0), row.get(1));
    // A NULL geom also counts as "distinct from x": only the non-NULL ones moved.
    let moved = moved - null;
    if null > 0 || moved > 0 {
        return Err(GeometryError::Mismatch { table: qt.to_string(), dataset: dataset.to_string(), null, moved }.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_field_is_postgis_ewkb() {
        // SELECT encode(ST_AsEWKB(ST_SetSRID(ST_MakePoint(1, 2), 4326), 'NDR'), 'hex') on PostGIS 3.3.
        let want = "0101000020e6100000000000000000f03f0000000000000040";
        let b = point_field(4326, 1.0, 2.0);
        assert_eq!(&b[..4], &25i32.to_be_bytes());
        let hex: String = b[4..].iter().map(|v| format!("{v:02x}")).collect();
        assert_eq!(hex, want);
    }

    #[test]
    fn shape_messages_name_the_flag() {
        let cols = |geom: Option<&str>| {
            let mut v = vec![("row_idx".to_string(), "integer".to_string()), ("value".into(), "real".into())];
            v.extend(geom.map(|t| ("geom".to_string(), t.to_string())));
            v
        };
        let g = Some("geometry(Point,4326)");
        let msg = |f, e| check_shape("t", &cols(f), &cols(e)).unwrap_err().to_string();
        assert!(msg(g, None).contains("load it with --geometry too"));
        assert!(msg(None, g).contains("rerun with --replace --geometry"));
        assert!(msg(Some("geometry(Point,3857)"), g).contains("now gives geometry(Point,4326)"));
        assert!(check_shape("t", &cols(g), &cols(g)).is_ok());
        // Other differences are left to the general shape error.
        let mut other = cols(None);
        other[1].1 = "smallint".into();
        assert!(check_shape("t", &other, &cols(g)).is_ok());
    }

    #[test]
    fn kinds() {
        assert_eq!(Geometry::parse("point"), Some(Geometry::Point));
        assert_eq!(Geometry::parse("Point"), None);
        assert_eq!(Geometry::parse("polygon"), None);
    }
}
