//! The pipeline spec: what a data engineer writes in YAML (or JSON, or builds in Rust).
//!
//! It is plain data, deserialised with serde (`deny_unknown_fields`, steps tagged by `type`), and
//! says nothing about how to run. [`crate::Pipeline::build`] validates it against an input schema
//! before any data flows: unknown columns, bad SQL and type conflicts come out there, naming the
//! step and field.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// A whole pipeline: ordered steps and the declared output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// Pipeline name (used for tables, metrics and lineage).
    pub name: String,
    /// Free text for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who answers for the table it writes (shown by `strata catalog`, exported to DataHub).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Free tags of the table it writes (`pii` is added for masked columns).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// What the pipeline reads: raw records (the default) or typed columns.
    #[serde(default, skip_serializing_if = "InputSpec::is_default")]
    pub input: InputSpec,
    /// Steps, applied in order.
    pub steps: Vec<StepSpec>,
    /// The declared output: the silver contract.
    pub output: OutputSpec,
}

/// What a pipeline reads, so it can be validated before any data flows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// `raw` (records as bytes in `_raw`: NDJSON files, NDJSON bronze, Kafka JSON) or `typed`
    /// (the source's own columns: a Parquet bronze of a PostgreSQL full load).
    #[serde(default)]
    pub format: InputFormat,
    /// For `typed`: the `column: type` map the source provides (lineage columns are added).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub schema: IndexMap<String, String>,
}

impl InputSpec {
    fn is_default(&self) -> bool {
        self == &InputSpec::default()
    }
}

/// The shape of a pipeline's input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    /// Raw records in `_raw` (bytes) plus lineage: what `parse_json` starts from.
    #[default]
    Raw,
    /// Typed columns declared in `input.schema`, plus file lineage (no `_raw`).
    Typed,
}

/// The declared output of a pipeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Ordered `column: type` map. Lineage columns are appended after these automatically.
    pub schema: IndexMap<String, String>,
    /// The event-time column (partitioning and watermarks downstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
    /// Partition transforms for table writers, e.g. `day(event_time)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_by: Vec<String>,
    /// What the table keeps: every row (`append`, the default), the current row per key
    /// (`snapshot`) or every version per key (`historical`).
    #[serde(default, skip_serializing_if = "TableKind::is_append")]
    pub kind: TableKind,
    /// The columns identifying a row of a keyed table (`snapshot`, `historical`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key: Vec<String>,
    /// The columns ordering the changes of one key (compared in this order): a binlog file,
    /// position and row index, an LSN, or a version column. Never the arrival order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sequence: Vec<String>,
    /// The column holding the change kind (`c`, `u`, `r` upsert; `d` deletes), if the input is
    /// change events; without it every row is an upsert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// What a delete does to a `snapshot` table.
    #[serde(default, skip_serializing_if = "DeleteMode::is_hard")]
    pub deletes: DeleteMode,
    /// The state column whose transitions a `change_state` table records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// What a `snapshot` table fed by database full loads does with keys a newer load lacks:
    /// keep them (`upsert`, the default) or delete them (`replace`: the table mirrors the
    /// newest complete load, read whole by `strata batch`).
    #[serde(default, skip_serializing_if = "FullLoadMode::is_upsert")]
    pub full_load: FullLoadMode,
    /// More tables fed from the same rows in the same pass (e.g. the `historical` table beside a
    /// `snapshot`), each committed with the same input positions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<AlsoOutput>,
}

/// Another table written from a pipeline's output rows (`output.also`). It has the output's
/// schema and event time; the keyed fields it leaves out are the main output's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlsoOutput {
    /// The table's name.
    pub name: String,
    /// What it keeps.
    pub kind: TableKind,
    /// Key columns (default: the output's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key: Vec<String>,
    /// Sequence columns (default: the output's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sequence: Vec<String>,
    /// The change-kind column (default: the output's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// What a delete does (default: the output's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletes: Option<DeleteMode>,
    /// The state column of a `change_state` table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Partition transforms (default: none for a keyed table).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_by: Vec<String>,
}

