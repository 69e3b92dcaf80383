//! Pre-flight checks of the gpfdist transport, run by `config check` and before a run moves
//! data: the role may create the external tables its side needs ([`missing_privileges`]), and
//! every primary segment of the cluster can open a connection to the gpfdist host and ports
//! ([`unreachable_segments`]).

mod privileges;
mod probe_server;
mod reach;

pub use privileges::missing_privileges;
pub use probe_server::ProbeServer;
pub use reach::{sample_ports, unreachable_segments, unreachable_segments_on, ProbeHost, DEFAULT_PROBE_TIMEOUT};

/// Which end of the transfer a cluster is: it decides which kind of external table its
/// segments use, so which privilege its role needs and how the reach probe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The source cluster: its segments write rows to gpfdist through a WRITABLE external table.
    Source,
    /// The target cluster: its segments read rows from gpfdist through a READABLE external table.
    Target,
}

impl Side {
    /// `writable` or `readable`, as Greenplum's `CREATEEXTTABLE (type=…)` spells it.
    pub fn table_type(self) -> &'static str {
        match self {
            Side::Source => "writable",
            Side::Target => "readable",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Target => "target",
        }
    }
}

/// Quotes an SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
