//! Dependency-free SVG plots: line charts (training curves) and ROC / precision-recall panels.
//!
//! The writers return the SVG document as a `String` (write it with `std::fs::write`). All text is
//! XML-escaped; non-finite points are skipped; degenerate inputs (no series, no points, a single
//! point, constant values) render a valid, if empty, chart rather than panicking.
//!
//! The curve helpers follow [`crate::train::metrics`]: a label is positive when non-zero and a NaN
//! score ranks lowest. The trapezoidal area under [`roc_curve`] equals
//! [`auroc`](crate::train::metrics::auroc) and the area under [`pr_curve`] equals
//! [`auprc`](crate::train::metrics::auprc) (average precision).

use std::fmt::Write as _;

/// One named line of a [`line_chart`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// `(x, y)` points, drawn in the given order; non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series from a name and its points.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
        }
    }
}

/// Matplotlib's "tab10" palette; series past the tenth reuse it with a dash pattern.
const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];
const DASHES: [&str; 4] = ["", "6 3", "2 3", "8 3 2 3"];

/// Approximate advance of one character of the 12 px sans-serif font, in px.
const CHAR_W: f64 = 7.0;
/// Longest legend label shown in full; longer ones are cut with an ellipsis.
const MAX_LEGEND_CHARS: usize = 40;

/// A line chart of one or more series, with ~5 ticks per axis, grid lines and a legend on the right.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let lines: Vec<Line<'_>> = series
        .iter()
        .enumerate()
        .map(|(i, s)| Line {
            name: &s.name,
            points: &s.points,
            color: PALETTE[i % PALETTE.len()],
            dash: DASHES[(i / PALETTE.len()) % DASHES.len()],
            width: 1.8,
        })
        .collect();
    let panel = Panel {
        title,
        x_label,
        y_label,
        lines: &lines,
        x_range: None,
        y_range: None,
        plot_w: 480.0,
        plot_h: 300.0,
        legend: Legend::Right,
    };
    let (w, h) = panel.size();
    let mut out = svg_open(w, h);
    panel.render(&mut out, 0.0, 0);
    out.push_str("</svg>\n");
    out
}

/// ROC curve points `(false-positive rate, true-positive rate)`, from (0, 0) to (1, 1), one point
/// per distinct score (tied scores give one diagonal step); `[(0, 0), (1, 1)]` when only one class
/// is present (or the input is empty).
///
/// # Panics
/// If `scores` and `labels` differ in length.
pub fn roc_curve(scores: &[f64], labels: &[u32]) -> Vec<(f64, f64)> {
    let (groups, pos, neg) = ranked(scores, labels);
    if pos == 0 || neg == 0 {
        return vec![(0.0, 0.0), (1.0, 1.0)];
    }
    let mut pts = Vec::with_capacity(groups.len() + 1);
    pts.push((0.0, 0.0));
    let (mut tp, mut fp) = (0u64, 0u64);
    for (p, n) in groups {
        tp += p;
        fp += n;
        pts.push((fp as f64 / neg as f64, tp as f64 / pos as f64));
    }
    pts
}

/// Precision-recall curve `(recall, precision)` as the step polyline of average precision: for
/// each distinct score (descending) a vertical move to its precision, then a horizontal move to
/// its recall, starting at recall 0; empty when there are no positives.
///
/// # Panics
/// If `scores` and `labels` differ in length.
pub fn pr_curve(scores: &[f64], labels: &[u32]) -> Vec<(f64, f64)> {
    let (groups, pos, _) = ranked(scores, labels);
    if pos == 0 {
        return Vec::new();
    }
    let mut pts: Vec<(f64, f64)> = Vec::with_capacity(2 * groups.len());
    let (mut tp, mut fp) = (0u64, 0u64);
    let mut prev_recall = 0.0;
    for (p, n) in groups {
        tp += p;
        fp += n;
        let precision = tp as f64 / (tp + fp) as f64;
        let recall = tp as f64 / pos as f64;
        for pt in [(prev_recall, precision), (recall, precision)] {
            if pts.last() != Some(&pt) {
                pts.push(pt);
            }
        }
        prev_recall = recall;
    }
    pts
}

