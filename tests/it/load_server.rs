//! `load` against a PRIVATE PostgreSQL cluster that each test starts for itself: the things
//! the shared server on 127.0.0.1:5432 cannot show without disturbing the tests running next
//! to it (restarting it, asking for a password, requiring TLS).
//!
//! [`Cluster`] is the Rust version of scripts/services.sh's `_rs_pg_private`: `initdb` in a
//! temp dir, a free loopback port, scram-sha-256 password auth for `rs_user` over TLS only
//! (`hostssl`), trust for the `postgres` superuser over the cluster's own unix socket (test
//! setup and checks), and a self-signed certificate. Dropping it stops the server and removes
//! the directory, also when the test panics.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The password of `rs_user` in every private cluster.
const PASSWORD: &str = "rs-Pa55-word!x";
/// A wrong password, distinctive enough that finding it in any output is a real leak.
const WRONG: &str = "wr0ng-Secret-zq9";

/// A throw-away PostgreSQL cluster: server binaries run as the `postgres` OS user when the
/// tests run as root (PostgreSQL refuses to run as root).
struct Cluster {
    dir: PathBuf,
    bindir: PathBuf,
    port: u16,
    as_root: bool,
}

/// The server programs' folder ([`pg_server_bindir`]); tests using it `require(&[PgServer])`.
fn pg_bindir() -> PathBuf {
    pg_server_bindir().expect("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (scripts/setup.sh)")
}

/// A port nobody listens on right now (the kernel's pick); [`Cluster::new`] retries if
/// another process takes it before the server binds it.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

