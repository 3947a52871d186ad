//! The run plan: geometry and masks, pass 1 (hit counts -> hot pixels), pass 2 (clusters,
//! tracks, residuals), alignment, outputs (HDF5 tables, summary keys, plots, aligned geometry
//! and mask files).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use caliper_core::error::ReadError;
use caliper_core::error::RunError;
use caliper_core::h5::Table;
use caliper_core::hist::Hist1D;
use caliper_core::mask::PixelMask;
use caliper_core::pipeline::{
    Analysis, EventSource, IterSource, OnTruncation, PassOptions, run_pass,
};
use caliper_core::{RunContext, RunPlan};
use serde_json::{Map, Value, json};

use crate::align::{
    AlignStep, Chi2AlignParams, NotebookAlignParams, align_chi2, align_notebook, prealign,
    update_globals,
};
use crate::cluster::{Cluster, ClusterMode, Clusterer, MaskBits, PlaneInfo};
use crate::config::{AlignmentMethod, AlpideConfig, ClusteringMode, TrackingMode};
use crate::event::{Event, PlaneMap};
use crate::io::geometry::{DetectorGeometry, Geometry};
use crate::io::{maskfile, open_events};
use crate::mask::{HOT, MaskParams, Occupancy, OccupancyPass, hot_pixels};
use crate::track::{
    Line, Residual, Track, Tracker, TrackingParams, notebook_track, notebook_track_into,
    residuals_into,
};

/// Inputs up to this many bytes in total are read once and kept in memory for pass 2.
pub const KEEP_IN_MEMORY_BYTES: u64 = 512 << 20;

/// Passes events through and keeps a copy of each.
struct Tee<'a> {
    inner: Box<dyn EventSource<Event = Event>>,
    store: Option<&'a mut Vec<Event>>,
}

impl EventSource for Tee<'_> {
    type Event = Event;
    fn next_event(&mut self) -> Option<Result<Event, ReadError>> {
        let e = self.inner.next_event();
        if let (Some(Ok(ev)), Some(store)) = (&e, self.store.as_deref_mut()) {
            store.push(ev.clone());
        }
        e
    }
    fn bytes_read(&self) -> Option<u64> {
        self.inner.bytes_read()
    }
    fn total_bytes(&self) -> Option<u64> {
        self.inner.total_bytes()
    }
}

/// A configured ALPIDE run.
#[derive(Debug, Clone)]
pub struct AlpidePlan {
    /// The config.
    pub config: AlpideConfig,
    /// Folder that relative paths in the config are resolved against.
    pub base_dir: PathBuf,
}

/// Everything fixed before the passes.
struct Setup {
    geometry: Geometry,
    detectors: Vec<DetectorGeometry>,
    map: PlaneMap,
    planes: Vec<PlaneInfo>,
    tracking: TrackingParams,
    fixed: Vec<bool>,
    /// The planes' masks as bit sets (set by `apply_hot_pixels`), for the clustering.
    mask_bits: Vec<Option<MaskBits>>,
}

impl AlpidePlan {
    fn setup(&self, ctx: &RunContext) -> Result<Setup, RunError> {
        let c = &self.config;
        let geometry = if c.geometry.is_empty() {
            let mut g = Geometry::alpide_telescope(c.telescope.planes, c.telescope.spacing.mm());
            if c.telescope.spatial_resolution.mm() > 0.0 {
                for d in &mut g.detectors {
                    d.spatial_resolution = [c.telescope.spatial_resolution.mm(); 2];
                }
            }
            g
        } else {
            Geometry::read(&self.base_dir.join(&c.geometry))?
        };
        let detectors = geometry.sorted_by_z();
        let map = geometry.plane_map();
        let np = detectors.len();
        let mut planes = Vec::with_capacity(np);
        for d in &detectors {
            let mut mask = None;
            if c.masking.apply_mask_files
                && let Some(path) = geometry.mask_path(d)
            {
                if path.is_file() {
                    let mut m = PixelMask::new(
                        usize::from(d.number_of_pixels[1]),
                        usize::from(d.number_of_pixels[0]),
                    );
                    maskfile::apply(&maskfile::read(&path)?, &mut m, &path)?;
                    mask = Some(m);
                } else {
                    ctx.warn(format!(
                        "{}: mask_file {} not found; no pixels masked from it",
                        d.name,
                        path.display()
                    ));
                }
            }
            planes.push(PlaneInfo {
                transform: d.transform(),
                geometry: d.clone(),
                mask,
            });
        }
        let resolve = |names: &[String], key: &str| -> Result<Vec<bool>, RunError> {
            let mut v = vec![false; np];
            for n in names {
                let p = map.resolve(n.as_bytes()).ok_or_else(|| {
                    RunError::failed(format!(
                        "{key}: no detector \"{n}\" in the geometry (it has {})",
                        map.describe()
                    ))
                })?;
                v[p as usize] = true;
            }
            Ok(v)
        };
        let exclude_from_seed =
            resolve(&c.tracking.exclude_from_seed, "tracking.exclude_from_seed")?;
        let tracking_plane: Vec<bool> = detectors
            .iter()
            .map(|d| {
                let excluded_dut = c.tracking.exclude_dut && d.is_dut();
                !excluded_dut
                    && !d.roles.iter().any(|r| {
                        matches!(
                            r,
                            crate::io::geometry::Role::Auxiliary
                                | crate::io::geometry::Role::Passive
                        )
                    })
            })
            .collect();
        let spatial_cut = detectors
            .iter()
            .map(|d| {
                if c.tracking.spatial_cut_abs.mm() > 0.0 {
                    [c.tracking.spatial_cut_abs.mm(); 2]
                } else {
                    [
                        c.tracking.spatial_cut_rel * d.spatial_resolution[0],
                        c.tracking.spatial_cut_rel * d.spatial_resolution[1],
                    ]
                }
            })
            .collect();
        // Time cuts as Corryvreckan's Tracking4D: absolute, or relative to every plane's
        // time_resolution (none when a tracking plane has no time_resolution).
        let time_cut = if c.tracking.time_cut_abs.ns() > 0.0 {
            Some(vec![c.tracking.time_cut_abs.ns(); np])
        } else if detectors
            .iter()
            .zip(&tracking_plane)
            .all(|(d, &t)| !t || d.time_resolution.is_some())
        {
            Some(
                detectors
                    .iter()
                    .map(|d| c.tracking.time_cut_rel * d.time_resolution.unwrap_or(f64::INFINITY))
                    .collect(),
            )
        } else {
            None
        };
        let tracking = TrackingParams {
            min_hits_on_track: c.tracking.min_hits_on_track,
            spatial_cut,
            tracking_plane,
            exclude_from_seed,
            time_cut,
        };
        let mut fixed = resolve(&c.alignment.fixed_planes, "alignment.fixed_planes")?;
        if c.alignment.fixed_planes.is_empty() {
            if let Some(r) = detectors.iter().position(DetectorGeometry::is_reference) {
                fixed[r] = true;
            }
            if let Some(last) = (0..np).rev().find(|&p| tracking.tracking_plane[p]) {
                fixed[last] = true;
            }
        }
        let mask_bits = planes
            .iter()
            .map(|p| p.mask.as_ref().map(MaskBits::new))
            .collect();
        Ok(Setup {
            geometry,
            detectors,
            map,
            planes,
            tracking,
            fixed,
            mask_bits,
        })
    }

