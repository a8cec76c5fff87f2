//! `headcount`: the command-line entry point. Thin glue over the store, the engine
//! and the server crates.

mod args;
mod commands;
mod database;
mod output;
mod progress;
mod synth;

use args::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    if let Some(url) = cli.database.clone() {
        database::choose(database::Database {
            url,
            checkpoint_dir: cli.checkpoint_dir.clone(),
        });
    }
    let result = match cli.command {
        Command::Workspaces(cmd) => commands::workspaces::run(&cli.data_dir, cmd),
        Command::Keys(cmd) => commands::keys::run(&cli.data_dir, cmd),
        Command::Serve(cmd) => commands::serve::run(&cli.data_dir, cmd),
        Command::Import(cmd) => commands::import::run(&cli.data_dir, cmd),
        Command::Snapshot(cmd) => commands::snapshot::run(&cli.data_dir, cmd),
        Command::Demo(cmd) => commands::demo::run(&cli.data_dir, cmd),
        Command::Gen(cmd) => commands::generate::run(cmd),
        Command::Eval(cmd) => commands::eval::run(&cli.data_dir, cmd),
        Command::Backup(cmd) => commands::backup::run(&cli.data_dir, cmd),
        Command::Verify(cmd) => commands::verify::run(&cli.data_dir, cmd),
        Command::Clickhouse(cmd) => commands::clickhouse::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEADCOUNT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
