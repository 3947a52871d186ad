//! AVX-512 build of the fused NeighborPeakWindowSum kernel of `calib_avx2` (R1 conversion,
//! float32 neighbour peak screen with its float64 tie-break, window sums), with rows of 16
//! floats per 512-bit register: DigiCam's 50 samples are 4 registers instead of 7,
//! NectarCam's 30 and SCTCam's 32 are 2 instead of 4. Every output is computed with the same
//! IEEE operations in the same order as [`crate::calib::calibrate_baseline`] (the arguments of
//! `calib_avx2` carry over lane for lane), so the three builds are bit-identical (tested on
//! both shared files and on random images); chosen at run time when the CPU has AVX-512
//! F/BW/VL/DQ (and BMI1, POPCNT); the intrinsics need Rust ≥ 1.89, the workspace's MSRV.
//!
//! The outputs (peak sample, charge, peak time) are computed exactly as in the other builds;
//! what may differ is only how the float32 screen reaches them (the order of the float32
//! neighbour additions, which of the equivalent exact paths settles a pixel), each step with
//! its argument below. What AVX-512 changes against the AVX2 build:
//! - compares go straight into mask registers: the candidate samples of a row are one
//!   `vcmpps` per 16 samples, joined into one `u64` with `kunpck`; the padding lanes after
//!   the last sample are left out of the maximum and of the compare by the mask (instead of
//!   a blend with −∞), so they can never win nor count, whatever the threshold;
//! - the float32 neighbour sums of a six-neighbour pixel as a tree (3 dependent additions
//!   instead of 6; the screen's error bound holds for any order), and two pixels at a time
//!   sharing one horizontal maximum (the peak search is bound by the latency of each
//!   pixel's chain, which ends in that maximum);
//! - each row's largest |R1| from the R1 vectors with `vrangeps` (two rows per reduction)
//!   instead of the smallest and largest ADC sample with `phminposuw`;
//! - the exact-repeat test is one masked `vpcmpeqd` per 16 samples and term (the running
//!   "same" mask is the compare's write mask);
//! - the row tail is read with a masked load (16-bit lanes after the row take sample 0's
//!   value and never fault), so no row is read past its end and no copy is needed at the
//!   end of the buffer;
//! - window sums and peak times eight pixels at a time in float64 lanes (two such groups
//!   interleaved): the eight windows are transposed with eight two-source permutes, lanes
//!   past a window's end are zeroed by the masked conversion to float64, and the division
//!   by the sampling rate is a multiplication when the rate is a power of two (exact);
//! - the three steps interleaved by blocks of sixteen pixels instead of three passes over
//!   the camera (`passes`): the R1 rows a block reads are converted just before its peak
//!   search, its window sums right after, so the rows are read while in L1 or L2;
//! - the peak search sixteen pixels at a time (`peak_block`): their sums first, then their
//!   sixteen horizontal maxima in one transposing reduction (`hmax16`), then their compares;
//! - when the caller screens (`calib::calibrate_screened_with`), the pixels the cleaning
//!   cannot select are left out (`sparse`): first on the ADC samples themselves, two
//!   saturating integer subtractions per 32 samples against each pixel's precomputed ADC
//!   range (`screen_adc`, `outside`; `calib::adc_range`) instead of converting every row
//!   to R1; only the rows of the pixels that remain and of their neighbours are converted,
//!   and those pixels are integrated sixteen at a time (`block`).
//!
//! The R1 rows start on a cache line (`calib_avx2::LineAligned`): with the allocator's
//! 16-byte alignment every 64-byte row access straddled two lines. When every pixel is
//! integrated they form a ring sized per camera to the farthest a block's neighbours reach
//! back (`passes`), so that they stay in L1 or L2 (SCTCam: 2048 rows of 128 bytes instead
//! of 11328; its calibration 8–12 % faster, the other cameras unchanged).

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

use crate::calib_avx2::{FusedImage, FusedScratch, exact_peak, exact_peak_among};

/// Whether the CPU has what this build needs (AVX2, AVX-512 F, BW, VL, DQ, BMI1 and POPCNT;
/// cached by std).
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("bmi1")
        && std::arch::is_x86_feature_detected!("popcnt")
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512dq")
}

/// Calibrate one image (the caller guarantees the features of [`available`],
/// `2 ≤ n_samples ≤ 64`, consistent slice lengths and neighbour indices `< n_pixels`, which
/// are checked again here with a panic as the only failure); writes `image` and `peak_time`
/// (`n_pixels` each) and returns the number of pixels whose peak needed float64 sums. `sc`
/// may be shared with the AVX2 build (every row is written before it is read).
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
pub(crate) fn neighbor_window_sum(
    im: &FusedImage,
    sc: &mut FusedScratch,
    image: &mut [f32],
    peak_time: &mut [f32],
) -> usize {
    let v = im.n_samples.div_ceil(16);
    sc.prepare(im, 16 * v, image, peak_time);
    let np = im.n_pixels;
    if !im.adc_skip.is_empty() {
        // each pixel its own row
        sc.row_mask = usize::MAX;
        return match v {
            1 => sparse::<1>(im, sc, image, peak_time),
            2 => sparse::<2>(im, sc, image, peak_time),
            3 => sparse::<3>(im, sc, image, peak_time),
            _ => sparse::<4>(im, sc, image, peak_time),
        };
    }
    let all = np.next_power_of_two();
    let hint = sc.ring_hints.iter().find(|h| h.0 == np).map(|h| h.1);
    let mut run = |sc: &mut FusedScratch, rows: usize| {
        sc.row_mask = rows - 1;
        match v {
            1 => passes::<1>(im, sc, image, peak_time),
            2 => passes::<2>(im, sc, image, peak_time),
            3 => passes::<3>(im, sc, image, peak_time),
            _ => passes::<4>(im, sc, image, peak_time),
        }
    };
    // the ring this camera needed before, else (or if this image's neighbours reach further)
    // one row per pixel, which always holds
    let (fallbacks, reach) = match hint.map(|rows| run(sc, rows)) {
        Some(Ok(done)) => return done.0,
        _ => run(sc, all).unwrap_or_else(|_| unreachable!("a ring of every row holds them")),
    };
    let rows = reach.next_power_of_two().max(hint.unwrap_or(0)).min(all);
    match sc.ring_hints.iter_mut().find(|h| h.0 == np) {
        Some(h) => h.1 = rows,
        None => sc.ring_hints.push((np, rows)),
    }
    fallbacks
}

/// [`passes`] found a row it needs outside the ring (the neighbours of this image reach
/// further back than those of the image the ring was sized for).
#[derive(Debug)]
struct RingTooSmall;

/// The three steps for rows of `V` vectors of 16 floats (R1 rows, peaks, window sums) for
/// every pixel, interleaved by blocks of sixteen pixels: before a block's peaks, the R1 rows
/// up to its highest neighbour are converted (if not done yet); after them, its window sums.
/// Each pixel's outputs are the same operations on the same values as in three whole-image
/// passes (every row is written before it is read; the peak of a pixel needs only the rows
/// of the pixel and its neighbours, its window sum only its own row and peak), but the rows
/// are read while still in L1 (DigiCam: neighbours within ±37 rows of 256 bytes) or L2
/// (SCTCam: ±953 rows of 128 bytes) instead of after a pass over the whole camera (331 kB
/// for DigiCam, 1.45 MB for SCTCam, beside the ADC samples).
///
/// The rows form a ring of `sc.row_mask + 1` rows (a power of two): pixel `j` is in row
/// `j & row_mask`, and converting a row overwrites the one `row_mask + 1` pixels back.
/// What a block reads must then span fewer rows than the ring: its lowest row (own or
/// neighbour) at least the number of converted rows minus the ring's size, checked per
/// block and for the pixels after the last block. Returns the pixels that needed float64
/// sums and the largest such span (the smallest ring this camera can use), or
/// [`RingTooSmall`], leaving the outputs partly written, when the ring is smaller than a
/// span. With rows of DigiCam's pixels reaching ±37 rows (a ring of 128 rows, 32 kB) and
/// SCTCam's ±953 (2048 rows, 256 kB) the rows stay in L1 and L2 instead of being written
/// back to L3 once per image (1.45 MB for SCTCam).
#[inline(never)] // a symbol of its own in profiles
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
fn passes<const V: usize>(
    im: &FusedImage,
    sc: &mut FusedScratch,
    image: &mut [f32],
    peak_time: &mut [f32],
) -> Result<(usize, usize), RingTooSmall> {
    let np = im.n_pixels;
    let ring = sc.row_mask.wrapping_add(1);
    assert!(ring.is_power_of_two());
    let mut reach = 0;
    r1_check::<V>(im, sc);
    let ex = Extractor::new(im, 16 * V);
    let mut fallbacks = 0;
    let neighbours = checked_neighbours(im);
    let (indptr, indices) = (im.indptr, im.indices);
    assert!(sc.peak.len() >= np);
    // rows 0..r1_done hold R1
    let mut r1_done = 0;
    // sixteen pixels at a time: their sums first, then their sixteen horizontal maxima in
    // one transposing reduction, then their candidates (see `peak_block`)
    let blocks = np / 16 * 16;
    for p0 in (0..blocks).step_by(16) {
        // the rows this block reads: its own and its neighbours' (indices < n_pixels, checked
        // by `FusedScratch::prepare`), converted at least 16 at a time (measured: chunks of
        // 16 rows 3–6 % faster than 32, 64 or 128 rows 5–19 % slower: the finer the R1
        // conversion is interleaved with the peak search, the better the two overlap)
        // SAFETY: p0 + 16 ≤ n_pixels < indptr.len(), and indptr[p0] ≤ indptr[p0 + 16] ≤
        // indices.len() (checked by `checked_neighbours`).
        let nbs = unsafe {
            let (a, b) = (*indptr.get_unchecked(p0), *indptr.get_unchecked(p0 + 16));
            indices.get_unchecked(a as usize..b as usize)
        };
        // (a loop, not a fold: its closure was not inlined, 5 % of a DigiCam calibration)
        let (mut lo, mut hi) = (p0 as u32, p0 as u32 + 15);
        for &j in nbs {
            lo = lo.min(j);
            hi = hi.max(j);
        }
        let needed = hi as usize + 1;
        if needed > r1_done {
            let to = needed.max(r1_done + 16).min(np);
            // SAFETY: r1_done < to ≤ n_pixels; `r1_check` passed.
            unsafe { r1_range::<V>(im, sc, r1_done, to) };
            r1_done = to;
        }
        // the ring holds rows r1_done − ring..r1_done
        reach = reach.max(r1_done - lo as usize);
        if reach > ring {
            return Err(RingTooSmall);
        }
        let consecutive: [usize; 16] = std::array::from_fn(|i| p0 + i);
        fallbacks += block::<V>(
            im,
            sc,
            &ex,
            &consecutive,
            0xFFFF,
            true,
            &neighbours,
            image,
            peak_time,
        );
    }
    // SAFETY: r1_done ≤ n_pixels; `r1_check` passed.
    unsafe { r1_range::<V>(im, sc, r1_done, np) };
    if blocks < np {
        let tail = &indices[indptr[blocks] as usize..indptr[np] as usize];
        let lo = tail.iter().fold(blocks as u32, |m, &j| m.min(j));
        reach = reach.max(np - lo as usize);
        if reach > ring {
            return Err(RingTooSmall);
        }
    }
    // the rest two pixels at a time: their horizontal maxima share one reduction, and the
    // two chains of latencies (sums, maximum, threshold, compares) interleave
    for p in (blocks..np).step_by(2) {
        // the last pixel of an odd count twice
        let q = (p + 1).min(np - 1);
        let [(pa, ea), (pb, eb)] = peak_pair::<V>(im, sc, [p, q], [neighbours(p), neighbours(q)]);
        // SAFETY: p ≤ q < n_pixels ≤ peak.len() (asserted above).
        unsafe {
            *sc.peak.get_unchecked_mut(p) = pa;
            *sc.peak.get_unchecked_mut(q) = pb;
        }
        fallbacks += usize::from(ea) + usize::from(eb && q != p);
    }
    for p in blocks..np {
        ex.base.one(im, sc, p, image, peak_time);
    }
    Ok((fallbacks, reach))
}

