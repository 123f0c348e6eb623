//! AWS shared config and credentials files (`~/.aws/credentials`, `~/.aws/config`) for the
//! staging store, which `object_store` does not read.
//!
//! The AWS default chain puts environment variables first, then the profile named by
//! `AWS_PROFILE` (or `default`) in the shared files, then web identity, container and
//! instance credentials. `object_store` implements all but the files; this module fills in
//! what a profile gives (static keys, session token, region, `endpoint_url`) wherever the
//! environment does not already say it, so `AWS_PROFILE=staging rasterstage ...` works as it
//! does with the AWS CLI. Profiles that only name a role, SSO or a credential process are not
//! resolved here: an explicitly chosen one is refused with what to run instead.

use std::collections::HashMap;
use std::path::PathBuf;

/// What a profile contributes (only the values the environment lacks).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ProfileSettings {
    /// `aws_access_key_id`.
    pub(crate) access_key_id: Option<String>,
    /// `aws_secret_access_key`.
    pub(crate) secret_access_key: Option<String>,
    /// `aws_session_token`.
    pub(crate) session_token: Option<String>,
    /// `region`.
    pub(crate) region: Option<String>,
    /// `endpoint_url` (S3-compatible servers).
    pub(crate) endpoint_url: Option<String>,
}

impl std::fmt::Display for ProfileSettings {
    /// Which settings are present, never their values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = [
            ("keys", self.access_key_id.is_some()),
            ("session token", self.session_token.is_some()),
            ("region", self.region.is_some()),
            ("endpoint_url", self.endpoint_url.is_some()),
        ];
        let present: Vec<&str> = names.iter().filter(|(_, p)| *p).map(|(n, _)| *n).collect();
        write!(f, "{}", present.join(", "))
    }
}

/// Reads the profile the environment selects, from the files the environment names, with
/// the variables looked up through `lookup` (`HOME`, `AWS_PROFILE`, the file variables and
/// the ones that override a profile).
///
/// # Errors
/// A one-line message when `AWS_PROFILE` names a profile that is not in either file, or one
/// whose credentials come from something this module does not run (SSO, role, process).
pub(crate) fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<ProfileSettings, String> {
    let var = |k: &str| lookup(k).filter(|v| !v.is_empty());
    let home = var("HOME").map(PathBuf::from);
    let file = |env: &str, name: &str| {
        var(env).map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
    };
    let chosen = var("AWS_PROFILE").or_else(|| var("AWS_DEFAULT_PROFILE"));
    let name = chosen.clone().unwrap_or_else(|| "default".to_string());
    let read = |p: Option<PathBuf>| p.and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
    let creds = sections(&read(file("AWS_SHARED_CREDENTIALS_FILE", "credentials")));
    let config = sections(&read(file("AWS_CONFIG_FILE", "config")));
    // The config file names profiles `[profile NAME]`, except `[default]`.
    let in_config = config.get(&format!("profile {name}")).or_else(|| config.get(&name).filter(|_| name == "default"));
    let in_creds = creds.get(&name);
    if in_config.is_none() && in_creds.is_none() {
        return match chosen {
            Some(p) => Err(format!(
                "AWS_PROFILE={p}: no such profile in the AWS credentials or config file (AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE, default ~/.aws/); check the name or unset AWS_PROFILE"
            )),
            None => Ok(ProfileSettings::default()),
        };
    }
    let get = |k: &str| in_creds.and_then(|s| s.get(k)).or_else(|| in_config.and_then(|s| s.get(k))).cloned();
    let mut out = ProfileSettings {
        access_key_id: get("aws_access_key_id"),
        secret_access_key: get("aws_secret_access_key"),
        session_token: get("aws_session_token"),
        region: get("region"),
        endpoint_url: in_config.and_then(|s| s.get("endpoint_url")).cloned(),
    };
    let indirect = ["sso_session", "sso_start_url", "role_arn", "credential_process", "source_profile"];
    let how = indirect.iter().find(|k| get(k).is_some());
    if let (None, Some(how), Some(p)) = (&out.access_key_id, how, chosen) {
        return Err(format!(
            "AWS_PROFILE={p}: its credentials come from {how}, which rasterstage does not resolve; export them first: eval \"$(aws configure export-credentials --profile {p} --format env)\""
        ));
    }
    // The environment wins, setting by setting.
    if var("AWS_ACCESS_KEY_ID").is_some() {
        (out.access_key_id, out.secret_access_key, out.session_token) = (None, None, None);
    }
    if var("AWS_REGION").is_some() || var("AWS_DEFAULT_REGION").is_some() {
        out.region = None;
    }
    if var("AWS_ENDPOINT_URL").is_some() || var("AWS_ENDPOINT").is_some() {
        out.endpoint_url = None;
    }
    Ok(out)
}

/// INI sections: `[name]` then `key = value` lines; `#`/`;` comments; keys lowercased.
fn sections(text: &str) -> HashMap<String, HashMap<String, String>> {
    let mut all: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            all.entry(name.clone()).or_default();
            current = Some(name);
        } else if let (Some(sec), Some((k, v))) = (&current, line.split_once('=')) {
            all.get_mut(sec).expect("section").insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_profiles_of_both_files() {
        let creds = sections(
            "[default]\naws_access_key_id = A\n\n# c\n[stage]\naws_access_key_id=B\naws_secret_access_key = S\n",
        );
        assert_eq!(creds["stage"]["aws_access_key_id"], "B");
        assert_eq!(creds["default"]["aws_access_key_id"], "A");
        let config =
            sections("[profile  stage]\nregion = eu-west-1\nendpoint_url = http://x:9000\n[default]\nregion=us-east-1");
        assert_eq!(config["profile stage"]["endpoint_url"], "http://x:9000");
        assert_eq!(config["default"]["region"], "us-east-1");
    }

    #[test]
    fn profile_from_given_variables() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        std::fs::write(&creds, "[stage]\naws_access_key_id = B\naws_secret_access_key = S\n").unwrap();
        let vars = |extra: &'static [(&'static str, &'static str)]| {
            let creds = creds.to_string_lossy().into_owned();
            move |k: &str| match k {
                "AWS_PROFILE" => Some("stage".to_string()),
                "AWS_SHARED_CREDENTIALS_FILE" => Some(creds.clone()),
                _ => extra.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()),
            }
        };
        let p = from_vars(vars(&[])).unwrap();
        assert_eq!((p.access_key_id.as_deref(), p.secret_access_key.as_deref()), (Some("B"), Some("S")));
        // The environment wins over the profile.
        assert_eq!(from_vars(vars(&[("AWS_ACCESS_KEY_ID", "A")])).unwrap().access_key_id, None);
        let e = from_vars(|k| (k == "AWS_PROFILE").then(|| "nope".to_string())).unwrap_err();
        assert!(e.contains("AWS_PROFILE=nope"), "{e}");
    }

    #[test]
    fn display_names_settings_not_values() {
        let s = ProfileSettings {
            access_key_id: Some("AKIA".into()),
            secret_access_key: Some("SECRET".into()),
            region: Some("r".into()),
            ..Default::default()
        };
        assert_eq!(s.to_string(), "keys, region");
    }
}
