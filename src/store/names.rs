//! Names kept between requests: a whole listing (every project of an index, every
//! repository of a kind) in one allocation, so that a page, a search or a root page
//! walks memory instead of the store.
//!
//! Packed on purpose: 250,000 project names as `String`s in a `Vec` take ~14 MB (24
//! bytes of header and an allocation each); packed they take their bytes plus 4 per
//! name. Kept lists live in the documents' cache of lists (`DocStore::kept_list`,
//! [`KeptLists`]), within their share of the memory budget.

use sha2::Digest as _;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Names in the order they were pushed (a listing's key order).
#[derive(Debug, Default)]
pub struct NameList {
    packed: String,
    /// Where each name ends in `packed`.
    ends: Vec<u32>,
    /// A digest of the names, computed when first asked (an ETag of what is rendered
    /// from them).
    fingerprint: OnceLock<String>,
}

impl NameList {
    pub fn new() -> NameList {
        NameList::default()
    }

    /// Appends `name`. A list is far below 4 GiB: the memory budget holds it.
    pub fn push(&mut self, name: &str) {
        self.packed.push_str(name);
        let end = u32::try_from(self.packed.len()).expect("a name list below 4 GiB");
        self.ends.push(end);
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `i`th name; panics past the end, as a slice would.
    pub fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.packed[start..self.ends[i] as usize]
    }

    /// The names from position `from` on.
    pub fn iter_from(&self, from: usize) -> impl Iterator<Item = &str> + '_ {
        (from.min(self.len())..self.len()).map(|i| self.get(i))
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.iter_from(0)
    }

    /// The first position whose name does not satisfy `before` (the names must be
    /// partitioned by it, as a sorted list is by `name <= cursor`): where a page after a
    /// cursor starts, found by bisection.
    pub fn partition_point(&self, before: impl Fn(&str) -> bool) -> usize {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let middle = low + (high - low) / 2;
            if before(self.get(middle)) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }

    /// What the list holds in memory, for the cache's weigher.
    pub fn weight(&self) -> usize {
        self.packed.capacity() + self.ends.capacity() * 4 + 128
    }

    /// A digest of the names and their order (32 hex digits): the same names give the
    /// same fingerprint in every process, so an ETag made of it holds across replicas.
    pub fn fingerprint(&self) -> &str {
        self.fingerprint.get_or_init(|| {
            let mut hash = sha2::Sha256::new();
            for name in self.iter() {
                hash.update(name.as_bytes());
                hash.update(b"\n");
            }
            hex::encode(&hash.finalize()[..16])
        })
    }

    /// Frees what pushing reserved beyond the names (before the list is kept).
    pub fn shrink_to_fit(&mut self) {
        self.packed.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
}

impl<S: AsRef<str>> FromIterator<S> for NameList {
    fn from_iter<I: IntoIterator<Item = S>>(names: I) -> NameList {
        let mut list = NameList::new();
        for name in names {
            list.push(name.as_ref());
        }
        list.shrink_to_fit();
        list
    }
}

/// Whole listings kept as names, by what they list. A list is fresh for the mutable TTL;
/// for a while longer (`stale_for`) it is still answered while a new one is listed in
/// the background: listing 250,000 documents takes a second on disk and longer on S3,
/// which a request now and then would otherwise always wait for. A list this process
/// adds to is dropped (`forget`) and listed again by the next request.
#[derive(Clone)]
pub struct KeptLists {
    cache: moka::future::Cache<String, Arc<Kept>>,
    fresh_for: Duration,
    /// Counts each list's `forget`s: a listing started before one is not kept.
    generations: Arc<Mutex<HashMap<String, u64>>>,
    bytes: u64,
    /// The lists found too large to keep, each logged once.
    too_large: Arc<Mutex<std::collections::HashSet<String>>>,
}

struct Kept {
    list: Arc<NameList>,
    listed_at: Instant,
    /// A background listing of a newer one is under way.
    refreshing: AtomicBool,
}

impl KeptLists {
    pub fn new(bytes: u64, fresh_for: Duration, stale_for: Duration) -> KeptLists {
        KeptLists {
            cache: moka::future::Cache::builder()
                .max_capacity(bytes)
                .weigher(|id: &String, kept: &Arc<Kept>| {
                    (id.len() + kept.list.weight())
                        .try_into()
                        .unwrap_or(u32::MAX)
                })
                .time_to_live(fresh_for + stale_for)
                .build(),
            fresh_for,
            generations: Arc::default(),
            bytes,
            too_large: Arc::default(),
        }
    }

    /// A list larger than the whole share is never kept: every request lists it from
    /// the store. The operator learns it once, with what to change.
    fn warn_if_too_large(&self, id: &str, list: &NameList) {
        let weight = (id.len() + list.weight()) as u64;
        if weight <= self.bytes
            || !self
                .too_large
                .lock()
                .expect("not poisoned")
                .insert(id.to_string())
        {
            return;
        }
        let mib = |b: u64| b.div_ceil(1 << 20);
        let share = super::CacheShare::Listings.sixty_fourths();
        tracing::warn!(
            "the listing `{id}` ({} names, {} MiB) is larger than the memory kept for \
             listings ({} MiB, {share}/64 of `[cache] metadata_bytes`): it is listed from the \
             store for every request that needs it; raise `metadata_bytes` to at least \
             {} MiB to keep it",
            list.len(),
            mib(weight),
            mib(self.bytes),
            mib(weight * 64 / share + (1 << 20)),
        );
    }

    fn generation(&self, id: &str) -> u64 {
        let generations = self.generations.lock().expect("not poisoned");
        generations.get(id).copied().unwrap_or(0)
    }

    /// The list `id`, from `list` when none is kept (concurrent callers share one
    /// listing); past its freshness, the kept one while `list` runs in the background.
    pub async fn get<E, L, F>(&self, id: &str, list: L) -> Result<Arc<NameList>, Arc<E>>
    where
        E: Send + Sync + 'static,
        L: FnOnce() -> F,
        F: Future<Output = Result<NameList, E>> + Send + 'static,
    {
        if let Some(kept) = self.cache.get(id).await {
            if kept.listed_at.elapsed() >= self.fresh_for
                && !kept.refreshing.swap(true, Ordering::AcqRel)
            {
                let (lists, id, listing) = (self.clone(), id.to_string(), list());
                let generation = self.generation(&id);
                tokio::spawn(async move {
                    // A failed listing leaves the kept one to expire: the next request
                    // past that lists again, and gets the error.
                    if let Ok(list) = listing.await {
                        lists.warn_if_too_large(&id, &list);
                        if lists.generation(&id) == generation {
                            lists.cache.insert(id.clone(), Kept::new(list)).await;
                            lists.unless_forgotten_since(generation, &id).await;
                        }
                    }
                });
            }
            return Ok(kept.list.clone());
        }
        let listing = list();
        let generation = self.generation(id);
        let kept = self
            .cache
            .try_get_with_by_ref(id, async {
                let list = listing.await?;
                self.warn_if_too_large(id, &list);
                Ok(Kept::new(list))
            })
            .await?;
        self.unless_forgotten_since(generation, id).await;
        Ok(kept.list.clone())
    }

    /// A list made from a listing that began at `generation` is not kept if a `forget`
    /// came since (it may lack what that write added); `forget` counts before it drops,
    /// so one racing this check drops the list itself.
    async fn unless_forgotten_since(&self, generation: u64, id: &str) {
        if self.generation(id) != generation {
            self.cache.invalidate(id).await;
        }
    }

    /// Drops the list `id`: the next request lists it again.
    pub async fn forget(&self, id: &str) {
        *self
            .generations
            .lock()
            .expect("not poisoned")
            .entry(id.to_string())
            .or_default() += 1;
        self.cache.invalidate(id).await;
    }
}

impl Kept {
    fn new(mut list: NameList) -> Arc<Kept> {
        list.shrink_to_fit();
        Arc::new(Kept {
            list: Arc::new(list),
            listed_at: Instant::now(),
            refreshing: AtomicBool::new(false),
        })
    }
}

/// Whether `name` contains `lowercase` (a lowercased query), ignoring ASCII case: what
/// a search over listed names (ASCII: project, repository and image names) matches,
/// without a lowercased copy of each name.
pub fn contains_ignoring_case(name: &str, lowercase: &str) -> bool {
    lowercase.is_empty()
        || name
            .as_bytes()
            .windows(lowercase.len())
            .any(|w| w.eq_ignore_ascii_case(lowercase.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn names_come_back_in_order_and_pages_start_by_bisection() {
        let list: NameList = ["", "a", "b-c", "b", "zz"].into_iter().collect();
        assert_eq!(list.len(), 5);
        assert_eq!(list.iter().collect::<Vec<_>>(), ["", "a", "b-c", "b", "zz"]);
        assert_eq!(list.get(3), "b");
        assert_eq!(list.iter_from(3).collect::<Vec<_>>(), ["b", "zz"]);
        assert_eq!(list.iter_from(9).count(), 0);
        let sorted: NameList = (0..1000).map(|i| format!("{i:04}")).collect();
        for cursor in ["", "0000", "0499", "0500x", "0999", "9"] {
            let at = sorted.partition_point(|n| n <= cursor);
            let expected = (0..1000)
                .filter(|i| format!("{i:04}").as_str() <= cursor)
                .count();
            assert_eq!(at, expected, "{cursor}");
        }
    }

    async fn listing(names: &[&str], calls: &AtomicU64) -> Result<NameList, String> {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(names.iter().collect())
    }

    /// A list larger than the whole memory is listed for each request, and the operator
    /// is told once.
    #[tokio::test]
    async fn a_list_larger_than_its_memory_is_listed_each_time_and_reported_once() {
        let calls = Arc::new(AtomicU64::new(0));
        let lists = KeptLists::new(256, Duration::from_secs(60), Duration::from_secs(60));
        static BIG: [&str; 20] = ["a-rather-long-project-name"; 20];
        for _ in 0..3 {
            let calls = calls.clone();
            let list = lists
                .get("big", move || async move { listing(&BIG, &calls).await })
                .await
                .unwrap();
            assert_eq!(list.len(), 20);
            lists.cache.run_pending_tasks().await;
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(lists.too_large.lock().unwrap().len(), 1);
        let small = lists
            .get("small", || async {
                listing(&["x"], &AtomicU64::new(0)).await
            })
            .await
            .unwrap();
        assert_eq!(small.len(), 1);
        assert_eq!(lists.too_large.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_stale_list_answers_while_a_new_one_is_listed_in_the_background() {
        let calls = Arc::new(AtomicU64::new(0));
        let ms = Duration::from_millis;
        let lists = KeptLists::new(1 << 20, ms(200), ms(200));
        let get = |names: &'static [&'static str]| {
            let calls = calls.clone();
            let lists = lists.clone();
            async move {
                let list = lists
                    .get("x", move || async move { listing(names, &calls).await })
                    .await
                    .unwrap();
                list.iter().map(str::to_string).collect::<Vec<_>>()
            }
        };
        assert_eq!(get(&["a"]).await, ["a"]);
        assert_eq!(get(&["a", "b"]).await, ["a"], "fresh: kept");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(get(&["a", "b"]).await, ["a"], "stale: kept, listed again");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(get(&["a", "b", "c"]).await, ["a", "b"], "the new list");
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        // Past the stale time, nothing is kept: the request waits for a listing.
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(get(&["a", "b", "c"]).await, ["a", "b", "c"]);
        // A forgotten list is listed by the next request, and a background listing
        // that started before the forget is not kept.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let slow = {
            let lists = lists.clone();
            async move {
                lists
                    .get("x", || async {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok::<_, String>(["old"].into_iter().collect())
                    })
                    .await
                    .unwrap()
            }
        };
        assert_eq!(slow.await.get(0), "a", "stale: kept while listing");
        lists.forget("x").await;
        assert_eq!(get(&["new"]).await, ["new"]);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            get(&["newer"]).await,
            ["new"],
            "the old listing was not kept"
        );
        lists.forget("another").await;
        assert_eq!(
            get(&["newest"]).await,
            ["new"],
            "another list's forget leaves it"
        );
    }

    #[test]
    fn a_search_ignores_ascii_case() {
        assert!(contains_ignoring_case("Org/Llama-3B", "llama"));
        assert!(contains_ignoring_case("x", ""));
        assert!(!contains_ignoring_case("ab", "abc"));
        assert!(!contains_ignoring_case("org/llama", "lama2"));
    }

    #[test]
    fn the_fingerprint_follows_the_names_and_their_order() {
        let a: NameList = ["x", "y"].into_iter().collect();
        let same: NameList = ["x", "y"].into_iter().collect();
        let other: NameList = ["y", "x"].into_iter().collect();
        let joined: NameList = ["xy"].into_iter().collect();
        assert_eq!(a.fingerprint(), same.fingerprint());
        assert_ne!(a.fingerprint(), other.fingerprint());
        assert_ne!(a.fingerprint(), joined.fingerprint());
        assert_eq!(a.fingerprint().len(), 32);
    }
}
