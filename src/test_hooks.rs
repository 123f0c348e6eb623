//! Hooks for crash and panic tests, switched on by `RASTERSTAGE_TEST_*` variables, all named
//! here. Not for production use.

use std::time::Duration;

/// `RASTERSTAGE_TEST_PANIC_TILE=<tile id>`: the worker of that tile panics (convert and
/// merge: while it holds its source; load: before its transaction), so tests can check that
/// a panic fails the tile alone, cleanly.
pub(crate) const TEST_PANIC_ENV: &str = "RASTERSTAGE_TEST_PANIC_TILE";

/// Where a test can pause the work, so it can kill the process while tiles are in flight.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pause {
    /// `RASTERSTAGE_TEST_TILE_DELAY_MS`: before each commit of `convert` and `merge`.
    TileCommit,
    /// `RASTERSTAGE_TEST_LOAD_DELAY_MS`: inside each tile's `load` transaction, mid-COPY, so
    /// that a test can kill the loader or its backend while a transaction is open.
    LoadCopy,
}

impl Pause {
    /// The variable that sets this pause, in milliseconds.
    pub(crate) fn env(self) -> &'static str {
        match self {
            Pause::TileCommit => "RASTERSTAGE_TEST_TILE_DELAY_MS",
            Pause::LoadCopy => "RASTERSTAGE_TEST_LOAD_DELAY_MS",
        }
    }

    /// The pause, when its variable is set.
    pub(crate) fn duration(self) -> Option<Duration> {
        std::env::var(self.env()).ok().and_then(|v| v.parse().ok()).map(Duration::from_millis)
    }
}

/// Panics if `tile` is the one [`TEST_PANIC_ENV`] names.
pub(crate) fn test_panic(tile: &str) {
    if std::env::var(TEST_PANIC_ENV).is_ok_and(|t| t == tile) {
        panic!("{TEST_PANIC_ENV} asked tile {tile} to panic");
    }
}