impl OutputSpec {
    /// The full output spec of each `also` table, by name: the main output's schema, event time
    /// and keyed fields, with the table's own choices over them.
    pub fn also_outputs(&self) -> Vec<(String, OutputSpec)> {
        self.also
            .iter()
            .map(|a| {
                let keyed = a.kind != TableKind::Append;
                let pick = |own: &Vec<String>, main: &Vec<String>| match (own.is_empty(), keyed) {
                    (false, _) => own.clone(),
                    (true, true) => main.clone(),
                    (true, false) => Vec::new(),
                };
                let spec = OutputSpec {
                    schema: self.schema.clone(),
                    event_time: self.event_time.clone(),
                    partition_by: a.partition_by.clone(),
                    kind: a.kind,
                    key: pick(&a.key, &self.key),
                    sequence: pick(&a.sequence, &self.sequence),
                    op: a.op.clone().or_else(|| self.op.clone().filter(|_| keyed)),
                    deletes: a.deletes.unwrap_or(self.deletes),
                    state: a.state.clone(),
                    full_load: FullLoadMode::Upsert,
                    also: Vec::new(),
                };
                (a.name.clone(), spec)
            })
            .collect()
    }
}

/// How a `snapshot` table takes a full load (`output.full_load`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FullLoadMode {
    /// Every row upserts its key; keys missing from a load stay (the default).
    #[default]
    Upsert,
    /// The newest complete load is the table: keys it lacks are deleted.
    Replace,
}

impl FullLoadMode {
    /// True for the default.
    pub fn is_upsert(&self) -> bool {
        *self == FullLoadMode::Upsert
    }
}

/// What a silver table keeps (`output.kind`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    /// Every output row, appended (the default).
    #[default]
    Append,
    /// The current row per key (SCD1): upserts replace, deletes remove.
    Snapshot,
    /// Every version per key (SCD2), with `valid_from`, `valid_to` and `is_current`.
    Historical,
    /// The transitions of one state column per key: `from_state`, `to_state`, `entered_at`,
    /// `left_at` and `duration_ms`.
    ChangeState,
}

impl TableKind {
    /// True for the default.
    pub fn is_append(&self) -> bool {
        *self == TableKind::Append
    }
}

/// What a delete does to a `snapshot` table (`output.deletes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteMode {
    /// The key's row is removed.
    #[default]
    Hard,
    /// The key's row stays, with its `op` column saying `d` (readers filter on it).
    Soft,
}

impl DeleteMode {
    /// True for the default.
    pub fn is_hard(&self) -> bool {
        *self == DeleteMode::Hard
    }
}

/// One step of a pipeline, tagged by `type` in YAML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepSpec {
    /// Decode raw JSON records into a declared schema.
    ParseJson(ParseJsonSpec),
    /// Keep these columns, in this order.
    Select(SelectSpec),
    /// Rename columns.
    Rename(RenameSpec),
    /// Safe casts; failures quarantine the row.
    Cast(CastSpec),
    /// Struct fields to top-level columns.
    Flatten(FlattenSpec),
    /// A Debezium change event to its row image, op, source position and change time.
    CdcUnwrap(CdcUnwrapSpec),
    /// Keep rows where an SQL predicate is true.
    Filter(FilterSpec),
    /// Add or replace columns computed by SQL expressions.
    Derive(DeriveSpec),
    /// Data-quality rules.
    Expect(ExpectSpec),
    /// Mask sensitive columns.
    Mask(MaskSpec),
    /// Drop repeated keys (stateful).
    Dedup(DedupSpec),
    /// Tumbling or hopping event-time windows with a watermark (stateful; the last step).
    WindowAggregate(WindowAggregateSpec),
}

