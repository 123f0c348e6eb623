//! Every object key of a staged dataset folder, in one place: the manifest, the commit
//! records, Parquet tiles, the Zarr group with its arrays, chunks and metadata documents.
//! Keys are relative to the dataset folder.

use super::format::ZarrVersion;

/// The manifest.
pub(crate) const MANIFEST: &str = "dataset.json";
/// Folder of per-tile commit records.
pub(crate) const COMMITS: &str = "_tiles";
/// Folder of Parquet tiles.
pub(crate) const TILES: &str = "tiles";

/// The commit record of tile `id`.
pub(crate) fn commit_record(id: &str) -> String {
    format!("{COMMITS}/{id}.json")
}

/// The tile id of a commit record's key, if it is one.
pub(crate) fn commit_id(key: &str) -> Option<&str> {
    key.strip_prefix(COMMITS)?.strip_prefix('/')?.strip_suffix(".json")
}

/// The Parquet tile of tile `id`.
pub(crate) fn parquet_tile(id: &str) -> String {
    format!("{TILES}/{id}.parquet")
}

/// Whether `key` is a Parquet tile.
pub(crate) fn is_parquet_tile(key: &str) -> bool {
    key.ends_with(".parquet")
}

/// The Zarr group of dataset `name`.
pub(crate) fn zarr_group(name: &str) -> String {
    format!("{name}.zarr")
}

/// The folder of `array` in the Zarr group of dataset `group`.
pub(crate) fn zarr_array(group: &str, array: &str) -> String {
    format!("{}/{array}", zarr_group(group))
}

/// Zarr v3's metadata document of a group or an array.
const ZARR_JSON: &str = "zarr.json";
/// Zarr v2's metadata document of an array.
const ZARRAY: &str = ".zarray";
/// Zarr v2's attributes of a group or an array.
const ZATTRS: &str = ".zattrs";
/// Zarr v2's metadata document of a group.
const ZGROUP: &str = ".zgroup";
/// Zarr v2's consolidated metadata of a group.
const ZMETADATA: &str = ".zmetadata";

/// Whether `key` is a Zarr metadata document (v3 `zarr.json`, v2 `.zarray`/`.zattrs`/
/// `.zgroup`/`.zmetadata`) rather than a chunk.
pub(crate) fn is_zarr_metadata(key: &str) -> bool {
    [ZARR_JSON, ZARRAY, ZATTRS, ZGROUP, ZMETADATA].contains(&key.rsplit('/').next().unwrap_or(""))
}

/// The folder of the Zarr group of dataset `group`, or of its array `array`.
fn zarr_node(group: &str, array: Option<&str>) -> String {
    array.map_or_else(|| zarr_group(group), |a| zarr_array(group, a))
}

/// The metadata document of the Zarr group of dataset `group` or, with `array`, of that
/// array: `zarr.json` in v3; `.zgroup` or `.zarray` in v2.
pub(crate) fn zarr_metadata(group: &str, array: Option<&str>, version: ZarrVersion) -> String {
    let doc = match (version, array) {
        (ZarrVersion::V3, _) => ZARR_JSON,
        (ZarrVersion::V2, None) => ZGROUP,
        (ZarrVersion::V2, Some(_)) => ZARRAY,
    };
    format!("{}/{doc}", zarr_node(group, array))
}

/// The v2 attributes of the group or of `array` (`.zattrs`; v3 keeps them in `zarr.json`).
pub(crate) fn zarr_attributes_v2(group: &str, array: Option<&str>) -> String {
    format!("{}/{ZATTRS}", zarr_node(group, array))
}

/// The v2 consolidated metadata of the group (`.zmetadata`; v3 consolidates into the
/// group's own `zarr.json`).
pub(crate) fn zarr_consolidated_v2(group: &str) -> String {
    format!("{}/{ZMETADATA}", zarr_group(group))
}

/// `key` relative to the Zarr group of dataset `group`: its name in consolidated metadata.
pub(crate) fn in_zarr_group<'k>(group: &str, key: &'k str) -> Option<&'k str> {
    key.strip_prefix(&zarr_group(group))?.strip_prefix('/')
}

/// The key of chunk `idx` of `array` in group `<group>.zarr` (v3: `c/<i>/<j>`, v2: `<i>.<j>`).
pub(crate) fn chunk_key(group: &str, zarr_version: ZarrVersion, array: &str, idx: &[usize]) -> String {
    let parts: Vec<String> = idx.iter().map(|i| i.to_string()).collect();
    let array = zarr_array(group, array);
    match (zarr_version, parts.is_empty()) {
        (ZarrVersion::V3, true) => format!("{array}/c"),
        (ZarrVersion::V3, false) => format!("{array}/c/{}", parts.join("/")),
        (ZarrVersion::V2, true) => format!("{array}/0"),
        (ZarrVersion::V2, false) => format!("{array}/{}", parts.join(".")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_keys_per_version_and_record_keys() {
        assert_eq!(commit_record("r0_c64"), "_tiles/r0_c64.json");
        assert_eq!(commit_id("_tiles/r0_c64.json"), Some("r0_c64"));
        assert_eq!(commit_id("_tilesx/r0.json"), None);
        assert_eq!(parquet_tile("r0_c0"), "tiles/r0_c0.parquet");
        assert!(is_zarr_metadata("m.zarr/a/zarr.json") && is_zarr_metadata("m.zarr/a/.zarray"));
        assert!(!is_zarr_metadata("m.zarr/a/c/0/0"));
        assert_eq!(chunk_key("m", ZarrVersion::V3, "a", &[1, 2]), "m.zarr/a/c/1/2");
        assert_eq!(chunk_key("m", ZarrVersion::V2, "a", &[1, 2]), "m.zarr/a/1.2");
        assert_eq!(chunk_key("m", ZarrVersion::V3, "spatial_ref", &[]), "m.zarr/spatial_ref/c");
        assert_eq!(chunk_key("m", ZarrVersion::V2, "spatial_ref", &[]), "m.zarr/spatial_ref/0");
    }

    #[test]
    fn metadata_keys_per_version() {
        let v3 = ZarrVersion::V3;
        let v2 = ZarrVersion::V2;
        assert_eq!(zarr_metadata("m", None, v3), "m.zarr/zarr.json");
        assert_eq!(zarr_metadata("m", Some("a"), v3), "m.zarr/a/zarr.json");
        assert_eq!(zarr_metadata("m", None, v2), "m.zarr/.zgroup");
        assert_eq!(zarr_metadata("m", Some("a"), v2), "m.zarr/a/.zarray");
        assert_eq!(
            (zarr_attributes_v2("m", None), zarr_attributes_v2("m", Some("a"))),
            ("m.zarr/.zattrs".into(), "m.zarr/a/.zattrs".into())
        );
        assert_eq!(zarr_consolidated_v2("m"), "m.zarr/.zmetadata");
        for k in [zarr_metadata("m", Some("a"), v3), zarr_metadata("m", Some("a"), v2), zarr_consolidated_v2("m")] {
            assert!(is_zarr_metadata(&k), "{k}");
        }
        assert_eq!(in_zarr_group("m", "m.zarr/a/zarr.json"), Some("a/zarr.json"));
        assert_eq!(in_zarr_group("m", "mm.zarr/a/zarr.json"), None);
    }
}
