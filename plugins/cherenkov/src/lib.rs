//! # caliper-cherenkov
//!
//! Imaging atmospheric Cherenkov telescopes, from sim_telarray files to stereo shower
//! geometry, reproducing ctapipe 0.32's numbers:
//!
//! - [`io`]: EventIO / sim_telarray reader (plain, gzip, zstd by magic bytes; streamed).
//! - [`geometry`]: camera geometry, telescope frame, neighbours and border pixels as ctapipe.
//! - [`calib`]: R0 → R1 → DL1 (pedestal, dc_to_pe, gain selection, five extractors with the
//!   integration correction, peak time, HV-disabled pixels); the NeighborPeakWindowSum peak
//!   search screens in float32 with a proven error bound and settles near-ties in ctapipe's
//!   float64 order (AVX2 build chosen at run time, bit-identical to the baseline build).
//! - [`cleaning`], [`hillas`], [`timing`], [`leakage`], [`concentration`], [`morphology`],
//!   [`statistics`], [`parameters`]: ctapipe's ImageProcessor (timing: deterministic least
//!   squares by default, ctapipe's least-trimmed squares as an option).
//! - [`stereo`]: ctapipe's HillasReconstructor.
//! - [`process`], [`output`]: the run (parallel pass, HDF5 in ctapipe's data model, plots).
//! - [`simulate`]: toy-model showers written as sim_telarray files.
//!
//! ```no_run
//! use caliper_cherenkov::io::simtel::SimtelReader;
//! let mut r = SimtelReader::open(std::path::Path::new("gamma.simtel.zst")).unwrap();
//! while let Some(ev) = r.next_event() {
//!     let ev = ev.unwrap();
//!     println!("event {} with {} telescopes", ev.event_id, ev.telescopes.len());
//! }
//! ```

pub mod calib;
#[cfg(target_arch = "x86_64")]
mod calib_avx2;
#[cfg(target_arch = "x86_64")]
mod calib_avx512;
pub mod cleaning;
pub mod concentration;
pub mod config;
pub mod geometry;
pub mod hillas;
pub mod io;
pub mod leakage;
pub mod morphology;
pub mod numpy;
pub mod output;
pub mod parameters;
pub mod process;
pub mod simulate;
pub mod statistics;
pub mod stereo;
pub mod subarray;
pub mod timing;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use caliper_core::config::{ConfigDoc, ConfigErrors, commented_toml};
use caliper_core::instrument::{RunContext, RunPlan, SimulateOutcome, SimulateRequest, TruthCheck};
use caliper_core::pipeline::{OnTruncation, PassOptions, run_pass};
use caliper_core::{BenchRecord, Instrument, Registry, RegistryError, RunError};

use crate::config::CherenkovConfig;
use crate::io::simtel::SimtelReader;
use crate::process::{Chain, EventResult, SimtelSource};
use crate::subarray::Subarray;

/// The instrument id.
pub const ID: &str = "cherenkov";

/// Register the `cherenkov` instrument.
pub fn register(registry: &mut Registry) -> Result<(), RegistryError> {
    registry.register(Cherenkov)
}

/// The Cherenkov-telescope instrument.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cherenkov;

/// A configured run.
#[derive(Debug)]
pub struct Plan {
    /// The config.
    pub config: CherenkovConfig,
}

/// Everything a run over several inputs produced (also used by tests and the benchmark).
#[derive(Debug, Default)]
pub struct RunOutput {
    /// Events of all inputs, in order.
    pub events: Vec<EventResult>,
    /// The subarray of the first input.
    pub subarray: Option<Subarray>,
    /// The brightest image.
    pub display: Option<process::DisplayImage>,
    /// Truncation warnings.
    pub warnings: Vec<String>,
}

