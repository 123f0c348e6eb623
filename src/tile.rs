//! One output window's values: what flows from the kernels to the tile writers.

use crate::dtype::Sample;
use crate::grid::Window;

/// The values of one output window, row-major, in the output cell type.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub(crate) enum TileValues {
    Byte(Vec<u8>),
    UInt16(Vec<u16>),
    Int16(Vec<i16>),
    UInt32(Vec<u32>),
    Int32(Vec<i32>),
    Float32(Vec<f32>),
    Float64(Vec<f64>),
}

/// Conversion between a typed vector and [`TileValues`].
pub(crate) trait IntoTileValues: Sample {
    /// Wraps a vector of this type.
    fn wrap(v: Vec<Self>) -> TileValues;
}

macro_rules! tile_values_impl {
    ($($t:ty => $v:ident),*) => {
        $(impl IntoTileValues for $t {
            fn wrap(v: Vec<Self>) -> TileValues {
                TileValues::$v(v)
            }
        })*
    };
}

tile_values_impl!(u8 => Byte, u16 => UInt16, i16 => Int16, u32 => UInt32, i32 => Int32, f32 => Float32, f64 => Float64);

/// Calls `$body` with `$x` bound to the typed vector inside a [`TileValues`].
#[macro_export]
macro_rules! with_tile_values {
    ($vals:expr, $x:ident => $body:expr) => {
        match $vals {
            $crate::tile::TileValues::Byte($x) => $body,
            $crate::tile::TileValues::UInt16($x) => $body,
            $crate::tile::TileValues::Int16($x) => $body,
            $crate::tile::TileValues::UInt32($x) => $body,
            $crate::tile::TileValues::Int32($x) => $body,
            $crate::tile::TileValues::Float32($x) => $body,
            $crate::tile::TileValues::Float64($x) => $body,
        }
    };
}

/// A finished output window.
#[derive(Debug, Clone)]
pub(crate) struct Tile {
    /// Where the window lies on the target grid.
    pub(crate) window: Window,
    /// Its values, `window.rows * window.cols` of them.
    pub(crate) values: TileValues,
    /// The output nodata value (NaN for float outputs without one).
    pub(crate) nodata: Option<f64>,
}

/// Row count and value sum of the valid cells of a slice. The sum runs in four lanes (cell
/// `i` goes to lane `i % 4`, lanes combined as `(0 + 1) + (2 + 3)`): a fixed order, so the sum
/// is reproducible, and no chain of dependent additions, which cost 8% of a Byte sum convert
/// at 1' when it ran cell after cell.
pub(crate) fn valid_stats<T: Sample>(values: &[T], nodata: Option<T>) -> (u64, f64) {
    const LANES: usize = 4;
    let mut n = [0u64; LANES];
    let mut s = [0.0f64; LANES];
    let mut add = |lane: usize, v: T| {
        let ok = v.is_valid(nodata);
        n[lane] += u64::from(ok);
        // Adding +0.0 leaves a lane exactly as it was (a lane that starts at +0.0 is never
        // -0.0), and keeps the loop free of branches.
        s[lane] += if ok { v.to_f64() } else { 0.0 };
    };
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (lane, &v) in c.iter().enumerate() {
            add(lane, v);
        }
    }
    for (lane, &v) in rest.iter().enumerate() {
        add(lane, v);
    }
    (n.iter().sum(), (s[0] + s[1]) + (s[2] + s[3]))
}

impl Tile {
    /// Row count and value sum of the valid cells.
    pub(crate) fn stats(&self) -> (u64, f64) {
        with_tile_values!(&self.values, v => valid_stats(v, crate::dtype::nodata_as(self.nodata)))
    }
}
