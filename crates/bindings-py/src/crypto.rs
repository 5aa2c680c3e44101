//! `strata.decrypt(data, keys)`: Arrow data with every value the `encrypt` mask wrote decrypted,
//! for holders of the keys (`{key_id: base64 key}`; several after a rotation).

use std::collections::HashMap;

use pyo3::prelude::*;
use strata_core::encryption::{ColumnCipher, KeyRing, decrypt_batch};

use crate::arrow_io::{batches_from, to_table};
use crate::errors::{Kind, raise};

/// Decrypts every `enc1:` token of `data`'s string columns with `keys`; other values are kept.
#[pyfunction]
#[pyo3(signature = (data, keys))]
pub(crate) fn decrypt<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    keys: HashMap<String, String>,
) -> PyResult<Bound<'py, PyAny>> {
    let (schema, batches) = batches_from(data)?;
    let mut ring = KeyRing::new();
    for (id, key) in &keys {
        ring.add(
            ColumnCipher::from_base64(id, key).map_err(|e| raise(Kind::Config, e.to_string()))?,
        );
    }
    let plain = py
        .detach(|| {
            batches
                .iter()
                .map(|b| decrypt_batch(b, &ring))
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| raise(Kind::Data, e.to_string()))?;
    let schema = plain.first().map_or(schema, |b| b.schema());
    to_table(py, schema, plain)
}
