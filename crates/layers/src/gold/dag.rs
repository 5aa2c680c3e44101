//! The models of a project as a DAG: who reads whom, in what order they run, and selections.
//!
//! Edges come from each model's SQL (`gold.<name>` references, found by DataFusion's parser).
//! [`ModelGraph::levels`] groups the models into waves: every model of a wave depends only on
//! earlier waves, so a wave's models can run at the same time. A cycle is refused with its path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::model::Model;
use crate::error::{LayersError, Result};

/// The models of a project and their dependencies.
#[derive(Debug, Clone)]
pub struct ModelGraph {
    models: BTreeMap<String, Model>,
    levels: Vec<Vec<String>>,
}

fn dag_err(file: String, problem: String, hint: &'static str) -> LayersError {
    LayersError::Model {
        file,
        at: String::new(),
        problem,
        hint,
    }
}

impl ModelGraph {
    /// Reads every `*.sql` file under `dir` (recursively) as a model.
    pub fn load(dir: &Path) -> Result<ModelGraph> {
        if !dir.is_dir() {
            return Err(LayersError::Model {
                file: dir.display().to_string(),
                at: String::new(),
                problem: "no such folder of models".into(),
                hint: "pass --models with the folder that holds the model .sql files",
            });
        }
        let mut files = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(d) = pending.pop() {
            let entries = std::fs::read_dir(&d).map_err(|source| LayersError::Io {
                path: d.display().to_string(),
                source,
            })?;
            for entry in entries {
                let path = entry
                    .map_err(|source| LayersError::Io {
                        path: d.display().to_string(),
                        source,
                    })?
                    .path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|e| e == "sql") {
                    files.push(path);
                }
            }
        }
        files.sort();
        let models = files
            .iter()
            .map(|f| Model::read(f))
            .collect::<Result<Vec<_>>>()?;
        ModelGraph::new(models)
    }

    /// The graph of `models`: every `gold.` reference must be a model, and there is no cycle.
    pub fn new(models: Vec<Model>) -> Result<ModelGraph> {
        let mut by_name: BTreeMap<String, Model> = BTreeMap::new();
        for m in models {
            if let Some(first) = by_name.get(&m.name) {
                return Err(dag_err(
                    m.file.display().to_string(),
                    format!(
                        "names the model `{}`, as {} does",
                        m.name,
                        first.file.display()
                    ),
                    "give each model its own name",
                ));
            }
            by_name.insert(m.name.clone(), m);
        }
        for m in by_name.values() {
            if let Some(missing) = m
                .depends_on()
                .into_iter()
                .find(|u| !by_name.contains_key(u))
            {
                return Err(dag_err(
                    m.file.display().to_string(),
                    format!("reads gold.{missing}, which no model defines"),
                    "add the model, or read a silver table by its bare name",
                ));
            }
        }
        // Kahn's algorithm, wave by wave; names sort each wave so runs are reproducible.
        let mut waiting: BTreeMap<&str, usize> = by_name
            .values()
            .map(|m| (m.name.as_str(), m.depends_on().len()))
            .collect();
        let mut levels: Vec<Vec<String>> = Vec::new();
        loop {
            let ready: Vec<String> = waiting
                .iter()
                .filter(|(_, n)| **n == 0)
                .map(|(name, _)| name.to_string())
                .collect();
            if ready.is_empty() {
                break;
            }
            for name in &ready {
                waiting.remove(name.as_str());
            }
            for m in by_name.values() {
                if let Some(n) = waiting.get_mut(m.name.as_str()) {
                    *n -= m.depends_on().iter().filter(|u| ready.contains(u)).count();
                }
            }
            levels.push(ready);
        }
        if let Some(start) = waiting.keys().next() {
            let cycle = find_cycle(&by_name, start, &waiting);
            return Err(dag_err(
                by_name
                    .get(*start)
                    .map(|m| m.file.display().to_string())
                    .unwrap_or_default(),
                format!(
                    "the models read each other in a cycle: {}",
                    cycle.join(" → ")
                ),
                "break the cycle: a model cannot depend on its own output",
            ));
        }
        Ok(ModelGraph {
            models: by_name,
            levels,
        })
    }

    /// The models in waves: each depends only on earlier waves.
    pub fn levels(&self) -> &[Vec<String>] {
        &self.levels
    }

    /// A model by name.
    pub fn model(&self, name: &str) -> Option<&Model> {
        self.models.get(name)
    }

    /// Every model, by name.
    pub fn models(&self) -> impl Iterator<Item = &Model> {
        self.models.values()
    }

    /// The models that read `name`, directly or not.
    pub fn downstream(&self, name: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let mut frontier = vec![name.to_string()];
        while let Some(n) = frontier.pop() {
            for m in self.models.values() {
                if m.depends_on().contains(&n) && found.insert(m.name.clone()) {
                    frontier.push(m.name.clone());
                }
            }
        }
        found
    }

    /// The models `name` reads, directly or not.
    pub fn upstream(&self, name: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let mut frontier = vec![name.to_string()];
        while let Some(n) = frontier.pop() {
            if let Some(m) = self.models.get(&n) {
                for u in &m.depends_on() {
                    if found.insert(u.clone()) {
                        frontier.push(u.clone());
                    }
                }
            }
        }
        found
    }

    /// The models a selector picks: `name`, `name+` (and what reads it), `+name` (and what it
    /// reads), `tag:x`. An empty list selects every model.
    pub fn select(&self, selectors: &[String]) -> Result<BTreeSet<String>> {
        if selectors.is_empty() {
            return Ok(self.models.keys().cloned().collect());
        }
        let mut picked = BTreeSet::new();
        for s in selectors {
            if let Some(tag) = s.strip_prefix("tag:") {
                picked.extend(
                    self.models
                        .values()
                        .filter(|m| m.header.tags.iter().any(|t| t == tag))
                        .map(|m| m.name.clone()),
                );
                continue;
            }
            let (up, rest) = match s.strip_prefix('+') {
                Some(r) => (true, r),
                None => (false, s.as_str()),
            };
            let (down, name) = match rest.strip_suffix('+') {
                Some(n) => (true, n),
                None => (false, rest),
            };
            if !self.models.contains_key(name) {
                return Err(dag_err(
                    name.to_string(),
                    format!("`{s}` selects no model"),
                    "select a model name (name, name+, +name) or tag:<tag>",
                ));
            }
            picked.insert(name.to_string());
            if up {
                picked.extend(self.upstream(name));
            }
            if down {
                picked.extend(self.downstream(name));
            }
        }
        Ok(picked)
    }
}

