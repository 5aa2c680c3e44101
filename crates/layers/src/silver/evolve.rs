//! Backward-compatible schema evolution of a silver table towards a pipeline's output schema.
//!
//! Allowed: a new *nullable* column (added as an optional Iceberg column; old rows read it as
//! null), a column the pipeline no longer produces if it is optional (written as null), and type
//! widening (int → long, float → double, decimal precision up at the same scale; old files are
//! read promoted). Refused with an error naming the column and the change: a new NOT NULL column,
//! any other type change, a column that became nullable while the table requires it, a dropped
//! required column.
//!
//! Widening is a metadata-only change iceberg-rust 0.10.1 has no action for: it is committed
//! through Strata's own path ([`super::commit::commit_metadata`]). Both kinds of change commit
//! onto the exact version they were planned against; if another writer changed the table first,
//! the plan is redone on the new version.

use arrow::datatypes::{DataType, Field, Schema as ArrowSchema};
use std::collections::HashMap;
use std::sync::Arc;

use iceberg::arrow::{arrow_schema_to_schema_auto_assign_ids, schema_to_arrow_schema};
use iceberg::spec::{NestedField, PrimitiveType, Schema, TableMetadataBuilder, Type};
use iceberg::table::Table;
use iceberg::transaction::{AddColumn, ApplyTransactionAction, Transaction};

use super::catalog::{SilverCatalog, iceberg_err};
use super::commit::{PinnedCatalog, commit_metadata, is_conflict};
use crate::error::{LayersError, Result};

/// Same Iceberg type: ignores field metadata (field ids) and nested nullability, and treats the
/// Arrow variants one Iceberg type maps to as equal (string/large string, binary/large binary,
/// list/large list, any UTC spelling of a timestamp's zone).
pub(crate) fn same_type(a: &DataType, b: &DataType) -> bool {
    use DataType::*;
    match (a, b) {
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View) => true,
        (Binary | LargeBinary | BinaryView, Binary | LargeBinary | BinaryView) => true,
        (Timestamp(u1, z1), Timestamp(u2, z2)) => u1 == u2 && z1.is_some() == z2.is_some(),
        (List(x) | LargeList(x), List(y) | LargeList(y)) => same_type(x.data_type(), y.data_type()),
        (Struct(x), Struct(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|(f, g)| f.name() == g.name() && same_type(f.data_type(), g.data_type()))
        }
        (Map(x, _), Map(y, _)) => same_type(x.data_type(), y.data_type()),
        _ => a == b,
    }
}

fn widening(from: &DataType, to: &DataType) -> bool {
    matches!(
        (from, to),
        (DataType::Int32, DataType::Int64) | (DataType::Float32, DataType::Float64)
    ) || matches!((from, to), (DataType::Decimal128(p1, s1), DataType::Decimal128(p2, s2)) if s1 == s2 && p2 > p1)
}

fn incompatible(table: &str, column: &str, change: String) -> LayersError {
    LayersError::SchemaChange {
        table: table.to_string(),
        column: column.to_string(),
        change,
    }
}

/// How many times a change is re-planned after losing a race to another writer.
const ATTEMPTS: usize = 8;

/// Brings `table` to `desired` (a silver Arrow schema) if the change is backward compatible.
pub(crate) async fn evolve(
    catalog: &SilverCatalog,
    table: Table,
    desired: &ArrowSchema,
) -> Result<Table> {
    let name = table.identifier().name().to_string();
    let mut table = table;
    for _ in 0..ATTEMPTS {
        match evolve_once(catalog, &table, desired).await? {
            Some(done) => return Ok(done),
            None => table = catalog.load(&name).await?,
        }
    }
    Err(LayersError::CommitConflict {
        table: name,
        attempts: ATTEMPTS,
    })
}

/// The Iceberg type a widened column gets.
fn widened_type(to: &DataType) -> Option<PrimitiveType> {
    match to {
        DataType::Int64 => Some(PrimitiveType::Long),
        DataType::Float64 => Some(PrimitiveType::Double),
        DataType::Decimal128(p, s) => Some(PrimitiveType::Decimal {
            precision: u32::from(*p),
            scale: u32::try_from(*s).ok()?,
        }),
        _ => None,
    }
}

