//! The two tables the store totals keep from one walk to the next and update as changes
//! arrive: every blob they know, numbered, with its stored size; and every item with the
//! numbers of the blobs it references.
//!
//! Compact on purpose: a store of a million blobs is a million ids, and as `Digest`s in
//! per-item sets they took ~250 MB. A walk leaves both tables packed and sorted (found by
//! bisection, no hash map of a million entries); what changes afterwards goes into small
//! overlays, folded back in once they grow.

use super::Kind;
use crate::store::NameList;
use std::collections::{BTreeMap, HashMap};

/// A blob's identity for counting: the first 128 bits of its sha256 (see `blob_id`).
pub type BlobId = u128;

/// The size of a blob the table knows but the store does not hold (referenced by a
/// pull-through entry never downloaded, or removed).
pub const NOT_STORED: u64 = u64::MAX;

/// Items changed since the walk before the item table is packed again.
const CHANGED_BEFORE_PACKING: usize = 8192;

/// Every blob the totals know, stored or only referenced, by number.
#[derive(Debug, Default)]
pub struct BlobTable {
    /// The ids a walk found, sorted: such a blob's number is its place here.
    walked: Vec<BlobId>,
    /// Ids first seen since the walk, numbered after the walked ones.
    added: HashMap<BlobId, u32>,
    /// Each blob's stored size by number; `NOT_STORED` if the store does not hold it.
    sizes: Vec<u64>,
    /// Stored blobs and their bytes, kept as sizes change.
    objects: u64,
    bytes: u64,
}

impl BlobTable {
    /// The table of `walked` (sorted, distinct ids) and their sizes, in the same order.
    pub fn new(walked: Vec<BlobId>, sizes: Vec<u64>) -> BlobTable {
        debug_assert_eq!(walked.len(), sizes.len());
        let stored = sizes.iter().filter(|&&s| s != NOT_STORED);
        let (objects, bytes) = stored.fold((0, 0), |(n, b), &s| (n + 1, b + s));
        BlobTable {
            walked,
            added: HashMap::new(),
            sizes,
            objects,
            bytes,
        }
    }

    pub fn number(&self, id: BlobId) -> Option<u32> {
        match self.walked.binary_search(&id) {
            Ok(n) => Some(n as u32),
            Err(_) => self.added.get(&id).copied(),
        }
    }

    /// The blob's number, adding it (not stored) if the table does not know it.
    pub fn number_or_add(&mut self, id: BlobId) -> u32 {
        if let Some(n) = self.number(id) {
            return n;
        }
        let n = u32::try_from(self.sizes.len()).expect("below 4 billion blobs");
        self.sizes.push(NOT_STORED);
        self.added.insert(id, n);
        n
    }

    /// Records what the store holds under the blob now: `None` if nothing.
    pub fn set_size(&mut self, number: u32, size: Option<u64>) {
        let slot = &mut self.sizes[number as usize];
        if *slot != NOT_STORED {
            self.objects -= 1;
            self.bytes -= *slot;
        }
        *slot = size.unwrap_or(NOT_STORED);
        if let Some(size) = size {
            self.objects += 1;
            self.bytes += size;
        }
    }

    /// Sizes by number.
    pub fn sizes(&self) -> &[u64] {
        &self.sizes
    }

    /// Stored blobs and their bytes.
    pub fn stored(&self) -> (u64, u64) {
        (self.objects, self.bytes)
    }
}

/// Items and the blobs each references, by the item's path (`ItemId`'s display).
#[derive(Debug, Default)]
pub struct References {
    /// The walked items, sorted by path: item `i`'s blob numbers are
    /// `blobs[ends[i-1]..ends[i]]`. Packed: 277,500 items as `ItemId`s with a slice each
    /// took ~55 MB; as paths and one array, ~14 MB.
    items: NameList,
    ends: Vec<u32>,
    blobs: Vec<u32>,
    /// Walked items changed or removed since: their entry above no longer counts.
    superseded: Vec<bool>,
    /// Items changed or added since the walk, with their blobs now.
    changed: BTreeMap<String, Vec<u32>>,
}

