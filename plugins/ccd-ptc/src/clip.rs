//! Fast afw `MEANCLIP`/`VARIANCECLIP` on `f32` images — **belongs in core** next to
//! `caliper_core::robust::afw_clipped_stats`, which it reproduces (same definition: numpy
//! 'linear' quartiles of the finite values, first window `n_sigma * 0.7413 * IQR` around the
//! median, then `n_iter` passes re-centred on the clipped mean with `n_sigma * stdev`).
//!
//! Why a second implementation: the core version takes `f64` and finds the quartiles with three
//! `select_nth_unstable` over a full copy, ~40 ns per pixel for the three clipped statistics of
//! a pair. Here (1-2 ns per pixel):
//! - the quartiles are exact order statistics from a 16384-bin histogram
//!   ([`build_hist`], [`order_stats_fast`]): the bin range comes from a 2048-value sample;
//!   on integer-valued images (ISR'd flats with a per-row median of an odd number of overscan
//!   pixels) the bins are one ADU wide, so a bin *is* a value and nothing else is needed; on
//!   other data (the difference image) one more pass gathers the few values of the bins that
//!   hold the wanted ranks (branch-free with AVX-512 `vcompressps` when the CPU has it, see
//!   [`avx512`]) and a selection among them gives the exact answer. The histogram
//!   pass also counts the finite values (one pass less). Any case the histogram cannot answer
//!   (tiny input, degenerate sample, rank in an under/overflow bin, gathered count not equal to
//!   the bin count) falls back to the older exact method ([`order_stats`]);
//! - the clipping passes accumulate in 8 f32 lanes per block of 1024 (fixed order, so results
//!   do not depend on threads), written with SSE2 intrinsics ([`sse2`]; SSE2 is part of the
//!   x86_64 baseline) because the auto-vectoriser turns the masked sums into per-lane branches,
//!   and with AVX2 when the CPU has it ([`avx2`], detected at run time: the same lanes, one
//!   ymm register, two blocks interleaved; also the binning and the gather's target lookup);
//!   on integer images with unit bins the passes run over the histogram instead (same f32
//!   window test, exact f64 sums);
//! - the iterations stop once they have converged: when the histogram shows no value between
//!   the last window's edges and the next one's ([`same_kept_set`]), every later pass would
//!   keep the same values, so its mean and variance are the last pass's (a pass would only
//!   recompute them about another centre, equal to the f32 lane rounding, ~1e-8 relative).
//!   On the difference image this usually saves two of the three passes.
//!
//! The tests check the quartiles exactly and the clipped mean/variance within stated
//! tolerances against core on random and adversarial data, and every SSE2 and AVX2 loop bit
//! for bit against its portable twin.

use caliper_core::robust::{AfwClipParams, AfwClipStats, IQR_TO_SIGMA, RobustError};

const BINS: usize = 16384;

/// Reusable buffers.
#[derive(Debug, Default)]
pub struct ClipScratch {
    hist: Vec<u32>,
    fhist: Vec<u32>,
    slot: Vec<u8>,
    cand: Vec<Vec<f32>>,
    sample: Vec<f32>,
}

/// Exact order statistics for three pairs of adjacent ranks `(r, r+1)` (quartiles and
/// median): a strided sample (~16k values) brackets each pair with a window wide enough for
/// 6-sigma rank fluctuations; one pass counts the values below each window and keeps those
/// inside; the wanted ranks are then selected among the kept ones. If a window misses its
/// rank (never seen in practice, but possible), the histogram method answers instead.
fn order_stats(
    data: &[f32],
    n: usize,
    ranks: &[usize; 6],
    sc: &mut ClipScratch,
    out: &mut [f64; 6],
) {
    let step = (n / 16384).max(1);
    sc.sample.clear();
    sc.sample
        .extend(data.iter().step_by(step).copied().filter(|x| x.is_finite()));
    let m = sc.sample.len();
    if m < 64 || n < 4096 {
        order_stats_hist(data, ranks, sc, out);
        return;
    }
    // Window edges: sample order statistics around each wanted rank (selected, not sorted).
    let mut lo = [f32::NEG_INFINITY; 3];
    let mut hi = [f32::INFINITY; 3];
    for w in 0..3 {
        let p = ranks[2 * w] as f64 / n as f64;
        let j = p * (m - 1) as f64;
        let margin = 6.0 * (m as f64 * p * (1.0 - p)).sqrt() + 3.0;
        let a = j - margin;
        let b = (j + margin + 1.0) as usize;
        if a >= 0.0 {
            let (_, v, _) = sc
                .sample
                .select_nth_unstable_by(a as usize, |x, y| x.total_cmp(y));
            lo[w] = *v;
        }
        if b < m {
            let (_, v, _) = sc.sample.select_nth_unstable_by(b, |x, y| x.total_cmp(y));
            hi[w] = *v;
        }
    }
    // Overlapping windows (very narrow distributions): let the histogram method answer.
    if lo[1] <= hi[0] || lo[2] <= hi[1] {
        order_stats_hist(data, ranks, sc, out);
        return;
    }
    // Branchless compaction into one buffer per window (always store, advance only when
    // inside): a push behind an unpredictable branch costs several times more per pixel.
    sc.cand.resize_with(3, Vec::new);
    for c in sc.cand.iter_mut() {
        // Contents are overwritten before they are read: grow only, never clear.
        if c.len() < data.len() + 1 {
            c.resize(data.len() + 1, 0.0);
        }
    }
    let (c0, rest) = sc.cand.split_at_mut(1);
    let (c1, c2) = rest.split_at_mut(1);
    let (c0, c1, c2) = (&mut c0[0], &mut c1[0], &mut c2[0]);
    let (mut b0, mut b1, mut b2) = (0usize, 0usize, 0usize);
    let (mut l0, mut l1, mut l2) = (0usize, 0usize, 0usize);
    for &x in data {
        // NaN compares false everywhere: neither counted nor kept.
        b0 += (x < lo[0]) as usize;
        b1 += (x < lo[1]) as usize;
        b2 += (x < lo[2]) as usize;
        c0[l0] = x;
        l0 += ((x >= lo[0]) & (x <= hi[0])) as usize;
        c1[l1] = x;
        l1 += ((x >= lo[1]) & (x <= hi[1])) as usize;
        c2[l2] = x;
        l2 += ((x >= lo[2]) & (x <= hi[2])) as usize;
    }
    let below = [b0, b1, b2];
    let lens = [l0, l1, l2];
    for w in 0..3 {
        for k in 0..2 {
            let r = ranks[2 * w + k];
            if r < below[w] || r - below[w] >= lens[w] {
                order_stats_hist(data, ranks, sc, out);
                return;
            }
            let c = &mut sc.cand[w][..lens[w]];
            let (_, v, _) = c.select_nth_unstable_by(r - below[w], |a, b| a.total_cmp(b));
            out[2 * w + k] = *v as f64;
        }
    }
}

/// Exact order statistics (0-based ranks, ascending, at most 6) of the finite values: one pass
/// for the range, one for a histogram, one to collect the values of the bins holding the
/// ranks, then a selection inside each such bin. Returns the number of finite values.
fn order_stats_hist(data: &[f32], ranks: &[usize], sc: &mut ClipScratch, out: &mut [f64]) -> usize {
    let (mut lo, mut hi, mut n) = (f32::INFINITY, f32::NEG_INFINITY, 0usize);
    for &x in data {
        if x.is_finite() {
            lo = lo.min(x);
            hi = hi.max(x);
            n += 1;
        }
    }
    if n == 0 {
        return 0;
    }
    if lo == hi {
        out.iter_mut().for_each(|o| *o = lo as f64);
        return n;
    }
    // Any monotone binning works (the selection inside a bin is exact); this one is monotone
    // because subtraction, multiplication by a positive number and truncation are.
    let scale = (BINS as f64 / (hi as f64 - lo as f64)) as f32;
    let bin = |x: f32| -> usize { (((x - lo) * scale) as usize).min(BINS - 1) };
    sc.hist.clear();
    sc.hist.resize(BINS, 0);
    for &x in data {
        if x.is_finite() {
            sc.hist[bin(x)] += 1;
        }
    }
    // Each rank's bin and the count below that bin.
    let mut targets = [(0usize, 0usize); 6];
    let (mut cum, mut b) = (0usize, 0usize);
    for (t, &r) in targets.iter_mut().zip(ranks) {
        while cum + sc.hist[b] as usize <= r {
            cum += sc.hist[b] as usize;
            b += 1;
        }
        *t = (b, cum);
    }
    let nt = ranks.len();
    sc.slot.clear();
    sc.slot.resize(BINS, 0);
    let mut distinct = 0usize;
    for t in &targets[..nt] {
        if sc.slot[t.0] == 0 {
            distinct += 1;
            sc.slot[t.0] = distinct as u8;
        }
    }
    sc.cand.resize_with(distinct, Vec::new);
    sc.cand.iter_mut().for_each(|c| c.clear());
    for &x in data {
        if x.is_finite() {
            let s = sc.slot[bin(x)];
            if s > 0 {
                sc.cand[s as usize - 1].push(x);
            }
        }
    }
    for k in 0..nt {
        let (tb, below) = targets[k];
        let c = &mut sc.cand[sc.slot[tb] as usize - 1];
        let (_, v, _) = c.select_nth_unstable_by(ranks[k] - below, |a, b| a.total_cmp(b));
        out[k] = *v as f64;
    }
    n
}

/// Bins of the fast quantile histogram (plus one under- and one over-flow bin).
const NB: usize = 16384;
/// Length of each histogram table: every u16 index is in range.
const HIST_LEN: usize = 1 << 16;

/// What one vectorised scan of the data found.
#[derive(Debug, Clone, Copy)]
struct Scan {
    /// Finite values.
    n_finite: usize,
    /// NaN and -inf values (they fall into the underflow bin).
    n_low_bad: usize,
    /// Every finite value is an integer of magnitude below 2^22.
    all_int: bool,
}

impl Scan {
    /// The scan of a block from the SIMD lane counts of its vector part and the scalar
    /// `tail`'s scan (`int`: integrality was checked, else `all_int` is false).
    #[inline(always)]
    fn from_lanes(int: bool, fin: &[u32], bad: &[u32], notint: &[u32], tail: Scan) -> Scan {
        Scan {
            n_finite: fin.iter().map(|&v| v as usize).sum::<usize>() + tail.n_finite,
            n_low_bad: bad.iter().map(|&v| v as usize).sum::<usize>() + tail.n_low_bad,
            all_int: int && notint.iter().all(|&v| v == 0) && tail.all_int,
        }
    }
}

/// 1.5 x 2^23: for |x| < 2^22 the f32 sum `x + M` lies in [2^23, 2^24), where the ulp is 1,
/// so `(x + M) - M` is x rounded to the nearest integer (the integrality test of [`Scan`]).
const M: f32 = 12_582_912.0;
/// 2^22: the magnitude below which that rounding is exact and a value counts as an integer.
const BIG: f32 = 4_194_304.0;

/// Count finite values, NaN/-inf, and check integrality (`(x + M) - M == x`, see [`M`]), in
/// 8 lanes so it vectorises.
fn scan_scalar(data: &[f32]) -> Scan {
    let mut fin = [0u32; 8];
    let mut bad = [0u32; 8];
    let mut notint = [0u32; 8];
    let (mut n_finite, mut n_low_bad, mut not_int) = (0usize, 0usize, 0u32);
    for block in data.chunks(8 * 4096) {
        let chunks = block.chunks_exact(8);
        let rem = chunks.remainder();
        for ch in chunks {
            for j in 0..8 {
                let x = ch[j];
                let finite = x.is_finite();
                fin[j] += finite as u32;
                bad[j] += (x.is_nan() || x == f32::NEG_INFINITY) as u32;
                let r = (x + M) - M;
                notint[j] |= (finite & ((r != x) | (x.abs() >= BIG))) as u32;
            }
        }
        for &x in rem {
            let finite = x.is_finite();
            fin[0] += finite as u32;
            bad[0] += (x.is_nan() || x == f32::NEG_INFINITY) as u32;
            let r = (x + M) - M;
            notint[0] |= (finite & ((r != x) | (x.abs() >= BIG))) as u32;
        }
        n_finite += fin.iter().map(|&v| v as usize).sum::<usize>();
        n_low_bad += bad.iter().map(|&v| v as usize).sum::<usize>();
        not_int |= notint.iter().fold(0, |a, &v| a | v);
        fin = [0; 8];
        bad = [0; 8];
        notint = [0; 8];
    }
    Scan {
        n_finite,
        n_low_bad,
        all_int: not_int == 0,
    }
}

/// A monotone binning of the data: `0` below `lo` (and NaN, -inf), `1..=NB` for
/// `round((x - lo) * scale) = b - 1` (as computed in f32), `NB+1` above (and +inf).
#[derive(Debug, Clone, Copy)]
struct Binning {
    lo: f32,
    scale: f32,
    /// Bin width 1 on integer data starting at an integer: bin b holds exactly `lo + b - 1`.
    unit: bool,
}

impl Binning {
    #[inline(always)]
    fn bin(&self, x: f32) -> usize {
        const NBF: f32 = NB as f32;
        // 2^23 + 1: t + 1 + 2^23 has ulp 1 for t in [-1, NB], so its bits minus those of 2^23
        // are round(t) + 1 (round to nearest even: monotone, exact on integer t). Pure
        // compare/blend/add, so it vectorises on SSE2.
        const OFFSET: f32 = 8_388_609.0;
        const BASE: u32 = 0x4B00_0000; // 2^23
        let t = (x - self.lo) * self.scale;
        // NaN and negative t compare false: underflow bin 0; t >= NB (and +inf): bin NB + 1.
        let t = if t >= 0.0 {
            if t < NBF { t } else { NBF }
        } else {
            -1.0
        };
        ((t + OFFSET).to_bits() - BASE) as usize
    }
}

