//! Plot items other than colour-mapped ones: series, histograms, reference lines, shapes and
//! text, with their builder-style setters and drawing code.

use super::canvas::{Canvas, Dash};
use super::color::Color;
use super::figure::{Ctx, Span};
use super::font::{self, HAlign, VAlign};

/// A number that can be plotted; implemented for the primitive integer and float types.
pub trait PlotValue: Copy {
    /// The value as `f64` (may be non-finite; such points are skipped).
    fn to_f64(self) -> f64;
}

macro_rules! plot_value {
    ($($t:ty),*) => {$(
        impl PlotValue for $t {
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    )*};
}
plot_value!(f32, f64, i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

/// Copies plot values into `f64`.
pub(super) fn to_vec<T: PlotValue>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

/// Axis scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scale {
    /// Linear.
    #[default]
    Linear,
    /// Base-10 logarithmic; zero and negative values are skipped.
    Log10,
}

impl Scale {
    /// Whether `v` can be shown on this scale.
    #[inline]
    pub(super) fn valid(self, v: f64) -> bool {
        v.is_finite() && (self == Scale::Linear || v > 0.0)
    }
    /// Into the scale's linear space.
    #[inline]
    pub(super) fn fwd(self, v: f64) -> f64 {
        match self {
            Scale::Linear => v,
            Scale::Log10 => v.log10(),
        }
    }
    /// Back from the scale's linear space.
    #[inline]
    pub(super) fn inv(self, t: f64) -> f64 {
        match self {
            Scale::Linear => t,
            Scale::Log10 => 10f64.powf(t),
        }
    }
}

/// Marker shape for scatter points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Marker {
    /// No marker.
    #[default]
    None,
    /// Filled circle.
    Circle,
    /// Filled square.
    Square,
    /// Diagonal cross (x).
    Cross,
    /// Upright cross (+).
    Plus,
    /// Filled diamond.
    Diamond,
    /// Filled upward triangle.
    Triangle,
}

/// Line style.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LineStyle {
    /// No line (markers only).
    None,
    /// Solid.
    #[default]
    Solid,
    /// Dashed.
    Dashed,
    /// Dotted.
    Dotted,
}

impl LineStyle {
    pub(super) fn dash(self, width: i64, s: i64) -> Option<Dash> {
        match self {
            LineStyle::Dashed => Some(Dash {
                on: 5.0 * s as f64 + width as f64,
                off: 3.0 * s as f64 + width as f64,
                phase: 0.0,
            }),
            LineStyle::Dotted => Some(Dash {
                on: width as f64,
                off: width as f64 + s as f64 + 1.0,
                phase: 0.0,
            }),
            _ => None,
        }
    }
}

/// A data series: a polyline, markers, or both, optionally with error bars. Made by
/// [`Panel::line`](super::Panel::line), [`Panel::scatter`](super::Panel::scatter) and
/// [`Panel::errorbar`](super::Panel::errorbar). Points where x or y is non-finite (or not
/// positive on a log axis) are skipped and break the line.
#[derive(Clone, Debug)]
pub struct Series {
    pub(super) x: Vec<f64>,
    pub(super) y: Vec<f64>,
    pub(super) xerr: Option<Vec<f64>>,
    pub(super) yerr: Option<Vec<f64>>,
    pub(super) color: Option<Color>,
    pub(super) width: Option<i64>,
    pub(super) style: LineStyle,
    pub(super) marker: Marker,
    pub(super) marker_size: Option<i64>,
    pub(super) label: Option<String>,
}

