//! The three object stores rasterstage stages to and reads from: Amazon S3 (`s3://`), Google
//! Cloud Storage (`gs://`) and Azure Blob Storage (`az://`, `azure://`, `abfs[s]://`,
//! `https://<account>.blob.core.windows.net/...`).
//!
//! This module knows their URL forms, how a URL maps to GDAL's `/vsis3/`, `/vsigs/` and
//! `/vsiaz/` file systems, and the settings each cloud's standard variables give beyond what
//! `object_store` reads itself: `AZURE_STORAGE_CONNECTION_STRING` (account, key, SAS token,
//! `BlobEndpoint`) and Google's `STORAGE_EMULATOR_HOST`. No value read here is ever formatted
//! into a message: errors name the variable and the key.

/// Which object store a remote URL addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    /// Amazon S3 or an S3-compatible server.
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage (also Data Lake Gen2 through its blob endpoint).
    Azure,
}

impl Cloud {
    /// What the top level of a URL is called there.
    pub fn bucket_word(self) -> &'static str {
        match self {
            Cloud::Azure => "container",
            Cloud::S3 | Cloud::Gcs => "bucket",
        }
    }

    /// Where the credentials come from, for a "refused" message.
    pub fn credentials_hint(self) -> &'static str {
        match self {
            Cloud::S3 => {
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, AWS_PROFILE or the instance role) and the bucket's policy"
            }
            Cloud::Gcs => {
                "GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_SERVICE_ACCOUNT (a service-account JSON file) or the instance's service account) and the bucket's IAM roles"
            }
            Cloud::Azure => {
                "AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN, or the managed identity) and the container's role assignments"
            }
        }
    }
}

/// A parsed remote URL: cloud, bucket (or container), the prefix inside it, and the storage
/// account when the URL names one (Azure only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    /// The object store.
    pub cloud: Cloud,
    /// Bucket or container.
    pub bucket: String,
    /// Key prefix inside it, without leading or trailing `/`.
    pub prefix: String,
    /// Azure storage account named by the URL's host.
    pub account: Option<String>,
}

/// The remote URL forms, for messages.
pub const REMOTE_FORMS: &str =
    "s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or https://ACCOUNT.blob.core.windows.net/container/prefix";

/// Parses `url` if it addresses an object store; `None` for a local path or `file://` URL.
///
/// # Errors
/// A one-line reason for a URL with an unknown scheme or without a bucket/container.
pub fn parse(url: &str) -> Option<Result<RemoteUrl, String>> {
    if url.starts_with("file://") {
        return None;
    }
    let (scheme, rest) = url.split_once("://")?;
    let split = |rest: &str| {
        let (b, p) = rest.split_once('/').unwrap_or((rest, ""));
        (b.to_string(), p.trim_matches('/').to_string())
    };
    let cloud_of = |cloud: Cloud, bucket: String, prefix: String, account: Option<String>| {
        if bucket.is_empty() {
            let word = cloud.bucket_word();
            return Err(format!("no {word} name; use {scheme}://{word}/prefix"));
        }
        // object_store refuses container names with dots (they would be taken for a host).
        if cloud == Cloud::Azure && bucket.contains('.') {
            return Err(format!("{bucket:?} is not an Azure container name (no dots allowed)"));
        }
        Ok(RemoteUrl { cloud, bucket, prefix, account })
    };
    let r = match scheme.to_ascii_lowercase().as_str() {
        s @ ("s3" | "gs") => {
            let (b, p) = split(rest);
            cloud_of(if s == "s3" { Cloud::S3 } else { Cloud::Gcs }, b, p, None)
        }
        "az" | "azure" | "abfs" | "abfss" => {
            let (host, p) = split(rest);
            // abfs[s]://container@account.dfs.core.windows.net/path (the Hadoop form).
            match host.split_once('@') {
                Some((container, host)) => match azure_account(host) {
                    Some(account) => cloud_of(Cloud::Azure, container.to_string(), p, Some(account)),
                    None => Err(format!(
                        "{host:?} is not an Azure storage host; use {scheme}://container@ACCOUNT.dfs.core.windows.net/prefix"
                    )),
                },
                None => cloud_of(Cloud::Azure, host, p, None),
            }
        }
        "https" | "http" => {
            let (host, path) = split(rest);
            match azure_account(&host) {
                Some(account) => {
                    let (b, p) = split(&path);
                    cloud_of(Cloud::Azure, b, p, Some(account))
                }
                None => Err(format!("unsupported URL for staging; use a local path, file://, {REMOTE_FORMS}")),
            }
        }
        _ => Err(format!("unsupported scheme; use a local path, file://, {REMOTE_FORMS}")),
    };
    Some(r)
}

/// The account of an Azure storage host `ACCOUNT.blob.core.windows.net` (or `.dfs.`).
fn azure_account(host: &str) -> Option<String> {
    let (account, domain) = host.split_once('.')?;
    let known = ["blob.core.windows.net", "dfs.core.windows.net"];
    (known.contains(&domain.to_ascii_lowercase().as_str()) && !account.is_empty()).then(|| account.to_string())
}

