//! The run plan: averages of each run in one streamed pass, then the whole-run steps (mask,
//! quadrant alignment) on what the passes reduced, and the outputs (CBF, HDF5, PNG, geometry).

use std::path::{Path, PathBuf};

use caliper_core::cbf::{CbfData, CbfImage};
use caliper_core::error::RunError;
use caliper_core::instrument::{RunContext, RunPlan};
use caliper_core::pipeline::{OnTruncation, PassOptions, run_pass};
use caliper_core::plot::{Colormap, Figure, Limits, Resample};
use serde_json::json;

use crate::average::{Average, Averages};
use crate::config::CspadConfig;
use crate::geometry::{Geometry, write_versioned};
use crate::io::frames::FrameSource;
use crate::mask::{MaskParams, PanelLayout, counts, make_mask_for};
use crate::quadrants::{AlignParams, align_quadrants, corrected_geometry};

/// A configured CSPad run.
#[derive(Debug, Clone)]
pub struct CspadPlan {
    /// The config.
    pub config: CspadConfig,
    /// The folder relative paths in the config are resolved against.
    pub base: PathBuf,
}

/// The run number in a file name (`...r0054...`), if any.
pub fn run_number_from_name(p: &Path) -> Option<u32> {
    let name = p.file_name()?.to_string_lossy().to_string();
    let b = name.as_bytes();
    (0..b.len().saturating_sub(4)).find_map(|i| {
        if (b[i] == b'r' || b[i] == b'R')
            && b[i + 1..i + 5].iter().all(u8::is_ascii_digit)
            && (i + 5 >= b.len() || !b[i + 5].is_ascii_digit())
        {
            name[i + 1..i + 5].parse().ok()
        } else {
            None
        }
    })
}

