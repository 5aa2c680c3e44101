//! Safe, vectorised casts that report which rows failed instead of failing the batch.
//!
//! The trick: cast with `safe = true` (a value that does not convert becomes null), then compare
//! null masks — a row failed where the input was non-null and the output is null. Nested lists
//! and structs recurse, and a child failure is folded back to its top-level row. Timestamps
//! accept ISO-8601 strings and epoch numbers (in a configured unit).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, GenericListArray, Int64Array,
    OffsetSizeTrait, StructArray, new_null_array,
};
use arrow::compute::kernels::cast::{CastOptions, cast_with_options};
use arrow::compute::{and, is_not_null, is_null, or};
use arrow::datatypes::{DataType, Field, Fields, Int64Type, TimeUnit};

use crate::error::Result;
use crate::spec::EpochUnit;

const SAFE: CastOptions<'static> = CastOptions {
    safe: true,
    format_options: arrow::util::display::FormatOptions::new(),
};

/// A cast result: the converted array and, when any row failed, the per-row failure mask.
pub(crate) struct Casted {
    pub array: ArrayRef,
    pub failed: Option<BooleanArray>,
}

/// The type JSON is first decoded into: every scalar leaf as a string, structure kept, so that
/// no value can fail the decode and conversion failures stay per row.
pub(crate) fn lenient_type(target: &DataType) -> DataType {
    match target {
        DataType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| Field::new(f.name(), lenient_type(f.data_type()), true))
                .collect::<Fields>(),
        ),
        DataType::List(f) => DataType::List(Arc::new(Field::new(
            f.name(),
            lenient_type(f.data_type()),
            true,
        ))),
        _ => DataType::Utf8,
    }
}

/// True when a cast from `from` to `to` is something [`safe_cast`] can attempt.
pub(crate) fn can_cast(from: &DataType, to: &DataType) -> bool {
    match (from, to) {
        (a, b) if a == b => true,
        (DataType::Struct(fa), DataType::Struct(fb)) => fb.iter().all(|t| {
            fa.iter()
                .find(|s| s.name() == t.name())
                .is_none_or(|s| can_cast(s.data_type(), t.data_type()))
        }),
        (DataType::List(a), DataType::List(b)) => can_cast(a.data_type(), b.data_type()),
        (from, DataType::Timestamp(..)) if from.is_integer() => true,
        _ => arrow::compute::can_cast_types(from, to),
    }
}

/// Casts `array` to `target`; values that don't convert become null and are flagged as failed.
pub(crate) fn safe_cast(array: &ArrayRef, target: &DataType, epoch: EpochUnit) -> Result<Casted> {
    if array.data_type() == target {
        return Ok(Casted {
            array: array.clone(),
            failed: None,
        });
    }
    match (array.data_type(), target) {
        (DataType::Struct(_), DataType::Struct(fields)) => {
            cast_struct(array.as_struct(), fields, epoch)
        }
        (DataType::List(_), DataType::List(field)) => {
            cast_list(array.as_list::<i32>(), field, epoch)
        }
        (DataType::LargeList(_), DataType::List(field)) => {
            let casted = cast_list(array.as_list::<i64>(), field, epoch)?;
            Ok(Casted {
                array: cast_with_options(&casted.array, target, &SAFE)?,
                failed: casted.failed,
            })
        }
        (from, DataType::Timestamp(unit, tz))
            if from.is_integer() || from.is_floating() || is_string(from) =>
        {
            cast_timestamp(array, *unit, tz.clone(), epoch)
        }
        _ => {
            let out = cast_with_options(array, target, &SAFE)?;
            Ok(Casted {
                failed: failures(array.as_ref(), out.as_ref())?,
                array: out,
            })
        }
    }
}