    fn pass_options(&self, ctx: &RunContext) -> PassOptions {
        PassOptions {
            chunk_events: 512,
            max_events: ctx.options().max_events,
            on_truncation: if ctx.options().allow_truncated {
                OnTruncation::KeepWithWarning
            } else {
                OnTruncation::Fail
            },
        }
    }
}

/// Residual histograms of one plane: biased x, y, unbiased x, y.
type PlaneHists = [Hist1D; 4];

/// Pass 2: clusters, tracks, residuals.
struct Chain<'a> {
    cfg: &'a AlpideConfig,
    planes: &'a [PlaneInfo],
    tracking: &'a TrackingParams,
    keep_for_alignment: bool,
    /// Empty residual histograms, cloned for every partial.
    hist_template: Vec<PlaneHists>,
    /// Empty chi2/ndof histogram.
    chi2_template: Hist1D,
    /// The planes' masks as bit sets, for the clustering.
    mask_bits: &'a [Option<MaskBits>],
    /// The largest block of rows merged so far (arena clusters, tracks, cluster-table events,
    /// alignment events): a new partial reserves that much, so its blocks do not grow by
    /// reallocating and copying. Only capacities depend on it, never results.
    rows_hint: [AtomicUsize; 4],
}

/// One track's table row: the track without its clusters.
#[derive(Debug, Clone, Copy, PartialEq)]
struct TrackRow {
    event: u64,
    line: Line,
    chi2: f64,
    ndof: i32,
    time: f64,
    clusters: u32,
}

impl TrackRow {
    fn of(t: &Track) -> Self {
        Self {
            event: t.event,
            line: t.line,
            chi2: t.chi2,
            ndof: t.ndof,
            time: t.time,
            clusters: t.clusters.len() as u32,
        }
    }

    /// chi2 / ndof as [`Track::chi2ndof`].
    fn chi2ndof(&self) -> f64 {
        if self.ndof > 0 {
            self.chi2 / f64::from(self.ndof)
        } else {
            -1.0
        }
    }
}

/// The rows one partial (a chunk of events) adds to the outputs. Partials are merged by
/// moving these blocks, not their rows; the tables are read across the blocks in order.
#[derive(Debug, Default)]
struct ChunkRows {
    /// The clusters kept for the cluster table and the alignment, one event after the other
    /// (an arena: no list per event; an event kept for both is stored once when all planes
    /// are tracking planes).
    clusters: Vec<Cluster>,
    /// The cluster table: per event its number and its clusters' range in `clusters`.
    table: Vec<(u64, u32, u32)>,
    /// Track table rows.
    tracks: Vec<TrackRow>,
    /// The tracks' residuals, 4 x planes per track (biased x, y, unbiased x, y; NaN where the
    /// track has no cluster).
    residuals: Vec<f64>,
    /// Per event kept for the alignment: its number and its tracking-plane clusters' range in
    /// `clusters`.
    align_events: Vec<(u64, u32, u32)>,
}

impl ChunkRows {
    /// Appends clusters to the arena; their range.
    fn push_clusters(&mut self, c: &[Cluster]) -> (u32, u32) {
        let a = self.clusters.len() as u32;
        self.clusters.extend_from_slice(c);
        (a, self.clusters.len() as u32)
    }

    /// Keeps the first `room` cluster table rows; returns how many are left.
    fn truncate_table(&mut self, room: usize) -> usize {
        let mut kept = 0usize;
        for k in 0..self.table.len() {
            let (_, a, b) = self.table[k];
            let n = (b - a) as usize;
            if kept + n > room {
                self.table[k].2 = a + (room - kept) as u32;
                kept = room;
                self.table.truncate(k + 1);
                break;
            }
            kept += n;
        }
        kept
    }

    /// The cluster table rows (event number, cluster).
    fn table_rows(&self) -> impl Iterator<Item = (u64, &Cluster)> {
        self.table.iter().flat_map(move |&(n, a, b)| {
            self.clusters[a as usize..b as usize]
                .iter()
                .map(move |c| (n, c))
        })
    }
}

/// Pass 2's partial state.
struct ChainPartial {
    clusterer: Clusterer,
    tracker: Tracker,
    clusters: Vec<Cluster>,
    /// The clusters on tracking planes (when some plane is not one).
    on_tracking: Vec<Cluster>,
    tracks_buf: Vec<Track>,
    /// The notebook track of the current event (its cluster list is reused).
    track: Track,
    res_buf: Vec<Residual>,
    events: u64,
    by_planes: Vec<u64>,
    clusters_per_plane: Vec<u64>,
    /// The output rows, one block per chunk folded, in event order.
    chunks: Vec<ChunkRows>,
    /// Cluster rows and alignment events kept so far (for the limits).
    n_cluster_rows: usize,
    n_align: usize,
    /// The first `output.event_display_tracks` tracks with their residual rows.
    display: Vec<(Track, Vec<f64>)>,
    hists: Vec<PlaneHists>,
    chi2: Hist1D,
}