/// The GDAL path of a remote source: `/vsis3/`, `/vsigs/` or `/vsiaz/` + bucket + key, and
/// the storage account the URL names (GDAL takes it from `AZURE_STORAGE_ACCOUNT`). `None`
/// for anything that is not a remote URL rasterstage knows (GDAL gets it as given).
pub fn vsi_path(url: &str) -> Option<(String, Option<String>)> {
    let r = parse(url)?.ok()?;
    let fs = match r.cloud {
        Cloud::S3 => "vsis3",
        Cloud::Gcs => "vsigs",
        Cloud::Azure => "vsiaz",
    };
    let key = if r.prefix.is_empty() { String::new() } else { format!("/{}", r.prefix) };
    Some((format!("/{fs}/{}{key}", r.bucket), r.account))
}

/// What `AZURE_STORAGE_CONNECTION_STRING` holds (the keys rasterstage uses). Deliberately
/// no `Debug`: it holds the account key.
#[derive(Default, PartialEq, Eq)]
pub struct ConnectionString {
    /// `AccountName`.
    pub account_name: Option<String>,
    /// `AccountKey`.
    pub account_key: Option<String>,
    /// `SharedAccessSignature`.
    pub sas: Option<String>,
    /// `BlobEndpoint` (Azurite, private endpoints), e.g. `http://127.0.0.1:10000/devstoreaccount1`.
    pub blob_endpoint: Option<String>,
    /// The blob endpoint made from `DefaultEndpointsProtocol`, `AccountName` and
    /// `EndpointSuffix` when `BlobEndpoint` is absent but a suffix is given (sovereign clouds).
    pub suffix_endpoint: Option<String>,
    /// `UseDevelopmentStorage=true`: the emulator at its well-known address.
    pub development_storage: bool,
}

/// The name of the variable Azure's tools read a connection string from.
pub const AZURE_CONNECTION_STRING_ENV: &str = "AZURE_STORAGE_CONNECTION_STRING";

impl ConnectionString {
    /// Parses `Key=Value;Key=Value` (values may contain `=`, as keys and SAS tokens do).
    ///
    /// # Errors
    /// A one-line message naming the variable and the malformed part's key, never a value.
    pub fn parse(text: &str) -> Result<ConnectionString, String> {
        let mut cs = ConnectionString::default();
        let (mut protocol, mut suffix) = (None, None);
        for (i, part) in text.split(';').map(str::trim).filter(|p| !p.is_empty()).enumerate() {
            let Some((key, value)) = part.split_once('=') else {
                return Err(format!(
                    "{AZURE_CONNECTION_STRING_ENV}: part {} is not Key=Value; copy the connection string from the storage account's access keys",
                    i + 1
                ));
            };
            let value = value.trim().to_string();
            match key.trim().to_ascii_lowercase().as_str() {
                "accountname" => cs.account_name = Some(value),
                "accountkey" => cs.account_key = Some(value),
                "sharedaccesssignature" => cs.sas = Some(value),
                "blobendpoint" => cs.blob_endpoint = Some(value.trim_end_matches('/').to_string()),
                "defaultendpointsprotocol" => protocol = Some(value),
                "endpointsuffix" => suffix = Some(value),
                "usedevelopmentstorage" => cs.development_storage = value.eq_ignore_ascii_case("true"),
                // QueueEndpoint, TableEndpoint, FileEndpoint...: not for blobs.
                _ => {}
            }
        }
        if cs.account_name.is_none() {
            // A SAS connection string names only the endpoint: the account is its host's first
            // label (https://ACCOUNT.blob.core.windows.net) or, path-style (Azurite), the
            // endpoint's path.
            cs.account_name = cs.blob_endpoint.as_deref().and_then(|e| {
                let rest = e.split_once("://").map_or(e, |(_, r)| r);
                let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
                azure_account(host).or_else(|| path.split('/').find(|p| !p.is_empty()).map(str::to_string))
            });
        }
        if cs.blob_endpoint.is_none() {
            if let (Some(account), Some(suffix)) = (&cs.account_name, suffix) {
                let protocol = protocol.unwrap_or_else(|| "https".into());
                cs.suffix_endpoint = Some(format!("{protocol}://{account}.blob.{suffix}"));
            }
        }
        Ok(cs)
    }

    /// The connection string of the environment, if set and not empty.
    ///
    /// # Errors
    /// As [`ConnectionString::parse`].
    pub fn from_env() -> Result<Option<ConnectionString>, String> {
        match std::env::var(AZURE_CONNECTION_STRING_ENV) {
            Ok(v) if !v.trim().is_empty() => ConnectionString::parse(&v).map(Some),
            _ => Ok(None),
        }
    }
}

