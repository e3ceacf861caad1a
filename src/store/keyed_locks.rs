//! One async lock per key, kept only while someone holds or waits for it: tasks that
//! change the same key take turns, and the map never grows with every key ever used.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use tokio::sync::OwnedMutexGuard;

#[derive(Debug)]
pub struct KeyedLocks<K>(Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>);

impl<K> Default for KeyedLocks<K> {
    fn default() -> Self {
        KeyedLocks(Mutex::new(HashMap::new()))
    }
}

impl<K: Hash + Eq + Clone> KeyedLocks<K> {
    /// Waits for `key`'s turn; it ends when the guard is dropped.
    pub async fn lock(&self, key: &K) -> OwnedMutexGuard<()> {
        let lock = {
            // A poisoned map still maps keys to locks: nothing in it can be half-done.
            let mut locks = self.0.lock().unwrap_or_else(|e| e.into_inner());
            // Locks nobody holds or waits for are dropped.
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            locks.entry(key.clone()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_holder_per_key_and_only_held_keys_are_kept() {
        let locks = Arc::new(KeyedLocks::<String>::default());
        let held = locks.lock(&"a".to_string()).await;
        // Another key is free; the same key waits.
        drop(locks.lock(&"b".to_string()).await);
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move { drop(locks.lock(&"a".to_string()).await) })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(held);
        waiter.await.unwrap();
        drop(locks.lock(&"c".to_string()).await);
        // Taking "c" dropped "a" and "b", which nobody held any more.
        let kept: Vec<String> = locks.0.lock().unwrap().keys().cloned().collect();
        assert_eq!(kept, ["c"]);
    }
}
