//! PNG plots: residuals per plane, chi2/ndof, alignment convergence per plane (like the
//! notebook's), hit maps, and an event display of a few tracks through the planes.

use caliper_core::RunContext;
use caliper_core::error::RunError;
use caliper_core::hist::Hist1D;
use caliper_core::plot::{Colormap, Figure, LegendPos, Limits, Marker, Resample};

use crate::align::AlignStep;
use crate::mask::Occupancy;
use crate::track::Track;

fn save(fig: &Figure, ctx: &RunContext, name: &str) -> Result<(), RunError> {
    fig.save_png(ctx.output_path(name))
        .map_err(|e| RunError::failed(e.to_string()))
}

fn grid_dims(n: usize) -> (usize, usize) {
    let cols = n.clamp(1, 4);
    (n.div_ceil(cols), cols)
}

/// Writes every plot of a run.
#[allow(clippy::too_many_arguments)]
pub fn write_all(
    ctx: &RunContext,
    names: &[String],
    occ: &Occupancy,
    hists: &[[Hist1D; 4]],
    after: Option<&[[Hist1D; 4]]>,
    chi2: &Hist1D,
    history: &[AlignStep],
    tracks: &[(Track, Vec<f64>)],
    display_tracks: usize,
) -> Result<(), RunError> {
    let np = names.len();
    let (rows, cols) = grid_dims(np);
    // Residuals.
    let source = after.unwrap_or(hists);
    let mut fig = Figure::grid(360 * cols as u32, 260 * rows as u32, rows, cols);
    fig.title(if after.is_some() {
        "Unbiased residuals after alignment"
    } else {
        "Unbiased residuals"
    });
    for (p, h) in source.iter().enumerate() {
        let panel = fig.panel(p / cols, p % cols);
        let edges: Vec<f64> = h[2].edges().iter().map(|e| e * 1e3).collect();
        panel
            .title(&names[p])
            .xlabel("residual [um]")
            .ylabel("entries");
        panel.hist(&edges, h[2].counts()).label("x");
        panel.hist(&edges, h[3].counts()).label("y");
        panel.legend(LegendPos::UpperRight);
    }
    save(&fig, ctx, "residuals.png")?;
    // chi2/ndof.
    let mut fig = Figure::new(600, 400);
    let p = fig.panel(0, 0);
    p.title("Track chi2/ndof")
        .xlabel("chi2/ndof")
        .ylabel("tracks");
    p.hist(&chi2.edges(), chi2.counts());
    save(&fig, ctx, "chi2ndof.png")?;
    // Alignment convergence.
    if !history.is_empty() {
        let mut fig = Figure::grid(900, 700, 2, 1);
        fig.title("Alignment convergence");
        for (row, (k, label)) in [(0usize, "x position [um]"), (1, "y position [um]")]
            .into_iter()
            .enumerate()
        {
            let panel = fig.panel(row, 0);
            panel.xlabel("iteration").ylabel(label);
            for (pl, name) in names.iter().enumerate() {
                let pts: Vec<&AlignStep> = history.iter().filter(|h| h.plane == pl).collect();
                let x: Vec<f64> = pts.iter().map(|h| h.iteration as f64).collect();
                let y: Vec<f64> = pts.iter().map(|h| h.position[k] * 1e3).collect();
                let e: Vec<f64> = pts.iter().map(|h| h.error[k] * 1e3).collect();
                panel
                    .errorbar(&x, &y, &e)
                    .label(name)
                    .marker(Marker::Circle);
            }
            panel.legend(LegendPos::UpperRight);
        }
        save(&fig, ctx, "alignment_convergence.png")?;
    }
    // Hit maps.
    if !occ.pixels.is_empty() {
        let mut fig = Figure::grid(420 * cols as u32, 260 * rows as u32, rows, cols);
        fig.title("Hit maps");
        for (p, name) in names.iter().enumerate().take(occ.pixels.len()) {
            let counts = occ.dense(p);
            let (ncols, nrows) = (usize::from(occ.dims[p].0), usize::from(occ.dims[p].1));
            let panel = fig.panel(p / cols, p % cols);
            panel.title(name).xlabel("column").ylabel("row");
            panel
                .image(&counts, nrows, ncols)
                .cmap(Colormap::Viridis)
                .limits(Limits::Percentile(0.0, 99.9))
                .resample(Resample::Max)
                .colorbar("hits");
        }
        save(&fig, ctx, "hitmaps.png")?;
    }
    // Event display: x-z and y-z views of the first tracks.
    if !tracks.is_empty() && display_tracks > 0 {
        let mut fig = Figure::grid(900, 700, 2, 1);
        fig.title("Event display");
        for (row, k) in [0usize, 1].into_iter().enumerate() {
            let panel = fig.panel(row, 0);
            panel
                .xlabel("z [mm]")
                .ylabel(if k == 0 { "x [mm]" } else { "y [mm]" });
            for (t, _) in tracks.iter().take(display_tracks) {
                let z: Vec<f64> = t.clusters.iter().map(|c| c.global[2]).collect();
                let v: Vec<f64> = t.clusters.iter().map(|c| c.global[k]).collect();
                panel.scatter(&z, &v).marker(Marker::Circle);
                let (z0, z1) = (
                    z.first().copied().unwrap_or(0.0),
                    z.last().copied().unwrap_or(0.0),
                );
                let f = |z: f64| t.line.at(z)[k];
                panel
                    .line(&[z0, z1], &[f(z0), f(z1)])
                    .label(&format!("event {}", t.event));
            }
        }
        save(&fig, ctx, "event_display.png")?;
    }
    Ok(())
}
