//! Averaging a run in one streamed, parallel pass (as `cxi.mpi_average`): per-pixel mean,
//! population standard deviation, maximum and minimum.
//!
//! `cxi.mpi_average` accumulates `sum` and `sumsq` in float64 and takes
//! `sqrt(sumsq/N - mean^2)`, which loses every digit on large pedestals. Here int16 frames
//! (CSPad's raw type) are accumulated exactly, as integers ([`I16PixelStats`]: per pixel the
//! `i64` sum, the `u64` sum of squares, `i16` min and max; 20 bytes of state per pixel), and
//! the mean and M2 are formed once at the end from the exact integers (`n S2 - S1^2` is an
//! exact integer, so there is no cancellation however large the pedestal). Frames of any
//! other sample type go into the `f64` running state ([`PixelStats`]: per-pixel sums of
//! deviations from the running mean merged with Chan's formula); a run that starts with
//! int16 frames and then meets another type converts its integer state once (mean rounded
//! once, M2 twice). Each chunk of frames is folded straight into the run's one state
//! (`run_pass`'s in-place mode, [`Analysis::fold_in_place`]) in blocked updates with pixel
//! tiles spread over the threads, while the next chunk is read; no per-chunk partial is
//! written and merged. A pixel's arithmetic does not depend on its tile, so the result is
//! identical for any thread count; for int16 runs it does not depend on the chunking either.

use caliper_core::error::RunError;
use caliper_core::pipeline::Analysis;
use caliper_core::stats::{I16PixelStats, PixelStats};
use rayon::prelude::*;

use crate::io::frames::{Frame, FrameData};

/// The averaging step over frames of `n_pixels` pixels.
#[derive(Debug, Clone)]
pub struct Average {
    /// Pixels per frame.
    pub n_pixels: usize,
    /// Accumulate int16 frames in the `f64` state too (see [`Average::with_f64_state`]).
    f64_state: bool,
}

/// At most this many frames per blocked update of the `f64` state: 32 frame streams (plus the
/// four state arrays) stay within the CPU's prefetchers and first-level TLB; a longer chunk is
/// reduced in several blocks, one after the other on each pixel tile while the tile's state is
/// in cache ([`PixelStats::push_frames_par`]). The exact int16 state uses blocks of 32 too.
const MAX_BLOCK: usize = 32;

/// Partial state: the statistics and whether every frame was integer.
#[derive(Debug, Clone)]
pub struct AveragePartial {
    stats: Option<Acc>,
    integer: bool,
}

/// The running statistics: exact integer sums while every frame so far is `i16` (CSPad's raw
/// type; 20 bytes of state per pixel, independent of how the frames are chunked), else the
/// `f64` running mean/M2 (32 bytes per pixel), into which the integer state is converted when
/// the first frame of another sample type arrives.
#[derive(Debug, Clone)]
enum Acc {
    /// Only `i16` frames so far.
    Exact(I16PixelStats),
    /// At least one frame of another type.
    Float(PixelStats),
}

impl Acc {
    /// An empty state for a run whose first frame is `data` (`f64`: always the `f64` state).
    fn for_frame(data: &FrameData, n_pixels: usize, f64: bool) -> Self {
        match data {
            FrameData::I16(_) if !f64 => Acc::Exact(I16PixelStats::new(n_pixels)),
            _ => Acc::Float(PixelStats::new(n_pixels)),
        }
    }

    /// The `f64` state, converting the integer one (mean rounded once, M2 twice, see
    /// [`I16PixelStats`]) the first time it is needed.
    fn float(&mut self) -> &mut PixelStats {
        if let Acc::Exact(e) = self {
            let e = std::mem::replace(e, I16PixelStats::new(0));
            *self = Acc::Float(e.into_pixel_stats());
        }
        match self {
            Acc::Float(f) => f,
            Acc::Exact(_) => unreachable!("converted above"),
        }
    }

    /// The state as `f64` statistics.
    fn into_float(self) -> PixelStats {
        match self {
            Acc::Exact(e) => e.into_pixel_stats(),
            Acc::Float(f) => f,
        }
    }
}

