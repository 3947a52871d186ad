//! The plugin's config: what to run (average, mask, align, calibrate), inputs, and the
//! parameters of each step with cctbx.xfel's defaults.

use caliper_core::config::{Problems, Validate};

/// Default frames per parallel chunk of the averaging pass (see `input.frames_per_chunk`).
pub const DEFAULT_FRAMES_PER_CHUNK: usize = 32;

caliper_core::config_struct! {
    /// Frame inputs.
    pub struct InputConfig {
        /// HDF5 dataset holding the frame stack, shape (N, 32, 185, 388) or (N, 4, 8, 185, 388).
        pub dataset: String = "/data/cspad".into(),
        /// Dark-run inputs (globs relative to the config file). Empty: the run's inputs whose file
        /// name contains `dark_match`.
        pub dark: Vec<String> = Vec::new(),
        /// Bright-run inputs (globs relative to the config file). Empty: the run's other inputs.
        pub bright: Vec<String> = Vec::new(),
        /// Substring that marks a run input as dark when `dark` is empty.
        pub dark_match: String = "dark".into(),
        /// Frames per chunk (>= 1). Chunks are folded in order into the run's one running
        /// state, each in blocked updates of up to 32 frames split over the threads by pixel
        /// tiles, while the next chunk is read. Memory: about 2 x frames_per_chunk frames in
        /// flight (4.6 MB per int16 CSPad frame) plus the 73 MB state.
        pub frames_per_chunk: usize = DEFAULT_FRAMES_PER_CHUNK,
    }
}

caliper_core::config_struct! {
    /// Averaging (cxi.mpi_average).
    pub struct AverageConfig {
        /// Also write the minimum image (`--min`).
        pub min: bool = true,
        /// How mean and standard deviation CBFs store their values: "ieee" (64-bit IEEE floats,
        /// x-CBF_NONE, exact; fabio cannot read float CBFs) or "int" (rounded to integers,
        /// byte-offset, readable by fabio).
        pub float_cbf: String = "ieee".into(),
    }
}

caliper_core::config_struct! {
    /// Mask (cxi.make_dials_mask): a pixel is kept when avg > 0, avg <= avg_max, stddev > 0,
    /// stddev <= stddev_max and the bright maximum >= maxproj_min.
    pub struct MaskConfig {
        /// Maximum dark mean, ADU (cxi.make_dials_mask -a, default 2000).
        pub avg_max: f64 = 2000.0,
        /// Maximum dark standard deviation, ADU (-s, default 10).
        pub stddev_max: f64 = 10.0,
        /// Minimum bright-run maximum, ADU (-m, default 300).
        pub maxproj_min: f64 = 300.0,
        /// Rows and columns masked at every ASIC edge (-b, default 0).
        pub border: usize = 0,
    }
}

caliper_core::config_struct! {
    /// Quadrant alignment (cspad.quadrants_cbf).
    pub struct AlignConfig {
        /// Offsets searched on each axis: -grid_radius..=grid_radius pixels (cctbx: 20, a 41 x 41 grid).
        pub grid_radius: i64 = 20,
        /// Score = best of 21 rotation angles 20..70 deg (true, cctbx multi_angle) or 45 deg only.
        pub multi_angle: bool = true,
        /// Use every n-th row and column of the key sensor (1 = all, as cctbx; 2 is 4x faster).
        pub pixel_stride: usize = 1,
        /// Values below this are ignored, ADU (cctbx cspad_min_trusted_value -400).
        pub trusted_min: f64 = -400.0,
        /// Beam centre (x, y) in the geometry's top frame, µm; empty = mean of all pixel positions.
        pub beam_centre_um: Vec<f64> = Vec::new(),
        /// How an offset's score combines the angles' correlations: "mean" (default; well
        /// conditioned, recovers offsets to a pixel) or "max" (cctbx, which can slide 1-2 pixels
        /// along one direction because one angle alone constrains the centre in one direction).
        pub combine_angles: String = "mean".into(),
        /// Sensors per quadrant whose pixels are correlated: the n closest to the beam (1..=8;
        /// cctbx uses one panel).
        pub key_sensors: usize = 2,
        /// Image searched: "max" (bright-run maximum, as the seed) or "mean".
        pub image: String = "max".into(),
        /// Subtract the dark run's mean first when a dark run is given.
        pub subtract_dark: bool = true,
    }
}

