//! Mergeable running statistics: scalar ([`RunningStats`]) and per pixel ([`PixelStats`];
//! [`I16PixelStats`] for exact integer statistics of `i16` frames).
//!
//! Both accumulate the count, mean and M2 (sum of squared deviations from the mean) with
//! Welford's update (Welford 1962; Knuth TAOCP vol. 2, 4.2.2) and combine partial results
//! with the pairwise formula of Chan, Golub & LeVeque (1979, "Updating formulae and a pairwise
//! algorithm for computing sample variances"):
//!
//! ```text
//! n = na + nb,  d = mean_b - mean_a
//! mean = mean_a + d * nb / n
//! M2   = M2_a + M2_b + d^2 * na * nb / n
//! ```
//!
//! Neither uses `sum(x^2)/n - mean^2`, so they stay accurate on large pedestals (values near
//! 1e9 with unit noise). Everything here is sequential and deterministic: merging the same
//! partials in the same order always gives bit-identical results, whatever thread produced
//! them.
//!
//! ```
//! use caliper_core::stats::{PixelStats, RunningStats};
//!
//! let mut s = RunningStats::new();
//! for x in [1.0, 2.0, 3.0, 4.0] {
//!     s.push(x);
//! }
//! assert_eq!(s.mean(), Some(2.5));
//! assert_eq!(s.variance_sample(), Some(5.0 / 3.0));
//!
//! let mut dark = PixelStats::new(3);
//! dark.push_frame(&[10u16, 20, 30]).unwrap();
//! dark.push_frame(&[12u16, 20, 34]).unwrap();
//! assert_eq!(dark.mean(), &[11.0, 20.0, 32.0]);
//! ```

use serde::{Deserialize, Serialize};

/// Errors from [`PixelStats`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatsError {
    /// A frame does not have the number of pixels the accumulator was created with.
    #[error("frame has {got} pixels, expected {expected}")]
    FrameLength {
        /// Number of pixels of the accumulator.
        expected: usize,
        /// Number of pixels in the frame.
        got: usize,
    },
    /// Two accumulators over different numbers of pixels cannot be merged.
    #[error("cannot merge pixel statistics over {other} pixels into one over {this} pixels")]
    ShapeMismatch {
        /// Number of pixels of the accumulator merged into.
        this: usize,
        /// Number of pixels of the accumulator merged from.
        other: usize,
    },
}

/// Running count, mean, M2, minimum and maximum of a stream of scalars.
///
/// NaN values are not filtered: a pushed NaN makes the mean and variance NaN (as numpy's
/// `mean`/`var`), while `min`/`max` ignore it (as `f64::min`). Filter beforehand if that is
/// not wanted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningStats {
    count: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

impl Default for RunningStats {
    fn default() -> Self {
        Self::new()
    }
}

impl RunningStats {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self {
            count: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// Adds one value (Welford's update).
    #[inline]
    pub fn push(&mut self, x: f64) {
        self.count += 1;
        let d = x - self.mean;
        self.mean += d / self.count as f64;
        self.m2 += d * (x - self.mean);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    /// Folds `other` into `self` (Chan et al. 1979). Merging into an empty accumulator copies
    /// `other` exactly.
    pub fn merge(&mut self, other: &RunningStats) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        let na = self.count as f64;
        let nb = other.count as f64;
        let n = na + nb;
        let d = other.mean - self.mean;
        self.mean += d * (nb / n);
        self.m2 += other.m2 + d * d * (na * nb / n);
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Number of values pushed.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of squared deviations from the mean (M2); 0 when empty.
    pub fn m2(&self) -> f64 {
        self.m2
    }

    /// Mean, or `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then_some(self.mean)
    }

    /// Population variance M2/n (numpy `var(ddof=0)`), or `None` when empty.
    pub fn variance_population(&self) -> Option<f64> {
        (self.count > 0).then(|| self.m2 / self.count as f64)
    }

    /// Sample variance M2/(n-1) (numpy `var(ddof=1)`), or `None` with fewer than 2 values.
    pub fn variance_sample(&self) -> Option<f64> {
        (self.count > 1).then(|| self.m2 / (self.count - 1) as f64)
    }

    /// Population standard deviation, or `None` when empty.
    pub fn std_population(&self) -> Option<f64> {
        self.variance_population().map(f64::sqrt)
    }

    /// Sample standard deviation, or `None` with fewer than 2 values.
    pub fn std_sample(&self) -> Option<f64> {
        self.variance_sample().map(f64::sqrt)
    }

    /// Smallest value pushed, or `None` when empty.
    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    /// Largest value pushed, or `None` when empty.
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }
}

impl Extend<f64> for RunningStats {
    fn extend<I: IntoIterator<Item = f64>>(&mut self, iter: I) {
        for x in iter {
            self.push(x);
        }
    }
}

impl FromIterator<f64> for RunningStats {
    fn from_iter<I: IntoIterator<Item = f64>>(iter: I) -> Self {
        let mut s = Self::new();
        s.extend(iter);
        s
    }
}

/// A pixel sample type that [`PixelStats`] accepts: converted losslessly to `f64`
/// (`u32`/`i32` and `f32` are exact in `f64`).
pub trait Sample: Copy {
    /// The value as `f64`.
    fn to_f64(self) -> f64;

    /// The frames viewed as `i16` frames when `Self` is `i16` (which selects the exact
    /// integer kernel of [`PixelStats::push_frames`]), else `None` (the default).
    fn as_i16_frames<'a, 'b>(frames: &'a [&'b [Self]]) -> Option<&'a [&'b [i16]]> {
        let _ = frames;
        None
    }
}

macro_rules! impl_sample {
    ($($t:ty),*) => {
        $(impl Sample for $t {
            #[inline(always)]
            fn to_f64(self) -> f64 {
                f64::from(self)
            }
        })*
    };
}
impl_sample!(u8, i8, u16, u32, i32, f32, f64);

impl Sample for i16 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }

    fn as_i16_frames<'a, 'b>(frames: &'a [&'b [i16]]) -> Option<&'a [&'b [i16]]> {
        Some(frames)
    }
}

/// Per-pixel running mean, M2, minimum and maximum over frames of a fixed number of pixels.
///
/// Every pixel sees every frame, so one frame count is shared. Statistics are stored as
/// `f64` per pixel, in the caller's pixel order (row-major for images).
/// Before any frame, `min` is `+inf` and `max` is `-inf` for every pixel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PixelStats {
    frames: u64,
    mean: Vec<f64>,
    m2: Vec<f64>,
    min: Vec<f64>,
    max: Vec<f64>,
}

/// The arrays of a [`PixelStats`], moved out by [`PixelStats::into_arrays`].
#[derive(Debug, Clone, PartialEq)]
pub struct PixelArrays {
    /// Frames accumulated.
    pub frames: u64,
    /// Per-pixel mean.
    pub mean: Vec<f64>,
    /// Per-pixel M2 (sum of squared deviations from the mean).
    pub m2: Vec<f64>,
    /// Per-pixel minimum.
    pub min: Vec<f64>,
    /// Per-pixel maximum.
    pub max: Vec<f64>,
}

impl PixelStats {
    /// An empty accumulator over `n_pixels` pixels (allocates its four arrays once).
    pub fn new(n_pixels: usize) -> Self {
        Self {
            frames: 0,
            mean: vec![0.0; n_pixels],
            m2: vec![0.0; n_pixels],
            min: vec![f64::INFINITY; n_pixels],
            max: vec![f64::NEG_INFINITY; n_pixels],
        }
    }

    /// Number of pixels per frame.
    pub fn n_pixels(&self) -> usize {
        self.mean.len()
    }

    /// Number of frames pushed (or merged in).
    pub fn n_frames(&self) -> u64 {
        self.frames
    }

    /// Adds one frame (Welford's update per pixel).
    ///
    /// The loop allocates nothing, multiplies by a precomputed `1/n` and is written over
    /// equal-length slices so that the compiler drops bounds checks and vectorises it.
    /// A NaN pixel value makes that pixel's mean and M2 NaN; min/max ignore it.
    pub fn push_frame<T: Sample>(&mut self, frame: &[T]) -> Result<(), StatsError> {
        let len = self.mean.len();
        if frame.len() != len {
            return Err(StatsError::FrameLength {
                expected: len,
                got: frame.len(),
            });
        }
        self.frames += 1;
        let inv_n = 1.0 / self.frames as f64;
        let mean = &mut self.mean[..len];
        let m2 = &mut self.m2[..len];
        let lo = &mut self.min[..len];
        let hi = &mut self.max[..len];
        let frame = &frame[..len];
        for i in 0..len {
            let x = frame[i].to_f64();
            let d = x - mean[i];
            let m = mean[i] + d * inv_n;
            mean[i] = m;
            m2[i] += d * (x - m);
            // Written as selects (not f64::min) so they map onto vector min/max instructions.
            lo[i] = if x < lo[i] { x } else { lo[i] };
            hi[i] = if x > hi[i] { x } else { hi[i] };
        }
        Ok(())
    }

    /// Adds a block of frames at once, in order: the same statistics as calling
    /// [`push_frame`](Self::push_frame) on each frame in turn (up to rounding, see below), with
    /// far less memory traffic.
    ///
    /// `push_frame` reads and writes the whole `f64` state (32 bytes per pixel) for every frame;
    /// on a large detector that state does not fit in cache, so the update streams four times
    /// the state through memory per frame (a 2-byte-per-pixel `i16` frame costs 64 bytes of
    /// traffic per pixel). Here the state is touched once per block: for a few pixels at a
    /// time the whole block of frames is reduced in registers to shifted sums
    ///
    /// ```text
    /// c  = mean_old            (or the pixel's value in the first frame when empty)
    /// S1 = sum_k (x_k - c),    S2 = sum_k (x_k - c)^2,    min_k x_k,    max_k x_k
    /// ```
    ///
    /// and then merged into the state with Chan et al.'s pairwise formula (see the module
    /// docs), which with the shift equal to the old mean simplifies to
    ///
    /// ```text
    /// n = n_old + K,   mean = c + S1/n,   M2 = M2_old + S2 - S1^2/n
    /// ```
    ///
    /// (when empty, `M2_old = 0` and this is the textbook shifted-data variance; Chan, Golub &
    /// LeVeque 1983, "Algorithms for computing the sample variance", section 3).
    /// Because the shift is the running mean (or one sample of the pixel), the deviations are
    /// of the size of the noise and `x - c` is exact for values within a factor two of `c`
    /// (Sterbenz), so there is no `sumsq/N - mean^2` cancellation on large pedestals: the
    /// relative error of the block's M2 term is about `eps * (1 + (mean_block - c)^2 /
    /// var)`, i.e. a few ulp unless the data jump by many standard deviations within a run.
    /// On a 1e9 pedestal with unit noise both this and Welford's per-frame update are limited
    /// by the rounding of the stored mean (ulp(1e9) = 1.2e-7): ~1e-7 relative on the variance
    /// for blocks of one frame, ~4e-9 for blocks of 64 (test `push_frames_large_pedestal`).
    ///
    /// The per-pixel arithmetic is independent of how pixels are grouped, so the result
    /// depends only on the state and the block (never on threads); a block pushed at once
    /// generally differs in the last bits from the same frames pushed one by one or in other
    /// blocks (relative differences ~1e-15 on the mean and ~1e-13 on M2 for ADU-scale data).
    /// A NaN pixel value makes that pixel's mean and M2 NaN; min/max ignore it. Every frame's
    /// length is checked before anything changes.
    ///
    /// On x86_64 CPUs with AVX2 (detected at run time) the same loop is compiled for 256-bit
    /// vectors; it performs the same IEEE operations in the same order per pixel (no FMA), so
    /// the result is bit-identical to the baseline SSE2 path (test
    /// `push_frames_simd_paths_identical`).
    ///
    /// `i16` frames take an exact integer kernel instead (fewer instructions per sample: min
    /// and max on the raw samples, a 16-bit subtraction, 32-bit sums). Per pixel the shift is
    /// an integer `c`: the first frame's value when the state is empty, else the running mean
    /// truncated toward zero (`|mean - c| < 1`). One pass over the block accumulates
    /// `S1 = sum(x - c)` and `S2 = sum((x - c)^2)` in `i32`; they are exact, and used, when the
    /// block's min and max put every deviation within `lim = floor(sqrt(i32::MAX / K))`
    /// (8,191 ADU for K = 32; at most 32,767). The block is then merged with Chan's formula
    /// in `f64` (block mean `c + S1/K`, block M2 `S2 - S1^2/K`, both from exact integers).
    /// A pixel whose block range is wider takes the `f64` kernel above for that block, so
    /// every pixel's result depends only on its own samples and state, never on its
    /// neighbours, vector width, tile or thread. Results differ from the `f64` kernel in the
    /// last bits (test `i16_kernel_matches_f64_kernel`: within 1e-14 on the mean, 1e-12
    /// relative on M2).
    pub fn push_frames<T: Sample>(&mut self, frames: &[&[T]]) -> Result<(), StatsError> {
        self.push_frames_with(frames, true)
    }

    /// Replaces the state by the statistics of `frames` alone: the same result as
    /// `*self = PixelStats::new(n); self.push_frames(frames)`, but reusing this state's memory
    /// and writing each array once (no fresh allocation, page faults or fill). For per-chunk
    /// partials that are recycled after their merge. With no frames the state is emptied.
    /// Frame lengths are checked before anything changes.
    pub fn reset_with_frames<T: Sample>(&mut self, frames: &[&[T]]) -> Result<(), StatsError> {
        let len = self.mean.len();
        check_frame_lengths(len, frames)?;
        self.frames = 0;
        if frames.is_empty() {
            self.mean.fill(0.0);
            self.m2.fill(0.0);
            self.min.fill(f64::INFINITY);
            self.max.fill(f64::NEG_INFINITY);
            return Ok(());
        }
        // An empty state's arrays are overwritten, never read, by the block update.
        self.push_frames(frames)
    }

