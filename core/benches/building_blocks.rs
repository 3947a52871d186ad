//! Throughput of the core building blocks (`cargo bench -p caliper-core`). Plain timing loops:
//! each case runs until one second has passed and reports the mean time per iteration.

use std::hint::black_box;
use std::time::{Duration, Instant};

use caliper_core::ccl::{Clusters, Connectivity, SparseClusterer, label_grid};
use caliper_core::fit::{LeastSquaresProblem, LmOptions, fit_line, levenberg_marquardt};
use caliper_core::hist::Hist1D;
use caliper_core::stats::PixelStats;
use rand::{Rng, SeedableRng};

fn time<F: FnMut()>(name: &str, items: f64, unit: &str, bytes: f64, mut f: F) {
    f();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        f();
        n += 1;
    }
    let per = start.elapsed().as_secs_f64() / n as f64;
    let mbs = if bytes > 0.0 {
        format!("{:>9.1} MB/s", bytes / per / 1e6)
    } else {
        String::new()
    };
    println!(
        "{name:<48} {:>12.3} us/iter {:>12.3e} {unit}/s {mbs}",
        per * 1e6,
        items / per
    );
}

struct Ptc {
    mu: Vec<f64>,
    var: Vec<f64>,
}

impl LeastSquaresProblem for Ptc {
    fn n_residuals(&self) -> usize {
        self.mu.len()
    }
    fn residuals(&self, p: &[f64], out: &mut [f64]) {
        // Astier et al. 2019, eq. 16: C = (exp(2 a00 g mu) - 1) / (2 a00 g^2) + n / g^2
        for ((o, &m), &v) in out.iter_mut().zip(&self.mu).zip(&self.var) {
            let model = (2.0 * p[0] * p[1] * m).exp_m1() / (2.0 * p[0] * p[1] * p[1])
                + p[2] / (p[1] * p[1]);
            *o = (model - v) / v.sqrt();
        }
    }
}

