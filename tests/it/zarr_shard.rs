//! Sharded Zarr v3 (`--zarr-shard K`): a shard object of K x K windows through the
//! `sharding_indexed` codec is one tile (one object, one commit record, one unit of a
//! scale-out split). Checked against the unsharded layout with real readers: zarr-python,
//! xarray, tensorstore (an independent C++ implementation), PostgreSQL through `load` and
//! `verify`, `inspect` and `merge`; a kill -9 mid-run resumes to the same bytes, `--shard K/N`
//! processes end like one, and a bad K is one clear error line.

use crate::common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};

/// 700 x 450 Float32 cells with nodata holes and a nodata block in the north-west corner.
/// With `--window 32 --zarr-shard 3`, shards are 96 cells a side: 8 x 5 shards, the last
/// column of shards 28 cells wide (one partial inner chunk, two beyond the grid) and the last
/// row 66 cells high; the north-west shard has no valid cell.
fn source(path: &Path) {
    let (w, h) = (700, 450);
    let mut next = lcg(16);
    let values: Vec<f32> = (0..w * h)
        .map(|i| {
            let (r, c) = (i / w, i % w);
            if (r < 100 && c < 100) || next() % 11 == 0 {
                -9999.0
            } else {
                (next() % 100_000) as f32 / 7.0
            }
        })
        .collect();
    let spec = RasterSpec { x0: -10.0, y0: 60.0, nodata: Some(-9999.0), ..RasterSpec::geographic(w, h, 0.01) };
    write_tif(path, &spec, values);
}

/// `convert` of the source into `out` as dataset `name`, with `extra` flags.
fn convert_args<'a>(src: &'a str, out: &'a str, name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["-q", "convert", src, "--name", name, "--out", out, "--format", "zarr", "--window", "32"];
    a.extend_from_slice(extra);
    a
}

/// The Zarr shard tests' query on their schema.
trait ZarrShardSchema {
    /// Every row of `table`, values as f64 bits, in key order.
    fn rows(&self, table: &str) -> Vec<(i32, i32, u64, u64, u64)>;
}

impl ZarrShardSchema for Schema {
    fn rows(&self, table: &str) -> Vec<(i32, i32, u64, u64, u64)> {
        self.row_bits(table)
    }
}

/// Files under `dir` (relative paths), without object_store's temporary files.
fn file_names(dir: &Path) -> Vec<String> {
    files_under(dir).into_iter().map(|(p, _)| p).collect()
}

