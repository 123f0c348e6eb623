//! Cloud staging against the real S3-compatible server `moto_server` (scripts/services.sh
//! starts it and exports AWS_ENDPOINT_URL, AWS_ALLOW_HTTP and test credentials). Each test
//! works in a bucket of its own, deleted afterwards, and compares what it staged on S3 with
//! the same conversion into a local folder: same keys, same bytes, same tables. The round
//! trip, source, kill -9 and multipart bodies are the storage conformance suite of
//! clouds.rs, which runs them on Azure and GCS too; the tests here add what is S3's own.
//!
//! Fault tests put [`FaultProxy`], a loopback HTTP proxy in this file, between rasterstage and
//! moto; it answers chosen requests with 500 or drops the connection.

use crate::clouds::{count_keys, same_staging, source, CloudSchema};
use crate::common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn s3_parquet_convert_and_load_match_local() {
    if !require(&[Pg, S3, Python]) {
        return;
    }
    crate::clouds::stage_and_load(Backend::S3, "parquet");
}

#[test]
fn s3_zarr_convert_and_load_match_local() {
    if !require(&[Pg, S3, Python]) {
        return;
    }
    crate::clouds::stage_and_load(Backend::S3, "zarr");
}

/// A GeoTIFF in the bucket is read through /vsis3/ and gives the same tiles as the file.
#[test]
fn s3_source_raster_through_vsis3() {
    if !require(&[S3, Python]) {
        return;
    }
    let run = crate::clouds::source_raster_through_vsi(Backend::S3);
    let common = crate::clouds::VSI_ARGS;

    // GDAL's reads are retried too: every third request answered with 500.
    let proxy = FaultProxy::start(3);
    proxy.errors_only.store(true, Ordering::SeqCst);
    let c = run.dir.path().join("through_faults");
    let args_c: Vec<&str> = ["convert", run.url.as_str(), "--out", s(&c)].iter().copied().chain(common).collect();
    let out = run_env(&args_c, &[("AWS_ENDPOINT_URL", &proxy.url())]);
    assert!(out.status.success(), "/vsis3/ through faults: {}", String::from_utf8_lossy(&out.stderr));
    assert!(proxy.faults.load(Ordering::SeqCst) >= 2, "too few faults injected");
    same_staging(&c, &run.reference, "src");
    drop(run.bucket);
}

