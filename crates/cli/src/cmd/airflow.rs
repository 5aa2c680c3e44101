//! `strata airflow dag --schedule schedule.yaml --out dag.py`: an Airflow 3 DAG file from a
//! declared schedule — one-shot ingestions (PostgreSQL full loads, HTTP polls) → batch per
//! pipeline (bronze → silver) → `models run` (gold) → `maintain` — whose tasks are the
//! `strata.airflow` operators of the Python wheel.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use serde::Deserialize;

use crate::Failure;

/// Flags of `airflow dag`.
#[derive(Debug, clap::Args)]
pub struct DagArgs {
    /// The schedule (YAML): see `deploy/airflow/demo.yaml`.
    #[arg(long)]
    pub schedule: PathBuf,
    /// Where to write the DAG file (`-`: standard output).
    #[arg(long, default_value = "-")]
    pub out: PathBuf,
}

/// `strata airflow …` commands.
#[derive(Debug, clap::Subcommand)]
pub enum AirflowCommand {
    /// Generate an Airflow DAG file from a declared schedule.
    Dag(DagArgs),
}

/// A declared schedule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// The DAG's id.
    pub dag_id: String,
    /// Shown in Airflow's UI.
    #[serde(default)]
    pub description: Option<String>,
    /// A cron expression or preset (`@daily`, `0 3 * * *`).
    pub schedule: String,
    /// First logical date (`YYYY-MM-DD`, UTC).
    pub start_date: String,
    /// The project folder (pipelines, models), relative to the schedule file.
    #[serde(default = "dot")]
    pub project: PathBuf,
    /// The lake, relative to the project unless absolute or a URL; `STRATA_LAKE` overrides it.
    pub lake: String,
    /// Retries of a task that failed for a reason worth retrying.
    #[serde(default)]
    pub retries: u32,
    /// Minutes between retries.
    #[serde(default = "five")]
    pub retry_delay_minutes: u32,
    /// One-shot ingestions run first.
    #[serde(default)]
    pub ingest: Vec<Ingest>,
    /// Batch runs: bronze source → pipeline → silver.
    #[serde(default)]
    pub batches: Vec<Batch>,
    /// The models folder (`models run` after every batch), if any.
    #[serde(default)]
    pub models: Option<PathBuf>,
    /// Run `maintain` last.
    #[serde(default)]
    pub maintain: bool,
}

fn dot() -> PathBuf {
    PathBuf::from(".")
}

fn five() -> u32 {
    5
}

/// A one-shot ingestion.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ingest {
    /// Task name.
    pub name: String,
    /// `postgres` (full load into bronze) or `http` (one poll into Kafka).
    pub kind: String,
    /// The ingestion's config file, relative to the project.
    pub config: PathBuf,
    /// Kafka brokers (`http`).
    #[serde(default)]
    pub brokers: Option<String>,
}

/// A batch run.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Bronze source.
    pub source: String,
    /// Pipeline spec, relative to the project.
    pub pipeline: PathBuf,
    /// Ingestions (by name) that must finish first; default: all of them.
    #[serde(default)]
    pub after: Option<Vec<String>>,
}

/// A Python string literal (JSON's escapes are Python's).
fn py(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "''".into())
}

