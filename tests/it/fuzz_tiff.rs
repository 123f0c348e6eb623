//! The direct GeoTIFF reader against hostile files: GeoTIFFs generated in every layout the
//! direct reader claims, then mutated deterministically (tag types, counts and values set to
//! boundary values, offsets and byte counts pointed anywhere, random byte flips,
//! truncations). Each file is converted by the real binary in a child process under a memory
//! limit and a timeout. The rule checked: no signal, no panic, no hang, no runaway memory; a
//! failure is one clean error line; and whenever the direct reader read the file and
//! succeeded, GDAL's read (`RASTERSTAGE_DIRECT_TIFF=0`) of it succeeds with identical tiles.

use crate::common::{bin, lcg, tmp};
use gdal::raster::{Buffer, GdalType, RasterCreationOptions};
use gdal::DriverManager;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Raster size: small, so that a conversion is dominated by process start, not by cells.
const W: usize = 100;
const H: usize = 70;
/// Mutated files on top of the unmutated ones.
const MUTATED: usize = 560;
/// Address space of one conversion (a normal run of this size stays far below).
const MEMORY_LIMIT: u64 = 1 << 30;
/// A conversion of a 100x70 raster takes well under a second; beyond this it is a hang.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The direct reader logs this (at debug) when it leaves a file to GDAL.
const DECLINED: &str = "through GDAL, not directly";

/// Writes one valid GeoTIFF of `T` with GDAL's creation `options`.
fn write<T: GdalType + Copy>(path: &Path, options: &[String], value: impl Fn(usize) -> T) {
    let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
    let opts = RasterCreationOptions::from_iter(options.iter().map(String::as_str));
    let mut ds = driver.create_with_band_type_with_options::<T, _>(path, W, H, 1, &opts).unwrap();
    ds.set_geo_transform(&[10.0, 0.01, 0.0, 50.0, 0.0, -0.01]).unwrap();
    let mut buf = Buffer::new((W, H), (0..W * H).map(value).collect());
    ds.rasterband(1).unwrap().write((0, 0), (W, H), &mut buf).unwrap();
}

/// Every layout the direct reader claims: tiled and stripped (last strip short), no
/// compression, deflate and zstd, each predictor, every tested type, classic and BigTIFF.
fn bases(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dtype in ["u8", "i16", "u16", "f32", "f64"] {
        let float = dtype.starts_with('f');
        for (compress, predictors) in [("NONE", &[1][..]), ("DEFLATE", &[1, 2, 3]), ("ZSTD", &[1, 2, 3])] {
            for &predictor in predictors.iter().filter(|&&p| p != 3 || float) {
                for blocks in [&["TILED=YES", "BLOCKXSIZE=32", "BLOCKYSIZE=32"][..], &["BLOCKYSIZE=16"][..]] {
                    for big in ["NO", "YES"] {
                        let path = dir.join(format!("base_{}.tif", out.len()));
                        let mut o: Vec<String> = blocks.iter().map(|s| s.to_string()).collect();
                        o.push(format!("COMPRESS={compress}"));
                        o.push(format!("BIGTIFF={big}"));
                        if compress != "NONE" {
                            o.push(format!("PREDICTOR={predictor}"));
                        }
                        match dtype {
                            "u8" => write(&path, &o, |i| (i * 7 % 256) as u8),
                            "i16" => write(&path, &o, |i| (i as i64 * 611 % 65536 - 32768) as i16),
                            "u16" => write(&path, &o, |i| (i * 977 % 65536) as u16),
                            "f32" => write(&path, &o, |i| if i % 13 == 0 { f32::NAN } else { (i as f32).sin() * 1e3 }),
                            _ => write(&path, &o, |i| (i as f64).sqrt() - 40.0),
                        }
                        out.push(path);
                    }
                }
            }
        }
    }
    out
}

/// One IFD entry of a test file: where it is and what it says.
struct Entry {
    pos: usize,
    tag: u16,
    typ: u16,
    count: u64,
}

