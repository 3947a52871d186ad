//! Figures, panels, layout, axes and PNG output.

use std::path::{Path, PathBuf};

use super::PlotError;
use super::canvas::{Canvas, Rect};
use super::color::Color;
use super::font::{self, HAlign, VAlign};
use super::image::{self, ImagePlot, Mapper, PolygonSet};
use super::items::{
    self, Hist, LineStyle, Marker, PlotValue, RefLine, Scale, Series, Shape, ShapeKind, Text,
    to_vec,
};
use super::ticks;

/// Data extent along one axis, and whether each end is "sticky" (gets no margin: images,
/// histogram baselines).
#[derive(Clone, Copy, Debug)]
pub(super) struct Span {
    lo: f64,
    hi: f64,
    sticky_lo: bool,
    sticky_hi: bool,
}

impl Span {
    fn empty() -> Span {
        Span {
            lo: f64::INFINITY,
            hi: f64::NEG_INFINITY,
            sticky_lo: false,
            sticky_hi: false,
        }
    }
    fn is_empty(&self) -> bool {
        self.lo > self.hi
    }
    fn add_flag(&mut self, v: f64, sticky: bool) {
        if v < self.lo {
            self.lo = v;
            self.sticky_lo = sticky;
        } else if v == self.lo {
            self.sticky_lo |= sticky;
        }
        if v > self.hi {
            self.hi = v;
            self.sticky_hi = sticky;
        } else if v == self.hi {
            self.sticky_hi |= sticky;
        }
    }
    /// Includes a value (a caller has checked it is valid for the scale).
    pub fn add(&mut self, v: f64) {
        self.add_flag(v, false);
    }
    /// Includes a value that the axis should end at exactly, without margin.
    pub fn add_sticky(&mut self, v: f64) {
        self.add_flag(v, true);
    }
}

/// A resolved axis: maps data values to continuous screen coordinates.
#[derive(Clone, Copy, Debug)]
pub(super) struct Axis {
    pub scale: Scale,
    t0: f64,
    t1: f64,
    pub inverted: bool,
    vertical: bool,
    pix0: f64,
    len: f64,
}

impl Axis {
    fn new(scale: Scale, lo: f64, hi: f64, inverted: bool, vertical: bool, r: Rect) -> Axis {
        let (pix0, len) = if vertical {
            (r.y0 as f64, r.h() as f64)
        } else {
            (r.x0 as f64, r.w() as f64)
        };
        Axis {
            scale,
            t0: scale.fwd(lo),
            t1: scale.fwd(hi),
            inverted,
            vertical,
            pix0,
            len,
        }
    }
    /// Fraction 0..1 along the axis (0 at the low end, before inversion).
    #[inline]
    fn frac(&self, v: f64) -> f64 {
        (self.scale.fwd(v) - self.t0) / (self.t1 - self.t0)
    }
    /// Screen coordinate of a data value, None if it cannot be shown on this scale.
    #[inline]
    pub fn px(&self, v: f64) -> Option<f64> {
        if !self.scale.valid(v) {
            return None;
        }
        let mut f = self.frac(v);
        if self.inverted {
            f = 1.0 - f;
        }
        let p = if self.vertical {
            self.pix0 + self.len * (1.0 - f)
        } else {
            self.pix0 + self.len * f
        };
        p.is_finite().then_some(p)
    }
    /// Data value at a continuous screen coordinate.
    #[inline]
    pub fn value_at(&self, p: f64) -> f64 {
        let mut f = (p - self.pix0) / self.len;
        if self.vertical {
            f = 1.0 - f;
        }
        if self.inverted {
            f = 1.0 - f;
        }
        self.scale.inv(self.t0 + f * (self.t1 - self.t0))
    }
}

/// What the items need to draw themselves.
pub(super) struct Ctx {
    pub x: Axis,
    pub y: Axis,
    pub xscale: Scale,
    pub yscale: Scale,
    /// The plot area (data is clipped to it).
    pub rect: Rect,
    /// Font scale; also the unit of default line widths.
    pub s: i64,
}

/// Where the legend goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LegendPos {
    /// Top right inside the plot area.
    #[default]
    UpperRight,
    /// Top left inside the plot area.
    UpperLeft,
    /// Bottom left inside the plot area.
    LowerLeft,
    /// Bottom right inside the plot area.
    LowerRight,
    /// No legend, even if items have labels.
    Hidden,
}

#[derive(Clone, Debug, Default)]
struct AxisSpec {
    label: String,
    scale: Scale,
    lim: Option<(f64, f64)>,
    inverted: Option<bool>,
}

#[derive(Clone, Debug)]
enum Item {
    Series(Series),
    Hist(Hist),
    Ref(RefLine),
    Image(ImagePlot),
    Polys(PolygonSet),
    Shape(Shape),
    Text(Text),
}

/// One panel (set of axes) of a [`Figure`]: title, axis labels and scales, and the items drawn
/// in it, in the order they were added. Methods that add an item return it for styling.
#[derive(Clone, Debug)]
pub struct Panel {
    title: String,
    x: AxisSpec,
    y: AxisSpec,
    margin: f64,
    grid: bool,
    legend: LegendPos,
    equal: Option<bool>,
    items: Vec<Item>,
}

