//! `GET /openapi.json`: the API described in OpenAPI 3.1, with the configured metrics, their
//! measures and dimensions as enums, so generated clients and fuzzers know the names.

use serde_json::{Value, json};

use crate::config::ServeConfig;
use crate::semantic::GRAINS;

fn error_responses(codes: &[&str]) -> serde_json::Map<String, Value> {
    codes
        .iter()
        .map(|c| {
            (
                c.to_string(),
                json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
            )
        })
        .collect()
}

fn answer_content() -> Value {
    json!({
        "application/json": {"schema": {"$ref": "#/components/schemas/Answer"}},
        "text/csv": {"schema": {"type": "string"}},
        "application/vnd.apache.arrow.stream": {"schema": {"type": "string", "format": "binary"}}
    })
}

/// The document for `config`.
pub fn document(config: &ServeConfig) -> Value {
    let metric_names: Vec<&String> = config.metrics.keys().collect();
    let mut measures: Vec<String> = Vec::new();
    let mut by: Vec<String> = GRAINS.iter().map(|g| g.to_string()).collect();
    for m in config.metrics.values() {
        measures.extend(m.measures.keys().cloned());
        by.extend(m.dimensions.keys().cloned());
    }
    measures.sort();
    measures.dedup();
    by.sort();
    by.dedup();
    let describe: Vec<String> = config
        .metrics
        .iter()
        .map(|(n, m)| {
            format!(
                "- `{n}` over `{}`: measures {}; dimensions {}{}",
                m.table,
                m.measures.keys().cloned().collect::<Vec<_>>().join(", "),
                m.dimensions.keys().cloned().collect::<Vec<_>>().join(", "),
                m.time
                    .as_ref()
                    .map(|t| format!("; time `{t}` (grains {})", GRAINS.join(", ")))
                    .unwrap_or_default()
            )
        })
        .collect();
    let mut query_responses = error_responses(&["400", "401", "403", "404", "408", "422", "429"]);
    query_responses.insert(
        "200".into(),
        json!({"description": "the answer", "content": answer_content()}),
    );
    let mut metric_responses = query_responses.clone();
    metric_responses.insert(
        "200".into(),
        json!({"description": "the metric's values, with the SQL that ran", "content": answer_content()}),
    );
    let mut datasets_responses = error_responses(&["401", "429"]);
    datasets_responses.insert(
        "200".into(),
        json!({"description": "datasets the key may read", "content": {"application/json": {"schema": {"type": "object", "properties": {"datasets": {"type": "array", "items": {"$ref": "#/components/schemas/Dataset"}}}}}}}),
    );
    let mut dataset_responses = error_responses(&["401", "403", "404", "429"]);
    dataset_responses.insert(
        "200".into(),
        json!({"description": "one dataset", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Dataset"}}}}),
    );
    let mut keyed_text = error_responses(&["401", "429"]);
    keyed_text.insert(
        "200".into(),
        json!({"description": "Prometheus text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}),
    );
    let mut dashboard_responses = error_responses(&["401", "404", "429"]);
    dashboard_responses.insert(
        "200".into(),
        json!({"description": "the panels", "content": {"application/json": {"schema": {"type": "object"}}}}),
    );
    let mut openapi_responses = error_responses(&["401", "429"]);
    openapi_responses.insert(
        "200".into(),
        json!({"description": "this document", "content": {"application/json": {"schema": {"type": "object"}}}}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Strata analytics API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "Read-only SQL and named metrics over the lake's silver and gold tables. Every answer is keyed by the snapshots it read.\n\nMetrics:\n{}",
                describe.join("\n")
            )
        },
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": {
            "/health": {"get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "alive", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/ready": {"get": {"summary": "Readiness: the catalog answers", "security": [], "responses": {
                "200": {"description": "ready", "content": {"application/json": {"schema": {"type": "object"}}}},
                "503": {"description": "not ready", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": openapi_responses}},
            "/metrics": {"get": {"summary": "Prometheus metrics of the API", "responses": keyed_text}},
            "/dashboard.json": {"get": {"summary": "The dashboard's panels (the page is at /)", "responses": dashboard_responses}},
            "/datasets": {"get": {"summary": "The catalog", "responses": datasets_responses}},
            "/datasets/{name}": {"get": {"summary": "One dataset", "parameters": [
                {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": dataset_responses}},
            "/query": {"post": {"summary": "One read-only SQL query (SELECT / WITH / VALUES)",
                "parameters": [{"name": "Cache-Control", "in": "header", "required": false, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {
                    "application/json": {"schema": {"type": "object", "required": ["sql"], "additionalProperties": false, "properties": {"sql": {"type": "string"}}}},
                    "text/plain": {"schema": {"type": "string"}}}},
                "responses": query_responses}},
            "/metrics/{name}": {"get": {"summary": "A named metric of the semantic layer", "parameters": [
                {"name": "name", "in": "path", "required": true, "schema": {"type": "string", "enum": metric_names}},
                {"name": "measures", "in": "query", "required": false, "description": "comma-separated measure names (default: all)", "schema": {"type": "string", "examples": [measures.join(",")]}},
                {"name": "by", "in": "query", "required": false, "description": "comma-separated dimensions and time grains", "schema": {"type": "string", "examples": [by.join(",")]}},
                {"name": "where", "in": "query", "required": false, "description": "`dimension:value`, repeatable", "schema": {"type": "string"}},
                {"name": "filter", "in": "query", "required": false, "description": "named filters, comma-separated", "schema": {"type": "string"}},
                {"name": "from", "in": "query", "required": false, "description": "inclusive lower bound of the time column", "schema": {"type": "string"}},
                {"name": "to", "in": "query", "required": false, "description": "exclusive upper bound of the time column", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0}}],
                "responses": metric_responses}}
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error", "message"], "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
                "Answer": {"type": "object", "required": ["columns", "rows", "row_count", "truncated", "snapshots"], "properties": {
                    "columns": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "type": {"type": "string"}}}},
                    "rows": {"type": "array", "items": {"type": "object"}},
                    "row_count": {"type": "integer"},
                    "truncated": {"type": "boolean"},
                    "snapshots": {"type": "object", "additionalProperties": {"type": ["integer", "null"]}},
                    "sql": {"type": "string"},
                    "params": {"type": "array", "items": {"type": "string"}},
                    "elapsed_ms": {"type": "integer"}}},
                "Dataset": {"type": "object", "required": ["name", "layer", "columns", "tags"], "properties": {
                    "name": {"type": "string"}, "layer": {"type": "string"}, "description": {"type": "string"},
                    "owner": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
                    "columns": {"type": "array", "items": {"type": "object"}},
                    "partitioning": {"type": "array", "items": {"type": "string"}},
                    "row_count": {"type": "integer"}, "last_commit": {"type": "string"}, "snapshot_id": {"type": "integer"}}}
            }
        }
    })
}
