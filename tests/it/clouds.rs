//! The storage conformance suite: one set of test bodies run on every object store
//! rasterstage stages to, each against an emulator on loopback that scripts/services.sh
//! starts: moto for S3 (the `s3_*` tests in s3.rs call these bodies), Azurite for Azure Blob
//! (`azure_*`), fake-gcs-server for Google Cloud Storage (`gcs_*`). Each test works in a
//! bucket (container) of its own, deleted afterwards, and compares what it staged there with
//! the same conversion into a local folder: same keys, same bytes, same tables.
//!
//! What an emulator cannot serve is named where a test leaves it out (see [`NOT_ON_GCS`]).

use crate::common::*;
use rasterstage::store::Store;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// What fake-gcs-server (1.54, the GCS emulator) does not serve, so what the GCS tests leave
/// out: it has no XML multipart upload (fsouza/fake-gcs-server#852), so objects above
/// rasterstage's 8 MiB multipart threshold cannot be written to it; it ignores
/// `x-goog-if-generation-match` (#994), so the create-if-absent of `dataset.json` that
/// concurrent shards rely on is not checked; and it answers a request for a missing bucket
/// with a bare 404 or a 500 instead of GCS's `NoSuchBucket`.
pub(crate) const NOT_ON_GCS: &str =
    "fake-gcs-server has no XML multipart upload (objects > 8 MiB), ignores x-goog-if-generation-match, and has no NoSuchBucket error";

/// The conformance tests' queries on their schema.
pub(crate) trait CloudSchema {
    /// Every row of the dataset table, sorted, values as f64 bits (exact comparison).
    fn rows(&self, table: &str) -> Vec<(i32, i32, u64, u64, u64)>;
    /// The ledger: (tile, checksum, rows), sorted.
    fn ledger(&self) -> Vec<(String, String, i64)>;
}

impl CloudSchema for Schema {
    fn rows(&self, table: &str) -> Vec<(i32, i32, u64, u64, u64)> {
        self.row_bits(table)
    }

    fn ledger(&self) -> Vec<(String, String, i64)> {
        let sql = format!(
            "SELECT dataset || '/' || tile_id, checksum, rows::int8 FROM \"{}\".raster_tile_loads ORDER BY 1",
            self.name
        );
        client().query(&sql, &[]).unwrap().into_iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
    }
}

/// A Float32 source with nodata holes: `w x h` cells of 0.01 degree.
pub(crate) fn source(path: &Path, w: usize, h: usize, seed: u64) {
    let mut next = lcg(seed);
    let values: Vec<f32> =
        (0..w * h).map(|_| if next() % 11 == 0 { -9999.0 } else { (next() % 100_000) as f32 / 100.0 }).collect();
    let spec = RasterSpec { nodata: Some(-9999.0), ..RasterSpec::geographic(w, h, 0.01) };
    write_tif(path, &RasterSpec { x0: -10.0, y0: 60.0, ..spec }, values);
}

/// Every file under a local folder (relative path, bytes), sorted, without dataset.json
/// (it names the source and its mtime) and without in-progress temporary files.
pub(crate) fn staged_files(root: &Path) -> Vec<(String, Vec<u8>)> {
    files_under(root).into_iter().filter(|(rel, _)| !rel.ends_with("dataset.json") && !rel.contains('#')).collect()
}

/// Asserts that two staged datasets are the same: manifest totals, per-tile checksums,
/// and every object byte for byte.
pub(crate) fn same_staging(a: &Path, b: &Path, name: &str) {
    let (ma, mb) = (manifest(a, name), manifest(b, name));
    assert_eq!(ma["status"], "complete");
    for k in ["row_count", "value_sum", "tile_count", "grid", "tiles"] {
        assert_eq!(ma[k], mb[k], "dataset.json {k} differs");
    }
    assert_eq!(tile_checksums(a, name), tile_checksums(b, name));
    let (fa, fb) = (staged_files(&a.join(name)), staged_files(&b.join(name)));
    assert_eq!(fa.iter().map(|f| &f.0).collect::<Vec<_>>(), fb.iter().map(|f| &f.0).collect::<Vec<_>>(), "same keys");
    assert!(fa == fb, "staged bytes differ");
}