#[test]
fn sharded_equals_unsharded_for_every_reader() {
    if !require(&[Pg, Python]) {
        return;
    }
    let dir = tmp();
    let src = dir.path().join("src.tif");
    source(&src);
    let (sh, un) = (dir.path().join("sh"), dir.path().join("un"));
    ok(&convert_args(s(&src), s(&sh), "cells", &["--zarr-shard", "3"]));
    ok(&convert_args(s(&src), s(&un), "cells", &[]));
    validate_dataset_json(&sh, "cells");

    // One object and one commit record per shard, and none for the empty north-west shard.
    let m = manifest(&sh, "cells");
    assert_eq!((m["format"]["zarr"]["shard"].as_u64(), m["tile_count"].as_u64()), (Some(3), Some(8 * 5)));
    let tiles = m["tiles"].as_array().unwrap();
    assert_eq!(tiles[0]["path"], serde_json::Value::Null, "the shard without valid cells is not stored");
    assert_eq!((tiles[7]["id"].as_str(), tiles[7]["window"]["cols"].as_u64()), (Some("r0_c672"), Some(28)));
    assert_eq!((tiles[39]["window"]["rows"].as_u64(), tiles[39]["window"]["cols"].as_u64()), (Some(66), Some(28)));
    let names = file_names(&sh.join("cells"));
    let shards = names.iter().filter(|p| p.starts_with("cells.zarr/cells/c/")).count();
    let commits = names.iter().filter(|p| p.starts_with("_tiles/")).count();
    assert_eq!((shards, commits), (39, 40), "{names:?}");
    let unsharded = file_names(&un.join("cells")).iter().filter(|p| p.starts_with("cells.zarr/cells/c/")).count();
    assert!(unsharded > 250, "{unsharded} chunks unsharded");
    // Coordinates are chunked by the shard's side too: 8 x and 5 y objects, not 22 and 15.
    assert_eq!(names.iter().filter(|p| p.starts_with("cells.zarr/x/c/")).count(), 8);

    // The array metadata is the sharding codec with the index's CRC-32C, as zarr-python writes.
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sh.join("cells/cells.zarr/cells/zarr.json")).unwrap()).unwrap();
    assert_eq!(meta["chunk_grid"]["configuration"]["chunk_shape"], serde_json::json!([96, 96]));
    let codec = &meta["codecs"][0];
    assert_eq!(codec["name"], "sharding_indexed");
    assert_eq!(codec["configuration"]["chunk_shape"], serde_json::json!([32, 32]));
    assert_eq!(codec["configuration"]["index_codecs"][1]["name"], "crc32c");
    assert_eq!(codec["configuration"]["index_location"], "end");

    // zarr-python, xarray and tensorstore read the same values as the unsharded array and
    // the source, exactly (edge shards included).
    let (zs, zu) = (sh.join("cells/cells.zarr"), un.join("cells/cells.zarr"));
    let code = format!(
        "import numpy as np, zarr, xarray as xr, rasterio, tensorstore as ts\n\
         src = rasterio.open({src:?}).read(1)\n\
         a = zarr.open_group({zs:?}, mode='r')['cells']\n\
         u = zarr.open_group({zu:?}, mode='r')['cells'][:]\n\
         print(a.shards, a.chunks, np.array_equal(a[:], u), np.array_equal(a[:], src))\n\
         xs, xu = xr.open_zarr({zs:?}), xr.open_zarr({zu:?})\n\
         print(xs['cells'].equals(xu['cells']), xs['x'].equals(xu['x']), xs['y'].equals(xu['y']))\n\
         t = ts.open({{'driver': 'zarr3', 'kvstore': {{'driver': 'file', 'path': {zs:?} + '/cells'}}}}).result()\n\
         print(np.array_equal(t.read().result(), src))",
        src = s(&src),
        zs = s(&zs),
        zu = s(&zu),
    );
    assert_eq!(py(&code), "(96, 96) (32, 32) True True\nTrue True True\nTrue");

    // load and verify: the same rows as the unsharded dataset, one transaction per shard.
    let sc = Schema::new("rt");
    let db = db_url();
    ok(&["-q", "load", "--from", s(&sh), "--schema", &sc.name, "--table-prefix", "sh_", "--database-url", &db]);
    ok(&["-q", "load", "--from", s(&un), "--schema", &sc.name, "--table-prefix", "un_", "--database-url", &db]);
    let rows = sc.rows("sh_cells");
    assert_eq!(rows.len() as u64, m["row_count"].as_u64().unwrap());
    assert!(rows == sc.rows("un_cells"), "sharded and unsharded load to different rows");
    let ledger: i64 = client()
        .query_one(&format!("SELECT count(*) FROM \"{}\".raster_tile_loads WHERE dataset = 'sh_cells'", sc.name), &[])
        .unwrap()
        .get(0);
    assert_eq!(ledger, 40);
    ok(&["verify", "--from", s(&sh), "--schema", &sc.name, "--table-prefix", "sh_", "--database-url", &db]);
    // A changed row is found in its shard.
    client()
        .batch_execute(&format!(
            "UPDATE \"{}\".sh_cells SET value = value + 1 WHERE row_idx = 200 AND col_idx = 690",
            sc.name
        ))
        .unwrap();
    let e = fails(&["verify", "--from", s(&sh), "--schema", &sc.name, "--table-prefix", "sh_", "--database-url", &db]);
    assert!(e.contains("1 of 40"), "{e}");

    // inspect counts shards.
    let shown = ok(&["inspect", s(&sh)]);
    assert!(shown.contains("complete") && shown.contains("40/40"), "{shown}");

    // merge reads sharded inputs (here of two shard sizes) like unsharded ones: identical
    // merged tiles, on windows that cut across shards.
    ok(&convert_args(s(&src), s(&sh), "twin", &["--zarr-shard", "2"]));
    ok(&convert_args(s(&src), s(&un), "twin", &[]));
    for (root, out) in [(&sh, "msh"), (&un, "mun")] {
        let o = dir.path().join(out).join("m");
        ok(&["-q", "merge", "--from", s(root), "--datasets", "cells,twin", "--out", s(&o), "--window", "50"]);
    }
    // The tiles' metadata names the input folders, which differ: compare the cells.
    let (ga, gb) = (dir.path().join("msh/m/tiles/*.parquet"), dir.path().join("mun/m/tiles/*.parquet"));
    let (ga, gb) = (s(&ga), s(&gb));
    let row = duckdb_row(&format!(
        "SELECT (SELECT count(*) FROM read_parquet('{ga}')), \
         (SELECT count(*) FROM (SELECT * FROM read_parquet('{ga}') EXCEPT ALL SELECT * FROM read_parquet('{gb}'))), \
         (SELECT count(*) FROM (SELECT * FROM read_parquet('{gb}') EXCEPT ALL SELECT * FROM read_parquet('{ga}')))"
    ));
    assert_eq!(row, format!("{}|0|0", rows.len()), "merging the sharded datasets wrote other cells");
}

