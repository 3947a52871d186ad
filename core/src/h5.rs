//! HDF5 output and input, behind one module (the pure-Rust `hdf5-pure` crate, pinned exactly).
//!
//! [`H5Writer`] collects groups, n-d arrays, tables (compound datasets with named columns, as
//! PyTables and h5py write them) and attributes under slash paths, then writes one file; arrays
//! and tables above a small size are chunked and deflate-compressed. [`H5Reader`] opens a file
//! and reads a dataset whole or frame by frame along its first axis, which is how plugins stream
//! detector frame stacks.
//!
//! ```
//! use caliper_core::h5::{H5Writer, H5Reader, Table, AttrValue};
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("out.h5");
//! let mut w = H5Writer::new();
//! let mut t = Table::new();
//! t.push_f64("hillas_intensity", vec![10.0, 20.0]);
//! t.push_i64("event_id", vec![1, 2]);
//! w.write_table("/dl1/event/telescope/parameters/tel_001", &t).unwrap();
//! w.write_array("/images/mean", &[2, 3], &[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
//! w.set_attr("/images/mean", "unit", AttrValue::String("ADU".into())).unwrap();
//! w.write(&path).unwrap();
//!
//! let r = H5Reader::open(&path).unwrap();
//! assert_eq!(r.shape("/images/mean").unwrap(), vec![2, 3]);
//! assert_eq!(r.read_f64("/images/mean").unwrap()[4], 5.0);
//! assert_eq!(r.read_column_f64("/dl1/event/telescope/parameters/tel_001", "hillas_intensity").unwrap(), vec![10.0, 20.0]);
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use hdf5_pure::AttrValue;
use hdf5_pure::{CompoundTypeBuilder, Datatype, FileBuilder, GroupBuilder};

/// Arrays larger than this many bytes are chunked and deflate-compressed.
const COMPRESS_ABOVE_BYTES: usize = 64 * 1024;
/// Target chunk size in bytes for compressed datasets (h5py's guidance: 10 KiB - 1 MiB).
const CHUNK_TARGET_BYTES: usize = 256 * 1024;
/// Deflate level: 4 balances size and speed (h5py's default for gzip is 4).
const DEFLATE_LEVEL: u32 = 4;

/// HDF5 errors, naming the file or dataset path.
#[derive(Debug, thiserror::Error)]
pub enum H5Error {
    /// The library failed on a file.
    #[error("{path}: HDF5: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A dataset problem (missing, wrong type or shape).
    #[error("{file}: dataset {dataset}: {message}")]
    Dataset {
        /// The file.
        file: String,
        /// The dataset path inside the file.
        dataset: String,
        /// What is wrong.
        message: String,
    },
    /// A write request that cannot be honoured (shape and data disagree, a path used twice).
    #[error("HDF5 output {path}: {message}")]
    Invalid {
        /// The dataset or group path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file ends before what was being read: it is shorter than the end of file its
    /// superblock records (an acquisition or copy cut short), or too short to hold its own
    /// metadata. What lies before the cut may still read (the frames of a stack stored
    /// contiguously, as h5py and psana write them).
    #[error("{path}: HDF5 file cut short: {message}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was being read, and how far the file goes.
        message: String,
    },
}

impl H5Error {
    /// True when the file was cut short ([`H5Error::Truncated`]), as opposed to corrupt,
    /// unexpected or unreadable.
    pub fn is_truncated(&self) -> bool {
        matches!(self, Self::Truncated { .. })
    }

    /// This error as an input problem of `file` at `position` (a frame, say): a truncation
    /// for [`H5Error::Truncated`] (so that `--allow-truncated` keeps what came before), an
    /// I/O failure for [`H5Error::Io`], else corrupt input. The message leaves out the file,
    /// which the [`ReadError`](crate::ReadError) names.
    pub fn read_error(&self, file: &Path, position: crate::Position) -> crate::ReadError {
        use crate::ReadError;
        match self {
            Self::Truncated { message, .. } => {
                ReadError::truncated(file, position, format!("HDF5 file cut short: {message}"))
            }
            Self::Io { source, .. } => {
                ReadError::new(file, position, crate::ReadErrorKind::Io, source.to_string())
            }
            Self::File { message, .. } => {
                ReadError::corrupt(file, position, format!("HDF5: {message}"))
            }
            Self::Dataset {
                dataset, message, ..
            } => ReadError::corrupt(file, position, format!("dataset {dataset}: {message}")),
            Self::Invalid { path, message } => {
                ReadError::corrupt(file, position, format!("{path}: {message}"))
            }
        }
    }
}

/// hdf5-pure ran out of bytes.
fn out_of_bytes(e: &hdf5_pure::Error) -> bool {
    match e {
        hdf5_pure::Error::Format(hdf5_pure::FormatError::UnexpectedEof { .. }) => true,
        hdf5_pure::Error::Io(io) => io.kind() == std::io::ErrorKind::UnexpectedEof,
        _ => false,
    }
}

/// Element types an n-d array may hold.
pub trait H5Scalar: Copy + Send + Sync + 'static {
    /// The HDF5 datatype.
    fn datatype() -> Datatype;
    /// Append the little-endian bytes of `values` to `out`.
    fn extend_le(values: &[Self], out: &mut Vec<u8>);
}