/// The averages of a run.
#[derive(Debug, Clone)]
pub struct Averages {
    /// Frames averaged.
    pub frames: u64,
    /// Mean per pixel.
    pub mean: Vec<f64>,
    /// Population standard deviation per pixel (`sqrt(M2/N)`, as `cxi.mpi_average`'s stddev).
    pub std: Vec<f64>,
    /// Maximum per pixel.
    pub max: Vec<f64>,
    /// Minimum per pixel.
    pub min: Vec<f64>,
    /// True when every frame held integers (max/min are then integers).
    pub integer: bool,
}

impl Average {
    /// The averaging step over frames of `n_pixels` pixels.
    pub fn new(n_pixels: usize) -> Self {
        Self {
            n_pixels,
            f64_state: false,
        }
    }

    /// The same step with every frame, int16 included, accumulated in the `f64` state
    /// ([`PixelStats`], the path int16 runs took before the exact integer state): for A/B
    /// benchmarks and cross-checks. Results agree with [`Average::new`]'s within rounding.
    pub fn with_f64_state(n_pixels: usize) -> Self {
        Self {
            n_pixels,
            f64_state: true,
        }
    }

    /// A frame with the wrong number of pixels is an input error naming file and frame.
    fn check_shape(&self, e: &Frame, index: u64) -> Result<(), RunError> {
        if e.data.len() == self.n_pixels {
            return Ok(());
        }
        Err(RunError::Read(caliper_core::ReadError::unexpected(
            &e.file,
            caliper_core::Position::event(e.index_in_file),
            format!(
                "frame {} (run frame {index}) has {} pixels, expected {}",
                e.index_in_file,
                e.data.len(),
                self.n_pixels
            ),
        )))
    }
}

/// The pixel slices of a block of frames of one sample type (`pick` returns `None` for no
/// frame of the block, which holds only that type).
fn slices<'a, T>(
    block: &'a [Frame],
    pick: impl Fn(&'a FrameData) -> Option<&'a [T]>,
) -> Vec<&'a [T]> {
    block.iter().filter_map(|f| pick(&f.data)).collect()
}

impl Analysis<Frame> for Average {
    type Partial = AveragePartial;
    type Output = Averages;

    fn init(&self) -> AveragePartial {
        // Allocated lazily on the first frame so that an empty chunk costs nothing.
        AveragePartial {
            stats: None,
            integer: true,
        }
    }

    fn fold(&self, p: &mut AveragePartial, e: &Frame, index: u64) -> Result<(), RunError> {
        self.check_shape(e, index)?;
        let s = p
            .stats
            .get_or_insert_with(|| Acc::for_frame(&e.data, self.n_pixels, self.f64_state));
        let r = match &e.data {
            FrameData::I16(v) => match s {
                Acc::Exact(x) => x.push_frame(v),
                Acc::Float(f) => f.push_frame(v),
            },
            FrameData::I32(v) => s.float().push_frame(v),
            FrameData::F32(v) => {
                p.integer = false;
                s.float().push_frame(v)
            }
            FrameData::F64(v) => {
                p.integer = false;
                s.float().push_frame(v)
            }
        };
        r.map_err(|err| {
            RunError::failed(format!(
                "{}: frame {}: {err}",
                e.file.display(),
                e.index_in_file
            ))
        })
    }