/// Convert to the bucket and to a local folder: same keys and bytes; `inspect` reads the
/// bucket; `load` from both gives the same table and ledger; a second load loads nothing;
/// `verify` passes.
pub(crate) fn stage_and_load(backend: Backend, format: &str) {
    let dir = tmp();
    let src = dir.path().join("cells.tif");
    source(&src, 400, 300, 7);
    let bucket = Bucket::new_on(backend, &format!("rt-{format}"));
    let local = dir.path().join("local");
    let name = "cells";
    let args = |out: &str| -> Vec<String> {
        ["convert", s(&src), "--name", name, "--out", out, "--format", format]
            .iter()
            .chain(&["--resolution", "0.02", "--method", "average", "--window", "48", "--threads", "2"])
            .map(|a| a.to_string())
            .collect()
    };
    let remote = bucket.url("staging");
    let a = args(s(&local));
    ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let b = args(&remote);
    let out = ok(&b.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains(&format!("-> {remote}/{name}")), "{out}");
    let mirror = bucket.download("staging");
    same_staging(mirror.path(), &local, name);

    // `inspect` reads the bucket like a folder.
    let shown = ok(&["inspect", &remote]);
    assert!(shown.contains(name) && shown.contains("complete"), "{shown}");

    // Load from the bucket and from the local folder: same table, same ledger.
    let tag = format!("{}_{format}", backend.scheme());
    let (sl, sr) = (Schema::new(&format!("local_{tag}")), Schema::new(&format!("remote_{tag}")));
    ok(&["load", "--from", s(&local), "--database-url", &db_url(), "--schema", &sl.name]);
    let out = ok(&["load", "--from", &remote, "--database-url", &db_url(), "--schema", &sr.name]);
    assert!(out.contains(name), "{out}");
    let rows = sr.rows(name);
    assert_eq!(rows.len() as u64, manifest(&local, name)["row_count"].as_u64().unwrap());
    assert!(rows == sl.rows(name), "tables loaded from {backend:?} and from the local folder differ");
    assert_eq!(sr.ledger(), sl.ledger());
    // A second load from the bucket finds everything loaded.
    let out = ok(&["load", "--from", &remote, "--database-url", &db_url(), "--schema", &sr.name]);
    assert!(out.contains("0 loaded now"), "{out}");
    ok(&["verify", "--from", &remote, "--database-url", &db_url(), "--schema", &sr.name]);
}

/// A source raster in a bucket, read through GDAL's /vsis3/, /vsigs/ or /vsiaz/.
pub(crate) struct VsiRun {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) bucket: Bucket,
    /// The source's URL (`s3://`, `gs://`, `az://`).
    pub(crate) url: String,
    /// The same conversion of the local file.
    pub(crate) reference: PathBuf,
}

/// The convert arguments of [`source_raster_through_vsi`].
pub(crate) const VSI_ARGS: [&str; 8] = ["--name", "src", "--resolution", "0.03", "--method", "sum", "--window", "40"];

/// A GeoTIFF in the bucket, given by its URL, is read through GDAL's virtual file system
/// for that cloud and gives the same tiles as the file; dataset.json records the URL and
/// the object's size.
pub(crate) fn source_raster_through_vsi(backend: Backend) -> VsiRun {
    let dir = tmp();
    let src = dir.path().join("src.tif");
    source(&src, 300, 200, 11);
    let bucket = Bucket::new_on(backend, "vsi");
    bucket.store("rasters").put("src.tif", std::fs::read(&src).unwrap().into()).unwrap();
    let (a, b) = (dir.path().join("from_bucket"), dir.path().join("from_file"));
    let url = bucket.url("rasters/src.tif");
    let args_a: Vec<&str> = ["convert", url.as_str(), "--out", s(&a)].iter().copied().chain(VSI_ARGS).collect();
    let args_b: Vec<&str> = ["convert", s(&src), "--out", s(&b)].iter().copied().chain(VSI_ARGS).collect();
    ok(&args_a);
    ok(&args_b);
    same_staging(&a, &b, "src");
    assert_eq!(manifest(&a, "src")["kind"]["raster"]["source"]["path"], url.as_str());
    assert_eq!(
        manifest(&a, "src")["kind"]["raster"]["source"]["fingerprint"]["size"],
        std::fs::metadata(&src).unwrap().len()
    );
    VsiRun { dir, bucket, url, reference: b }
}

pub(crate) fn count_keys(st: &Store, prefix: &str) -> usize {
    st.list(prefix).map(|k| k.len()).unwrap_or(0)
}

