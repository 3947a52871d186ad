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
    scratch.extend(image.iter().map(|&v| threshold_flags(v, tc)));
    for p in 0..n {
        if picture_survives(geom, p, scratch, tc) {
            scratch[p] |= 4;
        }
    }
    for (p, m) in mask.iter_mut().enumerate() {
        *m = kept_pixel(geom, p, scratch, tc);
    }
}

/// Threshold flags of one charge: bit 0 picture (`>= picture`), bit 1 boundary
/// (`>= boundary`), compared in float64 as ctapipe does.
#[inline]
fn threshold_flags(v: f32, tc: &Tailcuts) -> u8 {
    let v = f64::from(v);
    u8::from(v >= tc.picture) | (u8::from(v >= tc.boundary) << 1)
}

/// The smallest float32 `t` with `f64::from(t) >= x` (NaN for NaN): for every float32 `v`,
/// `v >= t` is then `f64::from(v) >= x` (float32 values are float64 values, ordered alike;
/// NaN compares false either way).
fn at_least(x: f64) -> f32 {
    let t = x as f32;
    if f64::from(t) < x { t.next_up() } else { t }
}

/// Whether pixel `p` is a picture pixel that meets the neighbour requirement (at least
/// `min_picture_neighbors` picture neighbours, unless isolated pixels are kept): bit 2.
#[inline]
fn picture_survives(geom: &CameraGeometry, p: usize, flags: &[u8], tc: &Tailcuts) -> bool {
    if flags[p] & 1 == 0 {
        return false;
    }
    if tc.keep_isolated || tc.min_picture_neighbors == 0 {
        return true;
    }
    let k = geom
        .neighbors(p)
        .iter()
        .filter(|&&j| flags[j as usize] & 1 != 0)
        .count() as u32;
    k >= tc.min_picture_neighbors
}

/// Whether pixel `p` survives the cleaning, from the flags with bit 2 set: a boundary pixel
/// next to a surviving picture pixel, or a surviving picture pixel (next to a boundary pixel
/// unless isolated pixels are kept).
#[inline]
fn kept_pixel(geom: &CameraGeometry, p: usize, flags: &[u8], tc: &Tailcuts) -> bool {
    let f = flags[p];
    // neither a boundary pixel nor a surviving picture pixel: both terms below are false
    // (this skips the neighbour look-up for most of the camera)
    if f & 6 == 0 {
        return false;
    }
    let nb = geom.neighbors(p);
    let boundary_next_to_pic = f & 2 != 0 && nb.iter().any(|&j| flags[j as usize] & 4 != 0);
    if tc.keep_isolated {
        boundary_next_to_pic || f & 4 != 0
    } else {
        boundary_next_to_pic || (f & 4 != 0 && nb.iter().any(|&j| flags[j as usize] & 2 != 0))
    }
}

/// [`tailcuts_clean`] that also lists the kept pixels in ascending order in `kept` (what a
/// scan of `mask` would give), looking only at the pixels at or above a threshold: the
/// threshold flags are one branch-free pass, the pixels with a flag are found eight flags at
/// a time, and the neighbour tests run on those alone (a few per cent of a camera) instead
/// of a branch per pixel in two passes and a scan of the mask. The same tests in the same
/// order per pixel as [`tailcuts_clean`], so `mask` is identical (tested).
pub fn tailcuts_clean_listed(
    geom: &CameraGeometry,
    image: &[f32],
    tc: &Tailcuts,
    scratch: &mut CleanScratch,
    mask: &mut Vec<bool>,
    kept: &mut Vec<u32>,
) {
    let n = image.len();
    mask.clear();
    mask.resize(n, false);
    kept.clear();
    // bit 0: picture, bit 1: boundary, bit 2: picture after the neighbour requirement
    let flags = &mut scratch.flags;
    flags.clear();
    // the float64 compares as float32 ones (exact, `at_least`): 4 lanes per SSE2 compare
    // instead of 2
    let (pic, bnd) = (at_least(tc.picture), at_least(tc.boundary));
    flags.extend(
        image
            .iter()
            .map(|&v| u8::from(v >= pic) | (u8::from(v >= bnd) << 1)),
    );
    // the pixels with a flag, ascending
    let cand = &mut scratch.candidates;
    cand.clear();
    let whole = n / 8 * 8;
    for (c, w) in flags[..whole].chunks_exact(8).enumerate() {
        if u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]) != 0 {
            for (k, &f) in w.iter().enumerate() {
                if f != 0 {
                    cand.push((8 * c + k) as u32);
                }
            }
        }
    }
    for (p, &f) in flags.iter().enumerate().skip(whole) {
        if f != 0 {
            cand.push(p as u32);
        }
    }
    for &p in cand.iter() {
        if picture_survives(geom, p as usize, flags, tc) {
            flags[p as usize] |= 4;
        }
    }
    for &p in cand.iter() {
        if kept_pixel(geom, p as usize, flags, tc) {
            mask[p as usize] = true;
            kept.push(p);
        }
    }
}