impl ChainPartial {
    /// Number of tracks.
    fn n_tracks(&self) -> usize {
        self.chunks.iter().map(|c| c.tracks.len()).sum()
    }

    /// The track rows in event order.
    fn track_rows(&self) -> impl Iterator<Item = &TrackRow> {
        self.chunks.iter().flat_map(|c| c.tracks.iter())
    }

    /// The events kept for the alignment: (event number, its tracking-plane clusters).
    fn align_events(&self) -> Vec<(u64, &[Cluster])> {
        let mut v = Vec::with_capacity(self.n_align);
        for c in &self.chunks {
            v.extend(
                c.align_events
                    .iter()
                    .map(|&(n, a, b)| (n, &c.clusters[a as usize..b as usize])),
            );
        }
        v
    }
}

fn new_hists(np: usize, range: f64, bins: usize) -> Result<Vec<PlaneHists>, RunError> {
    let h = Hist1D::new(-range, range, bins)
        .map_err(|e| RunError::failed(format!("output.residual_range / residual_bins: {e}")))?;
    Ok(vec![std::array::from_fn(|_| h.clone()); np])
}

fn fill_residuals(
    hists: &mut [PlaneHists],
    t: &Track,
    svd: bool,
    row: Option<&mut [f64]>,
    scratch: &mut Vec<Residual>,
) {
    residuals_into(t, svd, true, scratch);
    let mut row = row;
    for &(p, b, u) in scratch.iter() {
        let h = &mut hists[p as usize];
        h[0].fill(b[0]);
        h[1].fill(b[1]);
        if u[0].is_finite() {
            h[2].fill(u[0]);
            h[3].fill(u[1]);
        }
        if let Some(r) = row.as_deref_mut() {
            let k = 4 * p as usize;
            r[k..k + 4].copy_from_slice(&[b[0], b[1], u[0], u[1]]);
        }
    }
}

impl Chain<'_> {
    /// An empty block of rows with the capacity of the largest block merged so far.
    fn new_rows(&self) -> ChunkRows {
        let h = |k: usize| self.rows_hint[k].load(Ordering::Relaxed);
        let np = self.planes.len();
        ChunkRows {
            clusters: Vec::with_capacity(h(0)),
            table: Vec::with_capacity(h(2)),
            tracks: Vec::with_capacity(h(1)),
            residuals: Vec::with_capacity(h(1) * 4 * np),
            align_events: Vec::with_capacity(h(3)),
        }
    }

    fn mode(&self) -> ClusterMode {
        match self.cfg.clustering.mode {
            ClusteringMode::Spatial => ClusterMode::Spatial {
                charge_weighting: self.cfg.clustering.charge_weighting,
            },
            ClusteringMode::WholePlane => ClusterMode::WholePlane,
        }
    }
}

