//! Deterministic column encryption (the `encrypt` mask method, `strata decrypt`, the Python
//! helper): equal values encrypt to equal tokens, so joins, `GROUP BY` and `dedup` still work
//! on encrypted columns, and holders of the key get the values back.
//!
//! - **Algorithm:** AES-256-GCM-SIV (RFC 8452, RustCrypto `aes-gcm-siv`). Its nonce is
//!   synthetic: the first 12 bytes of HMAC-SHA256 of the value under a key of its own, so a
//!   nonce repeats only for the same value (which is what makes the scheme deterministic), and
//!   GCM-SIV stays safe when it does.
//! - **Keys:** a 32-byte master key, base64 in an environment variable (or a key file). Two
//!   subkeys are derived from it with HMAC-SHA256 (one for AES, one for nonces), so the master
//!   key itself encrypts nothing.
//! - **Token:** `enc1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`. The key id travels with
//!   every value: after a rotation (a new key id for new data), old values name their old key
//!   and stay readable with it. The id is also in the column's Arrow metadata.
//! - Tampered, truncated or foreign tokens are errors naming the problem, never garbage.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};

use aes_gcm_siv::aead::{Aead, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of every token (version 1 of the format).
pub const TOKEN_PREFIX: &str = "enc1:";
/// Arrow field metadata: the key id an encrypted column was written with.
pub const KEY_ID_METADATA: &str = "strata.encrypt.key_id";
/// Arrow field metadata: the scheme.
pub const SCHEME_METADATA: &str = "strata.encrypt.scheme";
/// The scheme's name, as the metadata says it.
pub const SCHEME: &str = "aes-256-gcm-siv+hmac-sha256-nonce/v1";

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Why a key or a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The key text is not base64 of 32 bytes.
    #[error("key `{key_id}`: {problem}")]
    BadKey {
        /// The key's id.
        key_id: String,
        /// What is wrong (never the key).
        problem: String,
    },
    /// A key id with characters a token cannot carry.
    #[error("key id `{0}`: use 1 to 32 letters, digits, `-` or `_`")]
    BadKeyId(String),
    /// The value is not a token of this format.
    #[error("not an encrypted value (no `{TOKEN_PREFIX}<key id>:` prefix)")]
    NotAToken,
    /// The token names a key that was not given.
    #[error("encrypted with key `{0}`, which was not given")]
    UnknownKey(String),
    /// The decrypted columns do not make a batch (an Arrow error).
    #[error("decrypted batch: {0}")]
    Batch(String),
    /// A value of a column did not decrypt.
    #[error("column `{column}`, row {row}: {source}")]
    InColumn {
        /// The column.
        column: String,
        /// The row (0-based, within its batch).
        row: usize,
        /// Why.
        source: Box<CryptoError>,
    },
    /// The token does not decode or authenticate: tampered, truncated or another key's.
    #[error("encrypted value under key `{key_id}` does not decrypt: {problem}")]
    Corrupt {
        /// The key id the token names.
        key_id: String,
        /// What failed.
        problem: &'static str,
    },
}

/// One key: encrypts and decrypts tokens naming its id.
#[derive(Clone)]
pub struct ColumnCipher {
    key_id: String,
    aes: Aes256GcmSiv,
    nonce_key: Hmac<Sha256>,
}

impl std::fmt::Debug for ColumnCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColumnCipher")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

fn derive(master: &[u8], label: &[u8]) -> Option<[u8; 32]> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(master).ok()?;
    mac.update(label);
    Some(mac.finalize().into_bytes().into())
}

