//! The Schema Registry server and client against each other (in-process, 127.0.0.1:0), Avro
//! encode → registry → decode, and a property test of encode → decode round trips.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array,
    ListArray, RecordBatch, StringArray, StructArray, TimestampMicrosecondArray, UInt64Array,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Fields, Float64Type, Schema, SchemaRef, TimeUnit};
use proptest::prelude::*;
use serde_json::json;
use strata_connectors::ConnectorError;
use strata_connectors::avro::{
    AvroDecoder, AvroEncoder, WriterSchema, arrow_to_avro, unframe, values_to_batch,
};
use strata_connectors::registry::{
    CompatibilityLevel, RegistryClient, RegistryOptions, RegistryServer,
};

fn record(fields: &str) -> String {
    format!(r#"{{"type":"record","name":"event","namespace":"t","fields":[{fields}]}}"#)
}

fn v1() -> String {
    record(r#"{"name":"id","type":"long"},{"name":"name","type":"string"}"#)
}

fn v2() -> String {
    record(
        r#"{"name":"id","type":"long"},{"name":"name","type":"string"},{"name":"note","type":["null","string"],"default":null}"#,
    )
}

/// `id` changes type: neither backward nor forward compatible.
fn breaking() -> String {
    record(r#"{"name":"id","type":"string"},{"name":"name","type":"string"}"#)
}

async fn start(state: &std::path::Path) -> strata_connectors::registry::server::RunningRegistry {
    RegistryServer::bind("127.0.0.1:0", state, RegistryOptions::init())
        .await
        .expect("bind")
        .spawn()
}

#[tokio::test]
async fn register_lookup_compatibility_config_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("registry.json");
    let server = start(&state).await;
    let client = RegistryClient::from_url(server.url()).unwrap();

    assert!(client.subjects().await.unwrap().is_empty());
    let id1 = client.register("t-value", &v1()).await.unwrap();
    // Same schema, other key order and spacing: same id, no new version.
    let reordered = r#"{ "fields": [{"type":"long","name":"id"},{"name":"name","type":"string"}],
        "namespace": "t", "name": "event", "type": "record" }"#;
    let raw = RegistryClient::from_url(server.url()).unwrap(); // no client-side cache
    assert_eq!(raw.register("t-value", reordered).await.unwrap(), id1);
    assert_eq!(client.versions("t-value").await.unwrap(), vec![1]);

    let found = client.lookup("t-value", &v1()).await.unwrap().unwrap();
    assert_eq!((found.version, found.id), (1, id1));
    assert!(client.lookup("t-value", &v2()).await.unwrap().is_none());
    assert!(client.lookup("nope-value", &v1()).await.unwrap().is_none());
    assert!(client.latest_version("nope-value").await.unwrap().is_none());

    let fetched = client.schema_by_id(id1).await.unwrap();
    assert!(matches!(fetched.schema, apache_avro::Schema::Record(_)));
    match client.schema_by_id(9999).await {
        Err(ConnectorError::Registry {
            status: 404,
            error_code: 40403,
            ..
        }) => {}
        other => panic!("expected 40403, got {other:?}"),
    }

    // Compatibility: adding a field with a default passes BACKWARD, a type change does not.
    assert!(
        client
            .test_compatibility("t-value", &v2(), None)
            .await
            .unwrap()
            .is_compatible
    );
    let bad = client
        .test_compatibility("t-value", &breaking(), None)
        .await
        .unwrap();
    assert!(!bad.is_compatible && !bad.messages.is_empty(), "{bad:?}");
    let e = client
        .ensure_registered("t-value", &breaking())
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(&e, ConnectorError::SchemaIncompatible { subject, level, .. } if subject == "t-value" && level == "BACKWARD"),
        "{text}"
    );
    assert!(text.contains("version 1"), "{text}");
    // Registering without the client-side check: the server refuses with 409 → same error.
    assert!(matches!(
        client.register("t-value", &breaking()).await,
        Err(ConnectorError::SchemaIncompatible { .. })
    ));
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/subjects/t-value/versions", server.url()))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .body(json!({"schema": breaking()}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error_code"], 409);

    let id2 = client.ensure_registered("t-value", &v2()).await.unwrap();
    assert_ne!(id1, id2);
    assert_eq!(client.versions("t-value").await.unwrap(), vec![1, 2]);
    assert_eq!(
        client.latest_version("t-value").await.unwrap().unwrap().id,
        id2
    );
    // Ids are global: the same schema under another subject keeps its id.
    assert_eq!(client.register("u-value", &v1()).await.unwrap(), id1);

    // Error bodies as Confluent writes them.
    for (path, code) in [
        ("/subjects/nope/versions", 40401),
        ("/subjects/t-value/versions/7", 40402),
        ("/schemas/ids/4242", 40403),
        ("/subjects/t-value/versions/zero", 42202),
        ("/config/t-value", 40408),
    ] {
        let resp = http
            .get(format!("{}{path}", server.url()))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error_code"], code, "{path}: {body}");
        assert_eq!(i64::from(status), code / 100, "{path}");
    }
    match client.register("t-value", "{not json").await {
        Err(ConnectorError::Registry {
            status: 422,
            error_code: 42201,
            ..
        }) => {}
        other => panic!("expected 42201, got {other:?}"),
    }

    // Config: global default BACKWARD; a subject-level NONE lets the breaking change in.
    assert_eq!(
        client.compatibility(None).await.unwrap(),
        CompatibilityLevel::Backward
    );
    assert_eq!(
        client.compatibility(Some("t-value")).await.unwrap(),
        CompatibilityLevel::Backward
    );
    client
        .set_compatibility(Some("t-value"), CompatibilityLevel::None)
        .await
        .unwrap();
    client
        .set_compatibility(None, CompatibilityLevel::Full)
        .await
        .unwrap();
    assert_eq!(
        client.compatibility(Some("t-value")).await.unwrap(),
        CompatibilityLevel::None
    );
    let id3 = client
        .ensure_registered("t-value", &breaking())
        .await
        .unwrap();
    assert_eq!(client.versions("t-value").await.unwrap(), vec![1, 2, 3]);

    // Soft delete hides a subject; its ids stay resolvable.
    assert_eq!(
        client.delete_subject("u-value", false).await.unwrap(),
        vec![1]
    );
    assert_eq!(
        client.subjects().await.unwrap(),
        vec!["t-value".to_string()]
    );
    server.stop().await.unwrap();

    // Restart on the same state file (no `init` needed now): same ids, versions and config.
    let server = RegistryServer::bind("127.0.0.1:0", &state, RegistryOptions::default())
        .await
        .expect("restart")
        .spawn();
    let client = RegistryClient::from_url(server.url()).unwrap();
    for (id, text) in [(id1, v1()), (id2, v2()), (id3, breaking())] {
        let got = client.schema_by_id(id).await.unwrap();
        assert_eq!(
            apache_avro::Schema::parse_str(&got.text)
                .unwrap()
                .canonical_form(),
            apache_avro::Schema::parse_str(&text)
                .unwrap()
                .canonical_form()
        );
    }
    assert_eq!(client.register("t-value", &v2()).await.unwrap(), id2);
    assert_eq!(client.versions("t-value").await.unwrap(), vec![1, 2, 3]);
    assert_eq!(
        client.compatibility(None).await.unwrap(),
        CompatibilityLevel::Full
    );
    assert_eq!(
        client.compatibility(Some("t-value")).await.unwrap(),
        CompatibilityLevel::None
    );
    // A new schema gets a new id, after every earlier one.
    let id4 = client
        .register("w-value", &record(r#"{"name":"x","type":"int"}"#))
        .await
        .unwrap();
    assert!(id4 > id3 && id3 > id2 && id2 > id1);
    server.stop().await.unwrap();
}

/// The endpoints the client does not wrap, called as plain HTTP.
#[tokio::test]
async fn rest_endpoints_answer_like_confluent() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("r.json")).await;
    let client = RegistryClient::from_url(server.url()).unwrap();
    let id1 = client.register("a-value", &v1()).await.unwrap();
    let id2 = client.register("a-value", &v2()).await.unwrap();
    client.register("b-value", &v1()).await.unwrap();
    let http = reqwest::Client::new();
    let base = server.url().to_string();
    let get = |path: &str| {
        let req = http.get(format!("{base}{path}"));
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<serde_json::Value>().await.unwrap())
        }
    };
    let same = |a: &serde_json::Value, b: &str| {
        assert_eq!(a, &serde_json::from_str::<serde_json::Value>(b).unwrap())
    };

    let (s, raw) = get("/subjects/a-value/versions/1/schema").await;
    assert_eq!(s, 200);
    same(&raw, &v1());
    let (_, raw) = get(&format!("/schemas/ids/{id2}/schema")).await;
    same(&raw, &v2());
    let (_, v) = get("/subjects/a-value/versions/latest").await;
    assert_eq!(
        (v["version"].as_u64(), v["id"].as_u64()),
        (Some(2), Some(u64::from(id2)))
    );
    let (_, subjects) = get(&format!("/schemas/ids/{id1}/subjects")).await;
    assert_eq!(subjects, json!(["a-value", "b-value"]));
    let (_, versions) = get(&format!("/schemas/ids/{id1}/versions")).await;
    assert_eq!(
        versions,
        json!([{"subject": "a-value", "version": 1}, {"subject": "b-value", "version": 1}])
    );
    assert_eq!(get("/schemas/types").await.1, json!(["AVRO"]));

    // Compatibility against all versions vs one version.
    let post = |path: String, body: serde_json::Value| {
        let req = http
            .post(format!("{base}{path}"))
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .body(body.to_string());
        async move {
            let resp = req.send().await.unwrap();
            (
                resp.status().as_u16(),
                resp.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    client
        .set_compatibility(Some("a-value"), CompatibilityLevel::ForwardTransitive)
        .await
        .unwrap();
    // Drops `name` (no default in v1/v2): v1 and v2 cannot read it.
    let dropped = record(r#"{"name":"id","type":"long"}"#);
    let (_, one) = post(
        "/compatibility/subjects/a-value/versions/1".into(),
        json!({"schema": dropped}),
    )
    .await;
    assert_eq!(one["is_compatible"], false);
    assert_eq!(one["messages"].as_array().unwrap().len(), 1);
    let (_, all) = post(
        "/compatibility/subjects/a-value/versions".into(),
        json!({"schema": dropped}),
    )
    .await;
    assert_eq!(all["messages"].as_array().unwrap().len(), 2, "{all}");
    let (s, e) = post(
        "/subjects/a-value/versions".into(),
        json!({"schema": v1(), "schemaType": "PROTOBUF"}),
    )
    .await;
    assert_eq!((s, e["error_code"].as_i64()), (422, Some(42201)));
    let (s, e) = post(
        "/subjects/a-value/versions".into(),
        json!({"schema": v1(), "references": [{"name": "x", "subject": "y", "version": 1}]}),
    )
    .await;
    assert_eq!((s, e["error_code"].as_i64()), (422, Some(42201)));

    // Delete rules: a version, then the subject; permanent only after soft.
    let del = |path: &str| {
        let req = http.delete(format!("{base}{path}"));
        async move {
            let resp = req.send().await.unwrap();
            (
                resp.status().as_u16(),
                resp.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    assert_eq!(del("/subjects/a-value/versions/2").await.1, json!(2));
    assert_eq!(client.versions("a-value").await.unwrap(), vec![1]);
    assert_eq!(
        get("/subjects/a-value/versions/2").await.1["error_code"],
        40402
    );
    assert_eq!(
        get("/subjects/a-value/versions/2?deleted=true").await.1["id"],
        json!(id2)
    );
    let (s, e) = del("/subjects/b-value?permanent=true").await;
    assert_eq!((s, e["error_code"].as_i64()), (404, Some(40405)));
    assert_eq!(del("/subjects/b-value").await.1, json!([1]));
    assert_eq!(del("/subjects/b-value").await.1["error_code"], 40404);
    assert_eq!(del("/subjects/b-value?permanent=true").await.1, json!([1]));
    assert_eq!(del("/subjects/b-value").await.1["error_code"], 40401);
    // The id outlives its subjects.
    assert!(client.schema_by_id(id1).await.is_ok());
    assert_eq!(get("/nowhere").await.1["error_code"], 404);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_corrupt_state_file_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("registry.json");
    std::fs::write(&state, b"{\"subjects\": 3}").unwrap();
    let e = RegistryServer::bind("127.0.0.1:0", &state, RegistryOptions::init())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("registry.json") && e.contains("not a registry state file"),
        "{e}"
    );
}

#[tokio::test]
async fn a_failed_state_write_answers_500_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("registry.json");
    let server = start(&state).await;
    let client = RegistryClient::from_url(server.url()).unwrap();
    // A non-empty directory where the state file should go: the rename fails.
    std::fs::remove_file(&state).unwrap();
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join("keep"), b"x").unwrap();
    match client.register("t-value", &v1()).await {
        Err(ConnectorError::Registry {
            status: 500,
            error_code: 50001,
            ..
        }) => {}
        other => panic!("expected 50001, got {other:?}"),
    }
    assert!(client.subjects().await.unwrap().is_empty());
    assert!(client.lookup("t-value", &v1()).await.unwrap().is_none());
    // No temp file is left behind (only the state and the registry's lock beside it).
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(
        left,
        vec![
            std::ffi::OsString::from("registry.json"),
            std::ffi::OsString::from("registry.json.lock")
        ]
    );
    // Once the path is writable again, the same registration succeeds with the first id.
    std::fs::remove_dir_all(&state).unwrap();
    assert_eq!(client.register("t-value", &v1()).await.unwrap(), 1);
    server.stop().await.unwrap();
}

/// Basic auth reaches the registry (Confluent Cloud style); a 401 is reported with its hint.
#[tokio::test]
async fn basic_auth_is_sent_and_401_is_explained() {
    use axum::http::{HeaderMap, StatusCode};
    // "key:secret" in base64.
    async fn config(headers: HeaderMap) -> (StatusCode, String) {
        match headers.get("authorization").and_then(|v| v.to_str().ok()) {
            Some("Basic a2V5OnNlY3JldA==") => (
                StatusCode::OK,
                json!({"compatibilityLevel": "FULL"}).to_string(),
            ),
            _ => (
                StatusCode::UNAUTHORIZED,
                json!({"error_code": 401, "message": "Unauthorized"}).to_string(),
            ),
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/config", axum::routing::get(config));
    let task = tokio::spawn(async move { axum::serve(listener, app).await });

    let with_auth = RegistryClient::new(
        strata_connectors::registry::RegistryConfig::new(&url).with_basic_auth("key", "secret"),
    )
    .unwrap();
    assert_eq!(
        with_auth.compatibility(None).await.unwrap(),
        CompatibilityLevel::Full
    );
    let e = RegistryClient::from_url(&url)
        .unwrap()
        .compatibility(None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, ConnectorError::Registry { status: 401, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("credentials"), "{e}");
    task.abort();
}

/// The embedded server with credentials: an unauthenticated write is refused with 401, a
/// Confluent-style body and a challenge, before anything is stored; our client registers with
/// basic auth or a bearer token; reads stay open unless they are protected too.
#[tokio::test]
async fn the_server_refuses_writes_without_credentials() {
    use strata_connectors::registry::{RegistryAuth, RegistryConfig};
    use strata_connectors::secret::Secret;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("registry.json");
    let auth = RegistryAuth::none()
        .with_basic("sr-user", Secret::new("sr-pass"))
        .with_token(Secret::new("sr-token"));
    let server = RegistryServer::bind(
        "127.0.0.1:0",
        &state,
        RegistryOptions::init().with_auth(auth.clone()),
    )
    .await
    .unwrap()
    .spawn();
    let url = server.url().to_string();

    // No credentials, then wrong ones: 401 with error_code 40101, nothing registered.
    let anonymous = RegistryClient::from_url(&url).unwrap();
    let wrong =
        RegistryClient::new(RegistryConfig::new(&url).with_basic_auth("sr-user", "nope")).unwrap();
    for client in [&anonymous, &wrong] {
        match client.register("t-value", &v1()).await {
            Err(ConnectorError::Registry {
                status: 401,
                error_code: 40101,
                hint,
                ..
            }) => assert!(hint.contains("credentials"), "{hint}"),
            other => panic!("expected 401 / 40101, got {other:?}"),
        }
    }
    let raw = reqwest::Client::new()
        .post(format!("{url}/subjects/t-value/versions"))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .body(json!({ "schema": v1() }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 401);
    let challenges: Vec<&str> = raw
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        challenges.iter().any(|c| c.starts_with("Basic realm="))
            && challenges.iter().any(|c| c.starts_with("Bearer realm=")),
        "{challenges:?}"
    );
    let body: serde_json::Value = raw.json().await.unwrap();
    assert_eq!(body["error_code"], 40101, "{body}");
    // Deletes and config changes are writes too.
    let delete = reqwest::Client::new()
        .delete(format!("{url}/subjects/t-value"))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status().as_u16(), 401);
    // Reads stay open.
    assert!(anonymous.subjects().await.unwrap().is_empty());

    // With credentials: basic auth, then a bearer token.
    let basic =
        RegistryClient::new(RegistryConfig::new(&url).with_basic_auth("sr-user", "sr-pass"))
            .unwrap();
    let id = basic.ensure_registered("t-value", &v1()).await.unwrap();
    let bearer =
        RegistryClient::new(RegistryConfig::new(&url).with_bearer_token("sr-token")).unwrap();
    assert_eq!(
        bearer.ensure_registered("u-value", &v1()).await.unwrap(),
        id
    );
    assert_eq!(
        anonymous.subjects().await.unwrap(),
        vec!["t-value".to_string(), "u-value".to_string()]
    );
    server.stop().await.unwrap();

    // Protected reads: anonymous reads are refused too, authenticated ones answered.
    let server = RegistryServer::bind(
        "127.0.0.1:0",
        &state,
        RegistryOptions::default().with_auth(auth.protect_reads(true)),
    )
    .await
    .unwrap()
    .spawn();
    let url = server.url().to_string();
    match RegistryClient::from_url(&url)
        .unwrap()
        .schema_by_id(id)
        .await
    {
        Err(ConnectorError::Registry { status: 401, .. }) => {}
        other => panic!("expected 401, got {other:?}"),
    }
    let bearer =
        RegistryClient::new(RegistryConfig::new(&url).with_bearer_token("sr-token")).unwrap();
    assert!(bearer.schema_by_id(id).await.is_ok());
    server.stop().await.unwrap();
}

/// Basic auth and a bearer token together are refused by the client (one `Authorization`
/// header), and neither prints.
#[test]
fn the_client_takes_one_kind_of_credentials() {
    use strata_connectors::registry::RegistryConfig;
    let config = RegistryConfig::new("http://127.0.0.1:9")
        .with_basic_auth("u", "hunter2")
        .with_bearer_token("t0ken-secret");
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("t0ken-secret"),
        "{shown}"
    );
    let e = RegistryClient::new(config).unwrap_err().to_string();
    assert!(e.contains("bearer token"), "{e}");
}

fn ts_utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn loc_fields() -> Fields {
    Fields::from(vec![
        Field::new("lat", DataType::Float64, true),
        Field::new("site", DataType::Utf8, false),
    ])
}

fn sample_batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("device_id", DataType::Utf8, false),
        Field::new("ts", ts_utc(), false),
        Field::new("temperature", DataType::Float64, true),
        Field::new("price", DataType::Decimal128(12, 2), true),
        Field::new("location", DataType::Struct(loc_fields()), true),
        Field::new_list("tags", Field::new("item", DataType::Utf8, true), true),
        Field::new("_line", DataType::UInt64, false),
    ]));
    let location = StructArray::try_new(
        loc_fields(),
        vec![
            Arc::new(Float64Array::from(vec![Some(52.5), None, None])),
            Arc::new(StringArray::from(vec![Some("berlin"), Some("lab"), None])),
        ],
        Some(NullBuffer::from(vec![true, true, false])),
    )
    .unwrap();
    let tags = {
        let mut b = arrow::array::ListBuilder::new(arrow::array::StringBuilder::new());
        b.values().append_value("a");
        b.values().append_null();
        b.append(true);
        b.append(false);
        b.append(true);
        b.finish()
    };
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["dev-1", "dev-2", "dev-3"])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![1_763_646_360_123_456, 0, -1])
                    .with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from(vec![Some(21.5), None, Some(-3.25)])),
            Arc::new(
                Decimal128Array::from(vec![Some(12_345), Some(-5), None])
                    .with_precision_and_scale(12, 2)
                    .unwrap(),
            ),
            Arc::new(location),
            Arc::new(tags),
            Arc::new(UInt64Array::from(vec![1, 2, u64::from(u32::MAX) + 7])),
        ],
    )
    .unwrap()
}

