//! Frame stacks of a run: HDF5 datasets of shape (N, 32, 185, 388) or (N, 4, 8, 185, 388)
//! (any shape whose trailing axes hold the detector's pixels), and CBF images (files or folders
//! of `*.cbf`), read frame by frame.

use std::path::{Path, PathBuf};

use caliper_core::cbf::{CbfData, CbfImage};
use caliper_core::error::{Position, ReadError};
use caliper_core::h5::{ElementType, H5Error, H5Reader};
use caliper_core::pipeline::EventSource;

/// One frame's pixel values in the detector's raw order (sensor, row, column).
#[derive(Debug, Clone, PartialEq)]
pub enum FrameData {
    /// Raw integer ADU that fit in 16 bits (CSPad's raw int16; also int8/uint8 stacks): half
    /// the memory of [`FrameData::I32`] in the chunks a pass holds and reads.
    I16(Vec<i16>),
    /// Raw integer ADU (CBF images, 32-bit and unsigned 16-bit stacks).
    I32(Vec<i32>),
    /// Float (calibrated) values.
    F32(Vec<f32>),
    /// Double values.
    F64(Vec<f64>),
}

impl FrameData {
    /// Number of pixels.
    pub fn len(&self) -> usize {
        match self {
            FrameData::I16(v) => v.len(),
            FrameData::I32(v) => v.len(),
            FrameData::F32(v) => v.len(),
            FrameData::F64(v) => v.len(),
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True for integer frames.
    pub fn is_integer(&self) -> bool {
        matches!(self, FrameData::I16(_) | FrameData::I32(_))
    }
}

/// A frame with its index in the run.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The input file.
    pub file: PathBuf,
    /// Frame number within the file.
    pub index_in_file: u64,
    /// The values.
    pub data: FrameData,
}

/// How an HDF5 stack's values are read.
#[derive(Debug, Clone, Copy)]
enum StackKind {
    /// Integers of at most 16 bits that fit in i16 (read as [`FrameData::I16`]).
    Narrow,
    /// Other integers up to 32 bits ([`FrameData::I32`]).
    Int,
    /// 32-bit floats.
    Float,
    /// Everything else numeric, as f64.
    Double,
}

/// One input of a run.
#[derive(Debug, Clone)]
enum Input {
    H5 {
        path: PathBuf,
        frames: usize,
        /// How the stack's values are read.
        kind: StackKind,
    },
    Cbf(PathBuf),
}

/// Reads the frames of a run's inputs in order.
pub struct FrameSource {
    inputs: Vec<Input>,
    dataset: String,
    n_pixels: usize,
    current: usize,
    next_frame: usize,
    batch: std::collections::VecDeque<Frame>,
    reader: Option<H5Reader>,
    /// Frames read per batch from an HDF5 stack: 0 for two per thread of the run's pool, 1
    /// after a failed batch (to name the first bad frame).
    batch_frames: usize,
    /// Frames per input (known for HDF5 before reading; 1 for each CBF).
    pub frames_per_input: Vec<usize>,
}

/// Expand folders into their `*.cbf` files (sorted); keep files as they are.
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, ReadError> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| ReadError::io(p, &e))?;
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x.eq_ignore_ascii_case("cbf")))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(ReadError::unexpected(
                    p,
                    Position::default(),
                    "folder holds no *.cbf images",
                ));
            }
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn is_cbf(p: &Path) -> bool {
    p.extension().is_some_and(|x| x.eq_ignore_ascii_case("cbf"))
}

impl FrameSource {
    /// Open the inputs (files or folders): HDF5 files are checked for the dataset and its shape
    /// up front, CBF files when read. `n_pixels` is the detector's pixel count per frame.
    pub fn open(inputs: &[PathBuf], dataset: &str, n_pixels: usize) -> Result<Self, ReadError> {
        let files = expand_inputs(inputs)?;
        let mut list = Vec::new();
        let mut frames_per_input = Vec::new();
        for f in files {
            if is_cbf(&f) {
                list.push(Input::Cbf(f));
                frames_per_input.push(1);
                continue;
            }
            let r = H5Reader::open(&f).map_err(|e| e.read_error(&f, Position::default()))?;
            if !r.has_dataset(dataset) {
                return Err(ReadError::unexpected(
                    &f,
                    Position::default(),
                    format!("no dataset '{dataset}' (set input.dataset to the frame stack's path)"),
                ));
            }
            let shape = r
                .shape(dataset)
                .map_err(|e| e.read_error(&f, Position::default()))?;
            let per_frame: usize = shape.iter().skip(1).product();
            if shape.len() < 2 || per_frame != n_pixels {
                return Err(ReadError::unexpected(
                    &f,
                    Position::default(),
                    format!(
                        "dataset '{dataset}' has shape {shape:?}; expected {n_pixels} pixels per frame, as the geometry says (CSPad: (N, 32, 185, 388) or (N, 4, 8, 185, 388))"
                    ),
                ));
            }
            let et = r
                .element_type(dataset)
                .map_err(|e| e.read_error(&f, Position::default()))?;
            let (integer, double) = match et {
                ElementType::Int(n) | ElementType::UInt(n) if n <= 2 => (true, false),
                ElementType::Int(4) => (true, false),
                ElementType::Float(4) => (false, false),
                ElementType::Float(_) | ElementType::Int(_) | ElementType::UInt(_) => (false, true),
                ElementType::Other => {
                    return Err(ReadError::unexpected(
                        &f,
                        Position::default(),
                        format!("dataset '{dataset}' is not numeric"),
                    ));
                }
            };
            let kind = if matches!(et, ElementType::Int(1 | 2) | ElementType::UInt(1)) {
                StackKind::Narrow
            } else if integer {
                StackKind::Int
            } else if double {
                StackKind::Double
            } else {
                StackKind::Float
            };
            frames_per_input.push(shape[0]);
            list.push(Input::H5 {
                path: f,
                frames: shape[0],
                kind,
            });
        }
        Ok(Self {
            inputs: list,
            dataset: dataset.to_string(),
            n_pixels,
            current: 0,
            next_frame: 0,
            batch: Default::default(),
            reader: None,
            batch_frames: 0,
            frames_per_input,
        })
    }

