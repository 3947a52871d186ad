//! A small FITS reader: headers, HDUs, image data (BITPIX 8/16/32/-32/-64 with BZERO/BSCALE),
//! tile-compressed images (`ZIMAGE = T` binary tables, RICE_1 and NOCOMPRESS), and gzip-wrapped
//! files.
//!
//! Format: FITS Standard 4.0 (IAU FITS Working Group 2018), sections 4 (headers), 7.1 (image
//! extensions), 7.3 (binary tables with variable-length arrays); tiled image compression
//! convention (Pence et al. 2013, FITS registry). The whole (decompressed) file is held in
//! memory: LSST raws are at most ~75 MB, and per-amp access then needs no seeking. Plain
//! (not gzip-wrapped) files are mapped read-only instead of copied out of the page cache
//! (0.7 ns per pixel saved, `BENCHMARKS.md`); the rest are read into a recycled buffer.

use std::io::Read;
use std::path::{Path, PathBuf};

use caliper_core::error::{Position, ReadError};

use super::rice;

/// The FITS block size.
pub const BLOCK: usize = 2880;
const CARD: usize = 80;

/// A header keyword value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `T` or `F`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A real number.
    Float(f64),
    /// A quoted string (trailing blanks removed, `''` unescaped).
    Str(String),
    /// No value (COMMENT, HISTORY, blank or undefined).
    None,
}

/// One header card.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    /// Keyword (upper case, trimmed).
    pub key: String,
    /// Its value.
    pub value: Value,
}

/// A parsed header.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Header {
    /// Cards in order.
    pub cards: Vec<Card>,
}

impl Header {
    /// The value of a keyword (first occurrence).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.cards.iter().find(|c| c.key == key).map(|c| &c.value)
    }
    /// An integer keyword.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 => Some(*f as i64),
            _ => None,
        }
    }
    /// A real keyword (integers accepted).
    pub fn float(&self, key: &str) -> Option<f64> {
        match self.get(key)? {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }
    /// A string keyword.
    pub fn string(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Value::Str(s) => Some(s.as_str()),
            _ => None,
        }
    }
    /// A logical keyword.
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

fn parse_value(text: &str) -> Value {
    let t = text.trim_start();
    if let Some(rest) = t.strip_prefix('\'') {
        // Quoted string; '' is an escaped quote.
        let mut s = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    s.push('\'');
                    chars.next();
                } else {
                    break;
                }
            } else {
                s.push(c);
            }
        }
        return Value::Str(s.trim_end().to_string());
    }
    let v = t.split('/').next().unwrap_or("").trim();
    match v {
        "" => Value::None,
        "T" => Value::Bool(true),
        "F" => Value::Bool(false),
        _ => {
            if let Ok(i) = v.parse::<i64>() {
                Value::Int(i)
            } else if let Ok(f) = v.replace(['D', 'd'], "E").parse::<f64>() {
                Value::Float(f)
            } else {
                Value::None
            }
        }
    }
}

/// How an HDU stores its pixels.
#[derive(Debug, Clone, PartialEq)]
pub enum Storage {
    /// No data.
    Empty,
    /// A plain image array.
    Image {
        /// Bits per pixel.
        bitpix: i64,
    },
    /// A tile-compressed image in a binary table.
    Tiled(TileInfo),
    /// A binary or ASCII table that is not an image.
    Table,
}

/// Tile-compression parameters of a `ZIMAGE` binary table.
#[derive(Debug, Clone, PartialEq)]
pub struct TileInfo {
    /// Bits per pixel of the uncompressed image.
    pub zbitpix: i64,
    /// Compression algorithm (`RICE_1`, `NOCOMPRESS`, ...).
    pub cmptype: String,
    /// Tile size along x and y.
    pub tile: [usize; 2],
    /// RICE block size.
    pub blocksize: usize,
    /// RICE bytes per pixel.
    pub bytepix: usize,
    /// Table row width in bytes.
    pub row_bytes: usize,
    /// Rows (= tiles).
    pub rows: usize,
    /// Offset of the `COMPRESSED_DATA` descriptor in a row.
    pub descriptor_offset: usize,
    /// `Q` (64-bit) rather than `P` (32-bit) descriptor.
    pub wide: bool,
    /// Heap offset from the start of the table data.
    pub heap_offset: usize,
}

/// One header-data unit.
#[derive(Debug, Clone)]
pub struct Hdu {
    /// 0-based HDU number.
    pub index: usize,
    /// Its header.
    pub header: Header,
    /// Byte offset of the header in the (decompressed) file.
    pub header_offset: usize,
    /// Byte offset of the data.
    pub data_offset: usize,
    /// Data size in bytes (without padding, including a table's heap).
    pub data_len: usize,
    /// Image size (NAXIS1, NAXIS2) for images, tiled or not; (0, 0) otherwise.
    pub shape: [usize; 2],
    /// How the pixels are stored.
    pub storage: Storage,
    /// BZERO (ZZERO is not used for integer images).
    pub bzero: f64,
    /// BSCALE.
    pub bscale: f64,
}

