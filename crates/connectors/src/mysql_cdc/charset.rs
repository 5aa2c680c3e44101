//! Column bytes from the binlog → text, by the column's own character set.
//!
//! The binlog carries a string column's bytes as stored, in the column's charset; only the
//! snapshot (through a utf8mb4 connection) is converted by the server. Decoding every column as
//! UTF-8 turned latin1's `'ção'` into replacement characters — silently. So each column is
//! decoded by its `information_schema.COLUMNS.CHARACTER_SET_NAME`, strictly: bytes that are not
//! valid in that charset, and charsets not listed here, are errors naming the column. No
//! replacement characters are ever produced.

/// MySQL's `latin1` is Windows-1252 (with the five bytes cp1252 leaves undefined mapped to the
/// C1 controls of the same value): 0x80..=0x9F.
const CP1252_HIGH: [char; 32] = [
    '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{008D}', '\u{017D}', '\u{008F}',
    '\u{0090}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
];

fn cp1252(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            0x80..=0x9F => CP1252_HIGH[(b - 0x80) as usize],
            _ => char::from(b),
        })
        .collect()
}

fn utf16(bytes: &[u8], big_endian: bool) -> Result<String, String> {
    if !bytes.len().is_multiple_of(2) {
        return Err(format!("{} bytes is not whole UTF-16 units", bytes.len()));
    }
    let units = bytes.chunks_exact(2).map(|c| {
        if big_endian {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_le_bytes([c[0], c[1]])
        }
    });
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|e| format!("invalid UTF-16: {e}"))
}

fn utf32(bytes: &[u8]) -> Result<String, String> {
    if !bytes.len().is_multiple_of(4) {
        return Err(format!("{} bytes is not whole UTF-32 units", bytes.len()));
    }
    bytes
        .chunks_exact(4)
        .map(|c| {
            let v = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            char::from_u32(v).ok_or_else(|| format!("U+{v:X} is not a character"))
        })
        .collect()
}

/// The text of `bytes` stored in a column of `charset` (`None`: no charset known, read as
/// UTF-8). The error says why, for the caller to name the column.
pub fn decode(charset: Option<&str>, bytes: &[u8]) -> Result<String, String> {
    let strict_utf8 = |bytes: &[u8]| {
        std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|e| format!("invalid UTF-8: {e}"))
    };
    match charset.map(str::to_ascii_lowercase).as_deref() {
        None | Some("utf8mb4" | "utf8mb3" | "utf8") => strict_utf8(bytes),
        Some("ascii") if bytes.is_ascii() => strict_utf8(bytes),
        Some("ascii") => Err("a byte over 0x7F in an ascii column".into()),
        Some("latin1" | "cp1252") => Ok(cp1252(bytes)),
        Some("ucs2" | "utf16") => utf16(bytes, true),
        Some("utf16le") => utf16(bytes, false),
        Some("utf32") => utf32(bytes),
        Some("binary") => Err("a binary-charset text column (use VARBINARY/BLOB)".into()),
        Some(other) => Err(format!(
            "character set `{other}` is not supported by the CDC decoder (supported: utf8mb4, \
             utf8mb3, ascii, latin1, cp1252, ucs2, utf16, utf16le, utf32)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_charset_decodes_its_own_bytes() {
        assert_eq!(decode(Some("latin1"), b"\xe7\xe3o").as_deref(), Ok("ção"));
        assert_eq!(decode(Some("latin1"), b"\x80 \x9c").as_deref(), Ok("€ œ"));
        assert_eq!(
            decode(Some("utf8mb4"), "ção 🦀".as_bytes()).as_deref(),
            Ok("ção 🦀")
        );
        assert_eq!(
            decode(Some("ucs2"), b"\x00\xe7\x00\xe3\x00o").as_deref(),
            Ok("ção")
        );
        assert_eq!(
            decode(Some("utf16"), b"\xd8\x3e\xdd\x80").as_deref(),
            Ok("🦀"),
            "a surrogate pair"
        );
        assert_eq!(
            decode(Some("utf32"), b"\x00\x01\xf9\x80").as_deref(),
            Ok("🦀")
        );
    }

    #[test]
    fn bytes_invalid_in_their_charset_are_errors_never_replacement_characters() {
        assert!(decode(Some("utf8mb4"), b"\xe7\xe3o").is_err());
        assert!(decode(Some("ascii"), b"\xe7").is_err());
        assert!(
            decode(Some("utf16"), b"\xd8\x3e").is_err(),
            "a lone surrogate"
        );
        assert!(decode(Some("ucs2"), b"\x00").is_err());
        let err = decode(Some("sjis"), b"x").expect_err("unsupported");
        assert!(err.contains("sjis"), "{err}");
    }
}
