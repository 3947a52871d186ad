//! Runs the `caliper bench ccd_ptc` measurement from the test harness (ignored by default:
//! it writes ~300 MB of full-size simulated FITS to `$CCD_PTC_BENCH_DIR` or a temp folder).
//! `cargo test --release -p caliper-ccd-ptc --test bench_run -- --ignored --nocapture`

#[test]
#[ignore]
fn bench_isr_and_pair_statistics() {
    let keep = std::env::var("CCD_PTC_BENCH_DIR").ok();
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let recs = caliper_ccd_ptc::bench::bench(&dir).unwrap();
    for r in &recs {
        eprintln!(
            "{}: {} threads: {:.3e} {}/s, {:.1} MB/s of pixels ({:.3} s)",
            r.name,
            r.threads,
            r.items / r.seconds,
            r.item_unit,
            r.bytes / r.seconds / 1e6,
            r.seconds
        );
        assert!(r.seconds > 0.0);
    }
}

/// Prints amp 0 of pair `flat_00_a/b` in `$CCD_PTC_BENCH_DIR` for a side-by-side check with the
/// numpy implementation of the same steps (README, Validation).
#[test]
#[ignore]
fn print_pair_for_numpy_comparison() {
    let Ok(dir) = std::env::var("CCD_PTC_BENCH_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let amps: Vec<String> = caliper_ccd_ptc::io::lsst::LSST_SEGMENTS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let step = caliper_ccd_ptc::run::PairStep {
        amps: &amps,
        isr: caliper_ccd_ptc::isr::IsrSettings::default(),
        clip: caliper_core::robust::AfwClipParams::cp_pipe_ptc(),
        bias: None,
        cov_lag: 0,
    };
    for lvl in ["00", "01"] {
        let pair = caliper_ccd_ptc::pairing::Pair {
            first: dir.join(format!("flat_{lvl}_a.fits")),
            second: dir.join(format!("flat_{lvl}_b.fits")),
            exptime: 0.0,
        };
        let s = step.process(&pair).unwrap();
        eprintln!(
            "caliper {lvl}: amp0 mean {:.4} var {:.4} gain {:.5}",
            s[0].mean, s[0].var, s[0].gain_pair_raw
        );
    }
}

/// Times ISR + pair statistics on the pairs already in `$CCD_PTC_BENCH_DIR` (written by
/// `bench_isr_and_pair_statistics`), `$CCD_PTC_BENCH_REPEAT` times (default 3), with 1 and 2
/// threads: the quick loop for profiling without re-simulating.
#[test]
#[ignore]
fn bench_existing_pairs() {
    let Ok(dir) = std::env::var("CCD_PTC_BENCH_DIR") else {
        return;
    };
    let repeat: usize = std::env::var("CCD_PTC_BENCH_REPEAT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let dir = std::path::PathBuf::from(dir);
    let amps: Vec<String> = caliper_ccd_ptc::io::lsst::LSST_SEGMENTS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let step = caliper_ccd_ptc::run::PairStep {
        amps: &amps,
        isr: caliper_ccd_ptc::isr::IsrSettings::default(),
        clip: caliper_core::robust::AfwClipParams::cp_pipe_ptc(),
        bias: None,
        cov_lag: 0,
    };
    let pairs: Vec<caliper_ccd_ptc::pairing::Pair> = ["00", "01"]
        .iter()
        .map(|lvl| caliper_ccd_ptc::pairing::Pair {
            first: dir.join(format!("flat_{lvl}_a.fits")),
            second: dir.join(format!("flat_{lvl}_b.fits")),
            exptime: 0.0,
        })
        .collect();
    // CCD_PTC_BENCH_DUMP=<file>: every statistic of both pairs, printed exactly ({:?}), with
    // 1 and 2 threads, for a bit-for-bit comparison of two builds (`cmp`).
    if let Ok(out) = std::env::var("CCD_PTC_BENCH_DUMP") {
        let mut text = String::new();
        for threads in [1usize, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for p in &pairs {
                let r = pool.install(|| step.process(p)).unwrap();
                text.push_str(&format!(
                    "{threads} threads, {}: {r:?}\n",
                    p.first.display()
                ));
            }
        }
        std::fs::write(out, text).unwrap();
    }
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for _ in 0..repeat {
            let t0 = std::time::Instant::now();
            pool.install(|| {
                for p in &pairs {
                    step.process(p).unwrap();
                }
            });
            let secs = t0.elapsed().as_secs_f64();
            let px = (pairs.len() * 2 * 16 * 576 * 2048) as f64;
            eprintln!(
                "existing pairs, {threads} threads: {:.3e} raw px/s, {:.1} MB/s ({:.3} s)",
                px / secs,
                px * 4.0 / secs / 1e6,
                secs
            );
        }
    }
}

