//! Reader for Corryvreckan `[JSONWriter]` output, streamed.
//!
//! Layout (Corryvreckan `src/modules/JSONWriter`, objects from ROOT `TBufferJSON::ToJSON`): one
//! top-level array of events; each event is a flat array of objects of every included class and
//! detector; a pixel object carries `_typename` (`"corryvreckan::Pixel"`), `fUniqueID`, `fBits`,
//! `m_detectorID`, `m_timestamp`, `m_column`, `m_row`, `m_raw`, `m_charge`. Objects of other
//! classes (clusters, tracks) are skipped. Both compact and pretty-printed files are read.
//!
//! Files reach many GB, so nothing is loaded whole: a buffered scanner finds the bytes of the
//! next event (bracket depth, aware of strings and escapes), then a hand-written parser reads
//! that slice. Errors give the file, the byte offset, the line (counted again from the start of
//! the file only when an error is reported) and the event number (0-based index in the array).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use caliper_core::error::{Position, ReadError};
use caliper_core::pipeline::EventSource;

use crate::event::{Event, PixelHit, PlaneMap, ResolveCache};

/// Where the scanner is in the top-level array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening `[`.
    Start,
    /// Inside the array; `first` until the first event was read.
    InArray { first: bool },
    /// After the closing `]` (or after an error).
    Done,
}

/// Streams events from a JSONWriter file.
pub struct JsonReader<R: Read> {
    path: PathBuf,
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// File offset of `buf[0]`.
    base: u64,
    eof: bool,
    state: State,
    next_event: u64,
    planes: PlaneMap,
    cache: ResolveCache,
    total: Option<u64>,
    skipped_objects: u64,
}

const INITIAL_BUF: usize = 1 << 20;

impl JsonReader<File> {
    /// Open a file.
    pub fn open(path: &Path, planes: PlaneMap) -> Result<Self, ReadError> {
        let file = File::open(path).map_err(|e| ReadError::io(path, &e))?;
        let total = file.metadata().ok().map(|m| m.len());
        let mut r = Self::new(path, file, planes);
        r.total = total;
        Ok(r)
    }
}

impl<R: Read> JsonReader<R> {
    /// Read from any byte stream; `path` names it in errors.
    pub fn new(path: &Path, inner: R, planes: PlaneMap) -> Self {
        Self {
            path: path.into(),
            inner,
            buf: vec![0; INITIAL_BUF],
            start: 0,
            end: 0,
            base: 0,
            eof: false,
            state: State::Start,
            next_event: 0,
            planes,
            cache: ResolveCache::default(),
            total: None,
            skipped_objects: 0,
        }
    }

    /// Objects that were not pixels (clusters, tracks, ...) and were skipped.
    pub fn skipped_objects(&self) -> u64 {
        self.skipped_objects
    }