impl Analysis<Event> for Chain<'_> {
    type Partial = ChainPartial;
    type Output = ChainPartial;

    fn init(&self) -> ChainPartial {
        let np = self.planes.len();
        ChainPartial {
            clusterer: Clusterer::default(),
            tracker: Tracker::default(),
            clusters: Vec::new(),
            on_tracking: Vec::new(),
            tracks_buf: Vec::new(),
            track: Track::default(),
            res_buf: Vec::new(),
            events: 0,
            by_planes: vec![0; np + 1],
            clusters_per_plane: vec![0; np],
            chunks: vec![self.new_rows()],
            n_cluster_rows: 0,
            n_align: 0,
            display: Vec::new(),
            hists: self.hist_template.clone(),
            chi2: self.chi2_template.clone(),
        }
    }

    fn fold(&self, p: &mut ChainPartial, e: &Event, _index: u64) -> Result<(), RunError> {
        let ChainPartial {
            clusterer,
            tracker,
            clusters,
            on_tracking,
            tracks_buf,
            track,
            res_buf,
            events,
            by_planes,
            clusters_per_plane,
            chunks,
            n_cluster_rows,
            n_align,
            display,
            hists,
            chi2,
        } = p;
        *events += 1;
        clusters.clear();
        clusterer.cluster_event_bits(&e.hits, self.planes, self.mask_bits, self.mode(), clusters);
        let mut hit = 0u64;
        for c in clusters.iter() {
            clusters_per_plane[c.plane as usize] += 1;
            hit |= 1 << c.plane.min(63);
        }
        by_planes[hit.count_ones() as usize] += 1;
        if chunks.is_empty() {
            chunks.push(ChunkRows::default());
        }
        let Some(rows) = chunks.last_mut() else {
            return Ok(());
        };
        let mut table_range = None;
        if *n_cluster_rows < self.cfg.output.max_cluster_rows && !clusters.is_empty() {
            let (a, b) = rows.push_clusters(clusters);
            rows.table.push((e.number, a, b));
            *n_cluster_rows += clusters.len();
            table_range = Some((a, b));
        }
        let svd = self.cfg.tracking.mode == TrackingMode::Notebook;
        let all_tracking = self.tracking.tracking_plane.iter().all(|&t| t);
        let on_tracking: &[Cluster] = if all_tracking {
            clusters
        } else {
            on_tracking.clear();
            on_tracking.extend(
                clusters
                    .iter()
                    .filter(|c| self.tracking.tracking_plane[c.plane as usize])
                    .copied(),
            );
            on_tracking
        };
        let np = self.planes.len();
        let mut record = |t: &Track| {
            chi2.fill(t.chi2ndof());
            rows.tracks.push(TrackRow::of(t));
            let start = rows.residuals.len();
            rows.residuals.resize(start + 4 * np, f64::NAN);
            fill_residuals(hists, t, svd, Some(&mut rows.residuals[start..]), res_buf);
            if display.len() < self.cfg.output.event_display_tracks {
                display.push((t.clone(), rows.residuals[start..].to_vec()));
            }
        };
        if svd {
            if notebook_track_into(
                e.number,
                on_tracking,
                self.tracking.min_hits_on_track,
                track,
            ) {
                record(track);
            }
        } else {
            tracks_buf.clear();
            tracker.tracking4d(
                e.number,
                on_tracking,
                self.planes,
                self.tracking,
                tracks_buf,
            );
            for t in tracks_buf.iter() {
                record(t);
            }
        }
        if self.keep_for_alignment {
            let planes_hit = on_tracking
                .iter()
                .fold(0u64, |m, c| m | (1 << c.plane.min(63)))
                .count_ones() as usize;
            let max = self.cfg.alignment.max_events;
            if planes_hit >= self.tracking.min_hits_on_track && (max == 0 || *n_align < max) {
                // The event's clusters are in the arena already when they are the table's.
                let (a, b) = match table_range {
                    Some(r) if all_tracking => r,
                    _ => rows.push_clusters(on_tracking),
                };
                rows.align_events.push((e.number, a, b));
                *n_align += 1;
            }
        }
        Ok(())
    }

    fn merge(&self, acc: &mut ChainPartial, next: ChainPartial) {
        acc.events += next.events;
        for (a, b) in acc.by_planes.iter_mut().zip(&next.by_planes) {
            *a += b;
        }
        for (a, b) in acc
            .clusters_per_plane
            .iter_mut()
            .zip(&next.clusters_per_plane)
        {
            *a += b;
        }
        let max_rows = self.cfg.output.max_cluster_rows;
        let max_align = match self.cfg.alignment.max_events {
            0 => usize::MAX,
            m => m,
        };
        for mut c in next.chunks {
            let lens = [
                c.clusters.len(),
                c.tracks.len(),
                c.table.len(),
                c.align_events.len(),
            ];
            for (h, n) in self.rows_hint.iter().zip(lens) {
                h.fetch_max(n, Ordering::Relaxed);
            }
            let room = max_rows.saturating_sub(acc.n_cluster_rows);
            acc.n_cluster_rows += c.truncate_table(room);
            let room = max_align.saturating_sub(acc.n_align);
            c.align_events.truncate(room);
            acc.n_align += c.align_events.len();
            acc.chunks.push(c);
        }
        let room = self
            .cfg
            .output
            .event_display_tracks
            .saturating_sub(acc.display.len());
        acc.display.extend(next.display.into_iter().take(room));
        for (a, b) in acc.hists.iter_mut().zip(&next.hists) {
            for k in 0..4 {
                let _ = a[k].merge(&b[k]);
            }
        }
        let _ = acc.chi2.merge(&next.chi2);
    }

    fn finish(&self, acc: ChainPartial) -> Result<ChainPartial, RunError> {
        Ok(acc)
    }
}

fn um(x: f64) -> f64 {
    (x * 1e3 * 1e4).round() / 1e4
}

fn rms_json(hists: &[PlaneHists], names: &[String]) -> Value {
    let mut m = Map::new();
    for (h, n) in hists.iter().zip(names) {
        let r = |k: usize| h[k].rms().map_or(Value::Null, |v| json!(um(v)));
        m.insert(
            n.clone(),
            json!({"x": r(0), "y": r(1), "x_unbiased": r(2), "y_unbiased": r(3), "tracks": h[0].entries()}),
        );
    }
    Value::Object(m)
}

/// Seconds spent in each stage of the chain (see [`AlpidePlan::time_chain`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    /// Events processed.
    pub events: u64,
    /// Hit counts (one pass over the events).
    pub count: f64,
    /// Hot-pixel search and the planes' masks.
    pub mask: f64,
    /// Clusters, tracks and residuals (one pass over the events).
    pub cluster_track: f64,
    /// The alignment.
    pub align: f64,
    /// Tracks found (a check that the work was done).
    pub tracks: usize,
}

impl StageTimes {
    /// The whole chain (count + mask + cluster/track + align).
    pub fn total(&self) -> f64 {
        self.count + self.mask + self.cluster_track + self.align
    }
}

/// Runs an [`Analysis`] over borrowed events (events already in memory).
struct ByRef<'a, A>(&'a A);

impl<'e, A: Analysis<Event>> Analysis<&'e Event> for ByRef<'_, A> {
    type Partial = A::Partial;
    type Output = A::Output;
    fn init(&self) -> A::Partial {
        self.0.init()
    }
    fn fold(&self, p: &mut A::Partial, e: &&'e Event, index: u64) -> Result<(), RunError> {
        self.0.fold(p, e, index)
    }
    fn merge(&self, acc: &mut A::Partial, next: A::Partial) {
        self.0.merge(acc, next);
    }
    fn finish(&self, acc: A::Partial) -> Result<A::Output, RunError> {
        self.0.finish(acc)
    }
}

impl AlpidePlan {
    /// The plane map of the configured geometry (to read inputs outside [`RunPlan::run`]).
    pub fn plane_map(&self) -> Result<PlaneMap, RunError> {
        let c = &self.config;
        let geometry = if c.geometry.is_empty() {
            Geometry::alpide_telescope(c.telescope.planes, c.telescope.spacing.mm())
        } else {
            Geometry::read(&self.base_dir.join(&c.geometry))?
        };
        Ok(geometry.plane_map())
    }