impl Binning {
    /// Bin indices of a block (at most 512 values), the portable version of
    /// [`sse2::bin_block`].
    fn bin_block_scalar(&self, block: &[f32], idx: &mut [u16]) {
        for (i, &x) in idx.iter_mut().zip(block) {
            *i = self.bin(x) as u16;
        }
    }

    /// Bin indices of a block and its [`Scan`] (portable twin of [`sse2::bin_block_scan`]).
    fn bin_block_scan_scalar(&self, block: &[f32], idx: &mut [u16]) -> Scan {
        self.bin_block_scalar(block, idx);
        scan_scalar(block)
    }

    /// Bin indices of a block and its [`Scan`] in one pass: SSE2 on x86_64, else portable.
    /// Float bins (`!self.unit`) skip the integrality test, which only the unit binning
    /// needs, and report `all_int: false`.
    fn bin_block_scan(&self, block: &[f32], idx: &mut [u16]) -> Scan {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY (both AVX2 calls): AVX2 was detected at run time.
            match (avx2::available(), self.unit) {
                (true, true) => unsafe { avx2::bin_block_scan::<true>(self, block, idx) },
                (true, false) => unsafe { avx2::bin_block_scan::<false>(self, block, idx) },
                (false, true) => sse2::bin_block_scan::<true>(self, block, idx),
                (false, false) => sse2::bin_block_scan::<false>(self, block, idx),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let s = self.bin_block_scan_scalar(block, idx);
            Scan {
                all_int: s.all_int && self.unit,
                ..s
            }
        }
    }

    /// Bin indices of a block: SSE2 on x86_64 (part of its baseline), else portable; both
    /// give the same indices (same IEEE f32 operations).
    fn bin_block(&self, block: &[f32], idx: &mut [u16]) {
        #[cfg(target_arch = "x86_64")]
        {
            if avx2::available() {
                // SAFETY: AVX2 was detected at run time.
                unsafe { avx2::bin_block(self, block, idx) };
            } else {
                sse2::bin_block(self, block, idx);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self.bin_block_scalar(block, idx);
        }
    }
}

/// Finite count, NaN/-inf count and integrality: SSE2 on x86_64, else portable (same result).
fn scan(data: &[f32]) -> Scan {
    #[cfg(target_arch = "x86_64")]
    {
        sse2::scan(data)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        scan_scalar(data)
    }
}

/// One clipping pass (see [`pass_scalar`]): SSE2 on x86_64, else portable; bit-identical
/// (same f32 operations per lane, same lane order into f64).
fn pass(data: &[f32], c: f64, h: f64) -> (f64, f64, usize, f64) {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2::available() {
            // SAFETY: AVX2 was detected at run time.
            unsafe { avx2::pass(data, c, h) }
        } else {
            sse2::pass(data, c, h)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        pass_scalar(data, c, h)
    }
}

/// Call `f(start, ids)` for every group of 8 indices `idx[start..start + 8]` (the last one
/// may be shorter) holding one of `targets` (at most 6, distinct): byte j of `ids` is
/// `k + 1` when `idx[start + j] == targets[k]`, else 0. SSE2 on x86_64, else portable (same
/// calls).
fn for_groups_matching_ids(idx: &[u16], targets: &[u16], mut f: impl FnMut(usize, u64)) {
    let full = idx.len() / 8 * 8;
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        // SAFETY: AVX2 was detected at run time.
        unsafe { avx2::groups_matching_ids(&idx[..full], targets, &mut f) };
    } else {
        sse2::groups_matching_ids(&idx[..full], targets, &mut f);
    }
    #[cfg(not(target_arch = "x86_64"))]
    groups_matching_ids_scalar(&idx[..full], targets, &mut f);
    groups_matching_ids_scalar(&idx[full..], targets, &mut |s, m| f(full + s, m));
}

/// Portable twin of [`sse2::groups_matching_ids`] (any length; the last group may be short).
fn groups_matching_ids_scalar(idx: &[u16], targets: &[u16], f: &mut impl FnMut(usize, u64)) {
    let targets = &targets[..targets.len().min(6)];
    for (g, grp) in idx.chunks(8).enumerate() {
        let mut ids = 0u64;
        for (j, i) in grp.iter().enumerate() {
            if let Some(k) = targets.iter().position(|t| t == i) {
                ids |= ((k + 1) as u64) << (8 * j);
            }
        }
        if ids != 0 {
            f(8 * g, ids);
        }
    }
}

/// SSE2 versions of the hot loops (SSE2 is part of the x86_64 baseline, so no runtime
/// detection is needed). The compiler's auto-vectoriser turns the masked lane sums of
/// [`pass_scalar`] into per-lane branches; written out they run ~4x faster. Each function
/// mirrors its portable twin operation by operation; the tests compare them.
/// AVX2 versions (runtime-detected) of the SSE2 loops, bit-identical to them: the same 8
/// f32 lanes per block of 1024 (one ymm register instead of two xmm), two blocks interleaved
/// so that their independent accumulators hide the add latency; the blocks' lane sums are
/// then added into the f64 totals in block order, as before.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BIG, Binning, M, NB, Scan};
    use std::arch::x86_64::*;

    /// [`super::Binning::bin`] on 8 lanes (the operations of the SSE2 `BinLanes::index`).
    #[inline(always)]
    unsafe fn index(b: &Binning, x: __m256) -> __m256i {
        // SAFETY: only called from AVX2-enabled functions (register operations only).
        unsafe {
            let t = _mm256_mul_ps(
                _mm256_sub_ps(x, _mm256_set1_ps(b.lo)),
                _mm256_set1_ps(b.scale),
            );
            let nbf = _mm256_set1_ps(NB as f32);
            let lt = _mm256_cmp_ps::<_CMP_LT_OQ>(t, nbf);
            let t1 = _mm256_blendv_ps(nbf, t, lt);
            let ge = _mm256_cmp_ps::<_CMP_GE_OQ>(t, _mm256_setzero_ps());
            let t2 = _mm256_blendv_ps(_mm256_set1_ps(-1.0), t1, ge);
            _mm256_sub_epi32(
                _mm256_castps_si256(_mm256_add_ps(t2, _mm256_set1_ps(8_388_609.0))),
                _mm256_set1_epi32(0x4B00_0000),
            )
        }
    }

    /// Two vectors of 8 bin indices (at most NB + 1) packed to 16 u16 in element order.
    #[inline(always)]
    unsafe fn pack16(a: __m256i, c: __m256i) -> __m256i {
        // SAFETY: only called from AVX2-enabled functions (register operations only).
        // `packs` works per 128-bit half: a0..3 c0..3 a4..7 c4..7; the permute restores order.
        unsafe { _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(a, c)) }
    }

    /// See [`super::sse2::bin_block`] (16 values per step; the tail portable).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn bin_block(b: &Binning, block: &[f32], idx: &mut [u16]) {
        let n = block.len().min(idx.len());
        let full = n / 16 * 16;
        let mut i = 0;
        // SAFETY: AVX2 is enabled; for i < full, block[i..i + 16] and idx[i..i + 16] are in
        // bounds (unaligned loads and store).
        unsafe {
            while i < full {
                let a = index(b, _mm256_loadu_ps(block.as_ptr().add(i)));
                let c = index(b, _mm256_loadu_ps(block.as_ptr().add(i + 8)));
                _mm256_storeu_si256(idx.as_mut_ptr().add(i) as *mut __m256i, pack16(a, c));
                i += 16;
            }
        }
        b.bin_block_scalar(&block[full..n], &mut idx[full..n]);
    }

    /// See [`super::sse2::bin_block_scan`] (16 values per step; the tail portable; at most
    /// 512 values).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn bin_block_scan<const INT: bool>(
        b: &Binning,
        block: &[f32],
        idx: &mut [u16],
    ) -> Scan {
        let n = block.len().min(idx.len());
        let full = n / 16 * 16;
        let mut fin_a = [0u32; 8];
        let mut bad_a = [0u32; 8];
        let mut notint_a = [0u32; 8];
        // SAFETY: AVX2 is enabled; for i < full, block[i..i + 16] and idx[i..i + 16] are in
        // bounds (unaligned loads and store); the final stores write 8 lanes into arrays of 8.
        unsafe {
            let zero = _mm256_setzero_ps();
            let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
            let m = _mm256_set1_ps(M);
            let big = _mm256_set1_ps(BIG);
            let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
            let mut fin = _mm256_setzero_si256();
            let mut bad = _mm256_setzero_si256();
            let mut notint = _mm256_setzero_si256();
            let mut one = |x: __m256| -> __m256i {
                let finite = _mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_sub_ps(x, x), zero);
                fin = _mm256_sub_epi32(fin, _mm256_castps_si256(finite));
                // Not greater than -inf: NaN or -inf (the SSE2 `cmpngt`, unordered true).
                let le = _mm256_cmp_ps::<_CMP_NGT_UQ>(x, ninf);
                bad = _mm256_sub_epi32(bad, _mm256_castps_si256(le));
                if INT {
                    let r = _mm256_sub_ps(_mm256_add_ps(x, m), m);
                    let off = _mm256_or_ps(
                        _mm256_cmp_ps::<_CMP_NEQ_UQ>(r, x),
                        _mm256_cmp_ps::<_CMP_NLT_UQ>(_mm256_and_ps(x, abs_mask), big),
                    );
                    notint =
                        _mm256_or_si256(notint, _mm256_castps_si256(_mm256_and_ps(off, finite)));
                }
                index(b, x)
            };
            let mut i = 0;
            while i < full {
                let a = one(_mm256_loadu_ps(block.as_ptr().add(i)));
                let c = one(_mm256_loadu_ps(block.as_ptr().add(i + 8)));
                _mm256_storeu_si256(idx.as_mut_ptr().add(i) as *mut __m256i, pack16(a, c));
                i += 16;
            }
            _mm256_storeu_si256(fin_a.as_mut_ptr() as *mut __m256i, fin);
            _mm256_storeu_si256(bad_a.as_mut_ptr() as *mut __m256i, bad);
            _mm256_storeu_si256(notint_a.as_mut_ptr() as *mut __m256i, notint);
        }
        let tail = b.bin_block_scan_scalar(&block[full..n], &mut idx[full..n]);
        Scan::from_lanes(INT, &fin_a, &bad_a, &notint_a, tail)
    }

    /// Whether the CPU has AVX2 (cached by `is_x86_feature_detected!`).
    pub(super) fn available() -> bool {
        std::is_x86_feature_detected!("avx2")
    }

    /// See [`super::sse2::groups_matching_ids`] (same calls in the same order): 16 indices
    /// per compare, each half then reported as its group of 8; a last lone group of 8 goes
    /// to the SSE2 version.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn groups_matching_ids(
        idx: &[u16],
        targets: &[u16],
        f: &mut impl FnMut(usize, u64),
    ) {
        let nt = targets.len().min(6);
        let mut t = [u16::MAX; 6];
        t[..nt].copy_from_slice(&targets[..nt]);
        let full = idx.len() / 16 * 16;
        // SAFETY (all four): AVX2 is enabled on this function.
        match nt {
            0 => {}
            1 => unsafe { ids_n::<1>(&idx[..full], &t, f) },
            2 => unsafe { ids_n::<2>(&idx[..full], &t, f) },
            3 => unsafe { ids_n::<3>(&idx[..full], &t, f) },
            _ => unsafe { ids_n::<6>(&idx[..full], &t, f) },
        }
        super::sse2::groups_matching_ids(&idx[full..], targets, &mut |g, m| f(full + g, m));
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn ids_n<const N: usize>(idx: &[u16], t: &[u16; 6], f: &mut impl FnMut(usize, u64)) {
        // SAFETY: AVX2 is enabled; each load reads 16 in-bounds u16.
        unsafe {
            let tv: [__m256i; N] = std::array::from_fn(|k| _mm256_set1_epi16(t[k] as i16));
            let kv: [__m256i; N] = std::array::from_fn(|k| _mm256_set1_epi16(k as i16 + 1));
            let zero = _mm256_setzero_si256();
            for (g, grp) in idx.chunks_exact(16).enumerate() {
                let v = _mm256_loadu_si256(grp.as_ptr() as *const __m256i);
                // Lane j: k + 1 for the target it equals (targets are distinct), else 0.
                let mut id = _mm256_and_si256(_mm256_cmpeq_epi16(v, tv[0]), kv[0]);
                for k in 1..N {
                    id = _mm256_or_si256(id, _mm256_and_si256(_mm256_cmpeq_epi16(v, tv[k]), kv[k]));
                }
                let nz = !_mm256_movemask_epi8(_mm256_cmpeq_epi16(id, zero)) as u32;
                if nz != 0 {
                    // Bytes of lanes 0..8 (low half), then 8..16 (high half), each packed as
                    // the SSE2 version packs its group.
                    let lo = _mm256_castsi256_si128(id);
                    let hi = _mm256_extracti128_si256::<1>(id);
                    if nz & 0xffff != 0 {
                        f(16 * g, _mm_cvtsi128_si64(_mm_packus_epi16(lo, lo)) as u64);
                    }
                    if nz >> 16 != 0 {
                        f(
                            16 * g + 8,
                            _mm_cvtsi128_si64(_mm_packus_epi16(hi, hi)) as u64,
                        );
                    }
                }
            }
        }
    }

    /// Lane sums of one block: (sums, sums of squares, counts).
    type Lanes = ([f32; 8], [f32; 8], [u32; 8]);

    /// See [`super::pass_scalar`].
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn pass(data: &[f32], c: f64, h: f64) -> (f64, f64, usize, f64) {
        let cf = c as f32;
        let hf = h as f32;
        let (mut s, mut s2, mut k) = (0f64, 0f64, 0usize);
        let mut add = |l: &Lanes| {
            s += l.0.iter().map(|&v| v as f64).sum::<f64>();
            s2 += l.1.iter().map(|&v| v as f64).sum::<f64>();
            k += l.2.iter().map(|&v| v as usize).sum::<usize>();
        };
        let pairs = data.chunks_exact(2048);
        let rest = pairs.remainder();
        for two in pairs {
            let (a, b) = two.split_at(1024);
            // SAFETY: AVX2 is enabled on this function; both blocks hold 1024 values.
            let (la, lb) = unsafe { two_blocks(a, b, cf, hf) };
            add(&la);
            add(&lb);
        }
        for block in rest.chunks(1024) {
            // SAFETY: as above.
            add(&unsafe { one_block(block, cf, hf) });
        }
        (s, s2, k, cf as f64)
    }

    /// One block of at most 1024 values (the remainder of 8 into lane 0, as the SSE2 path).
    #[target_feature(enable = "avx2")]
    unsafe fn one_block(block: &[f32], cf: f32, hf: f32) -> Lanes {
        let (mut ls, mut ls2, mut lk) = ([0f32; 8], [0f32; 8], [0u32; 8]);
        let chunks = block.chunks_exact(8);
        let rem = chunks.remainder();
        // SAFETY: AVX2 is enabled; each chunk holds 8 in-bounds f32; the stores write 8
        // lanes into arrays of 8.
        unsafe {
            let cv = _mm256_set1_ps(cf);
            let hv = _mm256_set1_ps(hf);
            let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
            let (mut s0, mut q0, mut k0) = (
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
                _mm256_setzero_si256(),
            );
            for ch in chunks {
                let d = _mm256_sub_ps(_mm256_loadu_ps(ch.as_ptr()), cv);
                let m = _mm256_cmp_ps::<_CMP_LE_OQ>(_mm256_and_ps(d, abs_mask), hv);
                let w = _mm256_and_ps(d, m);
                s0 = _mm256_add_ps(s0, w);
                q0 = _mm256_add_ps(q0, _mm256_mul_ps(w, w));
                k0 = _mm256_sub_epi32(k0, _mm256_castps_si256(m));
            }
            _mm256_storeu_ps(ls.as_mut_ptr(), s0);
            _mm256_storeu_ps(ls2.as_mut_ptr(), q0);
            _mm256_storeu_si256(lk.as_mut_ptr() as *mut __m256i, k0);
        }
        super::pass_tail(rem, cf, hf, &mut ls, &mut ls2, &mut lk);
        (ls, ls2, lk)
    }

    /// Two full blocks of 1024 values at once (independent accumulators).
    #[target_feature(enable = "avx2")]
    unsafe fn two_blocks(a: &[f32], b: &[f32], cf: f32, hf: f32) -> (Lanes, Lanes) {
        let mut la = ([0f32; 8], [0f32; 8], [0u32; 8]);
        let mut lb = la;
        // SAFETY: AVX2 is enabled; `a` and `b` are walked in step in chunks of 8 in-bounds
        // f32 (`zip` stops at the shorter); the stores write 8 lanes into arrays of 8.
        unsafe {
            let cv = _mm256_set1_ps(cf);
            let hv = _mm256_set1_ps(hf);
            let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
            let (mut sa, mut qa, mut ka) = (
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
                _mm256_setzero_si256(),
            );
            let (mut sb, mut qb, mut kb) = (
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
                _mm256_setzero_si256(),
            );
            for (ca, cb) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
                let da = _mm256_sub_ps(_mm256_loadu_ps(ca.as_ptr()), cv);
                let db = _mm256_sub_ps(_mm256_loadu_ps(cb.as_ptr()), cv);
                let ma = _mm256_cmp_ps::<_CMP_LE_OQ>(_mm256_and_ps(da, abs_mask), hv);
                let mb = _mm256_cmp_ps::<_CMP_LE_OQ>(_mm256_and_ps(db, abs_mask), hv);
                let wa = _mm256_and_ps(da, ma);
                let wb = _mm256_and_ps(db, mb);
                sa = _mm256_add_ps(sa, wa);
                sb = _mm256_add_ps(sb, wb);
                qa = _mm256_add_ps(qa, _mm256_mul_ps(wa, wa));
                qb = _mm256_add_ps(qb, _mm256_mul_ps(wb, wb));
                ka = _mm256_sub_epi32(ka, _mm256_castps_si256(ma));
                kb = _mm256_sub_epi32(kb, _mm256_castps_si256(mb));
            }
            _mm256_storeu_ps(la.0.as_mut_ptr(), sa);
            _mm256_storeu_ps(la.1.as_mut_ptr(), qa);
            _mm256_storeu_si256(la.2.as_mut_ptr() as *mut __m256i, ka);
            _mm256_storeu_ps(lb.0.as_mut_ptr(), sb);
            _mm256_storeu_ps(lb.1.as_mut_ptr(), qb);
            _mm256_storeu_si256(lb.2.as_mut_ptr() as *mut __m256i, kb);
        }
        (la, lb)
    }
}

