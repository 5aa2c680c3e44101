//! Every `strata …` command line in the README and `docs/` names a real subcommand and only
//! flags that subcommand has: each is checked against the binary's own `--help`, so a doc that
//! drifts from the CLI (a renamed flag, a flag that never existed) fails here.

use std::path::Path;
use std::process::Command;

/// `strata …` command lines of a Markdown text: fenced code lines (with `\` continuations
/// joined) and inline code spans.
fn command_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    let mut pending = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            let line = line.split(" # ").next().unwrap_or(line).trim();
            if !pending.is_empty() || line.starts_with("strata ") {
                pending.push_str(line.trim_end_matches('\\'));
                pending.push(' ');
                if !line.ends_with('\\') {
                    out.push(std::mem::take(&mut pending));
                }
            }
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("`strata ") {
            let after = &rest[start + 1..];
            let Some(end) = after.find('`') else { break };
            out.push(after[..end].to_string());
            rest = &after[end + 1..];
        }
    }
    out
}

/// The subcommand words of a command line (`strata stream avro --x` → `stream avro`).
fn subcommand(line: &str) -> Vec<&str> {
    line.split_whitespace()
        .skip(1)
        .take_while(|w| {
            !w.starts_with('-') && w.chars().all(|c| c.is_ascii_lowercase() || c == '-')
        })
        .take(2)
        .collect()
}

#[test]
fn every_documented_command_and_flag_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    let mut checked = 0;
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read doc");
        for line in command_lines(&text) {
            let words = subcommand(&line);
            let help = Command::new(env!("CARGO_BIN_EXE_strata"))
                .args(&words)
                .arg("--help")
                .output()
                .expect("run strata");
            let shown = String::from_utf8_lossy(&help.stdout);
            if !help.status.success() {
                problems.push(format!(
                    "{}: `{line}`: no subcommand `{}`",
                    file.display(),
                    words.join(" ")
                ));
                continue;
            }
            for flag in line
                .split_whitespace()
                .filter(|w| w.starts_with("--") && w.len() > 2)
            {
                let flag = flag
                    .split('=')
                    .next()
                    .unwrap_or(flag)
                    .trim_end_matches([',', ')', '`']);
                if flag == "--help"
                    || shown.contains(&format!("{flag} "))
                    || shown.contains(&format!("{flag}\n"))
                    || shown.contains(&format!("{flag} <"))
                    || shown.contains(&format!("{flag}="))
                {
                    continue;
                }
                problems.push(format!(
                    "{}: `{line}`: `strata {}` has no flag `{flag}`",
                    file.display(),
                    words.join(" ")
                ));
            }
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} command lines found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
