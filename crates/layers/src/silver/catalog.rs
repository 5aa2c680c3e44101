//! The embedded Iceberg catalog (SQLite + local warehouse) and table creation from a pipeline's
//! declared output schema.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema as ArrowSchema, TimeUnit};
use iceberg::arrow::arrow_schema_to_schema_auto_assign_ids;
use iceberg::io::StorageFactory;
use iceberg::table::Table;
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_sql::{SqlBindStyle, SqlCatalog, SqlCatalogBuilder};

use super::commit::{CatalogPointer, redact};
use super::object_storage::{ObjectStorageFactory, S3_OPTION_PREFIX};
use crate::error::{LayersError, Result};

const NAMESPACE: &str = "silver";

/// Where a silver catalog lives: the catalog database and the warehouse its tables' files go to.
/// `Debug` shows the catalog URL without its password, and S3 options without secret values.
#[derive(Clone, PartialEq, Eq)]
pub struct CatalogConfig {
    /// `sqlite:<file>` (the embedded default) or `postgres://user:pass@host:port/db`.
    pub uri: String,
    /// Warehouse root: a local folder, `file:///…` or `s3://bucket/prefix`.
    pub warehouse: String,
    /// Options for an S3 warehouse (keys of `object_store::aws::AmazonS3ConfigKey`, e.g.
    /// `aws_endpoint`), on top of the standard AWS environment variables.
    pub s3_options: Vec<(String, String)>,
}

impl std::fmt::Debug for CatalogConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let options: Vec<(&str, &str)> = self
            .s3_options
            .iter()
            .map(|(k, v)| {
                let secret = k.contains("secret") || k.contains("token") || k.contains("password");
                (k.as_str(), if secret { "***" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("CatalogConfig")
            .field("uri", &redact(&self.uri))
            .field("warehouse", &self.warehouse)
            .field("s3_options", &options)
            .finish()
    }
}

impl CatalogConfig {
    /// The embedded default for a lake root URL: a SQLite catalog at `<lake>/catalog/catalog.db`
    /// and the warehouse at `<lake>/catalog/warehouse`. An S3 lake needs a catalog URL (`uri`),
    /// since SQLite cannot live in a bucket.
    pub fn for_lake(lake: &str, uri: Option<&str>) -> Result<Self> {
        let lake = lake.trim_end_matches('/');
        if lake.starts_with("s3://") {
            let uri = uri.ok_or_else(|| LayersError::LakeUrl {
                url: lake.to_string(),
                problem:
                    "an s3:// lake needs a catalog URL (--catalog sqlite:<file> or postgres://…)"
                        .into(),
            })?;
            return Ok(CatalogConfig {
                uri: uri.to_string(),
                warehouse: format!("{lake}/catalog/warehouse"),
                s3_options: Vec::new(),
            });
        }
        let local = lake.strip_prefix("file://").unwrap_or(lake);
        let dir = Path::new(local).join("catalog");
        let io = |source| LayersError::Io {
            path: dir.display().to_string(),
            source,
        };
        crate::durable::ensure_dir(&dir.join("warehouse")).map_err(io)?;
        let dir = std::fs::canonicalize(&dir).map_err(io)?;
        let uri = match uri {
            Some(uri) => uri.to_string(),
            None => format!("sqlite:{}", dir.join("catalog.db").display()),
        };
        Ok(CatalogConfig {
            uri,
            warehouse: format!("file://{}", dir.join("warehouse").display()),
            s3_options: Vec::new(),
        })
    }
}

/// An opened silver catalog.
#[derive(Debug, Clone)]
pub struct SilverCatalog {
    catalog: Arc<SqlCatalog>,
    pointer: Arc<CatalogPointer>,
    namespace: NamespaceIdent,
    db_path: String,
    warehouse: String,
}

pub(crate) fn iceberg_err(
    context: impl Into<String>,
) -> impl FnOnce(iceberg::Error) -> LayersError {
    let context = context.into();
    move |source| LayersError::Iceberg {
        context,
        message: source.to_string(),
    }
}

/// The Arrow schema silver stores for `schema`: unsigned integers become signed ones wide
/// enough to hold them (Iceberg has no unsigned types), and second / millisecond timestamps
/// become microsecond ones (Iceberg v2 stores µs; the widening is lossless); everything else is
/// unchanged. Rows are cast to it on write.
pub fn silver_arrow_schema(schema: &ArrowSchema) -> ArrowSchema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let dt = match f.data_type() {
                DataType::UInt8 | DataType::UInt16 => DataType::Int32,
                DataType::UInt32 | DataType::UInt64 => DataType::Int64,
                DataType::Timestamp(TimeUnit::Second | TimeUnit::Millisecond, tz) => {
                    DataType::Timestamp(TimeUnit::Microsecond, tz.clone())
                }
                other => other.clone(),
            };
            Field::new(f.name(), dt, f.is_nullable())
        })
        .collect();
    ArrowSchema::new(fields)
}

