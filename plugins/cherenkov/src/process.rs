//! The per-event chain (calibrate → clean → parameterise → stereo) as a
//! [`caliper_core::pipeline::Analysis`], so events are processed in parallel chunks with
//! results identical for any thread count.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use caliper_core::RunError;
use caliper_core::pipeline::{Analysis, EventSource};

use crate::calib::{CalibKernel, CalibScratch, Dl1Image, calibrate, calibrate_screened_with};
use crate::config::CherenkovConfig;
use crate::io::simtel::{ArrayEvent, McShower, SimtelReader, TelescopeEvent};
use crate::parameters::{ImageParameters, ImageScratch, process_image_with};
use crate::stereo::{StereoInput, StereoResult, reconstruct};
use crate::subarray::Subarray;

/// [`SimtelReader`] as a pass source.
#[derive(Debug)]
pub struct SimtelSource(pub SimtelReader);

impl EventSource for SimtelSource {
    type Event = ArrayEvent;
    fn next_event(&mut self) -> Option<Result<ArrayEvent, caliper_core::ReadError>> {
        self.0.next_event()
    }
}

/// One telescope's results in one event.
#[derive(Debug, Clone)]
pub struct TelResult {
    /// Telescope id.
    pub tel_id: u16,
    /// Image parameters.
    pub params: ImageParameters,
    /// Entered the stereo reconstruction.
    pub used_in_stereo: bool,
    /// Corrected psi from the stereo reconstruction \[rad\] (NaN if not used).
    pub core_psi: f64,
    /// True p.e. in the image (MCPhotoelectronSum), −1 if unknown.
    pub true_image_sum: f64,
    /// Distance of the telescope from the true shower axis \[m\].
    pub true_impact: f64,
    /// The calibrated image, peak time and mask, if images are kept.
    pub image: Option<(Vec<f32>, Vec<f32>, Vec<bool>)>,
}

/// One event's results.
#[derive(Debug, Clone)]
pub struct EventResult {
    /// Run number.
    pub obs_id: i32,
    /// Event id.
    pub event_id: i64,
    /// Number of triggered telescopes.
    pub n_triggered: usize,
    /// The triggered telescopes (central trigger), in the file's order.
    pub triggered: Vec<u16>,
    /// MC shower.
    pub shower: Option<Arc<McShower>>,
    /// True core (x, y) \[m\].
    pub true_core: (f64, f64),
    /// Per telescope.
    pub tels: Vec<TelResult>,
    /// Stereo result (None: invalid).
    pub stereo: Option<StereoResult>,
}

/// The brightest image seen, for the camera display.
#[derive(Debug, Clone)]
pub struct DisplayImage {
    /// Event id.
    pub event_id: i64,
    /// Telescope id.
    pub tel_id: u16,
    /// Charge of every pixel (empty while `raw` holds the data to compute it from).
    pub image: Vec<f32>,
    /// The telescope's raw data when its calibration left pixels out
    /// (`calibrate_screened_with`): [`Chain::complete_display`] (run by the pass's `finish`)
    /// calibrates every pixel of the one image that ends up displayed.
    pub raw: Option<Box<TelescopeEvent>>,
    /// Mask.
    pub mask: Vec<bool>,
    /// Hillas (telescope frame).
    pub params: ImageParameters,
}

/// What a chunk accumulates.
#[derive(Debug, Default)]
pub struct ChainPartial {
    /// Events in order.
    pub events: Vec<EventResult>,
    /// Brightest parameterised image.
    pub display: Option<DisplayImage>,
}

/// The chain over one input.
#[derive(Debug)]
pub struct Chain<'a> {
    /// Subarray.
    pub subarray: &'a Subarray,
    /// Config.
    pub config: &'a CherenkovConfig,
    /// The largest positive intensity of an image kept for the display so far, by any thread
    /// (float64 bits; non-negative values order as their bits): an image below it cannot
    /// become the display, so it keeps no copy.
    display_best: AtomicU64,
}

