//! Staging storage: one URL-addressed store for every read and write of staged data.
//!
//! Local folders, `file://` URLs, `s3://bucket/prefix`, `gs://bucket/prefix` and
//! `az://container/prefix` (with the other Azure forms of [`crate::cloud`]) all go through
//! `object_store`, so there is one code path. Puts are atomic on every backend (local files
//! are written under a temporary name and renamed; S3, GCS and Azure objects appear only when
//! complete), which is what lets a tile be committed only after it is fully written.
//!
//! Remote stores get bounded concurrency ([`object_store::limit::LimitStore`]), retries with
//! exponential backoff on 5xx, timeouts and dropped connections, and request timeouts, all
//! from [`StorageOptions`] (config `storage:` section, `RASTERSTAGE_S3_*` variables, which
//! apply to every cloud). Credentials come from each cloud's standard variables and files
//! (AWS: the environment, the profile files of [`crate::aws_profile`], web identity and the
//! instance role; Google: `GOOGLE_APPLICATION_CREDENTIALS`/`GOOGLE_SERVICE_ACCOUNT` JSON, the
//! gcloud application-default file, the instance's service account; Azure:
//! `AZURE_STORAGE_CONNECTION_STRING`, account name and key, SAS token, service principal,
//! workload and managed identity); they are never formatted into a message or a log line.

use crate::cloud::{Cloud, RemoteUrl};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GcpCredential, GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::path::Path;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Errors of the staging store, each naming the URL it is about.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL cannot be parsed or its scheme is not supported.
    #[error("{url}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A local output folder cannot be created.
    #[error("cannot create output folder {path}: {source}; choose a writable --out")]
    CreateDir {
        /// The folder.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A store operation failed (after any retries).
    #[error("{op} {url}: {detail}")]
    Op {
        /// What was attempted (put, get, list, delete).
        op: &'static str,
        /// The object or prefix.
        url: String,
        /// The store's error on one line, S3's XML error body reduced to its code and message.
        detail: String,
    },
    /// The bucket (Azure: container) does not exist.
    #[error("{op} {url}: {} {bucket:?} does not exist; create it or correct the URL", .cloud.bucket_word())]
    NoBucket {
        /// What was attempted.
        op: &'static str,
        /// Which object store.
        cloud: Cloud,
        /// The bucket or container.
        bucket: String,
        /// The object or prefix.
        url: String,
    },
    /// The server refused the request: wrong or missing credentials, or no permission.
    #[error(
        "{op} {url}: access to {} {bucket:?} refused ({detail}); check the credentials ({}",
        .cloud.bucket_word(),
        .cloud.credentials_hint()
    )]
    Denied {
        /// What was refused.
        op: &'static str,
        /// Which object store (for the names of its credentials).
        cloud: Cloud,
        /// The bucket or container.
        bucket: String,
        /// The object or prefix.
        url: String,
        /// The server's reason, e.g. `InvalidAccessKeyId: ...`.
        detail: String,
    },
    /// An object larger than a reader takes (a manifest or commit record beyond
    /// [`crate::limits::MAX_MANIFEST_BYTES`]), refused before its bytes are read.
    #[error("{url} is {size} bytes, more than the {limit} bytes rasterstage reads of such a file: it is not one rasterstage wrote; convert (or merge) again with --overwrite")]
    TooLarge {
        /// The object.
        url: String,
        /// Its size.
        size: u64,
        /// The most that is read.
        limit: u64,
    },
    /// A storage setting (config `storage:` or a `RASTERSTAGE_S3_*` variable) is invalid.
    #[error("{name}: {reason}")]
    BadOption {
        /// The setting.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The tokio runtime that drives object_store from rayon and CLI threads.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("rasterstage-io")
            .build()
            .expect("tokio runtime")
    })
}

/// How the store talks to a remote object store. Local folders ignore the network settings.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageOptions {
    /// Retries of one request after a 5xx, a timeout or a dropped connection (0: none).
    pub(crate) max_retries: usize,
    /// No retry starts later than this after the first attempt of a request.
    pub(crate) retry_timeout: Duration,
    /// Time limit of one HTTP request, from connecting to the end of the response.
    pub(crate) request_timeout: Duration,
    /// Time limit for establishing a connection.
    pub(crate) connect_timeout: Duration,
    /// Requests in flight at once over the whole process.
    pub(crate) max_concurrent_requests: usize,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            // object_store's own default.
            max_retries: 10,
            retry_timeout: Duration::from_secs(180),
            // object_store's 30 s is short for an 8 MiB part on a slow link, and a timed-out
            // upload is sent again from the start.
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            // Enough for every convert/load worker plus multipart parts, few enough not to be
            // throttled (S3 answers 503 SlowDown) or exhaust sockets.
            max_concurrent_requests: 32,
        }
    }
}

