//! Filling a missing blob from an upstream: one fetch per digest however many clients
//! miss it at once, written to the store through `BlobStore::put` (so it is verified
//! against its digest and visible only when complete), while the first client gets the
//! bytes as they arrive.
//!
//! The fetch runs in its own task: a client that goes away stops getting bytes, but
//! the store write (which the other clients wait on) goes on. The first client's last
//! chunk is held back until the store has verified the whole blob, so a body that does
//! not match its digest never reaches a client complete: its transfer fails instead.
//! Clients that join a fetch in flight wait for it and are then served from the store
//! (ranges and all) by the caller.

use super::UpstreamError;
use crate::digest::Digest;
use crate::store::{BlobStore, ByteRange, ByteStream, GetOptions, StoreError};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, watch};

/// Opens the upstream body: its bytes and, when the upstream said, how many.
pub type Open = BoxFuture<'static, Result<(ByteStream, Option<u64>), UpstreamError>>;

/// `None` while the fetch runs; then how it ended.
type Verdict = Option<Result<(), UpstreamError>>;
type ToClient = mpsc::Sender<std::io::Result<Bytes>>;
/// Chunks in flight to the first client; a slow client slows the fetch by this much.
const CLIENT_BUFFER: usize = 16;

pub enum Filled {
    /// This caller started the fetch and gets the whole body as it arrives.
    Streaming { size: u64, body: ByteStream },
    /// The blob is in the store now: serve it from there.
    Stored,
}

#[derive(Clone, Debug)]
pub struct Filler {
    blobs: BlobStore,
    inflight: Arc<Mutex<HashMap<Digest, watch::Receiver<Verdict>>>>,
}

impl Filler {
    pub fn new(blobs: BlobStore) -> Filler {
        Filler {
            blobs,
            inflight: Arc::default(),
        }
    }

    /// Makes sure `digest` is stored, fetching it with `open` unless a fetch is already
    /// under way. With `stream`, the caller that starts the fetch gets the bytes as they
    /// arrive (when the upstream announces a length); everyone else gets `Stored` once
    /// the blob is in the store.
    pub async fn fill(
        &self,
        digest: &Digest,
        expected_size: Option<u64>,
        stream: bool,
        open: Open,
    ) -> Result<Filled, UpstreamError> {
        let leader = {
            let mut inflight = self.inflight.lock().expect("not poisoned");
            match inflight.get(digest) {
                Some(rx) => Err(rx.clone()),
                None => {
                    let (tx, rx) = watch::channel(None);
                    inflight.insert(digest.clone(), rx);
                    Ok(tx)
                }
            }
        };
        let tx = match leader {
            Ok(tx) => tx,
            Err(rx) => return wait(rx).await.map(|()| Filled::Stored),
        };
        let rx = tx.subscribe();
        let (start_tx, start_rx) = oneshot::channel();
        let fetch = self.clone().run(
            digest.clone(),
            expected_size,
            open,
            tx,
            stream.then_some(start_tx),
        );
        tokio::spawn(fetch);
        if let Ok(started) = start_rx.await {
            return started;
        }
        wait(rx).await.map(|()| Filled::Stored)
    }

    async fn run(
        self,
        digest: Digest,
        expected_size: Option<u64>,
        open: Open,
        tx: watch::Sender<Verdict>,
        mut start: Option<oneshot::Sender<Result<Filled, UpstreamError>>>,
    ) {
        let outcome = self.fetch(&digest, expected_size, open, &mut start).await;
        match &outcome {
            Ok(()) => tracing::debug!(%digest, "filled from upstream"),
            Err(e) => {
                tracing::warn!(%digest, error = %e, "fill from upstream failed; nothing stored");
                if let Some(start) = start.take() {
                    let _ = start.send(Err(e.clone()));
                }
            }
        }
        // Out of the map before the verdict: a later caller finds the blob stored (its
        // own fetch ends at the existence check) or, after a failure, tries again.
        self.inflight.lock().expect("not poisoned").remove(&digest);
        let _ = tx.send(Some(outcome));
    }

