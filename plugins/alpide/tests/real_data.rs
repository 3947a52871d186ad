//! Checks on the real reference data in ../shared/data/alpide (skipped with a notice when absent).

use std::path::Path;

use caliper_alpide::cluster::{ClusterMode, Clusterer, PlaneInfo};
use caliper_alpide::event::{Event, PlaneMap};
use caliper_alpide::io::geometry::Geometry;
use caliper_alpide::io::open_events;
use caliper_alpide::mask::{
    HOT, MaskMethod, MaskParams, Occupancy, OccupancyPass, find_hot_pixels,
};
use caliper_core::instrument::NoProgress;
use caliper_core::pipeline::{PassOptions, run_pass};
use caliper_core::testing::shared_data;

fn read_all(path: &Path, planes: &PlaneMap) -> Vec<Event> {
    let mut src = open_events(path, planes).unwrap();
    let mut out = Vec::new();
    while let Some(e) = src.next_event() {
        out.push(e.unwrap());
    }
    out
}

#[test]
fn notebook_json_hit_plane_counts_are_the_notebooks() {
    let Some(path) = shared_data("alpide/notebook_example_after_masking.json") else {
        return;
    };
    let planes = PlaneMap::alpide(7);
    let events = read_all(&path, &planes);
    // The notebook skips empty events; the README says the file has 5,249 events and 33,660 hits.
    let non_empty: Vec<&Event> = events.iter().filter(|e| !e.hits.is_empty()).collect();
    assert_eq!(non_empty.len(), 5249);
    assert_eq!(events.iter().map(|e| e.hits.len()).sum::<usize>(), 33660);
    let mut by_planes = [0usize; 8];
    for e in &non_empty {
        by_planes[e.hit_planes().count_ones() as usize] += 1;
    }
    // Exact: the notebook's printed counts for 1..7 hit planes.
    assert_eq!(&by_planes[1..], &[2496, 941, 561, 369, 323, 181, 378]);
}

fn heidelberg() -> Option<(Geometry, Vec<PlaneInfo>)> {
    let g = Geometry::read(&shared_data("alpide/3REF-DUT-3REF.conf")?).unwrap();
    let infos = g
        .sorted_by_z()
        .into_iter()
        .map(|d| PlaneInfo {
            transform: d.transform(),
            geometry: d,
            mask: None,
        })
        .collect();
    Some((g, infos))
}

