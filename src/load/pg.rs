//! PostgreSQL connection, identifier quoting, the schema DDL and what counts as a transient
//! error.
//!
//! A connection is described by host, port, user and database only: the password is kept in
//! the `postgres::Config` and never formatted into a message or a log line.

use super::LoadError;
use postgres::config::{Host, SslMode};
use postgres::{Client, Config};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The schema DDL (`raster_datasets`, `raster_tile_loads`), applied idempotently.
pub(crate) const SCHEMA_SQL: &str = include_str!("../../schemas/postgres.sql");

/// `application_name` of every rasterstage connection, so an operator can find them in
/// `pg_stat_activity`.
pub(crate) const APPLICATION_NAME: &str = "rasterstage";

/// Where to connect: a parsed connection config whose `Debug`/`Display` never show the
/// password.
#[derive(Clone)]
pub struct ConnSpec {
    config: Config,
    verify: Verify,
    root_cert: Option<std::path::PathBuf>,
    /// The TLS connector, built on first use and shared by every clone: building one reads
    /// the system's CA bundle (about 0.5 G instructions under callgrind), and `load` opens a
    /// connection per worker and again after every failure.
    tls: Arc<OnceLock<Result<native_tls::TlsConnector, String>>>,
}

/// How much of the server's certificate to check, as libpq's `sslmode` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verify {
    /// `disable`, `prefer`, `require`: encrypt, trust any certificate (unless `sslrootcert`
    /// is given, which makes `require` check the chain, as libpq does).
    None,
    /// `verify-ca`: the chain must lead to a trusted root (`sslrootcert`, else the system's).
    Ca,
    /// `verify-full`: as `verify-ca`, and the certificate must name the host.
    Full,
}

/// Takes `sslmode=verify-ca|verify-full` and `sslrootcert=...` out of a connection string
/// (URL or `key=value` form), which the driver does not know, and returns the rest with
/// `sslmode=require` in their place (TLS is then required, and checked as they ask).
fn split_tls_params(conn: &str) -> (String, Option<Verify>, Option<String>) {
    let (mut verify, mut root) = (None, None);
    // A parameter as it stays in the string, if it does.
    let mut keep = |kv: &str, unquote: bool| -> Option<String> {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match (k, if unquote { v.trim_matches('\'') } else { v }) {
            ("sslmode", "verify-ca") => verify = Some(Verify::Ca),
            ("sslmode", "verify-full") => verify = Some(Verify::Full),
            ("sslrootcert", path) => {
                root = Some(path.to_string());
                return None;
            }
            _ => return Some(kv.to_string()),
        }
        Some("sslmode=require".to_string())
    };
    let rest = if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        match conn.split_once('?') {
            Some((base, query)) => {
                let kept: Vec<String> = query.split('&').filter_map(|kv| keep(kv, false)).collect();
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
            None => conn.to_string(),
        }
    } else {
        conn.split_whitespace().filter_map(|kv| keep(kv, true)).collect::<Vec<_>>().join(" ")
    };
    (rest, verify, root)
}

