//! Alignment of the telescope planes from tracks.
//!
//! - [`align_chi2`]: minimises the total track chi2 over each free plane's x and y shift and
//!   rotation about z (Corryvreckan `AlignmentTrackChi2` minimises the same quantity, with MINUIT,
//!   one plane at a time). Here all free planes are solved at once with
//!   [`caliper_core::fit::levenberg_marquardt`], refitting every track at each evaluation, and the
//!   planes named in `fixed` stay where they are. With one fixed plane the solution has a weak
//!   mode (a shear about that plane); fixing two planes (the notebook's choice) or more removes
//!   it, like the translation and shear constraints of Corryvreckan's Millepede alignment.
//!   Tracks are found again with the updated geometry before every iteration, so iterating
//!   converges even from misalignments larger than the spatial cut of later stages.
//! - [`align_notebook`]: the Heidelberg notebook's method: two fixed planes, every other plane
//!   shifted by its mean residual, iterated with a decreasing chi2/ndof cut (logspace from 1e6
//!   down to 10^2.7) and a final fine stage that ignores residuals beyond 10 mm. The notebook
//!   puts every plane at z = 400 mm inside its alignment loop (`Fit_Data[counter][2] = ppz*20`),
//!   which makes the line fit meaningless; here the planes keep their real z.

use caliper_core::fit::{LeastSquaresProblem, LmOptions, levenberg_marquardt};
use nalgebra::{Matrix3, Vector3};

use crate::cluster::{Cluster, PlaneInfo};
use crate::track::{Track, Tracker, TrackingParams, fit_lsq, notebook_track_into, residuals_into};

/// One row of the alignment history: a plane's constants after an iteration.
#[derive(Debug, Clone, PartialEq)]
pub struct AlignStep {
    /// Stage (cut) index.
    pub stage: usize,
    /// Iteration within the whole alignment (0 = before any change).
    pub iteration: usize,
    /// Plane index.
    pub plane: usize,
    /// Position x, y (mm) after this iteration.
    pub position: [f64; 2],
    /// Rotation about z (rad) after this iteration.
    pub rotation_z: f64,
    /// Tilts: rotations about x and y (rad, the first two `xyz` orientation angles) after this
    /// iteration.
    pub tilts: [f64; 2],
    /// Uncertainties of the tilts (rad; 0 when they are not fitted).
    pub tilt_errors: [f64; 2],
    /// Uncertainties of x, y (mm) and rotation (rad) from this iteration's fit (for the
    /// notebook's method: the residual standard deviation).
    pub error: [f64; 3],
    /// Tracks used.
    pub tracks: usize,
    /// Mean chi2/ndof of the tracks used, before the update.
    pub mean_chi2ndof: f64,
}

/// Recompute the global positions of clusters from their local positions.
pub fn update_globals(clusters: &mut [Cluster], planes: &[PlaneInfo]) {
    for c in clusters {
        let p = &planes[c.plane as usize];
        c.global = p.transform.to_global(c.local[0], c.local[1]);
    }
}

fn rot_z(a: f64) -> Matrix3<f64> {
    let (s, c) = a.sin_cos();
    Matrix3::new(c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0)
}

/// Apply a shift and a rotation about z to a plane.
///
/// The rotation is about the global z axis through the plane centre: `R' = Rz(dgamma) R`,
/// which in mode `xyz` is the third angle; other modes are converted to `xyz` first.
pub fn move_plane(p: &mut PlaneInfo, dx: f64, dy: f64, dgamma: f64) {
    if dgamma != 0.0 {
        p.geometry.to_xyz_mode();
    }
    p.geometry.position[0] += dx;
    p.geometry.position[1] += dy;
    p.geometry.orientation[2] += dgamma;
    p.transform = p.geometry.transform();
}

/// Apply a shift and changes of the three `xyz` orientation angles (about x, y, z) to a plane
/// (converted to mode `xyz` first): Corryvreckan's AlignmentTrackChi2 varies the orientation
/// angles themselves.
pub fn move_plane_angles(p: &mut PlaneInfo, dx: f64, dy: f64, dangles: [f64; 3]) {
    p.geometry.to_xyz_mode();
    p.geometry.position[0] += dx;
    p.geometry.position[1] += dy;
    for (a, d) in p.geometry.orientation.iter_mut().zip(dangles) {
        *a += d;
    }
    p.transform = p.geometry.transform();
}

/// The `xyz` rotation `Rz(c) Ry(b) Rx(a)` (the geometry's convention).
fn rot_xyz(a: [f64; 3]) -> Matrix3<f64> {
    let mut g = crate::io::geometry::DetectorGeometry::alpide("", 0.0);
    g.orientation = a;
    g.rotation()
}

/// The chi2 problem of a fixed set of tracks: parameters (dx, dy, dgamma) per free plane.
struct Chi2Problem<'a> {
    /// Per cluster: (track start flag handled by offsets), plane, R0 local (v), plane position,
    /// error.
    offsets: Vec<usize>,
    plane: Vec<usize>,
    v: Vec<Vector3<f64>>,
    pos: Vec<Vector3<f64>>,
    err: Vec<[f64; 2]>,
    param_of: &'a [Option<usize>],
    rotation: bool,
    /// Tilts fitted too: then every cluster is placed from its local position with the
    /// plane's `xyz` angles (`angles`) plus the parameters.
    tilts: bool,
    local: Vec<[f64; 2]>,
    angles: Vec<[f64; 3]>,
}