/// Environment variables that override the `storage:` settings (name, what it sets).
pub(crate) const STORAGE_ENV: [&str; 4] = [
    "RASTERSTAGE_S3_MAX_RETRIES",
    "RASTERSTAGE_S3_RETRY_TIMEOUT_SECS",
    "RASTERSTAGE_S3_REQUEST_TIMEOUT_SECS",
    "RASTERSTAGE_S3_MAX_CONCURRENT_REQUESTS",
];

impl StorageOptions {
    /// These options with any `RASTERSTAGE_S3_*` variable applied on top (the environment
    /// wins over the config file, so one run can be tuned without editing it).
    ///
    /// # Errors
    /// [`StoreError::BadOption`] naming a variable that is not a number in its range.
    pub(crate) fn with_env(mut self) -> Result<StorageOptions, StoreError> {
        use crate::limits::{duration_secs, MAX_CONCURRENT_REQUESTS, MAX_DURATION_SECS, MAX_RETRIES};
        for name in STORAGE_ENV {
            let Ok(v) = std::env::var(name) else { continue };
            let bad = |reason: String| StoreError::BadOption { name: name.to_string(), reason };
            let n: f64 = v.trim().parse().map_err(|_| bad(format!("{v:?} is not a number")))?;
            // A count is a whole number in its range: `as usize` would quietly turn 2.5 into 2
            // and 1e300 into usize::MAX.
            let count = |max: usize| {
                if n.fract() == 0.0 && (0.0..=max as f64).contains(&n) {
                    Ok(n as usize)
                } else {
                    Err(bad(format!("{v:?} must be a whole number from 0 to {max}")))
                }
            };
            let secs = || {
                duration_secs(n)
                    .ok_or_else(|| bad(format!("{v:?} must be a number of seconds from 0 to {MAX_DURATION_SECS}")))
            };
            match name {
                "RASTERSTAGE_S3_MAX_RETRIES" => self.max_retries = count(MAX_RETRIES)?,
                "RASTERSTAGE_S3_RETRY_TIMEOUT_SECS" => self.retry_timeout = secs()?,
                "RASTERSTAGE_S3_REQUEST_TIMEOUT_SECS" => self.request_timeout = secs()?,
                _ => self.max_concurrent_requests = count(MAX_CONCURRENT_REQUESTS)?,
            }
        }
        self.validate()?;
        Ok(self)
    }

    /// Checks the values that would make every request fail, or that exceed the limits.
    ///
    /// # Errors
    /// [`StoreError::BadOption`] naming the setting.
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        use crate::limits::{MAX_CONCURRENT_REQUESTS, MAX_DURATION_SECS, MAX_RETRIES};
        let bad = |name: &str, reason: String| Err(StoreError::BadOption { name: name.into(), reason });
        if !(1..=MAX_CONCURRENT_REQUESTS).contains(&self.max_concurrent_requests) {
            return bad(
                "storage.max_concurrent_requests",
                format!(
                    "must be at least 1 and at most {MAX_CONCURRENT_REQUESTS}, got {}",
                    self.max_concurrent_requests
                ),
            );
        }
        if self.max_retries > MAX_RETRIES {
            return bad("storage.max_retries", format!("must be at most {MAX_RETRIES}, got {}", self.max_retries));
        }
        if self.request_timeout.is_zero() {
            return bad("storage.request_timeout_secs", "must be more than 0".into());
        }
        let max = std::time::Duration::from_secs_f64(MAX_DURATION_SECS);
        for (name, d) in [
            ("storage.request_timeout_secs", self.request_timeout),
            ("storage.retry_timeout_secs", self.retry_timeout),
            ("connect timeout", self.connect_timeout),
        ] {
            if d > max {
                return bad(name, format!("must be at most {MAX_DURATION_SECS} seconds, got {}", d.as_secs_f64()));
            }
        }
        Ok(())
    }

    fn retry(&self) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                // Never sleep past the retry window: a long last sleep only delays the error.
                max_backoff: Duration::from_secs(15).min(self.retry_timeout.max(Duration::from_millis(100))),
                base: 2.0,
            },
            max_retries: self.max_retries,
            retry_timeout: self.retry_timeout,
        }
    }
}

/// A staging location: a store and a root prefix inside it.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    root: Path,
    url: String,
    /// The cloud and bucket (container) of a remote store, for error messages.
    bucket: Option<(Cloud, String)>,
}

// Only the URL: the inner store's Debug would show its whole configuration, and a derived
// Debug anywhere on the way to the credentials is one refactor away from a leaked secret.
impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("url", &self.url).finish_non_exhaustive()
    }
}

