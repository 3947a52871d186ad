//! End-to-end runs of the plugin on simulated data with known truth, error handling, and the
//! shipped configs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use caliper_core::Instrument;
use caliper_core::config::ConfigDoc;
use caliper_core::h5::{H5Reader, H5Writer};
use caliper_core::instrument::{NoProgress, RunContext, RunOptions};
use caliper_femtomax::Femtomax;
use caliper_femtomax::simulate::{self, BalorSim, ZylaScan};

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/femtomax")
}

fn plan(config: &str, overrides: &[String]) -> Box<dyn caliper_core::RunPlan> {
    let mut doc = ConfigDoc::from_file(&configs().join(config)).unwrap();
    for o in overrides {
        doc.add_override(o).unwrap();
    }
    Femtomax.configure(&doc).unwrap()
}

struct Ran {
    summary: serde_json::Value,
    h5: PathBuf,
    dir: PathBuf,
    warnings: Vec<String>,
}

fn run(
    config: &str,
    overrides: &[String],
    inputs: &[PathBuf],
    out: &Path,
) -> Result<Ran, caliper_core::RunError> {
    run_with(config, overrides, inputs, out, RunOptions::default())
}

fn run_with(
    config: &str,
    overrides: &[String],
    inputs: &[PathBuf],
    out: &Path,
    options: RunOptions,
) -> Result<Ran, caliper_core::RunError> {
    std::fs::create_dir_all(out).unwrap();
    let p = plan(config, overrides);
    let ctx = RunContext::new("run", out, options, Arc::new(NoProgress));
    p.run(inputs, &ctx)?;
    let products = ctx.take_products();
    let h5 = out.join("run.h5");
    products.h5.write(&h5).unwrap();
    Ok(Ran {
        summary: serde_json::Value::Object(products.summary),
        h5,
        dir: out.into(),
        warnings: products.warnings,
    })
}

#[test]
fn balor_photons_found_with_truth_positions_and_energies() {
    let dir = tempfile::tempdir().unwrap();
    let sim = BalorSim {
        frames: 10,
        noise_frames: 4,
        ..BalorSim::default()
    };
    let (file, truth) = simulate::simulate_balor(dir.path(), 11, &sim, "balor_scan.h5").unwrap();
    let r = run(
        "balor_single_photon.toml",
        &[],
        &[file],
        &dir.path().join("out"),
    )
    .unwrap();
    let list = H5Reader::open(&r.dir.join("balor_scan-photons.h5")).unwrap();
    let (fr, y, x, e) = (
        list.read_column_f64("/photons", "frame").unwrap(),
        list.read_column_f64("/photons", "y").unwrap(),
        list.read_column_f64("/photons", "x").unwrap(),
        list.read_column_f64("/photons", "energy").unwrap(),
    );
    let tl = truth["photon_list"].as_array().unwrap();
    // Match every true photon to the nearest found one in its frame (within 1 px).
    let (mut matched, mut sq) = (0usize, 0.0f64);
    let mut worst = 0.0f64;
    for t in tl {
        let (tf, ty, tx) = (
            t[0].as_f64().unwrap(),
            t[1].as_f64().unwrap(),
            t[2].as_f64().unwrap(),
        );
        let best = (0..fr.len())
            .filter(|&k| fr[k] == tf)
            .map(|k| ((y[k] - ty).powi(2) + (x[k] - tx).powi(2)).sqrt())
            .fold(f64::INFINITY, f64::min);
        if best < 1.0 {
            matched += 1;
            sq += best * best;
            worst = worst.max(best);
        }
    }
    let n = tl.len();
    let rms = (sq / matched as f64).sqrt();
    eprintln!(
        "balor: {matched}/{n} photons found, {} reported, cog rms {rms:.4} px, worst {worst:.3} px",
        fr.len()
    );
    // >= 99 % of the (non-overlapping) photons found; every report is a true photon.
    assert!(matched as f64 >= 0.99 * n as f64, "{matched}/{n}");
    assert_eq!(fr.len(), matched, "spurious photons reported");
    // Centre-of-gravity error below 0.1 px (rms; the worst single one is printed).
    assert!(rms < 0.1, "cog rms {rms}");
    // Noise-only frames (with hot pixels) give no photon.
    assert!(
        fr.iter().all(|&f| f < sim.frames as f64),
        "photon in a noise-only frame"
    );
    // Energy peak at the simulated mean (the histogram's 10-ADU bins; 3 % allows the noise).
    let peak = r.summary["photons"]["energy_peak"].as_f64().unwrap();
    let mean_true = truth["mean_energy"].as_f64().unwrap();
    let mean_found = e.iter().sum::<f64>() / e.len() as f64;
    eprintln!("energy peak {peak}, found mean {mean_found:.1}, simulated mean {mean_true:.1}");
    assert!(
        (peak - mean_true).abs() < 0.03 * mean_true,
        "peak {peak} vs {mean_true}"
    );
    assert!(
        (mean_found - mean_true).abs() < 0.01 * mean_true,
        "mean {mean_found} vs {mean_true}"
    );
    assert_eq!(r.summary["photons"]["pileup_count"], 0);
    assert_eq!(r.summary["photons"]["dense_frames"], 0);
    for png in ["energy_histogram.png", "clean_image.png", "accumulated.png"] {
        assert!(r.dir.join(png).exists(), "{png}");
    }
    // The truth check of the demo passes on this run.
    assert!(
        Femtomax
            .check_truth(&r.summary, &truth)
            .iter()
            .all(|c| c.pass),
        "{:?}",
        Femtomax.check_truth(&r.summary, &truth)
    );
}

