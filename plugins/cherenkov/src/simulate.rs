//! Toy-model simulator (after ctapipe `image/toymodel.py`): Gaussian shower images with
//! Poisson night-sky background on an LSTCam-like hexagonal camera (1855 pixels, f = 28 m),
//! four telescopes, images placed consistently with a shower geometry so that stereo
//! reconstruction has a truth. Written as a real gzip-compressed sim_telarray EventIO file
//! (run/MC headers, camera settings v5, organisation, pixel settings v3 with reference pulse,
//! disabled pixels, pedestals, calibration, MC shower/event, p.e. sums, trigger, ADC samples
//! in two gains, tracking), so the whole reader and chain are exercised.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use caliper_core::instrument::{SimulateOutcome, SimulateRequest, TruthCheck};
use caliper_core::{BenchRecord, RunError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson};

use crate::stereo::{altaz_to_telescope, righthanded};

// ---------------------------------------------------------------- EventIO writer

/// Unsigned varint (spec §3.1).
fn put_count(out: &mut Vec<u8>, v: u64) {
    let nbytes = match v {
        0..=0x7F => 1,
        0x80..=0x3FFF => 2,
        0x4000..=0x1F_FFFF => 3,
        0x20_0000..=0x0FFF_FFFF => 4,
        0x1000_0000..=0x7_FFFF_FFFF => 5,
        _ => 9,
    };
    if nbytes == 9 {
        out.push(0xFF);
        out.extend_from_slice(&v.to_be_bytes());
        return;
    }
    let prefix: u8 = !(0xFFu8 >> (nbytes - 1));
    let bytes = v.to_be_bytes();
    let mut first = bytes[8 - nbytes];
    first |= prefix;
    out.push(first);
    out.extend_from_slice(&bytes[9 - nbytes..]);
}

fn put_scount(out: &mut Vec<u8>, v: i64) {
    let u = if v >= 0 {
        (v as u64) << 1
    } else {
        (((-v - 1) as u64) << 1) | 1
    };
    put_count(out, u);
}

fn obj(type_: u32, version: u32, id: i32, payload: &[u8], only_sub: bool, top: bool) -> Vec<u8> {
    let mut o = Vec::with_capacity(payload.len() + 16);
    if top {
        o.extend_from_slice(&crate::io::eventio::SYNC_LE);
    }
    o.extend_from_slice(&((type_ & 0xFFFF) | (version << 20)).to_le_bytes());
    o.extend_from_slice(&id.to_le_bytes());
    let mut w2 = payload.len() as u32;
    if only_sub {
        w2 |= 1 << 30;
    }
    o.extend_from_slice(&w2.to_le_bytes());
    o.extend_from_slice(payload);
    o
}

