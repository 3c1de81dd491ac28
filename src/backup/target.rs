//! Where archives live: a local folder or S3-compatible storage (`s3://bucket/prefix`).
//!
//! S3 requests are signed with presigned URLs (`rusty-s3`, AWS Signature V4 in the query) and
//! sent with `ureq`. Both are blocking: callers run them on a blocking thread.

use super::progress::{Counting, Progress, Unit};
use anyhow::{Context, bail};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a signed request stays valid: enough for a large upload to start.
const SIGNED_FOR: Duration = Duration::from_secs(3600);

/// Connection settings of S3-compatible storage, from `FERUM_S3_*`.
#[derive(Clone)]
pub struct S3Config {
    pub endpoint: url::Url,
    pub region: String,
    pub access_key_id: String,
    secret_access_key: String,
    pub path_style: bool,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint.as_str())
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("path_style", &self.path_style)
            .finish()
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl S3Config {
    pub fn from_env() -> anyhow::Result<S3Config> {
        let endpoint = var("FERUM_S3_ENDPOINT").context(
            "FERUM_S3_ENDPOINT must be set for an s3:// location (e.g. https://s3.eu-central-1.amazonaws.com)",
        )?;
        let endpoint = url::Url::parse(endpoint.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .with_context(|| {
                format!("FERUM_S3_ENDPOINT must be an http(s) URL such as https://s3.example.com, got {endpoint:?}")
            })?;
        let path_style = match var("FERUM_S3_PATH_STYLE").as_deref().map(str::trim) {
            None | Some("true" | "1" | "yes") => true,
            Some("false" | "0" | "no") => false,
            Some(other) => bail!("FERUM_S3_PATH_STYLE must be true or false, got {other:?}"),
        };
        Ok(S3Config {
            endpoint,
            region: var("FERUM_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
            access_key_id: var("FERUM_S3_ACCESS_KEY_ID")
                .context("FERUM_S3_ACCESS_KEY_ID must be set for an s3:// location")?,
            secret_access_key: var("FERUM_S3_SECRET_ACCESS_KEY")
                .context("FERUM_S3_SECRET_ACCESS_KEY must be set for an s3:// location")?,
            path_style,
        })
    }
}

/// A bucket and a key prefix (empty or ending in `/`).
#[derive(Clone, Debug)]
pub struct S3Place {
    bucket: Bucket,
    credentials: Credentials,
    prefix: String,
}

impl S3Place {
    fn new(config: &S3Config, bucket: &str, prefix: &str) -> anyhow::Result<S3Place> {
        if bucket.is_empty() {
            bail!("an s3:// location needs a bucket: s3://BUCKET/PREFIX");
        }
        let style = if config.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            config.endpoint.clone(),
            style,
            bucket.to_owned(),
            config.region.clone(),
        )
        .map_err(|e| anyhow::anyhow!("FERUM_S3_ENDPOINT cannot address bucket {bucket}: {e}"))?;
        let prefix = prefix.trim_matches('/');
        Ok(S3Place {
            bucket,
            credentials: Credentials::new(
                config.access_key_id.clone(),
                config.secret_access_key.clone(),
            ),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        })
    }

    fn url(&self, name: &str) -> String {
        format!("s3://{}/{}{name}", self.bucket.name(), self.prefix)
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .build()
            .into()
    }

    fn check(
        what: &str,
        res: ureq::http::Response<ureq::Body>,
    ) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        let status = res.status();
        if status.is_success() {
            return Ok(res);
        }
        let body = res
            .into_body()
            .with_config()
            .limit(4096)
            .read_to_string()
            .unwrap_or_default();
        let code = body
            .split("<Code>")
            .nth(1)
            .and_then(|s| s.split("</Code>").next())
            .unwrap_or("");
        bail!("S3 {what} failed: HTTP {status} {code}")
    }

    fn put(&self, name: &str, file: &Path) -> anyhow::Result<()> {
        let key = format!("{}{name}", self.prefix);
        let url = self
            .bucket
            .put_object(Some(&self.credentials), &key)
            .sign(SIGNED_FOR);
        let f = std::fs::File::open(file)?;
        let size = f.metadata()?.len();
        let mut body = Counting {
            inner: f,
            progress: Progress::new(format!("uploading {name}"), Unit::Bytes, Some(size)),
        };
        let res = Self::agent()
            .put(url.as_str())
            .header("content-length", size.to_string())
            .send(ureq::SendBody::from_reader(&mut body))
            .with_context(|| format!("uploading to {}", self.url(name)))?;
        Self::check(&format!("upload of {}", self.url(name)), res)?;
        Ok(())
    }

    fn list(&self) -> anyhow::Result<Vec<String>> {
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
            action.with_prefix(format!("{}{}", self.prefix, crate::domain::backup::PREFIX));
            if let Some(t) = &token {
                action.with_continuation_token(t.clone());
            }
            let url = action.sign(SIGNED_FOR);
            let res = Self::agent()
                .get(url.as_str())
                .call()
                .context("listing the S3 backups")?;
            let body = Self::check("listing", res)?
                .into_body()
                .with_config()
                .limit(64 * 1024 * 1024)
                .read_to_string()?;
            let page = rusty_s3::actions::ListObjectsV2::parse_response(&body)
                .map_err(|e| anyhow::anyhow!("unreadable S3 listing: {e}"))?;
            for o in page.contents {
                if let Some(name) = o.key.strip_prefix(&self.prefix)
                    && !name.contains('/')
                {
                    names.push(name.to_owned());
                }
            }
            match page.next_continuation_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        Ok(names)
    }

    fn delete(&self, name: &str) -> anyhow::Result<()> {
        let key = format!("{}{name}", self.prefix);
        let url = self
            .bucket
            .delete_object(Some(&self.credentials), &key)
            .sign(SIGNED_FOR);
        let res = Self::agent()
            .delete(url.as_str())
            .call()
            .with_context(|| format!("deleting {}", self.url(name)))?;
        Self::check(&format!("delete of {}", self.url(name)), res)?;
        Ok(())
    }

    fn get(&self, key: &str) -> anyhow::Result<(Box<dyn Read + Send>, Option<u64>)> {
        let url = self
            .bucket
            .get_object(Some(&self.credentials), key)
            .sign(SIGNED_FOR);
        let res = Self::agent()
            .get(url.as_str())
            .call()
            .with_context(|| format!("downloading s3://{}/{key}", self.bucket.name()))?;
        let res = Self::check(
            &format!("download of s3://{}/{key}", self.bucket.name()),
            res,
        )?;
        let size = res
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        Ok((Box::new(res.into_body().into_reader()), size))
    }
}