impl Chi2Problem<'_> {
    fn n_per_plane(&self) -> usize {
        2 + usize::from(self.rotation) + 2 * usize::from(self.tilts)
    }

    /// The angle changes (about x, y, z) of parameter block `p`.
    fn dangles(&self, p: &[f64]) -> [f64; 3] {
        let g = if self.rotation { p[2] } else { 0.0 };
        let t = 2 + usize::from(self.rotation);
        if self.tilts {
            [p[t], p[t + 1], g]
        } else {
            [0.0, 0.0, g]
        }
    }
}

impl LeastSquaresProblem for Chi2Problem<'_> {
    fn n_residuals(&self) -> usize {
        2 * self.plane.len()
    }

    fn residuals(&self, params: &[f64], out: &mut [f64]) {
        use rayon::prelude::*;
        // Every track's residuals depend on that track alone and go to its own slots, so the
        // result is the same for any number of threads.
        let mut slices: Vec<(usize, &mut [f64])> = Vec::with_capacity(self.offsets.len());
        let mut rest = out;
        for (t, w) in self.offsets.windows(2).enumerate() {
            let (head, tail) = rest.split_at_mut(2 * (w[1] - w[0]));
            slices.push((t, head));
            rest = tail;
        }
        // With tilts: each free plane's rotation for these parameters, computed once.
        let k = self.n_per_plane();
        let rots: Vec<Matrix3<f64>> = if self.tilts {
            self.param_of
                .iter()
                .enumerate()
                .map(|(p, j)| match j {
                    Some(j) => {
                        let d = self.dangles(&params[j * k..j * k + k]);
                        let a = self.angles[p];
                        rot_xyz([a[0] + d[0], a[1] + d[1], a[2] + d[2]])
                    }
                    None => Matrix3::identity(),
                })
                .collect()
        } else {
            Vec::new()
        };
        slices.par_iter_mut().with_min_len(256).for_each_init(
            || Vec::with_capacity(16),
            |pts: &mut Vec<([f64; 3], [f64; 2])>, (t, slot)| {
                self.track_residuals(*t, params, &rots, pts, slot)
            },
        );
    }

    /// The analytic Jacobian without tilts (with tilts the fitter takes finite differences).
    ///
    /// Shifts and the rotation about z leave every z unchanged, so each track's fitted line is
    /// linear in its points' x (and y): the prediction at point n is `sum_m H_nm x_m` with the
    /// weighted-least-squares hat matrix `H_nm = w_m (Szz - Sz z_m + z_n (S z_m - Sz)) / D`
    /// (`S = sum w`, `Sz = sum w z`, `Szz = sum w z^2`, `D = S Szz - Sz^2`), and
    /// `d r_n / d p = (d x_n / d p - sum_m H_nm d x_m / d p) / sigma_n`; a point of a free plane
    /// moves by `d x / d dx = 1`, `d y / d dy = 1`, `d (x, y) / d gamma = (-sin g vx - cos g vy,
    /// cos g vx - sin g vy)`. A test compares it with finite differences.
    fn jacobian(&self, params: &[f64], jac: &mut [f64]) -> bool {
        use rayon::prelude::*;
        if self.tilts {
            return false;
        }
        let np = params.len();
        let mut slices: Vec<(usize, &mut [f64])> = Vec::with_capacity(self.offsets.len());
        let mut rest = jac;
        for (t, w) in self.offsets.windows(2).enumerate() {
            let (head, tail) = rest.split_at_mut(2 * (w[1] - w[0]) * np);
            slices.push((t, head));
            rest = tail;
        }
        slices
            .par_iter_mut()
            .with_min_len(256)
            .for_each(|(t, slot)| self.track_jacobian(*t, params, slot));
        true
    }
}

