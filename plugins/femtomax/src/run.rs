//! A configured run: stream the frames through one pass (processing, ROI means, accumulation,
//! photon detection, optional per-frame integration), then integrate the accumulated image and
//! write tables, patterns, the PONI, plots and summary keys.

use std::path::{Path, PathBuf};

use caliper_core::error::{Position, ReadError, RunError};
use caliper_core::hist::Hist1D;
use caliper_core::instrument::{RunContext, RunPlan};
use caliper_core::pipeline::{Analysis, OnTruncation, PassOptions, run_pass};

use crate::accumulate::Accumulator;
use crate::background::{CmosBackground, Dark};
use crate::config::{AxisSource, DetectorKind, FemtomaxConfig};
use crate::geometry::Geometry;
use crate::integrate::{IntegrationSetup, Integrator, Pattern};
use crate::io::frames::{Frame, FrameSource, Scan, frames_per_scan, group_scans, hdf5_stack_info};
use crate::io::npy::NpyArray;
use crate::io::poni::PoniFile;
use crate::photon::{FrameResult, Photon, PhotonFinder, PhotonParams};
use crate::roi::RoiFrame;

/// HDF5 paths of the products (data-model version 1).
pub mod paths {
    /// Accumulated image.
    pub const ACCUMULATED: &str = "/accumulation/image";
    /// Accumulations reset by a shape change.
    pub const SEGMENTS: &str = "/accumulation/segments";
    /// ROI means per frame.
    pub const ROI_FRAMES: &str = "/roi/frame_means";
    /// ROI means per scan step.
    pub const ROI_STEPS: &str = "/roi/step_means";
    /// Photon list.
    pub const PHOTONS: &str = "/photons/list";
    /// Clean image.
    pub const CLEAN: &str = "/photons/clean_image";
    /// Energy histogram.
    pub const ENERGY_HIST: &str = "/photons/energy_histogram";
    /// Integrated pattern of the accumulated image.
    pub const PATTERN: &str = "/integration/pattern";
    /// Per-frame patterns (frames x npt).
    pub const PATTERN_FRAMES: &str = "/integration/frame_intensity";
    /// Data-model version attribute on `/`.
    pub const DATA_MODEL_VERSION: &str = "1";
}

/// A run plan built from a validated config.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The config.
    pub cfg: FemtomaxConfig,
    /// Folder that relative paths in the config are resolved against.
    pub base: PathBuf,
}

/// A config path: absolute as given, relative to the config file's folder otherwise.
pub fn resolve_path(base: &Path, s: &str) -> PathBuf {
    let p = PathBuf::from(s);
    if p.is_absolute() { p } else { base.join(p) }
}

fn cfg_err(key: &str, message: String) -> RunError {
    RunError::Config(caliper_core::ConfigErrors::single(key, message))
}

/// Everything the per-frame pass needs, prepared before it.
struct Pass<'a> {
    cfg: &'a FemtomaxConfig,
    axis: Vec<f64>,
    cmos: CmosBackground,
    photon: Option<PhotonParams>,
    frame_integrator: Option<&'a Integrator>,
    invalid: Option<(f64, f64)>,
}

/// What a chunk of frames reduces to.
struct Partial {
    acc: Accumulator,
    rois: Vec<RoiFrame>,
    photons: Vec<Photon>,
    energies: Vec<f64>,
    hist: Option<Hist1D>,
    clean: Option<((usize, usize), Vec<f64>)>,
    dense: Vec<u64>,
    candidates: u64,
    patterns: Vec<(u64, Vec<f64>)>,
    frames: u64,
    scans: u32,
    first_file: Option<PathBuf>,
    finder: PhotonFinder,
    buf: Vec<f64>,
}

impl Pass<'_> {
    fn photon_params(&self, shape: (usize, usize)) -> Option<PhotonParams> {
        let mut p = self.photon.clone()?;
        if self.cfg.photon.roi.is_empty() {
            p.roi = (0, shape.0, 0, shape.1);
        }
        Some(p)
    }
}

