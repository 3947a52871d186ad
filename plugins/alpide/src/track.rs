//! Straight-line tracking: Corryvreckan's `Tracking4D` with the straight-line model, and the
//! notebook's mode (one track per event through the one cluster of each hit plane, fitted with a
//! 3-D orthogonal (SVD) line fit). Residuals, biased and unbiased.
//!
//! Tracking4D (Corryvreckan `src/modules/Tracking4D`): seeds are all pairs of clusters on the
//! first and last (in z) tracking planes that have clusters; for every other plane in z order
//! the line through the clusters so far is intercepted with the plane (in local coordinates) and
//! the closest cluster inside the ellipse `(dx/cut_x)^2 + (dy/cut_y)^2 <= 1` is added; a track
//! needs `min_hits_on_track` clusters. The fit (`StraightLineTrack`) is weighted least squares of
//! `x(z) = x0 + sx z` and `y(z) = y0 + sy z` with weights `1/sigma^2` (sigma = cluster error),
//! `chi2 = sum dx^2/sx^2 + dy^2/sy^2`, `ndof = 2N - 4`.

use nalgebra::{Matrix3, Vector3};

use crate::cluster::{Cluster, PlaneInfo};

/// A straight line `x = x0 + sx z`, `y = y0 + sy z` (global, mm).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Line {
    /// x at z = 0.
    pub x0: f64,
    /// y at z = 0.
    pub y0: f64,
    /// dx/dz.
    pub sx: f64,
    /// dy/dz.
    pub sy: f64,
}

impl Line {
    /// (x, y) at `z`.
    #[inline]
    pub fn at(&self, z: f64) -> [f64; 2] {
        [self.x0 + self.sx * z, self.y0 + self.sy * z]
    }
    /// A point and the direction (for plane intersection).
    pub fn point_dir(&self) -> ([f64; 3], [f64; 3]) {
        ([self.x0, self.y0, 0.0], [self.sx, self.sy, 1.0])
    }
}

/// Weighted least squares of x(z) and y(z) over points `(global, error)`; `skip` leaves one out.
/// `None` with fewer than two points or a singular system (all z equal).
pub fn fit_lsq(points: &[([f64; 3], [f64; 2])], skip: Option<usize>) -> Option<Line> {
    fit_lsq_by(points.len(), skip, |k| points[k])
}

/// [`fit_lsq`] over `n` points `(global, error)` given by `get`: no allocation.
pub fn fit_lsq_by(
    n_points: usize,
    skip: Option<usize>,
    get: impl Fn(usize) -> ([f64; 3], [f64; 2]),
) -> Option<Line> {
    // Two independent 2x2 normal equations (Corryvreckan solves the equivalent 4x4 block system).
    let mut sx = [0.0f64; 5]; // S, Sz, Szz, Sx, Szx
    let mut sy = [0.0f64; 5];
    let mut n = 0;
    for k in 0..n_points {
        if Some(k) == skip {
            continue;
        }
        let (g, e) = get(k);
        n += 1;
        let z = g[2];
        for (s, (v, err)) in [(&mut sx, (g[0], e[0])), (&mut sy, (g[1], e[1]))] {
            let w = 1.0 / (err * err);
            s[0] += w;
            s[1] += w * z;
            s[2] += w * z * z;
            s[3] += w * v;
            s[4] += w * z * v;
        }
    }
    if n < 2 {
        return None;
    }
    let (x0, slx) = lsq_solve(sx)?;
    let (y0, sly) = lsq_solve(sy)?;
    Some(Line {
        x0,
        y0,
        sx: slx,
        sy: sly,
    })
}

/// chi2 of points about a line (Corryvreckan: sum of dx^2/sx^2 + dy^2/sy^2).
pub fn chi2(line: &Line, points: &[([f64; 3], [f64; 2])]) -> f64 {
    points
        .iter()
        .map(|(g, e)| {
            let p = line.at(g[2]);
            ((g[0] - p[0]) / e[0]).powi(2) + ((g[1] - p[1]) / e[1]).powi(2)
        })
        .sum()
}

/// 3-D orthogonal line fit (the notebook's `np.linalg.svd` of the centred points): the line
/// through the centroid along the principal axis, i.e. the first right singular vector of the
/// centred N x 3 matrix, which is the eigenvector of the largest eigenvalue of its 3 x 3 scatter
/// matrix. `None` for fewer than two points or a line parallel to the planes.
pub fn fit_svd(points: &[[f64; 3]]) -> Option<Line> {
    fit_svd_by(points.len(), None, |k| points[k])
}

