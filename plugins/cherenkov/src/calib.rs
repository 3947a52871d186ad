//! Calibration R0 → R1 → DL1 as ctapipe's `CameraCalibrator` with the sim_telarray source
//! (`ctapipe/io/simteleventsource.py::apply_simtel_r1_calibration`,
//! `ctapipe/calib/camera/gainselection.py::ThresholdGainSelector`,
//! `ctapipe/image/extractor.py`, `ctapipe/image/invalid_pixels.py::NeighborAverage`).
//!
//! Arithmetic follows ctapipe's dtypes: R1 waveforms are float32
//! (`(uint16 − float32 pedestal) · float32 dc_to_pe`), window sums accumulate in float64 and are
//! stored as float32, the peak time is stored as float32 before and after the division by the
//! sampling rate, and the integration correction multiplies in float64 and casts back to float32.

use serde::{Deserialize, Serialize};

use crate::cleaning::Tailcuts;
use crate::geometry::CameraGeometry;
use crate::io::simtel::{TelCalibration, TelescopeDescription, TelescopeEvent};
use crate::numpy::np_sum;

/// The charge extractors (ctapipe `ImageExtractor` subclasses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExtractorKind {
    /// Window around the peak of the summed neighbour waveforms (ctapipe default).
    NeighborPeakWindowSum,
    /// Window around each pixel's own peak.
    LocalPeakWindowSum,
    /// Window at a fixed sample.
    FixedWindowSum,
    /// Window around the peak of the camera-averaged waveform.
    GlobalPeakWindowSum,
    /// The whole waveform.
    FullWaveformSum,
}

impl caliper_core::ConfigDocs for ExtractorKind {}

/// Extractor settings (ctapipe traitlets, with their defaults per extractor applied by
/// [`ExtractorSettings::for_kind`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExtractorSettings {
    /// Which extractor.
    pub kind: ExtractorKind,
    /// Window width \[samples\].
    pub window_width: usize,
    /// Window start before the peak \[samples\].
    pub window_shift: i64,
    /// Weight of the pixel's own waveform in the neighbour sum.
    pub local_weight: i64,
    /// Fixed peak index (FixedWindowSum).
    pub peak_index: i64,
    /// Apply the integration correction from the reference pulse.
    pub apply_integration_correction: bool,
}

impl ExtractorSettings {
    /// ctapipe's defaults for one extractor.
    pub fn for_kind(kind: ExtractorKind) -> Self {
        let (w, s) = match kind {
            ExtractorKind::FixedWindowSum => (7, 0),
            _ => (7, 3),
        };
        Self {
            kind,
            window_width: w,
            window_shift: s,
            local_weight: 0,
            peak_index: 0,
            apply_integration_correction: true,
        }
    }
}

/// Per-telescope constants of the calibration (computed once per telescope).
#[derive(Debug, Clone, PartialEq)]
pub struct TelReadout {
    /// Samples per waveform.
    pub n_samples: usize,
    /// Sampling rate \[GHz\] = 1 / time_slice (float64, as ctapipe's `CameraReadout`).
    pub sampling_rate_ghz: f64,
    /// Integration correction per gain.
    pub correction: Vec<f64>,
    /// HV-disabled pixels (ctapipe marks them broken in every gain).
    pub broken: Vec<bool>,
    /// Whether any pixel is broken.
    pub any_broken: bool,
    /// The extractor.
    pub extractor: ExtractorSettings,
    /// Gain-selection threshold on high-gain R0 samples \[ADC\].
    pub gain_threshold: f32,
}

impl TelReadout {
    /// The integration correction of gain `g` (1 for a gain the readout has none for).
    pub fn gain_correction(&self, g: usize) -> f64 {
        self.correction.get(g).copied().unwrap_or(1.0)
    }

    /// Build from the telescope description, extractor settings and gain threshold \[ADC\].
    pub fn new(desc: &TelescopeDescription, ex: &ExtractorSettings, gain_threshold: f32) -> Self {
        let ps = &desc.pixel_settings;
        let n_pixels = desc.camera_settings.n_pixels;
        let sampling_rate_ghz = 1.0 / f64::from(ps.time_slice);
        let sample_width_ns = 1.0 / sampling_rate_ghz;
        let applies = ex.apply_integration_correction
            && matches!(
                ex.kind,
                ExtractorKind::NeighborPeakWindowSum
                    | ExtractorKind::LocalPeakWindowSum
                    | ExtractorKind::FixedWindowSum
                    | ExtractorKind::GlobalPeakWindowSum
            );
        let n_gains = desc.camera_organisation.n_gains.max(1);
        let correction = if applies {
            integration_correction(
                &ps.ref_shape,
                f64::from(ps.ref_step),
                sample_width_ns,
                ex.window_width,
                ex.window_shift,
                n_gains,
            )
        } else {
            vec![1.0; n_gains]
        };
        let mut broken = vec![false; n_pixels];
        for &p in &desc.disabled_pixels.hv_disabled {
            if p >= 0 && (p as usize) < n_pixels {
                broken[p as usize] = true;
            }
        }
        let any_broken = broken.iter().any(|&b| b);
        Self {
            n_samples: ps.sum_bins.max(1) as usize,
            sampling_rate_ghz,
            correction,
            broken,
            any_broken,
            extractor: *ex,
            gain_threshold,
        }
    }
}

/// ctapipe `integration_correction`: histogram the reference pulse into readout samples
/// (`np.histogram(..., density=True)`), sum the window around its maximum, invert.
pub fn integration_correction(
    ref_shape: &[Vec<f32>],
    ref_step: f64,
    sample_width: f64,
    width: usize,
    shift: i64,
    n_gains: usize,
) -> Vec<f64> {
    let mut out = vec![1.0; n_gains.max(ref_shape.len())];
    for (g, pulse) in ref_shape.iter().enumerate() {
        if pulse.is_empty() || ref_step <= 0.0 || sample_width <= 0.0 {
            continue;
        }
        let max_sample = pulse.len() as f64 * ref_step;
        // np.arange(0, stop, step): ceil((stop - start)/step) values start + i·step
        let nx = (max_sample / ref_step).ceil() as usize;
        let xs: Vec<f64> = (0..nx).map(|i| i as f64 * ref_step).collect();
        let ne = (max_sample / sample_width).ceil() as usize;
        if ne < 2 {
            continue;
        }
        let edges: Vec<f64> = (0..ne).map(|i| i as f64 * sample_width).collect();
        // numpy's weighted histogram for explicit edges: cumulative weights at searchsorted
        // positions (left side, the last edge on the right side), then differences.
        let w: Vec<f64> = pulse.iter().take(nx).map(|&v| f64::from(v)).collect();
        let mut cw = Vec::with_capacity(w.len() + 1);
        cw.push(0.0);
        let mut acc = 0.0;
        for &v in &w {
            acc += v;
            cw.push(acc);
        }
        let search = |e: f64, right: bool| -> usize {
            xs[..w.len()].partition_point(|&x| if right { x <= e } else { x < e })
        };
        let cum: Vec<f64> = edges
            .iter()
            .enumerate()
            .map(|(k, &e)| cw[search(e, k == ne - 1)])
            .collect();
        let counts: Vec<f64> = cum.windows(2).map(|c| c[1] - c[0]).collect();
        let total = np_sum(&counts);
        let hist: Vec<f64> = counts
            .iter()
            .enumerate()
            .map(|(k, &c)| c / (edges[k + 1] - edges[k]) / total)
            .collect();
        let n = hist.len();
        let mut amax = 0;
        for (k, &h) in hist.iter().enumerate() {
            if h > hist[amax] {
                amax = k;
            }
        }
        let start = (amax as i64 - shift).max(0) as usize;
        let end = (start + width).min(n);
        if start >= end {
            continue;
        }
        let integ: Vec<f64> = hist[start..end].iter().map(|&h| h * sample_width).collect();
        out[g] = 1.0 / np_sum(&integ);
    }
    out
}

/// A calibrated DL1 image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dl1Image {
    /// Charge [p.e.].
    pub image: Vec<f32>,
    /// Peak time \[ns\].
    pub peak_time: Vec<f32>,
    /// Selected gain channel per pixel (0 high, 1 low).
    pub selected_gain: Vec<u8>,
}

/// Reusable buffers for [`calibrate`].
#[derive(Debug, Default)]
pub struct CalibScratch {
    wave: Vec<f32>,
    nb_ptr: Vec<u32>,
    nb_idx: Vec<u32>,
    nsum: Vec<f64>,
    peak: Vec<i64>,
    peaks: PeakScratch,
    #[cfg(target_arch = "x86_64")]
    fused: crate::calib_avx2::FusedScratch,
    /// The pixels a screened calibration integrates whatever their R1 ([`keep_for_broken`]).
    keep: Vec<bool>,
    /// [`skip_limit`]s computed before, by (width, correction, floor) as bits (a handful of
    /// entries: one per telescope type and gain).
    limits: Vec<((usize, u64, u64), f32)>,
    /// [`AdcRanges`] computed before, per telescope.
    adc_ranges: Vec<(u16, AdcRanges)>,
    fallbacks: usize,
    searched: usize,
}

impl CalibScratch {
    /// Pixels whose neighbour peak needed the exact float64 path, and pixels searched, since
    /// this scratch was created (a diagnostic of [`neighbor_peaks`]'s float32 screen).
    pub fn peak_fallbacks(&self) -> (usize, usize) {
        (self.fallbacks, self.searched)
    }
}

/// Gain selection threshold \[ADC\] on high-gain R0 samples (ctapipe `ThresholdGainSelector`).
pub const GAIN_THRESHOLD_ADC: f32 = 4000.0;

/// A build of the calibration kernel. All of them give bit-identical results (the same IEEE
/// operations in the same order per output; Rust never contracts `a·b + c` into an FMA);
/// they differ only in speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CalibKernel {
    /// Baseline x86_64 (SSE2) or any other target: [`calibrate_baseline`].
    Baseline,
    /// AVX2: the fused NeighborPeakWindowSum kernel with 256-bit rows.
    Avx2,
    /// AVX-512 F/BW/VL/DQ: the fused kernel with 512-bit rows (compiled with Rust ≥ 1.89,
    /// where the AVX-512 intrinsics are stable; never available otherwise).
    Avx512,
}

impl CalibKernel {
    /// Every build, slowest first.
    pub const ALL: [CalibKernel; 3] = [Self::Baseline, Self::Avx2, Self::Avx512];

