//! `strata`: the command-line drivers, as a library. One file per command in `cmd/`; the binary
//! (`main.rs`) and the Python wheel (`strata.run`) both call [`run_args`].
//!
//! Exit codes: 0 success, 1 runtime failure (I/O, data, a failed audit), 2 bad configuration
//! (spec, flags).

pub mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Strata — one transformation SDK for streaming and batch.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
pub struct Cli {
    /// Log lines on stderr as text, or as one JSON object per line (for log shippers).
    #[arg(
        long,
        global = true,
        env = "STRATA_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the span fields.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// The lake's lifecycle: `lake cool` moves old, unread partitions to cheaper S3 storage.
    #[command(subcommand)]
    Lake(cmd::lake::LakeCommand),
    /// A query's result with the values the `encrypt` mask wrote decrypted (for key holders).
    Decrypt(cmd::decrypt::Args),
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
    /// Apache Airflow: `airflow dag` writes a DAG file (ingestions → batch → models → maintain)
    /// from a declared schedule, run by the Python wheel's `strata.airflow` operators.
    #[command(subcommand)]
    Airflow(cmd::airflow::AirflowCommand),
}

#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Kafka JSON topic → pipeline → Kafka Avro topic (+ dead-letter topic).
    Avro(Box<cmd::stream::Args>),
    /// Kafka JSON topic → pipeline → silver Iceberg table, exactly once (offsets in the table).
    Silver(Box<cmd::stream_silver::Args>),
    /// Kafka topic → bronze NDJSON files named by partition and offset range, nothing lost.
    Bronze(Box<cmd::stream_bronze::Args>),
}

#[derive(Debug, Subcommand)]
pub enum BronzeCommand {
    /// Load an NDJSON file into bronze.
    Put(cmd::bronze::Args),
    /// Store an image, audio, video or PDF file in bronze (content-addressed, type sniffed)
    /// and its metadata record in `<source>.media`.
    PutMedia(cmd::bronze_media::Args),
}

/// Who must act on a [`Failure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Bad configuration: a spec, a flag, a config file (exit code 2).
    Config,
    /// A blocking audit of a gold model failed; the model was not published (exit code 1).
    Audit,
    /// Anything else at run time: I/O, data, a server (exit code 1).
    Runtime,
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    kind: FailureKind,
    error: anyhow::Error,
}

impl Failure {
    /// A blocking audit failed: exit code 1, kind [`FailureKind::Audit`].
    pub fn audit(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: 1,
            kind: FailureKind::Audit,
            error: error.into(),
        }
    }

    /// The process exit code.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// Who must act.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The error, with its causes.
    pub fn error(&self) -> &anyhow::Error {
        &self.error
    }

    /// Bad configuration: exit code 2.
    pub fn config(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: 2,
            kind: FailureKind::Config,
            error: error.into(),
        }
    }

    /// Runtime failure: exit code 1.
    pub fn runtime(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: 1,
            kind: FailureKind::Runtime,
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

/// Runs one parsed command line (logging already set up).
pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Validate(a) => cmd::validate::run(&a, false),
        Command::Plan(a) => cmd::validate::run(&a, true),
        Command::Transform(a) => block_on(cmd::transform::run(&a)),
        Command::Generate(a) => cmd::generate::run(&a),
        Command::Bronze(BronzeCommand::Put(a)) => block_on(cmd::bronze::run(&a)),
        Command::Bronze(BronzeCommand::PutMedia(a)) => block_on(cmd::bronze_media::run(&a)),
        Command::Batch(a) => block_on(cmd::batch::run(&a)),
        Command::Sql(a) => block_on(cmd::sql::run(&a)),
        Command::Decrypt(a) => block_on(cmd::decrypt::run(&a)),
        Command::Lake(c) => block_on(cmd::lake::run(&c)),
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
        Command::Airflow(c) => cmd::airflow::run(&c),
    }
}

/// Parses `args` (the first item is the program name) and runs the command: the whole `strata`
/// binary as a function, for embedding (the Python wheel's `strata.run`). `--help` and
/// `--version` print as usual; a flag error is returned as a config [`Failure`] carrying clap's
/// message instead of exiting the process.
pub fn run_args<I, T>(args: I) -> Result<(), Failure>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if e.exit_code() == 0 => {
            let _ = e.print();
            return Ok(());
        }
        Err(e) => {
            let message = e.render().to_string();
            let message = message.trim_end().trim_start_matches("error: ");
            return Err(Failure::config(anyhow::anyhow!("{message}")));
        }
    };
    init_logging(cli.log_format);
    run(cli)
}

/// The binary's entry point: the process arguments parsed and run, errors printed on stderr (or
/// logged as JSON) and mapped to the exit code.
pub fn main_exit() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let format = cli.log_format;
    init_logging(format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            match format {
                LogFormat::Text => eprintln!("error: {:#}", f.error),
                LogFormat::Json => tracing::error!(exit_code = f.code, "{:#}", f.error),
            }
            ExitCode::from(f.code)
        }
    }
}
