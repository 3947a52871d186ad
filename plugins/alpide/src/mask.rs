//! Hot-pixel masking: per-pixel hit counts (one streaming pass), then Corryvreckan's
//! `MaskCreator` methods (`frequency`, `localdensity`) or the Heidelberg notebook's rule.
//!
//! - `frequency` (Corryvreckan `MaskCreator::finalize`): per detector, mean = total hits /
//!   (columns x rows); a pixel is masked if its count > `frequency_cut` x mean (strict).
//! - `localdensity` (Corryvreckan, taken from Proteus): per-axis bandwidth in pixels
//!   `ceil(density_bandwidth * (|pitch| / sqrt 2) / pitch_axis)`; local density = Epanechnikov
//!   weighted (w = 3/4 (1 - u^2), u^2 = (di/bw_c)^2 + (dj/bw_r)^2 <= 1, centre excluded, edges
//!   clipped) mean of the neighbours' counts; significance = (count - density) / sqrt(density);
//!   masked if significance > `sigma_above_avg_max` or count / events > `rate_max`.
//! - `notebook` (seed notebook "Masking"): one mean over all pixels of all planes, limit
//!   `int(round(factor x mean))`, masked if count > limit.

use caliper_core::error::RunError;
use caliper_core::mask::{MaskReason, PixelMask};
use caliper_core::pipeline::Analysis;
use serde::{Deserialize, Serialize};

use crate::event::{Event, PlaneMap};

/// Mask reason: found hot in this run.
pub const HOT: MaskReason = MaskReason::from_bit(0);
/// Mask reason: listed in the detector's `mask_file`.
pub const FROM_FILE: MaskReason = MaskReason::from_bit(1);

/// Which masking rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MaskMethod {
    /// No hot-pixel search (mask files still apply).
    None,
    /// Corryvreckan `frequency`: per detector, `frequency_cut` x that detector's mean.
    #[default]
    Frequency,
    /// Corryvreckan `localdensity`.
    Localdensity,
    /// The notebook: one mean over all planes, `notebook_factor` x mean.
    Notebook,
}

impl caliper_core::ConfigDocs for MaskMethod {}

/// Parameters of the masking rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskParams {
    /// The rule.
    pub method: MaskMethod,
    /// `frequency_cut` (Corryvreckan default 50).
    pub frequency_cut: f64,
    /// `density_bandwidth` (default 2).
    pub density_bandwidth: f64,
    /// `sigma_above_avg_max` (default 5).
    pub sigma_above_avg_max: f64,
    /// `rate_max` (default 1).
    pub rate_max: f64,
    /// The notebook's factor (100).
    pub notebook_factor: f64,
}

/// Hit counts of every hit pixel of every plane, and the number of events.
///
/// Kept sparse: per plane the pixels with at least one hit as (row-major index, count), sorted
/// by index. Counting a run costs O(hits log hits) and no per-pixel work (a dense 1024 x 512 x 7
/// count array is 15 MB to allocate, zero and fault in); [`Occupancy::dense`] builds a plane's
/// full array where one is needed (hit maps, `localdensity`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Occupancy {
    /// Per plane: (row * columns + column, hits), sorted by index, counts > 0.
    pub pixels: Vec<Vec<(u32, u32)>>,
    /// Per plane: (columns, rows).
    pub dims: Vec<(u16, u16)>,
    /// Events counted.
    pub events: u64,
    /// Hits counted.
    pub hits: u64,
}

impl Occupancy {
    /// An empty occupancy for these planes.
    pub fn new(planes: &PlaneMap) -> Self {
        Self {
            pixels: vec![Vec::new(); planes.len()],
            dims: (0..planes.len()).map(|p| planes.dims(p)).collect(),
            events: 0,
            hits: 0,
        }
    }

    /// Pixels of plane `p` (columns x rows).
    pub fn n_pixels(&self, p: usize) -> usize {
        let (c, r) = self.dims[p];
        usize::from(c) * usize::from(r)
    }

