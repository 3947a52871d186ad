//! CBF (Crystallographic Binary File, imgCIF) images: read and write, with the byte-offset codec.
//!
//! A CBF is CIF text with one binary section (`_array_data.data`). The binary section has a MIME
//! header (`Content-Type ... conversions="x-CBF_BYTE_OFFSET"`, `X-Binary-Size`,
//! `X-Binary-Element-Type`, `X-Binary-Size-Fastest-Dimension`, `Content-MD5`, ...), a blank
//! line, the 4 magic bytes `0C 1A 04 D5`, then `X-Binary-Size` bytes of (compressed) data.
//! The layout and the codec follow the notes in `specs/xray-formats.md` section (i), read from
//! fabio's `cbfimage.py` / `compression.py` and CBFlib's documentation.
//!
//! What is supported:
//! - conversions `x-CBF_BYTE_OFFSET` (integers; decoded in i64 with every escape accepted, as the
//!   spec recommends) and `x-CBF_NONE` (raw elements, either byte order);
//! - element types signed/unsigned 8/16/32/64-bit integers and `signed 32/64-bit real IEEE`;
//! - `Content-MD5` is verified when present (base64 of the MD5 of the `X-Binary-Size` bytes);
//! - Pilatus `# Key value` header lines are kept as raw lines and as (key, value) pairs.
//!
//! Writing: integer images with byte-offset compression exactly as fabio writes them (same
//! MIME header lines, `X-Binary-Size-Padding: 1`, no padding bytes, CR LF line ends); float
//! images as `x-CBF_NONE` IEEE little-endian elements.
//!
//! ```
//! use caliper_core::cbf::{CbfImage, CbfData};
//!
//! let img = CbfImage::new(3, 2, CbfData::I32(vec![0, 1, 2, 300, -5, 70000]));
//! let bytes = img.to_bytes();
//! let back = CbfImage::parse(&bytes, std::path::Path::new("mem.cbf")).unwrap();
//! assert_eq!(back.width, 3);
//! assert_eq!(back.data, img.data);
//! ```

use std::path::Path;

use md5::{Digest, Md5};

use crate::error::{Position, ReadError};

/// The 4 bytes that start the binary data (after the MIME header's blank line).
pub const MAGIC: [u8; 4] = [0x0C, 0x1A, 0x04, 0xD5];
/// The MIME boundary opening the binary section.
pub const BOUNDARY: &str = "--CIF-BINARY-FORMAT-SECTION--";
/// The closing MIME boundary.
pub const BOUNDARY_END: &str = "--CIF-BINARY-FORMAT-SECTION----";

/// The element type of the stored array (`X-Binary-Element-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementType {
    /// `signed 8-bit integer`
    I8,
    /// `signed 16-bit integer`
    I16,
    /// `signed 32-bit integer` (Pilatus)
    I32,
    /// `signed 64-bit integer`
    I64,
    /// `unsigned 8-bit integer`
    U8,
    /// `unsigned 16-bit integer`
    U16,
    /// `unsigned 32-bit integer`
    U32,
    /// `unsigned 64-bit integer`
    U64,
    /// `signed 32-bit real IEEE`
    F32,
    /// `signed 64-bit real IEEE`
    F64,
}

impl ElementType {
    /// The CBF name (without quotes).
    pub fn cbf_name(self) -> &'static str {
        match self {
            ElementType::I8 => "signed 8-bit integer",
            ElementType::I16 => "signed 16-bit integer",
            ElementType::I32 => "signed 32-bit integer",
            ElementType::I64 => "signed 64-bit integer",
            ElementType::U8 => "unsigned 8-bit integer",
            ElementType::U16 => "unsigned 16-bit integer",
            ElementType::U32 => "unsigned 32-bit integer",
            ElementType::U64 => "unsigned 64-bit integer",
            ElementType::F32 => "signed 32-bit real IEEE",
            ElementType::F64 => "signed 64-bit real IEEE",
        }
    }

    /// Parse a CBF name (case-insensitive, quotes and spaces trimmed).
    pub fn from_cbf_name(name: &str) -> Option<Self> {
        let n = name.trim().trim_matches('"').trim().to_ascii_lowercase();
        let all = [
            ElementType::I8,
            ElementType::I16,
            ElementType::I32,
            ElementType::I64,
            ElementType::U8,
            ElementType::U16,
            ElementType::U32,
            ElementType::U64,
            ElementType::F32,
            ElementType::F64,
        ];
        all.into_iter()
            .find(|t| t.cbf_name().eq_ignore_ascii_case(&n))
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            ElementType::I8 | ElementType::U8 => 1,
            ElementType::I16 | ElementType::U16 => 2,
            ElementType::I32 | ElementType::U32 | ElementType::F32 => 4,
            ElementType::I64 | ElementType::U64 | ElementType::F64 => 8,
        }
    }

    /// True for the IEEE float types.
    pub fn is_float(self) -> bool {
        matches!(self, ElementType::F32 | ElementType::F64)
    }
}

/// Pixel values, row-major (fast index = column).
#[derive(Debug, Clone, PartialEq)]
pub enum CbfData {
    /// Integers that fit in i32 (8/16/32-bit signed, 8/16-bit unsigned).
    I32(Vec<i32>),
    /// 64-bit integers and unsigned 32-bit (unsigned 64-bit values above i64::MAX wrap).
    I64(Vec<i64>),
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit floats.
    F64(Vec<f64>),
}

impl CbfData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            CbfData::I32(v) => v.len(),
            CbfData::I64(v) => v.len(),
            CbfData::F32(v) => v.len(),
            CbfData::F64(v) => v.len(),
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as f64 (exact for every i32 and f32; i64 above 2^53 rounds).
    pub fn to_f64(&self) -> Vec<f64> {
        match self {
            CbfData::I32(v) => v.iter().map(|&x| x as f64).collect(),
            CbfData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            CbfData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            CbfData::F64(v) => v.clone(),
        }
    }

    /// The natural element type to write these values with.
    pub fn default_element_type(&self) -> ElementType {
        match self {
            CbfData::I32(_) => ElementType::I32,
            CbfData::I64(_) => ElementType::I64,
            CbfData::F32(_) => ElementType::F32,
            CbfData::F64(_) => ElementType::F64,
        }
    }
}

