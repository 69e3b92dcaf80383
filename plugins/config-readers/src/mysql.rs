//! `reader = { plugin = "mysql", … }`: the job rows of a MySQL/MariaDB job table, read before
//! the run and advanced after it (the external cursor).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::NaiveDateTime;
use gptransfer_core::config::{ConfigDuration, ConfigTimestamp, ExternalCursor, TableProgress};
use gptransfer_core::Error;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row, Value};

use crate::options::{DurationUnit, MysqlOptions};
use crate::{describe_join, format_ts, parse_duration};

/// One usable job row.
#[derive(Debug, Clone)]
pub struct JobRow {
    /// Its join column values, in `join` order (empty without a join).
    pub join_values: Vec<Option<String>>,
    /// Start of the span due.
    pub start: NaiveDateTime,
    /// End of the span due.
    pub end: NaiveDateTime,
    /// Window length of its tables.
    pub duration: Option<ConfigDuration>,
    /// Condition column of its tables.
    pub condition_column: Option<String>,
    /// Backfill bound of its tables.
    pub final_end: Option<NaiveDateTime>,
    /// The cells as read, to find the row again unchanged.
    start_text: String,
    end_text: String,
}

/// How to reach the server, password resolved; never printed.
#[derive(Clone)]
struct Server {
    opts: Opts,
    /// What people read: `MySQL job table etl_conf_d`.
    reader: String,
    /// `host:port (database …, user …)`.
    address: String,
    /// `host:port`, for hints.
    host_port: String,
    /// Where the password comes from, for the hint of a refused login.
    password_source: String,
    timeout: Duration,
}

/// A failure to reach or read the job table, in words, with what to do.
#[derive(Debug)]
pub(crate) struct Failed {
    message: String,
    hint: Option<String>,
}

impl Failed {
    fn new(message: String) -> Failed {
        Failed { message, hint: None }
    }
}

/// The job table's error: the job it defines cannot run (never called a cluster: it is not one).
fn reader_error(reader: &str, address: &str, f: Failed) -> Error {
    Error::Reader { reader: reader.to_string(), address: address.to_string(), message: f.message, hint: f.hint }
}

/// A mysql_async error said once. Its Display nests the source's Display under its own prefix
/// (`Input/output error: Input/output error: Connection refused`, `Server error: `ERROR 1045…'`):
/// take the innermost words instead.
fn mysql_message(e: &mysql_async::Error) -> String {
    use mysql_async::Error as E;
    match e {
        // The I/O or TLS error itself, without the two prefixes.
        E::Io(io) => std::error::Error::source(io).map_or_else(|| io.to_string(), ToString::to_string),
        E::Server(s) => format!("{} (MySQL error {}, SQLSTATE {})", s.message, s.code, s.state),
        E::Driver(d) => d.to_string(),
        E::Other(o) => o.to_string(),
        // The URL error may quote the URL, password included.
        E::Url(_) => "the url is not valid".to_string(),
    }
}

/// `host:port`, and that with the database and user: what people need to find the server.
fn addresses(opts: &Opts) -> (String, String) {
    let host_port = format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port());
    let address =
        format!("{host_port} (database {}, user {})", opts.db_name().unwrap_or("-"), opts.user().unwrap_or("-"));
    (host_port, address)
}

/// An error about what the job table holds for a job (no row, rows refused), naming the table
/// and where it is.
pub fn table_error(o: &MysqlOptions, message: String, hint: String) -> Error {
    let address = Opts::from_url(&o.url).map(|opts| addresses(&opts).1).unwrap_or_else(|_| "?".to_string());
    let f = Failed { message, hint: Some(hint) };
    reader_error(&format!("MySQL job table {}", o.table), &address, f)
}