#[tokio::test]
async fn encode_register_decode_through_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("r.json")).await;
    let client = Arc::new(RegistryClient::from_url(server.url()).unwrap());
    let batch = sample_batch();
    let avro = arrow_to_avro(&batch.schema(), "iot_events", Some("strata")).unwrap();
    let id = client
        .ensure_registered("iot-value", &avro.text())
        .await
        .unwrap();
    let encoder = AvroEncoder::new(batch.schema(), avro, id);
    let messages = encoder.encode_batch(&batch).unwrap();
    assert_eq!(messages.len(), 3);
    for m in &messages {
        assert_eq!(m[0], 0);
        assert_eq!(u32::from_be_bytes([m[1], m[2], m[3], m[4]]), id);
    }
    let decoder = AvroDecoder::new(Arc::clone(&client));
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let back = decoder.decode_batch(&refs, batch.schema()).await.unwrap();
    assert_eq!(back, batch);

    let first = decoder.decode_json(&messages[0]).await.unwrap();
    assert_eq!(first["ts"], "2025-11-20T13:46:00.123456Z");
    assert_eq!(first["price"], "123.45");
    assert_eq!(first["location"], json!({"lat": 52.5, "site": "berlin"}));
    assert_eq!(first["tags"], json!(["a", null]));
    let third = decoder.decode_json(&messages[2]).await.unwrap();
    assert_eq!(third["location"], json!(null));
    assert_eq!(third["ts"], "1969-12-31T23:59:59.999999Z");
    assert_eq!(third["_line"], json!(u64::from(u32::MAX) + 7));

    // A message whose id the registry does not know fails with the registry's code.
    let mut unknown = messages[0].clone();
    unknown[1..5].copy_from_slice(&777u32.to_be_bytes());
    match decoder.decode_json(&unknown).await {
        Err(ConnectorError::Registry {
            error_code: 40403, ..
        }) => {}
        other => panic!("expected 40403, got {other:?}"),
    }
    // A truncated payload fails as a decode error, not a panic.
    let cut = &messages[0][..messages[0].len() - 3];
    assert!(matches!(
        decoder.decode_json(cut).await,
        Err(ConnectorError::AvroDecode { .. })
    ));

    // A second pipeline version adding a nullable column is BACKWARD compatible and decodes
    // into the old target schema (the extra field is ignored).
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("humidity", DataType::Float64, true));
    let wider = Arc::new(Schema::new(fields));
    let avro2 = arrow_to_avro(&wider, "iot_events", Some("strata")).unwrap();
    let id2 = client
        .ensure_registered("iot-value", &avro2.text())
        .await
        .unwrap();
    assert_ne!(id, id2);
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(Float64Array::from(vec![
        Some(40.0),
        None,
        Some(1.0),
    ])));
    let wide_batch = RecordBatch::try_new(Arc::clone(&wider), columns).unwrap();
    let m2 = AvroEncoder::new(wider, avro2, id2)
        .encode_batch(&wide_batch)
        .unwrap();
    let refs: Vec<&[u8]> = m2
        .iter()
        .chain(messages.iter())
        .map(Vec::as_slice)
        .collect();
    let mixed = decoder.decode_batch(&refs, batch.schema()).await.unwrap();
    assert_eq!(mixed.num_rows(), 6);
    assert_eq!(mixed.slice(3, 3), batch);
    assert_eq!(mixed.slice(0, 3), batch);

    // Changing a column's type breaks BACKWARD: refused with the subject named.
    let narrow = Arc::new(Schema::new(vec![Field::new(
        "device_id",
        DataType::Int64,
        false,
    )]));
    let avro3 = arrow_to_avro(&narrow, "iot_events", Some("strata")).unwrap();
    let e = client
        .ensure_registered("iot-value", &avro3.text())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("iot-value") && e.contains("BACKWARD"), "{e}");
    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Property test: any batch of these types survives encode → decode unchanged.

