//! Benchmarks (`caliper bench alpide`): JSONWriter ingest (MB/s, events/s, one core) and the
//! whole chain (mask, cluster, track, one alignment iteration) in events/s.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use caliper_core::error::RunError;
use caliper_core::instrument::{NoProgress, RunOptions};
use caliper_core::pipeline::EventSource;
use caliper_core::{BenchRecord, RunContext, RunPlan};

use crate::config::{AlignmentMethod, AlpideConfig};
use crate::event::{Event, PlaneMap};
use crate::io::json::JsonReader;
use crate::plan::AlpidePlan;
use crate::simulate::{SimConfig, write};

/// Events simulated for the benchmarks.
pub const BENCH_EVENTS: usize = 50_000;

/// Run the benchmarks in `scratch`.
pub fn run(scratch: &Path) -> Result<Vec<BenchRecord>, RunError> {
    let cfg = SimConfig {
        events: BENCH_EVENTS,
        ..SimConfig::default()
    };
    let (path, _) = write(scratch, &cfg, 1)?;
    let bytes = std::fs::metadata(&path)
        .map_err(|e| RunError::io(&path, e))?
        .len() as f64;
    let mut out = Vec::new();
    // Ingest, one thread, reusing one event buffer.
    let t0 = Instant::now();
    let mut r = JsonReader::open(&path, PlaneMap::alpide(7))?;
    let mut ev = Event::default();
    let mut n = 0u64;
    let mut hits = 0usize;
    while r.read_into(&mut ev)? {
        n += 1;
        hits += ev.hits.len();
    }
    let secs = t0.elapsed().as_secs_f64();
    std::hint::black_box(hits);
    out.push(BenchRecord {
        name: "json ingest".into(),
        items: n as f64,
        item_unit: "events".into(),
        bytes,
        seconds: secs,
        threads: 1,
    });
    // Ingest through the EventSource (one allocation per event), for comparison; the events
    // are kept for the in-memory chain below.
    let t0 = Instant::now();
    let mut r = JsonReader::open(&path, PlaneMap::alpide(7))?;
    let mut n2 = 0u64;
    let mut events: Vec<Event> = Vec::with_capacity(BENCH_EVENTS);
    while let Some(e) = r.next_event() {
        events.push(e?);
        n2 += 1;
    }
    let source_secs = t0.elapsed().as_secs_f64();
    // The same events pretty-printed (ROOT's default ToJSON layout).
    let pretty_path = scratch.join("alpide_sim_pretty.json");
    {
        let sim = crate::simulate::simulate_events(&cfg, 1);
        let f = std::fs::File::create(&pretty_path).map_err(|e| RunError::io(&pretty_path, e))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        crate::io::json::write_events_styled(&mut w, &PlaneMap::alpide(7), sim.events, true)
            .map_err(|e| RunError::io(&pretty_path, e))?;
        std::io::Write::flush(&mut w).map_err(|e| RunError::io(&pretty_path, e))?;
    }
    let pretty_bytes = std::fs::metadata(&pretty_path)
        .map_err(|e| RunError::io(&pretty_path, e))?
        .len() as f64;
    let t0 = Instant::now();
    let mut r = JsonReader::open(&pretty_path, PlaneMap::alpide(7))?;
    let mut np = 0u64;
    while r.read_into(&mut ev)? {
        np += 1;
    }
    out.push(BenchRecord {
        name: "json ingest (pretty-printed)".into(),
        items: np as f64,
        item_unit: "events".into(),
        bytes: pretty_bytes,
        seconds: t0.elapsed().as_secs_f64(),
        threads: 1,
    });
    let _ = std::fs::remove_file(&pretty_path);
    out.push(BenchRecord {
        name: "json ingest (event source)".into(),
        items: n2 as f64,
        item_unit: "events".into(),
        bytes,
        seconds: source_secs,
        threads: 1,
    });
    // The chain on 1 thread and on all threads: on the events in memory (the chain as the issue
    // defines it: mask, cluster, track, one alignment iteration; no ingest, no output), then
    // the whole run from the file (ingest, chain, HDF5 and mask files).
    let mut config = AlpideConfig::default();
    config.alignment.method = AlignmentMethod::Chi2;
    config.alignment.max_iterations = 1;
    config.alignment.stage_cuts = vec![config.alignment.stage_cuts[0]];
    config.output.plots = false;
    config.output.max_cluster_rows = 0;
    let plan = AlpidePlan {
        config,
        base_dir: scratch.to_path_buf(),
    };
    for threads in [1usize, rayon::current_num_threads().max(1)] {
        let ctx = RunContext::new(
            "bench",
            scratch,
            RunOptions::default(),
            Arc::new(NoProgress),
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| RunError::failed(e.to_string()))?;
        let t = pool.install(|| plan.time_chain(&events, &ctx))?;
        out.push(BenchRecord {
            name: "chain in memory: mask, cluster, track, 1 alignment iteration".into(),
            items: t.events as f64,
            item_unit: "events".into(),
            bytes,
            seconds: t.total(),
            threads,
        });
        if threads == rayon::current_num_threads() {
            break;
        }
    }
    drop(events);
    for threads in [1usize, rayon::current_num_threads().max(1)] {
        let dir = scratch.join(format!("chain_{threads}"));
        std::fs::create_dir_all(&dir).map_err(|e| RunError::io(&dir, e))?;
        let ctx = RunContext::new("bench", &dir, RunOptions::default(), Arc::new(NoProgress));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| RunError::failed(e.to_string()))?;
        let t0 = Instant::now();
        pool.install(|| plan.run(std::slice::from_ref(&path), &ctx))?;
        out.push(BenchRecord {
            name: "whole run from the file (ingest, chain, outputs)".into(),
            items: n as f64,
            item_unit: "events".into(),
            bytes,
            seconds: t0.elapsed().as_secs_f64(),
            threads,
        });
        if threads == rayon::current_num_threads() {
            break;
        }
    }
    let _ = std::fs::remove_file(&path);
    Ok(out)
}