impl Series {
    pub(super) fn new(x: Vec<f64>, y: Vec<f64>, style: LineStyle, marker: Marker) -> Series {
        Series {
            x,
            y,
            xerr: None,
            yerr: None,
            color: None,
            width: None,
            style,
            marker,
            marker_size: None,
            label: None,
        }
    }
    /// Sets the colour (default: the next palette colour of the panel).
    pub fn color(&mut self, c: Color) -> &mut Self {
        self.color = Some(c);
        self
    }
    /// Sets the line width in pixels (default: the font scale, 2 on most figures).
    pub fn width(&mut self, px: u32) -> &mut Self {
        self.width = Some(i64::from(px.clamp(1, 50)));
        self
    }
    /// Sets the line style; [`LineStyle::None`] draws markers only.
    pub fn style(&mut self, style: LineStyle) -> &mut Self {
        self.style = style;
        self
    }
    /// Dashed line (shorthand for `style(LineStyle::Dashed)`).
    pub fn dashed(&mut self) -> &mut Self {
        self.style(LineStyle::Dashed)
    }
    /// Sets the marker drawn at each point.
    pub fn marker(&mut self, m: Marker) -> &mut Self {
        self.marker = m;
        self
    }
    /// Sets the marker radius in pixels (default: font scale + 1).
    pub fn marker_size(&mut self, radius_px: u32) -> &mut Self {
        self.marker_size = Some(i64::from(radius_px.min(100)));
        self
    }
    /// Sets the legend label.
    pub fn label(&mut self, text: &str) -> &mut Self {
        self.label = Some(text.to_string());
        self
    }
    /// Symmetric y error bars, one per point (missing or non-finite ones are not drawn).
    pub fn yerr<T: PlotValue>(&mut self, err: &[T]) -> &mut Self {
        self.yerr = Some(to_vec(err));
        self
    }
    /// Symmetric x error bars, one per point (missing or non-finite ones are not drawn).
    pub fn xerr<T: PlotValue>(&mut self, err: &[T]) -> &mut Self {
        self.xerr = Some(to_vec(err));
        self
    }

    pub(super) fn bounds(&self, ctx: &Ctx, xs: &mut Span, ys: &mut Span) {
        let (sx, sy) = (ctx.xscale, ctx.yscale);
        for i in 0..self.x.len().min(self.y.len()) {
            let (x, y) = (self.x[i], self.y[i]);
            if !(sx.valid(x) && sy.valid(y)) {
                continue;
            }
            xs.add(x);
            ys.add(y);
            if let Some(e) = self.yerr.as_ref().and_then(|e| e.get(i)) {
                for v in [y - e.abs(), y + e.abs()] {
                    if sy.valid(v) {
                        ys.add(v);
                    }
                }
            }
            if let Some(e) = self.xerr.as_ref().and_then(|e| e.get(i)) {
                for v in [x - e.abs(), x + e.abs()] {
                    if sx.valid(v) {
                        xs.add(v);
                    }
                }
            }
        }
    }

    pub(super) fn draw(&self, cv: &mut Canvas, ctx: &Ctx, color: Color) {
        let s = ctx.s;
        let w = self.width.unwrap_or(s);
        let n = self.x.len().min(self.y.len());
        let pt =
            |i: usize| -> Option<(f64, f64)> { Some((ctx.x.px(self.x[i])?, ctx.y.px(self.y[i])?)) };
        if self.style != LineStyle::None {
            let mut dash = self.style.dash(w, s);
            let mut prev: Option<(f64, f64)> = None;
            for i in 0..n {
                let p = pt(i);
                if let (Some(a), Some(b)) = (prev, p) {
                    cv.line(a, b, w, color, dash.as_mut());
                }
                prev = p;
            }
        }
        let r = self.marker_size.unwrap_or(s + 1);
        let ew = (s / 2).max(1);
        let cap = if self.marker == Marker::None {
            s + 2
        } else {
            r + 1
        } as f64;
        for i in 0..n {
            let Some((px, py)) = pt(i) else { continue };
            if let Some(e) = self.yerr.as_ref().and_then(|e| e.get(i))
                && e.is_finite()
            {
                let y = self.y[i];
                let lo = ctx.y.px(y - e.abs()).unwrap_or(ctx.rect.y1 as f64 + 1.0);
                let hi = ctx.y.px(y + e.abs()).unwrap_or(ctx.rect.y0 as f64 - 1.0);
                cv.line((px, lo), (px, hi), ew, color, None);
                cv.line((px - cap, lo), (px + cap, lo), ew, color, None);
                cv.line((px - cap, hi), (px + cap, hi), ew, color, None);
            }
            if let Some(e) = self.xerr.as_ref().and_then(|e| e.get(i))
                && e.is_finite()
            {
                let x = self.x[i];
                let lo = ctx.x.px(x - e.abs()).unwrap_or(ctx.rect.x0 as f64 - 1.0);
                let hi = ctx.x.px(x + e.abs()).unwrap_or(ctx.rect.x1 as f64 + 1.0);
                cv.line((lo, py), (hi, py), ew, color, None);
                cv.line((lo, py - cap), (lo, py + cap), ew, color, None);
                cv.line((hi, py - cap), (hi, py + cap), ew, color, None);
            }
            draw_marker(cv, self.marker, px, py, r, color, s);
        }
    }
}