fn main() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    println!(
        "caliper-core building blocks, {} thread(s) available (single-threaded loops)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // One CSPad frame: 32 x 185 x 388 pixels of i16 with a pedestal near 1500 ADU.
    let n_pix = 32 * 185 * 388;
    let frame: Vec<i16> = (0..n_pix)
        .map(|_| 1500 + rng.random_range(-20..20))
        .collect();
    let mut stats = PixelStats::new(n_pix);
    time(
        "PixelStats::push_frame (CSPad, i16)",
        n_pix as f64,
        "pixel",
        (n_pix * 2) as f64,
        || {
            stats.push_frame(black_box(&frame)).expect("frame length");
        },
    );
    let framef: Vec<f64> = frame.iter().map(|&x| f64::from(x)).collect();
    let mut stats = PixelStats::new(n_pix);
    time(
        "PixelStats::push_frame (CSPad, f64)",
        n_pix as f64,
        "pixel",
        (n_pix * 8) as f64,
        || {
            stats.push_frame(black_box(&framef)).expect("frame length");
        },
    );
    // A block of 32 distinct CSPad frames (147 MB, so the frames come from memory).
    let block: Vec<Vec<i16>> = (0..32)
        .map(|_| {
            (0..n_pix)
                .map(|_| 1500 + rng.random_range(-20..20))
                .collect()
        })
        .collect();
    let block_refs: Vec<&[i16]> = block.iter().map(|f| &f[..]).collect();
    let mut bstats = PixelStats::new(n_pix);
    time(
        "PixelStats::push_frames (CSPad, i16, 32 frames)",
        (n_pix * 32) as f64,
        "pixel",
        (n_pix * 2 * 32) as f64,
        || {
            bstats
                .push_frames(black_box(&block_refs))
                .expect("frame length");
        },
    );
    // The same block with the pixel tiles spread over the current rayon pool
    // (RAYON_NUM_THREADS), one 32-frame block per call as the CSPad averaging pass.
    time(
        "PixelStats::push_frames_par (CSPad, i16, 32 frames, rayon pool)",
        (n_pix * 32) as f64,
        "pixel",
        (n_pix * 2 * 32) as f64,
        || {
            bstats
                .push_frames_par(black_box(&block_refs), 32)
                .expect("frame length");
        },
    );
    // The same samples as u16, which take the generic f64 kernel (same bytes per sample):
    // the reference for the exact i16 kernel above, timed in the same minute.
    let block_u: Vec<Vec<u16>> = block
        .iter()
        .map(|f| f.iter().map(|&x| x as u16).collect())
        .collect();
    let block_u_refs: Vec<&[u16]> = block_u.iter().map(|f| &f[..]).collect();
    let mut ustats = PixelStats::new(n_pix);
    time(
        "PixelStats::push_frames (CSPad, u16 = f64 kernel, 32 frames)",
        (n_pix * 32) as f64,
        "pixel",
        (n_pix * 2 * 32) as f64,
        || {
            ustats
                .push_frames(black_box(&block_u_refs))
                .expect("frame length");
        },
    );
    time(
        "PixelStats::push_frames_par (CSPad, u16 = f64 kernel, 32 frames, rayon pool)",
        (n_pix * 32) as f64,
        "pixel",
        (n_pix * 2 * 32) as f64,
        || {
            ustats
                .push_frames_par(black_box(&block_u_refs), 32)
                .expect("frame length");
        },
    );
    drop(block_u_refs);
    drop(block_u);
    drop(block_refs);
    drop(block);
    let other = stats.clone();
    time(
        "PixelStats::merge (CSPad)",
        n_pix as f64,
        "pixel",
        0.0,
        || {
            stats.merge(black_box(&other)).expect("same shape");
        },
    );

    // ALPIDE-like events: 30 hits in 8 clusters on a 1024 x 512 plane.
    let events: Vec<Vec<(u32, u32)>> = (0..1000)
        .map(|_| {
            let mut hits = Vec::new();
            for _ in 0..8 {
                let (c, r) = (rng.random_range(0..1020u32), rng.random_range(0..508u32));
                for k in 0..rng.random_range(1..6u32) {
                    hits.push((c + k % 2, r + k / 2));
                }
            }
            hits
        })
        .collect();
    let mut clusterer = SparseClusterer::new();
    let mut out = Clusters::default();
    let nhits: usize = events.iter().map(Vec::len).sum();
    time(
        "SparseClusterer (1000 events, 8-connected)",
        nhits as f64,
        "hit",
        0.0,
        || {
            for e in &events {
                clusterer.cluster_into(black_box(e), Connectivity::Eight, &mut out);
            }
        },
    );

    // Balor-like frame: 1 % of 1000 x 1000 pixels above threshold.
    let mask: Vec<bool> = (0..1_000_000).map(|_| rng.random::<f64>() < 0.01).collect();
    time("label_grid (1000x1000, 1 % set)", 1e6, "pixel", 0.0, || {
        black_box(label_grid(black_box(&mask), 1000, 1000, Connectivity::Eight).expect("size"));
    });

    let values: Vec<f64> = (0..1_000_000)
        .map(|_| rng.random::<f64>() * 100.0)
        .collect();
    let mut h = Hist1D::new(0.0, 100.0, 1000).expect("axis");
    time("Hist1D::fill (1e6 values)", 1e6, "fill", 0.0, || {
        for &v in &values {
            h.fill(black_box(v));
        }
    });

    let x: Vec<f64> = (0..7).map(|i| f64::from(i) * 20.0).collect();
    let y: Vec<f64> = x
        .iter()
        .map(|&v| 0.1 + 1e-3 * v + rng.random::<f64>() * 1e-3)
        .collect();
    let s = vec![5e-3 / 12f64.sqrt(); 7];
    time("fit_line (7 points, weighted)", 1.0, "fit", 0.0, || {
        black_box(fit_line(black_box(&x), black_box(&y), Some(&s)).expect("fit"));
    });

    let mu: Vec<f64> = (1..60).map(|i| f64::from(i) * 2000.0).collect();
    let var: Vec<f64> = mu
        .iter()
        .map(|&m| {
            (2.0 * 2.7e-6 * 0.77 * m).exp_m1() / (2.0 * 2.7e-6 * 0.77 * 0.77) + 25.0 / (0.77 * 0.77)
        })
        .collect();
    let problem = Ptc { mu, var };
    time(
        "levenberg_marquardt (PTC eq. 16, 59 points)",
        1.0,
        "fit",
        0.0,
        || {
            black_box(
                levenberg_marquardt(&problem, &[1e-6, 1.0, 10.0], &LmOptions::default())
                    .expect("fit"),
            );
        },
    );
}
