//! The simulator: straight tracks through a 7-plane ALPIDE telescope with known misalignment,
//! charge sharing (cluster sizes 1-4), inefficiency, noise hits, planted hot pixels and a hot
//! double column on plane 0; written in Corryvreckan's JSONWriter format.
//!
//! Charge sharing: the charge of a track is a Gaussian cloud (sigma `cloud_sigma` pixels) around
//! the intercept; a pixel fires when the fraction of the charge it collects exceeds
//! `threshold` (binary readout, like ALPIDE). The cluster resolution this gives is measured in
//! the simulation itself (RMS of cluster centre minus true intercept) and reported as truth.

use caliper_core::special::erf;
use std::io::BufWriter;
use std::path::Path;

use caliper_core::error::RunError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::align::move_plane;
use crate::cluster::PlaneInfo;
use crate::event::{Event, PixelHit, PlaneMap};
use crate::io::geometry::DetectorGeometry;
use crate::io::json::write_events;

/// Simulation settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Events (one track each).
    pub events: usize,
    /// Planes.
    pub planes: usize,
    /// Plane spacing (mm).
    pub spacing: f64,
    /// Largest shift (mm) of a misaligned plane.
    pub max_shift: f64,
    /// Largest rotation about z (rad).
    pub max_rotation: f64,
    /// Track slope half-range (rad).
    pub max_slope: f64,
    /// Charge cloud sigma in pixels.
    pub cloud_sigma: f64,
    /// Fraction of the charge a pixel needs to fire.
    pub threshold: f64,
    /// Probability that a plane misses the track.
    pub inefficiency: f64,
    /// Mean noise hits per plane and event.
    pub noise: f64,
    /// Hot pixels per plane.
    pub hot_pixels: usize,
    /// Firing probability per event of a hot pixel.
    pub hot_probability: f64,
    /// Firing probability per event of each pixel of the hot double column of plane 0.
    pub double_column_probability: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            events: 20_000,
            planes: 7,
            spacing: 20.0,
            max_shift: 0.3,
            max_rotation: 0.003,
            max_slope: 0.002,
            cloud_sigma: 0.35,
            threshold: 0.08,
            inefficiency: 0.01,
            noise: 0.3,
            hot_pixels: 8,
            hot_probability: 0.2,
            double_column_probability: 0.02,
        }
    }
}

/// The hot double column of plane 0 (columns 200 and 201).
pub const DOUBLE_COLUMN: [u16; 2] = [200, 201];

/// Fraction of a unit Gaussian (centre c, sigma s) falling in [a, a+1).
fn frac(c: f64, a: f64, s: f64) -> f64 {
    let k = 1.0 / (s * std::f64::consts::SQRT_2);
    0.5 * (erf((a + 1.0 - c) * k) - erf((a - c) * k))
}

/// Simulated data and its truth.
#[derive(Debug, Clone)]
pub struct Simulated {
    /// Events.
    pub events: Vec<Event>,
    /// Truth (JSON).
    pub truth: Value,
    /// Measured cluster resolution (mm), x and y.
    pub resolution: [f64; 2],
}

