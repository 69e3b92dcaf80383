-- Primary key and the index on the condition column, as on a real fact table.
--
--   psql -v ON_ERROR_STOP=1 -f scripts/sql/add_indexes.sql
\set ON_ERROR_STOP on
ALTER TABLE eda.wpp_fdefect_f_n
    ADD CONSTRAINT wpp_fdefect_f_n_pkey PRIMARY KEY (glass_id, defect_seq);
CREATE INDEX wpp_fdefect_f_n_evt_timestamp_idx ON eda.wpp_fdefect_f_n (evt_timestamp);
