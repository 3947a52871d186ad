//! The run: find the flats, pair them, ISR + pair statistics per pair and amplifier (one
//! `run_pass` over the pairs, amplifiers in parallel inside a pair), then the PTC fits per
//! amplifier and the outputs.

use std::path::{Path, PathBuf};

use caliper_core::RunContext;
use caliper_core::error::RunError;
use caliper_core::pipeline::{Analysis, IterSource, OnTruncation, PassOptions, run_pass};
use caliper_core::robust::AfwClipParams;
use rayon::prelude::*;

use crate::clip::IntHist;
use crate::config::PtcConfig;
use crate::io::fits::FitsFile;
use crate::io::lsst;
use crate::isr::{IsrSettings, RawPixels, isr_amp, isr_amp_pixels_hist};
use crate::pair_stats::{PairAmpStats, Scratch, covariances, pair_stats_prebuilt};
use crate::pairing::{Candidate, Pair, Unused, find_pairs};
use crate::report::{self, AmpResult};

/// Expand inputs: folders give their FITS files (`.fits`, `.fit`, `.fz`, optionally `.gz`),
/// sorted by name; files are taken as they are.
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, RunError> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| RunError::io(p, e))?;
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    let n = f
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or("")
                        .to_ascii_lowercase();
                    let n = n.strip_suffix(".gz").unwrap_or(&n);
                    f.is_file()
                        && (n.ends_with(".fits") || n.ends_with(".fit") || n.ends_with(".fz"))
                })
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// ISR'd master bias, one image per amplifier.
pub fn load_master_bias(
    path: &Path,
    amps: &[String],
    isr: &IsrSettings,
) -> Result<Vec<Vec<f32>>, RunError> {
    let f = FitsFile::open(path)?;
    let segs = lsst::segments(&f, amps)?;
    let (mut raw, mut scratch, mut sc2) = (Vec::new(), Vec::new(), Vec::new());
    let mut out = Vec::new();
    for g in &segs {
        f.read_image_f32(&f.hdus[g.hdu], &mut raw, &mut scratch)?;
        let mut img = Vec::new();
        isr_amp(&raw, g, isr, None, &mut img, &mut sc2)
            .map_err(|e| RunError::failed(format!("{}: {e}", path.display())))?;
        out.push(img);
    }
    Ok(out)
}

/// Everything the per-pair step needs.
pub struct PairStep<'a> {
    /// Amplifier names.
    pub amps: &'a [String],
    /// ISR settings.
    pub isr: IsrSettings,
    /// Clip settings.
    pub clip: AfwClipParams,
    /// Optional master bias per amp.
    pub bias: Option<&'a [Vec<f32>]>,
    /// Covariance lags (0 = off).
    pub cov_lag: usize,
}

/// The outcome of one pair.
#[derive(Debug, Clone)]
pub struct PairOutcome {
    /// The pair.
    pub pair: Pair,
    /// Per-amp statistics, or why the pair failed.
    pub result: Result<Vec<PairAmpStats>, String>,
}

