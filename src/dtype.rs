//! Cell data types: the GDAL types rasterstage reads, and the one trait kernels use.

use serde::{Deserialize, Serialize};

/// A raster cell type (GDAL's names), from Byte to Float64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum DataType {
    /// 8-bit unsigned.
    Byte,
    /// 16-bit unsigned.
    UInt16,
    /// 16-bit signed.
    Int16,
    /// 32-bit unsigned.
    UInt32,
    /// 32-bit signed.
    Int32,
    /// 32-bit float.
    Float32,
    /// 64-bit float.
    Float64,
}

impl DataType {
    /// Every type, Byte to Float64.
    const ALL: [DataType; 7] = [
        DataType::Byte,
        DataType::UInt16,
        DataType::Int16,
        DataType::UInt32,
        DataType::Int32,
        DataType::Float32,
        DataType::Float64,
    ];

    /// (GDAL name, Zarr v3 `data_type`, Zarr v2 / numpy little-endian `dtype`, the PostgreSQL
    /// column type that holds every value of the type exactly).
    fn names(self) -> [&'static str; 4] {
        match self {
            DataType::Byte => ["Byte", "uint8", "|u1", "int2"],
            DataType::UInt16 => ["UInt16", "uint16", "<u2", "int4"],
            DataType::Int16 => ["Int16", "int16", "<i2", "int2"],
            DataType::UInt32 => ["UInt32", "uint32", "<u4", "int8"],
            DataType::Int32 => ["Int32", "int32", "<i4", "int4"],
            DataType::Float32 => ["Float32", "float32", "<f4", "float4"],
            DataType::Float64 => ["Float64", "float64", "<f8", "float8"],
        }
    }

    /// The GDAL type name.
    pub(crate) fn name(self) -> &'static str {
        self.names()[0]
    }

    /// Zarr v3 `data_type` name.
    pub(crate) fn zarr_v3(self) -> &'static str {
        self.names()[1]
    }

    /// Zarr v2 / numpy `dtype` string (little-endian).
    pub(crate) fn zarr_v2(self) -> &'static str {
        self.names()[2]
    }

    /// The PostgreSQL column type that holds every value of this type exactly.
    pub(crate) fn postgres(self) -> &'static str {
        self.names()[3]
    }

    /// Size of one cell in bytes.
    pub(crate) fn size(self) -> usize {
        crate::with_sample_type!(self, T => std::mem::size_of::<T>())
    }

    /// Whether the type is a float type (NaN counts as nodata).
    pub(crate) fn is_float(self) -> bool {
        matches!(self, DataType::Float32 | DataType::Float64)
    }

    /// The smallest and largest value of an integer type; `None` for floats.
    pub(crate) fn int_range(self) -> Option<(f64, f64)> {
        crate::with_sample_type!(self, T => (!self.is_float()).then_some((T::MIN.to_f64(), T::MAX.to_f64())))
    }

    /// Parses a GDAL type name (case-insensitive).
    pub(crate) fn parse(s: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(s))
    }
}

/// A cell value type the kernels work on.
pub(crate) trait Sample: Copy + PartialOrd + Send + Sync + Default + std::fmt::Debug + 'static {
    /// The matching [`DataType`].
    const DTYPE: DataType;
    /// Widen to f64 (exact for every supported type).
    fn to_f64(self) -> f64;
    /// Narrow from f64 (saturating for integers; callers pass in-range values).
    fn from_f64(v: f64) -> Self;
    /// Whether this value is data: not the nodata value and not NaN.
    fn is_valid(self, nodata: Option<Self>) -> bool;
    /// Little-endian bytes appended to `out` (Zarr chunks are little-endian).
    fn extend_le(values: &[Self], out: &mut Vec<u8>);
}

macro_rules! sample {
    ($($t:ty => $d:ident),*) => {$(
        impl Sample for $t {
            const DTYPE: DataType = DataType::$d;
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn is_valid(self, nodata: Option<Self>) -> bool {
                // A value compares with itself unless it is NaN: one rule for integers and floats.
                self.partial_cmp(&self).is_some() && nodata != Some(self)
            }
            fn extend_le(values: &[Self], out: &mut Vec<u8>) {
                out.reserve(values.len() * std::mem::size_of::<$t>());
                for v in values {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
    )*};
}

sample!(u8 => Byte, u16 => UInt16, i16 => Int16, u32 => UInt32, i32 => Int32, f32 => Float32, f64 => Float64);

/// Converts a nodata value given as f64 to `T`, or `None` when `T` cannot represent it
/// (a Byte raster whose nodata is -9999 has no cell equal to it).
pub(crate) fn nodata_as<T: Sample>(nodata: Option<f64>) -> Option<T> {
    let v = nodata?;
    let t = T::from_f64(v);
    (t.to_f64() == v || (v.is_nan() && T::DTYPE.is_float())).then_some(t)
}

/// Calls `$body` with `$T` bound to the Rust type of a [`DataType`].
#[macro_export]
macro_rules! with_sample_type {
    ($dtype:expr, $T:ident => $body:expr) => {
        $crate::with_sample_type!(@ $dtype, $T, $body, Byte u8, UInt16 u16, Int16 i16, UInt32 u32, Int32 i32, Float32 f32, Float64 f64)
    };
    (@ $dtype:expr, $T:ident, $body:expr, $($v:ident $t:ty),*) => {
        match $dtype {
            $($crate::dtype::DataType::$v => {
                type $T = $t;
                $body
            })*
        }
    };
}