/// Checks that a pipeline's output schema can be stored as a silver table, before any data
/// flows (`strata validate`): every problem names its column.
pub fn check_silver_schema(schema: &ArrowSchema) -> Result<()> {
    let mut problems = Vec::new();
    for f in schema.fields() {
        if let DataType::Timestamp(TimeUnit::Nanosecond, _) = f.data_type() {
            problems.push(format!(
                "`{}`: timestamp(ns) is finer than an Iceberg v2 table stores (microseconds); \
                 declare `timestamp` (µs), or `timestamp(ms)`",
                f.name()
            ));
        }
    }
    if problems.is_empty()
        && let Err(e) = arrow_schema_to_schema_auto_assign_ids(&silver_arrow_schema(schema))
    {
        problems.push(e.to_string());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(LayersError::UnsupportedSchema {
            problems: problems.join("; "),
        })
    }
}

/// Name of the catalog in the JDBC-catalog tables (pyiceberg must be opened with the same name).
pub const CATALOG_NAME: &str = "strata";

impl SilverCatalog {
    /// Opens (creating if needed) the catalog `catalog.db` and warehouse `warehouse/` in `dir`.
    pub async fn open_local(dir: &Path) -> Result<Self> {
        let io = |source| LayersError::Io {
            path: dir.display().to_string(),
            source,
        };
        crate::durable::ensure_dir(&dir.join("warehouse")).map_err(io)?;
        let dir = std::fs::canonicalize(dir).map_err(io)?;
        Self::open(&CatalogConfig {
            uri: format!("sqlite:{}", dir.join("catalog.db").display()),
            warehouse: format!("file://{}", dir.join("warehouse").display()),
            s3_options: Vec::new(),
        })
        .await
    }

    /// Opens the catalog of `config`, creating its tables and the `silver` namespace if needed.
    pub async fn open(config: &CatalogConfig) -> Result<Self> {
        let shown = redact(&config.uri);
        let (uri, bind_style) = if let Some(file) = config.uri.strip_prefix("sqlite:") {
            let file = file.trim_start_matches("//");
            (format!("sqlite:{file}?mode=rwc"), SqlBindStyle::QMark)
        } else if config.uri.starts_with("postgres://") || config.uri.starts_with("postgresql://") {
            (config.uri.clone(), SqlBindStyle::DollarNumeric)
        } else {
            return Err(LayersError::Catalog {
                uri: shown,
                message: "unsupported catalog URL".into(),
                hint: "use sqlite:<file> or postgres://user:pass@host:port/db",
            });
        };
        let mut props = HashMap::from([
            ("uri".to_string(), uri.clone()),
            ("warehouse".to_string(), config.warehouse.clone()),
            ("sql_bind_style".to_string(), bind_style.to_string()),
        ]);
        let factory: Arc<dyn StorageFactory> = if config.warehouse.starts_with("s3://") {
            for (k, v) in &config.s3_options {
                props.insert(format!("{S3_OPTION_PREFIX}{k}"), v.clone());
            }
            Arc::new(ObjectStorageFactory)
        } else if config.s3_options.is_empty() {
            Arc::new(crate::durable::DurableLocalStorageFactory)
        } else {
            return Err(LayersError::LakeUrl {
                url: config.warehouse.clone(),
                problem: "S3 options apply to s3:// warehouses only".into(),
            });
        };
        // The pointer first: it reports an unreachable database with a hint, where the SQL
        // catalog would only say "pool timed out".
        let pointer = CatalogPointer::connect(&uri, CATALOG_NAME).await?;
        let catalog = SqlCatalogBuilder::default()
            .with_storage_factory(factory)
            .load(CATALOG_NAME, props)
            .await
            .map_err(iceberg_err(format!("opening the catalog {shown}")))?;
        let namespace = NamespaceIdent::new(NAMESPACE.to_string());
        let exists = catalog
            .namespace_exists(&namespace)
            .await
            .map_err(iceberg_err("checking namespace"))?;
        if !exists {
            let created = catalog.create_namespace(&namespace, HashMap::new()).await;
            // Two writers opening a new catalog at once: the loser finds it created.
            if let Err(e) = created
                && !catalog
                    .namespace_exists(&namespace)
                    .await
                    .map_err(iceberg_err("checking namespace"))?
            {
                return Err(iceberg_err("creating namespace `silver`")(e));
            }
        }
        let db_path = config
            .uri
            .strip_prefix("sqlite:")
            .map(|f| f.trim_start_matches("//").to_string())
            .unwrap_or(shown);
        Ok(SilverCatalog {
            catalog: Arc::new(catalog),
            pointer: Arc::new(pointer),
            namespace,
            db_path,
            warehouse: config.warehouse.trim_end_matches('/').to_string(),
        })
    }

