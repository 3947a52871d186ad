//! Helpers for tests that read the real reference data in `../shared/data`.
//!
//! The data sits beside the project, not in it. A test that needs it calls [`shared_data`]: when
//! the folder is absent the test prints a notice and returns early (a user's fresh clone), unless
//! `CALIPER_REQUIRE_SHARED_DATA=1` is set (CI), in which case it fails.
//!
//! ```no_run
//! #[test]
//! fn reads_the_reference_file() {
//!     let Some(path) = caliper_core::testing::shared_data("cherenkov/gamma_test.simtel.gz") else {
//!         return;
//!     };
//!     // ... use path ...
//! }
//! ```

use std::path::{Path, PathBuf};

/// The environment variable that turns a missing shared-data folder into a failure.
pub const REQUIRE_ENV: &str = "CALIPER_REQUIRE_SHARED_DATA";

/// Find the workspace's `../shared/data` folder, looking upwards from the current directory and
/// from this crate's manifest folder.
pub fn shared_data_root() -> Option<PathBuf> {
    let mut starts: Vec<PathBuf> = Vec::new();
    if let Ok(d) = std::env::current_dir() {
        starts.push(d);
    }
    starts.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    for start in starts {
        let mut dir: Option<&Path> = Some(start.as_path());
        while let Some(d) = dir {
            let candidate = d.join("shared").join("data");
            if candidate.is_dir() && d.join("shared").join("DESIGN.md").is_file() {
                return Some(candidate);
            }
            let sibling = d.join("..").join("shared").join("data");
            if sibling.is_dir() {
                return Some(sibling);
            }
            dir = d.parent();
        }
    }
    None
}

/// The path of `relative` under the shared data folder, or `None` (after printing a notice) when
/// it is absent. Panics when absent and `CALIPER_REQUIRE_SHARED_DATA=1`.
pub fn shared_data(relative: &str) -> Option<PathBuf> {
    let found = shared_data_root()
        .map(|r| r.join(relative))
        .filter(|p| p.exists());
    if found.is_none() {
        if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
            panic!(
                "shared data {relative} is required ({REQUIRE_ENV}=1) but ../shared/data/{relative} was not found"
            );
        }
        eprintln!(
            "notice: skipping: ../shared/data/{relative} not found (set {REQUIRE_ENV}=1 to make this a failure)"
        );
    }
    found
}

/// The bodies of the ```` ```toml ```` blocks of a Markdown file, in order.
pub fn toml_snippets(markdown: &str) -> Vec<String> {
    markdown
        .split("```toml")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .map(str::to_string)
        .collect()
}

/// Configure `instrument` with every TOML snippet of the README at `readme` (a plugin's Usage
/// section must run as written). Panics naming the snippet that is refused; returns how many
/// snippets there were.
pub fn configure_readme_snippets(instrument: &dyn crate::Instrument, readme: &Path) -> usize {
    let text =
        std::fs::read_to_string(readme).unwrap_or_else(|e| panic!("{}: {e}", readme.display()));
    let snippets = toml_snippets(&text);
    for (n, snippet) in snippets.iter().enumerate() {
        let doc =
            crate::ConfigDoc::from_str_named(snippet, &format!("{} snippet {n}", readme.display()))
                .unwrap_or_else(|e| panic!("README snippet {n}: {e}\n{snippet}"));
        if let Err(e) = instrument.configure(&doc) {
            panic!("README snippet {n}: {e}\n{snippet}");
        }
    }
    snippets.len()
}

/// Configure `instrument` with every `*.toml` config in `dir` that is not a campaign (no
/// `[[run]]`), checking that each names this instrument. Panics naming the file that is refused;
/// returns how many configs there were.
pub fn configure_config_dir(instrument: &dyn crate::Instrument, dir: &Path) -> usize {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut n = 0;
    for p in files {
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        if text.contains("[[run]]") {
            continue;
        }
        let doc =
            crate::ConfigDoc::from_file(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(doc.instrument(), Some(instrument.id()), "{}", p.display());
        if let Err(e) = instrument.configure(&doc) {
            panic!("{}: {e}", p.display());
        }
        n += 1;
    }
    n
}

/// A tiny deterministic generator for tests: Knuth's MMIX linear congruential generator
/// (multiplier 6364136223846793005, increment 1442695040888963407; TAOCP vol. 2, 3.3.4).
/// Not for simulations (use `rand_chacha`); it only makes test inputs reproducible without a
/// dependency.
#[derive(Debug, Clone)]
pub struct TestRng(u64);

impl TestRng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    fn step(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0
    }
    /// A value in `0..m` (from the high 31 bits; `m` > 0).
    pub fn below(&mut self, m: u64) -> u64 {
        (self.step() >> 33) % m
    }
    /// A value in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.step() >> 11) as f64 / (1u64 << 53) as f64
    }
}
