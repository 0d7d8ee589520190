//! One file per subcommand.

mod cost;
mod eval;
mod run;
mod search;
mod serve;

use crate::cli::{Cli, Command};
use anyhow::Result;
use strata_core::StageName;

pub fn dispatch(cli: Cli) -> Result<()> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Run(args) => run::run(&args, None, quiet),
        Command::Chunk(args) => run::run(&args, Some(StageName::Chunk), quiet),
        Command::Embed(args) => run::run(&args, Some(StageName::Embed), quiet),
        Command::Fit(args) => run::run(&args, Some(StageName::Fit), quiet),
        Command::Keywords(args) => run::run(&args, Some(StageName::Keywords), quiet),
        Command::Taxonomy(args) => run::run(&args, Some(StageName::Taxonomy), quiet),
        Command::Subtrees(args) => run::run(&args, Some(StageName::Subtrees), quiet),
        Command::Select(args) => run::run(&args, Some(StageName::Select), quiet),
        Command::Emit(args) => run::run(&args, Some(StageName::Emit), quiet),
        Command::Index(args) => run::run(&args, Some(StageName::Index), quiet),
        Command::Report(args) => run::run(&args, Some(StageName::Report), quiet),
        Command::Recipe(args) => run::print_recipe(&args),
        Command::Cost(args) => cost::cost(&args, quiet),
        Command::Search(args) => search::search(&args),
        Command::Serve(args) => serve::serve(&args),
        Command::Eval(args) => eval::eval(&args, quiet),
    }
}