/// `window_aggregate`: rows → one row per window and group, emitted once the watermark (the
/// highest event time seen) passes the window's end plus `allowed_lateness`. A row whose every
/// window was already emitted is quarantined with its reason. It must be the pipeline's last
/// step: its rows come from many input rows, so they carry no single input's lineage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowAggregateSpec {
    /// Step name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The event-time column (a timestamp).
    pub event_time: String,
    /// Window length (`1m`, `5m`, `1h`).
    pub size: String,
    /// Distance between window starts; unset (or equal to `size`): tumbling windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slide: Option<String>,
    /// How long past a window's end its rows are still accepted (default `0s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_lateness: Option<String>,
    /// Group columns (one output row per window and group).
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Output column → aggregate.
    pub aggregates: indexmap::IndexMap<String, WindowAggregateFn>,
    /// At most this many open (window, group) pairs; past it the batch fails with a clear
    /// error instead of growing without bound. Default 1,000,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_open_windows: Option<usize>,
}

/// One aggregate of `window_aggregate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowAggregateFn {
    /// `count`, `sum`, `min`, `max`, `avg` or `approx_count_distinct`.
    #[serde(rename = "fn")]
    pub function: String,
    /// The input column (not for `count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
}

/// `cdc_unwrap`: a Debezium envelope → row image, op, `source_<field>` columns, `source_ts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdcUnwrapSpec {
    /// Step name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The struct column with the row before the change.
    #[serde(default = "default_before")]
    pub before: String,
    /// The struct column with the row after the change.
    #[serde(default = "default_after")]
    pub after: String,
    /// The change-kind column (`c`, `u`, `d`, `r`).
    #[serde(default = "default_op")]
    pub op: String,
    /// The struct column describing where the change was read (flattened to `source_<field>`).
    #[serde(default = "default_source")]
    pub source: String,
}

fn default_before() -> String {
    "before".into()
}
fn default_after() -> String {
    "after".into()
}
fn default_op() -> String {
    "op".into()
}
fn default_source() -> String {
    "source".into()
}

/// `parse_json`: raw bytes → typed columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseJsonSpec {
    /// Step name (defaults to the type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Input column holding the raw record (default `_raw`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Ordered `field: type` map of what to extract.
    pub schema: IndexMap<String, String>,
    /// Unit of numeric timestamps (epoch numbers); ISO-8601 strings are always accepted.
    #[serde(default)]
    pub epoch_unit: EpochUnit,
}

/// Unit of epoch numbers sent for timestamp fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpochUnit {
    /// Seconds.
    S,
    /// Milliseconds (the default: what JavaScript and most devices send).
    #[default]
    Ms,
    /// Microseconds.
    Us,
    /// Nanoseconds.
    Ns,
}

/// `select`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectSpec {
    /// Step name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Columns to keep, in output order.
    pub columns: Vec<String>,
}

/// `rename`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameSpec {
    /// Step name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `old: new`.
    pub columns: IndexMap<String, String>,
}

/// `cast`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CastSpec {
    /// Step name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `column: type`.
    pub columns: IndexMap<String, String>,
}

/// `flatten`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlattenSpec {
    /// Step name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The struct column to flatten.
    pub column: String,
    /// New names are `<prefix><separator><field>`; prefix defaults to the column name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Defaults to `_`.
    #[serde(default = "default_separator")]
    pub separator: String,
}

fn default_separator() -> String {
    "_".into()
}

/// `filter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// Step name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// SQL predicate; rows where it is not TRUE are dropped (and counted).
    #[serde(rename = "where")]
    pub predicate: String,
}

/// `derive`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeriveSpec {
    /// Step name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `column: SQL expression`, evaluated in order (later ones may use earlier ones).
    pub columns: IndexMap<String, String>,
}

/// `expect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    /// Step name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The rules, all evaluated on the step's input.
    pub rules: Vec<RuleSpec>,
}

/// One data-quality rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Rule name (unique in the step).
    pub name: String,
    /// SQL boolean; a row passes only when it is TRUE (NULL fails).
    pub check: String,
    /// What happens to failing rows.
    pub action: RuleAction,
}

/// What an expectation does with a failing row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Count it, keep the row.
    Warn,
    /// Count it, drop the row.
    Drop,
    /// Send the row to quarantine with the rule as reason.
    Quarantine,
    /// Stop the run with an error.
    Fail,
}

