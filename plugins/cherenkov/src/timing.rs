//! Timing parameters (ctapipe `image/timing.py::timing_parameters`): peak time against the
//! longitudinal coordinate. ctapipe fits a randomised least-trimmed-squares line; the default
//! here is the deterministic ordinary least-squares fit on the same points (the reference's
//! `ols_timing_*`), with the same deviation definition (unweighted RMS over all points).

use crate::hillas::{FrameView, HillasParameters};

/// Timing fit result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimingParameters {
    /// Slope [ns per frame unit].
    pub slope: f64,
    /// Intercept \[ns\] (time at the cog).
    pub intercept: f64,
    /// RMS residual \[ns\].
    pub deviation: f64,
}

impl TimingParameters {
    /// NaN defaults.
    pub fn nan() -> Self {
        Self {
            slope: f64::NAN,
            intercept: f64::NAN,
            deviation: f64::NAN,
        }
    }
}

/// OLS timing fit over pixels `idx`.
pub fn timing_parameters(
    frame: &FrameView<'_>,
    peak_time: &[f32],
    h: &HillasParameters,
    idx: &[u32],
) -> TimingParameters {
    let (sp, cp) = h.psi.sin_cos();
    let (mut n, mut sl, mut st) = (0.0f64, 0.0, 0.0);
    for &i in idx {
        let i = i as usize;
        let t = f64::from(peak_time[i]);
        if !t.is_finite() {
            continue;
        }
        let l = (frame.x[i] - h.x) * cp + (frame.y[i] - h.y) * sp;
        n += 1.0;
        sl += l;
        st += t;
    }
    if n < 2.0 {
        return TimingParameters::nan();
    }
    let (ml, mt) = (sl / n, st / n);
    let (mut sll, mut slt) = (0.0, 0.0);
    for &i in idx {
        let i = i as usize;
        let t = f64::from(peak_time[i]);
        if !t.is_finite() {
            continue;
        }
        let l = (frame.x[i] - h.x) * cp + (frame.y[i] - h.y) * sp - ml;
        sll += l * l;
        slt += l * (t - mt);
    }
    let slope = slt / sll;
    let intercept = mt - slope * ml;
    let mut ss = 0.0;
    for &i in idx {
        let i = i as usize;
        let t = f64::from(peak_time[i]);
        if !t.is_finite() {
            continue;
        }
        let l = (frame.x[i] - h.x) * cp + (frame.y[i] - h.y) * sp;
        let r = l * slope + intercept - t;
        ss += r * r;
    }
    TimingParameters {
        slope,
        intercept,
        deviation: (ss / n).sqrt(),
    }
}

/// Which line fit the timing parameters use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TimingFit {
    /// Deterministic ordinary least squares on all cleaned pixels (the default; the
    /// references' `ols_timing_*`).
    Ols,
    /// ctapipe's least-trimmed-squares fit (`ctapipe/fitting.py::lts_linear_regression` as
    /// called by `image/timing.py::timing_parameters`), with random starts drawn from a
    /// generator seeded per image (see [`lts_timing_parameters`]).
    Lts,
}

impl caliper_core::ConfigDocs for TimingFit {}

/// The timing fit used by the image step, with the LTS settings and the per-image seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimingOptions {
    /// OLS or LTS.
    pub fit: TimingFit,
    /// LTS settings.
    pub lts: LtsSettings,
    /// Seed of the LTS random starts for this image.
    pub seed: u64,
}

impl Default for TimingOptions {
    fn default() -> Self {
        Self {
            fit: TimingFit::Ols,
            lts: LtsSettings::default(),
            seed: 0,
        }
    }
}

/// Settings of the least-trimmed-squares fit (ctapipe's values as `timing_parameters` calls
/// `lts_linear_regression(x, y, samples=5)`: relative sample size 0.85, at most 20 C-steps,
/// convergence when the residual sum of squares changes by less than 1e-12).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LtsSettings {
    /// Random starts (pairs of points).
    pub samples: usize,
    /// Fraction of the points kept in each C-step.
    pub relative_sample_size: f64,
    /// Maximum C-steps per start.
    pub max_iterations: usize,
    /// Convergence threshold on the change of the residual sum of squares.
    pub eps: f64,
}

impl Default for LtsSettings {
    fn default() -> Self {
        Self {
            samples: 5,
            relative_sample_size: 0.85,
            max_iterations: 20,
            eps: 1e-12,
        }
    }
}