impl Analysis<Frame> for Pass<'_> {
    type Partial = Partial;
    type Output = Partial;

    fn init(&self) -> Partial {
        let hist = self.photon.as_ref().and_then(|_| {
            Hist1D::new(
                0.0,
                self.cfg.photon.histogram_max,
                self.cfg.photon.histogram_bins,
            )
            .ok()
        });
        Partial {
            acc: Accumulator::new(),
            rois: Vec::new(),
            photons: Vec::new(),
            energies: Vec::new(),
            hist,
            clean: None,
            dense: Vec::new(),
            candidates: 0,
            patterns: Vec::new(),
            frames: 0,
            scans: 0,
            first_file: None,
            finder: PhotonFinder::new(),
            buf: Vec::new(),
        }
    }

    fn fold(&self, p: &mut Partial, frame: &Frame, index: u64) -> Result<(), RunError> {
        let cfg = self.cfg;
        let n = frame.data.len();
        if p.first_file.is_none() {
            p.first_file = Some(frame.file.as_ref().clone());
        }
        p.scans = p.scans.max(frame.scan + 1);
        p.frames += 1;
        let mut buf = std::mem::take(&mut p.buf);
        buf.clear();
        buf.resize(n, 0.0);
        match cfg.detector {
            DetectorKind::Pilatus => buf
                .iter_mut()
                .zip(&frame.data)
                .for_each(|(o, &v)| *o = v as f64),
            DetectorKind::Zyla => {
                if !self.cmos.apply(&frame.data, &mut buf) {
                    return Err(dark_shape_error(frame, index));
                }
            }
            DetectorKind::Balor => match self.photon_params(frame.shape) {
                Some(pp) => {
                    let (r0, r1, c0, c1) = pp.roi;
                    if r1 > frame.shape.0 || c1 > frame.shape.1 {
                        return Err(RunError::Read(ReadError::unexpected(
                            &frame.file,
                            Position::event(frame.in_scan),
                            format!(
                                "photon.roi [{r0}, {r1}, {c0}, {c1}] does not fit the {}x{} frame",
                                frame.shape.0, frame.shape.1
                            ),
                        )));
                    }
                    let before = p.photons.len();
                    let e0 = p.energies.len();
                    match p.finder.search(
                        &pp,
                        index,
                        &frame.data,
                        frame.shape,
                        &mut p.photons,
                        &mut p.energies,
                    ) {
                        FrameResult::Searched { candidates, .. } => {
                            p.candidates += candidates as u64;
                            for ph in &p.photons[before..] {
                                if ph.energy >= cfg.photon.view_threshold {
                                    let (y, x) = (ph.y.round() as usize, ph.x.round() as usize);
                                    if y < frame.shape.0 && x < frame.shape.1 {
                                        buf[y * frame.shape.1 + x] += 1.0;
                                    }
                                }
                            }
                            if let Some(h) = p.hist.as_mut() {
                                for &e in &p.energies[e0..] {
                                    h.fill(e);
                                }
                            }
                            p.energies.truncate(e0);
                            let fresh = !matches!(&p.clean, Some((s, _)) if *s == frame.shape);
                            if fresh {
                                p.clean = Some((frame.shape, vec![0.0; n]));
                            }
                            if let Some((_, c)) = p.clean.as_mut() {
                                c.iter_mut().zip(&buf).for_each(|(a, b)| *a += b);
                            }
                        }
                        FrameResult::TooDense(_) => {
                            p.dense.push(index);
                            if !self.cmos.apply(&frame.data, &mut buf) {
                                return Err(dark_shape_error(frame, index));
                            }
                        }
                    }
                }
                None => {
                    if !self.cmos.apply(&frame.data, &mut buf) {
                        return Err(dark_shape_error(frame, index));
                    }
                }
            },
        }
        let axis = self
            .axis
            .get(index as usize)
            .copied()
            .unwrap_or(index as f64);
        let (means, stds) = cfg
            .rois
            .iter()
            .map(|r| r.mean_std(&buf, frame.shape))
            .unzip();
        p.rois.push(RoiFrame {
            index,
            scan: frame.scan,
            axis,
            means,
            stds,
        });
        let a = &cfg.accumulate;
        if a.enabled && index >= a.start_frame && (a.stop_frame == 0 || index < a.stop_frame) {
            let key = if a.across_scans { 0 } else { frame.scan };
            let invalid = self.invalid;
            p.acc.add(index, frame.shape, key, &buf, |v| match invalid {
                Some((d, dd)) => v.is_nan() || (v - d).abs() <= dd,
                None => v.is_nan(),
            });
        }
        if let Some(integ) = self.frame_integrator
            && integ.shape() == frame.shape
        {
            p.patterns
                .push((index, integ.integrate_serial(&buf).intensity));
        }
        p.buf = buf;
        Ok(())
    }

    fn merge(&self, acc: &mut Partial, next: Partial) {
        acc.acc.merge(next.acc);
        acc.rois.extend(next.rois);
        acc.photons.extend(next.photons);
        if let (Some(a), Some(b)) = (acc.hist.as_mut(), next.hist.as_ref()) {
            let _ = a.merge(b);
        }
        match (&mut acc.clean, next.clean) {
            (Some((sa, a)), Some((sb, b))) if *sa == sb => {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y)
            }
            (slot, Some(c)) => *slot = Some(c),
            (_, None) => {}
        }
        acc.dense.extend(next.dense);
        acc.candidates += next.candidates;
        acc.patterns.extend(next.patterns);
        acc.frames += next.frames;
        acc.scans = acc.scans.max(next.scans);
        if acc.first_file.is_none() {
            acc.first_file = next.first_file;
        }
    }

    fn finish(&self, acc: Partial) -> Result<Partial, RunError> {
        Ok(acc)
    }
}