impl Default for Panel {
    fn default() -> Self {
        Panel {
            title: String::new(),
            x: AxisSpec::default(),
            y: AxisSpec::default(),
            margin: 0.05,
            grid: false,
            legend: LegendPos::UpperRight,
            equal: None,
            items: Vec::new(),
        }
    }
}

macro_rules! push_item {
    ($self:ident, $variant:ident, $value:expr) => {{
        $self.items.push(Item::$variant($value));
        match $self.items.last_mut() {
            Some(Item::$variant(v)) => v,
            _ => unreachable!("the item was just pushed"),
        }
    }};
}

impl Panel {
    /// Sets the title shown above the panel.
    pub fn title(&mut self, text: &str) -> &mut Self {
        self.title = text.to_string();
        self
    }
    /// Sets the x axis label. `^{..}` and `_{..}` make super- and subscripts.
    pub fn xlabel(&mut self, text: &str) -> &mut Self {
        self.x.label = text.to_string();
        self
    }
    /// Sets the y axis label (drawn vertically).
    pub fn ylabel(&mut self, text: &str) -> &mut Self {
        self.y.label = text.to_string();
        self
    }
    /// Sets the x axis scale (default linear).
    pub fn xscale(&mut self, s: Scale) -> &mut Self {
        self.x.scale = s;
        self
    }
    /// Sets the y axis scale (default linear).
    pub fn yscale(&mut self, s: Scale) -> &mut Self {
        self.y.scale = s;
        self
    }
    /// Fixes the x range. `lo > hi` inverts the axis. A non-finite or (on a log axis)
    /// non-positive limit falls back to the automatic range; `lo == hi` is widened.
    pub fn xlim(&mut self, lo: f64, hi: f64) -> &mut Self {
        self.x.lim = Some((lo, hi));
        self
    }
    /// Fixes the y range; as [`Panel::xlim`].
    pub fn ylim(&mut self, lo: f64, hi: f64) -> &mut Self {
        self.y.lim = Some((lo, hi));
        self
    }
    /// Inverts the y axis (values grow downwards), or not. Default: not inverted, unless an
    /// image with [`Origin::Upper`](super::Origin::Upper) and pixel units is shown.
    pub fn invert_y(&mut self, inverted: bool) -> &mut Self {
        self.y.inverted = Some(inverted);
        self
    }
    /// Sets the fraction of the data range added on each side of automatic ranges (default
    /// 0.05, as matplotlib).
    pub fn margin(&mut self, fraction: f64) -> &mut Self {
        if fraction.is_finite() {
            self.margin = fraction.clamp(0.0, 1.0);
        }
        self
    }
    /// Draws light grid lines at the major ticks.
    pub fn grid(&mut self, on: bool) -> &mut Self {
        self.grid = on;
        self
    }
    /// Sets where the legend goes; it is drawn when some item has a label.
    pub fn legend(&mut self, pos: LegendPos) -> &mut Self {
        self.legend = pos;
        self
    }
    /// One data unit is as long on x as on y (linear axes only), by shrinking the plot area.
    /// Default: on for panels with an image or polygon set, off otherwise.
    pub fn equal_aspect(&mut self, on: bool) -> &mut Self {
        self.equal = Some(on);
        self
    }

