//! EventIO framing (eventio `base.py`, `header.pyx`, `var_int.pyx`; spec
//! `eventio-simtel.md` §2–3): top-level objects behind a sync marker, nested sub-objects,
//! and the little-endian primitives and variable-length integers inside payloads.

use std::io::Read;

/// The sync marker as it appears on disk (little-endian `0xD41F8A37`).
pub const SYNC_LE: [u8; 4] = [0x37, 0x8A, 0x1F, 0xD4];

/// An object header (spec §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectHeader {
    /// Object type number (e.g. 2002).
    pub type_: u32,
    /// Object version (12 bits).
    pub version: u32,
    /// Identifier word (meaning depends on the type).
    pub id: i32,
    /// Payload length in bytes.
    pub length: u64,
    /// The payload is a sequence of sub-objects.
    pub only_subobjects: bool,
    /// Byte offset of the payload in the decompressed stream.
    pub payload_offset: u64,
    /// Byte offset of the object (its sync marker for top-level objects) in the stream.
    pub object_offset: u64,
}

/// What went wrong reading a top-level object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The stream ended inside an object.
    Truncated {
        /// Offset where the incomplete object starts.
        offset: u64,
        /// What was being read.
        what: String,
    },
    /// The bytes are not EventIO here.
    Corrupt {
        /// Offset of the bad bytes.
        offset: u64,
        /// What was found and expected.
        what: String,
    },
    /// The operating system or the decompressor failed.
    Io(String),
}

/// A payload parse problem: offset relative to the start of the buffer being parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Offset inside the top-level payload.
    pub offset: usize,
    /// What was expected.
    pub what: String,
}

/// Result of payload parsing.
pub type ParseResult<T> = Result<T, ParseError>;

fn decode_header(
    words: &[u8; 12],
    ext: Option<u32>,
    payload_offset: u64,
    object_offset: u64,
) -> ObjectHeader {
    let w0 = u32::from_le_bytes([words[0], words[1], words[2], words[3]]);
    let w1 = i32::from_le_bytes([words[4], words[5], words[6], words[7]]);
    let w2 = u32::from_le_bytes([words[8], words[9], words[10], words[11]]);
    let mut length = u64::from(w2 & 0x3FFF_FFFF);
    if let Some(e) = ext {
        length += u64::from(e & 0xFFF) << 30;
    }
    ObjectHeader {
        type_: w0 & 0xFFFF,
        version: (w0 >> 20) & 0xFFF,
        id: w1,
        length,
        only_subobjects: w2 & (1 << 30) != 0,
        payload_offset,
        object_offset,
    }
}

/// Reads top-level objects one after another from a decompressed stream.
pub struct TopLevelReader {
    inner: Box<dyn Read + Send>,
    offset: u64,
    /// Why the decompressed data ended early (a compressed file cut short), once it has.
    cut: Option<String>,
}

/// Largest payload we accept for one top-level object (a sanity bound against corrupt lengths).
const MAX_OBJECT_BYTES: u64 = 4 << 30;

impl TopLevelReader {
    /// Wrap a decompressed stream positioned at its start.
    pub fn new(inner: Box<dyn Read + Send>) -> Self {
        Self {
            inner,
            offset: 0,
            cut: None,
        }
    }

