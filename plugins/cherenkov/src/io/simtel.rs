//! sim_telarray objects (spec `eventio-simtel.md` §4–5, eventio `simtel/objects.py` and
//! `simtel/simtelfile.py`) and the event stream built from them, as ctapipe's
//! `SimTelEventSource` sees it: the header block (run header, MC run header, the seven
//! per-telescope description objects), then array events with the current MC shower, the MC
//! event, the latest pedestals and calibration per telescope, tracking and ADC data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use caliper_core::{Position, ReadError};

use super::eventio::{
    Cursor, FrameError, ObjectHeader, ParseError, ParseResult, TopLevelReader, type_name,
};

/// Run header (type 2000, v0–2).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunHeader {
    /// Run number.
    pub run: i32,
    /// Start time (unix seconds).
    pub time: i32,
    /// Run type.
    pub run_type: i32,
    /// 0 = alt/az tracking, else ra/dec.
    pub tracking_mode: i32,
    /// (azimuth, altitude) \[rad\] for tracking_mode 0.
    pub direction: [f32; 2],
    /// Offset of the field of view \[rad\].
    pub offset_fov: [f32; 2],
    /// Convergence depth.
    pub conv_depth: f32,
    /// Telescope ids in header order.
    pub tel_id: Vec<i16>,
    /// Telescope ground positions (x, y, z) \[m\].
    pub tel_pos: Vec<[f32; 3]>,
    /// Minimum telescope multiplicity.
    pub min_tel_trig: i32,
    /// Duration \[s\].
    pub duration: i32,
    /// Target name.
    pub target: String,
    /// Observer.
    pub observer: String,
}

/// MC run header (type 2001, v4); the fields the chain and the outputs use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct McRunHeader {
    /// Observation level above sea level \[m\].
    pub obsheight: f32,
    /// Showers simulated.
    pub n_showers: i32,
    /// Re-uses of each shower.
    pub n_use: i32,
    /// Core range \[m\].
    pub core_range: [f32; 2],
    /// Altitude range \[rad\].
    pub alt_range: [f32; 2],
    /// Azimuth range \[rad\].
    pub az_range: [f32; 2],
    /// Diffuse flag.
    pub diffuse: i32,
    /// View-cone \[deg\].
    pub viewcone: [f32; 2],
    /// Energy range \[TeV\].
    pub energy_range: [f32; 2],
    /// Spectral index.
    pub spectral_index: f32,
}

/// Camera settings (type 2002, v0–6).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CameraSettings {
    /// Object version.
    pub version: u32,
    /// Pixels.
    pub n_pixels: usize,
    /// Equivalent focal length \[m\].
    pub focal_length: f32,
    /// Effective focal length \[m\] (v5+).
    pub effective_focal_length: Option<f32>,
    /// Pixel x \[m\] (camera frame, before derotation).
    pub pixel_x: Vec<f32>,
    /// Pixel y \[m\].
    pub pixel_y: Vec<f32>,
    /// Pixel shape code per pixel (−1 = unknown, before v4).
    pub pixel_shape: Vec<i32>,
    /// Pixel area \[m²\].
    pub pixel_area: Vec<f32>,
    /// Pixel size \[m\].
    pub pixel_size: Vec<f32>,
    /// Mirrors.
    pub n_mirrors: i32,
    /// Mirror area \[m²\].
    pub mirror_area: f32,
    /// Camera rotation \[rad\] (v3+).
    pub cam_rot: f32,
}

/// Camera organisation (type 2003, v1–2): only the counts the chain needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CameraOrganisation {
    /// Pixels.
    pub n_pixels: usize,
    /// Drawers.
    pub n_drawers: usize,
    /// Gain channels.
    pub n_gains: usize,
    /// Trigger sectors.
    pub n_sectors: usize,
}

/// Pixel settings (type 2004, v0–3).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PixelSettings {
    /// Nanoseconds per sample (v1+).
    pub time_slice: f32,
    /// Samples read out (v1+).
    pub sum_bins: i32,
    /// Reference pulse step \[ns\] (v2+).
    pub ref_step: f32,
    /// Reference pulse shape per gain (v2+), float16 widened.
    pub ref_shape: Vec<Vec<f32>>,
    /// Sum offset (v3+).
    pub sum_offset: i32,
}

/// Disabled pixels (type 2005).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisabledPixels {
    /// Pixels excluded from the trigger.
    pub trigger_disabled: Vec<i32>,
    /// Pixels with HV off (ctapipe: broken in both gains).
    pub hv_disabled: Vec<i32>,
}

/// Everything the header block says about one telescope.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TelescopeDescription {
    /// Telescope id.
    pub tel_id: u16,
    /// Camera settings.
    pub camera_settings: CameraSettings,
    /// Camera organisation.
    pub camera_organisation: CameraOrganisation,
    /// Pixel settings.
    pub pixel_settings: PixelSettings,
    /// Disabled pixels.
    pub disabled_pixels: DisabledPixels,
    /// Per-telescope metadata (HistoryMeta 75), e.g. `OPTICS_CONFIG_NAME`.
    pub meta: BTreeMap<String, String>,
}

/// Pedestals (CameraMonitoring 2022) and calibration (LaserCalibration 2023) of one telescope.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TelCalibration {
    /// Gains.
    pub n_gains: usize,
    /// Pixels.
    pub n_pixels: usize,
    /// Pedestal per sample, `pedestal_sum / n_ped_slices` in float32 as ctapipe (`[g][p]`).
    pub pedestal_per_sample: Vec<f32>,
    /// p.e. per ADC count (`[g][p]`).
    pub dc_to_pe: Vec<f32>,
    /// Time offsets \[ns\] (`[g][p]`, LaserCalibration v2+), zero when absent.
    pub time_shift: Vec<f32>,
}

/// MC shower (type 2020).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct McShower {
    /// Shower number.
    pub shower_num: i32,
    /// CORSIKA primary id.
    pub primary_id: i32,
    /// Energy \[TeV\].
    pub energy: f32,
    /// Azimuth \[rad\].
    pub azimuth: f32,
    /// Altitude \[rad\].
    pub altitude: f32,
    /// Starting depth [g/cm²] (v1+).
    pub depth_start: f32,
    /// Height of first interaction \[m\].
    pub h_first_int: f32,
    /// Xmax [g/cm²].
    pub xmax: f32,
    /// Hmax \[m\] (v1+).
    pub hmax: f32,
}

