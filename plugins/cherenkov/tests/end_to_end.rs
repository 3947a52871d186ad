//! The instrument as the scheduler runs it: configs from `configs/cherenkov/`, a RunContext,
//! HDF5 output read back, summary keys, plots; and the toy simulator against its truth.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use caliper_cherenkov::Cherenkov;
use caliper_core::h5::H5Reader;
use caliper_core::instrument::{NoProgress, RunContext, RunOptions, SimulateRequest};
use caliper_core::testing::shared_data;
use caliper_core::{ConfigDoc, Instrument};
use common::{Csv, rel};

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/cherenkov")
}

fn run(
    config: &Path,
    overrides: &[&str],
    inputs: &[PathBuf],
    dir: &Path,
    allow_truncated: bool,
) -> (
    serde_json::Map<String, serde_json::Value>,
    H5Reader,
    Vec<String>,
) {
    let mut doc = ConfigDoc::from_file(config).unwrap();
    for o in overrides {
        doc.add_override(o).unwrap();
    }
    let plan = Cherenkov.configure(&doc).unwrap();
    let ctx = RunContext::new(
        "run",
        dir,
        RunOptions {
            allow_truncated,
            max_events: None,
        },
        Arc::new(NoProgress),
    );
    plan.run(inputs, &ctx).unwrap();
    let products = ctx.take_products();
    let h5path = dir.join("run.h5");
    products.h5.write(&h5path).unwrap();
    (
        products.summary,
        H5Reader::open(&h5path).unwrap(),
        products.warnings,
    )
}

/// Every config under configs/cherenkov parses, and so does every TOML snippet in the README.
#[test]
fn configs_and_readme_snippets_parse() {
    let n = caliper_core::testing::configure_config_dir(&Cherenkov, &configs_dir());
    assert!(n >= 2);
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let snippets = caliper_core::testing::configure_readme_snippets(&Cherenkov, &readme);
    assert!(snippets >= 1);
    // the printed default config parses back
    let d = Cherenkov.default_config();
    Cherenkov
        .configure(&ConfigDoc::from_str_named(&d, "default").unwrap())
        .unwrap();
}