    /// Whether this CPU can run the build (checked at run time, cached by std).
    pub fn is_available(self) -> bool {
        match self {
            Self::Baseline => true,
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => has_avx2(),
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => crate::calib_avx512::available(),
            // not x86_64
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The fastest build this CPU can run.
    pub fn best() -> Self {
        Self::ALL
            .into_iter()
            .rev()
            .find(|k| k.is_available())
            .unwrap_or(Self::Baseline)
    }

    /// The build [`calibrate`] uses: [`CalibKernel::best`], unless the environment variable
    /// `CALIPER_CHERENKOV_KERNEL` names a slower one (`baseline`, `avx2` or `avx512`; read
    /// once per process, for A/B benchmarks; a name this CPU cannot run or does not know
    /// falls back to the best build).
    pub fn selected() -> Self {
        static SELECTED: std::sync::OnceLock<CalibKernel> = std::sync::OnceLock::new();
        *SELECTED.get_or_init(|| {
            let wanted = std::env::var("CALIPER_CHERENKOV_KERNEL").ok();
            let named = match wanted.as_deref().map(str::trim) {
                Some("baseline") => Some(Self::Baseline),
                Some("avx2") => Some(Self::Avx2),
                Some("avx512") => Some(Self::Avx512),
                _ => None,
            };
            named
                .filter(|k| k.is_available())
                .unwrap_or_else(Self::best)
        })
    }
}

/// Calibrate one telescope event into `out` with the build [`CalibKernel::selected`] (the
/// fastest this CPU runs: AVX-512, AVX2, else [`calibrate_baseline`]; all bit-identical).
pub fn calibrate(
    te: &TelescopeEvent,
    cal: &TelCalibration,
    geom: &CameraGeometry,
    ro: &TelReadout,
    scratch: &mut CalibScratch,
    out: &mut Dl1Image,
) {
    calibrate_with(CalibKernel::selected(), te, cal, geom, ro, scratch, out);
}

/// [`calibrate`] with a given build; a build this CPU cannot run
/// ([`CalibKernel::is_available`]) is replaced by the fastest slower one it can.
pub fn calibrate_with(
    kernel: CalibKernel,
    te: &TelescopeEvent,
    cal: &TelCalibration,
    geom: &CameraGeometry,
    ro: &TelReadout,
    scratch: &mut CalibScratch,
    out: &mut Dl1Image,
) {
    calibrate_screened_with(kernel, te, cal, geom, ro, None, scratch, out);
}

/// [`calibrate_with`] for a chain that keeps only what its tailcuts `cleaning` can select: a
/// pixel that cannot be in the cleaning mask is not integrated, and gets NaN as charge and
/// peak time. Every build leaves out the pixels whose charge is certainly below the floor, the
/// smaller of the picture and boundary thresholds (their largest |R1| below [`skip_limit`]);
/// the AVX-512 build also those whose sum of positive R1 is too small
/// (`calib_avx512::positive_sums_below`), and, for a camera without HV-disabled pixels, those
/// whose charge and every neighbour's are certainly below the picture threshold (such a pixel
/// can be neither a picture pixel nor next to one, nor the boundary neighbour a picture pixel
/// needs). The AVX-512 build tests the first and the last on the ADC samples, against each
/// pixel's range of ADC values whose R1 is below the limit ([`adc_range`]; computed once per
/// telescope and calibration, kept in `scratch`), and converts to R1 only the rows of the
/// pixels that remain and of their neighbours. So the builds may differ in which pixels are
/// NaN, never in any other value. A
/// left-out pixel can neither be in the cleaning mask nor change any other pixel's place in it
/// (NaN fails every threshold compare, as the charge it replaces does where it matters), and the
/// image parameters read only the pixels of the mask, so they come out bit for bit as from
/// [`calibrate`] (tested on every image of both shared files, by every build); only the sum
/// over the whole camera (`image_sum_all`) is undefined. The neighbours of HV-disabled pixels are always integrated
/// (the disabled pixel gets their mean). Applies to NeighborPeakWindowSum on sampled
/// waveforms of 2 to 64 samples (every camera of the shared files); other extractors, longer
/// waveforms and ADC-sum cameras ignore the floor. `None`: [`calibrate_with`].
#[allow(clippy::too_many_arguments)]
pub fn calibrate_screened_with(
    kernel: CalibKernel,
    te: &TelescopeEvent,
    cal: &TelCalibration,
    geom: &CameraGeometry,
    ro: &TelReadout,
    cleaning: Option<&Tailcuts>,
    scratch: &mut CalibScratch,
    out: &mut Dl1Image,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if kernel == CalibKernel::Avx512 && CalibKernel::Avx512.is_available() {
            // SAFETY: the CPU supports AVX2 and AVX-512 F/BW/VL/DQ (checked just above).
            unsafe { calibrate_avx512(te, cal, geom, ro, cleaning, scratch, out) };
            return;
        }
        if kernel != CalibKernel::Baseline && has_avx2() {
            // SAFETY: the CPU supports AVX2 (checked at run time just above).
            unsafe { calibrate_avx2(te, cal, geom, ro, cleaning, scratch, out) };
            return;
        }
    }
    let _ = kernel;
    calibrate_impl::<BASELINE>(te, cal, geom, ro, cleaning, scratch, out);
}

/// The largest |R1| of a pixel's row below which its charge is certainly below `floor`:
/// for `maxabs < skip_limit(..)` the charge `ctapipe` would give, with any peak, is less than
/// `floor`; 0 (nothing skipped) when no such value exists. `width` is the window width
/// clipped to the trace, `corr` the integration correction of the pixel's gain.
///
/// Why: every sample in the window is at most M = the row's largest |R1| (finite, ≥ 0), so the
/// float64 window sum of k ≤ width such samples is at most width·M (each rounded partial sum
/// is at most the rounded partial sum of M's, by the monotonicity of rounding, and j·M is
/// exact in float64 for j ≤ 64: 24 + 6 bits). The stored charge, `float32(float64(float32(sum))
/// · corr)` for corr ≥ 0, is then at most the same operations on width·M, which is
/// `bound(M)`; `bound` is non-decreasing in M, so {M : bound(M) < floor} is an interval
/// [0, limit), and `limit` is found by bisection over the float32 bit patterns (which are
/// ordered as the values for M ≥ 0). The cleaning compares charges in float64 with `>=`, so
/// a charge below `floor` fails both thresholds.
pub fn skip_limit(width: usize, corr: f64, floor: f64) -> f32 {
    let bound = |m: f32| {
        let q = (f64::from(m) * width as f64) as f32;
        (f64::from(q) * corr) as f32
    };
    let below = |m: f32| f64::from(bound(m)) < floor;
    if !(corr.is_finite() && corr >= 0.0) || width > 64 || !below(0.0) {
        return 0.0;
    }
    if below(f32::MAX) {
        return f32::INFINITY;
    }
    // below(0) holds, below(f32::MAX) does not
    f32::from_bits(first_true(0, f32::MAX.to_bits(), |b| {
        !below(f32::from_bits(b))
    }))
}

/// The first `x` in `lo..=hi` for which `pred` holds, `pred` being false then true over the
/// range (bisection); `hi` when it holds nowhere before.
fn first_true(mut lo: u32, mut hi: u32, pred: impl Fn(u32) -> bool) -> u32 {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// The float32 bound on the sum P of a row's positive R1 below which the charge is certainly
/// below `floor` (`calib_avx512::positive_sums_below`): floor / (corr·(1 + 2^−12)), 0 (never)
/// unless corr and floor are positive and finite.
fn possum_limit(corr: f64, floor: f64) -> f32 {
    if !(corr.is_finite() && corr > 0.0 && floor.is_finite() && floor > 0.0) {
        return 0.0;
    }
    (floor / (corr * (1.0 + 2f64.powi(-12)))) as f32
}

/// The pixels [`calibrate_screened_with`] must integrate whatever their R1: the neighbours of
/// HV-disabled pixels (`keep[p]`), whose charges the disabled pixel averages. Empty when no
/// pixel is disabled.
fn keep_for_broken(geom: &CameraGeometry, ro: &TelReadout, keep: &mut Vec<bool>) {
    keep.clear();
    if !ro.any_broken {
        return;
    }
    keep.resize(geom.n_pixels(), false);
    for p in (0..geom.n_pixels()).filter(|&p| ro.broken[p]) {
        for &j in geom.neighbors(p) {
            keep[j as usize] = true;
        }
    }
}

/// The per-gain limits of [`skip_limit`] for the readout's window and corrections, or `None`
/// when nothing can be skipped (no floor, a gain beyond the two the kernels take).
fn skip_limits(
    ro: &TelReadout,
    ns: usize,
    floor: Option<f64>,
    gains: &[u8],
    cache: &mut Vec<((usize, u64, u64), f32)>,
) -> Option<[f32; 2]> {
    let floor = floor?;
    if gains.iter().fold(0u8, |m, &g| m.max(g)) > 1 {
        return None;
    }
    let lim = cached_skip_limits(ro, ns, floor, cache);
    (lim != [0.0, 0.0]).then_some(lim)
}

/// [`skip_limit`] for both gains of the readout's window and corrections and `floor`, from
/// `cache` (keyed by width, correction and floor as bits) or computed into it.
fn cached_skip_limits(
    ro: &TelReadout,
    ns: usize,
    floor: f64,
    cache: &mut Vec<((usize, u64, u64), f32)>,
) -> [f32; 2] {
    let width = ro.extractor.window_width.min(ns);
    [0, 1].map(|g| {
        let corr = ro.gain_correction(g);
        let key = (width, corr.to_bits(), floor.to_bits());
        match cache.iter().find(|c| c.0 == key) {
            Some(c) => c.1,
            None => {
                let l = skip_limit(width, corr, floor);
                // (a bound on the cache, not a tuning: a run has a handful of entries)
                if cache.len() >= 64 {
                    cache.clear();
                }
                cache.push((key, l));
                l
            }
        }
    })
}

/// Whether pixel `p` (largest |R1| `maxabs`, selected gain `g`) is skipped under the limits
/// `lim` (the one decision every build makes, in the kernels and in [`screen_out`]).
#[inline(always)]
pub(crate) fn skipped(maxabs: f32, g: u8, lim: [f32; 2], keep: &[bool], p: usize) -> bool {
    maxabs < lim[usize::from(g & 1)] && !keep.get(p).copied().unwrap_or(false)
}

/// The ADC values `a` whose R1, `(a as f32 − ped)·dc` in float32 as every build computes it,
/// has |R1| < `limit`: an interval `[lo, hi]`, or `None` when there is none. A row's largest
/// |R1| is below `limit` exactly when all its samples are in the interval (a NaN or infinite
/// R1 is in no interval, and makes the row's largest |R1| NaN or +∞), so the AVX-512 build
/// decides [`skipped`] with two integer compares per sample instead of converting the row.
///
/// Why an interval: for finite `ped` and `dc`, R1 is finite or ±∞ (never NaN) and monotonic
/// in `a` (both float32 operations round monotonically; non-decreasing for `dc ≥ 0`,
/// non-increasing for `dc < 0`), so {R1 > −limit} and {R1 < limit} are each a run of ADC
/// values reaching one end of 0..=65535, and their intersection is the interval; its two ends
/// are found by bisection on the exact float32 expression. A non-finite `ped` or `dc` makes
/// every R1 NaN or ±∞: no interval; so does a `limit` that is not positive (or NaN).
pub fn adc_range(ped: f32, dc: f32, limit: f32) -> Option<(u16, u16)> {
    if !(ped.is_finite() && dc.is_finite() && limit > 0.0) {
        return None;
    }
    let r1 = |a: u32| (a as f32 - ped) * dc;
    // the first ADC value in 0..=65536 for which `pred` holds (65536: none)
    let first = |pred: &dyn Fn(u32) -> bool| first_true(0, 65536, pred);
    let above = |a: u32| r1(a) > -limit;
    let below = |a: u32| r1(a) < limit;
    // [lo, end): the run that rises into the interval, the one that falls out of it
    let (lo, end) = if dc >= 0.0 {
        (first(&above), first(&|a| !below(a)))
    } else {
        (first(&below), first(&|a| !above(a)))
    };
    (lo < end).then(|| (lo as u16, (end - 1) as u16))
}

/// [`adc_range`] as the AVX-512 build's compare wants it: the ends each repeated in both
/// 16-bit halves of a `u32` (`[lo, hi]`), the empty interval as `[65535, 0]` (every value is
/// outside it: below 65535 or above 0).
fn adc_range_lanes(ped: f32, dc: f32, limit: f32) -> [u32; 2] {
    let (lo, hi) = adc_range(ped, dc, limit).unwrap_or((u16::MAX, 0));
    [u32::from(lo) * 0x1_0001, u32::from(hi) * 0x1_0001]
}

/// The [`adc_range`]s of every (gain, pixel) of one calibration for the skip limits and the
/// picture limits (`calib_avx512::sparse`'s bounds 1 and 3), with the calibration they were
/// computed from: pedestals and dc_to_pe change only when a new calibration is read, so a
/// telescope's ranges are reused from image to image: at once when the image's calibration
/// is the very object they were computed from (`source`, kept alive here, so no other
/// calibration can take its address, and unchanged, being shared), else after a bitwise
/// comparison of those arrays (16 bytes per pixel against 64 per row of 32 samples
/// screened).
#[derive(Debug, Default)]
struct AdcRanges {
    source: Option<std::sync::Arc<TelCalibration>>,
    pedestal: Vec<f32>,
    dc_to_pe: Vec<f32>,
    n_pixels: usize,
    /// The skip and picture limits per gain, as bits.
    limits: [u32; 4],
    skip: Vec<[u32; 2]>,
    picture: Vec<[u32; 2]>,
}

/// Whether two float slices hold the same bits (a chunked comparison that stops at the first
/// differing chunk).
fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.chunks(64).zip(b.chunks(64)).all(|(x, y)| {
            x.iter()
                .zip(y)
                .fold(0u32, |d, (p, q)| d | (p.to_bits() ^ q.to_bits()))
                == 0
        })
}

/// The [`AdcRanges`] of telescope `tel_id` for this calibration and these limits: the cached
/// ones when they were computed from the same arrays and limits, else computed and cached
/// (one entry per telescope, at most 256 telescopes: beyond that the oldest entry is dropped).
fn adc_ranges<'c>(
    cache: &'c mut Vec<(u16, AdcRanges)>,
    te: &TelescopeEvent,
    cal: &TelCalibration,
    n_pixels: usize,
    skip: [f32; 2],
    picture: [f32; 2],
) -> &'c AdcRanges {
    let limits = [skip[0], skip[1], picture[0], picture[1]].map(f32::to_bits);
    let (ped, dc) = (&cal.pedestal_per_sample[..], &cal.dc_to_pe[..]);
    let tel_id = te.tel_id;
    // the shared calibration object `cal` is, if it is the event's
    let source = te
        .calibration
        .as_ref()
        .filter(|a| std::ptr::eq(a.as_ref(), cal));
    let k = match cache.iter().position(|c| c.0 == tel_id) {
        Some(k) => k,
        None => {
            // (a bound on the memory, not a tuning)
            if cache.len() >= 256 {
                cache.remove(0);
            }
            cache.push((tel_id, AdcRanges::default()));
            cache.len() - 1
        }
    };
    let c = &mut cache[k].1;
    let same_source = match (&c.source, source) {
        (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
        _ => false,
    };
    let valid = c.n_pixels == n_pixels
        && c.limits == limits
        && (same_source || (same_bits(&c.pedestal, ped) && same_bits(&c.dc_to_pe, dc)));
    if valid && !same_source {
        c.source = source.cloned();
    } else if !valid {
        let n = ped.len().min(dc.len());
        let ranges = |lim: [f32; 2]| -> Vec<[u32; 2]> {
            (0..n)
                .map(|i| adc_range_lanes(ped[i], dc[i], lim[(i / n_pixels.max(1)).min(1)]))
                .collect()
        };
        *c = AdcRanges {
            source: source.cloned(),
            pedestal: ped.to_vec(),
            dc_to_pe: dc.to_vec(),
            n_pixels,
            limits,
            skip: ranges(skip),
            picture: ranges(picture),
        };
    }
    c
}

