//! The one-day job many tests write: table `table` from cluster `src` to `dst`, condition
//! column `ts`, one window for 2024-01-01, no retries.

use super::TestEnv;

/// Writes the job's config: `job_lines` go into the job's section (a `transport`, a
/// `timezone`), `table_lines` into the table's (`key`, `mode`, `lossy_columns`).
#[allow(dead_code)]
pub fn write(env: &TestEnv, table: &str, table_lines: &str, job_lines: &str) {
    env.write_config(&format!(
        r#"{{CLUSTERS}}

[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
end = "2024-01-02 00:00:00"
duration = "1d"
retries = 0
{job_lines}

[[jobs.j.tables]]
table = "{table}"
condition_column = "ts"
{table_lines}
"#
    ));
}