/// The entries of the first IFD (of a valid file), and whether it is a BigTIFF.
fn entries(b: &[u8]) -> (bool, Vec<Entry>) {
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
    let big = u16_at(2) == 43;
    let ifd = if big { u64_at(8) as usize } else { u32_at(4) as usize };
    let (n, first, size) = if big { (u64_at(ifd) as usize, ifd + 8, 20) } else { (u16_at(ifd) as usize, ifd + 2, 12) };
    let e = (0..n)
        .map(|k| {
            let pos = first + k * size;
            let count = if big { u64_at(pos + 4) } else { u64::from(u32_at(pos + 4)) };
            Entry { pos, tag: u16_at(pos), typ: u16_at(pos + 2), count }
        })
        .collect();
    (big, e)
}

fn type_size(t: u16) -> usize {
    match t {
        1 | 2 | 6 | 7 => 1,
        3 | 8 => 2,
        4 | 9 | 11 | 13 => 4,
        _ => 8,
    }
}

/// Tags the direct reader relies on: most structural mutations hit one of them.
const KEY_TAGS: [u16; 18] = [254, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 284, 317, 322, 323, 324, 325, 339];

/// Applies one to three deterministic mutations to the bytes of a valid file.
fn mutate(b: &mut Vec<u8>, rng: &mut impl FnMut() -> u64) {
    let (big, list) = entries(b);
    let len = b.len() as u64;
    let pick = |rng: &mut dyn FnMut() -> u64, v: &[u64]| v[(rng() % v.len() as u64) as usize];
    // Mostly one mutation, so that many files stay readable and test the reader's decisions.
    let n = match rng() % 20 {
        0..=11 => 1,
        12..=16 => 2,
        _ => 3,
    };
    for _ in 0..n {
        let e = if rng() % 4 == 0 {
            &list[(rng() % list.len() as u64) as usize]
        } else {
            let key: Vec<&Entry> = list.iter().filter(|e| KEY_TAGS.contains(&e.tag)).collect();
            key[(rng() % key.len() as u64) as usize]
        };
        let (count_at, field_at, field_len) = if big { (e.pos + 4, e.pos + 12, 8) } else { (e.pos + 4, e.pos + 8, 4) };
        let bounds =
            [0, 1, 2, 15, 16, 17, 255, 65_535, 1 << 31, (1 << 32) - 1, len - 1, len, len + 1, 1 << 63, u64::MAX];
        let put = |b: &mut Vec<u8>, at: usize, v: u64, size: usize| {
            b[at..at + size].copy_from_slice(&v.to_le_bytes()[..size]);
        };
        match rng() % 8 {
            // Another type, integer or not.
            0 => {
                let t = pick(rng, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 16, 17, 18, 19, 0xffff]);
                put(b, e.pos + 2, t, 2);
            }
            // The same value in another integer type (e.g. Predictor as BYTE or SSHORT).
            1 if e.count == 1 && type_size(e.typ) <= field_len => {
                let mut v = [0u8; 8];
                v[..type_size(e.typ)].copy_from_slice(&b[field_at..field_at + type_size(e.typ)]);
                let v = u64::from_le_bytes(v);
                let t = pick(rng, &[1, 3, 4, 6, 8, 9, 13, 16, 17, 18]);
                put(b, e.pos + 2, t, 2);
                put(b, field_at, 0, field_len);
                put(b, field_at, v, type_size(t as u16).min(field_len));
            }
            // A boundary count.
            2 => {
                let c = pick(rng, &[0, 1, 2, e.count.wrapping_sub(1), e.count + 1, 1 << 31, (1 << 32) - 1, 1 << 63]);
                put(b, count_at, c, if big { 8 } else { 4 });
            }
            // A boundary value (or offset of the values).
            3 => put(b, field_at, pick(rng, &bounds), field_len),
            // A small value in an inline SHORT: e.g. predictor, compression or planar 0..3.
            4 if e.count == 1 => put(b, field_at, rng() % 4, 2),
            // One element of an out-of-line array (offsets, byte counts, bits per sample).
            5 if (e.count as usize).saturating_mul(type_size(e.typ)) > field_len => {
                let mut off = [0u8; 8];
                off[..field_len].copy_from_slice(&b[field_at..field_at + field_len]);
                let size = type_size(e.typ);
                let at = u64::from_le_bytes(off) as usize + (rng() % e.count) as usize * size;
                if at + size <= b.len() {
                    let mut old = [0u8; 8];
                    old[..size].copy_from_slice(&b[at..at + size]);
                    let old = u64::from_le_bytes(old);
                    let v = pick(
                        rng,
                        &[
                            old.wrapping_add(1),
                            old.saturating_sub(1),
                            old.wrapping_mul(2),
                            old / 2,
                            0,
                            1,
                            len,
                            1 << 31,
                            u64::MAX,
                        ],
                    );
                    put(b, at, v, size);
                }
            }
            // Random byte flips anywhere.
            6 => {
                for _ in 0..1 + rng() % 8 {
                    let at = (rng() % len) as usize;
                    b[at] ^= 1 + (rng() % 255) as u8;
                }
            }
            // Truncation.
            7 => {
                let keep = (rng() % len) as usize;
                b.truncate(keep.max(8).min(b.len()));
                return;
            }
            _ => {
                let at = (rng() % len) as usize;
                b[at] ^= 0x80;
            }
        }
    }
}

