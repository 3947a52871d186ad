//! Throughput numbers (run by hand: `cargo test --release -p caliper-cherenkov --test bench --
//! --ignored --nocapture`); no timing assertions.

use caliper_cherenkov::config::CherenkovConfig;
use caliper_cherenkov::geometry::FocalLengthChoice;
use caliper_cherenkov::io::simtel::{ArrayEvent, SimtelReader};
use caliper_cherenkov::subarray::Subarray;
use caliper_core::Instrument;
use caliper_core::testing::shared_data;
use std::path::Path;

/// The shared files the benchmarks read, with their focal length choice.
const SHARED_FILES: [(&str, FocalLengthChoice); 2] = [
    (
        "cherenkov/gamma_test.simtel.gz",
        FocalLengthChoice::Equivalent,
    ),
    (
        "cherenkov/gamma_20deg_0deg_run102___cta-prod4-sst-1m_desert-2150m-Paranal-sst-1m.simtel.zst",
        FocalLengthChoice::Effective,
    ),
];

/// Every event of a sim_telarray file (read until the end or the first error), with the
/// reader (for its header).
fn read_events(path: &Path) -> (SimtelReader, Vec<ArrayEvent>) {
    let mut r = SimtelReader::open(path).unwrap();
    let mut events = Vec::new();
    while let Some(Ok(e)) = r.next_event() {
        events.push(e);
    }
    (r, events)
}

/// The default configuration with focal length choice `fl`, and the subarray of `r`'s file.
fn subarray(r: &SimtelReader, fl: FocalLengthChoice) -> (CherenkovConfig, Subarray) {
    let cfg = CherenkovConfig {
        focal_length_choice: fl,
        ..Default::default()
    };
    let sub = Subarray::new(r.header().clone(), &cfg).unwrap();
    (cfg, sub)
}

/// The first 24 characters of a shared file's name (without its folder), for the tables.
fn short_name(f: &str) -> String {
    f.rsplit('/').next().unwrap_or(f).chars().take(24).collect()
}

#[test]
#[ignore]
fn bench_numbers() {
    let dir = tempfile::tempdir().unwrap();
    for r in caliper_cherenkov::Cherenkov.bench(dir.path()).unwrap() {
        println!(
            "{:<45} {:>10.0} {}/s  ({} threads, {:.3} s{})",
            r.name,
            r.items / r.seconds,
            r.item_unit,
            r.threads,
            r.seconds,
            if r.bytes > 0.0 {
                format!(", {:.0} MB/s decompressed", r.bytes / r.seconds / 1e6)
            } else {
                String::new()
            }
        );
    }
    // the shared files: decompression + decoding, and the chain with events in memory
    for (f, fl) in SHARED_FILES {
        let Some(p) = shared_data(f) else { return };
        let t = std::time::Instant::now();
        let (mut s, _, _) = caliper_cherenkov::io::open_stream(&p).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0usize;
        loop {
            let k = std::io::Read::read(&mut s, &mut buf).unwrap();
            if k == 0 {
                break;
            }
            n += k;
        }
        let td = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let (r, events) = read_events(&p);
        let tr = t.elapsed().as_secs_f64();
        let (cfg, sub) = subarray(&r, fl);
        println!(
            "{f}: decompression alone {:.0} MB/s ({n} bytes in {td:.3} s); decompress+decode {tr:.3} s ({} events)",
            n as f64 / td / 1e6,
            events.len()
        );
        // the chain with events in memory: calibrate+clean+parameterise, then + stereo, on 1
        // and 2 threads; each figure is the best of 3 runs of >= 1 s, each run passes over the
        // file's events again and again, one parallel loop per pass. On 2 threads also with the
        // file's events 8 times in each loop, as a file 8 times as long would be processed: the
        // loop's start and end (waking the second thread, the last images on one thread while
        // the other waits) then come once per 8 passes.
        // BENCH_ALL_PIXELS=1: every pixel integrated (`calibration.skip_pixels_below_cleaning`
        // off), as a run that writes DL1 images does
        let all_pixels = env_switch("BENCH_ALL_PIXELS");
        for stereo in [false, true] {
            let mut cfg = cfg.clone();
            cfg.stereo.enabled = stereo;
            cfg.calibration.skip_pixels_below_cleaning = !all_pixels;
            let chain = caliper_cherenkov::process::Chain::new(&sub, &cfg);
            for (threads, copies) in [(1usize, 1usize), (2, 1), (2, 8)] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let stream: Vec<_> = (0..copies).flat_map(|_| events.iter()).collect();
                let mut best = 0.0f64;
                for _ in 0..3 {
                    let t = std::time::Instant::now();
                    let mut images = 0usize;
                    while t.elapsed().as_secs_f64() < 1.0 {
                        images += pool.install(|| {
                            use rayon::prelude::*;
                            stream
                                .par_iter()
                                .map_init(
                                    caliper_cherenkov::process::ChainPartial::default,
                                    |p, ev| chain.process(ev, p).unwrap().tels.len(),
                                )
                                .sum::<usize>()
                        });
                    }
                    best = best.max(images as f64 / t.elapsed().as_secs_f64());
                }
                println!(
                    "{f}: calibrate+clean+parameterise{} {best:.0} images/s ({threads} thread{}{}){}",
                    if stereo { "+stereo" } else { "" },
                    if threads == 1 { "" } else { "s" },
                    if copies == 1 {
                        String::new()
                    } else {
                        format!(", the events {copies} times per loop")
                    },
                    if all_pixels { " [every pixel]" } else { "" }
                );
            }
        }
    }
}

