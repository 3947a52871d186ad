//! # caliper-core
//!
//! The shared core of Caliper, a framework for calibrating and analysing particle and photon
//! detectors. Every instrument plugin builds on it:
//!
//! - [`pipeline`]: the [`Detector`](pipeline::Detector) and [`Analysis`](pipeline::Analysis)
//!   traits and [`run_pass`](pipeline::run_pass), which folds a lazy event stream in parallel
//!   chunks and merges them in order, so results are identical for 1 or N threads.
//! - [`instrument`]: the erased [`Instrument`] a plugin registers, its
//!   [`RunPlan`], the [`RunContext`] a run writes
//!   through, and the [`Registry`].
//! - [`abi`]: run-time plugins (`cdylib`, loaded with `libloading`) behind a checked C header.
//! - [`config`] and [`units`]: TOML configs with units (`"29.24um"`), defaults and docs in one
//!   place, every problem reported at once with file, line and key.
//! - [`h5`]: HDF5 tables, images and attributes (pure Rust), and frame-by-frame reading.
//! - [`provenance`]: what produced each output.
//! - [`compressed`]: decompressed input whose errors tell a file cut short from corrupt data,
//!   with the compressed byte offset.
//! - Building blocks: [`stats`] (mergeable per-pixel statistics), [`robust`] (median, MAD, sigma
//!   clipping), [`mask`], [`ccl`] (connected components), [`hist`], [`fit`] (weighted least
//!   squares, Levenberg-Marquardt), [`plot`] (PNG plots with a built-in font).
//!
//! A plugin in brief:
//!
//! ```ignore
//! pub fn register(registry: &mut caliper_core::instrument::Registry)
//!     -> Result<(), caliper_core::instrument::RegistryError> {
//!     registry.register(MyInstrument)
//! }
//! ```

pub mod abi;
pub mod cbf;
pub mod ccl;
pub mod compressed;
pub mod config;
pub mod error;
pub mod fit;
pub mod h5;
pub mod hist;
pub mod instrument;
pub mod mask;
pub mod npy;
pub mod pipeline;
pub mod plot;
pub mod provenance;
pub mod robust;
pub mod special;
pub mod stats;
pub mod testing;
pub mod units;

pub use config::{ConfigDoc, ConfigDocs, ConfigErrors, Problems, Validate};
pub use error::{Position, ReadError, ReadErrorKind, RunError};
pub use instrument::{
    BenchRecord, Instrument, Registry, RegistryError, RunContext, RunPlan, SimulateOutcome,
    SimulateRequest, TruthCheck,
};
