//! `strata`: the command-line drivers. One file per command in `cmd/`.
//!
//! Exit codes: 0 success, 1 runtime failure (I/O, data), 2 bad configuration (spec, flags).

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Strata — one transformation SDK for streaming and batch.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
struct Cli {
    /// Log lines on stderr as text, or as one JSON object per line (for log shippers).
    #[arg(
        long,
        global = true,
        env = "STRATA_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the span fields.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a pipeline spec without running it.
    Validate(cmd::validate::Args),
    /// Show the step graph of a pipeline with the schema after each step.
    Plan(cmd::validate::Args),
    /// Run a pipeline over NDJSON files into Parquet (good rows + quarantine).
    Transform(cmd::transform::Args),
    /// Generate realistic sample data with faults.
    Generate(cmd::generate::Args),
    /// Bronze (append-only raw layer) commands.
    #[command(subcommand)]
    Bronze(BronzeCommand),
    /// Bronze files of a source → pipeline → silver Iceberg table, exactly once.
    Batch(cmd::batch::Args),
    /// SQL over the lake's silver tables.
    Sql(cmd::sql::Args),
    /// Table maintenance: compact small files, expire snapshots, delete unreferenced files
    /// and checkpoints (safe while writers run).
    Maintain(cmd::maintain::Args),
    /// Gold SQL models: `models plan` (what would run and why), `models run`.
    #[command(subcommand)]
    Models(cmd::models::ModelsCommand),
    /// The data catalog: `catalog list`, `catalog show <dataset>`, `catalog lineage <dataset>`,
    /// `catalog export-datahub`.
    #[command(subcommand)]
    Catalog(cmd::catalog::CatalogCommand),
    /// Generate every source into a local bronze, run the batch path to silver, query gold.
    Demo(cmd::demo::Args),
    /// Load an external source: `ingest postgres` (full load → bronze), `ingest mysql-cdc`, `ingest http` (API poller → Kafka).
    #[command(subcommand)]
    Ingest(cmd::ingest::IngestCommand),
    /// Confluent-compatible Schema Registry (embedded server).
    #[command(subcommand)]
    Registry(cmd::registry::RegistryCommand),
    /// Avro in the Confluent wire format: encode pipeline output, decode messages.
    #[command(subcommand)]
    Avro(cmd::registry::AvroCommand),
    /// Streaming drivers: Kafka JSON topic → pipeline → Avro topic, bronze, or silver.
    #[command(subcommand)]
    Stream(StreamCommand),
    /// Change data capture (`cdc mysql`: MySQL / MariaDB binlog → Kafka, Debezium JSON).
    #[command(subcommand)]
    Cdc(cmd::mysql_cdc::CdcCommand),
    /// Long-running servers (`serve webhooks`: HTTP webhooks → Kafka; `serve analytics`: SQL,
    /// metrics and a dashboard over silver and gold).
    #[command(subcommand)]
    Serve(cmd::webhooks::ServeCommand),
    /// Reports of the analytics API's metrics, rendered to HTML + CSV.
    #[command(subcommand)]
    Report(cmd::report::ReportCommand),
}

#[derive(Debug, Subcommand)]
enum StreamCommand {
    /// Kafka JSON topic → pipeline → Kafka Avro topic (+ dead-letter topic).
    Avro(Box<cmd::stream::Args>),
    /// Kafka JSON topic → pipeline → silver Iceberg table, exactly once (offsets in the table).
    Silver(Box<cmd::stream_silver::Args>),
    /// Kafka topic → bronze NDJSON files named by partition and offset range, nothing lost.
    Bronze(Box<cmd::stream_bronze::Args>),
}

#[derive(Debug, Subcommand)]
enum BronzeCommand {
    /// Load an NDJSON file into bronze.
    Put(cmd::bronze::Args),
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl Failure {
    /// Bad configuration: exit code 2.
    pub fn config(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: 2,
            error: error.into(),
        }
    }

    /// Runtime failure: exit code 1.
    pub fn runtime(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: 1,
            error: error.into(),
        }
    }
}

impl From<strata_core::CoreError> for Failure {
    fn from(e: strata_core::CoreError) -> Self {
        if e.is_config_error() {
            Failure::config(e)
        } else {
            Failure::runtime(e)
        }
    }
}

/// Runs an async command on a multi-threaded runtime (both cores).
impl From<strata_runtime::RuntimeError> for Failure {
    fn from(e: strata_runtime::RuntimeError) -> Self {
        match e.kind() {
            strata_runtime::ErrorKind::Config => Failure::config(e),
            _ => Failure::runtime(e),
        }
    }
}

fn block_on(f: impl std::future::Future<Output = Result<(), Failure>>) -> Result<(), Failure> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Failure::runtime)?;
    rt.block_on(f)
}

/// Logs go to stderr; `STRATA_LOG` takes an env-filter (default: Strata's own info lines and
/// other crates' warnings).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "warn,strata=info,strata_cli=info,strata_connectors=info",
        )
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = cli.log_format;
    init_logging(log_format);
    let result = match cli.command {
        Command::Validate(a) => cmd::validate::run(&a, false),
        Command::Plan(a) => cmd::validate::run(&a, true),
        Command::Transform(a) => block_on(cmd::transform::run(&a)),
        Command::Generate(a) => cmd::generate::run(&a),
        Command::Bronze(BronzeCommand::Put(a)) => block_on(cmd::bronze::run(&a)),
        Command::Batch(a) => block_on(cmd::batch::run(&a)),
        Command::Sql(a) => block_on(cmd::sql::run(&a)),
        Command::Maintain(a) => block_on(cmd::maintain::run(&a)),
        Command::Models(c) => block_on(cmd::models::run_command(&c)),
        Command::Catalog(c) => block_on(cmd::catalog::run(&c)),
        Command::Demo(a) => block_on(cmd::demo::run(&a)),
        Command::Ingest(c) => block_on(cmd::ingest::run(&c)),
        Command::Registry(c) => block_on(cmd::registry::run_registry(&c)),
        Command::Avro(c) => cmd::registry::run_avro(&c),
        Command::Stream(StreamCommand::Avro(a)) => block_on(cmd::stream::run(&a)),
        Command::Stream(StreamCommand::Silver(a)) => block_on(cmd::stream_silver::run(&a)),
        Command::Stream(StreamCommand::Bronze(a)) => block_on(cmd::stream_bronze::run(&a)),
        Command::Cdc(c) => block_on(cmd::mysql_cdc::run(&c)),
        Command::Serve(c) => block_on(cmd::webhooks::run(&c)),
        Command::Report(c) => block_on(cmd::report::run(&c)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            match log_format {
                LogFormat::Text => eprintln!("error: {:#}", f.error),
                LogFormat::Json => tracing::error!(exit_code = f.code, "{:#}", f.error),
            }
            ExitCode::from(f.code)
        }
    }
}