    /// A polyline through (x, y) (the shorter length wins).
    pub fn line<X: PlotValue, Y: PlotValue>(&mut self, x: &[X], y: &[Y]) -> &mut Series {
        push_item!(
            self,
            Series,
            Series::new(to_vec(x), to_vec(y), LineStyle::Solid, Marker::None)
        )
    }
    /// Circle markers at (x, y), no line.
    pub fn scatter<X: PlotValue, Y: PlotValue>(&mut self, x: &[X], y: &[Y]) -> &mut Series {
        push_item!(
            self,
            Series,
            Series::new(to_vec(x), to_vec(y), LineStyle::None, Marker::Circle)
        )
    }
    /// Circle markers at (x, y) with symmetric y error bars `yerr`; add x errors with
    /// [`Series::xerr`].
    pub fn errorbar<X: PlotValue, Y: PlotValue, E: PlotValue>(
        &mut self,
        x: &[X],
        y: &[Y],
        yerr: &[E],
    ) -> &mut Series {
        let s = push_item!(
            self,
            Series,
            Series::new(to_vec(x), to_vec(y), LineStyle::None, Marker::Circle)
        );
        s.yerr(yerr)
    }
    /// A step histogram from `edges` (n + 1 bin edges) and `counts` (n values).
    pub fn hist<E: PlotValue, C: PlotValue>(&mut self, edges: &[E], counts: &[C]) -> &mut Hist {
        push_item!(self, Hist, Hist::new(to_vec(edges), to_vec(counts), false))
    }
    /// Filled bars from `edges` (n + 1 bin edges) and `heights` (n values).
    pub fn bars<E: PlotValue, C: PlotValue>(&mut self, edges: &[E], heights: &[C]) -> &mut Hist {
        push_item!(self, Hist, Hist::new(to_vec(edges), to_vec(heights), true))
    }
    /// A horizontal reference line at y.
    pub fn hline(&mut self, y: f64) -> &mut RefLine {
        push_item!(self, Ref, RefLine::new(true, y))
    }
    /// A vertical reference line at x.
    pub fn vline(&mut self, x: f64) -> &mut RefLine {
        push_item!(self, Ref, RefLine::new(false, x))
    }
    /// A 2-D image of `rows x cols` values in row-major order (row 0 first); a short array is
    /// padded with NaN. See [`ImagePlot`] for resampling.
    pub fn image<T: PlotValue>(
        &mut self,
        values: &[T],
        rows: usize,
        cols: usize,
    ) -> &mut ImagePlot {
        push_item!(self, Image, ImagePlot::new(to_vec(values), rows, cols))
    }
    /// Polygons (vertices in data coordinates) filled by colour-mapping one value each.
    pub fn polygons<V: PlotValue>(
        &mut self,
        polys: Vec<Vec<[f64; 2]>>,
        values: &[V],
    ) -> &mut PolygonSet {
        push_item!(self, Polys, PolygonSet::new(polys, to_vec(values)))
    }
    /// Regular polygons of equal size centred at (x, y), one value each: a camera display.
    /// See [`regular_polygon`](super::regular_polygon) for radius and rotation.
    pub fn regular_polygons<X: PlotValue, Y: PlotValue, V: PlotValue>(
        &mut self,
        x: &[X],
        y: &[Y],
        circumradius: f64,
        sides: usize,
        rotation: f64,
        values: &[V],
    ) -> &mut PolygonSet {
        let polys = x
            .iter()
            .zip(y)
            .map(|(a, b)| {
                image::regular_polygon(a.to_f64(), b.to_f64(), circumradius, sides, rotation)
            })
            .collect();
        self.polygons(polys, values)
    }
    /// A polygon with vertices in data coordinates.
    pub fn polygon(&mut self, vertices: &[[f64; 2]]) -> &mut Shape {
        push_item!(
            self,
            Shape,
            Shape::new(ShapeKind::Polygon(vertices.to_vec()))
        )
    }
    /// An ellipse centred at (cx, cy) with semi-axes `a` (along the direction `angle`, in
    /// radians from +x towards +y) and `b`: a Hillas ellipse is
    /// `ellipse(x, y, length, width, psi)`.
    pub fn ellipse(&mut self, cx: f64, cy: f64, a: f64, b: f64, angle: f64) -> &mut Shape {
        push_item!(
            self,
            Shape,
            Shape::new(ShapeKind::Ellipse {
                cx,
                cy,
                a,
                b,
                angle
            })
        )
    }
    /// A circle of radius `r` (data units) centred at (cx, cy).
    pub fn circle(&mut self, cx: f64, cy: f64, r: f64) -> &mut Shape {
        self.ellipse(cx, cy, r, r, 0.0)
    }
    /// A rectangle with corners (x0, y0) and (x1, y1), e.g. a region of interest.
    pub fn rect(&mut self, x0: f64, y0: f64, x1: f64, y1: f64) -> &mut Shape {
        push_item!(self, Shape, Shape::new(ShapeKind::Rect([x0, y0, x1, y1])))
    }
    /// A line segment from (x0, y0) to (x1, y1).
    pub fn segment(&mut self, x0: f64, y0: f64, x1: f64, y1: f64) -> &mut Shape {
        push_item!(
            self,
            Shape,
            Shape::new(ShapeKind::Segment([x0, y0, x1, y1]))
        )
    }
    /// Text at (x, y) in data coordinates, left-aligned and vertically centred there.
    pub fn text(&mut self, x: f64, y: f64, text: &str) -> &mut Text {
        push_item!(
            self,
            Text,
            Text::new(x, y, false, text, (HAlign::Left, VAlign::Center))
        )
    }
    /// Text at a fraction (fx, fy) of the plot area, (0, 0) lower left and (1, 1) upper right,
    /// with its top-left corner there: `note(0.04, 0.96, "Amp 3")`.
    pub fn note(&mut self, fx: f64, fy: f64, text: &str) -> &mut Text {
        push_item!(
            self,
            Text,
            Text::new(fx, fy, true, text, (HAlign::Left, VAlign::Top))
        )
    }

    fn is_blank(&self) -> bool {
        self.items.is_empty()
            && self.title.is_empty()
            && self.x.label.is_empty()
            && self.y.label.is_empty()
    }
}

/// A figure: `width x height` pixels holding a grid of [`Panel`]s, rendered to an 8-bit RGB
/// PNG with the built-in bitmap font (no system fonts or libraries).
///
/// ```
/// use caliper_core::plot::{Figure, Marker, Scale};
/// let mut fig = Figure::new(640, 480);
/// let p = fig.panel(0, 0);
/// p.title("PTC").xlabel("mean [ADU]").ylabel("variance [ADU^{2}]");
/// p.xscale(Scale::Log10).yscale(Scale::Log10);
/// p.scatter(&[100.0, 1000.0, 1e4], &[80.0, 700.0, 6000.0]).label("amp 1");
/// p.line(&[100.0, 1e4], &[75.0, 7500.0]).dashed().label("fit");
/// let png = fig.to_png_bytes().unwrap();
/// assert_eq!(&png[1..4], b"PNG");
/// ```
#[derive(Clone, Debug)]
pub struct Figure {
    width: usize,
    height: usize,
    rows: usize,
    cols: usize,
    panels: Vec<Panel>,
    title: String,
    font_scale: Option<i64>,
}

