use std::process::ExitCode;

use clap::Parser as _;

use messer::cli::Cli;
use messer::record::{self, RecordError};

fn run() -> anyhow::Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            e.print()?;
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => {
            // One line: clap's first line (what is wrong) and where to look.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("bad arguments").trim_start_matches("error: ");
            eprintln!("messer: error: {first}; see `messer --help`");
            return Ok(ExitCode::from(2));
        }
    };
    let level = match cli.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).format_target(false).init();
    match record::record(&cli) {
        Ok(outcome) => Ok(ExitCode::from(outcome.child_exit.unwrap_or(0))),
        Err(RecordError::Launch(msg, code)) => {
            eprintln!("messer: {msg}");
            Ok(ExitCode::from(code))
        }
        Err(RecordError::Usage(msg)) => {
            eprintln!("messer: error: {msg}");
            Ok(ExitCode::from(2))
        }
        Err(RecordError::Runtime(msg)) => {
            eprintln!("messer: error: {msg}");
            Ok(ExitCode::from(1))
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("messer: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
