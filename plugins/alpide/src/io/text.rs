//! Reader for Corryvreckan `[TextWriter]` output, filtered or not, streamed line by line.
//!
//! Format (Corryvreckan `src/modules/TextWriter`, objects printed by their `print()`):
//! ```text
//! Run: Cosmics000380                     (optional header)
//! === <event number> ===
//! Start: <t>                             (unfiltered files only)
//! End:   <t>
//! --- <detector name> ---
//! Pixel <col>, <row>, <raw>, <charge>, <timestamp>
//! Cluster <lx>, <ly>, (<gx>,<gy>,<gz>), <charge>, <split>, <npix>, <colWidth>, <rowWidth>, <t>
//! ```
//! Lines of other object classes are skipped (and counted). A line that cannot be read is an
//! error naming the file, line, byte offset and event number; a last line cut short (no final
//! newline) is a truncation, and the event it belongs to is dropped.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use caliper_core::error::{Position, ReadError};
use caliper_core::pipeline::EventSource;

use crate::event::{Event, PixelHit, PlaneMap, RefCluster, ResolveCache};

/// Streams events from a TextWriter file.
pub struct TextReader<R: BufRead> {
    path: PathBuf,
    inner: R,
    line: Vec<u8>,
    line_no: u64,
    offset: u64,
    planes: PlaneMap,
    cache: ResolveCache,
    /// Header of the event being read (its number), once seen.
    pending: Option<u64>,
    current_plane: Option<u16>,
    done: bool,
    total: Option<u64>,
    skipped_lines: u64,
    run_name: Option<String>,
}

impl TextReader<BufReader<File>> {
    /// Open a file.
    pub fn open(path: &Path, planes: PlaneMap) -> Result<Self, ReadError> {
        let file = File::open(path).map_err(|e| ReadError::io(path, &e))?;
        let total = file.metadata().ok().map(|m| m.len());
        let mut r = Self::new(path, BufReader::with_capacity(1 << 18, file), planes);
        r.total = total;
        Ok(r)
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let s = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let e = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(s, |e| e + 1);
    &b[s..e.max(s)]
}

fn parse_num<T: std::str::FromStr>(b: &[u8]) -> Option<T> {
    std::str::from_utf8(trim(b)).ok()?.parse().ok()
}

impl<R: BufRead> TextReader<R> {
    /// Read from any buffered stream; `path` names it in errors.
    pub fn new(path: &Path, inner: R, planes: PlaneMap) -> Self {
        Self {
            path: path.into(),
            inner,
            line: Vec::with_capacity(256),
            line_no: 0,
            offset: 0,
            planes,
            cache: ResolveCache::default(),
            pending: None,
            current_plane: None,
            done: false,
            total: None,
            skipped_lines: 0,
            run_name: None,
        }
    }

    /// Lines of object classes other than Pixel and Cluster, skipped.
    pub fn skipped_lines(&self) -> u64 {
        self.skipped_lines
    }

    /// The `Run:` header, if the file has one.
    pub fn run_name(&self) -> Option<&str> {
        self.run_name.as_deref()
    }

    fn err(&self, line_start: u64, truncated: bool, event: Option<u64>, msg: String) -> ReadError {
        let mut pos = Position::byte(line_start).with_line(self.line_no);
        pos.event = event;
        if truncated {
            ReadError::truncated(&self.path, pos, msg)
        } else {
            ReadError::corrupt(&self.path, pos, msg)
        }
    }

    /// Reads the next event into `event`. `Ok(false)` at the end.
    pub fn read_into(&mut self, event: &mut Event) -> Result<bool, ReadError> {
        event.hits.clear();
        event.ref_clusters.clear();
        if self.done {
            return Ok(false);
        }
        loop {
            self.line.clear();
            let line_start = self.offset;
            let n = match self.inner.read_until(b'\n', &mut self.line) {
                Ok(n) => n,
                Err(e) => {
                    self.done = true;
                    let mut err = ReadError::io(&self.path, &e);
                    err.position = Position::byte(line_start).with_line(self.line_no + 1);
                    return Err(err);
                }
            };
            if n == 0 {
                self.done = true;
                return match self.pending.take() {
                    Some(num) => {
                        event.number = num;
                        Ok(true)
                    }
                    None => Ok(false),
                };
            }
            self.offset += n as u64;
            self.line_no += 1;
            let complete = self.line.last() == Some(&b'\n');
            let text = trim(&self.line);
            if text.is_empty() {
                continue;
            }
            let line = text.to_vec();
            match self.parse_line(&line, event) {
                Ok(Some(finished)) => {
                    event.number = finished;
                    return Ok(true);
                }
                Ok(None) => {}
                Err(msg) => {
                    self.done = true;
                    // A last line without its newline that does not parse: the file was cut.
                    let truncated = !complete;
                    let msg = if truncated {
                        format!("last line cut short: {msg}")
                    } else {
                        msg
                    };
                    return Err(self.err(line_start, truncated, self.pending, msg));
                }
            }
        }
    }