/// How the binary data are stored (`conversions=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `x-CBF_BYTE_OFFSET`: integer deltas of 1, 2, 4 or 8 bytes.
    ByteOffset,
    /// `x-CBF_NONE`: raw elements.
    None,
}

impl Compression {
    /// The CBF name.
    pub fn cbf_name(self) -> &'static str {
        match self {
            Compression::ByteOffset => "x-CBF_BYTE_OFFSET",
            Compression::None => "x-CBF_NONE",
        }
    }
}

/// One CBF image with its header.
#[derive(Debug, Clone, PartialEq)]
pub struct CbfImage {
    /// Columns (`X-Binary-Size-Fastest-Dimension`).
    pub width: usize,
    /// Rows (`X-Binary-Size-Second-Dimension`).
    pub height: usize,
    /// The pixel values, `height * width`, row-major.
    pub data: CbfData,
    /// The stored element type (read: from the file; write: what to write).
    pub element_type: ElementType,
    /// The compression (read: from the file; write: byte-offset for integers, none for floats).
    pub compression: Compression,
    /// The CIF data block name (after `data_`).
    pub block_name: String,
    /// CIF items other than `_array_data.data` (key with leading `_`, value unquoted; text
    /// fields without their `;` lines).
    pub cif: Vec<(String, String)>,
    /// Pilatus-style header lines of `_array_data.header_contents` without the leading `# `.
    pub header_lines: Vec<String>,
    /// The MIME header of the binary section as (key, value), e.g. `("X-Binary-Size", "76")`,
    /// `("conversions", "x-CBF_BYTE_OFFSET")` (read only; the writer makes its own).
    pub mime: Vec<(String, String)>,
}

/// Split a Pilatus header line (`Exposure_time 0.099 s`, `Tau = 0 s`, `Threshold_setting: 6344 eV`)
/// into key and value. A line without a value (a date) gives an empty value.
pub fn split_pilatus_line(line: &str) -> (String, String) {
    let line = line.trim();
    let line = line.strip_prefix('#').unwrap_or(line).trim();
    // The key is the first whitespace-separated token; `Key:` and `Key = value` forms drop the
    // separator. A line that is only a timestamp gives the timestamp as key and no value.
    let end = line.find(char::is_whitespace).unwrap_or(line.len());
    let mut key = &line[..end];
    let mut rest = line[end..].trim_start();
    if let Some(k) = key.strip_suffix(':').or_else(|| key.strip_suffix('=')) {
        key = k;
    } else if let Some(r) = rest.strip_prefix('=').or_else(|| rest.strip_prefix(':')) {
        rest = r.trim_start();
    }
    (key.to_string(), rest.trim_end().to_string())
}

impl CbfImage {
    /// A new image with default header (block name `image`, no Pilatus lines). Integer data are
    /// written with byte-offset compression, float data uncompressed.
    pub fn new(width: usize, height: usize, data: CbfData) -> Self {
        let element_type = data.default_element_type();
        let compression = if element_type.is_float() {
            Compression::None
        } else {
            Compression::ByteOffset
        };
        Self {
            width,
            height,
            data,
            element_type,
            compression,
            block_name: "image".into(),
            cif: Vec::new(),
            header_lines: Vec::new(),
            mime: Vec::new(),
        }
    }

    /// The Pilatus header lines as (key, value) pairs, in file order.
    pub fn pilatus_header(&self) -> Vec<(String, String)> {
        self.header_lines
            .iter()
            .map(|l| split_pilatus_line(l))
            .collect()
    }