struct P(Vec<u8>);
impl P {
    fn new() -> Self {
        P(Vec::new())
    }
    fn i16(&mut self, v: i16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn i32(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn f32(&mut self, v: f32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn f32s(&mut self, v: &[f32]) -> &mut Self {
        for &x in v {
            self.f32(x);
        }
        self
    }
    fn string(&mut self, s: &str) -> &mut Self {
        self.i16(s.len() as i16);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn scount(&mut self, v: i64) -> &mut Self {
        put_scount(&mut self.0, v);
        self
    }
}

fn f32_to_f16(v: f32) -> u16 {
    // round-to-nearest for the normal range used by pulse shapes (values in [0, 1]); tiny
    // values flush to zero
    if v == 0.0 || v.abs() < 6.2e-5 {
        return 0;
    }
    let b = v.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xFF) as i32 - 127 + 15;
    let man = b & 0x7F_FFFF;
    let mut h = ((exp as u32) << 10) | (man >> 13);
    if man & 0x1000 != 0 {
        h += 1;
    }
    sign | h as u16
}

// ---------------------------------------------------------------- camera and model

/// Pixel pitch (flat-to-flat) (m) and focal length (m) of the toy camera (LSTCam-like).
const PITCH: f64 = 0.05;
const FOCAL: f32 = 28.0;
const N_PIX: usize = 1855;
const N_SAMPLES: usize = 30;
const PED_PER_SAMPLE: [f32; 2] = [400.0, 300.0];
/// ADC counts per p.e. integrated over the pulse, per gain.
const ADC_PER_PE: [f64; 2] = [20.0, 1.6];
const PULSE_SIGMA_NS: f64 = 1.2;
const NSB_PE: f64 = 2.0;

/// Hexagonal camera: the 1855 grid points nearest the centre (LSTCam has 1855 pixels).
pub fn toy_camera() -> (Vec<f32>, Vec<f32>) {
    let mut pts = Vec::new();
    let n = 26i32;
    for q in -n..=n {
        for r in -n..=n {
            let x = PITCH * (f64::from(q) + 0.5 * f64::from(r));
            let y = PITCH * (3f64.sqrt() / 2.0) * f64::from(r);
            pts.push((x.hypot(y), x, y));
        }
    }
    pts.sort_by(|a, b| {
        a.0.total_cmp(&b.0)
            .then(a.1.total_cmp(&b.1))
            .then(a.2.total_cmp(&b.2))
    });
    pts.truncate(N_PIX);
    (
        pts.iter().map(|p| p.1 as f32).collect(),
        pts.iter().map(|p| p.2 as f32).collect(),
    )
}

fn pulse(t: f64) -> f64 {
    (-(t * t) / (2.0 * PULSE_SIGMA_NS * PULSE_SIGMA_NS)).exp()
        / (PULSE_SIGMA_NS * (2.0 * std::f64::consts::PI).sqrt())
}

/// One toy image's truth (camera frame, m and rad).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageTruth {
    /// Event id.
    pub event_id: i64,
    /// Telescope id.
    pub tel_id: u16,
    /// cog x \[m\].
    pub x: f64,
    /// cog y \[m\].
    pub y: f64,
    /// Length (σ along the axis) \[m\].
    pub length: f64,
    /// Width \[m\].
    pub width: f64,
    /// Orientation \[rad\].
    pub psi: f64,
    /// Expected signal p.e. on the camera.
    pub intensity: f64,
}

const TELS: [(u16, [f32; 3]); 4] = [
    (1, [60.0, 60.0, 16.0]),
    (2, [-60.0, 60.0, 16.0]),
    (3, [60.0, -60.0, 16.0]),
    (4, [-60.0, -60.0, 16.0]),
];
const POINT_ALT: f64 = 70.0 * std::f64::consts::PI / 180.0;
const OBS_HEIGHT: f32 = 2200.0;

/// Write a toy file with `n_events` showers; returns the image truths and per-event truth.
pub fn write_toy_file(
    path: &Path,
    n_events: usize,
    seed: u64,
) -> Result<(Vec<ImageTruth>, usize), RunError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (px, py) = toy_camera();
    let area = (PITCH * PITCH * 3f64.sqrt() / 2.0) as f32;
    let mut out = Vec::new();
    // header block
    let mut p = P::new();
    p.i32(1)
        .i32(1_700_000_000)
        .i32(0)
        .i32(0)
        .i32(0)
        .f32(0.0)
        .f32(POINT_ALT as f32)
        .f32(0.0)
        .f32(0.0)
        .f32(0.0)
        .f32(0.0)
        .f32(0.0)
        .i32(TELS.len() as i32);
    for (id, _) in TELS {
        p.i16(id as i16);
    }
    for (_, pos) in TELS {
        p.f32s(&pos);
    }
    p.i32(2).i32(0).string("toy").string("caliper");
    out.extend(obj(2000, 2, 1, &p.0, false, true));
    let mut p = P::new();
    p.i32(0)
        .i32(0)
        .i32(0)
        .i32(0)
        .i32(0)
        .i32(0)
        .f32(OBS_HEIGHT)
        .i32(n_events as i32)
        .i32(1)
        .i32(0);
    p.f32s(&[0.0, 300.0, POINT_ALT as f32, POINT_ALT as f32, 0.0, 0.0])
        .i32(0)
        .f32s(&[0.0, 0.0, 0.1, 100.0])
        .f32(-2.0);
    p.f32s(&[0.0; 4])
        .i32s_compat(&[0; 4])
        .f32s(&[0.0; 3])
        .i32s_compat(&[0; 2]);
    out.extend(obj(2001, 4, -1, &p.0, false, true));
    let ref_step = 0.1f32;
    let ref_len = 200usize;
    let ref_shape: Vec<u16> = (0..ref_len)
        .map(|i| f32_to_f16((pulse(f64::from(ref_step) * i as f64 - 8.0) * 3.0) as f32))
        .collect();
    for (id, _) in TELS {
        let mut p = P::new();
        p.i32(N_PIX as i32)
            .f32(FOCAL)
            .f32(FOCAL * 1.02)
            .f32s(&px)
            .f32s(&py);
        p.scount(0)
            .scount(1)
            .scount(1)
            .scount(1)
            .f32(area)
            .f32(PITCH as f32);
        p.i32(198).f32(386.0).f32(0.0);
        out.extend(obj(2002, 5, i32::from(id), &p.0, false, true));
        let mut p = P::new();
        p.i32(N_PIX as i32).i32(265).i32(2).i32(0);
        for i in 0..N_PIX {
            p.i16((i / 7) as i16);
        }
        for _ in 0..3 {
            for i in 0..2 * N_PIX {
                p.i16((i % N_PIX % 7) as i16);
            }
        }
        for _ in 0..N_PIX {
            p.i16(0);
        }
        out.extend(obj(2003, 1, i32::from(id), &p.0, false, true));
        let mut p = P::new();
        p.i32(0).i32(0).i32(4).i32(N_PIX as i32);
        for _ in 0..N_PIX {
            p.i32(0);
        }
        p.i32(1)
            .i32(0)
            .i32(1)
            .i16(0)
            .i16(N_SAMPLES as i16)
            .f32(1.0)
            .i32(N_SAMPLES as i32);
        p.scount(2).scount(ref_len as i64).f32(ref_step);
        for _ in 0..2 {
            for &h in &ref_shape {
                p.u16(h);
            }
        }
        p.i32(0);
        out.extend(obj(2004, 3, i32::from(id), &p.0, false, true));
        let mut p = P::new();
        p.i32(0).i32(1).i32(17); // pixel 17 has its HV off
        out.extend(obj(2005, 0, i32::from(id), &p.0, false, true));
    }
    // pedestals and calibration
    for (id, _) in TELS {
        let mut p = P::new();
        p.i16(0)
            .i16(0)
            .i32(0)
            .i32(0)
            .i32(0)
            .scount(0)
            .scount(N_PIX as i64)
            .scount(265)
            .scount(2);
        p.i32(0).i32(0).i16(N_SAMPLES as i16);
        for ped in PED_PER_SAMPLE {
            for _ in 0..N_PIX {
                p.f32(ped * N_SAMPLES as f32);
            }
        }
        for _ in 0..2 * N_PIX {
            p.f32(2.0);
        }
        out.extend(obj(2022, 1, i32::from(id) | (0x04 << 8), &p.0, false, true));
        let mut p = P::new();
        p.u16(N_PIX as u16).i16(2).i32(0);
        for adc_per_pe in ADC_PER_PE {
            for _ in 0..N_PIX {
                p.f32((1.0 / adc_per_pe) as f32);
            }
        }
        p.f32s(&[0.0; 4]);
        for _ in 0..2 * N_PIX {
            p.f32(0.0);
        }
        out.extend(obj(2023, 2, i32::from(id), &p.0, false, true));
    }

    let noise = Normal::new(0.0, 2.0).map_err(|e| RunError::failed(e.to_string()))?;
    let nsb = Poisson::new(NSB_PE).map_err(|e| RunError::failed(e.to_string()))?;
    let mut truths = Vec::new();
    let mut n_written = 0usize;
    let mut pe = vec![0.0f64; N_PIX];
    let mut wave = vec![0.0f64; N_PIX * N_SAMPLES];
    for ev in 0..n_events {
        let event_id = (ev as i64 + 1) * 100;
        let energy = 10f64.powf(rng.random_range(-1.0..1.0));
        let r = 250.0 * rng.random::<f64>().sqrt();
        let phi = rng.random_range(0.0..std::f64::consts::TAU);
        let core = (r * phi.cos(), r * phi.sin());
        let h_max = 9000.0 + 1000.0 * rng.random::<f64>();
        let mut p = P::new();
        p.i32(0)
            .f32(energy as f32)
            .f32(0.0)
            .f32(POINT_ALT as f32)
            .f32(0.0)
            .f32(20000.0)
            .f32(300.0)
            .f32(h_max as f32)
            .f32(0.0)
            .f32(0.0)
            .i16(0);
        out.extend(obj(2020, 1, ev as i32, &p.0, false, true));
        let mut p = P::new();
        p.i32(ev as i32).f32(core.0 as f32).f32(core.1 as f32);
        out.extend(obj(2021, 1, event_id as i32, &p.0, false, true));
        // shower maximum on the axis (on-axis gamma from the pointing direction)
        let d = righthanded(POINT_ALT, 0.0);
        let smax = [
            core.0 + h_max / POINT_ALT.sin() * d[0],
            core.1 + h_max / POINT_ALT.sin() * d[1],
            h_max / POINT_ALT.sin() * d[2],
        ];
        let mut tel_blobs: Vec<(u16, Vec<u8>)> = Vec::new();
        let mut n_pe_sum = Vec::new();
        for (id, pos) in TELS {
            let pos = [f64::from(pos[0]), f64::from(pos[1]), f64::from(pos[2])];
            let v = [smax[0] - pos[0], smax[1] - pos[1], smax[2] - pos[2]];
            // right-handed ground → astropy AltAz vector (x, −y, z)
            let nv = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
            let va = [v[0] / nv, -v[1] / nv, v[2] / nv];
            let (lon, lat) = altaz_to_telescope(va, 0.0, POINT_ALT);
            let cx = lat * f64::from(FOCAL);
            let cy = lon * f64::from(FOCAL);
            let psi = cy.atan2(cx);
            let impact = ((pos[0] - core.0).powi(2) + (pos[1] - core.1).powi(2)).sqrt();
            let intensity =
                2000.0 * energy * (-(impact / 150.0)).exp() * rng.random_range(0.7..1.3);
            let width = rng.random_range(0.03..0.05);
            let length = rng.random_range(0.08..0.15) * (1.0 + impact / 400.0);
            let (sp, cp) = psi.sin_cos();
            let mut signal_total = 0.0;
            for i in 0..N_PIX {
                let dx = f64::from(px[i]) - cx;
                let dy = f64::from(py[i]) - cy;
                let l = dx * cp + dy * sp;
                let t = -dx * sp + dy * cp;
                let dens = (-(l * l) / (2.0 * length * length) - (t * t) / (2.0 * width * width))
                    .exp()
                    / (2.0 * std::f64::consts::PI * length * width);
                pe[i] = intensity * dens * f64::from(area);
                signal_total += pe[i];
            }
            let n_sig: Vec<f64> = pe
                .iter()
                .map(|&m| {
                    if m > 0.0 {
                        Poisson::new(m).map(|d| d.sample(&mut rng)).unwrap_or(0.0)
                    } else {
                        0.0
                    }
                })
                .collect();
            let sum_sig: f64 = n_sig.iter().sum();
            if sum_sig < 60.0 {
                continue;
            }
            // waveforms: signal pulse at a time gradient along the axis, NSB at random times
            wave.iter_mut().for_each(|w| *w = 0.0);
            for i in 0..N_PIX {
                let dx = f64::from(px[i]) - cx;
                let dy = f64::from(py[i]) - cy;
                let l = dx * cp + dy * sp;
                let t0 = 12.0 + 15.0 * l;
                let w = &mut wave[i * N_SAMPLES..(i + 1) * N_SAMPLES];
                if n_sig[i] > 0.0 {
                    for (s, x) in w.iter_mut().enumerate() {
                        *x += n_sig[i] * pulse(s as f64 - t0);
                    }
                }
                let k: f64 = nsb.sample(&mut rng);
                for _ in 0..k as usize {
                    let tn = rng.random_range(-5.0..N_SAMPLES as f64 + 5.0);
                    for (s, x) in w.iter_mut().enumerate() {
                        *x += pulse(s as f64 - tn);
                    }
                }
            }
            let mut adc = P::new();
            adc.i32(N_PIX as i32).i16(2).i16(N_SAMPLES as i16);
            for g in 0..2 {
                for i in 0..N_PIX {
                    let mut prev = 0i64;
                    for s in 0..N_SAMPLES {
                        let v = f64::from(PED_PER_SAMPLE[g])
                            + ADC_PER_PE[g] * wave[i * N_SAMPLES + s]
                            + noise.sample(&mut rng);
                        let v = v.round().clamp(0.0, 65535.0) as i64;
                        adc.scount(v - prev);
                        prev = v;
                    }
                }
            }
            let mut teh = P::new();
            teh.i32(0).i32(0).i32(0).i32(0).i32(0).i32(0).i16(1);
            let mut body = obj(2011, 1, i32::from(id), &teh.0, false, false);
            body.extend(obj(2013, 3, i32::from(id) << 12, &adc.0, false, false));
            tel_blobs.push((id, body));
            n_pe_sum.push((id, sum_sig));
            truths.push(ImageTruth {
                event_id,
                tel_id: id,
                x: cx,
                y: cy,
                length,
                width,
                psi: (cy / cx).atan(),
                intensity: signal_total,
            });
        }
        let mut p = P::new();
        p.i32(ev as i32).i32(TELS.len() as i32);
        for (id, _) in TELS {
            p.i32(
                n_pe_sum
                    .iter()
                    .find(|x| x.0 == id)
                    .map(|x| x.1 as i32)
                    .unwrap_or(0),
            );
        }
        for _ in TELS {
            p.i32(0);
        }
        out.extend(obj(2026, 0, event_id as i32, &p.0, false, true));
        if tel_blobs.is_empty() {
            continue;
        }
        let mut trig = P::new();
        trig.i32(0)
            .i32(0)
            .i32(0)
            .i32(0)
            .i32(0)
            .i32(0)
            .i16(tel_blobs.len() as i16);
        for (id, _) in &tel_blobs {
            trig.i16(*id as i16);
        }
        for _ in &tel_blobs {
            trig.f32(0.0);
        }
        trig.i16(tel_blobs.len() as i16);
        for (id, _) in &tel_blobs {
            trig.i16(*id as i16);
        }
        for _ in &tel_blobs {
            put_count(&mut trig.0, 1);
        }
        let mut arr = obj(2009, 2, event_id as i32, &trig.0, false, false);
        for (id, body) in &tel_blobs {
            arr.extend(obj(
                2200 + u32::from(*id),
                1,
                event_id as i32,
                body,
                true,
                false,
            ));
        }
        for (id, _) in TELS {
            let mut tp = P::new();
            tp.f32(0.0).f32(POINT_ALT as f32);
            arr.extend(obj(
                2100 + u32::from(id),
                0,
                i32::from(id) | 0x100,
                &tp.0,
                false,
                false,
            ));
        }
        out.extend(obj(2010, 0, event_id as i32, &arr, true, true));
        n_written += 1;
    }
    let f = std::fs::File::create(path).map_err(|e| RunError::io(path, e))?;
    let mut gz =
        flate2::write::GzEncoder::new(std::io::BufWriter::new(f), flate2::Compression::fast());
    gz.write_all(&out).map_err(|e| RunError::io(path, e))?;
    gz.finish()
        .map_err(|e| RunError::io(path, e))?
        .flush()
        .map_err(|e| RunError::io(path, e))?;
    Ok((truths, n_written))
}

trait I32s {
    fn i32s_compat(&mut self, v: &[i32]) -> &mut Self;
}
impl I32s for P {
    fn i32s_compat(&mut self, v: &[i32]) -> &mut Self {
        for &x in v {
            self.i32(x);
        }
        self
    }
}

/// `Instrument::simulate`: one toy file; truth with per-image parameters and the geometry.
pub fn simulate(request: &SimulateRequest) -> Result<SimulateOutcome, RunError> {
    let n = if request.size == 0 { 200 } else { request.size };
    let path = request.output_dir.join("toy_gamma.simtel.gz");
    let (truths, n_events) = write_toy_file(&path, n, request.seed)?;
    let truth = serde_json::json!({
        "array_events": n_events,
        "images": truths.len(),
        "true_alt_deg": POINT_ALT.to_degrees(),
        "true_az_deg": 0.0,
        "image_truth": truths,
    });
    Ok(SimulateOutcome {
        inputs: vec![path],
        truth,
        overrides: vec!["focal_length_choice=\"EQUIVALENT\"".into()],
    })
}

/// Compare a run's summary with the toy truth.
pub fn check_truth(summary: &serde_json::Value, truth: &serde_json::Value) -> Vec<TruthCheck> {
    let mut out = Vec::new();
    let get = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_f64());
    if let (Some(a), Some(b)) = (get(summary, "events"), get(truth, "array_events")) {
        out.push(TruthCheck {
            quantity: "array events read".into(),
            result: format!("{a}"),
            truth: format!("{b}"),
            agreement: if a == b {
                "identical".into()
            } else {
                "differ".into()
            },
            pass: a == b,
        });
    }
    if let (Some(a), Some(b)) = (get(summary, "images"), get(truth, "images")) {
        out.push(TruthCheck {
            quantity: "telescope images".into(),
            result: format!("{a}"),
            truth: format!("{b}"),
            agreement: if a == b {
                "identical".into()
            } else {
                "differ".into()
            },
            pass: a == b,
        });
    }
    if let Some(m) = get(summary, "median_angular_error_deg") {
        // on-axis toy showers with a 5 cm pixel camera: the direction is known to ~0.1°
        out.push(TruthCheck {
            quantity: "stereo direction, median error".into(),
            result: format!("{m:.3} deg"),
            truth: "0 deg (source at the pointing)".into(),
            agreement: format!("{m:.3} deg"),
            pass: m < 0.15,
        });
    }
    if let Some(c) = get(summary, "median_core_error_m") {
        out.push(TruthCheck {
            quantity: "stereo core, median error".into(),
            result: format!("{c:.1} m"),
            truth: "true core".into(),
            agreement: format!("{c:.1} m"),
            pass: c < 20.0,
        });
    }
    out
}

