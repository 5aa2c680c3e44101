//! `output.partition_by` → the partition spec of a silver table, and its evolution.
//!
//! Transforms: `identity` (a bare column), `year`, `month`, `day`, `hour` of a timestamp or
//! date, `bucket(n, col)` and `truncate(n, col)`. A table whose declared partitioning changed
//! gets a new default spec (partition spec evolution, committed through our metadata
//! compare-and-swap): files already written keep their spec and stay readable, new files use the
//! new one, and a compaction or keyed rewrite moves old files to it.

use iceberg::spec::{Schema, TableMetadataBuilder, Transform, UnboundPartitionSpec};
use iceberg::table::Table;

use super::catalog::{SilverCatalog, iceberg_err};
use super::commit::commit_metadata;
use crate::error::{LayersError, Result};

/// One parsed `partition_by` entry: transform, source column, partition field name.
fn parse(text: &str) -> std::result::Result<(Transform, String, String), String> {
    let t = text.trim();
    let (func, args) = match t.find('(') {
        Some(open) if t.ends_with(')') => (t[..open].trim(), t[open + 1..t.len() - 1].trim()),
        _ => ("identity", t),
    };
    let mut parts = args.split(',').map(str::trim);
    let (width, column) = match func {
        "bucket" | "truncate" => {
            let n = parts
                .next()
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("`{t}`: {func} needs a positive width first"))?;
            (Some(n), parts.next().unwrap_or_default().to_string())
        }
        _ => (None, parts.next().unwrap_or_default().to_string()),
    };
    let (transform, name) = match (func, width) {
        ("identity", _) => (Transform::Identity, column.clone()),
        ("year", _) => (Transform::Year, format!("{column}_year")),
        ("month", _) => (Transform::Month, format!("{column}_month")),
        ("day", _) => (Transform::Day, format!("{column}_day")),
        ("hour", _) => (Transform::Hour, format!("{column}_hour")),
        ("bucket", Some(n)) => (Transform::Bucket(n), format!("{column}_bucket_{n}")),
        ("truncate", Some(n)) => (Transform::Truncate(n), format!("{column}_trunc_{n}")),
        (other, _) => return Err(format!("`{t}`: unknown transform `{other}`")),
    };
    Ok((transform, column, name))
}

/// The partition spec `partition_by` declares over `schema` (unpartitioned when empty).
pub(crate) fn unbound_spec(
    schema: &Schema,
    partition_by: &[String],
    table: &str,
) -> Result<UnboundPartitionSpec> {
    let bad = |message: String| LayersError::Iceberg {
        context: format!("partitioning {table}"),
        message,
    };
    let mut builder = UnboundPartitionSpec::builder();
    for text in partition_by {
        let (transform, column, name) = parse(text).map_err(bad)?;
        let field = schema
            .field_by_name(&column)
            .ok_or_else(|| bad(format!("`{text}`: `{column}` is not a column of the table")))?;
        builder = builder
            .add_partition_field(field.id, name, transform)
            .map_err(iceberg_err(format!("partitioning {table} by `{text}`")))?;
    }
    Ok(builder.build())
}

/// (source column id, transform) of each field: what makes two specs lay files out alike.
fn layout(fields: impl Iterator<Item = (i32, Transform)>) -> Vec<(i32, String)> {
    fields.map(|(id, t)| (id, t.to_string())).collect()
}

/// Makes `wanted` the default spec of `table` if its layout differs from the current one.
pub(crate) async fn evolve_spec(
    catalog: &SilverCatalog,
    table: Table,
    partition_by: &[String],
) -> Result<Table> {
    let name = table.identifier().name().to_string();
    let mut table = table;
    for _ in 0..super::append::COMMIT_ATTEMPTS {
        let wanted = unbound_spec(table.metadata().current_schema(), partition_by, &name)?;
        let current = table.metadata().default_partition_spec();
        let have = layout(current.fields().iter().map(|f| (f.source_id, f.transform)));
        let want = layout(wanted.fields().iter().map(|f| (f.source_id, f.transform)));
        if have == want {
            return Ok(table);
        }
        let metadata = TableMetadataBuilder::new_from_metadata(
            table.metadata().clone(),
            table.metadata_location().map(str::to_string),
        )
        .add_default_partition_spec(wanted)
        .and_then(|b| b.build())
        .map_err(iceberg_err(format!("changing the partitioning of {name}")))?
        .metadata;
        if commit_metadata(catalog.pointer(), &table, metadata).await? {
            return catalog.load(&name).await;
        }
        table = catalog.load(&name).await?;
    }
    Err(LayersError::CommitConflict {
        table: name,
        attempts: super::append::COMMIT_ATTEMPTS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transform_parses_with_its_field_name() {
        for (text, transform, column, name) in [
            ("ts", Transform::Identity, "ts", "ts"),
            ("day(ts)", Transform::Day, "ts", "ts_day"),
            ("hour( ts )", Transform::Hour, "ts", "ts_hour"),
            (
                "bucket(16, device_id)",
                Transform::Bucket(16),
                "device_id",
                "device_id_bucket_16",
            ),
            (
                "truncate(4, site)",
                Transform::Truncate(4),
                "site",
                "site_trunc_4",
            ),
        ] {
            assert_eq!(
                parse(text).unwrap(),
                (transform, column.into(), name.into()),
                "{text}"
            );
        }
        assert!(parse("bucket(0, x)").is_err());
        assert!(parse("week(ts)").is_err());
    }
}