impl std::fmt::Debug for ConnSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnSpec({})", self.describe())
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl ConnSpec {
    /// Resolves the connection in the documented order: `cli` (`--database-url`), else
    /// `DATABASE_URL`, else `config_url` (the config's `database.url`), else libpq's `PG*`
    /// variables. Parts a URL leaves out (user, password) are taken from `PGUSER`,
    /// `PGPASSWORD` as libpq does.
    ///
    /// # Errors
    /// [`LoadError::BadUrl`] when the URL cannot be parsed (the message never quotes it,
    /// since it may hold a password).
    pub fn resolve(cli: Option<&str>, config_url: Option<&str>) -> Result<ConnSpec, LoadError> {
        let url = cli.map(str::to_string).or_else(|| env("DATABASE_URL")).or_else(|| config_url.map(str::to_string));
        let (mut config, verify, root_cert) = match url {
            Some(u) => {
                let (rest, verify, root) = split_tls_params(&u);
                (rest.parse::<Config>().map_err(|e| LoadError::BadUrl(e.to_string()))?, verify, root)
            }
            // PGDATABASE, PGUSER and PGPASSWORD as for a URL, below.
            None => {
                let mut c = Config::new();
                let host = env("PGHOST").unwrap_or_else(|| "localhost".to_string());
                for h in host.split(',') {
                    c.host(h);
                }
                if let Some(p) = env("PGPORT") {
                    let port = p.parse::<u16>().map_err(|_| LoadError::BadUrl(format!("PGPORT={p} is not a port")))?;
                    c.port(port);
                }
                let mode = env("PGSSLMODE");
                if let Some(mode) = &mode {
                    c.ssl_mode(match mode.as_str() {
                        "disable" => SslMode::Disable,
                        "require" | "verify-ca" | "verify-full" => SslMode::Require,
                        _ => SslMode::Prefer,
                    });
                }
                let verify = match mode.as_deref() {
                    Some("verify-ca") => Some(Verify::Ca),
                    Some("verify-full") => Some(Verify::Full),
                    _ => None,
                };
                (c, verify, None)
            }
        };
        if let (None, Some(u)) = (config.get_user(), env("PGUSER").or_else(|| env("USER"))) {
            config.user(&u);
        }
        if let (None, Some(p)) = (config.get_password(), env("PGPASSWORD")) {
            config.password(p);
        }
        if config.get_hosts().is_empty() {
            config.host(&env("PGHOST").unwrap_or_else(|| "localhost".to_string()));
        }
        if let (None, Some(db)) = (config.get_dbname(), env("PGDATABASE")) {
            config.dbname(&db);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name(APPLICATION_NAME);
        let root_cert = root_cert.or_else(|| env("PGSSLROOTCERT")).map(std::path::PathBuf::from);
        // libpq: `require` with a root certificate checks the chain like `verify-ca`.
        let verify = verify.unwrap_or(if root_cert.is_some() { Verify::Ca } else { Verify::None });
        Ok(ConnSpec { config, verify, root_cert, tls: Arc::default() })
    }

    /// A TLS connector for [`Self::verify`], with the `sslrootcert` root if any.
    fn build_tls(&self) -> Result<native_tls::TlsConnector, String> {
        let mut b = native_tls::TlsConnector::builder();
        match self.verify {
            // libpq's sslmode=require encrypts without verifying the certificate; do the same.
            // Nothing is verified (a root certificate would have made it Ca), so the system's
            // roots need not be read either.
            Verify::None => {
                b.danger_accept_invalid_certs(true).danger_accept_invalid_hostnames(true).disable_built_in_roots(true)
            }
            Verify::Ca => b.danger_accept_invalid_hostnames(true),
            Verify::Full => &mut b,
        };
        if let Some(path) = &self.root_cert {
            let pem = std::fs::read(path).map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            let cert = native_tls::Certificate::from_pem(&pem)
                .map_err(|e| format!("sslrootcert {}: not a PEM certificate ({e})", path.display()))?;
            b.add_root_certificate(cert);
        }
        b.build().map_err(|e| format!("TLS setup: {e}"))
    }

    /// `host H port P user U database D`, for messages: everything but the password.
    pub(crate) fn describe(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_string(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let user = self.config.get_user().unwrap_or("?");
        let db = self.config.get_dbname().unwrap_or(user);
        format!("host {host} port {port} user {user} database {db}")
    }

    /// Opens a connection (TLS when `sslmode` asks for it).
    ///
    /// # Errors
    /// [`LoadError::Connect`]: one line naming host, port, user and database.
    pub(crate) fn connect(&self) -> Result<Client, LoadError> {
        // Built once (see [`ConnSpec`]'s `tls`).
        let tls = self.tls.get_or_init(|| self.build_tls()).clone();
        let tls = tls.map_err(|reason| LoadError::Connect { target: self.describe(), reason })?;
        self.config
            .connect(postgres_native_tls::MakeTlsConnector::new(tls))
            .map_err(|e| LoadError::Connect { target: self.describe(), reason: reason(&e) })
    }
}

/// A one-line reason for a PostgreSQL error: the server's message, or the I/O cause.
pub(crate) fn reason(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({}): {}", db.severity(), db.code().code(), db.message());
    }
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
        src = s.source();
    }
    msg.replace('\n', " ")
}

/// Whether retrying on a fresh connection may succeed: the connection broke (reset, closed,
/// I/O), the server is shutting down or restarting (57P01-57P03), a serialization failure
/// or deadlock (40001, 40P01), or any connection exception (class 08).
pub(crate) fn is_transient(e: &postgres::Error) -> bool {
    match e.code() {
        Some(c) => matches!(c.code(), "40001" | "40P01" | "57P01" | "57P02" | "57P03") || c.code().starts_with("08"),
        // No SQLSTATE: the socket failed or the connection is closed.
        None => e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

/// `"ident"` with embedded quotes doubled: every identifier rasterstage sends is quoted.
pub(crate) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Whether the relation `qt` (`"schema"."name"`) exists.
pub(crate) fn exists(c: &mut impl postgres::GenericClient, qt: &str) -> Result<bool, postgres::Error> {
    Ok(c.query_one("SELECT to_regclass($1) IS NOT NULL", &[&qt])?.get(0))
}

/// `"schema"."table"`.
pub(crate) fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote(schema), quote(table))
}

/// Checks a schema name or table prefix: the same rule as dataset names, so a table name
/// built from them is a safe identifier PostgreSQL will not truncate.
///
/// # Errors
/// [`LoadError::BadIdent`] naming the option.
pub(crate) fn check_ident(what: &str, s: &str, allow_empty: bool) -> Result<(), LoadError> {
    let mut chars = s.chars();
    let ok = match chars.next() {
        None => allow_empty,
        Some(c) => matches!(c, 'a'..='z' | '_') && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_')),
    };
    (ok && s.len() <= 63).then_some(()).ok_or_else(|| LoadError::BadIdent(what.to_string(), s.to_string()))
}