/// NaN charge and peak time for the pixels [`skipped`] (`maxabs(p)` their largest |R1|).
fn screen_out(out: &mut Dl1Image, lim: [f32; 2], keep: &[bool], maxabs: impl Fn(usize) -> f32) {
    let n = out.image.len();
    let (image, peak_time, gain) = (
        &mut out.image[..n],
        &mut out.peak_time[..n],
        &out.selected_gain[..n],
    );
    for p in 0..n {
        // a select, not a branch: the left-out pixels come in no predictable order
        let s = skipped(maxabs(p), gain[p], lim, keep, p);
        image[p] = if s { f32::NAN } else { image[p] };
        peak_time[p] = if s { f32::NAN } else { peak_time[p] };
    }
}

/// [`calibrate`] compiled for baseline x86_64 (SSE2), used where AVX2 is missing and to test
/// the AVX2 and AVX-512 builds against.
pub fn calibrate_baseline(
    te: &TelescopeEvent,
    cal: &TelCalibration,
    geom: &CameraGeometry,
    ro: &TelReadout,
    scratch: &mut CalibScratch,
    out: &mut Dl1Image,
) {
    calibrate_impl::<BASELINE>(te, cal, geom, ro, None, scratch, out);
}

/// Kernel builds of `calibrate_impl`.
const BASELINE: u8 = 0;
/// The AVX2 build.
const AVX2: u8 = 1;
/// The AVX-512 build.
const AVX512: u8 = 2;

/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn calibrate_avx2(
    te: &TelescopeEvent,
    cal: &TelCalibration,
    geom: &CameraGeometry,
    ro: &TelReadout,
    cleaning: Option<&Tailcuts>,
    scratch: &mut CalibScratch,
    out: &mut Dl1Image,
) {
    calibrate_impl::<AVX2>(te, cal, geom, ro, cleaning, scratch, out);
}

/// # Safety
/// The CPU must support AVX2 and AVX-512 F/BW/VL/DQ.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn calibrate_avx512(
    te: &TelescopeEvent,
    cal: &TelCalibration,
    geom: &CameraGeometry,
    ro: &TelReadout,
    cleaning: Option<&Tailcuts>,
    scratch: &mut CalibScratch,
    out: &mut Dl1Image,
) {
    calibrate_impl::<AVX512>(te, cal, geom, ro, cleaning, scratch, out);
}