macro_rules! scalar {
    ($t:ty, $make:ident) => {
        impl H5Scalar for $t {
            fn datatype() -> Datatype {
                hdf5_pure::$make()
            }
            fn extend_le(values: &[Self], out: &mut Vec<u8>) {
                out.reserve(values.len() * std::mem::size_of::<$t>());
                for v in values {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
    };
}
scalar!(f64, make_f64_type);
scalar!(f32, make_f32_type);
scalar!(i8, make_i8_type);
scalar!(i16, make_i16_type);
scalar!(i32, make_i32_type);
scalar!(i64, make_i64_type);
scalar!(u8, make_u8_type);
scalar!(u16, make_u16_type);
scalar!(u32, make_u32_type);
scalar!(u64, make_u64_type);

/// One column of a [`Table`].
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// 64-bit floats.
    F64(Vec<f64>),
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit signed integers.
    I64(Vec<i64>),
    /// 32-bit signed integers.
    I32(Vec<i32>),
    /// 16-bit signed integers.
    I16(Vec<i16>),
    /// 64-bit unsigned integers.
    U64(Vec<u64>),
    /// 32-bit unsigned integers.
    U32(Vec<u32>),
    /// 16-bit unsigned integers.
    U16(Vec<u16>),
    /// Booleans, stored as u8 0/1 (HDF5 has no boolean class; PyTables stores bool as u8 too).
    Bool(Vec<bool>),
    /// Fixed-length strings of `width` bytes, null-padded (numpy's `S<width>`, PyTables'
    /// `StringCol`): h5py reads them as `bytes`. A value longer than `width` is an error when the
    /// table is written.
    Str {
        /// Bytes per value.
        width: usize,
        /// One value per row.
        values: Vec<String>,
    },
    /// A fixed-length array per row (an HDF5 array member: numpy's `(f8, (len,))`), as ctapipe's
    /// per-telescope flags. `data` is a flat scalar column of `rows x len` values, row-major.
    Array {
        /// Elements per row.
        len: usize,
        /// The elements (a scalar column type).
        data: Box<ColumnData>,
    },
}

impl ColumnData {
    /// A fixed-length string column whose width is the longest value (at least 1 byte).
    pub fn strings(values: Vec<String>) -> Self {
        let width = values.iter().map(String::len).max().unwrap_or(0).max(1);
        ColumnData::Str { width, values }
    }
    /// Number of elements (for an array column: of scalar elements, not rows).
    fn elements(&self) -> usize {
        match self {
            ColumnData::F64(v) => v.len(),
            ColumnData::F32(v) => v.len(),
            ColumnData::I64(v) => v.len(),
            ColumnData::I32(v) => v.len(),
            ColumnData::I16(v) => v.len(),
            ColumnData::U64(v) => v.len(),
            ColumnData::U32(v) => v.len(),
            ColumnData::U16(v) => v.len(),
            ColumnData::Bool(v) => v.len(),
            ColumnData::Str { values, .. } => values.len(),
            ColumnData::Array { data, .. } => data.elements(),
        }
    }
    /// Number of rows.
    fn len(&self) -> usize {
        match self {
            ColumnData::Array { len, data } => data.elements() / (*len).max(1),
            other => other.elements(),
        }
    }
    fn width(&self) -> usize {
        match self {
            ColumnData::F64(_) | ColumnData::I64(_) | ColumnData::U64(_) => 8,
            ColumnData::F32(_) | ColumnData::I32(_) | ColumnData::U32(_) => 4,
            ColumnData::I16(_) | ColumnData::U16(_) => 2,
            ColumnData::Bool(_) => 1,
            ColumnData::Str { width, .. } => *width,
            ColumnData::Array { len, data } => len * data.width(),
        }
    }
    fn datatype(&self) -> Datatype {
        match self {
            ColumnData::F64(_) => hdf5_pure::make_f64_type(),
            ColumnData::F32(_) => hdf5_pure::make_f32_type(),
            ColumnData::I64(_) => hdf5_pure::make_i64_type(),
            ColumnData::I32(_) => hdf5_pure::make_i32_type(),
            ColumnData::I16(_) => hdf5_pure::make_i16_type(),
            ColumnData::U64(_) => hdf5_pure::make_u64_type(),
            ColumnData::U32(_) => hdf5_pure::make_u32_type(),
            ColumnData::U16(_) => hdf5_pure::make_u16_type(),
            ColumnData::Bool(_) => hdf5_pure::make_u8_type(),
            ColumnData::Str { width, values } => Datatype::String {
                size: *width as u32,
                padding: hdf5_pure::StringPadding::NullPad,
                charset: if values.iter().all(|v| v.is_ascii()) {
                    hdf5_pure::CharacterSet::Ascii
                } else {
                    hdf5_pure::CharacterSet::Utf8
                },
            },
            ColumnData::Array { len, data } => Datatype::Array {
                base_type: Box::new(data.datatype()),
                dimensions: vec![*len as u32],
            },
        }
    }
    /// Why this column cannot be written, if it cannot.
    fn check(&self) -> Option<String> {
        match self {
            ColumnData::Str { width, values } => {
                values.iter().position(|v| v.len() > *width).map(|r| {
                    format!(
                        "row {r}: string of {} bytes in a {width}-byte column",
                        values[r].len()
                    )
                })
            }
            ColumnData::Array { len, data } => {
                if *len == 0 {
                    Some("array column of length 0".into())
                } else if matches!(**data, ColumnData::Array { .. } | ColumnData::Str { .. }) {
                    Some("array columns hold numbers or booleans".into())
                } else if data.elements() % len != 0 {
                    Some(format!(
                        "array column has {} elements, not a multiple of its length {len}",
                        data.elements()
                    ))
                } else {
                    None
                }
            }
            _ => None,
        }
    }
    /// Append the element at `index` (for scalar columns, the row).
    fn write_row(&self, row: usize, out: &mut Vec<u8>) {
        match self {
            ColumnData::F64(v) => out.extend_from_slice(&v[row].to_le_bytes()),
            ColumnData::F32(v) => out.extend_from_slice(&v[row].to_le_bytes()),
            ColumnData::I64(v) => out.extend_from_slice(&v[row].to_le_bytes()),
            ColumnData::I32(v) => out.extend_from_slice(&v[row].to_le_bytes()),
            ColumnData::I16(v) => out.extend_from_slice(&v[row].to_le_bytes()),
            ColumnData::U64(v) => out.extend_from_slice(&v[row].to_le_bytes()),
            ColumnData::U32(v) => out.extend_from_slice(&v[row].to_le_bytes()),
            ColumnData::U16(v) => out.extend_from_slice(&v[row].to_le_bytes()),
            ColumnData::Bool(v) => out.push(u8::from(v[row])),
            ColumnData::Str { width, values } => {
                let b = values[row].as_bytes();
                out.extend_from_slice(b);
                out.resize(out.len() + width - b.len(), 0);
            }
            ColumnData::Array { len, data } => {
                for k in 0..*len {
                    data.write_row(row * len + k, out);
                }
            }
        }
    }
}

/// A table: named columns of equal length, written as one compound dataset (a structured array
/// in h5py, a Table in PyTables), with optional per-column units and descriptions as attributes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    columns: Vec<(String, ColumnData)>,
    units: BTreeMap<String, String>,
    descriptions: BTreeMap<String, String>,
}

impl Table {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }
    /// Add a column of any type.
    pub fn push(&mut self, name: &str, data: ColumnData) -> &mut Self {
        self.columns.push((name.into(), data));
        self
    }
    /// Add an f64 column.
    pub fn push_f64(&mut self, name: &str, data: Vec<f64>) -> &mut Self {
        self.push(name, ColumnData::F64(data))
    }
    /// Add an f32 column.
    pub fn push_f32(&mut self, name: &str, data: Vec<f32>) -> &mut Self {
        self.push(name, ColumnData::F32(data))
    }
    /// Add an i64 column.
    pub fn push_i64(&mut self, name: &str, data: Vec<i64>) -> &mut Self {
        self.push(name, ColumnData::I64(data))
    }
    /// Add an i32 column.
    pub fn push_i32(&mut self, name: &str, data: Vec<i32>) -> &mut Self {
        self.push(name, ColumnData::I32(data))
    }
    /// Add a u64 column.
    pub fn push_u64(&mut self, name: &str, data: Vec<u64>) -> &mut Self {
        self.push(name, ColumnData::U64(data))
    }
    /// Add a u32 column.
    pub fn push_u32(&mut self, name: &str, data: Vec<u32>) -> &mut Self {
        self.push(name, ColumnData::U32(data))
    }
    /// Add a u16 column.
    pub fn push_u16(&mut self, name: &str, data: Vec<u16>) -> &mut Self {
        self.push(name, ColumnData::U16(data))
    }
    /// Add a boolean column.
    pub fn push_bool(&mut self, name: &str, data: Vec<bool>) -> &mut Self {
        self.push(name, ColumnData::Bool(data))
    }
    /// Add a fixed-length string column (width: the longest value).
    pub fn push_strings(&mut self, name: &str, data: Vec<String>) -> &mut Self {
        self.push(name, ColumnData::strings(data))
    }
    /// Add an array column: `len` values per row, `data` row-major.
    pub fn push_array(&mut self, name: &str, len: usize, data: ColumnData) -> &mut Self {
        self.push(
            name,
            ColumnData::Array {
                len,
                data: Box::new(data),
            },
        )
    }
    /// Record a column's unit (written as attribute `<column>_UNIT`, as ctapipe does).
    pub fn set_unit(&mut self, column: &str, unit: &str) -> &mut Self {
        self.units.insert(column.into(), unit.into());
        self
    }
    /// Record a column's description (attribute `<column>_DESC`).
    pub fn set_description(&mut self, column: &str, text: &str) -> &mut Self {
        self.descriptions.insert(column.into(), text.into());
        self
    }
    /// Number of rows (0 for a table without columns).
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |(_, c)| c.len())
    }
    /// Column names in order.
    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|(n, _)| n.as_str()).collect()
    }
    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&ColumnData> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }
}

