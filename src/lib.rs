//! rasterstage: stage very large rasters for PostgreSQL, window by window with bounded
//! memory, through Parquet tiles or a Zarr array on local disk, S3, Google Cloud Storage or
//! Azure Blob.
//!
//! Data flows one way: [`source`] -> [`grid`] windows -> [`resample`] kernels ->
//! [`stage`] writers -> [`store`]; `load` reads the store.

pub(crate) mod aws_profile;
pub(crate) mod centres;
pub mod cloud;
pub mod config;
pub mod convert;
pub(crate) mod dtype;
pub mod grid;
pub mod inspect;
pub(crate) mod json;
pub mod limits;
pub mod load;
pub mod merge;
pub mod name;
pub mod preview;
pub mod progress;
pub mod resample;
pub mod shard;
pub mod source;
pub mod stage;
pub mod store;
pub mod target_grid;
pub(crate) mod test_hooks;
pub(crate) mod tiff;
pub(crate) mod tile;
pub(crate) mod warp;
pub(crate) mod window;
