//! Direct reads of plain GeoTIFF blocks, bypassing GDAL for the pixel data.
//!
//! GDAL (3.6, as Debian ships it) spends most of a Float32 read undoing TIFF's floating-point
//! predictor one byte at a time, and copies every block through its block cache. For the
//! common layout of big rasters (one band, little-endian, tiled or stripped, deflate, zstd or
//! no compression, predictor 1, 2 or 3) this module reads the compressed blocks itself,
//! inflates them with libdeflate (zstd: with the very libzstd GDAL's libtiff calls), undoes
//! the predictor in tight loops and
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
pub(crate) enum TiffError {
    /// Reading the file failed.
    #[error("block {block}: {source}")]
    Io { block: usize, source: std::io::Error },
    /// A block does not decode to the size the header promises.
    #[error("block {block} is corrupt: {reason}")]
    Corrupt { block: usize, reason: String },
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
    /// Tiles are stored whole even where they overhang the image; a strip is not.
    tiled: bool,
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

    /// Decoded bytes a block of block row `br` must have: what libtiff asks its codec for
    /// (a whole tile, or the rows of the strip: the last strip of a stripped file is shorter).
    fn need(&self, br: usize) -> usize {
        let rows =
            if self.tiled { self.block_h } else { self.block_h.min(self.height.saturating_sub(br * self.block_h)) };
        self.block_w * rows * self.sample
    }
}

/// Reads windows of one band of a GeoTIFF straight from its blocks.
pub(crate) struct DirectReader {
    file: File,
    layout: Layout,
    codecs: Codecs,
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
    pub(crate) fn open(
        path: &Path,
        band: usize,
        width: usize,
        height: usize,
        dtype: DataType,
    ) -> std::io::Result<Result<DirectReader, String>> {
        let file = File::open(path)?;
        Ok(parse(&file, band, dtype)?.and_then(|layout| {
            if (layout.width, layout.height) != (width, height) {
                return Err(format!(
                    "first image is {}x{}, GDAL reports {width}x{height}",
                    layout.width, layout.height
                ));
            }
            let codecs = Codecs::new(layout.compression)?;
            Ok(DirectReader { file, layout, codecs, compressed: Vec::new(), cache: Vec::new(), clock: 0 })
        }))
    }

    /// Bytes per cell.
    pub(crate) fn sample_size(&self) -> usize {
        self.layout.sample
    }