impl PairStep<'_> {
    /// ISR and statistics of one pair on every amplifier.
    pub fn process(&self, pair: &Pair) -> Result<Vec<PairAmpStats>, String> {
        // File buffers recycled per thread (see `FitsFile::open_with_buffer`): used by files
        // that have to be read (gzip-wrapped); plain files are mapped and leave them untouched.
        let (b1, b2) = FILE_BUFFERS.with(|c| {
            let mut c = c.borrow_mut();
            (c.pop().unwrap_or_default(), c.pop().unwrap_or_default())
        });
        let f1 = FitsFile::open_with_buffer(&pair.first, b1).map_err(|e| e.to_string())?;
        let f2 = match FitsFile::open_with_buffer(&pair.second, b2) {
            Ok(f) => f,
            Err(e) => {
                FILE_BUFFERS.with(|c| c.borrow_mut().push(f1.into_buffer()));
                return Err(e.to_string());
            }
        };
        let out = self.process_files(pair, &f1, &f2);
        FILE_BUFFERS.with(|c| {
            let mut c = c.borrow_mut();
            c.push(f1.into_buffer());
            c.push(f2.into_buffer());
        });
        out
    }

    fn process_files(
        &self,
        pair: &Pair,
        f1: &FitsFile,
        f2: &FitsFile,
    ) -> Result<Vec<PairAmpStats>, String> {
        let s1 = lsst::segments(f1, self.amps).map_err(|e| e.to_string())?;
        let s2 = lsst::segments(f2, self.amps).map_err(|e| e.to_string())?;
        for (a, b) in s1.iter().zip(&s2) {
            if a.shape != b.shape
                || a.datasec != b.datasec
                || a.serial_overscan != b.serial_overscan
            {
                return Err(format!(
                    "mismatched shapes on {}: {} is {}x{} DATASEC {}, {} is {}x{} DATASEC {}",
                    a.name,
                    pair.first.display(),
                    a.shape[0],
                    a.shape[1],
                    a.datasec.to_section(),
                    pair.second.display(),
                    b.shape[0],
                    b.shape[1],
                    b.datasec.to_section()
                ));
            }
        }
        (0..s1.len())
            .into_par_iter()
            .map(|k| {
                // Per-thread buffers kept across pairs: fresh 20 MB of buffers per pair would
                // cost page faults on every first touch. Nothing below calls into rayon, so the
                // borrow cannot be re-entered on this thread.
                AMP_SCRATCH.with(|cell| {
                    let mut guard = cell.borrow_mut();
                    let (raw, iscr, i1, i2, sc, st, hists) = &mut *guard;
                    self.amp(f1, f2, &s1, &s2, k, raw, iscr, (i1, i2), sc, st, hists)
                })
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn amp(
        &self,
        f1: &FitsFile,
        f2: &FitsFile,
        s1: &[lsst::SegmentGeometry],
        s2: &[lsst::SegmentGeometry],
        k: usize,
        raw: &mut Vec<f32>,
        iscr: &mut Vec<i32>,
        (i1, i2): (&mut Vec<f32>, &mut Vec<f32>),
        sc: &mut Vec<f32>,
        st: &mut Scratch,
        (h1, h2): &mut (IntHist, IntHist),
    ) -> Result<PairAmpStats, String> {
        let bias = self.bias.map(|b| b[k].as_slice());
        // The flats' unit histograms are counted by the ISR while each row is in cache.
        let m1 = isr_file_amp(f1, &s1[k], &self.isr, bias, raw, iscr, i1, sc, h1)?;
        let m2 = isr_file_amp(f2, &s2[k], &self.isr, bias, raw, iscr, i2, sc, h2)?;
        let mut r = pair_stats_prebuilt(
            i1,
            i2,
            m1.overscan_noise,
            m2.overscan_noise,
            &self.clip,
            st,
            Some((h1, h2)),
        )
        .map_err(|e| format!("{}: {e}", s1[k].name))?;
        if self.cov_lag > 0 {
            let half = self.clip.n_sigma * r.var_unhalved.max(0.0).sqrt();
            r.cov = covariances(st, m1.nx, self.cov_lag, r.diff_mean, half);
        }
        Ok(r)
    }
}

/// Read and ISR one segment of a file: plain int32 images (LSSTCam) are decoded on the fly
/// by the ISR (bit-identical to decoding first, see `isr.rs` tests), anything else is decoded
/// into `raw` first.
#[allow(clippy::too_many_arguments)]
fn isr_file_amp(
    f: &FitsFile,
    g: &lsst::SegmentGeometry,
    isr: &IsrSettings,
    bias: Option<&[f32]>,
    raw: &mut Vec<f32>,
    iscr: &mut Vec<i32>,
    out: &mut Vec<f32>,
    sc: &mut Vec<f32>,
    hist: &mut IntHist,
) -> Result<crate::isr::IsrMeasure, String> {
    let hdu = &f.hdus[g.hdu];
    let pixels = match f.plain_i32_data(hdu) {
        Some(bytes) => RawPixels::BeI32(bytes),
        None => {
            f.read_image_f32(hdu, raw, iscr)
                .map_err(|e| e.to_string())?;
            RawPixels::F32(raw)
        }
    };
    isr_amp_pixels_hist(pixels, g, isr, bias, out, sc, Some(hist))
        .map_err(|e| format!("{}: {e}", f.path().display()))
}

/// Per-thread buffers of one amplifier's ISR and statistics.
type AmpBuffers = (
    Vec<f32>,
    Vec<i32>,
    Vec<f32>,
    Vec<f32>,
    Vec<f32>,
    Scratch,
    (IntHist, IntHist),
);

thread_local! {
    /// Recycled file buffers of the pair being read on this thread (two per pair).
    static FILE_BUFFERS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
    static AMP_SCRATCH: std::cell::RefCell<AmpBuffers> = std::cell::RefCell::new(Default::default());
}

impl Analysis<Pair> for PairStep<'_> {
    type Partial = Vec<PairOutcome>;
    type Output = Vec<PairOutcome>;
    fn init(&self) -> Self::Partial {
        Vec::new()
    }
    fn fold(&self, acc: &mut Self::Partial, pair: &Pair, _index: u64) -> Result<(), RunError> {
        acc.push(PairOutcome {
            pair: pair.clone(),
            result: self.process(pair),
        });
        Ok(())
    }
    fn merge(&self, acc: &mut Self::Partial, next: Self::Partial) {
        acc.extend(next);
    }
    fn finish(&self, acc: Self::Partial) -> Result<Self::Output, RunError> {
        Ok(acc)
    }
}

/// The configured run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Config.
    pub cfg: PtcConfig,
    /// Resolved master bias path.
    pub master_bias: Option<PathBuf>,
    /// Resolved eotest results path.
    pub eotest_results: Option<PathBuf>,
}

