//! One configuration, one precedence order:
//! command-line flags > environment (`AIRLOCK_*`) > config file (`--config`) > defaults.
//!
//! clap resolves flag-over-environment for each option (every flag names its variable),
//! then `Config::resolve` fills what is still unset from the file, then from defaults,
//! and validates everything once, so a bad value fails at start-up naming its key.

use crate::auth::TokenConfig;
use crate::connections::Limits;
use crate::hf::HfSettings;
use crate::oci::OciSettings;
use crate::pypi::PypiSettings;
use crate::s3api::S3ApiSettings;
pub use crate::store::CacheSettings;
use crate::store::{S3Settings, StoreUrl};
use crate::tls::TlsFiles;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Options every subcommand takes (flag or `AIRLOCK_*` variable).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct GlobalArgs {
    /// Config file (TOML); see config/airlock.toml for every key.
    #[arg(long, env = "AIRLOCK_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Object store: a directory, file:///abs/path or s3://BUCKET[/PREFIX]. [default: ./airlock-data]
    #[arg(long, env = "AIRLOCK_STORE", global = true, value_name = "URL")]
    pub store: Option<String>,
    /// S3 endpoint URL for MinIO, Ceph RGW, Garage (else AWS_ENDPOINT_URL, else AWS).
    #[arg(long, env = "AIRLOCK_S3_ENDPOINT", global = true, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// S3 region (else AWS_REGION, else us-east-1).
    #[arg(long, env = "AIRLOCK_S3_REGION", global = true)]
    pub s3_region: Option<String>,
    /// Path-style S3 addressing (default: on when an endpoint is set).
    #[arg(long, env = "AIRLOCK_S3_PATH_STYLE", global = true)]
    pub s3_path_style: Option<bool>,
    /// Redirect blob downloads to presigned S3 URLs (clients must reach the S3 endpoint).
    #[arg(long, env = "AIRLOCK_S3_REDIRECT_DOWNLOADS", global = true)]
    pub s3_redirect_downloads: Option<bool>,
    /// Log format: text or json.
    #[arg(long, env = "AIRLOCK_LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
}

/// Options of `airlock serve`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on. [default: 127.0.0.1:8080]
    #[arg(long, env = "AIRLOCK_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Absolute base URL clients reach this service at, used in URLs Airlock writes
    /// into responses (pagination links, upload locations).
    #[arg(long, env = "AIRLOCK_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Token with every permission (read, write, admin) on all protocols.
    #[arg(long, env = "AIRLOCK_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Allow reads without a token (true/false). [default: true]
    #[arg(long, env = "AIRLOCK_ANONYMOUS_READ")]
    pub anonymous_read: Option<bool>,
    /// How long in-flight requests may finish after SIGTERM/SIGINT, e.g. 30s. [default: 30s]
    #[arg(long, env = "AIRLOCK_SHUTDOWN_GRACE", value_name = "DURATION")]
    pub shutdown_grace: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key.
    /// Reloaded when the file changes.
    #[arg(long, env = "AIRLOCK_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, RSA or EC) of --tls-cert.
    #[arg(long, env = "AIRLOCK_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Also serve the S3 API (a read-only view of the Hub repositories) on this address,
    /// e.g. 127.0.0.1:9000. [default: off]
    #[arg(long, env = "AIRLOCK_S3API_LISTEN", value_name = "ADDR")]
    pub s3api_listen: Option<String>,
    /// The URL S3 clients reach the S3 API at (their endpoint URL), shown in the catalog.
    #[arg(long, env = "AIRLOCK_S3API_PUBLIC_URL", value_name = "URL")]
    pub s3api_public_url: Option<String>,
}