/// [`fit_svd`] over `n` points given by `get`, leaving out `skip`: no allocation.
///
/// The principal axis is found by power iteration on the 3 x 3 scatter matrix, starting from
/// the z axis (tracks cross the planes, so z dominates and it converges in a few steps, the
/// error shrinking by lambda2 / lambda1 per step) until the direction changes by less than
/// 1e-15; when it does not converge within 200 steps (nearly equal largest eigenvalues) it
/// falls back to nalgebra's symmetric eigen-decomposition ([`fit_svd_reference`]). A test
/// checks the two agree.
pub fn fit_svd_by(n: usize, skip: Option<usize>, get: impl Fn(usize) -> [f64; 3]) -> Option<Line> {
    let used = n - usize::from(skip.is_some_and(|s| s < n));
    if used < 2 {
        return None;
    }
    let mut mean = [0.0f64; 3];
    for k in (0..n).filter(|&k| Some(k) != skip) {
        let p = get(k);
        for i in 0..3 {
            mean[i] += p[i];
        }
    }
    let m = used as f64;
    for v in &mut mean {
        *v /= m;
    }
    // Upper triangle of the scatter matrix: xx, xy, xz, yy, yz, zz.
    let mut s = [0.0f64; 6];
    for k in (0..n).filter(|&k| Some(k) != skip) {
        add_scatter(&mut s, get(k), mean);
    }
    let dir = principal_axis(&s).or_else(|| {
        let mat = Matrix3::new(s[0], s[1], s[2], s[1], s[3], s[4], s[2], s[4], s[5]);
        principal_axis_eigen(mat)
    })?;
    line_from(mean, dir)
}

fn line_from(mean: [f64; 3], d: [f64; 3]) -> Option<Line> {
    if d[2].abs() < 1e-12 {
        return None;
    }
    let (sx, sy) = (d[0] / d[2], d[1] / d[2]);
    Some(Line {
        x0: mean[0] - sx * mean[2],
        y0: mean[1] - sy * mean[2],
        sx,
        sy,
    })
}

/// Power iteration for the unit eigenvector of the largest eigenvalue (see [`fit_svd_by`]).
fn principal_axis(s: &[f64; 6]) -> Option<[f64; 3]> {
    let mut v = [0.0, 0.0, 1.0];
    for _ in 0..200 {
        let w = [
            s[0] * v[0] + s[1] * v[1] + s[2] * v[2],
            s[1] * v[0] + s[3] * v[1] + s[4] * v[2],
            s[2] * v[0] + s[4] * v[1] + s[5] * v[2],
        ];
        let norm = (w[0] * w[0] + w[1] * w[1] + w[2] * w[2]).sqrt();
        if !(norm > 0.0 && norm.is_finite()) {
            return None;
        }
        let w = [w[0] / norm, w[1] / norm, w[2] / norm];
        let change = (w[0] - v[0])
            .abs()
            .max((w[1] - v[1]).abs())
            .max((w[2] - v[2]).abs());
        v = w;
        if change <= 1e-15 {
            return Some(v);
        }
    }
    None
}

/// The power iteration of [`principal_axis`] for a track-like axis (not perpendicular to z),
/// started from the slopes `(dx/dz, dy/dz)` of a nearby axis and normalised to a z component of
/// 1 instead of unit length (no square root): returns the eigenvector `(sx, sy, 1)` once the
/// slopes change by at most 1e-15 (1e-15 relative above 1), `None` when the iteration meets a
/// zero z component or does not converge in 200 steps (the caller then refits).
fn principal_slopes_from(s: &[f64; 6], v: [f64; 2]) -> Option<[f64; 3]> {
    let [mut a, mut b] = v;
    for _ in 0..200 {
        let wz = s[2] * a + s[4] * b + s[5];
        if !(wz != 0.0 && wz.is_finite()) {
            return None;
        }
        let r = 1.0 / wz;
        let na = (s[0] * a + s[1] * b + s[2]) * r;
        let nb = (s[1] * a + s[3] * b + s[4]) * r;
        let change = (na - a).abs().max((nb - b).abs());
        let scale = na.abs().max(nb.abs()).max(1.0);
        (a, b) = (na, nb);
        if change <= 1e-15 * scale {
            // Nearly perpendicular to z: leave that to the refit (and `line_from`'s test).
            return (scale < 1e11).then_some([a, b, 1.0]);
        }
        if !change.is_finite() {
            return None;
        }
    }
    None
}

fn principal_axis_eigen(s: Matrix3<f64>) -> Option<[f64; 3]> {
    let eig = s.symmetric_eigen();
    let (imax, _) = eig
        .eigenvalues
        .iter()
        .enumerate()
        .fold((0, f64::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
    let d = eig.eigenvectors.column(imax);
    Some([d[0], d[1], d[2]])
}

/// The straightforward [`fit_svd`]: nalgebra's symmetric eigen-decomposition of the scatter
/// matrix (kept to test the fast path against).
pub fn fit_svd_reference(points: &[[f64; 3]]) -> Option<Line> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mut mean = Vector3::zeros();
    for p in points {
        mean += Vector3::from(*p);
    }
    mean /= n;
    let mut s = Matrix3::zeros();
    for p in points {
        let d = Vector3::from(*p) - mean;
        s += d * d.transpose();
    }
    let d = principal_axis_eigen(s)?;
    line_from([mean.x, mean.y, mean.z], d)
}

/// A track: its line, fit quality and clusters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Track {
    /// Event number.
    pub event: u64,
    /// The fitted line.
    pub line: Line,
    /// chi2.
    pub chi2: f64,
    /// Degrees of freedom (2N - 4 for Tracking4D, 3N - 4 for the notebook).
    pub ndof: i32,
    /// The clusters on the track, in plane (z) order.
    pub clusters: Vec<Cluster>,
    /// Track time (ns): with time cuts, Corryvreckan's average of the cluster times less the
    /// time of flight from z = 0, weighted by 1 / time cut of each cluster's plane; else the
    /// plain mean of the cluster times.
    pub time: f64,
}