/// Whether a local put failed because its temporary file was gone at the rename (or hard
/// link): object_store reports that as "Unable to rename file" over a NotFound I/O error.
fn lost_staged_file(e: &object_store::Error) -> bool {
    if !e.to_string().contains("Unable to rename file") {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::NotFound;
        }
        source = s.source();
    }
    false
}

/// Bounds the requests in flight of one remote store.
fn limited<T: ObjectStore>(store: T, options: &StorageOptions) -> Arc<dyn ObjectStore> {
    Arc::new(object_store::limit::LimitStore::new(store, options.max_concurrent_requests))
}

/// object_store's duration format for the client timeouts.
fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// A builder's error on one line; the builders' errors name settings, never their values.
fn build_error(e: object_store::Error) -> String {
    one_line(&e.to_string())
}

/// The settings every cloud's builder takes alike (retries, timeouts), then the client.
macro_rules! finish {
    ($builder:expr, $key:ident, $options:expr) => {
        $builder
            .with_retry($options.retry())
            .with_config($key::Client(ClientConfigKey::Timeout), millis($options.request_timeout))
            .with_config($key::Client(ClientConfigKey::ConnectTimeout), millis($options.connect_timeout))
            .build()
            .map_err(build_error)
    };
}

/// The S3 client from `env` alone (the process's variables, or a test's), so that what the
/// AWS chain reads is explicit.
fn s3_store(
    remote: &RemoteUrl,
    options: &StorageOptions,
    env: &[(String, String)],
) -> Result<impl ObjectStore, String> {
    // Every AWS_* variable object_store knows, AWS_ENDPOINT_URL and AWS_ALLOW_HTTP included,
    // as AmazonS3Builder::from_env reads them from the process. Timeouts go in through
    // with_config, not with_client_options, which would replace (and so drop) AWS_ALLOW_HTTP.
    let mut builder = AmazonS3Builder::new();
    for (k, v) in env.iter().filter(|(k, _)| k.starts_with("AWS_")) {
        if let Ok(key) = k.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
            builder = builder.with_config(key, v);
        }
    }
    // Then what AWS_PROFILE (or the default profile) of ~/.aws adds, as the AWS chain does.
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let profile = crate::aws_profile::from_vars(lookup)?;
    if profile != crate::aws_profile::ProfileSettings::default() {
        tracing::debug!("S3 settings from the AWS profile: {profile}");
    }
    if let (Some(id), Some(secret)) = (profile.access_key_id, profile.secret_access_key) {
        builder = builder.with_access_key_id(id).with_secret_access_key(secret);
        if let Some(token) = profile.session_token {
            builder = builder.with_token(token);
        }
    }
    if let Some(region) = profile.region {
        builder = builder.with_region(region);
    }
    if let Some(endpoint) = profile.endpoint_url {
        builder = builder.with_endpoint(endpoint);
    }
    finish!(builder.with_bucket_name(&remote.bucket), AmazonS3ConfigKey, options)
}

fn gcs_store(remote: &RemoteUrl, options: &StorageOptions) -> Result<impl ObjectStore, String> {
    // from_env reads GOOGLE_SERVICE_ACCOUNT(_PATH/_KEY), GOOGLE_APPLICATION_CREDENTIALS and
    // GOOGLE_BASE_URL; without any, gcloud's application-default file, then the metadata server.
    let mut builder = GoogleCloudStorageBuilder::from_env();
    if let Some(base) = crate::cloud::gcs_emulator() {
        tracing::debug!("GCS: the emulator of {}, unauthenticated", crate::cloud::GCS_EMULATOR_ENV);
        // An empty bearer token sends no Authorization header, as Google's own libraries do
        // for an emulator; and no credential lookup can reach for the metadata server.
        let anonymous = object_store::StaticCredentialProvider::new(GcpCredential { bearer: String::new() });
        builder = builder.with_base_url(&base).with_credentials(Arc::new(anonymous));
    }
    finish!(builder.with_bucket_name(&remote.bucket), GoogleConfigKey, options)
}

fn azure_store(remote: &RemoteUrl, options: &StorageOptions) -> Result<impl ObjectStore, String> {
    // from_env reads AZURE_STORAGE_ACCOUNT_NAME/_KEY, AZURE_STORAGE_SAS_TOKEN, the service
    // principal, workload identity and managed identity variables.
    let mut builder = MicrosoftAzureBuilder::from_env();
    if let Some(cs) = crate::cloud::ConnectionString::from_env()? {
        if cs.development_storage {
            builder = builder.with_use_emulator(true);
        }
        if let Some(account) = cs.account_name {
            builder = builder.with_account(account);
        }
        if let Some(key) = cs.account_key {
            builder = builder.with_access_key(key);
        }
        if let Some(sas) = cs.sas {
            builder = builder.with_config(AzureConfigKey::SasKey, sas);
        }
        if let Some(endpoint) = cs.blob_endpoint.or(cs.suffix_endpoint) {
            if endpoint.starts_with("http://") {
                builder = builder.with_allow_http(true);
            }
            builder = builder.with_endpoint(endpoint);
        }
    }
    if let Some(account) = &remote.account {
        builder = builder.with_account(account);
    }
    finish!(builder.with_container_name(&remote.bucket), AzureConfigKey, options)
}

