//! `mask`: hide sensitive string values — SHA-256 hex (joinable), keyed HMAC-SHA256 hex (joinable,
//! not reversible by guessing without the key), deterministic encryption (joinable, reversible
//! with the key: [`crate::encryption`]), a constant, or all but the last N characters.
//! Nulls stay null. Keys are resolved at build time from environment variables the caller's
//! secret resolver reads, and never appear in errors.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::encryption::{ColumnCipher, KEY_ID_METADATA, SCHEME, SCHEME_METADATA};
use crate::error::{CoreError, Result};
use crate::spec::{MaskMethod, MaskSpec};
use crate::step::{Step, StepOutput};

enum Method {
    Sha256,
    Hmac(Hmac<Sha256>),
    Encrypt(Box<ColumnCipher>),
    Redact(String),
    KeepLast(usize, char),
}

/// The built `mask` step.
pub struct Mask {
    name: String,
    columns: Vec<(usize, Method)>,
    output: SchemaRef,
}

impl Mask {
    /// Resolves columns (must be strings) and secrets.
    pub fn build(
        spec: &MaskSpec,
        name: &str,
        loc: &str,
        input: &SchemaRef,
        secret: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut columns = Vec::new();
        for (column, method) in &spec.columns {
            let field = format!("columns.{column}");
            let idx = input.index_of(column).map_err(|_| {
                CoreError::spec(loc, &field, format!("unknown column `{column}`"))
                    .with_hint(format!("available: {}", crate::steps::column_list(input)))
            })?;
            if !matches!(
                input.field(idx).data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) {
                return Err(
                    CoreError::spec(loc, &field, "only string columns can be masked")
                        .with_hint("cast it to string first"),
                );
            }
            let m = match method {
                MaskMethod::Sha256 => Method::Sha256,
                MaskMethod::HmacSha256 { key_env } => {
                    let key = secret(key_env).filter(|k| !k.is_empty()).ok_or_else(|| {
                        CoreError::spec(
                            loc,
                            &field,
                            format!(
                                "environment variable `{key_env}` holding the HMAC key is not set"
                            ),
                        )
                    })?;
                    let mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
                        .map_err(|_| CoreError::spec(loc, &field, "HMAC key is not usable"))?;
                    Method::Hmac(mac)
                }
                MaskMethod::Encrypt { key_env, key_id } => {
                    let key = secret(key_env).filter(|k| !k.is_empty()).ok_or_else(|| {
                        CoreError::spec(
                            loc,
                            &field,
                            format!(
                                "environment variable `{key_env}` holding the encryption key is not set"
                            ),
                        )
                        .with_hint("a key is 32 random bytes in base64: `openssl rand -base64 32`")
                    })?;
                    let cipher = ColumnCipher::from_base64(key_id, &key)
                        .map_err(|e| CoreError::spec(loc, &field, e.to_string()))?;
                    Method::Encrypt(Box::new(cipher))
                }
                MaskMethod::Redact { with } => Method::Redact(with.clone()),
                MaskMethod::KeepLast { n, mask_char } => Method::KeepLast(*n, *mask_char),
            };
            let mut masked = Field::new(column, DataType::Utf8, input.field(idx).is_nullable());
            if let Method::Encrypt(cipher) = &m {
                masked = masked.with_metadata(
                    [
                        (KEY_ID_METADATA.to_string(), cipher.key_id().to_string()),
                        (SCHEME_METADATA.to_string(), SCHEME.to_string()),
                    ]
                    .into(),
                );
            }
            fields[idx] = masked;
            columns.push((idx, m));
        }
        Ok(Mask {
            name: name.to_string(),
            columns,
            output: Arc::new(Schema::new(fields)),
        })
    }
}

fn mask_array(array: &ArrayRef, method: &Method) -> Result<ArrayRef> {
    let array = arrow::compute::cast(array, &DataType::Utf8)?;
    let strings = array.as_string::<i32>();
    let out_len = match method {
        Method::Sha256 | Method::Hmac(_) => 64 * strings.len(),
        _ => strings.values().len(),
    };
    let mut b = StringBuilder::with_capacity(strings.len(), out_len);
    let mut hex_buf = [0u8; 64];
    for v in strings.iter() {
        let Some(v) = v else {
            b.append_null();
            continue;
        };
        match method {
            Method::Sha256 => {
                let digest = Sha256::digest(v.as_bytes());
                b.append_value(hex_of(&digest, &mut hex_buf));
            }
            Method::Hmac(mac) => {
                let mut m = mac.clone();
                m.update(v.as_bytes());
                b.append_value(hex_of(&m.finalize().into_bytes(), &mut hex_buf));
            }
            Method::Encrypt(cipher) => b.append_value(cipher.encrypt(v)),
            Method::Redact(with) => b.append_value(with),
            Method::KeepLast(n, c) => {
                let total = v.chars().count();
                let hidden = total.saturating_sub(*n);
                let masked: String = std::iter::repeat_n(*c, hidden)
                    .chain(v.chars().skip(hidden))
                    .collect();
                b.append_value(masked);
            }
        }
    }
    Ok(Arc::new(b.finish()))
}

fn hex_of<'a>(bytes: &[u8], buf: &'a mut [u8; 64]) -> &'a str {
    // hex::encode_to_slice only fails on a length mismatch, which 32 bytes → 64 chars rules out.
    if hex::encode_to_slice(bytes, buf).is_err() {
        return "";
    }
    std::str::from_utf8(buf).unwrap_or_default()
}

impl Step for Mask {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<StepOutput> {
        let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
        for (idx, method) in &self.columns {
            cols[*idx] = mask_array(&cols[*idx], method)?;
        }
        Ok(StepOutput::pass(RecordBatch::try_new(
            self.output.clone(),
            cols,
        )?))
    }
}
