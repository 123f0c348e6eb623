//! Integration tests: one binary, split by topic. They run the real `rasterstage` binary on
//! rasters generated here, and check the output with real readers (DuckDB, zarr-python,
//! xarray/rioxarray, gdalinfo) and a real PostgreSQL and S3, Azure and GCS emulators (started by
//! scripts/test.sh; see scripts/services.sh for the variables).

mod adversarial;
mod clouds;
mod code_layout;
mod common;
mod convert_cli;
mod convert_exact;
mod convert_geoparquet;
mod convert_readers;
mod convert_resume;
mod fuzz_tiff;
mod limits;
mod load;
mod load_coords;
mod load_server;
mod manifest_v1;
mod merge;
mod module_graph;
mod postgis;
mod preview;
mod real_files;
mod reproject;
mod robust;
mod s3;
mod shard;
mod slurm;
mod tamper;
mod zarr_cf;
mod zarr_shard;
