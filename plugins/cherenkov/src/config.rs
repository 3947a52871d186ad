//! Configuration of the `cherenkov` instrument. Defaults are ctapipe 0.32's component defaults
//! (`SimTelEventSource`, `CameraCalibrator` with `NeighborPeakWindowSum`,
//! `ThresholdGainSelector`, `TailcutsImageCleaner`, `ImageQualityQuery`, `ShowerProcessor` /
//! `HillasReconstructor` with `StereoQualityQuery`); `configs/cherenkov/base.toml` holds the
//! thresholds of ctapipe's `base_config.yaml`.

use caliper_core::config::{Problems, Validate};

use crate::calib::{ExtractorKind, ExtractorSettings};
use crate::cleaning::Tailcuts;
use crate::geometry::FocalLengthChoice;
use crate::parameters::ImageQuality;
use crate::timing::{LtsSettings, TimingFit, TimingOptions};

caliper_core::config_struct! {
    /// Waveform calibration (ctapipe `CameraCalibrator`).
    pub struct CalibrationConfig {
        /// Charge extractor: "NeighborPeakWindowSum" (ctapipe default), "LocalPeakWindowSum",
        /// "FixedWindowSum", "GlobalPeakWindowSum" or "FullWaveformSum".
        pub extractor: ExtractorKind = ExtractorKind::NeighborPeakWindowSum,
        /// Integration window width [samples] (ctapipe default 7).
        pub window_width: usize = 7,
        /// Window start before the peak [samples] (ctapipe default 3; FixedWindowSum uses 0).
        pub window_shift: i64 = 3,
        /// NeighborPeakWindowSum: weight of the pixel's own waveform in the peak search (0).
        pub local_weight: i64 = 0,
        /// FixedWindowSum: the fixed peak sample (0).
        pub peak_index: i64 = 0,
        /// Correct the charge for the part of the reference pulse outside the window (true).
        pub apply_integration_correction: bool = true,
        /// ThresholdGainSelector: use the low gain when any high-gain R0 sample exceeds this [ADC] (4000).
        pub gain_threshold_adc: f64 = 4000.0,
        /// Leave out the pixels the tailcuts cleaning certainly cannot select (charge below
        /// both thresholds, or it and every neighbour's below the picture threshold;
        /// NeighborPeakWindowSum, 2-64 samples): every parameter is as with all pixels; only
        /// DL1 images need them, and a run that writes images, and the camera display,
        /// integrates every pixel whatever this says (true).
        pub skip_pixels_below_cleaning: bool = true,
    }
}

caliper_core::config_struct! {
    /// Tailcuts thresholds for one telescope type (ctapipe `("type", "<pattern>", value)`).
    pub struct TypeThresholds {
        /// Telescope type pattern as in ctapipe, e.g. "LST_LST_LSTCam" or "MST_*_NectarCam"
        /// (`*` matches any text). Later entries win.
        pub telescope_type: String = String::new(),
        /// Picture threshold [p.e.].
        pub picture_threshold_pe: f64 = 10.0,
        /// Boundary threshold [p.e.].
        pub boundary_threshold_pe: f64 = 5.0,
    }
}

caliper_core::config_struct! {
    /// Image cleaning (ctapipe `TailcutsImageCleaner`).
    pub struct CleaningConfig {
        /// Picture threshold for all telescope types without an override [p.e.] (10).
        pub picture_threshold_pe: f64 = 10.0,
        /// Boundary threshold for all telescope types without an override [p.e.] (5).
        pub boundary_threshold_pe: f64 = 5.0,
        /// A picture pixel needs at least this many picture neighbours (2).
        pub min_picture_neighbors: u32 = 2,
        /// Keep picture pixels without boundary neighbours (false).
        pub keep_isolated_pixels: bool = false,
        /// Per-type thresholds (`[[cleaning.per_type]]` tables); empty by default.
        pub per_type: Vec<TypeThresholds> = Vec::new(),
    }
}

