//! Upload sessions nobody finished: `uploads/<protocol>/<id>/...` (an OCI blob upload's
//! state and chunks). Pulls never read them, so a session is abandoned once nothing in
//! it was written for longer than the age given; its objects are then removed. A client
//! that comes back to it later gets the protocol's "upload unknown" and starts over, as
//! it would after distribution's upload purger.

use super::mark::for_each_object;
use crate::store::{ObjectKey, Stores};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

pub const PREFIX: &str = "uploads/";

#[derive(Debug, Default)]
struct Session {
    keys: Vec<ObjectKey>,
    bytes: u64,
    last_write: Option<SystemTime>,
}

/// Stale sessions: how many, their bytes, and whether they were removed.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Swept {
    pub sessions: u64,
    pub bytes: u64,
    /// Sessions still being written (younger than the age).
    pub active: u64,
}

/// Finds the sessions idle for longer than `older_than` and, unless `dry_run`, removes
/// their objects. A session whose age cannot be told (no modification time) is kept.
pub async fn sweep(stores: &Stores, older_than: Duration, dry_run: bool) -> anyhow::Result<Swept> {
    let mut sessions: BTreeMap<String, Session> = BTreeMap::new();
    for_each_object(stores, PREFIX, |meta| {
        let Some(session) = session_of(meta.key.as_str()) else {
            return;
        };
        let s = sessions.entry(session.to_string()).or_default();
        s.bytes += meta.size;
        s.last_write = s.last_write.max(meta.last_modified);
        s.keys.push(meta.key);
    })
    .await?;
    let now = SystemTime::now();
    let mut swept = Swept::default();
    for (name, session) in sessions {
        let idle = session
            .last_write
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|idle| idle > older_than);
        if !idle {
            swept.active += 1;
            continue;
        }
        swept.sessions += 1;
        swept.bytes += session.bytes;
        if dry_run {
            continue;
        }
        // The state document first: from then on the session answers "unknown", and
        // chunks left by a crash here are still under its prefix for the next run.
        let (state, chunks): (Vec<_>, Vec<_>) = session
            .keys
            .into_iter()
            .partition(|k| k.as_str().ends_with("/state.json"));
        for key in state.into_iter().chain(chunks) {
            stores
                .store
                .delete(&key)
                .await
                .map_err(|e| anyhow::anyhow!("removing {key} of upload session {name}: {e}"))?;
        }
        tracing::info!(session = %name, bytes = session.bytes, "abandoned upload session removed");
    }
    Ok(swept)
}

/// `uploads/oci/<id>/state.json` → `uploads/oci/<id>`.
fn session_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(PREFIX)?;
    let mut parts = rest.splitn(3, '/');
    let (protocol, id) = (parts.next()?, parts.next()?);
    parts.next()?;
    Some(&key[..PREFIX.len() + protocol.len() + 1 + id.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_the_first_two_segments() {
        assert_eq!(
            session_of("uploads/oci/abc/state.json"),
            Some("uploads/oci/abc")
        );
        assert_eq!(session_of("uploads/oci/abc/0-ff"), Some("uploads/oci/abc"));
        assert_eq!(session_of("uploads/oci/abc"), None);
        assert_eq!(session_of("blobs/sha256/aa/aa"), None);
    }
}