/// Smallest and largest figure side in pixels.
const MIN_SIDE: usize = 16;
const MAX_SIDE: usize = 16384;

impl Figure {
    /// A figure of `width x height` pixels (each clamped to 16..=16384) with one panel.
    pub fn new(width: u32, height: u32) -> Figure {
        Figure::grid(width, height, 1, 1)
    }

    /// A figure with a `rows x cols` grid of equal panels (at least 1 x 1, at most 64 x 64).
    pub fn grid(width: u32, height: u32, rows: usize, cols: usize) -> Figure {
        let (rows, cols) = (rows.clamp(1, 64), cols.clamp(1, 64));
        Figure {
            width: (width as usize).clamp(MIN_SIDE, MAX_SIDE),
            height: (height as usize).clamp(MIN_SIDE, MAX_SIDE),
            rows,
            cols,
            panels: vec![Panel::default(); rows * cols],
            title: String::new(),
            font_scale: None,
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Sets a title above all panels.
    pub fn title(&mut self, text: &str) -> &mut Self {
        self.title = text.to_string();
        self
    }

    /// Sets the text scale: each font pixel becomes `scale x scale` screen pixels (1..=8).
    /// Default: 1 for panels under 240 pixels, 3 for panels over 900, else 2.
    pub fn font_scale(&mut self, scale: u32) -> &mut Self {
        self.font_scale = Some(i64::from(scale.clamp(1, 8)));
        self
    }

    /// The panel at (row, col), row 0 at the top.
    ///
    /// # Panics
    /// If `row` or `col` is outside the grid given to [`Figure::grid`] (a programming error).
    pub fn panel(&mut self, row: usize, col: usize) -> &mut Panel {
        assert!(
            row < self.rows && col < self.cols,
            "panel ({row}, {col}) outside a {}x{} grid",
            self.rows,
            self.cols
        );
        &mut self.panels[row * self.cols + col]
    }

    /// All panels, row by row.
    pub fn panels_mut(&mut self) -> impl Iterator<Item = &mut Panel> {
        self.panels.iter_mut()
    }

    /// Renders to 8-bit RGB bytes, row by row from the top (`width * height * 3` bytes).
    pub fn render(&self) -> Vec<u8> {
        self.render_canvas().0.into_bytes()
    }

    /// Renders, also returning each panel's plot area (None for blank or too-small panels).
    pub(super) fn render_canvas(&self) -> (Canvas, Vec<Option<Rect>>) {
        let mut areas = Vec::with_capacity(self.panels.len());
        let mut cv = Canvas::new(self.width, self.height);
        let (w, h) = (self.width as i64, self.height as i64);
        let cell_w = w / self.cols as i64;
        let cell_h = h / self.rows as i64;
        let s = self.font_scale.unwrap_or(match cell_w.min(cell_h) {
            ..240 => 1,
            240..=900 => 2,
            _ => 3,
        });
        let mut top = 0;
        if !self.title.is_empty() {
            let ts = s + 1;
            let (_, th) = font::text_size(&self.title, ts);
            font::draw_aligned(
                &mut cv,
                w / 2,
                2 * s,
                &self.title,
                ts,
                Color::DARK,
                (HAlign::Center, VAlign::Top),
                true,
            );
            top = th + 3 * s;
        }
        let avail = h - top;
        for r in 0..self.rows as i64 {
            for c in 0..self.cols as i64 {
                let cell = Rect {
                    x0: w * c / self.cols as i64,
                    x1: w * (c + 1) / self.cols as i64,
                    y0: top + avail * r / self.rows as i64,
                    y1: top + avail * (r + 1) / self.rows as i64,
                };
                let p = &self.panels[(r * self.cols as i64 + c) as usize];
                areas.push(if p.is_blank() {
                    None
                } else {
                    render_panel(&mut cv, p, cell, s)
                });
                cv.reset_clip();
            }
        }
        (cv, areas)
    }

    /// Encodes the figure as an 8-bit RGB PNG in memory.
    pub fn to_png_bytes(&self) -> Result<Vec<u8>, PlotError> {
        encode_png(
            self.width,
            self.height,
            &self.render(),
            Path::new("<memory>"),
        )
    }

    /// Writes the figure as an 8-bit RGB PNG file. The file is written under a temporary name
    /// in the same folder and renamed, so a failed write never leaves half a PNG at `path`.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<(), PlotError> {
        let path = path.as_ref();
        let bytes = encode_png(self.width, self.height, &self.render(), path)?;
        let name = path
            .file_name()
            .map_or_else(|| "plot.png".into(), |n| n.to_string_lossy().into_owned());
        let tmp: PathBuf = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let io = |source| PlotError::Io {
            path: path.to_path_buf(),
            source,
        };
        std::fs::write(&tmp, &bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })
    }
}