/// Draws one marker of radius `r` pixels centred at (x, y).
pub(super) fn draw_marker(cv: &mut Canvas, m: Marker, x: f64, y: f64, r: i64, c: Color, s: i64) {
    let rf = r as f64;
    let lw = (s / 2).max(1) + 1;
    let mut buf = Vec::new();
    match m {
        Marker::None => {}
        Marker::Circle => cv.disc(x, y, rf + 0.5, c),
        Marker::Square => {
            let (xi, yi) = (x.floor() as i64, y.floor() as i64);
            cv.fill_rect(xi - r, yi - r, xi + r + 1, yi + r + 1, c);
        }
        Marker::Cross => {
            cv.line((x - rf, y - rf), (x + rf, y + rf), lw, c, None);
            cv.line((x - rf, y + rf), (x + rf, y - rf), lw, c, None);
        }
        Marker::Plus => {
            cv.line((x - rf - 1.0, y), (x + rf + 1.0, y), lw, c, None);
            cv.line((x, y - rf - 1.0), (x, y + rf + 1.0), lw, c, None);
        }
        Marker::Diamond => {
            let d = rf + 1.5;
            let pts = [(x, y - d), (x + d, y), (x, y + d), (x - d, y)];
            cv.fill_polygon(&pts, c, &mut buf);
        }
        Marker::Triangle => {
            let d = rf + 1.5;
            let pts = [(x, y - d), (x + d, y + d * 0.8), (x - d, y + d * 0.8)];
            cv.fill_polygon(&pts, c, &mut buf);
        }
    }
}

/// A histogram from bin edges and per-bin values: a step outline
/// ([`Panel::hist`](super::Panel::hist)) or filled bars ([`Panel::bars`](super::Panel::bars)).
/// Bins with a non-finite value are left out; on a log y axis bins of zero or less drop to the
/// bottom of the panel.
#[derive(Clone, Debug)]
pub struct Hist {
    pub(super) edges: Vec<f64>,
    pub(super) counts: Vec<f64>,
    pub(super) color: Option<Color>,
    pub(super) width: Option<i64>,
    pub(super) filled: bool,
    pub(super) edge_color: Option<Color>,
    pub(super) label: Option<String>,
}

impl Hist {
    pub(super) fn new(edges: Vec<f64>, counts: Vec<f64>, filled: bool) -> Hist {
        Hist {
            edges,
            counts,
            color: None,
            width: None,
            filled,
            edge_color: None,
            label: None,
        }
    }
    /// Sets the colour (default: the next palette colour of the panel).
    pub fn color(&mut self, c: Color) -> &mut Self {
        self.color = Some(c);
        self
    }
    /// Sets the outline width in pixels (default: the font scale).
    pub fn width(&mut self, px: u32) -> &mut Self {
        self.width = Some(i64::from(px.clamp(1, 50)));
        self
    }
    /// Fills the bars (`true`) or draws only the step outline (`false`).
    pub fn filled(&mut self, filled: bool) -> &mut Self {
        self.filled = filled;
        self
    }
    /// Draws an outline of this colour around each filled bar.
    pub fn edge_color(&mut self, c: Color) -> &mut Self {
        self.edge_color = Some(c);
        self
    }
    /// Sets the legend label.
    pub fn label(&mut self, text: &str) -> &mut Self {
        self.label = Some(text.to_string());
        self
    }

    fn nbins(&self) -> usize {
        self.counts.len().min(self.edges.len().saturating_sub(1))
    }