/// Pixel `p`'s neighbour slice of the CSR lists of `im`, taken unchecked after one check of
/// the whole lists here: offsets non-decreasing and ending within the indices (a panic
/// otherwise).
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
fn checked_neighbours<'a>(im: &FusedImage<'a>) -> impl Fn(usize) -> &'a [u32] + use<'a> {
    let np = im.n_pixels;
    let (indptr, indices) = (im.indptr, im.indices);
    assert!(indptr.len() == np + 1);
    // (a branch-free fold that vectorises, instead of `windows(2).all(..)`, whose early
    // exit kept it scalar: 3 % of the peak search on DigiCam)
    let descending = indptr[..np]
        .iter()
        .zip(&indptr[1..])
        .fold(0u32, |d, (a, b)| d | u32::from(a > b));
    assert!(descending == 0 && indptr[np] as usize <= indices.len());
    move |p: usize| {
        assert!(p < np);
        // SAFETY: p < n_pixels, so p + 1 < indptr.len(), and indptr[p] ≤ indptr[p + 1] ≤
        // indices.len() (asserted above).
        unsafe {
            let (a, b) = (*indptr.get_unchecked(p), *indptr.get_unchecked(p + 1));
            indices.get_unchecked(a as usize..b as usize)
        }
    }
}

/// The screened calibration (the caller's `adc_skip` set): only the pixels the cleaning may
/// select are integrated, NaN is written for the others. In five steps:
/// 1. bound 1 on every row, on the ADC samples themselves (`screen_adc`): a row all of whose
///    samples are inside the pixel's `adc_skip` range has its largest |R1| below the skip
///    limit; the others (and those of `keep`) are listed;
/// 2. bound 3, for a camera without HV-disabled pixels (`adc_picture` set): the listed pixels
///    with a sample outside their `adc_picture` range (the possible picture pixels) mark
///    themselves and their neighbours; the unmarked are left out;
/// 3. the R1 rows of the remaining pixels, and bound 2 (`positive_sums_below`) on them,
///    sixteen at a time;
/// 4. the R1 rows of the remaining pixels' neighbours (each row converted once, with its
///    largest |R1|);
/// 5. their peaks and window sums sixteen at a time (`block`), gathered in increasing order.
///
/// Every pixel integrated gets the same operations on the same values as in [`passes`]; the
/// rows are each pixel's own (`row_mask` = `usize::MAX`). Returns the pixels that needed
/// float64 sums.
///
/// The three bounds, each enough on its own to leave a pixel out:
/// - bound 1: every sample of any window is at most the row's largest |R1|, so one below
///   the skip limit makes the charge certainly below both thresholds (`calib::skip_limit`);
/// - bound 2: the same from the sum of the row's positive R1 (`positive_sums_below`);
/// - bound 3: a charge at or above the picture threshold needs the row's largest |R1| at or
///   above the picture limit, a sample outside the picture range. A pixel that neither has
///   such a sample nor is next to one is no picture pixel, has no picture neighbour (so is
///   no boundary pixel of the mask) and is no picture pixel's neighbour (so its boundary
///   flag counts for no one): it is not in the mask and changes nothing in it. The neighbour
///   lists are the cleaning's when no pixel is HV-disabled. (The skip range lies inside the
///   picture range, the skip limit being the one for the smaller floor, so every possible
///   picture pixel is listed by step 1.)
#[inline(never)] // a symbol of its own in profiles
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
fn sparse<const V: usize>(
    im: &FusedImage,
    sc: &mut FusedScratch,
    image: &mut [f32],
    peak_time: &mut [f32],
) -> usize {
    let np = im.n_pixels;
    r1_check::<V>(im, sc);
    let n_entries = im.pedestal.len().min(im.dc_to_pe.len());
    assert!(im.adc_skip.len() >= n_entries);
    assert!(im.adc_picture.is_empty() || (im.adc_picture.len() >= n_entries && im.keep.is_empty()));
    assert!(im.keep.is_empty() || im.keep.len() == np);
    assert!(image.len() == np && peak_time.len() == np && sc.peak.len() >= np);
    let neighbours = checked_neighbours(im);
    let mut sp = std::mem::take(&mut sc.sparse);
    // 1. bound 1 on every row
    // (grown only: every entry read below is written first; `rows` holds at most one entry
    // per pixel, and one written past the last counted)
    if sp.listed.len() < np {
        sp.listed.resize(np, 0);
    }
    if sp.rows.len() <= np {
        sp.rows.resize(np + 1, 0);
    }
    // SAFETY: `r1_check` passed (every selected gain's rows exist, so g·n_pixels + p <
    // n_entries ≤ adc_skip.len()); `listed` holds n_pixels entries.
    let mut n = unsafe { screen_adc(im, im.adc_skip, &mut sp.listed) };
    image.fill(f32::NAN);
    peak_time.fill(f32::NAN);
    let stamp = sp.next_generation(np);
    // 2. bound 3: the possible picture pixels mark themselves and their neighbours
    if !im.adc_picture.is_empty() {
        // (listed first, without a branch per pixel: they come in no predictable order)
        let mut n_pic = 0;
        for &p in &sp.listed[..n] {
            sp.rows[n_pic] = p;
            let i = usize::from(im.gain[p as usize]) * np + p as usize;
            // SAFETY: as `screen_adc`'s rows (p < n_pixels, its gain's entry exists).
            n_pic += usize::from(unsafe { outside(im, im.adc_picture, i) });
        }
        for &p in &sp.rows[..n_pic] {
            sp.near[p as usize] = stamp;
            for &j in neighbours(p as usize) {
                sp.near[j as usize] = stamp;
            }
        }
        let mut k = 0;
        for i in 0..n {
            let p = sp.listed[i];
            sp.listed[k] = p;
            k += usize::from(sp.near[p as usize] == stamp);
        }
        n = k;
    }
    // 3. their rows, then bound 2 sixteen at a time (the survivors moved to the front)
    for &p in &sp.listed[..n] {
        sp.converted[p as usize] = stamp;
    }
    // SAFETY: every listed pixel < n_pixels; `r1_check` passed.
    unsafe { r1_list::<V>(im, sc, &sp.listed[..n]) };
    if im.skip_possum_below != [0.0; 2] {
        let mut kept = 0;
        for k in (0..n).step_by(16) {
            let len = (n - k).min(16);
            let pix = padded(&sp.listed[k..k + len]);
            let need = u32::MAX >> (32 - len) & !positive_sums_below::<V>(im, sc, &pix);
            for (i, &p) in pix.iter().enumerate().take(len) {
                sp.listed[kept] = p as u32;
                kept += (need >> i & 1) as usize;
            }
        }
        n = kept;
    }
    // 4. the neighbours' rows (each listed once: written always, counted when new, no
    // branch on the marks, which come in no predictable order)
    let listed = &sp.listed[..n];
    let mut n_rows = 0;
    for &p in listed {
        for &j in neighbours(p as usize) {
            let seen = &mut sp.converted[j as usize];
            let new = *seen != stamp;
            *seen = stamp;
            // (n_rows < n_pixels here: at most one entry per pixel, and row j not yet counted)
            sp.rows[n_rows] = j;
            n_rows += usize::from(new);
        }
    }
    // SAFETY: every row < n_pixels (neighbour indices, checked by `prepare`); `r1_check`
    // passed.
    unsafe { r1_list::<V>(im, sc, &sp.rows[..n_rows]) };
    // 5. peaks and window sums
    let ex = Extractor::new(im, 16 * V);
    let mut fallbacks = 0;
    for chunk in listed.chunks(16) {
        let pix = padded(chunk);
        let need = u32::MAX >> (32 - chunk.len());
        let contiguous = need == 0xFFFF && pix[15] == pix[0] + 15;
        fallbacks += block::<V>(
            im,
            sc,
            &ex,
            &pix,
            need,
            contiguous,
            &neighbours,
            image,
            peak_time,
        );
    }
    sc.sparse = sp;
    fallbacks
}

/// Up to sixteen pixels as a block: the free lanes repeat the first pixel (their results are
/// left out by the callers' masks).
#[inline]
fn padded(chunk: &[u32]) -> [usize; 16] {
    assert!((1..=16).contains(&chunk.len()));
    std::array::from_fn(|i| chunk.get(i).copied().unwrap_or(chunk[0]) as usize)
}

/// Whether a sample of row `i` (`g·n_pixels + p`: pixel `p`'s for its selected gain `g`) lies
/// outside its range in `ranges` (`calib::adc_range` as `[lo, hi]` in both halves of a
/// `u32`): 32 samples per compare, `(lo ⊖ a) | (a ⊖ hi)` nonzero with saturating
/// subtractions. The lanes past the row are loaded as `lo`, which is inside a non-empty range
/// and changes nothing for the empty one (`[65535, 0]`, outside which every value lies).
///
/// # Safety
/// The features of [`available`]; `2 ≤ n_samples ≤ 64`; `samples` holds
/// `(i + 1)·n_samples` values and `ranges` more than `i`.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
unsafe fn outside(im: &FusedImage, ranges: &[[u32; 2]], i: usize) -> bool {
    let ns = im.n_samples;
    // SAFETY: i < ranges.len() (contract).
    let [lo, hi] = unsafe { *ranges.get_unchecked(i) };
    let (lo, hi) = (_mm512_set1_epi32(lo as i32), _mm512_set1_epi32(hi as i32));
    // SAFETY: (i + 1)·ns ≤ samples.len() (contract).
    let src = unsafe { im.samples.as_ptr().add(i * ns) };
    let away = |x: __m512i| _mm512_or_si512(_mm512_subs_epu16(lo, x), _mm512_subs_epu16(x, hi));
    let t = if ns <= 32 {
        // SAFETY: the first ns lanes are the row (masked load: the others are not read).
        let x = unsafe { _mm512_mask_loadu_epi16(lo, u32::MAX >> (32 - ns), src.cast()) };
        away(x)
    } else {
        // SAFETY: 32 samples, then the row's other ns − 32 (≤ 32) lanes (masked load).
        let (x0, x1) = unsafe {
            (
                _mm512_loadu_si512(src.cast()),
                _mm512_mask_loadu_epi16(lo, u32::MAX >> (64 - ns), src.add(32).cast()),
            )
        };
        _mm512_or_si512(away(x0), away(x1))
    };
    _mm512_test_epi16_mask(t, t) != 0
}

