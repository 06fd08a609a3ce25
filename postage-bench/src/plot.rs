//! A small SVG line chart, enough for `scale`'s plot: a grid of charts,
//! each with a few series of (x, y) points, a linear or logarithmic x
//! axis and a y axis from zero.

use std::fmt::Write;

const WIDTH: f64 = 330.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 62.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 48.0;
/// The legend's row above the charts.
const LEGEND: f64 = 24.0;
/// Postage, then lapin.
const COLOURS: [&str; 2] = ["#1f77b4", "#d62728"];

/// One named curve.
pub(crate) struct Series {
    name: &'static str,
    colour: &'static str,
    points: Vec<(f64, f64)>,
}

impl Series {
    /// A curve drawn in the colour of side `side` (0 Postage, 1 lapin).
    pub(crate) fn new(name: &'static str, side: usize, points: Vec<(f64, f64)>) -> Self {
        Series {
            name,
            colour: COLOURS[side.min(COLOURS.len() - 1)],
            points,
        }
    }
}

/// One chart: a title, the x axis's label and scale, its curves.
pub(crate) struct Chart {
    title: &'static str,
    x_label: &'static str,
    log_x: bool,
    series: Vec<Series>,
}

impl Chart {
    pub(crate) fn new(
        title: &'static str,
        x_label: &'static str,
        log_x: bool,
        series: Vec<Series>,
    ) -> Self {
        Chart {
            title,
            x_label,
            log_x,
            series,
        }
    }

    fn x(&self, value: f64) -> f64 {
        if self.log_x {
            value.max(1e-9).log10()
        } else {
            value
        }
    }

    /// The chart's SVG, its top left corner at (`dx`, `dy`).
    fn draw(&self, dx: f64, dy: f64, out: &mut String) {
        let points = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x_min, mut x_max, mut y_max) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
        for &(x, y) in points {
            x_min = x_min.min(self.x(x));
            x_max = x_max.max(self.x(x));
            y_max = y_max.max(y);
        }
        if !self.log_x {
            // A linear axis from zero, its ticks at round numbers.
            x_min = 0.0;
            x_max = nice_ceiling(x_max);
        }
        if !x_min.is_finite() || x_max <= x_min {
            x_min = self.x(1.0).min(x_min);
            x_max = x_min + 1.0;
        }
        let y_max = nice_ceiling(y_max);
        let (w, h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
        let px = |x: f64| dx + LEFT + (self.x(x) - x_min) / (x_max - x_min) * w;
        let py = |y: f64| dy + TOP + h - y / y_max * h;
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-weight="bold">{}</text>"#,
            dx + LEFT,
            dy + 16.0,
            escape(self.title)
        );
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="{w:.1}" height="{h:.1}" fill="none" stroke="#999"/>"##,
            dx + LEFT,
            dy + TOP
        );
        // y ticks: 0, 1/4 ... y_max.
        for i in 0..=4 {
            let y = y_max * f64::from(i) / 4.0;
            let _ = writeln!(
                out,
                r##"<line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                dx + LEFT,
                dx + LEFT + w,
                py(y),
                py(y),
                dx + LEFT - 4.0,
                py(y) + 4.0,
                short(y)
            );
        }
        // x ticks: on a log axis the first series' x values, on a linear
        // one 0, 1/4 ... x_max.
        let ticks: Vec<f64> = if self.log_x {
            self.series
                .first()
                .map(|first| first.points.iter().map(|p| p.0).collect())
                .unwrap_or_default()
        } else {
            (0..=4).map(|i| x_max * f64::from(i) / 4.0).collect()
        };
        for x in ticks {
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                px(x),
                dy + TOP + h + 14.0,
                short(x)
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            dx + LEFT + w / 2.0,
            dy + TOP + h + 32.0,
            escape(self.x_label)
        );
        for series in &self.series {
            let path: Vec<String> = series
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
                series.colour,
                path.join(" ")
            );
            for &(x, y) in &series.points {
                let _ = writeln!(
                    out,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"/>"#,
                    px(x),
                    py(y),
                    series.colour
                );
            }
        }
    }
}

/// `charts` in rows of `columns`, as one SVG document.
pub(crate) fn grid(charts: &[Chart], columns: usize) -> String {
    let columns = columns.max(1);
    let rows = charts.len().div_ceil(columns);
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{:.0}" height="{:.0}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
"#,
        WIDTH * columns as f64,
        LEGEND + HEIGHT * rows as f64
    );
    // One legend for all: every chart draws the same sides in the same
    // colours.
    if let Some(first) = charts.first() {
        for (i, series) in first.series.iter().enumerate() {
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="16" fill="{}" font-weight="bold">{}</text>"#,
                LEFT + 90.0 * i as f64,
                series.colour,
                escape(series.name)
            );
        }
    }
    for (i, chart) in charts.iter().enumerate() {
        let (col, row) = (i % columns, i / columns);
        chart.draw(WIDTH * col as f64, LEGEND + HEIGHT * row as f64, &mut out);
    }
    out.push_str("</svg>\n");
    out
}

/// The smallest of 1, 2, 2.5, 5 times a power of ten at or above `y`.
fn nice_ceiling(y: f64) -> f64 {
    if y <= 0.0 || !y.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(y.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&c| c >= y)
        .unwrap_or(10.0 * power)
}

/// 1200 as "1.2k", 3,500,000 as "3.5M".
fn short(v: f64) -> String {
    let (scaled, unit) = if v.abs() >= 1e6 {
        (v / 1e6, "M")
    } else if v.abs() >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let text = format!("{scaled:.1}");
    format!("{}{unit}", text.trim_end_matches(".0"))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;")
}