    /// Bytes of the decompressed stream consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Read the next top-level object into `payload` (resized to its length). `Ok(None)` at a
    /// clean end of the stream.
    pub fn next_object(
        &mut self,
        payload: &mut Vec<u8>,
    ) -> Result<Option<ObjectHeader>, FrameError> {
        let start = self.offset;
        let mut head = [0u8; 16];
        let n = self.read_full(&mut head, start, || "in the object header".into())?;
        if n == 0 {
            return match &self.cut {
                None => Ok(None),
                Some(cut) => Err(FrameError::Truncated {
                    offset: start,
                    what: format!("the data stop between two objects: {cut}"),
                }),
            };
        }
        if n < 16 {
            return Err(self.truncated(
                start,
                format!("object header cut short ({n} of 16 bytes present)"),
            ));
        }
        if head[0..4] != SYNC_LE {
            return Err(FrameError::Corrupt {
                offset: start,
                what: format!(
                    "expected the EventIO sync marker 37 8A 1F D4, found {:02X} {:02X} {:02X} {:02X}",
                    head[0], head[1], head[2], head[3]
                ),
            });
        }
        let mut words = [0u8; 12];
        words.copy_from_slice(&head[4..16]);
        let w0 = u32::from_le_bytes([words[0], words[1], words[2], words[3]]);
        let mut header_len = 16u64;
        let ext = if w0 & (1 << 17) != 0 {
            let mut e = [0u8; 4];
            let n = self.read_full(&mut e, start, || "in the object header".into())?;
            if n < 4 {
                return Err(self.truncated(start, "extension word cut short".into()));
            }
            header_len += 4;
            Some(u32::from_le_bytes(e))
        } else {
            None
        };
        let h = decode_header(&words, ext, start + header_len, start);
        if h.length > MAX_OBJECT_BYTES {
            return Err(FrameError::Corrupt {
                offset: start,
                what: format!(
                    "object type {} declares an implausible length of {} bytes",
                    h.type_, h.length
                ),
            });
        }
        let len = h.length as usize;
        payload.clear();
        payload.resize(len, 0);
        let got = self.read_full(payload, start, || {
            format!(
                "in the payload of object type {} ({})",
                h.type_,
                type_name(h.type_)
            )
        })?;
        self.offset += header_len + got as u64;
        if got < len {
            return Err(self.truncated(
                start,
                format!(
                    "object type {} ({}) declares {} payload bytes but the stream ends after {}",
                    h.type_,
                    type_name(h.type_),
                    len,
                    got
                ),
            ));
        }
        Ok(Some(h))
    }

    /// Read as much as possible into `buf`; returns the number of bytes read (< len only at
    /// the end of the data). A compressed file cut short ends the data as well, and `cut`
    /// then says why (the decompressor's [`std::io::ErrorKind::UnexpectedEof`], see
    /// `io::open_stream`). Corrupt compressed data is a [`FrameError::Corrupt`] at `offset`,
    /// where the object being read starts, `part` saying which part of it was being read.
    fn read_full(
        &mut self,
        buf: &mut [u8],
        offset: u64,
        part: impl Fn() -> String,
    ) -> Result<usize, FrameError> {
        let mut got = 0;
        while got < buf.len() && self.cut.is_none() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    self.cut = Some(e.to_string());
                }
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    return Err(FrameError::Corrupt {
                        offset,
                        what: format!("{}: {e}", part()),
                    });
                }
                Err(e) => return Err(FrameError::Io(e.to_string())),
            }
        }
        Ok(got)
    }

    /// The object at `offset` is incomplete: `what` is missing, and why the data ended when a
    /// compressed file was cut short.
    fn truncated(&self, offset: u64, what: String) -> FrameError {
        let what = match &self.cut {
            Some(cut) => format!("{what}; {cut}"),
            None => what,
        };
        FrameError::Truncated { offset, what }
    }
}