caliper_core::config_struct! {
    /// ImageQualityQuery: parameterise an image only if its cleaned intensity and pixel count
    /// exceed these (ctapipe defaults `image.sum() > 0`, `image.size > 1`).
    pub struct ImageQualityConfig {
        /// Cleaned intensity must exceed this [p.e.] (0).
        pub min_intensity_pe: f64 = 0.0,
        /// Cleaned pixel count must exceed this (1).
        pub min_pixels: usize = 1,
        /// Count pixels with non-zero charge (`np.count_nonzero`, base_config) instead of all
        /// cleaned pixels (false).
        pub count_nonzero: bool = false,
    }
}

caliper_core::config_struct! {
    /// Timing parameters (ctapipe `timing_parameters`).
    pub struct TimingConfig {
        /// Line fit of peak time against the longitudinal coordinate: "OLS" (deterministic
        /// ordinary least squares, default) or "LTS" (ctapipe's least-trimmed squares with
        /// random starts, seeded per image from `lts_seed`, the event and the telescope).
        pub fit: TimingFit = TimingFit::Ols,
        /// LTS: random starts per image (ctapipe: 5).
        pub lts_samples: usize = 5,
        /// LTS: seed of the random starts.
        pub lts_seed: u64 = 0,
    }
}

caliper_core::config_struct! {
    /// Stereo reconstruction (ctapipe `HillasReconstructor`, `StereoQualityQuery`).
    pub struct StereoConfig {
        /// Run the HillasReconstructor (true).
        pub enabled: bool = true,
        /// Telescope used only if hillas_intensity exceeds this [p.e.] (50).
        pub min_intensity_pe: f64 = 50.0,
        /// Telescope used only if hillas_width exceeds this [deg] (0).
        pub min_width_deg: f64 = 0.0,
        /// Telescope used only if morphology_n_pixels exceeds this (3).
        pub min_pixels: i64 = 3,
        /// Telescope used only if leakage_intensity_width_2 is below this (inf; base_config 0.5).
        pub max_leakage_intensity_width_2: f64 = f64::INFINITY,
    }
}

caliper_core::config_struct! {
    /// Outputs.
    pub struct OutputConfig {
        /// Write the DL1 images (charge, peak time, mask) per telescope (false).
        pub write_images: bool = false,
        /// Write PNG plots: camera display, theta², array display (true).
        pub plots: bool = true,
    }
}

caliper_core::config_struct! {
    /// The `cherenkov` instrument: sim_telarray files → DL1 images and parameters → stereo.
    pub struct CherenkovConfig {
        /// Focal length for the telescope frame: "EFFECTIVE" (ctapipe default; needs
        /// CameraSettings v5+) or "EQUIVALENT" (files without effective focal length, e.g. prod2).
        pub focal_length_choice: FocalLengthChoice = FocalLengthChoice::Effective,
        /// Events per chunk of the parallel pass.
        pub chunk_events: usize = 16,
        /// Waveform calibration.
        pub calibration: CalibrationConfig = CalibrationConfig::default(),
        /// Cleaning.
        pub cleaning: CleaningConfig = CleaningConfig::default(),
        /// Image quality gate.
        pub image_quality: ImageQualityConfig = ImageQualityConfig::default(),
        /// Timing parameters.
        pub timing: TimingConfig = TimingConfig::default(),
        /// Stereo reconstruction.
        pub stereo: StereoConfig = StereoConfig::default(),
        /// Outputs.
        pub output: OutputConfig = OutputConfig::default(),
    }
}

