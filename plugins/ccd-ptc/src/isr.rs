//! Instrument-signature removal per amplifier: serial overscan (per-row median, mean or
//! clipped mean of the overscan columns, skipping the first few), optional parallel overscan
//! (per-column median), optional master bias, trim to DATASEC, edge mask.
//!
//! Conventions: eotest `MaskedCCD.unbiased_and_trimmed_image` with the `'row'` method uses the
//! mean of overscan columns `[xmax+1+dxmin : NAXIS1-dxmax]`, dxmin = 5, dxmax = 2; cp_pipe's
//! default overscan fit is `MEDIAN_PER_ROW`; cp_pipe's PTC pipelines flag 20 px per amp edge
//! as SUSPECT (`numEdgeSuspect`, `edgeMaskLevel = AMP`), the older `ptcIsr.py` 10
//! (`shared/specs/ptc.md`, sections 1 and 4). The edge mask is applied by cropping, which is the
//! same as excluding the masked pixels from every statistic.

use serde::{Deserialize, Serialize};

use crate::clip::IntHist;
use crate::io::lsst::SegmentGeometry;

/// How the serial overscan level of a row is estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OverscanMethod {
    /// Median of the row's overscan pixels (cp_pipe `MEDIAN_PER_ROW`).
    #[default]
    MedianPerRow,
    /// Mean of the row's overscan pixels (eotest `'row'`).
    MeanPerRow,
    /// 3-sigma clipped mean (3 iterations around the median) of the row's overscan pixels.
    ClippedMeanPerRow,
    /// One median over the whole overscan region.
    Median,
}
impl caliper_core::ConfigDocs for OverscanMethod {}

/// ISR settings (see `config.rs` for the user-facing docs).
#[derive(Debug, Clone, PartialEq)]
pub struct IsrSettings {
    /// Serial overscan estimator.
    pub method: OverscanMethod,
    /// Overscan columns skipped next to the imaging area (eotest dxmin = 5).
    pub skip_first: usize,
    /// Overscan columns skipped at the far end (eotest dxmax = 2).
    pub skip_last: usize,
    /// Subtract a per-column parallel overscan median after the serial correction.
    pub parallel: bool,
    /// Parallel overscan rows skipped next to the imaging area.
    pub parallel_skip: usize,
    /// Pixels masked along every edge of the trimmed amplifier.
    pub edge: usize,
}

impl Default for IsrSettings {
    fn default() -> Self {
        Self {
            method: OverscanMethod::MedianPerRow,
            skip_first: 5,
            skip_last: 2,
            parallel: false,
            parallel_skip: 5,
            edge: 10,
        }
    }
}

/// What ISR measured on one amplifier.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IsrMeasure {
    /// Mean serial overscan level (ADU).
    pub overscan_level: f64,
    /// Standard deviation of the overscan pixels about the per-row model (ADU): the read
    /// noise in ADU (cp_pipe `LSST ISR OVERSCAN RESIDUAL SERIAL STDEV`).
    pub overscan_noise: f64,
    /// Output width.
    pub nx: usize,
    /// Output height.
    pub ny: usize,
}

/// Problems of an ISR setup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsrError {
    /// Overscan columns left after skipping.
    #[error(
        "segment '{name}': the serial overscan has {width} columns, fewer than skip_first + skip_last + 1 = {need}"
    )]
    Overscan {
        /// Segment.
        name: String,
        /// Width.
        width: usize,
        /// Needed.
        need: usize,
    },
    /// The edge mask leaves nothing.
    #[error(
        "segment '{name}': an edge mask of {edge} px leaves no pixel of the {nx} x {ny} imaging area"
    )]
    Edge {
        /// Segment.
        name: String,
        /// Edge.
        edge: usize,
        /// Width.
        nx: usize,
        /// Height.
        ny: usize,
    },
    /// Master bias of another shape.
    #[error("segment '{name}': master bias has {got} pixels after ISR, the flat {expected}")]
    BiasShape {
        /// Segment.
        name: String,
        /// Got.
        got: usize,
        /// Expected.
        expected: usize,
    },
}

fn median_f32(v: &mut [f32]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let (_, m, _) = v.select_nth_unstable_by(n / 2, |a, b| a.total_cmp(b));
    let hi = *m as f64;
    if n % 2 == 1 {
        hi
    } else {
        let lo = v[..n / 2].iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        0.5 * (lo + hi)
    }
}

/// `f32::total_cmp` order as an `i32` key (the same transform `total_cmp` applies), and back.
fn total_key(x: f32) -> i32 {
    let b = x.to_bits() as i32;
    b ^ (((b >> 31) as u32) >> 1) as i32
}

fn from_total_key(k: i32) -> f32 {
    f32::from_bits((k ^ (((k >> 31) as u32) >> 1) as i32) as u32)
}

/// [`median_f32`] of a row through integer keys (same order, same value; the integer
/// selection is ~2x faster than selecting with `total_cmp` on a 47-value overscan row).
/// `keys` is scratch.
fn median_row(row: &[f32], keys: &mut Vec<i32>) -> f64 {
    let n = row.len();
    if n == 0 {
        return f64::NAN;
    }
    keys.clear();
    keys.extend(row.iter().map(|&x| total_key(x)));
    let (below, m, _) = keys.select_nth_unstable(n / 2);
    let hi = from_total_key(*m) as f64;
    if n % 2 == 1 {
        hi
    } else {
        // The lower half holds the same values as in `median_f32`: fold them the same way.
        let lo = below
            .iter()
            .map(|&k| from_total_key(k))
            .fold(f32::NEG_INFINITY, f32::max) as f64;
        0.5 * (lo + hi)
    }
}