/// A human name for an object type (for messages).
pub fn type_name(t: u32) -> &'static str {
    match t {
        70 => "History",
        75 => "HistoryMeta",
        100 => "Histograms",
        1204 => "TelescopeData",
        1205 => "Photons",
        1208 => "PhotoElectrons",
        1212 => "InputCard",
        1215 => "MCExtraParams",
        1216 => "AtmosphericProfile",
        2000 => "RunHeader",
        2001 => "MCRunHeader",
        2002 => "CameraSettings",
        2003 => "CameraOrganisation",
        2004 => "PixelSettings",
        2005 => "DisabledPixels",
        2006 => "CameraSoftwareSettings",
        2007 => "PointingCorrection",
        2008 => "DriveSettings",
        2009 => "TriggerInformation",
        2010 => "ArrayEvent",
        2011 => "TelescopeEventHeader",
        2012 => "ADCSums",
        2013 => "ADCSamples",
        2014 => "ImageParameters",
        2015 => "StereoReconstruction",
        2016 => "PixelTiming",
        2020 => "MCShower",
        2021 => "MCEvent",
        2022 => "CameraMonitoring",
        2023 => "LaserCalibration",
        2026 => "MCPhotoelectronSum",
        2027 => "PixelList",
        2028 => "CalibrationEvent",
        2032 => "PixelTriggerTimes",
        t if t >= 2100 && (t % 1000) / 100 == 1 => "TrackingPosition",
        t if t >= 2200 && (t % 1000) / 100 == 2 => "TelescopeEvent",
        _ => "unknown",
    }
}