/// The config file, as written. Every key is optional; unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    store: Option<String>,
    public_url: Option<String>,
    admin_token: Option<String>,
    anonymous_read: Option<bool>,
    log_format: Option<String>,
    shutdown_grace: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    s3: S3Settings,
    #[serde(default)]
    cache: FileCache,
    #[serde(default)]
    http: FileHttp,
    #[serde(default)]
    tokens: Vec<TokenConfig>,
    #[serde(default)]
    pypi: PypiSettings,
    #[serde(default)]
    oci: OciSettings,
    #[serde(default)]
    hf: HfSettings,
    #[serde(default)]
    s3api: S3ApiSettings,
    #[serde(default)]
    bundle: crate::bundle::BundleSettings,
    #[serde(default)]
    model_images: crate::modelimage::ModelImageSettings,
    #[serde(default)]
    gc: crate::gc::GcSettings,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCache {
    metadata_bytes: Option<u64>,
    mutable_ttl: Option<String>,
    blob_entries: Option<u64>,
    small_blob_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHttp {
    header_timeout: Option<String>,
    idle_timeout: Option<String>,
    body_stall_timeout: Option<String>,
    max_connections: Option<usize>,
}

impl FileHttp {
    fn resolve(&self) -> Result<Limits, ConfigError> {
        let defaults = Limits::default();
        let duration = |key: &str, text: &Option<String>, default: Duration| match text {
            None => Ok(default),
            Some(text) => {
                let d = parse_duration(key, text)?;
                if d.is_zero() {
                    return Err(invalid(
                        key,
                        "0 would refuse every client",
                        "give a positive duration such as 30s",
                    ));
                }
                Ok(d)
            }
        };
        let max_connections = self.max_connections.unwrap_or(defaults.max_connections);
        if max_connections == 0 {
            return Err(invalid(
                "http.max_connections",
                "0 would serve nobody",
                "give a positive number such as 10000 (and an open-file limit above it)",
            ));
        }
        Ok(Limits {
            header_timeout: duration(
                "http.header_timeout",
                &self.header_timeout,
                defaults.header_timeout,
            )?,
            idle_timeout: duration(
                "http.idle_timeout",
                &self.idle_timeout,
                defaults.idle_timeout,
            )?,
            body_stall_timeout: duration(
                "http.body_stall_timeout",
                &self.body_stall_timeout,
                defaults.body_stall_timeout,
            )?,
            max_connections,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub store: StoreUrl,
    pub s3: S3Settings,
    pub public_url: Option<url::Url>,
    pub admin_token: Option<String>,
    pub anonymous_read: bool,
    pub tokens: Vec<TokenConfig>,
    pub log_format: LogFormat,
    pub shutdown_grace: Duration,
    /// Timeouts and the connection bound for slow, idle and numerous clients.
    pub http: Limits,
    /// HTTPS: the certificate and key files (none: plain HTTP).
    pub tls: Option<TlsFiles>,
    pub cache: CacheSettings,
    pub pypi: PypiSettings,
    pub oci: OciSettings,
    pub hf: HfSettings,
    /// The S3 API's listener (none: not served) and settings, `listen` and `public_url`
    /// already resolved from flags and the file.
    pub s3api_listen: Option<SocketAddr>,
    pub s3api: S3ApiSettings,
    pub bundle: crate::bundle::BundleSettings,
    pub model_images: crate::modelimage::ModelImageSettings,
    /// `airlock gc`'s defaults and the collections `serve` runs.
    pub gc: crate::gc::GcSettings,
}

impl Config {
    /// The scheme clients reach this process with directly: `https` when it serves TLS.
    /// URLs built from a request's `Host` (without `public_url`) use it.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// A configuration error: which key, what is wrong, how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

fn invalid(key: &str, problem: impl std::fmt::Display, fix: &str) -> ConfigError {
    ConfigError(format!("`{key}`: {problem}; {fix}"))
}

impl Config {
    /// Resolves flags and environment (already merged by clap) over the config file
    /// over defaults. `serve` is empty for subcommands other than `serve`.
    pub fn resolve(global: &GlobalArgs, serve: &ServeArgs) -> Result<Config, ConfigError> {
        let file = match &global.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };

        let listen_text = pick(&serve.listen, &file.listen).unwrap_or(DEFAULT_LISTEN.into());
        let listen = listen_text.parse().map_err(|_| {
            invalid(
                "listen",
                format!("`{listen_text}` is not an address"),
                "use HOST:PORT such as 127.0.0.1:8080 or 0.0.0.0:8080 (--listen, AIRLOCK_LISTEN)",
            )
        })?;

        let store = match pick(&global.store, &file.store) {
            Some(s) => s.parse().map_err(|e| {
                invalid(
                    "store",
                    e,
                    "set --store, AIRLOCK_STORE or `store` in the config file",
                )
            })?,
            None => StoreUrl::default(),
        };

        let mut s3 = file.s3;
        s3.endpoint = global.s3_endpoint.clone().or(s3.endpoint);
        s3.region = global.s3_region.clone().or(s3.region);
        s3.path_style = global.s3_path_style.or(s3.path_style);
        s3.redirect_downloads = global
            .s3_redirect_downloads
            .unwrap_or(s3.redirect_downloads);
        for (key, value) in [
            ("s3.endpoint", &s3.endpoint),
            ("s3.redirect_endpoint", &s3.redirect_endpoint),
        ] {
            let Some(endpoint) = value else { continue };
            let ok = url::Url::parse(endpoint)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(invalid(
                    key,
                    format!("`{endpoint}` is not an http(s) URL"),
                    "use a URL such as http://127.0.0.1:3900",
                ));
            }
        }

        let public_url = pick(&serve.public_url, &file.public_url)
            .map(|u| parse_public_url(&u))
            .transpose()?;

        let admin_token = pick(&serve.admin_token, &file.admin_token);
        if let Some(token) = &admin_token {
            crate::auth::check_secret_strength(token).map_err(|problem| {
                invalid("admin_token", problem, "set --admin-token or AIRLOCK_ADMIN_TOKEN to a longer random string (e.g. `openssl rand -hex 32`)")
            })?;
        }

        let log_format = match pick(&global.log_format, &file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "log_format",
                    format!("`{other}` is not a log format"),
                    "use `text` or `json` (--log-format, AIRLOCK_LOG_FORMAT)",
                ))
            }
        };

        let shutdown_grace = match pick(&serve.shutdown_grace, &file.shutdown_grace) {
            Some(text) => parse_duration("shutdown_grace", &text)?,
            None => Duration::from_secs(30),
        };

        let http = file.http.resolve()?;

        let tls = match (
            serve.tls_cert.clone().or(file.tls_cert),
            serve.tls_key.clone().or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "tls_key",
                    "`tls_cert` is set but `tls_key` is not",
                    "give both (--tls-cert and --tls-key, AIRLOCK_TLS_CERT and AIRLOCK_TLS_KEY) or neither",
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "tls_cert",
                    "`tls_key` is set but `tls_cert` is not",
                    "give both (--tls-cert and --tls-key, AIRLOCK_TLS_CERT and AIRLOCK_TLS_KEY) or neither",
                ))
            }
        };

        let defaults = CacheSettings::default();
        let cache = CacheSettings {
            metadata_bytes: file.cache.metadata_bytes.unwrap_or(defaults.metadata_bytes),
            mutable_ttl: match &file.cache.mutable_ttl {
                Some(text) => parse_duration("cache.mutable_ttl", text)?,
                None => defaults.mutable_ttl,
            },
            blob_entries: file.cache.blob_entries.unwrap_or(defaults.blob_entries),
            small_blob_bytes: file
                .cache
                .small_blob_bytes
                .unwrap_or(defaults.small_blob_bytes),
        };

        let tokens = file.tokens;
        crate::auth::validate_tokens(&tokens).map_err(ConfigError)?;
        file.pypi.validate().map_err(ConfigError)?;
        file.oci.validate().map_err(ConfigError)?;
        file.hf.validate().map_err(ConfigError)?;
        let (s3api_listen, s3api) = resolve_s3api(serve, file.s3api)?;
        file.model_images.validate().map_err(ConfigError)?;
        for rule in &file.gc.retention {
            rule.validate().map_err(ConfigError)?;
        }
        for rule in &file.gc.python_retention {
            rule.validate().map_err(ConfigError)?;
        }
        for rule in &file.gc.hub_retention {
            rule.validate().map_err(ConfigError)?;
        }

        // Only a protocol that can fetch a copy again may have its copies evicted (a bundle
        // may bring pull-through's documents to a store without an upstream).
        let evictable = crate::gc::Evictable {
            oci: file.oci.upstream.is_some(),
            pypi: file.pypi.upstream.is_some(),
            hf: file.hf.upstream.is_some(),
        };
        Ok(Config {
            listen,
            store,
            s3,
            public_url,
            admin_token,
            anonymous_read: serve.anonymous_read.or(file.anonymous_read).unwrap_or(true),
            tokens,
            log_format,
            shutdown_grace,
            http,
            tls,
            cache,
            pypi: file.pypi,
            oci: file.oci,
            hf: file.hf,
            s3api_listen,
            s3api,
            bundle: file.bundle,
            model_images: file.model_images,
            gc: crate::gc::GcSettings {
                evictable,
                ..file.gc
            },
        })
    }
}

