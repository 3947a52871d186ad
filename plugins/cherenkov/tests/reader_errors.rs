//! The reader on damaged input: a corrupt byte in the middle of a file gives an error that
//! names the byte offset and the object type; the events before it are still delivered.

use std::io::Read;

use caliper_cherenkov::io::simtel::SimtelReader;
use caliper_core::testing::shared_data;

fn decompressed(path: &std::path::Path) -> Vec<u8> {
    let (mut s, _, _) = caliper_cherenkov::io::open_stream(path).unwrap();
    let mut v = Vec::new();
    s.read_to_end(&mut v).unwrap();
    v
}

fn read_all(path: &std::path::Path) -> (usize, Option<caliper_core::ReadError>) {
    let mut r = SimtelReader::open(path).unwrap();
    let mut n = 0;
    while let Some(e) = r.next_event() {
        match e {
            Ok(_) => n += 1,
            Err(e) => return (n, Some(e)),
        }
    }
    (n, None)
}

#[test]
fn corrupt_byte_names_offset_and_object_type() {
    let Some(path) = shared_data(
        "cherenkov/gamma_20deg_0deg_run102___cta-prod4-sst-1m_desert-2150m-Paranal-sst-1m.simtel.zst",
    ) else {
        return;
    };
    let mut r = SimtelReader::open(&path).unwrap();
    let offsets: Vec<u64> = std::iter::from_fn(|| r.next_event())
        .map(|e| e.unwrap().offset)
        .collect();
    assert_eq!(offsets.len(), 31);
    let raw = decompressed(&path);
    let dir = tempfile::tempdir().unwrap();

    // 1. Inside event 10's ArrayEvent: the first sub-object's length gets its top bits set.
    let obj = offsets[10] as usize;
    let mut bad = raw.clone();
    let len_byte = obj + 16 + 8 + 3; // sync(4) + header(12), then sub-object header word 2, high byte
    bad[len_byte] |= 0x3F;
    let p = dir.path().join("corrupt_inside.simtel");
    std::fs::write(&p, &bad).unwrap();
    let (n, err) = read_all(&p);
    assert_eq!(n, 10, "the ten events before the damage are delivered");
    let e = err.expect("an error");
    let text = e.to_string();
    assert_eq!(e.kind, caliper_core::ReadErrorKind::Corrupt, "{text}");
    assert!(text.contains("2010 (ArrayEvent)"), "{text}");
    assert!(text.contains(&format!("byte {}", obj + 16)), "{text}");

    // 2. A damaged sync marker of event 20's object.
    let obj = offsets[20] as usize;
    let mut bad = raw.clone();
    bad[obj + 1] ^= 0xFF;
    let p = dir.path().join("corrupt_sync.simtel");
    std::fs::write(&p, &bad).unwrap();
    let (n, err) = read_all(&p);
    assert_eq!(n, 20);
    let text = err.expect("an error").to_string();
    assert!(
        text.contains(&format!("byte {obj}")) && text.contains("sync marker"),
        "{text}"
    );

    // 3. Cut in the middle of event 5: truncated, five events kept, the message says where.
    let cut = offsets[5] as usize + 1000;
    let p = dir.path().join("cut.simtel");
    std::fs::write(&p, &raw[..cut]).unwrap();
    let (n, err) = read_all(&p);
    assert_eq!(n, 5);
    let e = err.expect("truncation");
    assert!(e.is_truncated());
    assert!(
        e.to_string().contains(&format!("byte {}", offsets[5])),
        "{e}"
    );
}

#[test]
fn not_eventio_is_refused_with_its_first_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.simtel");
    std::fs::write(&p, b"hello world").unwrap();
    let e = SimtelReader::open(&p).unwrap_err();
    assert!(e.to_string().contains("68 65 6C 6C"), "{e}");
}

/// The event ids of a file read to its end, or up to its first error (returned beside them;
/// an error in the header block before the first event as well).
fn event_ids(path: &std::path::Path) -> (Vec<i64>, Option<caliper_core::ReadError>) {
    let mut r = match SimtelReader::open(path) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut ids = Vec::new();
    while let Some(e) = r.next_event() {
        match e {
            Ok(ev) => ids.push(ev.event_id),
            Err(e) => return (ids, Some(e)),
        }
    }
    (ids, None)
}

/// Cuts of a compressed file at `fractions` of its length: each is read up to the cut as a
/// truncation (the events before it identical to the whole file's, in order, and more of
/// them the later the cut), with a message that says the compressed stream is cut short.
fn check_cuts(whole: &[u8], name: &str, format: &str, fractions: &[f64], dir: &std::path::Path) {
    let p = dir.join(name);
    std::fs::write(&p, whole).unwrap();
    let (all, err) = event_ids(&p);
    assert!(err.is_none(), "{err:?}");
    let mut before = 0;
    for &f in fractions {
        let cut = (whole.len() as f64 * f) as usize;
        std::fs::write(&p, &whole[..cut]).unwrap();
        let (ids, err) = event_ids(&p);
        let e = err.unwrap_or_else(|| panic!("{name} cut at {cut}: no error"));
        let text = e.to_string();
        assert!(e.is_truncated(), "{name} cut at {cut}: {text}");
        assert!(
            text.contains(&format!("the {format} stream is cut short")),
            "{text}"
        );
        assert!(
            text.contains(&format!("after {cut} compressed bytes")),
            "{text}"
        );
        assert_eq!(ids[..], all[..ids.len()], "{name} cut at {cut}");
        assert!(
            ids.len() < all.len() && ids.len() >= before,
            "{name} cut at {cut}"
        );
        before = ids.len();
    }
    assert!(before > 0, "{name}: the last cut keeps some events");
}

