//! Frame streams: HDF5/NeXus stacks (one scan per file, dataset path configurable, read frame by
//! frame with `caliper_core::h5::H5Reader::read_rows_f32`) and Pilatus CBF sequences (consecutive
//! `.cbf` inputs, or a folder of them, form one scan; read with `caliper_core::cbf`).
//!
//! Frames are float32 (exact for Pilatus counts and 16-bit CMOS values; a float64 stack is
//! rounded to float32). Every problem names the file and the frame.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use caliper_core::error::{Position, ReadError};
use caliper_core::h5::H5Reader;
use caliper_core::pipeline::EventSource;

/// One frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Scan (group of inputs) number, 0-based.
    pub scan: u32,
    /// Frame number within its scan.
    pub in_scan: u64,
    /// The file it came from.
    pub file: Arc<PathBuf>,
    /// (rows, columns).
    pub shape: (usize, usize),
    /// Row-major values.
    pub data: Vec<f32>,
}

/// One scan of the input list.
#[derive(Debug, Clone, PartialEq)]
pub enum Scan {
    /// An HDF5/NeXus file with a frame stack.
    Hdf5(PathBuf),
    /// A sequence of CBF files, one frame each.
    Cbf(Vec<PathBuf>),
}

impl Scan {
    /// The first file of the scan (its name is the stream's file name used for output naming).
    pub fn first_file(&self) -> Option<&Path> {
        match self {
            Scan::Hdf5(p) => Some(p),
            Scan::Cbf(v) => v.first().map(PathBuf::as_path),
        }
    }
}

fn is_cbf(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("cbf"))
}

/// Group input paths into scans: each HDF5 file is a scan; consecutive CBF files, or the sorted
/// `.cbf` files of a folder, are one scan.
pub fn group_scans(inputs: &[PathBuf]) -> Result<Vec<Scan>, ReadError> {
    let mut scans: Vec<Scan> = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| ReadError::io(p, &e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| is_cbf(f))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(ReadError::unexpected(
                    p,
                    Position::default(),
                    "folder holds no .cbf files",
                ));
            }
            scans.push(Scan::Cbf(files));
        } else if is_cbf(p) {
            match scans.last_mut() {
                Some(Scan::Cbf(v)) => v.push(p.clone()),
                _ => scans.push(Scan::Cbf(vec![p.clone()])),
            }
        } else {
            scans.push(Scan::Hdf5(p.clone()));
        }
    }
    Ok(scans)
}

/// Number of frames of an HDF5 stack and the frame shape, checking the dataset is 2-D or 3-D.
pub fn hdf5_stack_info(path: &Path, dataset: &str) -> Result<(usize, (usize, usize)), ReadError> {
    let r = H5Reader::open(path).map_err(|e| open_error(path, &e))?;
    stack_info(&r, path, dataset).map(|(n, shape, _)| (n, shape))
}

/// [`hdf5_stack_info`] of an open file, and whether the dataset is 3-D (a stack, read frame by
/// frame) rather than one 2-D frame.
fn stack_info(
    r: &H5Reader,
    path: &Path,
    dataset: &str,
) -> Result<(usize, (usize, usize), bool), ReadError> {
    if !r.has_dataset(dataset) {
        return Err(ReadError::unexpected(
            path,
            Position::default(),
            format!(
                "no dataset `{dataset}` (set input.dataset to the frame stack, e.g. /entry/instrument/<det>/data)"
            ),
        ));
    }
    let shape = r
        .shape(dataset)
        .map_err(|e| e.read_error(path, Position::default()))?;
    match shape[..] {
        [n, rows, cols] => Ok((n, (rows, cols), true)),
        [rows, cols] => Ok((1, (rows, cols), false)),
        _ => Err(ReadError::unexpected(
            path,
            Position::default(),
            format!("dataset `{dataset}` has shape {shape:?}; expected (frames, rows, columns)"),
        )),
    }
}

/// A file that HDF5 cannot open: cut short (a truncation), or not an HDF5 file at all.
pub(crate) fn open_error(path: &Path, e: &caliper_core::h5::H5Error) -> ReadError {
    if e.is_truncated() {
        e.read_error(path, Position::default())
    } else {
        ReadError::unexpected(path, Position::default(), e.to_string())
    }
}

/// A lazy stream of the frames of all scans, in order.
pub struct FrameSource {
    scans: Vec<Scan>,
    dataset: String,
    expected: Option<(usize, usize)>,
    scan: usize,
    pos: usize,
    h5: Option<(H5Reader, usize, (usize, usize), bool)>,
    file: Arc<PathBuf>,
    frames_read: u64,
}