/// MC event (type 2021).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct McEvent {
    /// Event id.
    pub event_id: i32,
    /// Shower number.
    pub shower_num: i32,
    /// Core x \[m\].
    pub xcore: f32,
    /// Core y \[m\].
    pub ycore: f32,
}

/// Central trigger (type 2009).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TriggerInfo {
    /// Object id (event number; overrides the array event id when ≠ 0).
    pub id: i32,
    /// GPS time (s, ns).
    pub gps_time: (i32, i32),
    /// Telescopes that triggered.
    pub triggered_telescopes: Vec<i16>,
    /// Their relative trigger times \[ns\].
    pub trigger_times: Vec<f32>,
    /// Telescopes with data.
    pub telescopes_with_data: Vec<i16>,
    /// Trigger type mask per triggered telescope (v2+, bug-repaired as eventio).
    pub teltrg_type_mask: Vec<u64>,
}

/// Tracking position of one telescope (type 2100+).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tracking {
    /// Raw azimuth \[rad\].
    pub azimuth_raw: f32,
    /// Raw altitude \[rad\].
    pub altitude_raw: f32,
    /// Corrected azimuth \[rad\] if present.
    pub azimuth_cor: Option<f32>,
    /// Corrected altitude \[rad\] if present.
    pub altitude_cor: Option<f32>,
}

impl Tracking {
    /// (azimuth, altitude) \[rad\] as ctapipe uses them: corrected when present, |alt| clipped
    /// to π/2 (`SimTelEventSource._fill_event_pointing`).
    pub fn az_alt(&self) -> (f64, f64) {
        let (az, alt) = match (self.azimuth_cor, self.altitude_cor) {
            (Some(a), Some(b)) if !a.is_nan() => (a, b),
            _ => (self.azimuth_raw, self.altitude_raw),
        };
        let half_pi = std::f64::consts::FRAC_PI_2;
        let alt = f64::from(alt).clamp(-half_pi, half_pi);
        (f64::from(az), alt)
    }
}

/// Raw data of one telescope in one event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TelescopeEvent {
    /// Telescope id.
    pub tel_id: u16,
    /// Gains.
    pub n_gains: usize,
    /// Pixels.
    pub n_pixels: usize,
    /// Samples per pixel (1 for sums-only cameras).
    pub n_samples: usize,
    /// ADC samples `[g][p][s]` (type 2013), or empty.
    pub samples: Vec<u16>,
    /// ADC sums `[g][p]` (type 2012), or empty.
    pub sums: Vec<u32>,
    /// Tracking position.
    pub tracking: Option<Tracking>,
    /// Pedestal and calibration valid for this event.
    pub calibration: Option<Arc<TelCalibration>>,
    /// True number of p.e. (MCPhotoelectronSum), −1 if unknown.
    pub true_image_sum: f64,
}

impl TelescopeEvent {
    /// The raw value of gain `g`, pixel `p`, sample `s` (sums act as a one-sample waveform).
    #[inline]
    pub fn adc(&self, g: usize, p: usize, s: usize) -> f32 {
        if self.samples.is_empty() {
            self.sums[g * self.n_pixels + p] as f32
        } else {
            f32::from(self.samples[(g * self.n_pixels + p) * self.n_samples + s])
        }
    }
}

/// One array event as ctapipe's `SimTelEventSource` yields it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArrayEvent {
    /// Run number (ctapipe `obs_id`).
    pub obs_id: i32,
    /// Event id.
    pub event_id: i64,
    /// Byte offset of the ArrayEvent object in the decompressed stream.
    pub offset: u64,
    /// The MC shower.
    pub shower: Option<Arc<McShower>>,
    /// The MC event (core).
    pub mc_event: Option<McEvent>,
    /// Central trigger.
    pub trigger: TriggerInfo,
    /// Telescope events of triggered telescopes, in file order.
    pub telescopes: Vec<TelescopeEvent>,
}

/// The header block of a file.
#[derive(Debug, Clone, Default)]
pub struct SimtelHeader {
    /// Run header.
    pub run_header: RunHeader,
    /// MC run header, if present.
    pub mc_run_header: Option<McRunHeader>,
    /// Telescopes by id.
    pub telescopes: BTreeMap<u16, TelescopeDescription>,
    /// Global metadata (HistoryMeta id −1).
    pub global_meta: BTreeMap<String, String>,
}

impl SimtelHeader {
    /// Ground position (x, y, z) \[m\] of a telescope.
    pub fn tel_position(&self, tel_id: u16) -> Option<[f64; 3]> {
        let rh = &self.run_header;
        rh.tel_id
            .iter()
            .position(|&t| t as i32 == i32::from(tel_id))
            .and_then(|i| rh.tel_pos.get(i))
            .map(|p| [f64::from(p[0]), f64::from(p[1]), f64::from(p[2])])
    }
}

fn tel_from_typed(type_: u32, base: u32) -> u16 {
    // spec §4: b = type − base; tel_id = 100·(b/1000) + b%1000
    let b = type_ - base;
    (100 * (b / 1000) + b % 1000) as u16
}

fn tel_from_flag_id(id: i32) -> u16 {
    let id = id as u32;
    ((id & 0xFF) | ((id & 0x3F00_0000) >> 16)) as u16
}

fn check_version(c: &Cursor<'_>, h: &ObjectHeader, max: u32) -> ParseResult<()> {
    if h.version > max {
        return Err(c.err(format!(
            "{} version <= {max}, found version {} (newer than this reader supports)",
            type_name(h.type_),
            h.version
        )));
    }
    Ok(())
}

fn n_from_i32(c: &Cursor<'_>, v: i32, what: &str) -> ParseResult<usize> {
    if !(0..=10_000_000).contains(&v) {
        return Err(c.err(format!("{what} in 0..=10000000, found {v}")));
    }
    Ok(v as usize)
}