/// Where `ferum backup` writes.
#[derive(Clone, Debug)]
pub enum Target {
    Local(PathBuf),
    S3(Box<S3Place>),
}

/// Splits `s3://bucket/rest` into bucket and rest.
fn split_s3(s: &str) -> Option<(&str, &str)> {
    let rest = s.strip_prefix("s3://")?;
    Some(rest.split_once('/').unwrap_or((rest, "")))
}

impl Target {
    /// A folder path or `s3://bucket/prefix` (S3 settings then come from the environment).
    pub fn parse(s: &str) -> anyhow::Result<Target> {
        let s = s.trim();
        if s.is_empty() {
            bail!("the backup target is empty: give a folder or s3://bucket/prefix");
        }
        match split_s3(s) {
            Some((bucket, prefix)) => Ok(Target::S3(Box::new(S3Place::new(
                &S3Config::from_env()?,
                bucket,
                prefix,
            )?))),
            None if s.contains("://") => {
                bail!("unsupported backup target {s:?}: use a folder or s3://bucket/prefix")
            }
            None => Ok(Target::Local(PathBuf::from(s))),
        }
    }

    /// Where an archive called `name` is, as a user would type it.
    pub fn location(&self, name: &str) -> String {
        match self {
            Target::Local(dir) => dir.join(name).display().to_string(),
            Target::S3(p) => p.url(name),
        }
    }

    /// Puts the finished archive `file` in place as `name`. A local target's temp file is
    /// already in the folder and is renamed; an S3 one is uploaded.
    pub fn store(&self, file: tempfile::NamedTempFile, name: &str) -> anyhow::Result<String> {
        match self {
            Target::Local(dir) => {
                let dest = dir.join(name);
                file.persist_noclobber(&dest).map_err(|e| {
                    anyhow::anyhow!("cannot create {}: {}", dest.display(), e.error)
                })?;
                // The rename is durable once the folder is synced.
                if let Ok(d) = std::fs::File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            Target::S3(p) => p.put(name, file.path())?,
        }
        Ok(self.location(name))
    }

    /// Names of the archives (and other `ferum-…` files) in the target.
    pub fn list(&self) -> anyhow::Result<Vec<String>> {
        match self {
            Target::Local(dir) => {
                let mut names = Vec::new();
                for e in std::fs::read_dir(dir)
                    .with_context(|| format!("cannot list {}", dir.display()))?
                {
                    let e = e?;
                    if e.file_type()?.is_file()
                        && let Some(n) = e.file_name().to_str()
                    {
                        names.push(n.to_owned());
                    }
                }
                names.sort();
                Ok(names)
            }
            Target::S3(p) => p.list(),
        }
    }

    pub fn delete(&self, name: &str) -> anyhow::Result<()> {
        match self {
            Target::Local(dir) => std::fs::remove_file(dir.join(name))
                .with_context(|| format!("cannot delete {}", dir.join(name).display())),
            Target::S3(p) => p.delete(name),
        }
    }
}

/// An archive to read: a file path or `s3://bucket/key`.
pub enum Location {
    Local(PathBuf),
    S3 { place: Box<S3Place>, key: String },
}

impl Location {
    pub fn parse(s: &str) -> anyhow::Result<Location> {
        let s = s.trim();
        match split_s3(s) {
            Some((bucket, key)) => {
                if key.is_empty() || key.ends_with('/') {
                    bail!("{s} names no archive: give s3://bucket/path/ferum-….tar.gz");
                }
                Ok(Location::S3 {
                    place: Box::new(S3Place::new(&S3Config::from_env()?, bucket, "")?),
                    key: key.to_owned(),
                })
            }
            None => Ok(Location::Local(PathBuf::from(s))),
        }
    }

    /// Opens the archive for reading; the size when known.
    pub fn open(&self) -> anyhow::Result<(Box<dyn Read + Send>, Option<u64>)> {
        match self {
            Location::Local(p) => {
                let f = std::fs::File::open(p)
                    .with_context(|| format!("cannot open the archive {}", p.display()))?;
                let size = f.metadata()?.len();
                Ok((Box::new(std::io::BufReader::new(f)), Some(size)))
            }
            Location::S3 { place, key } => place.get(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert!(matches!(
            Target::parse("/var/backups/ferum").unwrap(),
            Target::Local(_)
        ));
        assert!(Target::parse("ftp://x/y").is_err());
        assert!(Target::parse(" ").is_err());
        assert_eq!(split_s3("s3://b/p/q"), Some(("b", "p/q")));
        assert_eq!(split_s3("s3://b"), Some(("b", "")));
        assert_eq!(split_s3("/tmp/x"), None);
    }
}
