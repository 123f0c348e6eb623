//! `inspect`: what is staged under a root, dataset by dataset.

use crate::stage::manifest::{self, Manifest, Status};
use crate::stage::StageError;
use crate::store::Store;
use serde::Serialize;

/// One staged dataset as `inspect` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetStatus {
    /// Dataset name.
    pub name: String,
    /// `converting` or `complete`.
    pub status: Status,
    /// Staging format.
    pub format: manifest::Format,
    /// Method or passthrough.
    pub method: String,
    /// Output type.
    pub dtype: String,
    /// Target width x height.
    pub shape: [usize; 2],
    /// Target resolution (x, y).
    pub resolution: [f64; 2],
    /// EPSG code, if any.
    pub(crate) epsg: Option<u32>,
    /// Committed tiles.
    pub tiles_done: usize,
    /// All tiles.
    pub tiles_total: usize,
    /// Staged rows (valid cells) in committed tiles.
    pub rows: u64,
    /// Sum of staged values.
    pub value_sum: f64,
    /// Dataset folder URL.
    pub(crate) url: String,
}

/// Every dataset under `root` (folders with a `dataset.json`), sorted by name.
///
/// # Errors
/// [`StageError`] naming the object that could not be read.
pub fn inspect(root: &Store) -> Result<Vec<DatasetStatus>, StageError> {
    let mut out = Vec::new();
    for folder in root.folders()? {
        let ds = root.child(&folder);
        let Some(m) = Manifest::read(&ds)? else { continue };
        let (done, rows, sum) = if m.status == Status::Complete {
            (m.tiles.len(), m.row_count, m.value_sum)
        } else {
            // Only records of this grid's windows count (a foreign one commits nothing).
            let recs: Vec<_> = manifest::committed(&ds)?.into_iter().filter(|r| m.check_tile(r).is_ok()).collect();
            (
                recs.len(),
                recs.iter().map(|r| r.row_count).sum(),
                crate::stage::manifest::exact_sum(recs.iter().map(|r| r.value_sum)),
            )
        };
        out.push(DatasetStatus {
            name: m.name.clone(),
            status: m.status,
            format: m.format.format(),
            method: m.method_label().to_string(),
            dtype: m.value_type().0.name().to_string(),
            shape: [m.grid.width, m.grid.height],
            resolution: [m.grid.dx, -m.grid.dy],
            epsg: m.grid.epsg,
            tiles_done: done,
            tiles_total: m.tile_count,
            rows,
            value_sum: sum,
            url: ds.url().to_string(),
        });
    }
    Ok(out)
}
