//! Clustering: Corryvreckan `ClusteringSpatial` (8-connected pixels, charge-weighted centre,
//! widths, error = the detector's `spatial_resolution`), and the notebook's rule (all hits of a
//! plane form one cluster, unweighted mean, error from the hit spread).
//!
//! Corryvreckan keeps one pixel per (col, row) in its hit map, so a pixel repeated in an event
//! counts once; so do we. Position = charge-weighted mean of (col, row) when every pixel has
//! non-zero charge, else the plain mean (`ClusteringSpatial::calculateClusterCentre`); widths
//! are `max - min + 1` in columns and rows.

use caliper_core::ccl::{Clusters, Connectivity, SparseClusterer};
use caliper_core::mask::PixelMask;

use crate::event::PixelHit;
use crate::io::geometry::{DetectorGeometry, Transform};

/// One cluster.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cluster {
    /// Plane index.
    pub plane: u16,
    /// Centre column (fractional).
    pub col: f64,
    /// Centre row (fractional).
    pub row: f64,
    /// Local position (mm).
    pub local: [f64; 2],
    /// Global position (mm).
    pub global: [f64; 3],
    /// Position error in x and y (mm).
    pub error: [f64; 2],
    /// Pixels.
    pub size: u32,
    /// Width in columns.
    pub col_width: u32,
    /// Width in rows.
    pub row_width: u32,
    /// Total charge.
    pub charge: f64,
    /// Timestamp (ns): the seed pixel's, i.e. the cluster's first pixel in input order, as
    /// Corryvreckan's ClusteringSpatial sets it.
    pub time: f64,
}

/// How hits become clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterMode {
    /// Corryvreckan ClusteringSpatial (8-connected).
    Spatial {
        /// Weight the centre by charge.
        charge_weighting: bool,
    },
    /// The notebook: all hits of a plane are one cluster.
    WholePlane,
}

/// Per-plane data the clustering needs.
#[derive(Debug, Clone)]
pub struct PlaneInfo {
    /// Geometry.
    pub geometry: DetectorGeometry,
    /// Local -> global.
    pub transform: Transform,
    /// Masked pixels (any reason), or none.
    pub mask: Option<PixelMask>,
}

/// A plane's masked pixels as one bit per pixel (row-major), with a summary of one bit per
/// 64-pixel word (set when any pixel of the word is masked): 1 KiB for a 1024 x 512 plane,
/// which stays in L1 cache, so a lookup of an unmasked pixel usually touches only that.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskBits {
    cols: usize,
    rows: usize,
    bits: Vec<u64>,
    words: Vec<u64>,
}

impl MaskBits {
    /// The pixels of `mask` with any reason set.
    pub fn new(mask: &PixelMask) -> Self {
        let (rows, cols) = mask.shape();
        let flags = mask.flags();
        let mut bits = vec![0u64; flags.len().div_ceil(64)];
        for (w, chunk) in bits.iter_mut().zip(flags.chunks(64)) {
            let mut v = 0u64;
            for (k, &f) in chunk.iter().enumerate() {
                v |= u64::from(f != 0) << k;
            }
            *w = v;
        }
        let mut m = Self {
            cols,
            rows,
            words: vec![0u64; bits.len().div_ceil(64)],
            bits,
        };
        for (i, &w) in m.bits.iter().enumerate() {
            m.words[i / 64] |= u64::from(w != 0) << (i % 64);
        }
        m
    }

    /// A bit set with the row-major pixel `indices` set, of a `cols` x `rows` plane (indices
    /// outside it are ignored).
    pub fn from_indices(cols: usize, rows: usize, indices: &[u32]) -> Self {
        let n = (cols * rows).div_ceil(64);
        let mut m = Self {
            cols,
            rows,
            bits: vec![0u64; n],
            words: vec![0u64; n.div_ceil(64)],
        };
        m.set_indices(indices);
        m
    }

    /// Set the row-major pixel `indices` (indices outside the plane are ignored).
    pub fn set_indices(&mut self, indices: &[u32]) {
        for &i in indices {
            let i = i as usize;
            if i < self.cols * self.rows {
                self.bits[i / 64] |= 1 << (i % 64);
                self.words[i / 4096] |= 1 << (i / 64 % 64);
            }
        }
    }

