//! Resampling kernels for a source and a target grid in the same CRS, and `sum` to another
//! CRS ([`footprint`]).
//!
//! Kernels are pure functions over slices: they know nothing of GDAL, Parquet or
//! PostgreSQL. A kernel gets a block of source cells that covers everything the output cells
//! it computes need (see [`axis`]), so an output cell's value never depends on how the grid
//! was cut into windows or how many threads ran: there are no seams.

pub(crate) mod area;
pub(crate) mod axis;
pub(crate) mod footprint;
pub(crate) mod mode;
pub(crate) mod point;

use crate::dtype::DataType;
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// A resampling method, named as gdalwarp names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Area-weighted sum; conserves totals (counts such as species richness).
    Sum,
    /// Area-weighted mean of valid cells (continuous data).
    #[value(alias = "mean")]
    Average,
    /// Value covering the largest area; ties go to the smallest value (categorical data).
    #[value(alias = "majority")]
    Mode,
    /// Smallest valid value among intersecting source cells.
    Min,
    /// Largest valid value among intersecting source cells.
    Max,
    /// Source cell containing the output cell centre.
    #[serde(alias = "near")]
    #[value(alias = "near")]
    Nearest,
    /// Bilinear interpolation between source cell centres.
    Bilinear,
    /// Cubic convolution (4x4 kernel); GDAL's warper, also within one CRS.
    Cubic,
    /// Cubic B-spline (4x4 kernel, smoothing); GDAL's warper, also within one CRS.
    #[value(name = "cubicspline")]
    CubicSpline,
    /// Lanczos windowed sinc (6x6 kernel); GDAL's warper, also within one CRS.
    Lanczos,
    /// Median of the valid intersecting source cells; GDAL's warper, also within one CRS.
    Med,
    /// First quartile of the valid intersecting source cells; GDAL's warper.
    Q1,
    /// Third quartile of the valid intersecting source cells; GDAL's warper.
    Q3,
}

/// How a converted dataset's cells were made: copied from the source's cells, or resampled
/// with a method. Serialised as `"passthrough"` or the method's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Resampling {
    /// The source's cells, copied.
    Passthrough,
    /// Resampled with this method.
    #[serde(untagged)]
    Resampled(Method),
}

impl Resampling {
    /// `passthrough` or the method's name, as dataset.json and PostgreSQL record it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Resampling::Passthrough => "passthrough",
            Resampling::Resampled(m) => m.name(),
        }
    }
}

impl Method {
    /// The gdalwarp name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Method::Sum => "sum",
            Method::Average => "average",
            Method::Mode => "mode",
            Method::Min => "min",
            Method::Max => "max",
            Method::Nearest => "nearest",
            Method::Bilinear => "bilinear",
            Method::Cubic => "cubic",
            Method::CubicSpline => "cubicspline",
            Method::Lanczos => "lanczos",
            Method::Med => "med",
            Method::Q1 => "q1",
            Method::Q3 => "q3",
        }
    }

    /// Parses a gdalwarp method name; `near` and the original pipeline's `majority`/`mean`
    /// are accepted as aliases.
    pub(crate) fn parse(s: &str) -> Option<Method> {
        Method::from_str(s, true).ok()
    }

    /// The output cell type for a source type: `sum` is Float64 (fractional weights; exact
    /// for integer totals up to 2^53), `average` and the interpolating methods (`bilinear`,
    /// `cubic`, `cubicspline`, `lanczos`) are Float32 (Float64 stays Float64), the others keep
    /// the source type (they pick one of the source's values).
    pub(crate) fn output_type(self, src: DataType) -> DataType {
        match self {
            Method::Sum => DataType::Float64,
            _ if src == DataType::Float64 => src,
            Method::Average | Method::Bilinear | Method::Cubic | Method::CubicSpline | Method::Lanczos => {
                DataType::Float32
            }
            _ => src,
        }
    }

    /// Whether the kernel weighs source cells by their overlap with the output cell (as
    /// opposed to sampling at cell centres).
    pub(crate) fn is_areal(self) -> bool {
        !matches!(self, Method::Nearest | Method::Bilinear | Method::Cubic | Method::CubicSpline | Method::Lanczos)
    }

    /// Whether rasterstage has its own seamless kernel for this method within one CRS; the
    /// others go through GDAL's warper there too.
    pub(crate) fn has_own_kernel(self) -> bool {
        !matches!(self, Method::Cubic | Method::CubicSpline | Method::Lanczos | Method::Med | Method::Q1 | Method::Q3)
    }

    /// Every method name, comma-separated, for messages.
    pub(crate) fn names() -> String {
        Method::value_variants().iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
    }
}

/// A block of source cells, row-major, with its place on the source grid.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SourceBlock<'a, T> {
    /// The cells, `rows * cols` of them.
    pub(crate) data: &'a [T],
    /// Source row of `data[0]`.
    pub(crate) row0: usize,
    /// Source column of `data[0]`.
    pub(crate) col0: usize,
    /// Number of columns in a row of `data`.
    pub(crate) cols: usize,
}

impl<'a, T> SourceBlock<'a, T> {
    /// The cells of source row `row` (global index), from column `col0`.
    #[inline]
    pub(crate) fn row(&self, row: usize) -> &'a [T] {
        let r = row - self.row0;
        &self.data[r * self.cols..(r + 1) * self.cols]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &m in Method::value_variants() {
            assert_eq!(Method::parse(m.name()), Some(m));
        }
        assert_eq!(Method::parse("majority"), Some(Method::Mode));
        assert_eq!(Method::parse("near"), Some(Method::Nearest));
        assert_eq!(Method::parse("cubic"), Some(Method::Cubic));
        assert_eq!(Method::parse("CubicSpline"), Some(Method::CubicSpline));
        assert_eq!(Method::parse("bicubic"), None);
        assert!(!Method::Cubic.has_own_kernel() && Method::Bilinear.has_own_kernel());
    }
}
