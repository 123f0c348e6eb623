//! The one loop that writes tiles in parallel and commits each after its object is complete;
//! `convert` and `merge` differ only in how a window becomes a stored tile.

use super::manifest::{self, TileRecord};
use crate::grid::Window;
use crate::progress::Progress;
use crate::store::Store;
use rayon::prelude::*;

/// `RASTERSTAGE_TEST_TILE_DELAY_MS`: a pause before each commit, so crash tests can kill the
/// process while tiles are in flight. Not for production use.
pub const TEST_DELAY_ENV: &str = "RASTERSTAGE_TEST_TILE_DELAY_MS";

/// Runs `write` (compute and store one window, return its record) over `pending` on the
/// current rayon pool, commits every record into dataset folder `ds`, and returns the
/// committed records and the message of each tile that failed (logged as it happens, naming
/// the dataset). A failed tile leaves no commit, so a rerun redoes exactly it.
pub fn write_and_commit<F>(
    name: &str,
    ds: &Store,
    pending: &[Window],
    progress: &Progress,
    write: F,
) -> (Vec<TileRecord>, Vec<String>)
where
    F: Fn(Window) -> Result<TileRecord, String> + Sync,
{
    let delay = std::env::var(TEST_DELAY_ENV).ok().and_then(|v| v.parse().ok()).map(std::time::Duration::from_millis);
    let results: Vec<Result<TileRecord, String>> = pending
        .par_iter()
        .map(|win| {
            let rec = write(*win)?;
            if let Some(d) = delay {
                std::thread::sleep(d);
            }
            manifest::commit(ds, &rec).map_err(|e| e.to_string())?;
            progress.tile_done(win.cells() as u64);
            Ok(rec)
        })
        .collect();
    progress.finish();
    let mut done = Vec::with_capacity(results.len());
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(rec) => done.push(rec),
            Err(e) => {
                tracing::error!("{name}: {e}");
                failures.push(e);
            }
        }
    }
    (done, failures)
}
