//! The one position type: how far a source has been read, in terms the source can seek to.
//!
//! Every driver stores positions with its output (a silver snapshot summary, a state file, a
//! Kafka transaction), so a restarted driver resumes from what was committed, not from memory.
//! The same serde form (`{"kind": "kafka", …}`) is used everywhere a position is written.
//! [`SummaryKeys`] names the snapshot-summary keys once for every table writer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How far a source has been read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Position {
    /// Kafka: the next offset to read, per partition of one topic.
    Kafka {
        /// Next offset per partition (JSON: `{"0": 10}`).
        #[serde(with = "partition_keys")]
        next_offsets: BTreeMap<i32, i64>,
    },
    /// Files (bronze objects or local files) read completely, in the order they were read.
    Files {
        /// Paths (below the lake root for bronze).
        files: Vec<String>,
    },
    /// A MySQL / MariaDB binlog coordinate, with the GTID set executed up to it when known.
    Binlog {
        /// Binlog file name.
        file: String,
        /// Offset in it.
        pos: u64,
        /// GTID set (MySQL) or GTID list (MariaDB), if the server has GTIDs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gtid_set: Option<String>,
        /// GTID of the last transaction before this point, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gtid: Option<String>,
        /// `@@server_id` of the server whose binlog `file`/`pos` point into, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_id: Option<u32>,
        /// Inside a transaction handed out in parts: how much of the transaction starting at
        /// `file`/`pos` was handed out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        part: Option<strata_connectors::mysql_cdc::TxnPart>,
    },
    /// An HTTP API cursor: the cursor sent on the next cycle and, for a cycle cut off
    /// mid-pagination, the page it resumes at.
    Cursor {
        /// Cursor value sent on the next cycle (e.g. X `since_id`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
        /// An unfinished cycle: its next page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<strata_connectors::http::CycleProgress>,
        /// Cycles completed.
        #[serde(default)]
        cycles: u64,
    },
    /// A push source (the webhook receiver): requests taken so far by this process. Nothing to
    /// seek to — a request not answered "stored" is retried by its sender.
    Pushed {
        /// Requests taken.
        requests: u64,
    },
    /// A consistent database load (PostgreSQL full / incremental): the snapshot it read and the
    /// watermark of every incremental table after it (the next run reads past these).
    Snapshot {
        /// The snapshot's time (UTC, ISO 8601).
        time: String,
        /// Watermarks by `schema.table`.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        watermarks: BTreeMap<String, strata_connectors::postgres::WatermarkEntry>,
    },
}

impl Position {
    /// An empty Kafka position.
    pub fn kafka(next_offsets: BTreeMap<i32, i64>) -> Self {
        Position::Kafka { next_offsets }
    }

    /// Files read completely.
    pub fn files(files: impl IntoIterator<Item = String>) -> Self {
        Position::Files {
            files: files.into_iter().collect(),
        }
    }

    /// Folds a later position of the same source into this one: Kafka offsets only move forward
    /// per partition, files accumulate, the others are replaced by the later value. Positions of
    /// different kinds do not fold (the later one wins, which a driver never asks for).
    pub fn advance(&mut self, later: Position) {
        match (self, later) {
            (Position::Kafka { next_offsets: a }, Position::Kafka { next_offsets: b }) => {
                for (p, o) in b {
                    let e = a.entry(p).or_insert(o);
                    *e = (*e).max(o);
                }
            }
            (Position::Files { files: a }, Position::Files { files: b }) => a.extend(b),
            (this, later) => *this = later,
        }
    }

    /// Units of input this position covers (files for a file source; 0 otherwise), for a
    /// commit policy bounded by files per commit.
    pub fn units(&self) -> usize {
        match self {
            Position::Files { files } => files.len(),
            _ => 0,
        }
    }

    /// The Kafka offsets, if this is a Kafka position.
    pub fn kafka_offsets(&self) -> Option<&BTreeMap<i32, i64>> {
        match self {
            Position::Kafka { next_offsets } => Some(next_offsets),
            _ => None,
        }
    }

