//! The staging formats and Zarr versions, as flags, config and settings name them: a leaf that
//! the object keys (`stage/keys.rs`) and the manifest both build on.

use serde::{Deserialize, Serialize};

/// Staging format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One Parquet file per window under `tiles/`.
    Parquet,
    /// One Zarr group under `<name>.zarr/`: one array chunked by window (a merged dataset:
    /// one per column).
    Zarr,
}

/// Zarr format version: 3, or 2 for readers such as GDAL before 3.11.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(into = "u8")]
pub enum ZarrVersion {
    /// Zarr v2 (`.zarray`, `.zattrs`, dot-separated chunk keys).
    #[value(name = "2")]
    V2 = 2,
    /// Zarr v3 (`zarr.json`, `c/`-prefixed chunk keys).
    #[default]
    #[value(name = "3")]
    V3 = 3,
}

impl TryFrom<u8> for ZarrVersion {
    type Error = String;
    fn try_from(v: u8) -> Result<ZarrVersion, String> {
        match v {
            2 => Ok(ZarrVersion::V2),
            3 => Ok(ZarrVersion::V3),
            _ => Err(format!("must be 2 or 3, got {v}")),
        }
    }
}

// By hand rather than `try_from = "u8"`: an error raised while the number is read names the
// key (`output.zarr_version`), one raised after it only the section.
impl<'de> Deserialize<'de> for ZarrVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ZarrVersion, D::Error> {
        struct Number;
        impl serde::de::Visitor<'_> for Number {
            type Value = ZarrVersion;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("2 or 3")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ZarrVersion, E> {
                u8::try_from(v)
                    .ok()
                    .and_then(|n| ZarrVersion::try_from(n).ok())
                    .ok_or_else(|| E::custom(format!("must be 2 or 3, got {v}")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ZarrVersion, E> {
                u64::try_from(v)
                    .map_or_else(|_| Err(E::custom(format!("must be 2 or 3, got {v}"))), |n| self.visit_u64(n))
            }
        }
        d.deserialize_u64(Number)
    }
}

impl From<ZarrVersion> for u8 {
    fn from(v: ZarrVersion) -> u8 {
        v as u8
    }
}
