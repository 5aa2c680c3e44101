//! The lake as one query sees it: each table a request names is loaded once, pinned to its
//! current snapshot, and registered in a fresh DataFusion session whose memory pool is the
//! query's own. The snapshot ids are what the cache keys on, and since the query reads exactly
//! those snapshots, a cached answer can never hold rows of a later commit.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use datafusion::catalog::{MemoryCatalogProvider, MemorySchemaProvider, TableProvider};
use datafusion::datasource::{MemTable, ViewTable, provider_as_source};
use datafusion::execution::cache::DefaultFilesMetadataCache;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::cache::cache_unit::DefaultFileStatisticsCache;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::TableReference;
use iceberg::table::Table;
use iceberg_datafusion::IcebergStaticTableProvider;
use strata_layers::silver::{SilverCatalog, direct_files, listing_table};

use crate::error::{Result, ServingError};
use crate::live::{LiveFacts, LiveRows, LiveView};

/// The schemas (Iceberg namespaces) the API serves.
pub const LAYERS: [&str; 2] = ["silver", "gold"];

/// A table name as `layer.table`; a bare name is a silver table, `lake.` is dropped.
pub fn qualified(reference: &TableReference) -> Result<(String, String)> {
    let (schema, table) = match reference {
        TableReference::Bare { table } => ("silver".to_string(), table.to_string()),
        TableReference::Partial { schema, table } => (schema.to_string(), table.to_string()),
        TableReference::Full {
            catalog,
            schema,
            table,
        } if catalog.as_ref() == "lake" => (schema.to_string(), table.to_string()),
        TableReference::Full { .. } => {
            return Err(ServingError::NotFound {
                what: "table",
                name: reference.to_string(),
            });
        }
    };
    if !LAYERS.contains(&schema.as_str()) {
        return Err(ServingError::NotFound {
            what: "table",
            name: reference.to_string(),
        });
    }
    Ok((schema, table))
}

/// The lake's tables as the API keeps them: one catalog handle per layer, and each table loaded
/// once per metadata version. Pinning a table reads only its catalog row; its metadata file is
/// read again only after a commit moved the pointer.
pub struct LakeTables {
    layers: BTreeMap<String, SilverCatalog>,
    live: BTreeMap<(String, String), Arc<LiveView>>,
    /// Where reads are recorded (the lake's access log), when the lake opened.
    access: Option<strata_layers::lake::Lake>,
    loaded: Mutex<HashMap<(String, String), (String, Pinned)>>,
    caches: FileCaches,
}

/// Parquet footers and file statistics, kept across queries (each query has a runtime of its
/// own for its memory pool): data files never change, so what was read of one stays true.
#[derive(Clone)]
struct FileCaches {
    metadata: Arc<DefaultFilesMetadataCache>,
    statistics: Arc<DefaultFileStatisticsCache>,
}

/// A loaded table version and how to read it.
#[derive(Clone)]
struct Pinned {
    table: Table,
    /// Its Parquet data files, when reading them directly gives the table: a local lake and a
    /// snapshot without delete files. `None`: read through iceberg-rust's scan.
    files: Option<Arc<Vec<String>>>,
    /// The live view's rows past `table`'s snapshot, for a table followed live.
    live: Option<Arc<LiveRows>>,
}

impl LakeTables {
    /// Opens a handle per layer of `catalog`.
    pub async fn open(catalog: &SilverCatalog) -> Result<Self> {
        let mut layers = BTreeMap::new();
        for layer in LAYERS {
            let in_layer = catalog
                .in_namespace(layer)
                .await
                .map_err(ServingError::lake)?;
            layers.insert(layer.to_string(), in_layer);
        }
        Ok(LakeTables {
            layers,
            live: BTreeMap::new(),
            access: None,
            loaded: Mutex::new(HashMap::new()),
            caches: FileCaches {
                metadata: Arc::new(DefaultFilesMetadataCache::new(64 << 20)),
                statistics: Arc::new(DefaultFileStatisticsCache::default()),
            },
        })
    }

    /// Serves `views`' tables live: each answer reads the view's snapshot plus its rows.
    pub fn with_live(mut self, views: impl IntoIterator<Item = Arc<LiveView>>) -> Self {
        self.live = views.into_iter().map(|v| (v.key(), v)).collect();
        self
    }

    /// Records every table an answer reads in `lake`'s access log (it keeps them warm).
    pub fn with_access_log(mut self, lake: Option<strata_layers::lake::Lake>) -> Self {
        self.access = lake;
        self
    }

    /// The live views served.
    pub fn live_views(&self) -> impl Iterator<Item = &Arc<LiveView>> {
        self.live.values()
    }