    /// The JSON form written next to output.
    pub fn to_json(&self) -> String {
        // A position is plain strings and numbers: serialising it cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the JSON form back.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// Partition numbers as JSON object keys (text), read back as numbers; an internally tagged
/// enum cannot rely on serde_json's own integer-key handling.
mod partition_keys {
    use std::collections::BTreeMap;

    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(map: &BTreeMap<i32, i64>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(map.iter().map(|(p, o)| (p.to_string(), o)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<i32, i64>, D::Error> {
        BTreeMap::<String, i64>::deserialize(d)?
            .into_iter()
            .map(|(p, o)| {
                p.parse::<i32>()
                    .map(|p| (p, o))
                    .map_err(|e| D::Error::custom(format!("partition `{p}`: {e}")))
            })
            .collect()
    }
}

/// Snapshot-summary keys of every Strata table commit, defined once.
#[derive(Debug, Clone, Copy)]
pub struct SummaryKeys;

impl SummaryKeys {
    /// What a commit covers (a JSON list: bronze files); the layers crate reads it for coverage.
    pub const COVERED: &'static str = strata_layers::silver::COVERED_KEY;
    /// The source position after the commit (Kafka: `{"partition": next offset}`).
    pub const KAFKA_POSITIONS: &'static str = "strata.kafka.positions";
    /// The pipeline checkpoint after the commit: a path below the lake root (the last full
    /// state; the deltas after it are in [`SummaryKeys::STATE_DELTAS`]).
    pub const STATE: &'static str = "strata.state";
    /// The state deltas written after [`SummaryKeys::STATE`], oldest first: a JSON list of paths.
    pub const STATE_DELTAS: &'static str = "strata.state.deltas";
    /// The epoch of the writer that made the commit (fencing of zombie writers).
    pub const WRITER_EPOCH: &'static str = "strata.writer.epoch";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_json() {
        let all = [
            Position::kafka(BTreeMap::from([(0, 10), (3, 7)])),
            Position::files(["bronze/source=a/date=2026-01-01/x.ndjson".to_string()]),
            Position::Binlog {
                file: "binlog.000003".into(),
                pos: 1234,
                gtid_set: Some("0-1-45".into()),
                gtid: Some("0-1-45".into()),
                server_id: Some(1),
                part: Some(strata_connectors::mysql_cdc::TxnPart {
                    events: 30_000,
                    file: "binlog.000003".into(),
                    pos: 2000,
                    row: 17,
                }),
            },
            Position::Cursor {
                cursor: Some("1861".into()),
                resume: None,
                cycles: 3,
            },
            Position::Cursor {
                cursor: Some("1861".into()),
                resume: Some(strata_connectors::http::CycleProgress {
                    cursor_sent: Some("1861".into()),
                    next_token: "tok20".into(),
                    next_page: 3,
                    new_cursor: Some("1900".into()),
                }),
                cycles: 3,
            },
            Position::Pushed { requests: 42 },
            Position::Snapshot {
                time: "2026-11-20T00:00:00.000001Z".into(),
                watermarks: BTreeMap::from([(
                    "public.orders".to_string(),
                    strata_connectors::postgres::WatermarkEntry {
                        column: "updated_at".into(),
                        last: "2026-11-20 00:00:00+00".into(),
                        snapshot_time: "2026-11-20T00:00:00.000001Z".into(),
                    },
                )]),
            },
        ];
        for p in all {
            assert_eq!(Position::from_json(&p.to_json()).unwrap(), p);
        }
    }

    #[test]
    fn kafka_offsets_only_move_forward_and_files_accumulate() {
        let mut k = Position::kafka(BTreeMap::from([(0, 10), (1, 5)]));
        k.advance(Position::kafka(BTreeMap::from([(0, 8), (1, 9), (2, 1)])));
        assert_eq!(
            k.kafka_offsets().unwrap(),
            &BTreeMap::from([(0, 10), (1, 9), (2, 1)])
        );
        let mut f = Position::files(["a".to_string()]);
        f.advance(Position::files(["b".to_string()]));
        assert_eq!(f.units(), 2);
    }
}