#[test]
fn dense_balor_frames_fall_back_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let sim = BalorSim {
        shape: (64, 64),
        frames: 2,
        noise_frames: 0,
        photons_per_frame: 60,
        ..BalorSim::default()
    };
    let (file, _) = simulate::simulate_balor(dir.path(), 3, &sim, "dense.h5").unwrap();
    let r = run(
        "balor_single_photon.toml",
        &[
            "photon.roi=[0, 64, 0, 64]".into(),
            "photon.max_hit_fraction=0.01".into(),
        ],
        &[file],
        &dir.path().join("out"),
    )
    .unwrap();
    assert_eq!(r.summary["photons"]["dense_frames"], 2);
    assert!(
        r.warnings.iter().any(|w| w.contains("Zyla processing")),
        "{:?}",
        r.warnings
    );
}

/// The Zyla processing written out independently: max(v - 100, 0), below 12 -> 0, in f64.
fn zyla_processed(v: f32) -> f64 {
    let d = (v as f64 - 100.0).max(0.0);
    if d < 12.0 { 0.0 } else { d }
}

#[test]
fn zyla_rois_and_accumulation_are_exact_and_find_the_bragg_peak() {
    let dir = tempfile::tempdir().unwrap();
    let scan = ZylaScan {
        steps: 11,
        frames_per_step: 3,
        amplitude: 60.0,
        ..ZylaScan::default()
    };
    let (file, truth) = simulate::simulate_zyla(dir.path(), 5, &scan, "zyla.h5").unwrap();
    let r = run(
        "zyla_bragg_rois.toml",
        &[],
        std::slice::from_ref(&file),
        &dir.path().join("out"),
    )
    .unwrap();
    // Independent float64 computation from the file.
    let stack = H5Reader::open(&file)
        .unwrap()
        .read_f32("/entry/instrument/zyla/data")
        .unwrap();
    let (h, w) = scan.shape;
    let n = scan.steps * scan.frames_per_step;
    let mut sum = vec![0.0f64; h * w];
    let mut means = Vec::new();
    for f in 0..n {
        let fr = &stack[f * h * w..(f + 1) * h * w];
        for (s, &v) in sum.iter_mut().zip(fr) {
            *s += zyla_processed(v);
        }
        let mut t = 0.0;
        for row in 110..131 {
            for col in 130..151 {
                t += zyla_processed(fr[row * w + col]);
            }
        }
        means.push(t / (21.0 * 21.0));
    }
    let out = H5Reader::open(&r.h5).unwrap();
    assert_eq!(
        out.read_f64("/accumulation/image").unwrap(),
        sum,
        "accumulation differs from the float64 sum"
    );
    let got = out
        .read_column_f64("/roi/frame_means", "peak_mean")
        .unwrap();
    for (a, b) in got.iter().zip(&means) {
        // Same values, summed row by row: equal to the last bit or within 1e-12 relative.
        assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
    }
    assert_eq!(r.summary["accumulation"]["frames"], n as u64);
    let best = r.summary["rois"]["peak"]["max_step_axis"].as_f64().unwrap();
    assert_eq!(best, truth["motor_peak_nearest_step"].as_f64().unwrap());
    assert_eq!(
        out.read_column_f64("/roi/step_means", "frames").unwrap(),
        vec![3.0; scan.steps]
    );
    assert!(r.dir.join("roi_means.png").exists());
}

