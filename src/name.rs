//! Dataset names: safe SQL identifiers and safe object-store keys, validated on construction.

use serde::{Deserialize, Serialize};

/// A dataset name matching `[a-z_][a-z0-9_]*`, at most 63 bytes (PostgreSQL's limit), after
/// `-` is normalised to `_`. It names the staging folder and the PostgreSQL table, so a bad
/// name can never reach SQL or a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DatasetName(String);

/// The tables rasterstage keeps in the target schema beside the dataset tables (see
/// `schemas/postgres.sql`). A dataset table of one of these names would be the catalogue
/// itself: `load --replace` would drop it.
pub(crate) const CATALOGUE_TABLES: [&str; 2] = ["raster_datasets", "raster_tile_loads"];

/// A name that cannot name a dataset.
#[derive(Debug, thiserror::Error)]
pub enum BadName {
    /// Not a safe identifier.
    #[error("dataset name {0:?} is not a safe SQL identifier: use lowercase letters, digits and _ (starting with a letter or _), at most 63 characters; pass another --name (name: in a config)")]
    Unsafe(String),
    /// A source path with nothing to make a name from.
    #[error("cannot make a dataset name from {0:?} (no letters or digits in its file name): pass --name")]
    NoStem(String),
    /// The dataset's table would be one of the [`CATALOGUE_TABLES`].
    #[error("{what} {table} is the name of rasterstage's catalogue table (reserved: {reserved}): {fix}", reserved = CATALOGUE_TABLES.join(", "))]
    Reserved {
        /// What makes the table name (the dataset name, or prefix + name).
        what: String,
        /// The table name.
        table: String,
        /// What to do instead.
        fix: String,
    },
}

impl DatasetName {
    /// Validates (after turning `-` into `_`).
    ///
    /// # Errors
    /// [`BadName`] quoting the name.
    pub(crate) fn new(s: &str) -> Result<DatasetName, BadName> {
        let n = s.replace('-', "_");
        let mut chars = n.chars();
        let ok_first = matches!(chars.next(), Some('a'..='z' | '_'));
        let ok_rest = chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'));
        (ok_first && ok_rest && n.len() <= 63).then_some(DatasetName(n)).ok_or_else(|| BadName::Unsafe(s.to_string()))
    }

    /// Refuses a name whose table, `prefix` + name, would be a catalogue table. `convert`
    /// checks the name alone (and with the config's `database.table_prefix`) before anything
    /// is staged; `load` checks prefix + name in `load::table_name`, the one place
    /// every table name (and so every `DROP TABLE`) comes from.
    ///
    /// # Errors
    /// [`BadName::Reserved`] naming the table and saying to pick another `--name`.
    pub(crate) fn check_not_reserved(&self, prefix: &str) -> Result<(), BadName> {
        let table = format!("{prefix}{}", self.0);
        if !CATALOGUE_TABLES.contains(&table.as_str()) {
            return Ok(());
        }
        let fix = "pick another dataset name with --name (name: in a config)";
        let (what, fix) = if prefix.is_empty() {
            ("dataset name".to_string(), fix.to_string())
        } else {
            (
                format!("table name (table prefix {prefix:?} + dataset name {:?})", self.0),
                format!("{fix} or another table prefix"),
            )
        };
        Err(BadName::Reserved { what, table, fix })
    }

    /// The default name of an ad hoc source: its file stem (the variable of a GDAL subdataset
    /// such as `NETCDF:"f.nc":var`; the last part of `/vsis3/...` or `s3://...` paths)
    /// normalised by [`normalise`].
    ///
    /// # Errors
    /// [`BadName::NoStem`] when nothing is left, saying to pass `--name`.
    pub(crate) fn from_source(src: &str) -> Result<DatasetName, BadName> {
        let n = normalise(&source_stem(src));
        if n.is_empty() {
            return Err(BadName::NoStem(src.to_string()));
        }
        DatasetName::new(&n)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Prefix of a normalised name that would start with a digit: identifiers cannot, and `r_`
/// ("raster") keeps the digits readable (`2019-landcover` -> `r_2019_landcover`).
pub(crate) const DIGIT_PREFIX: &str = "r_";

/// `s` as a safe identifier: lowercase, every run of characters outside `[a-z0-9_]` becomes
/// one `_`, no leading or trailing `_`, [`DIGIT_PREFIX`] before a leading digit, cut to 63
/// bytes. Empty when `s` has no letter or digit.
pub(crate) fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut gap = false;
    for c in s.chars().flat_map(char::to_lowercase) {
        if matches!(c, 'a'..='z' | '0'..='9' | '_') {
            if gap {
                out.push('_');
                gap = false;
            }
            out.push(c);
        } else {
            gap = true;
        }
    }
    let mut out = out.trim_matches('_').to_string();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, DIGIT_PREFIX);
    }
    // Only ASCII is left, so any byte index is a char boundary.
    out.truncate(63);
    out.trim_end_matches('_').to_string()
}