/// DuckDB (httpfs, CREATE SECRET) and zarr-python read the staged data in the bucket.
#[test]
fn s3_duckdb_and_zarr_python_read_the_bucket() {
    if !require(&[Pg, S3, Python]) {
        return;
    }
    let dir = tmp();
    let src = dir.path().join("v.tif");
    source(&src, 256, 192, 23);
    let bucket = Bucket::new("readers");
    let root = bucket.url("staging");
    for (name, format) in [("p", "parquet"), ("z", "zarr")] {
        ok(&["convert", s(&src), "--name", name, "--out", &root, "--format", format, "--window", "64"]);
    }
    let mirror = bucket.download("staging");
    let m = manifest(mirror.path(), "p");
    let (rows, sum) = (m["row_count"].as_u64().unwrap(), m["value_sum"].as_f64().unwrap());

    let port = endpoint().rsplit(':').next().unwrap().to_string();
    let secret = format!(
        "CREATE SECRET (TYPE s3, KEY_ID 'testing', SECRET 'testing', ENDPOINT '127.0.0.1:{port}', \
         URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')"
    );
    let code = format!(
        "{}con.execute('LOAD httpfs')\ncon.execute({secret:?})\n\
         print('|'.join(str(v) for v in con.execute(\"SELECT count(*), sum(value::DOUBLE) FROM read_parquet('{root}/p/tiles/*.parquet')\").fetchone()))",
        duckdb_prelude()
    );
    let got = py(&code);
    let (n, total) = got.split_once('|').unwrap();
    assert_eq!(n.parse::<u64>().unwrap(), rows, "DuckDB row count");
    let total: f64 = total.parse().unwrap();
    assert!((total - sum).abs() <= 1e-9 * sum.abs().max(1.0), "DuckDB sum {total} vs dataset.json {sum}");

    // zarr-python through obstore's S3 client (zarr.storage.ObjectStore).
    let mz = manifest(mirror.path(), "z");
    let code = format!(
        "import numpy as np, zarr\nfrom obstore.store import S3Store\n\
         st = S3Store({bucket:?}, prefix='staging/z/z.zarr', endpoint={ep:?}, access_key_id='testing', \
         secret_access_key='testing', region='us-east-1', client_options={{'allow_http': True}})\n\
         g = zarr.open_group(zarr.storage.ObjectStore(st, read_only=True), mode='r')\n\
         a = g['z'][:]\nfill = g['z'].fill_value\n\
         valid = a[~np.isnan(a)] if np.isnan(fill) else a[a != fill]\n\
         print(a.shape[0], a.shape[1], valid.size, repr(float(valid.astype('float64').sum())))",
        bucket = bucket.name,
        ep = endpoint()
    );
    let got = py(&code);
    let f: Vec<&str> = got.split_whitespace().collect();
    assert_eq!(f[0].parse::<u64>().unwrap(), mz["grid"]["height"].as_u64().unwrap(), "{got}");
    assert_eq!(f[1].parse::<u64>().unwrap(), mz["grid"]["width"].as_u64().unwrap(), "{got}");
    assert_eq!(f[2].parse::<u64>().unwrap(), mz["row_count"].as_u64().unwrap(), "{got}");
    let zsum: f64 = f[3].parse().unwrap();
    let want = mz["value_sum"].as_f64().unwrap();
    assert!((zsum - want).abs() <= 1e-9 * want.abs().max(1.0), "zarr sum {zsum} vs {want}");
}

/// kill -9 while tiles are being uploaded; the rerun uploads only the missing tiles and the
/// bucket ends up exactly as after an uninterrupted run, with no multipart upload left open.
#[test]
fn s3_kill_mid_upload_then_resume() {
    if !require(&[S3, Python]) {
        return;
    }
    let bucket = crate::clouds::kill_mid_upload_then_resume(Backend::S3);
    assert_eq!(bucket.boto("print(len(s3.list_multipart_uploads(Bucket=bucket).get('Uploads', [])))"), "0");
}

/// A tile above 8 MiB goes up by multipart upload, reads back identically, and leaves no
/// unfinished upload behind.
#[test]
fn s3_multipart_tile_round_trip() {
    if !require(&[S3, Python]) {
        return;
    }
    let (bucket, keys) = crate::clouds::multipart_tile_round_trip(Backend::S3);
    for key in keys {
        // Multipart objects have an ETag "<md5 of part md5s>-<parts>".
        let etag = bucket.boto(&format!("print(s3.head_object(Bucket=bucket, Key='{key}')['ETag'])"));
        assert!(etag.contains('-'), "{key} was not uploaded in parts: ETag {etag}");
    }
    assert_eq!(bucket.boto("print(len(s3.list_multipart_uploads(Bucket=bucket).get('Uploads', [])))"), "0");
}

// ---------------------------------------------------------------------------
// A faulty network: a loopback proxy that fails chosen requests.
// ---------------------------------------------------------------------------

/// Forwards HTTP requests to `upstream`; every `fail_every`-th request (1: all, 0: none) is
/// answered with 500 or, alternately, dropped without an answer.
struct FaultProxy {
    port: u16,
    fail_every: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    faults: Arc<AtomicUsize>,
    /// Only 500s, no dropped connections (GDAL retries HTTP errors, not resets).
    errors_only: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

fn read_head(r: &mut impl BufRead) -> Option<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            return Some(lines);
        }
        lines.push(line);
    }
}