#[test]
fn accumulation_runs_across_scans_and_resets_on_shape_change() {
    let dir = tempfile::tempdir().unwrap();
    let small = ZylaScan {
        shape: (32, 40),
        steps: 2,
        frames_per_step: 2,
        peak: (16.0, 20.0),
        ..ZylaScan::default()
    };
    let big = ZylaScan {
        shape: (48, 40),
        ..small
    };
    let (a, _) = simulate::simulate_zyla(dir.path(), 1, &small, "a.h5").unwrap();
    let (b, _) = simulate::simulate_zyla(dir.path(), 2, &small, "b.h5").unwrap();
    let (c, _) = simulate::simulate_zyla(dir.path(), 3, &big, "c.h5").unwrap();
    let (d, _) = simulate::simulate_zyla(dir.path(), 4, &big, "d.h5").unwrap();
    let no_rois = ["rois=[]".to_string(), "axis.source=frame".to_string()];
    let r = run(
        "zyla_bragg_rois.toml",
        &no_rois,
        &[a.clone(), b.clone()],
        &dir.path().join("o1"),
    )
    .unwrap();
    assert_eq!(r.summary["accumulation"]["frames"], 8, "across two scans");
    assert_eq!(r.summary["accumulation"]["resets"], 0);
    let r = run(
        "zyla_bragg_rois.toml",
        &no_rois,
        &[a.clone(), c, d],
        &dir.path().join("o2"),
    )
    .unwrap();
    assert_eq!(
        r.summary["accumulation"]["frames"], 8,
        "reset at the shape change, then two scans"
    );
    assert_eq!(r.summary["accumulation"]["resets"], 1);
    assert_eq!(
        r.summary["accumulation"]["shape"],
        serde_json::json!([48, 40])
    );
    let mut per_scan = no_rois.to_vec();
    per_scan.push("accumulate.across_scans=false".into());
    let r = run(
        "zyla_bragg_rois.toml",
        &per_scan,
        &[a.clone(), b],
        &dir.path().join("o3"),
    )
    .unwrap();
    assert_eq!(r.summary["accumulation"]["frames"], 4);
    let mut range = no_rois.to_vec();
    range.extend([
        "accumulate.start_frame=1".to_string(),
        "accumulate.stop_frame=3".to_string(),
    ]);
    let r = run("zyla_bragg_rois.toml", &range, &[a], &dir.path().join("o4")).unwrap();
    assert_eq!(r.summary["accumulation"]["frames"], 2);
    assert_eq!(r.summary["accumulation"]["first_frame"], 1);
}