/// A cycle through `start` among the models left `waiting` (each has an upstream among them).
fn find_cycle(
    models: &BTreeMap<String, Model>,
    start: &str,
    waiting: &BTreeMap<&str, usize>,
) -> Vec<String> {
    let mut path: Vec<String> = vec![start.to_string()];
    loop {
        let Some(current) = path.last().and_then(|n| models.get(n)) else {
            return path;
        };
        let Some(next) = current
            .depends_on()
            .into_iter()
            .find(|u| waiting.contains_key(u.as_str()))
        else {
            return path;
        };
        if let Some(at) = path.iter().position(|p| *p == next) {
            let mut cycle = path[at..].to_vec();
            cycle.push(next);
            return cycle;
        }
        path.push(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_models_folder_is_named_as_missing() {
        let err = ModelGraph::load(Path::new("/nonexistent/models")).expect_err("missing");
        let text = err.to_string();
        assert!(
            text.contains("/nonexistent/models") && text.contains("no such folder"),
            "{text}"
        );
    }

    fn model(name: &str, sql: &str) -> Model {
        Model::parse(
            Path::new(&format!("models/{name}.sql")),
            &format!("-- kind: fact\n-- tags: [t_{name}]\n{sql}"),
        )
        .unwrap()
    }

    #[test]
    fn a_diamond_runs_in_waves_and_selectors_follow_edges() {
        let g = ModelGraph::new(vec![
            model("d", "SELECT * FROM gold.b JOIN gold.c USING (k)"),
            model("b", "SELECT * FROM gold.a"),
            model("c", "SELECT * FROM gold.a JOIN orders USING (k)"),
            model("a", "SELECT * FROM orders"),
            model("e", "SELECT * FROM customers"),
        ])
        .unwrap();
        assert_eq!(
            g.levels(),
            &[
                vec!["a".to_string(), "e".to_string()],
                vec!["b".to_string(), "c".to_string()],
                vec!["d".to_string()]
            ]
        );
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(g.select(&["b+".into()]).unwrap(), names(&["b", "d"]));
        assert_eq!(g.select(&["+b".into()]).unwrap(), names(&["a", "b"]));
        assert_eq!(g.select(&["tag:t_e".into()]).unwrap(), names(&["e"]));
        assert_eq!(g.select(&[]).unwrap().len(), 5);
        let e = g.select(&["zz+".into()]).unwrap_err().to_string();
        assert!(e.contains("selects no model"), "{e}");
    }

    #[test]
    fn a_cycle_is_refused_with_its_path_and_unknown_models_are_named() {
        let e = ModelGraph::new(vec![
            model("a", "SELECT * FROM gold.c"),
            model("b", "SELECT * FROM gold.a"),
            model("c", "SELECT * FROM gold.b"),
            model("x", "SELECT * FROM orders"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("cycle: a → c → b → a"), "{e}");
        let e = ModelGraph::new(vec![model("a", "SELECT * FROM gold.nope")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("models/a.sql") && e.contains("gold.nope"), "{e}");
        let e = ModelGraph::new(vec![model("a", "SELECT 1"), model("a", "SELECT 2")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("names the model `a`"), "{e}");
    }
}