/// Flag/environment first, then the file.
fn pick(cli: &Option<String>, file: &Option<String>) -> Option<String> {
    cli.clone().or_else(|| file.clone())
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "cannot read config file {}: {e}; check --config / AIRLOCK_CONFIG",
            path.display()
        ))
    })?;
    toml::from_str(&text).map_err(|e| {
        // toml's message names the key and shows the line; keep it on one line.
        let detail = e.message().to_string();
        let location = e
            .span()
            .map(|span| {
                let line = text[..span.start].matches('\n').count() + 1;
                format!(" (line {line})")
            })
            .unwrap_or_default();
        ConfigError(format!(
            "config file {}{location}: {detail}; see config/airlock.toml for every key and its format",
            path.display()
        ))
    })
}

fn parse_duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text).map_err(|e| {
        invalid(
            key,
            format!("`{text}` is not a duration ({e})"),
            "write it like 30s, 500ms or 5m",
        )
    })
}

fn parse_public_url(text: &str) -> Result<url::Url, ConfigError> {
    let fix = "give the absolute URL clients use, e.g. https://airlock.example.internal (--public-url, AIRLOCK_PUBLIC_URL)";
    parse_url("public_url", text, fix)
}

fn parse_url(key: &str, text: &str, fix: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(text).map_err(|e| invalid(key, format!("`{text}`: {e}"), fix))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(key, format!("`{text}` is not an http(s) URL"), fix));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            key,
            format!("`{text}` has a query or fragment"),
            fix,
        ));
    }
    Ok(url)
}

