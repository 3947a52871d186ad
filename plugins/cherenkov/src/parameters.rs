//! The image step (ctapipe `image/image_processor.py::ImageProcessor`): cleaning, the image
//! quality gate on the cleaned pixels, then every parameter set in the telescope frame (and
//! Hillas/timing also in the camera frame).

use crate::cleaning::{CleanScratch, Tailcuts, tailcuts_clean_listed};
use crate::concentration::{Concentration, concentration_parameters};
use crate::geometry::CameraGeometry;
use crate::hillas::{FrameView, HillasParameters, hillas_parameters};
use crate::leakage::{Leakage, leakage_parameters};
use crate::morphology::{Morphology, morphology_of_picture};
use crate::numpy::np_sum_f32;
use crate::statistics::{Statistics, descriptive_statistics};
use crate::timing::{
    LtsScratch, TimingFit, TimingOptions, TimingParameters, lts_timing_parameters,
    timing_parameters,
};

/// ctapipe `ImageQualityQuery` criteria, as numbers: parameterise only if
/// `Σ cleaned charge > min_intensity_pe` and `count > min_pixels`, where count is the number
/// of cleaned pixels, or of non-zero cleaned charges when `count_nonzero` is set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageQuality {
    /// Exclusive lower bound on the cleaned intensity [p.e.].
    pub min_intensity_pe: f64,
    /// Exclusive lower bound on the pixel count.
    pub min_pixels: usize,
    /// Count non-zero charges instead of pixels (`np.count_nonzero(image)`).
    pub count_nonzero: bool,
}

/// Everything ImageProcessor computes for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageParameters {
    /// Cleaned pixels.
    pub n_pixels_clean: usize,
    /// Σ charge over the whole camera (float32).
    pub image_sum_all: f64,
    /// Whether the quality gate passed (otherwise every parameter is NaN / −1).
    pub is_valid: bool,
    /// Hillas in the telescope frame (deg, rad).
    pub hillas: HillasParameters,
    /// Hillas in the camera frame (m, rad).
    pub cam_hillas: HillasParameters,
    /// Timing, telescope frame (ns/deg).
    pub timing: TimingParameters,
    /// Timing, camera frame (ns/m).
    pub cam_timing: TimingParameters,
    /// Leakage.
    pub leakage: Leakage,
    /// Concentration (telescope frame).
    pub concentration: Concentration,
    /// Morphology.
    pub morphology: Morphology,
    /// Intensity statistics.
    pub intensity_statistics: Statistics,
    /// Peak-time statistics.
    pub peak_time_statistics: Statistics,
}

/// Scratch buffers for [`process_image`].
#[derive(Debug, Default)]
pub struct ImageScratch {
    clean: CleanScratch,
    idx: Vec<u32>,
    f32buf: Vec<f32>,
    f32buf2: Vec<f32>,
    labels: Vec<u32>,
    stack: Vec<u32>,
    sizes: Vec<u32>,
    lts: LtsScratch,
}

/// Clean and parameterise one image with the OLS timing fit; `mask` receives the cleaning
/// mask.
pub fn process_image(
    geom: &CameraGeometry,
    image: &[f32],
    peak_time: &[f32],
    tailcuts: &Tailcuts,
    quality: &ImageQuality,
    s: &mut ImageScratch,
    mask: &mut Vec<bool>,
) -> ImageParameters {
    process_image_with(
        geom,
        image,
        peak_time,
        tailcuts,
        quality,
        &TimingOptions::default(),
        s,
        mask,
        true,
    )
}

