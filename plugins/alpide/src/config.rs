//! The `alpide` config: every key with its default and meaning (printed by
//! `caliper config alpide`). Defaults are Corryvreckan's unless said otherwise.

use caliper_core::config::{ConfigDocs, Problems, Validate};
use caliper_core::units::{Angle, Length, Time};
use serde::{Deserialize, Serialize};

use crate::mask::MaskMethod;

/// How hits become clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClusteringMode {
    /// Corryvreckan ClusteringSpatial: 8-connected pixels.
    #[default]
    Spatial,
    /// The notebook: all hits of a plane form one cluster.
    WholePlane,
}
impl ConfigDocs for ClusteringMode {}

/// How tracks are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TrackingMode {
    /// Corryvreckan Tracking4D with straight lines.
    #[default]
    Tracking4d,
    /// The notebook: one track per event through every hit plane, 3-D SVD line fit.
    Notebook,
}
impl ConfigDocs for TrackingMode {}

/// Which alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AlignmentMethod {
    /// No alignment.
    #[default]
    None,
    /// Minimise the track chi2 over x, y shift and rotation about z of every free plane.
    Chi2,
    /// The notebook: shift planes by their mean residual, decreasing chi2 cut.
    Notebook,
}
impl ConfigDocs for AlignmentMethod {}

caliper_core::config_struct! {
    /// The built-in telescope, used when `geometry` is empty.
    pub struct TelescopeConfig {
        /// Number of ALPIDE planes (1024 x 512 pixels, 29.24 x 26.88 um), named ALPIDE_0.. in z
        /// order; plane 0 is the reference. 3..=64.
        pub planes: usize = 7,
        /// Distance between neighbouring planes; the telescope is centred on z = 0.
        pub spacing: Length = Length::mm_value(20.0),
        /// Spatial resolution (x and y) of every plane: the cluster position error. "0um" means
        /// Corryvreckan's default pitch/sqrt(12).
        pub spatial_resolution: Length = Length::mm_value(0.0),
    }
}

caliper_core::config_struct! {
    /// Hot-pixel masking (Corryvreckan MaskCreator, or the notebook's rule).
    pub struct MaskingConfig {
        /// "frequency" (per detector, frequency_cut x its mean), "localdensity", "notebook"
        /// (one mean over all planes, notebook_factor x mean) or "none".
        pub method: MaskMethod = MaskMethod::Frequency,
        /// frequency: mask pixels with more than frequency_cut x the detector's mean hits (> 0).
        pub frequency_cut: f64 = 50.0,
        /// localdensity: kernel bandwidth in units of the mean pitch (> 0).
        pub density_bandwidth: f64 = 2.0,
        /// localdensity: mask above this significance over the local density (> 0).
        pub sigma_above_avg_max: f64 = 5.0,
        /// localdensity: mask pixels firing in more than this fraction of events (> 0).
        pub rate_max: f64 = 1.0,
        /// notebook: mask pixels with more than round(notebook_factor x mean) hits (> 0).
        pub notebook_factor: f64 = 100.0,
        /// Apply each detector's mask_file from the geometry (a missing file is a warning).
        pub apply_mask_files: bool = true,
    }
}

caliper_core::config_struct! {
    /// Clustering (Corryvreckan ClusteringSpatial).
    pub struct ClusteringConfig {
        /// "spatial" (8-connected clusters) or "whole_plane" (the notebook).
        pub mode: ClusteringMode = ClusteringMode::Spatial,
        /// Charge-weighted cluster centre (plain mean if any pixel has zero charge).
        pub charge_weighting: bool = true,
    }
}

caliper_core::config_struct! {
    /// Tracking (Corryvreckan Tracking4D, straight lines).
    pub struct TrackingConfig {
        /// "tracking4d" or "notebook" (one SVD-fitted track per event).
        pub mode: TrackingMode = TrackingMode::Tracking4d,
        /// Clusters a track needs (>= 2; the notebook's alignment uses 4).
        pub min_hits_on_track: usize = 6,
        /// Spatial cut in units of each plane's spatial resolution (> 0); used unless
        /// spatial_cut_abs is set.
        pub spatial_cut_rel: f64 = 3.0,
        /// Absolute spatial cut (x and y); "0um" means use spatial_cut_rel.
        pub spatial_cut_abs: Length = Length::mm_value(0.0),
        /// Time cut in units of each plane's time_resolution (Corryvreckan Tracking4D); used
        /// unless time_cut_abs is set, and only when every tracking plane of the geometry has
        /// a time_resolution (else no time cut) (> 0).
        pub time_cut_rel: f64 = 3.0,
        /// Absolute time cut; "0ns" means use time_cut_rel.
        pub time_cut_abs: Time = Time::default(),
        /// Leave DUT planes out of tracking.
        pub exclude_dut: bool = true,
        /// Detector names that may not seed tracks.
        pub exclude_from_seed: Vec<String> = Vec::new(),
        /// Upper edge of the chi2/ndof histogram (Corryvreckan max_plot_chi2) (> 0).
        pub max_plot_chi2: f64 = 50.0,
    }
}