/// The file and the rest of a GDAL subdataset string, `DRIVER:"path":var` (or
/// `DRIVER:path:var`; `GTIFF_DIR:2:f.tif` ends with the file, and its rest is empty); `None`
/// for anything else. A driver prefix has two or more characters, so a Windows drive letter
/// is not one, and it is not a URL scheme (`s3://`).
pub(crate) fn subdataset(src: &str) -> Option<(&str, &str)> {
    let (driver, rest) = src.split_once(':')?;
    let is_driver =
        driver.len() >= 2 && driver.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !rest.starts_with("//");
    if !is_driver {
        return None;
    }
    Some(match rest.strip_prefix('"').and_then(|r| r.split_once('"')) {
        Some((file, tail)) => (file, tail.trim_start_matches(':')),
        None => match rest.rsplit_once(':') {
            Some((_, last)) if last.contains(['/', '\\', '.']) => (last, ""),
            Some((file, var)) => (file, var),
            None => (rest, ""),
        },
    })
}

/// The part of a GDAL source string that names the data: the subdataset variable of
/// `DRIVER:"path":var` (or `DRIVER:path:var`), else the file stem of the path's last part
/// (URLs without their `?query`).
fn source_stem(src: &str) -> String {
    let mut path = src;
    if let Some((file, var)) = subdataset(src) {
        let var = var.rsplit(['/', ':']).find(|p| !p.is_empty()).unwrap_or("");
        if !normalise(var).is_empty() && var.parse::<f64>().is_err() {
            return var.to_string();
        }
        path = file;
    }
    if path.contains("://") {
        path = path.split(['?', '#']).next().unwrap_or(path);
    }
    let last = path.trim_end_matches('/').rsplit(['/', '\\']).next().unwrap_or(path);
    std::path::Path::new(last).file_stem().map_or_else(|| last.to_string(), |s| s.to_string_lossy().into_owned())
}

impl TryFrom<String> for DatasetName {
    type Error = BadName;
    fn try_from(s: String) -> Result<Self, BadName> {
        DatasetName::new(&s)
    }
}

impl From<DatasetName> for String {
    fn from(n: DatasetName) -> String {
        n.0
    }
}

impl std::fmt::Display for DatasetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(DatasetName::new("am-fungi").unwrap().as_str(), "am_fungi");
        assert!(DatasetName::new("_x1").is_ok());
        for bad in ["", "1abc", "Plants", "x\"; DROP TABLE raster_datasets; --", "a b", "a/b", &"a".repeat(64)] {
            assert!(DatasetName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_from_sources() {
        let name = |s: &str| DatasetName::from_source(s).map(|n| n.as_str().to_string());
        for (src, want) in [
            ("RGB.byte.tif", "rgb_byte"),
            ("my raster (v2).tif", "my_raster_v2"),
            ("2019-landcover.tif", "r_2019_landcover"),
            ("/data/in/LC08_L2SP_196027.TIF", "lc08_l2sp_196027"),
            ("a__b.tif", "a__b"),
            ("__x--y__.tif", "x_y"),
            ("Höhe.tif", "h_he"),
            ("srtm", "srtm"),
            ("NETCDF:\"f.nc\":tas", "tas"),
            ("NETCDF:\"/d/Clim-2.nc\":Precip", "precip"),
            ("NETCDF:f.nc:sst", "sst"),
            ("HDF5:\"f.h5\"://grp/Band_1", "band_1"),
            ("GTIFF_DIR:2:/d/multi.tif", "multi"),
            ("/vsis3/bucket/dir/x.tif", "x"),
            ("/vsizip/a.zip/inner.tif", "inner"),
            ("s3://b/x.tif", "x"),
            ("https://host/p/DEM.tif?token=abc", "dem"),
            ("C:\\data\\win.tif", "win"),
        ] {
            assert_eq!(name(src).unwrap(), want, "{src}");
        }
        let long = format!("{}.tif", "Ab-".repeat(40));
        let n = name(&long).unwrap();
        assert!(n.len() <= 63 && !n.ends_with('_') && DatasetName::new(&n).is_ok(), "{n}");
        let n = name(&format!("{}.tif", "9".repeat(80))).unwrap();
        assert_eq!(n.len(), 63);
        assert!(n.starts_with("r_9"));
        for bad in ["(-).tif", "..tif", "/", "§§.tif"] {
            let e = name(bad).unwrap_err().to_string();
            assert!(e.contains("--name"), "{bad}: {e}");
        }
        assert!(DatasetName::new("a b").unwrap_err().to_string().contains("--name"));
        let e = DatasetName::from_source("Raster-Datasets.tif").unwrap().check_not_reserved("").unwrap_err();
        assert!(e.to_string().contains("--name"), "{e}");
    }

    #[test]
    fn catalogue_tables_are_reserved() {
        for t in CATALOGUE_TABLES {
            let e = DatasetName::new(t).unwrap().check_not_reserved("").unwrap_err().to_string();
            assert!(e.contains(t) && e.contains("--name") && e.contains("catalogue"), "{e}");
        }
        let n = DatasetName::new("datasets").unwrap();
        assert!(n.check_not_reserved("").is_ok());
        let e = n.check_not_reserved("raster_").unwrap_err().to_string();
        assert!(e.contains("raster_datasets") && e.contains("prefix"), "{e}");
        assert!(DatasetName::new("raster_datasets").unwrap().check_not_reserved("p_").is_ok());
    }
}
