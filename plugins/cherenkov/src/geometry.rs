//! Camera geometry as ctapipe builds it from a sim_telarray file
//! (`ctapipe/io/simteleventsource.py::build_camera`, `ctapipe/instrument/camera/geometry.py`):
//! derotation by `cam_rot`, pixel shapes (unknown → hexagon), the telescope frame
//! (`ctapipe/coordinates/camera_frame.py::camera_to_telescope`), neighbours by ctapipe's
//! k-nearest rule and border pixels.

use crate::io::simtel::{CameraSettings, TelescopeDescription};

/// Pixel shape (ctapipe `PixelShape`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelShape {
    /// Circle.
    Circle,
    /// Hexagon.
    Hexagon,
    /// Square.
    Square,
}

impl PixelShape {
    /// ctapipe's name.
    pub fn name(self) -> &'static str {
        match self {
            PixelShape::Circle => "circle",
            PixelShape::Hexagon => "hexagon",
            PixelShape::Square => "square",
        }
    }

    /// From a sim_telarray code (ctapipe `SIMTEL_PIXEL_SHAPES`): shape and rotation \[deg\].
    /// Unknown codes give `None` (ctapipe then warns and assumes a hexagon at 0°).
    pub fn from_simtel(code: i32) -> Option<(PixelShape, f64)> {
        match code {
            0 => Some((PixelShape::Circle, 0.0)),
            1 => Some((PixelShape::Hexagon, 0.0)),
            2 => Some((PixelShape::Square, 0.0)),
            3 => Some((PixelShape::Hexagon, 30.0)),
            _ => None,
        }
    }
}

/// Which focal length maps the camera to the sky (ctapipe `SimTelEventSource.focal_length_choice`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FocalLengthChoice {
    /// Effective focal length (ctapipe default; CameraSettings v5+).
    Effective,
    /// Equivalent (nominal) focal length.
    Equivalent,
}

impl caliper_core::ConfigDocs for FocalLengthChoice {}

/// Telescope name guess from pixel count and focal length (ctapipe `instrument/guess.py`):
/// (class, optics name, camera name).
pub fn guess_telescope(
    n_pixels: usize,
    focal_length: f32,
) -> (&'static str, &'static str, &'static str) {
    const TABLE: &[(usize, f64, &str, &str, &str)] = &[
        (2048, 2.28, "SST", "GCT", "CHEC"),
        (2368, 2.15, "SST", "ASTRI", "ASTRICam"),
        (2048, 2.15, "SST", "ASTRI", "CHEC"),
        (1296, 5.60, "SST", "1M", "DigiCam"),
        (1764, 16.0, "MST", "MST", "FlashCam"),
        (1855, 16.0, "MST", "MST", "NectarCam"),
        (1855, 28.0, "LST", "LST", "LSTCam"),
        (11328, 5.59, "MST", "SCT", "SCTCam"),
        (960, 15.0, "MST", "HESS-I", "HESS-I"),
        (2048, 36.0, "LST", "HESS-II", "HESS-II"),
        (1440, 4.89, "SST", "FACT", "FACT"),
    ];
    // ctapipe rounds the focal length to 2 decimals before the lookup
    let f = (f64::from(focal_length) * 100.0).round() / 100.0;
    for &(n, fl, c, o, cam) in TABLE {
        if n == n_pixels && (fl - f).abs() < 1e-9 {
            return (c, o, cam);
        }
    }
    ("UNKNOWN", "UNKNOWN", "UNKNOWN")
}

