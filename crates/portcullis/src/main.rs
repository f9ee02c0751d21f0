//! The `portcullis` binary: `serve`, `migrate` and the admin commands.
//!
//! Admin commands act on the configured database directly, through the same
//! service layer as the HTTP server. They print one JSON document on stdout
//! (`--output json`, the default) or a table (`--output table`); on failure they
//! print one line on stderr and exit non-zero.
#![forbid(unsafe_code)]

mod cli;
mod logfmt;
mod output;

use std::process::ExitCode;

use clap::Parser;

/// jemalloc with its background purge threads, not the system allocator: after a
/// burst (2,048 connections in the overload benchmark) glibc's arenas keep the
/// freed heap, ~100 MB of RSS for a live heap of ~4 MB (valgrind massif), while
/// jemalloc hands it back within seconds and RSS returns to its level before.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // Purging in background threads returns memory even when no request arrives to
    // trigger it. Without it (an unusual platform) memory is still returned, later.
    let _ = tikv_jemalloc_ctl::background_thread::write(true);
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
