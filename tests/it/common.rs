//! Shared test helpers: raster fixtures, running the binary, external readers.

#![allow(dead_code)]

use gdal::raster::{Buffer, GdalType};
use gdal::spatial_ref::SpatialRef;
use gdal::DriverManager;
use rasterstage::store::Store;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A north-up raster to generate.
#[derive(Clone)]
pub struct RasterSpec {
    pub width: usize,
    pub height: usize,
    pub x0: f64,
    pub y0: f64,
    pub res: f64,
    pub epsg: u32,
    pub nodata: Option<f64>,
    pub block: usize,
}

impl RasterSpec {
    pub fn geographic(width: usize, height: usize, res: f64) -> RasterSpec {
        RasterSpec { width, height, x0: -180.0, y0: 90.0, res, epsg: 4326, nodata: None, block: 256 }
    }
}

/// Writes a tiled, deflate-compressed GeoTIFF with `values` (row-major).
pub fn write_tif<T: GdalType + Copy>(path: &Path, spec: &RasterSpec, values: Vec<T>) {
    assert_eq!(values.len(), spec.width * spec.height);
    let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
    let block = spec.block.to_string();
    let opts = gdal::raster::RasterCreationOptions::from_iter([
        "TILED=YES",
        "COMPRESS=DEFLATE",
        &format!("BLOCKXSIZE={block}"),
        &format!("BLOCKYSIZE={block}"),
    ]);
    let mut ds = driver.create_with_band_type_with_options::<T, _>(path, spec.width, spec.height, 1, &opts).unwrap();
    ds.set_geo_transform(&[spec.x0, spec.res, 0.0, spec.y0, 0.0, -spec.res]).unwrap();
    ds.set_spatial_ref(&SpatialRef::from_epsg(spec.epsg).unwrap()).unwrap();
    let mut band = ds.rasterband(1).unwrap();
    if let Some(nd) = spec.nodata {
        band.set_no_data_value(Some(nd)).unwrap();
    }
    let mut buf = Buffer::new((spec.width, spec.height), values);
    band.write((0, 0), (spec.width, spec.height), &mut buf).unwrap();
}

/// A deterministic pseudo-random sequence (no rand crate needed).
pub fn lcg(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        s >> 33
    }
}

/// A fresh temporary folder, removed when dropped.
pub fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("rasterstage-test-").tempdir().unwrap()
}

/// The rasterstage binary under test.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rasterstage"));
    c.env("RUST_LOG", "warn");
    c
}

/// Runs rasterstage with `args`; returns the output whatever the status.
pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

/// Runs rasterstage and asserts success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    succeeded(args, run(args))
}

