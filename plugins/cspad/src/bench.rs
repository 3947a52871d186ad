//! Benchmarks (`caliper bench cspad`): averaging throughput on simulated CSPad frames.
//!
//! The frames are int16 ADU (CSPad's raw type) on a ~1200 ADU pedestal. Bytes are counted as
//! the int16 input (2 bytes per pixel), the same bytes numpy reads in
//! `benches/numpy_peer.py`.

use std::path::Path;
use std::time::Instant;

use caliper_core::error::RunError;
use caliper_core::h5::H5Writer;
use caliper_core::instrument::{BenchRecord, NoProgress};
use caliper_core::pipeline::{IterSource, PassOptions, run_pass};
use caliper_core::stats::PixelStats;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::average::Average;
use crate::io::frames::{Frame, FrameData, FrameSource};
use crate::simulate::{CSPAD_PIXELS, DATASET};

/// Frames per chunk used by the benchmarks (the config's default).
const CHUNK: usize = crate::config::DEFAULT_FRAMES_PER_CHUNK;

/// Average 64 simulated int16 CSPad frames from memory (best of 3 passes) and from an
/// HDF5 stack written by `H5Writer` (chunked, deflate-compressed; read + average), on the current rayon pool.
pub fn bench(scratch: &Path) -> Result<Vec<BenchRecord>, RunError> {
    bench_frames(scratch, 64, CHUNK, 3)
}

/// Simulated int16 CSPad frames (seeded, deterministic).
pub fn simulated_frames(frames: usize) -> Vec<i16> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    (0..frames * CSPAD_PIXELS)
        .map(|_| rng.random_range(1000..1400))
        .collect()
}

/// [`bench`] with a chosen number of frames, frames per chunk and repetitions of the
/// in-memory pass (the best one is reported).
pub fn bench_frames(
    scratch: &Path,
    frames: usize,
    chunk: usize,
    repeats: usize,
) -> Result<Vec<BenchRecord>, RunError> {
    let data = simulated_frames(frames);
    let mut out = bench_memory(&data, chunk, repeats)?;
    out.push(bench_h5(scratch, data, chunk)?);
    Ok(out)
}

/// The in-memory cases of [`bench_frames`] on given int16 frames: the averaging pass (best of
/// `repeats`) and `PixelStats::push_frames_par` alone.
pub fn bench_memory(
    data: &[i16],
    chunk: usize,
    repeats: usize,
) -> Result<Vec<BenchRecord>, RunError> {
    let frames = data.len() / CSPAD_PIXELS;
    let threads = rayon::current_num_threads();
    let bytes = (frames * CSPAD_PIXELS * 2) as f64;
    let mut out = Vec::new();
    let frames_mem: Vec<Frame> = data
        .chunks_exact(CSPAD_PIXELS)
        .enumerate()
        .map(|(k, c)| Frame {
            file: "memory".into(),
            index_in_file: k as u64,
            data: FrameData::I16(c.to_vec()),
        })
        .collect();
    let opts = PassOptions {
        chunk_events: chunk,
        ..PassOptions::default()
    };
    let average = Average::new(CSPAD_PIXELS);
    // In memory: the averaging pass alone (the frames are cloned before the clock starts).
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let copy = frames_mem.clone();
        let t = Instant::now();
        let mut src = IterSource::new(copy.into_iter().map(Ok));
        run_pass(&mut src, &average, &opts, &NoProgress)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    out.push(BenchRecord {
        name: format!("average (in memory, int16 frames, {chunk}-frame chunks, best of {repeats})"),
        items: frames as f64,
        item_unit: "frames".into(),
        bytes,
        seconds: best,
        threads,
    });
    // The core kernel alone: PixelStats::push_frames_par over calls of `chunk` frames (blocks
    // of at most 32, as the pass), one state, on the current pool; no pass machinery.
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        let mut s = PixelStats::new(CSPAD_PIXELS);
        for block in data.chunks(chunk * CSPAD_PIXELS) {
            let refs: Vec<&[i16]> = block.chunks_exact(CSPAD_PIXELS).collect();
            s.push_frames_par(&refs, 32)
                .map_err(|e| RunError::failed(e.to_string()))?;
        }
        std::hint::black_box(&s);
        best = best.min(t.elapsed().as_secs_f64());
    }
    out.push(BenchRecord {
        name: format!("PixelStats::push_frames_par alone ({chunk}-frame calls)"),
        items: frames as f64,
        item_unit: "frames".into(),
        bytes,
        seconds: best,
        threads,
    });
    Ok(out)
}

/// Reading + averaging the frames from an HDF5 stack as `H5Writer` writes it (chunked,
/// deflate-compressed).
fn bench_h5(scratch: &Path, data: Vec<i16>, chunk: usize) -> Result<BenchRecord, RunError> {
    let frames = data.len() / CSPAD_PIXELS;
    let threads = rayon::current_num_threads();
    let bytes = (frames * CSPAD_PIXELS * 2) as f64;
    let opts = PassOptions {
        chunk_events: chunk,
        ..PassOptions::default()
    };
    let average = Average::new(CSPAD_PIXELS);
    let path = scratch.join("cspad-bench.h5");
    let mut w = H5Writer::new();
    w.write_array(DATASET, &[frames, 32, 185, 388], &data)?;
    w.write(&path)?;
    drop(data);
    let t = Instant::now();
    let mut src = FrameSource::open(std::slice::from_ref(&path), DATASET, CSPAD_PIXELS)?;
    run_pass(&mut src, &average, &opts, &NoProgress)?;
    let rec = BenchRecord {
        name: "average (deflate-compressed HDF5 int16 stack, read + average)".into(),
        items: frames as f64,
        item_unit: "frames".into(),
        bytes,
        seconds: t.elapsed().as_secs_f64(),
        threads,
    };
    let _ = std::fs::remove_file(&path);
    Ok(rec)
}