    /// [`push_frames`](Self::push_frames), with the AVX2 path allowed or not (tests compare
    /// the two).
    fn push_frames_with<T: Sample>(
        &mut self,
        frames: &[&[T]],
        allow_avx2: bool,
    ) -> Result<(), StatsError> {
        let len = self.mean.len();
        check_frame_lengths(len, frames)?;
        if frames.is_empty() {
            return Ok(());
        }
        let empty = self.frames == 0;
        self.frames += frames.len() as u64;
        let mut state = BlockState {
            mean: &mut self.mean[..len],
            m2: &mut self.m2[..len],
            lo: &mut self.min[..len],
            hi: &mut self.max[..len],
        };
        update_state(&mut state, frames, empty, self.frames, use_avx2(allow_avx2));
        Ok(())
    }

    /// [`push_frames`](Self::push_frames) on consecutive blocks of at most `max_block`
    /// frames in turn (`for b in frames.chunks(max_block) { self.push_frames(b) }`), with the
    /// pixels split into tiles that rayon updates in parallel (on the current pool): exactly
    /// that result, bit for bit, for any number of threads.
    ///
    /// Each tile is a contiguous range of `PAR_TILE_PIXELS` pixels (a multiple of both vector
    /// group widths, so every tile but the last is whole groups) and runs the same blocked
    /// kernel on its sub-slices of the state and of every frame, one block after the other.
    /// The kernel's per-pixel operations and their order do not depend on which group, tile or
    /// thread a pixel falls in (no FMA, no cross-pixel reduction), so the result equals the
    /// sequential blocks exactly (test `push_frames_par_equals_push_frames`).
    ///
    /// Why: for a state too large for the caches (a CSPad: 2.3 M pixels, 73 MB) `push_frames`
    /// streams the whole state through memory once per block. Here a tile's state (256 KB)
    /// stays in the core's cache while all the blocks pass over it, so the state goes through
    /// memory once per call however many blocks it holds, and several cores share one
    /// running state instead of each reducing a partial that must then be merged. Blocks of
    /// ~32 frames keep the kernel's frame streams few enough for the prefetchers (see
    /// [`push_frames`](Self::push_frames)). `max_block` 0 counts as 1. Every frame's length is
    /// checked before anything changes.
    pub fn push_frames_par<T: Sample + Sync>(
        &mut self,
        frames: &[&[T]],
        max_block: usize,
    ) -> Result<(), StatsError> {
        self.push_frames_par_with(frames, max_block, true, PAR_TILE_PIXELS)
    }

    /// [`push_frames_par`](Self::push_frames_par) with the AVX2 path allowed or not and a
    /// chosen tile size (tests).
    fn push_frames_par_with<T: Sample + Sync>(
        &mut self,
        frames: &[&[T]],
        max_block: usize,
        allow_avx2: bool,
        tile: usize,
    ) -> Result<(), StatsError> {
        let len = self.mean.len();
        check_frame_lengths(len, frames)?;
        if frames.is_empty() {
            return Ok(());
        }
        let tile = tile.max(1);
        // Per block: its frames, whether the state is empty before it, and 1/n after it,
        // exactly as successive `push_frames` calls would compute them.
        let mut blocks = Vec::new();
        for b in frames.chunks(max_block.max(1)) {
            let empty = self.frames == 0;
            self.frames += b.len() as u64;
            blocks.push((b, empty, self.frames));
        }
        let avx2 = use_avx2(allow_avx2);
        let arrays = (
            &mut self.mean[..len],
            &mut self.m2[..len],
            &mut self.min[..len],
            &mut self.max[..len],
        );
        par_tiles4(tile, arrays, |t, mean, m2, lo, hi| {
            let base = t * tile;
            let end = base + mean.len();
            let mut state = BlockState { mean, m2, lo, hi };
            // One small vector of slice references per tile (not per pixel).
            let mut sub: Vec<&[T]> = Vec::with_capacity(max_block.max(1));
            for &(b, empty, n) in &blocks {
                sub.clear();
                sub.extend(b.iter().map(|f| &f[base..end]));
                update_state(&mut state, &sub, empty, n, avx2);
            }
        });
        Ok(())
    }

    /// Moves the arrays out (no copy): for a caller that turns the statistics into its own
    /// output, e.g. the standard deviation computed in place of M2.
    pub fn into_arrays(self) -> PixelArrays {
        PixelArrays {
            frames: self.frames,
            mean: self.mean,
            m2: self.m2,
            min: self.min,
            max: self.max,
        }
    }

    /// Folds `other` into `self` with Chan's formula, pixel by pixel.
    ///
    /// The result depends only on the two operands, so merging partials in a fixed order is
    /// reproducible bit for bit. Merging into an empty accumulator copies `other` exactly.
    pub fn merge(&mut self, other: &PixelStats) -> Result<(), StatsError> {
        if merge_trivial(self, other)? {
            return Ok(());
        }
        let len = self.mean.len();
        let na = self.frames as f64;
        let nb = other.frames as f64;
        let n = na + nb;
        let fb = nb / n;
        let fab = na * nb / n;
        let mean = &mut self.mean[..len];
        let m2 = &mut self.m2[..len];
        let lo = &mut self.min[..len];
        let hi = &mut self.max[..len];
        let (omean, om2) = (&other.mean[..len], &other.m2[..len]);
        let (olo, ohi) = (&other.min[..len], &other.max[..len]);
        for i in 0..len {
            let d = omean[i] - mean[i];
            mean[i] += d * fb;
            m2[i] += om2[i] + d * d * fab;
            lo[i] = if olo[i] < lo[i] { olo[i] } else { lo[i] };
            hi[i] = if ohi[i] > hi[i] { ohi[i] } else { hi[i] };
        }
        self.frames += other.frames;
        Ok(())
    }

    /// Per-pixel mean (all zeros before the first frame).
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// Per-pixel M2, the sum of squared deviations from the mean.
    pub fn m2(&self) -> &[f64] {
        &self.m2
    }

    /// Per-pixel minimum (`+inf` before the first frame).
    pub fn min(&self) -> &[f64] {
        &self.min
    }

    /// Per-pixel maximum (`-inf` before the first frame).
    pub fn max(&self) -> &[f64] {
        &self.max
    }

    fn scaled_m2(&self, denom: u64, sqrt: bool) -> Vec<f64> {
        if denom == 0 {
            return vec![f64::NAN; self.m2.len()];
        }
        let inv = 1.0 / denom as f64;
        if sqrt {
            self.m2.iter().map(|&s| (s * inv).sqrt()).collect()
        } else {
            self.m2.iter().map(|&s| s * inv).collect()
        }
    }

    /// Per-pixel population variance M2/n (numpy `var(axis=0)`); all NaN with no frames.
    pub fn variance_population(&self) -> Vec<f64> {
        self.scaled_m2(self.frames, false)
    }

    /// Per-pixel sample variance M2/(n-1); all NaN with fewer than 2 frames.
    pub fn variance_sample(&self) -> Vec<f64> {
        self.scaled_m2(self.frames.saturating_sub(1), false)
    }

    /// Per-pixel population standard deviation (numpy `std(axis=0)`, what psana/cctbx
    /// dark averaging report); all NaN with no frames.
    pub fn std_population(&self) -> Vec<f64> {
        self.scaled_m2(self.frames, true)
    }

    /// Per-pixel sample standard deviation; all NaN with fewer than 2 frames.
    pub fn std_sample(&self) -> Vec<f64> {
        self.scaled_m2(self.frames.saturating_sub(1), true)
    }
}

/// Every frame's length against the state's `len` pixels, before anything changes.
fn check_frame_lengths<T>(len: usize, frames: &[&[T]]) -> Result<(), StatsError> {
    match frames.iter().find(|f| f.len() != len) {
        Some(bad) => Err(StatsError::FrameLength {
            expected: len,
            got: bad.len(),
        }),
        None => Ok(()),
    }
}

/// What the merges of [`PixelStats`] and [`I16PixelStats`] share.
trait MergeOperand: Clone {
    fn pixels(&self) -> usize;
    fn frames(&self) -> u64;
}

impl MergeOperand for PixelStats {
    fn pixels(&self) -> usize {
        self.mean.len()
    }
    fn frames(&self) -> u64 {
        self.frames
    }
}

impl MergeOperand for I16PixelStats {
    fn pixels(&self) -> usize {
        self.sum.len()
    }
    fn frames(&self) -> u64 {
        self.frames
    }
}

/// The checks and trivial cases of a merge: an error if the pixel counts differ; `Ok(true)`
/// (done) if `other` is empty (`this` unchanged) or `this` is (it becomes an exact copy of
/// `other`); `Ok(false)` if both hold frames and the caller is to fold them.
fn merge_trivial<S: MergeOperand>(this: &mut S, other: &S) -> Result<bool, StatsError> {
    if other.pixels() != this.pixels() {
        return Err(StatsError::ShapeMismatch {
            this: this.pixels(),
            other: other.pixels(),
        });
    }
    if other.frames() == 0 {
        return Ok(true);
    }
    if this.frames() == 0 {
        this.clone_from(other);
        return Ok(true);
    }
    Ok(false)
}

/// Splits the four state arrays (of equal length) into tiles of `tile` pixels and calls
/// `f(t, a, b, c, d)` on each tile `t`'s sub-slices, in parallel on the current rayon pool.
fn par_tiles4<A: Send, B: Send, C: Send, D: Send>(
    tile: usize,
    (a, b, c, d): (&mut [A], &mut [B], &mut [C], &mut [D]),
    f: impl Fn(usize, &mut [A], &mut [B], &mut [C], &mut [D]) + Sync + Send,
) {
    use rayon::prelude::*;
    a.par_chunks_mut(tile)
        .zip(b.par_chunks_mut(tile))
        .zip(c.par_chunks_mut(tile))
        .zip(d.par_chunks_mut(tile))
        .enumerate()
        .for_each(|(t, (((a, b), c), d))| f(t, a, b, c, d));
}

/// Pixels per tile of [`PixelStats::push_frames_par`]: a multiple of every group width (8, 16
/// and 32); the tile's state (4 x 64 KiB) stays in a core's L2 cache while the blocks of frames
/// pass over it, and a CSPad frame gives 281 tiles, enough to balance a few threads with
/// negligible scheduling cost.
const PAR_TILE_PIXELS: usize = 8 * 1024;

/// Whether the AVX2 kernel is to be used (allowed and present on this CPU).
fn use_avx2(allow: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        allow && std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = allow;
        false
    }
}

/// Runs the blocked update over a whole state with the AVX2 kernel (`avx2`, which the caller
/// has checked with [`use_avx2`]) or the baseline one; both give the same bits.
fn update_state<T: Sample>(
    st: &mut BlockState<'_>,
    frames: &[&[T]],
    empty: bool,
    n: u64,
    avx2: bool,
) {
    let inv_n = 1.0 / n as f64;
    if let Some(fr) = T::as_i16_frames(frames)
        && let Some(co) = I16Block::new(fr.len(), n, inv_n)
    {
        update_state_i16(st, fr, empty, &co, avx2);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: `avx2` is only true when `use_avx2` found the CPU supports AVX2, the only
        // requirement of a `#[target_feature(enable = "avx2")]` function.
        unsafe { block_update_all_avx2(st, frames, empty, inv_n) };
        return;
    }
    let _ = avx2;
    block_update_all::<T, BLOCK_LANES>(st, frames, empty, inv_n);
}

/// Pixels reduced together by [`PixelStats::push_frames`] on the baseline (SSE2) path: 8 `f64`
/// lanes = four SSE2 vectors per accumulator. Measured on the 2-core development box
/// (CSPad int16 frames, blocks of 32): 8 lanes ~1.6x faster than 4 (more independent
/// dependency chains per frame).
const BLOCK_LANES: usize = 8;

/// Pixels reduced together on the AVX2 path (four 256-bit vectors per accumulator; measured
/// ~2x the baseline path, and faster than 8 lanes).
#[cfg(target_arch = "x86_64")]
const BLOCK_LANES_AVX2: usize = 16;

/// Every pixel of the state, `W` at a time, then the remainder one by one.
#[inline(always)]
fn block_update_all<T: Sample, const W: usize>(
    st: &mut BlockState<'_>,
    frames: &[&[T]],
    empty: bool,
    inv_n: f64,
) {
    let len = st.mean.len();
    let groups = len / W;
    for g in 0..groups {
        block_update::<T, W>(st, frames, g * W, empty, inv_n);
    }
    for i in groups * W..len {
        block_update::<T, 1>(st, frames, i, empty, inv_n);
    }
}

/// [`block_update_all`] compiled for AVX2 (same operations, wider vectors).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn block_update_all_avx2<T: Sample>(
    st: &mut BlockState<'_>,
    frames: &[&[T]],
    empty: bool,
    inv_n: f64,
) {
    block_update_all::<T, BLOCK_LANES_AVX2>(st, frames, empty, inv_n);
}

/// Longest block that the exact `i16` kernel takes (longer ones use the `f64` kernel; the
/// deviation bound `sqrt(i32::MAX / K)` is only 181 ADU at this length).
const I16_MAX_BLOCK: usize = 65_536;

/// Pixels reduced together by the `i16` kernel on the baseline (SSE2) path: two 128-bit
/// vectors of samples.
const I16_LANES: usize = 16;

/// Pixels reduced together by the `i16` kernel on the AVX2 path: two 256-bit vectors.
#[cfg(target_arch = "x86_64")]
const I16_LANES_AVX2: usize = 32;

/// Per-block constants of the `i16` kernel (see [`PixelStats::push_frames`]).
struct I16Block {
    /// Frames in the block, as `f64`.
    k: f64,
    /// 1 / frames after the block.
    inv_n: f64,
    /// k / n: weight of the block's mean in the merged mean.
    fb: f64,
    /// n_old k / n: Chan's weight of the squared mean difference.
    fab: f64,
    /// Largest |x - c| for which K squares sum without overflow in `i32`:
    /// `K lim^2 <= i32::MAX`, and `lim <= 32767` so that `x - c` is exact in `i16`.
    lim: i32,
}