impl Store {
    /// Opens a staging location from a local path, `file://` URL or a remote URL
    /// ([`crate::cloud::REMOTE_FORMS`]), with [`default_options`] and any `RASTERSTAGE_S3_*`
    /// variables. A local folder is created if missing.
    ///
    /// # Errors
    /// As [`Store::open_with`], and [`StoreError::BadOption`] for a bad variable.
    pub fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, &StorageOptions::default().with_env()?)
    }

    /// Opens a staging location with explicit storage options.
    ///
    /// S3 settings come from the standard AWS variables (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
    /// `AWS_ALLOW_HTTP`, web identity, ECS/EKS container credentials), else the EC2 instance
    /// role. Requests are path-style (`endpoint/bucket/key`), which every S3-compatible
    /// server accepts, unless `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`.
    ///
    /// Google Cloud Storage: `GOOGLE_APPLICATION_CREDENTIALS` or `GOOGLE_SERVICE_ACCOUNT`
    /// (service-account JSON; one with `gcs_base_url` and `disable_oauth` addresses an
    /// emulator), `GOOGLE_SERVICE_ACCOUNT_KEY` (the JSON itself), gcloud's
    /// application-default credentials, else the instance's service account; or, with
    /// `STORAGE_EMULATOR_HOST` set, unauthenticated requests to that emulator.
    ///
    /// Azure Blob: `AZURE_STORAGE_CONNECTION_STRING` (its `AccountName`, `AccountKey`,
    /// `SharedAccessSignature`, `BlobEndpoint`, `EndpointSuffix` win over the variables
    /// below), `AZURE_STORAGE_ACCOUNT_NAME` with `AZURE_STORAGE_ACCOUNT_KEY` or
    /// `AZURE_STORAGE_SAS_TOKEN`, a service principal (`AZURE_CLIENT_ID`,
    /// `AZURE_CLIENT_SECRET`, `AZURE_TENANT_ID`), workload identity, else the managed identity.
    ///
    /// # Errors
    /// [`StoreError::BadUrl`] for an unsupported scheme or settings that do not build a
    /// client, [`StoreError::CreateDir`] when a local folder cannot be created.
    pub fn open_with(url: &str, options: &StorageOptions) -> Result<Store, StoreError> {
        let env: Vec<(String, String)> =
            std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
        Store::open_with_env(url, options, &env)
    }

    /// [`Store::open_with`] with the environment given as `(name, value)` pairs instead of
    /// read from the process: the S3 settings and the AWS profile come from `env` alone.
    ///
    /// # Errors
    /// As [`Store::open_with`].
    pub fn open_with_env(url: &str, options: &StorageOptions, env: &[(String, String)]) -> Result<Store, StoreError> {
        let bad = |reason: String| StoreError::BadUrl { url: url.to_string(), reason };
        options.validate()?;
        if let Some(remote) = crate::cloud::parse(url) {
            let remote = remote.map_err(bad)?;
            let inner: Arc<dyn ObjectStore> = match remote.cloud {
                Cloud::S3 => limited(s3_store(&remote, options, env).map_err(bad)?, options),
                Cloud::Gcs => limited(gcs_store(&remote, options).map_err(bad)?, options),
                Cloud::Azure => limited(azure_store(&remote, options).map_err(bad)?, options),
            };
            return Ok(Store {
                inner,
                root: Path::from(remote.prefix.as_str()),
                url: url.trim_end_matches('/').to_string(),
                bucket: Some((remote.cloud, remote.bucket)),
            });
        }
        let local = if let Some(p) = url.strip_prefix("file://") { p.to_string() } else { url.to_string() };
        std::fs::create_dir_all(&local).map_err(|source| StoreError::CreateDir { path: local.clone(), source })?;
        let abs =
            std::fs::canonicalize(&local).map_err(|source| StoreError::CreateDir { path: local.clone(), source })?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(&abs)
            .map_err(|e| bad(e.to_string()))?
            .with_automatic_cleanup(true);
        Ok(Store {
            inner: Arc::new(fs),
            root: Path::default(),
            url: abs.to_string_lossy().trim_end_matches('/').to_string(),
            bucket: None,
        })
    }

    /// Opens a staging location to read what is there: like [`Store::open_with`], but a local
    /// folder that does not exist is an error instead of being created (`inspect` of a
    /// mistyped path must not leave an empty folder behind and report "nothing staged").
    ///
    /// # Errors
    /// As [`Store::open_with`], and [`StoreError::BadUrl`] for a missing local folder.
    pub fn open_existing(url: &str, options: &StorageOptions) -> Result<Store, StoreError> {
        if !url.contains("://") || url.starts_with("file://") {
            let local = url.strip_prefix("file://").unwrap_or(url);
            if !std::path::Path::new(local).is_dir() {
                return Err(StoreError::BadUrl { url: url.to_string(), reason: "no such staging folder".into() });
            }
        }
        Store::open_with(url, options)
    }

    /// The location as a URL or absolute path, for messages and for other readers (DuckDB).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether this is an object store (not the local disk).
    pub(crate) fn is_remote(&self) -> bool {
        self.url.contains("://")
    }

    /// A store for the sub-folder `prefix` of this one.
    pub fn child(&self, prefix: &str) -> Store {
        Store {
            inner: self.inner.clone(),
            root: self.path(prefix),
            url: self.url_of(prefix),
            bucket: self.bucket.clone(),
        }
    }

    /// URL of `key` under this location.
    pub(crate) fn url_of(&self, key: &str) -> String {
        if key.is_empty() {
            self.url.clone()
        } else {
            format!("{}/{}", self.url, key)
        }
    }

    fn path(&self, key: &str) -> Path {
        let mut p = self.root.clone();
        for part in key.split('/').filter(|s| !s.is_empty()) {
            p = p.clone().join(part);
        }
        p
    }

    fn op(&self, op: &'static str, key: &str) -> impl FnOnce(object_store::Error) -> StoreError + '_ {
        let url = self.url_of(key);
        move |e| classify(op, url, self.bucket.as_ref(), &e)
    }

    /// Writes `bytes` to `key` atomically (large objects by multipart upload).
    ///
    /// # Errors
    /// [`StoreError::Op`] naming the object.
    pub fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        let path = self.path(key);
        self.retry_lost_staging(|| {
            runtime().block_on(async {
                if bytes.len() <= MULTIPART_THRESHOLD {
                    self.inner.put(&path, PutPayload::from(bytes.clone())).await.map(|_| ())
                } else {
                    let mut w = object_store::buffered::BufWriter::with_capacity(
                        self.inner.clone(),
                        path.clone(),
                        MULTIPART_THRESHOLD,
                    );
                    use tokio::io::AsyncWriteExt;
                    let r = async {
                        w.put(bytes.clone()).await?;
                        w.shutdown()
                            .await
                            .map_err(|e| object_store::Error::Generic { store: "multipart", source: Box::new(e) })
                    }
                    .await;
                    if r.is_err() {
                        // Leave no orphan parts behind on S3.
                        let _ = w.abort().await;
                    }
                    r
                }
            })
        })
        .map_err(self.op("put", key))
    }

    /// Runs a local put again when its temporary file vanished before the rename: another
    /// process's [`Store::remove_stale_uploads`] (a shard starting while this one writes) can
    /// see the file in the instant between its close and its rename, when no process holds it
    /// open, and delete it as stale. Remote stores have no temporary files: one attempt.
    fn retry_lost_staging<T>(
        &self,
        mut put: impl FnMut() -> Result<T, object_store::Error>,
    ) -> Result<T, object_store::Error> {
        let mut attempt = 1;
        loop {
            match put() {
                Err(e) if !self.is_remote() && attempt < 5 && lost_staged_file(&e) => {
                    tracing::debug!("{}: temporary file removed before its rename, writing again: {e}", self.url);
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    /// Writes small `bytes` to `key` only if no object is there yet (local: exclusive create;
    /// S3: `If-None-Match: *`); returns whether it wrote. Lets concurrent processes create a
    /// shared object once without one of them overwriting a later version of it.
    ///
    /// # Errors
    /// [`StoreError::Op`] naming the object.
    pub(crate) fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<bool, StoreError> {
        let path = self.path(key);
        let put = || {
            let opts = object_store::PutOptions::from(object_store::PutMode::Create);
            runtime().block_on(self.inner.put_opts(&path, PutPayload::from(bytes.clone()), opts))
        };
        match self.retry_lost_staging(put) {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.op("put", key)(e)),
        }
    }

    /// Reads `key`; `None` when it does not exist.
    ///
    /// # Errors
    /// [`StoreError::Op`] naming the object, for anything but "not found".
    pub fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.get_limited(key, u64::MAX)
    }

    /// Reads `key` if it holds at most `limit` bytes; `None` when it does not exist. The size
    /// comes with the response's metadata, so a larger object is refused before its body is
    /// read, in the same single request as [`Store::get`].
    ///
    /// # Errors
    /// [`StoreError::TooLarge`], or as [`Store::get`].
    pub(crate) fn get_limited(&self, key: &str, limit: u64) -> Result<Option<Bytes>, StoreError> {
        let path = self.path(key);
        let r = runtime().block_on(async {
            let got = self.inner.get(&path).await?;
            if got.meta.size > limit {
                return Ok(Err(got.meta.size));
            }
            got.bytes().await.map(Ok)
        });
        match r {
            Ok(Ok(b)) => Ok(Some(b)),
            Ok(Err(size)) => Err(StoreError::TooLarge { url: self.url_of(key), size, limit }),
            // A missing bucket is also a 404, but it is no "not staged yet".
            Err(e) if missing_object(&e) => Ok(None),
            Err(e) => Err(self.op("get", key)(e)),
        }
    }

    /// Keys (relative to this location) of every object under `prefix`, sorted.
    ///
    /// # Errors
    /// [`StoreError::Op`] naming the prefix.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let base = self.path(prefix);
        let root_len = self.root.as_ref().len();
        let mut keys: Vec<String> = runtime()
            .block_on(async {
                self.inner.list(Some(&base)).map_ok(|m| m.location.to_string()).try_collect::<Vec<_>>().await
            })
            .map_err(self.op("list", prefix))?
            .into_iter()
            .map(|k| k[root_len..].trim_start_matches('/').to_string())
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Names of the immediate sub-folders of this location.
    ///
    /// # Errors
    /// [`StoreError::Op`] naming the location.
    pub(crate) fn folders(&self) -> Result<Vec<String>, StoreError> {
        let root_len = self.root.as_ref().len();
        let r = runtime().block_on(self.inner.list_with_delimiter(Some(&self.root))).map_err(self.op("list", ""))?;
        let mut out: Vec<String> =
            r.common_prefixes.into_iter().map(|p| p.to_string()[root_len..].trim_matches('/').to_string()).collect();
        out.sort();
        Ok(out)
    }

    /// Deletes `key`; a missing object is not an error.
    ///
    /// # Errors
    /// [`StoreError::Op`] naming the object.
    pub(crate) fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key);
        match runtime().block_on(self.inner.delete(&path)) {
            Ok(()) => Ok(()),
            Err(e) if missing_object(&e) => Ok(()),
            Err(e) => Err(self.op("delete", key)(e)),
        }
    }

    /// Deletes every object under `prefix`.
    ///
    /// # Errors
    /// [`StoreError::Op`] naming the first object that could not be deleted.
    pub(crate) fn delete_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        for key in self.list(prefix)? {
            self.delete(&key)?;
        }
        Ok(())
    }
}