fn encode_png(w: usize, h: usize, rgb: &[u8], path: &Path) -> Result<Vec<u8>, PlotError> {
    let err = |source| PlotError::Encode {
        path: path.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    {
        // Sizes are clamped to 16384, so they fit u32.
        let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        let mut wr = enc.write_header().map_err(err)?;
        wr.write_image_data(rgb).map_err(err)?;
        wr.finish().map_err(err)?;
    }
    Ok(out)
}

/// The axis range: fixed limits if usable, else the data span with margins; never empty.
/// Returns (lo, hi, inverted-by-limits).
fn resolve_range(spec: &AxisSpec, span: &Span, margin: f64) -> (f64, f64, bool) {
    let sc = spec.scale;
    if let Some((a, b)) = spec.lim
        && sc.valid(a)
        && sc.valid(b)
    {
        let (lo, hi) = widen(sc, a.min(b), a.max(b));
        return (lo, hi, a > b);
    }
    if span.is_empty() {
        return match sc {
            Scale::Linear => (0.0, 1.0, false),
            Scale::Log10 => (1.0, 10.0, false),
        };
    }
    let (lo, hi) = widen(sc, span.lo, span.hi);
    let widened = lo != span.lo;
    let (t0, t1) = (sc.fwd(lo), sc.fwd(hi));
    let m = (t1 - t0) * margin;
    let t0 = if span.sticky_lo && !widened {
        t0
    } else {
        t0 - m
    };
    let t1 = if span.sticky_hi && !widened {
        t1
    } else {
        t1 + m
    };
    // Keep hi - lo finite for data near f64::MAX.
    let lim = f64::MAX / 4.0;
    let (lo, hi) = (sc.inv(t0).max(-lim), sc.inv(t1).min(lim));
    if hi > lo {
        (lo, hi, false)
    } else {
        match sc {
            Scale::Linear => (0.0, 1.0, false),
            Scale::Log10 => (1.0, 10.0, false),
        }
    }
}

/// Widens a zero-width range.
fn widen(sc: Scale, lo: f64, hi: f64) -> (f64, f64) {
    if hi > lo && sc.fwd(hi) - sc.fwd(lo) > 1e-12 * sc.fwd(hi).abs().max(1e-300) {
        return (lo, hi);
    }
    match sc {
        Scale::Linear => {
            let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
            (lo - d, hi + d)
        }
        Scale::Log10 => (lo / 10f64.sqrt(), hi * 10f64.sqrt()),
    }
}

/// Major ticks and their labels for an axis range.
fn axis_ticks(scale: Scale, lo: f64, hi: f64, max: usize) -> (Vec<f64>, Vec<String>) {
    match scale {
        Scale::Linear => {
            let t = ticks::nice_ticks(lo, hi, max);
            let l = ticks::format_ticks(&t);
            (t, l)
        }
        Scale::Log10 => {
            let t = ticks::log_ticks(lo, hi, max);
            let l = ticks::format_log_ticks(&t);
            (t, l)
        }
    }
}

/// A legend entry's sample.
enum Sample {
    Line(Color, i64, LineStyle, Marker),
    Patch(Color),
}

/// Draws one panel into `cell`; returns its plot area.
fn render_panel(cv: &mut Canvas, p: &Panel, cell: Rect, s: i64) -> Option<Rect> {
    let pad = 3 * s;
    let tick_len = 2 * s + 1;
    let xs = p.x.scale;
    let ys = p.y.scale;

    // Data extents. The axes are not known yet, but bounds only need the scales.
    let dummy = Axis::new(Scale::Linear, 0.0, 1.0, false, false, cell);
    let probe = Ctx {
        x: dummy,
        y: dummy,
        xscale: xs,
        yscale: ys,
        rect: cell,
        s,
    };
    let (mut xspan, mut yspan) = (Span::empty(), Span::empty());
    let mut has_data_items = false;
    let mut invert_auto = false;
    let mut has_map = false;
    for it in &p.items {
        match it {
            Item::Series(v) => v.bounds(&probe, &mut xspan, &mut yspan),
            Item::Hist(v) => v.bounds(&probe, &mut xspan, &mut yspan),
            Item::Ref(v) => v.bounds(&probe, &mut xspan, &mut yspan),
            Item::Image(v) => {
                invert_auto |= v.wants_inverted_y();
                has_map = true;
                v.bounds(&probe, &mut xspan, &mut yspan)
            }
            Item::Polys(v) => {
                has_map = true;
                v.bounds(&probe, &mut xspan, &mut yspan)
            }
            Item::Shape(v) => v.bounds(&probe, &mut xspan, &mut yspan),
            Item::Text(_) => continue,
        }
        has_data_items = true;
    }
    let no_data = xspan.is_empty() && yspan.is_empty();
    let (xlo, xhi, xinv) = resolve_range(&p.x, &xspan, p.margin);
    let (ylo, yhi, yinv) = resolve_range(&p.y, &yspan, p.margin);
    let xinv = p.x.inverted.unwrap_or(false) ^ xinv;
    let yinv = p.y.inverted.unwrap_or(invert_auto) ^ yinv;

    // Colour scales, resolved once per item.
    let mappers: Vec<Option<Mapper>> = p
        .items
        .iter()
        .map(|it| match it {
            Item::Image(v) => Some(v.cs.mapper(&v.data)),
            Item::Polys(v) => Some(v.cs.mapper(&v.values)),
            _ => None,
        })
        .collect();
    let colorbar = p.items.iter().zip(&mappers).rev().find_map(|(it, m)| {
        let label = match it {
            Item::Image(v) => v.cs.colorbar.as_ref(),
            Item::Polys(v) => v.cs.colorbar.as_ref(),
            _ => None,
        }?;
        Some((label.clone(), m.as_ref()?))
    });

    // Vertical layout.
    let title_h = if p.title.is_empty() {
        pad
    } else {
        font::text_size(&p.title, s).1 + 2 * pad
    };
    let xtick_h = (font::GLYPH_H + if xs == Scale::Log10 { 3 } else { 0 }) * s;
    let xlabel_h = if p.x.label.is_empty() {
        0
    } else {
        font::text_size(&p.x.label, s).1 + pad
    };
    let mut plot = Rect {
        x0: cell.x0,
        y0: cell.y0 + title_h,
        x1: cell.x1,
        y1: cell.y1 - (tick_len + pad + xtick_h + xlabel_h + pad),
    };
    let y_max_ticks = |h: i64| (h / (30 * s)).clamp(2, 10) as usize;
    let (_, ylabels) = axis_ticks(ys, ylo, yhi, y_max_ticks(plot.h()));
    let ytick_w = ylabels
        .iter()
        .map(|l| font::text_size(l, s).0)
        .max()
        .unwrap_or(0);
    let ylabel_w = if p.y.label.is_empty() {
        0
    } else {
        font::text_size(&p.y.label, s).1 + pad
    };
    plot.x0 = cell.x0 + pad + ylabel_w + ytick_w + pad + tick_len;
    // Right: room for the colour bar, or for half of the last x tick label.
    let cb_bar_w = 5 * s + 2;
    let cb_gap = 4 * s;
    let mut right = 4 * s + 6 * s * 2;
    if let Some((label, m)) = &colorbar {
        let (_, l) = axis_ticks(m.scale, m.lo, m.hi, y_max_ticks(plot.h()));
        let lw = l.iter().map(|l| font::text_size(l, s).0).max().unwrap_or(0);
        let label_w = if label.is_empty() {
            0
        } else {
            font::text_size(label, s).1 + pad
        };
        right = cb_gap + cb_bar_w + tick_len + pad + lw + label_w + pad;
    }
    plot.x1 = cell.x1 - right;
    if plot.w() < 8 || plot.h() < 8 {
        // Too small to show anything useful; draw the title only.
        draw_title(cv, p, cell, s, pad);
        return None;
    }

    // Equal aspect: shrink the plot area around its centre.
    let equal = p.equal.unwrap_or(has_map) && xs == Scale::Linear && ys == Scale::Linear;
    if equal {
        let (dx, dy) = (xhi - xlo, yhi - ylo);
        let (w, h) = (plot.w() as f64, plot.h() as f64);
        if w / dx > h / dy {
            let nw = (h * dx / dy).round() as i64;
            let cut = plot.w() - nw.max(8);
            plot.x0 += cut / 2;
            plot.x1 -= cut - cut / 2;
        } else {
            let nh = (w * dy / dx).round() as i64;
            let cut = plot.h() - nh.max(8);
            plot.y0 += cut / 2;
            plot.y1 -= cut - cut / 2;
        }
    }

    let ctx = Ctx {
        x: Axis::new(xs, xlo, xhi, xinv, false, plot),
        y: Axis::new(ys, ylo, yhi, yinv, true, plot),
        xscale: xs,
        yscale: ys,
        rect: plot,
        s,
    };

    // Ticks for the final plot area. x: as many as fit with a gap of two characters.
    let (yticks, ylabels) = axis_ticks(ys, ylo, yhi, y_max_ticks(plot.h()));
    let mut xt = (Vec::new(), Vec::new());
    let mut thin = 1;
    for max in (2..=10usize).rev() {
        xt = axis_ticks(xs, xlo, xhi, max);
        let widest =
            xt.1.iter()
                .map(|l| font::text_size(l, s).0)
                .max()
                .unwrap_or(0);
        let px: Vec<f64> = xt.0.iter().filter_map(|&v| ctx.x.px(v)).collect();
        let min_gap = px
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(f64::INFINITY, f64::min);
        let need = (widest + 2 * font::CELL_W * s) as f64;
        if min_gap >= need {
            thin = 1;
            break;
        }
        // Even the fewest ticks can be too dense (long labels, narrow panel): then label
        // only every `thin`-th tick.
        thin = (need / min_gap.max(1.0)).ceil().clamp(1.0, 100.0) as usize;
    }
    let (xticks, mut xlabels) = xt;
    if thin > 1 {
        for (i, l) in xlabels.iter_mut().enumerate() {
            if i % thin != 0 {
                l.clear();
            }
        }
    }

    // Grid.
    if p.grid {
        cv.set_clip(plot);
        for &v in &xticks {
            if let Some(x) = ctx.x.px(v) {
                cv.fill_rect(x as i64, plot.y0, x as i64 + 1, plot.y1, Color::LIGHT_GREY);
            }
        }
        for &v in &yticks {
            if let Some(y) = ctx.y.px(v) {
                cv.fill_rect(plot.x0, y as i64, plot.x1, y as i64 + 1, Color::LIGHT_GREY);
            }
        }
    }

    // Items, in the order added, clipped to the plot area.
    cv.set_clip(plot);
    let mut next_color = 0usize;
    let mut auto = |c: Option<Color>| {
        c.unwrap_or_else(|| {
            next_color += 1;
            Color::palette(next_color - 1)
        })
    };
    let mut legend: Vec<(String, Sample)> = Vec::new();
    for (it, m) in p.items.iter().zip(&mappers) {
        match it {
            Item::Series(v) => {
                let c = auto(v.color);
                v.draw(cv, &ctx, c);
                if let Some(l) = &v.label {
                    let w = v.width.unwrap_or(s);
                    legend.push((l.clone(), Sample::Line(c, w, v.style, v.marker)));
                }
            }
            Item::Hist(v) => {
                let c = auto(v.color);
                v.draw(cv, &ctx, c);
                if let Some(l) = &v.label {
                    let sample = if v.filled {
                        Sample::Patch(c)
                    } else {
                        Sample::Line(c, v.width.unwrap_or(s), LineStyle::Solid, Marker::None)
                    };
                    legend.push((l.clone(), sample));
                }
            }
            Item::Ref(v) => {
                v.draw(cv, &ctx);
                if let Some(l) = &v.label {
                    let w = v.width.unwrap_or((s / 2).max(1));
                    legend.push((l.clone(), Sample::Line(v.color, w, v.style, Marker::None)));
                }
            }
            Item::Image(v) => {
                if let Some(m) = m {
                    v.draw(cv, &ctx, m);
                }
            }
            Item::Polys(v) => {
                if let Some(m) = m {
                    v.draw(cv, &ctx, m);
                }
            }
            Item::Shape(v) => {
                let c = if v.outline_auto {
                    auto(None)
                } else {
                    Color::BLACK
                };
                v.draw(cv, &ctx, c);
                if let Some(l) = &v.label {
                    let lc = v.legend_color(c);
                    let sample = if v.fill.is_some() && !v.outline_auto && v.outline.is_none() {
                        Sample::Patch(lc)
                    } else {
                        Sample::Line(lc, v.width.unwrap_or(s), v.style, Marker::None)
                    };
                    legend.push((l.clone(), sample));
                }
            }
            Item::Text(v) => v.draw(cv, &ctx),
        }
    }
    if no_data {
        let msg = if has_data_items {
            "no finite data"
        } else {
            "no data"
        };
        font::draw_aligned(
            cv,
            (plot.x0 + plot.x1) / 2,
            (plot.y0 + plot.y1) / 2,
            msg,
            s,
            Color::GREY,
            (HAlign::Center, VAlign::Center),
            false,
        );
    }
    if p.legend != LegendPos::Hidden && !legend.is_empty() {
        draw_legend(cv, &legend, plot, p.legend, s);
    }

    // Frame, ticks and labels, outside the plot area.
    cv.set_clip(cell);
    let dark = Color::DARK;
    cv.outline_rect(plot.x0 - 1, plot.y0 - 1, plot.x1 + 1, plot.y1 + 1, dark);
    for (&v, l) in xticks.iter().zip(&xlabels) {
        let Some(x) = ctx.x.px(v) else { continue };
        let xi = (x.floor() as i64).clamp(plot.x0, plot.x1 - 1);
        cv.fill_rect(xi, plot.y1 + 1, xi + 1, plot.y1 + 1 + tick_len, dark);
        let (w, _) = font::text_size(l, s);
        let left = (xi - w / 2).clamp(cell.x0 + 1, (cell.x1 - w - 1).max(cell.x0));
        font::draw(cv, left, plot.y1 + 1 + tick_len + pad, l, s, dark);
    }
    for &v in &ticks::log_minor_ticks(xlo, xhi, if xs == Scale::Log10 { &xticks } else { &[] }) {
        if let Some(x) = ctx.x.px(v) {
            let xi = (x.floor() as i64).clamp(plot.x0, plot.x1 - 1);
            cv.fill_rect(xi, plot.y1 + 1, xi + 1, plot.y1 + 1 + tick_len / 2, dark);
        }
    }
    for (&v, l) in yticks.iter().zip(&ylabels) {
        let Some(y) = ctx.y.px(v) else { continue };
        let yi = (y.floor() as i64).clamp(plot.y0, plot.y1 - 1);
        cv.fill_rect(plot.x0 - 1 - tick_len, yi, plot.x0 - 1, yi + 1, dark);
        let (w, h) = font::text_size(l, s);
        let ct = font::cap_top(l, s);
        let top = (yi - ct - font::CAP_H * s / 2).clamp(cell.y0, (cell.y1 - h).max(cell.y0));
        font::draw(cv, plot.x0 - 1 - tick_len - pad - w, top, l, s, dark);
    }
    for &v in &ticks::log_minor_ticks(ylo, yhi, if ys == Scale::Log10 { &yticks } else { &[] }) {
        if let Some(y) = ctx.y.px(v) {
            let yi = (y.floor() as i64).clamp(plot.y0, plot.y1 - 1);
            cv.fill_rect(plot.x0 - 1 - tick_len / 2, yi, plot.x0 - 1, yi + 1, dark);
        }
    }
    if !p.x.label.is_empty() {
        let y = plot.y1 + 1 + tick_len + pad + xtick_h + pad;
        let (w, _) = font::text_size(&p.x.label, s);
        let left = ((plot.x0 + plot.x1) / 2 - w / 2).max(cell.x0 + 1);
        font::draw(cv, left, y, &p.x.label, s, dark);
    }
    if !p.y.label.is_empty() {
        // Beside the tick labels, which move with the plot area when the aspect is fixed.
        let (w, h) = font::text_size(&p.y.label, s);
        let ytick_w = ylabels
            .iter()
            .map(|l| font::text_size(l, s).0)
            .max()
            .unwrap_or(0);
        let left = (plot.x0 - 1 - tick_len - pad - ytick_w - pad - h).max(cell.x0 + pad);
        let top = ((plot.y0 + plot.y1) / 2 - w / 2).max(cell.y0);
        font::draw_vertical(cv, left, top, &p.y.label, s, dark);
    }
    draw_title(
        cv,
        p,
        Rect {
            x0: plot.x0,
            x1: plot.x1,
            ..cell
        },
        s,
        pad,
    );

    if let Some((label, m)) = colorbar {
        let bar = Rect {
            x0: plot.x1 + 1 + cb_gap,
            x1: plot.x1 + 1 + cb_gap + cb_bar_w,
            y0: plot.y0,
            y1: plot.y1,
        };
        image::draw_colorbar_gradient(cv, bar, m);
        cv.outline_rect(bar.x0 - 1, bar.y0 - 1, bar.x1 + 1, bar.y1 + 1, dark);
        let (t, l) = axis_ticks(m.scale, m.lo, m.hi, y_max_ticks(plot.h()));
        let (f0, f1) = (m.scale.fwd(m.lo), m.scale.fwd(m.hi));
        let mut lw = 0;
        for (&v, l) in t.iter().zip(&l) {
            let f = (m.scale.fwd(v) - f0) / (f1 - f0);
            let yi =
                ((bar.y1 as f64 - f * bar.h() as f64).floor() as i64).clamp(bar.y0, bar.y1 - 1);
            cv.fill_rect(bar.x1 + 1, yi, bar.x1 + 1 + tick_len, yi + 1, dark);
            let ct = font::cap_top(l, s);
            let (w, h) = font::text_size(l, s);
            lw = lw.max(w);
            let top = (yi - ct - font::CAP_H * s / 2).clamp(cell.y0, (cell.y1 - h).max(cell.y0));
            font::draw(cv, bar.x1 + 1 + tick_len + pad, top, l, s, dark);
        }
        if !label.is_empty() {
            let (w, _) = font::text_size(&label, s);
            let top = ((bar.y0 + bar.y1) / 2 - w / 2).max(cell.y0);
            font::draw_vertical(
                cv,
                bar.x1 + 1 + tick_len + pad + lw + pad,
                top,
                &label,
                s,
                dark,
            );
        }
    }
    Some(plot)
}

fn draw_title(cv: &mut Canvas, p: &Panel, over: Rect, s: i64, pad: i64) {
    if p.title.is_empty() {
        return;
    }
    let (w, _) = font::text_size(&p.title, s);
    let centre = (over.x0 + over.x1) / 2;
    let left = (centre - w / 2).max(over.x0.min(centre - w / 2).max(0));
    font::draw_aligned(
        cv,
        left,
        over.y0 + pad,
        &p.title,
        s,
        Color::DARK,
        (HAlign::Left, VAlign::Top),
        true,
    );
}

fn draw_legend(cv: &mut Canvas, entries: &[(String, Sample)], plot: Rect, pos: LegendPos, s: i64) {
    let pad = 3 * s;
    let row_h = (font::GLYPH_H + 3) * s;
    let sample_w = 12 * s + 4;
    let label_w = entries
        .iter()
        .map(|(l, _)| font::text_size(l, s).0)
        .max()
        .unwrap_or(0);
    let w = pad + sample_w + pad + label_w + pad;
    let h = pad + row_h * entries.len() as i64 - 3 * s + pad;
    let inset = 2 * s + 2;
    let x0 = match pos {
        LegendPos::UpperLeft | LegendPos::LowerLeft => plot.x0 + inset,
        _ => plot.x1 - inset - w,
    };
    let y0 = match pos {
        LegendPos::LowerLeft | LegendPos::LowerRight => plot.y1 - inset - h,
        _ => plot.y0 + inset,
    };
    cv.fill_rect(x0, y0, x0 + w, y0 + h, Color::WHITE);
    cv.outline_rect(x0, y0, x0 + w, y0 + h, Color::hex(0xBBBBBB));
    for (i, (label, sample)) in entries.iter().enumerate() {
        let top = y0 + pad + row_h * i as i64;
        let cy = top + font::CAP_H * s / 2;
        let (sx0, sx1) = (x0 + pad, x0 + pad + sample_w);
        match *sample {
            Sample::Line(c, width, style, marker) => {
                if style != LineStyle::None {
                    let mut dash = style.dash(width, s);
                    cv.line(
                        (sx0 as f64, cy as f64 + 0.5),
                        (sx1 as f64, cy as f64 + 0.5),
                        width,
                        c,
                        dash.as_mut(),
                    );
                }
                items::draw_marker(
                    cv,
                    marker,
                    (sx0 + sx1) as f64 / 2.0,
                    cy as f64 + 0.5,
                    s + 1,
                    c,
                    s,
                );
            }
            Sample::Patch(c) => {
                cv.fill_rect(sx0, top, sx1, top + font::CAP_H * s, c);
            }
        }
        font::draw(cv, sx1 + pad, top, label, s, Color::DARK);
    }
}