    /// Handles one non-empty line. Returns the number of an event that just ended (a new
    /// header started), whose hits are in `event`.
    fn parse_line(&mut self, text: &[u8], event: &mut Event) -> Result<Option<u64>, String> {
        if let Some(rest) = text.strip_prefix(b"===") {
            let Some(inner) = rest.strip_suffix(b"===") else {
                return Err("expected '=== <event number> ==='".into());
            };
            let Some(num) = parse_num::<u64>(inner) else {
                return Err(format!(
                    "expected an event number in '{}'",
                    String::from_utf8_lossy(text)
                ));
            };
            self.current_plane = None;
            let finished = self.pending.replace(num);
            if let Some(f) = finished {
                // The hits read so far belong to the previous event; keep the new header.
                return Ok(Some(f));
            }
            event.hits.clear();
            event.ref_clusters.clear();
            return Ok(None);
        }
        if let Some(rest) = text.strip_prefix(b"---") {
            let Some(inner) = rest.strip_suffix(b"---") else {
                return Err("expected '--- <detector name> ---'".into());
            };
            let name = trim(inner);
            match self.cache.resolve(&self.planes, name) {
                Some(p) => self.current_plane = Some(p),
                None => {
                    return Err(format!(
                        "unknown detector \"{}\"; the geometry has {} (names match exactly or by the number after the last '_')",
                        String::from_utf8_lossy(name),
                        self.planes.describe()
                    ));
                }
            }
            if self.pending.is_none() {
                return Err("detector block before the first '=== <event> ===' header".into());
            }
            return Ok(None);
        }
        if let Some(rest) = text.strip_prefix(b"Pixel ") {
            let plane = self.object_plane()?;
            let mut it = rest.split(|&b| b == b',');
            let col = it.next().and_then(parse_num::<i64>);
            let row = it.next().and_then(parse_num::<i64>);
            let _raw = it.next().and_then(parse_num::<f64>);
            let charge = it.next().and_then(parse_num::<f64>);
            // The timestamp (ns) is optional here: a missing one reads as 0.
            let time = match it.next() {
                None => Some(0.0),
                Some(t) => parse_num::<f64>(t),
            };
            let (Some(c), Some(r), Some(q), Some(time)) = (col, row, charge, time) else {
                return Err(format!(
                    "expected 'Pixel <col>, <row>, <raw>, <charge>, <timestamp>', found '{}'",
                    String::from_utf8_lossy(text)
                ));
            };
            let (nc, nr) = self.planes.dims(plane as usize);
            if c < 0 || r < 0 || c >= i64::from(nc) || r >= i64::from(nr) {
                return Err(format!(
                    "pixel ({c}, {r}) outside the {nc} x {nr} matrix of {}",
                    self.planes.names()[plane as usize]
                ));
            }
            event.hits.push(PixelHit {
                plane,
                col: c as u16,
                row: r as u16,
                charge: q as f32,
                time,
            });
            return Ok(None);
        }
        if let Some(rest) = text.strip_prefix(b"Cluster ") {
            let plane = self.object_plane()?;
            let c = parse_cluster(rest).ok_or_else(|| {
                format!(
                    "expected 'Cluster <lx>, <ly>, (<gx>,<gy>,<gz>), <charge>, <split>, <npix>, <colWidth>, <rowWidth>, <t>', found '{}'",
                    String::from_utf8_lossy(text)
                )
            })?;
            event.ref_clusters.push(RefCluster { plane, ..c });
            return Ok(None);
        }
        if let Some(rest) = text.strip_prefix(b"Run:") {
            self.run_name = Some(String::from_utf8_lossy(trim(rest)).into_owned());
            return Ok(None);
        }
        if text.starts_with(b"Start:") || text.starts_with(b"End:") {
            return Ok(None);
        }
        // Another object class (a word, a space, then its fields): skip it.
        if text[0].is_ascii_alphabetic() && text.contains(&b' ') && self.pending.is_some() {
            self.skipped_lines += 1;
            return Ok(None);
        }
        Err(format!(
            "unexpected line '{}'",
            String::from_utf8_lossy(text)
        ))
    }