#[test]
fn pilatus_accumulation_integrates_to_the_ceo2_rings() {
    let dir = tempfile::tempdir().unwrap();
    let (files, truth) = simulate::simulate_pilatus(dir.path(), 9, 3).unwrap();
    let r = run(
        "pilatus_waxs_accumulate.toml",
        &[],
        &files,
        &dir.path().join("out"),
    )
    .unwrap();
    assert_eq!(r.summary["accumulation"]["frames"], 3);
    let peak = r.summary["integration"]["strongest_peak"].as_f64().unwrap();
    let ring = truth["strongest_ring_q_nm"].as_f64().unwrap();
    // One bin is ~0.08 nm^-1: the strongest bin must be the (111) ring's.
    assert!((peak - ring).abs() < 0.15, "peak {peak} vs ring {ring}");
    let back = caliper_femtomax::io::poni::PoniFile::read(&r.dir.join("run.poni")).unwrap();
    assert_eq!(back.dist, 0.208651380603);
    let xy = std::fs::read_to_string(r.dir.join("run.xy")).unwrap();
    assert_eq!(xy.lines().filter(|l| !l.starts_with('#')).count(), 1000);
    for png in ["accumulated.png", "pattern.png"] {
        assert!(r.dir.join(png).exists(), "{png}");
    }
}

#[test]
fn corrupt_cbf_wrong_shape_and_bad_poni_name_file_and_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = simulate::simulate_pilatus(dir.path(), 2, 2).unwrap();
    // Flip one byte of the compressed data of the second frame: the MD5 check fails.
    let mut bytes = std::fs::read(&files[1]).unwrap();
    let magic = bytes
        .windows(4)
        .position(|w| w == [0x0C, 0x1A, 0x04, 0xD5])
        .unwrap();
    bytes[magic + 100] ^= 0x55;
    let bad = dir.path().join("bad_00001.cbf");
    std::fs::write(&bad, &bytes).unwrap();
    let e = run(
        "pilatus_waxs_accumulate.toml",
        &[],
        &[files[0].clone(), bad.clone()],
        &dir.path().join("o1"),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("bad_00001.cbf") && e.contains("event 1"), "{e}");
    // A short binary section.
    let short = dir.path().join("short_00001.cbf");
    std::fs::write(&short, &std::fs::read(&files[1]).unwrap()[..magic + 5000]).unwrap();
    let e = run(
        "pilatus_waxs_accumulate.toml",
        &[],
        &[files[0].clone(), short],
        &dir.path().join("o2"),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("short_00001.cbf") && e.contains("event 1"),
        "{e}"
    );
    // A frame of the wrong shape for the Pilatus 1M geometry.
    let img = caliper_core::cbf::CbfImage::new(10, 8, caliper_core::cbf::CbfData::I32(vec![0; 80]));
    let odd = dir.path().join("odd.cbf");
    img.write(&odd).unwrap();
    let e = run(
        "pilatus_waxs_accumulate.toml",
        &[],
        &[files[0].clone(), odd],
        &dir.path().join("o3"),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("odd.cbf") && e.contains("event 1") && e.contains("8x10"),
        "{e}"
    );
    // A PONI without Distance.
    let poni = std::fs::read_to_string(configs().join("pilatus1m_ceo2.poni"))
        .unwrap()
        .replace("Distance: 0.208651380603\n", "");
    let bad_poni = dir.path().join("nodist.poni");
    std::fs::write(&bad_poni, poni).unwrap();
    let e = run(
        "pilatus_waxs_accumulate.toml",
        &[format!("integration.poni={}", bad_poni.display())],
        &files,
        &dir.path().join("o4"),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("nodist.poni") && e.contains("distance"), "{e}");
    // An HDF5 stack of the wrong shape names the file and frame 0.
    let mut w = H5Writer::new();
    w.write_array("/entry/instrument/pilatus/data", &[2, 4, 4], &[0i32; 32])
        .unwrap();
    let h5 = dir.path().join("small.h5");
    w.write(&h5).unwrap();
    let e = run(
        "pilatus_waxs_accumulate.toml",
        &[],
        &[h5],
        &dir.path().join("o5"),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("small.h5") && e.contains("event 0"), "{e}");
}

