//! Tailcuts cleaning (ctapipe `image/cleaning.py::tailcuts_clean`).

use crate::geometry::CameraGeometry;

/// Tailcuts thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tailcuts {
    /// Picture threshold [p.e.].
    pub picture: f64,
    /// Boundary threshold [p.e.].
    pub boundary: f64,
    /// Minimum picture neighbours of a picture pixel.
    pub min_picture_neighbors: u32,
    /// Keep picture pixels without neighbours.
    pub keep_isolated: bool,
}

/// Clean an image into `mask` (ctapipe's ≥ comparisons; see spec ctapipe-algorithms §5).
/// `scratch` holds two per-pixel flags between passes.
pub fn tailcuts_clean(
    geom: &CameraGeometry,
    image: &[f32],
    tc: &Tailcuts,
    scratch: &mut Vec<u8>,
    mask: &mut Vec<bool>,
) {
    let n = image.len();
    mask.clear();
    mask.resize(n, false);
    // bit 0: picture, bit 1: boundary, bit 2: picture after the neighbour requirement
    scratch.clear();
    scratch.resize(n, 0);
    for (f, &v) in scratch.iter_mut().zip(image) {
        let v = f64::from(v);
        *f = u8::from(v >= tc.picture) | (u8::from(v >= tc.boundary) << 1);
    }
    let require = !(tc.keep_isolated || tc.min_picture_neighbors == 0);
    for p in 0..n {
        if scratch[p] & 1 == 0 {
            continue;
        }
        let ok = if require {
            let k = geom
                .neighbors(p)
                .iter()
                .filter(|&&j| scratch[j as usize] & 1 != 0)
                .count() as u32;
            k >= tc.min_picture_neighbors
        } else {
            true
        };
        if ok {
            scratch[p] |= 4;
        }
    }
    for p in 0..n {
        let f = scratch[p];
        // neither a boundary pixel nor a surviving picture pixel: both terms below are
        // false (this skips the neighbour look-up for most of the camera)
        if f & 6 == 0 {
            continue;
        }
        let nb = geom.neighbors(p);
        let boundary_next_to_pic = f & 2 != 0 && nb.iter().any(|&j| scratch[j as usize] & 4 != 0);
        let keep = if tc.keep_isolated {
            boundary_next_to_pic || f & 4 != 0
        } else {
            boundary_next_to_pic || (f & 4 != 0 && nb.iter().any(|&j| scratch[j as usize] & 2 != 0))
        };
        mask[p] = keep;
    }
}
