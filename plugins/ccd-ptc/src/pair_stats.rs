//! Statistics of one flat pair on one amplifier (after ISR).
//!
//! cp_pipe `PhotonTransferCurveExtractPairTask` (`shared/specs/ptc.md` section 1):
//! `mu1 = MEANCLIP(I1)`, `mu2 = MEANCLIP(I2)` (5.5 sigma, 3 iterations), `mu = (mu1+mu2)/2`,
//! `D = (mu2 I1 - mu1 I2)/mu`, `var = 0.5 VARIANCECLIP(D)` (the sigma-clip correction factor
//! at 5.5 sigma is 1 to better than 1e-5 and is not applied).
//!
//! Per-pair gain (the seed notebook's, cp_pipe `doGain`, no rescaling of I2):
//! `c = MEAN((I1 - I2)^2 / (I1 + I2))`, `g_raw = 1/c`, and the read-noise-corrected form
//! (cp_pipe `gainCorrectionType = 'FULL'`)
//! `g = (mu + sqrt(mu^2 - 2 mu c + 2 s^2)) / (2 c mu - 2 s^2)`, with `s` the overscan noise
//! in ADU averaged over the pair.

use caliper_core::robust::AfwClipParams;

use crate::clip::{ClipScratch, IntHist, afw_clipped_stats_f32, afw_clipped_stats_f32_prebuilt};

/// One pair on one amplifier.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PairAmpStats {
    /// Clipped mean of the first flat (ADU).
    pub mu1: f64,
    /// Clipped mean of the second flat (ADU).
    pub mu2: f64,
    /// PTC mean `(mu1 + mu2)/2` (ADU) (`RAW_MEANS`).
    pub mean: f64,
    /// PTC variance `0.5 VARIANCECLIP(D)` (ADU^2) (`RAW_VARS`).
    pub var: f64,
    /// Variance of the difference without the 1/2 (the seed's factor-2 mistake), for the report.
    pub var_unhalved: f64,
    /// Clipped mean of D (ADU; ~0 by construction).
    pub diff_mean: f64,
    /// Pixels kept by the clip of D.
    pub npix: f64,
    /// `1/MEAN((I1-I2)^2/(I1+I2))`, e-/ADU.
    pub gain_pair_raw: f64,
    /// Read-noise-corrected per-pair gain (cp_pipe FULL), e-/ADU.
    pub gain_pair_corrected: f64,
    /// Overscan noise averaged over the pair (ADU) (`NOISE_LIST`).
    pub overscan_noise: f64,
    /// Covariances of D / 2 at lags (dx, dy), `cov[dy * 4 + dx]`, dx, dy in 0..=3 (cp_pipe
    /// `COVARIANCES`, see [`covariances`]); NaN where not computed.
    pub cov: [f64; 16],
}

/// Reusable buffers of one worker.
#[derive(Debug, Default)]
pub struct Scratch {
    diff: Vec<f32>,
    clip: ClipScratch,
}

/// `d = k1 x - k2 y` (f32) and the per-pair gain sums: `sum (x-y)^2/(x+y)` over `x + y > 0`
/// and its count, in 8 f64 lanes (element i in lane i % 8, lanes added in order at the end).
/// Portable version of [`difference`].
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn difference_scalar(i1: &[f32], i2: &[f32], k1: f32, k2: f32, diff: &mut [f32]) -> (f64, u64) {
    let n = diff.len().min(i1.len()).min(i2.len());
    let mut lanes = [0f64; 8];
    let count = difference_tail(i1, i2, k1, k2, diff, 0..n, &mut lanes);
    (lanes.iter().sum(), count)
}

/// The elements `range` (starting at a multiple of 8), one by one as
/// [`difference_scalar`] does them (all of them there, the tail after a vector loop here):
/// element j in lane j % 8. Returns how many terms it added.
fn difference_tail(
    i1: &[f32],
    i2: &[f32],
    k1: f32,
    k2: f32,
    diff: &mut [f32],
    range: std::ops::Range<usize>,
    lanes: &mut [f64; 8],
) -> u64 {
    let mut count = 0;
    for j in range {
        let (x, y) = (i1[j], i2[j]);
        diff[j] = k1 * x - k2 * y;
        let sum = x + y;
        if sum > 0.0 {
            let dd = (x - y) as f64;
            lanes[j % 8] += dd * dd / sum as f64;
            count += 1;
        }
    }
    count
}