    /// Pins each `(layer, table)` at its current snapshot; a missing one is a 404 naming it.
    /// A table followed live is pinned at its view's snapshot, with the view's rows after it.
    pub async fn pin(&self, names: &[(String, String)]) -> Result<PinnedTables> {
        let mut tables = BTreeMap::new();
        for (layer, name) in names {
            let key = (layer.clone(), name.clone());
            if tables.contains_key(&key) {
                continue;
            }
            if let Some(live) = self.live.get(&key).and_then(|v| v.current()) {
                let pinned = Pinned {
                    table: live.table.clone(),
                    files: live.files.clone(),
                    live: Some(live.clone()),
                };
                tables.insert(key, (pinned, live.facts.snapshot_id));
                continue;
            }
            let not_found = || ServingError::NotFound {
                what: "table",
                name: format!("{layer}.{name}"),
            };
            let in_layer = self.layers.get(layer).ok_or_else(not_found)?;
            let location = in_layer
                .metadata_location(name)
                .await
                .map_err(ServingError::lake)?
                .ok_or_else(not_found)?;
            let known = self
                .loaded
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .filter(|(l, _)| *l == location)
                .map(|(_, t)| t.clone());
            let pinned = match known {
                Some(t) => t,
                None => {
                    let table = in_layer.load(name).await.map_err(ServingError::lake)?;
                    let files = direct_files(&table, None)
                        .await
                        .map_err(ServingError::lake)?
                        .map(Arc::new);
                    // The pointer may have moved between the two reads: key the table by the
                    // location it was loaded from.
                    let loaded_from = table.metadata_location().unwrap_or_default().to_string();
                    let pinned = Pinned {
                        table,
                        files,
                        live: None,
                    };
                    self.loaded
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(key.clone(), (loaded_from, pinned.clone()));
                    pinned
                }
            };
            let snapshot = pinned.table.metadata().current_snapshot_id();
            tables.insert(key, (pinned, snapshot));
        }
        if let Some(lake) = &self.access {
            for (layer, name) in tables.keys() {
                strata_layers::access::record_read(lake, &format!("{layer}.{name}")).await;
            }
        }
        Ok(PinnedTables {
            tables,
            caches: self.caches.clone(),
        })
    }
}

/// Tables pinned at their current snapshots.
pub struct PinnedTables {
    tables: BTreeMap<(String, String), (Pinned, Option<i64>)>,
    caches: FileCaches,
}

impl PinnedTables {
    /// `layer.table@snapshot` for each table, sorted: the data part of a cache key.
    pub fn snapshot_key(&self) -> String {
        self.tables
            .iter()
            .map(|((l, t), (p, s))| {
                let live = p.live.as_ref().map(|l| {
                    let upto: Vec<String> = l
                        .facts
                        .upto
                        .iter()
                        .map(|(p, o)| format!("{p}:{o}"))
                        .collect();
                    format!("+live[{}]", upto.join(";"))
                });
                format!("{l}.{t}@{}{}", s.unwrap_or(-1), live.unwrap_or_default())
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The live part of each table read live: its snapshot, positions and rows.
    pub fn live(&self) -> BTreeMap<String, LiveFacts> {
        self.tables
            .iter()
            .filter_map(|((l, t), (p, _))| {
                p.live
                    .as_ref()
                    .map(|live| (format!("{l}.{t}"), live.facts.clone()))
            })
            .collect()
    }

    /// The snapshot id of each table (`None` for a table with no commit yet).
    pub fn snapshots(&self) -> BTreeMap<String, Option<i64>> {
        self.tables
            .iter()
            .map(|((l, t), (_, s))| (format!("{l}.{t}"), *s))
            .collect()
    }

    /// A session over only these tables (catalog `lake`, default schema `silver`), with a
    /// memory pool of `memory_bytes` for this query alone.
    pub async fn session(&self, memory_bytes: usize, batch_size: usize) -> Result<SessionContext> {
        let caches = CacheManagerConfig::default()
            .with_file_metadata_cache(Some(self.caches.metadata.clone()))
            .with_files_statistics_cache(Some(self.caches.statistics.clone()));
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(memory_bytes, 1.0)
            .with_cache_manager(caches)
            .build_arc()
            .map_err(|e| ServingError::Execution {
                message: e.to_string(),
            })?;
        let config = SessionConfig::new()
            .with_default_catalog_and_schema("lake", "silver")
            .with_information_schema(false)
            .with_batch_size(batch_size);
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let lake = Arc::new(MemoryCatalogProvider::new());
        for layer in LAYERS {
            let schema = Arc::new(MemorySchemaProvider::new());
            for ((l, name), (pinned, _)) in &self.tables {
                if l != layer {
                    continue;
                }
                let provider: Arc<dyn TableProvider> = match &pinned.files {
                    Some(files) => {
                        listing_table(&pinned.table, None, files).map_err(ServingError::lake)?
                    }
                    None => Arc::new(
                        IcebergStaticTableProvider::try_new_from_table(pinned.table.clone())
                            .await
                            .map_err(ServingError::lake)?,
                    ),
                };
                let provider = match &pinned.live {
                    Some(live) if !live.rows.is_empty() => with_live_rows(provider, live)?,
                    _ => provider,
                };
                datafusion::catalog::SchemaProvider::register_table(
                    schema.as_ref(),
                    name.clone(),
                    provider,
                )
                .map_err(ServingError::lake)?;
            }
            datafusion::catalog::CatalogProvider::register_schema(lake.as_ref(), layer, schema)
                .map_err(ServingError::lake)?;
        }
        ctx.register_catalog("lake", lake);
        Ok(ctx)
    }
}

/// The committed snapshot's rows followed by the live rows: `UNION ALL` of the two, as one
/// table (filters and projections still reach both sides).
fn with_live_rows(
    committed: Arc<dyn TableProvider>,
    live: &LiveRows,
) -> Result<Arc<dyn TableProvider>> {
    let err = |e: datafusion::error::DataFusionError| ServingError::Lake {
        message: format!("joining the live rows to the committed snapshot: {e}"),
    };
    let rows =
        MemTable::try_new(live.schema.clone(), vec![live.rows.as_ref().clone()]).map_err(err)?;
    let live_scan = LogicalPlanBuilder::scan("live", provider_as_source(Arc::new(rows)), None)
        .and_then(|b| b.build())
        .map_err(err)?;
    let plan = LogicalPlanBuilder::scan("committed", provider_as_source(committed), None)
        .and_then(|b| b.union(live_scan))
        .and_then(|b| b.build())
        .map_err(err)?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}
