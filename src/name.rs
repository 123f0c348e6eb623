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
pub const CATALOGUE_TABLES: [&str; 2] = ["raster_datasets", "raster_tile_loads"];

/// A name that cannot name a dataset.
#[derive(Debug, thiserror::Error)]
pub enum BadName {
    /// Not a safe identifier.
    #[error("dataset name {0:?} is not a safe SQL identifier: use lowercase letters, digits and _ (starting with a letter or _), at most 63 characters")]
    Unsafe(String),
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

/// Whether `table` is one of the [`CATALOGUE_TABLES`].
pub fn is_catalogue_table(table: &str) -> bool {
    CATALOGUE_TABLES.contains(&table)
}

impl DatasetName {
    /// Validates (after turning `-` into `_`).
    ///
    /// # Errors
    /// [`BadName`] quoting the name.
    pub fn new(s: &str) -> Result<DatasetName, BadName> {
        let n = s.replace('-', "_");
        let mut chars = n.chars();
        let ok_first = matches!(chars.next(), Some('a'..='z' | '_'));
        let ok_rest = chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'));
        if ok_first && ok_rest && n.len() <= 63 {
            Ok(DatasetName(n))
        } else {
            Err(BadName::Unsafe(s.to_string()))
        }
    }

    /// Refuses a name whose table, `prefix` + name, would be a catalogue table. `convert`
    /// checks the name alone (and with the config's `database.table_prefix`) before anything
    /// is staged; `load` checks prefix + name in [`crate::load::table_name`], the one place
    /// every table name (and so every `DROP TABLE`) comes from.
    ///
    /// # Errors
    /// [`BadName::Reserved`] naming the table and saying to pick another `--name`.
    pub fn check_not_reserved(&self, prefix: &str) -> Result<(), BadName> {
        let table = format!("{prefix}{}", self.0);
        if !is_catalogue_table(&table) {
            return Ok(());
        }
        let what = if prefix.is_empty() {
            "dataset name".to_string()
        } else {
            format!("table name (table prefix {prefix:?} + dataset name {:?})", self.0)
        };
        let fix = if prefix.is_empty() {
            "pick another dataset name with --name (name: in a config)"
        } else {
            "pick another dataset name with --name (name: in a config) or another table prefix"
        };
        Err(BadName::Reserved { what, table, fix: fix.into() })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
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
