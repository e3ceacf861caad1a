//! Lines of an NDJSON request body as its chunks arrive: each byte is scanned for `\n`
//! once (a line sent one byte at a time costs what it costs in one chunk), one line and
//! the whole body are bounded, and an over-long one is refused with 413 in the Hub's format.

use super::error::HfError;
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use http::StatusCode;

pub struct Lines<S> {
    stream: S,
    buf: BytesMut,
    /// `buf[..scanned]` holds no newline.
    scanned: usize,
    total: u64,
    max_line: usize,
    max_total: u64,
    done: bool,
}

impl<S, E> Lines<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    pub fn new(stream: S, max_line: usize, max_total: u64) -> Self {
        Lines {
            stream,
            buf: BytesMut::new(),
            scanned: 0,
            total: 0,
            max_line,
            max_total,
            done: false,
        }
    }

    /// The lines completed by the next chunk (the last one may lack its `\n`); `None`
    /// once the body has ended and every line was handed out.
    pub async fn ready(&mut self) -> Result<Option<Vec<BytesMut>>, HfError> {
        if self.done {
            return Ok(None);
        }
        match self.stream.next().await {
            Some(chunk) => {
                let chunk = chunk.map_err(|e| HfError::bad_request(format!("body: {e}")))?;
                self.total += chunk.len() as u64;
                if self.total > self.max_total {
                    return Err(too_large(format!(
                        "body larger than {} bytes: split the commit",
                        self.max_total
                    )));
                }
                self.buf.extend_from_slice(&chunk);
            }
            None => self.done = true,
        }
        let mut lines = Vec::new();
        while let Some(i) = self.buf[self.scanned..].iter().position(|b| *b == b'\n') {
            let mut line = self.buf.split_to(self.scanned + i + 1);
            line.truncate(line.len() - 1);
            self.scanned = 0;
            lines.push(self.bounded(line)?);
        }
        self.scanned = self.buf.len();
        if self.buf.len() > self.max_line {
            return Err(self.too_long());
        }
        if self.done && !self.buf.is_empty() {
            lines.push(self.buf.split());
            self.scanned = 0;
        }
        Ok(Some(lines))
    }

    fn bounded(&self, line: BytesMut) -> Result<BytesMut, HfError> {
        if line.len() > self.max_line {
            return Err(self.too_long());
        }
        Ok(line)
    }

    fn too_long(&self) -> HfError {
        too_large(format!(
            "line longer than {} bytes: upload large files through LFS",
            self.max_line
        ))
    }
}

fn too_large(message: String) -> HfError {
    HfError::new(StatusCode::PAYLOAD_TOO_LARGE, None, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read_all(
        chunks: Vec<Vec<u8>>,
        max_line: usize,
        max_total: u64,
    ) -> Result<Vec<Vec<u8>>, HfError> {
        let stream = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::from(c))),
        );
        let mut lines = Lines::new(stream, max_line, max_total);
        let mut out = Vec::new();
        futures::executor::block_on(async {
            while let Some(ready) = lines.ready().await? {
                out.extend(ready.into_iter().map(|l| l.to_vec()));
            }
            Ok(out)
        })
    }

    #[test]
    fn splits_on_newlines_across_chunks() {
        let got = read_all(vec![b"a\nb".to_vec(), b"c\n\nd".to_vec()], 10, 100).unwrap();
        assert_eq!(
            got,
            vec![b"a".to_vec(), b"bc".to_vec(), b"".to_vec(), b"d".to_vec()]
        );
    }

    #[test]
    fn limits_answer_413() {
        let long = read_all(vec![b"0123456789ab\n".to_vec()], 10, 100).unwrap_err();
        assert_eq!(long.status, StatusCode::PAYLOAD_TOO_LARGE);
        let unfinished = read_all(vec![vec![b'x'; 6], vec![b'x'; 6]], 10, 100).unwrap_err();
        assert_eq!(unfinished.status, StatusCode::PAYLOAD_TOO_LARGE);
        let total = read_all(vec![b"a\n".to_vec(); 60], 10, 100).unwrap_err();
        assert_eq!(total.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn one_byte_chunks_stay_linear() {
        // Quadratic before: every chunk rescanned the whole buffer (~10 s for 160 KB).
        let chunks = vec![vec![b'x']; 2_000_000];
        let started = std::time::Instant::now();
        let got = read_all(chunks, 4_000_000, 8_000_000).unwrap();
        assert_eq!(got[0].len(), 2_000_000);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Any chunking of any bytes gives the lines `split('\n')` gives, or a 413.
        #[test]
        fn lines_match_split(body in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..512),
                             cuts in proptest::collection::vec(0usize..512, 0..16)) {
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|c| *c <= body.len()).collect();
            cuts.sort_unstable();
            cuts.push(body.len());
            let mut chunks = Vec::new();
            let mut at = 0;
            for c in cuts {
                chunks.push(body[at..c].to_vec());
                at = c;
            }
            let mut want: Vec<Vec<u8>> = body.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
            if want.last().is_some_and(Vec::is_empty) {
                want.pop();
            }
            match read_all(chunks, 64, 4096) {
                Ok(got) => prop_assert_eq!(got, want),
                Err(e) => {
                    prop_assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
                    prop_assert!(want.iter().any(|l| l.len() > 64));
                }
            }
        }
    }
}