/// Run the simulation in memory.
pub fn simulate_events(cfg: &SimConfig, seed: u64) -> Simulated {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let np = cfg.planes;
    let mid = (np as f64 - 1.0) / 2.0;
    // True geometry: planes 1..np-2 misaligned; the first and last stay nominal (they are the
    // fixed planes of the alignment).
    let mut truth_planes: Vec<PlaneInfo> = (0..np)
        .map(|i| {
            let g =
                DetectorGeometry::alpide(&format!("ALPIDE_{i}"), (i as f64 - mid) * cfg.spacing);
            PlaneInfo {
                transform: g.transform(),
                geometry: g,
                mask: None,
            }
        })
        .collect();
    let mut mis = vec![[0.0f64; 3]; np];
    for (p, m) in mis.iter_mut().enumerate().take(np - 1).skip(1) {
        *m = [
            rng.random_range(-cfg.max_shift..cfg.max_shift),
            rng.random_range(-cfg.max_shift..cfg.max_shift),
            rng.random_range(-cfg.max_rotation..cfg.max_rotation),
        ];
        move_plane(&mut truth_planes[p], m[0], m[1], m[2]);
    }
    // Hot pixels.
    let hot: Vec<Vec<(u16, u16)>> = (0..np)
        .map(|_| {
            (0..cfg.hot_pixels)
                .map(|_| (rng.random_range(0..1024u16), rng.random_range(0..512u16)))
                .collect()
        })
        .collect();
    let (nc, nr) = (1024.0f64, 512.0f64);
    let mut events = Vec::with_capacity(cfg.events);
    let (mut sum2, mut nres) = ([0.0f64; 2], 0usize);
    for ev in 0..cfg.events {
        let mut hits = Vec::new();
        let x0 = rng.random_range(-13.0..13.0);
        let y0 = rng.random_range(-6.0..6.0);
        let sx = rng.random_range(-cfg.max_slope..cfg.max_slope);
        let sy = rng.random_range(-cfg.max_slope..cfg.max_slope);
        for (p, pl) in truth_planes.iter().enumerate() {
            let start = hits.len();
            if rng.random::<f64>() >= cfg.inefficiency
                && let Some(l) = pl.transform.intersect_local([x0, y0, 0.0], [sx, sy, 1.0])
            {
                // Continuous pixel coordinates: pixel k spans [k - 0.5, k + 0.5).
                let u = l[0] / pl.geometry.pixel_pitch[0] + (nc - 1.0) / 2.0;
                let v = l[1] / pl.geometry.pixel_pitch[1] + (nr - 1.0) / 2.0;
                let (cu, cv) = (u.round(), v.round());
                let (mut n, mut sc, mut sr) = (0.0, 0.0, 0.0);
                for dc in -2i32..=2 {
                    for dr in -2i32..=2 {
                        let (c, r) = (cu + f64::from(dc), cv + f64::from(dr));
                        if c < 0.0 || r < 0.0 || c >= nc || r >= nr {
                            continue;
                        }
                        let f =
                            frac(u, c - 0.5, cfg.cloud_sigma) * frac(v, r - 0.5, cfg.cloud_sigma);
                        if f > cfg.threshold {
                            hits.push(PixelHit {
                                plane: p as u16,
                                col: c as u16,
                                row: r as u16,
                                charge: 1.0,
                                time: 0.0,
                            });
                            n += 1.0;
                            sc += c;
                            sr += r;
                        }
                    }
                }
                if n > 0.0 {
                    let ex = (sc / n - u) * pl.geometry.pixel_pitch[0];
                    let ey = (sr / n - v) * pl.geometry.pixel_pitch[1];
                    sum2[0] += ex * ex;
                    sum2[1] += ey * ey;
                    nres += 1;
                }
            }
            let _ = start;
            // Noise: Poisson-distributed count of random pixels (Knuth's method; mean < 1).
            let l = (-cfg.noise).exp();
            let mut k = 0;
            let mut prod = rng.random::<f64>();
            while prod > l {
                k += 1;
                prod *= rng.random::<f64>();
            }
            for _ in 0..k {
                hits.push(PixelHit {
                    plane: p as u16,
                    col: rng.random_range(0..1024),
                    row: rng.random_range(0..512),
                    charge: 1.0,
                    time: 0.0,
                });
            }
            for &(c, r) in &hot[p] {
                if rng.random::<f64>() < cfg.hot_probability {
                    hits.push(PixelHit {
                        plane: p as u16,
                        col: c,
                        row: r,
                        charge: 1.0,
                        time: 0.0,
                    });
                }
            }
            if p == 0 {
                for c in DOUBLE_COLUMN {
                    for r in 0..512u16 {
                        if rng.random::<f64>() < cfg.double_column_probability {
                            hits.push(PixelHit {
                                plane: 0,
                                col: c,
                                row: r,
                                charge: 1.0,
                                time: 0.0,
                            });
                        }
                    }
                }
            }
        }
        events.push(Event {
            number: ev as u64,
            hits,
            ref_clusters: Vec::new(),
        });
    }
    let res = [
        (sum2[0] / nres.max(1) as f64).sqrt(),
        (sum2[1] / nres.max(1) as f64).sqrt(),
    ];
    // Expected unbiased residual RMS: resolution (+) the error of the line through the other
    // planes at this plane, sigma^2 (1/N + (z - zbar)^2 / Sxx) for equal errors.
    let z: Vec<f64> = truth_planes
        .iter()
        .map(|p| p.geometry.position[2])
        .collect();
    let mut expected = serde_json::Map::new();
    let mut planes_json = serde_json::Map::new();
    for p in 0..np {
        let others: Vec<f64> = z
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != p)
            .map(|(_, &v)| v)
            .collect();
        let n = others.len() as f64;
        let zbar = others.iter().sum::<f64>() / n;
        let sxx: f64 = others.iter().map(|v| (v - zbar).powi(2)).sum();
        let f = (1.0 + 1.0 / n + (z[p] - zbar).powi(2) / sxx).sqrt();
        let name = format!("ALPIDE_{p}");
        expected.insert(
            name.clone(),
            json!({"x": res[0] * f * 1e3, "y": res[1] * f * 1e3}),
        );
        planes_json.insert(
            name,
            json!({"shift_x_um": mis[p][0] * 1e3, "shift_y_um": mis[p][1] * 1e3, "rot_z_mrad": mis[p][2] * 1e3, "fixed": p == 0 || p == np - 1}),
        );
    }
    let hot_json: Vec<Value> = hot
        .iter()
        .enumerate()
        .map(|(p, v)| json!({"plane": format!("ALPIDE_{p}"), "pixels": v.iter().map(|&(c, r)| json!([c, r])).collect::<Vec<_>>()}))
        .collect();
    let truth = json!({
        "events": cfg.events,
        "misalignment": planes_json,
        "hot_pixels": hot_json,
        "hot_double_column": {"plane": "ALPIDE_0", "columns": DOUBLE_COLUMN},
        "resolution_um": {"x": res[0] * 1e3, "y": res[1] * 1e3},
        "expected_unbiased_residual_rms_um": expected,
    });
    Simulated {
        events,
        truth,
        resolution: res,
    }
}

