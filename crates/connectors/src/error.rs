//! The one error type of `strata-connectors`: every variant says which file / position, and
//! whether retrying can help.

use thiserror::Error;

/// Result alias of this crate.
pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

/// What can go wrong reading or writing an external system.
#[derive(Debug, Error)]
pub enum ConnectorError {
    /// The file cannot be opened or read.
    #[error("cannot read `{file}`: {source} (hint: {hint})")]
    Io {
        /// Path.
        file: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
        /// What to check.
        hint: &'static str,
    },

    /// A compressed file is corrupt or truncated; records up to `line` were delivered.
    #[error("`{file}` is corrupt or truncated after line {line} ({compression}): {message}")]
    Corrupt {
        /// Path.
        file: String,
        /// Last good line.
        line: u64,
        /// `gzip` or `zstd`.
        compression: &'static str,
        /// The decoder's message.
        message: String,
    },

    /// A Kafka operation failed.
    #[error("kafka `{brokers}`, topic `{topic}`: {message} (hint: {hint})")]
    Kafka {
        /// Bootstrap servers.
        brokers: String,
        /// Topic, or empty for cluster-level operations.
        topic: String,
        /// librdkafka's message.
        message: String,
        /// What to check.
        hint: &'static str,
    },

    /// A Kafka property contradicts a setting exactly-once depends on.
    #[error(
        "kafka property `{key}={value}` is not allowed: Strata sets `{key}={required}` because {why} (hint: remove it from -X / the config)"
    )]
    KafkaProperty {
        /// The property.
        key: String,
        /// The user's value.
        value: String,
        /// What Strata sets.
        required: &'static str,
        /// Why.
        why: &'static str,
    },

    /// A Kafka properties file (`--kafka-config`) is unreadable as one; `line` 0 is the whole
    /// file. The problem never quotes a value or the text of a line.
    #[error(
        "kafka config file `{file}`{}: {problem} (hint: one `key=value` per line, `#` comments; see docs/streaming.md)",
        line_suffix(*.line)
    )]
    KafkaConfigFile {
        /// The file, as given.
        file: String,
        /// 1-based line, or 0 for the whole file.
        line: usize,
        /// What is wrong.
        problem: String,
    },

    /// A `${env:NAME}` reference in a Kafka setting cannot be resolved.
    #[error(
        "kafka property `{key}`: environment variable `{variable}` {problem} (hint: export it, or fix the `${{env:NAME}}` reference)"
    )]
    KafkaEnv {
        /// The property (or `brokers`).
        key: String,
        /// The variable.
        variable: String,
        /// What is wrong.
        problem: &'static str,
    },

    /// A bug in strata-connectors.
    #[error("internal error (a bug in strata-connectors, please report it): {0}")]
    Internal(String),

    /// Building a batch for the core failed.
    #[error("building a batch for `{file}` at line {line}: {source}")]
    Batch {
        /// Path.
        file: String,
        /// First line of the batch.
        line: u64,
        /// The core's error.
        #[source]
        source: Box<strata_core::CoreError>,
    },

    /// An Arrow schema cannot be written as Avro (a config problem: fix the pipeline's output).
    #[error("column `{column}` cannot be mapped to Avro: {reason} (hint: {hint})")]
    AvroSchema {
        /// Dotted path of the column (`location.lat`), or the record name.
        column: String,
        /// What is wrong.
        reason: String,
        /// What to change.
        hint: &'static str,
    },

    /// A row could not be encoded as Avro (data that does not fit the declared schema).
    #[error("encoding row {row} as Avro failed at `{column}`: {reason}")]
    AvroEncode {
        /// Dotted path of the column.
        column: String,
        /// Row index within the batch.
        row: usize,
        /// What went wrong.
        reason: String,
    },

    /// A message is not a valid Confluent-framed Avro datum of its writer schema.
    #[error("cannot decode Avro message {message}: {reason} (hint: {hint})")]
    AvroDecode {
        /// Which message (index in the input, or the schema id).
        message: String,
        /// What went wrong.
        reason: String,
        /// What to check.
        hint: &'static str,
    },

    /// The schema registry could not be reached (network, TLS, timeout): retryable.
    #[error("schema registry `{url}` unreachable during {operation}: {source} (hint: {hint})")]
    RegistryUnreachable {
        /// Request URL.
        url: String,
        /// What the client was doing (`register`, `get schema by id`, …).
        operation: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
        /// What to check.
        hint: &'static str,
    },

    /// The schema registry answered with an error status.
    #[error(
        "schema registry refused {operation}: HTTP {status}, error_code {error_code}: {message} (hint: {hint})"
    )]
    Registry {
        /// What the client was doing, with the subject / id.
        operation: String,
        /// HTTP status.
        status: u16,
        /// The registry's `error_code` (40401 subject not found, 40403 schema not found, …).
        error_code: i64,
        /// The registry's `message`.
        message: String,
        /// What to do.
        hint: &'static str,
    },

    /// A new schema breaks the subject's compatibility rule: registering it was refused.
    #[error(
        "schema for subject `{subject}` is not {level} compatible with the registered versions: {reasons} (hint: make the change compatible, e.g. give new fields a default, or change the subject's compatibility level on purpose)"
    )]
    SchemaIncompatible {
        /// Subject (`topic-value`).
        subject: String,
        /// The subject's compatibility level.
        level: String,
        /// Why, as reported by the compatibility check.
        reasons: String,
    },

    /// The registry server's state file is unreadable, corrupt or cannot be written.
    #[error("registry state file `{file}`: {reason} (hint: {hint})")]
    RegistryState {
        /// Path of the JSON state file.
        file: String,
        /// What went wrong.
        reason: String,
        /// What to do.
        hint: &'static str,
    },

    /// The registry server's credentials are incomplete or contradictory.
    #[error("registry authentication: {reason} (hint: see `strata registry serve --help`)")]
    RegistryAuth {
        /// What is wrong (names the flag, never a secret).
        reason: String,
    },

    /// The registry server cannot listen on its address.
    #[error("cannot listen on `{addr}`: {source} (hint: pick a free port, or 127.0.0.1:0 for any)")]
    Listen {
        /// Requested address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The PostgreSQL source config is invalid: every problem, each with its YAML path.
    #[error("invalid PostgreSQL source config:\n  - {}", problems.join("\n  - "))]
    PgConfig {
        /// `path: problem` lines.
        problems: Vec<String>,
    },

    /// Connecting or authenticating to PostgreSQL failed.
    #[error(
        "cannot connect to PostgreSQL as `{user}` at {host}, database `{database}`: {message} (hint: {hint})"
    )]
    PgConnect {
        /// `host:port`.
        host: String,
        /// Database.
        database: String,
        /// Role.
        user: String,
        /// The server's or the client's message.
        message: String,
        /// What to check.
        hint: String,
        /// True for network failures and full servers.
        retryable: bool,
    },

    /// A configured table does not exist.
    #[error("PostgreSQL table `{table}` does not exist in database `{database}` (hint: {hint})")]
    PgTableNotFound {
        /// Database.
        database: String,
        /// `schema.table`.
        table: String,
        /// What to check.
        hint: String,
    },

    /// A configured column is missing, or the relation cannot be read as a table.
    #[error("PostgreSQL `{table}` column `{column}` {problem} (hint: {hint})")]
    PgColumn {
        /// `schema.table`.
        table: String,
        /// Column (empty when about the relation).
        column: String,
        /// What is wrong.
        problem: String,
        /// What to change.
        hint: &'static str,
    },

    /// The role lacks a privilege on a table.
    #[error(
        "permission denied: role `{user}` lacks the {privilege} privilege on PostgreSQL table `{table}`: {message} (hint: {hint})"
    )]
    PgPermission {
        /// `schema.table`.
        table: String,
        /// Role.
        user: String,
        /// The privilege needed.
        privilege: &'static str,
        /// The server's message.
        message: String,
        /// The GRANT to ask for.
        hint: String,
    },

    /// A statement on a table failed.
    #[error(
        "PostgreSQL query on `{table}` ({chunk}) failed [SQLSTATE {code}]: {message} (hint: {hint})"
    )]
    PgQuery {
        /// `schema.table`.
        table: String,
        /// Chunk label or `planning`.
        chunk: String,
        /// SQLSTATE (empty for I/O errors).
        code: String,
        /// The server's or the client's message.
        message: String,
        /// What to do.
        hint: String,
        /// True for lost connections, shutdowns, serialization failures.
        retryable: bool,
    },

    /// A binary COPY value cannot be decoded or has no faithful Arrow value.
    #[error(
        "decoding PostgreSQL `{table}` column `{column}` at row {row} of its chunk: {problem} (hint: {hint})"
    )]
    PgDecode {
        /// `schema.table`.
        table: String,
        /// Column (empty for stream-level problems).
        column: String,
        /// Row number within the chunk (1-based).
        row: u64,
        /// What is wrong.
        problem: String,
        /// What to do.
        hint: &'static str,
    },

    /// Exporting or importing the shared snapshot failed.
    #[error("PostgreSQL snapshot: {message} (hint: {hint})")]
    PgSnapshot {
        /// The server's message.
        message: String,
        /// What to do.
        hint: String,
    },

    /// The incremental watermark state file cannot be read or written.
    #[error("watermark state file `{file}`: {message} (hint: {hint})")]
    PgState {
        /// Path.
        file: String,
        /// What went wrong.
        message: String,
        /// What to do.
        hint: &'static str,
    },

    /// The consumer of a loaded part (e.g. the bronze writer) failed.
    #[error("writing `{table}` chunk {chunk} part {part} failed: {message}")]
    Sink {
        /// `schema.table`.
        table: String,
        /// Chunk label.
        chunk: String,
        /// Part number.
        part: u32,
        /// The consumer's error.
        message: String,
    },

    /// The MySQL CDC config is invalid: every problem, each with its YAML path.
    #[error("invalid MySQL CDC config:\n  - {}", problems.join("\n  - "))]
    MysqlConfig {
        /// `path: problem` lines.
        problems: Vec<String>,
    },

    /// Connecting or authenticating to MySQL / MariaDB failed.
    #[error("cannot connect to MySQL at {host} as `{user}`: {message} (hint: {hint})")]
    MysqlConnect {
        /// `host:port`.
        host: String,
        /// User.
        user: String,
        /// The server's or the client's message.
        message: String,
        /// What to check.
        hint: String,
        /// True for network failures.
        retryable: bool,
    },

    /// A server setting makes row-based CDC impossible (fix the server config).
    #[error("MySQL server setting `{variable}` is `{actual}`, CDC needs {expected} (hint: {hint})")]
    MysqlSetting {
        /// Variable name (`binlog_format`, …).
        variable: String,
        /// Its current value.
        actual: String,
        /// What it must be.
        expected: String,
        /// What to change.
        hint: String,
    },

    /// The CDC user lacks a privilege.
    #[error("MySQL user `{user}` lacks the {privilege} privilege: {message} (hint: {hint})")]
    MysqlPrivilege {
        /// User.
        user: String,
        /// Privilege needed.
        privilege: String,
        /// The server's message or what was seen.
        message: String,
        /// The GRANT to ask for.
        hint: String,
    },

    /// A configured table does not exist.
    #[error("MySQL table `{table}` does not exist (hint: {hint})")]
    MysqlTableNotFound {
        /// `db.table`.
        table: String,
        /// What to check.
        hint: String,
    },

    /// A query or the binlog stream failed.
    #[error("MySQL {operation} failed: {message} (hint: {hint})")]
    MysqlQuery {
        /// What was being done (`snapshot of shop.orders`, `binlog stream`, …).
        operation: String,
        /// The server's or the client's message.
        message: String,
        /// What to do.
        hint: String,
        /// True for lost connections.
        retryable: bool,
    },

    /// A binlog or snapshot value cannot be decoded faithfully.
    #[error("decoding MySQL `{table}` column `{column}` at {position}: {problem} (hint: {hint})")]
    MysqlDecode {
        /// `db.table`.
        table: String,
        /// Column (empty for event-level problems).
        column: String,
        /// `file:pos` or `snapshot`.
        position: String,
        /// What is wrong.
        problem: String,
        /// What to do.
        hint: &'static str,
    },

    /// The CDC position state file cannot be read or written.
    #[error("MySQL CDC state file `{file}`: {message} (hint: {hint})")]
    MysqlState {
        /// Path.
        file: String,
        /// What went wrong.
        message: String,
        /// What to do.
        hint: &'static str,
    },

    /// An HTTP poller or webhook config is invalid: every problem, each with its YAML path.
    #[error("invalid {what} config `{file}`:\n  - {}", problems.join("\n  - "))]
    ApiConfig {
        /// `HTTP poller` or `webhook receiver`.
        what: &'static str,
        /// The config file.
        file: String,
        /// One line per problem.
        problems: Vec<String>,
    },

    /// An HTTP request of the poller failed for good (after retries, or a 4xx that retrying
    /// cannot fix). The URL never carries secrets (they are redacted before it is rendered).
    #[error("{source_name}: {request} → {status_text}: {message} (hint: {hint})", status_text = status.map(|s| s.to_string()).unwrap_or_else(|| "no response".into()))]
    Http {
        /// The poller's name.
        source_name: String,
        /// Method and URL (`GET https://…`), secrets redacted.
        request: String,
        /// The response status, when there was a response.
        status: Option<u16>,
        /// What happened (the response body's start, or the transport error).
        message: String,
        /// What to do (may name the config's variables, never a secret's value).
        hint: String,
    },

    /// A cursor / state file of an API source cannot be read or written.
    #[error("state file `{file}`: {message} (hint: {hint})")]
    StateFile {
        /// Path.
        file: String,
        /// What went wrong.
        message: String,
        /// What to do.
        hint: &'static str,
    },
}

impl ConnectorError {
    /// True when the error is about the Kafka cluster being unreachable (retry later).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ConnectorError::Kafka { hint, .. } if hint.starts_with("is the broker reachable"))
    }

    /// True when retrying the same operation may succeed (transient I/O).
    pub fn is_retryable(&self) -> bool {
        match self {
            ConnectorError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
            ),
            ConnectorError::RegistryUnreachable { .. } => true,
            ConnectorError::Registry { status, .. } => *status >= 500,
            ConnectorError::PgConnect { retryable, .. }
            | ConnectorError::PgQuery { retryable, .. }
            | ConnectorError::MysqlConnect { retryable, .. }
            | ConnectorError::MysqlQuery { retryable, .. } => *retryable,
            _ => false,
        }
    }
}

/// ` line N` for a line number, nothing for 0 (the whole file).
fn line_suffix(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" line {line}")
    }
}
