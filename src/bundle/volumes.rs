//! One tar stream as one file or as numbered volumes (`NAME.000`, `NAME.001`, ...) that
//! each fit on a removable medium, and reading them back as one stream.

use anyhow::{bail, Context};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// The file name used when `--out` is a directory.
pub const DEFAULT_NAME: &str = "bundle.tar";

pub fn volume_path(base: &Path, index: usize) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(format!(".{index:03}"));
    PathBuf::from(name)
}

/// Writes the stream to `base` (or its volumes), refusing to overwrite an earlier bundle.
pub struct VolumeWriter {
    base: PathBuf,
    split: Option<u64>,
    current: Option<BufWriter<File>>,
    in_current: u64,
    pub paths: Vec<PathBuf>,
}

impl VolumeWriter {
    pub fn new(base: PathBuf, split: Option<u64>) -> VolumeWriter {
        VolumeWriter {
            base,
            split,
            current: None,
            in_current: 0,
            paths: Vec::new(),
        }
    }

    fn open_next(&mut self) -> io::Result<()> {
        self.close_current()?;
        let path = match self.split {
            Some(_) => volume_path(&self.base, self.paths.len()),
            None => self.base.clone(),
        };
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("{}: {e}; choose another --out or remove it", path.display()),
                )
            })?;
        self.paths.push(path);
        self.current = Some(BufWriter::with_capacity(1024 * 1024, file));
        self.in_current = 0;
        Ok(())
    }

    fn close_current(&mut self) -> io::Result<()> {
        if let Some(w) = self.current.take() {
            // On removable media a volume is only done once it is on the medium.
            w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        Ok(())
    }

    /// Flushes and syncs the last volume; returns every file written.
    pub fn finish(mut self) -> io::Result<Vec<PathBuf>> {
        if self.paths.is_empty() {
            self.open_next()?;
        }
        self.close_current()?;
        Ok(std::mem::take(&mut self.paths))
    }

    /// Removes what was written (after a failed export).
    pub fn discard(mut self) {
        let _ = self.current.take();
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Write for VolumeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let full = self.split.is_some_and(|s| self.in_current >= s);
        if self.current.is_none() || full {
            self.open_next()?;
        }
        let room = self.split.map_or(buf.len() as u64, |s| s - self.in_current);
        let n = (buf.len() as u64).min(room) as usize;
        let written = self.current.as_mut().expect("opened").write(&buf[..n])?;
        self.in_current += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.current {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

/// The files of one bundle, in stream order, from what the operator named: the bundle
/// file, its volumes (any order), or a directory holding them.
pub fn resolve(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        let md = std::fs::metadata(path).with_context(|| {
            format!(
                "{}: cannot read it; give the bundle file, its volumes or their directory",
                path.display()
            )
        })?;
        if md.is_dir() {
            for entry in std::fs::read_dir(path)? {
                let p = entry?.path();
                if (p.is_file() && split_volume(&p).is_some()) || is_tar(&p) {
                    files.push(p);
                }
            }
        } else {
            files.push(path.clone());
        }
    }
    files.sort();
    files.dedup();
    if files.is_empty() {
        bail!("no bundle found (looked for *.tar and *.tar.000, *.tar.001, ...); give the bundle file or its volumes");
    }
    if files.len() == 1 {
        return Ok(files);
    }
    // Several files must be the numbered volumes of one bundle, all of them.
    let mut numbered: Vec<(PathBuf, usize, PathBuf)> = Vec::new();
    for f in &files {
        let Some((base, n)) = split_volume(f) else {
            bail!(
                "{} is not a numbered volume (NAME.000, NAME.001, ...); import one bundle at a time",
                f.display()
            );
        };
        numbered.push((base, n, f.clone()));
    }
    numbered.sort_by_key(|(_, n, _)| *n);
    for (i, (base, n, _)) in numbered.iter().enumerate() {
        if *base != numbered[0].0 {
            bail!(
                "{} and {} are volumes of different bundles; import one bundle at a time",
                numbered[0].2.display(),
                numbered[i].2.display()
            );
        }
        if *n != i {
            bail!(
                "volume {} is missing; give every volume of the bundle",
                volume_path(base, i).display()
            );
        }
    }
    Ok(numbered.into_iter().map(|(_, _, f)| f).collect())
}

fn is_tar(p: &Path) -> bool {
    p.is_file() && p.extension().is_some_and(|e| e == "tar")
}

/// `NAME.007` -> (`NAME`, 7)
fn split_volume(p: &Path) -> Option<(PathBuf, usize)> {
    let ext = p.extension()?.to_str()?;
    if ext.len() < 3 || !ext.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((p.with_extension(""), ext.parse().ok()?))
}

/// The volumes read back to back as one stream.
pub struct VolumeReader {
    files: Vec<PathBuf>,
    next: usize,
    current: Option<File>,
}

impl VolumeReader {
    pub fn new(files: Vec<PathBuf>) -> VolumeReader {
        VolumeReader {
            files,
            next: 0,
            current: None,
        }
    }
}

impl Read for VolumeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(f) = &mut self.current {
                let n = f.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.current = None;
            }
            let Some(path) = self.files.get(self.next) else {
                return Ok(0);
            };
            self.current = Some(
                File::open(path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?,
            );
            self.next += 1;
        }
    }
}

/// `4GiB`, `700MB`, `64KiB`, `1G` (binary), or plain bytes; at least 4 KiB.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let size = crate::quota::parse_size(text)?;
    if size < 4096 {
        return Err(format!("`{text}`: volumes must be at least 4KiB"));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("700MB"), Ok(700_000_000));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("8192"), Ok(8192));
        assert!(parse_size("12").is_err());
        assert!(parse_size("4 parsecs").is_err());
        assert!(parse_size("GiB").is_err());
    }

    #[test]
    fn volumes_split_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("b.tar");
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = VolumeWriter::new(base.clone(), Some(8192));
        for chunk in data.chunks(3000) {
            w.write_all(chunk).unwrap();
        }
        let paths = w.finish().unwrap();
        assert_eq!(paths.len(), 3);
        assert_eq!(std::fs::metadata(&paths[0]).unwrap().len(), 8192);
        // Named in any order, or by their directory: read back in volume order.
        let mut shuffled = paths.clone();
        shuffled.reverse();
        for given in [shuffled, vec![dir.path().to_path_buf()]] {
            let files = resolve(&given).unwrap();
            let mut back = Vec::new();
            VolumeReader::new(files).read_to_end(&mut back).unwrap();
            assert_eq!(back, data);
        }
        // A missing volume is named.
        let e = resolve(&[paths[0].clone(), paths[2].clone()]).unwrap_err();
        assert!(e.to_string().contains("b.tar.001 is missing"), "{e}");
        // An existing bundle is never overwritten.
        let mut again = VolumeWriter::new(base, Some(8192));
        assert!(again.write_all(b"x").is_err());
    }
}