/// [`difference_scalar`] with AVX-512 when the CPU has it, else SSE2 on x86_64 (part of
/// its baseline): the same IEEE operations per element and lane, so bit-identical (tested).
fn difference(i1: &[f32], i2: &[f32], k1: f32, k2: f32, diff: &mut [f32]) -> (f64, u64) {
    let n = diff.len().min(i1.len()).min(i2.len());
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        return avx512::difference(&i1[..n], &i2[..n], k1, k2, &mut diff[..n]);
    }
    difference_sse2(i1, i2, k1, k2, diff)
}

/// The SSE2 build of [`difference`] (portable elsewhere).
fn difference_sse2(i1: &[f32], i2: &[f32], k1: f32, k2: f32, diff: &mut [f32]) -> (f64, u64) {
    let n = diff.len().min(i1.len()).min(i2.len());
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let full = n / 8 * 8;
        let mut lanes = [0f64; 8];
        let mut counts = [0u64; 8];
        // SAFETY: SSE2 is always available on x86_64; for i < full, i1[i..i + 8],
        // i2[i..i + 8] and diff[i..i + 8] are in bounds (unaligned loads and stores); the
        // lane stores write 2 f64 / 4 u32 into arrays of 8 at in-bounds offsets.
        unsafe {
            let (kv1, kv2) = (_mm_set1_ps(k1), _mm_set1_ps(k2));
            let zero = _mm_setzero_ps();
            let mut acc = [_mm_setzero_pd(); 4];
            let (mut cnt0, mut cnt1) = (_mm_setzero_si128(), _mm_setzero_si128());
            let mut i = 0;
            while i < full {
                for half in 0..2 {
                    let x = _mm_loadu_ps(i1.as_ptr().add(i + 4 * half));
                    let y = _mm_loadu_ps(i2.as_ptr().add(i + 4 * half));
                    let d = _mm_sub_ps(_mm_mul_ps(kv1, x), _mm_mul_ps(kv2, y));
                    _mm_storeu_ps(diff.as_mut_ptr().add(i + 4 * half), d);
                    let sum = _mm_add_ps(x, y);
                    let dd = _mm_sub_ps(x, y);
                    let pos = _mm_cmpgt_ps(sum, zero);
                    // Lanes with sum <= 0 divide by 1 and are masked out (no NaN or inf
                    // reaches the accumulator; the kept lanes are computed as in the loop).
                    let sum_safe =
                        _mm_or_ps(_mm_and_ps(pos, sum), _mm_andnot_ps(pos, _mm_set1_ps(1.0)));
                    for q in 0..2 {
                        let (ddq, sq) = if q == 0 {
                            (_mm_cvtps_pd(dd), _mm_cvtps_pd(sum_safe))
                        } else {
                            (
                                _mm_cvtps_pd(_mm_movehl_ps(dd, dd)),
                                _mm_cvtps_pd(_mm_movehl_ps(sum_safe, sum_safe)),
                            )
                        };
                        let term = _mm_div_pd(_mm_mul_pd(ddq, ddq), sq);
                        let mask = if q == 0 {
                            _mm_castps_pd(_mm_unpacklo_ps(pos, pos))
                        } else {
                            _mm_castps_pd(_mm_unpackhi_ps(pos, pos))
                        };
                        let slot = 2 * half + q;
                        acc[slot] = _mm_add_pd(acc[slot], _mm_and_pd(term, mask));
                    }
                    if half == 0 {
                        cnt0 = _mm_sub_epi32(cnt0, _mm_castps_si128(pos));
                    } else {
                        cnt1 = _mm_sub_epi32(cnt1, _mm_castps_si128(pos));
                    }
                }
                i += 8;
                // u32 lane counts: flush well before 2^32.
                if i % (1 << 28) == 0 {
                    let mut c = [0u32; 8];
                    _mm_storeu_si128(c.as_mut_ptr() as *mut __m128i, cnt0);
                    _mm_storeu_si128(c.as_mut_ptr().add(4) as *mut __m128i, cnt1);
                    for (a, b) in counts.iter_mut().zip(c) {
                        *a += b as u64;
                    }
                    cnt0 = _mm_setzero_si128();
                    cnt1 = _mm_setzero_si128();
                }
            }
            for (slot, a) in acc.iter().enumerate() {
                _mm_storeu_pd(lanes.as_mut_ptr().add(2 * slot), *a);
            }
            let mut c = [0u32; 8];
            _mm_storeu_si128(c.as_mut_ptr() as *mut __m128i, cnt0);
            _mm_storeu_si128(c.as_mut_ptr().add(4) as *mut __m128i, cnt1);
            for (a, b) in counts.iter_mut().zip(c) {
                *a += b as u64;
            }
        }
        let tail = difference_tail(i1, i2, k1, k2, diff, full..n, &mut lanes);
        (lanes.iter().sum(), counts.iter().sum::<u64>() + tail)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        difference_scalar(&i1[..n], &i2[..n], k1, k2, &mut diff[..n])
    }
}