/// The toy simulator's gzip file of 60 events in `dir`: its path and bytes.
fn toy_gzip(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
    let toy = dir.join("toy.simtel.gz");
    caliper_cherenkov::simulate::write_toy_file(&toy, 60, 3).unwrap();
    let whole = std::fs::read(&toy).unwrap();
    (toy, whole)
}

/// A gzip file cut short (the toy simulator's, no shared data needed) is a truncation with
/// the events before the cut, not a decompressor failure; likewise when the cut falls where
/// the decompressed data end exactly between two objects (a second gzip member holding the
/// rest, cut inside its first block).
#[test]
fn cut_gzip_file_is_read_up_to_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (toy, whole) = toy_gzip(dir.path());
    check_cuts(
        &whole,
        "cut.simtel.gz",
        "gzip",
        &[0.3, 0.6, 0.9, 0.999],
        dir.path(),
    );

    // two members: the objects before event 20's, then the rest, cut inside its first block
    // before it yields a byte (a 10-byte gzip header, then 2 bytes of deflate data)
    let raw = decompressed(&toy);
    let mut r = SimtelReader::open(&toy).unwrap();
    let offsets: Vec<u64> = std::iter::from_fn(|| r.next_event())
        .map(|e| e.unwrap().offset)
        .collect();
    let k = offsets[20] as usize;
    let gz = |b: &[u8]| {
        let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut w, b).unwrap();
        w.finish().unwrap()
    };
    let mut two = gz(&raw[..k]);
    let first = two.len();
    two.extend_from_slice(&gz(&raw[k..])[..12]);
    let p = dir.path().join("members.simtel.gz");
    std::fs::write(&p, &two).unwrap();
    let (ids, err) = event_ids(&p);
    let e = err.expect("truncation");
    let text = e.to_string();
    assert!(e.is_truncated(), "{text}");
    assert!(text.contains(&format!("byte {k}")), "{text}");
    assert!(
        text.contains("the data stop between two objects")
            && text.contains(&format!("after {} compressed bytes", first + 12)),
        "{text}"
    );
    assert_eq!(ids.len(), 20);
}

/// A zstd file cut short (the SST-1M file of the shared data: real zstd frames of several
/// blocks) is a truncation with the events before the cut; a damaged byte in its middle is
/// corrupt zstd data, after the events before it.
#[test]
fn cut_or_damaged_zstd_file() {
    let Some(path) = shared_data(
        "cherenkov/gamma_20deg_0deg_run102___cta-prod4-sst-1m_desert-2150m-Paranal-sst-1m.simtel.zst",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(&path).unwrap();
    check_cuts(
        &whole,
        "cut.simtel.zst",
        "zstd",
        &[0.25, 0.5, 0.75, 0.999],
        dir.path(),
    );
    let (all, _) = event_ids(&path);
    let mut bad = whole.clone();
    bad[whole.len() / 2] ^= 0x55;
    let p = dir.path().join("bad.simtel.zst");
    std::fs::write(&p, &bad).unwrap();
    let (ids, err) = event_ids(&p);
    let e = err.expect("an error");
    let text = e.to_string();
    assert_eq!(e.kind, caliper_core::ReadErrorKind::Corrupt, "{text}");
    assert!(
        text.contains("corrupt zstd data at or before compressed byte"),
        "{text}"
    );
    assert!(
        ids.len() < all.len() && ids[..] == all[..ids.len()],
        "{text}"
    );
    eprintln!("{} of {} events, then: {text}", ids.len(), all.len());
}

/// A damaged byte inside the compressed data is corrupt input, not a truncation or an I/O
/// failure, and the events before it are delivered. In the first deflate block header (its
/// block type bits: the decompressor refuses it at once), in the gzip trailer's CRC-32 (the
/// decompressor's error after the last event, at the end of the data), and in the middle of
/// the deflate data (garbage bytes, refused by the decompressor or, where they reach the
/// EventIO framing first, by the framing; gzip's CRC comes only at the end of a member).
#[test]
fn corrupt_compressed_byte_is_corrupt_input() {
    let dir = tempfile::tempdir().unwrap();
    let (toy, whole) = toy_gzip(dir.path());
    let (all, _) = event_ids(&toy);
    let raw_len = decompressed(&toy).len();
    let gzip = "corrupt gzip data at or before compressed byte";
    for (at, events, says) in [
        (10, Some(0), Some("byte 0")),
        (
            whole.len() - 6,
            Some(all.len()),
            Some(&*format!("byte {raw_len}")),
        ),
        (whole.len() / 2, None, None),
    ] {
        let mut bytes = whole.clone();
        bytes[at] ^= 0x55;
        let p = dir.path().join("bad.simtel.gz");
        std::fs::write(&p, &bytes).unwrap();
        let (ids, err) = event_ids(&p);
        let e = err.expect("an error");
        let text = e.to_string();
        assert_eq!(e.kind, caliper_core::ReadErrorKind::Corrupt, "{text}");
        assert_eq!(ids[..], all[..ids.len()], "{text}");
        if let (Some(n), Some(says)) = (events, says) {
            assert_eq!(ids.len(), n, "{text}");
            assert!(text.contains(gzip) && text.contains(says), "{text}");
        }
    }
}
