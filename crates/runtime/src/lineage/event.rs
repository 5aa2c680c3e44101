//! OpenLineage run events as JSON. Every facet carries `_producer` and `_schemaURL`, as the
//! spec's `BaseFacet` requires; facet schema URLs are the versions in the 2-0-2 spec bundle.
//!
//! Dataset naming follows the OpenLineage naming spec: a local file or folder is namespace
//! `file` with its absolute path as name; an S3 object is `s3://<bucket>` with its key;
//! a Kafka topic is `kafka://<bootstrap host:port>` with the topic; PostgreSQL is
//! `postgres://<host>:<port>` with `<db>.<schema>.<table>`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

/// The `producer` of every event (a URI, as the spec asks).
pub const PRODUCER: &str = concat!(
    "https://github.com/strata-data/strata/tree/v",
    env!("CARGO_PKG_VERSION")
);
const SPEC: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json";
const FACETS: &str = "https://openlineage.io/spec/facets";

/// START, COMPLETE or FAIL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The job began.
    Start,
    /// It ended well.
    Complete,
    /// It ended with an error.
    Fail,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Start => "START",
            EventType::Complete => "COMPLETE",
            EventType::Fail => "FAIL",
        }
    }
}

/// One column of a dataset's `schema` facet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaField {
    /// Name.
    pub name: String,
    /// Type, as the writer names it.
    pub data_type: String,
    /// Description, if any.
    pub description: Option<String>,
}

/// An input column an output column is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputField {
    /// The input dataset's namespace.
    pub namespace: String,
    /// The input dataset's name.
    pub name: String,
    /// The column.
    pub field: String,
}

/// One data-quality check and its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    /// Its kind (`not_null`, `unique`, `expectation`, `quarantine`, …).
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Whether it found no issue.
    pub success: bool,
    /// The column it checks, if one.
    pub column: Option<String>,
    /// `error` (blocking) or `warn`.
    pub severity: String,
}

/// A dataset an event names, with its facets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    /// OpenLineage namespace (`file`, `s3://bucket`, `kafka://host:port`).
    pub namespace: String,
    /// Name in that namespace.
    pub name: String,
    /// Dataset facets (`schema`, `columnLineage`, `dataQualityAssertions`, …), by key.
    pub facets: serde_json::Map<String, Value>,
    /// Output facets (`outputStatistics`), or input facets for an input.
    pub io_facets: serde_json::Map<String, Value>,
}

/// A dataset named by a server URL and a name within it: the namespace is `scheme://host:port`
/// of `url` (user, password, path and parameters left out, so no secret reaches an event);
/// `postgres://…` + `db.schema.table`, `mysql://…` + `db.table`, `https://api.x.com` + a path.
pub fn dataset_at(url: &str, name: impl Into<String>) -> Dataset {
    let (scheme, rest) = url.split_once("://").unwrap_or(("unknown", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let scheme = match scheme {
        "postgresql" => "postgres",
        other => other,
    };
    Dataset {
        namespace: format!("{scheme}://{host}"),
        name: name.into(),
        ..Dataset::default()
    }
}

/// A Kafka topic as OpenLineage names it: `kafka://<first bootstrap broker>` + the topic
/// (`127.0.0.1:9092` when no broker is configured, librdkafka's own default).
pub fn kafka_dataset(brokers: &str, topic: impl Into<String>) -> Dataset {
    let first = brokers.split(',').map(str::trim).find(|b| !b.is_empty());
    Dataset {
        namespace: format!("kafka://{}", first.unwrap_or("127.0.0.1:9092")),
        name: topic.into(),
        ..Dataset::default()
    }
}

/// The path of a URL (`https://h/2/tweets/search/recent?x=1` → `/2/tweets/search/recent`), or
/// the database of a database URL (`postgres://u@h/shop` → `shop`).
pub fn url_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    path.split(['?', '#']).next().unwrap_or(path).to_string()
}

/// The namespace and name of a lake location (`/abs/path`, `file:///…`, `s3://bucket/key`).
pub fn dataset_for_location(location: &str) -> Dataset {
    let (namespace, name) = if let Some(rest) = location.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        (format!("s3://{bucket}"), key.to_string())
    } else {
        let path = location.strip_prefix("file://").unwrap_or(location);
        let absolute = std::path::absolute(path)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| path.to_string());
        ("file".to_string(), absolute)
    };
    Dataset {
        namespace,
        name,
        ..Dataset::default()
    }
}

fn facet(schema: &str, body: Value) -> Value {
    let mut body = body;
    if let Some(map) = body.as_object_mut() {
        map.insert("_producer".into(), PRODUCER.into());
        map.insert("_schemaURL".into(), format!("{FACETS}/{schema}").into());
    }
    body
}

impl Dataset {
    /// Adds the `schema` facet.
    pub fn with_schema(mut self, fields: &[SchemaField]) -> Self {
        let fields: Vec<Value> = fields
            .iter()
            .map(|f| {
                let mut v = json!({"name": f.name, "type": f.data_type});
                if let Some(d) = &f.description {
                    v["description"] = d.clone().into();
                }
                v
            })
            .collect();
        self.facets.insert(
            "schema".into(),
            facet(
                "1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet",
                json!({ "fields": fields }),
            ),
        );
        self
    }

