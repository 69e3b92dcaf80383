//! `gptransfer completions SHELL` and `gptransfer man`: generated from the command line's own
//! definition, so they never drift from it.

use std::io::Write;

use clap::CommandFactory;
use gptransfer_core::error::exit;

use crate::cli::Cli;

pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<i32> {
    // Into a buffer first: clap_complete panics when its writer fails (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "gptransfer", &mut script);
    print(&script)
}

pub fn man() -> anyhow::Result<i32> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    print(&page)
}

/// Writes to stdout; a reader that stopped early (`| head`) is no error.
fn print(bytes: &[u8]) -> anyhow::Result<i32> {
    match std::io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(exit::OK),
    }
}
