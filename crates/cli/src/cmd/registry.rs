//! `strata registry serve`, `strata avro encode`, `strata avro decode`.
//!
//! `registry serve` runs Strata's embedded Confluent-compatible Schema Registry on a JSON state
//! file until SIGTERM / Ctrl-C (graceful: in-flight requests finish). A missing state file is
//! refused unless `--init` is given; writes need credentials when `--auth-user` /
//! `--auth-password` or `--auth-token` are set; growth is bounded by the `--max-*` flags. `avro encode` and
//! `avro decode` are file-based dev commands, so that the Avro wire format can be checked against
//! other implementations without a broker: a message file is a sequence of records, each a
//! big-endian `u32` length followed by one Confluent-framed message (`0x00`, schema id, datum).

use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use strata_connectors::ConnectorError;
use strata_connectors::avro::{AvroDecoder, AvroEncoder, arrow_to_avro};
use strata_connectors::file::{NdjsonReader, ReaderOptions};
use strata_connectors::registry::{
    RegistryAuth, RegistryClient, RegistryConfig, RegistryLimits, RegistryOptions, RegistryServer,
    SubjectNameStrategy,
};
use strata_connectors::secret::Secret;
use strata_core::lineage::file_input_schema;
use strata_core::{BuildContext, Pipeline};

use crate::Failure;

/// `strata registry …`
#[derive(Debug, clap::Subcommand)]
pub enum RegistryCommand {
    /// Serve a Confluent-compatible Schema Registry (AVRO) backed by a JSON state file.
    Serve(ServeArgs),
}

/// `strata avro …`
#[derive(Debug, clap::Subcommand)]
pub enum AvroCommand {
    /// Run a pipeline over NDJSON and write each output row as a Confluent Avro message.
    Encode(EncodeArgs),
    /// Print each Confluent Avro message of a message file as one JSON object.
    Decode(DecodeArgs),
}

/// Flags of `registry serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the URL is printed).
    #[arg(
        long,
        env = "STRATA_REGISTRY_LISTEN",
        hide_env_values = true,
        default_value = "127.0.0.1:8081"
    )]
    pub listen: String,
    /// JSON state file, kept across restarts. A missing file is refused unless `--init` is
    /// given (a wrong working directory would otherwise restart the ids at 1).
    #[arg(
        long,
        env = "STRATA_REGISTRY_STATE",
        hide_env_values = true,
        default_value = "registry-state.json"
    )]
    pub state: PathBuf,
    /// Create the state file when it is missing (a new, empty registry); an existing one is
    /// loaded, never wiped.
    #[arg(long)]
    pub init: bool,
    /// Basic-auth user that writes need (with `--auth-password`).
    #[arg(long, env = "STRATA_REGISTRY_USER", hide_env_values = true)]
    pub auth_user: Option<String>,
    /// Basic-auth password that writes need (with `--auth-user`).
    #[arg(long, env = "STRATA_REGISTRY_PASSWORD", hide_env_values = true, value_parser = secret)]
    pub auth_password: Option<Secret>,
    /// Bearer token that writes accept (`Authorization: Bearer …`), alone or besides basic auth.
    #[arg(long, env = "STRATA_REGISTRY_TOKEN", hide_env_values = true, value_parser = secret)]
    pub auth_token: Option<Secret>,
    /// Require the credentials for reads too (by default only POST / PUT / DELETE need them).
    #[arg(long)]
    pub auth_reads: bool,
    /// Most schemas (global ids) the registry stores.
    #[arg(long, default_value_t = 100_000)]
    pub max_schemas: usize,
    /// Most subjects (with versions or only a compatibility level).
    #[arg(long, default_value_t = 100_000)]
    pub max_subjects: usize,
    /// Most versions kept per subject (soft-deleted ones count until deleted permanently).
    #[arg(long, default_value_t = 1_000)]
    pub max_versions_per_subject: usize,
    /// Longest schema text accepted, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_schema_bytes: usize,
    /// Most bytes of schema text stored in all.
    #[arg(long, default_value_t = 512 * 1024 * 1024)]
    pub max_total_schema_bytes: usize,
}

/// A flag value kept as a [`Secret`] (its `Debug` shows `***`).
pub(crate) fn secret(value: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(value))
}

impl ServeArgs {
    /// The server options the flags describe.
    fn options(&self) -> Result<RegistryOptions, Failure> {
        let auth = RegistryAuth::from_parts(
            self.auth_user.as_deref(),
            self.auth_password.clone(),
            self.auth_token.clone(),
            self.auth_reads,
        )
        .map_err(Failure::config)?;
        let limits = RegistryLimits {
            max_schemas: self.max_schemas,
            max_subjects: self.max_subjects,
            max_versions_per_subject: self.max_versions_per_subject,
            max_schema_bytes: self.max_schema_bytes,
            max_total_schema_bytes: self.max_total_schema_bytes,
        };
        Ok(RegistryOptions {
            init: self.init,
            auth,
            limits,
        })
    }
}

