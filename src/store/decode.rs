//! Decompression of a layer stream, on every core when the stream is made
//! of independent pieces.
//!
//! `ocipkg pack` cuts the tar into fixed 4 MiB blocks (8 MiB for zstd at its
//! highest level) and compresses each into its own gzip member or zstd
//! frame. Concatenated, they are one valid gzip or zstd stream for every
//! other reader; here each piece is found without decoding it and decoded
//! on its own thread, and the results are handed on in order:
//! - a gzip member records its own length in an extra field of its header
//!   (subfield `op`, 4 bytes, little-endian: the member's size in bytes, as
//!   BGZF does), which readers that do not know it skip;
//! - a zstd frame's length follows from its header and block headers, and
//!   its header states its decoded size. Its checksum, when it has one, is
//!   checked (libzstd does so itself; for ruzstd it is compared here).
//!
//! Layers from other tools (one large gzip member, one zstd frame, no size
//! field) are decoded on one thread, as a stream.
//!
//! zstd is decoded by the pure-Rust ruzstd, or, with the `libzstd` feature
//! (which the producer features include), by the C library, about four
//! times faster; consumers do not pay its C compile unless they ask.
//!
//! Memory stays bounded: at most one piece per worker plus [`READ_AHEAD`]
//! pieces of at most [`PIECE_LIMIT`] bytes (compressed and decoded) are held
//! at once, and a piece claiming more, or a window larger, is refused.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};

use crate::oci::format::Compression;
use crate::store::stream::read_full;

/// Most bytes of one piece, compressed or decoded (packs write 4 or 8 MiB).
pub(crate) const PIECE_LIMIT: usize = 16 << 20;

/// Pieces held beyond one per worker (the one being handed on).
const READ_AHEAD: usize = 1;

/// Gzip extra subfield holding the member's total size.
pub(crate) const GZIP_SIZE_FIELD: [u8; 2] = *b"op";

/// Which zstd decoder runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Zstd {
    /// ruzstd: what consumers compile by default (no C).
    #[cfg_attr(feature = "libzstd", allow(dead_code))]
    PureRust,
    /// The C libzstd (feature `libzstd`, part of the producer features).
    #[cfg(feature = "libzstd")]
    LibZstd,
}

impl Zstd {
    /// libzstd when it is compiled in, else the pure-Rust decoder.
    #[cfg(feature = "libzstd")]
    pub(crate) const DEFAULT: Zstd = Zstd::LibZstd;
    #[cfg(not(feature = "libzstd"))]
    pub(crate) const DEFAULT: Zstd = Zstd::PureRust;
}

/// A reader of the decompressed bytes of `reader`.
pub(crate) fn decoder(
    reader: impl Read + Send + 'static,
    compression: Compression,
) -> io::Result<Box<dyn Read + Send>> {
    decoder_with(reader, compression, Zstd::DEFAULT)
}

/// [`decoder`] with the given zstd decoder.
pub(crate) fn decoder_with(
    reader: impl Read + Send + 'static,
    compression: Compression,
    zstd: Zstd,
) -> io::Result<Box<dyn Read + Send>> {
    let mut reader = Peeked::new(reader);
    Ok(match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => {
            let head = reader.peek(64)?;
            if gzip_member_size(head).is_some() {
                parallel(reader, split_gzip, decode_gzip)
            } else {
                Box::new(flate2::read::MultiGzDecoder::new(reader))
            }
        }
        Compression::Zstd => {
            let head = reader.peek(32)?;
            let pieces = zstd_content_size(head).is_some_and(|n| n <= PIECE_LIMIT as u64);
            match zstd {
                Zstd::PureRust if pieces => parallel(reader, split_zstd, decode_zstd_rust),
                Zstd::PureRust => Box::new(ZstdFrames::new(io::BufReader::new(reader))),
                #[cfg(feature = "libzstd")]
                Zstd::LibZstd if pieces => parallel(reader, split_zstd, decode_zstd_c),
                #[cfg(feature = "libzstd")]
                Zstd::LibZstd => {
                    // Windows up to the decoders' default limit (128 MiB), as ruzstd.
                    let mut decoder = zstd::stream::read::Decoder::new(reader)?;
                    decoder.window_log_max(27)?;
                    Box::new(decoder)
                }
            }
        }
    })
}