    /// The chain as the benchmark defines it (hit counts, hot-pixel masks, clusters, tracks and
    /// residuals, the alignment as configured) on events already in memory, each stage timed;
    /// no output is written. Runs on the current rayon pool, with the same code as
    /// [`RunPlan::run`].
    pub fn time_chain(&self, events: &[Event], ctx: &RunContext) -> Result<StageTimes, RunError> {
        use std::time::Instant;
        let mut s = self.setup(ctx)?;
        let opts = PassOptions {
            max_events: None,
            ..self.pass_options(ctx)
        };
        let progress = caliper_core::instrument::NoProgress;
        let mut t = StageTimes {
            events: events.len() as u64,
            ..StageTimes::default()
        };
        let t0 = Instant::now();
        let occ_pass = OccupancyPass {
            planes: s.map.clone(),
        };
        let mut src = IterSource::new(events.iter().map(Ok));
        let occ = run_pass(&mut src, &ByRef(&occ_pass), &opts, &progress)?.output;
        t.count = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let hot = self.apply_hot_pixels(&mut s, &occ);
        std::hint::black_box(&hot);
        t.mask = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let chain = self.chain(&s)?;
        let mut src = IterSource::new(events.iter().map(Ok));
        let res = run_pass(&mut src, &ByRef(&chain), &opts, &progress)?.output;
        t.cluster_track = t0.elapsed().as_secs_f64();
        t.tracks = res.n_tracks();
        let t0 = Instant::now();
        if self.config.alignment.method != AlignmentMethod::None {
            let out = self.align(&s, &res.align_events())?;
            std::hint::black_box(&out);
        }
        t.align = t0.elapsed().as_secs_f64();
        Ok(t)
    }

    /// Finds the hot pixels and sets them in the planes' mask bit sets; returns them per plane
    /// as row-major pixel indices.
    fn apply_hot_pixels(&self, s: &mut Setup, occ: &Occupancy) -> Vec<Vec<u32>> {
        let cfg = &self.config;
        let pitch: Vec<[f64; 2]> = s.detectors.iter().map(|d| d.pixel_pitch).collect();
        let mp = MaskParams {
            method: cfg.masking.method,
            frequency_cut: cfg.masking.frequency_cut,
            density_bandwidth: cfg.masking.density_bandwidth,
            sigma_above_avg_max: cfg.masking.sigma_above_avg_max,
            rate_max: cfg.masking.rate_max,
            notebook_factor: cfg.masking.notebook_factor,
        };
        let hot = hot_pixels(occ, &s.map, &pitch, &mp);
        for ((h, info), bits) in hot.iter().zip(&mut s.planes).zip(&mut s.mask_bits) {
            if h.is_empty() {
                continue;
            }
            let d = &info.geometry;
            let cols = usize::from(d.number_of_pixels[0]);
            let rows = usize::from(d.number_of_pixels[1]);
            match bits {
                Some(b) => b.set_indices(h),
                None => *bits = Some(MaskBits::from_indices(cols, rows, h)),
            }
        }
        hot
    }

    /// Sets the hot pixels in the planes' masks (what the outputs report; the clustering uses
    /// the bit sets).
    fn mask_hot_pixels(s: &mut Setup, hot: &[Vec<u32>]) {
        for (h, info) in hot.iter().zip(&mut s.planes) {
            if h.is_empty() {
                continue;
            }
            let d = &info.geometry;
            let cols = usize::from(d.number_of_pixels[0]);
            let m = info
                .mask
                .get_or_insert_with(|| PixelMask::new(usize::from(d.number_of_pixels[1]), cols));
            for &i in h {
                let _ = m.set(i as usize / cols, i as usize % cols, HOT);
            }
        }
    }

    /// The clustering and tracking pass.
    fn chain<'a>(&'a self, s: &'a Setup) -> Result<Chain<'a>, RunError> {
        let cfg = &self.config;
        let np = s.planes.len();
        Ok(Chain {
            cfg,
            planes: &s.planes,
            tracking: &s.tracking,
            keep_for_alignment: cfg.alignment.method != AlignmentMethod::None,
            hist_template: new_hists(np, cfg.output.residual_range.mm(), cfg.output.residual_bins)?,
            chi2_template: Hist1D::new(0.0, cfg.tracking.max_plot_chi2, 100)
                .map_err(|e| RunError::failed(format!("tracking.max_plot_chi2: {e}")))?,
            mask_bits: &s.mask_bits,
            rows_hint: Default::default(),
        })
    }

    /// The alignment (method as configured): the aligned planes, the history, and whether
    /// every stage converged.
    fn align(
        &self,
        s: &Setup,
        align_events: &[(u64, &[Cluster])],
    ) -> Result<(Vec<PlaneInfo>, Vec<AlignStep>, bool), RunError> {
        let cfg = &self.config;
        let a = &cfg.alignment;
        let mut history = Vec::new();
        let mut converged = true;
        // The masks are not needed (and not copied): clusters are already made.
        let mut planes: Vec<PlaneInfo> = s
            .planes
            .iter()
            .map(|p| PlaneInfo {
                geometry: p.geometry.clone(),
                transform: p.transform,
                mask: None,
            })
            .collect();
        match a.method {
            AlignmentMethod::Chi2 => {
                if a.prealign {
                    prealign(align_events, &mut planes, &s.fixed);
                }
                let par = Chi2AlignParams {
                    fixed: s.fixed.clone(),
                    rotation: a.align_rotation,
                    tilts: a.align_tilts,
                    stage_cuts: a.stage_cuts.iter().map(|c| c.mm()).collect(),
                    max_iterations: a.max_iterations,
                    tolerance_shift: a.tolerance_shift.mm(),
                    tolerance_rotation: a.tolerance_rotation.rad(),
                    max_track_chi2ndof: a.max_track_chi2ndof,
                    tracking: s.tracking.clone(),
                };
                (history, converged) =
                    align_chi2(align_events, &mut planes, &par).map_err(RunError::failed)?;
            }
            AlignmentMethod::Notebook => {
                let par = NotebookAlignParams {
                    fixed: s.fixed.clone(),
                    alignments: a.alignments,
                    fine_alignments: a.fine_alignments,
                    min_planes: cfg.tracking.min_hits_on_track,
                    fine_residual_cut: a.fine_residual_cut.mm(),
                };
                history = align_notebook(align_events, &mut planes, &par);
            }
            AlignmentMethod::None => {}
        }
        Ok((planes, history, converged))
    }
}

