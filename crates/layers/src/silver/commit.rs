//! Strata's own Iceberg commit path: every silver commit is a compare-and-swap of the catalog's
//! metadata pointer against the exact table version the writer validated.
//!
//! Why not `Transaction::commit` alone: iceberg-rust 0.10.1 reloads the table before committing
//! and, if another writer committed meanwhile, silently re-applies the actions on the newer
//! version. For a fast append that means our "is this bronze file already covered?" check ran
//! against a version that is no longer the base — two writers of the same file could both commit
//! it. [`PinnedCatalog`] closes that window: it presents the validated version as the current one
//! and swaps the pointer only if it is still current (`UPDATE … WHERE metadata_location = <base>`,
//! the JDBC-catalog schema that iceberg-rust's and pyiceberg's SQL catalogs share), so a lost race
//! is a typed [`LayersError::CommitConflict`] the caller answers by reloading and re-checking.
//!
//! The same swap commits metadata changes iceberg-rust has no action for (type promotion, see
//! [`commit_metadata`]): the new metadata is built with its public `TableMetadataBuilder`, written
//! as the next `metadata/<version>-<uuid>.metadata.json`, then swapped in.

use std::collections::HashMap;
use std::str::FromStr;

use async_trait::async_trait;
use iceberg::spec::TableMetadata;
use iceberg::table::Table;
use iceberg::{
    Catalog, Error as IcebergError, ErrorKind, MetadataLocation, Namespace, NamespaceIdent,
    TableCommit, TableCreation, TableIdent,
};
use iceberg_catalog_sql::SqlCatalog;
use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, install_default_drivers};

use crate::error::{LayersError, Result};

/// The catalog row holding a table's current metadata location, updated only by compare-and-swap.
#[derive(Debug, Clone)]
pub(crate) struct CatalogPointer {
    pool: AnyPool,
    catalog_name: String,
    dollar_params: bool,
}

impl CatalogPointer {
    /// Connects to the catalog database `uri` (the one the SQL catalog uses).
    pub(crate) async fn connect(uri: &str, catalog_name: &str) -> Result<Self> {
        install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            // sqlx retries a refused connection until this runs out: fail in seconds, not 30.
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(uri)
            .await
            .map_err(|e| LayersError::Catalog {
                uri: redact(uri),
                message: e.to_string(),
                hint: "check the catalog URL (sqlite:<file> or postgres://user:pass@host/db)",
            })?;
        Ok(CatalogPointer {
            pool,
            catalog_name: catalog_name.to_string(),
            dollar_params: uri.starts_with("postgres"),
        })
    }

    /// The `i`-th bind placeholder in this database's dialect (`$1` or `?`).
    fn placeholder(&self, i: usize) -> String {
        if self.dollar_params {
            format!("${i}")
        } else {
            "?".to_string()
        }
    }

    /// The metadata file `table` points at now; `None` when there is no such table.
    pub(crate) async fn current(&self, table: &TableIdent) -> Result<Option<String>> {
        let p = |i: usize| self.placeholder(i);
        let sql = format!(
            "SELECT metadata_location FROM iceberg_tables \
             WHERE catalog_name = {} AND table_namespace = {} AND table_name = {}",
            p(1),
            p(2),
            p(3)
        );
        let row = sqlx::query(&sql)
            .bind(&self.catalog_name)
            .bind(table.namespace().join("."))
            .bind(table.name())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| LayersError::Iceberg {
                context: format!("reading the metadata pointer of {table}"),
                message: e.to_string(),
            })?;
        match row {
            None => Ok(None),
            Some(row) => {
                sqlx::Row::try_get::<Option<String>, _>(&row, 0).map_err(|e| LayersError::Iceberg {
                    context: format!("reading the metadata pointer of {table}"),
                    message: e.to_string(),
                })
            }
        }
    }

    /// Points `table` at `new` if it still points at `expected`; false when another writer
    /// moved it first.
    pub(crate) async fn swap(&self, table: &TableIdent, expected: &str, new: &str) -> Result<bool> {
        let p = |i: usize| self.placeholder(i);
        let sql = format!(
            "UPDATE iceberg_tables SET metadata_location = {}, previous_metadata_location = {} \
             WHERE catalog_name = {} AND table_namespace = {} AND table_name = {} \
             AND metadata_location = {}",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6)
        );
        let done = sqlx::query(&sql)
            .bind(new)
            .bind(expected)
            .bind(&self.catalog_name)
            .bind(table.namespace().join("."))
            .bind(table.name())
            .bind(expected)
            .execute(&self.pool)
            .await
            .map_err(|e| LayersError::Iceberg {
                context: format!("swapping the metadata pointer of {table}"),
                message: e.to_string(),
            })?;
        Ok(done.rows_affected() == 1)
    }
}

/// `postgres://user:secret@host` → `postgres://user:***@host` for messages.
pub(crate) fn redact(uri: &str) -> String {
    match (uri.find("://"), uri.rfind('@')) {
        (Some(s), Some(at)) if at > s => match uri[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &uri[..s + 3], &uri[at..]),
            None => uri.to_string(),
        },
        _ => uri.to_string(),
    }
}