/// AVX-512 (runtime-detected) build of [`difference`]: sixteen elements per step; the
/// per-pair gain terms of elements `16j..16j + 8` and then `16j + 8..16j + 16` are added to
/// the eight float64 lanes in that order, so lane `i % 8` receives element `i`'s term in
/// element order, as in [`difference_scalar`]; the same IEEE operations per element
/// (`k1 x - k2 y` in f32 without fusing, `(x - y)^2 / (x + y)` in f64), hence bit-identical
/// (tested). Lanes with `x + y <= 0` (or NaN) are zeroed by the masked division and add
/// `+0.0`, as the SSE2 loop's masked terms do.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Whether the CPU has AVX-512F, and POPCNT for the mask counts (cached by
    /// `is_x86_feature_detected!`).
    pub(super) fn available() -> bool {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("popcnt")
    }

    /// See the module docs (slices of equal length).
    pub(super) fn difference(
        i1: &[f32],
        i2: &[f32],
        k1: f32,
        k2: f32,
        diff: &mut [f32],
    ) -> (f64, u64) {
        assert!(available(), "the CPU must support AVX-512F and POPCNT");
        assert!(i1.len() == diff.len() && i2.len() == diff.len());
        // SAFETY: AVX-512F and POPCNT checked just above.
        unsafe { run(i1, i2, k1, k2, diff) }
    }

    #[target_feature(enable = "avx512f,popcnt")]
    fn run(i1: &[f32], i2: &[f32], k1: f32, k2: f32, diff: &mut [f32]) -> (f64, u64) {
        let n = diff.len();
        let full = n / 16 * 16;
        let (kv1, kv2) = (_mm512_set1_ps(k1), _mm512_set1_ps(k2));
        let zero = _mm512_setzero_ps();
        let mut acc = _mm512_setzero_pd();
        let mut count = 0u64;
        let mut i = 0;
        while i < full {
            // SAFETY: i + 16 <= full <= n = len of all three slices (unaligned loads, store).
            let (x, y) = unsafe {
                (
                    _mm512_loadu_ps(i1.as_ptr().add(i)),
                    _mm512_loadu_ps(i2.as_ptr().add(i)),
                )
            };
            let d = _mm512_sub_ps(_mm512_mul_ps(kv1, x), _mm512_mul_ps(kv2, y));
            // SAFETY: as above.
            unsafe { _mm512_storeu_ps(diff.as_mut_ptr().add(i), d) };
            let sum = _mm512_add_ps(x, y);
            let dd = _mm512_sub_ps(x, y);
            let pos = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(sum, zero);
            count += u64::from(pos.count_ones());
            for half in 0..2 {
                let (ddh, sh) = if half == 0 {
                    (_mm512_castps512_ps256(dd), _mm512_castps512_ps256(sum))
                } else {
                    (
                        _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(dd))),
                        _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(sum))),
                    )
                };
                let k = (pos >> (8 * half)) as u8;
                let dd64 = _mm512_cvtps_pd(ddh);
                let term = _mm512_maskz_div_pd(k, _mm512_mul_pd(dd64, dd64), _mm512_cvtps_pd(sh));
                acc = _mm512_add_pd(acc, term);
            }
            i += 16;
        }
        let mut lanes = [0f64; 8];
        // SAFETY: 8 f64 into an array of 8 (unaligned store).
        unsafe { _mm512_storeu_pd(lanes.as_mut_ptr(), acc) };
        count += super::difference_tail(i1, i2, k1, k2, diff, full..n, &mut lanes);
        (lanes.iter().sum(), count)
    }
}