/// AVX-512 (runtime-detected) gather of [`order_stats_fast`]: the bin of 16 values per step
/// with the f32 operations of [`Binning::bin`], one compare per target bin into a mask
/// register, and the matching values compressed into their bin's buffer (`vcompressps`), so
/// a pass costs the same whether the target bins hold ten values or a hundred thousand (the
/// integer clusters of a low-flux difference image). The values gathered are the same, in
/// the same order, as the group-by-group loop's; the order statistics are selections, so the
/// result is the same either way (tested).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Binning, NB};
    use std::arch::x86_64::*;

    /// Whether the CPU has the AVX-512 subsets used here, and POPCNT for the mask counts
    /// (without it they compile to a dozen-instruction bit trick on the loop's critical
    /// path) (cached by `is_x86_feature_detected!`).
    pub(super) fn available() -> bool {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("popcnt")
    }

    /// [`super::Binning::bin`] on 16 lanes (the operations of the AVX2 `index`).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn index(b: &Binning, x: __m512) -> __m512i {
        let t = _mm512_mul_ps(
            _mm512_sub_ps(x, _mm512_set1_ps(b.lo)),
            _mm512_set1_ps(b.scale),
        );
        let nbf = _mm512_set1_ps(NB as f32);
        // NaN compares false in both tests: the underflow bin, as the scalar `bin`
        let lt = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(t, nbf);
        let t1 = _mm512_mask_blend_ps(lt, nbf, t);
        let ge = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(t, _mm512_setzero_ps());
        let t2 = _mm512_mask_blend_ps(ge, _mm512_set1_ps(-1.0), t1);
        _mm512_sub_epi32(
            _mm512_castps_si512(_mm512_add_ps(t2, _mm512_set1_ps(8_388_609.0))),
            _mm512_set1_epi32(0x4B00_0000),
        )
    }

    /// Append to `out[k]` every value of `data` (in data order) whose bin is `targets[k]`
    /// (distinct, at most 6). Each buffer must have room for its bin's count plus 16 (the
    /// compressed vector is stored whole); returns `false`, with the buffers' lengths
    /// unchanged, as soon as a buffer would overflow (the histogram and this pass then
    /// disagree, and the caller falls back).
    pub(super) fn gather(b: &Binning, data: &[f32], targets: &[u16], out: &mut [Vec<f32>]) -> bool {
        assert!(available(), "the CPU must support AVX-512F and POPCNT");
        let nt = targets.len().min(6).min(out.len());
        // SAFETY: AVX-512F and POPCNT were checked just above.
        unsafe {
            match nt {
                0 => true,
                1 => gather_n::<1>(b, data, targets, out),
                2 => gather_n::<2>(b, data, targets, out),
                3 => gather_n::<3>(b, data, targets, out),
                4 => gather_n::<4>(b, data, targets, out),
                5 => gather_n::<5>(b, data, targets, out),
                _ => gather_n::<6>(b, data, targets, out),
            }
        }
    }

    #[target_feature(enable = "avx512f,popcnt")]
    fn gather_n<const N: usize>(
        b: &Binning,
        data: &[f32],
        targets: &[u16],
        out: &mut [Vec<f32>],
    ) -> bool {
        let tv: [__m512i; N] = std::array::from_fn(|k| _mm512_set1_epi32(i32::from(targets[k])));
        let mut len: [usize; N] = std::array::from_fn(|k| out[k].len());
        let cap: [usize; N] = std::array::from_fn(|k| out[k].capacity());
        let ptr: [*mut f32; N] = std::array::from_fn(|k| out[k].as_mut_ptr());
        let chunks = data.chunks_exact(16);
        let rem = chunks.remainder();
        for ch in chunks {
            // SAFETY: `ch` holds 16 in-bounds f32 (unaligned load).
            let x = unsafe { _mm512_loadu_ps(ch.as_ptr()) };
            let bin = index(b, x);
            // Branch-free: every target's compressed vector is stored and its length
            // advanced by the match count (zero mostly); a branch on "any match" is
            // mispredicted about half the time on the clustered low-flux difference images.
            for k in 0..N {
                let m = _mm512_cmpeq_epi32_mask(bin, tv[k]);
                if len[k] + 16 > cap[k] {
                    return false;
                }
                // SAFETY: len[k] + 16 ≤ capacity: the 16 stored floats lie in the buffer's
                // allocation (those past the count are overwritten or dropped).
                unsafe {
                    _mm512_storeu_ps(ptr[k].add(len[k]), _mm512_maskz_compress_ps(m, x));
                }
                len[k] += m.count_ones() as usize;
            }
        }
        for &x in rem {
            let bin = b.bin(x);
            for k in 0..N {
                if bin == usize::from(targets[k]) {
                    if len[k] + 1 > cap[k] {
                        return false;
                    }
                    // SAFETY: len[k] < capacity.
                    unsafe { ptr[k].add(len[k]).write(x) };
                    len[k] += 1;
                }
            }
        }
        for k in 0..N {
            // SAFETY: every element below len[k] was written above (or was already there),
            // and len[k] ≤ capacity.
            unsafe { out[k].set_len(len[k]) };
        }
        true
    }
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use super::{BIG, Binning, M, NB, Scan};
    use std::arch::x86_64::*;

    /// See [`super::scan_scalar`].
    pub(super) fn scan(data: &[f32]) -> Scan {
        let chunks = data.chunks_exact(4);
        let rem = chunks.remainder();
        let (mut n_finite, mut n_low_bad, mut not_int) = (0usize, 0usize, 0u32);
        // SAFETY: SSE2 is always available on x86_64; every load reads one in-bounds chunk
        // of 4 f32 (unaligned load).
        unsafe {
            let zero = _mm_setzero_ps();
            let ninf = _mm_set1_ps(f32::NEG_INFINITY);
            let m = _mm_set1_ps(M);
            let big = _mm_set1_ps(BIG);
            let abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7fff_ffff));
            let mut notint = _mm_setzero_si128();
            // Counts per lane stay below 2^31 in blocks of 2^20 chunks.
            let mut it = chunks.peekable();
            while it.peek().is_some() {
                let mut fin = _mm_setzero_si128();
                let mut bad = _mm_setzero_si128();
                for ch in it.by_ref().take(1 << 20) {
                    let x = _mm_loadu_ps(ch.as_ptr());
                    let finite = _mm_cmpeq_ps(_mm_sub_ps(x, x), zero);
                    fin = _mm_sub_epi32(fin, _mm_castps_si128(finite));
                    bad = _mm_sub_epi32(bad, _mm_castps_si128(_mm_cmpngt_ps(x, ninf)));
                    let r = _mm_sub_ps(_mm_add_ps(x, m), m);
                    let off = _mm_or_ps(
                        _mm_cmpneq_ps(r, x),
                        _mm_cmpnlt_ps(_mm_and_ps(x, abs_mask), big),
                    );
                    notint = _mm_or_si128(notint, _mm_castps_si128(_mm_and_ps(off, finite)));
                }
                let mut a = [0u32; 4];
                _mm_storeu_si128(a.as_mut_ptr() as *mut __m128i, fin);
                n_finite += a.iter().map(|&v| v as usize).sum::<usize>();
                _mm_storeu_si128(a.as_mut_ptr() as *mut __m128i, bad);
                n_low_bad += a.iter().map(|&v| v as usize).sum::<usize>();
            }
            let mut a = [0u32; 4];
            _mm_storeu_si128(a.as_mut_ptr() as *mut __m128i, notint);
            not_int |= a.iter().fold(0, |x, &v| x | v);
        }
        let tail = super::scan_scalar(rem);
        Scan {
            n_finite: n_finite + tail.n_finite,
            n_low_bad: n_low_bad + tail.n_low_bad,
            all_int: not_int == 0 && tail.all_int,
        }
    }

    /// See [`super::pass_scalar`] (same lanes: 8 f32 accumulators per block of 1024).
    pub(super) fn pass(data: &[f32], c: f64, h: f64) -> (f64, f64, usize, f64) {
        let cf = c as f32;
        let hf = h as f32;
        let (mut s, mut s2, mut k) = (0f64, 0f64, 0usize);
        for block in data.chunks(1024) {
            let mut ls = [0f32; 8];
            let mut ls2 = [0f32; 8];
            let mut lk = [0u32; 8];
            let chunks = block.chunks_exact(8);
            let rem = chunks.remainder();
            // SAFETY: SSE2 is always available on x86_64; each chunk holds 8 in-bounds f32
            // (two unaligned loads); the stores write 4 lanes into arrays of 8 at offsets 0
            // and 4.
            unsafe {
                let cv = _mm_set1_ps(cf);
                let hv = _mm_set1_ps(hf);
                let abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7fff_ffff));
                let (mut s0, mut s1) = (_mm_setzero_ps(), _mm_setzero_ps());
                let (mut q0, mut q1) = (_mm_setzero_ps(), _mm_setzero_ps());
                let (mut k0, mut k1) = (_mm_setzero_si128(), _mm_setzero_si128());
                for ch in chunks {
                    let d0 = _mm_sub_ps(_mm_loadu_ps(ch.as_ptr()), cv);
                    let d1 = _mm_sub_ps(_mm_loadu_ps(ch.as_ptr().add(4)), cv);
                    let m0 = _mm_cmple_ps(_mm_and_ps(d0, abs_mask), hv);
                    let m1 = _mm_cmple_ps(_mm_and_ps(d1, abs_mask), hv);
                    let w0 = _mm_and_ps(d0, m0);
                    let w1 = _mm_and_ps(d1, m1);
                    s0 = _mm_add_ps(s0, w0);
                    s1 = _mm_add_ps(s1, w1);
                    q0 = _mm_add_ps(q0, _mm_mul_ps(w0, w0));
                    q1 = _mm_add_ps(q1, _mm_mul_ps(w1, w1));
                    k0 = _mm_sub_epi32(k0, _mm_castps_si128(m0));
                    k1 = _mm_sub_epi32(k1, _mm_castps_si128(m1));
                }
                _mm_storeu_ps(ls.as_mut_ptr(), s0);
                _mm_storeu_ps(ls.as_mut_ptr().add(4), s1);
                _mm_storeu_ps(ls2.as_mut_ptr(), q0);
                _mm_storeu_ps(ls2.as_mut_ptr().add(4), q1);
                _mm_storeu_si128(lk.as_mut_ptr() as *mut __m128i, k0);
                _mm_storeu_si128(lk.as_mut_ptr().add(4) as *mut __m128i, k1);
            }
            super::pass_tail(rem, cf, hf, &mut ls, &mut ls2, &mut lk);
            s += ls.iter().map(|&v| v as f64).sum::<f64>();
            s2 += ls2.iter().map(|&v| v as f64).sum::<f64>();
            k += lk.iter().map(|&v| v as usize).sum::<usize>();
        }
        (s, s2, k, cf as f64)
    }

    /// See [`super::groups_matching_ids_scalar`] (`idx.len()` a multiple of 8, at most 6
    /// distinct targets). Dispatches on the target count so that the target vectors stay in
    /// registers and the compares unroll; unused slots hold `u16::MAX`, never a bin index.
    pub(super) fn groups_matching_ids(
        idx: &[u16],
        targets: &[u16],
        f: &mut impl FnMut(usize, u64),
    ) {
        let nt = targets.len().min(6);
        let mut t = [u16::MAX; 6];
        t[..nt].copy_from_slice(&targets[..nt]);
        match nt {
            0 => {}
            1 => ids_n::<1>(idx, &t, f),
            2 => ids_n::<2>(idx, &t, f),
            3 => ids_n::<3>(idx, &t, f),
            _ => ids_n::<6>(idx, &t, f),
        }
    }

    #[inline(always)]
    fn ids_n<const N: usize>(idx: &[u16], t: &[u16; 6], f: &mut impl FnMut(usize, u64)) {
        // SAFETY: SSE2 is always available on x86_64; each load reads 8 in-bounds u16.
        unsafe {
            let tv: [__m128i; N] = std::array::from_fn(|k| _mm_set1_epi16(t[k] as i16));
            let kv: [__m128i; N] = std::array::from_fn(|k| _mm_set1_epi16(k as i16 + 1));
            let zero = _mm_setzero_si128();
            for (g, grp) in idx.chunks_exact(8).enumerate() {
                let v = _mm_loadu_si128(grp.as_ptr() as *const __m128i);
                // Lane j: k + 1 for the target it equals (targets are distinct), else 0.
                let mut id = _mm_and_si128(_mm_cmpeq_epi16(v, tv[0]), kv[0]);
                for k in 1..N {
                    id = _mm_or_si128(id, _mm_and_si128(_mm_cmpeq_epi16(v, tv[k]), kv[k]));
                }
                if _mm_movemask_epi8(_mm_cmpeq_epi16(id, zero)) != 0xffff {
                    // 16-bit lanes (at most 6) packed to bytes.
                    let ids = _mm_cvtsi128_si64(_mm_packus_epi16(id, id)) as u64;
                    f(8 * g, ids);
                }
            }
        }
    }

    /// [`Binning::bin`] on 4 lanes: the same f32 operations (clamp t to [-1, NB] by
    /// compare/blend, then the 2^23 + 1 offset trick described there).
    struct BinLanes {
        lo: __m128,
        scale: __m128,
        zero: __m128,
        nbf: __m128,
        minus1: __m128,
        offset: __m128,
        base: __m128i,
    }

    impl BinLanes {
        #[inline(always)]
        fn new(b: &Binning) -> Self {
            // SAFETY: SSE2 is always available on x86_64 (no memory access).
            unsafe {
                Self {
                    lo: _mm_set1_ps(b.lo),
                    scale: _mm_set1_ps(b.scale),
                    zero: _mm_setzero_ps(),
                    nbf: _mm_set1_ps(NB as f32),
                    minus1: _mm_set1_ps(-1.0),
                    offset: _mm_set1_ps(8_388_609.0),
                    base: _mm_set1_epi32(0x4B00_0000),
                }
            }
        }

        #[inline(always)]
        fn index(&self, x: __m128) -> __m128i {
            // SAFETY: SSE2 is always available on x86_64 (register operations only).
            unsafe {
                let t = _mm_mul_ps(_mm_sub_ps(x, self.lo), self.scale);
                let lt = _mm_cmplt_ps(t, self.nbf);
                let t1 = _mm_or_ps(_mm_and_ps(lt, t), _mm_andnot_ps(lt, self.nbf));
                let ge = _mm_cmpge_ps(t, self.zero);
                let t2 = _mm_or_ps(_mm_and_ps(ge, t1), _mm_andnot_ps(ge, self.minus1));
                _mm_sub_epi32(_mm_castps_si128(_mm_add_ps(t2, self.offset)), self.base)
            }
        }
    }

    /// See [`Binning::bin_block_scan_scalar`]: [`bin_block`] and [`scan`] fused (at most 512
    /// values, so the u32 lane counts cannot overflow).
    pub(super) fn bin_block_scan<const INT: bool>(
        b: &Binning,
        block: &[f32],
        idx: &mut [u16],
    ) -> Scan {
        let n = block.len().min(idx.len());
        let full = n / 8 * 8;
        let mut fin_a = [0u32; 4];
        let mut bad_a = [0u32; 4];
        let mut notint_a = [0u32; 4];
        // SAFETY: SSE2 is always available on x86_64; for i < full, block[i..i + 8] and
        // idx[i..i + 8] are in bounds (unaligned loads and store); the final stores write
        // 4 lanes into arrays of 4.
        unsafe {
            let lanes = BinLanes::new(b);
            let zero = _mm_setzero_ps();
            let ninf = _mm_set1_ps(f32::NEG_INFINITY);
            let m = _mm_set1_ps(M);
            let big = _mm_set1_ps(BIG);
            let abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7fff_ffff));
            let mut fin = _mm_setzero_si128();
            let mut bad = _mm_setzero_si128();
            let mut notint = _mm_setzero_si128();
            let mut one = |x: __m128| -> __m128i {
                let finite = _mm_cmpeq_ps(_mm_sub_ps(x, x), zero);
                fin = _mm_sub_epi32(fin, _mm_castps_si128(finite));
                bad = _mm_sub_epi32(bad, _mm_castps_si128(_mm_cmpngt_ps(x, ninf)));
                if INT {
                    let r = _mm_sub_ps(_mm_add_ps(x, m), m);
                    let off = _mm_or_ps(
                        _mm_cmpneq_ps(r, x),
                        _mm_cmpnlt_ps(_mm_and_ps(x, abs_mask), big),
                    );
                    notint = _mm_or_si128(notint, _mm_castps_si128(_mm_and_ps(off, finite)));
                }
                lanes.index(x)
            };
            let mut i = 0;
            while i < full {
                let a = one(_mm_loadu_ps(block.as_ptr().add(i)));
                let c = one(_mm_loadu_ps(block.as_ptr().add(i + 4)));
                _mm_storeu_si128(
                    idx.as_mut_ptr().add(i) as *mut __m128i,
                    _mm_packs_epi32(a, c),
                );
                i += 8;
            }
            _mm_storeu_si128(fin_a.as_mut_ptr() as *mut __m128i, fin);
            _mm_storeu_si128(bad_a.as_mut_ptr() as *mut __m128i, bad);
            _mm_storeu_si128(notint_a.as_mut_ptr() as *mut __m128i, notint);
        }
        let tail = b.bin_block_scan_scalar(&block[full..n], &mut idx[full..n]);
        Scan::from_lanes(INT, &fin_a, &bad_a, &notint_a, tail)
    }

    /// See [`Binning::bin`] (same operations; the i32 results, at most NB + 1, are packed
    /// to u16 with signed saturation, which never saturates here).
    pub(super) fn bin_block(b: &Binning, block: &[f32], idx: &mut [u16]) {
        let n = block.len().min(idx.len());
        let full = n / 8 * 8;
        // SAFETY: SSE2 is always available on x86_64; for i < full, block[i..i + 8] and
        // idx[i..i + 8] are in bounds (unaligned loads and store).
        unsafe {
            let lanes = BinLanes::new(b);
            let one = |x: __m128| lanes.index(x);
            let mut i = 0;
            while i < full {
                let a = one(_mm_loadu_ps(block.as_ptr().add(i)));
                let c = one(_mm_loadu_ps(block.as_ptr().add(i + 4)));
                _mm_storeu_si128(
                    idx.as_mut_ptr().add(i) as *mut __m128i,
                    _mm_packs_epi32(a, c),
                );
                i += 8;
            }
        }
        b.bin_block_scalar(&block[full..n], &mut idx[full..n]);
    }
}