    fn object_plane(&self) -> Result<u16, String> {
        if self.pending.is_none() {
            return Err("object line before the first '=== <event> ===' header".into());
        }
        self.current_plane
            .ok_or_else(|| "object line outside a '--- <detector> ---' block".into())
    }
}

fn parse_cluster(rest: &[u8]) -> Option<RefCluster> {
    let open = rest.iter().position(|&b| b == b'(')?;
    let close = rest.iter().position(|&b| b == b')')?;
    let mut head = rest[..open].split(|&b| b == b',');
    let lx = parse_num::<f64>(head.next()?)?;
    let ly = parse_num::<f64>(head.next()?)?;
    let mut g = rest[open + 1..close].split(|&b| b == b',');
    let gx = parse_num::<f64>(g.next()?)?;
    let gy = parse_num::<f64>(g.next()?)?;
    let gz = parse_num::<f64>(g.next()?)?;
    let mut tail = rest[close + 1..].split(|&b| b == b',').skip(1);
    let charge = parse_num::<f64>(tail.next()?)?;
    let split = parse_num::<i64>(tail.next()?)?;
    let size = parse_num::<u32>(tail.next()?)?;
    let cw = parse_num::<u32>(tail.next()?)?;
    let rw = parse_num::<u32>(tail.next()?)?;
    Some(RefCluster {
        plane: 0,
        local: [lx, ly],
        global: [gx, gy, gz],
        charge,
        split: split != 0,
        size,
        col_width: cw,
        row_width: rw,
    })
}

impl<R: BufRead + Send> EventSource for TextReader<R> {
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
        Some(self.offset)
    }

    fn total_bytes(&self) -> Option<u64> {
        self.total
    }
}

/// Reads `inner` to the end (for tests and small files).
pub fn read_all<R: Read + Send>(
    path: &Path,
    inner: R,
    planes: PlaneMap,
) -> (Vec<Event>, Option<ReadError>) {
    let mut r = TextReader::new(path, BufReader::new(inner), planes);
    let mut out = Vec::new();
    loop {
        match r.next_event() {
            Some(Ok(e)) => out.push(e),
            Some(Err(e)) => return (out, Some(e)),
            None => return (out, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNFILTERED: &str = "=== 169137 ===\nStart: 4.80374e+19\nEnd:   4.80374e+19\n=== 169139 ===\nStart: 4.8e+19\nEnd:   4.8e+19\n--- pALPIDEfs_1 ---\nPixel 9, 66, 1, 1, 4.80374e+19\n--- pALPIDEfs_2 ---\nPixel 11, 31, 1, 1, 4.80374e+19\nPixel 12, 31, 1, 2, 4.80374e+19\n--- pALPIDEfs_2 ---\nCluster -10.8822, -2.54912, (-10.8822,-2.54912,20), 3, 0, 3, 2, 2, 4.80374e+19\nTrack something, else\n=== 169140 ===\nStart: 1\nEnd:   1\n";

    #[test]
    fn reads_unfiltered_events_with_pixels_and_clusters() {
        let (ev, err) = read_all(
            Path::new("t.txt"),
            UNFILTERED.as_bytes(),
            PlaneMap::alpide(7),
        );
        assert!(err.is_none(), "{err:?}");
        assert_eq!(
            ev.iter().map(|e| e.number).collect::<Vec<_>>(),
            vec![169137, 169139, 169140]
        );
        assert!(ev[0].hits.is_empty());
        assert_eq!(ev[1].hits.len(), 3);
        assert_eq!(
            ev[1].hits[2],
            PixelHit {
                plane: 2,
                col: 12,
                row: 31,
                charge: 2.0,
                time: 4.80374e19,
            }
        );
        assert_eq!(ev[1].ref_clusters.len(), 1);
        let c = ev[1].ref_clusters[0];
        assert_eq!((c.plane, c.size, c.col_width, c.row_width), (2, 3, 2, 2));
        assert_eq!(c.global, [-10.8822, -2.54912, 20.0]);
    }

    #[test]
    fn cut_last_line_is_truncation_and_bad_line_is_corrupt() {
        let cut = &UNFILTERED[..UNFILTERED.find("Pixel 12").unwrap() + 9];
        let (ev, err) = read_all(Path::new("t.txt"), cut.as_bytes(), PlaneMap::alpide(7));
        let err = err.expect("error");
        assert!(err.is_truncated(), "{err}");
        assert_eq!(ev.len(), 1);
        assert_eq!(err.position.event, Some(169139));
        assert_eq!(err.position.line, Some(11));
        let bad = UNFILTERED.replace("Pixel 9, 66", "Pixel 9; 66");
        let (_, err) = read_all(Path::new("t.txt"), bad.as_bytes(), PlaneMap::alpide(7));
        let err = err.expect("error");
        assert!(!err.is_truncated());
        assert_eq!(err.position.line, Some(8));
        assert!(err.to_string().contains("t.txt: line 8, byte"), "{err}");
        let unknown = UNFILTERED.replace("pALPIDEfs_1", "DUT");
        let (_, err) = read_all(Path::new("t.txt"), unknown.as_bytes(), PlaneMap::alpide(7));
        assert!(
            err.expect("error")
                .message
                .contains("unknown detector \"DUT\"")
        );
    }
}