    /// The same catalog, addressing the tables of `namespace` (e.g. `gold`), which is created
    /// if missing.
    pub async fn in_namespace(&self, namespace: &str) -> Result<SilverCatalog> {
        let ns = NamespaceIdent::new(namespace.to_string());
        let exists = |c: &Arc<SqlCatalog>, ns: &NamespaceIdent| {
            let (c, ns) = (c.clone(), ns.clone());
            async move {
                c.namespace_exists(&ns)
                    .await
                    .map_err(iceberg_err("checking namespace"))
            }
        };
        if !exists(&self.catalog, &ns).await? {
            let created = self.catalog.create_namespace(&ns, HashMap::new()).await;
            // Two writers at once: the loser finds it created.
            if let Err(e) = created
                && !exists(&self.catalog, &ns).await?
            {
                return Err(iceberg_err(format!("creating namespace `{namespace}`"))(e));
            }
        }
        Ok(SilverCatalog {
            namespace: ns,
            ..self.clone()
        })
    }

    /// The compare-and-swap pointer of this catalog (Strata's own commits).
    pub(crate) fn pointer(&self) -> &CatalogPointer {
        &self.pointer
    }

    /// Where `table` of this namespace lives (or will, once created): the SQL catalog's
    /// `<warehouse>/<namespace>/<table>` layout.
    pub fn table_location(&self, table: &str) -> String {
        format!(
            "{}/{}/{table}",
            self.warehouse,
            self.namespace.to_url_string()
        )
    }

    /// The metadata file `table` points at now (`None`: no such table). One read of the
    /// catalog row, without loading the metadata: a reader that keeps loaded tables reloads one
    /// only when this changed.
    pub async fn metadata_location(&self, table: &str) -> Result<Option<String>> {
        self.pointer.current(&self.ident(table)).await
    }

    /// Loads `table` as it is now.
    pub async fn load(&self, table: &str) -> Result<Table> {
        self.catalog
            .load_table(&self.ident(table))
            .await
            .map_err(iceberg_err(format!("loading {table}")))
    }

    /// The underlying Iceberg catalog.
    pub fn catalog(&self) -> &SqlCatalog {
        &self.catalog
    }

    /// The catalog as a shareable trait object (DataFusion integration).
    pub fn shared(&self) -> Arc<dyn Catalog> {
        self.catalog.clone()
    }

    /// Path of the SQLite catalog file (for other tools, e.g. pyiceberg), or the redacted URL of
    /// another catalog database.
    pub fn db_path(&self) -> &str {
        &self.db_path
    }

    /// Names of the silver tables, sorted.
    pub async fn table_names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .catalog
            .list_tables(&self.namespace)
            .await
            .map_err(iceberg_err("listing silver tables".to_string()))?
            .into_iter()
            .map(|t| t.name().to_string())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Identifier of a silver table.
    pub fn ident(&self, table: &str) -> TableIdent {
        TableIdent::new(self.namespace.clone(), table.to_string())
    }