    /// The value of a Pilatus header key (`Exposure_time` gives `0.0990000 s`); first match.
    pub fn pilatus_value(&self, key: &str) -> Option<String> {
        self.header_lines
            .iter()
            .map(|l| split_pilatus_line(l))
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The first number in a Pilatus header value (`Exposure_time` gives 0.099).
    pub fn pilatus_number(&self, key: &str) -> Option<f64> {
        let v = self.pilatus_value(key)?;
        v.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
            .find(|t| !t.is_empty())
            .and_then(|t| t.parse().ok())
    }

    /// A CIF item's value (key with leading `_`).
    pub fn cif_value(&self, key: &str) -> Option<&str> {
        self.cif
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A MIME header value (case-insensitive key).
    pub fn mime_value(&self, key: &str) -> Option<&str> {
        self.mime
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Read a CBF file.
    pub fn read(path: &Path) -> Result<Self, ReadError> {
        let bytes = std::fs::read(path).map_err(|e| ReadError::io(path, &e))?;
        Self::parse(&bytes, path)
    }

    /// Parse CBF bytes (`path` names the source in errors).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, ReadError> {
        let boundary = find(bytes, BOUNDARY.as_bytes(), 0).ok_or_else(|| {
            ReadError::corrupt(
                path,
                Position::byte(0),
                format!("no binary section ('{BOUNDARY}') found"),
            )
        })?;
        let text = String::from_utf8_lossy(&bytes[..boundary]);
        let (block_name, cif, header_lines) = parse_cif_text(&text, path)?;
        let magic = find(bytes, &MAGIC, boundary).ok_or_else(|| {
            ReadError::truncated(
                path,
                Position::byte(boundary as u64),
                "no binary data start (bytes 0C 1A 04 D5) after the MIME header",
            )
        })?;
        let mime = parse_mime(&String::from_utf8_lossy(
            &bytes[boundary + BOUNDARY.len()..magic],
        ));
        let get = |k: &str| {
            mime.iter()
                .find(|(kk, _)| kk.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        let line_of = |key: &str| {
            let at = find(bytes, key.as_bytes(), boundary).unwrap_or(boundary);
            Position::byte(at as u64)
                .with_line(1 + bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64)
        };
        let num = |k: &str| -> Result<usize, ReadError> {
            let v = get(k).ok_or_else(|| {
                ReadError::corrupt(
                    path,
                    Position::byte(boundary as u64),
                    format!("MIME header has no '{k}'"),
                )
            })?;
            v.trim().parse::<usize>().map_err(|_| {
                ReadError::corrupt(
                    path,
                    line_of(k),
                    format!("'{k}' should be a non-negative integer, found '{v}'"),
                )
            })
        };
        let width = num("X-Binary-Size-Fastest-Dimension")?;
        let height = num("X-Binary-Size-Second-Dimension")?;
        let size = num("X-Binary-Size")?;
        let n = width.checked_mul(height).ok_or_else(|| {
            ReadError::corrupt(
                path,
                line_of("X-Binary-Size-Fastest-Dimension"),
                "image dimensions overflow",
            )
        })?;
        if let Some(v) = get("X-Binary-Number-of-Elements")
            && v.trim().parse::<usize>().ok() != Some(n)
        {
            return Err(ReadError::corrupt(
                path,
                line_of("X-Binary-Number-of-Elements"),
                format!(
                    "X-Binary-Number-of-Elements is '{v}' but the dimensions give {width} x {height} = {n}"
                ),
            ));
        }
        let etype_text = get("X-Binary-Element-Type").unwrap_or("signed 32-bit integer");
        let element_type = ElementType::from_cbf_name(etype_text).ok_or_else(|| {
            ReadError::unexpected(
                path,
                line_of("X-Binary-Element-Type"),
                format!("unsupported X-Binary-Element-Type '{etype_text}' (expected a signed/unsigned 8-64-bit integer or signed 32/64-bit real IEEE)"),
            )
        })?;
        let conv = get("conversions").unwrap_or("x-CBF_NONE");
        let conv = conv.trim().trim_matches('"');
        let compression = match conv.to_ascii_lowercase().as_str() {
            "x-cbf_byte_offset" => Compression::ByteOffset,
            "x-cbf_none" | "" => Compression::None,
            _ => {
                let other = conv;
                return Err(ReadError::unexpected(
                    path,
                    line_of("conversions"),
                    format!(
                        "unsupported CBF compression '{other}' (supported: x-CBF_BYTE_OFFSET, x-CBF_NONE)"
                    ),
                ));
            }
        };
        if let Some(enc) = get("Content-Transfer-Encoding")
            && !enc.trim().eq_ignore_ascii_case("binary")
        {
            return Err(ReadError::unexpected(
                path,
                line_of("Content-Transfer-Encoding"),
                format!("unsupported Content-Transfer-Encoding '{enc}' (expected BINARY)"),
            ));
        }
        let big_endian = get("X-Binary-Element-Byte-Order")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("BIG_ENDIAN"));
        let start = magic + MAGIC.len();
        let available = bytes.len() - start;
        if available < size {
            return Err(ReadError::truncated(
                path,
                Position::byte(bytes.len() as u64),
                format!(
                    "binary section is short: X-Binary-Size is {size} bytes but only {available} bytes follow the data start at byte {start}"
                ),
            ));
        }
        let blob = &bytes[start..start + size];
        if let Some(expected) = get("Content-MD5") {
            let found = base64(&Md5::digest(blob));
            if found != expected.trim() {
                return Err(ReadError::corrupt(
                    path,
                    line_of("Content-MD5"),
                    format!(
                        "Content-MD5 mismatch: header says {}, the {size} data bytes give {found}",
                        expected.trim()
                    ),
                ));
            }
        }
        let data_pos = Position::byte(start as u64);
        let data = match compression {
            Compression::ByteOffset => {
                if element_type.is_float() {
                    return Err(ReadError::unexpected(
                        path,
                        line_of("X-Binary-Element-Type"),
                        "x-CBF_BYTE_OFFSET with a real IEEE element type is not supported",
                    ));
                }
                let wide = matches!(
                    element_type,
                    ElementType::I64 | ElementType::U64 | ElementType::U32
                );
                if wide {
                    let mut out = vec![0i64; n];
                    decode_byte_offset_i64(blob, &mut out)
                        .map_err(|e| e.into_read_error(path, start))?;
                    CbfData::I64(out)
                } else {
                    let mut out = vec![0i32; n];
                    decode_byte_offset_i32(blob, &mut out)
                        .map_err(|e| e.into_read_error(path, start))?;
                    CbfData::I32(out)
                }
            }
            Compression::None => {
                let need = n * element_type.size();
                if blob.len() < need {
                    return Err(ReadError::truncated(
                        path,
                        data_pos,
                        format!(
                            "uncompressed data are {} bytes, {width} x {height} {} elements need {need}",
                            blob.len(),
                            element_type.cbf_name()
                        ),
                    ));
                }
                raw_elements(&blob[..need], element_type, big_endian)
            }
        };
        Ok(Self {
            width,
            height,
            data,
            element_type,
            compression,
            block_name,
            cif,
            header_lines,
            mime,
        })
    }

    /// The complete file contents, as fabio writes them (CR LF line ends).
    pub fn to_bytes(&self) -> Vec<u8> {
        let (blob, etype, compression) = self.encode_data();
        let mut out = Vec::with_capacity(blob.len() + 2048);
        let line = |s: &str, out: &mut Vec<u8>| {
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        };
        line(
            &format!(
                "###CBF: VERSION 1.5, caliper-core {} - Caliper",
                env!("CARGO_PKG_VERSION")
            ),
            &mut out,
        );
        let name = if self.block_name.is_empty() {
            "image"
        } else {
            self.block_name.as_str()
        };
        line(
            &format!("data_{}", name.replace(char::is_whitespace, "_")),
            &mut out,
        );
        // `header_lines` is the authority for `_array_data.header_contents` (so edits to it are
        // written); the other CIF items are written as read.
        for (k, v) in &self.cif {
            if k == "_array_data.data" || k == "_array_data.header_contents" {
                continue;
            }
            if v.contains('\n') {
                line(k, &mut out);
                line(";", &mut out);
                for l in v.lines() {
                    line(l, &mut out);
                }
                line(";", &mut out);
            } else if v.is_empty() || v.contains(char::is_whitespace) {
                line(&format!("{k} \"{v}\""), &mut out);
            } else {
                line(&format!("{k} {v}"), &mut out);
            }
        }
        if !self.header_lines.is_empty() {
            if self.cif_value("_array_data.header_convention").is_none() {
                line("_array_data.header_convention \"PILATUS_1.2\"", &mut out);
            }
            line("_array_data.header_contents", &mut out);
            line(";", &mut out);
            for l in &self.header_lines {
                line(&format!("# {l}"), &mut out);
            }
            line(";", &mut out);
        }
        line("", &mut out);
        line("_array_data.data", &mut out);
        line(";", &mut out);
        line(BOUNDARY, &mut out);
        line("Content-Type: application/octet-stream;", &mut out);
        line(
            &format!("     conversions=\"{}\"", compression.cbf_name()),
            &mut out,
        );
        line("Content-Transfer-Encoding: BINARY", &mut out);
        line(&format!("X-Binary-Size: {}", blob.len()), &mut out);
        line("X-Binary-ID: 1", &mut out);
        line(
            &format!("X-Binary-Element-Type: \"{}\"", etype.cbf_name()),
            &mut out,
        );
        line("X-Binary-Element-Byte-Order: LITTLE_ENDIAN", &mut out);
        line(
            &format!("Content-MD5: {}", base64(&Md5::digest(&blob))),
            &mut out,
        );
        line(
            &format!("X-Binary-Number-of-Elements: {}", self.width * self.height),
            &mut out,
        );
        line(
            &format!("X-Binary-Size-Fastest-Dimension: {}", self.width),
            &mut out,
        );
        line(
            &format!("X-Binary-Size-Second-Dimension: {}", self.height),
            &mut out,
        );
        line("X-Binary-Size-Padding: 1", &mut out);
        line("", &mut out);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&blob);
        out.extend_from_slice(b"\r\n\r\n");
        line(BOUNDARY_END, &mut out);
        out.extend_from_slice(b";");
        out
    }

    /// Write the file (atomically: a temporary name in the same folder, then rename).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let bytes = self.to_bytes();
        let tmp = path.with_extension("cbf.tmp");
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, path)
    }