/// What a dataset node holds before the file is written.
#[derive(Debug)]
struct DatasetSpec {
    datatype: Datatype,
    bytes: Vec<u8>,
    shape: Vec<u64>,
    element_size: usize,
    attrs: Vec<(String, AttrValue)>,
    /// Stored contiguously and uncompressed whatever its size.
    contiguous: bool,
}

#[derive(Debug, Default)]
struct GroupNode {
    groups: BTreeMap<String, GroupNode>,
    datasets: BTreeMap<String, DatasetSpec>,
    attrs: Vec<(String, AttrValue)>,
}

/// Collects an HDF5 file's content under slash paths and writes it in one go.
#[derive(Debug, Default)]
pub struct H5Writer {
    root: GroupNode,
}

fn split_path(path: &str) -> Result<Vec<&str>, H5Error> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segs.iter().any(|s| *s == "." || *s == "..") {
        return Err(H5Error::Invalid {
            path: path.into(),
            message: "'.' and '..' are not allowed".into(),
        });
    }
    Ok(segs)
}

impl H5Writer {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    fn group_mut(&mut self, segs: &[&str], full: &str) -> Result<&mut GroupNode, H5Error> {
        let mut node = &mut self.root;
        for s in segs {
            if node.datasets.contains_key(*s) {
                return Err(H5Error::Invalid {
                    path: full.into(),
                    message: format!("'{s}' is a dataset, not a group"),
                });
            }
            node = node.groups.entry((*s).to_string()).or_default();
        }
        Ok(node)
    }

    /// Create a group (and its parents); harmless if it exists.
    pub fn create_group(&mut self, path: &str) -> Result<(), H5Error> {
        let segs = split_path(path)?;
        self.group_mut(&segs, path).map(|_| ())
    }

    fn insert_dataset(&mut self, path: &str, spec: DatasetSpec) -> Result<(), H5Error> {
        let segs = split_path(path)?;
        let Some((name, parents)) = segs.split_last() else {
            return Err(H5Error::Invalid {
                path: path.into(),
                message: "empty dataset path".into(),
            });
        };
        let group = self.group_mut(parents, path)?;
        if group.groups.contains_key(*name) || group.datasets.contains_key(*name) {
            return Err(H5Error::Invalid {
                path: path.into(),
                message: "path written twice".into(),
            });
        }
        group.datasets.insert((*name).to_string(), spec);
        Ok(())
    }

    /// Write an n-d array (row-major, `shape` product equal to `data.len()`); above 64 KiB it is
    /// chunked, shuffled and deflate-compressed.
    pub fn write_array<T: H5Scalar>(
        &mut self,
        path: &str,
        shape: &[usize],
        data: &[T],
    ) -> Result<(), H5Error> {
        self.array(path, shape, data, false)
    }

    /// Write an n-d array stored contiguously and uncompressed whatever its size: the layout
    /// in which h5py (by default) and psana write frame stacks, so that a file cut short still
    /// holds the frames before the cut. For simulated inputs that stand for such files.
    pub fn write_array_contiguous<T: H5Scalar>(
        &mut self,
        path: &str,
        shape: &[usize],
        data: &[T],
    ) -> Result<(), H5Error> {
        self.array(path, shape, data, true)
    }

    fn array<T: H5Scalar>(
        &mut self,
        path: &str,
        shape: &[usize],
        data: &[T],
        contiguous: bool,
    ) -> Result<(), H5Error> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(H5Error::Invalid {
                path: path.into(),
                message: format!(
                    "shape {shape:?} holds {n} elements but {} were given",
                    data.len()
                ),
            });
        }
        let mut bytes = Vec::new();
        T::extend_le(data, &mut bytes);
        self.insert_dataset(
            path,
            DatasetSpec {
                datatype: T::datatype(),
                bytes,
                shape: shape.iter().map(|&s| s as u64).collect(),
                element_size: std::mem::size_of::<T>(),
                attrs: Vec::new(),
                contiguous,
            },
        )
    }

    /// Write a table as a compound dataset of one row per element.
    pub fn write_table(&mut self, path: &str, table: &Table) -> Result<(), H5Error> {
        let rows = table.rows();
        if let Some((name, c)) = table.columns.iter().find(|(_, c)| c.len() != rows) {
            return Err(H5Error::Invalid {
                path: path.into(),
                message: format!(
                    "column '{name}' has {} rows, the first column {rows}",
                    c.len()
                ),
            });
        }
        if table.columns.is_empty() {
            return Err(H5Error::Invalid {
                path: path.into(),
                message: "a table needs at least one column".into(),
            });
        }
        if let Some((name, message)) = table
            .columns
            .iter()
            .find_map(|(n, c)| c.check().map(|m| (n, m)))
        {
            return Err(H5Error::Invalid {
                path: path.into(),
                message: format!("column '{name}': {message}"),
            });
        }
        let mut builder = CompoundTypeBuilder::new();
        for (name, c) in &table.columns {
            builder = builder.field(name, c.datatype());
        }
        let datatype = builder.build().map_err(|e| H5Error::Invalid {
            path: path.into(),
            message: e.to_string(),
        })?;
        let row_size: usize = table.columns.iter().map(|(_, c)| c.width()).sum();
        let mut bytes = Vec::with_capacity(rows * row_size);
        for r in 0..rows {
            for (_, c) in &table.columns {
                c.write_row(r, &mut bytes);
            }
        }
        let mut attrs = Vec::new();
        for (col, unit) in &table.units {
            attrs.push((format!("{col}_UNIT"), AttrValue::String(unit.clone())));
        }
        for (col, desc) in &table.descriptions {
            attrs.push((format!("{col}_DESC"), AttrValue::String(desc.clone())));
        }
        self.insert_dataset(
            path,
            DatasetSpec {
                datatype,
                bytes,
                shape: vec![rows as u64],
                element_size: row_size,
                attrs,
                contiguous: false,
            },
        )
    }

    /// Set an attribute on a group or dataset (the group is created if nothing is at `path`).
    pub fn set_attr(&mut self, path: &str, name: &str, value: AttrValue) -> Result<(), H5Error> {
        let segs = split_path(path)?;
        if let Some((last, parents)) = segs.split_last() {
            let group = self.group_mut(parents, path)?;
            if let Some(ds) = group.datasets.get_mut(*last) {
                ds.attrs.push((name.into(), value));
                return Ok(());
            }
        }
        let group = self.group_mut(&segs, path)?;
        group.attrs.retain(|(n, _)| n != name);
        group.attrs.push((name.into(), value));
        Ok(())
    }

    /// Serialize to bytes.
    pub fn to_bytes(self) -> Result<Vec<u8>, H5Error> {
        let mut fb = FileBuilder::new();
        for (n, v) in &self.root.attrs {
            fb.set_attr(n, v.clone());
        }
        for (name, ds) in self.root.datasets {
            apply_dataset(fb.create_dataset(&name), ds);
        }
        for (name, g) in self.root.groups {
            let gb = fb.create_group(&name);
            fb.add_group(build_group(gb, g).finish());
        }
        fb.finish().map_err(|e| H5Error::Invalid {
            path: "/".into(),
            message: e.to_string(),
        })
    }

    /// Write the file (to `path` directly; the scheduler makes the whole output folder atomic).
    pub fn write(self, path: &Path) -> Result<(), H5Error> {
        let bytes = self.to_bytes().map_err(|e| H5Error::File {
            path: path.into(),
            message: e.to_string(),
        })?;
        std::fs::write(path, bytes).map_err(|source| H5Error::Io {
            path: path.into(),
            source,
        })
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.root.groups.is_empty() && self.root.datasets.is_empty() && self.root.attrs.is_empty()
    }
}