/// `mask`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskSpec {
    /// Step name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `column: method`.
    pub columns: IndexMap<String, MaskMethod>,
}

/// How a string column is masked. Nulls stay null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum MaskMethod {
    /// Lower-case hex SHA-256 of the UTF-8 value (joinable, not secret against guessing).
    Sha256,
    /// Lower-case hex HMAC-SHA256 with a key read from an environment variable at build time.
    HmacSha256 {
        /// Name of the environment variable holding the key.
        key_env: String,
    },
    /// Replace the value with a constant.
    Redact {
        /// The replacement (default `***`).
        #[serde(default = "default_redaction")]
        with: String,
    },
    /// Deterministic encryption (AES-256-GCM-SIV, see [`crate::encryption`]): equal values give
    /// equal tokens (`enc1:<key_id>:…`), so joins, grouping and dedup still work; holders of the
    /// key get the values back with `strata decrypt` or `strata.decrypt` in Python.
    Encrypt {
        /// Name of the environment variable holding the key: base64 of 32 bytes.
        key_env: String,
        /// The key's id, written into every token and the column's metadata. Rotate by giving
        /// new data a new id (and key); old tokens name their old id and stay readable with it.
        key_id: String,
    },
    /// Keep the last `n` characters, replace the others with `mask_char`.
    KeepLast {
        /// Characters kept.
        n: usize,
        /// Replacement character (default `*`).
        #[serde(default = "default_mask_char")]
        mask_char: char,
    },
}

fn default_redaction() -> String {
    "***".into()
}

fn default_mask_char() -> char {
    '*'
}

/// `dedup`: keep the first row of each key; memory is bounded by `ttl` and/or `max_keys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupSpec {
    /// Step name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Key columns.
    pub keys: Vec<String>,
    /// Event-time column used with `ttl` (a timestamp column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
    /// A key is forgotten once the watermark (max event time seen) is this far past its first
    /// occurrence, e.g. `90s`, `30m`, `24h`, `7d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// At most this many keys are remembered; the oldest is forgotten first. Unset, the bound is
    /// [`crate::steps::dedup::DEFAULT_MAX_KEYS`]: a TTL alone does not bound memory against a
    /// flood of distinct keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_keys: Option<usize>,
    /// Rows whose event time is more than this past the wall clock are quarantined instead of
    /// moving the watermark (one row dated 2099 would otherwise expire every key for good).
    /// Default `1h`; only with `event_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_future_skew: Option<String>,
}

impl StepSpec {
    /// The `type` tag of this step.
    pub fn type_name(&self) -> &'static str {
        match self {
            StepSpec::ParseJson(_) => "parse_json",
            StepSpec::Select(_) => "select",
            StepSpec::Rename(_) => "rename",
            StepSpec::Cast(_) => "cast",
            StepSpec::Flatten(_) => "flatten",
            StepSpec::CdcUnwrap(_) => "cdc_unwrap",
            StepSpec::Filter(_) => "filter",
            StepSpec::Derive(_) => "derive",
            StepSpec::Expect(_) => "expect",
            StepSpec::Mask(_) => "mask",
            StepSpec::Dedup(_) => "dedup",
            StepSpec::WindowAggregate(_) => "window_aggregate",
        }
    }

    /// True for steps that keep state across batches (`dedup`, `window_aggregate`).
    pub fn is_stateful(&self) -> bool {
        matches!(self, StepSpec::Dedup(_) | StepSpec::WindowAggregate(_))
    }

    /// Sets the step's name (the one quarantine rows and metrics carry).
    pub fn set_name(&mut self, name: String) {
        let slot = match self {
            StepSpec::ParseJson(s) => &mut s.name,
            StepSpec::Select(s) => &mut s.name,
            StepSpec::Rename(s) => &mut s.name,
            StepSpec::Cast(s) => &mut s.name,
            StepSpec::Flatten(s) => &mut s.name,
            StepSpec::CdcUnwrap(s) => &mut s.name,
            StepSpec::Filter(s) => &mut s.name,
            StepSpec::Derive(s) => &mut s.name,
            StepSpec::Expect(s) => &mut s.name,
            StepSpec::Mask(s) => &mut s.name,
            StepSpec::Dedup(s) => &mut s.name,
            StepSpec::WindowAggregate(s) => &mut s.name,
        };
        *slot = Some(name);
    }

    /// The name given in the spec, if any.
    pub fn given_name(&self) -> Option<&str> {
        match self {
            StepSpec::ParseJson(s) => s.name.as_deref(),
            StepSpec::Select(s) => s.name.as_deref(),
            StepSpec::Rename(s) => s.name.as_deref(),
            StepSpec::Cast(s) => s.name.as_deref(),
            StepSpec::Flatten(s) => s.name.as_deref(),
            StepSpec::CdcUnwrap(s) => s.name.as_deref(),
            StepSpec::Filter(s) => s.name.as_deref(),
            StepSpec::Derive(s) => s.name.as_deref(),
            StepSpec::Expect(s) => s.name.as_deref(),
            StepSpec::Mask(s) => s.name.as_deref(),
            StepSpec::Dedup(s) => s.name.as_deref(),
            StepSpec::WindowAggregate(s) => s.name.as_deref(),
        }
    }
}

