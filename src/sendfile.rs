//! Zero-copy blob downloads: `sendfile(2)` from the filesystem store to plain HTTP/1.1
//! connections, with hyper still writing everything else.
//!
//! hyper writes response bodies from buffers, so serving a file costs two copies (file to
//! memory, memory to socket) where nginx's sendfile makes none in user space; with many
//! concurrent downloads on few cores that is the difference. hyper offers no way to hand
//! the socket a file, but with vectored writes (what it uses on a TCP stream) it passes
//! body frames to the connection's writer as they are, by address, without copying. So:
//!
//! - A download body yields *placeholder* frames: slices of `PLACEHOLDERS`, a static
//!   zeroed region, each as long as the file range it stands for. Before yielding one it
//!   records in the connection's `Regions` which file range that slice's address means.
//! - The connection's stream (`SendfileStream`) recognises a write of a placeholder slice
//!   by its address and sends the file range with `sendfile` instead; any other bytes
//!   (headers, other responses) are written as usual.
//!
//! Placeholder bytes never reach the wire: a placeholder slice with no matching record is
//! a connection error, never a write. Content-Length accounting, metrics and the access
//! log see frames of the right length. It is used only where nothing between the body and
//! the socket reshapes frames: plain TCP (not TLS), HTTP/1.x (h2 re-frames data), a
//! response body of known length (`file_body` says why always there). `tests/serve.rs`
//! checks whole and ranged downloads through it byte for byte, and that every body byte
//! was counted as sent by sendfile.

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::fs::File;
use std::future::Future as _;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// One placeholder frame stands for at most this much of a file: as much as a socket
/// takes in a few sendfile calls (nginx's sendfile_max_chunk is 2 MiB), so a download
/// is few frames.
const FRAME: usize = 4 * 1024 * 1024;
/// Placeholder slots per connection, used round robin. hyper asks for the next frame only
/// once less than ~400 KiB wait in its write buffer, so at most two frames of this size are
/// pending at once, and a slot is long written before it comes round again.
const SLOTS: usize = 16;
/// Never written, and read by nobody: only its addresses matter. An anonymous read-only
/// mapping, so it takes neither memory nor room in the binary (a static array would
/// sit in .rodata).
static PLACEHOLDERS: std::sync::LazyLock<&'static [u8]> = std::sync::LazyLock::new(|| {
    let len = SLOTS * FRAME;
    // SAFETY: a fresh private anonymous mapping, never unmapped, so the slice is valid
    // (and reads as zeros) for the life of the process.
    unsafe {
        let ptr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
        assert!(
            ptr != libc::MAP_FAILED,
            "mapping the sendfile placeholders: {}",
            io::Error::last_os_error()
        );
        std::slice::from_raw_parts(ptr as *const u8, len)
    }
});

/// Bytes this process has sent with `sendfile`, for `/metrics`.
pub static SENT_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What each placeholder slot of one connection stands for.
#[derive(Default)]
pub struct Regions {
    slots: Mutex<SlotTable>,
}

#[derive(Default)]
struct SlotTable {
    next: usize,
    regions: [Option<Region>; SLOTS],
}

#[derive(Clone)]
struct Region {
    file: Arc<File>,
    offset: u64,
    len: usize,
}

impl Regions {
    /// Records `region` in the next slot; returns the placeholder frame for it.
    fn placeholder(&self, region: Region) -> Bytes {
        let mut table = self.slots.lock().expect("slot table");
        let slot = table.next;
        table.next = (slot + 1) % SLOTS;
        let start = slot * FRAME;
        let len = region.len;
        table.regions[slot] = Some(region);
        let placeholders: &'static [u8] = &PLACEHOLDERS;
        Bytes::from_static(&placeholders[start..start + len])
    }

    /// The file range a placeholder slice at `ptr` of `len` bytes stands for.
    fn resolve(&self, ptr: *const u8, len: usize) -> io::Result<(Arc<File>, u64)> {
        let at = (ptr as usize) - (PLACEHOLDERS.as_ptr() as usize);
        let (slot, within) = (at / FRAME, at % FRAME);
        let table = self.slots.lock().expect("slot table");
        match &table.regions[slot] {
            Some(region) if within + len <= region.len => {
                Ok((region.file.clone(), region.offset + within as u64))
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "zero-copy placeholder without a file region: refusing to send it",
            )),
        }
    }
}

fn is_placeholder(buf: &[u8]) -> bool {
    let base = PLACEHOLDERS.as_ptr() as usize;
    let at = buf.as_ptr() as usize;
    !buf.is_empty() && at >= base && at < base + PLACEHOLDERS.len()
}

/// The TCP listener for plain-HTTP serving: its connections can send files.
pub struct SendfileListener {
    tcp: TcpListener,
}

impl SendfileListener {
    pub fn new(tcp: TcpListener) -> Self {
        SendfileListener { tcp }
    }
}

