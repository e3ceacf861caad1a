//! A file's reconstruction as hf_xet asks for it (`GET /v{1,2}/reconstructions/{file}`):
//! the terms (xorb, chunk range, unpacked length) covering a byte range of the file, and
//! per xorb the chunk ranges to fetch with their stored byte ranges. Semantics follow
//! xet-core (`cas_types` and the simulation's `compute_reconstruction_ranges`): chunk
//! ranges are `[start, end)`, byte ranges are HTTP's inclusive `[start, end]`, terms are
//! trimmed to the chunks the range touches, and `offset_into_first_range` is where the
//! range starts within the first term. Nothing here knows HTTP.

use super::xet_store::FileDoc;
use crate::xet::{MerkleHash, XetError, XorbIndex};
use std::collections::HashMap;
use std::ops::Range;

/// One piece of the file: chunks `[chunks.start, chunks.end)` of a xorb.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanTerm {
    pub xorb: MerkleHash,
    pub chunks: Range<u32>,
    pub unpacked_length: u32,
}

/// Chunks of one xorb to fetch and the stored bytes holding them, end inclusive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetch {
    pub chunks: Range<u32>,
    pub first_byte: u64,
    pub last_byte: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub offset_into_first_range: u64,
    pub terms: Vec<PlanTerm>,
    /// Per xorb, in order of first use: disjoint fetches sorted by chunk.
    pub fetches: Vec<(MerkleHash, Vec<Fetch>)>,
}

/// Why there is no plan.
#[derive(Debug, PartialEq, Eq)]
pub enum PlanError {
    /// The range starts at or past the end of the file (HTTP 416).
    NotSatisfiable { size: u64 },
    /// A stored index or file document does not add up (the store is damaged).
    Damaged(String),
}

impl From<XetError> for PlanError {
    fn from(e: XetError) -> Self {
        PlanError::Damaged(e.to_string())
    }
}

/// The file's bytes `[start, end)` (clamped to its size), or all of it.
pub fn requested(doc: &FileDoc, range: Option<(u64, u64)>) -> Result<Range<u64>, PlanError> {
    match range {
        // An empty file has no terms, whatever was asked (as xet-core answers it).
        _ if doc.size == 0 => Ok(0..0),
        None => Ok(0..doc.size),
        Some((start, end)) if start < doc.size && start < end => Ok(start..end.min(doc.size)),
        Some(_) => Err(PlanError::NotSatisfiable { size: doc.size }),
    }
}

/// The xorbs whose indexes [`plan`] needs for `range`: only the terms it touches, so a
/// ranged request on a large file loads a few indexes, not all of them.
pub fn xorbs_needed(doc: &FileDoc, range: &Range<u64>) -> Result<Vec<MerkleHash>, PlanError> {
    let mut at = 0u64;
    let mut out: Vec<MerkleHash> = Vec::new();
    for term in &doc.terms {
        let size = u64::from(term.size);
        if at < range.end && at + size > range.start {
            let hash: MerkleHash = term.xorb.parse()?;
            if !out.contains(&hash) {
                out.push(hash);
            }
        }
        at += size;
    }
    Ok(out)
}

/// The terms and fetches for `range` (from [`requested`]); `indexes` holds at least the
/// xorbs of [`xorbs_needed`].
pub fn plan(
    doc: &FileDoc,
    range: Range<u64>,
    indexes: &HashMap<MerkleHash, XorbIndex>,
) -> Result<Plan, PlanError> {
    let mut terms = Vec::new();
    let mut offset = None;
    let mut at = 0u64;
    for term in &doc.terms {
        if at >= range.end {
            break;
        }
        let size = u64::from(term.size);
        if at + size <= range.start {
            at += size;
            continue;
        }
        let xorb: MerkleHash = term.xorb.parse()?;
        let index = indexes
            .get(&xorb)
            .ok_or_else(|| PlanError::Damaged(format!("xorb {xorb}: index not loaded")))?;
        let entries = index.slice(term.start..term.end)?;
        let lens: Vec<u64> = entries.iter().map(|c| u64::from(c.len)).collect();
        if lens.iter().sum::<u64>() != size || lens.is_empty() {
            return Err(PlanError::Damaged(format!(
                "xorb {xorb} chunks {}..{} do not hold {size} bytes",
                term.start, term.end
            )));
        }
        // Drop the chunks wholly before the range, then those wholly after it.
        let (mut first, mut last) = (0usize, lens.len());
        let mut start = at;
        let mut len = size;
        while first + 1 < last && start + lens[first] <= range.start {
            start += lens[first];
            len -= lens[first];
            first += 1;
        }
        while last > first + 1 && start + len - lens[last - 1] >= range.end {
            len -= lens[last - 1];
            last -= 1;
        }
        offset.get_or_insert(range.start.saturating_sub(start));
        let chunks = term.start + first as u32..term.start + last as u32;
        terms.push(PlanTerm {
            xorb,
            chunks,
            unpacked_length: len as u32,
        });
        at += size;
    }
    let fetches = merged_fetches(&terms, indexes)?;
    Ok(Plan {
        offset_into_first_range: offset.unwrap_or(0),
        terms,
        fetches,
    })
}

