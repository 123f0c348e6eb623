//! Direct reads of plain GeoTIFF blocks, bypassing GDAL for the pixel data.
//!
//! GDAL (3.6, as Debian ships it) spends most of a Float32 read undoing TIFF's floating-point
//! predictor one byte at a time, and copies every block through its block cache. For the
//! common layout of big rasters (one band, little-endian, tiled or stripped, deflate, zstd or
//! no compression, predictor 1, 2 or 3) this module reads the compressed blocks itself,
//! inflates them with libdeflate (as GDAL does), undoes the predictor in tight loops and
//! copies the cells straight into the caller's buffer. The decoding is lossless, so the
//! values are bit-identical to GDAL's (the tests compare every layout with GDAL's read).
//!
//! Anything else (LZW, JPEG, big-endian files, pixel-interleaved bands, sparse blocks) is
//! reported as unsupported and the caller keeps reading through GDAL. Georeferencing, nodata
//! and the band's type always come from GDAL; this module only replaces the pixel reads.

use crate::dtype::DataType;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;

/// Decoded blocks kept per reader (one reader per worker thread): one row of blocks across a
/// wide window, so that the strips of a window that share a block row decode it once.
const BLOCK_CACHE_BYTES: usize = 24 << 20;

/// Largest block read directly: a file stored as a few huge strips (or one) would need that
/// much memory per block, which GDAL avoids by reading such strips in pieces.
const MAX_BLOCK_BYTES: usize = 16 << 20;

