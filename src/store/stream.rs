//! The verified stream: a blob's bytes are read from the network and hashed
//! on one thread while the caller decompresses and unpacks them on another,
//! through a small bounded channel (memory stays flat in the blob size).

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;

use crate::error::{Error, NetworkKind, Result};
use crate::oci::digest::VerifyingReader;

/// Bytes per chunk handed from the network thread to the unpacking thread.
const CHUNK: usize = 256 << 10;
/// Chunks in flight at most: CHUNK × DEPTH bytes buffered.
const DEPTH: usize = 8;

/// The reading end: what the network thread has verified-so-far read.
pub(crate) struct VerifiedStream {
    chunks: Receiver<Vec<u8>>,
    current: Vec<u8>,
    position: usize,
}

/// The network thread's verdict: `Ok` when the whole blob had the expected
/// size and digest.
pub(crate) struct Verdict(JoinHandle<Result<()>>);

impl Verdict {
    /// Waits for the network thread to read (and hash) the rest of the blob.
    pub(crate) fn wait(self) -> Result<()> {
        self.0.join().unwrap_or_else(|_| {
            Err(Error::Bug {
                detail: "the download thread panicked while verifying a download".into(),
            })
        })
    }
}

/// Starts reading `body` (of `size` bytes, named `digest`) on its own thread.
/// The stream ends early if the download fails; [`Verdict::wait`] then says why.
pub(crate) fn verified(
    body: Box<dyn Read + Send>,
    size: u64,
    what: String,
    digest: String,
) -> (VerifiedStream, Verdict) {
    let (sender, chunks) = sync_channel::<Vec<u8>>(DEPTH);
    let handle = std::thread::spawn(move || {
        let mut verifying = VerifyingReader::new(body, size);
        let mut listening = true;
        loop {
            let mut chunk = vec![0; CHUNK];
            let n = match read_full(&mut verifying, &mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    return Err(Error::network(
                        format!("downloading {what}"),
                        NetworkKind::Transfer,
                        e.to_string(),
                    ))
                }
            };
            chunk.truncate(n);
            // When the unpacker has stopped listening, keep reading to hash the rest.
            listening = listening && sender.send(chunk).is_ok();
        }
        drop(sender);
        verifying.finish(&what, &digest)
    });
    (
        VerifiedStream {
            chunks,
            current: Vec::new(),
            position: 0,
        },
        Verdict(handle),
    )
}

/// Reads until `buf` is full or the stream ends.
pub(crate) fn read_full(reader: &mut (impl Read + ?Sized), buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl Read for VerifiedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.position == self.current.len() {
            match self.chunks.recv() {
                Ok(chunk) => {
                    self.current = chunk;
                    self.position = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.position);
        buf[..n].copy_from_slice(&self.current[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_bytes_through_and_verifies_the_whole_blob() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let digest = crate::oci::digest::sha256(&data);
        let (mut stream, verdict) = verified(
            Box::new(io::Cursor::new(data.clone())),
            data.len() as u64,
            "b".into(),
            digest.clone(),
        );
        let mut head = vec![0; 1000];
        stream.read_exact(&mut head).unwrap();
        assert_eq!(head, data[..1000]);
        drop(stream); // the reader stops early; the rest is still hashed
        verdict.wait().unwrap();

        let mut bad = data.clone();
        bad[999_999] ^= 1;
        let (mut stream, verdict) = verified(
            Box::new(io::Cursor::new(bad)),
            data.len() as u64,
            "b".into(),
            digest,
        );
        io::copy(&mut stream, &mut io::sink()).unwrap();
        let err = verdict.wait().unwrap_err().to_string();
        assert!(err.contains("digest mismatch"), "{err}");
    }
}