    /// Adds the `columnLineage` facet: each output column and the input columns it comes from,
    /// as `(namespace, name, field)`.
    pub fn with_column_lineage(mut self, columns: &[(String, Vec<InputField>)]) -> Self {
        let mut fields = serde_json::Map::new();
        for (column, inputs) in columns {
            let inputs: Vec<Value> = inputs
                .iter()
                .map(|f| json!({"namespace": f.namespace, "name": f.name, "field": f.field}))
                .collect();
            fields.insert(column.clone(), json!({ "inputFields": inputs }));
        }
        self.facets.insert(
            "columnLineage".into(),
            facet(
                "1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet",
                json!({ "fields": fields }),
            ),
        );
        self
    }

    /// Adds the `dataQualityAssertions` facet among the dataset's facets (an output's checks).
    pub fn with_assertions(self, assertions: &[Assertion]) -> Self {
        self.assertions_into(assertions, false)
    }

    /// Adds the `dataQualityAssertions` facet among an input's `inputFacets` (checks made on
    /// the rows read).
    pub fn with_input_assertions(self, assertions: &[Assertion]) -> Self {
        self.assertions_into(assertions, true)
    }

    fn assertions_into(mut self, assertions: &[Assertion], input: bool) -> Self {
        let items: Vec<Value> = assertions
            .iter()
            .map(|a| {
                let mut v = json!({"assertion": a.kind, "name": a.name, "success": a.success, "severity": a.severity});
                if let Some(c) = &a.column {
                    v["column"] = c.clone().into();
                }
                v
            })
            .collect();
        let facets = if input {
            &mut self.io_facets
        } else {
            &mut self.facets
        };
        facets.insert(
            "dataQualityAssertions".into(),
            facet(
                "1-1-0/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet",
                json!({ "assertions": items }),
            ),
        );
        self
    }

    /// Adds the output facet `outputStatistics`.
    pub fn with_output_statistics(
        mut self,
        rows: u64,
        bytes: Option<u64>,
        files: Option<u64>,
    ) -> Self {
        let mut stats = json!({ "rowCount": rows });
        if let Some(b) = bytes {
            stats["size"] = b.into();
        }
        if let Some(f) = files {
            stats["fileCount"] = f.into();
        }
        self.io_facets.insert(
            "outputStatistics".into(),
            facet(
                "1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet",
                stats,
            ),
        );
        self
    }

    /// Adds the input facet `dataQualityMetrics`: rows read, and per-column null counts.
    pub fn with_input_quality(mut self, rows: u64, null_counts: &[(String, u64)]) -> Self {
        let mut columns = serde_json::Map::new();
        for (c, n) in null_counts {
            columns.insert(c.clone(), json!({ "nullCount": n }));
        }
        self.io_facets.insert(
            "dataQualityMetrics".into(),
            facet(
                "1-0-3/DataQualityMetricsInputDatasetFacet.json#/$defs/DataQualityMetricsInputDatasetFacet",
                json!({ "rowCount": rows, "columnMetrics": columns }),
            ),
        );
        self
    }

    fn to_json(&self, io_key: &str) -> Value {
        let mut v = json!({"namespace": self.namespace, "name": self.name});
        if !self.facets.is_empty() {
            v["facets"] = Value::Object(self.facets.clone());
        }
        if !self.io_facets.is_empty() {
            v[io_key] = Value::Object(self.io_facets.clone());
        }
        v
    }
}

static RUNS: AtomicU64 = AtomicU64::new(0);

