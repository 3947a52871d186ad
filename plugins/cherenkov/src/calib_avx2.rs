//! AVX2 build of the default calibration path (NeighborPeakWindowSum on sampled waveforms of
//! 2–64 samples): R1 conversion, the float32 neighbour peak screen with its float64
//! tie-break, and the window sum, written with explicit 256-bit intrinsics over R1 rows padded
//! to whole vectors. The arithmetic of every output is the one of
//! [`crate::calib::calibrate_baseline`] (same IEEE operations in the same order), so the two
//! are bit-identical (tested on both shared files and on random images); chosen at run time
//! when the CPU has AVX2 but not what `calib_avx512` needs (see `calib::CalibKernel`).
//!
//! Per image, three passes: (1) the selected gain's ADC samples become float32 R1 rows of
//! `8·V` floats (`V = ⌈n_samples/8⌉` vectors), with each row's largest |value|; (2) per
//! pixel, the neighbour rows are added in `V` registers, the samples within the proven
//! rounding bound of the maximum are found with one compare per vector and one `movemask`
//! per 32 samples, and a unique one is the peak; several candidates that are exact
//! repeats (every term bitwise equal to its value at the first candidate) give the first
//! one, and only true near-ties are settled in float64 in ctapipe's order; (3) the window
//! sums and peak times, four pixels at a time in float64 lanes, as ctapipe's
//! `extract_around_peak`. Measured: 2.6–3.1 × faster than the baseline build (BENCHMARKS.md).

use std::arch::x86_64::*;

/// Longest waveform (samples) the fused path takes (8 vectors of 8 floats).
pub(crate) const MAX_SAMPLES: usize = crate::calib::FUSED_MAX_SAMPLES;

/// Reusable buffers of [`neighbor_window_sum`] (and of the AVX-512 build's).
#[derive(Debug, Default)]
pub(crate) struct FusedScratch {
    /// R1 rows, `8·V` floats per pixel (the lanes after `n_samples` hold conversions of the
    /// following ADC values and are never used as samples); the AVX-512 build
    /// (`calib_avx512`) keeps rows of `16·V` floats here. Its first float is 64-byte
    /// aligned, so no row load or store straddles two cache lines.
    pub(crate) wave: LineAligned,
    /// Largest |R1| of each row; NaN if the row holds a non-finite value.
    pub(crate) maxabs: Vec<f32>,
    /// Peak sample per pixel.
    pub(crate) peak: Vec<u32>,
    /// Pixel `j`'s row is row `j & row_mask` of `wave`: every pixel has its own row
    /// (`usize::MAX`, set by [`FusedScratch::prepare`]), or the AVX-512 build's rows form a
    /// ring of `row_mask + 1` rows (a power of two), reused while the image is calibrated
    /// (`calib_avx512::ring_rows`).
    pub(crate) row_mask: usize,
    /// The ring size last used for a camera of so many pixels: `(n_pixels, rows)` (a hint
    /// only; `calib_avx512` checks every image against it).
    pub(crate) ring_hints: Vec<(usize, usize)>,
    /// The pixels whose screen left several candidate samples, with those samples (bit `s`
    /// for sample `s`), settled after the screen of every pixel ([`peaks`]).
    pub(crate) several: Vec<(u32, u64)>,
    /// The AVX-512 build's screened calibration's lists and marks.
    pub(crate) sparse: SparseScratch,
}

/// Lists and marks of the AVX-512 build's screened calibration (`calib_avx512::sparse`).
#[derive(Debug, Default)]
pub(crate) struct SparseScratch {
    /// The pixels still to integrate, increasing.
    pub(crate) listed: Vec<u32>,
    /// Rows to convert.
    pub(crate) rows: Vec<u32>,
    /// Per pixel, the image (generation) whose R1 row it holds.
    pub(crate) converted: Vec<u32>,
    /// Per pixel, the image (generation) in which a possible picture pixel marked it.
    pub(crate) near: Vec<u32>,
    /// This image's generation (never 0, which the marks start at).
    generation: u32,
}

impl SparseScratch {
    /// A new generation for an image of `n_pixels` pixels: no mark is of it yet (the marks
    /// are cleared when the counter wraps around).
    pub(crate) fn next_generation(&mut self, n_pixels: usize) -> u32 {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.converted.fill(0);
            self.near.fill(0);
            self.generation = 1;
        }
        self.converted.resize(n_pixels, 0);
        self.near.resize(n_pixels, 0);
        self.generation
    }
}

impl FusedScratch {
    /// Index in `wave` of the first float of pixel `j`'s row of `stride` floats (row
    /// `j & row_mask`: the pixel's own row, or its place in the AVX-512 build's ring).
    #[inline(always)]
    pub(crate) fn row_start(&self, j: usize, stride: usize) -> usize {
        (j & self.row_mask) * stride
    }

    /// The checks both kernels make on entry (`2 ≤ n_samples ≤ 64`, consistent lengths,
    /// every neighbour index a pixel, so the peak search reads its rows unchecked; a panic is
    /// the only failure) and the buffers sized for rows of `stride` floats: every row is
    /// written before it is read, with 8 spare floats after the last row for the window
    /// loads of the extraction. Inlined, so that its checks (a maximum over every
    /// neighbour index) compile with the calling kernel's vector instructions: compiled for
    /// baseline x86_64 it was 3–4 % of a DigiCam calibration (no unsigned 32-bit maximum in
    /// SSE2).
    #[inline]
    pub(crate) fn prepare(
        &mut self,
        im: &FusedImage,
        stride: usize,
        image: &[f32],
        peak_time: &[f32],
    ) {
        let np = im.n_pixels;
        let ns = im.n_samples;
        assert!((2..=MAX_SAMPLES).contains(&ns));
        assert!(im.samples.len() >= np * ns && im.gain.len() == np);
        assert!(image.len() == np && peak_time.len() == np && im.indptr.len() == np + 1);
        let max_index = im.indices.iter().fold(0u32, |m, &j| m.max(j));
        assert!(im.indices.is_empty() || (max_index as usize) < np);
        self.wave.grow_to(np * stride + 8);
        self.row_mask = usize::MAX;
        self.maxabs.resize(np, 0.0);
        self.peak.resize(np, 0);
    }
}

