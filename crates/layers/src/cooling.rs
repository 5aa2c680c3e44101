//! Cooling: partitions of bronze, silver and gold that are old and unused move to a cheaper S3
//! storage class, in place.
//!
//! - **Policy** (YAML, [`CoolingPolicy`]): per layer, after how many days since a partition's
//!   last write and since its last read ([`crate::access`]) it moves, and to which class; the
//!   price per GB-month of each class, for the estimate.
//! - **Partitions:** a bronze `source=<s>/date=<d>` folder (media included); a silver or gold
//!   table's data folder per partition value (`data/<partition>/…`). Iceberg metadata, manifests,
//!   pipeline state and the access log are never moved: they are small and read by every query.
//! - **Last write** is the newest object's modification time; **last read** is the access log's
//!   (a table read counts for all its partitions).
//! - **In place:** each object is written again at the same key with the new class, so Iceberg
//!   metadata and bronze names stay valid. object_store has no copy with a storage class, so the
//!   bytes pass through this process (S3's CopyObject would not move them). A marker under
//!   `_cooling/` records each moved partition; a later run skips it.
//! - A dry run lists the moves, the bytes and the monthly saving, and changes nothing.
//! - [`lifecycle_rules`] gives the equivalent S3 lifecycle configuration (write age only: a
//!   bucket rule cannot see Strata's reads).

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt, PutMode, PutOptions};
use serde::{Deserialize, Serialize};

use crate::access::last_read;
use crate::error::{LayersError, Result};
use crate::lake::Lake;

/// The folder of cooling markers below the lake root.
pub const COOLING_FOLDER: &str = "_cooling";

/// `cooling.yaml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CoolingPolicy {
    /// USD per GB-month of each storage class (`STANDARD` is what objects start in).
    pub prices: BTreeMap<String, f64>,
    /// One rule per layer at most.
    pub rules: Vec<CoolingRule>,
}

/// When the partitions of a layer move, and where.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CoolingRule {
    /// `bronze`, `silver` or `gold`.
    pub layer: String,
    /// Days since the partition's last write.
    pub written_days: u32,
    /// Days since its last read by Strata.
    pub read_days: u32,
    /// The S3 storage class (`STANDARD_IA`, `GLACIER_IR`, `GLACIER`, `DEEP_ARCHIVE`, …).
    pub storage_class: String,
}

const CLASSES: [&str; 8] = [
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "GLACIER",
    "DEEP_ARCHIVE",
    "REDUCED_REDUNDANCY",
    "STANDARD",
];

impl CoolingPolicy {
    /// Parses and checks the YAML; every problem at once.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let policy: CoolingPolicy =
            serde_yaml_ng::from_str(text).map_err(|e| LayersError::Cooling {
                problem: e.to_string(),
            })?;
        let mut problems = Vec::new();
        let mut layers = std::collections::BTreeSet::new();
        for (i, r) in policy.rules.iter().enumerate() {
            if !["bronze", "silver", "gold"].contains(&r.layer.as_str()) {
                problems.push(format!(
                    "rules[{i}].layer: `{}` is not bronze, silver or gold",
                    r.layer
                ));
            }
            if !layers.insert(r.layer.clone()) {
                problems.push(format!("rules[{i}].layer: `{}` has two rules", r.layer));
            }
            if !CLASSES.contains(&r.storage_class.as_str()) {
                problems.push(format!(
                    "rules[{i}].storage_class: `{}` is not one of {}",
                    r.storage_class,
                    CLASSES.join(", ")
                ));
            }
            for class in ["STANDARD", r.storage_class.as_str()] {
                if !policy.prices.contains_key(class) {
                    problems.push(format!("prices: no price for `{class}` (rules[{i}])"));
                }
            }
        }
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(LayersError::Cooling {
                problem: problems.join("; "),
            })
        }
    }
}

/// One partition that moves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Move {
    /// `bronze`, `silver` or `gold`.
    pub layer: String,
    /// `bronze.iot`, `silver.iot_events`.
    pub dataset: String,
    /// The partition's folder below the lake root.
    pub partition: String,
    /// Its objects below the lake root.
    pub objects: Vec<String>,
    /// Their bytes.
    pub bytes: u64,
    /// Days since the last write, as of the plan.
    pub written_days_ago: i64,
    /// Days since the last read (`None`: never read).
    pub read_days_ago: Option<i64>,
    /// The class it moves to.
    pub storage_class: String,
    /// Estimated saving, USD per month.
    pub monthly_saving: f64,
}

/// A partition as listed.
#[derive(Default)]
struct Partition {
    objects: Vec<String>,
    bytes: u64,
    last_write_ms: i64,
}