fn row_level(v: &mut [f32], method: OverscanMethod) -> f64 {
    match method {
        OverscanMethod::MedianPerRow | OverscanMethod::Median => median_f32(v),
        OverscanMethod::MeanPerRow => v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64,
        OverscanMethod::ClippedMeanPerRow => {
            let mut c = median_f32(v);
            let mut mean = c;
            for _ in 0..3 {
                let (mut n, mut s, mut s2) = (0.0, 0.0, 0.0);
                for &x in v.iter() {
                    let d = x as f64 - c;
                    n += 1.0;
                    s += d;
                    s2 += d * d;
                }
                let sd = (s2 / n - (s / n) * (s / n)).max(0.0).sqrt();
                let (mut k, mut t) = (0.0, 0.0);
                for &x in v.iter() {
                    if ((x as f64) - c).abs() <= 3.0 * sd {
                        k += 1.0;
                        t += x as f64;
                    }
                }
                if k == 0.0 {
                    break;
                }
                mean = t / k;
                c = mean;
            }
            mean
        }
    }
}

/// Where ISR reads a raw segment (row-major NAXIS1 x NAXIS2) from.
#[derive(Debug, Clone, Copy)]
pub enum RawPixels<'a> {
    /// Decoded pixels.
    F32(&'a [f32]),
    /// Big-endian int32 pixels of a plain FITS image with BZERO 0 and BSCALE 1, decoded on
    /// the fly (`v as f32`, the values `FitsFile::read_image_f32` gives): saves writing and
    /// re-reading a decoded copy of the whole segment.
    BeI32(&'a [u8]),
}

impl RawPixels<'_> {
    /// Pixel `i` (row-major index).
    fn at(&self, i: usize) -> f32 {
        match self {
            RawPixels::F32(v) => v[i],
            RawPixels::BeI32(b) => {
                i32::from_be_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]) as f32
            }
        }
    }

    /// Append pixels `start..start + len` to `out`.
    fn extend_row(&self, start: usize, len: usize, out: &mut Vec<f32>) {
        match self {
            RawPixels::F32(v) => out.extend_from_slice(&v[start..start + len]),
            RawPixels::BeI32(b) => {
                let old = out.len();
                out.resize(old + len, 0.0);
                crate::io::fits::decode_i32_be(&b[4 * start..4 * (start + len)], &mut out[old..]);
            }
        }
    }
}

/// Run ISR on one raw segment (`raw`, NAXIS1 x NAXIS2 row-major) into `out` (the trimmed,
/// edge-cropped imaging area). `bias` is an already ISR'd master-bias amplifier of the same
/// output shape. `scratch` is reused across calls.
pub fn isr_amp(
    raw: &[f32],
    g: &SegmentGeometry,
    s: &IsrSettings,
    bias: Option<&[f32]>,
    out: &mut Vec<f32>,
    scratch: &mut Vec<f32>,
) -> Result<IsrMeasure, IsrError> {
    isr_amp_pixels(RawPixels::F32(raw), g, s, bias, out, scratch)
}

/// [`isr_amp`] reading the raw segment from `raw` (decoded or big-endian int32); both give
/// bit-identical results (tested).
pub fn isr_amp_pixels(
    raw: RawPixels<'_>,
    g: &SegmentGeometry,
    s: &IsrSettings,
    bias: Option<&[f32]>,
    out: &mut Vec<f32>,
    scratch: &mut Vec<f32>,
) -> Result<IsrMeasure, IsrError> {
    isr_amp_pixels_hist(raw, g, s, bias, out, scratch, None)
}