fn expand_globs(base: &Path, patterns: &[String]) -> Result<Vec<PathBuf>, RunError> {
    let mut out = Vec::new();
    for pat in patterns {
        let full = if Path::new(pat).is_absolute() {
            PathBuf::from(pat)
        } else {
            base.join(pat)
        };
        let text = full.to_string_lossy().to_string();
        let paths =
            glob::glob(&text).map_err(|e| RunError::failed(format!("input glob '{pat}': {e}")))?;
        let mut found: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
        if found.is_empty() {
            return Err(RunError::failed(format!(
                "input glob '{pat}' (in {}) matches no file",
                base.display()
            )));
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

impl CspadPlan {
    fn geometry(&self) -> Result<Geometry, RunError> {
        if self.config.geometry.is_empty() {
            Ok(crate::simulate::nominal_geometry())
        } else {
            let p = self.base.join(&self.config.geometry);
            Ok(Geometry::read(&p)?)
        }
    }

    /// Average one run's inputs in one pass.
    pub fn average(
        &self,
        inputs: &[PathBuf],
        n_pixels: usize,
        ctx: &RunContext,
        what: &str,
    ) -> Result<Averages, RunError> {
        let mut src = FrameSource::open(inputs, &self.config.input.dataset, n_pixels)?;
        let total = src.total_frames() as u64;
        ctx.progress()
            .set_message(&format!("averaging {what} ({total} frames)"));
        let opts = PassOptions {
            chunk_events: self.config.input.frames_per_chunk,
            max_events: ctx.options().max_events,
            on_truncation: if ctx.options().allow_truncated {
                OnTruncation::KeepWithWarning
            } else {
                OnTruncation::Fail
            },
        };
        let out = run_pass(&mut src, &Average::new(n_pixels), &opts, ctx.progress())?;
        if out.output.frames == 0 {
            let names: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
            return Err(match out.truncated {
                Some(t) => RunError::Read(t),
                None => RunError::failed(format!("{what}: no frames in {}", names.join(", "))),
            });
        }
        if let Some(t) = &out.truncated {
            ctx.warn(format!(
                "{what}: input truncated, kept the {} frames before it: {t}",
                out.events
            ));
        }
        Ok(out.output)
    }

    fn write_averages(
        &self,
        a: &Averages,
        run: u32,
        geo: &Geometry,
        ctx: &RunContext,
    ) -> Result<serde_json::Value, RunError> {
        let exp = self.config.experiment.to_lowercase();
        let segs = geo.segments();
        let (rows, cols) = segs.first().map_or((185, 388), |(_, s)| s.shape());
        let shape = [segs.len(), rows, cols];
        let (w, h) = (cols, segs.len() * rows);
        let mut files = Vec::new();
        let mut products: Vec<(&str, &Vec<f64>, bool)> = vec![
            ("avg", &a.mean, false),
            ("stddev", &a.std, false),
            ("max", &a.max, a.integer),
        ];
        if self.config.average.min {
            products.push(("min", &a.min, a.integer));
        }
        let group = format!("/average/r{run:04}");
        for (name, v, is_int) in products {
            let data = if is_int || self.config.average.float_cbf == "int" {
                CbfData::I32(
                    v.iter()
                        .map(|x| x.round().clamp(i32::MIN as f64, i32::MAX as f64) as i32)
                        .collect(),
                )
            } else {
                CbfData::F64(v.clone())
            };
            let mut img = CbfImage::new(w, h, data);
            img.block_name = format!("{exp}_{name}-r{run:04}");
            img.header_lines = vec![
                format!(
                    "Detector: CSPad, {} sensors of {rows} x {cols} stacked",
                    segs.len()
                ),
                format!("Frames {}", a.frames),
                format!(
                    "Pixel_size {:.5e} m x {:.5e} m",
                    crate::geometry::CSPAD_PIXEL_UM * 1e-6,
                    crate::geometry::CSPAD_PIXEL_UM * 1e-6
                ),
                format!("Caliper_product {name}"),
            ];
            let file = format!("{exp}_{name}-r{run:04}.cbf");
            let path = ctx.output_path(&file);
            img.write(&path).map_err(|e| RunError::io(&path, e))?;
            files.push(file);
            ctx.h5()
                .write_array(&format!("{group}/{name}"), &shape, v)?;
        }
        ctx.h5().set_attr(
            &format!("{group}/avg"),
            "frames",
            caliper_core::h5::AttrValue::I64(a.frames as i64),
        )?;
        // Assembled PNGs.
        let idx = geo.image_index();
        for (name, v, label) in [
            ("avg", &a.mean, "mean [ADU]"),
            ("stddev", &a.std, "stddev [ADU]"),
            ("max", &a.max, "max [ADU]"),
        ] {
            let img = idx.assemble(v, f64::NAN);
            let mut fig = Figure::new(900, 860);
            fig.title(&format!(
                "{exp} run {run}: {name} of {} frames (assembled)",
                a.frames
            ));
            let p = fig.panel(0, 0);
            p.xlabel("column").ylabel("row");
            p.image(&img, idx.height, idx.width)
                .cmap(Colormap::Viridis)
                .limits(Limits::Percentile(1.0, 99.0))
                .resample(Resample::Max)
                .colorbar(label);
            let file = format!("{exp}_{name}-r{run:04}.png");
            let path = ctx.output_path(&file);
            fig.save_png(&path)
                .map_err(|e| RunError::failed(format!("{}: {e}", path.display())))?;
            files.push(file);
        }
        Ok(json!({"run": run, "frames": a.frames, "integer_frames": a.integer, "files": files}))
    }

    fn split_inputs(&self, inputs: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<PathBuf>), RunError> {
        let c = &self.config.input;
        let dark = if c.dark.is_empty() {
            inputs
                .iter()
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().contains(&c.dark_match))
                })
                .cloned()
                .collect()
        } else {
            expand_globs(&self.base, &c.dark)?
        };
        let bright = if c.bright.is_empty() {
            inputs
                .iter()
                .filter(|p| !dark.contains(p))
                .cloned()
                .collect()
        } else {
            expand_globs(&self.base, &c.bright)?
        };
        Ok((dark, bright))
    }
}

impl RunPlan for CspadPlan {
    fn resolved_config(&self) -> String {
        caliper_core::config::commented_toml(&self.config, "CSPad run (resolved)", "cspad")
    }