/// How to reach a registry.
#[derive(Debug, clap::Args)]
pub struct RegistryFlags {
    /// Schema Registry URL.
    #[arg(long = "registry", env = "STRATA_REGISTRY_URL", hide_env_values = true)]
    pub url: String,
    /// Basic-auth user (Confluent Cloud: API key).
    #[arg(long, env = "STRATA_REGISTRY_USER", hide_env_values = true)]
    pub registry_user: Option<String>,
    /// Basic-auth password (Confluent Cloud: API secret).
    #[arg(long, env = "STRATA_REGISTRY_PASSWORD", hide_env_values = true, value_parser = secret)]
    pub registry_password: Option<Secret>,
    /// Bearer token sent instead of basic auth (`Authorization: Bearer …`).
    #[arg(
        long,
        env = "STRATA_REGISTRY_TOKEN",
        hide_env_values = true,
        value_parser = secret,
        conflicts_with = "registry_user"
    )]
    pub registry_token: Option<Secret>,
}

impl RegistryFlags {
    fn client(&self) -> Result<RegistryClient, Failure> {
        RegistryClient::new(registry_config(
            &self.url,
            self.registry_user.as_deref(),
            self.registry_password.as_ref(),
            self.registry_token.as_ref(),
        ))
        .map_err(Failure::config)
    }
}

/// The registry at `url`, with HTTP basic auth when a user is given (`--registry-user`,
/// `--registry-password`), else a bearer token when one is (`--registry-token`); also used by
/// `stream avro`.
pub(crate) fn registry_config(
    url: &str,
    user: Option<&str>,
    password: Option<&Secret>,
    token: Option<&Secret>,
) -> RegistryConfig {
    let mut config = RegistryConfig::new(url);
    if let Some(user) = user {
        config.username = Some(user.to_string());
        config.password = Some(password.cloned().unwrap_or_else(|| Secret::new("")));
    }
    config.token = token.cloned();
    config
}

/// Flags of `avro encode`.
#[derive(Debug, clap::Args)]
pub struct EncodeArgs {
    #[command(flatten)]
    pub registry: RegistryFlags,
    /// Topic: the schema is registered under `<topic>-value`.
    #[arg(long, env = "STRATA_TOPIC", hide_env_values = true)]
    pub topic: String,
    /// Pipeline spec (YAML or JSON).
    #[arg(long, env = "STRATA_PIPELINE", hide_env_values = true)]
    pub pipeline: PathBuf,
    /// NDJSON input files (plain, .gz or .zst).
    #[arg(long = "input", env = "STRATA_INPUT", hide_env_values = true, num_args = 1.., required = true)]
    pub inputs: Vec<PathBuf>,
    /// Message file to write (u32-BE length + Confluent message, per row).
    #[arg(long)]
    pub out: PathBuf,
    /// Avro record name (defaults to the pipeline name).
    #[arg(long)]
    pub record_name: Option<String>,
    /// Avro namespace.
    #[arg(long, default_value = "strata")]
    pub namespace: String,
    /// Records per batch.
    #[arg(
        long,
        env = "STRATA_BATCH_ROWS",
        hide_env_values = true,
        default_value_t = 8192
    )]
    pub batch_rows: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `avro decode`.
#[derive(Debug, clap::Args)]
pub struct DecodeArgs {
    #[command(flatten)]
    pub registry: RegistryFlags,
    /// Message file (u32-BE length + Confluent message, per message).
    #[arg(long)]
    pub input: PathBuf,
}

/// Runs `registry …`.
pub async fn run_registry(cmd: &RegistryCommand) -> Result<(), Failure> {
    match cmd {
        RegistryCommand::Serve(a) => serve(a).await,
    }
}

/// Runs `avro …`.
pub fn run_avro(cmd: &AvroCommand) -> Result<(), Failure> {
    match cmd {
        AvroCommand::Encode(a) => encode(a),
        AvroCommand::Decode(a) => decode(a),
    }
}

fn registry_failure(e: ConnectorError) -> Failure {
    match e {
        ConnectorError::SchemaIncompatible { .. } | ConnectorError::AvroSchema { .. } => {
            Failure::config(e)
        }
        e => Failure::runtime(e),
    }
}

async fn serve(args: &ServeArgs) -> Result<(), Failure> {
    let options = args.options()?;
    let auth = options.auth.describe();
    let server = RegistryServer::bind(&args.listen, &args.state, options)
        .await
        .map_err(|e| match e {
            ConnectorError::RegistryState { .. } => Failure::config(e),
            e => Failure::runtime(e),
        })?;
    println!(
        "schema registry listening on {} (state: {}; {auth})",
        server.url(),
        args.state.display()
    );
    std::io::stdout().flush().map_err(Failure::runtime)?;
    server
        .serve(super::stream::shutdown_signal())
        .await
        .map_err(Failure::runtime)?;
    eprintln!("schema registry stopped");
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::runtime)
}