fn header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head.iter().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Reads a message body as it is framed (Content-Length or chunked), raw bytes.
fn read_body(r: &mut impl BufRead, head: &[String], until_eof: bool) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    if let Some(n) = header(head, "content-length") {
        let n: usize = n.parse().ok()?;
        body.resize(n, 0);
        r.read_exact(&mut body).ok()?;
    } else if header(head, "transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            body.extend_from_slice(size.as_bytes());
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            body.extend_from_slice(&chunk);
            if n == 0 {
                break;
            }
        }
    } else if until_eof {
        r.read_to_end(&mut body).ok()?;
    }
    Some(body)
}

fn serve(client: TcpStream, upstream: &str, p: &FaultProxy) -> Option<()> {
    client.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut w = client.try_clone().ok()?;
    let mut r = BufReader::new(client);
    let head = read_head(&mut r)?;
    let body = read_body(&mut r, &head, false)?;
    let n = p.requests.fetch_add(1, Ordering::SeqCst);
    let every = p.fail_every.load(Ordering::SeqCst);
    if every > 0 && n % every == every - 1 {
        let k = p.faults.fetch_add(1, Ordering::SeqCst);
        if k % 2 == 0 || p.errors_only.load(Ordering::SeqCst) {
            let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code>\
                       <Message>injected by the test proxy</Message></Error>";
            let resp = format!(
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{xml}",
                xml.len()
            );
            w.write_all(resp.as_bytes()).ok()?;
        }
        // Otherwise: close without a word, as a reset connection does.
        let _ = w.shutdown(Shutdown::Both);
        return Some(());
    }
    // One request per upstream connection, closed after the answer: the response is then
    // delimited whatever its framing, and the client is told to reconnect too.
    let mut up = TcpStream::connect(upstream).ok()?;
    up.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let mut req = String::new();
    req.push_str(&head[0]);
    req.push_str("\r\n");
    for l in head.iter().skip(1).filter(|l| !l.to_ascii_lowercase().starts_with("connection:")) {
        req.push_str(l);
        req.push_str("\r\n");
    }
    req.push_str("Connection: close\r\n\r\n");
    up.write_all(req.as_bytes()).ok()?;
    up.write_all(&body).ok()?;
    let mut ur = BufReader::new(up);
    let rhead = read_head(&mut ur)?;
    let is_head = head[0].starts_with("HEAD ");
    let rbody = if is_head { Vec::new() } else { read_body(&mut ur, &rhead, true)? };
    let mut resp = String::new();
    resp.push_str(&rhead[0]);
    resp.push_str("\r\n");
    for l in rhead.iter().skip(1).filter(|l| !l.to_ascii_lowercase().starts_with("connection:")) {
        resp.push_str(l);
        resp.push_str("\r\n");
    }
    if !is_head && header(&rhead, "content-length").is_none() && header(&rhead, "transfer-encoding").is_none() {
        resp.push_str(&format!("Content-Length: {}\r\n", rbody.len()));
    }
    resp.push_str("Connection: close\r\n\r\n");
    w.write_all(resp.as_bytes()).ok()?;
    w.write_all(&rbody).ok()?;
    w.flush().ok()?;
    let _ = w.shutdown(Shutdown::Both);
    Some(())
}