    /// The count of pixel `index` (row-major) of plane `p`.
    pub fn count(&self, p: usize, index: u32) -> u32 {
        let v = &self.pixels[p];
        v.binary_search_by_key(&index, |&(i, _)| i)
            .map_or(0, |k| v[k].1)
    }

    /// The full row-major count array of plane `p`.
    pub fn dense(&self, p: usize) -> Vec<u32> {
        let mut d = vec![0u32; self.n_pixels(p)];
        for &(i, n) in &self.pixels[p] {
            d[i as usize] = n;
        }
        d
    }

    /// Add another run's counts (same planes).
    pub fn add(&mut self, other: &Occupancy) {
        if self.pixels.is_empty() {
            *self = other.clone();
            return;
        }
        for (a, b) in self.pixels.iter_mut().zip(&other.pixels) {
            *a = merge_counts(a, b);
        }
        self.events += other.events;
        self.hits += other.hits;
    }
}

/// Two sorted (index, count) lists added.
fn merge_counts(a: &[(u32, u32)], b: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push((a[i].0, a[i].1 + b[j].1));
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Hits collected before they are sorted into the counts: bounds the memory of long runs
/// (8 bytes per hit, at most 64 MiB) while short runs are counted by one sort.
const COMPACT_AT: usize = 8 << 20;

/// The per-chunk state of [`OccupancyPass`]: hits as packed keys (plane << 32 | pixel index)
/// until compacted into sorted counts.
#[derive(Debug, Default)]
pub struct OccupancyPartial {
    keys: Vec<u64>,
    counted: Option<Occupancy>,
    events: u64,
}

/// A pass that counts hits per pixel (the masking input).
#[derive(Debug, Clone)]
pub struct OccupancyPass {
    /// The planes.
    pub planes: PlaneMap,
}

impl OccupancyPass {
    /// Sort the collected keys into the counts.
    fn compact(&self, p: &mut OccupancyPartial) {
        let occ = p
            .counted
            .get_or_insert_with(|| Occupancy::new(&self.planes));
        occ.events += p.events;
        p.events = 0;
        if p.keys.is_empty() {
            return;
        }
        occ.hits += p.keys.len() as u64;
        let np = occ.pixels.len();
        let mut fresh: Vec<Vec<(u32, u32)>> = vec![Vec::new(); np];
        let total_pixels: usize = (0..np).map(|q| occ.n_pixels(q)).sum();
        let offsets: Vec<usize> = (0..np)
            .scan(0, |o, q| {
                let here = *o;
                *o += occ.n_pixels(q);
                Some(here)
            })
            .collect();
        let mut ranks = Vec::new();
        if p.keys.len() > total_pixels / 8 {
            // Many hits: count them in a dense array and collect the non-zero pixels (one
            // pass over the pixels is cheaper than sorting this many keys).
            let mut dense = vec![0u32; total_pixels];
            for &key in &p.keys {
                dense[offsets[(key >> 32) as usize] + (key as u32) as usize] += 1;
            }
            for (q, f) in fresh.iter_mut().enumerate() {
                let plane = &dense[offsets[q]..offsets[q] + occ.n_pixels(q)];
                f.extend(
                    plane
                        .iter()
                        .enumerate()
                        .filter(|&(_, &n)| n > 0)
                        .map(|(i, &n)| (i as u32, n)),
                );
            }
        } else if radix_sorted_ranks(&p.keys, &offsets, total_pixels, occ, &mut ranks) {
            // The same runs as below, from the radix-sorted ranks.
            let mut q = 0;
            let mut k = 0;
            while k < ranks.len() {
                let rank = ranks[k];
                let start = k;
                while k < ranks.len() && ranks[k] == rank {
                    k += 1;
                }
                while rank as usize >= offsets[q] + occ.n_pixels(q) {
                    q += 1;
                }
                fresh[q].push((rank - offsets[q] as u32, (k - start) as u32));
            }
        } else {
            p.keys.sort_unstable();
            let mut k = 0;
            while k < p.keys.len() {
                let key = p.keys[k];
                let start = k;
                while k < p.keys.len() && p.keys[k] == key {
                    k += 1;
                }
                fresh[(key >> 32) as usize].push((key as u32, (k - start) as u32));
            }
        }
        for (a, b) in occ.pixels.iter_mut().zip(fresh) {
            *a = if a.is_empty() { b } else { merge_counts(a, &b) };
        }
        p.keys.clear();
    }
}

/// The keys (`plane << 32 | pixel index`) as ranks `offsets[plane] + index` in increasing
/// order (the order of the keys), by an LSD radix sort with 11-bit digits (two passes for up
/// to 4 M pixels): ~5x faster than sorting the keys for a run's worth of hits. `false` (and
/// nothing sorted) when a key is out of range or the ranks do not fit in a u32; the caller
/// then sorts the keys. A test compares both.
fn radix_sorted_ranks(
    keys: &[u64],
    offsets: &[usize],
    total: usize,
    occ: &Occupancy,
    out: &mut Vec<u32>,
) -> bool {
    if total == 0 || total > u32::MAX as usize {
        return false;
    }
    out.clear();
    out.reserve(keys.len());
    for &key in keys {
        let (q, idx) = ((key >> 32) as usize, key as u32 as usize);
        if q >= offsets.len() || idx >= occ.n_pixels(q) {
            return false;
        }
        out.push((offsets[q] + idx) as u32);
    }
    // 11-bit digits: the 2,048-entry count table (16 KB) stays in L1, and ranks below 2^32
    // take at most three passes (LSD radix sort).
    const BITS: u32 = 11;
    let bits = usize::BITS - (total - 1).leading_zeros();
    let mut tmp = vec![0u32; out.len()];
    let mut shift = 0;
    while shift < bits {
        let mut count = [0usize; 1 << BITS];
        for &r in out.iter() {
            count[((r >> shift) as usize) & ((1 << BITS) - 1)] += 1;
        }
        let mut sum = 0;
        for c in count.iter_mut() {
            (*c, sum) = (sum, sum + *c);
        }
        for &r in out.iter() {
            let d = ((r >> shift) as usize) & ((1 << BITS) - 1);
            tmp[count[d]] = r;
            count[d] += 1;
        }
        std::mem::swap(out, &mut tmp);
        shift += BITS;
    }
    true
}

impl Analysis<Event> for OccupancyPass {
    type Partial = OccupancyPartial;
    type Output = Occupancy;

    fn init(&self) -> OccupancyPartial {
        OccupancyPartial::default()
    }

    fn fold(&self, p: &mut OccupancyPartial, e: &Event, _index: u64) -> Result<(), RunError> {
        p.events += 1;
        for h in &e.hits {
            let cols = u32::from(self.planes.dims(h.plane as usize).0);
            let idx = u32::from(h.row) * cols + u32::from(h.col);
            p.keys.push((u64::from(h.plane) << 32) | u64::from(idx));
        }
        Ok(())
    }

    fn merge(&self, acc: &mut OccupancyPartial, mut next: OccupancyPartial) {
        acc.keys.append(&mut next.keys);
        acc.events += next.events;
        if let Some(n) = next.counted {
            match &mut acc.counted {
                None => acc.counted = Some(n),
                Some(a) => a.add(&n),
            }
        }
        if acc.keys.len() >= COMPACT_AT {
            self.compact(acc);
        }
    }

    fn finish(&self, mut acc: OccupancyPartial) -> Result<Occupancy, RunError> {
        self.compact(&mut acc);
        Ok(acc.counted.unwrap_or_else(|| Occupancy::new(&self.planes)))
    }
}

/// Builds the hot-pixel masks (reason [`HOT`]) of all planes from the hit counts. `pitch[p]`
/// is plane p's (column, row) pitch, needed by `localdensity`.
pub fn find_hot_pixels(
    occ: &Occupancy,
    planes: &PlaneMap,
    pitch: &[[f64; 2]],
    par: &MaskParams,
) -> Vec<PixelMask> {
    hot_pixels(occ, planes, pitch, par)
        .iter()
        .enumerate()
        .map(|(p, hot)| {
            let (c, r) = planes.dims(p);
            let mut m = PixelMask::new(usize::from(r), usize::from(c));
            for &i in hot {
                let _ = m.set(
                    i as usize / usize::from(c),
                    i as usize % usize::from(c),
                    HOT,
                );
            }
            m
        })
        .collect()
}

/// The hot pixels of every plane as row-major indices (`row * columns + column`), sorted.
///
/// Only pixels that were hit can be hot (every rule needs a count above a limit that is at
/// least zero, or a positive significance), so only those are visited; the means are the
/// sums over the hit pixels (= over every pixel) over the number of pixels.
pub fn hot_pixels(
    occ: &Occupancy,
    planes: &PlaneMap,
    pitch: &[[f64; 2]],
    par: &MaskParams,
) -> Vec<Vec<u32>> {
    let mut hot: Vec<Vec<u32>> = vec![Vec::new(); planes.len()];
    if occ.pixels.is_empty() {
        return hot;
    }
    let plane_total = |p: usize| -> u64 { occ.pixels[p].iter().map(|&(_, n)| u64::from(n)).sum() };
    let above = |p: usize, limit: f64| -> Vec<u32> {
        occ.pixels[p]
            .iter()
            .filter(|&&(_, n)| f64::from(n) > limit)
            .map(|&(i, _)| i)
            .collect()
    };
    match par.method {
        MaskMethod::None => {}
        MaskMethod::Frequency => {
            for (p, h) in hot.iter_mut().enumerate().take(occ.pixels.len()) {
                let mean = plane_total(p) as f64 / occ.n_pixels(p) as f64;
                *h = above(p, par.frequency_cut * mean);
            }
        }
        MaskMethod::Notebook => {
            let total: u64 = (0..occ.pixels.len()).map(plane_total).sum();
            let n: usize = (0..occ.pixels.len()).map(|p| occ.n_pixels(p)).sum();
            let mean = total as f64 / n as f64;
            // numpy rounds half to even; int(np.round(x)).
            let limit = round_half_even(par.notebook_factor * mean);
            for (p, h) in hot.iter_mut().enumerate().take(occ.pixels.len()) {
                *h = above(p, limit);
            }
        }
        MaskMethod::Localdensity => {
            for (p, h) in hot.iter_mut().enumerate().take(occ.pixels.len()) {
                let (cols, rows) = occ.dims[p];
                let touched: Vec<u32> = occ.pixels[p].iter().map(|&(i, _)| i).collect();
                *h = local_density(
                    &occ.dense(p),
                    &touched,
                    usize::from(cols),
                    usize::from(rows),
                    pitch[p],
                    occ.events,
                    par,
                );
            }
        }
    }
    hot
}

fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 {
        2.0 * (x / 2.0).round()
    } else {
        r
    }
}