impl Cluster {
    /// initdb + certificate + auth config + start + `rs_user` and its database `rs`.
    fn new() -> Cluster {
        let as_root = is_root();
        let dir = tempfile::Builder::new().prefix("rasterstage-pg.").tempdir().unwrap().keep();
        let mut c = Cluster { dir, bindir: pg_bindir(), port: 0, as_root };
        if as_root {
            c.check(Command::new("chown").arg("postgres:").arg(&c.dir));
        }
        let data = c.data();
        // -N: no fsync, the cluster is thrown away; trust only until pg_hba.conf is replaced.
        let mut initdb = c.cmd("initdb");
        initdb.arg("-D").arg(&data).args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "-N"]);
        c.check(&mut initdb);
        // Made as the server's user, so that it owns the key (it refuses a key others can read).
        let mut openssl = c.as_owner("openssl");
        openssl.args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1"]);
        openssl.arg("-keyout").arg(data.join("server.key")).arg("-out").arg(data.join("server.crt"));
        c.check(&mut openssl);
        c.check(c.as_owner("chmod").arg("0600").arg(data.join("server.key")));
        // fsync off: only the server processes crash here, never the OS, so the page cache
        // keeps what was written. synchronous_commit stays on (unlike services.sh): with it
        // off, an immediate shutdown loses commits already acknowledged to the loader, which
        // is the server breaking its word, not something a load can be tested against.
        append(
            &data.join("postgresql.conf"),
            &format!(
                "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\npassword_encryption = 'scram-sha-256'\n\
                 ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
                 fsync = off\nfull_page_writes = off\n",
                c.dir.display()
            ),
        );
        // rs_user: password, and over TLS only, so a plain connection has no pg_hba entry at
        // all. The superuser: only through the unix socket in the cluster's own directory.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all postgres trust\nhostssl all rs_user 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        let mut started = false;
        for _ in 0..5 {
            c.port = free_port();
            let mut start = c.pg_ctl("start");
            start.arg("-o").arg(format!("-p {}", c.port));
            if c.run(&mut start).status.success() {
                started = true;
                break;
            }
        }
        assert!(started, "private PostgreSQL did not start: {}", c.log());
        c.superuser("postgres").batch_execute(&format!("CREATE ROLE rs_user LOGIN PASSWORD '{PASSWORD}'")).unwrap();
        c.superuser("postgres").batch_execute("CREATE DATABASE rs OWNER rs_user").unwrap();
        c
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `program` run as the cluster's owner.
    fn as_owner(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    /// A server binary, run as the owner.
    fn cmd(&self, tool: &str) -> Command {
        self.as_owner(self.bindir.join(tool))
    }

    /// `pg_ctl ACTION -D data -l server.log -w`.
    fn pg_ctl(&self, action: &str) -> Command {
        let mut c = self.cmd("pg_ctl");
        c.arg(action).arg("-D").arg(self.data()).arg("-l").arg(self.dir.join("server.log")).args(["-w", "-t", "60"]);
        c
    }

    /// Runs with no stdin/stdout/stderr of ours: the postmaster pg_ctl forks must not
    /// inherit a pipe, or waiting for the command's output would wait for the server's end.
    fn run(&self, c: &mut Command) -> Output {
        c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).output().unwrap()
    }

    fn check(&self, c: &mut Command) {
        let out = self.run(c);
        assert!(out.status.success(), "{c:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// `pg_ctl restart -m MODE`: `fast` terminates the backends (57P01) and checkpoints,
    /// `immediate` kills them with no shutdown checkpoint, so the start is crash recovery.
    fn restart(&self, mode: &str) {
        let mut c = self.pg_ctl("restart");
        c.args(["-m", mode]);
        self.check(&mut c);
    }

    fn stop(&self) {
        let mut c = self.pg_ctl("stop");
        c.args(["-m", "fast"]);
        self.check(&mut c);
    }

    fn start(&self) {
        let mut c = self.pg_ctl("start");
        c.arg("-o").arg(format!("-p {}", self.port));
        self.check(&mut c);
    }

    /// The superuser over the unix socket (trust): setup and checks, never through the
    /// password/TLS path under test.
    fn superuser(&self, db: &str) -> postgres::Client {
        postgres::Config::new()
            .host_path(&self.dir)
            .port(self.port)
            .user("postgres")
            .dbname(db)
            .connect(postgres::NoTls)
            .unwrap_or_else(|e| panic!("superuser connection: {e}\n{}", self.log()))
    }

    /// `postgres://rs_user:PASSWORD@127.0.0.1:PORT/rs?QUERY`.
    fn url(&self, password: &str, query: &str) -> String {
        let q = if query.is_empty() { String::new() } else { format!("?{query}") };
        format!("postgres://rs_user:{password}@127.0.0.1:{}/rs{q}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut c = self.cmd("pg_ctl");
        c.arg("stop").arg("-D").arg(self.data()).args(["-m", "immediate", "-w"]);
        let _ = self.run(&mut c);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new().append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// rasterstage with `DATABASE_URL` = `url` and extra environment.
fn rs_at(url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = bin();
    c.env("DATABASE_URL", url).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// The binary with no `DATABASE_URL` and libpq's `PG*` variables pointing at `cl` as rs_user.
fn pg_env(cl: &Cluster) -> Command {
    let mut c = bin();
    c.env_remove("DATABASE_URL")
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", cl.port.to_string())
        .env("PGUSER", "rs_user")
        .env("PGPASSWORD", PASSWORD)
        .env("PGDATABASE", "rs");
    c
}

fn assert_ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed:\nstdout: {}\nstderr: {}", stdout(out), stderr(out));
}

const W: usize = 512;
const H: usize = 256;
/// 8 x 4 = 32 tiles: enough for a restart to land while some are committed and others not.
const WINDOW: &str = "64";

/// A Float32 raster with nodata holes, converted into `dir/st` as dataset `plants`.
fn staged(dir: &Path) -> PathBuf {
    let mut rnd = lcg(42);
    let v: Vec<f32> =
        (0..W * H).map(|i| if i % 17 == 0 { -9999.0 } else { (rnd() % 100_000) as f32 / 4.0 - 1000.0 }).collect();
    let src = dir.join("src.tif");
    let mut spec = RasterSpec::geographic(W, H, 0.25);
    spec.nodata = Some(-9999.0);
    write_tif(&src, &spec, v);
    let root = dir.join("st");
    ok(&["convert", s(&src), "--name", "plants", "--out", s(&root), "--window", WINDOW, "-q"]);
    root
}

/// Every row of `schema.plants`, sorted.
fn rows(c: &mut postgres::Client, schema: &str) -> Vec<(i32, i32, f64, f64, f64)> {
    c.query(&format!("SELECT row_idx, col_idx, x, y, value::float8 FROM \"{schema}\".plants ORDER BY 1, 2"), &[])
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

fn one_i64(c: &mut postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

/// Tiles committed in `schema` so far (0 while the ledger does not exist yet). Errors count
/// as 0: the server may be mid-restart.
fn ledger_tiles(cl: &Cluster, schema: &str) -> i64 {
    let sql = format!(
        "SELECT CASE WHEN to_regclass('\"{schema}\".raster_tile_loads') IS NULL THEN 0 \
         ELSE (SELECT count(*) FROM \"{schema}\".raster_tile_loads) END"
    );
    postgres::Config::new()
        .host_path(&cl.dir)
        .port(cl.port)
        .user("postgres")
        .dbname("rs")
        .connect(postgres::NoTls)
        .and_then(|mut c| c.query_one(&sql, &[]))
        .map(|r| r.get(0))
        .unwrap_or(0)
}

/// Starts a slow load (a pause inside every tile's transaction) into `schema` as a child.
fn slow_load(cl: &Cluster, root: &Path, schema: &str) -> std::process::Child {
    bin()
        .env("DATABASE_URL", cl.url(PASSWORD, ""))
        .env("RASTERSTAGE_TEST_LOAD_DELAY_MS", "250")
        .args(["load", "--from", s(root), "--schema", schema, "--jobs", "2", "-q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `schema`'s ledger holds at least `n` tiles.
fn wait_for_tiles(cl: &Cluster, schema: &str, n: i64) -> i64 {
    let start = Instant::now();
    loop {
        let done = ledger_tiles(cl, schema);
        if done >= n {
            return done;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the load never reached {n} tiles:\n{}", cl.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// After an interrupted load (and its rerun when it gave up): every staged row exactly once,
/// the same table as an uninterrupted load, the primary key there and `verify` happy.
fn assert_exactly_once(cl: &Cluster, root: &Path, schema: &str) {
    let url = cl.url(PASSWORD, "");
    let reference = format!("{schema}_ref");
    assert_ok(&rs_at(&url, &["load", "--from", s(root), "--schema", &reference, "-q"], &[]), "reference load");
    let su = &mut cl.superuser("rs");
    let expected = rows(su, &reference);
    let staged_rows = manifest(root, "plants")["row_count"].as_i64().unwrap();
    assert_eq!(expected.len() as i64, staged_rows);
    assert_eq!(one_i64(su, &format!("SELECT count(*) FROM \"{schema}\".plants")), staged_rows);
    let dups = one_i64(
        su,
        &format!(
            "SELECT count(*) FROM (SELECT 1 FROM \"{schema}\".plants GROUP BY row_idx, col_idx HAVING count(*) > 1) d"
        ),
    );
    assert_eq!(dups, 0, "duplicate (row_idx, col_idx)");
    assert_eq!(rows(su, schema), expected, "differs from an uninterrupted load");
    assert_eq!(one_i64(su, &format!("SELECT count(*) FROM \"{schema}\".raster_tile_loads")), 32);
    let pk: bool = su
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = to_regclass($1) AND indisprimary)",
            &[&format!("\"{schema}\".plants")],
        )
        .unwrap()
        .get(0);
    assert!(pk, "primary key missing");
    let v = rs_at(&url, &["verify", "--from", s(root), "--schema", schema], &[]);
    assert_ok(&v, "verify");
    assert!(stdout(&v).contains("32 tiles match"), "{}", stdout(&v));
}

/// Restarts the cluster with `mode` while a slow load runs; the load retries through it and
/// every row ends up there exactly once.
fn restart_mid_load(mode: &str) {
    let dir = tmp();
    let root = staged(dir.path());
    let cl = Cluster::new();
    let schema = format!("restart_{mode}");
    let child = slow_load(&cl, &root, &schema);
    let before = wait_for_tiles(&cl, &schema, 4);
    cl.restart(mode);
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!err.contains(PASSWORD), "{err}");
    // Some tiles were committed before the restart and some were not: it landed mid-load.
    assert!(before < 32, "the load finished before the restart; slow it down");
    assert!(err.contains("retrying"), "the restart should have made a tile retry: {err}");
    // A restart takes a second or two, well inside the retries (7.75 s of backoff): the
    // load itself must finish, the primary key and raster_datasets row included, even
    // though its main connection was cut while the workers were copying.
    assert_ok(&out, &format!("load through a {mode} restart"));
    assert_exactly_once(&cl, &root, &schema);
}

#[test]
fn fast_restart_mid_load_ends_with_every_row_once() {
    if !require(&[Pg, PgServer]) {
        return;
    }
    restart_mid_load("fast");
}

#[test]
fn crash_restart_mid_load_ends_with_every_row_once() {
    if !require(&[Pg, PgServer]) {
        return;
    }
    restart_mid_load("immediate");
}

#[test]
fn server_down_longer_than_the_retries_fails_clearly_and_a_rerun_completes() {
    if !require(&[Pg, PgServer]) {
        return;
    }
    let dir = tmp();
    let root = staged(dir.path());
    let cl = Cluster::new();
    let child = slow_load(&cl, &root, "down");
    wait_for_tiles(&cl, "down", 4);
    cl.stop();
    let stopped = Instant::now();
    // The retries of the tiles in flight now meet a refused connection until they give up;
    // the tiles not started yet are not tried at all (they would fail the same way, one
    // 7.75 s retry cycle each).
    let out = child.wait_with_output().unwrap();
    let waited = stopped.elapsed();
    cl.start();
    let err = stderr(&out);
    assert!(!out.status.success(), "the load cannot succeed with the server down: {err}");
    assert!(waited < Duration::from_secs(30), "giving up took {waited:?}: {err}");
    let last = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or_default();
    assert!(last.starts_with("error: plants: PostgreSQL kept failing, gave up after 6 attempts"), "{err}");
    assert!(last.contains("of 32 tiles committed (rerun load to finish)"), "{last}");
    assert!(last.contains(&format!("host 127.0.0.1 port {} user rs_user database rs", cl.port)), "{last}");
    assert!(!err.contains(PASSWORD), "{err}");
    let out = rs_at(&cl.url(PASSWORD, ""), &["load", "--from", s(&root), "--schema", "down"], &[]);
    assert_ok(&out, "rerun after the server came back");
    assert!(!stdout(&out).contains("(32 loaded now"), "the rerun resumes: {}", stdout(&out));
    assert_exactly_once(&cl, &root, "down");
}

#[test]
fn wrong_password_is_one_line_naming_the_target_and_never_shows_the_password() {
    if !require(&[PgServer]) {
        return;
    }
    let dir = tmp();
    let root = staged(dir.path());
    let cl = Cluster::new();
    let target = format!("host 127.0.0.1 port {} user rs_user database rs", cl.port);
    let wrong_url = cl.url(WRONG, "");
    // Plain, then with every log level a user might turn on to debug a login.
    let runs: Vec<(Vec<&str>, Option<&str>)> = vec![
        (vec!["load", "--from", s(&root)], Some("warn")),
        (vec!["-vv", "load", "--from", s(&root)], None),
        (vec!["load", "--from", s(&root)], Some("debug")),
        (vec!["load", "--from", s(&root)], Some("trace")),
        (vec!["-vv", "verify", "--from", s(&root)], None),
    ];
    for (args, log) in &runs {
        let mut c = bin();
        match log {
            Some(l) => c.env("RUST_LOG", l),
            None => c.env_remove("RUST_LOG"),
        };
        let out = c.env("DATABASE_URL", &wrong_url).args(args).output().unwrap();
        let (o, e) = (stdout(&out), stderr(&out));
        assert!(!out.status.success(), "{args:?}: {e}");
        assert!(!o.contains(WRONG) && !e.contains(WRONG), "{args:?} {log:?} shows the password:\n{o}\n{e}");
        let errors: Vec<&str> = e.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{args:?} {log:?}: {e}");
        assert!(errors[0].contains(&target) && errors[0].contains("password authentication failed"), "{e}");
        if *log == Some("warn") {
            one_error_line(&e, &[&target]);
        }
    }
    // The same wrong password through PGPASSWORD (the URL has none).
    let no_pw = format!("postgres://rs_user@127.0.0.1:{}/rs", cl.port);
    let out = rs_at(&no_pw, &["-vv", "load", "--from", s(&root)], &[("PGPASSWORD", WRONG), ("RUST_LOG", "debug")]);
    assert!(!out.status.success());
    assert!(!stdout(&out).contains(WRONG) && !stderr(&out).contains(WRONG), "{}", stderr(&out));
    assert!(stderr(&out).contains(&target), "{}", stderr(&out));

    // The right password works from the URL and from PGPASSWORD, and is never printed either.
    let out = rs_at(
        &cl.url(PASSWORD, ""),
        &["-vv", "load", "--from", s(&root), "--schema", "by_url"],
        &[("RUST_LOG", "debug")],
    );
    assert_ok(&out, "load with the password in the URL");
    assert!(!stdout(&out).contains(PASSWORD) && !stderr(&out).contains(PASSWORD), "{}", stderr(&out));
    let out = rs_at(&no_pw, &["load", "--from", s(&root), "--schema", "by_env"], &[("PGPASSWORD", PASSWORD)]);
    assert_ok(&out, "load with PGPASSWORD");
    let su = &mut cl.superuser("rs");
    assert_eq!(rows(su, "by_env"), rows(su, "by_url"));
    assert!(!rows(su, "by_env").is_empty());
    // And through PG* variables alone.
    let out = pg_env(&cl).args(["verify", "--from", s(&root), "--schema", "by_env"]).output().unwrap();
    assert_ok(&out, "verify with PG* variables");
}

#[test]
fn sslmode_require_loads_over_tls_verify_modes_check_the_certificate() {
    if !require(&[Pg, PgServer]) {
        return;
    }
    let dir = tmp();
    let root = staged(dir.path());
    let cl = Cluster::new();
    // pg_hba.conf has only `hostssl` for rs_user: a connection without TLS has no entry.
    let out = rs_at(&cl.url(PASSWORD, "sslmode=disable"), &["load", "--from", s(&root), "--schema", "plain"], &[]);
    assert!(!out.status.success(), "a non-TLS connection must be refused");
    let line = one_error_line(&stderr(&out), &[&format!("host 127.0.0.1 port {} user rs_user database rs", cl.port)]);
    assert!(line.contains("no pg_hba.conf entry") && line.contains("no encryption"), "{line}");

    // A slowed-down load, so that the server can be asked about its sessions while they run.
    let child = bin()
        .env("DATABASE_URL", cl.url(PASSWORD, "sslmode=require"))
        .env("RASTERSTAGE_TEST_LOAD_DELAY_MS", "100")
        .args(["load", "--from", s(&root), "--schema", "tls", "--jobs", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let su = &mut cl.superuser("rs");
    let mut sessions: Vec<(bool, Option<String>)> = Vec::new();
    let start = Instant::now();
    while sessions.is_empty() && start.elapsed() < Duration::from_secs(30) {
        sessions = su
            .query(
                "SELECT s.ssl, s.version FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                 WHERE a.application_name = 'rasterstage' AND a.usename = 'rs_user'",
                &[],
            )
            .unwrap()
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_ok(&out, "load with sslmode=require");
    assert!(stdout(&out).contains("32 tiles (32 loaded now"), "{}", stdout(&out));
    assert!(!sessions.is_empty(), "no rasterstage session seen on the server");
    assert!(sessions.iter().all(|(ssl, v)| *ssl && v.as_deref().is_some_and(|v| v.starts_with("TLS"))), "{sessions:?}");
    let v = rs_at(&cl.url(PASSWORD, "sslmode=require"), &["verify", "--from", s(&root), "--schema", "tls"], &[]);
    assert_ok(&v, "verify with sslmode=require");
    let staged_rows = manifest(&root, "plants")["row_count"].as_i64().unwrap();
    assert_eq!(one_i64(su, "SELECT count(*) FROM tls.plants"), staged_rows);
    // PGSSLMODE=require with PG* variables takes the same TLS path.
    let out = pg_env(&cl)
        .env("PGSSLMODE", "require")
        .args(["verify", "--from", s(&root), "--schema", "tls"])
        .output()
        .unwrap();
    assert_ok(&out, "verify with PGSSLMODE=require");

    // verify-ca / verify-full check the certificate (self-signed, for DNS:localhost only).
    let crt = cl.data().join("server.crt");
    let verify = ["verify", "--from", s(&root), "--schema", "tls"];
    let target = format!("host 127.0.0.1 port {} user rs_user database rs", cl.port);
    // No trusted root for it: refused, naming the server, whatever the host name.
    let out = rs_at(&cl.url(PASSWORD, "sslmode=verify-ca"), &verify, &[]);
    assert!(!out.status.success(), "verify-ca must refuse an unknown certificate");
    one_error_line(&stderr(&out), &[&target, "certificate"]);
    // Its root given: verify-ca passes; verify-full still refuses 127.0.0.1, which the
    // certificate does not name, and passes for host localhost (hostaddr keeps it on IPv4).
    let with_root = |mode: &str| format!("sslmode={mode}&sslrootcert={}", crt.display());
    assert_ok(&rs_at(&cl.url(PASSWORD, &with_root("verify-ca")), &verify, &[]), "verify-ca with sslrootcert");
    let out = rs_at(&cl.url(PASSWORD, &with_root("verify-full")), &verify, &[]);
    assert!(!out.status.success(), "verify-full must refuse a certificate for another host");
    one_error_line(&stderr(&out), &[&target]);
    let by_name = format!(
        "postgres://rs_user:{PASSWORD}@localhost:{}/rs?hostaddr=127.0.0.1&{}",
        cl.port,
        with_root("verify-full")
    );
    assert_ok(&rs_at(&by_name, &verify, &[]), "verify-full for the certificate's host name");
    // PGSSLMODE / PGSSLROOTCERT do the same without a URL.
    let out = pg_env(&cl).env("PGSSLMODE", "verify-ca").env("PGSSLROOTCERT", &crt).args(verify).output().unwrap();
    assert_ok(&out, "verify with PGSSLMODE=verify-ca and PGSSLROOTCERT");
}