/// Per xorb, the union of its terms' chunk ranges (overlapping or adjacent ones joined,
/// as xet-core merges them), each with its stored bytes.
fn merged_fetches(
    terms: &[PlanTerm],
    indexes: &HashMap<MerkleHash, XorbIndex>,
) -> Result<Vec<(MerkleHash, Vec<Fetch>)>, PlanError> {
    let mut order: Vec<MerkleHash> = Vec::new();
    let mut by_xorb: HashMap<MerkleHash, Vec<Range<u32>>> = HashMap::new();
    for t in terms {
        by_xorb
            .entry(t.xorb)
            .or_insert_with(|| {
                order.push(t.xorb);
                Vec::new()
            })
            .push(t.chunks.clone());
    }
    let mut out = Vec::with_capacity(order.len());
    for xorb in order {
        let mut ranges = by_xorb.remove(&xorb).unwrap_or_default();
        ranges.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<u32>> = Vec::new();
        for r in ranges {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        let index = &indexes[&xorb];
        let fetches = merged
            .into_iter()
            .map(|chunks| {
                let bytes = index.byte_range(chunks.clone())?;
                Ok(Fetch {
                    chunks,
                    first_byte: bytes.start,
                    last_byte: bytes.end - 1,
                })
            })
            .collect::<Result<Vec<_>, XetError>>()?;
        out.push((xorb, fetches));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hf::xet_store::TermDoc;
    use crate::xet::ChunkEntry;

    /// A xorb of chunks with these uncompressed lengths, each stored as 8 + len bytes.
    fn index(tag: u8, lens: &[u32]) -> XorbIndex {
        let mut at = 0;
        let chunks = lens
            .iter()
            .map(|&len| {
                let start = at;
                at += 8 + len;
                ChunkEntry {
                    hash: MerkleHash([tag; 32]),
                    len,
                    start,
                    end: at,
                }
            })
            .collect();
        XorbIndex {
            hash: MerkleHash([tag; 32]),
            chunks,
        }
    }

    fn term(x: &XorbIndex, chunks: Range<u32>) -> TermDoc {
        TermDoc {
            xorb: x.hash.to_api_hex(),
            start: chunks.start,
            end: chunks.end,
            size: x.slice(chunks).unwrap().iter().map(|c| c.len).sum(),
        }
    }

    /// File = a[0..3] (100+200+300) + b[0..2] (50+50) + a[1..4] (200+300+400): 1600 bytes.
    fn fixture() -> (FileDoc, HashMap<MerkleHash, XorbIndex>) {
        let a = index(1, &[100, 200, 300, 400]);
        let b = index(2, &[50, 50]);
        let doc = FileDoc {
            size: 1600,
            sha256: "0".repeat(64),
            terms: vec![term(&a, 0..3), term(&b, 0..2), term(&a, 1..4)],
        };
        let indexes = [(a.hash, a), (b.hash, b)].into_iter().collect();
        (doc, indexes)
    }

    fn chunks(p: &Plan) -> Vec<(u8, Range<u32>, u32)> {
        p.terms
            .iter()
            .map(|t| (t.xorb.0[0], t.chunks.clone(), t.unpacked_length))
            .collect()
    }

    #[test]
    fn the_whole_file_merges_overlapping_terms_of_one_xorb() {
        let (doc, indexes) = fixture();
        let range = requested(&doc, None).unwrap();
        assert_eq!(xorbs_needed(&doc, &range).unwrap().len(), 2);
        let p = plan(&doc, range, &indexes).unwrap();
        assert_eq!(p.offset_into_first_range, 0);
        assert_eq!(chunks(&p), [(1, 0..3, 600), (2, 0..2, 100), (1, 1..4, 900)]);
        let a: Vec<_> = p.fetches[0].1.clone();
        // a[0..3] and a[1..4] join into one fetch of all four chunks: 1000 + 4 × 8 bytes.
        assert_eq!(
            a,
            [Fetch {
                chunks: 0..4,
                first_byte: 0,
                last_byte: 1031
            }]
        );
        assert_eq!(p.fetches[1].1[0].last_byte, 115);
    }

    #[test]
    fn ranges_trim_terms_to_the_chunks_they_touch() {
        let (doc, indexes) = fixture();
        // Bytes 150..=649: inside a[1] (100..300), a[2] (300..600), b[0] (600..650).
        let range = requested(&doc, Some((150, 650))).unwrap();
        let p = plan(&doc, range.clone(), &indexes).unwrap();
        assert_eq!(p.offset_into_first_range, 50);
        assert_eq!(chunks(&p), [(1, 1..3, 500), (2, 0..1, 50)]);
        assert_eq!(xorbs_needed(&doc, &range).unwrap().len(), 2);
        // Only the last term: one xorb's index needed.
        let range = requested(&doc, Some((1500, 1600))).unwrap();
        assert_eq!(xorbs_needed(&doc, &range).unwrap().len(), 1);
        let p = plan(&doc, range, &indexes).unwrap();
        assert_eq!(chunks(&p), [(1, 3..4, 400)]);
        assert_eq!(p.offset_into_first_range, 300);
        // An end past the file is clamped; a start at or past it is refused.
        assert_eq!(requested(&doc, Some((0, 1 << 40))), Ok(0..1600));
        let empty = FileDoc {
            size: 0,
            sha256: doc.sha256.clone(),
            terms: vec![],
        };
        assert_eq!(requested(&empty, Some((0, 100))), Ok(0..0));
        let p = plan(&empty, 0..0, &indexes).unwrap();
        assert!(p.terms.is_empty() && p.fetches.is_empty());
        for bad in [(1600, 1700), (2000, 3000), (5, 5)] {
            assert_eq!(
                requested(&doc, Some(bad)),
                Err(PlanError::NotSatisfiable { size: 1600 })
            );
        }
    }

    #[test]
    fn a_damaged_document_is_an_error_not_a_wrong_answer() {
        let (mut doc, indexes) = fixture();
        doc.terms[1].size += 1;
        let all = requested(&doc, None).unwrap();
        assert!(matches!(
            plan(&doc, all.clone(), &indexes),
            Err(PlanError::Damaged(_))
        ));
        doc.terms[1].end = 9;
        assert!(matches!(
            plan(&doc, all, &indexes),
            Err(PlanError::Damaged(_))
        ));
    }
}