    /// Reads rows `rows` and columns `cols` into `out` (row-major, `sample_size()` bytes per
    /// cell, little-endian), which must hold exactly that many cells.
    ///
    /// # Errors
    /// [`TiffError`] naming the block that cannot be read or decoded.
    pub(crate) fn read(
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
        if rows.end > self.layout.height || cols.end > self.layout.width || out.len() != rows.len() * out_row {
            return Err(TiffError::Corrupt {
                block: 0,
                reason: format!("window {rows:?} x {cols:?} is outside the image or the buffer"),
            });
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
        let need = l.need(br);
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
        // Decode exactly as libtiff does for GDAL: into a buffer of the block's size (`need`),
        // so that a stream that decodes to more or less than that fails here as it fails (or
        // is cut short unpredictably) there.
        let out = &mut data[..need];
        let got = match l.compression {
            Compression::None => {
                let n = count.min(need);
                out[..n].copy_from_slice(&self.compressed[..n]);
                n
            }
            Compression::Deflate => self
                .codecs
                .inflater
                .zlib_decompress(&self.compressed, out)
                .map_err(|e| corrupt(format!("deflate: {e}")))?,
            Compression::Zstd => {
                self.codecs.unzstd(&self.compressed, out).map_err(|e| corrupt(format!("zstd: {e}")))?
            }
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

/// The block decoders, each giving libtiff's bytes for every block libtiff decodes.
///
/// Deflate: libdeflate (fast), asked for exactly the block's size. Inflating is fully
/// specified, so for every stream that both it and libtiff's zlib accept the bytes are the
/// same; where they disagree (a corrupt checksum or trailing data after the block, which zlib
/// never looks at) this side fails, cleanly.
///
/// Zstd: not a bundled copy but the system's libzstd that GDAL's libtiff calls, called the way
/// libtiff calls it. Two versions of zstd can decode the same corrupt frame to different bytes,
/// both without an error (measured: a tile with one flipped byte decodes to 2 different bytes
/// under zstd 1.5.7 and Debian's 1.5.4).
struct Codecs {
    zstd: Option<&'static ZstdFns>,
    /// Inflates a zlib stream into exactly its output: fewer or more bytes fail.
    inflater: libdeflater::Decompressor,
    /// The zstd stream (null unless the file is zstd-compressed).
    state: *mut std::ffi::c_void,
}

// SAFETY: the state pointer is owned by this value and used by one thread at a time (&mut).
unsafe impl Send for Codecs {}

type Ptr = *mut std::ffi::c_void;

#[repr(C)]
struct ZstdIn {
    src: *const std::ffi::c_void,
    size: usize,
    pos: usize,
}

#[repr(C)]
struct ZstdOut {
    dst: Ptr,
    size: usize,
    pos: usize,
}

type NewFn = unsafe extern "C" fn() -> Ptr;
type SizeFn = unsafe extern "C" fn(Ptr) -> usize;
type StreamFn = unsafe extern "C" fn(Ptr, *mut ZstdOut, *mut ZstdIn) -> usize;
type IsErrorFn = unsafe extern "C" fn(usize) -> std::ffi::c_uint;
type ErrorNameFn = unsafe extern "C" fn(usize) -> *const std::ffi::c_char;

/// libzstd's entry points, resolved from the copy already loaded in the process.
struct ZstdFns {
    create: NewFn,
    free: SizeFn,
    init: SizeFn,
    stream: StreamFn,
    is_error: IsErrorFn,
    error_name: ErrorNameFn,
}

/// `name` from the already loaded library `lib` (RTLD_NOLOAD: never a different copy).
fn sym(lib: &str, name: &str) -> Option<*mut std::ffi::c_void> {
    let (l, n) = (std::ffi::CString::new(lib).ok()?, std::ffi::CString::new(name).ok()?);
    // SAFETY: dlopen/dlsym with valid C strings; the handle is never closed, so the symbols
    // stay valid for the life of the process.
    unsafe {
        let h = libc::dlopen(l.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
        if h.is_null() {
            return None;
        }
        let f = libc::dlsym(h, n.as_ptr());
        (!f.is_null()).then_some(f)
    }
}

fn zstd_fns() -> Option<&'static ZstdFns> {
    static ZSTD: std::sync::OnceLock<Option<ZstdFns>> = std::sync::OnceLock::new();
    ZSTD.get_or_init(|| {
        let z = "libzstd.so.1";
        // SAFETY: each symbol is transmuted to the signature of its C declaration in zstd.h.
        unsafe {
            Some(ZstdFns {
                create: std::mem::transmute::<Ptr, NewFn>(sym(z, "ZSTD_createDStream")?),
                free: std::mem::transmute::<Ptr, SizeFn>(sym(z, "ZSTD_freeDStream")?),
                init: std::mem::transmute::<Ptr, SizeFn>(sym(z, "ZSTD_initDStream")?),
                stream: std::mem::transmute::<Ptr, StreamFn>(sym(z, "ZSTD_decompressStream")?),
                is_error: std::mem::transmute::<Ptr, IsErrorFn>(sym(z, "ZSTD_isError")?),
                error_name: std::mem::transmute::<Ptr, ErrorNameFn>(sym(z, "ZSTD_getErrorName")?),
            })
        }
    })
    .as_ref()
}

impl Codecs {
    /// The decoder for `compression`, or why there is none (the file then goes to GDAL).
    fn new(compression: Compression) -> Result<Codecs, String> {
        let zstd = zstd_fns();
        let mut state = std::ptr::null_mut();
        if compression == Compression::Zstd {
            // SAFETY: the constructor takes no arguments and returns an owned stream or null.
            state = unsafe { (zstd.ok_or("libtiff's libzstd is not loaded")?.create)() };
            if state.is_null() {
                return Err("cannot allocate a zstd stream".into());
            }
        }
        Ok(Codecs { zstd, inflater: libdeflater::Decompressor::new(), state })
    }

    /// libtiff's ZSTDDecode loop, call for call; returns the bytes decoded.
    fn unzstd(&mut self, input: &[u8], out: &mut [u8]) -> Result<usize, String> {
        let z = self.zstd.expect("checked in new");
        // SAFETY: the stream is ours; the buffers describe valid slices that outlive the calls.
        unsafe {
            let err = |r: usize| std::ffi::CStr::from_ptr((z.error_name)(r)).to_string_lossy().into_owned();
            let r = (z.init)(self.state);
            if (z.is_error)(r) != 0 {
                return Err(err(r));
            }
            let mut i = ZstdIn { src: input.as_ptr().cast(), size: input.len(), pos: 0 };
            let mut o = ZstdOut { dst: out.as_mut_ptr().cast(), size: out.len(), pos: 0 };
            loop {
                let r = (z.stream)(self.state, &mut o, &mut i);
                if (z.is_error)(r) != 0 {
                    return Err(err(r));
                }
                if r == 0 || i.pos >= i.size || o.pos >= o.size {
                    return Ok(o.pos);
                }
            }
        }
    }
}

impl Drop for Codecs {
    fn drop(&mut self) {
        if let (false, Some(z)) = (self.state.is_null(), self.zstd) {
            // SAFETY: the stream came from ZSTD_createDStream and is freed once.
            unsafe { (z.free)(self.state) };
        }
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
    undo_horizontal(row, 1);
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

/// Where a tag's values are: type, count and the entry's value-or-offset field.
#[derive(Debug, Clone, Copy)]
struct Entry {
    typ: u16,
    count: u64,
    field: [u8; 8],
}

/// The first IFD of a little-endian TIFF, with every read bounded by the file's size.
struct Ifd<'a> {
    file: &'a File,
    file_len: u64,
    big: bool,
    entries: Vec<(u16, Entry)>,
}

/// Why a file is not for the direct reader (it goes to GDAL).
type Reject = String;

impl Ifd<'_> {
    fn entry(&self, tag: u16) -> Option<Entry> {
        // Tags are strictly ascending (checked when read): a binary search finds the only one.
        self.entries.binary_search_by_key(&tag, |(t, _)| *t).ok().map(|i| self.entries[i].1)
    }

    /// The values of `tag` as unsigned integers, `None` when absent. `types` are the TIFF
    /// types accepted; a count outside `counts`, another type, a negative value or a value
    /// above `max` rejects the file: libtiff would read it differently, ignore it or fail.
    fn ints(
        &self,
        tag: u16,
        types: &[u16],
        counts: std::ops::RangeInclusive<u64>,
        max: u64,
    ) -> Result<Option<Vec<u64>>, Reject> {
        let Some(e) = self.entry(tag) else { return Ok(None) };
        let bad = |what: &str| format!("tag {tag} has {what}");
        if !types.contains(&e.typ) {
            return Err(bad(&format!("type {}", e.typ)));
        }
        let (size, signed) = match e.typ {
            1 => (1, false),
            6 => (1, true),
            3 => (2, false),
            8 => (2, true),
            4 => (4, false),
            9 => (4, true),
            16 if self.big => (8, false),
            17 if self.big => (8, true),
            t => return Err(bad(&format!("type {t} in a classic TIFF"))),
        };
        if !counts.contains(&e.count) {
            return Err(bad(&format!("{} values", e.count)));
        }
        // Bounded by the file's size before anything is allocated.
        let bytes = e.count.checked_mul(size).filter(|&b| b <= self.file_len).ok_or_else(|| bad("too many values"))?;
        let inline = if self.big { 8 } else { 4 };
        let raw = if bytes <= inline {
            e.field[..bytes as usize].to_vec()
        } else {
            let off = if self.big {
                u64::from_le_bytes(e.field)
            } else {
                u64::from(u32::from_le_bytes(e.field[..4].try_into().expect("4")))
            };
            if off.checked_add(bytes).is_none_or(|end| end > self.file_len) {
                return Err(bad("values beyond the end of the file"));
            }
            let mut v = vec![0u8; bytes as usize];
            self.file.read_exact_at(&mut v, off).map_err(|e| bad(&format!("unreadable values ({e})")))?;
            v
        };
        let mut out = Vec::with_capacity(e.count as usize);
        for c in raw.chunks_exact(size as usize) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            let v = u64::from_le_bytes(b);
            let negative = signed && c[c.len() - 1] & 0x80 != 0;
            if negative || v > max {
                return Err(bad(&format!(
                    "value {} out of range",
                    if negative { "< 0".into() } else { v.to_string() }
                )));
            }
            out.push(v);
        }
        Ok(Some(out))
    }

    /// One integer value of a SHORT-or-LONG tag (any integer type libtiff converts, count 1).
    fn one(&self, tag: u16, max: u64) -> Result<Option<u64>, Reject> {
        Ok(self.ints(tag, &INT_TYPES, 1..=1, max)?.map(|v| v[0]))
    }

    /// A per-sample SHORT tag (BitsPerSample, SampleFormat): one value, or one per sample,
    /// all equal (libtiff refuses differing values).
    fn per_sample(&self, tag: u16, spp: u64) -> Result<Option<u64>, Reject> {
        let Some(v) = self.ints(tag, &INT_TYPES, 1..=spp.max(1), u64::from(u16::MAX))? else { return Ok(None) };
        if v.len() != 1 && v.len() as u64 != spp || v.iter().any(|&x| x != v[0]) {
            return Err(format!("tag {tag} has differing or partial per-sample values"));
        }
        Ok(Some(v[0]))
    }
}

/// Integer TIFF types that libtiff converts to a SHORT or LONG tag's value (BYTE, SHORT, LONG,
/// SBYTE, SSHORT, SLONG, LONG8, SLONG8; the 8-byte ones only in BigTIFF). IFD and IFD8 are
/// left to GDAL.
const INT_TYPES: [u16; 8] = [1, 3, 4, 6, 8, 9, 16, 17];
/// Types of StripOffsets/TileOffsets and the byte counts that GDAL's libtiff reads block by
/// block (its on-demand loading handles only these; others fail every block read).
const STRILE_TYPES: [u16; 3] = [3, 4, 16];
const U16: u64 = u16::MAX as u64;
const U32: u64 = u32::MAX as u64;

/// Reads the first IFD of `file` and returns the layout of band `band`, or why it is not
/// one this module reads (the caller then reads the whole file through GDAL).
///
/// Every check happens here, at open: what passes is a file whose blocks libtiff decodes the
/// same way (same tag values, same block sizes, no byte count it would clamp), so a block read
/// later either gives GDAL's values or fails. Sizes come from the geometry; every count,
/// offset and byte count is checked against the file's size before anything is allocated.
fn parse(file: &File, band: usize, dtype: DataType) -> std::io::Result<Result<Layout, Reject>> {
    let file_len = file.metadata()?.len();
    let mut head = [0u8; 16];
    if file_len < 16 {
        return Ok(Err("shorter than a TIFF header".into()));
    }
    file.read_exact_at(&mut head, 0)?;
    if &head[..2] != b"II" {
        return Ok(Err("not a little-endian TIFF".into()));
    }
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let big = match (u16_at(&head, 2), u16_at(&head, 4), u16_at(&head, 6)) {
        (42, _, _) => false,
        (43, 8, 0) => true,
        _ => return Ok(Err("not a TIFF or BigTIFF header".into())),
    };
    let ifd = if big { u64_at(&head, 8) } else { u64::from(u32_at(&head, 4)) };
    let (count_size, entry_size) = if big { (8u64, 20u64) } else { (2, 12) };
    if ifd < if big { 16 } else { 8 } || ifd.checked_add(count_size).is_none_or(|e| e > file_len) {
        return Ok(Err(format!("first IFD at {ifd} is outside the file")));
    }
    let mut buf = [0u8; 8];
    file.read_exact_at(&mut buf[..count_size as usize], ifd)?;
    let n = if big { u64_at(&buf, 0) } else { u64::from(u16_at(&buf, 0)) };
    if n == 0 || n > 4096 {
        return Ok(Err(format!("implausible IFD of {n} entries")));
    }
    let start = ifd + count_size;
    if start.checked_add(n * entry_size).is_none_or(|e| e > file_len) {
        return Ok(Err("IFD runs past the end of the file".into()));
    }
    let mut raw = vec![0u8; (n * entry_size) as usize];
    file.read_exact_at(&mut raw, start)?;
    let mut entries = Vec::with_capacity(n as usize);
    for e in raw.chunks_exact(entry_size as usize) {
        let tag = u16_at(e, 0);
        let (count, at) = if big { (u64_at(e, 4), 12) } else { (u64::from(u32_at(e, 4)), 8) };
        let mut field = [0u8; 8];
        field[..(entry_size as usize - at)].copy_from_slice(&e[at..]);
        if entries.last().is_some_and(|&(t, _)| t >= tag) {
            // libtiff keeps the first of duplicated tags and warns about the order; leave
            // such files to it rather than guess.
            return Ok(Err("IFD tags out of order or duplicated".into()));
        }
        entries.push((tag, Entry { typ: u16_at(e, 2), count, field }));
    }
    let d = Ifd { file, file_len, big, entries };
    Ok(layout(&d, band, dtype))
}

/// The layout of band `band` from the parsed IFD, or why it is not for the direct reader.
fn layout(d: &Ifd<'_>, band: usize, dtype: DataType) -> Result<Layout, Reject> {
    let (Some(width), Some(height)) = (d.one(256, U32)?, d.one(257, U32)?) else {
        return Err("no image size".into());
    };
    if width == 0 || height == 0 {
        return Err("empty image".into());
    }
    // Tags that change which image GDAL reads or how libtiff decodes it.
    if d.one(254, U32)?.is_some_and(|t| t != 0) {
        return Err("first image is not a full-resolution image (NewSubfileType)".into());
    }
    if d.one(266, U16)?.is_some_and(|f| f != 1) {
        return Err("bits stored in reverse order (FillOrder)".into());
    }
    if d.entry(32997).is_some() || d.entry(32998).is_some() {
        return Err("volumetric image (ImageDepth/TileDepth)".into());
    }
    let spp = d.one(277, U16)?.unwrap_or(1);
    match d.one(262, U16)? {
        None | Some(1) => {}
        Some(2) if spp >= 3 => {}
        Some(3) if spp == 1 => {}
        Some(p) => return Err(format!("photometric interpretation {p} with {spp} samples")),
    }
    if spp == 0 {
        return Err("no samples per pixel".into());
    }
    let planar = d.one(284, U16)?.unwrap_or(1);
    if !(1..=2).contains(&planar) {
        return Err(format!("planar configuration {planar}"));
    }
    if spp > 1 && planar != 2 {
        return Err("pixel-interleaved bands".into());
    }
    if band as u64 > spp {
        return Err(format!("band {band} is not in the first image"));
    }
    let bits = d.per_sample(258, spp)?.unwrap_or(1);
    let format = d.per_sample(339, spp)?.unwrap_or(1);
    let want_format = match dtype {
        DataType::Byte | DataType::UInt16 | DataType::UInt32 => 1,
        DataType::Int16 | DataType::Int32 => 2,
        DataType::Float32 | DataType::Float64 => 3,
    };
    if bits != dtype.size() as u64 * 8 || format != want_format {
        return Err(format!("samples of {bits} bits, format {format}, not {}", dtype.name()));
    }
    let compression = match d.one(259, U16)?.unwrap_or(1) {
        1 => Compression::None,
        8 | 32946 => Compression::Deflate,
        50000 => Compression::Zstd,
        c => return Err(format!("compression {c}")),
    };
    let predictor = d.one(317, U16)?;
    if compression == Compression::None && predictor.is_some_and(|p| p != 1) {
        // libtiff ignores the tag without a codec that uses it: rare enough to leave to it.
        return Err("predictor on uncompressed data".into());
    }
    let predictor = match predictor.unwrap_or(1) {
        1 => Predictor::None,
        2 => Predictor::Horizontal,
        3 if dtype.is_float() => Predictor::Float,
        p => return Err(format!("predictor {p}")),
    };

    let has = |tag: u16| d.entry(tag).is_some();
    let tiled = match (has(322), has(323), has(324), has(325), has(273), has(279), has(278)) {
        (true, true, true, true, false, false, false) => true,
        (false, false, false, false, true, true, _) => false,
        _ => return Err("neither a plain tiled nor a plain stripped layout".into()),
    };
    let (block_w, block_h, offsets_tag, counts_tag) = if tiled {
        let (tw, th) = (d.one(322, U32)?.unwrap_or(0), d.one(323, U32)?.unwrap_or(0));
        // libtiff only warns about tile sizes that are not multiples of 16; GDAL's writers
        // never make them, so leave them to GDAL.
        if tw == 0 || th == 0 || tw % 16 != 0 || th % 16 != 0 {
            return Err(format!("tiles of {tw}x{th}"));
        }
        (tw, th, 324, 325)
    } else {
        let rps = d.one(278, U32)?.unwrap_or(U32);
        if rps == 0 {
            return Err("zero rows per strip".into());
        }
        (width, rps.min(height), 273, 279)
    };
    let sample = dtype.size() as u64;
    let full = block_w
        .checked_mul(block_h)
        .and_then(|c| c.checked_mul(sample))
        .filter(|&b| b <= MAX_BLOCK_BYTES as u64)
        .ok_or_else(|| format!("blocks of {block_w}x{block_h} cells are too large to decode whole"))?;
    let per_plane =
        width.div_ceil(block_w).checked_mul(height.div_ceil(block_h)).ok_or_else(|| "too many blocks".to_string())?;
    let planes = if planar == 2 { spp } else { 1 };
    let blocks = per_plane.checked_mul(planes).ok_or_else(|| "too many blocks".to_string())?;
    // Exactly one offset and byte count per block: libtiff pads or ignores others.
    let offsets = d.ints(offsets_tag, &STRILE_TYPES, blocks..=blocks, u64::MAX)?.expect("present");
    let counts = d.ints(counts_tag, &STRILE_TYPES, blocks..=blocks, u64::MAX)?.expect("present");
    let first = (band as u64 - 1) * per_plane;
    let range = first as usize..(first + per_plane) as usize;
    let (offsets, counts) = (offsets[range.clone()].to_vec(), counts[range].to_vec());
    let l = Layout {
        width: width as usize,
        height: height as usize,
        block_w: block_w as usize,
        block_h: block_h as usize,
        tiled,
        sample: sample as usize,
        compression,
        predictor,
        offsets,
        counts,
    };
    let across = l.blocks_across();
    for (i, (&o, &c)) in l.offsets.iter().zip(&l.counts).enumerate() {
        if o == 0 || c == 0 {
            // GDAL fills missing blocks with the nodata value; leave that to it.
            return Err("sparse file (blocks without data)".into());
        }
        if o.checked_add(c).is_none_or(|end| end > d.file_len) {
            return Err(format!("block {i} runs past the end of the file"));
        }
        // A compressed block never needs much more than its decoded size; libtiff clamps
        // (with an error) byte counts above ten times it. Bounds the read buffer too.
        if c > full + full / 4 + 65_536 {
            return Err(format!("block {i} has an implausible byte count of {c}"));
        }
        if compression == Compression::None && (c as usize) < l.need(i / across) {
            // libtiff re-estimates short byte counts of uncompressed strips.
            return Err(format!("uncompressed block {i} is shorter than its cells"));
        }
    }
    Ok(l)
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

    /// Position of `tag`'s entry in the first IFD of the classic TIFF `b`.
    fn entry_at(b: &[u8], tag: u16) -> usize {
        let ifd = u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize;
        let n = usize::from(u16::from_le_bytes([b[ifd], b[ifd + 1]]));
        (0..n).map(|k| ifd + 2 + 12 * k).find(|&e| u16::from_le_bytes([b[e], b[e + 1]]) == tag).unwrap()
    }

    /// `b` with `tag`'s entry set to `typ`, `count` and the 4-byte value field `value`.
    fn patched(b: &[u8], tag: u16, typ: u16, count: u32, value: [u8; 4]) -> Vec<u8> {
        let mut b = b.to_vec();
        let e = entry_at(&b, tag);
        b[e + 2..e + 4].copy_from_slice(&typ.to_le_bytes());
        b[e + 4..e + 8].copy_from_slice(&count.to_le_bytes());
        b[e + 8..e + 12].copy_from_slice(&value);
        b
    }

    #[test]
    fn tags_are_read_as_libtiff_reads_them_or_left_to_gdal() {
        let dir = tempfile::tempdir().unwrap();
        let f = |i: usize| (i as f32).sin() * 1e3;
        let opts = ["COMPRESS=DEFLATE", "PREDICTOR=3", "TILED=YES", "BIGTIFF=NO", "INTERLEAVE=BAND"];
        let orig = std::fs::read(write(dir.path(), "f32.tif", &opts, f)).unwrap();
        let p = dir.path().join("patched.tif");
        // Predictor 3 in every integer type libtiff converts: read as 3, values as GDAL's
        // (the reader used to take BYTE and SSHORT as "no predictor").
        for typ in [1u16, 3, 4, 6, 8, 9] {
            std::fs::write(&p, patched(&orig, 317, typ, 1, [3, 0, 0, 0])).unwrap();
            same_as_gdal::<f32>(&p, DataType::Float32);
        }
        let open = |b: Vec<u8>| {
            std::fs::write(&p, b).unwrap();
            DirectReader::open(&p, 1, 150, 97, DataType::Float32).unwrap().err().expect("left to GDAL")
        };
        // What libtiff ignores, refuses or converts otherwise is left to GDAL.
        assert_eq!(open(patched(&orig, 317, 9, 1, (-3i32).to_le_bytes())), "tag 317 has value < 0 out of range");
        assert_eq!(open(patched(&orig, 317, 5, 1, [0; 4])), "tag 317 has type 5");
        assert_eq!(open(patched(&orig, 317, 13, 1, [3, 0, 0, 0])), "tag 317 has type 13");
        assert_eq!(open(patched(&orig, 317, 16, 1, [3, 0, 0, 0])), "tag 317 has type 16 in a classic TIFF");
        assert_eq!(open(patched(&orig, 317, 3, 2, [3, 0, 3, 0])), "tag 317 has 2 values");
        assert_eq!(open(patched(&orig, 317, 4, 1, 65_539u32.to_le_bytes())), "tag 317 has value 65539 out of range");
        // Counts and offsets: never an allocation from them, never a read past the file.
        let e = entry_at(&orig, 324);
        let offsets_at = u32::from_le_bytes(orig[e + 8..e + 12].try_into().unwrap());
        assert_eq!(open(patched(&orig, 324, 4, u32::MAX, offsets_at.to_le_bytes())), "tag 324 has 4294967295 values");
        assert_eq!(open(patched(&orig, 324, 9, 6, offsets_at.to_le_bytes())), "tag 324 has type 9");
        assert_eq!(
            open(patched(&orig, 324, 4, 2, u32::MAX.to_le_bytes())),
            "tag 324 has values beyond the end of the file"
        );
        assert_eq!(open(patched(&orig, 324, 4, 3, offsets_at.to_le_bytes())), "tag 324 has 3 values");
        let e = entry_at(&orig, 325);
        let counts_at = u32::from_le_bytes(orig[e + 8..e + 12].try_into().unwrap()) as usize;
        let mut b = orig.clone();
        b[counts_at..counts_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(open(b), "block 0 runs past the end of the file");
        // Geometry: tiles that are not multiples of 16, strips and tiles mixed, a huge IFD.
        assert_eq!(open(patched(&orig, 322, 3, 1, [40, 0, 0, 0])), "tiles of 40x256");
        assert!(open(patched(&orig, 322, 3, 1, [0, 0, 0, 0])).starts_with("tiles of 0x"));
        assert_eq!(
            open(patched(&orig, 323, 4, 1, [0, 0, 0, 128])),
            "blocks of 256x2147483648 cells are too large to decode whole"
        );
        let mut b = orig.clone();
        let ifd = u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize;
        b[ifd..ifd + 2].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(open(b), "implausible IFD of 65535 entries");
        let mut b = orig.clone();
        b[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(open(b), "first IFD at 4294967295 is outside the file");
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