    /// Moves the unconsumed bytes to the front, grows the buffer if full, reads more.
    /// Returns how far the data moved (subtract from indices into `buf`) and whether bytes came.
    fn refill(&mut self) -> Result<(usize, bool), ReadError> {
        let shift = self.start;
        if shift > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= shift;
            self.start = 0;
            self.base += shift as u64;
        }
        if self.end == self.buf.len() {
            let n = self.buf.len() * 2;
            self.buf.resize(n, 0);
        }
        if self.eof {
            return Ok((shift, false));
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok((shift, false));
                }
                Ok(n) => {
                    self.end += n;
                    return Ok((shift, true));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let mut err = ReadError::io(&self.path, &e);
                    err.position =
                        Position::byte(self.base + self.end as u64).with_event(self.next_event);
                    return Err(err);
                }
            }
        }
    }

    /// The next non-whitespace byte (not consumed), or `None` at the end of the input.
    fn peek_non_ws(&mut self) -> Result<Option<u8>, ReadError> {
        loop {
            while self.start < self.end {
                let b = self.buf[self.start];
                if !is_ws(b) {
                    return Ok(Some(b));
                }
                self.start += 1;
            }
            let (_, more) = self.refill()?;
            if !more {
                return Ok(None);
            }
        }
    }

    fn error_at(&self, offset: u64, truncated: bool, event: u64, message: String) -> ReadError {
        let mut pos = Position::byte(offset).with_event(event);
        if let Some(line) = line_of_offset(&self.path, offset) {
            pos = pos.with_line(line);
        }
        if truncated {
            ReadError::truncated(&self.path, pos, message)
        } else {
            ReadError::corrupt(&self.path, pos, message)
        }
    }

    /// Reads the next event into `event` (reusing its allocation). `Ok(false)` at the end.
    pub fn read_into(&mut self, event: &mut Event) -> Result<bool, ReadError> {
        event.hits.clear();
        event.ref_clusters.clear();
        match self.state {
            State::Done => return Ok(false),
            State::Start => match self.peek_non_ws()? {
                Some(b'[') => {
                    self.start += 1;
                    self.state = State::InArray { first: true };
                }
                Some(b) => {
                    self.state = State::Done;
                    let off = self.base + self.start as u64;
                    return Err(self.error_at(
                        off,
                        false,
                        0,
                        format!(
                            "expected '[' opening the JSONWriter array of events, found {}",
                            show(b)
                        ),
                    ));
                }
                None => {
                    self.state = State::Done;
                    return Err(self.error_at(
                        self.base + self.start as u64,
                        true,
                        0,
                        "the file is empty; expected a JSONWriter array of events".into(),
                    ));
                }
            },
            State::InArray { .. } => {}
        }
        let State::InArray { first } = self.state else {
            return Ok(false);
        };
        let mut b = self.peek_non_ws()?;
        if !first {
            match b {
                Some(b',') => {
                    self.start += 1;
                    b = self.peek_non_ws()?;
                }
                Some(b']') => {
                    self.start += 1;
                    self.state = State::Done;
                    return Ok(false);
                }
                Some(other) => {
                    self.state = State::Done;
                    let off = self.base + self.start as u64;
                    return Err(self.error_at(
                        off,
                        false,
                        self.next_event,
                        format!(
                            "expected ',' or ']' after event {}, found {}",
                            self.next_event - 1,
                            show(other)
                        ),
                    ));
                }
                None => {
                    self.state = State::Done;
                    let off = self.base + self.start as u64;
                    return Err(self.error_at(
                        off,
                        true,
                        self.next_event,
                        format!(
                            "the file ends after event {}; expected ',' and more events or ']' closing the array",
                            self.next_event - 1
                        ),
                    ));
                }
            }
        }
        match b {
            Some(b'[') => {}
            Some(b']') if first => {
                self.start += 1;
                self.state = State::Done;
                return Ok(false);
            }
            Some(other) => {
                self.state = State::Done;
                let off = self.base + self.start as u64;
                return Err(self.error_at(
                    off,
                    false,
                    self.next_event,
                    format!(
                        "expected '[' opening event {}, found {}",
                        self.next_event,
                        show(other)
                    ),
                ));
            }
            None => {
                self.state = State::Done;
                let off = self.base + self.start as u64;
                return Err(self.error_at(
                    off,
                    true,
                    self.next_event,
                    format!("the file ends where event {} should start", self.next_event),
                ));
            }
        }
        // Parse the event from the buffered bytes; when the parser runs off the end of the
        // data it has, read more and parse the event again (events are small next to the
        // buffer, so this happens about once per refill).
        let number = self.next_event;
        let end = loop {
            event.hits.clear();
            let mut p = EventParser {
                s: &self.buf[self.start..self.end],
                i: 1,
                planes: &self.planes,
                cache: &mut self.cache,
                hits: &mut event.hits,
                skipped: 0,
                hit_end: std::cell::Cell::new(false),
            };
            let r = p.parse_event();
            let (skipped, hit_end) = (p.skipped, p.hit_end.get());
            match r {
                Ok(len) => {
                    self.skipped_objects += skipped;
                    break self.start + len;
                }
                Err((at, msg)) => {
                    if hit_end {
                        let (_, more) = self.refill()?;
                        if more {
                            continue;
                        }
                        self.state = State::Done;
                        let start = self.base + self.start as u64;
                        return Err(self.error_at(
                            start,
                            true,
                            number,
                            format!("the file ends inside event {number} (it starts at byte {start}); expected ']' closing it"),
                        ));
                    }
                    self.state = State::Done;
                    let off = self.base + (self.start + at) as u64;
                    return Err(self.error_at(off, false, number, msg));
                }
            }
        };
        self.start = end;
        self.state = State::InArray { first: false };
        self.next_event += 1;
        event.number = number;
        Ok(true)
    }
}