/// One planning + commit round; `None` when another writer changed the table meanwhile.
async fn evolve_once(
    catalog: &SilverCatalog,
    table: &Table,
    desired: &ArrowSchema,
) -> Result<Option<Table>> {
    let name = table.identifier().name().to_string();
    let current = schema_to_arrow_schema(table.metadata().current_schema())
        .map_err(iceberg_err(format!("schema of {name}")))?;
    let mut to_add: Vec<Field> = Vec::new();
    let mut to_widen: HashMap<String, PrimitiveType> = HashMap::new();
    for want in desired.fields() {
        match current.field_with_name(want.name()) {
            Err(_) if want.is_nullable() => to_add.push(want.as_ref().clone()),
            Err(_) => {
                return Err(incompatible(
                    &name,
                    want.name(),
                    "is new and NOT NULL; existing rows have no value for it (declare it nullable)"
                        .into(),
                ));
            }
            Ok(have) if !same_type(have.data_type(), want.data_type()) => {
                let widened = widening(have.data_type(), want.data_type())
                    .then(|| widened_type(want.data_type()))
                    .flatten();
                let Some(widened) = widened else {
                    return Err(incompatible(
                        &name,
                        want.name(),
                        format!(
                            "changes type from {} to {}, which is not a backward-compatible change (allowed: int → long, float → double, a larger decimal precision)",
                            have.data_type(),
                            want.data_type()
                        ),
                    ));
                };
                to_widen.insert(want.name().clone(), widened);
            }
            Ok(have) if want.is_nullable() && !have.is_nullable() => {
                return Err(incompatible(
                    &name,
                    want.name(),
                    "became nullable but the table requires it".into(),
                ));
            }
            Ok(_) => {}
        }
    }
    for have in current.fields() {
        if desired.field_with_name(have.name()).is_err() && !have.is_nullable() {
            return Err(incompatible(
                &name,
                have.name(),
                "is required by the table but the pipeline no longer produces it".into(),
            ));
        }
    }
    let mut table = table.clone();
    if !to_widen.is_empty() {
        match widen(catalog, &table, &to_widen).await? {
            Some(widened) => table = widened,
            None => return Ok(None),
        }
    }
    if to_add.is_empty() {
        return Ok(Some(table));
    }
    // Iceberg types for the new columns (nested ones need ids; the table reassigns fresh ones).
    let added = arrow_schema_to_schema_auto_assign_ids(&ArrowSchema::new(to_add.clone()))
        .map_err(iceberg_err(format!("mapping new columns of {name}")))?;
    let tx = Transaction::new(&table);
    let mut action = tx.update_schema();
    for f in &to_add {
        let field = added
            .field_by_name(f.name())
            .ok_or_else(|| LayersError::Internal(format!("new column {} lost", f.name())))?;
        action = action.add_column(AddColumn::optional(
            f.name(),
            field.field_type.as_ref().clone(),
        ));
    }
    let tx = action.apply(tx).map_err(iceberg_err(format!(
        "preparing the schema change of {name}"
    )))?;
    let pinned = PinnedCatalog {
        inner: catalog.catalog(),
        pointer: catalog.pointer(),
        base: table.clone(),
    };
    match tx.commit(&pinned).await {
        Ok(done) => Ok(Some(done)),
        Err(e) if is_conflict(&e) => Ok(None),
        Err(e) => Err(iceberg_err(format!(
            "committing the schema change of {name}"
        ))(e)),
    }
}

/// Commits a new current schema with the `columns` promoted (same field ids, so old data files
/// stay valid and are read promoted). `None` when another writer committed first.
async fn widen(
    catalog: &SilverCatalog,
    table: &Table,
    columns: &HashMap<String, PrimitiveType>,
) -> Result<Option<Table>> {
    let name = table.identifier().name().to_string();
    let current = table.metadata().current_schema();
    let fields = current
        .as_struct()
        .fields()
        .iter()
        .map(|f| match columns.get(&f.name) {
            Some(to) => Arc::new(NestedField {
                field_type: Box::new(Type::Primitive(to.clone())),
                ..f.as_ref().clone()
            }),
            None => f.clone(),
        });
    let schema = Schema::builder()
        .with_fields(fields)
        .with_identifier_field_ids(current.identifier_field_ids())
        .build()
        .map_err(iceberg_err(format!(
            "building the widened schema of {name}"
        )))?;
    let metadata = TableMetadataBuilder::new_from_metadata(
        table.metadata().clone(),
        table.metadata_location().map(str::to_string),
    )
    .add_current_schema(schema)
    .and_then(|b| b.build())
    .map_err(iceberg_err(format!("widening columns of {name}")))?
    .metadata;
    if commit_metadata(catalog.pointer(), table, metadata).await? {
        catalog.load(&name).await.map(Some)
    } else {
        Ok(None)
    }
}