/// Parse a RunHeader (2000).
pub fn parse_run_header(h: &ObjectHeader, c: &mut Cursor<'_>) -> ParseResult<RunHeader> {
    check_version(c, h, 2)?;
    let mut r = RunHeader {
        run: c.i32()?,
        time: c.i32()?,
        run_type: c.i32()?,
        tracking_mode: c.i32()?,
        ..Default::default()
    };
    if h.version >= 2 {
        c.i32()?; // reverse_flag
    }
    r.direction = [c.f32()?, c.f32()?];
    r.offset_fov = [c.f32()?, c.f32()?];
    r.conv_depth = c.f32()?;
    if h.version >= 1 {
        c.f32()?;
        c.f32()?;
    }
    let n_raw = c.i32()?;
    let n = n_from_i32(c, n_raw, "n_telescopes")?;
    r.tel_id = c.i16_vec(n)?;
    let pos = c.f32_vec(3 * n)?;
    r.tel_pos = pos.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
    r.min_tel_trig = c.i32()?;
    r.duration = c.i32()?;
    r.target = c.string()?;
    r.observer = c.string()?;
    Ok(r)
}

/// Parse an MCRunHeader (2001).
pub fn parse_mc_run_header(h: &ObjectHeader, c: &mut Cursor<'_>) -> ParseResult<McRunHeader> {
    check_version(c, h, 5)?;
    c.skip(6 * 4)?;
    let obsheight = c.f32()?;
    let n_showers = c.i32()?;
    let n_use = c.i32()?;
    c.i32()?; // core_pos_mode
    let core_range = [c.f32()?, c.f32()?];
    let alt_range = [c.f32()?, c.f32()?];
    let az_range = [c.f32()?, c.f32()?];
    let diffuse = c.i32()?;
    let viewcone = [c.f32()?, c.f32()?];
    let energy_range = [c.f32()?, c.f32()?];
    let spectral_index = c.f32()?;
    Ok(McRunHeader {
        obsheight,
        n_showers,
        n_use,
        core_range,
        alt_range,
        az_range,
        diffuse,
        viewcone,
        energy_range,
        spectral_index,
    })
}

/// Parse CameraSettings (2002, v0–6).
pub fn parse_camera_settings(h: &ObjectHeader, c: &mut Cursor<'_>) -> ParseResult<CameraSettings> {
    check_version(c, h, 6)?;
    let v = h.version;
    let n_raw = c.i32()?;
    let n = n_from_i32(c, n_raw, "n_pixels")?;
    let mut s = CameraSettings {
        version: v,
        n_pixels: n,
        focal_length: c.f32()?,
        ..Default::default()
    };
    if v >= 5 {
        s.effective_focal_length = Some(c.f32()?);
    }
    if v >= 6 {
        c.skip(16)?; // eff_fl_x, eff_fl_y, eff_fl_dx, eff_fl_dy
    }
    s.pixel_x = c.f32_vec(n)?;
    s.pixel_y = c.f32_vec(n)?;
    if v >= 4 {
        let curved = c.scount()?;
        let parallel = c.scount()?;
        if curved != 0 {
            c.f32_vec(n)?;
        }
        if parallel == 0 {
            c.f32_vec(n)?;
            c.f32_vec(n)?;
        }
        let common = c.scount()?;
        if common != 0 {
            let shape = c.scount()? as i32;
            let area = c.f32()?;
            let size = c.f32()?;
            s.pixel_shape = vec![shape; n];
            s.pixel_area = vec![area; n];
            s.pixel_size = vec![size; n];
        } else {
            s.pixel_shape = (0..n)
                .map(|_| c.scount().map(|v| v as i32))
                .collect::<ParseResult<_>>()?;
            s.pixel_area = c.f32_vec(n)?;
            s.pixel_size = c.f32_vec(n)?;
        }
    } else {
        s.pixel_shape = vec![-1; n];
        s.pixel_area = c.f32_vec(n)?;
        s.pixel_size = if v >= 1 { c.f32_vec(n)? } else { vec![0.0; n] };
    }
    if v >= 2 {
        s.n_mirrors = c.i32()?;
        s.mirror_area = c.f32()?;
    }
    if v >= 3 {
        s.cam_rot = c.f32()?;
    }
    Ok(s)
}

/// Parse CameraOrganisation (2003, v1–2): the counts, skipping the per-pixel layout.
pub fn parse_camera_organisation(
    h: &ObjectHeader,
    c: &mut Cursor<'_>,
) -> ParseResult<CameraOrganisation> {
    check_version(c, h, 2)?;
    let (a, b, g, s) = (c.i32()?, c.i32()?, c.i32()?, c.i32()?);
    Ok(CameraOrganisation {
        n_pixels: n_from_i32(c, a, "n_pixels")?,
        n_drawers: n_from_i32(c, b, "n_drawers")?,
        n_gains: n_from_i32(c, g, "n_gains")?,
        n_sectors: n_from_i32(c, s, "n_sectors")?,
    })
}

/// Parse PixelSettings (2004, v0–3).
pub fn parse_pixel_settings(h: &ObjectHeader, c: &mut Cursor<'_>) -> ParseResult<PixelSettings> {
    check_version(c, h, 3)?;
    c.skip(12)?; // setup_id, trigger_mode, min_pixel_mult
    let n_raw = c.i32()?;
    let n = n_from_i32(c, n_raw, "n_pixels")?;
    c.skip(4 * n)?; // pixel_HV_DAC
    let nd_raw = c.i32()?;
    let nd = n_from_i32(c, nd_raw, "n_drawers")?;
    c.skip(4 * nd)?; // threshold_DAC
    let nd2_raw = c.i32()?;
    let nd2 = n_from_i32(c, nd2_raw, "n_drawers")?;
    c.skip(4 * nd2)?; // ADC_start, ADC_count
    let mut p = PixelSettings::default();
    if h.version >= 1 {
        p.time_slice = c.f32()?;
        p.sum_bins = c.i32()?;
    }
    if h.version >= 2 {
        let n_ref = c.count_usize("n_ref_shape", 16)?;
        let l_ref = c.count_usize("l_ref_shape", 1_000_000)?;
        p.ref_step = c.f32()?;
        for _ in 0..n_ref {
            p.ref_shape
                .push((0..l_ref).map(|_| c.f16()).collect::<ParseResult<_>>()?);
        }
    }
    if h.version >= 3 {
        p.sum_offset = c.i32()?;
    }
    Ok(p)
}