#[derive(Debug, Clone)]
struct Row {
    i: Option<i64>,
    s: Option<String>,
    d: Option<i128>,
    ts: Option<i64>,
    st: Option<(Option<i32>, String)>,
    l: Option<Vec<Option<f64>>>,
    b: bool,
    day: Option<i32>,
}

fn row() -> impl Strategy<Value = Row> {
    (
        proptest::option::of(any::<i64>()),
        proptest::option::of("\\PC{0,12}"),
        proptest::option::of(-9_999_999_999i128..=9_999_999_999i128),
        proptest::option::of(-62_135_596_800_000_000i64..=253_402_300_799_999_999i64),
        proptest::option::of((proptest::option::of(any::<i32>()), "[a-z]{0,6}")),
        proptest::option::of(proptest::collection::vec(
            proptest::option::of(-1e12f64..1e12f64),
            0..4,
        )),
        any::<bool>(),
        proptest::option::of(-719_162i32..=2_932_896i32),
    )
        .prop_map(|(i, s, d, ts, st, l, b, day)| Row {
            i,
            s,
            d,
            ts,
            st,
            l,
            b,
            day,
        })
}

fn prop_schema() -> SchemaRef {
    let st = Fields::from(vec![
        Field::new("a", DataType::Int32, true),
        Field::new("b", DataType::Utf8, false),
    ]);
    Arc::new(Schema::new(vec![
        Field::new("i", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("d", DataType::Decimal128(10, 2), true),
        Field::new("ts", ts_utc(), true),
        Field::new("st", DataType::Struct(st), true),
        Field::new_list("l", Field::new("item", DataType::Float64, true), true),
        Field::new("b", DataType::Boolean, false),
        Field::new("day", DataType::Date32, true),
    ]))
}

fn prop_batch(rows: &[Row]) -> RecordBatch {
    let schema = prop_schema();
    let DataType::Struct(st_fields) = schema.field(4).data_type().clone() else {
        unreachable!()
    };
    let st = StructArray::try_new(
        st_fields,
        vec![
            Arc::new(Int32Array::from(
                rows.iter()
                    .map(|r| r.st.as_ref().and_then(|s| s.0))
                    .collect::<Vec<_>>(),
            )) as ArrayRef,
            Arc::new(StringArray::from(
                rows.iter()
                    .map(|r| r.st.as_ref().map(|s| s.1.clone()))
                    .collect::<Vec<_>>(),
            )),
        ],
        Some(NullBuffer::from(
            rows.iter().map(|r| r.st.is_some()).collect::<Vec<_>>(),
        )),
    )
    .unwrap();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.i).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.s.clone()).collect::<Vec<_>>(),
        )),
        Arc::new(
            Decimal128Array::from(rows.iter().map(|r| r.d).collect::<Vec<_>>())
                .with_precision_and_scale(10, 2)
                .unwrap(),
        ),
        Arc::new(
            TimestampMicrosecondArray::from(rows.iter().map(|r| r.ts).collect::<Vec<_>>())
                .with_timezone("UTC"),
        ),
        Arc::new(st),
        Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>(
            rows.iter().map(|r| r.l.clone()),
        )),
        Arc::new(BooleanArray::from(
            rows.iter().map(|r| r.b).collect::<Vec<_>>(),
        )),
        Arc::new(Date32Array::from(
            rows.iter().map(|r| r.day).collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn encode_decode_round_trips(rows in proptest::collection::vec(row(), 0..12)) {
        let batch = prop_batch(&rows);
        let avro = arrow_to_avro(&batch.schema(), "prop", Some("strata.test")).unwrap();
        let writer = Arc::new(
            WriterSchema::from_schema(42, avro.text(), avro.schema.clone()).unwrap(),
        );
        let messages = AvroEncoder::new(batch.schema(), avro, 42).encode_batch(&batch).unwrap();
        prop_assert_eq!(messages.len(), rows.len());
        let mut decoded = Vec::new();
        for m in &messages {
            let (id, payload) = unframe(m).unwrap();
            prop_assert_eq!(id, 42);
            decoded.push((Arc::clone(&writer), writer.decode(payload).unwrap()));
        }
        let back = values_to_batch(&decoded, batch.schema()).unwrap();
        prop_assert_eq!(back, batch);
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_and_the_stored_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("registry.json")).await;
    let client = RegistryClient::from_url(server.url()).unwrap();
    client.register("t-value", &v1()).await.unwrap();
    client.register("t-value", &v2()).await.unwrap();
    assert!(client.schema_by_id(9999).await.is_err());
    let text = reqwest::get(format!("{}/metrics", server.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |needle: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no `{needle}` in:\n{text}"))
    };
    assert_eq!(
        value(
            r#"strata_registry_requests_total{route="/subjects/{subject}/versions",method="POST",status="200"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            r#"strata_registry_requests_total{route="/schemas/ids/{id}",method="GET",status="404"}"#
        ),
        1.0
    );
    assert_eq!(value("strata_registry_schemas "), 2.0);
    assert_eq!(value("strata_registry_subjects "), 1.0);
    assert!(text.contains("strata_registry_request_duration_seconds_bucket"));
}