impl Chi2Problem<'_> {
    /// Rows of the Jacobian of track `t` (see [`LeastSquaresProblem::jacobian`] above).
    fn track_jacobian(&self, t: usize, params: &[f64], slot: &mut [f64]) {
        slot.fill(0.0);
        let np = params.len();
        let k = self.n_per_plane();
        let (start, end) = (self.offsets[t], self.offsets[t + 1]);
        let n_pts = end - start;
        // Points and derivatives of (x, y) by the own plane's parameters.
        let mut pts = Vec::with_capacity(n_pts);
        let mut deriv: Vec<Option<(usize, [f64; 2])>> = Vec::with_capacity(n_pts);
        for i in start..end {
            let (g, d) = match self.param_of[self.plane[i]] {
                Some(j) => {
                    let p = &params[j * k..j * k + k];
                    let v = self.v[i];
                    let (r, dgamma) = if self.rotation {
                        let (sn, cs) = p[2].sin_cos();
                        (rot_z(p[2]) * v, [-sn * v.x - cs * v.y, cs * v.x - sn * v.y])
                    } else {
                        (v, [0.0; 2])
                    };
                    (
                        r + self.pos[i] + Vector3::new(p[0], p[1], 0.0),
                        Some((j, dgamma)),
                    )
                }
                None => (self.v[i] + self.pos[i], None),
            };
            pts.push(([g.x, g.y, g.z], self.err[i]));
            deriv.push(d);
        }
        if fit_lsq(&pts, None).is_none() {
            return; // the residuals are 0 then
        }
        for axis in 0..2 {
            let (mut s0, mut sz, mut szz) = (0.0, 0.0, 0.0);
            for (g, e) in &pts {
                let w = 1.0 / (e[axis] * e[axis]);
                s0 += w;
                sz += w * g[2];
                szz += w * g[2] * g[2];
            }
            let det = s0 * szz - sz * sz;
            for (m, (gm, em)) in pts.iter().enumerate() {
                let Some((j, dgamma)) = deriv[m] else {
                    continue;
                };
                let wm = 1.0 / (em[axis] * em[axis]);
                for (n, (gn, en)) in pts.iter().enumerate() {
                    let h = wm * (szz - sz * gm[2] + gn[2] * (s0 * gm[2] - sz)) / det;
                    let f = (if n == m { 1.0 } else { 0.0 } - h) / en[axis];
                    let row = &mut slot[(2 * n + axis) * np..(2 * n + axis + 1) * np];
                    // d(axis)/d(shift along axis) = 1; d/d gamma = dgamma[axis].
                    row[j * k + axis] += f;
                    if self.rotation {
                        row[j * k + 2] += f * dgamma[axis];
                    }
                }
            }
        }
    }

    /// The weighted residuals of track `t` after moving its clusters by `params` and refitting.
    fn track_residuals(
        &self,
        t: usize,
        params: &[f64],
        rots: &[Matrix3<f64>],
        pts: &mut Vec<([f64; 3], [f64; 2])>,
        slot: &mut [f64],
    ) {
        let k = self.n_per_plane();
        let (start, end) = (self.offsets[t], self.offsets[t + 1]);
        pts.clear();
        for i in start..end {
            let g = match self.param_of[self.plane[i]] {
                Some(j) if self.tilts => {
                    let p = &params[j * k..j * k + k];
                    let l = self.local[i];
                    rots[self.plane[i]] * Vector3::new(l[0], l[1], 0.0)
                        + self.pos[i]
                        + Vector3::new(p[0], p[1], 0.0)
                }
                Some(j) => {
                    let p = &params[j * k..j * k + k];
                    let r = if self.rotation {
                        rot_z(p[2]) * self.v[i]
                    } else {
                        self.v[i]
                    };
                    r + self.pos[i] + Vector3::new(p[0], p[1], 0.0)
                }
                None => self.v[i] + self.pos[i],
            };
            pts.push(([g.x, g.y, g.z], self.err[i]));
        }
        let line = fit_lsq(pts, None);
        for (n, (g, e)) in pts.iter().enumerate() {
            let (rx, ry) = match line {
                Some(l) => {
                    let a = l.at(g[2]);
                    ((g[0] - a[0]) / e[0], (g[1] - a[1]) / e[1])
                }
                None => (0.0, 0.0),
            };
            slot[2 * n] = rx;
            slot[2 * n + 1] = ry;
        }
    }
}

/// Settings of [`align_chi2`].
#[derive(Debug, Clone, PartialEq)]
pub struct Chi2AlignParams {
    /// Planes that do not move.
    pub fixed: Vec<bool>,
    /// Also fit the rotation about z.
    pub rotation: bool,
    /// Also fit the tilts (rotations about x and y).
    pub tilts: bool,
    /// Spatial cuts (x, y, mm) of the successive stages; each stage iterates to convergence.
    pub stage_cuts: Vec<f64>,
    /// Iterations per stage at most.
    pub max_iterations: usize,
    /// Converged when no shift changes by more than this (mm) ...
    pub tolerance_shift: f64,
    /// ... and no rotation by more than this (rad).
    pub tolerance_rotation: f64,
    /// Tracks with chi2/ndof above this are not used (Corryvreckan `max_track_chi2ndof`);
    /// not applied in the first iteration of the first stage.
    pub max_track_chi2ndof: f64,
    /// Tracking settings (the spatial cut is replaced by each stage's).
    pub tracking: TrackingParams,
}

fn find_tracks(
    events: &[(u64, impl AsRef<[Cluster]>)],
    planes: &[PlaneInfo],
    par: &TrackingParams,
) -> Vec<Track> {
    let mut tracker = Tracker::default();
    let mut out = Vec::new();
    let mut buf: Vec<Cluster> = Vec::new();
    for (number, cl) in events {
        buf.clear();
        buf.extend_from_slice(cl.as_ref());
        update_globals(&mut buf, planes);
        tracker.tracking4d(*number, &buf, planes, par, &mut out);
    }
    out
}

