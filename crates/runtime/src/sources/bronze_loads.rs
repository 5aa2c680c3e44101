//! Whole database loads from bronze, for a table that mirrors its source
//! (`output.full_load: replace`).
//!
//! Such a table deletes every key the newest load lacks, so it must see that load whole and
//! never a part of it. [`LoadPlan::plan`] picks, from the load markers
//! ([`strata_layers::bronze::LoadMarker`]) not yet covered by the table:
//! - the newest complete load: its parts are read, and one commit covers them all;
//! - older complete loads: superseded, covered by the same commit without being read (reading
//!   them would only produce rows the newest load replaces);
//! - loads older than one the table already holds: left alone, with a warning (taking them
//!   would bring back keys a newer load deleted).
//!
//! Parts that no marker names belong to a load that was cut off (or is still running): they are
//! never read.

use std::collections::HashSet;

use strata_layers::bronze::{BronzeFile, LoadMarker};

use crate::error::{Result, RuntimeError};

/// What a source reads for a table that mirrors the newest load, and what its commit covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadPlan {
    /// The newest load's parts, in listing order.
    pub files: Vec<BronzeFile>,
    /// Everything the commit covers: the parts and markers of every load taken.
    pub cover: Vec<String>,
    /// The load read, if any.
    pub load: Option<String>,
    /// Loads covered without being read (superseded by `load`).
    pub superseded: Vec<String>,
    /// Loads older than one already committed, left alone.
    pub stale: Vec<String>,
    /// Parts of no complete load (cut off or still running), not read.
    pub incomplete_parts: usize,
}

impl LoadPlan {
    /// Plans the read of `source` from its `listed` files, its complete `loads` (marker path and
    /// marker, oldest first) and the paths the table already `covered`.
    pub fn plan(
        source: &str,
        listed: &[BronzeFile],
        loads: &[(String, LoadMarker)],
        covered: &HashSet<&String>,
    ) -> Result<LoadPlan> {
        if loads.is_empty() && !listed.is_empty() {
            return Err(RuntimeError::config(
                format!("bronze source `{source}`"),
                format!(
                    "the table mirrors whole full loads (`output.full_load: replace`), and none of its {} files belongs to a complete load: bronze/source={source}/_loads has no marker",
                    listed.len()
                ),
                "load the table with `strata ingest postgres` (which marks each complete load), or drop `full_load: replace`",
            ));
        }
        let newest_held = loads
            .iter()
            .filter(|(path, _)| covered.contains(path))
            .map(|(_, m)| m.load.clone())
            .max();
        let mut plan = LoadPlan::default();
        let mut pending: Vec<&(String, LoadMarker)> = Vec::new();
        for entry in loads {
            let (path, marker) = entry;
            if covered.contains(path) {
                continue;
            }
            if newest_held
                .as_ref()
                .is_some_and(|held| marker.load <= *held)
            {
                plan.stale.push(marker.load.clone());
            } else {
                pending.push(entry);
            }
        }
        pending.sort_by(|a, b| a.1.load.cmp(&b.1.load));
        let named: HashSet<&String> = loads.iter().flat_map(|(_, m)| &m.objects).collect();
        plan.incomplete_parts = listed
            .iter()
            .filter(|f| !named.contains(&f.relative) && !covered.contains(&f.relative))
            .count();
        let Some(((_, newest), older)) = pending.split_last() else {
            return Ok(plan);
        };
        let by_path: std::collections::HashMap<&String, &BronzeFile> =
            listed.iter().map(|f| (&f.relative, f)).collect();
        for object in &newest.objects {
            let Some(file) = by_path.get(object) else {
                return Err(RuntimeError::Protocol {
                    table: format!("bronze/source={source}"),
                    problem: format!(
                        "load {} names the part {object}, which is not in bronze",
                        newest.load
                    ),
                    hint: "a part of a complete load was deleted: run the full load again",
                });
            };
            plan.files.push((*file).clone());
        }
        plan.files.sort_by(|a, b| a.relative.cmp(&b.relative));
        for (path, marker) in &pending {
            plan.cover.push(path.clone());
            plan.cover.extend(marker.objects.iter().cloned());
        }
        plan.superseded = older.iter().map(|(_, m)| m.load.clone()).collect();
        plan.load = Some(newest.load.clone());
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_layers::bronze::BronzeDate;

    fn file(name: &str) -> BronzeFile {
        let relative = format!("bronze/source=pg.t/date=2026-12-01/{name}.parquet");
        BronzeFile {
            path: relative.as_str().into(),
            relative,
            source: "pg.t".into(),
            date: BronzeDate::parse("2026-12-01").unwrap(),
            size: 1,
        }
    }

    fn load(stamp: &str, parts: &[&str]) -> (String, LoadMarker) {
        (
            format!("bronze/source=pg.t/_loads/full-{stamp}.json"),
            LoadMarker {
                load: format!("full-{stamp}"),
                snapshot_time: String::new(),
                objects: parts.iter().map(|p| file(p).relative).collect(),
                rows: 0,
            },
        )
    }

    #[test]
    fn the_newest_complete_load_is_read_whole_and_older_ones_are_covered_unread() {
        let listed: Vec<BronzeFile> = [
            "full-1-p0",
            "full-1-p1",
            "full-2-p0",
            "full-2-p1",
            "full-3-p0",
        ]
        .iter()
        .map(|n| file(n))
        .collect();
        // Load 3 was cut off: no marker.
        let loads = vec![
            load("1", &["full-1-p0", "full-1-p1"]),
            load("2", &["full-2-p0", "full-2-p1"]),
        ];
        let plan = LoadPlan::plan("pg.t", &listed, &loads, &HashSet::new()).unwrap();
        assert_eq!(plan.load.as_deref(), Some("full-2"));
        assert_eq!(plan.files, vec![file("full-2-p0"), file("full-2-p1")]);
        assert_eq!(plan.superseded, vec!["full-1".to_string()]);
        assert_eq!(plan.cover.len(), 6);
        assert_eq!(plan.incomplete_parts, 1);
        // Once load 2 is held, load 1 (never read) is stale, and nothing is read.
        let held: HashSet<&String> = [&loads[1].0].into_iter().collect();
        let plan = LoadPlan::plan("pg.t", &listed, &loads[..], &held).unwrap();
        assert_eq!(plan.load, None);
        assert!(plan.files.is_empty() && plan.cover.is_empty());
        assert_eq!(plan.stale, vec!["full-1".to_string()]);
    }

    #[test]
    fn files_without_any_marker_or_a_marker_naming_a_missing_part_are_errors() {
        let listed = vec![file("full-1-p0")];
        let err = LoadPlan::plan("pg.t", &listed, &[], &HashSet::new()).unwrap_err();
        assert!(err.to_string().contains("_loads has no marker"), "{err}");
        let loads = vec![load("1", &["full-1-p0", "full-1-p9"])];
        let err = LoadPlan::plan("pg.t", &listed, &loads, &HashSet::new()).unwrap_err();
        assert!(err.to_string().contains("full-1-p9"), "{err}");
        // No files and no loads: nothing to do.
        let plan = LoadPlan::plan("pg.t", &[], &[], &HashSet::new()).unwrap();
        assert_eq!(plan, LoadPlan::default());
    }
}
