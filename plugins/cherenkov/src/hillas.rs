//! Hillas parameters (ctapipe `image/hillas.py::hillas_parameters`): charge-weighted moments
//! with the population covariance (`np.cov(..., aweights, ddof=0)`), psi = arctan(v_y/v_x) of
//! the major eigenvector, skewness/kurtosis along the axis normalised by the length, and the
//! uncertainties ctapipe exports.

/// Pixel coordinates of one frame (camera frame in m, or telescope frame in deg).
#[derive(Debug, Clone, Copy)]
pub struct FrameView<'a> {
    /// x (camera) or fov_lon (telescope).
    pub x: &'a [f64],
    /// y (camera) or fov_lat (telescope).
    pub y: &'a [f64],
    /// Pixel areas in the frame's units².
    pub area: &'a [f64],
}

/// Hillas parameters in one frame (lengths in the frame's unit, angles in rad).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HillasParameters {
    /// Σ charge.
    pub intensity: f64,
    /// cog x / fov_lon.
    pub x: f64,
    /// cog y / fov_lat.
    pub y: f64,
    /// hypot(x, y).
    pub r: f64,
    /// atan2(y, x) \[rad\].
    pub phi: f64,
    /// Length.
    pub length: f64,
    /// Length uncertainty.
    pub length_uncertainty: f64,
    /// Width.
    pub width: f64,
    /// Width uncertainty.
    pub width_uncertainty: f64,
    /// Orientation \[rad\], in (−π/2, π/2].
    pub psi: f64,
    /// Orientation uncertainty \[rad\].
    pub psi_uncertainty: f64,
    /// Transverse cog uncertainty.
    pub transverse_cog_uncertainty: f64,
    /// Skewness along the major axis.
    pub skewness: f64,
    /// Kurtosis along the major axis (not reduced by 3).
    pub kurtosis: f64,
}

impl HillasParameters {
    /// All NaN (ctapipe's default container for images that are not parameterised).
    pub fn nan() -> Self {
        let n = f64::NAN;
        Self {
            intensity: n,
            x: n,
            y: n,
            r: n,
            phi: n,
            length: n,
            length_uncertainty: n,
            width: n,
            width_uncertainty: n,
            psi: n,
            psi_uncertainty: n,
            transverse_cog_uncertainty: n,
            skewness: n,
            kurtosis: n,
        }
    }
}

/// ctapipe's `HILLAS_ATOL`: eigenvalues this close to 0 become 0.
const HILLAS_ATOL: f64 = f64::EPSILON;

/// Hillas parameters of the pixels `idx` (the cleaned pixels) with charges `image[idx]`.
/// Returns `None` if the intensity is 0.
pub fn hillas_parameters(
    frame: &FrameView<'_>,
    image: &[f32],
    idx: &[u32],
) -> Option<HillasParameters> {
    let mut size = 0.0;
    let mut sx = 0.0;
    let mut sy = 0.0;
    for &i in idx {
        let i = i as usize;
        let w = f64::from(image[i]);
        size += w;
        sx += w * frame.x[i];
        sy += w * frame.y[i];
    }
    if size == 0.0 {
        return None;
    }
    let cog_x = sx / size;
    let cog_y = sy / size;
    let r = cog_x.hypot(cog_y);
    let phi = cog_y.atan2(cog_x);
    // np.cov re-centres the deltas on their weighted mean before the products
    let (mut mx, mut my) = (0.0, 0.0);
    for &i in idx {
        let i = i as usize;
        let w = f64::from(image[i]);
        mx += w * (frame.x[i] - cog_x);
        my += w * (frame.y[i] - cog_y);
    }
    mx /= size;
    my /= size;
    let (mut cxx, mut cxy, mut cyy) = (0.0, 0.0, 0.0);
    for &i in idx {
        let i = i as usize;
        let w = f64::from(image[i]);
        let dx = frame.x[i] - cog_x - mx;
        let dy = frame.y[i] - cog_y - my;
        cxx += w * dx * dx;
        cxy += w * dx * dy;
        cyy += w * dy * dy;
    }
    cxx /= size;
    cxy /= size;
    cyy /= size;
    // eigh of [[cxx, cxy], [cxy, cyy]] (numpy → LAPACK, which for a 2×2 block ends in dlaev2)
    let (mut l2, mut l1, vx, vy) = dlaev2(cxx, cxy, cyy);
    if l1.abs() <= HILLAS_ATOL {
        l1 = 0.0;
    }
    if l2.abs() <= HILLAS_ATOL {
        l2 = 0.0;
    }
    let width = l1.max(0.0).sqrt();
    let length = l2.max(0.0).sqrt();
    let (psi, psi_unc, tcog_unc, skew, kurt);
    if length == 0.0 {
        psi = f64::NAN;
        psi_unc = f64::NAN;
        tcog_unc = f64::NAN;
        skew = f64::NAN;
        kurt = f64::NAN;
    } else {
        psi = if vx != 0.0 {
            (vy / vx).atan()
        } else {
            std::f64::consts::FRAC_PI_2
        };
        let (sp, cp) = psi.sin_cos();
        let (mut m3, mut m4) = (0.0, 0.0);
        // weighted LSQ of t against (l, 1) with weights w / area
        let (mut a11, mut a12, mut a22, mut b1, mut b2) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for &i in idx {
            let i = i as usize;
            let w = f64::from(image[i]);
            let dx = frame.x[i] - cog_x;
            let dy = frame.y[i] - cog_y;
            let l = dx * cp + dy * sp;
            let t = dx * -sp + dy * cp;
            let l3 = l * l * l;
            m3 += w * l3;
            m4 += w * l3 * l;
            let ww = w / frame.area[i];
            a11 += ww * l * l;
            a12 += ww * l;
            a22 += ww;
            b1 += ww * l * t;
            b2 += ww * t;
        }
        skew = (m3 / size) / (length * length * length);
        kurt = (m4 / size) / (length * length * length * length);
        let d = a11 * a22 - a12 * a12;
        let (i11, i12, i22) = (a22 / d, -a12 / d, a11 / d);
        let p0 = i11 * b1 + i12 * b2;
        let tanv = (width / length * std::f64::consts::PI / 2.0).tan();
        psi_unc = (i11 + p0 * p0).sqrt() * (1.0 + tanv * tanv);
        let s0 = p0.sin();
        tcog_unc = (i22 * (1.0 + s0 * s0)).sqrt();
    }
    let c2 = (2.0 * psi).cos();
    let a = (1.0 + c2) / 2.0;
    let b = (1.0 - c2) / 2.0;
    let c = (2.0 * psi).sin();
    let (mut su_l, mut su_w) = (0.0, 0.0);
    for &i in idx {
        let i = i as usize;
        let w = f64::from(image[i]);
        let dx = frame.x[i] - cog_x;
        let dy = frame.y[i] - cog_y;
        let aa = (dx * dx - cxx) / size;
        let bb = (dy * dy - cyy) / size;
        let cc = (dx * dy - cxy) / size;
        let u = a * aa + b * bb + c * cc;
        let v = b * aa + a * bb - c * cc;
        su_l += u * u * w;
        su_w += v * v * w;
    }
    let length_uncertainty = if length == 0.0 {
        f64::NAN
    } else {
        su_l.sqrt() / (2.0 * length)
    };
    let width_uncertainty = if width == 0.0 {
        f64::NAN
    } else {
        su_w.sqrt() / (2.0 * width)
    };
    Some(HillasParameters {
        intensity: size,
        x: cog_x,
        y: cog_y,
        r,
        phi,
        length,
        length_uncertainty,
        width,
        width_uncertainty,
        psi,
        psi_uncertainty: psi_unc,
        transverse_cog_uncertainty: tcog_unc,
        skewness: skew,
        kurtosis: kurt,
    })
}

