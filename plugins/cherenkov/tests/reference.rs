//! Comparisons with the ctapipe 0.32 reference outputs in `../shared/data/cherenkov/ref`.
//! Every test skips (with a notice) when the shared data are absent and fails when
//! `CALIPER_REQUIRE_SHARED_DATA=1`.

mod common;

use caliper_cherenkov::geometry::{CameraGeometry, FocalLengthChoice};
use caliper_cherenkov::io::simtel::SimtelReader;
use caliper_core::testing::shared_data;
use common::{Csv, FILES, rel};

/// The ctapipe configuration a reference folder was made with (`<refdir>/<config>/config.json`).
fn reference_config(refdir: &str, config: &str) -> serde_json::Value {
    let path = shared_data(&format!("{refdir}/{config}/config.json")).unwrap();
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn choice(s: &str) -> FocalLengthChoice {
    if s == "EFFECTIVE" {
        FocalLengthChoice::Effective
    } else {
        FocalLengthChoice::Equivalent
    }
}

/// Geometry: positions, areas, telescope-frame coordinates, neighbours and border masks of
/// every camera type against ctapipe's exported geometry. Positions are float64 from float32
/// inputs, so they agree to rounding (1e-12 relative, 1e-13 deg absolute near zero); neighbour
/// lists and border masks must be identical.
#[test]
fn geometry_matches_ctapipe() {
    for (file, refdir, fl) in FILES {
        let Some(path) = shared_data(file) else {
            return;
        };
        let Some(gdir) = shared_data(&format!("{refdir}/default/geometry")) else {
            return;
        };
        let reader = SimtelReader::open(&path).unwrap();
        let header = reader.header().clone();
        let mut n_checked = 0;
        for entry in std::fs::read_dir(&gdir).unwrap() {
            let p = entry.unwrap().path();
            let csv = Csv::read(&p);
            let comment = &csv.comment[0];
            let tel: u16 = comment
                .split("example_tel_id=")
                .nth(1)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let desc = &header.telescopes[&tel];
            let g = CameraGeometry::from_description(desc, choice(fl)).unwrap();
            assert!(
                comment.contains(&format!("camera={} ", g.name)),
                "{comment} vs {}",
                g.name
            );
            assert!(
                comment.contains(&format!("pix_type={} ", g.pix_type.name())),
                "{comment}"
            );
            assert_eq!(csv.rows.len(), g.n_pixels());
            let mut max_pos: f64 = 0.0;
            let mut max_fov: f64 = 0.0;
            let mut max_area: f64 = 0.0;
            for r in 0..csv.rows.len() {
                max_pos = max_pos
                    .max(rel(g.pix_x[r], csv.f64(r, "x_m"), 1e-3))
                    .max(rel(g.pix_y[r], csv.f64(r, "y_m"), 1e-3));
                max_area = max_area
                    .max(rel(g.pix_area[r], csv.f64(r, "area_m2"), 0.0))
                    .max(rel(g.area_deg2[r], csv.f64(r, "area_deg2"), 0.0));
                max_fov = max_fov
                    .max((g.fov_lon[r] - csv.f64(r, "fov_lon_deg")).abs())
                    .max((g.fov_lat[r] - csv.f64(r, "fov_lat_deg")).abs());
                let nb: Vec<u32> = csv
                    .str(r, "neighbors")
                    .split_whitespace()
                    .map(|s| s.parse().unwrap())
                    .collect();
                assert_eq!(g.neighbors(r), &nb[..], "{} pixel {r} neighbours", g.name);
                assert_eq!(
                    g.border1[r],
                    csv.i64(r, "border1") == 1,
                    "{} pixel {r} border1",
                    g.name
                );
                assert_eq!(
                    g.border2[r],
                    csv.i64(r, "border2") == 1,
                    "{} pixel {r} border2",
                    g.name
                );
            }
            eprintln!(
                "{}: max rel pos {max_pos:.2e}, max rel area {max_area:.2e}, max abs fov {max_fov:.2e} deg",
                g.name
            );
            assert!(max_pos < 1e-12, "{} positions {max_pos}", g.name);
            assert!(max_area < 1e-12, "{} areas {max_area}", g.name);
            assert!(max_fov < 1e-12, "{} fov {max_fov}", g.name);
            n_checked += 1;
        }
        assert!(n_checked >= 1);
    }
}

/// The reader sees every event and image that ctapipe saw (README: 9 events / 42 images in
/// gamma_test, which is truncated; 31 / 129 in the SST-1M file).
#[test]
fn reader_reads_all_events() {
    for (file, _, _) in FILES {
        let Some(path) = shared_data(file) else {
            return;
        };
        let mut r = SimtelReader::open(&path).unwrap();
        let (mut events, mut images, mut truncated) = (0, 0, None);
        while let Some(e) = r.next_event() {
            match e {
                Ok(e) => {
                    events += 1;
                    images += e.telescopes.len();
                    for t in &e.telescopes {
                        assert!(
                            t.calibration.is_some(),
                            "event {} tel {} has no calibration",
                            e.event_id,
                            t.tel_id
                        );
                        assert!(t.tracking.is_some());
                    }
                }
                Err(e) => {
                    truncated = Some(e);
                    break;
                }
            }
        }
        if file.contains("gamma_test") {
            assert_eq!((events, images), (9, 42));
            let e = truncated.expect("gamma_test is truncated");
            assert!(e.is_truncated());
            assert!(e.to_string().contains("byte 51793528"), "{e}");
            assert!(e.to_string().contains("2010 (ArrayEvent)"), "{e}");
        } else {
            assert_eq!((events, images), (31, 129));
            assert!(truncated.is_none());
        }
    }
}

mod dl1 {
    use super::*;
    use caliper_cherenkov::calib::CalibKernel;
    use caliper_cherenkov::calib::{
        CalibScratch, Dl1Image, ExtractorKind, ExtractorSettings, GAIN_THRESHOLD_ADC, PeakScratch,
        TelReadout, calibrate, calibrate_baseline, calibrate_with, neighbor_peaks,
        neighbor_peaks_reference,
    };
    use std::collections::HashMap;

    /// Per-pixel DL1 charge within 1e-5 relative (floor 1e-3 p.e. for values near 0) and peak
    /// time within 1e-4 ns of ctapipe, selected gain identical, on both files and both configs;
    /// and every calibration build the CPU runs (AVX2, AVX-512) bit for bit the baseline's.
    #[test]
    fn dl1_images_match_ctapipe() {
        for (file, refdir, fl) in FILES {
            let Some(path) = shared_data(file) else {
                return;
            };
            for config in ["default", "base"] {
                let Some(img_path) = shared_data(&format!("{refdir}/{config}/dl1_images.csv.gz"))
                else {
                    return;
                };
                let csv = Csv::read(&img_path);
                let mut refs: HashMap<(i64, i64), Vec<usize>> = HashMap::new();
                for r in 0..csv.rows.len() {
                    refs.entry((csv.i64(r, "event_id"), csv.i64(r, "tel_id")))
                        .or_default()
                        .push(r);
                }
                let mut reader = SimtelReader::open(&path).unwrap();
                let header = reader.header().clone();
                let ex = ExtractorSettings::for_kind(ExtractorKind::NeighborPeakWindowSum);
                let mut geoms = HashMap::new();
                let mut scratch = CalibScratch::default();
                let mut out = Dl1Image::default();
                let mut scratch_b = CalibScratch::default();
                let mut out_b = Dl1Image::default();
                // every SIMD build this CPU runs, each compared with the baseline build
                let mut builds = Vec::new();
                for kernel in [CalibKernel::Avx2, CalibKernel::Avx512] {
                    if kernel.is_available() {
                        builds.push((kernel, CalibScratch::default()));
                    } else {
                        eprintln!("{kernel:?} not available on this CPU: comparison skipped");
                    }
                }
                let mut out_k = Dl1Image::default();
                let (mut max_q, mut max_t, mut n_img, mut n_pix) = (0.0f64, 0.0f64, 0, 0);
                while let Some(Ok(ev)) = reader.next_event() {
                    for te in &ev.telescopes {
                        let desc = &header.telescopes[&te.tel_id];
                        let (g, ro) = geoms.entry(te.tel_id).or_insert_with(|| {
                            (
                                CameraGeometry::from_description(desc, choice(fl)).unwrap(),
                                TelReadout::new(desc, &ex, GAIN_THRESHOLD_ADC),
                            )
                        });
                        let cal = te.calibration.as_ref().unwrap();
                        calibrate(te, cal, g, ro, &mut scratch, &mut out);
                        // the dispatched (AVX-512 or AVX2 where available) build against the baseline
                        // build and the straightforward float64 peak search: bit-identical
                        calibrate_baseline(te, cal, g, ro, &mut scratch_b, &mut out_b);
                        assert_eq!(
                            out, out_b,
                            "{file} tel {}: dispatched vs baseline",
                            te.tel_id
                        );
                        for (kernel, scratch_k) in &mut builds {
                            calibrate_with(*kernel, te, cal, g, ro, scratch_k, &mut out_k);
                            // bit for bit (−0.0 and NaN included)
                            let bits = |o: &Dl1Image| {
                                let b =
                                    |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                                (b(&o.image), b(&o.peak_time), o.selected_gain.clone())
                            };
                            assert!(
                                bits(&out_k) == bits(&out_b),
                                "{file} tel {}: {kernel:?} vs baseline",
                                te.tel_id
                            );
                        }
                        if te.n_samples > 1 {
                            let np = te.n_pixels;
                            let ns = te.n_samples;
                            let mut wave = vec![0f32; np * ns];
                            for p in 0..np {
                                let i = usize::from(out.selected_gain[p]) * np + p;
                                for s in 0..ns {
                                    wave[p * ns + s] = (f32::from(te.samples[i * ns + s])
                                        - cal.pedestal_per_sample[i])
                                        * cal.dc_to_pe[i];
                                }
                            }
                            // the neighbour lists without broken pixels, as ctapipe sums them
                            let (mut ptr, mut idx) = (vec![0u32], Vec::new());
                            for p in 0..np {
                                idx.extend(
                                    g.neighbors(p).iter().filter(|&&j| !ro.broken[j as usize]),
                                );
                                ptr.push(idx.len() as u32);
                            }
                            let (mut fast, mut slow) = (vec![0i64; np], vec![0i64; np]);
                            neighbor_peaks(
                                &wave,
                                ns,
                                &ptr,
                                &idx,
                                0.0,
                                &mut PeakScratch::default(),
                                &mut fast,
                            );
                            neighbor_peaks_reference(&wave, ns, &ptr, &idx, 0.0, &mut slow);
                            assert_eq!(fast, slow, "{file} tel {}: peak search", te.tel_id);
                        }
                        let rows = &refs[&(ev.event_id, i64::from(te.tel_id))];
                        assert_eq!(rows.len(), te.n_pixels);
                        for &r in rows {
                            let p = csv.i64(r, "pix_id") as usize;
                            let q = csv.f64(r, "image_pe");
                            let t = csv.f64(r, "peak_time_ns");
                            let dq = rel(f64::from(out.image[p]), q, 1e-3);
                            let dt = (f64::from(out.peak_time[p]) - t).abs();
                            if dq > 1e-5 || dt > 1e-4 {
                                panic!(
                                    "{file} {config} event {} tel {} pixel {p}: charge {} vs {q}, time {} vs {t}",
                                    ev.event_id, te.tel_id, out.image[p], out.peak_time[p]
                                );
                            }
                            assert_eq!(
                                i64::from(out.selected_gain[p]),
                                csv.i64(r, "selected_gain")
                            );
                            max_q = max_q.max(dq);
                            max_t = max_t.max(dt);
                        }
                        n_img += 1;
                        n_pix += rows.len();
                    }
                }
                eprintln!(
                    "{file} {config}: {n_img} images, {n_pix} pixels, max rel charge {max_q:.2e}, max |dt| {max_t:.2e} ns"
                );
                assert_eq!(n_img, refs.len());
            }
        }
    }
}

mod params {
    use super::*;
    use caliper_cherenkov::calib::{
        CalibKernel, CalibScratch, Dl1Image, ExtractorKind, ExtractorSettings, GAIN_THRESHOLD_ADC,
        TelReadout, calibrate, calibrate_screened_with,
    };
    use caliper_cherenkov::cleaning::Tailcuts;
    use caliper_cherenkov::config::TimingConfig;
    use caliper_cherenkov::parameters::{
        ImageParameters, ImageQuality, ImageScratch, process_image_with,
    };
    use caliper_cherenkov::timing::TimingFit;
    use std::collections::HashMap;

    fn tailcuts_from_ref(cfg: &serde_json::Value, tel: u16) -> Tailcuts {
        let t = &cfg["telescopes"][tel.to_string()];
        Tailcuts {
            picture: t["picture"].as_f64().unwrap(),
            boundary: t["boundary"].as_f64().unwrap(),
            min_picture_neighbors: t["min_picture_neighbors"].as_u64().unwrap() as u32,
            keep_isolated: t["keep_isolated"].as_bool().unwrap(),
        }
    }

    pub fn quality(config: &str) -> ImageQuality {
        if config == "base" {
            ImageQuality {
                min_intensity_pe: 50.0,
                min_pixels: 2,
                count_nonzero: true,
            }
        } else {
            ImageQuality {
                min_intensity_pe: 0.0,
                min_pixels: 1,
                count_nonzero: false,
            }
        }
    }

    /// Run the chain over a file with the reference's per-telescope thresholds. Every image is
    /// also calibrated screened (`calibrate_screened_with` with the image's tailcuts) by every
    /// build this CPU runs: each left-out pixel's full charge is below both thresholds, or it
    /// and every neighbour's are below the picture threshold, every other pixel's charge and
    /// peak time are bit for bit the full calibration's,
    /// and the mask and every parameter but `image_sum_all` are identical. (The builds may
    /// leave out different pixels: the AVX-512 one also bounds by the sum of positive R1.)
    pub fn run_chain(
        file: &str,
        fl: &str,
        cfg: &serde_json::Value,
        config: &str,
        timing: &TimingConfig,
    ) -> Vec<(i64, u16, ImageParameters, Vec<bool>)> {
        let chain_cfg = caliper_cherenkov::config::CherenkovConfig {
            timing: timing.clone(),
            ..Default::default()
        };
        let path = shared_data(file).unwrap();
        let mut reader = SimtelReader::open(&path).unwrap();
        let header = reader.header().clone();
        let ex = ExtractorSettings::for_kind(ExtractorKind::NeighborPeakWindowSum);
        let mut geoms = HashMap::new();
        let (mut cs, mut is) = (CalibScratch::default(), ImageScratch::default());
        let (mut dl1, mut dl1s) = (Dl1Image::default(), Dl1Image::default());
        let mut screened = (0usize, 0usize);
        let mut out = Vec::new();
        let q = quality(config);
        while let Some(Ok(ev)) = reader.next_event() {
            for te in &ev.telescopes {
                let desc = &header.telescopes[&te.tel_id];
                let (g, ro) = geoms.entry(te.tel_id).or_insert_with(|| {
                    (
                        CameraGeometry::from_description(desc, choice(fl)).unwrap(),
                        TelReadout::new(desc, &ex, GAIN_THRESHOLD_ADC),
                    )
                });
                calibrate(
                    te,
                    te.calibration.as_ref().unwrap(),
                    g,
                    ro,
                    &mut cs,
                    &mut dl1,
                );
                let tc = tailcuts_from_ref(cfg, te.tel_id);
                let mut mask = Vec::new();
                let topt = chain_cfg.timing_options(ev.event_id, te.tel_id);
                let p = process_image_with(
                    g,
                    &dl1.image,
                    &dl1.peak_time,
                    &tc,
                    &q,
                    &topt,
                    &mut is,
                    &mut mask,
                    true,
                );
                let floor = tc.picture.min(tc.boundary);
                let below = |v: f32, thr: f64| f64::from(v) < thr;
                let cal = te.calibration.as_ref().unwrap();
                for kernel in CalibKernel::ALL.into_iter().filter(|k| k.is_available()) {
                    let at = format!(
                        "{file} {config} event {} tel {} {kernel:?}",
                        ev.event_id, te.tel_id
                    );
                    calibrate_screened_with(kernel, te, cal, g, ro, Some(&tc), &mut cs, &mut dl1s);
                    for px in 0..dl1.image.len() {
                        let (full, scr) = (dl1.image[px], dl1s.image[px]);
                        let same = scr.to_bits() == full.to_bits()
                            && dl1s.peak_time[px].to_bits() == dl1.peak_time[px].to_bits();
                        if !same {
                            // left out: NaN, and the full charge is below the floor
                            assert!(scr.is_nan() && dl1s.peak_time[px].is_nan(), "{at} {px}");
                            // below both thresholds, or it and every neighbour below the
                            // picture threshold
                            let no_picture = below(full, tc.picture)
                                && g.neighbors(px)
                                    .iter()
                                    .all(|&j| below(dl1.image[j as usize], tc.picture));
                            assert!(
                                below(full, floor) || no_picture,
                                "{at} pixel {px}: {full} left out, floor {floor}"
                            );
                            screened.0 += usize::from(kernel == CalibKernel::selected());
                        }
                        screened.1 += usize::from(kernel == CalibKernel::selected());
                    }
                    let mut mask_s = Vec::new();
                    let mut ps = process_image_with(
                        g,
                        &dl1s.image,
                        &dl1s.peak_time,
                        &tc,
                        &q,
                        &topt,
                        &mut is,
                        &mut mask_s,
                        false,
                    );
                    assert_eq!(mask_s, mask, "{at}: screened mask");
                    ps.image_sum_all = p.image_sum_all;
                    assert_eq!(
                        format!("{ps:?}"),
                        format!("{p:?}"),
                        "{at}: screened parameters"
                    );
                }
                out.push((ev.event_id, te.tel_id, p, mask));
            }
        }
        println!(
            "{file} {config}: the screened calibration left out {} of {} pixels ({:.1} %)",
            screened.0,
            screened.1,
            100.0 * screened.0 as f64 / screened.1.max(1) as f64
        );
        out
    }

    /// Cleaning masks identical to ctapipe's; Hillas (both frames) within 1e-6 relative; OLS
    /// timing within 1e-6; leakage, concentration within 1e-6; morphology identical;
    /// float32 statistics: mean/std within 1e-6, skewness/kurtosis within 2e-5 relative (float32
    /// sums of ±z³ that cancel: a few float32 ulp of O(1) terms on a value near 0).
    /// Near-zero quantities (positions, angles) use an absolute floor of 1e-9 in the relative
    /// measure.
    #[test]
    fn dl1_parameters_match_ctapipe() {
        for (file, refdir, fl) in FILES {
            if shared_data(file).is_none() {
                return;
            }
            for config in ["default", "base"] {
                let Some(pp) = shared_data(&format!("{refdir}/{config}/dl1_parameters.csv")) else {
                    return;
                };
                let csv = Csv::read(&pp);
                let idx = csv.index_by(&["event_id", "tel_id"]);
                let cfg = reference_config(refdir, config);
                let imgs = Csv::read(
                    &shared_data(&format!("{refdir}/{config}/dl1_images.csv.gz")).unwrap(),
                );
                let mut ref_masks: HashMap<(i64, i64), Vec<bool>> = HashMap::new();
                for r in 0..imgs.rows.len() {
                    let m = ref_masks
                        .entry((imgs.i64(r, "event_id"), imgs.i64(r, "tel_id")))
                        .or_default();
                    let p = imgs.i64(r, "pix_id") as usize;
                    if m.len() <= p {
                        m.resize(p + 1, false);
                    }
                    m[p] = imgs.i64(r, "clean_mask") == 1;
                }
                let results = run_chain(file, fl, &cfg, config, &TimingConfig::default());
                assert_eq!(results.len(), csv.rows.len());
                let mut worst: HashMap<&str, f64> = HashMap::new();
                let mut n_valid = 0;
                for (ev, tel, p, mask) in &results {
                    let r = idx[&vec![*ev, i64::from(*tel)]];
                    assert_eq!(
                        mask,
                        &ref_masks[&(*ev, i64::from(*tel))],
                        "{file} {config} event {ev} tel {tel}: cleaning mask"
                    );
                    assert_eq!(p.n_pixels_clean as i64, csv.i64(r, "n_pixels_clean"));
                    let mut check = |name: &'static str, ours: f64, tol: f64| {
                        let theirs = csv.f64(r, name);
                        assert_eq!(
                            ours.is_nan(),
                            theirs.is_nan(),
                            "{file} {config} event {ev} tel {tel} {name}: {ours} vs {theirs}"
                        );
                        let d = rel(ours, theirs, 1e-9);
                        assert!(
                            d <= tol,
                            "{file} {config} event {ev} tel {tel} {name}: {ours} vs {theirs} (rel {d:.2e} > {tol:.0e})"
                        );
                        let w = worst.entry(name).or_insert(0.0);
                        *w = w.max(d);
                    };
                    let h = &p.hillas;
                    let ch = &p.cam_hillas;
                    check("image_sum_all", p.image_sum_all, 1e-5);
                    check("hillas_intensity", h.intensity, 1e-6);
                    check("hillas_fov_lon_deg", h.x, 1e-6);
                    check("hillas_fov_lat_deg", h.y, 1e-6);
                    check("hillas_r_deg", h.r, 1e-6);
                    check("hillas_phi_deg", h.phi.to_degrees(), 1e-6);
                    check("hillas_length_deg", h.length, 1e-6);
                    check("hillas_width_deg", h.width, 1e-6);
                    check("hillas_psi_deg", h.psi.to_degrees(), 1e-6);
                    check("hillas_skewness", h.skewness, 1e-6);
                    check("hillas_kurtosis", h.kurtosis, 1e-6);
                    check("hillas_length_uncertainty_deg", h.length_uncertainty, 1e-6);
                    check("hillas_width_uncertainty_deg", h.width_uncertainty, 1e-6);
                    check(
                        "hillas_psi_uncertainty_deg",
                        h.psi_uncertainty.to_degrees(),
                        1e-6,
                    );
                    check("cam_hillas_x_m", ch.x, 1e-6);
                    check("cam_hillas_y_m", ch.y, 1e-6);
                    check("cam_hillas_r_m", ch.r, 1e-6);
                    check("cam_hillas_phi_deg", ch.phi.to_degrees(), 1e-6);
                    check("cam_hillas_length_m", ch.length, 1e-6);
                    check("cam_hillas_width_m", ch.width, 1e-6);
                    check("cam_hillas_psi_deg", ch.psi.to_degrees(), 1e-6);
                    check("cam_hillas_skewness", ch.skewness, 1e-6);
                    check("cam_hillas_kurtosis", ch.kurtosis, 1e-6);
                    if p.is_valid {
                        check("ols_timing_slope_per_deg", p.timing.slope, 1e-6);
                        check("ols_timing_intercept", p.timing.intercept, 1e-6);
                        check("ols_timing_deviation", p.timing.deviation, 1e-6);
                        n_valid += 1;
                    }
                    check("leakage_pixels_width_1", p.leakage.pixels_width_1, 1e-6);
                    check("leakage_pixels_width_2", p.leakage.pixels_width_2, 1e-6);
                    check(
                        "leakage_intensity_width_1",
                        p.leakage.intensity_width_1,
                        1e-6,
                    );
                    check(
                        "leakage_intensity_width_2",
                        p.leakage.intensity_width_2,
                        1e-6,
                    );
                    check("concentration_cog", p.concentration.cog, 1e-6);
                    check("concentration_core", p.concentration.core, 1e-6);
                    check("concentration_pixel", p.concentration.pixel, 1e-6);
                    let m = &p.morphology;
                    for (name, v) in [
                        ("morphology_n_pixels", m.n_pixels),
                        ("morphology_n_islands", m.n_islands),
                        ("morphology_n_small_islands", m.n_small_islands),
                        ("morphology_n_medium_islands", m.n_medium_islands),
                        ("morphology_n_large_islands", m.n_large_islands),
                    ] {
                        assert_eq!(
                            v,
                            csv.i64(r, name),
                            "{file} {config} event {ev} tel {tel} {name}"
                        );
                    }
                    let s = &p.intensity_statistics;
                    check("intensity_max", s.max, 1e-6);
                    check("intensity_min", s.min, 1e-6);
                    check("intensity_mean", s.mean, 1e-6);
                    check("intensity_std", s.std, 1e-6);
                    check("intensity_skewness", s.skewness, 2e-5);
                    check("intensity_kurtosis", s.kurtosis, 2e-5);
                    check("peak_time_mean", p.peak_time_statistics.mean, 1e-6);
                    check("peak_time_std", p.peak_time_statistics.std, 1e-6);
                }
                let mut w: Vec<_> = worst.into_iter().collect();
                w.sort_by(|a, b| b.1.total_cmp(&a.1));
                eprintln!(
                    "{file} {config}: {} images, {n_valid} parameterised; worst: {:?}",
                    results.len(),
                    &w[..12.min(w.len())]
                );
            }
        }
    }
    /// ctapipe's least-trimmed-squares timing (`timing_*` columns) where the reference marks
    /// the LTS result as independent of the random starts (`timing_lts_rng_robust = 1`: 20
    /// other seeds gave the same slope). Our starts come from a per-image ChaCha8 stream,
    /// ctapipe's from its process-wide PCG64, so only those rows can be compared, and even
    /// there the agreement is probabilistic: a start reaches a given local optimum with some
    /// probability, and with ctapipe's 5 starts all may miss the best one (for SST-1M event
    /// 1007 tel 27, 9 points, ctapipe itself returns the other optimum for 2 of 200 seeds).
    /// So: with 5 starts (ctapipe's setting) at least 95 % of the robust rows must agree;
    /// with 50 starts every robust row must agree. Tolerance 1e-6 relative (as OLS): the same
    /// trimmed subset gives the same normal equations, so only rounding (≈1e-13) differs.
    /// The camera frame (no robustness flag) and the non-robust rows are reported only.
    #[test]
    fn lts_timing_matches_ctapipe_where_robust() {
        for (file, refdir, fl) in FILES {
            if shared_data(file).is_none() {
                return;
            }
            for config in ["default", "base"] {
                let Some(pp) = shared_data(&format!("{refdir}/{config}/dl1_parameters.csv")) else {
                    return;
                };
                let csv = Csv::read(&pp);
                let idx = csv.index_by(&["event_id", "tel_id"]);
                let cfg = reference_config(refdir, config);
                for samples in [5usize, 50] {
                    let timing = TimingConfig {
                        fit: TimingFit::Lts,
                        lts_samples: samples,
                        ..TimingConfig::default()
                    };
                    let results = run_chain(file, fl, &cfg, config, &timing);
                    let (mut robust, mut agree, mut worst) = (0, 0, 0.0f64);
                    let (mut cam_same, mut other, mut other_same) = (0, 0, 0);
                    for (ev, tel, p, _) in &results {
                        let r = idx[&vec![*ev, i64::from(*tel)]];
                        if !p.is_valid {
                            continue;
                        }
                        let within = |pairs: &[(f64, &str)]| {
                            pairs
                                .iter()
                                .map(|&(ours, name)| rel(ours, csv.f64(r, name), 1e-9))
                                .fold(0.0f64, f64::max)
                        };
                        let t = &p.timing;
                        let d = within(&[
                            (t.slope, "timing_slope_per_deg"),
                            (t.intercept, "timing_intercept"),
                            (t.deviation, "timing_deviation"),
                        ]);
                        let c = &p.cam_timing;
                        let dc = within(&[
                            (c.slope, "cam_timing_slope_per_m"),
                            (c.intercept, "cam_timing_intercept"),
                            (c.deviation, "cam_timing_deviation"),
                        ]);
                        if csv.str(r, "timing_lts_rng_robust") == "1" {
                            if samples == 50 {
                                assert!(
                                    d <= 1e-6,
                                    "{file} {config} event {ev} tel {tel}: LTS timing (50 starts) differs by {d:.2e} relative"
                                );
                            }
                            robust += 1;
                            if d <= 1e-6 {
                                agree += 1;
                                worst = worst.max(d);
                            } else {
                                eprintln!(
                                    "  {file} {config} event {ev} tel {tel}: {samples} starts missed ctapipe's optimum ({d:.2e} relative)"
                                );
                            }
                            cam_same += usize::from(dc <= 1e-6);
                        } else {
                            other += 1;
                            other_same += usize::from(d <= 1e-6);
                        }
                    }
                    assert!(robust > 0, "{file} {config}: no robust rows compared");
                    assert!(
                        agree as f64 >= 0.95 * robust as f64,
                        "{file} {config}: LTS with {samples} starts agrees on only {agree} of {robust} robust rows"
                    );
                    eprintln!(
                        "{file} {config}: LTS with {samples} starts agrees on {agree} of {robust} robust images, worst {worst:.2e} relative; camera frame agrees on {cam_same} of them; non-robust rows agreeing: {other_same} of {other}"
                    );
                }
            }
        }
    }
}