impl Hdu {
    /// EXTNAME, if any.
    pub fn extname(&self) -> Option<&str> {
        self.header.string("EXTNAME")
    }
}

/// Where a file's bytes live.
#[derive(Debug)]
enum FileBytes {
    /// Read (and un-gzipped if needed) into memory.
    Owned(Vec<u8>),
    /// Mapped read-only from the page cache (plain uncompressed files); `spare` is the recycled
    /// buffer handed to [`FitsFile::open_with_buffer`], given back by [`FitsFile::into_buffer`].
    Mapped { map: memmap2::Mmap, spare: Vec<u8> },
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Self::Owned(v) => v,
            Self::Mapped { map, .. } => map,
        }
    }
}

/// How [`FitsFile::open_with_buffer_mode`] gets the bytes of an uncompressed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Map the file (no copy out of the page cache); falls back to [`Access::Read`] when mapping
    /// fails. Gzip-wrapped files are always read (they have to be decompressed).
    Map,
    /// Copy the file into the recycled buffer with `read()`.
    Read,
}

/// A FITS file read into memory (or mapped, see [`Access`]).
#[derive(Debug)]
pub struct FitsFile {
    path: PathBuf,
    bytes: FileBytes,
    /// The HDUs in order.
    pub hdus: Vec<Hdu>,
    /// True if the file was gzip-wrapped.
    pub gzipped: bool,
}

/// Read a whole file, un-gzipping if it starts with the gzip magic bytes.
fn read_bytes(path: &Path, limit: Option<u64>) -> Result<(Vec<u8>, bool), ReadError> {
    read_bytes_into(path, limit, Vec::new())
}

/// [`read_bytes`] into a recycled buffer (its capacity is reused: a fresh 75 MB buffer per
/// file costs a page fault per 4 kB on first touch, as much as the copy itself).
fn read_bytes_into(
    path: &Path,
    limit: Option<u64>,
    mut out: Vec<u8>,
) -> Result<(Vec<u8>, bool), ReadError> {
    out.clear();
    let file = std::fs::File::open(path).map_err(|e| ReadError::io(path, &e))?;
    let mut reader = std::io::BufReader::new(file);
    let mut magic = [0u8; 2];
    let mut head = Vec::new();
    (&mut reader)
        .take(2)
        .read_to_end(&mut head)
        .map_err(|e| ReadError::io(path, &e))?;
    magic[..head.len()].copy_from_slice(&head);
    let chained = std::io::Cursor::new(head).chain(reader);
    let gz = magic == [0x1f, 0x8b];
    // Reserve the file size up front (uncompressed files): growing a 75 MB buffer by doubling
    // copies it several times.
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let want = match limit {
        Some(l) => l.min(size),
        None if gz => size.saturating_mul(2),
        None => size,
    };
    out.reserve(want as usize);
    let res = if gz {
        // a file cut short and corrupt compressed data told apart by `caliper_core::compressed`
        // (flate2 with zlib-rs reports both as `InvalidInput`)
        let dec =
            caliper_core::compressed::decompress(std::io::BufReader::new(chained), "gzip", |c| {
                Ok(flate2::bufread::MultiGzDecoder::new(c))
            })
            .map_err(|e| ReadError::io(path, &e))?;
        match limit {
            Some(l) => dec.take(l).read_to_end(&mut out),
            None => {
                let mut d = dec;
                d.read_to_end(&mut out)
            }
        }
    } else {
        match limit {
            Some(l) => chained.take(l).read_to_end(&mut out),
            None => {
                let mut c = chained;
                c.read_to_end(&mut out)
            }
        }
    };
    if let Err(e) = res {
        // (only the decompressor reports these two kinds here)
        let at = Position::byte(out.len() as u64);
        let after = format!("after {} decompressed bytes", out.len());
        return Err(match e.kind() {
            std::io::ErrorKind::UnexpectedEof if gz => {
                ReadError::truncated(path, at, format!("{e}; {after}"))
            }
            std::io::ErrorKind::InvalidData if gz => {
                ReadError::corrupt(path, at, format!("{e}; {after}"))
            }
            _ => ReadError::io(path, &e),
        });
    }
    Ok((out, gz))
}

/// Map a plain (not gzip-wrapped, non-empty) file read-only; `None` when the file is
/// gzip-wrapped, empty or cannot be mapped (the caller then reads it).
fn map_plain(path: &Path) -> Result<Option<memmap2::Mmap>, ReadError> {
    let mut file = std::fs::File::open(path).map_err(|e| ReadError::io(path, &e))?;
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        match file.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadError::io(path, &e)),
        }
    }
    if got < 2 || magic == [0x1f, 0x8b] {
        return Ok(None);
    }
    // SAFETY: the map is read-only and private to this `FitsFile`; what `Mmap::map` cannot
    // guarantee is that no other process modifies or truncates the file while it is mapped
    // (the bytes would change under us, and a truncation raises SIGBUS on access). Input
    // flats and biases are finished exposures that nothing writes while a run reads them —
    // the same assumption every reader of a file makes about its contents staying put.
    // Mapping errors (special files, exotic file systems) fall back to reading.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) };
    Ok(map.ok())
}

