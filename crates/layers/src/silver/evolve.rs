//! Backward-compatible schema evolution of a silver table towards a pipeline's output schema.
//!
//! Allowed: a new *nullable* column (added as an optional Iceberg column; old rows read it as
//! null), a column the pipeline no longer produces if it is optional (written as null). Refused
//! with an error naming the column and the change: a new NOT NULL column, a type change, a column
//! that became nullable while the table requires it, a dropped required column. Type widening
//! (int → long, float → double) is legal in Iceberg but iceberg-rust 0.10.1 has no action for it:
//! it is refused with a message saying so, until Strata's own metadata commit path exists.

use arrow::datatypes::{DataType, Field, Schema as ArrowSchema};
use iceberg::arrow::{arrow_schema_to_schema_auto_assign_ids, schema_to_arrow_schema};
use iceberg::table::Table;
use iceberg::transaction::{AddColumn, ApplyTransactionAction, Transaction};

use super::catalog::{SilverCatalog, iceberg_err};
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

/// Brings `table` to `desired` (a silver Arrow schema) if the change is backward compatible.
pub(crate) async fn evolve(
    catalog: &SilverCatalog,
    table: Table,
    desired: &ArrowSchema,
) -> Result<Table> {
    let name = table.identifier().name().to_string();
    let current = schema_to_arrow_schema(table.metadata().current_schema())
        .map_err(iceberg_err(format!("schema of {name}")))?;
    let mut to_add: Vec<Field> = Vec::new();
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
                let change = if widening(have.data_type(), want.data_type()) {
                    format!(
                        "widens from {} to {}; Iceberg allows it but iceberg-rust 0.10.1 cannot commit a type promotion yet",
                        have.data_type(),
                        want.data_type()
                    )
                } else {
                    format!(
                        "changes type from {} to {}, which is not a backward-compatible change",
                        have.data_type(),
                        want.data_type()
                    )
                };
                return Err(incompatible(&name, want.name(), change));
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
    if to_add.is_empty() {
        return Ok(table);
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
    tx.commit(catalog.catalog())
        .await
        .map_err(iceberg_err(format!(
            "committing the schema change of {name}"
        )))
}