fn base_location(table: &Table) -> Result<&str> {
    table.metadata_location().ok_or_else(|| {
        LayersError::Internal(format!("{} has no metadata location", table.identifier()))
    })
}

/// Writes `metadata` as the next version of `base` and swaps it in. `Ok(false)` when another
/// writer committed first (nothing is changed; the written file is an unreferenced orphan).
pub(crate) async fn commit_metadata(
    pointer: &CatalogPointer,
    base: &Table,
    metadata: TableMetadata,
) -> Result<bool> {
    let ident = base.identifier().clone();
    let err = |what: &str| {
        let context = format!("{what} of {ident}");
        move |e: IcebergError| LayersError::Iceberg {
            context,
            message: e.to_string(),
        }
    };
    let expected = base_location(base)?.to_string();
    let location = MetadataLocation::from_str(&expected)
        .map_err(err("parsing the metadata location"))?
        .with_next_version()
        .with_new_metadata(&metadata);
    metadata
        .write_to(base.file_io(), &location)
        .await
        .map_err(err("writing new metadata"))?;
    pointer.swap(&ident, &expected, &location.to_string()).await
}

/// A catalog that shows `base` as the current version of its table and commits onto exactly
/// that version (see the module docs). Everything else is delegated to the SQL catalog.
#[derive(Debug)]
pub(crate) struct PinnedCatalog<'a> {
    pub(crate) inner: &'a SqlCatalog,
    pub(crate) pointer: &'a CatalogPointer,
    pub(crate) base: Table,
}

/// The error [`PinnedCatalog`] returns when the base is no longer current. Not retryable, so
/// `Transaction::commit` hands it back instead of re-applying on a version we did not check.
fn conflict(table: &TableIdent) -> IcebergError {
    IcebergError::new(
        ErrorKind::CatalogCommitConflicts,
        format!("{table} changed since it was read"),
    )
    .with_retryable(false)
}

/// True for the conflict [`PinnedCatalog`] reports.
pub(crate) fn is_conflict(e: &IcebergError) -> bool {
    e.kind() == ErrorKind::CatalogCommitConflicts
}

#[async_trait]
impl Catalog for PinnedCatalog<'_> {
    async fn list_namespaces(
        &self,
        parent: Option<&NamespaceIdent>,
    ) -> iceberg::Result<Vec<NamespaceIdent>> {
        self.inner.list_namespaces(parent).await
    }

    async fn create_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> iceberg::Result<Namespace> {
        self.inner.create_namespace(namespace, properties).await
    }

    async fn get_namespace(&self, namespace: &NamespaceIdent) -> iceberg::Result<Namespace> {
        self.inner.get_namespace(namespace).await
    }

    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> iceberg::Result<bool> {
        self.inner.namespace_exists(namespace).await
    }

    async fn update_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> iceberg::Result<()> {
        self.inner.update_namespace(namespace, properties).await
    }

    async fn drop_namespace(&self, namespace: &NamespaceIdent) -> iceberg::Result<()> {
        self.inner.drop_namespace(namespace).await
    }

    async fn list_tables(&self, namespace: &NamespaceIdent) -> iceberg::Result<Vec<TableIdent>> {
        self.inner.list_tables(namespace).await
    }

    async fn create_table(
        &self,
        namespace: &NamespaceIdent,
        creation: TableCreation,
    ) -> iceberg::Result<Table> {
        self.inner.create_table(namespace, creation).await
    }

    async fn load_table(&self, table: &TableIdent) -> iceberg::Result<Table> {
        if table == self.base.identifier() {
            return Ok(self.base.clone());
        }
        self.inner.load_table(table).await
    }

    async fn drop_table(&self, table: &TableIdent) -> iceberg::Result<()> {
        self.inner.drop_table(table).await
    }

    async fn purge_table(&self, table: &TableIdent) -> iceberg::Result<()> {
        self.inner.purge_table(table).await
    }

    async fn table_exists(&self, table: &TableIdent) -> iceberg::Result<bool> {
        self.inner.table_exists(table).await
    }

    async fn rename_table(&self, src: &TableIdent, dest: &TableIdent) -> iceberg::Result<()> {
        self.inner.rename_table(src, dest).await
    }

    async fn register_table(
        &self,
        table: &TableIdent,
        metadata_location: String,
    ) -> iceberg::Result<Table> {
        self.inner.register_table(table, metadata_location).await
    }

    async fn update_table(&self, commit: TableCommit) -> iceberg::Result<Table> {
        let ident = commit.identifier().clone();
        if &ident != self.base.identifier() {
            return Err(IcebergError::new(
                ErrorKind::Unexpected,
                format!(
                    "a commit pinned to {} cannot change {ident}",
                    self.base.identifier()
                ),
            ));
        }
        let staged = commit.apply(self.base.clone())?;
        let expected = self.base.metadata_location_result()?.to_string();
        let location = MetadataLocation::from_str(staged.metadata_location_result()?)?;
        staged
            .metadata()
            .write_to(staged.file_io(), &location)
            .await?;
        let swapped = self
            .pointer
            .swap(&ident, &expected, &location.to_string())
            .await
            .map_err(|e| IcebergError::new(ErrorKind::Unexpected, e.to_string()))?;
        if !swapped {
            return Err(conflict(&ident));
        }
        Ok(staged)
    }
}
