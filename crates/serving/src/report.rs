//! Automated reports: a report YAML names metrics of the semantic layer with their parameters
//! and charts; running it renders one self-contained HTML file (inline CSS and SVG, no script)
//! and one CSV per section. `strata report run` writes them to a folder; `serve analytics`
//! can run reports on a schedule and write them to the lake under `reports/date=<day>/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::{Result, ServingError};
use crate::format::{Format, encode, json_rows};
use crate::server::AnalyticsApi;
use crate::svg::{ChartKind, cell, chart, escape};

/// A report.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSpec {
    /// The report's name: its file names (`<name>.html`, `<name>-<section>.csv`).
    pub name: String,
    /// Its title.
    #[serde(default)]
    pub title: Option<String>,
    /// `from` / `to` given to every section whose metric has a time column.
    #[serde(default)]
    pub from: Option<String>,
    /// See `from`.
    #[serde(default)]
    pub to: Option<String>,
    /// The sections, in order.
    pub sections: Vec<Section>,
}

/// One section: a metric request, a chart and a table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// Heading.
    pub title: String,
    /// The metric.
    pub metric: String,
    /// Measures (all when empty).
    #[serde(default)]
    pub measures: Vec<String>,
    /// Dimensions and grains to group by.
    #[serde(default)]
    pub by: Vec<String>,
    /// `dimension: value` conditions.
    #[serde(default, rename = "where")]
    pub conditions: IndexMap<String, String>,
    /// Named filters.
    #[serde(default)]
    pub filters: Vec<String>,
    /// Rows at most.
    #[serde(default)]
    pub limit: Option<usize>,
    /// The chart, if any.
    #[serde(default)]
    pub chart: Option<ChartSpec>,
}

/// A section's chart.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChartSpec {
    /// `line` or `bar`.
    #[serde(rename = "type", default = "line")]
    pub kind: ChartKind,
    /// The x column (default: the first `by`).
    #[serde(default)]
    pub x: Option<String>,
    /// The y column (default: the first measure).
    #[serde(default)]
    pub y: Option<String>,
    /// One series per value of this column.
    #[serde(default)]
    pub split: Option<String>,
}

fn line() -> ChartKind {
    ChartKind::Line
}

impl ReportSpec {
    /// Reads a report file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ServingError::config(path.display().to_string(), format!("cannot read: {e}"))
        })?;
        serde_yaml_ng::from_str(&text)
            .map_err(|e| ServingError::config(path.display().to_string(), e.to_string()))
    }
}

/// A rendered report: the HTML and one `(file name, CSV)` per section.
#[derive(Debug, Clone)]
pub struct RenderedReport {
    /// `<name>.html`.
    pub html_name: String,
    /// The page.
    pub html: String,
    /// `(<name>-<n>-<slug>.csv, bytes)`.
    pub csv: Vec<(String, Vec<u8>)>,
    /// Rows per section.
    pub rows: Vec<usize>,
}