#[test]
fn clusters_agree_with_corryvreckans_own() {
    let Some((geo, infos)) = heidelberg() else {
        return;
    };
    let planes = geo.plane_map();
    for run in ["449", "530"] {
        let Some(path) = shared_data(&format!(
            "alpide/cosmics_with_corryvreckan_clusters_run{run}.txt"
        )) else {
            return;
        };
        let events = read_all(&path, &planes);
        let mut clusterer = Clusterer::default();
        let (mut n_ref, mut n_ours, mut max_dev) = (0usize, 0usize, 0.0f64);
        for e in &events {
            let mut ours = Vec::new();
            clusterer.cluster_event(
                &e.hits,
                &infos,
                ClusterMode::Spatial {
                    charge_weighting: true,
                },
                &mut ours,
            );
            n_ref += e.ref_clusters.len();
            n_ours += ours.len();
            for p in 0..7u16 {
                let mut a: Vec<_> = ours.iter().filter(|c| c.plane == p).collect();
                let mut b: Vec<_> = e.ref_clusters.iter().filter(|c| c.plane == p).collect();
                assert_eq!(
                    a.len(),
                    b.len(),
                    "run {run} event {} plane {p}: cluster count",
                    e.number
                );
                a.sort_by(|x, y| {
                    x.local[0]
                        .total_cmp(&y.local[0])
                        .then(x.local[1].total_cmp(&y.local[1]))
                });
                b.sort_by(|x, y| {
                    x.local[0]
                        .total_cmp(&y.local[0])
                        .then(x.local[1].total_cmp(&y.local[1]))
                });
                for (x, y) in a.iter().zip(&b) {
                    assert_eq!(
                        (x.size, x.col_width, x.row_width),
                        (y.size, y.col_width, y.row_width),
                        "run {run} event {}",
                        e.number
                    );
                    assert_eq!(x.charge, y.charge);
                    // Deviation in units of the printed precision (6 significant digits:
                    // rounding error at most half a unit of the last digit).
                    let dev = |ours: f64, printed: f64| {
                        let ulp = if printed == 0.0 {
                            1e-6
                        } else {
                            10f64.powf(printed.abs().log10().floor() - 5.0)
                        };
                        (ours - printed).abs() / ulp
                    };
                    for k in 0..2 {
                        max_dev = max_dev.max(dev(x.local[k], y.local[k]));
                    }
                    for k in 0..3 {
                        max_dev = max_dev.max(dev(x.global[k], y.global[k]));
                    }
                }
            }
        }
        println!(
            "run {run}: {} events, {n_ref} Corryvreckan clusters, {n_ours} ours, max |position difference| {max_dev:.3} units of the last printed digit",
            events.len()
        );
        assert!(n_ref > 100);
        assert_eq!(n_ref, n_ours);
        // TextWriter prints 6 significant digits: agreement within the rounding (0.5 units of
        // the last digit, plus float noise).
        assert!(
            max_dev <= 0.5 + 1e-6,
            "max deviation {max_dev} units of the last digit"
        );
    }
}

fn occupancy(paths: &[std::path::PathBuf], planes: &PlaneMap) -> Occupancy {
    let pass = OccupancyPass {
        planes: planes.clone(),
    };
    let mut total: Option<Occupancy> = None;
    for p in paths {
        let mut src = open_events(p, planes).unwrap();
        let o = run_pass(src.as_mut(), &pass, &PassOptions::default(), &NoProgress)
            .unwrap()
            .output;
        match &mut total {
            None => total = Some(o),
            Some(t) => t.add(&o),
        }
    }
    total.unwrap_or_default()
}

#[test]
fn hot_double_column_of_plane_0_is_masked_in_the_cosmic_runs() {
    let Some(dir) = shared_data("alpide/cosmics_textwriter") else {
        return;
    };
    let Some((geo, infos)) = heidelberg() else {
        return;
    };
    let planes = geo.plane_map();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 36);
    let pitch: Vec<[f64; 2]> = infos.iter().map(|i| i.geometry.pixel_pitch).collect();
    let par = MaskParams {
        method: MaskMethod::Frequency,
        frequency_cut: 50.0,
        density_bandwidth: 2.0,
        sigma_above_avg_max: 5.0,
        rate_max: 1.0,
        notebook_factor: 100.0,
    };
    // One mask from all 36 runs together (one run's occupancy is far too sparse: a pixel that
    // fires once is already above 50 x a mean of 0.001). The double column 92/93 fires in
    // bursts, ~32 times per pixel over the runs (rows 0-255), ordinary pixels at most 3 times.
    let occ = occupancy(&files, &planes);
    let masks = find_hot_pixels(&occ, &planes, &pitch, &par);
    let (mut dc_hot, mut dc_masked) = (0, 0);
    for row in 0..512 {
        for col in [92usize, 93] {
            if occ.count(0, (row * 1024 + col) as u32) >= 10 {
                dc_hot += 1;
                dc_masked += usize::from(masks[0].has(row, col, HOT));
            }
        }
    }
    let other = masks[0].count_masked() - dc_masked;
    println!(
        "plane 0: {dc_hot} double-column pixels fired >= 10 times, {dc_masked} masked; {other} other pixels masked"
    );
    assert!(dc_hot >= 500, "{dc_hot}");
    assert_eq!(dc_masked, dc_hot);
    // Plane 0 mean is 0.048 hits per pixel: the cut 50 x mean = 2.4 also takes the few
    // ordinary pixels with 3 hits.
    assert!(other <= 5, "{other}");
}