impl I16Block {
    /// The constants for a block of `k` frames bringing the state to `n` frames, or `None`
    /// when the block is empty or too long for the integer kernel.
    fn new(k: usize, n: u64, inv_n: f64) -> Option<Self> {
        if k == 0 || k > I16_MAX_BLOCK {
            return None;
        }
        let kk = k as i64;
        let max = i64::from(i32::MAX);
        let mut lim = ((max / kk) as f64).sqrt() as i64 + 1;
        while lim * lim * kk > max {
            lim -= 1;
        }
        let kf = k as f64;
        Some(Self {
            k: kf,
            inv_n,
            fb: kf * inv_n,
            fab: (n - k as u64) as f64 * kf * inv_n,
            lim: lim.min(32_767) as i32,
        })
    }
}

/// The `i16` kernel over the whole state, AVX2 (`avx2`, checked by [`use_avx2`]) or
/// baseline; both give the same bits (integer sums are exact, the merge is the same IEEE
/// operations per pixel).
fn update_state_i16(
    st: &mut BlockState<'_>,
    frames: &[&[i16]],
    empty: bool,
    co: &I16Block,
    avx2: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: `avx2` is only true when `use_avx2` found the CPU supports AVX2, the only
        // requirement of a `#[target_feature(enable = "avx2")]` function.
        unsafe { i16_update_all_avx2(st, frames, empty, co) };
        return;
    }
    let _ = avx2;
    i16_update_all::<I16_LANES>(st, frames, empty, co);
}

/// Every pixel of the state, `W` at a time, then the remainder one by one (`i16` kernel).
#[inline(always)]
fn i16_update_all<const W: usize>(
    st: &mut BlockState<'_>,
    frames: &[&[i16]],
    empty: bool,
    co: &I16Block,
) {
    let len = st.mean.len();
    let groups = len / W;
    for g in 0..groups {
        i16_update::<W>(st, frames, g * W, empty, co);
    }
    for i in groups * W..len {
        i16_update::<1>(st, frames, i, empty, co);
    }
}

/// [`i16_update_all`] compiled for AVX2 (same operations, wider vectors).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn i16_update_all_avx2(st: &mut BlockState<'_>, frames: &[&[i16]], empty: bool, co: &I16Block) {
    i16_update_all::<I16_LANES_AVX2>(st, frames, empty, co);
}

/// The integer shift of a pixel: its running mean truncated toward zero (saturating at the
/// `i16` range; NaN gives 0, and the deviation check then decides). Any integer near the
/// mean keeps the deviations small; this one is a single SSE2 conversion.
#[inline(always)]
fn int_shift(mean: f64) -> i16 {
    mean as i16
}

/// Adds the samples of pixels `base..base + W` of `frames` to a block's accumulators: min
/// and max on the raw samples, and the sums of `d = x - c` (a wrapping 16-bit difference)
/// and `d^2` in `i32` (wrapping). Shared by [`i16_update`] and [`exact_sums`].
#[inline(always)]
fn i16_block_sums<const W: usize>(
    frames: &[&[i16]],
    base: usize,
    c: &[i16; W],
    lo: &mut [i16; W],
    hi: &mut [i16; W],
    s1: &mut [i32; W],
    s2: &mut [i32; W],
) {
    for f in frames {
        let x = &f[base..base + W];
        for j in 0..W {
            let v = x[j];
            lo[j] = lo[j].min(v);
            hi[j] = hi[j].max(v);
            let d = i32::from(v.wrapping_sub(c[j]));
            s1[j] = s1[j].wrapping_add(d);
            s2[j] = s2[j].wrapping_add(d.wrapping_mul(d));
        }
    }
}

/// The exact `i16` kernel on pixels `base..base + W` (see [`PixelStats::push_frames`]): one
/// pass over the block computes, per pixel, min and max on the raw samples and the sums of
/// `d = x - c` and `d^2` in `i32` (wrapping). The sums are exact, and used, only for pixels
/// whose block deviations all lie within `co.lim` (checked afterwards from min and max);
/// any other pixel is redone by the `f64` kernel on its own. Each pixel's result depends on
/// its own samples and state only, never on `W` or its neighbours.
#[inline(always)]
fn i16_update<const W: usize>(
    st: &mut BlockState<'_>,
    frames: &[&[i16]],
    base: usize,
    empty: bool,
    co: &I16Block,
) {
    let mut c = [0i16; W];
    if empty {
        c.copy_from_slice(&frames[0][base..base + W]);
    } else {
        let m = &st.mean[base..base + W];
        for j in 0..W {
            c[j] = int_shift(m[j]);
        }
    }
    let mut lo = [i16::MAX; W];
    let mut hi = [i16::MIN; W];
    let mut s1 = [0i32; W];
    let mut s2 = [0i32; W];
    i16_block_sums(frames, base, &c, &mut lo, &mut hi, &mut s1, &mut s2);
    let mut ok = [false; W];
    let mut all = true;
    for j in 0..W {
        let cj = i32::from(c[j]);
        let r = (i32::from(hi[j]) - cj).max(cj - i32::from(lo[j]));
        ok[j] = r <= co.lim;
        all &= ok[j];
    }
    if all {
        for j in 0..W {
            i16_merge(st, base + j, c[j], s1[j], s2[j], lo[j], hi[j], empty, co);
        }
    } else {
        for j in 0..W {
            if ok[j] {
                i16_merge(st, base + j, c[j], s1[j], s2[j], lo[j], hi[j], empty, co);
            } else {
                block_update::<i16, 1>(st, frames, base + j, empty, co.inv_n);
            }
        }
    }
}

/// Merges one pixel's exact block sums about the integer shift `c` into the state with
/// Chan's formula: block mean `c + S1/K`, block M2 `S2 - S1^2/K` (S1, S2 and S1^2 are exact
/// in `f64`), then `delta = mean_block - mean_old`, `mean += delta K/n`,
/// `M2 += M2_block + delta^2 n_old K/n`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn i16_merge(
    st: &mut BlockState<'_>,
    i: usize,
    c: i16,
    s1: i32,
    s2: i32,
    lo: i16,
    hi: i16,
    empty: bool,
    co: &I16Block,
) {
    let c = f64::from(c);
    let s1 = f64::from(s1);
    let s2 = f64::from(s2);
    let m2_block = s2 - s1 * s1 / co.k;
    if empty {
        st.mean[i] = c + s1 / co.k;
        st.m2[i] = if m2_block <= 0.0 { 0.0 } else { m2_block };
        st.lo[i] = f64::from(lo);
        st.hi[i] = f64::from(hi);
        return;
    }
    let old = st.mean[i];
    // For a mean within the i16 range |old - c| < 1, so this difference is exact
    // (Sterbenz) and the block mean relative to the old mean is one rounding away.
    let delta = s1 / co.k - (old - c);
    st.mean[i] = old + delta * co.fb;
    // Clamp as in `block_update` (keeps NaN).
    let m = st.m2[i] + (m2_block + delta * delta * co.fab);
    st.m2[i] = if m <= 0.0 { 0.0 } else { m };
    let (lo, hi) = (f64::from(lo), f64::from(hi));
    st.lo[i] = if lo < st.lo[i] { lo } else { st.lo[i] };
    st.hi[i] = if hi > st.hi[i] { hi } else { st.hi[i] };
}

/// Mutable views of a [`PixelStats`]' arrays, all of the same length.
struct BlockState<'a> {
    mean: &'a mut [f64],
    m2: &'a mut [f64],
    lo: &'a mut [f64],
    hi: &'a mut [f64],
}

/// Reduces `frames` over pixels `base..base + W` into shifted sums and merges them into the
/// state (see [`PixelStats::push_frames`]). The per-pixel operations and their order do not
/// depend on `W`, so the remainder (`W = 1`) computes exactly what a full group would.
#[inline(always)]
fn block_update<T: Sample, const W: usize>(
    st: &mut BlockState<'_>,
    frames: &[&[T]],
    base: usize,
    empty: bool,
    inv_n: f64,
) {
    let mut shift = [0.0f64; W];
    if empty {
        let first = &frames[0][base..base + W];
        for j in 0..W {
            shift[j] = first[j].to_f64();
        }
    } else {
        shift.copy_from_slice(&st.mean[base..base + W]);
    }
    let mut s1 = [0.0f64; W];
    let mut s2 = [0.0f64; W];
    let mut lo = [f64::INFINITY; W];
    let mut hi = [f64::NEG_INFINITY; W];
    for f in frames {
        let x = &f[base..base + W];
        for j in 0..W {
            let v = x[j].to_f64();
            let d = v - shift[j];
            s1[j] += d;
            s2[j] += d * d;
            // Selects (not f64::min) so they map onto vector min/max and ignore NaN.
            lo[j] = if v < lo[j] { v } else { lo[j] };
            hi[j] = if v > hi[j] { v } else { hi[j] };
        }
    }
    let mean = &mut st.mean[base..base + W];
    let m2 = &mut st.m2[base..base + W];
    let slo = &mut st.lo[base..base + W];
    let shi = &mut st.hi[base..base + W];
    if empty {
        // An empty state holds M2 = 0, min = +inf, max = -inf, so the merge below reduces to
        // the block's own values: write them without reading the old arrays (the same bits,
        // and what lets `reset_with_frames` reuse a state's memory).
        for j in 0..W {
            mean[j] = shift[j] + s1[j] * inv_n;
            let m = s2[j] - s1[j] * s1[j] * inv_n;
            m2[j] = if m <= 0.0 { 0.0 } else { m };
            slo[j] = lo[j];
            shi[j] = hi[j];
        }
        return;
    }
    for j in 0..W {
        mean[j] = shift[j] + s1[j] * inv_n;
        // S2 - S1^2/n >= 0 mathematically (Cauchy-Schwarz, n >= K); clamp the rounding of an
        // all-equal block and -0 to +0 (keeps NaN, which fails the comparison).
        let m = m2[j] + (s2[j] - s1[j] * s1[j] * inv_n);
        m2[j] = if m <= 0.0 { 0.0 } else { m };
        slo[j] = if lo[j] < slo[j] { lo[j] } else { slo[j] };
        shi[j] = if hi[j] > shi[j] { hi[j] } else { shi[j] };
    }
}

/// Exact per-pixel statistics of `i16` frames: per pixel the integer sum of the values
/// (`i64`), the sum of their squares (`u64`), the minimum and the maximum (`i16`), i.e. 20
/// bytes per pixel instead of the 32 of [`PixelStats`]' `f64` state.
///
/// Integer sums are exact, so the statistics do not depend on the order or grouping of the
/// frames at all: pushing frames one by one, in blocks of any size, on any number of threads,
/// or accumulating partials and [`merge`](Self::merge)-ing them in any order gives identical
/// states. The mean and M2 are formed only at the end ([`into_arrays`](Self::into_arrays),
/// [`into_pixel_stats`](Self::into_pixel_stats)) from the exact integers,
///
/// ```text
/// mean = S1 / n,    M2 = (n S2 - S1^2) / n
/// ```
///
/// with `n S2 - S1^2` exact (in `u64` when it fits, else `i128`), so the mean is the exact
/// mean rounded once and M2 the exact M2 rounded twice (integer to `f64`, then the division):
/// there is no cancellation on large pedestals (the numerator is an exact integer however
/// large `S1^2` is). Exact for up to 2^34 frames (`S2 <= n 2^30` in `u64`; the sum of values is
/// exact in `f64` up to 2^38 frames, beyond which the mean takes a second rounding).
///
/// Compared with [`PixelStats::push_frames_par`], a blocked update streams 20 instead of 32
/// bytes of state per pixel through memory per call, and the state of an empty accumulator is
/// written without being read. The block kernel sums `d = x - c` and `d^2` in `i32` about the
/// block's first sample `c` per pixel (min and max on the raw samples), for blocks of at most
/// `EXACT_BLOCK` = 32 frames; the sums are exact, and used, when the block's min and max keep
/// every `|x - c| <= 8191` (`32 * 8191^2 < 2^31`); a pixel with a wider block range is summed
/// directly in `i64` instead, which gives the same integers. SSE2 and AVX2 (detected at run
/// time) paths give identical states.
///
/// ```
/// use caliper_core::stats::I16PixelStats;
///
/// let mut dark = I16PixelStats::new(2);
/// dark.push_frames(&[&[10i16, -3][..], &[12, -5], &[14, -4]]).unwrap();
/// assert_eq!(dark.sum(), &[36, -12]);
/// assert_eq!(dark.sum_squares(), &[440, 50]);
/// let a = dark.into_arrays();
/// assert_eq!((a.mean[0], a.m2[0], a.min[0], a.max[0]), (12.0, 8.0, 10.0, 14.0));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct I16PixelStats {
    frames: u64,
    sum: Vec<i64>,
    sumsq: Vec<u64>,
    min: Vec<i16>,
    max: Vec<i16>,
}

/// Frames per block of the exact `i16` kernel ([`I16PixelStats`]): the `i32` block sums of
/// `(x - c)^2` are exact for `|x - c| <= EXACT_LIM`.
const EXACT_BLOCK: usize = 32;

/// Largest `|x - c|` for which `EXACT_BLOCK` squares sum exactly in `i32`:
/// `32 * 8191^2 = 2,146,959,392 <= i32::MAX < 32 * 8192^2`.
const EXACT_LIM: i32 = 8191;

const _: () =
    assert!((EXACT_BLOCK as i64) * (EXACT_LIM as i64) * (EXACT_LIM as i64) <= i32::MAX as i64);

impl I16PixelStats {
    /// An empty accumulator over `n_pixels` pixels. The arrays are allocated zeroed (no
    /// fill pass); the first block writes them without reading.
    pub fn new(n_pixels: usize) -> Self {
        Self {
            frames: 0,
            sum: vec![0; n_pixels],
            sumsq: vec![0; n_pixels],
            min: vec![0; n_pixels],
            max: vec![0; n_pixels],
        }
    }