impl<R: Read + Send> EventSource for JsonReader<R> {
    type Event = Event;

    fn next_event(&mut self) -> Option<Result<Event, ReadError>> {
        let mut e = Event::default();
        match self.read_into(&mut e) {
            Ok(true) => Some(Ok(e)),
            Ok(false) => None,
            Err(err) => Some(Err(err)),
        }
    }

    fn bytes_read(&self) -> Option<u64> {
        Some(self.base + self.start as u64)
    }

    fn total_bytes(&self) -> Option<u64> {
        self.total
    }
}

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

fn show(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

/// The 1-based line of a byte offset, counted by reading the file again (error path only).
fn line_of_offset(path: &Path, offset: u64) -> Option<u64> {
    let mut f = File::open(path).ok()?;
    let mut buf = vec![0u8; 1 << 16];
    let mut left = offset;
    let mut lines = 1u64;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = f.read(&mut buf[..want]).ok()?;
        if n == 0 {
            break;
        }
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        left -= n as u64;
    }
    Some(lines)
}

type ParseResult<T> = Result<T, (usize, String)>;

/// Parses one event slice (`[` ... `]`, known complete).
struct EventParser<'a> {
    s: &'a [u8],
    i: usize,
    planes: &'a PlaneMap,
    cache: &'a mut ResolveCache,
    hits: &'a mut Vec<PixelHit>,
    skipped: u64,
    /// Set when the parser needed bytes beyond the end of the slice (the event is incomplete).
    hit_end: std::cell::Cell<bool>,
}

const PIXEL_TYPE: &[u8] = b"corryvreckan::Pixel";

impl<'a> EventParser<'a> {
    #[inline]
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && is_ws(self.s[self.i]) {
            self.i += 1;
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        let b = self.s.get(self.i).copied();
        if b.is_none() {
            self.hit_end.set(true);
        }
        b
    }

    fn err<T>(&self, msg: impl Into<String>) -> ParseResult<T> {
        Err((self.i, msg.into()))
    }

    fn found(&self) -> String {
        match self.peek() {
            Some(b) => show(b),
            None => "the end of the event".into(),
        }
    }

