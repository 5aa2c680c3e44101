//! `--help` shows each flag's environment variable, and with `hide_env_values` unset it would
//! also print the variable's *value*: a catalog URL with its password, a registry password.
//! Every command's help, with every secret-carrying variable set, must not contain them.

use std::process::Command;

const SECRET: &str = "hunter2-SECRET";

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .arg("--help")
        .env(
            "STRATA_CATALOG",
            format!("postgres://u:{SECRET}@db:5432/catalog"),
        )
        .env("STRATA_REGISTRY_URL", format!("http://u:{SECRET}@sr:8081"))
        .env("STRATA_REGISTRY_PASSWORD", SECRET)
        .env("STRATA_REGISTRY_TOKEN", SECRET)
        .env("STRATA_KAFKA_BROKERS", format!("u:{SECRET}@broker:9092"))
        .output()
        .expect("run strata");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The subcommands `strata [path…] --help` lists.
fn subcommands(path: &[&str]) -> Vec<String> {
    let text = help(path);
    let Some(start) = text.find("Commands:") else {
        return Vec::new();
    };
    text[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn no_help_text_prints_a_secret_from_the_environment() {
    let mut checked = 0;
    let mut todo: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = todo.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let text = help(&args);
        assert!(
            !text.contains(SECRET),
            "`strata {} --help` prints a secret:\n{text}",
            args.join(" ")
        );
        checked += 1;
        for sub in subcommands(&args) {
            let mut next = path.clone();
            next.push(sub);
            todo.push(next);
        }
    }
    assert!(checked > 15, "only {checked} help texts found");
}
