//! Outputs in ctapipe's data model (`ctapipe/io/datawriter.py` table paths and column names),
//! `summary.json` keys and the PNG plots.

use std::collections::BTreeMap;

use caliper_core::h5::{AttrValue, ColumnData, Table};
use caliper_core::plot::{Color, Colormap, Figure, regular_polygon};
use caliper_core::{RunContext, RunError};

use crate::geometry::{CameraGeometry, PixelShape};
use crate::process::{DisplayImage, EventResult};
use crate::subarray::Subarray;

/// Data model version written as an attribute (ctapipe 0.32 writes v7.x).
pub const DATA_MODEL_VERSION: &str = "v7.2.0";

/// A float column of the parameter table: name, getter, unit.
type Column = (
    &'static str,
    Box<dyn Fn(&crate::process::TelResult) -> f64>,
    &'static str,
);

fn h5err(e: caliper_core::h5::H5Error) -> RunError {
    RunError::H5(e)
}

/// Angular separation \[rad\] of two (alt, az) directions.
pub fn angular_separation(alt1: f64, az1: f64, alt2: f64, az2: f64) -> f64 {
    // Vincenty formula (as astropy's angular_separation)
    let dl = az2 - az1;
    let (s1, c1) = alt1.sin_cos();
    let (s2, c2) = alt2.sin_cos();
    let num1 = c2 * dl.sin();
    let num2 = c1 * s2 - s1 * c2 * dl.cos();
    let den = s1 * s2 + c1 * c2 * dl.cos();
    num1.hypot(num2).atan2(den)
}

/// Write the subarray description and camera geometries.
pub fn write_instrument(ctx: &RunContext, sub: &Subarray) -> Result<(), RunError> {
    let mut t = Table::new();
    let ids: Vec<u16> = sub.tels.keys().copied().collect();
    t.push("tel_id", ColumnData::U16(ids));
    t.push_f64("pos_x", sub.tels.values().map(|s| s.position[0]).collect());
    t.push_f64("pos_y", sub.tels.values().map(|s| s.position[1]).collect());
    t.push_f64("pos_z", sub.tels.values().map(|s| s.position[2]).collect());
    t.push_f64(
        "focal_length",
        sub.tels.values().map(|s| s.geometry.focal_length).collect(),
    );
    t.push_i32(
        "n_pixels",
        sub.tels
            .values()
            .map(|s| s.geometry.n_pixels() as i32)
            .collect(),
    );
    // ctapipe's layout columns (SubarrayDescription.to_table): name, type, camera_name,
    // optics_name, camera_index, optics_index and tel_description ("<type>_<optics>_<camera>").
    let parts: Vec<[String; 3]> = sub
        .tels
        .values()
        .map(|s| {
            let mut it = s.tel_type.splitn(3, '_').map(str::to_string);
            let size = it.next().unwrap_or_default();
            let optics = it.next().unwrap_or_default();
            let camera = it.next().unwrap_or_default();
            [size, optics, camera]
        })
        .collect();
    let index_of = |k: usize| -> Vec<i32> {
        let mut unique: Vec<&str> = Vec::new();
        parts
            .iter()
            .map(|p| {
                let v = p[k].as_str();
                let i = unique.iter().position(|u| *u == v).unwrap_or_else(|| {
                    unique.push(v);
                    unique.len() - 1
                });
                i as i32
            })
            .collect()
    };
    t.push_strings("name", parts.iter().map(|p| p[1].clone()).collect());
    t.push_strings("type", parts.iter().map(|p| p[0].clone()).collect());
    t.push_strings("camera_name", parts.iter().map(|p| p[2].clone()).collect());
    t.push_strings("optics_name", parts.iter().map(|p| p[1].clone()).collect());
    t.push_i32("camera_index", index_of(2));
    t.push_i32("optics_index", index_of(1));
    t.push_strings(
        "tel_description",
        sub.tels.values().map(|s| s.tel_type.clone()).collect(),
    );
    let mut types: Vec<String> = sub.tels.values().map(|s| s.tel_type.clone()).collect();
    types.sort();
    types.dedup();
    for c in ["pos_x", "pos_y", "pos_z", "focal_length"] {
        t.set_unit(c, "m");
    }
    let mut h5 = ctx.h5();
    h5.write_table("/configuration/instrument/subarray/layout", &t)
        .map_err(h5err)?;
    h5.set_attr(
        "/configuration/instrument/subarray/layout",
        "tel_types",
        AttrValue::String(types.join(",")),
    )
    .map_err(h5err)?;
    h5.set_attr(
        "/configuration/instrument/subarray/layout",
        "CTA PRODUCT DATA MODEL VERSION",
        AttrValue::String(DATA_MODEL_VERSION.into()),
    )
    .map_err(h5err)?;
    let mut done = std::collections::BTreeSet::new();
    for s in sub.tels.values() {
        let g = &s.geometry;
        if !done.insert(g.name.clone()) {
            continue;
        }
        let mut gt = Table::new();
        gt.push_i32("pix_id", (0..g.n_pixels() as i32).collect());
        gt.push_f64("pix_x", g.pix_x.clone()).set_unit("pix_x", "m");
        gt.push_f64("pix_y", g.pix_y.clone()).set_unit("pix_y", "m");
        gt.push_f64("pix_area", g.pix_area.clone())
            .set_unit("pix_area", "m2");
        let path = format!(
            "/configuration/instrument/telescope/camera/geometry_{}",
            g.name
        );
        h5.write_table(&path, &gt).map_err(h5err)?;
        h5.set_attr(
            &path,
            "pix_type",
            AttrValue::String(g.pix_type.name().into()),
        )
        .map_err(h5err)?;
        h5.set_attr(&path, "pix_rotation", AttrValue::F64(g.pix_rotation_deg))
            .map_err(h5err)?;
    }
    Ok(())
}