    /// The fast path: the chunk's frames in blocked updates of the accumulated state
    /// ([`I16PixelStats::push_frames_par`] for int16 frames, else
    /// [`PixelStats::push_frames_par`]; pixel tiles over the threads), so the state (20 or 32
    /// bytes per pixel) goes through memory once per chunk instead of once per frame.
    /// Consecutive frames of the same sample type go in one call (a run mixing int and float
    /// inputs gives several), reduced in blocks of at most 32 frames. In the in-place
    /// mode [`run_pass`](caliper_core::pipeline::run_pass) calls this on the run's one state,
    /// chunk after chunk in order; the per-pixel result does not depend on the tiling, so 1
    /// and N threads stay bit-identical. It equals the frame-by-frame [`fold`](Self::fold)
    /// exactly for int16 runs and up to rounding otherwise (tests
    /// `int16_averages_exact_for_1_and_2_threads_and_any_chunking`,
    /// `fold_chunk_equals_frame_by_frame`).
    fn fold_chunk(
        &self,
        p: &mut AveragePartial,
        events: &[Frame],
        first_index: u64,
    ) -> Result<(), RunError> {
        for (k, e) in events.iter().enumerate() {
            self.check_shape(e, first_index + k as u64)?;
        }
        let mut start = 0;
        while start < events.len() {
            let kind = std::mem::discriminant(&events[start].data);
            let end = events[start..]
                .iter()
                .position(|e| std::mem::discriminant(&e.data) != kind)
                .map_or(events.len(), |n| start + n);
            let block = &events[start..end];
            let s = p.stats.get_or_insert_with(|| {
                Acc::for_frame(&block[0].data, self.n_pixels, self.f64_state)
            });
            // Shapes were checked above, so these cannot fail on length; map anyway.
            let r = match &block[0].data {
                FrameData::I16(_) => {
                    let frames = slices(block, |d| match d {
                        FrameData::I16(v) => Some(&v[..]),
                        _ => None,
                    });
                    match s {
                        Acc::Exact(x) => x.push_frames_par(&frames),
                        Acc::Float(f) => f.push_frames_par(&frames, MAX_BLOCK),
                    }
                }
                FrameData::I32(_) => s.float().push_frames_par(
                    &slices(block, |d| match d {
                        FrameData::I32(v) => Some(&v[..]),
                        _ => None,
                    }),
                    MAX_BLOCK,
                ),
                FrameData::F32(_) => {
                    p.integer = false;
                    s.float().push_frames_par(
                        &slices(block, |d| match d {
                            FrameData::F32(v) => Some(&v[..]),
                            _ => None,
                        }),
                        MAX_BLOCK,
                    )
                }
                FrameData::F64(_) => {
                    p.integer = false;
                    s.float().push_frames_par(
                        &slices(block, |d| match d {
                            FrameData::F64(v) => Some(&v[..]),
                            _ => None,
                        }),
                        MAX_BLOCK,
                    )
                }
            };
            r.map_err(|err| {
                RunError::failed(format!(
                    "{}: frames {}..: {err}",
                    block[0].file.display(),
                    block[0].index_in_file
                ))
            })?;
            start = end;
        }
        Ok(())
    }

    /// Chunks fold straight into the run's state (no per-chunk partial, no merge).
    fn fold_in_place(&self) -> bool {
        true
    }

    /// Only used by analyses that wrap this one in the default (partial + merge) mode, e.g.
    /// the frame-by-frame reference in the tests.
    fn merge(&self, acc: &mut AveragePartial, next: AveragePartial) {
        acc.integer &= next.integer;
        match (&mut acc.stats, next.stats) {
            (_, None) => {}
            (None, Some(n)) => acc.stats = Some(n),
            // Same pixel count by construction (checked in fold), so merge cannot fail.
            // Two integer states merge exactly; otherwise both go to f64.
            (Some(Acc::Exact(a)), Some(Acc::Exact(n))) => {
                let _ = a.merge(&n);
            }
            (Some(a), Some(n)) => {
                let _ = a.float().merge(&n.into_float());
            }
        }
    }

    fn finish(&self, acc: AveragePartial) -> Result<Averages, RunError> {
        let Some(s) = acc.stats else {
            // No frame at all: the caller says which inputs (and why, e.g. truncated).
            return Ok(Averages {
                frames: 0,
                mean: Vec::new(),
                std: Vec::new(),
                max: Vec::new(),
                min: Vec::new(),
                integer: acc.integer,
            });
        };
        // Move the arrays out and turn M2 into the standard deviation in place: no copy of
        // the 73 MB state. Same arithmetic as `PixelStats::std_population`.
        let mut a = match s {
            Acc::Exact(e) => e.into_arrays(),
            Acc::Float(f) => f.into_arrays(),
        };
        if a.frames == 0 {
            a.m2.fill(f64::NAN);
        } else {
            let inv = 1.0 / a.frames as f64;
            a.m2.par_iter_mut().for_each(|v| *v = (*v * inv).sqrt());
        }
        Ok(Averages {
            frames: a.frames,
            mean: a.mean,
            std: a.m2,
            max: a.max,
            min: a.min,
            integer: acc.integer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caliper_core::instrument::NoProgress;
    use caliper_core::pipeline::{IterSource, PassOptions, run_pass};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn frames(n_frames: usize, n_pixels: usize) -> Vec<Frame> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let ped: Vec<f64> = (0..n_pixels)
            .map(|_| rng.random_range(1.0e4..1.2e4))
            .collect();
        (0..n_frames)
            .map(|k| {
                let d: Vec<f32> = ped
                    .iter()
                    .map(|&p| (p + rng.random_range(-5.0..5.0) + (k % 3) as f64 * 0.25) as f32)
                    .collect();
                Frame {
                    file: "sim".into(),
                    index_in_file: k as u64,
                    data: FrameData::F32(d),
                }
            })
            .collect()
    }

    fn run(threads: usize, f: &[Frame], n: usize) -> Averages {
        run_with(threads, f, n, 16, false)
    }

    /// One averaging pass over `f` on `threads` threads in chunks of `chunk` frames; `slow`
    /// folds frame by frame through the default `fold_chunk` and the merges.
    fn run_with(threads: usize, f: &[Frame], n: usize, chunk: usize, slow: bool) -> Averages {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut src = IterSource::new(f.iter().cloned().map(Ok));
            let opts = PassOptions {
                chunk_events: chunk,
                ..PassOptions::default()
            };
            let a = Average::new(n);
            if slow {
                run_pass(&mut src, &FrameByFrame(a), &opts, &NoProgress)
            } else {
                run_pass(&mut src, &a, &opts, &NoProgress)
            }
            .unwrap()
            .output
        })
    }

