//! Time the chain (hit counts, masks, clusters + tracks + residuals, alignment) on events
//! already in memory, stage by stage (development helper for BENCHMARKS.md):
//! `cargo run --release -p caliper-alpide --example chain_stages -- <config.toml> <input>
//! [--threads N] [--repeat N] [--set key=value ...]`

use std::path::PathBuf;
use std::sync::Arc;

use caliper_alpide::event::Event;
use caliper_alpide::plan::AlpidePlan;
use caliper_core::config::ConfigDoc;
use caliper_core::instrument::{NoProgress, RunOptions};
use caliper_core::{Instrument, RunContext};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        return Err("usage: chain_stages <config.toml> <input> [--threads N] [--repeat N] [--set key=value]".into());
    }
    let mut doc = ConfigDoc::from_file(&PathBuf::from(&args[0]))?;
    let input = PathBuf::from(&args[1]);
    let (mut threads, mut repeat) = (1usize, 3usize);
    let mut it = args[2..].iter();
    while let Some(a) = it.next() {
        let v = it.next().ok_or("missing value")?;
        match a.as_str() {
            "--set" => doc.add_override(v)?,
            "--threads" => threads = v.parse()?,
            "--repeat" => repeat = v.parse()?,
            _ => return Err(format!("unknown option {a}").into()),
        }
    }
    let config = doc.parse()?;
    let plan = AlpidePlan {
        config,
        base_dir: caliper_alpide::plan::base_dir_of(&doc),
    };
    let _ = caliper_alpide::Alpide.id();
    let t0 = std::time::Instant::now();
    let map = plan.plane_map()?;
    let mut src = caliper_alpide::io::open_events(&input, &map)?;
    let mut events: Vec<Event> = Vec::new();
    while let Some(e) = src.next_event() {
        events.push(e?);
    }
    let ingest = t0.elapsed().as_secs_f64();
    let out = std::env::temp_dir().join("alpide_chain_stages");
    std::fs::create_dir_all(&out)?;
    let ctx = RunContext::new("stages", &out, RunOptions::default(), Arc::new(NoProgress));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    println!(
        "{} events, ingest {:.4} s ({threads} thread(s) for the chain)",
        events.len(),
        ingest
    );
    for _ in 0..repeat {
        let t = pool.install(|| plan.time_chain(&events, &ctx))?;
        let ns = |s: f64| s * 1e9 / t.events as f64;
        println!(
            "chain {:.4} s = {:.0} events/s | count {:.4} s ({:.0} ns/ev), mask {:.4} s, cluster+track {:.4} s ({:.0} ns/ev), align {:.4} s ({:.0} ns/ev); tracks {}",
            t.total(),
            t.events as f64 / t.total(),
            t.count,
            ns(t.count),
            t.mask,
            t.cluster_track,
            ns(t.cluster_track),
            t.align,
            ns(t.align),
            t.tracks
        );
    }
    Ok(())
}