    /// Number of pixels per frame.
    pub fn n_pixels(&self) -> usize {
        self.sum.len()
    }

    /// Number of frames pushed (or merged in).
    pub fn n_frames(&self) -> u64 {
        self.frames
    }

    /// Per-pixel sum of the values (all zeros before the first frame).
    pub fn sum(&self) -> &[i64] {
        &self.sum
    }

    /// Per-pixel sum of the squared values (all zeros before the first frame).
    pub fn sum_squares(&self) -> &[u64] {
        &self.sumsq
    }

    /// Per-pixel minimum, or `None` before the first frame.
    pub fn min(&self) -> Option<&[i16]> {
        (self.frames > 0).then_some(&self.min[..])
    }

    /// Per-pixel maximum, or `None` before the first frame.
    pub fn max(&self) -> Option<&[i16]> {
        (self.frames > 0).then_some(&self.max[..])
    }

    /// The start of a push: checks every frame's length before anything changes, then
    /// counts the frames. `None` if there are none (nothing to do), else whether the state
    /// was empty before them.
    fn begin_push(&mut self, frames: &[&[i16]]) -> Result<Option<bool>, StatsError> {
        check_frame_lengths(self.sum.len(), frames)?;
        if frames.is_empty() {
            return Ok(None);
        }
        let empty = self.frames == 0;
        self.frames += frames.len() as u64;
        Ok(Some(empty))
    }

    /// Adds one frame.
    pub fn push_frame(&mut self, frame: &[i16]) -> Result<(), StatsError> {
        self.push_frames(&[frame])
    }

    /// Adds frames (any number, in blocks of `EXACT_BLOCK` internally) on the calling thread.
    /// The same state as pushing them one by one. Every frame's length is checked before
    /// anything changes.
    pub fn push_frames(&mut self, frames: &[&[i16]]) -> Result<(), StatsError> {
        self.push_frames_with(frames, ExactKernel::best(true))
    }

    /// [`push_frames`](Self::push_frames) with a chosen kernel (tests).
    fn push_frames_with(
        &mut self,
        frames: &[&[i16]],
        kernel: ExactKernel,
    ) -> Result<(), StatsError> {
        let Some(empty) = self.begin_push(frames)? else {
            return Ok(());
        };
        let len = self.sum.len();
        let mut st = ExactState {
            sum: &mut self.sum[..len],
            sumsq: &mut self.sumsq[..len],
            lo: &mut self.min[..len],
            hi: &mut self.max[..len],
        };
        exact_update_blocks(&mut st, frames, 0, empty, kernel);
        Ok(())
    }

    /// [`push_frames`](Self::push_frames) with the pixels split into tiles that rayon
    /// updates in parallel (on the current pool); each tile runs all the blocks of the call
    /// while its state (160 KB) is in the core's cache, so the state goes through memory
    /// once per call. The same state, exactly, for any number of threads.
    pub fn push_frames_par(&mut self, frames: &[&[i16]]) -> Result<(), StatsError> {
        self.push_frames_par_with(frames, ExactKernel::best(true), PAR_TILE_PIXELS)
    }

    /// [`push_frames_par`](Self::push_frames_par) with a chosen kernel and tile size (tests).
    fn push_frames_par_with(
        &mut self,
        frames: &[&[i16]],
        kernel: ExactKernel,
        tile: usize,
    ) -> Result<(), StatsError> {
        let Some(empty) = self.begin_push(frames)? else {
            return Ok(());
        };
        let len = self.sum.len();
        let tile = tile.max(1);
        let arrays = (
            &mut self.sum[..len],
            &mut self.sumsq[..len],
            &mut self.min[..len],
            &mut self.max[..len],
        );
        par_tiles4(tile, arrays, |t, sum, sumsq, lo, hi| {
            let mut st = ExactState { sum, sumsq, lo, hi };
            exact_update_blocks(&mut st, frames, t * tile, empty, kernel);
        });
        Ok(())
    }

    /// Folds `other` into `self`: integer additions, so the result is exactly the state of
    /// all the frames of both, whatever the order of merges.
    pub fn merge(&mut self, other: &I16PixelStats) -> Result<(), StatsError> {
        if merge_trivial(self, other)? {
            return Ok(());
        }
        self.frames += other.frames;
        for (a, b) in self.sum.iter_mut().zip(&other.sum) {
            *a = a.wrapping_add(*b);
        }
        for (a, b) in self.sumsq.iter_mut().zip(&other.sumsq) {
            *a = a.wrapping_add(*b);
        }
        for (a, b) in self.min.iter_mut().zip(&other.min) {
            *a = (*a).min(*b);
        }
        for (a, b) in self.max.iter_mut().zip(&other.max) {
            *a = (*a).max(*b);
        }
        Ok(())
    }

    /// The statistics as `f64` arrays (mean, M2, min, max, as [`PixelStats::into_arrays`]),
    /// computed in place: the mean and M2 overwrite the memory of the two sums (no new
    /// allocation for them); min and max are widened into new arrays. Parallel over pixels
    /// on the current rayon pool (each pixel's values do not depend on the split). With no
    /// frames: mean and M2 zero, min `+inf`, max `-inf` (as [`PixelStats::new`]).
    pub fn into_arrays(self) -> PixelArrays {
        use rayon::prelude::*;
        let n = self.frames;
        let mut sum = self.sum;
        let mut sumsq = self.sumsq;
        let (min, max): (Vec<f64>, Vec<f64>) = if n == 0 {
            sum.fill(0);
            sumsq.fill(0);
            (
                vec![f64::INFINITY; sum.len()],
                vec![f64::NEG_INFINITY; sum.len()],
            )
        } else {
            sum.par_chunks_mut(PAR_TILE_PIXELS)
                .zip(sumsq.par_chunks_mut(PAR_TILE_PIXELS))
                .for_each(|(s, q)| exact_finish(n, s, q));
            (
                self.min.par_iter().map(|&v| f64::from(v)).collect(),
                self.max.par_iter().map(|&v| f64::from(v)).collect(),
            )
        };
        PixelArrays {
            frames: n,
            mean: f64_vec_from_bits(sum),
            m2: f64_vec_from_bits(sumsq),
            min,
            max,
        }
    }

    /// The same statistics as an `f64` [`PixelStats`] (via [`into_arrays`](Self::into_arrays)),
    /// e.g. to go on with frames of another sample type or to merge with a float state.
    pub fn into_pixel_stats(self) -> PixelStats {
        let a = self.into_arrays();
        PixelStats {
            frames: a.frames,
            mean: a.mean,
            m2: a.m2,
            min: a.min,
            max: a.max,
        }
    }
}

/// The mean and M2 of `n >= 1` integer samples from their exact sum `s` and sum of squares
/// `q`: `mean = s/n` (one rounding while `|s| < 2^53`), `M2 = (n q - s^2)/n` with the
/// numerator exact (`u64` when `n q` fits, else `u128`/`i128`) and rounded once to `f64`.
#[inline]
fn exact_mean_m2(n: u64, s: i64, q: u64) -> (f64, f64) {
    let nf = n as f64;
    let mean = s as f64 / nf;
    let s2 = u128::from(s.unsigned_abs()) * u128::from(s.unsigned_abs());
    let nq = u128::from(n) * u128::from(q);
    // n q >= s^2 by Cauchy-Schwarz for sums of real samples; saturate anyway.
    let num = nq.saturating_sub(s2);
    let num = match u64::try_from(num) {
        Ok(v) => v as f64,
        Err(_) => num as f64,
    };
    (mean, num / nf)
}

/// Overwrites each pixel's exact sums `s`, `q` of `n >= 1` frames with the bits of its mean
/// and M2 (as [`exact_mean_m2`], bit for bit). Fast path, 8 pixels at a time in `f64`
/// (vectorises): when `q < 2^52` and `n q < 2^52`, every integer involved is below 2^52
/// (`s^2 <= n q`), so `s` and `q` convert exactly with the usual exponent-bias trick and
/// `n q - s^2` is exact in `f64`; other pixels take [`exact_mean_m2`].
fn exact_finish(n: u64, s: &mut [i64], q: &mut [u64]) {
    const TWO52: f64 = 4_503_599_627_370_496.0;
    const Q_BIAS: u64 = 0x4330_0000_0000_0000; // bits of 2^52
    const S_BIAS: i64 = 0x4338_0000_0000_0000; // bits of 1.5 * 2^52
    const S_OFF: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52
    let nf = n as f64;
    let mut sc = s.chunks_exact_mut(8);
    let mut qc = q.chunks_exact_mut(8);
    for (s8, q8) in (&mut sc).zip(&mut qc) {
        let mut mean = [0.0f64; 8];
        let mut m2 = [0.0f64; 8];
        let mut ok = [false; 8];
        let mut all = true;
        for j in 0..8 {
            let qf = f64::from_bits(q8[j] | Q_BIAS) - TWO52;
            let sf = f64::from_bits(s8[j].wrapping_add(S_BIAS) as u64) - S_OFF;
            let nq = nf * qf;
            ok[j] = q8[j] < (1 << 52) && nq < TWO52;
            all &= ok[j];
            mean[j] = sf / nf;
            m2[j] = (nq - sf * sf) / nf;
        }
        if !all {
            for j in 0..8 {
                if !ok[j] {
                    (mean[j], m2[j]) = exact_mean_m2(n, s8[j], q8[j]);
                }
            }
        }
        for j in 0..8 {
            s8[j] = mean[j].to_bits() as i64;
            q8[j] = m2[j].to_bits();
        }
    }
    for (s, q) in sc.into_remainder().iter_mut().zip(qc.into_remainder()) {
        let (mean, m2) = exact_mean_m2(n, *s, *q);
        *s = mean.to_bits() as i64;
        *q = m2.to_bits();
    }
}

/// A `Vec<u64>` or `Vec<i64>` whose elements hold `f64` bit patterns, as a `Vec<f64>`
/// without copying.
fn f64_vec_from_bits<T: Bits64>(v: Vec<T>) -> Vec<f64> {
    let mut v = std::mem::ManuallyDrop::new(v);
    let (ptr, len, cap) = (v.as_mut_ptr(), v.len(), v.capacity());
    // SAFETY: `T` is `u64` or `i64` (sealed trait): the same size and alignment as `f64`, so
    // the allocation (made by the global allocator for `cap` elements of that layout) is
    // valid for a `Vec<f64>` of the same length and capacity, and every 64-bit pattern is an
    // initialised, valid `f64`. The original vector is not dropped (ManuallyDrop).
    unsafe { Vec::from_raw_parts(ptr.cast::<f64>(), len, cap) }
}

/// `u64` and `i64` (for [`f64_vec_from_bits`]).
trait Bits64: Copy {}
impl Bits64 for u64 {}
impl Bits64 for i64 {}
const _: () = assert!(
    std::mem::size_of::<u64>() == std::mem::size_of::<f64>()
        && std::mem::align_of::<u64>() == std::mem::align_of::<f64>()
        && std::mem::align_of::<i64>() == std::mem::align_of::<f64>()
);

/// Mutable views of (a tile of) an [`I16PixelStats`]' arrays, all of the same length.
struct ExactState<'a> {
    sum: &'a mut [i64],
    sumsq: &'a mut [u64],
    lo: &'a mut [i16],
    hi: &'a mut [i16],
}

/// Pixels per group of the exact kernel: one 256-bit (AVX2) or two 128-bit (SSE2) vectors
/// of `i16` samples.
const EXACT_GROUP: usize = 16;

/// Which implementation of the exact kernel's block sums runs (all give the same integers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExactKernel {
    /// Plain Rust (auto-vectorised; the only one off x86_64).
    Portable,
    /// SSE2 intrinsics (x86_64 baseline).
    Sse2,
    /// AVX2 intrinsics (checked at run time by [`use_avx2`]).
    Avx2,
}

impl ExactKernel {
    /// The fastest kernel on this CPU, with AVX2 allowed or not.
    fn best(allow_avx2: bool) -> Self {
        if use_avx2(allow_avx2) {
            ExactKernel::Avx2
        } else if cfg!(target_arch = "x86_64") {
            ExactKernel::Sse2
        } else {
            ExactKernel::Portable
        }
    }
}

/// Kernel selectors for the const parameter of [`exact_blocks`].
const K_PORTABLE: u8 = 0;
#[cfg(target_arch = "x86_64")]
const K_SSE2: u8 = 1;
#[cfg(target_arch = "x86_64")]
const K_AVX2: u8 = 2;

/// All blocks of `frames` (pixels `base..base + st.len()` of each) into the state of a tile
/// with the given kernel (`Avx2` only when [`use_avx2`] found it): identical integers.
fn exact_update_blocks(
    st: &mut ExactState<'_>,
    frames: &[&[i16]],
    base: usize,
    empty: bool,
    kernel: ExactKernel,
) {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        ExactKernel::Avx2 => {
            // SAFETY: `ExactKernel::Avx2` is only chosen when `use_avx2` found the CPU
            // supports AVX2, the only requirement of a `#[target_feature]` function.
            unsafe { exact_blocks_avx2(st, frames, base, empty) }
        }
        #[cfg(target_arch = "x86_64")]
        ExactKernel::Sse2 => exact_blocks::<K_SSE2>(st, frames, base, empty),
        _ => exact_blocks::<K_PORTABLE>(st, frames, base, empty),
    }
}

/// [`exact_blocks`] with the AVX2 block sums (the state update also compiled for AVX2).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn exact_blocks_avx2(st: &mut ExactState<'_>, frames: &[&[i16]], base: usize, empty: bool) {
    exact_blocks::<K_AVX2>(st, frames, base, empty);
}