impl FaultProxy {
    fn start(fail_every: usize) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = endpoint().trim_start_matches("http://").trim_end_matches('/').to_string();
        let p = FaultProxy {
            port: listener.local_addr().unwrap().port(),
            fail_every: Arc::new(AtomicUsize::new(fail_every)),
            requests: Arc::new(AtomicUsize::new(0)),
            faults: Arc::new(AtomicUsize::new(0)),
            errors_only: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let shared = FaultProxy {
            port: p.port,
            fail_every: p.fail_every.clone(),
            requests: p.requests.clone(),
            faults: p.faults.clone(),
            errors_only: p.errors_only.clone(),
            stop: p.stop.clone(),
        };
        std::thread::spawn(move || {
            let shared = Arc::new(shared);
            for conn in listener.incoming() {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (s2, up) = (shared.clone(), upstream.clone());
                std::thread::spawn(move || serve(conn, &up, &s2));
            }
        });
        p
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn set_fail_every(&self, n: usize) {
        self.fail_every.store(n, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wake accept()
    }
}

/// Environment for a run through the proxy: short backoff windows keep failing runs fast.
fn via(proxy: &FaultProxy, retries: &str) -> Vec<(String, String)> {
    vec![
        ("AWS_ENDPOINT_URL".into(), proxy.url()),
        ("RASTERSTAGE_S3_MAX_RETRIES".into(), retries.into()),
        ("RASTERSTAGE_S3_RETRY_TIMEOUT_SECS".into(), "20".into()),
        ("RASTERSTAGE_S3_REQUEST_TIMEOUT_SECS".into(), "20".into()),
    ]
}

fn run_via(args: &[&str], env: &[(String, String)]) -> Output {
    let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    run_env(args, &e)
}

/// One request in four fails (500 or dropped connection): convert and load still finish,
/// and the result is the clean run's.
#[test]
fn s3_faults_are_retried() {
    if !require(&[Pg, S3, Python]) {
        return;
    }
    let dir = tmp();
    let src = dir.path().join("f.tif");
    source(&src, 320, 240, 41);
    let bucket = Bucket::new("faults");
    let proxy = FaultProxy::start(4);
    let env = via(&proxy, "10");
    let remote = bucket.url("staging");
    let local = dir.path().join("clean");
    for (name, format) in [("fp", "parquet"), ("fz", "zarr")] {
        let common = ["--name", name, "--format", format, "--window", "40", "--threads", "2"];
        let a: Vec<&str> = ["convert", s(&src), "--out", remote.as_str()].iter().copied().chain(common).collect();
        let out = run_via(&a, &env);
        assert!(out.status.success(), "convert through faults failed: {}", String::from_utf8_lossy(&out.stderr));
        let b: Vec<&str> = ["convert", s(&src), "--out", s(&local)].iter().copied().chain(common).collect();
        ok(&b);
    }
    assert!(proxy.faults.load(Ordering::SeqCst) >= 10, "the proxy injected too few faults to mean anything");
    let mirror = bucket.download("staging");
    same_staging(mirror.path(), &local, "fp");
    same_staging(mirror.path(), &local, "fz");

    let (sl, sr) = (Schema::new("faults_local"), Schema::new("faults_remote"));
    ok(&["load", "--from", s(&local), "--database-url", &db_url(), "--schema", &sl.name]);
    let before = proxy.faults.load(Ordering::SeqCst);
    let out = run_via(&["load", "--from", &remote, "--database-url", &db_url(), "--schema", &sr.name], &env);
    assert!(out.status.success(), "load through faults failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(proxy.faults.load(Ordering::SeqCst) > before, "load saw no faults");
    for name in ["fp", "fz"] {
        assert!(sr.rows(name) == sl.rows(name), "{name}: table differs from the clean load");
    }
    assert_eq!(sr.ledger(), sl.ledger());
}

/// The store fails every request from the middle of a run on: a one-line error naming the
/// object and the retries; with the network healthy again the rerun resumes and finishes.
#[test]
fn s3_exhausted_retries_then_resume() {
    if !require(&[Pg, S3, Python]) {
        return;
    }
    let dir = tmp();
    let src = dir.path().join("e.tif");
    source(&src, 400, 400, 3);
    let bucket = Bucket::new("exhausted");
    let proxy = FaultProxy::start(0);
    let env = via(&proxy, "2");
    let remote = bucket.url("staging");
    let name = "e";
    let common = ["--name", name, "--window", "40", "--threads", "2"];
    let a: Vec<&str> = ["convert", s(&src), "--out", remote.as_str()].iter().copied().chain(common).collect();

    // Nothing gets through: the very first request is refused.
    proxy.set_fail_every(1);
    let out = run_via(&a, &env);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = one_error_line(&err, &[&format!("{remote}/{name}/dataset.json"), "after 2 retries"]);
    assert!(line.contains("InternalError") || line.contains("HTTP error"), "{line}");

    // Healthy for a while, then broken mid-run.
    proxy.set_fail_every(0);
    let mut e2 = env.clone();
    e2.push(("RASTERSTAGE_TEST_TILE_DELAY_MS".into(), "30".into()));
    let mut cmd = bin();
    cmd.args(&a).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in &e2 {
        cmd.env(k, v);
    }
    let child: Child = cmd.spawn().unwrap();
    let ds = bucket.store(&format!("staging/{name}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while count_keys(&ds, "_tiles") < 5 {
        assert!(Instant::now() < deadline, "no tile committed after 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    proxy.set_fail_every(1);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "convert should fail once the store refuses everything");
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().rev().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(last.contains(&format!("{remote}/{name}/")) && last.contains("retries"), "{last}");
    assert!(!err.contains("<?xml"), "raw XML in the messages: {err}");

    // Healthy again: the rerun resumes and the result is the clean one.
    proxy.set_fail_every(0);
    let committed = count_keys(&ds, "_tiles");
    let out = run_via(&a, &env);
    assert!(out.status.success(), "resume failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("({} written now)", 100 - committed)), "{stdout}");
    let local = dir.path().join("clean");
    let b: Vec<&str> = ["convert", s(&src), "--out", s(&local)].iter().copied().chain(common).collect();
    ok(&b);
    let mirror = bucket.download("staging");
    same_staging(mirror.path(), &local, name);

    // Load: refused, a clear error; then healthy, a complete load.
    let (sl, sr) = (Schema::new("exh_local"), Schema::new("exh_remote"));
    ok(&["load", "--from", s(&local), "--database-url", &db_url(), "--schema", &sl.name]);
    proxy.set_fail_every(1);
    let out = run_via(&["load", "--from", &remote, "--database-url", &db_url(), "--schema", &sr.name], &env);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&remote) && err.contains("retries") && !err.contains("<?xml"), "{err}");
    proxy.set_fail_every(0);
    let out = run_via(&["load", "--from", &remote, "--database-url", &db_url(), "--schema", &sr.name], &env);
    assert!(out.status.success(), "load after recovery failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(sr.rows(name) == sl.rows(name));
}

/// The config's `storage:` section reaches the store (here: retries), and bad values are
/// refused with the key named.
#[test]
fn s3_storage_config_section() {
    if !require(&[S3, Python]) {
        return;
    }
    let dir = tmp();
    let src = dir.path().join("c.tif");
    source(&src, 64, 64, 1);
    let bucket = Bucket::new("config");
    let proxy = FaultProxy::start(1);
    let cfg = dir.path().join("config.yml");
    let root = bucket.url("staging");
    let text = format!(
        "datasets:\n  - name: c\n    path: {}\noutput:\n  uri: {root}\nstorage:\n  max_retries: 1\n  retry_timeout_secs: 5\n  \
         request_timeout_secs: 10\n  max_concurrent_requests: 4\n",
        s(&src)
    );
    std::fs::write(&cfg, text).unwrap();
    validate_with_schema(&repo_file("schemas/config.schema.json"), &cfg);
    let out = run_env(&["convert", "--config", s(&cfg)], &[("AWS_ENDPOINT_URL", &proxy.url())]);
    one_error_line(&String::from_utf8_lossy(&out.stderr), &["after 1 retries", "dataset.json"]);
    proxy.set_fail_every(0);
    let out = run_env(&["convert", "--config", s(&cfg)], &[("AWS_ENDPOINT_URL", &proxy.url())]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    std::fs::write(&cfg, format!("datasets: []\noutput:\n  uri: {root}\nstorage:\n  max_concurrent_requests: 0\n"))
        .unwrap();
    let err = fails(&["convert", "--config", s(&cfg)]);
    one_error_line(&err, &["storage.max_concurrent_requests", "at least 1"]);
    std::fs::write(&cfg, "datasets: []\nstorage:\n  max_retrys: 3\n").unwrap();
    one_error_line(&fails(&["convert", "--config", s(&cfg)]), &["max_retrys"]);
    let err = String::from_utf8_lossy(&run_env(&["inspect", &root], &[("RASTERSTAGE_S3_MAX_RETRIES", "many")]).stderr)
        .into_owned();
    one_error_line(&err, &["RASTERSTAGE_S3_MAX_RETRIES", "not a number"]);
}

#[test]
fn s3_missing_bucket_is_one_clear_line() {
    if !require(&[Pg, S3]) {
        return;
    }
    crate::clouds::missing_bucket_is_one_clear_line(Backend::S3);
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A moto_server of this test's own with authentication on (the shared one accepts any
/// key): a user allowed on one bucket only. Killed on drop.
struct AuthS3 {
    child: Child,
    endpoint: String,
    key: String,
    secret: String,
}

impl AuthS3 {
    fn start() -> AuthS3 {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let moto = Path::new(&python()).with_file_name("moto_server");
        let child = Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // The first four requests (user, key, policy, other-bucket) need no authentication.
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "4")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut s = AuthS3 { child, endpoint, key: String::new(), secret: String::new() };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server with auth did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = py(&format!(
            "import boto3, json\nkw = dict(endpoint_url={ep:?}, region_name='us-east-1', aws_access_key_id='x', aws_secret_access_key='y')\n\
             iam = boto3.client('iam', **kw)\niam.create_user(UserName='u')\n\
             k = iam.create_access_key(UserName='u')['AccessKey']\n\
             iam.put_user_policy(UserName='u', PolicyName='p', PolicyDocument=json.dumps({{'Version': '2012-10-17', \
             'Statement': [{{'Effect': 'Allow', 'Action': 's3:*', 'Resource': ['arn:aws:s3:::allowed-bucket', 'arn:aws:s3:::allowed-bucket/*']}}]}}))\n\
             boto3.client('s3', **kw).create_bucket(Bucket='other-bucket')\n\
             kw.update(aws_access_key_id=k['AccessKeyId'], aws_secret_access_key=k['SecretAccessKey'])\n\
             boto3.client('s3', **kw).create_bucket(Bucket='allowed-bucket')\n\
             print(k['AccessKeyId'], k['SecretAccessKey'])",
            ep = s.endpoint
        ));
        let (k, sec) = out.split_once(' ').unwrap();
        s.key = k.to_string();
        s.secret = sec.to_string();
        s
    }

    fn run(&self, args: &[&str], key: &str, secret: &str) -> Output {
        run_env(
            args,
            &[("AWS_ENDPOINT_URL", &self.endpoint), ("AWS_ACCESS_KEY_ID", key), ("AWS_SECRET_ACCESS_KEY", secret)],
        )
    }
}

impl Drop for AuthS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wrong key, wrong secret, no permission: one line naming the bucket and the operation;
/// the secret itself appears nowhere, not even in trace logs.
#[test]
fn s3_refused_credentials_are_one_clear_line_and_secrets_never_printed() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    let src = dir.path().join("c.tif");
    source(&src, 64, 64, 4);
    let s3 = AuthS3::start();

    // The user's policy allows allowed-bucket only: other-bucket is AccessDenied.
    let conv = |bucket: &str| -> Vec<String> {
        ["convert", s(&src), "--name", "c", "--out", &format!("s3://{bucket}/staging")]
            .iter()
            .map(|a| a.to_string())
            .collect()
    };

    let a = conv("allowed-bucket");
    let out = s3.run(&strs(&a), &s3.key, &s3.secret);
    assert!(out.status.success(), "valid credentials: {}", String::from_utf8_lossy(&out.stderr));

    let cases: [(&str, &str, &str, &str); 3] = [
        ("allowed-bucket", "AKIAWRONGKEY0000000", "whatever", "InvalidAccessKeyId"),
        ("allowed-bucket", &s3.key, "wrong-secret-5b1c", "SignatureDoesNotMatch"),
        ("other-bucket", &s3.key, &s3.secret, "AccessDenied"),
    ];
    for (bucket, key, secret, code) in cases {
        let a = conv(bucket);
        let err = String::from_utf8_lossy(&s3.run(&strs(&a), key, secret).stderr).into_owned();
        let quoted = format!("bucket \"{bucket}\" refused");
        let line = one_error_line(&err, &[&quoted, code, &format!("get s3://{bucket}/staging/c/dataset.json")]);
        assert!(!line.contains(secret), "{line}");
        let err = String::from_utf8_lossy(&s3.run(&["inspect", &format!("s3://{bucket}/staging")], key, secret).stderr)
            .into_owned();
        one_error_line(&err, &[&quoted, code, "list"]);
    }

    // Trace logging of a whole convert + inspect + load run shows no secret.
    let a = conv("allowed-bucket");
    let mut a = strs(&a);
    a.insert(0, "-vv");
    a.push("--overwrite");
    let out = run_env(
        &a,
        &[
            ("AWS_ENDPOINT_URL", &s3.endpoint),
            ("AWS_ACCESS_KEY_ID", &s3.key),
            ("AWS_SECRET_ACCESS_KEY", &s3.secret),
            ("RUST_LOG", "trace"),
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(all.len() > 1000, "expected trace output");
    assert!(!all.contains(&s3.secret), "the secret access key was printed");
}

/// `AWS_PROFILE` and the shared files (`~/.aws/credentials`, `~/.aws/config`) as the AWS CLI
/// reads them: keys from the credentials file, endpoint and region from the config file; the
/// environment's keys win over the profile's; an unknown profile is one clear line.
#[test]
fn s3_aws_profile_from_the_shared_files() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    let src = dir.path().join("p.tif");
    source(&src, 64, 64, 5);
    let s3 = AuthS3::start();
    let (creds, config) = (dir.path().join("credentials"), dir.path().join("config"));
    std::fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = AKIADEFAULT000000000\naws_secret_access_key = nope\n\n\
             [staging]\naws_access_key_id = {}\naws_secret_access_key = {}\n\n\
             [broken]\naws_access_key_id = {}\naws_secret_access_key = wrong-secret-77\n",
            s3.key, s3.secret, s3.key
        ),
    )
    .unwrap();
    std::fs::write(
        &config,
        format!(
            "[profile staging]\nregion = us-east-1\nendpoint_url = {ep}\n\n[profile broken]\nendpoint_url = {ep}\n\n\
             [profile sso]\nsso_session = corp\nendpoint_url = {ep}\n",
            ep = s3.endpoint
        ),
    )
    .unwrap();
    let run = |profile: &str, env_keys: bool| -> Output {
        let mut c = bin();
        for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION"]
        {
            c.env_remove(k);
        }
        if env_keys {
            c.env("AWS_ACCESS_KEY_ID", &s3.key).env("AWS_SECRET_ACCESS_KEY", &s3.secret);
        }
        c.env("AWS_PROFILE", profile).env("AWS_SHARED_CREDENTIALS_FILE", &creds).env("AWS_CONFIG_FILE", &config);
        c.args(["convert", s(&src), "--name", "p", "--out", "s3://allowed-bucket/profiles", "--overwrite"]);
        c.output().unwrap()
    };
    let out = run("staging", false);
    assert!(out.status.success(), "AWS_PROFILE=staging: {}", String::from_utf8_lossy(&out.stderr));
    // The profile's keys are the ones used: a wrong secret in it is refused by the server...
    let err = String::from_utf8_lossy(&run("broken", false).stderr).into_owned();
    let line = one_error_line(&err, &["SignatureDoesNotMatch"]);
    assert!(!line.contains("wrong-secret-77"), "{line}");
    // ...unless the environment has keys, which come first in the AWS chain.
    let out = run("broken", true);
    assert!(out.status.success(), "environment keys over the profile: {}", String::from_utf8_lossy(&out.stderr));
    one_error_line(&String::from_utf8_lossy(&run("nope", false).stderr), &["AWS_PROFILE=nope", "no such profile"]);
    one_error_line(&String::from_utf8_lossy(&run("sso", false).stderr), &["AWS_PROFILE=sso", "export-credentials"]);
}
