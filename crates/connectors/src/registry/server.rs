//! A small Confluent-compatible Schema Registry server (AVRO schemas only).
//!
//! Why: no Confluent registry can be installed on the development and CI machines, yet Strata's
//! Avro output must be checked by Confluent's own clients. This server implements the REST
//! subset those clients use — subjects, versions, global schema ids, compatibility checks and
//! config — with Confluent's status codes and error bodies (`{"error_code": 40401, "message":
//! …}`: 40401 subject not found, 40402 version not found, 40403 schema not found, 42201 invalid
//! schema, 42202 invalid version, 42203 invalid compatibility level, 409 incompatible schema,
//! 40404 / 40405 soft-delete rules, 40408 no subject-level config, 50001 store failure).
//!
//! Invariants: a schema id is global and never reused; the same schema (compared after
//! normalising its JSON: key order and whitespace do not matter) gets the same id under every
//! subject; every change is written to the state file (JSON, temp file + fsync + rename) before
//! it is answered, so a restart — or a crash at any point — keeps every id already handed out.
//! A failed write leaves the in-memory state unchanged and answers 500. One process per state
//! file: two servers on the same file would overwrite each other's changes.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use apache_avro::Schema;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use tokio::sync::Mutex;

use super::client::CONTENT_TYPE;
use super::compat::CompatibilityLevel;
use crate::{ConnectorError, Result};

/// What the state file holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Store {
    /// File format version.
    format: u32,
    /// Global compatibility level.
    compatibility: CompatibilityLevel,
    /// Every schema ever registered, by global id (never removed).
    schemas: BTreeMap<u32, StoredSchema>,
    /// Subjects and their versions.
    subjects: BTreeMap<String, StoredSubject>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredSchema {
    /// Normalised schema JSON.
    schema: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredSubject {
    #[serde(default)]
    versions: Vec<StoredVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    compatibility: Option<CompatibilityLevel>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredVersion {
    version: u32,
    id: u32,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
}

impl StoredSubject {
    fn live(&self) -> impl Iterator<Item = &StoredVersion> {
        self.versions.iter().filter(|v| !v.deleted)
    }
}

const FORMAT: u32 = 1;

/// In-memory state: the store plus parsed schemas (not persisted).
struct Live {
    store: Store,
    parsed: HashMap<u32, Schema>,
}

struct Inner {
    live: Mutex<Live>,
    file: PathBuf,
    /// `<state file>.lock`, exclusively locked while this server lives: a second registry on
    /// the same state would hand out the same ids for different schemas.
    _lock: std::fs::File,
}

/// The largest request body accepted (a schema is a few KB; Confluent's default is similar).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Takes the exclusive lock beside `file`, or says which registry holds it.
fn lock_state(file: &FsPath) -> Result<std::fs::File> {
    let mut name = file.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let state_err = |reason: String, hint: &'static str| ConnectorError::RegistryState {
        file: file.display().to_string(),
        reason,
        hint,
    };
    if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            state_err(
                format!("cannot create its folder: {e}"),
                "check the path and permissions",
            )
        })?;
    }
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| {
            state_err(
                format!("cannot open the lock file `{}`: {e}", lock_path.display()),
                "check the path and permissions",
            )
        })?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(state_err(
            format!("another registry holds `{}`", lock_path.display()),
            "run one registry per state file (two would hand out the same ids)",
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(state_err(
            format!("cannot lock `{}`: {e}", lock_path.display()),
            "check the file system supports locks",
        )),
    }
}

type App = Arc<Inner>;

/// A Confluent-style error answer (status, error code, message).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: i64,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn subject_not_found(s: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40401,
            format!("Subject '{s}' not found."),
        )
    }

    fn version_not_found(v: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40402,
            format!("Version {v} not found."),
        )
    }

    fn schema_not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40403,
            format!("Schema {what}not found"),
        )
    }

    fn invalid_schema(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, 42201, msg)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        reply(
            self.status,
            json!({"error_code": self.code, "message": self.message}),
        )
    }
}

fn reply(status: StatusCode, body: Json) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

fn ok(body: Json) -> std::result::Result<Response, ApiError> {
    Ok(reply(StatusCode::OK, body))
}

type ApiResult = std::result::Result<Response, ApiError>;
type Q = Query<HashMap<String, String>>;

fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Compact JSON with object keys sorted: two texts of the same schema compare equal.
fn normalize(value: &Json) -> String {
    fn write(v: &Json, out: &mut String) {
        match v {
            Json::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Json::String(k.clone()).to_string());
                    out.push(':');
                    write(&m[k], out);
                }
                out.push('}');
            }
            Json::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// The `schema` of a request body, validated: (normalised text, parsed). Public for the fuzz
/// target: the body is attacker-controlled.
pub fn schema_from_body(body: &[u8]) -> std::result::Result<(String, Schema), ApiError> {
    let j: Json = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            400,
            format!("Malformed JSON request body: {e}"),
        )
    })?;
    if let Some(t) = j.get("schemaType").and_then(Json::as_str)
        && !t.eq_ignore_ascii_case("AVRO")
    {
        return Err(ApiError::invalid_schema(format!(
            "Invalid schema: schema type {t} is not supported by this registry (AVRO only)"
        )));
    }
    if j.get("references")
        .and_then(Json::as_array)
        .is_some_and(|r| !r.is_empty())
    {
        return Err(ApiError::invalid_schema(
            "Invalid schema: schema references are not supported by this registry",
        ));
    }
    let text = j.get("schema").and_then(Json::as_str).ok_or_else(|| {
        ApiError::invalid_schema("Invalid schema: the body has no `schema` string")
    })?;
    let parsed_json: Json = serde_json::from_str(text)
        .map_err(|e| ApiError::invalid_schema(format!("Invalid schema {text}: not JSON: {e}")))?;
    let schema = Schema::parse(&parsed_json)
        .map_err(|e| ApiError::invalid_schema(format!("Invalid schema {text}: {e}")))?;
    Ok((normalize(&parsed_json), schema))
}

/// `latest` / `-1` → None; a version number → Some.
fn parse_version(v: &str) -> std::result::Result<Option<u32>, ApiError> {
    if v == "latest" || v == "-1" {
        return Ok(None);
    }
    match v.parse::<u32>() {
        Ok(n) if n >= 1 && n <= i32::MAX as u32 => Ok(Some(n)),
        _ => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42202,
            format!(
                "The specified version '{v}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
            ),
        )),
    }
}

impl Live {
    fn subject(&self, s: &str, deleted: bool) -> std::result::Result<&StoredSubject, ApiError> {
        match self.store.subjects.get(s) {
            Some(sub) if sub.live().next().is_some() || (deleted && !sub.versions.is_empty()) => {
                Ok(sub)
            }
            _ => Err(ApiError::subject_not_found(s)),
        }
    }

    fn version(
        &self,
        s: &str,
        v: &str,
        deleted: bool,
    ) -> std::result::Result<&StoredVersion, ApiError> {
        let wanted = parse_version(v)?;
        let sub = self.subject(s, deleted)?;
        let found = match wanted {
            None => sub.live().last(),
            Some(n) => sub
                .versions
                .iter()
                .find(|x| x.version == n && (deleted || !x.deleted)),
        };
        found.ok_or_else(|| ApiError::version_not_found(v))
    }

    fn schema_text(&self, id: u32) -> std::result::Result<&str, ApiError> {
        self.store
            .schemas
            .get(&id)
            .map(|s| s.schema.as_str())
            .ok_or_else(|| ApiError::schema_not_found(&format!("{id} ")))
    }

    fn version_json(&self, s: &str, v: &StoredVersion) -> std::result::Result<Json, ApiError> {
        Ok(
            json!({"subject": s, "version": v.version, "id": v.id, "schema": self.schema_text(v.id)?}),
        )
    }

    fn level(&self, s: &str) -> CompatibilityLevel {
        self.store
            .subjects
            .get(s)
            .and_then(|x| x.compatibility)
            .unwrap_or(self.store.compatibility)
    }

    fn id_of(&self, normalized: &str) -> Option<u32> {
        self.store
            .schemas
            .iter()
            .find(|(_, s)| s.schema == normalized)
            .map(|(id, _)| *id)
    }

    /// Reasons `new` may not follow `versions` of `s` under the subject's level.
    fn incompatibilities(&self, s: &str, new: &Schema, versions: &[&StoredVersion]) -> Vec<String> {
        let existing: Vec<(u32, &Schema)> = versions
            .iter()
            .filter_map(|v| self.parsed.get(&v.id).map(|p| (v.version, p)))
            .collect();
        self.level(s).check(new, &existing)
    }
}

impl Inner {
    /// Persists `next` and makes it the state; on a write failure nothing changes.
    async fn commit(&self, live: &mut Live, next: Store) -> std::result::Result<(), ApiError> {
        write_state(&self.file, &next).await.map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                50001,
                format!("Error in the backend data store: {e}"),
            )
        })?;
        live.store = next;
        Ok(())
    }
}