/// configs/cherenkov/base.toml on gamma_test (EQUIVALENT focal length, truncated input kept):
/// the HDF5 parameter tables and the DL2 geometry agree with ctapipe's base reference
/// (Hillas intensity 1e-6 relative, alt/az 1e-6 deg), and the summary counts match.
#[test]
fn base_config_end_to_end_matches_ctapipe() {
    let Some(input) = shared_data("cherenkov/gamma_test.simtel.gz") else {
        return;
    };
    let Some(refdir) = shared_data("cherenkov/ref/gamma_test/base") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (summary, h5, warnings) = run(
        &configs_dir().join("base.toml"),
        &["focal_length_choice=\"EQUIVALENT\""],
        &[input],
        dir.path(),
        true,
    );
    assert_eq!(summary["events"], 9);
    assert_eq!(summary["images"], 42);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("truncated") && w.contains("byte 51793528")),
        "{warnings:?}"
    );
    let params = Csv::read(&refdir.join("dl1_parameters.csv"));
    let idx = params.index_by(&["event_id", "tel_id"]);
    let mut checked = 0;
    for ds in h5.datasets_in("/dl1/event/telescope/parameters").unwrap() {
        let path = format!("/dl1/event/telescope/parameters/{ds}");
        let ev = h5.read_column_f64(&path, "event_id").unwrap();
        let tel = h5.read_column_f64(&path, "tel_id").unwrap();
        let inten = h5.read_column_f64(&path, "hillas_intensity").unwrap();
        for k in 0..ev.len() {
            let r = idx[&vec![ev[k] as i64, tel[k] as i64]];
            let d = rel(inten[k], params.f64(r, "hillas_intensity"), 1e-9);
            assert!(
                d < 1e-6,
                "event {} tel {}: {} vs {}",
                ev[k],
                tel[k],
                inten[k],
                params.f64(r, "hillas_intensity")
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 42);
    let stereo = Csv::read(&refdir.join("stereo.csv"));
    let sidx = stereo.index_by(&["event_id"]);
    let g = "/dl2/event/subarray/geometry/HillasReconstructor";
    let ev = h5.read_column_f64(g, "event_id").unwrap();
    let alt = h5.read_column_f64(g, "HillasReconstructor_alt").unwrap();
    let az = h5.read_column_f64(g, "HillasReconstructor_az").unwrap();
    let mut valid = 0;
    for k in 0..ev.len() {
        let r = sidx[&vec![ev[k] as i64]];
        let ra = stereo.f64(r, "alt_deg");
        assert_eq!(alt[k].is_nan(), ra.is_nan());
        if !ra.is_nan() {
            assert!((alt[k] - ra).abs() < 1e-6 && (az[k] - stereo.f64(r, "az_deg")).abs() < 1e-6);
            valid += 1;
        }
    }
    assert_eq!(summary["stereo_valid_events"], valid);
    // The telescopes used, as ctapipe's boolean mask over the layout's tel_ids, and the layout's
    // string columns, against ctapipe's subarray table.
    let layout = "/configuration/instrument/subarray/layout";
    let tel_ids = h5.read_column_f64(layout, "tel_id").unwrap();
    let (n, used) = h5
        .read_column_array_f64(g, "HillasReconstructor_telescopes")
        .unwrap();
    assert_eq!(n, tel_ids.len());
    for k in 0..ev.len() {
        let r = sidx[&vec![ev[k] as i64]];
        let mut want: Vec<i64> = stereo
            .str(r, "tel_ids_used")
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        want.sort();
        let got: Vec<i64> = (0..n)
            .filter(|&j| used[k * n + j] == 1.0)
            .map(|j| tel_ids[j] as i64)
            .collect();
        assert_eq!(got, want, "event {}", ev[k]);
    }
    // tels_with_trigger: as many triggered telescopes as ctapipe counts, a superset of those used.
    let trig = "/dl1/event/subarray/trigger";
    let tev = h5.read_column_f64(trig, "event_id").unwrap();
    let (nt, mask) = h5.read_column_array_f64(trig, "tels_with_trigger").unwrap();
    assert_eq!(nt, tel_ids.len());
    for k in 0..tev.len() {
        let r = sidx[&vec![tev[k] as i64]];
        let row = &mask[k * nt..(k + 1) * nt];
        let count = row.iter().filter(|&&v| v == 1.0).count();
        assert_eq!(
            count as f64,
            stereo.f64(r, "n_tels_triggered"),
            "event {}",
            tev[k]
        );
        for id in stereo.str(r, "tel_ids_used").split_whitespace() {
            let j = tel_ids
                .iter()
                .position(|t| *t == id.parse::<f64>().unwrap())
                .unwrap();
            assert_eq!(row[j], 1.0, "event {} tel {id}", tev[k]);
        }
    }
    let sub = Csv::read(&refdir.join("subarray.csv"));
    let sidx = sub.index_by(&["tel_id"]);
    let desc = h5.read_column_strings(layout, "tel_description").unwrap();
    let cams = h5.read_column_strings(layout, "camera_name").unwrap();
    let optics = h5.read_column_strings(layout, "optics_name").unwrap();
    for (k, id) in tel_ids.iter().enumerate() {
        let r = sidx[&vec![*id as i64]];
        assert_eq!(desc[k], sub.str(r, "tel_type"));
        assert_eq!(cams[k], sub.str(r, "camera"));
        assert_eq!(optics[k], sub.str(r, "optics"));
    }
    for plot in ["camera_display.png", "theta2.png", "array_display.png"] {
        assert!(
            dir.path().join(plot).metadata().unwrap().len() > 1000,
            "{plot}"
        );
        // to look at them: CHERENKOV_PLOT_DIR=/some/folder
        if let Ok(keep) = std::env::var("CHERENKOV_PLOT_DIR") {
            std::fs::copy(dir.path().join(plot), Path::new(&keep).join(plot)).unwrap();
        }
    }
}

/// Without --allow-truncated the truncated file fails with the byte offset.
#[test]
fn truncated_input_fails_without_allow_truncated() {
    let Some(input) = shared_data("cherenkov/gamma_test.simtel.gz") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut doc = ConfigDoc::from_file(&configs_dir().join("default.toml")).unwrap();
    doc.add_override("focal_length_choice=\"EQUIVALENT\"")
        .unwrap();
    let plan = Cherenkov.configure(&doc).unwrap();
    let ctx = RunContext::new(
        "run",
        dir.path(),
        RunOptions::default(),
        Arc::new(NoProgress),
    );
    let err = plan.run(&[input], &ctx).unwrap_err().to_string();
    assert!(
        err.contains("byte 51793528") && err.contains("truncated"),
        "{err}"
    );
}

/// The EFFECTIVE default on a prod2 file (no effective focal length) is refused with advice.
#[test]
fn effective_focal_length_missing_is_explained() {
    let Some(input) = shared_data("cherenkov/gamma_test.simtel.gz") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let doc = ConfigDoc::from_file(&configs_dir().join("default.toml")).unwrap();
    let plan = Cherenkov.configure(&doc).unwrap();
    let ctx = RunContext::new(
        "run",
        dir.path(),
        RunOptions::default(),
        Arc::new(NoProgress),
    );
    let err = plan.run(&[input], &ctx).unwrap_err().to_string();
    assert!(err.contains("EQUIVALENT"), "{err}");
}

/// Toy simulator: the file reads back with every image; Hillas cog and orientation of bright
/// images (> 400 p.e.) agree with the toy ellipse: the cog scatters by about
/// length/√intensity ≈ 0.75 cm, so the median offset must be < 1 cm and the worst of ~100
/// < 4 cm (≈ 5σ); psi within 3° (Poisson noise and cleaning); stereo recovers the on-axis direction (median < 0.1°) and the
/// core (median < 10 m), and the run is identical for 1 and 2 threads.
#[test]
fn toy_simulation_recovers_truth() {
    let dir = tempfile::tempdir().unwrap();
    let req = SimulateRequest {
        output_dir: dir.path().to_path_buf(),
        seed: 3,
        size: 40,
    };
    let out = Cherenkov.simulate(&req).unwrap();
    let truth = &out.truth;
    let cfg = caliper_cherenkov::config::CherenkovConfig {
        focal_length_choice: caliper_cherenkov::geometry::FocalLengthChoice::Equivalent,
        ..Default::default()
    };
    let run1 = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| caliper_cherenkov::run_inputs(&cfg, &out.inputs, false, None).unwrap());
    let run2 = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
        .install(|| caliper_cherenkov::run_inputs(&cfg, &out.inputs, false, None).unwrap());
    assert_eq!(
        run1.events.len() as u64,
        truth["array_events"].as_u64().unwrap()
    );
    let n_img: usize = run1.events.iter().map(|e| e.tels.len()).sum();
    assert_eq!(n_img as u64, truth["images"].as_u64().unwrap());
    for (a, b) in run1.events.iter().zip(&run2.events) {
        for (x, y) in a.tels.iter().zip(&b.tels) {
            assert_eq!(
                x.params.hillas.intensity.to_bits(),
                y.params.hillas.intensity.to_bits()
            );
        }
    }
    let imgs = truth["image_truth"].as_array().unwrap();
    let (mut n_bright, mut worst_cog, mut worst_psi) = (0, 0.0f64, 0.0f64);
    let mut offsets = Vec::new();
    for t in imgs {
        let ev = t["event_id"].as_i64().unwrap();
        let tel = t["tel_id"].as_u64().unwrap() as u16;
        let r = run1
            .events
            .iter()
            .find(|e| e.event_id == ev)
            .unwrap()
            .tels
            .iter()
            .find(|x| x.tel_id == tel)
            .unwrap();
        let h = &r.params.cam_hillas;
        let (tx, ty) = (t["x"].as_f64().unwrap(), t["y"].as_f64().unwrap());
        if t["intensity"].as_f64().unwrap() < 400.0 || tx.hypot(ty) > 0.7 || !r.params.is_valid {
            continue;
        }
        n_bright += 1;
        worst_cog = worst_cog.max((h.x - tx).hypot(h.y - ty));
        offsets.push((h.x - tx).hypot(h.y - ty));
        let mut dpsi = (h.psi - t["psi"].as_f64().unwrap()).abs();
        dpsi = dpsi.min(std::f64::consts::PI - dpsi);
        worst_psi = worst_psi.max(dpsi.to_degrees());
    }
    eprintln!(
        "{n_bright} bright images: worst cog offset {worst_cog:.4} m, worst psi {worst_psi:.2} deg"
    );
    assert!(n_bright >= 10);
    offsets.sort_by(|a, b| a.total_cmp(b));
    assert!(
        offsets[offsets.len() / 2] < 0.01,
        "median cog offset {}",
        offsets[offsets.len() / 2]
    );
    assert!(worst_cog < 0.04, "{worst_cog}");
    assert!(worst_psi < 3.0, "{worst_psi}");
    let mut errs = caliper_cherenkov::output::angular_errors(&run1.events);
    errs.sort_by(|a, b| a.total_cmp(b));
    assert!(errs.len() >= 10, "{} stereo events", errs.len());
    let med = errs[errs.len() / 2];
    let mut core: Vec<f64> = run1
        .events
        .iter()
        .filter_map(|e| {
            e.stereo
                .as_ref()
                .map(|s| (s.core_x - e.true_core.0).hypot(s.core_y - e.true_core.1))
        })
        .collect();
    core.sort_by(|a, b| a.total_cmp(b));
    let medc = core[core.len() / 2];
    eprintln!(
        "stereo: {} events, median angular error {med:.4} deg, median core error {medc:.2} m",
        errs.len()
    );
    assert!(med < 0.1, "{med}");
    assert!(medc < 10.0, "{medc}");
}