/// The histogram the fast path left behind (used by the clipping passes in unit mode).
#[derive(Debug, Clone, Copy)]
struct HistInfo {
    binning: Binning,
    /// Finite values in the underflow bin.
    under: usize,
    /// Values (finite or +inf) in the overflow bin.
    over: usize,
}

/// Sample, choose the binning and fill the histogram of the fast path, counting finite,
/// NaN/-inf and non-integer values in the same pass. The bin range comes from a strided
/// sample of ~2048 values: unit bins around its median when the sample is integer-valued
/// and narrow enough (re-binned with float bins if the data turn out not to be integers),
/// else 16384 bins over the sample's quartiles +- 4 IQR. Returns the scan if the data were
/// scanned, and the binning if the histogram in `sc` is valid (not for fewer than 4096
/// finite values, or a degenerate sample).
fn build_hist(data: &[f32], sc: &mut ClipScratch) -> (Option<Scan>, Option<Binning>) {
    if data.len() < 4096 {
        return (None, None);
    }
    let step = (data.len() / 2048).max(1);
    sc.sample.clear();
    sc.sample
        .extend(data.iter().step_by(step).copied().filter(|x| x.is_finite()));
    let m = sc.sample.len();
    if m < 256 {
        return (None, None);
    }
    let (first, float) = sample_binnings(&mut sc.sample);
    let Some(mut binning) = first else {
        return (None, None);
    };
    let mut scan = fill_hist(data, &binning, sc);
    if binning.unit && !scan.all_int {
        match float {
            Some(b) => {
                binning = b;
                scan = fill_hist(data, &binning, sc);
            }
            None => return (Some(scan), None),
        }
    }
    if scan.n_finite < 4096 {
        return (Some(scan), None);
    }
    (Some(scan), Some(binning))
}

/// The binnings [`build_hist`] tries for its sample (at least 256 finite values, reordered):
/// the first one (unit bins around the sample median when the sample is integer-valued and
/// narrow enough, else the float binning) and the float binning (16384 bins over the
/// sample's quartiles +- 4 IQR) it falls back to when the data turn out not to be integers.
fn sample_binnings(sample: &mut [f32]) -> (Option<Binning>, Option<Binning>) {
    let m = sample.len();
    let sample_int = scan_scalar(sample).all_int;
    let (_, q1, _) = sample.select_nth_unstable_by(m / 4, |a, b| a.total_cmp(b));
    let q1 = *q1 as f64;
    let (_, q2, _) = sample.select_nth_unstable_by(m / 2, |a, b| a.total_cmp(b));
    let q2 = *q2 as f64;
    let (_, q3, _) = sample.select_nth_unstable_by(3 * m / 4, |a, b| a.total_cmp(b));
    let q3 = *q3 as f64;
    let iqr = q3 - q1;
    let float_binning = || -> Option<Binning> {
        if !(iqr > 0.0 && iqr.is_finite()) {
            return None;
        }
        let lo = q1 - 4.0 * iqr;
        let scale = (NB as f64 / (9.0 * iqr)) as f32;
        if !(scale.is_finite() && scale > 0.0 && (lo as f32).is_finite()) {
            return None;
        }
        Some(Binning {
            lo: lo as f32,
            scale,
            unit: false,
        })
    };
    let float = float_binning();
    let first = if sample_int && 9.0 * iqr <= 0.8 * NB as f64 {
        Some(Binning {
            lo: (q2.round() - (NB / 2) as f64) as f32,
            scale: 1.0,
            unit: true,
        })
    } else {
        float
    };
    (first, float)
}

/// Stride of the sample [`build_hist`] takes from `len` values (`data.iter().step_by(..)`).
pub(crate) fn sample_step(len: usize) -> usize {
    (len / 2048).max(1)
}

/// Bins of the unit histogram (plus the under- and overflow bins 0 and `UNIT_BINS + 1`).
pub(crate) const UNIT_BINS: usize = NB;

/// A unit-bin histogram of an integer-valued image filled by the image's producer (the ISR,
/// while each row is in cache) exactly as [`build_hist`] would fill it: the producer picks a
/// provisional lower edge `lo` ([`IntHist::start`]), counts value `x` in bin
/// `clamp(x - lo, -1, UNIT_BINS) + 1` of any table ([`IntHist::tables`], [`count_bins`]),
/// takes the same sample as [`build_hist`] ([`sample_step`]) on the way, and calls
/// [`IntHist::finish_planned`] with it. [`afw_clipped_stats_f32_prebuilt`] then skips its own
/// sample and histogram pass; the result is bit-identical (tested).
#[derive(Debug, Default)]
pub struct IntHist {
    counts: Vec<u32>,
    lo: f32,
    len: usize,
    valid: bool,
}

