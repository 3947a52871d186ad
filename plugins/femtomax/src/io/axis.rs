//! The scan axis: motor positions per frame (Sardana's `ref_movables` positions), from an HDF5
//! dataset in each scan file or from a CSV table for the whole run; the frame number otherwise.
//!
//! A dataset or column with one value per frame is used as it is; one with one value per scan
//! step is repeated over the step's frames when the frame count is a multiple of it.

use std::path::Path;

use caliper_core::error::{Position, ReadError};
use caliper_core::h5::H5Reader;

/// Expand per-step positions to per-frame ones.
fn per_frame(
    values: Vec<f64>,
    frames: usize,
    file: &Path,
    what: &str,
) -> Result<Vec<f64>, ReadError> {
    if values.len() == frames {
        return Ok(values);
    }
    if !values.is_empty() && frames.is_multiple_of(values.len()) {
        let k = frames / values.len();
        return Ok(values
            .iter()
            .flat_map(|&v| std::iter::repeat_n(v, k))
            .collect());
    }
    Err(ReadError::unexpected(
        file,
        Position::default(),
        format!(
            "{what} has {} positions for {frames} frames (need one per frame, or per step with equal frames per step)",
            values.len()
        ),
    ))
}

/// Positions from an HDF5 dataset (numeric array, or a table's first column) for a scan of `frames`.
pub fn from_hdf5(file: &Path, dataset: &str, frames: usize) -> Result<Vec<f64>, ReadError> {
    let r = H5Reader::open(file).map_err(|e| super::frames::open_error(file, &e))?;
    if !r.has_dataset(dataset) {
        return Err(ReadError::unexpected(
            file,
            Position::default(),
            format!("no motor dataset `{dataset}` (axis.dataset)"),
        ));
    }
    let v = r
        .read_f64(dataset)
        .map_err(|e| e.read_error(file, Position::default()))?;
    per_frame(v, frames, file, &format!("dataset `{dataset}`"))
}

/// Positions from a CSV file with a header line: the named column, or the first one.
pub fn from_csv(file: &Path, column: &str, frames: usize) -> Result<Vec<f64>, ReadError> {
    let text = std::fs::read_to_string(file).map_err(|e| ReadError::io(file, &e))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let Some((_, header)) = lines.next() else {
        return Err(ReadError::unexpected(
            file,
            Position::default(),
            "empty CSV (expected a header line)",
        ));
    };
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let col = if column.is_empty() {
        0
    } else {
        names.iter().position(|n| *n == column).ok_or_else(|| {
            ReadError::unexpected(
                file,
                Position::line(1),
                format!("no column `{column}`; columns: {}", names.join(", ")),
            )
        })?
    };
    let mut v = Vec::new();
    for (i, line) in lines {
        let cell = line.split(',').nth(col).map(str::trim).unwrap_or("");
        v.push(cell.parse::<f64>().map_err(|_| {
            ReadError::corrupt(
                file,
                Position::line(i as u64 + 1),
                format!("column {}: expected a number, found `{cell}`", names[col]),
            )
        })?);
    }
    per_frame(v, frames, file, &format!("column `{}`", names[col]))
}
