//! The `strata` binary: the command-line drivers of [`strata_cli`].

fn main() -> std::process::ExitCode {
    strata_cli::main_exit()
}
