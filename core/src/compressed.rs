//! Decompressed input whose errors say what they mean for the file.
//!
//! A decompressor (flate2's gzip, zstd, ...) reports a compressed file cut short and a corrupt
//! compressed byte in its own ways, which differ between libraries and backends (flate2 with
//! `zlib-rs` reports both as [`std::io::ErrorKind::InvalidInput`]), and says nowhere how far
//! into the file it got. [`decompress`] puts the decompressor between two wrappers that
//! settle this from what it was given, whatever it reports:
//!
//! - a failure after the compressed bytes ran out is a file cut short:
//!   [`std::io::ErrorKind::UnexpectedEof`], "the gzip stream is cut short: the file ends
//!   after N compressed bytes, …" (a reader keeps what came before, as for an uncompressed
//!   file that ends early);
//! - any other failure of the decompressor is corrupt data:
//!   [`std::io::ErrorKind::InvalidData`], "corrupt gzip data at or before compressed byte N of
//!   the file: …" (N the end of the compressed bytes it had been shown);
//! - a failure to read the file itself is passed on unchanged.
//!
//! ```
//! use std::io::Read;
//! # fn main() -> std::io::Result<()> {
//! let bytes: &[u8] = b"not gzip";
//! let mut d = caliper_core::compressed::decompress(bytes, "gzip", |c| Ok(c.take(4)))?;
//! let mut out = Vec::new();
//! d.read_to_end(&mut out)?;
//! assert_eq!(out, b"not ");
//! assert_eq!(d.consumed(), 4);
//! # Ok(())
//! # }
//! ```

use std::io::{BufRead, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// What [`CompressedBytes`] saw of the compressed bytes (shared with [`Decompressed`]).
#[derive(Debug, Default)]
struct Seen {
    /// Bytes the decompressor has consumed.
    consumed: AtomicU64,
    /// The end of the bytes it has been shown (consumed or not): what it found wrong lies
    /// before it.
    shown: AtomicU64,
    /// The compressed bytes have run out.
    at_end: AtomicBool,
    /// Reading the file itself failed (the decompressor passes that error on).
    read_failed: AtomicBool,
}

/// The compressed bytes of a file as the decompressor reads them, counted (the input a
/// [`decompress`] decoder is built on).
#[derive(Debug)]
pub struct CompressedBytes<R: BufRead> {
    inner: R,
    seen: Arc<Seen>,
}

impl<R: BufRead> Read for CompressedBytes<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let b = self.fill_buf()?;
        let n = b.len().min(buf.len());
        buf[..n].copy_from_slice(&b[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for CompressedBytes<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        let seen = &self.seen;
        let b = self.inner.fill_buf().inspect_err(|_| {
            seen.read_failed.store(true, Relaxed);
        })?;
        seen.shown
            .store(seen.consumed.load(Relaxed) + b.len() as u64, Relaxed);
        if b.is_empty() {
            seen.at_end.store(true, Relaxed);
        }
        Ok(b)
    }

    fn consume(&mut self, n: usize) {
        self.seen.consumed.fetch_add(n as u64, Relaxed);
        self.inner.consume(n);
    }
}

/// A decompressor whose errors are classified as the [module](self) describes.
#[derive(Debug)]
pub struct Decompressed<D: Read> {
    inner: D,
    format: &'static str,
    seen: Arc<Seen>,
}

impl<D: Read> Decompressed<D> {
    /// Compressed bytes the decompressor has consumed so far.
    pub fn consumed(&self) -> u64 {
        self.seen.consumed.load(Relaxed)
    }
}

impl<D: Read> Read for Decompressed<D> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let at = self.seen.shown.load(Relaxed);
            if e.kind() == std::io::ErrorKind::Interrupted || self.seen.read_failed.load(Relaxed) {
                e
            } else if self.seen.at_end.load(Relaxed) {
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

/// The decompressed stream of `compressed` (read from its current position; `format`, such
/// as "gzip" or "zstd", names it in errors), through the decoder that `decoder` builds on the
/// counted compressed bytes. An error of `decoder` itself is passed on.
pub fn decompress<R: BufRead, D: Read>(
    compressed: R,
    format: &'static str,
    decoder: impl FnOnce(CompressedBytes<R>) -> std::io::Result<D>,
) -> std::io::Result<Decompressed<D>> {
    let seen = Arc::new(Seen::default());
    let inner = decoder(CompressedBytes {
        inner: compressed,
        seen: seen.clone(),
    })?;
    Ok(Decompressed {
        inner,
        format,
        seen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy decoder: passes bytes on until it meets `!` (corrupt) or the input ends before a
    /// closing `.` (cut short), reporting both with the same error kind, as flate2 with
    /// zlib-rs does.
    struct Toy<R: BufRead>(R, bool);

    impl<R: BufRead> Read for Toy<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.1 || buf.is_empty() {
                return Ok(0);
            }
            let b = self.0.fill_buf()?;
            let bad = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "toy");
            match b.first() {
                None => Err(bad()),
                Some(b'!') => Err(bad()),
                Some(b'.') => {
                    self.1 = true;
                    self.0.consume(1);
                    Ok(0)
                }
                Some(&c) => {
                    buf[0] = c;
                    self.0.consume(1);
                    Ok(1)
                }
            }
        }
    }

    fn run(input: &[u8]) -> (Vec<u8>, std::io::Result<usize>, u64) {
        // two-byte reads, so that "shown" trails the input
        let r = std::io::BufReader::with_capacity(2, input);
        let mut d = decompress(r, "toy", |c| Ok(Toy(c, false))).unwrap();
        let mut out = Vec::new();
        let res = d.read_to_end(&mut out);
        (out, res, d.consumed())
    }

    #[test]
    fn whole_stream_reads_to_its_end() {
        let (out, res, consumed) = run(b"abcd.");
        assert_eq!(out, b"abcd");
        assert_eq!(res.unwrap(), 4);
        assert_eq!(consumed, 5);
    }

    #[test]
    fn cut_stream_is_unexpected_eof_naming_the_length() {
        let (out, res, _) = run(b"abcde");
        assert_eq!(out, b"abcde");
        let e = res.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        let text = e.to_string();
        assert!(
            text.contains("the toy stream is cut short: the file ends after 5 compressed bytes"),
            "{text}"
        );
    }

    #[test]
    fn corrupt_byte_is_invalid_data_before_the_end_shown() {
        let (out, res, consumed) = run(b"abc!efgh.");
        assert_eq!(out, b"abc");
        assert_eq!(consumed, 3);
        let e = res.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        // the decompressor had been shown bytes 3..4 (the buffer refilled at byte 2 holds "c!")
        assert!(
            e.to_string()
                .contains("corrupt toy data at or before compressed byte 4 of the file: toy"),
            "{e}"
        );
    }

    #[test]
    fn failure_to_read_the_file_is_passed_on() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk on fire"))
            }
        }
        let r = std::io::BufReader::new(Failing);
        let mut d = decompress(r, "toy", |c| Ok(Toy(c, false))).unwrap();
        let e = d.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::Other);
        assert_eq!(e.to_string(), "disk on fire");
    }
}