/// `(layer, dataset, partition folder, access-log key)` of an object below the lake root, or
/// `None` for objects that never move.
fn partition_of(relative: &str) -> Option<(String, String, String, String)> {
    let parts: Vec<&str> = relative.split('/').collect();
    match parts.as_slice() {
        ["bronze", source, date, .., _file]
            if source.starts_with("source=") && date.starts_with("date=") =>
        {
            let source = source.trim_start_matches("source=");
            Some((
                "bronze".into(),
                format!("bronze.{source}"),
                format!("bronze/source={source}/{date}"),
                format!("bronze.{source}/{date}"),
            ))
        }
        [
            "catalog",
            "warehouse",
            layer,
            table,
            "data",
            rest @ ..,
            _file,
        ] if *layer == "silver" || *layer == "gold" => {
            let mut folder = format!("catalog/warehouse/{layer}/{table}/data");
            for p in rest {
                folder.push('/');
                folder.push_str(p);
            }
            Some((
                (*layer).to_string(),
                format!("{layer}.{table}"),
                folder,
                format!("{layer}.{table}"),
            ))
        }
        _ => None,
    }
}

fn days_between(earlier_ms: i64, now_ms: i64) -> i64 {
    now_ms.saturating_sub(earlier_ms).div_euclid(86_400_000)
}

/// The partitions `policy` moves as of `now_ms`.
pub async fn plan(lake: &Lake, policy: &CoolingPolicy, now_ms: i64) -> Result<Vec<Move>> {
    let rules: BTreeMap<&str, &CoolingRule> =
        policy.rules.iter().map(|r| (r.layer.as_str(), r)).collect();
    let store = lake.store();
    let root = lake.path(std::iter::empty::<&str>());
    let listed: Vec<object_store::ObjectMeta> = store
        .list(Some(&root))
        .try_collect()
        .await
        .map_err(|source| LayersError::Store {
            path: lake.url().to_string(),
            source,
        })?;
    let mut partitions: BTreeMap<(String, String, String, String), Partition> = BTreeMap::new();
    for o in listed {
        let relative = lake.relative(&o.location);
        let Some(key) = partition_of(&relative) else {
            continue;
        };
        if !rules.contains_key(key.0.as_str()) {
            continue;
        }
        let p = partitions.entry(key).or_default();
        p.objects.push(relative);
        p.bytes = p.bytes.saturating_add(o.size);
        p.last_write_ms = p.last_write_ms.max(o.last_modified.timestamp_millis());
    }
    let standard = policy.prices.get("STANDARD").copied().unwrap_or_default();
    let mut moves = Vec::new();
    for ((layer, dataset, folder, access_key), p) in partitions {
        let Some(rule) = rules.get(layer.as_str()) else {
            continue;
        };
        if cooled_to(lake, &folder).await?.as_deref() == Some(rule.storage_class.as_str()) {
            continue;
        }
        let written = days_between(p.last_write_ms, now_ms);
        let read = last_read(lake, &access_key)
            .await?
            .map(|d| days_between(d.epoch_millis(), now_ms));
        if written < i64::from(rule.written_days)
            || read.is_some_and(|r| r < i64::from(rule.read_days))
        {
            continue;
        }
        let target = policy
            .prices
            .get(&rule.storage_class)
            .copied()
            .unwrap_or_default();
        let gb = p.bytes as f64 / 1e9;
        moves.push(Move {
            layer,
            dataset,
            partition: folder,
            objects: p.objects,
            bytes: p.bytes,
            written_days_ago: written,
            read_days_ago: read,
            storage_class: rule.storage_class.clone(),
            monthly_saving: gb * (standard - target),
        });
    }
    Ok(moves)
}

fn marker_path(lake: &Lake, folder: &str) -> object_store::path::Path {
    lake.path(
        std::iter::once(COOLING_FOLDER)
            .chain(folder.split('/'))
            .chain(std::iter::once("cooled.json")),
    )
}

/// The class a partition was cooled to, by its marker.
async fn cooled_to(lake: &Lake, folder: &str) -> Result<Option<String>> {
    let path = marker_path(lake, folder);
    match lake.store().get(&path).await {
        Ok(r) => {
            let bytes = r.bytes().await.map_err(|source| LayersError::Store {
                path: lake.relative(&path),
                source,
            })?;
            Ok(serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["storage_class"].as_str().map(str::to_string)))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(source) => Err(LayersError::Store {
            path: lake.relative(&path),
            source,
        }),
    }
}