/// [`isr_amp_pixels`] that also fills `hist` (when given) with the unit histogram of the
/// output where the clipped statistics would use one (see [`IntHist`]; otherwise `hist` is
/// left invalid): pass it to [`crate::clip::afw_clipped_stats_f32_prebuilt`]. Same output.
pub fn isr_amp_pixels_hist(
    raw: RawPixels<'_>,
    g: &SegmentGeometry,
    s: &IsrSettings,
    bias: Option<&[f32]>,
    out: &mut Vec<f32>,
    scratch: &mut Vec<f32>,
    mut hist: Option<&mut IntHist>,
) -> Result<IsrMeasure, IsrError> {
    if let Some(h) = hist.as_deref_mut() {
        h.invalidate();
    }
    let nx_raw = g.shape[0];
    let ov = g.serial_overscan;
    let c0 = ov.x0 + s.skip_first;
    let c1 = ov.x1.saturating_sub(s.skip_last);
    if c1 <= c0 {
        return Err(IsrError::Overscan {
            name: g.name.clone(),
            width: ov.width(),
            need: s.skip_first + s.skip_last + 1,
        });
    }
    let d = g.datasec;
    let (x0, x1) = (d.x0 + s.edge, d.x1.saturating_sub(s.edge));
    let (y0, y1) = (d.y0 + s.edge, d.y1.saturating_sub(s.edge));
    if x1 <= x0 || y1 <= y0 {
        return Err(IsrError::Edge {
            name: g.name.clone(),
            edge: s.edge,
            nx: d.width(),
            ny: d.height(),
        });
    }
    let (nx, ny) = (x1 - x0, y1 - y0);
    if let RawPixels::BeI32(bytes) = raw {
        // A master bias makes the image non-integer: no histogram then.
        let h = if bias.is_none() { hist } else { None };
        if let Some(m) = isr_median_rows_i32(bytes, g, s, (c0, c1), (x0, x1, y0, y1), out, h) {
            subtract_bias(g, bias, out)?;
            return Ok(m);
        }
    }
    // Per-row serial overscan levels for every raw row that has overscan pixels.
    let rows = ov.y0..ov.y1;
    let mut levels = vec![f64::NAN; g.shape[1]];
    let whole = if s.method == OverscanMethod::Median {
        scratch.clear();
        for r in rows.clone() {
            raw.extend_row(r * nx_raw + c0, c1 - c0, scratch);
        }
        Some(median_f32(scratch))
    } else {
        None
    };
    let (mut sum_l, mut sum_r2, mut n_r) = (0.0f64, 0.0f64, 0usize);
    let mut keys = Vec::with_capacity(c1 - c0);
    let mut rowbuf = Vec::with_capacity(c1 - c0);
    // Rows of the parallel overscan also need a serial level when it is used.
    let extra = if s.parallel {
        g.parallel_overscan.y0..g.parallel_overscan.y1
    } else {
        0..0
    };
    for r in rows.clone().chain(extra.filter(|r| !rows.contains(r))) {
        rowbuf.clear();
        raw.extend_row(r * nx_raw + c0, c1 - c0, &mut rowbuf);
        let row = &rowbuf[..];
        let lev = match whole {
            Some(w) => w,
            None if s.method == OverscanMethod::MedianPerRow => median_row(row, &mut keys),
            None => {
                scratch.clear();
                scratch.extend_from_slice(row);
                row_level(scratch, s.method)
            }
        };
        levels[r] = lev;
        if rows.contains(&r) {
            sum_l += lev;
            for &v in row {
                let e = v as f64 - lev;
                sum_r2 += e * e;
            }
            n_r += row.len();
        }
    }
    out.clear();
    out.reserve(nx * ny);
    for r in y0..y1 {
        // Rows of DATASEC outside the overscan rows fall back to the nearest overscan row.
        let lev = if levels[r].is_finite() {
            levels[r]
        } else {
            levels[r.clamp(ov.y0, ov.y1.saturating_sub(1))]
        } as f32;
        match raw {
            RawPixels::F32(v) => {
                out.extend(v[r * nx_raw + x0..r * nx_raw + x1].iter().map(|&v| v - lev))
            }
            RawPixels::BeI32(_) => {
                let old = out.len();
                raw.extend_row(r * nx_raw + x0, nx, out);
                out[old..].iter_mut().for_each(|v| *v -= lev);
            }
        }
    }
    if s.parallel && g.parallel_overscan.height() > s.parallel_skip {
        let p = g.parallel_overscan;
        let mut col = Vec::with_capacity(p.height());
        for (k, c) in (x0..x1).enumerate() {
            col.clear();
            for (r, &l) in levels
                .iter()
                .enumerate()
                .take(p.y1)
                .skip(p.y0 + s.parallel_skip)
            {
                let lev = if l.is_finite() { l } else { 0.0 };
                col.push((raw.at(r * nx_raw + c) as f64 - lev) as f32);
            }
            let m = median_f32(&mut col) as f32;
            for r in 0..ny {
                out[r * nx + k] -= m;
            }
        }
    }
    subtract_bias(g, bias, out)?;
    let nrows = ov.height().max(1) as f64;
    Ok(IsrMeasure {
        overscan_level: sum_l / nrows,
        // One degree of freedom per row goes into the row's level (all of them, for the
        // single-median method): without it a 13-column overscan reads 4 % low.
        overscan_noise: {
            let dof = if s.method == OverscanMethod::Median {
                n_r.saturating_sub(1)
            } else {
                n_r.saturating_sub(ov.height())
            };
            if dof > 0 {
                (sum_r2 / dof as f64).sqrt()
            } else {
                f64::NAN
            }
        },
        nx,
        ny,
    })
}