/// Bound 1 on every row: lists in `out` (increasing) the pixels with a sample [`outside`] the
/// `ranges` (the skip ranges), and those of `keep`, i.e. those `calib::skipped` does not
/// skip; returns how many.
///
/// # Safety
/// [`outside`]'s for every pixel (which [`r1_check`] and `ranges` holding an entry per
/// (gain, pixel) make true); `out` holds at least `n_pixels` entries.
#[inline(never)] // a symbol of its own in profiles
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
unsafe fn screen_adc(im: &FusedImage, ranges: &[[u32; 2]], out: &mut [u32]) -> usize {
    // one gain (the pedestals of one) and no pixel to keep: the loop without the gain and
    // keep lookups (measured on gamma_test, three alternated `bench_split` runs: SCTCam
    // 55.8-60.7 µs per image against 55.3-68.8 with them, LSTCam and CHEC within the noise)
    let plain = im.pedestal.len() < 2 * im.n_pixels && im.keep.is_empty();
    // SAFETY: the contract; `plain` only when every selected gain is 0 (`r1_check` asserts
    // pedestals for every selected gain) and `keep` is empty.
    unsafe {
        if plain {
            screen_loop::<true>(im, ranges, out)
        } else {
            screen_loop::<false>(im, ranges, out)
        }
    }
}

/// [`screen_adc`]'s loop; `PLAIN`: every selected gain is 0 and `keep` is empty.
///
/// # Safety
/// [`screen_adc`]'s, and `PLAIN` only as said.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
unsafe fn screen_loop<const PLAIN: bool>(
    im: &FusedImage,
    ranges: &[[u32; 2]],
    out: &mut [u32],
) -> usize {
    let (np, ns) = (im.n_pixels, im.n_samples);
    assert!(out.len() >= np && (im.keep.is_empty() || im.keep.len() == np));
    let (base, len) = (im.samples.as_ptr(), im.samples.len());
    let mut n = 0;
    for p in 0..np {
        // the samples 2 kB ahead into L1, as `r1_range`
        // SAFETY: p < n_pixels = gain.len() (`r1_check`).
        let g = if PLAIN {
            0
        } else {
            usize::from(unsafe { *im.gain.get_unchecked(p) })
        };
        let ahead = (g * np + p) * ns + 1024;
        if ahead + 64 < len {
            // SAFETY: in bounds (checked just above); a prefetch has no other effect.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(base.add(ahead).cast()) };
        }
        // SAFETY: the contract.
        let away = unsafe { outside(im, ranges, g * np + p) };
        let keep = !PLAIN && im.keep.get(p).copied().unwrap_or(false);
        // SAFETY: n ≤ p < n_pixels ≤ out.len() (asserted above). Written always, counted
        // when kept (no branch: the kept pixels come in no predictable order).
        unsafe { *out.get_unchecked_mut(n) = p as u32 };
        n += usize::from(away | keep);
    }
    n
}

/// R1 rows (with their largest |R1|) of the pixels `rows`, two at a time.
///
/// # Safety
/// The features of [`available`]; every entry of `rows` < `n_pixels`; [`r1_check`] passed for
/// `im`, `sc` and `V`.
#[inline(never)] // a symbol of its own in profiles
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
unsafe fn r1_list<const V: usize>(im: &FusedImage, sc: &mut FusedScratch, rows: &[u32]) {
    let mut pairs = rows.chunks_exact(2);
    for pair in &mut pairs {
        let (p, q) = (pair[0] as usize, pair[1] as usize);
        assert!(p < im.n_pixels && q < im.n_pixels);
        // SAFETY: p, q < n_pixels and the lengths checked by `r1_check` (contract).
        unsafe { r1_row::<V, 2>(im, sc, [p, q]) };
    }
    for &p in pairs.remainder() {
        assert!((p as usize) < im.n_pixels);
        // SAFETY: as above.
        unsafe { r1_row::<V, 1>(im, sc, [p as usize]) };
    }
}

/// Peaks and window sums of the pixels `pix` of `need` (bit i for `pix[i]`; `contiguous`:
/// the sixteen consecutive pixels from `pix[0]`); returns the pixels that needed float64
/// sums. Not inlined: it has several callers (measured: inlining it made no difference).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
fn block<'a, const V: usize>(
    im: &FusedImage,
    sc: &mut FusedScratch,
    ex: &Extractor,
    pix: &[usize; 16],
    need: u32,
    contiguous: bool,
    neighbours: &impl Fn(usize) -> &'a [u32],
    image: &mut [f32],
    peak_time: &mut [f32],
) -> usize {
    let fallbacks = peak_block::<V>(im, sc, pix, need, neighbours);
    // the window sums in vectors unless only a few pixels are to be integrated (four: a
    // chosen break-even, `sixteen` does sixteen lanes' work whatever the count; not measured
    // on its own)
    if ex.base.simd_ok && need.count_ones() >= 4 {
        let write = need as __mmask16;
        if contiguous {
            ex.sixteen::<true>(im, sc, pix, image, peak_time, write);
        } else {
            ex.sixteen::<false>(im, sc, pix, image, peak_time, write);
        }
    } else {
        for i in (0..16).filter(|i| need >> i & 1 != 0) {
            ex.base.one(im, sc, pix[i], image, peak_time);
        }
    }
    fallbacks
}

/// The pixels of `pix` (bit i for `pix[i]`) whose charge is certainly below the caller's
/// floor by the sum P of their positive R1 samples: any window's float64 sum is at most P
/// (the samples it leaves out or that are negative only lower it), so the stored charge is
/// at most P·corr·(1 + 2^−15) (P, at most 64 non-negative terms summed in float32 here in
/// any order, is within a relative γ_63 = 63u/(1 − 63u), u = 2^−24, of the exact sum:
/// Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., §4.2, eq. 4.4; the
/// float64 sum, the float32 and float64 roundings of the charge add less than 2^−22);
/// `skip_possum_below` = floor / (corr·(1 + 2^−12)) rounded to float32 keeps that below the
/// floor. Never a pixel of `keep`; a NaN sample counts as 0 (its window sum is NaN, which no
/// threshold selects). The rows of the sixteen hold R1.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
fn positive_sums_below<const V: usize>(
    im: &FusedImage,
    sc: &FusedScratch,
    pix: &[usize; 16],
) -> u32 {
    let np = im.n_pixels;
    assert!(pix.iter().all(|&p| p < np));
    assert!(sc.wave.len() >= np * 16 * V && im.gain.len() >= np);
    let last = last_mask::<V>(im.n_samples);
    let zero = _mm512_setzero_ps();
    let rows: [__m512; 16] = std::array::from_fn(|i| {
        let r = sc.row_start(pix[i], 16 * V);
        let mut acc = zero;
        for q in 0..V {
            // SAFETY: 16 floats of the row (r + 16·V ≤ wave.len(), asserted above).
            let x = unsafe { _mm512_loadu_ps(sc.wave.as_ptr().add(r + 16 * q)) };
            // the padding lanes of the last vector count 0
            let pos = if q + 1 < V {
                _mm512_max_ps(x, zero)
            } else {
                _mm512_maskz_max_ps(last, x, zero)
            };
            acc = _mm512_add_ps(acc, pos);
        }
        acc
    });
    let sums = hreduce16(&rows, |a, b| _mm512_add_ps(a, b));
    let gains = pix.map(|p| im.gain[p]);
    // SAFETY: 16 bytes.
    let g = unsafe { _mm512_cvtepu8_epi32(_mm_loadu_si128(gains.as_ptr().cast())) };
    let [l0, l1] = im.skip_possum_below;
    let lim = _mm512_mask_blend_ps(
        _mm512_test_epi32_mask(g, _mm512_set1_epi32(1)),
        _mm512_set1_ps(l0),
        _mm512_set1_ps(l1),
    );
    let below = u32::from(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(sums, lim));
    let keep = if im.keep.is_empty() {
        0
    } else {
        (0..16).fold(0u32, |k, i| k | u32::from(im.keep[pix[i]]) << i)
    };
    below & !keep
}

/// The valid lanes (the first `ns − 16·(V − 1)`, 1..=16) of a row's last vector.
#[inline]
fn last_mask<const V: usize>(ns: usize) -> __mmask16 {
    let valid = ns - 16 * (V - 1);
    (u32::MAX >> (32 - valid)) as __mmask16
}

/// The checks of [`r1_range`]'s contract: every row that a selected gain points to exists
/// (`r1_row` reads them unchecked), the scratch holds every row, `V` fits `n_samples`.
#[inline]
fn r1_check<const V: usize>(im: &FusedImage, sc: &FusedScratch) {
    let (ns, np) = (im.n_samples, im.n_pixels);
    let n_gains = usize::from(im.gain.iter().fold(0u8, |m, &g| m.max(g))) + 1;
    assert!(im.gain.len() == np && im.pedestal.len() >= n_gains * np);
    assert!(im.dc_to_pe.len() >= n_gains * np && im.samples.len() >= n_gains * np * ns);
    assert!(sc.wave.len() >= np * 16 * V && sc.maxabs.len() >= np);
    assert!((16 * V - 15..=16 * V).contains(&ns));
}