/// Two panels side by side: the ROC curve with the chance diagonal, and the precision-recall
/// curve with the positive-rate baseline, titled with `auroc` / `auprc` to 4 decimals.
///
/// # Panics
/// If `scores` and `labels` differ in length.
pub fn roc_pr_svg(scores: &[f64], labels: &[u32], auroc: f64, auprc: f64) -> String {
    assert_eq!(
        scores.len(),
        labels.len(),
        "plot: scores have {} entries but labels have {}",
        scores.len(),
        labels.len()
    );
    let roc = roc_curve(scores, labels);
    let pr = pr_curve(scores, labels);
    let diagonal = [(0.0, 0.0), (1.0, 1.0)];
    let pos = labels.iter().filter(|&&y| y != 0).count();
    let rate = if labels.is_empty() {
        f64::NAN // no baseline to draw: the point is skipped
    } else {
        pos as f64 / labels.len() as f64
    };
    let baseline = [(0.0, rate), (1.0, rate)];
    let baseline_name = if rate.is_finite() {
        format!("positive rate ({rate:.3})")
    } else {
        "positive rate".to_string()
    };
    let chance = |name, points| Line {
        name,
        points,
        color: "#888888",
        dash: "5 4",
        width: 1.2,
    };
    let curve = |name, points| Line {
        name,
        points,
        color: PALETTE[0],
        dash: "",
        width: 2.0,
    };
    let roc_lines = [
        curve("classifier", &roc[..]),
        chance("chance", &diagonal[..]),
    ];
    let pr_lines = [
        curve("classifier", &pr[..]),
        chance(&baseline_name, &baseline[..]),
    ];
    let roc_title = format!("ROC (AUROC = {auroc:.4})");
    let pr_title = format!("Precision-recall (AUPRC = {auprc:.4})");
    let unit = Some((0.0, 1.0));
    let panels = [
        Panel {
            title: &roc_title,
            x_label: "False positive rate",
            y_label: "True positive rate",
            lines: &roc_lines,
            x_range: unit,
            y_range: unit,
            plot_w: 300.0,
            plot_h: 300.0,
            legend: Legend::InsideBottomRight,
        },
        Panel {
            title: &pr_title,
            x_label: "Recall",
            y_label: "Precision",
            lines: &pr_lines,
            x_range: unit,
            y_range: unit,
            plot_w: 300.0,
            plot_h: 300.0,
            legend: Legend::InsideBottomLeft,
        },
    ];
    let sizes: Vec<(f64, f64)> = panels.iter().map(Panel::size).collect();
    let w: f64 = sizes.iter().map(|s| s.0).sum();
    let h = sizes.iter().map(|s| s.1).fold(0.0, f64::max);
    let mut out = svg_open(w, h);
    let mut x0 = 0.0;
    for (i, (panel, size)) in panels.iter().zip(&sizes).enumerate() {
        panel.render(&mut out, x0, i);
        x0 += size.0;
    }
    out.push_str("</svg>\n");
    out
}

/// Scores ranked and grouped by equal score (see [`crate::train::metrics::ranked_groups`]).
fn ranked(scores: &[f64], labels: &[u32]) -> (Vec<(u64, u64)>, u64, u64) {
    crate::train::metrics::ranked_groups(scores, labels)
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

struct Line<'a> {
    name: &'a str,
    points: &'a [(f64, f64)],
    color: &'static str,
    dash: &'static str,
    width: f64,
}

#[derive(Clone, Copy, PartialEq)]
enum Legend {
    Right,
    InsideBottomRight,
    InsideBottomLeft,
}

struct Panel<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    lines: &'a [Line<'a>],
    x_range: Option<(f64, f64)>,
    y_range: Option<(f64, f64)>,
    plot_w: f64,
    plot_h: f64,
    legend: Legend,
}

const TOP: f64 = 40.0;
const BOTTOM: f64 = 52.0;
const RIGHT_PAD: f64 = 20.0;
const LEGEND_ROW: f64 = 18.0;