/// Write DL1 parameters, DL2 geometry, simulation truth; return summary statistics.
pub fn write_events(
    ctx: &RunContext,
    sub: &Subarray,
    events: &[EventResult],
) -> Result<(), RunError> {
    let mut per_tel: BTreeMap<u16, Vec<(&EventResult, &crate::process::TelResult)>> =
        BTreeMap::new();
    for ev in events {
        for t in &ev.tels {
            per_tel.entry(t.tel_id).or_default().push((ev, t));
        }
    }
    let mut h5 = ctx.h5();
    for (tel, rows) in &per_tel {
        let mut t = Table::new();
        let f = |g: &dyn Fn(&crate::process::TelResult) -> f64| -> Vec<f64> {
            rows.iter().map(|(_, r)| g(r)).collect()
        };
        let i = |g: &dyn Fn(&crate::process::TelResult) -> i64| -> Vec<i64> {
            rows.iter().map(|(_, r)| g(r)).collect()
        };
        t.push_i32("obs_id", rows.iter().map(|(e, _)| e.obs_id).collect());
        t.push_i64("event_id", rows.iter().map(|(e, _)| e.event_id).collect());
        t.push_i32("tel_id", vec![i32::from(*tel); rows.len()]);
        let cols: Vec<Column> = vec![
            (
                "hillas_intensity",
                Box::new(|r| r.params.hillas.intensity),
                "",
            ),
            ("hillas_fov_lon", Box::new(|r| r.params.hillas.x), "deg"),
            ("hillas_fov_lat", Box::new(|r| r.params.hillas.y), "deg"),
            ("hillas_r", Box::new(|r| r.params.hillas.r), "deg"),
            (
                "hillas_phi",
                Box::new(|r| r.params.hillas.phi.to_degrees()),
                "deg",
            ),
            ("hillas_length", Box::new(|r| r.params.hillas.length), "deg"),
            (
                "hillas_length_uncertainty",
                Box::new(|r| r.params.hillas.length_uncertainty),
                "deg",
            ),
            ("hillas_width", Box::new(|r| r.params.hillas.width), "deg"),
            (
                "hillas_width_uncertainty",
                Box::new(|r| r.params.hillas.width_uncertainty),
                "deg",
            ),
            (
                "hillas_psi",
                Box::new(|r| r.params.hillas.psi.to_degrees()),
                "deg",
            ),
            (
                "hillas_psi_uncertainty",
                Box::new(|r| r.params.hillas.psi_uncertainty.to_degrees()),
                "deg",
            ),
            (
                "hillas_transverse_cog_uncertainty",
                Box::new(|r| r.params.hillas.transverse_cog_uncertainty),
                "deg",
            ),
            (
                "hillas_skewness",
                Box::new(|r| r.params.hillas.skewness),
                "",
            ),
            (
                "hillas_kurtosis",
                Box::new(|r| r.params.hillas.kurtosis),
                "",
            ),
            (
                "timing_intercept",
                Box::new(|r| r.params.timing.intercept),
                "ns",
            ),
            (
                "timing_deviation",
                Box::new(|r| r.params.timing.deviation),
                "ns",
            ),
            (
                "timing_slope",
                Box::new(|r| r.params.timing.slope),
                "ns/deg",
            ),
            (
                "leakage_pixels_width_1",
                Box::new(|r| r.params.leakage.pixels_width_1),
                "",
            ),
            (
                "leakage_pixels_width_2",
                Box::new(|r| r.params.leakage.pixels_width_2),
                "",
            ),
            (
                "leakage_intensity_width_1",
                Box::new(|r| r.params.leakage.intensity_width_1),
                "",
            ),
            (
                "leakage_intensity_width_2",
                Box::new(|r| r.params.leakage.intensity_width_2),
                "",
            ),
            (
                "concentration_cog",
                Box::new(|r| r.params.concentration.cog),
                "",
            ),
            (
                "concentration_core",
                Box::new(|r| r.params.concentration.core),
                "",
            ),
            (
                "concentration_pixel",
                Box::new(|r| r.params.concentration.pixel),
                "",
            ),
            (
                "intensity_max",
                Box::new(|r| r.params.intensity_statistics.max),
                "",
            ),
            (
                "intensity_min",
                Box::new(|r| r.params.intensity_statistics.min),
                "",
            ),
            (
                "intensity_mean",
                Box::new(|r| r.params.intensity_statistics.mean),
                "",
            ),
            (
                "intensity_std",
                Box::new(|r| r.params.intensity_statistics.std),
                "",
            ),
            (
                "intensity_skewness",
                Box::new(|r| r.params.intensity_statistics.skewness),
                "",
            ),
            (
                "intensity_kurtosis",
                Box::new(|r| r.params.intensity_statistics.kurtosis),
                "",
            ),
            (
                "peak_time_max",
                Box::new(|r| r.params.peak_time_statistics.max),
                "ns",
            ),
            (
                "peak_time_min",
                Box::new(|r| r.params.peak_time_statistics.min),
                "ns",
            ),
            (
                "peak_time_mean",
                Box::new(|r| r.params.peak_time_statistics.mean),
                "ns",
            ),
            (
                "peak_time_std",
                Box::new(|r| r.params.peak_time_statistics.std),
                "ns",
            ),
            (
                "peak_time_skewness",
                Box::new(|r| r.params.peak_time_statistics.skewness),
                "",
            ),
            (
                "peak_time_kurtosis",
                Box::new(|r| r.params.peak_time_statistics.kurtosis),
                "",
            ),
            ("core_psi", Box::new(|r| r.core_psi.to_degrees()), "deg"),
        ];
        for (name, g, unit) in &cols {
            t.push_f64(name, f(g.as_ref()));
            if !unit.is_empty() {
                t.set_unit(name, unit);
            }
        }
        t.push_i64("morphology_n_pixels", i(&|r| r.params.morphology.n_pixels));
        t.push_i64(
            "morphology_n_islands",
            i(&|r| r.params.morphology.n_islands),
        );
        t.push_i64(
            "morphology_n_small_islands",
            i(&|r| r.params.morphology.n_small_islands),
        );
        t.push_i64(
            "morphology_n_medium_islands",
            i(&|r| r.params.morphology.n_medium_islands),
        );
        t.push_i64(
            "morphology_n_large_islands",
            i(&|r| r.params.morphology.n_large_islands),
        );
        t.push_bool(
            "is_valid",
            rows.iter().map(|(_, r)| r.params.is_valid).collect(),
        );
        t.push_bool(
            "used_in_stereo",
            rows.iter().map(|(_, r)| r.used_in_stereo).collect(),
        );
        let path = format!("/dl1/event/telescope/parameters/tel_{tel:03}");
        h5.write_table(&path, &t).map_err(h5err)?;
        let mut tt = Table::new();
        tt.push_i32("obs_id", rows.iter().map(|(e, _)| e.obs_id).collect());
        tt.push_i64("event_id", rows.iter().map(|(e, _)| e.event_id).collect());
        tt.push_i32("tel_id", vec![i32::from(*tel); rows.len()]);
        tt.push_f64("true_image_sum", f(&|r| r.true_image_sum));
        tt.push_f64("true_impact_distance", f(&|r| r.true_impact))
            .set_unit("true_impact_distance", "m");
        h5.write_table(
            &format!("/simulation/event/telescope/impact/tel_{tel:03}"),
            &tt,
        )
        .map_err(h5err)?;
        if rows.iter().all(|(_, r)| r.image.is_some()) && !rows.is_empty() {
            let npix = sub
                .tels
                .get(tel)
                .map(|s| s.geometry.n_pixels())
                .unwrap_or(0);
            let mut img = Vec::with_capacity(rows.len() * npix);
            let mut pt = Vec::with_capacity(rows.len() * npix);
            let mut mk: Vec<u8> = Vec::with_capacity(rows.len() * npix);
            for (_, r) in rows {
                if let Some((a, b, m)) = &r.image {
                    img.extend_from_slice(a);
                    pt.extend_from_slice(b);
                    mk.extend(m.iter().map(|&x| u8::from(x)));
                }
            }
            let base = format!("/dl1/event/telescope/images/tel_{tel:03}");
            h5.write_array(&format!("{base}/image"), &[rows.len(), npix], &img)
                .map_err(h5err)?;
            h5.write_array(&format!("{base}/peak_time"), &[rows.len(), npix], &pt)
                .map_err(h5err)?;
            h5.write_array(&format!("{base}/image_mask"), &[rows.len(), npix], &mk)
                .map_err(h5err)?;
            h5.write_array(
                &format!("{base}/event_id"),
                &[rows.len()],
                &rows.iter().map(|(e, _)| e.event_id).collect::<Vec<i64>>(),
            )
            .map_err(h5err)?;
        }
    }
    // DL2 subarray geometry
    let mut t = Table::new();
    let p = "HillasReconstructor";
    let s = |g: &dyn Fn(&crate::stereo::StereoResult) -> f64| -> Vec<f64> {
        events
            .iter()
            .map(|e| e.stereo.as_ref().map(g).unwrap_or(f64::NAN))
            .collect()
    };
    t.push_i32("obs_id", events.iter().map(|e| e.obs_id).collect());
    t.push_i64("event_id", events.iter().map(|e| e.event_id).collect());
    t.push_f64(&format!("{p}_alt"), s(&|r| r.alt.to_degrees()))
        .set_unit(&format!("{p}_alt"), "deg");
    t.push_f64(&format!("{p}_az"), s(&|r| r.az.to_degrees()))
        .set_unit(&format!("{p}_az"), "deg");
    t.push_f64(
        &format!("{p}_alt_uncert"),
        s(&|r| r.direction_uncertainty.to_degrees()),
    )
    .set_unit(&format!("{p}_alt_uncert"), "deg");
    t.push_f64(
        &format!("{p}_az_uncert"),
        s(&|r| r.direction_uncertainty.to_degrees()),
    )
    .set_unit(&format!("{p}_az_uncert"), "deg");
    t.push_f64(&format!("{p}_core_x"), s(&|r| r.core_x))
        .set_unit(&format!("{p}_core_x"), "m");
    t.push_f64(&format!("{p}_core_y"), s(&|r| r.core_y))
        .set_unit(&format!("{p}_core_y"), "m");
    t.push_f64(&format!("{p}_core_tilted_x"), s(&|r| r.core_tilted.0))
        .set_unit(&format!("{p}_core_tilted_x"), "m");
    t.push_f64(&format!("{p}_core_tilted_y"), s(&|r| r.core_tilted.1))
        .set_unit(&format!("{p}_core_tilted_y"), "m");
    t.push_f64(&format!("{p}_h_max"), s(&|r| r.h_max))
        .set_unit(&format!("{p}_h_max"), "m");
    t.push_f64(
        &format!("{p}_average_intensity"),
        s(&|r| r.average_intensity),
    );
    t.push_i32(
        &format!("{p}_n_telescopes"),
        events
            .iter()
            .map(|e| {
                e.stereo
                    .as_ref()
                    .map(|r| r.telescopes.len() as i32)
                    .unwrap_or(0)
            })
            .collect(),
    );
    t.push_bool(
        &format!("{p}_is_valid"),
        events.iter().map(|e| e.stereo.is_some()).collect(),
    );
    // ctapipe writes the telescopes used as a boolean mask over the subarray's telescopes
    // (in tel_id order, as the layout table).
    let tel_ids: Vec<u16> = sub.tels.keys().copied().collect();
    let mut used = Vec::with_capacity(events.len() * tel_ids.len());
    for e in events {
        for id in &tel_ids {
            used.push(e.stereo.as_ref().is_some_and(|r| r.telescopes.contains(id)));
        }
    }
    t.push_array(&format!("{p}_telescopes"), tel_ids.len().max(1), {
        if tel_ids.is_empty() {
            used.resize(events.len(), false);
        }
        ColumnData::Bool(used)
    });
    h5.write_table("/dl2/event/subarray/geometry/HillasReconstructor", &t)
        .map_err(h5err)?;
    // simulation truth
    let mut t = Table::new();
    let sh = |g: &dyn Fn(&crate::io::simtel::McShower) -> f64| -> Vec<f64> {
        events
            .iter()
            .map(|e| e.shower.as_deref().map(g).unwrap_or(f64::NAN))
            .collect()
    };
    t.push_i32("obs_id", events.iter().map(|e| e.obs_id).collect());
    t.push_i64("event_id", events.iter().map(|e| e.event_id).collect());
    t.push_f64("true_energy", sh(&|s| f64::from(s.energy)))
        .set_unit("true_energy", "TeV");
    t.push_f64("true_alt", sh(&|s| f64::from(s.altitude).to_degrees()))
        .set_unit("true_alt", "deg");
    t.push_f64("true_az", sh(&|s| f64::from(s.azimuth).to_degrees()))
        .set_unit("true_az", "deg");
    t.push_f64(
        "true_core_x",
        events.iter().map(|e| e.true_core.0).collect(),
    )
    .set_unit("true_core_x", "m");
    t.push_f64(
        "true_core_y",
        events.iter().map(|e| e.true_core.1).collect(),
    )
    .set_unit("true_core_y", "m");
    t.push_f64("true_h_first_int", sh(&|s| f64::from(s.h_first_int)))
        .set_unit("true_h_first_int", "m");
    t.push_f64("true_x_max", sh(&|s| f64::from(s.xmax)))
        .set_unit("true_x_max", "g/cm2");
    t.push_i32(
        "true_shower_primary_id",
        events
            .iter()
            .map(|e| e.shower.as_ref().map(|s| s.primary_id).unwrap_or(-1))
            .collect(),
    );
    h5.write_table("/simulation/event/subarray/shower", &t)
        .map_err(h5err)?;
    let mut t = Table::new();
    t.push_i32("obs_id", events.iter().map(|e| e.obs_id).collect());
    t.push_i64("event_id", events.iter().map(|e| e.event_id).collect());
    t.push_i32(
        "n_trigger_tels",
        events.iter().map(|e| e.n_triggered as i32).collect(),
    );
    // ctapipe's tels_with_trigger: a boolean mask over the layout's telescopes (tel_id order).
    let mut mask = Vec::with_capacity(events.len() * tel_ids.len());
    for e in events {
        mask.extend(tel_ids.iter().map(|id| e.triggered.contains(id)));
    }
    if tel_ids.is_empty() {
        mask.resize(events.len(), false);
    }
    t.push_array(
        "tels_with_trigger",
        tel_ids.len().max(1),
        ColumnData::Bool(mask),
    );
    h5.write_table("/dl1/event/subarray/trigger", &t)
        .map_err(h5err)?;
    Ok(())
}