    async fn fetch(
        &self,
        digest: &Digest,
        expected_size: Option<u64>,
        open: Open,
        start: &mut Option<oneshot::Sender<Result<Filled, UpstreamError>>>,
    ) -> Result<(), UpstreamError> {
        let store_failed =
            |e: StoreError| UpstreamError::Unavailable(format!("storing {digest}: {e}"));
        if self.blobs.exists(digest).await.map_err(store_failed)? {
            if let Some(start) = start.take() {
                let _ = start.send(Ok(Filled::Stored));
            }
            return Ok(());
        }
        let (body, announced) = open.await?;
        let size = match (announced, expected_size) {
            (Some(a), Some(e)) if a != e => {
                return Err(UpstreamError::Unavailable(format!(
                    "upstream sends {a} bytes for {digest}, its index says {e}"
                )))
            }
            (a, e) => a.or(e),
        };
        // Without a length the first client cannot be streamed to: it waits like the rest.
        let client = match (start.take(), size) {
            (Some(start), Some(size)) => {
                let (to_client, rx) = mpsc::channel(CLIENT_BUFFER);
                let body = futures::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|item| (item, rx))
                });
                let _ = start.send(Ok(Filled::Streaming {
                    size,
                    body: Box::pin(body),
                }));
                Some(to_client)
            }
            _ => None,
        };
        let shared = Arc::new(Mutex::new(Tee {
            client,
            pending: None,
            sent: 0,
            ended: false,
        }));
        let put = self
            .blobs
            .put(digest, tee(body, shared.clone()), size)
            .await;
        let (client, pending, sent, ended) = {
            let mut t = shared.lock().expect("not poisoned");
            (t.client.take(), t.pending.take(), t.sent, t.ended)
        };
        match put {
            Err(e) => {
                if let Some(client) = client {
                    let _ = client.send(Err(std::io::Error::other(e.to_string()))).await;
                }
                Err(store_failed(e))
            }
            Ok(_) => {
                if let Some(client) = client {
                    match (ended, pending) {
                        (true, Some(last)) => {
                            let _ = client.send(Ok(last)).await;
                        }
                        (true, None) => {}
                        // The store had it already (another replica got there first) and
                        // did not read our body: the rest comes from the stored copy.
                        (false, _) => self.rest_from_store(digest, sent, &client).await,
                    }
                }
                Ok(())
            }
        }
    }

    async fn rest_from_store(&self, digest: &Digest, from: u64, client: &ToClient) {
        let options = GetOptions {
            range: (from > 0).then_some(ByteRange::From(from)),
        };
        let mut body = match self.blobs.get(digest, options).await {
            Ok(got) => got.body,
            Err(e) => {
                let _ = client.send(Err(std::io::Error::other(e.to_string()))).await;
                return;
            }
        };
        while let Some(chunk) = body.next().await {
            if client.send(chunk).await.is_err() {
                return;
            }
        }
    }
}

/// What the tee shares with the fetch that reads its state after the store write.
struct Tee {
    /// The first client, until it goes away.
    client: Option<ToClient>,
    /// The latest chunk, held back from the client until the next one (or the verdict).
    pending: Option<Bytes>,
    /// Bytes the client has been sent.
    sent: u64,
    /// The upstream body ended (the store read it all).
    ended: bool,
}

/// The upstream body as the store reads it, copied to the first client one chunk behind.
fn tee(body: ByteStream, shared: Arc<Mutex<Tee>>) -> ByteStream {
    Box::pin(futures::stream::unfold(
        (body, shared),
        |(mut body, shared)| async move {
            let item = body.next().await;
            let (client, previous) = {
                let mut t = shared.lock().expect("not poisoned");
                match &item {
                    Some(Ok(chunk)) => (t.client.clone(), t.pending.replace(chunk.clone())),
                    None => {
                        t.ended = true;
                        (None, None)
                    }
                    Some(Err(_)) => (None, None),
                }
            };
            if let (Some(client), Some(previous)) = (client, previous) {
                let len = previous.len() as u64;
                let delivered = client.send(Ok(previous)).await.is_ok();
                let mut t = shared.lock().expect("not poisoned");
                if delivered {
                    t.sent += len;
                } else {
                    // The client went away; the store write goes on for everyone else.
                    t.client = None;
                }
            }
            item.map(|item| (item, (body, shared)))
        },
    ))
}

/// Waits for a fetch in flight to end.
async fn wait(mut rx: watch::Receiver<Verdict>) -> Result<(), UpstreamError> {
    loop {
        let verdict = rx.borrow_and_update().clone();
        if let Some(verdict) = verdict {
            return verdict;
        }
        if rx.changed().await.is_err() {
            let last = rx.borrow().clone();
            return last.unwrap_or_else(|| {
                Err(UpstreamError::Unavailable(
                    "the upstream fetch was abandoned; retry".into(),
                ))
            });
        }
    }
}