    /// The binary blob, the element type and compression actually used.
    fn encode_data(&self) -> (Vec<u8>, ElementType, Compression) {
        let mut blob = Vec::new();
        match &self.data {
            CbfData::I32(v) => {
                let et = if self.element_type.is_float()
                    || matches!(self.element_type, ElementType::I64 | ElementType::U64)
                {
                    ElementType::I32
                } else {
                    self.element_type
                };
                if self.compression == Compression::None {
                    for &x in v {
                        push_int(&mut blob, x as i64, et);
                    }
                    (blob, et, Compression::None)
                } else {
                    encode_byte_offset_i32(v, &mut blob);
                    (blob, et, Compression::ByteOffset)
                }
            }
            CbfData::I64(v) => {
                let et = if self.element_type.is_float() {
                    ElementType::I64
                } else {
                    self.element_type
                };
                if self.compression == Compression::None {
                    for &x in v {
                        push_int(&mut blob, x, et);
                    }
                    (blob, et, Compression::None)
                } else {
                    encode_byte_offset_i64(v, &mut blob);
                    (blob, et, Compression::ByteOffset)
                }
            }
            CbfData::F32(v) => {
                blob.reserve(v.len() * 4);
                for &x in v {
                    blob.extend_from_slice(&x.to_le_bytes());
                }
                (blob, ElementType::F32, Compression::None)
            }
            CbfData::F64(v) => {
                blob.reserve(v.len() * 8);
                for &x in v {
                    blob.extend_from_slice(&x.to_le_bytes());
                }
                (blob, ElementType::F64, Compression::None)
            }
        }
    }
}

fn push_int(blob: &mut Vec<u8>, x: i64, et: ElementType) {
    match et.size() {
        1 => blob.push(x as u8),
        2 => blob.extend_from_slice(&(x as u16).to_le_bytes()),
        4 => blob.extend_from_slice(&(x as u32).to_le_bytes()),
        _ => blob.extend_from_slice(&x.to_le_bytes()),
    }
}

fn raw_elements(b: &[u8], et: ElementType, big: bool) -> CbfData {
    macro_rules! conv {
        ($t:ty, $n:expr) => {
            b.chunks_exact($n).map(|c| {
                let a: [u8; $n] = c.try_into().unwrap_or([0; $n]);
                if big {
                    <$t>::from_be_bytes(a)
                } else {
                    <$t>::from_le_bytes(a)
                }
            })
        };
    }
    match et {
        ElementType::I8 => CbfData::I32(b.iter().map(|&x| x as i8 as i32).collect()),
        ElementType::U8 => CbfData::I32(b.iter().map(|&x| x as i32).collect()),
        ElementType::I16 => CbfData::I32(conv!(i16, 2).map(i32::from).collect()),
        ElementType::U16 => CbfData::I32(conv!(u16, 2).map(i32::from).collect()),
        ElementType::I32 => CbfData::I32(conv!(i32, 4).collect()),
        ElementType::U32 => CbfData::I64(conv!(u32, 4).map(i64::from).collect()),
        ElementType::I64 => CbfData::I64(conv!(i64, 8).collect()),
        ElementType::U64 => CbfData::I64(conv!(u64, 8).map(|x| x as i64).collect()),
        ElementType::F32 => CbfData::F32(conv!(f32, 4).collect()),
        ElementType::F64 => CbfData::F64(conv!(f64, 8).collect()),
    }
}

