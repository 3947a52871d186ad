//! Averaging benchmark for BENCHMARKS.md: a single-thread memory-bandwidth reference (sum of
//! a 1 GB buffer) and the plugin's in-memory bench on 1 and 2 threads, alternated.
//!
//! `cargo run --release -p caliper-cspad --example average_bench -- [frames] [chunk] [rounds]`
//! With `CSPAD_H5=<file>[,<file>...]` it also averages those HDF5 stacks (dataset
//! `/data/cspad`); with `CSPAD_RAW=<file>` it only writes the frames as raw int16 for
//! `benches/numpy_peer.py`; with `CSPAD_H5=<file>` and `CSPAD_DUMP=<file>` it averages the
//! stack once and writes mean, std, max and min as raw little-endian f64 (for a comparison
//! with numpy); with `CSPAD_H5_ONLY=1` it only times the `CSPAD_H5` stacks (1 and 2 threads
//! per round).

use std::time::Instant;

use caliper_core::instrument::NoProgress;
use caliper_core::pipeline::{PassOptions, run_pass};
use caliper_cspad::average::Average;
use caliper_cspad::io::frames::FrameSource;

/// Sum of a 1 GB buffer of u64, 8 independent accumulators (vectorises on SSE2): the rate
/// one core can read memory at. Best of 3.
fn memory_bandwidth() -> f64 {
    let n = (1usize << 30) / 8;
    let buf: Vec<u64> = (0..n as u64).collect();
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        let mut acc = [0u64; 8];
        for c in buf.chunks_exact(8) {
            for j in 0..8 {
                acc[j] = acc[j].wrapping_add(c[j]);
            }
        }
        std::hint::black_box(acc);
        best = best.min(t.elapsed().as_secs_f64());
    }
    (n * 8) as f64 / best / 1e9
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let frames = args.first().copied().unwrap_or(128);
    let chunk = args.get(1).copied().unwrap_or(32);
    let rounds = args.get(2).copied().unwrap_or(2);
    // The same frames as raw little-endian int16, for benches/numpy_peer.py.
    if let Ok(raw) = std::env::var("CSPAD_RAW") {
        let data = caliper_cspad::bench::simulated_frames(frames);
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&raw, bytes)?;
        println!("wrote {frames} frames to {raw}");
        return Ok(());
    }
    // Average an HDF5 stack once (2 threads) and dump mean, std, max, min as raw f64 for a
    // comparison with numpy.
    if let (Ok(h5), Ok(dump)) = (std::env::var("CSPAD_H5"), std::env::var("CSPAD_DUMP")) {
        let n = caliper_cspad::simulate::CSPAD_PIXELS;
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build()?;
        let path = std::path::PathBuf::from(h5);
        let out = pool
            .install(|| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                let mut src = FrameSource::open(std::slice::from_ref(&path), "/data/cspad", n)?;
                let opts = PassOptions {
                    chunk_events: chunk,
                    ..PassOptions::default()
                };
                Ok(run_pass(&mut src, &Average::new(n), &opts, &NoProgress)?.output)
            })
            .map_err(|e| e.to_string())?;
        let mut bytes = Vec::new();
        for v in [&out.mean, &out.std, &out.max, &out.min] {
            bytes.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        }
        std::fs::write(&dump, bytes)?;
        println!("averaged {} frames, wrote {dump}", out.frames);
        return Ok(());
    }
    // `CSPAD_H5_ONLY=1`: only the HDF5 passes (skip the memory reference and in-memory bench).
    let h5_only = std::env::var("CSPAD_H5_ONLY").is_ok_and(|v| v == "1");
    let data = if h5_only {
        Vec::new()
    } else {
        caliper_cspad::bench::simulated_frames(frames)
    };
    for round in 0..rounds {
        if h5_only {
            bench_h5_files(round, chunk)?;
            continue;
        }
        println!(
            "round {round}: memory read bandwidth (1 thread, 1 GB sum): {:.2} GB/s",
            memory_bandwidth()
        );
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()?;
            let recs = pool.install(|| caliper_cspad::bench::bench_memory(&data, chunk, 5))?;
            for r in recs {
                println!(
                    "round {round}: {:<70} threads {} {:>8.1} frames/s {:>6.2} GB/s",
                    r.name,
                    r.threads,
                    r.items / r.seconds,
                    r.bytes / r.seconds / 1e9
                );
            }
        }
        bench_h5_files(round, chunk)?;
    }
    Ok(())
}

/// Average each `CSPAD_H5` stack on 1 and 2 threads (dataset `/data/cspad`), timed from open.
fn bench_h5_files(round: usize, chunk: usize) -> Result<(), Box<dyn std::error::Error>> {
    let h5 = std::env::var("CSPAD_H5").unwrap_or_default();
    for p in h5.split(',').filter(|p| !p.is_empty()) {
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()?;
            let path = std::path::PathBuf::from(p);
            let n = caliper_cspad::simulate::CSPAD_PIXELS;
            let (events, secs) = pool
                .install(
                    || -> Result<(u64, f64), Box<dyn std::error::Error + Send + Sync>> {
                        let t = Instant::now();
                        let mut src =
                            FrameSource::open(std::slice::from_ref(&path), "/data/cspad", n)?;
                        let opts = PassOptions {
                            chunk_events: chunk,
                            ..PassOptions::default()
                        };
                        let out = run_pass(&mut src, &Average::new(n), &opts, &NoProgress)?;
                        Ok((out.events, t.elapsed().as_secs_f64()))
                    },
                )
                .map_err(|e| e.to_string())?;
            println!(
                "round {round}: average {p} threads {threads} {:>8.1} frames/s {:>6.2} GB/s",
                events as f64 / secs,
                events as f64 * n as f64 * 2.0 / secs / 1e9
            );
        }
    }
    Ok(())
}