/// Write the simulation as JSONWriter output; returns the file and the truth.
pub fn write(
    dir: &Path,
    cfg: &SimConfig,
    seed: u64,
) -> Result<(std::path::PathBuf, Simulated), RunError> {
    let sim = simulate_events(cfg, seed);
    let path = dir.join("alpide_sim.json");
    let f = std::fs::File::create(&path).map_err(|e| RunError::io(&path, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let planes = PlaneMap::alpide(cfg.planes);
    write_events(&mut w, &planes, sim.events.iter().cloned())
        .map_err(|e| RunError::io(&path, e))?;
    std::io::Write::flush(&mut w).map_err(|e| RunError::io(&path, e))?;
    Ok((path, sim))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_and_sharing_by_hand() {
        // erf(1) = 0.8427007929.
        assert!((erf(1.0) - 0.8427007929).abs() < 2e-7);
        assert!((erf(-0.5) + 0.5204998778).abs() < 2e-7);
        // A centred cloud of sigma 0.35 puts erf(0.5/(0.35 sqrt 2)) = 84.7 % in its pixel.
        assert!(
            (frac(0.0, -0.5, 0.35) - erf(0.5 / (0.35 * std::f64::consts::SQRT_2))).abs() < 1e-12
        );
    }

    #[test]
    fn deterministic_with_cluster_sizes_one_to_four() {
        let cfg = SimConfig {
            events: 300,
            ..SimConfig::default()
        };
        let a = simulate_events(&cfg, 5);
        let b = simulate_events(&cfg, 5);
        assert_eq!(a.events, b.events);
        assert_eq!(a.truth, b.truth);
        // Resolution of the binary clusters: between the 2-pixel and 1-pixel limits.
        assert!(
            a.resolution[0] > 0.002 && a.resolution[0] < 0.02924 / 12f64.sqrt(),
            "{:?}",
            a.resolution
        );
        // Cluster sizes from the track hits of plane 3 (no hot pixels planted there on purpose).
        let planes: Vec<PlaneInfo> = (0..7)
            .map(|i| {
                let g = DetectorGeometry::alpide(&format!("ALPIDE_{i}"), -60.0 + 20.0 * i as f64);
                PlaneInfo {
                    transform: g.transform(),
                    geometry: g,
                    mask: None,
                }
            })
            .collect();
        let mut sizes = [0usize; 10];
        let mut cl = crate::cluster::Clusterer::default();
        let mut out = Vec::new();
        for e in &a.events {
            out.clear();
            cl.cluster_event(
                &e.hits,
                &planes,
                crate::cluster::ClusterMode::Spatial {
                    charge_weighting: true,
                },
                &mut out,
            );
            for c in out.iter().filter(|c| c.plane == 3) {
                sizes[(c.size as usize).min(9)] += 1;
            }
        }
        assert!(
            sizes[1] > 0 && sizes[2] > 0 && sizes[3] + sizes[4] > 0,
            "{sizes:?}"
        );
    }
}