/// Moves each partition: every object rewritten at its key in the new class, then the marker.
pub async fn apply(lake: &Lake, moves: &[Move]) -> Result<()> {
    if !lake.url().starts_with("s3://") {
        return Err(LayersError::Cooling {
            problem: format!("{}: storage classes exist on S3 lakes only", lake.url()),
        });
    }
    let store = lake.store();
    for m in moves {
        for relative in &m.objects {
            let path = lake.path(relative.split('/'));
            let err = |source| LayersError::Store {
                path: relative.clone(),
                source,
            };
            let bytes = store
                .get(&path)
                .await
                .map_err(err)?
                .bytes()
                .await
                .map_err(err)?;
            let mut attributes = Attributes::new();
            attributes.insert(Attribute::StorageClass, m.storage_class.clone().into());
            let opts = PutOptions {
                mode: PutMode::Overwrite,
                attributes,
                ..PutOptions::default()
            };
            store
                .put_opts(&path, bytes.into(), opts)
                .await
                .map_err(err)?;
        }
        let marker = serde_json::json!({
            "storage_class": m.storage_class,
            "objects": m.objects.len(),
            "bytes": m.bytes,
        });
        let path = marker_path(lake, &m.partition);
        store
            .put(
                &path,
                serde_json::to_vec(&marker).unwrap_or_default().into(),
            )
            .await
            .map_err(|source| LayersError::Store {
                path: lake.relative(&path),
                source,
            })?;
        tracing::info!(partition = %m.partition, class = %m.storage_class, objects = m.objects.len(), "cooled");
    }
    Ok(())
}

/// The S3 lifecycle configuration closest to `policy` for the lake's prefix: a transition by
/// write age per layer (bucket rules cannot see reads).
pub fn lifecycle_rules(policy: &CoolingPolicy, lake_prefix: &str) -> serde_json::Value {
    let prefix = lake_prefix.trim_matches('/');
    let join = |p: &str| {
        if prefix.is_empty() {
            p.to_string()
        } else {
            format!("{prefix}/{p}")
        }
    };
    let rules: Vec<serde_json::Value> = policy
        .rules
        .iter()
        .map(|r| {
            let folder = match r.layer.as_str() {
                "bronze" => join("bronze/"),
                layer => join(&format!("catalog/warehouse/{layer}/")),
            };
            serde_json::json!({
                "ID": format!("strata-cool-{}", r.layer),
                "Status": "Enabled",
                "Filter": {"Prefix": folder},
                "Transitions": [{"Days": r.written_days, "StorageClass": r.storage_class}],
            })
        })
        .collect();
    serde_json::json!({ "Rules": rules })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_bronze_dates_and_table_data_folders_only() {
        assert_eq!(
            partition_of("bronze/source=iot/date=2025-11-20/a.ndjson.zst").map(|p| p.2),
            Some("bronze/source=iot/date=2025-11-20".to_string())
        );
        assert_eq!(
            partition_of("bronze/source=iot/date=2025-11-20/media/x.png").map(|p| p.3),
            Some("bronze.iot/date=2025-11-20".to_string())
        );
        let silver = partition_of("catalog/warehouse/silver/iot/data/ts_day=2025-11-20/f.parquet");
        assert_eq!(
            silver.map(|p| (p.1, p.2)),
            Some((
                "silver.iot".to_string(),
                "catalog/warehouse/silver/iot/data/ts_day=2025-11-20".to_string()
            ))
        );
        for never in [
            "catalog/warehouse/silver/iot/metadata/v1.metadata.json",
            "_access/silver.iot/2025-11-20",
            "state/iot/1.bin",
            "bronze/source=iot/_loads/x.json",
        ] {
            assert_eq!(partition_of(never), None, "{never}");
        }
    }

    #[test]
    fn a_policy_names_every_problem_and_rules_become_lifecycle_json() {
        let e = CoolingPolicy::from_yaml(
            "prices: {STANDARD: 0.023}\nrules:\n  - {layer: brass, written_days: 1, read_days: 1, storage_class: COLD}\n",
        )
        .expect_err("bad");
        let text = e.to_string();
        for part in [
            "rules[0].layer",
            "rules[0].storage_class",
            "no price for `COLD`",
        ] {
            assert!(text.contains(part), "{text}");
        }
        let p = CoolingPolicy::from_yaml(
            "prices: {STANDARD: 0.023, GLACIER_IR: 0.004}\nrules:\n  - {layer: bronze, written_days: 30, read_days: 14, storage_class: GLACIER_IR}\n",
        )
        .expect("policy");
        let rules = lifecycle_rules(&p, "lake/");
        assert_eq!(rules["Rules"][0]["Filter"]["Prefix"], "lake/bronze/");
        assert_eq!(rules["Rules"][0]["Transitions"][0]["Days"], 30);
    }
}