/// Reusable buffers of [`tailcuts_clean_listed`].
#[derive(Debug, Default, Clone)]
pub struct CleanScratch {
    /// Threshold flags per pixel.
    flags: Vec<u8>,
    /// Pixels with a flag, ascending.
    candidates: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// `at_least` turns a float64 threshold into the float32 one with the same compares, next
    /// to it, at ±0, at the ends of the float32 range, for ±∞ and NaN.
    #[test]
    fn float32_thresholds_compare_as_float64() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let mut xs: Vec<f64> = vec![0.0, -0.0, 5.0, 0.1, 1e-40, f64::from(f32::MAX), 1e39, -1e39];
        xs.extend([f64::INFINITY, f64::NEG_INFINITY, f64::NAN]);
        xs.extend((0..2000).map(|_| rng.random_range(-100.0..100.0f64)));
        for x in xs {
            let t = at_least(x);
            let near = if t.is_finite() {
                [t.next_down().next_down(), t.next_down(), t, t.next_up()]
            } else {
                [t; 4]
            };
            for v in near
                .into_iter()
                .chain([0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY])
            {
                assert_eq!(v >= t, f64::from(v) >= x, "{x} {v}");
            }
        }
    }

    /// `tailcuts_clean_listed` against `tailcuts_clean` (identical masks; the list is the
    /// mask's set pixels in order) on random images of a 127-pixel hexagonal camera (a
    /// length that is not a multiple of 8): sparse and dense images, thresholds with the
    /// boundary above the picture one, 0–3 required neighbours, isolated pixels kept or
    /// not, NaN and infinite charges.
    #[test]
    fn listed_cleaning_equals_tailcuts_clean() {
        let cs = crate::geometry::hex_camera_settings(6);
        let geom = CameraGeometry::new("test", &cs, 10.0);
        let n = geom.n_pixels();
        assert_eq!(n, 127);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let (mut flags, mut mask_a) = (Vec::new(), Vec::new());
        let (mut sc, mut mask_b, mut kept) = (CleanScratch::default(), Vec::new(), Vec::new());
        let mut kept_total = 0;
        for round in 0..400 {
            let bright = [0.02, 0.2, 0.6][round % 3];
            let image: Vec<f32> = (0..n)
                .map(|_| match rng.random_range(0..100) {
                    0 => f32::NAN,
                    1 => f32::INFINITY,
                    2 => f32::NEG_INFINITY,
                    // the float32 values next to the thresholds
                    3 => [5.0f32, 8.0, 10.0, 12.0][rng.random_range(0..4)].next_down(),
                    4 => [5.0f32, 8.0, 10.0, 12.0][rng.random_range(0..4)],
                    _ if rng.random_bool(bright) => rng.random_range(0.0f32..30.0),
                    _ => rng.random_range(-2.0f32..4.0),
                })
                .collect();
            let tc = Tailcuts {
                picture: [10.0, 5.0, 8.0][round % 3],
                boundary: [5.0, 5.0, 12.0][(round / 3) % 3],
                min_picture_neighbors: (round / 9 % 4) as u32,
                keep_isolated: round % 2 == 1,
            };
            tailcuts_clean(&geom, &image, &tc, &mut flags, &mut mask_a);
            tailcuts_clean_listed(&geom, &image, &tc, &mut sc, &mut mask_b, &mut kept);
            assert_eq!(mask_a, mask_b, "round {round}");
            let want: Vec<u32> = (0..n as u32).filter(|&p| mask_a[p as usize]).collect();
            assert_eq!(kept, want, "round {round}");
            kept_total += kept.len();
        }
        assert!(kept_total > 4000, "{kept_total}");
    }
}