/// One camera's geometry in the camera frame (m) and the telescope frame (deg).
#[derive(Debug, Clone, PartialEq)]
pub struct CameraGeometry {
    /// Camera name (`LSTCam`, ...).
    pub name: String,
    /// Pixel shape.
    pub pix_type: PixelShape,
    /// Whether the shape came from the file (false: unknown code, hexagon assumed).
    pub shape_known: bool,
    /// Pixel rotation after derotation \[deg\] (camera frame).
    pub pix_rotation_deg: f64,
    /// Pixel x \[m\], derotated.
    pub pix_x: Vec<f64>,
    /// Pixel y \[m\], derotated.
    pub pix_y: Vec<f64>,
    /// Pixel area \[m²\].
    pub pix_area: Vec<f64>,
    /// Telescope frame longitude \[deg\] (from y).
    pub fov_lon: Vec<f64>,
    /// Telescope frame latitude \[deg\] (from x).
    pub fov_lat: Vec<f64>,
    /// Pixel area in the telescope frame \[deg²\].
    pub area_deg2: Vec<f64>,
    /// Focal length used for the telescope frame \[m\].
    pub focal_length: f64,
    /// Neighbour lists, CSR: `indices[indptr[p]..indptr[p+1]]`, sorted ascending.
    pub indptr: Vec<u32>,
    /// Neighbour indices.
    pub indices: Vec<u32>,
    /// Border pixels of width 1.
    pub border1: Vec<bool>,
    /// Border pixels of width 2.
    pub border2: Vec<bool>,
}

impl CameraGeometry {
    /// Number of pixels.
    pub fn n_pixels(&self) -> usize {
        self.pix_x.len()
    }

    /// Neighbours of a pixel.
    #[inline]
    pub fn neighbors(&self, p: usize) -> &[u32] {
        &self.indices[self.indptr[p] as usize..self.indptr[p + 1] as usize]
    }

    /// Build the geometry of a telescope as ctapipe does.
    pub fn from_description(
        t: &TelescopeDescription,
        choice: FocalLengthChoice,
    ) -> Result<Self, String> {
        let cs = &t.camera_settings;
        let (_, _, cam) = guess_telescope(cs.n_pixels, cs.focal_length);
        let focal = Self::from_description_focal(t, choice)?;
        Ok(Self::new(cam, cs, focal))
    }

    /// The focal length \[m\] a telescope's geometry uses under `choice`.
    pub fn from_description_focal(
        t: &TelescopeDescription,
        choice: FocalLengthChoice,
    ) -> Result<f64, String> {
        let cs = &t.camera_settings;
        let focal = match choice {
            FocalLengthChoice::Effective => match cs.effective_focal_length {
                Some(f) if f > 0.0 => f64::from(f),
                _ => {
                    return Err(format!(
                        "telescope {}: focal_length_choice = \"EFFECTIVE\" but CameraSettings v{} has no effective focal length; use \"EQUIVALENT\"",
                        t.tel_id, cs.version
                    ));
                }
            },
            FocalLengthChoice::Equivalent => f64::from(cs.focal_length),
        };
        Ok(focal)
    }

    /// Build from camera settings with a given focal length \[m\].
    pub fn new(name: &str, cs: &CameraSettings, focal_length: f64) -> Self {
        let n = cs.n_pixels;
        let code = cs.pixel_shape.first().copied().unwrap_or(-1);
        let (pix_type, pix_rot, shape_known) = match PixelShape::from_simtel(code) {
            Some((s, r)) => (s, r, true),
            None => (PixelShape::Hexagon, 0.0, false),
        };
        // Derotation (geometry.py `rotate` with angle = cam_rotation = −cam_rot): the
        // positions are turned by +cam_rot, x' = x cos − y sin, y' = x sin + y cos, in float64
        // from the float32 positions.
        let a = -f64::from(cs.cam_rot);
        let (ca, sa) = (a.cos(), a.sin());
        let mut pix_x = Vec::with_capacity(n);
        let mut pix_y = Vec::with_capacity(n);
        for i in 0..n {
            let x = f64::from(cs.pixel_x[i]);
            let y = f64::from(cs.pixel_y[i]);
            // rotmat.T @ [x, y] with rotmat = [[cos a, −sin a], [sin a, cos a]]
            pix_x.push(ca * x + sa * y);
            pix_y.push(-sa * x + ca * y);
        }
        let pix_area: Vec<f64> = cs.pixel_area.iter().map(|&a| f64::from(a)).collect();
        let pix_rotation_deg = pix_rot + f64::from(cs.cam_rot).to_degrees();
        let (indptr, indices) = compute_neighbors(&pix_x, &pix_y, pix_type);
        let mut g = CameraGeometry {
            name: name.to_string(),
            pix_type,
            shape_known,
            pix_rotation_deg,
            pix_x,
            pix_y,
            pix_area,
            fov_lon: Vec::new(),
            fov_lat: Vec::new(),
            area_deg2: Vec::new(),
            focal_length,
            indptr,
            indices,
            border1: Vec::new(),
            border2: Vec::new(),
        };
        g.border1 = g.border_mask_1();
        g.border2 = g.border_mask_next(&g.border1);
        g.fill_telescope_frame();
        g
    }