    /// Parses the event; returns the length up to and including its closing `]`.
    fn parse_event(&mut self) -> ParseResult<usize> {
        self.skip_ws();
        if self.peek() == Some(b']') {
            return Ok(self.i + 1);
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'{') {
                return self.err(format!(
                    "expected '{{' opening an object, found {}",
                    self.found()
                ));
            }
            self.i += 1;
            self.parse_object()?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => return Ok(self.i + 1),
                _ => {
                    return self.err(format!(
                        "expected ',' or ']' after an object, found {}",
                        self.found()
                    ));
                }
            }
        }
    }

    /// A string starting at the current `"`; returns its raw bytes (escapes left in place).
    #[inline]
    fn string(&mut self) -> ParseResult<&'a [u8]> {
        if self.peek() != Some(b'"') {
            return self.err(format!("expected a string, found {}", self.found()));
        }
        let start = self.i + 1;
        let mut j = start;
        let s = self.s;
        while j < s.len() {
            match s[j] {
                b'"' => {
                    self.i = j + 1;
                    return Ok(&s[start..j]);
                }
                b'\\' => j += 2,
                _ => j += 1,
            }
        }
        self.hit_end.set(true);
        self.err("unterminated string")
    }

    /// An integer value (a JSON number without fraction or exponent).
    #[inline]
    fn int(&mut self) -> ParseResult<i64> {
        let s = self.s;
        let mut j = self.i;
        let neg = s.get(j) == Some(&b'-');
        if neg {
            j += 1;
        }
        let d0 = j;
        let mut v: i64 = 0;
        while j < s.len() && s[j].is_ascii_digit() && j - d0 < 18 {
            v = v * 10 + i64::from(s[j] - b'0');
            j += 1;
        }
        if j >= s.len() {
            // The number may go on in bytes not read yet.
            self.hit_end.set(true);
            return self.err("number cut by the end of the data");
        }
        if j == d0 || (j < s.len() && matches!(s[j], b'.' | b'e' | b'E' | b'0'..=b'9')) {
            // Not a plain integer: accept a float that is integral (ROOT may write 1.0 or 1e2).
            let x = self.float()?;
            if x.fract() != 0.0 || !x.is_finite() || x.abs() > 1e15 {
                return Err((d0, format!("expected an integer, found {x}")));
            }
            return Ok(x as i64);
        }
        self.i = j;
        Ok(if neg { -v } else { v })
    }

    #[inline]
    fn float(&mut self) -> ParseResult<f64> {
        let s = self.s;
        let start = self.i;
        let mut j = start;
        while j < s.len() && matches!(s[j], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
            j += 1;
        }
        if j >= s.len() {
            self.hit_end.set(true);
            return self.err("number cut by the end of the data");
        }
        // Fast path: a plain integer of up to 15 digits (charges, zero timestamps) is exact in
        // f64; anything else goes through the standard parser.
        let digits = &s[start..j];
        let (neg, body) = match digits.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, digits),
        };
        if !body.is_empty() && body.len() <= 15 && body.iter().all(u8::is_ascii_digit) {
            let v = body.iter().fold(0u64, |v, &d| v * 10 + u64::from(d - b'0')) as f64;
            self.i = j;
            return Ok(if neg { -v } else { v });
        }
        let text = std::str::from_utf8(&s[start..j]).unwrap_or("");
        match text.parse::<f64>() {
            Ok(v) if j > start => {
                self.i = j;
                Ok(v)
            }
            _ => self.err(format!("expected a number, found {}", self.found())),
        }
    }

    /// Skips any JSON value.
    fn skip_value(&mut self) -> ParseResult<()> {
        self.skip_ws();
        match self.peek() {
            Some(b'"') => {
                self.string()?;
            }
            Some(b'{') | Some(b'[') => {
                let mut depth = 0u32;
                while let Some(b) = self.peek() {
                    match b {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Ok(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
                return self.err("unterminated object or array");
            }
            Some(b't') | Some(b'f') | Some(b'n') => {
                while self.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
                    self.i += 1;
                }
            }
            Some(_) => {
                self.float()?;
            }
            None => return self.err("expected a value, found the end of the event"),
        }
        Ok(())
    }

    fn parse_object(&mut self) -> ParseResult<()> {
        let obj_start = self.i - 1;
        let mut is_pixel: Option<bool> = None;
        let mut plane: Option<u16> = None;
        let mut det_seen: Option<(usize, usize)> = None;
        let mut col: Option<i64> = None;
        let mut row: Option<i64> = None;
        let mut charge: f64 = 1.0;
        let mut time: f64 = 0.0;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            self.skipped += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            let which = match self.string()? {
                b"_typename" => 1,
                b"m_detectorID" => 2,
                b"m_column" => 3,
                b"m_row" => 4,
                b"m_charge" => 5,
                b"m_timestamp" => 6,
                _ => 0,
            };
            self.skip_ws();
            if self.peek() != Some(b':') {
                return self.err(format!("expected ':' after a key, found {}", self.found()));
            }
            self.i += 1;
            self.skip_ws();
            match which {
                1 => {
                    let t = self.string()?;
                    is_pixel = Some(t == PIXEL_TYPE);
                }
                2 => {
                    let at = self.i + 1;
                    let name = self.string()?;
                    det_seen = Some((at, at + name.len()));
                    plane = self.cache.resolve(self.planes, name);
                }
                3 if is_pixel != Some(false) => col = Some(self.int()?),
                4 if is_pixel != Some(false) => row = Some(self.int()?),
                5 if is_pixel != Some(false) => charge = self.float()?,
                6 if is_pixel != Some(false) => time = self.float()?,
                _ => self.skip_value()?,
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    break;
                }
                _ => {
                    return self.err(format!(
                        "expected ',' or '}}' in an object, found {}",
                        self.found()
                    ));
                }
            }
        }
        if is_pixel == Some(false) {
            self.skipped += 1;
            return Ok(());
        }
        let (Some(c), Some(r)) = (col, row) else {
            return Err((obj_start, "pixel object without m_column and m_row".into()));
        };
        let Some((a, b)) = det_seen else {
            return Err((obj_start, "pixel object without m_detectorID".into()));
        };
        let Some(p) = plane else {
            let name = String::from_utf8_lossy(&self.s[a..b]).into_owned();
            return Err((
                a,
                format!(
                    "unknown detector \"{name}\"; the geometry has {} (names match exactly or by the number after the last '_')",
                    self.planes.describe()
                ),
            ));
        };
        let (nc, nr) = self.planes.dims(p as usize);
        if c < 0 || r < 0 || c >= i64::from(nc) || r >= i64::from(nr) {
            return Err((
                obj_start,
                format!(
                    "pixel ({c}, {r}) outside the {nc} x {nr} matrix of {}",
                    self.planes.names()[p as usize]
                ),
            ));
        }
        self.hits.push(PixelHit {
            plane: p,
            col: c as u16,
            row: r as u16,
            charge: charge as f32,
            time,
        });
        Ok(())
    }
}