impl caliper_core::RunPlan for Plan {
    fn resolved_config(&self) -> String {
        caliper_core::config::commented_toml(&self.cfg, "", crate::ID)
    }

    fn run(&self, inputs: &[PathBuf], ctx: &RunContext) -> Result<(), RunError> {
        let files = expand_inputs(inputs)?;
        let mut cands = Vec::new();
        let mut unused: Vec<Unused> = Vec::new();
        ctx.progress().set_message("reading headers");
        for f in &files {
            match FitsFile::primary_header(f).and_then(|h| lsst::exposure_info(f, &h)) {
                Ok(info) => cands.push(Candidate {
                    path: f.clone(),
                    exptime: info.exptime,
                    imgtype: info.imgtype,
                }),
                Err(e) => unused.push(Unused {
                    path: f.clone(),
                    reason: e.to_string(),
                }),
            }
        }
        let (mut pairs, more) = find_pairs(
            &cands,
            &self.cfg.flat_imgtypes,
            self.cfg.exptime_tolerance.s(),
        );
        unused.extend(more);
        for u in &unused {
            ctx.warn(format!("{}: not used: {}", u.path.display(), u.reason));
        }
        if let Some(m) = ctx.options().max_events {
            pairs.truncate(m as usize);
        }
        if pairs.is_empty() {
            return Err(RunError::failed(format!(
                "no flat pairs among {} input file(s); {}",
                files.len(),
                unused
                    .iter()
                    .map(|u| format!("{}: {}", u.path.display(), u.reason))
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        let isr = self.cfg.isr_settings();
        let bias = match &self.master_bias {
            Some(p) => Some(load_master_bias(p, &self.cfg.amplifiers, &isr)?),
            None => None,
        };
        let step = PairStep {
            amps: &self.cfg.amplifiers,
            isr,
            clip: AfwClipParams {
                n_sigma: self.cfg.stats.clip_sigma,
                n_iter: self.cfg.stats.clip_iterations,
            },
            bias: bias.as_deref(),
            cov_lag: self.cfg.stats.covariance_max_lag,
        };
        ctx.progress().set_message("ISR and pair statistics");
        let mut src = IterSource::new(pairs.clone().into_iter().map(Ok));
        let opts = PassOptions {
            chunk_events: 1,
            max_events: None,
            on_truncation: OnTruncation::Fail,
        };
        let outcomes = run_pass(&mut src, &step, &opts, ctx.progress())?.output;
        for o in &outcomes {
            if let Err(e) = &o.result {
                ctx.warn(format!(
                    "pair {} + {} skipped: {e}",
                    o.pair.first.display(),
                    o.pair.second.display()
                ));
            }
        }
        if outcomes.iter().all(|o| o.result.is_err()) {
            return Err(RunError::failed(format!(
                "every pair failed; first: {}",
                outcomes
                    .first()
                    .and_then(|o| o.result.as_ref().err())
                    .cloned()
                    .unwrap_or_default()
            )));
        }
        ctx.progress().set_message("PTC fits");
        let eotest = match &self.eotest_results {
            Some(p) => match crate::io::eotest::read(p) {
                Ok(t) => Some(t),
                Err(e) => {
                    ctx.warn(format!("eotest results not used: {e}"));
                    None
                }
            },
            None => None,
        };
        let results: Vec<AmpResult> = report::fit_amps(&self.cfg, &outcomes, eotest.as_ref());
        report::write_outputs(ctx, &self.cfg, &outcomes, &results, &unused)
    }
}
