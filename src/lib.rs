//! rasterstage: stage very large rasters for PostgreSQL, window by window with bounded
//! memory, through Parquet tiles or a Zarr array on local disk, S3, Google Cloud Storage or
//! Azure Blob.
//!
//! Data flows one way: [`source`] -> [`grid`] windows -> [`resample`] kernels ->
//! [`stage`] writers -> [`store`]; `load` reads the store.

pub mod aws_profile;
pub mod centres;
pub mod cloud;
pub mod compute;
pub mod config;
pub mod dtype;
pub mod grid;
pub mod inspect;
pub mod json;
pub mod limits;
pub mod load;
pub mod merge;
pub mod name;
pub mod pipeline;
pub mod plan;
pub mod preview;
pub mod progress;
pub mod resample;
pub mod shard;
pub mod source;
pub mod stage;
pub mod store;
pub mod tiff;
pub mod tile;
pub mod warp;