/// Parse DisabledPixels (2005).
pub fn parse_disabled_pixels(h: &ObjectHeader, c: &mut Cursor<'_>) -> ParseResult<DisabledPixels> {
    check_version(c, h, 0)?;
    let nt_raw = c.i32()?;
    let nt = n_from_i32(c, nt_raw, "n_trig_disabled")?;
    let trigger_disabled = c.i32_vec(nt)?;
    let nh_raw = c.i32()?;
    let nh = n_from_i32(c, nh_raw, "n_HV_disabled")?;
    let hv_disabled = c.i32_vec(nh)?;
    Ok(DisabledPixels {
        trigger_disabled,
        hv_disabled,
    })
}

/// The pedestal block of a CameraMonitoring: (n_gains, n_pixels, n_ped_slices, pedestal sums).
pub type PedestalBlock = (usize, usize, i16, Vec<f32>);

/// CameraMonitoring (2022): telescope id and its pedestal block, if the object carries one
/// (bit 0x04 of `what`; a monitoring object without pedestals leaves the previous ones valid).
pub fn parse_camera_monitoring(
    h: &ObjectHeader,
    c: &mut Cursor<'_>,
) -> ParseResult<(u16, Option<PedestalBlock>)> {
    check_version(c, h, 1)?;
    let tel = tel_from_flag_id(h.id);
    let what = ((h.id as u32) >> 8) & 0xFFFF;
    c.skip(2 + 2 + 4 + 8)?; // known, new_parts, monitor_id, moni_time
    let (n_sectors, n_pixels, n_drawers, n_gains) = if h.version == 0 {
        (
            c.i16()? as i64,
            c.i16()? as i64,
            c.i16()? as i64,
            c.i16()? as i64,
        )
    } else {
        (c.scount()?, c.scount()?, c.scount()?, c.scount()?)
    };
    let chk = |v: i64, w: &str| -> ParseResult<usize> {
        if !(0..=1_000_000).contains(&v) {
            return Err(c.err(format!("{w} in 0..=1000000, found {v}")));
        }
        Ok(v as usize)
    };
    let (ns, np, nd, ng) = (
        chk(n_sectors, "n_sectors")?,
        chk(n_pixels, "n_pixels")?,
        chk(n_drawers, "n_drawers")?,
        chk(n_gains, "n_gains")?,
    );
    let _ = nd;
    if what & 0x01 != 0 {
        c.skip(8 + 4)?;
    }
    if what & 0x02 != 0 {
        c.skip(8 + 4 + 4 + 4 + 4 * ns + 4 + 4 + 4)?;
    }
    if what & 0x04 == 0 {
        return Ok((tel, None));
    }
    c.skip(8)?;
    let n_ped_slices = c.i16()?;
    let ped = c.f32_vec(ng * np)?;
    Ok((tel, Some((ng, np, n_ped_slices, ped))))
}

/// What a LaserCalibration holds for one telescope: (n_gains, n_pixels, calib, tm_calib).
pub type LaserBlock = (usize, usize, Vec<f32>, Option<Vec<f32>>);

/// LaserCalibration (2023): telescope id and its [`LaserBlock`].
pub fn parse_laser_calibration(
    h: &ObjectHeader,
    c: &mut Cursor<'_>,
) -> ParseResult<(u16, LaserBlock)> {
    check_version(c, h, 3)?;
    let tel = h.id as u16;
    let np = c.u16()? as usize;
    let ng_raw = c.i16()?;
    if !(0..=16).contains(&ng_raw) {
        return Err(c.err(format!("n_gains in 0..=16, found {ng_raw}")));
    }
    let ng = ng_raw as usize;
    c.i32()?; // lascal_id
    let calib = c.f32_vec(ng * np)?;
    if h.version >= 1 {
        c.skip(8 * ng)?;
    }
    let tm = if h.version >= 2 {
        Some(c.f32_vec(ng * np)?)
    } else {
        None
    };
    Ok((tel, (ng, np, calib, tm)))
}

/// Parse MCShower (2020).
pub fn parse_mc_shower(h: &ObjectHeader, c: &mut Cursor<'_>) -> ParseResult<McShower> {
    check_version(c, h, 2)?;
    let mut s = McShower {
        shower_num: h.id,
        primary_id: c.i32()?,
        energy: c.f32()?,
        azimuth: c.f32()?,
        altitude: c.f32()?,
        ..Default::default()
    };
    if h.version >= 1 {
        s.depth_start = c.f32()?;
    }
    s.h_first_int = c.f32()?;
    s.xmax = c.f32()?;
    if h.version >= 1 {
        s.hmax = c.f32()?;
        c.f32()?;
        c.f32()?;
    }
    // profiles and extra parameters are not needed
    Ok(s)
}

/// Parse MCEvent (2021).
pub fn parse_mc_event(h: &ObjectHeader, c: &mut Cursor<'_>) -> ParseResult<McEvent> {
    check_version(c, h, 2)?;
    Ok(McEvent {
        event_id: h.id,
        shower_num: c.i32()?,
        xcore: c.f32()?,
        ycore: c.f32()?,
    })
}