impl Panel<'_> {
    fn axes(&self) -> (Axis, Axis) {
        let finite = || {
            self.lines
                .iter()
                .flat_map(|l| l.points.iter())
                .filter(|p| p.0.is_finite() && p.1.is_finite())
        };
        // Whole-number data (epochs, steps, counts) gets whole-number ticks.
        let axis = |range: Option<(f64, f64)>, pick: fn(&(f64, f64)) -> f64| match range {
            Some((lo, hi)) => Axis::new(lo, hi, false),
            None => {
                let (lo, hi) = extent(finite().map(pick));
                let whole = finite()
                    .map(pick)
                    .all(|v| v.fract() == 0.0 && v.abs() < 9.0e15);
                Axis::new(lo, hi, whole && finite().next().is_some())
            }
        };
        let x = axis(self.x_range, |p| p.0);
        let y = axis(self.y_range, |p| p.1);
        (x, y)
    }

    fn left(&self, y: &Axis) -> f64 {
        let chars = y
            .labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(1);
        (32.0 + CHAR_W * chars as f64).max(58.0)
    }

    fn legend_width(&self) -> f64 {
        let chars = self
            .lines
            .iter()
            .map(|l| legend_label(l.name).chars().count())
            .max()
            .unwrap_or(0);
        30.0 + CHAR_W * chars as f64
    }

    fn size(&self) -> (f64, f64) {
        let (_, y) = self.axes();
        let mut w = self.left(&y) + self.plot_w + RIGHT_PAD;
        if self.legend == Legend::Right && !self.lines.is_empty() {
            w += self.legend_width() + 10.0;
        }
        let title_w = CHAR_W * 1.2 * self.title.chars().count() as f64 + 20.0;
        (w.max(title_w).ceil(), (TOP + self.plot_h + BOTTOM).ceil())
    }

    /// Writes the panel as one `<g>` translated to `x0`; `id` keeps clip-path ids unique.
    fn render(&self, out: &mut String, x0: f64, id: usize) {
        let (xa, ya) = self.axes();
        let left = self.left(&ya);
        let (pw, ph) = (self.plot_w, self.plot_h);
        let (px, py) = (left, TOP);
        let sx = |v: f64| px + xa.frac(v) * pw;
        let sy = |v: f64| py + ph - ya.frac(v) * ph;

        let _ = writeln!(out, r#"<g transform="translate({},0)">"#, num(x0));
        if !self.title.is_empty() {
            let _ = writeln!(
                out,
                r#"<text x="{}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
                num(px + pw / 2.0),
                escape(self.title)
            );
        }
        // Clip the data to the plot area (points are inside it unless a range was fixed), with a
        // margin so that lines and markers on the frame are drawn whole.
        let m = 4.0;
        let _ = writeln!(
            out,
            r#"<defs><clipPath id="genolm-plot-{id}"><rect x="{}" y="{}" width="{}" height="{}"/></clipPath></defs>"#,
            num(px - m),
            num(py - m),
            num(pw + 2.0 * m),
            num(ph + 2.0 * m)
        );
        // Grid.
        out.push_str(r##"<g stroke="#e6e6e6" stroke-width="1">"##);
        out.push('\n');
        for &t in &xa.ticks {
            let x = num(sx(t));
            let _ = writeln!(
                out,
                r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}"/>"#,
                num(py),
                num(py + ph)
            );
        }
        for &t in &ya.ticks {
            let y = num(sy(t));
            let _ = writeln!(
                out,
                r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}"/>"#,
                num(px),
                num(px + pw)
            );
        }
        out.push_str("</g>\n");
        // Ticks and their labels.
        out.push_str(r##"<g stroke="#333333" stroke-width="1">"##);
        out.push('\n');
        for &t in &xa.ticks {
            let x = num(sx(t));
            let _ = writeln!(
                out,
                r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}"/>"#,
                num(py + ph),
                num(py + ph + 5.0)
            );
        }
        for &t in &ya.ticks {
            let y = num(sy(t));
            let _ = writeln!(
                out,
                r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}"/>"#,
                num(px - 5.0),
                num(px)
            );
        }
        out.push_str("</g>\n");
        out.push_str(r##"<g fill="#333333">"##);
        out.push('\n');
        for (&t, label) in xa.ticks.iter().zip(&xa.labels) {
            let _ = writeln!(
                out,
                r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
                num(sx(t)),
                num(py + ph + 19.0),
                escape(label)
            );
        }
        for (&t, label) in ya.ticks.iter().zip(&ya.labels) {
            let _ = writeln!(
                out,
                r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
                num(px - 8.0),
                num(sy(t) + 4.0),
                escape(label)
            );
        }
        out.push_str("</g>\n");
        // Frame and axis labels.
        let _ = writeln!(
            out,
            r##"<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#333333" stroke-width="1"/>"##,
            num(px),
            num(py),
            num(pw),
            num(ph)
        );
        if !self.x_label.is_empty() {
            let _ = writeln!(
                out,
                r#"<text x="{}" y="{}" text-anchor="middle" font-size="13">{}</text>"#,
                num(px + pw / 2.0),
                num(py + ph + 40.0),
                escape(self.x_label)
            );
        }
        if !self.y_label.is_empty() {
            let (x, y) = (16.0, py + ph / 2.0);
            let _ = writeln!(
                out,
                r#"<text x="{x}" y="{}" text-anchor="middle" font-size="13" transform="rotate(-90 {x} {})">{}</text>"#,
                num(y),
                num(y),
                escape(self.y_label)
            );
        }
        // Data.
        let _ = writeln!(
            out,
            r#"<g fill="none" stroke-linejoin="round" stroke-linecap="round" clip-path="url(#genolm-plot-{id})">"#
        );
        for line in self.lines.iter().rev() {
            // Reversed so the first series is drawn on top.
            let pts: Vec<(f64, f64)> = line
                .points
                .iter()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .map(|&(x, y)| (sx(x), sy(y)))
                .collect();
            match pts.len() {
                0 => {}
                1 => {
                    let _ = writeln!(
                        out,
                        r#"<circle cx="{}" cy="{}" r="3" fill="{}" stroke="none"/>"#,
                        num(pts[0].0),
                        num(pts[0].1),
                        line.color
                    );
                }
                _ => {
                    let mut attr = String::new();
                    let mut last: Option<(f64, f64)> = None;
                    for (i, &(x, y)) in pts.iter().enumerate() {
                        // Thin points closer than 0.25 px to the last one drawn (keeps the end).
                        if let Some((lx, ly)) = last {
                            let near = (x - lx).abs() < 0.25 && (y - ly).abs() < 0.25;
                            if near && i + 1 < pts.len() {
                                continue;
                            }
                        }
                        if last.is_some() {
                            attr.push(' ');
                        }
                        let _ = write!(attr, "{},{}", num(x), num(y));
                        last = Some((x, y));
                    }
                    let _ = write!(
                        out,
                        r#"<polyline points="{attr}" stroke="{}" stroke-width="{}""#,
                        line.color,
                        num(line.width)
                    );
                    if !line.dash.is_empty() {
                        let _ = write!(out, r#" stroke-dasharray="{}""#, line.dash);
                    }
                    out.push_str("/>\n");
                }
            }
        }
        out.push_str("</g>\n");
        // Legend.
        if !self.lines.is_empty() {
            let lw = self.legend_width();
            let lh = LEGEND_ROW * self.lines.len() as f64 + 8.0;
            let (lx, ly) = match self.legend {
                Legend::Right => (px + pw + 14.0, py),
                Legend::InsideBottomRight => (px + pw - lw - 8.0, py + ph - lh - 8.0),
                Legend::InsideBottomLeft => (px + 8.0, py + ph - lh - 8.0),
            };
            let _ = writeln!(out, r#"<g transform="translate({},{})">"#, num(lx), num(ly));
            let _ = writeln!(
                out,
                r##"<rect width="{}" height="{}" fill="white" fill-opacity="0.85" stroke="#cccccc"/>"##,
                num(lw),
                num(lh)
            );
            for (i, line) in self.lines.iter().enumerate() {
                let y = 4.0 + LEGEND_ROW * (i as f64 + 0.5);
                let _ = write!(
                    out,
                    r#"<line x1="6" y1="{y}" x2="24" y2="{y}" stroke="{}" stroke-width="{}""#,
                    line.color,
                    num(line.width.max(2.0))
                );
                if !line.dash.is_empty() {
                    let _ = write!(out, r#" stroke-dasharray="{}""#, line.dash);
                }
                out.push_str("/>\n");
                let _ = writeln!(
                    out,
                    r#"<text x="30" y="{}">{}</text>"#,
                    num(y + 4.0),
                    escape(&legend_label(line.name))
                );
            }
            out.push_str("</g>\n");
        }
        out.push_str("</g>\n");
    }
}

fn svg_open(w: f64, h: f64) -> String {
    let (w, h) = (num(w), num(h));
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" \
         font-size=\"12\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n"
    )
}

/// A legend label, cut to [`MAX_LEGEND_CHARS`] characters.
fn legend_label(name: &str) -> String {
    if name.chars().count() <= MAX_LEGEND_CHARS {
        name.to_string()
    } else {
        let mut s: String = name.chars().take(MAX_LEGEND_CHARS - 1).collect();
        s.push('…');
        s
    }
}

/// `[min, max]` of finite values; `[0, 1]` when there are none.
fn extent(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        (0.0, 1.0)
    } else {
        (lo, hi)
    }
}