/// kill -9 while tiles are being uploaded; the rerun uploads only the missing tiles and the
/// bucket ends up exactly as after an uninterrupted run. Returns the bucket for checks of
/// the backend's own (S3: no multipart upload left open).
pub(crate) fn kill_mid_upload_then_resume(backend: Backend) -> Bucket {
    let dir = tmp();
    let src = dir.path().join("k.tif");
    source(&src, 640, 640, 5);
    let bucket = Bucket::new_on(backend, "kill");
    let name = "k";
    let remote = bucket.url("staging");
    let local = dir.path().join("clean");
    let args = |out: &str| -> Vec<String> {
        ["convert", s(&src), "--name", name, "--out", out, "--window", "40", "--threads", "2"]
            .iter()
            .map(|a| a.to_string())
            .collect()
    };
    let a = args(&remote);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut child = bin()
        .args(&a)
        .env("RASTERSTAGE_TEST_TILE_DELAY_MS", "40")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ds = bucket.store(&format!("staging/{name}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while count_keys(&ds, "_tiles") < 5 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("convert ended ({status}) before it could be killed");
        }
        assert!(Instant::now() < deadline, "no tile committed after 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // A commit record whose request was on the wire at the kill may still land on the server
    // after the process is gone: count once the listing has stopped changing.
    let mut committed = count_keys(&ds, "_tiles") as u64;
    let mut unchanged = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while unchanged < 5 {
        std::thread::sleep(Duration::from_millis(100));
        let now = count_keys(&ds, "_tiles") as u64;
        unchanged = if now == committed { unchanged + 1 } else { 0 };
        committed = now;
        assert!(Instant::now() < deadline, "the commit records kept changing after the kill");
    }
    let total = 16 * 16;
    assert!(committed >= 5 && committed < total, "{committed} of {total} committed at the kill");
    let partial = bucket.download("staging");
    assert_eq!(manifest(partial.path(), name)["status"], "converting");

    let out = run_env(&a, &[("RUST_LOG", "info")]);
    assert!(out.status.success(), "resume failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("({} written now)", total - committed)), "only missing tiles: {stdout}");

    let b = args(s(&local));
    ok(&b.iter().map(String::as_str).collect::<Vec<_>>());
    let mirror = bucket.download("staging");
    same_staging(mirror.path(), &local, name);
    bucket
}

/// A tile above 8 MiB goes up in parts (S3 multipart upload, Azure blocks), reads back
/// identically; returns the bucket and the keys of the large objects, for the backend's own
/// check that they were written in parts.
pub(crate) fn multipart_tile_round_trip(backend: Backend) -> (Bucket, Vec<String>) {
    let dir = tmp();
    let src = dir.path().join("big.tif");
    let (w, h) = (1100usize, 1100usize);
    let mut next = lcg(99);
    // Doubles in [1, 2) with 52 random mantissa bits do not compress: the one Zarr chunk
    // stays about 9.7 MB.
    let values: Vec<f64> =
        (0..w * h).map(|_| f64::from_bits((0x3ff << 52) | ((next() << 21 ^ next()) & ((1 << 52) - 1)))).collect();
    write_tif(&src, &RasterSpec::geographic(w, h, 0.01), values);
    let bucket = Bucket::new_on(backend, "multipart");
    let mut big = Vec::new();
    for format in ["zarr", "parquet"] {
        let local = dir.path().join(format!("local-{format}"));
        let prefix = format!("staging-{format}");
        let common = ["--name", "big", "--format", format, "--window", "1100"];
        let remote = bucket.url(&prefix);
        let a: Vec<&str> = ["convert", s(&src), "--out", remote.as_str()].iter().copied().chain(common).collect();
        let b: Vec<&str> = ["convert", s(&src), "--out", s(&local)].iter().copied().chain(common).collect();
        ok(&a);
        ok(&b);
        let mirror = bucket.download(&prefix);
        same_staging(mirror.path(), &local, "big");
        let key = if format == "zarr" { "big/big.zarr/big/c/0/0" } else { "big/tiles/r0_c0.parquet" };
        let size = std::fs::metadata(local.join(key)).unwrap().len();
        assert!(size > 8 << 20, "{key} is only {size} bytes: too small to test multipart");
        big.push(format!("{prefix}/{key}"));
    }
    (bucket, big)
}

/// A bucket (container) that does not exist: one line naming it, for convert, inspect and
/// load; a source in it: one line naming the file.
pub(crate) fn missing_bucket_is_one_clear_line(backend: Backend) {
    let dir = tmp();
    let src = dir.path().join("m.tif");
    source(&src, 64, 64, 2);
    let scheme = backend.scheme();
    let root = format!("{scheme}://rasterstage-no-such-bucket/staging");
    let word = if backend == Backend::Azure { "container" } else { "bucket" };
    let needle = format!("{word} \"rasterstage-no-such-bucket\" does not exist");
    let needles = [needle.as_str()];
    one_error_line(&fails(&["convert", s(&src), "--name", "m", "--out", &root]), &needles);
    one_error_line(&fails(&["inspect", &root]), &needles);
    one_error_line(&fails(&["load", "--from", &root, "--database-url", &db_url(), "--schema", "unused"]), &needles);
    let missing = format!("{scheme}://rasterstage-no-such-bucket/x.tif");
    one_error_line(&fails(&["convert", &missing, "--out", s(dir.path())]), &["x.tif"]);
}

fn spawn(args: &[&str]) -> Child {
    bin().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Two shards converting at the same time into the bucket, then two loading, end like one
/// local process: same objects, same table; `merge` of two datasets in the bucket, staged
/// there and loaded, equals the same merge done locally (same rows and totals).
pub(crate) fn shards_and_merge_match_local(backend: Backend) {
    let dir = tmp();
    let (a, b) = (dir.path().join("a.tif"), dir.path().join("b.tif"));
    source(&a, 320, 200, 31);
    source(&b, 320, 200, 32);
    let bucket = Bucket::new_on(backend, "shards");
    let remote = bucket.url("staging");
    let local = dir.path().join("local");
    let cfg = |root: &str, file: &str| -> String {
        let p = dir.path().join(file);
        let text = format!(
            "datasets:\n  - {{name: a, path: {}, method: average}}\n  - {{name: b, path: {}, method: average}}\n\
             resampling:\n  target_resolution: 0.02\n  window_size: 32\noutput:\n  uri: {root}\n",
            s(&a),
            s(&b)
        );
        std::fs::write(&p, text).unwrap();
        s(&p).to_string()
    };
    let (cl, cr) = (cfg(s(&local), "local.yml"), cfg(&remote, "remote.yml"));
    ok(&["-q", "convert", "--config", &cl]);
    let kids: Vec<Child> =
        (0..2).map(|k| spawn(&["-q", "convert", "--config", &cr, "--shard", &format!("{k}/2")])).collect();
    for (k, c) in kids.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "shard {k}/2: {}", String::from_utf8_lossy(&out.stderr));
    }
    ok(&["finalize", "--config", &cr]);
    let mirror = bucket.download("staging");
    same_staging(mirror.path(), &local, "a");
    same_staging(mirror.path(), &local, "b");

    let tag = backend.scheme();
    let (sl, sr) = (Schema::new(&format!("shl_{tag}")), Schema::new(&format!("shr_{tag}")));
    ok(&["-q", "load", "--config", &cl, "--schema", &sl.name, "--database-url", &db_url()]);
    let kids: Vec<Child> = (0..2)
        .map(|k| {
            let shard = format!("{k}/2");
            spawn(&[
                "-q",
                "load",
                "--config",
                &cr,
                "--schema",
                &sr.name,
                "--database-url",
                &db_url(),
                "--shard",
                &shard,
            ])
        })
        .collect();
    for (k, c) in kids.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "load shard {k}/2: {}", String::from_utf8_lossy(&out.stderr));
    }
    for t in ["a", "b"] {
        assert!(sr.rows(t) == sl.rows(t), "{t}: sharded load from {backend:?} differs from the local one");
    }
    assert_eq!(sr.ledger(), sl.ledger());

    // merge in the bucket (staged next to its inputs) and locally: same objects, same rows.
    for (root, schema) in [(remote.as_str(), &sr.name), (s(&local), &sl.name)] {
        let args = ["-q", "merge", "--from", root, "--datasets", "a,b", "--name", "ab", "--to-postgres"];
        ok(&[&args[..], &["--schema", schema, "--database-url", &db_url()]].concat());
    }
    // The merged tiles name their inputs' URLs in their metadata: compare contents, not bytes.
    let mirror = bucket.download("staging");
    let (mr, ml) = (manifest(mirror.path(), "ab"), manifest(&local, "ab"));
    for k in ["status", "row_count", "value_sum", "tile_count", "grid"] {
        assert_eq!(mr[k], ml[k], "merged dataset.json {k} differs");
    }
    // One nullable column per input: every row as PostgreSQL's text (exact: shortest
    // round-trip float output).
    let text = |schema: &str| -> Vec<String> {
        let sql = format!("SELECT t::text FROM \"{schema}\".ab t ORDER BY row_idx, col_idx");
        client().query(&sql, &[]).unwrap().into_iter().map(|r| r.get(0)).collect()
    };
    let merged = text(&sr.name);
    assert_eq!(merged.len() as u64, ml["row_count"].as_u64().unwrap());
    assert!(merged == text(&sl.name), "merged from {backend:?} differs from merged locally");
}