/// Google's variable naming a storage emulator (`host:port` or a URL), which Google's own
/// client libraries honour; rasterstage sends unauthenticated requests there.
pub const GCS_EMULATOR_ENV: &str = "STORAGE_EMULATOR_HOST";

/// The base URL of the GCS emulator named by [`GCS_EMULATOR_ENV`], if set.
pub fn gcs_emulator() -> Option<String> {
    std::env::var(GCS_EMULATOR_ENV).ok().and_then(|h| emulator_base(&h))
}

/// The base URL of an emulator given as `host:port` or a URL (Google's libraries take both).
pub fn emulator_base(host: &str) -> Option<String> {
    let host = host.trim().trim_end_matches('/');
    if host.is_empty() {
        return None;
    }
    Some(if host.contains("://") { host.to_string() } else { format!("http://{host}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(url: &str) -> RemoteUrl {
        parse(url).unwrap().unwrap()
    }

    #[test]
    fn url_forms() {
        let r = remote("gs://b/p/q/");
        assert_eq!((r.cloud, r.bucket.as_str(), r.prefix.as_str()), (Cloud::Gcs, "b", "p/q"));
        let r = remote("s3://b");
        assert_eq!((r.cloud, r.bucket.as_str(), r.prefix.as_str()), (Cloud::S3, "b", ""));
        for url in ["az://c/p", "azure://c/p", "abfs://c/p", "abfss://c/p"] {
            let r = remote(url);
            assert_eq!((r.cloud, r.bucket.as_str(), r.prefix.as_str(), r.account), (Cloud::Azure, "c", "p", None));
        }
        let r = remote("abfss://c@acct.dfs.core.windows.net/x/y");
        assert_eq!((r.bucket.as_str(), r.prefix.as_str(), r.account.as_deref()), ("c", "x/y", Some("acct")));
        let r = remote("https://acct.blob.core.windows.net/c/x");
        assert_eq!(
            (r.cloud, r.bucket.as_str(), r.prefix.as_str(), r.account.as_deref()),
            (Cloud::Azure, "c", "x", Some("acct"))
        );
        assert!(parse("/local/path").is_none());
        assert!(parse("file:///local").is_none());
        assert!(parse("ftp://x/y").unwrap().unwrap_err().contains("unsupported scheme"));
        assert!(parse("https://example.com/x").unwrap().unwrap_err().contains("unsupported URL"));
        assert!(parse("gs:///p").unwrap().unwrap_err().contains("no bucket name"));
        assert!(parse("az://").unwrap().unwrap_err().contains("no container name"));
        assert!(parse("az://a.b/p").unwrap().unwrap_err().contains("no dots"));
    }

    #[test]
    fn gdal_paths() {
        assert_eq!(vsi_path("s3://b/k.tif"), Some(("/vsis3/b/k.tif".into(), None)));
        assert_eq!(vsi_path("gs://b/d/k.tif"), Some(("/vsigs/b/d/k.tif".into(), None)));
        assert_eq!(vsi_path("az://c/k.tif"), Some(("/vsiaz/c/k.tif".into(), None)));
        assert_eq!(
            vsi_path("https://acct.blob.core.windows.net/c/k.tif"),
            Some(("/vsiaz/c/k.tif".into(), Some("acct".into())))
        );
        assert_eq!(vsi_path("/data/k.tif"), None);
        assert_eq!(vsi_path("/vsigs/b/k.tif"), None);
    }

    #[test]
    fn connection_strings() {
        let cs = ConnectionString::parse(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5==;\
             BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;QueueEndpoint=http://q;",
        )
        .unwrap();
        assert_eq!(cs.account_name.as_deref(), Some("devstoreaccount1"));
        assert_eq!(cs.account_key.as_deref(), Some("a2V5=="));
        assert_eq!(cs.blob_endpoint.as_deref(), Some("http://127.0.0.1:10000/devstoreaccount1"));
        let cs = ConnectionString::parse(
            "AccountName=a;SharedAccessSignature=sv=2022&sig=x%3D;EndpointSuffix=core.chinacloudapi.cn",
        )
        .unwrap();
        assert_eq!(cs.sas.as_deref(), Some("sv=2022&sig=x%3D"));
        assert_eq!(cs.suffix_endpoint.as_deref(), Some("https://a.blob.core.chinacloudapi.cn"));
        assert!(ConnectionString::parse("UseDevelopmentStorage=true").unwrap().development_storage);
        let cs = ConnectionString::parse("BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=1")
            .unwrap();
        assert_eq!(cs.account_name.as_deref(), Some("acct"));
        let cs =
            ConnectionString::parse("BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;SharedAccessSignature=sv=1")
                .unwrap();
        assert_eq!(cs.account_name.as_deref(), Some("devstoreaccount1"));
        let Err(e) = ConnectionString::parse("AccountName=a;AccountKeysecret-value") else { panic!("accepted") };
        assert!(e.contains("part 2") && !e.contains("secret-value"), "{e}");
    }
}