    /// Total frames over all inputs.
    pub fn total_frames(&self) -> usize {
        self.frames_per_input.iter().sum()
    }

    fn fill(&mut self) -> Option<Result<(), ReadError>> {
        while self.batch.is_empty() {
            let input = self.inputs.get(self.current)?.clone();
            match input {
                Input::Cbf(path) => {
                    self.current += 1;
                    let img = match CbfImage::read(&path) {
                        Ok(i) => i,
                        Err(e) => return Some(Err(e)),
                    };
                    if img.data.len() != self.n_pixels {
                        return Some(Err(ReadError::unexpected(
                            &path,
                            Position::event(0),
                            format!(
                                "image is {} x {} = {} pixels; expected {} (the geometry's sensors stacked, CSPad: 388 x 5920)",
                                img.width,
                                img.height,
                                img.data.len(),
                                self.n_pixels
                            ),
                        )));
                    }
                    let data = match img.data {
                        CbfData::I32(v) => FrameData::I32(v),
                        CbfData::I64(v) => {
                            FrameData::F64(v.into_iter().map(|x| x as f64).collect())
                        }
                        CbfData::F32(v) => FrameData::F32(v),
                        CbfData::F64(v) => FrameData::F64(v),
                    };
                    self.batch.push_back(Frame {
                        file: path,
                        index_in_file: 0,
                        data,
                    });
                }
                Input::H5 { path, frames, kind } => {
                    if self.next_frame >= frames {
                        self.current += 1;
                        self.next_frame = 0;
                        self.reader = None;
                        continue;
                    }
                    if self.reader.is_none() {
                        match H5Reader::open(&path) {
                            Ok(r) => self.reader = Some(r),
                            Err(e) => return Some(Err(e.read_error(&path, Position::default()))),
                        }
                    }
                    let r = self.reader.as_ref()?;
                    let start = self.next_frame;
                    // (0: two frames per thread of the pool the run is in; two, so that a
                    // thread done early has a second frame to read while the other finishes,
                    // a choice not measured against other batch sizes)
                    let batch = match self.batch_frames {
                        0 => 2 * rayon::current_num_threads(),
                        b => b,
                    };
                    let count = batch.min(frames - start);
                    let (dataset, n) = (&self.dataset, self.n_pixels);
                    let read = if count > 1 {
                        // the frames of a batch read in parallel, one per task, in order: each
                        // thread then inflates a compressed frame, or copies a plain one from
                        // the page cache, instead of the one thread that pulls the frames
                        use rayon::prelude::*;
                        (start..start + count)
                            .into_par_iter()
                            .map(|k| read_block(r, dataset, kind, k, 1, n))
                            .collect::<Result<Vec<_>, _>>()
                            .map(|blocks| blocks.into_iter().flatten().collect())
                    } else {
                        read_block(r, dataset, kind, start, count, n)
                    };
                    match read {
                        Ok(list) => {
                            for (k, data) in list.into_iter().enumerate() {
                                self.batch.push_back(Frame {
                                    file: path.clone(),
                                    index_in_file: (start + k) as u64,
                                    data,
                                });
                            }
                        }
                        // A failed multi-frame read is retried frame by frame, so that the frames
                        // before a truncation are kept and the error names the first bad frame.
                        Err(_) if count > 1 => {
                            self.batch_frames = 1;
                            continue;
                        }
                        // a file cut short is a truncation (the frames before it are kept
                        // with --allow-truncated), anything else corrupt input
                        Err(e) => {
                            let mut e = e.read_error(&path, Position::event(start as u64));
                            e.message =
                                format!("cannot read frame {start} of {frames}: {}", e.message);
                            return Some(Err(e));
                        }
                    }
                    self.next_frame += count;
                }
            }
        }
        Some(Ok(()))
    }
}