impl Store {
    /// Deletes the temporary files that local puts of a killed process left under this
    /// folder, and returns how many. object_store writes a local object to `<key>#<n>` and
    /// renames it when complete; a `kill -9` in between leaves that file, which no listing
    /// shows and nothing else removes. A file some process still holds open (a run writing
    /// this dataset at the same time) is left alone; so is everything when the open files
    /// cannot be known (no `/proc`). Remote stores have no such files: 0.
    ///
    /// # Errors
    /// [`StoreError::Op`] naming the file that cannot be read or deleted.
    pub(crate) fn remove_stale_uploads(&self) -> Result<usize, StoreError> {
        if self.is_remote() {
            return Ok(0);
        }
        let io = |op: &'static str, p: &std::path::Path| {
            let url = p.to_string_lossy().to_string();
            move |e: std::io::Error| StoreError::Op { op, url, detail: e.to_string() }
        };
        let mut found = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(&self.url)];
        while let Some(dir) = dirs.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(it) => it,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("list", &dir)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(io("list", &dir))?;
                let kind = entry.file_type().map_err(io("list", &entry.path()))?;
                if kind.is_dir() {
                    dirs.push(entry.path());
                } else if is_staged_upload(&entry.file_name().to_string_lossy()) {
                    found.push(entry.path());
                }
            }
        }
        if found.is_empty() {
            return Ok(0);
        }
        let Some(open) = open_files() else {
            tracing::debug!("{}: {} temporary file(s) left, not removed: open files unknown", self.url, found.len());
            return Ok(0);
        };
        let mut removed = 0;
        for p in found {
            let canonical = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
            if open.contains(&canonical) {
                continue;
            }
            match std::fs::remove_file(&p) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("delete", &p)(e)),
            }
        }
        if removed > 0 {
            tracing::info!("{}: removed {removed} temporary file(s) left by an interrupted run", self.url);
        }
        Ok(removed)
    }
}