/// A Zyla stack cut short in the middle of a frame (stored contiguously, as h5py writes it) is
/// a truncation at that frame; with --allow-truncated the frames before it are accumulated and a
/// warning says where the input stopped. A stack whose compressed data are damaged (full
/// length) is corrupt input, which --allow-truncated does not excuse.
#[test]
fn cut_or_damaged_hdf5_stack() {
    let dir = tempfile::tempdir().unwrap();
    let scan = ZylaScan {
        steps: 4,
        frames_per_step: 2,
        ..ZylaScan::default()
    };
    let (file, _) = simulate::simulate_zyla(dir.path(), 7, &scan, "zyla.h5").unwrap();
    let ds = "/entry/instrument/zyla/data";
    let r = H5Reader::open(&file).unwrap();
    let (stack, shape) = (r.read_f32(ds).unwrap(), r.shape(ds).unwrap());
    let frame_bytes = shape[1] * shape[2] * 4;
    let motor = r.read_f64("/entry/measurement/motor").unwrap();
    let mut w = H5Writer::new();
    w.write_array_contiguous(ds, &shape, &stack).unwrap();
    // (the motor positions in a group that H5Writer lays out before the stack, so that the cut
    // leaves them whole)
    w.write_array("/a/motor", &[motor.len()], &motor).unwrap();
    let contiguous = dir.path().join("contiguous.h5");
    w.write(&contiguous).unwrap();
    let bytes = std::fs::read(&contiguous).unwrap();
    // (the data end the file, after the metadata)
    let data_at = bytes.len() - shape[0] * frame_bytes;
    let cut = dir.path().join("cut.h5");
    std::fs::write(&cut, &bytes[..data_at + 5 * frame_bytes + frame_bytes / 2]).unwrap();
    let allow = RunOptions {
        allow_truncated: true,
        max_events: None,
    };
    let motor_at = ["axis.dataset=/a/motor".to_string()];
    let e = run(
        "zyla_bragg_rois.toml",
        &motor_at,
        std::slice::from_ref(&cut),
        &dir.path().join("o1"),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("cut.h5: event 5: truncated: HDF5 file cut short: dataset"),
        "{e}"
    );
    let r = run_with(
        "zyla_bragg_rois.toml",
        &motor_at,
        std::slice::from_ref(&cut),
        &dir.path().join("o2"),
        allow.clone(),
    )
    .unwrap();
    assert_eq!(r.summary["accumulation"]["frames"], 5);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("kept the 5 frames before it")),
        "{:?}",
        r.warnings
    );
    // the simulator's own file is chunked and deflate-compressed: damage inside it
    let mut damaged = std::fs::read(&file).unwrap();
    let mid = damaged.len() / 2;
    damaged[mid..mid + 64].fill(0xFF);
    let bad = dir.path().join("damaged.h5");
    std::fs::write(&bad, &damaged).unwrap();
    for (k, options) in [RunOptions::default(), allow].into_iter().enumerate() {
        let out = dir.path().join(format!("o{}", k + 3));
        let e = run_with(
            "zyla_bragg_rois.toml",
            &[],
            std::slice::from_ref(&bad),
            &out,
            options,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("damaged.h5: event ") && e.contains(": corrupt: dataset"),
            "{e}"
        );
    }
}

#[test]
fn results_are_identical_for_one_and_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    let sim = BalorSim {
        shape: (96, 96),
        frames: 12,
        noise_frames: 2,
        photons_per_frame: 10,
        ..BalorSim::default()
    };
    let (file, _) = simulate::simulate_balor(dir.path(), 21, &sim, "b.h5").unwrap();
    let go = |threads: usize, sub: &str| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let out = dir.path().join(sub);
        pool.install(|| {
            run(
                "balor_single_photon.toml",
                &["photon.roi=[0, 96, 0, 96]".into()],
                std::slice::from_ref(&file),
                &out,
            )
            .unwrap()
        })
    };
    let (a, b) = (go(1, "t1"), go(2, "t2"));
    assert_eq!(a.summary, b.summary);
    assert_eq!(
        std::fs::read(a.dir.join("b-photons.h5")).unwrap(),
        std::fs::read(b.dir.join("b-photons.h5")).unwrap()
    );
}