impl IntHist {
    /// Start counting an image of `len` values into unit bins with a provisional lower edge
    /// `lo` (bin 1 holds the value `lo`; any integer with `|lo| < 2^22`): the producer
    /// counts before it has the sample that fixes the real edge, and
    /// [`IntHist::finish_planned`] shifts the counts to it.
    pub(crate) fn start(&mut self, len: usize, lo: i32) {
        self.valid = false;
        self.lo = lo as f32;
        self.len = len;
        for t in hist_tables(&mut self.counts) {
            t[..NB + 2].fill(0);
        }
    }

    /// The interleaved count tables (u16 indices at most `UNIT_BINS + 1`; see [`count_bins`]).
    pub(crate) fn tables(&mut self) -> [&mut [u32; HIST_LEN]; HIST_TABLES] {
        hist_tables(&mut self.counts)
    }

    /// Merge the tables and plan: `sample` is the image's strided sample (every
    /// [`sample_step`]`(len)`-th value), the one [`build_hist`] takes. When it would choose
    /// unit bins, the counts move to its lower edge (the same value keeps the same count, so
    /// the histogram is then the one [`build_hist`] fills); otherwise the histogram is not
    /// used. It is used only if every value fell inside both the provisional and the final
    /// unit bins, and those lie within +-2^22 (so every value is an integer that [`scan`]
    /// would accept: the scan [`build_hist`] would have made is then known without a pass).
    pub(crate) fn finish_planned(&mut self, sample: &mut [f32]) {
        self.valid = false;
        if self.len < 4096 || sample.len() < 256 || sample.iter().any(|x| !x.is_finite()) {
            return;
        }
        let lo = match sample_binnings(sample).0 {
            Some(b) if b.unit && b.lo.abs() < (1 << 22) as f32 => b.lo,
            _ => return,
        };
        merge_hist_tables(&mut self.counts);
        let h0 = &mut self.counts[..NB + 2];
        if h0[0] != 0 || h0[NB + 1] != 0 {
            return;
        }
        // Bin b of the final edge is bin b + d of the provisional one.
        let d = lo as i64 - self.lo as i64;
        if d.unsigned_abs() >= NB as u64 {
            return;
        }
        let d = d as isize;
        if d > 0 {
            let d = d as usize;
            h0.copy_within(1 + d..=NB, 1);
            h0[NB + 1 - d..=NB].fill(0);
        } else if d < 0 {
            let d = (-d) as usize;
            h0.copy_within(1..=NB - d, 1 + d);
            h0[1..=d].fill(0);
        }
        self.lo = lo;
        // Values shifted out of the bins are missing from the total.
        let total: u64 = h0[1..=NB].iter().map(|&c| c as u64).sum();
        self.valid = total == self.len as u64 && self.lo + ((NB + 1) as f32) < (1 << 22) as f32;
    }

    /// Whether the histogram is complete and usable (see [`IntHist::finish_planned`]).
    pub fn is_valid(&self) -> bool {
        self.valid
    }

    /// Forget the histogram (the image changed).
    pub fn invalidate(&mut self) {
        self.valid = false;
    }
}

/// Interleaved count tables (repeated bins in neighbouring values do not chain their
/// increments on one counter: store-to-load forwarding latency otherwise bounds the loop).
pub(crate) const HIST_TABLES: usize = 4;

/// The [`HIST_TABLES`] count tables of `v` (resized to hold them; indices are u16, so no
/// bounds checks in the increments).
pub(crate) fn hist_tables(v: &mut Vec<u32>) -> [&mut [u32; HIST_LEN]; HIST_TABLES] {
    v.resize(HIST_TABLES * HIST_LEN, 0);
    let mut it = v
        .chunks_exact_mut(HIST_LEN)
        .map(|c| <&mut [u32; HIST_LEN]>::try_from(c).ok());
    std::array::from_fn(|_| match it.next().flatten() {
        Some(t) => t,
        None => unreachable!("v was resized to HIST_TABLES * HIST_LEN"),
    })
}

/// Count every index of `idx` in the tables, round robin (index j in table j mod
/// [`HIST_TABLES`]).
#[inline]
pub(crate) fn count_bins(t: &mut [&mut [u32; HIST_LEN]; HIST_TABLES], idx: &[u16]) {
    let groups = idx.chunks_exact(HIST_TABLES);
    let rem = groups.remainder();
    for g in groups {
        for (j, &i) in g.iter().enumerate() {
            t[j][i as usize] += 1;
        }
    }
    for (j, &i) in rem.iter().enumerate() {
        t[j][i as usize] += 1;
    }
}

/// Add tables 1.. into table 0 (bins `..NB + 2`).
pub(crate) fn merge_hist_tables(v: &mut Vec<u32>) {
    let [h0, rest @ ..] = hist_tables(v);
    for t in rest {
        for (a, b) in h0[..NB + 2].iter_mut().zip(&t[..NB + 2]) {
            *a += *b;
        }
    }
}

/// Fill the interleaved histograms in `sc.fhist` (repeated bins do not chain on one
/// counter; u16-indexed tables of 2^16 entries need no bounds checks, and only the first
/// NB + 2 entries are ever touched, so only those are cleared) and scan the data on the way.
fn fill_hist(data: &[f32], binning: &Binning, sc: &mut ClipScratch) -> Scan {
    let mut total = Scan {
        n_finite: 0,
        n_low_bad: 0,
        all_int: true,
    };
    // Unit bins (integer data, a few dozen ADU wide): neighbouring values often share a
    // bin, so the increments go to interleaved tables (no chain on one counter). Float bins
    // spread the values over thousands of bins: one table, a quarter of the cache footprint.
    let single = !binning.unit;
    let mut tables = hist_tables(&mut sc.fhist);
    for t in tables.iter_mut().take(if single { 1 } else { HIST_TABLES }) {
        t[..NB + 2].fill(0);
    }
    // Bin indices for a block first (vectorised), then the increments.
    let mut idx = [0u16; 512];
    for block in data.chunks(512) {
        let idx = &mut idx[..block.len()];
        let sb = binning.bin_block_scan(block, idx);
        total.n_finite += sb.n_finite;
        total.n_low_bad += sb.n_low_bad;
        total.all_int &= sb.all_int;
        if single {
            let t = &mut *tables[0];
            for &i in idx.iter() {
                t[i as usize] += 1;
            }
        } else {
            count_bins(&mut tables, idx);
        }
    }
    if !single {
        merge_hist_tables(&mut sc.fhist);
    }
    total
}

/// Exact order statistics from the histogram [`build_hist`] left in `sc`: the wanted ranks
/// are located in their bins; in unit mode a bin is one value and the answer is read off,
/// otherwise one more pass gathers the values of the target bins (the gathered count is
/// checked against the histogram) and a selection inside each bin gives the exact order
/// statistics. Returns `None` when the histogram cannot answer (a rank in the under- or
/// overflow bin): the caller falls back to [`order_stats`].
fn order_stats_fast(
    data: &[f32],
    scan: &Scan,
    binning: Binning,
    ranks: &[usize; 6],
    sc: &mut ClipScratch,
    out: &mut [f64; 6],
) -> Option<HistInfo> {
    #[cfg(target_arch = "x86_64")]
    let compress = avx512::available();
    #[cfg(not(target_arch = "x86_64"))]
    let compress = false;
    order_stats_fast_with(data, scan, binning, ranks, sc, out, compress)
}

/// [`order_stats_fast`] with the gather chosen: `compress` (x86_64 with AVX-512 only) the
/// AVX-512 one, else the group-by-group loop. Same answer (tested).
fn order_stats_fast_with(
    data: &[f32],
    scan: &Scan,
    binning: Binning,
    ranks: &[usize; 6],
    sc: &mut ClipScratch,
    out: &mut [f64; 6],
    compress: bool,
) -> Option<HistInfo> {
    let hist = &sc.fhist[..NB + 2];
    let under = (hist[0] as usize).checked_sub(scan.n_low_bad)?;
    let over = hist[NB + 1] as usize;
    // Locate each rank: (bin, finite values below the bin).
    let mut targets = [(0usize, 0usize); 6];
    let (mut cum, mut b) = (under, 1usize);
    for (t, &r) in targets.iter_mut().zip(ranks) {
        if r < under {
            return None;
        }
        while b <= NB && cum + hist[b] as usize <= r {
            cum += hist[b] as usize;
            b += 1;
        }
        if b > NB {
            return None;
        }
        *t = (b, cum);
    }
    let info = HistInfo {
        binning,
        under,
        over,
    };
    if binning.unit {
        for (o, t) in out.iter_mut().zip(&targets) {
            *o = binning.lo as f64 + (t.0 - 1) as f64;
        }
        return Some(info);
    }
    // Distinct target bins; one more pass computes the bin indices again (the same
    // vectorised function, so the same indices) and gathers the values of those bins: groups
    // of 8 indices are compared with the targets in SSE2 and only groups with a match are
    // looked at one by one. The gathered counts are checked against the histogram.
    let mut bins: [usize; 6] = [usize::MAX; 6];
    let mut nb = 0usize;
    for t in &targets {
        if !bins[..nb].contains(&t.0) {
            bins[nb] = t.0;
            nb += 1;
        }
    }
    let mut bins16 = [0u16; 6];
    for k in 0..nb {
        bins16[k] = bins[k] as u16;
    }
    sc.cand.resize_with(6, Vec::new);
    sc.cand.iter_mut().for_each(|c| c.clear());
    // Per target bin: the first value seen and how many so far are bit-identical to it. The
    // values are only stored once a bin turns out to hold two distinct values: a bin holding
    // one repeated value (the spike of saturated pixels in the difference image of a
    // saturated pair) then costs a compare per value instead of a push and a
    // selection among hundreds of thousands of equal values. Same answer either way (tested).
    let mut first = [0f32; 6];
    let mut same = [0usize; 6];
    let mut mixed = [false; 6];
    let compress = compress && cfg!(target_arch = "x86_64");
    for k in 0..nb {
        sc.cand[k].reserve(hist[bins[k]] as usize + if compress { 16 } else { 0 });
    }
    #[cfg(target_arch = "x86_64")]
    if compress {
        if !avx512::gather(&binning, data, &bins16[..nb], &mut sc.cand) {
            return None;
        }
        // The same first value, repeat count and mixed flag as the loop below leaves.
        for k in 0..nb {
            if let Some(&f) = sc.cand[k].first() {
                first[k] = f;
                if sc.cand[k].iter().all(|x| x.to_bits() == f.to_bits()) {
                    same[k] = sc.cand[k].len();
                } else {
                    mixed[k] = true;
                }
            }
        }
    }
    let mut idx = [0u16; 512];
    for block in data.chunks(512).filter(|_| !compress) {
        let idx = &mut idx[..block.len()];
        binning.bin_block(block, idx);
        let cand = &mut sc.cand;
        // Per matching group: the target of each element (vector compares), then a loop over
        // the matching elements only (no per-element search, no per-target branch).
        for_groups_matching_ids(idx, &bins16[..nb], |start, ids| {
            let mut m = ids;
            while m != 0 {
                let j = (m.trailing_zeros() / 8) as usize;
                let k = ((m >> (8 * j)) & 0xff) as usize - 1;
                m &= !(0xffu64 << (8 * j));
                let x = block[start + j];
                if mixed[k] {
                    cand[k].push(x);
                } else if same[k] == 0 {
                    first[k] = x;
                    same[k] = 1;
                } else if x.to_bits() == first[k].to_bits() {
                    same[k] += 1;
                } else {
                    mixed[k] = true;
                    cand[k].extend(std::iter::repeat_n(first[k], same[k]));
                    cand[k].push(x);
                }
            }
        });
    }
    for k in 0..nb {
        let got = if mixed[k] { sc.cand[k].len() } else { same[k] };
        if got != hist[bins[k]] as usize {
            return None;
        }
    }
    for (i, t) in targets.iter().enumerate() {
        let k = bins[..nb].iter().position(|&b| b == t.0)?;
        if !mixed[k] {
            out[i] = first[k] as f64;
            continue;
        }
        let c = &mut sc.cand[k];
        let (_, v, _) = c.select_nth_unstable_by(ranks[i] - t.1, |a, b| a.total_cmp(b));
        out[i] = *v as f64;
    }
    Some(info)
}

/// One clipping pass from a unit-mode histogram: the same f32 window test as [`pass`] on
/// every bin's value, sums in f64 (exact products). `None` if the window could reach the
/// under- or overflow bin (then the data pass runs).
fn hist_pass(hist: &[u32], info: &HistInfo, c: f64, h: f64) -> Option<(f64, f64, usize, f64)> {
    let cf = c as f32;
    let hf = h as f32;
    let inside = |v: f32| (v - cf).abs() <= hf;
    let lo = info.binning.lo;
    let below = lo - 1.0;
    let above = lo + NB as f32;
    if info.under > 0 && (below >= cf || inside(below)) {
        return None;
    }
    if info.over > 0 && (above <= cf || inside(above)) {
        return None;
    }
    let c64 = cf as f64;
    let (mut s, mut s2, mut k) = (0f64, 0f64, 0usize);
    // The window's bins only (monotone test: find the first and last inside).
    // (two bins of margin against the f32 rounding of the bounds).
    let first = ((((cf - hf) - lo).floor() - 2.0).max(0.0) as usize).min(NB - 1);
    let last = ((((cf + hf) - lo).ceil() + 2.0).max(0.0) as usize).min(NB - 1);
    for (i, &cnt) in hist[1 + first..=1 + last].iter().enumerate() {
        if cnt == 0 {
            continue;
        }
        let v = lo + (first + i) as f32;
        if inside(v) {
            let d = v as f64 - c64;
            let w = cnt as f64;
            s += w * d;
            s2 += w * d * d;
            k += cnt as usize;
        }
    }
    Some((s, s2, k, c64))
}