/// Compute the pair statistics of two ISR'd images of equal length.
pub fn pair_stats(
    i1: &[f32],
    i2: &[f32],
    noise1: f64,
    noise2: f64,
    clip: &AfwClipParams,
    sc: &mut Scratch,
) -> Result<PairAmpStats, String> {
    pair_stats_prebuilt(i1, i2, noise1, noise2, clip, sc, None)
}

/// [`pair_stats`] with the unit histograms of the two flats filled by the ISR
/// ([`crate::isr::isr_amp_pixels_hist`]; used where valid, see [`IntHist`]): the same
/// result, bit for bit (tested), without the flats' own histogram passes.
pub fn pair_stats_prebuilt(
    i1: &[f32],
    i2: &[f32],
    noise1: f64,
    noise2: f64,
    clip: &AfwClipParams,
    sc: &mut Scratch,
    pre: Option<(&mut IntHist, &mut IntHist)>,
) -> Result<PairAmpStats, String> {
    if i1.len() != i2.len() {
        return Err(format!(
            "images differ in size ({} and {} pixels)",
            i1.len(),
            i2.len()
        ));
    }
    let (s1, s2) = match pre {
        Some((h1, h2)) => (
            afw_clipped_stats_f32_prebuilt(i1, clip, &mut sc.clip, h1),
            afw_clipped_stats_f32_prebuilt(i2, clip, &mut sc.clip, h2),
        ),
        None => (
            afw_clipped_stats_f32(i1, clip, &mut sc.clip),
            afw_clipped_stats_f32(i2, clip, &mut sc.clip),
        ),
    };
    let s1 = s1.map_err(|e| format!("clipped mean of flat 1: {e}"))?;
    let s2 = s2.map_err(|e| format!("clipped mean of flat 2: {e}"))?;
    let (mu1, mu2) = (s1.mean, s2.mean);
    let mu = 0.5 * (mu1 + mu2);
    if !(mu1.is_finite() && mu2.is_finite()) || mu <= 0.0 {
        return Err(format!(
            "non-positive or non-finite mean signal (mu1 = {mu1}, mu2 = {mu2})"
        ));
    }
    let (k1, k2) = ((mu2 / mu) as f32, (mu1 / mu) as f32);
    // Every element is overwritten by `difference`: a recycled buffer of the right size is
    // not zero-filled first (that memset was ~3 % of the pipeline).
    sc.diff.resize(i1.len(), 0.0);
    // D in f32: each product of k x (x < 2^18 ADU) is rounded by at most 0.016 ADU, while D
    // spreads by at least sqrt(2) x read noise (several ADU): the variance changes by < 1e-5
    // relative, far below its 1e-3 statistical precision. The per-pair gain sum is accumulated
    // in 8 f64 lanes (fixed order).
    let (c_sum, c_n) = difference(i1, i2, k1, k2, &mut sc.diff);
    let sd = afw_clipped_stats_f32(&sc.diff, clip, &mut sc.clip)
        .map_err(|e| format!("clipped variance of the difference: {e}"))?;
    let var = 0.5 * sd.variance;
    let c = c_sum / c_n.max(1) as f64;
    let s = 0.5 * (noise1 + noise2);
    let gain_pair_raw = 1.0 / c;
    let gain_pair_corrected = if s.is_finite() {
        (mu + (mu * mu - 2.0 * mu * c + 2.0 * s * s).sqrt()) / (2.0 * c * mu - 2.0 * s * s)
    } else {
        gain_pair_raw
    };
    Ok(PairAmpStats {
        mu1,
        mu2,
        mean: mu,
        var,
        var_unhalved: sd.variance,
        npix: sd.n_kept as f64,
        gain_pair_raw,
        gain_pair_corrected,
        overscan_noise: s,
        cov: [f64::NAN; 16],
        diff_mean: sd.mean,
    })
}