impl Track {
    /// chi2 / ndof (-1 when ndof <= 0, as Corryvreckan).
    pub fn chi2ndof(&self) -> f64 {
        if self.ndof > 0 {
            self.chi2 / f64::from(self.ndof)
        } else {
            -1.0
        }
    }
}

/// Tracking settings (Corryvreckan Tracking4D keys).
#[derive(Debug, Clone, PartialEq)]
pub struct TrackingParams {
    /// Clusters a track needs.
    pub min_hits_on_track: usize,
    /// Spatial cut per plane (x, y) in mm: the ellipse half-axes.
    pub spatial_cut: Vec<[f64; 2]>,
    /// Planes that take part (not DUT when excluded, not auxiliary or passive).
    pub tracking_plane: Vec<bool>,
    /// Planes that may not seed.
    pub exclude_from_seed: Vec<bool>,
    /// Time cut per plane (ns), or none (no time cuts): Corryvreckan's `time_cut_abs`, or
    /// `time_cut_rel` x the plane's `time_resolution`.
    pub time_cut: Option<Vec<f64>>,
}

/// Speed of light (mm/ns), for Corryvreckan's time-of-flight correction of the track time.
const C_MM_PER_NS: f64 = 299.792458;

/// Per-plane intersection helpers, reused between events.
#[derive(Debug, Default, Clone)]
pub struct Tracker {
    points: Vec<([f64; 3], [f64; 2])>,
    ranges: Vec<(usize, usize)>,
}

impl Tracker {
    /// Tracking4D on one event's clusters (sorted by plane, as the clusterer makes them).
    pub fn tracking4d(
        &mut self,
        event: u64,
        clusters: &[Cluster],
        planes: &[PlaneInfo],
        par: &TrackingParams,
        out: &mut Vec<Track>,
    ) {
        let np = planes.len();
        self.ranges.clear();
        self.ranges.resize(np, (0, 0));
        let mut k = 0;
        while k < clusters.len() {
            let p = clusters[k].plane as usize;
            let s = k;
            while k < clusters.len() && clusters[k].plane as usize == p {
                k += 1;
            }
            if p < np {
                self.ranges[p] = (s, k);
            }
        }
        let usable = |p: usize| par.tracking_plane[p] && self.ranges[p].1 > self.ranges[p].0;
        let seedable = |p: usize| usable(p) && !par.exclude_from_seed[p];
        let Some(first) = (0..np).find(|&p| seedable(p)) else {
            return;
        };
        let Some(last) = (0..np).rev().find(|&p| seedable(p)) else {
            return;
        };
        if first == last {
            return;
        }
        let others: Vec<usize> = (0..np)
            .filter(|&p| p != first && p != last && par.tracking_plane[p])
            .collect();
        // Corryvreckan Tracking4D's time cuts: the seed pair within the larger of the two
        // planes' cuts; a further plane's clusters within max(smaller seed cut, that plane's
        // cut) of the track time, which is updated after every added cluster.
        let tcut = par.time_cut.as_deref();
        let track_time = |members: &[usize]| -> f64 {
            let (mut sw, mut st) = (0.0, 0.0);
            for &m in members {
                let c = &clusters[m];
                let w = tcut.map_or(1.0, |t| 1.0 / t[c.plane as usize]);
                let tof = if tcut.is_some() {
                    c.global[2] / C_MM_PER_NS
                } else {
                    0.0
                };
                sw += w;
                st += w * (c.time - tof);
            }
            st / sw
        };
        for i1 in self.ranges[first].0..self.ranges[first].1 {
            for i2 in self.ranges[last].0..self.ranges[last].1 {
                if let Some(t) = tcut {
                    let seed_cut = t[first].max(t[last]);
                    if (clusters[i1].time - clusters[i2].time).abs() > seed_cut {
                        continue;
                    }
                }
                let mut members: Vec<usize> = vec![i1, i2];
                let mut time = track_time(&members);
                for (n_checked, &p) in others.iter().enumerate() {
                    // Early exit when the planes left cannot make up min_hits_on_track.
                    if others.len() - n_checked + members.len() < par.min_hits_on_track {
                        break;
                    }
                    let (s, e) = self.ranges[p];
                    if s == e {
                        continue;
                    }
                    self.points.clear();
                    self.points.extend(
                        members
                            .iter()
                            .map(|&m| (clusters[m].global, clusters[m].error)),
                    );
                    let Some(line) = fit_lsq(&self.points, None) else {
                        break;
                    };
                    let (pt, dir) = line.point_dir();
                    let Some(icpt) = planes[p].transform.intersect_local(pt, dir) else {
                        continue;
                    };
                    let cut = par.spatial_cut[p];
                    let window = tcut.map(|t| t[first].min(t[last]).max(t[p]));
                    let mut best: Option<(f64, usize)> = None;
                    for (j, c) in clusters.iter().enumerate().take(e).skip(s) {
                        if window.is_some_and(|w| (c.time - time).abs() > w) {
                            continue;
                        }
                        let dx = c.local[0] - icpt[0];
                        let dy = c.local[1] - icpt[1];
                        if (dx / cut[0]).powi(2) + (dy / cut[1]).powi(2) > 1.0 {
                            continue;
                        }
                        let d2 = dx * dx + dy * dy;
                        if best.is_none_or(|b| d2 < b.0) {
                            best = Some((d2, j));
                        }
                    }
                    if let Some((_, j)) = best {
                        members.push(j);
                        time = track_time(&members);
                    }
                }
                if members.len() < par.min_hits_on_track.max(2) {
                    continue;
                }
                members.sort_unstable_by_key(|&m| clusters[m].plane);
                self.points.clear();
                self.points.extend(
                    members
                        .iter()
                        .map(|&m| (clusters[m].global, clusters[m].error)),
                );
                let Some(line) = fit_lsq(&self.points, None) else {
                    continue;
                };
                out.push(Track {
                    event,
                    line,
                    chi2: chi2(&line, &self.points),
                    ndof: 2 * members.len() as i32 - 4,
                    clusters: members.iter().map(|&m| clusters[m]).collect(),
                    time,
                });
            }
        }
    }
}