/// A cursor over a payload slice. Offsets reported in errors are relative to `base`, the start
/// of the top-level payload, so the caller can turn them into stream offsets.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor over `data`, which starts `base` bytes into the top-level payload.
    pub fn new(data: &'a [u8], base: usize) -> Self {
        Self { data, pos: 0, base }
    }

    /// Offset of the cursor inside the top-level payload.
    pub fn abs_pos(&self) -> usize {
        self.base + self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// An error at the current position.
    pub fn err(&self, what: impl Into<String>) -> ParseError {
        ParseError {
            offset: self.abs_pos(),
            what: what.into(),
        }
    }

    /// Take `n` raw bytes.
    #[inline]
    pub fn bytes(&mut self, n: usize) -> ParseResult<&'a [u8]> {
        if self.remaining() < n {
            return Err(self.err(format!(
                "{n} more bytes, but only {} remain in the object",
                self.remaining()
            )));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Skip `n` bytes.
    pub fn skip(&mut self, n: usize) -> ParseResult<()> {
        self.bytes(n).map(|_| ())
    }

    /// u8.
    pub fn u8(&mut self) -> ParseResult<u8> {
        Ok(self.bytes(1)?[0])
    }
    /// little-endian i16.
    pub fn i16(&mut self) -> ParseResult<i16> {
        let b = self.bytes(2)?;
        Ok(i16::from_le_bytes([b[0], b[1]]))
    }
    /// little-endian u16.
    pub fn u16(&mut self) -> ParseResult<u16> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    /// little-endian i32.
    pub fn i32(&mut self) -> ParseResult<i32> {
        let b = self.bytes(4)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// little-endian u32.
    pub fn u32(&mut self) -> ParseResult<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// little-endian f32.
    pub fn f32(&mut self) -> ParseResult<f32> {
        Ok(f32::from_bits(self.u32()?))
    }
    /// IEEE half precision, widened to f32 (exact).
    pub fn f16(&mut self) -> ParseResult<f32> {
        Ok(f16_to_f32(self.u16()?))
    }
    /// A vector of `n` i16.
    pub fn i16_vec(&mut self, n: usize) -> ParseResult<Vec<i16>> {
        let b = self.bytes(
            n.checked_mul(2)
                .ok_or_else(|| self.err("an array size that fits in memory"))?,
        )?;
        Ok(b.chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect())
    }
    /// A vector of `n` i32.
    pub fn i32_vec(&mut self, n: usize) -> ParseResult<Vec<i32>> {
        let b = self.bytes(
            n.checked_mul(4)
                .ok_or_else(|| self.err("an array size that fits in memory"))?,
        )?;
        Ok(b.chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    /// A vector of `n` f32.
    pub fn f32_vec(&mut self, n: usize) -> ParseResult<Vec<f32>> {
        let b = self.bytes(
            n.checked_mul(4)
                .ok_or_else(|| self.err("an array size that fits in memory"))?,
        )?;
        Ok(b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    /// `time`: two i32 (seconds, nanoseconds).
    pub fn time(&mut self) -> ParseResult<(i32, i32)> {
        Ok((self.i32()?, self.i32()?))
    }
    /// `string`: i16 byte count then bytes.
    pub fn string(&mut self) -> ParseResult<String> {
        let n = self.i16()?;
        if n < 0 {
            return Err(self.err(format!("a string length >= 0, found {n}")));
        }
        Ok(String::from_utf8_lossy(self.bytes(n as usize)?).into_owned())
    }
    /// `var-string`: unsigned varint byte count then bytes.
    pub fn var_string(&mut self) -> ParseResult<String> {
        let n = self.count()?;
        let n = usize::try_from(n).map_err(|_| self.err("a string length that fits in memory"))?;
        Ok(String::from_utf8_lossy(self.bytes(n)?).into_owned())
    }

    /// Unsigned variable-length integer (spec §3.1).
    #[inline]
    pub fn count(&mut self) -> ParseResult<u64> {
        let b0 = self.u8()?;
        let extra = b0.leading_ones() as usize;
        if extra == 0 {
            return Ok(u64::from(b0));
        }
        let rest = self.bytes(extra)?;
        let mut v: u64 = if extra >= 7 {
            0
        } else {
            u64::from(b0 & (0x7F >> extra))
        };
        for &b in rest {
            v = (v << 8) | u64::from(b);
        }
        Ok(v)
    }

    /// Signed (zig-zag) variable-length integer (spec §3.2).
    #[inline]
    pub fn scount(&mut self) -> ParseResult<i64> {
        let u = self.count()?;
        Ok(if u & 1 == 0 {
            (u >> 1) as i64
        } else {
            -((u >> 1) as i64) - 1
        })
    }

    /// A count that must fit a non-negative `usize` below `limit`.
    pub fn count_usize(&mut self, what: &str, limit: usize) -> ParseResult<usize> {
        let v = self.scount()?;
        if v < 0 || v as u64 > limit as u64 {
            return Err(self.err(format!("{what} in 0..={limit}, found {v}")));
        }
        Ok(v as usize)
    }

    /// Decode `out.len()` differential scount values (spec §3.3) into `out`, the running sum
    /// starting at 0, stored with wrapping into the output type (eventio stores samples as
    /// uint16 and sums as uint32).
    #[inline]
    pub fn diff_u16(&mut self, out: &mut [u16]) -> ParseResult<()> {
        let mut acc: i64 = 0;
        let data = self.data;
        let mut p = self.pos;
        for o in out.iter_mut() {
            // Fast path for the 1- and 2-byte codes that make up almost all samples.
            let b0 = match data.get(p) {
                Some(&b) => b,
                None => {
                    self.pos = p;
                    return Err(self.err("more ADC sample bytes, but the object ends"));
                }
            };
            let u: u64 = if b0 & 0x80 == 0 {
                p += 1;
                u64::from(b0)
            } else if b0 & 0xC0 == 0x80 {
                let Some(&b1) = data.get(p + 1) else {
                    self.pos = p;
                    return Err(self.err("more ADC sample bytes, but the object ends"));
                };
                p += 2;
                (u64::from(b0 & 0x3F) << 8) | u64::from(b1)
            } else {
                self.pos = p;
                let u = self.count()?;
                p = self.pos;
                u
            };
            let d = if u & 1 == 0 {
                (u >> 1) as i64
            } else {
                -((u >> 1) as i64) - 1
            };
            acc += d;
            *o = acc as u16;
        }
        self.pos = p;
        Ok(())
    }

    /// As [`Cursor::diff_u16`] for uint32 output (ADC sums).
    pub fn diff_u32(&mut self, out: &mut [u32]) -> ParseResult<()> {
        let mut acc: i64 = 0;
        for o in out.iter_mut() {
            acc += self.scount()?;
            *o = acc as u32;
        }
        Ok(())
    }

    /// Read a sub-object header (no sync marker). Returns the header and a cursor over its
    /// payload; the parent cursor moves past it. Fails if the declared length exceeds what the
    /// parent has left.
    pub fn subobject(&mut self) -> ParseResult<(ObjectHeader, Cursor<'a>)> {
        let start = self.abs_pos();
        let w = self.bytes(12)?;
        let mut words = [0u8; 12];
        words.copy_from_slice(w);
        let w0 = u32::from_le_bytes([words[0], words[1], words[2], words[3]]);
        let ext = if w0 & (1 << 17) != 0 {
            Some(self.u32()?)
        } else {
            None
        };
        let h = decode_header(&words, ext, self.abs_pos() as u64, start as u64);
        if h.length > self.remaining() as u64 {
            return Err(ParseError {
                offset: start,
                what: format!(
                    "sub-object type {} ({}) declares {} bytes but only {} remain in its parent",
                    h.type_,
                    type_name(h.type_),
                    h.length,
                    self.remaining()
                ),
            });
        }
        let base = self.abs_pos();
        let body = self.bytes(h.length as usize)?;
        Ok((h, Cursor::new(body, base)))
    }
}

/// IEEE-754 half to single precision (exact widening, incl. subnormals, inf, NaN).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1F);
    let man = u32::from(h & 0x3FF);
    let bits = if exp == 0 {
        if man == 0 {
            sign
        } else {
            // subnormal: value = man * 2^-24
            let v = man as f32 * f32::from_bits(0x3380_0000); // 2^-24
            return if sign != 0 { -v } else { v };
        }
    } else if exp == 31 {
        sign | 0x7F80_0000 | (man << 13)
    } else {
        sign | ((exp + 112) << 23) | (man << 13)
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_follow_the_spec_table() {
        // 1 byte: 0x05 -> 5; 2 bytes: 0x81 0x02 -> (1<<8)|2 = 258; 3 bytes: 0xC1 0x00 0x01 -> 65537
        let data = [
            0x05u8, 0x81, 0x02, 0xC1, 0x00, 0x01, 0xFF, 0, 0, 0, 0, 0, 0, 0, 7,
        ];
        let mut c = Cursor::new(&data, 0);
        assert_eq!(c.count().unwrap(), 5);
        assert_eq!(c.count().unwrap(), 258);
        assert_eq!(c.count().unwrap(), 65537);
        assert_eq!(c.count().unwrap(), 7);
        // zig-zag: 0,1,2,3,4 -> 0,-1,1,-2,2
        let z = [0u8, 1, 2, 3, 4];
        let mut c = Cursor::new(&z, 0);
        let v: Vec<i64> = (0..5).map(|_| c.scount().unwrap()).collect();
        assert_eq!(v, vec![0, -1, 1, -2, 2]);
    }

    #[test]
    fn differential_arrays_restart_per_array() {
        // deltas +300 (2-byte zigzag 600 = 0x82 0x58), -1 (1), +2 (4)
        let data = [0x82u8, 0x58, 0x01, 0x04];
        let mut out = [0u16; 3];
        Cursor::new(&data, 0).diff_u16(&mut out).unwrap();
        assert_eq!(out, [300, 299, 301]);
        let mut out32 = [0u32; 3];
        Cursor::new(&data, 0).diff_u32(&mut out32).unwrap();
        assert_eq!(out32, [300, 299, 301]);
    }

    #[test]
    fn half_floats_widen_exactly() {
        assert_eq!(f16_to_f32(0x3C00), 1.0);
        assert_eq!(f16_to_f32(0xC000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7BFF), 65504.0);
        assert!(f16_to_f32(0x7C00).is_infinite());
    }

    #[test]
    fn subobject_longer_than_parent_is_corrupt() {
        let mut data = vec![0u8; 12];
        data[0..4].copy_from_slice(&2013u32.to_le_bytes());
        data[8..12].copy_from_slice(&100u32.to_le_bytes());
        let err = Cursor::new(&data, 40).subobject().unwrap_err();
        assert_eq!(err.offset, 40);
        assert!(err.what.contains("2013 (ADCSamples)"), "{}", err.what);
    }
}