async fn write_state(file: &FsPath, store: &Store) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let bytes = serde_json::to_vec_pretty(store).map_err(std::io::Error::other)?;
    let tmp = file.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = tokio::fs::File::create(&tmp).await?;
    f.write_all(&bytes).await?;
    f.sync_all().await?;
    drop(f);
    if let Err(e) = tokio::fs::rename(&tmp, file).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    // Make the rename itself durable (best effort: not every platform can fsync a directory).
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = tokio::fs::File::open(dir).await
    {
        let _ = d.sync_all().await;
    }
    Ok(())
}

async fn load_state(file: &FsPath) -> Result<Live> {
    let state_err = |reason: String, hint: &'static str| ConnectorError::RegistryState {
        file: file.display().to_string(),
        reason,
        hint,
    };
    let store = match tokio::fs::read(file).await {
        Ok(bytes) => serde_json::from_slice::<Store>(&bytes).map_err(|e| {
            state_err(
                format!("not a registry state file: {e}"),
                "restore the file from a backup, or move it away to start with an empty registry",
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Store {
            format: FORMAT,
            ..Store::default()
        },
        Err(e) => {
            return Err(ConnectorError::Io {
                file: file.display().to_string(),
                source: e,
                hint: "check the path and its permissions",
            });
        }
    };
    if store.format != FORMAT {
        return Err(state_err(
            format!("format {} (this build reads format {FORMAT})", store.format),
            "use the Strata version that wrote the file",
        ));
    }
    let mut parsed = HashMap::new();
    for (id, s) in &store.schemas {
        let schema = Schema::parse_str(&s.schema).map_err(|e| {
            state_err(
                format!("schema {id} does not parse: {e}"),
                "the file was edited by hand; restore it from a backup",
            )
        })?;
        parsed.insert(*id, schema);
    }
    for (name, sub) in &store.subjects {
        if let Some(v) = sub
            .versions
            .iter()
            .find(|v| !store.schemas.contains_key(&v.id))
        {
            return Err(state_err(
                format!(
                    "subject `{name}` version {} refers to missing schema {}",
                    v.version, v.id
                ),
                "the file was edited by hand; restore it from a backup",
            ));
        }
    }
    Ok(Live { store, parsed })
}

// ---------------------------------------------------------------------------------------------
// Handlers

async fn root() -> ApiResult {
    ok(json!({}))
}

async fn list_subjects(State(app): State<App>, Query(q): Q) -> ApiResult {
    let live = app.live.lock().await;
    let deleted = flag(&q, "deleted");
    let names: Vec<&String> = live
        .store
        .subjects
        .iter()
        .filter(|(_, s)| s.live().next().is_some() || (deleted && !s.versions.is_empty()))
        .map(|(n, _)| n)
        .collect();
    ok(json!(names))
}

async fn list_versions(State(app): State<App>, Path(s): Path<String>, Query(q): Q) -> ApiResult {
    let live = app.live.lock().await;
    let deleted = flag(&q, "deleted");
    let sub = live.subject(&s, deleted)?;
    let versions: Vec<u32> = sub
        .versions
        .iter()
        .filter(|v| deleted || !v.deleted)
        .map(|v| v.version)
        .collect();
    ok(json!(versions))
}

async fn get_version(
    State(app): State<App>,
    Path((s, v)): Path<(String, String)>,
    Query(q): Q,
) -> ApiResult {
    let live = app.live.lock().await;
    let found = live.version(&s, &v, flag(&q, "deleted"))?;
    ok(live.version_json(&s, found)?)
}

async fn get_version_schema(
    State(app): State<App>,
    Path((s, v)): Path<(String, String)>,
    Query(q): Q,
) -> ApiResult {
    let live = app.live.lock().await;
    let found = live.version(&s, &v, flag(&q, "deleted"))?;
    Ok(raw_schema(live.schema_text(found.id)?))
}

fn raw_schema(text: &str) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        text.to_string(),
    )
        .into_response()
}