/// Asserts that the run of rasterstage `args` succeeded (showing its output if not); returns
/// its stdout.
pub fn succeeded(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "rasterstage {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs rasterstage, asserts failure, returns stderr.
pub fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(!out.status.success(), "rasterstage {args:?} should have failed: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ---------------------------------------------------------------------------
// Tiers: what a test needs beyond Rust and GDAL, and skipping when it is not there.
// ---------------------------------------------------------------------------

/// Something a test needs beyond Rust and GDAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// The PostgreSQL server at `DATABASE_URL`.
    Pg,
    /// The S3 test server (moto) at `RASTERSTAGE_TEST_S3_ENDPOINT`, with the AWS variables
    /// scripts/services.sh exports.
    S3,
    /// The venv Python at `RASTERSTAGE_PYTHON`, with the readers (DuckDB, zarr, xarray, ...).
    Python,
    /// PostgreSQL's server programs (initdb, pg_ctl) and openssl, for private clusters.
    PgServer,
    /// The one-node Slurm cluster scripts/slurm.sh started (`RASTERSTAGE_TEST_SLURM_CONF`).
    Slurm,
    /// The Azure Blob emulator (Azurite) at `RASTERSTAGE_TEST_AZURE_ENDPOINT`.
    Azure,
    /// The GCS emulator (fake-gcs-server) at `RASTERSTAGE_TEST_GCS_ENDPOINT`.
    Gcs,
}

pub use Need::{Pg, PgServer, Python, S3};

/// Set (to anything but empty or 0) by scripts/test.sh and CI: a test whose service is missing
/// fails instead of skipping, so a broken setup cannot pass as a run of skips.
pub const REQUIRE_SERVICES_ENV: &str = "RASTERSTAGE_REQUIRE_SERVICES";

impl Need {
    /// Why this is missing here, or None when it is available.
    fn missing(self) -> Option<String> {
        let unset = |var: &str| std::env::var(var).map_or(true, |v| v.is_empty());
        let (what, why) = match self {
            Pg => ("PostgreSQL", unset("DATABASE_URL").then(|| "DATABASE_URL unset".to_string())),
            S3 => ("S3", unset("RASTERSTAGE_TEST_S3_ENDPOINT").then(|| "RASTERSTAGE_TEST_S3_ENDPOINT unset".into())),
            Need::Azure => (
                "Azure Blob (Azurite)",
                unset("RASTERSTAGE_TEST_AZURE_ENDPOINT").then(|| "RASTERSTAGE_TEST_AZURE_ENDPOINT unset".into()),
            ),
            Need::Gcs => (
                "GCS (fake-gcs-server)",
                unset("RASTERSTAGE_TEST_GCS_ENDPOINT").then(|| "RASTERSTAGE_TEST_GCS_ENDPOINT unset".into()),
            ),
            Python => (
                "Python",
                match std::env::var("RASTERSTAGE_PYTHON") {
                    Ok(p) if Path::new(&p).is_file() => None,
                    Ok(p) if !p.is_empty() => Some(format!("RASTERSTAGE_PYTHON={p} is not a file")),
                    _ => Some("RASTERSTAGE_PYTHON unset".into()),
                },
            ),
            Need::Slurm => (
                "Slurm",
                match std::env::var("RASTERSTAGE_TEST_SLURM_CONF") {
                    Ok(p) if Path::new(&p).is_file() => None,
                    Ok(p) if !p.is_empty() => Some(format!("RASTERSTAGE_TEST_SLURM_CONF={p} is not a file")),
                    _ => Some("RASTERSTAGE_TEST_SLURM_CONF unset: source scripts/slurm.sh".into()),
                },
            ),
            PgServer => (
                "PostgreSQL server programs",
                if pg_server_bindir().is_none() {
                    Some("no initdb under /usr/lib/postgresql/*/bin".into())
                } else if !on_path("openssl") {
                    Some("no openssl on PATH".into())
                } else {
                    None
                },
            ),
        };
        why.map(|w| format!("{what} ({w})"))
    }
}

/// Newest installed PostgreSQL server's bin dir: Debian keeps initdb/pg_ctl under
/// /usr/lib/postgresql/NN/bin, outside PATH.
pub fn pg_server_bindir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p)| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, p)| p)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}

/// Whether the test may go on: true when everything in `needs` is here. Otherwise it prints
/// `skipped <test>: needs <what> (<why>)` on stderr and returns false, and the test returns
/// at once; with [`REQUIRE_SERVICES_ENV`] set it panics instead. Every test that needs a
/// service starts with `if !require(&[...]) { return; }`.
pub fn require(needs: &[Need]) -> bool {
    let missing: Vec<String> = needs.iter().filter_map(|n| n.missing()).collect();
    if missing.is_empty() {
        return true;
    }
    // libtest and nextest run each test on a thread named after it.
    let test = std::thread::current().name().unwrap_or("<unnamed test>").to_string();
    let why = format!("needs {}", missing.join(", "));
    if std::env::var(REQUIRE_SERVICES_ENV).is_ok_and(|v| !v.is_empty() && v != "0") {
        panic!("{test} {why}, and {REQUIRE_SERVICES_ENV} is set: start them (scripts/services.sh, scripts/slurm.sh)");
    }
    // Straight to stderr, past the test harness's capture (which only takes `eprintln!`), so
    // that a plain `cargo test` shows the skip.
    // One write, so that the line stays whole among other tests' output.
    let _ = std::io::stderr().write_all(format!("skipped {test}: {why}\n").as_bytes());
    false
}

