//! The gpfdist transport: rows move from the source's segments to the target's segments
//! through gpfdist processes on the ETL host.

pub mod check;