/// The notebook's track: the one (whole-plane) cluster of every hit plane, SVD line, chi2 from
/// the 3-D distance over the hit error, ndof = 3N - 4. `None` below `min_planes`.
pub fn notebook_track(event: u64, clusters: &[Cluster], min_planes: usize) -> Option<Track> {
    let mut t = Track::default();
    notebook_track_into(event, clusters, min_planes, &mut t).then_some(t)
}

/// [`notebook_track`] into an existing track, reusing its cluster list (no allocation once the
/// list has grown): false (and `out` unspecified) when there is no track.
pub fn notebook_track_into(
    event: u64,
    clusters: &[Cluster],
    min_planes: usize,
    out: &mut Track,
) -> bool {
    if clusters.len() < min_planes.max(2) {
        return false;
    }
    let Some(line) = fit_svd_by(clusters.len(), None, |k| clusters[k].global) else {
        return false;
    };
    out.event = event;
    out.line = line;
    out.chi2 = notebook_chi2(&line, clusters);
    out.ndof = 3 * clusters.len() as i32 - 4;
    out.clusters.clear();
    out.clusters.extend_from_slice(clusters);
    out.time = clusters.iter().map(|c| c.time).sum::<f64>() / clusters.len() as f64;
    true
}

/// The notebook's chi2: the distance in the plane between hit and line at the hit's z, over
/// the hit error (both coordinates use the same error there).
pub fn notebook_chi2(line: &Line, clusters: &[Cluster]) -> f64 {
    clusters
        .iter()
        .map(|c| {
            let p = line.at(c.global[2]);
            ((c.global[0] - p[0]).powi(2) + (c.global[1] - p[1]).powi(2))
                / (c.error[0] * c.error[0])
        })
        .sum()
}

/// One cluster's residuals: plane, biased (x, y), unbiased (x, y; NaN when not computed).
pub type Residual = (u16, [f64; 2], [f64; 2]);

/// Residuals (cluster - track at the cluster's z, global x and y) of every cluster of a track:
/// biased (the track as fitted) and unbiased (refitted without that cluster; NaN when fewer than
/// two clusters remain).
pub fn residuals(track: &Track, svd: bool) -> Vec<Residual> {
    let mut out = Vec::with_capacity(track.clusters.len());
    residuals_into(track, svd, true, &mut out);
    out
}

/// [`residuals`] into a reused buffer (cleared first); with `unbiased` false the unbiased ones
/// are not computed (NaN).
///
/// The unbiased fits do not start from scratch: the sums of the full fit are downdated by the
/// left-out cluster (see [`LeaveOneOut`]); [`residuals_refit_into`] is the straightforward
/// refit, and a test checks that both agree.
pub fn residuals_into(track: &Track, svd: bool, unbiased: bool, out: &mut Vec<Residual>) {
    out.clear();
    let cl = &track.clusters;
    let loo = if unbiased {
        Some(if svd {
            LeaveOneOut::svd(track)
        } else {
            LeaveOneOut::lsq(track)
        })
    } else {
        None
    };
    for (k, c) in cl.iter().enumerate() {
        let b = track.line.at(c.global[2]);
        let u = match &loo {
            Some(loo) => loo.without(cl, k).map_or([f64::NAN; 2], |l| {
                let p = l.at(c.global[2]);
                [c.global[0] - p[0], c.global[1] - p[1]]
            }),
            None => [f64::NAN; 2],
        };
        out.push((c.plane, [c.global[0] - b[0], c.global[1] - b[1]], u));
    }
}

/// [`residuals_into`] with every unbiased line refitted from scratch without its cluster (the
/// straightforward way, kept to test the downdates against). The weighted least-squares
/// refit fits the biased residuals against z less the clusters' mean z and adds that to the
/// track line: fitting the raw coordinates with [`fit_lsq_by`]'s raw sums loses up to ~1e-12
/// mm on such tracks (checked against exact rational arithmetic).
pub fn residuals_refit_into(track: &Track, svd: bool, out: &mut Vec<Residual>) {
    out.clear();
    let cl = &track.clusters;
    let line = track.line;
    let z_ref = cl.iter().map(|c| c.global[2]).sum::<f64>() / cl.len().max(1) as f64;
    for (k, c) in cl.iter().enumerate() {
        let b = line.at(c.global[2]);
        let bias = [c.global[0] - b[0], c.global[1] - b[1]];
        let u = if svd {
            fit_svd_by(cl.len(), Some(k), |j| cl[j].global).map(|l| {
                let p = l.at(c.global[2]);
                [c.global[0] - p[0], c.global[1] - p[1]]
            })
        } else {
            fit_lsq_by(cl.len(), Some(k), |j| {
                let g = cl[j].global;
                let r = line.at(g[2]);
                ([g[0] - r[0], g[1] - r[1], g[2] - z_ref], cl[j].error)
            })
            .map(|d| {
                let p = d.at(c.global[2] - z_ref);
                [bias[0] - p[0], bias[1] - p[1]]
            })
        };
        out.push((c.plane, bias, u.unwrap_or([f64::NAN; 2])));
    }
}