fn build_group(mut gb: GroupBuilder, node: GroupNode) -> GroupBuilder {
    for (n, v) in node.attrs {
        gb.set_attr(&n, v);
    }
    for (name, ds) in node.datasets {
        apply_dataset(gb.create_dataset(&name), ds);
    }
    for (name, g) in node.groups {
        let child = gb.create_group(&name);
        let finished = build_group(child, g).finish();
        gb.add_group(finished);
    }
    gb
}

fn apply_dataset(b: &mut hdf5_pure::DatasetBuilder, ds: DatasetSpec) {
    let n_elems: u64 = ds.shape.iter().product();
    let total = ds.bytes.len();
    b.with_raw_data(ds.datatype, ds.bytes, n_elems);
    b.with_shape(&ds.shape);
    if total > COMPRESS_ABOVE_BYTES && n_elems > 0 && !ds.contiguous {
        b.with_chunks(&chunk_shape(&ds.shape, ds.element_size));
        b.with_shuffle();
        b.with_deflate(DEFLATE_LEVEL);
    }
    for (n, v) in ds.attrs {
        b.set_attr(&n, v);
    }
}

/// Chunk shape: whole trailing dimensions, as many leading rows as fit the target size.
fn chunk_shape(shape: &[u64], element_size: usize) -> Vec<u64> {
    let mut chunk: Vec<u64> = shape.iter().map(|&s| s.max(1)).collect();
    let mut bytes: u64 = chunk.iter().product::<u64>() * element_size as u64;
    let target = CHUNK_TARGET_BYTES as u64;
    for c in chunk.iter_mut() {
        if bytes <= target {
            break;
        }
        let rest = bytes / *c;
        let fit = (target / rest.max(1)).max(1);
        *c = fit.min(*c);
        bytes = rest * *c;
    }
    chunk
}

/// The element type of a dataset, as far as readers here need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementType {
    /// Floating point of 4 or 8 bytes.
    Float(usize),
    /// Signed integer of 1, 2, 4 or 8 bytes.
    Int(usize),
    /// Unsigned integer of 1, 2, 4 or 8 bytes.
    UInt(usize),
    /// Anything else (compound, strings, ...).
    Other,
}

/// Reads datasets from an HDF5 file written by h5py, PyTables, libhdf5 or [`H5Writer`].
pub struct H5Reader {
    file: hdf5_pure::File,
    path: PathBuf,
    /// The file's length when opened (against its superblock's end of file: a truncation).
    len: u64,
}

impl std::fmt::Debug for H5Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H5Reader")
            .field("path", &self.path)
            .finish()
    }
}