/// Run the chain over inputs without a context (tests, benchmarks).
pub fn run_inputs(
    config: &CherenkovConfig,
    inputs: &[PathBuf],
    allow_truncated: bool,
    max_events: Option<u64>,
) -> Result<RunOutput, RunError> {
    let mut out = RunOutput::default();
    for input in inputs {
        let reader = SimtelReader::open(input)?;
        let sub = Subarray::new(reader.header().clone(), config)
            .map_err(|e| RunError::failed(format!("{}: {e}", input.display())))?;
        let chain = Chain::new(&sub, config);
        let opts = PassOptions {
            chunk_events: config.chunk_events,
            max_events,
            on_truncation: if allow_truncated {
                OnTruncation::KeepWithWarning
            } else {
                OnTruncation::Fail
            },
        };
        let mut src = SimtelSource(reader);
        let pass = run_pass(
            &mut src,
            &chain,
            &opts,
            &caliper_core::instrument::NoProgress,
        )?;
        if let Some(t) = pass.truncated {
            out.warnings
                .push(format!("{t} — kept the {} events before it", pass.events));
        }
        out.events.extend(pass.output.events);
        if let Some(d) = pass.output.display
            && out
                .display
                .as_ref()
                .is_none_or(|a| d.params.hillas.intensity > a.params.hillas.intensity)
        {
            out.display = Some(d);
        }
        if out.subarray.is_none() {
            out.subarray = Some(sub);
        }
    }
    Ok(out)
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

impl RunPlan for Plan {
    fn resolved_config(&self) -> String {
        commented_toml(&self.config, "resolved config", ID)
    }

    fn run(&self, inputs: &[PathBuf], ctx: &RunContext) -> Result<(), RunError> {
        let opts = ctx.options();
        let mut all = RunOutput::default();
        for input in inputs {
            ctx.progress()
                .set_message(&format!("reading {}", input.display()));
            let reader = SimtelReader::open(input)?;
            let sub = Subarray::new(reader.header().clone(), &self.config)
                .map_err(|e| RunError::failed(format!("{}: {e}", input.display())))?;
            let chain = Chain::new(&sub, &self.config);
            let popts = PassOptions {
                chunk_events: self.config.chunk_events,
                max_events: opts.max_events,
                on_truncation: if opts.allow_truncated {
                    OnTruncation::KeepWithWarning
                } else {
                    OnTruncation::Fail
                },
            };
            let mut src = SimtelSource(reader);
            let pass = run_pass(&mut src, &chain, &popts, ctx.progress())?;
            if let Some(t) = pass.truncated {
                ctx.warn(format!("{t} — kept the {} events before it", pass.events));
            }
            all.events.extend(pass.output.events);
            if let Some(d) = pass.output.display
                && all
                    .display
                    .as_ref()
                    .is_none_or(|a| d.params.hillas.intensity > a.params.hillas.intensity)
            {
                all.display = Some(d);
            }
            if all.subarray.is_none() {
                output::write_instrument(ctx, &sub)?;
                all.subarray = Some(sub);
            }
        }
        let Some(sub) = all.subarray.as_ref() else {
            return Err(RunError::failed("no inputs"));
        };
        output::write_events(ctx, sub, &all.events)?;
        let images: usize = all.events.iter().map(|e| e.tels.len()).sum();
        let param: usize = all
            .events
            .iter()
            .flat_map(|e| &e.tels)
            .filter(|t| t.params.is_valid)
            .count();
        let stereo = all.events.iter().filter(|e| e.stereo.is_some()).count();
        let mut errs = output::angular_errors(&all.events);
        let med = median(&mut errs.clone());
        errs.sort_by(|a, b| a.total_cmp(b));
        let c68 = if errs.is_empty() {
            f64::NAN
        } else {
            errs[((0.68 * errs.len() as f64).ceil() as usize).clamp(1, errs.len()) - 1]
        };
        ctx.summary("events", all.events.len());
        ctx.summary("images", images);
        ctx.summary("parameterised_images", param);
        ctx.summary("stereo_valid_events", stereo);
        ctx.summary(
            "median_angular_error_deg",
            if med.is_finite() {
                serde_json::json!(med)
            } else {
                serde_json::Value::Null
            },
        );
        ctx.summary(
            "angular_error_68_deg",
            if c68.is_finite() {
                serde_json::json!(c68)
            } else {
                serde_json::Value::Null
            },
        );
        let mut core_err: Vec<f64> = all
            .events
            .iter()
            .filter_map(|e| {
                e.stereo
                    .as_ref()
                    .map(|s| (s.core_x - e.true_core.0).hypot(s.core_y - e.true_core.1))
            })
            .filter(|v| v.is_finite())
            .collect();
        let mc = median(&mut core_err);
        ctx.summary(
            "median_core_error_m",
            if mc.is_finite() {
                serde_json::json!(mc)
            } else {
                serde_json::Value::Null
            },
        );
        let mean_int: Vec<f64> = all
            .events
            .iter()
            .flat_map(|e| &e.tels)
            .filter(|t| t.params.is_valid)
            .map(|t| t.params.hillas.intensity)
            .collect();
        ctx.summary(
            "median_hillas_intensity_pe",
            if mean_int.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::json!(median(&mut mean_int.clone()))
            },
        );
        if self.config.output.plots {
            if let Some(d) = &all.display {
                output::plot_camera(ctx, sub, d)?;
            }
            output::plot_theta2(ctx, &errs)?;
            if let Some(ev) = all
                .events
                .iter()
                .filter(|e| e.stereo.is_some())
                .max_by_key(|e| e.stereo.as_ref().map(|s| s.telescopes.len()).unwrap_or(0))
            {
                output::plot_array(ctx, sub, ev)?;
            }
        }
        Ok(())
    }
}

impl Instrument for Cherenkov {
    fn id(&self) -> &str {
        ID
    }
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }
    fn description(&self) -> &str {
        "Cherenkov telescopes: sim_telarray → DL1 images, Hillas parameters and stereo geometry (ctapipe-compatible)"
    }
    fn default_config(&self) -> String {
        commented_toml(
            &CherenkovConfig::default(),
            "Cherenkov telescopes: ctapipe 0.32 component defaults.",
            ID,
        )
    }
    fn configure(&self, config: &ConfigDoc) -> Result<Box<dyn RunPlan>, ConfigErrors> {
        Ok(Box::new(Plan {
            config: config.parse()?,
        }))
    }
    fn simulate(&self, request: &SimulateRequest) -> Result<SimulateOutcome, RunError> {
        simulate::simulate(request)
    }
    fn check_truth(
        &self,
        summary: &serde_json::Value,
        truth: &serde_json::Value,
    ) -> Vec<TruthCheck> {
        simulate::check_truth(summary, truth)
    }
    fn demo_size(&self) -> usize {
        200
    }
    fn bench(&self, scratch: &Path) -> Result<Vec<BenchRecord>, RunError> {
        simulate::bench(scratch)
    }
}

/// Shared handle for tests.
pub fn instrument() -> Arc<dyn Instrument> {
    Arc::new(Cherenkov)
}
