//! Run-time plugins: a C-layout header that a plugin library exports, checked before anything in
//! the library is called, and the loader.
//!
//! Rust has no stable ABI, so a plugin library is only safe to call when it was built by the same
//! compiler against the same `caliper-core` with the same type layouts. The header says all of
//! this in plain C layout (magic, header version, rustc version, core version, a fingerprint of the
//! types that cross the boundary); [`load_plugin`] compares every field and refuses a mismatch with
//! a message that says what differs. A plugin writes one line:
//!
//! ```ignore
//! caliper_core::export_plugin!(my_plugin::register);
//! ```
//!
//! Every call into a loaded instrument runs inside `catch_unwind` *on the plugin's side* (the
//! library has its own copy of the standard library), so a panic becomes an error for that run.
//! Libraries are never unloaded.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{ConfigDoc, ConfigErrors};
use crate::error::{RunError, panic_message};
use crate::instrument::{
    BenchRecord, Instrument, Registry, RegistryError, RunContext, RunPlan, SimulateOutcome,
    SimulateRequest, TruthCheck,
};

/// "CALIPER\0": the first bytes of every plugin header.
pub const MAGIC: [u8; 8] = *b"CALIPER\0";
/// Version of the header layout itself.
pub const HEADER_VERSION: u32 = 1;
/// The name of the exported header symbol.
pub const HEADER_SYMBOL: &[u8] = b"CALIPER_PLUGIN_HEADER\0";
/// The compiler that built this `caliper-core`.
pub const RUSTC_VERSION: &str = env!("CALIPER_RUSTC_VERSION");
/// This `caliper-core`'s version.
pub const CORE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The register function's type: called once with the host's registry.
pub type RegisterFn = unsafe extern "C-unwind" fn(registry: *mut Registry) -> *mut RegisterOutcome;

/// What a register call produced (allocated by the plugin, read by the host).
#[derive(Debug)]
pub struct RegisterOutcome {
    /// Ok, or the registration error / panic text.
    pub result: Result<(), String>,
}

/// The header a plugin library exports as `CALIPER_PLUGIN_HEADER`.
#[repr(C)]
#[derive(Debug)]
pub struct PluginHeader {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`HEADER_VERSION`].
    pub header_version: u32,
    /// Length of the text in `rustc_version`.
    pub rustc_version_len: u32,
    /// The compiler's `rustc --version`, NUL-padded.
    pub rustc_version: [u8; 128],
    /// Length of the text in `core_version`.
    pub core_version_len: u32,
    /// The `caliper-core` version, NUL-padded.
    pub core_version: [u8; 32],
    /// [`type_fingerprint`] of the plugin's build.
    pub type_fingerprint: u64,
    /// The registration entry point.
    pub register: RegisterFn,
}

/// Copy text into a fixed NUL-padded array at compile time (truncated if too long).
pub const fn fixed_text<const N: usize>(s: &str) -> ([u8; N], u32) {
    let b = s.as_bytes();
    let mut out = [0u8; N];
    let n = if b.len() < N { b.len() } else { N };
    let mut i = 0;
    while i < n {
        out[i] = b[i];
        i += 1;
    }
    (out, n as u32)
}

/// FNV-1a over bytes, usable in const context.
const fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
        i += 1;
    }
    h
}

/// A fingerprint of the types that cross the plugin boundary: their sizes and alignments, and a
/// description of the trait methods. Changes whenever a layout or the trait changes.
pub const fn type_fingerprint() -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    h = fnv1a(h, b"Instrument{id,version,description,default_config,configure,simulate,check_truth,demo_size,bench};RunPlan{resolved_config,run};RunContext;Registry;ConfigDoc;ConfigErrors;RunError;SimulateRequest;SimulateOutcome;TruthCheck;BenchRecord");
    let sizes = [
        std::mem::size_of::<RunContext>(),
        std::mem::align_of::<RunContext>(),
        std::mem::size_of::<Registry>(),
        std::mem::size_of::<ConfigDoc>(),
        std::mem::size_of::<ConfigErrors>(),
        std::mem::size_of::<RunError>(),
        std::mem::size_of::<SimulateRequest>(),
        std::mem::size_of::<SimulateOutcome>(),
        std::mem::size_of::<TruthCheck>(),
        std::mem::size_of::<BenchRecord>(),
        std::mem::size_of::<Box<dyn Instrument>>(),
        std::mem::size_of::<Arc<dyn Instrument>>(),
        std::mem::size_of::<serde_json::Value>(),
        std::mem::size_of::<String>(),
        std::mem::size_of::<PathBuf>(),
    ];
    let mut i = 0;
    while i < sizes.len() {
        h = fnv1a(h, &(sizes[i] as u64).to_le_bytes());
        i += 1;
    }
    h
}

