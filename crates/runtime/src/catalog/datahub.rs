//! The catalog as DataHub metadata change proposals (MCPs), in the JSON file format DataHub's
//! `file` source ingests (`datahub ingest` with `source: {type: file}`): for each dataset its
//! `datasetProperties` (description, layer, rows, freshness, last run), `schemaMetadata` (columns,
//! descriptions, PII tags on fields), `ownership`, `globalTags` and `upstreamLineage`.
//!
//! Silver and gold tables are on the `iceberg` platform, named `<layer>.<table>`; other datasets
//! keep the platform of their OpenLineage namespace (`kafka`, `postgres`, `mysql`, `s3`,
//! `file`).

use serde_json::{Value, json};

use super::DatasetEntry;

/// The DataHub URN of a dataset.
pub fn dataset_urn(entry: &DatasetEntry) -> String {
    let (platform, name) = platform_and_name(entry);
    format!("urn:li:dataset:(urn:li:dataPlatform:{platform},{name},PROD)")
}

fn platform_and_name(entry: &DatasetEntry) -> (String, String) {
    match entry.layer.as_str() {
        "silver" | "gold" => ("iceberg".into(), entry.name.clone()),
        "kafka" => ("kafka".into(), entry.dataset.clone()),
        _ => {
            let scheme = entry
                .namespace
                .split_once("://")
                .map_or(entry.namespace.as_str(), |(s, _)| s);
            let platform = match scheme {
                "postgres" | "postgresql" => "postgres",
                "mysql" => "mysql",
                "s3" => "s3",
                _ => "file",
            };
            (platform.to_string(), entry.dataset.clone())
        }
    }
}

/// A DataHub type class for an Iceberg type name.
fn field_type(data_type: &str) -> &'static str {
    let t = data_type.to_ascii_lowercase();
    if t.starts_with("decimal") || ["int", "long", "float", "double"].iter().any(|n| t == *n) {
        "com.linkedin.schema.NumberType"
    } else if t == "boolean" {
        "com.linkedin.schema.BooleanType"
    } else if t.starts_with("timestamp") || t == "time" {
        "com.linkedin.schema.TimeType"
    } else if t == "date" {
        "com.linkedin.schema.DateType"
    } else if t == "binary" || t.starts_with("fixed") {
        "com.linkedin.schema.BytesType"
    } else if t.starts_with("struct") {
        "com.linkedin.schema.RecordType"
    } else if t.starts_with("list") {
        "com.linkedin.schema.ArrayType"
    } else if t.starts_with("map") {
        "com.linkedin.schema.MapType"
    } else {
        "com.linkedin.schema.StringType"
    }
}

fn mcp(urn: &str, aspect_name: &str, aspect: Value) -> Value {
    json!({
        "entityType": "dataset",
        "entityUrn": urn,
        "changeType": "UPSERT",
        "aspectName": aspect_name,
        "aspect": {"json": aspect},
    })
}

fn tag_list(tags: &[String]) -> Value {
    json!({"tags": tags.iter().map(|t| json!({"tag": format!("urn:li:tag:{t}")})).collect::<Vec<_>>()})
}

