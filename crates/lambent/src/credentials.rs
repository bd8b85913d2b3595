//! The CLI's credentials: where it finds an access key, and how it signs a request with it (AWS
//! Signature Version 4, service `lambda`, like the AWS CLI does).

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The name of the credentials file in the user's config dir (`~/.config/lambent/credentials`).
const CREDENTIALS_FILE: &str = "credentials";

/// An access key and the region it signs for.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret.
    pub secret_access_key: String,
    /// The region requests are signed for.
    pub region: String,
    /// Where the key came from, for messages.
    pub source: String,
}

/// `~/.config/lambent/credentials`.
pub fn profile_file() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("lambent").join(CREDENTIALS_FILE))
}

/// The data directory `lambent serve` uses by default, whose admin key file a local user may read.
fn default_admin_file() -> Option<PathBuf> {
    dirs::data_dir().map(|d| {
        d.join("lambent")
            .join(lambent_control::auth::ADMIN_KEY_FILE)
    })
}

/// Reads `[profile]` from an INI-style credentials file (lambent's, or the AWS CLI's format:
/// `aws_access_key_id`, `aws_secret_access_key`, `region`).
fn read_profile(
    path: &Path,
    profile: &str,
) -> anyhow::Result<Option<(String, String, Option<String>)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let (mut id, mut secret, mut region) = (None, None, None);
    let mut in_profile = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let section = section.trim();
            in_profile = section == profile || section == format!("profile {profile}");
            continue;
        }
        if !in_profile {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().to_owned();
        match k.trim().trim_start_matches("aws_") {
            "access_key_id" => id = Some(v),
            "secret_access_key" => secret = Some(v),
            "region" => region = Some(v),
            _ => {}
        }
    }
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Some((id, secret, region))),
        (None, None) => Ok(None),
        _ => anyhow::bail!(
            "profile [{profile}] in {} needs both access_key_id and secret_access_key",
            path.display()
        ),
    }
}

/// Finds credentials: `LAMBENT_ACCESS_KEY_ID` and `LAMBENT_SECRET_ACCESS_KEY`; else the profile
/// (`--profile`, `LAMBENT_PROFILE`, or `default`) in `~/.config/lambent/credentials`; else the
/// admin key a local `lambent serve` wrote into its default data directory, when readable.
pub fn load(profile: &str) -> anyhow::Result<Option<Credentials>> {
    let env = |n| std::env::var(n).ok().filter(|v: &String| !v.is_empty());
    let region_env = env("LAMBENT_REGION");
    let default_region = || lambent_core::limits::DEFAULT_REGION.to_owned();
    match (
        env("LAMBENT_ACCESS_KEY_ID"),
        env("LAMBENT_SECRET_ACCESS_KEY"),
    ) {
        (Some(id), Some(secret)) => {
            return Ok(Some(Credentials {
                access_key_id: id,
                secret_access_key: secret,
                region: region_env.unwrap_or_else(default_region),
                source: "LAMBENT_ACCESS_KEY_ID".into(),
            }));
        }
        (None, None) => {}
        _ => anyhow::bail!(
            "set both LAMBENT_ACCESS_KEY_ID and LAMBENT_SECRET_ACCESS_KEY, or neither"
        ),
    }
    let candidates = [
        profile_file(),
        (profile == "default").then(default_admin_file).flatten(),
    ];
    for path in candidates.into_iter().flatten() {
        if let Some((id, secret, region)) = read_profile(&path, profile)? {
            return Ok(Some(Credentials {
                access_key_id: id,
                secret_access_key: secret,
                region: region_env.or(region).unwrap_or_else(default_region),
                source: path.display().to_string(),
            }));
        }
    }
    Ok(None)
}

/// Signs `request` in place. Requests with a streamed body must carry `x-amz-content-sha256`.
pub fn sign(request: &mut reqwest::Request, creds: &Credentials) -> anyhow::Result<()> {
    let payload_hash = match request.headers().get("x-amz-content-sha256") {
        Some(h) => h
            .to_str()
            .context("x-amz-content-sha256 is not text")?
            .to_owned(),
        None => {
            let body = request.body().map_or(Some(&[][..]), |b| b.as_bytes());
            let body = body.context("a streamed body needs x-amz-content-sha256 to be signed")?;
            lambent_core::sigv4::sha256_hex(body)
        }
    };
    let url = request.url().clone();
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => anyhow::bail!("the endpoint {url} has no host"),
    };
    let mut headers: Vec<(String, String)> = vec![("host".into(), host)];
    if let Some(ct) = request.headers().get(reqwest::header::CONTENT_TYPE) {
        headers.push((
            "content-type".into(),
            ct.to_str().context("content type")?.to_owned(),
        ));
    }
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let parts = lambent_core::sigv4::RequestParts {
        method: request.method().as_str(),
        raw_path: url.path(),
        raw_query: url.query(),
        headers: &header_refs,
        payload_sha256_hex: &payload_hash,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let added = lambent_core::sigv4::sign(
        &parts,
        &creds.access_key_id,
        &creds.secret_access_key,
        &creds.region,
        lambent_control::auth::SERVICE,
        now,
    );
    for (k, v) in added {
        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())?;
        let value = reqwest::header::HeaderValue::from_str(&v)?;
        request.headers_mut().insert(name, value);
    }
    Ok(())
}