/// `caliper bench cherenkov`: decompression, calibrate+clean+parameterise, with stereo, and
/// Hillas on a 25-pixel image.
pub fn bench(scratch: &Path) -> Result<Vec<BenchRecord>, RunError> {
    let path = scratch.join("bench_toy.simtel.gz");
    let (truths, _) = write_toy_file(&path, 300, 7)?;
    let threads = rayon::current_num_threads();
    let mut recs = Vec::new();
    // decompression + EventIO parsing alone
    let t = Instant::now();
    let mut r = crate::io::simtel::SimtelReader::open(&path).map_err(RunError::Read)?;
    let mut n = 0;
    while let Some(e) = r.next_event() {
        e.map_err(RunError::Read)?;
        n += 1;
    }
    let bytes = r.offset() as f64;
    recs.push(BenchRecord {
        name: "read (gzip + EventIO decode)".into(),
        items: f64::from(n),
        item_unit: "events".into(),
        bytes,
        seconds: t.elapsed().as_secs_f64(),
        threads: 1,
    });
    // full chain, with and without stereo, file opening excluded (events held in memory)
    let mut reader = crate::io::simtel::SimtelReader::open(&path).map_err(RunError::Read)?;
    let mut events = Vec::new();
    while let Some(e) = reader.next_event() {
        events.push(e.map_err(RunError::Read)?);
    }
    for stereo in [false, true] {
        let mut cfg = crate::config::CherenkovConfig {
            focal_length_choice: crate::geometry::FocalLengthChoice::Equivalent,
            ..Default::default()
        };
        cfg.stereo.enabled = stereo;
        let sub = crate::subarray::Subarray::new(reader.header().clone(), &cfg)
            .map_err(RunError::failed)?;
        let chain = crate::process::Chain::new(&sub, &cfg);
        let reps = 5;
        let t = Instant::now();
        let mut images = 0usize;
        for _ in 0..reps {
            use rayon::prelude::*;
            let counts: Vec<usize> = events
                .par_chunks(8)
                .map(|chunk| {
                    let mut p = crate::process::ChainPartial::default();
                    chunk
                        .iter()
                        .map(|ev| chain.process(ev, &mut p).map(|r| r.tels.len()).unwrap_or(0))
                        .sum()
                })
                .collect();
            images += counts.iter().sum::<usize>();
        }
        let name = if stereo {
            "calibrate+clean+parameterise+stereo"
        } else {
            "calibrate+clean+parameterise"
        };
        recs.push(BenchRecord {
            name: name.into(),
            items: images as f64,
            item_unit: "images".into(),
            bytes: 0.0,
            seconds: t.elapsed().as_secs_f64(),
            threads,
        });
    }
    // Hillas on a 25-pixel image
    let x: Vec<f64> = (0..25).map(|i| f64::from(i % 5) * 0.05).collect();
    let y: Vec<f64> = (0..25).map(|i| f64::from(i / 5) * 0.05).collect();
    let a = vec![0.002; 25];
    let img: Vec<f32> = (0..25).map(|i| 10.0 + (i * 7 % 11) as f32).collect();
    let idx: Vec<u32> = (0..25).collect();
    let frame = crate::hillas::FrameView {
        x: &x,
        y: &y,
        area: &a,
    };
    let reps = 200_000;
    let t = Instant::now();
    let mut acc = 0.0;
    for _ in 0..reps {
        if let Some(h) = crate::hillas::hillas_parameters(&frame, std::hint::black_box(&img), &idx)
        {
            acc += h.length;
        }
    }
    std::hint::black_box(acc);
    recs.push(BenchRecord {
        name: "hillas_parameters, 25-pixel image".into(),
        items: f64::from(reps),
        item_unit: "images".into(),
        bytes: 0.0,
        seconds: t.elapsed().as_secs_f64(),
        threads: 1,
    });
    let _ = truths;
    Ok(recs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_through_the_reader_cursor() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            8191,
            -8192,
            8192,
            1 << 20,
            -(1 << 27),
            1 << 40,
        ] {
            let mut b = Vec::new();
            put_scount(&mut b, v);
            let mut c = crate::io::eventio::Cursor::new(&b, 0);
            assert_eq!(c.scount().unwrap(), v, "{v}");
            assert_eq!(c.remaining(), 0);
        }
    }

    #[test]
    fn half_floats_round_trip() {
        for v in [0.5f32, 0.25, 1.0, 0.333_251_95] {
            assert_eq!(crate::io::eventio::f16_to_f32(f32_to_f16(v)), v);
        }
    }
}