/// Runs `cmd` with at most `MEMORY_LIMIT` of address space and `TIMEOUT`; an error on a hang.
fn run_limited(mut cmd: Command, what: &str) -> Result<Output, String> {
    // SAFETY: only async-signal-safe setrlimit runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: MEMORY_LIMIT, rlim_max: MEMORY_LIMIT };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return Ok(child.wait_with_output().unwrap());
        }
        if t0.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what}: still running after {TIMEOUT:?} (hang)"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Converts `file` (passthrough, one thread) into `out`; checks that the run ended cleanly:
/// an exit code (not a signal), no panic, and on failure exactly one `error:` line besides
/// the log.
/// Returns whether it succeeded and whether the direct reader declined the file.
fn convert(file: &Path, out: &Path, direct: bool) -> Result<(bool, bool, String), String> {
    let mut cmd = bin();
    cmd.args(["convert", file.to_str().unwrap(), "--name", "n", "--out", out.to_str().unwrap()])
        .args(["--format", "parquet", "--no-align", "-q", "--threads", "1"])
        .env("RUST_LOG", "error,rasterstage::source=debug")
        .env("RASTERSTAGE_DIRECT_TIFF", if direct { "1" } else { "0" });
    let what = format!("{} (direct {direct})", file.display());
    let o = run_limited(cmd, &what)?;
    let stderr = String::from_utf8_lossy(&o.stderr);
    let code = o.status.code().ok_or_else(|| format!("{what}: killed by a signal ({:?}):\n{stderr}", o.status))?;
    if stderr.contains("panicked") {
        return Err(format!("{what}: panic:\n{stderr}"));
    }
    // Log lines (timestamped) may come and go; what the user reads as the outcome is the rest.
    let is_log = |l: &str| l.len() > 20 && l.as_bytes()[4] == b'-' && l.as_bytes()[10] == b'T';
    let lines: Vec<&str> = stderr.lines().filter(|l| !is_log(l)).collect();
    if code == 0 && !lines.is_empty() {
        return Err(format!("{what}: succeeded with messages:\n{stderr}"));
    }
    if code != 0 && !(lines.len() == 1 && lines[0].starts_with("error: ")) {
        return Err(format!("{what}: not one error line:\n{stderr}"));
    }
    if std::env::var_os("RASTERSTAGE_FUZZ_ONLY").is_some() {
        println!("{what}: exit {code}\n{stderr}");
    }
    Ok((code == 0, stderr.contains(DECLINED), lines.first().unwrap_or(&"").to_string()))
}

/// What identifies the staged values exactly: the totals and every tile's count, sum and
/// object checksum (the Parquet bytes hold every value bit for bit).
fn fingerprint(out: &Path) -> String {
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("n").join("dataset.json")).unwrap()).unwrap();
    let tiles: Vec<String> = doc["tiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("{} {} {} {}", t["id"], t["row_count"], t["value_sum"], t["checksum"]))
        .collect();
    format!("{} {} {}", doc["row_count"], doc["value_sum"], tiles.join(","))
}