    /// Whether (row, col) is masked (false outside the plane).
    #[inline]
    pub fn get(&self, row: usize, col: usize) -> bool {
        if row >= self.rows || col >= self.cols {
            return false;
        }
        let i = row * self.cols + col;
        self.words[i / 4096] >> (i / 64 % 64) & 1 == 1 && self.bits[i / 64] >> (i % 64) & 1 == 1
    }
}

/// Reusable buffers: clustering an event allocates nothing once they have grown.
#[derive(Debug, Default, Clone)]
pub struct Clusterer {
    ccl: SparseClusterer,
    groups: Clusters,
    pos: Vec<(u32, u32)>,
    charge: Vec<f32>,
    /// Input index of each pixel in `pos`.
    index: Vec<u32>,
    order: Vec<u32>,
    keys: Vec<u64>,
}

/// The sort key (plane, column, row, input index) of a hit packed in a u64, for planes below
/// 256 and events of fewer than 2^24 hits.
#[inline]
fn pack_key(h: &PixelHit, i: usize) -> u64 {
    (u64::from(h.plane) << 56) | (u64::from(h.col) << 40) | (u64::from(h.row) << 24) | i as u64
}

impl Clusterer {
    /// Clusters the hits of one event (all planes) into `out` (appended), plane by plane in
    /// plane order. Masked pixels (the planes' `mask`) are dropped first.
    pub fn cluster_event(
        &mut self,
        hits: &[PixelHit],
        planes: &[PlaneInfo],
        mode: ClusterMode,
        out: &mut Vec<Cluster>,
    ) {
        self.cluster_with(hits, planes, mode, out, |p, row, col| {
            planes[p]
                .mask
                .as_ref()
                .is_some_and(|m| m.is_masked(row, col))
        });
    }

    /// [`Clusterer::cluster_event`] with the masks given as bit sets (`masks[plane]`, built
    /// once per run from the planes' masks with [`MaskBits::new`]): 64 KiB per 1024 x 512
    /// plane stays in cache where the 1 MiB flag array does not.
    pub fn cluster_event_bits(
        &mut self,
        hits: &[PixelHit],
        planes: &[PlaneInfo],
        masks: &[Option<MaskBits>],
        mode: ClusterMode,
        out: &mut Vec<Cluster>,
    ) {
        self.cluster_with(hits, planes, mode, out, |p, row, col| {
            masks
                .get(p)
                .and_then(Option::as_ref)
                .is_some_and(|m| m.get(row, col))
        });
    }