impl H5Reader {
    /// Open a file for streamed reads (hdf5-pure's streaming backend): the metadata and the
    /// chunks or rows asked for are read from the file when needed, so memory stays near one
    /// chunk plus the metadata, whatever the file's size. (Buffering the whole file, hdf5-pure's
    /// `File::open`, read a 588 MB CSPad stack in full before the first frame and held it in
    /// memory: 2.4-2.9x slower on contiguous and uncompressed chunked stacks, twice the peak
    /// memory; see `plugins/cspad/BENCHMARKS.md`.)
    pub fn open(path: &Path) -> Result<Self, H5Error> {
        if !path.exists() {
            return Err(H5Error::Io {
                path: path.into(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        let len = std::fs::metadata(path)
            .map_err(|source| H5Error::Io {
                path: path.into(),
                source,
            })?
            .len();
        // a file that ends before the metadata the library needs to open it is cut short (the
        // superblock's own end of file is not known then)
        let file = hdf5_pure::File::open_streaming(path).map_err(|e| {
            let message = e.to_string();
            if out_of_bytes(&e) {
                H5Error::Truncated {
                    path: path.into(),
                    message: format!(
                        "opening it: {message} (the file has {len} bytes, fewer than its metadata needs)"
                    ),
                }
            } else {
                H5Error::File {
                    path: path.into(),
                    message,
                }
            }
        })?;
        Ok(Self {
            file,
            path: path.into(),
            len,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, dataset: &str, message: impl Into<String>) -> H5Error {
        H5Error::Dataset {
            file: self.path.display().to_string(),
            dataset: dataset.into(),
            message: message.into(),
        }
    }

    /// An error of hdf5-pure while doing `what` with dataset (or group) `name`: a truncation
    /// when the library ran out of bytes and the file is shorter than the end of file its
    /// superblock records; else a dataset error.
    fn lib_err(&self, name: &str, what: &str, e: &hdf5_pure::Error) -> H5Error {
        let eof = self.file.superblock().eof_address;
        if out_of_bytes(e) && self.len < eof {
            H5Error::Truncated {
                path: self.path.clone(),
                message: format!(
                    "dataset {name}: {what}: {e} (the file has {} bytes; its superblock records {eof})",
                    self.len
                ),
            }
        } else {
            self.err(name, format!("{what}: {e}"))
        }
    }

    fn dataset(&self, name: &str) -> Result<hdf5_pure::Dataset, H5Error> {
        self.file
            .dataset(name.trim_start_matches('/'))
            .map_err(|e| self.lib_err(name, "cannot open", &e))
    }

    /// True if a dataset exists at `name`.
    pub fn has_dataset(&self, name: &str) -> bool {
        self.file.dataset(name.trim_start_matches('/')).is_ok()
    }

    /// The dataset's shape.
    pub fn shape(&self, name: &str) -> Result<Vec<usize>, H5Error> {
        let ds = self.dataset(name)?;
        let shape = ds.shape().map_err(|e| self.lib_err(name, "shape", &e))?;
        Ok(shape.into_iter().map(|s| s as usize).collect())
    }

    /// The dataset's element type.
    pub fn element_type(&self, name: &str) -> Result<ElementType, H5Error> {
        let ds = self.dataset(name)?;
        let dt = ds
            .dtype()
            .map_err(|e| self.lib_err(name, "element type", &e))?;
        use hdf5_pure::DType as D;
        Ok(match dt {
            D::F32 => ElementType::Float(4),
            D::F64 => ElementType::Float(8),
            D::I8 => ElementType::Int(1),
            D::I16 => ElementType::Int(2),
            D::I32 => ElementType::Int(4),
            D::I64 => ElementType::Int(8),
            D::U8 => ElementType::UInt(1),
            D::U16 => ElementType::UInt(2),
            D::U32 => ElementType::UInt(4),
            D::U64 => ElementType::UInt(8),
            _ => ElementType::Other,
        })
    }

    /// A whole numeric dataset as f64.
    pub fn read_f64(&self, name: &str) -> Result<Vec<f64>, H5Error> {
        self.dataset(name)?
            .read_f64()
            .map_err(|e| self.lib_err(name, "read failed", &e))
    }

    /// A whole numeric dataset as f32.
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>, H5Error> {
        self.dataset(name)?
            .read_f32()
            .map_err(|e| self.lib_err(name, "read failed", &e))
    }

    /// Rows `start .. start + count` along the first axis (frames of a stack), as f64, flattened.
    pub fn read_rows_f64(
        &self,
        name: &str,
        start: usize,
        count: usize,
    ) -> Result<Vec<f64>, H5Error> {
        self.dataset(name)?
            .read_f64_rows(start as u64, count as u64)
            .map_err(|e| self.lib_err(name, &rows(start, count), &e))
    }

    /// Rows along the first axis as f32, flattened.
    pub fn read_rows_f32(
        &self,
        name: &str,
        start: usize,
        count: usize,
    ) -> Result<Vec<f32>, H5Error> {
        self.dataset(name)?
            .read_f32_rows(start as u64, count as u64)
            .map_err(|e| self.lib_err(name, &rows(start, count), &e))
    }

    /// Rows along the first axis as i32 (integer frames without conversion to float).
    pub fn read_rows_i32(
        &self,
        name: &str,
        start: usize,
        count: usize,
    ) -> Result<Vec<i32>, H5Error> {
        self.dataset(name)?
            .read_i32_rows(start as u64, count as u64)
            .map_err(|e| self.lib_err(name, &rows(start, count), &e))
    }

    /// Rows `start .. start + count` along the first axis of an int8, uint8 or int16 dataset
    /// (little- or big-endian) as i16, flattened: the file's bytes are decoded once, straight
    /// to i16 (every such value fits), with no wider intermediate. Other element types are
    /// refused with an error naming the file, dataset and type; a window past the end returns
    /// the rows that exist, as [`read_rows_i32`](Self::read_rows_i32) does.
    pub fn read_rows_i16(
        &self,
        name: &str,
        start: usize,
        count: usize,
    ) -> Result<Vec<i16>, H5Error> {
        let mut out = Vec::new();
        self.read_rows_i16_into(name, start, count, &mut out)?;
        Ok(out)
    }

    /// [`read_rows_i16`](Self::read_rows_i16) into a caller's buffer: `out` is cleared and
    /// refilled (its allocation is reused when large enough).
    pub fn read_rows_i16_into(
        &self,
        name: &str,
        start: usize,
        count: usize,
        out: &mut Vec<i16>,
    ) -> Result<(), H5Error> {
        out.clear();
        match self.read_i16_window(name, start, count)? {
            I16Window::Raw(raw, kind) => decode_narrow(&raw, kind, out),
            I16Window::Decoded(v) => *out = v,
        }
        Ok(())
    }

    /// Rows `start .. start + count` of an int8, uint8 or int16 dataset, each row decoded
    /// straight from the file's bytes into its own `Vec<i16>` of `row_len` values (the
    /// product of the trailing dimensions; a window that is not whole rows of `row_len` is an
    /// error naming the rows): one read of the window, one decode per value. Fewer rows come
    /// back when the window passes the end.
    pub fn read_rows_i16_split(
        &self,
        name: &str,
        start: usize,
        count: usize,
        row_len: usize,
    ) -> Result<Vec<Vec<i16>>, H5Error> {
        let whole = |values: usize| {
            if row_len > 0 && values.is_multiple_of(row_len) {
                Ok(())
            } else {
                Err(self.err(
                    name,
                    format!(
                        "reading rows {start}..{}: {values} values are not whole rows of {row_len}",
                        start + count
                    ),
                ))
            }
        };
        if let Some(rows) = self.contiguous_i16_rows(name, start, count, row_len) {
            return Ok(rows);
        }
        match self.read_i16_window(name, start, count)? {
            I16Window::Raw(raw, kind) => {
                let width = kind.width();
                whole(raw.len() / width)?;
                Ok(raw
                    .chunks_exact(row_len * width)
                    .map(|bytes| {
                        let mut row = Vec::with_capacity(row_len);
                        decode_narrow(bytes, kind, &mut row);
                        row
                    })
                    .collect())
            }
            I16Window::Decoded(v) => {
                whole(v.len())?;
                Ok(v.chunks_exact(row_len).map(<[i16]>::to_vec).collect())
            }
        }
    }

    /// The fast path of [`read_rows_i16_split`](Self::read_rows_i16_split): an unfiltered
    /// contiguous int16 dataset (the layout h5py and psana write by default) whose rows hold
    /// `row_len` values is read straight from the file into each row's vector, one positioned
    /// read per row and an in-place byte swap only when the file's order is not the host's.
    /// `None` whenever that does not apply or any read falls short (a truncated file): the
    /// general path then reads the window and reports the problem as before.
    #[cfg(unix)]
    fn contiguous_i16_rows(
        &self,
        name: &str,
        start: usize,
        count: usize,
        row_len: usize,
    ) -> Option<Vec<Vec<i16>>> {
        use std::os::unix::fs::FileExt;
        let ds = self.dataset(name).ok()?;
        let kind = narrow_int(&ds.datatype().ok()?)?;
        if !matches!(kind, NarrowInt::I16Le | NarrowInt::I16Be) || !ds.filters().is_empty() {
            return None;
        }
        let hdf5_pure::Layout::Contiguous {
            address: Some(address),
            size,
        } = ds.layout().ok()?
        else {
            return None;
        };
        let shape = ds.shape().ok()?;
        let (&n0, inner) = shape.split_first()?;
        let inner = inner.iter().try_fold(1u64, |a, &d| a.checked_mul(d))?;
        let row_bytes = u64::try_from(row_len).ok()?.checked_mul(2)?;
        if row_len == 0 || inner != row_len as u64 || n0.checked_mul(row_bytes)? != size {
            return None;
        }
        let first = (start as u64).min(n0);
        let n = (count as u64).min(n0 - first);
        let file = std::fs::File::open(&self.path).ok()?;
        // The bytes land in host order; swap when the file's order differs.
        let file_is_le = kind == NarrowInt::I16Le;
        let swap = file_is_le != cfg!(target_endian = "little");
        (first..first + n)
            .map(|r| {
                let mut row = vec![0i16; row_len];
                let at = address.checked_add(r.checked_mul(row_bytes)?)?;
                file.read_exact_at(bytemuck::cast_slice_mut(&mut row), at)
                    .ok()?;
                if swap {
                    row.iter_mut().for_each(|v| *v = v.swap_bytes());
                }
                Some(row)
            })
            .collect()
    }

    /// Non-Unix hosts always take the general path.
    #[cfg(not(unix))]
    fn contiguous_i16_rows(
        &self,
        _name: &str,
        _start: usize,
        _count: usize,
        _row_len: usize,
    ) -> Option<Vec<Vec<i16>>> {
        None
    }

    /// The window's bytes with how to decode them, or (for int8/uint8/int16 with a
    /// non-standard layout: bit offset, short precision, VAX order) the values as hdf5-pure's
    /// general decoder gives them.
    fn read_i16_window(
        &self,
        name: &str,
        start: usize,
        count: usize,
    ) -> Result<I16Window, H5Error> {
        let rows_err = |e: String| self.err(name, format!("{}: {e}", rows(start, count)));
        let lib_err = |e: hdf5_pure::Error| self.lib_err(name, &rows(start, count), &e);
        let ds = self.dataset(name)?;
        let dt = ds.datatype().map_err(lib_err)?;
        let Some(kind) = narrow_int(&dt) else {
            if let Datatype::FixedPoint { size, layout, .. } = &dt
                && *size <= 2
                && (layout.signed || *size == 1)
            {
                let v = ds
                    .read_i16_rows(start as u64, count as u64)
                    .map_err(lib_err)?;
                return Ok(I16Window::Decoded(v));
            }
            return Err(rows_err(format!(
                "elements are {dt:?}; an i16 read takes int8, uint8 or int16"
            )));
        };
        let raw = ds
            .read_raw_rows(start as u64, count as u64)
            .map_err(lib_err)?;
        if raw.len() % kind.width() != 0 {
            return Err(rows_err(format!(
                "{} bytes are not whole {}-byte elements",
                raw.len(),
                kind.width()
            )));
        }
        Ok(I16Window::Raw(raw, kind))
    }

    /// The raw rows of a table and where `column` sits in each: (bytes, row size, member).
    fn table_column(
        &self,
        name: &str,
        column: &str,
    ) -> Result<(Vec<u8>, usize, hdf5_pure::CompoundMember), H5Error> {
        let ds = self.dataset(name)?;
        let dt = ds
            .datatype()
            .map_err(|e| self.lib_err(name, "element type", &e))?;
        let Datatype::Compound { size, members } = dt else {
            return Err(self.err(name, "not a table (compound dataset)"));
        };
        let member = members
            .into_iter()
            .find(|m| m.name == column)
            .ok_or_else(|| self.err(name, format!("no column '{column}'")))?;
        let row = size as usize;
        let raw = ds
            .read_raw()
            .map_err(|e| self.lib_err(name, "read failed", &e))?;
        let end = member.byte_offset as usize + member.datatype.type_size() as usize;
        if row == 0 || raw.len() % row != 0 || end > row {
            return Err(self.err(name, "table size is not a whole number of rows"));
        }
        Ok((raw, row, member))
    }

    /// One column of a compound (table) dataset, as f64.
    pub fn read_column_f64(&self, name: &str, column: &str) -> Result<Vec<f64>, H5Error> {
        let (raw, row, member) = self.table_column(name, column)?;
        let off = member.byte_offset as usize;
        let width = member.datatype.type_size() as usize;
        raw.chunks_exact(row)
            .map(|r| {
                decode_number(&member.datatype, &r[off..off + width])
                    .ok_or_else(|| self.err(name, format!("column '{column}' is not numeric")))
            })
            .collect()
    }

    /// A fixed-length string column of a table (trailing NULs and, for space-padded strings,
    /// spaces removed).
    pub fn read_column_strings(&self, name: &str, column: &str) -> Result<Vec<String>, H5Error> {
        let (raw, row, member) = self.table_column(name, column)?;
        let Datatype::String { size, padding, .. } = &member.datatype else {
            return Err(self.err(
                name,
                format!("column '{column}' is not a fixed-length string"),
            ));
        };
        let (off, width) = (member.byte_offset as usize, *size as usize);
        raw.chunks_exact(row)
            .map(|r| {
                let b = &r[off..off + width];
                let b = match b.iter().position(|&c| c == 0) {
                    Some(n) => &b[..n],
                    None => b,
                };
                let text = String::from_utf8(b.to_vec())
                    .map_err(|_| self.err(name, format!("column '{column}' is not UTF-8")))?;
                Ok(match padding {
                    hdf5_pure::StringPadding::SpacePad => text.trim_end_matches(' ').to_string(),
                    _ => text,
                })
            })
            .collect()
    }

    /// An array column of a table, as f64: (elements per row, rows x elements row-major).
    pub fn read_column_array_f64(
        &self,
        name: &str,
        column: &str,
    ) -> Result<(usize, Vec<f64>), H5Error> {
        let (raw, row, member) = self.table_column(name, column)?;
        let Datatype::Array {
            base_type,
            dimensions,
        } = &member.datatype
        else {
            return Err(self.err(name, format!("column '{column}' is not an array column")));
        };
        let len: usize = dimensions.iter().map(|&d| d as usize).product();
        let width = base_type.type_size() as usize;
        let off = member.byte_offset as usize;
        let mut out = Vec::with_capacity(raw.len() / row * len);
        for r in raw.chunks_exact(row) {
            for k in 0..len {
                let b = &r[off + k * width..off + (k + 1) * width];
                out.push(
                    decode_number(base_type, b).ok_or_else(|| {
                        self.err(name, format!("column '{column}' is not numeric"))
                    })?,
                );
            }
        }
        Ok((len, out))
    }

    /// Names of the datasets directly in a group.
    pub fn datasets_in(&self, group: &str) -> Result<Vec<String>, H5Error> {
        let g = if group.trim_matches('/').is_empty() {
            self.file.root()
        } else {
            self.file
                .group(group.trim_start_matches('/'))
                .map_err(|e| self.lib_err(group, "group", &e))?
        };
        g.datasets()
            .map_err(|e| self.lib_err(group, "datasets", &e))
    }

    /// The attributes of a dataset or group.
    pub fn attrs(
        &self,
        name: &str,
    ) -> Result<std::collections::HashMap<String, AttrValue>, H5Error> {
        let trimmed = name.trim_start_matches('/');
        if let Ok(ds) = self.file.dataset(trimmed) {
            return ds.attrs().map_err(|e| self.lib_err(name, "attributes", &e));
        }
        let g = if trimmed.is_empty() {
            self.file.root()
        } else {
            self.file
                .group(trimmed)
                .map_err(|e| self.lib_err(name, "group", &e))?
        };
        g.attrs().map_err(|e| self.lib_err(name, "attributes", &e))
    }
}

/// A number stored as an HDF5 integer or IEEE float of 1-8 bytes, either byte order.
/// "reading rows a..b", for errors.
fn rows(start: usize, count: usize) -> String {
    format!("reading rows {start}..{}", start + count)
}

/// A window read for the i16 readers.
enum I16Window {
    /// Raw element bytes and their type.
    Raw(Vec<u8>, NarrowInt),
    /// Values already decoded.
    Decoded(Vec<i16>),
}

/// Integer element types of at most 16 bits with the standard layout (no bit offset, full
/// precision), decoded to i16 without a wider intermediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NarrowInt {
    I8,
    U8,
    I16Le,
    I16Be,
}

impl NarrowInt {
    fn width(self) -> usize {
        match self {
            NarrowInt::I8 | NarrowInt::U8 => 1,
            NarrowInt::I16Le | NarrowInt::I16Be => 2,
        }
    }
}

fn narrow_int(t: &Datatype) -> Option<NarrowInt> {
    use hdf5_pure::DatatypeByteOrder as O;
    let Datatype::FixedPoint {
        size,
        byte_order,
        layout,
    } = t
    else {
        return None;
    };
    if layout.bit_offset != 0 || u32::from(layout.bit_precision) != 8 * size {
        return None;
    }
    match (size, layout.signed, byte_order) {
        (1, true, O::LittleEndian | O::BigEndian) => Some(NarrowInt::I8),
        (1, false, O::LittleEndian | O::BigEndian) => Some(NarrowInt::U8),
        (2, true, O::LittleEndian) => Some(NarrowInt::I16Le),
        (2, true, O::BigEndian) => Some(NarrowInt::I16Be),
        _ => None,
    }
}

/// Append the values of `bytes` (whole elements of `kind`) to `out` as i16.
fn decode_narrow(bytes: &[u8], kind: NarrowInt, out: &mut Vec<i16>) {
    match kind {
        NarrowInt::I8 => out.extend(bytes.iter().map(|&b| i16::from(b as i8))),
        NarrowInt::U8 => out.extend(bytes.iter().map(|&b| i16::from(b))),
        NarrowInt::I16Le => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]])),
        ),
        NarrowInt::I16Be => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| i16::from_be_bytes([b[0], b[1]])),
        ),
    }
}