/// Per-stage cost in ns per raw pixel (minimum over `$CCD_PTC_BENCH_REPEAT` repeats, one
/// thread) on pair `flat_$CCD_PTC_BENCH_PAIR` (default 00) in `$CCD_PTC_BENCH_DIR`: where the time goes (BENCHMARKS.md).
#[test]
#[ignore]
fn bench_stages() {
    use caliper_ccd_ptc::clip::{
        ClipScratch, IntHist, afw_clipped_stats_f32, afw_clipped_stats_f32_prebuilt,
    };
    use caliper_ccd_ptc::io::fits::FitsFile;
    use std::time::Instant;
    let Ok(dir) = std::env::var("CCD_PTC_BENCH_DIR") else {
        return;
    };
    let repeat: usize = std::env::var("CCD_PTC_BENCH_REPEAT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let dir = std::path::PathBuf::from(dir);
    let amps: Vec<String> = caliper_ccd_ptc::io::lsst::LSST_SEGMENTS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let clip = caliper_core::robust::AfwClipParams::cp_pipe_ptc();
    let isr = caliper_ccd_ptc::isr::IsrSettings::default();
    // $CCD_PTC_BENCH_PAIR: 00 (69 ADU, default) or 01 (saturated at 69 kADU).
    let lvl = std::env::var("CCD_PTC_BENCH_PAIR").unwrap_or_else(|_| "00".into());
    let (p1, p2) = (
        dir.join(format!("flat_{lvl}_a.fits")),
        dir.join(format!("flat_{lvl}_b.fits")),
    );
    let raw_px = (2 * 16 * 576 * 2048) as f64;
    let mut best = [f64::INFINITY; 6];
    let names = [
        "open + close (map, or read: $CCD_PTC_ACCESS)",
        "(separate decode to f32, not in the sum)",
        "decode + ISR (fused: overscan, trim, flats' histograms)",
        "clipped stats of I1 and I2 (from those histograms)",
        "difference image + per-pair gain",
        "clipped stats of D",
    ];
    let (mut raw, mut iscr, mut sc) = (Vec::new(), Vec::new(), Vec::new());
    let mut imgs = vec![Vec::<f32>::new(); 32];
    let mut hists: Vec<IntHist> = (0..32).map(|_| IntHist::default()).collect();
    let mut cs = ClipScratch::default();
    // File buffers recycled as the pipeline does (run.rs).
    let mut bufs: [Vec<u8>; 2] = Default::default();
    let mut st = caliper_ccd_ptc::pair_stats::Scratch::default();
    // The pipeline maps plain files; CCD_PTC_ACCESS=read times the copy into a buffer instead.
    let access = match std::env::var("CCD_PTC_ACCESS").as_deref() {
        Ok("read") => caliper_ccd_ptc::io::fits::Access::Read,
        _ => caliper_ccd_ptc::io::fits::Access::Map,
    };
    let decode_first = std::env::var("CCD_PTC_BENCH_DECODE").as_deref() != Ok("0");
    eprintln!("file access: {access:?}, separate decode first: {decode_first}");
    for _ in 0..repeat {
        let mut t = [0f64; 6];
        let t0 = Instant::now();
        let f1 =
            FitsFile::open_with_buffer_mode(&p1, std::mem::take(&mut bufs[0]), access).unwrap();
        let f2 =
            FitsFile::open_with_buffer_mode(&p2, std::mem::take(&mut bufs[1]), access).unwrap();
        t[0] = t0.elapsed().as_secs_f64();
        let files = [&f1, &f2];
        let segs: Vec<_> = files
            .iter()
            .map(|f| caliper_ccd_ptc::io::lsst::segments(f, &amps).unwrap())
            .collect();
        let mut noise = [0f64; 32];
        for (fi, f) in files.iter().enumerate() {
            for (k, g) in segs[fi].iter().enumerate() {
                // The pipeline's path (run.rs): plain int32 decoded on the fly by the ISR;
                // the separate decode is timed on its own for the table.
                // It also brings the segment into the cache before the ISR reads it, which
                // the pipeline does not: CCD_PTC_BENCH_DECODE=0 leaves it out.
                if decode_first {
                    let t0 = Instant::now();
                    f.read_image_f32(&f.hdus[g.hdu], &mut raw, &mut iscr)
                        .unwrap();
                    t[1] += t0.elapsed().as_secs_f64();
                }
                let t0 = Instant::now();
                let bytes = f.plain_i32_data(&f.hdus[g.hdu]).unwrap();
                let m = caliper_ccd_ptc::isr::isr_amp_pixels_hist(
                    caliper_ccd_ptc::isr::RawPixels::BeI32(bytes),
                    g,
                    &isr,
                    None,
                    &mut imgs[fi * 16 + k],
                    &mut sc,
                    Some(&mut hists[fi * 16 + k]),
                )
                .unwrap();
                noise[fi * 16 + k] = m.overscan_noise;
                t[2] += t0.elapsed().as_secs_f64();
            }
        }
        for k in 0..16 {
            // The flats' statistics as the pipeline runs them (histograms from the ISR) ...
            let (ha, hb) = hists.split_at_mut(16);
            let t0 = Instant::now();
            afw_clipped_stats_f32_prebuilt(&imgs[k], &clip, &mut cs, &mut ha[k]).unwrap();
            afw_clipped_stats_f32_prebuilt(&imgs[16 + k], &clip, &mut cs, &mut hb[k]).unwrap();
            t[3] += t0.elapsed().as_secs_f64();
            // ... and without them, to take out of `pair_stats` below.
            let t0 = Instant::now();
            afw_clipped_stats_f32(&imgs[k], &clip, &mut cs).unwrap();
            afw_clipped_stats_f32(&imgs[16 + k], &clip, &mut cs).unwrap();
            let t_i = t0.elapsed().as_secs_f64();
            let t0 = Instant::now();
            caliper_ccd_ptc::pair_stats::pair_stats(
                &imgs[k],
                &imgs[16 + k],
                noise[k],
                noise[16 + k],
                &clip,
                &mut st,
            )
            .unwrap();
            let t_all = t0.elapsed().as_secs_f64();
            // pair_stats = both image statistics + difference + statistics of D.
            let t0 = Instant::now();
            let d = caliper_ccd_ptc::pair_stats::last_difference(&st);
            afw_clipped_stats_f32(d, &clip, &mut cs).unwrap();
            let t_d = t0.elapsed().as_secs_f64();
            t[4] += (t_all - t_i - t_d).max(0.0);
            t[5] += t_d;
        }
        // Closing a mapped file unmaps it: part of the file access cost.
        let t0 = Instant::now();
        bufs = [f1.into_buffer(), f2.into_buffer()];
        t[0] += t0.elapsed().as_secs_f64();
        for (b, v) in best.iter_mut().zip(t) {
            *b = b.min(v);
        }
    }
    let total: f64 = best.iter().sum::<f64>() - best[1];
    for (n, b) in names.iter().zip(best) {
        eprintln!("{n:40} {:6.2} ns per raw pixel", b / raw_px * 1e9);
    }
    eprintln!(
        "{:40} {:6.2} ns per raw pixel = {:.3e} raw px/s",
        "sum",
        total / raw_px * 1e9,
        raw_px / total
    );
}