/// The number an environment variable of the hand-run benches holds, if it holds one.
fn env_number(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

/// Whether an environment switch of the hand-run benches is set (`=1`).
fn env_switch(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

/// On-CPU time of the calling thread [s] (Linux `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`, ns
/// resolution; 0 elsewhere), so that the figures below are not inflated by other processes on
/// a loaded machine.
fn thread_cpu_seconds() -> f64 {
    #[cfg(target_os = "linux")]
    {
        #[repr(C)]
        struct Timespec {
            tv_sec: i64,
            tv_nsec: i64,
        }
        unsafe extern "C" {
            fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
        }
        const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
        let mut ts = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec (two 64-bit fields on 64-bit Linux).
        if unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0 {
            return ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9;
        }
    }
    0.0
}

/// The calibration of every image with all pixels and screened as the chain does
/// (`calibrate_screened_with` with the telescope's tailcuts), in alternate passes over the
/// file after one warm-up pass of each, on-CPU µs/image per camera, on the shared files (run
/// by hand; BENCH_REPS passes of each, 20).
#[test]
#[ignore]
fn bench_screen() {
    use caliper_cherenkov::calib::{CalibKernel, CalibScratch, Dl1Image, calibrate_screened_with};
    let reps: usize = env_number("BENCH_REPS").unwrap_or(20);
    for (f, fl) in SHARED_FILES {
        let Some(p) = shared_data(f) else { return };
        let (r, events) = read_events(&p);
        let (_, sub) = subarray(&r, fl);
        let (mut cs, mut dl1) = (CalibScratch::default(), Dl1Image::default());
        // (pixels, samples) → (images, full s, screened s, pixels left out)
        let mut per = std::collections::BTreeMap::<_, (usize, f64, f64, usize)>::new();
        // whole passes over the file, screened and with every pixel in turn, as the chain
        // runs one or the other over every image (alternated image by image, each would find
        // the caches as the other left them); the first two passes warm up (the screened one
        // computes each telescope's ADC ranges once) and are not counted
        for rep in 0..2 * reps + 2 {
            let screened = rep % 2 == 1;
            for te in events.iter().flat_map(|e| &e.telescopes) {
                let s = &sub.tels[&te.tel_id];
                let cal = te.calibration.as_ref().unwrap();
                let e = per.entry((te.n_pixels, te.n_samples)).or_default();
                e.0 += usize::from(rep >= 2 && screened);
                let c0 = thread_cpu_seconds();
                calibrate_screened_with(
                    CalibKernel::selected(),
                    te,
                    cal,
                    &s.geometry,
                    &s.readout,
                    screened.then_some(&s.tailcuts),
                    &mut cs,
                    &mut dl1,
                );
                let dt = thread_cpu_seconds() - c0;
                if rep >= 2 && screened {
                    e.2 += dt;
                    e.3 += dl1.image.iter().filter(|v| v.is_nan()).count();
                } else if rep >= 2 {
                    e.1 += dt;
                }
            }
        }
        for ((np, ns), (n, full, scr, out)) in &per {
            println!(
                "{f:.24}: {np} px x {ns} samples: calibrate all pixels {:.1} us/image, screened {:.1} us/image ({:.1} % of the pixels left out)",
                full / *n as f64 * 1e6,
                scr / *n as f64 * 1e6,
                100.0 * *out as f64 / (*n * np) as f64
            );
        }
    }
}

/// Single-thread split of the chain cost on the toy camera (run by hand).
#[test]
#[ignore]
fn bench_split() {
    use caliper_cherenkov::calib::{CalibKernel, CalibScratch, Dl1Image, calibrate_screened_with};
    use caliper_cherenkov::parameters::{ImageScratch, process_image};
    let dir = tempfile::tempdir().unwrap();
    // BENCH_FILE=<sim_telarray file> to use a real file instead of the toy, BENCH_EVENTS=<n>
    // to keep its first n events, BENCH_REPS=<n> passes (default 5), BENCH_SCREEN=1 to leave
    // out the pixels below the cleaning thresholds as the chain does (`calibrate_screened_with`)
    let screen = env_switch("BENCH_SCREEN");
    // BENCH_PIXELS=<n>: only the cameras with n pixels
    let only: Option<usize> = env_number("BENCH_PIXELS");
    let path = match std::env::var("BENCH_FILE") {
        Ok(f) => std::path::PathBuf::from(f),
        Err(_) => {
            let p = dir.path().join("t.simtel.gz");
            caliper_cherenkov::simulate::write_toy_file(&p, 100, 1).unwrap();
            p
        }
    };
    let (r, mut events) = read_events(&path);
    if let Some(k) = env_number("BENCH_EVENTS") {
        events.truncate(k);
    }
    let (cfg, sub) = subarray(&r, FocalLengthChoice::Equivalent);
    let (mut cs, mut is, mut dl1, mut mask) = (
        CalibScratch::default(),
        ImageScratch::default(),
        Dl1Image::default(),
        Vec::new(),
    );
    let q = cfg.image_quality();
    let (mut tc, mut tp, mut n) = (0.0, 0.0, 0);
    let reps: usize = env_number("BENCH_REPS").unwrap_or(5);
    let mut per_camera = std::collections::BTreeMap::new();
    let cpu0 = thread_cpu_seconds();
    let wall0 = std::time::Instant::now();
    for _ in 0..reps {
        for ev in &events {
            for te in ev
                .telescopes
                .iter()
                .filter(|te| only.is_none_or(|n| n == te.n_pixels))
            {
                let s = &sub.tels[&te.tel_id];
                let t = std::time::Instant::now();
                let cleaning = screen.then_some(&s.tailcuts);
                calibrate_screened_with(
                    CalibKernel::selected(),
                    te,
                    te.calibration.as_ref().unwrap(),
                    &s.geometry,
                    &s.readout,
                    cleaning,
                    &mut cs,
                    &mut dl1,
                );
                let dt = t.elapsed().as_secs_f64();
                tc += dt;
                let e = per_camera
                    .entry((te.n_pixels, te.n_samples, te.n_gains))
                    .or_insert((0usize, 0.0f64));
                e.0 += 1;
                e.1 += dt;
                let t = std::time::Instant::now();
                let p = process_image(
                    &s.geometry,
                    &dl1.image,
                    &dl1.peak_time,
                    &s.tailcuts,
                    &q,
                    &mut is,
                    &mut mask,
                );
                tp += t.elapsed().as_secs_f64();
                std::hint::black_box(p);
                n += 1;
            }
        }
    }
    let cpu = thread_cpu_seconds() - cpu0;
    let wall = wall0.elapsed().as_secs_f64();
    let (fb, searched) = cs.peak_fallbacks();
    for ((np, ns, ng), (k, t)) in &per_camera {
        println!(
            "  camera with {np} pixels, {ns} samples, {ng} gain(s): {k} images, calibrate {:.1} us/image",
            t / *k as f64 * 1e6
        );
    }
    println!(
        "{n} images in {wall:.3} s wall, {cpu:.3} s on-CPU: {:.0} images/s wall, {:.0} images/s on-CPU (incl. the timers)",
        n as f64 / wall,
        n as f64 / cpu
    );
    println!(
        "{n} images: calibrate {:.1} us/image, clean+parameterise {:.1} us/image; neighbour-peak float64 fallbacks {fb} of {searched} pixels",
        tc / n as f64 * 1e6,
        tp / n as f64 * 1e6
    );
}

/// The neighbour peak search alone on synthetic noise waveforms with a hexagon-like CSR
/// (6 neighbours), to separate its cost from the rest of `calibrate` (run by hand).
#[test]
#[ignore]
fn bench_peak_search() {
    use caliper_cherenkov::calib::{PeakScratch, neighbor_peaks, neighbor_peaks_baseline};
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for (np, ns) in [(1296usize, 50usize), (1855, 30), (11328, 32)] {
        let wave: Vec<f32> = (0..np * ns)
            .map(|_| rng.random_range(-3.0f32..5.0))
            .collect();
        let (mut ptr, mut idx) = (vec![0u32], Vec::new());
        for p in 0..np {
            for d in [1usize, 2, 36, 37, np - 36, np - 1] {
                idx.push(((p + d) % np) as u32);
            }
            ptr.push(idx.len() as u32);
        }
        let mut peak = vec![0i64; np];
        let mut sc = PeakScratch::default();
        for (name, avx) in [("dispatched", true), ("baseline", false)] {
            let reps = 200;
            let c0 = thread_cpu_seconds();
            for _ in 0..reps {
                if avx {
                    neighbor_peaks(&wave, ns, &ptr, &idx, 0.0, &mut sc, &mut peak);
                } else {
                    neighbor_peaks_baseline(&wave, ns, &ptr, &idx, 0.0, &mut sc, &mut peak);
                }
            }
            let c = thread_cpu_seconds() - c0;
            println!(
                "{np} pixels x {ns} samples, {name}: {:.1} us/image on-CPU, {:.1} ns/pixel",
                c / reps as f64 * 1e6,
                c / (reps * np) as f64 * 1e9
            );
        }
    }
}

/// Calibration cost per camera on the shared files (run by hand), in on-CPU time of the
/// calling thread so that other processes on the machine do not inflate it (which they still
/// do through the caches): cycling through all images `BENCH_REPS` (default 20) times, every
/// build this CPU runs (AVX-512, AVX2 fused kernels and the baseline SSE2 build) alternately
/// on each image; then every image calibrated `BENCH_REPS` times in a row (cache-warm), best
/// of 3 such batches, per SIMD build (alternately on each image). Reported per camera as µs/image and ns/sample;
/// `BENCH_PIXELS=<n>` keeps the cameras with n pixels, `BENCH_KERNELS=avx2,avx512` (names
/// of `CALIPER_CHERENKOV_KERNEL`) the builds timed (all available ones by default).
#[test]
#[ignore]
fn bench_calib_cameras() {
    use caliper_cherenkov::calib::{CalibKernel, CalibScratch, Dl1Image, calibrate_with};
    let reps: usize = env_number("BENCH_REPS").unwrap_or(20);
    let name = |k: CalibKernel| match k {
        CalibKernel::Baseline => "baseline",
        CalibKernel::Avx2 => "avx2",
        CalibKernel::Avx512 => "avx512",
    };
    let wanted = std::env::var("BENCH_KERNELS").ok();
    // fastest first
    let kernels: Vec<CalibKernel> = CalibKernel::ALL
        .into_iter()
        .rev()
        .filter(|k| k.is_available())
        .filter(|k| {
            wanted
                .as_deref()
                .is_none_or(|w| w.split(',').any(|n| n == name(*k)))
        })
        .collect();
    for (f, fl) in SHARED_FILES {
        let Some(p) = shared_data(f) else { return };
        let (r, events) = read_events(&p);
        let (_, sub) = subarray(&r, fl);
        let mut scratch: Vec<CalibScratch> =
            kernels.iter().map(|_| CalibScratch::default()).collect();
        let mut dl1 = Dl1Image::default();
        // BENCH_PIXELS=<n>: only the cameras with n pixels
        let only: Option<usize> = env_number("BENCH_PIXELS");
        // the selected images, each with its telescope and calibration
        let images = || {
            events
                .iter()
                .flat_map(|ev| &ev.telescopes)
                .filter(|te| only.is_none_or(|n| n == te.n_pixels))
                .map(|te| (te, &sub.tels[&te.tel_id], te.calibration.as_ref().unwrap()))
        };
        // repeated (cache-warm), the builds alternately on each image
        let mut per_camera = std::collections::BTreeMap::new();
        for (te, s, cal) in images() {
            for (ki, &k) in kernels.iter().enumerate() {
                if k == CalibKernel::Baseline {
                    continue;
                }
                let mut best = f64::INFINITY;
                for _ in 0..3 {
                    let c0 = thread_cpu_seconds();
                    for _ in 0..reps {
                        calibrate_with(
                            k,
                            te,
                            cal,
                            &s.geometry,
                            &s.readout,
                            &mut scratch[ki],
                            &mut dl1,
                        );
                    }
                    best = best.min((thread_cpu_seconds() - c0) / reps as f64);
                }
                let e = per_camera
                    .entry((te.n_pixels, te.n_samples, ki))
                    .or_insert((0usize, 0.0f64));
                e.0 += 1;
                e.1 += best;
            }
        }
        // cycling through all images (cache-cold as in the chain), the builds alternately on
        // each image; the build that goes first reads the image from memory and leaves it
        // in the caches for the others, so the order rotates from one pass to the next
        let mut cold = std::collections::BTreeMap::new();
        for rep in 0..reps {
            for (te, s, cal) in images() {
                let e = cold
                    .entry((te.n_pixels, te.n_samples))
                    .or_insert((0usize, vec![0.0f64; kernels.len()]));
                e.0 += 1;
                for r in 0..kernels.len() {
                    let ki = (r + rep) % kernels.len();
                    let c0 = thread_cpu_seconds();
                    calibrate_with(
                        kernels[ki],
                        te,
                        cal,
                        &s.geometry,
                        &s.readout,
                        &mut scratch[ki],
                        &mut dl1,
                    );
                    e.1[ki] += thread_cpu_seconds() - c0;
                }
            }
        }
        for ((np, ns), (n, t)) in &cold {
            let per: Vec<String> = kernels
                .iter()
                .zip(t)
                .map(|(k, t)| {
                    let t = t / *n as f64;
                    format!(
                        "{} {:.1} us/image ({:.2} ns/sample)",
                        name(*k),
                        t * 1e6,
                        t * 1e9 / (np * ns) as f64
                    )
                })
                .collect();
            println!(
                "{}: {np} px x {ns} samples, cycling through all images, calibrate on-CPU: {}",
                short_name(f),
                per.join(", ")
            );
        }
        for ((np, ns, ki), (k, t)) in &per_camera {
            let t = t / *k as f64;
            println!(
                "{}: {np} px x {ns} samples: {k} images, each repeated (cache-warm): {} calibrate {:.1} us/image on-CPU, {:.2} ns/sample",
                short_name(f),
                name(kernels[*ki]),
                t * 1e6,
                t * 1e9 / (np * ns) as f64
            );
        }
        for (k, s) in kernels.iter().zip(&scratch) {
            let (fb, searched) = s.peak_fallbacks();
            println!(
                "  {}: float64-settled peaks: {fb} of {searched} pixels",
                name(*k)
            );
        }
    }
}