/// Reusable buffers of [`lts_timing_parameters`].
#[derive(Debug, Default)]
pub struct LtsScratch {
    x: Vec<f64>,
    y: Vec<f64>,
    r2: Vec<(f64, u32)>,
    sample: Vec<u32>,
    longi: Vec<f64>,
    t: Vec<f64>,
}

/// ctapipe `fitting.py::EPS` = 2 · float64 machine epsilon: `linear_regression` returns NaN
/// when `det(XᵀX)` is below it.
const LTS_EPS_DET: f64 = 2.0 * f64::EPSILON;

/// ctapipe `linear_regression(X[sample], y[sample])`: solve the normal equations
/// `(XᵀX) β = Xᵀy` for the line `y = β₀ x + β₁`; NaN if `det(XᵀX) < EPS`.
///
/// ctapipe computes `inv(XᵀX) @ Xᵀ @ y` with LAPACK; this is the same 2×2 algebra written
/// out (the explicit inverse), equal up to rounding (≈1e-15 relative).
fn lts_regression(x: &[f64], y: &[f64], sample: &[u32]) -> [f64; 2] {
    let (mut sxx, mut sx, mut sxy, mut sy) = (0.0, 0.0, 0.0, 0.0);
    for &i in sample {
        let (xi, yi) = (x[i as usize], y[i as usize]);
        sxx += xi * xi;
        sx += xi;
        sxy += xi * yi;
        sy += yi;
    }
    let n = sample.len() as f64;
    let det = sxx * n - sx * sx;
    if det.is_nan() || det < LTS_EPS_DET {
        return [f64::NAN; 2];
    }
    [(n * sxy - sx * sy) / det, (sxx * sy - sx * sxy) / det]
}

/// ctapipe `residual_sum_of_squares` over the points of `sample`.
fn lts_rss(x: &[f64], y: &[f64], sample: &[u32], beta: [f64; 2]) -> f64 {
    sample
        .iter()
        .map(|&i| {
            let r = y[i as usize] - (x[i as usize] * beta[0] + beta[1]);
            r * r
        })
        .sum()
}

/// Least-trimmed-squares line `y = β₀ x + β₁` as ctapipe's `lts_linear_regression`
/// (Rousseeuw & Van Driessen's C-steps): for each of `samples` random pairs of distinct points,
/// fit the pair, then repeatedly refit the `⌊relative_sample_size · n⌋` points with the
/// smallest squared residuals until the residual sum of squares changes by less than `eps`
/// (at most `max_iterations` times); keep the start with the smallest final sum. Non-finite
/// points are dropped first; fewer than 2 points give NaN. Returns (β, sum of squares).
///
/// The pairs are drawn as ctapipe draws them (first uniform in `[0, n)`, second uniform in
/// `[0, n−1)` and shifted up past the first), but from `rng`, not from ctapipe's process-wide
/// `numpy.random.default_rng(0)` PCG64 stream, whose state depends on every earlier fit in the
/// process. Ties among the squared residuals are broken by pixel order (numpy's default sort
/// is not stable; exact ties are rare).
pub fn lts_linear_regression<R: rand::Rng>(
    x: &[f64],
    y: &[f64],
    settings: &LtsSettings,
    rng: &mut R,
    scratch: &mut LtsScratch,
) -> ([f64; 2], f64) {
    let LtsScratch {
        x: xs,
        y: ys,
        r2,
        sample,
        ..
    } = scratch;
    xs.clear();
    ys.clear();
    for (&a, &b) in x.iter().zip(y) {
        if a.is_finite() && b.is_finite() {
            xs.push(a);
            ys.push(b);
        }
    }
    let n = xs.len();
    if n < 2 {
        return ([f64::NAN; 2], f64::NAN);
    }
    // np.int64(relative_sample_size * len(x)): truncation toward zero
    let sample_size = ((settings.relative_sample_size * n as f64) as usize).min(n);
    let mut best_beta = [f64::NAN; 2];
    let mut best_error = f64::INFINITY;
    for _ in 0..settings.samples {
        let a = rng.random_range(0..n);
        let mut b = rng.random_range(0..n - 1);
        if b >= a {
            b += 1;
        }
        sample.clear();
        sample.extend([a as u32, b as u32]);
        let mut beta = lts_regression(xs, ys, sample);
        if beta[0].is_nan() {
            continue;
        }
        let mut error = lts_rss(xs, ys, sample, beta);
        for _ in 0..settings.max_iterations {
            r2.clear();
            r2.extend(xs.iter().zip(ys.iter()).enumerate().map(|(i, (&xi, &yi))| {
                let r = yi - (xi * beta[0] + beta[1]);
                (r * r, i as u32)
            }));
            // argsort(...)[:sample_size]; NaN sorts last as in numpy
            r2.sort_unstable_by(|p, q| p.0.total_cmp(&q.0).then(p.1.cmp(&q.1)));
            sample.clear();
            sample.extend(r2[..sample_size].iter().map(|&(_, i)| i));
            beta = lts_regression(xs, ys, sample);
            let last_error = error;
            error = lts_rss(xs, ys, sample, beta);
            if (last_error - error).abs() < settings.eps {
                break;
            }
        }
        if error < best_error {
            best_error = error;
            best_beta = beta;
        }
    }
    (best_beta, best_error)
}