/// The LTS timing option gives bit-identical results for 1 and 2 threads (its random starts
/// are seeded per image from the event and telescope, not drawn from a shared stream), and a
/// finite fit for every parameterised image of the toy showers.
#[test]
fn lts_timing_is_identical_for_1_and_2_threads() {
    let dir = tempfile::tempdir().unwrap();
    let req = SimulateRequest {
        output_dir: dir.path().to_path_buf(),
        seed: 5,
        size: 12,
    };
    let out = Cherenkov.simulate(&req).unwrap();
    let mut cfg = caliper_cherenkov::config::CherenkovConfig {
        focal_length_choice: caliper_cherenkov::geometry::FocalLengthChoice::Equivalent,
        ..Default::default()
    };
    cfg.timing.fit = caliper_cherenkov::timing::TimingFit::Lts;
    cfg.chunk_events = 2;
    let run = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
            .install(|| caliper_cherenkov::run_inputs(&cfg, &out.inputs, false, None).unwrap())
    };
    let (run1, run2) = (run(1), run(2));
    let mut n_fit = 0;
    assert_eq!(run1.events.len(), run2.events.len());
    for (a, b) in run1.events.iter().zip(&run2.events) {
        assert_eq!(a.tels.len(), b.tels.len());
        for (x, y) in a.tels.iter().zip(&b.tels) {
            for (u, v) in [
                (x.params.timing.slope, y.params.timing.slope),
                (x.params.timing.intercept, y.params.timing.intercept),
                (x.params.timing.deviation, y.params.timing.deviation),
                (x.params.cam_timing.slope, y.params.cam_timing.slope),
            ] {
                assert_eq!(u.to_bits(), v.to_bits());
            }
            if x.params.is_valid && x.params.morphology.n_pixels > 2 {
                assert!(x.params.timing.slope.is_finite());
                n_fit += 1;
            }
        }
    }
    assert!(n_fit > 10, "{n_fit} LTS fits");
}