/// A new run id: a UUID v7 (time-ordered, with random bits from the process's hasher seed).
pub fn new_run_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let mut h = RandomState::new().build_hasher();
    h.write_u64(RUNS.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    let r1 = h.finish();
    h.write_u64(r1);
    let r2 = h.finish();
    let a = (ms & 0xffff_ffff_ffff) << 16 | 0x7000 | (r1 & 0x0fff);
    let b = (r2 & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// One run of one job: what its events share.
#[derive(Debug, Clone)]
pub struct JobRun {
    /// Job namespace (`strata` unless configured).
    pub namespace: String,
    /// Job name (`batch.iot_events`, `model.fact_orders`).
    pub name: String,
    /// Run id (UUID).
    pub run_id: String,
    /// `BATCH` or `STREAMING`.
    pub processing_type: &'static str,
    /// `JOB`, `MODEL`, `INGESTION`, … (the jobType facet).
    pub job_type: &'static str,
    /// The SQL of a model.
    pub sql: Option<String>,
    /// The parent run (`namespace`, `name`, `run id`) of a streaming epoch.
    pub parent: Option<(String, String, String)>,
}

impl JobRun {
    /// A new run of `name` in namespace `strata`.
    pub fn new(
        name: impl Into<String>,
        processing_type: &'static str,
        job_type: &'static str,
    ) -> Self {
        JobRun {
            namespace: "strata".into(),
            name: name.into(),
            run_id: new_run_id(),
            processing_type,
            job_type,
            sql: None,
            parent: None,
        }
    }

    /// The run event of `kind` with these datasets; `error` fills the `errorMessage` facet.
    pub fn event(
        &self,
        kind: EventType,
        inputs: &[Dataset],
        outputs: &[Dataset],
        error: Option<&str>,
    ) -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or_default();
        let event_time = arrow::temporal_conversions::timestamp_us_to_datetime(now)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
            .unwrap_or_default();
        let mut run_facets = serde_json::Map::new();
        run_facets.insert(
            "processing_engine".into(),
            facet(
                "1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet",
                json!({"version": env!("CARGO_PKG_VERSION"), "name": "strata", "openlineageAdapterVersion": "2-0-2"}),
            ),
        );
        if let Some((ns, name, id)) = &self.parent {
            run_facets.insert(
                "parent".into(),
                facet(
                    "1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
                    json!({"run": {"runId": id}, "job": {"namespace": ns, "name": name}}),
                ),
            );
        }
        if let Some(message) = error {
            run_facets.insert(
                "errorMessage".into(),
                facet(
                    "1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
                    json!({"message": message, "programmingLanguage": "rust"}),
                ),
            );
        }
        let mut job_facets = serde_json::Map::new();
        job_facets.insert(
            "jobType".into(),
            facet(
                "2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
                json!({"processingType": self.processing_type, "integration": "STRATA", "jobType": self.job_type}),
            ),
        );
        if let Some(sql) = &self.sql {
            job_facets.insert(
                "sql".into(),
                facet(
                    "1-1-0/SQLJobFacet.json#/$defs/SQLJobFacet",
                    json!({"query": sql, "dialect": "datafusion"}),
                ),
            );
        }
        json!({
            "eventType": kind.as_str(),
            "eventTime": event_time,
            "producer": PRODUCER,
            "schemaURL": format!("{SPEC}#/$defs/RunEvent"),
            "run": {"runId": self.run_id, "facets": run_facets},
            "job": {"namespace": self.namespace, "name": self.name, "facets": job_facets},
            "inputs": inputs.iter().map(|d| d.to_json("inputFacets")).collect::<Vec<_>>(),
            "outputs": outputs.iter().map(|d| d.to_json("outputFacets")).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_datasets_leave_credentials_out() {
        let t = kafka_dataset("b1:9092, b2:9092", "orders");
        assert_eq!(
            (t.namespace.as_str(), t.name.as_str()),
            ("kafka://b1:9092", "orders")
        );
        assert_eq!(kafka_dataset("", "x").namespace, "kafka://127.0.0.1:9092");
        let d = dataset_at(
            "postgresql://app:s3cret@db.local:5432/shop?sslmode=require",
            "shop.public.customers",
        );
        assert_eq!(d.namespace, "postgres://db.local:5432");
        assert_eq!(d.name, "shop.public.customers");
        assert_eq!(
            url_path("postgres://app:s3cret@db.local:5432/shop?sslmode=require"),
            "/shop"
        );
        assert_eq!(
            dataset_at(
                "https://api.x.com/2/tweets/search/recent?query=a",
                "/2/tweets/search/recent"
            )
            .namespace,
            "https://api.x.com"
        );
        assert_eq!(
            url_path("https://api.x.com/2/tweets/search/recent?query=a"),
            "/2/tweets/search/recent"
        );
    }

    #[test]
    fn run_ids_are_uuid_v7_and_distinct() {
        let (a, b) = (new_run_id(), new_run_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "7");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }

    #[test]
    fn locations_follow_the_naming_spec() {
        let s3 = dataset_for_location("s3://lake/prod/bronze/source=iot");
        assert_eq!(
            (s3.namespace.as_str(), s3.name.as_str()),
            ("s3://lake", "prod/bronze/source=iot")
        );
        let local = dataset_for_location("file:///tmp/lake/silver");
        assert_eq!(
            (local.namespace.as_str(), local.name.as_str()),
            ("file", "/tmp/lake/silver")
        );
    }

    #[test]
    fn a_fail_event_carries_the_error_and_every_facet_its_base_fields() {
        let run = JobRun::new("batch.iot_events", "BATCH", "JOB");
        let e = run.event(
            EventType::Fail,
            &[dataset_for_location("/tmp/b")],
            &[dataset_for_location("/tmp/s").with_output_statistics(3, Some(10), Some(1))],
            Some("boom"),
        );
        assert_eq!(e["eventType"], "FAIL");
        assert_eq!(e["run"]["facets"]["errorMessage"]["message"], "boom");
        assert_eq!(
            e["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"],
            3
        );
        assert!(
            e["job"]["facets"]["jobType"]["_schemaURL"]
                .as_str()
                .is_some_and(|u| u.starts_with("https://openlineage.io/spec/facets/"))
        );
    }
}