/// The value columns of a dataset's table as `(name, PostgreSQL type)`: `value` for a
/// converted dataset, one nullable column per input for a merged one.
pub(crate) fn value_columns(m: &crate::stage::Manifest) -> Vec<(String, &'static str)> {
    match m.columns() {
        Some(cols) => cols.iter().map(|c| (c.name.clone(), c.dtype.postgres())).collect(),
        None => vec![("value".to_string(), m.value_type().0.postgres())],
    }
}

/// The SQL expression of a row's value sum (`value_sum` in dataset.json): the value, or the
/// sum of the non-null values of a merged row.
pub(crate) fn row_sum_sql(m: &crate::stage::Manifest) -> String {
    match m.columns() {
        None => "value::float8".to_string(),
        Some(_) => value_columns(m)
            .iter()
            .map(|(n, _)| format!("coalesce({}::float8, 0)", quote(n)))
            .collect::<Vec<_>>()
            .join(" + "),
    }
}

/// Applies [`SCHEMA_SQL`] in `schema` (creating the schema), serialised across concurrent
/// loaders by an advisory lock so that two `CREATE TABLE IF NOT EXISTS` never race.
///
/// # Errors
/// [`LoadError::Db`].
pub(crate) fn apply_schema(client: &mut Client, schema: &str) -> Result<(), LoadError> {
    let db = super::db(format!("creating rasterstage tables in schema {schema}"));
    let mut tx = client.transaction().map_err(&db)?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext('rasterstage:ddl'))", &[]).map_err(&db)?;
    // "already exists, skipping" notices on every rerun are noise.
    tx.batch_execute("SET LOCAL client_min_messages = warning").map_err(&db)?;
    tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {q}; SET LOCAL search_path TO {q};", q = quote(schema)))
        .map_err(&db)?;
    tx.batch_execute(SCHEMA_SQL).map_err(&db)?;
    tx.commit().map_err(db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote("a"), "\"a\"");
        assert_eq!(quote("x\"; DROP TABLE t; --"), "\"x\"\"; DROP TABLE t; --\"");
        assert_eq!(qualified("s", "t"), "\"s\".\"t\"");
    }

    #[test]
    fn idents() {
        assert!(check_ident("--schema", "t_1", false).is_ok());
        assert!(check_ident("--table-prefix", "", true).is_ok());
        assert!(check_ident("--schema", "", false).is_err());
        assert!(check_ident("--schema", "A", false).is_err());
        assert!(check_ident("--schema", "a\"b", false).is_err());
    }

    #[test]
    fn verify_modes_and_root_cert_are_taken_out_of_the_url() {
        let (rest, v, root) = split_tls_params("postgres://u@h/db?sslmode=verify-full&sslrootcert=/c/root.crt&x=1");
        assert_eq!(
            (rest.as_str(), v, root.as_deref()),
            ("postgres://u@h/db?sslmode=require&x=1", Some(Verify::Full), Some("/c/root.crt"))
        );
        let (rest, v, root) = split_tls_params("postgresql://u@h/db?sslrootcert=/r.pem");
        assert_eq!((rest.as_str(), v, root.as_deref()), ("postgresql://u@h/db", None, Some("/r.pem")));
        let (rest, v, _) = split_tls_params("host=h user=u sslmode=verify-ca dbname=d");
        assert_eq!((rest.as_str(), v), ("host=h user=u sslmode=require dbname=d", Some(Verify::Ca)));
        let (rest, v, root) = split_tls_params("postgres://u@h/db?sslmode=require");
        assert_eq!((rest.as_str(), v, root), ("postgres://u@h/db?sslmode=require", None, None));
        // What it resolves to: verify-full parses (the driver alone refuses it), and
        // require with a root certificate checks the chain as libpq does.
        let spec = ConnSpec::resolve(Some("postgres://u@h/db?sslmode=verify-full"), None).unwrap();
        assert_eq!(spec.verify, Verify::Full);
        let spec = ConnSpec::resolve(Some("postgres://u@h/db?sslmode=require&sslrootcert=/r.pem"), None).unwrap();
        assert_eq!(spec.verify, Verify::Ca);
        let spec = ConnSpec::resolve(Some("postgres://u@h/db?sslmode=require"), None).unwrap();
        assert_eq!(spec.verify, Verify::None);
    }

    #[test]
    fn password_never_described() {
        let spec = ConnSpec::resolve(Some("postgres://bob:s3cret@db.example:6543/geo"), None).unwrap();
        let d = spec.describe();
        assert_eq!(d, "host db.example port 6543 user bob database geo");
        assert!(!format!("{spec:?}").contains("s3cret"));
    }
}