/// The MCPs of every entry; `now_ms` stamps lineage and ownership.
pub fn export(entries: &[DatasetEntry], now_ms: i64) -> Vec<Value> {
    let stamp = json!({"time": now_ms, "actor": "urn:li:corpuser:strata"});
    let by_name: std::collections::BTreeMap<&str, &DatasetEntry> =
        entries.iter().map(|e| (e.name.as_str(), e)).collect();
    let mut out = Vec::new();
    for entry in entries {
        let urn = dataset_urn(entry);
        let mut custom = serde_json::Map::new();
        custom.insert("layer".into(), entry.layer.clone().into());
        custom.insert(
            "openlineage".into(),
            format!("{}/{}", entry.namespace, entry.dataset).into(),
        );
        if let Some(rows) = entry.row_count {
            custom.insert("row_count".into(), rows.to_string().into());
        }
        if let Some(t) = &entry.last_commit {
            custom.insert("last_commit".into(), t.clone().into());
        }
        if let Some(s) = entry.snapshot_id {
            custom.insert("snapshot_id".into(), s.to_string().into());
        }
        if let Some(run) = &entry.last_run {
            custom.insert(
                "last_run".into(),
                format!("{} {} at {}", run.job, run.state, run.time).into(),
            );
        }
        if !entry.quality.is_empty() {
            let failed = entry.quality.iter().filter(|q| !q.success).count();
            custom.insert(
                "quality".into(),
                format!("{} checks, {failed} failed", entry.quality.len()).into(),
            );
        }
        let mut properties = json!({"name": entry.name, "customProperties": custom});
        if let Some(d) = &entry.description {
            properties["description"] = d.clone().into();
        }
        out.push(mcp(&urn, "datasetProperties", properties));
        if !entry.columns.is_empty() {
            let (platform, name) = platform_and_name(entry);
            let fields: Vec<Value> = entry
                .columns
                .iter()
                .map(|c| {
                    let mut f = json!({
                        "fieldPath": c.name,
                        "nativeDataType": c.data_type,
                        "type": {"type": {field_type(&c.data_type): {}}},
                        "nullable": true,
                    });
                    if let Some(d) = &c.description {
                        f["description"] = d.clone().into();
                    }
                    if !c.tags.is_empty() {
                        f["globalTags"] = tag_list(&c.tags);
                    }
                    f
                })
                .collect();
            out.push(mcp(
                &urn,
                "schemaMetadata",
                json!({
                    "schemaName": name,
                    "platform": format!("urn:li:dataPlatform:{platform}"),
                    "version": 0,
                    "hash": "",
                    "platformSchema": {"com.linkedin.schema.OtherSchema": {"rawSchema": ""}},
                    "fields": fields,
                }),
            ));
        }
        if let Some(owner) = &entry.owner {
            out.push(mcp(
                &urn,
                "ownership",
                json!({
                    "owners": [{"owner": format!("urn:li:corpGroup:{owner}"), "type": "DATAOWNER"}],
                    "lastModified": stamp,
                }),
            ));
        }
        if !entry.tags.is_empty() {
            out.push(mcp(&urn, "globalTags", tag_list(&entry.tags)));
        }
        let upstreams: Vec<Value> = entry
            .upstream
            .iter()
            .filter_map(|u| by_name.get(u.as_str()))
            .map(|u| json!({"dataset": dataset_urn(u), "type": "TRANSFORMED", "auditStamp": stamp}))
            .collect();
        if !upstreams.is_empty() {
            out.push(mcp(
                &urn,
                "upstreamLineage",
                json!({"upstreams": upstreams}),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ColumnEntry;

    #[test]
    fn a_table_becomes_properties_schema_owner_tags_and_lineage() {
        let mut silver = DatasetEntry::new("file", "/l/catalog/warehouse/silver/customers");
        silver.owner = Some("crm".into());
        silver.tags = vec!["pii".into()];
        silver.columns = vec![ColumnEntry {
            name: "email".into(),
            data_type: "string".into(),
            description: Some("hashed".into()),
            tags: vec!["pii".into()],
        }];
        silver.upstream = vec!["bronze.crm".into()];
        let bronze = DatasetEntry::new("file", "/l/bronze/source=crm");
        let mcps = export(&[silver, bronze], 0);
        let aspects: Vec<&str> = mcps
            .iter()
            .map(|m| m["aspectName"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            aspects,
            [
                "datasetProperties",
                "schemaMetadata",
                "ownership",
                "globalTags",
                "upstreamLineage",
                "datasetProperties"
            ]
        );
        assert_eq!(
            mcps[0]["entityUrn"],
            "urn:li:dataset:(urn:li:dataPlatform:iceberg,silver.customers,PROD)"
        );
        assert_eq!(
            mcps[4]["aspect"]["json"]["upstreams"][0]["dataset"],
            "urn:li:dataset:(urn:li:dataPlatform:file,/l/bronze/source=crm,PROD)"
        );
        assert_eq!(
            mcps[1]["aspect"]["json"]["fields"][0]["globalTags"]["tags"][0]["tag"],
            "urn:li:tag:pii"
        );
    }
}
