//! Build script of caliper-cherenkov: enables the AVX-512 calibration kernel
//! (`cfg(caliper_avx512)`, module `calib_avx512`) on compilers where the AVX-512 intrinsics
//! and target features are stable (Rust ≥ 1.89). On older compilers down to the workspace's
//! MSRV (1.85) the crate builds without it, and the AVX2 kernel is the fastest build.

use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(caliper_avx512)");
    println!("cargo::rerun-if-changed=build.rs");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    // "rustc 1.95.0 (59807616e 2026-04-14)": the minor version of a 1.x compiler
    let minor = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| {
            let version = v.split_whitespace().nth(1)?.to_owned();
            let mut parts = version.split('.');
            (parts.next()? == "1").then_some(())?;
            parts.next()?.parse::<u32>().ok()
        });
    if minor.is_some_and(|m| m >= 89) {
        println!("cargo::rustc-cfg=caliper_avx512");
    }
}