/// Prealignment: shift every free plane so that the median difference of its single cluster to
/// the first fixed plane's single cluster is zero (Corryvreckan `Prealignment` aligns the
/// correlation peaks the same way).
pub fn prealign(
    events: &[(u64, impl AsRef<[Cluster]>)],
    planes: &mut [PlaneInfo],
    fixed: &[bool],
) -> Vec<[f64; 2]> {
    let Some(reference) = fixed.iter().position(|&f| f) else {
        return vec![[0.0; 2]; planes.len()];
    };
    let np = planes.len();
    let mut dx: Vec<Vec<f64>> = vec![Vec::new(); np];
    let mut dy: Vec<Vec<f64>> = vec![Vec::new(); np];
    let mut buf = Vec::new();
    for (_, cl) in events {
        buf.clear();
        buf.extend_from_slice(cl.as_ref());
        update_globals(&mut buf, planes);
        let mut count = vec![0u32; np];
        for c in &buf {
            count[c.plane as usize] += 1;
        }
        if count[reference] != 1 {
            continue;
        }
        let Some(r) = buf.iter().find(|c| c.plane as usize == reference) else {
            continue;
        };
        for c in &buf {
            let p = c.plane as usize;
            if count[p] == 1 && !fixed[p] {
                dx[p].push(c.global[0] - r.global[0]);
                dy[p].push(c.global[1] - r.global[1]);
            }
        }
    }
    let mut shifts = vec![[0.0; 2]; np];
    let mut scratch = Vec::new();
    for p in 0..np {
        if fixed[p] || dx[p].len() < 10 {
            continue;
        }
        let mx = caliper_core::robust::median(&dx[p], &mut scratch).unwrap_or(0.0);
        let my = caliper_core::robust::median(&dy[p], &mut scratch).unwrap_or(0.0);
        move_plane(&mut planes[p], -mx, -my, 0.0);
        shifts[p] = [-mx, -my];
    }
    shifts
}

/// Chi2 alignment (see the module docs). `events` are the clusters (local positions) of the
/// events that may hold tracks; `planes` is updated in place. Returns the history (iteration 0
/// holds the starting constants).
/// Also says whether every stage converged (else it stopped at `max_iterations`).
pub fn align_chi2(
    events: &[(u64, impl AsRef<[Cluster]>)],
    planes: &mut [PlaneInfo],
    par: &Chi2AlignParams,
) -> Result<(Vec<AlignStep>, bool), String> {
    let np = planes.len();
    let mut param_of = vec![None; np];
    let mut nfree = 0;
    for (p, slot) in param_of.iter_mut().enumerate() {
        if !par.fixed[p] && par.tracking.tracking_plane[p] {
            *slot = Some(nfree);
            nfree += 1;
        }
    }
    let k = 2 + usize::from(par.rotation) + 2 * usize::from(par.tilts);
    if par.tilts {
        // The tilt parameters change the `xyz` angles: express every free plane that way.
        for (p, pl) in planes.iter_mut().enumerate() {
            if param_of[p].is_some() {
                pl.geometry.to_xyz_mode();
                pl.transform = pl.geometry.transform();
            }
        }
    }
    let mut history = Vec::new();
    let record = |history: &mut Vec<AlignStep>,
                  planes: &[PlaneInfo],
                  stage,
                  iteration,
                  errs: &[[f64; 5]],
                  tracks,
                  chi| {
        for (p, pl) in planes.iter().enumerate() {
            let e = errs[p];
            history.push(AlignStep {
                stage,
                iteration,
                plane: p,
                position: [pl.geometry.position[0], pl.geometry.position[1]],
                rotation_z: pl.geometry.orientation[2],
                tilts: [pl.geometry.orientation[0], pl.geometry.orientation[1]],
                tilt_errors: [e[3], e[4]],
                error: [e[0], e[1], e[2]],
                tracks,
                mean_chi2ndof: chi,
            });
        }
    };
    record(&mut history, planes, 0, 0, &vec![[0.0; 5]; np], 0, f64::NAN);
    if nfree == 0 {
        return Ok((history, true));
    }
    let mut converged = true;
    let mut iteration = 0;
    for (stage, &cut) in par.stage_cuts.iter().enumerate() {
        let mut tp = par.tracking.clone();
        tp.spatial_cut = vec![[cut, cut]; np];
        let mut stage_converged = false;
        for it in 0..par.max_iterations {
            let mut tracks = find_tracks(events, planes, &tp);
            if stage > 0 || it > 0 {
                tracks.retain(|t| t.chi2ndof() <= par.max_track_chi2ndof);
            }
            if tracks.len() < 3 * nfree {
                return Err(format!(
                    "alignment stage {stage}, iteration {it} (spatial cut {:.1} um): only {} tracks found; loosen the cut or check the prealignment",
                    cut * 1e3,
                    tracks.len()
                ));
            }
            let mean_chi = tracks.iter().map(Track::chi2ndof).sum::<f64>() / tracks.len() as f64;
            // Flatten the tracks: cluster vectors relative to the current plane positions.
            let mut prob = Chi2Problem {
                offsets: vec![0],
                plane: Vec::new(),
                v: Vec::new(),
                pos: Vec::new(),
                err: Vec::new(),
                param_of: &param_of,
                rotation: par.rotation,
                tilts: par.tilts,
                local: Vec::new(),
                angles: planes.iter().map(|p| p.geometry.orientation).collect(),
            };
            for t in &tracks {
                for c in &t.clusters {
                    let pl = &planes[c.plane as usize];
                    let pos = pl.transform.pos;
                    if par.tilts {
                        prob.local.push(c.local);
                    }
                    prob.plane.push(c.plane as usize);
                    prob.v.push(Vector3::from(c.global) - pos);
                    prob.pos.push(pos);
                    prob.err.push(c.error);
                }
                prob.offsets.push(prob.plane.len());
            }
            let opts = LmOptions {
                param_scale: Some(vec![1e-3; nfree * k]),
                ..LmOptions::default()
            };
            let res = levenberg_marquardt(&prob, &vec![0.0; nfree * k], &opts)
                .map_err(|e| format!("alignment fit: {e}"))?;
            // Errors scaled by chi2/ndof: multiple scattering (cosmics) inflates the residuals
            // beyond the cluster errors; for chi2/ndof = 1 this is the plain covariance.
            let errs_flat = res
                .errors(true)
                .unwrap_or_else(|| vec![f64::NAN; nfree * k]);
            let mut errs = vec![[0.0; 5]; np];
            let (mut max_shift, mut max_rot) = (0.0f64, 0.0f64);
            for p in 0..np {
                if let Some(j) = param_of[p] {
                    let d = &res.params[j * k..j * k + k];
                    let da = prob.dangles(d);
                    if par.tilts {
                        move_plane_angles(&mut planes[p], d[0], d[1], da);
                    } else {
                        // The rotation is about the plane centre: R' = Rz(g) R, centre unchanged.
                        move_plane(&mut planes[p], d[0], d[1], da[2]);
                    }
                    max_shift = max_shift.max(d[0].abs()).max(d[1].abs());
                    max_rot = max_rot.max(da[0].abs()).max(da[1].abs()).max(da[2].abs());
                    let e = &errs_flat[j * k..j * k + k];
                    let ea = prob.dangles(e);
                    errs[p] = [e[0], e[1], ea[2], ea[0], ea[1]];
                }
            }
            iteration += 1;
            record(
                &mut history,
                planes,
                stage,
                iteration,
                &errs,
                tracks.len(),
                mean_chi,
            );
            if max_shift <= par.tolerance_shift && max_rot <= par.tolerance_rotation {
                stage_converged = true;
                break;
            }
        }
        converged &= stage_converged;
    }
    Ok((history, converged))
}