impl FitsFile {
    /// Read and index a whole file.
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        Self::open_with_buffer(path, Vec::new())
    }

    /// [`FitsFile::open`] with a recycled buffer for files that have to be read (its allocation
    /// is reused; get it back with [`FitsFile::into_buffer`]); uncompressed files are mapped.
    pub fn open_with_buffer(path: &Path, buffer: Vec<u8>) -> Result<Self, ReadError> {
        Self::open_with_buffer_mode(path, buffer, Access::Map)
    }

    /// [`FitsFile::open_with_buffer`] with the access mode chosen (both give the same bytes; the
    /// tests compare them and the benches time them).
    pub fn open_with_buffer_mode(
        path: &Path,
        buffer: Vec<u8>,
        access: Access,
    ) -> Result<Self, ReadError> {
        let (bytes, gzipped) = match access {
            Access::Map => match map_plain(path)? {
                Some(map) => (FileBytes::Mapped { map, spare: buffer }, false),
                None => {
                    let (b, gz) = read_bytes_into(path, None, buffer)?;
                    (FileBytes::Owned(b), gz)
                }
            },
            Access::Read => {
                let (b, gz) = read_bytes_into(path, None, buffer)?;
                (FileBytes::Owned(b), gz)
            }
        };
        let hdus = index_hdus(path, &bytes, false)?;
        Ok(Self {
            path: path.into(),
            bytes,
            hdus,
            gzipped,
        })
    }

    /// Read only the primary header (cheap: for pairing exposures before the full read).
    pub fn primary_header(path: &Path) -> Result<Header, ReadError> {
        // 40 blocks cover any primary header we expect; a longer one is read whole.
        let limit = 40 * BLOCK;
        let (bytes, _) = read_bytes(path, Some(limit as u64))?;
        match parse_header(path, &bytes, 0, 0) {
            Ok((header, _)) => Ok(header),
            Err(e) if e.is_truncated() && bytes.len() == limit => {
                let (all, _) = read_bytes(path, None)?;
                Ok(parse_header(path, &all, 0, 0)?.0)
            }
            Err(e) => Err(e),
        }
    }

    /// Give back the file buffer for reuse by [`FitsFile::open_with_buffer`].
    pub fn into_buffer(self) -> Vec<u8> {
        match self.bytes {
            FileBytes::Owned(v) => v,
            FileBytes::Mapped { spare, .. } => spare,
        }
    }

    /// True if the bytes are mapped from the file rather than read into memory.
    pub fn is_mapped(&self) -> bool {
        matches!(self.bytes, FileBytes::Mapped { .. })
    }

    /// The whole (decompressed) file.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The primary header.
    pub fn primary(&self) -> &Header {
        &self.hdus[0].header
    }

    /// The HDU whose EXTNAME equals `name`, compared case-insensitively.
    pub fn find(&self, name: &str) -> Option<&Hdu> {
        self.hdus.iter().find(|h| {
            h.extname()
                .is_some_and(|e| e.trim().eq_ignore_ascii_case(name))
        })
    }

    /// The stored bytes of a plain (uncompressed) int32 image with BZERO 0 and BSCALE 1, the
    /// LSSTCam layout, for decoding on the fly; `None` for any other HDU (and for data
    /// shorter than NAXIS1 x NAXIS2, which [`FitsFile::read_image_f32`] reports).
    pub fn plain_i32_data(&self, hdu: &Hdu) -> Option<&[u8]> {
        let n = hdu.shape[0] * hdu.shape[1];
        match hdu.storage {
            Storage::Image { bitpix: 32 } if hdu.bzero == 0.0 && hdu.bscale == 1.0 => {
                let data = self
                    .bytes
                    .get(hdu.data_offset..hdu.data_offset + hdu.data_len)?;
                data.get(..4 * n)
            }
            _ => None,
        }
    }

    /// Decode an image HDU into `out` (resized to NAXIS1 * NAXIS2, row-major, y slowest), with
    /// BZERO and BSCALE applied: `physical = BZERO + BSCALE * stored`.
    pub fn read_image_f32(
        &self,
        hdu: &Hdu,
        out: &mut Vec<f32>,
        scratch: &mut Vec<i32>,
    ) -> Result<(), ReadError> {
        let [nx, ny] = hdu.shape;
        let n = nx * ny;
        // Plain images overwrite every pixel: a reused buffer of the right size is not cleared
        // first (saves a pass over the image).
        let dense = matches!(
            hdu.storage,
            Storage::Image {
                bitpix: 8 | 16 | 32 | 64 | -32 | -64
            }
        );
        if !dense || out.len() != n {
            out.clear();
            out.resize(n, 0.0);
        }
        let data = &self.bytes[hdu.data_offset..hdu.data_offset + hdu.data_len];
        let (z, s) = (hdu.bzero, hdu.bscale);
        let pos = |byte: usize| Position::byte(byte as u64).with_event(hdu.index as u64);
        match &hdu.storage {
            Storage::Image { bitpix } => {
                let bp = (bitpix.unsigned_abs() / 8) as usize;
                if data.len() < n * bp {
                    return Err(ReadError::truncated(
                        &self.path,
                        pos(hdu.data_offset + data.len()),
                        "image data shorter than NAXIS1*NAXIS2",
                    ));
                }
                convert_be(*bitpix, &data[..n * bp], z, s, out);
                Ok(())
            }
            Storage::Tiled(t) => self.read_tiled(hdu, t, data, out, scratch),
            Storage::Empty | Storage::Table => Err(ReadError::unexpected(
                &self.path,
                pos(hdu.header_offset),
                format!(
                    "HDU {} ({}) holds no image",
                    hdu.index,
                    hdu.extname().unwrap_or("no EXTNAME")
                ),
            )),
        }
    }

    fn read_tiled(
        &self,
        hdu: &Hdu,
        t: &TileInfo,
        data: &[u8],
        out: &mut [f32],
        scratch: &mut Vec<i32>,
    ) -> Result<(), ReadError> {
        let [nx, ny] = hdu.shape;
        let [tx, ty] = t.tile;
        let tiles_x = nx.div_ceil(tx);
        let tiles_y = ny.div_ceil(ty);
        let pos = |byte: usize| Position::byte(byte as u64).with_event(hdu.index as u64);
        if tiles_x * tiles_y != t.rows {
            return Err(ReadError::corrupt(
                &self.path,
                pos(hdu.header_offset),
                format!(
                    "tile table has {} rows but ZNAXIS/ZTILE imply {} tiles",
                    t.rows,
                    tiles_x * tiles_y
                ),
            ));
        }
        let (z, s) = (hdu.bzero, hdu.bscale);
        for tile in 0..t.rows {
            let row = &data[tile * t.row_bytes..(tile + 1) * t.row_bytes];
            let d = &row[t.descriptor_offset..];
            let (count, offset) = if t.wide {
                (
                    u64::from_be_bytes(d[0..8].try_into().unwrap_or([0; 8])) as usize,
                    u64::from_be_bytes(d[8..16].try_into().unwrap_or([0; 8])) as usize,
                )
            } else {
                (
                    u32::from_be_bytes(d[0..4].try_into().unwrap_or([0; 4])) as usize,
                    u32::from_be_bytes(d[4..8].try_into().unwrap_or([0; 4])) as usize,
                )
            };
            let start = t.heap_offset + offset;
            let Some(comp) = data.get(start..start + count) else {
                return Err(ReadError::truncated(
                    &self.path,
                    pos(hdu.data_offset + start),
                    format!(
                        "tile {tile}: compressed bytes {start}..{} lie beyond the heap",
                        start + count
                    ),
                ));
            };
            let (tyi, txi) = (tile / tiles_x, tile % tiles_x);
            let x0 = txi * tx;
            let y0 = tyi * ty;
            let w = tx.min(nx - x0);
            let h = ty.min(ny - y0);
            scratch.clear();
            scratch.resize(w * h, 0);
            match t.cmptype.as_str() {
                "RICE_1" | "RICE_ONE" => rice::decode(comp, t.bytepix, t.blocksize, scratch)
                    .map_err(|e| {
                        ReadError::corrupt(
                            &self.path,
                            pos(hdu.data_offset + start),
                            format!("tile {tile}: {e}"),
                        )
                    })?,
                "NOCOMPRESS" => {
                    let bp = (t.zbitpix.unsigned_abs() / 8) as usize;
                    if comp.len() < w * h * bp || t.zbitpix < 0 {
                        return Err(ReadError::corrupt(
                            &self.path,
                            pos(hdu.data_offset + start),
                            format!("tile {tile}: bad NOCOMPRESS tile"),
                        ));
                    }
                    for (o, c) in scratch.iter_mut().zip(comp.chunks_exact(bp)) {
                        *o = match bp {
                            1 => c[0] as i32,
                            2 => i16::from_be_bytes([c[0], c[1]]) as i32,
                            _ => i32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                        };
                    }
                }
                other => {
                    return Err(ReadError::unexpected(
                        &self.path,
                        pos(hdu.header_offset),
                        format!(
                            "tile compression {other} is not supported (RICE_1 and NOCOMPRESS are)"
                        ),
                    ));
                }
            }
            for r in 0..h {
                let dst = &mut out[(y0 + r) * nx + x0..(y0 + r) * nx + x0 + w];
                for (o, &v) in dst.iter_mut().zip(&scratch[r * w..(r + 1) * w]) {
                    // BITPIX 8 is unsigned in FITS; RICE with bytepix 1 stores signed values
                    // that CFITSIO reinterprets as unsigned bytes.
                    let v = if t.zbitpix == 8 {
                        (v & 0xff) as f64
                    } else {
                        v as f64
                    };
                    *o = (z + s * v) as f32;
                }
            }
        }
        Ok(())
    }
}