/// Whether the windows `|v - c| <= h` of two clipping passes (`(c, h)` each, tested in f32
/// as [`pass`] does) provably keep the same values of the data that `hist` (with `binning`)
/// counts: every bin that a value between the two lower edges, or between the two upper
/// edges, could fall in (widened by far more than the f32 rounding of the test; the bin is
/// monotone in the value) is empty. `false` when in doubt (non-finite edges, a region
/// reaching the under- or overflow bin with values in it).
fn same_kept_set(
    hist: &[u32],
    binning: &Binning,
    (c0, h0): (f64, f64),
    (c1, h1): (f64, f64),
) -> bool {
    let edges = |c: f64, h: f64| {
        let (cf, hf) = (c as f32 as f64, h as f32 as f64);
        (cf - hf, cf + hf)
    };
    let (a0, b0) = edges(c0, h0);
    let (a1, b1) = edges(c1, h1);
    if ![a0, b0, a1, b1].iter().all(|v| v.is_finite()) {
        return false;
    }
    let eps = (c0.abs() + c1.abs() + h0.abs() + h1.abs()) * (2f64).powi(-18) + 1e-30;
    let empty = |x: f64, y: f64| {
        let (lo, hi) = (x.min(y) - eps, x.max(y) + eps);
        let (b_lo, b_hi) = (binning.bin(lo as f32), binning.bin(hi as f32));
        b_lo <= b_hi && hist[b_lo..=b_hi].iter().all(|&n| n == 0)
    };
    empty(a0, a1) && empty(b0, b1)
}

fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let d = b - a;
    if t >= 0.5 {
        b - d * (1.0 - t)
    } else {
        a + d * t
    }
}

/// One clipping pass: sum of d = x - c, sum of d^2 and count over |d| <= h, with c and h
/// rounded to f32. Lanes of 8 accumulate in f32 over blocks of 1024 values, then in f64: the
/// relative rounding of the sums is ~1e-7, far below the 1e-3 statistical precision of a
/// variance, and the order is fixed (thread-independent). Returns (sum d, sum d^2, k, c used).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn pass_scalar(data: &[f32], c: f64, h: f64) -> (f64, f64, usize, f64) {
    let cf = c as f32;
    let hf = h as f32;
    let (mut s, mut s2, mut k) = (0f64, 0f64, 0usize);
    for block in data.chunks(1024) {
        let mut ls = [0f32; 8];
        let mut ls2 = [0f32; 8];
        let mut lk = [0u32; 8];
        let chunks = block.chunks_exact(8);
        let rem = chunks.remainder();
        for ch in chunks {
            for j in 0..8 {
                let d = ch[j] - cf;
                let inside = d.abs() <= hf;
                let dw = if inside { d } else { 0.0 };
                ls[j] += dw;
                ls2[j] += dw * dw;
                lk[j] += inside as u32;
            }
        }
        pass_tail(rem, cf, hf, &mut ls, &mut ls2, &mut lk);
        s += ls.iter().map(|&v| v as f64).sum::<f64>();
        s2 += ls2.iter().map(|&v| v as f64).sum::<f64>();
        k += lk.iter().map(|&v| v as usize).sum::<usize>();
    }
    (s, s2, k, cf as f64)
}

/// The last values of a block of a `pass` (fewer than 8, after its groups of 8), added one
/// by one to lane 0 of the accumulators (sum d, sum d^2, count) where `|d| <= hf`. Shared
/// by [`pass_scalar`] and its SIMD versions (same operations, same order).
#[inline(always)]
fn pass_tail(
    rem: &[f32],
    cf: f32,
    hf: f32,
    ls: &mut [f32; 8],
    ls2: &mut [f32; 8],
    lk: &mut [u32; 8],
) {
    for &x in rem {
        let d = x - cf;
        if d.abs() <= hf {
            ls[0] += d;
            ls2[0] += d * d;
            lk[0] += 1;
        }
    }
}

/// afw MEANCLIP / VARIANCECLIP of `data` (see the module docs and
/// `caliper_core::robust::afw_clipped_stats` for the definition and errors).
pub fn afw_clipped_stats_f32(
    data: &[f32],
    params: &AfwClipParams,
    sc: &mut ClipScratch,
) -> Result<AfwClipStats, RobustError> {
    if params.n_iter == 0 {
        return Err(RobustError::InvalidParameter("n_iter must be at least 1"));
    }
    if !(params.n_sigma.is_finite() && params.n_sigma > 0.0) {
        return Err(RobustError::InvalidParameter(
            "n_sigma must be finite and positive",
        ));
    }
    let built = build_hist(data, sc);
    clipped_from_hist(data, params, sc, built)
}

/// [`afw_clipped_stats_f32`] of an image whose unit histogram its producer filled (`pre`,
/// see [`IntHist`]); without a valid one (wrong length, not planned, values outside the
/// bins) exactly [`afw_clipped_stats_f32`]. Bit-identical either way (tested). `pre` is
/// invalidated (its buffer is recycled).
pub fn afw_clipped_stats_f32_prebuilt(
    data: &[f32],
    params: &AfwClipParams,
    sc: &mut ClipScratch,
    pre: &mut IntHist,
) -> Result<AfwClipStats, RobustError> {
    if !(pre.valid && pre.len == data.len()) {
        pre.valid = false;
        return afw_clipped_stats_f32(data, params, sc);
    }
    pre.valid = false;
    if params.n_iter == 0 {
        return Err(RobustError::InvalidParameter("n_iter must be at least 1"));
    }
    if !(params.n_sigma.is_finite() && params.n_sigma > 0.0) {
        return Err(RobustError::InvalidParameter(
            "n_sigma must be finite and positive",
        ));
    }
    std::mem::swap(&mut pre.counts, &mut sc.fhist);
    let built = (
        Some(Scan {
            n_finite: data.len(),
            n_low_bad: 0,
            all_int: true,
        }),
        Some(Binning {
            lo: pre.lo,
            scale: 1.0,
            unit: true,
        }),
    );
    let r = clipped_from_hist(data, params, sc, built);
    std::mem::swap(&mut pre.counts, &mut sc.fhist);
    r
}