caliper_core::config_struct! {
    /// Alignment.
    pub struct AlignmentConfig {
        /// "none", "chi2" (minimise track chi2) or "notebook".
        pub method: AlignmentMethod = AlignmentMethod::None,
        /// Planes that stay fixed (detector names). Empty: the reference plane and the last
        /// plane in z, which fixes translation and shear as the notebook does.
        pub fixed_planes: Vec<String> = Vec::new(),
        /// chi2: also fit the rotation about z.
        pub align_rotation: bool = true,
        /// chi2: also fit the tilts (rotations about x and y; Corryvreckan's AlignmentTrackChi2
        /// aligns all three orientation angles with align_orientation = true). They are only
        /// constrained by inclined tracks (cosmics): with beam tracks at normal incidence leave
        /// this off.
        pub align_tilts: bool = false,
        /// chi2: shift planes first by the median offset to the reference (Prealignment).
        pub prealign: bool = true,
        /// chi2: spatial cuts of the successive stages (Corryvreckan's recipe: decreasing cuts).
        pub stage_cuts: Vec<Length> = vec![Length::mm_value(0.5), Length::mm_value(0.2), Length::mm_value(0.1), Length::mm_value(0.05)],
        /// chi2: iterations per stage at most (>= 1).
        pub max_iterations: usize = 10,
        /// chi2: converged when no shift changes by more than this.
        pub tolerance_shift: Length = "10nm".parse().unwrap_or_default(),
        /// chi2: ... and no rotation by more than this.
        pub tolerance_rotation: Angle = "0.0001mrad".parse().unwrap_or_default(),
        /// chi2: tracks above this chi2/ndof are not used (Corryvreckan max_track_chi2ndof).
        pub max_track_chi2ndof: f64 = 10.0,
        /// notebook: total iterations (the notebook: 5; it recommends > 50).
        pub alignments: usize = 5,
        /// notebook: fine iterations at the end (the notebook: 1).
        pub fine_alignments: usize = 1,
        /// notebook: residual cut of the fine stage.
        pub fine_residual_cut: Length = Length::mm_value(10.0),
        /// Events kept in memory for alignment at most (0: all).
        pub max_events: usize = 0,
    }
}

caliper_core::config_struct! {
    /// Outputs.
    pub struct OutputConfig {
        /// Residual histograms span -range..range.
        pub residual_range: Length = Length::mm_value(0.2),
        /// Bins of each residual histogram (>= 10).
        pub residual_bins: usize = 200,
        /// Rows of the clusters table at most (0: none).
        pub max_cluster_rows: usize = 1_000_000,
        /// Write the PNG plots.
        pub plots: bool = true,
        /// Tracks drawn in the event display.
        pub event_display_tracks: usize = 5,
    }
}

caliper_core::config_struct! {
    /// ALPIDE telescope: hot-pixel masking, clustering, tracking, residuals, alignment.
    pub struct AlpideConfig {
        /// Corryvreckan geometry file (relative to this config file). Empty: the built-in
        /// telescope of [telescope].
        pub geometry: String = String::new(),
        /// The built-in telescope.
        pub telescope: TelescopeConfig = TelescopeConfig::default(),
        /// Hot-pixel masking.
        pub masking: MaskingConfig = MaskingConfig::default(),
        /// Clustering.
        pub clustering: ClusteringConfig = ClusteringConfig::default(),
        /// Tracking.
        pub tracking: TrackingConfig = TrackingConfig::default(),
        /// Alignment.
        pub alignment: AlignmentConfig = AlignmentConfig::default(),
        /// Outputs.
        pub output: OutputConfig = OutputConfig::default(),
    }
}

