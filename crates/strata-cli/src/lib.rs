//! strata-cli: the `strata` command. It parses arguments, resolves the recipe (flags, then
//! the recipe TOML, then defaults), finds the prepared model, wires the stage crates together,
//! draws progress bars and prints results. It holds no pipeline logic; it is the only crate
//! that prints or reads environment variables.

/// `print!` / `println!` that return the write error instead of panicking on it, so that
/// `strata search ... | head` ends quietly when the reader closes the pipe.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod cli;
mod commands;
mod model;
mod progress;
mod recipe;

use clap::Parser;
use std::process::ExitCode;

/// A failure the user caused with bad arguments or a bad recipe: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn main() -> ExitCode {
    let args = cli::Cli::parse();
    init_tracing(args.verbose, args.quiet);
    match commands::dispatch(args) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of stdout went away (`| head`): nothing is left to tell it.
        Err(err) if err.chain().any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)) => {
            ExitCode::SUCCESS
        }
        Err(err) => {
            let code = if err.downcast_ref::<UsageError>().is_some() { 2 } else { 1 };
            eprintln!("error: {err:#}");
            ExitCode::from(code)
        }
    }
}

fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour).with_target(false).init();
}