impl References {
    /// The table of a walk's items (each path once, in any order): item `i`'s blob
    /// numbers are `blobs[ends[i-1]..ends[i]]`.
    pub fn from_packed(items: NameList, ends: Vec<u32>, blobs: Vec<u32>) -> References {
        let walked = References {
            superseded: vec![false; ends.len()],
            items,
            ends,
            blobs,
            changed: BTreeMap::new(),
        };
        let mut order: Vec<u32> = (0..walked.items.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            walked
                .items
                .get(a as usize)
                .cmp(walked.items.get(b as usize))
        });
        let (mut items, mut ends, mut blobs) = (NameList::new(), Vec::new(), Vec::new());
        for i in order {
            items.push(walked.items.get(i as usize));
            blobs.extend_from_slice(walked.walked_blobs(i as usize));
            ends.push(u32::try_from(blobs.len()).expect("below 4 billion references"));
        }
        drop(walked);
        items.shrink_to_fit();
        References {
            superseded: vec![false; ends.len()],
            items,
            ends,
            blobs,
            changed: BTreeMap::new(),
        }
    }

    /// Each item's path, kind and blob numbers, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Kind, &[u32])> + '_ {
        let mut walked = (0..self.items.len())
            .filter(|&i| !self.superseded[i])
            .map(|i| (self.items.get(i), self.walked_blobs(i)))
            .peekable();
        let mut changed = self
            .changed
            .iter()
            .map(|(path, blobs)| (path.as_str(), blobs.as_slice()))
            .peekable();
        std::iter::from_fn(move || {
            let take_walked = match (walked.peek(), changed.peek()) {
                (Some((a, _)), Some((b, _))) => a < b,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => return None,
            };
            let (path, blobs) = if take_walked {
                walked.next()?
            } else {
                changed.next()?
            };
            Some((path, kind_of(path), blobs))
        })
    }

    /// Replaces what `path` references (`None`: the item is gone).
    pub fn set(&mut self, path: &str, blobs: Option<Vec<u32>>) {
        let at = self.items.partition_point(|p| p < path);
        if at < self.items.len() && self.items.get(at) == path {
            self.superseded[at] = true;
        }
        match blobs {
            Some(blobs) => {
                self.changed.insert(path.to_string(), blobs);
            }
            None => {
                self.changed.remove(path);
            }
        }
        if self.changed.len() >= CHANGED_BEFORE_PACKING {
            self.pack();
        }
    }

    fn walked_blobs(&self, i: usize) -> &[u32] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.blobs[start..self.ends[i] as usize]
    }

    /// Folds the changed items back into the packed table.
    fn pack(&mut self) {
        let (mut items, mut ends, mut blobs) = (NameList::new(), Vec::new(), Vec::new());
        for (path, _, mine) in self.iter() {
            items.push(path);
            blobs.extend_from_slice(mine);
            ends.push(u32::try_from(blobs.len()).expect("below 4 billion references"));
        }
        items.shrink_to_fit();
        ends.shrink_to_fit();
        blobs.shrink_to_fit();
        self.superseded = vec![false; ends.len()];
        (self.items, self.ends, self.blobs) = (items, ends, blobs);
        self.changed.clear();
    }
}

/// An item's kind from its path (`models/...`, `projects/...`).
fn kind_of(path: &str) -> Kind {
    path.split_once('/')
        .and_then(|(kind, _)| Kind::parse(kind))
        .unwrap_or(Kind::Model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_sizes_follow_changes() {
        let mut table = BlobTable::new(vec![1, 5, 9], vec![10, NOT_STORED, 30]);
        assert_eq!(table.stored(), (2, 40));
        assert_eq!(table.number(5), Some(1));
        assert_eq!(table.number(7), None);
        let seven = table.number_or_add(7);
        assert_eq!((seven, table.number(7)), (3, Some(3)));
        assert_eq!(
            table.stored(),
            (2, 40),
            "a blob only referenced is not stored"
        );
        table.set_size(seven, Some(4));
        table.set_size(1, Some(6));
        // The same fact twice counts once: a change looked at again changes nothing.
        table.set_size(1, Some(6));
        assert_eq!(table.stored(), (4, 50));
        table.set_size(0, None);
        table.set_size(0, None);
        assert_eq!(table.stored(), (3, 40));
        assert_eq!(table.sizes()[0], NOT_STORED);
    }

    #[test]
    fn items_change_replace_and_go() {
        let mut names = NameList::new();
        for path in ["projects/default/b", "images/x", "models/org/m"] {
            names.push(path);
        }
        let mut refs = References::from_packed(names, vec![2, 3, 4], vec![1, 2, 3, 4]);
        let listed = |r: &References| {
            r.iter()
                .map(|(p, k, b)| (p.to_string(), k, b.to_vec()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            listed(&refs),
            vec![
                ("images/x".to_string(), Kind::Image, vec![3]),
                ("models/org/m".to_string(), Kind::Model, vec![4]),
                ("projects/default/b".to_string(), Kind::Project, vec![1, 2]),
            ]
        );
        refs.set("projects/default/b", Some(vec![1, 2, 5]));
        refs.set("projects/default/a", Some(vec![6]));
        refs.set("images/x", None);
        refs.set("images/gone-already", None);
        let expected = vec![
            ("models/org/m".to_string(), Kind::Model, vec![4]),
            ("projects/default/a".to_string(), Kind::Project, vec![6]),
            (
                "projects/default/b".to_string(),
                Kind::Project,
                vec![1, 2, 5],
            ),
        ];
        assert_eq!(listed(&refs), expected);
        // Packed again, the same items.
        refs.pack();
        assert_eq!(listed(&refs), expected);
        refs.set("models/org/m", Some(vec![]));
        assert_eq!(listed(&refs)[0].2, Vec::<u32>::new());
    }
}
