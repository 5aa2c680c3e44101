//! Charts for reports as inline SVG, drawn in Rust: a report is one self-contained HTML file
//! that any browser or mail client shows, with no script. Lines for ordered x values (time
//! grains), grouped bars for categories; one series per value of the split column.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;

const W: f64 = 720.0;
const H: f64 = 260.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 36.0;
const COLORS: [&str; 8] = [
    "#2759c4", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#5c940d",
];

/// How to draw a chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChartKind {
    /// Lines over ordered x values.
    Line,
    /// Grouped bars over categories.
    Bar,
}

/// Escapes text for HTML and SVG.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A cell as text (strings without quotes, null as empty).
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Draws `y` over `x` (one series per value of `split`) from JSON rows.
pub fn chart(kind: ChartKind, rows: &[Value], x: &str, y: &str, split: Option<&str>) -> String {
    let mut xs: Vec<String> = Vec::new();
    let mut series: BTreeMap<String, BTreeMap<usize, f64>> = BTreeMap::new();
    for row in rows {
        let xv = match cell(&row[x]) {
            v if v.is_empty() => "(none)".to_string(),
            v => v,
        };
        let i = match xs.iter().position(|v| *v == xv) {
            Some(i) => i,
            None => {
                xs.push(xv);
                xs.len() - 1
            }
        };
        let name = split.map_or_else(|| y.to_string(), |s| cell(&row[s]));
        let name = if name.is_empty() {
            "(none)".into()
        } else {
            name
        };
        if let Some(v) = number(&row[y]) {
            series.entry(name).or_default().insert(i, v);
        }
    }
    if xs.is_empty() || series.is_empty() {
        return "<p><em>no data</em></p>".into();
    }
    let max = series
        .values()
        .flat_map(|s| s.values())
        .fold(0.0_f64, |m, v| m.max(*v));
    let min = series
        .values()
        .flat_map(|s| s.values())
        .fold(0.0_f64, |m, v| m.min(*v));
    let span = if max - min > 0.0 { max - min } else { 1.0 };
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let ypos = |v: f64| TOP + plot_h - (v - min) / span * plot_h;
    let slot = plot_w / xs.len() as f64;
    let xpos = |i: usize| LEFT + slot * (i as f64 + 0.5);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}" font-family="sans-serif" font-size="11">"#,
        escape(y)
    );
    for k in 0..=4 {
        let v = min + span * f64::from(k) / 4.0;
        let yy = ypos(v);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e5e7eb"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            escape(&short(v))
        );
    }
    let every = (xs.len() / 6).max(1);
    for (i, label) in xs.iter().enumerate() {
        if i % every == 0 || i + 1 == xs.len() {
            let label: String = label.chars().take(16).collect();
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                xpos(i),
                H - BOTTOM + 16.0,
                escape(&label)
            );
        }
    }
    let n = series.len();
    for (s, (name, points)) in series.iter().enumerate() {
        let color = COLORS[s % COLORS.len()];
        match kind {
            ChartKind::Line => {
                let path: Vec<String> = points
                    .iter()
                    .map(|(i, v)| format!("{:.1},{:.1}", xpos(*i), ypos(*v)))
                    .collect();
                let _ = write!(
                    svg,
                    r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
                    path.join(" ")
                );
                for (i, v) in points {
                    let _ = write!(
                        svg,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{color}"><title>{}: {}</title></circle>"#,
                        xpos(*i),
                        ypos(*v),
                        escape(&xs[*i]),
                        short(*v)
                    );
                }
            }
            ChartKind::Bar => {
                let bar = slot * 0.8 / n as f64;
                for (i, v) in points {
                    let x0 = LEFT + slot * *i as f64 + slot * 0.1 + bar * s as f64;
                    let (top, bottom) = (ypos(v.max(0.0)), ypos(v.min(0.0)));
                    let _ = write!(
                        svg,
                        r#"<rect x="{x0:.1}" y="{top:.1}" width="{bar:.1}" height="{:.1}" fill="{color}"><title>{}: {}</title></rect>"#,
                        (bottom - top).max(0.5),
                        escape(&xs[*i]),
                        short(*v)
                    );
                }
            }
        }
        let ly = TOP + 14.0 * s as f64 + 8.0;
        let _ = write!(
            svg,
            r#"<rect x="{}" y="{:.1}" width="10" height="10" fill="{color}"/><text x="{}" y="{:.1}">{}</text>"#,
            W - RIGHT + 12.0,
            ly - 8.0,
            W - RIGHT + 26.0,
            ly + 1.0,
            escape(&name.chars().take(20).collect::<String>())
        );
    }
    svg.push_str("</svg>");
    svg
}

fn short(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_series_per_split_value_and_text_is_escaped() {
        let rows = vec![
            json!({"day": "2025-11-20", "site": "SP<1>", "n": 3}),
            json!({"day": "2025-11-21", "site": "SP<1>", "n": 5}),
            json!({"day": "2025-11-20", "site": "RJ", "n": 2}),
        ];
        let svg = chart(ChartKind::Line, &rows, "day", "n", Some("site"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("SP&lt;1&gt;") && !svg.contains("SP<1>"));
        let bars = chart(ChartKind::Bar, &rows, "site", "n", None);
        assert_eq!(bars.matches("<rect").count(), 2 + 1);
        assert!(chart(ChartKind::Line, &[], "d", "n", None).contains("no data"));
    }
}