    /// Reads a whole table at its current snapshot (tests and small tables).
    pub async fn read_table(&self, table: &str) -> Result<Vec<arrow::array::RecordBatch>> {
        use futures::TryStreamExt;
        let t = self
            .catalog
            .load_table(&self.ident(table))
            .await
            .map_err(iceberg_err(format!("loading {table}")))?;
        let stream = t
            .scan()
            .build()
            .map_err(iceberg_err(format!("scanning {table}")))?
            .to_arrow()
            .await
            .map_err(iceberg_err(format!("scanning {table}")))?;
        stream
            .try_collect()
            .await
            .map_err(iceberg_err(format!("reading {table}")))
    }

    /// Drops `table` from the catalog if it exists (its files stay on disk: iceberg-rust has no
    /// purge). Returns whether it existed.
    pub async fn drop_table_if_exists(&self, table: &str) -> Result<bool> {
        let ident = self.ident(table);
        if !self
            .catalog
            .table_exists(&ident)
            .await
            .map_err(iceberg_err(format!("looking up {table}")))?
        {
            return Ok(false);
        }
        self.catalog
            .drop_table(&ident)
            .await
            .map_err(iceberg_err(format!("dropping {table}")))?;
        Ok(true)
    }

    /// Loads `table`, creating it from `schema` (partitioned by `day(event_time)` when given) if
    /// it does not exist.
    pub async fn ensure_table(
        &self,
        table: &str,
        schema: &ArrowSchema,
        event_time: Option<&str>,
    ) -> Result<Table> {
        let partition_by: Vec<String> = event_time
            .map(|c| format!("day({c})"))
            .into_iter()
            .collect();
        self.ensure_table_partitioned(table, schema, &partition_by)
            .await
    }

    /// Loads `table`, creating it from `schema` partitioned as `partition_by` declares (see
    /// `partitioning.rs`; empty: unpartitioned) if it does not exist. An existing table's schema
    /// and partitioning evolve towards the declared ones.
    pub async fn ensure_table_partitioned(
        &self,
        table: &str,
        schema: &ArrowSchema,
        partition_by: &[String],
    ) -> Result<Table> {
        let ident = self.ident(table);
        let evolve = |existing: Table| async move {
            let t = super::evolve::evolve(self, existing, &silver_arrow_schema(schema)).await?;
            super::partitioning::evolve_spec(self, t, partition_by).await
        };
        if self
            .catalog
            .table_exists(&ident)
            .await
            .map_err(iceberg_err(format!("looking up {table}")))?
        {
            let existing = self
                .catalog
                .load_table(&ident)
                .await
                .map_err(iceberg_err(format!("loading {table}")))?;
            return evolve(existing).await;
        }
        let iceberg_schema = arrow_schema_to_schema_auto_assign_ids(&silver_arrow_schema(schema))
            .map_err(iceberg_err(format!(
            "mapping the schema of {table} to Iceberg"
        )))?;
        let mut creation = TableCreation::builder()
            .name(table.to_string())
            .schema(iceberg_schema.clone())
            .build();
        if !partition_by.is_empty() {
            creation.partition_spec = Some(super::partitioning::unbound_spec(
                &iceberg_schema,
                partition_by,
                table,
            )?);
        }
        match self.catalog.create_table(&self.namespace, creation).await {
            Ok(created) => Ok(created),
            // Another writer created it between our lookup and our create: use theirs.
            Err(e) => match self.catalog.table_exists(&ident).await {
                Ok(true) => evolve(self.load(table).await?).await,
                _ => Err(iceberg_err(format!("creating {table}"))(e)),
            },
        }
    }
}

#[cfg(test)]
mod debug_tests {
    use super::CatalogConfig;

    #[test]
    fn debug_never_shows_the_catalog_password_or_s3_secrets() {
        let config = CatalogConfig {
            uri: "postgres://strata:hunter2@db:5432/catalog".into(),
            warehouse: "s3://lake/wh".into(),
            s3_options: vec![
                ("aws_secret_access_key".into(), "hunter2".into()),
                ("aws_endpoint".into(), "http://127.0.0.1:15000".into()),
            ],
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("postgres://strata:***@db:5432/catalog"),
            "{shown}"
        );
        assert!(shown.contains("http://127.0.0.1:15000"), "{shown}");
    }
}