fn run_config(
    config: &str,
    inputs: &[std::path::PathBuf],
    sets: &[&str],
    allow_truncated: bool,
) -> Result<serde_json::Value, String> {
    run_config_h5(config, inputs, sets, allow_truncated, None)
}

/// [`run_config`], writing the HDF5 file to `h5` when given.
fn run_config_h5(
    config: &str,
    inputs: &[std::path::PathBuf],
    sets: &[&str],
    allow_truncated: bool,
    h5: Option<&Path>,
) -> Result<serde_json::Value, String> {
    use caliper_alpide::Alpide;
    use caliper_core::config::ConfigDoc;
    use caliper_core::instrument::RunOptions;
    use caliper_core::{Instrument, RunContext};
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs/alpide")
        .join(config);
    let mut doc = ConfigDoc::from_file(&path).unwrap();
    for s in sets {
        doc.add_override(s).unwrap();
    }
    let plan = Alpide.configure(&doc).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        allow_truncated,
        max_events: None,
    };
    let ctx = RunContext::new("t", dir.path(), opts, std::sync::Arc::new(NoProgress));
    plan.run(inputs, &ctx).map_err(|e| e.to_string())?;
    let products = ctx.take_products();
    // The HDF5 content must be writable as the scheduler writes it (also with empty tables).
    let out = h5.map_or_else(|| dir.path().join("t.h5"), Path::to_path_buf);
    products.h5.write(&out).map_err(|e| e.to_string())?;
    Ok(serde_json::Value::Object(products.summary))
}

#[test]
fn notebook_config_reproduces_the_notebook_counts() {
    let Some(path) = shared_data("alpide/notebook_example_after_masking.json") else {
        return;
    };
    let s = run_config("notebook.toml", &[path], &["masking.method=none"], false).unwrap();
    // Index = number of hit planes; exact.
    assert_eq!(
        s["events_by_hit_planes"],
        serde_json::json!([0, 2496, 941, 561, 369, 323, 181, 378])
    );
    // The notebook tracks events with 4 or more planes: 369 + 323 + 181 + 378.
    assert_eq!(s["tracks"], 1251);
}