fn dark_shape_error(frame: &Frame, _index: u64) -> RunError {
    RunError::Read(ReadError::unexpected(
        &frame.file,
        Position::event(frame.in_scan),
        format!(
            "dark frame (cmos.dark_frame) does not have the frame's {}x{} pixels",
            frame.shape.0, frame.shape.1
        ),
    ))
}

fn first_shape(scans: &[Scan], dataset: &str) -> Result<Option<(usize, usize)>, ReadError> {
    match scans.first() {
        Some(Scan::Hdf5(p)) => hdf5_stack_info(p, dataset).map(|(_, s)| Some(s)),
        Some(Scan::Cbf(v)) => match v.first() {
            Some(f) => caliper_core::cbf::CbfImage::read(f).map(|i| Some((i.height, i.width))),
            None => Ok(None),
        },
        None => Ok(None),
    }
}

impl Plan {
    fn axis_values(&self, scans: &[Scan]) -> Result<Vec<f64>, RunError> {
        let ax = &self.cfg.axis;
        match ax.source {
            AxisSource::Frame => Ok(Vec::new()),
            AxisSource::Csv => {
                let counts = frames_per_scan(scans, &self.cfg.input.dataset)?;
                let total: usize = counts.iter().sum();
                Ok(crate::io::axis::from_csv(
                    &resolve_path(&self.base, &ax.csv),
                    &ax.column,
                    total,
                )?)
            }
            AxisSource::Hdf5 => {
                let counts = frames_per_scan(scans, &self.cfg.input.dataset)?;
                let mut all = Vec::new();
                for (s, n) in scans.iter().zip(counts) {
                    match s {
                        Scan::Hdf5(p) => all.extend(crate::io::axis::from_hdf5(p, &ax.dataset, n)?),
                        Scan::Cbf(v) => {
                            return Err(cfg_err(
                                "axis.source",
                                format!(
                                    "axis.source = \"hdf5\" but scan of {} is a CBF sequence; use \"csv\"",
                                    v.first()
                                        .map(|p| p.display().to_string())
                                        .unwrap_or_default()
                                ),
                            ));
                        }
                    }
                }
                Ok(all)
            }
        }
    }

    fn setup_integration(
        &self,
        scans: &[Scan],
    ) -> Result<Option<(Geometry, Integrator, PoniFile)>, RunError> {
        let ig = &self.cfg.integration;
        if !ig.enabled {
            return Ok(None);
        }
        let poni_path = resolve_path(&self.base, &ig.poni);
        let poni = PoniFile::read(&poni_path)?;
        let geometry = Geometry::from_poni(&poni);
        let shape = match (geometry.detector.max_shape, self.expected_shape()) {
            (Some(s), _) => s,
            (None, Some(s)) => s,
            (None, None) => first_shape(scans, &self.cfg.input.dataset)?
                .ok_or_else(|| RunError::failed("no input frames: cannot size the integration"))?,
        };
        let mask = if ig.mask.is_empty() {
            None
        } else {
            let p = resolve_path(&self.base, &ig.mask);
            let m = NpyArray::read(&p)?;
            if m.shape2() != Some(shape) {
                return Err(RunError::Read(ReadError::unexpected(
                    &p,
                    Position::default(),
                    format!(
                        "mask shape {:?} differs from the detector's {shape:?}",
                        m.shape
                    ),
                )));
            }
            Some(m.data.iter().map(|&v| (v != 0.0) as u8).collect())
        };
        let setup = IntegrationSetup {
            unit: ig.unit,
            npt: ig.npt,
            splitting: ig.splitting,
            correct_solid_angle: ig.correct_solid_angle,
            polarization_factor: ig.polarization_factor,
            mask,
            dummy: (ig.dummy.len() == 2).then(|| (ig.dummy[0], ig.dummy[1])),
        };
        let integ = Integrator::new(&geometry, shape, &setup)
            .map_err(|e| RunError::failed(format!("{}: {e}", poni_path.display())))?;
        Ok(Some((geometry, integ, poni)))
    }

    fn expected_shape(&self) -> Option<(usize, usize)> {
        (self.cfg.input.shape.len() == 2)
            .then(|| (self.cfg.input.shape[0], self.cfg.input.shape[1]))
    }
}

impl RunPlan for Plan {
    fn resolved_config(&self) -> String {
        caliper_core::config::commented_toml(&self.cfg, "FemtoMAX run (resolved)", crate::ID)
    }