    fn fill_telescope_frame(&mut self) {
        // camera_to_telescope: fov_lat = x/f, fov_lon = y/f (rad), shown in deg; the frame's
        // longitude is wrapped through [0, 2π) and back to (−180°, 180°] by astropy, which we
        // reproduce so the last bits agree.
        let f = self.focal_length;
        let to_deg = 180.0 / std::f64::consts::PI;
        let wrap_lon = |rad: f64| -> f64 {
            if rad < 0.0 {
                let w = rad + 2.0 * std::f64::consts::PI;
                w * to_deg - 360.0
            } else {
                rad * to_deg
            }
        };
        self.fov_lon = self.pix_y.iter().map(|&y| wrap_lon(y / f)).collect();
        self.fov_lat = self.pix_x.iter().map(|&x| (x / f) * to_deg).collect();
        // transform_to: area scaled by (distance after / distance before)² of two unit points
        let scale = to_deg / f;
        self.area_deg2 = self.pix_area.iter().map(|&a| a * scale * scale).collect();
    }

    fn border_mask_1(&self) -> Vec<bool> {
        // n_neighbors = column sums of the neighbour matrix; border = fewer than the maximum
        let n = self.n_pixels();
        let mut counts = vec![0u32; n];
        for &j in &self.indices {
            counts[j as usize] += 1;
        }
        let max = counts.iter().copied().max().unwrap_or(0);
        counts.iter().map(|&c| c < max).collect()
    }

    fn border_mask_next(&self, prev: &[bool]) -> Vec<bool> {
        // width n: pixels with at least one neighbour in the width n−1 border
        (0..self.n_pixels())
            .map(|p| self.neighbors(p).iter().any(|&j| prev[j as usize]))
            .collect()
    }

    /// ctapipe `guess_radius`: mean distance of the border-1 pixels from the mean pixel
    /// position \[m\].
    pub fn guess_radius(&self) -> f64 {
        let n = self.n_pixels() as f64;
        let cx = self.pix_x.iter().sum::<f64>() / n;
        let cy = self.pix_y.iter().sum::<f64>() / n;
        let mut s = 0.0;
        let mut k = 0usize;
        for i in 0..self.n_pixels() {
            if self.border1[i] {
                s += ((self.pix_x[i] - cx).powi(2) + (self.pix_y[i] - cy).powi(2)).sqrt();
                k += 1;
            }
        }
        if k == 0 { 0.0 } else { s / k as f64 }
    }

    /// Pixel width (ctapipe `pixel_width`) of pixel `p` from an area in the frame's units.
    pub fn pixel_width(&self, area: f64) -> f64 {
        match self.pix_type {
            PixelShape::Hexagon => 2.0 * (area / (2.0 * 3f64.sqrt())).sqrt(),
            PixelShape::Square => area.sqrt(),
            PixelShape::Circle => 2.0 * (area / std::f64::consts::PI).sqrt(),
        }
    }
}