/// The difference image `D` left in `sc` by the last [`pair_stats`] call (for benchmarks and
/// [`covariances`]).
pub fn last_difference(sc: &Scratch) -> &[f32] {
    &sc.diff
}

/// Largest covariance lag stored in [`PairAmpStats::cov`].
pub const MAX_COV_LAG: usize = 3;

/// Covariances of the difference image left in `sc` by the last [`pair_stats`] call, up to lag
/// `max_lag` (<= [`MAX_COV_LAG`]), as cp_pipe's `covAstier` defines them (Astier et al. 2019,
/// appendix; `shared/specs/ptc.md` section 1) but summed directly instead of by FFT:
/// pixels with `|D - mean| > n_sigma * sigma` (the clipped statistics of D) get weight 0;
/// `cov(dx, dy) = S/N - A B / N^2` over the pixel pairs (p, p + (dx, dy)) inside the image with
/// `S = sum w w' D D'`, `N = sum w w'`, `A = sum w w' D`, `B = sum w w' D'`; for dx, dy both
/// non-zero it is averaged with the (dx, -dy) term; stored as `0.5 cov` (so `cov[0]` ~ the PTC
/// variance). Cost: about 2 (max_lag + 1)^2 passes over the image.
pub fn covariances(
    sc: &Scratch,
    nx: usize,
    max_lag: usize,
    centre: f64,
    half_width: f64,
) -> [f64; 16] {
    let mut out = [f64::NAN; 16];
    let d = &sc.diff;
    if nx == 0 || !d.len().is_multiple_of(nx) {
        return out;
    }
    let ny = d.len() / nx;
    let (c, h) = (centre as f32, half_width as f32);
    let w: Vec<f32> = d
        .iter()
        .map(|&v| if (v - c).abs() <= h { 1.0 } else { 0.0 })
        .collect();
    let dw: Vec<f32> = d.iter().zip(&w).map(|(&v, &m)| (v - c) * m).collect();
    // Centred on c (the covariance does not depend on the centre; it keeps f32 products small).
    let lag = |dx: usize, dy: isize| -> f64 {
        let (mut s, mut n, mut a, mut b) = (0f64, 0f64, 0f64, 0f64);
        let rows: Box<dyn Iterator<Item = usize>> = if dy >= 0 {
            Box::new(0..ny.saturating_sub(dy as usize))
        } else {
            Box::new((-dy) as usize..ny)
        };
        for y in rows {
            let y2 = (y as isize + dy) as usize;
            let r1 = y * nx;
            let r2 = y2 * nx + dx;
            let len = nx - dx;
            let (mut ls, mut ln, mut la, mut lb) = (0f32, 0f32, 0f32, 0f32);
            for i in 0..len {
                let (w1, w2) = (w[r1 + i], w[r2 + i]);
                let (d1, d2) = (dw[r1 + i], dw[r2 + i]);
                ls += d1 * d2;
                ln += w1 * w2;
                la += d1 * w2;
                lb += w1 * d2;
            }
            s += ls as f64;
            n += ln as f64;
            a += la as f64;
            b += lb as f64;
        }
        if n < 1.0 {
            f64::NAN
        } else {
            s / n - a * b / (n * n)
        }
    };
    let l = max_lag
        .min(MAX_COV_LAG)
        .min(nx.saturating_sub(1))
        .min(ny.saturating_sub(1));
    for dy in 0..=l {
        for dx in 0..=l {
            let mut v = lag(dx, dy as isize);
            if dx > 0 && dy > 0 {
                v = 0.5 * (v + lag(dx, -(dy as isize)));
            }
            out[dy * 4 + dx] = 0.5 * v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    /// Gaussian flats with gain 2 e-/ADU: signal 5000 ADU (10 000 e-, variance 2500 ADU^2)
    /// plus 4 ADU read noise (16 ADU^2), flat 2 at 1 % more flux. Truth: var = 2516 ADU^2 per
    /// frame at the pair mean (within the 1 % flux offset); 4e5 pixels give a relative
    /// sampling error of sqrt(2/4e5) = 0.22 %, so 1 % is a 4-sigma tolerance.
    /// The AVX-512 (where the CPU has it) and SSE2 difference loops against the portable
    /// one, bit for bit: values with x + y <= 0 (skipped), NaN, zero, lengths with
    /// remainders of 8 and 16.
    #[test]
    fn difference_matches_portable_loop() {
        use rand::Rng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let n = 10_007;
        let mut a: Vec<f32> = (0..n)
            .map(|_| rng.random_range(-100.0f32..5000.0))
            .collect();
        let b: Vec<f32> = (0..n)
            .map(|_| rng.random_range(-100.0f32..5000.0))
            .collect();
        a[3] = f32::NAN;
        a[4] = -b[4];
        for len in [0usize, 5, 8, 13, 16, 24, 31, n] {
            let (mut d1, mut d2) = (vec![0f32; len], vec![0f32; len]);
            let r2 = difference_scalar(&a[..len], &b[..len], 1.01, 0.99, &mut d2);
            // the dispatched build (AVX-512 where the CPU has it) and the SSE2 one
            let r1 = difference(&a[..len], &b[..len], 1.01, 0.99, &mut d1);
            assert_eq!((r1.0.to_bits(), r1.1), (r2.0.to_bits(), r2.1), "len {len}");
            assert!(d1.iter().zip(&d2).all(|(x, y)| x.to_bits() == y.to_bits()));
            let r1 = difference_sse2(&a[..len], &b[..len], 1.01, 0.99, &mut d1);
            assert_eq!((r1.0.to_bits(), r1.1), (r2.0.to_bits(), r2.1), "len {len}");
            assert!(d1.iter().zip(&d2).all(|(x, y)| x.to_bits() == y.to_bits()));
        }
    }

    #[test]
    fn recovers_variance_and_gain() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let n = 400_000;
        let (g, read) = (2.0f64, 4.0f64);
        let mk = |m: f64, rng: &mut rand_chacha::ChaCha8Rng| -> Vec<f32> {
            let d = Normal::new(m, (m / g + read * read).sqrt()).unwrap();
            (0..n).map(|_| d.sample(rng) as f32).collect()
        };
        let a = mk(5000.0, &mut rng);
        let b = mk(5050.0, &mut rng);
        let st = pair_stats(
            &a,
            &b,
            read,
            read,
            &AfwClipParams::cp_pipe_ptc(),
            &mut Scratch::default(),
        )
        .unwrap();
        let truth = st.mean / g + read * read;
        assert!(
            (st.var / truth - 1.0).abs() < 0.01,
            "var {} truth {truth}",
            st.var
        );
        assert!((st.var_unhalved / st.var - 2.0).abs() < 1e-12);
        // Corrected per-pair gain: the flux offset adds (dmu)^2/(2 mu) = 0.25 ADU to c (0.05 %
        // of 1/g... here 0.25/2525 relative to the mean), well inside 1 %.
        // ... which the unscaled per-pair formula does not survive: (dmu)^2/(2 mu) = 0.25 ADU
        // next to 1/g = 0.5 (spec section 6), so its gain is ~1/3 low.
        assert!(
            st.gain_pair_corrected < 0.75 * g,
            "{}",
            st.gain_pair_corrected
        );
        // Equal flux: the corrected per-pair gain is unbiased (1 % = 4 sigma), the raw one low
        // by about s^2/mu * g = 16/5000*2 = 0.64 %.
        let b2 = mk(5000.0, &mut rng);
        let st = pair_stats(
            &a,
            &b2,
            read,
            read,
            &AfwClipParams::cp_pipe_ptc(),
            &mut Scratch::default(),
        )
        .unwrap();
        assert!(
            (st.gain_pair_corrected / g - 1.0).abs() < 0.01,
            "{}",
            st.gain_pair_corrected
        );
        assert!(st.gain_pair_raw < st.gain_pair_corrected);
        assert!(
            pair_stats(
                &a,
                &b[..10],
                1.0,
                1.0,
                &AfwClipParams::cp_pipe_ptc(),
                &mut Scratch::default()
            )
            .is_err()
        );
    }
}
