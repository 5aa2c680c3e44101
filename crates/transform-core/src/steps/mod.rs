//! One file per step. Each step has a serde spec (in [`crate::spec`]) and a `build` that turns it
//! into a runtime [`crate::step::Step`] over a known input schema; every schema problem comes out
//! of `build`, never out of `process`.

pub mod cast;
pub mod cdc_unwrap;
pub mod dedup;
pub mod derive;
pub mod expect;
pub mod filter;
pub mod flatten;
pub mod mask;
pub mod parse_json;
pub mod rename;
pub mod select;
pub mod window_aggregate;

use arrow::datatypes::SchemaRef;

use crate::step::ROW_ID;

/// `a, b, c` — the user-visible columns of a schema, for hints.
pub(crate) fn column_list(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .filter(|f| f.name() != ROW_ID)
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