/// Angular errors \[deg\] of valid stereo events against the MC direction.
pub fn angular_errors(events: &[EventResult]) -> Vec<f64> {
    events
        .iter()
        .filter_map(|e| {
            let s = e.stereo.as_ref()?;
            let sh = e.shower.as_ref()?;
            Some(
                angular_separation(s.alt, s.az, f64::from(sh.altitude), f64::from(sh.azimuth))
                    .to_degrees(),
            )
        })
        .collect()
}

fn pixel_polygon(g: &CameraGeometry, x: f64, y: f64, area: f64) -> Vec<[f64; 2]> {
    // Pixel shapes from the area (ctapipe CameraDisplay): hexagon circumradius = width/√3,
    // square half-diagonal = √(A/2), circles as 24-gons. The orientation is taken from the grid
    // (direction to a pixel's nearest neighbour), so that the tiling closes even where the file
    // does not store the pixel shape and ctapipe's assumed rotation does not fit.
    let grid = (0..g.n_pixels())
        .find_map(|p| {
            g.neighbors(p).first().map(|&j| {
                (g.pix_y[j as usize] - g.pix_y[p]).atan2(g.pix_x[j as usize] - g.pix_x[p])
            })
        })
        .unwrap_or(0.0);
    match g.pix_type {
        PixelShape::Hexagon => regular_polygon(
            x,
            y,
            g.pixel_width(area) / 3f64.sqrt(),
            6,
            grid + std::f64::consts::FRAC_PI_6,
        ),
        PixelShape::Square => regular_polygon(
            x,
            y,
            (area / 2.0).sqrt(),
            4,
            grid + std::f64::consts::FRAC_PI_4,
        ),
        PixelShape::Circle => regular_polygon(x, y, g.pixel_width(area) / 2.0, 24, 0.0),
    }
}