/// Every block of at most `EXACT_BLOCK` frames over the tile, one after the other (the
/// tile's state stays in cache between blocks), `EXACT_GROUP` pixels at a time with the
/// kernel `KIND`, then the remainder one by one (portable code, the same integers).
#[inline(always)]
fn exact_blocks<const KIND: u8>(
    st: &mut ExactState<'_>,
    frames: &[&[i16]],
    base: usize,
    empty: bool,
) {
    let len = st.sum.len();
    let groups = len / EXACT_GROUP;
    let mut sub: [&[i16]; EXACT_BLOCK] = [&[]; EXACT_BLOCK];
    for (b, block) in frames.chunks(EXACT_BLOCK).enumerate() {
        let k = block.len();
        for (s, f) in sub.iter_mut().zip(block) {
            *s = &f[base..base + len];
        }
        let sub = &sub[..k];
        let first = empty && b == 0;
        for g in 0..groups {
            let i0 = g * EXACT_GROUP;
            let sums = exact_group_sums::<KIND>(sub, i0);
            exact_apply(st, sub, i0, first, &sums);
        }
        for i in groups * EXACT_GROUP..len {
            let sums = exact_sums::<1>(sub, i);
            exact_apply(st, sub, i, first, &sums);
        }
    }
}

/// The block sums of one group with the kernel `KIND`.
#[inline(always)]
fn exact_group_sums<const KIND: u8>(frames: &[&[i16]], i0: usize) -> ExactSums<EXACT_GROUP> {
    #[cfg(target_arch = "x86_64")]
    {
        if KIND == K_AVX2 {
            // SAFETY: `K_AVX2` is only instantiated by `exact_blocks_avx2`, which runs only
            // after `use_avx2` found AVX2 on this CPU.
            return unsafe { exact_sums_avx2(frames, i0) };
        }
        if KIND == K_SSE2 {
            // SAFETY: SSE2 is part of the x86_64 baseline, so every x86_64 CPU has it.
            return unsafe { exact_sums_sse2(frames, i0) };
        }
    }
    exact_sums::<EXACT_GROUP>(frames, i0)
}

/// Block sums of `W` pixels of the exact kernel (see [`exact_sums`]).
struct ExactSums<const W: usize> {
    /// The shift: each pixel's sample in the block's first frame.
    c: [i16; W],
    /// Block minimum.
    lo: [i16; W],
    /// Block maximum.
    hi: [i16; W],
    /// `sum (x - c)` (wrapping `i32`; exact when the range check passes).
    s1: [i32; W],
    /// `sum (x - c)^2` (wrapping `i32`; exact when the range check passes).
    s2: [i32; W],
}

impl<const W: usize> ExactSums<W> {
    /// All zeros, for the SIMD kernels to store into.
    #[inline(always)]
    fn zeroed() -> Self {
        Self {
            c: [0; W],
            lo: [0; W],
            hi: [0; W],
            s1: [0; W],
            s2: [0; W],
        }
    }
}

/// Block sums of pixels `i0..i0 + W` (plain Rust): `c` = the first frame's samples, min/max
/// on the raw samples, and the sums of `d = x - c` (a wrapping 16-bit difference) and `d^2`
/// in `i32` over the other frames (`d = 0` for the first).
#[inline(always)]
fn exact_sums<const W: usize>(frames: &[&[i16]], i0: usize) -> ExactSums<W> {
    let mut c = [0i16; W];
    c.copy_from_slice(&frames[0][i0..i0 + W]);
    let mut lo = c;
    let mut hi = c;
    let mut s1 = [0i32; W];
    let mut s2 = [0i32; W];
    i16_block_sums(&frames[1..], i0, &c, &mut lo, &mut hi, &mut s1, &mut s2);
    ExactSums { c, lo, hi, s1, s2 }
}

/// [`exact_sums`] for 16 pixels with SSE2 intrinsics, two frames at a time: the two frames'
/// 16-bit deviations are interleaved per pixel (`unpacklo/hi`), so one `pmaddwd` gives
/// `d0^2 + d1^2` and another (by ones) `d0 + d1` per pixel in `i32`: 10 vector operations per
/// 8 pixels and 2 frames instead of ~16. The same integers as [`exact_sums`] whenever the
/// range check passes (`|d| <= EXACT_LIM`, so no pair sum and no partial sum overflows);
/// otherwise both are discarded by the caller.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn exact_sums_sse2(frames: &[&[i16]], i0: usize) -> ExactSums<EXACT_GROUP> {
    use std::arch::x86_64::*;
    macro_rules! ld {
        ($f:expr, $h:expr) => {{
            let x = &$f[i0 + 8 * $h..i0 + 8 * $h + 8];
            // SAFETY: `x` is 8 `i16` = 16 bytes; `loadu` has no alignment requirement.
            unsafe { _mm_loadu_si128(x.as_ptr().cast()) }
        }};
    }
    let ones = _mm_set1_epi16(1);
    let zero = _mm_setzero_si128();
    let mut out = ExactSums::zeroed();
    for h in 0..2 {
        let c = ld!(frames[0], h);
        let (mut lo, mut hi) = (c, c);
        let (mut s1l, mut s1h, mut s2l, mut s2h) = (zero, zero, zero, zero);
        let mut pairs = frames[1..].chunks_exact(2);
        for p in &mut pairs {
            let x0 = ld!(p[0], h);
            let x1 = ld!(p[1], h);
            lo = _mm_min_epi16(lo, _mm_min_epi16(x0, x1));
            hi = _mm_max_epi16(hi, _mm_max_epi16(x0, x1));
            let d0 = _mm_sub_epi16(x0, c);
            let d1 = _mm_sub_epi16(x1, c);
            let u = _mm_unpacklo_epi16(d0, d1);
            let v = _mm_unpackhi_epi16(d0, d1);
            s1l = _mm_add_epi32(s1l, _mm_madd_epi16(u, ones));
            s1h = _mm_add_epi32(s1h, _mm_madd_epi16(v, ones));
            s2l = _mm_add_epi32(s2l, _mm_madd_epi16(u, u));
            s2h = _mm_add_epi32(s2h, _mm_madd_epi16(v, v));
        }
        if let [f] = pairs.remainder() {
            let x0 = ld!(f, h);
            lo = _mm_min_epi16(lo, x0);
            hi = _mm_max_epi16(hi, x0);
            let d0 = _mm_sub_epi16(x0, c);
            let u = _mm_unpacklo_epi16(d0, zero);
            let v = _mm_unpackhi_epi16(d0, zero);
            s1l = _mm_add_epi32(s1l, _mm_madd_epi16(u, ones));
            s1h = _mm_add_epi32(s1h, _mm_madd_epi16(v, ones));
            s2l = _mm_add_epi32(s2l, _mm_madd_epi16(u, u));
            s2h = _mm_add_epi32(s2h, _mm_madd_epi16(v, v));
        }
        let o = 8 * h;
        // SAFETY: every store writes 16 bytes inside a local array of at least `o + 8`
        // elements of the stored type; `storeu` has no alignment requirement.
        unsafe {
            _mm_storeu_si128(out.c[o..o + 8].as_mut_ptr().cast(), c);
            _mm_storeu_si128(out.lo[o..o + 8].as_mut_ptr().cast(), lo);
            _mm_storeu_si128(out.hi[o..o + 8].as_mut_ptr().cast(), hi);
            _mm_storeu_si128(out.s1[o..o + 4].as_mut_ptr().cast(), s1l);
            _mm_storeu_si128(out.s1[o + 4..o + 8].as_mut_ptr().cast(), s1h);
            _mm_storeu_si128(out.s2[o..o + 4].as_mut_ptr().cast(), s2l);
            _mm_storeu_si128(out.s2[o + 4..o + 8].as_mut_ptr().cast(), s2h);
        }
    }
    out
}

/// [`exact_sums_sse2`] with 256-bit vectors (one vector = 16 pixels). `unpacklo/hi` work
/// within 128-bit lanes, so the `i32` sums come out as pixels 0-3 | 8-11 and 4-7 | 12-15 and
/// are put back in order with two lane permutations.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn exact_sums_avx2(frames: &[&[i16]], i0: usize) -> ExactSums<EXACT_GROUP> {
    use std::arch::x86_64::*;
    macro_rules! ld {
        ($f:expr) => {{
            let x = &$f[i0..i0 + 16];
            // SAFETY: `x` is 16 `i16` = 32 bytes; `loadu` has no alignment requirement.
            unsafe { _mm256_loadu_si256(x.as_ptr().cast()) }
        }};
    }
    let ones = _mm256_set1_epi16(1);
    let zero = _mm256_setzero_si256();
    let c = ld!(frames[0]);
    let (mut lo, mut hi) = (c, c);
    let (mut s1l, mut s1h, mut s2l, mut s2h) = (zero, zero, zero, zero);
    let mut pairs = frames[1..].chunks_exact(2);
    for p in &mut pairs {
        let x0 = ld!(p[0]);
        let x1 = ld!(p[1]);
        lo = _mm256_min_epi16(lo, _mm256_min_epi16(x0, x1));
        hi = _mm256_max_epi16(hi, _mm256_max_epi16(x0, x1));
        let d0 = _mm256_sub_epi16(x0, c);
        let d1 = _mm256_sub_epi16(x1, c);
        let u = _mm256_unpacklo_epi16(d0, d1);
        let v = _mm256_unpackhi_epi16(d0, d1);
        s1l = _mm256_add_epi32(s1l, _mm256_madd_epi16(u, ones));
        s1h = _mm256_add_epi32(s1h, _mm256_madd_epi16(v, ones));
        s2l = _mm256_add_epi32(s2l, _mm256_madd_epi16(u, u));
        s2h = _mm256_add_epi32(s2h, _mm256_madd_epi16(v, v));
    }
    if let [f] = pairs.remainder() {
        let x0 = ld!(f);
        lo = _mm256_min_epi16(lo, x0);
        hi = _mm256_max_epi16(hi, x0);
        let d0 = _mm256_sub_epi16(x0, c);
        let u = _mm256_unpacklo_epi16(d0, zero);
        let v = _mm256_unpackhi_epi16(d0, zero);
        s1l = _mm256_add_epi32(s1l, _mm256_madd_epi16(u, ones));
        s1h = _mm256_add_epi32(s1h, _mm256_madd_epi16(v, ones));
        s2l = _mm256_add_epi32(s2l, _mm256_madd_epi16(u, u));
        s2h = _mm256_add_epi32(s2h, _mm256_madd_epi16(v, v));
    }
    let mut out = ExactSums::zeroed();
    // SAFETY: every store writes 32 bytes inside a local array of 32 bytes (16 `i16`) or of
    // at least `8 + 8` `i32`; `storeu` has no alignment requirement.
    unsafe {
        _mm256_storeu_si256(out.c.as_mut_ptr().cast(), c);
        _mm256_storeu_si256(out.lo.as_mut_ptr().cast(), lo);
        _mm256_storeu_si256(out.hi.as_mut_ptr().cast(), hi);
        _mm256_storeu_si256(
            out.s1[..8].as_mut_ptr().cast(),
            _mm256_permute2x128_si256::<0x20>(s1l, s1h),
        );
        _mm256_storeu_si256(
            out.s1[8..].as_mut_ptr().cast(),
            _mm256_permute2x128_si256::<0x31>(s1l, s1h),
        );
        _mm256_storeu_si256(
            out.s2[..8].as_mut_ptr().cast(),
            _mm256_permute2x128_si256::<0x20>(s2l, s2h),
        );
        _mm256_storeu_si256(
            out.s2[8..].as_mut_ptr().cast(),
            _mm256_permute2x128_si256::<0x31>(s2l, s2h),
        );
    }
    out
}