/// Convert big-endian stored values to physical f32.
fn convert_be(bitpix: i64, data: &[u8], z: f64, s: f64, out: &mut [f32]) {
    // Integer fast path: with BSCALE = 1 and an integer BZERO the result is exact in f64 and
    // rounding to f32 is exact below 2^24.
    match bitpix {
        8 => out
            .iter_mut()
            .zip(data)
            .for_each(|(o, &b)| *o = (z + s * b as f64) as f32),
        16 => {
            let (zf, sf) = (z as f32, s as f32);
            let exact = s == 1.0 && z.fract() == 0.0 && z.abs() < 1e7;
            for (o, c) in out.iter_mut().zip(data.chunks_exact(2)) {
                let v = i16::from_be_bytes([c[0], c[1]]);
                *o = if exact {
                    zf + v as f32
                } else {
                    (z + s * v as f64) as f32
                };
            }
            let _ = sf;
        }
        // BZERO 0, BSCALE 1 (LSST int32): `v as f32` is the same single rounding as the f64
        // path below, and vectorises (SSE2 on x86_64).
        32 if z == 0.0 && s == 1.0 => decode_i32_be(data, out),
        32 => {
            for (o, c) in out.iter_mut().zip(data.chunks_exact(4)) {
                let v = i32::from_be_bytes([c[0], c[1], c[2], c[3]]);
                *o = (z + s * v as f64) as f32;
            }
        }
        64 => {
            for (o, c) in out.iter_mut().zip(data.chunks_exact(8)) {
                let v = i64::from_be_bytes(c.try_into().unwrap_or([0; 8]));
                *o = (z + s * v as f64) as f32;
            }
        }
        -32 => {
            for (o, c) in out.iter_mut().zip(data.chunks_exact(4)) {
                *o = (z + s * f32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f64) as f32;
            }
        }
        _ => {
            for (o, c) in out.iter_mut().zip(data.chunks_exact(8)) {
                *o = (z + s * f64::from_be_bytes(c.try_into().unwrap_or([0; 8]))) as f32;
            }
        }
    }
}