/// Neighbours by ctapipe's rule (`calc_pixel_neighbors`, diagonal=False): the `max_neighbors`
/// nearest centres (L2 on hex grids, L1 on square grids), kept if closer than
/// `radius · (distance to the nearest one)`.
pub fn compute_neighbors(x: &[f64], y: &[f64], shape: PixelShape) -> (Vec<u32>, Vec<u32>) {
    let n = x.len();
    let (max_nb, radius, l1) = match shape {
        PixelShape::Square => (4usize, 1.5, true),
        PixelShape::Hexagon | PixelShape::Circle => (6usize, 1.4, false),
    };
    // Grid buckets for the k-nearest search.
    let (xmin, xmax) = x
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let (ymin, ymax) = y
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let extent = (xmax - xmin).max(ymax - ymin).max(1e-12);
    let cells = ((n as f64).sqrt().ceil() as usize).max(1);
    let cell = extent / cells as f64 * 1.000001;
    let nc = cells + 1;
    let mut buckets: Vec<Vec<u32>> = vec![Vec::new(); nc * nc];
    let cell_of = |v: f64, lo: f64| (((v - lo) / cell) as usize).min(nc - 1);
    for i in 0..n {
        buckets[cell_of(y[i], ymin) * nc + cell_of(x[i], xmin)].push(i as u32);
    }
    let dist = |i: usize, j: usize| -> f64 {
        let dx = x[i] - x[j];
        let dy = y[i] - y[j];
        if l1 {
            dx.abs() + dy.abs()
        } else {
            (dx * dx + dy * dy).sqrt()
        }
    };
    let mut indptr = Vec::with_capacity(n + 1);
    let mut indices = Vec::new();
    indptr.push(0u32);
    let mut cand: Vec<(f64, u32)> = Vec::new();
    for i in 0..n {
        let (cx, cy) = (cell_of(x[i], xmin) as i64, cell_of(y[i], ymin) as i64);
        let mut ring = 1i64;
        loop {
            cand.clear();
            for gy in (cy - ring).max(0)..=(cy + ring).min(nc as i64 - 1) {
                for gx in (cx - ring).max(0)..=(cx + ring).min(nc as i64 - 1) {
                    for &j in &buckets[gy as usize * nc + gx as usize] {
                        if j as usize != i {
                            cand.push((dist(i, j as usize), j));
                        }
                    }
                }
            }
            cand.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            // All points within `ring` cells are found; the k-th distance must be inside that.
            let enough = cand.len() >= max_nb && cand[max_nb - 1].0 <= (ring as f64) * cell;
            let all = (ring as usize) > nc;
            if enough || all {
                break;
            }
            ring += 1;
        }
        cand.truncate(max_nb);
        let mut nb: Vec<u32> = Vec::new();
        if let Some(&(dmin, _)) = cand.first() {
            for &(d, j) in &cand {
                if d < radius * dmin {
                    nb.push(j);
                }
            }
        }
        nb.sort_unstable();
        indices.extend_from_slice(&nb);
        indptr.push(indices.len() as u32);
    }
    (indptr, indices)
}

/// Camera settings of a hexagonal grid of `rings` rings around a centre pixel
/// (1 + 3·r·(r+1) pixels 5 cm apart, 6 neighbours inside), for the unit tests.
#[cfg(test)]
pub(crate) fn hex_camera_settings(rings: i32) -> CameraSettings {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for q in -rings..=rings {
        for r in (-rings).max(-q - rings)..=rings.min(-q + rings) {
            x.push(0.05 * (q as f32 + 0.5 * r as f32));
            y.push(0.05 * (r as f32 * 3f32.sqrt() / 2.0));
        }
    }
    let n = x.len();
    CameraSettings {
        n_pixels: n,
        focal_length: 10.0,
        pixel_x: x,
        pixel_y: y,
        pixel_shape: vec![1; n],
        pixel_area: vec![0.002; n],
        ..Default::default()
    }
}