/// The calibration; `K` selects the build (`BASELINE`, `AVX2` or `AVX512`; the caller
/// guarantees the CPU features of the one it selects).
#[inline(always)]
fn calibrate_impl<const K: u8>(
    te: &TelescopeEvent,
    cal: &TelCalibration,
    geom: &CameraGeometry,
    ro: &TelReadout,
    cleaning: Option<&Tailcuts>,
    scratch: &mut CalibScratch,
    out: &mut Dl1Image,
) {
    // a charge below `floor` fails both thresholds
    let floor = cleaning.map(|t| t.picture.min(t.boundary));
    let ex = &ro.extractor;
    let gain_threshold = ro.gain_threshold;
    let np = te.n_pixels;
    let ns = te.n_samples.max(1);
    // every path below writes every charge and peak time (not zero-filled first: a memset of
    // 100 kB per SCTCam image), and the selected gain of every pixel when there are two
    out.image.resize(np, 0.0);
    out.peak_time.resize(np, 0.0);
    out.selected_gain.resize(np, 0);
    if te.n_gains < 2 {
        out.selected_gain.fill(0);
    }

    // Gain selection on the raw high-gain samples: `sample > threshold` on integer ADC values
    // is `sample > floor(threshold)` (threshold ≥ 0).
    if te.n_gains >= 2 {
        if te.samples.is_empty() {
            for p in 0..np {
                out.selected_gain[p] = u8::from(te.sums[p] as f32 > gain_threshold);
            }
        } else {
            let thr = gain_threshold.max(0.0).floor().min(65535.0) as u16;
            for p in 0..np {
                // max instead of an early-exit `any`: branch-free and vectorised
                let low = te.samples[p * ns..(p + 1) * ns]
                    .iter()
                    .copied()
                    .max()
                    .unwrap_or(0)
                    > thr;
                out.selected_gain[p] = u8::from(low);
            }
        }
    }

    if te.samples.is_empty() {
        // ADC sums (ASTRI): a one-sample waveform; uint32 − float32 promotes to float64 in numpy.
        for p in 0..np {
            let g = out.selected_gain[p] as usize;
            let i = g * np + p;
            let v = (f64::from(te.sums[i]) - f64::from(cal.pedestal_per_sample[i]))
                * f64::from(cal.dc_to_pe[i]);
            out.image[p] = v as f32;
            out.peak_time[p] = 0.0;
        }
        fill_broken(geom, ro, out);
        return;
    }

    // The default extractor on sampled waveforms: the fused AVX2 or AVX-512 kernel
    // (bit-identical to the code below, which the baseline build runs).
    // the floor applies where the fused kernels run (and to the baseline build there)
    let screened =
        ex.kind == ExtractorKind::NeighborPeakWindowSum && (2..=FUSED_MAX_SAMPLES).contains(&ns);
    let lim = if screened {
        skip_limits(ro, ns, floor, &out.selected_gain, &mut scratch.limits)
    } else {
        None
    };
    if lim.is_some() {
        keep_for_broken(geom, ro, &mut scratch.keep);
    }

    #[cfg(target_arch = "x86_64")]
    if K != BASELINE && screened {
        let (ptr, idx) = if ro.any_broken {
            filtered_neighbors(geom, ro, &mut scratch.nb_ptr, &mut scratch.nb_idx);
            (&scratch.nb_ptr[..], &scratch.nb_idx[..])
        } else {
            (&geom.indptr[..], &geom.indices[..])
        };
        // the AVX-512 build's limits: the skip limits (bound 1), the sums of positive R1
        // (bound 2) and, for a camera without HV-disabled pixels (whose neighbours the cleaning
        // sees are then all in the peak search's lists), the picture limits (bound 3); each
        // as ADC ranges per (gain, pixel)
        let (mut adc_skip, mut adc_picture): (&[[u32; 2]], &[[u32; 2]]) = (&[], &[]);
        let mut possum = [0.0; 2];
        if let (Some(lim), Some(f), true) = (lim, floor, K == AVX512) {
            possum = [0, 1].map(|g| possum_limit(ro.gain_correction(g), f));
            let picture = match cleaning {
                Some(t) if scratch.keep.is_empty() => {
                    cached_skip_limits(ro, ns, t.picture, &mut scratch.limits)
                }
                _ => [0.0; 2],
            };
            let r = adc_ranges(&mut scratch.adc_ranges, te, cal, np, lim, picture);
            adc_skip = &r.skip;
            if picture != [0.0; 2] {
                adc_picture = &r.picture;
            }
        }
        let im = crate::calib_avx2::FusedImage {
            samples: &te.samples,
            n_pixels: np,
            n_samples: ns,
            gain: &out.selected_gain,
            pedestal: &cal.pedestal_per_sample,
            dc_to_pe: &cal.dc_to_pe,
            time_shift: &cal.time_shift,
            indptr: ptr,
            indices: idx,
            local_weight: ex.local_weight as f64,
            width: ex.window_width,
            shift: ex.window_shift,
            rate: ro.sampling_rate_ghz,
            correction: &ro.correction,
            adc_skip,
            skip_possum_below: possum,
            keep: &scratch.keep,
            adc_picture,
        };
        let fused: unsafe fn(
            &crate::calib_avx2::FusedImage,
            &mut crate::calib_avx2::FusedScratch,
            &mut [f32],
            &mut [f32],
        ) -> usize = if K == AVX512 {
            crate::calib_avx512::neighbor_window_sum
        } else {
            crate::calib_avx2::neighbor_window_sum
        };
        // SAFETY: `K` is `AVX2` only in the AVX2 build, called after the run-time check of
        // AVX2, and `AVX512` only in the AVX-512 build, called after the run-time check of
        // AVX2 and AVX-512 F/BW/VL/DQ (and BMI1 and POPCNT, see `calib_avx512::available`).
        scratch.fallbacks +=
            unsafe { fused(&im, &mut scratch.fused, &mut out.image, &mut out.peak_time) };
        scratch.searched += np;
        if let (Some(lim), false) = (lim, K == AVX512) {
            // (the AVX-512 build writes NaN for the pixels it leaves out itself)
            let maxabs = &scratch.fused.maxabs;
            screen_out(out, lim, &scratch.keep, |p| maxabs[p]);
        }
        fill_broken(geom, ro, out);
        return;
    }

    // R1 for the selected gain, float32.
    let wave = &mut scratch.wave;
    wave.clear();
    wave.resize(np * ns, 0.0);
    for p in 0..np {
        let g = out.selected_gain[p] as usize;
        let i = g * np + p;
        let ped = cal.pedestal_per_sample[i];
        let k = cal.dc_to_pe[i];
        let src = &te.samples[i * ns..(i + 1) * ns];
        let dst = &mut wave[p * ns..(p + 1) * ns];
        for (d, &a) in dst.iter_mut().zip(src) {
            *d = (f32::from(a) - ped) * k;
        }
    }

    if ns == 1 {
        out.image[..np].copy_from_slice(&wave[..np]);
        out.peak_time.fill(0.0);
        fill_broken(geom, ro, out);
        return;
    }

    // Peak positions.
    let peak = &mut scratch.peak;
    peak.clear();
    peak.resize(np, 0);
    let (width, shift) = match ex.kind {
        ExtractorKind::FullWaveformSum => (ns, 0),
        _ => (ex.window_width, ex.window_shift),
    };
    match ex.kind {
        ExtractorKind::NeighborPeakWindowSum => {
            // neighbor_average_maximum: float64 sum of the non-broken neighbours' waveforms (in
            // CSR order) plus local_weight × own, first argmax. Without broken pixels the
            // geometry's CSR is used as it is; otherwise a filtered copy (ctapipe skips broken
            // neighbours in the sum).
            let lw = ex.local_weight as f64;
            if ro.any_broken {
                let (ptr, idx) = (&mut scratch.nb_ptr, &mut scratch.nb_idx);
                filtered_neighbors(geom, ro, ptr, idx);
                scratch.fallbacks +=
                    neighbor_peaks(wave, ns, ptr, idx, lw, &mut scratch.peaks, peak);
                scratch.searched += np;
            } else {
                scratch.searched += np;
                scratch.fallbacks += peaks_for::<K>(
                    wave,
                    ns,
                    &geom.indptr,
                    &geom.indices,
                    lw,
                    &mut scratch.peaks,
                    peak,
                );
            }
        }
        ExtractorKind::LocalPeakWindowSum => {
            for p in 0..np {
                peak[p] = argmax_f32(&wave[p * ns..(p + 1) * ns]) as i64;
            }
        }
        ExtractorKind::FixedWindowSum => peak.iter_mut().for_each(|v| *v = ex.peak_index),
        ExtractorKind::FullWaveformSum => peak.iter_mut().for_each(|v| *v = 0),
        ExtractorKind::GlobalPeakWindowSum => {
            let nsum = &mut scratch.nsum;
            nsum.clear();
            nsum.resize(ns, 0.0);
            let mut n = 0usize;
            for p in 0..np {
                if ro.broken[p] {
                    continue;
                }
                n += 1;
                for (a, &v) in nsum.iter_mut().zip(&wave[p * ns..(p + 1) * ns]) {
                    *a += f64::from(v);
                }
            }
            let _ = n;
            let pk = argmax_f64(nsum) as i64;
            peak.iter_mut().for_each(|v| *v = pk);
        }
    }

    // extract_around_peak
    let rate = ro.sampling_rate_ghz;
    for p in 0..np {
        let (q, t) = extract_around_peak(&wave[p * ns..(p + 1) * ns], peak[p], shift, width, rate);
        let g = out.selected_gain[p] as usize;
        // _apply_correction: (charge · correction[gain]).astype(float32)
        let corr = ro.gain_correction(g);
        out.image[p] = (f64::from(q) * corr) as f32;
        // remaining peak-time shift from LaserCalibration tm_calib (float32 subtraction)
        out.peak_time[p] = t - cal.time_shift[g * np + p];
    }
    if let Some(lim) = lim {
        // the largest |R1| of each row, as the fused kernels find it (the same value when
        // finite; not finite here or there: never skipped)
        screen_out(out, lim, &scratch.keep, |p| {
            max_abs_and_constant(&wave[p * ns..(p + 1) * ns]).0
        });
    }
    fill_broken(geom, ro, out);
}

/// The longest waveform the fused kernels (and so a screened calibration) take: 8 vectors of
/// 8 floats.
pub(crate) const FUSED_MAX_SAMPLES: usize = 64;

/// ctapipe `extract_around_peak` of one waveform `w` (its `n_samples` samples): the window
/// `[peak − shift, peak − shift + width)` clipped to the trace, summed in float64, and the
/// peak time as the positive-weighted mean sample index (the peak itself when no sample is
/// positive), stored as float32 before and after the division by the sampling rate (GHz).
/// Returns (charge, peak time (ns)) as float32; shared by the baseline build and the scalar
/// pixels of `calib_avx2`, which must stay bit-identical.
#[inline(always)]
pub(crate) fn extract_around_peak(
    w: &[f32],
    pk: i64,
    shift: i64,
    width: usize,
    rate: f64,
) -> (f32, f32) {
    let start = (pk - shift).max(0) as usize;
    let end = ((pk - shift + width as i64).max(0) as usize).min(w.len());
    let mut sum = 0.0f64;
    let mut num = 0.0f64;
    let mut den = 0.0f64;
    for (s, &v) in w.iter().enumerate().take(end).skip(start) {
        let v = f64::from(v);
        sum += v;
        // branch-free form of `if v > 0 { num += v·s; den += v }`: adding +0.0 leaves
        // both sums bit-identical (they are never −0.0)
        let pos = if v > 0.0 { v } else { 0.0 };
        num += pos * s as f64;
        den += pos;
    }
    let t0 = if den > 0.0 {
        (num / den) as f32
    } else {
        pk as f32
    };
    (sum as f32, (f64::from(t0) / rate) as f32)
}

/// Lanes of the float64 neighbour sum: 8 samples = four SSE2 `f64` registers per chain.
const LANES: usize = 8;

/// Scratch of [`neighbor_peaks`].
#[derive(Debug, Default)]
pub struct PeakScratch {
    acc: Vec<f64>,
    acc32: Vec<f32>,
    maxabs: Vec<f32>,
    constant: Vec<bool>,
}

/// Peak sample of every pixel's neighbour-summed waveform (ctapipe `neighbor_average_maximum`),
/// bit-for-bit the float64 result; returns how many pixels needed the float64 path.
///
/// ctapipe (`ctapipe/image/extractor.py::neighbor_average_maximum`, `@njit`, no fastmath)
/// starts from `waveforms[pixel] * local_weight` (float32 array × int64 → float64 in numba)
/// and adds the non-broken neighbours in CSR order, then takes `np.argmax` (first maximum).
///
/// Fast path: the sums are screened in float32 (four lanes per SSE2 register, no
/// conversions). With `A = |w|·max|own| + Σ_j max|wave_j|` over the `n` terms, both the
/// float32 and the float64 sum of every sample lie within `n·2⁻²⁴·A·(1+ε)` of the exact sum
/// (Higham, recursive summation). If the float32 maximum exceeds every other sample by more
/// than `D = 4·(n+2)·2⁻²⁴·A` (which covers twice both error bounds plus the rounding of the
/// threshold itself), the float64 maximum is at the same sample, so it is unique and numpy's
/// first argmax is that sample. Otherwise (near-ties, exact ties) the float64 sums in ctapipe's order decide among the candidate
/// samples within `D` of the float32 maximum (no other sample can hold the float64
/// maximum), or, for non-finite values, the whole pixel goes through
/// [`neighbor_peak_f64`]. Pixels whose terms are all bitwise constant over the samples tie
/// everywhere and get sample 0 directly. Waveforms shorter than 16 samples go through
/// [`neighbor_peak_f64`] entirely.
pub fn neighbor_peaks(
    wave: &[f32],
    ns: usize,
    indptr: &[u32],
    indices: &[u32],
    local_weight: f64,
    scratch: &mut PeakScratch,
    peak: &mut [i64],
) -> usize {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 (checked at run time just above).
        return unsafe {
            neighbor_peaks_avx2(wave, ns, indptr, indices, local_weight, scratch, peak)
        };
    }
    neighbor_peaks_baseline(wave, ns, indptr, indices, local_weight, scratch, peak)
}

