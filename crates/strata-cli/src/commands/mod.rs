//! One file per subcommand.

mod cost;
mod eval;
mod run;
mod search;

use crate::cli::{Cli, Command};
use anyhow::Result;

pub fn dispatch(cli: Cli) -> Result<()> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Run(args) => run::run(&args, None, quiet),
        Command::Chunk(args) => run::run(&args, Some("chunk"), quiet),
        Command::Embed(args) => run::run(&args, Some("embed"), quiet),
        Command::Taxonomy(args) => run::run(&args, Some("taxonomy"), quiet),
        Command::Select(args) => run::run(&args, Some("select"), quiet),
        Command::Emit(args) => run::run(&args, Some("emit"), quiet),
        Command::Index(args) => run::run(&args, Some("index"), quiet),
        Command::Report(args) => run::run(&args, Some("report"), quiet),
        Command::Cost(args) => cost::cost(&args, quiet),
        Command::Search(args) => search::search(&args),
        Command::Eval(args) => eval::eval(&args, quiet),
    }
}
