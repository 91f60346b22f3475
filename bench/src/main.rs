//! `glint-bench`: flags → [`glint_bench::Args`] → run → table (and JSON). Nothing else.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let args = glint_bench::Args::parse();
    match glint_bench::run(&args) {
        Ok(report) => {
            if report.errors() > 0 && args.fail_on_error {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("glint-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}
