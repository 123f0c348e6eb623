//! The Parquet floor of `scripts/bench-growth.sh`: writes the Parquet tiles that
//! `rasterstage convert SOURCE --name NAME --out OUT --format parquet --threads THREADS`
//! writes for a passthrough of a Float32 SOURCE, through rasterstage's own plan, writer and
//! store ([`rasterstage::convert::parquet_floor`]), but takes the cells from RAW (the same
//! cells as raw little-endian Float32, row-major, WIDTH columns: `make_inputs.py ...
//! float32-dense W H RAW`) instead of decoding SOURCE, and commits nothing. The time left is
//! what turning those rows into tiles costs.
//!
//! usage: parquet_floor SOURCE.tif RAW.f32 WIDTH NAME OUT THREADS
//!
//! Prints `<windows> windows, <rows> rows, <s> s (<s> of it reading RAW)`.

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const USAGE: &str = "usage: parquet_floor SOURCE.tif RAW.f32 WIDTH NAME OUT THREADS";

fn fail(msg: &str) -> ! {
    eprintln!("parquet_floor: {msg}");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source, raw, width, name, out, threads] = &args[..] else { fail(USAGE) };
    let width: usize = width.parse().unwrap_or_else(|_| fail(&format!("WIDTH {width:?} is not a number; {USAGE}")));
    let threads: usize =
        threads.parse().unwrap_or_else(|_| fail(&format!("THREADS {threads:?} is not a number; {USAGE}")));
    let file = std::fs::File::open(raw).unwrap_or_else(|e| fail(&format!("{raw}: {e}")));
    let len = file.metadata().unwrap_or_else(|e| fail(&format!("{raw}: {e}"))).len() as usize;
    if width == 0 || len % (4 * width) != 0 {
        fail(&format!("{raw}: {len} bytes are not rows of {width} Float32 cells; pass the raster's WIDTH"));
    }
    let height = len / (4 * width);
    // The job `convert SOURCE --name NAME --out OUT --format parquet` resolves to.
    let overrides = rasterstage::config::Overrides {
        out: Some(out.clone()),
        format: Some(rasterstage::stage::Format::Parquet),
        ..Default::default()
    };
    let jobs = rasterstage::config::convert_jobs(None, Some(source), Some(name), &overrides)
        .unwrap_or_else(|e| fail(&format!("{source}: {e}")));
    let reading = AtomicU64::new(0);
    let values = |[row0, col0, rows, cols]: [usize; 4]| -> Vec<f32> {
        if row0 + rows > height || col0 + cols > width {
            fail(&format!("{raw} has {width} x {height} cells; {source}'s grid is larger: pass its WIDTH"));
        }
        let t = Instant::now();
        let mut bytes = vec![0u8; rows * cols * 4];
        for (r, line) in bytes.chunks_exact_mut(cols * 4).enumerate() {
            file.read_exact_at(line, (((row0 + r) * width + col0) * 4) as u64)
                .unwrap_or_else(|e| fail(&format!("{raw}: {e}")));
        }
        let v = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        reading.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        v
    };
    let start = Instant::now();
    let s = rasterstage::convert::parquet_floor(&jobs.jobs[0], threads, &values)
        .unwrap_or_else(|e| fail(&format!("{source}: {e}")));
    println!(
        "{} windows, {} rows, {:.3} s ({:.3} s of it reading {raw}, summed over the threads)",
        s.windows,
        s.rows,
        start.elapsed().as_secs_f64(),
        reading.load(Ordering::Relaxed) as f64 / 1e9
    );
}