/// A reader whose first bytes can be looked at before it is read.
struct Peeked<R> {
    head: Vec<u8>,
    position: usize,
    inner: R,
}

impl<R: Read> Peeked<R> {
    fn new(inner: R) -> Self {
        Peeked {
            head: Vec::new(),
            position: 0,
            inner,
        }
    }

    /// Up to `n` first bytes (fewer if the stream is shorter).
    fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        while self.head.len() < n {
            let mut buf = vec![0; n - self.head.len()];
            let got = self.inner.read(&mut buf)?;
            if got == 0 {
                break;
            }
            self.head.extend_from_slice(&buf[..got]);
        }
        Ok(&self.head)
    }
}

impl<R: Read> Read for Peeked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.position < self.head.len() {
            let n = buf.len().min(self.head.len() - self.position);
            buf[..n].copy_from_slice(&self.head[self.position..self.position + n]);
            self.position += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

/// The size a gzip member's header records in its `op` extra subfield.
pub(crate) fn gzip_member_size(head: &[u8]) -> Option<usize> {
    const FEXTRA: u8 = 4;
    if head.len() < 12 || head[..3] != [0x1f, 0x8b, 8] || head[3] & FEXTRA == 0 {
        return None;
    }
    let xlen = u16::from_le_bytes([head[10], head[11]]) as usize;
    let extra = head.get(12..12 + xlen)?;
    let mut at = 0;
    while at + 4 <= extra.len() {
        let len = u16::from_le_bytes([extra[at + 2], extra[at + 3]]) as usize;
        let data = extra.get(at + 4..at + 4 + len)?;
        if extra[at..at + 2] == GZIP_SIZE_FIELD && len == 4 {
            return Some(u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize);
        }
        at += 4 + len;
    }
    None
}

/// The next gzip member, whole (`None` at the end of the stream).
fn split_gzip(reader: &mut dyn Read, mut head: Vec<u8>) -> io::Result<Option<Vec<u8>>> {
    head.clear();
    head.resize(12, 0);
    let n = read_full(reader, &mut head)?;
    if n == 0 {
        return Ok(None);
    }
    if n < 12 {
        return Err(truncated());
    }
    let xlen = u16::from_le_bytes([head[10], head[11]]) as usize;
    head.resize(12 + xlen, 0);
    if read_full(reader, &mut head[12..])? < xlen {
        return Err(truncated());
    }
    let size = gzip_member_size(&head).ok_or_else(|| {
        invalid("a gzip member of a layer packed in pieces does not record its size")
    })?;
    if size > PIECE_LIMIT || size < head.len() + 8 {
        return Err(invalid(format!(
            "a gzip member records a size of {size} bytes (at most {PIECE_LIMIT})"
        )));
    }
    let start = head.len();
    head.resize(size, 0);
    if read_full(reader, &mut head[start..])? < size - start {
        return Err(truncated());
    }
    Ok(Some(head))
}

fn decode_gzip(member: &[u8], mut out: Vec<u8>) -> io::Result<Vec<u8>> {
    let isize_field = &member[member.len() - 4..];
    let declared = u32::from_le_bytes([
        isize_field[0],
        isize_field[1],
        isize_field[2],
        isize_field[3],
    ]) as usize;
    if declared > PIECE_LIMIT {
        return Err(invalid(format!(
            "a gzip member declares {declared} decoded bytes (at most {PIECE_LIMIT})"
        )));
    }
    out.clear();
    out.reserve(declared);
    flate2::read::GzDecoder::new(member)
        .take(PIECE_LIMIT as u64 + 1)
        .read_to_end(&mut out)?;
    if out.len() != declared {
        return Err(invalid(
            "a gzip member decodes to another size than it declares",
        ));
    }
    Ok(out)
}

const ZSTD_MAGIC: u32 = 0xFD2F_B528;

/// The decoded size a zstd frame header states, if it states one.
pub(crate) fn zstd_content_size(head: &[u8]) -> Option<u64> {
    if head.len() < 5 || u32::from_le_bytes([head[0], head[1], head[2], head[3]]) != ZSTD_MAGIC {
        return None;
    }
    let (fcs_len, header_len) = zstd_header_lengths(head[4]);
    let at = header_len - fcs_len;
    let field = head.get(at..at + fcs_len)?;
    match fcs_len {
        0 => None,
        1 => Some(field[0] as u64),
        2 => Some(u16::from_le_bytes([field[0], field[1]]) as u64 + 256),
        4 => Some(u32::from_le_bytes([field[0], field[1], field[2], field[3]]) as u64),
        _ => Some(u64::from_le_bytes(field.try_into().ok()?)),
    }
}

/// The window a zstd frame header asks for (for a single-segment frame,
/// its decoded size).
fn zstd_window_size(head: &[u8]) -> Option<u64> {
    let descriptor = *head.get(4)?;
    if descriptor & 0x20 != 0 {
        return zstd_content_size(head);
    }
    let window = *head.get(5)?;
    let base = 1u64 << (10 + (window >> 3));
    Some(base + base / 8 * u64::from(window & 7))
}

/// From a frame header descriptor: the length of the content size field,
/// and of the whole header including the magic number.
fn zstd_header_lengths(descriptor: u8) -> (usize, usize) {
    let single_segment = descriptor & 0x20 != 0;
    let fcs_len = match descriptor >> 6 {
        0 if single_segment => 1,
        0 => 0,
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let dict_len = [0, 1, 2, 4][(descriptor & 3) as usize];
    let window_len = usize::from(!single_segment);
    (fcs_len, 4 + 1 + window_len + dict_len + fcs_len)
}

/// The header of the next zstd frame (magic number to content size) into
/// `head`, skippable frames skipped; `None` at the end of the stream.
fn read_frame_header(reader: &mut dyn Read, mut head: Vec<u8>) -> io::Result<Option<Vec<u8>>> {
    loop {
        head.clear();
        head.resize(5, 0);
        match read_full(reader, &mut head[..4])? {
            0 => return Ok(None),
            4 => {}
            _ => return Err(truncated()),
        }
        let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        if magic & 0xFFFF_FFF0 == 0x184D_2A50 {
            let mut size = [0u8; 4];
            if read_full(reader, &mut size)? < 4 {
                return Err(truncated());
            }
            let size = u64::from(u32::from_le_bytes(size));
            if io::copy(&mut reader.take(size), &mut io::sink())? < size {
                return Err(truncated());
            }
            continue;
        }
        if magic != ZSTD_MAGIC {
            return Err(invalid("the layer holds something other than zstd frames"));
        }
        if read_full(reader, &mut head[4..5])? < 1 {
            return Err(truncated());
        }
        let (_, header_len) = zstd_header_lengths(head[4]);
        head.resize(header_len, 0);
        if read_full(reader, &mut head[5..])? < header_len - 5 {
            return Err(truncated());
        }
        return Ok(Some(head));
    }
}

/// The next zstd frame, whole (skippable frames are dropped).
fn split_zstd(reader: &mut dyn Read, frame: Vec<u8>) -> io::Result<Option<Vec<u8>>> {
    let Some(mut frame) = read_frame_header(reader, frame)? else {
        return Ok(None);
    };
    let descriptor = frame[4];
    if zstd_content_size(&frame).is_none_or(|n| n > PIECE_LIMIT as u64) {
        return Err(invalid(format!(
            "a zstd frame of a layer packed in pieces does not state a decoded size of at \
             most {PIECE_LIMIT} bytes"
        )));
    }
    // A decoder may fill its window before it hands anything out.
    if zstd_window_size(&frame).is_none_or(|n| n > PIECE_LIMIT as u64) {
        return Err(invalid(format!(
            "a zstd frame of a layer packed in pieces asks for a window of more than \
             {PIECE_LIMIT} bytes"
        )));
    }
    loop {
        let mut block = [0u8; 3];
        if read_full(reader, &mut block)? < 3 {
            return Err(truncated());
        }
        frame.extend_from_slice(&block);
        let header = u32::from_le_bytes([block[0], block[1], block[2], 0]);
        let last = header & 1 != 0;
        let size = (header >> 3) as usize;
        let content = match (header >> 1) & 3 {
            1 => 1, // RLE: one byte, repeated
            3 => return Err(invalid("a zstd block has the reserved type")),
            _ => size,
        };
        if frame.len() + content > PIECE_LIMIT {
            return Err(invalid(format!(
                "a zstd frame is larger than {PIECE_LIMIT} bytes"
            )));
        }
        let start = frame.len();
        frame.resize(start + content, 0);
        if read_full(reader, &mut frame[start..])? < content {
            return Err(truncated());
        }
        if last {
            break;
        }
    }
    if descriptor & 4 != 0 {
        let start = frame.len();
        frame.resize(start + 4, 0);
        if read_full(reader, &mut frame[start..])? < 4 {
            return Err(truncated());
        }
    }
    Ok(Some(frame))
}

fn decode_zstd_rust(frame: &[u8], mut out: Vec<u8>) -> io::Result<Vec<u8>> {
    thread_local! {
        // One decoder (and its window buffer) per worker, reused.
        static DECODER: std::cell::RefCell<Option<ruzstd::decoding::FrameDecoder>> =
            const { std::cell::RefCell::new(None) };
    }
    let declared = zstd_content_size(frame).unwrap_or(0) as usize;
    out.clear();
    out.reserve_exact(declared.min(PIECE_LIMIT));
    let mut frame_decoder = DECODER.with(|d| d.borrow_mut().take()).unwrap_or_else(|| {
        let mut decoder = ruzstd::decoding::FrameDecoder::new();
        decoder.set_max_window_size(PIECE_LIMIT as u64);
        decoder
    });
    // The frame states its size and window (each at most PIECE_LIMIT,
    // checked when it was split off): decode it in one go into a buffer of
    // that size; a frame producing more fails instead of growing the buffer.
    let decoded = frame_decoder
        .decode_all_to_vec(frame, &mut out)
        .map_err(|e| invalid(e.to_string()))
        .and_then(|()| check_ruzstd_checksum(&frame_decoder));
    DECODER.with(|d| *d.borrow_mut() = Some(frame_decoder));
    decoded?;
    if out.len() != declared {
        return Err(invalid(
            "a zstd frame decodes to another size than it states",
        ));
    }
    Ok(out)
}

/// A frame's checksum, when it has one, against what ruzstd decoded
/// (libzstd checks it by itself).
fn check_ruzstd_checksum(decoder: &ruzstd::decoding::FrameDecoder) -> io::Result<()> {
    match decoder.get_checksum_from_data() {
        Some(stated) if Some(stated) != decoder.get_calculated_checksum() => Err(invalid(
            "a zstd frame decodes to other bytes than its checksum says (a corrupt layer)",
        )),
        _ => Ok(()),
    }
}

/// With the `libzstd` feature: the same, by the C library (about four
/// times faster than the pure-Rust decoder).
#[cfg(feature = "libzstd")]
fn decode_zstd_c(frame: &[u8], mut out: Vec<u8>) -> io::Result<Vec<u8>> {
    thread_local! {
        static DECODER: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let declared = zstd_content_size(frame).unwrap_or(0) as usize;
    out.clear();
    out.reserve_exact(declared.min(PIECE_LIMIT));
    let mut decompressor = match DECODER.with(|d| d.borrow_mut().take()) {
        Some(decompressor) => decompressor,
        None => zstd::bulk::Decompressor::new()?,
    };
    // Decodes into the buffer's capacity, never beyond it: a frame producing
    // more than it states fails (or is caught by the size check below).
    let decoded = decompressor.decompress_to_buffer(frame, &mut out);
    DECODER.with(|d| *d.borrow_mut() = Some(decompressor));
    decoded.map_err(|e| invalid(format!("a zstd frame does not decode: {e}")))?;
    if out.len() != declared {
        return Err(invalid(
            "a zstd frame decodes to another size than it states",
        ));
    }
    Ok(out)
}

/// Reads the next piece into the given (reused) buffer.
type Split = fn(&mut dyn Read, Vec<u8>) -> io::Result<Option<Vec<u8>>>;
/// Decodes a piece into the given (reused) buffer.
type Decode = fn(&[u8], Vec<u8>) -> io::Result<Vec<u8>>;

/// What the splitter and the workers hand to the reader, by piece number.
enum Piece {
    Data(usize, io::Result<Vec<u8>>),
    /// The stream ended after this many pieces.
    End(usize),
}

/// Decodes the pieces of `reader` on worker threads; the returned reader
/// yields their output in order.
fn parallel(
    reader: impl Read + Send + 'static,
    split: Split,
    decode: Decode,
) -> Box<dyn Read + Send> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 8));
    let (slots, slot_taken) = sync_channel::<()>(READ_AHEAD + workers);
    for _ in 0..READ_AHEAD + workers {
        let _ = slots.send(());
    }
    let (jobs, job_queue) = sync_channel::<(usize, Vec<u8>)>(workers);
    let (results, done) = channel::<Piece>();
    // Buffers go round instead of being allocated for every piece, so memory
    // stays at the slots' worth (the allocator keeps freed pieces otherwise).
    let (spent_pieces, piece_pool) = channel::<Vec<u8>>();
    let (spent_outputs, output_pool) = channel::<Vec<u8>>();
    let job_queue = Arc::new(Mutex::new(job_queue));
    let output_pool = Arc::new(Mutex::new(output_pool));
    for _ in 0..workers {
        let queue = job_queue.clone();
        let results = results.clone();
        let outputs = output_pool.clone();
        let spent_pieces = spent_pieces.clone();
        std::thread::spawn(move || loop {
            let job = match queue.lock() {
                Ok(queue) => queue.recv(),
                Err(_) => return,
            };
            let Ok((index, piece)) = job else { return };
            let out = outputs
                .lock()
                .ok()
                .and_then(|pool| pool.try_recv().ok())
                .unwrap_or_default();
            // A decoder that panics (ruzstd does on a failed allocation)
            // fails the pull instead of leaving the reader waiting forever.
            let decoded =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode(&piece, out)))
                    .unwrap_or_else(|_| {
                        Err(io::Error::other("decoding a piece of the layer failed"))
                    });
            let _ = spent_pieces.send(piece);
            if results.send(Piece::Data(index, decoded)).is_err() {
                return;
            }
        });
    }
    std::thread::spawn(move || splitter(reader, split, slot_taken, piece_pool, jobs, results));
    Box::new(InOrder {
        done,
        slots,
        spent: spent_outputs,
        waiting: BTreeMap::new(),
        next: 0,
        end: None,
        current: Vec::new(),
        position: 0,
    })
}

