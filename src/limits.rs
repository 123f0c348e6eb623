//! Hard limits on sizes that come from input (files, dataset.json, flags, config, the
//! environment), checked before anything is allocated for them.
//!
//! Every limit is far above what a real global raster needs (a 1-arc-second global grid is
//! 1,296,000 x 648,000 cells, 8.4e11 cells) and far below what would exhaust memory or wrap
//! a PostgreSQL column; README's "Limits" section lists them. One place, so that convert,
//! load, merge and the manifest reader agree.

/// Most cells along one side of a grid: `row_idx`/`col_idx` are PostgreSQL `int4`.
pub(crate) const MAX_GRID_SIDE: u64 = i32::MAX as u64;
/// Most cells in one grid (2^42, about 4.4e12).
pub(crate) const MAX_GRID_CELLS: u64 = 1 << 42;
/// Largest window (tile) side in cells accepted from a staged `dataset.json`: a window's
/// cells are held in memory at once (16384^2 Float64 is 2 GiB). It is the largest window any
/// rasterstage version wrote; `convert` and `merge` now write at most
/// [`MAX_WINDOW_CELLS`]' square root (8192).
pub(crate) const MAX_WINDOW: usize = 16_384;
/// Smallest window side `convert` and `merge` write (`--window`).
pub(crate) const MIN_WRITE_WINDOW: usize = 16;
/// Largest window side `convert` and `merge` write: a window's cells are held in memory at
/// once, so its square is at most [`MAX_WINDOW_CELLS`] (8192).
pub(crate) const MAX_WRITE_WINDOW: usize = MAX_WINDOW_CELLS.isqrt() as usize;
/// Most cells in one window (a 8192 x 8192 window of Float64 is 512 MB of values).
pub(crate) const MAX_WINDOW_CELLS: u64 = 1 << 26;
/// Most windows along one side of a Zarr shard (`--zarr-shard K`, `output.zarr_shard`). A
/// shard's K x K windows are one unit of work whose compressed chunks are held until the
/// shard object is written, so its side (K x window) is also bounded like a window's: at most
/// [`MAX_WRITE_WINDOW`] cells when written, [`MAX_WINDOW`] when read from a `dataset.json`.
/// A shard then never holds more cells than the largest window.
pub const MAX_ZARR_SHARD: usize = MAX_WRITE_WINDOW / MIN_WRITE_WINDOW;
/// Most tiles in one dataset: the manifest lists every tile (a few hundred bytes each).
pub(crate) const MAX_TILES: u64 = 1 << 21;
/// Largest `dataset.json` or commit record read (bytes).
pub const MAX_MANIFEST_BYTES: u64 = 1 << 30;
/// Most worker threads (`--threads`/`-j`, `threads:`), before capping at the tile count.
pub const MAX_THREADS: usize = 256;
/// Most parallel PostgreSQL connections of one `load` (`--jobs`).
pub const MAX_JOBS: usize = 256;
/// Most retries of one object-store request (`storage.max_retries`,
/// `RASTERSTAGE_S3_MAX_RETRIES`); the retry timeout bounds the time anyway.
pub(crate) const MAX_RETRIES: usize = 100;
/// Most object-store requests in flight (`storage.max_concurrent_requests`,
/// `RASTERSTAGE_S3_MAX_CONCURRENT_REQUESTS`): each is a socket.
pub(crate) const MAX_CONCURRENT_REQUESTS: usize = 1024;
/// Largest relative "same resolution" tolerance (`--resolution-tolerance`,
/// `resampling.resolution_tolerance`): a larger one would take a requested resolution for
/// the source's and copy the source grid instead.
pub(crate) const MAX_RESOLUTION_TOLERANCE: f64 = 1e-3;
/// Most shards of a sharded run (`--shard K/N`, `--shards N`): the assignment holds a
/// counter per shard.
pub const MAX_SHARDS: usize = 65_536;
/// Widest `preview` image (`--width`), in pixels.
pub const MAX_PREVIEW_WIDTH: usize = 8192;
/// Most pixels of one `preview` map (4096 x 2048; the legend strip adds 24 rows): its
/// per-pixel sums and counts (16 bytes a pixel; 48 for `--method mode`) and its RGBA image
/// are held in memory, never the grid's cells.
pub const MAX_PREVIEW_PIXELS: u64 = 1 << 23;
/// Most preview values sorted for `--stretch percentile`.
pub const MAX_STRETCH_SAMPLE: usize = 1 << 16;
/// Longest accepted timeout or retry duration, in seconds (one day).
pub(crate) const MAX_DURATION_SECS: f64 = 86_400.0;

/// `secs` as a duration when it is finite and within `0..=MAX_DURATION_SECS`; `None`
/// otherwise (the caller names the setting in its error).
pub(crate) fn duration_secs(secs: f64) -> Option<std::time::Duration> {
    (secs.is_finite() && (0.0..=MAX_DURATION_SECS).contains(&secs)).then(|| std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_secs(1.5), Some(std::time::Duration::from_millis(1500)));
        for bad in [f64::NAN, f64::INFINITY, -1.0, 1e300, MAX_DURATION_SECS * 2.0] {
            assert_eq!(duration_secs(bad), None, "{bad}");
        }
    }
}
