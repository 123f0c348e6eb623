//! What the Parquet footer rewrite (`stage::footer`) costs per tile: times
//! `type_defined_float_orders` on the footers of the given tiles (docs/BENCHMARKS.md,
//! "Reader options"). Each call gets a fresh copy of the tile's footer (the only part the
//! rewrite reads), so every call finds the columns to change.
//!
//! usage: footer_cost ROUNDS TILE.parquet...

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).expect("usage: footer_cost ROUNDS TILE.parquet...");
    let mut footers = Vec::new();
    for path in args {
        let file = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let n = file.len();
        let len = u32::from_le_bytes(file[n - 8..n - 4].try_into().unwrap()) as usize;
        // Leading magic + footer + length + trailing magic: all the rewrite looks at.
        let mut f = b"PAR1".to_vec();
        f.extend_from_slice(&file[n - 8 - len..]);
        footers.push(f);
    }
    assert!(!footers.is_empty(), "no tiles given");
    let mut changed = 0;
    let mut buf = Vec::new();
    let start = Instant::now();
    for _ in 0..rounds {
        for f in &footers {
            buf.clear();
            buf.extend_from_slice(f);
            changed += rasterstage::stage::footer::type_defined_float_orders(&mut buf);
        }
    }
    let calls = rounds * footers.len();
    let per = start.elapsed().as_secs_f64() / calls as f64;
    let bytes: usize = footers.iter().map(Vec::len).sum::<usize>() / footers.len();
    println!(
        "{calls} calls, {:.2} columns changed a call, footer {bytes} bytes on average: {:.2} us a tile",
        changed as f64 / calls as f64,
        per * 1e6
    );
}
