use std::process::ExitCode;

use clap::Parser as _;

use std::io::Write as _;

use messer::analysis::{self, read::ReadError, read::retrying};
use messer::cli::{Action, Cli};
use messer::record::{self, RecordError};

fn run() -> anyhow::Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version (a reader that went away is no error).
            let _ = e.print();
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
    let mut logger = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level));
    logger.format_target(false);
    if messer::record::status::on_terminal() {
        // A log line first clears the status line it would otherwise follow.
        logger.format(|buf, r| {
            let ts = buf.timestamp();
            writeln!(buf, "{}[{ts} {:<5}] {}", messer::record::status::CLEAR, r.level(), r.args())
        });
    }
    logger.init();
    if let Some(action) = &cli.action {
        return analyse(action);
    }
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

/// Writes `text` to standard output.
fn print_out(text: &str) -> Result<(), ReadError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// `inspect`, `export`, `plot` and `compare`: a file that cannot be used is
/// bad input (2); output to a reader that went away ends quietly (0).
fn analyse(action: &Action) -> anyhow::Result<ExitCode> {
    let result = match action {
        Action::Plot { files, output, label, metric, threads } => {
            retrying(|| analysis::plot::plot(files, label, metric, *threads, output))
        }
        Action::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut <Cli as clap::CommandFactory>::command(), "messer", &mut buf);
            print_out(&String::from_utf8_lossy(&buf))
        }
        Action::Man => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut buf)
                .map_err(ReadError::Output)
                .and_then(|()| print_out(&String::from_utf8_lossy(&buf)))
        }
        Action::Compare { file, format, worst } => retrying(|| analysis::compare::compare(file, *worst))
            .and_then(|m| print_out(&analysis::compare::render(&m, *format))),
        Action::Inspect { file } => retrying(|| analysis::inspect::report(file)).and_then(|r| print_out(&r)),
        Action::Export { file, format, table, output } => match output {
            Some(path) => match std::fs::File::create(path) {
                Ok(f) => {
                    let mut w = std::io::BufWriter::new(f);
                    retrying(|| analysis::export::export(file, table, *format, &mut w)).and_then(|()| Ok(w.flush()?))
                }
                Err(e) => {
                    eprintln!("messer: error: cannot create {}: {e}", path.display());
                    return Ok(ExitCode::from(2));
                }
            },
            None => {
                let mut w = std::io::BufWriter::new(std::io::stdout().lock());
                retrying(|| analysis::export::export(file, table, *format, &mut w)).and_then(|()| Ok(w.flush()?))
            }
        },
    };
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.is_broken_pipe() => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("messer: error: {e}");
            Ok(ExitCode::from(if e.is_usage() { 2 } else { 1 }))
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