/// Camera display of the brightest image: pixels with their shapes, cleaned pixels outlined,
/// Hillas ellipse (camera frame, m).
pub fn plot_camera(ctx: &RunContext, sub: &Subarray, d: &DisplayImage) -> Result<(), RunError> {
    let Some(setup) = sub.tels.get(&d.tel_id) else {
        return Ok(());
    };
    let g = &setup.geometry;
    let mut fig = Figure::new(760, 700);
    fig.title(&format!(
        "event {} tel {} ({})",
        d.event_id, d.tel_id, setup.tel_type
    ));
    let p = fig.panel(0, 0);
    p.title("DL1 image")
        .xlabel("x [m]")
        .ylabel("y [m]")
        .equal_aspect(true);
    let polys: Vec<Vec<[f64; 2]>> = (0..g.n_pixels())
        .map(|i| pixel_polygon(g, g.pix_x[i], g.pix_y[i], g.pix_area[i]))
        .collect();
    p.polygons(polys, &d.image)
        .cmap(Colormap::Viridis)
        .colorbar("charge [p.e.]");
    for i in (0..g.n_pixels()).filter(|&i| d.mask[i]) {
        p.polygon(&pixel_polygon(g, g.pix_x[i], g.pix_y[i], g.pix_area[i]))
            .outline(Color::RED)
            .width(1);
    }
    let h = &d.params.cam_hillas;
    if h.length.is_finite() && h.width.is_finite() {
        p.ellipse(h.x, h.y, h.length, h.width, h.psi)
            .outline(Color::RED)
            .width(2)
            .label("Hillas ellipse");
    }
    let path = ctx.output_path("camera_display.png");
    fig.save_png(&path)
        .map_err(|e| RunError::failed(e.to_string()))
}