    pub(super) fn bounds(&self, ctx: &Ctx, xs: &mut Span, ys: &mut Span) {
        let mut any = false;
        for i in 0..self.nbins() {
            let (a, b, c) = (self.edges[i], self.edges[i + 1], self.counts[i]);
            if !(ctx.xscale.valid(a) && ctx.xscale.valid(b) && c.is_finite()) {
                continue;
            }
            xs.add_sticky(a);
            xs.add_sticky(b);
            any = true;
            if ctx.yscale.valid(c) {
                ys.add(c);
            }
        }
        if any && ctx.yscale == super::Scale::Linear {
            // Bars start at zero, and the axis should too, without a margin below.
            ys.add_sticky(0.0);
        }
    }

    pub(super) fn draw(&self, cv: &mut Canvas, ctx: &Ctx, color: Color) {
        let s = ctx.s;
        let w = self.width.unwrap_or(s);
        let (top, bottom) = (ctx.rect.y0 as f64 - 2.0, ctx.rect.y1 as f64 + 2.0);
        let base = match ctx.yscale {
            super::Scale::Linear => ctx.y.px(0.0).unwrap_or(bottom),
            super::Scale::Log10 => {
                if ctx.y.inverted {
                    top
                } else {
                    bottom
                }
            }
        }
        .clamp(top, bottom);
        let ypx = |c: f64| -> f64 {
            match ctx.y.px(c) {
                Some(p) => p.clamp(top - 1e4, bottom + 1e4),
                None => base,
            }
        };
        let mut buf = Vec::new();
        // Step outline, in runs of consecutive drawable bins.
        let mut prev: Option<(f64, f64)> = None; // (right edge px, level px) of previous bin
        for i in 0..self.nbins() {
            let (a, b, c) = (self.edges[i], self.edges[i + 1], self.counts[i]);
            let xa = ctx.x.px(a);
            let xb = ctx.x.px(b);
            let (Some(xa), Some(xb)) = (xa, xb) else {
                if let Some((px, lv)) = prev.take()
                    && !self.filled
                {
                    cv.line((px, lv), (px, base), w, color, None);
                }
                continue;
            };
            if !c.is_finite() {
                if let Some((px, lv)) = prev.take()
                    && !self.filled
                {
                    cv.line((px, lv), (px, base), w, color, None);
                }
                continue;
            }
            let lv = ypx(c);
            if self.filled {
                let pts = [(xa, base), (xb, base), (xb, lv), (xa, lv)];
                cv.fill_polygon(&pts, color, &mut buf);
                if let Some(ec) = self.edge_color {
                    cv.outline_polygon(&pts, (w / 2).max(1), ec);
                }
            } else {
                let from = match prev {
                    Some((px, plv)) if (px - xa).abs() < 0.5 => plv,
                    Some((px, plv)) => {
                        cv.line((px, plv), (px, base), w, color, None);
                        base
                    }
                    None => base,
                };
                cv.line((xa, from), (xa, lv), w, color, None);
                cv.line((xa, lv), (xb, lv), w, color, None);
            }
            prev = Some((xb, lv));
        }
        if let Some((px, lv)) = prev
            && !self.filled
        {
            cv.line((px, lv), (px, base), w, color, None);
        }
    }
}

/// A horizontal or vertical reference line across the whole panel
/// ([`Panel::hline`](super::Panel::hline), [`Panel::vline`](super::Panel::vline)). Default:
/// dark grey, dashed, 1 pixel per font scale.
#[derive(Clone, Debug)]
pub struct RefLine {
    pub(super) horizontal: bool,
    pub(super) value: f64,
    pub(super) color: Color,
    pub(super) width: Option<i64>,
    pub(super) style: LineStyle,
    pub(super) label: Option<String>,
}

impl RefLine {
    pub(super) fn new(horizontal: bool, value: f64) -> RefLine {
        RefLine {
            horizontal,
            value,
            color: Color::hex(0x555555),
            width: None,
            style: LineStyle::Dashed,
            label: None,
        }
    }
    /// Sets the colour.
    pub fn color(&mut self, c: Color) -> &mut Self {
        self.color = c;
        self
    }
    /// Sets the width in pixels.
    pub fn width(&mut self, px: u32) -> &mut Self {
        self.width = Some(i64::from(px.clamp(1, 50)));
        self
    }
    /// Sets the line style.
    pub fn style(&mut self, style: LineStyle) -> &mut Self {
        self.style = style;
        self
    }
    /// Sets the legend label.
    pub fn label(&mut self, text: &str) -> &mut Self {
        self.label = Some(text.to_string());
        self
    }