fn encode(args: &EncodeArgs) -> Result<(), Failure> {
    if args.batch_rows == 0 {
        return Err(Failure::config(anyhow::anyhow!(
            "--batch-rows must be at least 1"
        )));
    }
    let spec = super::load_spec(&args.pipeline)?;
    let mut pipeline = Pipeline::build(&spec, file_input_schema(), &BuildContext::default())
        .map_err(|e| Failure::config(anyhow::anyhow!("{}: {e}", args.pipeline.display())))?;
    let record_name = args
        .record_name
        .clone()
        .unwrap_or_else(|| spec.name.clone());
    let output_schema = pipeline.output_schema();
    let avro = arrow_to_avro(&output_schema, &record_name, Some(&args.namespace))
        .map_err(Failure::config)?;
    let subject = SubjectNameStrategy::TopicName.subject(
        &args.topic,
        false,
        &format!("{}.{record_name}", args.namespace),
    );

    let client = args.registry.client()?;
    let rt = runtime()?;
    let schema_id = rt
        .block_on(client.ensure_registered(&subject, &avro.text()))
        .map_err(registry_failure)?;
    let encoder = AvroEncoder::new(output_schema, avro, schema_id);

    let file = std::fs::File::create(&args.out).map_err(|e| {
        Failure::runtime(anyhow::anyhow!(
            "cannot create `{}`: {e}",
            args.out.display()
        ))
    })?;
    let mut out = BufWriter::new(file);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(Failure::runtime)?;
    let options = ReaderOptions {
        batch_rows: args.batch_rows,
        source: spec.name.clone(),
        ingested_at_micros: now.as_micros() as i64,
        ..ReaderOptions::default()
    };
    let mut messages = 0u64;
    let mut write =
        |out: &mut BufWriter<std::fs::File>, output: strata_core::Output| -> Result<(), Failure> {
            for batch in &output.rows {
                for m in encoder.encode_batch(batch).map_err(Failure::runtime)? {
                    let len = u32::try_from(m.len()).map_err(|_| {
                        Failure::runtime(anyhow::anyhow!("a message is larger than 4 GiB"))
                    })?;
                    out.write_all(&len.to_be_bytes())
                        .map_err(Failure::runtime)?;
                    out.write_all(&m).map_err(Failure::runtime)?;
                    messages += 1;
                }
            }
            Ok(())
        };
    for input in &args.inputs {
        let reader = NdjsonReader::open(input, options.clone()).map_err(Failure::runtime)?;
        for batch in reader {
            let batch = batch.map_err(Failure::runtime)?;
            let output = pipeline.process(&batch)?;
            write(&mut out, output)?;
        }
    }
    let output = pipeline.finish()?;
    write(&mut out, output)?;
    out.flush().map_err(Failure::runtime)?;

    let m = pipeline.metrics();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "subject": subject, "schema_id": schema_id, "messages": messages,
                "out": args.out, "metrics": m,
            })
        );
    } else {
        println!(
            "subject `{subject}` schema id {schema_id}: {messages} messages → {} ({} rows in, {} quarantined)",
            args.out.display(),
            m.rows_in,
            m.quarantined
        );
    }
    Ok(())
}

/// Splits a message file into its messages.
fn read_messages(path: &std::path::Path) -> Result<Vec<Vec<u8>>, Failure> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| Failure::runtime(anyhow::anyhow!("cannot read `{}`: {e}", path.display())))?;
    let mut messages = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(Failure::runtime(anyhow::anyhow!(
                "`{}` is truncated after {} messages (a partial length prefix)",
                path.display(),
                messages.len()
            )));
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        if rest.len() < len {
            return Err(Failure::runtime(anyhow::anyhow!(
                "`{}` is truncated in message {} ({len} bytes announced, {} left)",
                path.display(),
                messages.len() + 1,
                rest.len()
            )));
        }
        messages.push(rest[..len].to_vec());
        rest = &rest[len..];
    }
    Ok(messages)
}

fn decode(args: &DecodeArgs) -> Result<(), Failure> {
    let messages = read_messages(&args.input)?;
    let decoder = AvroDecoder::new(Arc::new(args.registry.client()?));
    let rt = runtime()?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    rt.block_on(async {
        for (i, m) in messages.iter().enumerate() {
            let value = decoder.decode_json(m).await.map_err(|e| {
                Failure::runtime(anyhow::anyhow!(
                    "message {} of `{}`: {e}",
                    i + 1,
                    args.input.display()
                ))
            })?;
            match writeln!(out, "{value}") {
                Ok(()) => {}
                // The reader went away (`| head`): stop quietly, like other Unix tools.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(Failure::runtime(e)),
            }
        }
        match out.flush() {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::runtime(e)),
            _ => Ok(()),
        }
    })
}
