//! End to end on simulated runs: averages, mask, quadrant alignment, outputs; bad input.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use caliper_core::config::ConfigDoc;
use caliper_core::instrument::{Instrument, NoProgress, RunContext, RunOptions};
use caliper_cspad::Cspad;
use caliper_cspad::simulate::{SimSpec, write_runs};

fn run(
    dir: &Path,
    inputs: &[PathBuf],
    config: &str,
    options: RunOptions,
) -> Result<serde_json::Value, caliper_core::RunError> {
    let doc = ConfigDoc::from_str_named(config, "test.toml").unwrap();
    let plan = Cspad.configure(&doc).unwrap();
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let ctx = RunContext::new("t", &out, options, Arc::new(NoProgress));
    plan.run(inputs, &ctx)?;
    let p = ctx.take_products();
    Ok(serde_json::Value::Object(p.summary))
}

#[test]
fn simulated_calibration_recovers_mask_and_quadrant_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = SimSpec::with_frames(10);
    spec.bright_frames = 4;
    let (inputs, truth) = write_runs(dir.path(), 11, &spec).unwrap();
    let geo = dir.path().join("geometry/0-end.data");
    let cfg = format!(
        "instrument = \"cspad\"\nmode = \"calibrate\"\nexperiment = \"cxisim\"\ngeometry = \"{}\"\n[align]\ngrid_radius = 5\npixel_stride = 2\n",
        geo.display()
    );
    let summary = run(dir.path(), &inputs, &cfg, RunOptions::default()).unwrap();
    let checks = caliper_cspad::check_truth(&summary, &truth);
    for c in &checks {
        eprintln!(
            "{}: {} vs {} ({}) {}",
            c.quantity,
            c.result,
            c.truth,
            c.agreement,
            if c.pass { "PASS" } else { "FAIL" }
        );
    }
    // Every planted bad pixel masked and no good one; each quadrant within one pixel.
    assert_eq!(checks.len(), 5);
    assert!(checks.iter().all(|c| c.pass));
    assert_eq!(summary["frames"]["dark_r0054"], 10);
    assert_eq!(summary["mask"]["avg_gt_avg_max"], 40);
    assert_eq!(summary["mask"]["stddev_gt_stddev_max"], 50);
    let out = dir.path().join("out");
    for f in [
        "cxisim_avg-r0054.cbf",
        "cxisim_stddev-r0054.cbf",
        "cxisim_max-r0074.cbf",
        "cxisim_mask.cbf",
        "cxisim_avg-r0054.png",
        "cxisim_mask.png",
        "geometry/0-end.data.v0",
        "geometry/0-end.data.v1",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    // The max CBF of integer frames is integer byte-offset and holds the run's maximum.
    let m = caliper_core::cbf::CbfImage::read(&out.join("cxisim_max-r0074.cbf")).unwrap();
    assert_eq!((m.width, m.height), (388, 32 * 185));
    assert!(matches!(m.data, caliper_core::cbf::CbfData::I32(_)));
    // The corrected geometry moves each quadrant by its displacement: within one pixel, plus
    // 1 um because geometry files store origins rounded to 1 um.
    let g0 = caliper_cspad::geometry::Geometry::read(&out.join("geometry/0-end.data.v0"))
        .unwrap()
        .pixel_coords();
    let g1 = caliper_cspad::geometry::Geometry::read(&out.join("geometry/0-end.data"))
        .unwrap()
        .pixel_coords();
    for q in 0..4 {
        let i = q * 8 * 185 * 388;
        let d = &truth["quadrant_displacement_um"][q];
        let (dx, dy) = (g1.x[i] - g0.x[i], g1.y[i] - g0.y[i]);
        let tol = 109.92 + 1.0;
        assert!(
            (dx - d[0].as_f64().unwrap()).abs() <= tol
                && (dy - d[1].as_f64().unwrap()).abs() <= tol,
            "q{q}: {dx} {dy}"
        );
    }
}

