use std::process::ExitCode;

use clap::Parser as _;

use std::io::Write as _;

use messer::analysis::{self, read::ReadError};
use messer::cli::{Action, Cli};
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

/// `inspect`, `export` and `compare`: a file that cannot be opened is bad input (2).
fn analyse(action: &Action) -> anyhow::Result<ExitCode> {
    let result = match action {
        Action::Plot { files, output, label, metric } => analysis::plot::plot(files, label, metric, output),
        Action::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "messer",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Action::Man => clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
            .render(&mut std::io::stdout())
            .map_err(|e| ReadError::Lib(e.to_string())),
        Action::Compare { file, format, worst } => {
            analysis::compare::compare(file, *worst).map(|m| print!("{}", analysis::compare::render(&m, *format)))
        }
        Action::Inspect { file } => analysis::inspect::report(file).map(|r| print!("{r}")),
        Action::Export { file, format, table, output } => match output {
            Some(path) => match std::fs::File::create(path) {
                Ok(f) => {
                    let mut w = std::io::BufWriter::new(f);
                    analysis::export::export(file, table, *format, &mut w)
                        .and_then(|()| w.flush().map_err(|e| ReadError::Lib(e.to_string())))
                }
                Err(e) => {
                    eprintln!("messer: error: cannot create {}: {e}", path.display());
                    return Ok(ExitCode::from(2));
                }
            },
            None => analysis::export::export(file, table, *format, &mut std::io::stdout().lock()),
        },
    };
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e @ (ReadError::Open { .. } | ReadError::NoTable(..))) => {
            eprintln!("messer: error: {e}");
            Ok(ExitCode::from(2))
        }
        Err(e) => {
            eprintln!("messer: error: {e}");
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