/// Adds one group's block to the state of pixels `i0..i0 + W`: pixels whose block range
/// keeps `|x - c| <= EXACT_LIM` add the exact `sum x = S1 + K c` and
/// `sum x^2 = S2 + 2 c S1 + K c^2` (all in `i64`); any other pixel is summed directly in
/// `i64` over the block instead (the same integers). `first`: the state is empty and is
/// written without being read.
#[inline(always)]
fn exact_apply<const W: usize>(
    st: &mut ExactState<'_>,
    frames: &[&[i16]],
    i0: usize,
    first: bool,
    s: &ExactSums<W>,
) {
    let k = frames.len() as i64;
    let mut ok = [false; W];
    let mut all = true;
    for (j, ok) in ok.iter_mut().enumerate() {
        let cj = i32::from(s.c[j]);
        let r = (i32::from(s.hi[j]) - cj).max(cj - i32::from(s.lo[j]));
        *ok = r <= EXACT_LIM;
        all &= *ok;
    }
    let mut add_s = [0i64; W];
    let mut add_q = [0u64; W];
    for j in 0..W {
        let cj = i64::from(s.c[j]);
        let a = i64::from(s.s1[j]);
        add_s[j] = a + k * cj;
        add_q[j] = (i64::from(s.s2[j]) + cj * (2 * a + k * cj)) as u64;
    }
    if !all {
        for j in 0..W {
            if !ok[j] {
                let (mut sx, mut sq) = (0i64, 0u64);
                for f in frames {
                    let v = i64::from(f[i0 + j]);
                    sx += v;
                    sq += (v * v) as u64;
                }
                add_s[j] = sx;
                add_q[j] = sq;
            }
        }
    }
    let sum = &mut st.sum[i0..i0 + W];
    let sumsq = &mut st.sumsq[i0..i0 + W];
    let slo = &mut st.lo[i0..i0 + W];
    let shi = &mut st.hi[i0..i0 + W];
    if first {
        sum.copy_from_slice(&add_s);
        sumsq.copy_from_slice(&add_q);
        slo.copy_from_slice(&s.lo);
        shi.copy_from_slice(&s.hi);
        return;
    }
    for j in 0..W {
        sum[j] = sum[j].wrapping_add(add_s[j]);
        sumsq[j] = sumsq[j].wrapping_add(add_q[j]);
        slo[j] = slo[j].min(s.lo[j]);
        shi[j] = shi[j].max(s.hi[j]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn rel(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs().max(f64::MIN_POSITIVE)
    }

    /// `offset + k/1024` for small integers k: exactly representable for offsets up to
    /// ~1e12, so the truth can be computed from the small deviations alone.
    fn exact_sample(rng: &mut ChaCha8Rng, n: usize, offset: f64, half_range: i64) -> Vec<f64> {
        (0..n)
            .map(|_| offset + rng.random_range(-half_range..=half_range) as f64 / 1024.0)
            .collect()
    }

    /// (mean, population variance) of `offset + e`, computed from the deviations `e` (O(1)
    /// numbers, so accurate to ~1e-16 relative): the reference truth.
    fn truth(x: &[f64], offset: f64) -> (f64, f64) {
        let e: Vec<f64> = x.iter().map(|v| v - offset).collect(); // exact (Sterbenz)
        let n = e.len() as f64;
        let m = e.iter().sum::<f64>() / n;
        let v = e.iter().map(|d| (d - m) * (d - m)).sum::<f64>() / n;
        (offset + m, v)
    }

    #[test]
    fn running_hand_computed() {
        // 2,4,4,4,5,5,7,9: mean 5, population variance 4, sample variance 32/7 (exact in f64
        // up to rounding of the final division, so 1e-15 relative).
        let s: RunningStats = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]
            .into_iter()
            .collect();
        assert_eq!(s.count(), 8);
        assert_eq!(s.mean(), Some(5.0));
        assert!(rel(s.variance_population().unwrap(), 4.0) < 1e-15);
        assert!(rel(s.variance_sample().unwrap(), 32.0 / 7.0) < 1e-15);
        assert!(rel(s.std_population().unwrap(), 2.0) < 1e-15);
        assert_eq!(s.min(), Some(2.0));
        assert_eq!(s.max(), Some(9.0));
    }

    #[test]
    fn running_empty_and_single() {
        let mut s = RunningStats::new();
        assert_eq!(s.mean(), None);
        assert_eq!(s.variance_population(), None);
        assert_eq!(s.min(), None);
        s.push(3.5);
        assert_eq!(s.mean(), Some(3.5));
        assert_eq!(s.variance_population(), Some(0.0));
        assert_eq!(s.variance_sample(), None);
        assert_eq!(s.std_sample(), None);
    }

    #[test]
    fn running_large_offset() {
        // 1e9 + deviations of unit size (sigma ~1): naive sum(x^2)/n - mean^2 would lose every
        // digit (1e18 vs 1). Welford's error budget: each mean update rounds at ulp(1e9)/2 =
        // 6e-8, and those errors add up like a random walk weighted by k/N, i.e. ~6e-8 *
        // sqrt(N/3) = 1e-5 absolute for N = 1e5 (1e-14 relative to the mean, 1e-5 of sigma):
        // tolerance 1e-4 absolute. The variance sees the per-value rounding of x - mean
        // (~1e-7 of sigma): tolerance 1e-6 relative.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let x = exact_sample(&mut rng, 100_000, 1e9, 1774);
        let s: RunningStats = x.iter().copied().collect();
        let (m, v) = truth(&x, 1e9);
        assert!((s.mean().unwrap() - m).abs() < 1e-4);
        assert!(rel(s.variance_population().unwrap(), v) < 1e-6);
        assert!((v - 1.0).abs() < 0.02); // uniform of width 2*1774/1024 = sqrt(12): variance 1
    }

    #[test]
    fn running_tiny_variance() {
        // Values 1 and 1 + d with d = 1e-12 (rounded to f64): population variance d^2/4 =
        // 2.5e-25 exactly for equal counts. Welford's running mean carries rounding errors of
        // ulp(1) = 2.2e-16, i.e. 2e-4 of d, so the variance is good to a few 1e-4: tolerance
        // 2e-3 relative. (sumsq/n - mean^2 would return 0 or garbage here.)
        let d = (1.0 + 1e-12) - 1.0; // exact difference of two doubles
        let x: Vec<f64> = (0..1000).map(|i| 1.0 + d * (i % 2) as f64).collect();
        let s: RunningStats = x.iter().copied().collect();
        assert!(rel(s.variance_population().unwrap(), d * d / 4.0) < 2e-3);
    }

    #[test]
    fn running_merge_equals_single_pass() {
        // Chunked + merged vs one pass, both against the truth of 1e6 + U(-1.7, 1.7) data:
        // ulp(1e6) = 1.2e-10, so by the same budget as `running_large_offset` the mean is good
        // to ~1e-8 absolute and M2 to ~1e-9 relative; tolerances 1e-7 and 1e-8.
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let x = exact_sample(&mut rng, 10_007, 1e6, 1774);
        let (m, v) = truth(&x, 1e6);
        let m2 = v * x.len() as f64;
        let single: RunningStats = x.iter().copied().collect();
        for chunk in [1usize, 7, 100, 5000, 20_000] {
            let mut merged = RunningStats::new();
            for c in x.chunks(chunk) {
                merged.merge(&c.iter().copied().collect());
            }
            assert_eq!(merged.count(), single.count());
            assert!((merged.mean().unwrap() - m).abs() < 1e-7);
            assert!(rel(merged.m2(), m2) < 1e-8);
            assert_eq!(merged.min(), single.min());
            assert_eq!(merged.max(), single.max());
        }
        // Merging with empty on either side is exact.
        let mut e = RunningStats::new();
        e.merge(&single);
        assert_eq!(e, single);
        let mut s2 = single.clone();
        s2.merge(&RunningStats::new());
        assert_eq!(s2, single);
    }

    #[test]
    fn pixel_hand_computed() {
        let mut p = PixelStats::new(2);
        for f in [[1i16, -2], [3, -4], [5, -9]] {
            p.push_frame(&f).unwrap();
        }
        assert_eq!(p.n_frames(), 3);
        assert_eq!(p.mean(), &[3.0, -5.0]);
        // pixel 0: 1,3,5 -> M2 = 8; pixel 1: -2,-4,-9 -> M2 = 9+1+16 = 26
        assert_eq!(p.m2(), &[8.0, 26.0]);
        assert_eq!(p.variance_sample(), vec![4.0, 13.0]);
        assert!(rel(p.variance_population()[1], 26.0 / 3.0) < 1e-15);
        assert_eq!(p.std_sample()[0], 2.0);
        assert_eq!(p.min(), &[1.0, -9.0]);
        assert_eq!(p.max(), &[5.0, -2.0]);
    }

    #[test]
    fn pixel_errors_and_empty() {
        let mut p = PixelStats::new(3);
        assert!(p.variance_population().iter().all(|v| v.is_nan()));
        assert_eq!(
            p.push_frame(&[1.0f32, 2.0]),
            Err(StatsError::FrameLength {
                expected: 3,
                got: 2
            })
        );
        assert_eq!(p.n_frames(), 0);
        let q = PixelStats::new(4);
        assert_eq!(
            p.merge(&q),
            Err(StatsError::ShapeMismatch { this: 3, other: 4 })
        );
        p.push_frame(&[1u32, 2, 3]).unwrap();
        assert!(p.variance_sample().iter().all(|v| v.is_nan()));
        assert_eq!(p.variance_population(), vec![0.0; 3]);
    }

    #[test]
    fn pixel_large_pedestal() {
        // Pedestal 1e6 + i + noise of ~1e-3 (multiples of 2^-20) over 1000 frames, against
        // the truth from the deviations. Budget as in `running_large_offset`: ulp(1e6)/2 =
        // 6e-11 per update, ~1e-9 absolute on the mean after 1000 frames (tolerance 1e-8);
        // the std sees 1e-10/1e-3 = 1e-7 relative rounding per value (tolerance 1e-5).
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let npix = 64;
        let frames: Vec<Vec<f64>> = (0..1000)
            .map(|_| {
                (0..npix)
                    .map(|i| 1e6 + i as f64 + rng.random_range(-1800..=1800) as f64 / 1048576.0)
                    .collect()
            })
            .collect();
        let mut p = PixelStats::new(npix);
        for f in &frames {
            p.push_frame(f).unwrap();
        }
        let sp = p.std_population();
        for i in 0..npix {
            let col: Vec<f64> = frames.iter().map(|f| f[i]).collect();
            let (m, v) = truth(&col, 1e6 + i as f64);
            assert!(
                (p.mean()[i] - m).abs() < 1e-8,
                "pixel {i}: {} vs {m}",
                p.mean()[i]
            );
            assert!(
                rel(sp[i], v.sqrt()) < 1e-5,
                "pixel {i}: {} vs {}",
                sp[i],
                v.sqrt()
            );
        }
    }

    #[test]
    fn pixel_merge_equivalence_and_determinism() {
        // Split 200 frames into chunks, accumulate each, merge in order: equals single pass
        // within 1e-12 relative (different but equally accurate rounding paths). Repeating the
        // same split must be bit-identical.
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let npix = 37;
        let frames: Vec<Vec<u16>> = (0..200)
            .map(|_| {
                (0..npix)
                    .map(|_| 1000 + rng.random_range(0..50u16))
                    .collect()
            })
            .collect();
        let mut single = PixelStats::new(npix);
        for f in &frames {
            single.push_frame(f).unwrap();
        }
        let run = |chunk: usize| {
            let mut total = PixelStats::new(npix);
            for c in frames.chunks(chunk) {
                let mut part = PixelStats::new(npix);
                for f in c {
                    part.push_frame(f).unwrap();
                }
                total.merge(&part).unwrap();
            }
            total
        };
        for chunk in [1, 3, 64, 200] {
            let merged = run(chunk);
            assert_eq!(merged.n_frames(), 200);
            assert_eq!(merged, run(chunk), "not reproducible");
            for i in 0..npix {
                assert!(rel(merged.mean()[i], single.mean()[i]) < 1e-14);
                assert!(rel(merged.m2()[i], single.m2()[i]) < 1e-12);
                assert_eq!(merged.min()[i], single.min()[i]);
                assert_eq!(merged.max()[i], single.max()[i]);
            }
        }
    }

    /// Pushes `frames` in consecutive blocks of the given sizes (cycled) with `push_frames`.
    fn push_in_blocks<T: Sample>(npix: usize, frames: &[Vec<T>], sizes: &[usize]) -> PixelStats {
        let mut p = PixelStats::new(npix);
        for r in block_ranges(frames.len(), sizes) {
            let block: Vec<&[T]> = frames[r].iter().map(|f| &f[..]).collect();
            p.push_frames(&block).unwrap();
        }
        p
    }

    /// A rayon pool of `threads` threads (the parallel tests run on 1 and 3).
    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    /// Consecutive ranges covering `0..n`, of the sizes `sizes` in turn (cycled; the last
    /// one cut at `n`).
    fn block_ranges(n: usize, sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let mut start = 0;
        while start < n {
            let k = sizes[out.len() % sizes.len()].min(n - start);
            out.push(start..start + k);
            start += k;
        }
        out
    }

    #[test]
    fn push_frames_equals_sequential_push_frame() {
        // int16 frames near a 1500 ADU pedestal with +-40 ADU noise and a few hot pixels, 37
        // pixels (9 groups of 4 + 1 remainder), 203 frames pushed in blocks of 1, 2, 3, 7, 64,
        // 200 and mixed sizes, against the sequential Welford update. Both are accurate to a
        // few ulp here, so they must agree to 1e-14 relative on the mean and 1e-12 relative on
        // M2 (the issue's bound); min/max exactly.
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let npix = 37;
        let frames: Vec<Vec<i16>> = (0..203)
            .map(|k| {
                (0..npix)
                    .map(|i| {
                        let hot = if i == 5 && k % 17 == 0 { 9000 } else { 0 };
                        1500 + rng.random_range(-40..=40i16) + hot
                    })
                    .collect()
            })
            .collect();
        let mut single = PixelStats::new(npix);
        for f in &frames {
            single.push_frame(f).unwrap();
        }
        for sizes in [
            &[1usize][..],
            &[2],
            &[3],
            &[7],
            &[64],
            &[200],
            &[5, 1, 64, 2, 33],
        ] {
            let b = push_in_blocks(npix, &frames, sizes);
            assert_eq!(b.n_frames(), 203);
            assert_eq!(b, push_in_blocks(npix, &frames, sizes), "not reproducible");
            for i in 0..npix {
                assert!(
                    rel(b.mean()[i], single.mean()[i]) < 1e-14,
                    "{sizes:?} pixel {i}: mean {} vs {}",
                    b.mean()[i],
                    single.mean()[i]
                );
                assert!(
                    rel(b.m2()[i], single.m2()[i]) < 1e-12,
                    "{sizes:?} pixel {i}: M2 {} vs {}",
                    b.m2()[i],
                    single.m2()[i]
                );
            }
            assert_eq!(b.min(), single.min());
            assert_eq!(b.max(), single.max());
        }
        // Blocks and single frames mix, and merge like any other partial.
        let mut mixed = PixelStats::new(npix);
        mixed.push_frame(&frames[0]).unwrap();
        let rest: Vec<&[i16]> = frames[1..].iter().map(|f| &f[..]).collect();
        mixed.push_frames(&rest).unwrap();
        for i in 0..npix {
            assert!(rel(mixed.m2()[i], single.m2()[i]) < 1e-12);
        }
    }

    #[test]
    fn push_frames_large_pedestal() {
        // 1e9 + k/1024 (exact in f64) with unit noise, 501 frames of 13 pixels (3 groups + 1),
        // blocks of 1, 2, 7 and 64, against the truth from the deviations (see `truth`).
        // Error budget: the stored mean rounds at ulp(1e9)/2 = 6e-8 per block and its error e
        // performs a weighted random walk (~6e-8 * sqrt(N/3) = 8e-7 after 501 frames, as in
        // `running_large_offset`): tolerance 1e-5 absolute on the mean (1e-14 relative).
        // Each block's M2 term is exact about the stored mean, so M2 inherits a first-order
        // error 2 e S1 per block, ~2 * 8e-7 * sqrt(N) sigma = 4e-5 on M2 = 500 sigma^2, i.e.
        // ~1e-7 relative for blocks of 1 (measured 9.6e-8; 4e-9 for blocks of 64): tolerance
        // 3e-7 relative on the variance. That is the floor set by a mean
        // stored in one f64 near 1e9, shared with Welford's per-frame update, which is checked
        // against the same truth with its own budget (1e-6, `running_large_offset`). The
        // cancellation the shift avoids would instead cost everything (1e18 vs 1).
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let npix = 13;
        let offset = 1e9;
        let cols: Vec<Vec<f64>> = (0..npix)
            .map(|i| exact_sample(&mut rng, 501, offset + i as f64 * 1000.0, 1774))
            .collect();
        let frames: Vec<Vec<f64>> = (0..501)
            .map(|k| (0..npix).map(|i| cols[i][k]).collect())
            .collect();
        let mut welford = PixelStats::new(npix);
        for f in &frames {
            welford.push_frame(f).unwrap();
        }
        let wvar = welford.variance_population();
        let mut worst_w: f64 = 0.0;
        for sizes in [&[1usize][..], &[2], &[7], &[64]] {
            let b = push_in_blocks(npix, &frames, sizes);
            let var = b.variance_population();
            let mut worst: f64 = 0.0;
            for i in 0..npix {
                let (m, v) = truth(&cols[i], offset + i as f64 * 1000.0);
                assert!((b.mean()[i] - m).abs() < 1e-5, "{sizes:?} pixel {i}");
                worst = worst.max(rel(var[i], v));
                worst_w = worst_w.max(rel(wvar[i], v));
                assert!((v - 1.0).abs() < 0.2);
                assert_eq!(b.min()[i], welford.min()[i]);
                assert_eq!(b.max()[i], welford.max()[i]);
            }
            eprintln!("blocks {sizes:?}: worst variance error {worst:.1e} (Welford {worst_w:.1e})");
            assert!(worst < 3e-7, "{sizes:?}: {worst:.1e}");
            assert!(worst_w < 1e-6);
        }
    }

    #[test]
    fn push_frames_edge_cases() {
        let mut p = PixelStats::new(3);
        // Empty block: nothing changes.
        p.push_frames::<u16>(&[]).unwrap();
        assert_eq!(p, PixelStats::new(3));
        // A wrong-length frame anywhere in the block: error, state untouched.
        let a = [1u16, 2, 3];
        let b = [1u16, 2];
        assert_eq!(
            p.push_frames(&[&a[..], &b[..]]),
            Err(StatsError::FrameLength {
                expected: 3,
                got: 2
            })
        );
        assert_eq!(p, PixelStats::new(3));
        // Constant pixels: M2 exactly 0 (never negative), hand-computed values.
        p.push_frames(&[&[7u16, 2, 3][..], &[7, 4, 3], &[7, 6, 3]])
            .unwrap();
        assert_eq!(p.mean(), &[7.0, 4.0, 3.0]);
        assert_eq!(p.m2(), &[0.0, 8.0, 0.0]);
        assert_eq!(p.min(), &[7.0, 2.0, 3.0]);
        assert_eq!(p.max(), &[7.0, 6.0, 3.0]);
        // NaN: mean/M2 NaN, min/max ignore it (as push_frame).
        let mut q = PixelStats::new(1);
        q.push_frames(&[&[1.0f64][..], &[f64::NAN], &[3.0]])
            .unwrap();
        assert!(q.mean()[0].is_nan() && q.m2()[0].is_nan());
        assert_eq!((q.min()[0], q.max()[0]), (1.0, 3.0));
    }

    /// 45 frames of `npix` int16 values uniform in [-3000, 3000) from ChaCha8 seeded with
    /// `seed`, and the same frames as f64 `0.37 x + 1e6` (a large pedestal).
    fn simd_test_frames(seed: u64, npix: usize) -> (Vec<Vec<i16>>, Vec<Vec<f64>>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let frames: Vec<Vec<i16>> = (0..45)
            .map(|_| {
                (0..npix)
                    .map(|_| rng.random_range(-3000..3000i16))
                    .collect()
            })
            .collect();
        let framesf = frames
            .iter()
            .map(|f| f.iter().map(|&x| f64::from(x) * 0.37 + 1e6).collect())
            .collect();
        (frames, framesf)
    }

    #[test]
    fn push_frames_simd_paths_identical() {
        // The AVX2 path (where the CPU has it) and the baseline path must give the same bits:
        // same IEEE operations per pixel, only the vector width differs. 1,003 pixels (odd
        // remainders for 8 and 16 lanes), int16 and f64 frames, an empty and a filled state.
        let npix = 1003;
        let (frames, framesf) = simd_test_frames(8, npix);
        let (a, b) = (frames.split_at(17).0, frames.split_at(17).1);
        fn blocks(v: &[Vec<i16>]) -> Vec<&[i16]> {
            v.iter().map(|f| &f[..]).collect()
        }
        let mut x = PixelStats::new(npix);
        let mut y = PixelStats::new(npix);
        x.push_frames_with(&blocks(a), true).unwrap();
        y.push_frames_with(&blocks(a), false).unwrap();
        x.push_frames_with(&blocks(b), true).unwrap();
        y.push_frames_with(&blocks(b), false).unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(x.mean()), bits(y.mean()));
        assert_eq!(bits(x.m2()), bits(y.m2()));
        assert_eq!(x, y);
        let fb: Vec<&[f64]> = framesf.iter().map(|f| &f[..]).collect();
        let mut x = PixelStats::new(npix);
        let mut y = PixelStats::new(npix);
        x.push_frames_with(&fb, true).unwrap();
        y.push_frames_with(&fb, false).unwrap();
        assert_eq!(bits(x.m2()), bits(y.m2()));
        assert_eq!(x, y);
    }

    #[test]
    fn push_frames_par_equals_push_frames() {
        // The tiled parallel update must give exactly the bits of `push_frames` on the same
        // consecutive blocks: 1,003 pixels (odd remainders for every group width) in tiles of
        // 1,003 (one tile), 64, 48 (not a multiple of 16: groups shift against the tiles) and
        // 7 pixels, on pools of 1 and 3 threads, the AVX2 path on and off; 17 int16 frames on
        // an empty state in blocks of at most 5 (5, 5, 5, 2), then 28 f64 frames (1e6
        // pedestal) on the filled state in one call with blocks of at most 32 (one block).
        let npix = 1003;
        let (frames, framesf) = simd_test_frames(10, npix);
        let ri: Vec<&[i16]> = frames.iter().map(|f| &f[..]).collect();
        let rf: Vec<&[f64]> = framesf.iter().map(|f| &f[..]).collect();
        let mut want = PixelStats::new(npix);
        for b in ri[..17].chunks(5) {
            want.push_frames(b).unwrap();
        }
        want.push_frames(&rf[17..]).unwrap();
        let bits = |p: &PixelStats| {
            [p.mean(), p.m2(), p.min(), p.max()]
                .iter()
                .flat_map(|v| v.iter().map(|x| x.to_bits()))
                .collect::<Vec<_>>()
        };
        for threads in [1, 3] {
            let pool = pool(threads);
            for tile in [npix, 64, 48, 7] {
                for avx2 in [true, false] {
                    let got = pool.install(|| {
                        let mut p = PixelStats::new(npix);
                        p.push_frames_par_with(&ri[..17], 5, avx2, tile).unwrap();
                        p.push_frames_par_with(&rf[17..], 32, avx2, tile).unwrap();
                        p
                    });
                    assert_eq!(got.n_frames(), 45);
                    assert_eq!(bits(&got), bits(&want), "{threads} threads, tile {tile}");
                }
            }
        }
        // The public entry point (default tiles), and its length check before any change.
        let mut p = PixelStats::new(npix);
        p.push_frames_par(&ri[..17], 5).unwrap();
        p.push_frames_par(&rf[17..], 32).unwrap();
        assert_eq!(bits(&p), bits(&want));
        let short = [0i16; 5];
        assert!(p.push_frames_par(&[ri[0], &short[..]], 1).is_err());
        assert_eq!(bits(&p), bits(&want));
        assert_eq!(p.n_frames(), 45);
        // One block of everything equals push_frames of everything; max_block 0 means 1.
        let mut q = PixelStats::new(npix);
        q.push_frames_par(&ri, 64).unwrap();
        let mut r = PixelStats::new(npix);
        r.push_frames(&ri).unwrap();
        assert_eq!(q, r);
        let mut q = PixelStats::new(npix);
        q.push_frames_par(&ri[..3], 0).unwrap();
        let mut r = PixelStats::new(npix);
        for f in &ri[..3] {
            r.push_frames(&[f]).unwrap();
        }
        assert_eq!(q, r);
        // into_arrays moves exactly the accessors' values out.
        let arrays = r.clone().into_arrays();
        assert_eq!(arrays.frames, 3);
        assert_eq!(
            (
                &arrays.mean[..],
                &arrays.m2[..],
                &arrays.min[..],
                &arrays.max[..]
            ),
            (r.mean(), r.m2(), r.min(), r.max())
        );
    }

    #[test]
    fn i16_kernel_matches_f64_kernel() {
        // The exact integer kernel (i16 frames) against the f64 kernel on the same values as
        // i32 frames, and both against a two-pass f64 truth: 1,003 pixels (odd remainders for
        // 16 and 32 lanes), blocks of K = 1, 2, 31 and 32 frames (empty state, then three more
        // blocks on the filled state), AVX2 on and off. Data: a 1500 ADU pedestal with +-40
        // noise (narrow), +-8000 (wide: near the i32 bound 8191 for K = 32) and the full i16
        // range on every 7th pixel (the fallback to the f64 kernel). Tolerances: the issue's
        // 1e-14 relative on the mean and 1e-12 relative on M2 between the kernels (both are a
        // few ulp from the truth; the mean is compared relative to max(|mean|, std, 1)
        // because full-range pixels can average near 0, where the f64 kernel's error is a few
        // ulp of the data, e.g. 2.3e-13 on a mean of 8 with std 19,000); min/max exactly;
        // SSE2 and AVX2 bit for bit;
        // fallback pixels bit for bit equal to the f64 kernel (the integer sums would wrap).
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let npix = 1003;
        for half in [40i32, 8000] {
            for k in [1usize, 2, 31, 32] {
                let frames: Vec<Vec<i16>> = (0..4 * k)
                    .map(|_| {
                        (0..npix)
                            .map(|i| {
                                if i % 7 == 3 {
                                    rng.random_range(i16::MIN..=i16::MAX)
                                } else {
                                    (1500 + rng.random_range(-half..=half)) as i16
                                }
                            })
                            .collect()
                    })
                    .collect();
                let wide: Vec<Vec<i32>> = frames
                    .iter()
                    .map(|f| f.iter().map(|&x| i32::from(x)).collect())
                    .collect();
                let mut int = [PixelStats::new(npix), PixelStats::new(npix)];
                let mut flt = PixelStats::new(npix);
                for (bi, bw) in frames.chunks(k).zip(wide.chunks(k)) {
                    let ri: Vec<&[i16]> = bi.iter().map(|f| &f[..]).collect();
                    let rw: Vec<&[i32]> = bw.iter().map(|f| &f[..]).collect();
                    int[0].push_frames_with(&ri, true).unwrap();
                    int[1].push_frames_with(&ri, false).unwrap();
                    flt.push_frames_with(&rw, false).unwrap();
                }
                assert_eq!(int[0], int[1], "SSE2 vs AVX2, half {half}, K {k}");
                let got = &int[0];
                let mut fallbacks = 0;
                for i in 0..npix {
                    let col: Vec<f64> = frames.iter().map(|f| f64::from(f[i])).collect();
                    let n = col.len() as f64;
                    let m = col.iter().sum::<f64>() / n;
                    let m2: f64 = col.iter().map(|x| (x - m) * (x - m)).sum();
                    let what = format!("half {half}, K {k}, pixel {i}");
                    let scale = got.mean()[i].abs().max((m2 / n).sqrt()).max(1.0);
                    assert!(
                        (got.mean()[i] - flt.mean()[i]).abs() < 1e-14 * scale,
                        "{what}: mean {} vs {}",
                        got.mean()[i],
                        flt.mean()[i]
                    );
                    assert!((got.mean()[i] - m).abs() < 1e-13 * scale, "{what}");
                    assert!(rel(got.m2()[i], flt.m2()[i]) < 1e-12, "{what}: M2");
                    assert!(rel(got.m2()[i], m2) < 1e-12, "{what}: M2 truth");
                    assert_eq!(got.min()[i], flt.min()[i], "{what}");
                    assert_eq!(got.max()[i], flt.max()[i], "{what}");
                    if i % 7 == 3 && k > 1 {
                        // Full range: the first block's deviations exceed the bound for
                        // K >= 2 (65,535 > 32,767) with near certainty; the fallback gives
                        // the f64 kernel's bits for the first block, hence for the pixel
                        // only if every block fell back, so check the first block alone.
                        let ri: Vec<&[i16]> = frames[..k].iter().map(|f| &f[..]).collect();
                        let rw: Vec<&[i32]> = wide[..k].iter().map(|f| &f[..]).collect();
                        let mut a = PixelStats::new(npix);
                        let mut b = PixelStats::new(npix);
                        a.push_frames(&ri).unwrap();
                        b.push_frames(&rw).unwrap();
                        let hi = frames[..k].iter().map(|f| f[i]).max().unwrap();
                        let lo = frames[..k].iter().map(|f| f[i]).min().unwrap();
                        let c = i32::from(frames[0][i]);
                        let r = (i32::from(hi) - c).max(c - i32::from(lo));
                        let lim = I16Block::new(k, k as u64, 1.0 / k as f64).unwrap().lim;
                        if r > lim {
                            fallbacks += 1;
                            assert_eq!(a.mean()[i].to_bits(), b.mean()[i].to_bits(), "{what}");
                            assert_eq!(a.m2()[i].to_bits(), b.m2()[i].to_bits(), "{what}");
                        }
                    }
                }
                assert!(k == 1 || fallbacks > 20, "K {k}: {fallbacks} fallbacks");
            }
        }
        // The bound: K lim^2 <= i32::MAX < K (lim + 1)^2, and lim <= 32767.
        for k in [1usize, 2, 3, 31, 32, 33, 1000, 65_536] {
            let lim = i64::from(I16Block::new(k, k as u64, 1.0).unwrap().lim);
            let max = i64::from(i32::MAX);
            assert!(k as i64 * lim * lim <= max, "K {k}");
            assert!(
                lim == 32_767 || k as i64 * (lim + 1) * (lim + 1) > max,
                "K {k}"
            );
        }
        assert_eq!(I16Block::new(32, 32, 1.0).unwrap().lim, 8191);
        assert!(I16Block::new(65_537, 65_537, 1.0).is_none());
        // A block exactly at the bound (K = 32, deviations +-8191 about the first frame) takes
        // the integer path and is exact: mean and M2 by hand.
        let lo = -8191i16;
        let mut block = vec![vec![0i16; 3]; 32];
        for (f, frame) in block.iter_mut().enumerate() {
            frame[0] = if f == 0 {
                0
            } else if f % 2 == 0 {
                lo
            } else {
                -lo
            };
            frame[1] = -lo;
            frame[2] = 100;
        }
        let refs: Vec<&[i16]> = block.iter().map(|f| &f[..]).collect();
        let mut p = PixelStats::new(3);
        p.push_frames(&refs).unwrap();
        // Pixel 0: 0, then 16 x +8191 and 15 x -8191: sum 8191, mean 8191/32;
        // M2 = 31 * 8191^2 - 8191^2/32.
        let d = 8191.0f64;
        assert_eq!(p.mean()[0], d / 32.0);
        assert!(rel(p.m2()[0], 31.0 * d * d - d * d / 32.0) < 1e-15);
        assert_eq!((p.mean()[1], p.m2()[1]), (d, 0.0));
        assert_eq!((p.mean()[2], p.m2()[2]), (100.0, 0.0));
    }

    #[test]
    fn reset_with_frames_equals_fresh_state() {
        // A used state reset with a block equals a new state fed the same block, bit for bit;
        // reset with no frames equals a new state.
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let npix = 21;
        let frames: Vec<Vec<u16>> = (0..10)
            .map(|_| (0..npix).map(|_| rng.random_range(0..5000u16)).collect())
            .collect();
        let refs: Vec<&[u16]> = frames.iter().map(|f| &f[..]).collect();
        let mut used = PixelStats::new(npix);
        used.push_frames(&refs).unwrap();
        used.push_frame(&frames[0]).unwrap();
        let mut fresh = PixelStats::new(npix);
        fresh.push_frames(&refs[3..]).unwrap();
        used.reset_with_frames(&refs[3..]).unwrap();
        assert_eq!(used, fresh);
        assert!(used.reset_with_frames(&[&[1u16][..]]).is_err());
        assert_eq!(used, fresh);
        used.reset_with_frames::<u16>(&[]).unwrap();
        assert_eq!(used, PixelStats::new(npix));
    }

    /// The exact integer statistics of `frames` by the definition (i64 sums, one frame at a
    /// time): the reference for [`I16PixelStats`].
    fn exact_truth(npix: usize, frames: &[Vec<i16>]) -> (Vec<i64>, Vec<u64>, Vec<i16>, Vec<i16>) {
        let mut s = vec![0i64; npix];
        let mut q = vec![0u64; npix];
        let mut lo = vec![i16::MAX; npix];
        let mut hi = vec![i16::MIN; npix];
        for f in frames {
            for i in 0..npix {
                let v = i64::from(f[i]);
                s[i] += v;
                q[i] += (v * v) as u64;
                lo[i] = lo[i].min(f[i]);
                hi[i] = hi[i].max(f[i]);
            }
        }
        (s, q, lo, hi)
    }

    /// int16 frames for the exact-kernel tests: a 1500 ADU pedestal with +-40 noise, every
    /// 5th pixel +-8000 (just inside the bound 8191 about the block's first sample only when
    /// both ends are not hit, so some blocks fall back), every 7th the full i16 range (always
    /// falls back), every 11th a 30,000 pedestal (large values), a hot pixel jumping by
    /// 20,000 every 13th frame.
    fn exact_frames(rng: &mut ChaCha8Rng, npix: usize, n: usize) -> Vec<Vec<i16>> {
        (0..n)
            .map(|k| {
                (0..npix)
                    .map(|i| {
                        if i % 7 == 3 {
                            rng.random_range(i16::MIN..=i16::MAX)
                        } else if i % 5 == 1 {
                            (1500 + rng.random_range(-8000..=8000i32)) as i16
                        } else if i % 11 == 2 {
                            30_000 + rng.random_range(-40..=40i16)
                        } else if i == 4 && k % 13 == 0 {
                            21_500 + rng.random_range(-40..=40i16)
                        } else {
                            1500 + rng.random_range(-40..=40i16)
                        }
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn exact_i16_equals_integer_truth_for_every_split_kernel_and_thread_count() {
        // 1,003 pixels (odd remainders for the 16-pixel groups and the tiles), 77 frames of
        // `exact_frames`. The integer state must equal the definition exactly (no tolerance:
        // integer sums are exact) for: frames one by one, `push_frames` in blocks of 1, 2, 3,
        // 31, 32, 33, 77 and mixed sizes, with the portable, SSE2 and AVX2 kernels;
        // `push_frames_par` on pools of 1 and 3 threads with tiles of 1,003, 64, 48 and 7
        // pixels. It also checks that the fallback (block range over the bound) was used.
        let mut rng = ChaCha8Rng::seed_from_u64(20);
        let npix = 1003;
        let frames = exact_frames(&mut rng, npix, 77);
        let refs: Vec<&[i16]> = frames.iter().map(|f| &f[..]).collect();
        let (s, q, lo, hi) = exact_truth(npix, &frames);
        let check = |p: &I16PixelStats, what: &str| {
            assert_eq!(p.n_frames(), 77, "{what}");
            assert_eq!(p.sum(), &s[..], "{what}: sum");
            assert_eq!(p.sum_squares(), &q[..], "{what}: sum of squares");
            assert_eq!(p.min(), Some(&lo[..]), "{what}: min");
            assert_eq!(p.max(), Some(&hi[..]), "{what}: max");
        };
        let mut kernels = vec![ExactKernel::Portable];
        if cfg!(target_arch = "x86_64") {
            kernels.push(ExactKernel::Sse2);
        }
        if use_avx2(true) {
            kernels.push(ExactKernel::Avx2);
        }
        let mut one = I16PixelStats::new(npix);
        for f in &refs {
            one.push_frame(f).unwrap();
        }
        check(&one, "one by one");
        for &kernel in &kernels {
            for sizes in [
                &[1usize][..],
                &[2],
                &[3],
                &[31],
                &[32],
                &[33],
                &[77],
                &[5, 1, 64, 2, 33],
            ] {
                let mut p = I16PixelStats::new(npix);
                for r in block_ranges(refs.len(), sizes) {
                    p.push_frames_with(&refs[r], kernel).unwrap();
                }
                check(&p, &format!("{kernel:?}, blocks {sizes:?}"));
            }
        }
        for threads in [1, 3] {
            let pool = pool(threads);
            for tile in [npix, 64, 48, 7] {
                for &kernel in &kernels {
                    let p = pool.install(|| {
                        let mut p = I16PixelStats::new(npix);
                        p.push_frames_par_with(&refs[..40], kernel, tile).unwrap();
                        p.push_frames_par_with(&refs[40..], kernel, tile).unwrap();
                        p
                    });
                    check(&p, &format!("{threads} threads, tile {tile}, {kernel:?}"));
                }
            }
        }
        let mut p = I16PixelStats::new(npix);
        p.push_frames_par(&refs).unwrap();
        check(&p, "push_frames_par");
        // The fallback was exercised: some block of 32 frames has a pixel with a deviation
        // from the block's first sample beyond the bound.
        let wide = (0..npix).any(|i| {
            let c = i32::from(frames[0][i]);
            frames[..32]
                .iter()
                .any(|f| (i32::from(f[i]) - c).abs() > EXACT_LIM)
        });
        assert!(wide);
    }

    #[test]
    fn exact_i16_merge_edges_and_conversion() {
        // Partials merged in any order equal the single pass exactly; empty partials; shape and
        // length errors leave the state unchanged; the f64 arrays: mean and M2 against the
        // two-pass f64 truth (1e-15 relative on the mean: one rounding of the exact value;
        // M2 against the exact rational (n S2 - S1^2)/n computed in i128: 2 ulp), min/max
        // exactly; an empty state converts to PixelStats::new.
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let npix = 301;
        let frames = exact_frames(&mut rng, npix, 50);
        let refs: Vec<&[i16]> = frames.iter().map(|f| &f[..]).collect();
        let mut single = I16PixelStats::new(npix);
        single.push_frames(&refs).unwrap();
        let part = |r: std::ops::Range<usize>| {
            let mut p = I16PixelStats::new(npix);
            p.push_frames(&refs[r]).unwrap();
            p
        };
        let (a, b, c) = (part(0..7), part(7..40), part(40..50));
        let mut m = I16PixelStats::new(npix);
        for p in [&c, &a, &I16PixelStats::new(npix), &b] {
            m.merge(p).unwrap();
        }
        assert_eq!(m, single);
        let mut m = b.clone();
        m.merge(&c).unwrap();
        m.merge(&a).unwrap();
        assert_eq!(m, single);
        assert_eq!(
            m.merge(&I16PixelStats::new(3)),
            Err(StatsError::ShapeMismatch {
                this: npix,
                other: 3
            })
        );
        assert!(m.push_frames(&[refs[0], &refs[1][..5]]).is_err());
        assert!(m.push_frames_par(&[refs[0], &refs[1][..5]]).is_err());
        assert_eq!(m, single);
        let arrays = single.clone().into_arrays();
        assert_eq!(arrays.frames, 50);
        for i in 0..npix {
            let col: Vec<f64> = frames.iter().map(|f| f64::from(f[i])).collect();
            let n = col.len() as f64;
            let mean = col.iter().sum::<f64>() / n;
            let m2: f64 = col.iter().map(|x| (x - mean) * (x - mean)).sum();
            assert!(rel(arrays.mean[i], mean) <= 1e-15, "pixel {i}");
            assert!(rel(arrays.m2[i], m2) < 1e-12, "pixel {i}");
            let (s, q) = (
                i128::from(single.sum()[i]),
                i128::from(single.sum_squares()[i]),
            );
            let exact = (50 * q - s * s) as f64 / 50.0;
            assert!(rel(arrays.m2[i], exact) <= 4.5e-16, "pixel {i}");
            assert_eq!(arrays.min[i], col.iter().copied().fold(f64::MAX, f64::min));
            assert_eq!(arrays.max[i], col.iter().copied().fold(f64::MIN, f64::max));
        }
        let ps = single.into_pixel_stats();
        assert_eq!((ps.mean(), ps.m2()), (&arrays.mean[..], &arrays.m2[..]));
        assert_eq!(I16PixelStats::new(4).into_pixel_stats(), PixelStats::new(4));
        let e = I16PixelStats::new(2);
        assert_eq!((e.min(), e.max()), (None, None));
    }

    #[test]
    fn exact_finish_fast_path_equals_wide_path() {
        // The vectorised f64 finish against the u128 reference `exact_mean_m2`, bit for bit,
        // on states built directly: small sums (fast path), sums of squares at and beyond the
        // fast path's 2^52 limits (wide path), negative sums, the i16 extremes over 2^34
        // frames, and a constant pixel (M2 exactly 0). 21 pixels: two groups of 8 + 5 left.
        let n = 3_000_000u64;
        let cases: Vec<(i64, u64)> = vec![
            (0, 0),
            (-32_768 * 3_000_000, 32_768 * 32_768 * 3_000_000),
            (32_767 * 3_000_000, 32_767 * 32_767 * 3_000_000),
            (-5 * 3_000_000 + 17, 25 * 3_000_000 + 1000),
            (
                1_500 * 3_000_000 + 12_345,
                1_500 * 1_500 * 3_000_000 + 9_999_999,
            ),
            (1, 1),
            ((1 << 26) / 3, (1u64 << 52) / n + 5),
            ((1 << 26) / 3, (1u64 << 52) / n - 5),
        ];
        let mut s: Vec<i64> = (0..21).map(|i| cases[i % cases.len()].0).collect();
        let mut q: Vec<u64> = (0..21).map(|i| cases[i % cases.len()].1).collect();
        let want: Vec<(f64, f64)> = s
            .iter()
            .zip(&q)
            .map(|(&a, &b)| exact_mean_m2(n, a, b))
            .collect();
        exact_finish(n, &mut s, &mut q);
        for i in 0..21 {
            assert_eq!(s[i] as u64, want[i].0.to_bits(), "mean {i}");
            assert_eq!(q[i], want[i].1.to_bits(), "M2 {i}");
        }
        // Constant pixel: M2 exactly 0; mean exact.
        assert_eq!(exact_mean_m2(n, 7 * n as i64, 49 * n), (7.0, 0.0));
        // Large values, full scale: the exact numerator n q - s^2 (here 3e6 * 3e6 * 32768^2 ...)
        // over 2^64 goes through the u128 path and stays exact: one pixel at -32768 and
        // 32767 alternately over n frames: mean -0.5, M2 = n * 32767.5^2.
        let half = n / 2;
        let (sa, qa) = (
            -(half as i64),
            half * (32_768 * 32_768) + half * (32_767 * 32_767),
        );
        let (mean, m2) = exact_mean_m2(n, sa, qa);
        assert_eq!(mean, -0.5);
        assert!(rel(m2, n as f64 * 32_767.5f64 * 32_767.5) < 1e-15);
    }
}