#[test]
fn truncated_json_keeps_events_when_asked_and_fails_otherwise() {
    let Some(path) = shared_data("alpide/notebook_example_after_masking.json") else {
        return;
    };
    let bytes = std::fs::read(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.json");
    // Cut in the middle of an event about halfway through the file.
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = run_config(
        "notebook.toml",
        std::slice::from_ref(&cut),
        &["masking.method=none", "alignment.method=none"],
        false,
    )
    .unwrap_err();
    assert!(
        err.contains("cut.json")
            && err.contains("byte ")
            && err.contains("event ")
            && err.contains("truncated"),
        "{err}"
    );
    let s = run_config(
        "notebook.toml",
        &[cut],
        &["masking.method=none", "alignment.method=none"],
        true,
    )
    .unwrap();
    let n = s["events_read"].as_u64().unwrap();
    // Half the bytes hold roughly half of the 5,249 events; all complete ones are kept.
    assert!(n > 2000 && n < 3300, "{n}");
    assert_eq!(s["truncated_inputs"].as_array().unwrap().len(), 1);
}

#[test]
fn cosmic_alignment_over_all_runs_converges() {
    let Some(dir) = shared_data("alpide/cosmics_textwriter") else {
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let s = run_config("heidelberg_cosmics.toml", &files, &[], false).unwrap();
    assert_eq!(s["alignment"]["converged"], true, "{}", s["alignment"]);
    assert_eq!(
        s["masked_pixels"]["ALPIDE_0"], 512,
        "the double column, rows 0-255"
    );
    for p in [
        "ALPIDE_0", "ALPIDE_1", "ALPIDE_2", "ALPIDE_4", "ALPIDE_5", "ALPIDE_6",
    ] {
        let r = &s["residual_rms_after_alignment_um"][p];
        println!(
            "{p}: unbiased residual RMS x {} um, y {} um ({} tracks)",
            r["x_unbiased"], r["y_unbiased"], r["tracks"]
        );
        // Before alignment the planes are off by up to ~1.2 mm; after it the unbiased RMS is
        // that of cosmic-muon multiple scattering, well below 100 um.
        assert!(
            r["x_unbiased"].as_f64().unwrap() < 100.0 && r["y_unbiased"].as_f64().unwrap() < 100.0,
            "{p}: {r}"
        );
    }
}

#[test]
fn notebook_masking_masks_what_the_notebook_code_masks() {
    let Some(path) = shared_data("alpide/notebook_example_after_masking.json") else {
        return;
    };
    // The notebook's own code (peer/notebook_peer.py, numpy) on this file: mean 0.00917 hits
    // per pixel, limit int(round(100 x mean)) = 1, 400 pixels masked. Exact.
    let s = run_config("notebook.toml", &[path], &["alignment.method=none"], false).unwrap();
    let total: u64 = s["masked_pixels"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 400);
}

#[test]
fn unfiltered_textwriter_snippet_reads() {
    let Some(path) = shared_data("alpide/textwriter_unfiltered_snippet_run683.txt") else {
        return;
    };
    let events = read_all(&path, &PlaneMap::alpide(7));
    // Hand-counted from the file: four events, the third with 13 pixels on planes 1-6.
    assert_eq!(
        events.iter().map(|e| e.number).collect::<Vec<_>>(),
        vec![169137, 169138, 169139, 169140]
    );
    assert_eq!(
        events.iter().map(|e| e.hits.len()).collect::<Vec<_>>(),
        vec![0, 0, 13, 0]
    );
    assert_eq!(events[2].hit_planes(), 0b111_1110);
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let Some(path) = shared_data("alpide/notebook_example_after_masking.json") else {
        return;
    };
    // Summary and the HDF5 file's bytes (cluster and track tables, residual rows, histograms).
    let run = |threads: usize, sets: &[&str]| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let h5 = dir.path().join("t.h5");
        let summary = pool.install(|| {
            run_config_h5(
                "notebook.toml",
                std::slice::from_ref(&path),
                sets,
                false,
                Some(&h5),
            )
            .unwrap()
        });
        let rows = caliper_core::h5::H5Reader::open(&h5)
            .unwrap()
            .shape("/alpide/clusters")
            .unwrap();
        (summary, std::fs::read(&h5).unwrap(), rows)
    };
    // Bit-identical for 1 and 2 threads (floats included).
    let (s1, h1, _) = run(1, &["output.plots=false"]);
    let (s2, h2, _) = run(2, &["output.plots=false"]);
    assert_eq!(s1, s2);
    assert!(h1 == h2, "HDF5 outputs differ between 1 and 2 threads");
    // Limits that cut inside a chunk of events (512 per chunk): the cluster table keeps
    // exactly the first 1,000 rows and the alignment the first 700 events it may use, for
    // any number of threads; the tracks are not limited.
    let sets = [
        "output.plots=false",
        "output.max_cluster_rows=1000",
        "alignment.max_events=700",
    ];
    let (l1, hl1, rows1) = run(1, &sets);
    let (l2, hl2, rows2) = run(2, &sets);
    assert_eq!(l1, l2);
    assert!(hl1 == hl2, "HDF5 outputs differ between 1 and 2 threads");
    assert_eq!(rows1, vec![1000]);
    assert_eq!(rows2, vec![1000]);
    assert_eq!(l1["alignment"]["events_used"], 700);
    assert_eq!(l1["tracks"], s1["tracks"]);
    assert!(s1["alignment"]["events_used"].as_u64().unwrap() > 700);
}
