//! Media files as metadata, as a user runs it: a real PNG (3×2, written here with zlib and
//! CRCs), a WAV (16-bit PCM) and an MP4 container header go into bronze with
//! `strata bronze put-media`; their records go through `strata batch` with
//! `pipelines/media.yaml` into silver `media_files`. The same content is stored once, the type
//! comes from the bytes (a text file named `.png` is refused), per-source limits and allowed
//! types refuse before anything is written, and the source's own pipeline never sees the blobs.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

fn strata(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("strata")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = strata(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
    out
}

/// A valid 3×2 RGB PNG.
fn png() -> Vec<u8> {
    let mut ihdr = 3u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&2u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut raw = Vec::new();
    for y in 0..2u8 {
        raw.push(0); // filter: none
        for x in 0..3u8 {
            raw.extend_from_slice(&[x * 80, y * 120, 200]);
        }
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&raw).expect("zlib");
    let idat = z.finish().expect("zlib");
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(chunk(b"IHDR", &ihdr));
    out.extend(chunk(b"IDAT", &idat));
    out.extend(chunk(b"IEND", &[]));
    out
}

/// A valid mono 8 kHz 16-bit WAV of 100 samples.
fn wav() -> Vec<u8> {
    let samples: Vec<u8> = (0..100i16).flat_map(|i| (i * 300).to_le_bytes()).collect();
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(36 + samples.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&16000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    out.extend(samples);
    out
}

/// An MP4 container: `ftyp` (isom, mp41) and an `mdat` box.
fn mp4() -> Vec<u8> {
    let mut out = 24u32.to_be_bytes().to_vec();
    out.extend_from_slice(b"ftypisom\x00\x00\x02\x00isommp41");
    out.extend_from_slice(&16u32.to_be_bytes());
    out.extend_from_slice(b"mdat\x00\x01\x02\x03\x04\x05\x06\x07");
    out
}

fn put(dir: &Path, file: &str, entity: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "bronze",
        "put-media",
        "--lake",
        "lake",
        "--source",
        "pipefy",
        "--date",
        "2025-11-20",
        "--file",
        file,
        "--entity-id",
        entity,
        "--captured-at",
        "2025-11-20T10:00:00Z",
    ];
    args.extend_from_slice(extra);
    strata(dir, &args)
}

fn record(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON record")
}

fn media_objects(dir: &Path) -> Vec<String> {
    let media = dir.join("lake/bronze/source=pipefy/date=2025-11-20/media");
    let mut names: Vec<String> = std::fs::read_dir(media)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn media_go_to_bronze_by_content_and_to_silver_as_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (png, wav, mp4) = (png(), wav(), mp4());
    std::fs::write(d.join("card.png"), &png).expect("png");
    std::fs::write(d.join("voice.wav"), &wav).expect("wav");
    std::fs::write(d.join("clip.mp4"), &mp4).expect("mp4");
    std::fs::write(d.join("photo.png"), b"<html>a page, not a photo</html>").expect("fake");

    let r = record(&put(d, "card.png", "card-1", &[]));
    let sha = hex::encode(Sha256::digest(&png));
    assert_eq!(r["content_type"], "image/png");
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(r["bytes"].as_u64(), Some(png.len() as u64));
    assert_eq!(r["sha256"], sha.as_str());
    let uri = r["uri"].as_str().expect("uri");
    assert_eq!(
        uri,
        format!("bronze/source=pipefy/date=2025-11-20/media/{sha}.png")
    );
    assert_eq!(std::fs::read(d.join("lake").join(uri)).expect("blob"), png);
    // The same content again, and for another card: one object.
    assert_eq!(record(&put(d, "card.png", "card-1", &[])), r);
    record(&put(d, "card.png", "card-2", &[]));
    assert_eq!(
        record(&put(d, "voice.wav", "card-1", &[]))["content_type"],
        "audio/wav"
    );
    assert_eq!(
        record(&put(d, "clip.mp4", "card-3", &[]))["content_type"],
        "video/mp4"
    );
    assert_eq!(media_objects(d).len(), 3, "{:?}", media_objects(d));

    // Refusals name the reason and write nothing.
    let refused = |out: Output, reason: &str| {
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(reason), "{err}");
    };
    refused(
        put(d, "photo.png", "card-4", &[]),
        "not an image, audio, video or PDF",
    );
    refused(
        put(d, "voice.wav", "card-5", &["--allow", "image/*,video/mp4"]),
        "audio/wav is not among the source's allowed types",
    );
    refused(
        put(d, "clip.mp4", "card-6", &["--max-mb", "0"]),
        "over the source's limit",
    );
    assert_eq!(media_objects(d).len(), 3);

    // The source's own pipeline reads its events, never the blobs beside them.
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/samples/pipefy_card_create.json"
    ))
    .expect("sample");
    let line: serde_json::Value = serde_json::from_str(&sample).expect("json");
    std::fs::write(d.join("events.ndjson"), format!("{line}\n")).expect("events");
    ok(
        d,
        &[
            "bronze",
            "put",
            "--lake",
            "lake",
            "--source",
            "pipefy",
            "--date",
            "2025-11-20",
            "--input",
            "events.ndjson",
        ],
    );
    let pipelines = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines");
    let out = ok(
        d,
        &[
            "batch",
            "--lake",
            "lake",
            "--source",
            "pipefy",
            "--pipeline",
            &format!("{pipelines}/pipefy.yaml"),
        ],
    );
    assert!(out.contains("1 rows in"), "{out}");

    // The records: one per file and entity, none quarantined.
    let out = ok(
        d,
        &[
            "batch",
            "--lake",
            "lake",
            "--source",
            "pipefy.media",
            "--pipeline",
            &format!("{pipelines}/media.yaml"),
        ],
    );
    assert!(out.contains("0 quarantined"), "{out}");
    let rows = ok(
        d,
        &[
            "sql",
            "--lake",
            "lake",
            "SELECT entity_id, content_type, width, height, bytes FROM media_files \
             ORDER BY entity_id, content_type",
        ],
    );
    let lines: Vec<&str> = rows.lines().filter(|l| l.contains("card-")).collect();
    assert_eq!(lines.len(), 4, "{rows}");
    assert!(
        lines[0].contains("card-1") && lines[0].contains("audio/wav"),
        "{rows}"
    );
    assert!(
        lines[1].contains("card-1") && lines[1].contains("image/png"),
        "{rows}"
    );
    assert!(
        lines[2].contains("card-2") && lines[2].contains("| 3 "),
        "{rows}"
    );
    assert!(
        lines[3].contains("card-3") && lines[3].contains("video/mp4"),
        "{rows}"
    );
}