/// Whether a local file name is object_store's temporary name of an object being written:
/// `<name>#<digits>`, split at the first `#` (its `is_valid_file_path`, negated).
fn is_staged_upload(file_name: &str) -> bool {
    file_name.split_once('#').is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Every file some process on this machine holds open (Linux `/proc/<pid>/fd`); `None` when
/// that cannot be read.
fn open_files() -> Option<std::collections::HashSet<std::path::PathBuf>> {
    std::fs::read_dir("/proc/self/fd").ok()?;
    let mut open = std::collections::HashSet::new();
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = proc_entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // Processes of other users are unreadable: they cannot write this user's files
        // through object_store anyway, or the folder is shared and then beyond this check.
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else { continue };
        open.extend(fds.flatten().filter_map(|fd| std::fs::read_link(fd.path()).ok()));
    }
    Some(open)
}

/// Objects above this size are uploaded in parts (S3's minimum part size is 5 MiB).
pub(crate) const MULTIPART_THRESHOLD: usize = 8 * 1024 * 1024;

/// `text` on one line with runs of whitespace collapsed.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let len = text[start..].find(close)?;
    Some(text[start..start + len].trim())
}

/// The S3 error code (`NoSuchBucket`, `AccessDenied`, ...) in an error's text, if any.
fn s3_code(text: &str) -> Option<String> {
    between(text, "<Code>", "</Code>").map(str::to_string)
}