impl ColumnCipher {
    /// A cipher from the base64 text of a 32-byte master key.
    pub fn from_base64(key_id: &str, text: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| CryptoError::BadKey {
                key_id: key_id.to_string(),
                problem: "not base64 (generate one with `openssl rand -base64 32`)".into(),
            })?;
        Self::from_bytes(key_id, &bytes)
    }

    /// A cipher from a 32-byte master key.
    pub fn from_bytes(key_id: &str, master: &[u8]) -> Result<Self, CryptoError> {
        let id_ok = !key_id.is_empty()
            && key_id.len() <= 32
            && key_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !id_ok {
            return Err(CryptoError::BadKeyId(key_id.to_string()));
        }
        if master.len() != 32 {
            return Err(CryptoError::BadKey {
                key_id: key_id.to_string(),
                problem: format!("{} bytes; a key is 32 bytes", master.len()),
            });
        }
        let unusable = || CryptoError::BadKey {
            key_id: key_id.to_string(),
            problem: "not usable as an HMAC key".into(),
        };
        let aes_key = derive(master, b"strata/encrypt/aes-256-gcm-siv").ok_or_else(unusable)?;
        let nonce_key = derive(master, b"strata/encrypt/nonce").ok_or_else(unusable)?;
        let aes = Aes256GcmSiv::new_from_slice(&aes_key).map_err(|_| CryptoError::BadKey {
            key_id: key_id.to_string(),
            problem: "not usable as an AES-256 key".into(),
        })?;
        let nonce_key =
            <Hmac<Sha256> as Mac>::new_from_slice(&nonce_key).map_err(|_| unusable())?;
        Ok(ColumnCipher {
            key_id: key_id.to_string(),
            aes,
            nonce_key,
        })
    }

    /// Its key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The token of `value`: the same value always gives the same token under one key.
    pub fn encrypt(&self, value: &str) -> String {
        let mut mac = self.nonce_key.clone();
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let nonce = Nonce::from_slice(&digest[..NONCE_LEN]);
        // GCM-SIV only fails on plaintexts over 2^36 bytes, which an Arrow string cannot hold.
        let sealed = self
            .aes
            .encrypt(nonce, value.as_bytes())
            .unwrap_or_default();
        let mut raw = Vec::with_capacity(NONCE_LEN + sealed.len());
        raw.extend_from_slice(&digest[..NONCE_LEN]);
        raw.extend_from_slice(&sealed);
        format!(
            "{TOKEN_PREFIX}{}:{}",
            self.key_id,
            URL_SAFE_NO_PAD.encode(raw)
        )
    }

    /// The value of a token made by this key.
    pub fn decrypt(&self, token: &str) -> Result<String, CryptoError> {
        let (key_id, body) = split_token(token)?;
        if key_id != self.key_id {
            return Err(CryptoError::UnknownKey(key_id.to_string()));
        }
        let corrupt = |problem| CryptoError::Corrupt {
            key_id: key_id.to_string(),
            problem,
        };
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| corrupt("not base64url"))?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(corrupt("too short"));
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let plain = self
            .aes
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| corrupt("authentication failed (tampered, or another key)"))?;
        String::from_utf8(plain).map_err(|_| corrupt("not UTF-8 text"))
    }
}

/// `(key id, body)` of a token.
fn split_token(token: &str) -> Result<(&str, &str), CryptoError> {
    token
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .ok_or(CryptoError::NotAToken)
}

/// Whether `value` looks like a token (for finding encrypted columns).
pub fn is_token(value: &str) -> bool {
    split_token(value).is_ok()
}

/// Several keys by id: decrypts tokens of any of them (old keys after a rotation).
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: BTreeMap<String, ColumnCipher>,
}

impl KeyRing {
    /// An empty ring.
    pub fn new() -> Self {
        KeyRing::default()
    }

    /// Adds a key.
    pub fn add(&mut self, cipher: ColumnCipher) {
        self.keys.insert(cipher.key_id.clone(), cipher);
    }

    /// The key ids held.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// The value of a token, with the key it names.
    pub fn decrypt(&self, token: &str) -> Result<String, CryptoError> {
        let (key_id, _) = split_token(token)?;
        self.keys
            .get(key_id)
            .ok_or_else(|| CryptoError::UnknownKey(key_id.to_string()))?
            .decrypt(token)
    }
}