/// The `localdensity` rule on one plane, evaluated at the hit pixels `touched` (a pixel with
/// no hits is never hot); returns the hot ones.
fn local_density(
    counts: &[u32],
    touched: &[u32],
    cols: usize,
    rows: usize,
    pitch: [f64; 2],
    events: u64,
    par: &MaskParams,
) -> Vec<u32> {
    let norm = (pitch[0].hypot(pitch[1])) / std::f64::consts::SQRT_2;
    let bw_c = (par.density_bandwidth * norm / pitch[0]).ceil().max(1.0) as i64;
    let bw_r = (par.density_bandwidth * norm / pitch[1]).ceil().max(1.0) as i64;
    // Kernel offsets and weights (centre excluded).
    let mut kernel = Vec::new();
    for dr in -bw_r..=bw_r {
        for dc in -bw_c..=bw_c {
            if dr == 0 && dc == 0 {
                continue;
            }
            let u2 = (dc as f64 / bw_c as f64).powi(2) + (dr as f64 / bw_r as f64).powi(2);
            if u2 <= 1.0 {
                kernel.push((dc, dr, 0.75 * (1.0 - u2)));
            }
        }
    }
    let events = events.max(1) as f64;
    let mut out = Vec::new();
    for &i in touched {
        let (r, c) = ((i as usize / cols) as i64, (i as usize % cols) as i64);
        let occ = f64::from(counts[i as usize]);
        if occ == 0.0 {
            continue;
        }
        let (mut sw, mut swx) = (0.0, 0.0);
        for &(dc, dr, w) in &kernel {
            let (cc, rr) = (c + dc, r + dr);
            if cc < 0 || rr < 0 || cc >= cols as i64 || rr >= rows as i64 {
                continue;
            }
            sw += w;
            swx += w * f64::from(counts[rr as usize * cols + cc as usize]);
        }
        let density = if sw > 0.0 { swx / sw } else { 0.0 };
        let significance = if density > 0.0 {
            (occ - density) / density.sqrt()
        } else {
            f64::INFINITY
        };
        if significance > par.sigma_above_avg_max || occ / events > par.rate_max {
            out.push(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::PixelHit;
    use caliper_core::instrument::NoProgress;
    use caliper_core::pipeline::{IterSource, PassOptions, run_pass};

    fn params(method: MaskMethod) -> MaskParams {
        MaskParams {
            method,
            frequency_cut: 50.0,
            density_bandwidth: 2.0,
            sigma_above_avg_max: 5.0,
            rate_max: 1.0,
            notebook_factor: 100.0,
        }
    }

    fn occupancy(events: Vec<Event>, threads: usize) -> Occupancy {
        occupancy_on(
            events,
            threads,
            PlaneMap::new(vec![("a_0".into(), 8, 4), ("a_1".into(), 8, 4)]),
        )
    }

    fn occupancy_on(events: Vec<Event>, threads: usize, planes: PlaneMap) -> Occupancy {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut src = IterSource::new(events.into_iter().map(Ok));
            let pass = OccupancyPass { planes };
            let opts = PassOptions {
                chunk_events: 3,
                ..PassOptions::default()
            };
            run_pass(&mut src, &pass, &opts, &NoProgress)
                .unwrap()
                .output
        })
    }

    #[test]
    fn frequency_and_notebook_rules_on_hand_counts() {
        // Plane 0: pixel (1,1) fires in 40 events; plane 1: pixel (2,3) fires in every event
        // and (5,0) in 4 events.
        let events: Vec<Event> = (0..40)
            .map(|i| {
                let mut hits = vec![PixelHit {
                    plane: 0,
                    col: 1,
                    row: 1,
                    charge: 1.0,
                    time: 0.0,
                }];
                hits.push(PixelHit {
                    plane: 1,
                    col: 2,
                    row: 3,
                    charge: 1.0,
                    time: 0.0,
                });
                if i % 10 == 0 {
                    hits.push(PixelHit {
                        plane: 1,
                        col: 5,
                        row: 0,
                        charge: 1.0,
                        time: 0.0,
                    });
                }
                Event {
                    number: i,
                    hits,
                    ..Event::default()
                }
            })
            .collect();
        let occ = occupancy(events.clone(), 1);
        let occ4 = occupancy(events, 4);
        assert_eq!(occ, occ4);
        assert_eq!(occ.events, 40);
        assert_eq!(occ.count(0, 8 + 1), 40);
        assert_eq!(occ.count(1, 3 * 8 + 2), 40);
        let planes = PlaneMap::new(vec![("a_0".into(), 8, 4), ("a_1".into(), 8, 4)]);
        let pitch = [[0.03, 0.03]; 2];
        // frequency, cut 20: plane 1 mean = 44/32 = 1.375, limit 27.5: only (2,3).
        let mut par = params(MaskMethod::Frequency);
        par.frequency_cut = 20.0;
        let m = find_hot_pixels(&occ, &planes, &pitch, &par);
        assert_eq!(m[0].count_masked(), 1);
        assert_eq!(m[1].count_masked(), 1);
        assert!(m[1].has(3, 2, HOT));
        // notebook, factor 2: global mean 84/64 = 1.3125, limit round(2.625) = 3: masks 40, 40, 4.
        let mut par = params(MaskMethod::Notebook);
        par.notebook_factor = 2.0;
        let m = find_hot_pixels(&occ, &planes, &pitch, &par);
        assert_eq!(m[0].count_masked() + m[1].count_masked(), 3);
        par.notebook_factor = 3.0; // limit round(3.9375) = 4: 4 is not > 4
        let m = find_hot_pixels(&occ, &planes, &pitch, &par);
        assert_eq!(m[0].count_masked() + m[1].count_masked(), 2);
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(3.5), 4.0);
    }

    #[test]
    fn local_density_flags_a_spike_over_a_flat_background() {
        // Flat 10 counts everywhere, one pixel at 100: significance (100-10)/sqrt(10) = 28 > 5.
        let (cols, rows) = (16usize, 8usize);
        let mut counts = vec![10u32; cols * rows];
        counts[3 * cols + 7] = 100;
        counts[5 * cols + 2] = 19; // (19-10)/sqrt(10) = 2.85 < 5
        let all: Vec<u32> = (0..(cols * rows) as u32).collect();
        let hot = local_density(
            &counts,
            &all,
            cols,
            rows,
            [0.02924, 0.02688],
            1000,
            &params(MaskMethod::Localdensity),
        );
        assert_eq!(hot, vec![(3 * cols + 7) as u32]);
    }

    #[test]
    fn radix_sorted_ranks_follow_the_sorted_keys() {
        // Random keys (with repeats) on planes of different sizes, two (20-bit ranks) and
        // three (24-bit) radix passes: the ranks are exactly the sorted keys mapped to
        // offset + index; an out-of-range pixel index or plane is refused.
        let mut rng = caliper_core::testing::TestRng::new(7u64);
        let mut rnd = |m: u64| rng.below(m);
        for dims in [
            vec![
                ("a_0".to_string(), 1024u16, 512u16),
                ("a_1".into(), 64, 32),
                ("a_2".into(), 7, 3),
            ],
            vec![("a_0".to_string(), 4096, 2048), ("a_1".into(), 1024, 512)],
        ] {
            let planes = PlaneMap::new(dims);
            let occ = Occupancy::new(&planes);
            let np = occ.pixels.len();
            let offsets: Vec<usize> = (0..np)
                .scan(0, |o, q| {
                    let here = *o;
                    *o += occ.n_pixels(q);
                    Some(here)
                })
                .collect();
            let total: usize = (0..np).map(|q| occ.n_pixels(q)).sum();
            let mut keys: Vec<u64> = (0..20_000)
                .map(|_| {
                    let q = rnd(np as u64);
                    let idx = if rnd(5) == 0 {
                        rnd(10) // repeats
                    } else {
                        rnd(occ.n_pixels(q as usize) as u64)
                    };
                    (q << 32) | idx
                })
                .collect();
            let mut ranks = Vec::new();
            assert!(radix_sorted_ranks(&keys, &offsets, total, &occ, &mut ranks));
            keys.sort_unstable();
            let expect: Vec<u32> = keys
                .iter()
                .map(|&k| (offsets[(k >> 32) as usize] + (k as u32) as usize) as u32)
                .collect();
            assert_eq!(ranks, expect);
            let bad = [(1u64 << 32) | occ.n_pixels(1) as u64];
            assert!(!radix_sorted_ranks(&bad, &offsets, total, &occ, &mut ranks));
            let bad = [(np as u64) << 32];
            assert!(!radix_sorted_ranks(&bad, &offsets, total, &occ, &mut ranks));
        }
    }

    #[test]
    fn sparse_counts_and_hit_pixel_search_equal_a_dense_full_scan() {
        // Random sparse hits on 2 planes of 64 x 32 with a few hot pixels: the sorted sparse
        // counts (1 and 3 threads, and two halves added) equal a plain dense count of the
        // events, and the hot-pixel search over the hit pixels gives exactly what a plain scan
        // over every pixel of the dense counts gives (frequency and notebook written out here;
        // localdensity evaluated at every pixel).
        let mut rng = caliper_core::testing::TestRng::new(99u64);
        let mut rnd = |m: u64| rng.below(m);
        let (cols, rows) = (64usize, 32usize);
        let planes = PlaneMap::new(vec![("a_0".into(), 64, 32), ("a_1".into(), 64, 32)]);
        let mut events = Vec::new();
        let mut dense = vec![vec![0u32; cols * rows]; 2];
        for n in 0..3000u64 {
            let mut hits = Vec::new();
            for _ in 0..rnd(4) {
                let plane = rnd(2) as u16;
                let (col, row) = if rnd(10) == 0 {
                    (5 + rnd(3) as u16, 7)
                } else {
                    (rnd(cols as u64) as u16, rnd(rows as u64) as u16)
                };
                dense[plane as usize][usize::from(row) * cols + usize::from(col)] += 1;
                hits.push(PixelHit {
                    plane,
                    col,
                    row,
                    charge: 1.0,
                    time: 0.0,
                });
            }
            events.push(Event {
                number: n,
                hits,
                ref_clusters: Vec::new(),
            });
        }
        let occ = occupancy_on(events.clone(), 1, planes.clone());
        assert_eq!(occ, occupancy_on(events.clone(), 3, planes.clone()));
        let mut halves = occupancy_on(events[..1234].to_vec(), 1, planes.clone());
        halves.add(&occupancy_on(events[1234..].to_vec(), 2, planes.clone()));
        assert_eq!(occ, halves);
        for (p, d) in dense.iter().enumerate() {
            assert_eq!(&occ.dense(p), d);
        }
        // Both ways of counting: few hits (fewer than 1/8 of the pixels) are sorted, many are
        // counted in a dense array; here 40 events (~60 hits, sorted) and all (~4,500, dense).
        let few = occupancy_on(events[..40].to_vec(), 2, planes.clone());
        assert!(few.hits > 0 && few.hits < (2 * cols * rows / 8) as u64);
        assert!(occ.hits > (2 * cols * rows / 8) as u64);
        let mut few_dense = vec![vec![0u32; cols * rows]; 2];
        for e in &events[..40] {
            for h in &e.hits {
                few_dense[h.plane as usize][usize::from(h.row) * cols + usize::from(h.col)] += 1;
            }
        }
        for (p, d) in few_dense.iter().enumerate() {
            assert_eq!(&few.dense(p), d);
        }
        let pitch = [[0.02924, 0.02688]; 2];
        let all: Vec<u32> = (0..(cols * rows) as u32).collect();
        let total: u64 = dense.iter().flatten().map(|&c| u64::from(c)).sum();
        for (method, cut) in [
            (MaskMethod::Frequency, 3.0),
            (MaskMethod::Notebook, 3.0),
            (MaskMethod::Localdensity, 0.0),
        ] {
            let mut par = params(method);
            par.frequency_cut = cut;
            par.notebook_factor = cut;
            let fast = hot_pixels(&occ, &planes, &pitch, &par);
            let plain: Vec<Vec<u32>> = dense
                .iter()
                .map(|c| {
                    let limit = match method {
                        MaskMethod::Frequency => {
                            cut * c.iter().map(|&x| f64::from(x)).sum::<f64>() / c.len() as f64
                        }
                        MaskMethod::Notebook => {
                            round_half_even(cut * total as f64 / (2 * c.len()) as f64)
                        }
                        _ => {
                            return local_density(c, &all, cols, rows, pitch[0], occ.events, &par);
                        }
                    };
                    (0..c.len() as u32)
                        .filter(|&i| f64::from(c[i as usize]) > limit)
                        .collect()
                })
                .collect();
            assert_eq!(fast, plain, "{method:?}");
            assert!(
                fast.iter().any(|h| !h.is_empty()),
                "{method:?}: nothing hot"
            );
        }
    }
}