/// Build the header for a plugin whose entry point is `register` (used by [`export_plugin!`](crate::export_plugin)).
pub const fn make_header(register: RegisterFn) -> PluginHeader {
    let (rustc_version, rustc_version_len) = fixed_text::<128>(RUSTC_VERSION);
    let (core_version, core_version_len) = fixed_text::<32>(CORE_VERSION);
    PluginHeader {
        magic: MAGIC,
        header_version: HEADER_VERSION,
        rustc_version_len,
        rustc_version,
        core_version_len,
        core_version,
        type_fingerprint: type_fingerprint(),
        register,
    }
}

/// Run a plugin's register function on the plugin's side, catching panics.
///
/// # Safety
/// `registry` must point to a live registry of the same `caliper-core` build (the header check
/// guarantees that before the host calls this).
pub unsafe fn register_guarded(
    registry: *mut Registry,
    register: fn(&mut GuardedRegistry<'_>) -> Result<(), RegistryError>,
) -> *mut RegisterOutcome {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: the host passes a valid, exclusive registry pointer (see the function's contract).
        let registry = unsafe { &mut *registry };
        let mut guarded = GuardedRegistry { inner: registry };
        register(&mut guarded).map_err(|e| e.to_string())
    }))
    .unwrap_or_else(|p| Err(format!("register panicked: {}", panic_message(p.as_ref()))));
    Box::into_raw(Box::new(RegisterOutcome { result }))
}

/// The registry a run-time plugin sees: every instrument it adds is wrapped so that calls into it
/// catch panics inside the library.
pub struct GuardedRegistry<'a> {
    inner: &'a mut Registry,
}

impl GuardedRegistry<'_> {
    /// Register an instrument (wrapped in a panic guard).
    pub fn register(&mut self, instrument: impl Instrument + 'static) -> Result<(), RegistryError> {
        self.inner.register(PanicGuard {
            inner: Arc::new(instrument),
        })
    }
}

/// Export a plugin's header and guarded entry point from a `cdylib`.
///
/// The argument is a function `fn(&mut GuardedRegistry) -> Result<(), RegistryError>`.
#[macro_export]
macro_rules! export_plugin {
    ($register:path) => {
        #[doc(hidden)]
        unsafe extern "C-unwind" fn __caliper_plugin_register(
            registry: *mut $crate::instrument::Registry,
        ) -> *mut $crate::abi::RegisterOutcome {
            // SAFETY: called by the host only after the header matched this build.
            unsafe { $crate::abi::register_guarded(registry, $register) }
        }

        /// The plugin header, read by the host before anything else.
        #[unsafe(no_mangle)]
        pub static CALIPER_PLUGIN_HEADER: $crate::abi::PluginHeader =
            $crate::abi::make_header(__caliper_plugin_register);
    };
}

fn guard<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|p| format!("{what} panicked: {}", panic_message(p.as_ref())))
}

/// Wraps an instrument so that every call catches panics where they happen.
struct PanicGuard {
    inner: Arc<dyn Instrument>,
}

struct GuardedPlan {
    inner: Box<dyn RunPlan>,
}

impl RunPlan for GuardedPlan {
    fn resolved_config(&self) -> String {
        guard("resolved_config", || self.inner.resolved_config())
            .unwrap_or_else(|e| format!("# {e}\n"))
    }
    fn run(&self, inputs: &[PathBuf], ctx: &RunContext) -> Result<(), RunError> {
        guard("run", || self.inner.run(inputs, ctx)).unwrap_or_else(|e| Err(RunError::Panic(e)))
    }
}

impl Instrument for PanicGuard {
    fn id(&self) -> &str {
        self.inner.id()
    }
    fn version(&self) -> &str {
        self.inner.version()
    }
    fn description(&self) -> &str {
        self.inner.description()
    }
    fn default_config(&self) -> String {
        guard("default_config", || self.inner.default_config())
            .unwrap_or_else(|e| format!("# {e}\n"))
    }
    fn configure(&self, config: &ConfigDoc) -> Result<Box<dyn RunPlan>, ConfigErrors> {
        match guard("configure", || self.inner.configure(config)) {
            Ok(Ok(plan)) => Ok(Box::new(GuardedPlan { inner: plan })),
            Ok(Err(e)) => Err(e),
            Err(msg) => Err(ConfigErrors::single("", msg)),
        }
    }
    fn simulate(&self, request: &SimulateRequest) -> Result<SimulateOutcome, RunError> {
        guard("simulate", || self.inner.simulate(request))
            .unwrap_or_else(|e| Err(RunError::Panic(e)))
    }
    fn check_truth(
        &self,
        summary: &serde_json::Value,
        truth: &serde_json::Value,
    ) -> Vec<TruthCheck> {
        guard("check_truth", || self.inner.check_truth(summary, truth)).unwrap_or_default()
    }
    fn demo_size(&self) -> usize {
        guard("demo_size", || self.inner.demo_size()).unwrap_or(0)
    }
    fn bench(&self, scratch: &Path) -> Result<Vec<BenchRecord>, RunError> {
        guard("bench", || self.inner.bench(scratch)).unwrap_or_else(|e| Err(RunError::Panic(e)))
    }
}

