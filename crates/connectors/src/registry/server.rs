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
//! file: two servers on the same file would overwrite each other's changes (an exclusive lock
//! beside the file refuses a second one).
//!
//! A missing state file is refused unless [`RegistryOptions::init`] is set (`--init`): started
//! from the wrong folder, a registry would otherwise hand out ids from 1 again, and every record
//! already written with those ids would decode with the wrong schema. `init` creates the file
//! at once (so the next start finds it) and simply loads a file that exists.
//!
//! Writes need credentials when [`RegistryAuth`] has any (401, `error_code` 40101 otherwise;
//! see [`super::auth`]). Growth is bounded by [`RegistryLimits`] — schemas, subjects, versions
//! per subject, bytes per schema and in all — so an unauthenticated or runaway writer fills
//! neither memory nor disk: a change over a bound is refused (422, `error_code` 42205; an
//! oversized schema 42201) and changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use apache_avro::Schema;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use tokio::sync::Mutex;

use super::auth::RegistryAuth;
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
    /// Bytes of every stored schema text (for [`RegistryLimits::max_total_schema_bytes`]).
    schema_bytes: usize,
}

/// How far the registry may grow. A change that would pass a bound is refused with 422 and
/// changes nothing; a state file already past a bound still loads (only growth is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryLimits {
    /// Schemas (global ids) in all.
    pub max_schemas: usize,
    /// Subjects, counting those that only carry a compatibility level.
    pub max_subjects: usize,
    /// Versions kept per subject (soft-deleted ones count until permanently deleted).
    pub max_versions_per_subject: usize,
    /// Bytes of one schema's text, as sent.
    pub max_schema_bytes: usize,
    /// Bytes of all stored schema texts together (what the state file and memory hold).
    pub max_total_schema_bytes: usize,
}

impl Default for RegistryLimits {
    fn default() -> Self {
        RegistryLimits {
            max_schemas: 100_000,
            max_subjects: 100_000,
            max_versions_per_subject: 1_000,
            max_schema_bytes: MAX_BODY_BYTES,
            max_total_schema_bytes: 512 * 1024 * 1024,
        }
    }
}

/// The longest subject name accepted (Kafka topic names stop at 249 characters).
pub const MAX_SUBJECT_BYTES: usize = 1024;

/// How a registry server starts: whether it may create its state file, who may write, and how
/// far it may grow. The default refuses a missing state file, has no authentication and the
/// default [`RegistryLimits`].
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Create the state file when it is missing (`--init`); an existing file is loaded.
    pub init: bool,
    /// Who may write (and read).
    pub auth: RegistryAuth,
    /// Growth bounds.
    pub limits: RegistryLimits,
}

impl RegistryOptions {
    /// Options for a registry that may be new: `init` set, everything else default.
    pub fn init() -> Self {
        RegistryOptions {
            init: true,
            ..Self::default()
        }
    }

    /// Sets [`RegistryOptions::auth`].
    pub fn with_auth(mut self, auth: RegistryAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Sets [`RegistryOptions::limits`].
    pub fn with_limits(mut self, limits: RegistryLimits) -> Self {
        self.limits = limits;
        self
    }
}

struct Inner {
    live: Mutex<Live>,
    file: PathBuf,
    auth: RegistryAuth,
    limits: RegistryLimits,
    metrics: super::metrics::RegistryMetrics,
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

