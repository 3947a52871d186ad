//! Stereo reconstruction as ctapipe's `HillasReconstructor`
//! (`ctapipe/reco/hillas_reconstructor.py`, frames from `ctapipe/coordinates/`): Hillas
//! planes from the telescope-frame cog and a second point along psi, their weighted pairwise
//! crossings for the direction, line intersections in the tilted ground frame for the core,
//! and of the cog directions for h_max.

use crate::hillas::HillasParameters;

/// One telescope's input to the reconstruction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StereoInput {
    /// Telescope id.
    pub tel_id: u16,
    /// Hillas parameters in the telescope frame (deg, rad).
    pub hillas: HillasParameters,
    /// Telescope pointing (azimuth, altitude) \[rad\].
    pub pointing_az_alt: (f64, f64),
    /// Ground position (x, y, z) \[m\].
    pub position: [f64; 3],
    /// Camera radius in the telescope frame \[deg\] (`guess_radius` through the focal length).
    pub cam_radius_deg: f64,
}

/// Reconstructed shower geometry.
#[derive(Debug, Clone, PartialEq)]
pub struct StereoResult {
    /// Altitude \[rad\].
    pub alt: f64,
    /// Azimuth \[rad\], in [0, 2π).
    pub az: f64,
    /// Core x \[m\] (ground frame).
    pub core_x: f64,
    /// Core y \[m\].
    pub core_y: f64,
    /// Core in the tilted frame (x, y) \[m\].
    pub core_tilted: (f64, f64),
    /// Height of the shower maximum above sea level \[m\].
    pub h_max: f64,
    /// Mean intensity of the telescopes used.
    pub average_intensity: f64,
    /// Mean angle between the result and the pairwise crossings \[rad\].
    pub direction_uncertainty: f64,
    /// Telescopes used.
    pub telescopes: Vec<u16>,
    /// Corrected psi per telescope \[rad\] (ctapipe `parameters.core.psi`).
    pub core_psi: Vec<f64>,
}

type V3 = [f64; 3];

