//! The Xet parsers (`airlock::xet`) on hostile bytes: mutated, truncated and random
//! xorbs, shards and stored indexes give errors, never panics, and allocate within a
//! bound while they parse (measured by a per-thread counting allocator).

use airlock::xet::{self, MerkleHash, XorbIndex, XorbVerifier};
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

const MIXED_XORB: &[u8] = include_bytes!("../data/xet/mixed.xorb");
const FOOTER_XORB: &[u8] = include_bytes!("../data/xet/footer.xorb");
const SHARD: &[u8] = include_bytes!("../data/xet/two_files.shard");
const VECTORS: &str = include_str!("../data/xet/vectors.txt");
const MIXED_INDEX: &str = include_str!("../data/xet/mixed.xorb.index");

/// Counts live bytes and their peak, on threads that asked to be measured.
struct Counting;

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as isize - layout.size() as isize);
        System.realloc(ptr, layout, new_size)
    }
}

fn note(delta: isize) {
    let _ = MEASURING.try_with(|m| {
        if m.get() {
            LIVE.with(|l| {
                let live = l.get().saturating_add_signed(delta);
                l.set(live);
                PEAK.with(|p| p.set(p.get().max(live)));
            });
        }
    });
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the peak bytes it held at once.
fn peak<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    MEASURING.with(|m| m.set(true));
    let out = f();
    MEASURING.with(|m| m.set(false));
    (out, PEAK.with(|p| p.get()))
}

/// One chunk held (256 KiB compressed, 128 KiB decoded, the LZ4 decoder's buffers), the
/// footer of a full xorb and its index: a few MiB whatever the input.
const XORB_PEAK: usize = 4 << 20;

fn vector(key: &str) -> MerkleHash {
    let line = VECTORS.lines().find(|l| l.starts_with(key)).unwrap();
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

fn mixed_hash() -> MerkleHash {
    MIXED_INDEX.lines().next().unwrap().parse().unwrap()
}

fn mutate(base: &[u8], edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    let mut b = base.to_vec();
    for &(at, byte) in edits {
        let at = at % b.len();
        b[at] = byte;
    }
    if let Some(cut) = cut {
        b.truncate(cut % (b.len() + 1));
    }
    b
}

/// Feeds `bytes` in pieces cut at `splits`, as an HTTP body arrives.
fn verify_in_pieces(
    hash: MerkleHash,
    bytes: &[u8],
    splits: &[usize],
) -> Result<XorbIndex, xet::XetError> {
    let mut cuts: Vec<usize> = splits.iter().map(|s| s % (bytes.len() + 1)).collect();
    cuts.push(bytes.len());
    cuts.sort();
    let mut v = XorbVerifier::new(hash);
    let mut at = 0;
    for cut in cuts {
        let _ = v.push(&bytes[at..cut]);
        at = cut;
    }
    v.finish()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// A xet-core xorb with bytes replaced or cut off: the same answer however the body
    /// is sliced, an error unless the bytes are the original ones, bounded memory.
    #[test]
    fn mutated_xorbs(edits in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
                     cut in prop::option::of(any::<usize>()),
                     splits in prop::collection::vec(any::<usize>(), 0..8),
                     footer in any::<bool>()) {
        let (base, hash) = if footer { (FOOTER_XORB, vector("footer_xorb")) } else { (MIXED_XORB, mixed_hash()) };
        let bytes = mutate(base, &edits, cut);
        let (whole, used) = peak(|| xet::verify_xorb(hash, &bytes));
        prop_assert!(used <= XORB_PEAK, "{used} bytes held");
        prop_assert_eq!(&whole, &verify_in_pieces(hash, &bytes, &splits));
        // Another compressed spelling of the same chunks (an LZ4 match offset that
        // copies identical bytes) is the same xorb: only its content must be the original.
        if let (Ok(index), false) = (&whole, footer) {
            prop_assert_eq!(index, &xet::verify_xorb(hash, MIXED_XORB).unwrap());
        }
    }

    /// Random bytes, or random bytes after a plausible chunk header: errors.
    #[test]
    fn random_xorbs(head in prop::collection::vec(any::<u8>(), 0..16),
                   body in prop::collection::vec(any::<u8>(), 0..4096),
                   hash in any::<[u8; 32]>()) {
        for bytes in [body.clone(), [&[0, 0x10, 0, 0, 1, 0, 0x10, 0][..], &head, &body].concat()] {
            let (result, used) = peak(|| xet::verify_xorb(MerkleHash(hash), &bytes));
            prop_assert!(used <= XORB_PEAK, "{used} bytes held");
            prop_assert!(result.is_err());
        }
    }

    /// The xet-core shard with bytes replaced or cut off: no panic, memory linear in the
    /// bytes read whatever the counts say, and never more records than bytes allow.
    #[test]
    fn mutated_shards(edits in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
                      cut in prop::option::of(any::<usize>()),
                      tail in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = mutate(SHARD, &edits, cut);
        bytes.extend_from_slice(&tail);
        let (result, used) = peak(|| xet::parse_shard(&bytes[..], xet::shard::MAX_SHARD_BYTES));
        prop_assert!(used <= 16 * bytes.len() + 4096, "{used} bytes held for {} bytes", bytes.len());
        if let Ok(shard) = result {
            let records = shard.files.iter().map(|f| 1 + f.terms.len()).sum::<usize>() + shard.xorbs.len();
            prop_assert!(records * 48 <= bytes.len());
        }
    }

    /// A stored index read back from damaged bytes, and chunk ranges decoded from
    /// damaged storage: errors, no panic.
    #[test]
    fn damaged_indexes_and_storage(edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
                                   cut in prop::option::of(any::<usize>()),
                                   range in (0u32..7, 0u32..7)) {
        let index = xet::verify_xorb(mixed_hash(), MIXED_XORB).unwrap();
        let stored = index.to_bytes();
        let damaged = mutate(&stored, &edits, cut);
        if let Ok(read) = XorbIndex::from_bytes(&damaged) {
            prop_assert_eq!(read, index.clone());
        }
        let chunks = range.0.min(range.1)..range.0.max(range.1);
        if let Ok(bytes) = index.byte_range(chunks.clone()) {
            let stored = &MIXED_XORB[bytes.start as usize..bytes.end as usize];
            let rotten = mutate(stored, &edits, cut);
            let (result, used) = peak(|| xet::decode_range(&index, chunks.clone(), &rotten, |_| {}));
            prop_assert!(used <= XORB_PEAK);
            // Damage the chunk hashes cannot see (another compressed spelling of the same
            // bytes) decodes to the original content; anything else is an error.
            if result.is_ok() {
                let decode = |from: &[u8]| {
                    let mut out = Vec::new();
                    xet::decode_range(&index, chunks.clone(), from, |p| out.extend_from_slice(p)).map(|_| out)
                };
                prop_assert_eq!(decode(&rotten), decode(stored));
            }
        }
    }
}

#[test]
fn measuring_allocator_sees_allocations() {
    let (v, used) = peak(|| vec![0u8; 100_000]);
    assert!(used >= 100_000 && v.len() == 100_000);
}
