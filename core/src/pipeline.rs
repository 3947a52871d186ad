//! The two traits, [`Detector`] and [`Analysis`], and the driver that runs an analysis over a
//! detector's event stream in parallel with results identical for any number of threads.
//!
//! A detector opens an input as an [`EventSource`]: a lazy stream of events that never needs the
//! whole run in memory. An analysis folds events into a partial state; the driver
//! ([`run_pass`]) cuts the stream into chunks of a fixed number of events, folds the chunks in
//! parallel (each into its own fresh partial, with [`Analysis::fold_chunk`], which by default
//! folds event by event), and merges the partials strictly in chunk order.
//! Because the chunking does not depend on the thread count and the merge order is fixed, the
//! result is bit-identical for 1 or N threads. Reading the next batch of chunks overlaps with
//! folding the current one. An analysis with a very large state (per-pixel statistics of a
//! megapixel detector) can opt into folding every chunk straight into one state, in order,
//! parallelising inside the chunk instead ([`Analysis::fold_in_place`]).
//!
//! Whole-run steps (alignment, PTC fits) run on what the pass reduced, in [`Analysis::finish`],
//! or in a further pass the plugin runs with the results of the first.
//!
//! ```
//! use caliper_core::pipeline::{Analysis, EventSource, IterSource, PassOptions, run_pass};
//! use caliper_core::error::ReadError;
//!
//! /// Sums event values.
//! struct Sum;
//! impl Analysis<f64> for Sum {
//!     type Partial = f64;
//!     type Output = f64;
//!     fn init(&self) -> f64 { 0.0 }
//!     fn fold(&self, acc: &mut f64, e: &f64, _i: u64) -> Result<(), caliper_core::error::RunError> { *acc += e; Ok(()) }
//!     fn merge(&self, acc: &mut f64, other: f64) { *acc += other }
//!     fn finish(&self, acc: f64) -> Result<f64, caliper_core::error::RunError> { Ok(acc) }
//! }
//! let mut src = IterSource::new((0..1000).map(|i| Ok::<f64, ReadError>(i as f64)));
//! let out = run_pass(&mut src, &Sum, &PassOptions::default(), &caliper_core::instrument::NoProgress).unwrap();
//! assert_eq!(out.output, 499500.0);
//! assert_eq!(out.events, 1000);
//! ```

use std::path::Path;

use rayon::prelude::*;

use crate::error::{ReadError, RunError};
use crate::instrument::Progress;

/// A lazy stream of events from one input.
pub trait EventSource: Send {
    /// The event type.
    type Event: Send;
    /// The next event, an error, or `None` at the end.
    fn next_event(&mut self) -> Option<Result<Self::Event, ReadError>>;
    /// Bytes consumed so far (for progress), if known.
    fn bytes_read(&self) -> Option<u64> {
        None
    }
    /// Total bytes of the input, if known.
    fn total_bytes(&self) -> Option<u64> {
        None
    }
}

/// An event source over any iterator of results (tests, simulators, in-memory data).
pub struct IterSource<I> {
    iter: I,
}

impl<I> IterSource<I> {
    /// Wrap an iterator.
    pub fn new(iter: I) -> Self {
        Self { iter }
    }
}

impl<E: Send, I: Iterator<Item = Result<E, ReadError>> + Send> EventSource for IterSource<I> {
    type Event = E;
    fn next_event(&mut self) -> Option<Result<E, ReadError>> {
        self.iter.next()
    }
}

/// An instrument's geometry plus how to read its raw data.
pub trait Detector: Send + Sync {
    /// One event (a trigger, a frame, an exposure pair, an array event).
    type Event: Send;
    /// Open one input (a file or folder) as a lazy event stream.
    fn open(
        &self,
        input: &Path,
    ) -> Result<Box<dyn EventSource<Event = Self::Event> + '_>, ReadError>;
}