fn cross(a: V3, b: V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn norm(a: V3) -> f64 {
    (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt()
}

/// astropy `rotation_matrix(angle, 'z')` @ v
fn rot_z(angle: f64, v: V3) -> V3 {
    let (s, c) = angle.sin_cos();
    [c * v[0] + s * v[1], -s * v[0] + c * v[1], v[2]]
}

/// astropy `rotation_matrix(angle, 'y')` @ v
fn rot_y(angle: f64, v: V3) -> V3 {
    let (s, c) = angle.sin_cos();
    [c * v[0] - s * v[2], v[1], s * v[0] + c * v[2]]
}

fn unit_spherical(lon: f64, lat: f64) -> V3 {
    let (sl, cl) = lon.sin_cos();
    let (sb, cb) = lat.sin_cos();
    [cb * cl, cb * sl, sb]
}

/// TelescopeFrame (fov_lon, fov_lat) (rad) around a pointing (az, alt) → AltAz unit vector
/// (`telescope_to_altaz` = transpose of `R_y(−alt) R_z(az)`).
pub(crate) fn telescope_to_altaz(lon: f64, lat: f64, az: f64, alt: f64) -> V3 {
    let v = unit_spherical(lon, lat);
    // transpose of R_y(−alt) R_z(az) is R_z(−az) R_y(alt)
    rot_z(-az, rot_y(alt, v))
}

/// AltAz unit vector → TelescopeFrame (lon, lat) (rad) around a pointing.
pub(crate) fn altaz_to_telescope(v: V3, az: f64, alt: f64) -> (f64, f64) {
    let t = rot_y(-alt, rot_z(az, v));
    (t[1].atan2(t[0]), t[2].atan2(t[0].hypot(t[1])))
}

/// AltAz unit vector (astropy: az counted from x towards y) → (alt, az).
pub(crate) fn altaz_angles(v: V3) -> (f64, f64) {
    (v[2].atan2(v[0].hypot(v[1])), v[1].atan2(v[0]))
}

/// ctapipe `altaz_to_righthanded_cartesian`.
pub(crate) fn righthanded(alt: f64, az: f64) -> V3 {
    let (sa, ca) = alt.sin_cos();
    let (sz, cz) = az.sin_cos();
    [ca * cz, -ca * sz, sa]
}

/// `_get_shower_trans_matrix(az, alt)`: ground → tilted frame.
fn tilted_matrix(az: f64, alt: f64) -> [[f64; 3]; 3] {
    let (sin_az, cos_az) = az.sin_cos();
    let cos_z = alt.sin();
    let sin_z = alt.cos();
    [
        [cos_z * cos_az, -cos_z * sin_az, -sin_z],
        [sin_az, cos_az, 0.0],
        [sin_z * cos_az, -sin_z * sin_az, cos_z],
    ]
}

/// Least-squares intersection of 3-D lines (`line_line_intersection_3d`).
fn line_intersection(dirs: &[V3], origins: &[V3]) -> Option<V3> {
    let mut s = [[0.0; 3]; 3];
    let mut c = [0.0; 3];
    for (n, o) in dirs.iter().zip(origins) {
        let mut m = [[0.0; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] = n[i] * n[j] - if i == j { 1.0 } else { 0.0 };
            }
        }
        for i in 0..3 {
            for j in 0..3 {
                s[i][j] += m[i][j];
            }
            c[i] += m[i][0] * o[0] + m[i][1] * o[1] + m[i][2] * o[2];
        }
    }
    let inv = nalgebra::Matrix3::new(
        s[0][0], s[0][1], s[0][2], s[1][0], s[1][1], s[1][2], s[2][0], s[2][1], s[2][2],
    )
    .try_inverse()?;
    let r = inv * nalgebra::Vector3::new(c[0], c[1], c[2]);
    Some([r[0], r[1], r[2]])
}

/// Reconstruct; `array_pointing` = (az, alt) \[rad\]; `observatory_height` [m a.s.l.].
/// Returns `None` with fewer than two telescopes.
pub fn reconstruct(
    inputs: &[StereoInput],
    array_pointing: (f64, f64),
    observatory_height: f64,
) -> Option<StereoResult> {
    if inputs.len() < 2 {
        return None;
    }
    let n = inputs.len();
    let mut cog_v = Vec::with_capacity(n);
    let mut p2_v = Vec::with_capacity(n);
    let mut weights = Vec::with_capacity(n);
    let mut core_psi = Vec::with_capacity(n);
    let (a_az, a_alt) = array_pointing;
    for t in inputs {
        let h = &t.hillas;
        let (az, alt) = t.pointing_az_alt;
        let cog1 = h.x;
        let cog2 = h.y;
        let p2_1 = cog1 + 0.1 * t.cam_radius_deg * h.psi.cos();
        let p2_2 = cog2 + 0.1 * t.cam_radius_deg * h.psi.sin();
        let cog_altaz = telescope_to_altaz(cog1.to_radians(), cog2.to_radians(), az, alt);
        let p2_altaz = telescope_to_altaz(p2_1.to_radians(), p2_2.to_radians(), az, alt);
        let (ca, cz) = altaz_angles(cog_altaz);
        let (pa, pz) = altaz_angles(p2_altaz);
        cog_v.push(righthanded(ca, cz));
        p2_v.push(righthanded(pa, pz));
        weights.push(h.intensity * h.length / h.width);
        // pseudo-nominal CameraFrame of the array pointing: x = lat·f, y = lon·f (f cancels)
        let (cl, cb) = altaz_to_telescope(cog_altaz, a_az, a_alt);
        let (pl, pb) = altaz_to_telescope(p2_altaz, a_az, a_alt);
        core_psi.push(((cl - pl) / (cb - pb)).atan());
    }
    // direction: weighted mean of the pairwise plane crossings, flipped upwards
    let norms: Vec<V3> = cog_v
        .iter()
        .zip(&p2_v)
        .map(|(a, b)| cross(*a, *b))
        .collect();
    let mut sum = [0.0; 3];
    let mut wsum = 0.0;
    let mut crossings = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            let mut c = cross(norms[i], norms[j]);
            if c[2] < 0.0 {
                c = [-c[0], -c[1], -c[2]];
            }
            let w = weights[i] * weights[j];
            for k in 0..3 {
                sum[k] += w * c[k];
            }
            wsum += w;
            crossings.push(c);
        }
    }
    let avg = [sum[0] / wsum, sum[1] / wsum, sum[2] / wsum];
    let nn = norm(avg);
    let dir = [avg[0] / nn, avg[1] / nn, avg[2] / nn];
    let mut off = 0.0;
    for c in &crossings {
        let d = (dir[0] * c[0] + dir[1] * c[1] + dir[2] * c[2]) / (norm(dir) * norm(*c));
        off += d.clamp(-1.0, 1.0).acos();
    }
    let direction_uncertainty = off / crossings.len() as f64;
    let lat = dir[2].atan2(dir[0].hypot(dir[1]));
    let lon = dir[1].atan2(dir[0]);
    let az = (-lon).rem_euclid(2.0 * std::f64::consts::PI);
    // core: lines in the tilted frame of the array pointing
    let t = tilted_matrix(a_az, a_alt);
    let origins: Vec<V3> = inputs
        .iter()
        .map(|i| {
            let p = i.position;
            [
                t[0][0] * p[0] + t[0][1] * p[1] + t[0][2] * p[2],
                t[1][0] * p[0] + t[1][1] * p[1] + t[1][2] * p[2],
                t[2][0] * p[0] + t[2][1] * p[1] + t[2][2] * p[2],
            ]
        })
        .collect();
    let dirs: Vec<V3> = core_psi.iter().map(|&p| [p.cos(), p.sin(), 0.0]).collect();
    let core_t = line_intersection(&dirs, &origins)?;
    let (tx, ty) = (core_t[0], core_t[1]);
    // back to the ground (transpose) with z_tilted = 0, then project along the pointing
    let gx = t[0][0] * tx + t[1][0] * ty;
    let gy = t[0][1] * tx + t[1][1] * ty;
    let gz = t[0][2] * tx + t[1][2] * ty;
    let core_x = gx - t[2][0] * gz / t[2][2];
    let core_y = gy - t[2][1] * gz / t[2][2];
    let positions: Vec<V3> = inputs.iter().map(|i| i.position).collect();
    let hmax = line_intersection(&cog_v, &positions)?;
    Some(StereoResult {
        alt: lat,
        az,
        core_x,
        core_y,
        core_tilted: (tx, ty),
        h_max: hmax[2] + observatory_height,
        average_intensity: inputs.iter().map(|i| i.hillas.intensity).sum::<f64>() / n as f64,
        direction_uncertainty,
        telescopes: inputs.iter().map(|i| i.tel_id).collect(),
        core_psi,
    })
}