/// Azure: every large object was committed as more than one block.
fn assert_azure_blocks(bucket: &Bucket, keys: &[String]) {
    for key in keys {
        let n = bucket.azure(&format!("print(len(container.get_blob_client({key:?}).get_block_list('committed')[0]))"));
        assert!(n.parse::<usize>().unwrap() > 1, "{key} was not uploaded in blocks: {n} block(s)");
    }
}

#[test]
fn azure_parquet_convert_and_load_match_local() {
    if !require(&[Pg, Python, Need::Azure]) {
        return;
    }
    stage_and_load(Backend::Azure, "parquet");
}

#[test]
fn azure_zarr_convert_and_load_match_local() {
    if !require(&[Pg, Python, Need::Azure]) {
        return;
    }
    stage_and_load(Backend::Azure, "zarr");
}

#[test]
fn azure_source_raster_through_vsiaz() {
    if !require(&[Pg, Python, Need::Azure]) {
        return;
    }
    source_raster_through_vsi(Backend::Azure);
}

#[test]
fn azure_kill_mid_upload_then_resume() {
    if !require(&[Pg, Python, Need::Azure]) {
        return;
    }
    kill_mid_upload_then_resume(Backend::Azure);
}

#[test]
fn azure_multipart_tile_round_trip() {
    if !require(&[Pg, Python, Need::Azure]) {
        return;
    }
    let (bucket, keys) = multipart_tile_round_trip(Backend::Azure);
    assert_azure_blocks(&bucket, &keys);
}