/// `[s3api]`: its listen address and public URL from flags over the file.
fn resolve_s3api(
    serve: &ServeArgs,
    mut file: S3ApiSettings,
) -> Result<(Option<SocketAddr>, S3ApiSettings), ConfigError> {
    file.listen = pick(&serve.s3api_listen, &file.listen);
    file.public_url = pick(&serve.s3api_public_url, &file.public_url);
    let listen = file
        .listen
        .as_deref()
        .map(|text| {
            text.parse().map_err(|_| {
                invalid(
                    "s3api.listen",
                    format!("`{text}` is not an address"),
                    "use HOST:PORT such as 127.0.0.1:9000 (--s3api-listen, AIRLOCK_S3API_LISTEN)",
                )
            })
        })
        .transpose()?;
    if let Some(text) = &file.public_url {
        let fix = "give the endpoint URL S3 clients use, e.g. https://s3.airlock.example.internal (--s3api-public-url, AIRLOCK_S3API_PUBLIC_URL)";
        parse_url("s3api.public_url", text, fix)?;
    }
    if file.region.is_empty()
        || !file
            .region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(invalid(
            "s3api.region",
            format!("`{}` is not a region name", file.region),
            "use a name such as us-east-1",
        ));
    }
    Ok((listen, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::NamedTempFile, GlobalArgs) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        let global = GlobalArgs {
            config: Some(f.path().to_path_buf()),
            ..Default::default()
        };
        (f, global)
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let global = GlobalArgs {
            config: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/config/airlock.toml").into()),
            ..Default::default()
        };
        let c = Config::resolve(&global, &ServeArgs::default()).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.cache.mutable_ttl, Duration::from_secs(5));
        assert_eq!(c.http, Limits::default());
    }

    #[test]
    fn http_limits_from_the_file_and_refused_when_zero() {
        let (_f, global) = file("[http]\nheader_timeout = \"2s\"\nmax_connections = 50\n");
        let c = Config::resolve(&global, &ServeArgs::default()).unwrap();
        assert_eq!(c.http.header_timeout, Duration::from_secs(2));
        assert_eq!(c.http.max_connections, 50);
        assert_eq!(c.http.idle_timeout, Limits::default().idle_timeout);
        for (text, key) in [
            ("body_stall_timeout = \"0s\"", "http.body_stall_timeout"),
            ("idle_timeout = \"soon\"", "http.idle_timeout"),
            ("max_connections = 0", "http.max_connections"),
        ] {
            let (_f, global) = file(&format!("[http]\n{text}\n"));
            let e = Config::resolve(&global, &ServeArgs::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn defaults_without_anything() {
        let c = Config::resolve(&GlobalArgs::default(), &ServeArgs::default()).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.store, StoreUrl::File("./airlock-data".into()));
        assert!(c.anonymous_read);
        assert_eq!(c.shutdown_grace, Duration::from_secs(30));
    }

    #[test]
    fn flags_beat_file_and_file_beats_defaults() {
        let (_f, mut global) = file(
            "listen = \"127.0.0.1:9000\"\nstore = \"s3://from-file\"\nanonymous_read = false\n[cache]\nmutable_ttl = \"2s\"\n",
        );
        let c = Config::resolve(&global, &ServeArgs::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9000");
        assert!(!c.anonymous_read);
        assert_eq!(c.cache.mutable_ttl, Duration::from_secs(2));
        global.store = Some("/srv/flag".into());
        let serve = ServeArgs {
            listen: Some("127.0.0.1:9001".into()),
            ..Default::default()
        };
        let c = Config::resolve(&global, &serve).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9001");
        assert_eq!(c.store, StoreUrl::File("/srv/flag".into()));
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let serve = ServeArgs {
            listen: Some("nonsense".into()),
            ..Default::default()
        };
        let e = Config::resolve(&GlobalArgs::default(), &serve)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`listen`") && e.contains("AIRLOCK_LISTEN"),
            "{e}"
        );

        let (_f, global) = file("listne = \"x\"\n");
        let e = Config::resolve(&global, &ServeArgs::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("listne") && e.contains("line 1"), "{e}");

        let (_f, global) = file("[cache]\nmutable_ttl = \"soon\"\n");
        let e = Config::resolve(&global, &ServeArgs::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("cache.mutable_ttl") && e.contains("30s"), "{e}");

        for (text, key) in [
            ("[oci]\nupstream = \"ftp://x\"\n", "`oci.upstream`"),
            ("[pypi]\nupstream = \"not a url\"\n", "`pypi.upstream`"),
            (
                "[hf]\nupstream_token_env = \"AIRLOCK_TEST_UNSET_VAR\"\n",
                "`hf.upstream_token_env`",
            ),
            (
                "[oci]\nupstream_registry = \"docker.io/x\"\n",
                "`oci.upstream_registry`",
            ),
        ] {
            let (_f, global) = file(text);
            let e = Config::resolve(&global, &ServeArgs::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{e}");
        }
        let (_f, global) = file("[oci]\nupstream_ttl = \"soon\"\n");
        let e = Config::resolve(&global, &ServeArgs::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("upstream_ttl") || e.contains("line 2"), "{e}");

        let serve = ServeArgs {
            public_url: Some("ftp://x".into()),
            ..Default::default()
        };
        let e = Config::resolve(&GlobalArgs::default(), &serve)
            .unwrap_err()
            .to_string();
        assert!(e.contains("public_url"), "{e}");
        assert!(!e.contains('\n'));

        let serve = ServeArgs {
            tls_cert: Some("/etc/airlock/tls.crt".into()),
            ..Default::default()
        };
        let e = Config::resolve(&GlobalArgs::default(), &serve)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`tls_key`") && e.contains("--tls-key"), "{e}");
        let (_f, global) = file("tls_key = \"/k.pem\"\n");
        let e = Config::resolve(&global, &ServeArgs::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("`tls_cert`") && e.contains("neither"), "{e}");
    }

    #[test]
    fn s3api_listener_from_flag_over_file() {
        let c = Config::resolve(&GlobalArgs::default(), &ServeArgs::default()).unwrap();
        assert_eq!(c.s3api_listen, None);
        let (_f, global) =
            file("[s3api]\nlisten = \"127.0.0.1:9000\"\npublic_url = \"http://s3.example:9000\"\n");
        let c = Config::resolve(&global, &ServeArgs::default()).unwrap();
        assert_eq!(c.s3api_listen.unwrap().to_string(), "127.0.0.1:9000");
        assert_eq!(c.s3api.virtual_host_domain().as_deref(), Some("s3.example"));
        let serve = ServeArgs {
            s3api_listen: Some("127.0.0.1:9001".into()),
            ..Default::default()
        };
        let c = Config::resolve(&global, &serve).unwrap();
        assert_eq!(c.s3api_listen.unwrap().to_string(), "127.0.0.1:9001");
        for (text, key) in [
            ("[s3api]\nlisten = \"nine\"\n", "`s3api.listen`"),
            ("[s3api]\npublic_url = \"ftp://x\"\n", "`s3api.public_url`"),
            ("[s3api]\nregion = \"a b\"\n", "`s3api.region`"),
        ] {
            let (_f, global) = file(text);
            let e = Config::resolve(&global, &ServeArgs::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn tls_pair_from_flag_and_file() {
        let (_f, global) = file("tls_cert = \"/file.crt\"\ntls_key = \"/file.key\"\n");
        let c = Config::resolve(&global, &ServeArgs::default()).unwrap();
        assert_eq!(c.tls.unwrap().cert, PathBuf::from("/file.crt"));
        let serve = ServeArgs {
            tls_cert: Some("/flag.crt".into()),
            ..Default::default()
        };
        let c = Config::resolve(&global, &serve).unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(
            (tls.cert, tls.key),
            ("/flag.crt".into(), "/file.key".into())
        );
        let c = Config::resolve(&GlobalArgs::default(), &ServeArgs::default()).unwrap();
        assert!(c.tls.is_none());
    }
}