impl Server {
    fn new(o: &MysqlOptions) -> Result<Server, Error> {
        let reader = format!("MySQL job table {}", o.table);
        // The parser's error would quote the URL, password included: say what is wrong instead.
        let base = Opts::from_url(&o.url).map_err(|_| {
            reader_error(&reader, "?", Failed::new("url is not of the form mysql://user@host:port/database".into()))
        })?;
        let (host_port, address) = addresses(&base);
        let fail = |message: String, hint: Option<String>| reader_error(&reader, &address, Failed { message, hint });
        let (password, password_source) = match (&o.password_env, &o.password_file) {
            (Some(_), Some(_)) => return Err(fail("set password_env or password_file, not both".into(), None)),
            (Some(var), None) => {
                let p = std::env::var(var).map_err(|_| {
                    fail(format!("password_env {var:?} is not set"), Some(format!("export {var}=… before running")))
                })?;
                (Some(p), format!("the password in ${var} (password_env)"))
            }
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    fail(
                        format!("cannot read password_file {}: {e}", path.display()),
                        Some("make the file readable by this user, or use password_env".into()),
                    )
                })?;
                (Some(text.lines().next().unwrap_or("").to_string()), format!("the password in {}", path.display()))
            }
            (None, None) => (None, "the password (none is set: use password_env or password_file)".to_string()),
        };
        let mut builder = OptsBuilder::from_opts(base).prefer_socket(false);
        if let Some(p) = password {
            builder = builder.pass(Some(p));
        }
        Ok(Server { opts: Opts::from(builder), reader, address, host_port, password_source, timeout: o.timeout.0 })
    }

    fn error(&self, f: Failed) -> Error {
        reader_error(&self.reader, &self.address, f)
    }

    /// What to do about an error, when the error says.
    fn hint(&self, e: &mysql_async::Error) -> Option<String> {
        use mysql_async::Error as E;
        let unreachable = || {
            format!(
                "is MySQL/MariaDB running at {} and reachable from this host? That address is the url of the \
                 job's reader",
                self.host_port
            )
        };
        match e {
            E::Io(_) => Some(unreachable()),
            E::Driver(mysql_async::DriverError::ConnectionClosed) => Some(unreachable()),
            E::Server(s) => match s.code {
                1045 => Some(format!("check the user in the reader's url and {}", self.password_source)),
                1044 | 1049 => Some("check the database in the reader's url".into()),
                1142 | 1143 => Some("grant this user SELECT and UPDATE on the job table".into()),
                1146 => Some("check the reader's table (default etl_conf_d)".into()),
                1054 => Some("name the job table's columns with the reader's columns = { … }".into()),
                _ => None,
            },
            _ => None,
        }
    }

    async fn timed<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, mysql_async::Error>>,
    ) -> Result<T, Failed> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Failed { message: format!("{what}: {}", mysql_message(&e)), hint: self.hint(&e) }),
            Err(_) => Err(Failed {
                message: format!("{what}: no answer within {}", humantime_secs(self.timeout)),
                hint: Some(format!(
                    "check that MySQL/MariaDB at {} answers (a firewall that drops packets, a server under load); \
                     the reader's timeout is {}",
                    self.host_port,
                    humantime_secs(self.timeout)
                )),
            }),
        }
    }

    async fn connect(&self) -> Result<Conn, Failed> {
        self.timed("cannot connect", Conn::new(self.opts.clone())).await
    }
}

fn humantime_secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

/// A MySQL name, backquoted; only letters, digits, `_` and `$` (no quoting games with names that
/// come from a config file and end up in SQL).
fn mysql_ident(what: &str, name: &str) -> Result<String, String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
        return Err(format!("{what} {name:?}: a MySQL name holds letters, digits, _ and $ only"));
    }
    Ok(format!("`{name}`"))
}

fn mysql_table(name: &str) -> Result<String, String> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 2 {
        return Err(format!("table {name:?}: write table or database.table"));
    }
    Ok(parts.iter().map(|p| mysql_ident("table", p)).collect::<Result<Vec<_>, _>>()?.join("."))
}

/// The SQL pieces, names checked and quoted once.
#[derive(Debug, Clone)]
struct Sql {
    table: String,
    job_name: String,
    run_start: String,
    run_end: String,
    valid_flag: String,
    duration: Option<String>,
    condition_column: Option<String>,
    final_end: Option<String>,
    dbtimestamp: Option<String>,
    join: Vec<String>,
}