async fn register(State(app): State<App>, Path(s): Path<String>, body: Bytes) -> ApiResult {
    let (text, schema) = schema_from_body(&body)?;
    let mut live = app.live.lock().await;
    let existing_id = live.id_of(&text);
    if let Some(sub) = live.store.subjects.get(&s)
        && let Some(v) = sub.live().find(|v| Some(v.id) == existing_id)
    {
        return ok(json!({"id": v.id}));
    }
    let live_versions: Vec<&StoredVersion> = live
        .store
        .subjects
        .get(&s)
        .map(|x| x.live().collect())
        .unwrap_or_default();
    let reasons = live.incompatibilities(&s, &schema, &live_versions);
    if !reasons.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            409,
            format!(
                "Schema being registered is incompatible with an earlier schema for subject \"{s}\" ({} level), details: [{}]",
                live.level(&s),
                reasons.join("; ")
            ),
        ));
    }
    let mut next = live.store.clone();
    let id = match existing_id {
        Some(id) => id,
        None => {
            let id = next.schemas.keys().next_back().map_or(1, |m| m + 1);
            next.schemas.insert(id, StoredSchema { schema: text });
            id
        }
    };
    let sub = next.subjects.entry(s.clone()).or_default();
    let version = sub.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
    sub.versions.push(StoredVersion {
        version,
        id,
        deleted: false,
    });
    app.commit(&mut live, next).await?;
    live.parsed.entry(id).or_insert(schema);
    ok(json!({"id": id}))
}

async fn lookup(
    State(app): State<App>,
    Path(s): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> ApiResult {
    let (text, _) = schema_from_body(&body)?;
    let live = app.live.lock().await;
    let deleted = flag(&q, "deleted");
    let sub = live.subject(&s, deleted)?;
    let id = live.id_of(&text);
    let found = sub
        .versions
        .iter()
        .rev()
        .find(|v| Some(v.id) == id && (deleted || !v.deleted))
        .ok_or_else(|| ApiError::schema_not_found(""))?;
    ok(live.version_json(&s, found)?)
}

async fn delete_subject(State(app): State<App>, Path(s): Path<String>, Query(q): Q) -> ApiResult {
    let mut live = app.live.lock().await;
    let permanent = flag(&q, "permanent");
    let sub = match live.store.subjects.get(&s) {
        Some(sub) if !sub.versions.is_empty() => sub,
        _ => return Err(ApiError::subject_not_found(&s)),
    };
    let any_live = sub.live().next().is_some();
    let mut next = live.store.clone();
    let versions: Vec<u32>;
    if permanent {
        if any_live {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                40405,
                format!("Subject '{s}' was not deleted first before being permanently deleted"),
            ));
        }
        versions = sub.versions.iter().map(|v| v.version).collect();
        next.subjects.remove(&s);
    } else {
        if !any_live {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                40404,
                format!("Subject '{s}' was soft deleted. Set permanent=true to delete permanently"),
            ));
        }
        versions = sub.live().map(|v| v.version).collect();
        if let Some(x) = next.subjects.get_mut(&s) {
            x.versions.iter_mut().for_each(|v| v.deleted = true);
        }
    }
    app.commit(&mut live, next).await?;
    ok(json!(versions))
}

async fn delete_version(
    State(app): State<App>,
    Path((s, v)): Path<(String, String)>,
    Query(q): Q,
) -> ApiResult {
    let mut live = app.live.lock().await;
    let permanent = flag(&q, "permanent");
    let found = live.version(&s, &v, permanent)?;
    let (number, was_deleted) = (found.version, found.deleted);
    if permanent && !was_deleted {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            40407,
            format!(
                "Subject '{s}' Version {number} was not deleted first before being permanently deleted"
            ),
        ));
    }
    let mut next = live.store.clone();
    if let Some(sub) = next.subjects.get_mut(&s) {
        if permanent {
            sub.versions.retain(|x| x.version != number);
        } else if let Some(x) = sub.versions.iter_mut().find(|x| x.version == number) {
            x.deleted = true;
        }
    }
    app.commit(&mut live, next).await?;
    ok(json!(number))
}

fn parse_id(id: &str) -> std::result::Result<u32, ApiError> {
    id.parse()
        .map_err(|_| ApiError::schema_not_found(&format!("{id} ")))
}

async fn schema_by_id(State(app): State<App>, Path(id): Path<String>) -> ApiResult {
    let live = app.live.lock().await;
    ok(json!({"schema": live.schema_text(parse_id(&id)?)?}))
}

async fn raw_schema_by_id(State(app): State<App>, Path(id): Path<String>) -> ApiResult {
    let live = app.live.lock().await;
    Ok(raw_schema(live.schema_text(parse_id(&id)?)?))
}

