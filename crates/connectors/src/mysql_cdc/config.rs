//! The CDC config: one server profile (URL, server id) and the tables to capture. Parsed with
//! `deny_unknown_fields`, then validated in one place ([`MysqlCdcConfig::validate`]) so that
//! every problem is reported at once with its YAML path.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{ConnectorError, Result};

/// What to do before streaming (Debezium's `snapshot.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotMode {
    /// Snapshot the tables (`op=r`) when there is no saved position, then stream.
    #[default]
    Initial,
    /// Never snapshot: stream from the saved position, or from the current end of the binlog.
    Never,
    /// Snapshot only, then stop (the position is still saved, so a later `never` run continues).
    InitialOnly,
}

/// How the initial snapshot is tied to a binlog position (Debezium's `snapshot.locking.mode`,
/// see [`super::snapshot_lock`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotLocking {
    /// No lock where the server reports the snapshot's position (`binlog_snapshot_*` status:
    /// MariaDB, Percona); elsewhere (Oracle MySQL) a brief global read lock, or table locks when
    /// the global one is not permitted.
    #[default]
    Auto,
    /// Always the brief global read lock (`FLUSH TABLES WITH READ LOCK` while the snapshot
    /// transaction starts and the position is read), falling back to table locks when the user
    /// lacks `RELOAD`.
    GlobalReadLock,
    /// Always `LOCK TABLES … READ` on the captured tables, held while they are read (writers to
    /// those tables wait for the whole snapshot).
    TableLocks,
    /// Never lock: only servers with `binlog_snapshot_*` status; refused elsewhere.
    None,
}

/// How streaming resumes from a saved position (see [`super::position`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResumeBy {
    /// By the saved GTID state: any server holding those transactions can continue (fail-over
    /// to a replica). Needs GTIDs (always on MariaDB; `gtid_mode=ON` on MySQL).
    Gtid,
    /// By the saved binlog file/offset: exact, but only on the server that wrote that binlog.
    Position,
}

/// Config of a MySQL / MariaDB CDC source. `Debug` redacts the URL's password, the password
/// and secret-looking Kafka properties.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlCdcConfig {
    /// `mysql://user[:password]@host:port` (no database needed; not used with `binlog_files`).
    #[serde(default)]
    pub url: String,
    /// Read archived binlog files instead of a server: a folder of binlog files (or one file),
    /// read in binlog order to their end (a backfill after the server purged them). No snapshot
    /// is taken: the files hold changes only.
    #[serde(default)]
    pub binlog_files: Option<PathBuf>,
    /// `CREATE TABLE` statements (`mysqldump --no-data` output) for tables whose binlog has no
    /// column names (`binlog_row_metadata=MINIMAL`) and whose DDL is not in the files.
    #[serde(default)]
    pub schema_ddl: Option<PathBuf>,
    /// Password, if not in the URL (e.g. from an environment variable in the CLI).
    #[serde(default)]
    pub password: Option<crate::secret::Secret>,
    /// TLS, with MySQL's `--ssl-mode` meanings: `disabled` (default), `required` (encrypted,
    /// the certificate unchecked), `verify_identity` (the chain to `ssl_ca` and the host name).
    /// `verify_ca` is refused (the driver cannot skip only the name check).
    #[serde(default)]
    pub ssl_mode: Option<String>,
    /// PEM file of the certificate authorities to trust (default: the system's roots).
    #[serde(default)]
    pub ssl_ca: Option<PathBuf>,
    /// Logical server name: `source.name` in events and the middle of nothing else.
    #[serde(default = "default_name")]
    pub name: String,
    /// Our replica server id: must be unique among the server's replicas.
    #[serde(default = "default_server_id")]
    pub server_id: u32,
    /// Tables to capture, as `db.table`.
    pub tables: Vec<String>,
    /// Snapshot mode.
    #[serde(default)]
    pub snapshot_mode: SnapshotMode,
    /// How the snapshot gets its binlog position (locks or the server's snapshot status).
    #[serde(default)]
    pub snapshot_locking: SnapshotLocking,
    /// How long a lost binlog connection is retried (with backoff, from the last transaction
    /// end handed out) before the source gives up with a retryable error; 0 disables reconnect.
    #[serde(default = "default_reconnect_timeout")]
    pub reconnect_timeout_secs: u64,
    /// How to resume: `gtid` or `position`; unset = `gtid` where the server has GTIDs (MariaDB,
    /// MySQL with `gtid_mode=ON`), else `position`.
    #[serde(default)]
    pub resume_by: Option<ResumeBy>,
    /// Where the position is stored (JSON, written atomically).
    pub state_file: PathBuf,
    /// Kafka topic prefix: events go to `<prefix>.<db>.<table>`.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// Kafka bootstrap servers (only for the Kafka driver).
    #[serde(default)]
    pub kafka_brokers: Option<String>,
    /// Extra librdkafka properties for the Kafka driver (TLS, SASL; values may be
    /// `${env:NAME}`), checked like every Kafka profile.
    #[serde(default)]
    pub kafka_properties: std::collections::BTreeMap<String, String>,
    /// Most events handed out per poll of the binlog (whole transactions, or parts of a large
    /// one: see `max_transaction_events`).
    #[serde(default = "default_batch")]
    pub max_batch_events: usize,
    /// Most change events of one transaction held in memory: a larger transaction is handed
    /// out in parts of this size, each saved with a position inside the transaction, so a
    /// restart reads it again from its start and skips what was handed out.
    #[serde(default = "default_batch")]
    pub max_transaction_events: usize,
    /// Most rows per snapshot batch. The snapshot is streamed from the server as batches are
    /// taken, so the source holds at most this many snapshot rows plus one read ahead.
    #[serde(default = "default_batch")]
    pub snapshot_batch_rows: usize,
}