#[test]
fn azure_missing_container_is_one_clear_line() {
    if !require(&[Pg, Python, Need::Azure]) {
        return;
    }
    missing_bucket_is_one_clear_line(Backend::Azure);
}

#[test]
fn azure_shards_and_merge_match_local() {
    if !require(&[Pg, Python, Need::Azure]) {
        return;
    }
    shards_and_merge_match_local(Backend::Azure);
}

#[test]
fn gcs_parquet_convert_and_load_match_local() {
    if !require(&[Pg, Python, Need::Gcs]) {
        return;
    }
    stage_and_load(Backend::Gcs, "parquet");
}

#[test]
fn gcs_zarr_convert_and_load_match_local() {
    if !require(&[Pg, Python, Need::Gcs]) {
        return;
    }
    stage_and_load(Backend::Gcs, "zarr");
}

#[test]
fn gcs_source_raster_through_vsigs() {
    if !require(&[Pg, Python, Need::Gcs]) {
        return;
    }
    source_raster_through_vsi(Backend::Gcs);
}

#[test]
fn gcs_kill_mid_upload_then_resume() {
    if !require(&[Pg, Python, Need::Gcs]) {
        return;
    }
    kill_mid_upload_then_resume(Backend::Gcs);
}

#[test]
fn gcs_shards_and_merge_match_local() {
    if !require(&[Pg, Python, Need::Gcs]) {
        return;
    }
    shards_and_merge_match_local(Backend::Gcs);
}

/// Not run on the emulator: see [`NOT_ON_GCS`]. The test exists so that the suite lists
/// what GCS was not tested for.
#[test]
fn gcs_multipart_tile_round_trip_not_served_by_the_emulator() {
    if !require(&[Pg, Python, Need::Gcs]) {
        return;
    }
    eprintln!("gcs multipart (objects > 8 MiB) and missing-bucket errors not tested: {NOT_ON_GCS}");
}