/// θ² histogram of the stereo events.
pub fn plot_theta2(ctx: &RunContext, errors_deg: &[f64]) -> Result<(), RunError> {
    let nb = 25;
    let hi = 0.3;
    let mut counts = vec![0.0; nb];
    for &e in errors_deg {
        let t2 = e * e;
        if t2 < hi {
            counts[(t2 / hi * nb as f64) as usize] += 1.0;
        }
    }
    let edges: Vec<f64> = (0..=nb).map(|k| hi * k as f64 / nb as f64).collect();
    let mut fig = Figure::new(700, 450);
    let p = fig.panel(0, 0);
    p.title("HillasReconstructor vs MC")
        .xlabel("theta^2 [deg^2]")
        .ylabel("events");
    p.hist(&edges, &counts).label("stereo events");
    fig.save_png(ctx.output_path("theta2.png"))
        .map_err(|e| RunError::failed(e.to_string()))
}

/// Array display of one stereo event: telescopes, lines along each used telescope's corrected
/// psi through its position, true and reconstructed cores.
pub fn plot_array(ctx: &RunContext, sub: &Subarray, ev: &EventResult) -> Result<(), RunError> {
    let Some(s) = &ev.stereo else { return Ok(()) };
    let mut fig = Figure::new(760, 700);
    fig.title(&format!(
        "event {}: {} telescopes",
        ev.event_id,
        s.telescopes.len()
    ));
    let p = fig.panel(0, 0);
    p.title("array (ground frame)")
        .xlabel("x [m]")
        .ylabel("y [m]")
        .equal_aspect(true);
    let xs: Vec<f64> = sub.tels.values().map(|t| t.position[0]).collect();
    let ys: Vec<f64> = sub.tels.values().map(|t| t.position[1]).collect();
    p.scatter(&xs, &ys).color(Color::GREY).label("telescopes");
    for (k, tid) in s.telescopes.iter().enumerate() {
        if let Some(t) = sub.tels.get(tid) {
            let psi = s.core_psi[k];
            let l = 500.0;
            p.segment(
                t.position[0] - l * psi.cos(),
                t.position[1] - l * psi.sin(),
                t.position[0] + l * psi.cos(),
                t.position[1] + l * psi.sin(),
            )
            .outline(Color::BLUE);
        }
    }
    p.scatter(&[ev.true_core.0], &[ev.true_core.1])
        .color(Color::BLACK)
        .marker_size(6)
        .label("true impact");
    p.scatter(&[s.core_x], &[s.core_y])
        .color(Color::RED)
        .marker_size(6)
        .label("reconstructed impact");
    fig.save_png(ctx.output_path("array_display.png"))
        .map_err(|e| RunError::failed(e.to_string()))
}
