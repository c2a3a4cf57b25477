//! sha256 digests computed while data streams through.

#[cfg(feature = "producer")]
use std::io::Write;
use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use crate::error::{Error, NetworkKind, Result};

/// `sha256:<hex>` of a byte slice.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The hex part of a `sha256:<hex>` digest, which names files in caches and layouts.
pub(crate) fn hex_part(digest: &str) -> Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
            Ok(h)
        }
        _ => Err(Error::invalid(
            format!("digest `{}`", digest.escape_debug()),
            "only sha256 digests of 64 lower-case hex digits are supported",
        )),
    }
}

/// Checks bytes against an expected digest and size.
pub(crate) fn verify_bytes(
    what: &str,
    bytes: &[u8],
    expected: &str,
    size: Option<u64>,
) -> Result<()> {
    let actual_size = bytes.len() as u64;
    check(
        what,
        expected,
        size.unwrap_or(actual_size),
        &sha256(bytes),
        actual_size,
    )
}

/// The one verdict on content: its size, then its digest, as promised.
pub(crate) fn check(
    what: &str,
    expected: &str,
    expected_size: u64,
    actual: &str,
    actual_size: u64,
) -> Result<()> {
    if actual_size != expected_size {
        return Err(Error::SizeMismatch {
            what: what.to_string(),
            expected: expected_size,
            actual: actual_size,
        });
    }
    if actual != expected {
        return Err(Error::DigestMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

/// A reader that hashes and counts everything read through it, and refuses to
/// read past the expected size (so a lying server cannot fill the disk).
pub(crate) struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    limit: u64,
}

impl<R: Read> VerifyingReader<R> {
    pub(crate) fn new(inner: R, limit: u64) -> Self {
        VerifyingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
            limit,
        }
    }

    /// Reads what is left, then checks size and digest.
    pub(crate) fn finish(mut self, what: &str, expected: &str) -> Result<()> {
        io::copy(&mut self, &mut io::sink()).map_err(|e| {
            Error::network(
                format!("reading {what}"),
                NetworkKind::Transfer,
                e.to_string(),
            )
        })?;
        let actual = format!("sha256:{}", hex(&self.hasher.finalize()));
        check(what, expected, self.limit, &actual, self.count)
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Read one byte beyond the limit so an oversized body is noticed.
        let room = (self.limit + 1).saturating_sub(self.count);
        if room == 0 {
            return Ok(0);
        }
        let max = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A reader that hashes everything read through it (no limit, no check).
#[cfg(feature = "producer")]
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

#[cfg(feature = "producer")]
impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// `sha256:<hex>` of what was read.
    pub(crate) fn digest(&self) -> String {
        format!("sha256:{}", hex(&self.hasher.clone().finalize()))
    }
}

#[cfg(feature = "producer")]
impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes and counts everything written through it.
#[cfg(feature = "producer")]
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

#[cfg(feature = "producer")]
impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The inner writer, the `sha256:<hex>` digest and the byte count.
    pub(crate) fn finish(self) -> (W, String, u64) {
        let digest = format!("sha256:{}", hex(&self.hasher.finalize()));
        (self.inner, digest, self.count)
    }
}

#[cfg(feature = "producer")]
impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_of_empty_json() {
        assert_eq!(
            sha256(b"{}"),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn verifying_reader_detects_tampering_and_size() {
        let good = sha256(b"hello");
        let r = VerifyingReader::new(&b"hello"[..], 5);
        r.finish("blob", &good).unwrap();

        let r = VerifyingReader::new(&b"hellO"[..], 5);
        let e = r.finish("blob", &good).unwrap_err().to_string();
        assert!(e.contains("digest mismatch") && e.contains(&good), "{e}");

        let r = VerifyingReader::new(&b"hello world"[..], 5);
        let e = r.finish("blob", &good).unwrap_err().to_string();
        assert!(e.contains("size mismatch"), "{e}");

        let r = VerifyingReader::new(&b"hell"[..], 5);
        let e = r.finish("blob", &good).unwrap_err().to_string();
        assert!(e.contains("size mismatch"), "{e}");
    }

    #[test]
    #[cfg(feature = "producer")]
    fn hashing_writer_matches_sha256() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"abc").unwrap();
        let (inner, d, n) = w.finish();
        assert_eq!((inner, d, n), (b"abc".to_vec(), sha256(b"abc"), 3));
    }
}
