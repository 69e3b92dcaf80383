-- Damages the TARGET copy of eda.bench_compare with exactly 6 differences, at ids spread over
-- the table (and so over the day): 3 rows deleted (missing on the target), 2 changed (one only
-- in a float column, one only in a Chinese text column), 1 inserted (extra on the target, a
-- new id past the last one, inside the day). Prints the 6 ids, one per line, in order.
--
--   psql -At -v ON_ERROR_STOP=1 -v rows=1000000 -f scripts/sql/bench-compare-damage.sql
\set ON_ERROR_STOP on
SELECT (:rows * 0.11)::bigint AS del1, (:rows * 0.47)::bigint AS del2, (:rows * 0.93)::bigint AS del3,
       (:rows * 0.29)::bigint AS chg_float, (:rows * 0.71)::bigint AS chg_text,
       (:rows + 1000)::bigint AS ins \gset
BEGIN;
DELETE FROM eda.bench_compare WHERE id IN (:del1, :del2, :del3);
-- A float change large enough to survive any tool's rounding (reladiff rounds floats).
UPDATE eda.bench_compare SET x = coalesce(x, 0) + 1.5 WHERE id = :chg_float;
UPDATE eda.bench_compare SET judge = coalesce(judge, '') || '（复判改）' WHERE id = :chg_text;
INSERT INTO eda.bench_compare
SELECT :ins, glass_id, site, defect_code, evt_timestamp + interval '1 second', x, y, size, judge, 'inserted on the target', load_time
FROM eda.bench_compare WHERE id = (:rows / 2)::bigint + 3;
COMMIT;
SELECT unnest(ARRAY[:del1, :del2, :del3, :chg_float, :chg_text, :ins]::bigint[]) AS id ORDER BY 1;