    fn run(&self, inputs: &[PathBuf], ctx: &RunContext) -> Result<(), RunError> {
        let cfg = &self.cfg;
        if inputs.is_empty() {
            return Err(RunError::failed(
                "no input files (HDF5/NeXus stacks or CBF files)",
            ));
        }
        let scans = group_scans(inputs)?;
        let axis = self.axis_values(&scans)?;
        let integration = self.setup_integration(&scans)?;
        let expected = self
            .expected_shape()
            .or_else(|| integration.as_ref().map(|(_, i, _)| i.shape()));
        let dark = if cfg.cmos.dark_frame.is_empty() {
            Dark::Uniform(cfg.cmos.background)
        } else {
            Dark::Frame(NpyArray::read(&resolve_path(&self.base, &cfg.cmos.dark_frame))?.data)
        };
        let photon = (cfg.detector == DetectorKind::Balor && cfg.photon.enabled).then(|| {
            let r = &cfg.photon.roi;
            PhotonParams {
                roi: if r.len() == 4 {
                    (r[0], r[1], r[2], r[3])
                } else {
                    (0, 0, 0, 0)
                },
                initial_threshold: cfg.photon.initial_threshold,
                energy_threshold: cfg.photon.energy_threshold,
                pileup_energy: cfg.photon.pileup_energy,
                min_blob_pixels: cfg.photon.min_blob_pixels,
                max_hit_fraction: cfg.photon.max_hit_fraction,
            }
        });
        let invalid = integration.as_ref().and_then(|(g, _, _)| {
            let d = &cfg.integration.dummy;
            if d.len() == 2 {
                Some((d[0], d[1]))
            } else {
                g.detector.dummy
            }
        });
        let pass = Pass {
            cfg,
            axis,
            cmos: CmosBackground {
                dark,
                threshold: cfg.cmos.threshold,
            },
            photon,
            frame_integrator: integration
                .as_ref()
                .filter(|_| cfg.integration.per_frame)
                .map(|(_, i, _)| i),
            invalid,
        };
        let pixels = first_shape(&scans, &cfg.input.dataset)
            .ok()
            .flatten()
            .map(|(r, c)| r * c)
            .unwrap_or(1 << 20)
            .max(1);
        let opts = PassOptions {
            // Some million pixels per chunk: a few ms of work, bounded memory.
            chunk_events: (4_000_000 / pixels).clamp(1, 256),
            max_events: ctx.options().max_events,
            on_truncation: if ctx.options().allow_truncated {
                OnTruncation::KeepWithWarning
            } else {
                OnTruncation::Fail
            },
        };
        ctx.progress().set_message("frames");
        let mut source = FrameSource::new(scans.clone(), &cfg.input.dataset, expected);
        let out = run_pass(&mut source, &pass, &opts, ctx.progress())?;
        if let Some(t) = &out.truncated {
            ctx.warn(format!(
                "input truncated, kept the {} frames before it: {t}",
                out.events
            ));
        }
        let r = out.output;
        crate::output::write_outputs(self, ctx, &scans, r.into(), integration.as_ref())
    }
}

/// The reduced run, handed to the output writer.
pub struct Reduced {
    /// Accumulation.
    pub acc: Accumulator,
    /// ROI frames.
    pub rois: Vec<RoiFrame>,
    /// Photons.
    pub photons: Vec<Photon>,
    /// Energy histogram.
    pub hist: Option<Hist1D>,
    /// Clean image.
    pub clean: Option<((usize, usize), Vec<f64>)>,
    /// Frames too dense for photon detection.
    pub dense: Vec<u64>,
    /// Photon candidates.
    pub candidates: u64,
    /// Per-frame patterns.
    pub patterns: Vec<(u64, Vec<f64>)>,
    /// Frames.
    pub frames: u64,
    /// Scans seen.
    pub scans: u32,
    /// First input file.
    pub first_file: Option<PathBuf>,
}

impl From<Partial> for Reduced {
    fn from(p: Partial) -> Self {
        Self {
            acc: p.acc,
            rois: p.rois,
            photons: p.photons,
            hist: p.hist,
            clean: p.clean,
            dense: p.dense,
            candidates: p.candidates,
            patterns: p.patterns,
            frames: p.frames,
            scans: p.scans,
            first_file: p.first_file,
        }
    }
}

/// Helpers shared with the output writer.
pub(crate) fn integrate_accumulated(integ: &Integrator, sum: &[f64], invalid: &[bool]) -> Pattern {
    let img: Vec<f64> = sum
        .iter()
        .zip(invalid)
        .map(|(&v, &bad)| if bad { f64::NAN } else { v })
        .collect();
    integ.integrate(&img)
}