/// On both shared files, the chain gives identical results with 1 and 2 threads: every
/// image's parameters, the stereo results and the display image (compared through their
/// full Debug text, which prints every float to round-trip precision). With one chunk of
/// all events (gamma_test has 9) the second thread only helps through the per-event
/// telescope parallelism; with chunks of 2 events both levels run. The chain as configured
/// (pixels below the cleaning thresholds left out) gives the same events and display as
/// with every pixel integrated, but for `image_sum_all`.
#[test]
fn shared_files_identical_for_1_and_2_threads() {
    for (file, fl) in [
        (
            "cherenkov/gamma_test.simtel.gz",
            caliper_cherenkov::geometry::FocalLengthChoice::Equivalent,
        ),
        (
            "cherenkov/gamma_20deg_0deg_run102___cta-prod4-sst-1m_desert-2150m-Paranal-sst-1m.simtel.zst",
            caliper_cherenkov::geometry::FocalLengthChoice::Effective,
        ),
    ] {
        let Some(input) = shared_data(file) else {
            return;
        };
        for chunk_events in [64, 2] {
            let mut cfg = caliper_cherenkov::config::CherenkovConfig {
                focal_length_choice: fl,
                chunk_events,
                ..Default::default()
            };
            let text = |threads: usize, cfg: &caliper_cherenkov::config::CherenkovConfig| {
                let out = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| {
                        caliper_cherenkov::run_inputs(cfg, std::slice::from_ref(&input), true, None)
                            .unwrap()
                    });
                let mut out = out;
                // the one parameter a screened calibration changes (NaN: a sum over pixels
                // it left out)
                for t in out.events.iter_mut().flat_map(|e| &mut e.tels) {
                    t.params.image_sum_all = f64::NAN;
                }
                let d = out.display.as_mut().unwrap();
                d.params.image_sum_all = f64::NAN;
                assert!(d.raw.is_none() && !d.image.is_empty());
                let d = out.display.as_ref().unwrap();
                (
                    out.events.len(),
                    format!("{:?}", out.events),
                    format!("{:?} {:?} {:?}", d.image, d.mask, d.params),
                )
            };
            let (one, two) = (text(1, &cfg), text(2, &cfg));
            assert!(one.0 > 5, "{file}: {} events", one.0);
            assert!(one.1 == two.1, "{file} chunk {chunk_events}: events differ");
            assert!(
                one.2 == two.2,
                "{file} chunk {chunk_events}: display differs"
            );
            // every pixel integrated: the same events, parameters and display (whose
            // image the screened run calibrates in full at the end of the pass)
            cfg.calibration.skip_pixels_below_cleaning = false;
            let all = text(2, &cfg);
            assert!(
                one.1 == all.1,
                "{file} chunk {chunk_events}: screening changed events"
            );
            assert!(
                one.2 == all.2,
                "{file} chunk {chunk_events}: screening changed the display"
            );
        }
    }
}
