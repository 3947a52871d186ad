//! Input formats: the EventIO container ([`eventio`]) and the sim_telarray objects in it
//! ([`simtel`]), read from plain, gzip or zstd files detected by their magic bytes
//! ([`open_stream`]).

pub mod eventio;
pub mod simtel;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use caliper_core::{Position, ReadError};

/// How an input file is compressed (from its first bytes; the file name does not matter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Raw EventIO (starts with the little-endian sync marker `37 8A 1F D4`).
    None,
    /// gzip (`1F 8B`).
    Gzip,
    /// zstd (`28 B5 2F FD`).
    Zstd,
}

/// Detect the compression from the first bytes of a stream.
pub fn detect_compression(head: &[u8]) -> Option<Compression> {
    if head.starts_with(&[0x1F, 0x8B]) {
        Some(Compression::Gzip)
    } else if head.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
        Some(Compression::Zstd)
    } else if head.starts_with(&eventio::SYNC_LE) {
        Some(Compression::None)
    } else {
        None
    }
}

/// The compressed bytes of a file, counted as the decompressor consumes them, and whether it
/// has reached their end (shared with the [`Checked`] around the decompressor).
struct Counted<R: BufRead> {
    inner: R,
    state: std::sync::Arc<CompressedState>,
}

/// What [`Counted`] saw of the compressed bytes.
#[derive(Debug, Default)]
struct CompressedState {
    /// Bytes the decompressor has consumed.
    consumed: std::sync::atomic::AtomicU64,
    /// The end of the bytes it has been shown (consumed or not): what it found wrong lies
    /// before it.
    shown: std::sync::atomic::AtomicU64,
    /// The compressed bytes have run out.
    at_end: std::sync::atomic::AtomicBool,
    /// Reading the file itself failed (the decompressor passes that error on).
    read_failed: std::sync::atomic::AtomicBool,
}

impl<R: BufRead> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let b = self.fill_buf()?;
        let n = b.len().min(buf.len());
        buf[..n].copy_from_slice(&b[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        use std::sync::atomic::Ordering::Relaxed;
        let st = &self.state;
        let b = self.inner.fill_buf().inspect_err(|_| {
            st.read_failed.store(true, Relaxed);
        })?;
        st.shown
            .store(st.consumed.load(Relaxed) + b.len() as u64, Relaxed);
        if b.is_empty() {
            st.at_end.store(true, Relaxed);
        }
        Ok(b)
    }

    fn consume(&mut self, n: usize) {
        self.state
            .consumed
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        self.inner.consume(n);
    }
}

/// A decompressor whose failures say what they mean for the file: a failure to read the file
/// is passed on as it is, an error after the compressed bytes ran out is a file cut short ([`std::io::ErrorKind::UnexpectedEof`],
/// which [`eventio::TopLevelReader`] reads as the end of the data and reports as a
/// truncation where the EventIO objects stop), any other one corrupt data
/// ([`std::io::ErrorKind::InvalidData`]) before the end of the compressed bytes it has been
/// shown so far.
struct Checked<D: Read> {
    inner: D,
    format: &'static str,
    state: std::sync::Arc<CompressedState>,
}

impl<D: Read> Read for Checked<D> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            use std::sync::atomic::Ordering::Relaxed;
            let at = self.state.shown.load(Relaxed);
            if e.kind() == std::io::ErrorKind::Interrupted || self.state.read_failed.load(Relaxed)
            {
                e
            } else if self.state.at_end.load(Relaxed) {
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "the {} stream is cut short: the file ends after {at} compressed bytes, before the end of the compressed stream ({e})",
                        self.format
                    ),
                )
            } else {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "corrupt {} data at or before compressed byte {at} of the file: {e}",
                        self.format
                    ),
                )
            }
        })
    }
}

/// Open an input as a decompressed byte stream, detecting gzip / zstd / raw EventIO from the
/// magic bytes (eventio `file_types.is_eventio`).
pub fn open_stream(path: &Path) -> Result<(Box<dyn Read + Send>, Compression, u64), ReadError> {
    let file = File::open(path).map_err(|e| ReadError::io(path, &e))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let head = reader
        .fill_buf()
        .map_err(|e| ReadError::io(path, &e))?
        .to_vec();
    let Some(kind) = detect_compression(&head) else {
        let shown: Vec<String> = head.iter().take(4).map(|b| format!("{b:02X}")).collect();
        return Err(ReadError::unexpected(
            path,
            Position::byte(0),
            format!(
                "not an EventIO file: first bytes {} (expected gzip 1F 8B, zstd 28 B5 2F FD or the EventIO sync marker 37 8A 1F D4)",
                shown.join(" ")
            ),
        ));
    };
    let state = std::sync::Arc::new(CompressedState::default());
    let counted = Counted {
        inner: reader,
        state: state.clone(),
    };
    let checked = |inner: Box<dyn Read + Send>, format: &'static str| -> Box<dyn Read + Send> {
        Box::new(BufReader::with_capacity(
            1 << 20,
            Checked {
                inner,
                format,
                state: state.clone(),
            },
        ))
    };
    let stream: Box<dyn Read + Send> = match kind {
        Compression::None => Box::new(counted.inner),
        Compression::Gzip => checked(
            Box::new(flate2::bufread::MultiGzDecoder::new(counted)),
            "gzip",
        ),
        Compression::Zstd => {
            let dec = zstd::stream::read::Decoder::with_buffer(counted)
                .map_err(|e| ReadError::io(path, &e))?;
            checked(Box::new(dec), "zstd")
        }
    };
    Ok((stream, kind, size))
}