/// One step of a run: fold events into a partial state, merge partials in order, finish.
pub trait Analysis<E>: Sync {
    /// What one worker accumulates from a chunk of events.
    type Partial: Send;
    /// What the step produces at the end.
    type Output;
    /// A fresh, empty partial state.
    fn init(&self) -> Self::Partial;
    /// Fold one event (with its 0-based index in the run) into a partial state.
    fn fold(&self, partial: &mut Self::Partial, event: &E, index: u64) -> Result<(), RunError>;
    /// Fold a whole chunk of consecutive events (the first with run index `first_index`)
    /// into a partial state. [`run_pass`] calls this once per chunk, on a fresh partial.
    ///
    /// The default calls [`fold`](Self::fold) on each event in order, so an analysis only
    /// needs `fold`. Override it when processing several events together is cheaper, e.g.
    /// a per-pixel accumulator that can update its state once per block of frames instead of
    /// once per frame ([`PixelStats::push_frames`](crate::stats::PixelStats::push_frames)).
    /// An override must give a result that depends only on the events of the chunk (and
    /// their indexes), never on the thread running it, so that passes stay identical for 1
    /// or N threads; it should agree with the event-by-event fold up to rounding, and a
    /// plugin that overrides it should test that.
    fn fold_chunk(
        &self,
        partial: &mut Self::Partial,
        events: &[E],
        first_index: u64,
    ) -> Result<(), RunError> {
        for (k, e) in events.iter().enumerate() {
            self.fold(partial, e, first_index + k as u64)?;
        }
        Ok(())
    }
    /// Whether [`run_pass`] folds every chunk directly into the one accumulated state, in
    /// chunk order, instead of into a fresh partial per chunk that is then merged.
    ///
    /// The default, `false`, suits most analyses: chunks fold in parallel, each into its own
    /// partial, and the partials merge in order. Return `true` when the state is so large that
    /// creating and merging a partial per chunk costs more than the fold itself, e.g. per-pixel
    /// statistics of a megapixel detector (a CSPad's [`PixelStats`](crate::stats::PixelStats)
    /// holds 73 MB: a partial per 32-frame chunk writes and re-reads that much again). Then
    /// [`run_pass`] calls [`init`](Self::init) once, calls [`fold_chunk`](Self::fold_chunk)
    /// on that state for each chunk strictly in chunk order (one chunk at a time, while the
    /// next chunk is read), and never calls [`merge`](Self::merge). The parallelism is then
    /// up to the analysis, inside `fold_chunk` (e.g. rayon over pixel tiles with
    /// [`PixelStats::push_frames_par`](crate::stats::PixelStats::push_frames_par)); to keep
    /// passes identical for 1 or N threads, what it computes for each element must not depend
    /// on how the work is split among threads. The chunking is the same as in the default
    /// mode, so an analysis whose `fold_chunk` does the same thing on a fresh partial and on
    /// the accumulated state (and whose merge is exact, e.g. concatenation) gives the same
    /// result in both modes.
    fn fold_in_place(&self) -> bool {
        false
    }
    /// Merge the partial of the next chunk into the accumulated one. Called in chunk order
    /// (never when [`fold_in_place`](Self::fold_in_place) is true).
    fn merge(&self, acc: &mut Self::Partial, next: Self::Partial);
    /// Turn the merged partial into the step's output.
    fn finish(&self, acc: Self::Partial) -> Result<Self::Output, RunError>;
}

/// What to do when an input is truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnTruncation {
    /// Fail the run.
    #[default]
    Fail,
    /// Keep the events read before the truncation, and report a warning.
    KeepWithWarning,
}

/// How a pass runs.
#[derive(Debug, Clone)]
pub struct PassOptions {
    /// Events per chunk. Fixed, so results do not depend on the thread count. Choose so that one
    /// chunk is some milliseconds of work.
    pub chunk_events: usize,
    /// Stop after this many events (None: all).
    pub max_events: Option<u64>,
    /// What a truncated input does.
    pub on_truncation: OnTruncation,
}

impl Default for PassOptions {
    fn default() -> Self {
        Self {
            chunk_events: 256,
            max_events: None,
            on_truncation: OnTruncation::Fail,
        }
    }
}

