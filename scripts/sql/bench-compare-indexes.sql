-- Primary key (reladiff's key ranges, gptransfer's key level) and the condition-column index
-- (gptransfer's time slices), as on a real fact table.
--
--   psql -v ON_ERROR_STOP=1 -f scripts/sql/bench-compare-indexes.sql
\set ON_ERROR_STOP on
ALTER TABLE eda.bench_compare ADD CONSTRAINT bench_compare_pkey PRIMARY KEY (id);
CREATE INDEX bench_compare_evt_timestamp_idx ON eda.bench_compare (evt_timestamp);
