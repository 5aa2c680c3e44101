//! The embedded Iceberg catalog (SQLite + local warehouse) and table creation from a pipeline's
//! declared output schema.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema as ArrowSchema};
use iceberg::arrow::arrow_schema_to_schema_auto_assign_ids;
use iceberg::io::LocalFsStorageFactory;
use iceberg::spec::{Transform, UnboundPartitionSpec};
use iceberg::table::Table;
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_sql::{SqlBindStyle, SqlCatalog, SqlCatalogBuilder};

use crate::error::{LayersError, Result};

const NAMESPACE: &str = "silver";

/// An opened silver catalog.
#[derive(Debug, Clone)]
pub struct SilverCatalog {
    catalog: Arc<SqlCatalog>,
    namespace: NamespaceIdent,
    db_path: String,
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
/// enough to hold them (Iceberg has no unsigned types); everything else is unchanged.
pub fn silver_arrow_schema(schema: &ArrowSchema) -> ArrowSchema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let dt = match f.data_type() {
                DataType::UInt8 | DataType::UInt16 => DataType::Int32,
                DataType::UInt32 | DataType::UInt64 => DataType::Int64,
                other => other.clone(),
            };
            Field::new(f.name(), dt, f.is_nullable())
        })
        .collect();
    ArrowSchema::new(fields)
}

impl SilverCatalog {
    /// Opens (creating if needed) the catalog `catalog.db` and warehouse `warehouse/` in `dir`.
    pub async fn open_local(dir: &Path) -> Result<Self> {
        let io = |source| LayersError::Io {
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir.join("warehouse")).map_err(io)?;
        let dir = std::fs::canonicalize(dir).map_err(|source| LayersError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let db = dir.join("catalog.db");
        let db_path = db.display().to_string();
        let props = HashMap::from([
            ("uri".to_string(), format!("sqlite:{db_path}?mode=rwc")),
            (
                "warehouse".to_string(),
                format!("file://{}", dir.join("warehouse").display()),
            ),
            (
                "sql_bind_style".to_string(),
                SqlBindStyle::QMark.to_string(),
            ),
        ]);
        let catalog = SqlCatalogBuilder::default()
            .with_storage_factory(Arc::new(LocalFsStorageFactory))
            .load("strata", props)
            .await
            .map_err(iceberg_err(format!("opening the catalog {db_path}")))?;
        let namespace = NamespaceIdent::new(NAMESPACE.to_string());
        let exists = catalog
            .namespace_exists(&namespace)
            .await
            .map_err(iceberg_err("checking namespace"))?;
        if !exists {
            catalog
                .create_namespace(&namespace, HashMap::new())
                .await
                .map_err(iceberg_err("creating namespace `silver`"))?;
        }
        Ok(SilverCatalog {
            catalog: Arc::new(catalog),
            namespace,
            db_path,
        })
    }

    /// The underlying Iceberg catalog.
    pub fn catalog(&self) -> &SqlCatalog {
        &self.catalog
    }

    /// The catalog as a shareable trait object (DataFusion integration).
    pub fn shared(&self) -> Arc<dyn Catalog> {
        self.catalog.clone()
    }

    /// Path of the SQLite catalog file (for other tools, e.g. pyiceberg).
    pub fn db_path(&self) -> &str {
        &self.db_path
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
        let ident = self.ident(table);
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
            return super::evolve::evolve(self, existing, &silver_arrow_schema(schema)).await;
        }
        let iceberg_schema = arrow_schema_to_schema_auto_assign_ids(&silver_arrow_schema(schema))
            .map_err(iceberg_err(format!(
            "mapping the schema of {table} to Iceberg"
        )))?;
        let mut creation = TableCreation::builder()
            .name(table.to_string())
            .schema(iceberg_schema.clone())
            .build();
        if let Some(column) = event_time {
            let field =
                iceberg_schema
                    .field_by_name(column)
                    .ok_or_else(|| LayersError::Iceberg {
                        context: format!("partitioning {table}"),
                        message: format!("event-time column `{column}` is not in the table schema"),
                    })?;
            let spec = UnboundPartitionSpec::builder()
                .add_partition_field(field.id, format!("{column}_day"), Transform::Day)
                .map_err(iceberg_err(format!("partitioning {table}")))?
                .build();
            creation.partition_spec = Some(spec);
        }
        self.catalog
            .create_table(&self.namespace, creation)
            .await
            .map_err(iceberg_err(format!("creating {table}")))
    }
}
