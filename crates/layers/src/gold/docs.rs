//! `strata models docs`: one static HTML page (no script, no network) with every model, its
//! owner, tags, grain, materialisation, audits, columns with their descriptions, types and
//! lineage, and the DAG drawn as an SVG, wave by wave.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::dag::ModelGraph;
use super::incremental::{EPOCH, FAR_FUTURE};
use super::lineage::{ColumnLineage, column_lineage};
use super::model::GOLD;
use crate::error::Result;
use crate::silver::{SilverCatalog, session};

/// What the page shows of one model's table besides its file.
#[derive(Debug, Clone, Default)]
pub struct ModelFacts {
    /// `(column, type)` of the gold table, or of the planned output when known.
    pub columns: Vec<(String, String)>,
    /// Column lineage, when the model could be planned.
    pub lineage: Vec<ColumnLineage>,
    /// Rows of the published table, if it exists.
    pub rows: Option<u64>,
}

/// What the lake knows of each model: its gold table's columns and rows, and its lineage.
pub async fn model_facts(
    silver: &SilverCatalog,
    graph: &ModelGraph,
) -> Result<BTreeMap<String, ModelFacts>> {
    let gold = silver.in_namespace(GOLD).await?;
    let ctx = session(silver).await?;
    let mut facts = BTreeMap::new();
    for model in graph.models() {
        let mut f = ModelFacts::default();
        if let Ok(table) = gold.load(&model.name).await {
            if let Ok(schema) =
                iceberg::arrow::schema_to_arrow_schema(table.metadata().current_schema())
            {
                f.columns = schema
                    .fields()
                    .iter()
                    .map(|c| (c.name().clone(), c.data_type().to_string()))
                    .collect();
            }
            f.rows = table
                .metadata()
                .current_snapshot()
                .and_then(|s| s.summary().additional_properties.get("total-records"))
                .and_then(|r| r.parse().ok());
        }
        // A model over a gold table not built yet cannot be planned: no lineage until then.
        f.lineage = column_lineage(&ctx, &model.sql_for_interval(EPOCH, FAR_FUTURE))
            .await
            .unwrap_or_default();
        facts.insert(model.name.clone(), f);
    }
    Ok(facts)
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page for `graph`, with `facts` per model name.
pub fn docs_html(graph: &ModelGraph, facts: &BTreeMap<String, ModelFacts>) -> String {
    let mut page = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Strata models</title>\n<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}code{background:#f4f4f4}.tag{background:#e8eefc;border-radius:.3rem;padding:0 .3rem;margin-right:.2rem}</style></head><body>\n<h1>Models</h1>\n",
    );
    page.push_str(&dag_svg(graph));
    let _ = writeln!(page, "<nav><ul>");
    for m in graph.models() {
        let _ = writeln!(
            page,
            "<li><a href=\"#{0}\">{0}</a> — {1}</li>",
            esc(&m.name),
            esc(m.header.description.as_deref().unwrap_or(""))
        );
    }
    let _ = writeln!(page, "</ul></nav>");
    for m in graph.models() {
        let f = facts.get(&m.name).cloned().unwrap_or_default();
        let _ = writeln!(page, "<section id=\"{0}\"><h2>gold.{0}</h2>", esc(&m.name));
        if let Some(d) = &m.header.description {
            let _ = writeln!(page, "<p>{}</p>", esc(d));
        }
        let tags: String = m
            .header
            .tags
            .iter()
            .map(|t| format!("<span class=\"tag\">{}</span>", esc(t)))
            .collect();
        let reads: Vec<String> = m
            .upstream_models
            .iter()
            .map(|u| format!("<a href=\"#{0}\">gold.{0}</a>", esc(u)))
            .chain(
                m.upstream_tables
                    .iter()
                    .map(|t| format!("silver.{}", esc(t))),
            )
            .collect();
        let _ = writeln!(
            page,
            "<table><tr><th>kind</th><td>{:?}</td></tr><tr><th>owner</th><td>{}</td></tr><tr><th>tags</th><td>{tags}</td></tr><tr><th>grain</th><td>{}</td></tr><tr><th>materialization</th><td>{:?}</td></tr><tr><th>reads</th><td>{}</td></tr><tr><th>rows</th><td>{}</td></tr><tr><th>file</th><td><code>{}</code></td></tr><tr><th>audits</th><td>{}</td></tr></table>",
            m.header.kind,
            esc(m.header.owner.as_deref().unwrap_or("")),
            esc(&m.header.grain.join(", ")),
            m.header.materialization,
            reads.join(", "),
            f.rows
                .map(|r| r.to_string())
                .unwrap_or_else(|| "not built".into()),
            esc(&m.file.display().to_string()),
            esc(&m
                .audits
                .iter()
                .map(|a| a.name.clone())
                .collect::<Vec<_>>()
                .join("; ")),
        );
        let _ = writeln!(
            page,
            "<table><tr><th>column</th><th>type</th><th>description</th><th>from</th></tr>"
        );
        let mut names: Vec<(String, String)> = f.columns.clone();
        for c in m.header.columns.keys() {
            if !names.iter().any(|(n, _)| n == c) {
                names.push((c.clone(), String::new()));
            }
        }
        for (name, ty) in names {
            let from = f
                .lineage
                .iter()
                .find(|l| l.column == name)
                .map(|l| l.sources.join(", "))
                .unwrap_or_default();
            let _ = writeln!(
                page,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&name),
                esc(&ty),
                esc(m
                    .header
                    .columns
                    .get(&name)
                    .map(String::as_str)
                    .unwrap_or("")),
                esc(&from)
            );
        }
        let _ = writeln!(page, "</table></section>");
    }
    page.push_str("</body></html>\n");
    page
}

/// The DAG as boxes in wave columns with an arrow per dependency.
fn dag_svg(graph: &ModelGraph) -> String {
    const W: usize = 220;
    const H: usize = 44;
    let mut at: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let levels = graph.levels();
    for (x, level) in levels.iter().enumerate() {
        for (y, name) in level.iter().enumerate() {
            at.insert(name, (x * (W + 60) + 10, y * (H + 16) + 10));
        }
    }
    let width = levels.len() * (W + 60) + 20;
    let height = levels.iter().map(Vec::len).max().unwrap_or(1) * (H + 16) + 20;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"model DAG\"><defs><marker id=\"a\" markerWidth=\"8\" markerHeight=\"8\" refX=\"8\" refY=\"4\" orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\"/></marker></defs>\n"
    );
    for m in graph.models() {
        let Some(&(x2, y2)) = at.get(m.name.as_str()) else {
            continue;
        };
        for u in m.depends_on() {
            if let Some(&(x1, y1)) = at.get(u.as_str()) {
                let _ = writeln!(
                    svg,
                    "<line x1=\"{}\" y1=\"{}\" x2=\"{x2}\" y2=\"{}\" stroke=\"#888\" marker-end=\"url(#a)\"/>",
                    x1 + W,
                    y1 + H / 2,
                    y2 + H / 2
                );
            }
        }
    }
    for (name, (x, y)) in &at {
        let _ = writeln!(
            svg,
            "<a href=\"#{0}\"><rect x=\"{x}\" y=\"{y}\" width=\"{W}\" height=\"{H}\" rx=\"6\" fill=\"#f6f8ff\" stroke=\"#446\"/><text x=\"{1}\" y=\"{2}\" font-size=\"14\">gold.{0}</text></a>",
            esc(name),
            x + 10,
            y + H / 2 + 5
        );
    }
    svg.push_str("</svg>\n");
    svg
}