/// [`process_image`] with a choice of timing fit; the whole camera's charges are summed into
/// `image_sum_all` only if `sum_all` (not for an image whose pixels below the cleaning
/// thresholds were left out, `calib::calibrate_screened_with`, NaN: `image_sum_all` is then
/// NaN, not summed).
#[allow(clippy::too_many_arguments)]
pub fn process_image_with(
    geom: &CameraGeometry,
    image: &[f32],
    peak_time: &[f32],
    tailcuts: &Tailcuts,
    quality: &ImageQuality,
    timing: &TimingOptions,
    s: &mut ImageScratch,
    mask: &mut Vec<bool>,
    sum_all: bool,
) -> ImageParameters {
    // the mask and its set pixels in ascending order
    tailcuts_clean_listed(geom, image, tailcuts, &mut s.clean, mask, &mut s.idx);
    let image_sum_all = if sum_all {
        f64::from(np_sum_f32(image))
    } else {
        f64::NAN
    };
    s.f32buf.clear();
    s.f32buf.extend(s.idx.iter().map(|&i| image[i as usize]));
    let clean_sum = np_sum_f32(&s.f32buf);
    let count = if quality.count_nonzero {
        s.f32buf.iter().filter(|&&v| v != 0.0).count()
    } else {
        s.idx.len()
    };
    let ok = f64::from(clean_sum) > quality.min_intensity_pe && count > quality.min_pixels;
    let tel = FrameView {
        x: &geom.fov_lon,
        y: &geom.fov_lat,
        area: &geom.area_deg2,
    };
    let cam = FrameView {
        x: &geom.pix_x,
        y: &geom.pix_y,
        area: &geom.pix_area,
    };
    let hillas = if ok {
        hillas_parameters(&tel, image, &s.idx)
    } else {
        None
    };
    let (Some(hillas), true) = (hillas, ok) else {
        return ImageParameters {
            n_pixels_clean: s.idx.len(),
            image_sum_all,
            is_valid: false,
            hillas: HillasParameters::nan(),
            cam_hillas: HillasParameters::nan(),
            timing: TimingParameters::nan(),
            cam_timing: TimingParameters::nan(),
            leakage: Leakage::nan(),
            concentration: Concentration::nan(),
            morphology: Morphology::missing(),
            intensity_statistics: Statistics::nan(),
            peak_time_statistics: Statistics::nan(),
        };
    };
    let cam_hillas = hillas_parameters(&cam, image, &s.idx).unwrap_or_else(HillasParameters::nan);
    let (timing, cam_timing) = match timing.fit {
        TimingFit::Ols => (
            timing_parameters(&tel, peak_time, &hillas, &s.idx),
            timing_parameters(&cam, peak_time, &cam_hillas, &s.idx),
        ),
        TimingFit::Lts => {
            use rand::SeedableRng;
            // one generator per image: the telescope frame's starts, then the camera frame's
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(timing.seed);
            let t = lts_timing_parameters(
                &tel,
                peak_time,
                &hillas,
                &s.idx,
                &timing.lts,
                &mut rng,
                &mut s.lts,
            );
            let c = lts_timing_parameters(
                &cam,
                peak_time,
                &cam_hillas,
                &s.idx,
                &timing.lts,
                &mut rng,
                &mut s.lts,
            );
            (t, c)
        }
    };
    let leakage = leakage_parameters(geom, image, &s.idx, &mut s.f32buf2);
    let concentration =
        concentration_parameters(geom, &tel, image, &s.idx, &hillas, &mut s.f32buf2);
    let morphology = morphology_of_picture(
        geom,
        mask,
        &s.idx,
        &mut s.labels,
        &mut s.stack,
        &mut s.sizes,
    );
    let intensity_statistics = descriptive_statistics(&s.f32buf, &mut s.f32buf2);
    s.f32buf.clear();
    s.f32buf
        .extend(s.idx.iter().map(|&i| peak_time[i as usize]));
    let peak_time_statistics = descriptive_statistics(&s.f32buf, &mut s.f32buf2);
    ImageParameters {
        n_pixels_clean: s.idx.len(),
        image_sum_all,
        is_valid: true,
        hillas,
        cam_hillas,
        timing,
        cam_timing,
        leakage,
        concentration,
        morphology,
        intensity_statistics,
        peak_time_statistics,
    }
}