#[derive(Default)]
struct Tally {
    direct: usize,
    gdal: usize,
    errors: usize,
    direct_errors: usize,
    /// A few of the direct reader's errors where GDAL read the file, for the summary.
    examples: Vec<String>,
}

/// Checks one file; returns whether the direct reader read it.
fn check(file: &Path, work: &Path, tally: &Mutex<Tally>) -> Result<bool, String> {
    let (a, b) = (work.join("direct"), work.join("gdal"));
    let _ = std::fs::remove_dir_all(work);
    let (ok, declined, error) = convert(file, &a, true)?;
    let mut t = Tally::default();
    if !ok {
        t.errors += 1;
        // GDAL could not open it, or the direct reader failed a block cleanly.
        if !declined && convert(file, &b, false)?.0 {
            t.direct_errors += 1;
            t.examples.push(error);
        }
    } else if declined {
        t.gdal += 1;
    } else {
        t.direct += 1;
        if !convert(file, &b, false)?.0 {
            return Err(format!("{}: read directly, but GDAL's read fails", file.display()));
        }
        let (fa, fb) = (fingerprint(&a), fingerprint(&b));
        if fa != fb {
            return Err(format!("{}: direct values differ from GDAL's:\n  {fa}\n  {fb}", file.display()));
        }
    }
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
    let mut all = tally.lock().unwrap();
    all.direct += t.direct;
    all.gdal += t.gdal;
    all.errors += t.errors;
    all.direct_errors += t.direct_errors;
    all.examples.extend(t.examples);
    Ok(t.direct == 1)
}

#[test]
fn mutated_geotiffs_read_as_gdal_reads_them_or_fail_cleanly() {
    // RASTERSTAGE_FUZZ_DIR keeps the files (to rerun one by hand); a temporary folder otherwise.
    let kept = std::env::var_os("RASTERSTAGE_FUZZ_DIR").map(PathBuf::from);
    let temp = tmp();
    let dir = kept.as_deref().unwrap_or(temp.path());
    std::fs::create_dir_all(dir).unwrap();
    let bases = bases(dir);
    let mut rng = lcg(0x7469_6666);
    let mut files = bases.clone();
    for k in 0..MUTATED {
        let mut bytes = std::fs::read(&bases[k % bases.len()]).unwrap();
        mutate(&mut bytes, &mut rng);
        let path = dir.join(format!("mutated_{k}.tif"));
        std::fs::write(&path, bytes).unwrap();
        files.push(path);
    }
    // RASTERSTAGE_FUZZ_ONLY=3,17 checks only those files (by index: valid ones first).
    if let Ok(only) = std::env::var("RASTERSTAGE_FUZZ_ONLY") {
        let keep: Vec<usize> = only.split(',').map(|k| k.trim().parse().unwrap()).collect();
        files = files.into_iter().enumerate().filter(|(k, _)| keep.contains(k)).map(|(_, f)| f).collect();
    }
    let next = AtomicUsize::new(0);
    let tally = Mutex::new(Tally::default());
    let declined_valid = Mutex::new(Vec::new());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for w in 0..2 {
            let (next, tally, files, dir, declined) = (&next, &tally, &files, dir, &declined_valid);
            let failures = &failures;
            s.spawn(move || loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(file) = files.get(k) else { break };
                let valid = file.file_name().is_some_and(|n| n.to_string_lossy().starts_with("base_"));
                match check(file, &dir.join(format!("work{w}")), tally) {
                    Ok(false) if valid => declined.lock().unwrap().push(file.clone()),
                    Ok(_) => {}
                    Err(e) => failures.lock().unwrap().push(e),
                }
            });
        }
    });
    let t = tally.into_inner().unwrap();
    println!(
        "fuzz_tiff: {} files ({} valid): {} read directly, {} read by GDAL, {} errors ({} of them direct-reader errors where GDAL succeeds)",
        files.len(),
        bases.len(),
        t.direct,
        t.gdal,
        t.errors,
        t.direct_errors
    );
    for e in t.examples.iter().take(3) {
        println!("fuzz_tiff: e.g. {e}");
    }
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} files broke the rule:\n{}", failures.len(), failures.join("\n"));
    // Every valid file is in a layout the direct reader claims.
    let declined = declined_valid.into_inner().unwrap();
    assert!(declined.is_empty(), "valid files not read directly: {declined:?}");
}