/// The error codes of a missing bucket (S3 and GCS) or container (Azure).
const NO_BUCKET_CODES: [&str; 2] = ["NoSuchBucket", "ContainerNotFound"];

/// The error codes of refused credentials or permissions: S3's and GCS's XML codes, then
/// Azure's.
const DENIED_CODES: [&str; 13] = [
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AllAccessDisabled",
    "AuthenticationRequired",
    "AuthenticationFailed",
    "AuthorizationFailure",
    "AuthorizationPermissionMismatch",
    "AuthorizationResourceTypeMismatch",
    "InsufficientAccountPermissions",
];

/// "Not found" about the object itself: a missing bucket is a 404 too, but it is an error,
/// not "nothing staged yet".
fn missing_object(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
        && !s3_code(&e.to_string()).is_some_and(|c| NO_BUCKET_CODES.contains(&c.as_str()))
}

/// The `Code: Message` (or `Code`) of S3's XML error body in an error's text, if any.
fn code_message(text: &str) -> Option<String> {
    let code = between(text, "<Code>", "</Code>")?;
    Some(
        between(text, "<Message>", "</Message>")
            .map_or_else(|| code.to_string(), |m| format!("{code}: {}", one_line(m))),
    )
}

/// An object_store error on one line: S3's XML body becomes `Code: Message`.
fn describe(text: &str) -> String {
    let xml = text.find("<?xml").or_else(|| text.find("<Error>"));
    let Some(at) = xml else { return one_line(text) };
    let head = one_line(text[..at].trim_end().trim_end_matches(':'));
    code_message(text).map_or(head.clone(), |cm| format!("{head}: {cm}"))
}