    pub(super) fn bounds(&self, ctx: &Ctx, xs: &mut Span, ys: &mut Span) {
        if self.horizontal && ctx.yscale.valid(self.value) {
            ys.add(self.value);
        } else if !self.horizontal && ctx.xscale.valid(self.value) {
            xs.add(self.value);
        }
    }

    pub(super) fn draw(&self, cv: &mut Canvas, ctx: &Ctx) {
        let w = self.width.unwrap_or((ctx.s / 2).max(1));
        let r = ctx.rect;
        let mut dash = self.style.dash(w, ctx.s);
        if self.style == LineStyle::None {
            return;
        }
        if self.horizontal {
            if let Some(y) = ctx.y.px(self.value) {
                cv.line(
                    (r.x0 as f64, y),
                    (r.x1 as f64, y),
                    w,
                    self.color,
                    dash.as_mut(),
                );
            }
        } else if let Some(x) = ctx.x.px(self.value) {
            cv.line(
                (x, r.y1 as f64),
                (x, r.y0 as f64),
                w,
                self.color,
                dash.as_mut(),
            );
        }
    }
}

/// The geometry of a [`Shape`], in data coordinates.
#[derive(Clone, Debug)]
pub(super) enum ShapeKind {
    Polygon(Vec<[f64; 2]>),
    Ellipse {
        cx: f64,
        cy: f64,
        a: f64,
        b: f64,
        angle: f64,
    },
    Rect([f64; 4]),
    Segment([f64; 4]),
}

/// A shape in data coordinates: polygon, ellipse, circle, rectangle or line segment. By
/// default outlined in the next palette colour and not filled.
#[derive(Clone, Debug)]
pub struct Shape {
    pub(super) kind: ShapeKind,
    pub(super) fill: Option<Color>,
    pub(super) outline: Option<Color>,
    pub(super) outline_auto: bool,
    pub(super) width: Option<i64>,
    pub(super) style: LineStyle,
    pub(super) label: Option<String>,
}

impl Shape {
    pub(super) fn new(kind: ShapeKind) -> Shape {
        Shape {
            kind,
            fill: None,
            outline: None,
            outline_auto: true,
            width: None,
            style: LineStyle::Solid,
            label: None,
        }
    }
    /// Fills the shape with a colour.
    pub fn fill(&mut self, c: Color) -> &mut Self {
        self.fill = Some(c);
        self
    }
    /// Sets the outline colour.
    pub fn outline(&mut self, c: Color) -> &mut Self {
        self.outline = Some(c);
        self.outline_auto = false;
        self
    }
    /// Draws no outline (use with [`Shape::fill`]).
    pub fn no_outline(&mut self) -> &mut Self {
        self.outline = None;
        self.outline_auto = false;
        self
    }
    /// Sets the outline width in pixels.
    pub fn width(&mut self, px: u32) -> &mut Self {
        self.width = Some(i64::from(px.clamp(1, 50)));
        self
    }
    /// Sets the outline style.
    pub fn style(&mut self, style: LineStyle) -> &mut Self {
        self.style = style;
        self
    }
    /// Sets the legend label.
    pub fn label(&mut self, text: &str) -> &mut Self {
        self.label = Some(text.to_string());
        self
    }