/// An axis: the drawn domain `[lo, hi]`, tick positions and their labels.
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    labels: Vec<String>,
}

impl Axis {
    /// An axis covering `[min, max]` (finite), widened to whole tick steps; a constant range is
    /// padded around its value; `integer` keeps tick steps whole numbers.
    fn new(min: f64, max: f64, integer: bool) -> Axis {
        let (mut min, mut max) = (min, max);
        let scale = min.abs().max(max.abs());
        if max - min <= 1e-9 * scale || max <= min {
            let c = 0.5 * min + 0.5 * max;
            let pad = if c == 0.0 { 1.0 } else { 0.1 * c.abs() };
            min = c - pad;
            max = c + pad;
        }
        if let Some(axis) = Axis::nice(min, max, integer) {
            return axis;
        }
        // Fallback for spans too wide for f64 arithmetic: ticks at the two ends.
        let ticks = vec![min, max];
        let labels = ticks.iter().map(|&v| format!("{v:.3e}")).collect();
        Axis {
            lo: min,
            hi: max,
            ticks,
            labels,
        }
    }

    fn nice(min: f64, max: f64, integer: bool) -> Option<Axis> {
        let raw = (max - min) / 5.0;
        if !(raw.is_finite() && raw > 0.0) {
            return None;
        }
        let mut exp = raw.log10().floor();
        let mut base = 10f64.powf(exp);
        let f = raw / base;
        let mut mult = if f < 1.5 {
            1.0
        } else if f < 2.25 {
            2.0
        } else if f < 3.5 {
            2.5
        } else if f < 7.5 {
            5.0
        } else {
            10.0
        };
        if integer && mult * base < 1.0 {
            (exp, base, mult) = (0.0, 1.0, 1.0);
        } else if integer && mult == 2.5 && exp == 0.0 {
            mult = 2.0;
        }
        let step = mult * base;
        let first = (min / step + 1e-9).floor();
        let last = (max / step - 1e-9).ceil();
        let count = last - first;
        if !(step.is_finite() && step > 0.0 && count.is_finite() && (1.0..=40.0).contains(&count)) {
            return None;
        }
        let (lo, hi) = (first * step, last * step);
        if !(lo.is_finite() && hi.is_finite()) {
            return None;
        }
        let ticks: Vec<f64> = (0..=count as usize)
            .map(|i| {
                let t = (first + i as f64) * step;
                if t.abs() < step * 1e-6 {
                    0.0
                } else {
                    t
                }
            })
            .collect();
        let (step_exp, mult_decimals) = match mult {
            10.0 => (exp as i32 + 1, 0),
            2.5 => (exp as i32, 1),
            _ => (exp as i32, 0),
        };
        let labels = tick_labels(&ticks, step, step_exp, mult_decimals);
        Some(Axis {
            lo,
            hi,
            ticks,
            labels,
        })
    }