impl axum::serve::Listener for SendfileListener {
    type Io = SendfileStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // axum's own TCP accept loop, with its handling of accept errors.
        let (tcp, addr) = axum::serve::Listener::accept(&mut self.tcp).await;
        // Small metadata responses should not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let stream = SendfileStream {
            tcp,
            regions: Arc::default(),
        };
        (stream, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// A connection that writes placeholder slices as file ranges.
pub struct SendfileStream {
    tcp: TcpStream,
    regions: Arc<Regions>,
}

impl SendfileStream {
    fn poll_send_file(
        &mut self,
        cx: &mut Context<'_>,
        placeholder: &[u8],
    ) -> Poll<io::Result<usize>> {
        let (file, offset) = self
            .regions
            .resolve(placeholder.as_ptr(), placeholder.len())?;
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let sent = self.tcp.try_io(Interest::WRITABLE, || {
                let mut off = offset as libc::off_t;
                // SAFETY: both descriptors are open for the call (the Arc and the stream
                // hold them); `off` is a valid off_t the kernel updates.
                let n = unsafe {
                    libc::sendfile(
                        self.tcp.as_raw_fd(),
                        file.as_raw_fd(),
                        &mut off,
                        placeholder.len(),
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match sent {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "blob file shorter than its recorded size",
                    )))
                }
                Ok(n) => {
                    SENT_BYTES.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncRead for SendfileStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if is_placeholder(buf) {
            this.poll_send_file(cx, buf)
        } else {
            Pin::new(&mut this.tcp).poll_write(cx, buf)
        }
    }

    /// Writes the leading ordinary buffers in one `writev`, or one placeholder by
    /// `sendfile`; hyper calls again for the rest.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(first) = bufs.iter().position(|b| !b.is_empty()) else {
            return Poll::Ready(Ok(0));
        };
        if is_placeholder(&bufs[first]) {
            return this.poll_send_file(cx, &bufs[first]);
        }
        let end = bufs[first..]
            .iter()
            .position(|b| is_placeholder(b))
            .map_or(bufs.len(), |n| first + n);
        Pin::new(&mut this.tcp).poll_write_vectored(cx, &bufs[first..end])
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// Per-connection info axum puts in every request: the connection's placeholder table,
/// when it can send files.
#[derive(Clone, Default)]
pub struct ZeroCopy(Option<Arc<Regions>>);

/// A served connection's stream: what its requests may use for downloads.
pub trait ZeroCopyInfo {
    fn zero_copy(&self) -> ZeroCopy;
}

impl ZeroCopyInfo for SendfileStream {
    fn zero_copy(&self) -> ZeroCopy {
        ZeroCopy(Some(self.regions.clone()))
    }
}

/// TLS re-frames what is written: no zero-copy.
impl<T> ZeroCopyInfo for crate::tls::LingeringClose<T> {
    fn zero_copy(&self) -> ZeroCopy {
        ZeroCopy(None)
    }
}

tokio::task_local! {
    /// The current request's connection table, while its handler runs.
    static CONNECTION: Option<Arc<Regions>>;
}

/// Middleware: makes the connection's table available to download handlers of HTTP/1.x
/// requests on connections that can send files.
pub async fn offer(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let regions = request
        .extensions()
        .get::<axum::extract::ConnectInfo<ZeroCopy>>()
        .and_then(|info| info.0 .0.clone())
        .filter(|_| request.version() <= http::Version::HTTP_11);
    CONNECTION.scope(regions, next.run(request)).await
}

/// The body of a download of `range` of `file`: sent without copying when the request's
/// connection can, else `streamed` (the same bytes read into memory, one chunk ahead on
/// the blocking pool).
///
/// Always, not only beside other downloads (as until 2026-12-05): measured on 2 cores
/// (benches/blob_throughput, 1 GiB, against nginx's sendfile, two runs of five), a lone
/// download streamed made 0.77x and 0.30x nginx at 0.28-0.83 CPU s/GiB (its read-ahead
/// thread competes with the client for the second core, and loses as often as not);
/// sent with sendfile 1.09x and 1.27x at 0.16-0.22 CPU s/GiB; 8 at once 1.05-1.12x.
pub fn file_body(
    file: &Arc<File>,
    range: std::ops::Range<u64>,
    streamed: crate::store::ByteStream,
) -> axum::body::Body {
    match CONNECTION.try_with(|r| r.clone()).ok().flatten() {
        Some(regions) => axum::body::Body::new(FileBody {
            regions,
            file: file.clone(),
            next: range.start,
            end: range.end,
            readahead: None,
        }),
        None => axum::body::Body::from_stream(streamed),
    }
}

/// Yields placeholder frames for a file range, each once its range is in the page cache
/// (read ahead on the blocking pool, one frame ahead of the one being sent), so
/// `sendfile` on the connection's task does not wait for the disk.
struct FileBody {
    regions: Arc<Regions>,
    file: Arc<File>,
    next: u64,
    end: u64,
    readahead: Option<tokio::task::JoinHandle<()>>,
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.next >= this.end {
            return Poll::Ready(None);
        }
        let len = (this.end - this.next).min(FRAME as u64) as usize;
        let current = this
            .readahead
            .get_or_insert_with(|| read_ahead(&this.file, this.next, len));
        let _ = ready!(Pin::new(current).poll(cx));
        let frame = this.regions.placeholder(Region {
            file: this.file.clone(),
            offset: this.next,
            len,
        });
        this.next += len as u64;
        this.readahead = (this.next < this.end).then(|| {
            let len = (this.end - this.next).min(FRAME as u64) as usize;
            read_ahead(&this.file, this.next, len)
        });
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.next >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end - self.next)
    }
}

fn read_ahead(file: &Arc<File>, offset: u64, len: usize) -> tokio::task::JoinHandle<()> {
    let file = file.clone();
    tokio::task::spawn_blocking(move || {
        // SAFETY: the descriptor is open (the Arc holds it). A failure only means sendfile
        // may read from the disk itself.
        unsafe { libc::readahead(file.as_raw_fd(), offset as libc::off64_t, len) };
    })
}