impl<'a> Chain<'a> {
    /// The chain of a subarray and config.
    pub fn new(subarray: &'a Subarray, config: &'a CherenkovConfig) -> Self {
        Self {
            subarray,
            config,
            display_best: AtomicU64::new(0),
        }
    }
}

/// Distance \[m\] of a ground point from the shower axis through `core` with direction (alt, az)
/// (ctapipe `shower_impact_distance`, right-handed ground frame).
pub fn impact_distance(pos: [f64; 3], core: (f64, f64), alt: f64, az: f64) -> f64 {
    let d = [alt.cos() * az.cos(), -alt.cos() * az.sin(), alt.sin()];
    let v = [pos[0] - core.0, pos[1] - core.1, pos[2]];
    let c = [
        v[1] * d[2] - v[2] * d[1],
        v[2] * d[0] - v[0] * d[2],
        v[0] * d[1] - v[1] * d[0],
    ];
    (c[0] * c[0] + c[1] * c[1] + c[2] * c[2]).sqrt()
}

/// Per-thread buffers of the telescope step when the telescopes of one event run in parallel.
#[derive(Debug, Default)]
struct TelScratch {
    cs: CalibScratch,
    is: ImageScratch,
    dl1: Dl1Image,
    mask: Vec<bool>,
}

thread_local! {
    /// One [`TelScratch`] per thread (borrowed only around the calibration and the image
    /// parameters, which make no rayon calls, so a borrow is never re-entered). Every image
    /// of a thread uses it, also when the telescopes of an event are processed in turn: a
    /// chunk's [`ChainPartial`] then starts without buffers of its own, instead of
    /// allocating and zero-filling ≈ 330 kB (DigiCam) to 1.5 MB (SCTCam) on its first image
    /// (about 1 % of `bench_numbers`; every buffer is written before it is read, so the
    /// outputs do not depend on what a previous image left in it).
    static TEL_SCRATCH: std::cell::RefCell<TelScratch> = std::cell::RefCell::default();
}

/// A copy of a display candidate: its charges (or, when they were screened, its raw data,
/// see [`DisplayImage::raw`]) and cleaning mask.
type DisplayCopy = (Vec<f32>, Option<Box<TelescopeEvent>>, Vec<bool>);

/// What one telescope contributes to its event.
struct TelOutcome {
    result: TelResult,
    stereo: Option<StereoInput>,
    /// The image (or the raw data to calibrate it from) and mask, kept only if the image
    /// could become the display image.
    display: Option<DisplayCopy>,
}