/// R1 rows of pixels `from..to`.
///
/// # Safety
/// The features of [`available`]; `from ≤ to ≤ n_pixels`; [`r1_check`] passed for `im`,
/// `sc` and `V`.
#[inline(never)] // a symbol of its own in profiles
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
unsafe fn r1_range<const V: usize>(im: &FusedImage, sc: &mut FusedScratch, from: usize, to: usize) {
    let (base, len, ns) = (im.samples.as_ptr(), im.samples.len(), im.n_samples);
    assert!(from <= to && to <= im.n_pixels);
    let pairs = from + (to - from) / 2 * 2;
    for p in (from..pairs).step_by(2) {
        // the samples 2 kB ahead into L1, as the AVX2 build
        for p in [p, p + 1] {
            // SAFETY: p < n_pixels = gain.len() (contract).
            let g = usize::from(unsafe { *im.gain.get_unchecked(p) });
            let ahead = (g * im.n_pixels + p) * ns + 1024;
            if ahead + 64 < len {
                // SAFETY: in bounds (checked just above); a prefetch has no other effect.
                unsafe {
                    _mm_prefetch::<_MM_HINT_T0>(base.add(ahead).cast());
                    _mm_prefetch::<_MM_HINT_T0>(base.add(ahead + 32).cast());
                }
            }
        }
        // two rows at a time, their chains of latencies interleaved
        // SAFETY: p + 1 < n_pixels and the lengths checked by `r1_check` (contract).
        unsafe { r1_row::<V, 2>(im, sc, [p, p + 1]) };
    }
    for p in pairs..to {
        // SAFETY: p < n_pixels and the lengths checked by `r1_check` (contract).
        unsafe { r1_row::<V, 1>(im, sc, [p]) };
    }
}

/// The larger magnitude of each lane pair with the sign cleared (`vrangeps`, imm 0b1011);
/// +∞ if either is infinite; with one quiet NaN the other operand, with two NaN (tested).
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn abs_max(a: __m512, b: __m512) -> __m512 {
    _mm512_range_ps::<0b1011>(a, b)
}

/// The 16 lanes of `a` and the 16 lanes of `b` each reduced by `op` (a maximum): lanes 0–7
/// of the result hold `a`'s, lanes 8–15 `b`'s. 128-bit quarters (a0, a1, b0, b1) against
/// (a2, a3, b2, b3), then the quarters within each half, pairs and neighbours: one
/// reduction for two rows or pixels.
#[inline]
#[target_feature(enable = "avx512f")]
fn reduce_halves(a: __m512, b: __m512, op: impl Fn(__m512, __m512) -> __m512) -> __m512 {
    let z = op(
        _mm512_shuffle_f32x4::<0b0100_0100>(a, b),
        _mm512_shuffle_f32x4::<0b1110_1110>(a, b),
    );
    let z = op(z, _mm512_shuffle_f32x4::<0b1011_0001>(z, z));
    let z = op(z, _mm512_permute_ps::<0b0100_1110>(z));
    op(z, _mm512_permute_ps::<0b1011_0001>(z))
}

/// The R1 vectors of pixel `p`'s row: (ADC − pedestal) · dc_to_pe in float32 for its
/// selected gain, 16 samples per vector; the last vector's lanes past the row take sample 0's
/// value (masked load: those addresses are not read), so they hold sample 0's R1.
///
/// # Safety
/// The features of [`available`]; `16·(V − 1) < n_samples ≤ 16·V`; `p < n_pixels`; with
/// `g = gain[p]`, `g·n_pixels + p` indexes `pedestal` and `dc_to_pe`, and `samples` holds
/// `(g·n_pixels + p + 1)·n_samples` values.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
unsafe fn r1_vectors<const V: usize>(im: &FusedImage, p: usize) -> [__m512; V] {
    let (np, ns) = (im.n_pixels, im.n_samples);
    // SAFETY: p < n_pixels = gain.len() (contract).
    let i = usize::from(unsafe { *im.gain.get_unchecked(p) }) * np + p;
    // SAFETY: i < pedestal.len(), dc_to_pe.len() (contract).
    let (ped, k) = unsafe {
        (
            _mm512_set1_ps(*im.pedestal.get_unchecked(i)),
            _mm512_set1_ps(*im.dc_to_pe.get_unchecked(i)),
        )
    };
    // SAFETY: (i + 1)·ns ≤ samples.len() (contract).
    let src = unsafe { im.samples.as_ptr().add(i * ns) };
    // SAFETY: ns ≥ 1 samples at src.
    let first = _mm256_set1_epi16(unsafe { *src } as i16);
    std::array::from_fn(|q| {
        // SAFETY: full vectors q < V − 1 lie within the row (16·(q + 1) < ns); the last
        // one reads only its first ns − 16·(V − 1) lanes.
        let x = unsafe {
            if q + 1 < V {
                _mm256_loadu_si256(src.add(16 * q).cast())
            } else {
                _mm256_mask_loadu_epi16(first, last_mask::<V>(ns), src.add(16 * q).cast())
            }
        };
        _mm512_mul_ps(
            _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(x)), ped),
            k,
        )
    })
}

/// The larger magnitude, sign cleared, of each lane over a row's R1 vectors (`abs_max`, as a
/// tree).
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn row_abs_max<const V: usize>(rs: &[__m512; V]) -> __m512 {
    match V {
        1 => abs_max(rs[0], rs[0]),
        2 => abs_max(rs[0], rs[1]),
        3 => abs_max(abs_max(rs[0], rs[1]), rs[2]),
        _ => abs_max(abs_max(rs[0], rs[1]), abs_max(rs[2], rs[3])),
    }
}

/// R1 = (ADC − pedestal) · dc_to_pe in float32 for the selected gain of each pixel `p` of
/// `pix` (`G` ≤ 2 rows, their reductions shared), with the row's largest |value| taken from
/// the R1 vectors themselves with `vrangeps` (largest magnitude, sign cleared). When every
/// value is finite that is the exact largest |R1| of the row (the masked lanes hold sample
/// 0's R1, a value of the row), which is what `calib::max_abs_and_constant` finds. A
/// non-finite row gives +∞ or NaN: R1 is NaN only when the pedestal or dc_to_pe is NaN or
/// the pedestal infinite with dc_to_pe 0 (then every value is NaN, and two NaNs give NaN),
/// or for the one ADC value equal to the pedestal with an infinite dc_to_pe (then every
/// other value is ±∞, and +∞ wins over a NaN, which `vrangeps` skips); an infinite value
/// gives +∞. Unlike the AVX2 build a non-finite row is not normalised to NaN; either way the
/// bound of `sums` is then not finite and the pixel goes to the float64 path. (The AVX2
/// build takes the smallest and largest ADC sample with `phminposuw` instead: about 24
/// instructions per row against 8 here.)
///
/// # Safety
/// The features of [`available`]; `16·(V − 1) < n_samples ≤ 16·V`; for each `p` of `pix`:
/// `p < n_pixels`; with `g = gain[p]`, `g·n_pixels + p` indexes `pedestal` and `dc_to_pe`,
/// `samples` holds `(g·n_pixels + p + 1)·n_samples` values, `sc.wave` holds at least
/// `(p + 1)·16·V` floats and `sc.maxabs` more than `p`.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
unsafe fn r1_row<const V: usize, const G: usize>(
    im: &FusedImage,
    sc: &mut FusedScratch,
    pix: [usize; G],
) {
    let stride = 16 * V;
    // the largest |R1| of each row, lane-wise
    let mut lanes = [_mm512_setzero_ps(); 2];
    for g in 0..G {
        let p = pix[g];
        // SAFETY: p < n_pixels and the lengths of the contract.
        let rs = unsafe { r1_vectors::<V>(im, p) };
        let start = sc.row_start(p, stride);
        // SAFETY: start + stride ≤ (p + 1)·stride ≤ wave.len() (contract).
        let dst = unsafe { sc.wave.as_mut_ptr().add(start) };
        for (q, rq) in rs.iter().enumerate() {
            // SAFETY: 16 floats at dst + 16·q within the row (contract).
            unsafe { _mm512_storeu_ps(dst.add(16 * q), *rq) };
        }
        lanes[g] = row_abs_max::<V>(&rs);
    }
    if G == 1 {
        lanes[1] = lanes[0];
    }
    // the two rows' lanes reduced together
    let z = reduce_halves(lanes[0], lanes[1], |x, y| abs_max(x, y));
    let m = [
        _mm512_cvtss_f32(z),
        _mm_cvtss_f32(_mm512_extractf32x4_ps::<2>(z)),
    ];
    for g in 0..G {
        // SAFETY: p < maxabs.len() (contract).
        unsafe { *sc.maxabs.get_unchecked_mut(pix[g]) = m[g] };
    }
}

/// The neighbour peaks of pixels `pa` and `pb` (neighbours `na` and `nb`; the same pixel
/// twice for a last odd one), by the screen of `calib::neighbor_peaks` (its bound and proof,
/// in the order of `calib_avx2::screen`), and whether each needed float64 sums. The rows of
/// the pixels and of their neighbours hold R1. The two horizontal maxima share one
/// reduction and the two chains of latencies (sums, maximum, threshold, compares)
/// interleave; `sums` and `decide` have this one call site each, so they are inlined.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
fn peak_pair<const V: usize>(
    im: &FusedImage,
    sc: &FusedScratch,
    pix: [usize; 2],
    nbs: [&[u32]; 2],
) -> [(u32, bool); 2] {
    let mut acc = [[_mm512_setzero_ps(); V]; 2];
    let mut bound = [0.0f32; 2];
    let mut m = [_mm512_setzero_ps(); 2];
    for i in 0..2 {
        (acc[i], bound[i]) = sums::<V>(im, sc, pix[i], nbs[i]);
        m[i] = lane_max::<V>(&acc[i], im.n_samples);
    }
    let z = reduce_halves(m[0], m[1], |x, y| _mm512_max_ps(x, y));
    // lanes 0–7 hold the maximum of the first pixel, lanes 8–15 that of the second:
    // broadcast each
    let best = [
        _mm512_shuffle_f32x4::<0b0000_0000>(z, z),
        _mm512_shuffle_f32x4::<0b1010_1010>(z, z),
    ];
    let mut out = [(0, false); 2];
    for i in 0..2 {
        out[i] = decide::<V>(im, sc, pix[i], nbs[i], &acc[i], best[i], bound[i]);
    }
    out
}

/// The lane-wise maximum over a row's sums, the padding lanes left out (they never win).
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
fn lane_max<const V: usize>(acc: &[__m512; V], ns: usize) -> __m512 {
    let last = last_mask::<V>(ns);
    // a tree over the vectors; the last vector enters only in its valid lanes (a masked
    // maximum keeps the other operand elsewhere), the vectors before it are whole. Without
    // NaN every lane is then the maximum over its samples in any order; with a NaN sum
    // the screen's threshold is not finite anyway (see `pick`).
    match V {
        1 => _mm512_mask_mov_ps(_mm512_set1_ps(f32::NEG_INFINITY), last, acc[0]),
        2 => _mm512_mask_max_ps(acc[0], last, acc[0], acc[1]),
        3 => {
            let m01 = _mm512_max_ps(acc[0], acc[1]);
            _mm512_mask_max_ps(m01, last, m01, acc[2])
        }
        _ => _mm512_max_ps(
            _mm512_max_ps(acc[0], acc[1]),
            _mm512_mask_max_ps(acc[2], last, acc[2], acc[3]),
        ),
    }
}