/// Reads the pieces one after the other and queues them for the workers,
/// never more than the free slots allow.
fn splitter(
    mut reader: impl Read,
    split: Split,
    slot_taken: Receiver<()>,
    pool: Receiver<Vec<u8>>,
    jobs: SyncSender<(usize, Vec<u8>)>,
    results: Sender<Piece>,
) {
    for index in 0.. {
        if slot_taken.recv().is_err() {
            return; // the reader is gone
        }
        let buffer = pool.try_recv().unwrap_or_default();
        match split(&mut reader, buffer) {
            Ok(Some(piece)) => {
                if jobs.send((index, piece)).is_err() {
                    return;
                }
            }
            Ok(None) => {
                let _ = results.send(Piece::End(index));
                return;
            }
            Err(e) => {
                let _ = results.send(Piece::Data(index, Err(e)));
                return;
            }
        }
    }
}

/// The decoded pieces, in order.
struct InOrder {
    done: Receiver<Piece>,
    slots: SyncSender<()>,
    /// Where used output buffers go back to the workers.
    spent: Sender<Vec<u8>>,
    waiting: BTreeMap<usize, io::Result<Vec<u8>>>,
    next: usize,
    end: Option<usize>,
    current: Vec<u8>,
    position: usize,
}

impl Read for InOrder {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.position == self.current.len() {
            if self.end == Some(self.next) {
                return Ok(0);
            }
            let piece = match self.waiting.remove(&self.next) {
                Some(piece) => piece,
                None => {
                    match self.done.recv() {
                        Ok(Piece::Data(index, piece)) => {
                            self.waiting.insert(index, piece);
                        }
                        Ok(Piece::End(count)) => self.end = Some(count),
                        Err(_) => return Err(io::Error::other("a decoding thread stopped")),
                    }
                    continue;
                }
            };
            let used = std::mem::replace(&mut self.current, piece?);
            let _ = self.spent.send(used);
            self.position = 0;
            self.next += 1;
            // The piece is ours now: the splitter may read another.
            let _ = self.slots.try_send(());
        }
        let n = buf.len().min(self.current.len() - self.position);
        buf[..n].copy_from_slice(&self.current[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

/// A frame's header bytes, then the rest of the stream.
type FrameSource<R> = io::Chain<io::Cursor<Vec<u8>>, R>;
type RuzstdStream<R> =
    ruzstd::decoding::StreamingDecoder<FrameSource<R>, ruzstd::decoding::FrameDecoder>;

/// Decodes every zstd frame of a stream, one after the other, on this
/// thread, as libzstd's stream decoder does: skippable frames are skipped,
/// a frame's checksum and stated size are checked, windows are at most the
/// decoders' default limit (128 MiB).
struct ZstdFrames<R: io::BufRead> {
    decoder: Option<RuzstdStream<R>>,
    reader: Option<R>,
    /// The current frame's stated decoded size, and what it gave so far.
    stated: Option<u64>,
    decoded: u64,
}

impl<R: io::BufRead> ZstdFrames<R> {
    fn new(reader: R) -> Self {
        ZstdFrames {
            decoder: None,
            reader: Some(reader),
            stated: None,
            decoded: 0,
        }
    }

    /// Starts on the next frame (skipping skippable ones); `false` at the end.
    fn next_frame(&mut self, mut reader: R) -> io::Result<bool> {
        let Some(head) = read_frame_header(&mut reader, Vec::new())? else {
            return Ok(false);
        };
        self.stated = zstd_content_size(&head);
        self.decoded = 0;
        let source = io::Cursor::new(head).chain(reader);
        self.decoder = Some(RuzstdStream::new(source).map_err(|e| invalid(e.to_string()))?);
        Ok(true)
    }
}

impl<R: io::BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(decoder) = &mut self.decoder {
                let n = decoder.read(buf)?;
                self.decoded += n as u64;
                if self.stated.is_some_and(|stated| self.decoded > stated) {
                    return Err(invalid(
                        "a zstd frame decodes to more than the size it states",
                    ));
                }
                if n > 0 {
                    return Ok(n);
                }
                // This frame is done: check it, take the reader back for the next one.
                if let Some(decoder) = self.decoder.take() {
                    check_ruzstd_checksum(&decoder.decoder)?;
                    if self.stated.is_some_and(|stated| self.decoded != stated) {
                        return Err(invalid(
                            "a zstd frame decodes to another size than it states",
                        ));
                    }
                    let (_header, reader) = decoder.into_inner().into_inner();
                    self.reader = Some(reader);
                }
            }
            let Some(reader) = self.reader.take() else {
                return Ok(0);
            };
            if !self.next_frame(reader)? {
                return Ok(0);
            }
        }
    }
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the compressed layer ends midway",
    )
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A gzip member recording its size in the `op` field, as packs write.
    fn member(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::GzBuilder::new()
            .extra(vec![
                GZIP_SIZE_FIELD[0],
                GZIP_SIZE_FIELD[1],
                4,
                0,
                0,
                0,
                0,
                0,
            ])
            .write(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        let mut member = encoder.finish().unwrap();
        let size = (member.len() as u32).to_le_bytes();
        member[16..20].copy_from_slice(&size);
        assert_eq!(gzip_member_size(&member), Some(member.len()));
        member
    }

    #[test]
    fn a_panicking_decoder_fails_the_read_instead_of_hanging() {
        // One piece in the middle makes its worker panic; the others decode.
        let mut x = 0x9e37_79b9u32;
        let odd: Vec<u8> = (0..4000)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect();
        let mut pieces: Vec<u8> = (0..3u8).flat_map(|i| member(&[i; 1000])).collect();
        pieces.extend(member(&odd));
        pieces.extend((3..9u8).flat_map(|i| member(&[i; 1000])));
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = parallel(io::Cursor::new(pieces), split_gzip, |piece, out| {
                assert!(piece.len() < 1000, "a decoder bug");
                decode_gzip(piece, out)
            });
            let _ = done.send(reader.read_to_end(&mut Vec::new()));
        });
        let outcome = result
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the read returned");
        assert!(outcome.is_err());
    }
}