/// A float buffer whose first element starts a 64-byte cache line: the R1 rows (multiples of
/// 8 or 16 floats) then never straddle two lines, which a `Vec<f32>` (16-byte aligned by the
/// allocator) does not guarantee — a split 64-byte access costs two L1 accesses, and every
/// row access was split when the buffer started 16 bytes into a line.
#[derive(Debug, Default)]
pub(crate) struct LineAligned {
    /// Whole cache lines holding the floats.
    lines: Vec<Line>,
    /// Floats in use (`≤ 16 · lines.len()`).
    len: usize,
}

/// One cache line of floats.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

impl LineAligned {
    /// `n` floats of value `v`.
    #[cfg(test)]
    pub(crate) fn filled(n: usize, v: f32) -> Self {
        Self {
            lines: vec![Line([v; 16]); n.div_ceil(16)],
            len: n,
        }
    }

    /// Grow to at least `n` floats (new ones zero; existing values kept).
    pub(crate) fn grow_to(&mut self, n: usize) {
        if n > self.len {
            self.lines.resize(n.div_ceil(16), Line([0.0; 16]));
            self.len = n;
        }
    }
}

impl std::ops::Deref for LineAligned {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        // SAFETY: `lines` holds 16·lines.len() ≥ len initialised floats, contiguous
        // (`Line` is `repr(C)` over `[f32; 16]`, size 64, no padding).
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.len) }
    }
}