    fn cluster_with(
        &mut self,
        hits: &[PixelHit],
        planes: &[PlaneInfo],
        mode: ClusterMode,
        out: &mut Vec<Cluster>,
        masked: impl Fn(usize, usize, usize) -> bool,
    ) {
        // Hits sorted by (plane, col, row, input index); duplicates removed below.
        self.order.clear();
        if hits.len() < 1 << 24 && hits.iter().all(|h| h.plane < 256) {
            // Fast path: the whole key packed in one u64 (plane 8 bits, column 16, row 16,
            // index 24), sorted without looking the hits up; the same order as the tuple key
            // (a test compares the two).
            self.keys.clear();
            self.keys
                .extend(hits.iter().enumerate().map(|(i, h)| pack_key(h, i)));
            self.keys.sort_unstable();
            self.order
                .extend(self.keys.iter().map(|&k| (k & 0xff_ffff) as u32));
        } else {
            self.order.extend(0..hits.len() as u32);
            self.order.sort_unstable_by_key(|&i| {
                let h = &hits[i as usize];
                (h.plane, h.col, h.row, i)
            });
        }
        let mut k = 0;
        while k < self.order.len() {
            let plane = hits[self.order[k] as usize].plane;
            self.pos.clear();
            self.charge.clear();
            self.index.clear();
            let info = &planes[plane as usize];
            let mut last: Option<(u16, u16)> = None;
            while k < self.order.len() && hits[self.order[k] as usize].plane == plane {
                let h = &hits[self.order[k] as usize];
                k += 1;
                // The notebook keeps repeated hits; Corryvreckan's hit map does not.
                if last == Some((h.col, h.row)) && mode != ClusterMode::WholePlane {
                    continue;
                }
                last = Some((h.col, h.row));
                if masked(plane as usize, usize::from(h.row), usize::from(h.col)) {
                    continue;
                }
                self.pos.push((u32::from(h.col), u32::from(h.row)));
                self.charge.push(h.charge);
                self.index.push(self.order[k - 1]);
            }
            if self.pos.is_empty() {
                continue;
            }
            match mode {
                ClusterMode::Spatial { charge_weighting } => {
                    self.ccl
                        .cluster_into(&self.pos, Connectivity::Eight, &mut self.groups);
                    for g in self.groups.iter() {
                        let mut c = make_cluster(
                            plane,
                            info,
                            g.iter()
                                .map(|&i| (self.pos[i as usize], self.charge[i as usize])),
                            charge_weighting,
                        );
                        let seed = g.iter().map(|&i| self.index[i as usize]).min();
                        c.time = seed.map_or(0.0, |s| hits[s as usize].time);
                        out.push(c);
                    }
                }
                ClusterMode::WholePlane => {
                    let mut c = make_cluster(
                        plane,
                        info,
                        self.pos.iter().copied().zip(self.charge.iter().copied()),
                        false,
                    );
                    let seed = self.index.iter().copied().min();
                    c.time = seed.map_or(0.0, |s| hits[s as usize].time);
                    // The notebook's error: the spread sqrt(std_col^2 + std_row^2) in pixels
                    // (population std), 1/sqrt(12) for one pixel, both rounded to 2 decimals,
                    // times sqrt((px^2 + py^2)/2).
                    let n = self.pos.len() as f64;
                    let (mut vc, mut vr) = (0.0, 0.0);
                    for &(pc, pr) in &self.pos {
                        vc += (f64::from(pc) - c.col).powi(2);
                        vr += (f64::from(pr) - c.row).powi(2);
                    }
                    let mut sdev = round2(((vc + vr) / n).sqrt());
                    if sdev == 0.0 {
                        sdev = round2(1.0 / 12f64.sqrt());
                    }
                    // The notebook rounds the centre to 2 decimals (np.round(np.mean(X), 2)).
                    c.col = round2(c.col);
                    c.row = round2(c.row);
                    c.local = info.geometry.local(c.col, c.row);
                    c.global = info.transform.to_global(c.local[0], c.local[1]);
                    let p = info.geometry.pixel_pitch;
                    let e = ((p[0] * p[0] + p[1] * p[1]) / 2.0).sqrt() * sdev;
                    c.error = [e, e];
                    out.push(c);
                }
            }
        }
    }
}

/// numpy-style rounding to 2 decimals (half to even on the scaled value).
fn round2(x: f64) -> f64 {
    let y = x * 100.0;
    let r = if (y - y.trunc()).abs() == 0.5 {
        2.0 * (y / 2.0).round()
    } else {
        y.round()
    };
    r / 100.0
}

