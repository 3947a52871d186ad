//! Input formats: the EventIO container ([`eventio`]) and the sim_telarray objects in it
//! ([`simtel`]), read from plain, gzip or zstd files detected by their magic bytes
//! ([`open_stream`]).

pub mod eventio;
pub mod simtel;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use caliper_core::compressed::decompress;
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
    // decompressor errors classified (a cut-short file, corrupt data at a compressed byte) by
    // `caliper_core::compressed`, then read in 1 MB blocks
    let buffered = |d: Box<dyn Read + Send>| -> Box<dyn Read + Send> {
        Box::new(BufReader::with_capacity(1 << 20, d))
    };
    let stream: Box<dyn Read + Send> = match kind {
        Compression::None => Box::new(reader),
        Compression::Gzip => buffered(Box::new(
            decompress(reader, "gzip", |c| {
                Ok(flate2::bufread::MultiGzDecoder::new(c))
            })
            .map_err(|e| ReadError::io(path, &e))?,
        )),
        Compression::Zstd => buffered(Box::new(
            decompress(reader, "zstd", zstd::stream::read::Decoder::with_buffer)
                .map_err(|e| ReadError::io(path, &e))?,
        )),
    };
    Ok((stream, kind, size))
}