/// Leave-one-out line fits from the sums over all of a track's clusters.
///
/// - SVD: the centroid `m` and centred scatter matrix `S` of the n points; without point `p`
///   (`d = p - m`) they are `m' = m - d / (n - 1)` and `S' = S - n / (n - 1) d d^T` (the
///   one-point downdate of the Welford / Chan update). The power iteration then starts from the
///   full fit's direction, which is already close. When the downdate cancels (trace of `S'`
///   below 1e-6 of that of `S`: the point carried nearly all the scatter) the fit is redone
///   from scratch.
/// - Weighted least squares: the normal-equation sums less the point's own terms, for the
///   correction to the full line (the fit of the biased residuals, z measured from the
///   clusters' mean z: better conditioned than [`fit_lsq_by`]'s raw sums);
///   a refit when the point carried nearly all the weight or z moment.
enum LeaveOneOut {
    Svd {
        n: usize,
        mean: [f64; 3],
        s: [f64; 6],
        dir: [f64; 2],
    },
    Lsq {
        n: usize,
        z_ref: f64,
        line: Line,
        sx: [f64; 5],
        sy: [f64; 5],
    },
}

fn lsq_terms(z: f64, v: f64, err: f64) -> [f64; 5] {
    let w = 1.0 / (err * err);
    [w, w * z, w * z * z, w * v, w * z * v]
}

/// Adds point `p`'s contribution to the upper triangle of the scatter matrix about `mean`
/// (xx, xy, xz, yy, yz, zz).
#[inline]
fn add_scatter(s: &mut [f64; 6], p: [f64; 3], mean: [f64; 3]) {
    let d = [p[0] - mean[0], p[1] - mean[1], p[2] - mean[2]];
    s[0] += d[0] * d[0];
    s[1] += d[0] * d[1];
    s[2] += d[0] * d[2];
    s[3] += d[1] * d[1];
    s[4] += d[1] * d[2];
    s[5] += d[2] * d[2];
}

fn lsq_solve(s: [f64; 5]) -> Option<(f64, f64)> {
    let det = s[0] * s[2] - s[1] * s[1];
    if det.abs() <= 1e-12 * s[0] * s[2].max(1.0) {
        return None;
    }
    Some((
        (s[3] * s[2] - s[1] * s[4]) / det,
        (s[0] * s[4] - s[1] * s[3]) / det,
    ))
}

impl LeaveOneOut {
    fn svd(track: &Track) -> Self {
        let cl = &track.clusters;
        let n = cl.len();
        let mut mean = [0.0f64; 3];
        for c in cl {
            for (m, g) in mean.iter_mut().zip(c.global) {
                *m += g;
            }
        }
        for v in &mut mean {
            *v /= n.max(1) as f64;
        }
        let mut s = [0.0f64; 6];
        for c in cl {
            add_scatter(&mut s, c.global, mean);
        }
        let l = &track.line;
        let dir = if l.sx.is_finite() && l.sy.is_finite() {
            [l.sx, l.sy]
        } else {
            [0.0, 0.0]
        };
        LeaveOneOut::Svd { n, mean, s, dir }
    }

    fn lsq(track: &Track) -> Self {
        let (cl, line) = (&track.clusters, track.line);
        let z_ref = cl.iter().map(|c| c.global[2]).sum::<f64>() / cl.len().max(1) as f64;
        let (mut sx, mut sy) = ([0.0f64; 5], [0.0f64; 5]);
        for c in cl {
            let (g, e) = (c.global, c.error);
            let (z, r) = (g[2] - z_ref, line.at(g[2]));
            for (s, t) in [
                (&mut sx, lsq_terms(z, g[0] - r[0], e[0])),
                (&mut sy, lsq_terms(z, g[1] - r[1], e[1])),
            ] {
                for i in 0..5 {
                    s[i] += t[i];
                }
            }
        }
        LeaveOneOut::Lsq {
            n: cl.len(),
            z_ref,
            line,
            sx,
            sy,
        }
    }