/// Parse TriggerInformation (2009, v0–3).
pub fn parse_trigger(h: &ObjectHeader, c: &mut Cursor<'_>) -> ParseResult<TriggerInfo> {
    check_version(c, h, 3)?;
    let mut t = TriggerInfo {
        id: h.id,
        ..Default::default()
    };
    c.time()?;
    t.gps_time = c.time()?;
    c.i32()?;
    c.i32()?;
    if h.version >= 1 {
        let n_trg = c.i16()?;
        if n_trg < 0 {
            return Err(c.err(format!("n_trg >= 0, found {n_trg}")));
        }
        t.triggered_telescopes = c.i16_vec(n_trg as usize)?;
        t.trigger_times = c.f32_vec(n_trg as usize)?;
        let n_data = c.i16()?;
        if n_data < 0 {
            return Err(c.err(format!("n_data >= 0, found {n_data}")));
        }
        t.telescopes_with_data = c.i16_vec(n_data as usize)?;
        if h.version >= 2 {
            for _ in 0..n_trg {
                let mut m = c.count()?;
                // eventio repairs a sim_telarray bug: 0x10/0x20/0x40 belong at 0x100/0x200/0x400
                if h.version <= 3 && m & 0x70 != 0 {
                    m = (m & !0x70) | ((m & 0x70) << 4);
                }
                t.teltrg_type_mask.push(m);
            }
            for m in t.teltrg_type_mask.clone() {
                let bits = (m & 0xF).count_ones();
                if bits > 1 {
                    c.skip(4 * bits as usize)?;
                }
            }
        }
    }
    Ok(t)
}

/// Parse a TrackingPosition (2100+).
pub fn parse_tracking(h: &ObjectHeader, c: &mut Cursor<'_>) -> ParseResult<(u16, Tracking)> {
    let tel = tel_from_typed(h.type_, 2100);
    let id = h.id as u32;
    let mut t = Tracking::default();
    if id & 0x100 != 0 {
        t.azimuth_raw = c.f32()?;
        t.altitude_raw = c.f32()?;
    } else {
        t.azimuth_raw = f32::NAN;
        t.altitude_raw = f32::NAN;
    }
    if id & 0x200 != 0 {
        t.azimuth_cor = Some(c.f32()?);
        t.altitude_cor = Some(c.f32()?);
    }
    Ok((tel, t))
}

/// Parse ADCSamples (2013, v3).
pub fn parse_adc_samples(
    h: &ObjectHeader,
    c: &mut Cursor<'_>,
    ev: &mut TelescopeEvent,
) -> ParseResult<()> {
    check_version(c, h, 3)?;
    let id = h.id as u32;
    let zero_sup = id & 0x1F;
    let data_red = (id >> 5) & 0x1F;
    let list_known = (id >> 10) & 1;
    if data_red != 0 || list_known != 0 {
        return Err(c.err(format!("ADCSamples with data_red_mode 0 and list_known 0 (as eventio), found {data_red} / {list_known}")));
    }
    let np_raw = c.i32()?;
    let np = n_from_i32(c, np_raw, "n_pixels")?;
    let ng = c.i16()?;
    let ns = c.i16()?;
    if !(1..=4).contains(&ng) || !(0..=16384).contains(&ns) {
        return Err(c.err(format!(
            "n_gains in 1..=4 and n_samples in 0..=16384, found {ng} and {ns}"
        )));
    }
    let (ng, ns) = (ng as usize, ns as usize);
    ev.n_gains = ng;
    ev.n_pixels = np;
    ev.n_samples = ns;
    ev.samples = vec![0u16; ng * np * ns];
    if zero_sup == 0 {
        // for gain: for pixel: differential array restarting per pixel
        for chunk in ev.samples.chunks_exact_mut(ns.max(1)) {
            if ns > 0 {
                c.diff_u16(chunk)?;
            }
        }
    } else {
        let list_size = c.count_usize("list_size", np)?;
        let mut pixels = Vec::new();
        for _ in 0..list_size {
            let a = c.scount()?;
            if a < 0 {
                pixels.push((-a - 1) as usize);
            } else {
                let b = c.scount()?;
                if b < a || b as usize >= np {
                    return Err(c.err(format!(
                        "a pixel range a..=b inside 0..{np}, found {a}..={b}"
                    )));
                }
                pixels.extend(a as usize..=b as usize);
            }
        }
        for g in 0..ng {
            for &p in &pixels {
                if p >= np {
                    return Err(c.err(format!("pixel id < {np}, found {p}")));
                }
                let o = (g * np + p) * ns;
                c.diff_u16(&mut ev.samples[o..o + ns])?;
            }
        }
    }
    Ok(())
}

/// Parse ADCSums (2012, v3).
pub fn parse_adc_sums(
    h: &ObjectHeader,
    c: &mut Cursor<'_>,
    ev: &mut TelescopeEvent,
) -> ParseResult<()> {
    check_version(c, h, 3)?;
    let id = h.id as u32;
    let zero_sup = id & 0x1F;
    let data_red = (id >> 5) & 0x1F;
    if data_red != 0 {
        return Err(c.err(format!("ADCSums with data_red_mode 0, found {data_red}")));
    }
    let np_raw = c.i32()?;
    let np = n_from_i32(c, np_raw, "n_pixels")?;
    let ng_raw = c.i16()?;
    if !(1..=4).contains(&ng_raw) {
        return Err(c.err(format!("n_gains in 1..=4, found {ng_raw}")));
    }
    let ng = ng_raw as usize;
    let mut sums = vec![0u32; ng * np];
    match zero_sup {
        0 => {
            for g in 0..ng {
                c.diff_u32(&mut sums[g * np..(g + 1) * np])?;
            }
        }
        1 => {
            let mut k = 0;
            while k < np {
                let zbits = c.u16()?;
                let present: Vec<usize> = (0..16)
                    .filter(|j| zbits & (1 << j) != 0 && k + j < np)
                    .map(|j| k + j)
                    .collect();
                let m = present.len();
                let mut tmp = vec![0u32; m];
                if ng == 2 {
                    c.diff_u32(&mut tmp)?;
                    for (i, &p) in present.iter().enumerate() {
                        sums[np + p] = tmp[i];
                    }
                }
                c.diff_u32(&mut tmp)?;
                for (i, &p) in present.iter().enumerate() {
                    sums[p] = tmp[i];
                }
                k += 16;
            }
        }
        _ => {
            let list_size = c.i16()?;
            if list_size < 0 {
                return Err(c.err(format!("list_size >= 0, found {list_size}")));
            }
            let mut list = Vec::with_capacity(list_size as usize);
            for _ in 0..list_size {
                list.push(c.u16()?);
            }
            let lg: Vec<usize> = list
                .iter()
                .filter(|&&e| e & 0x2000 == 0)
                .map(|&e| (e & 0x1FFF) as usize)
                .collect();
            let hg16: Vec<usize> = list
                .iter()
                .filter(|&&e| e & 0x4000 == 0)
                .map(|&e| (e & 0x1FFF) as usize)
                .collect();
            let hg8: Vec<usize> = list
                .iter()
                .filter(|&&e| e & 0x4000 != 0)
                .map(|&e| (e & 0x1FFF) as usize)
                .collect();
            if lg.iter().chain(&hg16).chain(&hg8).any(|&p| p >= np) {
                return Err(c.err(format!("pixel ids < {np} in the ADC sum list")));
            }
            let mut tmp = vec![0u32; lg.len()];
            if ng == 2 {
                c.diff_u32(&mut tmp)?;
                for (i, &p) in lg.iter().enumerate() {
                    sums[np + p] = tmp[i];
                }
            }
            let mut tmp = vec![0u32; hg16.len()];
            c.diff_u32(&mut tmp)?;
            for (i, &p) in hg16.iter().enumerate() {
                sums[p] = tmp[i];
            }
            for &p in &hg8 {
                sums[p] = u32::from(c.u8()?);
            }
        }
    }
    if ev.samples.is_empty() {
        ev.n_gains = ng;
        ev.n_pixels = np;
        ev.n_samples = 1;
    }
    ev.sums = sums;
    Ok(())
}