fn is_string(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// Rows that were non-null before and null after.
fn failures(before: &dyn Array, after: &dyn Array) -> Result<Option<BooleanArray>> {
    if after.null_count() == before.null_count() {
        return Ok(None);
    }
    Ok(Some(and(&is_not_null(before)?, &is_null(after)?)?))
}

fn merge(a: Option<BooleanArray>, b: Option<BooleanArray>) -> Result<Option<BooleanArray>> {
    Ok(match (a, b) {
        (Some(a), Some(b)) => Some(or(&a, &b)?),
        (a, b) => a.or(b),
    })
}

fn cast_struct(array: &StructArray, fields: &Fields, epoch: EpochUnit) -> Result<Casted> {
    let mut children = Vec::with_capacity(fields.len());
    let mut failed = None;
    for field in fields {
        match array.column_by_name(field.name()) {
            Some(child) => {
                let c = safe_cast(child, field.data_type(), epoch)?;
                failed = merge(failed, c.failed)?;
                children.push(c.array);
            }
            None => children.push(new_null_array(field.data_type(), array.len())),
        }
    }
    // A failure under a null parent is not a failure: nothing was there.
    if let (Some(f), Some(nulls)) = (&failed, array.nulls()) {
        failed = Some(and(f, &BooleanArray::new(nulls.inner().clone(), None))?);
    }
    let fields: Fields = fields
        .iter()
        .map(|f| Arc::new(f.as_ref().clone().with_nullable(true)))
        .collect();
    let out = StructArray::try_new(fields, children, array.nulls().cloned())?;
    Ok(Casted {
        array: Arc::new(out),
        failed,
    })
}

fn cast_list<O: OffsetSizeTrait>(
    array: &GenericListArray<O>,
    field: &Arc<Field>,
    epoch: EpochUnit,
) -> Result<Casted> {
    let inner = safe_cast(array.values(), field.data_type(), epoch)?;
    // Fold element failures back to their list row through the offsets.
    let failed = match inner.failed {
        None => None,
        Some(elem_failed) => {
            let offsets = array.value_offsets();
            let mut rows = BooleanBufferBuilder::new(array.len());
            for i in 0..array.len() {
                let (start, end) = (offsets[i].as_usize(), offsets[i + 1].as_usize());
                let any = array.is_valid(i) && (start..end).any(|j| elem_failed.value(j));
                rows.append(any);
            }
            Some(BooleanArray::new(rows.finish(), None))
        }
    };
    let offsets = arrow::buffer::OffsetBuffer::new(
        array
            .value_offsets()
            .iter()
            .map(|o| o.as_usize() as i32)
            .collect::<Vec<i32>>()
            .into(),
    );
    let out = GenericListArray::<i32>::try_new(
        Arc::new(field.as_ref().clone().with_nullable(true)),
        offsets,
        inner.array,
        array.nulls().cloned(),
    )?;
    Ok(Casted {
        array: Arc::new(out),
        failed,
    })
}

/// Factor from the epoch unit to the target unit, as (multiply, divide).
fn scale(epoch: EpochUnit, unit: TimeUnit) -> (i64, i64) {
    let from = match epoch {
        EpochUnit::S => 1,
        EpochUnit::Ms => 1_000,
        EpochUnit::Us => 1_000_000,
        EpochUnit::Ns => 1_000_000_000,
    };
    let to = match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    if to >= from {
        (to / from, 1)
    } else {
        (1, from / to)
    }
}

fn cast_timestamp(
    array: &ArrayRef,
    unit: TimeUnit,
    tz: Option<Arc<str>>,
    epoch: EpochUnit,
) -> Result<Casted> {
    let target = DataType::Timestamp(unit, tz);
    let (mul, div) = scale(epoch, unit);
    let from_epoch = |a: &ArrayRef| -> Result<ArrayRef> {
        let ints = cast_with_options(a, &DataType::Int64, &SAFE)?;
        let ints = ints.as_primitive::<Int64Type>();
        let scaled: Int64Array = ints.unary_opt(|v| v.checked_mul(mul).map(|v| v / div));
        Ok(cast_with_options(
            &(Arc::new(scaled) as ArrayRef),
            &target,
            &SAFE,
        )?)
    };
    let out = if is_string(array.data_type()) {
        let parsed = cast_with_options(array, &target, &SAFE)?;
        if parsed.null_count() == array.null_count() {
            parsed
        } else {
            // Strings that are not ISO-8601 may be epoch numbers sent as text.
            let epochs = from_epoch(array)?;
            arrow::compute::kernels::zip::zip(&is_not_null(&parsed)?, &parsed, &epochs)?
        }
    } else {
        from_epoch(array)?
    };
    Ok(Casted {
        failed: failures(array.as_ref(), out.as_ref())?,
        array: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;

    #[test]
    fn failed_rows_are_flagged_not_fatal() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![
            Some("1.5"),
            Some("abc"),
            None,
            Some("2"),
        ]));
        let c = safe_cast(&a, &DataType::Float64, EpochUnit::Ms).unwrap();
        let failed = c.failed.unwrap();
        assert_eq!(
            failed.iter().collect::<Vec<_>>(),
            vec![Some(false), Some(true), Some(false), Some(false)]
        );
        assert_eq!(c.array.null_count(), 2);
    }

    #[test]
    fn timestamps_from_iso_and_epoch_strings() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![
            "2025-11-20T13:45:12.123Z",
            "1763646312123",
            "soon",
        ]));
        let t = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let c = safe_cast(&a, &t, EpochUnit::Ms).unwrap();
        let ts = c
            .array
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_763_646_312_123_000);
        assert_eq!(ts.value(1), 1_763_646_312_123_000);
        assert!(c.failed.unwrap().value(2));
    }

    #[test]
    fn list_element_failure_flags_its_row() {
        let json = "{\"l\":[\"1\",\"2\"]}\n{\"l\":[\"3\",\"x\"]}\n{\"l\":null}\n";
        let lenient = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![Field::new(
            "l", lenient, true,
        )]));
        let mut d = arrow::json::ReaderBuilder::new(schema)
            .build_decoder()
            .unwrap();
        d.decode(json.as_bytes()).unwrap();
        let b = d.flush().unwrap().unwrap();
        let target = DataType::List(Arc::new(Field::new("item", DataType::Int64, true)));
        let c = safe_cast(b.column(0), &target, EpochUnit::Ms).unwrap();
        assert_eq!(
            c.failed.unwrap().iter().collect::<Vec<_>>(),
            vec![Some(false), Some(true), Some(false)]
        );
    }
}