/// Azure credentials: a wrong account key is refused in one line naming the container and
/// the operation; a SAS token alone (the connection string's `SharedAccessSignature`) works;
/// neither the key nor the token appears anywhere, not even in trace logs.
#[test]
fn azure_refused_key_and_sas_token_never_printed() {
    if !require(&[Pg, Python, Need::Azure]) {
        return;
    }
    let dir = tmp();
    let src = dir.path().join("c.tif");
    source(&src, 64, 64, 4);
    let bucket = Bucket::new_on(Backend::Azure, "auth");
    let endpoint = Backend::Azure.endpoint();
    let root = bucket.url("staging");
    let conv = ["convert", s(&src), "--name", "c", "--out", root.as_str(), "--overwrite"];
    let run_with = |cs: &str, args: &[&str]| -> (bool, String) {
        let out =
            bin().args(args).env("AZURE_STORAGE_CONNECTION_STRING", cs).env("RUST_LOG", "trace").output().unwrap();
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), all)
    };

    // "wrong-key-never-printed", base64: a well-formed key Azurite does not accept.
    let wrong_key = "d3Jvbmcta2V5LW5ldmVyLXByaW50ZWQ=";
    let wrong = format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={wrong_key};BlobEndpoint={endpoint};"
    );
    let err = String::from_utf8_lossy(
        &bin().args(conv).env("AZURE_STORAGE_CONNECTION_STRING", &wrong).output().unwrap().stderr,
    )
    .into_owned();
    let quoted = format!("container \"{}\" refused", bucket.name);
    let line =
        one_error_line(&err, &[&quoted, &format!("get {root}/c/dataset.json"), "AZURE_STORAGE_CONNECTION_STRING"]);
    assert!(!line.contains(wrong_key), "{line}");
    let (ok_, all) = run_with(&wrong, &["inspect", &root]);
    assert!(!ok_ && all.contains(&quoted) && !all.contains(wrong_key), "{all}");

    // A container SAS token only, no key: works, and is never printed.
    let sas = bucket.azure(
        "from datetime import datetime, timedelta, timezone\n\
         from azure.storage.blob import generate_container_sas, ContainerSasPermissions\n\
         key = svc.credential.account_key\n\
         print(generate_container_sas('devstoreaccount1', container.container_name, account_key=key, \
         permission=ContainerSasPermissions(read=True, write=True, delete=True, list=True, add=True, create=True), \
         expiry=datetime.now(timezone.utc) + timedelta(hours=1)))",
    );
    let signature = sas.split('&').find_map(|p| p.strip_prefix("sig=")).expect("sig in the SAS token").to_string();
    let with_sas = format!("BlobEndpoint={endpoint};SharedAccessSignature={sas}");
    let (ok_, all) = run_with(&with_sas, &["-vv", conv[0], conv[1], conv[2], conv[3], conv[4], conv[5], conv[6]]);
    assert!(ok_, "SAS token: {all}");
    assert!(all.len() > 1000, "expected trace output");
    let key = bucket.azure("print(svc.credential.account_key)");
    for secret in [signature.as_str(), key.as_str()] {
        assert!(!all.contains(secret), "a secret was printed");
    }
    assert_eq!(manifest(bucket.download("staging").path(), "c")["status"], "complete");
}

/// GCS credentials from a service-account JSON file (`GOOGLE_SERVICE_ACCOUNT`), the form
/// object_store's own emulator tests use: `gcs_base_url` names the server and
/// `disable_oauth` sends no token; without STORAGE_EMULATOR_HOST.
#[test]
fn gcs_service_account_file() {
    if !require(&[Pg, Python, Need::Gcs]) {
        return;
    }
    let dir = tmp();
    let src = dir.path().join("g.tif");
    source(&src, 64, 64, 6);
    let bucket = Bucket::new_on(Backend::Gcs, "sa");
    let key = dir.path().join("service-account.json");
    let json = format!(
        "{{\"type\": \"service_account\", \"private_key\": \"\", \"private_key_id\": \"\", \"client_email\": \"\", \
         \"gcs_base_url\": \"{}\", \"disable_oauth\": true}}",
        Backend::Gcs.endpoint()
    );
    std::fs::write(&key, json).unwrap();
    let root = bucket.url("staging");
    let out = bin()
        .args(["convert", s(&src), "--name", "g", "--out", &root])
        .env_remove("STORAGE_EMULATOR_HOST")
        .env("GOOGLE_SERVICE_ACCOUNT", &key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(manifest(bucket.download("staging").path(), "g")["status"], "complete");
}