/// Timing parameters with ctapipe's least-trimmed-squares fit (`image/timing.py`): the slope
/// and intercept of the LTS line of peak time against the longitudinal coordinate, and the
/// deviation = RMS residual of that line over *all* cleaned pixels (ctapipe's `rmse`).
///
/// `rng` supplies the random starts; the chain seeds it per image from the configured seed,
/// the event and the telescope, so results do not depend on the thread count. Where the
/// LTS optimum does not depend on the starts, the result equals ctapipe's up to rounding;
/// where it does, ctapipe's own value depends on its global random state (the references
/// flag such rows with `timing_lts_rng_robust = 0`).
pub fn lts_timing_parameters<R: rand::Rng>(
    frame: &FrameView<'_>,
    peak_time: &[f32],
    h: &HillasParameters,
    idx: &[u32],
    settings: &LtsSettings,
    rng: &mut R,
    scratch: &mut LtsScratch,
) -> TimingParameters {
    let (sp, cp) = h.psi.sin_cos();
    // the two buffers are moved out and back so that `scratch` can be lent to the fit
    let mut longi = std::mem::take(&mut scratch.longi);
    let mut t = std::mem::take(&mut scratch.t);
    longi.clear();
    t.clear();
    for &i in idx {
        let i = i as usize;
        longi.push((frame.x[i] - h.x) * cp + (frame.y[i] - h.y) * sp);
        t.push(f64::from(peak_time[i]));
    }
    let (beta, _) = lts_linear_regression(&longi, &t, settings, rng, scratch);
    // rmse(longi · β₀ + β₁, peak_time) over all points
    let ss: f64 = longi
        .iter()
        .zip(&t)
        .map(|(&l, &ti)| {
            let r = l * beta[0] + beta[1] - ti;
            r * r
        })
        .sum();
    let deviation = (ss / longi.len() as f64).sqrt();
    let out = TimingParameters {
        slope: beta[0],
        intercept: beta[1],
        deviation,
    };
    scratch.longi = longi;
    scratch.t = t;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// 20 points on y = 2x + 1 and 2 outliers 50 above the line: the trimmed fit keeps
    /// ⌊0.85·22⌋ = 18 points, all on the line, so it recovers slope 2 and intercept 1 up to
    /// rounding (1e-12), with each of 20 seeds (the optimum is reached from most starts, and
    /// 5 starts are taken).
    #[test]
    fn lts_ignores_outliers() {
        let mut x: Vec<f64> = (0..20).map(f64::from).collect();
        let mut y: Vec<f64> = x.iter().map(|&v| 2.0 * v + 1.0).collect();
        x.extend([3.0, 15.0]);
        y.extend([57.0, 81.0]);
        for seed in 0..20 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let (b, rss) = lts_linear_regression(
                &x,
                &y,
                &LtsSettings::default(),
                &mut rng,
                &mut LtsScratch::default(),
            );
            assert!((b[0] - 2.0).abs() < 1e-12, "seed {seed}: slope {}", b[0]);
            assert!(
                (b[1] - 1.0).abs() < 1e-12,
                "seed {seed}: intercept {}",
                b[1]
            );
            assert!(rss < 1e-20, "{rss}");
        }
        // fewer than two finite points: NaN
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let (b, e) = lts_linear_regression(
            &[1.0, f64::NAN],
            &[1.0, 2.0],
            &LtsSettings::default(),
            &mut rng,
            &mut LtsScratch::default(),
        );
        assert!(b[0].is_nan() && b[1].is_nan() && e.is_nan());
    }
}