/// The float32 neighbour sums of pixel `p` (`V` vectors; the padding lanes hold sums of
/// padding) and the bound A of their rounding errors (see below).
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
fn sums<const V: usize>(
    im: &FusedImage,
    sc: &FusedScratch,
    p: usize,
    nb: &[u32],
) -> ([__m512; V], f32) {
    let stride = 16 * V;
    let (wave, maxabs) = (&sc.wave[..], &sc.maxabs[..]);
    let lw = im.local_weight;
    // As in the AVX2 build, no separate check for rows that are all constant: the
    // exact-repeat test below settles them (sample 0), the float64 path the non-finite ones.
    //
    // The float32 sums only screen the samples, so they need not follow ctapipe's order:
    // the bound of `calib::neighbor_peaks` (|float32 sum − exact sum| ≤ γ_{n−1}·A, with A
    // the sum of the terms' largest magnitudes) holds for every order of the n − 1
    // additions (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., §4.2,
    // eq. 4.4: the error is at most u times the sum of the |partial sums|, each ≤ A), and
    // so does the relative error γ_{n−1} of the float32 A itself (a sum of non-negative
    // values). The six neighbours of a pixel inside a hexagonal camera are therefore
    // added as a tree, ((r0 + r1) + ((r2 + r3) + (r4 + r5))), and the own term last: 3
    // dependent additions instead of 6 (for the four of a square camera's pixel 2 instead
    // of 4: SCTCam's calibration 5–7 % faster), which shortens each pixel's chain of
    // latencies (the peak search is latency-bound: every pixel ends in a horizontal
    // maximum).
    // Everything that decides the output — the candidates' float64 sums, the exact-repeat
    // test — is unchanged.
    let mut acc = [_mm512_setzero_ps(); V];
    debug_assert!(wave.len() >= maxabs.len() * stride);
    // SAFETY (of every call): j < n_pixels (checked on entry), so the row of j,
    // row_start(j).. + stride, lies in `wave` (n_pixels·stride + 8 floats) and j in
    // `maxabs` (n_pixels).
    let row = |j: u32| unsafe {
        let j = j as usize;
        (
            wave.as_ptr().add(sc.row_start(j, stride)),
            *maxabs.get_unchecked(j),
        )
    };
    // SAFETY (of every call): `r` from `row`, q < V: 16 floats within the row.
    let ld = |r: *const f32, q: usize| unsafe { _mm512_loadu_ps(r.add(16 * q)) };
    let mut bound = if let Ok(six) = <&[u32; 6]>::try_from(nb) {
        let r = [
            row(six[0]),
            row(six[1]),
            row(six[2]),
            row(six[3]),
            row(six[4]),
            row(six[5]),
        ];
        for (q, a) in acc.iter_mut().enumerate() {
            let s01 = _mm512_add_ps(ld(r[0].0, q), ld(r[1].0, q));
            let s23 = _mm512_add_ps(ld(r[2].0, q), ld(r[3].0, q));
            let s45 = _mm512_add_ps(ld(r[4].0, q), ld(r[5].0, q));
            *a = _mm512_add_ps(s01, _mm512_add_ps(s23, s45));
        }
        (r[0].1 + r[1].1) + ((r[2].1 + r[3].1) + (r[4].1 + r[5].1))
    } else if let Ok(four) = <&[u32; 4]>::try_from(nb) {
        // the four neighbours of a pixel inside a square camera (SCTCam, CHEC), likewise
        let r = [row(four[0]), row(four[1]), row(four[2]), row(four[3])];
        for (q, a) in acc.iter_mut().enumerate() {
            let s01 = _mm512_add_ps(ld(r[0].0, q), ld(r[1].0, q));
            let s23 = _mm512_add_ps(ld(r[2].0, q), ld(r[3].0, q));
            *a = _mm512_add_ps(s01, s23);
        }
        (r[0].1 + r[1].1) + (r[2].1 + r[3].1)
    } else {
        let mut bound = 0.0f32;
        for &j in nb {
            let (rj, mj) = row(j);
            for (q, a) in acc.iter_mut().enumerate() {
                *a = _mm512_add_ps(*a, ld(rj, q));
            }
            bound += mj;
        }
        bound
    };
    if lw != 0.0 {
        let own = &wave[sc.row_start(p, stride)..][..stride];
        let w = _mm512_set1_ps(lw as f32);
        for (q, a) in acc.iter_mut().enumerate() {
            // SAFETY: `own` holds 16·V floats.
            let x = _mm512_mul_ps(unsafe { _mm512_loadu_ps(own.as_ptr().add(16 * q)) }, w);
            *a = _mm512_add_ps(*a, x);
        }
    }
    bound += lw.abs() as f32 * maxabs[p];
    (acc, bound)
}

/// The peak of pixel `p` from its sums `acc`, their maximum `m` (in every lane when no sum
/// is NaN) and the bound A of `sums`; and whether it needed float64 sums.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
fn decide<const V: usize>(
    im: &FusedImage,
    sc: &FusedScratch,
    p: usize,
    nb: &[u32],
    acc: &[__m512; V],
    m: __m512,
    bound: f32,
) -> (u32, bool) {
    let t = _mm512_sub_ps(m, _mm512_set1_ps(margin(nb, bound)));
    // The screen needs the float32 maximum `best` and `d` finite. A finite t = best − d
    // implies both (an infinite or NaN operand gives an infinite or NaN difference, d ≥ 0);
    // the converse can fail only by an overflow of the difference, and then the float64
    // path gives the answer as well. When some sum is NaN the lanes of the maximum may
    // disagree, but then d is not finite (a NaN sum needs a non-finite term or an
    // overflow, and either makes the bound +∞ or NaN: the rounded sum of the |maxima| is
    // at least the rounded |sum| by monotonicity), so t is not finite either. With no NaN,
    // every lane of the maximum is the maximum over the samples.
    if !_mm512_cvtss_f32(t).is_finite() {
        return float64_peak::<V>(im, sc, p, nb);
    }
    pick_finite::<V>(im, sc, p, nb, acc, t)
}

/// The screen's margin d = 4·n·u·A for a pixel with neighbours `nb` and bound A: samples
/// whose float32 sum is at least `best − d` are the candidates (`calib::neighbor_peaks`).
#[inline]
fn margin(nb: &[u32], bound: f32) -> f32 {
    let unit = f32::EPSILON / 2.0; // 2^-24
    let n_terms = (nb.len() + 3) as f32;
    4.0 * n_terms * unit * bound
}

/// The peak of pixel `p` by the float64 sums of every sample ([`exact_peak`]), for a
/// threshold that is not finite; always "needed float64 sums".
#[inline(never)] // off the hot loop
fn float64_peak<const V: usize>(
    im: &FusedImage,
    sc: &FusedScratch,
    p: usize,
    nb: &[u32],
) -> (u32, bool) {
    let (stride, lw) = (16 * V, im.local_weight);
    (exact_peak(sc, stride, im.n_samples, p, nb, lw) as u32, true)
}

/// The peak of pixel `p` from its sums `acc` and a finite threshold `t` = best − d (checked
/// by the caller; in every lane), and whether it needed float64 sums.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
fn pick_finite<const V: usize>(
    im: &FusedImage,
    sc: &FusedScratch,
    p: usize,
    nb: &[u32],
    acc: &[__m512; V],
    t: __m512,
) -> (u32, bool) {
    let bits = candidates::<V>(im, acc, t);
    if bits & (bits - 1) == 0 {
        return (bits.trailing_zeros(), false);
    }
    settle::<V>(im, sc, p, nb, bits)
}

/// The candidate samples of a pixel's sums `acc` against a finite threshold `t` (in every
/// lane): bit s set for a sum ≥ t; never 0, as t ≤ the largest sum.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
fn candidates<const V: usize>(im: &FusedImage, acc: &[__m512; V], t: __m512) -> u64 {
    // the padding lanes do not count (left out of the compares by the mask)
    let last = last_mask::<V>(im.n_samples);
    let mut k = [0 as __mmask16; V];
    for (q, (a, k)) in acc.iter().zip(&mut k).enumerate() {
        *k = if q + 1 < V {
            _mm512_cmp_ps_mask::<_CMP_GE_OQ>(*a, t)
        } else {
            _mm512_mask_cmp_ps_mask::<_CMP_GE_OQ>(last, *a, t)
        };
    }
    // bit s set for the candidate samples s (value ≥ best − d); never 0: t ≤ best
    match V {
        1 => u64::from(k[0]),
        2 => u64::from(_mm512_kunpackw(u32::from(k[1]), u32::from(k[0]))),
        3 => _mm512_kunpackd(
            u64::from(k[2]),
            u64::from(_mm512_kunpackw(u32::from(k[1]), u32::from(k[0]))),
        ),
        _ => _mm512_kunpackd(
            u64::from(_mm512_kunpackw(u32::from(k[3]), u32::from(k[2]))),
            u64::from(_mm512_kunpackw(u32::from(k[1]), u32::from(k[0]))),
        ),
    }
}

/// Lane permutation that puts pixel `i`'s maximum into lane `i` after [`hmax16`]'s
/// network, which leaves it in lane 4·(i mod 4) + i / 4.
const HMAX16_ORDER: [i32; 16] = [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15];

/// The horizontal maxima of sixteen vectors: lane `i` of the result is the largest lane of
/// `m[i]` (`vmaxps` throughout, as `peak_pair`; every step combines lanes of one input
/// vector only, so a NaN in `m[i]` affects lane `i` alone). A transposing network: 15
/// maxima and 31 shuffles for sixteen pixels, against 5 maxima and 7 shuffles per pixel
/// pair in `peak_pair`.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
fn hmax16(m: &[__m512; 16]) -> __m512 {
    hreduce16(m, |a, b| _mm512_max_ps(a, b))
}

