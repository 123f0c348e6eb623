//! The one loop that writes tiles in parallel and commits each after its object is complete;
//! `convert` and `merge` differ only in how a window becomes a stored tile.
//!
//! A worker that panics (a bug, or an input no check foresaw) fails its tile like any other
//! error: the panic is caught around the tile, reported as one line naming the dataset and
//! the tile, and the tile stays uncommitted, so a rerun redoes it.

use super::manifest::{self, TileRecord};
use super::StageError;
use crate::grid::Window;
use crate::progress::Progress;
use crate::source::SourceError;
use crate::store::Store;
use rayon::prelude::*;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

/// Why one tile of a `convert` or `merge` failed; the tile stays uncommitted.
#[derive(Debug, thiserror::Error)]
#[error("tile {tile}: {kind}")]
pub struct TileFailure {
    /// Tile id.
    pub(crate) tile: String,
    /// What went wrong.
    pub(crate) kind: TileErrorKind,
}

/// Some tiles of a `convert` or `merge` failed; the others are committed.
#[derive(Debug, thiserror::Error)]
#[error("{dataset}: {failed} of {total} tiles failed (first: {first}); the others are committed, rerun to retry")]
pub struct TilesFailed {
    /// Dataset name.
    pub(crate) dataset: String,
    /// Failed tiles.
    pub(crate) failed: usize,
    /// Tiles attempted.
    pub(crate) total: usize,
    /// The first failure.
    pub(crate) first: Box<TileFailure>,
}

/// What went wrong with a tile.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TileErrorKind {
    /// Opening or reading the source raster failed (convert).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Reading a tile of an input dataset failed (merge). Boxed as any error, so that the
    /// write loop knows nothing of the commands that use it (data flows one way).
    #[error(transparent)]
    Input(Box<dyn std::error::Error + Send + Sync>),
    /// Encoding, storing or committing the tile failed.
    #[error(transparent)]
    Stage(#[from] StageError),
    /// The tile's values sum to NaN, so no later step could check it by its sum.
    #[error("its values sum to NaN{}", super::NAN_SUM_ADVICE)]
    NanSum,
    /// The worker panicked: a bug, caught so that it costs only this tile.
    #[error("the worker panicked ({0}); this is a bug in rasterstage, please report it")]
    Panic(String),
}

thread_local! {
    /// How many [`catch_panic`] calls are active on this thread.
    static CATCHING: Cell<u32> = const { Cell::new(0) };
    /// Message and location of the last panic caught on this thread.
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that keeps panics inside [`catch_panic`] off stderr: they
/// become the tile's error line instead of "thread panicked at ..." plus a backtrace note.
/// Any other panic goes to the hook that was there before.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CATCHING.with(Cell::get) == 0 {
                return previous(info);
            }
            let payload = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_string());
            let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            let msg = format!("{}{at}", payload.replace('\n', " "));
            tracing::debug!("caught a worker panic: {msg}");
            CAUGHT.with(|c| *c.borrow_mut() = Some(msg));
        }));
    });
}

/// Runs `f`, turning a panic into `Err(message with location)`, printed by nobody.
///
/// # Errors
/// The panic's message, when `f` panics.
pub(crate) fn catch_panic<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    install_hook();
    CATCHING.with(|c| c.set(c.get() + 1));
    let r = catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(c.get() - 1));
    r.map_err(|_| CAUGHT.with(|c| c.borrow_mut().take()).unwrap_or_else(|| "no message".to_string()))
}

/// Runs `write` (compute and store one window, return its record) over `pending` on the
/// current rayon pool, commits every record into dataset folder `ds`, and returns the
/// committed records and each tile's failure (logged as it happens, naming the dataset). A
/// failed tile, a panicking one included, leaves no commit, so a rerun redoes exactly it.
pub(crate) fn write_and_commit<F>(
    name: &str,
    ds: &Store,
    pending: &[Window],
    progress: &Progress,
    write: F,
) -> (Vec<TileRecord>, Vec<TileFailure>)
where
    F: Fn(Window) -> Result<TileRecord, TileErrorKind> + Sync,
{
    let delay = crate::test_hooks::Pause::TileCommit.duration();
    let results: Vec<Result<TileRecord, TileFailure>> = pending
        .par_iter()
        .map(|win| {
            let tile = || -> Result<TileRecord, TileErrorKind> {
                let rec = write(*win)?;
                // Readers refuse a NaN tile sum as damage (same_sum matches no NaN), so such a
                // tile is never committed: it would make the whole dataset unreadable.
                if rec.value_sum.is_nan() {
                    return Err(TileErrorKind::NanSum);
                }
                if let Some(d) = delay {
                    std::thread::sleep(d);
                }
                manifest::commit(ds, &rec)?;
                Ok(rec)
            };
            let rec = catch_panic(tile)
                .unwrap_or_else(|msg| Err(TileErrorKind::Panic(msg)))
                .map_err(|kind| TileFailure { tile: win.tile_id(), kind })?;
            progress.tile_done(win.cells() as u64);
            Ok(rec)
        })
        .collect();
    progress.finish();
    let mut failures = Vec::new();
    let done = results.into_iter().filter_map(|r| r.map_err(|e| failures.push(e)).ok()).collect();
    for e in &failures {
        tracing::error!("{name}: {e}");
    }
    (done, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_and_the_thread_goes_on() {
        let r: Result<(), String> = catch_panic(|| panic!("boom {}", 7));
        let msg = r.unwrap_err();
        assert!(msg.starts_with("boom 7 at ") && msg.contains("write_loop.rs"), "{msg}");
        assert_eq!(catch_panic(|| 5), Ok(5));
        assert_eq!(CATCHING.with(Cell::get), 0);
    }
}
