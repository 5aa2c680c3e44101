//! GTID state: the set of transactions a position covers, in a form any server of the
//! replication topology understands.
//!
//! Why it exists: a binlog file/offset names a place in ONE server's binlog; after a fail-over
//! the replica that takes over has other files and offsets for the same transactions. A GTID
//! names the transaction itself, so a position given as "everything up to these GTIDs" can be
//! resumed on any server that has them ([`super::stream`] dumps by GTID).
//!
//! Two notations, one type:
//! - MariaDB: a GTID list, one `domain-server-seq` per replication domain (`0-1-42,1-2-7`): the
//!   last transaction of each domain. A new transaction replaces its domain's entry.
//! - MySQL: a GTID set, `uuid:intervals` per source (`3e11fa47-…:1-5:11`): every transaction
//!   executed. A new transaction is added to its uuid's intervals. MySQL 8.3+ adds **tagged**
//!   GTIDs (`uuid:tag:gno`): each `(uuid, tag)` pair numbers its own transactions, and the text
//!   form lists a uuid's untagged intervals first, then each tag with its intervals
//!   (`uuid:1-5:audit:1-3:batch:7`). Tags are case-insensitive (kept lower-case).
//!
//! Invariants: entries are kept sorted (by domain / uuid) and MySQL intervals merged, so the
//! text form of a set is canonical and two equal sets print the same. Parsing accepts what the
//! servers print (`@@gtid_binlog_pos`, `BINLOG_GTID_POS()`, `@@gtid_executed` with its newlines).
//!
//! How it fails: text that is neither notation → [`ConnectorError::MysqlState`] naming it.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{ConnectorError, Result};

/// One transaction's GTID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gtid {
    /// MariaDB `domain-server-seq`.
    Maria {
        /// Replication domain.
        domain: u32,
        /// Server that originally wrote the transaction.
        server: u32,
        /// Sequence number within the domain.
        seq: u64,
    },
    /// MySQL `uuid:gno`, or `uuid:tag:gno` (MySQL 8.3+).
    Mysql {
        /// Source uuid (lower-case, with dashes).
        uuid: String,
        /// The GTID tag (lower-case); `None` for an untagged GTID.
        tag: Option<String>,
        /// Transaction number.
        gno: u64,
    },
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gtid::Maria {
                domain,
                server,
                seq,
            } => write!(f, "{domain}-{server}-{seq}"),
            Gtid::Mysql {
                uuid,
                tag: Some(tag),
                gno,
            } => write!(f, "{uuid}:{tag}:{gno}"),
            Gtid::Mysql {
                uuid,
                tag: None,
                gno,
            } => write!(f, "{uuid}:{gno}"),
        }
    }
}

/// A MariaDB GTID list and/or a MySQL GTID set (a server uses one of them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidSet {
    /// domain → (server, seq) of the domain's last transaction.
    maria: BTreeMap<u32, (u32, u64)>,
    /// (uuid, tag; `""` untagged) → sorted, disjoint, non-adjacent closed intervals of
    /// transaction numbers. The key order (untagged first) is the canonical text order.
    mysql: BTreeMap<(String, String), Vec<(u64, u64)>>,
}

fn bad(text: &str, why: &str) -> ConnectorError {
    ConnectorError::MysqlState {
        file: String::new(),
        message: format!("`{text}` is not a GTID list/set: {why}"),
        hint: "a GTID position looks like `0-1-42,1-2-7` (MariaDB) or `uuid:1-5:11` (MySQL); \
               fix or delete `gtid_set` in the state file to resume by file/position",
    }
}

