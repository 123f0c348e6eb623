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

/// Whether `key` is a Zarr metadata document (v3 `zarr.json`, v2 `.zarray`/`.zattrs`/
/// `.zgroup`/`.zmetadata`) rather than a chunk.
pub(crate) fn is_zarr_metadata(key: &str) -> bool {
    matches!(key.rsplit('/').next().unwrap_or(""), "zarr.json" | ".zarray" | ".zattrs" | ".zgroup" | ".zmetadata")
}

/// The key of chunk `idx` of `array` in group `<group>.zarr` (v3: `c/<i>/<j>`, v2: `<i>.<j>`).
pub(crate) fn chunk_key(group: &str, zarr_version: ZarrVersion, array: &str, idx: &[usize]) -> String {
    let parts: Vec<String> = idx.iter().map(|i| i.to_string()).collect();
    let array = zarr_array(group, array);
    if zarr_version == ZarrVersion::V3 {
        if parts.is_empty() {
            format!("{array}/c")
        } else {
            format!("{array}/c/{}", parts.join("/"))
        }
    } else if parts.is_empty() {
        format!("{array}/0")
    } else {
        format!("{array}/{}", parts.join("."))
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
}
