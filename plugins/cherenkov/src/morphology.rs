//! Morphology (ctapipe `image/morphology.py`): islands of the cleaning mask on the neighbour
//! graph, classified small (≤ 2 pixels), medium (3–50) and large (> 50).

use crate::geometry::CameraGeometry;

/// Morphology parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Morphology {
    /// Pixels in the mask.
    pub n_pixels: i64,
    /// Islands.
    pub n_islands: i64,
    /// Islands with ≤ 2 pixels.
    pub n_small_islands: i64,
    /// Islands with 3–50 pixels.
    pub n_medium_islands: i64,
    /// Islands with > 50 pixels.
    pub n_large_islands: i64,
}

impl Morphology {
    /// ctapipe's defaults for unparameterised images (−1).
    pub fn missing() -> Self {
        Self {
            n_pixels: -1,
            n_islands: -1,
            n_small_islands: -1,
            n_medium_islands: -1,
            n_large_islands: -1,
        }
    }
}

/// Island labelling with an explicit stack; `labels` gets 0 outside the mask and 1..=n inside,
/// numbered in order of each island's first pixel (as ctapipe's `number_of_islands`).
pub fn label_islands(
    geom: &CameraGeometry,
    mask: &[bool],
    labels: &mut Vec<u32>,
    stack: &mut Vec<u32>,
) -> u32 {
    labels.clear();
    labels.resize(mask.len(), 0);
    let mut n = 0;
    for p in 0..mask.len() {
        if !mask[p] || labels[p] != 0 {
            continue;
        }
        n += 1;
        fill_island(geom, mask, labels, stack, p, n);
    }
    n
}

/// Labels `n` on the island of mask pixel `p` (unlabelled, as all of its island) by a
/// depth-first walk over the neighbour graph with the explicit `stack`; returns its size.
#[inline(always)]
fn fill_island(
    geom: &CameraGeometry,
    mask: &[bool],
    labels: &mut [u32],
    stack: &mut Vec<u32>,
    p: usize,
    n: u32,
) -> u32 {
    labels[p] = n;
    let mut size = 1;
    stack.clear();
    stack.push(p as u32);
    while let Some(q) = stack.pop() {
        for &j in geom.neighbors(q as usize) {
            let j = j as usize;
            if mask[j] && labels[j] == 0 {
                labels[j] = n;
                size += 1;
                stack.push(j as u32);
            }
        }
    }
    size
}

/// Morphology of a mask.
pub fn morphology_parameters(
    geom: &CameraGeometry,
    mask: &[bool],
    labels: &mut Vec<u32>,
    stack: &mut Vec<u32>,
) -> Morphology {
    let n = label_islands(geom, mask, labels, stack) as usize;
    let mut sizes = vec![0i64; n + 1];
    for &l in labels.iter() {
        sizes[l as usize] += 1;
    }
    let isl = &sizes[1..];
    Morphology {
        n_pixels: mask.iter().filter(|&&m| m).count() as i64,
        n_islands: n as i64,
        n_small_islands: isl.iter().filter(|&&s| s <= 2).count() as i64,
        n_medium_islands: isl.iter().filter(|&&s| s > 2 && s <= 50).count() as i64,
        n_large_islands: isl.iter().filter(|&&s| s > 50).count() as i64,
    }
}

/// [`morphology_parameters`] for a mask whose true pixels are `idx` (ascending, as
/// `parameters::process_image` builds it): the same islands, numbered in the same order
/// (first pixel in index order), but labelled, sized and counted over the picture pixels only
/// instead of every camera pixel, with the island sizes in `sizes` (reused). `labels` is
/// left all zero between calls (only the picture pixels' labels are set and reset).
pub(crate) fn morphology_of_picture(
    geom: &CameraGeometry,
    mask: &[bool],
    idx: &[u32],
    labels: &mut Vec<u32>,
    stack: &mut Vec<u32>,
    sizes: &mut Vec<u32>,
) -> Morphology {
    if labels.len() != mask.len() {
        labels.clear();
        labels.resize(mask.len(), 0);
    }
    sizes.clear();
    for &p in idx {
        let p = p as usize;
        if labels[p] != 0 {
            continue;
        }
        let n = sizes.len() as u32 + 1;
        sizes.push(fill_island(geom, mask, labels, stack, p, n));
    }
    for &p in idx {
        labels[p as usize] = 0;
    }
    Morphology {
        n_pixels: idx.len() as i64,
        n_islands: sizes.len() as i64,
        n_small_islands: sizes.iter().filter(|&&s| s <= 2).count() as i64,
        n_medium_islands: sizes.iter().filter(|&&s| s > 2 && s <= 50).count() as i64,
        n_large_islands: sizes.iter().filter(|&&s| s > 50).count() as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The picture-pixel morphology against the all-pixel one on random masks of a hexagonal
    /// camera (397 pixels): sparse, dense and all-true masks, so that small, medium and large
    /// islands all occur; exact equality (integer counts).
    #[test]
    fn picture_pixel_morphology_equals_the_full_pass() {
        let cs = crate::geometry::hex_camera_settings(11);
        let n = cs.n_pixels;
        let geom = CameraGeometry::new("test", &cs, 10.0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (mut labels, mut stack) = (Vec::new(), Vec::new());
        let (mut labels2, mut sizes) = (Vec::new(), Vec::new());
        let mut seen = [false; 3];
        for round in 0..300 {
            let density = [0.02, 0.1, 0.3, 0.5, 0.7, 1.0][round % 6];
            let mask: Vec<bool> = (0..n).map(|_| rng.random_bool(density)).collect();
            let idx: Vec<u32> = (0..n as u32).filter(|&i| mask[i as usize]).collect();
            let full = morphology_parameters(&geom, &mask, &mut labels, &mut stack);
            let fast =
                morphology_of_picture(&geom, &mask, &idx, &mut labels2, &mut stack, &mut sizes);
            assert_eq!(full, fast, "round {round}");
            assert!(labels2.iter().all(|&l| l == 0));
            seen[0] |= full.n_small_islands > 0;
            seen[1] |= full.n_medium_islands > 0;
            seen[2] |= full.n_large_islands > 0;
        }
        assert_eq!(seen, [true; 3]);
    }
}