/// A shard object damaged after its commit is refused by load (checksum) with its key named.
#[test]
fn damaged_shard_is_refused() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let src = dir.path().join("src.tif");
    source(&src);
    let sh = dir.path().join("sh");
    ok(&convert_args(s(&src), s(&sh), "cells", &["--zarr-shard", "4"]));
    let shard = sh.join("cells/cells.zarr/cells/c/1/1");
    let mut bytes = std::fs::read(&shard).unwrap();
    let n = bytes.len();
    bytes[n - 30] ^= 0xff;
    std::fs::write(&shard, bytes).unwrap();
    let sc = Schema::new("bad");
    let e = fails(&["load", "--from", s(&sh), "--schema", &sc.name, "--database-url", &db_url()]);
    assert!(e.contains("cells.zarr/cells/c/1/1") && e.contains("checksum"), "{e}");
}

/// kill -9 while shards are being written, then the same command: only the uncommitted
/// shards are redone, and every object ends byte-identical to an uninterrupted run.
#[test]
fn kill_mid_run_resumes_to_the_same_bytes() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let src = dir.path().join("src.tif");
    source(&src);
    let (crashed, clean) = (dir.path().join("crashed"), dir.path().join("clean"));
    // 16-cell windows, 2 x 2 per shard: 22 x 15 = 330 shards.
    let extra = ["--window", "16", "--zarr-shard", "2", "--threads", "2"];
    let args = |out: &Path| -> Vec<String> {
        let mut a: Vec<String> = convert_args(s(&src), s(out), "cells", &[]).iter().map(|x| x.to_string()).collect();
        let w = a.iter().position(|x| x == "--window").unwrap();
        a.drain(w..w + 2);
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let mut child = bin()
        .args(args(&crashed))
        .env("RASTERSTAGE_TEST_TILE_DELAY_MS", "20")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let records = crashed.join("cells/_tiles");
    // Commit records only: a kill can leave a record's temporary `<id>.json#<n>` beside them.
    let count = || {
        std::fs::read_dir(&records)
            .map(|d| d.filter_map(Result::ok).filter(|e| !e.file_name().to_string_lossy().contains('#')).count())
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while count() < 5 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("convert ended ({status}) before it could be killed");
        }
        assert!(std::time::Instant::now() < deadline, "no shard committed after 120 s");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let m = manifest(&crashed, "cells");
    assert_eq!(m["status"], "converting");
    let (committed, total) = (count() as u64, m["tile_count"].as_u64().unwrap());
    assert!(committed >= 5 && committed < total, "{committed} of {total}");

    let a = args(&crashed);
    let a: Vec<&str> = a.iter().map(String::as_str).filter(|x| *x != "-q").collect();
    let out = succeeded(&a, run(&a));
    assert!(out.contains(&format!("({} written now)", total - committed)), "{out}");
    let b = args(&clean);
    ok(&b.iter().map(String::as_str).collect::<Vec<_>>());
    let files = |root: &Path| -> Vec<(String, Vec<u8>)> {
        files_under(&root.join("cells")).into_iter().filter(|(p, _)| p != "dataset.json").collect()
    };
    assert!(files(&crashed) == files(&clean), "the resumed run's objects differ from an uninterrupted run's");
    assert_eq!(manifest(&crashed, "cells")["tiles"], manifest(&clean, "cells")["tiles"]);
}