fn task_name(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn rel(path: &Path) -> String {
    format!("str(PROJECT / {})", py(&path.to_string_lossy()))
}

impl Schedule {
    /// Checks names and references; every problem at once.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.dag_id.is_empty() || task_name(&self.dag_id) != self.dag_id {
            problems.push(format!(
                "dag_id `{}`: letters, digits and `_` only",
                self.dag_id
            ));
        }
        if self.schedule.trim().is_empty() {
            problems.push("schedule: empty".into());
        }
        if strata_layers::bronze::BronzeDate::parse(&self.start_date).is_err() {
            problems.push(format!("start_date `{}`: not YYYY-MM-DD", self.start_date));
        }
        let mut names = BTreeSet::new();
        for (i, ingest) in self.ingest.iter().enumerate() {
            if !names.insert(ingest.name.as_str()) {
                problems.push(format!("ingest[{i}].name `{}`: used twice", ingest.name));
            }
            if !matches!(ingest.kind.as_str(), "postgres" | "http") {
                problems.push(format!(
                    "ingest[{i}].kind `{}`: expected postgres or http",
                    ingest.kind
                ));
            }
        }
        let mut tasks = BTreeSet::new();
        for (i, batch) in self.batches.iter().enumerate() {
            let stem = batch.pipeline.file_stem().map(|s| s.to_string_lossy());
            if !tasks.insert(stem.clone()) {
                problems.push(format!(
                    "batches[{i}].pipeline `{}`: another batch runs a pipeline of that name",
                    batch.pipeline.display()
                ));
            }
            for name in batch.after.iter().flatten() {
                if !names.contains(name.as_str()) {
                    problems.push(format!("batches[{i}].after: no ingestion `{name}`"));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The DAG file's text; `project` is the project folder as resolved from the schedule file.
    pub fn render(&self, source: &Path, project: &Path) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "\"\"\"Generated by `strata airflow dag --schedule {}`: edit the schedule, not this file.\n\n\
             STRATA_LAKE and STRATA_PROJECT on the workers override the lake and the project folder;\n\
             STRATA_CATALOG (read by strata itself) names a catalog database other than the lake's.\n\"\"\"\n\n",
            source.display()
        ));
        out.push_str(
            "from __future__ import annotations\n\nimport datetime\nimport os\nimport pathlib\n\n\
             from airflow.sdk import DAG\n\nfrom strata.airflow import (\n    StrataBatchOperator,\n    \
             StrataHttpPollOperator,\n    StrataMaintainOperator,\n    StrataModelsRunOperator,\n    \
             StrataPostgresLoadOperator,\n)\n\n",
        );
        out.push_str(&format!(
            "PROJECT = pathlib.Path(os.environ.get(\"STRATA_PROJECT\") or {})\n",
            py(&project.to_string_lossy())
        ));
        let lake = if self.lake.contains("://") || Path::new(&self.lake).is_absolute() {
            py(&self.lake)
        } else {
            rel(Path::new(&self.lake))
        };
        out.push_str(&format!(
            "LAKE = os.environ.get(\"STRATA_LAKE\") or {lake}\n\n"
        ));
        out.push_str(&format!(
            "with DAG(\n    dag_id={},\n    description={},\n    schedule={},\n    \
             start_date=datetime.datetime.fromisoformat({}).replace(tzinfo=datetime.timezone.utc),\n    \
             catchup=False,\n    max_active_runs=1,\n    \
             default_args={{\"retries\": {}, \"retry_delay\": datetime.timedelta(minutes={})}},\n    \
             tags=[\"strata\"],\n):\n",
            py(&self.dag_id),
            py(self.description.as_deref().unwrap_or("")),
            py(&self.schedule),
            py(&self.start_date),
            self.retries,
            self.retry_delay_minutes
        ));
        for ingest in &self.ingest {
            let task = task_name(&ingest.name);
            let (operator, extra) = match ingest.kind.as_str() {
                "postgres" => (
                    "StrataPostgresLoadOperator",
                    "lake=LAKE, date=\"{{ ds }}\"".to_string(),
                ),
                _ => (
                    "StrataHttpPollOperator",
                    ingest
                        .brokers
                        .as_deref()
                        .map(|b| format!("brokers={}", py(b)))
                        .unwrap_or_else(|| "brokers=None".into()),
                ),
            };
            out.push_str(&format!(
                "    ingest_{task} = {operator}(task_id={}, config={}, {extra})\n",
                py(&format!("ingest_{task}")),
                rel(&ingest.config)
            ));
        }
        let mut batch_tasks = Vec::new();
        for batch in &self.batches {
            let stem = batch
                .pipeline
                .file_stem()
                .map(|s| task_name(&s.to_string_lossy()))
                .unwrap_or_default();
            let var = format!("batch_{stem}");
            out.push_str(&format!(
                "    {var} = StrataBatchOperator(task_id={}, lake=LAKE, source={}, pipeline={}, \
                 to_date=\"{{{{ ds }}}}\")\n",
                py(&var),
                py(&batch.source),
                rel(&batch.pipeline)
            ));
            let after: Vec<String> = match &batch.after {
                Some(names) => names.iter().map(|n| task_name(n)).collect(),
                None => self.ingest.iter().map(|i| task_name(&i.name)).collect(),
            };
            for name in after {
                out.push_str(&format!("    ingest_{name} >> {var}\n"));
            }
            batch_tasks.push(var);
        }
        let mut last = format!("[{}]", batch_tasks.join(", "));
        if let Some(models) = &self.models {
            out.push_str(&format!(
                "    models_run = StrataModelsRunOperator(task_id=\"models_run\", lake=LAKE, models={})\n    {last} >> models_run\n",
                rel(models)
            ));
            last = "models_run".into();
        }
        if self.maintain {
            out.push_str(&format!(
                "    maintain = StrataMaintainOperator(task_id=\"maintain\", lake=LAKE)\n    {last} >> maintain\n"
            ));
        }
        out
    }
}

