//! The `gptransfer` binary: parses the command line, wires the built-in plugins into the
//! registry, runs a command, and turns its outcome into an exit code (SPEC §5).

mod cli;
mod commands;
mod logging;
mod metrics;
mod output;
mod progress;
mod report;
mod signals;

use clap::Parser;
use gptransfer_core::error::exit;
use gptransfer_core::registry::Registry;

fn builtin_registry() -> Registry {
    let mut r = Registry::default();
    r.add_source(gptransfer_plugin_copy::CopySourceFactory);
    r.add_source(gptransfer_plugin_gp4::Gp4SourceFactory);
    r.add_sink(gptransfer_plugin_copy::CopySinkFactory);
    r.add_sink(gptransfer_plugin_gpload::GploadSinkFactory);
    r.add_transport(gptransfer_plugin_stream::StreamFactory);
    r.add_transport(gptransfer_plugin_shared_mount::SharedMountFactory);
    r.add_transport(gptransfer_plugin_gpfdist::GpfdistFactory);
    r.add_transport(gptransfer_plugin_ssh::SshTransportFactory);
    r.add_comparator(gptransfer_plugin_compare::HashFactory);
    r.add_comparator(gptransfer_plugin_compare::CountFactory);
    r.add_comparator(gptransfer_plugin_compare::NoneFactory);
    r.add_comparator(gptransfer_plugin_compare::SinkCountFactory);
    r
}

fn main() {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::CONFIG } else { exit::OK };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    logging::init(cli.verbose, cli.quiet, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(exit::FAILED);
        }
    };
    let code = runtime.block_on(commands::dispatch(cli, builtin_registry()));
    // Sessions still open (a cancelled window) are closed by the runtime's shutdown.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    std::process::exit(code);
}