    /// Position of `v` along the axis, 0 at `lo` and 1 at `hi` (halved to avoid overflow).
    fn frac(&self, v: f64) -> f64 {
        (0.5 * v - 0.5 * self.lo) / (0.5 * self.hi - 0.5 * self.lo)
    }
}

/// Labels for ticks at multiples of `step` (= m × 10^`step_exp`, m needing `mult_decimals`
/// decimals): fixed-point with just enough decimals, or scientific notation for very large or
/// small magnitudes.
fn tick_labels(ticks: &[f64], step: f64, step_exp: i32, mult_decimals: i32) -> Vec<String> {
    let biggest = ticks.iter().fold(0.0f64, |m, t| m.max(t.abs()));
    if biggest >= 1e6 || step < 1e-4 {
        ticks
            .iter()
            .map(|&t| {
                if t == 0.0 {
                    return "0".to_string();
                }
                let e = t.abs().log10().floor() as i32;
                let d = (e - step_exp + mult_decimals).clamp(0, 12) as usize;
                format!("{t:.d$e}")
            })
            .collect()
    } else {
        let d = (mult_decimals - step_exp).clamp(0, 12) as usize;
        ticks.iter().map(|&t| format!("{t:.d$}")).collect()
    }
}

/// A coordinate with at most two decimals, trailing zeros dropped.
fn num(v: f64) -> String {
    let mut s = format!("{v:.2}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" {
        s = "0".to_string();
    }
    s
}

/// Escapes XML special characters and drops characters XML 1.0 forbids.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice() {
        let a = Axis::new(0.0, 1.0, false);
        assert_eq!(a.labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let a = Axis::new(1.0, 97.0, false);
        assert_eq!(a.labels, ["0", "20", "40", "60", "80", "100"]);
        let a = Axis::new(0.21, 0.69, false);
        assert!((a.lo - 0.2).abs() < 1e-12 && (a.hi - 0.7).abs() < 1e-12);
        assert_eq!(a.labels.first().unwrap(), "0.2");
        assert_eq!(a.labels.last().unwrap(), "0.7");
        let a = Axis::new(0.0, 2e7, false);
        assert_eq!(a.labels[1], "5e6");
        let a = Axis::new(0.0, 3e-5, false);
        assert!(
            a.labels.iter().all(|l| l == "0" || l.contains('e')),
            "{:?}",
            a.labels
        );
        // Whole-number data: whole-number steps.
        assert_eq!(Axis::new(1.0, 2.0, true).labels, ["1", "2"]);
        assert_eq!(Axis::new(3.0, 3.0, true).labels, ["2", "3", "4"]);
        assert_eq!(
            Axis::new(0.0, 12.0, true).labels,
            ["0", "2", "4", "6", "8", "10", "12"]
        );
    }

    #[test]
    fn extreme_ranges_do_not_panic() {
        for (lo, hi) in [
            (-f64::MAX, f64::MAX),
            (0.0, f64::MAX),
            (1.0, 1.0 + 1e-15),
            (5.0, 5.0),
            (0.0, 0.0),
            (-1e-300, 1e-300),
            (f64::MIN_POSITIVE, 2.0 * f64::MIN_POSITIVE),
        ] {
            let a = Axis::new(lo, hi, false);
            assert!(
                a.lo.is_finite() && a.hi.is_finite() && a.lo < a.hi,
                "{lo} {hi}"
            );
            assert_eq!(a.ticks.len(), a.labels.len());
            assert!(a.frac(lo).is_finite() && a.frac(hi).is_finite());
        }
    }

    #[test]
    fn num_trims() {
        assert_eq!(num(1.0), "1");
        assert_eq!(num(1.5), "1.5");
        assert_eq!(num(-0.001), "0");
        assert_eq!(num(12.345), "12.35");
    }
}