fn text(bytes: &[u8], len: u32) -> String {
    let n = (len as usize).min(bytes.len());
    String::from_utf8_lossy(&bytes[..n]).into_owned()
}

/// Load a plugin library and register its instruments, refusing any mismatch before calling it.
pub fn load_plugin(registry: &mut Registry, path: &Path) -> Result<(), RegistryError> {
    let refused = |reason: String| RegistryError::Refused {
        path: path.into(),
        reason,
    };
    if !path.is_file() {
        return Err(refused("no such file".into()));
    }
    // SAFETY: loading runs the library's initialisers; that is the inherent risk of plugins, which
    // the user opted into with --plugin. Nothing else in the library is touched until the header
    // has been checked.
    let lib = unsafe { libloading::Library::new(path) }
        .map_err(|e| refused(format!("cannot load library: {e}")))?;
    // SAFETY: we only take the symbol's address here; it is read below field by field, starting
    // with the magic, which every header version keeps first.
    let header_ptr: *const PluginHeader = unsafe {
        match lib.get::<*const PluginHeader>(HEADER_SYMBOL) {
            Ok(sym) => *sym,
            Err(_) => {
                return Err(refused(
                    "not a Caliper plugin: it exports no CALIPER_PLUGIN_HEADER (build it with caliper_core::export_plugin!)"
                        .into(),
                ));
            }
        }
    };
    if header_ptr.is_null() {
        return Err(refused("CALIPER_PLUGIN_HEADER is null".into()));
    }
    // SAFETY: the symbol exists; the magic and header version are the first 12 bytes of every
    // version of the header.
    let (magic, header_version) = unsafe {
        let p = header_ptr as *const u8;
        let mut m = [0u8; 8];
        std::ptr::copy_nonoverlapping(p, m.as_mut_ptr(), 8);
        let mut v = [0u8; 4];
        std::ptr::copy_nonoverlapping(p.add(8), v.as_mut_ptr(), 4);
        (m, u32::from_ne_bytes(v))
    };
    if magic != MAGIC {
        return Err(refused(format!(
            "bad magic {magic:?}: not a Caliper plugin header"
        )));
    }
    if header_version != HEADER_VERSION {
        return Err(refused(format!(
            "plugin header version {header_version}, this caliper reads version {HEADER_VERSION}"
        )));
    }
    // SAFETY: magic and version match, so the layout is this crate's `PluginHeader`.
    let header = unsafe { &*header_ptr };
    let rustc = text(&header.rustc_version, header.rustc_version_len);
    let core = text(&header.core_version, header.core_version_len);
    let mut differences = Vec::new();
    if rustc != RUSTC_VERSION {
        differences.push(format!(
            "built with {rustc}, this caliper with {RUSTC_VERSION}"
        ));
    }
    if core != CORE_VERSION {
        differences.push(format!(
            "built against caliper-core {core}, this caliper has caliper-core {CORE_VERSION}"
        ));
    }
    if header.type_fingerprint != type_fingerprint() {
        differences.push(format!(
            "type fingerprint {:016x} differs from this caliper's {:016x} (core types changed layout)",
            header.type_fingerprint,
            type_fingerprint()
        ));
    }
    if !differences.is_empty() {
        return Err(refused(format!("refused: {}", differences.join("; "))));
    }
    registry.set_loading(Some(path.into()));
    // SAFETY: every field matched: same compiler, same core, same layouts.
    let outcome_ptr = unsafe { (header.register)(registry as *mut Registry) };
    registry.set_loading(None);
    if outcome_ptr.is_null() {
        return Err(refused("register returned nothing".into()));
    }
    // SAFETY: allocated by `register_guarded` with Box::into_raw, same allocator and layout.
    let outcome = unsafe { Box::from_raw(outcome_ptr) };
    // Never unloaded: instruments registered from it live as long as the process.
    std::mem::forget(lib);
    outcome.result.map_err(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_are_filled() {
        fn reg(_: &mut GuardedRegistry<'_>) -> Result<(), RegistryError> {
            Ok(())
        }
        unsafe extern "C-unwind" fn entry(r: *mut Registry) -> *mut RegisterOutcome {
            unsafe { register_guarded(r, reg) }
        }
        let h = make_header(entry);
        assert_eq!(h.magic, MAGIC);
        assert_eq!(text(&h.core_version, h.core_version_len), CORE_VERSION);
        assert!(text(&h.rustc_version, h.rustc_version_len).starts_with("rustc"));
        assert_eq!(h.type_fingerprint, type_fingerprint());
    }

    #[test]
    fn missing_file_is_refused() {
        let mut r = Registry::new();
        let e = load_plugin(&mut r, Path::new("/nonexistent/libx.so")).unwrap_err();
        assert!(e.to_string().contains("no such file"));
    }
}