async fn subjects_by_id(State(app): State<App>, Path(id): Path<String>) -> ApiResult {
    let live = app.live.lock().await;
    let id = parse_id(&id)?;
    live.schema_text(id)?;
    let names: Vec<&String> = live
        .store
        .subjects
        .iter()
        .filter(|(_, s)| s.live().any(|v| v.id == id))
        .map(|(n, _)| n)
        .collect();
    ok(json!(names))
}

async fn versions_by_id(State(app): State<App>, Path(id): Path<String>) -> ApiResult {
    let live = app.live.lock().await;
    let id = parse_id(&id)?;
    live.schema_text(id)?;
    let pairs: Vec<Json> = live
        .store
        .subjects
        .iter()
        .flat_map(|(n, s)| {
            s.live()
                .filter(|v| v.id == id)
                .map(move |v| json!({"subject": n, "version": v.version}))
        })
        .collect();
    ok(json!(pairs))
}

async fn schema_types() -> ApiResult {
    ok(json!(["AVRO"]))
}

async fn compat_version(
    State(app): State<App>,
    Path((s, v)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let (_, schema) = schema_from_body(&body)?;
    let live = app.live.lock().await;
    let against: Vec<&StoredVersion> = match parse_version(&v)? {
        // Nothing registered yet: any schema may be the first.
        None => match live.store.subjects.get(&s).and_then(|x| x.live().last()) {
            Some(latest) => vec![latest],
            None => vec![],
        },
        Some(_) => vec![live.version(&s, &v, false)?],
    };
    compat_answer(live.incompatibilities(&s, &schema, &against))
}

async fn compat_all(State(app): State<App>, Path(s): Path<String>, body: Bytes) -> ApiResult {
    let (_, schema) = schema_from_body(&body)?;
    let live = app.live.lock().await;
    let against: Vec<&StoredVersion> = live
        .store
        .subjects
        .get(&s)
        .map(|x| x.live().collect())
        .unwrap_or_default();
    compat_answer(live.incompatibilities(&s, &schema, &against))
}

fn compat_answer(reasons: Vec<String>) -> ApiResult {
    ok(json!({"is_compatible": reasons.is_empty(), "messages": reasons}))
}

fn level_from_body(body: &[u8]) -> std::result::Result<CompatibilityLevel, ApiError> {
    let j: Json = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            400,
            format!("Malformed JSON request body: {e}"),
        )
    })?;
    let text = j
        .get("compatibility")
        .or_else(|| j.get("compatibilityLevel"))
        .and_then(Json::as_str)
        .unwrap_or("");
    text.parse().map_err(|e: String| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42203,
            format!("Invalid compatibility level. {e}"),
        )
    })
}

async fn get_global_config(State(app): State<App>) -> ApiResult {
    let live = app.live.lock().await;
    ok(json!({"compatibilityLevel": live.store.compatibility}))
}

async fn put_global_config(State(app): State<App>, body: Bytes) -> ApiResult {
    let level = level_from_body(&body)?;
    let mut live = app.live.lock().await;
    let mut next = live.store.clone();
    next.compatibility = level;
    app.commit(&mut live, next).await?;
    ok(json!({"compatibility": level}))
}

async fn get_subject_config(
    State(app): State<App>,
    Path(s): Path<String>,
    Query(q): Q,
) -> ApiResult {
    let live = app.live.lock().await;
    match live.store.subjects.get(&s).and_then(|x| x.compatibility) {
        Some(level) => ok(json!({"compatibilityLevel": level})),
        None if flag(&q, "defaultToGlobal") => {
            ok(json!({"compatibilityLevel": live.store.compatibility}))
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            40408,
            format!("Subject '{s}' does not have subject-level compatibility configured"),
        )),
    }
}

async fn put_subject_config(
    State(app): State<App>,
    Path(s): Path<String>,
    body: Bytes,
) -> ApiResult {
    let level = level_from_body(&body)?;
    let mut live = app.live.lock().await;
    let mut next = live.store.clone();
    next.subjects.entry(s).or_default().compatibility = Some(level);
    app.commit(&mut live, next).await?;
    ok(json!({"compatibility": level}))
}

async fn delete_subject_config(State(app): State<App>, Path(s): Path<String>) -> ApiResult {
    let mut live = app.live.lock().await;
    let Some(previous) = live.store.subjects.get(&s).and_then(|x| x.compatibility) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            40408,
            format!("Subject '{s}' does not have subject-level compatibility configured"),
        ));
    };
    let mut next = live.store.clone();
    if let Some(x) = next.subjects.get_mut(&s) {
        x.compatibility = None;
        if x.versions.is_empty() {
            next.subjects.remove(&s);
        }
    }
    app.commit(&mut live, next).await?;
    ok(json!({"compatibilityLevel": previous}))
}