    /// The outline as data-coordinate vertices (ellipses as 120-gons) and whether it is closed.
    fn vertices(&self) -> (Vec<[f64; 2]>, bool) {
        match &self.kind {
            ShapeKind::Polygon(p) => (p.clone(), true),
            ShapeKind::Ellipse {
                cx,
                cy,
                a,
                b,
                angle,
            } => {
                let (sn, cs) = angle.sin_cos();
                let n = 120;
                let v = (0..n)
                    .map(|i| {
                        let t = std::f64::consts::TAU * f64::from(i) / f64::from(n);
                        let (u, w) = (a * t.cos(), b * t.sin());
                        [cx + u * cs - w * sn, cy + u * sn + w * cs]
                    })
                    .collect();
                (v, true)
            }
            ShapeKind::Rect([x0, y0, x1, y1]) => {
                (vec![[*x0, *y0], [*x1, *y0], [*x1, *y1], [*x0, *y1]], true)
            }
            ShapeKind::Segment([x0, y0, x1, y1]) => (vec![[*x0, *y0], [*x1, *y1]], false),
        }
    }

    pub(super) fn bounds(&self, ctx: &Ctx, xs: &mut Span, ys: &mut Span) {
        for [x, y] in self.vertices().0 {
            if ctx.xscale.valid(x) && ctx.yscale.valid(y) {
                xs.add(x);
                ys.add(y);
            }
        }
    }

    pub(super) fn draw(&self, cv: &mut Canvas, ctx: &Ctx, auto: Color) {
        let (v, closed) = self.vertices();
        let pts: Option<Vec<(f64, f64)>> = v
            .iter()
            .map(|&[x, y]| Some((ctx.x.px(x)?, ctx.y.px(y)?)))
            .collect();
        let Some(pts) = pts else { return };
        if let (Some(c), true) = (self.fill, closed) {
            cv.fill_polygon(&pts, c, &mut Vec::new());
        }
        let outline = if self.outline_auto {
            Some(auto)
        } else {
            self.outline
        };
        if let (Some(c), true) = (outline, self.style != LineStyle::None) {
            let w = self.width.unwrap_or(ctx.s);
            let mut dash = self.style.dash(w, ctx.s);
            let n = pts.len();
            let segs = if closed { n } else { n.saturating_sub(1) };
            for i in 0..segs {
                cv.line(pts[i], pts[(i + 1) % n], w, c, dash.as_mut());
            }
        }
    }

    /// The colour shown in the legend.
    pub(super) fn legend_color(&self, auto: Color) -> Color {
        if self.outline_auto {
            auto
        } else {
            self.outline.or(self.fill).unwrap_or(auto)
        }
    }
}

/// A text label placed in data coordinates ([`Panel::text`](super::Panel::text)) or in
/// panel-fraction coordinates ([`Panel::note`](super::Panel::note)). Clipped to the panel.
#[derive(Clone, Debug)]
pub struct Text {
    pub(super) x: f64,
    pub(super) y: f64,
    pub(super) axes: bool,
    pub(super) text: String,
    pub(super) color: Color,
    pub(super) align: (HAlign, VAlign),
    pub(super) bold: bool,
}

impl Text {
    pub(super) fn new(x: f64, y: f64, axes: bool, text: &str, align: (HAlign, VAlign)) -> Text {
        Text {
            x,
            y,
            axes,
            text: text.to_string(),
            color: Color::DARK,
            align,
            bold: false,
        }
    }
    /// Sets the colour.
    pub fn color(&mut self, c: Color) -> &mut Self {
        self.color = c;
        self
    }
    /// Sets how the text sits relative to its anchor point.
    pub fn align(&mut self, h: HAlign, v: VAlign) -> &mut Self {
        self.align = (h, v);
        self
    }
    /// Draws the text in bold.
    pub fn bold(&mut self) -> &mut Self {
        self.bold = true;
        self
    }

    pub(super) fn draw(&self, cv: &mut Canvas, ctx: &Ctx) {
        let r = ctx.rect;
        let pos = if self.axes {
            if !(self.x.is_finite() && self.y.is_finite()) {
                return;
            }
            Some((
                r.x0 as f64 + self.x * r.w() as f64,
                r.y1 as f64 - self.y * r.h() as f64,
            ))
        } else {
            ctx.x.px(self.x).zip(ctx.y.px(self.y))
        };
        let Some((x, y)) = pos else { return };
        if !(x.abs() < 1e7 && y.abs() < 1e7) {
            return;
        }
        font::draw_aligned(
            cv,
            x.round() as i64,
            y.round() as i64,
            &self.text,
            ctx.s,
            self.color,
            self.align,
            self.bold,
        );
    }
}
