//! Alarms: one row per difference a compare found (`data_name = 'GPTRANSFER'`), polled by
//! `alarm check`, acknowledged by `alarm reset` (diff set to 0, reset time kept).

use super::{Bounded, State};
use crate::compare::WindowComparison;
use crate::error::Error;

/// What `alarm check` found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AlarmStatus {
    /// Active differences in the period.
    pub differences: i64,
    /// Tables with active differences.
    pub tables: Vec<String>,
    /// Active windows that could not be compared (an error is not a difference).
    pub errors: i64,
    /// Tables with such windows.
    pub error_tables: Vec<String>,
}

/// Alarm rows written by one statement.
const ALARMS_PER_STATEMENT: usize = 1000;

impl State {
    /// Records every difference of a window (one row per key; one summary row when keys
    /// were cut off or could not be listed). Returns the rows written.
    pub async fn record_alarms(&self, c: &WindowComparison, bucket_of_summary: &str) -> Result<u64, Error> {
        // A window's alarms describe its latest compare: earlier ones are closed first, so a
        // compare run twice does not double them and a repaired window clears its own.
        let close = format!(
            "UPDATE {} SET diff = 0, reset_at = now() WHERE job = $1 AND table_name = $2 AND window_id = $3 AND diff > 0",
            self.table("alarms")
        );
        self.client().execute(&close, &[&c.job, &c.table, &c.window]).bounded(self, "closing earlier alarms").await?;
        if c.equal {
            return Ok(0);
        }
        // Many rows per statement: one round trip each cost 2.5 ms on a GP6 master, 25 s for a
        // window whose 10,000 rows were missing. Arrays indexed by generate_series, which 8.2
        // has (multi-argument unnest it has not).
        let batch = format!(
            "INSERT INTO {} (data_name, job, table_name, window_id, bucket, source_count, target_count, kind, key, diff, detected_at) \
             SELECT 'GPTRANSFER', $1, $2, $3, ($4::text[])[i], $5, $6, ($7::text[])[i], ($8::text[])[i], 1, now() \
             FROM generate_series(1, $9) AS i",
            self.table("alarms")
        );
        let mut written = 0;
        for chunk in c.differences.chunks(ALARMS_PER_STATEMENT) {
            let buckets: Vec<&str> = chunk.iter().map(|d| d.bucket.as_str()).collect();
            let kinds: Vec<&str> = chunk.iter().map(|d| d.kind.as_str()).collect();
            let keys: Vec<&str> = chunk.iter().map(|d| d.key.as_str()).collect();
            let n = i32::try_from(chunk.len()).unwrap_or(i32::MAX);
            self.client()
                .execute(
                    &batch,
                    &[&c.job, &c.table, &c.window, &buckets, &c.source_count, &c.target_count, &kinds, &keys, &n],
                )
                .bounded(self, "writing alarms")
                .await?;
            written += chunk.len() as u64;
        }
        let sql = format!(
            "INSERT INTO {} (data_name, job, table_name, window_id, bucket, source_count, target_count, kind, key, diff, detected_at) \
             VALUES ('GPTRANSFER', $1, $2, $3, $4, $5, $6, $7, $8, 1, now())",
            self.table("alarms")
        );
        if c.differences.len() < c.total_differences || c.differences.is_empty() {
            let kind = if c.error.is_some() { "error" } else { "count" };
            let note = match &c.error {
                Some(e) => Some(e.clone()),
                None => Some(format!("{} differences in all, {} listed", c.total_differences, c.differences.len())),
            };
            self.client()
                .execute(
                    &sql,
                    &[&c.job, &c.table, &c.window, &bucket_of_summary, &c.source_count, &c.target_count, &kind, &note],
                )
                .bounded(self, "writing alarms")
                .await?;
            written += 1;
        }
        Ok(written)
    }

    /// Active alarms detected in the last `hours`.
    pub async fn alarm_status(&self, hours: f64) -> Result<AlarmStatus, Error> {
        // No FILTER clause: 8.2 has none.
        let sql = format!(
            "SELECT table_name, sum(CASE WHEN kind = 'error' THEN 0 ELSE 1 END)::bigint, \
             sum(CASE WHEN kind = 'error' THEN 1 ELSE 0 END)::bigint FROM {} WHERE data_name = 'GPTRANSFER' AND diff > 0 \
             AND detected_at >= now() - ($1::float8 * interval '1 hour') GROUP BY table_name ORDER BY table_name",
            self.table("alarms")
        );
        let rows = self.client().query(&sql, &[&hours]).bounded(self, "reading alarms").await?;
        let tables = |col: usize| rows.iter().filter(|r| r.get::<_, i64>(col) > 0).map(|r| r.get(0)).collect();
        Ok(AlarmStatus {
            differences: rows.iter().map(|r| r.get::<_, i64>(1)).sum(),
            tables: tables(1),
            errors: rows.iter().map(|r| r.get::<_, i64>(2)).sum(),
            error_tables: tables(2),
        })
    }

    /// Acknowledges active alarms (all, or of one table, or detected before a time).
    ///
    /// `table` is an entry as alarms name it (`schema.table`, or `source -> target`); with
    /// `every_target`, also every entry that reads `table` into another target.
    pub async fn alarm_reset(
        &self,
        table: Option<&str>,
        every_target: bool,
        before: Option<chrono::NaiveDateTime>,
    ) -> Result<u64, Error> {
        let sql = format!(
            "UPDATE {} SET diff = 0, reset_at = now() WHERE diff > 0 \
             AND ($1::text IS NULL OR table_name = $1 OR ($3 AND substr(table_name, 1, length($1) + 4) = $1 || ' -> ')) \
             AND ($2::text IS NULL OR detected_at < $2::text::timestamp)",
            self.table("alarms")
        );
        let before = before.map(super::ts_text);
        self.client().execute(&sql, &[&table, &before, &every_target]).bounded(self, "resetting alarms").await
    }
}