#[test]
fn truncated_and_wrong_shape_inputs_fail_with_file_and_frame() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "instrument = \"cspad\"\nmode = \"average\"\n";
    // the error of a run that must fail, as text
    let fails = |input: &std::path::Path, options: RunOptions| {
        run(dir.path(), &[input.to_path_buf()], cfg, options)
            .unwrap_err()
            .to_string()
    };
    let allow = RunOptions {
        allow_truncated: true,
        max_events: None,
    };
    // Wrong shape: a stack of (3, 32, 185, 387).
    let bad = dir.path().join("bad-r0001.h5");
    let mut w = caliper_core::h5::H5Writer::new();
    w.write_array(
        "/data/cspad",
        &[3, 32, 185, 387],
        &vec![1i16; 3 * 32 * 185 * 387],
    )
    .unwrap();
    w.write(&bad).unwrap();
    let e = fails(&bad, RunOptions::default());
    assert!(
        e.contains("bad-r0001.h5")
            && e.contains("[3, 32, 185, 387]")
            && e.contains("(N, 32, 185, 388)"),
        "{e}"
    );
    // Truncated: a good stack cut short.
    let good = dir.path().join("good-r0002.h5");
    let mut w = caliper_core::h5::H5Writer::new();
    let n = 32 * 185 * 388;
    let vals: Vec<i16> = (0..6 * n).map(|i| (i % 1000) as i16 + 1000).collect();
    w.write_array("/data/cspad", &[6, 32, 185, 388], &vals)
        .unwrap();
    w.write(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut-r0003.h5");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let e = fails(&cut, RunOptions::default());
    // a truncation (not corrupt input), at the first frame whose bytes are missing: this
    // stack is chunked and compressed, with its chunk index after the data, so no frame
    // survives the cut
    assert!(
        e.contains("cut-r0003.h5")
            && e.contains("event 0: truncated: cannot read frame 0 of 6: HDF5 file cut short")
            && e.contains(&format!(
                "the file has {} bytes; its superblock records {}",
                bytes.len() * 2 / 3,
                bytes.len()
            )),
        "{e}"
    );
    // A damaged byte run inside the compressed frames (full length) is corrupt input, which
    // --allow-truncated does not excuse.
    let mut damaged = bytes.clone();
    let mid = damaged.len() / 2;
    damaged[mid..mid + 64].fill(0xFF);
    let bad_data = dir.path().join("damaged-r0004.h5");
    std::fs::write(&bad_data, &damaged).unwrap();
    for options in [RunOptions::default(), allow.clone()] {
        let e = fails(&bad_data, options);
        assert!(
            e.contains("damaged-r0004.h5") && e.contains(": corrupt: cannot read frame"),
            "{e}"
        );
    }
    // The good file averages; mean of (i % 1000) + 1000 over the frames is known per pixel.
    let s = run(
        dir.path(),
        std::slice::from_ref(&good),
        cfg,
        RunOptions::default(),
    )
    .unwrap();
    assert_eq!(s["frames"]["r0002"], 6);
    // With --allow-truncated the run keeps the frames before the cut: none here, so it still
    // fails, naming the file.
    let e = fails(&cut, allow.clone());
    assert!(e.contains("cut-r0003.h5"), "{e}");
    // A stack stored contiguously (as psana and h5py write it) and cut in the middle of frame
    // 3: the error names frame 3; with --allow-truncated frames 0-2 are averaged.
    let contiguous = dir.path().join("contiguous-r0005.h5");
    let mut w = caliper_core::h5::H5Writer::new();
    w.write_array_contiguous("/data/cspad", &[6, 32, 185, 388], &vals)
        .unwrap();
    w.write(&contiguous).unwrap();
    let bytes = std::fs::read(&contiguous).unwrap();
    // (the data end the file, after the metadata)
    let data_at = bytes.len() - 6 * n * 2;
    let cut = dir.path().join("cut-r0006.h5");
    std::fs::write(&cut, &bytes[..data_at + 7 * n]).unwrap();
    let e = fails(&cut, RunOptions::default());
    assert!(
        e.contains(
            "cut-r0006.h5: event 3: truncated: cannot read frame 3 of 6: HDF5 file cut short"
        ),
        "{e}"
    );
    let s = run(dir.path(), std::slice::from_ref(&cut), cfg, allow).unwrap();
    assert_eq!(s["frames"]["r0006"], 3);
}