/// Block name, CIF items, Pilatus header lines.
type CifText = (String, Vec<(String, String)>, Vec<String>);

/// Parse the CIF text before the binary section: block name, items, Pilatus header lines.
fn parse_cif_text(text: &str, path: &Path) -> Result<CifText, ReadError> {
    let mut block = String::new();
    let mut items: Vec<(String, String)> = Vec::new();
    let mut header_lines = Vec::new();
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        let t = l.trim();
        if let Some(name) = t.strip_prefix("data_") {
            block = name.to_string();
        } else if t.starts_with('_') {
            let (key, value) = match t.find(char::is_whitespace) {
                Some(p) => (&t[..p], t[p..].trim()),
                None => (t, ""),
            };
            if key == "_array_data.data" {
                break;
            }
            if value.is_empty() && i + 1 < lines.len() && lines[i + 1].starts_with(';') {
                // A text field: lines up to the next line starting with ';'.
                let first = lines[i + 1][1..].trim_end();
                let mut body: Vec<&str> = Vec::new();
                if !first.is_empty() {
                    body.push(first);
                }
                let mut j = i + 2;
                let mut closed = false;
                while j < lines.len() {
                    if lines[j].starts_with(';') {
                        closed = true;
                        break;
                    }
                    body.push(lines[j]);
                    j += 1;
                }
                if !closed {
                    return Err(ReadError::corrupt(
                        path,
                        Position::line(i as u64 + 2),
                        format!("text field of '{key}' is not closed by a ';' line"),
                    ));
                }
                if key == "_array_data.header_contents" {
                    for b in &body {
                        let b = b.trim();
                        if let Some(rest) = b.strip_prefix('#') {
                            header_lines.push(rest.trim().to_string());
                        }
                    }
                }
                items.push((key.to_string(), body.join("\n")));
                i = j + 1;
                continue;
            }
            let v = value.trim_matches(|c| c == '"' || c == '\'');
            items.push((key.to_string(), v.to_string()));
        }
        i += 1;
    }
    Ok((block, items, header_lines))
}

/// Parse the MIME header lines (continuation lines that start with whitespace carry
/// `key=value` parameters, as `conversions="x-CBF_BYTE_OFFSET"`).
fn parse_mime(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for raw in text.lines() {
        let l = raw.trim();
        if l.is_empty() {
            continue;
        }
        let cut = match (l.find(':'), l.find('=')) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => continue,
        };
        let key = l[..cut].trim().to_string();
        let val = l[cut + 1..]
            .trim()
            .trim_end_matches(';')
            .trim()
            .trim_matches('"')
            .to_string();
        // `Content-Type: application/octet-stream; conversions="x-CBF_BYTE_OFFSET"` on one line.
        if key.eq_ignore_ascii_case("Content-Type")
            && let Some(p) = val.find("conversions")
        {
            let conv = val[p + "conversions".len()..]
                .trim_start_matches([' ', '='])
                .trim_matches('"');
            out.push((
                "conversions".to_string(),
                conv.trim_matches('"').to_string(),
            ));
            out.push((key, val[..p].trim().trim_end_matches(';').to_string()));
            continue;
        }
        out.push((key, val));
    }
    out
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from >= hay.len() || needle.is_empty() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Standard base64 (RFC 4648, with padding), as `Content-MD5` uses.
pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        s.push(T[(n >> 18) as usize & 63] as char);
        s.push(T[(n >> 12) as usize & 63] as char);
        s.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        s.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    s
}

/// A byte-offset stream that does not hold the expected number of elements.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ByteOffsetError {
    /// The stream ended before all elements were decoded.
    #[error("byte-offset data end at byte {at} after {decoded} of {expected} elements")]
    Short {
        /// Byte offset in the stream where it ended (or where the incomplete delta started).
        at: usize,
        /// Elements decoded.
        decoded: usize,
        /// Elements expected.
        expected: usize,
    },
}

impl ByteOffsetError {
    fn into_read_error(self, path: &Path, start: usize) -> ReadError {
        let ByteOffsetError::Short { at, .. } = self;
        ReadError::truncated(path, Position::byte((start + at) as u64), self.to_string())
    }
}

/// Decode one delta at `pos`; returns (delta, bytes used) or None when the stream is short.
#[inline(always)]
fn next_delta(src: &[u8], pos: usize) -> Option<(i64, usize)> {
    let b = *src.get(pos)? as i8;
    if b != i8::MIN {
        return Some((b as i64, 1));
    }
    let s: [u8; 2] = src.get(pos + 1..pos + 3)?.try_into().ok()?;
    let d16 = i16::from_le_bytes(s);
    if d16 != i16::MIN {
        return Some((d16 as i64, 3));
    }
    let s: [u8; 4] = src.get(pos + 3..pos + 7)?.try_into().ok()?;
    let d32 = i32::from_le_bytes(s);
    if d32 != i32::MIN {
        return Some((d32 as i64, 7));
    }
    let s: [u8; 8] = src.get(pos + 7..pos + 15)?.try_into().ok()?;
    Some((i64::from_le_bytes(s), 15))
}