/// The result of a pass.
#[derive(Debug)]
pub struct PassOutput<O> {
    /// The analysis output.
    pub output: O,
    /// Events processed.
    pub events: u64,
    /// Set when the input was truncated and the events before it were kept.
    pub truncated: Option<ReadError>,
}

/// Run one analysis over an event source: chunked parallel fold, ordered merge, finish.
///
/// Runs on the current rayon pool (the scheduler installs the run's pool). An input error stops
/// the pass with that error, except a truncation under [`OnTruncation::KeepWithWarning`], which
/// ends the stream and is returned in [`PassOutput::truncated`].
pub fn run_pass<E, A>(
    source: &mut dyn EventSource<Event = E>,
    analysis: &A,
    options: &PassOptions,
    progress: &dyn Progress,
) -> Result<PassOutput<A::Output>, RunError>
where
    E: Send + Sync,
    A: Analysis<E>,
{
    let chunk = options.chunk_events.max(1);
    let in_place = analysis.fold_in_place();
    // Enough chunks per batch to keep every thread busy while the next batch is read; an
    // in-place analysis parallelises inside each chunk, so one chunk is folded while the next
    // is read.
    let batch_chunks = if in_place {
        1
    } else {
        (rayon::current_num_threads() * 2).max(2)
    };
    let mut acc = analysis.init();
    let mut next_index: u64 = 0;
    let mut truncated = None;
    let mut pending_error = None;
    if let Some(total) = source.total_bytes() {
        progress.set_length(total, crate::instrument::ProgressUnit::Bytes);
    }

    let read_batch = |source: &mut dyn EventSource<Event = E>,
                      start: u64|
     -> (Vec<Vec<E>>, u64, Option<ReadError>, bool) {
        let mut chunks = Vec::with_capacity(batch_chunks);
        let mut n = 0u64;
        let mut err = None;
        let mut done = false;
        'outer: for _ in 0..batch_chunks {
            let mut events = Vec::with_capacity(chunk);
            while events.len() < chunk {
                if options.max_events.is_some_and(|m| start + n >= m) {
                    done = true;
                    break;
                }
                match source.next_event() {
                    Some(Ok(e)) => {
                        events.push(e);
                        n += 1;
                    }
                    Some(Err(e)) => {
                        err = Some(e);
                        done = true;
                        break;
                    }
                    None => {
                        done = true;
                        break;
                    }
                }
            }
            if !events.is_empty() {
                chunks.push(events);
            }
            if done {
                break 'outer;
            }
        }
        (chunks, n, err, done)
    };

    let (mut batch, mut n, mut err, mut done) = read_batch(source, 0);
    loop {
        let first_index = next_index;
        if in_place {
            // Every chunk of the batch into the accumulated state, in order, while the next
            // batch is read.
            let fold_in_order = |acc: &mut A::Partial| -> Result<(), RunError> {
                let mut start = first_index;
                for events in &batch {
                    analysis.fold_chunk(acc, events, start)?;
                    start += events.len() as u64;
                }
                Ok(())
            };
            let next = if done {
                fold_in_order(&mut acc)?;
                None
            } else {
                let (r, nb) = rayon::join(
                    || fold_in_order(&mut acc),
                    || read_batch(source, next_index + n),
                );
                r?;
                Some(nb)
            };
            next_index += n;
            match source.bytes_read() {
                Some(b) => progress.set_position(b),
                None => progress.inc(n),
            }
            if let Some(e) = err.take() {
                pending_error = Some(e);
                break;
            }
            match next {
                None => break,
                Some((b, nn, e, d)) => {
                    batch = b;
                    n = nn;
                    err = e;
                    done = d;
                }
            }
            continue;
        }
        let fold_batch = |chunks: &Vec<Vec<E>>| -> Result<Vec<A::Partial>, RunError> {
            let starts: Vec<u64> = chunks
                .iter()
                .scan(first_index, |s, c| {
                    let here = *s;
                    *s += c.len() as u64;
                    Some(here)
                })
                .collect();
            chunks
                .par_iter()
                .zip(starts.par_iter())
                .map(|(events, &start)| {
                    let mut p = analysis.init();
                    analysis.fold_chunk(&mut p, events, start)?;
                    Ok(p)
                })
                .collect()
        };
        let batch_done = done;
        let (partials, next) = if batch_done {
            (fold_batch(&batch), None)
        } else {
            let (p, nb) = rayon::join(|| fold_batch(&batch), || read_batch(source, next_index + n));
            (p, Some(nb))
        };
        next_index += n;
        for p in partials? {
            analysis.merge(&mut acc, p);
        }
        match source.bytes_read() {
            Some(b) => progress.set_position(b),
            None => progress.inc(n),
        }
        if let Some(e) = err.take() {
            pending_error = Some(e);
        }
        match next {
            None => break,
            Some((b, nn, e, d)) => {
                batch = b;
                n = nn;
                err = e;
                done = d;
            }
        }
        if pending_error.is_some() {
            break;
        }
    }
    if let Some(e) = pending_error {
        if e.is_truncated() && options.on_truncation == OnTruncation::KeepWithWarning {
            truncated = Some(e);
        } else {
            return Err(RunError::Read(e));
        }
    }
    let output = analysis.finish(acc)?;
    Ok(PassOutput {
        output,
        events: next_index,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Position;
    use crate::instrument::NoProgress;

    /// Collects event indexes and a float sum whose rounding depends on the merge order.
    struct Collect;
    impl Analysis<f64> for Collect {
        type Partial = (Vec<u64>, f64);
        type Output = (Vec<u64>, f64);
        fn init(&self) -> Self::Partial {
            (Vec::new(), 0.0)
        }
        fn fold(&self, p: &mut Self::Partial, e: &f64, i: u64) -> Result<(), RunError> {
            p.0.push(i);
            p.1 += e;
            Ok(())
        }
        fn merge(&self, acc: &mut Self::Partial, next: Self::Partial) {
            acc.0.extend(next.0);
            acc.1 += next.1;
        }
        fn finish(&self, acc: Self::Partial) -> Result<Self::Output, RunError> {
            Ok(acc)
        }
    }

    fn values(n: usize) -> Vec<f64> {
        // Values of very different magnitude so that summation order shows in the last bits.
        (0..n)
            .map(|i| ((i * 7919) % 1000) as f64 * 10f64.powi((i % 13) as i32 - 6))
            .collect()
    }

    fn run_with_threads(threads: usize, n: usize) -> (Vec<u64>, f64) {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let v = values(n);
            let mut src = IterSource::new(v.into_iter().map(Ok));
            let opts = PassOptions {
                chunk_events: 17,
                ..PassOptions::default()
            };
            run_pass(&mut src, &Collect, &opts, &NoProgress)
                .unwrap()
                .output
        })
    }

    #[test]
    fn identical_for_one_and_many_threads() {
        let one = run_with_threads(1, 10_007);
        let four = run_with_threads(4, 10_007);
        assert_eq!(one.0, (0..10_007).collect::<Vec<_>>(), "events in order");
        assert_eq!(one.0, four.0);
        assert_eq!(
            one.1.to_bits(),
            four.1.to_bits(),
            "bit-identical float result"
        );
    }

    /// 100 events, then a truncation at byte 4000 (event 100) of `x.dat`.
    fn truncated_after_100() -> IterSource<std::vec::IntoIter<Result<f64, ReadError>>> {
        let items: Vec<Result<f64, ReadError>> = (0..100)
            .map(|i| Ok(i as f64))
            .chain(std::iter::once(Err(ReadError::truncated(
                Path::new("x.dat"),
                Position::byte(4000).with_event(100),
                "record cut short",
            ))))
            .collect();
        IterSource::new(items.into_iter())
    }

    #[test]
    fn truncation_keeps_or_fails() {
        let make = truncated_after_100;
        let keep = PassOptions {
            on_truncation: OnTruncation::KeepWithWarning,
            ..PassOptions::default()
        };
        let out = run_pass(&mut make(), &Collect, &keep, &NoProgress).unwrap();
        assert_eq!(out.events, 100);
        assert_eq!(out.output.0.len(), 100);
        assert!(out.truncated.is_some());
        let err =
            run_pass(&mut make(), &Collect, &PassOptions::default(), &NoProgress).unwrap_err();
        assert!(
            err.to_string()
                .contains("x.dat: byte 4000, event 100: truncated"),
            "{err}"
        );
    }

    #[test]
    fn max_events_stops_early() {
        let mut src = IterSource::new((0..1000).map(|i| Ok(i as f64)));
        let opts = PassOptions {
            max_events: Some(10),
            ..PassOptions::default()
        };
        let out = run_pass(&mut src, &Collect, &opts, &NoProgress).unwrap();
        assert_eq!(out.events, 10);
    }

    /// Counts events per fold_chunk call: proves run_pass hands over whole chunks in order.
    struct Chunked;
    impl Analysis<f64> for Chunked {
        type Partial = Vec<(u64, usize)>;
        type Output = Vec<(u64, usize)>;
        fn init(&self) -> Self::Partial {
            Vec::new()
        }
        fn fold(&self, _: &mut Self::Partial, _: &f64, _: u64) -> Result<(), RunError> {
            Err(RunError::failed(
                "fold must not be called when fold_chunk is overridden",
            ))
        }
        fn fold_chunk(&self, p: &mut Self::Partial, e: &[f64], first: u64) -> Result<(), RunError> {
            p.push((first, e.len()));
            Ok(())
        }
        fn merge(&self, acc: &mut Self::Partial, next: Self::Partial) {
            acc.extend(next);
        }
        fn finish(&self, acc: Self::Partial) -> Result<Self::Output, RunError> {
            Ok(acc)
        }
    }

    /// An in-place analysis: records the chunks it sees, sums the events sequentially (an
    /// order-dependent float result) and folds them into per-pixel statistics with the tiled
    /// parallel update; `merge` must never be called.
    struct InPlace {
        merges: std::sync::atomic::AtomicUsize,
    }
    type InPlaceState = (Vec<(u64, usize)>, f64, crate::stats::PixelStats);
    impl Analysis<f64> for InPlace {
        type Partial = InPlaceState;
        type Output = InPlaceState;
        fn init(&self) -> Self::Partial {
            (Vec::new(), 0.0, crate::stats::PixelStats::new(40))
        }
        fn fold(&self, _: &mut Self::Partial, _: &f64, _: u64) -> Result<(), RunError> {
            Err(RunError::failed("fold must not be called"))
        }
        fn fold_chunk(&self, p: &mut Self::Partial, e: &[f64], first: u64) -> Result<(), RunError> {
            p.0.push((first, e.len()));
            for x in e {
                p.1 += x;
            }
            // Each event spread over 40 "pixels" (x * (1 + j/7)).
            let frames: Vec<Vec<f64>> = e
                .iter()
                .map(|x| (0..40).map(|j| x * (1.0 + j as f64 / 7.0)).collect())
                .collect();
            let refs: Vec<&[f64]> = frames.iter().map(|f| &f[..]).collect();
            p.2.push_frames_par(&refs, 8)
                .map_err(|err| RunError::failed(err.to_string()))
        }
        fn fold_in_place(&self) -> bool {
            true
        }
        fn merge(&self, _: &mut Self::Partial, _: Self::Partial) {
            self.merges
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        fn finish(&self, acc: Self::Partial) -> Result<Self::Output, RunError> {
            Ok(acc)
        }
    }

    #[test]
    fn in_place_identical_for_one_and_three_threads() {
        // 10,007 events of very different magnitudes in chunks of 17: the in-place pass must
        // hand over the same chunks as the default mode (test above: `Chunked`), fold them in
        // order (the float sum equals the plain sequential sum, bit for bit, which no
        // chunked merge would give), never merge, and give identical bits for 1 and 3
        // threads, including the tiled per-pixel statistics (compared with a sequential
        // `push_frames` over the same blocks of at most 8 frames).
        let v = values(10_007);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let a = InPlace {
                    merges: Default::default(),
                };
                let mut src = IterSource::new(v.clone().into_iter().map(Ok));
                let opts = PassOptions {
                    chunk_events: 17,
                    ..PassOptions::default()
                };
                let out = run_pass(&mut src, &a, &opts, &NoProgress).unwrap();
                assert_eq!(a.merges.load(std::sync::atomic::Ordering::Relaxed), 0);
                assert_eq!(out.events, 10_007);
                out.output
            })
        };
        let one = run(1);
        let three = run(3);
        let expect_chunks: Vec<(u64, usize)> = (0..589)
            .map(|c| (c * 17, if c < 588 { 17 } else { 10_007 - 588 * 17 }))
            .collect();
        assert_eq!(one.0, expect_chunks);
        assert_eq!(three.0, expect_chunks);
        let sequential = v.iter().fold(0.0, |s, x| s + x);
        assert_eq!(one.1.to_bits(), sequential.to_bits());
        assert_eq!(three.1.to_bits(), sequential.to_bits());
        assert_eq!(one.2, three.2);
        let mut want = crate::stats::PixelStats::new(40);
        for c in v.chunks(17) {
            let frames: Vec<Vec<f64>> = c
                .iter()
                .map(|x| (0..40).map(|j| x * (1.0 + j as f64 / 7.0)).collect())
                .collect();
            let refs: Vec<&[f64]> = frames.iter().map(|f| &f[..]).collect();
            for b in refs.chunks(8) {
                want.push_frames(b).unwrap();
            }
        }
        assert_eq!(one.2, want);
        // The same chunk sequence as the default (partial + merge) mode.
        let default_chunks = pool_run_chunked(3, v.len(), 17);
        assert_eq!(default_chunks, expect_chunks);
    }

    /// The chunks (first index, length) the default mode hands to `fold_chunk`.
    fn pool_run_chunked(threads: usize, n: usize, chunk: usize) -> Vec<(u64, usize)> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut src = IterSource::new((0..n).map(|i| Ok(i as f64)));
            let opts = PassOptions {
                chunk_events: chunk,
                ..PassOptions::default()
            };
            run_pass(&mut src, &Chunked, &opts, &NoProgress)
                .unwrap()
                .output
        })
    }

    #[test]
    fn in_place_truncation_and_max_events() {
        // A truncation after 100 events keeps them (or fails), and max_events stops early,
        // as in the default mode.
        let make = truncated_after_100;
        let a = InPlace {
            merges: Default::default(),
        };
        let keep = PassOptions {
            chunk_events: 16,
            on_truncation: OnTruncation::KeepWithWarning,
            ..PassOptions::default()
        };
        let out = run_pass(&mut make(), &a, &keep, &NoProgress).unwrap();
        assert_eq!(out.events, 100);
        assert_eq!(out.output.2.n_frames(), 100);
        assert_eq!(out.output.1, 4950.0);
        assert!(out.truncated.is_some());
        assert!(run_pass(&mut make(), &a, &PassOptions::default(), &NoProgress).is_err());
        let mut src = IterSource::new((0..1000).map(|i| Ok(i as f64)));
        let opts = PassOptions {
            chunk_events: 16,
            max_events: Some(40),
            ..PassOptions::default()
        };
        let out = run_pass(&mut src, &a, &opts, &NoProgress).unwrap();
        assert_eq!(out.events, 40);
        assert_eq!(out.output.0, vec![(0, 16), (16, 16), (32, 8)]);
    }

    #[test]
    fn fold_chunk_sees_whole_chunks_in_order() {
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let out = pool.install(|| {
                let mut src = IterSource::new((0..100).map(|i| Ok(i as f64)));
                let opts = PassOptions {
                    chunk_events: 16,
                    ..PassOptions::default()
                };
                run_pass(&mut src, &Chunked, &opts, &NoProgress).unwrap()
            });
            assert_eq!(out.events, 100);
            let expect: Vec<(u64, usize)> = (0..7)
                .map(|c| (c * 16, if c < 6 { 16 } else { 4 }))
                .collect();
            assert_eq!(out.output, expect);
        }
    }
}
