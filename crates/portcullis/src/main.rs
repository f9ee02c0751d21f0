//! The `portcullis` binary: `serve`, `migrate` and the admin commands.
//!
//! Admin commands act on the configured database directly, through the same
//! service layer as the HTTP server. They print one JSON document on stdout
//! (`--output json`, the default) or a table (`--output table`); on failure they
//! print one line on stderr and exit non-zero.
#![forbid(unsafe_code)]

mod cli;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