/// The rest of [`afw_clipped_stats_f32`] once [`build_hist`] (or an [`IntHist`]) answered.
fn clipped_from_hist(
    data: &[f32],
    params: &AfwClipParams,
    sc: &mut ClipScratch,
    (scanned, binning): (Option<Scan>, Option<Binning>),
) -> Result<AfwClipStats, RobustError> {
    // numpy 'linear' quantiles: h = (n-1) q, between order statistics floor(h) and floor(h)+1.
    let sc_info = scanned.unwrap_or_else(|| scan(data));
    let n = sc_info.n_finite;
    if n == 0 {
        return Err(RobustError::Empty);
    }
    let mut ranks = [0usize; 6];
    for (i, q) in [0.25f64, 0.5, 0.75].iter().enumerate() {
        let h = (n - 1) as f64 * q;
        let l = (h.floor() as usize).min(n - 1);
        ranks[2 * i] = l;
        ranks[2 * i + 1] = (l + 1).min(n - 1);
    }
    let mut lo_hi = [0f64; 6];
    let hist_info =
        binning.and_then(|b| order_stats_fast(data, &sc_info, b, &ranks, sc, &mut lo_hi));
    if hist_info.is_none() {
        order_stats(data, n, &ranks, sc, &mut lo_hi);
    }
    let quant = |i: usize, q: f64| {
        let h = (n - 1) as f64 * q;
        let t = h - h.floor();
        if t == 0.0 {
            lo_hi[2 * i]
        } else {
            lerp(lo_hi[2 * i], lo_hi[2 * i + 1], t)
        }
    };
    let (q25, median, q75) = (quant(0, 0.25), quant(1, 0.5), quant(2, 0.75));
    let iqr = q75 - q25;
    let mut centre = median;
    let mut half = params.n_sigma * IQR_TO_SIGMA * iqr;
    let (mut mean, mut variance, mut kept) = (f64::NAN, f64::NAN, 0usize);
    for p in 0..params.n_iter {
        if p > 0 {
            if kept < 2 {
                return Err(RobustError::TooFewKept { kept, needed: 2 });
            }
            let (c0, h0) = (centre, half);
            centre = mean;
            half = params.n_sigma * variance.max(0.0).sqrt();
            // Converged: the histogram shows no value between the previous window's edges
            // and the new ones, so this pass (and every later one) keeps the same values and
            // its mean and variance are those of the previous pass; a data pass would only
            // recompute them about another centre (equal up to the last bits).
            if let Some(info) = &hist_info
                && !info.binning.unit
                && same_kept_set(&sc.fhist[..NB + 2], &info.binning, (c0, h0), (centre, half))
            {
                break;
            }
        }
        // Unit-mode histogram (integer data): the pass over the bins gives the same kept set
        // (same f32 window test) with exact f64 sums.
        let from_hist = match &hist_info {
            Some(info) if info.binning.unit => hist_pass(&sc.fhist[..NB + 2], info, centre, half),
            _ => None,
        };
        let (s, s2, k, c_used) = match from_hist {
            Some(r) => r,
            None => pass(data, centre, half),
        };
        if k == 0 {
            return Err(RobustError::TooFewKept { kept: 0, needed: 1 });
        }
        let dm = s / k as f64;
        mean = c_used + dm;
        variance = if k > 1 {
            (s2 - s * dm) / (k - 1) as f64
        } else {
            f64::NAN
        };
        kept = k;
    }
    Ok(AfwClipStats {
        mean,
        variance,
        n_kept: kept,
        n_finite: n,
        median,
        iqr,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, Normal};

    /// The SSE2 loops against their portable twins, bit for bit, on values that exercise
    /// every branch: NaN, infinities, huge and tiny magnitudes, integers and not, values on
    /// and around the clipping edges and the histogram limits, lengths with remainders.
    #[test]
    fn vector_loops_match_portable_ones() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut v: Vec<f32> = (0..40_003)
            .map(|i| match i % 11 {
                0 => rng.random_range(-50.0f32..50.0).round(),
                1 => rng.random_range(-1e9f32..1e9),
                2 => rng.random_range(-1e-3f32..1e-3),
                3 => 4_194_304.0 + (i % 3) as f32 * 0.5,
                4 => -4_194_303.0,
                5 => 10.0 + 3.0,
                6 => 10.0 - 3.0,
                _ => rng.random_range(0.0f32..20.0),
            })
            .collect();
        v[17] = f32::NAN;
        v[101] = f32::INFINITY;
        v[202] = f32::NEG_INFINITY;
        for len in [
            0usize, 1, 7, 8, 9, 1023, 1025, 2047, 2048, 2055, 3079, 4096, 40_003,
        ] {
            let d = &v[..len];
            let (a, b) = (scan(d), scan_scalar(d));
            assert_eq!(
                (a.n_finite, a.n_low_bad, a.all_int),
                (b.n_finite, b.n_low_bad, b.all_int),
                "scan, len {len}"
            );
            for (c, h) in [(10.0, 3.0), (0.0, 1e30), (5.5, 0.0), (-20.0, 7.25)] {
                let b = pass_scalar(d, c, h);
                let bits =
                    |a: (f64, f64, usize, f64)| (a.0.to_bits(), a.1.to_bits(), a.2, a.3.to_bits());
                let mut paths = vec![("dispatched", pass(d, c, h))];
                #[cfg(target_arch = "x86_64")]
                {
                    paths.push(("sse2", sse2::pass(d, c, h)));
                    if avx2::available() {
                        // SAFETY: AVX2 was detected.
                        paths.push(("avx2", unsafe { avx2::pass(d, c, h) }));
                    } else {
                        eprintln!("no AVX2 on this CPU: the AVX2 clip pass is not tested");
                    }
                }
                for (name, a) in paths {
                    assert_eq!(
                        bits(a),
                        bits(b),
                        "pass ({name}), len {len}, c {c}, h {h}: {a:?} {b:?}"
                    );
                }
            }
        }
        let mut idx: Vec<u16> = (0..4003u32).map(|i| (i * 7919 % 16386) as u16).collect();
        // Every target present, in the first group, a middle one and the short last one.
        idx[0] = 5;
        idx[1234] = 16385;
        idx[4002] = 6;
        for targets in [
            &[5u16][..],
            &[0, 16385, 77],
            &[1, 2, 3, 4, 5, 6],
            &[9, 8, 7, 6],
        ] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for_groups_matching_ids(&idx, targets, |g, m| a.push((g, m)));
            groups_matching_ids_scalar(&idx, targets, &mut |g, m| b.push((g, m)));
            assert_eq!(a, b);
            // Both x86_64 paths whatever the dispatch picked, on an odd and an even number
            // of groups of 8.
            #[cfg(target_arch = "x86_64")]
            for n in [4000usize, 3992, 16, 8] {
                let (mut c, mut d) = (Vec::new(), Vec::new());
                groups_matching_ids_scalar(&idx[..n], targets, &mut |g, m| c.push((g, m)));
                sse2::groups_matching_ids(&idx[..n], targets, &mut |g, m| d.push((g, m)));
                assert_eq!(c, d, "sse2, {n}");
                if avx2::available() {
                    let mut e = Vec::new();
                    // SAFETY: AVX2 was detected.
                    unsafe {
                        avx2::groups_matching_ids(&idx[..n], targets, &mut |g, m| e.push((g, m)))
                    };
                    assert_eq!(c, e, "avx2, {n}");
                }
            }
            assert!(!a.is_empty());
            // Each id byte is exactly "which target, plus one".
            for (g, m) in &a {
                for j in 0..8.min(idx.len() - g) {
                    let want = targets
                        .iter()
                        .position(|&t| t == idx[g + j])
                        .map_or(0, |k| k + 1);
                    assert_eq!(((m >> (8 * j)) & 0xff) as usize, want);
                }
            }
        }
        let ints: Vec<f32> = (0..1000).map(|i| (i % 37) as f32 - 5.0).collect();
        assert!(scan(&ints).all_int && !scan(&v).all_int);
        for bn in [
            Binning {
                lo: 0.0,
                scale: 1.0,
                unit: true,
            },
            Binning {
                lo: -3.0,
                scale: 1234.5,
                unit: false,
            },
            Binning {
                lo: -2e9,
                scale: 1e-5,
                unit: false,
            },
        ] {
            for block in v
                .chunks(512)
                .chain(v.chunks(100))
                .chain(v[..300].chunks(15))
            {
                let (mut a, mut b) = ([0u16; 512], [0u16; 512]);
                bn.bin_block(block, &mut a);
                bn.bin_block_scalar(block, &mut b);
                assert_eq!(a[..block.len()], b[..block.len()]);
                // Both x86_64 paths whatever the dispatch picked (AVX2 when the CPU has it).
                #[cfg(target_arch = "x86_64")]
                {
                    let mut x = [0u16; 512];
                    sse2::bin_block(&bn, block, &mut x);
                    assert_eq!(x[..block.len()], b[..block.len()]);
                    let s1 = if bn.unit {
                        sse2::bin_block_scan::<true>(&bn, block, &mut x)
                    } else {
                        sse2::bin_block_scan::<false>(&bn, block, &mut x)
                    };
                    assert_eq!(x[..block.len()], b[..block.len()]);
                    let s2 = bn.bin_block_scan_scalar(block, &mut b);
                    assert_eq!(
                        (s1.n_finite, s1.n_low_bad, s1.all_int),
                        (s2.n_finite, s2.n_low_bad, s2.all_int && bn.unit)
                    );
                    if avx2::available() {
                        let mut y = [0u16; 512];
                        // SAFETY: AVX2 was detected.
                        unsafe { avx2::bin_block(&bn, block, &mut y) };
                        assert_eq!(y[..block.len()], b[..block.len()]);
                        // SAFETY: as above.
                        let s3 = unsafe {
                            if bn.unit {
                                avx2::bin_block_scan::<true>(&bn, block, &mut y)
                            } else {
                                avx2::bin_block_scan::<false>(&bn, block, &mut y)
                            }
                        };
                        assert_eq!(y[..block.len()], b[..block.len()]);
                        assert_eq!(
                            (s3.n_finite, s3.n_low_bad, s3.all_int),
                            (s1.n_finite, s1.n_low_bad, s1.all_int)
                        );
                    }
                }
                let (mut c, mut e) = ([0u16; 512], [0u16; 512]);
                let sa = bn.bin_block_scan(block, &mut c);
                let sb = bn.bin_block_scan_scalar(block, &mut e);
                assert_eq!(c[..block.len()], a[..block.len()]);
                assert_eq!(e[..block.len()], a[..block.len()]);
                // Float bins do not test integrality (reported false).
                assert_eq!(
                    (sa.n_finite, sa.n_low_bad, sa.all_int),
                    (sb.n_finite, sb.n_low_bad, sb.all_int && bn.unit)
                );
                assert!(a[..block.len()].iter().all(|&i| (i as usize) <= NB + 1));
            }
        }
        // Bin edge cases: NaN and -inf underflow, +inf overflow, unit bins exact.
        let bn = Binning {
            lo: 100.0,
            scale: 1.0,
            unit: true,
        };
        assert_eq!(bn.bin(f32::NAN), 0);
        assert_eq!(bn.bin(f32::NEG_INFINITY), 0);
        assert_eq!(bn.bin(99.0), 0);
        assert_eq!(bn.bin(100.0), 1);
        assert_eq!(bn.bin(100.0 + NB as f32 - 1.0), NB);
        assert_eq!(bn.bin(100.0 + NB as f32), NB + 1);
        assert_eq!(bn.bin(f32::INFINITY), NB + 1);
    }

    /// The histogram path answers by itself (no fallback) on a flat-like integer image (unit
    /// bins), the same image as non-integers (float bins + gather) and a difference-like
    /// image, and gives the order statistics of a full sort.
    #[test]
    fn histogram_path_is_taken_and_exact() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(33);
        let flat: Vec<f32> = (0..200_000)
            .map(|_| {
                Normal::<f64>::new(5000.0, 70.0)
                    .unwrap()
                    .sample(&mut rng)
                    .round() as f32
            })
            .collect();
        let frac: Vec<f32> = flat.iter().map(|&x| x * 1.000_37 - 0.3).collect();
        let diff: Vec<f32> = (0..100_003)
            .map(|_| Normal::<f64>::new(0.0, 11.0).unwrap().sample(&mut rng) as f32)
            .collect();
        for (ci, (data, unit)) in [(&flat, true), (&frac, false), (&diff, false)]
            .into_iter()
            .enumerate()
        {
            let mut sc = ClipScratch::default();
            let (scanned, binning) = build_hist(data, &mut sc);
            let (scan, binning) = (scanned.unwrap(), binning.unwrap());
            assert_eq!(binning.unit, unit, "case {ci}");
            let n = scan.n_finite;
            let ranks = quartile_rank_pairs(n);
            let mut out = [0f64; 6];
            order_stats_fast(data, &scan, binning, &ranks, &mut sc, &mut out).unwrap();
            let mut sorted = data.clone();
            sorted.sort_by(|a, b| a.total_cmp(b));
            for (o, &r) in out.iter().zip(&ranks) {
                assert_eq!(*o, sorted[r] as f64, "case {ci} rank {r}");
            }
        }
    }

    /// The ranks `r, r + 1` for `r` = `n/4`, `n/2` and `3n/4` (test order statistics).
    fn quartile_rank_pairs(n: usize) -> [usize; 6] {
        let mut ranks = [0usize; 6];
        for (i, r) in [n / 4, n / 2, 3 * n / 4].iter().enumerate() {
            ranks[2 * i] = *r;
            ranks[2 * i + 1] = r + 1;
        }
        ranks
    }

    /// What an [`IntHist`] holds is what `build_hist` builds from the data: same binning,
    /// same counts (used by the ISR tests).
    pub(crate) fn int_hist_matches_build(data: &[f32], pre: &IntHist) -> bool {
        let mut sc = ClipScratch::default();
        let (scan, binning) = build_hist(data, &mut sc);
        let (Some(scan), Some(b)) = (scan, binning) else {
            return false;
        };
        b.unit
            && b.lo.to_bits() == pre.lo.to_bits()
            && scan.n_finite == data.len()
            && scan.n_low_bad == 0
            && scan.all_int
            && sc.fhist[..NB + 2] == pre.counts[..NB + 2]
    }

    /// A unit histogram counted against a provisional edge and moved to the planned one
    /// (`IntHist::start`, `finish_planned`): the same histogram as `build_hist` for shifts
    /// up and down and none; not valid when values fell outside the provisional bins, when
    /// the shift pushes counted values out of the final bins, or for a non-unit sample.
    #[test]
    fn int_hist_moves_to_the_planned_edge() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        let nrm = Normal::new(500.0f64, 12.0).unwrap();
        let data: Vec<f32> = (0..50_000)
            .map(|_| nrm.sample(&mut rng).round() as f32)
            .collect();
        let count = |lo: i32, data: &[f32]| {
            let mut h = IntHist::default();
            h.start(data.len(), lo);
            let idx: Vec<u16> = data
                .iter()
                .map(|&x| (x as i64 - lo as i64 + 1).clamp(0, NB as i64 + 1) as u16)
                .collect();
            count_bins(&mut h.tables(), &idx);
            let mut sample: Vec<f32> = data
                .iter()
                .step_by(sample_step(data.len()))
                .copied()
                .collect();
            h.finish_planned(&mut sample);
            h
        };
        // The planned edge is round(median) - NB / 2 = 500 - 8192.
        for lo in [500 - 8192, 500 - 8192 + 37, 500 - 8192 - 4000, 400 - 8192] {
            let h = count(lo, &data);
            assert!(h.is_valid(), "provisional edge {lo}");
            assert!(int_hist_matches_build(&data, &h), "provisional edge {lo}");
        }
        // Values below the provisional bins.
        assert!(!count(450, &data).is_valid());
        // A value inside the final bins but below the provisional ones.
        let mut wide = data.clone();
        wide[7] = 500.0 - 8000.0;
        assert!(count(500 - 8192, &wide).is_valid());
        assert!(!count(500 - 8192 + 300, &wide).is_valid());
        // A value inside the provisional bins that the shift moves below the final ones.
        wide[7] = 500.0 - 9000.0;
        assert!(!count(500 - 8192 - 4000, &wide).is_valid());
        assert!(!count(500 + 20_000, &data).is_valid());
        // A sample that build_hist would give float bins (not integers).
        let halves: Vec<f32> = data.iter().map(|&x| x + 0.5).collect();
        assert!(!count(500 - 8192, &halves).is_valid());
    }

    /// The gather of the float-bin path with a spike of one repeated value in the target bins
    /// (the difference image of a saturated pair): a pure spike (answered without storing the
    /// values), a spike whose bin also holds a neighbouring value that first appears late
    /// (stored from then on, the earlier copies restored), and +0.0 / -0.0 in one bin (two
    /// distinct bit patterns). Exact order statistics against a full sort, and the whole
    /// clipped statistics against core.
    #[test]
    fn gather_handles_spikes_exactly() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(77);
        let base: Vec<f32> = (0..120_001)
            .map(|_| Normal::<f64>::new(0.0, 6.0).unwrap().sample(&mut rng) as f32)
            .collect();
        let spike = 0.37f32;
        let mut pure = base.clone();
        for x in pure.iter_mut().step_by(3) {
            *x = spike;
        }
        let mut late = pure.clone();
        let next = f32::from_bits(spike.to_bits() + 1);
        // The second half of the spike one ulp higher: the median is `next`, first seen late.
        for x in late.iter_mut().skip(60_000) {
            if *x == spike {
                *x = next;
            }
        }
        let mut zeros = base.clone();
        for (i, x) in zeros.iter_mut().enumerate() {
            match i % 10 {
                0 | 1 => *x = 0.0,
                2 => *x = -0.0,
                _ => {}
            }
        }
        for (ci, data) in [&pure, &late, &zeros].into_iter().enumerate() {
            let mut sc = ClipScratch::default();
            let (scanned, binning) = build_hist(data, &mut sc);
            let (Some(scan), Some(binning)) = (scanned, binning) else {
                panic!("case {ci}: no histogram");
            };
            assert!(!binning.unit, "case {ci}");
            let n = scan.n_finite;
            let ranks = quartile_rank_pairs(n);
            let mut sorted = data.clone();
            sorted.sort_by(|a, b| a.total_cmp(b));
            // both gathers (the AVX-512 one only where the CPU has it)
            for compress in [false, true] {
                #[cfg(target_arch = "x86_64")]
                if compress && !avx512::available() {
                    println!("no AVX-512F on this CPU: its gather is not tested");
                    continue;
                }
                let mut out = [0f64; 6];
                order_stats_fast_with(data, &scan, binning, &ranks, &mut sc, &mut out, compress)
                    .unwrap();
                for (o, &r) in out.iter().zip(&ranks) {
                    assert_eq!(
                        o.to_bits(),
                        (sorted[r] as f64).to_bits(),
                        "case {ci} rank {r} compress {compress}"
                    );
                }
            }
        }
        check_against_core(&[pure, late, zeros]);
    }

    /// The AVX-512 gather against a plain filter on [`Binning::bin`]: the values of each
    /// target bin in data order, for 1 to 6 targets (including the under- and overflow bins
    /// with NaN and infinities), lengths with remainders of 16, clustered values; and a
    /// buffer without room is refused with its length unchanged.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_gather_matches_filter() {
        if !avx512::available() {
            println!("no AVX-512F on this CPU: its gather is not tested");
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(91);
        let mut data: Vec<f32> = (0..5_003)
            .map(|i| {
                let x = Normal::<f64>::new(0.0, 3.0).unwrap().sample(&mut rng) as f32;
                if i % 3 == 0 { x.round() } else { x }
            })
            .collect();
        data[7] = f32::NAN;
        data[100] = f32::INFINITY;
        data[101] = f32::NEG_INFINITY;
        data[5_000] = 1e30;
        let b = Binning {
            lo: -12.0,
            scale: (NB as f64 / 24.0) as f32,
            unit: false,
        };
        let common: Vec<u16> = {
            let mut c: Vec<(u32, u16)> = Vec::new();
            let mut counts = vec![0u32; NB + 2];
            for &x in &data {
                counts[b.bin(x)] += 1;
            }
            for (i, &n) in counts.iter().enumerate() {
                c.push((n, i as u16));
            }
            c.sort_by(|a, b| b.cmp(a));
            c.iter().map(|x| x.1).collect()
        };
        for len in [0usize, 15, 16, 17, 4_099, data.len()] {
            for nt in 1..=6 {
                let mut targets: Vec<u16> = common[..nt - 1].to_vec();
                targets.push(if nt % 2 == 0 { 0 } else { (NB + 1) as u16 });
                let mut out: Vec<Vec<f32>> =
                    (0..nt).map(|_| Vec::with_capacity(len + 16)).collect();
                assert!(avx512::gather(&b, &data[..len], &targets, &mut out));
                for (k, &t) in targets.iter().enumerate() {
                    let want: Vec<u32> = data[..len]
                        .iter()
                        .filter(|&&x| b.bin(x) == t as usize)
                        .map(|x| x.to_bits())
                        .collect();
                    let got: Vec<u32> = out[k].iter().map(|x| x.to_bits()).collect();
                    assert_eq!(got, want, "len {len} targets {nt} k {k}");
                }
            }
        }
        let mut small = vec![Vec::with_capacity(4)];
        assert!(!avx512::gather(&b, &data, &common[..1], &mut small));
        assert!(small[0].is_empty());
    }

    /// Adversarial inputs for the histogram path (sizes above its 4096-value threshold):
    /// integer data of small spread (unit bins, many ties), integer data wider than the unit
    /// histogram (float bins with ties), half-integers, a saturated image (70 % one value),
    /// a constant image (integer and not), two separated modes (the median between them),
    /// heavy tails (Cauchy), NaN and infinities, and sizes at the threshold.
    #[test]
    fn histogram_path_matches_core_on_adversarial_data() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
        let mut cases: Vec<Vec<f32>> = Vec::new();
        let g = |m: f64, s: f64, n: usize, rng: &mut rand_chacha::ChaCha8Rng| -> Vec<f32> {
            let d = Normal::new(m, s).unwrap();
            (0..n).map(|_| d.sample(rng) as f32).collect()
        };
        // Integer, sigma 8 ADU, with outliers, NaN and infinities.
        let mut v: Vec<f32> = g(70.0, 8.0, 300_001, &mut rng)
            .iter()
            .map(|x| x.round())
            .collect();
        for i in 0..200 {
            v[i * 1499] = if i % 2 == 0 { 262_143.0 } else { -5000.0 };
        }
        v[3] = f32::NAN;
        v[5] = f32::INFINITY;
        v[8] = f32::NEG_INFINITY;
        cases.push(v);
        // Integer, sigma 3000: too wide for unit bins.
        cases.push(
            g(50_000.0, 3000.0, 200_000, &mut rng)
                .iter()
                .map(|x| x.round())
                .collect(),
        );
        // Integer, sigma 1: a handful of distinct values.
        cases.push(
            g(10.0, 1.0, 100_000, &mut rng)
                .iter()
                .map(|x| x.round())
                .collect(),
        );
        // Half-integers (float bins, ties).
        cases.push(
            g(-200.0, 20.0, 100_000, &mut rng)
                .iter()
                .map(|x| (2.0 * x).round() / 2.0)
                .collect(),
        );
        // Saturated: 70 % at 100 000 ADU.
        let mut v: Vec<f32> = g(99_000.0, 300.0, 100_000, &mut rng)
            .iter()
            .map(|x| x.round().min(100_000.0))
            .collect();
        for x in v.iter_mut().take(70_000) {
            *x = 100_000.0;
        }
        cases.push(v);
        cases.push(vec![7.0; 50_000]);
        cases.push(vec![7.25; 50_000]);
        // Two modes, the median between them.
        let mut v = g(0.0, 10.0, 50_000, &mut rng);
        v.extend(g(10_000.0, 10.0, 50_000, &mut rng));
        cases.push(v);
        // Cauchy tails.
        cases.push(
            (0..100_000)
                .map(|_| {
                    let u: f64 = rng.random_range(-1.5..1.5);
                    (100.0 + 5.0 * u.tan()) as f32
                })
                .collect(),
        );
        for n in [4095usize, 4096, 4097, 5000] {
            cases.push(g(1000.0, 30.0, n, &mut rng));
            cases.push(
                g(1000.0, 30.0, n, &mut rng)
                    .iter()
                    .map(|x| x.round())
                    .collect(),
            );
        }
        check_against_core(&cases);
    }

    /// Compare with core on every case: quartiles exactly; the clipping windows use f32
    /// centre and width, so a value within ~1e-7 of a window edge may fall the other way:
    /// n_kept to 1e-5, mean to 1e-6 of the spread, variance to 1e-5 relative.
    fn check_against_core(cases: &[Vec<f32>]) {
        for (ci, c) in cases.iter().enumerate() {
            for params in [AfwClipParams::cp_pipe_ptc(), AfwClipParams::default()] {
                let f64s: Vec<f64> = c.iter().map(|&x| x as f64).collect();
                let a = caliper_core::robust::afw_clipped_stats(&f64s, &params, &mut Vec::new());
                let b = afw_clipped_stats_f32(c, &params, &mut ClipScratch::default());
                match (a, b) {
                    (Ok(a), Ok(b)) => {
                        // Quartiles exactly; the clipping windows use f32 centre and width, so a
                        // value within ~1e-7 of a window edge may fall the other way: n_kept to
                        // 1e-5, mean to 1e-9 of the spread, variance to 1e-5 relative.
                        assert_eq!(
                            (a.median, a.iqr, a.n_finite),
                            (b.median, b.iqr, b.n_finite),
                            "case {ci}"
                        );
                        assert!(
                            (a.n_kept as f64 - b.n_kept as f64).abs() <= 1e-5 * a.n_kept as f64,
                            "case {ci}: {} {}",
                            a.n_kept,
                            b.n_kept
                        );
                        let spread = a.variance.abs().sqrt().max(1e-3);
                        assert!(
                            (a.mean - b.mean).abs() <= 1e-6 * spread,
                            "case {ci}: {} {}",
                            a.mean,
                            b.mean
                        );
                        let vr = if a.variance == 0.0 {
                            (b.variance).abs()
                        } else {
                            ((a.variance - b.variance) / a.variance).abs()
                        };
                        assert!(
                            vr <= 1e-5 || (a.variance.is_nan() && b.variance.is_nan()),
                            "case {ci}: {} {}",
                            a.variance,
                            b.variance
                        );
                    }
                    (Err(a), Err(b)) => assert_eq!(a, b, "case {ci}"),
                    (a, b) => panic!("case {ci}: {a:?} vs {b:?}"),
                }
            }
        }
    }

    /// The convergence stop: on D-like float data (Gaussian, no values near the 5.5 sigma
    /// edges) the second pass keeps the same values, so three iterations give exactly the
    /// result of one (the stop fired) and match core's three full iterations; with values
    /// planted between the first and second windows' edges it must not fire (core's kept
    /// count exactly). `same_kept_set` itself on hand-made windows.
    #[test]
    fn converged_passes_stop_with_the_same_result() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(77);
        let nrm = Normal::new(0.0f64, 9.0).unwrap();
        let v: Vec<f32> = (0..400_000)
            .map(|_| nrm.sample(&mut rng) as f32)
            .filter(|x| x.abs() < 40.0)
            .collect();
        let p3 = AfwClipParams::cp_pipe_ptc();
        let p1 = AfwClipParams { n_iter: 1, ..p3 };
        let mut sc = ClipScratch::default();
        let a = afw_clipped_stats_f32(&v, &p3, &mut sc).unwrap();
        let b = afw_clipped_stats_f32(&v, &p1, &mut sc).unwrap();
        assert_eq!(
            (a.mean.to_bits(), a.variance.to_bits(), a.n_kept),
            (b.mean.to_bits(), b.variance.to_bits(), b.n_kept)
        );
        assert_eq!(a.n_kept, v.len());
        check_against_core(std::slice::from_ref(&v));
        // Values between the first window (median +- 5.5 x 0.7413 IQR) and the second
        // (mean +- 5.5 sigma, wider here: the tails are heavier than Gaussian).
        let mut w = v.clone();
        let f64s: Vec<f64> = w.iter().map(|&x| x as f64).collect();
        let first = caliper_core::robust::afw_clipped_stats(&f64s, &p1, &mut Vec::new()).unwrap();
        let h1 = p3.n_sigma * IQR_TO_SIGMA * first.iqr;
        for k in 0..2000 {
            w[k * 97] = (first.median + h1 * (1.0 + 0.05 * (k % 7) as f64 / 7.0)) as f32;
        }
        let wf: Vec<f64> = w.iter().map(|&x| x as f64).collect();
        let core = caliper_core::robust::afw_clipped_stats(&wf, &p3, &mut Vec::new()).unwrap();
        let c = afw_clipped_stats_f32(&w, &p3, &mut sc).unwrap();
        assert_eq!(c.n_kept, core.n_kept);
        let once = afw_clipped_stats_f32(&w, &p1, &mut sc).unwrap();
        assert_ne!(
            c.n_kept, once.n_kept,
            "the planted values change the kept set"
        );
        // Hand-made: float bins over [0, 100).
        let b = Binning {
            lo: 0.0,
            scale: (NB as f64 / 100.0) as f32,
            unit: false,
        };
        let mut hist = vec![0u32; NB + 2];
        hist[b.bin(50.0)] = 10;
        assert!(same_kept_set(&hist, &b, (50.0, 10.0), (50.0, 10.5)));
        assert!(same_kept_set(&hist, &b, (50.0, 10.0), (50.0, 10.0)));
        hist[b.bin(60.2)] = 1;
        assert!(!same_kept_set(&hist, &b, (50.0, 10.0), (50.0, 10.5)));
        assert!(!same_kept_set(&hist, &b, (50.0, 10.0), (50.3, 10.0)));
        // A value right at an edge counts.
        hist[b.bin(60.2)] = 0;
        hist[b.bin(60.0)] = 1;
        assert!(!same_kept_set(&hist, &b, (50.0, 10.0), (50.0, 10.0)));
        assert!(!same_kept_set(
            &hist,
            &b,
            (50.0, f64::INFINITY),
            (50.0, 10.0)
        ));
    }

    /// Against core's reference implementation on Gaussian data with outliers, a constant
    /// image, tiny and even-sized inputs: quartiles exactly equal, mean and variance to 1e-12
    /// relative (only the summation order differs).
    #[test]
    fn matches_core_afw_clipped_stats() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let norm = Normal::new(12_345.6, 110.0).unwrap();
        let mut cases: Vec<Vec<f32>> = Vec::new();
        let mut v: Vec<f32> = (0..200_001).map(|_| norm.sample(&mut rng) as f32).collect();
        for _ in 0..300 {
            let i = rng.random_range(0..v.len());
            v[i] = 262_143.0;
        }
        v[7] = f32::NAN;
        cases.push(v);
        cases.push(vec![5.0; 1000]);
        cases.push(vec![1.0, 2.0, 3.0, 4.0]);
        cases.push((0..37).map(|i| (i * i % 17) as f32).collect());
        check_against_core(&cases);
    }

    /// Times one clipping pass over a D-sized image (1.02e6 values), SSE2 against AVX2,
    /// alternating (ignored: a measurement, not a check):
    /// `cargo test --release -p caliper-ccd-ptc --lib -- --ignored --nocapture pass_timing`.
    #[test]
    #[ignore]
    fn pass_timing() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let nrm = Normal::new(0.0f32, 30.0).unwrap();
        let v: Vec<f32> = (0..1_018_000).map(|_| nrm.sample(&mut rng)).collect();
        let mut best = [f64::INFINITY; 3];
        let mut keep = 0.0;
        for _ in 0..30 {
            for (m, b) in best.iter_mut().enumerate() {
                let t0 = std::time::Instant::now();
                let r = match m {
                    0 => pass_scalar(&v, 0.5, 90.0),
                    #[cfg(target_arch = "x86_64")]
                    1 => sse2::pass(&v, 0.5, 90.0),
                    #[cfg(target_arch = "x86_64")]
                    _ if avx2::available() => unsafe { avx2::pass(&v, 0.5, 90.0) },
                    _ => pass(&v, 0.5, 90.0),
                };
                *b = b.min(t0.elapsed().as_secs_f64());
                keep += r.0;
            }
        }
        eprintln!(
            "clip pass, ns per value: scalar {:.3}, sse2 {:.3}, avx2 {:.3} ({keep})",
            best[0] * 1e9 / v.len() as f64,
            best[1] * 1e9 / v.len() as f64,
            best[2] * 1e9 / v.len() as f64
        );
        // Binning (the histogram pass's vector part), SSE2 against the dispatched path.
        let bn = Binning {
            lo: -200.0,
            scale: 40.0,
            unit: false,
        };
        let mut idx = [0u16; 512];
        let mut best = [f64::INFINITY; 2];
        for _ in 0..30 {
            for (m, b) in best.iter_mut().enumerate() {
                let t0 = std::time::Instant::now();
                for block in v.chunks(512) {
                    let sc = match m {
                        #[cfg(target_arch = "x86_64")]
                        0 => sse2::bin_block_scan::<false>(&bn, block, &mut idx),
                        _ => bn.bin_block_scan(block, &mut idx),
                    };
                    keep += (sc.n_finite + idx[7] as usize) as f64;
                }
                *b = b.min(t0.elapsed().as_secs_f64());
            }
        }
        eprintln!(
            "binning, ns per value: sse2 {:.3}, dispatched {:.3} ({keep})",
            best[0] * 1e9 / v.len() as f64,
            best[1] * 1e9 / v.len() as f64
        );
        // The gather's target lookup: 6 target bins (quartiles and median), SSE2 against the
        // dispatched path.
        let mut all = vec![0u16; v.len()];
        for (block, out) in v.chunks(512).zip(all.chunks_mut(512)) {
            bn.bin_block(block, out);
        }
        let targets = [7998u16, 7999, 8000, 8001, 8002, 8003];
        let n8 = all.len() / 8 * 8;
        let mut best = [f64::INFINITY; 2];
        for _ in 0..30 {
            for (m, b) in best.iter_mut().enumerate() {
                let mut hits = 0usize;
                let t0 = std::time::Instant::now();
                match m {
                    #[cfg(target_arch = "x86_64")]
                    0 => sse2::groups_matching_ids(&all[..n8], &targets, &mut |_, ids| {
                        hits += ids.count_ones() as usize
                    }),
                    _ => for_groups_matching_ids(&all[..n8], &targets, |_, ids| {
                        hits += ids.count_ones() as usize
                    }),
                }
                *b = b.min(t0.elapsed().as_secs_f64());
                keep += hits as f64;
            }
        }
        eprintln!(
            "target lookup, ns per index: sse2 {:.3}, dispatched {:.3} ({keep})",
            best[0] * 1e9 / n8 as f64,
            best[1] * 1e9 / n8 as f64
        );
    }
}