/// Decode byte-offset data into `out` (all of it must be filled); returns the bytes consumed.
///
/// The running value is kept in i64 (wrapping) and cast to i32, so both fabio's wrapped 32-bit
/// stream and its 64-bit-escape stream decode to the same i32 values (spec section (i)).
pub fn decode_byte_offset_i32(src: &[u8], out: &mut [i32]) -> Result<usize, ByteOffsetError> {
    let mut base: i64 = 0;
    let mut pos = 0usize;
    let n = out.len();
    let mut k = 0usize;
    // Fast path: while at least 15 bytes remain no bounds failure is possible for one delta.
    // Eight 1-byte deltas (no 0x80 escape among the next 8 bytes) are taken at once.
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    while k < n && pos + 15 <= src.len() {
        if k + 8 <= n {
            let mut w8 = [0u8; 8];
            w8.copy_from_slice(&src[pos..pos + 8]);
            // A byte equal to 0x80 becomes 0 after the xor; the classic zero-byte test finds it.
            let x = u64::from_le_bytes(w8) ^ HIGHS;
            if (x.wrapping_sub(ONES) & !x & HIGHS) == 0 {
                let o = &mut out[k..k + 8];
                for (slot, &byte) in o.iter_mut().zip(&w8) {
                    base = base.wrapping_add(byte as i8 as i64);
                    *slot = base as i32;
                }
                pos += 8;
                k += 8;
                continue;
            }
        }
        let b = src[pos] as i8;
        if b != i8::MIN {
            base = base.wrapping_add(b as i64);
            pos += 1;
        } else {
            let (d, used) = next_delta(src, pos).ok_or(ByteOffsetError::Short {
                at: pos,
                decoded: k,
                expected: n,
            })?;
            base = base.wrapping_add(d);
            pos += used;
        }
        out[k] = base as i32;
        k += 1;
    }
    while k < n {
        let (d, used) = next_delta(src, pos).ok_or(ByteOffsetError::Short {
            at: pos,
            decoded: k,
            expected: n,
        })?;
        base = base.wrapping_add(d);
        pos += used;
        out[k] = base as i32;
        k += 1;
    }
    Ok(pos)
}

/// Decode byte-offset data into 64-bit values; returns the bytes consumed.
pub fn decode_byte_offset_i64(src: &[u8], out: &mut [i64]) -> Result<usize, ByteOffsetError> {
    let mut base: i64 = 0;
    let mut pos = 0usize;
    let n = out.len();
    for (k, o) in out.iter_mut().enumerate() {
        let (d, used) = next_delta(src, pos).ok_or(ByteOffsetError::Short {
            at: pos,
            decoded: k,
            expected: n,
        })?;
        base = base.wrapping_add(d);
        pos += used;
        *o = base;
    }
    Ok(pos)
}

#[inline(always)]
fn push_delta(out: &mut Vec<u8>, d: i64) {
    if (-127..=127).contains(&d) {
        out.push(d as i8 as u8);
    } else if (-32767..=32767).contains(&d) {
        out.push(0x80);
        out.extend_from_slice(&(d as i16).to_le_bytes());
    } else if (-2147483647..=2147483647).contains(&d) {
        out.extend_from_slice(&[0x80, 0x00, 0x80]);
        out.extend_from_slice(&(d as i32).to_le_bytes());
    } else {
        out.extend_from_slice(&[0x80, 0x00, 0x80, 0x00, 0x00, 0x00, 0x80]);
        out.extend_from_slice(&d.to_le_bytes());
    }
}

/// Append the byte-offset encoding of 32-bit values, as fabio's Cython int32 encoder (and
/// CBFlib for int32 arrays) writes it: deltas are computed with i32 wrap-around, so a jump larger
/// than 2^31 - 1 is stored as its wrapped 32-bit delta (spec section (i)).
pub fn encode_byte_offset_i32(values: &[i32], out: &mut Vec<u8>) {
    out.reserve(values.len() + values.len() / 8 + 16);
    let mut base: i32 = 0;
    for &v in values {
        let d = v.wrapping_sub(base);
        base = v;
        push_delta(out, d as i64);
    }
}