impl RunPlan for AlpidePlan {
    fn resolved_config(&self) -> String {
        // The geometry path resolved against the config's folder, so the text stands alone.
        let mut config = self.config.clone();
        if !config.geometry.is_empty() {
            config.geometry = self.base_dir.join(&config.geometry).display().to_string();
        }
        let body = toml::to_string(&config).unwrap_or_default();
        format!("instrument = \"alpide\"\n{body}")
    }

    fn run(&self, inputs: &[PathBuf], ctx: &RunContext) -> Result<(), RunError> {
        if inputs.is_empty() {
            return Err(RunError::failed(
                "no input files: give Corryvreckan JSONWriter (.json) or TextWriter files",
            ));
        }
        let cfg = &self.config;
        let mut s = self.setup(ctx)?;
        let np = s.planes.len();
        let opts = self.pass_options(ctx);
        let mut truncated = Vec::new();

        // Pass 1: hit counts of every pixel over all inputs.
        ctx.progress().set_message("pass 1/2: hit counts");
        let occ_pass = OccupancyPass {
            planes: s.map.clone(),
        };
        let mut occ: Option<Occupancy> = None;
        // Small inputs are kept in memory after pass 1 (a hit takes 8 bytes there against
        // ~200 in JSONWriter text), so pass 2 does not parse them again.
        let total_bytes: u64 = inputs
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let keep = total_bytes <= KEEP_IN_MEMORY_BYTES;
        let mut kept: Vec<Vec<Event>> = Vec::new();
        for input in inputs {
            let inner = open_events(input, &s.map)?;
            let mut store = Vec::new();
            let mut src = Tee {
                inner,
                store: keep.then_some(&mut store),
            };
            let out = run_pass(&mut src, &occ_pass, &opts, ctx.progress())?;
            kept.push(store);
            if let Some(t) = &out.truncated {
                truncated.push(t.to_string());
                ctx.warn(format!("{t} (kept the {} events before it)", out.events));
            }
            match &mut occ {
                None => occ = Some(out.output),
                Some(o) => o.add(&out.output),
            }
        }
        let occ = occ.unwrap_or_default();
        let hot_list = self.apply_hot_pixels(&mut s, &occ);
        Self::mask_hot_pixels(&mut s, &hot_list);
        let hot: Vec<PixelMask> = hot_list
            .iter()
            .zip(&s.detectors)
            .map(|(h, d)| {
                let cols = usize::from(d.number_of_pixels[0]);
                let mut m = PixelMask::new(usize::from(d.number_of_pixels[1]), cols);
                for &i in h {
                    let _ = m.set(i as usize / cols, i as usize % cols, HOT);
                }
                m
            })
            .collect();
        let mut masked = Map::new();
        let mut hot_count = Map::new();
        for (p, h) in hot.iter().enumerate() {
            let m = s.planes[p].mask.as_ref().map_or(0, PixelMask::count_masked);
            masked.insert(s.detectors[p].name.clone(), json!(m));
            hot_count.insert(s.detectors[p].name.clone(), json!(h.count(HOT)));
        }

        // Pass 2: clusters, tracks, residuals.
        ctx.progress().set_message("pass 2/2: clusters and tracks");
        let chain = self.chain(&s)?;
        let mut res: Option<ChainPartial> = None;
        for (k, input) in inputs.iter().enumerate() {
            let out = if keep {
                let events = std::mem::take(&mut kept[k]);
                let mut src = IterSource::new(events.into_iter().map(Ok));
                run_pass(&mut src, &chain, &opts, ctx.progress())?
            } else {
                let mut src = open_events(input, &s.map)?;
                run_pass(src.as_mut(), &chain, &opts, ctx.progress())?
            };
            match &mut res {
                None => res = Some(out.output),
                Some(r) => chain.merge(r, out.output),
            }
        }
        let Some(res) = res else {
            return Err(RunError::failed("no events read"));
        };

        // Alignment.
        let names: Vec<String> = s.detectors.iter().map(|d| d.name.clone()).collect();
        let mut history: Vec<AlignStep> = Vec::new();
        let mut converged = true;
        let mut after: Option<Vec<PlaneHists>> = None;
        let mut display: Vec<(Track, Vec<f64>)> = Vec::new();
        let align_events = res.align_events();
        if cfg.alignment.method != AlignmentMethod::None {
            ctx.progress().set_message("alignment");
            let a = &cfg.alignment;
            let (planes, h, c) = self.align(&s, &align_events)?;
            (history, converged) = (h, c);
            if !converged {
                ctx.warn(
                    "alignment: a stage stopped at alignment.max_iterations before converging",
                );
            }
            // Residuals with the aligned geometry.
            let mut hists =
                new_hists(np, cfg.output.residual_range.mm(), cfg.output.residual_bins)?;
            let mut tp = s.tracking.clone();
            if a.method == AlignmentMethod::Chi2
                && let Some(last) = a.stage_cuts.last()
            {
                tp.spatial_cut = vec![[last.mm(); 2]; np];
            }
            let svd = cfg.tracking.mode == TrackingMode::Notebook;
            let mut tracker = Tracker::default();
            let mut buf = Vec::new();
            let mut tracks = Vec::new();
            let mut scratch = Vec::new();
            for &(n, cl) in &align_events {
                buf.clear();
                buf.extend_from_slice(cl);
                update_globals(&mut buf, &planes);
                tracks.clear();
                if svd {
                    tracks.extend(notebook_track(n, &buf, tp.min_hits_on_track));
                } else {
                    tracker.tracking4d(n, &buf, &planes, &tp, &mut tracks);
                }
                for t in &tracks {
                    fill_residuals(&mut hists, t, svd, None, &mut scratch);
                }
                if display.len() < cfg.output.event_display_tracks {
                    display.extend(
                        tracks
                            .iter()
                            .take(cfg.output.event_display_tracks - display.len())
                            .map(|t| (t.clone(), Vec::new())),
                    );
                }
            }
            after = Some(hists);
            // The aligned geometry file, in the input file's detector order.
            let mut g = s.geometry.clone();
            for d in &mut g.detectors {
                if let Some(p) = planes.iter().find(|p| p.geometry.name == d.name) {
                    d.position = p.geometry.position;
                    d.orientation = p.geometry.orientation;
                }
            }
            let text = g.to_text(&format!(
                "Aligned by caliper-alpide ({:?} method), run {}",
                a.method,
                ctx.name()
            ));
            let path = ctx.output_path("aligned_geometry.conf");
            std::fs::write(&path, text).map_err(|e| RunError::io(&path, e))?;
            for (p, new) in s.planes.iter_mut().zip(planes) {
                p.geometry = new.geometry;
                p.transform = new.transform;
            }
        }

        // Mask files (hot pixels found in this run), one per detector.
        for (p, h) in hot.iter().enumerate() {
            let path = ctx.output_path(&format!("mask_{}.txt", s.detectors[p].name));
            let text = maskfile::to_text(
                h,
                &format!(
                    "hot pixels of {} ({:?} method), caliper-alpide",
                    s.detectors[p].name, cfg.masking.method
                ),
            );
            std::fs::write(&path, text).map_err(|e| RunError::io(&path, e))?;
        }

        self.write_h5(ctx, &s, &occ, &res, &history)?;

        // Summary.
        ctx.summary("events_read", json!(res.events));
        ctx.summary("pixel_hits", json!(occ.hits));
        ctx.summary("events_by_hit_planes", json!(res.by_planes));
        ctx.summary("masked_pixels", Value::Object(masked));
        ctx.summary("hot_pixels", Value::Object(hot_count));
        let total_hot: usize = hot.iter().map(|h| h.count(HOT)).sum();
        if total_hot <= 5000 {
            let list: Map<String, Value> = hot
                .iter()
                .zip(&names)
                .map(|(h, n)| {
                    let px: Vec<Value> = h
                        .iter_masked()
                        .filter(|&(_, _, f)| f & HOT.value() != 0)
                        .map(|(r, c, _)| json!([c, r]))
                        .collect();
                    (n.clone(), Value::Array(px))
                })
                .collect();
            ctx.summary("hot_pixel_list", Value::Object(list));
        }
        let cpp: Map<String, Value> = names
            .iter()
            .cloned()
            .zip(res.clusters_per_plane.iter().map(|&c| json!(c)))
            .collect();
        ctx.summary("clusters_per_plane", Value::Object(cpp));
        ctx.summary(
            "clusters",
            json!(res.clusters_per_plane.iter().sum::<u64>()),
        );
        let n_tracks = res.n_tracks();
        ctx.summary("tracks", json!(n_tracks));
        let mean_chi = if n_tracks == 0 {
            Value::Null
        } else {
            json!(res.track_rows().map(TrackRow::chi2ndof).sum::<f64>() / n_tracks as f64)
        };
        ctx.summary("mean_chi2ndof", mean_chi);
        ctx.summary("residual_rms_um", rms_json(&res.hists, &names));
        if let Some(h) = &after {
            ctx.summary("residual_rms_after_alignment_um", rms_json(h, &names));
        }
        if !history.is_empty() {
            let last_it = history.iter().map(|h| h.iteration).max().unwrap_or(0);
            let mut planes_json = Map::new();
            for h in history.iter().filter(|h| h.iteration == last_it) {
                // Shifts relative to the input geometry (before prealignment).
                let d0 = &s.detectors[h.plane];
                let (sx, sy, sr) = (d0.position[0], d0.position[1], d0.orientation[2]);
                planes_json.insert(
                    d0.name.clone(),
                    json!({
                        "x_um": um(h.position[0]), "y_um": um(h.position[1]), "rot_z_mrad": h.rotation_z * 1e3,
                        "shift_x_um": um(h.position[0] - sx), "shift_y_um": um(h.position[1] - sy),
                        "shift_rot_z_mrad": (h.rotation_z - sr) * 1e3,
                        "error_x_um": um(h.error[0]), "error_y_um": um(h.error[1]), "error_rot_z_mrad": h.error[2] * 1e3,
                        "rot_x_mrad": h.tilts[0] * 1e3, "rot_y_mrad": h.tilts[1] * 1e3,
                        "error_rot_x_mrad": h.tilt_errors[0] * 1e3, "error_rot_y_mrad": h.tilt_errors[1] * 1e3,
                        "fixed": s.fixed[h.plane],
                        "aligned": !s.fixed[h.plane] && s.tracking.tracking_plane[h.plane],
                    }),
                );
            }
            ctx.summary(
                "alignment",
                json!({"method": format!("{:?}", cfg.alignment.method).to_lowercase(), "iterations": last_it, "converged": converged, "events_used": align_events.len(), "planes": planes_json}),
            );
        }
        ctx.summary("truncated_inputs", json!(truncated));
        if cfg.output.plots {
            let shown = if display.is_empty() {
                &res.display
            } else {
                &display
            };
            crate::plots::write_all(
                ctx,
                &names,
                &occ,
                &res.hists,
                after.as_deref(),
                &res.chi2,
                &history,
                shown,
                cfg.output.event_display_tracks,
            )?;
        }
        Ok(())
    }
}

