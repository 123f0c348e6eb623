//! Dataset names: safe SQL identifiers and safe object-store keys, validated on construction.

use serde::{Deserialize, Serialize};

/// A dataset name matching `[a-z_][a-z0-9_]*`, at most 63 bytes (PostgreSQL's limit), after
/// `-` is normalised to `_`. It names the staging folder and the PostgreSQL table, so a bad
/// name can never reach SQL or a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DatasetName(String);

/// A name that is not a safe identifier.
#[derive(Debug, thiserror::Error)]
#[error("dataset name {0:?} is not a safe SQL identifier: use lowercase letters, digits and _ (starting with a letter or _), at most 63 characters")]
pub struct BadName(pub String);

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
            Err(BadName(s.to_string()))
        }
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
}