/// `batch` with every token of its string columns decrypted by `ring` (other values stay as
/// they are, nulls stay null); a column's encryption metadata is dropped once it is plain.
pub fn decrypt_batch(batch: &RecordBatch, ring: &KeyRing) -> Result<RecordBatch, CryptoError> {
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let strings = match column.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                arrow::compute::cast(column, &DataType::Utf8).ok()
            }
            _ => None,
        };
        let Some(strings) = strings else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
            continue;
        };
        let strings = strings.as_string::<i32>();
        if !strings.iter().flatten().any(is_token) {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
            continue;
        }
        let mut out = StringBuilder::with_capacity(strings.len(), strings.values().len());
        for (row, value) in strings.iter().enumerate() {
            match value {
                None => out.append_null(),
                Some(v) if is_token(v) => {
                    let plain = ring.decrypt(v).map_err(|e| CryptoError::InColumn {
                        column: field.name().clone(),
                        row,
                        source: Box::new(e),
                    })?;
                    out.append_value(plain);
                }
                Some(v) => out.append_value(v),
            }
        }
        let mut metadata = field.metadata().clone();
        metadata.remove(KEY_ID_METADATA);
        metadata.remove(SCHEME_METADATA);
        fields.push(
            Field::new(field.name(), DataType::Utf8, field.is_nullable()).with_metadata(metadata),
        );
        columns.push(Arc::new(out.finish()) as ArrayRef);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
        columns,
        &options,
    )
    .map_err(|e| CryptoError::Batch(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, byte: u8) -> ColumnCipher {
        ColumnCipher::from_bytes(id, &[byte; 32]).expect("key")
    }

    #[test]
    fn equal_values_give_equal_tokens_and_round_trip() {
        let k = key("k1", 7);
        let a = k.encrypt("ana@example.com");
        assert_eq!(a, k.encrypt("ana@example.com"));
        assert_ne!(a, k.encrypt("bob@example.com"));
        assert!(a.starts_with("enc1:k1:"), "{a}");
        assert!(!a.contains("ana"), "{a}");
        assert_eq!(k.decrypt(&a).as_deref(), Ok("ana@example.com"));
        assert_eq!(k.decrypt(&k.encrypt("")).as_deref(), Ok(""));
        // Another key gives another token for the same value.
        assert_ne!(a, key("k1", 8).encrypt("ana@example.com"));
    }

    #[test]
    fn a_rotated_ring_reads_old_and_new_tokens() {
        let (old, new) = (key("2025-q4", 1), key("2026-q1", 2));
        let (t_old, t_new) = (old.encrypt("x"), new.encrypt("x"));
        let mut ring = KeyRing::new();
        ring.add(new.clone());
        assert_eq!(
            ring.decrypt(&t_old),
            Err(CryptoError::UnknownKey("2025-q4".into()))
        );
        ring.add(old);
        assert_eq!(ring.decrypt(&t_old).as_deref(), Ok("x"));
        assert_eq!(ring.decrypt(&t_new).as_deref(), Ok("x"));
    }

    #[test]
    fn tampered_truncated_and_foreign_tokens_are_clear_errors() {
        let k = key("k1", 7);
        let t = k.encrypt("secret");
        let mut flipped = t.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).expect("utf8");
        assert!(matches!(
            k.decrypt(&flipped),
            Err(CryptoError::Corrupt { .. })
        ));
        assert!(matches!(
            k.decrypt("enc1:k1:AAAA"),
            Err(CryptoError::Corrupt {
                problem: "too short",
                ..
            })
        ));
        assert_eq!(k.decrypt("plain text"), Err(CryptoError::NotAToken));
        assert!(matches!(
            key("k1", 9).decrypt(&t),
            Err(CryptoError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_batch_is_decrypted_column_by_column_and_an_unknown_key_is_named() {
        let k = key("k1", 3);
        let emails = arrow::array::StringArray::from(vec![
            Some(k.encrypt("a@x.io")),
            None,
            Some("plain".to_string()),
        ]);
        let ids = arrow::array::Int64Array::from(vec![1, 2, 3]);
        let batch = RecordBatch::try_from_iter([
            ("email", Arc::new(emails) as ArrayRef),
            ("id", Arc::new(ids) as ArrayRef),
        ])
        .expect("batch");
        let mut ring = KeyRing::new();
        ring.add(k);
        let plain = decrypt_batch(&batch, &ring).expect("decrypt");
        let emails = plain.column(0).as_string::<i32>();
        assert_eq!(emails.value(0), "a@x.io");
        assert!(emails.is_null(1));
        assert_eq!(emails.value(2), "plain");
        assert_eq!(plain.column(1).len(), 3);
        let e = decrypt_batch(&batch, &KeyRing::new()).expect_err("no key");
        assert_eq!(
            e.to_string(),
            "column `email`, row 0: encrypted with key `k1`, which was not given"
        );
    }

    #[test]
    fn bad_keys_and_ids_are_refused_without_showing_the_key() {
        let short = ColumnCipher::from_base64("k", &STANDARD.encode([1u8; 16]));
        assert!(matches!(short, Err(CryptoError::BadKey { .. })));
        let e = ColumnCipher::from_base64("k", "not-base64-at-all!!").expect_err("bad");
        assert!(!e.to_string().contains("not-base64-at-all"), "{e}");
        assert!(matches!(
            ColumnCipher::from_bytes("a:b", &[0; 32]),
            Err(CryptoError::BadKeyId(_))
        ));
    }
}