impl Validate for AlpideConfig {
    fn validate(&self, p: &mut Problems) {
        p.check(
            (3..=64).contains(&self.telescope.planes),
            "telescope.planes",
            "must be 3..=64",
        );
        p.check(
            self.telescope.spacing.mm() > 0.0,
            "telescope.spacing",
            "must be positive",
        );
        p.check(
            self.telescope.spatial_resolution.mm() >= 0.0,
            "telescope.spatial_resolution",
            "must be >= 0",
        );
        let m = &self.masking;
        p.check(
            m.frequency_cut > 0.0,
            "masking.frequency_cut",
            "must be > 0",
        );
        p.check(
            m.density_bandwidth > 0.0,
            "masking.density_bandwidth",
            "must be > 0",
        );
        p.check(
            m.sigma_above_avg_max > 0.0,
            "masking.sigma_above_avg_max",
            "must be > 0",
        );
        p.check(m.rate_max > 0.0, "masking.rate_max", "must be > 0");
        p.check(
            m.notebook_factor > 0.0,
            "masking.notebook_factor",
            "must be > 0",
        );
        let t = &self.tracking;
        p.check(
            t.min_hits_on_track >= 2,
            "tracking.min_hits_on_track",
            "must be >= 2",
        );
        p.check(
            t.spatial_cut_rel > 0.0,
            "tracking.spatial_cut_rel",
            "must be > 0",
        );
        p.check(
            t.spatial_cut_abs.mm() >= 0.0,
            "tracking.spatial_cut_abs",
            "must be >= 0",
        );
        p.check(t.time_cut_rel > 0.0, "tracking.time_cut_rel", "must be > 0");
        p.check(
            t.time_cut_abs.ns() >= 0.0,
            "tracking.time_cut_abs",
            "must be >= 0",
        );
        p.check(
            t.max_plot_chi2 > 0.0,
            "tracking.max_plot_chi2",
            "must be > 0",
        );
        let a = &self.alignment;
        p.check(
            !a.stage_cuts.is_empty() && a.stage_cuts.iter().all(|c| c.mm() > 0.0),
            "alignment.stage_cuts",
            "must be one or more positive lengths",
        );
        p.check(
            a.max_iterations >= 1,
            "alignment.max_iterations",
            "must be >= 1",
        );
        p.check(
            a.tolerance_shift.mm() > 0.0,
            "alignment.tolerance_shift",
            "must be > 0",
        );
        p.check(
            a.tolerance_rotation.rad() > 0.0,
            "alignment.tolerance_rotation",
            "must be > 0",
        );
        p.check(
            a.max_track_chi2ndof > 0.0,
            "alignment.max_track_chi2ndof",
            "must be > 0",
        );
        p.check(a.alignments >= 1, "alignment.alignments", "must be >= 1");
        p.check(
            a.fine_alignments < a.alignments,
            "alignment.fine_alignments",
            "must be below alignments",
        );
        p.check(
            a.fine_residual_cut.mm() > 0.0,
            "alignment.fine_residual_cut",
            "must be > 0",
        );
        p.check(
            self.output.residual_range.mm() > 0.0,
            "output.residual_range",
            "must be > 0",
        );
        p.check(
            self.output.residual_bins >= 10,
            "output.residual_bins",
            "must be >= 10",
        );
    }
}

/// The default config as commented TOML.
pub fn default_toml() -> String {
    caliper_core::config::commented_toml(
        &AlpideConfig::default(),
        "ALPIDE telescope (caliper-alpide): Corryvreckan's defaults.\nUnits as Corryvreckan: \"29.24um\", \"20mm\", \"2mrad\".",
        "alpide",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use caliper_core::ConfigDoc;

    #[test]
    fn default_config_round_trips() {
        let text = default_toml();
        assert!(text.starts_with("# ALPIDE"));
        let doc = ConfigDoc::from_str_named(&text, "default").unwrap();
        assert_eq!(doc.instrument(), Some("alpide"));
        let c: AlpideConfig = doc.parse().unwrap();
        assert_eq!(c, AlpideConfig::default());
        assert!((c.alignment.tolerance_rotation.rad() - 1e-7).abs() < 1e-20);
    }

    #[test]
    fn bad_values_are_all_reported() {
        let doc = ConfigDoc::from_str_named(
            "instrument = \"alpide\"\n[masking]\nmethod = \"magic\"\nfrequency_cut = -1\n[tracking]\nmin_hits_on_track = 1\nspatial_cut_abs = \"2us\"\n",
            "bad.toml",
        )
        .unwrap();
        let e = doc.parse::<AlpideConfig>().unwrap_err();
        assert_eq!(e.len(), 4, "{e}");
    }
}
