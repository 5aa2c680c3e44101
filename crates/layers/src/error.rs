//! The one error type of `strata-layers`.

use thiserror::Error;

/// Result alias of this crate.
pub type Result<T, E = LayersError> = std::result::Result<T, E>;

/// What can go wrong writing a layer.
#[derive(Debug, Error)]
pub enum LayersError {
    /// The target exists; layers never overwrite data.
    #[error(
        "`{path}` already exists; Strata never overwrites output (hint: choose another output folder or remove it)"
    )]
    AlreadyExists {
        /// Path.
        path: String,
    },

    /// Filesystem error.
    #[error("file system, `{path}`: {source}")]
    Io {
        /// Path.
        path: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },

    /// Parquet encoding error.
    #[error("writing Parquet `{path}`: {source}")]
    Parquet {
        /// Path.
        path: String,
        /// Encoder error.
        #[source]
        source: parquet::errors::ParquetError,
    },

    /// A lake URL that cannot be opened.
    #[error("lake root `{url}`: {problem}")]
    LakeUrl {
        /// The URL.
        url: String,
        /// Why.
        problem: String,
    },

    /// A value that would make an unsafe or invalid bronze path.
    #[error("invalid bronze {kind} `{value}`: {problem}")]
    BronzeName {
        /// `source`, `date`, `file name`, …
        kind: &'static str,
        /// The value, escaped.
        value: String,
        /// What is wrong.
        problem: String,
    },

    /// The object exists with different bytes: two writers claim the same source positions.
    #[error(
        "`{path}` already exists with different content; bronze is append-only (hint: two writers produced the same source positions — check partition assignment)"
    )]
    BronzeConflict {
        /// Path below the lake root.
        path: String,
    },

    /// A cooling policy or run is wrong.
    #[error("cooling: {problem}")]
    Cooling {
        /// What is wrong.
        problem: String,
    },

    /// A media blob a source's policy refuses (type, size), before anything was written.
    #[error("media for source `{source_name}` refused: {problem}")]
    MediaRefused {
        /// The bronze source.
        source_name: String,
        /// Why.
        problem: String,
    },

    /// A record with a newline cannot be stored as one NDJSON line.
    #[error(
        "record {index} for `{path}` contains a newline and cannot be one NDJSON line (hint: use the Parquet flavour)"
    )]
    RecordHasNewline {
        /// Path below the lake root.
        path: String,
        /// Index of the record in the write.
        index: usize,
    },

    /// Nothing to write.
    #[error("nothing to write to `{path}`")]
    Empty {
        /// Path below the lake root.
        path: String,
    },

    /// A bronze file that is not NDJSON was opened as lines.
    #[error(
        "`{path}` is not an NDJSON file: {found}; bronze reads NDJSON (plain, gzip or zstd, \
         named .ndjson, .json, .jsonl or anything whose content is JSON lines) and Parquet \
         (named .parquet)"
    )]
    NotLineFormat {
        /// Path below the lake root.
        path: String,
        /// What the first bytes look like.
        found: String,
    },

    /// A compressed object is corrupt or truncated; the records up to `line` were delivered.
    #[error("`{path}` is corrupt or truncated after line {line} ({compression}): {message}")]
    Corrupt {
        /// Path below the lake root.
        path: String,
        /// Last good line.
        line: u64,
        /// Compression.
        compression: &'static str,
        /// Decoder message.
        message: String,
    },

    /// An object store error.
    #[error("object store, `{path}`: {source}{}", cold_hint(.path, .source))]
    Store {
        /// Path below the lake root.
        path: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },

    /// An Iceberg catalog / table operation failed.
    #[error("iceberg, {context}: {message}")]
    Iceberg {
        /// What we were doing.
        context: String,
        /// iceberg-rust's message.
        message: String,
    },

    /// The pipeline's output changed in a way the table cannot follow.
    #[error("silver table `{table}`: column `{column}` {change}")]
    SchemaChange {
        /// Table.
        table: String,
        /// Column.
        column: String,
        /// The change and why it is refused.
        change: String,
    },

    /// A pipeline's output cannot be stored as a silver table (found by validation).
    #[error("the output cannot be stored in silver: {problems}")]
    UnsupportedSchema {
        /// Every problem, each naming its column.
        problems: String,
    },

    /// A SQL query failed to plan or run.
    #[error("query failed: {message}\n  query: {query}")]
    Query {
        /// The SQL text.
        query: String,
        /// DataFusion's message.
        message: String,
    },

    /// Another writer committed to the table first, every time we retried.
    #[error(
        "silver table `{table}`: another writer committed first {attempts} times in a row (hint: one batch per table at a time, or re-run: covered inputs are skipped)"
    )]
    CommitConflict {
        /// Table.
        table: String,
        /// Commit attempts made.
        attempts: usize,
    },

    /// A newer writer took over the table (a higher writer epoch): this one must stop.
    #[error(
        "silver table `{table}`: fenced by a newer writer (epoch {current} > ours {ours}); this writer stops (hint: one streaming writer per table — the newer one continues)"
    )]
    Fenced {
        /// Table.
        table: String,
        /// Our epoch.
        ours: i64,
        /// The table's epoch.
        current: i64,
    },

    /// The catalog database cannot be opened.
    #[error("catalog `{uri}`: {message} (hint: {hint})")]
    Catalog {
        /// Catalog URL, password redacted.
        uri: String,
        /// The driver's message.
        message: String,
        /// What to check.
        hint: &'static str,
    },

    /// A gold model that cannot be used: its header, its SQL, or its place in the DAG.
    #[error("model {file}{at}: {problem} (hint: {hint})")]
    Model {
        /// The model's file (or name, when no file holds it).
        file: String,
        /// `:line:column` in the file when known, else empty.
        at: String,
        /// What is wrong.
        problem: String,
        /// What to do.
        hint: &'static str,
    },

    /// A bug.
    #[error("internal error (a bug in strata-layers, please report it): {0}")]
    Internal(String),
}

/// The hint for an object in an archive storage class (S3 answers `InvalidObjectState`): it
/// must be restored before it can be read, which is never waited for.
pub fn cold_hint(path: &str, source: &dyn std::fmt::Display) -> String {
    if !source.to_string().contains("InvalidObjectState") {
        return String::new();
    }
    format!(
        " (hint: `{path}` is in an archive storage class (`strata lake cool` moved it); restore          it first: `aws s3api restore-object --bucket <lake bucket> --key <lake prefix>/{path}          --restore-request Days=7`, then read again once the restore has completed)"
    )
}