/// Append the byte-offset encoding of 64-bit values (deltas in i64 wrap-around, 64-bit escape
/// when a delta does not fit 32 bits), as fabio's numpy encoder writes it.
pub fn encode_byte_offset_i64(values: &[i64], out: &mut Vec<u8>) {
    out.reserve(values.len() + values.len() / 8 + 16);
    let mut base: i64 = 0;
    for &v in values {
        let d = v.wrapping_sub(base);
        base = v;
        push_delta(out, d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::shared_data;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    fn vectors() -> Option<serde_json::Value> {
        let p = shared_data("xray/pyfai_ref/cbf_byteoffset_vectors.json")?;
        Some(serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
    }

    #[test]
    fn spec_vector_encodes_and_decodes() {
        // Hand-checked vector from the spec (fabio-verified); exact bytes, no tolerance.
        let vals = [
            0, 1, 2, 127, 0, -127, -128, 0, 1, 2, 32767, 0, -32767, -32768, 0, 1, 2, 2147483647, 0,
        ];
        let want = hex(
            "0001017d8181ff808000010180fd7f800180800180ff800080008000000101800080fdffff7f80008001000080",
        );
        let mut enc = Vec::new();
        encode_byte_offset_i32(&vals, &mut enc);
        assert_eq!(enc, want);
        let mut dec = vec![0; vals.len()];
        assert_eq!(decode_byte_offset_i32(&want, &mut dec), Ok(want.len()));
        assert_eq!(dec, vals);
    }

    #[test]
    fn shared_vectors_round_trip_byte_for_byte() {
        let Some(v) = vectors() else { return };
        let vals: Vec<i32> = v["int32_values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap() as i32)
            .collect();
        let cy = hex(v["compressed_hex_fabio_cython_int32"].as_str().unwrap());
        let np = hex(v["compressed_hex_fabio_numpy_int64"].as_str().unwrap());
        // int32 encoder = fabio's Cython encoder, byte for byte.
        let mut enc = Vec::new();
        encode_byte_offset_i32(&vals, &mut enc);
        assert_eq!(enc, cy);
        // Both of fabio's streams decode to the same int32 values.
        for stream in [&cy, &np] {
            let mut dec = vec![0i32; vals.len()];
            assert_eq!(decode_byte_offset_i32(stream, &mut dec), Ok(stream.len()));
            assert_eq!(dec, vals);
        }
        // The int64 encoder = fabio's numpy encoder on the same values widened to i64.
        let wide: Vec<i64> = vals.iter().map(|&x| x as i64).collect();
        let mut enc64 = Vec::new();
        encode_byte_offset_i64(&wide, &mut enc64);
        assert_eq!(enc64, np);
        // Pure int64 vector with 64-bit escapes.
        let v64: Vec<i64> = v["int64_values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        let c64 = hex(v["int64_compressed_hex"].as_str().unwrap());
        let mut e = Vec::new();
        encode_byte_offset_i64(&v64, &mut e);
        assert_eq!(e, c64);
        let mut d = vec![0i64; v64.len()];
        assert_eq!(decode_byte_offset_i64(&c64, &mut d), Ok(c64.len()));
        assert_eq!(d, v64);
    }

    #[test]
    fn fabio_written_vector_file_reads_and_rewrites_identically() {
        let Some(v) = vectors() else { return };
        let Some(p) = shared_data("xray/pyfai_ref/cbf_byteoffset_vectors_2x13.cbf") else {
            return;
        };
        let img = CbfImage::read(&p).unwrap();
        assert_eq!((img.width, img.height), (13, 2));
        let vals: Vec<i32> = v["int32_values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap() as i32)
            .collect();
        assert_eq!(img.data, CbfData::I32(vals));
        assert_eq!(img.block_name, "cbf_byteoffset_vectors_2x13");
        // Everything from the binary section on is what fabio wrote, byte for byte.
        let ours = img.to_bytes();
        let theirs = std::fs::read(&p).unwrap();
        let a = find(&ours, BOUNDARY.as_bytes(), 0).unwrap();
        let b = find(&theirs, BOUNDARY.as_bytes(), 0).unwrap();
        assert_eq!(&ours[a..], &theirs[b..]);
        assert_eq!(
            find(&theirs, &MAGIC, 0),
            Some(v["magic_offset_in_file"].as_u64().unwrap() as usize)
        );
    }

    #[test]
    fn reference_pilatus_cbf_matches_npy_exactly() {
        let Some(cbf) = shared_data("xray/pyfai_ref/pilatus1m_ceo2.cbf") else {
            return;
        };
        let Some(npy) = shared_data("xray/pyfai_ref/pilatus1m_ceo2.npy") else {
            return;
        };
        let img = CbfImage::read(&cbf).unwrap();
        let arr = crate::npy::NpyArray::read(&npy).expect("reference .npy");
        let (shape, want) = (arr.shape, arr.data);
        assert_eq!(shape, vec![img.height, img.width]);
        assert_eq!((img.width, img.height), (981, 1043));
        // Exact: integers.
        assert_eq!(img.data.to_f64(), want);
        assert_eq!(img.pilatus_number("Exposure_time"), Some(1.0));
        assert_eq!(img.pilatus_value("Tau").as_deref(), Some("0 s"));
        assert_eq!(
            img.pilatus_value("Threshold_setting").as_deref(),
            Some("15250 eV")
        );
        assert_eq!(img.pilatus_number("Beam_xy"), Some(464.0));
        assert_eq!(
            img.cif_value("_array_data.header_convention"),
            Some("PILATUS_1.2")
        );
        // Re-encoding gives the file's binary blob byte for byte.
        let bytes = std::fs::read(&cbf).unwrap();
        let m = find(&bytes, &MAGIC, 0).unwrap() + 4;
        let size: usize = img.mime_value("X-Binary-Size").unwrap().parse().unwrap();
        let CbfData::I32(v) = &img.data else {
            panic!("int32 expected")
        };
        let mut enc = Vec::new();
        encode_byte_offset_i32(v, &mut enc);
        assert_eq!(enc, &bytes[m..m + size]);
        // Round trip through our writer, with an edited header line.
        let back = CbfImage::parse(&img.to_bytes(), Path::new("x.cbf")).unwrap();
        assert_eq!(back.data, img.data);
        assert_eq!(back.header_lines, img.header_lines);
        let mut edited = img.clone();
        edited.header_lines.push("Flux 1e12 ph/s".into());
        let back = CbfImage::parse(&edited.to_bytes(), Path::new("y.cbf")).unwrap();
        assert_eq!(back.pilatus_value("Flux").as_deref(), Some("1e12 ph/s"));
        assert_eq!(
            back.cif_value("_array_data.header_convention"),
            Some("PILATUS_1.2")
        );
    }

    #[test]
    fn round_trips_all_data_kinds() {
        let ints: Vec<i32> = (0..600)
            .map(|i: i32| ((i * 7919) % 4001) * if i % 3 == 0 { -300 } else { 1 })
            .collect();
        let mut img = CbfImage::new(30, 20, CbfData::I32(ints.clone()));
        img.header_lines = vec!["Exposure_time 0.5 s".into(), "Tau = 0 s".into()];
        let back = CbfImage::parse(&img.to_bytes(), Path::new("a.cbf")).unwrap();
        assert_eq!(back.data, img.data);
        assert_eq!(back.pilatus_number("Exposure_time"), Some(0.5));
        let f: Vec<f64> = (0..600).map(|i| i as f64 * 0.1 - 7.25).collect();
        let back = CbfImage::parse(
            &CbfImage::new(30, 20, CbfData::F64(f.clone())).to_bytes(),
            Path::new("b.cbf"),
        )
        .unwrap();
        assert_eq!(back.data, CbfData::F64(f));
        assert_eq!(back.compression, Compression::None);
        let f32s: Vec<f32> = (0..600).map(|i| i as f32 * 0.5).collect();
        let back = CbfImage::parse(
            &CbfImage::new(30, 20, CbfData::F32(f32s.clone())).to_bytes(),
            Path::new("c.cbf"),
        )
        .unwrap();
        assert_eq!(back.data, CbfData::F32(f32s));
        let big: Vec<i64> = vec![0, 1 << 40, -(1 << 35), 5, i64::MAX / 2, 0];
        let back = CbfImage::parse(
            &CbfImage::new(3, 2, CbfData::I64(big.clone())).to_bytes(),
            Path::new("d.cbf"),
        )
        .unwrap();
        assert_eq!(back.data, CbfData::I64(big));
        let mut u16img = CbfImage::new(
            30,
            20,
            CbfData::I32(ints.iter().map(|x| x.rem_euclid(65536)).collect()),
        );
        u16img.element_type = ElementType::U16;
        u16img.compression = Compression::None;
        let back = CbfImage::parse(&u16img.to_bytes(), Path::new("e.cbf")).unwrap();
        assert_eq!(back.data, u16img.data);
        assert_eq!(back.element_type, ElementType::U16);
    }

    #[test]
    fn corrupted_inputs_name_the_file() {
        let img = CbfImage::new(30, 20, CbfData::I32((0..600).map(|i| i * 1000).collect()));
        let good = img.to_bytes();
        let m = find(&good, &MAGIC, 0).unwrap() + 4;
        // Flip a data byte: MD5 mismatch.
        let mut bad = good.clone();
        bad[m + 5] ^= 0x11;
        let e = CbfImage::parse(&bad, Path::new("flip.cbf")).unwrap_err();
        assert!(
            e.to_string().starts_with("flip.cbf: ")
                && e.to_string().contains("Content-MD5 mismatch"),
            "{e}"
        );
        // Cut the file inside the binary data: sizes named.
        let cut = &good[..m + 100];
        let e = CbfImage::parse(cut, Path::new("cut.cbf")).unwrap_err();
        assert!(e.is_truncated());
        let size = good.len() - m - "\r\n\r\n--CIF-BINARY-FORMAT-SECTION----\r\n;".len();
        assert!(
            e.to_string()
                .contains(&format!("X-Binary-Size is {size} bytes but only 100 bytes")),
            "{e}"
        );
        // No binary section at all.
        let e = CbfImage::parse(b"data_x\r\n_a 1\r\n", Path::new("none.cbf")).unwrap_err();
        assert!(
            e.to_string().contains("none.cbf") && e.to_string().contains("no binary section"),
            "{e}"
        );
        // A stream that decodes fewer elements than the dimensions need (MD5 removed).
        let text = String::from_utf8_lossy(&good[..m - 4]).replace(
            "X-Binary-Size-Second-Dimension: 20",
            "X-Binary-Size-Second-Dimension: 21",
        );
        let text = text.replace(
            "X-Binary-Number-of-Elements: 600",
            "X-Binary-Number-of-Elements: 630",
        );
        let mut short = text.into_bytes();
        short.extend_from_slice(&good[m - 4..]);
        let e = CbfImage::parse(&short, Path::new("short.cbf")).unwrap_err();
        assert!(
            e.is_truncated() && e.to_string().contains("after 600 of 630 elements"),
            "{e}"
        );
        // Unknown compression.
        let text =
            String::from_utf8_lossy(&good[..m - 4]).replace("x-CBF_BYTE_OFFSET", "x-CBF_CANONICAL");
        let mut canon = text.into_bytes();
        canon.extend_from_slice(&good[m - 4..]);
        let e = CbfImage::parse(&canon, Path::new("canon.cbf")).unwrap_err();
        assert!(
            e.to_string().contains("x-CBF_CANONICAL") && e.to_string().contains("line 8"),
            "{e}"
        );
    }

    #[test]
    fn fast_path_matches_escapes_anywhere() {
        // Deltas of every size at pseudo-random positions (so escapes fall at every offset of
        // the 8-byte fast path); decode(encode(v)) == v exactly, for both widths.
        let mut rng = crate::testing::TestRng::new(12345);
        let mut v = Vec::with_capacity(5000);
        let mut cur: i64 = 0;
        for _ in 0..5000 {
            let r = rng.below(1 << 31) as i64;
            cur += match r % 10 {
                0 => r % 60000 - 30000,
                1 => (r % 4_000_000) * 500 - 1_000_000_000,
                2 => (r % 256) - 128,
                _ => r % 255 - 127,
            };
            cur = cur.clamp(i32::MIN as i64, i32::MAX as i64);
            v.push(cur as i32);
        }
        let mut enc = Vec::new();
        encode_byte_offset_i32(&v, &mut enc);
        let mut dec = vec![0i32; v.len()];
        assert_eq!(decode_byte_offset_i32(&enc, &mut dec), Ok(enc.len()));
        assert_eq!(dec, v);
        // Cut anywhere: a short-stream error, never a panic.
        for cut in [0, 1, 7, enc.len() / 2, enc.len() - 1] {
            assert!(decode_byte_offset_i32(&enc[..cut], &mut dec).is_err());
        }
    }

    #[test]
    fn pilatus_lines_split() {
        assert_eq!(
            split_pilatus_line("# Tau = 0 s"),
            ("Tau".into(), "0 s".into())
        );
        assert_eq!(
            split_pilatus_line("Threshold_setting: 6344 eV"),
            ("Threshold_setting".into(), "6344 eV".into())
        );
        assert_eq!(
            split_pilatus_line("Beam_xy (1264.48, 1242.52) pixels"),
            ("Beam_xy".into(), "(1264.48, 1242.52) pixels".into())
        );
        assert_eq!(
            split_pilatus_line("2017-06-26T02:54:23.347"),
            ("2017-06-26T02:54:23.347".into(), String::new())
        );
        assert_eq!(
            split_pilatus_line("Detector: PILATUS3 6M, S/N 60-0127"),
            ("Detector".into(), "PILATUS3 6M, S/N 60-0127".into())
        );
        assert_eq!(base64(b"any carnal pleas"), "YW55IGNhcm5hbCBwbGVhcw==");
        assert_eq!(base64(b"any carnal pleasu"), "YW55IGNhcm5hbCBwbGVhc3U=");
    }
}