mod stereo {
    use super::*;
    use caliper_cherenkov::calib::{
        CalibScratch, Dl1Image, ExtractorKind, ExtractorSettings, GAIN_THRESHOLD_ADC, TelReadout,
        calibrate,
    };
    use caliper_cherenkov::cleaning::Tailcuts;
    use caliper_cherenkov::parameters::{ImageScratch, process_image};
    use caliper_cherenkov::stereo::{StereoInput, reconstruct};
    use std::collections::HashMap;

    /// HillasReconstructor against ctapipe: validity and telescope set identical, alt/az within
    /// 1e-6 deg, core within 1 mm, h_max within 0.1 m (the tolerances).
    #[test]
    fn stereo_matches_ctapipe() {
        for (file, refdir, fl) in FILES {
            let Some(path) = shared_data(file) else {
                return;
            };
            for config in ["default", "base"] {
                let Some(sp) = shared_data(&format!("{refdir}/{config}/stereo.csv")) else {
                    return;
                };
                let csv = Csv::read(&sp);
                let idx = csv.index_by(&["event_id"]);
                let cfg = reference_config(refdir, config);
                let q = super::params::quality(config);
                let mut reader = SimtelReader::open(&path).unwrap();
                let header = reader.header().clone();
                let height = header
                    .mc_run_header
                    .as_ref()
                    .map(|m| f64::from(m.obsheight))
                    .unwrap();
                let rh = &header.run_header;
                let array_pointing = (f64::from(rh.direction[0]), f64::from(rh.direction[1]));
                let ex = ExtractorSettings::for_kind(ExtractorKind::NeighborPeakWindowSum);
                let mut geoms = HashMap::new();
                let (mut cs, mut is) = (CalibScratch::default(), ImageScratch::default());
                let mut dl1 = Dl1Image::default();
                let (mut n_valid, mut worst) = (0, [0.0f64; 4]);
                while let Some(Ok(ev)) = reader.next_event() {
                    let mut inputs = Vec::new();
                    for te in &ev.telescopes {
                        let desc = &header.telescopes[&te.tel_id];
                        let (g, ro) = geoms.entry(te.tel_id).or_insert_with(|| {
                            (
                                CameraGeometry::from_description(desc, choice(fl)).unwrap(),
                                TelReadout::new(desc, &ex, GAIN_THRESHOLD_ADC),
                            )
                        });
                        calibrate(
                            te,
                            te.calibration.as_ref().unwrap(),
                            g,
                            ro,
                            &mut cs,
                            &mut dl1,
                        );
                        let t = &cfg["telescopes"][te.tel_id.to_string()];
                        let tc = Tailcuts {
                            picture: t["picture"].as_f64().unwrap(),
                            boundary: t["boundary"].as_f64().unwrap(),
                            min_picture_neighbors: t["min_picture_neighbors"].as_u64().unwrap()
                                as u32,
                            keep_isolated: t["keep_isolated"].as_bool().unwrap(),
                        };
                        let mut mask = Vec::new();
                        let p = process_image(
                            g,
                            &dl1.image,
                            &dl1.peak_time,
                            &tc,
                            &q,
                            &mut is,
                            &mut mask,
                        );
                        let h = p.hillas;
                        let ok = p.is_valid
                            && h.intensity > 50.0
                            && h.width > 0.0
                            && p.morphology.n_pixels > 3
                            && (config != "base" || p.leakage.intensity_width_2 < 0.5);
                        if ok {
                            inputs.push(StereoInput {
                                tel_id: te.tel_id,
                                hillas: h,
                                pointing_az_alt: te.tracking.unwrap().az_alt(),
                                position: header.tel_position(te.tel_id).unwrap(),
                                cam_radius_deg: (g.guess_radius() / g.focal_length).to_degrees(),
                            });
                        }
                    }
                    let r = idx[&vec![ev.event_id]];
                    let res = reconstruct(&inputs, array_pointing, height);
                    assert_eq!(
                        res.is_some(),
                        csv.i64(r, "is_valid") == 1,
                        "{file} {config} event {}: validity",
                        ev.event_id
                    );
                    if let Some(res) = res {
                        let used: Vec<u16> = csv
                            .str(r, "tel_ids_used")
                            .split_whitespace()
                            .map(|s| s.parse().unwrap())
                            .collect();
                        assert_eq!(res.telescopes, used);
                        let d = [
                            (res.alt.to_degrees() - csv.f64(r, "alt_deg")).abs(),
                            {
                                let x = (res.az.to_degrees() - csv.f64(r, "az_deg")).abs();
                                x.min(360.0 - x)
                            },
                            (res.core_x - csv.f64(r, "core_x_m"))
                                .hypot(res.core_y - csv.f64(r, "core_y_m")),
                            (res.h_max - csv.f64(r, "h_max_m")).abs(),
                        ];
                        for k in 0..4 {
                            worst[k] = worst[k].max(d[k]);
                        }
                        assert!(
                            d[0] < 1e-6 && d[1] < 1e-6,
                            "{file} {config} event {}: alt/az off by {:.2e}/{:.2e} deg",
                            ev.event_id,
                            d[0],
                            d[1]
                        );
                        assert!(
                            d[2] < 1e-3,
                            "{file} {config} event {}: core off by {} m",
                            ev.event_id,
                            d[2]
                        );
                        assert!(
                            d[3] < 0.1,
                            "{file} {config} event {}: h_max off by {} m",
                            ev.event_id,
                            d[3]
                        );
                        n_valid += 1;
                    }
                }
                eprintln!(
                    "{file} {config}: {n_valid} stereo events; worst |d alt| {:.2e} deg, |d az| {:.2e} deg, core {:.2e} m, h_max {:.2e} m",
                    worst[0], worst[1], worst[2], worst[3]
                );
            }
        }
    }
}