impl std::fmt::Debug for MysqlCdcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let properties = crate::kafka::redacted(&self.kafka_properties);
        f.debug_struct("MysqlCdcConfig")
            .field("url", &crate::secret::redact_url(&self.url))
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_ca", &self.ssl_ca)
            .field("binlog_files", &self.binlog_files)
            .field("schema_ddl", &self.schema_ddl)
            .field("password", &self.password)
            .field("name", &self.name)
            .field("server_id", &self.server_id)
            .field("tables", &self.tables)
            .field("snapshot_mode", &self.snapshot_mode)
            .field("snapshot_locking", &self.snapshot_locking)
            .field("reconnect_timeout_secs", &self.reconnect_timeout_secs)
            .field("resume_by", &self.resume_by)
            .field("state_file", &self.state_file)
            .field("topic_prefix", &self.topic_prefix)
            .field("kafka_brokers", &self.kafka_brokers)
            .field("kafka_properties", &properties)
            .field("max_batch_events", &self.max_batch_events)
            .field("max_transaction_events", &self.max_transaction_events)
            .field("snapshot_batch_rows", &self.snapshot_batch_rows)
            .finish()
    }
}

fn default_name() -> String {
    "strata".into()
}
fn default_server_id() -> u32 {
    5401
}
fn default_prefix() -> String {
    "cdc".into()
}
fn default_reconnect_timeout() -> u64 {
    60
}
fn default_batch() -> usize {
    10_000
}

impl MysqlCdcConfig {
    /// A config with defaults for everything but the URL, the tables and the state file.
    pub fn new(
        url: impl Into<String>,
        tables: Vec<String>,
        state_file: impl Into<PathBuf>,
    ) -> Self {
        MysqlCdcConfig {
            url: url.into(),
            binlog_files: None,
            schema_ddl: None,
            password: None,
            ssl_mode: None,
            ssl_ca: None,
            name: default_name(),
            server_id: default_server_id(),
            tables,
            snapshot_mode: SnapshotMode::default(),
            snapshot_locking: SnapshotLocking::default(),
            reconnect_timeout_secs: default_reconnect_timeout(),
            resume_by: None,
            state_file: state_file.into(),
            topic_prefix: default_prefix(),
            kafka_brokers: None,
            kafka_properties: std::collections::BTreeMap::new(),
            max_batch_events: default_batch(),
            max_transaction_events: default_batch(),
            snapshot_batch_rows: default_batch(),
        }
    }

