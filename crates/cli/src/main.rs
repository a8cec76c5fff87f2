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
    let json =
        matches!(&cli.command, Command::Serve(args) if args.log_format == args::LogFormat::Json);
    init_logging(json);
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

/// Logs to stderr, filtered by `HEADCOUNT_LOG` (default `info`); `json`: one JSON
/// object a line, with the fields of the current span (a request's id among them).
fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEADCOUNT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}