/// Turns an object_store error into the message a user can act on.
fn classify(op: &'static str, url: String, bucket: Option<&(Cloud, String)>, e: &object_store::Error) -> StoreError {
    let text = e.to_string();
    let code = s3_code(&text);
    if let Some((cloud, bucket)) = bucket {
        let cloud = *cloud;
        if code.as_deref().is_some_and(|c| NO_BUCKET_CODES.contains(&c)) {
            return StoreError::NoBucket { op, cloud, bucket: bucket.to_string(), url };
        }
        let denied_code = code.as_deref().is_some_and(|c| DENIED_CODES.contains(&c));
        if denied_code
            || matches!(e, object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. })
        {
            let detail = code_message(&text).unwrap_or_else(|| describe(&text));
            return StoreError::Denied { op, cloud, bucket: bucket.to_string(), url, detail };
        }
    }
    StoreError::Op { op, url, detail: describe(&text) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("a/b").to_str().unwrap()).unwrap();
        store.put("ds/tiles/r0_c0.bin", Bytes::from_static(b"abc")).unwrap();
        store.put("ds/big.bin", Bytes::from(vec![7u8; MULTIPART_THRESHOLD + 10])).unwrap();
        assert_eq!(store.get("ds/tiles/r0_c0.bin").unwrap().unwrap().as_ref(), b"abc");
        assert_eq!(store.get("ds/big.bin").unwrap().unwrap().len(), MULTIPART_THRESHOLD + 10);
        assert!(store.get("nope").unwrap().is_none());
        assert_eq!(store.list("ds").unwrap(), vec!["ds/big.bin", "ds/tiles/r0_c0.bin"]);
        assert_eq!(store.folders().unwrap(), vec!["ds"]);
        let child = store.child("ds");
        assert_eq!(child.list("tiles").unwrap(), vec!["tiles/r0_c0.bin"]);
        store.delete_prefix("ds").unwrap();
        assert!(store.list("").unwrap().is_empty());
    }

    #[test]
    fn lost_temporary_file_is_recognised() {
        /// object_store's local error shape: a message over the rename's I/O error.
        #[derive(Debug, thiserror::Error)]
        #[error("Unable to rename file: {source}")]
        struct Rename {
            source: std::io::Error,
        }
        let wrap = |kind| object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(Rename { source: std::io::Error::from(kind) }),
        };
        assert!(lost_staged_file(&wrap(std::io::ErrorKind::NotFound)));
        assert!(!lost_staged_file(&wrap(std::io::ErrorKind::PermissionDenied)));
        let other = object_store::Error::NotFound { path: "x".into(), source: "gone".into() };
        assert!(!lost_staged_file(&other));
    }

    #[test]
    fn debug_shows_no_secret() {
        // The secret must not reach Debug, whatever the builder holds. Given to this store
        // alone: setting it in the environment would race the other tests' threads.
        let env = [("AWS_SECRET_ACCESS_KEY", "do-not-print-3f9a"), ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")]
            .map(|(k, v)| (k.to_string(), v.to_string()));
        let store = Store::open_with_env("s3://bucket/prefix", &StorageOptions::default(), &env).unwrap();
        let shown = format!("{store:?} {:?}", store.child("ds"));
        assert!(!shown.contains("do-not-print-3f9a"), "{shown}");
        assert!(shown.contains("s3://bucket/prefix/ds"), "{shown}");
    }

    #[test]
    fn s3_errors_on_one_line() {
        let text = "Generic S3 error: Error performing PUT http://h/b/k in 1ms - Server returned non-2xx status code: \
                    500 Internal Server Error: <?xml version=\"1.0\"?>\n<Error>\n  <Code>InternalError</Code>\n  \
                    <Message>We encountered\n an internal error.</Message></Error>";
        let d = describe(text);
        assert!(d.ends_with("500 Internal Server Error: InternalError: We encountered an internal error."), "{d}");
        assert!(!d.contains('\n') && !d.contains("<?xml"));
        assert_eq!(s3_code(text).as_deref(), Some("InternalError"));
        assert_eq!(describe("a\n  b"), "a b");
    }

    #[test]
    fn storage_env_overrides() {
        let o = StorageOptions { max_retries: 3, ..Default::default() };
        assert!(o.validate().is_ok());
        let zero = StorageOptions { max_concurrent_requests: 0, ..Default::default() };
        assert!(zero.validate().unwrap_err().to_string().contains("max_concurrent_requests"));
        assert_eq!(o.retry().max_retries, 3);
        assert!(o.retry().backoff.max_backoff <= o.retry_timeout);
    }

    #[test]
    fn stale_uploads_removed_open_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).unwrap();
        store.put("ds/tiles/r0_c0.parquet", Bytes::from_static(b"abc")).unwrap();
        let tiles = dir.path().join("ds/tiles");
        std::fs::write(tiles.join("r0_c0.parquet#1"), b"partial").unwrap();
        std::fs::write(tiles.join("r0_c32.parquet#12"), b"partial").unwrap();
        std::fs::write(dir.path().join("ds/dataset.json#2"), b"{").unwrap();
        // Not temporary names: a suffix that is not all digits, or empty.
        std::fs::write(tiles.join("a#b"), b"x").unwrap();
        std::fs::write(tiles.join("c#"), b"x").unwrap();
        // Being written by someone: kept.
        let busy = tiles.join("r32_c0.parquet#1");
        let _held = std::fs::File::create(&busy).unwrap();
        assert_eq!(store.child("ds").remove_stale_uploads().unwrap(), 3);
        let mut left: Vec<String> =
            std::fs::read_dir(&tiles).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        left.sort();
        assert_eq!(left, vec!["a#b", "c#", "r0_c0.parquet", "r32_c0.parquet#1"]);
        assert!(!dir.path().join("ds/dataset.json#2").exists());
        assert_eq!(store.child("nothing-here").remove_stale_uploads().unwrap(), 0);
    }

    #[test]
    fn bad_urls() {
        assert!(Store::open("ftp://x/y").unwrap_err().to_string().contains("unsupported scheme"));
        let f = tempfile::NamedTempFile::new().unwrap();
        let under_file = f.path().join("sub");
        let e = Store::open(under_file.to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("cannot create output folder"), "{e}");
        let missing = f.path().with_extension("missing");
        let e = Store::open_existing(missing.to_str().unwrap(), &StorageOptions::default()).unwrap_err().to_string();
        assert!(e.contains("no such staging folder"), "{e}");
        assert!(!missing.exists());
    }
}