/// Big-endian int32 to f32 (`v as f32`), portable version of [`decode_i32_be`].
fn decode_i32_be_scalar(data: &[u8], out: &mut [f32]) {
    for (o, c) in out.iter_mut().zip(data.chunks_exact(4)) {
        *o = i32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f32;
    }
}

/// Big-endian int32 to f32: SSE2 byte swap and conversion on x86_64 (part of its baseline;
/// `cvtdq2ps` rounds to nearest like `as f32`), else portable. Tested against each other.
pub(crate) fn decode_i32_be(data: &[u8], out: &mut [f32]) {
    let n = out.len().min(data.len() / 4);
    #[cfg(target_arch = "x86_64")]
    let done = be_i32x4_blocks(data, n, |i, v| {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is always available on x86_64; i + 4 <= n <= out.len() (unaligned
        // store).
        unsafe { _mm_storeu_ps(out.as_mut_ptr().add(i), _mm_cvtepi32_ps(v)) };
    });
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    decode_i32_be_scalar(&data[4 * done..4 * n], &mut out[done..n]);
}

/// The SSE2 loop of the big-endian int32 decoders: for every `i = 0, 4, 8, ...` with
/// `i + 4 <= n` (`n` at most `b.len() / 4`), calls `f(i, v)` with `v` the four big-endian
/// int32 at `b[4i..4i + 16]`, byte-swapped to native order; returns the count done (`n`
/// rounded down to a multiple of 4), leaving the rest to the caller's scalar tail.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn be_i32x4_blocks(
    b: &[u8],
    n: usize,
    mut f: impl FnMut(usize, std::arch::x86_64::__m128i),
) -> usize {
    use std::arch::x86_64::*;
    let full = n.min(b.len() / 4) / 4 * 4;
    // SAFETY: SSE2 is always available on x86_64; for i < full, b[4i..4i + 16] is in bounds
    // (unaligned load).
    unsafe {
        let lo8 = _mm_set1_epi32(0x0000_ff00);
        let hi8 = _mm_set1_epi32(0x00ff_0000);
        let mut i = 0;
        while i < full {
            let v = _mm_loadu_si128(b.as_ptr().add(4 * i) as *const __m128i);
            let sw = _mm_or_si128(
                _mm_or_si128(_mm_slli_epi32(v, 24), _mm_srli_epi32(v, 24)),
                _mm_or_si128(
                    _mm_and_si128(_mm_slli_epi32(v, 8), hi8),
                    _mm_and_si128(_mm_srli_epi32(v, 8), lo8),
                ),
            );
            f(i, sw);
            i += 4;
        }
    }
    full
}