caliper_core::config_struct! {
    /// CSPad calibration as cctbx.xfel and psana: averages, mask, quadrant alignment, geometry.
    pub struct CspadConfig {
        /// "average" (one run: mean, stddev, max, min), "mask" (dark and bright runs: their
        /// averages and the mask), "align" (bright run, dark optional: quadrant alignment) or
        /// "calibrate" (mask and alignment).
        pub mode: String = "average".into(),
        /// Experiment name in output names (`<experiment>_avg-r0054.cbf`).
        pub experiment: String = "cxi".into(),
        /// Run number in output names (average mode); -1 = from the first input's name (`r0054`).
        pub run: i64 = -1,
        /// psana geometry file (`0-end.data`), relative to the config file; empty = the built-in
        /// nominal CSPad layout.
        pub geometry: String = String::new(),
        /// Inputs.
        pub input: InputConfig = InputConfig::default(),
        /// Averaging.
        pub average: AverageConfig = AverageConfig::default(),
        /// Mask.
        pub mask: MaskConfig = MaskConfig::default(),
        /// Quadrant alignment.
        pub align: AlignConfig = AlignConfig::default(),
    }
}

impl Validate for CspadConfig {
    fn validate(&self, p: &mut Problems) {
        p.check(
            ["average", "mask", "align", "calibrate"].contains(&self.mode.as_str()),
            "mode",
            "must be \"average\", \"mask\", \"align\" or \"calibrate\"",
        );
        p.check(
            !self.experiment.trim().is_empty(),
            "experiment",
            "must not be empty",
        );
        p.check(
            self.run >= -1 && self.run <= 99999,
            "run",
            "must be -1 (from the input name) or 0..=99999",
        );
        p.check(
            self.input.dataset.starts_with('/'),
            "input.dataset",
            "must be an absolute HDF5 path like \"/data/cspad\"",
        );
        p.check(
            self.input.frames_per_chunk >= 1,
            "input.frames_per_chunk",
            "must be >= 1",
        );
        p.check(
            ["ieee", "int"].contains(&self.average.float_cbf.as_str()),
            "average.float_cbf",
            "must be \"ieee\" or \"int\"",
        );
        p.check(self.mask.avg_max > 0.0, "mask.avg_max", "must be > 0");
        p.check(self.mask.stddev_max > 0.0, "mask.stddev_max", "must be > 0");
        p.check(
            self.mask.maxproj_min.is_finite(),
            "mask.maxproj_min",
            "must be a number",
        );
        p.check(
            self.mask.border < 92,
            "mask.border",
            "must be < 92 (half a 185-row ASIC)",
        );
        p.check(
            (0..=200).contains(&self.align.grid_radius),
            "align.grid_radius",
            "must be 0..=200 pixels",
        );
        p.check(
            self.align.pixel_stride >= 1 && self.align.pixel_stride <= 16,
            "align.pixel_stride",
            "must be 1..=16",
        );
        p.check(
            self.align.beam_centre_um.is_empty() || self.align.beam_centre_um.len() == 2,
            "align.beam_centre_um",
            "must be empty or [x, y]",
        );
        p.check(
            ["max", "mean"].contains(&self.align.image.as_str()),
            "align.image",
            "must be \"max\" or \"mean\"",
        );
        p.check(
            (1..=8).contains(&self.align.key_sensors),
            "align.key_sensors",
            "must be 1..=8",
        );
        p.check(
            ["max", "mean"].contains(&self.align.combine_angles.as_str()),
            "align.combine_angles",
            "must be \"mean\" or \"max\"",
        );
    }
}