fn decode_number(t: &Datatype, b: &[u8]) -> Option<f64> {
    let (order, n) = match t {
        Datatype::FixedPoint {
            size, byte_order, ..
        }
        | Datatype::FloatingPoint {
            size, byte_order, ..
        } => (byte_order, *size as usize),
        _ => return None,
    };
    if b.len() != n || n > 8 {
        return None;
    }
    let mut le = [0u8; 8];
    le[..n].copy_from_slice(b);
    match order {
        hdf5_pure::DatatypeByteOrder::LittleEndian => {}
        hdf5_pure::DatatypeByteOrder::BigEndian => le[..n].reverse(),
        _ => return None,
    }
    let bits = u64::from_le_bytes(le);
    Some(match t {
        Datatype::FloatingPoint { .. } => match n {
            4 => f64::from(f32::from_bits(bits as u32)),
            8 => f64::from_bits(bits),
            _ => return None,
        },
        Datatype::FixedPoint { layout, .. } => {
            if layout.signed {
                // Sign-extend from n bytes.
                let shift = 64 - 8 * n as u32;
                (((bits << shift) as i64) >> shift) as f64
            } else {
                bits as f64
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_arrays_and_attributes_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.h5");
        let mut w = H5Writer::new();
        let n = 50_000; // large enough to be chunked and compressed
        let mut t = Table::new();
        t.push_f64("x", (0..n).map(|i| i as f64 * 0.5).collect());
        t.push_i32("id", (0..n as i32).collect());
        t.push_bool("ok", (0..n).map(|i| i % 3 == 0).collect());
        t.set_unit("x", "mm");
        w.write_table("/a/b/table", &t).unwrap();
        let img: Vec<u16> = (0..(300 * 400)).map(|i| (i % 65000) as u16).collect();
        w.write_array("/a/image", &[300, 400], &img).unwrap();
        w.set_attr("/", "creator", AttrValue::String("caliper".into()))
            .unwrap();
        w.set_attr("/a", "run", AttrValue::I64(42)).unwrap();
        assert!(
            w.write_array("/a/image", &[1], &[1u8]).is_err(),
            "duplicate path must fail"
        );
        assert!(
            w.write_array("/bad", &[2, 2], &[1u8]).is_err(),
            "shape mismatch must fail"
        );
        w.write(&path).unwrap();

        let r = H5Reader::open(&path).unwrap();
        assert_eq!(r.shape("/a/image").unwrap(), vec![300, 400]);
        assert_eq!(r.element_type("/a/image").unwrap(), ElementType::UInt(2));
        let back = r.read_f64("/a/image").unwrap();
        assert_eq!(back.len(), img.len());
        assert!(back.iter().zip(&img).all(|(a, &b)| *a == f64::from(b)));
        let rows = r.read_rows_f64("/a/image", 10, 2).unwrap();
        assert_eq!(rows.len(), 800);
        assert_eq!(rows[0], f64::from(img[4000]));
        let x = r.read_column_f64("/a/b/table", "x").unwrap();
        assert_eq!(x.len(), n);
        assert_eq!(x[n - 1], (n - 1) as f64 * 0.5);
        let ok = r.read_column_f64("/a/b/table", "ok").unwrap();
        assert_eq!(ok[3], 1.0);
        assert_eq!(ok[4], 0.0);
        let attrs = r.attrs("/a").unwrap();
        assert_eq!(attrs.get("run").and_then(|v| v.as_i64()), Some(42));
        let tattrs = r.attrs("/a/b/table").unwrap();
        assert_eq!(tattrs.get("x_UNIT").and_then(|v| v.as_str()), Some("mm"));
        assert!(r.read_column_f64("/a/b/table", "nope").is_err());
        assert!(r.shape("/missing").is_err());
    }

    #[test]
    fn string_and_array_columns_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.h5");
        let mut t = Table::new();
        t.push_i32("tel_id", vec![1, 2, 3]);
        t.push_strings(
            "name",
            vec!["LST".into(), "MST".into(), "SST-1M-long".into()],
        );
        t.push_array(
            "pos",
            3,
            ColumnData::F64(vec![1.0, 2.0, 3.0, -4.0, 5.5, 6.0, 7.0, 8.0, 9.25]),
        );
        t.push_array(
            "flags",
            2,
            ColumnData::Bool(vec![true, false, false, false, true, true]),
        );
        t.push_f32("after", vec![0.5, 1.5, 2.5]);
        let mut w = H5Writer::new();
        w.write_table("/layout", &t).unwrap();
        w.write(&path).unwrap();
        let r = H5Reader::open(&path).unwrap();
        assert_eq!(
            r.read_column_strings("/layout", "name").unwrap(),
            vec!["LST", "MST", "SST-1M-long"]
        );
        let (len, pos) = r.read_column_array_f64("/layout", "pos").unwrap();
        assert_eq!(len, 3);
        assert_eq!(pos, vec![1.0, 2.0, 3.0, -4.0, 5.5, 6.0, 7.0, 8.0, 9.25]);
        let (len, flags) = r.read_column_array_f64("/layout", "flags").unwrap();
        assert_eq!((len, flags), (2, vec![1.0, 0.0, 0.0, 0.0, 1.0, 1.0]));
        // Columns after the string and array members are found at their offsets.
        assert_eq!(
            r.read_column_f64("/layout", "after").unwrap(),
            vec![0.5, 1.5, 2.5]
        );
        assert_eq!(
            r.read_column_f64("/layout", "tel_id").unwrap(),
            vec![1.0, 2.0, 3.0]
        );
        assert!(r.read_column_f64("/layout", "name").is_err());
        assert!(r.read_column_strings("/layout", "after").is_err());

        // Wrong shapes and over-long strings are refused before anything is written.
        let mut bad = Table::new();
        bad.push_i32("a", vec![1, 2]);
        bad.push_array("v", 3, ColumnData::F64(vec![1.0; 5]));
        let e = H5Writer::new()
            .write_table("/bad", &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'v'"), "{e}");
        let mut long = Table::new();
        long.push(
            "s",
            ColumnData::Str {
                width: 2,
                values: vec!["abc".into()],
            },
        );
        let e = H5Writer::new()
            .write_table("/long", &long)
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 0") && e.contains("3 bytes"), "{e}");
    }

    #[test]
    fn chunk_shapes_fit_target() {
        // One CSPad frame of f64 is 18 MB: split down to 84 rows of one sensor (84*388*8 = 260 KiB).
        let c = chunk_shape(&[1000, 32, 185, 388], 8);
        assert_eq!(c, vec![1, 1, 84, 388]);
        assert_eq!(chunk_shape(&[10], 8), vec![10]);
    }
    /// Writes int16 (LE and BE), int8, uint8 and uint16 stacks of shape (5, 3, 7), contiguous,
    /// chunked and chunked + shuffle + deflate, with hdf5-pure's builder (byte order chosen
    /// explicitly), and returns the file with the values written.
    fn narrow_stacks(dir: &Path) -> (PathBuf, Vec<i16>) {
        use hdf5_pure::{DatatypeByteOrder as O, FixedPointLayout};
        let n = 5 * 3 * 7;
        let mut v: Vec<i16> = (0..n)
            .map(|k| ((k * 7919 + 13) % 65536 - 32768) as i16)
            .collect();
        v[0] = i16::MIN;
        v[1] = i16::MAX;
        v[2] = -1;
        v[3] = 0;
        let int = |size: u32, signed: bool, order: O| Datatype::FixedPoint {
            size,
            byte_order: order,
            layout: FixedPointLayout {
                signed,
                bit_offset: 0,
                bit_precision: (8 * size) as u16,
            },
        };
        let le: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let be: Vec<u8> = v.iter().flat_map(|x| x.to_be_bytes()).collect();
        let bytes8: Vec<u8> = v.iter().map(|&x| x as u8).collect();
        let mut fb = FileBuilder::new();
        for (name, dt, bytes) in [
            ("le16", int(2, true, O::LittleEndian), &le),
            ("be16", int(2, true, O::BigEndian), &be),
            ("i8", int(1, true, O::LittleEndian), &bytes8),
            ("u8", int(1, false, O::LittleEndian), &bytes8),
            ("u16", int(2, false, O::LittleEndian), &le),
        ] {
            for (suffix, chunks, deflate) in [
                ("", None, false),
                ("_chunked", Some([2u64, 3, 7]), false),
                ("_deflate", Some([1u64, 3, 4]), true),
            ] {
                let b = fb.create_dataset(&format!("{name}{suffix}"));
                b.with_raw_data(dt.clone(), bytes.clone(), n as u64);
                b.with_shape(&[5, 3, 7]);
                if let Some(c) = chunks {
                    b.with_chunks(&c);
                }
                if deflate {
                    b.with_shuffle();
                    b.with_deflate(4);
                }
            }
        }
        let path = dir.join("narrow.h5");
        std::fs::write(&path, fb.finish().unwrap()).unwrap();
        (path, v)
    }

    #[test]
    fn i16_rows_match_the_i32_path_exactly() {
        // Bitwise: the direct i16 decode must give the very values hdf5-pure's i32 decode
        // gives, narrowed (exact for int8/uint8/int16), and the values written.
        let dir = tempfile::tempdir().unwrap();
        let (path, v) = narrow_stacks(dir.path());
        let r = H5Reader::open(&path).unwrap();
        let row = 21;
        for name in ["le16", "be16", "i8", "u8"] {
            let written: Vec<i16> = match name {
                "i8" => v.iter().map(|&x| i16::from(x as u8 as i8)).collect(),
                "u8" => v.iter().map(|&x| i16::from(x as u8)).collect(),
                _ => v.clone(),
            };
            for suffix in ["", "_chunked", "_deflate"] {
                let ds = format!("{name}{suffix}");
                let mut buf = vec![7i16; 3];
                for (start, count) in [(0, 5), (1, 3), (4, 1), (3, 5), (2, 0)] {
                    let old: Vec<i16> = r
                        .read_rows_i32(&ds, start, count)
                        .unwrap()
                        .into_iter()
                        .map(|x| x as i16)
                        .collect();
                    let end = (start + count).min(5);
                    assert_eq!(old, written[start * row..end * row], "{ds} {start}+{count}");
                    assert_eq!(r.read_rows_i16(&ds, start, count).unwrap(), old, "{ds}");
                    r.read_rows_i16_into(&ds, start, count, &mut buf).unwrap();
                    assert_eq!(buf, old, "{ds}");
                    let split = r.read_rows_i16_split(&ds, start, count, row).unwrap();
                    assert_eq!(split.len(), end - start, "{ds}");
                    for (k, s) in split.iter().enumerate() {
                        assert_eq!(s[..], old[k * row..(k + 1) * row], "{ds} row {k}");
                    }
                }
                let e = r
                    .read_rows_i16_split(&ds, 0, 5, 20)
                    .unwrap_err()
                    .to_string();
                assert!(e.contains("narrow.h5") && e.contains(&ds) && e.contains("rows 0..5"));
                // The direct contiguous read is taken exactly for unfiltered contiguous int16
                // (and declines a row length that does not match the shape).
                let direct = r.contiguous_i16_rows(&ds, 1, 3, row);
                let expect_direct = cfg!(unix) && suffix.is_empty() && name.ends_with("16");
                assert_eq!(direct.is_some(), expect_direct, "{ds}");
                if let Some(rows) = direct {
                    assert_eq!(rows.concat(), written[row..4 * row], "{ds}");
                }
                assert!(r.contiguous_i16_rows(&ds, 0, 5, 20).is_none(), "{ds}");
            }
        }
        // A file cut inside a contiguous dataset: the direct read declines and the general
        // path reports the problem with file, dataset and rows (or returns what it can).
        let bytes = std::fs::read(&path).unwrap();
        let cut = dir.path().join("narrow_cut.h5");
        let ds = r.dataset("le16").unwrap();
        let Ok(hdf5_pure::Layout::Contiguous {
            address: Some(at), ..
        }) = ds.layout()
        else {
            panic!("le16 is contiguous");
        };
        let end = at as usize + 2 * row * 2 + 5;
        if end < bytes.len() {
            std::fs::write(&cut, &bytes[..end]).unwrap();
            if let Ok(rc) = H5Reader::open(&cut) {
                assert!(rc.contiguous_i16_rows("le16", 0, 5, row).is_none());
                if let Err(e) = rc.read_rows_i16_split("le16", 0, 5, row) {
                    assert!(e.to_string().contains("narrow_cut.h5"), "{e}");
                }
            }
        }
        // uint16 values need not fit in i16: refused, naming file, dataset and rows.
        let e = r
            .read_rows_i16("u16_chunked", 1, 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("narrow.h5") && e.contains("u16_chunked") && e.contains("rows 1..3"),
            "{e}"
        );
    }

    /// A stack cut short reads up to the cut: the rows wholly before it come back as written,
    /// the first row past it is a truncation naming the file's length and the length its
    /// superblock records; a file cut before its metadata is a truncation at open (or when
    /// the dataset is opened).
    #[test]
    fn cut_stack_reads_up_to_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (frames, n) = (6usize, 20usize);
        let vals: Vec<f32> = (0..frames * n).map(|k| k as f32 * 0.5 - 3.0).collect();
        let path = dir.path().join("stack.h5");
        let mut w = H5Writer::new();
        w.write_array("/data/stack", &[frames, n], &vals).unwrap();
        w.write(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let row_bytes = n * 4;
        // H5Writer stores a small dataset contiguously, at the end of the file (checked by the
        // first assertion of the loop: a cut one byte short loses exactly the last row)
        let data_at = bytes.len() - frames * row_bytes;
        let cut_path = dir.path().join("cut.h5");
        for cut in [
            bytes.len() - 1,
            bytes.len() - row_bytes,
            data_at + 2 * row_bytes + 7,
        ] {
            std::fs::write(&cut_path, &bytes[..cut]).unwrap();
            let r = H5Reader::open(&cut_path).unwrap();
            let whole = (cut - data_at) / row_bytes;
            for k in 0..whole {
                let row = r.read_rows_f32("/data/stack", k, 1).unwrap();
                assert_eq!(row[..], vals[k * n..(k + 1) * n], "cut {cut}, row {k}");
            }
            let e = r.read_rows_f32("/data/stack", whole, 1).unwrap_err();
            assert!(e.is_truncated(), "cut {cut}: {e}");
            let text = e.to_string();
            assert!(
                text.contains(&format!(
                    "the file has {cut} bytes; its superblock records {}",
                    bytes.len()
                )) && text.contains(&format!("reading rows {whole}..{}", whole + 1)),
                "{text}"
            );
            let re = e.read_error(&cut_path, crate::Position::event(whole as u64));
            assert!(re.is_truncated() && !re.message.contains("cut.h5"), "{re}");
        }
        // cut inside the metadata: nothing reads, and it says so as a truncation
        for cut in [20, 100] {
            std::fs::write(&cut_path, &bytes[..cut]).unwrap();
            let e = H5Reader::open(&cut_path).and_then(|r| r.read_rows_f32("/data/stack", 0, 1));
            let e = e.unwrap_err();
            assert!(e.is_truncated(), "cut {cut}: {e}");
        }
    }

    /// Damaged compressed data in a file of full length is not a truncation: the error is
    /// corrupt input.
    #[test]
    fn damaged_chunk_is_not_a_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let (frames, n) = (4usize, 40_000usize);
        // pseudo-random values, so that deflate leaves most of the file as data
        let mut x = 12345u64;
        let vals: Vec<f32> = (0..frames * n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 40) as f32
            })
            .collect();
        let path = dir.path().join("stack.h5");
        let mut w = H5Writer::new();
        w.write_array("/data/stack", &[frames, n], &vals).unwrap();
        w.write(&path).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid..mid + 64].fill(0xFF);
        let bad = dir.path().join("bad.h5");
        std::fs::write(&bad, &bytes).unwrap();
        let r = H5Reader::open(&bad).unwrap();
        let errors: Vec<H5Error> = (0..frames)
            .filter_map(|k| r.read_rows_f32("/data/stack", k, 1).err())
            .collect();
        assert!(!errors.is_empty(), "the damage went unnoticed");
        for e in &errors {
            assert!(!e.is_truncated(), "{e}");
            let re = e.read_error(&bad, crate::Position::event(0));
            assert_eq!(re.kind, crate::ReadErrorKind::Corrupt, "{re}");
        }
    }
}