/// Errors reading a block; the caller adds the file and window.
#[derive(Debug, thiserror::Error)]
pub enum TiffError {
    /// Reading the file failed.
    #[error("block {block}: {source}")]
    Io {
        /// Block index.
        block: usize,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A block does not decode to the size the header promises.
    #[error("block {block} is corrupt: {reason}")]
    Corrupt {
        /// Block index.
        block: usize,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Deflate,
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Predictor {
    None,
    Horizontal,
    Float,
}

/// Where the blocks of one band are and how they are encoded.
#[derive(Debug, Clone)]
struct Layout {
    width: usize,
    height: usize,
    block_w: usize,
    block_h: usize,
    sample: usize,
    compression: Compression,
    predictor: Predictor,
    offsets: Vec<u64>,
    counts: Vec<u64>,
}

impl Layout {
    fn blocks_across(&self) -> usize {
        self.width.div_ceil(self.block_w)
    }

    /// Rows of data in block row `br` (the last strip of a stripped file is shorter).
    fn rows_in(&self, br: usize) -> usize {
        self.block_h.min(self.height - br * self.block_h)
    }
}

/// Reads windows of one band of a GeoTIFF straight from its blocks.
pub struct DirectReader {
    file: File,
    layout: Layout,
    inflater: libdeflater::Decompressor,
    compressed: Vec<u8>,
    cache: Vec<CachedBlock>,
    clock: u64,
}

struct CachedBlock {
    index: usize,
    last_use: u64,
    data: Vec<u8>,
}

impl DirectReader {
    /// Opens band `band` (1-based) of the GeoTIFF at `path` if its layout is one this module
    /// decodes and it matches what GDAL reported (`width` x `height` cells of `dtype`).
    /// `Ok(None)` with the reason when it is not: the caller then reads through GDAL.
    ///
    /// # Errors
    /// Reading the header failed.
    pub fn open(
        path: &Path,
        band: usize,
        width: usize,
        height: usize,
        dtype: DataType,
    ) -> std::io::Result<Result<DirectReader, String>> {
        let file = File::open(path)?;
        let layout = match parse(&file, band, dtype)? {
            Ok(l) => l,
            Err(why) => return Ok(Err(why)),
        };
        if (layout.width, layout.height) != (width, height) {
            return Ok(Err(format!(
                "first image is {}x{}, GDAL reports {width}x{height}",
                layout.width, layout.height
            )));
        }
        Ok(Ok(DirectReader {
            file,
            layout,
            inflater: libdeflater::Decompressor::new(),
            compressed: Vec::new(),
            cache: Vec::new(),
            clock: 0,
        }))
    }

    /// Bytes per cell.
    pub fn sample_size(&self) -> usize {
        self.layout.sample
    }

    /// Reads rows `rows` and columns `cols` into `out` (row-major, `sample_size()` bytes per
    /// cell, little-endian), which must hold exactly that many cells.
    ///
    /// # Errors
    /// [`TiffError`] naming the block that cannot be read or decoded.
    pub fn read(
        &mut self,
        rows: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
        out: &mut [u8],
    ) -> Result<(), TiffError> {
        let (bw, bh, ss) = (self.layout.block_w, self.layout.block_h, self.layout.sample);
        let out_row = cols.len() * ss;
        debug_assert_eq!(out.len(), rows.len() * out_row);
        if rows.is_empty() || cols.is_empty() {
            return Ok(());
        }
        for br in rows.start / bh..=(rows.end - 1) / bh {
            for bc in cols.start / bw..=(cols.end - 1) / bw {
                let index = br * self.layout.blocks_across() + bc;
                let slot = self.block(index, br)?;
                let data = &self.cache[slot].data;
                let (r0, r1) = (rows.start.max(br * bh), rows.end.min((br + 1) * bh));
                let (c0, c1) = (cols.start.max(bc * bw), cols.end.min((bc + 1) * bw));
                let len = (c1 - c0) * ss;
                for r in r0..r1 {
                    let from = ((r - br * bh) * bw + (c0 - bc * bw)) * ss;
                    let to = (r - rows.start) * out_row + (c0 - cols.start) * ss;
                    out[to..to + len].copy_from_slice(&data[from..from + len]);
                }
            }
        }
        Ok(())
    }

    /// The cache slot holding decoded block `index` (in block row `br`), decoding it if needed.
    fn block(&mut self, index: usize, br: usize) -> Result<usize, TiffError> {
        self.clock += 1;
        if let Some(i) = self.cache.iter().position(|b| b.index == index) {
            self.cache[i].last_use = self.clock;
            return Ok(i);
        }
        let l = &self.layout;
        let full = l.block_w * l.block_h * l.sample;
        let need = l.block_w * l.rows_in(br) * l.sample;
        // Reuse the least recently used block's buffer once the cache is full.
        let slot = if (self.cache.len() + 1) * full > BLOCK_CACHE_BYTES && !self.cache.is_empty() {
            (0..self.cache.len()).min_by_key(|&i| self.cache[i].last_use).expect("non-empty")
        } else {
            self.cache.push(CachedBlock { index, last_use: 0, data: vec![0; full] });
            self.cache.len() - 1
        };
        self.cache[slot].index = usize::MAX;
        let corrupt = |reason: String| TiffError::Corrupt { block: index, reason };
        let (offset, count) = (l.offsets[index], l.counts[index] as usize);
        self.compressed.resize(count, 0);
        self.file
            .read_exact_at(&mut self.compressed, offset)
            .map_err(|source| TiffError::Io { block: index, source })?;
        let data = &mut self.cache[slot].data;
        data.resize(full, 0);
        let got = match l.compression {
            Compression::None => {
                let n = count.min(full);
                data[..n].copy_from_slice(&self.compressed[..n]);
                n
            }
            Compression::Deflate => {
                self.inflater.zlib_decompress(&self.compressed, data).map_err(|e| corrupt(format!("deflate: {e}")))?
            }
            Compression::Zstd => zstd::bulk::decompress_to_buffer(&self.compressed, &mut data[..])
                .map_err(|e| corrupt(format!("zstd: {e}")))?,
        };
        if got < need {
            return Err(corrupt(format!("{got} bytes decoded, {need} expected")));
        }
        let row = l.block_w * l.sample;
        match l.predictor {
            Predictor::None => {}
            Predictor::Horizontal => data[..need].chunks_exact_mut(row).for_each(|r| undo_horizontal(r, l.sample)),
            Predictor::Float => {
                let mut tmp = Vec::new();
                data[..need].chunks_exact_mut(row).for_each(|r| undo_float(r, l.sample, &mut tmp));
            }
        }
        self.cache[slot].index = index;
        self.cache[slot].last_use = self.clock;
        Ok(slot)
    }
}

/// Undoes TIFF predictor 2 on one row: each sample was stored as the difference to the one
/// before it (wrapping, in the sample's own width).
fn undo_horizontal(row: &mut [u8], sample: usize) {
    macro_rules! prefix_sum {
        ($t:ty) => {{
            let mut prev: $t = 0;
            for c in row.chunks_exact_mut(std::mem::size_of::<$t>()) {
                prev = prev.wrapping_add(<$t>::from_le_bytes(c.try_into().expect("sample")));
                c.copy_from_slice(&prev.to_le_bytes());
            }
        }};
    }
    match sample {
        1 => {
            let mut prev = 0u8;
            for v in row.iter_mut() {
                prev = prev.wrapping_add(*v);
                *v = prev;
            }
        }
        2 => prefix_sum!(u16),
        4 => prefix_sum!(u32),
        _ => prefix_sum!(u64),
    }
}

/// Undoes TIFF predictor 3 (floating point) on one row of `n` samples: the row holds the
/// samples' bytes as planes, most significant byte first, and each byte was stored as the
/// difference to the byte before it across the whole row.
fn undo_float(row: &mut [u8], sample: usize, tmp: &mut Vec<u8>) {
    let mut prev = 0u8;
    for v in row.iter_mut() {
        prev = prev.wrapping_add(*v);
        *v = prev;
    }
    tmp.clear();
    tmp.extend_from_slice(row);
    let n = row.len() / sample;
    match sample {
        4 => {
            let (p0, rest) = tmp.split_at(n);
            let (p1, rest) = rest.split_at(n);
            let (p2, p3) = rest.split_at(n);
            for (j, out) in row.chunks_exact_mut(4).enumerate() {
                out.copy_from_slice(&[p3[j], p2[j], p1[j], p0[j]]);
            }
        }
        _ => {
            for (j, out) in row.chunks_exact_mut(sample).enumerate() {
                for (b, o) in out.iter_mut().enumerate() {
                    *o = tmp[(sample - 1 - b) * n + j];
                }
            }
        }
    }
}

/// Reads the first IFD of `file` and returns the layout of band `band`, or why it is not
/// one this module reads.
fn parse(file: &File, band: usize, dtype: DataType) -> std::io::Result<Result<Layout, String>> {
    let mut head = [0u8; 16];
    file.read_exact_at(&mut head, 0)?;
    if &head[..2] != b"II" {
        return Ok(Err("not a little-endian TIFF".into()));
    }
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let big = match u16_at(&head, 2) {
        42 => false,
        43 => true,
        _ => return Ok(Err("not a TIFF".into())),
    };
    let ifd = if big { u64_at(&head, 8) } else { u64::from(u32_at(&head, 4)) };
    let (count_size, entry_size) = if big { (8, 20) } else { (2, 12) };
    let mut buf = vec![0u8; count_size];
    file.read_exact_at(&mut buf, ifd)?;
    let n = if big { u64_at(&buf, 0) as usize } else { usize::from(u16_at(&buf, 0)) };
    if n > 4096 {
        return Ok(Err(format!("implausible IFD of {n} entries")));
    }
    let mut entries = vec![0u8; n * entry_size];
    file.read_exact_at(&mut entries, ifd + count_size as u64)?;

    // The values of one tag as u64s (SHORT, LONG or LONG8), read from the entry or its offset.
    let values = |tag: u16| -> std::io::Result<Option<Vec<u64>>> {
        let Some(e) = entries.chunks_exact(entry_size).find(|e| u16_at(e, 0) == tag) else {
            return Ok(None);
        };
        let (typ, count) = (u16_at(e, 2), if big { u64_at(e, 4) } else { u64::from(u32_at(e, 4)) });
        let size = match typ {
            3 => 2,
            4 => 4,
            16 => 8,
            _ => return Ok(None),
        };
        let bytes = count as usize * size;
        let inline = if big { 8 } else { 4 };
        let at = if big { 12 } else { 8 };
        let raw = if bytes <= inline {
            e[at..at + bytes].to_vec()
        } else {
            let off = if big { u64_at(e, at) } else { u64::from(u32_at(e, at)) };
            let mut v = vec![0u8; bytes];
            file.read_exact_at(&mut v, off)?;
            v
        };
        Ok(Some(
            raw.chunks_exact(size)
                .map(|c| match size {
                    2 => u64::from(u16_at(c, 0)),
                    4 => u64::from(u32_at(c, 0)),
                    _ => u64_at(c, 0),
                })
                .collect(),
        ))
    };
    let one = |tag: u16| -> std::io::Result<Option<u64>> { Ok(values(tag)?.and_then(|v| v.first().copied())) };

    let (Some(width), Some(height)) = (one(256)?, one(257)?) else {
        return Ok(Err("no image size".into()));
    };
    let (width, height) = (width as usize, height as usize);
    let spp = one(277)?.unwrap_or(1) as usize;
    let planar = one(284)?.unwrap_or(1);
    if spp > 1 && planar != 2 {
        return Ok(Err("pixel-interleaved bands".into()));
    }
    if band > spp {
        return Ok(Err(format!("band {band} is not in the first image")));
    }
    let bits = values(258)?.unwrap_or_else(|| vec![1]);
    let format = one(339)?.unwrap_or(1);
    let want_format = match dtype {
        DataType::Byte | DataType::UInt16 | DataType::UInt32 => 1,
        DataType::Int16 | DataType::Int32 => 2,
        DataType::Float32 | DataType::Float64 => 3,
    };
    if bits.iter().any(|&b| b as usize != dtype.size() * 8) || format != want_format {
        return Ok(Err(format!("samples of {} bits, format {format}, not {}", bits[0], dtype.name())));
    }
    let compression = match one(259)?.unwrap_or(1) {
        1 => Compression::None,
        8 | 32946 => Compression::Deflate,
        50000 => Compression::Zstd,
        c => return Ok(Err(format!("compression {c}"))),
    };
    let predictor = match one(317)?.unwrap_or(1) {
        1 => Predictor::None,
        2 => Predictor::Horizontal,
        3 if dtype.is_float() => Predictor::Float,
        p => return Ok(Err(format!("predictor {p}"))),
    };
    let tiled = (one(322)?, one(323)?);
    // Tiles are stored whole even where they overhang the image; a strip never is, and
    // RowsPerStrip may exceed the height (one strip).
    let (block_w, block_h, offsets, counts) = match tiled {
        (Some(tw), Some(th)) => (tw as usize, th as usize, values(324)?, values(325)?),
        _ => (width, one(278)?.map_or(height, |r| (r as usize).min(height)), values(273)?, values(279)?),
    };
    let (Some(offsets), Some(counts)) = (offsets, counts) else {
        return Ok(Err("no block offsets".into()));
    };
    if block_w == 0 || block_h == 0 || width == 0 || height == 0 {
        return Ok(Err("empty image or blocks".into()));
    }
    if block_w * block_h * dtype.size() > MAX_BLOCK_BYTES {
        return Ok(Err(format!("blocks of {block_w}x{block_h} cells are too large to decode whole")));
    }
    let per_plane = width.div_ceil(block_w) * height.div_ceil(block_h);
    let first = (band - 1) * per_plane;
    if offsets.len() < first + per_plane || counts.len() < first + per_plane {
        return Ok(Err("fewer block offsets than blocks".into()));
    }
    let offsets = offsets[first..first + per_plane].to_vec();
    let counts = counts[first..first + per_plane].to_vec();
    if offsets.iter().zip(&counts).any(|(&o, &c)| o == 0 || c == 0) {
        // GDAL fills missing blocks with the nodata value; leave that to it.
        return Ok(Err("sparse file (blocks without data)".into()));
    }
    Ok(Ok(Layout { width, height, block_w, block_h, sample: dtype.size(), compression, predictor, offsets, counts }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizontal_predictor_round_trip() {
        for sample in [1usize, 2, 4, 8] {
            let values: Vec<u8> = (0..64u32).map(|i| (i * 37 % 251) as u8).collect();
            let mut enc = values.clone();
            // Encode: differences from the end backwards, as libtiff does.
            let n = enc.len() / sample;
            for i in (1..n).rev() {
                let get = |b: &[u8], i: usize| {
                    let mut x = [0u8; 8];
                    x[..sample].copy_from_slice(&b[i * sample..(i + 1) * sample]);
                    u64::from_le_bytes(x)
                };
                let d = get(&enc, i).wrapping_sub(get(&enc, i - 1)).to_le_bytes();
                enc[i * sample..(i + 1) * sample].copy_from_slice(&d[..sample]);
            }
            undo_horizontal(&mut enc, sample);
            assert_eq!(enc, values, "sample size {sample}");
        }
    }

    use gdal::raster::{Buffer, GdalType, RasterCreationOptions};
    use gdal::{Dataset, DriverManager};

    /// Writes a 2-band GeoTIFF of `T` with GDAL's creation `options` and returns its path.
    fn write<T: GdalType + Copy>(dir: &Path, name: &str, options: &[&str], value: impl Fn(usize) -> T) -> PathBuf {
        let (w, h) = (150, 97);
        let path = dir.join(name);
        let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
        let opts = RasterCreationOptions::from_iter(options.iter().copied());
        let ds = driver.create_with_band_type_with_options::<T, _>(&path, w, h, 2, &opts).unwrap();
        for b in 1..=2 {
            let values: Vec<T> = (0..w * h).map(|i| value(i * b)).collect();
            let mut buf = Buffer::new((w, h), values);
            ds.rasterband(b).unwrap().write((0, 0), (w, h), &mut buf).unwrap();
        }
        path
    }

    /// The bytes of a slice of plain numbers (so that NaN cells compare equal).
    fn bytes_of<T: GdalType + Copy>(v: &mut [T]) -> &mut [u8] {
        // SAFETY: GdalType types are plain numbers: every byte pattern is a value.
        unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
    }

    /// Reads windows of every band directly and through GDAL and compares the bytes.
    fn same_as_gdal<T: GdalType + Copy + Default>(path: &Path, dtype: DataType) {
        let ds = Dataset::open(path).unwrap();
        let (w, h) = ds.raster_size();
        for band in 1..=2 {
            let mut direct = DirectReader::open(path, band, w, h, dtype)
                .unwrap()
                .unwrap_or_else(|why| panic!("{}: not read directly: {why}", path.display()));
            for (rows, cols) in [(0..h, 0..w), (5..61, 17..149), (90..97, 0..1), (33..34, 64..65)] {
                let mut ours = vec![T::default(); rows.len() * cols.len()];
                direct.read(rows.clone(), cols.clone(), bytes_of(&mut ours)).unwrap();
                let mut gdal = vec![T::default(); rows.len() * cols.len()];
                let size = (cols.len(), rows.len());
                ds.rasterband(band)
                    .unwrap()
                    .read_into_slice::<T>((cols.start as isize, rows.start as isize), size, size, &mut gdal, None)
                    .unwrap();
                let same = bytes_of(&mut ours) == bytes_of(&mut gdal);
                assert!(same, "{} band {band} rows {rows:?} cols {cols:?}", path.display());
            }
        }
    }

    fn layouts(predictors: &[&'static str]) -> Vec<Vec<&'static str>> {
        let mut all = Vec::new();
        for compress in ["COMPRESS=NONE", "COMPRESS=DEFLATE", "COMPRESS=ZSTD"] {
            for &predictor in predictors {
                // Tiles inside the image, one tile larger than the image, strips.
                let tiles = &["TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=32"][..];
                let large = &["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256"][..];
                for blocks in [tiles, large, &["BLOCKYSIZE=7"][..], &["BLOCKYSIZE=500"][..]] {
                    for big in ["BIGTIFF=NO", "BIGTIFF=YES"] {
                        let mut o = vec![compress, predictor, big, "INTERLEAVE=BAND"];
                        o.extend_from_slice(blocks);
                        all.push(o);
                    }
                }
            }
        }
        all
    }

    #[test]
    fn direct_reads_equal_gdal_reads() {
        let dir = tempfile::tempdir().unwrap();
        let ints = ["PREDICTOR=1", "PREDICTOR=2"];
        let floats = ["PREDICTOR=1", "PREDICTOR=2", "PREDICTOR=3"];
        for (k, o) in layouts(&ints).iter().enumerate() {
            let p = write(dir.path(), &format!("u8_{k}.tif"), o, |i| (i * 7 % 256) as u8);
            same_as_gdal::<u8>(&p, DataType::Byte);
            let p = write(dir.path(), &format!("i16_{k}.tif"), o, |i| (i as i64 * 611 % 65536 - 32768) as i16);
            same_as_gdal::<i16>(&p, DataType::Int16);
            let p = write(dir.path(), &format!("u32_{k}.tif"), o, |i| (i as u32).wrapping_mul(2654435761));
            same_as_gdal::<u32>(&p, DataType::UInt32);
        }
        for (k, o) in layouts(&floats).iter().enumerate() {
            let f = |i: usize| if i % 13 == 0 { f32::NAN } else { (i as f32).sin() * 1e3 };
            let p = write(dir.path(), &format!("f32_{k}.tif"), o, f);
            same_as_gdal::<f32>(&p, DataType::Float32);
            let p = write(dir.path(), &format!("f64_{k}.tif"), o, |i| (i as f64).sqrt() - 40.0);
            same_as_gdal::<f64>(&p, DataType::Float64);
        }
    }

    #[test]
    fn unsupported_layouts_and_corrupt_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "lzw.tif", &["COMPRESS=LZW", "INTERLEAVE=BAND"], |i| i as u8);
        let why = DirectReader::open(&p, 1, 150, 97, DataType::Byte).unwrap().err().unwrap();
        assert_eq!(why, "compression 5");
        let p = write(dir.path(), "pixel.tif", &["INTERLEAVE=PIXEL"], |i| i as u8);
        assert!(DirectReader::open(&p, 1, 150, 97, DataType::Byte).unwrap().is_err());
        // One strip of the whole image: decoding it whole would hold the raster in memory.
        let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
        let big = dir.path().join("one_strip.tif");
        let opts = RasterCreationOptions::from_iter(["BLOCKYSIZE=5000", "SPARSE_OK=TRUE"]);
        driver.create_with_band_type_with_options::<f64, _>(&big, 1000, 5000, 1, &opts).unwrap();
        let why = DirectReader::open(&big, 1, 1000, 5000, DataType::Float64).unwrap().err().unwrap();
        assert!(why.contains("too large"), "{why}");
        let p = write(dir.path(), "ok.tif", &["COMPRESS=DEFLATE", "TILED=YES", "INTERLEAVE=BAND"], |i| (i % 7) as u8);
        assert!(DirectReader::open(&p, 1, 150, 97, DataType::Int16).unwrap().is_err(), "wrong type");
        assert!(DirectReader::open(&p, 1, 10, 97, DataType::Byte).unwrap().is_err(), "wrong size");
        // Flip bytes inside the first block's deflate stream.
        let mut r = DirectReader::open(&p, 1, 150, 97, DataType::Byte).unwrap().unwrap();
        let (off, n) = (r.layout.offsets[0], r.layout.counts[0]);
        let mut bytes = std::fs::read(&p).unwrap();
        for b in &mut bytes[off as usize + 2..(off + n) as usize] {
            *b ^= 0x5a;
        }
        std::fs::write(&p, bytes).unwrap();
        r.file = File::open(&p).unwrap();
        let mut out = vec![0u8; 150 * 97];
        let e = r.read(0..97, 0..150, &mut out).unwrap_err().to_string();
        assert!(e.starts_with("block 0 is corrupt"), "{e}");
    }

    #[test]
    fn float_predictor_decodes_planes() {
        // Two f32 values 1.5 and -2.0: big-endian bytes 3f c0 00 00 and c0 00 00 00, stored as
        // planes [3f c0][c0 00][00 00][00 00] and then byte-differenced.
        let planes = [0x3fu8, 0xc0, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00];
        let mut enc = planes;
        for i in (1..enc.len()).rev() {
            enc[i] = enc[i].wrapping_sub(enc[i - 1]);
        }
        let mut tmp = Vec::new();
        undo_float(&mut enc, 4, &mut tmp);
        assert_eq!(f32::from_le_bytes(enc[..4].try_into().unwrap()), 1.5);
        assert_eq!(f32::from_le_bytes(enc[4..].try_into().unwrap()), -2.0);
    }
}