fn spawn(args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut c = bin();
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

fn wait_ok(c: Child, what: &str) {
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--shards 3` on S3: the plan's units are whole shard objects, three processes at once
/// write the same objects as one, and a sharded load gives the same rows.
#[test]
fn scale_out_assigns_whole_shards() {
    if !require(&[Pg, S3, Python]) {
        return;
    }
    let dir = tmp();
    let src = dir.path().join("src.tif");
    source(&src);
    let bucket = Bucket::new("zshard");
    let (one, three) = (bucket.url("one"), bucket.url("three"));
    ok(&convert_args(s(&src), &one, "cells", &["--zarr-shard", "3"]));

    let plan = ok(&[
        "plan",
        s(&src),
        "--name",
        "cells",
        "--format",
        "zarr",
        "--window",
        "32",
        "--zarr-shard",
        "3",
        "--shards",
        "3",
        "--json",
    ]);
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    let units = plan["assignment"].as_array().unwrap();
    assert_eq!(units.len(), 40, "one unit per shard object");
    for u in units {
        let id = u["tile"].as_str().unwrap();
        let (r, c) = id.trim_start_matches('r').split_once("_c").unwrap();
        assert!(r.parse::<usize>().unwrap() % 96 == 0 && c.parse::<usize>().unwrap() % 96 == 0, "{id}");
    }

    let children: Vec<Child> = (0..3)
        .map(|k| {
            let mut a = convert_args(s(&src), &three, "cells", &["--zarr-shard", "3", "--shards", "3"]);
            a.push("-j1");
            spawn(&a, &[("JOB_COMPLETION_INDEX", &k.to_string())])
        })
        .collect();
    for (k, c) in children.into_iter().enumerate() {
        wait_ok(c, &format!("convert shard {k}/3"));
    }
    let (want, got): (BTreeMap<_, _>, BTreeMap<_, _>) = (bucket.objects("one"), bucket.objects("three"));
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (k, v) in &want {
        assert!(got[k] == *v, "{k} differs from the single-process run");
    }

    let (sc1, sc3) = (Schema::new("one"), Schema::new("three"));
    let db = db_url();
    ok(&["-q", "load", "--from", &one, "--schema", &sc1.name, "--database-url", &db]);
    let loads: Vec<Child> = (0..2)
        .map(|k| {
            let shard = format!("{k}/2");
            spawn(
                &["-q", "load", "--from", &three, "--schema", &sc3.name, "--database-url", &db, "--shard", &shard],
                &[],
            )
        })
        .collect();
    for (k, c) in loads.into_iter().enumerate() {
        wait_ok(c, &format!("load shard {k}/2"));
    }
    assert!(sc1.rows("cells") == sc3.rows("cells"), "sharded load differs");
    ok(&["verify", "--from", &three, "--schema", &sc3.name, "--database-url", &db]);
    // zarr-python reads the sharded group straight from S3.
    let code = format!(
        "import numpy as np, zarr, rasterio\n\
         from zarr.storage import ObjectStore\n\
         from obstore.store import S3Store\n\
         st = S3Store({bucket:?}, prefix='three/cells/cells.zarr', endpoint={ep:?}, region='us-east-1', \
           access_key_id='x', secret_access_key='y', client_options={{'allow_http': True}})\n\
         a = zarr.open_group(ObjectStore(st, read_only=True), mode='r')['cells'][:]\n\
         print(np.array_equal(a, rasterio.open({src:?}).read(1)))",
        bucket = bucket.name,
        ep = bucket.endpoint,
        src = s(&src),
    );
    assert_eq!(py(&code), "True");
}

#[test]
fn bad_zarr_shard_is_one_clear_error() {
    let dir = tmp();
    let src = dir.path().join("src.tif");
    write_tif(&src, &RasterSpec::geographic(40, 30, 1.0), vec![1u8; 40 * 30]);
    let out = dir.path().join("out");
    let base = ["convert", s(&src), "--out", s(&out), "--window", "32"];
    let cases: [(&[&str], &[&str]); 6] = [
        (&["--format", "zarr", "--zarr-shard", "0"], &["--zarr-shard", "from 1 to 512", "got 0"]),
        (&["--format", "zarr", "--zarr-shard", "100000"], &["--zarr-shard", "from 1 to 512", "got 100000"]),
        (&["--format", "zarr", "--zarr-shard", "300"], &["--zarr-shard", "9600-cell shard side", "8192"]),
        (&["--zarr-shard", "4"], &["--zarr-shard", "Zarr v3", "parquet", "--format zarr"]),
        (&["--format", "parquet", "--zarr-shard", "4"], &["--zarr-shard", "parquet"]),
        (&["--format", "zarr", "--zarr-version", "2", "--zarr-shard", "4"], &["--zarr-shard", "Zarr v2"]),
    ];
    for (extra, needles) in cases {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let o = run(&args);
        assert!(!o.status.success(), "{args:?} succeeded");
        one_error_line(&String::from_utf8_lossy(&o.stderr), needles);
    }
    // From a config: the key is named.
    let cfg = dir.path().join("c.yml");
    std::fs::write(
        &cfg,
        format!(
            "datasets:\n  - {{name: ones, path: {}}}\noutput:\n  uri: {}\n  format: zarr\n  zarr_shard: 0\n",
            s(&src),
            s(&out)
        ),
    )
    .unwrap();
    let o = run(&["convert", "--config", s(&cfg)]);
    assert!(!o.status.success());
    one_error_line(&String::from_utf8_lossy(&o.stderr), &["output.zarr_shard", "got 0"]);
    assert!(!out.exists(), "nothing is written for a refused run");
}
