//! Media files (images, audio, video, documents) in bronze, travelling through the pipeline as
//! metadata.
//!
//! - A blob is stored content-addressed at `bronze/source=<s>/date=<d>/media/<sha256>.<ext>`,
//!   create-only like the rest of bronze: the same content is the same object, stored once.
//! - Its content type is **sniffed from its bytes** (magic numbers), never taken from the
//!   sender; the extension follows the sniffed type. Width and height are read from the header
//!   of PNG, JPEG, GIF and WebP images (no decoding).
//! - A per-source [`MediaPolicy`] bounds the size and allows content types (`image/*`,
//!   `audio/wav`, …); anything else is refused with the reason, before anything is written.
//! - Each stored blob gives a [`MediaRecord`] (`uri, sha256, bytes, content_type, source,
//!   entity_id, captured_at, width, height`), written as NDJSON to the bronze source
//!   `<source>.media` (see `pipelines/media.yaml`), so a silver pipeline carries it like any
//!   other record and gold joins media to entities.
//! - Bronze readers skip the `media/` folders: the source's own records stay its own.

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::names::{BronzeDate, validate_source};
use super::writer::{BronzeWriter, PutOutcome};
use crate::error::{LayersError, Result};

/// The folder of media blobs inside a bronze date partition.
pub const MEDIA_FOLDER: &str = "media";

/// What a source accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPolicy {
    /// Largest blob, in bytes.
    pub max_bytes: u64,
    /// Allowed content types: exact (`image/png`) or a family (`image/*`); empty allows every
    /// type Strata recognises.
    pub allow: Vec<String>,
}

impl Default for MediaPolicy {
    fn default() -> Self {
        MediaPolicy {
            max_bytes: 50 << 20,
            allow: Vec::new(),
        }
    }
}

impl MediaPolicy {
    fn allows(&self, content_type: &str) -> bool {
        self.allow.is_empty()
            || self.allow.iter().any(|a| match a.strip_suffix("/*") {
                Some(family) => content_type
                    .split_once('/')
                    .is_some_and(|(f, _)| f == family),
                None => a == content_type,
            })
    }
}

/// The metadata record of one stored blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MediaRecord {
    /// The object, below the lake root (`bronze/source=…/media/<sha256>.<ext>`).
    pub uri: String,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Sniffed from the bytes.
    pub content_type: String,
    /// The source it came with.
    pub source: String,
    /// The entity it belongs to (a card, a post, a device).
    pub entity_id: String,
    /// When it was captured (RFC 3339).
    pub captured_at: String,
    /// Image width in pixels, when cheap to read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Image height in pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

/// A content type and extension from the first bytes of a file.
pub fn sniff(bytes: &[u8]) -> Option<(&'static str, &'static str)> {
    let at = |offset: usize, magic: &[u8]| bytes.get(offset..offset + magic.len()) == Some(magic);
    Some(if at(0, b"\x89PNG\r\n\x1a\n") {
        ("image/png", "png")
    } else if at(0, b"\xff\xd8\xff") {
        ("image/jpeg", "jpg")
    } else if at(0, b"GIF87a") || at(0, b"GIF89a") {
        ("image/gif", "gif")
    } else if at(0, b"RIFF") && at(8, b"WEBP") {
        ("image/webp", "webp")
    } else if at(0, b"RIFF") && at(8, b"WAVE") {
        ("audio/wav", "wav")
    } else if at(0, b"RIFF") && at(8, b"AVI ") {
        ("video/x-msvideo", "avi")
    } else if at(0, b"ID3") || (bytes.len() > 1 && bytes[0] == 0xff && bytes[1] & 0xe0 == 0xe0) {
        ("audio/mpeg", "mp3")
    } else if at(0, b"OggS") {
        ("audio/ogg", "ogg")
    } else if at(0, b"fLaC") {
        ("audio/flac", "flac")
    } else if at(4, b"ftyp") {
        if at(8, b"M4A ") {
            ("audio/mp4", "m4a")
        } else if at(8, b"qt  ") {
            ("video/quicktime", "mov")
        } else {
            ("video/mp4", "mp4")
        }
    } else if at(0, b"\x1a\x45\xdf\xa3") {
        ("video/webm", "webm")
    } else if at(0, b"%PDF-") {
        ("application/pdf", "pdf")
    } else {
        return None;
    })
}