fn make_cluster(
    plane: u16,
    info: &PlaneInfo,
    pixels: impl Iterator<Item = ((u32, u32), f32)> + Clone,
    charge_weighting: bool,
) -> Cluster {
    let (mut n, mut q, mut sc, mut sr, mut qc, mut qr) =
        (0u32, 0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let (mut cmin, mut cmax, mut rmin, mut rmax) = (u32::MAX, 0u32, u32::MAX, 0u32);
    let mut zero_charge = false;
    for ((c, r), ch) in pixels {
        let ch = f64::from(ch);
        n += 1;
        q += ch;
        sc += f64::from(c);
        sr += f64::from(r);
        qc += ch * f64::from(c);
        qr += ch * f64::from(r);
        zero_charge |= ch == 0.0;
        cmin = cmin.min(c);
        cmax = cmax.max(c);
        rmin = rmin.min(r);
        rmax = rmax.max(r);
    }
    let (col, row) = if charge_weighting && !zero_charge && q != 0.0 {
        (qc / q, qr / q)
    } else {
        (sc / f64::from(n), sr / f64::from(n))
    };
    let local = info.geometry.local(col, row);
    Cluster {
        plane,
        col,
        row,
        local,
        global: info.transform.to_global(local[0], local[1]),
        error: info.geometry.spatial_resolution,
        size: n,
        col_width: cmax - cmin + 1,
        row_width: rmax - rmin + 1,
        charge: q,
        time: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(z: f64) -> PlaneInfo {
        let g = DetectorGeometry::alpide("ALPIDE_0", z);
        PlaneInfo {
            transform: g.transform(),
            geometry: g,
            mask: None,
        }
    }

    fn hit(plane: u16, col: u16, row: u16, charge: f32) -> PixelHit {
        PixelHit {
            plane,
            col,
            row,
            charge,
            time: 0.0,
        }
    }

    #[test]
    fn eight_connected_with_charge_weighting_widths_and_mask() {
        let planes = vec![info(-20.0), info(0.0)];
        let hits = vec![
            hit(1, 10, 10, 1.0),
            hit(0, 100, 200, 3.0),
            hit(0, 101, 201, 1.0), // diagonal: same cluster
            hit(0, 101, 201, 1.0), // duplicate: counted once
            hit(0, 300, 300, 1.0),
            hit(0, 302, 300, 1.0), // gap of one column: separate
        ];
        let mut cl = Clusterer::default();
        let mut out = Vec::new();
        cl.cluster_event(
            &hits,
            &planes,
            ClusterMode::Spatial {
                charge_weighting: true,
            },
            &mut out,
        );
        assert_eq!(out.len(), 4);
        let c = out[0];
        assert_eq!((c.plane, c.size, c.col_width, c.row_width), (0, 2, 2, 2));
        // Hand-computed: (3*100 + 101)/4 = 100.25, (3*200 + 201)/4 = 200.25.
        assert!((c.col - 100.25).abs() < 1e-12 && (c.row - 200.25).abs() < 1e-12);
        assert_eq!(c.charge, 4.0);
        assert!((c.global[2] + 20.0).abs() < 1e-12);
        assert_eq!(out[3].plane, 1);
        // Unweighted.
        out.clear();
        cl.cluster_event(
            &hits,
            &planes,
            ClusterMode::Spatial {
                charge_weighting: false,
            },
            &mut out,
        );
        assert!((out[0].col - 100.5).abs() < 1e-12);
        // Mask the seed pixel.
        let mut masked = planes.clone();
        let mut m = PixelMask::new(512, 1024);
        m.set(200, 100, crate::mask::HOT).unwrap();
        masked[0].mask = Some(m);
        out.clear();
        cl.cluster_event(
            &hits,
            &masked,
            ClusterMode::Spatial {
                charge_weighting: true,
            },
            &mut out,
        );
        assert_eq!(out.len(), 4);
        assert_eq!(out[0].size, 1);
        assert_eq!(out[0].col, 101.0);
    }

    #[test]
    fn mask_bits_with_word_summary_equal_the_flags_everywhere() {
        // Sparse random masks (a few pixels, some in the same 64-pixel word, the last pixel):
        // `get` (summary word first, then the pixel bit) equals the flag of every pixel, for
        // bits built from the flags, from indices, and from indices added later.
        let mut rng = caliper_core::testing::TestRng::new(11u64);
        let mut rnd = |m: u64| rng.below(m);
        let (cols, rows) = (1024usize, 512usize);
        for n in [0usize, 1, 7, 300] {
            let mut m = PixelMask::new(rows, cols);
            let mut idx = Vec::new();
            for k in 0..n {
                let i = if k == 0 {
                    cols * rows - 1
                } else {
                    rnd((cols * rows) as u64) as usize
                };
                m.set(i / cols, i % cols, crate::mask::HOT).unwrap();
                idx.push(i as u32);
                idx.push((i ^ 1) as u32); // a neighbour in the same word
                m.set((i ^ 1) / cols, (i ^ 1) % cols, crate::mask::HOT)
                    .unwrap();
            }
            let a = MaskBits::new(&m);
            let b = MaskBits::from_indices(cols, rows, &idx);
            let mut c = MaskBits::from_indices(cols, rows, &idx[..idx.len() / 2]);
            c.set_indices(&idx[idx.len() / 2..]);
            assert_eq!(a, b);
            assert_eq!(a, c);
            let flags = m.flags();
            for r in 0..rows {
                for col in 0..cols {
                    assert_eq!(a.get(r, col), flags[r * cols + col] != 0, "{r} {col}");
                }
            }
            assert!(!a.get(rows, 0) && !a.get(0, cols));
        }
    }

    #[test]
    fn bit_set_masks_cluster_as_the_flag_masks() {
        let mut rng = caliper_core::testing::TestRng::new(3u64);
        let mut rnd = |m: u64| rng.below(m);
        let mut planes = vec![info(-20.0), info(0.0), info(20.0)];
        for pl in planes.iter_mut().take(2) {
            let mut m = PixelMask::new(512, 1024);
            for _ in 0..3000 {
                m.set(rnd(40) as usize, rnd(60) as usize, crate::mask::HOT)
                    .unwrap();
            }
            pl.mask = Some(m);
        }
        let bits: Vec<Option<MaskBits>> = planes
            .iter()
            .map(|p| p.mask.as_ref().map(MaskBits::new))
            .collect();
        let mut cl = Clusterer::default();
        for _ in 0..300 {
            let hits: Vec<PixelHit> = (0..rnd(40))
                .map(|_| hit(rnd(3) as u16, rnd(64) as u16, rnd(44) as u16, 1.0))
                .collect();
            for mode in [
                ClusterMode::Spatial {
                    charge_weighting: true,
                },
                ClusterMode::WholePlane,
            ] {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                cl.cluster_event(&hits, &planes, mode, &mut a);
                cl.cluster_event_bits(&hits, &planes, &bits, mode, &mut b);
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn packed_sort_key_orders_as_the_tuple_key() {
        let mut rng = caliper_core::testing::TestRng::new(7u64);
        let mut rnd = |m: u64| rng.below(m);
        let hits: Vec<PixelHit> = (0..5000)
            .map(|_| PixelHit {
                plane: rnd(7) as u16,
                col: rnd(1024) as u16,
                row: rnd(512) as u16,
                charge: 1.0,
                time: 0.0,
            })
            .collect();
        let mut packed: Vec<u64> = hits
            .iter()
            .enumerate()
            .map(|(i, h)| pack_key(h, i))
            .collect();
        packed.sort_unstable();
        let mut tuple: Vec<u32> = (0..hits.len() as u32).collect();
        tuple.sort_unstable_by_key(|&i| {
            let h = &hits[i as usize];
            (h.plane, h.col, h.row, i)
        });
        let from_packed: Vec<u32> = packed.iter().map(|&k| (k & 0xff_ffff) as u32).collect();
        assert_eq!(from_packed, tuple);
    }

    #[test]
    fn whole_plane_mode_matches_the_notebook() {
        let planes = vec![info(0.0)];
        let hits = vec![
            hit(0, 874, 356, 1.0),
            hit(0, 875, 356, 1.0),
            hit(0, 10, 10, 1.0),
        ];
        let mut out = Vec::new();
        Clusterer::default().cluster_event(&hits, &planes, ClusterMode::WholePlane, &mut out);
        assert_eq!(out.len(), 1);
        // numpy: mean col (10+874+875)/3 = 586.333, std_col = 407.90..., std_row = 162.63...
        let c = out[0];
        assert!((c.col - 586.33).abs() < 1e-9);
        let (mc, mr) = (1759.0 / 3.0, 722.0 / 3.0);
        let sd_c = ((10.0f64 - mc).powi(2) + (874.0 - mc).powi(2) + (875.0 - mc).powi(2)) / 3.0;
        let sd_r = ((10.0f64 - mr).powi(2) + 2.0 * (356.0 - mr).powi(2)) / 3.0;
        let sdev = ((sd_c + sd_r).sqrt() * 100.0).round() / 100.0;
        let e = ((0.02924f64.powi(2) + 0.02688f64.powi(2)) / 2.0).sqrt() * sdev;
        assert!((c.error[0] - e).abs() < 1e-12);
        // One pixel: 1/sqrt(12) = 0.2887 -> 0.29.
        out.clear();
        Clusterer::default().cluster_event(&hits[..1], &planes, ClusterMode::WholePlane, &mut out);
        let e1 = ((0.02924f64.powi(2) + 0.02688f64.powi(2)) / 2.0).sqrt() * 0.29;
        assert!((out[0].error[0] - e1).abs() < 1e-15);
    }
}