/// Parse a header starting at `offset`; returns it and the offset just past its END block.
fn parse_header(
    path: &Path,
    bytes: &[u8],
    offset: usize,
    hdu: usize,
) -> Result<(Header, usize), ReadError> {
    let mut cards = Vec::new();
    let mut pos = offset;
    loop {
        if pos + CARD > bytes.len() {
            return Err(ReadError::truncated(
                path,
                Position::byte(pos as u64).with_event(hdu as u64),
                format!("header of HDU {hdu} has no END card before the end of the file"),
            ));
        }
        let card = &bytes[pos..pos + CARD];
        pos += CARD;
        if !card.iter().all(|&b| (0x20..=0x7e).contains(&b)) {
            return Err(ReadError::corrupt(
                path,
                Position::byte((pos - CARD) as u64).with_event(hdu as u64),
                format!("header card of HDU {hdu} holds non-ASCII bytes (not a FITS header)"),
            ));
        }
        let text = std::str::from_utf8(card).unwrap_or("");
        let key = text[..8].trim().to_string();
        if key == "END" {
            break;
        }
        let value = if &text[8..10] == "= " || (text.len() > 9 && &text[8..9] == "=") {
            parse_value(&text[10.min(text.len())..])
        } else {
            Value::None
        };
        cards.push(Card { key, value });
    }
    if cards.is_empty()
        || (hdu == 0 && cards[0].key != "SIMPLE")
        || (hdu > 0 && cards[0].key != "XTENSION")
    {
        return Err(ReadError::corrupt(
            path,
            Position::byte(offset as u64).with_event(hdu as u64),
            format!(
                "HDU {hdu} header must start with {}",
                if hdu == 0 { "SIMPLE" } else { "XTENSION" }
            ),
        ));
    }
    let end = pos.div_ceil(BLOCK) * BLOCK;
    Ok((Header { cards }, end))
}

fn need(path: &Path, h: &Header, key: &str, at: usize, hdu: usize) -> Result<i64, ReadError> {
    h.int(key).ok_or_else(|| {
        ReadError::corrupt(
            path,
            Position::byte(at as u64).with_event(hdu as u64),
            format!("HDU {hdu}: missing or non-integer {key}"),
        )
    })
}

/// Index every HDU of an in-memory file.
fn index_hdus(path: &Path, bytes: &[u8], _lenient: bool) -> Result<Vec<Hdu>, ReadError> {
    let mut hdus = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        // Trailing zero padding after the last HDU is allowed by some writers.
        if !hdus.is_empty() && bytes[offset..].iter().take(CARD).all(|&b| b == 0) {
            break;
        }
        let index = hdus.len();
        let (header, data_offset) = parse_header(path, bytes, offset, index)?;
        let naxis = need(path, &header, "NAXIS", offset, index)?;
        let bitpix = need(path, &header, "BITPIX", offset, index)?;
        let mut dims = Vec::new();
        for k in 1..=naxis {
            dims.push(need(path, &header, &format!("NAXIS{k}"), offset, index)?.max(0) as usize);
        }
        let pcount = header.int("PCOUNT").unwrap_or(0).max(0) as usize;
        let gcount = header.int("GCOUNT").unwrap_or(1).max(1) as usize;
        let elems: usize = if naxis == 0 { 0 } else { dims.iter().product() };
        let data_len = (bitpix.unsigned_abs() as usize / 8) * gcount * (pcount + elems);
        let padded = data_len.div_ceil(BLOCK) * BLOCK;
        if data_offset + data_len > bytes.len() {
            return Err(ReadError::truncated(
                path,
                Position::byte(bytes.len() as u64).with_event(index as u64),
                format!(
                    "HDU {index} ({}) needs {data_len} data bytes from byte {data_offset} but the file ends after {} bytes",
                    header.string("EXTNAME").unwrap_or("no EXTNAME"),
                    bytes.len()
                ),
            ));
        }
        let xt = header
            .string("XTENSION")
            .unwrap_or("")
            .trim()
            .to_ascii_uppercase();
        let bzero = header.float("BZERO").unwrap_or(0.0);
        let bscale = header.float("BSCALE").unwrap_or(1.0);
        let (storage, shape) = if index == 0 || xt == "IMAGE" {
            if naxis == 0 || elems == 0 {
                (Storage::Empty, [0, 0])
            } else if naxis == 2 {
                (Storage::Image { bitpix }, [dims[0], dims[1]])
            } else {
                (Storage::Image { bitpix }, [dims[0], elems / dims[0].max(1)])
            }
        } else if xt == "BINTABLE" && header.bool("ZIMAGE") == Some(true) {
            let t = tile_info(path, &header, offset, index, &dims, pcount)?;
            let zn1 = need(path, &header, "ZNAXIS1", offset, index)? as usize;
            let zn2 = header.int("ZNAXIS2").unwrap_or(1).max(1) as usize;
            (Storage::Tiled(t), [zn1, zn2])
        } else {
            (Storage::Table, [0, 0])
        };
        hdus.push(Hdu {
            index,
            header,
            header_offset: offset,
            data_offset,
            data_len,
            shape,
            storage,
            bzero,
            bscale,
        });
        offset = data_offset + padded;
    }
    // A FITS file is a whole number of 2880-byte blocks; a cut inside the last HDU's padding
    // would otherwise look like a complete, shorter file.
    if !bytes.len().is_multiple_of(BLOCK) {
        return Err(ReadError::truncated(
            path,
            Position::byte(bytes.len() as u64).with_event(hdus.len().saturating_sub(1) as u64),
            format!(
                "file size {} is not a multiple of 2880 bytes: cut short after HDU {} of what it holds",
                bytes.len(),
                hdus.len().saturating_sub(1)
            ),
        ));
    }
    Ok(hdus)
}