impl PipelineSpec {
    /// Reads a spec from YAML text.
    pub fn from_yaml(text: &str) -> Result<Self> {
        serde_yaml_ng::from_str(text).map_err(|e| CoreError::SpecSyntax {
            format: "YAML",
            message: e.to_string(),
        })
    }

    /// Reads a spec from JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| CoreError::SpecSyntax {
            format: "JSON",
            message: e.to_string(),
        })
    }

    /// Writes the spec as YAML (round-trips through [`Self::from_yaml`]).
    pub fn to_yaml(&self) -> Result<String> {
        serde_yaml_ng::to_string(self)
            .map_err(|e| CoreError::Internal(format!("spec to YAML: {e}")))
    }

    /// The input schema the spec declares (see [`InputSpec`]), for validating it before any data
    /// flows: `_raw` + file lineage for `raw`, the declared columns + file lineage for `typed`.
    /// Drivers build against the schema their source really has; this is what `validate` uses.
    pub fn input_schema(&self) -> Result<arrow::datatypes::SchemaRef> {
        use arrow::datatypes::{Field, Schema};
        let lineage = crate::lineage::file_input_schema();
        match self.input.format {
            InputFormat::Raw => {
                if !self.input.schema.is_empty() {
                    return Err(CoreError::spec(
                        "input",
                        "schema",
                        "a `raw` input has no column schema (declare the fields in parse_json)",
                    )
                    .with_hint("set `format: typed` for a source with its own columns"));
                }
                Ok(lineage)
            }
            InputFormat::Typed => {
                if self.input.schema.is_empty() {
                    return Err(CoreError::spec(
                        "input",
                        "schema",
                        "a `typed` input needs the columns its source provides",
                    ));
                }
                let mut fields = Vec::with_capacity(self.input.schema.len() + 4);
                for (name, text) in &self.input.schema {
                    if crate::lineage::is_reserved(name) {
                        return Err(CoreError::spec(
                            "input",
                            format!("schema.{name}"),
                            "names starting with `_` are reserved for lineage",
                        ));
                    }
                    let t = crate::types::parse_column_type(text)
                        .map_err(|e| CoreError::spec("input", format!("schema.{name}"), e))?;
                    fields.push(Field::new(name, t.data_type, t.nullable));
                }
                fields.extend(
                    lineage
                        .fields()
                        .iter()
                        .filter(|f| f.name() != crate::lineage::RAW)
                        .map(|f| f.as_ref().clone()),
                );
                Ok(std::sync::Arc::new(Schema::new(fields)))
            }
        }
    }

    /// Starts a Rust builder for a pipeline called `name`.
    pub fn builder(name: impl Into<String>) -> PipelineBuilder {
        PipelineBuilder {
            spec: PipelineSpec {
                name: name.into(),
                description: None,
                owner: None,
                tags: Vec::new(),
                input: InputSpec::default(),
                steps: Vec::new(),
                output: OutputSpec::default(),
            },
        }
    }
}