impl std::ops::DerefMut for LineAligned {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`, uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), self.len) }
    }
}

/// One image's inputs of [`neighbor_window_sum`].
pub(crate) struct FusedImage<'a> {
    /// ADC samples of every gain, `[g][p][s]`.
    pub samples: &'a [u16],
    /// Pixels.
    pub n_pixels: usize,
    /// Samples per waveform (2..=[`MAX_SAMPLES`]).
    pub n_samples: usize,
    /// Selected gain per pixel.
    pub gain: &'a [u8],
    /// Pedestal per sample, `[g][p]`.
    pub pedestal: &'a [f32],
    /// dc_to_pe, `[g][p]`.
    pub dc_to_pe: &'a [f32],
    /// Peak-time offsets (ns), `[g][p]`.
    pub time_shift: &'a [f32],
    /// Neighbour CSR (without broken pixels) as ctapipe sums it.
    pub indptr: &'a [u32],
    /// Neighbour indices.
    pub indices: &'a [u32],
    /// Own-waveform weight.
    pub local_weight: f64,
    /// Window width (samples).
    pub width: usize,
    /// Window start before the peak (samples).
    pub shift: i64,
    /// Sampling rate (GHz).
    pub rate: f64,
    /// Integration correction per gain.
    pub correction: &'a [f64],
    /// Per (gain, pixel), as `pedestal`, the ADC values whose |R1| is below the skip limit
    /// of that gain (`calib::adc_range`, the ends each in both halves of a `u32`), or empty:
    /// the AVX-512 build then leaves out the pixels all of whose samples are inside the
    /// range of their selected gain (`calib::skipped`) and those its further bounds rule out,
    /// and writes NaN for them. Not read by this build, which computes every pixel (the
    /// caller then writes NaN for those `calib::skipped` skips).
    pub adc_skip: &'a [[u32; 2]],
    /// Per selected gain, the sum of a row's positive R1 below which the AVX-512 build leaves
    /// a pixel out too (`calib_avx512::positive_sums_below`; `[0, 0]`: not used).
    pub skip_possum_below: [f32; 2],
    /// Pixels never left out (`calib::skipped`), or empty.
    pub keep: &'a [bool],
    /// As `adc_skip` for the picture limits (the largest |R1| below which a pixel's charge is
    /// certainly below the picture threshold), or empty (not used): the AVX-512 build also
    /// leaves out a pixel when it and all its neighbours are inside their ranges. Only for a
    /// camera without HV-disabled pixels (`keep` empty), whose neighbour lists are the
    /// cleaning's.
    pub adc_picture: &'a [[u32; 2]],
}

/// Calibrate one image (the caller guarantees AVX2, `2 ≤ n_samples ≤ 64`, consistent slice
/// lengths and neighbour indices `< n_pixels`, which are checked again here with a panic as
/// the only failure); writes `image` and `peak_time` (`n_pixels` each) and returns the number
/// of pixels whose peak needed float64 sums.
#[target_feature(enable = "avx2")]
pub(crate) fn neighbor_window_sum(
    im: &FusedImage,
    sc: &mut FusedScratch,
    image: &mut [f32],
    peak_time: &mut [f32],
) -> usize {
    let v = im.n_samples.div_ceil(8);
    sc.prepare(im, 8 * v, image, peak_time);
    match v {
        1 => passes::<1>(im, sc, image, peak_time),
        2 => passes::<2>(im, sc, image, peak_time),
        3 => passes::<3>(im, sc, image, peak_time),
        4 => passes::<4>(im, sc, image, peak_time),
        5 => passes::<5>(im, sc, image, peak_time),
        6 => passes::<6>(im, sc, image, peak_time),
        7 => passes::<7>(im, sc, image, peak_time),
        _ => passes::<8>(im, sc, image, peak_time),
    }
}

/// The three steps for rows of `V` vectors: R1 rows of every pixel, then the peak of every
/// pixel, then the window sums (four pixels at a time).
#[inline(never)] // a symbol of its own in profiles
#[target_feature(enable = "avx2")]
fn passes<const V: usize>(
    im: &FusedImage,
    sc: &mut FusedScratch,
    image: &mut [f32],
    peak_time: &mut [f32],
) -> usize {
    let np = im.n_pixels;
    r1_rows::<V>(im, sc);
    let fallbacks = peaks::<V>(im, sc);
    let ex = Extractor::new(im, 8 * V);
    let done = if ex.simd_ok { np / 4 * 4 } else { 0 };
    for p in (0..done).step_by(4) {
        ex.four(im, sc, p, image, peak_time);
    }
    for p in done..np {
        ex.one(im, sc, p, image, peak_time);
    }
    fallbacks
}

/// R1 rows of every pixel.
#[inline(never)] // a symbol of its own in profiles
#[target_feature(enable = "avx2")]
fn r1_rows<const V: usize>(im: &FusedImage, sc: &mut FusedScratch) {
    let mut tmp = [0u16; MAX_SAMPLES];
    let (base, len, ns, np) = (
        im.samples.as_ptr(),
        im.samples.len(),
        im.n_samples,
        im.n_pixels,
    );
    // every row that a selected gain points to exists: `r1_row` reads them unchecked
    let n_gains = usize::from(im.gain.iter().fold(0u8, |m, &g| m.max(g))) + 1;
    assert!(im.gain.len() == np && im.pedestal.len() >= n_gains * np);
    assert!(im.dc_to_pe.len() >= n_gains * np && len >= n_gains * np * ns);
    assert!(sc.wave.len() >= np * 8 * V && sc.maxabs.len() >= np);
    for p in 0..np {
        // the samples 2 kB ahead into L1 (the events of a run are far apart in memory and
        // this row-by-row stream gained 5–9 % over the hardware prefetcher alone)
        let ahead = (usize::from(im.gain[p]) * im.n_pixels + p) * ns + 1024;
        if ahead + 64 < len {
            // SAFETY: in bounds (checked just above); a prefetch has no other effect.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(base.add(ahead).cast());
                _mm_prefetch::<_MM_HINT_T0>(base.add(ahead + 32).cast());
            }
        }
        // SAFETY: p < n_pixels and the lengths asserted above.
        unsafe { r1_row::<V>(im, sc, p, &mut tmp) };
    }
}

/// The peak of every pixel; returns how many needed float64 sums. Every pixel's screen
/// first, its first candidate written as its peak and the pixels with several candidates
/// listed without a branch per pixel; then those are settled. On SCTCam 38 % of the pixels
/// have several candidates in no predictable order, and a branch per pixel into the
/// settling was mispredicted about as often (the AVX-512 build measured 20 % of SCTCam's
/// calibration for it).
#[inline(never)] // a symbol of its own in profiles
#[target_feature(enable = "avx2")]
fn peaks<const V: usize>(im: &FusedImage, sc: &mut FusedScratch) -> usize {
    let np = im.n_pixels;
    let mut fallbacks = 0;
    // the CSR offsets are non-decreasing and end within the indices: each pixel's
    // neighbour slice is then taken unchecked
    let (indptr, indices) = (im.indptr, im.indices);
    assert!(indptr.len() == np + 1 && sc.peak.len() >= np);
    assert!(indptr.windows(2).all(|w| w[0] <= w[1]) && indptr[np] as usize <= indices.len());
    let neighbours = |p: usize| {
        // SAFETY: p < n_pixels, so p + 1 < indptr.len(), and indptr[p] ≤ indptr[p + 1] ≤
        // indices.len() (asserted above).
        unsafe {
            let (a, b) = (*indptr.get_unchecked(p), *indptr.get_unchecked(p + 1));
            indices.get_unchecked(a as usize..b as usize)
        }
    };
    let mut several = std::mem::take(&mut sc.several);
    if several.len() < np {
        several.resize(np, (0, 0));
    }
    let mut n = 0;
    for p in 0..np {
        let nb = neighbours(p);
        match screen::<V>(im, sc, p, nb) {
            Ok(bits) => {
                sc.peak[p] = bits.trailing_zeros();
                // n ≤ p < n_pixels ≤ several.len()
                several[n] = (p as u32, bits);
                n += usize::from(bits & (bits - 1) != 0);
            }
            Err(pk) => {
                sc.peak[p] = pk;
                fallbacks += 1;
            }
        }
    }
    for &(p, bits) in &several[..n] {
        let p = p as usize;
        let (pk, exact) = settle::<V>(im, sc, p, neighbours(p), bits);
        sc.peak[p] = pk;
        fallbacks += usize::from(exact);
    }
    sc.several = several;
    fallbacks
}

/// All-ones in the first `n` (1..=8) lanes: the valid samples of a row's last vector.
#[target_feature(enable = "avx2")]
fn lane_mask(n: usize) -> __m256i {
    let n = n as i32;
    let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx)
}

/// Largest lane (NaN lanes may or may not win; callers only use it when no lane is NaN).
#[target_feature(enable = "avx2")]
fn hmax(m: __m256) -> f32 {
    let m = _mm256_max_ps(m, _mm256_permute2f128_ps::<1>(m, m));
    let m = _mm256_max_ps(m, _mm256_permute_ps::<0b0100_1110>(m));
    let m = _mm256_max_ps(m, _mm256_permute_ps::<0b1011_0001>(m));
    _mm256_cvtss_f32(m)
}

/// Bit `s` set where sample `s` of the sums is ≥ `t` (`acc` vectors in sample order). For
/// three or more vectors the compare masks are narrowed to bytes with two saturating packs
/// (−1 and 0 stay −1 and 0) and put back in sample order with one lane permutation, so that
/// one `movemask` covers 32 samples instead of 8.
#[inline]
#[target_feature(enable = "avx2")]
fn candidates<const V: usize>(acc: &[__m256; V], t: __m256) -> u64 {
    let ge = |a: __m256| _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(a, t));
    if V <= 2 {
        let mut bits = 0u64;
        for (q, a) in acc.iter().enumerate() {
            bits |= u64::from(_mm256_movemask_ps(_mm256_castsi256_ps(ge(*a))) as u32) << (8 * q);
        }
        return bits;
    }
    let zero = _mm256_setzero_si256();
    let c = |q: usize| if q < V { ge(acc[q]) } else { zero };
    // packs_epi32 then packs_epi16 leave, per 128-bit lane, bytes of samples 0–3 of the four
    // vectors, then 4–7: dwords (0, 4, 1, 5, 2, 6, 3, 7) restore the sample order
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let four = |q: usize| {
        let a = _mm256_packs_epi32(c(q), c(q + 1));
        let b = _mm256_packs_epi32(c(q + 2), c(q + 3));
        let bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(a, b), order);
        u64::from(_mm256_movemask_epi8(bytes) as u32)
    };
    let mut bits = four(0);
    if V > 4 {
        bits |= four(4) << 32;
    }
    bits
}

/// R1 = (ADC − pedestal) · dc_to_pe in float32 for the selected gain of pixel `p`, with the
/// row's largest |value| (NaN if any value is NaN or infinite).
///
/// The largest |R1| comes from the smallest and largest ADC sample: `f32(a) − ped` and the
/// product with `dc_to_pe` are correctly rounded, hence monotone in `a`, so |R1| is largest at
/// one end, and the value there is the one `calib::max_abs_and_constant` finds on the row.
/// A non-finite R1 anywhere means a non-finite one at an end (NaN or infinite pedestal or
/// dc_to_pe, or an overflow, which is monotone too; `0 · inf` needs `a = ped`, which only one
/// ADC value can meet).
///
/// # Safety
/// AVX2; `p < n_pixels`; with `g = gain[p]`, `g·n_pixels + p` indexes `pedestal` and
/// `dc_to_pe`, `samples` holds `(g·n_pixels + p + 1)·n_samples` values, `sc.wave` at least
/// `(p + 1)·8·V` and `sc.maxabs` more than `p`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn r1_row<const V: usize>(
    im: &FusedImage,
    sc: &mut FusedScratch,
    p: usize,
    tmp: &mut [u16; MAX_SAMPLES],
) {
    let np = im.n_pixels;
    let ns = im.n_samples;
    let stride = 8 * V;
    // 16-bit lanes of the last vector that hold samples (the others take sample 0's value)
    let valid = (ns - 8 * (V - 1)) as i16;
    let last16 = _mm_cmpgt_epi16(
        _mm_set1_epi16(valid),
        _mm_setr_epi16(0, 1, 2, 3, 4, 5, 6, 7),
    );
    // SAFETY: p < n_pixels = gain.len() (contract).
    let i = usize::from(unsafe { *im.gain.get_unchecked(p) }) * np + p;
    // SAFETY: i < pedestal.len(), dc_to_pe.len() (contract).
    let (ped_s, k_s) = unsafe { (*im.pedestal.get_unchecked(i), *im.dc_to_pe.get_unchecked(i)) };
    let (ped, k) = (_mm256_set1_ps(ped_s), _mm256_set1_ps(k_s));
    let off = i * ns;
    // 8·V samples from the row start: past the row end they belong to the next row (or, at
    // the end of the buffer, to a copy), which only fills the padding lanes
    let src: &[u16] = if off + stride <= im.samples.len() {
        // SAFETY: checked just above.
        unsafe { im.samples.get_unchecked(off..off + stride) }
    } else {
        // SAFETY: off + ns ≤ samples.len() (contract).
        tmp[..ns].copy_from_slice(unsafe { im.samples.get_unchecked(off..off + ns) });
        &tmp[..stride]
    };
    // SAFETY: (p + 1)·stride ≤ wave.len() (contract).
    let dst = unsafe { sc.wave.get_unchecked_mut(p * stride..(p + 1) * stride) };
    let first = _mm_set1_epi16(src[0] as i16);
    let (mut lo, mut hi) = (first, first);
    for q in 0..V {
        // SAFETY: `src` holds 8·V u16 and `dst` 8·V f32 (sliced just above).
        let mut x = unsafe { _mm_loadu_si128(src.as_ptr().add(8 * q).cast()) };
        let r = _mm256_mul_ps(
            _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(x)), ped),
            k,
        );
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(dst.as_mut_ptr().add(8 * q), r) };
        if q == V - 1 {
            x = _mm_blendv_epi8(first, x, last16);
        }
        lo = _mm_min_epu16(lo, x);
        hi = _mm_max_epu16(hi, x);
    }
    // phminposuw: the smallest u16 in bits 0..16; the largest is the smallest complement
    // complement: words 0 of the two results are the smallest and the largest ADC sample,
    // converted side by side in lanes 0 and 1 with the row's own operations
    let ones = _mm_set1_epi32(-1);
    let ends = _mm_unpacklo_epi16(
        _mm_minpos_epu16(lo),
        _mm_xor_si128(_mm_minpos_epu16(_mm_xor_si128(hi, ones)), ones),
    );
    let r = _mm_mul_ps(
        _mm_sub_ps(
            _mm_cvtepi32_ps(_mm_cvtepu16_epi32(ends)),
            _mm256_castps256_ps128(ped),
        ),
        _mm256_castps256_ps128(k),
    );
    let abs = _mm_andnot_ps(_mm_set1_ps(-0.0), r);
    // both ends finite (|r| ≤ f32::MAX is false for NaN and infinities)
    let finite = _mm_movemask_ps(_mm_cmp_ps::<_CMP_LE_OQ>(abs, _mm_set1_ps(f32::MAX))) & 3 == 3;
    let m = _mm_cvtss_f32(_mm_max_ss(abs, _mm_movehdup_ps(abs)));
    // SAFETY: p < maxabs.len() (contract).
    unsafe { *sc.maxabs.get_unchecked_mut(p) = if finite { m } else { f32::NAN } };
}

/// The screen of pixel `p`'s neighbour peak (see `calib::neighbor_peaks` for the bound and
/// its proof): its candidate samples (bit `s` for sample `s`; the peak when only one), or,
/// when the bound is not finite, the peak by the float64 sums of every sample. The rows of
/// `p` and of its neighbours hold R1.
#[inline]
#[target_feature(enable = "avx2")]
fn screen<const V: usize>(
    im: &FusedImage,
    sc: &FusedScratch,
    p: usize,
    nb: &[u32],
) -> Result<u64, u32> {
    let ns = im.n_samples;
    let stride = 8 * V;
    let (wave, maxabs) = (&sc.wave[..], &sc.maxabs[..]);
    let lw = im.local_weight;
    // No separate check for rows that are all constant (a pass over the neighbours' flags
    // for every pixel): every term bitwise constant makes every sum equal, so all samples are
    // candidates and the exact-repeat test below gives sample 0, numpy's first argmax; with
    // a non-finite term the float64 path gives 0 as well (equal sums, or NaN everywhere).
    let mut acc = [_mm256_setzero_ps(); V];
    if lw != 0.0 {
        let own = &wave[p * stride..(p + 1) * stride];
        let w = _mm256_set1_ps(lw as f32);
        for (q, a) in acc.iter_mut().enumerate() {
            // SAFETY: `own` holds 8·V floats.
            *a = _mm256_mul_ps(unsafe { _mm256_loadu_ps(own.as_ptr().add(8 * q)) }, w);
        }
    }
    let mut bound = lw.abs() as f32 * maxabs[p];
    debug_assert!(wave.len() >= maxabs.len() * stride);
    for &j in nb {
        let j = j as usize;
        // SAFETY: j < n_pixels (checked on entry), so the row j·stride..(j + 1)·stride lies
        // in `wave` (n_pixels·stride + 8 floats) and j in `maxabs` (n_pixels).
        unsafe {
            let row = wave.as_ptr().add(j * stride);
            for (q, a) in acc.iter_mut().enumerate() {
                *a = _mm256_add_ps(*a, _mm256_loadu_ps(row.add(8 * q)));
            }
            bound += *maxabs.get_unchecked(j);
        }
    }
    // the padding lanes never win nor count
    let last = _mm256_castsi256_ps(lane_mask(ns - 8 * (V - 1)));
    acc[V - 1] = _mm256_blendv_ps(_mm256_set1_ps(f32::NEG_INFINITY), acc[V - 1], last);
    let mut m = acc[0];
    for a in &acc[1..] {
        m = _mm256_max_ps(m, *a);
    }
    let best = hmax(m);
    let unit = f32::EPSILON / 2.0; // 2^-24
    let n_terms = (nb.len() + 3) as f32;
    let d = 4.0 * n_terms * unit * bound;
    if !(best.is_finite() && d.is_finite()) {
        return Err(exact_peak(sc, stride, ns, p, nb, lw) as u32);
    }
    Ok(candidates::<V>(&acc, _mm256_set1_ps(best - d)))
}

/// The peak of pixel `p` (neighbours `nb`) among the candidate samples `bits` of its screen
/// (at least two), and whether it needed float64 sums.
#[inline(never)] // off the hot loop: only pixels with several candidates come here
#[target_feature(enable = "avx2")]
fn settle<const V: usize>(
    im: &FusedImage,
    sc: &FusedScratch,
    p: usize,
    nb: &[u32],
    bits: u64,
) -> (u32, bool) {
    let stride = 8 * V;
    let wave = &sc.wave[..];
    let lw = im.local_weight;
    // Several candidates. When every term (the neighbours, and the own waveform unless its
    // weight is 0) holds bitwise the same value at each candidate as at the first one, s0,
    // the float64 sums of the candidates are the same operations on the same values, so
    // they all equal the float64 maximum (which lies among the candidates) and numpy's first
    // argmax is s0. This settles the exact repeats of quiet, few-level waveforms (SCTCam)
    // without float64 sums.
    let s0 = bits.trailing_zeros() as usize;
    let mut same = [_mm256_set1_epi32(-1); V];
    let mut same_as_s0 = |row: &[f32]| {
        let r0 = _mm256_set1_epi32(row[s0].to_bits() as i32);
        for (q, e) in same.iter_mut().enumerate() {
            // SAFETY: `row` holds 8·V floats.
            let x = _mm256_castps_si256(unsafe { _mm256_loadu_ps(row.as_ptr().add(8 * q)) });
            *e = _mm256_and_si256(*e, _mm256_cmpeq_epi32(x, r0));
        }
    };
    if lw != 0.0 {
        same_as_s0(&wave[p * stride..(p + 1) * stride]);
    }
    for &j in nb {
        same_as_s0(&wave[j as usize * stride..(j as usize + 1) * stride]);
    }
    let mut same_bits = 0u64;
    for (q, e) in same.iter().enumerate() {
        let c = _mm256_movemask_ps(_mm256_castsi256_ps(*e)) as u32;
        same_bits |= u64::from(c) << (8 * q);
    }
    if bits & !same_bits == 0 {
        return (s0 as u32, false);
    }
    // near-ties: the float64 sums of the candidates (value ≥ best − d) in ctapipe's order
    (exact_peak_among(sc, stride, p, nb, lw, bits), true)
}

/// The float64 neighbour peak of one pixel, one sample at a time in ctapipe's order (rows of
/// `stride` floats, pixel `j` in [`FusedScratch::row_start`]), numpy's first argmax ignoring
/// NaN as `calib::neighbor_peaks_reference` (shared with `calib_avx512`); `ns` ≤ 64, as
/// [`FusedScratch::prepare`] checks.
pub(crate) fn exact_peak(
    sc: &FusedScratch,
    stride: usize,
    ns: usize,
    p: usize,
    nb: &[u32],
    lw: f64,
) -> usize {
    exact_peak_among(sc, stride, p, nb, lw, u64::MAX >> (64 - ns)) as usize
}

/// [`exact_peak`] among the samples `bits` only (bit `s` for sample `s`, at least one; the
/// candidates of a screen, among which the float64 maximum lies): the first of them with the
/// largest float64 sum (shared with `calib_avx512`).
pub(crate) fn exact_peak_among(
    sc: &FusedScratch,
    stride: usize,
    p: usize,
    nb: &[u32],
    lw: f64,
    mut bits: u64,
) -> u32 {
    let wave = &sc.wave[..];
    let mut best = f64::NEG_INFINITY;
    let mut best_s = 0;
    while bits != 0 {
        let s = bits.trailing_zeros();
        bits &= bits - 1;
        let si = s as usize;
        let mut v = f64::from(wave[sc.row_start(p, stride) + si]) * lw;
        for &j in nb {
            v += f64::from(wave[sc.row_start(j as usize, stride) + si]);
        }
        if v > best {
            best = v;
            best_s = s;
        }
    }
    best_s
}

/// ctapipe `extract_around_peak` (float64 sums, time as the positive-weighted mean index,
/// float32 stores before and after the division by the sampling rate), the integration
/// correction and the tm_calib shift, as `calib::calibrate_baseline`.
/// Shared with the AVX-512 build (its `Extractor` wraps this one).
pub(crate) struct Extractor {
    pub(crate) width: usize,
    pub(crate) shift: i64,
    /// Floats per R1 row.
    pub(crate) stride: usize,
    pub(crate) corr: [f64; 2],
    /// Some pixel has gain 1 (its time shifts are then read from the second gain's row).
    pub(crate) two_gains: bool,
    /// Whether the vector forms (`four`, the AVX-512 `sixteen`) may run: window width ≤ 8,
    /// |shift| ≤ 2^20, every selected gain 0 or 1 and `n_pixels` time shifts per gain
    /// present.
    pub(crate) simd_ok: bool,
}

impl Extractor {
    /// The set-up for rows of `stride` floats.
    pub(crate) fn new(im: &FusedImage, stride: usize) -> Self {
        let np = im.n_pixels;
        let max_gain = im.gain.iter().fold(0u8, |m, &g| m.max(g));
        let two_gains = max_gain == 1;
        let simd_ok = im.width <= 8
            && im.shift.unsigned_abs() <= 1 << 20
            && max_gain <= 1
            && im.time_shift.len() >= np * (1 + usize::from(two_gains));
        Self {
            two_gains,
            simd_ok,
            width: im.width,
            shift: im.shift,
            stride,
            corr: [
                im.correction.first().copied().unwrap_or(1.0),
                im.correction.get(1).copied().unwrap_or(1.0),
            ],
        }
    }

    /// Pixels `p..p + 4` (window width ≤ 8) in the float64 lanes: each lane adds its own
    /// window in sample order, so every sum is the scalar one; lanes past a window's end add
    /// +0.0, which leaves the sums unchanged (they start at +0.0 and are never −0.0).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn four(
        &self,
        im: &FusedImage,
        sc: &FusedScratch,
        p: usize,
        image: &mut [f32],
        peak_time: &mut [f32],
    ) {
        let np = im.n_pixels;
        let ns = im.n_samples;
        let zero = _mm256_setzero_pd();
        let zero4 = _mm_setzero_si128();
        // the windows of the four pixels in int32 lanes, as `calib::extract_around_peak`
        // (peaks < 64, |shift| ≤ 2^20 and width ≤ 8, checked by `simd_ok`, so nothing
        // overflows)
        assert!(self.simd_ok && p + 4 <= np && sc.peak.len() >= np && im.gain.len() >= np);
        assert!(sc.wave.len() >= np * self.stride + 8);
        // SAFETY: p + 4 ≤ np ≤ peak.len() (asserted above).
        let pk = unsafe { _mm_loadu_si128(sc.peak.as_ptr().add(p).cast()) };
        let a = _mm_sub_epi32(pk, _mm_set1_epi32(self.shift as i32));
        let start = _mm_max_epi32(a, zero4);
        let ns4 = _mm_set1_epi32(ns as i32);
        let end = _mm_min_epi32(
            _mm_max_epi32(_mm_add_epi32(a, _mm_set1_epi32(self.width as i32)), zero4),
            ns4,
        );
        let count = _mm_max_epi32(_mm_sub_epi32(end, start), zero4);
        // the 8 floats from each window start, clamped to the trace (the buffer has 8 spare
        // floats after the last row)
        let first = _mm_min_epi32(start, ns4);
        let offs = [
            _mm_extract_epi32::<0>(first),
            _mm_extract_epi32::<1>(first),
            _mm_extract_epi32::<2>(first),
            _mm_extract_epi32::<3>(first),
        ];
        let mut rows = [_mm256_setzero_ps(); 4];
        for (l, r) in rows.iter_mut().enumerate() {
            // SAFETY: (p + l)·stride + min(start, ns) + 8 ≤ np·stride + 8 ≤ wave.len()
            // (asserted above).
            *r = unsafe {
                _mm256_loadu_ps(
                    sc.wave
                        .as_ptr()
                        .add((p + l) * self.stride + offs[l] as usize),
                )
            };
        }
        // selected gains (0 or 1, checked by `simd_ok`) as lane masks
        let g4 = u32::from_le_bytes([im.gain[p], im.gain[p + 1], im.gain[p + 2], im.gain[p + 3]]);
        let g4 = _mm_cvtsi32_si128(g4 as i32);
        // SAFETY: time_shift holds n_pixels floats per gain present (checked by `simd_ok`).
        let ts = unsafe {
            let t0 = _mm_loadu_ps(im.time_shift.as_ptr().add(p));
            if self.two_gains {
                let t1 = _mm_loadu_ps(im.time_shift.as_ptr().add(np + p));
                let m = _mm_cmpgt_epi32(_mm_cvtepu8_epi32(g4), zero4);
                _mm_blendv_ps(t0, t1, _mm_castsi128_ps(m))
            } else {
                t0
            }
        };
        let gm = _mm256_castsi256_pd(_mm256_cmpgt_epi64(
            _mm256_cvtepu8_epi64(g4),
            _mm256_setzero_si256(),
        ));
        // transpose 4 rows × 8 samples: u[k] holds sample k (low half) and k + 4 (high half)
        // of the four pixels
        let t0 = _mm256_unpacklo_ps(rows[0], rows[1]);
        let t1 = _mm256_unpackhi_ps(rows[0], rows[1]);
        let t2 = _mm256_unpacklo_ps(rows[2], rows[3]);
        let t3 = _mm256_unpackhi_ps(rows[2], rows[3]);
        let u = [
            _mm256_shuffle_ps::<0x44>(t0, t2),
            _mm256_shuffle_ps::<0xEE>(t0, t2),
            _mm256_shuffle_ps::<0x44>(t1, t3),
            _mm256_shuffle_ps::<0xEE>(t1, t3),
        ];
        let startv = _mm256_cvtepi32_pd(start);
        let countv = _mm256_cvtepi32_pd(count);
        let (mut sum, mut num, mut den) = (zero, zero, zero);
        for k in 0..self.width {
            let half = if k < 4 {
                _mm256_castps256_ps128(u[k])
            } else {
                _mm256_extractf128_ps::<1>(u[k - 4])
            };
            let kf = _mm256_set1_pd(k as f64);
            let inside = _mm256_cmp_pd::<_CMP_GT_OQ>(countv, kf);
            let v = _mm256_and_pd(_mm256_cvtps_pd(half), inside);
            sum = _mm256_add_pd(sum, v);
            // max(v, +0) is `if v > 0 { v } else { +0 }` (the second operand for NaN or ±0)
            let pos = _mm256_max_pd(v, zero);
            num = _mm256_add_pd(num, _mm256_mul_pd(pos, _mm256_add_pd(startv, kf)));
            den = _mm256_add_pd(den, pos);
        }
        let pkf = _mm_cvtepi32_ps(pk);
        let t0 = _mm256_cvtpd_ps(_mm256_div_pd(num, den));
        // den > 0 per 64-bit lane, narrowed to the 32-bit lanes of the times
        let has = _mm256_castpd_ps(_mm256_cmp_pd::<_CMP_GT_OQ>(den, zero));
        let has = _mm256_castps256_ps128(_mm256_permutevar8x32_ps(
            has,
            _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6),
        ));
        let t0 = _mm_blendv_ps(pkf, t0, has);
        let t = _mm256_cvtpd_ps(_mm256_div_pd(_mm256_cvtps_pd(t0), _mm256_set1_pd(im.rate)));
        let corr = _mm256_blendv_pd(
            _mm256_set1_pd(self.corr[0]),
            _mm256_set1_pd(self.corr[1]),
            gm,
        );
        let q = _mm256_cvtps_pd(_mm256_cvtpd_ps(sum));
        let img = _mm256_cvtpd_ps(_mm256_mul_pd(q, corr));
        let out_t = _mm_sub_ps(t, ts);
        let (oi, ot) = (&mut image[p..p + 4], &mut peak_time[p..p + 4]);
        // SAFETY: 4 f32 each.
        unsafe {
            _mm_storeu_ps(oi.as_mut_ptr(), img);
            _mm_storeu_ps(ot.as_mut_ptr(), out_t);
        }
    }

    /// One pixel, scalar.
    pub(crate) fn one(
        &self,
        im: &FusedImage,
        sc: &FusedScratch,
        p: usize,
        image: &mut [f32],
        peak_time: &mut [f32],
    ) {
        let np = im.n_pixels;
        let r = sc.row_start(p, self.stride);
        let w = &sc.wave[r..r + im.n_samples];
        let pk = i64::from(sc.peak[p]);
        let (q, t) = crate::calib::extract_around_peak(w, pk, self.shift, self.width, im.rate);
        let g = usize::from(im.gain[p]);
        image[p] = (f64::from(q) * self.corr[g.min(1)]) as f32;
        peak_time[p] = t - im.time_shift[g * np + p];
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The random rows of the R1 tests of both kernels (40 pixels of `ns` samples): rows
    /// spanning the pedestal, constant rows, dc_to_pe 0 and negative, non-finite pedestals
    /// and dc_to_pe, and an overflowing product.
    pub(crate) struct R1Case {
        pub(crate) ns: usize,
        pub(crate) np: usize,
        pub(crate) samples: Vec<u16>,
        pub(crate) pedestal: Vec<f32>,
        pub(crate) dc_to_pe: Vec<f32>,
        gain: Vec<u8>,
        time_shift: Vec<f32>,
        indptr: Vec<u32>,
    }

    impl R1Case {
        pub(crate) fn new(rng: &mut impl Rng, ns: usize) -> Self {
            let np = 40;
            let samples: Vec<u16> = (0..np * ns)
                .map(|i| match (i / ns) % 5 {
                    0 => 300,
                    1 => rng.random_range(0..3u16) + 299,
                    2 => rng.random_range(0..65535u16),
                    _ => rng.random_range(280..320u16),
                })
                .collect();
            let mut pedestal: Vec<f32> = (0..np).map(|_| rng.random_range(290.0..310.0)).collect();
            let mut dc_to_pe: Vec<f32> = (0..np).map(|_| rng.random_range(0.01..0.2)).collect();
            dc_to_pe[1] = 0.0;
            dc_to_pe[2] = -0.3;
            pedestal[3] = f32::NAN;
            dc_to_pe[4] = f32::INFINITY;
            pedestal[5] = f32::NEG_INFINITY;
            dc_to_pe[6] = 1e36; // overflows for large |ADC − pedestal|
            Self {
                ns,
                np,
                samples,
                pedestal,
                dc_to_pe,
                gain: vec![0u8; np],
                time_shift: vec![0f32; np],
                indptr: vec![0u32; np + 1],
            }
        }

        /// The kernels' input (no neighbours).
        pub(crate) fn image(&self) -> FusedImage<'_> {
            FusedImage {
                samples: &self.samples,
                n_pixels: self.np,
                n_samples: self.ns,
                gain: &self.gain,
                pedestal: &self.pedestal,
                dc_to_pe: &self.dc_to_pe,
                time_shift: &self.time_shift,
                indptr: &self.indptr,
                indices: &[],
                local_weight: 0.0,
                width: 7,
                shift: 3,
                rate: 1.0,
                correction: &[1.0],
                adc_skip: &[],
                skip_possum_below: [0.0; 2],
                keep: &[],
                adc_picture: &[],
            }
        }

        /// Scratch for rows of `stride` floats.
        pub(crate) fn scratch(&self, stride: usize) -> FusedScratch {
            FusedScratch {
                wave: LineAligned::filled(self.np * stride + 8, 0.0),
                maxabs: vec![0.0; self.np],
                peak: vec![0; self.np],
                row_mask: usize::MAX,
                ring_hints: Vec::new(),
                several: Vec::new(),
                sparse: SparseScratch::default(),
            }
        }

        /// The scalar R1 of pixel `p`.
        pub(crate) fn r1(&self, p: usize) -> Vec<f32> {
            let ns = self.ns;
            self.samples[p * ns..(p + 1) * ns]
                .iter()
                .map(|&a| (f32::from(a) - self.pedestal[p]) * self.dc_to_pe[p])
                .collect()
        }
    }

    /// The R1 rows and their largest |value| against the scalar R1 and
    /// `calib::max_abs_and_constant` on random rows: every length 2..=64, rows spanning the
    /// pedestal, constant rows, dc_to_pe 0 and negative, and non-finite pedestals and
    /// dc_to_pe (NaN largest value expected).
    #[test]
    fn r1_rows_equal_the_scalar_conversion() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("no AVX2: the fused kernel is not used on this CPU");
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for ns in 2..=MAX_SAMPLES {
            let case = R1Case::new(&mut rng, ns);
            let (np, im) = (case.np, case.image());
            let stride = 8 * ns.div_ceil(8);
            let mut sc = case.scratch(stride);
            let mut tmp = [0u16; MAX_SAMPLES];
            for p in 0..np {
                // SAFETY: AVX2 checked above.
                unsafe {
                    match ns.div_ceil(8) {
                        1 => r1_row::<1>(&im, &mut sc, p, &mut tmp),
                        2 => r1_row::<2>(&im, &mut sc, p, &mut tmp),
                        3 => r1_row::<3>(&im, &mut sc, p, &mut tmp),
                        4 => r1_row::<4>(&im, &mut sc, p, &mut tmp),
                        5 => r1_row::<5>(&im, &mut sc, p, &mut tmp),
                        6 => r1_row::<6>(&im, &mut sc, p, &mut tmp),
                        7 => r1_row::<7>(&im, &mut sc, p, &mut tmp),
                        _ => r1_row::<8>(&im, &mut sc, p, &mut tmp),
                    }
                }
                let r1 = case.r1(p);
                let row = &sc.wave[p * stride..p * stride + ns];
                assert_eq!(
                    row.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    r1.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    "ns {ns} pixel {p}"
                );
                let (m, _) = crate::calib::max_abs_and_constant(&r1);
                let got = sc.maxabs[p];
                assert!(
                    got.to_bits() == m.to_bits() || (got.is_nan() && m.is_nan()),
                    "ns {ns} pixel {p}: {got} vs {m}"
                );
            }
        }
    }

    /// `LineAligned` starts on a 64-byte line, keeps its values when it grows, zeroes the
    /// new ones and never shrinks.
    #[test]
    fn line_aligned_buffer() {
        let mut b = LineAligned::default();
        assert!(b.is_empty());
        let mut previous = 0.0;
        for (n, fill) in [
            (5usize, 1.0f32),
            (16, 2.0),
            (17, 3.0),
            (1000, 4.0),
            (40, 5.0),
        ] {
            let before = b.len();
            b.grow_to(n);
            assert_eq!(b.len(), before.max(n));
            assert_eq!(b.as_ptr() as usize % 64, 0, "{n}");
            assert!(b[..before].iter().all(|&x| x == previous), "{n}");
            assert!(b[before..].iter().all(|&x| x == 0.0), "{n}");
            b.fill(fill);
            previous = fill;
        }
        assert!(b.len() == 1000 && b.iter().all(|&x| x == 5.0));
        let f = LineAligned::filled(33, 7.0);
        assert_eq!((f.len(), f.as_ptr() as usize % 64), (33, 0));
        assert!(f.iter().all(|&x| x == 7.0));
    }
}