fn tile_info(
    path: &Path,
    h: &Header,
    at: usize,
    hdu: usize,
    dims: &[usize],
    _pcount: usize,
) -> Result<TileInfo, ReadError> {
    let bad = |m: String| {
        ReadError::corrupt(
            path,
            Position::byte(at as u64).with_event(hdu as u64),
            format!("HDU {hdu}: {m}"),
        )
    };
    let tfields = need(path, h, "TFIELDS", at, hdu)? as usize;
    let mut offset = 0usize;
    let mut descriptor = None;
    for k in 1..=tfields {
        let form = h
            .string(&format!("TFORM{k}"))
            .ok_or_else(|| bad(format!("missing TFORM{k}")))?
            .trim()
            .to_string();
        let ttype = h
            .string(&format!("TTYPE{k}"))
            .unwrap_or("")
            .trim()
            .to_ascii_uppercase();
        let digits: String = form.chars().take_while(|c| c.is_ascii_digit()).collect();
        let repeat: usize = if digits.is_empty() {
            1
        } else {
            digits
                .parse()
                .map_err(|_| bad(format!("bad TFORM{k} '{form}'")))?
        };
        let code = form[digits.len()..]
            .chars()
            .next()
            .ok_or_else(|| bad(format!("bad TFORM{k} '{form}'")))?;
        let width = match code {
            'L' | 'X' | 'B' | 'A' => 1,
            'I' => 2,
            'J' | 'E' => 4,
            'K' | 'D' | 'C' => 8,
            'M' => 16,
            'P' => 8,
            'Q' => 16,
            _ => return Err(bad(format!("unknown TFORM{k} '{form}'"))),
        };
        let bytes = if code == 'X' {
            repeat.div_ceil(8)
        } else {
            repeat * width
        };
        if ttype == "COMPRESSED_DATA" {
            if code != 'P' && code != 'Q' {
                return Err(bad(format!(
                    "COMPRESSED_DATA must be a variable-length column, found '{form}'"
                )));
            }
            descriptor = Some((offset, code == 'Q'));
        }
        offset += bytes;
    }
    let (descriptor_offset, wide) = descriptor
        .ok_or_else(|| bad("tile-compressed table has no COMPRESSED_DATA column".into()))?;
    let row_bytes = dims.first().copied().unwrap_or(0);
    let rows = dims.get(1).copied().unwrap_or(0);
    if offset > row_bytes {
        return Err(bad(format!(
            "columns need {offset} bytes per row but NAXIS1 = {row_bytes}"
        )));
    }
    let zn1 = need(path, h, "ZNAXIS1", at, hdu)?.max(0) as usize;
    let tile = [
        h.int("ZTILE1").unwrap_or(zn1 as i64).max(1) as usize,
        h.int("ZTILE2").unwrap_or(1).max(1) as usize,
    ];
    let mut blocksize = 32;
    let mut bytepix = None;
    for k in 1..=20 {
        let Some(name) = h.string(&format!("ZNAME{k}")) else {
            break;
        };
        let v = h.int(&format!("ZVAL{k}"));
        match (name.trim().to_ascii_uppercase().as_str(), v) {
            ("BLOCKSIZE", Some(v)) => blocksize = v.max(1) as usize,
            ("BYTEPIX", Some(v)) => bytepix = Some(v.max(1) as usize),
            _ => {}
        }
    }
    let zbitpix = need(path, h, "ZBITPIX", at, hdu)?;
    // Without BYTEPIX, RICE_1 uses the image's own pixel size.
    let bytepix = bytepix.unwrap_or((zbitpix.unsigned_abs() / 8).max(1) as usize);
    let heap_offset = h
        .int("THEAP")
        .map(|v| v.max(0) as usize)
        .unwrap_or(row_bytes * rows);
    Ok(TileInfo {
        zbitpix,
        cmptype: h
            .string("ZCMPTYPE")
            .unwrap_or("")
            .trim()
            .to_ascii_uppercase(),
        tile,
        blocksize,
        bytepix,
        row_bytes,
        rows,
        descriptor_offset,
        wide,
        heap_offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mapping gives the same bytes and HDUs as reading, for plain files; gzip-wrapped files
    /// are read (not mapped) and decompress to the same bytes; a truncated plain file fails
    /// with the same truncation error either way, and a gzip-wrapped file cut short with a
    /// truncation error and one with a damaged byte with a corrupt-input error; the recycled
    /// buffer comes back.
    #[test]
    fn mapping_matches_reading() {
        use super::super::fits_write::{CardValue, ImageExt, PixelStorage, to_bytes, write};
        let dir = tempfile::tempdir().unwrap();
        let ext = ImageExt {
            cards: vec![(
                "EXTNAME".into(),
                CardValue::Str("Segment10".into()),
                String::new(),
            )],
            nx: 37,
            ny: 11,
            pixels: (0..37 * 11).map(|i| i * 1000 - 7).collect(),
        };
        let bytes = to_bytes(&Vec::new(), &[ext.clone(), ext], PixelStorage::Int32);
        let plain = dir.path().join("a.fits");
        let gz = dir.path().join("a.fits.gz");
        let cut = dir.path().join("cut.fits");
        write(&plain, &bytes, false).unwrap();
        write(&gz, &bytes, true).unwrap();
        write(&cut, &bytes[..bytes.len() - 100], false).unwrap();
        let buf = Vec::with_capacity(12345);
        let m = FitsFile::open_with_buffer_mode(&plain, buf, Access::Map).unwrap();
        let r = FitsFile::open_with_buffer_mode(&plain, Vec::new(), Access::Read).unwrap();
        let z = FitsFile::open_with_buffer_mode(&gz, Vec::new(), Access::Map).unwrap();
        assert!(m.is_mapped() && !r.is_mapped() && !z.is_mapped() && z.gzipped);
        assert_eq!(m.bytes(), &bytes[..]);
        assert_eq!(r.bytes(), &bytes[..]);
        assert_eq!(z.bytes(), &bytes[..]);
        assert_eq!(m.hdus.len(), 3);
        for (a, b) in m.hdus.iter().zip(&r.hdus) {
            assert_eq!(
                (a.data_offset, a.data_len, a.shape),
                (b.data_offset, b.data_len, b.shape)
            );
            assert_eq!(m.plain_i32_data(a), r.plain_i32_data(b));
        }
        assert!(m.into_buffer().capacity() >= 12345);
        let em = FitsFile::open_with_buffer_mode(&cut, Vec::new(), Access::Map).unwrap_err();
        let er = FitsFile::open_with_buffer_mode(&cut, Vec::new(), Access::Read).unwrap_err();
        assert!(em.is_truncated(), "{em}");
        assert_eq!(em.to_string(), er.to_string());
        // a gzip-wrapped file cut short is a truncation too, not an I/O failure
        let gz_bytes = std::fs::read(&gz).unwrap();
        let cut_gz = dir.path().join("cut.fits.gz");
        std::fs::write(&cut_gz, &gz_bytes[..gz_bytes.len() / 2]).unwrap();
        let ez = FitsFile::open_with_buffer_mode(&cut_gz, Vec::new(), Access::Read).unwrap_err();
        assert!(ez.is_truncated(), "{ez}");
        let text = ez.to_string();
        let n = gz_bytes.len() / 2;
        assert!(
            text.contains(&format!(
                "the gzip stream is cut short: the file ends after {n} compressed bytes"
            )),
            "{text}"
        );
        // a damaged byte inside the compressed data is corrupt input, not a truncation (flate2
        // with zlib-rs reports both as the same error kind)
        for at in [gz_bytes.len() / 3, gz_bytes.len() / 2] {
            let mut bad = gz_bytes.clone();
            bad[at] ^= 0xFF;
            let bad_gz = dir.path().join("bad.fits.gz");
            std::fs::write(&bad_gz, &bad).unwrap();
            let e = FitsFile::open_with_buffer_mode(&bad_gz, Vec::new(), Access::Read).unwrap_err();
            assert_eq!(e.kind, caliper_core::ReadErrorKind::Corrupt, "{e}");
            assert!(
                e.to_string()
                    .contains("corrupt gzip data at or before compressed byte"),
                "{e}"
            );
        }
    }

    #[test]
    fn decodes_int32_like_the_portable_loop() {
        let vals: Vec<i32> = (0..1003)
            .map(|i: i32| match i % 5 {
                0 => i.wrapping_mul(2_654_435_761u32 as i32),
                1 => -i,
                2 => i32::MAX - i,
                3 => i32::MIN + i,
                _ => 16_777_217 + i,
            })
            .collect();
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_be_bytes()).collect();
        for len in [0, 1, 3, 4, 5, 1003] {
            let (mut a, mut b) = (vec![0f32; len], vec![0f32; len]);
            decode_i32_be(&bytes[..4 * len], &mut a);
            decode_i32_be_scalar(&bytes[..4 * len], &mut b);
            let mut c = vec![0f32; len];
            convert_be(32, &bytes[..4 * len], 0.5, 1.0, &mut c);
            assert_eq!(a, b);
            for ((x, v), y) in a.iter().zip(&vals).zip(&c) {
                assert_eq!(*x, *v as f64 as f32);
                assert_eq!(*y, (0.5 + *v as f64) as f32);
            }
        }
    }

    #[test]
    fn parses_values() {
        assert_eq!(
            parse_value(" 'FLAT    '           / comment"),
            Value::Str("FLAT".into())
        );
        assert_eq!(parse_value("  'it''s'"), Value::Str("it's".into()));
        assert_eq!(
            parse_value("                 7.83172 / Exposure"),
            Value::Float(7.83172)
        );
        assert_eq!(parse_value("                   32 / bits"), Value::Int(32));
        assert_eq!(parse_value("                    T"), Value::Bool(true));
        assert_eq!(parse_value("  1.5D3"), Value::Float(1500.0));
    }
}