/// Writes events in the JSONWriter layout, as the simulator and tests need: compact objects
/// (one event per line, like the notebook's file) or pretty-printed ones (`"key" : value`, one
/// key per line, like ROOT's default `TBufferJSON::ToJSON`).
pub fn write_events<W: std::io::Write>(
    out: &mut W,
    planes: &PlaneMap,
    events: impl IntoIterator<Item = Event>,
) -> std::io::Result<()> {
    write_events_styled(out, planes, events, false)
}

/// [`write_events`] with a choice of compact or pretty-printed objects.
pub fn write_events_styled<W: std::io::Write>(
    out: &mut W,
    planes: &PlaneMap,
    events: impl IntoIterator<Item = Event>,
    pretty: bool,
) -> std::io::Result<()> {
    out.write_all(b"[\n")?;
    let mut first = true;
    for ev in events {
        if !first {
            out.write_all(b",\n")?;
        }
        first = false;
        out.write_all(b"[")?;
        for (k, h) in ev.hits.iter().enumerate() {
            if k > 0 {
                out.write_all(if pretty { b",\n" } else { b"," })?;
            }
            let name = &planes.names()[h.plane as usize];
            if pretty {
                write!(
                    out,
                    "{{\n  \"_typename\" : \"corryvreckan::Pixel\",\n  \"fUniqueID\" : 0,\n  \"fBits\" : 0,\n  \"m_detectorID\" : \"{name}\",\n  \"m_timestamp\" : {},\n  \"m_column\" : {},\n  \"m_row\" : {},\n  \"m_raw\" : 1,\n  \"m_charge\" : {}\n}}",
                    h.time, h.col, h.row, h.charge
                )?;
            } else {
                write!(
                    out,
                    "{{\"_typename\":\"corryvreckan::Pixel\",\"fUniqueID\":0,\"fBits\":0,\"m_detectorID\":\"{name}\",\"m_timestamp\":{},\"m_column\":{},\"m_row\":{},\"m_raw\":1,\"m_charge\":{}}}",
                    h.time, h.col, h.row, h.charge
                )?;
            }
        }
        out.write_all(b"]")?;
    }
    out.write_all(b"\n]\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str) -> (Vec<Event>, Option<ReadError>) {
        let mut r = JsonReader::new(Path::new("t.json"), text.as_bytes(), PlaneMap::alpide(7));
        r.buf = vec![0; 16]; // tiny buffer: exercises refills and growth
        let mut out = Vec::new();
        loop {
            match r.next_event() {
                Some(Ok(e)) => out.push(e),
                Some(Err(e)) => return (out, Some(e)),
                None => return (out, None),
            }
        }
    }

    const PRETTY: &str = r#"[
[{
  "_typename" : "corryvreckan::Pixel",
  "fUniqueID" : 0,
  "fBits" : 0,
  "m_detectorID" : "plane_3",
  "m_timestamp" : 1.0084956029625e+12,
  "m_column" : 874,
  "m_row" : 356,
  "m_raw" : 1,
  "m_charge" : 2.5
}, {
  "_typename" : "corryvreckan::Cluster",
  "m_detectorID" : "plane_3",
  "m_column" : 874.5,
  "m_error" : {"fX" : 0.005, "fY" : 0.005},
  "m_local" : {"fCoordinates" : {"fX" : 1, "fY" : 2, "fZ" : 0}},
  "m_name" : "a \"quoted\" ] bracket"
}],
[],
[{"_typename":"corryvreckan::Pixel","fUniqueID":0,"fBits":0,"m_detectorID":"pALPIDEfs_0","m_timestamp":0,"m_column":0,"m_row":511,"m_raw":1,"m_charge":1}]
]"#;

    #[test]
    fn reads_pretty_and_compact_events_and_skips_other_classes() {
        let (ev, err) = read_all(PRETTY);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(ev.len(), 3);
        assert_eq!(
            ev[0].hits,
            vec![PixelHit {
                plane: 3,
                col: 874,
                row: 356,
                charge: 2.5,
                time: 1.0084956029625e12,
            }]
        );
        assert!(ev[1].hits.is_empty());
        assert_eq!(ev[2].number, 2);
        assert_eq!(
            ev[2].hits,
            vec![PixelHit {
                plane: 0,
                col: 0,
                row: 511,
                charge: 1.0,
                time: 0.0,
            }]
        );
    }

    #[test]
    fn truncation_keeps_events_before_and_names_event_and_byte() {
        for cut in [PRETTY.len() - 3, PRETTY.len() - 40, PRETTY.len() - 1] {
            let (ev, err) = read_all(&PRETTY[..cut]);
            let err = err.expect("an error");
            assert!(err.is_truncated(), "{err}");
            assert_eq!(ev.len(), if cut == PRETTY.len() - 1 { 3 } else { 2 });
            let msg = err.to_string();
            assert!(msg.starts_with("t.json: "), "{msg}");
            assert!(msg.contains("byte "), "{msg}");
            assert!(msg.contains(&format!("event {}", ev.len())), "{msg}");
        }
    }

    #[test]
    fn malformed_input_is_corrupt_with_position() {
        let bad = "[\n[{\"_typename\":\"corryvreckan::Pixel\",\"m_detectorID\":\"ALPIDE_1\",\"m_column\":x,\"m_row\":1}]\n]";
        let (ev, err) = read_all(bad);
        assert!(ev.is_empty());
        let err = err.expect("error");
        assert!(!err.is_truncated());
        assert_eq!(err.position.event, Some(0));
        assert_eq!(err.position.byte, Some(bad.find(":x").unwrap() as u64 + 1));
        let unknown = "[[{\"_typename\":\"corryvreckan::Pixel\",\"m_detectorID\":\"DUT\",\"m_column\":1,\"m_row\":1}]]";
        let (_, err) = read_all(unknown);
        assert!(
            err.expect("error")
                .message
                .contains("unknown detector \"DUT\"")
        );
        let outside = "[[{\"_typename\":\"corryvreckan::Pixel\",\"m_detectorID\":\"ALPIDE_1\",\"m_column\":1024,\"m_row\":1}]]";
        let (_, err) = read_all(outside);
        assert!(
            err.expect("error")
                .message
                .contains("outside the 1024 x 512 matrix")
        );
        let (_, err) = read_all("");
        assert!(err.expect("error").is_truncated());
        let (_, err) = read_all("{}");
        assert!(!err.expect("error").is_truncated());
    }

    #[test]
    fn writer_output_reads_back() {
        let planes = PlaneMap::alpide(7);
        let events = vec![
            Event {
                number: 0,
                hits: vec![PixelHit {
                    plane: 6,
                    col: 10,
                    row: 20,
                    charge: 1.0,
                    time: 0.0,
                }],
                ..Event::default()
            },
            Event::default(),
        ];
        for pretty in [false, true] {
            let mut out = Vec::new();
            write_events_styled(&mut out, &planes, events.clone(), pretty).unwrap();
            let (back, err) = read_all(std::str::from_utf8(&out).unwrap());
            assert!(err.is_none());
            assert_eq!(back.len(), 2);
            assert_eq!(back[0].hits, events[0].hits);
            assert_eq!(back[1].number, 1);
        }
    }
}