/// Parse HistoryMeta (75).
pub fn parse_history_meta(c: &mut Cursor<'_>) -> ParseResult<BTreeMap<String, String>> {
    let n = c.count()?;
    let mut m = BTreeMap::new();
    for _ in 0..n {
        let k = c.var_string()?;
        let v = c.var_string()?;
        m.insert(k, v);
    }
    Ok(m)
}

/// Streams the events of one sim_telarray file.
pub struct SimtelReader {
    path: PathBuf,
    reader: TopLevelReader,
    buf: Vec<u8>,
    header: Arc<SimtelHeader>,
    pending: Option<ObjectHeader>,
    shower: Option<Arc<McShower>>,
    mc_event: Option<McEvent>,
    pe_sum: Option<(i32, Vec<i32>)>,
    calibrations: BTreeMap<u16, Arc<TelCalibration>>,
    pedestals: BTreeMap<u16, PedestalBlock>,
    lasers: BTreeMap<u16, LaserBlock>,
    finished: bool,
    events_read: u64,
    total_bytes: u64,
}

impl std::fmt::Debug for SimtelReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimtelReader")
            .field("path", &self.path)
            .field("offset", &self.reader.offset())
            .finish()
    }
}

fn parse_err(path: &Path, h: &ObjectHeader, e: ParseError) -> ReadError {
    ReadError::corrupt(
        path,
        Position::byte(h.payload_offset + e.offset as u64),
        format!(
            "in object type {} ({}) v{} starting at byte {}: expected {}",
            h.type_,
            type_name(h.type_),
            h.version,
            h.object_offset,
            e.what
        ),
    )
}

fn frame_err(path: &Path, e: FrameError, events: u64) -> ReadError {
    match e {
        FrameError::Truncated { offset, what } => ReadError::truncated(
            path,
            Position::byte(offset).with_event(events),
            format!(
                "the file ends inside the object starting at byte {offset} after {events} complete events: {what}"
            ),
        ),
        FrameError::Corrupt { offset, what } => {
            ReadError::corrupt(path, Position::byte(offset), what)
        }
        FrameError::Io(m) => ReadError::new(
            path,
            Position::default(),
            caliper_core::ReadErrorKind::Io,
            m,
        ),
    }
}