    #[test]
    fn averages_equal_two_pass_f64_for_1_and_2_threads() {
        // 1,000 frames of 2,000 pixels on a 1e4 ADU pedestal with +-5 ADU noise. Reference:
        // two-pass float64 (mean, then sum of squared deviations). Tolerance 1e-9 relative
        // (issue): Welford/Chan and two-pass differ only by rounding (~1e-13 here).
        let n = 2000;
        let f = frames(1000, n);
        let one = run(1, &f, n);
        let two = run(2, &f, n);
        assert_eq!(one.frames, 1000);
        let mut worst_mean: f64 = 0.0;
        let mut worst_std: f64 = 0.0;
        for i in 0..n {
            let xs: Vec<f64> = f
                .iter()
                .map(|fr| match &fr.data {
                    FrameData::F32(v) => v[i] as f64,
                    _ => unreachable!(),
                })
                .collect();
            let m = xs.iter().sum::<f64>() / xs.len() as f64;
            let s = (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64).sqrt();
            let mx = xs.iter().copied().fold(f64::MIN, f64::max);
            let mn = xs.iter().copied().fold(f64::MAX, f64::min);
            worst_mean = worst_mean.max(((one.mean[i] - m) / m).abs());
            worst_std = worst_std.max(((one.std[i] - s) / s).abs());
            assert_eq!((one.max[i], one.min[i]), (mx, mn));
        }
        eprintln!("worst relative deviation: mean {worst_mean:.2e}, std {worst_std:.2e}");
        assert!(worst_mean < 1e-9 && worst_std < 1e-9);
        // Identical bits for 1 and 2 threads.
        assert!(
            one.mean
                .iter()
                .zip(&two.mean)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
        assert!(
            one.std
                .iter()
                .zip(&two.std)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
    }

    #[test]
    fn int16_averages_exact_for_1_and_2_threads_and_any_chunking() {
        // 1,000 int16 frames of 2,000 pixels (the exact integer state): pedestals 1,000-31,000
        // ADU with +-20 ADU noise, every 9th pixel +-9,000 ADU (beyond the kernel's i32
        // bound, so those blocks are summed directly in i64), a hot pixel jumping to 32,000
        // every 17th frame. Reference: two-pass float64 (mean, then the sum of squared
        // deviations) of the same values. Tolerance 1e-9 relative (issue); the exact state
        // rounds the mean once and M2 twice, so ~1e-16 is expected. Bits identical for 1
        // and 2 threads and for 32-, 7- and 1000-frame chunks (integer sums do not depend on
        // the split), and equal to the frame-by-frame partial + merge path.
        let n = 2000;
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let ped: Vec<i32> = (0..n).map(|_| rng.random_range(1_000..31_000)).collect();
        let f: Vec<Frame> = (0..1000)
            .map(|k| {
                let v: Vec<i16> = ped
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| {
                        if i == 3 && k % 17 == 0 {
                            32_000
                        } else if i % 9 == 0 {
                            (16_000 + rng.random_range(-9_000..=9_000)) as i16
                        } else {
                            (p + rng.random_range(-20..=20)) as i16
                        }
                    })
                    .collect();
                Frame {
                    file: "sim".into(),
                    index_in_file: k,
                    data: FrameData::I16(v),
                }
            })
            .collect();
        let one = run_with(1, &f, n, 32, false);
        let two = run_with(2, &f, n, 32, false);
        assert_eq!(one.frames, 1000);
        assert!(one.integer);
        let (mut wm, mut ws): (f64, f64) = (0.0, 0.0);
        for i in 0..n {
            let xs: Vec<f64> = f
                .iter()
                .map(|fr| match &fr.data {
                    FrameData::I16(v) => f64::from(v[i]),
                    _ => unreachable!(),
                })
                .collect();
            let m = xs.iter().sum::<f64>() / xs.len() as f64;
            let s = (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64).sqrt();
            wm = wm.max(((one.mean[i] - m) / m).abs());
            ws = ws.max(((one.std[i] - s) / s).abs());
            let mx = xs.iter().copied().fold(f64::MIN, f64::max);
            let mn = xs.iter().copied().fold(f64::MAX, f64::min);
            assert_eq!((one.max[i], one.min[i]), (mx, mn), "pixel {i}");
        }
        eprintln!("int16, worst relative deviation: mean {wm:.2e}, std {ws:.2e}");
        assert!(wm < 1e-9 && ws < 1e-9, "mean {wm:.1e}, std {ws:.1e}");
        let bits = |a: &Averages| {
            [&a.mean, &a.std, &a.max, &a.min]
                .iter()
                .flat_map(|v| v.iter().map(|x| x.to_bits()))
                .collect::<Vec<_>>()
        };
        let want = bits(&one);
        assert_eq!(bits(&two), want, "1 vs 2 threads");
        for chunk in [7, 1000] {
            assert_eq!(
                bits(&run_with(2, &f, n, chunk, false)),
                want,
                "chunk {chunk}"
            );
        }
        assert_eq!(bits(&run_with(2, &f, n, 100, true)), want, "frame by frame");
        // The f64 state on the same frames (the previous path): within the bounds of
        // `fold_chunk_equals_frame_by_frame` (1e-14 mean, 1e-12 std), max/min exactly.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let flt = pool.install(|| {
            let mut src = IterSource::new(f.iter().cloned().map(Ok));
            let opts = PassOptions {
                chunk_events: 32,
                ..PassOptions::default()
            };
            run_pass(&mut src, &Average::with_f64_state(n), &opts, &NoProgress)
                .unwrap()
                .output
        });
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
        for i in 0..n {
            assert!(rel(flt.mean[i], one.mean[i]) < 1e-14, "pixel {i}");
            assert!(rel(flt.std[i], one.std[i]) < 1e-12, "pixel {i}");
        }
        assert_eq!((&flt.max, &flt.min), (&one.max, &one.min));
    }

    /// The event-by-event path: everything as [`Average`] except the default `fold_chunk`.
    struct FrameByFrame(Average);
    impl Analysis<Frame> for FrameByFrame {
        type Partial = AveragePartial;
        type Output = Averages;
        fn init(&self) -> AveragePartial {
            self.0.init()
        }
        fn fold(&self, p: &mut AveragePartial, e: &Frame, i: u64) -> Result<(), RunError> {
            self.0.fold(p, e, i)
        }
        fn merge(&self, acc: &mut AveragePartial, next: AveragePartial) {
            self.0.merge(acc, next)
        }
        fn finish(&self, acc: AveragePartial) -> Result<Averages, RunError> {
            self.0.finish(acc)
        }
    }

    #[test]
    fn fold_chunk_equals_frame_by_frame() {
        // 150 int16 frames of 1,001 pixels (250 groups of 4 + 1) on a 1,200 ADU pedestal with
        // +-30 ADU noise, a hot pixel jumping by 8,000 ADU every 13th frame, and three float32
        // frames in the middle (a chunk mixing sample types is split into blocks), in 32-frame
        // chunks (the last one 22 frames). The blocked fast path and the frame-by-frame Welford
        // path are both accurate to a few ulp here, so they must agree to 1e-14 relative on the
        // mean and 1e-12 on the standard deviation (the core test's bounds), max/min exactly,
        // and the fast path must give identical bits for 1 and 2 threads.
        let n = 1001;
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let f: Vec<Frame> = (0..150)
            .map(|k| {
                let v: Vec<i16> = (0..n)
                    .map(|i| {
                        let hot = if i == 7 && k % 13 == 0 { 8000 } else { 0 };
                        1200 + rng.random_range(-30..=30i16) + hot
                    })
                    .collect();
                let data = if (70..73).contains(&k) {
                    FrameData::F32(v.iter().map(|&x| f32::from(x) + 0.5).collect())
                } else {
                    FrameData::I16(v)
                };
                Frame {
                    file: "sim".into(),
                    index_in_file: k as u64,
                    data,
                }
            })
            .collect();
        let pass = |threads: usize, slow: bool| run_with(threads, &f, n, 32, slow);
        let fast = pass(1, false);
        let fast2 = pass(2, false);
        let slow = pass(1, true);
        assert_eq!(fast.frames, 150);
        assert!(!fast.integer && !slow.integer);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&fast.mean), bits(&fast2.mean));
        assert_eq!(bits(&fast.std), bits(&fast2.std));
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
        let (mut wm, mut ws): (f64, f64) = (0.0, 0.0);
        for i in 0..n {
            wm = wm.max(rel(fast.mean[i], slow.mean[i]));
            ws = ws.max(rel(fast.std[i], slow.std[i]));
        }
        eprintln!("fast vs frame-by-frame: mean {wm:.1e}, std {ws:.1e}");
        assert!(wm < 1e-14 && ws < 1e-12, "mean {wm:.1e}, std {ws:.1e}");
        assert_eq!(fast.max, slow.max);
        assert_eq!(fast.min, slow.min);
        // The same step run twice gives the same bits (no state kept between passes).
        let a = Average::new(n);
        let again = |a: &Average| {
            let mut src = IterSource::new(f.iter().cloned().map(Ok));
            let opts = PassOptions {
                chunk_events: 32,
                ..PassOptions::default()
            };
            run_pass(&mut src, a, &opts, &NoProgress).unwrap().output
        };
        let first = again(&a);
        let second = again(&a);
        assert_eq!(bits(&first.mean), bits(&fast.mean));
        assert_eq!(bits(&second.mean), bits(&fast.mean));
        assert_eq!(bits(&second.std), bits(&fast.std));
        assert_eq!((&second.max, &second.min), (&fast.max, &fast.min));
    }

    #[test]
    fn pixel_tiles_identical_for_1_and_2_threads() {
        // 50,001 int16 pixels (seven 8,192-pixel tiles of the parallel update, the last one partial
        // and with a remainder below every vector width), 70 frames in 32-frame chunks: the
        // in-place pass gives identical bits for 1 and 2 threads, agrees with the
        // frame-by-frame Welford path to 1e-14 relative on the mean and 1e-12 on the std (as
        // `fold_chunk_equals_frame_by_frame`), max/min exactly.
        let n = 50_001;
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let f: Vec<Frame> = (0..70)
            .map(|k| Frame {
                file: "sim".into(),
                index_in_file: k,
                data: FrameData::I16(
                    (0..n)
                        .map(|_| 1500 + rng.random_range(-40..=40i16))
                        .collect(),
                ),
            })
            .collect();
        let pass = |threads: usize, slow: bool| run_with(threads, &f, n, 32, slow);
        let one = pass(1, false);
        let two = pass(2, false);
        let slow = pass(2, true);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(one.frames, 70);
        assert!(one.integer);
        assert_eq!(bits(&one.mean), bits(&two.mean));
        assert_eq!(bits(&one.std), bits(&two.std));
        assert_eq!((&one.max, &one.min), (&two.max, &two.min));
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
        for i in 0..n {
            assert!(rel(one.mean[i], slow.mean[i]) < 1e-14, "pixel {i}");
            assert!(rel(one.std[i], slow.std[i]) < 1e-12, "pixel {i}");
        }
        assert_eq!((&one.max, &one.min), (&slow.max, &slow.min));
    }

    #[test]
    fn wrong_shape_names_file_and_frame() {
        let mut f = frames(5, 100);
        f[3] = Frame {
            file: "run7.h5".into(),
            index_in_file: 3,
            data: FrameData::I32(vec![0; 99]),
        };
        let mut src = IterSource::new(f.into_iter().map(Ok));
        let e = run_pass(
            &mut src,
            &Average::new(100),
            &PassOptions::default(),
            &NoProgress,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("run7.h5: event 3")
                && e.to_string().contains("99 pixels, expected 100"),
            "{e}"
        );
    }
}