fn columns<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> IndexMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Builds the same [`PipelineSpec`] a YAML file would, from Rust.
#[derive(Debug, Clone)]
pub struct PipelineBuilder {
    spec: PipelineSpec,
}

impl PipelineBuilder {
    /// Adds any step.
    pub fn step(mut self, step: StepSpec) -> Self {
        self.spec.steps.push(step);
        self
    }

    /// `parse_json` of `_raw` with an ordered `field: type` list.
    pub fn parse_json<'a>(self, schema: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        self.step(StepSpec::ParseJson(ParseJsonSpec {
            name: None,
            column: None,
            schema: columns(schema),
            epoch_unit: EpochUnit::default(),
        }))
    }

    /// `select`.
    pub fn select(self, cols: &[&str]) -> Self {
        self.step(StepSpec::Select(SelectSpec {
            name: None,
            columns: cols.iter().map(|c| c.to_string()).collect(),
        }))
    }

    /// `rename` of `old → new` pairs.
    pub fn rename<'a>(self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        self.step(StepSpec::Rename(RenameSpec {
            name: None,
            columns: columns(pairs),
        }))
    }

    /// `cast` of `column → type` pairs.
    pub fn cast<'a>(self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        self.step(StepSpec::Cast(CastSpec {
            name: None,
            columns: columns(pairs),
        }))
    }

    /// `flatten` a struct column with the default prefix and separator.
    pub fn flatten(self, column: &str) -> Self {
        self.step(StepSpec::Flatten(FlattenSpec {
            name: None,
            column: column.into(),
            prefix: None,
            separator: default_separator(),
        }))
    }

    /// `filter` with an SQL predicate.
    pub fn filter(self, predicate: &str) -> Self {
        self.step(StepSpec::Filter(FilterSpec {
            name: None,
            predicate: predicate.into(),
        }))
    }

    /// `derive` of `column → SQL expression` pairs.
    pub fn derive<'a>(self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        self.step(StepSpec::Derive(DeriveSpec {
            name: None,
            columns: columns(pairs),
        }))
    }

    /// `expect` with `(name, check, action)` rules.
    pub fn expect<'a>(
        self,
        rules: impl IntoIterator<Item = (&'a str, &'a str, RuleAction)>,
    ) -> Self {
        let rules = rules
            .into_iter()
            .map(|(name, check, action)| RuleSpec {
                name: name.into(),
                check: check.into(),
                action,
            })
            .collect();
        self.step(StepSpec::Expect(ExpectSpec { name: None, rules }))
    }

    /// `mask` one column.
    pub fn mask(self, column: &str, method: MaskMethod) -> Self {
        let mut columns = IndexMap::new();
        columns.insert(column.to_string(), method);
        self.step(StepSpec::Mask(MaskSpec {
            name: None,
            columns,
        }))
    }

    /// `dedup` on keys, bounded by an event-time TTL and/or a key count.
    pub fn dedup(
        self,
        keys: &[&str],
        event_time: Option<&str>,
        ttl: Option<&str>,
        max_keys: Option<usize>,
    ) -> Self {
        self.step(StepSpec::Dedup(DedupSpec {
            name: None,
            keys: keys.iter().map(|k| k.to_string()).collect(),
            event_time: event_time.map(str::to_string),
            ttl: ttl.map(str::to_string),
            max_keys,
            max_future_skew: None,
        }))
    }

    /// Declares the output schema as ordered `column → type` pairs.
    pub fn output<'a>(mut self, schema: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        self.spec.output.schema = columns(schema);
        self
    }

    /// Declares the event-time column and partition transforms of the output.
    pub fn partitioned(mut self, event_time: &str, partition_by: &[&str]) -> Self {
        self.spec.output.event_time = Some(event_time.into());
        self.spec.output.partition_by = partition_by.iter().map(|p| p.to_string()).collect();
        self
    }

    /// The finished spec (validated when a [`crate::Pipeline`] is built from it).
    pub fn build(self) -> PipelineSpec {
        self.spec
    }
}