/// [`hmax16`]'s network with any lane-wise operation `op` (the sums of
/// [`positive_sums_below`]).
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
fn hreduce16(m: &[__m512; 16], op: impl Fn(__m512, __m512) -> __m512) -> __m512 {
    // 256-bit halves: [a.lo, b.lo] against [a.hi, b.hi] → 8 lanes each of a and b
    let mut h = [_mm512_setzero_ps(); 8];
    for (i, h) in h.iter_mut().enumerate() {
        let (a, b) = (m[2 * i], m[2 * i + 1]);
        *h = op(
            _mm512_shuffle_f32x4::<0b0100_0100>(a, b),
            _mm512_shuffle_f32x4::<0b1110_1110>(a, b),
        );
    }
    // 128-bit quarters: (a0, a2, b0, b2) against (a1, a3, b1, b3), where the quarters of h
    // are (x, x, y, y) → 4 lanes each of four pixels in pixel order
    let mut q = [_mm512_setzero_ps(); 4];
    for (i, q) in q.iter_mut().enumerate() {
        let (a, b) = (h[2 * i], h[2 * i + 1]);
        *q = op(
            _mm512_shuffle_f32x4::<0b1000_1000>(a, b),
            _mm512_shuffle_f32x4::<0b1101_1101>(a, b),
        );
    }
    // within each 128-bit quarter k: (a0, a1, b0, b1) against (a2, a3, b2, b3) → 2 lanes
    // of pixel k of each of the two groups
    let mut r = [_mm512_setzero_ps(); 2];
    for (i, r) in r.iter_mut().enumerate() {
        let (a, b) = (q[2 * i], q[2 * i + 1]);
        *r = op(
            _mm512_shuffle_ps::<0b0100_0100>(a, b),
            _mm512_shuffle_ps::<0b1110_1110>(a, b),
        );
    }
    // quarter k of r[0] holds (pixel k: 2 lanes, pixel k + 4: 2 lanes), of r[1] pixels
    // k + 8 and k + 12: (even lanes) against (odd lanes) → lane 4k + l is pixel k + 4l
    let x = op(
        _mm512_shuffle_ps::<0b1000_1000>(r[0], r[1]),
        _mm512_shuffle_ps::<0b1101_1101>(r[0], r[1]),
    );
    // SAFETY: 16 i32.
    let order = unsafe { _mm512_loadu_si512(HMAX16_ORDER.as_ptr().cast()) };
    _mm512_permutexvar_ps(order, x)
}

/// The neighbour peaks of the pixels `pix` (those of `need`, bit i for `pix[i]`; sixteen
/// consecutive pixels, or those a screened calibration keeps; `neighbours(p)` their CSR
/// slices), by the
/// screen of `decide` with the same sums, bounds, maxima, thresholds and compares; returns
/// how many needed float64 sums. The sums of the sixteen pixels come first (independent
/// loads and additions, kept on the stack), then their horizontal maxima in one
/// transposing reduction ([`hmax16`]) and their thresholds in one subtraction, then each
/// pixel's compares: the chains of latencies of one pixel no longer end in a reduction of
/// its own, and the reduction costs 2.9 instead of 6 shuffle and maximum instructions per
/// pixel. Each pixel's first candidate is written as its peak, and the pixels with several
/// candidates are listed (without a branch per pixel) and settled after the sixteen: on
/// SCTCam 38 % of the pixels have several candidates in no predictable order, and a branch
/// per pixel into [`settle`] was mispredicted about as often (measured: SCTCam's
/// calibration 318–322 → 252–262 µs/image, one thread, alternated).
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
fn peak_block<'a, const V: usize>(
    im: &FusedImage,
    sc: &mut FusedScratch,
    pix: &[usize; 16],
    need: u32,
    neighbours: &impl Fn(usize) -> &'a [u32],
) -> usize {
    assert!(pix.iter().all(|&p| p < im.n_pixels) && sc.peak.len() >= im.n_pixels);
    // (not zero-filled: every element is written in the first loop)
    let mut acc = [const { MaybeUninit::<[__m512; V]>::uninit() }; 16];
    let mut m = [const { MaybeUninit::<__m512>::uninit() }; 16];
    let mut d = [0.0f32; 16];
    for i in 0..16 {
        if need >> i & 1 == 0 {
            // a pixel left out: no sums (its maximum and threshold are never used)
            m[i].write(_mm512_setzero_ps());
            acc[i].write([_mm512_setzero_ps(); V]);
            continue;
        }
        let nb = neighbours(pix[i]);
        let (a, bound) = sums::<V>(im, sc, pix[i], nb);
        m[i].write(lane_max::<V>(&a, im.n_samples));
        acc[i].write(a);
        d[i] = margin(nb, bound);
    }
    // SAFETY: all sixteen written just above (`MaybeUninit<T>` has the layout of `T`).
    let (acc, m) = unsafe {
        (
            &*acc.as_ptr().cast::<[[__m512; V]; 16]>(),
            &*m.as_ptr().cast::<[__m512; 16]>(),
        )
    };
    // SAFETY: 16 floats.
    let dv = unsafe { _mm512_loadu_ps(d.as_ptr()) };
    let tv = _mm512_sub_ps(hmax16(m), dv);
    // the pixels whose threshold is finite (|t| < ∞ is false for ±∞ and NaN), one compare
    // for the sixteen instead of a test per pixel
    let finite = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(tv), _mm512_set1_ps(f32::INFINITY));
    let mut t = [0.0f32; 16];
    // SAFETY: 16 floats.
    unsafe { _mm512_storeu_ps(t.as_mut_ptr(), tv) };
    let mut fallbacks = 0;
    // the pixels with several candidates, listed without a branch on each pixel
    let mut multi = [(0usize, 0u64); 16];
    let mut n_multi = 0;
    for i in 0..16 {
        let p = pix[i];
        if need >> i & 1 == 0 {
            // left out (or a free lane repeating a pixel of the block): its peak is not
            // written; the window sums of the sixteen then read whatever peak the scratch
            // holds (< 64, a peak of some image), clamped to the trace, and do not write it
            continue;
        }
        let (pk, slow) = if finite >> i & 1 != 0 {
            let bits = candidates::<V>(im, &acc[i], _mm512_set1_ps(t[i]));
            multi[n_multi] = (p, bits);
            n_multi += usize::from(bits & (bits - 1) != 0);
            (bits.trailing_zeros(), false)
        } else {
            float64_peak::<V>(im, sc, p, neighbours(p))
        };
        // SAFETY: p < n_pixels ≤ peak.len() (asserted above).
        unsafe { *sc.peak.get_unchecked_mut(p) = pk };
        fallbacks += usize::from(slow);
    }
    for &(p, bits) in &multi[..n_multi] {
        let (pk, slow) = settle::<V>(im, sc, p, neighbours(p), bits);
        // SAFETY: p < n_pixels ≤ peak.len() (asserted above).
        unsafe { *sc.peak.get_unchecked_mut(p) = pk };
        fallbacks += usize::from(slow);
    }
    fallbacks
}

/// The peak of pixel `p` (neighbours `nb`) among the candidate samples `bits` of its
/// float32 screen (at least two), and whether it needed float64 sums: the first candidate
/// when it is an exact repeat, else the float64 sums of the candidates in ctapipe's order.
#[inline(never)] // off the hot loop: only pixels with several candidates come here
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
fn settle<const V: usize>(
    im: &FusedImage,
    sc: &FusedScratch,
    p: usize,
    nb: &[u32],
    bits: u64,
) -> (u32, bool) {
    let stride = 16 * V;
    let wave = &sc.wave[..];
    let lw = im.local_weight;
    // Several candidates: the exact-repeat test of the AVX2 build (every term bitwise equal
    // at each candidate to its value at the first candidate s0 makes all candidates' float64
    // sums the same operations on the same values, so numpy's first argmax is s0).
    let s0 = bits.trailing_zeros() as usize;
    let mut same: [__mmask16; V] = [0xFFFF; V];
    let mut same_as_s0 = |row: &[f32]| {
        let r0 = _mm512_set1_epi32(row[s0].to_bits() as i32);
        for (q, e) in same.iter_mut().enumerate() {
            // SAFETY: `row` holds 16·V floats.
            let x = unsafe { _mm512_loadu_si512(row.as_ptr().add(16 * q).cast()) };
            *e = _mm512_mask_cmpeq_epi32_mask(*e, x, r0);
        }
    };
    let row = |j: usize| &wave[sc.row_start(j, stride)..][..stride];
    if lw != 0.0 {
        same_as_s0(row(p));
    }
    for &j in nb {
        same_as_s0(row(j as usize));
    }
    let mut same_bits = 0u64;
    for (q, e) in same.iter().enumerate() {
        same_bits |= u64::from(*e) << (16 * q);
    }
    if bits & !same_bits == 0 {
        return (s0 as u32, false);
    }
    // near-ties: the float64 sums of the candidates (value ≥ best − d) in ctapipe's order
    (exact_peak_among(sc, stride, p, nb, lw, bits), true)
}

/// ctapipe `extract_around_peak`, the integration correction and the tm_calib shift, as
/// `calib::calibrate_baseline`, eight pixels at a time in float64 lanes.
struct Extractor {
    /// The AVX2 build's set-up (window, stride, corrections, `simd_ok`) and its scalar
    /// one-pixel form.
    base: crate::calib_avx2::Extractor,
    /// `1 / rate` when that is exact (the sampling rate a power of two: 1 GHz, 0.25 GHz for
    /// DigiCam's 4 ns samples, ...): `x / rate` and `x · (1 / rate)` are then the correct
    /// rounding of the same real number, hence equal, and the multiplication spares a
    /// float64 division (16 cycles per 8 lanes).
    inv_rate: Option<f64>,
}

/// Stage-1 indices of the 8 × 8 transpose: samples 0–3 of the four rows held by two
/// registers of two rows each (the second register's lanes are 16–31).
const T1_LO: [i32; 16] = [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27];
/// Stage-1 indices: samples 4–7 of the four rows.
const T1_HI: [i32; 16] = [4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31];
/// Stage-2 indices: from (samples 0–3 of rows 0–3, the same of rows 4–7), sample 0 of the
/// eight rows, then sample 1 (and from the samples 4–7 registers: 4, then 5).
const T2_EVEN: [i32; 16] = [0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29];
/// Stage-2 indices: sample 2 of the eight rows, then sample 3 (or 6, then 7).
const T2_ODD: [i32; 16] = [2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31];

/// `1 / x` if it is exact: `x` = ±2^k with `1 / x` = ±2^−k a normal float64 (no mantissa
/// bits in either).
fn exact_reciprocal(x: f64) -> Option<f64> {
    let mantissa = (1u64 << 52) - 1;
    let inv = 1.0 / x;
    (x.is_normal()
        && inv.is_normal()
        && x.to_bits() & mantissa == 0
        && inv.to_bits() & mantissa == 0)
        .then_some(inv)
}

impl Extractor {
    fn new(im: &FusedImage, stride: usize) -> Self {
        Self {
            base: crate::calib_avx2::Extractor::new(im, stride),
            inv_rate: exact_reciprocal(im.rate),
        }
    }

