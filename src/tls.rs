//! HTTPS in the binary: rustls (ring) with a certificate that is reloaded from its files
//! without a restart.
//!
//! Reload: `CertResolver` holds the current certificate and key behind a lock and hands
//! it to each new handshake. A watcher task looks at the files' modification times every
//! `POLL` (and re-reads them on SIGHUP); a pair that loads and matches replaces the
//! current one, anything else is logged and the old pair stays. A session already
//! established keeps the key it was made with, so downloads in flight are not disturbed.
//!
//! `TlsListener` is an axum `Listener`: handshakes run in their own tasks so one slow
//! client cannot hold up the accept loop, and `axum::serve` sees finished TLS streams,
//! so graceful shutdown works exactly as for plain TCP.

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::future::Future as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How often the certificate and key files are checked for changes.
const POLL: Duration = Duration::from_secs(2);
/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate chain and key files (`tls_cert`, `tls_key`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsFiles {
    /// Reads and checks the pair: a PEM chain (leaf first) and the PEM key (PKCS#8, RSA or
    /// EC) of the leaf. The error is one line naming the key (`tls_cert`/`tls_key`) and the fix.
    pub fn load(&self) -> Result<CertifiedKey, String> {
        let cert_fix = "give a PEM certificate chain, leaf first (--tls-cert, AIRLOCK_TLS_CERT)";
        let key_fix =
            "give the PEM private key (PKCS#8, RSA or EC) of the certificate (--tls-key, AIRLOCK_TLS_KEY)";
        let cert = self.cert.display();
        let key = self.key.display();
        let chain = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                format!(
                    "`tls_cert`: cannot read {cert}: {}; {cert_fix}",
                    pem_error(&e)
                )
            })?;
        if chain.is_empty() {
            return Err(format!(
                "`tls_cert`: {cert} holds no PEM certificate (-----BEGIN CERTIFICATE-----); {cert_fix}"
            ));
        }
        let private = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => format!(
                "`tls_key`: {key} holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC); {key_fix}"
            ),
            e => format!("`tls_key`: cannot read {key}: {}; {key_fix}", pem_error(&e)),
        })?;
        CertifiedKey::from_der(chain, private, &provider()).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                format!("`tls_key`: {key} is not the key of the certificate in {cert}; {key_fix}")
            }
            rustls::Error::InvalidCertificate(_) => {
                format!("`tls_cert`: {cert} is not a valid X.509 certificate ({e}); {cert_fix}")
            }
            e => format!("`tls_key`: {key} cannot be used with {cert} ({e}); {key_fix}"),
        })
    }

    /// The files' modification times: a change means "read them again".
    fn stamp(&self) -> (Option<SystemTime>, Option<SystemTime>) {
        let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        (mtime(&self.cert), mtime(&self.key))
    }
}

fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) => io.to_string(),
        e => format!("not valid PEM ({e})"),
    }
}

/// Hands each new handshake the current certified key.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    fn replace(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// The server side of TLS: the rustls configuration and the reloading resolver.
#[derive(Clone, Debug)]
pub struct Tls {
    files: TlsFiles,
    /// The files' modification times when the current pair was read.
    loaded: (Option<SystemTime>, Option<SystemTime>),
    resolver: Arc<CertResolver>,
    config: Arc<ServerConfig>,
}

impl Tls {
    /// Loads the pair (failing in one line that says what to fix) and builds the rustls
    /// configuration: TLS 1.2 and 1.3, ALPN h2 and http/1.1.
    pub fn load(files: &TlsFiles) -> anyhow::Result<Tls> {
        // Taken before reading: a change while reading is seen by the first poll.
        let loaded = files.stamp();
        let key = files
            .load()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        let resolver = Arc::new(CertResolver {
            current: RwLock::new(Arc::new(key)),
        });
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            files: files.clone(),
            loaded,
            resolver,
            config: Arc::new(config),
        })
    }

    /// Watches the files until the returned task is aborted: reloads on a change of
    /// either modification time, and on SIGHUP (handled from this call on, so call it
    /// before announcing the server).
    pub fn watch(&self) -> tokio::task::JoinHandle<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let files = self.files.clone();
        let resolver = self.resolver.clone();
        let mut seen = self.loaded;
        let mut hup = signal(SignalKind::hangup())
            .inspect_err(|e| tracing::warn!(error = %e, "SIGHUP will not reload the certificate (file changes still do)"))
            .ok();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let forced = tokio::select! {
                    _ = tick.tick() => false,
                    Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => None } } => true,
                };
                let now = files.stamp();
                if now == seen && !forced {
                    continue;
                }
                seen = now;
                match files.load() {
                    Ok(key) => {
                        resolver.replace(key);
                        tracing::info!(cert = %files.cert.display(), key = %files.key.display(), "TLS certificate reloaded");
                    }
                    Err(problem) => tracing::warn!(
                        %problem,
                        "TLS certificate not reloaded, still serving the previous one"
                    ),
                }
            }
        })
    }

    /// Wraps a bound TCP listener: what it accepts comes out as finished TLS streams.
    pub fn listener(&self, tcp: TcpListener) -> TlsListener {
        TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(self.config.clone()),
            handshakes: JoinSet::new(),
        }
    }
}

/// A TCP listener whose connections complete a TLS handshake before axum sees them.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(LingeringClose<TlsStream<TcpStream>>, SocketAddr)>>,
}

impl axum::serve::Listener for TlsListener {
    type Io = LingeringClose<TlsStream<TcpStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                // axum's own TCP accept loop, with its handling of accept errors.
                (tcp, peer) = axum::serve::Listener::accept(&mut self.tcp) => {
                    // Small metadata responses should not wait for Nagle.
                    let _ = tcp.set_nodelay(true);
                    let acceptor = self.acceptor.clone();
                    self.handshakes.spawn(async move {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(tls)) => Some((LingeringClose::new(tls), peer)),
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                None
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                None
                            }
                        }
                    });
                },
                Some(done) = self.handshakes.join_next() => {
                    if let Ok(Some(conn)) = done {
                        return conn;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// How long a closing connection keeps reading what the client still sends.
const LINGER: Duration = Duration::from_secs(2);

/// A connection that, when the server closes it, first ends its own side and then reads
/// and drops what the client still sends until the client closes (or `LINGER` passes).
/// Closing a socket with unread data makes the kernel send a reset, and a reset makes the
/// client discard what it has received but not read yet: an HTTP/2 client still sending
/// WINDOW_UPDATEs for a download's last frames (as when a graceful shutdown closes the
/// connection right after them) would lose the end of the download. Runs inside the
/// connection's task, so a graceful shutdown waits for it.
pub struct LingeringClose<T> {
    inner: T,
    closing: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<T> LingeringClose<T> {
    fn new(inner: T) -> Self {
        LingeringClose {
            inner,
            closing: None,
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for LingeringClose<T> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for LingeringClose<T> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let this = self.get_mut();
        if this.closing.is_none() {
            std::task::ready!(std::pin::Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.closing = Some(Box::pin(tokio::time::sleep(LINGER)));
        }
        let deadline = this.closing.as_mut().expect("closing");
        let mut scratch = [0u8; 8192];
        loop {
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = tokio::io::ReadBuf::new(&mut scratch);
            match std::pin::Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => continue,
                // The client is gone: nothing left to protect.
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