/// `(width, height)` of a PNG, JPEG, GIF or WebP image from its header.
pub fn image_size(content_type: &str, b: &[u8]) -> Option<(u32, u32)> {
    let be32 = |i: usize| Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?));
    let be16 = |i: usize| {
        Some(u32::from(u16::from_be_bytes(
            b.get(i..i + 2)?.try_into().ok()?,
        )))
    };
    let le16 = |i: usize| {
        Some(u32::from(u16::from_le_bytes(
            b.get(i..i + 2)?.try_into().ok()?,
        )))
    };
    match content_type {
        // IHDR is the first chunk: width and height at 16 and 20.
        "image/png" if b.get(12..16) == Some(b"IHDR") => Some((be32(16)?, be32(20)?)),
        "image/gif" => Some((le16(6)?, le16(8)?)),
        "image/webp" => match b.get(12..16)? {
            b"VP8X" => {
                let w = u32::from_le_bytes([*b.get(24)?, *b.get(25)?, *b.get(26)?, 0]) + 1;
                let h = u32::from_le_bytes([*b.get(27)?, *b.get(28)?, *b.get(29)?, 0]) + 1;
                Some((w, h))
            }
            b"VP8 " => Some((le16(26)? & 0x3fff, le16(28)? & 0x3fff)),
            _ => None,
        },
        "image/jpeg" => {
            // Walk the segments to the first start-of-frame marker.
            let mut i = 2usize;
            while i + 9 < b.len() {
                if b[i] != 0xff {
                    return None;
                }
                let marker = b[i + 1];
                let len = usize::try_from(be16(i + 2)?).ok()?;
                let sof = matches!(marker, 0xc0..=0xcf) && !matches!(marker, 0xc4 | 0xc8 | 0xcc);
                if sof {
                    return Some((be16(i + 7)?, be16(i + 5)?));
                }
                i = i.checked_add(2)?.checked_add(len)?;
            }
            None
        }
        _ => None,
    }
}

impl BronzeWriter {
    /// Stores `bytes` as a media blob of `source` on `date` (content-addressed, create-only)
    /// and returns its metadata record. Refused before anything is written when the type is not
    /// recognised or not allowed, or the blob is larger than the policy allows.
    pub async fn put_media(
        &self,
        source: &str,
        date: BronzeDate,
        bytes: Bytes,
        policy: &MediaPolicy,
        entity_id: &str,
        captured_at: &str,
    ) -> Result<(MediaRecord, PutOutcome)> {
        validate_source(source)?;
        let refused = |problem: String| LayersError::MediaRefused {
            source_name: source.to_string(),
            problem,
        };
        let size = bytes.len() as u64;
        if size > policy.max_bytes {
            return Err(refused(format!(
                "{size} bytes is over the source's limit of {} bytes",
                policy.max_bytes
            )));
        }
        let (content_type, ext) = sniff(&bytes).ok_or_else(|| {
            refused(
                "the bytes are not an image, audio, video or PDF file Strata recognises \
                 (the type is read from the content, not from the name or the sender)"
                    .into(),
            )
        })?;
        if !policy.allows(content_type) {
            return Err(refused(format!(
                "{content_type} is not among the source's allowed types ({})",
                policy.allow.join(", ")
            )));
        }
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let size_px = image_size(content_type, &bytes);
        let path = self.object_path(source, date, MEDIA_FOLDER)?;
        let path = path.join(format!("{sha256}.{ext}"));
        let outcome = self.put_create(&path, bytes).await?;
        let record = MediaRecord {
            uri: self.lake().relative(&path),
            sha256,
            bytes: size,
            content_type: content_type.to_string(),
            source: source.to_string(),
            entity_id: entity_id.to_string(),
            captured_at: captured_at.to_string(),
            width: size_px.map(|s| s.0),
            height: size_px.map(|s| s.1),
        };
        Ok((record, outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some(("image/png", "png")));
        assert_eq!(
            sniff(b"RIFF\x24\x00\x00\x00WAVEfmt "),
            Some(("audio/wav", "wav"))
        );
        assert_eq!(
            sniff(b"\x00\x00\x00\x18ftypmp42\x00\x00"),
            Some(("video/mp4", "mp4"))
        );
        assert_eq!(sniff(b"%PDF-1.7"), Some(("application/pdf", "pdf")));
        assert_eq!(sniff(b"<html>not an image</html>"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn image_sizes_from_headers_and_truncated_headers_are_none() {
        let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
        png.extend_from_slice(&640u32.to_be_bytes());
        png.extend_from_slice(&480u32.to_be_bytes());
        assert_eq!(image_size("image/png", &png), Some((640, 480)));
        assert_eq!(image_size("image/png", &png[..18]), None);
        let gif = b"GIF89a\x20\x00\x10\x00";
        assert_eq!(image_size("image/gif", gif), Some((32, 16)));
        // SOI, an APP0 segment, then SOF0 with height 3 and width 5.
        let jpeg =
            b"\xff\xd8\xff\xe0\x00\x04\x00\x00\xff\xc0\x00\x0b\x08\x00\x03\x00\x05\x01\x01\x11\x00";
        assert_eq!(image_size("image/jpeg", jpeg), Some((5, 3)));
        assert_eq!(image_size("image/jpeg", &jpeg[..9]), None);
    }

    #[test]
    fn policies_allow_exact_types_and_families() {
        let p = MediaPolicy {
            max_bytes: 10,
            allow: vec!["image/*".into(), "audio/wav".into()],
        };
        assert!(p.allows("image/png") && p.allows("audio/wav"));
        assert!(!p.allows("audio/mpeg") && !p.allows("video/mp4"));
        assert!(MediaPolicy::default().allows("video/mp4"));
    }
}