    /// The line without cluster `k` of `cl` (the clusters the sums were made from).
    fn without(&self, cl: &[Cluster], k: usize) -> Option<Line> {
        match *self {
            LeaveOneOut::Svd { n, mean, s, dir } => {
                if n < 3 {
                    return None;
                }
                let p = cl[k].global;
                let d = [p[0] - mean[0], p[1] - mean[1], p[2] - mean[2]];
                let m1 = (n - 1) as f64;
                let f = n as f64 / m1;
                let s1 = [
                    s[0] - f * d[0] * d[0],
                    s[1] - f * d[0] * d[1],
                    s[2] - f * d[0] * d[2],
                    s[3] - f * d[1] * d[1],
                    s[4] - f * d[1] * d[2],
                    s[5] - f * d[2] * d[2],
                ];
                let (tr, tr1) = (s[0] + s[3] + s[5], s1[0] + s1[3] + s1[5]);
                if tr1.is_nan() || tr1 < 1e-6 * tr {
                    return fit_svd_by(cl.len(), Some(k), |j| cl[j].global);
                }
                let mean1 = [
                    mean[0] - d[0] / m1,
                    mean[1] - d[1] / m1,
                    mean[2] - d[2] / m1,
                ];
                match principal_slopes_from(&s1, dir) {
                    Some(d) => line_from(mean1, d),
                    None => fit_svd_by(cl.len(), Some(k), |j| cl[j].global),
                }
            }
            LeaveOneOut::Lsq {
                n,
                z_ref,
                line,
                mut sx,
                mut sy,
            } => {
                if n < 3 {
                    return None;
                }
                let (g, e) = (cl[k].global, cl[k].error);
                let (z, r) = (g[2] - z_ref, line.at(g[2]));
                let (tx, ty) = (
                    lsq_terms(z, g[0] - r[0], e[0]),
                    lsq_terms(z, g[1] - r[1], e[1]),
                );
                // The point carried nearly all the weight or z moment: the differences would
                // cancel, so refit.
                let short = |rest: f64, all: f64| rest.is_nan() || rest < 1e-6 * all;
                let cancels = |s: &[f64; 5], t: &[f64; 5]| {
                    short(s[0] - t[0], s[0]) || short(s[2] - t[2], s[2])
                };
                if cancels(&sx, &tx) || cancels(&sy, &ty) {
                    return fit_lsq_by(cl.len(), Some(k), |j| (cl[j].global, cl[j].error));
                }
                for i in 0..5 {
                    sx[i] -= tx[i];
                    sy[i] -= ty[i];
                }
                // Corrections to the full line at z = z_ref, moved to z = 0.
                let (dx, dsx) = lsq_solve(sx)?;
                let (dy, dsy) = lsq_solve(sy)?;
                Some(Line {
                    x0: line.x0 + (dx - dsx * z_ref),
                    y0: line.y0 + (dy - dsy * z_ref),
                    sx: line.sx + dsx,
                    sy: line.sy + dsy,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::geometry::DetectorGeometry;

    fn cl(plane: u16, x: f64, y: f64, z: f64, e: f64) -> Cluster {
        Cluster {
            plane,
            col: 0.0,
            row: 0.0,
            local: [x, y],
            global: [x, y, z],
            error: [e, e],
            size: 1,
            col_width: 1,
            row_width: 1,
            charge: 1.0,
            time: 0.0,
        }
    }

    #[test]
    fn weighted_fit_and_chi2_by_hand() {
        // Points on x = 1 + 0.01 z except the middle one, off by +3 um with error 5 um.
        let pts = [
            ([0.4, 0.0, -60.0], [0.005, 0.005]),
            ([1.003, 0.0, 0.0], [0.005, 0.005]),
            ([1.6, 0.0, 60.0], [0.005, 0.005]),
        ];
        let l = fit_lsq(&pts, None).unwrap();
        // Equal weights, symmetric z: slope unchanged (0.01), x0 = mean = 1.001.
        assert!((l.sx - 0.01).abs() < 1e-12 && (l.x0 - 1.001).abs() < 1e-12);
        // Residuals -1, +2, -1 um: chi2 = (1 + 4 + 1) / 25.
        assert!((chi2(&l, &pts) - 6.0 / 25.0).abs() < 1e-9);
        let u = fit_lsq(&pts, Some(1)).unwrap();
        assert!((u.at(0.0)[0] - 1.0).abs() < 1e-12);
        assert!(fit_lsq(&pts[..1], None).is_none());
    }

    #[test]
    fn fast_svd_agrees_with_the_eigen_decomposition() {
        // Scattered points (noise hits far off the line, whole-plane clusters) and near-lines:
        // the power iteration and nalgebra's eigen-decomposition give the same line to 1e-9
        // relative (both are accurate to ~1e-13; the margin covers ill-conditioned sets).
        let mut rng = caliper_core::testing::TestRng::new(12345u64);
        let mut rnd = || rng.unit();
        for case in 0..2000 {
            let n = 2 + case % 6;
            let spread = [1e-3, 0.05, 5.0, 20.0][case % 4];
            let pts: Vec<[f64; 3]> = (0..n)
                .map(|i| {
                    let z = 20.0 * i as f64;
                    [
                        0.3 + 0.01 * z + spread * (rnd() - 0.5),
                        -1.0 + spread * (rnd() - 0.5),
                        z,
                    ]
                })
                .collect();
            let (a, b) = (fit_svd(&pts), fit_svd_reference(&pts));
            match (a, b) {
                (Some(a), Some(b)) => {
                    for (x, y) in [(a.x0, b.x0), (a.y0, b.y0), (a.sx, b.sx), (a.sy, b.sy)] {
                        assert!(
                            (x - y).abs() <= 1e-9 * (1.0 + y.abs()),
                            "case {case}: {a:?} {b:?}"
                        );
                    }
                }
                (a, b) => assert_eq!(a.is_some(), b.is_some(), "case {case}"),
            }
        }
    }

    #[test]
    fn downdated_unbiased_residuals_agree_with_refits() {
        // Random tracks of 2..8 clusters on irregular planes, with scatter from 0.1 um (clean
        // tracks) to 20 mm (noise, whole-plane clusters), per-plane errors from 1 to 50 um and
        // some far outliers (which make the downdate fall back to a refit): the downdated
        // unbiased residuals equal the refitted ones to 1e-9 relative (floor 1 um, i.e. 1e-12 mm
        // absolute); both are accurate to ~1e-13 here. Biased ones are identical.
        let mut rng = caliper_core::testing::TestRng::new(987654321u64);
        let mut rnd = || rng.unit();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut compared = 0;
        for case in 0..4000 {
            let n = 2 + case % 7;
            let spread = [1e-4, 5e-3, 0.05, 5.0, 20.0][case % 5];
            let (sx, sy) = (0.02 * (rnd() - 0.5), 0.02 * (rnd() - 0.5));
            let z0 = [-60.0, 0.0, 200.0][case % 3];
            let clusters: Vec<Cluster> = (0..n)
                .map(|i| {
                    let z = z0 + 20.0 * i as f64 + 5.0 * rnd();
                    let mut s = spread;
                    if case % 11 == 0 && i == case % n {
                        s = 50.0; // a far outlier
                    }
                    let e = [0.001, 0.005, 0.05][(case + i) % 3];
                    let mut c = cl(
                        i as u16,
                        0.3 + sx * z + s * (rnd() - 0.5),
                        -1.0 + sy * z + s * (rnd() - 0.5),
                        z,
                        e,
                    );
                    c.error[1] = 2.0 * e;
                    c
                })
                .collect();
            for svd in [true, false] {
                let line = if svd {
                    fit_svd_by(n, None, |k| clusters[k].global)
                } else {
                    fit_lsq_by(n, None, |k| (clusters[k].global, clusters[k].error))
                };
                let Some(line) = line else { continue };
                let t = Track {
                    event: 0,
                    line,
                    chi2: 0.0,
                    ndof: 0,
                    clusters: clusters.clone(),
                    time: 0.0,
                };
                residuals_into(&t, svd, true, &mut a);
                residuals_refit_into(&t, svd, &mut b);
                assert_eq!(a.len(), b.len());
                for (ra, rb) in a.iter().zip(&b) {
                    assert_eq!((ra.0, ra.1), (rb.0, rb.1), "case {case} svd {svd}");
                    for i in 0..2 {
                        let (x, y) = (ra.2[i], rb.2[i]);
                        assert_eq!(x.is_nan(), y.is_nan(), "case {case} svd {svd}");
                        if y.is_finite() {
                            compared += 1;
                            assert!(
                                (x - y).abs() <= 1e-9 * (y.abs() + 1e-3),
                                "case {case} svd {svd}: {x} vs {y} {:?}",
                                clusters
                                    .iter()
                                    .map(|c| (c.global, c.error))
                                    .collect::<Vec<_>>()
                            );
                        }
                    }
                }
            }
        }
        assert!(compared > 40_000, "{compared}");
    }

    #[test]
    fn unbiased_lsq_residuals_match_exact_arithmetic() {
        // Three clusters with very different errors (5, 50, 1 um in x; twice that in y), as in
        // a failing-precision case of the raw-sum fit: the unbiased residuals computed exactly
        // with Python's fractions.Fraction from these doubles. Tolerance 1e-15 mm (the
        // downdate and the centred refit agree with them to ~5e-16 mm).
        let g = [
            [0.3026573835319169, -1.0091880903759127, 1.8479103634210003],
            [0.33192877873839866, -1.109487330916106, 21.91513218729707],
            [0.3585207249059258, -1.2008615752032932, 40.20974441243681],
        ];
        let e = [0.005, 0.05, 0.001];
        let clusters: Vec<Cluster> = (0..3)
            .map(|i| {
                let mut c = cl(i as u16, g[i][0], g[i][1], g[i][2], e[i]);
                c.error[1] = 2.0 * e[i];
                c
            })
            .collect();
        let exact = [
            [-0.00010289051748652217, 7.152286382034227e-05],
            [4.906809504088805e-05, -3.41089807424942e-05],
            [-9.380182945006689e-05, 6.520499301342252e-05],
        ];
        let line = fit_lsq_by(3, None, |k| (clusters[k].global, clusters[k].error)).unwrap();
        let t = Track {
            event: 0,
            line,
            chi2: 0.0,
            ndof: 2,
            clusters,
            time: 0.0,
        };
        let mut out = Vec::new();
        for refit in [false, true] {
            if refit {
                residuals_refit_into(&t, false, &mut out);
            } else {
                residuals_into(&t, false, true, &mut out);
            }
            for (r, x) in out.iter().zip(&exact) {
                for i in 0..2 {
                    assert!((r.2[i] - x[i]).abs() < 1e-15, "{refit}: {:?} {x:?}", r.2);
                }
            }
        }
    }

    #[test]
    fn svd_fit_recovers_a_line() {
        let pts: Vec<[f64; 3]> = (0..7)
            .map(|i| {
                let z = -60.0 + 20.0 * i as f64;
                [0.3 + 0.02 * z, -1.0 - 0.005 * z, z]
            })
            .collect();
        let l = fit_svd(&pts).unwrap();
        assert!(
            (l.sx - 0.02).abs() < 1e-12
                && (l.sy + 0.005).abs() < 1e-12
                && (l.x0 - 0.3).abs() < 1e-12
        );
    }

    #[test]
    fn tracking4d_picks_closest_cluster_in_cut_and_needs_min_hits() {
        let planes: Vec<PlaneInfo> = (0..4)
            .map(|i| {
                let g = DetectorGeometry::alpide(&format!("ALPIDE_{i}"), -30.0 + 20.0 * i as f64);
                PlaneInfo {
                    transform: g.transform(),
                    geometry: g,
                    mask: None,
                }
            })
            .collect();
        let z = |i: usize| planes[i].geometry.position[2];
        let clusters = vec![
            cl(0, 0.0, 0.0, z(0), 0.005),
            cl(1, 0.010, 0.0, z(1), 0.005), // inside the 15 um cut
            cl(1, 0.004, 0.0, z(1), 0.005), // closer: chosen
            cl(2, 0.100, 0.0, z(2), 0.005), // outside
            cl(3, 0.0, 0.0, z(3), 0.005),
        ];
        let par = TrackingParams {
            min_hits_on_track: 3,
            spatial_cut: vec![[0.015, 0.015]; 4],
            tracking_plane: vec![true; 4],
            exclude_from_seed: vec![false; 4],
            time_cut: None,
        };
        let mut out = Vec::new();
        Tracker::default().tracking4d(7, &clusters, &planes, &par, &mut out);
        assert_eq!(out.len(), 1);
        let t = &out[0];
        assert_eq!(t.clusters.len(), 3);
        assert_eq!(t.clusters[1].global[0], 0.004);
        assert_eq!(t.ndof, 2);
        let par4 = TrackingParams {
            min_hits_on_track: 4,
            ..par
        };
        out.clear();
        Tracker::default().tracking4d(7, &clusters, &planes, &par4, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn tracking4d_time_cuts_as_corryvreckan() {
        // Four planes, time cuts 30, 30, 30, 60 ns (e.g. time_cut_rel 3 x resolutions 10, 10,
        // 10, 20 ns). Seeds on planes 0 and 3 must be within max(30, 60) = 60 ns of each other;
        // a cluster on a middle plane within max(min(30, 60), 30) = 30 ns of the track time,
        // the 1/cut-weighted mean of (t - z/c) over the clusters so far.
        let planes: Vec<PlaneInfo> = (0..4)
            .map(|i| {
                let g = DetectorGeometry::alpide(&format!("ALPIDE_{i}"), -30.0 + 20.0 * i as f64);
                PlaneInfo {
                    transform: g.transform(),
                    geometry: g,
                    mask: None,
                }
            })
            .collect();
        let z = |i: usize| planes[i].geometry.position[2];
        let timed = |mut c: Cluster, t: f64| {
            c.time = t;
            c
        };
        let par = TrackingParams {
            min_hits_on_track: 3,
            spatial_cut: vec![[0.015, 0.015]; 4],
            tracking_plane: vec![true; 4],
            exclude_from_seed: vec![false; 4],
            time_cut: Some(vec![30.0, 30.0, 30.0, 60.0]),
        };
        // Seed times 100 and 150: track time (100/30 + 150/60) / (1/30 + 1/60) = 116.67 ns
        // (less ~0.1 ns of flight time). On plane 1 the closest cluster (0.001 mm) is 40 ns
        // late and is skipped for the in-time one 0.004 mm away; plane 2 has only a cluster
        // ~33 ns early (85 ns against a track time of ~118 ns by then): no hit there.
        let clusters = vec![
            timed(cl(0, 0.0, 0.0, z(0), 0.005), 100.0),
            timed(cl(1, 0.001, 0.0, z(1), 0.005), 157.0),
            timed(cl(1, 0.004, 0.0, z(1), 0.005), 120.0),
            timed(cl(2, 0.0, 0.0, z(2), 0.005), 85.0),
            timed(cl(3, 0.0, 0.0, z(3), 0.005), 150.0),
        ];
        let mut out = Vec::new();
        let mut tracker = Tracker::default();
        tracker.tracking4d(1, &clusters, &planes, &par, &mut out);
        assert_eq!(out.len(), 1);
        let t = &out[0];
        assert_eq!(t.clusters.len(), 3);
        assert_eq!(t.clusters[1].global[0], 0.004);
        // Track time: weights 1/30, 1/30, 1/60 of (100, 120, 150) less z/c.
        let w = [1.0 / 30.0, 1.0 / 30.0, 1.0 / 60.0];
        let tt = [
            100.0 - z(0) / C_MM_PER_NS,
            120.0 - z(1) / C_MM_PER_NS,
            150.0 - z(3) / C_MM_PER_NS,
        ];
        let expect = (w[0] * tt[0] + w[1] * tt[1] + w[2] * tt[2]) / (w[0] + w[1] + w[2]);
        assert!((t.time - expect).abs() < 1e-9, "{} vs {expect}", t.time);
        // Without time cuts the closest cluster on plane 1 and the plane-2 cluster are taken.
        out.clear();
        let no_time = TrackingParams {
            time_cut: None,
            ..par.clone()
        };
        tracker.tracking4d(1, &clusters, &planes, &no_time, &mut out);
        assert_eq!(out[0].clusters.len(), 4);
        assert_eq!(out[0].clusters[1].global[0], 0.001);
        // Seeds 61 ns apart: no track.
        let mut late = clusters.clone();
        late[4].time = 161.0;
        out.clear();
        tracker.tracking4d(1, &late, &planes, &par, &mut out);
        assert!(out.is_empty());
    }
}