    /// Parses YAML and validates it.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let config = Self::parse_yaml(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses YAML without validating it (for callers that override fields first, then call
    /// [`Self::validate`]).
    pub fn parse_yaml(text: &str) -> Result<Self> {
        serde_yaml_ng::from_str(text).map_err(|e| ConnectorError::MysqlConfig {
            problems: vec![format!("(document): {e}")],
        })
    }

    /// Every problem at once, each with its YAML path.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        if self.binlog_files.is_none()
            && !(self.url.starts_with("mysql://") || self.url.starts_with("mariadb://"))
        {
            problems.push(format!(
                "url: `{}` must look like mysql://user@host:port",
                redact(&self.url)
            ));
        }
        if self.server_id == 0 {
            problems.push("server_id: must be > 0 and unique among the server's replicas".into());
        }
        if self.tables.is_empty() {
            problems.push("tables: list at least one `db.table`".into());
        }
        for (i, t) in self.tables.iter().enumerate() {
            if split_table(t).is_none() {
                problems.push(format!("tables[{i}]: `{t}` must be `db.table`"));
            }
        }
        if self.topic_prefix.is_empty() {
            problems.push("topic_prefix: must not be empty".into());
        }
        if self.max_transaction_events == 0 {
            problems.push("max_transaction_events: must be > 0".into());
        }
        if self.max_batch_events == 0 {
            problems.push("max_batch_events: must be > 0".into());
        }
        if self.snapshot_batch_rows == 0 {
            problems.push("snapshot_batch_rows: must be > 0".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConnectorError::MysqlConfig { problems })
        }
    }

    /// The configured tables as `(db, table)`.
    pub fn table_pairs(&self) -> Vec<(String, String)> {
        self.tables
            .iter()
            .filter_map(|t| split_table(t))
            .map(|(d, t)| (d.to_string(), t.to_string()))
            .collect()
    }
}

fn split_table(t: &str) -> Option<(&str, &str)> {
    let (db, table) = t.split_once('.')?;
    (!db.is_empty() && !table.is_empty() && !table.contains('.')).then_some((db, table))
}

/// The URL with its password replaced by `***`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let yaml = "url: postgres://x\nserver_id: 0\ntables: [nodot]\nstate_file: s.json\nsnapshot_batch_rows: 0\n";
        let err = MysqlCdcConfig::from_yaml(yaml).unwrap_err().to_string();
        assert!(err.contains("url:"), "{err}");
        assert!(err.contains("server_id:"), "{err}");
        assert!(err.contains("tables[0]"), "{err}");
        assert!(err.contains("snapshot_batch_rows:"), "{err}");
    }

    #[test]
    fn parses_a_valid_config() {
        let yaml = "url: mysql://root@127.0.0.1:3306\ntables: [shop.orders]\nstate_file: s.json\nsnapshot_mode: initial_only\nsnapshot_locking: table_locks\nresume_by: position\n";
        let c = MysqlCdcConfig::from_yaml(yaml).unwrap();
        assert_eq!(c.snapshot_mode, SnapshotMode::InitialOnly);
        assert_eq!(c.snapshot_locking, SnapshotLocking::TableLocks);
        assert_eq!(c.reconnect_timeout_secs, 60);
        assert_eq!(c.resume_by, Some(ResumeBy::Position));
        assert_eq!(c.snapshot_batch_rows, 10_000);
        assert_eq!(c.table_pairs(), vec![("shop".into(), "orders".into())]);
        assert_eq!(redact("mysql://u:pw@h:1"), "mysql://u:***@h:1");
    }
}