impl Chain<'_> {
    /// Calibrate and parameterise one telescope image. `display_floor` is the intensity the
    /// display image had before this event (None: no display image yet): only a brighter
    /// valid image keeps a copy of its pixels.
    #[allow(clippy::too_many_arguments)]
    fn telescope(
        &self,
        ev: &ArrayEvent,
        te: &TelescopeEvent,
        true_core: (f64, f64),
        display_floor: Option<f64>,
        cs: &mut CalibScratch,
        is: &mut ImageScratch,
        dl1: &mut Dl1Image,
        mask: &mut Vec<bool>,
    ) -> Result<TelOutcome, RunError> {
        let cfg = self.config;
        let q = cfg.image_quality();
        let st = &cfg.stereo;
        let Some(setup) = self.subarray.tels.get(&te.tel_id) else {
            return Err(RunError::failed(format!(
                "event {}: telescope {} is not described in the file header",
                ev.event_id, te.tel_id
            )));
        };
        let Some(cal) = te.calibration.as_ref() else {
            return Err(RunError::failed(format!(
                "event {}: telescope {} has no pedestal/calibration (CameraMonitoring 2022 and LaserCalibration 2023) before its first event",
                ev.event_id, te.tel_id
            )));
        };
        let g = &setup.geometry;
        if te.n_pixels != g.n_pixels() || cal.n_pixels != g.n_pixels() {
            return Err(RunError::failed(format!(
                "event {}: telescope {} has {} pixels in its ADC data and {} in its calibration, but its camera has {}",
                ev.event_id,
                te.tel_id,
                te.n_pixels,
                cal.n_pixels,
                g.n_pixels()
            )));
        }
        // the pixels the cleaning cannot select are left out unless the images are written
        // (`calibrate_screened_with`; the parameters are the same either way)
        let cleaning = (cfg.calibration.skip_pixels_below_cleaning && !cfg.output.write_images)
            .then_some(&setup.tailcuts);
        let kernel = CalibKernel::selected();
        calibrate_screened_with(kernel, te, cal, g, &setup.readout, cleaning, cs, dl1);
        // (screened: `image_sum_all`, a sum over pixels some of which were left out, is NaN)
        let params = process_image_with(
            g,
            &dl1.image,
            &dl1.peak_time,
            &setup.tailcuts,
            &q,
            &cfg.timing_options(ev.event_id, te.tel_id),
            is,
            mask,
            cleaning.is_none(),
        );
        let h = &params.hillas;
        let use_it = params.is_valid
            && h.intensity > st.min_intensity_pe
            && h.width > st.min_width_deg
            && params.morphology.n_pixels > st.min_pixels
            && params.leakage.intensity_width_2 < st.max_leakage_intensity_width_2;
        let stereo = match te.tracking {
            Some(tr) if st.enabled && use_it => Some(StereoInput {
                tel_id: te.tel_id,
                hillas: *h,
                pointing_az_alt: tr.az_alt(),
                position: setup.position,
                cam_radius_deg: setup.cam_radius_deg,
            }),
            _ => None,
        };
        // an image below the brightest one kept by any thread cannot become the display
        // (ties are kept: the merge then keeps the earliest, as a sequential pass would)
        let best = f64::from_bits(self.display_best.load(Ordering::Relaxed));
        let display = (params.is_valid
            && display_floor.is_none_or(|f| h.intensity > f)
            && (h.intensity <= 0.0 || h.intensity >= best))
            .then(|| {
                if h.intensity > 0.0 {
                    self.display_best
                        .fetch_max(h.intensity.to_bits(), Ordering::Relaxed);
                }
                // the display shows every pixel's charge: a screened image keeps the raw data
                // (calibrated for the one image displayed, `complete_display`)
                if cleaning.is_some() {
                    (Vec::new(), Some(Box::new(te.clone())), mask.clone())
                } else {
                    (dl1.image.clone(), None, mask.clone())
                }
            });
        let true_impact = match &ev.shower {
            Some(s) => impact_distance(
                setup.position,
                true_core,
                f64::from(s.altitude),
                f64::from(s.azimuth),
            ),
            None => f64::NAN,
        };
        let image = cfg
            .output
            .write_images
            .then(|| (dl1.image.clone(), dl1.peak_time.clone(), mask.clone()));
        Ok(TelOutcome {
            result: TelResult {
                tel_id: te.tel_id,
                params,
                used_in_stereo: false,
                core_psi: f64::NAN,
                true_image_sum: te.true_image_sum,
                true_impact,
                image,
            },
            stereo,
            display,
        })
    }

    /// Process one event with the given scratch. With more than one rayon thread the
    /// telescopes of the event are calibrated and parameterised in parallel (each image on
    /// its own; the results are then taken in telescope order, so they are identical for
    /// any thread count).
    pub fn process(&self, ev: &ArrayEvent, p: &mut ChainPartial) -> Result<EventResult, RunError> {
        let st = &self.config.stereo;
        let true_core = ev
            .mc_event
            .map(|m| (f64::from(m.xcore), f64::from(m.ycore)))
            .unwrap_or((f64::NAN, f64::NAN));
        let floor = p.display.as_ref().map(|d| d.params.hillas.intensity);
        // Every image uses its thread's scratch (see `TEL_SCRATCH`).
        let one = |te| {
            TEL_SCRATCH.with(|s| {
                let s = &mut *s.borrow_mut();
                self.telescope(
                    ev,
                    te,
                    true_core,
                    floor,
                    &mut s.cs,
                    &mut s.is,
                    &mut s.dl1,
                    &mut s.mask,
                )
            })
        };
        let outcomes: Vec<Result<TelOutcome, RunError>> =
            if ev.telescopes.len() > 1 && rayon::current_num_threads() > 1 {
                use rayon::prelude::*;
                ev.telescopes.par_iter().map(one).collect()
            } else {
                ev.telescopes.iter().map(one).collect()
            };
        let mut tels = Vec::with_capacity(outcomes.len());
        let mut inputs = Vec::new();
        for o in outcomes {
            let o = o?;
            if let Some(input) = o.stereo {
                inputs.push(input);
            }
            if let Some((image, raw, mask)) = o.display {
                let intensity = o.result.params.hillas.intensity;
                // strict > in telescope order: the sequential choice
                if p.display
                    .as_ref()
                    .is_none_or(|d| intensity > d.params.hillas.intensity)
                {
                    p.display = Some(DisplayImage {
                        event_id: ev.event_id,
                        tel_id: o.result.tel_id,
                        image,
                        raw,
                        mask,
                        params: o.result.params.clone(),
                    });
                }
            }
            tels.push(o.result);
        }
        let stereo = if st.enabled {
            reconstruct(
                &inputs,
                self.subarray.array_pointing,
                self.subarray.observatory_height,
            )
        } else {
            None
        };
        if let Some(s) = &stereo {
            for (k, &tid) in s.telescopes.iter().enumerate() {
                if let Some(t) = tels.iter_mut().find(|t| t.tel_id == tid) {
                    t.used_in_stereo = true;
                    t.core_psi = s.core_psi[k];
                }
            }
        }
        Ok(EventResult {
            obs_id: ev.obs_id,
            event_id: ev.event_id,
            n_triggered: ev.trigger.triggered_telescopes.len(),
            triggered: ev
                .trigger
                .triggered_telescopes
                .iter()
                .filter_map(|&t| u16::try_from(t).ok())
                .collect(),
            shower: ev.shower.clone(),
            true_core,
            tels,
            stereo,
        })
    }

    /// Calibrate every pixel of a display image kept as raw data (see [`DisplayImage::raw`]).
    pub fn complete_display(&self, d: &mut DisplayImage) {
        let Some(te) = d.raw.take() else { return };
        if let (Some(setup), Some(cal)) = (self.subarray.tels.get(&te.tel_id), &te.calibration) {
            let mut dl1 = Dl1Image::default();
            calibrate(
                &te,
                cal,
                &setup.geometry,
                &setup.readout,
                &mut CalibScratch::default(),
                &mut dl1,
            );
            d.image = dl1.image;
        }
    }
}

impl Analysis<ArrayEvent> for Chain<'_> {
    type Partial = ChainPartial;
    type Output = ChainPartial;
    fn init(&self) -> ChainPartial {
        ChainPartial::default()
    }
    fn fold(&self, p: &mut ChainPartial, ev: &ArrayEvent, _index: u64) -> Result<(), RunError> {
        let r = self.process(ev, p)?;
        p.events.push(r);
        Ok(())
    }
    fn merge(&self, acc: &mut ChainPartial, next: ChainPartial) {
        acc.events.extend(next.events);
        if let Some(d) = next.display {
            // strict > keeps the earliest of equal intensities: order-independent of chunking
            if acc
                .display
                .as_ref()
                .is_none_or(|a| d.params.hillas.intensity > a.params.hillas.intensity)
            {
                acc.display = Some(d);
            }
        }
    }
    fn finish(&self, mut acc: ChainPartial) -> Result<ChainPartial, RunError> {
        if let Some(d) = acc.display.as_mut() {
            self.complete_display(d);
        }
        Ok(acc)
    }
}
