-- A display-panel defect fact table, shaped like the production eda.wpp_fdefect_f_n.
-- Created WITHOUT constraints so that bulk generation is fast; add_indexes.sql adds the
-- primary key and the index on the condition column afterwards (or at once on a target).
--
--   psql -v ON_ERROR_STOP=1 -f scripts/sql/create_table.sql
\set ON_ERROR_STOP on
CREATE SCHEMA IF NOT EXISTS eda;
DROP TABLE IF EXISTS eda.wpp_fdefect_f_n;
CREATE TABLE eda.wpp_fdefect_f_n (
    glass_id      text             NOT NULL,  -- panel (glass substrate) id
    defect_seq    integer          NOT NULL,  -- defect number on that glass
    site          text,                       -- fab site
    defect_code   text,                       -- classification code, NULL when unclassified
    evt_timestamp timestamp        NOT NULL,  -- inspection time: the condition column
    x             double precision,           -- defect position (um), NULL when not measured
    y             double precision,
    size          numeric(12,3),              -- defect size (um)
    judge         text,                       -- operator judgement, Chinese text
    comment       text,                       -- free text: commas, quotes, newlines, tabs, \
    load_time     timestamptz                 -- when the row reached the warehouse
);