impl EventSource for FrameSource {
    type Event = Frame;
    fn next_event(&mut self) -> Option<Result<Frame, ReadError>> {
        match self.fill()? {
            Ok(()) => self.batch.pop_front().map(Ok),
            Err(e) => {
                // Stop after an error: skip the rest of this input.
                self.current += 1;
                self.next_frame = 0;
                self.reader = None;
                self.inputs.truncate(self.current);
                Some(Err(e))
            }
        }
    }
}

/// Read frames `start..start + count` of an HDF5 stack and split them into frames.
fn read_block(
    r: &H5Reader,
    dataset: &str,
    kind: StackKind,
    start: usize,
    count: usize,
    n: usize,
) -> Result<Vec<FrameData>, H5Error> {
    let check = |len: usize| {
        if len == count * n {
            Ok(())
        } else {
            Err(H5Error::Dataset {
                file: r.path().display().to_string(),
                dataset: dataset.into(),
                message: format!(
                    "frames {start}..{} hold {len} values, expected {}",
                    start + count,
                    count * n
                ),
            })
        }
    };
    if let StackKind::Narrow = kind {
        // int8/uint8/int16: the file's bytes are decoded once, straight into each frame's
        // i16 vector (no i32 intermediate; every such value fits in i16).
        let rows = r.read_rows_i16_split(dataset, start, count, n)?;
        check(rows.len() * n)?;
        Ok(rows.into_iter().map(FrameData::I16).collect())
    } else if let StackKind::Int = kind {
        let v = r.read_rows_i32(dataset, start, count)?;
        check(v.len())?;
        Ok(split(v, n, count, FrameData::I32))
    } else if let StackKind::Double = kind {
        let v = r.read_rows_f64(dataset, start, count)?;
        check(v.len())?;
        Ok(split(v, n, count, FrameData::F64))
    } else {
        let v = r.read_rows_f32(dataset, start, count)?;
        check(v.len())?;
        Ok(split(v, n, count, FrameData::F32))
    }
}

/// One frame's vector is moved as it is; several are split (one copy each).
fn split<T: Clone>(
    v: Vec<T>,
    n: usize,
    count: usize,
    wrap: fn(Vec<T>) -> FrameData,
) -> Vec<FrameData> {
    if count == 1 {
        vec![wrap(v)]
    } else {
        v.chunks_exact(n).map(|c| wrap(c.to_vec())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caliper_core::h5::H5Writer;

    /// The frames a source yields for `/data/cspad` of `path`.
    fn frames(path: &Path, n: usize) -> Vec<Frame> {
        let mut src = FrameSource::open(&[path.to_path_buf()], "/data/cspad", n).unwrap();
        std::iter::from_fn(|| src.next_event())
            .map(|f| f.unwrap())
            .collect()
    }

    #[test]
    fn narrow_stacks_read_as_the_i32_path_gives_them() {
        // Bitwise: each int16 / int8 / uint8 frame must equal hdf5-pure's i32 decode of the
        // same rows, narrowed (exact for these types), for a small contiguous stack and a large
        // chunked + shuffle + deflate one (H5Writer compresses above 64 KiB).
        let dir = tempfile::tempdir().unwrap();
        for (frames_n, n) in [(3usize, 2 * 5 * 7), (4, 2 * 185 * 97)] {
            let vals: Vec<i16> = (0..frames_n * n)
                .map(|k| ((k as i64 * 7919 + 13) % 65536 - 32768) as i16)
                .collect();
            let shape = [frames_n, 2, n / 2];
            let p16 = dir.path().join(format!("i16-{n}.h5"));
            let mut w = H5Writer::new();
            w.write_array("/data/cspad", &shape, &vals).unwrap();
            w.write(&p16).unwrap();
            let p8 = dir.path().join(format!("u8-{n}.h5"));
            let mut w = H5Writer::new();
            let v8: Vec<u8> = vals.iter().map(|&x| x as u8).collect();
            w.write_array("/data/cspad", &shape, &v8).unwrap();
            w.write(&p8).unwrap();
            let pi8 = dir.path().join(format!("i8-{n}.h5"));
            let mut w = H5Writer::new();
            let vi8: Vec<i8> = vals.iter().map(|&x| x as i8).collect();
            w.write_array("/data/cspad", &shape, &vi8).unwrap();
            w.write(&pi8).unwrap();
            for p in [&p16, &p8, &pi8] {
                let r = H5Reader::open(p).unwrap();
                let got = frames(p, n);
                assert_eq!(got.len(), frames_n);
                for (k, f) in got.iter().enumerate() {
                    let old: Vec<i16> = r
                        .read_rows_i32("/data/cspad", k, 1)
                        .unwrap()
                        .into_iter()
                        .map(|x| x as i16)
                        .collect();
                    assert_eq!(f.index_in_file, k as u64);
                    assert_eq!(f.data, FrameData::I16(old), "{} frame {k}", p.display());
                }
            }
            let FrameData::I16(first) = &frames(&p16, n)[1].data else {
                panic!("int16 stack not read as I16");
            };
            assert_eq!(first[..], vals[n..2 * n]);
        }
    }
}