impl FrameSource {
    /// Frames of `scans`; HDF5 stacks are read from `dataset`. With `expected` set, a frame of
    /// another shape is an error naming the file and the frame.
    pub fn new(scans: Vec<Scan>, dataset: &str, expected: Option<(usize, usize)>) -> Self {
        Self {
            scans,
            dataset: dataset.into(),
            expected,
            scan: 0,
            pos: 0,
            h5: None,
            file: Arc::new(PathBuf::new()),
            frames_read: 0,
        }
    }

    fn check_shape(
        &self,
        file: &Path,
        frame: usize,
        shape: (usize, usize),
    ) -> Result<(), ReadError> {
        match self.expected {
            Some(e) if e != shape => Err(ReadError::unexpected(
                file,
                Position::event(frame as u64),
                format!(
                    "frame shape {}x{} differs from the expected {}x{} (detector geometry)",
                    shape.0, shape.1, e.0, e.1
                ),
            )),
            _ => Ok(()),
        }
    }

    fn next_frame(&mut self) -> Option<Result<Frame, ReadError>> {
        loop {
            let scan = self.scans.get(self.scan)?.clone();
            match scan {
                Scan::Cbf(files) => {
                    let Some(path) = files.get(self.pos) else {
                        self.scan += 1;
                        self.pos = 0;
                        continue;
                    };
                    let frame_no = self.pos;
                    self.pos += 1;
                    let img = match caliper_core::cbf::CbfImage::read(path) {
                        Ok(i) => i,
                        Err(mut e) => {
                            e.position = e.position.with_event(frame_no as u64);
                            return Some(Err(e));
                        }
                    };
                    let shape = (img.height, img.width);
                    if let Err(e) = self.check_shape(path, frame_no, shape) {
                        return Some(Err(e));
                    }
                    let data: Vec<f32> = img.data.to_f64().into_iter().map(|v| v as f32).collect();
                    if Arc::as_ref(&self.file) != path {
                        self.file = Arc::new(path.clone());
                    }
                    return Some(Ok(Frame {
                        scan: self.scan as u32,
                        in_scan: frame_no as u64,
                        file: self.file.clone(),
                        shape,
                        data,
                    }));
                }
                Scan::Hdf5(path) => {
                    if self.h5.is_none() {
                        // opened once: its shape, then its frames
                        let reader = match H5Reader::open(&path) {
                            Ok(r) => r,
                            Err(e) => return Some(Err(open_error(&path, &e))),
                        };
                        let (n, shape, three_d) = match stack_info(&reader, &path, &self.dataset) {
                            Ok(x) => x,
                            Err(e) => return Some(Err(e)),
                        };
                        self.h5 = Some((reader, n, shape, three_d));
                        self.file = Arc::new(path.clone());
                    }
                    let Some((reader, n, shape, three_d)) = &self.h5 else {
                        continue;
                    };
                    if self.pos >= *n {
                        self.h5 = None;
                        self.scan += 1;
                        self.pos = 0;
                        continue;
                    }
                    let frame_no = self.pos;
                    self.pos += 1;
                    if let Err(e) = self.check_shape(&path, frame_no, *shape) {
                        return Some(Err(e));
                    }
                    let data = if *three_d {
                        reader.read_rows_f32(&self.dataset, frame_no, 1)
                    } else {
                        reader.read_f32(&self.dataset)
                    };
                    let data = match data {
                        Ok(d) if d.len() == shape.0 * shape.1 => d,
                        Ok(d) => {
                            return Some(Err(ReadError::truncated(
                                &path,
                                Position::event(frame_no as u64),
                                format!(
                                    "frame has {} values, expected {}",
                                    d.len(),
                                    shape.0 * shape.1
                                ),
                            )));
                        }
                        // a stack cut short is a truncation (the frames before it are kept with
                        // --allow-truncated), anything else corrupt input
                        Err(e) => {
                            return Some(
                                Err(e.read_error(&path, Position::event(frame_no as u64))),
                            );
                        }
                    };
                    return Some(Ok(Frame {
                        scan: self.scan as u32,
                        in_scan: frame_no as u64,
                        file: self.file.clone(),
                        shape: *shape,
                        data,
                    }));
                }
            }
        }
    }
}

impl EventSource for FrameSource {
    type Event = Frame;
    fn next_event(&mut self) -> Option<Result<Frame, ReadError>> {
        let r = self.next_frame();
        if matches!(r, Some(Ok(_))) {
            self.frames_read += 1;
        }
        r
    }
}

/// Count the frames of every scan (HDF5 stacks by their shape, CBF sequences by their files).
pub fn frames_per_scan(scans: &[Scan], dataset: &str) -> Result<Vec<usize>, ReadError> {
    scans
        .iter()
        .map(|s| match s {
            Scan::Cbf(v) => Ok(v.len()),
            Scan::Hdf5(p) => hdf5_stack_info(p, dataset).map(|(n, _)| n),
        })
        .collect()
}