async fn mode() -> ApiResult {
    ok(json!({"mode": "READWRITE"}))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, 404, "HTTP 404 Not Found")
}

fn router(app: App) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_by_id))
        .route("/schemas/types", get(schema_types))
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compat_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compat_version),
        )
        .route("/config", get(get_global_config).put(put_global_config))
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .route("/mode", get(mode))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app)
}

/// A bound, not yet serving, registry server.
pub struct RegistryServer {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    app: App,
}

impl std::fmt::Debug for RegistryServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryServer")
            .field("addr", &self.addr)
            .field("state_file", &self.app.file)
            .finish()
    }
}

impl RegistryServer {
    /// Loads `state_file` (an absent file is an empty registry) and listens on `addr`
    /// (`127.0.0.1:0` picks a free port).
    pub async fn bind(addr: &str, state_file: impl Into<PathBuf>) -> Result<Self> {
        let file = state_file.into();
        let lock = lock_state(&file)?;
        let live = load_state(&file).await?;
        let listener =
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| ConnectorError::Listen {
                    addr: addr.to_string(),
                    source: e,
                })?;
        let addr = listener.local_addr().map_err(|e| ConnectorError::Listen {
            addr: addr.to_string(),
            source: e,
        })?;
        Ok(RegistryServer {
            listener,
            addr,
            app: Arc::new(Inner {
                live: Mutex::new(live),
                file,
                _lock: lock,
            }),
        })
    }

    /// The address listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let addr = self.addr.to_string();
        axum::serve(self.listener, router(self.app))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| ConnectorError::Listen { addr, source: e })
    }

    /// Serves on a background task; stop it with [`RunningRegistry::stop`].
    pub fn spawn(self) -> RunningRegistry {
        let url = self.url();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(self.serve(async move {
            let _ = rx.await;
        }));
        RunningRegistry {
            url,
            stop: Some(tx),
            task,
        }
    }
}

/// A registry serving on a background task.
#[derive(Debug)]
pub struct RunningRegistry {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl RunningRegistry {
    /// `http://host:port`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops gracefully and waits for the server task.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(ConnectorError::Listen {
                addr: self.url.clone(),
                source: std::io::Error::other(format!("the server task failed: {e}")),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_ignores_key_order_and_whitespace() {
        let a: Json = serde_json::from_str(r#"{"type":"record","name":"r","fields":[]}"#).unwrap();
        let b: Json =
            serde_json::from_str(r#"{ "fields": [], "name": "r", "type": "record" }"#).unwrap();
        assert_eq!(normalize(&a), normalize(&b));
        assert_eq!(normalize(&a), r#"{"fields":[],"name":"r","type":"record"}"#);
    }

    #[test]
    fn versions_parse_like_confluent() {
        assert_eq!(parse_version("latest").unwrap(), None);
        assert_eq!(parse_version("-1").unwrap(), None);
        assert_eq!(parse_version("3").unwrap(), Some(3));
        assert_eq!(parse_version("0").unwrap_err().code, 42202);
        assert_eq!(parse_version("x").unwrap_err().code, 42202);
    }

    #[tokio::test]
    async fn a_second_registry_on_the_same_state_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("registry.json");
        let first = RegistryServer::bind("127.0.0.1:0", &file)
            .await
            .expect("first");
        let err = RegistryServer::bind("127.0.0.1:0", &file)
            .await
            .expect_err("the state is locked");
        assert!(err.to_string().contains("another registry holds"), "{err}");
        drop(first);
        RegistryServer::bind("127.0.0.1:0", &file)
            .await
            .expect("free again once the first is gone");
    }

    #[tokio::test]
    async fn an_oversized_body_is_refused_before_it_is_parsed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let running = RegistryServer::bind("127.0.0.1:0", dir.path().join("r.json"))
            .await
            .expect("bind")
            .spawn();
        let huge = format!(r#"{{"schema": "{}"}}"#, "x".repeat(MAX_BODY_BYTES + 1));
        let status = reqwest::Client::new()
            .post(format!("{}/subjects/s/versions", running.url()))
            .header("content-type", CONTENT_TYPE)
            .body(huge)
            .send()
            .await
            .expect("answer")
            .status();
        assert_eq!(status.as_u16(), 413);
        running.stop().await.expect("stop");
    }
}