/// [`neighbor_peaks`] (dispatching) or, in the baseline build (`K` = `BASELINE`), its
/// baseline build.
#[inline(always)]
fn peaks_for<const K: u8>(
    wave: &[f32],
    ns: usize,
    indptr: &[u32],
    indices: &[u32],
    local_weight: f64,
    scratch: &mut PeakScratch,
    peak: &mut [i64],
) -> usize {
    if K != BASELINE {
        neighbor_peaks(wave, ns, indptr, indices, local_weight, scratch, peak)
    } else {
        neighbor_peaks_baseline(wave, ns, indptr, indices, local_weight, scratch, peak)
    }
}

/// Whether the CPU has AVX2 (cached by std).
#[cfg(target_arch = "x86_64")]
#[inline]
fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

/// [`neighbor_peaks`] compiled for baseline x86_64 (SSE2) or any other target; the same
/// operations as the AVX2 build (no FMA contraction in Rust), so the results are identical.
pub fn neighbor_peaks_baseline(
    wave: &[f32],
    ns: usize,
    indptr: &[u32],
    indices: &[u32],
    local_weight: f64,
    scratch: &mut PeakScratch,
    peak: &mut [i64],
) -> usize {
    if ns >= 16 {
        screen_peaks::<16>(wave, ns, indptr, indices, local_weight, scratch, peak)
    } else {
        exact_peaks(wave, ns, indptr, indices, local_weight, scratch, peak)
    }
}

/// [`neighbor_peaks`] with AVX2 code generation (32-sample blocks = four 256-bit registers).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn neighbor_peaks_avx2(
    wave: &[f32],
    ns: usize,
    indptr: &[u32],
    indices: &[u32],
    local_weight: f64,
    scratch: &mut PeakScratch,
    peak: &mut [i64],
) -> usize {
    if ns >= 32 {
        screen_peaks::<32>(wave, ns, indptr, indices, local_weight, scratch, peak)
    } else if ns >= 16 {
        screen_peaks::<16>(wave, ns, indptr, indices, local_weight, scratch, peak)
    } else {
        exact_peaks(wave, ns, indptr, indices, local_weight, scratch, peak)
    }
}

/// Every pixel through the exact float64 path (returns the number of pixels).
fn exact_peaks(
    wave: &[f32],
    ns: usize,
    indptr: &[u32],
    indices: &[u32],
    local_weight: f64,
    scratch: &mut PeakScratch,
    peak: &mut [i64],
) -> usize {
    for (p, pk) in peak.iter_mut().enumerate() {
        let nb = &indices[indptr[p] as usize..indptr[p + 1] as usize];
        *pk = neighbor_peak_f64(wave, ns, p, nb, local_weight, &mut scratch.acc) as i64;
    }
    peak.len()
}

/// The float32 screen with blocks of `B` samples (`ns ≥ B`), inlined into the baseline and
/// the AVX2 build.
#[inline(always)]
fn screen_peaks<const B: usize>(
    wave: &[f32],
    ns: usize,
    indptr: &[u32],
    indices: &[u32],
    local_weight: f64,
    scratch: &mut PeakScratch,
    peak: &mut [i64],
) -> usize {
    let np = peak.len();
    let PeakScratch {
        acc,
        acc32,
        maxabs,
        constant,
    } = scratch;
    acc32.clear();
    acc32.resize(ns, 0.0);
    maxabs.clear();
    constant.clear();
    for w in wave.chunks_exact(ns) {
        let (m, c) = max_abs_and_constant(w);
        maxabs.push(m);
        constant.push(c);
    }
    let lw32 = local_weight as f32;
    let lw_abs = local_weight.abs() as f32;
    let unit = f32::EPSILON / 2.0; // 2^-24
    let mut fallbacks = 0;
    for p in 0..np {
        let nb = &indices[indptr[p] as usize..indptr[p + 1] as usize];
        let own = &wave[p * ns..(p + 1) * ns];
        // Every term bitwise constant over the samples (the own term may instead be finite
        // with weight 0: ±0): each sample's float64 sum is the same operations on the same
        // values, so all samples tie and numpy's first argmax is 0. Exact, no screening.
        let own_ok = if local_weight == 0.0 {
            maxabs[p].is_finite()
        } else {
            constant[p]
        };
        if own_ok && nb.iter().all(|&j| constant[j as usize]) {
            peak[p] = 0;
            continue;
        }
        let mut mx = [f32::NEG_INFINITY; 8];
        // blocks of B samples held in registers while the neighbours are added; the last
        // block is shifted back to end at ns (its overlapping samples are recomputed
        // identically)
        let mut s0 = 0;
        loop {
            let start = s0.min(ns - B);
            let o: &[f32; B] = own[start..start + B].try_into().unwrap_or(&[0.0; B]);
            let mut a = [0.0f32; B];
            for k in 0..B {
                a[k] = o[k] * lw32;
            }
            for &j in nb {
                let b = j as usize * ns + start;
                let r: &[f32; B] = wave[b..b + B].try_into().unwrap_or(&[0.0; B]);
                for k in 0..B {
                    a[k] += r[k];
                }
            }
            acc32[start..start + B].copy_from_slice(&a);
            // running lane-wise maximum (an overlapped sample only repeats a value)
            for k in 0..B {
                mx[k % 8] = if a[k] > mx[k % 8] { a[k] } else { mx[k % 8] };
            }
            if start + B >= ns {
                break;
            }
            s0 += B;
        }
        let best = max_f32(&mx);
        let mut bound = lw_abs * maxabs[p];
        for &j in nb {
            bound += maxabs[j as usize];
        }
        let n_terms = (nb.len() + 3) as f32;
        let d = 4.0 * n_terms * unit * bound;
        // unique by the margin: exactly one sample (the maximum) at or above best − d; the
        // sum of the indices at or above it is then that sample's index
        let thr = best - d;
        let (count, index_sum) = count_at_or_above(acc32, thr);
        if !(best.is_finite() && d.is_finite()) {
            fallbacks += 1;
            peak[p] = neighbor_peak_f64(wave, ns, p, nb, local_weight, acc) as i64;
        } else if count == 1 {
            peak[p] = i64::from(index_sum);
        } else {
            // Near-ties: every sample below thr is below the float64 value at the float32
            // maximum, so the float64 maximum and all samples equal to it are among the
            // candidates at or above thr. Their float64 sums in ctapipe's order, first
            // maximum in sample order.
            fallbacks += 1;
            let mut best64 = f64::NEG_INFINITY;
            let mut best_s = 0usize;
            for (s, &v) in acc32.iter().enumerate() {
                if v < thr {
                    continue;
                }
                let mut x = f64::from(own[s]) * local_weight;
                for &j in nb {
                    x += f64::from(wave[j as usize * ns + s]);
                }
                if x > best64 {
                    best64 = x;
                    best_s = s;
                }
            }
            peak[p] = best_s as i64;
        }
    }
    fallbacks
}

/// Largest value of a float32 slice (NaNs ignored; −inf if empty), in eight lanes.
#[inline(always)]
fn max_f32(v: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; 8];
    let mut it = v.chunks_exact(8);
    for c in &mut it {
        for k in 0..8 {
            m[k] = if c[k] > m[k] { c[k] } else { m[k] };
        }
    }
    let mut r = f32::NEG_INFINITY;
    for &x in it.remainder().iter().chain(&m) {
        r = if x > r { x } else { r };
    }
    r
}

/// Whether exactly one value is `>= thr` (first) and, if so, its index (second): in eight
/// lanes, each hit adds `index + 2¹⁶` to a u32 sum, so one reduction gives the count in the
/// high half and the index in the low half when the count is 1. With several hits the index
/// sum may carry into the count, which only makes it larger (still not 1). Traces of 2¹⁵
/// samples or more are counted plainly (no overflow of the packed sum below that).
#[inline(always)]
fn count_at_or_above(v: &[f32], thr: f32) -> (u32, u32) {
    if v.len() >= 1 << 15 {
        let mut n = 0u32;
        let mut first = 0u32;
        for (i, &x) in v.iter().enumerate() {
            if x >= thr {
                if n == 0 {
                    first = i as u32;
                }
                n += 1;
            }
        }
        return (n, first);
    }
    let mut acc = [0u32; 8];
    let mut it = v.chunks_exact(8);
    let mut base = 1u32 << 16;
    for c in &mut it {
        for k in 0..8 {
            acc[k] += if c[k] >= thr { base + k as u32 } else { 0 };
        }
        base += 8;
    }
    let mut t = 0u32;
    for (k, &x) in it.remainder().iter().enumerate() {
        if x >= thr {
            t += base + k as u32;
        }
    }
    for a in acc {
        t += a;
    }
    (t >> 16, t & 0xFFFF)
}

/// Largest absolute value of a non-empty slice, NaN if any value is NaN or infinite (which
/// forces the exact path); and whether all values are bitwise equal (e.g. a pixel read out as
/// zeros). One pass in eight lanes.
#[inline(always)]
pub(crate) fn max_abs_and_constant(v: &[f32]) -> (f32, bool) {
    let first = v[0].to_bits();
    let mut m = [0.0f32; 8];
    // x · 0 is 0 for finite x and NaN for NaN or ±inf: a branch-free finiteness check
    let mut z = [0.0f32; 8];
    let mut diff = [0u32; 8];
    let mut it = v.chunks_exact(8);
    for c in &mut it {
        for k in 0..8 {
            let a = c[k].abs();
            m[k] = if a > m[k] { a } else { m[k] };
            z[k] += c[k] * 0.0;
            diff[k] |= c[k].to_bits() ^ first;
        }
    }
    let mut r = 0.0f32;
    let mut zr = 0.0f32;
    let mut d = 0u32;
    for &x in it.remainder() {
        r = r.max(x.abs());
        zr += x * 0.0;
        d |= x.to_bits() ^ first;
    }
    for k in 0..8 {
        r = r.max(m[k]);
        zr += z[k];
        d |= diff[k];
    }
    (if zr.is_nan() { f32::NAN } else { r }, d == 0)
}