impl GtidSet {
    /// Parses a MariaDB GTID list or a MySQL GTID set (empty text: the empty set).
    pub fn parse(text: &str) -> Result<Self> {
        let mut set = GtidSet::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Some((uuid, rest)) = item.split_once(':') {
                let uuid = uuid.trim().to_ascii_lowercase();
                let hex: String = uuid.chars().filter(|c| *c != '-').collect();
                if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(bad(text, "bad uuid"));
                }
                // Interval tokens belong to the last tag named before them (none: untagged).
                let mut tag = String::new();
                let mut tag_has_intervals = true;
                for token in rest.split(':').map(str::trim) {
                    if token.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                        if !tag_has_intervals {
                            return Err(bad(text, "a tag without intervals"));
                        }
                        tag = parse_tag(token).ok_or_else(|| bad(text, "bad tag"))?;
                        tag_has_intervals = false;
                        continue;
                    }
                    let (a, b) = match token.split_once('-') {
                        Some((a, b)) => (a.trim().parse::<u64>(), b.trim().parse::<u64>()),
                        None => (token.parse::<u64>(), token.parse::<u64>()),
                    };
                    match (a, b) {
                        (Ok(a), Ok(b)) if a >= 1 && a <= b => set.add_interval(&uuid, &tag, a, b),
                        _ => return Err(bad(text, "bad interval")),
                    }
                    tag_has_intervals = true;
                }
                if !tag_has_intervals {
                    return Err(bad(text, "a tag without intervals"));
                }
            } else {
                let parts: Vec<&str> = item.split('-').collect();
                let [d, s, n] = parts[..] else {
                    return Err(bad(text, "expected domain-server-seq"));
                };
                match (d.parse(), s.parse(), n.parse()) {
                    (Ok(domain), Ok(server), Ok(seq)) => {
                        // Two entries for one domain: keep the later one.
                        set.merge_maria(domain, server, seq);
                    }
                    _ => return Err(bad(text, "expected numbers")),
                }
            }
        }
        Ok(set)
    }

    /// True when it holds no GTID.
    pub fn is_empty(&self) -> bool {
        self.maria.is_empty() && self.mysql.is_empty()
    }

    /// True when it is a MySQL GTID set (has `uuid:` entries).
    pub fn is_mysql(&self) -> bool {
        !self.mysql.is_empty()
    }

    /// Records that the transaction `gtid` is done: MariaDB replaces its domain's entry (the
    /// binlog order is the domain's order), MySQL adds it to the set.
    pub fn add(&mut self, gtid: &Gtid) {
        match gtid {
            Gtid::Maria {
                domain,
                server,
                seq,
            } => {
                self.maria.insert(*domain, (*server, *seq));
            }
            Gtid::Mysql { uuid, tag, gno } => {
                self.add_interval(uuid, tag.as_deref().unwrap_or(""), *gno, *gno)
            }
        }
    }

    /// Union with `other`: per MariaDB domain the entry with the higher sequence number, per
    /// MySQL uuid the union of the intervals.
    pub fn merge(&mut self, other: &GtidSet) {
        for (domain, (server, seq)) in &other.maria {
            self.merge_maria(*domain, *server, *seq);
        }
        for ((uuid, tag), ivs) in &other.mysql {
            for (a, b) in ivs {
                self.add_interval(uuid, tag, *a, *b);
            }
        }
    }

    /// Adds the MySQL transactions `a..=b` of `uuid` (and `tag`).
    pub fn add_range(&mut self, uuid: &str, tag: Option<&str>, a: u64, b: u64) {
        if a <= b {
            self.add_interval(uuid, tag.unwrap_or(""), a, b);
        }
    }

    fn merge_maria(&mut self, domain: u32, server: u32, seq: u64) {
        let e = self.maria.entry(domain).or_insert((server, seq));
        if seq > e.1 {
            *e = (server, seq);
        }
    }

    fn add_interval(&mut self, uuid: &str, tag: &str, a: u64, b: u64) {
        let ivs = self
            .mysql
            .entry((uuid.to_string(), tag.to_string()))
            .or_default();
        ivs.push((a, b));
        ivs.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ivs.len());
        for &(a, b) in ivs.iter() {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        *ivs = merged;
    }

    /// The MySQL part as the SID blocks of `COM_BINLOG_DUMP_GTID`: one per `(uuid, tag)` (a
    /// tagged block makes the request use the tagged wire format, MySQL 8.3+).
    pub fn mysql_sids(&self) -> Result<Vec<mysql_async::Sid<'static>>> {
        self.mysql
            .iter()
            .map(|((uuid, tag), ivs)| {
                let text = if tag.is_empty() {
                    format!("{uuid}:{}", intervals(ivs))
                } else {
                    format!("{uuid}:{tag}:{}", intervals(ivs))
                };
                text.parse::<mysql_async::Sid<'static>>()
                    .map_err(|e| bad(&text, &e.to_string()))
            })
            .collect()
    }
}

/// A GTID tag as MySQL accepts it: `[a-z_][a-z0-9_]{0,31}`, case-insensitive (lower-cased).
fn parse_tag(token: &str) -> Option<String> {
    let tag = token.to_ascii_lowercase();
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    (first_ok && rest_ok && tag.len() <= 32).then_some(tag)
}