fn subtract_bias(
    g: &SegmentGeometry,
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<(), IsrError> {
    if let Some(b) = bias {
        if b.len() != out.len() {
            return Err(IsrError::BiasShape {
                name: g.name.clone(),
                got: b.len(),
                expected: out.len(),
            });
        }
        out.iter_mut().zip(b).for_each(|(o, &b)| *o -= b);
    }
    Ok(())
}

/// Big-endian int32 pixel `i` of `b`.
#[inline(always)]
fn be_at(b: &[u8], i: usize) -> i32 {
    i32::from_be_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

/// The `k`-th smallest (0-based) of `v` (not empty, `k < v.len()`), by bisection on the value
/// between `lo` and `hi` (the minimum and maximum): the smallest `t` with at least `k + 1`
/// values `<= t`. Each step is one branch-free counting pass (vectorised), so a 47-value
/// overscan row with a few dozen ADU of spread takes ~6 passes instead of a branchy
/// selection.
fn kth_i32(v: &[i32], k: usize, mut lo: i32, mut hi: i32) -> i32 {
    while lo < hi {
        let mid = ((lo as i64 + hi as i64).div_euclid(2)) as i32;
        let le: u32 = v.iter().map(|&x| (x <= mid) as u32).sum();
        if le as usize > k {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// Decode `nx` big-endian int32 pixels from `b` and subtract `lev` (f32): the same IEEE
/// operations as decoding to f32 first and subtracting (`v as f32 - lev`). SSE2 on x86_64,
/// else portable ([`decode_sub_row_scalar`]; tested against each other).
fn decode_sub_row(b: &[u8], lev: f32, out: &mut [f32]) {
    let n = out.len().min(b.len() / 4);
    #[cfg(target_arch = "x86_64")]
    let done = {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is always available on x86_64 (register operation only).
        let lv = unsafe { _mm_set1_ps(lev) };
        crate::io::fits::be_i32x4_blocks(b, n, |i, v| {
            // SAFETY: SSE2 is always available on x86_64; i + 4 <= n <= out.len()
            // (unaligned store).
            unsafe { _mm_storeu_ps(out.as_mut_ptr().add(i), _mm_sub_ps(_mm_cvtepi32_ps(v), lv)) };
        })
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    decode_sub_row_scalar(&b[4 * done..4 * n], lev, &mut out[done..n]);
}

/// Hint the cache to load `b` (every 64th byte): SSE `prefetcht0` on x86_64, nothing
/// elsewhere. No effect on results.
#[inline(always)]
fn prefetch(b: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for i in (0..b.len()).step_by(64) {
        use std::arch::x86_64::*;
        // SAFETY: SSE is part of the x86_64 baseline; the address is inside `b` (a prefetch
        // never faults anyway).
        unsafe { _mm_prefetch::<_MM_HINT_T0>(b.as_ptr().add(i) as *const i8) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = b;
}

/// Big-endian int32 to i32: SSE2 byte swap on x86_64, else portable
/// ([`decode_i32_row_scalar`]; tested against each other).
fn decode_i32_row(b: &[u8], out: &mut [i32]) {
    let n = out.len().min(b.len() / 4);
    #[cfg(target_arch = "x86_64")]
    let done = crate::io::fits::be_i32x4_blocks(b, n, |i, v| {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is always available on x86_64; i + 4 <= n <= out.len() (unaligned
        // store).
        unsafe { _mm_storeu_si128(out.as_mut_ptr().add(i) as *mut __m128i, v) };
    });
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    decode_i32_row_scalar(&b[4 * done..4 * n], &mut out[done..n]);
}

/// Portable twin of [`decode_i32_row`].
fn decode_i32_row_scalar(b: &[u8], out: &mut [i32]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = be_at(b, i);
    }
}

/// Portable twin of [`decode_sub_row`].
fn decode_sub_row_scalar(b: &[u8], lev: f32, out: &mut [f32]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = be_at(b, i) as f32 - lev;
    }
}

/// The common LSST case of [`isr_amp_pixels`]: big-endian int32 pixels, median per row, no
/// parallel overscan, DATASEC rows inside the overscan rows. One pass over the raw rows, each
/// read once while in cache (its overscan and imaging pixels are neighbours in the file): the
/// row's overscan level (the median taken on the integers by [`kth_i32`]; `i32 -> f32` is
/// monotone, so it is the f32 median of the generic path, bit for bit), then the row's
/// trimmed pixels decoded and corrected, and — when `hist` is given and the image is
/// integer-valued (odd overscan width, no master bias) — counted into the unit histogram the
/// clipped statistics would build ([`IntHist`]): counted against a provisional edge from the
/// first row, with the sample `build_hist` would take collected on the way, and moved to the
/// planned edge at the end ([`IntHist::finish_planned`]). The overscan noise sum is
/// accumulated exactly in integers (twice the residuals, squared): the generic path's
/// sequential f64 sum of the same terms is exact too as long as every value is below 2^24 in
/// magnitude and the total below 2^51 (every term and partial sum a multiple of 1/4 below
/// 2^51), so both give the same bits; outside those bounds `None` and the generic path runs
/// (and rewrites `out`). `None` also for any other setup. Tested bit for bit against the
/// generic path.
#[allow(clippy::too_many_arguments)]
fn isr_median_rows_i32(
    bytes: &[u8],
    g: &SegmentGeometry,
    s: &IsrSettings,
    (c0, c1): (usize, usize),
    (x0, x1, y0, y1): (usize, usize, usize, usize),
    out: &mut Vec<f32>,
    mut hist: Option<&mut IntHist>,
) -> Option<IsrMeasure> {
    let ov = g.serial_overscan;
    let nx_raw = g.shape[0];
    if s.method != OverscanMethod::MedianPerRow
        || s.parallel
        || y0 < ov.y0
        || y1 > ov.y1
        || c1 > nx_raw
        || x1 > nx_raw
        || ov.y1 * nx_raw * 4 > bytes.len()
        || c1 - c0 > 4096
    {
        return None;
    }
    let (nx, ny) = (x1 - x0, y1 - y0);
    let n = nx * ny;
    let w = c1 - c0;
    let mut row = [0i32; 4096];
    let row = &mut row[..w];
    let (mut sum_l, mut sum_m2) = (0.0f64, 0u128);
    // The unit histogram: only for integer output (integer levels; the values are then
    // exact integers `v - level`). `lo`: its provisional edge, set at the first row.
    let counting = w % 2 == 1 && nx <= 4096;
    if let Some(h) = hist.as_deref_mut() {
        h.invalidate();
    }
    let mut hist = hist.filter(|_| counting);
    let mut lo: Option<i32> = None;
    let step = crate::clip::sample_step(n);
    let mut sample: Vec<f32> = Vec::new();
    if hist.is_some() {
        sample.reserve(n / step + 1);
    }
    // Every element of `out` is written; a recycled buffer of the right size is not
    // refilled first.
    out.resize(n, 0.0);
    // The whole raw row two rows (~4.6 kB on e2v) ahead: 1 to 8 rows measured the same.
    let ahead = 2;
    let (p0, p1) = (x0.min(c0), x1.max(c1));
    let mut idx = [0u16; 4096];
    for r in ov.y0..ov.y1 {
        let base = r * nx_raw;
        if r + ahead < ov.y1 {
            let b = (r + ahead) * nx_raw;
            prefetch(&bytes[4 * (b + p0)..4 * (b + p1)]);
        }
        decode_i32_row(&bytes[4 * (base + c0)..4 * (base + c1)], row);
        let mn = row.iter().copied().fold(i32::MAX, i32::min);
        let mx = row.iter().copied().fold(i32::MIN, i32::max);
        // |v| < 2^24: f32 holds every value exactly (see the exactness argument above).
        if mn <= -(1 << 24) || mx >= 1 << 24 {
            return None;
        }
        let hi = kth_i32(row, w / 2, mn, mx);
        // Twice the level, an integer: the median or the sum of the two middle values.
        let (lev, lev2) = if w % 2 == 1 {
            (hi as f32 as f64, 2 * hi as i64)
        } else {
            let lo = kth_i32(row, w / 2 - 1, mn, hi);
            (
                0.5 * (lo as f32 as f64 + hi as f32 as f64),
                lo as i64 + hi as i64,
            )
        };
        sum_l += lev;
        // |m| < 2^26 and at most 4096 terms: the u64 row sum is exact.
        let mut m2 = 0u64;
        for &v in row.iter() {
            let m = 2 * v as i64 - lev2;
            m2 = m2.wrapping_add(m.wrapping_mul(m) as u64);
        }
        sum_m2 += m2 as u128;
        if !(y0..y1).contains(&r) {
            continue;
        }
        let o = (r - y0) * nx;
        let src = &bytes[4 * (base + x0)..4 * (base + x1)];
        let lev = lev as f32;
        match hist.as_deref_mut() {
            Some(h) => {
                // The provisional edge: the first row's median value, centred in the bins.
                let lo = *lo.get_or_insert_with(|| {
                    let v: Vec<i32> = (0..nx).map(|i| be_at(src, i)).collect();
                    let (mn, mx) = (v.iter().copied().min(), v.iter().copied().max());
                    let med = kth_i32(&v, nx / 2, mn.unwrap_or(0), mx.unwrap_or(0));
                    // Within +-2^21, inside the +-2^22 `IntHist::start` accepts (a provisional
                    // edge that far out only means the counts end up invalid: values beyond
                    // +-2^22 ADU are outside every valid unit histogram anyway).
                    let l = (med as i64 - lev2 / 2 - (crate::clip::UNIT_BINS / 2) as i64)
                        .clamp(-(1 << 21), 1 << 21) as i32;
                    h.start(n, l);
                    l
                });
                // Bin of x = v - lev: clamp(x - lo, -1, NB) + 1 (integers, as `Binning::bin`
                // computes it in f32 for unit bins).
                let off = lev2 / 2 + lo as i64 - 1;
                let idx = &mut idx[..nx];
                decode_sub_row_bins(src, lev, off, &mut out[o..o + nx], idx);
                crate::clip::count_bins(&mut h.tables(), idx);
                // The sample `build_hist` would take: every step-th value of the image.
                let first = o.div_ceil(step) * step;
                sample.extend((first..o + nx).step_by(step).map(|i| out[i]));
            }
            None => decode_sub_row(src, lev, &mut out[o..o + nx]),
        }
    }
    if sum_m2 >= 1u128 << 53 {
        return None;
    }
    if let Some(h) = hist {
        h.finish_planned(&mut sample);
    }
    let sum_r2 = sum_m2 as f64 * 0.25;
    let n_r = w * ov.height();
    let dof = n_r.saturating_sub(ov.height());
    Some(IsrMeasure {
        overscan_level: sum_l / ov.height().max(1) as f64,
        overscan_noise: if dof > 0 {
            (sum_r2 / dof as f64).sqrt()
        } else {
            f64::NAN
        },
        nx,
        ny,
    })
}

/// [`decode_sub_row`] that also writes each value's unit-histogram bin,
/// `clamp(v - off, 0, UNIT_BINS + 1)` with `v` the decoded integer: SSE2 on x86_64 (the i32
/// differences packed to i16 with saturation, then clamped with `pmaxsw`/`pminsw`: the same
/// result, as `UNIT_BINS + 1 < 2^15`), else portable ([`decode_sub_row_bins_scalar`]; tested
/// against each other). `off` must fit in i32 with margin (|off| < 2^30).
fn decode_sub_row_bins(b: &[u8], lev: f32, off: i64, out: &mut [f32], idx: &mut [u16]) {
    let n = out.len().min(b.len() / 4).min(idx.len());
    #[cfg(target_arch = "x86_64")]
    let done = {
        use std::arch::x86_64::*;
        let full = n / 8 * 8;
        // SAFETY: SSE2 is always available on x86_64; for i < full, b[4i..4i + 32],
        // out[i..i + 8] and idx[i..i + 8] are in bounds (unaligned loads and stores).
        unsafe {
            let lo8 = _mm_set1_epi32(0x0000_ff00);
            let hi8 = _mm_set1_epi32(0x00ff_0000);
            let lv = _mm_set1_ps(lev);
            let offv = _mm_set1_epi32(off as i32);
            let zero = _mm_setzero_si128();
            let top = _mm_set1_epi16((crate::clip::UNIT_BINS + 1) as i16);
            let swap = |v: __m128i| {
                _mm_or_si128(
                    _mm_or_si128(_mm_slli_epi32(v, 24), _mm_srli_epi32(v, 24)),
                    _mm_or_si128(
                        _mm_and_si128(_mm_slli_epi32(v, 8), hi8),
                        _mm_and_si128(_mm_srli_epi32(v, 8), lo8),
                    ),
                )
            };
            let mut i = 0;
            while i < full {
                let a = swap(_mm_loadu_si128(b.as_ptr().add(4 * i) as *const __m128i));
                let c = swap(_mm_loadu_si128(b.as_ptr().add(4 * i + 16) as *const __m128i));
                _mm_storeu_ps(out.as_mut_ptr().add(i), _mm_sub_ps(_mm_cvtepi32_ps(a), lv));
                _mm_storeu_ps(
                    out.as_mut_ptr().add(i + 4),
                    _mm_sub_ps(_mm_cvtepi32_ps(c), lv),
                );
                let d = _mm_packs_epi32(_mm_sub_epi32(a, offv), _mm_sub_epi32(c, offv));
                let k = _mm_min_epi16(_mm_max_epi16(d, zero), top);
                _mm_storeu_si128(idx.as_mut_ptr().add(i) as *mut __m128i, k);
                i += 8;
            }
        }
        full
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    decode_sub_row_bins_scalar(
        &b[4 * done..4 * n],
        lev,
        off,
        &mut out[done..n],
        &mut idx[done..n],
    );
}

/// Portable twin of [`decode_sub_row_bins`].
fn decode_sub_row_bins_scalar(b: &[u8], lev: f32, off: i64, out: &mut [f32], idx: &mut [u16]) {
    for (i, (o, k)) in out.iter_mut().zip(idx.iter_mut()).enumerate() {
        let v = be_at(b, i);
        *o = v as f32 - lev;
        *k = (v as i64 - off).clamp(0, (crate::clip::UNIT_BINS + 1) as i64) as u16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::lsst::Rect;

    /// Hand-built 10 x 4 segment: DATASEC columns 0..5, overscan 5..10; row r has bias 100 + r
    /// everywhere and signal 7 in the imaging area, overscan pixels alternate +-1 around the
    /// bias. Median and mean per row both give 100 + r; the noise is exactly 1.
    /// The integer-key row median against the `total_cmp` one, bit for bit: odd and even
    /// lengths, ties, negative values, +-0, infinities and NaN.
    #[test]
    fn row_median_matches_total_cmp_median() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let mut keys = Vec::new();
        for n in 0..60usize {
            for kind in 0..4 {
                let row: Vec<f32> = (0..n)
                    .map(|i| match (kind, i % 7) {
                        (0, _) => rng.random_range(-30.0f32..30.0).round(),
                        (1, _) => rng.random_range(-1e6f32..1e6),
                        (2, 0) => -0.0,
                        (2, 1) => 0.0,
                        (2, 2) => f32::INFINITY,
                        (2, 3) => f32::NEG_INFINITY,
                        (3, 0) => f32::NAN,
                        _ => rng.random_range(0.0f32..3.0).round(),
                    })
                    .collect();
                let a = median_row(&row, &mut keys);
                let b = median_f32(&mut row.clone());
                assert!(
                    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                    "n {n} kind {kind}: {a} {b}"
                );
            }
        }
    }

    /// ISR from big-endian int32 bytes against ISR from the decoded f32 image, bit for bit,
    /// for every overscan method, with and without parallel overscan and master bias.
    #[test]
    fn big_endian_source_matches_decoded_source() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        let (nx, ny) = (40usize, 30usize);
        let ints: Vec<i32> = (0..nx * ny)
            .map(|_| rng.random_range(-40_000..300_000))
            .collect();
        let bytes: Vec<u8> = ints.iter().flat_map(|v| v.to_be_bytes()).collect();
        let decoded: Vec<f32> = ints.iter().map(|&v| v as f32).collect();
        let g = SegmentGeometry {
            name: "t".into(),
            hdu: 1,
            shape: [nx, ny],
            datasec: Rect {
                x0: 2,
                x1: 30,
                y0: 0,
                y1: 25,
            },
            serial_overscan: Rect {
                x0: 30,
                x1: 40,
                y0: 0,
                y1: 27,
            },
            parallel_overscan: Rect {
                x0: 2,
                x1: 30,
                y0: 25,
                y1: 30,
            },
            from_biassec: false,
        };
        let bias: Vec<f32> = (0..24 * 21).map(|i| (i % 7) as f32 * 0.25).collect();
        for method in [
            OverscanMethod::MedianPerRow,
            OverscanMethod::MeanPerRow,
            OverscanMethod::ClippedMeanPerRow,
            OverscanMethod::Median,
        ] {
            for parallel in [false, true] {
                for b in [None, Some(&bias[..])] {
                    let s = IsrSettings {
                        method,
                        skip_first: 2,
                        skip_last: 1,
                        parallel,
                        parallel_skip: 1,
                        edge: 2,
                    };
                    let (mut o1, mut o2, mut sc) = (Vec::new(), Vec::new(), Vec::new());
                    let m1 = isr_amp(&decoded, &g, &s, b, &mut o1, &mut sc).unwrap();
                    let m2 = isr_amp_pixels(RawPixels::BeI32(&bytes), &g, &s, b, &mut o2, &mut sc)
                        .unwrap();
                    assert_eq!(o1.len(), 24 * 21);
                    assert!(o1.iter().zip(&o2).all(|(a, b)| a.to_bits() == b.to_bits()));
                    assert_eq!(
                        (m1.overscan_level.to_bits(), m1.overscan_noise.to_bits()),
                        (m2.overscan_level.to_bits(), m2.overscan_noise.to_bits()),
                        "{method:?} parallel {parallel}"
                    );
                }
            }
        }
    }

    /// The one-pass median-per-row path ([`isr_median_rows_i32`]) against the generic path
    /// on the decoded image, bit for bit: odd and even overscan widths, narrow (real overscan)
    /// and wide value spreads, ties, negative values, values beyond 2^24 (the fast path must
    /// decline), DATASEC rows outside the overscan rows (declines), with and without bias.
    #[test]
    fn one_pass_median_rows_match_generic_path() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
        let (nx, ny) = (45usize, 33usize);
        for case in 0..12 {
            let ints: Vec<i32> = (0..nx * ny)
                .map(|i| match case % 4 {
                    0 => 20_000 + rng.random_range(-6..=6),
                    1 => rng.random_range(-300_000..300_000),
                    2 => (i % 5) as i32 - 2,
                    _ if i % 97 == 0 => 1 << 25,
                    _ => rng.random_range(-9..=9),
                })
                .collect();
            let bytes: Vec<u8> = ints.iter().flat_map(|v| v.to_be_bytes()).collect();
            let decoded: Vec<f32> = ints.iter().map(|&v| v as f32).collect();
            let ov_x1 = if case % 2 == 0 { 45 } else { 44 };
            let d_y1 = if case >= 8 { 33 } else { 28 };
            let g = SegmentGeometry {
                name: "t".into(),
                hdu: 1,
                shape: [nx, ny],
                datasec: Rect {
                    x0: 1,
                    x1: 30,
                    y0: 0,
                    y1: d_y1,
                },
                serial_overscan: Rect {
                    x0: 30,
                    x1: ov_x1,
                    y0: 0,
                    y1: 30,
                },
                parallel_overscan: Rect {
                    x0: 1,
                    x1: 30,
                    y0: d_y1,
                    y1: 33,
                },
                from_biassec: false,
            };
            let bias: Vec<f32> = (0..25 * (d_y1 - 4)).map(|i| (i % 5) as f32 * 0.5).collect();
            for (skip_first, skip_last) in [(2, 1), (3, 1), (0, 0)] {
                for b in [None, Some(&bias[..])] {
                    let s = IsrSettings {
                        skip_first,
                        skip_last,
                        edge: 2,
                        ..IsrSettings::default()
                    };
                    let (mut o1, mut o2, mut sc) = (Vec::new(), vec![7.0; 3], Vec::new());
                    let m1 = isr_amp(&decoded, &g, &s, b, &mut o1, &mut sc).unwrap();
                    let m2 = isr_amp_pixels(RawPixels::BeI32(&bytes), &g, &s, b, &mut o2, &mut sc)
                        .unwrap();
                    assert_eq!(o1.len(), o2.len());
                    assert!(o1.iter().zip(&o2).all(|(a, b)| a.to_bits() == b.to_bits()));
                    assert_eq!(
                        (m1.overscan_level.to_bits(), m1.overscan_noise.to_bits()),
                        (m2.overscan_level.to_bits(), m2.overscan_noise.to_bits()),
                        "case {case} skip {skip_first} {skip_last}"
                    );
                    // The fast path is taken where it should be (and declines otherwise).
                    let c0 = 30 + skip_first;
                    let c1 = ov_x1 - skip_last;
                    let mut o3 = Vec::new();
                    let fast = isr_median_rows_i32(
                        &bytes,
                        &g,
                        &s,
                        (c0, c1),
                        (3, 28, 2, d_y1 - 2),
                        &mut o3,
                        None,
                    );
                    assert_eq!(fast.is_some(), case % 4 != 3 && case < 8, "case {case}");
                }
            }
        }
        // decode to i32: SSE2 against portable, with remainders.
        let ints: Vec<i32> = (0..39).map(|i| i * 55_123_457 - 1_000_000_000).collect();
        let bytes: Vec<u8> = ints.iter().flat_map(|v| v.to_be_bytes()).collect();
        let (mut a, mut b) = (vec![0i32; 39], vec![0i32; 39]);
        decode_i32_row(&bytes, &mut a);
        decode_i32_row_scalar(&bytes, &mut b);
        assert_eq!(a, ints);
        assert_eq!(b, ints);
        // decode + subtract: SSE2 against portable, with remainders.
        let ints: Vec<i32> = (0..37).map(|i| i * 1_234_567 - 20_000_000).collect();
        let bytes: Vec<u8> = ints.iter().flat_map(|v| v.to_be_bytes()).collect();
        let (mut a, mut b) = (vec![0f32; 37], vec![0f32; 37]);
        decode_sub_row(&bytes, 17.5, &mut a);
        decode_sub_row_scalar(&bytes, 17.5, &mut b);
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        let mut v: Vec<i32> = vec![5, -3, 5, 9, 0, 0, 12, -40];
        for k in 0..v.len() {
            let got = kth_i32(&v, k, -40, 12);
            v.sort();
            assert_eq!(got, v[k]);
        }
    }

    /// The unit histogram counted by the ISR against the one the clipped statistics build
    /// from the output (same binning, same counts), and the clipped statistics from it
    /// against the plain ones, bit for bit: flat-like images (narrow and wide, negative
    /// values), an image with outliers beyond the unit bins (histogram declined), an even
    /// overscan width (half-integer output: declined), a master bias (declined).
    #[test]
    fn isr_histogram_matches_the_statistics_own() {
        use crate::clip::{ClipScratch, afw_clipped_stats_f32, afw_clipped_stats_f32_prebuilt};
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(31);
        let (nx, ny) = (150usize, 120usize);
        let g = SegmentGeometry {
            name: "t".into(),
            hdu: 1,
            shape: [nx, ny],
            datasec: Rect {
                x0: 3,
                x1: 130,
                y0: 0,
                y1: 115,
            },
            serial_overscan: Rect {
                x0: 130,
                x1: 150,
                y0: 0,
                y1: 115,
            },
            parallel_overscan: Rect {
                x0: 3,
                x1: 130,
                y0: 115,
                y1: 120,
            },
            from_biassec: false,
        };
        let clip = caliper_core::robust::AfwClipParams::cp_pipe_ptc();
        for case in 0..6 {
            let (signal, sd) = match case {
                0 | 3 | 4 | 5 => (300.0, 20.0),
                1 => (60_000.0, 250.0),
                _ => (-30.0, 6.0),
            };
            let sig = Normal::new(signal, sd).unwrap();
            let ovn = Normal::new(0.0, 5.0).unwrap();
            let ints: Vec<i32> = (0..nx * ny)
                .map(|i| {
                    let (c, r) = (i % nx, i / nx);
                    let bias = 20_000.0 + r as f64;
                    let v = if c >= 130 {
                        bias + ovn.sample(&mut rng)
                    } else if case == 3 && i % 501 == 0 {
                        bias + 50_000.0
                    } else {
                        bias + sig.sample(&mut rng)
                    };
                    v.round() as i32
                })
                .collect();
            let bytes: Vec<u8> = ints.iter().flat_map(|v| v.to_be_bytes()).collect();
            let s = IsrSettings {
                skip_last: if case == 4 { 3 } else { 2 },
                ..IsrSettings::default()
            };
            let bias = vec![0.25f32; 107 * 95];
            let b = (case == 5).then_some(&bias[..]);
            let (mut o1, mut o2, mut sc) = (Vec::new(), Vec::new(), Vec::new());
            let mut h = IntHist::default();
            let m1 = isr_amp_pixels(RawPixels::BeI32(&bytes), &g, &s, b, &mut o1, &mut sc).unwrap();
            let m2 = isr_amp_pixels_hist(
                RawPixels::BeI32(&bytes),
                &g,
                &s,
                b,
                &mut o2,
                &mut sc,
                Some(&mut h),
            )
            .unwrap();
            assert_eq!(o1.len(), 107 * 95);
            assert!(o1.iter().zip(&o2).all(|(a, b)| a.to_bits() == b.to_bits()));
            assert_eq!(m1, m2);
            assert_eq!(h.is_valid(), case <= 2, "case {case}");
            if h.is_valid() {
                assert!(
                    crate::clip::tests::int_hist_matches_build(&o1, &h),
                    "case {case}"
                );
            }
            let mut cs = ClipScratch::default();
            let a = afw_clipped_stats_f32(&o1, &clip, &mut cs).unwrap();
            let p = afw_clipped_stats_f32_prebuilt(&o2, &clip, &mut cs, &mut h).unwrap();
            assert!(!h.is_valid());
            assert_eq!(
                (a.mean.to_bits(), a.variance.to_bits(), a.n_kept, a.n_finite),
                (p.mean.to_bits(), p.variance.to_bits(), p.n_kept, p.n_finite),
                "case {case}"
            );
            assert_eq!(
                (a.median.to_bits(), a.iqr.to_bits()),
                (p.median.to_bits(), p.iqr.to_bits())
            );
        }
        // The SSE2 decode + bins against the portable one, clamping at both ends.
        let ints: Vec<i32> = (0..45).map(|i| i * 900 - 19_000).collect();
        let bytes: Vec<u8> = ints.iter().flat_map(|v| v.to_be_bytes()).collect();
        let (mut a, mut b) = (vec![0f32; 45], vec![0f32; 45]);
        let (mut ia, mut ib) = (vec![0u16; 45], vec![0u16; 45]);
        decode_sub_row_bins(&bytes, 3.0, -9_000, &mut a, &mut ia);
        decode_sub_row_bins_scalar(&bytes, 3.0, -9_000, &mut b, &mut ib);
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        assert_eq!(ia, ib);
        assert!(ia.contains(&0) && ia.contains(&16385));
    }

    #[test]
    fn subtracts_row_overscan_and_trims() {
        let (nx, ny) = (10, 4);
        let mut raw = vec![0f32; nx * ny];
        for r in 0..ny {
            for c in 0..nx {
                raw[r * nx + c] = if c < 5 {
                    107.0 + r as f32
                } else {
                    100.0 + r as f32 + if c % 2 == 0 { 1.0 } else { -1.0 }
                };
            }
        }
        let g = SegmentGeometry {
            name: "t".into(),
            hdu: 1,
            shape: [nx, ny],
            datasec: Rect {
                x0: 0,
                x1: 5,
                y0: 0,
                y1: 4,
            },
            serial_overscan: Rect {
                x0: 5,
                x1: 10,
                y0: 0,
                y1: 4,
            },
            parallel_overscan: Rect {
                x0: 0,
                x1: 5,
                y0: 4,
                y1: 4,
            },
            from_biassec: false,
        };
        for method in [
            OverscanMethod::MeanPerRow,
            OverscanMethod::ClippedMeanPerRow,
        ] {
            // skip 0 first, 1 last: columns 5..9 = +1,-1,+1,-1 -> mean exactly the bias.
            let s = IsrSettings {
                method,
                skip_first: 0,
                skip_last: 1,
                edge: 0,
                ..IsrSettings::default()
            };
            let (mut out, mut sc) = (Vec::new(), Vec::new());
            let m = isr_amp(&raw, &g, &s, None, &mut out, &mut sc).unwrap();
            assert_eq!((m.nx, m.ny), (5, 4));
            assert!(
                out.iter().all(|&v| (v - 7.0).abs() < 1e-6),
                "{method:?}: {out:?}"
            );
            // 4 rows x 4 columns of +-1 about the level, 4 levels fitted: sqrt(16/12).
            assert!((m.overscan_noise - (16.0f64 / 12.0).sqrt()).abs() < 1e-12);
            assert!((m.overscan_level - 101.5).abs() < 1e-12);
        }
        let s = IsrSettings {
            edge: 1,
            skip_first: 0,
            skip_last: 0,
            ..IsrSettings::default()
        };
        let (mut out, mut sc) = (Vec::new(), Vec::new());
        let m = isr_amp(&raw, &g, &s, None, &mut out, &mut sc).unwrap();
        assert_eq!((m.nx, m.ny, out.len()), (3, 2, 6));
        let bad = IsrSettings { edge: 3, ..s };
        assert!(isr_amp(&raw, &g, &bad, None, &mut out, &mut sc).is_err());
    }
}