/// The float64 neighbour peak of one pixel in ctapipe's order (own · local_weight, then the
/// neighbours `nb` in order, per sample; the lanes run over samples, so vectorising does not
/// reorder any addition); numpy's first argmax. `acc` is scratch.
pub fn neighbor_peak_f64(
    wave: &[f32],
    ns: usize,
    p: usize,
    nb: &[u32],
    local_weight: f64,
    acc: &mut Vec<f64>,
) -> usize {
    let full = ns / LANES * LANES;
    acc.clear();
    acc.resize(ns, 0.0);
    let own = &wave[p * ns..(p + 1) * ns];
    // Lane-wise running maximum with the sample index stored as f64 (branch-free selects
    // that vectorise); strict `>` keeps each lane's first maximum.
    let mut bv = [f64::NEG_INFINITY; LANES];
    let mut bi = [0.0f64; LANES];
    // whole blocks of LANES samples: the block's partial sums stay in registers while
    // every neighbour is added in order
    let mut s0 = 0;
    while s0 < full {
        let o: &[f32; LANES] = own[s0..s0 + LANES].try_into().unwrap_or(&[0.0; LANES]);
        let mut a = [0.0f64; LANES];
        for k in 0..LANES {
            a[k] = f64::from(o[k]) * local_weight;
        }
        for &j in nb {
            let b = j as usize * ns + s0;
            let r: &[f32; LANES] = wave[b..b + LANES].try_into().unwrap_or(&[0.0; LANES]);
            for k in 0..LANES {
                a[k] += f64::from(r[k]);
            }
        }
        for k in 0..LANES {
            let gt = a[k] > bv[k];
            bv[k] = if gt { a[k] } else { bv[k] };
            bi[k] = if gt { (s0 + k) as f64 } else { bi[k] };
        }
        s0 += LANES;
    }
    // numpy's first argmax: the largest value, the smallest index among equal lanes
    let mut best = f64::NEG_INFINITY;
    let mut best_s = 0usize;
    if full > 0 {
        best = bv[0];
        best_s = bi[0] as usize;
        for k in 1..LANES {
            let i = bi[k] as usize;
            if bv[k] > best || (bv[k] == best && i < best_s) {
                best = bv[k];
                best_s = i;
            }
        }
    }
    if full < ns {
        let tail = &mut acc[full..ns];
        for (a, &o) in tail.iter_mut().zip(&own[full..]) {
            *a = f64::from(o) * local_weight;
        }
        for &j in nb {
            let b = j as usize * ns;
            for (a, &v) in tail.iter_mut().zip(&wave[b + full..b + ns]) {
                *a += f64::from(v);
            }
        }
        // the tail's samples come after every block sample: strict `>` keeps the first
        for (k, &v) in tail.iter().enumerate() {
            if v > best {
                best = v;
                best_s = full + k;
            }
        }
    }
    best_s
}

/// The straightforward form of [`neighbor_peaks`] (one pixel, one sample at a time), kept to
/// test the fast path against.
pub fn neighbor_peaks_reference(
    wave: &[f32],
    ns: usize,
    indptr: &[u32],
    indices: &[u32],
    local_weight: f64,
    peak: &mut [i64],
) {
    for (p, pk) in peak.iter_mut().enumerate() {
        let mut best = f64::NEG_INFINITY;
        *pk = 0;
        for s in 0..ns {
            let mut v = f64::from(wave[p * ns + s]) * local_weight;
            for &j in &indices[indptr[p] as usize..indptr[p + 1] as usize] {
                v += f64::from(wave[j as usize * ns + s]);
            }
            if v > best {
                best = v;
                *pk = s as i64;
            }
        }
    }
}

/// The neighbour CSR without HV-disabled pixels (ctapipe skips broken neighbours in the sum).
fn filtered_neighbors(
    geom: &CameraGeometry,
    ro: &TelReadout,
    ptr: &mut Vec<u32>,
    idx: &mut Vec<u32>,
) {
    ptr.clear();
    idx.clear();
    ptr.push(0u32);
    for p in 0..geom.n_pixels() {
        idx.extend(
            geom.neighbors(p)
                .iter()
                .copied()
                .filter(|&j| !ro.broken[j as usize]),
        );
        ptr.push(idx.len() as u32);
    }
}

/// NeighborAverage: broken pixels get the float32 sum of their non-broken neighbours divided
/// by the count (0 if none).
fn fill_broken(geom: &CameraGeometry, ro: &TelReadout, out: &mut Dl1Image) {
    if !ro.any_broken {
        return;
    }
    for p in 0..out.image.len() {
        if !ro.broken[p] {
            continue;
        }
        let mut si = 0.0f32;
        let mut st = 0.0f32;
        let mut n = 0u32;
        for &j in geom.neighbors(p) {
            let j = j as usize;
            if ro.broken[j] {
                continue;
            }
            si += out.image[j];
            st += out.peak_time[j];
            n += 1;
        }
        if n > 0 {
            out.image[p] = (f64::from(si) / f64::from(n)) as f32;
            out.peak_time[p] = (f64::from(st) / f64::from(n)) as f32;
        } else {
            out.image[p] = 0.0;
            out.peak_time[p] = 0.0;
        }
    }
}

/// First index of the maximum (numpy `argmax`; NaN-free input): a vectorised max, then the
/// first position holding it.
fn argmax_f64(v: &[f64]) -> usize {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    v.iter().position(|&x| x == m).unwrap_or(0)
}