    /// Pixels `p..p + 16` (window width ≤ 8; written: those of the mask `write`, bit i for
    /// pixel p + i) as two groups of eight float64 lanes, the two
    /// groups' chains of latencies (window sums, division) interleaved: each lane adds its
    /// own window in sample order, so every sum is the scalar one; lanes past a window's end
    /// are zeroed by the masked conversion and add +0.0, which leaves the sums unchanged
    /// (they start at +0.0 and are never −0.0). Same operations per lane as the AVX2
    /// build's four-pixel form.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq,bmi1,popcnt")]
    fn sixteen<const C: bool>(
        &self,
        im: &FusedImage,
        sc: &FusedScratch,
        pix: &[usize; 16],
        image: &mut [f32],
        peak_time: &mut [f32],
        write: __mmask16,
    ) {
        let np = im.n_pixels;
        let ns = im.n_samples;
        let zero = _mm512_setzero_pd();
        let zero8 = _mm256_setzero_si256();
        if C {
            assert!(pix[0] + 16 <= np && (0..16).all(|i| pix[i] == pix[0] + i));
        } else {
            assert!(pix.iter().all(|&p| p < np));
        }
        assert!(self.base.simd_ok && sc.peak.len() >= np && im.gain.len() >= np);
        assert!(sc.wave.len() >= np * self.base.stride + 8 && image.len() >= np);
        assert!(peak_time.len() >= np);
        // SAFETY: 16 i32 each.
        let ld = |t: &[i32; 16]| unsafe { _mm512_loadu_si512(t.as_ptr().cast()) };
        let (t1lo, t1hi, t2e, t2o) = (ld(&T1_LO), ld(&T1_HI), ld(&T2_EVEN), ld(&T2_ODD));
        let base = sc.wave.as_ptr();
        let mut pk = [zero8; 2];
        let mut start = [zero8; 2];
        let mut count = [zero8; 2];
        let mut w = [[_mm512_setzero_ps(); 4]; 2];
        for g in 0..2 {
            let px: &[usize; 8] = pix[8 * g..][..8]
                .try_into()
                .unwrap_or_else(|_| unreachable!());
            // the windows of the eight pixels in int32 lanes, as `calib::extract_around_peak`
            // (peaks < 64, |shift| ≤ 2^20 and width ≤ 8, checked by `simd_ok`, so nothing
            // overflows)
            pk[g] = if C {
                // SAFETY: px[0] + 8 ≤ np ≤ peak.len() (asserted above).
                unsafe { _mm256_loadu_si256(sc.peak.as_ptr().add(px[0]).cast()) }
            } else {
                let v = px.map(|p| sc.peak[p]);
                // SAFETY: 8 u32.
                unsafe { _mm256_loadu_si256(v.as_ptr().cast()) }
            };
            let a = _mm256_sub_epi32(pk[g], _mm256_set1_epi32(self.base.shift as i32));
            start[g] = _mm256_max_epi32(a, zero8);
            let ns8 = _mm256_set1_epi32(ns as i32);
            let end = _mm256_min_epi32(
                _mm256_max_epi32(
                    _mm256_add_epi32(a, _mm256_set1_epi32(self.base.width as i32)),
                    zero8,
                ),
                ns8,
            );
            count[g] = _mm256_max_epi32(_mm256_sub_epi32(end, start[g]), zero8);
            // the 8 floats from each window start, clamped to the trace (the buffer has 8
            // spare floats after the last row), two rows per register
            let first = _mm256_min_epi32(start[g], ns8);
            let mut offs = [0i32; 8];
            // SAFETY: 8 i32.
            unsafe { _mm256_storeu_si256(offs.as_mut_ptr().cast(), first) };
            let row = |l: usize| {
                // SAFETY: row_start(px[l]) + min(start, ns) + 8 ≤ px[l]·stride + ns + 8 ≤
                // np·stride + 8 ≤ wave.len() (asserted above; l < 8, offs ≤ ns ≤ stride).
                let r = sc.row_start(px[l], self.base.stride);
                unsafe { _mm256_loadu_ps(base.add(r + offs[l] as usize)) }
            };
            let pair =
                |l: usize| _mm512_insertf32x8::<1>(_mm512_castps256_ps512(row(l)), row(l + 1));
            let (z0, z1, z2, z3) = (pair(0), pair(2), pair(4), pair(6));
            // samples 0–3 / 4–7 of rows 0–3 and of rows 4–7
            let a0 = _mm512_permutex2var_ps(z0, t1lo, z1);
            let a1 = _mm512_permutex2var_ps(z0, t1hi, z1);
            let a2 = _mm512_permutex2var_ps(z2, t1lo, z3);
            let a3 = _mm512_permutex2var_ps(z2, t1hi, z3);
            // w[k / 2] holds sample k of the eight pixels (low half) and sample k + 1 (high
            // half)
            w[g] = [
                _mm512_permutex2var_ps(a0, t2e, a2),
                _mm512_permutex2var_ps(a0, t2o, a2),
                _mm512_permutex2var_ps(a1, t2e, a3),
                _mm512_permutex2var_ps(a1, t2o, a3),
            ];
        }
        let startv = [_mm512_cvtepi32_pd(start[0]), _mm512_cvtepi32_pd(start[1])];
        let (mut sum, mut num, mut den) = ([zero; 2], [zero; 2], [zero; 2]);
        for k in 0..self.base.width.min(8) {
            let kf = _mm512_set1_pd(k as f64);
            for g in 0..2 {
                let half = if k % 2 == 0 {
                    _mm512_castps512_ps256(w[g][k / 2])
                } else {
                    _mm512_extractf32x8_ps::<1>(w[g][k / 2])
                };
                let inside: __mmask8 =
                    _mm256_cmpgt_epi32_mask(count[g], _mm256_set1_epi32(k as i32));
                let v = _mm512_maskz_cvtps_pd(inside, half);
                sum[g] = _mm512_add_pd(sum[g], v);
                // max(v, +0) is `if v > 0 { v } else { +0 }` (the second operand for NaN or
                // ±0)
                let pos = _mm512_max_pd(v, zero);
                num[g] = _mm512_add_pd(num[g], _mm512_mul_pd(pos, _mm512_add_pd(startv[g], kf)));
                den[g] = _mm512_add_pd(den[g], pos);
            }
        }
        let t0 = [
            _mm512_cvtpd_ps(_mm512_div_pd(num[0], den[0])),
            _mm512_cvtpd_ps(_mm512_div_pd(num[1], den[1])),
        ];
        for g in 0..2 {
            let px: &[usize; 8] = pix[8 * g..][..8]
                .try_into()
                .unwrap_or_else(|_| unreachable!());
            // selected gains (0 or 1, checked by `simd_ok`) as a lane mask
            let g8 = if C {
                let mut g8 = [0u8; 8];
                g8.copy_from_slice(&im.gain[px[0]..px[0] + 8]);
                g8
            } else {
                px.map(|p| im.gain[p])
            };
            let g8 = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(u64::from_le_bytes(g8) as i64));
            let gm: __mmask8 = _mm256_test_epi32_mask(g8, g8);
            // SAFETY: time_shift holds n_pixels floats per gain present (checked by
            // `simd_ok`), 8 floats per array.
            let ts = unsafe {
                let shifts = |gain: usize| {
                    if C {
                        _mm256_loadu_ps(im.time_shift.as_ptr().add(gain * np + px[0]))
                    } else {
                        let v = px.map(|p| *im.time_shift.get_unchecked(gain * np + p));
                        _mm256_loadu_ps(v.as_ptr())
                    }
                };
                let t0 = shifts(0);
                if self.base.two_gains {
                    _mm256_mask_blend_ps(gm, t0, shifts(1))
                } else {
                    t0
                }
            };
            let pkf = _mm256_cvtepi32_ps(pk[g]);
            let has: __mmask8 = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(den[g], zero);
            let t0 = _mm256_mask_blend_ps(has, pkf, t0[g]);
            let t = _mm512_cvtpd_ps(match self.inv_rate {
                Some(inv) => _mm512_mul_pd(_mm512_cvtps_pd(t0), _mm512_set1_pd(inv)),
                None => _mm512_div_pd(_mm512_cvtps_pd(t0), _mm512_set1_pd(im.rate)),
            });
            let corr = _mm512_mask_blend_pd(
                gm,
                _mm512_set1_pd(self.base.corr[0]),
                _mm512_set1_pd(self.base.corr[1]),
            );
            let q = _mm512_cvtps_pd(_mm512_cvtpd_ps(sum[g]));
            let img = _mm512_cvtpd_ps(_mm512_mul_pd(q, corr));
            let out_t = _mm256_sub_ps(t, ts);
            // only the pixels of `write`
            let w8 = (write >> (8 * g)) as __mmask8;
            if C {
                // SAFETY: px[0] + 8 ≤ np ≤ image.len(), peak_time.len() (asserted above).
                unsafe {
                    _mm256_mask_storeu_ps(image.as_mut_ptr().add(px[0]), w8, img);
                    _mm256_mask_storeu_ps(peak_time.as_mut_ptr().add(px[0]), w8, out_t);
                }
            } else {
                let (mut vi, mut vt) = ([0f32; 8], [0f32; 8]);
                // SAFETY: 8 floats each.
                unsafe {
                    _mm256_storeu_ps(vi.as_mut_ptr(), img);
                    _mm256_storeu_ps(vt.as_mut_ptr(), out_t);
                }
                for l in (0..8).filter(|l| w8 >> l & 1 != 0) {
                    image[px[l]] = vi[l];
                    peak_time[px[l]] = vt[l];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Whether this CPU lacks what the kernel needs (the test is then skipped, with a notice).
    fn skip_without_avx512() -> bool {
        let skip = !available();
        if skip {
            eprintln!("no AVX-512 F/BW/VL/DQ: the AVX-512 kernel is not used on this CPU");
        }
        skip
    }

    /// `abs_max` (vrangeps): the larger magnitude with the sign cleared; +inf for an
    /// infinite operand; NaN for two NaNs, but the other operand for one (quiet) NaN — which
    /// `r1_row` relies on only through rows where NaN comes with NaN or ±inf in every lane.
    #[test]
    fn abs_max_semantics() {
        if skip_without_avx512() {
            return;
        }
        let cases = [
            (1.5f32, -2.0f32, 2.0f32),
            (-3.0, 2.0, 3.0),
            (-0.0, 0.0, 0.0),
            (-4.0, 4.0, 4.0),
            (f32::NAN, f32::NAN, f32::NAN),
            (f32::NAN, 1.0, 1.0),
            (1.0, f32::NAN, 1.0),
            (f32::NEG_INFINITY, 1.0, f32::INFINITY),
            (1.0, f32::INFINITY, f32::INFINITY),
            (f32::NAN, f32::NEG_INFINITY, f32::INFINITY),
            (f32::INFINITY, f32::NAN, f32::INFINITY),
        ];
        for (a, b, want) in cases {
            let (va, vb) = (std::hint::black_box(a), std::hint::black_box(b));
            // SAFETY: the features checked above.
            let got = unsafe { _mm512_cvtss_f32(abs_max(_mm512_set1_ps(va), _mm512_set1_ps(vb))) };
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{a} {b}: {got}"
            );
        }
    }

    /// `hmax16` against the scalar maximum of each vector, on random values with repeats,
    /// −∞ lanes (the padding of `lane_max`) and whole −∞ vectors; a NaN in one vector
    /// changes no other vector's maximum. (Signed zeros compare equal here: with no NaN the
    /// maximum's value does not depend on the order of the reduction, only the sign of a
    /// zero maximum may, and `t = max − d` then gives the same compares either way.)
    #[test]
    fn hmax16_is_the_maximum_of_each_vector() {
        if skip_without_avx512() {
            return;
        }
        use rand::Rng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for round in 0..2000 {
            let mut v = [[0.0f32; 16]; 16];
            for (i, row) in v.iter_mut().enumerate() {
                for x in row.iter_mut() {
                    *x = match rng.random_range(0..8) {
                        0 => f32::NEG_INFINITY,
                        1 => 3.0, // repeats
                        _ => rng.random_range(-100.0f32..100.0),
                    };
                }
                if (round + i) % 37 == 0 {
                    row.fill(f32::NEG_INFINITY);
                }
            }
            let nan_at = (round % 3 == 0).then_some(round % 16);
            if let Some(i) = nan_at {
                v[i][round % 16] = f32::NAN;
            }
            // SAFETY: the features checked above; 16 floats per load and store.
            let got = unsafe {
                let m = v.map(|r| _mm512_loadu_ps(r.as_ptr()));
                let mut out = [0.0f32; 16];
                _mm512_storeu_ps(out.as_mut_ptr(), hmax16(&m));
                out
            };
            for i in 0..16 {
                if Some(i) == nan_at {
                    continue;
                }
                let want = v[i].iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                assert_eq!(got[i], want, "round {round} vector {i}");
            }
        }
    }

    /// The ring of R1 rows (`passes`): two cameras of the same pixel count, one whose
    /// neighbours lie within ±3 pixels (a ring of 32 rows for its 300 pixels) and one where
    /// some pixels have a neighbour 200 pixels back (a ring of 256), calibrated in turn with one scratch, so
    /// that the second meets the first one's ring ([`RingTooSmall`]) and is calibrated again
    /// with one row per pixel. Every image is bit for bit the AVX2 build's (one row per
    /// pixel, fresh scratch), and the ring kept for the pixel count grows to the larger
    /// camera's reach and stays there.
    #[test]
    fn ring_of_rows_gives_the_rows_of_every_pixel() {
        if skip_without_avx512() {
            return;
        }
        use rand::Rng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (np, ns) = (300usize, 40usize);
        // CSR of neighbours within ±3 (up to six per pixel), and the same with pixels 222,
        // 259 (in blocks of sixteen) and 296 (after the last block) also taking pixel p − 200
        let csr = |far: bool| {
            let (mut indptr, mut indices) = (vec![0u32], Vec::new());
            for p in 0..np {
                for d in [-3i64, -2, -1, 1, 2, 3] {
                    let j = p as i64 + d;
                    if (0..np as i64).contains(&j)
                        && !(p + d.unsigned_abs() as usize).is_multiple_of(4)
                    {
                        indices.push(j as u32);
                    }
                }
                if far && p >= 200 && p.is_multiple_of(37) {
                    indices.push((p - 200) as u32);
                }
                indptr.push(indices.len() as u32);
            }
            (indptr, indices)
        };
        let (near, far) = (csr(false), csr(true));
        // ADC values near the pedestal (many exact ties) with a few pulses
        let samples: Vec<u16> = (0..np * ns)
            .map(|i| {
                let base = 300 + rng.random_range(0..3u16);
                if (i / ns) % 23 == 0 && (i % ns) / 4 == 3 {
                    base + 50
                } else {
                    base
                }
            })
            .collect();
        let pedestal: Vec<f32> = (0..np).map(|_| rng.random_range(299.0..302.0)).collect();
        let dc_to_pe: Vec<f32> = (0..np).map(|_| rng.random_range(0.05..0.2)).collect();
        let (gain, time_shift) = (vec![0u8; np], vec![0.5f32; np]);
        let run = |g: &(Vec<u32>, Vec<u32>), sc: &mut FusedScratch, avx2: bool| {
            let im = FusedImage {
                samples: &samples,
                n_pixels: np,
                n_samples: ns,
                gain: &gain,
                pedestal: &pedestal,
                dc_to_pe: &dc_to_pe,
                time_shift: &time_shift,
                indptr: &g.0,
                indices: &g.1,
                local_weight: 0.0,
                width: 7,
                shift: 3,
                rate: 1.0,
                correction: &[1.0],
                adc_skip: &[],
                skip_possum_below: [0.0; 2],
                keep: &[],
                adc_picture: &[],
            };
            let (mut q, mut t) = (vec![0f32; np], vec![0f32; np]);
            // SAFETY: the features checked above (AVX-512 implies AVX2); 2 ≤ ns ≤ 64,
            // consistent lengths, neighbour indices < np.
            unsafe {
                if avx2 {
                    crate::calib_avx2::neighbor_window_sum(&im, sc, &mut q, &mut t);
                } else {
                    neighbor_window_sum(&im, sc, &mut q, &mut t);
                }
            }
            (sc.peak[..np].to_vec(), q, t)
        };
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let mut sc = FusedScratch::default();
        for (round, g) in [&near, &far, &near, &far].into_iter().enumerate() {
            let want = run(g, &mut FusedScratch::default(), true);
            let got = run(g, &mut sc, false);
            assert_eq!(got.0, want.0, "peaks, round {round}");
            assert_eq!(bits(&got.1), bits(&want.1), "charges, round {round}");
            assert_eq!(bits(&got.2), bits(&want.2), "peak times, round {round}");
            let rows = sc.ring_hints.iter().find(|h| h.0 == np).map(|h| h.1);
            // the far camera reaches from pixel 259 (its block's rows converted up to 275 or
            // further) back to 59
            assert_eq!(
                rows,
                Some(if round == 0 { 32 } else { 256 }),
                "round {round}"
            );
        }
    }

    /// Reciprocals taken as exact only for powers of two with a normal inverse.
    #[test]
    fn exact_reciprocals() {
        for (x, want) in [
            (1.0, Some(1.0)),
            (0.25, Some(4.0)),
            (4.0, Some(0.25)),
            (-0.5, Some(-2.0)),
            (0.8, None),
            (1.25, None),
            (3.0, None),
            (0.0, None),
            (f64::INFINITY, None),
            (f64::NAN, None),
            (f64::MAX, None),
            (f64::MIN_POSITIVE, Some(2f64.powi(1022))),
            (f64::MIN_POSITIVE / 2.0, None), // subnormal
            (2f64.powi(1023), None),         // its inverse is subnormal
        ] {
            let got = exact_reciprocal(x);
            assert_eq!(got, want, "{x}");
        }
        // every power of two with a normal inverse, against the division
        for k in -1020..=1020 {
            let x = 2f64.powi(k);
            let inv = exact_reciprocal(x).unwrap();
            for y in [1.0, 3.7, -123.456, 1e-300, 7e300] {
                assert_eq!((y * inv).to_bits(), (y / x).to_bits(), "{y} / 2^{k}");
            }
        }
    }

    /// Every row by `r1_range` in three calls (rows 0–2: a pair and a single row; then up
    /// to the last row; then the last row alone), as `passes` converts them in chunks.
    fn r1_range_in_parts<const V: usize>(im: &FusedImage, sc: &mut FusedScratch) {
        let np = im.n_pixels;
        r1_check::<V>(im, sc);
        // SAFETY: the caller checked the features; `r1_check` passed; 0 ≤ 3 ≤ np − 1 ≤ np.
        unsafe {
            r1_range::<V>(im, sc, 0, 3);
            r1_range::<V>(im, sc, 3, np - 1);
            r1_range::<V>(im, sc, np - 1, np);
        }
    }

    /// The R1 rows and their largest |value| against the scalar R1 and
    /// `calib::max_abs_and_constant` on random rows: every length 2..=64 (whole and partial
    /// last vectors, the masked tail load ending exactly at the end of the sample buffer for
    /// the last pixel), rows spanning the pedestal, constant rows, dc_to_pe 0 and negative,
    /// non-finite pedestals and dc_to_pe, and `0 · ∞` on some or all samples (a non-finite
    /// largest value expected).
    #[test]
    fn r1_rows_equal_the_scalar_conversion() {
        if skip_without_avx512() {
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        for ns in 2..=crate::calib_avx2::MAX_SAMPLES {
            let mut case = crate::calib_avx2::tests::R1Case::new(&mut rng, ns);
            // 0 · inf: NaN where the ADC value equals the pedestal, ±inf elsewhere (pixel
            // 11, values 299–301), NaN everywhere (pixel 10, constant 300)
            case.pedestal[10] = 300.0;
            case.dc_to_pe[10] = f32::INFINITY;
            case.pedestal[11] = 300.0;
            case.dc_to_pe[11] = f32::NEG_INFINITY;
            let (np, im) = (case.np, case.image());
            let stride = 16 * ns.div_ceil(16);
            let mut sc = case.scratch(stride);
            // one row at a time (round 0), two interleaved (round 1), then all rows by
            // `r1_range` from scratch (round 2)
            for (round, p) in (0..3).flat_map(|r| (0..np).map(move |p| (r, p))) {
                if round == 2 && p == 0 {
                    sc.wave.fill(f32::NAN);
                    sc.maxabs.fill(f32::NAN);
                    match ns.div_ceil(16) {
                        1 => r1_range_in_parts::<1>(&im, &mut sc),
                        2 => r1_range_in_parts::<2>(&im, &mut sc),
                        3 => r1_range_in_parts::<3>(&im, &mut sc),
                        _ => r1_range_in_parts::<4>(&im, &mut sc),
                    }
                }
                // SAFETY: the features checked above; the lengths of the contract.
                unsafe {
                    let q = (p + 7) % np;
                    match (round, ns.div_ceil(16)) {
                        (0, 1) => r1_row::<1, 1>(&im, &mut sc, [p]),
                        (0, 2) => r1_row::<2, 1>(&im, &mut sc, [p]),
                        (0, 3) => r1_row::<3, 1>(&im, &mut sc, [p]),
                        (0, _) => r1_row::<4, 1>(&im, &mut sc, [p]),
                        (1, 1) => r1_row::<1, 2>(&im, &mut sc, [p, q]),
                        (1, 2) => r1_row::<2, 2>(&im, &mut sc, [p, q]),
                        (1, 3) => r1_row::<3, 2>(&im, &mut sc, [p, q]),
                        (1, _) => r1_row::<4, 2>(&im, &mut sc, [p, q]),
                        _ => {} // converted above
                    }
                }
                let r1 = case.r1(p);
                let row = &sc.wave[p * stride..p * stride + ns];
                assert_eq!(
                    row.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    r1.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    "ns {ns} pixel {p} round {round}"
                );
                // the largest |R1| when finite; otherwise NaN or +inf (NaN expected)
                let (m, _) = crate::calib::max_abs_and_constant(&r1);
                let got = sc.maxabs[p];
                assert!(
                    got.to_bits() == m.to_bits() || (!got.is_finite() && m.is_nan()),
                    "ns {ns} pixel {p} round {round}: {got} vs {m}"
                );
            }
        }
    }
}