#[test]
fn five_d_stacks_and_cbf_folders_average() {
    let dir = tempfile::tempdir().unwrap();
    let n = 32 * 185 * 388;
    // (N, 4, 8, 185, 388) float frames: pixel i of frame k = i % 100 + k.
    let vals: Vec<f32> = (0..3 * n)
        .map(|j| ((j % n) % 100) as f32 + (j / n) as f32)
        .collect();
    let p = dir.path().join("stack5d-r0010.h5");
    let mut w = caliper_core::h5::H5Writer::new();
    w.write_array("/entry/cspad", &[3, 4, 8, 185, 388], &vals)
        .unwrap();
    w.write(&p).unwrap();
    let cfg = "instrument = \"cspad\"\nmode = \"average\"\n[input]\ndataset = \"/entry/cspad\"\n";
    let s = run(
        dir.path(),
        std::slice::from_ref(&p),
        cfg,
        RunOptions::default(),
    )
    .unwrap();
    assert_eq!(s["frames"]["r0010"], 3);
    let h = caliper_core::cbf::CbfImage::read(&dir.path().join("out/cxi_avg-r0010.cbf")).unwrap();
    let mean = h.data.to_f64();
    // Mean of i%100 + {0,1,2} is i%100 + 1 exactly (float arithmetic on small integers).
    assert!(
        mean.iter()
            .enumerate()
            .all(|(i, &m)| m == (i % 100) as f64 + 1.0)
    );
    // A folder of CBF frames (388 x 5920, integer), with max_events = 2.
    let folder = dir.path().join("cbf-r0011");
    std::fs::create_dir_all(&folder).unwrap();
    for k in 0..3 {
        let img = caliper_core::cbf::CbfImage::new(
            388,
            5920,
            caliper_core::cbf::CbfData::I32(
                (0..n).map(|i: usize| (i % 7) as i32 * 10 + k).collect(),
            ),
        );
        img.write(&folder.join(format!("frame{k:03}.cbf"))).unwrap();
    }
    let opts = RunOptions {
        allow_truncated: false,
        max_events: Some(2),
    };
    let s = run(
        dir.path(),
        std::slice::from_ref(&folder),
        "instrument = \"cspad\"\nexperiment = \"x\"\n",
        opts,
    )
    .unwrap();
    assert_eq!(s["frames"]["r0011"], 2);
    let mx = caliper_core::cbf::CbfImage::read(&dir.path().join("out/x_max-r0011.cbf")).unwrap();
    assert_eq!(
        mx.data,
        caliper_core::cbf::CbfData::I32((0..n).map(|i: usize| (i % 7) as i32 * 10 + 1).collect())
    );
    // A CBF of the wrong size names the file.
    let bad = dir.path().join("small.cbf");
    caliper_core::cbf::CbfImage::new(10, 10, caliper_core::cbf::CbfData::I32(vec![0; 100]))
        .write(&bad)
        .unwrap();
    let e = run(
        dir.path(),
        std::slice::from_ref(&bad),
        "instrument = \"cspad\"\n",
        RunOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("small.cbf") && e.contains("10 x 10 = 100 pixels"),
        "{e}"
    );
}

#[test]
fn jungfrau_geometry_averages_and_masks() {
    let Some(geo) = caliper_core::testing::shared_data("cspad/geometry-def-jungfrau4M.data") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let n = 8 * 512 * 1024;
    let mut vals: Vec<i16> = (0..3 * n)
        .map(|j| 1000 + ((j * 7919) % 13) as i16)
        .collect();
    // Pixel 5 is dead in every frame.
    for k in 0..3 {
        vals[k * n + 5] = 0;
    }
    let dark = dir.path().join("jf-dark-r0001.h5");
    let mut w = caliper_core::h5::H5Writer::new();
    w.write_array("/data/cspad", &[3, 8, 512, 1024], &vals)
        .unwrap();
    w.write(&dark).unwrap();
    let bright = dir.path().join("jf-bright-r0002.h5");
    let mut w = caliper_core::h5::H5Writer::new();
    w.write_array("/data/cspad", &[3, 8, 512, 1024], &vals)
        .unwrap();
    w.write(&bright).unwrap();
    let cfg = format!(
        "instrument = \"cspad\"\nmode = \"mask\"\ngeometry = \"{}\"\n",
        geo.display()
    );
    let s = run(dir.path(), &[dark, bright], &cfg, RunOptions::default()).unwrap();
    // Pixel 5: avg 0, stddev 0, max 0 -> masked; the rest vary by 0..12 ADU around 1000.
    assert_eq!(s["mask"]["masked"], 1, "{}", s["mask"]);
    assert_eq!(s["mask"]["masked_pixels"][0], 5);
}