/// The value of `tag` in the first IFD of a classic TIFF: its entry position and its values
/// (SHORT or LONG, inline or not).
fn tag_values(b: &[u8], tag: u16) -> (usize, Vec<u64>) {
    let (_, list) = entries(b);
    let e = list.iter().find(|e| e.tag == tag).unwrap();
    let size = type_size(e.typ);
    let n = e.count as usize;
    let at = if n * size <= 4 {
        e.pos + 8
    } else {
        u32::from_le_bytes(b[e.pos + 8..e.pos + 12].try_into().unwrap()) as usize
    };
    let v = (0..n)
        .map(|k| {
            let mut x = [0u8; 8];
            x[..size].copy_from_slice(&b[at + k * size..at + (k + 1) * size]);
            u64::from_le_bytes(x)
        })
        .collect();
    (e.pos, v)
}

/// Converts `file` into `out` with 128-cell windows; returns stderr of the failed run.
fn convert_fails(file: &Path, out: &Path, direct: bool) -> String {
    let mut cmd = bin();
    cmd.args(["convert", file.to_str().unwrap(), "--name", "g", "--out", out.to_str().unwrap()])
        .args(["--format", "parquet", "--no-align", "--window", "128", "-q", "--threads", "2"])
        .env("RASTERSTAGE_DIRECT_TIFF", if direct { "1" } else { "0" });
    let o = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{}: {stderr}", file.display());
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: ") && last.contains(file.to_str().unwrap()), "{stderr}");
    last.to_string()
}

/// The ids of the tiles with a commit record.
fn committed(out: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(out.join("g").join("_tiles"))
        .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".json").to_string()).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

#[test]
fn gdal_read_errors_fail_the_tile_and_leave_the_dataset_resumable() {
    let dir = tmp();
    let spec = crate::common::RasterSpec { block: 64, ..crate::common::RasterSpec::geographic(256, 192, 0.01) };
    let good = dir.path().join("good.tif");
    crate::common::write_tif(&good, &spec, (0..256 * 192).map(|i| (i % 251) as u8).collect());
    let bytes = std::fs::read(&good).unwrap();

    // TileOffsets as SLONG: GDAL's libtiff reports an error on every block and used to return
    // nodata for them, exit 0. The direct reader leaves the file to GDAL, so both ways fail.
    let (pos, _) = tag_values(&bytes, 324);
    let mut slong = bytes.clone();
    slong[pos + 2..pos + 4].copy_from_slice(&9u16.to_le_bytes());
    let p = dir.path().join("slong.tif");
    std::fs::write(&p, &slong).unwrap();
    for direct in [true, false] {
        let out = dir.path().join(format!("slong_{direct}"));
        let e = convert_fails(&p, &out, direct);
        assert!(e.contains("Invalid type for [Strip|Tile][Offset/ByteCount] tag"), "{e}");
        assert_eq!(crate::common::manifest(&out, "g")["status"], "converting");
        assert!(committed(&out).is_empty(), "{:?}", committed(&out));
    }

    // A corrupt deflate stream in the first tile: that window fails, the others commit, and
    // the dataset stays incomplete (a rerun retries it), through GDAL and directly.
    let (_, offsets) = tag_values(&bytes, 324);
    let (_, counts) = tag_values(&bytes, 325);
    let mut corrupt = bytes.clone();
    for b in &mut corrupt[offsets[0] as usize + 2..(offsets[0] + counts[0]) as usize - 4] {
        *b ^= 0x5a;
    }
    let p = dir.path().join("corrupt.tif");
    std::fs::write(&p, &corrupt).unwrap();
    for direct in [true, false] {
        let out = dir.path().join(format!("corrupt_{direct}"));
        let e = convert_fails(&p, &out, direct);
        let why = if direct { "block 0 is corrupt" } else { "TIFFReadEncodedTile" };
        assert!(e.contains(why), "{e}");
        assert_eq!(crate::common::manifest(&out, "g")["status"], "converting");
        assert_eq!(committed(&out), ["r0_c128", "r128_c0", "r128_c128"]);
    }
}