impl SimtelReader {
    /// Open a file and read its header block (up to the first shower or event object).
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        let (stream, _kind, total_bytes) = super::open_stream(path)?;
        let mut r = SimtelReader {
            path: path.into(),
            reader: TopLevelReader::new(stream),
            buf: Vec::new(),
            header: Arc::new(SimtelHeader::default()),
            pending: None,
            shower: None,
            mc_event: None,
            pe_sum: None,
            calibrations: BTreeMap::new(),
            pedestals: BTreeMap::new(),
            lasers: BTreeMap::new(),
            finished: false,
            events_read: 0,
            total_bytes,
        };
        r.read_header()?;
        Ok(r)
    }

    /// The header block.
    pub fn header(&self) -> &Arc<SimtelHeader> {
        &self.header
    }

    /// Decompressed bytes consumed.
    pub fn offset(&self) -> u64 {
        self.reader.offset()
    }

    /// Size of the (compressed) input file.
    pub fn file_size(&self) -> u64 {
        self.total_bytes
    }

    fn read_header(&mut self) -> Result<(), ReadError> {
        let mut header = SimtelHeader::default();
        let mut have_run_header = false;
        let path = self.path.clone();
        loop {
            let h = match self.reader.next_object(&mut self.buf) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(e) => return Err(frame_err(&path, e, 0)),
            };
            let buf = std::mem::take(&mut self.buf);
            let mut c = Cursor::new(&buf, 0);
            let res: ParseResult<bool> = (|| {
                match h.type_ {
                    75 => {
                        let m = parse_history_meta(&mut c)?;
                        if h.id == -1 {
                            header.global_meta = m;
                        } else {
                            header.telescopes.entry(h.id as u16).or_default().meta = m;
                        }
                    }
                    2000 => {
                        header.run_header = parse_run_header(&h, &mut c)?;
                        have_run_header = true;
                    }
                    2001 => header.mc_run_header = Some(parse_mc_run_header(&h, &mut c)?),
                    2002 => {
                        let s = parse_camera_settings(&h, &mut c)?;
                        let t = header.telescopes.entry(h.id as u16).or_default();
                        t.tel_id = h.id as u16;
                        t.camera_settings = s;
                    }
                    2003 => {
                        let o = parse_camera_organisation(&h, &mut c)?;
                        header
                            .telescopes
                            .entry(h.id as u16)
                            .or_default()
                            .camera_organisation = o;
                    }
                    2004 => {
                        let p = parse_pixel_settings(&h, &mut c)?;
                        header
                            .telescopes
                            .entry(h.id as u16)
                            .or_default()
                            .pixel_settings = p;
                    }
                    2005 => {
                        let d = parse_disabled_pixels(&h, &mut c)?;
                        header
                            .telescopes
                            .entry(h.id as u16)
                            .or_default()
                            .disabled_pixels = d;
                    }
                    2020 | 2021 | 2010 | 2022 | 2023 | 2028 | 2026 | 1204 | 1205 | 100 => {
                        return Ok(true);
                    }
                    _ => {}
                }
                Ok(false)
            })();
            self.buf = buf;
            match res {
                Ok(true) => {
                    self.pending = Some(h);
                    break;
                }
                Ok(false) => {}
                Err(e) => return Err(parse_err(&path, &h, e)),
            }
        }
        if !have_run_header {
            return Err(ReadError::unexpected(
                &path,
                Position::byte(self.reader.offset()),
                "no RunHeader (type 2000) before the first event: not a sim_telarray file",
            ));
        }
        for (id, t) in &header.telescopes {
            if t.camera_settings.n_pixels == 0 {
                return Err(ReadError::unexpected(
                    &path,
                    Position::byte(self.reader.offset()),
                    format!("telescope {id} has no CameraSettings (type 2002) in the header block"),
                ));
            }
        }
        self.header = Arc::new(header);
        Ok(())
    }

    fn calibration_for(&mut self, tel: u16) -> Option<Arc<TelCalibration>> {
        if let Some(c) = self.calibrations.get(&tel) {
            return Some(c.clone());
        }
        let (ng, np, nps, ped) = self.pedestals.get(&tel)?;
        let (lg, lp, calib, tm) = self.lasers.get(&tel)?;
        if ng != lg || np != lp {
            return None;
        }
        // pedestal per sample in float32, as ctapipe: `cam_mon["pedestal"] / cam_mon["n_ped_slices"]`
        let div = f32::from((*nps).max(1));
        let pedestal_per_sample = ped.iter().map(|&p| p / div).collect();
        let time_shift = tm.clone().unwrap_or_else(|| vec![0.0; ng * np]);
        let c = Arc::new(TelCalibration {
            n_gains: *ng,
            n_pixels: *np,
            pedestal_per_sample,
            dc_to_pe: calib.clone(),
            time_shift,
        });
        self.calibrations.insert(tel, c.clone());
        Some(c)
    }

    fn build_event(&mut self, h: &ObjectHeader, buf: &[u8]) -> ParseResult<Option<ArrayEvent>> {
        let mut c = Cursor::new(buf, 0);
        let mut ev = ArrayEvent {
            obs_id: self.header.run_header.run,
            event_id: i64::from(h.id),
            offset: h.object_offset,
            ..Default::default()
        };
        let mut tels: Vec<TelescopeEvent> = Vec::new();
        let mut tracking: BTreeMap<u16, Tracking> = BTreeMap::new();
        let mut have_trigger = false;
        while c.remaining() > 0 {
            let (sh, mut sc) = c.subobject()?;
            match sh.type_ {
                2009 => {
                    ev.trigger = parse_trigger(&sh, &mut sc)?;
                    have_trigger = true;
                }
                t if t >= 2100 && (t % 1000) / 100 == 1 => {
                    let (tel, tr) = parse_tracking(&sh, &mut sc)?;
                    tracking.insert(tel, tr);
                }
                t if t >= 2200 && (t % 1000) / 100 == 2 => {
                    let tel = tel_from_typed(t, 2200);
                    let mut te = TelescopeEvent {
                        tel_id: tel,
                        true_image_sum: -1.0,
                        ..Default::default()
                    };
                    while sc.remaining() > 0 {
                        let (ih, mut ic) = sc.subobject()?;
                        match ih.type_ {
                            2013 => parse_adc_samples(&ih, &mut ic, &mut te)?,
                            2012 => parse_adc_sums(&ih, &mut ic, &mut te)?,
                            _ => {}
                        }
                    }
                    tels.push(te);
                }
                _ => {}
            }
        }
        if !have_trigger {
            return Err(c.err("a TriggerInformation (2009) sub-object in the ArrayEvent"));
        }
        if ev.trigger.id != 0 {
            ev.event_id = i64::from(ev.trigger.id);
        }
        ev.shower = self.shower.clone();
        ev.mc_event = self.mc_event;
        let triggered: Vec<u16> = ev
            .trigger
            .triggered_telescopes
            .iter()
            .map(|&t| t as u16)
            .collect();
        let pe_sum = self.pe_sum.take();
        for mut te in tels {
            // ctapipe skips telescopes that have data but are not in the trigger list (#2660)
            if !triggered.contains(&te.tel_id) {
                continue;
            }
            if te.samples.is_empty() && te.sums.is_empty() {
                continue;
            }
            te.tracking = tracking.get(&te.tel_id).copied();
            te.calibration = self.calibration_for(te.tel_id);
            if let Some((_, n_pe)) = &pe_sum
                && let Some(i) = self
                    .header
                    .run_header
                    .tel_id
                    .iter()
                    .position(|&t| t as u16 == te.tel_id)
                && let Some(&n) = n_pe.get(i)
            {
                te.true_image_sum = f64::from(n);
            }
            ev.telescopes.push(te);
        }
        Ok(Some(ev))
    }

    /// The next array event; `None` at the end of the file.
    pub fn next_event(&mut self) -> Option<Result<ArrayEvent, ReadError>> {
        if self.finished {
            return None;
        }
        let path = self.path.clone();
        loop {
            let h = if let Some(h) = self.pending.take() {
                h
            } else {
                match self.reader.next_object(&mut self.buf) {
                    Ok(Some(h)) => h,
                    Ok(None) => {
                        self.finished = true;
                        return None;
                    }
                    Err(e) => {
                        self.finished = true;
                        return Some(Err(frame_err(&path, e, self.events_read)));
                    }
                }
            };
            let buf = std::mem::take(&mut self.buf);
            let mut c = Cursor::new(&buf, 0);
            let res: ParseResult<Option<ArrayEvent>> = match h.type_ {
                2020 => parse_mc_shower(&h, &mut c).map(|s| {
                    self.shower = Some(Arc::new(s));
                    None
                }),
                2021 => parse_mc_event(&h, &mut c).map(|e| {
                    self.mc_event = Some(e);
                    self.pe_sum = None;
                    None
                }),
                2022 => parse_camera_monitoring(&h, &mut c).map(|(tel, block)| {
                    if let Some(block) = block {
                        self.pedestals.insert(tel, block);
                        self.calibrations.remove(&tel);
                    }
                    None
                }),
                2023 => parse_laser_calibration(&h, &mut c).map(|(tel, block)| {
                    self.lasers.insert(tel, block);
                    self.calibrations.remove(&tel);
                    None
                }),
                2026 => (|| {
                    check_version(&c, &h, 2)?;
                    c.i32()?;
                    let n_raw = c.i32()?;
                    let n = n_from_i32(&c, n_raw, "n_tel")?;
                    let pe = c.i32_vec(n)?;
                    self.pe_sum = Some((h.id, pe));
                    Ok(None)
                })(),
                2010 => self.build_event(&h, &buf),
                _ => Ok(None), // calibration events (2028), histograms, photons, unknown types: skipped
            };
            self.buf = buf;
            match res {
                Ok(Some(ev)) => {
                    self.events_read += 1;
                    return Some(Ok(ev));
                }
                Ok(None) => {}
                Err(e) => {
                    self.finished = true;
                    return Some(Err(parse_err(&path, &h, e)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(type_: u32, version: u32, id: i32, len: usize) -> ObjectHeader {
        ObjectHeader {
            type_,
            version,
            id,
            length: len as u64,
            only_subobjects: false,
            payload_offset: 0,
            object_offset: 0,
        }
    }

    fn sc(out: &mut Vec<u8>, v: i64) {
        // zig-zag, then 1- or 2-byte unsigned varint (enough for these tests)
        let u = if v >= 0 {
            (v as u64) << 1
        } else {
            (((-v - 1) as u64) << 1) | 1
        };
        if u < 0x80 {
            out.push(u as u8);
        } else {
            out.push(0x80 | (u >> 8) as u8);
            out.push(u as u8);
        }
    }

    /// ADCSamples with zero suppression: a pixel list of one single pixel (−a−1) and one range;
    /// unlisted pixels are zero.
    #[test]
    fn adc_samples_pixel_list_mode() {
        let mut p = Vec::new();
        p.extend_from_slice(&4i32.to_le_bytes());
        p.extend_from_slice(&1i16.to_le_bytes());
        p.extend_from_slice(&2i16.to_le_bytes());
        sc(&mut p, 2); // list size
        sc(&mut p, -1); // single pixel 0
        sc(&mut p, 2); // range 2..=3
        sc(&mut p, 3);
        for (a, b) in [(10, 1), (5, 0), (7, -2)] {
            sc(&mut p, a);
            sc(&mut p, b);
        }
        let h = header(2013, 3, 1 | (5 << 12), p.len());
        let mut te = TelescopeEvent::default();
        parse_adc_samples(&h, &mut Cursor::new(&p, 0), &mut te).unwrap();
        assert_eq!(te.samples, vec![10, 11, 0, 0, 5, 5, 7, 5]);
    }

    /// ADCSums, zero_sup_mode 1: groups of 16 pixels with a presence bit mask; with two gains
    /// the low-gain array comes first.
    #[test]
    fn adc_sums_bitmask_mode() {
        let mut p = Vec::new();
        p.extend_from_slice(&3i32.to_le_bytes());
        p.extend_from_slice(&2i16.to_le_bytes());
        p.extend_from_slice(&0b101u16.to_le_bytes()); // pixels 0 and 2
        for v in [50, 10] {
            sc(&mut p, v); // low gain: 50, 60
        }
        for v in [500, 100] {
            sc(&mut p, v); // high gain: 500, 600
        }
        let h = header(2012, 3, 1, p.len());
        let mut te = TelescopeEvent::default();
        parse_adc_sums(&h, &mut Cursor::new(&p, 0), &mut te).unwrap();
        assert_eq!(te.sums, vec![500, 0, 600, 50, 0, 60]);
        assert_eq!((te.n_gains, te.n_pixels, te.n_samples), (2, 3, 1));
    }

    /// ADCSums, zero_sup_mode 2: an explicit list with "no low gain" and "8-bit high gain" flags.
    #[test]
    fn adc_sums_list_mode() {
        let mut p = Vec::new();
        p.extend_from_slice(&3i32.to_le_bytes());
        p.extend_from_slice(&2i16.to_le_bytes());
        p.extend_from_slice(&2i16.to_le_bytes());
        p.extend_from_slice(&0u16.to_le_bytes()); // pixel 0: both gains, 16-bit
        p.extend_from_slice(&(2u16 | 0x2000 | 0x4000).to_le_bytes()); // pixel 2: no low gain, 8-bit high
        sc(&mut p, 40); // low gain of pixel 0
        sc(&mut p, 400); // 16-bit high gain of pixel 0
        p.push(77); // 8-bit high gain of pixel 2
        let h = header(2012, 3, 2, p.len());
        let mut te = TelescopeEvent::default();
        parse_adc_sums(&h, &mut Cursor::new(&p, 0), &mut te).unwrap();
        assert_eq!(te.sums, vec![400, 0, 77, 40, 0, 0]);
    }

    /// CameraSettings v1 (prod2-era): no pixel shape, area and size per pixel.
    #[test]
    fn camera_settings_old_version() {
        let mut p = Vec::new();
        p.extend_from_slice(&2i32.to_le_bytes());
        p.extend_from_slice(&16.0f32.to_le_bytes());
        for v in [0.0f32, 0.05, 0.0, 0.0, 0.002, 0.002, 0.05, 0.05] {
            p.extend_from_slice(&v.to_le_bytes());
        }
        let h = header(2002, 1, 3, p.len());
        let s = parse_camera_settings(&h, &mut Cursor::new(&p, 0)).unwrap();
        assert_eq!(s.pixel_shape, vec![-1, -1]);
        assert_eq!(s.pixel_area, vec![0.002, 0.002]);
        assert_eq!(s.effective_focal_length, None);
        assert_eq!(s.cam_rot, 0.0);
    }
}
