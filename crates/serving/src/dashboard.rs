//! The dashboard (the Looker role, as far as a library goes): a page at `/` with live-updating
//! charts of the semantic layer's metrics and a pipeline-health table from `/datasets`. The page,
//! its script and uPlot (vendored from npm by `scripts/dashboard-assets.sh`) are embedded in the
//! binary: no CDN and no Node at run time. The page holds no data; its script reads the API
//! with a key taken from the URL fragment (`/#key=…`, never sent to a server) or typed in.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::semantic::{GRAINS, MetricDef};

/// The page.
pub const INDEX_HTML: &str = include_str!("../assets/dashboard.html");
/// Its script.
pub const DASHBOARD_JS: &str = include_str!("../assets/dashboard.js");
/// uPlot 1.6 (MIT), minified.
pub const UPLOT_JS: &str = include_str!("../assets/uPlot.iife.min.js");
/// uPlot's stylesheet.
pub const UPLOT_CSS: &str = include_str!("../assets/uPlot.min.css");

/// `dashboard:` in the serve config.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    /// The page title.
    #[serde(default = "default_title")]
    pub title: String,
    /// Seconds between refreshes of every chart.
    #[serde(default = "default_refresh")]
    pub refresh_seconds: u32,
    /// The charts, in order.
    pub panels: Vec<Panel>,
}

/// One chart: a measure of a metric over a time grain, one line per value of `split`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Panel {
    /// The chart's title.
    pub title: String,
    /// The metric's name.
    pub metric: String,
    /// The measure drawn.
    pub measure: String,
    /// The time grain of the x axis.
    pub by: String,
    /// A dimension: one line per value.
    #[serde(default)]
    pub split: Option<String>,
}

fn default_title() -> String {
    "Strata".into()
}

fn default_refresh() -> u32 {
    5
}

impl DashboardConfig {
    /// Every panel that names something the metrics do not have.
    pub fn problems(&self, metrics: &IndexMap<String, MetricDef>) -> Vec<String> {
        let mut problems = Vec::new();
        if self.refresh_seconds == 0 {
            problems.push("dashboard.refresh_seconds: must be at least 1".to_string());
        }
        for (i, p) in self.panels.iter().enumerate() {
            let at = format!("dashboard.panels[{i}]");
            let Some(m) = metrics.get(&p.metric) else {
                problems.push(format!("{at}.metric: no metric `{}`", p.metric));
                continue;
            };
            if !m.measures.contains_key(&p.measure) {
                problems.push(format!(
                    "{at}.measure: `{}` has no measure `{}`",
                    p.metric, p.measure
                ));
            }
            if !GRAINS.contains(&p.by.as_str()) || m.time.is_none() {
                problems.push(format!(
                    "{at}.by: must be a time grain ({}) of a metric with a `time` column",
                    GRAINS.join(", ")
                ));
            }
            if let Some(s) = &p.split
                && !m.dimensions.contains_key(s)
            {
                problems.push(format!("{at}.split: `{}` has no dimension `{s}`", p.metric));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use crate::ServeConfig;

    #[test]
    fn panels_must_name_what_the_metrics_have() {
        let e = ServeConfig::from_yaml(
            r#"
auth: {open: true}
metrics:
  m: {table: gold.t, time: ts, measures: {n: {agg: count}}, dimensions: {site: site}}
dashboard:
  panels:
    - {title: ok, metric: m, measure: n, by: hour, split: site}
    - {title: a, metric: nope, measure: n, by: hour}
    - {title: b, metric: m, measure: sum, by: hour}
    - {title: c, metric: m, measure: n, by: site}
    - {title: d, metric: m, measure: n, by: day, split: city}
"#,
        )
        .unwrap_err()
        .to_string();
        for needle in [
            "panels[1].metric",
            "panels[2].measure",
            "panels[3].by",
            "panels[4].split",
        ] {
            assert!(e.contains(needle), "{needle} missing from {e}");
        }
        assert!(!e.contains("panels[0]"), "{e}");
    }
}