    fn run(&self, inputs: &[PathBuf], ctx: &RunContext) -> Result<(), RunError> {
        let c = &self.config;
        let geo = self.geometry()?;
        let n_pixels = geo.n_pixels();
        let n_sensors = geo.segments().len();
        ctx.summary("geometry", json!({"file": if c.geometry.is_empty() { "(built-in nominal CSPad)".to_string() } else { self.base.join(&c.geometry).display().to_string() }, "sensors": n_sensors, "pixels": n_pixels}));
        if c.mode == "average" {
            if inputs.is_empty() {
                return Err(RunError::failed(
                    "average mode needs the run's frame files (HDF5 or CBF) as inputs",
                ));
            }
            let run = if c.run >= 0 {
                c.run as u32
            } else {
                inputs
                    .first()
                    .and_then(|p| run_number_from_name(p))
                    .unwrap_or(0)
            };
            let a = self.average(inputs, n_pixels, ctx, &format!("run {run}"))?;
            let s = self.write_averages(&a, run, &geo, ctx)?;
            ctx.summary("frames", json!({ format!("r{run:04}"): a.frames }));
            ctx.summary("average", s);
            return Ok(());
        }
        let (dark, bright) = self.split_inputs(inputs)?;
        let need_dark = c.mode != "align";
        if need_dark && dark.is_empty() {
            return Err(RunError::failed(format!(
                "{} mode needs a dark run: set input.dark, or give inputs whose name contains '{}'",
                c.mode, c.input.dark_match
            )));
        }
        if bright.is_empty() {
            return Err(RunError::failed(format!(
                "{} mode needs a bright run: set input.bright or give non-dark inputs",
                c.mode
            )));
        }
        let run_of = |v: &[PathBuf]| v.first().and_then(|p| run_number_from_name(p)).unwrap_or(0);
        let mut frames = serde_json::Map::new();
        let dark_avg = if dark.is_empty() {
            None
        } else {
            let r = run_of(&dark);
            let a = self.average(&dark, n_pixels, ctx, &format!("dark run {r}"))?;
            frames.insert(format!("dark_r{r:04}"), json!(a.frames));
            ctx.summary("dark", self.write_averages(&a, r, &geo, ctx)?);
            Some(a)
        };
        let rb = run_of(&bright);
        let bright_avg = self.average(&bright, n_pixels, ctx, &format!("bright run {rb}"))?;
        frames.insert(format!("bright_r{rb:04}"), json!(bright_avg.frames));
        ctx.summary("bright", self.write_averages(&bright_avg, rb, &geo, ctx)?);
        ctx.summary("frames", serde_json::Value::Object(frames));

        let mut valid = vec![true; n_pixels];
        if c.mode == "mask" || c.mode == "calibrate" {
            let d = dark_avg
                .as_ref()
                .ok_or_else(|| RunError::failed("mask needs a dark run"))?;
            ctx.progress().set_message("mask");
            let p = MaskParams {
                avg_max: c.mask.avg_max,
                stddev_max: c.mask.stddev_max,
                maxproj_min: c.mask.maxproj_min,
                border: c.mask.border,
            };
            let seg = geo
                .segments()
                .first()
                .map(|(_, s)| *s)
                .unwrap_or(crate::geometry::Segment::Cspad2x1);
            let layout = PanelLayout::of(seg);
            if geo.segments().iter().any(|(_, s)| *s != seg) {
                return Err(RunError::failed(
                    "mask: the geometry mixes sensor types; one type is supported",
                ));
            }
            let m = make_mask_for(&d.mean, &d.std, &bright_avg.max, n_sensors, layout, &p);
            let flags = m.flags().to_vec();
            let good: Vec<u8> = flags.iter().map(|&f| u8::from(f == 0)).collect();
            for (v, &f) in valid.iter_mut().zip(&flags) {
                *v = f == 0;
            }
            let mut summary = counts(&m);
            let masked: Vec<usize> = (0..n_pixels).filter(|&i| flags[i] != 0).collect();
            if masked.len() <= 10_000 {
                summary["masked_pixels"] = json!(masked);
            }
            ctx.summary("mask", summary);
            ctx.h5()
                .write_array("/mask/good", &[n_sensors, layout.rows, layout.cols], &good)?;
            ctx.h5().write_array(
                "/mask/reasons",
                &[n_sensors, layout.rows, layout.cols],
                &flags,
            )?;
            ctx.h5().set_attr(
                "/mask/good",
                "convention",
                caliper_core::h5::AttrValue::String(
                    "1 = good (DIALS convention), 0 = masked".into(),
                ),
            )?;
            let exp = c.experiment.to_lowercase();
            let mut img = CbfImage::new(
                layout.cols,
                n_sensors * layout.rows,
                CbfData::I32(good.iter().map(|&g| g as i32).collect()),
            );
            img.block_name = format!("{exp}_mask");
            img.header_lines = vec!["Caliper_product mask (1 = good, 0 = masked)".into()];
            let path = ctx.output_path(&format!("{exp}_mask.cbf"));
            img.write(&path).map_err(|e| RunError::io(&path, e))?;
            let idx = geo.image_index();
            let asm = idx.assemble(
                &good.iter().map(|&g| 1.0 - g as f64).collect::<Vec<_>>(),
                f64::NAN,
            );
            let mut fig = Figure::new(900, 860);
            fig.title(&format!(
                "{exp} mask: {} of {} pixels masked",
                m.count_masked(),
                n_pixels
            ));
            fig.panel(0, 0)
                .xlabel("column")
                .ylabel("row")
                .image(&asm, idx.height, idx.width)
                .cmap(Colormap::Grey)
                .limits(Limits::Fixed(0.0, 1.0))
                .resample(Resample::Max)
                .colorbar("masked");
            let path = ctx.output_path(&format!("{exp}_mask.png"));
            fig.save_png(&path)
                .map_err(|e| RunError::failed(format!("{}: {e}", path.display())))?;
        }
        if c.mode == "align" || c.mode == "calibrate" {
            ctx.progress().set_message("quadrant alignment");
            let base = if c.align.image == "mean" {
                &bright_avg.mean
            } else {
                &bright_avg.max
            };
            let values: Vec<f64> = match (&dark_avg, c.align.subtract_dark) {
                (Some(d), true) => base.iter().zip(&d.mean).map(|(b, m)| b - m).collect(),
                _ => base.clone(),
            };
            let p = AlignParams {
                grid_radius: c.align.grid_radius as i32,
                multi_angle: c.align.multi_angle,
                pixel_stride: c.align.pixel_stride,
                trusted_min: c.align.trusted_min,
                mean_over_angles: c.align.combine_angles == "mean",
                key_sensors: c.align.key_sensors,
                beam_um: (c.align.beam_centre_um.len() == 2)
                    .then(|| (c.align.beam_centre_um[0], c.align.beam_centre_um[1])),
            };
            let res = align_quadrants(&geo, &values, &valid, &p);
            let avg_cc = res.iter().map(|r| r.cc).sum::<f64>() / res.len().max(1) as f64;
            ctx.summary("quadrants", json!({"results": res, "average_cc": avg_cc, "grid_radius": p.grid_radius, "multi_angle": p.multi_angle}));
            let mut t = caliper_core::h5::Table::new();
            t.push_i32("quadrant", res.iter().map(|r| r.quadrant as i32).collect());
            t.push_i32("offset_row_px", res.iter().map(|r| r.offset_px.0).collect());
            t.push_i32("offset_col_px", res.iter().map(|r| r.offset_px.1).collect());
            t.push_f64("cc", res.iter().map(|r| r.cc).collect());
            t.push_f64(
                "correction_x_um",
                res.iter().map(|r| r.correction_um.0).collect(),
            );
            t.push_f64(
                "correction_y_um",
                res.iter().map(|r| r.correction_um.1).collect(),
            );
            ctx.h5().write_table("/alignment/quadrants", &t)?;
            // The corrected geometry with the seed's history: 0-end.data.v0 (as given), .v1
            // (corrected), 0-end.data -> .v1.
            let gdir = ctx.output_path("geometry");
            std::fs::create_dir_all(&gdir).map_err(|e| RunError::io(&gdir, e))?;
            std::fs::write(gdir.join("0-end.data"), geo.to_text())
                .map_err(|e| RunError::io(&gdir, e))?;
            let mut corrected = corrected_geometry(&geo, &res);
            corrected.comments.push(format!(
                "# COMMENT:99 quadrant offsets from Caliper cspad align (average CC {avg_cc:.4})"
            ));
            write_versioned(&gdir, &corrected).map_err(|e| RunError::io(&gdir, e))?;
        }
        Ok(())
    }
}