impl AlpidePlan {
    fn write_h5(
        &self,
        ctx: &RunContext,
        s: &Setup,
        occ: &Occupancy,
        res: &ChainPartial,
        history: &[AlignStep],
    ) -> Result<(), RunError> {
        let np = s.planes.len();
        let mut h5 = ctx.h5();
        // Clusters.
        let r: Vec<(u64, &Cluster)> = res.chunks.iter().flat_map(ChunkRows::table_rows).collect();
        let mut t = Table::new();
        t.push_u64("event", r.iter().map(|x| x.0).collect());
        t.push_u16("plane", r.iter().map(|x| x.1.plane).collect());
        t.push_f64("column", r.iter().map(|x| x.1.col).collect());
        t.push_f64("row", r.iter().map(|x| x.1.row).collect());
        t.push_f64("local_x", r.iter().map(|x| x.1.local[0]).collect());
        t.push_f64("local_y", r.iter().map(|x| x.1.local[1]).collect());
        t.push_f64("global_x", r.iter().map(|x| x.1.global[0]).collect());
        t.push_f64("global_y", r.iter().map(|x| x.1.global[1]).collect());
        t.push_f64("global_z", r.iter().map(|x| x.1.global[2]).collect());
        t.push_u32("size", r.iter().map(|x| x.1.size).collect());
        t.push_u32("col_width", r.iter().map(|x| x.1.col_width).collect());
        t.push_u32("row_width", r.iter().map(|x| x.1.row_width).collect());
        t.push_f64("charge", r.iter().map(|x| x.1.charge).collect());
        for c in ["local_x", "local_y", "global_x", "global_y", "global_z"] {
            t.set_unit(c, "mm");
        }
        h5.write_table("/alpide/clusters", &t)?;
        // Tracks.
        let tr: Vec<&TrackRow> = res.track_rows().collect();
        let mut t = Table::new();
        t.push_u64("event", tr.iter().map(|x| x.event).collect());
        t.push_f64("x0", tr.iter().map(|x| x.line.x0).collect());
        t.push_f64("y0", tr.iter().map(|x| x.line.y0).collect());
        t.push_f64("slope_x", tr.iter().map(|x| x.line.sx).collect());
        t.push_f64("slope_y", tr.iter().map(|x| x.line.sy).collect());
        t.push_f64("chi2", tr.iter().map(|x| x.chi2).collect());
        t.push_i32("ndof", tr.iter().map(|x| x.ndof).collect());
        t.push_f64("time", tr.iter().map(|x| x.time).collect());
        t.set_unit("time", "ns");
        t.push_u32("clusters", tr.iter().map(|x| x.clusters).collect());
        for p in 0..np {
            for (k, what) in ["res_x", "res_y", "ures_x", "ures_y"].iter().enumerate() {
                let name = format!("{what}_{p}");
                t.push_f64(
                    &name,
                    res.chunks
                        .iter()
                        .flat_map(|c| c.residuals.chunks_exact(4 * np))
                        .map(|row| row[4 * p + k])
                        .collect(),
                );
                t.set_unit(&name, "mm");
            }
        }
        t.set_unit("x0", "mm").set_unit("y0", "mm");
        h5.write_table("/alpide/tracks", &t)?;
        // Histograms.
        for (p, h) in res.hists.iter().enumerate() {
            for (k, what) in ["biased_x", "biased_y", "unbiased_x", "unbiased_y"]
                .iter()
                .enumerate()
            {
                let path = format!("/alpide/residuals/{}/{what}", s.detectors[p].name);
                h5.write_array(&path, &[h[k].counts().len()], h[k].counts())?;
                h5.write_array(
                    &format!("{path}_edges"),
                    &[h[k].edges().len()],
                    &h[k].edges(),
                )?;
            }
        }
        h5.write_array(
            "/alpide/chi2ndof/counts",
            &[res.chi2.counts().len()],
            res.chi2.counts(),
        )?;
        h5.write_array(
            "/alpide/chi2ndof/edges",
            &[res.chi2.edges().len()],
            &res.chi2.edges(),
        )?;
        // Hit maps and masks.
        for (p, d) in s.detectors.iter().enumerate() {
            let shape = [
                usize::from(d.number_of_pixels[1]),
                usize::from(d.number_of_pixels[0]),
            ];
            if p < occ.pixels.len() {
                h5.write_array(
                    &format!("/alpide/hitmaps/{}", d.name),
                    &shape,
                    &occ.dense(p),
                )?;
            }
            if let Some(m) = &s.planes[p].mask {
                h5.write_array(&format!("/alpide/mask/{}", d.name), &shape, &m.to_u8())?;
            }
        }
        // Alignment history.
        if !history.is_empty() {
            let mut t = Table::new();
            t.push_u32("stage", history.iter().map(|h| h.stage as u32).collect());
            t.push_u32(
                "iteration",
                history.iter().map(|h| h.iteration as u32).collect(),
            );
            t.push_u16("plane", history.iter().map(|h| h.plane as u16).collect());
            t.push_f64("x", history.iter().map(|h| h.position[0]).collect());
            t.push_f64("y", history.iter().map(|h| h.position[1]).collect());
            t.push_f64("rot_z", history.iter().map(|h| h.rotation_z).collect());
            t.push_f64("error_x", history.iter().map(|h| h.error[0]).collect());
            t.push_f64("error_y", history.iter().map(|h| h.error[1]).collect());
            t.push_f64("error_rot_z", history.iter().map(|h| h.error[2]).collect());
            t.push_f64("rot_x", history.iter().map(|h| h.tilts[0]).collect());
            t.push_f64("rot_y", history.iter().map(|h| h.tilts[1]).collect());
            t.push_f64(
                "error_rot_x",
                history.iter().map(|h| h.tilt_errors[0]).collect(),
            );
            t.push_f64(
                "error_rot_y",
                history.iter().map(|h| h.tilt_errors[1]).collect(),
            );
            t.push_u64("tracks", history.iter().map(|h| h.tracks as u64).collect());
            t.push_f64(
                "mean_chi2ndof",
                history.iter().map(|h| h.mean_chi2ndof).collect(),
            );
            t.set_unit("x", "mm")
                .set_unit("y", "mm")
                .set_unit("rot_z", "rad")
                .set_unit("rot_x", "rad")
                .set_unit("rot_y", "rad");
            h5.write_table("/alpide/alignment_history", &t)?;
        }
        Ok(())
    }
}

/// Resolve the folder relative paths of a config are taken against.
pub fn base_dir_of(doc: &caliper_core::ConfigDoc) -> PathBuf {
    use caliper_core::config::Origin;
    match doc.locate("geometry") {
        (Some(Origin::File(p)), _) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
        _ => doc
            .files()
            .first()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default(),
    }
}
