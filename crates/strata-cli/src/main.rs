//! The `strata` binary: argument parsing and wiring only (see lib.rs).

fn main() -> std::process::ExitCode {
    strata_cli::main()
}