#[test]
fn shipped_configs_and_readme_snippets_parse() {
    let n = caliper_core::testing::configure_config_dir(&Femtomax, &configs());
    assert!(n >= 3);
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let snippets = caliper_core::testing::configure_readme_snippets(&Femtomax, &readme);
    assert!(snippets >= 1);
    // The default config round-trips through its commented TOML.
    let doc = ConfigDoc::from_str_named(&Femtomax.default_config(), "default").unwrap();
    let cfg: caliper_femtomax::config::FemtomaxConfig = doc.parse().unwrap();
    assert_eq!(cfg, caliper_femtomax::config::FemtomaxConfig::default());
}

#[test]
fn csv_motor_axis_per_step_and_bad_csv_line() {
    let dir = tempfile::tempdir().unwrap();
    let scan = ZylaScan {
        shape: (40, 40),
        steps: 4,
        frames_per_step: 2,
        peak: (20.0, 20.0),
        ..ZylaScan::default()
    };
    let (file, _) = simulate::simulate_zyla(dir.path(), 8, &scan, "z.h5").unwrap();
    // One position per step: repeated over the step's two frames.
    let csv = dir.path().join("motor.csv");
    std::fs::write(&csv, "time,delay\n0,10.0\n1,20.0\n2,30.0\n3,40.0\n").unwrap();
    let ov = |c: &Path| {
        vec![
            "axis.source=csv".to_string(),
            format!("axis.csv={}", c.display()),
            "axis.column=delay".into(),
            "axis.name=delay".into(),
            "rois=[{name = \"all\", row_start = 0, row_stop = 40, col_start = 0, col_stop = 40}]"
                .into(),
        ]
    };
    let r = run(
        "zyla_bragg_rois.toml",
        &ov(&csv),
        std::slice::from_ref(&file),
        &dir.path().join("o"),
    )
    .unwrap();
    let out = H5Reader::open(&r.h5).unwrap();
    assert_eq!(
        out.read_column_f64("/roi/frame_means", "delay").unwrap(),
        vec![10.0, 10.0, 20.0, 20.0, 30.0, 30.0, 40.0, 40.0]
    );
    assert_eq!(
        out.read_column_f64("/roi/step_means", "frames").unwrap(),
        vec![2.0; 4]
    );
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "time,delay\n0,10.0\n1,x\n2,30.0\n3,40.0\n").unwrap();
    let e = run(
        "zyla_bragg_rois.toml",
        &ov(&bad),
        &[file],
        &dir.path().join("o2"),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("bad.csv: line 3"), "{e}");
}

#[test]
fn demo_simulation_runs_and_passes_its_truth_check() {
    let dir = tempfile::tempdir().unwrap();
    let req = caliper_core::SimulateRequest {
        output_dir: dir.path().into(),
        seed: 4,
        size: 4,
    };
    let sim = Femtomax.simulate(&req).unwrap();
    let mut doc = ConfigDoc::from_str_named(&Femtomax.default_config(), "default").unwrap();
    for o in &sim.overrides {
        doc.add_override(o).unwrap();
    }
    let p = Femtomax.configure(&doc).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let ctx = RunContext::new("demo", &out, RunOptions::default(), Arc::new(NoProgress));
    p.run(&sim.inputs, &ctx).unwrap();
    let summary = serde_json::Value::Object(ctx.take_products().summary);
    let checks = Femtomax.check_truth(&summary, &sim.truth);
    assert_eq!(checks.len(), 3);
    assert!(checks.iter().all(|c| c.pass), "{checks:?}");
    // The other cameras' files are written beside it.
    assert!(dir.path().join("zyla/zyla_scan_0001.h5").exists());
    assert!(dir.path().join("pilatus/pilatus_00003.cbf").exists());
}