/// Settings of [`align_notebook`].
#[derive(Debug, Clone, PartialEq)]
pub struct NotebookAlignParams {
    /// The two (or more) fixed planes.
    pub fixed: Vec<bool>,
    /// Total alignment iterations (the notebook: 5, ">50 recommended").
    pub alignments: usize,
    /// Fine iterations at the end (the notebook: 1, ">10 recommended").
    pub fine_alignments: usize,
    /// Minimum hit planes per track (the notebook: 4).
    pub min_planes: usize,
    /// Residual cut of the fine stage (mm; the notebook: 10).
    pub fine_residual_cut: f64,
}

/// The notebook's chi2/ndof cuts: `np.logspace(6, 2.7, alignments - fine_alignments)`.
pub fn notebook_cuts(alignments: usize, fine: usize) -> Vec<f64> {
    let n = alignments.saturating_sub(fine).max(1);
    if n == 1 {
        return vec![1e6];
    }
    (0..n)
        .map(|i| 10f64.powf(6.0 + (2.7 - 6.0) * i as f64 / (n - 1) as f64))
        .collect()
}

/// The notebook's alignment (see the module docs); `events` hold one whole-plane cluster per
/// hit plane. Returns the history.
pub fn align_notebook(
    events: &[(u64, impl AsRef<[Cluster]>)],
    planes: &mut [PlaneInfo],
    par: &NotebookAlignParams,
) -> Vec<AlignStep> {
    let np = planes.len();
    let cuts = notebook_cuts(par.alignments, par.fine_alignments);
    let mut history = Vec::new();
    for (p, pl) in planes.iter().enumerate() {
        history.push(AlignStep {
            stage: 0,
            iteration: 0,
            plane: p,
            position: [pl.geometry.position[0], pl.geometry.position[1]],
            rotation_z: pl.geometry.orientation[2],
            tilts: [pl.geometry.orientation[0], pl.geometry.orientation[1]],
            tilt_errors: [0.0; 2],
            error: [0.0; 3],
            tracks: 0,
            mean_chi2ndof: f64::NAN,
        });
    }
    let mut cnt = 0;
    let mut fine = false;
    let mut buf = Vec::new();
    let mut res = Vec::new();
    let mut t = Track::default();
    for a in 0..par.alignments {
        let cut = cuts[cnt];
        let mut sum = vec![[0.0f64; 2]; np];
        let mut sum2 = vec![[0.0f64; 2]; np];
        let mut n = vec![[0usize; 2]; np];
        let (mut used, mut chi_sum) = (0usize, 0.0);
        for (number, cl) in events {
            buf.clear();
            buf.extend_from_slice(cl.as_ref());
            update_globals(&mut buf, planes);
            if !notebook_track_into(*number, &buf, par.min_planes, &mut t) {
                continue;
            }
            if t.chi2ndof() >= cut {
                continue;
            }
            used += 1;
            chi_sum += t.chi2ndof();
            // Only the biased residuals are used.
            residuals_into(&t, true, false, &mut res);
            for &(plane, r, _) in &res {
                let p = plane as usize;
                for k in 0..2 {
                    if fine && r[k].abs() > par.fine_residual_cut {
                        continue;
                    }
                    sum[p][k] += r[k];
                    sum2[p][k] += r[k] * r[k];
                    n[p][k] += 1;
                }
            }
        }
        for p in 0..np {
            let mut e = [0.0; 3];
            let mut mean = [0.0; 2];
            for k in 0..2 {
                if n[p][k] > 0 {
                    let m = sum[p][k] / n[p][k] as f64;
                    mean[k] = m;
                    e[k] = (sum2[p][k] / n[p][k] as f64 - m * m).max(0.0).sqrt();
                }
            }
            if !par.fixed[p] {
                // The hits move by -mean residual: the plane moves by -mean.
                move_plane(&mut planes[p], -mean[0], -mean[1], 0.0);
            }
            history.push(AlignStep {
                stage: usize::from(fine),
                iteration: a + 1,
                plane: p,
                position: [
                    planes[p].geometry.position[0],
                    planes[p].geometry.position[1],
                ],
                rotation_z: planes[p].geometry.orientation[2],
                tilts: [
                    planes[p].geometry.orientation[0],
                    planes[p].geometry.orientation[1],
                ],
                tilt_errors: [0.0; 2],
                error: e,
                tracks: used,
                mean_chi2ndof: if used > 0 {
                    chi_sum / used as f64
                } else {
                    f64::NAN
                },
            });
        }
        if cnt + 1 < cuts.len() {
            cnt += 1;
        } else {
            fine = true;
        }
    }
    history
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::geometry::DetectorGeometry;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, Normal};

    fn planes() -> Vec<PlaneInfo> {
        (0..7)
            .map(|i| {
                let g = DetectorGeometry::alpide(&format!("ALPIDE_{i}"), -60.0 + 20.0 * i as f64);
                PlaneInfo {
                    transform: g.transform(),
                    geometry: g,
                    mask: None,
                }
            })
            .collect()
    }

    /// Straight tracks through a telescope whose true planes are shifted and rotated; clusters
    /// are measured in the true frame and given as local positions.
    fn tracks_through(
        truth: &[PlaneInfo],
        n: usize,
        sigma: f64,
        seed: u64,
    ) -> Vec<(u64, Vec<Cluster>)> {
        tracks_with_slopes(truth, n, sigma, seed, 0.01)
    }

    /// As [`tracks_through`], slopes uniform in +-`max_slope`.
    fn tracks_with_slopes(
        truth: &[PlaneInfo],
        n: usize,
        sigma: f64,
        seed: u64,
        max_slope: f64,
    ) -> Vec<(u64, Vec<Cluster>)> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let noise = Normal::new(0.0, sigma).unwrap();
        (0..n as u64)
            .map(|ev| {
                let x0 = rng.random_range(-12.0..12.0);
                let y0 = rng.random_range(-5.0..5.0);
                let sx = rng.random_range(-max_slope..max_slope);
                let sy = rng.random_range(-max_slope..max_slope);
                let cl = truth
                    .iter()
                    .enumerate()
                    .filter_map(|(p, pl)| {
                        let l = pl.transform.intersect_local([x0, y0, 0.0], [sx, sy, 1.0])?;
                        let local = [l[0] + noise.sample(&mut rng), l[1] + noise.sample(&mut rng)];
                        Some(Cluster {
                            plane: p as u16,
                            col: 0.0,
                            row: 0.0,
                            local,
                            global: [0.0; 3],
                            error: [sigma, sigma],
                            size: 1,
                            col_width: 1,
                            row_width: 1,
                            charge: 1.0,
                            time: 0.0,
                        })
                    })
                    .collect();
                (ev, cl)
            })
            .collect()
    }

    #[test]
    fn chi2_alignment_recovers_shifts_and_rotations() {
        let mut truth = planes();
        let shifts = [
            (0.0, 0.0, 0.0),
            (0.12, -0.08, 0.002),
            (-0.2, 0.05, -0.003),
            (0.3, 0.1, 0.001),
            (-0.05, -0.25, 0.004),
            (0.15, 0.2, -0.002),
            (0.0, 0.0, 0.0),
        ];
        for (p, s) in shifts.iter().enumerate() {
            move_plane(&mut truth[p], s.0, s.1, s.2);
        }
        let events = tracks_through(&truth, 3000, 0.005, 1);
        let mut fixed = vec![false; 7];
        fixed[0] = true;
        fixed[6] = true;
        let mut est = planes();
        prealign(&events, &mut est, &fixed);
        let par = Chi2AlignParams {
            fixed,
            rotation: true,
            tilts: false,
            stage_cuts: vec![1.0, 0.1, 0.03],
            max_iterations: 10,
            tolerance_shift: 1e-5,
            tolerance_rotation: 1e-6,
            max_track_chi2ndof: 10.0,
            tracking: TrackingParams {
                min_hits_on_track: 6,
                spatial_cut: vec![[0.03, 0.03]; 7],
                tracking_plane: vec![true; 7],
                exclude_from_seed: vec![false; 7],
                time_cut: None,
            },
        };
        let (hist, converged) = align_chi2(&events, &mut est, &par).unwrap();
        assert!(hist.len() > 7);
        assert!(converged);
        for p in 0..7 {
            let d = [
                est[p].geometry.position[0] - truth[p].geometry.position[0],
                est[p].geometry.position[1] - truth[p].geometry.position[1],
            ];
            let dr = est[p].geometry.orientation[2] - truth[p].geometry.orientation[2];
            // 3000 tracks, 5 um resolution: statistical precision ~0.2 um; 1 um and 0.1 mrad
            // are the targets.
            assert!(
                d[0].abs() < 1e-3 && d[1].abs() < 1e-3,
                "plane {p}: {d:?} mm"
            );
            assert!(dr.abs() < 1e-4, "plane {p}: {dr} rad");
        }
    }

    #[test]
    fn analytic_jacobian_equals_finite_differences() {
        // The chi2 problem of 200 tracks through shifted and rotated planes, at parameters
        // away from zero: the analytic Jacobian equals central differences (step 1e-6 in
        // mm and rad) to 1e-6 of the largest element (their truncation error is ~1e-10).
        let mut truth = planes();
        for (p, s) in [(1, 0.1), (3, -0.05), (5, 0.2)] {
            move_plane(&mut truth[p], s, -s, 0.002);
        }
        let events = tracks_through(&truth, 200, 0.005, 5);
        let est = planes();
        let fixed: Vec<bool> = (0..7).map(|p| p == 0 || p == 6).collect();
        let param_of: Vec<Option<usize>> = (0..7)
            .scan(0, |n, p| {
                Some(if fixed[p] {
                    None
                } else {
                    *n += 1;
                    Some(*n - 1)
                })
            })
            .collect();
        let tp = TrackingParams {
            min_hits_on_track: 6,
            spatial_cut: vec![[1.0, 1.0]; 7],
            tracking_plane: vec![true; 7],
            exclude_from_seed: vec![false; 7],
            time_cut: None,
        };
        let tracks = find_tracks(&events, &est, &tp);
        assert!(tracks.len() > 100);
        for rotation in [true, false] {
            let mut prob = Chi2Problem {
                offsets: vec![0],
                plane: Vec::new(),
                v: Vec::new(),
                pos: Vec::new(),
                err: Vec::new(),
                param_of: &param_of,
                rotation,
                tilts: false,
                local: Vec::new(),
                angles: Vec::new(),
            };
            for t in &tracks {
                for c in &t.clusters {
                    let pos = est[c.plane as usize].transform.pos;
                    prob.plane.push(c.plane as usize);
                    prob.v.push(Vector3::from(c.global) - pos);
                    prob.pos.push(pos);
                    prob.err.push(c.error);
                }
                prob.offsets.push(prob.plane.len());
            }
            let k = prob.n_per_plane();
            let params: Vec<f64> = (0..5 * k).map(|i| 1e-3 * (i as f64 - 6.0)).collect();
            let (nr, np) = (prob.n_residuals(), params.len());
            let mut jac = vec![0.0; nr * np];
            assert!(prob.jacobian(&params, &mut jac));
            let h = 1e-6;
            let (mut rp, mut rm) = (vec![0.0; nr], vec![0.0; nr]);
            let mut worst = 0.0f64;
            let mut largest = 0.0f64;
            for j in 0..np {
                let mut p = params.clone();
                p[j] += h;
                prob.residuals(&p, &mut rp);
                p[j] -= 2.0 * h;
                prob.residuals(&p, &mut rm);
                for i in 0..nr {
                    let fd = (rp[i] - rm[i]) / (2.0 * h);
                    worst = worst.max((fd - jac[i * np + j]).abs());
                    largest = largest.max(fd.abs());
                }
            }
            assert!(
                worst <= 1e-6 * largest,
                "rotation {rotation}: {worst} of {largest}"
            );
        }
    }

    #[test]
    fn chi2_alignment_with_tilts_recovers_planted_tilts() {
        // Cosmic-like tracks (slopes up to +-0.3) through planes with planted shifts, rotations
        // about z and tilts of 2-8 mrad about x and y. A tilt a about x moves a hit at local y
        // by y*a in z, i.e. by slope * y * a across the track: with 5 um clusters, 10,000
        // tracks, slope rms 0.17 and |y| < 6.7 mm (rms 3.9), |x| < 14 mm (rms 8.2) the
        // statistical precision is ~0.04 mrad about x and ~0.02 mrad about y. Tolerance:
        // 0.2 mrad (5 sigma about x) and within 5 of the fit's own errors; shifts within 1 um
        // and rotations about z within 0.1 mrad as without tilts.
        let mut truth = planes();
        let planted = [
            (0.0, 0.0, 0.0, 0.0, 0.0),
            (0.12, -0.08, 0.002, 0.004, -0.003),
            (-0.2, 0.05, -0.003, -0.006, 0.005),
            (0.3, 0.1, 0.001, 0.008, 0.002),
            (-0.05, -0.25, 0.004, -0.002, -0.007),
            (0.15, 0.2, -0.002, 0.005, 0.008),
            (0.0, 0.0, 0.0, 0.0, 0.0),
        ];
        for (p, s) in planted.iter().enumerate() {
            move_plane_angles(&mut truth[p], s.0, s.1, [s.3, s.4, s.2]);
        }
        let events = tracks_with_slopes(&truth, 10_000, 0.005, 3, 0.3);
        let mut fixed = vec![false; 7];
        fixed[0] = true;
        fixed[6] = true;
        let mut est = planes();
        prealign(&events, &mut est, &fixed);
        let par = Chi2AlignParams {
            fixed,
            rotation: true,
            tilts: true,
            stage_cuts: vec![1.0, 0.1, 0.03],
            max_iterations: 10,
            tolerance_shift: 1e-5,
            tolerance_rotation: 1e-6,
            max_track_chi2ndof: 10.0,
            tracking: TrackingParams {
                min_hits_on_track: 6,
                spatial_cut: vec![[0.03, 0.03]; 7],
                tracking_plane: vec![true; 7],
                exclude_from_seed: vec![false; 7],
                time_cut: None,
            },
        };
        let (hist, converged) = align_chi2(&events, &mut est, &par).unwrap();
        assert!(converged);
        let last = hist.iter().map(|h| h.iteration).max().unwrap();
        for h in hist.iter().filter(|h| h.iteration == last) {
            let p = h.plane;
            let (t, e) = (&truth[p].geometry, &est[p].geometry);
            let d = [e.position[0] - t.position[0], e.position[1] - t.position[1]];
            assert!(
                d[0].abs() < 1e-3 && d[1].abs() < 1e-3,
                "plane {p}: {d:?} mm"
            );
            assert!(
                (e.orientation[2] - t.orientation[2]).abs() < 1e-4,
                "plane {p}"
            );
            eprintln!(
                "plane {p}: dx {:.3} um, dy {:.3} um, drot_z {:.4} mrad, dtilt_x {:.4} +- {:.4} mrad, dtilt_y {:.4} +- {:.4} mrad",
                d[0] * 1e3,
                d[1] * 1e3,
                (e.orientation[2] - t.orientation[2]) * 1e3,
                (e.orientation[0] - t.orientation[0]) * 1e3,
                h.tilt_errors[0] * 1e3,
                (e.orientation[1] - t.orientation[1]) * 1e3,
                h.tilt_errors[1] * 1e3
            );
            for a in 0..2 {
                let da = e.orientation[a] - t.orientation[a];
                assert!(da.abs() < 2e-4, "plane {p} tilt {a}: {da} rad");
                if p != 0 && p != 6 {
                    assert!(h.tilt_errors[a] > 0.0, "plane {p}");
                    assert!(
                        da.abs() < 5.0 * h.tilt_errors[a].max(1e-5),
                        "plane {p} tilt {a}: {da} vs {}",
                        h.tilt_errors[a]
                    );
                }
            }
        }
        // The tilts moved from zero to the planted values (not left where they started).
        assert!(hist.iter().any(|h| h.tilts[0].abs() > 3e-3));
    }

    #[test]
    fn notebook_alignment_shifts_by_mean_residuals() {
        let mut truth = planes();
        let shifts = [0.0, 0.1, -0.2, 0.05, 0.15, -0.1, 0.0];
        for (p, s) in shifts.iter().enumerate() {
            move_plane(&mut truth[p], *s, -*s, 0.0);
        }
        let events = tracks_through(&truth, 2000, 0.01, 2);
        let mut fixed = vec![false; 7];
        fixed[0] = true;
        fixed[6] = true;
        let mut est = planes();
        let par = NotebookAlignParams {
            fixed,
            alignments: 30,
            fine_alignments: 5,
            min_planes: 4,
            fine_residual_cut: 10.0,
        };
        let hist = align_notebook(&events, &mut est, &par);
        assert_eq!(hist.len(), 7 * 31);
        for p in 0..7 {
            let d = est[p].geometry.position[0] - truth[p].geometry.position[0];
            // Biased residuals shrink the update by (1 - leverage) per iteration: after 30
            // iterations the remaining offset is well below 2 um.
            assert!(d.abs() < 2e-3, "plane {p}: {d}");
        }
        let cuts = notebook_cuts(5, 1);
        assert_eq!(cuts.len(), 4);
        assert!((cuts[0] - 1e6).abs() < 1e-6 && (cuts[3] - 10f64.powf(2.7)).abs() < 1e-9);
    }
}