impl Validate for CherenkovConfig {
    fn validate(&self, p: &mut Problems) {
        p.check(self.chunk_events > 0, "chunk_events", "must be at least 1");
        let c = &self.calibration;
        p.check(
            c.window_width > 0,
            "calibration.window_width",
            "must be at least 1 sample",
        );
        p.check(
            c.gain_threshold_adc > 0.0,
            "calibration.gain_threshold_adc",
            "must be positive",
        );
        let cl = &self.cleaning;
        p.check(
            cl.picture_threshold_pe.is_finite(),
            "cleaning.picture_threshold_pe",
            "must be finite",
        );
        p.check(
            cl.boundary_threshold_pe.is_finite(),
            "cleaning.boundary_threshold_pe",
            "must be finite",
        );
        for (i, t) in cl.per_type.iter().enumerate() {
            p.check(
                !t.telescope_type.is_empty(),
                &format!("cleaning.per_type[{i}].telescope_type"),
                "must name a telescope type",
            );
            p.check(
                t.picture_threshold_pe.is_finite() && t.boundary_threshold_pe.is_finite(),
                &format!("cleaning.per_type[{i}]"),
                "thresholds must be finite",
            );
        }
        p.check(
            self.image_quality.min_intensity_pe.is_finite(),
            "image_quality.min_intensity_pe",
            "must be finite",
        );
        p.check(
            self.timing.lts_samples > 0,
            "timing.lts_samples",
            "must be at least 1",
        );
        p.check(
            self.stereo.min_width_deg >= 0.0,
            "stereo.min_width_deg",
            "must be >= 0",
        );
    }
}

/// ctapipe-style type pattern match (`fnmatch` with `*`).
pub fn type_matches(pattern: &str, name: &str) -> bool {
    fn rec(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|k| rec(rest, &n[k..])),
            Some((&c, rest)) => n.first() == Some(&c) && rec(rest, &n[1..]),
        }
    }
    rec(pattern.as_bytes(), name.as_bytes())
}

impl CherenkovConfig {
    /// Extractor settings.
    pub fn extractor(&self) -> ExtractorSettings {
        let c = &self.calibration;
        ExtractorSettings {
            kind: c.extractor,
            window_width: c.window_width,
            window_shift: c.window_shift,
            local_weight: c.local_weight,
            peak_index: c.peak_index,
            apply_integration_correction: c.apply_integration_correction,
        }
    }

    /// Tailcuts for a telescope type string (`LST_LST_LSTCam`).
    pub fn tailcuts_for(&self, tel_type: &str) -> Tailcuts {
        let cl = &self.cleaning;
        let mut tc = Tailcuts {
            picture: cl.picture_threshold_pe,
            boundary: cl.boundary_threshold_pe,
            min_picture_neighbors: cl.min_picture_neighbors,
            keep_isolated: cl.keep_isolated_pixels,
        };
        for t in &cl.per_type {
            if type_matches(&t.telescope_type, tel_type) {
                tc.picture = t.picture_threshold_pe;
                tc.boundary = t.boundary_threshold_pe;
            }
        }
        tc
    }

    /// The timing fit for one image (the LTS seed mixes `timing.lts_seed`, the event and the
    /// telescope, so the result does not depend on the thread count or the chunking).
    pub fn timing_options(&self, event_id: i64, tel_id: u16) -> TimingOptions {
        let t = &self.timing;
        // splitmix64-style mixing of the three numbers
        let mut z = t.lts_seed ^ (event_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z ^= u64::from(tel_id).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        TimingOptions {
            fit: t.fit,
            lts: LtsSettings {
                samples: t.lts_samples,
                ..LtsSettings::default()
            },
            seed: z,
        }
    }

    /// The image quality gate.
    pub fn image_quality(&self) -> ImageQuality {
        let q = &self.image_quality;
        ImageQuality {
            min_intensity_pe: q.min_intensity_pe,
            min_pixels: q.min_pixels,
            count_nonzero: q.count_nonzero,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_fnmatch() {
        assert!(type_matches("LST_*", "LST_LST_LSTCam"));
        assert!(type_matches("MST_*_NectarCam", "MST_MST_NectarCam"));
        assert!(!type_matches("MST_*_FlashCam", "MST_MST_NectarCam"));
        assert!(type_matches("*", "SST_1M_DigiCam"));
    }

    #[test]
    fn default_round_trips_through_toml() {
        let c = CherenkovConfig::default();
        let text = caliper_core::config::commented_toml(&c, "test", "cherenkov");
        let doc = caliper_core::ConfigDoc::from_str_named(&text, "default.toml").unwrap();
        let back: CherenkovConfig = doc.parse().unwrap();
        assert_eq!(back, c);
    }
}