/// Parses durations such as `500ms`, `90s`, `30m`, `24h`, `7d` into microseconds.
pub fn parse_duration_micros(text: &str) -> std::result::Result<i64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (expected e.g. 90s, 30m, 24h, 7d)"))?;
    let mult: i64 = match unit.trim() {
        "us" => 1,
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{text}` (use ms, s, m, h or d)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("duration `{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn also_tables_take_the_outputs_keyed_fields_unless_they_set_their_own() {
        let yaml = "name: orders\nsteps: []\noutput:\n  kind: snapshot\n  key: [id]\n  sequence: [seq]\n  op: op\n  event_time: ts\n  also:\n    - { name: orders_history, kind: historical }\n    - { name: orders_log, kind: append }\n    - { name: by_state, kind: change_state, key: [state_key], state: s, partition_by: [\"day(ts)\"] }\n  schema: {id: int64, seq: int64, op: string, ts: timestamp, s: string, state_key: string}\n";
        let spec = PipelineSpec::from_yaml(yaml).unwrap();
        let also = spec.output.also_outputs();
        assert_eq!(also.len(), 3);
        let (name, history) = &also[0];
        assert_eq!(name, "orders_history");
        assert_eq!(history.kind, TableKind::Historical);
        assert_eq!(
            (history.key.clone(), history.sequence.clone()),
            (vec!["id".to_string()], vec!["seq".to_string()])
        );
        assert_eq!(history.op.as_deref(), Some("op"));
        assert!(history.also.is_empty() && history.full_load.is_upsert());
        // An append table takes no keyed fields, so it validates as an append table.
        let (_, log) = &also[1];
        assert!(log.key.is_empty() && log.sequence.is_empty() && log.op.is_none());
        let (_, states) = &also[2];
        assert_eq!(states.key, vec!["state_key".to_string()]);
        assert_eq!(states.state.as_deref(), Some("s"));
        assert_eq!(states.partition_by, vec!["day(ts)".to_string()]);
        let e = PipelineSpec::from_yaml(
            &yaml.replace("kind: historical }", "kind: historical, wat: 1 }"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("wat"), "{e}");
    }

    #[test]
    fn unknown_step_type_and_field_are_rejected() {
        let e = PipelineSpec::from_yaml(
            "name: x\nsteps:\n  - type: explode\n    column: a\noutput: {schema: {a: string}}\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("explode"), "{e}");
        let e = PipelineSpec::from_yaml(
            "name: x\nsteps:\n  - type: select\n    colums: [a]\noutput: {schema: {a: string}}\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("colums"), "{e}");
    }

    #[test]
    fn yaml_json_and_builder_agree() {
        let yaml = "name: p\nsteps:\n  - type: filter\n    where: a > 1\n  - type: mask\n    columns:\n      e: {method: keep_last, n: 2}\noutput:\n  schema: {a: int64}\n";
        let from_yaml = PipelineSpec::from_yaml(yaml).unwrap();
        let built = PipelineSpec::builder("p")
            .filter("a > 1")
            .mask(
                "e",
                MaskMethod::KeepLast {
                    n: 2,
                    mask_char: '*',
                },
            )
            .output([("a", "int64")])
            .build();
        assert_eq!(from_yaml, built);
        let json = serde_json::to_string(&built).unwrap();
        assert_eq!(PipelineSpec::from_json(&json).unwrap(), built);
        assert_eq!(
            PipelineSpec::from_yaml(&built.to_yaml().unwrap()).unwrap(),
            built
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_micros("90s").unwrap(), 90_000_000);
        assert_eq!(parse_duration_micros("7d").unwrap(), 7 * 86_400_000_000);
        assert!(parse_duration_micros("7 weeks").is_err());
        assert!(parse_duration_micros("h").is_err());
    }
}