    /// A change refused because it would pass one of the [`RegistryLimits`].
    fn limit(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, 42205, msg)
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

/// The `schema` of a request body, validated: (normalised text, parsed). A schema text longer
/// than `max_bytes` is refused before it is parsed. Public for the fuzz target: the body is
/// attacker-controlled.
pub fn schema_from_body(
    body: &[u8],
    max_bytes: usize,
) -> std::result::Result<(String, Schema), ApiError> {
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
    if text.len() > max_bytes {
        return Err(ApiError::invalid_schema(format!(
            "Invalid schema: its text is {} bytes, more than this registry accepts ({max_bytes} bytes, --max-schema-bytes)",
            text.len()
        )));
    }
    let parsed_json: Json = serde_json::from_str(text)
        .map_err(|e| ApiError::invalid_schema(format!("Invalid schema {text}: not JSON: {e}")))?;
    let schema = crate::no_panic::avro_schema_from_json(&parsed_json)
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

    /// Refuses a change that would pass a bound: creating subject `s` (when it does not
    /// exist), adding a version to it (`new_version`), storing a new schema of `new_schema`
    /// bytes.
    fn check_growth(
        &self,
        limits: &RegistryLimits,
        s: &str,
        new_schema: Option<usize>,
        new_version: bool,
    ) -> std::result::Result<(), ApiError> {
        match self.store.subjects.get(s) {
            None => {
                if s.len() > MAX_SUBJECT_BYTES {
                    return Err(ApiError::limit(format!(
                        "Subject name is {} bytes, longer than this registry accepts ({MAX_SUBJECT_BYTES} bytes)",
                        s.len()
                    )));
                }
                if self.store.subjects.len() >= limits.max_subjects {
                    return Err(ApiError::limit(format!(
                        "Subject '{s}' cannot be created: this registry holds {} subjects, its limit (--max-subjects {})",
                        self.store.subjects.len(),
                        limits.max_subjects
                    )));
                }
            }
            Some(sub) if new_version && sub.versions.len() >= limits.max_versions_per_subject => {
                return Err(ApiError::limit(format!(
                    "Subject '{s}' has {} versions, the limit per subject (--max-versions-per-subject {}): delete old versions permanently or write to a new subject",
                    sub.versions.len(),
                    limits.max_versions_per_subject
                )));
            }
            Some(_) => {}
        }
        if let Some(bytes) = new_schema {
            if self.store.schemas.len() >= limits.max_schemas {
                return Err(ApiError::limit(format!(
                    "A new schema cannot be stored: this registry holds {} schemas, its limit (--max-schemas {})",
                    self.store.schemas.len(),
                    limits.max_schemas
                )));
            }
            if self.schema_bytes.saturating_add(bytes) > limits.max_total_schema_bytes {
                return Err(ApiError::limit(format!(
                    "A new schema of {bytes} bytes cannot be stored: this registry holds {} bytes of schemas, its limit is {} bytes (--max-total-schema-bytes)",
                    self.schema_bytes, limits.max_total_schema_bytes
                )));
            }
        }
        Ok(())
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

/// The refusal of a missing state file without `init`, naming where it was looked for.
fn missing_state(file: &FsPath) -> ConnectorError {
    let reason = match std::env::current_dir() {
        Ok(cwd) if file.is_relative() => format!(
            "does not exist (looked for `{}`, relative to the working directory)",
            cwd.join(file).display()
        ),
        _ => "does not exist".to_string(),
    };
    ConnectorError::RegistryState {
        file: file.display().to_string(),
        reason,
        hint: "pass --init to create a new, empty registry there (ids start again at 1); to keep \
               an existing registry, point --state at its file",
    }
}

async fn load_state(file: &FsPath, init: bool) -> Result<Live> {
    let state_err = |reason: String, hint: &'static str| ConnectorError::RegistryState {
        file: file.display().to_string(),
        reason,
        hint,
    };
    let store = match tokio::fs::read(file).await {
        Ok(bytes) => serde_json::from_slice::<Store>(&bytes).map_err(|e| {
            state_err(
                format!("not a registry state file: {e}"),
                "restore the file from a backup, or move it away and pass --init to start an empty registry",
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !init {
                return Err(missing_state(file));
            }
            // Written at once: the next start (without --init) finds the registry.
            let store = Store {
                format: FORMAT,
                ..Store::default()
            };
            write_state(file, &store).await.map_err(|e| {
                state_err(
                    format!("cannot create it: {e}"),
                    "check the path and its permissions",
                )
            })?;
            store
        }
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
        let schema = crate::no_panic::avro_schema_from_str(&s.schema).map_err(|e| {
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
    let schema_bytes = store.schemas.values().map(|s| s.schema.len()).sum();
    Ok(Live {
        store,
        parsed,
        schema_bytes,
    })
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
    let (text, schema) = schema_from_body(&body, app.limits.max_schema_bytes)?;
    let mut live = app.live.lock().await;
    let existing_id = live.id_of(&text);
    if let Some(sub) = live.store.subjects.get(&s)
        && let Some(v) = sub.live().find(|v| Some(v.id) == existing_id)
    {
        return ok(json!({"id": v.id}));
    }
    live.check_growth(
        &app.limits,
        &s,
        existing_id.is_none().then_some(text.len()),
        true,
    )?;
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
    let mut added_bytes = 0;
    let id = match existing_id {
        Some(id) => id,
        None => {
            let id = next.schemas.keys().next_back().map_or(1, |m| m + 1);
            added_bytes = text.len();
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
    live.schema_bytes += added_bytes;
    live.parsed.entry(id).or_insert(schema);
    ok(json!({"id": id}))
}

async fn lookup(
    State(app): State<App>,
    Path(s): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> ApiResult {
    let (text, _) = schema_from_body(&body, app.limits.max_schema_bytes)?;
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
    let (_, schema) = schema_from_body(&body, app.limits.max_schema_bytes)?;
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
    let (_, schema) = schema_from_body(&body, app.limits.max_schema_bytes)?;
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
    live.check_growth(&app.limits, &s, None, false)?;
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

/// Refuses a request that needs credentials and has none that [`RegistryAuth`] accepts: 401
/// with a Confluent-style body and a challenge per accepted scheme, before the body is read.
async fn require_auth(State(app): State<App>, request: Request, next: Next) -> Response {
    let auth = &app.auth;
    if !auth.required_for(request.method()) || auth.allows(request.headers()) {
        return next.run(request).await;
    }
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        40101,
        if request.headers().contains_key(header::AUTHORIZATION) {
            "Unauthorized: the credentials are not valid"
        } else {
            "Unauthorized: this registry needs credentials for this request (basic auth or a bearer token)"
        },
    )
    .into_response();
    for challenge in auth.challenges() {
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            response.headers_mut().append(header::WWW_AUTHENTICATE, v);
        }
    }
    response
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
        .route("/metrics", get(prometheus))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            require_auth,
        ))
        .layer(axum::middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

/// Counts every request (refused ones too) by its route template and status.
async fn observe(State(app): State<App>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("other", |m| m.as_str())
        .to_string();
    let method = request.method().as_str().to_string();
    let response = next.run(request).await;
    app.metrics.request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`: Prometheus text.
async fn prometheus(State(app): State<App>) -> Response {
    let (schemas, subjects) = {
        let live = app.live.lock().await;
        (live.store.schemas.len(), live.store.subjects.len())
    };
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(schemas, subjects),
    )
        .into_response()
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
            .field("auth", &self.app.auth)
            .field("limits", &self.app.limits)
            .finish()
    }
}

impl RegistryServer {
    /// Loads `state_file` and listens on `addr` (`127.0.0.1:0` picks a free port). A missing
    /// state file is refused unless `options.init` is set, and then created empty.
    pub async fn bind(
        addr: &str,
        state_file: impl Into<PathBuf>,
        options: RegistryOptions,
    ) -> Result<Self> {
        let file = state_file.into();
        // Before the lock: a refused start leaves no lock file (or folder) behind.
        if !options.init && matches!(tokio::fs::try_exists(&file).await, Ok(false)) {
            return Err(missing_state(&file));
        }
        let lock = lock_state(&file)?;
        let live = load_state(&file, options.init).await?;
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
                auth: options.auth,
                limits: options.limits,
                metrics: super::metrics::RegistryMetrics::default(),
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
        let first = RegistryServer::bind("127.0.0.1:0", &file, RegistryOptions::init())
            .await
            .expect("first");
        let err = RegistryServer::bind("127.0.0.1:0", &file, RegistryOptions::init())
            .await
            .expect_err("the state is locked");
        assert!(err.to_string().contains("another registry holds"), "{err}");
        drop(first);
        RegistryServer::bind("127.0.0.1:0", &file, RegistryOptions::default())
            .await
            .expect("free again once the first is gone");
    }

    #[tokio::test]
    async fn an_oversized_body_is_refused_before_it_is_parsed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let running = RegistryServer::bind(
            "127.0.0.1:0",
            dir.path().join("r.json"),
            RegistryOptions::init(),
        )
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

    #[tokio::test]
    async fn a_missing_state_file_is_refused_without_init_and_created_with_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("sub").join("registry.json");
        let err = RegistryServer::bind("127.0.0.1:0", &file, RegistryOptions::default())
            .await
            .expect_err("missing");
        let text = err.to_string();
        assert!(
            text.contains(&file.display().to_string())
                && text.contains("does not exist")
                && text.contains("--init"),
            "{text}"
        );
        assert!(matches!(err, ConnectorError::RegistryState { .. }));
        assert!(
            !dir.path().join("sub").exists(),
            "a refused start creates nothing"
        );

        let server = RegistryServer::bind("127.0.0.1:0", &file, RegistryOptions::init())
            .await
            .expect("init creates");
        assert!(file.exists(), "the empty registry is written at once");
        drop(server);
        RegistryServer::bind("127.0.0.1:0", &file, RegistryOptions::default())
            .await
            .expect("found again without --init");
    }

    #[tokio::test]
    async fn init_loads_an_existing_registry_instead_of_wiping_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("registry.json");
        let schema = r#"{"type":"record","name":"r","fields":[{"name":"a","type":"long"}]}"#;
        let running = RegistryServer::bind("127.0.0.1:0", &file, RegistryOptions::init())
            .await
            .expect("bind")
            .spawn();
        let url = format!("{}/subjects/s-value/versions", running.url());
        let http = reqwest::Client::new();
        let post = || {
            http.post(&url)
                .header("content-type", CONTENT_TYPE)
                .body(json!({ "schema": schema }).to_string())
                .send()
        };
        assert_eq!(post().await.expect("answer").status().as_u16(), 200);
        running.stop().await.expect("stop");

        let running = RegistryServer::bind("127.0.0.1:0", &file, RegistryOptions::init())
            .await
            .expect("init on an existing file")
            .spawn();
        let versions: Json = reqwest::get(format!("{}/subjects/s-value/versions", running.url()))
            .await
            .expect("answer")
            .json()
            .await
            .expect("json");
        assert_eq!(versions, json!([1]), "the subject survived --init");
        running.stop().await.expect("stop");
    }

    fn record(n: usize) -> String {
        json!({"type": "record", "name": format!("r{n}"), "fields": [{"name": "a", "type": "long"}]})
            .to_string()
    }

    async fn post_schema(url: &str, subject: &str, schema: &str) -> (u16, Json) {
        let resp = reqwest::Client::new()
            .post(format!("{url}/subjects/{subject}/versions"))
            .header("content-type", CONTENT_TYPE)
            .body(json!({ "schema": schema }).to_string())
            .send()
            .await
            .expect("answer");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json"))
    }

    #[tokio::test]
    async fn growth_past_a_limit_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("registry.json");
        let limits = RegistryLimits {
            max_schemas: 3,
            max_subjects: 3,
            max_versions_per_subject: 2,
            max_schema_bytes: 200,
            max_total_schema_bytes: 10_000,
        };
        let running = RegistryServer::bind(
            "127.0.0.1:0",
            &file,
            RegistryOptions::init().with_limits(limits),
        )
        .await
        .expect("bind")
        .spawn();
        let url = running.url().to_string();
        let limited = |(status, body): (u16, Json), code: i64, words: &str| {
            assert_eq!(
                (status, body["error_code"].as_i64()),
                (422, Some(code)),
                "{body}"
            );
            let message = body["message"].as_str().unwrap_or_default();
            assert!(message.contains(words), "{message}");
        };
        let put_config = |subject: &'static str| {
            let url = url.clone();
            async move {
                reqwest::Client::new()
                    .put(format!("{url}/config{subject}"))
                    .header("content-type", CONTENT_TYPE)
                    .body(r#"{"compatibility": "NONE"}"#)
                    .send()
                    .await
                    .expect("answer")
                    .status()
                    .as_u16()
            }
        };
        // Compatibility NONE, so every record may follow every other.
        assert_eq!(put_config("").await, 200);

        // Schema text size.
        let big = json!({"type": "record", "name": "big", "doc": "x".repeat(300), "fields": []});
        limited(
            post_schema(&url, "a", &big.to_string()).await,
            42201,
            "--max-schema-bytes",
        );
        // Versions per subject.
        assert_eq!(post_schema(&url, "a", &record(1)).await.0, 200);
        assert_eq!(post_schema(&url, "a", &record(2)).await.0, 200);
        limited(
            post_schema(&url, "a", &record(3)).await,
            42205,
            "--max-versions-per-subject",
        );
        // Schemas: a third is stored, a fourth is not; a stored one may still be reused.
        assert_eq!(post_schema(&url, "b", &record(3)).await.0, 200);
        limited(
            post_schema(&url, "c", &record(4)).await,
            42205,
            "--max-schemas",
        );
        assert_eq!(post_schema(&url, "c", &record(1)).await.0, 200);
        // Subjects, counting one that would only carry a compatibility level.
        limited(
            post_schema(&url, "d", &record(1)).await,
            42205,
            "--max-subjects",
        );
        assert_eq!(put_config("/d").await, 422);
        assert_eq!(
            put_config("/a").await,
            200,
            "an existing subject may change"
        );
        // Nothing refused was stored.
        running.stop().await.expect("stop");
        let stored: Json =
            serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
        assert_eq!(stored["schemas"].as_object().map(|m| m.len()), Some(3));
        let subjects: Vec<&String> = stored["subjects"]
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(subjects, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn the_total_schema_bytes_are_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let one = normalize(&serde_json::from_str(&record(1)).expect("json")).len();
        let limits = RegistryLimits {
            max_total_schema_bytes: one * 2,
            ..RegistryLimits::default()
        };
        let running = RegistryServer::bind(
            "127.0.0.1:0",
            dir.path().join("r.json"),
            RegistryOptions::init().with_limits(limits),
        )
        .await
        .expect("bind")
        .spawn();
        let url = running.url().to_string();
        assert_eq!(post_schema(&url, "a", &record(1)).await.0, 200);
        assert_eq!(post_schema(&url, "b", &record(2)).await.0, 200);
        let (status, body) = post_schema(&url, "c", &record(3)).await;
        assert_eq!(
            (status, body["error_code"].as_i64()),
            (422, Some(42205)),
            "{body}"
        );
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("--max-total-schema-bytes")
        );
        // The same schema under another subject stores no new text.
        assert_eq!(post_schema(&url, "c", &record(1)).await.0, 200);
        running.stop().await.expect("stop");
    }
}