fn intervals(ivs: &[(u64, u64)]) -> String {
    ivs.iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(":")
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { "" } else { "," };
            first = false;
            f.write_str(s)
        };
        for (domain, (server, seq)) in &self.maria {
            sep(f)?;
            write!(f, "{domain}-{server}-{seq}")?;
        }
        // One entry per uuid: its untagged intervals, then each tag with its intervals.
        let mut current: Option<&str> = None;
        for ((uuid, tag), ivs) in &self.mysql {
            if current != Some(uuid.as_str()) {
                sep(f)?;
                f.write_str(uuid)?;
                current = Some(uuid);
            }
            if !tag.is_empty() {
                write!(f, ":{tag}")?;
            }
            write!(f, ":{}", intervals(ivs))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const U2: &str = "4e11fa47-71ca-11e1-9e33-c80aa9429562";

    #[test]
    fn mariadb_lists_keep_the_last_gtid_per_domain() {
        let mut s = GtidSet::parse("1-2-7, 0-1-42").unwrap();
        assert_eq!(s.to_string(), "0-1-42,1-2-7", "sorted by domain");
        s.add(&Gtid::Maria {
            domain: 0,
            server: 2,
            seq: 43,
        });
        s.add(&Gtid::Maria {
            domain: 5,
            server: 1,
            seq: 1,
        });
        assert_eq!(s.to_string(), "0-2-43,1-2-7,5-1-1");
        assert_eq!(GtidSet::parse(&s.to_string()).unwrap(), s, "round trip");
        // Merge: the higher sequence number per domain wins, whichever side has it.
        let mut m = GtidSet::parse("0-1-40,1-2-9").unwrap();
        m.merge(&s);
        assert_eq!(m.to_string(), "0-2-43,1-2-9,5-1-1");
        assert_eq!(GtidSet::parse("0-1-5,0-1-3").unwrap().to_string(), "0-1-5");
        assert!(GtidSet::parse("").unwrap().is_empty());
        assert!(!s.is_mysql());
    }

    #[test]
    fn mysql_sets_merge_intervals() {
        let text = format!("{U2}:1-3,\n{}:1-5:11-12", U1.to_uppercase());
        let mut s = GtidSet::parse(&text).unwrap();
        assert!(s.is_mysql());
        assert_eq!(s.to_string(), format!("{U1}:1-5:11-12,{U2}:1-3"));
        for gno in [6, 8, 7, 10, 9] {
            s.add(&Gtid::Mysql {
                uuid: U1.into(),
                tag: None,
                gno,
            });
        }
        assert_eq!(s.to_string(), format!("{U1}:1-12,{U2}:1-3"));
        s.add(&Gtid::Mysql {
            uuid: U2.into(),
            tag: None,
            gno: 5,
        });
        let mut other = GtidSet::parse(&format!("{U2}:4:20-21")).unwrap();
        other.merge(&s);
        assert_eq!(other.to_string(), format!("{U1}:1-12,{U2}:1-5:20-21"));
        let sids = other.mysql_sids().unwrap();
        assert_eq!(sids.len(), 2);
        assert_eq!(sids[1].intervals().len(), 2);
        assert_eq!(
            (sids[1].intervals()[0].start(), sids[1].intervals()[0].end()),
            (1, 6),
            "half-open on the wire"
        );
    }

    #[test]
    fn tagged_mysql_sets_keep_each_tag_apart_and_round_trip() {
        // As `@@gtid_executed` prints it on MySQL 8.4 (tags may be upper-case in input).
        let mut s = GtidSet::parse(&format!("{U1}:1-5:Audit:1-3:batch:7,{U2}:x:2")).unwrap();
        assert_eq!(
            s.to_string(),
            format!("{U1}:1-5:audit:1-3:batch:7,{U2}:x:2")
        );
        s.add(&Gtid::Mysql {
            uuid: U1.into(),
            tag: Some("audit".into()),
            gno: 4,
        });
        s.add(&Gtid::Mysql {
            uuid: U1.into(),
            tag: None,
            gno: 6,
        });
        let text = s.to_string();
        assert_eq!(text, format!("{U1}:1-6:audit:1-4:batch:7,{U2}:x:2"));
        assert_eq!(GtidSet::parse(&text).unwrap(), s, "round trip");
        let sids = s.mysql_sids().unwrap();
        assert_eq!(sids.len(), 4, "one SID block per (uuid, tag)");
        assert_eq!(
            sids[1].tag().map(|t| t.to_string()).as_deref(),
            Some("audit")
        );
        assert_eq!(
            Gtid::Mysql {
                uuid: U1.into(),
                tag: Some("audit".into()),
                gno: 9
            }
            .to_string(),
            format!("{U1}:audit:9")
        );
        for text in [
            format!("{U1}:1-5:audit"),
            format!("{U1}:9bad:1"),
            format!("{U1}:a-b:1"),
        ] {
            assert!(GtidSet::parse(&text).is_err(), "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_gtid_position() {
        for text in [
            "0-1",
            "a-b-c",
            "zz:1-3",
            &format!("{U1}:5-3"),
            &format!("{U1}:0"),
        ] {
            let e = GtidSet::parse(text).unwrap_err().to_string();
            assert!(e.contains("not a GTID"), "{text}: {e}");
        }
    }
}