/// Eigen-decomposition of the symmetric 2×2 matrix [[a, b], [b, c]] in LAPACK `dlaev2`'s
/// arithmetic: (larger eigenvalue, smaller eigenvalue, eigenvector of the larger). For a
/// covariance matrix the larger one is λ2 = length².
fn dlaev2(a: f64, b: f64, c: f64) -> (f64, f64, f64, f64) {
    let sm = a + c;
    let df = a - c;
    let adf = df.abs();
    let tb = b + b;
    let ab = tb.abs();
    let (acmx, acmn) = if a.abs() > c.abs() { (a, c) } else { (c, a) };
    let rt = if adf > ab {
        adf * (1.0 + (ab / adf) * (ab / adf)).sqrt()
    } else if adf < ab {
        ab * (1.0 + (adf / ab) * (adf / ab)).sqrt()
    } else {
        ab * std::f64::consts::SQRT_2
    };
    let (rt1, rt2, sgn1) = if sm < 0.0 {
        let rt1 = 0.5 * (sm - rt);
        (rt1, (acmx / rt1) * acmn - (b / rt1) * b, -1)
    } else if sm > 0.0 {
        let rt1 = 0.5 * (sm + rt);
        (rt1, (acmx / rt1) * acmn - (b / rt1) * b, 1)
    } else {
        (0.5 * rt, -0.5 * rt, 1)
    };
    let (cs, sgn2) = if df >= 0.0 {
        (df + rt, 1)
    } else {
        (df - rt, -1)
    };
    let acs = cs.abs();
    let (mut cs1, mut sn1);
    if acs > ab {
        let ct = -tb / cs;
        sn1 = 1.0 / (1.0 + ct * ct).sqrt();
        cs1 = ct * sn1;
    } else if ab == 0.0 {
        cs1 = 1.0;
        sn1 = 0.0;
    } else {
        let tn = -cs / tb;
        cs1 = 1.0 / (1.0 + tn * tn).sqrt();
        sn1 = tn * cs1;
    }
    if sgn1 == sgn2 {
        let tn = cs1;
        cs1 = -sn1;
        sn1 = tn;
    }
    (rt1, rt2, cs1, sn1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-computed case: two equal charges at (±1, 0) and one half charge at (0, 1).
    /// intensity 2.5, cog (0, 0.2); C_xx = 2/2.5 = 0.8, C_yy = (2·0.04 + 0.5·0.64)/2.5 = 0.16,
    /// C_xy = 0 → length √0.8, width 0.4, psi 0.
    #[test]
    fn hand_computed_moments() {
        let x = [-1.0, 1.0, 0.0];
        let y = [0.0, 0.0, 1.0];
        let area = [1.0; 3];
        let img = [1.0f32, 1.0, 0.5];
        let h = hillas_parameters(
            &FrameView {
                x: &x,
                y: &y,
                area: &area,
            },
            &img,
            &[0, 1, 2],
        )
        .unwrap();
        assert!((h.intensity - 2.5).abs() < 1e-15);
        assert!((h.y - 0.2).abs() < 1e-15 && h.x.abs() < 1e-15);
        assert!((h.length - 0.8f64.sqrt()).abs() < 1e-15, "{}", h.length);
        assert!((h.width - 0.4).abs() < 1e-15, "{}", h.width);
        assert!(h.psi.abs() < 1e-15);
    }
}
