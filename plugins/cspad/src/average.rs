//! Averaging a run in one streamed, parallel pass (as `cxi.mpi_average`): per-pixel mean,
//! population standard deviation, maximum and minimum.
//!
//! `cxi.mpi_average` accumulates `sum` and `sumsq` and takes `sqrt(sumsq/N - mean^2)`, which
//! loses every digit on large pedestals; here each chunk of frames is reduced in one blocked
//! update ([`PixelStats::push_frames`]: sums of deviations from a per-pixel shift, merged with
//! Chan's formula) and chunks merge in order with Chan's formula, so the result is the same
//! population standard deviation without the cancellation, identical for any thread count.
//! The per-chunk partials (73 MB each for a CSPad) are recycled after their merge instead of
//! being allocated afresh for every chunk.

use caliper_core::error::RunError;
use caliper_core::pipeline::Analysis;
use caliper_core::stats::PixelStats;
use std::sync::Mutex;

use crate::io::frames::{Frame, FrameData};

/// The averaging step over frames of `n_pixels` pixels.
#[derive(Debug)]
pub struct Average {
    /// Pixels per frame.
    pub n_pixels: usize,
    /// Partials already merged, kept for reuse by the next chunks (their contents are fully
    /// overwritten by `PixelStats::reset_with_frames`, so reuse cannot change a result).
    spare: Mutex<Vec<PixelStats>>,
}

/// At most this many frames per blocked update: 32 frames of a CSPad (plus the four state
/// arrays) keep the update's streams within the CPU's prefetchers and first-level TLB; a
/// longer chunk is reduced in several blocks into the same partial.
const MAX_BLOCK: usize = 32;

/// At most this many merged partials are kept for reuse (run_pass folds 2 x threads chunks at
/// a time, so a handful suffices).
const MAX_SPARE: usize = 8;

impl Clone for Average {
    fn clone(&self) -> Self {
        Self::new(self.n_pixels)
    }
}

/// Partial state: the statistics and whether every frame was integer.
#[derive(Debug, Clone)]
pub struct AveragePartial {
    stats: Option<PixelStats>,
    integer: bool,
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
            spare: Mutex::new(Vec::new()),
        }
    }

    /// A recycled partial's statistics, if any (a poisoned lock just means none).
    fn take_spare(&self) -> Option<PixelStats> {
        self.spare.lock().ok()?.pop()
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

/// Starts (`fresh`: overwriting whatever a recycled partial held) or continues a partial with
/// a block of frames.
fn push<T: caliper_core::stats::Sample>(
    s: &mut PixelStats,
    fresh: bool,
    frames: &[&[T]],
) -> Result<(), caliper_core::stats::StatsError> {
    if fresh {
        s.reset_with_frames(frames)
    } else {
        s.push_frames(frames)
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
            .get_or_insert_with(|| PixelStats::new(self.n_pixels));
        let r = match &e.data {
            FrameData::I16(v) => s.push_frame(v),
            FrameData::I32(v) => s.push_frame(v),
            FrameData::F32(v) => {
                p.integer = false;
                s.push_frame(v)
            }
            FrameData::F64(v) => {
                p.integer = false;
                s.push_frame(v)
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

    /// The fast path: every frame of the chunk in one blocked update
    /// ([`PixelStats::push_frames`]), so the 32-byte-per-pixel state is read and written once
    /// per chunk instead of once per frame. Consecutive frames of the same sample type form
    /// one block (a run mixing int and float inputs gives several; blocks hold at most
    /// `MAX_BLOCK` = 32 frames). The result depends only on
    /// the chunk's frames, so 1 and N threads stay bit-identical; it equals the frame-by-frame
    /// [`fold`](Self::fold) up to rounding (test `fold_chunk_equals_frame_by_frame`).
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
                .map_or(events.len(), |n| start + n)
                .min(start + MAX_BLOCK);
            let block = &events[start..end];
            // The chunk's first block starts a partial: reuse a merged one if there is one.
            let fresh = p.stats.is_none();
            let s = p.stats.get_or_insert_with(|| {
                self.take_spare()
                    .unwrap_or_else(|| PixelStats::new(self.n_pixels))
            });
            // Shapes were checked above, so these cannot fail on length; map anyway.
            let r = match &block[0].data {
                FrameData::I16(_) => push(
                    s,
                    fresh,
                    &slices(block, |d| match d {
                        FrameData::I16(v) => Some(&v[..]),
                        _ => None,
                    }),
                ),
                FrameData::I32(_) => push(
                    s,
                    fresh,
                    &slices(block, |d| match d {
                        FrameData::I32(v) => Some(&v[..]),
                        _ => None,
                    }),
                ),
                FrameData::F32(_) => {
                    p.integer = false;
                    push(
                        s,
                        fresh,
                        &slices(block, |d| match d {
                            FrameData::F32(v) => Some(&v[..]),
                            _ => None,
                        }),
                    )
                }
                FrameData::F64(_) => {
                    p.integer = false;
                    push(
                        s,
                        fresh,
                        &slices(block, |d| match d {
                            FrameData::F64(v) => Some(&v[..]),
                            _ => None,
                        }),
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

    fn merge(&self, acc: &mut AveragePartial, next: AveragePartial) {
        acc.integer &= next.integer;
        match (&mut acc.stats, next.stats) {
            (_, None) => {}
            (None, Some(n)) => acc.stats = Some(n),
            // Same pixel count by construction (checked in fold), so merge cannot fail.
            (Some(a), Some(n)) => {
                let _ = a.merge(&n);
                if let Ok(mut spare) = self.spare.lock()
                    && spare.len() < MAX_SPARE
                {
                    spare.push(n);
                }
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
        Ok(Averages {
            frames: s.n_frames(),
            mean: s.mean().to_vec(),
            std: s.std_population(),
            max: s.max().to_vec(),
            min: s.min().to_vec(),
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
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut src = IterSource::new(f.iter().cloned().map(Ok));
            let opts = PassOptions {
                chunk_events: 16,
                ..PassOptions::default()
            };
            run_pass(&mut src, &Average::new(n), &opts, &NoProgress)
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
        let pass = |threads: usize, slow: bool| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut src = IterSource::new(f.iter().cloned().map(Ok));
                let opts = PassOptions {
                    chunk_events: 32,
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
        };
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
        // Recycled partials: a second pass with the same step (which now starts every chunk
        // from a reused partial) gives the same bits.
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
        assert!(!a.spare.lock().unwrap().is_empty(), "partials recycled");
        let second = again(&a);
        assert_eq!(bits(&first.mean), bits(&fast.mean));
        assert_eq!(bits(&second.mean), bits(&fast.mean));
        assert_eq!(bits(&second.std), bits(&fast.std));
        assert_eq!((&second.max, &second.min), (&fast.max, &fast.min));
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