/// The value of `var`, which a test reaches only after [`require`] said its service is there.
fn service_var(var: &str, need: Need) -> String {
    std::env::var(var).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
        panic!("{var} is not set: a test using it must start with `if !require(&[{need:?}]) {{ return; }}`")
    })
}

/// The venv Python with the reader packages (scripts/services.sh sets it).
pub fn python() -> String {
    service_var("RASTERSTAGE_PYTHON", Python)
}

/// Runs a Python snippet; asserts success and returns its trimmed stdout.
pub fn py(code: &str) -> String {
    let out = Command::new(python()).arg("-c").arg(code).output().unwrap();
    assert!(out.status.success(), "python failed:\n{code}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The DuckDB prelude that loads the offline extensions. No progress bar: DuckDB prints one to
/// stdout once a query takes over 2 s (on a busy machine), which the tests would read as rows.
pub fn duckdb_prelude() -> String {
    let dir = std::env::var("RASTERSTAGE_DUCKDB_EXT_DIR").unwrap_or_default();
    format!(
        "import duckdb\ncon = duckdb.connect()\ncon.execute('SET enable_progress_bar=false')\nif {dir:?}:\n    con.execute(\"SET extension_directory='{dir}'\")\n    con.execute('SET autoinstall_known_extensions=false')\n"
    )
}

/// Runs one DuckDB query and returns the first row as strings joined by '|'.
pub fn duckdb_row(sql: &str) -> String {
    py(&format!("{}row = con.execute({sql:?}).fetchone()\nprint('|'.join(str(v) for v in row))", duckdb_prelude()))
}

/// Reads a staged dataset.json.
pub fn manifest(root: &Path, name: &str) -> serde_json::Value {
    let p = root.join(name).join("dataset.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// Every (row_idx, col_idx, value) of a Parquet-staged dataset, sorted, via DuckDB.
pub fn parquet_cells(root: &Path, name: &str) -> Vec<(i64, i64, f64)> {
    let glob = root.join(name).join("tiles/*.parquet");
    let out = py(&format!(
        "{}for r, c, v in con.execute(\"SELECT row_idx, col_idx, value::DOUBLE FROM read_parquet('{}') ORDER BY 1, 2\").fetchall():\n    print(r, c, repr(v))",
        duckdb_prelude(),
        glob.display()
    ));
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut it = l.split_whitespace();
            (
                it.next().unwrap().parse().unwrap(),
                it.next().unwrap().parse().unwrap(),
                it.next().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

/// Checksums of every tile of a dataset, by id.
pub fn tile_checksums(root: &Path, name: &str) -> Vec<(String, Option<String>)> {
    let m = manifest(root, name);
    m["tiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap().to_string(), t["checksum"].as_str().map(String::from)))
        .collect()
}

/// Every file under a local folder as (path relative to it, bytes), sorted by path.
pub fn files_under(root: &Path) -> Vec<(String, Vec<u8>)> {
    // object_store writes a local object to `<name>#<n>` and renames it when complete; a kill -9
    // mid-write leaves that file behind, and the store never lists it (object_store's
    // `is_valid_file_path`), so it is not one of the store's objects.
    fn is_staging_file(p: &Path) -> bool {
        let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        name.rsplit_once('#').is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if !is_staging_file(&p) {
                out.push((p.strip_prefix(base).unwrap().to_string_lossy().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Path as &str.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `root/name` as a PathBuf.
pub fn join(root: &Path, name: &str) -> PathBuf {
    root.join(name)
}

// ---------------------------------------------------------------------------
// Helpers for the readers / resume / bad-input tests.
// ---------------------------------------------------------------------------

/// Runs rasterstage with extra environment variables; returns the output whatever the status.
pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = bin();
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(args).output().unwrap()
}

/// The path of a file in the repository (schemas, config.yml, examples).
pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Asserts that stderr holds exactly one line starting with `error:`, that it is the only
/// non-empty line, and that it mentions every string of `needles`; returns that line.
pub fn one_error_line(stderr: &str, needles: &[&str]) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let errors: Vec<&&str> = lines.iter().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "want exactly one `error:` line, got:\n{stderr}");
    assert_eq!(lines.len(), 1, "want nothing but the error line on stderr, got:\n{stderr}");
    let line = errors[0].to_string();
    for n in needles {
        assert!(line.contains(n), "error line should mention {n:?}: {line}");
    }
    line
}

/// Validates `<root>/<name>/dataset.json` against `schemas/dataset.schema.json` with Python
/// `jsonschema` (draft 2020-12).
pub fn validate_dataset_json(root: &Path, name: &str) {
    let doc = root.join(name).join("dataset.json");
    validate_with_schema(&repo_file("schemas/dataset.schema.json"), &doc);
}

/// Validates a JSON or YAML document against a JSON Schema with Python `jsonschema`.
pub fn validate_with_schema(schema: &Path, doc: &Path) {
    let code = format!(
        "import json, yaml, jsonschema\n\
         schema = json.load(open({schema:?}))\n\
         jsonschema.Draft202012Validator.check_schema(schema)\n\
         p = {doc:?}\n\
         doc = json.load(open(p)) if p.endswith('.json') else yaml.safe_load(open(p))\n\
         errs = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path))\n\
         for e in errs:\n    print(list(e.path), e.message)\n\
         print('valid' if not errs else 'INVALID')",
        schema = schema.to_str().unwrap(),
        doc = doc.to_str().unwrap(),
    );
    let out = py(&code);
    assert_eq!(out, "valid", "{} does not match {}", doc.display(), schema.display());
}

/// The PostgreSQL the tests use (scripts/services.sh exports DATABASE_URL).
pub fn db_url() -> String {
    service_var("DATABASE_URL", Pg)
}

/// A plain connection to [`db_url`], for setting up and checking tables.
pub fn client() -> postgres::Client {
    postgres::Client::connect(&db_url(), postgres::NoTls).expect("connect to DATABASE_URL")
}

/// How long a crash test waits for the state it kills in before it fails: far beyond what the
/// slowest machine needs, so that reaching it is a failure of the code, not of the machine.
pub const CRASH_WAIT: Duration = Duration::from_secs(120);

/// Polls `reached` every 20 ms until it is true, for crash tests that kill `child` in a state
/// they can observe (ledger rows, commit records) instead of after a fixed sleep. Panics naming
/// `what` if `child` exits first or [`CRASH_WAIT`] passes.
pub fn wait_until(what: &str, child: &mut Child, mut reached: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if reached() {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("rasterstage exited ({status}) before {what}");
        }
        assert!(start.elapsed() < CRASH_WAIT, "no {what} within {CRASH_WAIT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A PostgreSQL schema of this test's own: dropped when made (a leftover of an earlier run
/// with the same process id) and on drop, also when the test panics. Each test module adds the
/// queries it needs in a trait of its own.
pub struct Schema {
    /// The schema's name (unquoted).
    pub name: String,
}

impl Schema {
    /// `t_<tag>_<pid>_<n>`: unique among the tests running at once, in one process or many.
    pub fn new(tag: &str) -> Schema {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!("t_{tag}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        client().batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE")).unwrap();
        Schema { name }
    }

    /// `table` qualified with the schema, quoted.
    pub fn q(&self, table: &str) -> String {
        format!("\"{}\".\"{table}\"", self.name)
    }

    /// Every row of `table` (`row_idx, col_idx, x, y, value`), sorted, with x, y and value
    /// as f64 bits, for bit-for-bit comparisons.
    pub fn row_bits(&self, table: &str) -> Vec<(i32, i32, u64, u64, u64)> {
        let sql = format!("SELECT row_idx, col_idx, x, y, value::float8 FROM {} ORDER BY 1, 2", self.q(table));
        client()
            .query(&sql, &[])
            .unwrap()
            .iter()
            .map(|r| {
                let (x, y, v): (f64, f64, f64) = (r.get(2), r.get(3), r.get(4));
                (r.get(0), r.get(1), x.to_bits(), y.to_bits(), v.to_bits())
            })
            .collect()
    }

    /// The first column of the one row of `sql`.
    pub fn one_i64(&self, sql: &str) -> i64 {
        client().query_one(sql, &[]).unwrap().get(0)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&db_url(), postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name));
        }
    }
}

/// The S3 test server (moto) that scripts/services.sh started.
pub fn endpoint() -> String {
    Backend::S3.endpoint()
}

/// The object stores the storage conformance tests run on, each an emulator on loopback that
/// scripts/services.sh starts: moto (S3), Azurite (Azure Blob), fake-gcs-server (GCS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    S3,
    Azure,
    Gcs,
}

impl Backend {
    /// The URL scheme rasterstage takes for it.
    pub fn scheme(self) -> &'static str {
        match self {
            Backend::S3 => "s3",
            Backend::Azure => "az",
            Backend::Gcs => "gs",
        }
    }

    /// The variable scripts/services.sh exports with the emulator's endpoint.
    pub fn endpoint_var(self) -> &'static str {
        match self {
            Backend::S3 => "RASTERSTAGE_TEST_S3_ENDPOINT",
            Backend::Azure => "RASTERSTAGE_TEST_AZURE_ENDPOINT",
            Backend::Gcs => "RASTERSTAGE_TEST_GCS_ENDPOINT",
        }
    }

    /// What a test on it needs (see [`require`]).
    pub fn need(self) -> Need {
        match self {
            Backend::S3 => Need::S3,
            Backend::Azure => Need::Azure,
            Backend::Gcs => Need::Gcs,
        }
    }

    /// The emulator's endpoint.
    pub fn endpoint(self) -> String {
        service_var(self.endpoint_var(), self.need())
    }
}

/// Python prelude with an Azure `BlobServiceClient` `svc` for the Azurite of
/// AZURE_STORAGE_CONNECTION_STRING.
const AZ_PRELUDE: &str = "import os\nfrom azure.storage.blob import BlobServiceClient\n\
                          svc = BlobServiceClient.from_connection_string(os.environ['AZURE_STORAGE_CONNECTION_STRING'])\n";

/// Python that empties and deletes bucket `b` of the GCS emulator at `ep`.
const GCS_EMPTY_AND_DELETE: &str = r#"
import json, urllib.parse, urllib.request
def call(method, path):
    return urllib.request.urlopen(urllib.request.Request(ep + path, method=method)).read()
while True:
    items = json.loads(call('GET', f'/storage/v1/b/{b}/o')).get('items', [])
    if not items:
        break
    for o in items:
        call('DELETE', f"/storage/v1/b/{b}/o/{urllib.parse.quote(o['name'], safe='')}")
call('DELETE', f'/storage/v1/b/{b}')
"#;

/// A bucket (Azure: container) of this test's own, emptied and deleted on drop (also when
/// the test panics).
pub struct Bucket {
    /// Bucket name.
    pub name: String,
    /// The server it lives on.
    pub endpoint: String,
    /// Which object store.
    pub backend: Backend,
}

impl Bucket {
    /// A bucket on the S3 test server.
    pub fn new(tag: &str) -> Bucket {
        Bucket::on(tag, &endpoint())
    }

    /// A bucket on the S3-compatible server at `endpoint`.
    pub fn on(tag: &str, endpoint: &str) -> Bucket {
        let name = Bucket::unique_name(tag);
        // moto creates a bucket on a plain `PUT /bucket` (path style); no SDK needed.
        let out = Command::new("curl").args(["-sf", "-X", "PUT", &format!("{endpoint}/{name}")]).output().unwrap();
        assert!(out.status.success(), "create bucket {name}: {}", String::from_utf8_lossy(&out.stderr));
        Bucket { name, endpoint: endpoint.to_string(), backend: Backend::S3 }
    }

    /// A bucket (container) on `backend`'s emulator.
    pub fn new_on(backend: Backend, tag: &str) -> Bucket {
        if backend == Backend::S3 {
            return Bucket::new(tag);
        }
        let name = Bucket::unique_name(tag);
        let endpoint = backend.endpoint();
        match backend {
            Backend::Azure => {
                py(&format!("{AZ_PRELUDE}svc.create_container({name:?})"));
            }
            _ => {
                // fake-gcs-server's JSON API creates a bucket without credentials.
                let body = format!("{{\"name\": \"{name}\"}}");
                let url = format!("{endpoint}/storage/v1/b?project=test");
                let out = Command::new("curl")
                    .args(["-sf", "-X", "POST", "-H", "Content-Type: application/json", "-d", &body, &url])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "create bucket {name}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        Bucket { name, endpoint, backend }
    }

    /// `rs-TAG-PID-N`: valid as an S3 and GCS bucket and an Azure container name (lower case,
    /// single dashes).
    fn unique_name(tag: &str) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let mut name = format!("rs-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
            .replace('_', "-")
            .to_ascii_lowercase();
        while name.contains("--") {
            name = name.replace("--", "-");
        }
        name
    }

    pub fn url(&self, key: &str) -> String {
        format!("{}://{}/{key}", self.backend.scheme(), self.name)
    }

    pub fn store(&self, key: &str) -> Store {
        Store::open(&self.url(key)).unwrap()
    }

    /// Copies every object under `prefix` into a fresh local folder, so the local readers
    /// (manifest, tile checksums, DuckDB on files) can look at what the bucket holds.
    pub fn download(&self, prefix: &str) -> tempfile::TempDir {
        let dir = tmp();
        let st = self.store(prefix);
        for key in st.list("").unwrap() {
            let p = dir.path().join(&key);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, st.get(&key).unwrap().unwrap()).unwrap();
        }
        dir
    }

    /// Every object under `prefix`: key relative to it -> bytes.
    pub fn objects(&self, prefix: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
        let st = self.store(prefix);
        st.list("").unwrap().into_iter().map(|k| (k.clone(), st.get(&k).unwrap().unwrap().to_vec())).collect()
    }

    /// Runs Python with a boto3 client `s3` and the bucket name in `bucket` (S3 only).
    pub fn boto(&self, code: &str) -> String {
        assert_eq!(self.backend, Backend::S3, "boto is for S3 buckets");
        py(&format!(
            "import boto3\ns3 = boto3.client('s3', endpoint_url={:?}, region_name='us-east-1')\nbucket = {:?}\n{code}",
            self.endpoint, self.name
        ))
    }

    /// Runs Python with Azure's `ContainerClient` `container` for this container (Azure only).
    pub fn azure(&self, code: &str) -> String {
        assert_eq!(self.backend, Backend::Azure, "azure is for Azure containers");
        py(&format!("{AZ_PRELUDE}container = svc.get_container_client({:?})\n{code}", self.name))
    }
}

impl Drop for Bucket {
    fn drop(&mut self) {
        let code = match self.backend {
            Backend::S3 => format!(
                "import boto3\ns3 = boto3.resource('s3', endpoint_url={:?}, region_name='us-east-1')\nb = s3.Bucket({:?})\n\
                 b.objects.all().delete()\nfor u in b.multipart_uploads.all():\n    u.abort()\nb.delete()",
                self.endpoint, self.name
            ),
            Backend::Azure => format!("{AZ_PRELUDE}svc.delete_container({:?})", self.name),
            // The JSON API deletes objects one by one, then the empty bucket.
            Backend::Gcs => format!("ep, b = {:?}, {:?}\n{GCS_EMPTY_AND_DELETE}", self.endpoint, self.name),
        };
        let _ = Command::new(python()).arg("-c").arg(code).output();
    }
}