fn slug(text: &str) -> String {
    let s: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s.split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// Runs every section of `spec` against `api` and renders the report.
pub async fn render(
    api: &AnalyticsApi,
    spec: &ReportSpec,
    generated_at: &str,
) -> Result<RenderedReport> {
    let caller = Caller::unrestricted("report");
    let title = spec.title.clone().unwrap_or_else(|| spec.name.clone());
    let mut body = String::new();
    let mut csv = Vec::new();
    let mut counts = Vec::new();
    for (i, section) in spec.sections.iter().enumerate() {
        let def = api.config().metrics.get(&section.metric).ok_or_else(|| {
            ServingError::config(
                format!("report {}: sections[{i}].metric", spec.name),
                format!("no metric `{}` in the serve config", section.metric),
            )
        })?;
        let mut pairs = Vec::new();
        if !section.measures.is_empty() {
            pairs.push(("measures".to_string(), section.measures.join(",")));
        }
        if !section.by.is_empty() {
            pairs.push(("by".to_string(), section.by.join(",")));
        }
        for (d, v) in &section.conditions {
            pairs.push(("where".to_string(), format!("{d}:{v}")));
        }
        if !section.filters.is_empty() {
            pairs.push(("filter".to_string(), section.filters.join(",")));
        }
        if def.time.is_some() {
            for (k, v) in [("from", &spec.from), ("to", &spec.to)] {
                if let Some(v) = v {
                    pairs.push((k.to_string(), v.clone()));
                }
            }
        }
        if let Some(l) = section.limit {
            pairs.push(("limit".to_string(), l.to_string()));
        }
        let (answer, facts) = api
            .metric_rows(&caller, &section.metric, &pairs)
            .await
            .map_err(|e| match e {
                ServingError::BadParameter { parameter, problem } => ServingError::config(
                    format!("report {}: sections[{i}] ({parameter})", spec.name),
                    problem,
                ),
                other => other,
            })?;
        let rows = match json_rows(&answer.batches) {
            Ok(Value::Array(rows)) => rows,
            _ => Vec::new(),
        };
        counts.push(rows.len());
        let csv_name = format!("{}-{}-{}.csv", spec.name, i + 1, slug(&section.title));
        csv.push((csv_name.clone(), encode(&answer, &facts, Format::Csv)?));
        let columns: Vec<String> = answer
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        body.push_str(&format!("<section><h2>{}</h2>", escape(&section.title)));
        if let Some(c) = &section.chart {
            let x =
                c.x.clone()
                    .or_else(|| section.by.first().cloned())
                    .unwrap_or_default();
            let measures: Vec<String> = def.measures.keys().cloned().collect();
            let y =
                c.y.clone()
                    .or_else(|| section.measures.first().cloned())
                    .or_else(|| measures.first().cloned())
                    .unwrap_or_default();
            body.push_str(&chart(c.kind, &rows, &x, &y, c.split.as_deref()));
        }
        body.push_str("<table><thead><tr>");
        for c in &columns {
            body.push_str(&format!("<th>{}</th>", escape(c)));
        }
        body.push_str("</tr></thead><tbody>");
        for row in rows.iter().take(500) {
            body.push_str("<tr>");
            for c in &columns {
                let v = &row[c.as_str()];
                let class = if v.is_number() { " class=num" } else { "" };
                body.push_str(&format!("<td{class}>{}</td>", escape(&cell(v))));
            }
            body.push_str("</tr>");
        }
        body.push_str("</tbody></table>");
        if rows.len() > 500 {
            body.push_str(&format!("<p>… {} rows in the CSV.</p>", rows.len()));
        }
        body.push_str(&format!(
            "<p class=meta><a href=\"{}\">CSV</a> · {} rows{} · snapshots {}</p><details><summary>SQL</summary><pre>{}</pre><p>parameters: {}</p></details></section>",
            escape(&csv_name),
            rows.len(),
            if facts.truncated { " (truncated)" } else { "" },
            escape(
                &facts
                    .snapshots
                    .iter()
                    .map(|(t, s)| format!("{t}@{}", s.map_or("none".into(), |s| s.to_string())))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            escape(facts.sql.as_deref().unwrap_or_default()),
            escape(&facts.params.join(", "))
        ));
    }
    let range = match (&spec.from, &spec.to) {
        (None, None) => String::new(),
        (f, t) => format!(
            " · from {} to {}",
            escape(f.as_deref().unwrap_or("the start")),
            escape(t.as_deref().unwrap_or("now"))
        ),
    };
    let html = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>{t}</title><style>\
         body{{font:14px system-ui,sans-serif;margin:2rem auto;max-width:960px;color:#1d2330}}\
         h1{{font-size:1.4rem}} h2{{font-size:1.05rem;margin-top:2rem}}\
         table{{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}}\
         th,td{{padding:.2rem .5rem;border-bottom:1px solid #eee;text-align:left}} td.num{{text-align:right}}\
         .meta{{color:#666;font-size:.8rem}} pre{{white-space:pre-wrap;font-size:.8rem;background:#f6f7f9;padding:.5rem}}\
         </style></head><body><h1>{t}</h1><p class=meta>generated {g}{range} by Strata</p>{body}</body></html>",
        t = escape(&title),
        g = escape(generated_at),
    );
    Ok(RenderedReport {
        html_name: format!("{}.html", spec.name),
        html,
        csv,
        rows: counts,
    })
}

/// Writes a rendered report into `dir` (created if needed); returns the HTML file.
pub fn write_to_dir(report: &RenderedReport, dir: &Path) -> Result<PathBuf> {
    let io = |p: &Path, e: std::io::Error| ServingError::Lake {
        message: format!("writing {}: {e}", p.display()),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    for (name, bytes) in &report.csv {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| io(&p, e))?;
    }
    let p = dir.join(&report.html_name);
    std::fs::write(&p, &report.html).map_err(|e| io(&p, e))?;
    Ok(p)
}

/// `reports:` in the serve config: reports the API runs on a schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledReport {
    /// The report file (relative to the serve config).
    pub file: PathBuf,
    /// Seconds between runs (the first runs at start).
    pub every_seconds: u64,
}

/// Runs `reports` forever, each on its interval, writing into the lake under
/// `reports/date=<day>/<time>-<name>.html` (and its CSVs); failures are logged and retried on
/// the next tick, never fatal to the API.
pub async fn schedule(api: std::sync::Arc<AnalyticsApi>, reports: Vec<(ReportSpec, Duration)>) {
    let lake = match strata_layers::lake::Lake::open(&api.config().lake) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "scheduled reports: cannot open the lake; none will run");
            return;
        }
    };
    let tasks = reports.into_iter().map(|(spec, every)| {
        let api = api.clone();
        let lake = lake.clone();
        async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
            loop {
                tick.tick().await;
                let now = strata_runtime::catalog::rfc3339_millis(now_ms());
                let day = now.get(..10).unwrap_or("unknown").to_string();
                let stamp: String = now.chars().filter(|c| c.is_ascii_digit()).collect();
                match render(&api, &spec, &now).await {
                    Ok(report) => {
                        let dir = format!("reports/date={day}/{stamp}-{}", spec.name);
                        let mut files = report.csv.clone();
                        files.push((report.html_name.clone(), report.html.clone().into_bytes()));
                        for (name, bytes) in files {
                            let at = format!("{dir}/{name}");
                            if let Err(e) = lake.put_new(&at, bytes.into()).await {
                                tracing::warn!(report = %spec.name, file = %at, error = %e, "scheduled report not written");
                            }
                        }
                        tracing::info!(report = %spec.name, dir = %dir, "scheduled report written");
                    }
                    Err(e) => tracing::warn!(report = %spec.name, error = %e, "scheduled report failed"),
                }
            }
        }
    });
    futures::future::join_all(tasks).await;
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