/// Runs `airflow …`.
pub fn run(command: &AirflowCommand) -> Result<(), Failure> {
    let AirflowCommand::Dag(args) = command;
    let text = std::fs::read_to_string(&args.schedule).map_err(|e| {
        Failure::config(anyhow!(
            "cannot read schedule `{}`: {e}",
            args.schedule.display()
        ))
    })?;
    let schedule: Schedule = serde_yaml_ng::from_str(&text)
        .map_err(|e| Failure::config(anyhow!("{}: {e}", args.schedule.display())))?;
    schedule.validate().map_err(|problems| {
        Failure::config(anyhow!(
            "{}:\n  {}",
            args.schedule.display(),
            problems.join("\n  ")
        ))
    })?;
    let base = args
        .schedule
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let project = std::fs::canonicalize(base.join(&schedule.project)).map_err(|e| {
        Failure::config(anyhow!(
            "project `{}`: {e}",
            base.join(&schedule.project).display()
        ))
    })?;
    let dag = schedule.render(&args.schedule, &project);
    if args.out.as_os_str() == "-" {
        print!("{dag}");
    } else {
        std::fs::write(&args.out, dag)
            .map_err(|e| Failure::runtime(anyhow!("cannot write `{}`: {e}", args.out.display())))?;
        eprintln!("wrote {}", args.out.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported_at_once() {
        let schedule: Schedule = serde_yaml_ng::from_str(
            "dag_id: bad-id\nschedule: ''\nstart_date: nope\nlake: l\n\
             ingest: [{name: a, kind: ftp, config: c}, {name: a, kind: http, config: c}]\n\
             batches: [{source: s, pipeline: p/x.yaml, after: [zz]}]\n",
        )
        .expect("parses");
        let problems = schedule.validate().expect_err("invalid");
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("no ingestion `zz`")));
    }

    #[test]
    fn the_dag_chains_ingestions_batches_models_and_maintain() {
        let schedule: Schedule = serde_yaml_ng::from_str(
            "dag_id: d\nschedule: '@daily'\nstart_date: '2025-11-20'\nlake: s3://b/lake\n\
             ingest: [{name: pg, kind: postgres, config: pg.yaml}]\n\
             batches: [{source: x, pipeline: pipelines/x's.yaml}]\nmodels: models\nmaintain: true\n",
        )
        .expect("parses");
        schedule.validate().expect("valid");
        let dag = schedule.render(Path::new("s.yaml"), Path::new("/p"));
        assert!(dag.contains("LAKE = os.environ.get(\"STRATA_LAKE\") or \"s3://b/lake\""));
        assert!(dag.contains("ingest_pg >> batch_x_s"));
        assert!(dag.contains("[batch_x_s] >> models_run"));
        assert!(dag.contains("models_run >> maintain"));
        assert!(dag.contains("pipeline=str(PROJECT / \"pipelines/x's.yaml\")"));
    }
}
