//! Every `strata` command from Python: `strata.run(["batch", ...])` runs it in this process
//! (the GIL released), and the wheel's `strata` console script is the same function.

use pyo3::prelude::*;

use crate::errors;

/// Runs one command line (without the program name); raises the command's failure as a typed
/// exception.
pub(crate) fn run_command(py: Python<'_>, argv: Vec<String>) -> PyResult<()> {
    let args = std::iter::once("strata".to_string()).chain(argv);
    let args: Vec<String> = args.collect();
    py.detach(|| strata_cli::run_args(args))
        .map_err(|f| errors::command(&f))
}

/// `strata.run(argv)`: runs one `strata` command in this process, e.g.
/// `strata.run(["batch", "--lake", "lake", "--source", "iot", "--pipeline", "iot.yaml"])`.
#[pyfunction]
pub(crate) fn run(py: Python<'_>, argv: Vec<String>) -> PyResult<()> {
    run_command(py, argv)
}

/// The console script: runs `argv` and returns the exit code (errors printed on stderr).
#[pyfunction]
pub(crate) fn main(py: Python<'_>, argv: Vec<String>) -> u8 {
    let args: Vec<String> = std::iter::once("strata".to_string()).chain(argv).collect();
    match py
        .detach(|| strata_cli::run_args(args).map_err(|f| (f.code(), format!("{:#}", f.error()))))
    {
        Ok(()) => 0,
        Err((code, message)) => {
            eprintln!("error: {message}");
            code
        }
    }
}
