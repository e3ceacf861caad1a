//! The store URL: a plain path or `file:///abs/path` (the embedded default) or
//! `s3://BUCKET[/PREFIX]`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    File(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Default for StoreUrl {
    fn default() -> Self {
        StoreUrl::File(PathBuf::from("./airlock-data"))
    }
}

impl FromStr for StoreUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("store URL is empty: give a directory path, file:///abs/path or s3://bucket[/prefix]".into());
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let bucket_ok = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if !bucket_ok {
                return Err(format!(
                    "`{s}`: S3 bucket name `{bucket}` is not valid (3-63 characters of a-z, 0-9, '-', '.')"
                ));
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|seg| seg == ".." || seg == ".") {
                return Err(format!(
                    "`{s}`: the S3 prefix may not contain `.` or `..` segments"
                ));
            }
            return Ok(StoreUrl::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        if let Some(path) = s.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "`{s}`: a file:// URL needs an absolute path, as in file:///srv/airlock"
                ));
            }
            return Ok(StoreUrl::File(PathBuf::from(path)));
        }
        if s.contains("://") {
            return Err(format!("`{s}`: unknown store scheme; use a directory path, file:///abs/path or s3://bucket[/prefix]"));
        }
        Ok(StoreUrl::File(PathBuf::from(s)))
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::File(p) => write!(f, "{}", p.display()),
            StoreUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            StoreUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_store_urls() {
        assert_eq!("./data".parse(), Ok(StoreUrl::File("./data".into())));
        assert_eq!("file:///srv/a".parse(), Ok(StoreUrl::File("/srv/a".into())));
        assert_eq!(
            "s3://my-bucket/pre/fix/".parse(),
            Ok(StoreUrl::S3 {
                bucket: "my-bucket".into(),
                prefix: "pre/fix".into()
            })
        );
        assert_eq!(
            "s3://bkt".parse(),
            Ok(StoreUrl::S3 {
                bucket: "bkt".into(),
                prefix: "".into()
            })
        );
        assert!("s3://Bad_Bucket".parse::<StoreUrl>().is_err());
        assert!("file://relative".parse::<StoreUrl>().is_err());
        assert!("gs://x".parse::<StoreUrl>().is_err());
        assert!("s3://bkt/../x".parse::<StoreUrl>().is_err());
    }
}
