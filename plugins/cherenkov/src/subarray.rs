//! The subarray: every telescope's geometry, readout constants, thresholds and position,
//! built once per input from the header block (geometries shared per camera type).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::calib::TelReadout;
use crate::cleaning::Tailcuts;
use crate::config::CherenkovConfig;
use crate::geometry::{CameraGeometry, guess_telescope};
use crate::io::simtel::SimtelHeader;

/// One telescope.
#[derive(Debug, Clone)]
pub struct TelSetup {
    /// Telescope id.
    pub tel_id: u16,
    /// ctapipe type string, e.g. `LST_LST_LSTCam`.
    pub tel_type: String,
    /// Camera geometry (shared per camera type).
    pub geometry: Arc<CameraGeometry>,
    /// Readout constants.
    pub readout: TelReadout,
    /// Cleaning thresholds.
    pub tailcuts: Tailcuts,
    /// Ground position \[m\].
    pub position: [f64; 3],
    /// Camera radius in the telescope frame \[deg\].
    pub cam_radius_deg: f64,
}

/// All telescopes of a run.
#[derive(Debug, Clone)]
pub struct Subarray {
    /// The header block.
    pub header: Arc<SimtelHeader>,
    /// Telescopes by id.
    pub tels: BTreeMap<u16, TelSetup>,
    /// Array pointing (azimuth, altitude) \[rad\] from the run header.
    pub array_pointing: (f64, f64),
    /// Observatory height [m a.s.l.]: metadata `ALTITUDE`, else the MC run header's obsheight.
    pub observatory_height: f64,
}

impl Subarray {
    /// Build from a header block and config.
    pub fn new(header: Arc<SimtelHeader>, cfg: &CherenkovConfig) -> Result<Self, String> {
        let ex = cfg.extractor();
        let mut geoms: HashMap<(String, u64, u32, usize), Arc<CameraGeometry>> = HashMap::new();
        let mut tels = BTreeMap::new();
        for (&id, desc) in &header.telescopes {
            let cs = &desc.camera_settings;
            let (class, optics, camera) = guess_telescope(cs.n_pixels, cs.focal_length);
            let tel_type = format!("{class}_{optics}_{camera}");
            let g0 = CameraGeometry::from_description_focal(desc, cfg.focal_length_choice)?;
            let key = (
                camera.to_string(),
                g0.to_bits(),
                cs.cam_rot.to_bits(),
                cs.n_pixels,
            );
            let geometry = match geoms.get(&key) {
                Some(g) => g.clone(),
                None => {
                    let g = Arc::new(CameraGeometry::from_description(
                        desc,
                        cfg.focal_length_choice,
                    )?);
                    geoms.insert(key, g.clone());
                    g
                }
            };
            let readout = TelReadout::new(desc, &ex, cfg.calibration.gain_threshold_adc as f32);
            let position = header.tel_position(id).unwrap_or([f64::NAN; 3]);
            // HillasReconstructor: (0, guess_radius) in the CameraFrame → fov_lon in deg
            let cam_radius_deg = (geometry.guess_radius() / geometry.focal_length).to_degrees();
            tels.insert(
                id,
                TelSetup {
                    tel_id: id,
                    tailcuts: cfg.tailcuts_for(&tel_type),
                    tel_type,
                    geometry,
                    readout,
                    position,
                    cam_radius_deg,
                },
            );
        }
        let rh = &header.run_header;
        let array_pointing = (f64::from(rh.direction[0]), f64::from(rh.direction[1]));
        let observatory_height = header
            .global_meta
            .get("ALTITUDE")
            .and_then(|v| v.trim().trim_end_matches('m').trim().parse::<f64>().ok())
            .or_else(|| {
                header
                    .mc_run_header
                    .as_ref()
                    .map(|m| f64::from(m.obsheight))
            })
            .unwrap_or(0.0);
        Ok(Self {
            header,
            tels,
            array_pointing,
            observatory_height,
        })
    }
}