impl Sql {
    fn new(o: &MysqlOptions, join: &[String]) -> Result<Sql, String> {
        let c = &o.columns;
        let opt = |what: &str, n: &Option<String>| n.as_deref().map(|n| mysql_ident(what, n)).transpose();
        Ok(Sql {
            table: mysql_table(&o.table)?,
            job_name: mysql_ident("columns.job_name", &c.job_name)?,
            run_start: mysql_ident("columns.run_start", &c.run_start)?,
            run_end: mysql_ident("columns.run_end", &c.run_end)?,
            valid_flag: mysql_ident("columns.valid_flag", &c.valid_flag)?,
            duration: opt("columns.duration", &c.duration)?,
            condition_column: opt("columns.condition_column", &c.condition_column)?,
            final_end: opt("columns.final_end", &c.final_end)?,
            dbtimestamp: opt("dbtimestamp_column", &o.dbtimestamp_column)?,
            join: join.iter().map(|j| mysql_ident("tables_from.join", j)).collect::<Result<_, _>>()?,
        })
    }
}

fn cell(row: &Row, i: usize) -> Option<String> {
    match row.as_ref(i) {
        None | Some(Value::NULL) => None,
        Some(Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        Some(other) => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

/// Checks the names and the url of the options before anything connects.
pub fn check(o: &MysqlOptions, join: &[String]) -> Result<(), String> {
    Sql::new(o, join)?;
    Opts::from_url(&o.url).map_err(|_| "url is not of the form mysql://user@host:port/database".to_string())?;
    if o.password_env.is_some() && o.password_file.is_some() {
        return Err("set password_env or password_file, not both".into());
    }
    Ok(())
}

/// A row in use whose values cannot be used.
#[derive(Debug)]
pub struct Refused {
    /// The row as people find it: `etl_conf_d row JOB_NAME = "x", job_group = "g1"`.
    pub row: String,
    /// Its join column values, in `join` order (empty without a join).
    pub join_values: Vec<Option<String>>,
    /// Why.
    pub problem: String,
}

/// What the job table holds for a job.
#[derive(Debug, Default)]
pub struct Found {
    /// The rows in use (valid flag set) with usable values.
    pub usable: Vec<JobRow>,
    /// Each row in use with unusable values, and why it is skipped.
    pub refused: Vec<Refused>,
    /// The valid flag of each row switched off (NULL as `None`).
    pub switched_off: Vec<Option<String>>,
}

/// Reads the job's rows: those in use are parsed (rows with invalid values are set aside with
/// the reason, for the caller to report), the others only counted with their flag, so that a
/// job switched off is told from a job with no row at all.
pub async fn read_rows(o: &MysqlOptions, job_name: &str, join: &[String]) -> Result<Found, Error> {
    let server = Server::new(o)?;
    let sql = Sql::new(o, join).map_err(|e| server.error(Failed::new(e)))?;
    let text = |c: &str| format!("CAST({c} AS CHAR)");
    let mut select = vec![text(&sql.run_start), text(&sql.run_end)];
    for c in [&sql.duration, &sql.condition_column, &sql.final_end].into_iter().flatten() {
        select.push(text(c));
    }
    select.extend(sql.join.iter().map(|c| text(c)));
    let order = (1..=select.len()).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    // The flag is compared by the server, as before (its collation: `y` may equal `Y`).
    select.push(text(&sql.valid_flag));
    select.push(format!("({} = ?) IS TRUE", sql.valid_flag));
    let query = format!("SELECT {} FROM {} WHERE {} = ? ORDER BY {order}", select.join(", "), sql.table, sql.job_name);
    let mut conn = server.connect().await.map_err(|f| server.error(f))?;
    let rows: Vec<Row> = server
        .timed(&format!("cannot read {}", o.table), conn.exec(query.as_str(), (o.valid_value.as_str(), job_name)))
        .await
        .map_err(|f| server.error(f))?;
    let _ = conn.disconnect().await;

    let mut found = Found::default();
    let mut seen = BTreeSet::new();
    for row in rows {
        let mut i = 0;
        let mut next = || {
            i += 1;
            cell(&row, i - 1)
        };
        let start_text = next();
        let end_text = next();
        let duration = sql.duration.as_ref().and_then(|_| next());
        let condition_column = sql.condition_column.as_ref().and_then(|_| next());
        let final_end = sql.final_end.as_ref().and_then(|_| next());
        let join_values: Vec<Option<String>> = sql.join.iter().map(|_| next().map(|v| v.trim().to_string())).collect();
        let flag = next();
        if next().as_deref() != Some("1") {
            found.switched_off.push(flag);
            continue;
        }
        let name = format!(
            "{} row {} = {job_name:?}{}",
            o.table,
            o.columns.job_name,
            if join.is_empty() { String::new() } else { format!(", {}", describe_join(join, &join_values)) }
        );
        let problem = match parse_row(o, start_text, end_text, duration, condition_column, final_end, o.duration_unit) {
            Ok(mut r) if seen.insert(join_values.clone()) => {
                r.join_values = join_values;
                found.usable.push(r);
                continue;
            }
            Ok(_) => "another valid row has the same values".to_string(),
            Err(e) => e,
        };
        found.refused.push(Refused { row: name, join_values, problem });
    }
    Ok(found)
}

fn parse_row(
    o: &MysqlOptions,
    start_text: Option<String>,
    end_text: Option<String>,
    duration: Option<String>,
    condition_column: Option<String>,
    final_end: Option<String>,
    unit: DurationUnit,
) -> Result<JobRow, String> {
    let c = &o.columns;
    let ts = |col: &str, v: &Option<String>| -> Result<NaiveDateTime, String> {
        let v = v.as_deref().ok_or_else(|| format!("{col} is NULL"))?;
        ConfigTimestamp::parse(v).map(|t| t.0).map_err(|e| format!("{col}: {e}"))
    };
    let start = ts(&c.run_start, &start_text)?;
    let end = ts(&c.run_end, &end_text)?;
    if end <= start {
        return Err(format!("{} {} is not after {} {}", c.run_end, format_ts(end), c.run_start, format_ts(start)));
    }
    let blank = |v: Option<String>| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let duration = match blank(duration) {
        Some(d) => Some(parse_duration(&d, unit).map_err(|e| format!("{}: {e}", c.duration.as_deref().unwrap_or("")))?),
        None => None,
    };
    let final_end = match blank(final_end) {
        Some(v) => Some(ts(c.final_end.as_deref().unwrap_or(""), &Some(v))?),
        None => None,
    };
    Ok(JobRow {
        join_values: Vec::new(),
        start,
        end,
        duration,
        condition_column: blank(condition_column),
        final_end,
        start_text: start_text.unwrap_or_default(),
        end_text: end_text.unwrap_or_default(),
    })
}

/// The job rows as an external cursor: moved after the run by as far as all their tables got.
pub struct MysqlCursor {
    server: Server,
    sql: Sql,
    job: String,
    job_name: String,
    valid_value: String,
    table: String,
    join_names: Vec<String>,
    rows: Vec<JobRow>,
    row_tables: Vec<Vec<String>>,
}

impl MysqlCursor {
    /// The cursor of `rows`, whose tables are `row_tables` (same order).
    pub(crate) fn new(
        o: &MysqlOptions,
        job: String,
        job_name: String,
        join: Vec<String>,
        rows: Vec<JobRow>,
        row_tables: Vec<Vec<String>>,
    ) -> Result<MysqlCursor, Error> {
        let server = Server::new(o)?;
        let sql = Sql::new(o, &join).map_err(|e| server.error(Failed::new(e)))?;
        Ok(MysqlCursor {
            server,
            sql,
            job,
            job_name,
            valid_value: o.valid_value.clone(),
            table: o.table.clone(),
            join_names: join,
            rows,
            row_tables,
        })
    }

    fn row_name(&self, row: &JobRow) -> String {
        let mut s = format!("{} = {:?}", self.sql.job_name.trim_matches('`'), self.job_name);
        if !self.join_names.is_empty() {
            s.push_str(&format!(", {}", describe_join(&self.join_names, &row.join_values)));
        }
        s
    }

    /// How far a row's tables got: the lowest of their reached points, clamped to the row's span,
    /// with the table that holds it back.
    fn reached(&self, i: usize, progress: &[TableProgress]) -> Option<(NaiveDateTime, String)> {
        let row = &self.rows[i];
        let mut lowest: Option<(NaiveDateTime, String)> = None;
        for name in &self.row_tables[i] {
            // A table switched off does not hold the job back; each target of one source does.
            for p in progress.iter().filter(|p| &p.table == name) {
                let mut at = p.cursor.unwrap_or(row.start);
                if let Some(f) = p.failed_at {
                    at = at.min(f);
                }
                let at = at.clamp(row.start, row.end);
                if lowest.as_ref().is_none_or(|(l, _)| at < *l) {
                    lowest = Some((at, name.clone()));
                }
            }
        }
        lowest
    }
}

#[async_trait::async_trait]
impl ExternalCursor for MysqlCursor {
    fn job(&self) -> &str {
        &self.job
    }

    fn describe(&self) -> String {
        format!(
            "{} at {}, row {} = {:?}",
            self.server.reader,
            self.server.address,
            self.sql.job_name.trim_matches('`'),
            self.job_name
        )
    }

    async fn advance(&self, progress: &[TableProgress], _now: NaiveDateTime) -> Result<String, String> {
        let mut plans = Vec::new();
        let mut messages = Vec::new();
        for (i, row) in self.rows.iter().enumerate() {
            match self.reached(i, progress) {
                None => messages.push(format!("{}: no table, not moved", self.row_name(row))),
                Some((at, table)) if at <= row.start => messages.push(format!(
                    "{}: not moved, {table} is still at {}",
                    self.row_name(row),
                    format_ts(row.start)
                )),
                Some((at, _)) => plans.push((row, at, row.end + (at - row.start))),
            }
        }
        if plans.is_empty() {
            return Ok(messages.join("\n"));
        }
        let s = &self.sql;
        let mut set = format!("{} = ?, {} = ?", s.run_start, s.run_end);
        if let Some(d) = &s.dbtimestamp {
            set.push_str(&format!(", {d} = NOW()"));
        }
        let mut filter =
            format!("{} = ? AND {} = ? AND {} = ? AND {} = ?", s.job_name, s.valid_flag, s.run_start, s.run_end);
        for j in &s.join {
            filter.push_str(&format!(" AND {j} <=> ?"));
        }
        let update = format!("UPDATE {} SET {set} WHERE {filter}", s.table);
        let mut conn = self.server.connect().await.map_err(|f| f.message)?;
        for (row, new_start, new_end) in plans {
            let mut params: Vec<Value> = vec![
                format_ts(new_start).into(),
                format_ts(new_end).into(),
                self.job_name.clone().into(),
                self.valid_value.clone().into(),
                row.start_text.clone().into(),
                row.end_text.clone().into(),
            ];
            params.extend(row.join_values.iter().map(|v| v.clone().map_or(Value::NULL, Value::from)));
            let result = self
                .server
                .timed(&format!("cannot update {}", self.table), conn.exec_drop(update.as_str(), params))
                .await;
            if let Err(e) = result {
                let _ = conn.disconnect().await;
                return Err(format!("{}: {}", self.row_name(row), e.message));
            }
            if conn.affected_rows() == 0 {
                let _ = conn.disconnect().await;
                return Err(format!(
                    "{}: the row changed since this run read it, so it was not moved; the next run starts \
                     from what it holds now",
                    self.row_name(row)
                ));
            }
            messages.push(format!(
                "{}: {}/{} {} / {} -> {} / {}",
                self.row_name(row),
                self.sql.run_start.trim_matches('`'),
                self.sql.run_end.trim_matches('`'),
                format_ts(row.start),
                format_ts(row.end),
                format_ts(new_start),
                format_ts(new_end)
            ));
        }
        let _ = conn.disconnect().await;
        Ok(messages.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn mysql_names_are_checked() {
        assert_eq!(mysql_table("ch_qms.etl_conf_d").unwrap(), "`ch_qms`.`etl_conf_d`");
        for bad in ["a`b", "t; drop table x", "a.b.c", "", "x y"] {
            assert!(mysql_table(bad).is_err(), "{bad:?}");
        }
    }
}
