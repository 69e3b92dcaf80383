-- The table of scripts/bench-compare.sh: a defect fact table with a single-column integer key
-- (`id`, which reladiff bisects on) and a timestamp condition column (`evt_timestamp`, which
-- gptransfer windows and slices on). Created WITHOUT constraints; bench-compare-indexes.sql
-- adds the primary key and the condition-column index (on the source after generation, on the
-- target before the copy).
--
--   psql -v ON_ERROR_STOP=1 -f scripts/sql/bench-compare-table.sql
\set ON_ERROR_STOP on
CREATE SCHEMA IF NOT EXISTS eda;
DROP TABLE IF EXISTS eda.bench_compare;
CREATE TABLE eda.bench_compare (
    id            bigint           NOT NULL,  -- the key
    glass_id      text             NOT NULL,
    site          text,
    defect_code   text,
    evt_timestamp timestamp        NOT NULL,  -- the condition column
    x             double precision,
    y             double precision,
    size          numeric(12,3),
    judge         text,                       -- Chinese text
    comment       text,                       -- commas, quotes, newlines, tabs, backslashes
    load_time     timestamptz
);