fn argmax_f32(v: &[f32]) -> usize {
    let mut best = 0;
    let mut bv = f32::NEG_INFINITY;
    for (i, &x) in v.iter().enumerate() {
        if x > bv {
            bv = x;
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::simtel::{CameraOrganisation, CameraSettings, DisabledPixels, PixelSettings};

    /// A 7-pixel hexagonal camera (centre + ring): the centre has 6 neighbours, each ring pixel 3.
    fn camera(hv_disabled: Vec<i32>) -> (TelescopeDescription, CameraGeometry) {
        let mut x = vec![0.0f32];
        let mut y = vec![0.0f32];
        for k in 0..6 {
            let a = std::f32::consts::PI / 3.0 * k as f32;
            x.push(0.05 * a.cos());
            y.push(0.05 * a.sin());
        }
        let cs = CameraSettings {
            n_pixels: 7,
            focal_length: 10.0,
            pixel_x: x,
            pixel_y: y,
            pixel_shape: vec![1; 7],
            pixel_area: vec![0.002; 7],
            ..Default::default()
        };
        let ps = PixelSettings {
            time_slice: 1.0,
            sum_bins: 10,
            ..Default::default()
        };
        describe(cs, 1, ps, hv_disabled)
    }

    /// A telescope of camera `cs` (one drawer) with `n_gains` gains, the given pixel
    /// settings and HV-disabled pixels, and its geometry.
    fn describe(
        cs: CameraSettings,
        n_gains: usize,
        pixel_settings: PixelSettings,
        hv_disabled: Vec<i32>,
    ) -> (TelescopeDescription, CameraGeometry) {
        let g = CameraGeometry::new("test", &cs, 10.0);
        let desc = TelescopeDescription {
            tel_id: 1,
            camera_organisation: CameraOrganisation {
                n_pixels: cs.n_pixels,
                n_drawers: 1,
                n_gains,
                n_sectors: 0,
            },
            camera_settings: cs,
            pixel_settings,
            disabled_pixels: DisabledPixels {
                trigger_disabled: vec![],
                hv_disabled,
            },
            meta: Default::default(),
        };
        (desc, g)
    }

    fn event(waves: &[[u16; 10]]) -> (TelescopeEvent, TelCalibration) {
        let te = TelescopeEvent {
            tel_id: 1,
            n_gains: 1,
            n_pixels: 7,
            n_samples: 10,
            samples: waves.iter().flatten().copied().collect(),
            ..Default::default()
        };
        let cal = TelCalibration {
            n_gains: 1,
            n_pixels: 7,
            pedestal_per_sample: vec![0.0; 7],
            dc_to_pe: vec![1.0; 7],
            time_shift: vec![0.0; 7],
        };
        (te, cal)
    }

    fn run(
        kind: ExtractorKind,
        width: usize,
        shift: i64,
        peak_index: i64,
        waves: &[[u16; 10]],
        broken: Vec<i32>,
    ) -> Dl1Image {
        let (desc, g) = camera(broken);
        let ex = ExtractorSettings {
            kind,
            window_width: width,
            window_shift: shift,
            local_weight: 0,
            peak_index,
            apply_integration_correction: false,
        };
        let ro = TelReadout::new(&desc, &ex, GAIN_THRESHOLD_ADC);
        let (te, cal) = event(waves);
        let mut out = Dl1Image::default();
        calibrate(&te, &cal, &g, &ro, &mut CalibScratch::default(), &mut out);
        out
    }

    const PULSE: [u16; 10] = [0, 0, 1, 5, 2, 0, 0, 0, 0, 0];
    const FLAT: [u16; 10] = [1; 10];

    #[test]
    fn geometry_of_the_test_camera() {
        let (_, g) = camera(vec![]);
        assert_eq!(g.neighbors(0), &[1, 2, 3, 4, 5, 6]);
        assert_eq!(g.neighbors(1).len(), 3);
    }

    /// Hand-computed windows: peak at sample 3, width 3, shift 1 → samples 2..=4:
    /// charge 1+5+2 = 8, time (2·1 + 3·5 + 4·2)/8 = 3.125 ns.
    #[test]
    fn local_fixed_and_full_extractors() {
        let w = [PULSE; 7];
        let o = run(ExtractorKind::LocalPeakWindowSum, 3, 1, 0, &w, vec![]);
        assert_eq!(o.image[0], 8.0);
        assert_eq!(o.peak_time[0], 3.125);
        let o = run(ExtractorKind::FixedWindowSum, 3, 0, 0, &w, vec![]);
        assert_eq!(o.image[0], 1.0); // samples 0..=2
        assert_eq!(o.peak_time[0], 2.0);
        let o = run(ExtractorKind::FullWaveformSum, 3, 1, 0, &w, vec![]);
        assert_eq!(o.image[0], 8.0);
        assert_eq!(o.peak_time[0], 3.125);
        // the window is clipped at the end of the trace: fixed peak 9, width 3, shift 0 → sample 9 only
        let o = run(ExtractorKind::FixedWindowSum, 3, 0, 9, &w, vec![]);
        assert_eq!(o.image[0], 0.0);
        assert_eq!(o.peak_time[0], 9.0, "no positive sample: the peak index");
    }

    /// NeighborPeakWindowSum takes the window from the neighbours' summed waveform (own weight
    /// 0): a flat centre pixel surrounded by pulses peaking at sample 3 integrates 2..=4.
    #[test]
    fn neighbour_peak_uses_the_neighbours() {
        let mut w = [PULSE; 7];
        w[0] = FLAT;
        let o = run(ExtractorKind::NeighborPeakWindowSum, 3, 1, 0, &w, vec![]);
        assert_eq!(o.image[0], 3.0);
        assert_eq!(o.peak_time[0], 3.0);
        // GlobalPeakWindowSum: the camera average also peaks at 3
        let o = run(ExtractorKind::GlobalPeakWindowSum, 3, 1, 0, &w, vec![]);
        assert_eq!(o.image[0], 3.0);
    }

    /// An HV-disabled pixel is left out of the neighbour sums and gets the mean of its
    /// non-broken neighbours.
    #[test]
    fn broken_pixels_are_filled_with_the_neighbour_mean() {
        let mut w = [PULSE; 7];
        w[1] = [0, 0, 0, 0, 0, 0, 0, 0, 9, 0];
        let o = run(ExtractorKind::LocalPeakWindowSum, 3, 1, 0, &w, vec![1]);
        // neighbours of pixel 1: 0, 2, 6, all with charge 8 and time 3.125
        assert_eq!(o.image[1], 8.0);
        assert_eq!(o.peak_time[1], 3.125);
    }

    /// Reference pulse sampled every 1 ns, readout samples of 1 ns: histogram counts
    /// [0,1,3,1,0,…,0,2] (the last bin holds x = 12 and 13), total 7; window of 3 around the
    /// maximum at bin 2 holds 5/7 → correction 7/5.
    #[test]
    fn integration_correction_hand_computed() {
        let pulse: Vec<f32> = vec![
            0.0, 1.0, 3.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0,
        ];
        let c = integration_correction(&[pulse], 1.0, 1.0, 3, 1, 1);
        assert!((c[0] - 1.4).abs() < 1e-15, "{}", c[0]);
    }

    /// The vectorised neighbour peak search equals the one-sample-at-a-time form exactly, for
    /// sample counts around the lane width, random neighbour lists, local weights 0 and 1, and
    /// waveforms with many exact ties (small integers) and with float noise.
    #[test]
    fn neighbor_peaks_fast_equals_reference() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (mut fallbacks, mut screened) = (0, 0);
        for ns in [1usize, 2, 7, 8, 9, 15, 16, 25, 30, 40, 50, 75, 128] {
            let np = 300;
            let mut ptr = vec![0u32];
            let mut idx = Vec::new();
            for _ in 0..np {
                let k = rng.random_range(0..8);
                for _ in 0..k {
                    idx.push(rng.random_range(0..np as u32));
                }
                ptr.push(idx.len() as u32);
            }
            for ties in [true, false] {
                let wave: Vec<f32> = (0..np * ns)
                    .map(|_| {
                        if ties {
                            rng.random_range(-2..3) as f32
                        } else {
                            rng.random_range(-3.0f32..40.0) * 1.37
                        }
                    })
                    .collect();
                // near-ties below the float32 resolution of the sums: only the float64 path
                // can separate them
                let mut wave = wave;
                // bitwise-constant waveforms (zeros, −0.0, other values) on most pixels, so
                // that many pixels have only constant neighbours (the exact all-tie case)
                for p in 0..np {
                    if p % 4 != 0 {
                        let c = [0.0f32, -0.0, 2.5, -1.0][p % 4];
                        wave[p * ns..(p + 1) * ns].fill(c);
                    }
                }
                if !ties && ns >= 2 {
                    for p in (0..np).step_by(5) {
                        wave[p * ns] = 1000.0;
                        wave[p * ns + ns - 1] = 1000.0 + 1e-4 * (p % 3) as f32;
                    }
                }
                for lw in [0.0, 1.0, 3.0] {
                    let (mut a, mut b) = (vec![0i64; np], vec![0i64; np]);
                    let fb = neighbor_peaks(
                        &wave,
                        ns,
                        &ptr,
                        &idx,
                        lw,
                        &mut PeakScratch::default(),
                        &mut a,
                    );
                    neighbor_peaks_reference(&wave, ns, &ptr, &idx, lw, &mut b);
                    assert_eq!(a, b, "ns {ns} ties {ties} lw {lw}");
                    // the float64 path alone, pixel by pixel
                    let mut acc = Vec::new();
                    for p in 0..np {
                        let nb = &idx[ptr[p] as usize..ptr[p + 1] as usize];
                        assert_eq!(
                            neighbor_peak_f64(&wave, ns, p, nb, lw, &mut acc) as i64,
                            b[p]
                        );
                    }
                    fallbacks += fb;
                    screened += np - fb;
                }
            }
        }
        assert!(
            fallbacks > 1000 && screened > 5000,
            "{fallbacks} {screened}"
        );
    }

    /// A hexagonal camera of `rings` rings around a centre pixel (1 + 3·r·(r+1) pixels, 6
    /// neighbours inside), with the given HV-disabled pixels, samples, gains and time slice;
    /// `scramble` numbers the pixels in a scattered order (position of pixel p: the one of
    /// pixel 23·p mod n, n prime), so that neighbours lie far apart in index, before and
    /// after the pixel (as SCTCam's across its modules, but over the whole camera).
    fn hex_camera(
        rings: i32,
        hv_disabled: Vec<i32>,
        n_samples: usize,
        n_gains: usize,
        time_slice: f32,
        scramble: bool,
    ) -> (TelescopeDescription, CameraGeometry) {
        let ps = PixelSettings {
            time_slice,
            sum_bins: n_samples as i32,
            ref_step: 0.25,
            ref_shape: vec![
                (0..80)
                    .map(|i| (-((i as f32 - 20.0) / 6.0).powi(2)).exp())
                    .collect();
                n_gains
            ],
            ..Default::default()
        };
        let mut cs = crate::geometry::hex_camera_settings(rings);
        if scramble {
            let n = cs.n_pixels;
            assert!(
                !n.is_multiple_of(23) && (2..n).all(|d| !n.is_multiple_of(d)),
                "{n} pixels: not prime"
            );
            let (x, y) = (cs.pixel_x.clone(), cs.pixel_y.clone());
            for p in 0..n {
                cs.pixel_x[p] = x[23 * p % n];
                cs.pixel_y[p] = y[23 * p % n];
            }
        }
        describe(cs, n_gains, ps, hv_disabled)
    }

    /// Bitwise equality of two DL1 images (NaN-safe).
    fn same_bits(a: &Dl1Image, b: &Dl1Image) -> bool {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        bits(&a.image) == bits(&b.image)
            && bits(&a.peak_time) == bits(&b.peak_time)
            && a.selected_gain == b.selected_gain
    }

    /// The dispatched calibration and each SIMD build the CPU runs (the fused kernels of
    /// `calib_avx2` and `calib_avx512` for NeighborPeakWindowSum with 2–64 samples; a build
    /// the CPU lacks is skipped with a notice) against the baseline build, bit for bit, on
    /// random images: every sample count from 2 to 66 (1 to 9 vectors of 8 floats, 1 to 5 of 16, partial last vectors,
    /// and lengths the fused kernel leaves to the baseline code), one and two gains (with
    /// pixels over the gain threshold), HV-disabled pixels, own-waveform weights 0, 1 and 3,
    /// windows of width 1 to 12 (the four-pixel float64 extraction up to 8, scalar beyond) and
    /// shifts up to beyond the trace, sampling rates 1 and 1/0.8 GHz, and waveforms that
    /// produce the hard cases: exact repeats of few-level noise (ties the fused kernel settles
    /// by comparing the terms), near-ties below the float32 resolution, constant and zero
    /// rows, dc_to_pe of 0 and NaN, and an infinite pedestal.
    #[test]
    fn dispatched_calibration_equals_baseline() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (mut cases, mut left_out) = (0, 0);
        let mut dispatched = CalibScratch::default();
        let mut reused = Dl1Image::default();
        // every SIMD build this CPU runs, each against the baseline build
        let mut fast: Vec<(CalibKernel, CalibScratch)> = Vec::new();
        for kernel in [CalibKernel::Avx2, CalibKernel::Avx512] {
            if kernel.is_available() {
                fast.push((kernel, CalibScratch::default()));
            } else {
                eprintln!("{kernel:?} not available on this CPU: its comparison is skipped");
            }
        }
        for ns in 2..=66usize {
            let n_gains = 1 + ns % 2;
            let broken = if ns % 3 == 0 { vec![0, 5, 17] } else { vec![] };
            let time_slice = if ns % 4 == 0 { 0.8 } else { 1.0 };
            // 61 pixels (3 blocks of 16 of the AVX-512 build and 13 more) or, for every
            // fifth length, 127 (7 blocks and 15); scattered pixel numbers for every fourth
            // length (the AVX-512 build converts the R1 rows a block reads just before it:
            // then nearly all of them for the first block)
            let rings = if ns % 5 == 1 { 6 } else { 4 };
            let scramble = ns % 4 == 2;
            let (desc, g) = hex_camera(rings, broken, ns, n_gains, time_slice, scramble);
            let np = g.n_pixels();
            for (round, lw) in [0i64, 1, 3, 0].into_iter().enumerate() {
                let width = 1 + (ns + round * 5) % 12;
                let shift = [0i64, 3, 2, 20][round];
                let ex = ExtractorSettings {
                    kind: ExtractorKind::NeighborPeakWindowSum,
                    window_width: width,
                    window_shift: shift,
                    local_weight: lw,
                    peak_index: 0,
                    apply_integration_correction: true,
                };
                let ro = TelReadout::new(&desc, &ex, GAIN_THRESHOLD_ADC);
                // in rounds 1 and 2 every pixel has the same pedestal and dc_to_pe and most
                // rows are two-level noise: sums with the same number of high neighbours are
                // equal in exact arithmetic but come from different terms, so their float32
                // and float64 roundings differ in the last bits (near-ties that only the
                // float64 sums settle)
                let uniform = round == 1 || round == 2;
                let mut samples = vec![0u16; n_gains * np * ns];
                for gp in 0..n_gains * np {
                    let kind = if uniform && gp % 9 != 0 {
                        0
                    } else {
                        (gp + round) % 7
                    };
                    let row = &mut samples[gp * ns..(gp + 1) * ns];
                    for (s, v) in row.iter_mut().enumerate() {
                        *v = match kind {
                            // few-level noise: exact repeats of the neighbour tuples
                            0 | 1 => 25 + rng.random_range(0..2u16),
                            // a pulse on noise
                            2 => 300 + rng.random_range(0..20u16) + 400 * u16::from(s == ns / 2),
                            3 => 100,                          // constant
                            4 => 0,                            // zero
                            5 => rng.random_range(0..5000u16), // over the gain threshold
                            _ => rng.random_range(90..130u16),
                        };
                    }
                }
                let mut pedestal: Vec<f32> = (0..n_gains * np)
                    .map(|_| rng.random_range(20.0f32..120.0))
                    .collect();
                let mut dc_to_pe: Vec<f32> = (0..n_gains * np)
                    .map(|_| rng.random_range(0.01f32..0.5))
                    .collect();
                if uniform {
                    pedestal.fill(24.3);
                    dc_to_pe.fill(0.1037);
                }
                dc_to_pe[3] = 0.0;
                if round == 3 {
                    pedestal[7] = f32::INFINITY;
                }
                if round == 2 {
                    dc_to_pe[11] = f32::NAN;
                }
                let te = TelescopeEvent {
                    tel_id: 1,
                    n_gains,
                    n_pixels: np,
                    n_samples: ns,
                    samples,
                    ..Default::default()
                };
                let cal = TelCalibration {
                    n_gains,
                    n_pixels: np,
                    pedestal_per_sample: pedestal,
                    dc_to_pe,
                    time_shift: (0..n_gains * np)
                        .map(|_| rng.random_range(-22.0f32..-20.0))
                        .collect(),
                };
                let mut b = Dl1Image::default();
                calibrate_baseline(&te, &cal, &g, &ro, &mut CalibScratch::default(), &mut b);
                // into an image left over from the previous case (other sizes, other values,
                // then garbage): every output is written, none is left from before
                reused.image.fill(-7.5);
                reused.peak_time.fill(f32::NAN);
                reused.selected_gain.fill(1);
                calibrate(&te, &cal, &g, &ro, &mut dispatched, &mut reused);
                assert!(
                    same_bits(&reused, &b),
                    "dispatched: ns {ns} gains {n_gains} lw {lw} width {width} shift {shift}"
                );
                for (kernel, scratch) in &mut fast {
                    let mut a = Dl1Image::default();
                    calibrate_with(*kernel, &te, &cal, &g, &ro, scratch, &mut a);
                    assert!(
                        same_bits(&a, &b),
                        "{kernel:?}: ns {ns} gains {n_gains} lw {lw} width {width} shift {shift}"
                    );
                }
                // screened by every build for several cleanings (picture, boundary): a left-out
                // pixel's full charge is below both thresholds, or it and every neighbour's
                // are below the picture threshold (or NaN); every other output bit for bit
                // the full calibration's
                let cleanings = [
                    (0.6, 0.3),
                    (4.0, 2.0),
                    (10.0, 5.0),
                    (9.0, 12.0),
                    (60.0, 60.0),
                ];
                for (picture, boundary) in cleanings {
                    let tc = crate::cleaning::Tailcuts {
                        picture,
                        boundary,
                        min_picture_neighbors: 2,
                        keep_isolated: false,
                    };
                    let floor = picture.min(boundary);
                    let fails = |v: f32, thr: f64| f64::from(v).is_nan() || f64::from(v) < thr;
                    let mut builds = vec![(CalibKernel::Baseline, CalibScratch::default())];
                    builds.extend(fast.iter().map(|(k, _)| (*k, CalibScratch::default())));
                    for (kernel, mut scratch) in builds {
                        let mut a = Dl1Image::default();
                        calibrate_screened_with(
                            kernel,
                            &te,
                            &cal,
                            &g,
                            &ro,
                            Some(&tc),
                            &mut scratch,
                            &mut a,
                        );
                        let at = format!(
                            "{kernel:?}: ns {ns} lw {lw} width {width} {picture}/{boundary}"
                        );
                        for p in 0..np {
                            let same = a.image[p].to_bits() == b.image[p].to_bits()
                                && a.peak_time[p].to_bits() == b.peak_time[p].to_bits();
                            if !same {
                                assert!(a.image[p].is_nan() && a.peak_time[p].is_nan(), "{at} {p}");
                                let no_picture = fails(b.image[p], picture)
                                    && g.neighbors(p)
                                        .iter()
                                        .all(|&j| fails(b.image[j as usize], picture));
                                assert!(fails(b.image[p], floor) || no_picture, "{at} pixel {p}");
                                left_out += 1;
                            }
                        }
                    }
                }
                cases += 1;
            }
        }
        assert_eq!(cases, 65 * 4);
        assert!(left_out > 10_000, "{left_out} pixels left out");
        // the float64 near-tie path of every SIMD build was exercised
        for (kernel, scratch) in &fast {
            let (fallbacks, searched) = scratch.peak_fallbacks();
            assert!(fallbacks > 100, "{kernel:?}: {fallbacks} of {searched}");
        }
    }

    /// `skip_limit` is the boundary of {M : bound(M) < floor}: every float32 just below it is
    /// inside, the limit itself and the floats just above are not (checked around the limit
    /// and on random values), for windows 1..=64, corrections around 1 and floors from 0.01
    /// to 1000; 0 for a negative or non-finite correction or a floor ≤ 0.
    #[test]
    fn skip_limit_is_the_boundary() {
        use rand::{Rng, SeedableRng};
        let bound = |m: f32, width: usize, corr: f64| {
            let q = (f64::from(m) * width as f64) as f32;
            (f64::from(q) * corr) as f32
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for _ in 0..3000 {
            let width = rng.random_range(1..=64usize);
            let corr = rng.random_range(0.5..2.0f64);
            let floor = 10f64.powf(rng.random_range(-2.0..3.0));
            let lim = skip_limit(width, corr, floor);
            assert!(lim > 0.0 && lim.is_finite());
            let below = |m: f32| f64::from(bound(m, width, corr)) < floor;
            let mut m = lim;
            for _ in 0..20 {
                assert!(!below(m), "{width} {corr} {floor}: {m} at or above {lim}");
                m = f32::from_bits(m.to_bits() + 1);
            }
            let mut m = lim;
            for _ in 0..20 {
                m = f32::from_bits(m.to_bits() - 1);
                assert!(below(m), "{width} {corr} {floor}: {m} below {lim}");
            }
            let x = rng.random_range(0.0..2.0 * lim);
            assert_eq!(below(x), x < lim, "{width} {corr} {floor}: {x}");
        }
        assert_eq!(skip_limit(7, -1.0, 5.0), 0.0);
        assert_eq!(skip_limit(7, f64::NAN, 5.0), 0.0);
        assert_eq!(skip_limit(7, 1.0, 0.0), 0.0);
        assert_eq!(skip_limit(7, 1.0, f64::NAN), 0.0);
        // with no correction every finite charge is 0, up to where 7·M overflows float32
        assert_eq!(
            skip_limit(7, 0.0, 5.0),
            f32::from_bits((f32::MAX / 7.0).to_bits() + 1)
        );
    }

    /// `adc_range` holds exactly the ADC values whose float32 R1 has |R1| < limit: checked on
    /// all 65,536 values for random pedestals (inside and outside 0..65535, integer and not),
    /// dc_to_pe of either sign over 14 decades, 0, −0, subnormal, and limits from 1e−6 to
    /// +∞, and for NaN and infinite inputs (no interval); its `u32` form marks every value of
    /// an empty interval outside.
    #[test]
    fn adc_range_is_exact() {
        use rand::{Rng, SeedableRng};
        let check = |ped: f32, dc: f32, limit: f32| {
            let inside = |a: u32| ((a as f32 - ped) * dc).abs() < limit;
            let r = adc_range(ped, dc, limit);
            for a in 0..=65535u32 {
                let want = inside(a);
                let got = r.is_some_and(|(lo, hi)| (u32::from(lo)..=u32::from(hi)).contains(&a));
                assert_eq!(got, want, "ped {ped} dc {dc} limit {limit}: ADC {a}");
            }
            let [lo, hi] = adc_range_lanes(ped, dc, limit);
            let (lo, hi) = ((lo & 0xFFFF) as u16, (hi & 0xFFFF) as u16);
            assert_eq!(r.is_none(), lo > hi);
            // the kernel's test: (lo ⊖ a) | (a ⊖ hi) nonzero, saturating
            for a in [
                0u16,
                1,
                lo,
                hi,
                lo.wrapping_sub(1),
                hi.wrapping_add(1),
                65535,
            ] {
                let out = lo.saturating_sub(a) | a.saturating_sub(hi) != 0;
                assert_eq!(
                    out,
                    !inside(u32::from(a)),
                    "ped {ped} dc {dc} limit {limit}: ADC {a}"
                );
            }
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for _ in 0..150 {
            let ped = match rng.random_range(0..4) {
                0 => rng.random_range(0..70_000) as f32,
                1 => rng.random_range(-1e5..1e5f32),
                _ => rng.random_range(0.0..2000.0f32),
            };
            let dc = 10f32.powf(rng.random_range(-10.0..4.0))
                * if rng.random_bool(0.2) { -1.0 } else { 1.0 };
            let limit = 10f32.powf(rng.random_range(-6.0..4.0));
            check(ped, dc, limit);
        }
        for (ped, dc, limit) in [
            (300.0, 0.0, 1.0),
            (300.0, -0.0, 1.0),
            (300.5, 1e-45, 1e-44),
            (300.0, 1.0, 2.0),
            (300.0, 1.0, f32::INFINITY),
            (300.0, 3e38, 1e38),
            (300.0, 1.0, 0.0),
            (300.0, 1.0, -1.0),
            (300.0, 1.0, f32::NAN),
            (f32::NAN, 1.0, 5.0),
            (f32::INFINITY, 1.0, 5.0),
            (f32::INFINITY, 0.0, 5.0),
            (300.0, f32::INFINITY, 5.0),
            (300.0, f32::NAN, 5.0),
            (-5.0, 1.0, 2.0),
            (70_000.0, 1.0, 2.0),
        ] {
            check(ped, dc, limit);
        }
    }

    /// Gain selection: any high-gain sample above 4000 ADC switches the pixel to low gain.
    #[test]
    fn threshold_gain_selection() {
        let (desc, g) = camera(vec![]);
        let ex = ExtractorSettings::for_kind(ExtractorKind::LocalPeakWindowSum);
        let ro = TelReadout::new(&desc, &ex, GAIN_THRESHOLD_ADC);
        let mut samples = vec![100u16; 2 * 7 * 10];
        samples[3 * 10 + 5] = 4001; // high gain, pixel 3
        samples[4 * 10 + 5] = 4000; // exactly at the threshold stays high gain
        let te = TelescopeEvent {
            tel_id: 1,
            n_gains: 2,
            n_pixels: 7,
            n_samples: 10,
            samples,
            ..Default::default()
        };
        let cal = TelCalibration {
            n_gains: 2,
            n_pixels: 7,
            pedestal_per_sample: vec![100.0; 14],
            dc_to_pe: vec![1.0; 14],
            time_shift: vec![0.0; 14],
        };
        let mut out = Dl1Image::default();
        calibrate(&te, &cal, &g, &ro, &mut CalibScratch::default(), &mut out);
        assert_eq!(out.selected_gain, vec![0, 0, 0, 1, 0, 0, 0]);
    }
}
